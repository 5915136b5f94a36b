//! A service's replica as a container: the stack file's keys in the
//! terms of a plain [`ContainerConfig`], labelled as compose labels its
//! containers; its named volumes, `volumes_from`, secrets and configs as
//! mounts; and the one-off containers of `stack run`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use stack_api::RunRequest;
use stack_engine::{network_name, volume_name, Origin, Replica};
use stack_model::{Project, Service};

use crate::{ContainerConfig, Host};

pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";

/// The container of a service's replica.
pub fn config(host: &Host, r: &Replica<'_>) -> anyhow::Result<ContainerConfig> {
    let Replica {
        origin,
        service,
        number,
        name,
    } = *r;
    let project = origin.project;
    let s = &project.services[service];
    let image = image_of(service, s)?;
    let mut a = ContainerConfig {
        name: Some(name.to_string()),
        args: std::iter::once(image.clone())
            .chain(s.command.clone().map(|c| c.0).unwrap_or_default())
            .collect(),
        ..ContainerConfig::default()
    };
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
    a.domainname = s.domainname.clone();
    a.cap_add = s.cap_add.clone();
    a.cap_drop = s.cap_drop.clone();
    a.privileged = s.privileged;
    a.read_only = s.read_only;
    if s.use_api_socket {
        // The engine's Docker API, where Docker clients look for it, and
        // the registry credentials the engine has, where they look for
        // those (as compose passes the user's).
        let socket = host.root().join("docker.sock");
        a.volumes
            .push(format!("{}:/var/run/docker.sock", socket.display()));
        let auths = stack_image::auth::AuthSources::from_env()
            .resolved()
            .with_context(|| format!("service {service}: use_api_socket"))?;
        stack_model::names::check(stack_model::names::Kind::Service, service)?;
        let dir = stack_sys::join(&project_dir(host.root(), &project.name)?, service)?;
        stack_sys::private_dir(&dir)?;
        let path = dir.join("docker-config.json");
        stack_image::auth::write_file(&path, &auths)?;
        a.volumes
            .push(format!("{}:/root/.docker/config.json:ro", path.display()));
    }
    a.tty = s.tty;
    a.interactive = s.stdin_open;
    a.no_init = s.init == Some(false);
    (a.health, a.no_healthcheck) = crate::supervision::health_of(service, s)?;
    a.restart = crate::supervision::restart_of(service, s)?;
    a.stop_signal = s.stop_signal.clone();
    a.stop_timeout = s
        .stop_grace_period
        .map(|d| (d.as_nanos() / 1_000_000_000).max(0) as u64);
    // A profile file is relative to the project directory.
    a.security_opt = s
        .security_opt
        .iter()
        .map(|o| match o.split_once(['=', ':']) {
            Some(("seccomp", p))
                if !matches!(p, "unconfined" | "builtin")
                    && !p.trim_start().starts_with(['/', '{']) =>
            {
                let file = std::path::Path::new(&origin.working_dir).join(p);
                format!("seccomp={}", file.display())
            }
            _ => o.clone(),
        })
        .collect();
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
    resources(&mut a, s);
    a.oom_score_adj = s.oom_score_adj.map(|v| v.clamp(-1000, 1000) as i32);
    a.cgroup_parent = s.cgroup_parent.clone();
    a.group_add = s.group_add.iter().filter_map(|g| g.0.clone()).collect();
    // `service:S` is S's first replica, as for network_mode.
    let joined = |m: &Option<String>| {
        m.as_ref().map(|m| match m.strip_prefix("service:") {
            Some(other) => first_replica(host, &project.name, other),
            None => m.clone(),
        })
    };
    a.devices = s
        .devices
        .iter()
        .map(|d| {
            let target = if d.target.is_empty() {
                &d.source
            } else {
                &d.target
            };
            format!("{}:{target}:{}", d.source, d.permissions)
        })
        .collect();
    a.device_cgroup_rules = s.device_cgroup_rules.clone();
    a.pid = joined(&s.pid);
    a.ipc = joined(&s.ipc);
    a.uts = joined(&s.uts);
    a.ulimits = s
        .ulimits
        .iter()
        .map(|(name, u)| match u {
            stack_model::Ulimit::Single(v) => format!("{name}={v}"),
            stack_model::Ulimit::Pair { soft, hard } => format!("{name}={soft}:{hard}"),
        })
        .collect();
    (a.log_driver, a.log_opts) = crate::keys::logging(s)
        .map(|(driver, opts)| (Some(driver), opts))
        .map_err(|why| anyhow::anyhow!("service {service}: {why}"))?;
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
        (stack_plan::LABEL_HASH, stack_plan::hash_service(s)),
        (LABEL_WORKING_DIR, origin.working_dir.to_string()),
        (LABEL_CONFIG_FILES, origin.config_files.join(",")),
        (
            crate::supervision::LABEL_DEPENDS_ON,
            crate::supervision::depends_label(s),
        ),
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
            Some(pubd) => spec.push_str(&format!(
                "{}:",
                replica_port(&pubd, number).with_context(|| format!("service {service}"))?
            )),
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
                if !Path::new(&src).exists() {
                    if v.bind.as_ref().is_some_and(|b| !b.create_host_path) {
                        bail!(
                            "service {service}: bind source `{src}` does not exist (create_host_path: false)"
                        );
                    }
                    std::fs::create_dir_all(&src)
                        .with_context(|| format!("service {service}: cannot create `{src}`"))?;
                }
                // `bind.recursive`, as compose documents it: the mounts under
                // the source come along (read-only with a read-only bind)
                // unless `disabled`; `writable` keeps them writable under a
                // read-only bind; `writable` and `readonly` need `read_only`.
                use stack_runtime::Recursive;
                let option = v.bind.as_ref().and_then(|b| b.recursive.as_deref());
                let recursive = match option {
                    None | Some("enabled") => Recursive::Enabled,
                    Some("disabled") => Recursive::Disabled,
                    Some("writable") => Recursive::Writable,
                    Some("readonly") => Recursive::Readonly,
                    Some(other) => bail!(
                        "service {service}: volume `{}`: bind.recursive `{other}` is not one of enabled, disabled, writable, readonly",
                        v.target
                    ),
                };
                if matches!(recursive, Recursive::Writable | Recursive::Readonly) && !v.read_only {
                    bail!(
                        "service {service}: volume `{}`: bind.recursive `{}` needs read_only: true",
                        v.target,
                        option.unwrap_or_default()
                    );
                }
                if recursive == Recursive::Enabled {
                    a.volumes.push(format!(
                        "{src}:{}{}",
                        v.target,
                        if v.read_only { ":ro" } else { "" }
                    ));
                } else {
                    a.extra_mounts.push(stack_runtime::Mount {
                        kind: "bind".into(),
                        source: src.into(),
                        target: v.target.clone(),
                        read_only: v.read_only,
                        size: None,
                        recursive,
                    });
                }
            }
            "tmpfs" => a.tmpfs.push(v.target.clone()),
            "volume" => a.extra_mounts.push(match &v.source {
                Some(n) => named_volume(host, project, n, &v.target, v.read_only)?,
                // Anonymous: in the container's directory, gone with it.
                None => stack_runtime::Mount {
                    kind: "volume".into(),
                    source: PathBuf::new(),
                    target: v.target.clone(),
                    read_only: v.read_only,
                    size: None,
                    recursive: Default::default(),
                },
            }),
            other => bail!("service {service}: volumes of type `{other}` are not supported yet"),
        }
    }
    for from in &s.volumes_from {
        a.extra_mounts.extend(
            volumes_from(host, project, from).with_context(|| format!("service {service}"))?,
        );
    }
    a.extra_mounts
        .extend(file_objects(host, project, service, s)?);
    match s.network_mode.as_deref() {
        Some("host") => a.network = vec!["host".into()],
        Some("none") => a.network = vec!["none".into()],
        Some(m) if m.starts_with("container:") => a.network = vec![m.to_string()],
        Some(m) if m.starts_with("service:") => {
            let other = &m["service:".len()..];
            a.network = vec![first_replica(host, &project.name, other)];
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
                a.mac_address = first.mac_address.clone();
            }
            a.mac_address = a.mac_address.take().or_else(|| s.mac_address.clone());
            a.add_host.extend(link_aliases(host, s, &a.network)?);
        }
    }
    Ok(a)
}

/// `service:S` (network_mode, ipc, pid …): `container:ID` of S's first
/// replica, found by its labels whatever its name (`container_name`,
/// `--compatibility`); by the default name if it is not running yet.
fn first_replica(host: &Host, project: &str, other: &str) -> String {
    use crate::containers::label;
    let first = crate::containers::project_containers(host.root(), Some(project))
        .into_iter()
        .find(|(st, running)| {
            *running
                && label(st, stack_plan::LABEL_SERVICE) == other
                && label(st, stack_plan::LABEL_NUMBER) == "1"
                && label(st, crate::supervision::LABEL_ONEOFF) != "True"
        });
    match first {
        Some((st, _)) => format!("container:{}", st.id),
        None => format!("container:{project}-{other}-1"),
    }
}

/// `links: ["db:database"]`: the alias, as /etc/hosts lines (`database:IP`)
/// for the linked service's containers on the networks this one joins (the
/// linked service starts first). The service's own name resolves through
/// the network's DNS already.
fn link_aliases(host: &Host, s: &Service, networks: &[String]) -> anyhow::Result<Vec<String>> {
    let aliased: Vec<(&str, &str)> = s
        .links
        .iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(service, alias)| service != alias)
        .collect();
    if aliased.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints = host.networks()?.all_endpoints()?;
    let mut lines = Vec::new();
    for (service, alias) in aliased {
        for e in endpoints
            .iter()
            .filter(|e| networks.contains(&e.network) && e.aliases.iter().any(|a| a == service))
        {
            lines.extend(e.addresses.iter().map(|ip| format!("{alias}:{ip}")));
        }
    }
    Ok(lines)
}

/// The resource keys, and their `deploy.resources` forms (the loader has
/// made sure that both, where set, agree): limits of memory, CPUs (also as
/// `cpu_quota` over `cpu_period`) and processes; the memory reservation;
/// swap, CPU weight and CPU set.
fn resources(a: &mut ContainerConfig, s: &Service) {
    let resources = s.deploy.as_ref().map(|d| &d.resources);
    let limits = resources.and_then(|r| r.limits.as_ref());
    let reservations = resources.and_then(|r| r.reservations.as_ref());
    a.memory = s
        .mem_limit
        .or(limits.and_then(|l| l.memory))
        .map(|b| b.0.to_string());
    a.memory_reservation = s
        .mem_reservation
        .or(reservations.and_then(|r| r.memory))
        .map(|b| b.0.to_string());
    a.memory_swap = s.memswap_limit.map(|b| b.0.to_string());
    let quota = s.cpu_quota.filter(|q| *q > 0).map(|q| {
        let period = s.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
        q as f64 / period as f64
    });
    a.cpus = s
        .cpus
        .or(limits.and_then(|l| l.cpus))
        .map(|c| f64::from(c.0))
        .or(quota);
    a.cpu_shares = s.cpu_shares.filter(|c| *c > 0).map(|c| c as u64);
    a.cpuset_cpus = s.cpuset.clone();
    a.pids_limit = s.pids_limit.or(limits.and_then(|l| l.pids));
    a.memory_swappiness = s.mem_swappiness.map(|b| b.0.clamp(0, 100) as u64);
    if let Some(b) = &s.blkio_config {
        let throttles = |t: &[stack_model::ThrottleDevice]| {
            t.iter()
                .map(|t| format!("{}:{}", t.path, t.rate.0))
                .collect()
        };
        a.device_read_bps = throttles(&b.device_read_bps);
        a.device_write_bps = throttles(&b.device_write_bps);
        a.device_read_iops = throttles(&b.device_read_iops);
        a.device_write_iops = throttles(&b.device_write_iops);
        a.blkio_weight = b.weight;
        a.blkio_weight_device = b
            .weight_device
            .iter()
            .map(|w| format!("{}:{}", w.path, w.weight))
            .collect();
    }
    a.oom_kill_disable = s.oom_kill_disable;
}

/// The host port of replica `number` from a published `port` that may be
/// a range (`8080-8084`): replicas take its ports in turn.
fn replica_port(published: &str, number: u32) -> anyhow::Result<String> {
    let Some((a, b)) = published.split_once('-') else {
        return Ok(published.to_string());
    };
    let (Ok(first), Ok(last)) = (a.parse::<u32>(), b.parse::<u32>()) else {
        bail!("invalid published port range `{published}`");
    };
    let port = first + number.max(1) - 1;
    if port > last {
        bail!("published port range `{published}` has no port left for replica {number}");
    }
    Ok(port.to_string())
}

/// The mount of named volume `key`: a directory under the root (seeded
/// from the image), or what the local driver's options say (`type: none`
/// with `o: bind` and a `device` directory, or `type: tmpfs`).
fn named_volume(
    host: &Host,
    project: &Project,
    key: &str,
    target: &str,
    read_only: bool,
) -> anyhow::Result<stack_runtime::Mount> {
    let name = volume_name(project, key);
    let decl = project.volumes.get(key);
    if let Some(d) = decl.and_then(|v| v.driver.as_deref()) {
        if d != "local" {
            bail!("volume {name}: driver `{d}` is not supported (only `local`)");
        }
    }
    let external = decl.is_some_and(|v| v.external.0);
    local_volume(
        host,
        &name,
        decl.map(|v| &v.driver_opts.0),
        external,
        target,
        read_only,
    )
}

/// The mount of the `local` driver's volume `name` with options `opts`: a
/// directory under the root (seeded from the image), `type: none` with
/// `o: bind` and a `device` directory, or `type: tmpfs` (`o: size=…`).
pub(crate) fn local_volume(
    host: &Host,
    name: &str,
    opts: Option<&std::collections::BTreeMap<String, String>>,
    external: bool,
    target: &str,
    read_only: bool,
) -> anyhow::Result<stack_runtime::Mount> {
    let opt = |k: &str| opts.and_then(|o| o.get(k)).map(String::as_str);
    let mount = |kind: &str, source: PathBuf, size| stack_runtime::Mount {
        kind: kind.into(),
        source,
        target: target.into(),
        read_only,
        size,
        recursive: Default::default(),
    };
    match opt("type") {
        None => {
            let dir = volume_dir(host.root(), name)?;
            stack_sys::private_dir(dir.parent().expect("under the root"))?;
            let source = dir.join("_data");
            if external && !source.exists() {
                bail!("volume {name} declared as external, but could not be found");
            }
            Ok(mount("volume", source, None))
        }
        Some("none") if opt("o").is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind")) => {
            let device = opt("device").unwrap_or_default();
            if !Path::new(device).is_dir() {
                bail!("volume {name}: device `{device}` is not a directory on this host");
            }
            Ok(mount("bind", device.into(), None))
        }
        Some("tmpfs") => {
            let mut size = None;
            for o in opt("o").unwrap_or_default().split(',').filter(|o| !o.is_empty()) {
                match o.split_once('=') {
                    Some(("size", n)) => size = Some(crate::create::bytes(n)? as u64),
                    _ => bail!("volume {name}: tmpfs option `{o}` is not supported (size is)"),
                }
            }
            Ok(mount("tmpfs", PathBuf::new(), size))
        }
        Some(t) => bail!(
            "volume {name}: driver_opts type `{t}` is not supported (a directory of the engine's, `type: none` + `o: bind` + `device`, or `type: tmpfs`)"
        ),
    }
}

/// `volumes_from: [SERVICE | container:NAME][:ro|:rw]`: the other
/// container's volumes and binds, at the same targets.
fn volumes_from(
    host: &Host,
    project: &Project,
    from: &str,
) -> anyhow::Result<Vec<stack_runtime::Mount>> {
    let (who, mode) = match from.rsplit_once(':') {
        Some((w, m)) if m == "ro" || m == "rw" => (w, Some(m == "ro")),
        _ => (from, None),
    };
    let key = match who.strip_prefix("container:") {
        Some(name) => name.to_string(),
        None => format!("{}-{who}-1", project.name),
    };
    let (_, st) = crate::containers::find(host.root(), &key)
        .with_context(|| format!("volumes_from `{from}`"))?;
    Ok(st
        .spec
        .mounts
        .into_iter()
        .filter(|m| m.kind != "tmpfs")
        .map(|mut m| {
            m.read_only = mode.unwrap_or(m.read_only);
            m
        })
        .collect())
}

/// The one-off container `req` asks for (`stack run`) of its service
/// `s`: the service's, labelled as compose labels them (so `up` leaves it
/// alone), with the request's command, entrypoint, environment, user,
/// working directory and ports over them.
pub fn one_off(host: &Host, req: &RunRequest, s: &Service) -> anyhow::Result<ContainerConfig> {
    let project = &req.project;
    let origin = Origin {
        project,
        working_dir: "",
        config_files: &[],
        timeout: None,
        conditions: false,
    };
    crate::images::ensure(
        host,
        &image_of(&req.service, s)?,
        s.platform.as_deref(),
        stack_engine::pull_policy(None, s),
    )?;
    let sep = if req.compatibility { '_' } else { '-' };
    let name = match &req.name {
        Some(n) => n.clone(),
        None => format!(
            "{}{sep}{}{sep}run{sep}{}",
            project.name,
            req.service,
            &crate::random_id()?[..12]
        ),
    };
    let mut a = config(
        host,
        &Replica {
            origin: &origin,
            service: &req.service,
            number: 1,
            name: &name,
        },
    )?;
    a.labels
        .push(format!("{}=True", crate::supervision::LABEL_ONEOFF));
    if !req.service_ports {
        a.publish.clear();
    }
    a.publish.extend(req.publish.iter().cloned());
    if !req.command.is_empty() {
        a.args.truncate(1);
        a.args.extend(req.command.iter().cloned());
    }
    if req.entrypoint.is_some() {
        a.entrypoint = req.entrypoint.clone();
    }
    a.env.extend(req.env.iter().cloned());
    if req.user.is_some() {
        a.user = req.user.clone();
    }
    if req.workdir.is_some() {
        a.workdir = req.workdir.clone();
    }
    a.rm = req.rm;
    if !req.use_aliases {
        a.network_alias.clear();
    }
    a.tty = req.tty && !req.detach;
    a.console_size = req.console_size;
    a.interactive = req.interactive && !req.detach;
    Ok(a)
}

/// Where a project keeps what it writes for its containers (secrets and
/// configs given as content); removed by `down`.
pub(crate) fn project_dir(root: &Path, project: &str) -> anyhow::Result<PathBuf> {
    stack_model::names::check(stack_model::names::Kind::Project, project)?;
    Ok(stack_sys::join(&root.join("projects"), project)?)
}

/// A service's secrets and configs as read-only bind mounts: secrets at
/// `/run/secrets/NAME` (or their target), configs at `/NAME` (or theirs).
/// A `file` is mounted as it is (edits show, as with compose); `content`
/// (and `environment`, which the client turned into content) is written
/// under the root with the reference's mode, uid and gid: a file of each
/// reference's own (`projects/P/SERVICE/secrets/N`, N its place in the
/// service's list), so two references do not share one mode or owner, in
/// directories only root may enter.
fn file_objects(
    host: &Host,
    project: &Project,
    service: &str,
    s: &Service,
) -> anyhow::Result<Vec<stack_runtime::Mount>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut mounts = Vec::new();
    for (kind, refs, objects) in [
        ("secret", &s.secrets, &project.secrets),
        ("config", &s.configs, &project.configs),
    ] {
        for (i, r) in refs.iter().enumerate() {
            let what = format!("service {service}: {kind} `{}`", r.source);
            let obj = objects
                .get(&r.source)
                .ok_or_else(|| anyhow::anyhow!("{what} is not declared"))?;
            if obj.external.0 {
                bail!("{what} is external: external {kind}s need a swarm, which stack is not");
            }
            let target = match (kind, r.target.as_deref()) {
                (_, Some(t)) if t.starts_with('/') => t.to_string(),
                ("secret", t) => format!("/run/secrets/{}", t.unwrap_or(&r.source)),
                (_, t) => format!("/{}", t.unwrap_or(&r.source)),
            };
            let source = match (&obj.file, &obj.content) {
                (Some(file), _) => {
                    let path = std::path::PathBuf::from(file);
                    if !path.exists() {
                        bail!("{what}: file `{file}` does not exist");
                    }
                    path
                }
                (None, Some(content)) => {
                    stack_model::names::check(stack_model::names::Kind::Service, service)?;
                    let dir = stack_sys::join(&project_dir(host.root(), &project.name)?, service)?
                        .join(format!("{kind}s"));
                    stack_sys::private_dir(&dir)?;
                    let path = dir.join(i.to_string());
                    let mut file = stack_sys::private_file(&path)?;
                    std::io::Write::write_all(&mut file, content.as_bytes())
                        .with_context(|| format!("{what}: cannot write `{}`", path.display()))?;
                    let mode = r.mode.as_ref().map_or(0o444, |m| m.0);
                    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                    let id = |v: &Option<stack_model::Text>, which: &str| {
                        v.as_ref()
                            .and_then(|t| t.0.as_deref())
                            .map(|t| {
                                t.parse::<u32>().map_err(|_| {
                                    anyhow::anyhow!("{what}: {which} `{t}` is not a number")
                                })
                            })
                            .transpose()
                    };
                    std::os::unix::fs::chown(&path, id(&r.uid, "uid")?, id(&r.gid, "gid")?)?;
                    path
                }
                (None, None) => bail!("{what} has neither `file` nor `content`"),
            };
            mounts.push(stack_runtime::Mount {
                kind: "bind".into(),
                source,
                target,
                read_only: true,
                size: None,
                recursive: Default::default(),
            });
        }
    }
    Ok(mounts)
}

/// The service's image, or why it has none.
pub(crate) fn image_of(service: &str, s: &Service) -> anyhow::Result<String> {
    s.image.clone().ok_or_else(|| {
        anyhow::anyhow!("service {service} has no image and nothing to build it from")
    })
}

/// The container of a service's `pre_start` hook `index`, as compose makes
/// it: the replica's volumes, networks (and aliases) and environment with
/// the hook's over it; the hook's image (the service's by default) with its
/// own entrypoint, and the hook's command, user, working directory and
/// privilege; no ports, restart policy or health check; a one-off, so that
/// no `ps` or plan takes it for a replica.
pub fn pre_start(host: &Host, r: &Replica<'_>, index: usize) -> anyhow::Result<ContainerConfig> {
    let s = &r.origin.project.services[r.service];
    let hook = &s.pre_start[index];
    let mut a = config(host, r)?;
    let image = match &hook.image {
        Some(i) => i.clone(),
        None => image_of(r.service, s)?,
    };
    a.name = Some(format!("{}-{}", r.name, &crate::random_id()?[..12]));
    a.args = std::iter::once(image)
        .chain(hook.command.clone().map(|c| c.0).unwrap_or_default())
        .collect();
    a.entrypoint = None;
    a.user = hook.user.clone();
    a.workdir = hook.working_dir.clone();
    a.privileged = hook.privileged;
    a.env
        .extend(hook.environment.0.iter().map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        }));
    a.publish.clear();
    a.restart = None;
    a.health = None;
    a.no_healthcheck = true;
    a.labels.retain(|l| {
        !l.starts_with(&format!("{}=", stack_plan::LABEL_NUMBER))
            && !l.starts_with(&format!("{}=", stack_plan::LABEL_HASH))
    });
    a.labels
        .push(format!("{}=True", crate::supervision::LABEL_ONEOFF));
    a.labels.push("com.docker.compose.hook=pre_start".into());
    Ok(a)
}

/// The directory of named volume `name` under the root, from a checked name.
pub(crate) fn volume_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    stack_model::names::check(stack_model::names::Kind::Volume, name)?;
    Ok(stack_sys::join(&root.join("volumes"), name)?)
}
