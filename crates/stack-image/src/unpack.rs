//! Layer tars unpacked into a directory that serves as an overlay lower dir.
//!
//! A layer is hostile until proven otherwise: absolute paths are taken as
//! relative to the layer, `..` is refused, parents are resolved inside the
//! layer (a symlink cannot lead a write outside), files are created without
//! following links, hardlinks must point inside the layer. Whiteouts become
//! overlay whiteouts (0:0 character devices) and opaque markers become the
//! `trusted.overlay.opaque` attribute. Modes, owners, times, xattrs, device
//! nodes, symlinks and hardlinks are kept.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{mknod, Mode, SFlag};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: entry `{path}`: {why}")]
    Entry {
        layer: String,
        path: String,
        why: String,
    },
    #[error("layer {layer}: malformed or truncated tar: {source}")]
    Tar {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: {source}")]
    Io {
        layer: String,
        #[source]
        source: io::Error,
    },
}

/// The path of an entry, made relative and refused if it climbs out.
fn clean_entry_path(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err("`..` in a layer path".into()),
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// `rel` inside `root`, following symlinks as if `root` were `/`.
fn resolve_in(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        if c == "." {
            continue;
        }
        let candidate = root.join(&resolved).join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::other("too many symlinks"));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(target.components().rev().filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                }));
            }
            _ => resolved.push(&c),
        }
    }
    Ok(root.join(resolved))
}

/// Unpacks a (possibly gzip-compressed) layer tar into `dest`.
pub fn unpack(layer_name: &str, reader: impl Read, dest: &Path) -> Result<u64, UnpackError> {
    let mut buffered = io::BufReader::new(reader);
    let is_gzip = {
        let head = io::BufRead::fill_buf(&mut buffered).map_err(|source| UnpackError::Io {
            layer: layer_name.into(),
            source,
        })?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let input: Box<dyn Read> = if is_gzip {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(input);
    let tar_err = |source: io::Error| UnpackError::Tar {
        layer: layer_name.into(),
        source,
    };
    let mut bytes = 0u64;
    // Directory times are set last: writing inside would change them.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path().map_err(tar_err)?.into_owned();
        let bad = |why: String| UnpackError::Entry {
            layer: layer_name.into(),
            path: raw.display().to_string(),
            why,
        };
        let rel = clean_entry_path(&raw).map_err(bad)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = resolve_in(dest, parent_rel).map_err(|e| bad(e.to_string()))?;
        if !parent.starts_with(dest) {
            return Err(bad("resolves outside the layer".into()));
        }
        fs::create_dir_all(&parent).map_err(|e| bad(e.to_string()))?;
        // Whiteouts.
        if name == ".wh..wh..opq" {
            xattr::set(&parent, "trusted.overlay.opaque", b"y")
                .map_err(|e| bad(format!("opaque marker: {e}")))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(bad("malformed whiteout".into()));
            }
            let target = parent.join(hidden);
            remove_any(&target);
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| bad(format!("whiteout: {e}")))?;
            continue;
        }
        let target = parent.join(&name);
        let header = entry.header().clone();
        let mode = header.mode().map_err(tar_err)? & 0o7777;
        let kind = header.entry_type();
        if !(kind.is_dir() && target.is_dir()) {
            remove_any(&target);
        }
        match kind {
            k if k.is_dir() => {
                fs::create_dir_all(&target).map_err(|e| bad(e.to_string()))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| bad(e.to_string()))?;
            }
            k if k.is_file() || k == tar::EntryType::Continuous => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc_o_nofollow())
                    .mode(mode)
                    .open(&target)
                    .map_err(|e| bad(e.to_string()))?;
                bytes += io::copy(&mut entry, &mut f).map_err(tar_err)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| bad(e.to_string()))?;
            }
            k if k.is_symlink() => {
                let link = header
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| bad("symlink without a target".into()))?;
                symlink(&link, &target).map_err(|e| bad(e.to_string()))?;
            }
            k if k.is_hard_link() => {
                let link = header
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| bad("hardlink without a target".into()))?;
                let link_rel = clean_entry_path(&link).map_err(bad)?;
                let source = resolve_in(dest, &link_rel).map_err(|e| bad(e.to_string()))?;
                if !source.starts_with(dest) || fs::symlink_metadata(&source).is_err() {
                    return Err(bad(format!(
                        "hardlink to `{}` outside the layer",
                        link.display()
                    )));
                }
                fs::hard_link(&source, &target).map_err(|e| bad(e.to_string()))?;
                // The inode's owner, mode and times are the linked file's.
                continue;
            }
            k if k.is_character_special() || k.is_block_special() || k.is_fifo() => {
                let flag = if k.is_character_special() {
                    SFlag::S_IFCHR
                } else if k.is_block_special() {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFIFO
                };
                let dev = nix::sys::stat::makedev(
                    header.device_major().ok().flatten().unwrap_or(0) as u64,
                    header.device_minor().ok().flatten().unwrap_or(0) as u64,
                );
                mknod(&target, flag, Mode::from_bits_truncate(mode), dev)
                    .map_err(|e| bad(e.to_string()))?;
            }
            // PAX and GNU headers are consumed by the tar reader; anything else is skipped.
            _ => continue,
        }
        // Owner, extended attributes, time.
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let _ = nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &target,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        // chown clears set-id bits: the mode goes on after it.
        if !kind.is_symlink() && !kind.is_hard_link() {
            let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode));
        }
        if let Ok(Some(exts)) = entry
            .pax_extensions()
            .map(|e| e.map(|x| x.collect::<Vec<_>>()))
        {
            for ext in exts.into_iter().flatten() {
                if let (Ok(k), v) = (ext.key(), ext.value_bytes()) {
                    if let Some(attr) = k.strip_prefix("SCHILY.xattr.") {
                        if !kind.is_symlink() {
                            let _ = xattr::set(&target, attr, v);
                        }
                    }
                }
            }
        }
        let mtime = header.mtime().unwrap_or(0);
        if kind.is_dir() {
            dir_times.push((target, mtime));
        } else {
            set_mtime(&target, mtime);
        }
    }
    for (d, t) in dir_times.into_iter().rev() {
        set_mtime(&d, t);
    }
    Ok(bytes)
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

fn set_mtime(p: &Path, secs: u64) {
    let t = nix::sys::time::TimeSpec::new(secs as i64, 0);
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// Removes whatever is at `p` (a file, link or directory tree), never following links.
fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}
