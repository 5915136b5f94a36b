//! Images on the host: pulls (one, with its progress; a stack's, as the
//! engine reports them) and removal that spares what containers use.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use stack_image::auth::AuthSources;
use stack_image::manifest::Platform;
use stack_image::reference::Reference;
use stack_image::registry::Client;
use stack_image::transfer::{self, Progress, Pulled};

use crate::Host;

/// A registry client with the credentials of `login` (and Docker's).
pub fn registry_client() -> Arc<Client> {
    Arc::new(Client::new(AuthSources::from_env()))
}

/// `OS/ARCH[/VARIANT]`, or this host's platform.
pub fn platform(p: Option<&str>) -> anyhow::Result<Platform> {
    match p {
        Some(p) => Platform::parse(p).map_err(anyhow::Error::msg),
        None => Ok(Platform::host()),
    }
}

/// Pulls `reference` for `platform` (this host's by default) into the
/// store, telling `progress` what each layer does.
pub fn pull(
    host: &Host,
    reference: &str,
    platform_: Option<&str>,
    progress: Progress,
) -> anyhow::Result<Pulled> {
    pull_with(host, registry_client(), reference, platform_, progress)
}

/// [`pull`] with credentials a client gave (the Docker API's
/// `X-Registry-Auth`) before the engine's own.
pub fn pull_as(
    host: &Host,
    creds: stack_image::auth::Credentials,
    reference: &str,
    progress: Progress,
) -> anyhow::Result<Pulled> {
    let client = Arc::new(Client::new(AuthSources::from_env()).with_credentials(creds));
    pull_with(host, client, reference, None, progress)
}

fn pull_with(
    host: &Host,
    client: Arc<Client>,
    reference: &str,
    platform_: Option<&str>,
    progress: Progress,
) -> anyhow::Result<Pulled> {
    let r = Reference::parse(reference)?;
    let platform = platform(platform_)?;
    let store = host.images()?;
    host.block_on(transfer::pull(client, &store, &r, &platform, progress))?
        .with_context(|| format!("cannot pull {r}"))
}

/// Pulls `image` as `policy` (`always`, `missing`, `never`) says; true if it did.
pub fn ensure(
    host: &Host,
    image: &str,
    platform: Option<&str>,
    policy: &str,
) -> anyhow::Result<bool> {
    let store = host.images()?;
    if store.lookup(image).is_ok() && policy != "always" {
        return Ok(false);
    }
    if policy == "never" {
        bail!("image `{image}` is not here and the pull policy is never");
    }
    pull(host, image, platform, Arc::new(|_| {}))
        .with_context(|| format!("image `{image}` is not here"))?;
    Ok(true)
}

/// `stack pull`, in the engine: every image at once, each reported as an
/// `Image` event (`Pulling`, then `Pulled`); a failure is a warning for
/// an image its service builds, or with `ignore_failures`, else an error
/// naming every one that failed.
pub fn pull_all(
    host: &Host,
    req: &stack_api::PullRequest,
    events: &stack_api::Events,
) -> anyhow::Result<()> {
    let store = host.images()?;
    let client = registry_client();
    let mut wanted: Vec<(Reference, Platform, bool)> = Vec::new();
    for i in &req.images {
        let r = Reference::parse(&i.reference)?;
        let p = platform(i.platform.as_deref())?;
        if !wanted.iter().any(|(w, q, _)| *w == r && *q == p) {
            wanted.push((r, p, i.buildable));
        }
    }
    let report = |events: &stack_api::Events, r: &Reference, action: &str| {
        events.send(stack_api::Event::Progress {
            object: "Image".into(),
            name: r.to_string(),
            action: action.into(),
        })
    };
    let results = host.block_on(async {
        let tasks: Vec<_> = wanted
            .iter()
            .map(|(r, p, _)| {
                let (client, store, r, p, events) = (
                    client.clone(),
                    store.clone(),
                    r.clone(),
                    p.clone(),
                    events.clone(),
                );
                tokio::spawn(async move {
                    report(&events, &r, "Pulling");
                    let pulled = transfer::pull(client, &store, &r, &p, Arc::new(|_| {})).await;
                    if pulled.is_ok() {
                        report(&events, &r, "Pulled");
                    }
                    pulled
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            );
        }
        out
    })?;
    let mut failed = Vec::new();
    for ((r, _, buildable), res) in wanted.iter().zip(results) {
        match res {
            Ok(_) => {}
            Err(e) if *buildable || req.ignore_failures => events.send(stack_api::Event::Warning {
                message: format!("cannot pull {r}: {e}"),
            }),
            Err(e) => failed.push(format!("cannot pull {r}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// What the containers (running or not, a build's RUN steps' too) hold
/// of the store.
pub struct InUse {
    /// Every layer directory they run on.
    pub layers: Vec<PathBuf>,
    /// The ids of the images they run.
    ids: Vec<String>,
    /// The top layers of those made before their image's id was kept: an
    /// image whose top layer is one of these may be theirs.
    tops: Vec<PathBuf>,
}

impl InUse {
    pub fn of(host: &Host) -> InUse {
        let specs: Vec<stack_runtime::Spec> = [
            host.root().join("containers"),
            host.build_runs().join("containers"),
        ]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|e| stack_runtime::state::read(&e.path()).ok())
        .map(|st| st.spec)
        .collect();
        InUse {
            ids: specs.iter().map(|s| s.image_id.clone()).collect(),
            tops: specs
                .iter()
                .filter(|s| s.image_id.is_empty())
                .map(|s| s.rootfs.clone())
                .collect(),
            layers: specs
                .into_iter()
                .flat_map(|s| std::iter::once(s.rootfs).chain(s.layers))
                .collect(),
        }
    }

    /// Whether a container runs from `img`.
    pub fn runs(&self, store: &stack_image::Store, img: &stack_image::Image) -> bool {
        self.ids.contains(&img.id)
            || store
                .lower_dirs(img)
                .first()
                .is_some_and(|top| self.tops.contains(top))
    }
}

/// Collects the layers and blobs nothing uses: no image, no container,
/// and (unless `cache` is false) no step of the build cache.
fn collect(
    store: &stack_image::Store,
    used: &[PathBuf],
    cache: bool,
) -> Result<stack_image::store::Collected, stack_image::ImageError> {
    let held = match cache {
        true => stack_build::cache_held(store),
        false => Default::default(),
    };
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().to_string());
    store.collect(&|p| used.iter().any(|u| u == p) || name(p).is_some_and(|n| held.contains(&n)))
}

/// Removes names, as `image rm`: an image goes with its last name, unless
/// a container uses it; then the space of what went (as with docker). Per
/// name: the id of the image deleted, or none when only the name went.
pub fn remove(
    host: &Host,
    store: &stack_image::Store,
    names: &[String],
) -> anyhow::Result<Vec<Result<Option<String>, stack_image::ImageError>>> {
    let used = InUse::of(host);
    let in_use = |img: &stack_image::Image| used.runs(store, img);
    let done: Vec<_> = names.iter().map(|r| store.remove(r, &in_use)).collect();
    if done.iter().any(|d| matches!(d, Ok(Some(_)))) {
        collect(store, &used.layers, true)?;
    }
    Ok(done)
}

/// What `image prune` removed: the ids of the images, and the layers and
/// blobs nothing used any more.
pub struct Pruned {
    pub images: Vec<String>,
    pub collected: stack_image::store::Collected,
}

/// Removes the images without a name (with `all`, every image) that no
/// container uses, then the layers and blobs nothing uses.
pub fn prune(host: &Host, all: bool) -> anyhow::Result<Pruned> {
    let store = host.images()?;
    let used = InUse::of(host);
    let in_use = |img: &stack_image::Image| used.runs(&store, img);
    let mut images = Vec::new();
    for img in store.images()? {
        if (all || img.names.is_empty()) && !in_use(&img) {
            for name in img.names.iter().chain([&img.id]) {
                if let Ok(Some(id)) = store.remove(name, &in_use) {
                    images.push(id);
                }
            }
        }
    }
    let collected = collect(&store, &used.layers, true)?;
    Ok(Pruned { images, collected })
}

/// `stack builder prune`: forgets the build cache (steps and cache
/// mounts), then collects the layers and blobs only it held. How many
/// steps it had, and what was collected.
pub fn prune_build_cache(host: &Host) -> anyhow::Result<(usize, stack_image::store::Collected)> {
    let store = host.images()?;
    let steps = stack_build::prune_cache(&store)?;
    Ok((steps, collect(&store, &InUse::of(host).layers, false)?))
}
