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
        // Until it runs, /proc/PID/root may still be the host's.
        state::check_set_up(state)?;
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
        let host_err =
            |e: io::Error| io::Error::new(e.kind(), format!("`{}`: {e}", host.display()));
        let meta = match std::fs::symlink_metadata(host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove_rel(rel)?;
                return Ok(0);
            }
            Err(e) => return Err(host_err(e)),
        };
        let ty = meta.file_type();
        let mode = meta.permissions().mode();
        if ty.is_dir() {
            self.put(rel, Entry::Dir { mode }, None)?;
            let mut written = 0;
            for entry in std::fs::read_dir(host).map_err(host_err)? {
                let path = entry?.path();
                if keep(&path) {
                    written +=
                        self.copy(&path, &rel.join(path.file_name().unwrap_or_default()), keep)?;
                }
            }
            return Ok(written);
        }
        if ty.is_symlink() {
            let target = std::fs::read_link(host).map_err(host_err)?;
            self.put(rel, Entry::Symlink { target }, None)?;
        } else {
            let mut from = std::fs::File::open(host).map_err(host_err)?;
            let size = meta.len();
            self.put(
                rel,
                Entry::File {
                    mode,
                    size,
                    data: &mut from,
                },
                None,
            )?;
        }
        Ok(1)
    }

    /// Makes `rel` in the container what `entry` is. A directory is made
    /// (with its parents) or kept; a file or symlink is written beside and
    /// renamed over what was there (a directory there goes).
    /// With `owner`, what it makes is theirs (`cp -a`); else the owner of
    /// what was there, or of the directory it goes in.
    fn put(&self, rel: &Path, entry: Entry, owner: Option<Owner>) -> io::Result<()> {
        let (dir, name) = split(rel)?;
        let parent = self.dir(dir, true)?;
        let existing = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        let is_dir = |s: &nix::sys::stat::FileStat| s.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if let Entry::Dir { .. } = entry {
            if existing.is_some_and(|s| !is_dir(&s)) {
                remove_entry(&parent, name)?;
            }
            self.dir(rel, true)?;
            if let Some((uid, gid)) = owner {
                fchownat_owner(&parent, name, uid, gid)?;
            }
            return Ok(());
        }
        if existing.is_some_and(|s| is_dir(&s)) {
            remove_entry(&parent, name)?;
        }
        let (uid, gid) = match owner {
            Some(o) => o,
            None => existing
                .map_or_else(|| fstat(parent.as_fd()), Ok)
                .map(|s| (s.st_uid, s.st_gid))?,
        };
        let temp = temp_name(name);
        let cannot_write = |e: io::Error| with_path(e, "cannot write", &dir.join(name));
        match entry {
            Entry::Dir { .. } => unreachable!("handled above"),
            Entry::Symlink { target } => {
                symlinkat(&target, parent.as_fd(), temp.as_os_str())
                    .map_err(|e| cannot_write(e.into()))?;
                fchownat_owner(&parent, &temp, uid, gid)?;
            }
            Entry::File { mode, data, .. } => {
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
                .map_err(|e| cannot_write(e.into()))?;
                let mut to = std::fs::File::from(fd);
                // Owner first: a chown clears setuid and setgid bits.
                let copied = io::copy(data, &mut to).and_then(|_| {
                    fchownat_owner(&parent, &temp, uid, gid)?;
                    fchmod(to.as_fd(), Mode::from_bits_truncate(mode)).map_err(io::Error::from)
                });
                if let Err(e) = copied {
                    let _ = unlinkat(parent.as_fd(), temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                    return Err(cannot_write(e));
                }
            }
        }
        renameat(parent.as_fd(), temp.as_os_str(), parent.as_fd(), name)
            .map_err(|e| cannot_write(e.into()))?;
        Ok(())
    }

    /// Extracts a tar (as `tar_out` or `docker cp` make them: one top
    /// entry, what is under it) into the container at `dest`, as `docker
    /// cp` places it: into the directory `dest` (or `dest/`) under the top
    /// entry's name, else as `dest`; with `contents`, what is under the top
    /// entry into `dest`. Only files, directories and symlinks; every path
    /// resolved inside the container. With `keep_owner`, the owners the
    /// archive says (`cp -a`). How many files it wrote.
    pub fn tar_in(
        &self,
        input: impl io::Read,
        dest: &str,
        contents: bool,
        keep_owner: bool,
    ) -> io::Result<usize> {
        let dest_rel = relative(dest);
        let into_dir = !contents && (dest.ends_with('/') || self.is_dir(dest)? == Some(true));
        tar_entries(input, &mut |top, rest, entry, owner| {
            let base = if into_dir {
                dest_rel.join(top)
            } else {
                dest_rel.clone()
            };
            self.put(&base.join(rest), entry, keep_owner.then_some(owner))
        })
    }

    /// Writes `source` in the container as a tar to `out`: its top entry
    /// named `name`, everything under it (symlinks as symlinks). How many
    /// files it holds.
    pub fn tar_out(&self, source: &str, name: &str, out: impl io::Write) -> io::Result<usize> {
        let mut tar = tar::Builder::new(out);
        let n = self.walk(source, &mut |below, entry, meta| {
            // (`join("")` would add a `/`, which names a directory in a tar.)
            let path = match below.as_os_str().is_empty() {
                true => Path::new(name).to_path_buf(),
                false => Path::new(name).join(below),
            };
            let mut h = tar::Header::new_gnu();
            h.set_uid(meta.uid.into());
            h.set_gid(meta.gid.into());
            h.set_mtime(meta.mtime.max(0) as u64);
            match entry {
                Entry::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(mode);
                    h.set_size(0);
                    tar.append_data(&mut h, &path, io::empty())
                }
                Entry::File { mode, size, data } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(mode);
                    h.set_size(size);
                    // A file that grew is cut at the size it had: the header said so.
                    tar.append_data(&mut h, &path, io::Read::take(data, size))
                }
                Entry::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, &path, &target)
                }
            }
        })?;
        tar.finish()?;
        Ok(n)
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

    /// `path`'s own mode bits (`st_mode`), size and modification time
    /// (seconds), its symlinks inside the root followed but not a last
    /// one; None if it does not exist (`docker cp`'s stat).
    pub fn stat(&self, path: &str) -> io::Result<Option<(u32, u64, i64)>> {
        match self.resolve(&relative(path), OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => {
                let st = fstat(fd.as_fd())?;
                Ok(Some((st.st_mode, st.st_size as u64, st.st_mtime)))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(with_path(e, "cannot open", &relative(path))),
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

    /// Visits `source` and everything under it, never following a
    /// symlink: each with its path below `source` (empty for itself). How
    /// many files and symlinks there were.
    pub fn walk(
        &self,
        source: &str,
        visit: &mut dyn FnMut(&Path, Entry, Meta) -> io::Result<()>,
    ) -> io::Result<usize> {
        self.walk_rel(&relative(source), Path::new(""), visit)
    }

    /// `path` with every symlink on the way and at its end followed, inside
    /// the container's root, one component at a time as the kernel goes
    /// (`..` after a link is the target's parent; never above the root): an
    /// absolute path with no symlink in it. `cp -L`, and a stat's link
    /// target.
    pub fn follow(&self, path: &str) -> io::Result<String> {
        use crate::rootfs::Kind;
        let kind = |rel: &Path| -> Kind {
            let Ok((dir, name)) = split(rel) else {
                return Kind::Dir;
            };
            let Ok(parent) = self.dir(dir, false) else {
                return Kind::Missing;
            };
            match fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    match nix::fcntl::readlinkat(parent.as_fd(), name) {
                        Ok(target) => Kind::Symlink(target.into()),
                        Err(_) => Kind::Missing,
                    }
                }
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Kind::Dir,
                Ok(_) => Kind::File,
                Err(_) => Kind::Missing,
            }
        };
        let rel = crate::rootfs::resolve_beneath(path, &kind)?;
        Ok(Path::new("/").join(rel).to_string_lossy().into_owned())
    }

    fn walk_rel(
        &self,
        rel: &Path,
        below: &Path,
        visit: &mut dyn FnMut(&Path, Entry, Meta) -> io::Result<()>,
    ) -> io::Result<usize> {
        // The entry itself, not what a last-component symlink points to.
        let (dir, name) = match split(rel) {
            Ok(parts) => parts,
            Err(_) => (Path::new(""), OsStr::new(".")),
        };
        let parent = self.dir(dir, false)?;
        let st = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| with_path(e, "cannot read", rel))?;
        let mode = st.st_mode & 0o7777;
        let meta = Meta {
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
        };
        let open = |flags: OFlag| {
            openat(
                parent.as_fd(),
                name,
                flags | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| with_path(e, "cannot read", rel))
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(parent.as_fd(), name)?.into();
                visit(below, Entry::Symlink { target }, meta)?;
                Ok(1)
            }
            libc::S_IFDIR => {
                visit(below, Entry::Dir { mode }, meta)?;
                let names: Vec<std::ffi::OsString> =
                    nix::dir::Dir::from_fd(open(OFlag::O_DIRECTORY)?)?
                        .iter()
                        .filter_map(Result::ok)
                        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                        .filter(|n| n != "." && n != "..")
                        .collect();
                let mut written = 0;
                for n in names {
                    written += self.walk_rel(&rel.join(&n), &below.join(&n), visit)?;
                }
                Ok(written)
            }
            libc::S_IFREG => {
                let mut data = std::fs::File::from(open(OFlag::empty())?);
                let size = st.st_size as u64;
                visit(
                    below,
                    Entry::File {
                        mode,
                        size,
                        data: &mut data,
                    },
                    meta,
                )?;
                Ok(1)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("`/{}` is not a file, directory or symlink", rel.display()),
            )),
        }
    }
}

/// A uid and a gid.
pub type Owner = (u32, u32);

/// A walked entry's owner and modification time (seconds).
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// Something being copied: what it is, with its mode.
pub enum Entry<'a> {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        data: &'a mut dyn io::Read,
    },
    Symlink {
        target: PathBuf,
    },
}

/// Visits each entry of a tar archive with its top component and what is
/// below it (`tar_path`), and the owner (uid, gid) the archive gives it.
/// Only files, directories and symlinks. How many files and symlinks there
/// were.
pub fn tar_entries(
    input: impl io::Read,
    visit: &mut dyn FnMut(&Path, &Path, Entry, Owner) -> io::Result<()>,
) -> io::Result<usize> {
    let mut archive = tar::Archive::new(input);
    let mut files = 0;
    for entry in archive.entries()? {
        let mut e = entry?;
        let path = e.path()?.into_owned();
        let (top, rest) = tar_path(&path)?;
        let mode = e.header().mode()?;
        let size = e.size();
        // (An owner the header does not say, or says out of range: root.)
        let id = |n: io::Result<u64>| n.ok().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let owner = (id(e.header().uid()), id(e.header().gid()));
        let entry = match e.header().entry_type() {
            tar::EntryType::Directory => Entry::Dir { mode },
            tar::EntryType::Symlink => Entry::Symlink {
                target: e.link_name()?.unwrap_or_default().into_owned(),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                files += 1;
                visit(
                    &top,
                    &rest,
                    Entry::File {
                        mode,
                        size,
                        data: &mut e,
                    },
                    owner,
                )?;
                continue;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "`{}`: a {other:?} entry (only files, directories and symlinks are copied)",
                        path.display()
                    ),
                ))
            }
        };
        if matches!(entry, Entry::Symlink { .. }) {
            files += 1;
        }
        visit(&top, &rest, entry, owner)?;
    }
    Ok(files)
}

/// A tar entry's path as its top component and what is below it; only
/// plain names (no `..`, no root): an archive from elsewhere cannot aim
/// outside where it is extracted.
pub fn tar_path(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("`{}`: a path in the archive that leaves it", path.display()),
                ))
            }
        }
    }
    let Some((top, rest)) = parts.split_first() else {
        return Ok((PathBuf::new(), PathBuf::new()));
    };
    Ok((PathBuf::from(top), rest.iter().collect()))
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
