//! Layer tars unpacked into a directory that serves as an overlay lower dir.
//!
//! A layer is hostile until proven otherwise: absolute paths are taken as
//! relative to the layer, `..` is refused, parents are resolved inside the
//! layer (a symlink cannot lead a write outside), files are created without
//! following links, hardlinks must point inside the layer. Whiteouts become
//! overlay whiteouts (0:0 character devices) and opaque markers become the
//! `trusted.overlay.opaque` attribute. Modes, owners, times, device nodes
//! (the lower dir is not a container's `/dev`: they reach the container as
//! image content, as Docker allows), symlinks and hardlinks are kept.
//! Entry types Docker does not unpack are refused, and so are GNU sparse
//! files (a few header bytes can declare terabytes of holes).
//!
//! Extended attributes are filtered: a layer keeps `user.*` (but not
//! `user.overlay.*`), `security.capability` and POSIX ACLs; every other
//! `trusted.*`, `security.*` and `system.*` attribute is dropped, since
//! overlayfs reads `trusted.overlay.*` (opaque dirs, redirects, metacopy) from
//! lower dirs and an LSM label is the host's business. Docker and containerd
//! never refuse a layer for its attributes (Fedora images carry
//! `security.selinux`, podman-built ones `user.overlay.origin`), so neither
//! does this: the attribute is left out and the entry unpacked.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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

/// Whether an extended attribute from a layer may be set on the unpacked file.
pub fn xattr_allowed(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix("user.") {
        // overlayfs mounted with `userxattr` reads `user.overlay.*` as it
        // reads `trusted.overlay.*` otherwise.
        return !rest.starts_with("overlay.");
    }
    matches!(
        name,
        "security.capability" | "system.posix_acl_access" | "system.posix_acl_default"
    )
}

/// At most this many symlinks are followed resolving one path (Linux's
/// `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

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
                if links > MAX_LINKS {
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

/// What a layer's PAX extended header says about its entry, beyond the path
/// and link target the tar reader applies itself.
#[derive(Default)]
struct Pax {
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn pax_of(entry: &mut tar::Entry<'_, impl Read>) -> Pax {
    let mut pax = Pax::default();
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return pax;
    };
    let number = |v: &[u8]| -> Option<u64> {
        let text = std::str::from_utf8(v).ok()?;
        // `mtime` may carry a fraction; a negative time is the epoch.
        let whole = text.split('.').next()?;
        if whole.starts_with('-') {
            return Some(0);
        }
        whole.parse().ok()
    };
    for ext in exts.flatten() {
        let Ok(key) = ext.key() else { continue };
        let value = ext.value_bytes();
        match key {
            "uid" => pax.uid = number(value),
            "gid" => pax.gid = number(value),
            "mtime" => pax.mtime = number(value),
            _ => {
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    pax.xattrs.push((attr.to_string(), value.to_vec()));
                }
            }
        }
    }
    pax
}

/// Whether `rel` under `root` names a path none of whose components is a
/// symlink (so a path-based call on it stays inside `root`).
fn plain_path(root: &Path, rel: &Path) -> bool {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if !m.file_type().is_symlink() => {}
            _ => return false,
        }
    }
    true
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
    // Directory times are set last: writing inside would change them. They
    // are kept relative to `dest`, and checked again then: a later entry may
    // have put a symlink on the way.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let kind = entry.header().entry_type();
        // Metadata of other entries (the reader consumes them in ustar and
        // GNU archives, not in old ones): nothing to create, not even parents.
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
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
        let name = rel.file_name().unwrap_or_default().to_os_string();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = resolve_in(dest, parent_rel).map_err(|e| bad(e.to_string()))?;
        if !parent.starts_with(dest) {
            return Err(bad("resolves outside the layer".into()));
        }
        fs::create_dir_all(&parent)
            .map_err(|e| bad(format!("directory `{}`: {e}", parent_rel.display())))?;
        // Whiteouts.
        let name_bytes = name.as_bytes();
        if name_bytes == b".wh..wh..opq" {
            xattr::set(&parent, stack_sys::userns::overlay_opaque(), b"y")
                .map_err(|e| bad(format!("opaque marker: {e}")))?;
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(bad("malformed whiteout".into()));
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            remove_any(&target);
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| bad(format!("whiteout: {e}")))?;
            continue;
        }
        let target = parent.join(&name);
        let header = entry.header().clone();
        let mode = header.mode().map_err(tar_err)? & 0o7777;
        let pax = pax_of(&mut entry);
        // What is there already goes, unless a directory meets a directory.
        // Never `is_dir()`: it follows a symlink, and what follows would
        // change the mode and attributes of wherever it points.
        let here_is_dir = fs::symlink_metadata(&target)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !(kind.is_dir() && here_is_dir) {
            remove_any(&target);
        }
        match kind {
            k if k.is_dir() => {
                if !here_is_dir {
                    fs::create_dir(&target).map_err(|e| bad(e.to_string()))?;
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| bad(e.to_string()))?;
            }
            // A GNU sparse entry declares its holes in a few header bytes:
            // terabytes of zeros to write for a small layer. Docker and
            // BuildKit never write them in layers.
            k if k.is_gnu_sparse() => {
                return Err(bad("GNU sparse files are not supported in layers".into()))
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
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| bad(e.to_string()))?;
            }
            k if k.is_symlink() => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without a target".into()))?;
                symlink(OsStr::from_bytes(&link), &target).map_err(|e| bad(e.to_string()))?;
            }
            k if k.is_hard_link() => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("hardlink without a target".into()))?
                    .into_owned();
                let link = PathBuf::from(OsString::from_vec(link));
                let outside = || {
                    bad(format!(
                        "hardlink to `{}` outside the layer",
                        link.display()
                    ))
                };
                let link_rel = clean_entry_path(&link).map_err(bad)?;
                // The link's own name is not followed (as link(2)): a hardlink
                // to a symlink is one more name of the symlink.
                let Some(link_name) = link_rel.file_name() else {
                    return Err(outside());
                };
                let link_parent = resolve_in(dest, link_rel.parent().unwrap_or(Path::new("")))
                    .map_err(|e| bad(e.to_string()))?;
                let source = link_parent.join(link_name);
                if !source.starts_with(dest) || fs::symlink_metadata(&source).is_err() {
                    return Err(outside());
                }
                nix::unistd::linkat(
                    nix::fcntl::AT_FDCWD,
                    &source,
                    nix::fcntl::AT_FDCWD,
                    &target,
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(|e| bad(format!("hardlink to `{}`: {e}", link.display())))?;
                // The inode's owner, mode and times are the linked file's.
                continue;
            }
            k if (k.is_character_special() || k.is_block_special())
                && stack_sys::userns::rootless() =>
            {
                // A user namespace makes no device node (a container's
                // /dev has the host's own bound): left out, as podman's
                // rootless store leaves them.
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
            other => {
                return Err(bad(format!(
                    "unsupported entry type `{}`",
                    other.as_byte().escape_ascii()
                )))
            }
        }
        // Owner, extended attributes, time.
        let uid = pax.uid.unwrap_or_else(|| header.uid().unwrap_or(0)) as u32;
        let gid = pax.gid.unwrap_or_else(|| header.gid().unwrap_or(0)) as u32;
        let _ = nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &target,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        if !kind.is_symlink() {
            // chown clears set-id bits: the mode goes on after it.
            let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode));
            for (attr, value) in &pax.xattrs {
                if xattr_allowed(attr) {
                    let _ = xattr::set(&target, attr, value);
                }
            }
        }
        let mtime = pax.mtime.unwrap_or_else(|| header.mtime().unwrap_or(0));
        if kind.is_dir() {
            let inside = target.strip_prefix(dest).unwrap_or(&rel).to_path_buf();
            dir_times.push((inside, mtime));
        } else {
            set_mtime(&target, mtime);
        }
    }
    for (rel, t) in dir_times.into_iter().rev() {
        if plain_path(dest, &rel) {
            set_mtime(&dest.join(rel), t);
        }
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

#[cfg(test)]
mod tests {
    //! Regression tests, one per bug fixed (as root: device nodes and
    //! `trusted.*` need it). Escapes as a whole are the property tests'
    //! business (`tests/unpack_props.rs`).
    use super::*;
    use std::os::unix::fs::MetadataExt;

    struct Tmp(PathBuf);
    impl Tmp {
        /// A parent holding `outside/` (mode 0700, one file) and an empty `dest/`.
        fn new(name: &str) -> Tmp {
            let p = std::env::temp_dir()
                .join(format!("stack-unpack-unit-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(p.join("dest")).unwrap();
            fs::create_dir_all(p.join("outside/sub")).unwrap();
            fs::write(p.join("outside/file"), "sentinel").unwrap();
            fs::set_permissions(p.join("outside"), fs::Permissions::from_mode(0o700)).unwrap();
            set_mtime(&p.join("outside/sub"), 1_000_000);
            Tmp(p)
        }
        fn dest(&self) -> PathBuf {
            self.0.join("dest")
        }
        fn outside(&self) -> PathBuf {
            self.0.join("outside")
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Raw entries: (type, name, link target, PAX records, data).
    type Raw<'a> = (u8, &'a [u8], &'a [u8], Vec<(&'a str, Vec<u8>)>, &'a [u8]);

    fn tar_of(entries: &[Raw]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, link, pax, data) in entries {
            if !pax.is_empty() {
                let mut body = Vec::new();
                for (k, v) in pax {
                    let rec_len = |n: usize| n + k.len() + v.len() + 3;
                    let mut n = rec_len(1);
                    while n.to_string().len() + k.len() + v.len() + 3 != n {
                        n = rec_len(n.to_string().len());
                    }
                    body.extend_from_slice(format!("{n} {k}=").as_bytes());
                    body.extend_from_slice(v);
                    body.push(b'\n');
                }
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::XHeader);
                h.set_path("PaxHeader").unwrap();
                h.set_size(body.len() as u64);
                h.set_cksum();
                b.append(&h, &body[..]).unwrap();
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::new(*kind));
            h.set_mode(if *kind == b'5' { 0o777 } else { 0o644 });
            h.set_mtime(1_700_000_000);
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn run(t: &Tmp, entries: &[Raw]) -> Result<u64, UnpackError> {
        unpack("sha256:test", &tar_of(entries)[..], &t.dest())
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_directory_over_a_symlink_replaces_the_link_and_never_changes_its_target() {
        let t = Tmp::new("dir-over-link");
        let abs = t.outside();
        let xattr = vec![("SCHILY.xattr.user.planted", b"1".to_vec())];
        for link in [abs.as_os_str().as_bytes(), b"../outside"] {
            run(
                &t,
                &[
                    (b'2', b"a", link, vec![], b""),
                    (b'5', b"a/", b"", xattr.clone(), b""),
                ],
            )
            .unwrap();
            assert_eq!(mode(&t.outside()), 0o700, "chmod went through the symlink");
            assert_eq!(xattr::get(t.outside(), "user.planted").unwrap(), None);
            let a = fs::symlink_metadata(t.dest().join("a")).unwrap();
            assert!(a.is_dir(), "the directory took the symlink's place");
            assert_eq!(mode(&t.dest().join("a")), 0o777);
        }
    }

    #[test]
    fn a_directory_time_is_not_set_through_a_symlink_that_came_later() {
        let t = Tmp::new("late-link");
        let abs = t.outside();
        run(
            &t,
            &[
                (b'5', b"d/", b"", vec![], b""),
                (b'5', b"d/sub/", b"", vec![], b""),
                (b'2', b"d", abs.as_os_str().as_bytes(), vec![], b""),
            ],
        )
        .unwrap();
        assert_eq!(
            fs::metadata(t.outside().join("sub")).unwrap().mtime(),
            1_000_000,
            "utimensat followed `d` out of the layer"
        );
    }

    #[test]
    fn only_capabilities_acls_and_user_attributes_are_kept() {
        let t = Tmp::new("xattrs");
        // VFS_CAP_REVISION_2, effective, cap_net_bind_service permitted.
        let cap = vec![1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let attrs: Vec<(&str, Vec<u8>)> = vec![
            ("SCHILY.xattr.trusted.overlay.opaque", b"y".to_vec()),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".to_vec()),
            ("SCHILY.xattr.trusted.overlay.metacopy", b"".to_vec()),
            ("SCHILY.xattr.trusted.other", b"x".to_vec()),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:shadow_t:s0".to_vec(),
            ),
            ("SCHILY.xattr.security.ima", b"x".to_vec()),
            ("SCHILY.xattr.user.overlay.origin", b"x".to_vec()),
            ("SCHILY.xattr.user.kept", b"yes".to_vec()),
            ("SCHILY.xattr.security.capability", cap.clone()),
        ];
        run(
            &t,
            &[
                (b'5', b"dir/", b"", attrs.clone(), b""),
                (b'0', b"dir/file", b"", attrs, b"x"),
            ],
        )
        .unwrap();
        for (p, want) in [
            // Whether a directory takes file capabilities is the kernel's call.
            (t.dest().join("dir"), &["user.kept"][..]),
            (
                t.dest().join("dir/file"),
                &["security.capability", "user.kept"][..],
            ),
        ] {
            let mut got: Vec<String> = xattr::list(&p)
                .unwrap()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !(p.is_dir() && n == "security.capability"))
                .collect();
            got.sort();
            assert_eq!(got, want, "{}", p.display());
        }
        assert_eq!(
            xattr::get(t.dest().join("dir/file"), "security.capability")
                .unwrap()
                .as_deref(),
            Some(&cap[..])
        );
        assert!(xattr_allowed("system.posix_acl_access"));
        assert!(xattr_allowed("system.posix_acl_default"));
        assert!(!xattr_allowed("system.nfs4_acl"));
        assert!(!xattr_allowed("trusted.overlay.opaque"));
        assert!(!xattr_allowed("user.overlay.redirect"));
    }

    #[test]
    fn long_link_targets_from_pax_are_kept_whole() {
        let t = Tmp::new("long-link");
        let long = format!("{}/target", "d".repeat(150));
        run(
            &t,
            &[
                (
                    b'0',
                    b"",
                    b"",
                    vec![("path", long.clone().into_bytes())],
                    b"x",
                ),
                (
                    b'2',
                    b"s",
                    b"",
                    vec![("linkpath", long.clone().into_bytes())],
                    b"",
                ),
                (
                    b'1',
                    b"h",
                    b"",
                    vec![("linkpath", long.clone().into_bytes())],
                    b"",
                ),
            ],
        )
        .unwrap();
        assert_eq!(fs::read_link(t.dest().join("s")).unwrap(), Path::new(&long));
        assert_eq!(
            fs::metadata(t.dest().join("h")).unwrap().ino(),
            fs::metadata(t.dest().join(&long)).unwrap().ino()
        );
    }

    #[test]
    fn pax_owner_and_time_win_over_the_header() {
        let t = Tmp::new("pax-owner");
        run(
            &t,
            &[(
                b'0',
                b"f",
                b"",
                vec![
                    ("uid", b"3000000".to_vec()),
                    ("gid", b"3000001".to_vec()),
                    ("mtime", b"1234567890.5".to_vec()),
                ],
                b"x",
            )],
        )
        .unwrap();
        let m = fs::metadata(t.dest().join("f")).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mtime()),
            (3_000_000, 3_000_001, 1_234_567_890)
        );
    }

    #[test]
    fn a_hardlink_to_a_symlink_is_another_name_of_the_symlink() {
        let t = Tmp::new("hard-to-sym");
        run(
            &t,
            &[
                (b'2', b"s", b"/etc/passwd", vec![], b""),
                (b'1', b"h", b"s", vec![], b""),
            ],
        )
        .unwrap();
        assert_eq!(
            fs::read_link(t.dest().join("h")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::symlink_metadata(t.dest().join("h")).unwrap().ino(),
            fs::symlink_metadata(t.dest().join("s")).unwrap().ino()
        );
    }

    #[test]
    fn metadata_entries_touch_nothing_and_unknown_types_and_sparse_files_are_refused() {
        let t = Tmp::new("types");
        // An old (pre-POSIX) header: the reader hands its `g` entry over.
        run(
            &t,
            &[
                (b'0', b"keep", b"", vec![], b"x"),
                (b'g', b"keep", b"", vec![], b""),
                (b'g', b"new/dir", b"", vec![], b""),
            ],
        )
        .unwrap();
        assert_eq!(fs::read(t.dest().join("keep")).unwrap(), b"x");
        assert!(!t.dest().join("new").exists());
        let e = run(&t, &[(b'V', b"label", b"", vec![], b"")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer sha256:test: entry `label`: unsupported entry type `V`"),
            "{e}"
        );
        let mut sparse = tar::Header::new_gnu();
        sparse.set_entry_type(tar::EntryType::GNUSparse);
        sparse.set_path("holes").unwrap();
        sparse.set_mode(0o644);
        sparse.set_uid(0);
        sparse.set_gid(0);
        sparse.set_mtime(0);
        // 8 GiB of holes, then one byte.
        sparse.set_size(1);
        let gnu = sparse.as_gnu_mut().unwrap();
        gnu.realsize = *b"77777777777\0";
        gnu.sparse[0].offset = *b"77777777776\0";
        gnu.sparse[0].numbytes = *b"00000000001\0";
        sparse.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&sparse, &b"x"[..]).unwrap();
        let e = unpack("sha256:test", &b.into_inner().unwrap()[..], &t.dest())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry `holes`: GNU sparse files are not supported"),
            "{e}"
        );
        assert!(!t.dest().join("holes").exists());
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_as_they_are() {
        let t = Tmp::new("bytes");
        run(
            &t,
            &[
                (b'0', b"caf\xe9", b"", vec![], b"x"),
                (b'0', b"d/.wh.caf\xe9", b"", vec![], b""),
            ],
        )
        .unwrap();
        assert_eq!(
            fs::read(t.dest().join(OsStr::from_bytes(b"caf\xe9"))).unwrap(),
            b"x"
        );
        let wh = fs::symlink_metadata(t.dest().join(OsStr::from_bytes(b"d/caf\xe9"))).unwrap();
        assert_eq!((wh.mode() & 0o170000, wh.rdev()), (0o020000, 0));
    }
}
