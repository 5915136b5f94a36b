//! The engine's reconciler: observe what a project has through a
//! [`Driver`], decide with stack-plan (pure), carry the plan out wave by
//! wave (the tasks of a wave concurrently, at most `parallel` operations at
//! once), and tell the client what happens as it happens.
//!
//! This crate knows no runtime, network or image code: the host's driver
//! lives with the binary, and the tests drive a fake one on tokio's paused
//! clock.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use anyhow::bail;
use stack_model::{Project, Service};
use stack_plan::{Op, Plan, Wanted, WantedNetwork};
use stack_wire::{ContainerEvent, DownRequest, Event, Events, UpRequest};
use tokio::sync::Semaphore;

mod actions;
mod hooks;
mod logs;
mod supervise;
pub mod watch;
pub use logs::{LogReader, LogRecord};
pub use supervise::*;

/// Operations at once when the request does not say (`--parallel`, or
/// `COMPOSE_PARALLEL_LIMIT` in the client's environment): enough for a stack's independent services to
/// start together, few enough that a 200-service stack does not fork 200
/// containers at the same instant.
pub const DEFAULT_PARALLEL: usize = 16;

/// What the engine does to the host. Observations are quick reads;
/// operations may take long (they start processes, wire networks, wait for
/// stops) and are awaited, so a slow one never holds up the others.
pub trait Driver: Sync {
    /// The containers of a project (or of every project), one-off `run`
    /// containers included.
    fn observe(&self, project: Option<&str>) -> anyhow::Result<Vec<Observed>>;
    /// One container of `project` as it is now; None once it is gone. (A
    /// driver that can look one up directly should: the supervisor asks at
    /// every exit, and a `down` of N containers would observe N² otherwise.)
    fn observe_one(&self, project: &str, id: &str) -> anyhow::Result<Option<Observed>> {
        Ok(self
            .observe(Some(project))?
            .into_iter()
            .find(|c| c.id == id))
    }
    /// The names of the networks the host has.
    fn networks(&self) -> anyhow::Result<Vec<String>>;
    fn create_network(
        &self,
        project: &Project,
        key: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Waits until what the operations made is durable where the driver
    /// lets that go on beside later ones (a network's record): called at
    /// the end of every plan executed, failed or not.
    fn settle(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
    /// Makes sure the service's image is here: `policy` is `always`,
    /// `missing` or `never`. True if it was pulled.
    fn pull(
        &self,
        project: &Project,
        service: &str,
        policy: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Creates the replica (its image is here), and starts it with `start`.
    fn create(
        &self,
        replica: &Replica<'_>,
        start: bool,
    ) -> impl Future<Output = anyhow::Result<Observed>> + Send;
    /// Starts a stopped (or created) container, in place.
    fn start(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops (as `remove` does) and starts again, in place.
    fn restart(
        &self,
        id: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops (waiting up to `timeout` seconds, else the container's own),
    /// as a user stops it: no restart policy starts it again.
    fn stop(
        &self,
        id: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Sends `signal` (a name, `KILL`, or a number) to the container's
    /// processes.
    fn kill(&self, id: &str, signal: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Freezes (`true`) or thaws every process of the container.
    fn pause(&self, id: &str, paused: bool) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Whether the running container's processes are frozen (asked by
    /// `pause` and `unpause` only, not with every observation).
    fn paused(&self, id: &str) -> bool;
    /// Stops (waiting up to `timeout` seconds, else the container's own)
    /// and removes.
    fn remove(
        &self,
        id: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Resolves when the container is not running (at once if it is not):
    /// how it ended. An error if there is no such container.
    fn wait(&self, id: &str) -> impl Future<Output = anyhow::Result<Exit>> + Send;
    /// Runs a health probe against a running container (the engine gives
    /// up on it after `health.timeout`).
    fn probe(&self, id: &str, health: &HealthConfig) -> impl Future<Output = ProbeResult> + Send;
    /// Makes each of `paths` (under `trigger.path`) in the running
    /// container what it is on the host: a file, a symlink, a tree (of what
    /// the trigger keeps), or nothing when it was removed. How many files
    /// were written.
    fn sync(
        &self,
        id: &str,
        trigger: &watch::Trigger,
        paths: &[std::path::PathBuf],
    ) -> impl Future<Output = anyhow::Result<usize>> + Send;
    /// Runs the service's `pre_start` hook `index` in a container of its
    /// own (the replica's volumes, networks and environment; the hook's
    /// image, command, user and working directory), removed after it:
    /// its exit code and the end of its output.
    fn pre_start(
        &self,
        replica: &Replica<'_>,
        index: usize,
    ) -> impl Future<Output = anyhow::Result<(i32, String)>> + Send;
    /// Runs a command in the running container: its exit code and output.
    fn exec(
        &self,
        id: &str,
        exec: &watch::Exec,
    ) -> impl Future<Output = anyhow::Result<(i32, String)>> + Send;
    /// Removes a named volume; false if there was none.
    fn remove_volume(&self, name: &str) -> anyhow::Result<bool>;
    /// Removes an image's name (the image with its last name, unless a
    /// container uses it); false if there was none.
    fn remove_image(&self, name: &str) -> anyhow::Result<bool>;
    /// Removes what the engine wrote for the project (secrets, configs).
    fn forget_project(&self, project: &str) -> anyhow::Result<()>;
    /// Container `id`'s log, to its end, or with `follow` off to its end
    /// as it is now.
    fn log(&self, id: &str, follow: bool) -> Box<dyn LogReader>;
}

/// Where a project comes from, recorded on its containers as compose does.
pub struct Origin<'a> {
    pub project: &'a Project,
    pub working_dir: &'a str,
    pub config_files: &'a [String],
    /// Seconds to wait for stops before SIGKILL, over the services' own.
    pub timeout: Option<u64>,
    /// Wait for the `depends_on` conditions before starting a service.
    pub conditions: bool,
}

/// Replica `number` of `service` of the origin's project, named `name`.
pub struct Replica<'a> {
    pub origin: &'a Origin<'a>,
    pub service: &'a str,
    pub number: u32,
    pub name: &'a str,
}

/// How many events the engine keeps to replay, as dockerd keeps its last
/// thousand.
pub const KEPT_EVENTS: usize = 1000;

/// The engine: one per host. It carries out `up` and `down`, and
/// supervises every container it knows (restart policies, health, events).
pub struct Engine<D> {
    driver: D,
    board: Board,
    bus: tokio::sync::broadcast::Sender<ContainerEvent>,
    /// The last [`KEPT_EVENTS`] events, for `events --since`; sent on the
    /// bus under its lock, so a subscriber gets each event once.
    history: Mutex<std::collections::VecDeque<ContainerEvent>>,
    /// Where supervision tasks run (they outlive the calls that start them).
    handle: tokio::runtime::Handle,
    watched: Mutex<HashSet<String>>,
}

impl<D> Engine<D> {
    /// An engine over `driver`, its supervision tasks on `handle`.
    pub fn new(driver: D, handle: tokio::runtime::Handle) -> Arc<Engine<D>> {
        Arc::new(Engine {
            driver,
            board: Board::default(),
            bus: tokio::sync::broadcast::channel(1024).0,
            history: Mutex::default(),
            handle,
            watched: Mutex::default(),
        })
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// The runtime the engine's tasks run on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// What the engine saw of its containers.
    pub fn board(&self) -> &Board {
        &self.board
    }
}

/// A network's name on the host: its `name:`, or `<project>_<key>`.
pub fn network_name(project: &Project, key: &str) -> String {
    project
        .networks
        .get(key)
        .and_then(|n| n.name.clone())
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// A named volume's name on the host: its `name:`, or `<project>_<key>`.
pub fn volume_name(project: &Project, key: &str) -> String {
    project
        .volumes
        .get(key)
        .and_then(|x| x.name.clone())
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// Replicas the file asks for: `scale:`, else `deploy.replicas`, else 1.
pub fn replicas(s: &Service) -> u32 {
    s.scale
        .or(s.deploy.as_ref().and_then(|d| d.replicas))
        .unwrap_or(1)
        .max(0) as u32
}

/// The images `down --rmi` removes: with `all`, every service's; with
/// `local`, those of services with no `image:` (named `<project>-<service>`,
/// as compose names what it builds).
pub fn images_to_remove(project: &Project, which: &str) -> Vec<String> {
    let mut images: Vec<String> = project
        .services
        .iter()
        .filter_map(|(name, s)| match &s.image {
            Some(image) => (which == "all").then(|| image.clone()),
            None => Some(format!("{}-{name}", project.name)),
        })
        .collect();
    images.sort();
    images.dedup();
    images
}

fn wanted_networks(project: &Project) -> Vec<WantedNetwork> {
    project
        .networks
        .iter()
        .map(|(key, n)| WantedNetwork {
            key: key.clone(),
            name: network_name(project, key),
            external: n.external.0,
        })
        .collect()
}

/// A dry run's answer: each operation of the plan, by wave.
fn say_plan(plan: &stack_plan::Plan, events: &Events) {
    for (i, wave) in plan.waves.iter().enumerate() {
        for op in wave.iter().flatten() {
            events.send(Event::Plan {
                line: format!("step {}: {op}", i + 1),
            });
        }
    }
}

fn parallel(asked: Option<usize>) -> usize {
    asked.filter(|n| *n > 0).unwrap_or(DEFAULT_PARALLEL)
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// `up`: the services (and their dependencies) as the file says; with
    /// `wait`, until they are running, healthy or completed.
    pub async fn up(self: &Arc<Self>, req: &UpRequest, events: &Events) -> anyhow::Result<()> {
        let driver = &self.driver;
        let project = &req.project;
        for s in &req.services {
            if !project.services.contains_key(s) {
                bail!("no such service: `{s}`");
            }
        }
        for s in req.scale.keys() {
            if !project.services.contains_key(s) {
                bail!("--scale: no such service: `{s}`");
            }
        }
        let graph = stack_graph::Graph::from_project(project);
        let waves = graph
            .waves()
            .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
        let selected = if req.services.is_empty() || req.no_deps {
            req.services.clone()
        } else {
            graph.with_dependencies(&req.services)
        };
        let wanted: Vec<Wanted> = project
            .services
            .iter()
            .filter(|(name, _)| selected.is_empty() || selected.contains(name))
            .map(|(name, s)| Wanted {
                service: name.clone(),
                hash: stack_plan::hash_service(s),
                replicas: req.scale.get(name).copied().unwrap_or_else(|| replicas(s)),
                container_name: s.container_name.clone(),
                restart_with: s
                    .depends_on
                    .iter()
                    .filter(|(_, d)| d.restart)
                    .map(|(name, _)| name.clone())
                    .collect(),
            })
            .collect();
        let mut have = self.replicas(&project.name, false)?;
        if !selected.is_empty() {
            // Others are left alone, not orphans.
            have.retain(|e| {
                selected.contains(&e.service) || !project.services.contains_key(&e.service)
            });
        }
        let opts = stack_plan::UpOptions {
            force_recreate: req.force_recreate,
            dependencies: selected
                .iter()
                .filter(|s| !req.services.contains(s))
                .cloned()
                .collect(),
            always_recreate_deps: req.always_recreate_deps,
            compatibility: req.compatibility,
            rebuilt: req.rebuilt.clone(),
            no_recreate: req.no_recreate,
            remove_orphans: req.remove_orphans,
            no_start: req.no_start,
        };
        let plan = stack_plan::up(
            &project.name,
            &wanted,
            &waves,
            &wanted_networks(project),
            &driver.networks()?,
            &have,
            &opts,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        for w in &plan.warnings {
            events.send(Event::Warning { message: w.clone() });
        }
        if req.dry_run {
            say_plan(&plan, events);
            return Ok(());
        }
        self.pull(req, &plan, events).await?;
        let origin = Origin {
            project,
            working_dir: &req.working_dir,
            config_files: &req.config_files,
            timeout: req.timeout,
            conditions: !req.no_deps,
        };
        self.execute(&origin, &plan, events, parallel(req.parallel))
            .await?;
        if req.wait {
            let services: Vec<String> = wanted.iter().map(|w| w.service.clone()).collect();
            self.settled_within(&project.name, &services, req.wait_timeout)
                .await?;
        }
        Ok(())
    }

    /// The replicas of a project, for the plan; one-off containers only
    /// with `one_offs`.
    fn replicas(&self, project: &str, one_offs: bool) -> anyhow::Result<Vec<stack_plan::Existing>> {
        Ok(self
            .driver
            .observe(Some(project))?
            .iter()
            .filter(|c| one_offs || !c.one_off)
            .map(Observed::existing)
            .collect())
    }
}

/// The pull policy of a service: `--pull`, else its `pull_policy`, as one
/// of `always`, `missing`, `never`. (`build` is `missing` while there are no
/// builds; `daily`, `weekly`, `every_…` are `missing` too: no pull dates are
/// kept yet.)
pub fn pull_policy<'a>(asked: Option<&'a str>, service: &'a Service) -> &'a str {
    match asked.or(service.pull_policy.as_deref()) {
        Some("always") => "always",
        Some("never") => "never",
        _ => "missing",
    }
}

/// Every image the plan needs, before anything changes: a missing image
/// fails `up` with nothing created. Images are pulled concurrently.
impl<D: Driver + Send + 'static> Engine<D> {
    async fn pull(&self, req: &UpRequest, plan: &Plan, events: &Events) -> anyhow::Result<()> {
        let driver = &self.driver;
        let mut services: Vec<&str> = plan
            .ops()
            .filter_map(|op| match op {
                Op::Run { service, .. } | Op::Create { service, .. } => Some(service.as_str()),
                _ => None,
            })
            .collect();
        services.sort();
        services.dedup();
        // One pull per image: the services of one image (with one platform
        // and policy) share it.
        let mut images = std::collections::HashSet::new();
        services.retain(|service| {
            let s = &req.project.services[*service];
            match (&s.image, &s.build) {
                (Some(image), None) => {
                    images.insert((image, &s.platform, pull_policy(req.pull.as_deref(), s)))
                }
                _ => true,
            }
        });
        let slots = &Semaphore::new(parallel(req.parallel));
        let results = futures::future::join_all(services.iter().map(|service| async move {
            let _slot = slots.acquire().await.expect("never closed");
            let s = &req.project.services[*service];
            let pulled = driver
                .pull(&req.project, service, pull_policy(req.pull.as_deref(), s))
                .await
                .map_err(|e| e.context(format!("service {service}")))?;
            if pulled && !req.quiet_pull {
                progress(
                    events,
                    "Image",
                    s.image.as_deref().unwrap_or(service),
                    "Pulled",
                );
            }
            anyhow::Ok(())
        }))
        .await;
        failures(results)
    }
}

/// Ok, or every error at once.
fn failures(results: Vec<anyhow::Result<()>>) -> anyhow::Result<()> {
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err())
        .map(|e| format!("{e:#}"))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("\n"))
    }
}

/// `down`: containers in reverse dependency order, then the project's
/// networks, and with `volumes` its named volumes.
impl<D: Driver + Send + 'static> Engine<D> {
    pub async fn down(self: &Arc<Self>, req: &DownRequest, events: &Events) -> anyhow::Result<()> {
        let driver = &self.driver;
        let project = &req.project;
        let graph = stack_graph::Graph::from_project(project);
        let waves = graph
            .stop_waves()
            .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
        // Orphans and one-off containers go on request, as with compose.
        let mut have = self.replicas(&project.name, req.remove_orphans)?;
        if !req.remove_orphans {
            let orphans: Vec<String> = have
                .iter()
                .filter(|e| !project.services.contains_key(&e.service))
                .map(|e| e.name.clone())
                .collect();
            if !orphans.is_empty() {
                events.send(Event::Warning {
                    message: format!(
                        "found orphan containers ({}): remove them with --remove-orphans",
                        orphans.join(", ")
                    ),
                });
            }
            have.retain(|e| project.services.contains_key(&e.service));
        }
        let plan = stack_plan::down(
            &waves,
            &wanted_networks(project),
            &driver.networks()?,
            &have,
        );
        let origin = Origin {
            project,
            working_dir: "",
            config_files: &[],
            timeout: req.timeout,
            conditions: false,
        };
        let volumes = project
            .volumes
            .iter()
            .filter(|(_, v)| req.volumes && !v.external.0)
            .map(|(key, _)| volume_name(project, key));
        let images = req
            .rmi
            .as_deref()
            .map(|which| images_to_remove(project, which))
            .unwrap_or_default();
        if req.dry_run {
            say_plan(&plan, events);
            let last = plan.waves.len() + 1;
            for v in volumes {
                events.send(Event::Plan {
                    line: format!("step {last}: remove volume {v} (--volumes)"),
                });
            }
            for i in images {
                events.send(Event::Plan {
                    line: format!("step {last}: remove image {i} (--rmi)"),
                });
            }
            return Ok(());
        }
        self.execute(&origin, &plan, events, parallel(req.parallel))
            .await?;
        for name in volumes {
            if driver.remove_volume(&name)? {
                progress(events, "Volume", &name, "Removed");
            }
        }
        for image in images {
            match driver.remove_image(&image) {
                Ok(true) => progress(events, "Image", &image, "Removed"),
                Ok(false) => {}
                // Another project's container may use it: it stays, down goes on.
                Err(e) => events.send(Event::Warning {
                    message: format!("image {image}: {e:#}"),
                }),
            }
        }
        driver.forget_project(&project.name)
    }

    /// Runs the plan: waves one after the other; the tasks of a wave
    /// concurrently, the operations of a task in order, at most `parallel`
    /// operations at once. Every failure of a wave is reported; the first wave
    /// with one is the last.
    pub async fn execute(
        self: &Arc<Self>,
        origin: &Origin<'_>,
        plan: &Plan,
        events: &Events,
        parallel: usize,
    ) -> anyhow::Result<()> {
        let slots = &Semaphore::new(parallel.max(1));
        let pre_starts = &hooks::PreStarts::default();
        let mut done = Ok(());
        for wave in &plan.waves {
            let results = futures::future::join_all(wave.iter().map(|task| async move {
                for op in task {
                    let _slot = slots.acquire().await.expect("never closed");
                    self.run_op(origin, op, events, pre_starts).await?;
                }
                anyhow::Ok(())
            }))
            .await;
            done = failures(results);
            if done.is_err() {
                break;
            }
        }
        let settled = self.driver.settle().await;
        done.and(settled)
    }

    async fn run_op(
        self: &Arc<Self>,
        origin: &Origin<'_>,
        op: &Op,
        events: &Events,
        pre_starts: &hooks::PreStarts,
    ) -> anyhow::Result<()> {
        let driver = &self.driver;
        match op {
            Op::CreateNetwork { key, name } => {
                progress(events, "Network", name, "Creating");
                driver.create_network(origin.project, key, name).await?;
                progress(events, "Network", name, "Created");
            }
            Op::RemoveNetwork { name } => {
                progress(events, "Network", name, "Removing");
                driver.remove_network(name).await?;
                progress(events, "Network", name, "Removed");
            }
            Op::Remove { id, name, .. } => {
                let c = self.current(&origin.project.name, id);
                progress(events, "Container", name, "Removing");
                if let Some(c) = c.as_ref().filter(|c| c.running) {
                    self.hooks(origin.project, c, hooks::When::PreStop, events)
                        .await?;
                }
                driver.remove(id, origin.timeout).await?;
                if let Some(c) = c {
                    self.publish(&c, "destroy", &[]);
                }
                self.board.forget(id);
                progress(events, "Container", name, "Removed");
            }
            Op::Run {
                service,
                number,
                name,
                ..
            }
            | Op::Create {
                service,
                number,
                name,
                ..
            } => {
                let start = matches!(op, Op::Run { .. });
                if start {
                    self.dependencies(origin, service, name, events).await?;
                    self.pre_start(origin, service, *number, events, pre_starts)
                        .await?;
                }
                progress(events, "Container", name, "Creating");
                let replica = Replica {
                    origin,
                    service,
                    number: *number,
                    name,
                };
                let c = driver
                    .create(&replica, start)
                    .await
                    .map_err(|e| e.context(format!("service {service}")))?;
                self.publish(&c, "create", &[]);
                if start {
                    self.publish(&c, "start", &[]);
                    self.hooks(origin.project, &c, hooks::When::PostStart, events)
                        .await?;
                    self.watch(c);
                    progress(events, "Container", name, "Started");
                } else {
                    progress(events, "Container", name, "Created");
                }
            }
            Op::Start {
                id, name, service, ..
            } => {
                self.dependencies(origin, service, name, events).await?;
                let number = self
                    .current(&origin.project.name, id)
                    .map_or(1, |c| c.number);
                self.pre_start(origin, service, number, events, pre_starts)
                    .await?;
                progress(events, "Container", name, "Starting");
                driver.start(id).await?;
                self.started(&origin.project.name, id);
                if let Some(c) = self.current(&origin.project.name, id) {
                    self.hooks(origin.project, &c, hooks::When::PostStart, events)
                        .await?;
                }
                progress(events, "Container", name, "Started");
            }
            Op::Restart { id, name, .. } => {
                progress(events, "Container", name, "Restarting");
                driver.restart(id, origin.timeout).await?;
                self.started(&origin.project.name, id);
                progress(events, "Container", name, "Restarted");
            }
        }
        Ok(())
    }

    /// A container was started in place: watched (again), and announced.
    fn started(self: &Arc<Self>, project: &str, id: &str) {
        if let Some(c) = self.current(project, id) {
            self.publish(&c, "start", &[]);
            self.watch(c);
        }
    }

    /// Waits for the `depends_on` conditions of `service` before its
    /// container `name` starts, telling the client what it waits for.
    async fn dependencies(
        &self,
        origin: &Origin<'_>,
        service: &str,
        name: &str,
        events: &Events,
    ) -> anyhow::Result<()> {
        if !origin.conditions {
            return Ok(());
        }
        let project = origin.project;
        for (dep, d) in &project.services[service].depends_on {
            let d = Dependency {
                service: dep.clone(),
                condition: Condition::parse(&d.condition),
                required: d.required,
                restart: d.restart,
            };
            if d.condition == Condition::Started {
                continue;
            }
            progress(events, "Container", name, &format!("Waiting for {dep}"));
            self.ready(&project.name, service, &d).await?;
            let done = if d.condition == Condition::Healthy {
                "Healthy"
            } else {
                "Exited"
            };
            for r in self.board.service(&project.name, dep) {
                progress(events, "Container", &r.container.name, done);
            }
        }
        Ok(())
    }
}

fn progress(events: &Events, object: &str, name: &str, action: &str) {
    events.send(Event::Progress {
        object: object.into(),
        name: name.into(),
        action: action.into(),
    })
}
