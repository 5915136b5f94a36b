//! The binary that the runtime re-executes into containers (their
//! monitor and PID 1, an `exec`'s process), in a form that nobody can
//! write through `/proc/PID/exe` (CVE-2019-5736).
//!
//! Which binary: `stack-init` from our own directory where it is there, a
//! binary of that one job whose processes map and relocate a twentieth of
//! the pages `stack` does (they live as long as the containers: their
//! memory is what every container costs); else our own, which has the
//! same hidden modes. Either answers only to its own build (`BUILD_MARK`),
//! and `stack-init` is only chosen when it is of ours.
//!
//! First choice of form: the file as seen through a detached read-only
//! overlay of its directory. No copy: the pages are the file's own, shared
//! with every other process running it, and opening it costs a few
//! syscalls. An overlay with no upper layer cannot be made writable, not
//! even by a process with CAP_SYS_ADMIN that reaches the mount. Where that
//! overlay cannot be made (`lowerdir+` came in Linux 6.8, and an older
//! kernel may refuse a detached mount as a layer; a file system overlayfs
//! does not take; no right to mount), a sealed memfd copy, made once per
//! process: as safe, but a copy (0.8 MB of memory for `stack-init`, 11 MB
//! for `stack`).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// The file name of the small binary beside ours.
pub const INIT_BINARY: &str = "stack-init";

/// The unwritable form of the binary to re-execute, made once per
/// process: every container an engine starts runs the same one.
pub fn sealed_init() -> std::io::Result<&'static OwnedFd> {
    static SEALED: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = SEALED.get() {
        return Ok(fd);
    }
    let exe = std::fs::read_link("/proc/self/exe")?;
    let source = File::open("/proc/self/exe")?;
    let ours = Chosen {
        known: source.metadata()?,
        path: exe.clone(),
        source,
    };
    // Ours, unless the small one is there, fit to run as us.
    let chosen = sibling(&exe, &ours.known, INIT_BINARY).unwrap_or(ours);
    let fd = match read_only_view(&chosen) {
        Ok(fd) => fd,
        Err(_) => seal_copy(&chosen)?,
    };
    // Two first callers at once: one wins, the other is dropped.
    Ok(SEALED.get_or_init(|| fd))
}

/// A binary: where it is (no link on the way), what it was when chosen,
/// and the file itself, open (what a copy is made from).
struct Chosen {
    path: PathBuf,
    known: std::fs::Metadata,
    source: File,
}

/// The path of the binary `name` beside ours, where it is fit to run as
/// us (see `sibling`); else none, and the caller runs our own binary.
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let ours = std::fs::metadata("/proc/self/exe").ok()?;
    sibling(&exe, &ours, name).map(|chosen| chosen.path)
}

/// The binary `name` beside ours (through a link, its target), if it is
/// fit to run as us: a regular executable file, it and its directory
/// owned by root or us and writable by nobody else, of our very build
/// (its bytes hold our `BUILD_MARK`), and not our binary itself. One of
/// another build is said on standard error (an install half upgraded: our
/// own binary runs in its place, at several times the memory); one not
/// safe to run is not (in a rootless user's namespace, root's files are
/// nobody's, and our own binary is the choice there).
fn sibling(exe: &Path, ours: &std::fs::Metadata, name: &str) -> Option<Chosen> {
    let beside = exe.with_file_name(name);
    match fit(&beside, ours) {
        Ok(chosen) => chosen,
        Err(Unfit::OtherBuild) => {
            eprintln!(
                "stack: `{}` is not of this build of stack: `{}` runs in its place",
                beside.display(),
                exe.display()
            );
            None
        }
        Err(Unfit::Unsafe) => None,
    }
}

/// Why a binary beside ours is not run.
enum Unfit {
    /// Missing, not an executable file, or writable by others.
    Unsafe,
    /// It holds no `BUILD_MARK` of ours.
    OtherBuild,
}

/// `sibling`'s checks: the binary chosen, none if it is ours, or why it
/// is unfit.
fn fit(beside: &Path, ours: &std::fs::Metadata) -> Result<Option<Chosen>, Unfit> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::fs::canonicalize(beside).map_err(|_| Unfit::Unsafe)?;
    let mut source = File::from(
        nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|_| Unfit::Unsafe)?,
    );
    let known = source.metadata().map_err(|_| Unfit::Unsafe)?;
    if same_file(&known, ours) {
        return Ok(None);
    }
    let dir = std::fs::metadata(path.parent().ok_or(Unfit::Unsafe)?).map_err(|_| Unfit::Unsafe)?;
    let euid = nix::unistd::geteuid().as_raw();
    let safe = |m: &std::fs::Metadata| (m.uid() == 0 || m.uid() == euid) && m.mode() & 0o022 == 0;
    if !known.is_file() || known.permissions().mode() & 0o111 == 0 || !safe(&known) || !safe(&dir) {
        return Err(Unfit::Unsafe);
    }
    match holds(&mut source, crate::init::BUILD_MARK.as_bytes()) {
        Ok(true) => Ok(Some(Chosen {
            path,
            known,
            source,
        })),
        Ok(false) => Err(Unfit::OtherBuild),
        Err(_) => Err(Unfit::Unsafe),
    }
}

/// Whether the file holds `mark`, read through a small buffer (a whole
/// binary read at once would stay in a long-lived engine's heap).
fn holds(file: &mut File, mark: &[u8]) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024 + mark.len()];
    let mut kept = 0;
    loop {
        let n = std::io::Read::read(file, &mut buf[kept..])?;
        if n == 0 {
            return Ok(false);
        }
        let filled = kept + n;
        // SAFETY: memmem reads the two buffers within the lengths given,
        // both alive across the call (glibc's search: fast on a debug
        // build's 20 MB).
        #[allow(unsafe_code)]
        let found = unsafe {
            !libc::memmem(
                buf.as_ptr().cast(),
                filled,
                mark.as_ptr().cast(),
                mark.len(),
            )
            .is_null()
        };
        if found {
            return Ok(true);
        }
        // A mark across two reads: its start is kept for the next.
        kept = filled.min(mark.len().saturating_sub(1));
        buf.copy_within(filled - kept..filled, 0);
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && identity(a) == identity(b)
}

/// What tells a file from another put in its place: not its device, which
/// the view may show as the overlay's.
fn identity(m: &std::fs::Metadata) -> (u64, u64, [i64; 4]) {
    let times = [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()];
    (m.ino(), m.size(), times)
}

/// The chosen binary opened through a read-only overlay of its directory;
/// an error unless what it opens is the very file chosen (one replaced
/// meanwhile is not).
fn read_only_view(chosen: &Chosen) -> std::io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (chosen.path.parent(), chosen.path.file_name()) else {
        return Err(std::io::ErrorKind::NotFound.into());
    };
    let view = stack_sys::mounts::read_only_view(dir)?;
    // No link followed: one would lead out of the view.
    let file = File::from(nix::fcntl::openat(
        &view,
        Path::new(name),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?);
    if identity(&chosen.known) != identity(&file.metadata()?) {
        return Err(std::io::Error::other(
            "the binary changed since it was chosen",
        ));
    }
    Ok(file.into())
}

/// Copies the chosen binary into a memfd and seals it against every change.
fn seal_copy(chosen: &Chosen) -> std::io::Result<OwnedFd> {
    let fd = memfd_create(
        c"stack-init",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut dst = File::from(fd);
    // From the file checked when chosen, from its start.
    let mut src = &chosen.source;
    std::io::Seek::rewind(&mut src)?;
    std::io::copy(&mut src, &mut dst)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&dst, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(dst.into())
}

/// The path that executes the sealed binary.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    /// The mark is found wherever it sits, across two reads too.
    #[test]
    fn a_mark_is_found_wherever_it_sits() {
        let mark = b"stack-runtime-build=0123456789abcdef";
        let path = std::env::temp_dir().join(format!("stack-seal-mark-{}", std::process::id()));
        let chunk = 64 * 1024 + mark.len();
        for at in [
            None,
            Some(0),
            Some(chunk - 5),
            Some(chunk + 1),
            Some(3 * chunk - 20),
        ] {
            let mut bytes = vec![b'x'; 4 * chunk];
            if let Some(at) = at {
                bytes[at..at + mark.len()].copy_from_slice(mark);
            }
            std::fs::write(&path, &bytes).unwrap();
            let mut file = std::fs::File::open(&path).unwrap();
            assert_eq!(
                super::holds(&mut file, mark).unwrap(),
                at.is_some(),
                "{at:?}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// Both forms hold the very binary, and neither takes a write (the
    /// view needs the right to mount: these tests run as root).
    #[test]
    fn both_forms_are_our_binary_and_unwritable() {
        let ours = std::fs::read("/proc/self/exe").unwrap();
        let chosen = super::Chosen {
            path: std::fs::read_link("/proc/self/exe").unwrap(),
            known: std::fs::metadata("/proc/self/exe").unwrap(),
            source: std::fs::File::open("/proc/self/exe").unwrap(),
        };
        for (form, fd) in [
            ("view", super::read_only_view(&chosen)),
            ("copy", super::seal_copy(&chosen)),
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
