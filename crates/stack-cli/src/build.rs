//! `stack image build`, `stack build` and the builds of `up`: the builder
//! runs in this process (as `docker compose` builds before it creates),
//! its steps printed as BuildKit's plain progress on standard error.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use stack_build::{Event, Request};
use stack_host::Host;

use crate::cli::image::BuildArgs;
use crate::cli::{ComposeBuildArgs, Global};

/// Prints a build's events: `#3 [app 2/4] RUN make`, its output lines
/// with their time into the step, `#3 CACHED` or `#3 DONE 1.2s`.
struct Printer {
    quiet: bool,
    prefix: String,
    started: RefCell<HashMap<usize, Instant>>,
}

impl Printer {
    fn new(quiet: bool, prefix: &str) -> Printer {
        Printer {
            quiet,
            prefix: prefix.to_string(),
            started: RefCell::default(),
        }
    }

    fn say(&self, e: Event) {
        if self.quiet {
            if let Event::Warning(w) = e {
                eprintln!("WARNING: {w}");
            }
            return;
        }
        match e {
            Event::Step { n, title } => {
                self.started.borrow_mut().insert(n, Instant::now());
                let title = match self.prefix.is_empty() {
                    true => title,
                    false => title.replacen('[', &format!("[{} ", self.prefix), 1),
                };
                eprintln!("#{n} {title}");
            }
            Event::Line { n, text } => {
                let t = self
                    .started
                    .borrow()
                    .get(&n)
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                eprintln!("#{n} {t:.3} {text}");
            }
            Event::Cached { n } => eprintln!("#{n} CACHED"),
            Event::Done { n, seconds } => eprintln!("#{n} DONE {seconds:.1}s"),
            Event::Warning(w) => eprintln!("WARNING: {w}"),
        }
    }
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

/// `stack image build`.
pub fn image(a: &BuildArgs) -> anyhow::Result<()> {
    if !a.ssh.is_empty() {
        bail!("--ssh: SSH agent forwarding is not supported yet");
    }
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
        labels: pairs(&a.labels),
        secrets: a
            .secrets
            .iter()
            .map(|s| secret(s))
            .collect::<Result<_, _>>()?,
        network: a.network.clone(),
        extra_hosts: a.add_hosts.clone(),
        platform: a.platform.clone(),
        contexts: pairs(&a.build_contexts),
    };
    let host = Host::new(crate::client::stack_root());
    let quiet = a.quiet;
    let p = Printer::new(quiet, "");
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

/// Builds `names`, one after the other; the services whose image id changed.
pub fn build_services(
    host: &Host,
    project: &stack_model::Project,
    names: &[String],
    change: &dyn Fn(&mut Request),
    quiet: bool,
) -> anyhow::Result<Vec<String>> {
    let store = host.images()?;
    let mut changed = Vec::new();
    for name in names {
        let mut req = stack_host::build::service_request(project, name)?;
        change(&mut req);
        let before = store.lookup(&req.tags[0]).ok().map(|i| i.id);
        let p = Printer::new(quiet, name);
        let img = stack_host::build::build(host, &req, &|e| p.say(e))
            .with_context(|| format!("service {name}: build failed"))?;
        if quiet {
            println!("{}", img.id);
        } else {
            eprintln!("naming to {} done", req.tags.join(", "));
        }
        if before.as_deref() != Some(img.id.as_str()) {
            changed.push(name.clone());
        }
    }
    Ok(changed)
}

/// `stack build [SERVICE...]`.
pub fn services(g: &Global, a: &ComposeBuildArgs) -> anyhow::Result<()> {
    let opts = crate::config::options(g, &a.services, false, false)?;
    let mut project = crate::config::load(&opts)?.project;
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
    let host = Host::new(crate::client::stack_root());
    build_services(
        &host,
        &project,
        &names,
        &|r| {
            r.no_cache |= a.no_cache;
            r.pull |= a.pull;
            r.args.extend(args.clone());
        },
        a.quiet,
    )?;
    Ok(())
}

/// The builds `up` makes first: with `--build` every selected service that
/// builds, else those whose image is missing or whose `pull_policy` is
/// `build`. The services whose image changed (to be recreated).
pub fn for_up(
    project: &stack_model::Project,
    services: &[String],
    all: bool,
    none: bool,
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
    build_services(&host, project, &names, &|_| {}, false)
}

/// `stack builder prune`.
pub fn builder(cmd: &crate::cli::BuilderCommand) -> anyhow::Result<()> {
    let crate::cli::BuilderCommand::Prune { .. } = cmd;
    let host = Host::new(crate::client::stack_root());
    let (steps, c) = stack_host::images::prune_build_cache(&host)?;
    println!(
        "Deleted build cache: {steps} steps, {} layers, {} blobs",
        c.layers, c.blobs
    );
    println!("Total reclaimed space: {:.1}MB", c.bytes as f64 / 1e6);
    Ok(())
}
