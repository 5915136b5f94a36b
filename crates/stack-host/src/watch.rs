//! Watch on the host: the engine's side of `stack watch` (inotify through
//! `notify` feeding stack-engine's batching, reloads through the loader,
//! detached watches kept across engine restarts) and the driver's side of
//! a sync (stack-runtime's `ContainerFs`) and of a `sync+exec`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use stack_api::{Event, Events, LoadSpec, WatchRequest};
use stack_engine::watch::{Exec, Trigger, WatchSpec};

use crate::Host;
use crate::HostEngine;

/// Makes `paths` in container `id` what they are on the host.
pub fn sync(root: &Path, id: &str, t: &Trigger, paths: &[PathBuf]) -> anyhow::Result<usize> {
    let st = stack_runtime::state::read(&stack_runtime::container_dir(root, id))?;
    let fs = stack_runtime::files::ContainerFs::open(&st)?;
    let mut written = 0;
    for p in paths {
        let target = t
            .target_of(p)
            .with_context(|| format!("`{}` is not under `{}`", p.display(), t.path.display()))?;
        written += fs
            .copy_in(p, &target, &|q| t.keeps(q))
            .with_context(|| format!("{} -> {}:{target}", p.display(), st.name))?;
    }
    Ok(written)
}

/// How long a `sync+exec` command may run.
const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs a `sync+exec` command in container `id`.
pub fn exec(root: &Path, id: &str, e: &Exec) -> anyhow::Result<(i32, String)> {
    let mut st = stack_runtime::state::read(&stack_runtime::container_dir(root, id))?;
    if let Some(u) = &e.user {
        st.spec.user = u.clone();
    }
    if let Some(w) = &e.working_dir {
        st.spec.cwd = w.clone();
    }
    st.spec.env.extend(e.env.iter().cloned());
    // Every capability and no filter for this command only: the spec is
    // the exec's copy.
    st.spec.privileged |= e.privileged;
    match stack_runtime::exec_output(&st, e.command.clone(), EXEC_TIMEOUT)? {
        (Some(code), out) => Ok((code, out)),
        (None, _) => anyhow::bail!("still running after {}s: killed", EXEC_TIMEOUT.as_secs()),
    }
}

/// Inotify watches for a spec: each rule's path (a directory recursively,
/// a file through its directory) and the directories of the stack's own
/// files (editors replace a file by renaming another over it). Events
/// become changed paths on a channel; reads are not changes.
struct Inotify {
    watcher: notify::RecommendedWatcher,
    watched: Vec<PathBuf>,
}

impl Inotify {
    fn new(tx: tokio::sync::mpsc::UnboundedSender<PathBuf>) -> anyhow::Result<Inotify> {
        use notify::event::{AccessKind, AccessMode, EventKind};
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            let Ok(e) = e else { return };
            let change = match e.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) => false,
                _ => true,
            };
            if change {
                for p in e.paths {
                    let _ = tx.send(p);
                }
            }
        })
        .context("cannot watch files (inotify)")?;
        Ok(Inotify {
            watcher,
            watched: Vec::new(),
        })
    }

    /// Watches what `spec` needs (and no longer what it does not); what
    /// cannot be watched is a warning.
    fn follow(&mut self, spec: &WatchSpec) -> Vec<String> {
        use notify::{RecursiveMode, Watcher as _};
        let mut want: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        let mut warnings = Vec::new();
        for t in &spec.triggers {
            if t.path.is_dir() {
                want.push((t.path.clone(), RecursiveMode::Recursive));
            } else if let Some(dir) = t.path.parent().filter(|d| d.is_dir()) {
                want.push((dir.to_path_buf(), RecursiveMode::NonRecursive));
            } else {
                warnings.push(format!(
                    "service {}: `{}` does not exist: not watched",
                    t.service,
                    t.path.display()
                ));
            }
        }
        for f in &spec.files {
            if let Some(dir) = f.parent().filter(|d| d.is_dir()) {
                want.push((dir.to_path_buf(), RecursiveMode::NonRecursive));
            }
        }
        // A directory watched recursively covers itself.
        want.sort_by(|a, b| {
            a.0.cmp(&b.0).then(
                (a.1 == RecursiveMode::NonRecursive).cmp(&(b.1 == RecursiveMode::NonRecursive)),
            )
        });
        want.dedup_by(|b, a| a.0 == b.0);
        for p in std::mem::take(&mut self.watched) {
            let _ = self.watcher.unwatch(&p);
        }
        for (p, mode) in want {
            match self.watcher.watch(&p, mode) {
                Ok(()) => self.watched.push(p),
                Err(e) => warnings.push(format!("cannot watch `{}`: {e}", p.display())),
            }
        }
        warnings
    }
}

/// The projects being watched, one watch each.
#[derive(Default)]
pub struct Watches {
    running: Mutex<HashMap<String, (u64, tokio::task::JoinHandle<()>)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Where a detached watch is kept, to be resumed by the next engine.
fn saved_path(root: &Path, project: &str) -> anyhow::Result<PathBuf> {
    stack_model::names::check(stack_model::names::Kind::Project, project)?;
    let dir = root.join("watch");
    Ok(stack_sys::join(&dir, &format!("{project}.json"))?)
}

/// Runs a project's `up` under its lock, as the API's `up` does.
pub type UpFn = Arc<dyn Fn(&stack_api::UpRequest, &Events) -> anyhow::Result<()> + Send + Sync>;

impl Watches {
    /// Starts watching `req`'s project (in place of any watch it had); its
    /// id, and what it reports arrives on the receiver.
    pub fn start(
        &self,
        engine: &HostEngine,
        req: WatchRequest,
        up: UpFn,
    ) -> anyhow::Result<(u64, tokio::sync::mpsc::UnboundedReceiver<Event>)> {
        let project = req.up.project.name.clone();
        let files = |f: &[String]| f.iter().map(PathBuf::from).collect::<Vec<_>>();
        let (spec, warnings) = WatchSpec::new(&req.up.project, files(&req.files), &req.services);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut inotify = Inotify::new(tx)?;
        let (events, out) = Events::channel();
        for message in warnings.into_iter().chain(inotify.follow(&spec)) {
            events.send(Event::Warning { message });
        }
        let inotify = Arc::new(Mutex::new(inotify));
        let reload_events = events.clone();
        let host = engine.driver().clone();
        let reload = move |rebuild: Vec<String>| {
            let (req, up, inotify, events, host) = (
                req.clone(),
                up.clone(),
                inotify.clone(),
                reload_events.clone(),
                host.clone(),
            );
            crate::blocking(move || {
                let (loaded, files) = reload(&req.load, &events)
                    .map_err(|e| anyhow::anyhow!("the stack is left as it was: {e:#}"))?;
                let (rebuilt, replaced) =
                    rebuild_images(&host, &loaded.project, &rebuild, &events)?;
                let up_req = stack_api::UpRequest {
                    project: loaded.project,
                    working_dir: loaded.working_dir,
                    config_files: loaded.config_files,
                    rebuilt,
                    ..req.up.clone()
                };
                up(&up_req, &events)?;
                if req.prune {
                    prune_replaced(&host, &replaced, &events);
                }
                let (spec, warnings) = WatchSpec::new(
                    &up_req.project,
                    files.iter().map(PathBuf::from).collect(),
                    &req.services,
                );
                let mut inotify = inotify.lock().unwrap_or_else(|p| p.into_inner());
                for message in warnings.into_iter().chain(inotify.follow(&spec)) {
                    events.send(Event::Warning { message });
                }
                events.send(Event::Progress {
                    object: "Project".into(),
                    name: up_req.project.name.clone(),
                    action: "Reloaded".into(),
                });
                Ok(spec)
            })
        };
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let watching = engine.clone();
        let task = engine.handle().spawn(async move {
            let _ = watching.watch_files(spec, rx, reload, &events).await;
        });
        let old = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project, (id, task));
        if let Some((_, old)) = old {
            old.abort();
        }
        Ok((id, out))
    }

    /// Stops the project's watch (only if it is watch `id`, when given),
    /// and returns once its task has ended: from then on no change is
    /// synced, no command run and no reload started (one under way, on its
    /// own thread, finishes).
    pub fn stop(&self, host: &Host, project: &str, id: Option<u64>) -> bool {
        let task = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match running.get(project) {
                Some((have, _)) if id.is_none_or(|id| id == *have) => running.remove(project),
                _ => None,
            }
        };
        let Some((_, task)) = task else {
            return false;
        };
        task.abort();
        let _ = host.block_on(task);
        if id.is_none() {
            if let Ok(path) = saved_path(host.root(), project) {
                let _ = std::fs::remove_file(path);
            }
        }
        true
    }

    /// Keeps a detached watch for the next engine.
    pub fn save(root: &Path, req: &WatchRequest) -> anyhow::Result<()> {
        let path = saved_path(root, &req.up.project.name)?;
        stack_sys::private_dir(path.parent().expect("under the root"))?;
        stack_sys::write_atomic(&path, &serde_json::to_vec(req)?)
            .with_context(|| format!("cannot write `{}`", path.display()))
    }

    /// The detached watches an earlier engine kept; an unreadable one is
    /// named and left in place.
    pub fn saved(root: &Path) -> Vec<Result<WatchRequest, String>> {
        let dir = root.join("watch");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                std::fs::read(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                    .map_err(|e| format!("`{}`: {e}", p.display()))
            })
            .collect()
    }
}

/// A `rebuild` rule's services built again (each said as it goes): those
/// whose image changed, for the `up` to recreate, and the images they had.
/// A failed build leaves the stack as it was.
fn rebuild_images(
    host: &Host,
    project: &stack_model::Project,
    services: &[String],
    events: &Events,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let (mut changed, mut replaced) = (Vec::new(), Vec::new());
    let say = |name: &str, action: &str| {
        events.send(Event::Progress {
            object: "Service".into(),
            name: name.to_string(),
            action: action.into(),
        })
    };
    for name in services {
        let req = crate::build::service_request(project, name)?;
        let before = host.images()?.lookup(&req.tags[0]).ok().map(|i| i.id);
        say(name, "Building");
        let img = crate::build::build(host, &req, &|e| {
            if let stack_build::Event::Warning(message) = e {
                events.send(Event::Warning { message });
            }
        })
        .map_err(|e| {
            anyhow::anyhow!("service {name}: the build failed, the stack is left as it was: {e:#}")
        })?;
        say(name, "Built");
        if before.as_deref() != Some(img.id.as_str()) {
            changed.push(name.clone());
            replaced.extend(before);
        }
    }
    Ok((changed, replaced))
}

/// `watch --prune`: the images rebuilds replaced, removed if no name is
/// left on them and no container uses them any more.
fn prune_replaced(host: &Host, replaced: &[String], events: &Events) {
    let Ok(store) = host.images() else { return };
    for id in replaced {
        if !store.lookup(id).is_ok_and(|i| i.names.is_empty()) {
            continue;
        }
        if let Ok(done) = crate::images::remove(host, &store, std::slice::from_ref(id)) {
            if matches!(done.first(), Some(Ok(Some(_)))) {
                events.send(Event::Progress {
                    object: "Image".into(),
                    name: id.clone(),
                    action: "Removed".into(),
                });
            }
        }
    }
}

/// The project a watch loads again, as the client loaded it; the loader's
/// warnings go to the watch's events.
fn reload(l: &LoadSpec, events: &Events) -> anyhow::Result<(stack_api::UpRequest, Vec<String>)> {
    let opts = crate::load::options(l);
    let loaded = stack_loader::load(&opts)?;
    for w in &loaded.warnings {
        events.send(Event::Warning {
            message: w.to_string(),
        });
    }
    crate::load::up_request(loaded, &opts)
}
