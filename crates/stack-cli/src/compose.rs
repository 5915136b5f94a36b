//! The compose commands as a client of the engine: the project is loaded
//! here (files, variables, the working directory are the user's), the
//! engine plans and acts (crate::reconcile), and what it reports is printed
//! as docker compose prints it.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use stack_api::{ContainerSummary, DownRequest, Event, ProjectSummary, UpRequest};

use crate::cli::{Global, UpArgs};

fn load(g: &Global) -> anyhow::Result<stack_loader::Loaded> {
    let opts = crate::config::options(g, &[], false, false)?;
    crate::config::load(&opts)
}

/// Runs a streamed engine call, printing its events; returns how many
/// plan lines came.
fn call<B: serde::Serialize>(path: &str, body: &B) -> anyhow::Result<usize> {
    let (rt, client) = crate::engine::client()?;
    let mut planned = 0;
    rt.block_on(client.post_stream(path, body, |e| match e {
        Event::Progress {
            object,
            name,
            action,
        } => eprintln!(" ✔ {object} {name}  {action}"),
        Event::Warning { message } => eprintln!("warning: {message}"),
        Event::Plan { line } => {
            planned += 1;
            println!("{line}");
        }
        Event::Error { .. } | Event::Done => {}
    }))?;
    Ok(planned)
}

fn get<T: serde::de::DeserializeOwned>(path: &str) -> anyhow::Result<T> {
    let (rt, client) = crate::engine::client()?;
    Ok(rt.block_on(client.get(path))?)
}

pub fn up(g: &Global, args: &UpArgs) -> anyhow::Result<()> {
    if !args.detach {
        bail!("only `stack up -d` for now: attached mode (log streaming) comes later");
    }
    let loaded = load(g)?;
    let mut scale: BTreeMap<String, u32> = BTreeMap::new();
    for s in &args.scale {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid --scale `{s}`: expected SERVICE=N"))?;
        scale.insert(
            k.to_string(),
            v.parse()
                .with_context(|| format!("invalid --scale `{s}`"))?,
        );
    }
    let req = UpRequest {
        working_dir: loaded.project_dir.display().to_string(),
        config_files: loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        services: args.services.clone(),
        no_deps: args.no_deps,
        scale,
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        dry_run: args.dry_run,
        project: loaded.project,
    };
    let planned = call(&format!("/v1/projects/{}/up", req.project.name), &req)?;
    if args.dry_run && planned == 0 {
        println!("nothing to do: the stack is as its file says");
    }
    Ok(())
}

pub fn down(g: &Global, remove_orphans: bool) -> anyhow::Result<()> {
    let req = DownRequest {
        project: load(g)?.project,
        remove_orphans,
    };
    call(&format!("/v1/projects/{}/down", req.project.name), &req)?;
    Ok(())
}

pub fn ps(g: &Global, all: bool, quiet: bool) -> anyhow::Result<()> {
    let project = load(g)?.project;
    let rows: Vec<ContainerSummary> = get(&format!(
        "/v1/projects/{}/containers{}",
        project.name,
        if all { "?all=1" } else { "" }
    ))?;
    if !quiet {
        println!("{:<28}{:<14}{:<22}PORTS", "NAME", "SERVICE", "STATUS");
    }
    for c in rows {
        if quiet {
            println!("{}", c.id);
        } else {
            println!(
                "{:<28}{:<14}{:<22}{}",
                c.name,
                c.service,
                c.status,
                c.ports.join(", ")
            );
        }
    }
    Ok(())
}

/// `stack ls`: every project on this host.
pub fn ls(quiet: bool) -> anyhow::Result<()> {
    let projects: Vec<ProjectSummary> = get("/v1/projects")?;
    if !quiet {
        println!("{:<20}{:<24}CONFIG FILES", "NAME", "STATUS");
    }
    for p in projects {
        if quiet {
            println!("{}", p.name);
        } else {
            println!("{:<20}{:<24}{}", p.name, p.status, p.config_files);
        }
    }
    Ok(())
}

/// `stack port SERVICE PORT [--index N]`: the host side of a published port.
pub fn port(g: &Global, service: &str, port: &str, index: u32) -> anyhow::Result<()> {
    let project = load(g)?.project;
    let rows: Vec<ContainerSummary> = get(&format!("/v1/projects/{}/containers", project.name))?;
    let c = rows
        .into_iter()
        .find(|c| c.service == service && c.number == index)
        .ok_or_else(|| anyhow::anyhow!("no container for service `{service}` (replica {index})"))?;
    crate::lifecycle::port(&crate::container::stack_root(), &c.id, Some(port))
}
