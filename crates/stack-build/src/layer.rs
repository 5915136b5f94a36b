//! A directory in overlay's format (a container's upper directory, or one
//! a COPY filled) becomes a layer: a tar blob in Docker's format (overlay
//! whiteouts as `.wh.` entries, opaque directories as `.wh..wh..opq`), and
//! the directory itself, renamed into the store as the layer's unpacked
//! form (what the tar cannot hold is taken out of it first: sockets, and
//! attributes a layer does not keep, overlay's own but the opaque marker),
//! so it is not unpacked again. Where the rename cannot be done (another
//! file system), the blob is unpacked by the store's unpacker.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use stack_image::store::{LayerParts, Store};
use stack_image::Blob;

/// Media type of the uncompressed layers a build writes.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Writes `dir` as a layer on top of `parent` (a chain id) into `store`.
/// `None` when `dir` holds nothing: the step made no change.
pub fn commit(
    store: &Store,
    dir: &Path,
    parent: Option<&str>,
) -> anyhow::Result<Option<LayerParts>> {
    if fs::read_dir(dir)?.next().is_none() {
        return Ok(None);
    }
    // The directory's own attributes are not in the tar (it has no entry).
    for name in xattr::list(dir)? {
        if name.to_string_lossy() != stack_sys::userns::overlay_opaque() {
            xattr::remove(dir, &name)?;
        }
    }
    let mut walk = Walk {
        links: HashMap::new(),
        skip: &[],
        tidy: true,
    };
    let blob = walk.write(store, dir)?;
    let digest = blob.digest.clone();
    // Uncompressed: the blob's digest is the diff id.
    let chain = stack_image::store::chain_id(parent, &digest);
    let target = store.layer_dir(&chain);
    let placed = target.is_dir() || {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        fs::rename(dir, &target).is_ok()
    };
    if !placed {
        return Ok(Some(store.unpack_blob(&blob, parent, Some(&digest))?));
    }
    Ok(Some(LayerParts {
        blob,
        diff_id: digest,
        chain_id: chain,
        size: bytes(&target),
    }))
}

/// Writes `dir` (a container's writable layer, left as it is) as a layer
/// on top of `parent`, without the paths in `skip` (relative, what the
/// runtime made there rather than the container): `commit`.
pub fn copy(
    store: &Store,
    dir: &Path,
    parent: Option<&str>,
    skip: &[std::path::PathBuf],
) -> anyhow::Result<LayerParts> {
    let mut walk = Walk {
        links: HashMap::new(),
        skip,
        tidy: false,
    };
    let blob = walk.write(store, dir)?;
    Ok(store.unpack_blob(&blob, parent, None)?)
}

/// The walk of a directory into a layer's tar.
struct Walk<'a> {
    /// Hard links: the first path of each (device, inode) written.
    links: HashMap<(u64, u64), std::path::PathBuf>,
    skip: &'a [std::path::PathBuf],
    /// Whether what the tar leaves out is taken out of the directory too
    /// (it becomes the layer's unpacked form).
    tidy: bool,
}

impl Walk<'_> {
    /// The tar of `dir` as a blob in `store`.
    fn write(&mut self, store: &Store, dir: &Path) -> anyhow::Result<Blob> {
        let mut writer = store.blob_writer()?;
        {
            let mut tar = tar::Builder::new(&mut writer);
            tar.follow_symlinks(false);
            // (A container that never ran has no writable layer yet: empty.)
            if dir.is_dir() {
                self.append_tree(&mut tar, dir, Path::new(""))?;
            }
            tar.finish()?;
        }
        let (digest, size) = writer.commit(None)?;
        Ok(Blob {
            media_type: LAYER_TAR.into(),
            digest,
            size,
        })
    }

    fn append_tree<W: io::Write>(
        &mut self,
        tar: &mut tar::Builder<W>,
        root: &Path,
        rel: &Path,
    ) -> anyhow::Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let path = rel.join(&name);
            if self.skip.contains(&path) {
                continue;
            }
            let full = root.join(&path);
            let md = fs::symlink_metadata(&full)?;
            let ft = md.file_type();
            // An overlay whiteout: a 0:0 character device.
            if ft.is_char_device() && md.rdev() == 0 {
                let mut wh = name.clone();
                wh = std::ffi::OsString::from(format!(".wh.{}", wh.to_string_lossy()));
                let mut h = header(&md, tar::EntryType::Regular);
                h.set_size(0);
                // As Docker writes its whiteouts.
                h.set_mode(0o600);
                tar.append_data(&mut h, rel.join(wh), io::empty())?;
                continue;
            }
            append_xattrs(tar, &full, self.tidy)?;
            if ft.is_dir() {
                let mut h = header(&md, tar::EntryType::Directory);
                tar.append_data(&mut h, &path, io::empty())?;
                if xattr::get(&full, stack_sys::userns::overlay_opaque())?.as_deref() == Some(b"y")
                {
                    let mut h = header(&md, tar::EntryType::Regular);
                    h.set_size(0);
                    tar.append_data(&mut h, path.join(".wh..wh..opq"), io::empty())?;
                }
                self.append_tree(tar, root, &path)?;
            } else if ft.is_symlink() {
                let mut h = header(&md, tar::EntryType::Symlink);
                tar.append_link(&mut h, &path, fs::read_link(&full)?)?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    let key = (md.dev(), md.ino());
                    if let Some(first) = self.links.get(&key) {
                        let mut h = header(&md, tar::EntryType::Link);
                        tar.append_link(&mut h, &path, first)?;
                        continue;
                    }
                    self.links.insert(key, path.clone());
                }
                let mut h = header(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                // Exactly the size the header says, whatever the file became.
                let file = io::Read::take(fs::File::open(&full)?, md.len());
                let data = io::Read::take(io::Read::chain(file, io::repeat(0)), md.len());
                tar.append_data(&mut h, &path, data)?;
            } else {
                let kind = if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    // Sockets are not kept, as Docker does not: out of the
                    // directory too, if it becomes the layer.
                    if self.tidy {
                        fs::remove_file(&full)?;
                    }
                    continue;
                };
                let mut h = header(&md, kind);
                let dev = md.rdev();
                h.set_device_major(nix::sys::stat::major(dev) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(dev) as u32)?;
                tar.append_data(&mut h, &path, io::empty())?;
            }
        }
        Ok(())
    }
}

/// The bytes of the files under `p`.
fn bytes(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|d| d.flatten().map(|e| bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn header(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid().into());
    h.set_gid(md.gid().into());
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// The attributes a layer keeps (the unpacker's rule: `user.*` but not
/// `user.overlay.*`, file capabilities, POSIX ACLs), as a PAX header for
/// the next entry. Those it does not keep are removed from `path` if `tidy`.
fn append_xattrs<W: io::Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    tidy: bool,
) -> anyhow::Result<()> {
    let mut records = Vec::new();
    for name in xattr::list(path)? {
        let n = name.to_string_lossy();
        if !stack_image::unpack::xattr_allowed(&n) {
            // Not in the layer: not in the directory either (overlay's
            // opaque marker stays, the tar says it in its own way).
            if tidy && n != stack_sys::userns::overlay_opaque() {
                xattr::remove(path, &name)?;
            }
            continue;
        }
        let Some(value) = xattr::get(path, &name)? else {
            continue;
        };
        let key = format!("SCHILY.xattr.{n}");
        // "len key=value\n", len counting itself.
        let rest = key.len() + value.len() + 3;
        let mut len = rest + rest.to_string().len();
        if len.to_string().len() != rest.to_string().len() {
            len += 1;
        }
        records.extend_from_slice(format!("{len} {key}=").as_bytes());
        records.extend_from_slice(&value);
        records.push(b'\n');
    }
    if !records.is_empty() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(records.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, "PaxHeader", &records[..])?;
    }
    Ok(())
}
