//! Mounts made with the mount API of Linux 5.2: a mount of another
//! process's mount namespace, cloned and attached in ours (`open_tree`,
//! `move_mount`: how a container that joins another's IPC namespace gets
//! its /dev/shm, which lives in that container's mount namespace, out of a
//! bind's reach); and a detached read-only view of a directory (`fsopen`,
//! `fsmount`: how the runtime re-executes its own binary without a copy).

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

/// A detached, read-only overlay of directory `dir` (the new mount API of
/// Linux 5.2, `lowerdir+` of 6.8): its files can be read and executed but
/// never written, and it cannot be made writable, since an overlay with no
/// upper layer has nowhere to write. Nothing is attached anywhere: the
/// mount goes when its last fd (or a file opened from it) is closed. An
/// overlay needs two layers without an upper one; the second is an empty
/// detached tmpfs.
pub fn read_only_view(dir: &Path) -> io::Result<OwnedFd> {
    let empty = new_mount(c"tmpfs", &[])?;
    let empty_path = CString::new(format!("/proc/self/fd/{}", empty.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dir = c_path(dir)?;
    // xino off: the files keep their own inode numbers.
    new_mount(
        c"overlay",
        &[
            (c"lowerdir+", &dir),
            (c"lowerdir+", &empty_path),
            (c"xino", &CString::from(c"off")),
        ],
    )
}

/// A new read-only detached mount of file system `fs` with string options
/// `options` (`fsopen`, `fsconfig`, `fsmount`): the fd of its root.
fn new_mount(fs: &std::ffi::CStr, options: &[(&std::ffi::CStr, &CString)]) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    let owned = |r: libc::c_long| {
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd was just returned to us and is owned by no one else.
        #[allow(unsafe_code)]
        Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
    };
    // SAFETY: fsopen takes a NUL-terminated name and flags.
    #[allow(unsafe_code)]
    let context = owned(unsafe { libc::syscall(libc::SYS_fsopen, fs.as_ptr(), FSOPEN_CLOEXEC) })?;
    let config = |cmd: libc::c_uint, key: *const libc::c_char, value: *const libc::c_char| {
        // SAFETY: fsconfig takes the context fd we hold, a command, and a
        // NUL-terminated key and value (or nulls) that live across the call.
        #[allow(unsafe_code)]
        let r =
            unsafe { libc::syscall(libc::SYS_fsconfig, context.as_raw_fd(), cmd, key, value, 0) };
        match r {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    for (key, value) in options {
        config(FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr())?;
    }
    config(FSCONFIG_CMD_CREATE, std::ptr::null(), std::ptr::null())?;
    // SAFETY: fsmount takes the context fd we hold and flags.
    #[allow(unsafe_code)]
    owned(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY,
        )
    })
}
