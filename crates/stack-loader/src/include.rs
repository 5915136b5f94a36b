//! `include`: other stack files loaded as their own sub-projects (their own
//! project directory and `.env`), whose resources join this one.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostics, Span};
use crate::env::Environment;
use crate::load::{load_files, read_file, section, Context};
use crate::node::{Node, Value};

struct Include {
    paths: Vec<(PathBuf, Span)>,
    project_dir: Option<PathBuf>,
    env_files: Vec<PathBuf>,
    span: Span,
}

fn strings(n: &Node) -> Vec<(String, Span)> {
    match &n.value {
        Value::Scalar(s) => vec![(s.text.clone(), n.span.clone())],
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_string(), i.span.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

pub fn apply(doc: &mut Node, file_dir: &Path, ctx: &mut Context, diags: &mut Diagnostics) {
    let Some(list) = doc.as_map_mut().and_then(|m| m.remove("include")) else {
        return;
    };
    let Some(items) = list.as_seq() else {
        diags.error(&list.span, "`include` must be a list");
        return;
    };
    let mut includes = Vec::new();
    for item in items {
        let abs = |p: &str| crate::paths::absolute(file_dir, p, ctx.home.as_deref());
        match &item.value {
            Value::Scalar(s) => includes.push(Include {
                paths: vec![(abs(&s.text), item.span.clone())],
                project_dir: None,
                env_files: Vec::new(),
                span: item.span.clone(),
            }),
            Value::Map(m) => {
                let paths = m.get("path").map(strings).unwrap_or_default();
                if paths.is_empty() {
                    diags.error(&item.span, "`include` entry needs a `path`");
                    continue;
                }
                includes.push(Include {
                    paths: paths.into_iter().map(|(p, s)| (abs(&p), s)).collect(),
                    project_dir: m.get("project_directory").and_then(Node::as_str).map(abs),
                    env_files: m
                        .get("env_file")
                        .map(strings)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(p, _)| abs(&p))
                        .collect(),
                    span: item.span.clone(),
                });
            }
            _ => diags.error(&item.span, "`include` entries are paths or mappings"),
        }
    }
    for inc in includes {
        let first = &inc.paths[0].0;
        if let Some(pos) = ctx.include_stack.iter().position(|p| p == first) {
            let cycle: Vec<String> = ctx.include_stack[pos..]
                .iter()
                .chain(std::iter::once(first))
                .map(|p| p.display().to_string())
                .collect();
            diags.error(&inc.span, format!("include cycle: {}", cycle.join(" -> ")));
            continue;
        }
        let project_dir = inc
            .project_dir
            .clone()
            .unwrap_or_else(|| first.parent().map(Path::to_path_buf).unwrap_or_default());
        // The included project sees the shell, its own env files (or its
        // directory's `.env`), then ours.
        let mut env = Environment::from_shell(
            ctx.env
                .iter()
                .map(|(k, v, _)| (k.to_string(), v.to_string())),
        );
        let env_files = if inc.env_files.is_empty() {
            vec![project_dir.join(".env")]
        } else {
            inc.env_files.clone()
        };
        for f in &env_files {
            if f.exists() || !inc.env_files.is_empty() {
                if let Err(d) = env.load_file(f) {
                    diags.push(d);
                }
            }
        }
        let mut files = Vec::new();
        for (p, span) in &inc.paths {
            match read_file(p) {
                Ok(f) => files.push(f),
                Err(mut d) => {
                    d.span = span.clone();
                    diags.push(d);
                }
            }
        }
        if files.is_empty() {
            continue;
        }
        let mut stack = ctx.include_stack.clone();
        stack.push(first.clone());
        let mut sub = Context {
            env: &env,
            interpolate: ctx.interpolate,
            resolve_paths: true,
            home: ctx.home.clone(),
            include_stack: stack,
        };
        let included = load_files(&files, &project_dir, &mut sub, diags);
        let Some(inc_map) = included.as_map() else {
            continue;
        };
        for kind in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(Value::Map(items)) = inc_map.get(kind).map(|n| &n.value) else {
                continue;
            };
            let Some(target) = section(doc, kind) else {
                continue;
            };
            for (k, v) in &items.entries {
                if let Some(existing) = target.key(&k.name) {
                    diags.error(
                        &existing.span,
                        format!(
                            "{kind} `{}` conflicts with the one imported from `{}` at {}",
                            k.name,
                            first.display(),
                            k.span
                        ),
                    );
                    continue;
                }
                target.entries.push((k.clone(), v.clone()));
            }
        }
    }
}
