//! A sealed in-memory copy of our own binary, to re-execute into containers.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// The sealed copy of our binary, made once per process: every container
/// an engine starts runs the same copy, so its pages are in memory once,
/// not once per container.
pub fn sealed_self() -> std::io::Result<&'static OwnedFd> {
    static SEALED: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = SEALED.get() {
        return Ok(fd);
    }
    let fd = seal_copy()?;
    // Two first callers at once: one copy wins, the other is dropped.
    Ok(SEALED.get_or_init(|| fd))
}

/// Copies /proc/self/exe into a memfd and seals it against every change.
fn seal_copy() -> std::io::Result<OwnedFd> {
    let fd = memfd_create(
        c"stack-init",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut dst = File::from(fd);
    let mut src = File::open("/proc/self/exe")?;
    std::io::copy(&mut src, &mut dst)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&dst, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(dst.into())
}

/// The path that executes the sealed copy.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
