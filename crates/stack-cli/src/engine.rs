//! The engine: `stack daemon`, one per store root, serving the API of
//! stack-api on `$STACK_ROOT/engine.sock`; and how the CLI reaches it,
//! starting it when it is not there.
//!
//! Containers do not depend on the engine: each has its own monitor
//! process (stack-runtime) that keeps its log and records its exit. So a
//! crashed or killed engine loses nothing; the next one reads the state on
//! disk (re-adoption) and sweeps what an operation cut short left behind.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use stack_api::{
    Action, ActionRequest, ApiError, ArchiveQuery, ContainerSummary, Copied, DownRequest, Events,
    ExecRequest, ImageSummary, LogsQuery, ProjectSummary, PullRequest, RunRequest, Session, Stats,
    Top, UpRequest, WatchRequest,
};

use crate::container::stack_root;

/// The engine's socket: `STACK_SOCKET`, or `engine.sock` under the root.
pub fn socket_path() -> PathBuf {
    std::env::var_os("STACK_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| stack_root().join("engine.sock"))
}

/// The engine for the API.
struct Real {
    engine: crate::reconcile::HostEngine,
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
        self.working.fetch_sub(1, Ordering::SeqCst);
        out
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
fn binary_id(path: &Path) -> String {
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

/// Runs `f` on a small runtime of its own: the API's calls run on plain
/// threads.
fn on_own_runtime<T>(f: impl std::future::Future<Output = T>) -> Result<T, ApiError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| internal(e.into()))?;
    Ok(rt.block_on(f))
}

/// A copy's error: 404 for a path that is not there, 400 for an archive
/// that cannot be extracted, else 500.
fn file_error(e: anyhow::Error) -> ApiError {
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let status = match kind {
        Some(std::io::ErrorKind::NotFound) => 404,
        Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::Unsupported) => 400,
        _ => 500,
    };
    ApiError {
        status,
        message: format!("{e:#}"),
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

impl Real {
    fn exclusive<T>(&self, project: &str, f: impl FnOnce() -> T) -> T {
        self.locks.exclusive(project, f)
    }

    /// `up` as a watch's reload runs it: under the project's lock.
    fn up_fn(&self) -> crate::watch::UpFn {
        let (engine, locks) = (self.engine.clone(), self.locks.clone());
        Arc::new(move |req: &UpRequest, events: &Events| {
            locks.exclusive(&req.project.name, || {
                crate::reconcile::up(&engine, req, events)
            })
        })
    }

    /// Resumes the detached watches an earlier engine kept.
    fn resume_watches(&self) {
        for saved in crate::watch::Watches::saved() {
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

impl stack_api::Engine for Real {
    fn version(&self) -> stack_api::Version {
        stack_api::Version {
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: stack_api::API_VERSION,
            pid: std::process::id(),
            root: stack_root().display().to_string(),
            binary: self.binary.clone(),
        }
    }

    fn projects(&self) -> Result<Vec<ProjectSummary>, ApiError> {
        Ok(crate::reconcile::projects())
    }

    fn pull(&self, req: PullRequest, events: &Events) -> Result<(), ApiError> {
        crate::registry::pull_all(&req, events).map_err(internal)
    }

    fn containers(&self, project: &str, all: bool) -> Result<Vec<ContainerSummary>, ApiError> {
        crate::reconcile::containers(&self.engine, project, all).map_err(internal)
    }

    fn up(&self, req: UpRequest, events: &Events) -> Result<(), ApiError> {
        self.exclusive(&req.project.name, || {
            crate::reconcile::up(&self.engine, &req, events)
        })
        .map_err(internal)
    }

    fn down(&self, req: DownRequest, events: &Events) -> Result<(), ApiError> {
        self.watches.stop(&req.project.name, None);
        self.exclusive(&req.project.name, || {
            crate::reconcile::down(&self.engine, &req, events)
        })
        .map_err(internal)
    }

    fn act(&self, action: Action, req: ActionRequest, events: &Events) -> Result<(), ApiError> {
        let done = self.exclusive(&req.project.name, || {
            crate::reconcile::act(&self.engine, action, &req, events)
        });
        // What it started is watched, what it removed forgotten.
        let _ = self.engine.adopt();
        done.map_err(internal)
    }

    /// Until the client goes away.
    fn events(&self, project: &str, events: &Events) -> Result<(), ApiError> {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = self.engine.subscribe();
        on_own_runtime(async {
            while !events.gone() {
                match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                    Ok(Ok(e)) if e.project == project => {
                        events.send(stack_api::Event::Container(e))
                    }
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
                    Ok(Err(RecvError::Closed)) => break,
                    Err(_) => events.send(stack_api::Event::Heartbeat),
                }
            }
        })?;
        Ok(())
    }

    fn watch(&self, req: WatchRequest, events: &Events) -> Result<(), ApiError> {
        let project = req.up.project.name.clone();
        let detach = req.detach;
        if detach {
            crate::watch::Watches::save(&req).map_err(internal)?;
        }
        let (id, mut rx) = self
            .watches
            .start(&self.engine, req, self.up_fn())
            .map_err(internal)?;
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
        on_own_runtime(async {
            while !events.gone() {
                match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                    Ok(Some(e)) => events.send(e),
                    Ok(None) => break,
                    Err(_) => events.send(stack_api::Event::Heartbeat),
                }
            }
        })?;
        self.watches.stop(&project, Some(id));
        Ok(())
    }

    fn unwatch(&self, project: &str, events: &Events) -> Result<(), ApiError> {
        if self.watches.stop(project, None) {
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
        crate::reconcile::logs(project, &q, events).map_err(internal)
    }

    fn exec(&self, project: &str, req: ExecRequest) -> Result<Session, ApiError> {
        crate::exec::start(project, &req)
    }

    /// Started under the project's lock (its networks may be made); run
    /// outside it. Watched like the rest (`-d --rm`: removed once it exits).
    fn run(&self, req: RunRequest) -> Result<Session, ApiError> {
        let session = self.exclusive(&req.project.name, || crate::exec::run(&req));
        let _ = self.engine.adopt();
        session
    }

    fn archive(&self, project: &str, q: ArchiveQuery) -> Result<stack_api::Archive, ApiError> {
        let st = crate::exec::replica(project, &q.service, q.index)?;
        let write = crate::copy::archive(&st, &q.path).map_err(file_error)?;
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
            crate::exec::replicas(project, &q.service)
        } else {
            vec![crate::exec::replica(project, &q.service, q.index)?]
        };
        if targets.is_empty() {
            return Err(ApiError {
                status: 409,
                message: format!("service `{}` has no running container", q.service),
            });
        }
        let mut files = 0;
        if let [st] = &targets[..] {
            files = crate::copy::extract(st, &q.path, q.contents, tar).map_err(file_error)?;
        } else {
            use std::io::Seek as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut copy = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(crate::container::stack_root())
                .map_err(|e| internal(anyhow::anyhow!("cannot keep the archive: {e}")))?;
            std::io::copy(tar, &mut copy)
                .map_err(|e| ApiError::bad_request(format!("cannot read the archive: {e}")))?;
            for st in &targets {
                copy.rewind().map_err(|e| internal(e.into()))?;
                files =
                    crate::copy::extract(st, &q.path, q.contents, &mut copy).map_err(file_error)?;
            }
        }
        Ok(Copied {
            files,
            containers: targets.into_iter().map(|st| st.name).collect(),
        })
    }

    fn top(&self, project: &str, services: &[String]) -> Result<Vec<Top>, ApiError> {
        Ok(crate::exec::of_services(project, services, false)
            .iter()
            .map(crate::lifecycle::top_of)
            .collect())
    }

    fn images(&self, project: &str, services: &[String]) -> Result<Vec<ImageSummary>, ApiError> {
        let store = crate::image::store().map_err(internal)?;
        Ok(crate::exec::of_services(project, services, true)
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
            .collect())
    }

    fn stats(&self, project: &str, services: &[String], all: bool) -> Result<Vec<Stats>, ApiError> {
        Ok(crate::exec::of_services(project, services, all)
            .iter()
            .map(crate::stats::read)
            .collect())
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

/// `stack daemon`: serves until SIGTERM or SIGINT. Running containers keep
/// running when it stops.
pub fn daemon(group: Option<&str>) -> anyhow::Result<()> {
    init_log();
    let root = stack_root();
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
    readopt(&root);
    let socket = socket_path();
    let listener = stack_api::bind(&socket, gid)
        .with_context(|| format!("cannot listen on `{}`", socket.display()))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket.display(),
        pid = std::process::id(),
        "stack engine serving"
    );
    let rt = crate::async_runtime()?;
    let engine = Arc::new(Real {
        engine: stack_engine::Engine::new(
            crate::reconcile::Host::new(root.clone()),
            rt.handle().clone(),
        ),
        locks: Arc::default(),
        watches: Default::default(),
        binary: binary_id(Path::new("/proc/self/exe")),
    });
    engine.resume_watches();
    // Containers that ran on are watched; those that should run but do
    // not (they died while no engine watched) start, in dependency order.
    let booting = engine.engine.clone();
    rt.spawn(async move {
        match booting.boot().await {
            // What tests wait for to know boot has done what it would.
            Ok(()) => tracing::info!("boot done"),
            Err(e) => tracing::error!("starting containers again: {e:#}"),
        }
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
    let _ = std::fs::remove_file(&socket);
    engine.locks.drain();
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("stack engine stopped");
    served.context("the API server failed")
}

/// The engine's log: its standard error, which is `$STACK_ROOT/engine.log`
/// when the CLI starts it (or the journal under systemd); `STACK_LOG` sets
/// the level (`info` by default; `debug`, or per crate as `stack_engine=debug`).
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// What a new engine finds: the containers that ran on (their monitors
/// never depended on us), and what an engine that died mid-operation left:
/// containers claimed but never started, and network endpoints of
/// containers that do not exist. Those are swept.
fn readopt(root: &Path) {
    let containers = crate::lifecycle::project_containers(root, None);
    let running = containers.iter().filter(|(_, r)| *r).count();
    let mut swept = Vec::new();
    for dir in stack_runtime::state::unfinished(root) {
        swept.extend(dir.file_name().map(|n| n.to_string_lossy().to_string()));
    }
    if let Ok(store) = crate::network::store() {
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
                .filter(|id| !stack_runtime::container_dir(root, id).exists()),
        );
    }
    swept.sort();
    swept.dedup();
    for id in &swept {
        if let Err(e) = crate::network::unwire(id) {
            tracing::warn!(container = %id, "cannot sweep its network endpoints: {e:#}");
        }
        if let Err(e) = stack_sys::remove_tree(root, &stack_runtime::container_dir(root, id)) {
            tracing::warn!(container = %id, "cannot sweep its directory: {e}");
        }
    }
    tracing::info!(
        "re-adopted {} containers ({running} running); swept {} that never started",
        containers.len(),
        swept.len()
    );
}

/// A client of the engine, which is started first if it is not running,
/// and restarted if it runs another build of the binary than ours (an
/// upgrade: its containers run on, the new engine re-adopts them).
pub fn client() -> anyhow::Result<(tokio::runtime::Runtime, stack_api::Client)> {
    let socket = socket_path();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = stack_api::Client::new(&socket);
    match std::os::unix::net::UnixStream::connect(&socket) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot reach the engine at `{}`: permission denied (it lets in root, and the members of the group `stack daemon --group` names)",
            socket.display()
        ),
        Err(_) => {
            start(&socket)?;
            return Ok((rt, client));
        }
        Ok(_) => {}
    }
    let ours = std::env::current_exe()
        .map(|p| binary_id(&p))
        .unwrap_or_default();
    if let Ok(v) = rt.block_on(client.get::<stack_api::Version>("/v1/version")) {
        if !ours.is_empty() && v.binary != ours {
            replace(&socket, v.pid)?;
        }
    }
    Ok((rt, client))
}

/// A client of the engine if one runs (none is started).
pub fn running_client() -> Option<(tokio::runtime::Runtime, stack_api::Client)> {
    let socket = socket_path();
    std::os::unix::net::UnixStream::connect(&socket).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    Some((rt, stack_api::Client::new(&socket)))
}

/// Stops an engine of another build (it finishes what it does first) and
/// starts ours.
fn replace(socket: &Path, pid: u32) -> anyhow::Result<()> {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let t = std::time::Instant::now();
    while stack_runtime::state::process_running(pid.as_raw()) {
        if t.elapsed() > Duration::from_secs(70) {
            bail!("the engine of another build (pid {pid}) does not stop");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    start(socket)
}

/// Starts `stack daemon` in the background and waits until it answers.
fn start(socket: &Path) -> anyhow::Result<()> {
    let root = stack_root();
    stack_sys::prepare_root(&root, 0o700)
        .with_context(|| format!("cannot make the store root `{}`", root.display()))?;
    let log_path = root.join("engine.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open `{}`", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find our own binary")?;
    let mut child = std::process::Command::new(exe)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the engine")?;
    let t = std::time::Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        // Exiting with success means another engine won the race to start.
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let last = text.lines().last().unwrap_or("").to_string();
                bail!("the engine did not start ({status}): {last}");
            }
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!(
                "the engine did not answer on `{}` within 10 s (see `{}`)",
                socket.display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
