//! Rootless: a user who is not root gets an engine and containers of their
//! own inside a user namespace, as podman's rootless mode has them.
//!
//! One **holder** process per store root owns three namespaces: a user
//! namespace mapping root to the user and 1.. to the user's subordinate ids
//! (`/etc/subuid`, `/etc/subgid`, written by the setuid `newuidmap` and
//! `newgidmap`), a mount namespace, and a network namespace (the engine's
//! "host": its bridges, nft tables and DNS live there, out of the real
//! host's sight). `slirp4netns` links that network namespace to the host:
//! outbound traffic, and published ports through its API socket (stack-net's
//! `forward`). Every stack process of that root (CLI, engine, monitors)
//! joins the holder's namespaces as its first act, so containers outlive the
//! engine as they do for root, and a new engine finds them. The holder's pid
//! is kept in `<root>/rootless/holder.pid` with its start time (a pid the
//! kernel gave again is not taken for it).

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use crate::state;

/// What keeps a user from a rootless engine, said with the missing piece.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a rootless engine needs `{0}` (Debian's `uidmap` package: apt-get install uidmap)")]
    NoIdMapper(&'static str),
    #[error(
        "a rootless engine needs `slirp4netns` for its network (Debian's `slirp4netns` package)"
    )]
    NoSlirp,
    #[error("user `{user}` has no subordinate {kind} in `{file}`: add a range (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user})")]
    NoRange {
        user: String,
        kind: &'static str,
        file: &'static str,
    },
    #[error("a rootless engine's network needs `/dev/net/tun` open to its user: {0} (Debian's udev makes it mode 0666; as root: chmod 0666 /dev/net/tun)")]
    NoTun(io::Error),
    #[error("cannot make the rootless namespaces: {0}")]
    Setup(String),
    #[error("`{path}`: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn setup(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("{what}: {e}"))
}

/// The subordinate range (first id, count) of the user named `name` or
/// numbered `id` in the text of `/etc/subuid` or `/etc/subgid`: the first
/// line that names them.
pub fn subordinate(text: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who.parse::<u32>().ok() != Some(id) {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse().ok()?);
        (count > 0).then_some((start, count))
    })
}

pub use stack_sys::userns::{dir, forwarder_socket};

/// Puts the calling process in the rootless namespaces of the store at
/// `root`, made first if no holder lives (and its link to the host started
/// again if slirp4netns died). Call it before any thread is started (the
/// kernel joins a user namespace only then). A process already in a user
/// namespace (a child of a rootless engine) stays where it is.
///
/// True when slirp4netns was started again for a holder that lost it: its
/// published ports must then be forwarded again (stack-net's `forward`).
pub fn enter(root: &Path) -> Result<bool, Error> {
    if stack_sys::userns::in_user_namespace() {
        return Ok(false);
    }
    let dir = dir(root);
    stack_sys::prepare_root(root, 0o700)
        .and_then(|()| stack_sys::private_dir(&dir))
        .map_err(|e| Error::Io {
            path: dir.clone(),
            source: e.into_io(),
        })?;
    let lock_path = dir.join("lock");
    let _lock = stack_sys::lock(&lock_path, true).map_err(io_err(&lock_path))?;
    let mut relinked = false;
    let holder = match read_holder(&dir) {
        Some(h) => {
            // Its API socket answers, or it is dead or dying (a process
            // that exits lets its sockets go first): it is put down and waited
            // for, since a new one needs the tap device it holds.
            let slirp = alive(&dir.join("slirp.pid"), None).map(|(pid, _)| pid);
            let linked = slirp.is_some()
                && std::os::unix::net::UnixStream::connect(forwarder_socket(root)).is_ok();
            if let Some(pid) = slirp.filter(|_| !linked) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
                gone(pid);
            }
            if !linked {
                relinked = true;
                // The holder keeps the write end of slirp4netns's exit pipe:
                // a read end of the same pipe, opened through its fd.
                let exit = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(format!("/proc/{}/fd/{}", h.pid, h.exit_fd))
                    .map_err(|e| setup("the holder's exit pipe", e))?;
                link(
                    root,
                    h.pid,
                    &which("slirp4netns").ok_or(Error::NoSlirp)?,
                    exit.into(),
                )?;
            }
            h.pid
        }
        None => create(root)?,
    };
    join(holder).map(|()| relinked)
}

/// The holder's record: pid, start time, and the descriptor of the write
/// end it keeps of slirp4netns's exit pipe.
struct Holder {
    pid: i32,
    exit_fd: i32,
}

/// The pid of a process a file names (`PID START`) if it still runs: the
/// same start time, and the name `comm` if given (after a reboot, a pid
/// and even a start time can come again).
fn alive(file: &Path, comm: Option<&str>) -> Option<(i32, Vec<String>)> {
    let text = fs::read_to_string(file).ok()?;
    let f: Vec<String> = text.split_whitespace().map(String::from).collect();
    let (pid, start): (i32, u64) = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?);
    let named =
        |c: &str| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|n| n.trim() == c);
    (state::running(pid, start) && comm.is_none_or(named)).then_some((pid, f))
}

fn read_holder(dir: &Path) -> Option<Holder> {
    let (pid, f) = alive(&dir.join("holder.pid"), Some(HOLDER_NAME))?;
    Some(Holder {
        pid,
        exit_fd: f.get(2)?.parse().ok()?,
    })
}

/// The holder's pid, if the one its file names still runs.
pub fn live_holder(dir: &Path) -> Option<i32> {
    read_holder(dir).map(|h| h.pid)
}

/// The holder's process name (`comm`).
const HOLDER_NAME: &str = "stack-userns";

/// Stops every process in the user namespace of the store at `root`'s
/// holder (engine, DNS server, monitors, containers), then the holder, and
/// with it slirp4netns: what is left of a rootless store is files.
pub fn stop(root: &Path) {
    let Some(holder) = live_holder(&dir(root)) else {
        return;
    };
    let kill = |pid: i32| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    };
    let slirp = alive(&dir(root).join("slirp.pid"), None).map(|(p, _)| p);
    for _ in 0..100 {
        let inside: Vec<i32> = state::in_namespace("user", holder)
            .into_iter()
            .filter(|p| *p != holder)
            .collect();
        if inside.is_empty() {
            break;
        }
        inside.into_iter().for_each(kill);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    kill(holder);
    slirp.into_iter().for_each(kill);
    [Some(holder), slirp].into_iter().flatten().for_each(gone);
}

/// Waits (a second at most) until process `pid` is gone, or a zombie its
/// parent has not reaped.
fn gone(pid: i32) {
    for _ in 0..500 {
        if !state::process_running(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn join(pid: i32) -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(|e| setup("the working directory", e))?;
    let open = |ns: &str| -> Result<fs::File, Error> {
        let p = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
        fs::File::open(&p).map_err(io_err(&p))
    };
    let (user, mnt, net) = (open("user")?, open("mnt")?, open("net")?);
    for (f, kind, what) in [
        (&user, CloneFlags::CLONE_NEWUSER, "user"),
        (&mnt, CloneFlags::CLONE_NEWNS, "mount"),
        (&net, CloneFlags::CLONE_NEWNET, "network"),
    ] {
        nix::sched::setns(f, kind).map_err(|e| {
            setup(
                &format!("joining the {what} namespace of the holder (pid {pid})"),
                e,
            )
        })?;
    }
    // Joining a mount namespace moves us to its root directory: back to
    // where we were, the same path in the holder's copy of the host's.
    std::env::set_current_dir(&cwd).map_err(|e| {
        setup(
            &format!(
                "the working directory `{}` in the holder's mount namespace",
                cwd.display()
            ),
            e,
        )
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The user's name, from `/etc/passwd` (for their lines in `/etc/sub?id`).
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// One byte through a pipe, the two sides' only conversation.
fn say(fd: &OwnedFd, b: u8) -> io::Result<()> {
    fs::File::from(fd.try_clone()?).write_all(&[b])
}

fn hear(fd: &OwnedFd) -> io::Result<u8> {
    let mut b = [0u8];
    fs::File::from(fd.try_clone()?).read_exact(&mut b)?;
    Ok(b[0])
}

/// What the engine's namespace resolves names with: the host's
/// `/etc/resolv.conf`, unless it names loopback resolvers only (a stub such
/// as systemd-resolved's 127.0.0.53), which are not reachable from there:
/// then slirp4netns's 10.0.2.3, which asks the host's.
fn own_resolv_conf(host: &str) -> Option<String> {
    let servers: Vec<std::net::IpAddr> = host
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    if !servers.is_empty() && servers.iter().any(|s| !s.is_loopback()) {
        return None;
    }
    let mut text = String::from("nameserver 10.0.2.3\n");
    for l in host
        .lines()
        .filter(|l| l.starts_with("search") || l.starts_with("options"))
    {
        text.push_str(l);
        text.push('\n');
    }
    Some(text)
}

/// Kills and reaps the holder unless disarmed (every way out of `create`
/// before the holder is recorded).
struct Abort(Option<nix::unistd::Pid>);

impl Drop for Abort {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Makes the holder and its network link; returns the holder's pid.
fn create(root: &Path) -> Result<i32, Error> {
    let uidmap = which("newuidmap").ok_or(Error::NoIdMapper("newuidmap"))?;
    let gidmap = which("newgidmap").ok_or(Error::NoIdMapper("newgidmap"))?;
    let slirp = which("slirp4netns").ok_or(Error::NoSlirp)?;
    use nix::unistd::AccessFlags;
    nix::unistd::access("/dev/net/tun", AccessFlags::R_OK | AccessFlags::W_OK)
        .map_err(|e| Error::NoTun(e.into()))?;
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let name = user_name(uid);
    // Both files name the user by login name or uid (never by gid).
    let range = |file: &'static str, kind: &'static str| {
        fs::read_to_string(file)
            .ok()
            .and_then(|t| subordinate(&t, &name, uid))
            .ok_or_else(|| Error::NoRange {
                user: name.clone(),
                kind,
                file,
            })
    };
    let subuids = range("/etc/subuid", "user ids")?;
    let subgids = range("/etc/subgid", "group ids")?;
    let resolv = match own_resolv_conf(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    {
        Some(text) => {
            let file = dir(root).join("resolv.conf");
            stack_sys::write_atomic(&file, text.as_bytes()).map_err(io_err(&file))?;
            Some(file)
        }
        None => None,
    };

    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| setup("pipe", e));
    let (up_r, up_w) = pipe()?; // holder -> us
    let (down_r, down_w) = pipe()?; // us -> holder
    let (exit_r, exit_w) = pipe()?; // slirp4netns ends when the holder does
    let parent = nix::unistd::getpid();
    // SAFETY: the process has one thread (`enter` runs first thing, and the
    // kernel would refuse our own setns otherwise); the child only makes
    // system calls and never returns from this block.
    #[allow(unsafe_code)]
    let fork = unsafe { nix::unistd::fork() }.map_err(|e| setup("fork", e))?;
    let holder = match fork {
        nix::unistd::ForkResult::Child => {
            drop((up_r, down_w, exit_r));
            let keep = [up_w.as_raw_fd(), down_r.as_raw_fd(), exit_w.as_raw_fd()];
            let code = match hold(&up_w, &down_r, &keep, parent, resolv.as_deref()) {
                Ok(never) => match never {},
                Err(e) => {
                    let _ = fs::File::from(up_w).write_all(format!("!{e}").as_bytes());
                    1
                }
            };
            std::process::exit(code);
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let mut abort = Abort(Some(holder));
    let exit_fd = exit_w.as_raw_fd();
    drop((up_w, down_r, exit_w));
    let failed = |what: &str| {
        let mut why = String::new();
        if let Ok(fd) = up_r.try_clone() {
            let _ = fs::File::from(fd).read_to_string(&mut why);
        }
        setup(what, why.trim_start_matches('!'))
    };
    if hear(&up_r).ok() != Some(b'u') {
        return Err(failed("the holder's namespaces"));
    }
    let pid = holder.as_raw().to_string();
    for (tool, id, (start, count)) in [(&uidmap, uid, subuids), (&gidmap, gid, subgids)] {
        let out = Command::new(tool)
            .args([
                &pid,
                "0",
                &id.to_string(),
                "1",
                "1",
                &start.to_string(),
                &count.to_string(),
            ])
            .output()
            .map_err(io_err(tool))?;
        if !out.status.success() {
            return Err(setup(
                &format!("{} {pid} 0 {id} 1 1 {start} {count}", tool.display()),
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
    }
    say(&down_w, b'm').map_err(|e| setup("the holder", e))?;
    if hear(&up_r).ok() != Some(b'r') {
        return Err(failed("the holder's set-up"));
    }
    let exit = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/{exit_fd}"))
        .map_err(|e| setup("the holder's exit pipe", e))?;
    drop(exit_r);
    link(root, holder.as_raw(), &slirp, exit.into())?;
    let start = state::start_time(holder.as_raw()).unwrap_or(0);
    let file = dir(root).join("holder.pid");
    stack_sys::write_atomic(&file, format!("{pid} {start} {exit_fd}\n").as_bytes())
        .map_err(io_err(&file))?;
    // Recorded: from here the holder outlives us.
    say(&down_w, b'c').map_err(|e| setup("the holder", e))?;
    abort.0 = None;
    Ok(holder.as_raw())
}

/// The holder's side: new namespaces, mapped by the parent, loopback up,
/// its own resolv.conf if the host's is of no use there; then, once the
/// parent has recorded it, it waits for ever (holding the write end of
/// the pipe slirp4netns watches). It dies with the parent until then.
fn hold(
    up: &OwnedFd,
    down: &OwnedFd,
    keep: &[i32],
    parent: nix::unistd::Pid,
    resolv: Option<&Path>,
) -> Result<std::convert::Infallible, Error> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::SIGKILL).map_err(|e| setup("prctl", e))?;
    if nix::unistd::getppid() != parent {
        return Err(setup("the holder", "its parent is gone"));
    }
    // Nothing of the parent's stays open here but the pipes (its lock on
    // the holder's file above all, which would never be let go).
    crate::init::close_inherited_fds(keep);
    nix::unistd::setsid().map_err(|e| setup("setsid", e))?;
    nix::sched::unshare(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET,
    )
    .map_err(|e| setup("unshare", e))?;
    say(up, b'u').map_err(|e| setup("pipe", e))?;
    if hear(down).ok() != Some(b'm') {
        return Err(setup("mapping", "the parent gave up"));
    }
    use nix::mount::MsFlags;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| setup("making / a slave mount", e))?;
    if let Some(resolv) = resolv {
        nix::mount::mount(
            Some(resolv),
            "/etc/resolv.conf",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| setup("binding the engine's resolv.conf", e))?;
    }
    crate::net::loopback_up().map_err(|e| setup("loopback", e))?;
    let _ = nix::unistd::chdir("/");
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    if let Ok(null) = null {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = nix::sys::prctl::set_name(c"stack-userns");
    say(up, b'r').map_err(|e| setup("pipe", e))?;
    if hear(down).ok() != Some(b'c') {
        return Err(setup("the holder", "the parent did not record it"));
    }
    let _ = nix::sys::prctl::set_pdeathsig(None);
    loop {
        nix::unistd::pause();
    }
}

/// Starts slirp4netns on the holder's network namespace (tap0, 10.0.2.100,
/// routed by 10.0.2.2; host loopback out of reach; its seccomp filter on,
/// since it parses every packet the containers send: its `--enable-sandbox`
/// fails under our user namespace, `setegid(0)`, with slirp4netns 1.2),
/// ending when `exit` reads end of file (the holder gone); waits
/// (10 s at most) until it says the link is up, and records it.
fn link(root: &Path, holder: i32, slirp: &Path, exit: OwnedFd) -> Result<(), Error> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| setup("pipe", e))?;
    let socket = forwarder_socket(root);
    let _ = fs::remove_file(&socket);
    let log_path = dir(root).join("slirp4netns.log");
    let log = fs::File::create(&log_path).map_err(io_err(&log_path))?;
    let mut cmd = Command::new(slirp);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-seccomp",
        "--exit-fd=3",
        "--ready-fd=4",
        "--netns-type=path",
    ])
    .arg(format!("--api-socket={}", socket.display()))
    .arg(format!("--userns-path=/proc/{holder}/ns/user"))
    .arg(format!("/proc/{holder}/ns/net"))
    .arg("tap0")
    .stdin(Stdio::null())
    .stdout(log.try_clone().map_err(io_err(&log_path))?)
    .stderr(log);
    let (exit_fd, ready_fd) = (exit.as_raw_fd(), ready_w.as_raw_fd());
    use std::os::unix::process::CommandExt as _;
    // SAFETY: between fork and exec only async-signal-safe calls: setsid
    // and dup2 onto 3 and 4 (from copies above them, so that one of the
    // two being 3 or 4 already cannot be lost).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            let (e, r) = (
                libc::fcntl(exit_fd, libc::F_DUPFD, 10),
                libc::fcntl(ready_fd, libc::F_DUPFD, 10),
            );
            if e < 0 || r < 0 || libc::dup2(e, 3) < 0 || libc::dup2(r, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(e);
            libc::close(r);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io_err(slirp))?;
    drop((exit, ready_w));
    let mut ready = false;
    let mut poll = [nix::poll::PollFd::new(
        ready_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    if nix::poll::poll(&mut poll, nix::poll::PollTimeout::from(10_000u16)).is_ok_and(|n| n > 0) {
        let mut b = [0u8];
        ready = fs::File::from(ready_r).read_exact(&mut b).is_ok() && b[0] == b'1';
    }
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        return Err(setup(
            "slirp4netns",
            log.lines().last().unwrap_or("did not start within 10 s"),
        ));
    }
    let pid = child.id() as i32;
    let file = dir(root).join("slirp.pid");
    stack_sys::write_atomic(
        &file,
        format!("{pid} {}\n", state::start_time(pid).unwrap_or(0)).as_bytes(),
    )
    .map_err(io_err(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_range_is_found_by_name_or_id() {
        let text = "alice:100000:65536\n1001:165536:65536\nbob:231072:0\n";
        assert_eq!(subordinate(text, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subordinate(text, "carol", 1001), Some((165536, 65536)));
        // An empty range is none; an unknown user has none.
        assert_eq!(subordinate(text, "bob", 1002), None);
        assert_eq!(subordinate(text, "dave", 1003), None);
        assert_eq!(subordinate("garbage\n::\n", "dave", 1003), None);
    }

    #[test]
    fn the_engine_resolves_through_slirp_only_when_the_host_uses_loopback_stubs() {
        assert_eq!(own_resolv_conf("nameserver 10.255.255.53\n"), None);
        assert_eq!(
            own_resolv_conf("nameserver 127.0.0.53\nnameserver 9.9.9.9\n"),
            None
        );
        assert_eq!(
            own_resolv_conf("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
                .as_deref(),
            Some("nameserver 10.0.2.3\noptions edns0 trust-ad\nsearch lan\n")
        );
        assert_eq!(
            own_resolv_conf("").as_deref(),
            Some("nameserver 10.0.2.3\n")
        );
    }
}
