//! The engine's reconciler: observe what a project has through a
//! [`Driver`], decide with stack-plan (pure), carry the plan out wave by
//! wave (the tasks of a wave concurrently, at most `parallel` operations at
//! once), and tell the client what happens as it happens.
//!
//! This crate knows no runtime, network or image code: the host's driver
//! lives with the binary, and the tests drive a fake one on tokio's paused
//! clock.

use std::future::Future;

use anyhow::bail;
use stack_api::{DownRequest, Event, Events, UpRequest};
use stack_model::{Project, Service};
use stack_plan::{Existing, Op, Plan, Wanted, WantedNetwork};
use tokio::sync::Semaphore;

/// Operations at once when the request does not say (`--parallel`, or
/// `COMPOSE_PARALLEL_LIMIT` in the client's environment): enough for a stack's independent services to
/// start together, few enough that a 200-service stack does not fork 200
/// containers at the same instant.
pub const DEFAULT_PARALLEL: usize = 16;

/// What the engine does to the host. Observations are quick reads;
/// operations may take long (they start processes, wire networks, wait for
/// stops) and are awaited, so a slow one never holds up the others.
pub trait Driver: Sync {
    /// The project's containers (one-off `run` containers excluded).
    fn containers(&self, project: &str) -> anyhow::Result<Vec<Existing>>;
    /// The names of the networks the host has.
    fn networks(&self) -> anyhow::Result<Vec<String>>;
    fn create_network(
        &self,
        project: &Project,
        key: &str,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Makes sure the service's image is here: `policy` is `always`,
    /// `missing` or `never`. True if it was pulled.
    fn pull(
        &self,
        project: &Project,
        service: &str,
        policy: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Creates and starts replica `number` of `service` (its image is
    /// here) as `name`.
    fn run(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Starts a stopped container again, in place.
    fn start(&self, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops (as `remove` does) and starts again, in place.
    fn restart(
        &self,
        id: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops (waiting up to `timeout` seconds, else the container's own)
    /// and removes.
    fn remove(
        &self,
        id: &str,
        timeout: Option<u64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Removes a named volume; false if there was none.
    fn remove_volume(&self, name: &str) -> anyhow::Result<bool>;
    /// Removes what the engine wrote for the project (secrets, configs).
    fn forget_project(&self, project: &str) -> anyhow::Result<()>;
}

/// Where a project comes from, recorded on its containers as compose does.
pub struct Origin<'a> {
    pub project: &'a Project,
    pub working_dir: &'a str,
    pub config_files: &'a [String],
    /// Seconds to wait for stops before SIGKILL, over the services' own.
    pub timeout: Option<u64>,
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

fn parallel(asked: Option<usize>) -> usize {
    asked.filter(|n| *n > 0).unwrap_or(DEFAULT_PARALLEL)
}

/// `up`: the services (and their dependencies) as the file says.
pub async fn up<D: Driver>(driver: &D, req: &UpRequest, events: &Events) -> anyhow::Result<()> {
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
            hash: stack_loader::hash_service(s),
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
    let mut have = driver.containers(&project.name)?;
    if !selected.is_empty() {
        // Others are left alone, not orphans.
        have.retain(|e| {
            selected.contains(&e.service) || !project.services.contains_key(&e.service)
        });
    }
    let opts = stack_plan::UpOptions {
        force_recreate: req.force_recreate,
        no_recreate: req.no_recreate,
        remove_orphans: req.remove_orphans,
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
        for (i, wave) in plan.waves.iter().enumerate() {
            for op in wave.iter().flatten() {
                events.send(Event::Plan {
                    line: format!("step {}: {op}", i + 1),
                });
            }
        }
        return Ok(());
    }
    pull(driver, req, &plan, events).await?;
    let origin = Origin {
        project,
        working_dir: &req.working_dir,
        config_files: &req.config_files,
        timeout: None,
    };
    execute(driver, &origin, &plan, events, parallel(req.parallel)).await
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
async fn pull<D: Driver>(
    driver: &D,
    req: &UpRequest,
    plan: &Plan,
    events: &Events,
) -> anyhow::Result<()> {
    let mut services: Vec<&str> = plan
        .ops()
        .filter_map(|op| match op {
            Op::Run { service, .. } => Some(service.as_str()),
            _ => None,
        })
        .collect();
    services.sort();
    services.dedup();
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
pub async fn down<D: Driver>(driver: &D, req: &DownRequest, events: &Events) -> anyhow::Result<()> {
    let project = &req.project;
    let graph = stack_graph::Graph::from_project(project);
    let waves = graph
        .stop_waves()
        .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
    let mut have = driver.containers(&project.name)?;
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
    };
    execute(driver, &origin, &plan, events, parallel(req.parallel)).await?;
    if req.volumes {
        for (key, v) in &project.volumes {
            if v.external.0 {
                continue;
            }
            let name = volume_name(project, key);
            if driver.remove_volume(&name)? {
                progress(events, "Volume", &name, "Removed");
            }
        }
    }
    driver.forget_project(&project.name)
}

fn progress(events: &Events, object: &str, name: &str, action: &str) {
    events.send(Event::Progress {
        object: object.into(),
        name: name.into(),
        action: action.into(),
    })
}

/// Runs the plan: waves one after the other; the tasks of a wave
/// concurrently, the operations of a task in order, at most `parallel`
/// operations at once. Every failure of a wave is reported; the first wave
/// with one is the last.
pub async fn execute<D: Driver>(
    driver: &D,
    origin: &Origin<'_>,
    plan: &Plan,
    events: &Events,
    parallel: usize,
) -> anyhow::Result<()> {
    let slots = &Semaphore::new(parallel.max(1));
    for wave in &plan.waves {
        let results = futures::future::join_all(wave.iter().map(|task| async move {
            for op in task {
                let _slot = slots.acquire().await.expect("never closed");
                run_op(driver, origin, op, events).await?;
            }
            anyhow::Ok(())
        }))
        .await;
        failures(results)?;
    }
    Ok(())
}

async fn run_op<D: Driver>(
    driver: &D,
    origin: &Origin<'_>,
    op: &Op,
    events: &Events,
) -> anyhow::Result<()> {
    match op {
        Op::CreateNetwork { key, name } => {
            driver.create_network(origin.project, key, name).await?;
            progress(events, "Network", name, "Created");
        }
        Op::RemoveNetwork { name } => {
            driver.remove_network(name).await?;
            progress(events, "Network", name, "Removed");
        }
        Op::Remove { id, name, .. } => {
            driver.remove(id, origin.timeout).await?;
            progress(events, "Container", name, "Removed");
        }
        Op::Run {
            service,
            number,
            name,
            ..
        } => {
            driver
                .run(origin, service, *number, name)
                .await
                .map_err(|e| e.context(format!("service {service}")))?;
            progress(events, "Container", name, "Started");
        }
        Op::Start { id, name, .. } => {
            driver.start(id).await?;
            progress(events, "Container", name, "Started");
        }
        Op::Restart { id, name, .. } => {
            driver.restart(id, origin.timeout).await?;
            progress(events, "Container", name, "Restarted");
        }
    }
    Ok(())
}
