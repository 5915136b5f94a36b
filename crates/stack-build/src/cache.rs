//! The build cache: a step's key (its parent's key, the instruction as
//! expanded, the environment it ran with, the digest of what it copied)
//! names the layer it made. An entry whose layer or blob has since been
//! removed is a miss. The index is `build/cache.json` under the image
//! store, changed under its lock; cache mounts live beside it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use stack_image::store::{chain_id, LayerParts, Store};
use stack_image::Blob;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// None: the step changed no file.
    pub blob: Option<Blob>,
    pub diff_id: String,
    /// The layer's directory in the store (its key names its parent's chain).
    pub chain_id: String,
    pub size: u64,
    /// When it was made (RFC 3339).
    #[serde(alias = "used")]
    pub made: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    steps: BTreeMap<String, Entry>,
}

pub fn dir(store: &Store) -> PathBuf {
    store.root().join("build")
}

fn index_path(store: &Store) -> PathBuf {
    dir(store).join("cache.json")
}

fn read(store: &Store) -> Index {
    // A damaged index is an empty cache: it only costs a rebuild.
    std::fs::read(index_path(store))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn update(store: &Store, change: impl FnOnce(&mut Index)) -> anyhow::Result<()> {
    let d = dir(store);
    std::fs::create_dir_all(&d)?;
    let _lock = stack_sys::lock(&d.join("cache.lock"), true)?;
    let mut idx = read(store);
    change(&mut idx);
    stack_sys::write_atomic(&index_path(store), &serde_json::to_vec_pretty(&idx)?)?;
    Ok(())
}

/// What a step with `key` made on top of `parent`, if it is still there:
/// a layer, or `None` for a step that changed no file.
pub fn lookup(store: &Store, key: &str, parent: Option<&str>) -> Option<Option<LayerParts>> {
    let e = read(store).steps.remove(key)?;
    let layer = match &e.blob {
        None => None,
        Some(blob) => {
            let chain = chain_id(parent, &e.diff_id);
            if chain != e.chain_id
                || !store.layer_dir(&chain).is_dir()
                || !store.has_blob(&blob.digest)
            {
                return None;
            }
            Some(LayerParts {
                blob: blob.clone(),
                diff_id: e.diff_id.clone(),
                chain_id: chain,
                size: e.size,
            })
        }
    };
    Some(layer)
}

pub fn remember(store: &Store, key: &str, layer: Option<&LayerParts>) -> anyhow::Result<()> {
    update(store, |i| {
        i.steps.insert(
            key.to_string(),
            Entry {
                blob: layer.map(|l| l.blob.clone()),
                diff_id: layer.map(|l| l.diff_id.clone()).unwrap_or_default(),
                chain_id: layer.map(|l| l.chain_id.clone()).unwrap_or_default(),
                size: layer.map_or(0, |l| l.size),
                made: now(),
            },
        );
    })
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    stack_sys::time::rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Entries and the bytes of their layers (`stack system df`).
pub fn usage(store: &Store) -> (usize, u64) {
    let idx = read(store);
    (idx.steps.len(), idx.steps.values().map(|e| e.size).sum())
}

/// The names in the store (layer directories by chain id, blobs by
/// digest, without `sha256:`) the cache holds: an image prune leaves them;
/// `stack builder prune` removes them.
pub fn held(store: &Store) -> std::collections::BTreeSet<String> {
    let short = |d: &str| d.trim_start_matches("sha256:").to_string();
    read(store)
        .steps
        .values()
        .flat_map(|e| {
            let blob = e.blob.as_ref().map(|b| short(&b.digest));
            blob.into_iter().chain([short(&e.chain_id)])
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Forgets every entry (`stack builder prune`): the layers and blobs
/// only the cache held go with the next collection. Returns how many.
pub fn clear(store: &Store) -> anyhow::Result<usize> {
    let mut n = 0;
    update(store, |i| {
        n = i.steps.len();
        i.steps.clear();
    })?;
    let mounts = dir(store).join("mounts");
    if mounts.exists() {
        std::fs::remove_dir_all(&mounts)?;
    }
    Ok(n)
}
