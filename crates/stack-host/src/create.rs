//! A container from a plain configuration: what `stack container run`
//! takes from its command line and the engine from a service, made into
//! the runtime's spec (the image's defaults under it), wired to its
//! networks and started. A failure leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::Host;

/// A container as `stack container run` describes it, in its flags' own
/// words (sizes as `512m`, ports as `8080:80/tcp`); `Default` is a
/// command line without flags.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Remove the container's state when it exits.
    pub rm: bool,
    /// The signal `stop` sends first (default SIGTERM).
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    pub tty: bool,
    /// Keep standard input open.
    pub interactive: bool,
    /// With `tty`: the terminal's size, when it is not ours (the engine's
    /// one-offs: the client's).
    pub console_size: Option<(u16, u16)>,
    pub name: Option<String>,
    pub hostname: Option<String>,
    /// NIS domain name (its /etc/hosts names host.domain).
    pub domainname: Option<String>,
    /// `KEY=value`, or `KEY` for this process's value.
    pub env: Vec<String>,
    /// Inside the container (default: the image's, else /).
    pub workdir: Option<String>,
    /// NAME, UID, NAME:GROUP or UID:GID (from the container's /etc/passwd).
    pub user: Option<String>,
    /// Capabilities added to and dropped from Docker's default set.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Every capability, no masked paths.
    pub privileged: bool,
    /// `seccomp=unconfined`, `no-new-privileges` (always on unless privileged).
    pub security_opt: Vec<String>,
    /// NAME=SOFT[:HARD] (nofile, nproc, core, ...).
    pub ulimits: Vec<String>,
    /// Supplementary groups (names in the container's /etc/group, or
    /// numbers).
    pub group_add: Vec<String>,
    /// Host devices: HOST[:CONTAINER[:PERMISSIONS]] (`rwm` by default).
    pub devices: Vec<String>,
    /// Devices cgroup rules: `c|b|a MAJOR|*:MINOR|* [rwm]`.
    pub device_cgroup_rules: Vec<String>,
    /// The PID namespace: its own (the default), `host`, or
    /// `container:NAME|ID`.
    pub pid: Option<String>,
    /// The IPC namespace: `private` or `shareable` (its own, the default),
    /// `host`, or `container:NAME|ID`.
    pub ipc: Option<String>,
    /// The UTS namespace (host and domain names): its own, or `host`.
    pub uts: Option<String>,
    /// `none` (own namespace, loopback only; the default), `host`,
    /// `container:NAME|ID`, or named networks.
    pub network: Vec<String>,
    pub network_alias: Vec<String>,
    /// Addresses on the (first) network.
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac_address: Option<String>,
    /// [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/udp]
    pub publish: Vec<String>,
    /// DNS servers (default: the network's own).
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_option: Vec<String>,
    /// HOST:IP in /etc/hosts.
    pub add_host: Vec<String>,
    /// KEY=VALUE over the image's labels.
    pub labels: Vec<String>,
    /// Do not keep the image's health check.
    pub no_healthcheck: bool,
    /// Bind mounts: HOST_PATH:CONTAINER_PATH[:ro].
    pub volumes: Vec<String>,
    /// PATH[:size=BYTES].
    pub tmpfs: Vec<String>,
    /// Size of /dev/shm (default 64m).
    pub shm_size: Option<String>,
    /// -1000 to 1000.
    pub oom_score_adj: Option<i32>,
    /// Its cgroups under this path from each hierarchy's root.
    pub cgroup_parent: Option<String>,
    /// Namespaced kernel parameters: KEY=VALUE.
    pub sysctls: Vec<String>,
    /// json-file (the default), local (written as json-file) or none.
    pub log_driver: Option<String>,
    /// max-size=SIZE, max-file=N (json-file rotation).
    pub log_opts: Vec<String>,
    /// Bytes, or with a unit: 512m, 1g.
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    /// Memory plus swap (-1: unlimited).
    pub memory_swap: Option<String>,
    /// Fractions allowed.
    pub cpus: Option<f64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// CPUs it may run on (0-3, 0,1).
    pub cpuset_cpus: Option<String>,
    /// -1: unlimited.
    pub pids_limit: Option<i64>,
    /// Block I/O throttles: DEVICE:RATE (bytes a second, with a unit:
    /// 1mb) and DEVICE:COUNT (operations a second).
    pub device_read_bps: Vec<String>,
    pub device_write_bps: Vec<String>,
    pub device_read_iops: Vec<String>,
    pub device_write_iops: Vec<String>,
    /// Block I/O weight (10 to 1000), and per device: DEVICE:WEIGHT.
    pub blkio_weight: Option<u16>,
    pub blkio_weight_device: Vec<String>,
    /// 0 to 100.
    pub memory_swappiness: Option<u64>,
    pub oom_kill_disable: bool,
    /// The root file system read-only.
    pub read_only: bool,
    /// The app itself as PID 1 (default: a tiny init that forwards signals
    /// and reaps zombies).
    pub no_init: bool,
    /// A plain directory as the root file system (never modified); else
    /// `args` starts with the image.
    pub rootfs: Option<PathBuf>,
    /// Over the image's (an empty list clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Mounts made by `stack up` (named and anonymous volumes).
    pub extra_mounts: Vec<stack_runtime::Mount>,
    /// A stack file's health check: its fields over the image's.
    pub health: Option<stack_runtime::Healthcheck>,
    /// A stack file's restart policy, for the engine.
    pub restart: Option<stack_runtime::Restart>,
    /// IMAGE (without `rootfs`), then the command and its arguments.
    pub args: Vec<String>,
}

/// How a new container starts.
#[derive(Debug, Clone, Default)]
pub enum Launch {
    /// Made, not started (`container create`, `up --no-start`).
    CreateOnly,
    /// Started in the background (with `rm`: removed once it exits).
    #[default]
    Detached,
    /// Run in this process's foreground until it exits (`container run`).
    Foreground,
}

/// A container made: its id, and with [`Launch::Foreground`] how it ended.
#[derive(Debug)]
pub struct Launched {
    pub id: String,
    pub exit: Option<stack_runtime::Exit>,
}

/// A stack file's health check over the image's, as Docker merges them:
/// what the file leaves out comes from the image; `NONE` means none.
fn merge_health(
    ours: Option<stack_runtime::Healthcheck>,
    image: Option<stack_runtime::Healthcheck>,
) -> Option<stack_runtime::Healthcheck> {
    let h = match (ours, image) {
        (Some(o), Some(i)) => stack_runtime::Healthcheck {
            test: if o.test.is_empty() { i.test } else { o.test },
            interval: o.interval.or(i.interval),
            timeout: o.timeout.or(i.timeout),
            start_period: o.start_period.or(i.start_period),
            retries: o.retries.or(i.retries),
            start_interval: o.start_interval.or(i.start_interval),
            probe: o.probe.or(i.probe),
        },
        (o, i) => o.or(i)?,
    };
    let none = h.test.first().is_none_or(|t| t == "NONE");
    (h.probe.is_some() || !none).then_some(h)
}

/// Makes the container `c` describes and starts it as `how` says
/// (`stack container run` and `create`, and the engine's containers); its
/// id goes to `cidfile` (which must not exist) once it is known.
pub fn launch(
    host: &Host,
    c: &ContainerConfig,
    how: Launch,
    cidfile: Option<&Path>,
) -> anyhow::Result<Launched> {
    let root = host.root();
    let auto_remove = c.rm && !matches!(how, Launch::Foreground);
    make(host, c, auto_remove, |spec| {
        let id = spec.id.clone();
        if let Some(f) = cidfile {
            write_cidfile(f, &id)?;
        }
        let exit = match how {
            Launch::CreateOnly => {
                crate::containers::create(spec, root)?;
                None
            }
            Launch::Detached => {
                crate::containers::start_detached(spec, root)?;
                None
            }
            Launch::Foreground => {
                stack_runtime::ignore_terminal_interrupts()
                    .context("cannot set up signal handling")?;
                Some(
                    stack_runtime::run(spec, root, c.rm)
                        .with_context(|| format!("container `{}`", spec.name))?,
                )
            }
        };
        Ok(Launched { id, exit })
    })
}

/// `stack run` in the engine: the container started in our foreground
/// with pipes (or a pty) for the engine to relay; its id. With `--rm` it
/// is marked for removal: if the engine dies before it ends, the next
/// one removes it.
pub fn launch_relayed(
    host: &Host,
    c: &ContainerConfig,
) -> anyhow::Result<(String, stack_runtime::Piped)> {
    make(host, c, c.rm, |spec| {
        let piped = stack_runtime::run_piped(spec, host.root())
            .with_context(|| format!("container `{}`", spec.name))?;
        Ok((spec.id.clone(), piped))
    })
}

fn write_cidfile(f: &Path, id: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(f)
        .and_then(|mut file| file.write_all(id.as_bytes()))
        .with_context(|| format!("cannot create the cidfile `{}`", f.display()))
}

/// The container `c` describes made, wired and started by `start`; a
/// failure leaves nothing behind.
fn make<T>(
    host: &Host,
    c: &ContainerConfig,
    auto_remove: bool,
    start: impl FnOnce(&stack_runtime::Spec) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let root = host.root();
    let (mut spec, named_networks) = spec_of(host, c)?;
    spec.auto_remove = auto_remove;
    // Claimed before anything is wired: an engine that dies from here on
    // leaves a claim the next one sweeps (with its endpoints).
    let dir = stack_runtime::container_dir(root, &spec.id);
    stack_runtime::state::claim(&dir, host.makes_many())
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let started = wire_and_start(host, c, &mut spec, &named_networks, start);
    stack_runtime::state::release(&dir);
    if started.is_err() && !stack_runtime::state::path(&dir).exists() {
        let _ = stack_sys::remove_tree(root, &dir);
    }
    started
}

/// The runtime's spec of the container `a` describes, and the named
/// networks it joins.
fn spec_of(host: &Host, a: &ContainerConfig) -> anyhow::Result<(stack_runtime::Spec, Vec<String>)> {
    // The root file system: a directory, or an image's unpacked layers
    // (top first) plus the defaults of its config.
    let mut args = a.args.clone();
    let mut image = String::new();
    let mut image_id = String::new();
    let (rootfs, layers, image_config) = match &a.rootfs {
        Some(dir) => (dir.clone(), Vec::new(), None),
        None => {
            let Some(reference) = args.first().cloned() else {
                bail!(
                    "no image given: stack container run [--rootfs DIR | IMAGE] COMMAND [ARG...]"
                );
            };
            args.remove(0);
            let store = host.images()?;
            let img = store.lookup(&reference)?;
            let mut lowers = store.lower_dirs(&img);
            if lowers.is_empty() {
                bail!("image `{reference}` has no layers");
            }
            let top = lowers.remove(0);
            image = reference;
            image_id = img.id;
            (top, lowers, Some(img.config))
        }
    };
    // An entrypoint of ours replaces the image's, and its Cmd with it.
    let ours = a.entrypoint.clone();
    if let Some(cfg) = &image_config {
        let entrypoint = ours
            .clone()
            .or_else(|| cfg.entrypoint.clone())
            .unwrap_or_default();
        let cmd = if !args.is_empty() || ours.is_some() {
            args.clone()
        } else {
            cfg.cmd.clone().unwrap_or_default()
        };
        args = entrypoint.into_iter().chain(cmd).collect();
    } else if let Some(e) = ours {
        args = e.into_iter().chain(args).collect();
    }
    if args.is_empty() {
        bail!("no command given: stack container run [--rootfs DIR | IMAGE] COMMAND [ARG...]");
    }
    let root = host.root();
    let id = crate::random_id()?;
    let short = id[..12].to_string();
    let mut env: Vec<String> = image_config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    let given: Vec<String> = a
        .env
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some(_) => Some(e.clone()),
            None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect();
    // Ours override the image's, by name.
    for g in given {
        let key = g.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(g);
    }
    let name = a.name.clone().unwrap_or_else(|| short.clone());
    stack_model::names::check(stack_model::names::Kind::Container, &name)?;
    crate::containers::ensure_name_free(root, &name)?;
    // `bridge` is a network of its own once the Docker API has made one.
    let bridge_made = host
        .networks()
        .is_ok_and(|s| s.get(crate::network::BRIDGE).is_ok());
    let special = |n: &str| {
        matches!(n, "none" | "host" | "default")
            || (n == "bridge" && !bridge_made)
            || n.starts_with("container:")
    };
    let named_networks: Vec<String> = a.network.iter().filter(|n| !special(n)).cloned().collect();
    if !named_networks.is_empty() && named_networks.len() != a.network.len() {
        bail!("--network none, host, bridge and container:NAME cannot be combined with other networks");
    }
    if a.network.len() > 1 && named_networks.is_empty() {
        bail!("only one of --network none, host, bridge or container:NAME");
    }
    if named_networks.is_empty()
        && (!a.publish.is_empty()
            || a.ip.is_some()
            || a.ip6.is_some()
            || !a.network_alias.is_empty())
    {
        bail!("-p, --ip, --ip6 and --network-alias need a network: --network NAME (see `stack network create`)");
    }
    let uts = namespace(root, "uts", a.uts.as_deref(), &["private"])?;
    if uts == stack_runtime::Namespace::Host && a.hostname.is_some() {
        bail!("a host name cannot be set with the host's UTS namespace");
    }
    let security = security(&a.security_opt)?;
    let mut spec = stack_runtime::Spec {
        id: id.clone(),
        name: name.clone(),
        rootfs: rootfs.clone(),
        layers,
        args,
        env,
        cwd: a
            .workdir
            .clone()
            .or_else(|| {
                image_config
                    .as_ref()
                    .and_then(|c| c.working_dir.clone())
                    .filter(|w| !w.is_empty())
            })
            .unwrap_or_else(|| "/".into()),
        hostname: match (&a.hostname, uts) {
            (Some(h), _) => h.clone(),
            // The host's names, as the container sees them.
            (None, stack_runtime::Namespace::Host) => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, _) => short.clone(),
        },
        pid: namespace(root, "pid", a.pid.as_deref(), &["private"])?,
        ipc: namespace(root, "ipc", a.ipc.as_deref(), &["private", "shareable"])?,
        uts,
        domainname: a.domainname.clone().unwrap_or_default(),
        init: !a.no_init,
        read_only: a.read_only,
        user: a
            .user
            .clone()
            .or_else(|| image_config.as_ref().and_then(|c| c.user.clone()))
            .unwrap_or_default(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        seccomp_unconfined: security.seccomp_unconfined,
        seccomp_profile: security.seccomp_profile,
        new_privileges: security.new_privileges,
        stop_signal: match a
            .stop_signal
            .as_ref()
            .or(image_config.as_ref().and_then(|c| c.stop_signal.as_ref()))
        {
            Some(s) => {
                Some(crate::containers::parse_signal(s).map(|sig| sig.as_str().to_string())?)
            }
            None => None,
        },
        stop_timeout: a.stop_timeout,
        tty: a.tty,
        console_size: a.console_size,
        auto_remove: false,
        caller_removes: false,
        interactive: a.interactive,
        network: match named_networks.is_empty() {
            false => stack_runtime::NetworkMode::New,
            true => match a.network.first().map_or("none", String::as_str) {
                "none" | "bridge" | "default" => stack_runtime::NetworkMode::New,
                "host" => stack_runtime::NetworkMode::Host,
                other => match other.strip_prefix("container:") {
                    Some(key) => {
                        stack_runtime::NetworkMode::Join(crate::containers::running_pid(root, key)?)
                    }
                    None => unreachable!("named networks are handled above"),
                },
            },
        },
        // In another container's network, that container's resolver (as
        // Docker shares its file): the host's where it has the host's network.
        resolv_conf: match a.network.first().and_then(|n| n.strip_prefix("container:")) {
            Some(key) if named_networks.is_empty() => {
                let joined = crate::containers::find(root, key)?.1.spec;
                match joined.network {
                    stack_runtime::NetworkMode::Host => {
                        Some(std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
                    }
                    _ => joined.resolv_conf,
                }
            }
            _ => None,
        },
        hosts: a
            .add_host
            .iter()
            .map(|h| {
                h.split_once(':')
                    .filter(|(_, ip)| ip.parse::<std::net::IpAddr>().is_ok())
                    .map(|(host, ip)| format!("{ip}\t{host}"))
                    .ok_or_else(|| anyhow::anyhow!("invalid --add-host `{h}`: expected HOST:IP"))
            })
            .collect::<anyhow::Result<_>>()?,
        mounts: {
            let mut m = mounts(&a.volumes, &a.tmpfs)?;
            // Anonymous volumes (no source yet, or the image's VOLUMEs) live
            // in the container's directory and go with it.
            let anonymous =
                |name: String| root.join("containers").join(&id).join("volumes").join(name);
            m.extend(
                a.extra_mounts
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, mut x)| {
                        if x.kind == "volume" && x.source.as_os_str().is_empty() {
                            x.source = anonymous(format!("a{i}"));
                        }
                        x
                    }),
            );
            // The image's VOLUMEs not mounted otherwise.
            let dirs = image_config
                .as_ref()
                .and_then(|c| c.volumes.clone())
                .unwrap_or_default();
            for (i, target) in dirs.keys().enumerate() {
                if !m
                    .iter()
                    .any(|x| x.target.trim_end_matches('/') == target.trim_end_matches('/'))
                {
                    m.push(stack_runtime::Mount {
                        kind: "volume".into(),
                        source: anonymous(i.to_string()),
                        target: target.clone(),
                        read_only: false,
                        size: None,
                        recursive: Default::default(),
                    });
                }
            }
            m
        },
        labels: {
            let mut l = image_config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            for kv in &a.labels {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                l.insert(k.to_string(), v.to_string());
            }
            l
        },
        image,
        image_id,
        exposed_ports: image_config
            .as_ref()
            .and_then(|c| c.exposed_ports.as_ref())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
        healthcheck: if a.no_healthcheck {
            None
        } else {
            let image: Option<stack_runtime::Healthcheck> = image_config
                .as_ref()
                .and_then(|c| c.healthcheck.clone())
                .map(serde_json::from_value)
                .transpose()
                .context("the image's Healthcheck is not what Docker writes")?;
            merge_health(a.health.clone(), image)
        },
        restart: a.restart.clone(),
        no_log: match a.log_driver.as_deref() {
            None | Some("json-file" | "local") => false,
            Some("none") => true,
            Some(other) => {
                bail!("log driver `{other}` is not supported (json-file, local or none)")
            }
        },
        // Without options, Docker's `local` driver's bounds (20 MB, 5
        // files): a chatty container cannot fill the disk. With max-size
        // alone, one file (as json-file).
        log_max_size: Some(
            log_opt(&a.log_opts, "max-size")?
                .map(|v| bytes(&v).map(|b| b as u64))
                .transpose()?
                .unwrap_or(DEFAULT_LOG_MAX_SIZE),
        ),
        log_max_files: Some(
            log_opt(&a.log_opts, "max-file")?
                .map(|v| {
                    v.parse::<u32>()
                        .map_err(|_| anyhow::anyhow!("invalid log option max-file=`{v}`: a number"))
                })
                .transpose()?
                .unwrap_or(match log_opt(&a.log_opts, "max-size")? {
                    Some(_) => 1,
                    None => DEFAULT_LOG_MAX_FILES,
                }),
        ),
        shm_size: a
            .shm_size
            .as_deref()
            .map(bytes)
            .transpose()?
            .map(|b| b as u64),
        oom_score_adj: a.oom_score_adj,
        sysctls: a
            .sysctls
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("invalid sysctl `{s}`: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?,
        cgroup_parent: match &a.cgroup_parent {
            Some(p) => {
                stack_runtime::cgroup::parent_names(p)?;
                Some(p.clone())
            }
            None => None,
        },
        limits: stack_runtime::cgroup::Limits {
            memory: a.memory.as_deref().map(bytes).transpose()?,
            memory_reservation: a.memory_reservation.as_deref().map(bytes).transpose()?,
            memory_swap: a
                .memory_swap
                .as_deref()
                .map(|s| if s == "-1" { Ok(-1) } else { bytes(s) })
                .transpose()?,
            cpus: a.cpus,
            cpu_shares: a.cpu_shares,
            cpuset: a.cpuset_cpus.clone(),
            pids: a.pids_limit,
            io: io_throttles(a)?,
            // (A host without weight files: `up` warned, the Docker API
            // answered with a warning; they are left out.)
            io_weight: a.blkio_weight.filter(|_| weights_here()),
            // (and per device only where BFQ schedules it: `up` warned)
            io_weight_devices: io_weights(a)?
                .into_iter()
                .filter(|(major, minor, _)| {
                    weights_here() && stack_runtime::cgroup::bfq_device(*major, *minor)
                })
                .collect(),
            swappiness: a.memory_swappiness,
            oom_kill_disable: a.oom_kill_disable,
        },
        group_add: a.group_add.clone(),
        device_rules: a
            .device_cgroup_rules
            .iter()
            .map(|r| device_rule(r))
            .collect::<anyhow::Result<_>>()?,
        devices: a
            .devices
            .iter()
            .map(|d| device(d))
            .collect::<anyhow::Result<_>>()?,
        rlimits: a
            .ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<anyhow::Result<_>>()?,
    };
    if named_networks.is_empty()
        && !(a.dns.is_empty() && a.dns_search.is_empty() && a.dns_option.is_empty())
    {
        spec.resolv_conf = Some(crate::network::resolv_conf(
            &a.dns,
            &a.dns_search,
            &a.dns_option,
        ));
    }
    Ok((spec, named_networks))
}

fn wire_and_start<T>(
    host: &Host,
    a: &ContainerConfig,
    spec: &mut stack_runtime::Spec,
    named_networks: &[String],
    start: impl FnOnce(&stack_runtime::Spec) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let id = spec.id.clone();
    if !named_networks.is_empty() {
        let wired = crate::network::wire(
            host,
            &id,
            &spec.name,
            &spec.host_names(),
            &crate::network::Request {
                networks: named_networks,
                aliases: &a.network_alias,
                ip: a.ip.as_deref(),
                ip6: a.ip6.as_deref(),
                mac: a.mac_address.as_deref(),
                publish: &a.publish,
                dns: &a.dns,
                dns_search: &a.dns_search,
                dns_options: &a.dns_option,
            },
        )?;
        spec.network = stack_runtime::NetworkMode::Path(wired.netns);
        spec.resolv_conf = Some(wired.resolv_conf);
        spec.hosts.splice(0..0, wired.hosts);
    }
    let started = start(spec);
    // A container that never ran, or ran with --rm, leaves no network behind.
    let gone = !stack_runtime::container_dir(host.root(), &id).exists();
    if !named_networks.is_empty() && (started.is_err() || gone) {
        if let Err(e) = crate::network::unwire(host, &id) {
            tracing::warn!(container = %id, "cannot take it off its networks: {e:#}");
        }
    }
    started
}

/// A namespace as `--ipc`/`--uts` name it: one of its own (none, "", or
/// one of `own`), the host's, or a running container's (`container:KEY`).
fn namespace(
    root: &Path,
    kind: &str,
    mode: Option<&str>,
    own: &[&str],
) -> anyhow::Result<stack_runtime::Namespace> {
    Ok(match mode.unwrap_or_default() {
        "" => stack_runtime::Namespace::Own,
        m if own.contains(&m) => stack_runtime::Namespace::Own,
        "host" => stack_runtime::Namespace::Host,
        m => match m.strip_prefix("container:") {
            Some(key) => stack_runtime::Namespace::Join(crate::containers::running_pid(root, key)?),
            None => bail!(
                "invalid --{kind} `{m}`: {}, host or container:NAME",
                own.join(", ")
            ),
        },
    })
}

/// A host device as `--device` and `devices:` give it,
/// `HOST[:CONTAINER[:PERMISSIONS]]`: its kind and numbers read from the
/// host's node (a link followed, as Docker does).
fn device(given: &str) -> anyhow::Result<stack_runtime::Device> {
    let mut parts = given.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    let path = parts.next().filter(|p| !p.is_empty()).unwrap_or(host);
    let permissions = parts.next().filter(|p| !p.is_empty()).unwrap_or("rwm");
    if !permissions.chars().all(|c| "rwm".contains(c)) {
        bail!("device `{given}`: permissions are made of r, w and m");
    }
    let node = device_node(host).with_context(|| format!("device `{host}`"))?;
    let Some(node) = node else {
        bail!("device `{host}` is not a device node (a directory of devices is not supported yet)");
    };
    Ok(stack_runtime::Device {
        path: path.to_string(),
        permissions: permissions.to_string(),
        ..node
    })
}

/// The host's device node at `path` (a link followed, as Docker does): its
/// kind, numbers and mode; none when it is not a device node.
fn device_node(path: &str) -> std::io::Result<Option<stack_runtime::Device>> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let md = std::fs::metadata(path)?;
    let block = md.file_type().is_block_device();
    Ok(
        (block || md.file_type().is_char_device()).then(|| stack_runtime::Device {
            block,
            major: nix::sys::stat::major(md.rdev()),
            minor: nix::sys::stat::minor(md.rdev()),
            mode: md.mode() & 0o7777,
            ..Default::default()
        }),
    )
}

/// The block I/O throttles of `a`, one per device.
/// Whether this host's cgroups have block I/O weights.
fn weights_here() -> bool {
    stack_runtime::cgroup::controllers().io_weight
}

/// `--blkio-weight-device DEVICE:WEIGHT` as (major, minor, weight).
fn io_weights(a: &ContainerConfig) -> anyhow::Result<Vec<(u64, u64, u16)>> {
    let check = |w: u16, what: &str| {
        if !(10..=1000).contains(&w) {
            bail!("{what}: a block I/O weight is 10 to 1000, not {w}");
        }
        Ok(w)
    };
    if let Some(w) = a.blkio_weight {
        check(w, "--blkio-weight")?;
    }
    a.blkio_weight_device
        .iter()
        .map(|g| {
            let what = format!("--blkio-weight-device `{g}`");
            let (path, w) = g
                .rsplit_once(':')
                .ok_or_else(|| anyhow::anyhow!("invalid {what}: DEVICE:WEIGHT"))?;
            let w = check(
                w.parse().map_err(|_| anyhow::anyhow!("invalid {what}"))?,
                &what,
            )?;
            match device_node(path).with_context(|| what.clone())? {
                Some(stack_runtime::Device {
                    block: true,
                    major,
                    minor,
                    ..
                }) => Ok((major, minor, w)),
                _ => bail!("{what}: `{path}` is not a block device"),
            }
        })
        .collect()
}

fn io_throttles(a: &ContainerConfig) -> anyhow::Result<Vec<stack_runtime::cgroup::IoThrottle>> {
    let mut out: Vec<stack_runtime::cgroup::IoThrottle> = Vec::new();
    for (given, flag, bytes_) in [
        (&a.device_read_bps, "device-read-bps", true),
        (&a.device_write_bps, "device-write-bps", true),
        (&a.device_read_iops, "device-read-iops", false),
        (&a.device_write_iops, "device-write-iops", false),
    ] {
        for g in given {
            let (path, rate) = g
                .rsplit_once(':')
                .ok_or_else(|| anyhow::anyhow!("invalid --{flag} `{g}`: DEVICE:RATE"))?;
            let rate: u64 = if bytes_ {
                bytes(rate)? as u64
            } else {
                rate.parse()
                    .map_err(|_| anyhow::anyhow!("invalid --{flag} `{g}`: the rate is a number"))?
            };
            let node = device_node(path).with_context(|| format!("--{flag} `{path}`"))?;
            let Some(stack_runtime::Device {
                block: true,
                major,
                minor,
                ..
            }) = node
            else {
                bail!("--{flag} `{path}` is not a block device");
            };
            let at = match out
                .iter()
                .position(|t| t.major == major && t.minor == minor)
            {
                Some(i) => i,
                None => {
                    out.push(stack_runtime::cgroup::IoThrottle {
                        major,
                        minor,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let t = &mut out[at];
            *match flag {
                "device-read-bps" => &mut t.read_bps,
                "device-write-bps" => &mut t.write_bps,
                "device-read-iops" => &mut t.read_iops,
                _ => &mut t.write_iops,
            } = Some(rate);
        }
    }
    Ok(out)
}

/// A devices cgroup rule as Docker takes it: `c 189:* rmw`, `b 8:0 r`,
/// `a *:* m`; its type, `MAJOR:MINOR` (each a number or `*`) and access.
fn device_rule(rule: &str) -> anyhow::Result<String> {
    let bad = || {
        anyhow::anyhow!(
            "invalid device cgroup rule `{rule}`: TYPE MAJOR:MINOR ACCESS, as `c 189:* rwm`"
        )
    };
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(bad());
    };
    let number = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let ok = matches!(kind, "a" | "b" | "c")
        && numbers
            .split_once(':')
            .is_some_and(|(a, b)| number(a) && number(b))
        && !access.is_empty()
        && access.chars().all(|c| "rwm".contains(c));
    if !ok {
        return Err(bad());
    }
    Ok(format!("{kind} {numbers} {access}"))
}

/// `nofile=1024:2048` or `nproc=512`.
pub fn parse_ulimit(s: &str) -> anyhow::Result<(String, u64, u64)> {
    let bad = || anyhow::anyhow!("invalid ulimit `{s}`: expected NAME=SOFT[:HARD]");
    let (name, values) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let v: u64 = values.parse().map_err(|_| bad())?;
            (v, v)
        }
    };
    if soft > hard {
        bail!("invalid ulimit `{s}`: soft limit above hard limit");
    }
    Ok((name.to_string(), soft, hard))
}

/// A profile file: a regular file of at most 1 MiB (Docker's default
/// profile is 20 KiB), so a path to a device or a FIFO cannot hang us.
fn profile_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        bail!("not a regular file");
    }
    let mut text = String::new();
    f.take(1 << 20 | 1).read_to_string(&mut text)?;
    if text.len() > 1 << 20 {
        bail!("larger than 1 MiB");
    }
    Ok(text)
}

#[derive(Default)]
struct Security {
    seccomp_unconfined: bool,
    seccomp_profile: Option<String>,
    new_privileges: bool,
}

/// `--security-opt` / `security_opt`, as Docker reads them: `seccomp=` a
/// profile file, the profile itself (what the docker CLI sends), `unconfined`
/// or `builtin`; `no-new-privileges[=true|false]`; `apparmor=`.
fn security(opts: &[String]) -> anyhow::Result<Security> {
    let mut s = Security::default();
    for o in opts {
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o, ""));
        match (key, value) {
            ("seccomp", "unconfined") => s.seccomp_unconfined = true,
            ("seccomp", "builtin") => {}
            ("seccomp", v) => {
                let (json, from) = if v.trim_start().starts_with('{') {
                    (v.to_string(), "the profile given".to_string())
                } else {
                    let text = profile_file(Path::new(v))
                        .with_context(|| format!("security option `seccomp`: reading `{v}`"))?;
                    (text, format!("`{v}`"))
                };
                stack_runtime::check_seccomp_profile(&json)
                    .with_context(|| format!("security option `seccomp`: {from}"))?;
                s.seccomp_profile = Some(json);
            }
            ("no-new-privileges", "" | "true") => s.new_privileges = false,
            ("no-new-privileges", "false") => s.new_privileges = true,
            ("apparmor", "unconfined") => {}
            ("apparmor", p) => bail!(
                "security option `apparmor={p}`: stack applies no AppArmor profile{}",
                if std::path::Path::new("/sys/kernel/security/apparmor").exists() {
                    " yet"
                } else {
                    " (and this host has no AppArmor)"
                }
            ),
            _ => bail!("unsupported security option `{o}`"),
        }
    }
    Ok(s)
}

pub fn bytes(s: &str) -> anyhow::Result<i64> {
    stack_model::parse_bytes(s).map_err(|e| anyhow::anyhow!(e))
}

/// `-v SRC:DST[:ro|rw]` and `--tmpfs DST[:size=N]` as runtime mounts.
fn mounts(volumes: &[String], tmpfs: &[String]) -> anyhow::Result<Vec<stack_runtime::Mount>> {
    let mut out = Vec::new();
    for v in volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, "rw"),
            [s, d, m] => (*s, *d, *m),
            _ => bail!("invalid volume `{v}`: expected SRC:DST[:ro]"),
        };
        if !src.starts_with('/') {
            bail!("invalid volume `{v}`: the source must be an absolute host path (named volumes come with `stack up`)");
        }
        if !dst.starts_with('/') {
            bail!("invalid volume `{v}`: the target must be an absolute path");
        }
        let read_only = match mode {
            "ro" => true,
            "rw" => false,
            other => bail!("invalid volume `{v}`: unknown mode `{other}`"),
        };
        out.push(stack_runtime::Mount {
            kind: "bind".into(),
            source: src.into(),
            target: dst.into(),
            read_only,
            size: None,
            recursive: Default::default(),
        });
    }
    for t in tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
        let mut size = None;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.split_once('=') {
                Some(("size", n)) => size = Some(bytes(n)? as u64),
                _ => bail!("invalid tmpfs option `{o}` in `{t}`"),
            }
        }
        out.push(stack_runtime::Mount {
            kind: "tmpfs".into(),
            source: PathBuf::new(),
            target: dst.into(),
            read_only: false,
            size,
            recursive: Default::default(),
        });
    }
    Ok(out)
}

const DEFAULT_LOG_MAX_SIZE: u64 = 20 << 20;
const DEFAULT_LOG_MAX_FILES: u32 = 5;

fn log_opt(opts: &[String], key: &str) -> anyhow::Result<Option<String>> {
    let mut found = None;
    for o in opts {
        match o.split_once('=') {
            Some((k, v)) if k == key => found = Some(v.to_string()),
            Some(("max-size" | "max-file" | "compress", _)) => {}
            _ => bail!("unsupported log option `{o}` (max-size, max-file)"),
        }
    }
    Ok(found)
}
