//! `stack config` and `stack graph`.

use std::io::Write;

use anyhow::{bail, Context as _};

use crate::cli::{ConfigArgs, Format, Global, GraphArgs, GraphFormat};

/// Loader options from the command line and the process environment.
pub fn options(
    g: &Global,
    services: &[String],
    no_interpolate: bool,
    no_normalize: bool,
) -> anyhow::Result<stack_loader::Options> {
    let working_dir = std::env::current_dir().context("cannot read the working directory")?;
    let stdin = if g.files.iter().any(|f| f.as_os_str() == "-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read the stack file from standard input")?;
        Some(s)
    } else {
        None
    };
    Ok(stack_loader::Options {
        working_dir,
        files: g.files.clone(),
        stdin,
        project_directory: g.project_directory.clone(),
        project_name: g.project_name.clone(),
        env_files: g.env_files.clone(),
        profiles: g.profiles.clone(),
        services: services.to_vec(),
        shell: std::env::vars().collect(),
        home: std::env::var_os("HOME").map(Into::into),
        no_interpolate,
        no_normalize,
        only_used_resources: !g.all_resources,
        ..Default::default()
    })
}

/// Loads the project, printing warnings to standard error.
pub fn load(opts: &stack_loader::Options) -> anyhow::Result<stack_loader::Loaded> {
    let loaded = stack_loader::load(opts)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

fn lines<'a>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<()> {
    for i in items {
        writeln!(out, "{i}")?;
    }
    Ok(())
}

pub fn config(g: &Global, args: &ConfigArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut opts = options(
        g,
        &args.service_names,
        args.no_interpolate,
        args.no_normalize,
    )?;
    opts.no_path_resolution = args.no_path_resolution;
    opts.no_consistency = args.no_consistency;
    opts.no_env_resolution = args.no_env_resolution;
    let mut loaded = load(&opts)?;
    if args.environment {
        let mut vars: Vec<(&str, &str)> = loaded.env.iter().map(|(k, v, _)| (k, v)).collect();
        vars.sort();
        for (k, v) in vars {
            writeln!(out, "{k}={v}")?;
        }
        return Ok(());
    }
    let project = &mut loaded.project;
    for s in &args.service_names {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    if !args.service_names.is_empty() {
        let keep = stack_graph::Graph::from_project(project).with_dependencies(&args.service_names);
        project.services.retain(|k, _| keep.contains(k));
    }
    // What this host will not apply (`up` refuses the first kind).
    let verdict = stack_host::keys::check(project, &[]);
    for e in &verdict.errors {
        eprintln!("warning: {e} (up refuses it)");
    }
    for w in &verdict.warnings {
        eprintln!("warning: {w}");
    }
    if args.quiet {
        return Ok(());
    }
    if args.services {
        return lines(out, project.services.keys());
    }
    if args.volumes {
        return lines(out, project.volumes.keys());
    }
    if args.networks {
        return lines(out, project.networks.keys());
    }
    if args.profiles {
        return lines(out, loaded.profiles.iter());
    }
    if args.models {
        return lines(out, project.models.keys());
    }
    if args.resolve_image_digests || args.lock_image_digests {
        let pinned = pinned_images(project)?;
        if args.lock_image_digests {
            let services: serde_json::Map<String, serde_json::Value> = pinned
                .into_iter()
                .map(|(k, v)| (k, serde_json::json!({"image": v})))
                .collect();
            let text = stack_loader::render::to_yaml(&serde_json::json!({"services": services}))?;
            out.write_all(text.as_bytes())?;
            return Ok(());
        }
        for (name, image) in pinned {
            if let Some(s) = project.services.get_mut(&name) {
                s.image = Some(image);
            }
        }
    }
    if args.images {
        let images: Vec<String> = project
            .services
            .iter()
            .map(|(name, s)| {
                s.image
                    .clone()
                    .unwrap_or_else(|| format!("{}-{name}", project.name))
            })
            .collect();
        return lines(out, images.iter());
    }
    if let Some(h) = &args.hash {
        for name in h.split(',').map(str::trim) {
            let matched: Vec<_> = project
                .services
                .iter()
                .filter(|(k, _)| name == "*" || *k == name)
                .collect();
            if matched.is_empty() {
                bail!("no such service: `{name}`");
            }
            for (k, s) in matched {
                writeln!(out, "{k} {}", stack_plan::hash_service(s))?;
            }
        }
        return Ok(());
    }
    if args.variables {
        writeln!(
            out,
            "{:<28} {:<24} {:<10} SOURCE",
            "NAME", "VALUE", "REQUIRED"
        )?;
        for (name, default, required, _) in &loaded.variables {
            let (value, source) = match loaded.env.get(name) {
                Some(v) => (
                    v.to_string(),
                    loaded
                        .env
                        .source(name)
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                ),
                None => match default {
                    Some(d) => (d.clone(), "default".to_string()),
                    None => (String::new(), "unset".to_string()),
                },
            };
            writeln!(
                out,
                "{name:<28} {value:<24} {:<10} {source}",
                if *required { "true" } else { "false" }
            )?;
        }
        return Ok(());
    }
    let text = match args.format {
        Format::Yaml => stack_loader::render::to_yaml(project)?,
        Format::Json => stack_loader::render::to_json(project)?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

pub fn graph(g: &Global, args: &GraphArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let opts = options(g, &[], false, false)?;
    let loaded = load(&opts)?;
    let graph = stack_graph::Graph::from_project(&loaded.project);
    match args.format {
        GraphFormat::Dot => out.write_all(graph.to_dot(&loaded.project.name).as_bytes())?,
        GraphFormat::Mermaid => out.write_all(graph.to_mermaid().as_bytes())?,
        GraphFormat::Waves => {
            let waves = graph
                .waves()
                .map_err(|c| anyhow::anyhow!("dependency cycle: {}", c[0]))?;
            for (i, w) in waves.iter().enumerate() {
                writeln!(out, "wave {}: {}", i + 1, w.join(" "))?;
            }
        }
    }
    Ok(())
}

/// `stack pull`: the images of the stack's services (those of the named
/// services and their dependencies, or all).
pub fn pull(g: &Global, args: &crate::cli::PullArgs) -> anyhow::Result<()> {
    let opts = options(g, &args.services, false, false)?;
    let loaded = load(&opts)?;
    let project = &loaded.project;
    let keep = match args.include_deps {
        true => stack_graph::Graph::from_project(project).with_dependencies(&args.services),
        false => args.services.clone(),
    };
    let here = match args.policy.as_deref() {
        Some("missing") => Some(stack_host::Host::new(crate::client::stack_root()).images()?),
        _ => None,
    };
    let mut images = Vec::new();
    for (name, svc) in &project.services {
        if !args.services.is_empty() && !keep.contains(name) {
            continue;
        }
        let present = |i: &String| here.as_ref().is_some_and(|s| s.lookup(i).is_ok());
        if svc.image.as_ref().is_some_and(present) {
            continue;
        }
        let buildable = svc.build.is_some();
        if buildable && args.ignore_buildable {
            continue;
        }
        if let Some(image) = &svc.image {
            images.push(stack_api::PullImage {
                reference: image.clone(),
                platform: svc.platform.clone(),
                buildable,
            });
        }
    }
    let req = stack_api::PullRequest {
        images,
        ignore_failures: args.ignore_pull_failures,
    };
    let mode = match args.quiet {
        true => crate::progress::Mode::Quiet,
        false => g.progress,
    };
    crate::progress::call("/v1/images/pull", &req, mode)?;
    Ok(())
}

/// Each service's image pinned to the digest the local store has it by
/// (from its pull or push): `name:tag@sha256:…`. An image with no digest
/// (built or imported here and never pushed) is said and left as it is.
pub(crate) fn pinned_images(
    project: &stack_model::Project,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let host = stack_host::Host::new(crate::client::stack_root());
    let store = host.images()?;
    let mut out = std::collections::BTreeMap::new();
    for (name, s) in &project.services {
        let Some(image) = &s.image else { continue };
        if image.contains('@') {
            out.insert(name.clone(), image.clone());
            continue;
        }
        // The digest it has for this repository (else its first one).
        let repo = |r: &str| {
            stack_image::reference::Reference::parse(r)
                .ok()
                .map(|r| (r.registry, r.repository))
        };
        let digest = store.lookup(image).ok().and_then(|img| {
            img.repo_digests
                .iter()
                .find(|d| repo(d).is_some() && repo(d) == repo(image))
                .or(img.repo_digests.first())
                .and_then(|d| d.split_once('@').map(|(_, d)| d.to_string()))
        });
        match digest {
            Some(d) => {
                out.insert(name.clone(), format!("{image}@{d}"));
            }
            None => eprintln!(
                "warning: service {name}: the image `{image}` has no registry digest here (pull or push it first); left as it is"
            ),
        }
    }
    Ok(out)
}
