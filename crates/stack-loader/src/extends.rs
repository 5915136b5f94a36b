//! `extends`: a service built on another one, from this file or another.
//!
//! The base is resolved first (recursively), then the extending service is
//! merged over it with the usual merge rules. A base from another file has
//! its relative paths resolved against that file's directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::load::{read_file, Context};
use crate::node::{Map, Node, Value};

pub fn apply(doc: &mut Node, file: &Path, ctx: &mut Context, diags: &mut Diagnostics) {
    let Some(services) = doc.get("services").and_then(Node::as_map).cloned() else {
        return;
    };
    let names: Vec<String> = services
        .iter()
        .filter(|(_, s)| s.get("extends").is_some())
        .map(|(k, _)| k.name.clone())
        .collect();
    if names.is_empty() {
        return;
    }
    let mut r = Resolver {
        ctx,
        cache: HashMap::new(),
        stack: Vec::new(),
    };
    let mut resolved = Vec::new();
    for name in names {
        match r.resolve(&services, &name, file) {
            Ok(n) => resolved.push((name, n)),
            Err(d) => diags.push(d),
        }
    }
    if let Some(target) = doc
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    {
        for (name, n) in resolved {
            if let Some(slot) = target.get_mut(&name) {
                *slot = n;
            }
        }
    }
}

struct Resolver<'c, 'e> {
    ctx: &'c mut Context<'e>,
    /// Services of other files, already interpolated, canonical, with absolute paths.
    cache: HashMap<PathBuf, Map>,
    stack: Vec<(PathBuf, String)>,
}

impl Resolver<'_, '_> {
    fn resolve(&mut self, services: &Map, name: &str, file: &Path) -> Result<Node, Diagnostic> {
        let Some(svc) = services.get(name) else {
            return Err(Diagnostic::error(
                &Span::whole(&file.display().to_string()),
                format!(
                    "cannot extend service `{name}`: no such service in `{}`",
                    file.display()
                ),
            ));
        };
        let Some(ext) = svc.get("extends") else {
            return Ok(svc.clone());
        };
        let key = (file.to_path_buf(), name.to_string());
        if let Some(pos) = self.stack.iter().position(|k| *k == key) {
            let chain: Vec<String> = self.stack[pos..]
                .iter()
                .chain(std::iter::once(&key))
                .map(|(_, s)| format!("`{s}`"))
                .collect();
            return Err(Diagnostic::error(
                &ext.span,
                format!("extends cycle: {}", chain.join(" -> ")),
            ));
        }
        let Some(base_name) = ext
            .get("service")
            .and_then(Node::as_str)
            .map(str::to_string)
        else {
            return Err(Diagnostic::error(&ext.span, "`extends` needs a `service`"));
        };
        self.stack.push(key);
        let base = match ext.get("file").and_then(Node::as_str) {
            Some(f) => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                let path = crate::paths::absolute(dir, f, self.ctx.home.as_deref());
                self.load(&path, &ext.span)
                    .and_then(|other| self.resolve(&other, &base_name, &path))
            }
            None => self.resolve(services, &base_name, file),
        };
        self.stack.pop();
        // Problems without a position of their own are placed at this `extends`.
        let base = base.map_err(|mut d| {
            if d.span.line == 0 {
                d.span = ext.span.clone();
            }
            d
        })?;
        let mut over = svc.clone();
        if let Some(m) = over.as_map_mut() {
            m.remove("extends");
        }
        let mut path = vec!["services".to_string(), name.to_string()];
        crate::merge::merge(base, over, &mut path)
    }

    fn load(&mut self, path: &Path, span: &Span) -> Result<Map, Diagnostic> {
        if let Some(m) = self.cache.get(path) {
            return Ok(m.clone());
        }
        let file = read_file(path).map_err(|mut d| {
            d.span = span.clone();
            d
        })?;
        let name: std::sync::Arc<str> = std::sync::Arc::from(path.display().to_string());
        let mut doc = crate::node::parse(&name, &file.text)?
            .into_iter()
            .next()
            .ok_or_else(|| Diagnostic::error(span, format!("`{}` is empty", path.display())))?;
        let mut diags = Diagnostics::default();
        if self.ctx.interpolate {
            let lookup = self.ctx.env.lookup();
            crate::interpolate::interpolate_node(&mut doc, &lookup, &mut diags);
        }
        crate::transform::canonical(&mut doc, &mut diags);
        let dir = path.parent().unwrap_or(Path::new("/"));
        crate::paths::resolve(&mut doc, dir, self.ctx.home.as_deref());
        if let Some(d) = diags.errors().next() {
            return Err(d.clone());
        }
        let services = match doc.get("services").map(|n| &n.value) {
            Some(Value::Map(m)) => m.clone(),
            _ => Map::default(),
        };
        self.cache.insert(path.to_path_buf(), services.clone());
        Ok(services)
    }
}
