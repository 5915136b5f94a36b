//! `docker save` archives (legacy manifest.json, and the OCI layout Docker
//! 25+ writes) and OCI layout directories or tars, into the store.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::store::{normalize_name, sha256_hex, Blob, ConfigFile, Image, LayerParts, Store};
use crate::ImageError;

#[derive(Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    layers: Vec<OciDescriptor>,
}

/// Copies the regular files of an archive into `dir` (names checked: an
/// archive can't write outside it; links are ignored).
fn extract_files(archive: &Path, dir: &Path) -> Result<(), ImageError> {
    let f = fs::File::open(archive).map_err(|e| ImageError::io(archive, e))?;
    let mut tar = tar::Archive::new(f);
    let bad = |why: String| ImageError::Archive {
        path: archive.to_path_buf(),
        why,
    };
    for e in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut e = e.map_err(|e| bad(e.to_string()))?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let raw = e.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let mut rel = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::CurDir | Component::RootDir => {}
                _ => {
                    return Err(bad(format!(
                        "entry `{}` climbs out of the archive",
                        raw.display()
                    )))
                }
            }
        }
        let target = dir.join(&rel);
        if let Some(p) = target.parent() {
            fs::create_dir_all(p).map_err(|e| ImageError::io(p, e))?;
        }
        let mut out = fs::File::create(&target).map_err(|e| ImageError::io(&target, e))?;
        std::io::copy(&mut e, &mut out).map_err(|e| bad(format!("`{}`: {e}", raw.display())))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, rel: &str) -> Result<T, ImageError> {
    let p = dir.join(rel.trim_start_matches('/'));
    let b = fs::read(&p).map_err(|e| ImageError::io(&p, e))?;
    serde_json::from_slice(&b).map_err(|e| ImageError::Corrupt {
        path: p,
        why: e.to_string(),
    })
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// Loads every image of an archive (tar file) or OCI layout directory.
pub fn load(store: &Store, input: &Path) -> Result<Vec<Image>, ImageError> {
    let (dir, cleanup) = if input.is_dir() {
        (input.to_path_buf(), None)
    } else {
        let tmp = store.tmp_dir("load")?;
        if let Err(e) = extract_files(input, &tmp) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        (tmp.clone(), Some(tmp))
    };
    let result = load_dir(store, &dir, input);
    if let Some(t) = cleanup {
        let _ = fs::remove_dir_all(t);
    }
    result
}

fn load_dir(store: &Store, dir: &Path, input: &Path) -> Result<Vec<Image>, ImageError> {
    // (config path, names, layers (path, media type), manifest (media type, path))
    type Todo = (
        String,
        Vec<String>,
        Vec<(String, Option<String>)>,
        Option<(String, String)>,
    );
    let mut todo: Vec<Todo> = Vec::new();
    if dir.join("manifest.json").is_file() {
        let manifests: Vec<SaveManifest> = read_json(dir, "manifest.json")?;
        for m in manifests {
            let layers = m.layers.into_iter().map(|l| (l, None)).collect();
            todo.push((m.config, m.repo_tags.unwrap_or_default(), layers, None));
        }
    } else if dir.join("index.json").is_file() {
        let index: OciIndex = read_json(dir, "index.json")?;
        for d in index.manifests {
            let name = d.annotations.as_ref().and_then(|a| {
                a.get("io.containerd.image.name")
                    .or_else(|| a.get("org.opencontainers.image.ref.name"))
                    .cloned()
            });
            let m: OciManifest = read_json(dir, &blob_path(&d.digest))?;
            todo.push((
                blob_path(&m.config.digest),
                name.into_iter().collect(),
                m.layers
                    .iter()
                    .map(|l| (blob_path(&l.digest), l.media_type.clone()))
                    .collect(),
                Some((
                    d.media_type
                        .clone()
                        .unwrap_or_else(|| media::OCI_MANIFEST.into()),
                    blob_path(&d.digest),
                )),
            ));
        }
    } else {
        return Err(ImageError::Archive {
            path: input.to_path_buf(),
            why: "neither manifest.json (docker save) nor index.json (OCI layout)".into(),
        });
    }
    let _lock = store.lock_shared()?;
    let mut out = Vec::new();
    for (config_path, names, layers, manifest) in todo {
        let stored = |rel: &str| -> Result<(String, u64), ImageError> {
            let p = dir.join(rel);
            let f = fs::File::open(&p).map_err(|e| ImageError::io(&p, e))?;
            store.write_blob(None, f)
        };
        let (config_digest, _) = stored(&config_path)?;
        let cfg = ConfigFile::parse(&store.read_blob(&config_digest)?, &dir.join(&config_path))?;
        let want = cfg.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        let mut blobs = Vec::new();
        for (rel, media_type) in &layers {
            let (digest, size) = stored(rel)?;
            let media_type = match media_type {
                Some(m) => m.clone(),
                None => layer_media_type(&store.blob_path(&digest)?, false)?,
            };
            blobs.push(Blob {
                media_type,
                digest,
                size,
            });
        }
        let parts = unpack_layers(store, &blobs, &want).map_err(|(i, e)| ImageError::Archive {
            path: input.to_path_buf(),
            why: format!("{}: {e}", layers[i].0),
        })?;
        let manifest = match manifest {
            Some(m) => {
                let (digest, size) = stored(&m.1)?;
                Some((
                    Blob {
                        media_type: m.0,
                        digest,
                        size,
                    },
                    Vec::new(),
                ))
            }
            None => None,
        };
        out.push(store.record(names, &config_digest, parts, manifest)?);
    }
    Ok(out)
}

/// Unpacks stored layer blobs. With the config's diff ids the chain ids are
/// known up front and the layers (independent directories) unpack in
/// parallel, each checked against its diff id; without, one after another.
/// An error comes with the index of the layer.
fn unpack_layers(
    store: &Store,
    blobs: &[Blob],
    want: &[String],
) -> Result<Vec<LayerParts>, (usize, ImageError)> {
    if want.len() != blobs.len() {
        let mut parts: Vec<LayerParts> = Vec::new();
        for (i, b) in blobs.iter().enumerate() {
            let parent = parts.last().map(|p| p.chain_id.clone());
            parts.push(
                store
                    .unpack_blob(b, parent.as_deref(), None)
                    .map_err(|e| (i, e))?,
            );
        }
        return Ok(parts);
    }
    let chains = crate::store::chain_ids(want);
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut parts = Vec::new();
    let indices: Vec<usize> = (0..blobs.len()).collect();
    for chunk in indices.chunks(width) {
        let done: Vec<_> = std::thread::scope(|s| {
            let threads: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let parent = i.checked_sub(1).map(|p| chains[p].as_str());
                    s.spawn(move || {
                        store
                            .unpack_blob(&blobs[i], parent, Some(&want[i]))
                            .map_err(|e| (i, e))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for d in done {
            parts.push(d?);
        }
    }
    Ok(parts)
}

/// The media type of a stored layer by its first bytes.
fn layer_media_type(blob: &Path, oci: bool) -> Result<String, ImageError> {
    let mut head = [0u8; 4];
    let n = fs::File::open(blob)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| ImageError::io(blob, e))?;
    let head = &head[..n];
    let (docker, oci_t) = if head.starts_with(&[0x1f, 0x8b]) {
        (media::DOCKER_LAYER_GZIP, media::OCI_LAYER_GZIP)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (media::OCI_LAYER_ZSTD, media::OCI_LAYER_ZSTD)
    } else {
        (media::DOCKER_LAYER, media::OCI_LAYER)
    };
    Ok(if oci { oci_t } else { docker }.to_string())
}

/// `import`: a plain root file system tar becomes a one-layer image.
pub fn import(store: &Store, rootfs_tar: &Path, name: &str) -> Result<Image, ImageError> {
    let _lock = store.lock_shared()?;
    let f = fs::File::open(rootfs_tar).map_err(|e| ImageError::io(rootfs_tar, e))?;
    let (digest, size) = store.write_blob(None, f)?;
    let blob = Blob {
        media_type: layer_media_type(&store.blob_path(&digest)?, true)?,
        digest,
        size,
    };
    let layer = store.unpack_blob(&blob, None, None)?;
    let config = serde_json::json!({
        "architecture": crate::registry::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    });
    let (config_digest, _) = store.write_blob(None, config.to_string().as_bytes())?;
    store.record(vec![name.to_string()], &config_digest, vec![layer], None)
}

/// The manifest of a stored image: the one it came with, else a new OCI
/// manifest over its blobs. Returns (media type, bytes).
pub fn manifest_of(store: &Store, img: &Image) -> Result<(String, Vec<u8>), ImageError> {
    if img.layers.is_empty() && !img.chain_ids.is_empty() {
        return Err(ImageError::NoBlobs(
            img.names.first().cloned().unwrap_or_else(|| img.id.clone()),
        ));
    }
    if let Some(m) = &img.manifest {
        if store.has_blob(&m.digest) {
            return Ok((m.media_type.clone(), store.read_blob(&m.digest)?));
        }
    }
    let config = store.read_blob(&img.id)?;
    let docker = img
        .layers
        .iter()
        .any(|l| l.media_type.starts_with("application/vnd.docker"));
    let (mt, config_mt) = if docker {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
    } else {
        (media::OCI_MANIFEST, media::OCI_CONFIG)
    };
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": config_mt, "digest": img.id, "size": config.len()},
        "layers": img.layers,
    });
    Ok((mt.to_string(), serde_json::to_vec(&m).expect("json")))
}

/// `save`: images into one tar that both `docker load` (manifest.json) and
/// OCI tools (index.json, oci-layout) read, as Docker 25+ writes it.
pub fn save(store: &Store, refs: &[String], out: impl std::io::Write) -> Result<(), ImageError> {
    let mut tar = tar::Builder::new(out);
    let io_err = |e: std::io::Error| ImageError::io(Path::new("<output>"), e);
    let mut seen = std::collections::BTreeSet::new();
    let mut add = |tar: &mut tar::Builder<_>, name: &str, data: &mut dyn Read, size: u64| {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append_data(&mut h, name, data).map_err(io_err)
    };
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    for r in refs {
        let img = store.lookup(r)?;
        let (mt, manifest) = manifest_of(store, &img)?;
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
        for b in img
            .layers
            .iter()
            .map(|b| b.digest.clone())
            .chain([img.id.clone()])
        {
            let p = store.blob_path(&b)?;
            let f = fs::File::open(&p).map_err(|e| ImageError::io(&p, e))?;
            let len = f.metadata().map_err(|e| ImageError::io(&p, e))?.len();
            add(&mut tar, &blob_path(&b), &mut { f }, len)?;
        }
        add(
            &mut tar,
            &blob_path(&manifest_digest),
            &mut manifest.as_slice(),
            manifest.len() as u64,
        )?;
        // A name given on the command line wins; an id saves every name.
        let tags: Vec<String> = if img.names.contains(&normalize_name(r)) {
            vec![normalize_name(r)]
        } else {
            img.names.clone()
        };
        let mut annotations = serde_json::Map::new();
        if let Some(t) = tags.first() {
            annotations.insert("io.containerd.image.name".into(), t.clone().into());
            let tag = t.rsplit_once(':').map_or("latest", |(_, t)| t);
            annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
        }
        index.push(serde_json::json!({
            "mediaType": mt, "digest": manifest_digest, "size": manifest.len(), "annotations": annotations,
        }));
        docker_manifest.push(serde_json::json!({
            "Config": blob_path(&img.id),
            "RepoTags": tags,
            "Layers": img.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }));
    }
    let files = [
        (
            "oci-layout",
            serde_json::json!({"imageLayoutVersion": "1.0.0"}),
        ),
        (
            "index.json",
            serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": index}),
        ),
        ("manifest.json", serde_json::Value::Array(docker_manifest)),
    ];
    for (name, v) in files {
        let b = serde_json::to_vec(&v).expect("json");
        add(&mut tar, name, &mut b.as_slice(), b.len() as u64)?;
    }
    tar.into_inner().map_err(io_err)?.flush().map_err(io_err)
}

/// Media types of manifests, configs and layers.
pub mod media {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
}
