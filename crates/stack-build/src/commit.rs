//! `commit`: a container's writable layer on top of its image becomes a
//! new image, with the container's own settings (its command, environment,
//! user, working directory, labels) as the config, then `--change`
//! instructions, as `docker commit` makes it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};
use stack_dockerfile::Command;
use stack_image::store::Store;
use stack_image::Image;

use crate::{configure, image_layers, layer, now, State};

/// What `docker commit` takes.
pub struct Commit<'a> {
    /// The container's image.
    pub image: &'a Image,
    /// The container's writable layer, in overlay's format.
    pub upper: &'a Path,
    /// Paths in it (relative to its root) the runtime made rather than the
    /// container: mount points, `/etc/hosts` and the like.
    pub skip: &'a [PathBuf],
    /// The container's settings over the image's (`Env`, `Cmd`, `User` ...,
    /// the image config's names); a null value removes the image's.
    pub settings: Map<String, Value>,
    /// `--change`: Dockerfile instructions, one each.
    pub changes: &'a [String],
    pub author: &'a str,
    /// `--message`.
    pub comment: &'a str,
    /// The container's id and command, for the config and its history.
    pub container: &'a str,
    pub created_by: String,
    /// `name:tag` names for the result.
    pub tags: Vec<String>,
}

/// The instructions `--change` takes, as docker does.
const CHANGES: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Makes the image and records it in `store`.
pub fn commit(store: &Store, c: Commit<'_>) -> anyhow::Result<Image> {
    // No collection between the first blob written and the image recorded.
    let _held = store.lock_shared()?;
    let base = store.read_blob(&c.image.id)?;
    let config: Value = serde_json::from_slice(&base)
        .with_context(|| format!("image {}: its config is not JSON", c.image.id))?;
    let mut s = State {
        layers: image_layers(c.image),
        config,
        args: Default::default(),
        shell: vec!["/bin/sh".into(), "-c".into()],
        cmd_set: false,
        base: c.image.id.clone(),
    };
    for (k, v) in c.settings {
        s.cfg().insert(k, v);
    }
    if let Some(sh) = s.get("Shell").and_then(Value::as_array) {
        s.shell = sh
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    change(&mut s, c.changes)?;
    let parent = s.layers.last().map(|l| l.chain_id.clone());
    let top = layer::copy(store, c.upper, parent.as_deref(), c.skip)?;
    s.layers.push(top);
    let diff_ids: Vec<&str> = s.layers.iter().map(|l| l.diff_id.as_str()).collect();
    s.config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let created = now();
    s.config["created"] = json!(created);
    s.config["container"] = json!(c.container);
    let mut entry = json!({"created": created, "created_by": c.created_by});
    if !c.author.is_empty() {
        s.config["author"] = json!(c.author);
        entry["author"] = json!(c.author);
    }
    if !c.comment.is_empty() {
        entry["comment"] = json!(c.comment);
    }
    match s.config["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => s.config["history"] = json!([entry]),
    }
    let bytes = serde_json::to_vec(&s.config)?;
    let (digest, _) = store.write_blob(None, &bytes[..])?;
    Ok(store.record(c.tags, &digest, s.layers, None)?)
}

/// `--change` lines applied to the config, each one instruction.
fn change(s: &mut State, changes: &[String]) -> anyhow::Result<()> {
    for line in changes {
        let what = || format!("--change `{line}`");
        let df = stack_dockerfile::parse(&format!("FROM scratch\n{line}\n"))
            .map_err(|e| anyhow::anyhow!("{}: {}", what(), e.message))?;
        let ins = match df.stages.first().map(|st| &st.instructions[..]) {
            Some([one]) => one,
            _ => bail!("{}: expected one Dockerfile instruction", what()),
        };
        if !CHANGES.contains(&ins.keyword()) {
            bail!(
                "{}: {} cannot be changed by commit (it takes {})",
                what(),
                ins.keyword(),
                CHANGES.join(", ")
            );
        }
        if let Command::Workdir(w) = &ins.command {
            let dir = crate::view::clean(&Path::new(&s.workdir()).join(w));
            s.cfg().insert("WorkingDir".into(), json!(dir));
            continue;
        }
        configure(s, &ins.command, df.directives.escape).with_context(what)?;
    }
    Ok(())
}
