//! From files on disk to one merged, canonical tree.
//!
//! Per file, as compose-go does it: parse, interpolate (before merging, with
//! the project's variables), validate keys, apply `include`, canonical long
//! syntax, `extends`, relative paths made absolute; then merge into the
//! files before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::env::Environment;
use crate::node::{Key, Map, Node, Value};

/// One stack file: its path (for positions and relative paths) and text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// What the per-file steps need to know.
pub struct Context<'a> {
    pub env: &'a Environment,
    pub interpolate: bool,
    pub resolve_paths: bool,
    pub home: Option<PathBuf>,
    /// Files being included, outermost first, to report include cycles.
    pub include_stack: Vec<PathBuf>,
}

pub fn read_file(path: &Path) -> Result<SourceFile, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error(
            &Span::whole(&path.display().to_string()),
            format!("cannot read stack file: {e}"),
        )
    })?;
    Ok(SourceFile {
        path: path.to_path_buf(),
        text,
    })
}

/// Loads the files of one project into one merged tree. `project_dir` anchors
/// relative paths.
pub fn load_files(
    files: &[SourceFile],
    project_dir: &Path,
    ctx: &mut Context,
    diags: &mut Diagnostics,
) -> Node {
    let parsed: Vec<(&SourceFile, Vec<Node>)> =
        files.iter().map(|f| (f, parse_file(f, diags))).collect();
    load_parsed(parsed, project_dir, ctx, diags)
}

/// Like `load_files`, for files parsed already.
pub fn load_parsed(
    files: Vec<(&SourceFile, Vec<Node>)>,
    project_dir: &Path,
    ctx: &mut Context,
    diags: &mut Diagnostics,
) -> Node {
    let mut merged: Option<Node> = None;
    for (file, docs) in files {
        for mut doc in docs {
            process(&mut doc, file, project_dir, ctx, diags);
            merged = Some(match merged {
                None => {
                    crate::merge::strip_tags(&mut doc);
                    doc
                }
                Some(base) => match crate::merge::merge(base.clone(), doc, &mut Vec::new()) {
                    Ok(m) => m,
                    Err(d) => {
                        diags.push(d);
                        base
                    }
                },
            });
        }
    }
    let mut root = merged.unwrap_or_else(|| Node::map(Map::default(), Span::whole("")));
    crate::merge::strip_tags(&mut root);
    crate::merge::enforce_unicity(&mut root);
    root
}

pub fn parse_file(file: &SourceFile, diags: &mut Diagnostics) -> Vec<Node> {
    let name: Arc<str> = Arc::from(file.path.display().to_string());
    match crate::node::parse(&name, &file.text) {
        Ok(docs) => {
            let mut out = Vec::new();
            for d in docs {
                if d.is_null() {
                    continue;
                }
                if d.as_map().is_none() {
                    diags.error(&d.span, "top-level object must be a mapping");
                    continue;
                }
                out.push(d);
            }
            if out.is_empty() {
                diags.error(&Span::whole(&name), "empty stack file");
            }
            out
        }
        Err(d) => {
            diags.push(d);
            Vec::new()
        }
    }
}

/// The per-file steps, in place.
fn process(
    doc: &mut Node,
    file: &SourceFile,
    project_dir: &Path,
    ctx: &mut Context,
    diags: &mut Diagnostics,
) {
    if ctx.interpolate {
        let lookup = ctx.env.lookup();
        crate::interpolate::interpolate_node(doc, &lookup, diags);
    }
    crate::schema::validate(doc, diags);
    if let Some(m) = doc.as_map_mut() {
        if let Some(v) = m.key("version").cloned() {
            diags.warning(
                &v.span,
                "the attribute `version` is obsolete, it will be ignored",
            );
            m.remove("version");
        }
    }
    let file_dir = file
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| project_dir.to_path_buf());
    crate::include::apply(doc, &file_dir, ctx, diags);
    crate::transform::canonical(doc, diags);
    crate::extends::apply(doc, &file.path, ctx, diags);
    if ctx.resolve_paths {
        crate::paths::resolve(doc, project_dir, ctx.home.as_deref());
    }
}

/// Inserts or replaces a key of a mapping node.
pub fn set(map: &mut Map, name: &str, value: Node) {
    let span = value.span.clone();
    map.insert(
        Key {
            name: name.to_string(),
            span,
        },
        value,
    );
}

/// The mapping under a top-level section, created when absent.
pub fn section<'a>(root: &'a mut Node, name: &str) -> Option<&'a mut Map> {
    let span = root.span.clone();
    let m = root.as_map_mut()?;
    if m.get(name).is_none() {
        set(m, name, Node::map(Map::default(), span));
    }
    match m.get_mut(name).map(|n| &mut n.value) {
        Some(Value::Map(s)) => Some(s),
        _ => None,
    }
}
