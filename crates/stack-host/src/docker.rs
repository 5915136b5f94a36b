//! The Docker Engine API on this host: stack-docker's `Backend` on the
//! same containers, images, networks and volumes the engine keeps, so that
//! a container `docker run` starts shows in `stack container ls`, and a
//! project `stack up` started shows in `docker ps` with compose's labels.
//!
//! Docker's requests are mapped onto what stack already does: a create
//! body becomes a [`ContainerConfig`] (the flags of `stack container
//! run`), started containers are watched by the engine (restart policies,
//! `AutoRemove`, events), answers are built in Docker's shapes from the
//! runtime's state and the network records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use stack_api::{Control, Session};
use stack_docker::types::{
    ConnectNetwork, CreateContainer, CreateNetwork, CreateVolume, HostConfig,
};
use stack_docker::{AttachQuery, DockerError, Exec, LogsQuery, Output, Stream};
use stack_runtime::{State, Status};

use crate::containers::{self, running};
use crate::{ContainerConfig, Host, HostEngine, HostError, Launch};

type R<T> = Result<T, DockerError>;

/// The Docker API on the host's engine.
pub struct Docker {
    pub host: Host,
    pub engine: HostEngine,
    /// The streams of containers with a terminal or open input, which the
    /// engine holds (Docker's `-it`, `-i`): attaches read and write them.
    pub consoles: std::sync::Arc<Consoles>,
    /// The engine's: told as each request is answered.
    pub idle: std::sync::Arc<tokio::sync::Notify>,
}

/// Consoles by container id.
pub type Consoles = std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Console>>>;

/// A host error as dockerd would answer it (its kind's status).
fn failed(e: anyhow::Error) -> DockerError {
    DockerError::new(
        HostError::of(&e).map_or(500, HostError::status),
        format!("{e:#}"),
    )
}

use crate::network::BRIDGE;

impl Docker {
    fn root(&self) -> &Path {
        self.host.root()
    }

    /// A container by name (a leading `/` allowed), id or id prefix, in
    /// dockerd's words when it is not there.
    fn find(&self, key: &str) -> R<(PathBuf, State)> {
        let key = key.strip_prefix('/').unwrap_or(key);
        containers::find(self.root(), key).map_err(|e| match HostError::of(&e) {
            Some(HostError::NotFound(_)) => DockerError::no_such_container(key),
            _ => failed(e),
        })
    }

    /// Supervision for a container just started: its restart policy,
    /// `AutoRemove`, health checks, events.
    fn watch(&self, id: &str) {
        let dir = stack_runtime::container_dir(self.root(), id);
        if let Ok(st) = stack_runtime::state::read(&dir) {
            let r = running(&st);
            self.engine
                .watch(crate::supervision::observed(self.root(), &st, r));
        }
    }

    fn publish(&self, st: &State, action: &str) {
        let r = running(st);
        self.engine.publish(
            &crate::supervision::observed(self.root(), st, r),
            action,
            &[],
        );
    }

    fn ensure_bridge(&self) -> R<()> {
        let store = self.host.networks().map_err(failed)?;
        if store.get(BRIDGE).is_ok() {
            return Ok(());
        }
        let opts = stack_net::CreateOptions {
            name: BRIDGE.into(),
            ..Default::default()
        };
        match crate::network::create(&self.host, &opts) {
            Ok(_) => Ok(()),
            // Made by another request meanwhile.
            Err(_) if store.get(BRIDGE).is_ok() => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }

    fn image_id(&self, reference: &str) -> String {
        self.host
            .images()
            .ok()
            .and_then(|s| s.lookup(reference).ok())
            .map(|i| i.id)
            .unwrap_or_default()
    }

    /// The network records (none if they cannot be read).
    fn network_records(&self) -> Vec<stack_net::Network> {
        self.host
            .networks()
            .ok()
            .and_then(|s| s.networks().ok())
            .unwrap_or_default()
    }

    fn endpoints(&self) -> Vec<stack_net::Endpoint> {
        self.host
            .networks()
            .ok()
            .and_then(|s| s.all_endpoints().ok())
            .unwrap_or_default()
    }

    fn health(&self, id: &str) -> Option<stack_engine::Health> {
        self.engine.board().get(id).and_then(|r| r.health)
    }

    fn restarting(&self, id: &str) -> bool {
        matches!(
            self.engine.board().get(id).map(|r| r.state),
            Some(stack_engine::RunState::Restarting(_))
        )
    }

    /// `created`, `running`, `paused`, `restarting`, `exited` or `dead`.
    fn state_name(&self, st: &State) -> &'static str {
        match st.status {
            _ if self.restarting(&st.id) => "restarting",
            Status::Running if !stack_runtime::state::alive(st) => "dead",
            Status::Running if containers::is_paused(st) => "paused",
            Status::Running => "running",
            Status::Created => "created",
            Status::Exited => "exited",
        }
    }
}

/// Seconds since the epoch of an RFC 3339 time (0 if it does not read).
fn unix(t: &str) -> i64 {
    stack_sys::time::parse_rfc3339(t).map_or(0, |n| (n / 1_000_000_000) as i64)
}

/// When a container was made: its directory's birth (or change) time.
fn created(root: &Path, id: &str) -> (i64, String) {
    let dir = stack_runtime::container_dir(root, id);
    let t = std::fs::metadata(&dir)
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    (
        t.as_secs() as i64,
        stack_sys::time::rfc3339(t.as_secs() as i64, t.subsec_nanos()),
    )
}

/// `Up 5 seconds`, `Exited (0) 3 minutes ago` as `docker ps` says it.
fn status_line(state: &str, st: &State, health: Option<&stack_engine::Health>) -> String {
    let now = (stack_sys::time::now_nanos() / 1_000_000_000) as i64;
    let ago = |t: &str| human_duration(now - unix(t));
    match state {
        "running" | "paused" => {
            let mut s = format!("Up {}", ago(&st.started_at));
            if state == "paused" {
                s.push_str(" (Paused)");
            }
            if let Some(h) = health {
                s.push_str(&match h.status {
                    stack_engine::HealthStatus::Starting => " (health: starting)".to_string(),
                    other => format!(" ({other})"),
                });
            }
            s
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code.unwrap_or_default(),
            ago(st.finished_at.as_deref().unwrap_or_default())
        ),
        "exited" | "dead" => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(-1),
            ago(st.finished_at.as_deref().unwrap_or_default())
        ),
        _ => "Created".into(),
    }
}

/// As Docker's `units.HumanDuration`.
fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// Docker's port map: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`,
/// exposed ports without a binding as null.
fn port_map(st: &State, eps: &[&stack_net::Endpoint]) -> Value {
    let mut map = serde_json::Map::new();
    for p in &st.spec.exposed_ports {
        let key = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        map.insert(key, Value::Null);
    }
    for e in eps {
        for p in &e.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            let ip = p.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string());
            let entry = map.entry(key).or_insert(Value::Array(Vec::new()));
            if entry.is_null() {
                *entry = Value::Array(Vec::new());
            }
            if let Value::Array(a) = entry {
                a.push(json!({"HostIp": ip, "HostPort": p.host_port.to_string()}));
            }
        }
    }
    Value::Object(map)
}

/// `[{"IP", "PrivatePort", "PublicPort", "Type"}]` as the list has them.
fn port_list(eps: &[&stack_net::Endpoint]) -> Value {
    let mut out = Vec::new();
    for e in eps {
        for p in &e.ports {
            out.push(json!({
                "IP": p.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": p.protocol,
            }));
        }
    }
    Value::Array(out)
}

/// The endpoint a network's entry shows.
fn endpoint_json(e: &stack_net::Endpoint, net: Option<&stack_net::Network>) -> Value {
    let v4 = e.addresses.iter().find(|a| a.is_ipv4());
    let v6 = e.addresses.iter().find(|a| a.is_ipv6());
    let subnet =
        |v6: bool| net.and_then(|n| n.subnets.iter().find(|s| s.subnet.addr().is_ipv6() == v6));
    json!({
        "IPAMConfig": null,
        "Links": null,
        // With the short id, as dockerd lists them (compose 1.29 looks for it).
        "Aliases": e.aliases.iter().cloned().chain(std::iter::once(e.container[..12.min(e.container.len())].to_string())).collect::<Vec<_>>(),
        "MacAddress": e.mac,
        "NetworkID": net.map(|n| n.id.clone()).unwrap_or_default(),
        "EndpointID": format!("{}{}", e.container.get(..32).unwrap_or(&e.container), net.map(|n| n.id.get(..32).unwrap_or(&n.id).to_string()).unwrap_or_default()),
        "Gateway": subnet(false).map(|s| s.gateway.to_string()).unwrap_or_default(),
        "IPAddress": v4.map(|a| a.to_string()).unwrap_or_default(),
        "IPPrefixLen": subnet(false).map_or(0, |s| s.subnet.prefix_len()),
        "IPv6Gateway": subnet(true).map(|s| s.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": v6.map(|a| a.to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": subnet(true).map_or(0, |s| s.subnet.prefix_len()),
        "DNSNames": std::iter::once(e.name.clone()).chain(e.aliases.iter().cloned()).chain(std::iter::once(e.container[..12.min(e.container.len())].to_string())).collect::<Vec<_>>(),
    })
}

/// `NetworkSettings.Networks`: each endpoint by its network's name.
fn networks_json(
    mine: &[&stack_net::Endpoint],
    nets: &[stack_net::Network],
) -> serde_json::Map<String, Value> {
    mine.iter()
        .map(|e| {
            let net = nets.iter().find(|n| n.name == e.network);
            (e.network.clone(), endpoint_json(e, net))
        })
        .collect()
}

/// The network mode Docker shows for a container.
fn network_mode(st: &State, eps: &[&stack_net::Endpoint]) -> String {
    match &st.spec.network {
        stack_runtime::NetworkMode::Host => "host".into(),
        stack_runtime::NetworkMode::Join(_) => "container".into(),
        _ => eps.first().map_or("none".into(), |e| e.network.clone()),
    }
}

fn mounts_json(st: &State) -> Value {
    Value::Array(
        st.spec
            .mounts
            .iter()
            .filter(|m| m.kind != "tmpfs")
            .map(|m| {
                let name = (m.kind == "volume")
                    .then(|| {
                        let s = m.source.to_string_lossy();
                        s.strip_suffix("/_data")
                            .and_then(|d| d.rsplit('/').next())
                            .map(str::to_string)
                    })
                    .flatten();
                let mut v = json!({
                    "Type": m.kind,
                    "Source": m.source,
                    "Destination": m.target,
                    "Mode": if m.read_only { "ro" } else { "" },
                    "RW": !m.read_only,
                    "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
                });
                if let Some(n) = name {
                    v["Name"] = json!(n);
                    v["Driver"] = json!("local");
                }
                v
            })
            .collect(),
    )
}

impl Docker {
    /// A container in the shape of `GET /containers/json`.
    fn summary(
        &self,
        st: &State,
        eps: &[stack_net::Endpoint],
        nets: &[stack_net::Network],
    ) -> Value {
        let mine: Vec<&stack_net::Endpoint> = eps.iter().filter(|e| e.container == st.id).collect();
        let state = self.state_name(st);
        let health = self.health(&st.id);
        let (created, _) = created(self.root(), &st.id);
        let networks = networks_json(&mine, nets);
        json!({
            "Id": st.id,
            "Names": [format!("/{}", st.name)],
            "Image": st.spec.image,
            "ImageID": self.image_id(&st.spec.image),
            "Command": st.spec.args.join(" "),
            "Created": created,
            "Ports": port_list(&mine),
            "Labels": st.spec.labels,
            "State": state,
            "Status": status_line(state, st, health.as_ref()),
            "ExitCode": st.exit_code,
            "HostConfig": {"NetworkMode": network_mode(st, &mine)},
            "NetworkSettings": {"Networks": networks},
            "Mounts": mounts_json(st),
        })
    }

    /// A container in the shape of `GET /containers/{id}/json`.
    fn inspect_json(&self, dir: &Path, st: &State) -> Value {
        let eps = self.endpoints();
        let nets = self.network_records();
        let mine: Vec<&stack_net::Endpoint> = eps.iter().filter(|e| e.container == st.id).collect();
        let state = self.state_name(st);
        let health = self.health(&st.id);
        let (_, created) = created(self.root(), &st.id);
        let spec = &st.spec;
        let networks = networks_json(&mine, &nets);
        let first = networks.values().next().cloned().unwrap_or(json!({}));
        let alive = running(st);
        let health_json = health.map(|h| {
            json!({
                "Status": h.status.to_string(),
                "FailingStreak": h.failing_streak,
                "Log": h.log.iter().map(|p| json!({"ExitCode": p.code, "Output": p.output})).collect::<Vec<_>>(),
            })
        });
        let zero = "0001-01-01T00:00:00Z";
        let restart = spec.restart.as_ref();
        let mut env = spec.env.clone();
        env.retain(|e| !e.is_empty());
        let exposed: serde_json::Map<String, Value> = spec
            .exposed_ports
            .iter()
            .map(|p| {
                (
                    if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    },
                    json!({}),
                )
            })
            .collect();
        let log_path = stack_runtime::state::log_path(dir);
        let host_config = json!({
            "Binds": spec.mounts.iter().filter(|m| m.kind == "bind").map(|m| format!("{}:{}{}", m.source.display(), m.target, if m.read_only { ":ro" } else { "" })).collect::<Vec<_>>(),
            "NetworkMode": network_mode(st, &mine),
            "PortBindings": port_map(st, &mine).as_object().map(|m| m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>()).unwrap_or_default(),
            "RestartPolicy": {
                "Name": restart.map_or("no", |r| r.name.as_str()),
                "MaximumRetryCount": restart.and_then(|r| r.max_attempts).unwrap_or(0),
            },
            "AutoRemove": spec.auto_remove,
            "CapAdd": spec.cap_add,
            "CapDrop": spec.cap_drop,
            "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.read_only,
            "Init": spec.init,
            "ShmSize": spec.shm_size.unwrap_or(64 << 20),
            "OomScoreAdj": spec.oom_score_adj.unwrap_or(0),
            "GroupAdd": spec.group_add,
            "CgroupParent": spec.cgroup_parent.clone().unwrap_or_default(),
            "Memory": spec.limits.memory.unwrap_or(0),
            "MemoryReservation": spec.limits.memory_reservation.unwrap_or(0),
            "NanoCpus": spec.limits.cpus.map_or(0, |c| (c * 1e9) as i64),
            "CpuShares": spec.limits.cpu_shares.unwrap_or(0),
            "CpusetCpus": spec.limits.cpuset.clone().unwrap_or_default(),
            "PidsLimit": spec.limits.pids,
            "Ulimits": spec.rlimits.iter().map(|(n, s, h)| json!({"Name": n, "Soft": s, "Hard": h})).collect::<Vec<_>>(),
            "LogConfig": {
                "Type": if spec.no_log { "none" } else { "json-file" },
                "Config": {},
            },
            "Sysctls": spec.sysctls.iter().cloned().collect::<BTreeMap<_, _>>(),
            "Dns": [], "DnsOptions": [], "DnsSearch": [],
            "ExtraHosts": null,
            "Tmpfs": spec.mounts.iter().filter(|m| m.kind == "tmpfs").map(|m| (m.target.clone(), m.size.map(|s| format!("size={s}")).unwrap_or_default())).collect::<BTreeMap<_, _>>(),
            "Runtime": "stack",
            "ConsoleSize": [0, 0],
            "Isolation": "",
        });
        let config = json!({
            "Hostname": spec.hostname,
            "Domainname": spec.domainname,
            "User": spec.user,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            "Tty": spec.tty,
            "OpenStdin": spec.interactive,
            "StdinOnce": false,
            "Env": env,
            "Cmd": spec.args,
            "Healthcheck": spec.healthcheck,
            "Image": spec.image,
            "Volumes": null,
            "WorkingDir": if spec.cwd == "/" { "" } else { spec.cwd.as_str() },
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": spec.labels,
            "StopSignal": spec.stop_signal,
            "StopTimeout": spec.stop_timeout,
        });
        let settings = json!({
            "Bridge": "",
            "SandboxID": st.id,
            "SandboxKey": match &spec.network {
                stack_runtime::NetworkMode::Path(p) => p.display().to_string(),
                _ => String::new(),
            },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": port_map(st, &mine),
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": first["EndpointID"],
            "Gateway": first["Gateway"],
            "GlobalIPv6Address": first["GlobalIPv6Address"],
            "GlobalIPv6PrefixLen": first["GlobalIPv6PrefixLen"],
            "IPAddress": first["IPAddress"],
            "IPPrefixLen": first["IPPrefixLen"],
            "IPv6Gateway": first["IPv6Gateway"],
            "MacAddress": first["MacAddress"],
            "Networks": networks,
        });
        json!({
            "Id": st.id,
            "Created": created,
            "Path": spec.args.first().cloned().unwrap_or_default(),
            "Args": spec.args.get(1..).unwrap_or_default(),
            "State": {
                "Status": state,
                "Running": alive,
                "Paused": state == "paused",
                "Restarting": state == "restarting",
                "OOMKilled": st.oom_killed,
                "Dead": state == "dead",
                "Pid": if alive { st.pid } else { 0 },
                "ExitCode": st.exit_code.unwrap_or(0),
                "Error": "",
                "StartedAt": if st.started_at.is_empty() { zero } else { st.started_at.as_str() },
                "FinishedAt": st.finished_at.as_deref().filter(|_| !alive).unwrap_or(zero),
                "Health": health_json,
            },
            "Image": self.image_id(&spec.image),
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": log_path,
            "Name": format!("/{}", st.name),
            "RestartCount": self.engine.board().get(&st.id).map_or(0, |r| r.restarts),
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config,
            "GraphDriver": {"Name": "overlay2", "Data": null},
            "Mounts": mounts_json(st),
            "Config": config,
            "NetworkSettings": settings,
        })
    }
}

/// The start of the refusal to attach input where the engine holds no console.
pub const NO_CONSOLE: &str = "input cannot be attached: the engine holds no console for";

/// A named volume a create body mounts: name, target, read-only.
pub type NamedVolume = (String, String, bool);

/// A create body as `stack container run`'s configuration, or a 400 naming
/// what stack cannot do. Named volumes in `Binds` and `Mounts` come back
/// apart (they are made by the caller) as (name, target, read-only).
pub fn config_of(
    name: Option<&str>,
    body: &CreateContainer,
) -> R<(ContainerConfig, Vec<NamedVolume>)> {
    let h: &HostConfig = &body.host_config;
    let refuse = |what: &str| {
        Err(DockerError::bad_request(format!(
            "{what} is not supported by stack"
        )))
    };
    if !h.runtime.is_empty() && h.runtime != "runc" && h.runtime != "stack" {
        return refuse(&format!("runtime `{}`", h.runtime));
    }
    if !h.device_requests.is_empty() {
        return refuse("DeviceRequests (--gpus)");
    }
    if !h.storage_opt.is_empty() {
        return refuse("StorageOpt");
    }
    if !h.volumes_from.is_empty() {
        return refuse("VolumesFrom");
    }
    if !h.links.is_empty() {
        return refuse("Links (use a user-defined network: its DNS resolves names)");
    }
    if !matches!(h.userns_mode.as_str(), "" | "host") {
        return refuse(&format!("UsernsMode `{}`", h.userns_mode));
    }
    if !matches!(h.isolation.as_str(), "" | "default") {
        return refuse(&format!("Isolation `{}`", h.isolation));
    }
    let log_driver = match h.log_config.kind.as_str() {
        "" | "json-file" | "local" => None,
        "none" => Some("none".to_string()),
        other => {
            return refuse(&format!(
                "logging driver `{other}` (json-file, local or none)"
            ))
        }
    };
    if body.image.is_empty() {
        return Err(DockerError::bad_request("No image specified"));
    }
    // A profile comes inline (the docker CLI reads the file): the engine
    // opens no path an API client names.
    for o in &h.security_opt {
        if let Some(("seccomp", v)) = o.split_once(['=', ':']) {
            if !matches!(v, "unconfined" | "builtin") && !v.trim_start().starts_with('{') {
                return Err(DockerError::bad_request(format!(
                    "security option `{o}`: give the seccomp profile itself, not a path"
                )));
            }
        }
    }
    let mut c = ContainerConfig {
        name: name.map(|n| n.trim_start_matches('/').to_string()),
        rm: h.auto_remove,
        stop_signal: Some(body.stop_signal.clone()).filter(|s| !s.is_empty()),
        stop_timeout: body.stop_timeout.filter(|t| *t >= 0).map(|t| t as u64),
        tty: body.tty,
        interactive: body.open_stdin,
        console_size: match h.console_size[..] {
            [rows, cols] if rows > 0 && cols > 0 => Some((rows, cols)),
            _ => None,
        },
        hostname: Some(body.hostname.clone()).filter(|s| !s.is_empty()),
        domainname: Some(body.domainname.clone()).filter(|s| !s.is_empty()),
        // A value without `=` is unset, not taken from the engine's environment.
        env: body
            .env
            .iter()
            .filter(|e| e.contains('='))
            .cloned()
            .collect(),
        workdir: Some(body.working_dir.clone()).filter(|s| !s.is_empty()),
        user: Some(body.user.clone()).filter(|s| !s.is_empty()),
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        privileged: h.privileged,
        security_opt: h.security_opt.clone(),
        ulimits: h
            .ulimits
            .iter()
            .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
            .collect(),
        group_add: h.group_add.clone(),
        devices: h
            .devices
            .iter()
            .map(|d| {
                let inside = if d.path_in_container.is_empty() {
                    &d.path_on_host
                } else {
                    &d.path_in_container
                };
                let perms = if d.cgroup_permissions.is_empty() {
                    "rwm"
                } else {
                    &d.cgroup_permissions
                };
                format!("{}:{inside}:{perms}", d.path_on_host)
            })
            .collect(),
        device_cgroup_rules: h.device_cgroup_rules.clone(),
        pid: Some(h.pid_mode.clone()).filter(|s| !s.is_empty()),
        ipc: Some(h.ipc_mode.clone()).filter(|s| !s.is_empty() && s != "private"),
        uts: Some(h.uts_mode.clone()).filter(|s| !s.is_empty()),
        mac_address: Some(body.mac_address.clone()).filter(|s| !s.is_empty()),
        dns: h.dns.clone(),
        dns_search: h.dns_search.clone(),
        dns_option: h.dns_options.clone(),
        add_host: h
            .extra_hosts
            .iter()
            .map(|e| match e.split_once('=') {
                Some((host, ip)) if !e.contains(':') || ip.contains(':') => format!("{host}:{ip}"),
                _ => e.clone(),
            })
            .collect(),
        labels: body
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        tmpfs: h
            .tmpfs
            .iter()
            .map(
                |(path, opts)| match opts.split(',').find_map(|o| o.strip_prefix("size=")) {
                    Some(size) => format!("{path}:size={size}"),
                    None => path.clone(),
                },
            )
            .collect(),
        shm_size: (h.shm_size > 0).then(|| h.shm_size.to_string()),
        oom_score_adj: (h.oom_score_adj != 0).then_some(h.oom_score_adj),
        cgroup_parent: Some(h.cgroup_parent.clone()).filter(|s| !s.is_empty()),
        sysctls: h.sysctls.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        log_driver,
        log_opts: h
            .log_config
            .config
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "max-size" | "max-file"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        memory: (h.memory > 0).then(|| h.memory.to_string()),
        memory_reservation: (h.memory_reservation > 0).then(|| h.memory_reservation.to_string()),
        memory_swap: (h.memory_swap != 0).then(|| h.memory_swap.to_string()),
        cpus: if h.nano_cpus > 0 {
            Some(h.nano_cpus as f64 / 1e9)
        } else if h.cpu_quota > 0 {
            let period = if h.cpu_period > 0 {
                h.cpu_period
            } else {
                100_000
            };
            Some(h.cpu_quota as f64 / period as f64)
        } else {
            None
        },
        cpu_shares: (h.cpu_shares > 0).then_some(h.cpu_shares as u64),
        cpuset_cpus: Some(h.cpuset_cpus.clone()).filter(|s| !s.is_empty()),
        pids_limit: h.pids_limit.filter(|p| *p != 0),
        device_read_bps: h
            .blkio_device_read_bps
            .iter()
            .map(|d| format!("{}:{}", d.path, d.rate))
            .collect(),
        device_write_bps: h
            .blkio_device_write_bps
            .iter()
            .map(|d| format!("{}:{}", d.path, d.rate))
            .collect(),
        device_read_iops: h
            .blkio_device_read_iops
            .iter()
            .map(|d| format!("{}:{}", d.path, d.rate))
            .collect(),
        device_write_iops: h
            .blkio_device_write_iops
            .iter()
            .map(|d| format!("{}:{}", d.path, d.rate))
            .collect(),
        blkio_weight: (h.blkio_weight != 0).then_some(h.blkio_weight),
        blkio_weight_device: h
            .blkio_weight_device
            .iter()
            .map(|d| format!("{}:{}", d.path, d.weight))
            .collect(),
        memory_swappiness: h
            .memory_swappiness
            .filter(|s| (0..=100).contains(s))
            .map(|s| s as u64),
        oom_kill_disable: h.oom_kill_disable.unwrap_or(false),
        read_only: h.readonly_rootfs,
        // Docker runs the app as PID 1 unless asked for an init; stack's
        // tiny init is its default (signals forwarded, zombies reaped),
        // left out only where a client says `Init: false`.
        no_init: h.init == Some(false),
        entrypoint: body.entrypoint.0.clone(),
        health: body
            .healthcheck
            .as_ref()
            .map(|hc| stack_runtime::Healthcheck {
                test: hc.test.clone(),
                interval: (hc.interval > 0).then_some(hc.interval as u64),
                timeout: (hc.timeout > 0).then_some(hc.timeout as u64),
                start_period: (hc.start_period > 0).then_some(hc.start_period as u64),
                retries: (hc.retries > 0).then_some(hc.retries as u32),
                start_interval: (hc.start_interval > 0).then_some(hc.start_interval as u64),
                probe: None,
            }),
        restart: match h.restart_policy.name.as_str() {
            "" | "no" => None,
            n @ ("always" | "unless-stopped" | "on-failure") => Some(stack_runtime::Restart {
                name: n.into(),
                max_attempts: (n == "on-failure" && h.restart_policy.maximum_retry_count > 0)
                    .then_some(h.restart_policy.maximum_retry_count as u32),
                delay: None,
                window: None,
            }),
            other => {
                return Err(DockerError::bad_request(format!(
                    "invalid restart policy '{other}'"
                )))
            }
        },
        ..Default::default()
    };
    if h.auto_remove && c.restart.is_some() {
        return Err(DockerError::bad_request(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    // The command: the image, then Cmd (none: the image's).
    c.args = std::iter::once(body.image.clone())
        .chain(body.cmd.0.clone().unwrap_or_default())
        .collect();
    // Networks: the mode's network first (Docker's default is `bridge`),
    // then the other endpoints asked for.
    let mode = match h.network_mode.as_str() {
        "" | "default" => BRIDGE,
        m => m,
    };
    let endpoints = &body.networking_config.endpoints_config;
    if body.network_disabled || mode == "none" {
        c.network = vec!["none".into()];
    } else if mode == "host" || mode.starts_with("container:") {
        c.network = vec![mode.to_string()];
    } else {
        // (`default` in the endpoints is the mode's network.)
        let named = |k: &str| {
            if k == "default" {
                BRIDGE.to_string()
            } else {
                k.to_string()
            }
        };
        c.network = std::iter::once(mode.to_string())
            .chain(endpoints.keys().map(|k| named(k)).filter(|k| k != mode))
            .collect();
        let first = endpoints
            .iter()
            .find(|(k, _)| named(k) == mode)
            .map(|(_, e)| e);
        if let Some(e) = first.or_else(|| endpoints.values().next()) {
            c.network_alias = e.aliases.clone();
            if let Some(ip) = &e.ipam_config {
                c.ip = Some(ip.ipv4.clone()).filter(|s| !s.is_empty());
                c.ip6 = Some(ip.ipv6.clone()).filter(|s| !s.is_empty());
            }
            if !e.mac_address.is_empty() {
                c.mac_address = Some(e.mac_address.clone());
            }
        }
        // Ports: bound ones, and with PublishAllPorts every exposed one.
        for (port, bindings) in &h.port_bindings {
            let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
            for b in bindings.iter().flatten() {
                let ip = match b.host_ip.as_str() {
                    "" => String::new(),
                    ip if ip.contains(':') => format!("[{ip}]:"),
                    ip => format!("{ip}:"),
                };
                c.publish.push(format!("{ip}{}:{num}/{proto}", b.host_port));
            }
        }
        if h.publish_all_ports {
            for port in body.exposed_ports.keys() {
                if !h.port_bindings.contains_key(port) {
                    let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
                    c.publish.push(format!(":{num}/{proto}"));
                }
            }
        }
    }
    // Mounts: host paths bound; names are named volumes.
    let mut named = Vec::new();
    for b in &h.binds {
        let parts: Vec<&str> = b.split(':').collect();
        let (source, target, opts) = match parts[..] {
            [s, t] => (s, t, ""),
            [s, t, o] => (s, t, o),
            _ => {
                return Err(DockerError::bad_request(format!(
                    "invalid volume specification: '{b}'"
                )))
            }
        };
        let ro = opts.split(',').any(|o| o == "ro");
        if source.starts_with('/') {
            c.volumes
                .push(format!("{source}:{target}{}", if ro { ":ro" } else { "" }));
        } else {
            named.push((source.to_string(), target.to_string(), ro));
        }
    }
    for m in &h.mounts {
        match m.kind.as_str() {
            "bind" => c.volumes.push(format!(
                "{}:{}{}",
                m.source,
                m.target,
                if m.read_only { ":ro" } else { "" }
            )),
            "volume" if m.source.is_empty() => c.extra_mounts.push(stack_runtime::Mount {
                kind: "volume".into(),
                source: PathBuf::new(),
                target: m.target.clone(),
                read_only: m.read_only,
                size: None,
                recursive: Default::default(),
            }),
            "volume" => named.push((m.source.clone(), m.target.clone(), m.read_only)),
            "tmpfs" => c.tmpfs.push(
                match m.tmpfs_options.as_ref().filter(|t| t.size_bytes > 0) {
                    Some(t) => format!("{}:size={}", m.target, t.size_bytes),
                    None => m.target.clone(),
                },
            ),
            other => return refuse(&format!("a mount of type `{other}`")),
        }
    }
    // Anonymous volumes the body declares (`Volumes: {"/data": {}}`).
    for target in body.volumes.keys() {
        let taken = c
            .volumes
            .iter()
            .any(|v| v.split(':').nth(1) == Some(target))
            || named.iter().any(|(_, t, _)| t == target)
            || c.extra_mounts.iter().any(|m| &m.target == target);
        if !taken {
            c.extra_mounts.push(stack_runtime::Mount {
                kind: "volume".into(),
                source: PathBuf::new(),
                target: target.clone(),
                read_only: false,
                size: None,
                recursive: Default::default(),
            });
        }
    }
    Ok((c, named))
}

/// An image reference as Docker users write it: `docker.io/library/x` is
/// `x`, `docker.io/u/x` is `u/x` (clients send the long forms; the store
/// keeps names as they were given).
pub fn familiar(name: &str) -> String {
    let short = name.strip_prefix("docker.io/").unwrap_or(name);
    short.strip_prefix("library/").unwrap_or(short).to_string()
}

/// A name of Docker's kind for a container that was given none.
fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fond", "gifted", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quirky", "serene", "tender", "vibrant", "witty", "zealous",
    ];
    const NAMES: &[&str] = &[
        "turing", "hopper", "lovelace", "knuth", "ritchie", "thompson", "liskov", "dijkstra",
        "hamilton", "shannon", "babbage", "noether", "curie", "lamarr", "torvalds", "wirth",
    ];
    let r = stack_sys::random_hex(4).unwrap_or_default();
    let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
    format!(
        "{}_{}",
        ADJ[n % ADJ.len()],
        NAMES[(n / ADJ.len()) % NAMES.len()]
    )
}

/// The metadata Docker keeps of a volume and its directory does not say.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct VolumeMeta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    created: String,
}

const VOLUME_META: &str = "volume.json";

/// What the Docker API kept of a volume (nothing for a stack file's).
fn volume_meta(dir: &Path) -> VolumeMeta {
    std::fs::read(dir.join(VOLUME_META))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// dockerd's `Created` for a time stack keeps as RFC 3339 (nothing: now).
fn or_now(t: &str) -> String {
    if t.is_empty() {
        stack_sys::time::now_rfc3339()
    } else {
        t.to_string()
    }
}

/// The name of the network `key` names (name, id or unique id prefix)
/// among `all` (Docker's shape).
fn find_network_record(all: &[Value], key: &str) -> R<String> {
    let n = stack_docker::find_network(all, key)?;
    Ok(n["Name"].as_str().unwrap_or_default().to_string())
}

/// `X-Registry-Auth`: base64url JSON with `username` and `password`
/// (`{}` when the client has none).
fn registry_auth(header: &str) -> Option<stack_image::auth::Credentials> {
    use base64::Engine as _;
    let raw = header.trim();
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let username = v["username"]
        .as_str()
        .filter(|u| !u.is_empty())?
        .to_string();
    let secret = v["password"]
        .as_str()
        .filter(|p| !p.is_empty())?
        .to_string();
    Some(stack_image::auth::Credentials { username, secret })
}

/// A registry's host from what Docker clients send as its address
/// (`https://index.docker.io/v1/`, `127.0.0.1:5000`).
fn registry_host(address: &str) -> String {
    let a = address.split("://").last().unwrap_or(address);
    let host = a.split('/').next().unwrap_or(a);
    match host {
        "" | "index.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// A pull's progress in Docker's messages.
fn progress_json(e: &stack_image::transfer::Event) -> Option<Value> {
    use stack_image::transfer::State as S;
    let id = e
        .layer
        .trim_start_matches("sha256:")
        .get(..12)
        .unwrap_or_default()
        .to_string();
    Some(match &e.state {
        S::Waiting => json!({"status": "Pulling fs layer", "progressDetail": {}, "id": id}),
        S::Exists => json!({"status": "Already exists", "progressDetail": {}, "id": id}),
        S::Downloading { done, total } => json!({
            "status": "Downloading",
            "progressDetail": {"current": done, "total": total},
            "id": id,
        }),
        S::Extracting => json!({"status": "Extracting", "progressDetail": {}, "id": id}),
        S::PullComplete => json!({"status": "Pull complete", "progressDetail": {}, "id": id}),
        _ => return None,
    })
}

/// The total CPU time of the host, nanoseconds (`system_cpu_usage`).
fn system_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks * 10_000_000
}

fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl stack_docker::Backend for Docker {
    fn answered(&self) {
        self.idle.notify_one();
    }

    fn version(&self) -> Value {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        json!({
            "Platform": {"Name": concat!("stack ", env!("CARGO_PKG_VERSION"))},
            "Components": [{
                "Name": "Engine",
                "Version": concat!("stack-", env!("CARGO_PKG_VERSION")),
                "Details": {"ApiVersion": stack_docker::API_VERSION, "MinAPIVersion": stack_docker::MIN_API_VERSION, "Os": "linux", "Arch": std::env::consts::ARCH, "KernelVersion": kernel},
            }],
            // Clients compare this with Docker releases: the release whose
            // API stack serves.
            "Version": "28.2.0",
            "GitCommit": "stack",
            "GoVersion": "none (Rust)",
            "Os": "linux",
            "Arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
            "KernelVersion": kernel,
            "BuildTime": "",
        })
    }

    fn info(&self) -> R<Value> {
        let all = containers::every(self.root());
        let running_n = all.iter().filter(|(_, r)| *r).count();
        let paused = all
            .iter()
            .filter(|(st, r)| *r && containers::is_paused(st))
            .count();
        let images = self
            .host
            .images()
            .and_then(|s| Ok(s.images()?.len()))
            .unwrap_or(0);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let uts = nix::sys::utsname::uname().ok();
        let s = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
            && !Path::new("/sys/fs/cgroup/memory").exists();
        Ok(json!({
            "ID": "stack",
            "Containers": all.len(),
            "ContainersRunning": running_n - paused,
            "ContainersPaused": paused,
            "ContainersStopped": all.len() - running_n,
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file", "local", "none"]},
            "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true,
            "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
            "Debug": false,
            "NFd": 0, "NGoroutines": 0,
            "SystemTime": stack_sys::time::now_rfc3339(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": if v2 { "2" } else { "1" },
            "NEventsListener": 0,
            "KernelVersion": s(nix::sys::utsname::UtsName::release),
            "OperatingSystem": "stack",
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": s(nix::sys::utsname::UtsName::machine),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "NCPU": ncpu(),
            "MemTotal": mem,
            "DockerRootDir": self.root(),
            "Name": s(nix::sys::utsname::UtsName::nodename),
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": "28.2.0",
            "Runtimes": {"stack": {"path": "stack"}},
            "DefaultRuntime": "stack",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "Warnings": [],
        }))
    }

    fn containers(&self, all: bool, _size: bool) -> R<Vec<Value>> {
        let eps = self.endpoints();
        let nets = self.network_records();
        Ok(containers::every(self.root())
            .into_iter()
            .filter(|(st, r)| all || *r || self.restarting(&st.id))
            .map(|(st, _)| self.summary(&st, &eps, &nets))
            .collect())
    }

    fn create(&self, name: Option<&str>, body: CreateContainer) -> R<Value> {
        let mut body = body;
        body.image = familiar(&body.image);
        let (mut c, named) = config_of(name, &body)?;
        let store = self.host.images().map_err(failed)?;
        if store.lookup(&body.image).is_err() {
            return Err(DockerError::no_such_image(
                &stack_image::store::normalize_name(&body.image),
            ));
        }
        // A made-up name is made up again while it is taken.
        let name = match c.name.clone() {
            Some(n) => n,
            None => (0..20)
                .map(|_| random_name())
                .find(|n| containers::find(self.root(), n).is_err())
                .unwrap_or_else(|| {
                    let more = stack_sys::random_hex(4).unwrap_or_default();
                    format!("{}_{more}", random_name())
                }),
        };
        if let Ok((_, other)) = containers::find(self.root(), &name) {
            if other.name == name {
                return Err(DockerError::conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        c.name = Some(name);
        if c.network.first().map(String::as_str) == Some(BRIDGE) {
            self.ensure_bridge()?;
        }
        for (volume, target, read_only) in named {
            let dir = crate::service::volume_dir(self.root(), &volume)
                .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
            if !dir.join("_data").exists() {
                self.create_volume(CreateVolume {
                    name: volume.clone(),
                    ..Default::default()
                })?;
            }
            // As its driver options say (a bind of a device, a tmpfs).
            let meta = volume_meta(&dir);
            let opts = (!meta.options.is_empty()).then_some(&meta.options);
            c.extra_mounts.push(
                crate::service::local_volume(&self.host, &volume, opts, false, &target, read_only)
                    .map_err(|e| DockerError::bad_request(format!("{e:#}")))?,
            );
        }
        let mut warnings = Vec::new();
        if (c.blkio_weight.is_some() || !c.blkio_weight_device.is_empty())
            && !stack_runtime::cgroup::controllers().io_weight
        {
            // As dockerd says it, and does.
            warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.");
        }
        let id = crate::create::launch(&self.host, &c, Launch::CreateOnly, None)
            .map_err(|e| match HostError::of(&e) {
                Some(_) => failed(e),
                // What the configuration asks that the host cannot do.
                None => DockerError::bad_request(format!("{e:#}")),
            })?
            .id;
        if let Ok((_, st)) = self.find(&id) {
            self.publish(&st, "create");
        }
        Ok(json!({"Id": id, "Warnings": warnings}))
    }

    fn inspect(&self, id: &str, _size: bool) -> R<Value> {
        let (dir, st) = self.find(id)?;
        Ok(self.inspect_json(&dir, &st))
    }

    fn start(&self, id: &str) -> R<bool> {
        let (_, st) = self.find(id)?;
        if running(&st) {
            return Ok(false);
        }
        if st.spec.tty || st.spec.interactive {
            self.start_console(&st)?;
        } else {
            containers::start_again(self.root(), &st.id).map_err(failed)?;
        }
        self.watch(&st.id);
        self.publish(&st, "start");
        Ok(true)
    }

    fn stop(&self, id: &str, _signal: Option<&str>, timeout: Option<u64>) -> R<bool> {
        let (_, st) = self.find(id)?;
        if !running(&st) {
            return Ok(false);
        }
        containers::stop_one(self.root(), &st.id, timeout).map_err(failed)?;
        self.publish(&st, "stop");
        Ok(true)
    }

    fn restart(&self, id: &str, signal: Option<&str>, timeout: Option<u64>) -> R<()> {
        self.stop(id, signal, timeout)?;
        self.start(id).map(drop)
    }

    fn kill(&self, id: &str, signal: &str) -> R<()> {
        let (_, st) = self.find(id)?;
        if !running(&st) {
            return Err(DockerError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                id, st.id
            )));
        }
        let sig = signal.trim_start_matches("SIG");
        containers::kill_one(self.root(), &st.id, sig)
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        self.publish(&st, "kill");
        Ok(())
    }

    fn pause(&self, id: &str, paused: bool) -> R<()> {
        let (_, st) = self.find(id)?;
        if !running(&st) {
            return Err(DockerError::conflict(format!(
                "Container {} is not running",
                st.id
            )));
        }
        if containers::is_paused(&st) == paused {
            return Err(DockerError::conflict(format!(
                "Container {} is {}paused",
                st.id,
                if paused { "already " } else { "not " }
            )));
        }
        containers::freeze(self.root(), &st.id, paused).map_err(failed)?;
        self.publish(&st, if paused { "pause" } else { "unpause" });
        Ok(())
    }

    fn wait(&self, id: &str, condition: &str, gone: &dyn Fn() -> bool) -> R<i64> {
        // A container removed as it ends (`AutoRemove`) may be gone before
        // its state is read: its exit code is in the engine's `die`.
        let mut events = self.engine.subscribe();
        let (dir, first) = self.find(id)?;
        let id = first.id.clone();
        let mut died = {
            let id = id.clone();
            move || {
                use tokio::sync::broadcast::error::TryRecvError;
                let mut found = None;
                loop {
                    match events.try_recv() {
                        Ok(e) if e.id == id && e.action == "die" => {
                            found = e.attributes.get("exitCode").and_then(|c| c.parse().ok());
                        }
                        Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                        Err(_) => return found,
                    }
                }
            }
        };
        let removed = condition == "removed";
        let mut code = None;
        loop {
            if gone() {
                return Err(DockerError::internal("the client went away"));
            }
            let st = match stack_runtime::state::read(&dir) {
                Ok(st) => st,
                // Gone: removed (`AutoRemove`, `rm -f`) as it ended.
                Err(_) => {
                    return match code.or_else(&mut died) {
                        Some(c) => Ok(c),
                        None => Err(DockerError::no_such_container(&id)),
                    }
                }
            };
            // Running, or ended with its exit not recorded yet (its
            // monitor is still writing out its output): not over.
            if running(&st) || containers::recording(&st) {
                let exit = self
                    .host
                    .block_on(async {
                        let waiting = crate::supervision::wait_exit(self.root(), &id);
                        tokio::pin!(waiting);
                        loop {
                            tokio::select! {
                                exit = &mut waiting => return Some(exit),
                                () = tokio::time::sleep(Duration::from_secs(1)) => {
                                    if gone() {
                                        return None;
                                    }
                                }
                            }
                        }
                    })
                    .map_err(failed)?;
                match exit {
                    None => return Err(DockerError::internal("the client went away")),
                    Some(Ok(e)) => code = Some(i64::from(e.code)),
                    // Removed meanwhile: the next turn finds it gone.
                    Some(Err(_)) => {}
                }
                if !removed {
                    if let Some(c) = code {
                        return Ok(c);
                    }
                }
                continue;
            }
            let ran_since = st.finished_at != first.finished_at;
            let last = i64::from(st.exit_code.unwrap_or(0));
            match condition {
                // Not running now: the last exit, or 0 for one never started.
                "not-running" => return Ok(last),
                "next-exit" if ran_since => return Ok(last),
                _ if removed && (ran_since || st.status == Status::Exited) => code = Some(last),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn resize(&self, id: &str, rows: u16, cols: u16) -> R<()> {
        let (_, st) = self.find(id)?;
        let console = lock(&self.consoles).get(&st.id).cloned();
        if let Some(c) = console {
            c.resize(rows, cols);
        }
        Ok(())
    }

    fn rename(&self, id: &str, name: &str) -> R<()> {
        let (_, st) = self.find(id)?;
        let name = name.trim_start_matches('/');
        if let Ok((_, other)) = containers::find(self.root(), name) {
            if other.name == name {
                return Err(DockerError::conflict(format!(
                    "Error when allocating new name: Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        containers::rename(&self.host, &st.id, name).map_err(failed)?;
        self.publish(&st, "rename");
        Ok(())
    }

    fn remove(&self, id: &str, force: bool, _volumes: bool) -> R<()> {
        let (_, st) = self.find(id)?;
        if running(&st) && !force {
            return Err(DockerError::conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                st.name
            )));
        }
        // Anonymous volumes live in the container's directory and go with it.
        containers::remove_one(&self.host, &st.id, force).map_err(failed)?;
        // An attach waiting for a start that will never come ends.
        let console = lock(&self.consoles).remove(&st.id);
        if let Some(c) = console {
            c.ended(st.exit_code.unwrap_or(0));
        }
        self.publish(&st, "destroy");
        Ok(())
    }

    fn attach(&self, id: &str, q: &AttachQuery) -> R<Output> {
        let (dir, st) = self.find(id)?;
        let tty = st.spec.tty;
        // A container with open input has its streams in the engine while
        // the engine started it (or will start it: attach comes first);
        // any other is followed in its log.
        if (tty || st.spec.interactive) && q.stream {
            let console = if running(&st) {
                lock(&self.consoles).get(&st.id).cloned()
            } else {
                Some(self.console(&st))
            };
            if let Some(c) = console {
                return Ok(c.attach(q, tty));
            }
        }
        // Input asked of a container whose input no console of the
        // engine's holds (one `stack up` started): said, not dropped.
        if q.stdin && st.spec.interactive {
            return Err(DockerError::conflict(format!(
                "{NO_CONSOLE} `{}` (attach without stdin: --no-stdin)",
                st.name
            )));
        }
        let (out_r, out_w) = std::io::pipe().map_err(|e| DockerError::internal(e.to_string()))?;
        let (err_r, err_w) = std::io::pipe().map_err(|e| DockerError::internal(e.to_string()))?;
        // Where the log is now: what comes after is this attach's (the
        // client starts the container once attached).
        // The log opened now (made if the container has not run yet, as
        // its monitor would): a container removed as soon as it ends
        // (`AutoRemove`) takes its log with it, but not from an open file.
        let path = stack_runtime::state::log_path(&dir);
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path);
        }
        let mut log = stack_runtime::logs::Follower::new(path);
        let at_start = log.tail(usize::MAX * usize::from(q.logs), |_| true);
        let (stdout, stderr, stream) = (q.stdout, q.stderr || tty, q.stream);
        let before = (st.status, st.started_at.clone());
        let follow = std::thread::spawn(move || {
            use std::io::Write as _;
            let (mut out_w, mut err_w) = (out_w, err_w);
            let mut started = running(&st);
            let mut code = st.exit_code.unwrap_or(0);
            let mut first = Some(at_start);
            let mut last = false;
            loop {
                let records = first.take().unwrap_or_else(|| log.read_new().0);
                let read_some = !records.is_empty();
                for r in records {
                    let to = match r.stream.as_str() {
                        "stderr" if stderr && !tty => &mut err_w,
                        "stdout" if stdout => &mut out_w,
                        "stderr" if tty && stdout => &mut out_w,
                        _ => continue,
                    };
                    if to.write_all(r.log.as_bytes()).is_err() {
                        return code;
                    }
                }
                if last && !read_some && !log.behind() {
                    return code;
                }
                if !stream || log.behind() || last {
                    if !stream && !log.behind() {
                        return code;
                    }
                    continue;
                }
                let Ok(now) = stack_runtime::state::read(&dir) else {
                    // Removed: what it wrote is read to the end.
                    last = true;
                    continue;
                };
                code = now.exit_code.unwrap_or(code);
                if running(&now) || (now.status, now.started_at.clone()) != before {
                    started = true;
                }
                // Ended once the monitor has recorded it (PID 1 gone is not
                // the end: the monitor logs what is left first), or is gone.
                let recorded = now.status == Status::Exited
                    || (!stack_runtime::state::alive(&now)
                        && !stack_runtime::state::process_running(now.monitor_pid));
                if started && recorded {
                    last = true;
                    continue;
                }
                // Nobody reads any more (the client went): done.
                if reader_gone(&out_w) {
                    return code;
                }
                std::thread::sleep(Duration::from_millis(if started { 20 } else { 5 }));
            }
        });
        Ok(Output {
            session: Session {
                stdin: None,
                stdout: Some(Box::new(out_r)),
                stderr: (!tty).then(|| Box::new(err_r) as Box<dyn std::io::Read + Send>),
                control: Box::new(Joined(std::sync::Mutex::new(Some(follow)))),
            },
            tty,
        })
    }

    fn logs(
        &self,
        id: &str,
        q: &LogsQuery,
        each: &mut dyn FnMut(Stream, &str, &[u8]) -> bool,
    ) -> R<()> {
        let (_, st) = self.find(id)?;
        let in_range = |t: &str| {
            let secs = stack_sys::time::parse_rfc3339(t).map_or(0.0, |n| n as f64 / 1e9);
            q.since.is_none_or(|s| secs >= s) && q.until.is_none_or(|u| secs <= u)
        };
        let done = containers::read_log(self.root(), &st.id, q.follow, q.tail, |records| {
            // Nothing new: is the client still there?
            if records.is_empty() && !each(Stream::Stdout, "", &[]) {
                anyhow::bail!(Gone);
            }
            for r in records {
                let stream = if r.stream == "stderr" {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                let wanted = match stream {
                    Stream::Stderr => q.stderr,
                    _ => q.stdout,
                };
                if wanted && in_range(&r.time) && !each(stream, &r.time, r.log.as_bytes()) {
                    anyhow::bail!(Gone);
                }
            }
            Ok(())
        });
        match done {
            Err(e) if e.is::<Gone>() => Ok(()),
            Err(e) => Err(failed(e)),
            Ok(()) => Ok(()),
        }
    }

    fn top(&self, id: &str, _ps_args: Option<&str>) -> R<Value> {
        let (_, st) = self.find(id)?;
        if !running(&st) {
            return Err(DockerError::conflict(format!(
                "container {} is not running",
                st.id
            )));
        }
        let top = containers::top_of(&st);
        Ok(json!({
            "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "Processes": top.processes.iter().map(|p| json!([p.uid, p.pid.to_string(), p.ppid.to_string(), p.c.to_string(), p.stime, p.tty, p.time, p.cmd])).collect::<Vec<_>>(),
        }))
    }

    fn stats(&self, id: &str) -> R<Value> {
        let (_, st) = self.find(id)?;
        let s = crate::stats::read(&st);
        let secs = (s.read_nanos / 1_000_000_000) as i64;
        Ok(json!({
            "read": stack_sys::time::rfc3339(secs, (s.read_nanos % 1_000_000_000) as u32),
            "preread": "0001-01-01T00:00:00Z",
            "id": st.id,
            "name": format!("/{}", st.name),
            "pids_stats": {"current": s.pids},
            "cpu_stats": {
                "cpu_usage": {"total_usage": s.cpu_nanos, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "system_cpu_usage": system_cpu_nanos(),
                "online_cpus": ncpu(),
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            },
            "memory_stats": {"usage": s.memory, "limit": s.memory_limit, "stats": {}},
            "networks": {"eth0": {"rx_bytes": s.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0, "tx_bytes": s.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": s.block_read},
                {"major": 0, "minor": 0, "op": "write", "value": s.block_write},
            ]},
        }))
    }

    fn changes(&self, id: &str) -> R<Value> {
        let (_, st) = self.find(id)?;
        Ok(Value::Array(
            crate::layers::changes(self.root(), &st)
                .into_iter()
                .map(|(path, kind)| json!({"Path": path, "Kind": kind}))
                .collect(),
        ))
    }

    fn commit(&self, id: &str, q: stack_docker::CommitQuery) -> R<String> {
        let (_, st) = self.find(id)?;
        let tag = q.reference.map(|r| familiar(&r));
        if let Some(t) = &tag {
            stack_image::reference::Reference::parse(t)
                .map_err(|e| DockerError::bad_request(format!("invalid reference format: {e}")))?;
        }
        let o = crate::layers::CommitOptions {
            tag,
            author: q.author,
            message: q.comment,
            changes: q.changes,
            settings: q.config,
        };
        let img = crate::layers::commit(&self.host, &st, o)
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        Ok(img.id)
    }

    fn export(&self, id: &str) -> R<stack_api::Archive> {
        let (_, st) = self.find(id)?;
        let root = self.root().to_path_buf();
        Ok(Box::new(move |out: &mut dyn std::io::Write| {
            // A running container is frozen while its layer is read: it
            // cannot swap a directory for a link to the host's meanwhile.
            let freeze = running(&st) && !containers::is_paused(&st);
            if freeze {
                containers::freeze(&root, &st.id, true).map_err(std::io::Error::other)?;
            }
            let done = crate::layers::export(&root, &st, out);
            if freeze {
                let _ = containers::freeze(&root, &st.id, false);
            }
            done
        }))
    }

    fn stat_path(&self, id: &str, path: &str) -> R<Value> {
        let (_, st) = self.find(id)?;
        let fs = stack_runtime::files::ContainerFs::open(&st)
            .map_err(|e| DockerError::conflict(format!("container {}: {e}", st.id)))?;
        let Some((mode, size, mtime)) = fs
            .stat(path)
            .map_err(|e| DockerError::internal(e.to_string()))?
        else {
            return Err(DockerError::not_found(format!(
                "Could not find the file {path} in container {}",
                st.name
            )));
        };
        // A symlink's resolved target, where `docker cp -L` copies from.
        let link = match mode & libc::S_IFMT {
            libc::S_IFLNK => fs.follow(path).unwrap_or_default(),
            _ => String::new(),
        };
        Ok(json!({
            "name": crate::files::top_name(path),
            "size": size,
            "mode": go_mode(mode),
            "mtime": stack_sys::time::rfc3339(mtime, 0),
            "linkTarget": link,
        }))
    }

    fn archive(&self, id: &str, path: &str) -> R<stack_api::Archive> {
        let (_, st) = self.find(id)?;
        let write = crate::files::archive(&st, path, false).map_err(failed)?;
        Ok(Box::new(move |out: &mut dyn std::io::Write| {
            write(out).map_err(|e| std::io::Error::other(format!("{e:#}")))
        }))
    }

    fn extract(
        &self,
        id: &str,
        path: &str,
        keep_owner: bool,
        tar: &mut dyn std::io::Read,
    ) -> R<()> {
        let (_, st) = self.find(id)?;
        // Docker extracts into the directory `path` names.
        let fs = stack_runtime::files::ContainerFs::open(&st)
            .map_err(|e| DockerError::conflict(format!("container {}: {e}", st.id)))?;
        match fs.is_dir(path) {
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                return Err(DockerError::bad_request(
                    "extraction point is not a directory",
                ))
            }
            _ => {
                return Err(DockerError::not_found(format!(
                    "Could not find the file {path} in container {}",
                    st.name
                )))
            }
        }
        crate::files::extract(
            &st,
            &format!("{}/", path.trim_end_matches('/')),
            false,
            keep_owner,
            tar,
        )
        .map(drop)
        .map_err(failed)
    }

    fn prune_containers(&self, f: &stack_docker::filters::Filters) -> R<Value> {
        let mut deleted = Vec::new();
        for (st, r) in containers::every(self.root()) {
            let labels = serde_json::to_value(&st.spec.labels).unwrap_or_default();
            if r || !f.labels_match(&labels) {
                continue;
            }
            if containers::remove_one(&self.host, &st.id, false).is_ok() {
                self.publish(&st, "destroy");
                deleted.push(st.id);
            }
        }
        Ok(json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}))
    }

    fn running_id(&self, id: &str) -> R<String> {
        let (_, st) = self.find(id)?;
        if !running(&st) {
            return Err(DockerError::conflict(format!(
                "container {} is not running",
                st.id
            )));
        }
        if containers::is_paused(&st) {
            return Err(DockerError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                st.id
            )));
        }
        Ok(st.id)
    }

    fn exec(&self, exec: &Exec, detach: bool) -> R<Output> {
        let st = containers::running_state(self.root(), &exec.container).map_err(failed)?;
        let c = &exec.config;
        let p = stack_runtime::Process {
            args: c.cmd.clone(),
            env: c.env.clone(),
            cwd: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
            user: Some(c.user.clone()).filter(|u| !u.is_empty()),
            tty: c.tty && !detach,
            interactive: c.attach_stdin && !detach,
            console_size: match c.console_size[..] {
                [rows, cols] if rows > 0 && cols > 0 => Some((rows, cols)),
                _ => None,
            },
            privileged: c.privileged,
        };
        let started = |e: stack_runtime::RuntimeError| DockerError::internal(e.to_string());
        if detach {
            // Waited for, so that its inspection says when it ends and how.
            let child = stack_runtime::exec_detached_child(&st, &p).map_err(started)?;
            return Ok(Output {
                session: Session {
                    stdin: None,
                    stdout: None,
                    stderr: None,
                    control: Box::new(Waited(std::sync::Mutex::new(Some(child)))),
                },
                tty: false,
            });
        }
        let piped = stack_runtime::exec_piped(&st, &p).map_err(started)?;
        let pid = piped.child.id() as i32;
        let session = crate::session::relayed(piped, p.interactive, move || Some(pid), None)
            .map_err(|e| DockerError::internal(e.message))?;
        Ok(Output {
            session,
            tty: p.tty,
        })
    }

    fn images(&self, _all: bool) -> R<Vec<Value>> {
        let store = self.host.images().map_err(failed)?;
        // Each container's image id, looked up once (not once per image).
        let used: Vec<String> = containers::every(self.root())
            .iter()
            .map(|(st, _)| self.image_id(&st.spec.image))
            .collect();
        Ok(store
            .images()
            .map_err(|e| failed(e.into()))?
            .into_iter()
            .map(|img| {
                let uses = used.iter().filter(|id| **id == img.id).count();
                json!({
                    "Id": img.id,
                    "ParentId": "",
                    "RepoTags": img.names.iter().filter(|n| !n.contains('@')).collect::<Vec<_>>(),
                    "RepoDigests": img.repo_digests,
                    "Created": img.created.as_deref().map_or(0, unix),
                    "Size": img.size,
                    "SharedSize": -1,
                    "VirtualSize": img.size,
                    "Labels": img.config.labels.clone().unwrap_or_default(),
                    "Containers": uses,
                })
            })
            .collect())
    }

    fn pull(&self, image: &str, auth: Option<&str>, progress: &mut dyn FnMut(Value)) -> R<()> {
        let creds = auth.and_then(registry_auth);
        let reference = stack_image::reference::Reference::parse(image)
            .map_err(|e| DockerError::bad_request(format!("invalid reference format: {e}")))?;
        let tag = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or("latest", |(_, t)| t);
        progress(json!({"status": format!("Pulling from {}", reference.repository), "id": tag}));
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        let reporter: stack_image::transfer::Progress = std::sync::Arc::new(move |e| {
            if let Some(v) = progress_json(&e) {
                let _ = tx.send(v);
            }
        });
        let host = self.host.clone();
        let name = image.to_string();
        let pulling = std::thread::spawn(move || match creds {
            Some(c) => crate::images::pull_as(&host, c, &name, reporter),
            None => crate::images::pull(&host, &name, None, reporter),
        });
        for v in rx {
            progress(v);
        }
        let pulled = pulling
            .join()
            .map_err(|_| DockerError::internal("the pull panicked"))?
            .map_err(|e| DockerError::not_found(format!("{e:#}")))?;
        progress(json!({"status": format!("Digest: {}", pulled.digest)}));
        let shown = stack_image::store::normalize_name(image);
        progress(json!({"status": if pulled.fetched {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        }}));
        Ok(())
    }

    fn inspect_image(&self, name: &str) -> R<Value> {
        let name = &familiar(name);
        let store = self.host.images().map_err(failed)?;
        let img = store
            .lookup(name)
            .map_err(|_| DockerError::no_such_image(name))?;
        let cfg = &img.config;
        let (os, arch) = img
            .platform
            .as_deref()
            .and_then(|p| p.split_once('/'))
            .map_or(("linux".to_string(), "amd64".to_string()), |(o, a)| {
                (o.to_string(), a.split('/').next().unwrap_or(a).to_string())
            });
        Ok(json!({
            "Id": img.id,
            "RepoTags": img.names.iter().filter(|n| !n.contains('@')).collect::<Vec<_>>(),
            "RepoDigests": img.repo_digests,
            "Parent": "",
            "Comment": "",
            "Created": img.created.clone().unwrap_or_default(),
            "DockerVersion": "",
            "Author": "",
            "Config": {
                "Hostname": "", "Domainname": "", "User": cfg.user.clone().unwrap_or_default(),
                "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
                "ExposedPorts": cfg.exposed_ports, "Tty": false, "OpenStdin": false, "StdinOnce": false,
                "Env": cfg.env, "Cmd": cfg.cmd, "Healthcheck": cfg.healthcheck, "Image": "",
                "Volumes": cfg.volumes, "WorkingDir": cfg.working_dir.clone().unwrap_or_default(),
                "Entrypoint": cfg.entrypoint, "OnBuild": null, "Labels": cfg.labels,
                "StopSignal": cfg.stop_signal,
            },
            "Architecture": arch,
            "Os": os,
            "Size": img.size,
            "VirtualSize": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": null},
            "RootFS": {"Type": "layers", "Layers": img.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }))
    }

    fn load(&self, tar: &mut dyn std::io::Read) -> R<Vec<String>> {
        let store = self.host.images().map_err(failed)?;
        let dir = store.tmp_dir("docker-load").map_err(|e| failed(e.into()))?;
        let file = dir.join("archive.tar");
        let loaded = std::fs::File::create(&file)
            .and_then(|mut f| std::io::copy(tar, &mut f))
            .map_err(|e| DockerError::internal(format!("cannot keep the archive: {e}")))
            .and_then(|_| {
                stack_image::archive::load(&store, &file)
                    .map_err(|e| DockerError::bad_request(format!("{e}")))
            });
        let _ = stack_sys::remove_tree(store.root(), &dir);
        Ok(loaded?
            .into_iter()
            .flat_map(|i| {
                if i.names.is_empty() {
                    vec![i.id]
                } else {
                    i.names
                }
            })
            .collect())
    }

    fn save(&self, names: &[String]) -> R<stack_api::Archive> {
        let store = self.host.images().map_err(failed)?;
        let names: Vec<String> = names.iter().map(|n| familiar(n)).collect();
        for n in &names {
            store.lookup(n).map_err(|_| DockerError::no_such_image(n))?;
        }
        Ok(Box::new(move |out: &mut dyn std::io::Write| {
            stack_image::archive::save(&store, &names, out).map_err(std::io::Error::other)
        }))
    }

    fn history(&self, name: &str) -> R<Value> {
        let name = &familiar(name);
        let store = self.host.images().map_err(failed)?;
        let img = store
            .lookup(name)
            .map_err(|_| DockerError::no_such_image(name))?;
        let config: Value = store
            .read_blob(&img.id)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let history = config["history"].as_array().cloned().unwrap_or_default();
        // Newest first; the layers' sizes to the entries that made one.
        let mut sizes = img.layer_sizes.iter().rev();
        let mut out: Vec<Value> = history
            .iter()
            .rev()
            .enumerate()
            .map(|(i, h)| {
                let empty = h["empty_layer"].as_bool().unwrap_or(false);
                json!({
                    "Id": if i == 0 { img.id.as_str() } else { "<missing>" },
                    "Created": h["created"].as_str().map_or(0, unix),
                    "CreatedBy": h["created_by"].as_str().unwrap_or_default(),
                    "Tags": if i == 0 { json!(img.names) } else { Value::Null },
                    "Size": if empty { 0 } else { sizes.next().copied().unwrap_or(0) },
                    "Comment": h["comment"].as_str().unwrap_or_default(),
                })
            })
            .collect();
        if out.is_empty() {
            out.push(json!({"Id": img.id, "Created": img.created.as_deref().map_or(0, unix), "CreatedBy": "", "Tags": img.names, "Size": img.size, "Comment": ""}));
        }
        Ok(Value::Array(out))
    }

    fn tag(&self, name: &str, repo: &str, tag: &str) -> R<()> {
        let (name, repo) = (&familiar(name), &familiar(repo));
        let store = self.host.images().map_err(failed)?;
        store
            .lookup(name)
            .map_err(|_| DockerError::no_such_image(name))?;
        let target = format!("{repo}:{tag}");
        stack_image::reference::Reference::parse(&target)
            .map_err(|e| DockerError::bad_request(format!("invalid reference format: {e}")))?;
        store.tag(name, &target).map_err(|e| failed(e.into()))?;
        Ok(())
    }

    fn remove_image(&self, name: &str, _force: bool) -> R<Value> {
        let name = &familiar(name);
        let store = self.host.images().map_err(failed)?;
        let img = store
            .lookup(name)
            .map_err(|_| DockerError::no_such_image(name))?;
        let done = crate::images::remove(&self.host, &store, &[name.to_string()])
            .map_err(failed)?
            .remove(0);
        let untagged = if img.id.starts_with(name) || name.starts_with("sha256:") {
            None
        } else {
            Some(stack_image::store::normalize_name(name))
        };
        match done {
            Ok(deleted) => {
                let mut out: Vec<Value> = untagged
                    .into_iter()
                    .map(|u| json!({"Untagged": u}))
                    .collect();
                out.extend(deleted.map(|d| json!({"Deleted": d})));
                Ok(Value::Array(out))
            }
            Err(stack_image::ImageError::NotFound(_)) => Err(DockerError::no_such_image(name)),
            Err(e) => Err(DockerError::conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - {e}"
            ))),
        }
    }

    fn prune_images(&self, f: &stack_docker::filters::Filters) -> R<Value> {
        let all = f
            .get("dangling")
            .is_some_and(|d| d.iter().any(|v| v == "false" || v == "0"));
        let pruned = crate::images::prune(&self.host, all).map_err(failed)?;
        Ok(json!({
            "ImagesDeleted": pruned.images.iter().map(|i| json!({"Deleted": i})).collect::<Vec<_>>(),
            "SpaceReclaimed": pruned.collected.bytes,
        }))
    }

    fn networks(&self) -> R<Vec<Value>> {
        let store = self.host.networks().map_err(failed)?;
        let nets = store.networks().map_err(|e| failed(e.into()))?;
        let eps = store.all_endpoints().map_err(|e| failed(e.into()))?;
        let mut out: Vec<Value> = nets
            .iter()
            .map(|n| {
                let members: serde_json::Map<String, Value> = eps
                    .iter()
                    .filter(|e| e.network == n.name)
                    .map(|e| {
                        let with_len = |v6: bool| {
                            e.addresses
                                .iter()
                                .find(|a| a.is_ipv6() == v6)
                                .and_then(|a| {
                                    let s = n.subnets.iter().find(|s| s.subnet.addr().is_ipv6() == v6)?;
                                    Some(format!("{a}/{}", s.subnet.prefix_len()))
                                })
                                .unwrap_or_default()
                        };
                        (
                            e.container.clone(),
                            json!({"Name": e.name, "EndpointID": e.host_veth, "MacAddress": e.mac, "IPv4Address": with_len(false), "IPv6Address": with_len(true)}),
                        )
                    })
                    .collect();
                json!({
                    "Name": n.name,
                    "Id": n.id,
                    // (Kept as seconds since the epoch.)
                    "Created": n.created.parse::<i64>().map_or(n.created.clone(), |t| stack_sys::time::rfc3339(t, 0)),
                    "Scope": "local",
                    "Driver": "bridge",
                    "EnableIPv4": true,
                    "EnableIPv6": n.subnets.iter().any(|s| s.subnet.addr().is_ipv6()),
                    "IPAM": {
                        "Driver": "default",
                        "Options": null,
                        "Config": n.subnets.iter().map(|s| json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()})).collect::<Vec<_>>(),
                    },
                    "Internal": n.internal,
                    "Attachable": false,
                    "Ingress": false,
                    "ConfigFrom": {"Network": ""},
                    "ConfigOnly": false,
                    "Containers": members,
                    "Options": {"com.docker.network.bridge.name": n.bridge},
                    "Labels": n.labels,
                })
            })
            .collect();
        // Docker's predefined networks besides `bridge`.
        for (name, driver) in [("host", "host"), ("none", "null")] {
            out.push(json!({
                "Name": name,
                "Id": stack_image::store::sha256_hex(name.as_bytes()),
                "Created": "0001-01-01T00:00:00Z",
                "Scope": "local",
                "Driver": driver,
                "EnableIPv6": false,
                "IPAM": {"Driver": "default", "Options": null, "Config": []},
                "Internal": false, "Attachable": false, "Ingress": false,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
                "Containers": {}, "Options": {}, "Labels": {},
            }));
        }
        Ok(out)
    }

    fn create_network(&self, body: CreateNetwork) -> R<Value> {
        if body.name.is_empty() {
            return Err(DockerError::bad_request("network name must not be empty"));
        }
        if !matches!(body.driver.as_str(), "" | "bridge") {
            return Err(DockerError::bad_request(format!(
                "network driver `{}` is not supported by stack (bridge is)",
                body.driver
            )));
        }
        if ["host", "none", "default"].contains(&body.name.as_str()) {
            return Err(DockerError::new(
                403,
                format!(
                    "{} is a pre-defined network and cannot be created",
                    body.name
                ),
            ));
        }
        let store = self.host.networks().map_err(failed)?;
        if store.get(&body.name).is_ok() {
            return Err(DockerError::conflict(format!(
                "network with name {} already exists",
                body.name
            )));
        }
        let mut subnets = Vec::new();
        for c in body.ipam.iter().flat_map(|i| &i.config) {
            let parse_net = |s: &str, what: &str| {
                (!s.is_empty())
                    .then(|| {
                        s.parse::<ipnet::IpNet>().map_err(|e| {
                            DockerError::bad_request(format!("invalid {what} {s}: {e}"))
                        })
                    })
                    .transpose()
            };
            subnets.push(stack_net::SubnetRequest {
                subnet: parse_net(&c.subnet, "subnet")?,
                ip_range: parse_net(&c.ip_range, "ip range")?,
                gateway: (!c.gateway.is_empty())
                    .then(|| {
                        c.gateway.parse().map_err(|_| {
                            DockerError::bad_request(format!("invalid gateway {}", c.gateway))
                        })
                    })
                    .transpose()?,
                aux_addresses: Vec::new(),
            });
        }
        let opts = stack_net::CreateOptions {
            name: body.name.clone(),
            driver: Some("bridge".into()),
            driver_opts: body.options.clone(),
            subnets,
            ipv6: body.enable_ipv6.unwrap_or(false),
            internal: body.internal,
            labels: body.labels.clone(),
        };
        let net = crate::network::create(&self.host, &opts)
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        Ok(json!({"Id": net.id, "Warning": ""}))
    }

    fn remove_network(&self, id: &str) -> R<()> {
        if ["host", "none"].contains(&id) {
            return Err(DockerError::new(
                403,
                format!("{id} is a pre-defined network and cannot be removed"),
            ));
        }
        let net = stack_docker::find_network(&self.networks()?, id)?;
        let name = net["Name"].as_str().unwrap_or_default().to_string();
        if net["Containers"].as_object().is_some_and(|c| !c.is_empty()) {
            return Err(DockerError::new(
                403,
                format!(
                    "error while removing network: network {name} id {} has active endpoints",
                    net["Id"].as_str().unwrap_or_default()
                ),
            ));
        }
        crate::network::remove(&self.host, &name).map_err(failed)
    }

    fn connect(&self, network: &str, body: ConnectNetwork, connect: bool) -> R<()> {
        let (_, st) = self.find(&body.container)?;
        let net = find_network_record(&self.networks()?, network)?;
        let on = self
            .endpoints()
            .into_iter()
            .any(|e| e.container == st.id && e.network == net);
        if !matches!(st.spec.network, stack_runtime::NetworkMode::Path(_)) {
            return Err(DockerError::bad_request(format!(
                "container {} shares another's network namespace or the host's: it joins no network",
                st.name
            )));
        }
        if !connect {
            if !on {
                return Err(DockerError::conflict(format!(
                    "container {} is not connected to network {net}",
                    st.id
                )));
            }
            return crate::network::leave(&self.host, &st.id, &net).map_err(failed);
        }
        if on {
            return Err(DockerError::conflict(format!(
                "endpoint with name {} already exists in network {net}",
                st.name
            )));
        }
        let ec = body.endpoint_config.unwrap_or_default();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        let attachment = stack_net::Attachment {
            network: net,
            aliases: ec.aliases.clone(),
            ipv4: ec.ipam_config.as_ref().and_then(|c| ip(&c.ipv4)),
            ipv6: ec.ipam_config.as_ref().and_then(|c| ip(&c.ipv6)),
            mac: stack_net::ipam::parse_mac(&ec.mac_address).ok(),
        };
        crate::network::join(&self.host, &st.id, &st.name, &attachment)
            .map(drop)
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))
    }

    fn prune_networks(&self, f: &stack_docker::filters::Filters) -> R<Value> {
        let mut deleted = Vec::new();
        for n in self.networks()? {
            let name = n["Name"].as_str().unwrap_or_default().to_string();
            let unused = n["Containers"].as_object().is_none_or(|c| c.is_empty());
            if ["bridge", "host", "none"].contains(&name.as_str())
                || !unused
                || !f.labels_match(&n["Labels"])
            {
                continue;
            }
            if crate::network::remove(&self.host, &name).is_ok() {
                deleted.push(name);
            }
        }
        Ok(json!({"NetworksDeleted": deleted}))
    }

    fn volumes(&self) -> R<Vec<(Value, bool)>> {
        let dir = self.root().join("volumes");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let used: Vec<PathBuf> = containers::every(self.root())
            .into_iter()
            .flat_map(|(st, _)| st.spec.mounts.into_iter().map(|m| m.source))
            .collect();
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let data = e.path().join("_data");
            if !data.is_dir() {
                continue;
            }
            let meta = volume_meta(&e.path());
            let created = if meta.created.is_empty() {
                std::fs::metadata(&data)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| stack_sys::time::rfc3339(d.as_secs() as i64, 0))
                    .unwrap_or_default()
            } else {
                meta.created.clone()
            };
            out.push((
                json!({
                    "Name": name,
                    "Driver": "local",
                    "Mountpoint": data,
                    "CreatedAt": created,
                    "Labels": meta.labels,
                    "Scope": "local",
                    "Options": meta.options,
                }),
                !used.contains(&data),
            ));
        }
        out.sort_by(|a, b| a.0["Name"].as_str().cmp(&b.0["Name"].as_str()));
        Ok(out)
    }

    fn create_volume(&self, body: CreateVolume) -> R<Value> {
        if !matches!(body.driver.as_str(), "" | "local") {
            return Err(DockerError::bad_request(format!(
                "volume driver `{}` is not supported by stack (local is)",
                body.driver
            )));
        }
        if !body.driver_opts.is_empty() {
            // The options the local driver takes here, checked now.
            crate::service::local_volume(
                &self.host,
                &body.name,
                Some(&body.driver_opts),
                false,
                "/",
                false,
            )
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        }
        let name = if body.name.is_empty() {
            stack_sys::random_hex(32).map_err(|e| DockerError::internal(e.to_string()))?
        } else {
            body.name.clone()
        };
        let dir = crate::service::volume_dir(self.root(), &name)
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        let data = dir.join("_data");
        if !data.exists() {
            let volumes = self.root().join("volumes");
            stack_sys::private_dir(&volumes).map_err(|e| DockerError::internal(e.to_string()))?;
            std::fs::create_dir_all(&data)
                .map_err(|e| DockerError::internal(format!("{}: {e}", data.display())))?;
            let meta = VolumeMeta {
                labels: body.labels.clone(),
                options: body.driver_opts.clone(),
                created: or_now(""),
            };
            let json = serde_json::to_vec(&meta).expect("serializes");
            stack_sys::write_atomic(&dir.join(VOLUME_META), &json)
                .map_err(|e| DockerError::internal(e.to_string()))?;
        }
        self.volumes()?
            .into_iter()
            .map(|(v, _)| v)
            .find(|v| v["Name"] == name.as_str())
            .ok_or_else(|| DockerError::internal(format!("volume {name} was not made")))
    }

    fn remove_volume(&self, name: &str, _force: bool) -> R<()> {
        let Some((_, unused)) = self.volumes()?.into_iter().find(|(v, _)| v["Name"] == name) else {
            return Err(DockerError::not_found(format!(
                "get {name}: no such volume"
            )));
        };
        if !unused {
            return Err(DockerError::conflict(format!(
                "remove {name}: volume is in use"
            )));
        }
        let dir = crate::service::volume_dir(self.root(), name).map_err(failed)?;
        stack_sys::remove_tree(self.root(), &dir)
            .map(drop)
            .map_err(|e| DockerError::internal(e.to_string()))
    }

    fn prune_volumes(&self, f: &stack_docker::filters::Filters) -> R<Value> {
        // As dockerd since API 1.42: anonymous volumes only, unless `all`.
        let all = f
            .get("all")
            .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
        let mut deleted = Vec::new();
        for (v, unused) in self.volumes()? {
            let name = v["Name"].as_str().unwrap_or_default().to_string();
            let anonymous = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if unused
                && (all || anonymous)
                && f.labels_match(&v["Labels"])
                && self.remove_volume(&name, false).is_ok()
            {
                deleted.push(name);
            }
        }
        Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}))
    }

    fn df(&self) -> R<Value> {
        let images = self.images(true)?;
        let layers: u64 = images.iter().filter_map(|i| i["Size"].as_u64()).sum();
        let volumes: Vec<Value> = self
            .volumes()?
            .into_iter()
            .map(|(mut v, unused)| {
                let dir = PathBuf::from(v["Mountpoint"].as_str().unwrap_or_default());
                v["UsageData"] = json!({"Size": dir_size(&dir), "RefCount": i32::from(!unused)});
                v
            })
            .collect();
        let containers: Vec<Value> = self
            .containers(true, false)?
            .into_iter()
            .map(|mut c| {
                let id = c["Id"].as_str().unwrap_or_default().to_string();
                let upper = stack_runtime::container_dir(self.root(), &id).join("upper");
                c["SizeRw"] = json!(dir_size(&upper));
                c
            })
            .collect();
        Ok(json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }))
    }

    fn auth(&self, body: Value) -> R<Value> {
        let s = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        let (username, secret) = (s("username"), s("password"));
        if username.is_empty() || secret.is_empty() {
            return Err(DockerError::bad_request(
                "username and password are required",
            ));
        }
        let registry = registry_host(&s("serveraddress"));
        let creds = stack_image::auth::Credentials { username, secret };
        let client = stack_image::registry::Client::new(stack_image::auth::AuthSources::from_env())
            .with_credentials(creds);
        self.host
            .block_on(client.check_login(&registry))
            .map_err(failed)?
            .map_err(|e| DockerError::new(401, format!("login to {registry} failed: {e}")))?;
        // Nothing is kept: clients keep their credentials and send them
        // with each pull (`X-Registry-Auth`).
        Ok(json!({"Status": "Login Succeeded", "IdentityToken": ""}))
    }

    fn build(
        &self,
        q: &stack_docker::BuildQuery,
        context: &mut dyn std::io::Read,
        progress: &mut dyn FnMut(Value),
    ) -> R<()> {
        let store = self.host.images().map_err(failed)?;
        let dir = store
            .tmp_dir("docker-context")
            .map_err(|e| failed(e.into()))?;
        let built = self.build_in(&dir, q, context, progress);
        let _ = stack_sys::remove_tree(store.root(), &dir);
        built
    }

    fn events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        each: &mut dyn FnMut(Value) -> bool,
    ) -> R<()> {
        let (past, mut rx) = match since {
            Some(s) => self.engine.subscribe_since(s.saturating_mul(1_000_000_000)),
            None => (Vec::new(), self.engine.subscribe()),
        };
        let mut past = past.into_iter();
        loop {
            let now = (stack_sys::time::now_nanos() / 1_000_000_000) as i64;
            let next = match past.next() {
                Some(e) => Ok(Ok(e)),
                None if until.is_some_and(|u| now >= u) => return Ok(()),
                None => self
                    .host
                    .block_on(async {
                        tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
                    })
                    .map_err(failed)?,
            };
            match next {
                Ok(Ok(e)) => {
                    let secs = e.time_nano / 1_000_000_000;
                    if until.is_some_and(|u| secs > u) {
                        continue;
                    }
                    let v = json!({
                        "status": e.action,
                        "id": e.id,
                        "from": e.attributes.get("image"),
                        "Type": "container",
                        "Action": e.action,
                        "Actor": {"ID": e.id, "Attributes": e.attributes},
                        "scope": "local",
                        "time": secs,
                        "timeNano": e.time_nano,
                    });
                    if !each(v) {
                        return Ok(());
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) => return Ok(()),
                // A second without events: is the client still there?
                Err(_) => {
                    if !each(Value::Null) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The bytes of the files under `dir` (not following links).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Whether the read end of a pipe is closed (its writer would get EPIPE).
fn reader_gone(w: &std::io::PipeWriter) -> bool {
    use std::os::fd::AsFd as _;
    let mut fds = [nix::poll::PollFd::new(
        w.as_fd(),
        nix::poll::PollFlags::empty(),
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLERR))
}

/// Go's `os.FileMode` bits for a Unix `st_mode` (what `docker cp` reads).
fn go_mode(mode: u32) -> u32 {
    let perm = mode & 0o777;
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    perm | kind
}

/// A client that went away while its log was read.
#[derive(Debug)]
struct Gone;

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client went away")
    }
}

impl std::error::Error for Gone {}

/// A detached exec: its process, waited for.
struct Waited(std::sync::Mutex<Option<std::process::Child>>);

impl Control for Waited {
    fn resize(&self, _: u16, _: u16) {}
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        let child = lock(&self.0).take();
        // 125: as Docker says when it could not tell.
        child.map_or(125, |mut c| {
            c.wait().map_or(125, stack_runtime::exit_code_of)
        })
    }
}

/// An attach's end: the thread that follows the log, its exit code.
struct Joined(std::sync::Mutex<Option<std::thread::JoinHandle<i32>>>);

impl Control for Joined {
    fn resize(&self, _: u16, _: u16) {}
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        let handle = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        handle.and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Docker {
    /// `POST /build` in `dir`: the context unpacked there (as hostile as
    /// an image layer, and checked as one), built by stack's builder.
    fn build_in(
        &self,
        dir: &Path,
        q: &stack_docker::BuildQuery,
        context: &mut dyn std::io::Read,
        progress: &mut dyn FnMut(Value),
    ) -> R<()> {
        let tar = stack_image::store::decompress(context)
            .map_err(|e| DockerError::bad_request(format!("cannot read the build context: {e}")))?;
        stack_image::unpack::unpack("build context", tar, dir)
            .map_err(|e| DockerError::bad_request(format!("{e}")))?;
        let dockerfile = PathBuf::from(&q.dockerfile);
        if dockerfile.is_absolute()
            || dockerfile
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(DockerError::bad_request(format!(
                "the Dockerfile ({}) must be within the build context",
                q.dockerfile
            )));
        }
        // The builder reads these two by path: links in a hostile context
        // must not lead it to the host's files.
        let base = dir
            .canonicalize()
            .map_err(|e| DockerError::internal(e.to_string()))?;
        for (name, needed) in [
            (dockerfile.as_path(), true),
            (Path::new(".dockerignore"), false),
        ] {
            match dir.join(name).canonicalize() {
                Ok(real) if real.starts_with(&base) && real.is_file() => {}
                Err(e) if !needed && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(DockerError::bad_request(format!(
                        "Cannot locate specified Dockerfile: {}",
                        name.display()
                    )))
                }
                _ => {
                    return Err(DockerError::bad_request(format!(
                        "{} in the build context is not a file of the context",
                        name.display()
                    )))
                }
            }
        }
        let req = stack_build::Request {
            context: dir.to_path_buf(),
            dockerfile,
            inline: None,
            tags: q.tags.iter().map(|t| familiar(t)).collect(),
            args: q.args.clone(),
            target: q.target.clone(),
            no_cache: q.no_cache,
            pull: q.pull,
            cache_from: q.cache_from.clone(),
            labels: q.labels.clone(),
            secrets: Default::default(),
            ssh: Default::default(),
            network: q.network.clone(),
            shm_size: q.shm_size,
            ulimits: Vec::new(),
            extra_hosts: q.extra_hosts.clone(),
            platform: q.platform.clone(),
            contexts: Default::default(),
            memory: q.memory,
            provenance: None,
            sbom: false,
        };
        // The builder calls from its threads; the stream is written here.
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        let quiet = q.quiet;
        let host = self.host.clone();
        let building = std::thread::spawn(move || {
            let say = move |e: stack_build::Event| {
                let line = match e {
                    stack_build::Event::Step { n, title } => format!("Step {n} : {title}\n"),
                    stack_build::Event::Line { text, .. } => format!("{text}\n"),
                    stack_build::Event::Cached { .. } => " ---> Using cache\n".to_string(),
                    stack_build::Event::Warning(w) => format!("WARNING: {w}\n"),
                    stack_build::Event::Done { .. } => return,
                };
                if !quiet {
                    let _ = tx.send(json!({"stream": line}));
                }
            };
            crate::build::build(&host, &req, &say).map(|img| (img, req.tags))
        });
        for v in rx {
            progress(v);
        }
        let (img, tags) = building
            .join()
            .map_err(|_| DockerError::internal("the build panicked"))?
            .map_err(|e| DockerError::bad_request(format!("{e:#}")))?;
        progress(json!({"aux": {"ID": img.id}}));
        let short = img
            .id
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or_default()
            .to_string();
        progress(json!({"stream": format!("Successfully built {short}\n")}));
        for t in tags {
            progress(
                json!({"stream": format!("Successfully tagged {}\n", stack_image::store::normalize_name(&t))}),
            );
        }
        Ok(())
    }

    /// The console of a container with a terminal or open input: made
    /// when first attached to or started.
    fn console(&self, st: &State) -> std::sync::Arc<Console> {
        let mut all = lock(&self.consoles);
        let c = all.entry(st.id.clone()).or_default();
        // One per run: a console that ran (or runs) is not the next run's.
        if c.run_begun() {
            *c = Default::default();
        }
        c.clone()
    }

    /// Starts a container with its streams in the engine's hands (its
    /// monitor the engine's child, as `stack run`'s are): what it writes
    /// goes to whoever is attached, what they write to its input.
    fn start_console(&self, st: &State) -> R<()> {
        let console = self.console(st);
        if let stack_runtime::NetworkMode::Path(netns) = &st.spec.network {
            if !stack_net::netns_alive(netns) {
                return Err(DockerError::internal(format!(
                    "container {} lost its network namespace",
                    st.name
                )));
            }
        }
        let mut piped = stack_runtime::run_piped(&st.spec, self.root())
            .map_err(|e| DockerError::internal(e.to_string()))?;
        let mut readers: Vec<Box<dyn std::io::Read + Send>> = Vec::new();
        let input: Option<Box<dyn std::io::Write + Send>> = match &piped.pty {
            Some(master) => {
                let file = |m: &std::os::fd::OwnedFd| m.try_clone().map(std::fs::File::from);
                let out = file(master).map_err(|e| DockerError::internal(e.to_string()))?;
                readers.push(Box::new(out));
                let inp = file(master).map_err(|e| DockerError::internal(e.to_string()))?;
                Some(Box::new(inp))
            }
            None => {
                readers.extend(
                    piped
                        .stdout
                        .take()
                        .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
                );
                piped
                    .stdin
                    .take()
                    .map(|w| Box::new(w) as Box<dyn std::io::Write + Send>)
            }
        };
        // Watched (and waited for) only once its monitor has recorded it
        // as running: before, its state is its last run's.
        let monitor = piped.child.id() as i32;
        let dir = stack_runtime::container_dir(self.root(), &st.id);
        for _ in 0..5000 {
            let recorded = stack_runtime::state::read(&dir).is_ok_and(|s| s.monitor_pid == monitor);
            if recorded || matches!(piped.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let stderr = piped.stderr.take();
        let pty = piped.pty.take();
        // What a terminal shows is logged here (the monitor logs pipes only).
        if pty.is_some() && !st.spec.no_log {
            let dir = stack_runtime::container_dir(self.root(), &st.id);
            let log = stack_runtime::logs::RotatingFile::open(
                &stack_runtime::state::log_path(&dir),
                st.spec.log_max_size,
                st.spec.log_max_files.unwrap_or(1),
            )
            .map_err(|e| DockerError::internal(format!("cannot open the log: {e}")))?;
            *lock(&console.log) = Some(log);
        }
        console.started(input, pty);
        let mut threads = Vec::new();
        for (stream, mut r) in readers
            .into_iter()
            .map(|r| (Stream::Stdout, r))
            .chain(stderr.map(|e| (Stream::Stderr, Box::new(e) as Box<dyn std::io::Read + Send>)))
        {
            let console = console.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    console.output(stream, &buf[..n]);
                }
            }));
        }
        let (consoles, id) = (std::sync::Arc::downgrade(&self.consoles), st.id.clone());
        let mut child = piped.child;
        std::thread::spawn(move || {
            let code = child.wait().map_or(125, stack_runtime::exit_code_of);
            for t in threads {
                let _ = t.join();
            }
            console.ended(code);
            if let Some(consoles) = consoles.upgrade() {
                let mut all = lock(&consoles);
                // (A later run's console stays.)
                if all
                    .get(&id)
                    .is_some_and(|c| std::sync::Arc::ptr_eq(c, &console))
                {
                    all.remove(&id);
                }
            }
        });
        Ok(())
    }
}

/// The streams of a container the engine holds: its output fanned out to
/// whoever is attached, its input from them (what comes before it starts
/// waits), its exit.
#[derive(Default)]
pub struct Console {
    /// Where a terminal's output is logged.
    log: std::sync::Mutex<Option<stack_runtime::logs::RotatingFile>>,
    outputs: std::sync::Mutex<Vec<Attached>>,
    input: std::sync::Mutex<Input>,
    exit: std::sync::Mutex<Option<i32>>,
    exited: std::sync::Condvar,
}

/// An attach's end of the output.
struct Attached {
    stdout: Option<std::io::PipeWriter>,
    stderr: Option<std::io::PipeWriter>,
}

#[derive(Default)]
struct Input {
    started: bool,
    to: Option<Box<dyn std::io::Write + Send>>,
    pending: Vec<u8>,
    /// The attach's input ended before the container started: it starts
    /// with its input closed, after what came.
    closed: bool,
    pty: Option<std::os::fd::OwnedFd>,
}

impl Console {
    fn attach(self: &std::sync::Arc<Self>, q: &AttachQuery, tty: bool) -> Output {
        let pipe = || std::io::pipe().ok();
        let out = q.stdout.then(pipe).flatten();
        let err = (q.stderr && !tty).then(pipe).flatten();
        let ended = lock(&self.exit).is_some();
        let (out_r, out_w) = out.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        let (err_r, err_w) = err.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        if !ended {
            lock(&self.outputs).push(Attached {
                stdout: out_w,
                stderr: err_w,
            });
        }
        Output {
            session: Session {
                stdin: q.stdin.then(|| {
                    Box::new(ConsoleInput(self.clone())) as Box<dyn std::io::Write + Send>
                }),
                stdout: out_r.map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
                stderr: err_r.map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
                control: Box::new(ConsoleExit(self.clone())),
            },
            tty,
        }
    }

    fn output(&self, stream: Stream, bytes: &[u8]) {
        use std::io::Write as _;
        if let Some(log) = lock(&self.log).as_mut() {
            let name = if stream == Stream::Stderr {
                "stderr"
            } else {
                "stdout"
            };
            let _ = stack_runtime::logs::emit(log, name, bytes.to_vec());
        }
        lock(&self.outputs).retain_mut(|a| {
            let to = match stream {
                Stream::Stderr => a.stderr.as_mut(),
                _ => a.stdout.as_mut(),
            };
            // An attach that went away is dropped.
            to.is_none_or(|w| w.write_all(bytes).is_ok())
        });
    }

    fn started(
        &self,
        to: Option<Box<dyn std::io::Write + Send>>,
        pty: Option<std::os::fd::OwnedFd>,
    ) {
        let mut i = lock(&self.input);
        i.started = true;
        i.pty = pty;
        i.to = to;
        let pending = std::mem::take(&mut i.pending);
        if let Some(w) = i.to.as_mut() {
            let _ = w.write_all(&pending).and_then(|()| w.flush());
        }
        if i.closed && i.pty.is_none() {
            i.to = None;
        }
    }

    fn write_input(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut i = lock(&self.input);
        let started = i.started;
        let room = i.pending.len() + bytes.len() <= 64 << 10;
        match i.to.as_mut() {
            Some(w) => w.write_all(bytes).and_then(|()| w.flush()),
            // (at most a pipe's worth waits for the start)
            None if !started && room => {
                i.pending.extend_from_slice(bytes);
                Ok(())
            }
            None if !started => Err(std::io::Error::other(
                "the container has not started: too much input waits",
            )),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// An attach's input ended (Docker's `StdinOnce`): so does the
    /// container's, unless it reads a terminal.
    fn close_input(&self) {
        let mut i = lock(&self.input);
        i.closed = true;
        if i.pty.is_none() {
            i.to = None;
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        if let Some(pty) = &lock(&self.input).pty {
            let _ = stack_runtime::resize(pty, rows, cols);
        }
    }

    /// Whether its run has begun (or ended): a new run needs a new one.
    fn run_begun(&self) -> bool {
        lock(&self.input).started || lock(&self.exit).is_some()
    }

    fn ended(&self, code: i32) {
        *lock(&self.exit) = Some(code);
        // Every attach's output ends.
        lock(&self.outputs).clear();
        let mut i = lock(&self.input);
        i.to = None;
        i.pty = None;
        self.exited.notify_all();
    }
}

/// An attach's input into a console.
struct ConsoleInput(std::sync::Arc<Console>);

impl std::io::Write for ConsoleInput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_input(buf).map(|()| buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleInput {
    fn drop(&mut self) {
        self.0.close_input();
    }
}

/// An attach ends with the container.
struct ConsoleExit(std::sync::Arc<Console>);

impl Control for ConsoleExit {
    fn resize(&self, rows: u16, cols: u16) {
        self.0.resize(rows, cols);
    }
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        let mut exit = lock(&self.0.exit);
        loop {
            if let Some(code) = *exit {
                return code;
            }
            exit = self.0.exited.wait(exit).unwrap_or_else(|p| p.into_inner());
        }
    }
}
