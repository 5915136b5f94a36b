//! The embedded container runtime.
//!
//! A container is born from a fresh process: the binary re-executes
//! `stack-init` (or itself), seen through a read-only view so the container
//! cannot overwrite it through /proc/self/exe (CVE-2019-5736; `seal`), in a
//! hidden init mode. That process
//! unshares the mount, UTS, IPC, network and PID namespaces and forks the
//! container's PID 1, which puts an overlay over the root filesystem
//! directory, mounts /proc, /dev and /sys, pivots into it and runs the app
//! under a tiny init that forwards signals and reaps zombies.
//!
//! Every mount lives in the container's own mount namespace: when the
//! container's last process exits, the kernel takes the mounts away.

pub mod cgroup;
pub mod files;
mod init;
pub mod logs;
mod net;
mod rootfs;
mod seal;
mod seccomp;
mod security;
pub mod spawner;
mod spec;
pub mod state;
mod tty;
pub mod userns;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use init::Mode;
pub use init::{close_inherited_fds, exec_main, init_main, BUILD_MARK, EXEC_ARG, INIT_ARG};
pub use rootfs::shared_layer;
pub use seal::sibling_binary;
pub use seccomp::check as check_seccomp_profile;
pub use spec::{
    Device, Healthcheck, Mount, Namespace, NetworkMode, Probe, Recursive, Restart, Spec,
};
pub use state::{State, Status};
pub use tty::{size as terminal_size, RawMode};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("root filesystem `{}` is not a directory", .0.display())]
    NoRootfs(PathBuf),
    #[error("cannot prepare container `{id}`: {source}")]
    Prepare {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clean up container `{id}`: {source}")]
    Cleanup {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start container `{id}`: {source}")]
    Start {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal that killed it.
    pub code: i32,
    /// The kernel killed a process of the container for lack of memory.
    pub oom_killed: bool,
}

/// The state directory of a container under `root`.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id)
}

/// For a foreground `run`: Ctrl-C and Ctrl-\\ reach the container (the same
/// process group) and must not take its caller away before it reports.
pub fn ignore_terminal_interrupts() -> std::io::Result<()> {
    init::ignore(&[
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGQUIT,
    ])
    .map_err(Into::into)
}

/// Runs a container in the foreground and waits for it. With `remove`, its
/// state directory is deleted afterwards (on every path out).
pub fn run(spec: &Spec, root: &Path, remove: bool) -> Result<Exit, RuntimeError> {
    let spec = &Spec {
        caller_removes: remove,
        ..spec.clone()
    };
    let dir = prepare(spec, root)?;
    let result = spawn_monitor(spec, &dir, Mode::Foreground, |_| Ok(())).and_then(|mut child| {
        let status = child.wait();
        // (Where it ended before it could take away the cgroups made for it.)
        cgroup::remove_of(spec);
        let code = exit_code_of(status.map_err(|e| start_error(spec, e))?);
        let oom_killed = state::read(&dir).map(|s| s.oom_killed).unwrap_or(false);
        Ok(Exit { code, oom_killed })
    });
    if remove {
        let _ = stack_sys::remove_tree(root, &dir);
    }
    result
}

/// Creates a container without starting it: its directory and a `created`
/// state that [`start`] later takes up. Nothing runs.
pub fn create(spec: &Spec, root: &Path) -> Result<State, RuntimeError> {
    let dir = prepare(spec, root)?;
    let st = State {
        id: spec.id.clone(),
        name: spec.name.clone(),
        status: state::Status::Created,
        monitor_pid: 0,
        pid: 0,
        pid_start: 0,
        exit_code: None,
        oom_killed: false,
        started_at: String::new(),
        finished_at: None,
        detached: true,
        spec: spec.clone(),
        rebuilt: None,
    };
    state::write(&dir, &st).map_err(|source| RuntimeError::Prepare {
        id: spec.id.clone(),
        source,
    })?;
    Ok(st)
}

/// Starts a container in the background: its monitor process outlives us,
/// writes its output to the log and its state to disk. Returns when the
/// container runs (or failed to start).
pub fn start(spec: &Spec, root: &Path) -> Result<State, RuntimeError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd as _;
    let dir = prepare(spec, root)?;
    let failed = |e: std::io::Error| start_error(spec, e);
    // The monitor writes a byte on this pipe once it has recorded the
    // container running; it closes it without one when it ends first
    // (having recorded why). No polling of the state file.
    let (started_r, started_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed(e.into()))?;
    // The monitor's own complaints, for when something goes wrong unseen.
    let diag: std::os::fd::OwnedFd = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("monitor.log"))
        .map_err(failed)?
        .into();
    // Forked by the engine's spawner, or exec'd. Either way the pipe's
    // write end is the monitor's standard output (which it moves off at
    // once), and ours is closed once it has it.
    let payload =
        monitor_payload(spec, &dir, Mode::Detached, &init::Prepared::default()).map_err(failed)?;
    let (monitor, exited, mut child) = match spawner::fork_monitor(&payload, &started_w, &diag) {
        Some(forked) => {
            drop((started_w, diag));
            let forked = forked.map_err(failed)?;
            (forked.pid, forked.pidfd, None)
        }
        // With no code of ours between fork and exec, the standard library
        // spawns it with `posix_spawn`, without copying our address space
        // as `fork` does.
        None => {
            let child = spawn_monitor(spec, &dir, Mode::Detached, |cmd| {
                cmd.arg("1")
                    .stdout(std::process::Stdio::from(started_w))
                    .stderr(std::process::Stdio::from(diag));
                Ok(())
            })?;
            let pid = child.id() as i32;
            (
                pid,
                stack_sys::pidfd::open(pid).map_err(failed)?,
                Some(child),
            )
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut byte = [0u8];
    let mut pipe_open = true;
    // Until the byte comes, or the monitor has ended.
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(5000) as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = vec![PollFd::new(exited.as_fd(), PollFlags::POLLIN)];
        if pipe_open {
            fds.push(PollFd::new(started_r.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, ms) {
            Ok(0) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(failed(e.into())),
            Ok(_) => {}
        }
        let ended = fds[0].any().unwrap_or(false);
        if pipe_open && fds[1].any().unwrap_or(false) {
            match nix::unistd::read(&started_r, &mut byte) {
                Ok(1) => break,
                _ => pipe_open = false,
            }
        }
        if ended {
            break;
        }
    }
    // What it recorded: its own state (a container started again still
    // has its last run's).
    if let Some(st) = state::read(&dir)
        .ok()
        .filter(|st| st.monitor_pid == monitor && st.status != state::Status::Created)
    {
        if let Some(c) = child {
            reap_later(c);
        }
        return Ok(st);
    }
    // Ended: how, where it is our child.
    let status = match child.as_mut().map(std::process::Child::try_wait) {
        Some(Ok(Some(status))) => Some(format!("({status}) ")),
        Some(_) => None,
        None => {
            let mut fds = [PollFd::new(exited.as_fd(), PollFlags::POLLIN)];
            matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)).then(String::new)
        }
    };
    if let Some(status) = status {
        cgroup::remove_of(spec);
        // Its last complaint, if it made one.
        let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
        let said = log
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_default();
        return Err(failed(std::io::Error::other(format!(
            "the container's monitor exited early {status}{said}"
        ))));
    }
    if let Some(c) = child {
        reap_later(c);
    }
    Err(failed(std::io::Error::other(
        "the container did not start within 5 s",
    )))
}

/// Has the child reaped once it exits, so that a long-lived parent (the
/// engine) leaves no zombie: one thread of the process waits on a pidfd of
/// each child handed to it (a thread per child cost an engine of 500
/// containers 500 threads). Pid-specific waits: other children's statuses
/// are not taken.
pub fn reap_later(child: std::process::Child) {
    use std::sync::{mpsc, Mutex, OnceLock};
    /// The reaper's inbox, and a pipe to wake it from its poll.
    type Inbox = Mutex<(mpsc::Sender<std::process::Child>, std::fs::File)>;
    static REAPER: OnceLock<Option<Inbox>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let (wake_r, wake_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || reap(&rx, wake_r))
            .ok()?;
        Some(Mutex::new((tx, std::fs::File::from(wake_w))))
    });
    // No reaper (no thread to spare): the child is reaped when we exit.
    if let Some(Ok(guard)) = reaper.as_ref().map(Mutex::lock) {
        let (tx, wake) = &*guard;
        if tx.send(child).is_ok() {
            let _ = std::io::Write::write_all(&mut &*wake, &[1]);
        }
    }
}

/// The reaper's loop: takes in the children sent, waits for any to exit.
fn reap(inbox: &std::sync::mpsc::Receiver<std::process::Child>, wake: std::os::fd::OwnedFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd as _;
    let mut children: Vec<(std::process::Child, std::os::fd::OwnedFd)> = Vec::new();
    // Those no pidfd could be opened for (out of descriptors): looked at
    // every second, never waited for here (the reaper must not block).
    let mut unwatched: Vec<std::process::Child> = Vec::new();
    loop {
        let mut fds: Vec<PollFd<'_>> = std::iter::once(&wake)
            .chain(children.iter().map(|(_, fd)| fd))
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = match unwatched.is_empty() {
            true => PollTimeout::NONE,
            false => PollTimeout::from(1000u16),
        };
        unwatched.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if poll(&mut fds, timeout).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            let _ = nix::unistd::read(&wake, &mut [0u8; 64]);
            for child in inbox.try_iter() {
                match stack_sys::pidfd::open(child.id() as i32) {
                    Ok(fd) => children.push((child, fd)),
                    Err(_) => unwatched.push(child),
                }
            }
        }
        let mut i = 0;
        children.retain_mut(|(child, _)| {
            i += 1;
            !(ready.get(i).copied().unwrap_or(false) && child.wait().is_ok())
        });
    }
}

fn start_error(spec: &Spec, source: std::io::Error) -> RuntimeError {
    RuntimeError::Start {
        id: spec.id.clone(),
        source,
    }
}

fn prepare(spec: &Spec, root: &Path) -> Result<PathBuf, RuntimeError> {
    if !spec.rootfs.is_dir() {
        return Err(RuntimeError::NoRootfs(spec.rootfs.clone()));
    }
    let failed = |e: std::io::Error| RuntimeError::Prepare {
        id: spec.id.clone(),
        source: e,
    };
    // `.ID.…claim` is a creation's claim, not a container.
    if spec.id.starts_with('.') {
        return Err(failed(std::io::Error::other(
            "a container id begins with no `.`",
        )));
    }
    let containers = root.join("containers");
    let dir = stack_sys::join(&containers, &spec.id).map_err(|e| failed(e.into_io()))?;
    state::make_containers_dir(&containers)
        .and_then(|()| stack_sys::private_dir(&dir).map_err(stack_sys::PathError::into_io))
        .map_err(failed)?;
    rootfs::make_shared(root).map_err(failed)?;
    // What the record is rebuilt from, should the state file be damaged.
    state::write_spec(&dir, spec).map_err(failed)?;
    // The log exists before the container runs: a reader that comes as it
    // starts holds the file from the first record on (even if the
    // container is removed before it has read them, as docker-py does).
    // With `logging: none` there is none.
    if !spec.no_log {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(state::log_path(&dir))
            .map_err(failed)?;
    }
    Ok(dir)
}

/// A command to run inside a running container, and how.
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub args: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    /// A pseudo-terminal from the container's devpts.
    pub tty: bool,
    /// Standard input is kept open.
    pub interactive: bool,
    /// With `tty`: its size (rows, columns) before the command starts.
    pub console_size: Option<(u16, u16)>,
    /// Every capability (`exec --privileged`); the container's seccomp
    /// filter and device rules still hold, as with docker.
    pub privileged: bool,
}

/// How the exec process's standard streams are connected.
#[derive(Clone, Copy, PartialEq)]
enum Wiring {
    /// Ours (the CLI's terminal or pipes).
    Inherited,
    /// Pipes of the caller's; with a terminal, the pty's master is handed
    /// back over standard input; signals sent to it reach the command.
    Piped,
    /// Nothing: it runs on its own, in a process group of its own.
    Detached,
}

/// Spawns the exec mode of our binary for `p` in the container of `state`.
fn spawn_exec(
    state: &State,
    p: &Process,
    wiring: Wiring,
    configure: impl FnOnce(&mut Command) -> std::io::Result<()>,
) -> Result<std::process::Child, RuntimeError> {
    let mut spec = state.spec.clone();
    let start = |source| start_error(&state.spec, source);
    // Joining its namespaces before it has pivoted would land on the host's files.
    state::check_set_up(state).map_err(start)?;
    spec.tty = p.tty;
    spec.interactive = p.interactive;
    spec.console_size = p.console_size;
    spec.args = p.args.clone();
    spec.env.extend(p.env.iter().cloned());
    if let Some(c) = &p.cwd {
        spec.cwd = c.clone();
    }
    if let Some(u) = &p.user {
        spec.user = u.clone();
    }
    let piped = wiring == Wiring::Piped;
    let json = serde_json::to_string(&(&spec, state.pid, piped, p.privileged))
        .map_err(|e| start(std::io::Error::other(e)))?;
    spawn_sealed(
        EXEC_ARG,
        || Ok(json),
        |cmd| {
            if !p.interactive || wiring == Wiring::Detached {
                cmd.stdin(std::process::Stdio::null());
            }
            if wiring == Wiring::Detached {
                use std::os::unix::process::CommandExt as _;
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .process_group(0);
            }
            configure(cmd)
        },
    )
    .map_err(start)
}

/// Runs a command inside a running container (its namespaces, cgroups,
/// capabilities, seccomp filter), with our stdio; returns its exit code.
pub fn exec(state: &State, p: &Process) -> Result<i32, RuntimeError> {
    let mut child = spawn_exec(state, p, Wiring::Inherited, |_| Ok(()))?;
    Ok(exit_code_of(
        child.wait().map_err(|e| start_error(&state.spec, e))?,
    ))
}

/// Starts a command inside a running container and leaves it running on
/// its own: no input, its output discarded, nobody waiting for it.
pub fn exec_detached(state: &State, p: &Process) -> Result<(), RuntimeError> {
    reap_later(exec_detached_child(state, p)?);
    Ok(())
}

/// [`exec_detached`], the exec process handed back for the caller to wait
/// for (its exit code is the command's).
pub fn exec_detached_child(
    state: &State,
    p: &Process,
) -> Result<std::process::Child, RuntimeError> {
    spawn_exec(state, p, Wiring::Detached, |_| Ok(()))
}

/// A command started in a running container with its streams in the
/// caller's hands (the engine's, which relays them to a client).
pub struct Piped {
    /// The exec process (signals sent to it are forwarded to the command),
    /// or the container's monitor; its exit code is the command's.
    pub child: std::process::Child,
    /// The command's input (with `interactive`, and no terminal).
    pub stdin: Option<std::process::ChildStdin>,
    /// Its output (no terminal).
    pub stdout: Option<std::process::ChildStdout>,
    /// Its error output; with a terminal, only what the exec process itself says.
    pub stderr: Option<std::process::ChildStderr>,
    /// With a terminal: the pty's master (input and output both; resize it
    /// with [`resize`]). None if the command failed before it had one.
    pub pty: Option<std::os::fd::OwnedFd>,
}

/// Runs a command inside a running container with pipes (or a pty) for
/// the caller to relay.
pub fn exec_piped(state: &State, p: &Process) -> Result<Piped, RuntimeError> {
    relayed(&state.spec, p.tty, p.interactive, |wire| {
        spawn_exec(state, p, Wiring::Piped, wire)
    })
}

/// Runs a container in the caller's foreground with pipes (or a pty) for
/// it to relay (the engine's, for `stack run`). The [`Piped`]'s child is
/// the container's monitor: its exit code is the container's. Removing
/// the container after it (`--rm`) is the caller's.
pub fn run_piped(spec: &Spec, root: &Path) -> Result<Piped, RuntimeError> {
    let dir = prepare(spec, root)?;
    relayed(spec, spec.tty, spec.interactive, |wire| {
        spawn_monitor(spec, &dir, Mode::Piped, wire)
    })
}

type Wire = Box<dyn FnOnce(&mut Command) -> std::io::Result<()>>;

/// Spawns a process whose streams its caller relays: pipes, or with a
/// terminal a socket on its standard input over which the pty's master
/// comes back.
fn relayed(
    spec: &Spec,
    tty: bool,
    interactive: bool,
    spawn: impl FnOnce(Wire) -> Result<std::process::Child, RuntimeError>,
) -> Result<Piped, RuntimeError> {
    use std::process::Stdio;
    let failed = |e| start_error(spec, e);
    let channel = if tty {
        Some(tty::channel().map_err(failed)?)
    } else {
        None
    };
    let theirs = channel
        .as_ref()
        .map(|(_, theirs)| theirs.try_clone())
        .transpose()
        .map_err(failed)?;
    let mut child = spawn(Box::new(move |cmd| {
        match theirs {
            Some(sock) => cmd.stdin(Stdio::from(sock)).stdout(Stdio::null()),
            None => cmd
                .stdin(if interactive {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped()),
        };
        cmd.stderr(Stdio::piped());
        Ok(())
    }))?;
    let pty = match channel {
        Some((ours, theirs)) => {
            drop(theirs);
            tty::receive_master(&ours).map_err(failed)?
        }
        None => None,
    };
    Ok(Piped {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        child,
        pty,
    })
}

/// Sets the size of a pty whose master [`exec_piped`] gave.
pub fn resize(master: &std::os::fd::OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    tty::set_size(master, rows, cols)
}

/// The most of a command's output `exec_output` keeps (as Docker keeps of
/// a health check's).
pub const OUTPUT_LIMIT: usize = 4096;

/// Runs a command inside a running container with no input, for at most
/// `timeout`: its exit code (None if it timed out, and was killed with
/// everything it started) and its output (stdout and stderr together, the
/// first [`OUTPUT_LIMIT`] bytes). For health checks.
pub fn exec_output(
    state: &State,
    args: Vec<String>,
    timeout: std::time::Duration,
) -> Result<(Option<i32>, String), RuntimeError> {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    let start = |source| start_error(&state.spec, source);
    state::check_set_up(state).map_err(start)?;
    let (read, write) = nix::unistd::pipe().map_err(|e| start(e.into()))?;
    let p = Process {
        args,
        ..Process::default()
    };
    let mut child = spawn_exec(state, &p, Wiring::Inherited, |cmd| {
        let err = write.try_clone()?;
        cmd.stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::from(err))
            // Its own group: a timeout kills what it started in there too.
            .process_group(0);
        Ok(())
    })?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::fs::File::from(read)
            .take(OUTPUT_LIMIT as u64)
            .read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + timeout;
    let code = loop {
        match child.try_wait().map_err(start)? {
            Some(status) => break Some(exit_code_of(status)),
            None if std::time::Instant::now() >= deadline => {
                let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    // A process it left behind may hold the pipe open: do not wait long.
    let t = std::time::Instant::now();
    while !reader.is_finished() && t.elapsed() < std::time::Duration::from_millis(200) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let output = if reader.is_finished() {
        reader.join().unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok((code, String::from_utf8_lossy(&output).into_owned()))
}

/// An exit status as Docker reports it: the code, or 128 + the signal.
pub fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Starts the monitor: the sealed init binary in init mode.
fn spawn_monitor(
    spec: &Spec,
    dir: &Path,
    mode: Mode,
    configure: impl FnOnce(&mut Command) -> std::io::Result<()>,
) -> Result<std::process::Child, RuntimeError> {
    let json = || {
        let prepared = prepare_monitor(spec)?;
        monitor_payload(spec, dir, mode, &prepared)
    };
    let spawned = spawn_sealed(INIT_ARG, json, |cmd| {
        if !spec.interactive {
            cmd.stdin(std::process::Stdio::null());
        }
        if mode == Mode::Detached {
            use std::os::unix::process::CommandExt;
            cmd.stdin(std::process::Stdio::null());
            // Its own process group: our terminal's signals are not its business.
            cmd.process_group(0);
        }
        configure(cmd)
    });
    if spawned.is_err() {
        cgroup::remove_of(spec);
    }
    spawned.map_err(|e| start_error(spec, e))
}

/// The first steps of a container's start, taken by whoever starts its
/// monitor while the monitor is exec'd and loaded (about a millisecond)
/// rather than by the monitor after: the container's cgroups made, and its
/// seccomp filter compiled. (Cgroups made in part go in `spawn_monitor`.)
fn prepare_monitor(spec: &Spec) -> std::io::Result<init::Prepared> {
    let seccomp = security::compile_ahead(spec)?;
    cgroup::make(spec, &cgroup::layout_of(spec)?)?;
    Ok(init::Prepared {
        cgroups: true,
        seccomp,
    })
}

/// What a monitor is handed: its spec, directory and mode, and what its
/// caller did for it.
fn monitor_payload(
    spec: &Spec,
    dir: &Path,
    mode: Mode,
    prepared: &init::Prepared,
) -> std::io::Result<String> {
    serde_json::to_string(&(spec, dir, mode, prepared)).map_err(std::io::Error::other)
}

/// Runs the sealed init binary (`seal`) in a hidden `mode`, handing it
/// what `json` makes (behind our `BUILD_MARK`) through a pipe (not the
/// command line: PID 1's cmdline is visible inside the container). `json`
/// runs once the binary is spawned, while it is exec'd and loaded.
fn spawn_sealed(
    mode: &str,
    json: impl FnOnce() -> std::io::Result<String>,
    configure: impl FnOnce(&mut Command) -> std::io::Result<()>,
) -> std::io::Result<std::process::Child> {
    let exe = seal::sealed_init()?;
    let (read, write) = nix::unistd::pipe()?;
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let mut cmd = Command::new(seal::fd_path(exe));
    cmd.arg(mode).arg(read.as_raw_fd().to_string());
    configure(&mut cmd)?;
    let mut child = cmd.spawn()?;
    drop(read);
    let handed = json().and_then(|json| {
        let mut write = std::fs::File::from(write);
        std::io::Write::write_all(&mut write, &init::framed(&json))
    });
    if let Err(e) = handed {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}
