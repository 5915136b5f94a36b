//! The image store: blobs by digest, layers unpacked once per chain id,
//! and an index of images by name. Every write is atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ImageError;

/// `sha256:<hex>`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A reader that hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub bytes: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    /// Reads to the end and returns `sha256:<hex>` of everything read.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.bytes,
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What a container needs from an image's config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(default, rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(default, rename = "WorkingDir")]
    pub working_dir: Option<String>,
    #[serde(default, rename = "User")]
    pub user: Option<String>,
    #[serde(default, rename = "StopSignal")]
    pub stop_signal: Option<String>,
    #[serde(default, rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `{"80/tcp": {}}`.
    #[serde(default, rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `{"/data": {}}`: each gets an anonymous volume.
    #[serde(default, rename = "Volumes")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// As Docker writes it: `Test`, `Interval`, … (nanoseconds).
    #[serde(default, rename = "Healthcheck")]
    pub healthcheck: Option<serde_json::Value>,
}

/// A blob in the content store, as a manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An image in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The config digest (the config is a blob).
    pub id: String,
    pub names: Vec<String>,
    /// `name@sha256:…` for every registry the manifest came from or went to.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<String>,
    /// Chain ids, base first: the directory of each unpacked layer.
    pub chain_ids: Vec<String>,
    /// The layer blobs as stored (compressed or not), base first; empty for
    /// images recorded before blobs were kept.
    #[serde(default)]
    pub layers: Vec<Blob>,
    /// Unpacked bytes of each layer, base first.
    #[serde(default)]
    pub layer_sizes: Vec<u64>,
    /// The manifest as pulled or loaded, kept so a push keeps its digest.
    #[serde(default)]
    pub manifest: Option<Blob>,
    /// `os/arch[/variant]`.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    pub config: RunConfig,
    pub size: u64,
    /// Its attestation manifest (a build's provenance), pushed beside it in
    /// an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// An attestation manifest and the blobs it names (its config and its
/// in-toto statements), all in the blob store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    pub manifest: Blob,
    pub blobs: Vec<Blob>,
}

/// The parts of an image config we read.
#[derive(Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    pub fn parse(bytes: &[u8], what: &Path) -> Result<ConfigFile, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::Corrupt {
            path: what.to_path_buf(),
            why: format!("not an image config: {e}"),
        })
    }
}

/// A layer of an image being recorded.
#[derive(Clone, Debug)]
pub struct LayerParts {
    pub blob: Blob,
    pub diff_id: String,
    pub chain_id: String,
    pub size: u64,
}

/// The chain id of a layer on top of `parent`.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => format!("sha256:{}", sha256_hex(format!("{p} {diff_id}").as_bytes())),
    }
}

/// The chain id of every layer of a stack of diff ids, base first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for d in diff_ids {
        chains.push(chain_id(chains.last().map(String::as_str), d));
    }
    chains
}

/// Gzip and zstd are recognized by their magic; anything else is a plain tar.
pub fn decompress<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut input = io::BufReader::new(input);
    let head = io::BufRead::fill_buf(&mut input)?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(input).map_err(io::Error::other)?)
    } else {
        Box::new(input)
    })
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<Image>,
}

/// A held `flock`; released on drop.
pub struct StoreLock(#[allow(dead_code)] stack_sys::FileLock);

/// What a garbage collection removed.
#[derive(Debug, Default, PartialEq)]
pub struct Collected {
    pub layers: usize,
    pub blobs: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// `busybox` → `busybox:latest`; names with a tag or digest stay.
pub fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        let s = Store {
            root: root.to_path_buf(),
        };
        // Layers are the containers' lower directories: root's alone, so
        // no other user reaches (or runs) what an image carries.
        stack_sys::private_dir(root).map_err(|e| ImageError::io(root, e.into_io()))?;
        for d in ["blobs/sha256", "layers", "tmp", "locks"] {
            fs::create_dir_all(s.root.join(d)).map_err(|e| ImageError::io(&s.root.join(d), e))?;
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn flock(&self, name: &str, exclusive: bool) -> Result<StoreLock, ImageError> {
        let p = self.root.join(name);
        stack_sys::lock(&p, exclusive)
            .map(StoreLock)
            .map_err(|e| ImageError::io(&p, e))
    }

    /// Held (shared) while adding blobs and layers that no image names yet,
    /// so a garbage collection in another process (exclusive) cannot take
    /// them away halfway.
    pub fn lock_shared(&self) -> Result<StoreLock, ImageError> {
        self.flock("gc.lock", false)
    }

    /// Held (exclusive) while a blob is being fetched, so parallel pulls of
    /// the same blob download it once: the second finds it stored.
    pub fn lock_blob(&self, digest: &str) -> Result<StoreLock, ImageError> {
        self.blob_path(digest)?;
        self.flock(&format!("locks/{}", &digest[7..]), true)
    }

    pub fn tmp_dir(&self, what: &str) -> Result<PathBuf, ImageError> {
        let p = self.tmp_path(what)?;
        fs::create_dir_all(&p).map_err(|e| ImageError::io(&p, e))?;
        Ok(p)
    }

    fn tmp_path(&self, what: &str) -> Result<PathBuf, ImageError> {
        let rnd =
            stack_sys::random_hex(8).map_err(|e| ImageError::io(Path::new("/dev/urandom"), e))?;
        Ok(self.root.join("tmp").join(format!("{what}-{rnd}")))
    }

    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(chain_id.trim_start_matches("sha256:"))
    }

    /// Where a blob lives. Digests come from hostile manifests: anything but
    /// `sha256:<64 hex>` is refused before it becomes a path.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        if !crate::reference::valid_digest(digest) {
            return Err(ImageError::BadDigest(digest.to_string()));
        }
        Ok(self.root.join("blobs/sha256").join(&digest[7..]))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| ImageError::io(&p, e))
    }

    /// A writer for a new blob: it lands under its digest only when
    /// committed with the right digest, so a partial download is never seen.
    pub fn blob_writer(&self) -> Result<BlobWriter, ImageError> {
        let path = self.tmp_path("blob")?;
        let file = fs::File::create(&path).map_err(|e| ImageError::io(&path, e))?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            blobs: self.root.join("blobs/sha256"),
        })
    }

    /// Stores everything `r` gives as a blob; returns (digest, size).
    pub fn write_blob(
        &self,
        expected: Option<&str>,
        mut r: impl Read,
    ) -> Result<(String, u64), ImageError> {
        let mut w = self.blob_writer()?;
        let path = w.path.clone();
        io::copy(&mut r, &mut w).map_err(|e| ImageError::io(&path, e))?;
        w.commit(expected)
    }

    /// Unpacks a blob as a layer on top of `parent` unless that chain is
    /// already there. With `expected_diff_id` (from the image config) a
    /// layer whose content differs is refused. Returns the parts to record.
    pub fn unpack_blob(
        &self,
        blob: &Blob,
        parent: Option<&str>,
        expected_diff_id: Option<&str>,
    ) -> Result<LayerParts, ImageError> {
        if let Some(d) = expected_diff_id {
            let chain = chain_id(parent, d);
            let dir = self.layer_dir(&chain);
            if dir.is_dir() {
                return Ok(LayerParts {
                    blob: blob.clone(),
                    diff_id: d.to_string(),
                    size: dir_size(&dir),
                    chain_id: chain,
                });
            }
        }
        let p = self.blob_path(&blob.digest)?;
        let f = fs::File::open(&p).map_err(|e| ImageError::io(&p, e))?;
        let (chain_id, diff_id, size) = self.add_layer(&blob.digest, parent, f)?;
        if let Some(want) = expected_diff_id {
            if want != diff_id {
                return Err(ImageError::Corrupt {
                    path: p,
                    why: format!(
                        "layer {} unpacks to {diff_id}, but the image config says {want}",
                        blob.digest
                    ),
                });
            }
        }
        Ok(LayerParts {
            blob: blob.clone(),
            diff_id,
            chain_id,
            size,
        })
    }

    /// Unpacks a layer unless its chain is already there. Returns (chain id, diff id, bytes).
    pub fn add_layer(
        &self,
        name: &str,
        parent_chain: Option<&str>,
        compressed: impl Read,
    ) -> Result<(String, String, u64), ImageError> {
        let tmp = self.tmp_dir("layer")?;
        let finished = decompress(compressed)
            .map_err(|e| {
                ImageError::Unpack(crate::unpack::UnpackError::Tar {
                    layer: name.to_string(),
                    source: e,
                })
            })
            .and_then(|raw| {
                let mut hashing = Hashing::new(raw);
                let bytes = crate::unpack::unpack(name, &mut hashing, &tmp)?;
                let (diff_id, _) = hashing.finish().map_err(|e| ImageError::io(&tmp, e))?;
                Ok((diff_id, bytes))
            });
        let (diff_id, bytes) = match finished {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let chain_id = chain_id(parent_chain, &diff_id);
        let dir = self.layer_dir(&chain_id);
        if dir.exists() {
            let _ = fs::remove_dir_all(&tmp);
        } else if let Err(e) = fs::rename(&tmp, &dir) {
            // Another process may have won the race with the same content.
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(ImageError::io(&dir, e));
            }
        }
        Ok((chain_id, diff_id, bytes))
    }

    /// Records an image from its config blob (already stored) and layers.
    pub fn record(
        &self,
        names: Vec<String>,
        config_digest: &str,
        layers: Vec<LayerParts>,
        manifest: Option<(Blob, Vec<String>)>,
    ) -> Result<Image, ImageError> {
        let path = self.blob_path(config_digest)?;
        let cfg = ConfigFile::parse(&self.read_blob(config_digest)?, &path)?;
        let platform = cfg.os.as_ref().map(|os| {
            let mut p = format!("{os}/{}", cfg.architecture.as_deref().unwrap_or("unknown"));
            if let Some(v) = &cfg.variant {
                p = format!("{p}/{v}");
            }
            p
        });
        let (manifest, repo_digests) = manifest.map_or((None, Vec::new()), |(m, r)| (Some(m), r));
        let img = Image {
            id: config_digest.to_string(),
            names: names.iter().map(|n| normalize_name(n)).collect(),
            repo_digests,
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            chain_ids: layers.iter().map(|l| l.chain_id.clone()).collect(),
            layer_sizes: layers.iter().map(|l| l.size).collect(),
            size: layers.iter().map(|l| l.size).sum(),
            layers: layers.into_iter().map(|l| l.blob).collect(),
            manifest,
            platform,
            created: cfg.created,
            config: cfg.config.unwrap_or_default(),
            attestation: None,
        };
        self.put_image(img.clone())?;
        Ok(img)
    }

    /// Keeps `attestation` (its blobs stored) with the image `id`.
    pub fn attest(&self, id: &str, attestation: Attestation) -> Result<(), ImageError> {
        self.update_index(|idx| {
            let img = idx
                .images
                .iter_mut()
                .find(|i| i.id == id)
                .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
            img.attestation = Some(attestation);
            Ok(())
        })
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Corrupt {
                path: p,
                why: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io(&p, e)),
        }
    }

    /// Read, change, write the index under its lock: parallel `stack`
    /// processes never lose each other's updates.
    fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Index) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock = self.flock("index.lock", true)?;
        let mut idx = self.read_index()?;
        let out = change(&mut idx)?;
        let p = self.index_path();
        serde_json::to_vec_pretty(&idx)
            .map_err(io::Error::other)
            .and_then(|json| stack_sys::write_atomic(&p, &json))
            .map_err(|e| ImageError::io(&p, e))?;
        Ok(out)
    }

    /// Records an image; names move from any image that had them.
    pub fn put_image(&self, img: Image) -> Result<(), ImageError> {
        self.update_index(|idx| {
            for other in idx.images.iter_mut() {
                other.names.retain(|n| !img.names.contains(n));
            }
            match idx.images.iter_mut().find(|i| i.id == img.id) {
                Some(existing) => {
                    for n in img.names {
                        if !existing.names.contains(&n) {
                            existing.names.push(n);
                        }
                    }
                    for d in img.repo_digests {
                        if !existing.repo_digests.contains(&d) {
                            existing.repo_digests.push(d);
                        }
                    }
                    if existing.layers.is_empty() {
                        existing.layers = img.layers;
                        existing.manifest = img.manifest;
                    }
                }
                None => idx.images.push(img),
            }
            Ok(())
        })
    }

    pub fn images(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.read_index()?.images)
    }

    /// An image by name (`busybox`, `busybox:1.36`), repo digest or id prefix.
    pub fn lookup(&self, reference: &str) -> Result<Image, ImageError> {
        find(&self.read_index()?.images, reference)
            .cloned()
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))
    }

    /// Adds a name to an image.
    pub fn tag(&self, reference: &str, new_name: &str) -> Result<Image, ImageError> {
        let mut img = self.lookup(reference)?;
        img.names = vec![normalize_name(new_name)];
        img.repo_digests.clear();
        self.put_image(img)?;
        self.lookup(new_name)
    }

    /// Removes a name; the image goes when its last name does (unless `in_use`
    /// says a container runs from it). Returns the removed image id, if any.
    /// Layers and blobs stay until [`Store::collect`].
    pub fn remove(
        &self,
        reference: &str,
        in_use: &dyn Fn(&Image) -> bool,
    ) -> Result<Option<String>, ImageError> {
        let name = normalize_name(reference);
        self.update_index(|idx| {
            let img = find(&idx.images, reference)
                .cloned()
                .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
            let entry = idx
                .images
                .iter_mut()
                .find(|i| i.id == img.id)
                .expect("found above");
            if img.names.contains(&name) && entry.names.len() > 1 {
                entry.names.retain(|n| *n != name);
                return Ok(None);
            }
            if in_use(&img) {
                return Err(ImageError::InUse(reference.to_string()));
            }
            idx.images.retain(|i| i.id != img.id);
            Ok(Some(img.id))
        })
    }

    /// Garbage collection, mark and sweep: removes layers and blobs no image
    /// refers to and `keep` does not hold (a container's layers), and what
    /// interrupted pulls left in tmp. Waits for running pulls and loads.
    pub fn collect(&self, keep: &dyn Fn(&Path) -> bool) -> Result<Collected, ImageError> {
        let _gc = self.flock("gc.lock", true)?;
        let idx = self.read_index()?;
        let short = |d: &String| d.trim_start_matches("sha256:").to_string();
        let layers: BTreeSet<String> = idx
            .images
            .iter()
            .flat_map(|i| i.chain_ids.iter().map(short))
            .collect();
        let blobs: BTreeSet<String> = idx
            .images
            .iter()
            .flat_map(|i| {
                let attested = i
                    .attestation
                    .iter()
                    .flat_map(|a| std::iter::once(&a.manifest).chain(&a.blobs));
                i.layers
                    .iter()
                    .chain(i.manifest.as_ref())
                    .chain(attested)
                    .map(|b| short(&b.digest))
                    .chain(std::iter::once(short(&i.id)))
            })
            .collect();
        let mut out = Collected::default();
        for (dir, live, is_layer) in [("layers", &layers, true), ("blobs/sha256", &blobs, false)] {
            let dir = self.root.join(dir);
            for e in fs::read_dir(&dir)
                .map_err(|e| ImageError::io(&dir, e))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().to_string();
                if live.contains(&name) || keep(&e.path()) {
                    continue;
                }
                out.bytes += dir_size(&e.path());
                let removed = if is_layer {
                    out.layers += 1;
                    fs::remove_dir_all(e.path())
                } else {
                    out.blobs += 1;
                    fs::remove_file(e.path())
                };
                removed.map_err(|err| ImageError::io(&e.path(), err))?;
            }
        }
        // No pull or load runs while we hold the exclusive lock: what they
        // left behind is debris.
        for dir in ["tmp", "locks"] {
            let dir = self.root.join(dir);
            for e in fs::read_dir(&dir)
                .map_err(|e| ImageError::io(&dir, e))?
                .flatten()
            {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
        Ok(out)
    }

    /// The overlay lower directories of an image, top layer first.
    pub fn lower_dirs(&self, img: &Image) -> Vec<PathBuf> {
        img.chain_ids
            .iter()
            .rev()
            .map(|c| self.layer_dir(c))
            .collect()
    }

    /// Bytes of an image's layers that other images share, and its own.
    pub fn shared_and_unique(&self, img: &Image, all: &[Image]) -> (u64, u64) {
        let (mut shared, mut unique) = (0, 0);
        for (i, c) in img.chain_ids.iter().enumerate() {
            let size = img.layer_sizes.get(i).copied().unwrap_or(0);
            if all
                .iter()
                .any(|o| o.id != img.id && o.chain_ids.contains(c))
            {
                shared += size;
            } else {
                unique += size;
            }
        }
        (shared, unique)
    }
}

/// By name, repo digest, full id or id prefix (6+ hex digits).
fn find<'a>(images: &'a [Image], reference: &str) -> Option<&'a Image> {
    let name = normalize_name(reference);
    let hex = reference.trim_start_matches("sha256:");
    images
        .iter()
        .find(|i| i.names.contains(&name) || i.repo_digests.iter().any(|d| d == reference))
        .or_else(|| {
            images.iter().find(|i| {
                hex.len() >= 6
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    && i.id.trim_start_matches("sha256:").starts_with(hex)
            })
        })
}

/// A blob being written; see [`Store::blob_writer`].
pub struct BlobWriter {
    file: Option<fs::File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    blobs: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("not committed").write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verifies the digest (when one is expected) and moves the blob into place.
    pub fn commit(mut self, expected: Option<&str>) -> Result<(String, u64), ImageError> {
        let digest = format!("sha256:{}", hex(&self.hasher.clone().finalize()));
        if let Some(want) = expected {
            if want != digest {
                return Err(ImageError::DigestMismatch {
                    expected: want.to_string(),
                    got: digest,
                });
            }
        }
        let f = self.file.take().expect("committed once");
        f.sync_all().map_err(|e| ImageError::io(&self.path, e))?;
        let dest = self.blobs.join(&digest[7..]);
        fs::rename(&self.path, &dest).map_err(|e| ImageError::io(&dest, e))?;
        Ok((digest, self.size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(p)
        .map(|d| d.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}
