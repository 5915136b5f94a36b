//! `-t`: a pseudo-terminal between the user's terminal and the app.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::Winsize;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::os::unix::fs::OpenOptionsExt;

/// The socket pair over which the container's side sends the pty master.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Our side: receive the master and relay until the app's side closes.
pub fn serve((ours, theirs): (OwnedFd, OwnedFd), interactive: bool) {
    drop(theirs);
    if let Ok(Some(master)) = receive_master(&ours) {
        let _ = relay(master, interactive);
    }
}

/// In PID 1, after pivoting: a pty from the container's own devpts (so
/// `tty` inside names it), sized `size` or like the terminal we run on
/// (24x80 without one), set before the app starts; its master sent to the
/// monitor over `sock`, its slave made our stdin, stdout and stderr.
pub fn open_in_container(sock: &OwnedFd, size: Option<(u16, u16)>) -> io::Result<()> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let (rows, cols) = size.or_else(self::size).unwrap_or((24, 80));
    set_size(&master, rows, cols)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)?;
    send_fd(sock.as_raw_fd(), &master)?;
    drop(master);
    nix::unistd::dup2_stdin(&slave)?;
    nix::unistd::dup2_stdout(&slave)?;
    nix::unistd::dup2_stderr(&slave)?;
    Ok(())
}

/// Sends `fd` over the unix socket `sock`.
fn send_fd(sock: std::os::fd::RawFd, fd: &impl AsRawFd) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    let iov = [io::IoSlice::new(b"m")];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// In an exec whose caller relays its streams: the master the command's
/// side sends goes on to the caller, over our standard input (a socket).
pub fn pass_master((ours, theirs): (OwnedFd, OwnedFd)) -> io::Result<()> {
    drop(theirs);
    if let Some(master) = receive_master(&ours)? {
        send_fd(libc::STDIN_FILENO, &master)?;
    }
    Ok(())
}

/// Sets a pty's size (the kernel tells its foreground process group).
pub fn set_size(master: &impl AsRawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one Winsize, which lives through the call.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the monitor: the pty master PID 1 sends; `None` when PID 1 failed
/// before sending it.
pub fn receive_master(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
                #[allow(unsafe_code)]
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) }));
            }
        }
    }
    Ok(None)
}

/// In the app, before exec: a session of its own with the pty (on stdin) as
/// its controlling terminal.
pub fn make_controlling() -> io::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an int argument and touches no memory of ours.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Our terminal (on stdin) in raw mode while this lives, restored after;
/// nothing when stdin is no terminal.
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enable() -> RawMode {
        RawMode::with(cfmakeraw)
    }

    /// Keys one at a time, not echoed, Ctrl-C still a signal (a menu's keys).
    pub fn keys() -> RawMode {
        use nix::sys::termios::LocalFlags;
        RawMode::with(|t| t.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO))
    }

    fn with(change: impl FnOnce(&mut nix::sys::termios::Termios)) -> RawMode {
        let stdin = io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            change(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        RawMode(saved)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Our terminal's size (rows, columns), if stdin or stdout is one.
pub fn size() -> Option<(u16, u16)> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid Winsize to write to.
    #[allow(unsafe_code)]
    let r = unsafe { terminal_size(&mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Copies our stdin to the pty and the pty to our stdout until the app's side
/// closes; our terminal, if any, is raw meanwhile and restored after.
pub fn relay(master: OwnedFd, interactive: bool) -> io::Result<()> {
    let _raw = RawMode::enable();
    copy_loop(&master, interactive)
}

/// Our terminal's size: stdin may be closed (no `-i`), stdout is the terminal then.
/// Returns what ioctl returns (0 on success).
///
/// # Safety
/// `ws` is a valid Winsize to write to.
#[allow(unsafe_code)]
unsafe fn terminal_size(ws: &mut Winsize) -> libc::c_int {
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: TIOCGWINSZ writes one Winsize into `ws`, valid per the contract.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, ws as *mut Winsize) } == 0 {
            return 0;
        }
    }
    -1
}

/// Copies our terminal's size onto the pty.
fn copy_winsize(master: &OwnedFd) {
    if let Some((rows, cols)) = size() {
        let _ = set_size(master, rows, cols);
    }
}

fn copy_loop(master: &OwnedFd, interactive: bool) -> io::Result<()> {
    // A resized terminal resizes the app's: SIGWINCH through a signalfd.
    let mut winch_mask = nix::sys::signal::SigSet::empty();
    winch_mask.add(nix::sys::signal::Signal::SIGWINCH);
    winch_mask.thread_block()?;
    let winch = nix::sys::signalfd::SignalFd::with_flags(
        &winch_mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )?;
    // SAFETY: fds 0 and 1 stay open for the life of this process.
    #[allow(unsafe_code)]
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut buf = [0u8; 8192];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(winch.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let winch_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .get(2)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if winch_ready {
            let _ = winch.read_signal();
            copy_winsize(master);
        }
        if master_ready {
            match nix::unistd::read(master, &mut buf) {
                // EIO: every holder of the pty's other side is gone.
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()),
                Ok(n) => write_all(stdout, &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

pub(crate) fn write_all(fd: BorrowedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => {
                return Err(io::Error::other(format!(
                    "writing to fd {}: {e}",
                    fd.as_raw_fd()
                )))
            }
        }
    }
    Ok(())
}
