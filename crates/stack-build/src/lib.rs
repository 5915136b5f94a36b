//! The image builder: a Dockerfile's stages, the ones the target needs,
//! step by step. RUN runs in the embedded runtime over the stage's layers
//! (no Docker, no BuildKit daemon); COPY and ADD write a fresh directory;
//! each step that changes files is a layer in the image store, named in
//! the build cache by what made it, so an unchanged step is reused.
//!
//! What the host must provide (base images, pulled as asked; the network a
//! RUN joins) comes through [`Sandbox`]; what happens is told through
//! [`Event`]s.

mod cache;
pub mod commit;
mod copy;
mod layer;
pub mod provenance;
mod run;
pub mod sbom;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stack_dockerfile::ignore::Patterns;
use stack_dockerfile::{Command, Copy, Dockerfile, Form, Healthcheck, Instruction, MountKind};
use stack_image::store::{LayerParts, Store};
use stack_image::Image;

pub use cache::{clear as prune_cache, held as cache_held, usage as cache_usage};
pub use view::View;

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The build context: a directory.
    pub context: PathBuf,
    /// The Dockerfile: a path (relative paths from the context).
    pub dockerfile: PathBuf,
    /// Or its text (`-f -`, compose's `dockerfile_inline`).
    pub inline: Option<String>,
    /// `name:tag` names for the result.
    pub tags: Vec<String>,
    /// `--build-arg`.
    pub args: BTreeMap<String, String>,
    /// `--target`: a stage's name (the last stage by default).
    pub target: Option<String>,
    pub no_cache: bool,
    /// Pull base images even when they are here.
    pub pull: bool,
    /// `--cache-from`, compose's `cache_from`: local images whose steps
    /// stand in for missing cache entries.
    pub cache_from: Vec<String>,
    /// `--label`: set on the result.
    pub labels: BTreeMap<String, String>,
    /// `--secret id=..,src=..|env=..`: id to content.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--ssh`: id (`default`) to the agent's socket on the host, for
    /// `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// The network RUN uses unless it says: `default`, `none` or `host`.
    pub network: Option<String>,
    /// RUN's /dev/shm size in bytes (`--shm-size`, compose's `build.shm_size`).
    pub shm_size: Option<u64>,
    /// RUN's resource limits: name (`nofile`), soft, hard (`--ulimit`).
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--add-host`: `name:ip` lines for RUN's /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `--platform`: this host's only.
    pub platform: Option<String>,
    /// Named contexts (`--build-context name=dir`, compose's
    /// `additional_contexts`): a directory, or `docker-image://ref`.
    pub contexts: BTreeMap<String, String>,
    /// RUN's memory limit in bytes (`--memory`).
    pub memory: Option<i64>,
    /// A provenance attestation kept with the image (`--provenance`).
    pub provenance: Option<provenance::Mode>,
    /// An SBOM attestation kept with the image (`--sbom`).
    pub sbom: bool,
}

/// What a RUN's network gives its container.
pub struct Wiring {
    pub netns: PathBuf,
    pub resolv_conf: String,
    pub hosts: Vec<String>,
}

/// The host's part in a build.
pub trait Sandbox: Sync {
    /// A base image (`FROM`, `COPY --from=image`), pulled if it is missing
    /// or `pull` says so.
    fn image(&self, reference: &str, pull: bool) -> anyhow::Result<Image>;
    /// The body of `url` (`ADD https://…`), as the host's HTTP client gets it.
    fn fetch(&self, url: &str) -> anyhow::Result<Vec<u8>>;
    /// Connects a RUN's container to the build network.
    fn connect(&self, id: &str) -> anyhow::Result<Wiring>;
    fn disconnect(&self, id: &str);
}

/// What a build tells as it goes (BuildKit's plain progress: numbered steps).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step begins: `[stage 2/5] RUN apk add curl`.
    Step {
        n: usize,
        title: String,
    },
    /// A line of a RUN's output.
    Line {
        n: usize,
        text: String,
    },
    /// Reused from the cache.
    Cached {
        n: usize,
    },
    Done {
        n: usize,
        seconds: f64,
    },
    Warning(String),
}

/// Changed when what a step makes changes for the same input: the cache
/// of an older builder is then not reused.
const CACHE_VERSION: &str = "stack-build 2";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds `req`'s target stage into `store` and names it. RUN containers
/// live under `runs` (a runtime root of the builder's own).
pub fn build(
    store: &Store,
    runs: &Path,
    req: &Request,
    sandbox: &dyn Sandbox,
    say: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Image> {
    let (name, text) = dockerfile(req)?;
    let df = stack_dockerfile::parse(&text).map_err(|e| anyhow!("{name}: {e}"))?;
    for (line, w) in &df.warnings {
        say(Event::Warning(format!("{name}:{line}: {w}")));
    }
    if let Some(p) = &req.platform {
        let host = format!("linux/{}", stack_image::registry::host_arch());
        if p != &host && p.trim_end_matches("/v8") != host {
            bail!("--platform {p}: stack builds for this host's platform only ({host})");
        }
    }
    let ignore = context_ignore(&req.context, &req.dockerfile)?;
    let target = match &req.target {
        Some(t) => df
            .stage(t)
            .ok_or_else(|| anyhow!("{name}: target stage `{t}` could not be found"))?,
        None => df.stages.len() - 1,
    };
    // Held while the build lives: `sweep` leaves its RUN steps alone.
    let build_id = stack_sys::random_hex(8)?;
    let live = live_lock(runs, &build_id);
    std::fs::create_dir_all(runs.join("locks"))?;
    let _live = stack_sys::lock(&live, true)?;
    let empty = store.tmp_dir("build-empty")?;
    let stages = df.stages.len();
    let started = now();
    let b = Builder {
        store,
        runs,
        req,
        sandbox,
        say,
        file: name,
        escape: df.directives.escape,
        global: global_args(&df, req),
        df,
        ignore,
        empty: empty.clone(),
        slots: (0..stages).map(|_| Mutex::new(None)).collect(),
        building: Mutex::default(),
        steps: Mutex::new(0),
        used: Mutex::default(),
        cache_images: Default::default(),
        build_id,
        bases: Mutex::default(),
    };
    // Builds and prunes exclude each other: nothing a build is making or
    // about to record is collected under it.
    let _store = store.lock_shared()?;
    let result = b
        .acyclic(target)
        .and_then(|()| b.stage(target))
        .and_then(|s| b.finish(s));
    let _ = std::fs::remove_dir_all(&empty);
    let image = result?;
    if req.provenance.is_some() || req.sbom {
        let subjects = provenance::subjects(store, &image, &req.tags)?;
        let mut statements = Vec::new();
        if let Some(mode) = req.provenance {
            let facts = provenance::Facts {
                mode,
                dockerfile: &b.file,
                args: &req.args,
                target: req.target.as_deref(),
                bases: &lock(&b.bases),
                started,
                finished: now(),
            };
            statements.push(provenance::statement(subjects.clone(), &image, facts));
        }
        if req.sbom {
            let found = sbom::packages(store.lower_dirs(&image));
            let name = req.tags.first().unwrap_or(&image.id);
            statements.push(sbom::statement(subjects, name, &found, &now()));
        }
        provenance::attest(store, &image, &statements)?;
    }
    // Those the FROM lines' global ARGs took count as used.
    lock(&b.used).extend(b.df.global_args.iter().map(|a| a.name.clone()));
    let unused: Vec<&String> = req
        .args
        .keys()
        .filter(|k| !lock(&b.used).contains(*k) && !is_predefined(k))
        .collect();
    if !unused.is_empty() {
        say(Event::Warning(format!(
            "one or more build args were not consumed: {}",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(image)
}

/// The Dockerfile `req` builds: its name as messages give it, its text.
pub fn dockerfile(req: &Request) -> anyhow::Result<(String, String)> {
    match &req.inline {
        Some(t) => Ok(("Dockerfile".to_string(), t.clone())),
        None => {
            let p = req.context.join(&req.dockerfile);
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok((req.dockerfile.display().to_string(), t))
        }
    }
}

/// `.dockerignore` of the context, or `<Dockerfile>.dockerignore` beside
/// the Dockerfile, which wins.
fn context_ignore(context: &Path, dockerfile: &Path) -> anyhow::Result<Patterns> {
    let own = context.join(format!("{}.dockerignore", dockerfile.display()));
    for p in [own, context.join(".dockerignore")] {
        if let Ok(text) = std::fs::read_to_string(&p) {
            return Patterns::parse(&text).map_err(|e| anyhow!("{}: {e}", p.display()));
        }
    }
    Ok(Patterns::default())
}

/// ARGs every build has (BuildKit's), and the proxies.
fn predefined() -> Vec<(String, String)> {
    let arch = stack_image::registry::host_arch();
    let platform = format!("linux/{arch}");
    vec![
        ("TARGETPLATFORM".into(), platform.clone()),
        ("TARGETOS".into(), "linux".into()),
        ("TARGETARCH".into(), arch.into()),
        ("TARGETVARIANT".into(), String::new()),
        ("BUILDPLATFORM".into(), platform),
        ("BUILDOS".into(), "linux".into()),
        ("BUILDARCH".into(), arch.into()),
        ("BUILDVARIANT".into(), String::new()),
    ]
}

const PROXIES: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn is_predefined(k: &str) -> bool {
    PROXIES.contains(&k) || predefined().iter().any(|(n, _)| n == k)
}

/// The values of the ARGs before the first FROM (and the predefined ones).
fn global_args(df: &Dockerfile, req: &Request) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = predefined().into_iter().collect();
    for a in &df.global_args {
        let value = req.args.get(&a.name).cloned().or_else(|| {
            a.default.as_ref().map(|d| {
                stack_dockerfile::expand::word(d, df.directives.escape, &|n| vars.get(n).cloned())
                    .unwrap_or_else(|_| d.clone())
            })
        });
        match value {
            Some(v) => vars.insert(a.name.clone(), v),
            None => vars.remove(&a.name),
        };
    }
    vars
}

/// A stage's state as its steps change it.
#[derive(Clone)]
struct State {
    layers: Vec<LayerParts>,
    /// The whole image config (`config`, `history`, ...).
    config: Value,
    /// ARGs in scope with their values.
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// Whether this stage set CMD (ENTRYPOINT clears an inherited one).
    cmd_set: bool,
    /// What the state came from, for the cache keys: the base's id.
    base: String,
}

impl State {
    fn cfg(&mut self) -> &mut Map<String, Value> {
        let root = self.config.as_object_mut().expect("an object");
        root.entry("config")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("config is an object")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.config
            .get("config")
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
    }

    fn env(&self) -> Vec<String> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_env(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        let entry = format!("{name}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.cfg().insert("Env".into(), json!(env));
    }

    /// A variable as expansion sees it: ENV first, then the ARGs in scope.
    fn var(&self, name: &str) -> Option<String> {
        self.env()
            .iter()
            .find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
            .or_else(|| self.args.get(name).cloned())
    }

    fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn view(&self, store: &Store) -> View {
        View::new(
            self.layers
                .iter()
                .rev()
                .map(|l| store.layer_dir(&l.chain_id))
                .collect(),
        )
    }

    /// The key of this state: what any step's cache key starts from.
    fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(CACHE_VERSION);
        h.update(self.base.as_bytes());
        for l in &self.layers {
            h.update(l.chain_id.as_bytes());
        }
        h.update(
            self.config
                .get("config")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        h.update(serde_json::to_string(&self.args).unwrap_or_default());
        h.update(self.shell.join("\0"));
        hex(h)
    }

    fn history(&mut self, created_by: &str, empty: bool) {
        let mut entry = json!({
            "created": now(),
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        if empty {
            entry["empty_layer"] = json!(true);
        }
        let root = self.config.as_object_mut().expect("an object");
        if let Some(h) = root
            .entry("history")
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            h.push(entry);
        }
    }
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    stack_sys::time::rfc3339(d.as_secs() as i64, 0)
}

struct Builder<'a> {
    store: &'a Store,
    runs: &'a Path,
    req: &'a Request,
    sandbox: &'a dyn Sandbox,
    say: &'a (dyn Fn(Event) + Sync),
    file: String,
    escape: char,
    df: Dockerfile,
    global: BTreeMap<String, String>,
    ignore: Patterns,
    empty: PathBuf,
    /// Each stage once built; its lock held while it builds, so that a
    /// stage two others need is built once.
    slots: Vec<Mutex<Option<State>>>,
    /// The stages under way, and the thread building each (to tell a
    /// stage that needs itself from one another thread is building).
    building: Mutex<BTreeMap<usize, std::thread::ThreadId>>,
    steps: Mutex<usize>,
    used: Mutex<BTreeSet<String>>,
    cache_images: std::sync::OnceLock<Vec<(Image, History)>>,
    /// Ends the ids of its RUN containers (16 hex digits).
    build_id: String,
    /// The base images of the stages built (for the provenance).
    bases: Mutex<Vec<(String, Image)>>,
}

impl Builder<'_> {
    fn next_step(&self, title: String) -> (usize, Instant) {
        let mut n = lock(&self.steps);
        *n += 1;
        (self.say)(Event::Step { n: *n, title });
        (*n, Instant::now())
    }

    fn done(&self, n: usize, t: Instant) {
        (self.say)(Event::Done {
            n,
            seconds: t.elapsed().as_secs_f64(),
        });
    }

    fn expand(&self, s: &State, raw: &str) -> anyhow::Result<String> {
        stack_dockerfile::expand::word(raw, self.escape, &|n| s.var(n)).map_err(anyhow::Error::msg)
    }

    /// Builds stage `i` (once), and the stages it needs: those that do not
    /// need each other at the same time, each on a thread of its own.
    fn stage(&self, i: usize) -> anyhow::Result<State> {
        let me = std::thread::current().id();
        if lock(&self.building).get(&i) == Some(&me) {
            bail!("{}: stage {i} depends on itself", self.file);
        }
        let mut slot = lock(&self.slots[i]);
        if let Some(s) = &*slot {
            return Ok(s.clone());
        }
        lock(&self.building).insert(i, me);
        let built = self.build_stage(i);
        lock(&self.building).remove(&i);
        let s = built?;
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Refuses stages that need each other (they would wait for each
    /// other for ever), before anything is built.
    fn acyclic(&self, target: usize) -> anyhow::Result<()> {
        fn visit(
            b: &Builder,
            i: usize,
            path: &mut Vec<usize>,
            done: &mut BTreeSet<usize>,
        ) -> anyhow::Result<()> {
            if done.contains(&i) {
                return Ok(());
            }
            if path.contains(&i) {
                let name = |j: usize| b.df.stages[j].name.clone().unwrap_or_else(|| j.to_string());
                let cycle: Vec<String> = path.iter().copied().chain([i]).map(name).collect();
                bail!(
                    "{}: circular dependency between stages: {}",
                    b.file,
                    cycle.join(" -> ")
                );
            }
            path.push(i);
            for j in b.needs(i) {
                visit(b, j, path, done)?;
            }
            path.pop();
            done.insert(i);
            Ok(())
        }
        visit(self, target, &mut Vec::new(), &mut BTreeSet::new())
    }

    /// The other stages stage `i` names (`FROM`, `COPY --from`, `RUN
    /// --mount=from=`), as far as the global ARGs tell.
    fn needs(&self, i: usize) -> BTreeSet<usize> {
        let global = |raw: &str| {
            stack_dockerfile::expand::word(raw, self.escape, &|n| self.global.get(n).cloned()).ok()
        };
        let stage = &self.df.stages[i];
        let mut names: Vec<String> = global(&stage.base).into_iter().collect();
        for ins in &stage.instructions {
            match &ins.command {
                Command::Copy(c) | Command::Add(c) => {
                    names.extend(c.from.as_deref().and_then(global))
                }
                Command::Run(r) => names.extend(
                    r.mounts
                        .iter()
                        .filter_map(|m| global(m))
                        .filter_map(|m| stack_dockerfile::parse_mount(&m).ok())
                        .filter_map(|m| m.from),
                ),
                _ => {}
            }
        }
        names
            .iter()
            .filter_map(|n| self.df.stage(n))
            .filter(|j| *j != i && (*j < i || self.df.stages[*j].name.is_some()))
            .collect()
    }

    fn build_stage(&self, i: usize) -> anyhow::Result<State> {
        // What it needs first, side by side.
        let needs: Vec<usize> = self.needs(i).into_iter().collect();
        if needs.len() > 1 {
            let failed = std::thread::scope(|scope| {
                let running: Vec<_> = needs
                    .iter()
                    .map(|j| scope.spawn(move || self.stage(*j)))
                    .collect();
                running
                    .into_iter()
                    .map(|t| {
                        t.join()
                            .unwrap_or_else(|_| Err(anyhow!("a stage's build panicked")))
                    })
                    .find_map(Result::err)
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        let stage = self.df.stages[i].clone();
        let label = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
        let base = stack_dockerfile::expand::word(&stage.base, self.escape, &|n| {
            self.global.get(n).cloned()
        })
        .map_err(|e| anyhow!("{}:{}: FROM: {e}", self.file, stage.line))?;
        if let Some(p) = &stage.platform {
            let p =
                stack_dockerfile::expand::word(p, self.escape, &|n| self.global.get(n).cloned())
                    .map_err(|e| anyhow!("{}:{}: FROM: {e}", self.file, stage.line))?;
            let host = format!("linux/{}", stack_image::registry::host_arch());
            if p != host {
                bail!("{}:{}: FROM --platform={p}: stack builds for this host's platform only ({host})", self.file, stage.line);
            }
        }
        let total = stage.instructions.len() + 1;
        let (n, t) = self.next_step(format!("[{label} 1/{total}] FROM {base}"));
        let mut s = self
            .from(&base)
            .with_context(|| format!("{}:{}: FROM {base}", self.file, stage.line))?;
        self.done(n, t);
        // The base's ONBUILD triggers run first, and are not inherited.
        let triggers: Vec<String> = s
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        s.cfg().remove("OnBuild");
        for t in triggers {
            let parsed = stack_dockerfile::parse(&format!("FROM scratch\n{t}\n"))
                .map_err(|e| anyhow!("{base}: ONBUILD {t}: {e}"))?;
            for ins in &parsed.stages[0].instructions {
                self.step(&mut s, ins, &format!("[{label} onbuild]"))
                    .with_context(|| {
                        format!(
                            "{}:{}: ONBUILD trigger of {base}: {t}",
                            self.file, stage.line
                        )
                    })?;
            }
        }
        for (k, ins) in stage.instructions.iter().enumerate() {
            self.step(&mut s, ins, &format!("[{label} {}/{total}]", k + 2))
                .with_context(|| format!("{}:{}: {}", self.file, ins.line, ins.original))?;
        }
        Ok(s)
    }

    /// The state a `FROM` starts from: nothing, a stage, or an image.
    fn from(&self, base: &str) -> anyhow::Result<State> {
        let fresh = |config: Value, base: String, layers: Vec<LayerParts>| {
            let mut s = State {
                layers,
                config,
                args: BTreeMap::new(),
                shell: vec!["/bin/sh".into(), "-c".into()],
                cmd_set: false,
                base,
            };
            if !s.env().iter().any(|e| e.starts_with("PATH=")) {
                let mut env = s.env();
                env.insert(0, DEFAULT_PATH.into());
                s.cfg().insert("Env".into(), json!(env));
            }
            if let Some(sh) = s.get("Shell").and_then(Value::as_array) {
                s.shell = sh
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
            }
            s
        };
        if base == "scratch" {
            let config = json!({
                "architecture": stack_image::registry::host_arch(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            });
            return Ok(fresh(config, "scratch".into(), Vec::new()));
        }
        if let Some(i) = self
            .df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&base.to_ascii_lowercase()))
        {
            let mut s = self.stage(i)?;
            s.args.clear();
            s.cmd_set = false;
            return Ok(s);
        }
        let img = self.sandbox.image(base, self.req.pull)?;
        lock(&self.bases).push((base.to_string(), img.clone()));
        let config: Value = serde_json::from_slice(&self.store.read_blob(&img.id)?)
            .with_context(|| format!("image {base}: its config is not JSON"))?;
        Ok(fresh(config, img.id.clone(), image_layers(&img)))
    }

    /// One instruction.
    fn step(&self, s: &mut State, ins: &Instruction, prefix: &str) -> anyhow::Result<()> {
        let title = format!("{prefix} {}", ins.original);
        // History as BuildKit writes it (Go's formatting included).
        let mut created_by = ins.original.clone();
        match &ins.command {
            Command::Run(r) => return self.run(s, r, &title),
            Command::Copy(c) | Command::Add(c) => {
                return self.copy(s, c, matches!(ins.command, Command::Add(_)), &title)
            }
            Command::Workdir(w) => {
                let w = self.expand(s, w)?;
                let dir = view::clean(&Path::new(&s.workdir()).join(&w))
                    .display()
                    .to_string();
                s.cfg().insert("WorkingDir".into(), json!(dir));
                return self.workdir(s, &dir, &title, &format!("WORKDIR {dir}"));
            }
            Command::Arg(args) => {
                for a in args {
                    let value = match self.req.args.get(&a.name) {
                        Some(v) => {
                            lock(&self.used).insert(a.name.clone());
                            Some(v.clone())
                        }
                        None => match &a.default {
                            Some(d) => Some(self.expand(s, d)?),
                            None => self.global.get(&a.name).cloned(),
                        },
                    };
                    match value {
                        Some(v) => s.args.insert(a.name.clone(), v),
                        None => s.args.remove(&a.name),
                    };
                }
            }
            other => created_by = configure(s, other, self.escape)?.unwrap_or(created_by),
        }
        s.history(&created_by, true);
        Ok(())
    }

    /// A step that may make a layer: reused from the cache under `key`,
    /// or made by `make` (into a directory it returns, committed here).
    fn layered(
        &self,
        s: &mut State,
        title: &str,
        created_by: &str,
        key: String,
        // Whether its history line says all the step depends on (RUN,
        // WORKDIR; not COPY), so that a `cache_from` image can stand in.
        described: bool,
        make: &mut dyn FnMut(usize) -> anyhow::Result<Option<(PathBuf, PathBuf)>>,
    ) -> anyhow::Result<()> {
        let (n, t) = self.next_step(title.to_string());
        let parent = s.layers.last().map(|l| l.chain_id.clone());
        if !self.req.no_cache {
            let hit = cache::lookup(self.store, &key, parent.as_deref()).or_else(|| {
                described
                    .then(|| self.cached_in_images(s, created_by))
                    .flatten()
            });
            if let Some(hit) = hit {
                (self.say)(Event::Cached { n });
                match hit {
                    Some(layer) => {
                        s.layers.push(layer);
                        s.history(created_by, false);
                    }
                    None => s.history(created_by, true),
                }
                return Ok(());
            }
        }
        // `make` gives the directory to commit and the one to remove after.
        let made = make(n)?;
        let layer = match made {
            Some((dir, remove)) => {
                let committed = layer::commit(self.store, &dir, parent.as_deref());
                let _ = std::fs::remove_dir_all(&remove);
                committed?
            }
            None => None,
        };
        cache::remember(self.store, &key, layer.as_ref())?;
        match layer {
            Some(l) => {
                s.layers.push(l);
                s.history(created_by, false);
            }
            None => s.history(created_by, true),
        }
        self.done(n, t);
        Ok(())
    }

    /// What a `cache_from` image made at this step: its history up to here
    /// is ours (every line, the step's own with the args it saw) and so are
    /// its layers up to here. As Docker's classic builder matched them.
    fn cached_in_images(&self, s: &State, created_by: &str) -> Option<Option<LayerParts>> {
        let images = self.cache_images.get_or_init(|| {
            let mut found = Vec::new();
            for r in &self.req.cache_from {
                let reference = r
                    .split(',')
                    .find_map(|p| p.strip_prefix("ref="))
                    .unwrap_or(r);
                let image = self.store.lookup(reference).ok().and_then(|img| {
                    let config: Value =
                        serde_json::from_slice(&self.store.read_blob(&img.id).ok()?).ok()?;
                    Some((img, history_of(&config)))
                });
                match image {
                    Some(i) => found.push(i),
                    None => (self.say)(Event::Warning(format!(
                        "cache_from {r}: no such local image (only local images serve as cache)"
                    ))),
                }
            }
            found
        });
        let ours = history_of(&s.config);
        let chain: Vec<&String> = s.layers.iter().map(|l| &l.chain_id).collect();
        for (img, theirs) in images {
            let Some((empty, by)) = theirs.get(ours.len()) else {
                continue;
            };
            if theirs[..ours.len()] != ours[..] || by != created_by {
                continue;
            }
            if *empty {
                return Some(None);
            }
            let k = chain.len();
            if img.chain_ids.len() > k && img.chain_ids.iter().take(k).eq(chain.iter().copied()) {
                return Some(image_layers(img).into_iter().nth(k));
            }
        }
        None
    }

    fn run(&self, s: &mut State, r: &stack_dockerfile::Run, title: &str) -> anyhow::Result<()> {
        let mut extra_mounts = Vec::new();
        let args: Vec<String> = match &r.form {
            Form::Exec(v) => v.clone(),
            Form::Shell(text) => {
                let lone = r.heredocs.len() == 1 && {
                    let t = text.trim().trim_start_matches("<<").trim_start_matches('-');
                    t.trim_matches(['"', '\'']) == r.heredocs[0].name
                };
                if lone && r.heredocs[0].body.starts_with("#!") {
                    // A script with its own interpreter runs as a file.
                    plain_name(&r.heredocs[0].name)?;
                    let dir = self.store.tmp_dir("heredoc")?;
                    let file = dir.join("script");
                    std::fs::write(&file, &r.heredocs[0].body)?;
                    std::fs::set_permissions(
                        &file,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )?;
                    let target = format!("/dev/pipes/{}", r.heredocs[0].name);
                    extra_mounts.push((bind(&file, &target, true), dir));
                    vec![target]
                } else if lone {
                    s.shell
                        .iter()
                        .cloned()
                        .chain([r.heredocs[0].body.clone()])
                        .collect()
                } else {
                    let mut script = text.clone();
                    for h in &r.heredocs {
                        script.push('\n');
                        script.push_str(&h.body);
                        script.push_str(&h.name);
                    }
                    s.shell.iter().cloned().chain([script]).collect()
                }
            }
        };
        // ARGs reach RUN as environment (ENV wins), as do proxies given.
        let mut env = s.env();
        for (k, v) in &s.args {
            if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                env.push(format!("{k}={v}"));
            }
        }
        for p in PROXIES {
            if let Some(v) = self.req.args.get(*p) {
                lock(&self.used).insert(p.to_string());
                env.push(format!("{p}={v}"));
            }
        }
        let network = match &r.network {
            Some(n) => self.expand(s, n)?,
            None => self.req.network.clone().unwrap_or_else(|| "default".into()),
        };
        if !matches!(network.as_str(), "default" | "none" | "host") {
            bail!("--network={network}: default, none or host");
        }
        let mut key = Sha256::new();
        key.update(s.key());
        key.update(serde_json::to_string(&json!([
            args, env, network, r.security
        ]))?);
        // A heredoc's body is the script (a `#!` one is not in `args`).
        for h in &r.heredocs {
            key.update(h.name.as_bytes());
            key.update(h.body.as_bytes());
        }
        let mut mounts = Vec::new();
        // Removed on every way out (secrets' copies among them).
        let mut cleanup = Cleanup(extra_mounts.iter().map(|(_, d)| d.clone()).collect());
        let mut locks = Vec::new();
        for m in &r.mounts {
            let text = self.expand(s, m)?;
            key.update(text.as_bytes());
            let m =
                stack_dockerfile::parse_mount(&text).map_err(|e| anyhow!("--mount={text}: {e}"))?;
            match self.mount(s, &m, &mut key, &mut cleanup.0, &mut locks, &mut env) {
                Ok(Some(mount)) => mounts.push(mount),
                Ok(None) => {}
                Err(e) => {
                    return Err(e.context(format!("--mount={text}")));
                }
            }
        }
        mounts.extend(extra_mounts.into_iter().map(|(m, _)| m));
        let view = s.view(self.store);
        let cwd = s.workdir();
        let user = s
            .get("User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let privileged = r.security.as_deref() == Some("insecure");
        let key = format!("run:{}", hex(key));
        // A mount's content is not in the history line: such a step is not
        // matched in a cache_from image.
        let described = r.mounts.is_empty();
        let result = self.layered(
            s,
            title,
            &run_history(&s.args, &args),
            key,
            described,
            &mut |n| {
                // The build's id last (a container's first 12 digits name
                // its veth and more): `sweep` tells a live build's steps by it.
                let id = format!("{}{}", stack_sys::random_hex(8)?, self.build_id);
                let (mode, resolv, mut hosts) = match network.as_str() {
                    "none" => (stack_runtime::NetworkMode::New, None, Vec::new()),
                    "host" => (stack_runtime::NetworkMode::Host, None, Vec::new()),
                    _ => {
                        let w = self.sandbox.connect(&id)?;
                        (
                            stack_runtime::NetworkMode::Path(w.netns),
                            Some(w.resolv_conf),
                            w.hosts,
                        )
                    }
                };
                for h in &self.req.extra_hosts {
                    if let Some((name, ip)) = h.split_once([':', '=']) {
                        hosts.push(format!("{ip}\t{name}"));
                    }
                }
                let step = run::Step {
                    view: view.clone(),
                    args: args.clone(),
                    env: env.clone(),
                    cwd: cwd.clone(),
                    user: user.clone(),
                    network: mode,
                    resolv_conf: resolv,
                    hosts,
                    mounts: mounts.clone(),
                    privileged,
                    shm_size: self.req.shm_size,
                    rlimits: self.req.ulimits.clone(),
                    memory: self.req.memory,
                };
                let say = self.say;
                let ran = run::run(self.runs, &self.empty, &id, step, &mut |l| {
                    say(Event::Line {
                        n,
                        text: l.to_string(),
                    })
                });
                if network == "default" {
                    self.sandbox.disconnect(&id);
                }
                let dir = ran?;
                Ok(Some((dir.join("upper"), dir)))
            },
        );
        drop(locks);
        drop(cleanup);
        result
    }

    /// A `RUN --mount` as the runtime's mount.
    fn mount(
        &self,
        s: &State,
        m: &stack_dockerfile::Mount,
        key: &mut Sha256,
        cleanup: &mut Vec<PathBuf>,
        locks: &mut Vec<stack_sys::FileLock>,
        env: &mut Vec<String>,
    ) -> anyhow::Result<Option<stack_runtime::Mount>> {
        let target = |default: String| -> String {
            let t = m.target.clone().unwrap_or(default);
            view::clean(&Path::new(&s.workdir()).join(t))
                .display()
                .to_string()
        };
        Ok(Some(match m.kind {
            MountKind::Tmpfs => stack_runtime::Mount {
                kind: "tmpfs".into(),
                source: PathBuf::new(),
                target: target(String::new()),
                read_only: false,
                size: m.size,
                recursive: Default::default(),
            },
            MountKind::Cache => {
                let t = target(String::new());
                let id = m.id.clone().unwrap_or_else(|| t.clone());
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                let dir = cache::dir(self.store).join("mounts").join(&hex(h)[..24]);
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)?;
                    own(&dir, m, 0o755)?;
                }
                let lock_path = dir.with_extension("lock");
                let dir = match m.sharing {
                    stack_dockerfile::Sharing::Shared => dir,
                    // One writer at a time: the others wait.
                    stack_dockerfile::Sharing::Locked => {
                        locks.push(stack_sys::lock(&lock_path, true)?);
                        dir
                    }
                    // One writer at a time: the others get a fresh one,
                    // thrown away after the step.
                    stack_dockerfile::Sharing::Private => match stack_sys::try_lock(&lock_path)? {
                        Some(l) => {
                            locks.push(l);
                            dir
                        }
                        None => {
                            let fresh = self.store.tmp_dir("cache-mount")?;
                            own(&fresh, m, 0o755)?;
                            cleanup.push(fresh.clone());
                            fresh
                        }
                    },
                };
                bind(&dir, &t, m.read_only.unwrap_or(false))
            }
            MountKind::Secret => {
                let id = m.id.clone().unwrap_or_default();
                let Some(content) = self.req.secrets.get(&id) else {
                    if m.required {
                        bail!("secret `{id}` is required and was not given (--secret id={id},src=FILE)");
                    }
                    return Ok(None);
                };
                if let Some(var) = &m.env {
                    env.push(format!("{var}={}", String::from_utf8_lossy(content)));
                    if m.target.is_none() {
                        return Ok(None);
                    }
                }
                // In a directory of the build's own, gone after the step.
                let tmp = self.store.tmp_dir("secret")?;
                cleanup.push(tmp.clone());
                let file = tmp.join("secret");
                std::fs::write(&file, content)?;
                own(&file, m, 0o400)?;
                bind(&file, &target(format!("/run/secrets/{id}")), true)
            }
            MountKind::Ssh => {
                let id = m.id.clone().unwrap_or_else(|| "default".into());
                let Some(socket) = self.req.ssh.get(&id) else {
                    if m.required {
                        bail!("ssh agent `{id}` is required and was not given (--ssh {id}=SOCKET)");
                    }
                    return Ok(None);
                };
                // The agent's own socket, bound in; the step finds it as
                // SSH_AUTH_SOCK.
                let t = target("/run/buildkit/ssh_agent.0".into());
                env.push(format!("SSH_AUTH_SOCK={t}"));
                bind(socket, &t, false)
            }
            MountKind::Bind => {
                let source = m.source.clone().unwrap_or_default();
                let t = target(String::new());
                let tmp = self.store.tmp_dir("bind")?;
                cleanup.push(tmp.clone());
                // The context, a stage or an image: copied out, so that the
                // mount shows what Docker's would (ignored files left out,
                // writes thrown away) and nothing of the host's.
                let from_state;
                let src = match &m.from {
                    None => copy::Source::Dir {
                        root: &self.req.context,
                        ignore: &self.ignore,
                    },
                    Some(f) => {
                        from_state = self.source_of(&self.expand(s, f)?)?;
                        from_state.source(&self.ignore)
                    }
                };
                let found = src.find(if source.is_empty() { "." } else { &source })?;
                let apply = copy::Apply {
                    owner: (0, 0),
                    chmod: None,
                    excludes: Patterns::default(),
                };
                for f in &found {
                    src.digest(f, &apply.excludes, key)?;
                    copy::copy(&src, f, &tmp, Path::new("/m"), &apply)?;
                }
                bind(&tmp.join("m"), &t, m.read_only.unwrap_or(true))
            }
        }))
    }

    /// Where `--from` reads: a stage, a named context, or an image.
    fn source_of(&self, from: &str) -> anyhow::Result<From> {
        if let Some(i) = self.df.stage(from) {
            let st = self.stage(i)?;
            return Ok(From::View(st.view(self.store), st.key()));
        }
        if let Some(c) = self.req.contexts.get(from) {
            return match c.strip_prefix("docker-image://") {
                Some(r) => self.image_view(r),
                None => Ok(From::Dir(self.req.context.join(c))),
            };
        }
        self.image_view(from)
    }

    fn image_view(&self, reference: &str) -> anyhow::Result<From> {
        let img = self.sandbox.image(reference, false)?;
        Ok(From::View(View::new(self.store.lower_dirs(&img)), img.id))
    }

    fn copy(&self, s: &mut State, c: &Copy, add: bool, title: &str) -> anyhow::Result<()> {
        let sources: Vec<String> = c
            .sources
            .iter()
            .map(|x| self.expand(s, x))
            .collect::<Result<_, _>>()?;
        let dest = self.expand(s, &c.dest)?;
        let workdir = s.workdir();
        // Cleaned (nothing climbs out of the image), and through the
        // image's symlinked directories, as Docker resolves it.
        let dest_path = s.view(self.store).resolve(&Path::new(&workdir).join(&dest));
        let from = c.from.as_ref().map(|f| self.expand(s, f)).transpose()?;
        let source = match &from {
            Some(f) => self.source_of(f)?,
            None => From::Dir(self.req.context.clone()),
        };
        let src = source.source(&self.ignore);
        let excludes = {
            let e: Vec<String> = c
                .excludes
                .iter()
                .map(|x| self.expand(s, x))
                .collect::<Result<_, _>>()?;
            Patterns::from_list(&e).map_err(anyhow::Error::msg)?
        };
        let view = s.view(self.store);
        let owner = match &c.chown {
            None => (0, 0),
            Some(o) => {
                let o = self.expand(s, o)?;
                let (user, group) = match o.split_once(':') {
                    Some((u, g)) => (u.to_string(), Some(g.to_string())),
                    None => (o.clone(), None),
                };
                let (uid, _) = view.lookup_id("passwd", &user).ok_or_else(|| {
                    anyhow!("--chown={o}: no user `{user}` in the image's /etc/passwd")
                })?;
                let gid = match group {
                    Some(g) => {
                        view.lookup_id("group", &g)
                            .ok_or_else(|| {
                                anyhow!("--chown={o}: no group `{g}` in the image's /etc/group")
                            })?
                            .0
                    }
                    None => uid,
                };
                (uid, gid)
            }
        };
        let chmod = c.chmod.as_ref().map(|m| self.expand(s, m)).transpose()?;
        let mut found = Vec::new();
        let mut key = Sha256::new();
        key.update(s.key());
        key.update(serde_json::to_string(&json!([
            add, sources, dest_path, owner, chmod, c.excludes, c.parents, c.unpack
        ]))?);
        if let From::View(_, k) = &source {
            key.update(k.as_bytes());
        }
        // ADD's URLs: fetched (the content is in the key), written 0600 as
        // Docker writes them, checked against `--checksum`.
        let mut downloads = Vec::new();
        let checksum = c.checksum.as_ref().map(|x| self.expand(s, x)).transpose()?;
        for x in &sources {
            if add && (x.starts_with("git@") || x.ends_with(".git")) {
                bail!("ADD {x}: git sources are not supported yet (clone in a RUN instead)");
            }
            if add && (x.starts_with("http://") || x.starts_with("https://")) {
                let body = self.sandbox.fetch(x).with_context(|| format!("ADD {x}"))?;
                let digest = format!("sha256:{}", hex(Sha256::new_with_prefix(&body)));
                if let Some(want) = &checksum {
                    if *want != digest {
                        bail!("ADD {x}: the checksum is {digest}, not {want}");
                    }
                }
                key.update(x.as_bytes());
                key.update(digest.as_bytes());
                let name = x
                    .split(['?', '#'])
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .filter(|n| !n.is_empty() && !n.contains(':'))
                    .unwrap_or("index.html")
                    .to_string();
                downloads.push((name, body));
                continue;
            }
            if checksum.is_some() {
                bail!("--checksum is for URLs only: `{x}` is not one");
            }
            for f in src.find(x)? {
                key.update(f.rel.as_os_str().as_encoded_bytes());
                src.digest(&f, &excludes, &mut key)?;
                found.push(f);
            }
        }
        let mut heredocs = Vec::new();
        for h in &c.heredocs {
            plain_name(&h.name)?;
            let body = if h.expand {
                self.expand_heredoc(s, &h.body)?
            } else {
                h.body.clone()
            };
            key.update(h.name.as_bytes());
            key.update(body.as_bytes());
            heredocs.push((h.name.clone(), body));
        }
        let dest_is_dir = dest.ends_with('/')
            || dest == "."
            || dest.ends_with("/.")
            || dest_path == Path::new("/")
            || found.len() + heredocs.len() + downloads.len() > 1
            || view.find(&dest_path).is_some_and(|p| p.is_dir());
        let key = format!("copy:{}", hex(key));
        let keyword = if add { "ADD" } else { "COPY" };
        // As BuildKit writes it: the paths as written, no flags.
        let created_by = format!("{keyword} {} {} # buildkit", c.sources.join(" "), c.dest);
        self.layered(s, title, &created_by, key, false, &mut |_| {
            let layer = self.store.tmp_dir("copy")?;
            let made = (|| -> anyhow::Result<()> {
                let apply = copy::Apply {
                    owner,
                    chmod: chmod.as_deref().map(copy::chmod).transpose()?,
                    excludes: excludes.clone(),
                };
                for f in &found {
                    let is_dir = f.real.is_dir();
                    let to = if c.parents {
                        dest_path.join(&f.rel)
                    } else if is_dir {
                        dest_path.clone()
                    } else if dest_is_dir {
                        dest_path.join(f.rel.file_name().unwrap_or_default())
                    } else {
                        dest_path.clone()
                    };
                    copy::parents(&layer, &view, to.parent().unwrap_or(Path::new("/")))?;
                    if add
                        && c.unpack != Some(false)
                        && from.is_none()
                        && !is_dir
                        && copy::is_archive(&f.real)
                    {
                        // The destination keeps the owner and mode the image gives it.
                        copy::parents(&layer, &view, &dest_path)?;
                        let out = layer.join(dest_path.strip_prefix("/").unwrap_or(&dest_path));
                        let file = std::fs::File::open(&f.real)?;
                        stack_image::unpack::unpack(
                            &f.rel.display().to_string(),
                            stack_image::store::decompress(file)?,
                            &out,
                        )?;
                        continue;
                    }
                    copy::copy(&src, f, &layer, &to, &apply)?;
                }
                // Downloads (0600, as Docker writes them) and heredocs (0644).
                let files = downloads
                    .iter()
                    .map(|(n, b)| (n, &b[..], 0o600))
                    .chain(heredocs.iter().map(|(n, b)| (n, b.as_bytes(), 0o644)));
                for (name, body, mode) in files {
                    let to = if dest_is_dir {
                        dest_path.join(name)
                    } else {
                        dest_path.clone()
                    };
                    copy::parents(&layer, &view, to.parent().unwrap_or(Path::new("/")))?;
                    let at = layer.join(to.strip_prefix("/").unwrap_or(&to));
                    std::fs::write(&at, body)?;
                    let mode = apply.chmod.as_ref().map_or(mode, |f| f(mode, false));
                    std::fs::set_permissions(
                        &at,
                        std::os::unix::fs::PermissionsExt::from_mode(mode),
                    )?;
                    nix::unistd::chown(&at, Some(owner.0.into()), Some(owner.1.into()))?;
                }
                Ok(())
            })();
            if let Err(e) = made {
                let _ = std::fs::remove_dir_all(&layer);
                return Err(e);
            }
            Ok(Some((layer.clone(), layer)))
        })
    }

    /// A heredoc's body, expanded line by line as a word would be, its
    /// quotes kept (they are the file's).
    fn expand_heredoc(&self, s: &State, body: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        for line in body.split_inclusive('\n') {
            let (text, nl) = match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            };
            let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&self.expand(s, &format!("\"{quoted}\""))?);
            out.push_str(nl);
        }
        Ok(out)
    }

    /// WORKDIR makes its directory when the image does not have it.
    fn workdir(&self, s: &mut State, dir: &str, title: &str, original: &str) -> anyhow::Result<()> {
        let view = s.view(self.store);
        if view.find(Path::new(dir)).is_some() {
            s.history(original, true);
            return Ok(());
        }
        let mut key = Sha256::new();
        key.update(s.key());
        key.update(format!("workdir:{dir}"));
        let key = format!("workdir:{}", hex(key));
        self.layered(s, title, original, key, true, &mut |_| {
            let layer = self.store.tmp_dir("workdir")?;
            copy::parents(&layer, &view, Path::new(dir))?;
            Ok(Some((layer.clone(), layer)))
        })
    }

    /// The image of the built target: its config blob, its layers, its names.
    fn finish(&self, mut s: State) -> anyhow::Result<Image> {
        if !self.req.labels.is_empty() {
            let mut labels = s.get("Labels").cloned().unwrap_or_else(|| json!({}));
            for (k, v) in &self.req.labels {
                labels[k] = json!(v);
            }
            s.cfg().insert("Labels".into(), labels);
        }
        let diff_ids: Vec<&str> = s.layers.iter().map(|l| l.diff_id.as_str()).collect();
        s.config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        s.config["created"] = json!(now());
        let bytes = serde_json::to_vec(&s.config)?;
        let (digest, _) = self.store.write_blob(None, &bytes[..])?;
        Ok(self
            .store
            .record(self.req.tags.clone(), &digest, s.layers, None)?)
    }
}

/// What an instruction that only sets the config does to `s` (ENV, LABEL,
/// EXPOSE, CMD ...), with `escape` the Dockerfile's escape character: the
/// history line it makes, `None` where that is the instruction as written.
/// Steps of a build, and `commit --change`, go through here.
fn configure(s: &mut State, command: &Command, escape: char) -> anyhow::Result<Option<String>> {
    let expand = |s: &State, raw: &str| -> anyhow::Result<String> {
        stack_dockerfile::expand::word(raw, escape, &|n| s.var(n)).map_err(anyhow::Error::msg)
    };
    let expand_words = |s: &State, raw: &str| -> anyhow::Result<Vec<String>> {
        stack_dockerfile::expand::words(raw, escape, &|n| s.var(n)).map_err(anyhow::Error::msg)
    };
    let mut created_by = None;
    match command {
        Command::Env(pairs) => {
            let before = s.clone();
            let mut set = Vec::new();
            for (k, v) in pairs {
                let k = expand(&before, k)?;
                let v = expand(&before, v)?;
                s.set_env(&k, &v);
                set.push(format!("{k}={v}"));
            }
            created_by = Some(format!("ENV {}", set.join(" ")));
        }
        Command::Label(pairs) => {
            let mut labels = s.get("Labels").cloned().unwrap_or_else(|| json!({}));
            let mut set = Vec::new();
            for (k, v) in pairs {
                let (k, v) = (expand(s, k)?, expand(s, v)?);
                set.push(format!("{k}={v}"));
                labels[k] = json!(v);
            }
            s.cfg().insert("Labels".into(), labels);
            created_by = Some(format!("LABEL {}", set.join(" ")));
        }
        Command::Maintainer(m) => {
            s.config["author"] = json!(m);
        }
        Command::Expose(words) => {
            let mut ports = s.get("ExposedPorts").cloned().unwrap_or_else(|| json!({}));
            for w in words {
                for p in expand_words(s, w)? {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    ports[p] = json!({});
                }
            }
            let mut keys: Vec<&String> = ports
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys.sort();
            let listed: Vec<String> = keys.iter().map(|k| format!("{k}:{{}}")).collect();
            created_by = Some(format!("EXPOSE map[{}]", listed.join(" ")));
            s.cfg().insert("ExposedPorts".into(), ports);
        }
        Command::Volume(paths) => {
            let mut vols = s.get("Volumes").cloned().unwrap_or_else(|| json!({}));
            let mut set = Vec::new();
            for p in paths {
                for v in expand_words(s, p)? {
                    vols[&v] = json!({});
                    set.push(v);
                }
            }
            created_by = Some(format!("VOLUME [{}]", set.join(" ")));
            s.cfg().insert("Volumes".into(), vols);
        }
        Command::User(u) => {
            let u = expand(s, u)?;
            s.cfg().insert("User".into(), json!(u));
        }
        Command::StopSignal(sig) => {
            let sig = expand(s, sig)?;
            s.cfg().insert("StopSignal".into(), json!(sig));
        }
        Command::Cmd(f) => {
            let v = form(s, f);
            created_by = Some(format!("CMD {}", go_quoted(&v)));
            s.cfg().insert("Cmd".into(), json!(v));
            s.cmd_set = true;
        }
        Command::Entrypoint(f) => {
            let v = form(s, f);
            created_by = Some(format!("ENTRYPOINT {}", go_quoted(&v)));
            s.cfg().insert("Entrypoint".into(), json!(v));
            if !s.cmd_set {
                s.cfg().insert("Cmd".into(), Value::Null);
            }
        }
        Command::Shell(sh) => {
            s.shell = sh.clone();
            s.cfg().insert("Shell".into(), json!(sh));
        }
        Command::Healthcheck(h) => {
            let v = match h {
                Healthcheck::Disable => json!({"Test": ["NONE"]}),
                Healthcheck::Check {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    let test: Vec<String> = match test {
                        Form::Exec(v) => std::iter::once("CMD".to_string())
                            .chain(v.clone())
                            .collect(),
                        Form::Shell(t) => vec!["CMD-SHELL".into(), t.clone()],
                    };
                    let mut v = json!({"Test": test});
                    for (k, d) in [
                        ("Interval", interval),
                        ("Timeout", timeout),
                        ("StartPeriod", start_period),
                        ("StartInterval", start_interval),
                    ] {
                        if let Some(d) = d {
                            v[k] = json!(d);
                        }
                    }
                    if let Some(r) = retries {
                        v["Retries"] = json!(r);
                    }
                    v
                }
            };
            if let Healthcheck::Check {
                interval,
                timeout,
                start_period,
                retries,
                ..
            } = h
            {
                let test: Vec<String> = v["Test"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                created_by = Some(format!(
                    "HEALTHCHECK &{{{} {:?} {:?} {:?} '\\x{:02x}'}}",
                    go_quoted(&test),
                    go_duration(interval.unwrap_or(0)),
                    go_duration(timeout.unwrap_or(0)),
                    go_duration(start_period.unwrap_or(0)),
                    retries.unwrap_or(0)
                ));
            }
            s.cfg().insert("Healthcheck".into(), v);
        }
        Command::Onbuild(trigger) => {
            let text = trigger.original.clone();
            let mut list = s.get("OnBuild").cloned().unwrap_or_else(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(json!(text));
            }
            s.cfg().insert("OnBuild".into(), list);
        }
        other => bail!("{} does more than set the image config", other.keyword()),
    }
    Ok(created_by)
}

/// CMD's and ENTRYPOINT's form as the image config holds it.
fn form(s: &State, f: &Form) -> Vec<String> {
    match f {
        Form::Exec(v) => v.clone(),
        Form::Shell(t) => s.shell.iter().cloned().chain([t.clone()]).collect(),
    }
}

/// An image config's history: each step's line, and whether it made no layer.
type History = Vec<(bool, String)>;

fn history_of(config: &Value) -> History {
    config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["empty_layer"].as_bool().unwrap_or(false),
                        e["created_by"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Directories a step made for itself, removed when it is done, however it ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn live_lock(runs: &Path, build_id: &str) -> PathBuf {
    runs.join("locks").join(format!("{build_id}.lock"))
}

/// Removes what builds that are gone left under `runs`: RUN containers
/// whose build holds no lock any more and whose monitor has ended, and
/// those builds' lock files.
pub fn sweep(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs.join("containers")) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let Some(build) = name.get(16..) else {
            continue;
        };
        let gone = matches!(stack_sys::try_lock(&live_lock(runs, build)), Ok(Some(_)));
        let ended = stack_runtime::state::read(&dir)
            .is_ok_and(|st| !stack_runtime::state::alive(&st))
            || !dir.join("state.json").exists();
        if gone && ended {
            let _ = stack_sys::remove_tree(runs, &dir);
        }
    }
    if let Ok(locks) = std::fs::read_dir(runs.join("locks")) {
        for l in locks.flatten() {
            if matches!(stack_sys::try_lock(&l.path()), Ok(Some(_))) {
                let _ = std::fs::remove_file(l.path());
            }
        }
    }
}

/// A heredoc's name as a file's: one plain name.
fn plain_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!("heredoc `{name}`: a file's name cannot be that");
    }
    Ok(())
}

/// A mutex's value, even if a thread panicked holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A list as Go's `%q` prints it: `["/bin/sh" "-c"]`.
fn go_quoted(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", q.join(" "))
}

/// Nanoseconds as Go prints a duration: `5s`, `1m30s`, `500ms`, `0s`.
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let (h, m) = (ns / 3_600_000_000_000, ns / 60_000_000_000 % 60);
    let secs = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// A RUN's history line as BuildKit writes it: the build args it saw,
/// then the command.
fn run_history(args: &BTreeMap<String, String>, command: &[String]) -> String {
    let seen = match args.len() {
        0 => String::new(),
        n => format!(
            "|{n} {} ",
            args.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    format!("RUN {seen}{} # buildkit", command.join(" "))
}

/// Where a `--from` reads: a directory, or a view with the key of what
/// made it.
enum From {
    Dir(PathBuf),
    View(View, String),
}

impl From {
    fn source<'a>(&'a self, ignore: &'a Patterns) -> copy::Source<'a> {
        match self {
            From::Dir(root) => copy::Source::Dir { root, ignore },
            From::View(v, _) => copy::Source::View(v),
        }
    }
}

/// The mode and owner a mount's options give (`default` mode, root's by default).
fn own(path: &Path, m: &stack_dockerfile::Mount, default: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(m.mode.unwrap_or(default)),
    )?;
    nix::unistd::chown(
        path,
        Some(m.uid.unwrap_or(0).into()),
        Some(m.gid.unwrap_or(0).into()),
    )?;
    Ok(())
}

fn bind(source: &Path, target: &str, read_only: bool) -> stack_runtime::Mount {
    stack_runtime::Mount {
        kind: "bind".into(),
        source: source.to_path_buf(),
        target: target.to_string(),
        read_only,
        size: None,
        recursive: Default::default(),
    }
}

/// An image's layers as a build continues from them.
fn image_layers(img: &Image) -> Vec<LayerParts> {
    (0..img.chain_ids.len())
        .map(|i| LayerParts {
            blob: img
                .layers
                .get(i)
                .cloned()
                .unwrap_or_else(|| stack_image::Blob {
                    media_type: layer::LAYER_TAR.into(),
                    digest: img.diff_ids[i].clone(),
                    size: 0,
                }),
            diff_id: img.diff_ids[i].clone(),
            chain_id: img.chain_ids[i].clone(),
            size: img.layer_sizes.get(i).copied().unwrap_or(0),
        })
        .collect()
}
