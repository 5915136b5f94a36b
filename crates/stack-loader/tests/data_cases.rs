//! Data-driven cases: interpolation, the .env dialect, merging and
//! per-attribute loading, each a YAML file under `tests/data/`.
//!
//! Every file runs as one test that reports all failing cases at once. A case
//! may carry `known_gap: "why"`: it documents behaviour we do not match yet,
//! and the harness checks that it still fails, so fixing it forces the marker
//! off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

fn data(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the cases, then fails listing every case whose outcome was wrong.
fn run<C>(
    file: &str,
    cases: Vec<C>,
    name: impl Fn(&C) -> String,
    gap: impl Fn(&C) -> Option<String>,
    check: impl Fn(&C) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    let total = cases.len();
    for c in &cases {
        let outcome = check(c);
        match (gap(c), outcome) {
            (None, Err(e)) => failures.push(format!("- {}: {e}", name(c))),
            (Some(why), Ok(())) => failures.push(format!(
                "- {}: passes now, remove its known_gap ({why})",
                name(c)
            )),
            _ => {}
        }
    }
    assert!(total > 0, "{file} has no cases");
    assert!(
        failures.is_empty(),
        "{file}: {} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k| env.get(k).cloned()
}

#[derive(Deserialize)]
struct InterpCase {
    name: String,
    template: Option<String>,
    document: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    expect: Option<String>,
    expect_document: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warn: Vec<String>,
    known_gap: Option<String>,
}

#[test]
fn interpolation() {
    let cases: Vec<InterpCase> = serde_yaml::from_str(&data("interpolation.yaml")).unwrap();
    run(
        "interpolation.yaml",
        cases,
        |c| c.name.clone(),
        |c| c.known_gap.clone(),
        |c| {
            let env = lookup(&c.env);
            if let Some(t) = &c.template {
                let mut unset = Vec::new();
                let got = stack_loader::interpolate::substitute(t, &env, &mut unset);
                match (&c.expect, &c.error, got) {
                    (Some(want), _, Ok(got)) if *want == got => {}
                    (_, Some(err), Err(e)) if e.to_string().contains(err.as_str()) => {}
                    (_, _, got) => {
                        return Err(format!(
                            "`{t}` gave {got:?}, want {:?} / error {:?}",
                            c.expect, c.error
                        ))
                    }
                }
                for w in &c.warn {
                    if !unset.contains(w) {
                        return Err(format!("`{w}` not reported as unset (got {unset:?})"));
                    }
                }
                return Ok(());
            }
            let doc = c
                .document
                .as_deref()
                .ok_or("case has neither template nor document")?;
            let file = std::sync::Arc::from("doc.yaml");
            let mut node = stack_loader::node::parse(&file, doc)
                .map_err(|d| d.to_string())?
                .remove(0);
            let mut diags = stack_loader::diag::Diagnostics::default();
            stack_loader::interpolate::interpolate_node(&mut node, &env, &mut diags);
            if let Some(err) = &c.error {
                let found = diags.errors().any(|d| d.message.contains(err.as_str()));
                return if found {
                    Ok(())
                } else {
                    Err(format!(
                        "no error containing `{err}`: {:?}",
                        diags.into_vec()
                    ))
                };
            }
            let want = stack_loader::node::parse(
                &file,
                c.expect_document.as_deref().ok_or("no expect_document")?,
            )
            .map_err(|d| d.to_string())?
            .remove(0);
            if strip_spans(&node) != strip_spans(&want) {
                return Err(format!("got {:?}", strip_spans(&node)));
            }
            Ok(())
        },
    );
}

/// The tree as plain YAML values (positions and quoting styles aside, scalar texts kept).
fn strip_spans(n: &stack_loader::node::Node) -> Value {
    use stack_loader::node::Value as V;
    match &n.value {
        V::Null => Value::Null,
        V::Scalar(s) => Value::String(s.text.clone()),
        V::Seq(items) => Value::Sequence(items.iter().map(strip_spans).collect()),
        V::Map(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (Value::String(k.name.clone()), strip_spans(v)))
                .collect(),
        ),
    }
}

#[derive(Deserialize)]
struct DotenvCase {
    name: String,
    input: String,
    #[serde(default)]
    lookup: BTreeMap<String, String>,
    expect: Option<BTreeMap<String, String>>,
    #[serde(default)]
    absent: Vec<String>,
    error: Option<String>,
    known_gap: Option<String>,
}

#[test]
fn dotenv() {
    let cases: Vec<DotenvCase> = serde_yaml::from_str(&data("dotenv.yaml")).unwrap();
    run(
        "dotenv.yaml",
        cases,
        |c| c.name.clone(),
        |c| c.known_gap.clone(),
        |c| {
            let got = stack_loader::dotenv::parse(&c.input, &lookup(&c.lookup));
            match (&c.expect, &c.error, got) {
                (Some(want), _, Ok(got)) => {
                    let got: BTreeMap<String, String> = got.into_iter().collect();
                    for (k, v) in want {
                        if got.get(k) != Some(v) {
                            return Err(format!(
                                "`{k}`: got {:?}, want {v:?} (all: {got:?})",
                                got.get(k)
                            ));
                        }
                    }
                    for k in &c.absent {
                        if got.contains_key(k) {
                            return Err(format!("`{k}` should be absent"));
                        }
                    }
                    Ok(())
                }
                (_, Some(err), Err(e)) if e.to_string().contains(err.as_str()) => Ok(()),
                (_, _, got) => Err(format!(
                    "got {got:?}, want {:?} / error {:?}",
                    c.expect, c.error
                )),
            }
        },
    );
}

/// Writes `files` into a fresh directory.
fn project_dir(files: &BTreeMap<String, String>) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn options(
    dir: &Path,
    files: Vec<PathBuf>,
    env: &BTreeMap<String, String>,
) -> stack_loader::Options {
    stack_loader::Options {
        working_dir: dir.to_path_buf(),
        files,
        project_directory: Some(dir.to_path_buf()),
        project_name: Some("test".into()),
        shell: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        home: Some(dir.join("home")),
        ..Default::default()
    }
}

fn render(opts: &stack_loader::Options) -> Result<String, String> {
    let loaded = stack_loader::load(opts).map_err(|e| e.to_string())?;
    stack_loader::render::to_yaml(&loaded.project).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct MergeCase {
    name: String,
    files: BTreeMap<String, String>,
    expect: Option<String>,
    error: Option<String>,
    known_gap: Option<String>,
}

#[test]
fn merge() {
    let cases: Vec<MergeCase> = serde_yaml::from_str(&data("merge.yaml")).unwrap();
    run(
        "merge.yaml",
        cases,
        |c| c.name.clone(),
        |c| c.known_gap.clone(),
        |c| {
            let dir = project_dir(&c.files);
            let names: Vec<PathBuf> = c
                .files
                .keys()
                .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
                .filter(|n| !n.contains('/'))
                .map(|n| dir.path().join(n))
                .collect();
            let got = render(&options(dir.path(), order_files(names), &BTreeMap::new()));
            if let Some(err) = &c.error {
                return match got {
                    Err(e) if e.contains(err.as_str()) => Ok(()),
                    other => Err(format!("want error `{err}`, got {other:?}")),
                };
            }
            let got = got?;
            let expect_path = dir.path().join("__expected__.yaml");
            std::fs::write(&expect_path, c.expect.as_deref().ok_or("no expect")?).unwrap();
            let want = render(&options(dir.path(), vec![expect_path], &BTreeMap::new()))
                .map_err(|e| format!("expectation does not load: {e}"))?;
            if got != want {
                return Err(format!("got:\n{got}\nwant:\n{want}"));
            }
            Ok(())
        },
    );
}

/// Top-level files in load order: `compose.yaml` first, overrides after, others by name.
fn order_files(mut names: Vec<PathBuf>) -> Vec<PathBuf> {
    names.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        let rank =
            if n.starts_with("compose.") || n.starts_with("docker-compose.") || n == "base.yaml" {
                if n.contains("override") {
                    1
                } else {
                    0
                }
            } else {
                2
            };
        (rank, n)
    });
    names
}

#[derive(Deserialize)]
struct AttrCase {
    name: String,
    yaml: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    expect: Option<String>,
    error: Option<String>,
    warning: Option<String>,
    known_gap: Option<String>,
}

/// Whether `want` is contained in `got`: mappings by key, sequences element by element.
fn subset(got: &Value, want: &Value, at: &str) -> Result<(), String> {
    match (got, want) {
        (Value::Mapping(g), Value::Mapping(w)) => {
            for (k, wv) in w {
                let key = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                match g.get(k) {
                    Some(gv) => subset(gv, wv, &format!("{at}.{key}"))?,
                    None => return Err(format!("{at}.{key} missing")),
                }
            }
            Ok(())
        }
        (Value::Sequence(g), Value::Sequence(w)) => {
            if g.len() != w.len() {
                return Err(format!("{at}: {} items, want {} ({g:?})", g.len(), w.len()));
            }
            g.iter()
                .zip(w)
                .enumerate()
                .try_for_each(|(i, (a, b))| subset(a, b, &format!("{at}[{i}]")))
        }
        (g, w) if g == w => Ok(()),
        (g, w) => Err(format!("{at}: got {g:?}, want {w:?}")),
    }
}

#[test]
fn attributes() {
    let cases: Vec<AttrCase> = serde_yaml::from_str(&data("attributes.yaml")).unwrap();
    run(
        "attributes.yaml",
        cases,
        |c| c.name.clone(),
        |c| c.known_gap.clone(),
        |c| {
            let mut files = c.files.clone();
            files.insert("compose.yaml".into(), c.yaml.clone());
            let dir = project_dir(&files);
            let opts = options(dir.path(), vec![dir.path().join("compose.yaml")], &c.env);
            let loaded = stack_loader::load(&opts);
            if let Some(err) = &c.error {
                return match loaded {
                    Err(e) if e.to_string().contains(err.as_str()) => Ok(()),
                    Err(e) => Err(format!("want error `{err}`, got error: {e}")),
                    Ok(_) => Err(format!("want error `{err}`, but it loaded")),
                };
            }
            let loaded = loaded.map_err(|e| e.to_string())?;
            if let Some(w) = &c.warning {
                if !loaded
                    .warnings
                    .iter()
                    .any(|d| d.message.contains(w.as_str()))
                {
                    return Err(format!(
                        "no warning containing `{w}`: {:?}",
                        loaded.warnings
                    ));
                }
            }
            let Some(expect) = &c.expect else {
                return Ok(());
            };
            let text = stack_loader::render::to_yaml(&loaded.project).map_err(|e| e.to_string())?;
            let got: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
            let expect = expect
                .replace("$PROJECT_DIR", &dir.path().display().to_string())
                .replace("$HOME_DIR", &dir.path().join("home").display().to_string());
            let want: Value =
                serde_yaml::from_str(&expect).map_err(|e| format!("bad expectation: {e}"))?;
            subset(&got, &want, "").map_err(|e| format!("{e}\nfull output:\n{text}"))
        },
    );
}

mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "stack-loader-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p.canonicalize().unwrap())
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
