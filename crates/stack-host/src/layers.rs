//! A container's file system read from its layers without mounting them
//! (stack-build's merged view, overlay's rules): what its writable layer
//! changed (`docker diff`), all of it as a tar (`docker export`), and the
//! writable layer as a new image's (`docker commit`). It may be running or
//! stopped: `stop` keeps the writable layer.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use stack_build::view::View;
use stack_runtime::State;

/// The writable layer (`upper`), the store's layer of mount points (Docker's
/// init layer: /proc, /dev, /sys, /etc's three files), then the image's
/// layers, top first.
fn layers(root: &Path, st: &State) -> Vec<PathBuf> {
    std::iter::once(stack_runtime::container_dir(root, &st.id).join("upper"))
        .chain(std::iter::once(stack_runtime::shared_layer(root)))
        .chain(std::iter::once(st.spec.rootfs.clone()))
        .chain(st.spec.layers.iter().cloned())
        .collect()
}

/// What changed: each path in the writable layer as added (1), changed (0:
/// the image has it too) or deleted (2, a whiteout), in path order.
pub fn changes(root: &Path, st: &State) -> Vec<(String, u8)> {
    let all = layers(root, st);
    let image = View::new(all[1..].to_vec());
    let mut out = Vec::new();
    walk_upper(&all[0], Path::new("/"), &image, &made(st), &mut out);
    out
}

/// What the runtime makes in every container (Docker's init layer) and
/// where its mounts go: not the container's changes.
fn made(st: &State) -> Vec<PathBuf> {
    [
        "/dev",
        "/proc",
        "/sys",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/mtab",
    ]
    .iter()
    .map(PathBuf::from)
    .chain(st.spec.mounts.iter().map(|m| PathBuf::from(&m.target)))
    .collect()
}

/// What `commit` is asked besides the container.
#[derive(Default)]
pub struct CommitOptions {
    /// `name:tag`, or none.
    pub tag: Option<String>,
    pub author: String,
    pub message: String,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// Settings of the API's body (`Cmd`, `Env` ...) over the container's.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// The API body's config over the container's, as dockerd merges them: an
/// empty value leaves the container's; `Env` and `Labels` (and exposed
/// ports, volumes) add by key; the other image settings replace; what is
/// not an image's (`Hostname`, `Image`, `AttachStdin` …) is left out.
fn merge_config(
    settings: &mut serde_json::Map<String, serde_json::Value>,
    body: serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::Value;
    for (k, v) in body {
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            continue;
        }
        match k.as_str() {
            "Env" => {
                let mut env: Vec<String> = settings
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for e in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    let key = e.split('=').next().unwrap_or(e);
                    env.retain(|x| x.split('=').next() != Some(key));
                    env.push(e.to_string());
                }
                settings.insert(k, serde_json::json!(env));
            }
            "Labels" | "ExposedPorts" | "Volumes" => {
                let mut map = settings
                    .get(&k)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                map.extend(v.as_object().cloned().unwrap_or_default());
                settings.insert(k, Value::Object(map));
            }
            "Cmd" | "Entrypoint" | "User" | "WorkingDir" | "StopSignal" | "Healthcheck"
            | "OnBuild" | "Shell" => {
                settings.insert(k, v);
            }
            _ => {}
        }
    }
}

/// `commit`: the container's writable layer on top of its image, as a new
/// image with the container's command, environment, user, working
/// directory and labels.
pub fn commit(
    host: &crate::Host,
    st: &State,
    o: CommitOptions,
) -> anyhow::Result<stack_image::Image> {
    use serde_json::{json, Value};
    let store = host.images()?;
    // Its image: the one it was made from (the name may point elsewhere
    // since); for a record from before ids were kept, one with its layers.
    let lowers: Vec<PathBuf> = layers(host.root(), st)[1..].to_vec();
    let images = store.images()?;
    let by_id = images.iter().find(|i| i.id == st.spec.image_id);
    let by_layers = || images.iter().find(|i| store.lower_dirs(i) == lowers);
    let Some(image) = by_id.or_else(by_layers).cloned() else {
        anyhow::bail!(
            "container {}: it does not run on an image in the store (a --rootfs directory, or an image removed): nothing to commit onto",
            st.name
        );
    };
    let spec = &st.spec;
    let entrypoint = image.config.entrypoint.clone().unwrap_or_default();
    let mut settings = serde_json::Map::new();
    if !entrypoint.is_empty() && spec.args.starts_with(&entrypoint) {
        settings.insert("Cmd".into(), json!(spec.args[entrypoint.len()..]));
    } else {
        settings.insert("Entrypoint".into(), Value::Null);
        settings.insert("Cmd".into(), json!(spec.args));
    }
    settings.insert("Env".into(), json!(spec.env));
    settings.insert("User".into(), json!(spec.user));
    settings.insert("WorkingDir".into(), json!(spec.cwd));
    settings.insert("Labels".into(), json!(spec.labels));
    merge_config(&mut settings, o.settings);
    let skip: Vec<PathBuf> = made(st)
        .iter()
        .filter_map(|p| p.strip_prefix("/").ok().map(Path::to_path_buf))
        .collect();
    let upper = stack_runtime::container_dir(host.root(), &st.id).join("upper");
    // A running container is frozen while its layer is read, whatever
    // `--pause` says: a live one could swap a directory for a link to the
    // host's files between a look and a read.
    let freeze = crate::containers::running(st) && !crate::containers::is_paused(st);
    if freeze && stack_runtime::cgroup::none_of_ours() {
        anyhow::bail!(
            "container `{}` runs, and a rootless engine without cgroups of its own cannot freeze it while its layer is read: stop it first",
            st.name
        );
    }
    if freeze {
        crate::containers::freeze(host.root(), &st.id, true)?;
    }
    let made = stack_build::commit::commit(
        &store,
        stack_build::commit::Commit {
            image: &image,
            upper: &upper,
            skip: &skip,
            settings,
            changes: &o.changes,
            author: &o.author,
            comment: &o.message,
            container: &st.id,
            created_by: spec.args.join(" "),
            tags: o.tag.into_iter().collect(),
        },
    );
    if freeze {
        let _ = crate::containers::freeze(host.root(), &st.id, false);
    }
    made
}

/// The changes under `dir` of the writable layer (at `at` in the
/// container); a directory the image has shows only if something under it
/// changed.
fn walk_upper(dir: &Path, at: &Path, image: &View, made: &[PathBuf], out: &mut Vec<(String, u8)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = at.join(e.file_name());
        if made.contains(&path) {
            continue;
        }
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        let shown = path.to_string_lossy().into_owned();
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push((shown, 2));
            continue;
        }
        let kind = if image.find(&path).is_some() { 0 } else { 1 };
        let at = out.len();
        out.push((shown, kind));
        if md.is_dir() {
            walk_upper(&e.path(), &path, image, made, out);
            if kind == 0 && out.len() == at + 1 {
                out.pop();
            }
        }
    }
}

/// The container's whole file system as a tar (files, directories,
/// symlinks; owners, modes and times kept), written to `out`.
pub fn export(root: &Path, st: &State, out: impl Write) -> std::io::Result<()> {
    let view = View::new(layers(root, st));
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    export_dir(&view, Path::new("/"), &mut tar)?;
    tar.finish()
}

fn export_dir<W: Write>(view: &View, dir: &Path, tar: &mut tar::Builder<W>) -> std::io::Result<()> {
    for name in view.read_dir(dir) {
        let path = dir.join(&name);
        let Some(real) = view.find(&path) else {
            continue;
        };
        let md = real.symlink_metadata()?;
        let rel = path.strip_prefix("/").unwrap_or(&path);
        let ft = md.file_type();
        if ft.is_dir() || ft.is_file() || ft.is_symlink() {
            tar.append_path_with_name(&real, rel)?;
        }
        if ft.is_dir() {
            export_dir(view, &path, tar)?;
        }
    }
    Ok(())
}
