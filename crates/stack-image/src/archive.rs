//! `docker save` archives (legacy manifest.json, and the OCI layout Docker
//! 25+ writes) and OCI layout directories or tars, into the store.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::store::{normalize_name, sha256_hex, Image, RunConfig, Store};
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
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciDescriptor {
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
    // (config path, names, layer paths)
    let mut todo: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    if dir.join("manifest.json").is_file() {
        let manifests: Vec<SaveManifest> = read_json(dir, "manifest.json")?;
        for m in manifests {
            todo.push((m.config, m.repo_tags.unwrap_or_default(), m.layers));
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
                m.layers.iter().map(|l| blob_path(&l.digest)).collect(),
            ));
        }
    } else {
        return Err(ImageError::Archive {
            path: input.to_path_buf(),
            why: "neither manifest.json (docker save) nor index.json (OCI layout)".into(),
        });
    }
    let mut out = Vec::new();
    for (config_path, names, layers) in todo {
        let config_bytes = fs::read(dir.join(&config_path))
            .map_err(|e| ImageError::io(&dir.join(&config_path), e))?;
        let id = format!("sha256:{}", sha256_hex(&config_bytes));
        let cfg: ConfigFile =
            serde_json::from_slice(&config_bytes).map_err(|e| ImageError::Corrupt {
                path: dir.join(&config_path),
                why: e.to_string(),
            })?;
        let mut chain: Option<String> = None;
        let (mut diff_ids, mut chain_ids, mut size) = (Vec::new(), Vec::new(), 0);
        for l in &layers {
            let p = dir.join(l);
            let f = fs::File::open(&p).map_err(|e| ImageError::io(&p, e))?;
            let (c, d, bytes) = store.add_layer(l, chain.as_deref(), f.take(u64::MAX))?;
            chain = Some(c.clone());
            chain_ids.push(c);
            diff_ids.push(d);
            size += bytes;
        }
        let img = Image {
            id,
            names: names.iter().map(|n| normalize_name(n)).collect(),
            diff_ids,
            chain_ids,
            config: cfg.config.unwrap_or_default(),
            size,
        };
        store.put_image(img.clone())?;
        out.push(img);
    }
    Ok(out)
}

/// `import`: a plain root file system tar becomes a one-layer image.
pub fn import(store: &Store, rootfs_tar: &Path, name: &str) -> Result<Image, ImageError> {
    let f = fs::File::open(rootfs_tar).map_err(|e| ImageError::io(rootfs_tar, e))?;
    let (chain, diff, size) = store.add_layer(&rootfs_tar.display().to_string(), None, f)?;
    let config = serde_json::json!({"architecture": std::env::consts::ARCH, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff]}});
    let img = Image {
        id: format!("sha256:{}", sha256_hex(config.to_string().as_bytes())),
        names: vec![normalize_name(name)],
        diff_ids: vec![diff],
        chain_ids: vec![chain],
        config: RunConfig::default(),
        size,
    };
    store.put_image(img.clone())?;
    Ok(img)
}
