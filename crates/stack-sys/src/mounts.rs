//! A mount of another process's mount namespace, cloned and attached in
//! ours (the mount API of Linux 5.2: `open_tree`, `move_mount`): how a
//! container that joins another's IPC namespace gets its /dev/shm, which
//! lives in that container's mount namespace, out of a bind's reach.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns takes a namespace fd we hold open and a flag.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached copy of the mount at `path` in the mount namespace of
/// process `pid` (its `path`, as that process sees it). The caller must be
/// single-threaded: it enters that namespace for the call, and comes back.
pub fn clone_from(pid: i32, path: &Path) -> io::Result<OwnedFd> {
    let own = File::open("/proc/self/ns/mnt")?;
    let theirs = File::open(format!("/proc/{pid}/ns/mnt"))?;
    let path = c_path(path)?;
    setns(&theirs)?;
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path and flags, and
    // returns a new fd or -1.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let cloned = if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the fd was just returned to us and is owned by no one else.
        #[allow(unsafe_code)]
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    setns(&own)?;
    cloned
}

/// Attaches a detached mount (from [`clone_from`]) at `target`.
pub fn attach(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let empty = CString::default();
    let target = c_path(target)?;
    // SAFETY: move_mount takes two (dirfd, path) pairs and flags; the paths
    // are NUL-terminated and live across the call.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
