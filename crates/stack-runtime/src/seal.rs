//! Our own binary, for re-executing into containers, in a form that nobody
//! can write through `/proc/PID/exe` (CVE-2019-5736).
//!
//! First choice: the binary as seen through a detached read-only overlay
//! of its directory. No copy: the pages are the file's own, shared with
//! every other process running it, and opening it costs a few syscalls. An
//! overlay with no upper layer cannot be made writable, not even by a
//! process with CAP_SYS_ADMIN that reaches the mount. Where that overlay
//! cannot be made (`lowerdir+` came in Linux 6.8, and an older kernel may
//! refuse a detached mount as a layer; a file system overlayfs does not
//! take; no right to mount), a sealed memfd copy, made once per process:
//! as safe, but ~10 ms and 19 MB of memory more.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// The unwritable form of our binary, made once per process: every
/// container an engine starts runs the same one.
pub fn sealed_self() -> std::io::Result<&'static OwnedFd> {
    static SEALED: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = SEALED.get() {
        return Ok(fd);
    }
    let fd = match read_only_view() {
        Ok(fd) => fd,
        Err(_) => seal_copy()?,
    };
    // Two first callers at once: one wins, the other is dropped.
    Ok(SEALED.get_or_init(|| fd))
}

/// `/proc/self/exe` opened through a read-only overlay of its directory;
/// an error unless what it opens is the very file we run (a binary
/// replaced since we started is not ours).
fn read_only_view() -> std::io::Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(std::io::ErrorKind::NotFound.into());
    };
    let view = stack_sys::mounts::read_only_view(dir)?;
    let file = File::from(nix::fcntl::openat(
        &view,
        Path::new(name),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?);
    let (ours, seen) = (std::fs::metadata("/proc/self/exe")?, file.metadata()?);
    let same = |m: &std::fs::Metadata| {
        let times = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
        (m.ino(), m.size(), times)
    };
    if same(&ours) != same(&seen) {
        return Err(std::io::Error::other("the binary changed since it started"));
    }
    Ok(file.into())
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

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    /// Both forms hold our very binary, and neither takes a write (the
    /// view needs the right to mount: these tests run as root).
    #[test]
    fn both_forms_are_our_binary_and_unwritable() {
        let ours = std::fs::read("/proc/self/exe").unwrap();
        for (form, fd) in [
            ("view", super::read_only_view()),
            ("copy", super::seal_copy()),
        ] {
            let fd = fd.unwrap_or_else(|e| panic!("{form}: {e}"));
            let path = super::fd_path(&fd);
            let mut seen = Vec::new();
            std::fs::File::open(&path)
                .unwrap()
                .read_to_end(&mut seen)
                .unwrap();
            assert!(seen == ours, "{form}: not our binary");
            let write = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(b"pwned"));
            assert!(write.is_err(), "{form}: written to");
        }
    }
}
