//! Merging of stack files (`-f a -f b`, `extends`), on canonical trees.
//!
//! The rules of the Compose Specification: mappings merge key by key,
//! sequences append, scalars are replaced by the later file; `command`,
//! `entrypoint` and `healthcheck.test` are replaced whole; ports, volumes,
//! secrets, configs, devices and string lists are de-duplicated by their key,
//! the later entry winning; a changed logging driver drops the earlier
//! options. `!reset` removes a value, `!override` replaces it unmerged.

use crate::diag::{Diagnostic, Span};
use crate::node::{Map, Node, Tag, Value};

/// Merges `over` into `base`. `path` names the position for error messages
/// (`services.web.ports`).
pub fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Result<Node, Diagnostic> {
    match over.tag {
        Tag::Override => return Ok(untagged(over)),
        Tag::Reset => unreachable!("reset values are removed by their parent"),
        Tag::None => {}
    }
    if is_replaced(path) {
        return Ok(over);
    }
    if over.is_null() {
        return Ok(base);
    }
    let span = over.span.clone();
    match (base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            if path_is(path, &["services", "*", "logging"]) {
                return Ok(Node::map(merge_logging(b, o, path)?, span));
            }
            Ok(Node::map(merge_maps(b, o, path)?, span))
        }
        (Value::Seq(mut b), Value::Seq(o)) => {
            b.extend(o);
            Ok(Node::seq(dedupe(b, path), span))
        }
        (Value::Map(_), _) | (Value::Seq(_), _) => Err(type_change(&span, path)),
        (Value::Null, v) | (Value::Scalar(_), v) => Ok(Node {
            value: v,
            span,
            tag: Tag::None,
        }),
    }
}

fn type_change(span: &Span, path: &[String]) -> Diagnostic {
    Diagnostic::error(
        span,
        format!(
            "cannot override `{}` with a value of another type",
            path.join(".")
        ),
    )
}

fn untagged(mut n: Node) -> Node {
    n.tag = Tag::None;
    n
}

pub fn merge_maps(mut base: Map, over: Map, path: &mut Vec<String>) -> Result<Map, Diagnostic> {
    for (key, value) in over.entries {
        if value.tag == Tag::Reset {
            base.remove(&key.name);
            continue;
        }
        match base.remove_keep_order(&key.name) {
            Some((idx, existing)) => {
                path.push(key.name.clone());
                let merged = merge(existing, value, path);
                path.pop();
                base.entries.insert(idx, (key, merged?));
            }
            None => base.entries.push((key, untagged(value))),
        }
    }
    Ok(base)
}

fn merge_logging(base: Map, over: Map, path: &mut Vec<String>) -> Result<Map, Diagnostic> {
    let driver = |m: &Map| m.get("driver").and_then(|d| d.as_str().map(str::to_string));
    match (driver(&base), driver(&over)) {
        (Some(a), Some(b)) if a != b => {
            let mut base = base;
            base.remove("options");
            merge_maps(base, over, path)
        }
        _ => merge_maps(base, over, path),
    }
}

impl Map {
    fn remove_keep_order(&mut self, key: &str) -> Option<(usize, Node)> {
        let i = self.entries.iter().position(|(k, _)| k.name == key)?;
        Some((i, self.entries.remove(i).1))
    }
}

fn path_is(path: &[String], pattern: &[&str]) -> bool {
    path.len() == pattern.len() && path.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
}

fn is_replaced(path: &[String]) -> bool {
    path_is(path, &["services", "*", "command"])
        || path_is(path, &["services", "*", "entrypoint"])
        || path_is(path, &["services", "*", "healthcheck", "test"])
}

/// The identity of a sequence entry, for the sequences compose de-duplicates.
fn entry_key(path: &[String], n: &Node) -> Option<String> {
    let field = |k: &str| n.get(k).and_then(Node::as_str).unwrap_or("").to_string();
    let svc = |last: &str| path_is(path, &["services", "*", last]);
    if svc("ports") {
        return Some(format!(
            "{}:{}:{}/{}/{}",
            field("host_ip"),
            field("published"),
            field("target"),
            n.get("protocol").and_then(Node::as_str).unwrap_or("tcp"),
            n.get("mode").and_then(Node::as_str).unwrap_or("ingress")
        ));
    }
    if svc("volumes") || svc("devices") {
        return Some(field("target"));
    }
    if svc("secrets") || svc("configs") {
        let t = field("target");
        return Some(if t.is_empty() { field("source") } else { t });
    }
    if svc("env_file") {
        return Some(field("path"));
    }
    let string_lists = [
        "dns",
        "dns_opt",
        "dns_search",
        "extra_hosts",
        "cap_add",
        "cap_drop",
        "profiles",
        "tmpfs",
        "links",
        "external_links",
        "security_opt",
        "group_add",
        "expose",
        "label_file",
        "device_cgroup_rules",
    ];
    if string_lists.iter().any(|l| svc(l))
        || path_is(path, &["services", "*", "build", "extra_hosts"])
    {
        return n.as_str().map(str::to_string);
    }
    None
}

/// Keeps one entry per key: the later entry replaces the earlier one in place.
fn dedupe(items: Vec<Node>, path: &[String]) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    let mut keys: Vec<Option<String>> = Vec::with_capacity(items.len());
    for item in items {
        let key = entry_key(path, &item);
        if let Some(k) = &key {
            if let Some(pos) = keys.iter().position(|e| e.as_deref() == Some(k.as_str())) {
                out[pos] = item;
                continue;
            }
        }
        keys.push(key);
        out.push(item);
    }
    out
}

/// Removes `!reset` values from a single file's tree (a reset with nothing
/// below it to reset) and clears `!override` tags.
pub fn strip_tags(node: &mut Node) {
    node.tag = Tag::None;
    match &mut node.value {
        Value::Map(m) => {
            m.entries.retain(|(_, v)| v.tag != Tag::Reset);
            m.entries.iter_mut().for_each(|(_, v)| strip_tags(v));
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Tag::Reset);
            items.iter_mut().for_each(strip_tags);
        }
        _ => {}
    }
}

/// De-duplicates the keyed sequences of one service after canonical transforms
/// (a range of ports may collide with a single port of the same file).
pub fn enforce_unicity(root: &mut Node) {
    let Some(services) = root
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    else {
        return;
    };
    for (name, svc) in services.entries.iter_mut() {
        let Some(svc) = svc.as_map_mut() else {
            continue;
        };
        for (key, value) in svc.entries.iter_mut() {
            if let Value::Seq(items) = &mut value.value {
                let path = ["services".to_string(), name.name.clone(), key.name.clone()];
                *items = dedupe(std::mem::take(items), &path);
            }
        }
    }
}
