//! `stack image build`, `stack build` and the builds of `up`: the builder
//! runs in this process (as `docker compose` builds before it creates),
//! its steps printed as BuildKit's plain progress on standard error.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context as _};
use stack_build::{Event, Request};
use stack_host::Host;

use crate::cli::image::BuildArgs;
use crate::cli::{ComposeBuildArgs, Global};

/// Step numbers shared by the builds that run at once (compose's), so
/// that each `#N` names one step; and, on a terminal, the block redrawn.
#[derive(Default)]
struct Numbers {
    next: usize,
    /// (build, its own number) to the shared one, and when it began.
    given: HashMap<(usize, usize), (usize, Instant)>,
    /// `--progress tty` (or a terminal with `auto`): BuildKit's live view.
    live: Option<Live>,
}

/// The live view: every step with its state, the running ones' last lines.
struct Live {
    started: Instant,
    steps: Vec<LiveStep>,
    /// Lines drawn last time (moved up over and drawn again).
    drawn: usize,
}

struct LiveStep {
    n: usize,
    title: String,
    /// None while it runs; its time once done; `CACHED`.
    done: Option<String>,
    last: std::collections::VecDeque<String>,
}

impl Live {
    fn draw(&mut self) {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        let finished = self.steps.iter().filter(|s| s.done.is_some()).count();
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({finished}/{})",
            self.started.elapsed().as_secs_f64(),
            self.steps.len()
        )];
        for s in &self.steps {
            match &s.done {
                Some(d) if d == "CACHED" => lines.push(format!(" => CACHED {}", s.title)),
                Some(d) => lines.push(format!(" => {} {d}", s.title)),
                None => {
                    lines.push(format!(" => {}", s.title));
                    lines.extend(s.last.iter().map(|l| format!(" => => # {l}")));
                }
            }
        }
        for l in &lines {
            out.extend(l.chars().take(160));
            out.push('\n');
        }
        self.drawn = lines.len();
        eprint!("{out}");
    }
}

/// Prints a build's events: `#3 [app 2/4] RUN make`, its output lines
/// with their time into the step, `#3 CACHED` or `#3 DONE 1.2s`.
struct Printer<'a> {
    quiet: bool,
    /// The service, for compose's builds.
    prefix: String,
    build: usize,
    numbers: &'a Mutex<Numbers>,
}

impl Printer<'_> {
    /// The shared number of this build's step `n`, and its time so far.
    fn number(&self, n: usize) -> (usize, f64) {
        let mut numbers = self.numbers.lock().unwrap_or_else(|p| p.into_inner());
        let key = (self.build, n);
        if let Some((shared, t)) = numbers.given.get(&key) {
            return (*shared, t.elapsed().as_secs_f64());
        }
        numbers.next += 1;
        let shared = numbers.next;
        numbers.given.insert(key, (shared, Instant::now()));
        (shared, 0.0)
    }

    fn say(&self, e: Event) {
        if self.quiet {
            if let Event::Warning(w) = e {
                eprintln!("WARNING: {w}");
            }
            return;
        }
        let e = match e {
            Event::Step { n, title } => Event::Step {
                n: self.number(n).0,
                title: match self.prefix.is_empty() {
                    true => title,
                    false => title.replacen('[', &format!("[{} ", self.prefix), 1),
                },
            },
            Event::Line { n, text } => {
                let (n, t) = self.number(n);
                Event::Line {
                    n,
                    text: format!("{t:.3} {text}"),
                }
            }
            Event::Cached { n } => Event::Cached {
                n: self.number(n).0,
            },
            Event::Done { n, seconds } => Event::Done {
                n: self.number(n).0,
                seconds,
            },
            w => w,
        };
        let mut numbers = self.numbers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(live) = numbers.live.as_mut() else {
            drop(numbers);
            match e {
                Event::Step { n, title } => eprintln!("#{n} {title}"),
                Event::Line { n, text } => eprintln!("#{n} {text}"),
                Event::Cached { n } => eprintln!("#{n} CACHED"),
                Event::Done { n, seconds } => eprintln!("#{n} DONE {seconds:.1}s"),
                Event::Warning(w) => eprintln!("WARNING: {w}"),
            }
            return;
        };
        let step = |live: &mut Live, n: usize| live.steps.iter().position(|s| s.n == n);
        match e {
            Event::Step { n, title } => live.steps.push(LiveStep {
                n,
                title,
                done: None,
                last: Default::default(),
            }),
            Event::Line { n, text } => {
                if let Some(i) = step(live, n) {
                    let last = &mut live.steps[i].last;
                    last.push_back(text);
                    if last.len() > 6 {
                        last.pop_front();
                    }
                }
            }
            Event::Cached { n } => {
                if let Some(i) = step(live, n) {
                    live.steps[i].done = Some("CACHED".into());
                }
            }
            Event::Done { n, seconds } => {
                if let Some(i) = step(live, n) {
                    live.steps[i].done = Some(format!("{seconds:.1}s"));
                }
            }
            Event::Warning(w) => {
                // Above the block, which is drawn again below it.
                if live.drawn > 0 {
                    eprint!("\x1b[{}F\x1b[J", live.drawn);
                    live.drawn = 0;
                }
                eprintln!("WARNING: {w}");
            }
        }
        live.draw();
    }
}

/// Shared numbering, with the live view where `mode` asks for it.
fn numbers(mode: crate::progress::Mode) -> Mutex<Numbers> {
    use std::io::IsTerminal as _;
    let tty = match mode {
        crate::progress::Mode::Tty => true,
        crate::progress::Mode::Auto => std::io::stderr().is_terminal(),
        _ => false,
    };
    Mutex::new(Numbers {
        live: tty.then(|| Live {
            started: Instant::now(),
            steps: Vec::new(),
            drawn: 0,
        }),
        ..Numbers::default()
    })
}

/// `KEY=VALUE` pairs (`KEY` alone: from the environment, left out if unset).
fn pairs(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// `--secret id=ID,src=FILE` (or `env=VAR`): id and content.
fn secret(spec: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut content = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => {
                content = Some(std::fs::read(v).with_context(|| format!("--secret {spec}: {v}"))?)
            }
            Some(("env", v)) => {
                content = Some(
                    std::env::var(v)
                        .with_context(|| format!("--secret {spec}: environment variable {v}"))?
                        .into_bytes(),
                )
            }
            Some(("type", "file" | "env")) => {}
            _ => bail!("--secret {spec}: expected id=ID,src=FILE or id=ID,env=VAR"),
        }
    }
    let id = id.with_context(|| format!("--secret {spec}: no id"))?;
    let content = match content {
        Some(c) => c,
        None => std::env::var(&id)
            .map(String::into_bytes)
            .with_context(|| format!("--secret {spec}: no src or env"))?,
    };
    Ok((id, content))
}

/// `--ssh default` (the agent of `$SSH_AUTH_SOCK`) or `--ssh ID=SOCKET`.
fn ssh(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    stack_host::build::ssh_agent(
        spec.split_once('=')
            .map_or((spec, None), |(id, p)| (id, Some(p))),
    )
    .with_context(|| format!("--ssh {spec}"))
}

/// `stack image build` (quiet with `-q` or `--progress quiet`).
pub fn image(a: &BuildArgs, mode: crate::progress::Mode) -> anyhow::Result<()> {
    let context = std::fs::canonicalize(&a.context)
        .with_context(|| format!("build context {}", a.context.display()))?;
    if !context.is_dir() {
        bail!("build context {}: not a directory", a.context.display());
    }
    let (dockerfile, inline) = match &a.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            (PathBuf::from("Dockerfile"), Some(text))
        }
        Some(f) => (std::path::absolute(f)?, None),
        None => (PathBuf::from("Dockerfile"), None),
    };
    let req = Request {
        context,
        dockerfile,
        inline,
        tags: a.tags.clone(),
        args: pairs(&a.build_args),
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        cache_from: a.cache_from.clone(),
        labels: pairs(&a.labels),
        secrets: a
            .secrets
            .iter()
            .map(|s| secret(s))
            .collect::<Result<_, _>>()?,
        ssh: a.ssh.iter().map(|s| ssh(s)).collect::<Result<_, _>>()?,
        network: a.network.clone(),
        extra_hosts: a.add_hosts.clone(),
        platform: a.platform.clone(),
        contexts: pairs(&a.build_contexts),
        shm_size: a
            .shm_size
            .as_deref()
            .map(|s| stack_model::parse_bytes(s).map(|b| b.max(0) as u64))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--shm-size: {e}"))?,
        ulimits: a
            .ulimits
            .iter()
            .map(|u| stack_host::create::parse_ulimit(u))
            .collect::<anyhow::Result<_>>()?,
        memory: memory(a.memory.as_deref())?,
        provenance: provenance(a.provenance.as_deref())?,
        sbom: sbom(a.sbom.as_deref())?,
    };
    let host = Host::new(crate::client::stack_root());
    let quiet = a.quiet || mode == crate::progress::Mode::Quiet;
    let numbers = numbers(mode);
    let p = Printer {
        quiet,
        prefix: String::new(),
        build: 0,
        numbers: &numbers,
    };
    let img = stack_host::build::build(&host, &req, &|e| p.say(e))?;
    if quiet {
        println!("{}", img.id);
    } else {
        eprintln!("writing image {} done", img.id);
        for t in &img.names {
            eprintln!("naming to {t} done");
        }
    }
    Ok(())
}

/// Builds `names`, all at once; the services whose image id changed.
pub fn build_services(
    host: &Host,
    project: &stack_model::Project,
    names: &[String],
    change: &(dyn Fn(&mut Request) + Sync),
    mode: crate::progress::Mode,
) -> anyhow::Result<Vec<String>> {
    let quiet = mode == crate::progress::Mode::Quiet;
    let store = host.images()?;
    let numbers = numbers(mode);
    let one = |i: usize, name: &String| -> anyhow::Result<(String, bool)> {
        let mut req = stack_host::build::service_request(project, name)?;
        change(&mut req);
        let before = store.lookup(&req.tags[0]).ok().map(|i| i.id);
        let p = Printer {
            quiet,
            prefix: name.clone(),
            build: i,
            numbers: &numbers,
        };
        let img = stack_host::build::build(host, &req, &|e| p.say(e))
            .with_context(|| format!("service {name}: build failed"))?;
        if !quiet {
            eprintln!("naming to {} done", req.tags.join(", "));
        }
        Ok((img.id.clone(), before.as_deref() != Some(img.id.as_str())))
    };
    // Standard output is the main thread's (main holds its lock): the ids
    // are printed here, after the builds.
    let results: Vec<anyhow::Result<(String, bool)>> = std::thread::scope(|scope| {
        let one = &one;
        let running: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| scope.spawn(move || one(i, name)))
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a build panicked")))
            })
            .collect()
    });
    let mut changed = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok((id, new)) => {
                if quiet {
                    println!("{id}");
                }
                if new {
                    changed.push(name.clone());
                }
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(changed)
}

/// `stack build [SERVICE...]`.
pub fn services(g: &Global, a: &ComposeBuildArgs) -> anyhow::Result<()> {
    if let Some(b) = a.builder.as_deref().filter(|b| *b != "default") {
        bail!("no builder `{b}`: stack has one builder, built in (`default`)");
    }
    let opts = crate::config::options(g, &a.services, false, false)?;
    let mut loaded = crate::config::load(&opts)?;
    // Secrets from the environment read as `up` reads them (the load's
    // environment, `.env` included); printed, they stay references.
    if !a.print {
        stack_host::load::contents_from_environment(&mut loaded)?;
    }
    let mut project = loaded.project;
    stack_host::load::name_built_images(&mut project);
    for s in &a.services {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    let wanted: Vec<String> = if a.with_dependencies && !a.services.is_empty() {
        stack_graph::Graph::from_project(&project)
            .with_dependencies(&a.services)
            .into_iter()
            .collect()
    } else if a.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        a.services.clone()
    };
    let names: Vec<String> = wanted
        .into_iter()
        .filter(|n| project.services.get(n).is_some_and(|s| s.build.is_some()))
        .collect();
    let args = pairs(&a.build_args);
    if a.print {
        let bake = bake(&project, &names, &args);
        println!("{}", serde_json::to_string_pretty(&bake)?);
        return Ok(());
    }
    if a.check {
        return check(&project, &names, &args);
    }
    let memory = memory(a.memory.as_deref())?;
    let attest = provenance(a.provenance.as_deref())?;
    let scan = sbom(a.sbom.as_deref())?;
    let ssh: Vec<(String, PathBuf)> = a.ssh.iter().map(|s| ssh(s)).collect::<Result<_, _>>()?;
    let host = Host::new(crate::client::stack_root());
    build_services(
        &host,
        &project,
        &names,
        &|r| {
            r.no_cache |= a.no_cache;
            r.pull |= a.pull;
            r.args.extend(args.clone());
            r.memory = memory.or(r.memory);
            if a.provenance.is_some() {
                r.provenance = attest;
            }
            if a.sbom.is_some() {
                r.sbom = scan;
            }
            r.ssh.extend(ssh.iter().cloned());
        },
        match a.quiet {
            true => crate::progress::Mode::Quiet,
            false => g.progress,
        },
    )?;
    Ok(())
}

/// `--provenance[=VALUE]`: none when not given.
fn provenance(p: Option<&str>) -> anyhow::Result<Option<stack_build::provenance::Mode>> {
    p.map(stack_build::provenance::Mode::parse)
        .transpose()
        .map(Option::flatten)
        .map_err(anyhow::Error::msg)
}

/// `--sbom[=VALUE]`: false when not given.
fn sbom(s: Option<&str>) -> anyhow::Result<bool> {
    s.map_or(Ok(false), |s| {
        stack_host::build::sbom_wanted(s).map_err(|e| anyhow::anyhow!("--{e}"))
    })
}

/// `--memory` in bytes.
fn memory(m: Option<&str>) -> anyhow::Result<Option<i64>> {
    m.map(stack_model::parse_bytes)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--memory: {e}"))
}

/// `build --print`: the builds as `docker buildx bake` takes them (JSON),
/// as compose prints them.
fn bake(
    project: &stack_model::Project,
    names: &[String],
    over: &BTreeMap<String, String>,
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut targets = Map::new();
    for name in names {
        let s = &project.services[name];
        let Some(b) = &s.build else { continue };
        let mut t = Map::new();
        let mut put = |k: &str, v: Value| {
            let empty = match &v {
                Value::Null | Value::Bool(false) => true,
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            if !empty {
                t.insert(k.into(), v);
            }
        };
        put("context", json!(b.context.as_deref().unwrap_or(".")));
        put(
            "dockerfile",
            json!(b.dockerfile.as_deref().unwrap_or("Dockerfile")),
        );
        put("dockerfile-inline", json!(b.dockerfile_inline));
        let mut args = stack_host::build::build_args(b);
        args.extend(over.clone());
        put("args", json!(args));
        put("labels", json!(b.labels.0));
        put(
            "tags",
            json!(s.image.iter().chain(&b.tags.0).collect::<Vec<_>>()),
        );
        put("target", json!(b.target));
        put("cache-from", json!(b.cache_from.0));
        put("cache-to", json!(b.cache_to.0));
        put("no-cache", json!(b.no_cache));
        put("no-cache-filter", json!(b.no_cache_filter.0));
        put("pull", json!(b.pull));
        put("network", json!(b.network));
        put("platforms", json!(b.platforms.0));
        put("contexts", json!(b.additional_contexts.0));
        put(
            "secret",
            json!(b
                .secrets
                .iter()
                .map(|r| {
                    let id = r.target.clone().unwrap_or_else(|| r.source.clone());
                    match project.secrets.get(&r.source) {
                        Some(d) if d.environment.is_some() => {
                            format!(
                                "id={id},type=env,env={}",
                                d.environment.as_deref().unwrap_or_default()
                            )
                        }
                        Some(d) => format!(
                            "id={id},type=file,src={}",
                            d.file.as_deref().unwrap_or_default()
                        ),
                        None => format!("id={id}"),
                    }
                })
                .collect::<Vec<_>>()),
        );
        put(
            "ssh",
            json!(b
                .ssh
                .0
                .iter()
                .map(|(id, p)| match p {
                    Some(p) => format!("{id}={p}"),
                    None => id.clone(),
                })
                .collect::<Vec<_>>()),
        );
        put(
            "extra-hosts",
            json!(b
                .extra_hosts
                .0
                .iter()
                .map(|(h, ips)| (h.clone(), ips.join(",")))
                .collect::<BTreeMap<_, _>>()),
        );
        put("shm-size", json!(b.shm_size.map(|s| s.0.to_string())));
        put(
            "entitlements",
            json!(b
                .entitlements
                .iter()
                .cloned()
                .chain(b.privileged.then(|| "security.insecure".to_string()))
                .collect::<Vec<_>>()),
        );
        put("output", json!(["type=docker"]));
        targets.insert(name.clone(), Value::Object(t));
    }
    json!({
        "group": {"default": {"targets": names}},
        "target": targets,
    })
}

/// `build --check`: the Dockerfiles' lint warnings, as BuildKit's checks
/// print them; an error when there is one.
fn check(
    project: &stack_model::Project,
    names: &[String],
    args: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut found = 0;
    for name in names {
        let mut req = stack_host::build::service_request(project, name)?;
        req.args.extend(args.clone());
        let (file, text) =
            stack_build::dockerfile(&req).with_context(|| format!("service {name}"))?;
        let df = stack_dockerfile::parse(&text)
            .map_err(|e| anyhow::anyhow!("service {name}: {file}:{}: {}", e.line, e.message))?;
        for w in stack_dockerfile::lint::check(&df, &text, &req.args) {
            found += 1;
            eprintln!(
                "WARNING: {} - https://docs.docker.com/go/dockerfile/rule/{}/\n{}\n{file}:{}\n",
                w.rule,
                kebab(w.rule),
                w.message,
                w.line
            );
        }
    }
    if found > 0 {
        bail!(
            "Check complete, {found} warning{} found",
            if found == 1 {
                " has been"
            } else {
                "s have been"
            }
        );
    }
    eprintln!("Check complete, no warnings found.");
    Ok(())
}

/// `JSONArgsRecommended` as its page's name: `json-args-recommended`.
fn kebab(rule: &str) -> String {
    let c: Vec<char> = rule.chars().collect();
    let mut out = String::new();
    for i in 0..c.len() {
        // A word starts at a capital after a small letter, or at the last
        // capital of a run followed by a small one (`JSONArgs`: json-args).
        let starts = i > 0
            && c[i].is_ascii_uppercase()
            && (c[i - 1].is_ascii_lowercase()
                || c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
        if starts {
            out.push('-');
        }
        out.push(c[i].to_ascii_lowercase());
    }
    out
}

/// The builds `up` makes first: with `--build` every selected service that
/// builds, else those whose image is missing or whose `pull_policy` is
/// `build`. The services whose image changed (to be recreated).
pub fn for_up(
    project: &stack_model::Project,
    services: &[String],
    all: bool,
    none: bool,
    quiet: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let host = Host::new(crate::client::stack_root());
    let store = host.images()?;
    let keep = stack_graph::Graph::from_project(project).with_dependencies(services);
    let names: Vec<String> = project
        .services
        .iter()
        .filter(|(n, s)| {
            s.build.is_some()
                && (services.is_empty() || keep.contains(*n))
                && (all
                    || s.pull_policy.as_deref() == Some("build")
                    || s.image.as_ref().is_none_or(|i| store.lookup(i).is_err()))
        })
        .map(|(n, _)| n.clone())
        .collect();
    if none || names.is_empty() {
        return Ok(Vec::new());
    }
    if dry_run {
        for n in &names {
            println!("step 0: build the image of service {n}");
        }
        return Ok(Vec::new());
    }
    let mode = match quiet {
        true => crate::progress::Mode::Quiet,
        false => crate::progress::Mode::Auto,
    };
    build_services(&host, project, &names, &|_| {}, mode)
}

/// `stack builder du` and `stack builder prune`.
pub fn builder(cmd: &crate::cli::BuilderCommand) -> anyhow::Result<()> {
    let host = Host::new(crate::client::stack_root());
    if let crate::cli::BuilderCommand::Du = cmd {
        let (steps, bytes) = stack_build::cache_usage(&host.images()?);
        println!("Steps: {steps}");
        println!("Size: {:.1}MB", bytes as f64 / 1e6);
        return Ok(());
    }
    let (steps, c) = stack_host::images::prune_build_cache(&host)?;
    println!(
        "Deleted build cache: {steps} steps, {} layers, {} blobs",
        c.layers, c.blobs
    );
    println!("Total reclaimed space: {:.1}MB", c.bytes as f64 / 1e6);
    Ok(())
}
