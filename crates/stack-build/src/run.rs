//! RUN: the command in a container of the embedded runtime over the
//! stage's layers; what it changed (the overlay's upper directory) is the
//! step's layer. The runtime's mount points that the image did not have
//! (`/proc`, `/etc/hosts`, a mount's target) are taken out of it first.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::bail;
use stack_runtime::{Mount, NetworkMode, Spec};

use crate::view::View;

/// One RUN.
pub struct Step {
    /// The stage's layers, top first (none: `FROM scratch`).
    pub view: View,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network: NetworkMode,
    pub resolv_conf: Option<String>,
    pub hosts: Vec<String>,
    pub mounts: Vec<Mount>,
    /// `--security=insecure`.
    pub privileged: bool,
    pub shm_size: Option<u64>,
    pub rlimits: Vec<(String, u64, u64)>,
    /// Its memory limit in bytes.
    pub memory: Option<i64>,
}

/// Runs `step` as container `id` under `runs` (the builder's runtime root,
/// apart from the user's containers). Returns the container's directory,
/// whose `upper` holds the changes; its caller commits and removes it.
/// `line` gets each line of output as it comes.
pub fn run(
    runs: &Path,
    empty: &Path,
    id: &str,
    step: Step,
    line: &mut dyn FnMut(&str),
) -> anyhow::Result<PathBuf> {
    let mut layers = step.view.layers.clone();
    let rootfs = if layers.is_empty() {
        empty.to_path_buf()
    } else {
        layers.remove(0)
    };
    let targets: Vec<String> = step.mounts.iter().map(|m| m.target.clone()).collect();
    let spec = Spec {
        id: id.to_string(),
        name: format!("build-{}", &id[..12]),
        rootfs,
        layers,
        args: step.args,
        env: step.env,
        cwd: step.cwd,
        hostname: "buildkitsandbox".into(),
        user: step.user,
        network: step.network,
        mounts: step.mounts,
        resolv_conf: step.resolv_conf,
        hosts: step.hosts,
        privileged: step.privileged,
        shm_size: step.shm_size,
        rlimits: step.rlimits,
        limits: stack_runtime::cgroup::Limits {
            memory: step.memory,
            ..Default::default()
        },
        ..Default::default()
    };
    let dir = stack_runtime::container_dir(runs, id);
    let mut piped = stack_runtime::run_piped(&spec, runs)?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    let streams: Vec<Box<dyn Read + Send>> = [
        piped
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        piped
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for s in streams {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for l in BufReader::new(s).split(b'\n').map_while(Result::ok) {
                let _ = tx.send(String::from_utf8_lossy(&l).into_owned());
            }
        }));
    }
    drop(tx);
    for l in rx {
        line(&l);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = piped.child.wait()?;
    let code = stack_runtime::exit_code_of(status);
    if code != 0 {
        let _ = stack_sys::remove_tree(runs, &dir);
        bail!("did not complete successfully: exit code: {code}");
    }
    tidy(&dir.join("upper"), &step.view, &targets, &spec.cwd);
    Ok(dir)
}

/// Takes out of `upper` what the runtime, not the step, put there: the
/// files it writes for every container (/etc/hostname, /etc/hosts,
/// /etc/resolv.conf: BuildKit binds them, so a step's changes to them are
/// not kept either), the empty mount points of `--mount`s that the image
/// does not have, and directories left empty by that. /proc, /sys and /dev
/// are kept (made if the image has none: the runtime's shared layer gave
/// them, not the writable one), as BuildKit leaves them.
fn tidy(upper: &Path, view: &View, targets: &[String], cwd: &str) {
    for d in ["/proc", "/sys", "/dev"] {
        if view.find(Path::new(d)).is_none() {
            let at = upper.join(&d[1..]);
            if std::fs::create_dir(&at).is_ok() {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755));
            }
        }
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        let _ = std::fs::remove_file(upper.join(f));
    }
    let mut made: Vec<&str> = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"].to_vec();
    made.extend(targets.iter().map(String::as_str));
    made.retain(|p| *p != cwd);
    for p in made {
        let mut p = crate::view::clean(Path::new(p));
        loop {
            if view.find(&p).is_some() || p == Path::new("/") {
                break;
            }
            let at = upper.join(p.strip_prefix("/").unwrap_or(&p));
            let Ok(md) = std::fs::symlink_metadata(&at) else {
                // Gone already (the files above): its parents may be empty.
                match p.parent() {
                    Some(parent) => {
                        p = parent.to_path_buf();
                        continue;
                    }
                    None => break,
                }
            };
            let removed = if md.is_dir() {
                std::fs::remove_dir(&at).is_ok()
            } else {
                md.len() == 0 && std::fs::remove_file(&at).is_ok()
            };
            if !removed {
                break;
            }
            match p.parent() {
                Some(parent) => p = parent.to_path_buf(),
                None => break,
            }
        }
    }
}
