//! Stack files to a normalized project.
//!
//! The loader finds the stack files of a project, reads its variables,
//! parses, interpolates, merges (`-f`, `extends`, `include`), applies
//! profiles, validates and normalizes, and returns the project with every
//! warning; or every error, each with file:line:col. It reads the files it is
//! given and nothing else: no network, no runtime.

pub mod de;
pub mod diag;
pub mod dotenv;
pub mod env;
mod extends;
mod include;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod node;
pub mod paths;
mod project;
pub mod render;
pub mod schema;
mod syntax;
mod transform;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, LoadError, Severity, Span};
pub use env::{Environment, Source};
pub use project::Loaded;

use diag::Diagnostics;
use load::{Context, SourceFile};
use node::Node;

/// File names looked for, in order of preference, from the working directory upward.
pub const DEFAULT_FILES: [&str; 6] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "stack.yaml",
    "stack.yml",
];

/// Everything a load depends on. Nothing is read from the process: the
/// caller passes the environment and the working directory in.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub working_dir: PathBuf,
    /// `-f` files; `-` reads `stdin`.
    pub files: Vec<PathBuf>,
    pub stdin: Option<String>,
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file`; when empty, the project directory's `.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// Services named on the command line: they are enabled whatever their profiles.
    pub services: Vec<String>,
    /// The shell's variables.
    pub shell: Vec<(String, String)>,
    pub home: Option<PathBuf>,
    pub no_interpolate: bool,
    /// No defaults, no implicit networks or dependencies (paths are still
    /// resolved, as compose does).
    pub no_normalize: bool,
    /// Relative paths kept as written.
    pub no_path_resolution: bool,
    /// References to undefined services, networks, volumes, secrets and
    /// configs are not errors.
    pub no_consistency: bool,
    /// `env_file` and bare `KEY` entries not resolved into `environment`.
    pub no_env_resolution: bool,
    /// Drop the networks, volumes, secrets and configs no service uses
    /// (compose's default; its `--all-resources` keeps them).
    pub only_used_resources: bool,
}

fn stdin_name() -> PathBuf {
    PathBuf::from("-")
}

/// Finds the default stack file from `dir` upward, and its override file.
pub fn discover(dir: &Path) -> Option<(Vec<PathBuf>, Vec<String>)> {
    let mut warnings = Vec::new();
    for d in dir.ancestors() {
        let found: Vec<&str> = DEFAULT_FILES
            .iter()
            .copied()
            .filter(|f| d.join(f).is_file())
            .collect();
        let Some(first) = found.first() else { continue };
        if found.len() > 1 {
            warnings.push(format!(
                "found multiple config files with supported names: {}; using {first}",
                found
                    .iter()
                    .map(|f| d.join(f).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut files = vec![d.join(first)];
        let stem = first.rsplit_once('.').map(|(s, _)| s).unwrap_or(first);
        for ext in ["yaml", "yml"] {
            let o = d.join(format!("{stem}.override.{ext}"));
            if o.is_file() {
                files.push(o);
                break;
            }
        }
        return Some((files, warnings));
    }
    None
}

fn shell_var<'a>(opts: &'a Options, name: &str) -> Option<&'a str> {
    opts.shell
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Splits a `COMPOSE_FILE` value.
fn split_file_list(value: &str, sep: Option<&str>) -> Vec<PathBuf> {
    let sep = sep.unwrap_or(":");
    value
        .split(sep)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Loads a project.
/// A volume in the short syntax (`./src:/app:ro`, `data:/data`, `/tmp`)
/// in the long form, a relative source made absolute against `dir`: what
/// `run -v` adds to a service.
pub fn volume_mount(spec: &str, dir: &Path) -> Result<stack_model::VolumeMount, String> {
    let span = Span::new(&std::sync::Arc::from("--volume"), 1, 1);
    let node = syntax::volume(spec, &span).map_err(|d| d.message)?;
    let mut m: stack_model::VolumeMount = de::from_node(&node).map_err(|e| e.message)?;
    if m.kind == "bind" {
        if let Some(src) = m.source.as_mut() {
            if !src.starts_with('/') {
                *src = paths::clean(&dir.join(src.as_str())).display().to_string();
            }
        }
    }
    Ok(m)
}

pub fn load(opts: &Options) -> Result<Loaded, LoadError> {
    let mut diags = Diagnostics::default();
    let fail = |diags: Diagnostics| LoadError {
        diagnostics: diags.into_vec(),
    };
    let cli = Span::whole("command line");

    // Which files: -f, else COMPOSE_FILE, else discovery (COMPOSE_FILE may also come from `.env`).
    let sep = shell_var(opts, "COMPOSE_PATH_SEPARATOR");
    let abs = |p: &Path| {
        if p == stdin_name() {
            p.to_path_buf()
        } else {
            paths::clean(&opts.working_dir.join(p))
        }
    };
    let mut from_discovery = false;
    let mut files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|p| abs(p)).collect()
    } else if let Some(v) = shell_var(opts, "COMPOSE_FILE") {
        split_file_list(v, sep).iter().map(|p| abs(p)).collect()
    } else {
        let start = opts
            .project_directory
            .as_ref()
            .map(|p| abs(p))
            .unwrap_or_else(|| opts.working_dir.clone());
        match discover(&start) {
            Some((f, warnings)) => {
                warnings.iter().for_each(|w| diags.warning(&cli, w.clone()));
                from_discovery = true;
                f
            }
            None => {
                diags.push(
                    Diagnostic::error(
                        &Span::whole(&start.display().to_string()),
                        "no stack file found in this directory or any parent",
                    )
                    .with_hint(format!("create one of: {}", DEFAULT_FILES.join(", "))),
                );
                return Err(fail(diags));
            }
        }
    };
    let project_dir_of = |files: &[PathBuf]| {
        opts.project_directory
            .as_ref()
            .map(|p| abs(p))
            .unwrap_or_else(|| match files.first() {
                Some(f) if *f != stdin_name() => {
                    f.parent().map(Path::to_path_buf).unwrap_or_default()
                }
                _ => opts.working_dir.clone(),
            })
    };
    let mut project_dir = project_dir_of(&files);

    // Variables: the shell over the env files.
    let mut env = Environment::from_shell(opts.shell.iter().cloned());
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let dflt = project_dir.join(".env");
        if dflt.is_file() {
            vec![dflt]
        } else {
            vec![]
        }
    } else {
        opts.env_files.iter().map(|p| abs(p)).collect()
    };
    for f in &env_files {
        if let Err(d) = env.load_file(f) {
            diags.push(d);
        }
    }
    if from_discovery {
        if let Some(v) = env
            .get("COMPOSE_FILE")
            .filter(|_| !matches!(env.source("COMPOSE_FILE"), Some(Source::Shell)))
        {
            let sep = env.get("COMPOSE_PATH_SEPARATOR").map(str::to_string);
            files = split_file_list(v, sep.as_deref())
                .iter()
                .map(|p| paths::clean(&project_dir.join(p)))
                .collect();
            project_dir = project_dir_of(&files);
        }
    }

    // Read and parse every file once.
    let mut sources = Vec::new();
    for f in &files {
        if *f == stdin_name() {
            sources.push(SourceFile {
                path: stdin_name(),
                text: opts.stdin.clone().unwrap_or_default(),
            });
            continue;
        }
        match load::read_file(f) {
            Ok(s) => sources.push(s),
            Err(d) => diags.push(d),
        }
    }
    if diags.has_errors() {
        return Err(fail(diags));
    }
    let parsed: Vec<(&SourceFile, Vec<Node>)> = sources
        .iter()
        .map(|f| (f, load::parse_file(f, &mut diags)))
        .collect();
    let mut variables = Vec::new();
    for doc in parsed.iter().flat_map(|(_, d)| d) {
        for v in interpolate::node_variables(doc) {
            if !variables
                .iter()
                .any(|(n, ..): &(String, Option<String>, bool, Span)| *n == v.0)
            {
                variables.push(v);
            }
        }
    }

    // The project name is known before interpolation, and visible to it as COMPOSE_PROJECT_NAME.
    let name = project::resolve_name(opts, &env, &parsed, &project_dir, &mut diags);
    if let Some(n) = &name {
        if env.get("COMPOSE_PROJECT_NAME").is_none() {
            env = env.with("COMPOSE_PROJECT_NAME", n);
        }
    }

    let mut ctx = Context {
        env: &env,
        interpolate: !opts.no_interpolate,
        resolve_paths: !opts.no_path_resolution,
        home: opts.home.clone(),
        include_stack: files.clone(),
    };
    let root = load::load_parsed(parsed, &project_dir, &mut ctx, &mut diags);
    let name = name.unwrap_or_default();
    let mut loaded = project::build(root, name, &project_dir, &env, opts, files, diags)?;
    loaded.variables = variables;
    Ok(loaded)
}
