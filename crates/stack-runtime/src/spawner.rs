//! The engine's spawner: one process of the sealed init binary, exec'd
//! once, that forks each detached container's monitor when asked.
//!
//! An exec of a glibc program costs about half a millisecond of CPU before
//! `main` where CPUID traps to the hypervisor (glibc and libgcc ask it the
//! caches' sizes at every start, a hundred times over), and a container
//! was one such exec. A fork of a small single-threaded process is a tenth
//! of that. The monitor starts as an exec'd one would: the same binary,
//! its own process group, /dev/null, the started pipe and its complaints'
//! file as descriptors 0, 1 and 2, SIGCHLD at its default, no signal
//! blocked; its payload arrives on a pipe as an exec'd one's does.
//!
//! The spawner reaps the monitors it forked, as the engine reaps those it
//! execs, and ends when the engine's end of its socket closes (the engine
//! gone): its monitors go on under init, as they would.
//!
//! Only a process that [`enable`]s it (the engine) has one; anywhere else,
//! and whenever the spawner cannot be had, the monitor is exec'd.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    RecvMsg, SockFlag, SockType,
};

/// The spawner's arguments after `INIT_ARG`: its socket's descriptor, then
/// this word.
pub(crate) const SPAWNER: &str = "spawner";

/// What the engine asks for: a monitor, with three descriptors.
const REQUEST: &[u8] = b"monitor";

static ENABLED: AtomicBool = AtomicBool::new(false);
static SPAWNER_PROCESS: Mutex<Option<Spawner>> = Mutex::new(None);

/// This process's detached containers get their monitors from a spawner.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

struct Spawner {
    sock: OwnedFd,
    child: std::process::Child,
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A monitor the spawner forked.
pub(crate) struct Forked {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Has the spawner fork a monitor: `payload` (what an exec'd one reads
/// from its pipe) on a pipe, `started` as its standard output and `diag`
/// as its standard error. `None`: no spawner here (not enabled, or none
/// could be had): the caller execs the monitor, with its descriptors
/// untouched.
pub(crate) fn fork_monitor(
    payload: &str,
    started: &OwnedFd,
    diag: &OwnedFd,
) -> Option<io::Result<Forked>> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let (payload_r, payload_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    let forked = {
        let mut guard = SPAWNER_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = start().ok();
        }
        let sock = guard.as_ref()?.sock.as_raw_fd();
        let fds = [payload_r.as_raw_fd(), started.as_raw_fd(), diag.as_raw_fd()];
        let sent = sendmsg::<()>(
            sock,
            &[IoSlice::new(REQUEST)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        );
        if sent.is_err() {
            // Gone (the kernel took no descriptor): a new one next time,
            // an exec this time.
            *guard = None;
            return None;
        }
        drop(payload_r);
        match receive(sock) {
            Ok(reply) => reply,
            // Gone or stuck mid-request: an exec this time (a monitor it
            // forked gets no payload, and ends).
            Err(_) => {
                *guard = None;
                return None;
            }
        }
    };
    // Past the lock: a payload larger than the pipe is read as it is
    // written. A monitor whose reply was lost reads none, and ends.
    if forked.is_ok() {
        let mut w = std::fs::File::from(payload_w);
        if let Err(e) = io::Write::write_all(&mut w, &crate::init::framed(payload)) {
            return Some(Err(e));
        }
    }
    Some(forked)
}

/// The spawner's answer: `ok PID` with the monitor's pidfd, or why not
/// (the inner error); the outer one, the exchange itself failed.
fn receive(sock: RawFd) -> io::Result<io::Result<Forked>> {
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let pidfd = brought(&msg)?.into_iter().next();
    let n = msg.bytes;
    if n == 0 {
        return Err(io::Error::other("the monitor spawner ended"));
    }
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(
        match (text.strip_prefix("ok ").and_then(|p| p.parse().ok()), pidfd) {
            (Some(pid), Some(pidfd)) => Ok(Forked { pid, pidfd }),
            (Some(_), None) if truncated => Err(io::Error::other(
                "the monitor's pidfd did not come: no descriptor left to take it",
            )),
            _ => Err(io::Error::other(format!("the monitor spawner: {text}"))),
        },
    )
}

/// The descriptors a message brought, each ours to close.
fn brought(msg: &RecvMsg<'_, '_, ()>) -> nix::Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(stack_sys::passed_fds(raw));
        }
    }
    Ok(fds)
}

/// Execs the spawner, its socket as its standard input.
fn start() -> io::Result<Spawner> {
    use std::os::unix::process::CommandExt as _;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // A spawner that does not answer within this is taken for stuck.
    nix::sys::socket::setsockopt(
        &ours,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(10, 0),
    )?;
    let exe = crate::seal::sealed_init()?;
    let child = Command::new(crate::seal::fd_path(exe))
        .arg(crate::init::INIT_ARG)
        .arg("0")
        .arg(SPAWNER)
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        // Our terminal's signals are not its business.
        .process_group(0)
        .spawn()?;
    Ok(Spawner { sock: ours, child })
}

/// The spawner's life, on the socket `sock`: a monitor forked per request,
/// every child reaped, until the engine's end closes.
pub(crate) fn serve(sock: RawFd) -> ! {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use std::os::fd::BorrowedFd;
    let _ = nix::sys::prctl::set_name(c"stack-spawner");
    // What the engine had open, not marked close-on-exec, as we were
    // spawned (another child's pipe, say) is not ours to keep open.
    crate::init::close_inherited_fds(&[sock]);
    extern "C" fn wake(_: libc::c_int) {}
    // SIGCHLD comes only while we wait for a request (so its reaping is
    // never missed), and only interrupts that wait.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let handler = SigAction::new(SigHandler::Handler(wake), SaFlags::empty(), SigSet::empty());
    let set_up = chld.thread_block().and_then(|()| {
        // SAFETY: the handler does nothing.
        #[allow(unsafe_code)]
        unsafe { sigaction(Signal::SIGCHLD, &handler) }.map(drop)
    });
    if let Err(e) = set_up {
        eprintln!("stack: the monitor spawner: {e}");
        std::process::exit(1);
    }
    // SAFETY: our standard input, the socket, ours for as long as we live.
    #[allow(unsafe_code)]
    let sock_fd = unsafe { BorrowedFd::borrow_raw(sock) };
    loop {
        while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
        let mut fds = [PollFd::new(sock_fd, PollFlags::POLLIN)];
        match ppoll(&mut fds, None, Some(SigSet::empty())) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        }
        let mut buf = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 3]);
        let (n, received, truncated) =
            match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()) {
                Ok(msg) => (
                    msg.bytes,
                    brought(&msg).unwrap_or_default(),
                    msg.flags.contains(MsgFlags::MSG_CTRUNC),
                ),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => std::process::exit(1),
            };
        if n == 0 {
            // The engine is gone.
            std::process::exit(0);
        }
        let reply = match <[OwnedFd; 3]>::try_from(received) {
            Ok(fds) if &buf[..n] == REQUEST => fork_one(sock, fds),
            _ if truncated => Err("its descriptors did not come: none left to take them".into()),
            _ => Err("a request it does not know".to_string()),
        };
        // `ok PID` with the pidfd, or why not.
        let (text, pidfd) = match reply {
            Ok(forked) => (format!("ok {}", forked.pid), Some(forked.pidfd)),
            Err(why) => (why, None),
        };
        let fds: Vec<RawFd> = pidfd.iter().map(AsRawFd::as_raw_fd).collect();
        let rights = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        let _ = sendmsg::<()>(
            sock,
            &[IoSlice::new(text.as_bytes())],
            cmsgs,
            MsgFlags::empty(),
            None,
        );
    }
}

/// Forks the monitor of a request; its pidfd, opened before any reaping.
fn fork_one(sock: RawFd, [payload, started, diag]: [OwnedFd; 3]) -> Result<Forked, String> {
    use nix::unistd::{fork, ForkResult};
    // SAFETY: this process runs one thread.
    #[allow(unsafe_code)]
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => become_monitor(sock, payload, started, diag),
        ForkResult::Parent { child } => {
            drop((payload, started, diag));
            let pidfd = stack_sys::pidfd::open(child.as_raw()).map_err(|e| e.to_string())?;
            Ok(Forked {
                pid: child.as_raw(),
                pidfd,
            })
        }
    }
}

/// In the forked child: what an exec'd monitor starts with, then its life.
fn become_monitor(sock: RawFd, payload: OwnedFd, started: OwnedFd, diag: OwnedFd) -> ! {
    use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
    // SAFETY: the default disposition runs no code of ours.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
    let _ = SigSet::empty().thread_set_mask();
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    // /dev/null in the socket's place (standard input, where the spawner
    // has it), and the socket closed wherever it was: never left to the
    // container, whose requests the spawner would take for the engine's.
    let null = std::fs::File::open("/dev/null");
    let nulled = null
        .as_ref()
        .is_ok_and(|n| nix::unistd::dup2_stdin(n).is_ok());
    if sock != libc::STDIN_FILENO || !nulled {
        let _ = nix::unistd::close(sock);
    }
    drop(null);
    let _ = nix::unistd::dup2_stdout(&started);
    let _ = nix::unistd::dup2_stderr(&diag);
    drop((started, diag));
    // Read by the monitor as an exec'd one reads its pipe; closed with the
    // other inherited descriptors once it has.
    let fd = payload.into_raw_fd();
    crate::init::init_main(&fd.to_string(), Some("1"))
}
