//! `stack up`, `down`, `ps` and `port`: the project's services as
//! containers, planned by stack-plan and carried out here, directly (the
//! engine process of the design comes later; this is its executor).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use stack_model::{Project, Service};
use stack_plan::{Existing, Op, Plan, Wanted, WantedNetwork};

use crate::cli::{Global, UpArgs};
use crate::container::{stack_root, RunArgs};

fn load(g: &Global) -> anyhow::Result<Project> {
    let opts = crate::config::options(g, &[], false, false)?;
    Ok(crate::config::load(&opts)?.project)
}

fn network_name(project: &Project, key: &str) -> String {
    project
        .networks
        .get(key)
        .and_then(|n| n.name.clone())
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

fn wanted_networks(project: &Project) -> Vec<WantedNetwork> {
    project
        .networks
        .iter()
        .map(|(key, n)| WantedNetwork {
            key: key.clone(),
            name: network_name(project, key),
            external: n.external.0,
        })
        .collect()
}

fn replicas(s: &Service) -> u32 {
    s.scale
        .or(s.deploy.as_ref().and_then(|d| d.replicas))
        .unwrap_or(1)
        .max(0) as u32
}

fn existing(project: &str) -> Vec<Existing> {
    crate::lifecycle::project_containers(&stack_root(), project)
        .into_iter()
        .map(|(st, running)| Existing {
            service: label(&st, stack_plan::LABEL_SERVICE),
            number: label(&st, stack_plan::LABEL_NUMBER).parse().unwrap_or(0),
            hash: label(&st, stack_plan::LABEL_HASH),
            id: st.id,
            name: st.name,
            running,
        })
        .collect()
}

/// A label of a container, or "".
fn label(st: &stack_runtime::State, key: &str) -> String {
    st.spec.labels.get(key).cloned().unwrap_or_default()
}

fn host_networks() -> anyhow::Result<Vec<String>> {
    Ok(crate::network::store()?
        .networks()?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

fn print_plan(plan: &Plan) {
    for (i, wave) in plan.waves.iter().enumerate() {
        for op in wave.iter().flatten() {
            println!("step {}: {op}", i + 1);
        }
    }
    if plan.is_empty() {
        println!("nothing to do: the stack is as its file says");
    }
}

pub fn up(g: &Global, args: &UpArgs) -> anyhow::Result<()> {
    if !args.detach {
        bail!("only `stack up -d` for now: attached mode (log streaming) comes with the engine");
    }
    let project = load(g)?;
    for s in &args.services {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    let graph = stack_graph::Graph::from_project(&project);
    let waves = graph
        .waves()
        .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
    let selected = if args.services.is_empty() || args.no_deps {
        args.services.clone()
    } else {
        graph.with_dependencies(&args.services)
    };
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
    let wanted: Vec<Wanted> = project
        .services
        .iter()
        .filter(|(name, _)| selected.is_empty() || selected.contains(name))
        .map(|(name, s)| Wanted {
            service: name.clone(),
            hash: stack_loader::hash_service(s),
            replicas: scale.get(name).copied().unwrap_or_else(|| replicas(s)),
            container_name: s.container_name.clone(),
        })
        .collect();
    let mut have = existing(&project.name);
    if !selected.is_empty() {
        // Others are left alone, not orphans.
        have.retain(|e| {
            selected.contains(&e.service) || !project.services.contains_key(&e.service)
        });
    }
    let opts = stack_plan::UpOptions {
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
    };
    let plan = stack_plan::up(
        &project.name,
        &wanted,
        &waves,
        &wanted_networks(&project),
        &host_networks()?,
        &have,
        &opts,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    if args.dry_run {
        print_plan(&plan);
        return Ok(());
    }
    execute(&project, &plan)
}

pub fn down(g: &Global, remove_orphans: bool) -> anyhow::Result<()> {
    let project = load(g)?;
    let graph = stack_graph::Graph::from_project(&project);
    let waves = graph
        .stop_waves()
        .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
    let mut have = existing(&project.name);
    if !remove_orphans {
        let orphans: Vec<String> = have
            .iter()
            .filter(|e| !project.services.contains_key(&e.service))
            .map(|e| e.name.clone())
            .collect();
        if !orphans.is_empty() {
            eprintln!(
                "warning: found orphan containers ({}): remove them with --remove-orphans",
                orphans.join(", ")
            );
        }
        have.retain(|e| project.services.contains_key(&e.service));
    }
    let plan = stack_plan::down(&waves, &wanted_networks(&project), &host_networks()?, &have);
    execute(&project, &plan)
}

/// Runs the plan: waves one after the other, the tasks of a wave in
/// parallel. Every failure is reported; the first wave with one is the last.
fn execute(project: &Project, plan: &Plan) -> anyhow::Result<()> {
    for wave in &plan.waves {
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|task| {
                    s.spawn(move || -> anyhow::Result<()> {
                        for op in task {
                            run_op(project, op)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let failures: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|e| format!("{e:#}"))
            .collect();
        if !failures.is_empty() {
            bail!("{}", failures.join("\n"));
        }
    }
    Ok(())
}

fn run_op(project: &Project, op: &Op) -> anyhow::Result<()> {
    match op {
        Op::CreateNetwork { key, name } => {
            let n = &project.networks[key];
            fn parse<T: std::str::FromStr>(
                key: &str,
                what: &str,
                v: &Option<String>,
            ) -> anyhow::Result<Option<T>> {
                v.as_deref()
                    .map(|s| {
                        s.parse::<T>()
                            .map_err(|_| anyhow::anyhow!("network {key}: invalid {what} `{s}`"))
                    })
                    .transpose()
            }
            let mut subnets = Vec::new();
            for c in &n.ipam.config {
                subnets.push(stack_net::SubnetRequest {
                    subnet: parse(key, "subnet", &c.subnet)?,
                    gateway: parse(key, "gateway", &c.gateway)?,
                    ip_range: parse(key, "ip_range", &c.ip_range)?,
                    aux_addresses: c
                        .aux_addresses
                        .0
                        .values()
                        .map(|v| {
                            v.parse().with_context(|| {
                                format!("network {key}: invalid aux address `{v}`")
                            })
                        })
                        .collect::<anyhow::Result<_>>()?,
                });
            }
            let mut labels = n.labels.0.clone();
            labels.insert("com.docker.compose.project".into(), project.name.clone());
            labels.insert("com.docker.compose.network".into(), key.clone());
            let opts = stack_net::CreateOptions {
                name: name.clone(),
                driver: n.driver.clone(),
                driver_opts: n.driver_opts.0.clone(),
                subnets,
                ipv6: n.enable_ipv6.unwrap_or(false),
                internal: n.internal,
                labels,
            };
            crate::network::create(&opts)?;
            eprintln!(" ✔ Network {name}  Created");
        }
        Op::RemoveNetwork { name } => {
            crate::async_runtime()?.block_on(stack_net::remove(&crate::network::store()?, name))?;
            eprintln!(" ✔ Network {name}  Removed");
        }
        Op::Remove { id, name, .. } => {
            crate::lifecycle::stop_and_remove(&stack_root(), id)?;
            eprintln!(" ✔ Container {name}  Removed");
        }
        Op::Run {
            service,
            number,
            name,
            ..
        } => {
            let s = &project.services[service];
            let args = run_args(project, service, s, *number, name)?;
            crate::container::run_container(&args).with_context(|| format!("service {service}"))?;
            eprintln!(" ✔ Container {name}  Started");
        }
        Op::Start { id, name, .. } => {
            // Stopped containers are made again (their config is unchanged).
            let st = crate::lifecycle::project_containers(&stack_root(), &project.name)
                .into_iter()
                .find(|(st, _)| &st.id == id)
                .map(|(st, _)| st)
                .ok_or_else(|| anyhow::anyhow!("container {name} is gone"))?;
            let service = label(&st, stack_plan::LABEL_SERVICE);
            let number: u32 = st
                .spec
                .labels
                .get(stack_plan::LABEL_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            crate::lifecycle::stop_and_remove(&stack_root(), id)?;
            let s = &project.services[&service];
            crate::container::run_container(&run_args(project, &service, s, number, name)?)?;
            eprintln!(" ✔ Container {name}  Started");
        }
    }
    Ok(())
}

/// What `container run` needs for replica `number` of a service.
fn run_args(
    project: &Project,
    service: &str,
    s: &Service,
    number: u32,
    name: &str,
) -> anyhow::Result<RunArgs> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }
    let Some(image) = &s.image else {
        bail!("service {service} has no image (builds are not supported yet)");
    };
    ensure_image(image, s)?;
    let mut a = Wrap::try_parse_from(["run"])?.run;
    a.detach = true;
    a.quiet = true;
    a.name = Some(name.to_string());
    a.args = std::iter::once(image.clone())
        .chain(s.command.clone().map(|c| c.0).unwrap_or_default())
        .collect();
    a.entrypoint = s.entrypoint.clone().map(|e| e.0);
    a.env = s
        .environment
        .0
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    a.workdir = s.working_dir.clone();
    a.user = s.user.clone();
    a.hostname = s.hostname.clone();
    a.cap_add = s.cap_add.clone();
    a.cap_drop = s.cap_drop.clone();
    a.privileged = s.privileged;
    a.read_only = s.read_only;
    a.tty = s.tty;
    a.interactive = s.stdin_open;
    a.no_init = s.init == Some(false);
    a.stop_signal = s.stop_signal.clone();
    a.stop_timeout = s
        .stop_grace_period
        .map(|d| (d.as_nanos() / 1_000_000_000).max(0) as u64);
    a.security_opt = s.security_opt.clone();
    a.tmpfs = s.tmpfs.0.clone();
    a.dns = s.dns.0.clone();
    a.dns_search = s.dns_search.0.clone();
    a.dns_option = s.dns_opt.clone();
    a.add_host = s
        .extra_hosts
        .0
        .iter()
        .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}:{ip}")))
        .collect();
    a.memory = s.mem_limit.map(|b| b.0.to_string());
    a.cpus = s.cpus.map(|c| f64::from(c.0));
    a.pids_limit = s.pids_limit;
    a.shm_size = s.shm_size.map(|b| b.0.to_string());
    a.sysctls = s
        .sysctls
        .0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    a.labels = s.labels.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (k, v) in [
        (stack_plan::LABEL_PROJECT, project.name.clone()),
        (stack_plan::LABEL_SERVICE, service.to_string()),
        (stack_plan::LABEL_NUMBER, number.to_string()),
        (stack_plan::LABEL_HASH, stack_loader::hash_service(s)),
    ] {
        a.labels.push(format!("{k}={v}"));
    }
    for p in &s.ports {
        let mut spec = String::new();
        if let Some(ip) = &p.host_ip {
            spec.push_str(&if ip.contains(':') {
                format!("[{ip}]:")
            } else {
                format!("{ip}:")
            });
        }
        match p.published.as_ref().and_then(|t| t.0.clone()) {
            Some(pubd) => spec.push_str(&format!("{pubd}:")),
            None if p.host_ip.is_some() => spec.push(':'),
            None => {}
        }
        spec.push_str(&format!(
            "{}/{}",
            p.target,
            p.protocol.as_deref().unwrap_or("tcp")
        ));
        a.publish.push(spec);
    }
    for v in &s.volumes {
        match v.kind.as_str() {
            "bind" => {
                let src = v.source.clone().unwrap_or_default();
                std::fs::create_dir_all(&src).ok();
                a.volumes.push(format!(
                    "{src}:{}{}",
                    v.target,
                    if v.read_only { ":ro" } else { "" }
                ));
            }
            "tmpfs" => a.tmpfs.push(v.target.clone()),
            "volume" => {
                // Named volumes live under the root and outlive `down`;
                // anonymous ones go with the container.
                let source = match &v.source {
                    Some(n) => {
                        let full = project
                            .volumes
                            .get(n)
                            .and_then(|x| x.name.clone())
                            .unwrap_or_else(|| format!("{}_{n}", project.name));
                        stack_root().join("volumes").join(full).join("_data")
                    }
                    None => Path::new("/nonexistent").to_path_buf(),
                };
                if v.source.is_some() {
                    a.extra_mounts.push(stack_runtime::Mount {
                        kind: "volume".into(),
                        source,
                        target: v.target.clone(),
                        read_only: v.read_only,
                        size: None,
                    });
                }
            }
            other => bail!("service {service}: volumes of type `{other}` are not supported yet"),
        }
    }
    match s.network_mode.as_deref() {
        Some("host") => a.network = vec!["host".into()],
        Some("none") => a.network = vec!["none".into()],
        Some(m) if m.starts_with("container:") => a.network = vec![m.to_string()],
        Some(m) if m.starts_with("service:") => {
            let other = &m["service:".len()..];
            a.network = vec![format!("container:{}-{other}-1", project.name)];
        }
        Some(m) => bail!("service {service}: network_mode `{m}` is not supported"),
        None => {
            let mut nets: Vec<(&String, &Option<stack_model::ServiceNetwork>)> =
                s.networks.iter().collect();
            nets.sort_by_key(|(_, n)| std::cmp::Reverse(n.as_ref().map_or(0, |n| n.gw_priority)));
            a.network = nets.iter().map(|(k, _)| network_name(project, k)).collect();
            a.network_alias = std::iter::once(service.to_string())
                .chain(
                    nets.iter()
                        .flat_map(|(_, n)| n.iter().flat_map(|n| n.aliases.clone())),
                )
                .collect();
            if let Some((_, Some(first))) = nets.first() {
                a.ip = first.ipv4_address.clone();
                a.ip6 = first.ipv6_address.clone();
                a.mac_address = first.mac_address.clone().or_else(|| s.mac_address.clone());
            }
        }
    }
    Ok(a)
}

/// Pulls a missing image unless the service says never.
fn ensure_image(image: &str, s: &Service) -> anyhow::Result<()> {
    let store = crate::image::store()?;
    let policy = s.pull_policy.as_deref().unwrap_or("missing");
    if store.lookup(image).is_ok() && policy != "always" {
        return Ok(());
    }
    if policy == "never" {
        bail!("image `{image}` is not here and pull_policy is never");
    }
    crate::registry::pull(image, s.platform.as_deref(), true)
        .with_context(|| format!("image `{image}` is not here"))
}

pub fn ps(g: &Global, all: bool, quiet: bool) -> anyhow::Result<()> {
    let project = load(g)?;
    let mut rows = crate::lifecycle::project_containers(&stack_root(), &project.name);
    rows.retain(|(_, running)| all || *running);
    rows.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    if !quiet {
        println!("{:<28}{:<14}{:<22}PORTS", "NAME", "SERVICE", "STATUS");
    }
    for (st, _) in rows {
        if quiet {
            println!("{}", st.id);
            continue;
        }
        let ports = crate::network::ports_of(&st.id)?.join(", ");
        let service = label(&st, stack_plan::LABEL_SERVICE);
        println!(
            "{:<28}{:<14}{:<22}{ports}",
            st.name,
            service,
            crate::lifecycle::status_of(&st)
        );
    }
    Ok(())
}

/// `stack port SERVICE PORT [--index N]`: the host side of a published port.
pub fn port(g: &Global, service: &str, port: &str, index: u32) -> anyhow::Result<()> {
    let project = load(g)?;
    let st = crate::lifecycle::project_containers(&stack_root(), &project.name)
        .into_iter()
        .map(|(st, _)| st)
        .find(|st| {
            st.spec
                .labels
                .get(stack_plan::LABEL_SERVICE)
                .map(String::as_str)
                == Some(service)
                && st
                    .spec
                    .labels
                    .get(stack_plan::LABEL_NUMBER)
                    .map(String::as_str)
                    == Some(&index.to_string())
        })
        .ok_or_else(|| anyhow::anyhow!("no container for service `{service}` (replica {index})"))?;
    crate::lifecycle::port(&stack_root(), &st.id, Some(port))
}
