//! `-t`: a pseudo-terminal between the user's terminal and the app.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, OpenptyResult, Winsize};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// A new pty, sized like our own terminal when we have one.
pub fn open() -> io::Result<OpenptyResult> {
    let mut ws = Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one Winsize into `ws`; on a descriptor that
    // is no terminal it fails and `ws` keeps its default.
    #[allow(unsafe_code)]
    unsafe {
        libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws);
    }
    Ok(openpty(Some(&ws), None)?)
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

/// Copies our stdin to the pty and the pty to our stdout until the app's side
/// closes; our terminal, if any, is raw meanwhile and restored after.
pub fn relay(master: OwnedFd, interactive: bool) -> io::Result<()> {
    let stdin = io::stdin();
    let saved = tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    }
    let result = copy_loop(&master, interactive);
    if let Some(t) = &saved {
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    result
}

fn copy_loop(master: &OwnedFd, interactive: bool) -> io::Result<()> {
    // SAFETY: fds 0 and 1 stay open for the life of this process.
    #[allow(unsafe_code)]
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut buf = [0u8; 8192];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        drop(fds);
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

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> io::Result<()> {
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
