//! The image store: blobs by digest, layers unpacked once per chain id,
//! and an index of images by name. Every write is atomic.

use std::collections::BTreeMap;
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
}

/// An image in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The config digest.
    pub id: String,
    pub names: Vec<String>,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<String>,
    /// Chain ids, base first: the directory of each unpacked layer.
    pub chain_ids: Vec<String>,
    pub config: RunConfig,
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<Image>,
}

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
        for d in ["blobs/sha256", "layers", "tmp"] {
            fs::create_dir_all(s.root.join(d)).map_err(|e| ImageError::io(&s.root.join(d), e))?;
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self, what: &str) -> Result<PathBuf, ImageError> {
        let mut rnd = [0u8; 8];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut rnd))
            .map_err(|e| ImageError::io(Path::new("/dev/urandom"), e))?;
        let p = self.root.join("tmp").join(format!("{what}-{}", hex(&rnd)));
        fs::create_dir_all(&p).map_err(|e| ImageError::io(&p, e))?;
        Ok(p)
    }

    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(chain_id.trim_start_matches("sha256:"))
    }

    /// Unpacks a layer unless its chain is already there. Returns (chain id, diff id, bytes).
    pub fn add_layer(
        &self,
        name: &str,
        parent_chain: Option<&str>,
        compressed: impl Read,
    ) -> Result<(String, String, u64), ImageError> {
        let tmp = self.tmp_dir("layer")?;
        let mut input = io::BufReader::new(compressed);
        let gz = io::BufRead::fill_buf(&mut input)
            .map(|h| h.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        let raw: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(input))
        } else {
            Box::new(input)
        };
        let mut hashing = Hashing::new(raw);
        let result = crate::unpack::unpack(name, &mut hashing, &tmp);
        let finished = result.map_err(ImageError::Unpack).and_then(|bytes| {
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
        let chain_id = match parent_chain {
            None => diff_id.clone(),
            Some(p) => format!("sha256:{}", sha256_hex(format!("{p} {diff_id}").as_bytes())),
        };
        let dir = self.layer_dir(&chain_id);
        if dir.exists() {
            let _ = fs::remove_dir_all(&tmp);
        } else {
            fs::rename(&tmp, &dir).map_err(|e| ImageError::io(&dir, e))?;
        }
        Ok((chain_id, diff_id, bytes))
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

    fn write_index(&self, idx: &Index) -> Result<(), ImageError> {
        let p = self.index_path();
        let tmp = self.root.join(".images.json.tmp");
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(idx).map_err(io::Error::other)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &p)
        };
        write().map_err(|e| ImageError::io(&p, e))
    }

    /// Records an image; names move from any image that had them.
    pub fn put_image(&self, img: Image) -> Result<(), ImageError> {
        let mut idx = self.read_index()?;
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
            }
            None => idx.images.push(img),
        }
        self.write_index(&idx)
    }

    pub fn images(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.read_index()?.images)
    }

    /// An image by name (`busybox`, `busybox:1.36`) or id prefix.
    pub fn lookup(&self, reference: &str) -> Result<Image, ImageError> {
        let name = normalize_name(reference);
        let idx = self.read_index()?;
        let hex = reference.trim_start_matches("sha256:");
        idx.images
            .iter()
            .find(|i| i.names.contains(&name))
            .or_else(|| {
                idx.images
                    .iter()
                    .find(|i| hex.len() >= 6 && i.id.trim_start_matches("sha256:").starts_with(hex))
            })
            .cloned()
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))
    }

    /// Adds a name to an image.
    pub fn tag(&self, reference: &str, new_name: &str) -> Result<Image, ImageError> {
        let mut img = self.lookup(reference)?;
        img.names = vec![normalize_name(new_name)];
        self.put_image(img)?;
        self.lookup(new_name)
    }

    /// Removes a name; the image goes when its last name does (unless `in_use`
    /// says a container runs from it). Returns the removed image id, if any.
    pub fn remove(
        &self,
        reference: &str,
        in_use: &dyn Fn(&Image) -> bool,
    ) -> Result<Option<String>, ImageError> {
        let img = self.lookup(reference)?;
        let mut idx = self.read_index()?;
        let name = normalize_name(reference);
        let by_name = img.names.contains(&name);
        let entry = idx
            .images
            .iter_mut()
            .find(|i| i.id == img.id)
            .ok_or_else(|| ImageError::NotFound(reference.into()))?;
        if by_name && entry.names.len() > 1 {
            entry.names.retain(|n| *n != name);
            self.write_index(&idx)?;
            return Ok(None);
        }
        if in_use(&img) {
            return Err(ImageError::InUse(reference.to_string()));
        }
        idx.images.retain(|i| i.id != img.id);
        self.write_index(&idx)?;
        Ok(Some(img.id))
    }

    /// Removes unpacked layers no image refers to and `keep` does not hold.
    /// Returns the bytes freed (roughly: file sizes).
    pub fn prune_layers(&self, keep: &dyn Fn(&Path) -> bool) -> Result<(usize, u64), ImageError> {
        let idx = self.read_index()?;
        let used: std::collections::BTreeSet<String> = idx
            .images
            .iter()
            .flat_map(|i| {
                i.chain_ids
                    .iter()
                    .map(|c| c.trim_start_matches("sha256:").to_string())
            })
            .collect();
        let dir = self.root.join("layers");
        let (mut count, mut bytes) = (0, 0);
        for e in fs::read_dir(&dir)
            .map_err(|e| ImageError::io(&dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if used.contains(&name) || keep(&e.path()) {
                continue;
            }
            bytes += dir_size(&e.path());
            fs::remove_dir_all(e.path()).map_err(|err| ImageError::io(&e.path(), err))?;
            count += 1;
        }
        Ok((count, bytes))
    }

    /// The overlay lower directories of an image, top layer first.
    pub fn lower_dirs(&self, img: &Image) -> Vec<PathBuf> {
        img.chain_ids
            .iter()
            .rev()
            .map(|c| self.layer_dir(c))
            .collect()
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
