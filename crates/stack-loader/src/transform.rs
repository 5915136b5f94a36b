//! Short syntax to the canonical long syntax, on the tree.
//!
//! Done per file before merging, so that entries written in different syntaxes
//! in different files (a port as `"8080:80"` here and as a mapping there) are
//! recognised as the same entry.

use crate::diag::{Diagnostics, Span};
use crate::node::{Key, Map, Node, Value};

fn key(name: &str, span: &Span) -> Key {
    Key {
        name: name.to_string(),
        span: span.clone(),
    }
}

fn entry(map: &mut Map, name: &str, value: Node) {
    let span = value.span.clone();
    map.insert(key(name, &span), value);
}

/// Transforms a whole file tree in place.
pub fn canonical(root: &mut Node, diags: &mut Diagnostics) {
    let Some(top) = root.as_map_mut() else { return };
    for section in ["volumes", "networks", "secrets", "configs"] {
        if let Some(Value::Map(items)) = top.get_mut(section).map(|n| &mut n.value) {
            for (_, item) in items.entries.iter_mut() {
                external_form(item);
                if let Some(m) = item.as_map_mut() {
                    list_to_map(m, "labels", diags);
                }
            }
        }
    }
    if let Some(Value::Map(services)) = top.get_mut("services").map(|n| &mut n.value) {
        for (_, svc) in services.entries.iter_mut() {
            if let Some(m) = svc.as_map_mut() {
                service(m, diags);
            }
        }
    }
}

/// `external: {name: x}` (legacy) becomes `external: true` + `name: x`.
fn external_form(item: &mut Node) {
    let Some(m) = item.as_map_mut() else { return };
    let Some(ext) = m.get("external") else { return };
    if let Some(name) = ext.get("name").cloned() {
        let span = ext.span.clone();
        m.insert(key("external", &span), Node::plain("true", span));
        if m.get("name").is_none() {
            entry(m, "name", name);
        }
    }
}

fn service(m: &mut Map, diags: &mut Diagnostics) {
    for k in ["environment", "labels", "annotations", "sysctls"] {
        list_to_map(m, k, diags);
    }
    if let Some(b) = m.get_mut("build") {
        wrap_scalar(b, "context");
        if let Some(bm) = b.as_map_mut() {
            for k in ["args", "labels", "additional_contexts"] {
                list_to_map(bm, k, diags);
            }
            for k in ["tags", "cache_from", "cache_to", "platforms"] {
                string_to_list(bm, k);
            }
            if let Some(Value::Seq(items)) = bm.get_mut("secrets").map(|n| &mut n.value) {
                items.iter_mut().for_each(file_ref);
            }
        }
    }
    if let Some(d) = m.get_mut("deploy").and_then(Node::as_map_mut) {
        list_to_map(d, "labels", diags);
    }
    for k in ["dns", "dns_search", "tmpfs", "label_file", "env_file"] {
        string_to_list(m, k);
    }
    if let Some(Value::Seq(items)) = m.get_mut("env_file").map(|n| &mut n.value) {
        for it in items.iter_mut() {
            if it.as_str().is_some() {
                wrap_scalar(it, "path");
                if let Some(em) = it.as_map_mut() {
                    entry(
                        em,
                        "required",
                        Node::plain("true", em.entries[0].1.span.clone()),
                    );
                }
            }
        }
    }
    if let Some(e) = m.get_mut("extends") {
        wrap_scalar(e, "service");
    }
    for k in ["networks", "models"] {
        if let Some(n) = m.get_mut(k) {
            seq_to_null_map(n);
        }
    }
    // `gpus: all` is one request for every GPU.
    if let Some(g) = m.get_mut("gpus") {
        if g.as_str().is_some() {
            let span = g.span.clone();
            let mut req = Map::default();
            entry(&mut req, "count", Node::string("all", span.clone()));
            *g = Node::seq(vec![Node::map(req, span.clone())], span);
        }
    }
    if let Some(d) = m.get_mut("depends_on") {
        depends_on(d);
    }
    for k in ["secrets", "configs"] {
        if let Some(Value::Seq(items)) = m.get_mut(k).map(|n| &mut n.value) {
            items.iter_mut().for_each(file_ref);
        }
    }
    if let Some(Value::Map(hosts)) = m.get("extra_hosts").map(|n| n.value.clone()) {
        let span = m
            .get("extra_hosts")
            .map(|n| n.span.clone())
            .unwrap_or_else(|| Span::whole(""));
        let mut items = Vec::new();
        for (k, v) in hosts.entries {
            let ips: Vec<Node> = match v.value {
                Value::Seq(s) => s,
                _ => vec![v],
            };
            for ip in ips {
                items.push(Node::string(
                    format!("{}={}", k.name, ip.as_str().unwrap_or_default()),
                    ip.span.clone(),
                ));
            }
        }
        entry(m, "extra_hosts", Node::seq(items, span));
    }
    if let Some(Value::Seq(items)) = m.get_mut("devices").map(|n| &mut n.value) {
        for it in items.iter_mut() {
            if let Some(s) = it.as_str().map(str::to_string) {
                *it = crate::syntax::device(&s, &it.span);
            }
        }
    }
    if let Some(Value::Seq(items)) = m.get_mut("volumes").map(|n| &mut n.value) {
        for it in items.iter_mut() {
            if let Some(s) = it.as_str().map(str::to_string) {
                match crate::syntax::volume(&s, &it.span) {
                    Ok(n) => *it = n,
                    Err(d) => diags.push(d),
                }
            }
        }
    }
    if let Some(ports) = m.get_mut("ports") {
        if let Value::Seq(items) = &ports.value {
            let mut out = Vec::new();
            for it in items {
                match &it.value {
                    Value::Scalar(s) => match crate::syntax::ports(&s.text, &it.span) {
                        Ok(mut v) => out.append(&mut v),
                        Err(d) => diags.push(d),
                    },
                    Value::Map(m) => {
                        let mut m = m.clone();
                        for (k, v) in [("mode", "ingress"), ("protocol", "tcp")] {
                            if m.get(k).is_none() {
                                m.insert(key(k, &it.span), Node::string(v, it.span.clone()));
                            }
                        }
                        out.push(Node::map(m, it.span.clone()));
                    }
                    _ => out.push(it.clone()),
                }
            }
            ports.value = Value::Seq(out);
        }
    }
    if let Some(Value::Map(dev)) = m.get_mut("develop").map(|n| &mut n.value) {
        if let Some(Value::Seq(watch)) = dev.get_mut("watch").map(|n| &mut n.value) {
            for w in watch.iter_mut().filter_map(Node::as_map_mut) {
                string_to_list(w, "ignore");
                string_to_list(w, "include");
            }
        }
    }
}

/// `- NAME=value` lists become mappings (`NAME` alone maps to null).
fn list_to_map(m: &mut Map, k: &str, diags: &mut Diagnostics) {
    let Some(node) = m.get_mut(k) else { return };
    let Value::Seq(items) = &node.value else {
        return;
    };
    let mut out = Map::default();
    for it in items {
        let Some(s) = it.as_str() else {
            diags.error(
                &it.span,
                format!("`{k}` entries must be strings like `NAME=value`"),
            );
            continue;
        };
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Node::string(v, it.span.clone())),
            None => (s, Node::null(it.span.clone())),
        };
        if k == "environment" && name.ends_with(char::is_whitespace) {
            diags.error(
                &it.span,
                format!("environment variable `{name}` is declared with a trailing space"),
            );
            continue;
        }
        out.insert(key(name, &it.span), value);
    }
    node.value = Value::Map(out);
}

fn string_to_list(m: &mut Map, k: &str) {
    if let Some(n) = m.get_mut(k) {
        if matches!(n.value, Value::Scalar(_)) {
            let span = n.span.clone();
            let one = std::mem::replace(n, Node::null(span.clone()));
            *n = Node::seq(vec![one], span);
        }
    }
}

fn seq_to_null_map(n: &mut Node) {
    if let Value::Seq(items) = &n.value {
        let mut out = Map::default();
        for it in items {
            if let Some(s) = it.as_str() {
                out.insert(key(s, &it.span), Node::null(it.span.clone()));
            }
        }
        n.value = Value::Map(out);
    }
}

fn file_ref(n: &mut Node) {
    wrap_scalar(n, "source");
}

/// A scalar `x` becomes the mapping `{key: x}`; anything else is left alone.
fn wrap_scalar(n: &mut Node, key: &str) {
    if n.as_str().is_some() {
        let span = n.span.clone();
        let value = std::mem::replace(n, Node::null(span.clone()));
        let mut m = Map::default();
        entry(&mut m, key, value);
        *n = Node::map(m, span);
    }
}

fn depends_on(n: &mut Node) {
    let span = n.span.clone();
    if let Value::Seq(items) = &n.value {
        let mut out = Map::default();
        for it in items {
            if let Some(s) = it.as_str() {
                out.insert(key(s, &it.span), Node::map(Map::default(), it.span.clone()));
            }
        }
        n.value = Value::Map(out);
    }
    if let Value::Map(m) = &mut n.value {
        for (_, dep) in m.entries.iter_mut() {
            if dep.is_null() {
                *dep = Node::map(Map::default(), dep.span.clone());
            }
            if let Some(dm) = dep.as_map_mut() {
                if dm.get("condition").is_none() {
                    entry(
                        dm,
                        "condition",
                        Node::plain("service_started", span.clone()),
                    );
                }
                if dm.get("required").is_none() {
                    entry(dm, "required", Node::plain("true", span.clone()));
                }
            }
        }
    }
}
