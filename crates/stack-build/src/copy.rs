//! COPY and ADD: sources from the build context (or a named context) or
//! from a stage's or image's view, written into a fresh directory that
//! becomes the step's layer. Docker's rules: a directory's contents are
//! copied (not the directory), several sources or a trailing `/` make the
//! destination a directory, everything is owned by root unless `--chown`
//! says, modes and times are kept unless `--chmod` says. Nothing outside
//! the context is read: `..` is resolved lexically inside it, and symlinks
//! are followed as if the context were the root.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};
use stack_dockerfile::ignore::Patterns;

use crate::view::{parts, View};

/// Where a COPY reads from.
pub enum Source<'a> {
    /// A directory on the host (the context), minus what `ignore` excludes.
    Dir {
        root: &'a Path,
        ignore: &'a Patterns,
    },
    /// A stage's or an image's file system.
    View(&'a View),
}

/// Whether `.dockerignore` hides `rel` (at `path`): an excluded directory
/// stays visible while a `!` pattern may bring back something under it.
fn hidden(ignore: &Patterns, rel: &str, path: &Path) -> bool {
    ignore.excludes(rel)
        && !(ignore.may_reinclude_under(rel)
            && fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()))
}

/// One source found: its path from the source's root (`/`-joined names)
/// and where it really is.
pub struct Found {
    pub rel: PathBuf,
    pub real: PathBuf,
}

impl Source<'_> {
    /// The real path of `rel`, symlinks followed inside the source.
    fn resolve(&self, rel: &Path) -> Option<PathBuf> {
        let mut names: Vec<OsString> = parts(rel);
        let mut done: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while !names.is_empty() {
            let name = names.remove(0);
            done.push(name);
            let here: PathBuf = done.iter().collect();
            let real = self.real(&here)?;
            let md = fs::symlink_metadata(&real).ok()?;
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = fs::read_link(&real).ok()?;
                done.pop();
                let base: PathBuf = if target.is_absolute() {
                    PathBuf::new()
                } else {
                    done.iter().collect()
                };
                let mut rest = parts(&base.join(target));
                rest.extend(names);
                names = rest;
                done.clear();
            }
        }
        let here: PathBuf = done.iter().collect();
        self.real(&here)
    }

    /// Where `rel` (no symlinks on the way) is, if it is there and not ignored.
    fn real(&self, rel: &Path) -> Option<PathBuf> {
        match self {
            Source::Dir { root, ignore } => {
                let p = root.join(rel);
                let s = rel.to_string_lossy();
                if !s.is_empty() && hidden(ignore, &s, &p) {
                    return None;
                }
                fs::symlink_metadata(&p).ok().map(|_| p)
            }
            Source::View(v) => v.find(&Path::new("/").join(rel)),
        }
    }

    /// The names in directory `rel` (real path `real`) that are not ignored.
    fn list(&self, rel: &Path, real: &Path) -> io::Result<Vec<OsString>> {
        match self {
            Source::Dir { ignore, .. } => {
                let mut names: Vec<OsString> = fs::read_dir(real)?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()?;
                names.retain(|n| !hidden(ignore, &rel.join(n).to_string_lossy(), &real.join(n)));
                names.sort();
                Ok(names)
            }
            Source::View(v) => Ok(v.read_dir(&Path::new("/").join(rel))),
        }
    }

    /// Where the entry `name` of directory `real` is: beside it in the
    /// context, but in a view wherever the top-most layer that has it put
    /// it (a directory's entries may come from several layers).
    fn child(&self, rel: &Path, real: &Path, name: &std::ffi::OsStr) -> PathBuf {
        match self {
            Source::Dir { .. } => real.join(name),
            Source::View(v) => v
                .find(&Path::new("/").join(rel))
                .unwrap_or_else(|| real.join(name)),
        }
    }

    /// The sources a COPY argument names: one path, or a wildcard's
    /// matches (sorted). A path outside the context is an error.
    pub fn find(&self, arg: &str) -> anyhow::Result<Vec<Found>> {
        let mut clean = PathBuf::new();
        for c in Path::new(arg).components() {
            match c {
                std::path::Component::Normal(n) => clean.push(n),
                std::path::Component::ParentDir if !clean.pop() => {
                    bail!("`{arg}`: outside the build context")
                }
                _ => {}
            }
        }
        let wild = arg.contains(['*', '?', '[']);
        if !wild {
            return match self.resolve(&clean) {
                Some(real) => Ok(vec![Found { rel: clean, real }]),
                None => {
                    bail!("`{arg}`: not found in the build context (or excluded by .dockerignore)")
                }
            };
        }
        let pattern = Patterns::from_list(&[clean.to_string_lossy().to_string()])
            .map_err(anyhow::Error::msg)?;
        let depth = parts(&clean).len();
        let mut out = Vec::new();
        self.walk_matching(Path::new(""), depth, &pattern, &mut out)?;
        if out.is_empty() {
            bail!("`{arg}`: no file matches in the build context");
        }
        Ok(out)
    }

    fn walk_matching(
        &self,
        rel: &Path,
        depth: usize,
        pattern: &Patterns,
        out: &mut Vec<Found>,
    ) -> anyhow::Result<()> {
        let Some(real) = self.resolve(rel) else {
            return Ok(());
        };
        if !real.is_dir() {
            return Ok(());
        }
        for name in self.list(rel, &real)? {
            let child = rel.join(&name);
            if depth == 1 {
                if pattern.excludes(&child.to_string_lossy()) {
                    if let Some(real) = self.resolve(&child) {
                        out.push(Found { rel: child, real });
                    }
                }
            } else {
                self.walk_matching(&child, depth - 1, pattern, out)?;
            }
        }
        Ok(())
    }

    /// A digest of what copying `found` reads: names, kinds, modes, link
    /// targets and contents (times and owners are not copied by content).
    /// The tree is walked first; the files' contents are hashed on as many
    /// threads as the machine has cores.
    pub fn digest(&self, found: &Found, excludes: &Patterns, h: &mut Sha256) -> anyhow::Result<()> {
        let mut entries = Vec::new();
        self.walk(
            &found.rel,
            &found.real,
            Path::new(""),
            excludes,
            &mut entries,
        )?;
        let files: Vec<&Path> = entries.iter().filter_map(|e| e.file.as_deref()).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(files.len().max(1));
        let chunk = files.len().div_ceil(threads).max(1);
        let sums: Vec<anyhow::Result<Vec<[u8; 32]>>> = std::thread::scope(|scope| {
            let running: Vec<_> = files
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|f| file_sum(f)).collect()))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing panicked")))
                })
                .collect()
        });
        let mut sums = sums
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten();
        for e in &entries {
            h.update(&e.head);
            if e.file.is_some() {
                h.update(sums.next().unwrap_or_default());
            }
            h.update(b"\n");
        }
        Ok(())
    }

    /// Every entry under `real` in order: what describes it, and the file
    /// whose content is to be hashed.
    fn walk(
        &self,
        rel: &Path,
        real: &Path,
        inner: &Path,
        excludes: &Patterns,
        out: &mut Vec<Entry>,
    ) -> anyhow::Result<()> {
        let md = fs::symlink_metadata(real).with_context(|| format!("{}", real.display()))?;
        let mut head = inner.as_os_str().as_encoded_bytes().to_vec();
        head.extend_from_slice(format!("\0{:o}\0", md.mode()).as_bytes());
        if md.file_type().is_symlink() {
            head.extend_from_slice(fs::read_link(real)?.as_os_str().as_encoded_bytes());
        }
        out.push(Entry {
            head,
            file: md.is_file().then(|| real.to_path_buf()),
        });
        if md.is_dir() {
            for name in self.list(rel, real)? {
                let inner = inner.join(&name);
                if excludes.excludes(&inner.to_string_lossy()) {
                    continue;
                }
                let rel = rel.join(&name);
                let real = self.child(&rel, real, &name);
                self.walk(&rel, &real, &inner, excludes, out)?;
            }
        }
        Ok(())
    }
}

/// One entry of a digest: its path, mode and link target, and the file
/// whose content follows.
struct Entry {
    head: Vec<u8>,
    file: Option<PathBuf>,
}

/// The SHA-256 of a file's content.
fn file_sum(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut f = fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// What every copied entry gets.
pub struct Apply {
    /// `--chown`: uid and gid (root's by default).
    pub owner: (u32, u32),
    /// `--chmod`, as a function of the old mode and whether it is a directory.
    pub chmod: Option<Box<dyn Fn(u32, bool) -> u32>>,
    /// `--exclude` patterns, relative to each source.
    pub excludes: Patterns,
}

/// Copies `found` from `src` to `dest` (a path in `layer`, the new
/// layer's directory): a directory's contents into `dest`, anything else
/// as `dest`.
pub fn copy(
    src: &Source,
    found: &Found,
    layer: &Path,
    dest: &Path,
    how: &Apply,
) -> anyhow::Result<()> {
    copy_at(
        src,
        &found.rel,
        &found.real,
        layer,
        dest,
        Path::new(""),
        how,
    )
}

fn copy_at(
    src: &Source,
    rel: &Path,
    real: &Path,
    layer: &Path,
    dest: &Path,
    inner: &Path,
    how: &Apply,
) -> anyhow::Result<()> {
    let md = fs::symlink_metadata(real).with_context(|| format!("{}", real.display()))?;
    let target = layer.join(dest.strip_prefix("/").unwrap_or(dest));
    let ft = md.file_type();
    if ft.is_dir() {
        if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&target)?;
        }
        fs::create_dir_all(&target)?;
        for name in src.list(rel, real)? {
            let inner = inner.join(&name);
            if how.excludes.excludes(&inner.to_string_lossy()) {
                continue;
            }
            copy_at(
                src,
                &rel.join(&name),
                &src.child(&rel.join(&name), real, &name),
                layer,
                &dest.join(&name),
                &inner,
                how,
            )?;
        }
    } else {
        if let Ok(m) = fs::symlink_metadata(&target) {
            if m.is_dir() {
                fs::remove_dir_all(&target)?;
            } else {
                fs::remove_file(&target)?;
            }
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(real)?, &target)?;
        } else if ft.is_file() {
            fs::copy(real, &target).with_context(|| format!("copying {}", real.display()))?;
        } else {
            // Devices, fifos and sockets in a context are not copied, as
            // Docker's context upload leaves them out.
            return Ok(());
        }
    }
    finish(&target, &md, how)
}

/// Owner, mode and times of a copied entry.
fn finish(target: &Path, md: &fs::Metadata, how: &Apply) -> anyhow::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let (uid, gid) = how.owner;
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        target,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if !md.file_type().is_symlink() {
        let mut mode = md.mode() & 0o7777;
        if let Some(f) = &how.chmod {
            mode = f(mode, md.is_dir());
        }
        fs::set_permissions(target, fs::Permissions::from_mode(mode))?;
    }
    let t = TimeSpec::new(md.mtime(), md.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        target,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Makes the directories above `dir` (a path in the image) in `layer`, each
/// with the metadata the image already gives it (so the layer changes
/// none), or root's 0755 where the image has none.
pub fn parents(layer: &Path, view: &View, dir: &Path) -> anyhow::Result<()> {
    let mut cur = PathBuf::from("/");
    for name in parts(dir) {
        cur.push(name);
        let target = layer.join(cur.strip_prefix("/").unwrap_or(&cur));
        // Never through a link (or over a file) an earlier source of the
        // same step put here: that name becomes a directory.
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => fs::remove_file(&target)?,
            Err(_) => {}
        }
        fs::create_dir(&target)?;
        match view.find(&cur).and_then(|p| fs::symlink_metadata(p).ok()) {
            Some(md) if md.is_dir() => finish(
                &target,
                &md,
                &Apply {
                    owner: (md.uid(), md.gid()),
                    chmod: None,
                    excludes: Patterns::default(),
                },
            )?,
            _ => fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?,
        }
    }
    Ok(())
}

/// `--chmod`: octal (`755`) or symbolic (`u+x,go-w`, `a=rX`).
pub fn chmod(spec: &str) -> anyhow::Result<Box<dyn Fn(u32, bool) -> u32>> {
    if let Ok(m) = u32::from_str_radix(spec, 8) {
        if m > 0o7777 {
            bail!("--chmod={spec}: not a mode");
        }
        return Ok(Box::new(move |_, _| m));
    }
    let mut clauses = Vec::new();
    for clause in spec.split(',') {
        let at = clause
            .find(['+', '-', '='])
            .with_context(|| format!("--chmod={spec}: `{clause}` has no +, - or ="))?;
        let (who, rest) = clause.split_at(at);
        let op = rest.chars().next().unwrap_or('=');
        let perms = &rest[1..];
        let mut mask = 0;
        for c in if who.is_empty() { "a" } else { who }.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => bail!("--chmod={spec}: `{c}` is not u, g, o or a"),
            };
        }
        for c in perms.chars() {
            if !"rwxXst".contains(c) {
                bail!("--chmod={spec}: `{c}` is not r, w, x, X, s or t");
            }
        }
        clauses.push((mask, op, perms.to_string()));
    }
    Ok(Box::new(move |mut mode, dir| {
        for (mask, op, perms) in &clauses {
            let mut bits = 0;
            for c in perms.chars() {
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if dir || mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            bits &= mask;
            mode = match op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !(mask & 0o777)) | bits,
            };
        }
        mode
    }))
}

/// Whether a local file is an archive ADD unpacks: gzip, zstd, or a plain tar.
pub fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 262];
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_takes_octal_and_symbolic_modes() {
        assert_eq!(chmod("755").unwrap()(0o600, false), 0o755);
        assert_eq!(chmod("u+x").unwrap()(0o644, false), 0o744);
        assert_eq!(chmod("go-w").unwrap()(0o666, false), 0o644);
        assert_eq!(chmod("a=rX").unwrap()(0o700, true), 0o555);
        assert_eq!(chmod("a=rX").unwrap()(0o600, false), 0o444);
        assert_eq!(chmod("u=rwx,go=rx").unwrap()(0, false), 0o755);
        assert!(chmod("q+x").is_err());
        assert!(chmod("u+z").is_err());
        assert!(chmod("99999").is_err());
    }
}
