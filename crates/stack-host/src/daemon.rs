//! The daemon: `stack daemon`, one per store root, serving the API of
//! stack-api on `$STACK_ROOT/engine.sock` with stack-engine on the host's
//! driver.
//!
//! Containers do not depend on the engine: each has its own monitor
//! process (stack-runtime) that keeps its log and records its exit. So a
//! crashed or killed engine loses nothing; the next one reads the state on
//! disk (re-adoption) and sweeps what an operation cut short left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use stack_api::{
    Action, ActionRequest, ApiError, ArchiveQuery, ContainerSummary, Copied, DownRequest, Events,
    EventsQuery, ExecRequest, ImageSummary, LogsQuery, ProjectSummary, PullRequest, RunRequest,
    Session, Stats, Top, UpRequest, WatchRequest,
};

use crate::containers::label;
use crate::Host;
use crate::{api_error, HostEngine};

/// The API on the host's engine.
struct Daemon {
    host: Host,
    engine: HostEngine,
    locks: Arc<Locks>,
    watches: crate::watch::Watches,
    binary: String,
}

/// Projects are changed one operation at a time each; a stopping engine
/// lets the operations under way end first.
#[derive(Default)]
struct Locks {
    busy: Mutex<std::collections::HashMap<String, Arc<Mutex<()>>>>,
    working: std::sync::atomic::AtomicUsize,
    /// Told when the last operation under way ends, and as each request
    /// of the Docker API is answered.
    idle: Arc<tokio::sync::Notify>,
}

impl Locks {
    fn exclusive<T>(&self, project: &str, f: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering;
        self.working.fetch_add(1, Ordering::SeqCst);
        let lock = self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(project.to_string())
            .or_default()
            .clone();
        let out = {
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            f()
        };
        if self.working.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_one();
        }
        out
    }

    /// Each time the engine has been told nothing for a moment (the last
    /// operation done, its reply sent meanwhile) and no operation runs, it
    /// gives back to the kernel what they freed and the code they ran: an
    /// idle engine keeps what supervision and the APIs' waiting touch, and
    /// the next operation faults back in, from the page cache, what it
    /// runs.
    async fn rest(&self) {
        loop {
            self.idle.notified().await;
            while tokio::time::timeout(Duration::from_millis(300), self.idle.notified())
                .await
                .is_ok()
            {}
            if self.working.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                // (It walks the page tables: not on a worker.)
                let _ = tokio::task::spawn_blocking(|| {
                    stack_sys::memory::give_back();
                    stack_sys::memory::shed_code();
                })
                .await;
            }
        }
    }

    /// Waits (up to a minute) for the operations under way.
    fn drain(&self) {
        let t = std::time::Instant::now();
        while self.working.load(std::sync::atomic::Ordering::SeqCst) > 0
            && t.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which build a binary is: device, inode and modification time.
pub fn binary_id(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path)
        .map(|m| {
            format!(
                "{}:{}:{}",
                m.dev(),
                m.ino(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            )
        })
        .unwrap_or_default()
}

impl Daemon {
    fn exclusive<T>(&self, project: &str, f: impl FnOnce() -> T) -> T {
        self.locks.exclusive(project, f)
    }

    /// `up` as a watch's reload runs it: under the project's lock.
    fn up_fn(&self) -> crate::watch::UpFn {
        let (host, engine, locks) = (self.host.clone(), self.engine.clone(), self.locks.clone());
        Arc::new(move |req: &UpRequest, events: &Events| {
            crate::keys::enforce(&req.project, events)?;
            locks.exclusive(&req.project.name, || {
                host.block_on(engine.up(req, events))?
            })
        })
    }

    /// Resumes the detached watches an earlier engine kept.
    fn resume_watches(&self) {
        for saved in crate::watch::Watches::saved(self.host.root()) {
            let started = saved.map_err(anyhow::Error::msg).and_then(|req| {
                let project = req.up.project.name.clone();
                let (_, rx) = self.watches.start(&self.engine, req, self.up_fn())?;
                log_watch(project, rx);
                Ok(())
            });
            if let Err(e) = started {
                tracing::error!("cannot resume a watch: {e:#}");
            }
        }
    }
}

/// A detached watch tells the engine's log what it does.
fn log_watch(project: String, mut rx: tokio::sync::mpsc::UnboundedReceiver<stack_api::Event>) {
    std::thread::spawn(move || {
        while let Some(e) = rx.blocking_recv() {
            match e {
                stack_api::Event::Progress { name, action, .. } => {
                    tracing::info!(%project, "watch: {name} {action}")
                }
                stack_api::Event::Warning { message } => {
                    tracing::warn!(%project, "watch: {message}")
                }
                _ => {}
            }
        }
    });
}

impl stack_api::Api for Daemon {
    fn version(&self) -> stack_api::Version {
        stack_api::Version {
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: stack_api::API_VERSION,
            pid: std::process::id(),
            root: self.host.root().display().to_string(),
            binary: self.binary.clone(),
        }
    }

    fn projects(&self) -> Result<Vec<ProjectSummary>, ApiError> {
        Ok(projects(&self.host))
    }

    fn pull(&self, req: PullRequest, events: &Events) -> Result<(), ApiError> {
        crate::images::pull_all(&self.host, &req, events).map_err(api_error)
    }

    fn containers(&self, project: &str, all: bool) -> Result<Vec<ContainerSummary>, ApiError> {
        containers(&self.host, &self.engine, project, all).map_err(api_error)
    }

    fn up(&self, req: UpRequest, events: &Events) -> Result<(), ApiError> {
        crate::keys::enforce(&req.project, events).map_err(api_error)?;
        self.exclusive(&req.project.name, || {
            self.host.block_on(self.engine.up(&req, events))?
        })
        .map_err(api_error)
    }

    fn down(&self, req: DownRequest, events: &Events) -> Result<(), ApiError> {
        self.watches.stop(&self.host, &req.project.name, None);
        self.exclusive(&req.project.name, || {
            self.host.block_on(self.engine.down(&req, events))?
        })
        .map_err(api_error)
    }

    fn act(&self, action: Action, req: ActionRequest, events: &Events) -> Result<(), ApiError> {
        let done = self.exclusive(&req.project.name, || {
            self.host.block_on(self.engine.act(action, &req, events))?
        });
        // What it started is watched, what it removed forgotten.
        let _ = self.engine.adopt();
        done.map_err(api_error)
    }

    /// The kept ones from `since`, then as they come, until `until` or
    /// until the client goes away.
    fn events(&self, project: &str, q: EventsQuery, events: &Events) -> Result<(), ApiError> {
        use tokio::sync::broadcast::error::RecvError;
        let until = q.until.unwrap_or(i64::MAX);
        let (past, mut rx) = match q.since {
            Some(since) => self.engine.subscribe_since(since),
            None => (Vec::new(), self.engine.subscribe()),
        };
        let mine = |e: &stack_api::ContainerEvent| e.project == project && e.time_nano <= until;
        for e in past.into_iter().filter(mine) {
            events.send(stack_api::Event::Container(e));
        }
        let now = || stack_sys::time::now_nanos() as i64;
        self.host
            .block_on(async {
                while !events.gone() && now() < until {
                    // Awake at `until` at the latest, and now and then to
                    // see whether the client is still there.
                    let wait = Duration::from_nanos((until - now()).clamp(0, 2_000_000_000) as u64);
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(Ok(e)) if mine(&e) => events.send(stack_api::Event::Container(e)),
                        Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
                        Ok(Err(RecvError::Closed)) => break,
                        Err(_) => events.send(stack_api::Event::Heartbeat),
                    }
                }
            })
            .map_err(api_error)
    }

    fn watch(&self, req: WatchRequest, events: &Events) -> Result<(), ApiError> {
        let project = req.up.project.name.clone();
        let detach = req.detach;
        if detach {
            crate::watch::Watches::save(self.host.root(), &req).map_err(api_error)?;
        }
        let (id, mut rx) = self
            .watches
            .start(&self.engine, req, self.up_fn())
            .map_err(api_error)?;
        events.send(stack_api::Event::Progress {
            object: "Project".into(),
            name: project.clone(),
            action: "Watching".into(),
        });
        if detach {
            // What it said on starting (warnings) goes to the client, the
            // rest to the engine's log.
            while let Ok(e) = rx.try_recv() {
                events.send(e);
            }
            log_watch(project, rx);
            return Ok(());
        }
        self.host
            .block_on(async {
                while !events.gone() {
                    match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                        Ok(Some(e)) => events.send(e),
                        Ok(None) => break,
                        Err(_) => events.send(stack_api::Event::Heartbeat),
                    }
                }
            })
            .map_err(api_error)?;
        self.watches.stop(&self.host, &project, Some(id));
        Ok(())
    }

    fn unwatch(&self, project: &str, events: &Events) -> Result<(), ApiError> {
        if self.watches.stop(&self.host, project, None) {
            events.send(stack_api::Event::Progress {
                object: "Project".into(),
                name: project.into(),
                action: "Unwatched".into(),
            });
        }
        Ok(())
    }

    /// Not exclusive: following logs lasts.
    fn logs(&self, project: &str, q: LogsQuery, events: &Events) -> Result<(), ApiError> {
        self.host
            .block_on(self.engine.logs(project, &q, events))
            .and_then(|done| done)
            .map_err(api_error)
    }

    fn exec(&self, project: &str, req: ExecRequest) -> Result<Session, ApiError> {
        crate::session::exec(&self.host, project, &req)
    }

    /// Started under the project's lock (its networks may be made); run
    /// outside it. Watched like the rest (`-d --rm`: removed once it exits).
    fn run(&self, req: RunRequest) -> Result<Session, ApiError> {
        let session = self.exclusive(&req.project.name, || crate::session::run(&self.host, &req));
        let _ = self.engine.adopt();
        session
    }

    fn archive(&self, project: &str, q: ArchiveQuery) -> Result<stack_api::Archive, ApiError> {
        let st = crate::session::replica(self.host.root(), project, &q.service, q.index)?;
        let write = crate::files::archive(&st, &q.path, q.follow).map_err(api_error)?;
        Ok(Box::new(move |out| {
            write(out).map_err(|e| std::io::Error::other(format!("{e:#}")))
        }))
    }

    /// Into one replica as the body comes; into several (`--all`) from a
    /// copy in an unlinked file under the root (never in memory).
    fn extract(
        &self,
        project: &str,
        q: ArchiveQuery,
        tar: &mut dyn std::io::Read,
    ) -> Result<Copied, ApiError> {
        let targets = if q.all {
            crate::session::replicas(self.host.root(), project, &q.service)
        } else {
            vec![crate::session::replica(
                self.host.root(),
                project,
                &q.service,
                q.index,
            )?]
        };
        if targets.is_empty() {
            return Err(ApiError {
                status: 409,
                message: format!("service `{}` has no running container", q.service),
            });
        }
        let mut files = 0;
        if let [st] = &targets[..] {
            files = crate::files::extract(st, &q.path, q.contents, q.archive, tar)
                .map_err(api_error)?;
        } else {
            use std::io::Seek as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut copy = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(self.host.root())
                .map_err(|e| api_error(anyhow::anyhow!("cannot keep the archive: {e}")))?;
            std::io::copy(tar, &mut copy)
                .map_err(|e| ApiError::bad_request(format!("cannot read the archive: {e}")))?;
            for st in &targets {
                copy.rewind().map_err(|e| api_error(e.into()))?;
                files = crate::files::extract(st, &q.path, q.contents, q.archive, &mut copy)
                    .map_err(api_error)?;
            }
        }
        Ok(Copied {
            files,
            containers: targets.into_iter().map(|st| st.name).collect(),
        })
    }

    fn top(&self, project: &str, services: &[String]) -> Result<Vec<Top>, ApiError> {
        Ok(
            crate::session::of_services(self.host.root(), project, services, false)
                .iter()
                .map(crate::containers::top_of)
                .collect(),
        )
    }

    fn images(&self, project: &str, services: &[String]) -> Result<Vec<ImageSummary>, ApiError> {
        let store = self.host.images().map_err(api_error)?;
        Ok(
            crate::session::of_services(self.host.root(), project, services, true)
                .into_iter()
                .map(|st| {
                    let found = store.lookup(&st.spec.image).ok();
                    ImageSummary {
                        container: st.name,
                        id: found.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
                        size: found.map_or(0, |i| i.size),
                        image: st.spec.image,
                    }
                })
                .collect(),
        )
    }

    fn stats(&self, project: &str, services: &[String], all: bool) -> Result<Vec<Stats>, ApiError> {
        Ok(
            crate::session::of_services(self.host.root(), project, services, all)
                .iter()
                .map(crate::stats::read)
                .collect(),
        )
    }
}

/// Makes the store root private: 0700, or 0710 and of group `gid` when
/// the group must reach the socket in it (by name: its members list
/// nothing). What an earlier version left open (its directories were 0755)
/// is closed too: each top directory 0700, the engine's log 0600.
fn close_store(root: &Path, gid: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    stack_sys::prepare_root(root, if gid.is_some() { 0o710 } else { 0o700 })
        .with_context(|| format!("cannot make the store root `{}`", root.display()))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(root, Some(0), Some(gid))
            .with_context(|| format!("cannot give `{}` to group {gid}", root.display()))?;
    }
    for dir in [
        "containers",
        "images",
        "networks",
        "volumes",
        "projects",
        "watch",
    ] {
        let dir = root.join(dir);
        if dir.exists() {
            stack_sys::private_dir(&dir)?;
        }
    }
    let log = root.join("engine.log");
    if log.exists() {
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A path the Docker API may take for its socket: nothing there, or a
/// socket nobody answers on (a stale one). Never a file, nor a live
/// dockerd's socket.
fn claimable(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("`{}`: {e}", p.display())),
        Ok(m) if !m.file_type().is_socket() => {
            bail!(
                "`{}` is there and is not a socket: not replaced",
                p.display()
            )
        }
        Ok(_) if std::os::unix::net::UnixStream::connect(p).is_ok() => bail!(
            "something (dockerd?) answers on `{}`: not replaced",
            p.display()
        ),
        Ok(_) => Ok(()),
    }
}

/// `stack daemon`: serves the root `root` on `socket`, and the Docker
/// Engine API on `$STACK_ROOT/docker.sock` and `docker_sockets`, until
/// SIGTERM or SIGINT. Running containers keep running when it stops.
pub fn serve(
    root: &Path,
    socket: &Path,
    group: Option<&str>,
    docker_sockets: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    stack_sys::memory::lean();
    init_log();
    // Monitors forked by a spawner of ours, not exec'd one by one.
    stack_runtime::spawner::enable();
    let root = root.to_path_buf();
    let gid = group
        .map(|g| {
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
                .ok_or_else(|| anyhow::anyhow!("no such group: `{g}`"))
        })
        .transpose()?;
    close_store(&root, gid)?;
    // Out of the starting terminal's session: its hangup is not ours.
    let _ = nix::unistd::setsid();
    let lock_path = root.join("engine.lock");
    let Some(_lock) = stack_sys::try_lock(&lock_path)
        .with_context(|| format!("cannot lock `{}`", lock_path.display()))?
    else {
        let pid = std::fs::read_to_string(root.join("engine.pid")).unwrap_or_default();
        bail!(
            "an engine already serves `{}` (pid {})",
            root.display(),
            pid.trim()
        );
    };
    let pid_file = root.join("engine.pid");
    std::io::Write::write_all(
        &mut stack_sys::private_file(&pid_file)?,
        format!("{}\n", std::process::id()).as_bytes(),
    )?;
    std::env::set_current_dir("/")?;
    let rt = crate::async_runtime()?;
    let host = Host::on_runtime(root.clone(), rt.handle().clone());
    readopt(&host);
    let docker_paths: Vec<std::path::PathBuf> = std::iter::once(root.join("docker.sock"))
        .chain(docker_sockets.iter().cloned())
        .collect();
    let mut docker_listeners = Vec::new();
    for p in &docker_paths[1..] {
        claimable(p)?;
    }
    for p in &docker_paths {
        docker_listeners.push(
            stack_api::bind(p, gid)
                .with_context(|| format!("cannot listen on `{}`", p.display()))?,
        );
    }
    // The engine's socket last: a client that finds it (and so knows the
    // engine is up) finds the Docker API's too.
    let listener = stack_api::bind(socket, gid)
        .with_context(|| format!("cannot listen on `{}`", socket.display()))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket.display(),
        pid = std::process::id(),
        "stack engine serving"
    );
    let engine = Arc::new(Daemon {
        engine: stack_engine::Engine::new(host.clone(), rt.handle().clone()),
        host,
        locks: Arc::default(),
        watches: Default::default(),
        binary: binary_id(Path::new("/proc/self/exe")),
    });
    engine.resume_watches();
    let docker = Arc::new(crate::docker::Docker {
        host: engine.host.clone(),
        engine: engine.engine.clone(),
        consoles: Default::default(),
        idle: engine.locks.idle.clone(),
    });
    let (stop_docker, mut stopped) = tokio::sync::watch::channel(false);
    rt.spawn(async move {
        let until = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = stack_docker::serve(docker_listeners, docker, until).await {
            tracing::error!("the Docker API server failed: {e}");
        }
    });
    // Containers that ran on are watched; those that should run but do
    // not (they died while no engine watched) start, in dependency order.
    let booting = engine.engine.clone();
    let locks = engine.locks.clone();
    rt.spawn(async move {
        match booting.boot().await {
            // What tests wait for to know boot has done what it would.
            Ok(()) => tracing::info!("boot done"),
            Err(e) => tracing::error!("starting containers again: {e:#}"),
        }
        locks.idle.notify_one();
        locks.rest().await;
    });
    let served = rt.block_on(stack_api::serve(listener, engine.clone(), async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }));
    let _ = stop_docker.send(true);
    let _ = std::fs::remove_file(socket);
    for p in &docker_paths {
        let _ = std::fs::remove_file(p);
    }
    engine.locks.drain();
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("stack engine stopped");
    served.context("the API server failed")
}

/// The engine's log: its standard error, which is `$STACK_ROOT/engine.log`
/// when the CLI starts it (or the journal under systemd); `STACK_LOG` sets
/// the level (`info` by default; `debug`, or per crate as
/// `stack_engine=debug,info`): a filter of targets and levels, not
/// `EnvFilter`, whose regular-expression engine the binary would carry.
fn init_log() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("STACK_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    // Every level through the formatter (its own default stops at info):
    // the filter decides.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish()
        .with(filter)
        .try_init();
}

/// What a new engine finds: the containers that ran on (their monitors
/// never depended on us), and what an engine that died mid-operation left:
/// containers claimed but never started, and network endpoints of
/// containers that do not exist. Those are swept.
fn readopt(host: &Host) {
    let root = host.root();
    let containers = crate::containers::project_containers(root, None);
    let running = containers.iter().filter(|(_, r)| *r).count();
    // Each by its name and its directory (a claim the engine made aside
    // is not under `containers/`).
    let mut swept: Vec<(String, std::path::PathBuf)> = stack_runtime::state::unfinished(root)
        .into_iter()
        .filter_map(|dir| Some((dir.file_name()?.to_string_lossy().to_string(), dir)))
        .collect();
    if let Ok(store) = host.networks() {
        let mut ids: Vec<String> = store
            .all_endpoints()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.container)
            .collect();
        if let Ok(dir) = std::fs::read_dir(store.netns_dir()) {
            ids.extend(
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string()),
            );
        }
        swept.extend(
            ids.into_iter()
                .map(|id| (stack_runtime::container_dir(root, &id), id))
                .filter(|(dir, _)| !dir.exists())
                .map(|(dir, id)| (id, dir)),
        );
    }
    swept.sort();
    swept.dedup();
    for (id, dir) in &swept {
        if let Err(e) = crate::network::unwire(host, id) {
            tracing::warn!(container = %id, "cannot sweep its network endpoints: {e:#}");
        }
        if let Err(e) = stack_sys::remove_tree(root, dir) {
            tracing::warn!(container = %id, "cannot sweep its directory: {e}");
        }
    }
    tracing::info!(
        "re-adopted {} containers ({running} running); swept {} that never started",
        containers.len(),
        swept.len()
    );
}

/// The containers of a project, as `ps` shows them (with what the engine
/// saw of their health and restarts), and the services that wait for a
/// dependency before their first container.
fn containers(
    host: &Host,
    engine: &HostEngine,
    project: &str,
    all: bool,
) -> anyhow::Result<Vec<ContainerSummary>> {
    let mut rows = crate::containers::project_containers(host.root(), Some(project));
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
            let mut status = crate::containers::status_text(&st);
            let state = match st.status {
                _ if restarting(&st.id) => {
                    status = format!("Restarting ({})", st.exit_code.unwrap_or_default());
                    "restarting"
                }
                stack_runtime::Status::Running if crate::containers::is_paused(&st) => "paused",
                stack_runtime::Status::Running => "running",
                stack_runtime::Status::Created => "created",
                stack_runtime::Status::Exited => "exited",
            };
            if let (Some(h), "running") = (&health, state) {
                status = format!("{status} ({})", h.status);
            }
            Ok(ContainerSummary {
                // As `docker ps` shows them: `0.0.0.0:8080->80/tcp`.
                ports: crate::network::ports_of(host, &st.id)?
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
fn projects(host: &Host) -> Vec<ProjectSummary> {
    let mut by_project: BTreeMap<String, (BTreeMap<&'static str, usize>, String)> = BTreeMap::new();
    for (st, running) in crate::containers::project_containers(host.root(), None) {
        let entry = by_project
            .entry(label(&st, stack_plan::LABEL_PROJECT))
            .or_default();
        let state = match st.status {
            _ if running => "running",
            stack_runtime::Status::Created => "created",
            _ => "exited",
        };
        *entry.0.entry(state).or_default() += 1;
        entry.1 = label(&st, crate::service::LABEL_CONFIG_FILES);
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
