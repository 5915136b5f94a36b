//! Pull and push: images between a registry and the store.
//!
//! A pull resolves the manifest (through a list to this platform's), stores
//! the config, downloads up to three layers at a time straight into the blob
//! store (digest and size checked; a blob another pull is fetching is waited
//! for, not fetched twice), and unpacks each layer as soon as it and the ones
//! below it are there. A push uploads only the blobs the registry lacks,
//! mounting them from another repository of the same registry when it can.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

use crate::archive::manifest_of;
use crate::manifest::{self, Manifest, Platform};
use crate::reference::Reference;
use crate::registry::{pull_scope, push_scope, Body, Call, Client, RegistryError};
use crate::store::{chain_ids, sha256_hex, ConfigFile};
use crate::{Blob, Image, ImageError, Store};

/// Where a layer (or the image) is in a transfer.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting,
    /// Already in the store (pull) or in the registry (push).
    Exists,
    Downloading {
        done: u64,
        total: u64,
    },
    Extracting,
    PullComplete,
    Pushing {
        done: u64,
        total: u64,
    },
    /// Taken from another repository of the same registry.
    Mounted {
        from: String,
    },
    Pushed,
}

/// A progress report: `layer` is the blob's digest.
#[derive(Clone, Debug)]
pub struct Event {
    pub image: String,
    pub layer: String,
    pub state: State,
}

pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// How a pull ended.
#[derive(Debug)]
pub struct Pulled {
    pub image: Image,
    /// The digest the registry knows it by (the list's, for a multi-platform image).
    pub digest: String,
    /// Whether any layer or the config had to be fetched.
    pub fetched: bool,
}

/// Reports the states of one layer of one image.
fn reporter(
    progress: &Progress,
    image: &str,
    layer: &str,
) -> impl Fn(State) + Send + Sync + 'static {
    let (progress, image, layer) = (progress.clone(), image.to_string(), layer.to_string());
    move |state| {
        progress(Event {
            image: image.clone(),
            layer: layer.clone(),
            state,
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, RegistryError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Waits for every task; on the first failure the others are cancelled.
async fn join_all<T>(
    mut tasks: Vec<tokio::task::JoinHandle<Result<T, RegistryError>>>,
) -> Result<Vec<T>, RegistryError> {
    let mut out = Vec::new();
    let mut result = Ok(());
    for t in &mut tasks {
        if result.is_ok() {
            match (&mut *t)
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            {
                Ok(v) => out.push(v),
                Err(e) => result = Err(e),
            }
        }
        t.abort();
    }
    result.map(|()| out)
}

fn protocol(url: &str, why: impl Into<String>) -> RegistryError {
    RegistryError::Protocol {
        url: url.to_string(),
        why: why.into(),
    }
}

/// Fetches a manifest by tag or digest; returns (digest, bytes, media type).
async fn fetch_manifest(
    client: &Client,
    r: &Reference,
    scopes: &[String],
    reference: &str,
) -> Result<(String, Bytes, String), RegistryError> {
    let target = format!("/v2/{}/manifests/{reference}", r.repository);
    client
        .retrying(|| async {
            let call = Call::get(target.clone(), scopes).header(header::ACCEPT, manifest::ACCEPT.join(", "));
            let reply = client.send(&r.registry, r.api_host(), &call).await?.success().await?;
            let url = reply.url.clone();
            let content_type = reply
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = reply.bytes(4 << 20).await?;
            let digest = format!("sha256:{}", sha256_hex(&body));
            if reference.starts_with("sha256:") && reference != digest {
                return Err(protocol(
                    &url,
                    format!("the manifest does not match its digest: asked for {reference}, got {digest}"),
                ));
            }
            Ok((digest, body, content_type))
        })
        .await
}

/// The image manifest of `r` for `platform`: (the digest of what the tag
/// names, the image manifest's blob and bytes, config, layers).
async fn resolve(
    client: &Client,
    r: &Reference,
    scopes: &[String],
    platform: &Platform,
) -> Result<(String, Blob, Bytes, Blob, Vec<Blob>), RegistryError> {
    let url = format!(
        "{}/v2/{}/manifests/{}",
        r.api_host(),
        r.repository,
        r.manifest_ref()
    );
    let (top, mut bytes, mut content_type) =
        fetch_manifest(client, r, scopes, r.manifest_ref()).await?;
    let mut digest = top.clone();
    let mut parsed = manifest::parse(&bytes, Some(&content_type)).map_err(|e| protocol(&url, e))?;
    if let Manifest::List(list) = &parsed {
        let d = manifest::select(list, platform).ok_or_else(|| {
            protocol(
                &url,
                format!(
                    "no image for {platform} (there are: {})",
                    manifest::platforms(list)
                ),
            )
        })?;
        (digest, bytes, content_type) =
            fetch_manifest(client, r, scopes, &d.digest.clone()).await?;
        parsed = manifest::parse(&bytes, Some(&content_type)).map_err(|e| protocol(&url, e))?;
    }
    let Manifest::Image { config, layers } = parsed else {
        return Err(protocol(&url, "a manifest list names another list"));
    };
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or(content_type);
    let manifest = Blob {
        media_type,
        digest,
        size: bytes.len() as u64,
    };
    Ok((top, manifest, bytes, config, layers))
}

/// Downloads one blob into the store unless it is there; returns whether it
/// had to. Parallel pulls of the same blob wait for each other.
async fn fetch_blob(
    client: &Client,
    store: &Store,
    r: &Reference,
    scopes: &[String],
    blob: &Blob,
    report: &(dyn Fn(State) + Send + Sync),
) -> Result<bool, RegistryError> {
    if store.has_blob(&blob.digest) {
        return Ok(false);
    }
    let _lock = {
        let (s, d) = (store.clone(), blob.digest.clone());
        blocking(move || s.lock_blob(&d)).await?
    };
    if store.has_blob(&blob.digest) {
        return Ok(false);
    }
    let target = format!("/v2/{}/blobs/{}", r.repository, blob.digest);
    client
        .retrying(|| async {
            let call = Call::get(target.clone(), scopes);
            let mut reply = client
                .send(&r.registry, r.api_host(), &call)
                .await?
                .success()
                .await?;
            let url = reply.url.clone();
            let mut w = store.blob_writer()?;
            let mut reported = 0;
            while let Some(chunk) = reply.chunk().await? {
                w.write_all(&chunk)
                    .map_err(|e| ImageError::io(&store.root().join("tmp"), e))?;
                if w.size() > blob.size {
                    return Err(protocol(
                        &url,
                        format!(
                            "blob {} is larger than the {} bytes its manifest says",
                            blob.digest, blob.size
                        ),
                    ));
                }
                if w.size() - reported >= 512 * 1024 {
                    reported = w.size();
                    report(State::Downloading {
                        done: reported,
                        total: blob.size,
                    });
                }
            }
            if w.size() != blob.size {
                return Err(protocol(
                    &url,
                    format!(
                        "blob {} ended after {} of {} bytes",
                        blob.digest,
                        w.size(),
                        blob.size
                    ),
                ));
            }
            let digest = blob.digest.clone();
            blocking(move || w.commit(Some(&digest))).await?;
            Ok(true)
        })
        .await
}

/// Pulls `r` for `platform` into the store.
pub async fn pull(
    client: Arc<Client>,
    store: &Store,
    r: &Reference,
    platform: &Platform,
    progress: Progress,
) -> Result<Pulled, RegistryError> {
    let scopes = vec![pull_scope(&r.repository)];
    let (top, manifest, manifest_bytes, config, layers) =
        resolve(&client, r, &scopes, platform).await?;
    let image = r.to_string();
    // Held until the image is recorded: a collection cannot take its blobs.
    let _gc = {
        let s = store.clone();
        blocking(move || s.lock_shared()).await?
    };
    {
        let (s, d) = (store.clone(), manifest.digest.clone());
        blocking(move || s.write_blob(Some(&d), manifest_bytes.as_ref())).await?;
    }
    let mut fetched = fetch_blob(&client, store, r, &scopes, &config, &|_| {}).await?;
    let cfg = ConfigFile::parse(
        &store.read_blob(&config.digest)?,
        &store.blob_path(&config.digest)?,
    )?;
    let diff_ids = cfg.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(protocol(
            &r.to_string(),
            format!(
                "the manifest has {} layers, its config {}",
                layers.len(),
                diff_ids.len()
            ),
        ));
    }
    for l in &layers {
        reporter(&progress, &image, &l.digest)(State::Waiting);
    }
    // Layers are independent directories named by chain id, which the
    // config's diff ids give up front: each is unpacked as soon as it is
    // downloaded, whatever the order (and checked against its diff id).
    let chains = chain_ids(&diff_ids);
    let slots = Arc::new(Semaphore::new(3));
    let tasks = layers
        .iter()
        .zip(&diff_ids)
        .enumerate()
        .map(|(i, (l, want))| {
            let (client, store, r, scopes, l, slots) = (
                client.clone(),
                store.clone(),
                r.clone(),
                scopes.clone(),
                l.clone(),
                slots.clone(),
            );
            let (report, want) = (reporter(&progress, &image, &l.digest), want.clone());
            let parent = i.checked_sub(1).map(|p| chains[p].clone());
            tokio::spawn(async move {
                let slot = slots.acquire_owned().await.expect("never closed");
                let fetched = fetch_blob(&client, &store, &r, &scopes, &l, &report).await?;
                drop(slot);
                report(State::Extracting);
                let part =
                    blocking(move || store.unpack_blob(&l, parent.as_deref(), Some(&want))).await?;
                report(State::PullComplete);
                Ok((fetched, part))
            })
        })
        .collect();
    let mut parts = Vec::new();
    for (f, part) in join_all(tasks).await? {
        fetched |= f;
        parts.push(part);
    }
    let names = r.tag.as_ref().map(|_| r.store_name()).into_iter().collect();
    let repo_digest = format!("{}@{top}", r.familiar_name());
    let (s, config_digest) = (store.clone(), config.digest.clone());
    let image = blocking(move || {
        s.record(
            names,
            &config_digest,
            parts,
            Some((manifest, vec![repo_digest])),
        )
    })
    .await?;
    Ok(Pulled {
        image,
        digest: top,
        fetched,
    })
}

/// A blob's bytes as a streamed request body, read off the disk in chunks.
fn file_body(path: std::path::PathBuf) -> Body {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    tokio::spawn(async move {
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => return tx.abort(e),
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut f, &mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .send_data(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => return tx.abort(e),
            }
        }
    });
    body.boxed()
}

/// `Location` of an upload answer, made absolute.
fn upload_location(reply: &crate::registry::Reply) -> Result<String, RegistryError> {
    let loc = reply
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| protocol(&reply.url, "the upload answer has no Location"))?;
    Ok(crate::registry::resolve_url(&reply.url, loc))
}

/// Uploads one blob unless the registry has it; mounts it from `from` (a
/// repository of the same registry the image came from) when it can.
async fn push_blob(
    client: &Client,
    store: &Store,
    dest: &Reference,
    from: Option<&str>,
    blob: &Blob,
    report: &(dyn Fn(State) + Send + Sync),
) -> Result<(), RegistryError> {
    let (registry, host, repo) = (&dest.registry, dest.api_host(), &dest.repository);
    let mut scopes = vec![push_scope(repo)];
    if let Some(f) = from {
        scopes.push(pull_scope(f));
    }
    let head = Call {
        method: Method::HEAD,
        ..Call::get(format!("/v2/{repo}/blobs/{}", blob.digest), &scopes)
    };
    let reply = client
        .retrying(|| client.send(registry, host, &head))
        .await?;
    if reply.status.is_success() {
        report(State::Exists);
        return Ok(());
    }
    let path = store.blob_path(&blob.digest)?;
    let size = std::fs::metadata(&path)
        .map_err(|e| ImageError::io(&path, e))?
        .len();
    let mut start = format!("/v2/{repo}/blobs/uploads/");
    if let Some(f) = from {
        start = format!(
            "{start}?mount={}&from={}",
            blob.digest,
            crate::registry::percent_encode(f)
        );
    }
    let post = Call {
        method: Method::POST,
        ..Call::get(start, &scopes)
    }
    .header(header::CONTENT_LENGTH, "0");
    let reply = client
        .retrying(|| client.send(registry, host, &post))
        .await?;
    if reply.status == StatusCode::CREATED {
        report(State::Mounted {
            from: from.unwrap_or_default().to_string(),
        });
        return Ok(());
    }
    let location = upload_location(&reply.success().await?)?;
    let sep = if location.contains('?') { '&' } else { '?' };
    let target = format!(
        "{location}{sep}digest={}",
        crate::registry::percent_encode(&blob.digest)
    );
    report(State::Pushing {
        done: 0,
        total: size,
    });
    let make_body = move || file_body(path.clone());
    let put = Call {
        method: Method::PUT,
        body: Some(&make_body),
        ..Call::get(target, &scopes)
    }
    .header(header::CONTENT_LENGTH, size.to_string())
    .header(header::CONTENT_TYPE, "application/octet-stream");
    // An upload session is used once: no retry of the PUT itself.
    client.send(registry, host, &put).await?.success().await?;
    report(State::Pushed);
    Ok(())
}

/// Pushes a stored image to `dest`; returns the manifest digest.
pub async fn push(
    client: Arc<Client>,
    store: &Store,
    img: &Image,
    dest: &Reference,
    progress: Progress,
) -> Result<String, RegistryError> {
    let (media_type, manifest_bytes) = manifest_of(store, img)?;
    let config_path = store.blob_path(&img.id)?;
    let config = Blob {
        media_type: String::new(),
        digest: img.id.clone(),
        size: std::fs::metadata(&config_path)
            .map_err(|e| ImageError::io(&config_path, e))?
            .len(),
    };
    // A repository of the same registry that has this image: blobs mount from there.
    let from = img.repo_digests.iter().find_map(|d| {
        let r = Reference::parse(d).ok()?;
        (r.registry == dest.registry && r.repository != dest.repository).then_some(r.repository)
    });
    let image = dest.to_string();
    let slots = Arc::new(Semaphore::new(3));
    let mut uploads = Vec::new();
    for blob in img.layers.iter().chain([&config]) {
        let (client, store, dest, from, blob, slots) = (
            client.clone(),
            store.clone(),
            dest.clone(),
            from.clone(),
            blob.clone(),
            slots.clone(),
        );
        let report = reporter(&progress, &image, &blob.digest);
        uploads.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            push_blob(&client, &store, &dest, from.as_deref(), &blob, &report).await
        }));
    }
    join_all(uploads).await?;
    let digest = match &img.attestation {
        None => {
            put_manifest(
                &client,
                dest,
                dest.manifest_ref(),
                &media_type,
                manifest_bytes,
            )
            .await?
        }
        Some(a) => {
            push_attested(
                &client,
                store,
                dest,
                img,
                a,
                &media_type,
                manifest_bytes,
                &progress,
            )
            .await?
        }
    };
    let mut updated = img.clone();
    updated.names.clear();
    updated.repo_digests = vec![format!("{}@{digest}", dest.familiar_name())];
    let s = store.clone();
    blocking(move || s.put_image(updated)).await?;
    Ok(digest)
}

/// An image with an attestation: the image manifest and the attestation
/// manifest by digest, then an index of both (as BuildKit pushes them)
/// under the tag; the index's digest.
#[allow(clippy::too_many_arguments)]
async fn push_attested(
    client: &Client,
    store: &Store,
    dest: &Reference,
    img: &Image,
    a: &crate::store::Attestation,
    media_type: &str,
    manifest_bytes: Vec<u8>,
    progress: &Progress,
) -> Result<String, RegistryError> {
    let image = dest.to_string();
    for blob in &a.blobs {
        let report = reporter(progress, &image, &blob.digest);
        push_blob(client, store, dest, None, blob, &report).await?;
    }
    let size = manifest_bytes.len();
    let image_digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
    put_manifest(client, dest, &image_digest, media_type, manifest_bytes).await?;
    let attestation = store.read_blob(&a.manifest.digest)?;
    put_manifest(
        client,
        dest,
        &a.manifest.digest,
        crate::archive::media::OCI_MANIFEST,
        attestation,
    )
    .await?;
    let (os, arch) = img
        .platform
        .as_deref()
        .and_then(|p| p.split_once('/'))
        .map(|(os, rest)| {
            (
                os.to_string(),
                rest.split('/').next().unwrap_or(rest).to_string(),
            )
        })
        .unwrap_or_else(|| ("linux".into(), crate::registry::host_arch().into()));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::archive::media::OCI_INDEX,
        "manifests": [
            {"mediaType": media_type, "digest": image_digest, "size": size,
             "platform": {"architecture": arch, "os": os}},
            {"mediaType": crate::archive::media::OCI_MANIFEST, "digest": a.manifest.digest,
             "size": a.manifest.size,
             "annotations": {
                 "vnd.docker.reference.digest": image_digest,
                 "vnd.docker.reference.type": "attestation-manifest",
             },
             "platform": {"architecture": "unknown", "os": "unknown"}},
        ],
    });
    let bytes = serde_json::to_vec(&index).map_err(|e| protocol(&image, e.to_string()))?;
    put_manifest(
        client,
        dest,
        dest.manifest_ref(),
        crate::archive::media::OCI_INDEX,
        bytes,
    )
    .await
}

/// An OCI artifact (`stack publish`): its blobs are in the store.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// OCI 1.1's `artifactType`; none: an OCI 1.0 manifest, whose config's
    /// media type says what it is.
    pub artifact_type: Option<String>,
    pub config: Blob,
    /// Each layer, with its annotations.
    pub layers: Vec<(Blob, std::collections::BTreeMap<String, String>)>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Pushes an artifact to `dest` as an OCI image manifest; its digest.
pub async fn push_artifact(
    client: Arc<Client>,
    store: &Store,
    dest: &Reference,
    artifact: &Artifact,
    progress: Progress,
) -> Result<String, RegistryError> {
    let image = dest.to_string();
    for blob in artifact
        .layers
        .iter()
        .map(|(b, _)| b)
        .chain([&artifact.config])
    {
        let report = reporter(&progress, &image, &blob.digest);
        push_blob(&client, store, dest, None, blob, &report).await?;
    }
    let descriptor = |b: &Blob| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::archive::media::OCI_MANIFEST,
        "config": descriptor(&artifact.config),
        "layers": artifact.layers.iter().map(|(b, notes)| {
            let mut d = descriptor(b);
            if !notes.is_empty() {
                d["annotations"] = serde_json::json!(notes);
            }
            d
        }).collect::<Vec<_>>(),
    });
    if let Some(t) = &artifact.artifact_type {
        manifest["artifactType"] = serde_json::json!(t);
    }
    if !artifact.annotations.is_empty() {
        manifest["annotations"] = serde_json::json!(artifact.annotations);
    }
    let bytes = serde_json::to_vec(&manifest).map_err(|e| protocol(&image, e.to_string()))?;
    put_manifest(
        &client,
        dest,
        dest.manifest_ref(),
        crate::archive::media::OCI_MANIFEST,
        bytes,
    )
    .await
}

/// PUTs a manifest into `dest`'s repository under `reference` (a tag or
/// its digest); its digest, checked against what the registry says it
/// stored.
async fn put_manifest(
    client: &Client,
    dest: &Reference,
    reference: &str,
    media_type: &str,
    manifest_bytes: Vec<u8>,
) -> Result<String, RegistryError> {
    let digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
    let scopes = vec![push_scope(&dest.repository)];
    let body = Bytes::from(manifest_bytes);
    let make_body = move || crate::registry::full_body(body.clone());
    let put = Call {
        method: Method::PUT,
        body: Some(&make_body),
        ..Call::get(
            format!("/v2/{}/manifests/{reference}", dest.repository),
            &scopes,
        )
    }
    .header(header::CONTENT_TYPE, media_type);
    let reply = client
        .retrying(|| async {
            client
                .send(&dest.registry, dest.api_host(), &put)
                .await?
                .success()
                .await
        })
        .await?;
    if let Some(got) = reply
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if got != digest {
            return Err(protocol(
                &reply.url,
                format!("the registry stored the manifest as {got}, not {digest}"),
            ));
        }
    }
    Ok(digest)
}
