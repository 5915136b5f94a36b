//! Processes as file descriptors: a pidfd becomes readable once its
//! process has exited, so a waiter polls (or registers with an event loop)
//! instead of sleeping; and unlike a pid it never names another process.

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd};

/// A pidfd of process `pid` (`pidfd_open(2)`, Linux 5.3).
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us and is owned by no one else.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pidfd_of_an_exited_child_is_readable() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let fd = super::open(child.id() as i32).unwrap();
        child.wait().unwrap();
        let mut poll = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        #[allow(unsafe_code)]
        let n = unsafe { libc::poll(&mut poll, 1, 5000) };
        assert_eq!(n, 1);
        assert!(super::open(-1).is_err());
    }
}
