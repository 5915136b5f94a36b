//! Relative paths of a file made absolute against a base directory.

use std::path::{Component, Path, PathBuf};

use crate::node::{Node, Value};

/// `p` against `base`, with `~` expanded to `home` and `.`/`..` folded.
pub fn absolute(base: &Path, p: &str, home: Option<&Path>) -> PathBuf {
    let joined = if p == "~" || p.starts_with("~/") {
        match home {
            Some(h) => h.join(p.trim_start_matches('~').trim_start_matches('/')),
            None => base.join(p),
        }
    } else {
        base.join(p)
    };
    clean(&joined)
}

/// Folds `.` and `..` without touching the file system.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn is_remote(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn fix(n: &mut Node, base: &Path, home: Option<&Path>) {
    if let Value::Scalar(s) = &mut n.value {
        if !s.text.is_empty() && !is_remote(&s.text) {
            s.text = absolute(base, &s.text, home).display().to_string();
            s.quoted = true;
        }
    }
}

/// Resolves, in one file's canonical tree, every attribute that holds a host path.
pub fn resolve(doc: &mut Node, base: &Path, home: Option<&Path>) {
    let Some(root) = doc.as_map_mut() else { return };
    if let Some(Value::Map(services)) = root.get_mut("services").map(|n| &mut n.value) {
        for (_, svc) in services.entries.iter_mut() {
            let Some(svc) = svc.as_map_mut() else {
                continue;
            };
            if let Some(b) = svc.get_mut("build").and_then(Node::as_map_mut) {
                if let Some(c) = b.get_mut("context") {
                    fix(c, base, home);
                }
                if let Some(Value::Map(ac)) = b.get_mut("additional_contexts").map(|n| &mut n.value)
                {
                    for (_, v) in ac.entries.iter_mut() {
                        if v.as_str().is_some_and(|s| {
                            !s.contains(':') || s.starts_with('.') || s.starts_with('/')
                        }) {
                            fix(v, base, home);
                        }
                    }
                }
            }
            if let Some(Value::Seq(items)) = svc.get_mut("env_file").map(|n| &mut n.value) {
                for it in items.iter_mut() {
                    if let Some(p) = it.as_map_mut().and_then(|m| m.get_mut("path")) {
                        fix(p, base, home);
                    }
                }
            }
            if let Some(Value::Seq(items)) = svc.get_mut("label_file").map(|n| &mut n.value) {
                items.iter_mut().for_each(|p| fix(p, base, home));
            }
            if let Some(Value::Seq(items)) = svc.get_mut("volumes").map(|n| &mut n.value) {
                for v in items.iter_mut().filter_map(Node::as_map_mut) {
                    let is_bind = v.get("type").and_then(Node::as_str) == Some("bind");
                    if let (true, Some(src)) = (is_bind, v.get_mut("source")) {
                        fix(src, base, home);
                    }
                }
            }
            if let Some(Value::Map(dev)) = svc.get_mut("develop").map(|n| &mut n.value) {
                if let Some(Value::Seq(watch)) = dev.get_mut("watch").map(|n| &mut n.value) {
                    for w in watch.iter_mut().filter_map(Node::as_map_mut) {
                        if let Some(p) = w.get_mut("path") {
                            fix(p, base, home);
                        }
                    }
                }
            }
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(Value::Map(items)) = root.get_mut(kind).map(|n| &mut n.value) {
            for (_, it) in items.entries.iter_mut() {
                if let Some(f) = it.as_map_mut().and_then(|m| m.get_mut("file")) {
                    fix(f, base, home);
                }
            }
        }
    }
    if let Some(Value::Map(vols)) = root.get_mut("volumes").map(|n| &mut n.value) {
        for (_, v) in vols.entries.iter_mut() {
            let Some(opts) = v
                .as_map_mut()
                .and_then(|m| m.get_mut("driver_opts"))
                .and_then(Node::as_map_mut)
            else {
                continue;
            };
            let bind = opts
                .get("o")
                .and_then(Node::as_str)
                .is_some_and(|o| o.split(',').any(|x| x == "bind"));
            if let (true, Some(dev)) = (bind, opts.get_mut("device")) {
                fix(dev, base, home);
            }
        }
    }
}
