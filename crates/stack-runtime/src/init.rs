//! The hidden init mode: the process that becomes the container.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, fork, sethostname, ForkResult, Pid};

use crate::spec::Spec;
use crate::state::{self, State, Status};

/// The argument that selects the init mode of our own binary.
pub const INIT_ARG: &str = "__stack-init";

/// The build of this runtime, which the first line of every hidden mode's
/// payload names: `stack` and `stack-init` of different builds do not
/// talk (a payload's shape is the build's own). The bytes of a binary of
/// the build hold it, which is how `seal` tells one.
pub const BUILD_MARK: &str = concat!("stack-runtime-build=", env!("STACK_RUNTIME_BUILD"));

/// `json` as a hidden mode reads it ([`payload`]): `BUILD_MARK`, a
/// newline, the payload.
pub(crate) fn framed(json: &str) -> Vec<u8> {
    format!("{BUILD_MARK}\n{json}").into_bytes()
}

/// What the caller handed a hidden mode on descriptor `fd` ([`framed`]).
fn payload(fd: &str) -> Result<Vec<u8>, String> {
    let all = std::fs::read(format!("/proc/self/fd/{fd}")).map_err(|e| e.to_string())?;
    let (build, json) = all.split_at(all.iter().position(|b| *b == b'\n').unwrap_or(all.len()));
    match build == BUILD_MARK.as_bytes() {
        true => Ok(json.get(1..).unwrap_or_default().to_vec()),
        // Never the payload itself: it may hold secrets.
        false => {
            let mark = "stack-runtime-build=".as_bytes();
            let theirs = match build.starts_with(mark) && build.len() <= mark.len() + 16 {
                true => String::from_utf8_lossy(build).to_string(),
                false => "no build mark".to_string(),
            };
            Err(format!(
                "the runtime's binary is {BUILD_MARK}, called with {theirs}: \
                 install stack and stack-init from the same build"
            ))
        }
    }
}

/// Exit codes of our own failures, as Docker uses them.
const SETUP_FAILED: i32 = 125;
const NOT_EXECUTABLE: i32 = 126;
const NOT_FOUND: i32 = 127;

/// Entry point of the init mode, given the descriptor the spec arrives on.
/// This process is the container's monitor: it lives as long as the
/// container, owns its state file, logs and cgroups. Never returns.
///
/// `started_fd`, of a detached start: a pipe the monitor writes a byte on
/// once it has recorded the container running (its caller waits on it).
///
/// With `spawner` in place of `started_fd`, `spec_fd` is the socket of the
/// engine's monitor spawner, which this process becomes.
pub fn init_main(spec_fd: &str, started_fd: Option<&str>) -> ! {
    if started_fd == Some(crate::spawner::SPAWNER) {
        match spec_fd.parse() {
            Ok(sock) => crate::spawner::serve(sock),
            Err(_) => std::process::exit(2),
        }
    }
    // Its name, and PID 1's after the fork: else the file name it was run
    // as, a descriptor's number (`3` in `top`).
    let _ = nix::sys::prctl::set_name(c"stack-init");
    let parsed: Result<(Spec, PathBuf, Mode, Prepared), _> =
        payload(spec_fd).and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
    let started = started_fd.and_then(|fd| started_pipe(fd).ok());
    let code = match parsed {
        Ok((spec, dir, mode, prepared)) => {
            let made_for_us = prepared.cgroups;
            match stage1(&spec, &dir, mode, prepared, started) {
                Ok(code) => code,
                Err(e) => {
                    // (The cgroups our caller made for us go with us.)
                    if made_for_us {
                        crate::cgroup::remove_of(&spec);
                    }
                    eprintln!("stack: container `{}`: {e}", short(&spec.id));
                    let _ = record_failure(&spec, &dir, mode == Mode::Detached, &e);
                    SETUP_FAILED
                }
            }
        }
        Err(e) => {
            eprintln!("stack: bad container spec: {e}");
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

/// The pipe a detached start waits on, given as our standard output
/// (`start`): moved to a descriptor of its own, standard output on to
/// /dev/null.
fn started_pipe(fd: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd as _;
    if fd != "1" {
        return Err(std::io::Error::other("not our standard output"));
    }
    let pipe = std::io::stdout().as_fd().try_clone_to_owned()?;
    // (Where /dev/null cannot be had, the pipe stays there too: written
    // through the copy all the same, and closed as we end.)
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    Ok(pipe)
}

/// What a monitor's caller did for it while it started (`spawn_monitor`):
/// the first steps of its start, done beside its exec instead of after.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Prepared {
    /// The container's cgroups are made (`cgroup::make`).
    pub cgroups: bool,
    /// Its seccomp filter, compiled (`security::compile_ahead`).
    pub seccomp: Option<crate::seccomp::Compiled>,
}

/// Where a container's monitor has its streams, and the container's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Mode {
    /// The caller's terminal (or pipes), which the container shares; with
    /// a terminal, the monitor relays it to the container's pty.
    Foreground,
    /// Pipes of a caller that relays them (the engine, for `stack run`);
    /// with a terminal, the pty's master goes back to it over standard
    /// input, a socket.
    Piped,
    /// None: the monitor outlives its caller, in a process group of its
    /// own, and writes the container's output to its log.
    Detached,
}

/// A failed start is recorded too, so `ls` and `logs` can tell why.
fn record_failure(
    spec: &Spec,
    dir: &Path,
    detached: bool,
    e: &std::io::Error,
) -> std::io::Result<()> {
    if detached {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(state::log_path(dir))?;
        let r = crate::logs::Record {
            log: format!("stack: {e}\n"),
            stream: "stderr".into(),
            time: stack_sys::time::now_rfc3339(),
        };
        std::io::Write::write_all(
            &mut log,
            format!(
                "{}\n",
                serde_json::to_string(&r).map_err(std::io::Error::other)?
            )
            .as_bytes(),
        )?;
    }
    let now = stack_sys::time::now_rfc3339();
    state::write(
        dir,
        &State {
            id: spec.id.clone(),
            name: spec.name.clone(),
            status: Status::Exited,
            monitor_pid: std::process::id() as i32,
            pid: 0,
            pid_start: 0,
            exit_code: Some(SETUP_FAILED),
            oom_killed: false,
            started_at: now.clone(),
            finished_at: Some(now),
            detached,
            spec: spec.clone(),
            rebuilt: None,
        },
    )
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits until `child` has ended; its exit code (128 + signal if killed).
fn wait_exit(child: Pid) -> std::io::Result<i32> {
    loop {
        if let Some(code) = exit_code(waitpid(child, None)?) {
            return Ok(code);
        }
    }
}

/// Enters the namespace `ns` names when it is not one of the container's
/// own: the host's (where we are) or another process's. False when the
/// container is to make one of its own.
fn enter(ns: crate::spec::Namespace, kind: &str, flag: CloneFlags) -> std::io::Result<bool> {
    match ns {
        crate::spec::Namespace::Own => Ok(false),
        crate::spec::Namespace::Host => Ok(true),
        crate::spec::Namespace::Join(pid) => {
            let f = std::fs::File::open(format!("/proc/{pid}/ns/{kind}")).map_err(|e| {
                std::io::Error::other(format!(
                    "cannot join the {kind} namespace of process {pid}: {e}"
                ))
            })?;
            nix::sched::setns(f, flag)?;
            Ok(true)
        }
    }
}

/// Closes every inherited descriptor above stderr but those in `keep`.
pub fn close_inherited_fds(keep: &[i32]) {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        let _ = nix::unistd::close(fd);
    }
}

/// New namespaces, then the container's PID 1 as our child; then watch it.
fn stage1(
    spec: &Spec,
    dir: &Path,
    mode: Mode,
    prepared: Prepared,
    mut started: Option<std::os::fd::OwnedFd>,
) -> std::io::Result<i32> {
    let detached = mode == Mode::Detached;
    let keep: Vec<i32> = started
        .iter()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .collect();
    close_inherited_fds(&keep);
    // Only the PID namespace here (it applies to our children): the monitor
    // must keep the host's mount namespace, or PID 1's pivot_root would
    // move our root too.
    if !enter(spec.pid, "pid", CloneFlags::CLONE_NEWPID)? {
        unshare(CloneFlags::CLONE_NEWPID)?;
    }
    // Ctrl-C reaches the whole process group; the container decides how to
    // end, and we report how it did. A detached monitor outlives terminals.
    ignore(&[
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ])?;
    // PID 1 waits on this pipe until its cgroups are in place.
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    // And says on this one when it has pivoted and is about to run the
    // app: until then the container is `created`, not `running`.
    let (set_up_r, set_up_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // With -t, PID 1 opens a pty in the container's devpts and hands us its master.
    let pty = if spec.tty && !detached {
        Some(crate::tty::channel()?)
    } else {
        None
    };
    // A detached container's output goes to its log through us; so does
    // one's whose streams our caller relays (without a terminal), echoed
    // on to ours.
    let output = if detached || (mode == Mode::Piped && !spec.tty) {
        Some((nix::unistd::pipe()?, nix::unistd::pipe()?))
    } else {
        None
    };
    // PID 1 is born with every signal blocked: a signal sent before its init
    // loop runs stays pending instead of being dropped (a namespace's PID 1
    // ignores signals it has no handler for).
    let old_mask = SigSet::all().thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)?;
    // SAFETY: this process was just exec'd and runs no other thread, so the
    // child may do anything after fork.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() }?;
    if let ForkResult::Parent { .. } = forked {
        old_mask.thread_set_mask()?;
    }
    match forked {
        ForkResult::Child => {
            // (Our caller's pipe is the monitor's alone: not PID 1's, nor
            // the container's.)
            drop((ready_w, set_up_r, started));
            let pty_sock = pty.map(|(_, child_end)| child_end);
            if let Some(((out_r, out_w), (err_r, err_w))) = output {
                drop((out_r, err_r));
                let _ = nix::unistd::dup2_stdout(&out_w);
                let _ = nix::unistd::dup2_stderr(&err_w);
                drop((out_w, err_w));
            }
            let mut byte = [0u8; 1];
            if !matches!(nix::unistd::read(&ready_r, &mut byte), Ok(1)) {
                // The parent failed to set up the cgroups and said why.
                std::process::exit(SETUP_FAILED);
            }
            drop(ready_r);
            // Into the cgroups the monitor made, by ourselves while we
            // have one thread (no RCU grace period: see `join_self`).
            let joined = crate::cgroup::layout_of(spec).and_then(|l| crate::cgroup::join_self(&l));
            let seccomp = prepared.seccomp.as_ref();
            let code =
                match joined.and_then(|()| pid1(spec, dir, pty_sock.as_ref(), set_up_w, seccomp)) {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("stack: container `{}`: {e}", short(&spec.id));
                        SETUP_FAILED
                    }
                };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop((ready_r, set_up_w));
            let layout = crate::cgroup::layout_of(spec)?;
            let made = match prepared.cgroups {
                true => Ok(()),
                false => crate::cgroup::make(spec, &layout),
            };
            // (PID 1's filter: not ours to keep for as long as it runs.)
            drop(prepared);
            let give_up = |e| {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                crate::cgroup::remove(&layout);
                Err(e)
            };
            if let Err(e) = made {
                return give_up(e);
            }
            let mut st = State {
                id: spec.id.clone(),
                name: spec.name.clone(),
                status: Status::Created,
                monitor_pid: std::process::id() as i32,
                pid: child.as_raw(),
                pid_start: state::start_time(child.as_raw()).unwrap_or(0),
                exit_code: None,
                oom_killed: false,
                started_at: stack_sys::time::now_rfc3339(),
                finished_at: None,
                detached,
                spec: spec.clone(),
                rebuilt: None,
            };
            // Recorded before PID 1 goes on: nothing of the container runs
            // unless the record of it could be written.
            if let Err(e) = state::write(dir, &st) {
                return give_up(e);
            }
            nix::unistd::write(&ready_w, &[1])?;
            drop(ready_w);
            // Running once PID 1 says it is set up; if it fails first, it
            // exits and the container goes from created to exited.
            if matches!(nix::unistd::read(&set_up_r, &mut [0u8; 1]), Ok(1)) {
                st.status = Status::Running;
                state::write(dir, &st)?;
                if let Some(started) = started.take() {
                    let _ = nix::unistd::write(&started, &[1]);
                }
            }
            // (Else it closes as we end, once the exit is recorded.)
            let _started = started;
            drop(set_up_r);
            stack_sys::memory::give_back();
            match pty {
                Some(channel) if mode == Mode::Piped => {
                    if let Err(e) = crate::tty::pass_master(channel) {
                        // Nobody could ever read its terminal.
                        eprintln!("stack: container `{}`: {e}", short(&spec.id));
                        let _ = kill(child, Signal::SIGKILL);
                    }
                }
                // Until the container's side of the terminal closes.
                Some(channel) => crate::tty::serve(channel, spec.interactive),
                None => {}
            }
            if let Some(((out_r, out_w), (err_r, err_w))) = output {
                drop((out_w, err_w));
                // Until every process of the container has closed its output.
                use std::os::fd::AsFd as _;
                let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
                let echo = (mode == Mode::Piped).then(|| (stdout.as_fd(), stderr.as_fd()));
                // Outside a PID namespace of its own (which dies with its
                // PID 1), what outlives PID 1 is killed once it has ended:
                // its output would never close otherwise.
                let pid1 = match spec.pid.is_own() {
                    true => None,
                    false => Some(stack_sys::pidfd::open(child.as_raw())?),
                };
                let mut kill_rest = || crate::cgroup::kill_all(&layout);
                let ended: crate::logs::Ended<'_> = pid1
                    .as_ref()
                    .map(|fd| (fd.as_fd(), &mut kill_rest as &mut dyn FnMut()));
                let _ = if spec.no_log {
                    crate::logs::pump(out_r, err_r, &mut std::io::sink(), echo, ended)
                } else {
                    let mut log = crate::logs::RotatingFile::open(
                        &state::log_path(dir),
                        spec.log_max_size,
                        spec.log_max_files.unwrap_or(1),
                    )?;
                    crate::logs::pump(out_r, err_r, &mut log, echo, ended)
                };
            }
            let code = wait_exit(child)?;
            if !spec.pid.is_own() {
                crate::cgroup::kill_all(&layout);
            }
            st.oom_killed = crate::cgroup::oom_killed(&layout);
            for e in crate::cgroup::remove(&layout) {
                eprintln!("stack: container `{}`: {e}", short(&spec.id));
            }
            st.status = Status::Exited;
            st.exit_code = Some(code);
            st.finished_at = Some(stack_sys::time::now_rfc3339());
            // Renamed or given new limits while it ran (`rename`,
            // `update`): what is on disk stays.
            if let Ok(now) = state::read(dir) {
                st.name = now.name;
                st.spec.name = now.spec.name;
                st.spec.limits = now.spec.limits;
            }
            state::write(dir, &st)?;
            Ok(code)
        }
    }
}

pub(crate) fn ignore(signals: &[Signal]) -> nix::Result<()> {
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for s in signals {
        // SAFETY: installing SIG_IGN runs no handler code.
        #[allow(unsafe_code)]
        unsafe {
            sigaction(*s, &ign)?;
        }
    }
    Ok(())
}

/// PID 1 of the container: its other namespaces, file system, hostname, then the app.
fn pid1(
    spec: &Spec,
    dir: &Path,
    pty_sock: Option<&std::os::fd::OwnedFd>,
    set_up: std::os::fd::OwnedFd,
    seccomp: Option<&crate::seccomp::Compiled>,
) -> std::io::Result<i32> {
    let mut flags = CloneFlags::CLONE_NEWNS;
    for (ns, kind, flag) in [
        (spec.ipc, "ipc", CloneFlags::CLONE_NEWIPC),
        (spec.uts, "uts", CloneFlags::CLONE_NEWUTS),
    ] {
        if !enter(ns, kind, flag)? {
            flags |= flag;
        }
    }
    // We are in our cgroups (the monitor made them): what the container will see of
    // them is read here, from the host's view. On cgroup v2 a cgroup
    // namespace of its own then makes its cgroup the root of what it
    // mounts; on v1 its own directories are bound (nothing else).
    let cgroups = crate::cgroup::own_view(&spec.id, spec.cgroup_parent.as_deref())?;
    if crate::cgroup::unified() {
        flags |= CloneFlags::CLONE_NEWCGROUP;
    }
    match spec.network {
        crate::spec::NetworkMode::New => flags |= CloneFlags::CLONE_NEWNET,
        crate::spec::NetworkMode::Host => {}
        crate::spec::NetworkMode::Join(pid) => {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
                std::io::Error::other(format!("cannot join the network of process {pid}: {e}"))
            })?;
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
        }
        crate::spec::NetworkMode::Path(ref p) => {
            let ns = std::fs::File::open(p).map_err(|e| {
                std::io::Error::other(format!(
                    "cannot open network namespace `{}`: {e}",
                    p.display()
                ))
            })?;
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
            crate::net::loopback_up()?;
        }
    }
    unshare(flags)?;
    if spec.network == crate::spec::NetworkMode::New {
        crate::net::loopback_up()?;
    }
    let shared = crate::rootfs::shared_of(dir);
    crate::rootfs::setup(
        spec,
        dir,
        &shared,
        Some(&cgroups),
        &mut crate::rootfs::Kernel,
    )?;
    if let Some(sock) = pty_sock {
        crate::tty::open_in_container(sock, spec.console_size)?;
    }
    // Names are set in a UTS namespace of the container's own only (never
    // the host's, nor another container's).
    if spec.uts.is_own() {
        sethostname(&spec.hostname)?;
    }
    if spec.uts.is_own() && !spec.domainname.is_empty() {
        let name = spec.domainname.as_bytes();
        // SAFETY: a valid buffer and its length; the UTS namespace is ours.
        #[allow(unsafe_code)]
        let failed = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } != 0;
        if failed {
            return Err(std::io::Error::other(format!(
                "domainname {:?}: {}",
                spec.domainname,
                std::io::Error::last_os_error()
            )));
        }
    }
    let cwd = crate::rootfs::secure_join(Path::new("/"), &spec.cwd)?;
    if !cwd.is_dir() {
        std::fs::create_dir_all(&cwd)?;
    }
    set_oom_score_adj(spec)?;
    std::env::set_current_dir(&cwd)?;
    // The working directory must be inside the new root (CVE-2024-21626).
    if !std::env::current_dir()?.starts_with("/") {
        return Err(std::io::Error::other(
            "working directory escapes the container",
        ));
    }
    crate::security::set_rlimits(&spec.rlimits)?;
    let user = resolve_user(spec)?;
    let keep = crate::security::capabilities(spec)?;
    crate::security::restrict(&keep, &keep, spec, seccomp)?;
    nix::unistd::write(&set_up, &[1])?;
    drop(set_up);
    if !spec.init {
        return Ok(exec_app(spec, user.as_ref()));
    }
    let all = SigSet::all();
    all.thread_block()?;
    // Not dumpable (from before the fork, so the app never sees us
    // otherwise; its own exec makes it dumpable again): the app cannot read
    // or write our memory through /proc/1/mem, nor ptrace us, without
    // CAP_SYS_PTRACE.
    nix::sys::prctl::set_dumpable(false)?;
    // SAFETY: PID 1 runs a single thread.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() }?;
    let app = match forked {
        ForkResult::Child => std::process::exit(exec_app(spec, user.as_ref())),
        ForkResult::Parent { child } => child,
    };

    supervise(app, &all)
}

/// The init loop: forward every signal to the app, reap every child, and
/// leave with the app's status (the kernel then kills what is left).
fn supervise(app: Pid, all: &SigSet) -> std::io::Result<i32> {
    // What setting the container up took (its spec's text, the seccomp
    // program, ...) is not kept for its whole life by the two processes
    // that stay beside it, its monitor and PID 1.
    stack_sys::memory::give_back();
    loop {
        let sig = all.wait()?;
        if sig != Signal::SIGCHLD {
            let _ = kill(app, sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if status.pid() == Some(app) {
                        if let Some(code) = exit_code(status) {
                            return Ok(code);
                        }
                    }
                }
            }
        }
    }
}

/// Replaces this process with the app; returns the exit code on failure.
fn exec_app(spec: &Spec, user: Option<&crate::security::User>) -> i32 {
    // Signals: default handlers and nothing blocked, whatever we inherited.
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing SIG_DFL runs no handler code.
        #[allow(unsafe_code)]
        unsafe {
            let _ = sigaction(s, &dfl);
        }
    }
    let _ = SigSet::all().thread_unblock();
    if spec.tty {
        if let Err(e) = crate::tty::make_controlling() {
            eprintln!("stack: cannot attach the terminal: {e}");
            return SETUP_FAILED;
        }
    }
    let mut env = spec.full_env();
    if let Some(u) = user {
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", u.home));
        }
        if let Err(e) = crate::security::switch_user(u) {
            eprintln!("stack: cannot switch to user `{}`: {e}", spec.user);
            return SETUP_FAILED;
        }
    } else if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push("HOME=/root".into());
    }
    let Some(program) = spec.args.first() else {
        eprintln!("stack: no command given");
        return NOT_FOUND;
    };
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or_default();
    let Some(path) = resolve(program, path_var) else {
        eprintln!("stack: `{program}`: executable file not found in $PATH");
        return NOT_FOUND;
    };
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = spec.args.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let err = execve(&to_c(&path), &argv, &envp).unwrap_err();
    eprintln!("stack: cannot run `{program}`: {err}");
    if err == nix::errno::Errno::ENOENT {
        NOT_FOUND
    } else {
        NOT_EXECUTABLE
    }
}

/// `program` looked up in `path` unless it names a file already.
fn resolve(program: &str, path: &str) -> Option<String> {
    if program.contains('/') {
        return Some(program.to_string());
    }
    path.split(':').map(|d| format!("{d}/{program}")).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The argument that selects the exec mode of our own binary.
pub const EXEC_ARG: &str = "__stack-exec";

/// Entry point of the exec mode: join a running container and run a
/// command in it. Never returns.
/// The container's OOM score adjustment, on this process (its PID 1's
/// setup, and each exec'd process's, as runc gives both).
fn set_oom_score_adj(spec: &Spec) -> std::io::Result<()> {
    if let Some(adj) = spec.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| std::io::Error::other(format!("oom_score_adj {adj}: {e}")))?;
    }
    Ok(())
}

pub fn exec_main(spec_fd: &str) -> ! {
    let _ = nix::sys::prctl::set_name(c"stack-exec");
    let parsed: Result<(Spec, i32, bool, bool), _> =
        payload(spec_fd).and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
    let code = match parsed {
        Ok((spec, pid, piped, privileged)) => match join_and_run(&spec, pid, piped, privileged) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("stack: exec in container `{}`: {e}", short(&spec.id));
                SETUP_FAILED
            }
        },
        Err(e) => {
            eprintln!("stack: bad exec spec: {e}");
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

/// Joins the cgroups and namespaces of the container whose PID 1 is `pid`,
/// then runs the spec's command as a child there. `piped`: our streams are
/// a caller's pipes (the engine's), not a user's terminal: a pty's master
/// goes back to it over standard input, and the signals it sends us are
/// forwarded to the command (a terminal's Ctrl-C reaches the command
/// directly otherwise, and is ignored here).
/// `privileged` (`exec --privileged`): every capability for the command
/// (but MKNOD where no device controller guards the host's devices); the
/// container's seccomp filter, made for its own capabilities, still holds.
fn join_and_run(spec: &Spec, pid: i32, piped: bool, privileged: bool) -> std::io::Result<i32> {
    use nix::sched::setns;
    close_inherited_fds(&[]);
    // Not dumpable while we are ours (the command's exec makes it
    // dumpable again): the container's processes cannot reach our memory
    // or /proc/PID/map_files, which lead to the host's binary.
    nix::sys::prctl::set_dumpable(false)?;
    let layout = crate::cgroup::layout_of(spec)?;
    crate::cgroup::join_self(&layout)?;
    // Open every namespace first: after joining the mount namespace, the
    // host's /proc is out of sight.
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        // The container's own on cgroup v2 (joining the one we share is a no-op).
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut fds = Vec::new();
    for (name, flag) in kinds {
        let f = std::fs::File::open(format!("/proc/{pid}/ns/{name}"))?;
        // One we are in already is not joined again: a rootless engine
        // may not enter the host's cgroup namespace, even to stay there.
        if state::namespace("self", name) != state::namespace(&pid.to_string(), name) {
            fds.push((f, flag));
        }
    }
    for (f, flag) in &fds {
        setns(f, *flag)?;
    }
    drop(fds);
    if !piped {
        ignore(&[Signal::SIGINT, Signal::SIGQUIT])?;
    }
    let pty = if spec.tty {
        Some(crate::tty::channel()?)
    } else {
        None
    };
    // Blocked from here, so none is lost before the loop below forwards
    // them; the command unblocks them before it starts.
    let all = SigSet::all();
    all.thread_block()?;
    // SAFETY: this process was just exec'd and runs no other thread.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() }?;
    match forked {
        ForkResult::Child => {
            let code = (|| -> std::io::Result<i32> {
                // Inside the container's mount namespace: its own devpts.
                if let Some((_, theirs)) = &pty {
                    crate::tty::open_in_container(theirs, spec.console_size)?;
                }
                let cwd = crate::rootfs::secure_join(Path::new("/"), &spec.cwd)?;
                std::env::set_current_dir(&cwd).map_err(|_| {
                    std::io::Error::other(format!(
                        "working directory `{}` does not exist",
                        spec.cwd
                    ))
                })?;
                set_oom_score_adj(spec)?;
                crate::security::set_rlimits(&spec.rlimits)?;
                let user = resolve_user(spec)?;
                let theirs = crate::security::capabilities(spec)?;
                let keep = match privileged {
                    true => crate::security::all_allowed(),
                    false => theirs.clone(),
                };
                crate::security::restrict(&keep, &theirs, spec, None)?;
                Ok(exec_app(spec, user.as_ref()))
            })()
            .unwrap_or_else(|e| {
                eprintln!("stack: exec: {e}");
                SETUP_FAILED
            });
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            match pty {
                Some(channel) if piped => crate::tty::pass_master(channel)?,
                // Until the container's side of the terminal closes.
                Some(channel) => crate::tty::serve(channel, spec.interactive),
                None => {}
            }
            forward_until_exit(child, &all)
        }
    }
}

/// Forwards the signals we get to `child` until it ends; its exit code.
fn forward_until_exit(child: Pid, all: &SigSet) -> std::io::Result<i32> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::StillAlive => {}
            status => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
        }
        // A SIGCHLD after the check above stays pending: no exit is missed.
        let sig = all.wait()?;
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
        }
    }
}

fn resolve_user(spec: &Spec) -> std::io::Result<Option<crate::security::User>> {
    if spec.user.is_empty() && spec.group_add.is_empty() {
        return Ok(None);
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let group = read("/etc/group");
    let mut user = match spec.user.as_str() {
        // root, as without a user, with groups added.
        "" => crate::security::User {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: "/root".into(),
        },
        u => crate::security::resolve_user(u, &read("/etc/passwd"), &group)?,
    };
    crate::security::add_groups(&mut user, &spec.group_add, &group)?;
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;

    /// What a caller wrote on a pipe, as `payload` takes it.
    fn through_pipe(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let (read, write) = nix::unistd::pipe().unwrap();
        std::fs::File::from(write).write_all(bytes).unwrap();
        super::payload(&read.as_raw_fd().to_string())
    }

    #[test]
    fn a_payload_of_our_build_is_taken_and_another_builds_refused() {
        let ours = format!("{}\n{{\"a\":1}}", super::BUILD_MARK);
        assert_eq!(through_pipe(ours.as_bytes()).unwrap(), b"{\"a\":1}");
        let e = through_pipe(b"stack-runtime-build=0123456789abcdef\n{\"a\":1}").unwrap_err();
        assert!(
            e.contains("called with stack-runtime-build=0123456789abcdef:")
                && e.contains(super::BUILD_MARK),
            "{e}"
        );
        // No build line at all (a caller from before builds were named):
        // refused, and what it sent is not repeated whole.
        let secret = format!("[{{\"env\":[\"TOKEN={}\"]}}]", "s".repeat(64));
        let e = through_pipe(secret.as_bytes()).unwrap_err();
        assert!(
            e.contains("called with no build mark") && !e.contains("TOKEN"),
            "{e}"
        );
    }
}
