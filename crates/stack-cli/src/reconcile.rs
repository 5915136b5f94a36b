//! The engine's reconciler for projects: observe the containers and
//! networks a project has, plan with stack-plan (pure), carry the plan out
//! wave by wave, and tell the client what happens as it happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use stack_api::{
    Action, ActionRequest, ContainerSummary, DownRequest, Event, Events, LogsQuery, ProjectSummary,
    RunRequest, UpRequest,
};
use stack_engine::{network_name, volume_name, HealthConfig, Observed, Origin, ProbeResult};
use stack_model::{Project, Service};

use crate::container::{stack_root, RunArgs};

/// The host as the engine's driver: containers through the runtime,
/// networks through stack-net. Operations block (forks, netlink on their
/// own runtimes, waits for stops), so each runs on a thread of its own and
/// the engine awaits it.
pub struct Host {
    /// The store root everything of this host lives under.
    root: PathBuf,
}

impl Host {
    pub fn new(root: PathBuf) -> Host {
        Host { root }
    }
}

/// Runs `f` on a new thread; its result when it ends.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("an engine thread ended without an answer")))
}

impl stack_engine::Driver for Host {
    fn observe(&self, project: Option<&str>) -> anyhow::Result<Vec<Observed>> {
        let root = &self.root;
        Ok(crate::lifecycle::project_containers(root, project)
            .iter()
            .map(|(st, running)| crate::supervision::observed(root, st, *running))
            .collect())
    }

    fn networks(&self) -> anyhow::Result<Vec<String>> {
        Ok(crate::network::store()?
            .networks()?
            .into_iter()
            .map(|n| n.name)
            .collect())
    }

    async fn create_network(&self, project: &Project, key: &str, name: &str) -> anyhow::Result<()> {
        let (project, key, name) = (project.clone(), key.to_string(), name.to_string());
        blocking(move || create_network(&project, &key, &name)).await
    }

    async fn remove_network(&self, name: &str) -> anyhow::Result<()> {
        let name = name.to_string();
        blocking(move || {
            crate::async_runtime()?
                .block_on(stack_net::remove(&crate::network::store()?, &name))?;
            Ok(())
        })
        .await
    }

    async fn pull(&self, project: &Project, service: &str, policy: &str) -> anyhow::Result<bool> {
        let s = &project.services[service];
        let (image, platform, policy) = (
            image_of(service, s)?,
            s.platform.clone(),
            policy.to_string(),
        );
        blocking(move || ensure_image(&image, platform.as_deref(), &policy)).await
    }

    async fn run(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        name: &str,
    ) -> anyhow::Result<Observed> {
        let args = run_args(
            origin,
            service,
            &origin.project.services[service],
            number,
            name,
        )?;
        let root = self.root.clone();
        blocking(move || new_container(&root, &args)).await
    }

    async fn create(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        name: &str,
    ) -> anyhow::Result<Observed> {
        let args = RunArgs {
            create_only: true,
            ..run_args(
                origin,
                service,
                &origin.project.services[service],
                number,
                name,
            )?
        };
        let root = self.root.clone();
        blocking(move || new_container(&root, &args)).await
    }

    async fn start(&self, id: &str) -> anyhow::Result<()> {
        let id = id.to_string();
        let root = self.root.clone();
        blocking(move || crate::lifecycle::start_again(&root, &id).map(drop)).await
    }

    async fn restart(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        let id = id.to_string();
        let root = self.root.clone();
        blocking(move || crate::lifecycle::restart_one(&root, &id, timeout).map(drop)).await
    }

    async fn stop(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        let id = id.to_string();
        let root = self.root.clone();
        blocking(move || crate::lifecycle::stop_one(&root, &id, timeout).map(drop)).await
    }

    async fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        let (id, signal) = (id.to_string(), signal.to_string());
        let root = self.root.clone();
        blocking(move || crate::lifecycle::kill_one(&root, &id, &signal).map(drop)).await
    }

    async fn pause(&self, id: &str, paused: bool) -> anyhow::Result<()> {
        let id = id.to_string();
        let root = self.root.clone();
        blocking(move || crate::lifecycle::freeze(&root, &id, paused).map(drop)).await
    }

    fn paused(&self, id: &str) -> bool {
        crate::lifecycle::is_paused(id)
    }

    async fn remove(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        let id = id.to_string();
        let root = self.root.clone();
        blocking(move || crate::lifecycle::stop_and_remove(&root, &id, timeout).map(drop)).await
    }

    async fn wait(&self, id: &str) -> anyhow::Result<stack_engine::Exit> {
        crate::supervision::wait_exit(&self.root, id).await
    }

    async fn probe(&self, id: &str, health: &HealthConfig) -> ProbeResult {
        let (id, health) = (id.to_string(), health.clone());
        let root = self.root.clone();
        blocking(move || Ok(crate::supervision::probe(&root, &id, &health)))
            .await
            .unwrap_or_else(|e| ProbeResult {
                code: 1,
                output: format!("{e:#}"),
            })
    }

    async fn sync(
        &self,
        id: &str,
        trigger: &stack_engine::watch::Trigger,
        paths: &[PathBuf],
    ) -> anyhow::Result<usize> {
        let (id, trigger, paths) = (id.to_string(), trigger.clone(), paths.to_vec());
        let root = self.root.clone();
        blocking(move || crate::watch::sync(&root, &id, &trigger, &paths)).await
    }

    async fn exec(
        &self,
        id: &str,
        exec: &stack_engine::watch::Exec,
    ) -> anyhow::Result<(i32, String)> {
        let (id, exec) = (id.to_string(), exec.clone());
        let root = self.root.clone();
        blocking(move || crate::watch::exec(&root, &id, &exec)).await
    }

    fn remove_volume(&self, name: &str) -> anyhow::Result<bool> {
        let root = &self.root;
        Ok(stack_sys::remove_tree(root, &volume_dir(root, name)?)?)
    }

    fn remove_image(&self, name: &str) -> anyhow::Result<bool> {
        let store = crate::image::store()?;
        match crate::image::remove(&store, &[name.to_string()])?.remove(0) {
            Ok(_) => Ok(true),
            Err(stack_image::ImageError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn forget_project(&self, project: &str) -> anyhow::Result<()> {
        let root = &self.root;
        stack_sys::remove_tree(root, &project_dir(root, project)?)?;
        Ok(())
    }
}

/// Makes a service's container as `args` say (started or only created).
fn new_container(root: &Path, args: &RunArgs) -> anyhow::Result<Observed> {
    crate::container::run_container(root, args)?;
    let (_, st) = crate::lifecycle::find(root, args.name.as_deref().unwrap_or_default())?;
    let running = stack_runtime::state::alive(&st);
    Ok(crate::supervision::observed(root, &st, running))
}

/// The directory of named volume `name` under the root, from a checked name.
fn volume_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    stack_model::names::check(stack_model::names::Kind::Volume, name)?;
    Ok(stack_sys::join(&root.join("volumes"), name)?)
}

/// A label of a container, or "".
pub fn label(st: &stack_runtime::State, key: &str) -> String {
    st.spec.labels.get(key).cloned().unwrap_or_default()
}

/// Runs an engine operation to its end on this (non-async) thread.
pub fn run_engine<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// The engine of this host: `up`, `down` and supervision on the `Host`.
pub type HostEngine = std::sync::Arc<stack_engine::Engine<Host>>;

pub fn up(engine: &HostEngine, req: &UpRequest, events: &Events) -> anyhow::Result<()> {
    run_engine(engine.up(req, events))
}

pub fn down(engine: &HostEngine, req: &DownRequest, events: &Events) -> anyhow::Result<()> {
    run_engine(engine.down(req, events))
}

/// The containers of a project, as `ps` shows them (with what the engine
/// saw of their health and restarts), and the services that wait for a
/// dependency before their first container.
pub fn containers(
    engine: &HostEngine,
    project: &str,
    all: bool,
) -> anyhow::Result<Vec<ContainerSummary>> {
    let mut rows = crate::lifecycle::project_containers(&stack_root(), Some(project));
    let board = engine.board();
    let restarting = |id: &str| {
        matches!(
            board.get(id).map(|r| r.state),
            Some(stack_engine::RunState::Restarting(_))
        )
    };
    rows.retain(|(st, running)| all || *running || restarting(&st.id));
    rows.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut out = rows
        .into_iter()
        .map(|(st, _)| {
            let record = board.get(&st.id);
            let health = record.as_ref().and_then(|r| r.health.clone());
            let mut status = crate::lifecycle::status_of(&st);
            let state = match st.status {
                _ if restarting(&st.id) => {
                    status = format!("Restarting ({})", st.exit_code.unwrap_or_default());
                    "restarting"
                }
                stack_runtime::Status::Running if crate::lifecycle::is_paused(&st.id) => "paused",
                stack_runtime::Status::Running => "running",
                stack_runtime::Status::Created => "created",
                stack_runtime::Status::Exited => "exited",
            };
            if let (Some(h), "running") = (&health, state) {
                status = format!("{status} ({})", h.status);
            }
            Ok(ContainerSummary {
                // As `docker ps` shows them: `0.0.0.0:8080->80/tcp`.
                ports: crate::network::ports_of(&st.id)?
                    .into_iter()
                    .map(|l| match l.split_once(" -> ") {
                        Some((inside, host)) => format!("{host}->{inside}"),
                        None => l,
                    })
                    .collect(),
                service: label(&st, stack_plan::LABEL_SERVICE),
                number: label(&st, stack_plan::LABEL_NUMBER).parse().unwrap_or(0),
                image: st.spec.image.clone(),
                command: st.spec.args.join(" "),
                state: state.into(),
                status,
                exit_code: st.exit_code,
                health: health
                    .as_ref()
                    .map(|h| h.status.to_string())
                    .unwrap_or_default(),
                health_log: health
                    .map(|h| h.log.into_iter().map(|p| p.output).collect())
                    .unwrap_or_default(),
                restarts: record.map_or(0, |r| r.restarts),
                labels: st.spec.labels.clone(),
                id: st.id,
                name: st.name,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (service, why) in board.waiting(project) {
        out.push(ContainerSummary {
            id: String::new(),
            name: String::new(),
            service,
            number: 0,
            image: String::new(),
            command: String::new(),
            state: "waiting".into(),
            status: why,
            exit_code: None,
            health: String::new(),
            health_log: Vec::new(),
            restarts: 0,
            ports: Vec::new(),
            labels: BTreeMap::new(),
        });
    }
    Ok(out)
}

/// Every project with containers here, as `docker compose ls` shows them.
pub fn projects() -> Vec<ProjectSummary> {
    let mut by_project: BTreeMap<String, (BTreeMap<&'static str, usize>, String)> = BTreeMap::new();
    for (st, running) in crate::lifecycle::project_containers(&stack_root(), None) {
        let entry = by_project
            .entry(label(&st, stack_plan::LABEL_PROJECT))
            .or_default();
        let state = match st.status {
            _ if running => "running",
            stack_runtime::Status::Created => "created",
            _ => "exited",
        };
        *entry.0.entry(state).or_default() += 1;
        entry.1 = label(&st, LABEL_CONFIG_FILES);
    }
    by_project
        .into_iter()
        .map(|(name, (counts, config_files))| ProjectSummary {
            name,
            status: counts
                .iter()
                .map(|(s, n)| format!("{s}({n})"))
                .collect::<Vec<_>>()
                .join(", "),
            config_files,
        })
        .collect()
}

/// stop, start, restart, kill, pause, unpause, rm on a project's
/// containers, through the engine (`Engine::act`).
pub fn act(
    engine: &HostEngine,
    action: Action,
    req: &ActionRequest,
    events: &Events,
) -> anyhow::Result<()> {
    run_engine(engine.act(action, req, events))
}

/// The output of a project's containers (not its one-offs: `container
/// logs` shows theirs), oldest first; with `follow`, what
/// comes next too (containers that appear, restart or are recreated
/// included) until the client goes away, and after each run's last record
/// that it exited. Memory stays a chunk per container whatever the logs'
/// sizes: `tail` reads each log backwards from its end, the logs are merged
/// by time a chunk at a time, and following reads on from where it was.
pub fn logs(project: &str, q: &LogsQuery, events: &Events) -> anyhow::Result<()> {
    use std::collections::{HashMap, VecDeque};
    struct Followed {
        name: String,
        /// `service-N`.
        replica: String,
        log: stack_runtime::logs::Follower,
        /// Records read and not yet sent, oldest first.
        pending: VecDeque<stack_runtime::logs::Record>,
        /// When the run it was last said to have exited ended.
        exit_told: Option<String>,
    }
    let root = stack_root();
    let mut followers: HashMap<String, Followed> = HashMap::new();
    let mut first = true;
    let mut quiet_since = std::time::Instant::now();
    loop {
        // Who is there now: new containers join, removed ones leave.
        // (A state read before the log: once it says exited, the log
        // read after it holds all the run wrote.)
        let mine = crate::lifecycle::project_containers(&root, Some(project));
        let mut seen = Vec::new();
        let mut exits = Vec::new();
        for (st, _) in &mine {
            let service = label(st, stack_plan::LABEL_SERVICE);
            if (!q.services.is_empty() && !q.services.contains(&service))
                || label(st, crate::supervision::LABEL_ONEOFF) == "True"
            {
                continue;
            }
            seen.push(st.id.clone());
            let f = followers.entry(st.id.clone()).or_insert_with(|| {
                let path =
                    stack_runtime::state::log_path(&stack_runtime::container_dir(&root, &st.id));
                let mut log = stack_runtime::logs::Follower::new(path);
                if !q.follow {
                    log = log.to_current_end();
                }
                // The first time, the last N of what is there (later
                // containers come whole).
                let pending = match q.tail {
                    Some(n) if first => log.tail(n, |r| q.wants(&r.time)).into(),
                    _ => VecDeque::new(),
                };
                Followed {
                    name: st.name.clone(),
                    replica: format!("{service}-{}", label(st, stack_plan::LABEL_NUMBER)),
                    log,
                    pending,
                    exit_told: None,
                }
            });
            if st.status == stack_runtime::state::Status::Exited && f.exit_told != st.finished_at {
                f.exit_told = st.finished_at.clone();
                exits.push(Event::Exited {
                    container: f.name.clone(),
                    service: f.replica.clone(),
                    exit_code: st.exit_code.unwrap_or(-1),
                });
            }
        }
        followers.retain(|id, _| seen.contains(id));
        first = false;
        // Merged by time: the oldest record of any container goes next,
        // each container's log read on (a chunk) when its records run out,
        // until every log is read to its end.
        let mut done = std::collections::HashSet::new();
        let mut sent = 0usize;
        loop {
            for (id, f) in followers.iter_mut() {
                while f.pending.is_empty() && !done.contains(id) {
                    let (records, bad) = f.log.read_new();
                    if records.is_empty() && bad.is_empty() {
                        done.insert(id.clone());
                    }
                    f.pending
                        .extend(records.into_iter().filter(|r| q.wants(&r.time)));
                }
            }
            let Some(f) = followers
                .values_mut()
                .filter(|f| !f.pending.is_empty())
                .min_by(|a, b| a.pending[0].time.cmp(&b.pending[0].time))
            else {
                break;
            };
            let r = f.pending.pop_front().expect("a pending record");
            events.send_paced(Event::Log {
                container: f.name.clone(),
                service: f.replica.clone(),
                stream: r.stream,
                time: r.time,
                log: r.log,
            });
            sent += 1;
            if sent.is_multiple_of(1024) && events.gone() {
                return Ok(());
            }
        }
        if sent > 0 {
            quiet_since = std::time::Instant::now();
        }
        if !q.follow {
            return Ok(());
        }
        for e in exits {
            events.send(e);
        }
        if events.gone() {
            return Ok(());
        }
        if quiet_since.elapsed() > std::time::Duration::from_secs(2) {
            events.send(Event::Heartbeat);
            quiet_since = std::time::Instant::now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";

/// What `container run` needs for replica `number` of a service.
fn run_args(
    origin: &Origin<'_>,
    service: &str,
    s: &Service,
    number: u32,
    name: &str,
) -> anyhow::Result<RunArgs> {
    let project = origin.project;
    let image = image_of(service, s)?;
    let mut a = RunArgs {
        detach: true,
        quiet: true,
        name: Some(name.to_string()),
        args: std::iter::once(image.clone())
            .chain(s.command.clone().map(|c| c.0).unwrap_or_default())
            .collect(),
        ..RunArgs::default()
    };
    a.entrypoint = s.entrypoint.clone().map(|e| e.0);
    a.env = s
        .environment
        .0
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    a.workdir = s.working_dir.clone();
    a.user = s.user.clone();
    a.hostname = s.hostname.clone();
    a.domainname = s.domainname.clone();
    a.cap_add = s.cap_add.clone();
    a.cap_drop = s.cap_drop.clone();
    a.privileged = s.privileged;
    a.read_only = s.read_only;
    a.tty = s.tty;
    a.interactive = s.stdin_open;
    a.no_init = s.init == Some(false);
    (a.health, a.no_healthcheck) = crate::supervision::health_of(service, s)?;
    a.restart = crate::supervision::restart_of(service, s)?;
    a.stop_signal = s.stop_signal.clone();
    a.stop_timeout = s
        .stop_grace_period
        .map(|d| (d.as_nanos() / 1_000_000_000).max(0) as u64);
    a.security_opt = s.security_opt.clone();
    a.tmpfs = s.tmpfs.0.clone();
    a.dns = s.dns.0.clone();
    a.dns_search = s.dns_search.0.clone();
    a.dns_option = s.dns_opt.clone();
    a.add_host = s
        .extra_hosts
        .0
        .iter()
        .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}:{ip}")))
        .collect();
    a.memory = s.mem_limit.map(|b| b.0.to_string());
    a.cpus = s.cpus.map(|c| f64::from(c.0));
    a.pids_limit = s.pids_limit;
    a.shm_size = s.shm_size.map(|b| b.0.to_string());
    a.sysctls = s
        .sysctls
        .0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    a.labels = s.labels.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (k, v) in [
        (stack_plan::LABEL_PROJECT, project.name.clone()),
        (stack_plan::LABEL_SERVICE, service.to_string()),
        (stack_plan::LABEL_NUMBER, number.to_string()),
        (stack_plan::LABEL_HASH, stack_plan::hash_service(s)),
        (LABEL_WORKING_DIR, origin.working_dir.to_string()),
        (LABEL_CONFIG_FILES, origin.config_files.join(",")),
        (
            crate::supervision::LABEL_DEPENDS_ON,
            crate::supervision::depends_label(s),
        ),
    ] {
        a.labels.push(format!("{k}={v}"));
    }
    for p in &s.ports {
        let mut spec = String::new();
        if let Some(ip) = &p.host_ip {
            spec.push_str(&if ip.contains(':') {
                format!("[{ip}]:")
            } else {
                format!("{ip}:")
            });
        }
        match p.published.as_ref().and_then(|t| t.0.clone()) {
            Some(pubd) => spec.push_str(&format!(
                "{}:",
                replica_port(&pubd, number).with_context(|| format!("service {service}"))?
            )),
            None if p.host_ip.is_some() => spec.push(':'),
            None => {}
        }
        spec.push_str(&format!(
            "{}/{}",
            p.target,
            p.protocol.as_deref().unwrap_or("tcp")
        ));
        a.publish.push(spec);
    }
    for v in &s.volumes {
        match v.kind.as_str() {
            "bind" => {
                let src = v.source.clone().unwrap_or_default();
                if !Path::new(&src).exists() {
                    if v.bind.as_ref().is_some_and(|b| !b.create_host_path) {
                        bail!(
                            "service {service}: bind source `{src}` does not exist (create_host_path: false)"
                        );
                    }
                    std::fs::create_dir_all(&src)
                        .with_context(|| format!("service {service}: cannot create `{src}`"))?;
                }
                // `bind.recursive`, as compose documents it: the mounts under
                // the source come along (read-only with a read-only bind)
                // unless `disabled`; `writable` keeps them writable under a
                // read-only bind; `writable` and `readonly` need `read_only`.
                use stack_runtime::Recursive;
                let option = v.bind.as_ref().and_then(|b| b.recursive.as_deref());
                let recursive = match option {
                    None | Some("enabled") => Recursive::Enabled,
                    Some("disabled") => Recursive::Disabled,
                    Some("writable") => Recursive::Writable,
                    Some("readonly") => Recursive::Readonly,
                    Some(other) => bail!(
                        "service {service}: volume `{}`: bind.recursive `{other}` is not one of enabled, disabled, writable, readonly",
                        v.target
                    ),
                };
                if matches!(recursive, Recursive::Writable | Recursive::Readonly) && !v.read_only {
                    bail!(
                        "service {service}: volume `{}`: bind.recursive `{}` needs read_only: true",
                        v.target,
                        option.unwrap_or_default()
                    );
                }
                if recursive == Recursive::Enabled {
                    a.volumes.push(format!(
                        "{src}:{}{}",
                        v.target,
                        if v.read_only { ":ro" } else { "" }
                    ));
                } else {
                    a.extra_mounts.push(stack_runtime::Mount {
                        kind: "bind".into(),
                        source: src.into(),
                        target: v.target.clone(),
                        read_only: v.read_only,
                        size: None,
                        recursive,
                    });
                }
            }
            "tmpfs" => a.tmpfs.push(v.target.clone()),
            "volume" => a.extra_mounts.push(match &v.source {
                Some(n) => named_volume(project, n, &v.target, v.read_only)?,
                // Anonymous: in the container's directory, gone with it.
                None => stack_runtime::Mount {
                    kind: "volume".into(),
                    source: PathBuf::new(),
                    target: v.target.clone(),
                    read_only: v.read_only,
                    size: None,
                    recursive: Default::default(),
                },
            }),
            other => bail!("service {service}: volumes of type `{other}` are not supported yet"),
        }
    }
    for from in &s.volumes_from {
        a.extra_mounts
            .extend(volumes_from(project, from).with_context(|| format!("service {service}"))?);
    }
    a.extra_mounts.extend(file_objects(project, service, s)?);
    match s.network_mode.as_deref() {
        Some("host") => a.network = vec!["host".into()],
        Some("none") => a.network = vec!["none".into()],
        Some(m) if m.starts_with("container:") => a.network = vec![m.to_string()],
        Some(m) if m.starts_with("service:") => {
            let other = &m["service:".len()..];
            a.network = vec![format!("container:{}-{other}-1", project.name)];
        }
        Some(m) => bail!("service {service}: network_mode `{m}` is not supported"),
        None => {
            let mut nets: Vec<(&String, &Option<stack_model::ServiceNetwork>)> =
                s.networks.iter().collect();
            nets.sort_by_key(|(_, n)| std::cmp::Reverse(n.as_ref().map_or(0, |n| n.gw_priority)));
            a.network = nets.iter().map(|(k, _)| network_name(project, k)).collect();
            a.network_alias = std::iter::once(service.to_string())
                .chain(
                    nets.iter()
                        .flat_map(|(_, n)| n.iter().flat_map(|n| n.aliases.clone())),
                )
                .collect();
            if let Some((_, Some(first))) = nets.first() {
                a.ip = first.ipv4_address.clone();
                a.ip6 = first.ipv6_address.clone();
                a.mac_address = first.mac_address.clone().or_else(|| s.mac_address.clone());
            }
        }
    }
    Ok(a)
}

/// The host port of replica `number` from a published `port` that may be
/// a range (`8080-8084`): replicas take its ports in turn.
fn replica_port(published: &str, number: u32) -> anyhow::Result<String> {
    let Some((a, b)) = published.split_once('-') else {
        return Ok(published.to_string());
    };
    let (Ok(first), Ok(last)) = (a.parse::<u32>(), b.parse::<u32>()) else {
        bail!("invalid published port range `{published}`");
    };
    let port = first + number.max(1) - 1;
    if port > last {
        bail!("published port range `{published}` has no port left for replica {number}");
    }
    Ok(port.to_string())
}

/// The mount of named volume `key`: a directory under the root (seeded
/// from the image), or what the local driver's options say (`type: none`
/// with `o: bind` and a `device` directory, or `type: tmpfs`).
fn named_volume(
    project: &Project,
    key: &str,
    target: &str,
    read_only: bool,
) -> anyhow::Result<stack_runtime::Mount> {
    let name = volume_name(project, key);
    let decl = project.volumes.get(key);
    if let Some(d) = decl.and_then(|v| v.driver.as_deref()) {
        if d != "local" {
            bail!("volume {name}: driver `{d}` is not supported (only `local`)");
        }
    }
    let opts = decl.map(|v| &v.driver_opts.0);
    let opt = |k: &str| opts.and_then(|o| o.get(k)).map(String::as_str);
    let mount = |kind: &str, source: PathBuf, size| stack_runtime::Mount {
        kind: kind.into(),
        source,
        target: target.into(),
        read_only,
        size,
        recursive: Default::default(),
    };
    match opt("type") {
        None => {
            let dir = volume_dir(&stack_root(), &name)?;
            stack_sys::private_dir(dir.parent().expect("under the root"))?;
            let source = dir.join("_data");
            if decl.is_some_and(|v| v.external.0) && !source.exists() {
                bail!("volume {name} declared as external, but could not be found");
            }
            Ok(mount("volume", source, None))
        }
        Some("none") if opt("o").is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind")) => {
            let device = opt("device").unwrap_or_default();
            if !Path::new(device).is_dir() {
                bail!("volume {name}: device `{device}` is not a directory on this host");
            }
            Ok(mount("bind", device.into(), None))
        }
        Some("tmpfs") => {
            let mut size = None;
            for o in opt("o").unwrap_or_default().split(',').filter(|o| !o.is_empty()) {
                match o.split_once('=') {
                    Some(("size", n)) => size = Some(crate::container::bytes(n)? as u64),
                    _ => bail!("volume {name}: tmpfs option `{o}` is not supported (size is)"),
                }
            }
            Ok(mount("tmpfs", PathBuf::new(), size))
        }
        Some(t) => bail!(
            "volume {name}: driver_opts type `{t}` is not supported (a directory of the engine's, `type: none` + `o: bind` + `device`, or `type: tmpfs`)"
        ),
    }
}

/// `volumes_from: [SERVICE | container:NAME][:ro|:rw]`: the other
/// container's volumes and binds, at the same targets.
fn volumes_from(project: &Project, from: &str) -> anyhow::Result<Vec<stack_runtime::Mount>> {
    let (who, mode) = match from.rsplit_once(':') {
        Some((w, m)) if m == "ro" || m == "rw" => (w, Some(m == "ro")),
        _ => (from, None),
    };
    let key = match who.strip_prefix("container:") {
        Some(name) => name.to_string(),
        None => format!("{}-{who}-1", project.name),
    };
    let (_, st) = crate::lifecycle::find(&stack_root(), &key)
        .with_context(|| format!("volumes_from `{from}`"))?;
    Ok(st
        .spec
        .mounts
        .into_iter()
        .filter(|m| m.kind != "tmpfs")
        .map(|mut m| {
            m.read_only = mode.unwrap_or(m.read_only);
            m
        })
        .collect())
}

/// Creates a project's network (and the DNS server that answers on it).
fn create_network(project: &Project, key: &str, name: &str) -> anyhow::Result<()> {
    let n = &project.networks[key];
    fn parse<T: std::str::FromStr>(
        key: &str,
        what: &str,
        v: &Option<String>,
    ) -> anyhow::Result<Option<T>> {
        v.as_deref()
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| anyhow::anyhow!("network {key}: invalid {what} `{s}`"))
            })
            .transpose()
    }
    let mut subnets = Vec::new();
    for c in &n.ipam.config {
        subnets.push(stack_net::SubnetRequest {
            subnet: parse(key, "subnet", &c.subnet)?,
            gateway: parse(key, "gateway", &c.gateway)?,
            ip_range: parse(key, "ip_range", &c.ip_range)?,
            aux_addresses: c
                .aux_addresses
                .0
                .values()
                .map(|v| {
                    v.parse()
                        .with_context(|| format!("network {key}: invalid aux address `{v}`"))
                })
                .collect::<anyhow::Result<_>>()?,
        });
    }
    let mut labels = n.labels.0.clone();
    labels.insert("com.docker.compose.project".into(), project.name.clone());
    labels.insert("com.docker.compose.network".into(), key.to_string());
    let opts = stack_net::CreateOptions {
        name: name.to_string(),
        driver: n.driver.clone(),
        driver_opts: n.driver_opts.0.clone(),
        subnets,
        ipv6: n.enable_ipv6.unwrap_or(false),
        internal: n.internal,
        labels,
    };
    crate::network::create(&opts)?;
    Ok(())
}

/// For a one-off container of `service` (`stack run`): the project's
/// networks it joins, created if missing.
pub fn run_networks(project: &Project, service: &Service) -> anyhow::Result<()> {
    let have = stack_engine::Driver::networks(&Host::new(stack_root()))?;
    if service.network_mode.is_some() {
        return Ok(());
    }
    for key in service.networks.keys() {
        let name = network_name(project, key);
        if !have.contains(&name) {
            if project.networks.get(key).is_some_and(|n| n.external.0) {
                bail!("network {name} declared as external, but could not be found");
            }
            create_network(project, key, &name)?;
        }
    }
    Ok(())
}

/// The arguments of the one-off container `req` asks for (`stack run`)
/// of its service `s`: the service's, labelled as compose labels them (so `up` leaves it
/// alone), with the request's command, entrypoint, environment, user,
/// working directory and ports over them.
pub fn one_off_args(req: &RunRequest, s: &Service) -> anyhow::Result<RunArgs> {
    let project = &req.project;
    let origin = Origin {
        project,
        working_dir: "",
        config_files: &[],
        timeout: None,
        conditions: false,
    };
    ensure_image(
        &image_of(&req.service, s)?,
        s.platform.as_deref(),
        stack_engine::pull_policy(None, s),
    )?;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => format!(
            "{}-{}-run-{}",
            project.name,
            req.service,
            &crate::container::random_id()?[..12]
        ),
    };
    let mut a = run_args(&origin, &req.service, s, 1, &name)?;
    a.labels
        .push(format!("{}=True", crate::supervision::LABEL_ONEOFF));
    if !req.service_ports {
        a.publish.clear();
    }
    a.publish.extend(req.publish.iter().cloned());
    if !req.command.is_empty() {
        a.args.truncate(1);
        a.args.extend(req.command.iter().cloned());
    }
    if req.entrypoint.is_some() {
        a.entrypoint = req.entrypoint.clone();
    }
    a.env.extend(req.env.iter().cloned());
    if req.user.is_some() {
        a.user = req.user.clone();
    }
    if req.workdir.is_some() {
        a.workdir = req.workdir.clone();
    }
    a.detach = req.detach;
    a.rm = req.rm;
    a.quiet = true;
    a.tty = req.tty && !req.detach;
    a.console_size = req.console_size;
    a.interactive = req.interactive && !req.detach;
    Ok(a)
}

/// Where a project keeps what it writes for its containers (secrets and
/// configs given as content); removed by `down`.
fn project_dir(root: &Path, project: &str) -> anyhow::Result<PathBuf> {
    stack_model::names::check(stack_model::names::Kind::Project, project)?;
    Ok(stack_sys::join(&root.join("projects"), project)?)
}

/// A service's secrets and configs as read-only bind mounts: secrets at
/// `/run/secrets/NAME` (or their target), configs at `/NAME` (or theirs).
/// A `file` is mounted as it is (edits show, as with compose); `content`
/// (and `environment`, which the client turned into content) is written
/// under the root with the reference's mode, uid and gid: a file of each
/// reference's own (`projects/P/SERVICE/secrets/N`, N its place in the
/// service's list), so two references do not share one mode or owner, in
/// directories only root may enter.
fn file_objects(
    project: &Project,
    service: &str,
    s: &Service,
) -> anyhow::Result<Vec<stack_runtime::Mount>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut mounts = Vec::new();
    for (kind, refs, objects) in [
        ("secret", &s.secrets, &project.secrets),
        ("config", &s.configs, &project.configs),
    ] {
        for (i, r) in refs.iter().enumerate() {
            let what = format!("service {service}: {kind} `{}`", r.source);
            let obj = objects
                .get(&r.source)
                .ok_or_else(|| anyhow::anyhow!("{what} is not declared"))?;
            if obj.external.0 {
                bail!("{what} is external: external {kind}s need a swarm, which stack is not");
            }
            let target = match (kind, r.target.as_deref()) {
                (_, Some(t)) if t.starts_with('/') => t.to_string(),
                ("secret", t) => format!("/run/secrets/{}", t.unwrap_or(&r.source)),
                (_, t) => format!("/{}", t.unwrap_or(&r.source)),
            };
            let source = match (&obj.file, &obj.content) {
                (Some(file), _) => {
                    let path = std::path::PathBuf::from(file);
                    if !path.exists() {
                        bail!("{what}: file `{file}` does not exist");
                    }
                    path
                }
                (None, Some(content)) => {
                    stack_model::names::check(stack_model::names::Kind::Service, service)?;
                    let dir =
                        stack_sys::join(&project_dir(&stack_root(), &project.name)?, service)?
                            .join(format!("{kind}s"));
                    stack_sys::private_dir(&dir)?;
                    let path = dir.join(i.to_string());
                    let mut file = stack_sys::private_file(&path)?;
                    std::io::Write::write_all(&mut file, content.as_bytes())
                        .with_context(|| format!("{what}: cannot write `{}`", path.display()))?;
                    let mode = r.mode.as_ref().map_or(0o444, |m| m.0);
                    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                    let id = |v: &Option<stack_model::Text>, which: &str| {
                        v.as_ref()
                            .and_then(|t| t.0.as_deref())
                            .map(|t| {
                                t.parse::<u32>().map_err(|_| {
                                    anyhow::anyhow!("{what}: {which} `{t}` is not a number")
                                })
                            })
                            .transpose()
                    };
                    std::os::unix::fs::chown(&path, id(&r.uid, "uid")?, id(&r.gid, "gid")?)?;
                    path
                }
                (None, None) => bail!("{what} has neither `file` nor `content`"),
            };
            mounts.push(stack_runtime::Mount {
                kind: "bind".into(),
                source,
                target,
                read_only: true,
                size: None,
                recursive: Default::default(),
            });
        }
    }
    Ok(mounts)
}

/// The service's image, or why it has none.
fn image_of(service: &str, s: &Service) -> anyhow::Result<String> {
    s.image.clone().ok_or_else(|| {
        anyhow::anyhow!("service {service} has no image (builds are not supported yet)")
    })
}

/// Pulls `image` as `policy` (`always`, `missing`, `never`) says; true if it did.
fn ensure_image(image: &str, platform: Option<&str>, policy: &str) -> anyhow::Result<bool> {
    let store = crate::image::store()?;
    if store.lookup(image).is_ok() && policy != "always" {
        return Ok(false);
    }
    if policy == "never" {
        bail!("image `{image}` is not here and the pull policy is never");
    }
    crate::registry::pull(image, platform, true)
        .with_context(|| format!("image `{image}` is not here"))?;
    Ok(true)
}
