//! `stack cp` and `stack container cp`: files between the host and a
//! running container, both ways, as `docker cp` places them. They travel
//! as tar archives: `stack cp` asks the engine (`GET`/`PUT .../archive`),
//! `container cp` reads and writes here; either way the container's side
//! goes through stack-runtime's `ContainerFs` (every path resolved inside
//! the container's root: no symlink in it leads a copy out), and an
//! archive is extracted on the host with plain names only, never through a
//! symlink it made.

use std::io::{Read, Write};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use stack_host::files::top_name;
use stack_host::{containers, files};
use stack_runtime::files::{tar_entries, Entry};

/// One side of a copy: `NAME:PATH` in a container (NAME has no `/`), or a
/// host path.
#[derive(Debug, PartialEq)]
pub enum Side {
    Container { name: String, path: String },
    Host(PathBuf),
}

impl Side {
    pub fn parse(s: &str) -> Side {
        match s.split_once(':') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => Side::Container {
                name: name.into(),
                path: if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                },
            },
            _ => Side::Host(s.into()),
        }
    }
}

/// Whether `src` asks for a directory's contents rather than the
/// directory (`dir/.`).
fn contents_of(src: &str) -> bool {
    src.ends_with("/.") || src == "."
}

/// Reads an archive as it arrives ([`Files::archive`] hands it one).
pub type TarSink<'a> = &'a mut (dyn FnMut(&mut dyn Read) -> anyhow::Result<usize> + Send);

/// Writes an archive, which [`Files::extract`] sends on as it is written.
pub type TarSource<'a> = &'a mut (dyn FnMut(&mut dyn Write) -> anyhow::Result<()> + Send);

/// Where containers' files are reached. Archives stream: neither side
/// ever holds a whole one.
pub trait Files {
    /// Hands `sink` a tar of `path` in `name` (its top entry named as
    /// `top_name` says; with `follow`, a symlink's target under its name)
    /// as it is made; what `sink` returns.
    fn archive(
        &self,
        name: &str,
        path: &str,
        follow: bool,
        sink: TarSink<'_>,
    ) -> anyhow::Result<usize>;
    /// Extracts the tar `source` writes at `path` in `name` (as
    /// `ContainerFs::tar_in`; with `archive`, the owners it says) as it is
    /// written: how many files went into each container.
    fn extract(
        &self,
        name: &str,
        path: &str,
        contents: bool,
        archive: bool,
        source: TarSource<'_>,
    ) -> anyhow::Result<usize>;
}

/// `cp`'s flags: `-a` (owners as the source has them, not the copier's
/// or the destination's), `-L` (a symlink SRC is copied as what it
/// points to).
#[derive(Clone, Copy, Debug, Default)]
pub struct How {
    pub archive: bool,
    pub follow: bool,
}

/// Copies `src` to `dest`, one of them in a container. What was copied,
/// for the user.
pub fn copy(src: &Side, dest: &Side, files: &dyn Files, how: How) -> anyhow::Result<String> {
    match (src, dest) {
        (Side::Host(from), Side::Container { name, path }) => {
            let from_text = from.display().to_string();
            let is_dir = std::fs::metadata(from)
                .with_context(|| format!("`{from_text}`"))?
                .is_dir();
            let top = top_name(&from_text);
            // -L: what the link points to, under the link's name.
            let real = match how.follow {
                true => std::fs::canonicalize(from).with_context(|| format!("`{from_text}`"))?,
                false => from.clone(),
            };
            let contents = contents_of(&from_text) && is_dir;
            let n = files.extract(name, path, contents, how.archive, &mut |out| {
                host_tar(&real, &top, out).with_context(|| format!("cannot read `{from_text}`"))
            })?;
            Ok(format!("Copied {n} files to {name}:{path}"))
        }
        (Side::Container { name, path }, Side::Host(to)) => {
            let n = files
                .archive(name, path, how.follow, &mut |tar| {
                    extract_host(tar, to, contents_of(path), how.archive)
                })
                .with_context(|| format!("{name}:{path} -> {}", to.display()))?;
            Ok(format!("Copied {n} files from {name}:{path}"))
        }
        _ => bail!(
            "one of SRC and DEST must be CONTAINER:PATH (or SERVICE:PATH), the other a host path"
        ),
    }
}

/// Writes a tar of the host's `from` under `name` (symlinks as symlinks).
fn host_tar(from: &Path, name: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    if std::fs::symlink_metadata(from)?.is_dir() {
        tar.append_dir_all(name, from)?;
    } else {
        tar.append_path_with_name(from, name)?;
    }
    tar.finish()
}

/// What `read` makes of what `write` writes, the two on two threads
/// through a bounded pipe. The error that says why: the reader's when the
/// writer only saw it go.
pub fn through_pipe<T>(
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()> + Send,
    read: impl FnOnce(&mut dyn Read) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    through_chunks(write, |chunks| {
        read(&mut stack_api::pipe::Reader::new(chunks))
    })
}

/// [`through_pipe`], the reader taking the pipe's chunks as they come
/// (a request body made of them).
pub fn through_chunks<T>(
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()> + Send,
    read: impl FnOnce(stack_api::pipe::Chunks) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (mut w, chunks) = stack_api::pipe::channel();
    std::thread::scope(|s| {
        let writer = s.spawn(move || match write(&mut w) {
            Ok(()) => w.finish().map_err(anyhow::Error::from),
            Err(e) => {
                w.fail(std::io::Error::other(format!("{e:#}")));
                Err(e)
            }
        });
        let read = read(chunks);
        let wrote = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match wrote {
            Err(e) if !went_away(&e) => Err(e),
            _ => read,
        }
    })
}

/// A writer's error that only says the reader went.
pub fn went_away(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Extracts a tar from a container at `to` on the host, as `docker cp`
/// places it: into the directory `to` under the top entry's name, else as
/// `to`; with `contents`, what is under the top entry into `to`. How many
/// files it wrote. With `archive`, each gets the owner the archive says.
///
/// Below the directory the user named, no symlink is ever followed,
/// whether the archive made it or an earlier copy left it there: every
/// entry's directory is opened from that one with `openat2`
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and the entry made there with
/// `*at` calls that do not follow its last component (a symlink or file
/// where a directory goes is replaced, as `docker cp` does).
fn extract_host(tar: impl Read, to: &Path, contents: bool, archive: bool) -> anyhow::Result<usize> {
    let into_dir = !contents && to.is_dir();
    // The directory the user named, and the name the copy gets in it
    // (none: the archive's top entry's, or with `contents`, `to` itself).
    let (anchor, named): (&Path, Option<&std::ffi::OsStr>) = if contents || into_dir {
        (to, None)
    } else {
        let name = to
            .file_name()
            .with_context(|| format!("`{}` names no file", to.display()))?;
        let parent = to.parent().filter(|p| !p.as_os_str().is_empty());
        (parent.unwrap_or(Path::new(".")), Some(name))
    };
    // Made and opened at the first entry: a copy that fails before it
    // (the engine's refusal, an empty archive) leaves nothing behind.
    let mut dir: Option<OwnedFd> = None;
    let open_anchor = || -> std::io::Result<OwnedFd> {
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("`{}`: {e}", anchor.display()))
        };
        std::fs::create_dir_all(anchor).map_err(named)?;
        nix::fcntl::open(
            anchor,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named(e.into()))
    };
    Ok(tar_entries(tar, &mut |top, rest, entry, owner| {
        let dir = match &mut dir {
            Some(dir) => dir,
            None => dir.insert(open_anchor()?),
        };
        let mut rel = PathBuf::new();
        match (contents, named) {
            (true, _) => {}
            (false, Some(name)) => rel.push(name),
            (false, None) => rel.push(top),
        }
        rel.push(rest);
        if rel.as_os_str().is_empty() {
            // `contents`' top entry: the directory the user named.
            return Ok(());
        }
        write_beneath(dir, &rel, entry, archive.then_some(owner)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("`{}`: {e}", anchor.join(&rel).display()))
        })
    })?)
}

/// Makes `rel` below `dir` what `entry` is (owned by `owner`, if given),
/// following no symlink on the way.
fn write_beneath(
    dir: &OwnedFd,
    rel: &Path,
    entry: Entry,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use nix::sys::stat::{fchmod, fstatat, mkdirat};
    use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};
    let name = rel.file_name().unwrap_or_default();
    let parent = match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        None => nix::unistd::dup(dir)?,
        Some(p) => {
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            nix::fcntl::openat2(dir.as_fd(), p, how).map_err(|e| match e {
                Errno::ELOOP | Errno::EXDEV => std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a symlink on the way: nothing is written through one",
                ),
                e => e.into(),
            })?
        }
    };
    let existing = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| st.st_mode & libc::S_IFMT);
    let is_dir = existing == Some(libc::S_IFDIR);
    // What is in the way (not a directory kept as one) goes.
    if existing.is_some() && !(is_dir && matches!(entry, Entry::Dir { .. })) {
        let flag = match is_dir {
            true => UnlinkatFlags::RemoveDir,
            false => UnlinkatFlags::NoRemoveDir,
        };
        unlinkat(parent.as_fd(), name, flag)?;
    }
    let open = |flags: OFlag, mode: u32| {
        nix::fcntl::openat(
            parent.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
    };
    // The owner before the mode: a chown clears setuid and setgid bits.
    let own = || match owner {
        Some((uid, gid)) => nix::unistd::fchownat(
            parent.as_fd(),
            name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        None => Ok(()),
    };
    match entry {
        Entry::Dir { mode } => {
            if !is_dir {
                mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700))?;
            }
            let fd = open(OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
            own()?;
            fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))?;
        }
        Entry::Symlink { target } => {
            symlinkat(&target, parent.as_fd(), name)?;
            own()?;
        }
        Entry::File { mode, data, .. } => {
            let fd = open(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, 0o600)?;
            let mut file = std::fs::File::from(fd);
            std::io::copy(data, &mut file)?;
            own()?;
            fchmod(file.as_fd(), Mode::from_bits_truncate(mode))?;
        }
    }
    Ok(())
}

/// `container cp`: containers by name or id, read and written here.
pub struct Here<'a>(pub &'a Path);

impl Files for Here<'_> {
    fn archive(
        &self,
        name: &str,
        path: &str,
        follow: bool,
        sink: TarSink<'_>,
    ) -> anyhow::Result<usize> {
        let write = files::archive(&containers::running_state(self.0, name)?, path, follow)?;
        through_pipe(write, |tar| sink(tar))
    }

    fn extract(
        &self,
        name: &str,
        path: &str,
        contents: bool,
        archive: bool,
        source: TarSource<'_>,
    ) -> anyhow::Result<usize> {
        let st = containers::running_state(self.0, name)?;
        through_pipe(
            |out| source(out),
            |tar| files::extract(&st, path, contents, archive, tar),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_as_docker_cp_reads_them() {
        assert_eq!(
            Side::parse("web:/app/x"),
            Side::Container {
                name: "web".into(),
                path: "/app/x".into()
            }
        );
        assert_eq!(Side::parse("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(Side::parse("/tmp/x"), Side::Host("/tmp/x".into()));
        assert_eq!(
            Side::parse("web:"),
            Side::Container {
                name: "web".into(),
                path: "/".into()
            }
        );
        assert_eq!(top_name("src/index.html"), "index.html");
        assert_eq!(top_name("src/."), "src");
        assert_eq!(top_name("/"), "root");
        assert!(contents_of("src/.") && !contents_of("src"));
    }

    /// An archive entry named as given, unchecked (tar's builder refuses `..`).
    fn raw_entry(
        tar: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: &str,
    ) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.append(&h, data).unwrap();
    }

    #[test]
    fn a_hostile_archive_writes_nothing_outside() {
        let dir = std::env::temp_dir().join(format!("stack-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (to, outside) = (dir.join("to"), dir.join("outside"));
        std::fs::create_dir_all(&to).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let outside_text = outside.to_str().unwrap().to_string();
        let cases: [&[(&str, tar::EntryType, &str)]; 2] = [
            &[
                ("x/", tar::EntryType::Directory, ""),
                ("x/link", tar::EntryType::Symlink, &outside_text),
                ("x/link/pwned", tar::EntryType::Regular, ""),
            ],
            &[("x/../../outside/pwned", tar::EntryType::Regular, "")],
        ];
        for entries in cases {
            let mut tar = tar::Builder::new(Vec::new());
            for (name, kind, link) in entries {
                raw_entry(&mut tar, name, *kind, b"data", link);
            }
            let bytes = tar.into_inner().unwrap();
            let e = extract_host(&bytes[..], &to, false, false).unwrap_err();
            assert!(
                format!("{e:#}").contains("symlink") || format!("{e:#}").contains("leaves it"),
                "{e:#}"
            );
            assert!(!outside.join("pwned").exists(), "{entries:?}");
        }
        // A symlink already in the destination (an earlier copy's, or
        // planted) is replaced, never written through: at the top, and
        // deeper with `contents`; with no directory entry to replace it,
        // the copy fails.
        std::os::unix::fs::symlink(&outside, to.join("z")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        raw_entry(&mut tar, "z/", tar::EntryType::Directory, b"", "");
        raw_entry(&mut tar, "z/y/", tar::EntryType::Directory, b"", "");
        raw_entry(&mut tar, "z/y/pwned", tar::EntryType::Regular, b"data", "");
        let bytes = tar.into_inner().unwrap();
        assert_eq!(extract_host(&bytes[..], &to, false, false).unwrap(), 1);
        assert!(!std::fs::symlink_metadata(to.join("z"))
            .unwrap()
            .is_symlink());
        std::fs::remove_dir_all(to.join("z/y")).unwrap();
        std::os::unix::fs::symlink(&outside, to.join("z/y")).unwrap();
        assert_eq!(
            extract_host(&bytes[..], &to.join("z"), true, false).unwrap(),
            1
        );
        assert!(to.join("z/y/pwned").exists());
        std::fs::remove_dir_all(to.join("z/y")).unwrap();
        std::os::unix::fs::symlink(&outside, to.join("z/y")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        raw_entry(&mut tar, "z/y/pwned", tar::EntryType::Regular, b"data", "");
        let bytes = tar.into_inner().unwrap();
        let e = extract_host(&bytes[..], &to, false, false).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        std::fs::remove_dir_all(to.join("z")).unwrap();

        // A plain archive lands where `docker cp` puts it.
        let mut tar = tar::Builder::new(Vec::new());
        raw_entry(&mut tar, "x/", tar::EntryType::Directory, b"", "");
        raw_entry(&mut tar, "x/a.txt", tar::EntryType::Regular, b"hello", "");
        let bytes = tar.into_inner().unwrap();
        assert_eq!(
            extract_host(&bytes[..], &dir.join("new"), false, false).unwrap(),
            1
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("new/a.txt")).unwrap(),
            "hello"
        );
        assert_eq!(extract_host(&bytes[..], &to, false, false).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(to.join("x/a.txt")).unwrap(),
            "hello"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
