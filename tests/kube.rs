//! `stack kube generate` end to end: the examples and every corpus project
//! as manifests (YAML files, JSON files, one stream) that validate strictly
//! against Kubernetes' own schemas (`kubernetes-validate` from PyPI, in
//! `target/docker-venv`, as `.ci/run` installs it), the Helm chart rendered
//! with its values and validated the same way, snapshots of representative
//! output, and the command's behaviour.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validator() -> PathBuf {
    let v = std::env::var_os("STACK_KUBE_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/docker-venv/bin/kubernetes-validate"));
    assert!(
        v.exists(),
        "{} is missing: python3 -m venv target/docker-venv && target/docker-venv/bin/pip install kubernetes-validate (.ci/run does)",
        v.display()
    );
    v
}

/// Every file validates strictly (unknown fields refused) against the
/// schemas of the newest Kubernetes the validator knows.
fn validate(files: &[PathBuf]) {
    assert!(!files.is_empty());
    let o = Command::new(validator())
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !out.contains("ERROR"), "{out}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// `stack kube generate ARGS` in the project directory `dir`: stdout, stderr.
fn generate(e: &Env, dir: &Path, args: &[&str]) -> (String, String) {
    let o = e
        .command(&[&["kube", "generate"], args].concat())
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{} {args:?}: {err}", dir.display());
    (String::from_utf8_lossy(&o.stdout).to_string(), err)
}

fn projects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["hello", "notes", "shop"]
        .iter()
        .map(|e| repo().join("examples").join(e))
        .collect();
    let mut corpus: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    corpus.sort();
    v.extend(corpus);
    v
}

/// Renders the chart's templates with its values, for the constructs the
/// chart uses (no Helm here: see ARCHITECTURE.md).
fn render_chart(chart: &Path, out: &Path) {
    let values: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let service = |line: &str| -> serde_json::Value {
        let name = line.split("\"").nth(1).unwrap();
        values["services"][name].clone()
    };
    std::fs::create_dir_all(out).unwrap();
    for t in files_in(&chart.join("templates")) {
        let text = std::fs::read_to_string(&t).unwrap();
        let mut rendered = String::new();
        for line in text.lines() {
            if let Some((_, rest)) = line.split_once("{{- toYaml") {
                let n: usize = rest
                    .split("nindent")
                    .nth(1)
                    .unwrap()
                    .trim()
                    .trim_end_matches("}}")
                    .trim()
                    .parse()
                    .unwrap();
                let yaml = serde_yaml::to_string(&service(line)["resources"]).unwrap();
                for l in yaml.lines() {
                    rendered.push_str(&format!("{}{l}\n", " ".repeat(n)));
                }
                continue;
            }
            let line = if line.contains(".image | quote }}") {
                let start = line.find("{{").unwrap();
                format!("{}{}", &line[..start], service(line)["image"])
            } else if line.contains(".replicas }}") {
                let start = line.find("{{").unwrap();
                format!("{}{}", &line[..start], service(line)["replicas"])
            } else {
                line.replace("{{ .Release.Namespace }}", "default")
            };
            assert!(!line.contains("{{"), "{}: {line}", t.display());
            rendered.push_str(&line);
            rendered.push('\n');
        }
        std::fs::write(out.join(t.file_name().unwrap()), rendered).unwrap();
    }
}

/// A project with every workload kind and most keys the mapping reads.
const KINDS: &str = r#"
name: kinds
services:
  db:
    image: postgres:16
    scale: 2
    volumes: [data:/var/lib/postgresql/data]
    expose: ["5432"]
    healthcheck: {test: ["CMD", "pg_isready"], interval: 5s, start_period: 20s}
  agent:
    image: agent:1
    deploy: {mode: global, resources: {limits: {cpus: "0.25", memory: 64m}}}
    privileged: true
  migrate:
    image: app:1
    command: ["migrate"]
    restart: on-failure:3
  app:
    image: app:1
    entrypoint: ["/init"]
    user: "1000:1000"
    read_only: true
    init: true
    cap_drop: [ALL]
    tmpfs: ["/tmp:size=16m"]
    shm_size: 64m
    stop_grace_period: 30s
    hostname: app
    extra_hosts: ["legacy.local=10.1.2.3"]
    env_file: app.env
    environment: {DB: "postgres://db:5432/x"}
    configs: [settings]
    secrets: [token]
    volumes: ["./nginx.conf:/etc/nginx.conf:ro"]
    ports: ["8080:80", "53:53/udp"]
    x-stack-probe: {http: {port: 80, path: /health}}
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    networks: {front: {aliases: [www]}, back: {}}
networks:
  front: {}
  back: {internal: true}
volumes:
  data: {x-kubernetes: {size: 5Gi}}
configs:
  settings: {content: "debug = false"}
secrets:
  token: {file: ./token.txt}
"#;

#[test]
fn every_example_and_corpus_project_validates_strictly() {
    let e = Env::new("kube", "validate");
    let kinds = e.dir.join("kinds");
    std::fs::create_dir_all(&kinds).unwrap();
    std::fs::write(kinds.join("compose.yaml"), KINDS).unwrap();
    std::fs::write(kinds.join("app.env"), "LEVEL=info\n").unwrap();
    std::fs::write(kinds.join("nginx.conf"), "events {}\n").unwrap();
    std::fs::write(kinds.join("token.txt"), "s3cret").unwrap();
    let mut all = Vec::new();
    for p in projects().into_iter().chain([kinds]) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let yaml_dir = e.dir.join(format!("{name}-yaml"));
        let json_dir = e.dir.join(format!("{name}-json"));
        let chart = e.dir.join(format!("{name}-chart"));
        let (stdout, _) = generate(&e, &p, &["-o", yaml_dir.to_str().unwrap()]);
        assert_eq!(stdout, "", "-o writes files, not standard output");
        generate(
            &e,
            &p,
            &[
                "-o",
                json_dir.to_str().unwrap(),
                "--format",
                "json",
                "--namespace",
                "team-a",
                "--network-policies",
                "--publish-as",
                "nodeport",
            ],
        );
        generate(&e, &p, &["--chart", chart.to_str().unwrap()]);
        render_chart(&chart, &e.dir.join(format!("{name}-rendered")));
        // One stream: as many documents as files.
        let (stream, _) = generate(&e, &p, &[]);
        let docs = serde_yaml::Deserializer::from_str(&stream).count();
        assert_eq!(docs, files_in(&yaml_dir).len(), "{name}");
        // JSON: a List of the same objects.
        let (list, _) = generate(&e, &p, &["--format", "json"]);
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().unwrap().len(), docs);
        // Every name is a DNS-1035 label.
        for f in files_in(&json_dir) {
            let o: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            let n = o["metadata"]["name"].as_str().unwrap();
            assert_eq!(stack_kube::names::label(n), n, "{}", f.display());
            if o["kind"] != "Namespace" {
                assert_eq!(o["metadata"]["namespace"], "team-a", "{}", f.display());
            }
        }
        for d in ["yaml", "json", "rendered"] {
            all.extend(files_in(&e.dir.join(format!("{name}-{d}"))));
        }
    }
    // Every kind of object the mapping makes went through the schemas.
    let kinds: std::collections::BTreeSet<String> = all
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
        .map(|f| {
            let o: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            o["kind"].as_str().unwrap().to_string()
        })
        .collect();
    for k in [
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "Service",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.contains(k), "no {k} among {kinds:?}");
    }
    validate(&all);
}

/// The validator refuses what Kubernetes refuses: a test of the test.
#[test]
fn the_validator_refuses_a_broken_manifest() {
    let e = Env::new("kube", "refused");
    let f = e.dir.join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: \"no\"\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: x, image: x, args: [redis, \"--appendonly\", no]}]}\n",
    )
    .unwrap();
    let o = Command::new(validator())
        .args(["--strict", "--quiet"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{o:?}");
}

/// Representative output, whole: a change shows in review.
#[test]
fn snapshots_of_representative_projects() {
    let e = Env::new("kube", "snapshots");
    for (name, args) in [
        ("shop", vec![]),
        ("proxy", vec!["--network-policies", "--namespace", "edge"]),
        ("django", vec![]),
    ] {
        let dir = if name == "shop" {
            repo().join("examples/shop")
        } else {
            repo().join("tests/corpus").join(name)
        };
        let (out, err) = generate(&e, &dir, &args);
        let root = repo().canonicalize().unwrap();
        let err = err.replace(root.to_str().unwrap(), "<repo>");
        insta::assert_snapshot!(format!("kube_{name}"), out);
        insta::assert_snapshot!(format!("kube_{name}_warnings"), err);
    }
}

#[test]
fn services_named_bring_their_dependencies_and_unknown_ones_are_refused() {
    let e = Env::new("kube", "select");
    let shop = repo().join("examples/shop");
    let (out, _) = generate(&e, &shop, &["web"]);
    let kinds: BTreeMap<String, String> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| {
            let v = <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap();
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(_, k)| k == "Deployment")
        .collect();
    assert_eq!(
        kinds.keys().collect::<Vec<_>>(),
        ["api", "cache", "db", "web"]
    );
    let o = e
        .command(&["kube", "generate", "nosuch"])
        .current_dir(&shop)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such service: `nosuch`"),
        "{o:?}"
    );
}
