//! Repository rules, checked against `cargo metadata` and the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every package reachable from `name` through normal (non-dev) dependencies.
fn closure(meta: &serde_json::Value, name: &str) -> BTreeSet<String> {
    let packages: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let by_id: BTreeMap<&str, &serde_json::Value> = nodes
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = packages
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(id, _)| id.clone())
        .expect("package exists");
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in by_id[id.as_str()]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap().to_string());
            }
        }
    }
    seen.iter().map(|id| packages[id].clone()).collect()
}

/// The crates that are functions of their inputs.
const PURE: [&str; 6] = [
    "stack-model",
    "stack-loader",
    "stack-graph",
    "stack-plan",
    "stack-seccomp",
    "stack-kube",
];

#[test]
fn pure_crates_use_neither_tokio_nor_nix() {
    let meta = metadata();
    for krate in PURE {
        let deps = closure(&meta, krate);
        for banned in ["tokio", "nix", "hyper", "mio"] {
            assert!(!deps.contains(banned), "{krate} depends on {banned}");
        }
    }
}

/// The API is a seam: both sides share it, so it knows the model and
/// nothing of how the engine does its work.
#[test]
fn the_api_knows_no_driver() {
    let meta = metadata();
    // Ours and Docker's: protocol only, what they do is the host's.
    for api in ["stack-api", "stack-docker"] {
        let deps = closure(&meta, api);
        for banned in [
            "stack-runtime",
            "stack-net",
            "stack-image",
            "stack-loader",
            "stack-plan",
            "stack-engine",
            "stack-host",
            "nix",
        ] {
            assert!(!deps.contains(banned), "{api} depends on {banned}");
        }
    }
}

/// The engine decides and orders; the host's driver (with the binary) acts.
/// So the engine runs on a fake driver in its tests; and it speaks no HTTP
/// and parses no command line or stack file: it takes the wire's plain
/// types (`stack-wire`).
#[test]
fn the_engine_knows_no_driver() {
    let meta = metadata();
    let deps = closure(&meta, "stack-engine");
    for banned in [
        "stack-runtime",
        "stack-net",
        "stack-image",
        "stack-api",
        "stack-loader",
        "nix",
        "rtnetlink",
        "hyper",
        "clap",
    ] {
        assert!(!deps.contains(banned), "stack-engine depends on {banned}");
    }
}

/// What travels is plain data: the wire's types compile no HTTP stack.
#[test]
fn the_wire_is_plain_data() {
    let meta = metadata();
    let deps = closure(&meta, "stack-wire");
    for banned in ["hyper", "http", "nix", "clap", "stack-loader", "stack-plan"] {
        assert!(!deps.contains(banned), "stack-wire depends on {banned}");
    }
}

#[test]
fn model_depends_on_serde_only() {
    let meta = metadata();
    let deps = closure(&meta, "stack-model");
    let allowed = [
        "stack-model",
        "serde",
        "serde_derive",
        "proc-macro2",
        "quote",
        "syn",
        "unicode-ident",
        "serde_core",
    ];
    let extra: Vec<_> = deps
        .iter()
        .filter(|d| !allowed.contains(&d.as_str()))
        .collect();
    assert!(extra.is_empty(), "stack-model pulls in {extra:?}");
}

#[test]
fn pure_crates_do_not_read_the_process_environment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in PURE {
        for entry in walk(&root.join(krate).join("src")) {
            let text = std::fs::read_to_string(&entry).unwrap();
            for banned in [
                "std::env::var",
                "env::vars()",
                "current_dir()",
                "std::process::",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", entry.display());
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// stack-sys is the floor every crate may stand on: it uses no crate of
/// ours and no runtime.
#[test]
fn sys_depends_on_no_crate_of_ours() {
    let meta = metadata();
    let deps = closure(&meta, "stack-sys");
    let ours: Vec<_> = deps
        .iter()
        .filter(|d| d.starts_with("stack-") && *d != "stack-sys")
        .collect();
    assert!(ours.is_empty(), "stack-sys depends on {ours:?}");
    for banned in ["tokio", "nix", "hyper"] {
        assert!(!deps.contains(banned), "stack-sys depends on {banned}");
    }
}

/// The host crate acts for the engine and the daemon; it parses no
/// command line and knows nothing of the client's terminal.
#[test]
fn the_host_knows_no_command_line() {
    let meta = metadata();
    let deps = closure(&meta, "stack-host");
    for banned in ["clap", "clap_complete", "stack-cli"] {
        assert!(!deps.contains(banned), "stack-host depends on {banned}");
    }
}

/// The CLI is a client: what it does on the host goes through stack-host,
/// and it holds no `unsafe` and no `Driver` of its own.
#[test]
fn the_cli_is_a_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in walk(&src) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for banned in ["unsafe", "impl stack_engine::Driver", "Driver for"] {
            assert!(
                !text.contains(banned),
                "{} holds `{banned}`",
                entry.display()
            );
        }
    }
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack-host/src/driver.rs");
    assert!(std::fs::read_to_string(host)
        .unwrap()
        .contains("impl stack_engine::Driver for Host"));
}

/// The modules of a crate's `src` that each of them names (`crate::m`,
/// `use crate::{m, …}`), by top-level module; the crate root is left out
/// (it declares them all).
fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let module_of = |p: &Path| {
        let rel = p.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let files: Vec<_> = walk(src)
        .into_iter()
        .filter(|p| !matches!(module_of(p).as_str(), "main" | "lib"))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(f);
        let text = std::fs::read_to_string(f).unwrap();
        let mut named = Vec::new();
        for part in text.split("crate::").skip(1) {
            match part.strip_prefix('{') {
                Some(group) => named.extend(
                    group
                        .split('}')
                        .next()
                        .unwrap()
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap().to_string()),
                ),
                None => named.push(
                    part.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap()
                        .to_string(),
                ),
            }
        }
        for to in named {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A circle of modules in `edges`, if there is one.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            return Some(path[i..].to_vec());
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for to in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

/// Files that import each other, round about or straight, cannot be read
/// one at a time: the CLI's and the host's modules form no circle.
#[test]
fn no_module_circles_in_the_cli_or_the_host() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["stack-cli", "stack-host"] {
        let edges = module_edges(&crates.join(krate).join("src"));
        assert!(edges.len() > 3, "{krate}: the modules were not read");
        if let Some(c) = circle(&edges) {
            panic!("{krate}: the modules {c:?} import each other in a circle");
        }
    }
    // The check finds a circle where there is one.
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&edges), Some(vec!["a".to_string(), "b".to_string()]));
}
