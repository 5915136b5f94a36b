//! The one owner of how stack touches the store root (`$STACK_ROOT`):
//!
//! - [`join`]: a path under a directory from a *name*, checked to be one
//!   plain file name (never `..`, `/`, empty or NUL), so no name ever becomes
//!   a path by itself;
//! - [`private_dir`], [`private_file`]: directories 0700 and files 0600 (the
//!   store holds environment values, secrets and containers' writable
//!   layers, which users other than root must not reach);
//! - [`prepare_root`]: the root itself, 0700, or 0710 (of the group) when a group reaches
//!   the engine's socket in it;
//! - [`remove_tree`]: removal of what stack made under its root, refusing a
//!   symlink, anything outside the root, and never following a link inside;
//! - [`write_atomic`]: a file readers see whole or not at all, across a crash
//!   too (file and directory synced); [`write_replace`], the same but not
//!   synced;
//! - [`random_hex`]: ids from the kernel's random numbers;
//! - [`lock`], [`try_lock`]: lock files (`flock`), held until dropped;
//! - [`time`]: RFC 3339 UTC with nanoseconds, written and read;
//! - [`pidfd`]: processes as file descriptors, to wait on their exits;
//!   [`runs_with_arg`]: whether a process is one of ours in a hidden mode;
//! - [`userns`]: whether stack runs rootless, and what that changes;
//! - [`memory`]: glibc's allocator set up for long-lived processes.

pub mod memory;
pub mod mounts;
pub mod pidfd;
pub mod time;
pub mod userns;

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

/// Why a path under the root was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("`{name}` is not a plain file name (under `{dir}`)", name = .name.escape_debug(), dir = .dir.display())]
    NotAName { dir: PathBuf, name: String },
    #[error("`{path}` is not under `{root}`: not removed", path = .path.display(), root = .root.display())]
    Outside { root: PathBuf, path: PathBuf },
    #[error("`{path}` is a symbolic link, not something stack made: left alone", path = .path.display())]
    Symlink { path: PathBuf },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// An I/O error and the path it happened on: what every crate's error
/// carries for a failed read or write.
#[derive(Debug, thiserror::Error)]
#[error("`{path}`: {source}", path = .path.display())]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(path: &Path, source: io::Error) -> IoError {
        IoError {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl PathError {
    /// The I/O error itself, for a caller whose own error names the path.
    pub fn into_io(self) -> io::Error {
        match self {
            PathError::Io(e) => e.source,
            other => io::Error::other(other),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
    move |source| PathError::Io(IoError::new(path, source))
}

/// Whether `name` is one plain file name: what [`join`] accepts.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// `dir/name`, where `name` must be one plain file name.
pub fn join(dir: &Path, name: &str) -> Result<PathBuf, PathError> {
    if !is_plain_name(name) {
        return Err(PathError::NotAName {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        });
    }
    Ok(dir.join(name))
}

/// Makes `dir` (and missing parents, 0700) and sets its mode to 0700, even
/// if it was there; a symlink in its place is refused.
pub fn private_dir(dir: &Path) -> Result<(), PathError> {
    set_dir_mode(dir, 0o700)
}

/// Marks `dir` as the top of directory trees for ext4's allocator (the
/// `T` attribute of `chattr`), or, with `on` false, clears the mark. Each
/// directory made in a marked one goes to a block group of the allocator's
/// choice, with room and few directories, not to `dir`'s group, and the
/// files made in it follow it there. Where ext4 runs without a journal,
/// each inode it allocates is found past every inode of its group freed in
/// the last 30 s: many containers made at once after a `down`, each in a
/// group of its own, pass over none of the `down`'s (nor contend on one
/// group's lock). One made at a time is better off near its parent, whose
/// bitmaps are in memory: a group of the allocator's choice is often one
/// whose bitmaps must be read from the disk first. Nothing on a file
/// system without the attribute.
pub fn spread_subdirs(dir: &Path, on: bool) {
    let Ok(d) = std::fs::File::open(dir) else {
        return;
    };
    if let Some(flags) = inode_flags(&d).filter(|f| (f & FS_TOPDIR_FL != 0) != on) {
        let flags = flags ^ FS_TOPDIR_FL;
        // SAFETY: the ioctl reads an int, which lives across the call; the
        // descriptor is open.
        #[allow(unsafe_code)]
        unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&d),
                libc::FS_IOC_SETFLAGS,
                &flags,
            );
        }
    }
}

/// `chattr`'s `T`: the top of directory trees, for ext4's allocator.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// A file's inode flags (`lsattr`), where its file system has them.
fn inode_flags(f: &std::fs::File) -> Option<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: the ioctl writes an int, which lives across the call; the
    // descriptor is open.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(f),
            libc::FS_IOC_GETFLAGS,
            &mut flags,
        )
    };
    (r == 0).then_some(flags)
}

/// Makes the store root `root` with `mode` (0700, or 0710 so that members
/// of the engine's group reach its socket, and nothing else, by name). A
/// root that is a symlink (the store moved to another disk) is followed:
/// the user made it, not a container.
pub fn prepare_root(root: &Path, mode: u32) -> Result<(), PathError> {
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.file_type().is_symlink() => {
            set_dir_mode(&std::fs::canonicalize(root).map_err(io_err(root))?, mode)
        }
        _ => set_dir_mode(root, mode),
    }
}

fn set_dir_mode(dir: &Path, mode: u32) -> Result<(), PathError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let meta = std::fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if meta.file_type().is_symlink() {
        return Err(PathError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Opens `path` for writing as a new or truncated file readable by its
/// owner only (0600 when created; an existing file's mode is set too),
/// never through a symlink.
pub fn private_file(path: &Path) -> Result<std::fs::File, PathError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(path))?;
    Ok(f)
}

/// Replaces `path` with `bytes` so that readers (and a restart after a
/// crash) see the old file or the new one, never part of one: written
/// beside it (0600, never through a link), synced, renamed over it, and
/// the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` so that readers see the old file or the
/// new one, never part of one; not synced: for what a power loss makes
/// worthless anyway (a record of a running process), where a torn file
/// after one is found and dealt with.
pub fn write_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write as _;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = private_file(&tmp).map_err(PathError::into_io)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !durable {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// A lock on a file (`flock`): released when dropped, or when its holder
/// dies. Its descriptor passed to another process (`SCM_RIGHTS`) shares
/// it: then the lock lasts until both have let go.
#[derive(Debug)]
pub struct FileLock(std::fs::File);

impl std::os::fd::AsFd for FileLock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Descriptors the kernel has just passed to this process (`SCM_RIGHTS`
/// of a message received), which nothing else owns yet, as owned ones.
pub fn passed_fds(raw: impl IntoIterator<Item = std::os::fd::RawFd>) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    raw.into_iter()
        // SAFETY: the caller took these from a message just received:
        // new descriptors of this process that nothing else refers to.
        .map(|fd| {
            #[allow(unsafe_code)]
            unsafe {
                std::os::fd::OwnedFd::from_raw_fd(fd)
            }
        })
        .collect()
}

fn lock_file(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Waits for the lock on the file at `path` (made if missing): exclusive,
/// or shared with other shared holders.
pub fn lock(path: &Path, exclusive: bool) -> io::Result<FileLock> {
    let f = lock_file(path)?;
    if exclusive {
        f.lock()?;
    } else {
        f.lock_shared()?;
    }
    Ok(FileLock(f))
}

/// The exclusive lock on the file at `path` if nobody holds it; `None` if
/// somebody does.
pub fn try_lock(path: &Path) -> io::Result<Option<FileLock>> {
    let f = lock_file(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(FileLock(f))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(n: usize) -> io::Result<String> {
    use std::io::Read as _;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Removes the directory tree `path`, which must lie under `root` (checked
/// on the names, and no directory between them may be a symlink); false if
/// there was none. Links inside the tree are removed, never followed.
pub fn remove_tree(root: &Path, path: &Path) -> Result<bool, PathError> {
    let outside = || PathError::Outside {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
    };
    let rest = path.strip_prefix(root).map_err(|_| outside())?;
    if rest.as_os_str().is_empty()
        || rest
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(outside());
    }
    let mut at = root.to_path_buf();
    for c in rest.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(PathError::Symlink { path: at }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&at)(e)),
        }
    }
    // std's remove_dir_all removes links without following them.
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Whether process `pid` has `arg` among its arguments (a hidden mode of
/// ours: a monitor, the DNS server), as `/proc/PID/cmdline` shows them.
pub fn runs_with_arg(pid: impl std::fmt::Display, arg: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// On ext4 (the build's own disk, where the tests run from one), the
    /// directory gets the `T` attribute and loses it again, and keeps its
    /// other ones; on another file system, nothing fails.
    #[test]
    fn spread_subdirs_marks_an_ext4_directory_top() {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .join(format!("spread-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let flags = || inode_flags(&std::fs::File::open(&d).unwrap());
        let before = flags();
        spread_subdirs(&d, true);
        spread_subdirs(&d, true);
        let marked = flags();
        spread_subdirs(&d, false);
        let ext4 = {
            let path = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `statfs` fills the struct given, which lives across
            // the call, from a NUL-terminated path.
            #[allow(unsafe_code)]
            unsafe {
                let mut st: libc::statfs = std::mem::zeroed();
                libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type == libc::EXT4_SUPER_MAGIC
            }
        };
        if ext4 {
            let (before, marked, after) = (before.unwrap(), marked.unwrap(), flags().unwrap());
            assert_eq!(marked, before | FS_TOPDIR_FL, "{before:#x} -> {marked:#x}");
            assert_eq!(after, before, "{marked:#x} -> {after:#x}");
        } else {
            eprintln!("not ext4: only checked that nothing fails");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stack-sys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn join_takes_plain_names_only() {
        let d = Path::new("/r/volumes");
        assert_eq!(
            join(d, "shop_data").unwrap(),
            Path::new("/r/volumes/shop_data")
        );
        for bad in [
            "",
            ".",
            "..",
            "/tmp/x/vol",
            "../../x",
            "a/b",
            "a\0b",
            &"x".repeat(256),
        ] {
            let e = join(d, bad).unwrap_err();
            assert!(matches!(e, PathError::NotAName { .. }), "{bad:?}");
        }
        assert_eq!(
            join(d, "a/\u{1b}").unwrap_err().to_string(),
            "`a/\\u{1b}` is not a plain file name (under `/r/volumes`)"
        );
    }

    proptest! {
        /// Whatever the name, a joined path is one level below its directory.
        #[test]
        fn a_joined_path_stays_inside(name in "[a-z./\\\\\0-]{0,12}") {
            let d = Path::new("/r/volumes");
            if let Ok(p) = join(d, &name) {
                prop_assert_eq!(p.parent(), Some(d));
                prop_assert!(p.components().all(|c| !matches!(c, Component::ParentDir)));
                prop_assert_eq!(p.components().count(), d.components().count() + 1);
            }
        }
    }

    #[test]
    fn private_dirs_and_files_are_the_owners_only() {
        let d = temp("private");
        let sub = d.join("a/b");
        private_dir(&sub).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&d.join("a")), 0o700);
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700, "an existing directory is closed too");
        let f = sub.join("state.json");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(private_file(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        prepare_root(&d.join("root"), 0o710).unwrap();
        assert_eq!(mode(&d.join("root")), 0o710);
        // A root moved elsewhere by a link is followed.
        std::fs::create_dir(d.join("disk")).unwrap();
        std::os::unix::fs::symlink(d.join("disk"), d.join("moved")).unwrap();
        prepare_root(&d.join("moved"), 0o700).unwrap();
        assert_eq!(mode(&d.join("disk")), 0o700);
        // Never through a link.
        std::os::unix::fs::symlink(d.join("victim"), sub.join("link")).unwrap();
        assert!(private_file(&sub.join("link")).is_err());
        assert!(!d.join("victim").exists());
        std::os::unix::fs::symlink(&sub, d.join("dirlink")).unwrap();
        assert!(matches!(
            private_dir(&d.join("dirlink")),
            Err(PathError::Symlink { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_writes_replace_whole_and_leave_nothing_beside() {
        let d = temp("atomic");
        let p = d.join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temp file left"
        );
        // A directory in the file's place: an error, and nothing left beside.
        std::fs::create_dir(d.join("dir")).unwrap();
        assert!(write_atomic(&d.join("dir"), b"x").is_err());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        let id = random_hex(8).unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, random_hex(8).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn locks_exclude_each_other_and_go_with_their_holder() {
        let d = temp("locks");
        let p = d.join("engine.lock");
        let held = try_lock(&p).unwrap().expect("nobody holds it");
        assert!(try_lock(&p).unwrap().is_none(), "held");
        drop(held);
        let shared = lock(&p, false).unwrap();
        let also = lock(&p, false).unwrap();
        assert!(try_lock(&p).unwrap().is_none(), "shared holders keep it");
        drop((shared, also));
        assert!(try_lock(&p).unwrap().is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn removal_stays_under_the_root_and_follows_no_link() {
        let d = temp("remove");
        let (root, victim) = (d.join("root"), d.join("victim"));
        std::fs::create_dir_all(root.join("volumes/v/_data")).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("keep"), "x").unwrap();
        // A link inside the tree goes, what it points at stays.
        std::os::unix::fs::symlink(&victim, root.join("volumes/v/_data/out")).unwrap();
        assert!(remove_tree(&root, &root.join("volumes/v")).unwrap());
        assert!(victim.join("keep").exists());
        assert!(
            !remove_tree(&root, &root.join("volumes/v")).unwrap(),
            "gone already"
        );
        // A link in the tree's place, or on the way to it, is refused.
        std::os::unix::fs::symlink(&victim, root.join("volumes/w")).unwrap();
        assert!(matches!(
            remove_tree(&root, &root.join("volumes/w")),
            Err(PathError::Symlink { .. })
        ));
        std::os::unix::fs::symlink(&victim, root.join("projects")).unwrap();
        assert!(matches!(
            remove_tree(&root, &root.join("projects/keep")),
            Err(PathError::Symlink { .. })
        ));
        // Outside the root, by name or by `..`.
        for p in [
            victim.clone(),
            root.join("volumes/../../victim"),
            root.clone(),
        ] {
            assert!(
                matches!(remove_tree(&root, &p), Err(PathError::Outside { .. })),
                "{p:?}"
            );
        }
        assert!(victim.join("keep").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
