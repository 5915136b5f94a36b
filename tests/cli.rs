//! The `stack` binary as users run it: output, errors and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn stack(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stack"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("stack runs")
}

fn stack_stdin(dir: &Path, args: &[&str], input: &str) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stack"));
    c.args(args).current_dir(dir).env_clear().env("HOME", dir);
    let o = common::with_input(&mut c, input);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A temporary project directory with the given files.
struct Project(PathBuf);

impl Project {
    fn new(files: &[(&str, &str)]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir()
            .join(format!("stack-cli-test-{}-{n}", std::process::id()))
            .join("myapp");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Project(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn run(&self, args: &[&str]) -> Output {
        stack(&self.0, args, &[])
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

const BROKEN: &str = "services:
  web:
    image: nginx
    imag: typo
    ports:
      - \"80:80:80:80/tcp\"
    depends_on: [db, cahce]
    networks: [frontend]
    restart: ${RESTART:?must be set}
  db:
    environment:
      - A=1
    depends_on: [web]
  cache:
    image: redis
    healthcheck:
      interval: [1]
networks:
  front: {}
";

#[test]
fn a_broken_file_reports_every_problem_with_positions() {
    let p = Project::new(&[("compose.yaml", BROKEN)]);
    let o = p.run(&["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o).replace(&p.path().display().to_string(), "<DIR>");
    insta::assert_snapshot!(err);
}

#[test]
fn invalid_yaml_names_the_position() {
    let p = Project::new(&[("compose.yaml", "services:\n  web:\n    image: [nginx\n")]);
    let o = p.run(&["config"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o).replace(&p.path().display().to_string(), "<DIR>");
    assert!(err.starts_with("<DIR>/compose.yaml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let p = Project::new(&[]);
    let o = p.run(&["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no stack file found"), "{}", stderr(&o));
    let o = p.run(&["-f", "nope.yaml", "config"]);
    assert!(
        stderr(&o).contains("nope.yaml: error: cannot read stack file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn project_name_precedence() {
    let p = Project::new(&[(
        "compose.yaml",
        "name: fromfile\nservices:\n  a:\n    image: x\n",
    )]);
    let name = |o: Output| stdout(&o).lines().next().unwrap_or_default().to_string();
    assert_eq!(name(p.run(&["config"])), "name: fromfile");
    assert_eq!(
        name(stack(
            p.path(),
            &["config"],
            &[("COMPOSE_PROJECT_NAME", "fromenv")]
        )),
        "name: fromenv"
    );
    assert_eq!(
        name(stack(
            p.path(),
            &["-p", "fromflag", "config"],
            &[("COMPOSE_PROJECT_NAME", "fromenv")]
        )),
        "name: fromflag"
    );
    let p = Project::new(&[("compose.yaml", "services:\n  a:\n    image: x\n")]);
    assert_eq!(name(p.run(&["config"])), "name: myapp");
    let p2 = Project::new(&[(
        "compose.yaml",
        "name: ${PROJ:-Bad_Name}\nservices:\n  a:\n    image: x\n",
    )]);
    assert_eq!(
        name(stack(p2.path(), &["config"], &[("PROJ", "fromvar")])),
        "name: fromvar"
    );
    let o = p2.run(&["config"]);
    assert!(
        stderr(&o).contains("invalid project name `Bad_Name`"),
        "{}",
        stderr(&o)
    );
    let o = p.run(&["-p", "Bad Name", "config"]);
    assert!(
        stderr(&o).contains("invalid project name `Bad Name`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn override_file_and_compose_file_variable() {
    let p = Project::new(&[
        (
            "compose.yaml",
            "services:\n  a:\n    image: x\n    environment: [A=1]\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  a:\n    environment: {B: \"2\"}\n",
        ),
        ("other.yaml", "services:\n  b:\n    image: y\n"),
    ]);
    let o = p.run(&["config", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["services"]["a"]["environment"],
        serde_json::json!({"A": "1", "B": "2"})
    );
    let o = stack(
        p.path(),
        &["config", "--services"],
        &[("COMPOSE_FILE", "compose.yaml:other.yaml")],
    );
    assert_eq!(stdout(&o), "a\nb\n");
}

#[test]
fn stdin_and_env_files() {
    let p = Project::new(&[(".env", "TAG=1.0\n"), ("prod.env", "TAG=2.0\n")]);
    let run =
        |args: &[&str]| stack_stdin(p.path(), args, "services:\n  a:\n    image: app:${TAG}\n");
    assert!(run(&["-f", "-", "config"]).contains("image: app:1.0"));
    assert!(run(&["-f", "-", "--env-file", "prod.env", "config"]).contains("image: app:2.0"));
}

#[test]
fn profiles_from_flag_env_and_named_services() {
    let p = Project::new(&[(
        "compose.yaml",
        "services:\n  app:\n    image: x\n  debug:\n    image: y\n    profiles: [dev]\n  tools:\n    image: z\n    profiles: [ops]\n",
    )]);
    assert_eq!(stdout(&p.run(&["config", "--services"])), "app\n");
    assert_eq!(
        stdout(&p.run(&["--profile", "dev", "config", "--services"])),
        "app\ndebug\n"
    );
    assert_eq!(
        stdout(&stack(
            p.path(),
            &["config", "--services"],
            &[("COMPOSE_PROFILES", "dev,ops")]
        )),
        "app\ndebug\ntools\n"
    );
    assert_eq!(
        stdout(&p.run(&["config", "--services", "tools"])),
        "tools\n"
    );
    assert_eq!(stdout(&p.run(&["config", "--profiles"])), "dev\nops\n");
}

#[test]
fn hash_is_stable_and_changes_with_the_config() {
    let p = Project::new(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    environment: [A=1]\n  b:\n    image: y\n",
    )]);
    let first = stdout(&p.run(&["config", "--hash", "*"]));
    assert_eq!(first, stdout(&p.run(&["config", "--hash", "*"])));
    assert_eq!(first.lines().count(), 2);
    // Same meaning, other syntax: same hash.
    std::fs::write(
        p.path().join("compose.yaml"),
        "services:\n  b:\n    image: y\n  a:\n    environment:\n      A: \"1\"\n    image: x\n",
    )
    .unwrap();
    assert_eq!(first, stdout(&p.run(&["config", "--hash", "*"])));
    std::fs::write(
        p.path().join("compose.yaml"),
        "services:\n  a:\n    image: x\n    environment: [A=2]\n  b:\n    image: y\n",
    )
    .unwrap();
    let changed = stdout(&p.run(&["config", "--hash", "*"]));
    assert_ne!(first.lines().next(), changed.lines().next());
    assert_eq!(first.lines().nth(1), changed.lines().nth(1));
}

#[test]
fn variables_show_value_and_source() {
    let p = Project::new(&[
        ("compose.yaml", "services:\n  a:\n    image: ${IMG:-busybox}:${TAG}\n    environment:\n      X: ${FROM_SHELL}\n"),
        (".env", "TAG=1.0\n"),
    ]);
    let o = stack(
        p.path(),
        &["config", "--variables"],
        &[("FROM_SHELL", "yes")],
    );
    let out = stdout(&o).replace(&p.path().display().to_string(), "<DIR>");
    insta::assert_snapshot!(out);
}

#[test]
fn graph_formats() {
    let p = Project::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    depends_on:\n      api: {condition: service_healthy}\n  api:\n    image: y\n    depends_on: [db]\n  db:\n    image: z\n  side:\n    image: w\n    network_mode: service:web\n",
    )]);
    insta::assert_snapshot!("graph_waves", stdout(&p.run(&["graph"])));
    insta::assert_snapshot!("graph_dot", stdout(&p.run(&["graph", "--format", "dot"])));
    insta::assert_snapshot!(
        "graph_mermaid",
        stdout(&p.run(&["graph", "--format", "mermaid"]))
    );
}

#[test]
fn version_and_completions() {
    let p = Project::new(&[]);
    assert!(stdout(&p.run(&["version"])).starts_with("stack version "));
    // The scripts register a function that asks the binary…
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout(&p.run(&["completion", shell]));
        assert!(
            out.contains("COMPLETE") && out.contains("stack"),
            "{shell} completion does not ask stack: {out}"
        );
    }
    // …which answers with the subcommands.
    let asked = stack(
        &p.0,
        &["--", "stack", "gr"],
        &[
            ("COMPLETE", "bash"),
            ("_CLAP_COMPLETE_INDEX", "1"),
            ("_CLAP_COMPLETE_COMP_TYPE", "9"),
            ("_CLAP_COMPLETE_SPACE", "true"),
            ("_CLAP_IFS", "\n"),
        ],
    );
    assert_eq!(stdout(&asked).trim(), "graph", "{}", stderr(&asked));
}

/// Every stack file of the corpus, rendered canonically.
#[test]
fn corpus_snapshots() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "the corpus has {} projects", dirs.len());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let o = stack(&dir, &["config"], &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let out = stdout(&o).replace(&dir.canonicalize().unwrap().display().to_string(), "<DIR>");
        insta::assert_snapshot!(format!("corpus_{name}"), out);
        // What we print loads back to the same project: load(render(p)) == p.
        let again = stack_stdin(
            &dir,
            &["-f", "-", "config", "--no-interpolate"],
            &stdout(&o),
        );
        assert_eq!(stdout(&o), again, "{name}: rendering is not a fixed point");
    }
}

/// Names in errors reach the terminal escaped: a name carrying escape
/// sequences (a title change, a screen clear, a CSI) is printed as
/// `\x1b…`, never as the bytes a terminal would act on.
#[test]
fn names_in_errors_are_printed_escaped() {
    let p = Project::new(&[("compose.yaml", "services:\n  web:\n    image: busybox\n")]);
    let hostile = "\x1b]0;pwned\x07web\x1b[2J\u{9b}1m";
    let raw = |o: &Output| {
        o.stderr
            .iter()
            .any(|b| matches!(b, 0x1b | 0x07) || o.stderr.windows(2).any(|w| w == [0xc2, 0x9b]))
    };
    let o = p.run(&["logs", hostile]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!raw(&o), "{:?}", stderr(&o));
    assert!(
        stderr(&o).contains("no such service: `\\x1b]0;pwned\\x07web\\x1b[2J\\u{9b}1m`"),
        "{}",
        stderr(&o)
    );
    // container commands, from the store here.
    let root = p.path().join("root");
    let root = root.to_str().unwrap();
    let o = stack(
        p.path(),
        &["container", "logs", hostile],
        &[("STACK_ROOT", root)],
    );
    assert!(!o.status.success());
    assert!(!raw(&o), "{:?}", stderr(&o));
    assert!(
        stderr(&o).contains("\\x1b]0;pwned\\x07web"),
        "{}",
        stderr(&o)
    );
    // And the loader's diagnostics: a key with an escape in the file.
    let p = Project::new(&[(
        "compose.yaml",
        "services:\n  \"web\\e[31m\":\n    image: busybox\n",
    )]);
    let o = p.run(&["config"]);
    assert!(!o.status.success());
    assert!(!raw(&o), "{:?}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("web\\x1b[31m") || err.contains("web\\u{1b}[31m"),
        "{err}"
    );
}

#[test]
fn swarm_and_context_commands_say_they_do_not_apply() {
    let p = Project::new(&[]);
    for (args, what) in [
        (&["swarm", "init"][..], "swarm mode"),
        (
            &["-p", "x", "service", "ls", "--filter", "a=b"][..],
            "`stack service`",
        ),
        (&["context", "use", "remote"][..], "reach other engines"),
    ] {
        let o = p.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("kube generate"), "{}", stderr(&o));
    }
    // A mistyped command still gets the nearest ones.
    let o = p.run(&["statr"]);
    assert!(stderr(&o).contains("'start'"), "{}", stderr(&o));
}

#[test]
fn resources_no_service_uses_are_dropped_unless_all_resources() {
    let p = Project::new(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    network_mode: host\n    volumes: [used:/data]\n    configs: [c]\nnetworks:\n  spare: {}\nvolumes:\n  used: {}\n  spare: {}\nconfigs:\n  c: {content: x}\n  spare: {content: y}\nsecrets:\n  spare: {environment: HOME}\n",
    )]);
    let keys = |args: &[&str]| {
        let v: serde_json::Value = serde_json::from_str(&stdout(&p.run(args))).unwrap();
        ["networks", "volumes", "secrets", "configs"]
            .iter()
            .map(|k| {
                let names: Vec<&str> = v[k]
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                format!("{k}: {}", names.join(","))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert_eq!(
        keys(&["config", "--format", "json"]),
        "networks: ; volumes: used; secrets: ; configs: c"
    );
    assert_eq!(
        keys(&["--all-resources", "config", "--format", "json"]),
        "networks: spare; volumes: spare,used; secrets: spare; configs: c,spare"
    );
}
