//! How the CLI reaches the engine (`stack daemon`, one per store root, on
//! `$STACK_ROOT/engine.sock`): starting it when it is not there, and
//! replacing it when it runs another build of the binary.
//!
//! Containers do not depend on the engine: each has its own monitor
//! process (stack-runtime) that keeps its log and records its exit. So a
//! crashed or killed engine loses nothing; the next one reads the state on
//! disk (re-adoption) and sweeps what an operation cut short left behind.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use stack_host::daemon::binary_id;

/// The engine's socket: `STACK_SOCKET`, or `engine.sock` under the root
/// (a rootless engine's default root: in `$XDG_RUNTIME_DIR/stack`, where
/// there is one).
pub fn socket_path() -> PathBuf {
    if let Some(s) = std::env::var_os("STACK_SOCKET") {
        return s.into();
    }
    match runtime_socket_dir() {
        Some(d) => d.join("engine.sock"),
        None => stack_root().join("engine.sock"),
    }
}

/// `$XDG_RUNTIME_DIR/stack`, where a rootless user's default engine puts
/// its socket (none without `XDG_RUNTIME_DIR`, or with `STACK_ROOT`).
fn runtime_socket_dir() -> Option<PathBuf> {
    let d = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    (rootless() && std::env::var_os("STACK_ROOT").is_none()).then(|| PathBuf::from(d).join("stack"))
}

/// Whether this user's stack is rootless, decided once, before the process
/// enters the store's namespaces (where it is root): not root, and with a
/// store of their own. `STACK_ROOT` or `STACK_SOCKET` naming another's
/// (root's, say), or root's engine answering on /var/lib/stack (the user
/// is in the group `stack daemon --group` opened it to), makes this a client
/// of that engine instead.
pub fn rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| {
        use std::os::unix::fs::MetadataExt as _;
        let euid = nix::unistd::geteuid();
        let ours =
            |p: &std::ffi::OsStr| std::fs::metadata(p).map_or(true, |m| m.uid() == euid.as_raw());
        if euid.is_root() {
            return false;
        }
        match (
            std::env::var_os("STACK_ROOT"),
            std::env::var_os("STACK_SOCKET"),
        ) {
            (Some(root), _) => ours(&root),
            (None, Some(socket)) => ours(&socket),
            (None, None) => std::os::unix::net::UnixStream::connect(ROOT_SOCKET).is_err(),
        }
    })
}

/// Root's engine socket, where a member of its group reaches it.
const ROOT_SOCKET: &str = "/var/lib/stack/engine.sock";

/// Makes `$XDG_RUNTIME_DIR/stack` if the socket is to be there (emptied at
/// every boot and logout: the engine, under systemd too, makes it again).
pub fn prepare_socket_dir(socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = runtime_socket_dir().filter(|d| socket.parent() == Some(d)) {
        stack_sys::private_dir(&dir)
            .with_context(|| format!("cannot make the socket's directory `{}`", dir.display()))?;
    }
    Ok(())
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
    match rt.block_on(client.get::<stack_api::Version>("/v1/version")) {
        Ok(v) if !ours.is_empty() && v.binary != ours => replace(&socket, v.pid)?,
        Ok(_) => {}
        // It let us connect and then went: an engine being killed (its
        // socket accepts until its last thread is gone). Ours starts once
        // nobody listens any more.
        Err(stack_api::ClientError::NoEngine { .. } | stack_api::ClientError::Transport(_)) => {
            let t = std::time::Instant::now();
            while std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                if t.elapsed() > Duration::from_secs(10) {
                    bail!(
                        "the engine at `{}` accepts connections but does not answer",
                        socket.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            start(&socket)?;
        }
        Err(_) => {}
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
    prepare_socket_dir(socket)?;
    let log_path = root.join("engine.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open `{}`", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find our own binary")?;
    // The root and socket as decided here: inside a rootless store's
    // namespaces the engine is root, and would decide otherwise.
    let mut child = std::process::Command::new(exe)
        .arg("daemon")
        .env("STACK_ROOT", &root)
        .env("STACK_SOCKET", socket)
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
        // Exiting with success, or while another engine holds the lock (it
        // won the race to start, and is starting), is not a failure: its
        // socket comes.
        if let Ok(Some(status)) = child.try_wait() {
            let another = matches!(stack_sys::try_lock(&root.join("engine.lock")), Ok(None));
            if !status.success() && !another {
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

/// The engine root: `STACK_ROOT`, else /var/lib/stack for root, and for a
/// rootless user their data directory's `stack` (`$XDG_DATA_HOME`, or
/// `~/.local/share`).
pub fn stack_root() -> PathBuf {
    if let Some(root) = std::env::var_os("STACK_ROOT") {
        return root.into();
    }
    if !rootless() {
        return PathBuf::from("/var/lib/stack");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    match data {
        Some(d) => d.join("stack"),
        // No home: one of the user's own, not one every user could take.
        None => PathBuf::from(format!("/tmp/stack-{}", nix::unistd::geteuid())),
    }
}
