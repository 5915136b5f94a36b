//! Files of a running container, reached from the host without entering
//! it: through its PID 1's root (`/proc/PID/root`), every path resolved by
//! the kernel inside that root (`openat2` with `RESOLVE_IN_ROOT`), so no
//! symlink or `..` the container holds can lead a write outside it
//! (the class of `docker cp` escapes). No process is started: a copy costs a
//! few system calls.
//!
//! Files are replaced atomically (written beside, then renamed over), keep
//! their host mode, and belong to whoever owned what they replace, or else
//! to the owner of their directory (a file synced into an app's directory is
//! the app user's).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, renameat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode};
use nix::unistd::{symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::state::{self, State};

/// How long a copy waits for a container that is still setting up.
const SET_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The root of a running container's filesystem.
pub struct ContainerFs {
    root: OwnedFd,
}

/// A container path as one relative to its root: `/app/./src/` -> `app/src`
/// (`..` stays: the kernel keeps it inside the root).
fn relative(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

/// The directory part and the name of a relative container path, which
/// must name something below the root.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match rel.components().next_back() {
        Some(Component::Normal(name)) => Ok((rel.parent().unwrap_or(Path::new("")), name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`/{}` does not name a file in the container", rel.display()),
        )),
    }
}

fn with_path(e: impl Into<io::Error>, what: &str, path: &Path) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{what} `/{}`: {e}", path.display()))
}

impl ContainerFs {
    /// The filesystem of the running container `state` describes.
    pub fn open(state: &State) -> io::Result<ContainerFs> {
        let not_running = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{}` is not running", state.name),
            )
        };
        // Recorded as running before it has pivoted into its root: until
        // it has, /proc/PID/root is the host's.
        state::wait_set_up(state, SET_UP_LIMIT)?;
        let root = nix::fcntl::open(
            format!("/proc/{}/root", state.pid).as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| not_running())?;
        // The pid could have been reused between the check and the open.
        let host =
            fstat(nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?.as_fd())?;
        let theirs = fstat(root.as_fd())?;
        if !state::alive(state) || (theirs.st_dev, theirs.st_ino) == (host.st_dev, host.st_ino) {
            return Err(not_running());
        }
        Ok(ContainerFs { root })
    }

    fn resolve(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        openat2(self.root.as_fd(), rel, how)
    }

    /// The directory `rel` of the container, made (with its parents, owned
    /// as their parent) when `create` and missing.
    fn dir(&self, rel: &Path, create: bool) -> io::Result<OwnedFd> {
        match self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Err(Errno::ENOENT) if create && rel.parent().is_some() => {
                let parent = self.dir(rel.parent().unwrap_or(Path::new("")), true)?;
                let name = rel.file_name().unwrap_or_default();
                match mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => {
                        let owner = fstat(parent.as_fd())?;
                        fchownat_owner(&parent, name, owner.st_uid, owner.st_gid)?;
                    }
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(with_path(e, "cannot make", rel)),
                }
                self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .map_err(|e| with_path(e, "cannot open", rel))
            }
            r => r.map_err(|e| with_path(e, "cannot open", rel)),
        }
    }

    /// Makes `target` in the container what `host` is: a file (contents and
    /// mode), a symlink, or a directory tree (of the entries `keep` keeps);
    /// removes `target` when `host` does not exist. How many files it wrote.
    pub fn copy_in(
        &self,
        host: &Path,
        target: &str,
        keep: &dyn Fn(&Path) -> bool,
    ) -> io::Result<usize> {
        self.copy(host, &relative(target), keep)
    }

    fn copy(&self, host: &Path, rel: &Path, keep: &dyn Fn(&Path) -> bool) -> io::Result<usize> {
        let meta = match std::fs::symlink_metadata(host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove_rel(rel)?;
                return Ok(0);
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("`{}`: {e}", host.display()),
                ))
            }
        };
        let (dir, name) = split(rel)?;
        let parent = self.dir(dir, true)?;
        let ty = meta.file_type();
        if ty.is_dir() {
            if fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|s| s.st_mode & libc::S_IFMT != libc::S_IFDIR)
            {
                remove_entry(&parent, name)?;
            }
            self.dir(rel, true)?;
            let mut written = 0;
            let entries = std::fs::read_dir(host)
                .map_err(|e| io::Error::new(e.kind(), format!("`{}`: {e}", host.display())))?;
            for entry in entries {
                let path = entry?.path();
                if keep(&path) {
                    written +=
                        self.copy(&path, &rel.join(path.file_name().unwrap_or_default()), keep)?;
                }
            }
            return Ok(written);
        }
        let existing = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        if existing.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR) {
            remove_entry(&parent, name)?;
        }
        let owner = existing.map_or_else(|| fstat(parent.as_fd()), Ok)?;
        let temp = temp_name(name);
        if ty.is_symlink() {
            let link = std::fs::read_link(host)?;
            symlinkat(&link, parent.as_fd(), temp.as_os_str())
                .map_err(|e| with_path(e, "cannot write", &dir.join(name)))?;
        } else {
            let mut from = std::fs::File::open(host)
                .map_err(|e| io::Error::new(e.kind(), format!("`{}`: {e}", host.display())))?;
            let fd = openat(
                parent.as_fd(),
                temp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| with_path(e, "cannot write", &dir.join(name)))?;
            let mut to = std::fs::File::from(fd);
            let copied = io::copy(&mut from, &mut to).and_then(|_| {
                fchmod(
                    to.as_fd(),
                    Mode::from_bits_truncate(meta.permissions().mode()),
                )
                .map_err(io::Error::from)
            });
            if let Err(e) = copied {
                let _ = unlinkat(parent.as_fd(), temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                return Err(with_path(e, "cannot write", &dir.join(name)));
            }
        }
        fchownat_owner(&parent, &temp, owner.st_uid, owner.st_gid)?;
        renameat(parent.as_fd(), temp.as_os_str(), parent.as_fd(), name)
            .map_err(|e| with_path(e, "cannot write", &dir.join(name)))?;
        Ok(1)
    }

    /// Removes `target` (a directory with everything in it); nothing to do
    /// if it is not there.
    pub fn remove(&self, target: &str) -> io::Result<()> {
        self.remove_rel(&relative(target))
    }

    fn remove_rel(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = split(rel)?;
        match self.dir(dir, false) {
            Ok(parent) => remove_entry(&parent, name),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `path` in the container is a directory (following its
    /// symlinks inside the root); None if it does not exist.
    pub fn is_dir(&self, path: &str) -> io::Result<Option<bool>> {
        match self.resolve(&relative(path), OFlag::O_PATH) {
            Ok(fd) => Ok(Some(
                fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR,
            )),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(with_path(e, "cannot open", &relative(path))),
        }
    }

    /// Copies `source` out of the container to `host` (which must not be
    /// a directory): a file with its mode, a symlink as a symlink, a
    /// directory with everything in it. How many files it wrote.
    pub fn copy_out(&self, source: &str, host: &Path) -> io::Result<usize> {
        self.copy_out_rel(&relative(source), host)
    }

    fn copy_out_rel(&self, rel: &Path, host: &Path) -> io::Result<usize> {
        let host_err =
            |e: io::Error| io::Error::new(e.kind(), format!("`{}`: {e}", host.display()));
        // The entry itself, not what a last-component symlink points to.
        let (dir, name) = match split(rel) {
            Ok(parts) => parts,
            Err(_) => (Path::new(""), OsStr::new(".")),
        };
        let parent = self.dir(dir, false)?;
        let st = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| with_path(e, "cannot read", rel))?;
        let mode = st.st_mode & 0o7777;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                let link = nix::fcntl::readlinkat(parent.as_fd(), name)?;
                std::os::unix::fs::symlink(link, host).map_err(host_err)?;
                Ok(1)
            }
            libc::S_IFDIR => {
                std::fs::create_dir_all(host).map_err(host_err)?;
                std::fs::set_permissions(host, std::fs::Permissions::from_mode(mode))
                    .map_err(host_err)?;
                let fd = openat(
                    parent.as_fd(),
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let names: Vec<std::ffi::OsString> = nix::dir::Dir::from_fd(fd)?
                    .iter()
                    .filter_map(Result::ok)
                    .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                    .filter(|n| n != "." && n != "..")
                    .collect();
                let mut written = 0;
                for n in names {
                    written += self.copy_out_rel(&rel.join(&n), &host.join(&n))?;
                }
                Ok(written)
            }
            libc::S_IFREG => {
                let fd = openat(
                    parent.as_fd(),
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| with_path(e, "cannot read", rel))?;
                let mut to = std::fs::File::create(host).map_err(host_err)?;
                io::copy(&mut std::fs::File::from(fd), &mut to).map_err(host_err)?;
                to.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(host_err)?;
                Ok(1)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("`/{}` is not a file, directory or symlink", rel.display()),
            )),
        }
    }
}

/// `.NAME.stack-PID-N`: beside the file it replaces, unique in this process.
fn temp_name(name: &OsStr) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = b".".to_vec();
    s.extend_from_slice(name.as_bytes());
    s.extend_from_slice(format!(".stack-{}-{n}", std::process::id()).as_bytes());
    PathBuf::from(OsStr::from_bytes(&s))
}

fn fchownat_owner(
    dir: &OwnedFd,
    name: &(impl AsRef<OsStr> + ?Sized),
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    nix::unistd::fchownat(
        dir.as_fd(),
        name.as_ref(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Removes `name` from `dir`, a directory with its contents (never
/// following a symlink).
fn remove_entry(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            let inner = openat(
                dir.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let names: Vec<std::ffi::OsString> = {
                let mut d = nix::dir::Dir::from_fd(inner.try_clone()?)?;
                d.iter()
                    .filter_map(Result::ok)
                    .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                    .filter(|n| n != "." && n != "..")
                    .collect()
            };
            for n in names {
                remove_entry(&inner, &n)?;
            }
            unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_relative_to_the_root() {
        assert_eq!(relative("/app/./src/"), PathBuf::from("app/src"));
        assert_eq!(relative("/"), PathBuf::new());
        let rel = relative("/app/src/main.js");
        let (dir, name) = split(&rel).unwrap();
        assert_eq!((dir, name), (Path::new("app/src"), OsStr::new("main.js")));
        assert_eq!(split(&relative("/x")).unwrap().0, Path::new(""));
        assert!(split(&relative("/")).is_err());
        assert!(split(&relative("/app/..")).is_err());
    }

    #[test]
    fn temp_names_are_hidden_and_unique() {
        let a = temp_name(OsStr::new("a.txt"));
        let b = temp_name(OsStr::new("a.txt"));
        assert!(a.to_string_lossy().starts_with(".a.txt.stack-"));
        assert_ne!(a, b);
    }
}
