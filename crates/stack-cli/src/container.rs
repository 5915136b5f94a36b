//! `stack container ...`: drive one container directly.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Run a command in a new container
    Run(Box<RunArgs>),
    /// Create a container and do not start it (`container start` does); prints its id
    Create(Box<RunArgs>),
    /// List containers
    #[command(alias = "ps")]
    Ls {
        /// Show all containers (default: running ones)
        #[arg(short, long)]
        all: bool,
        /// Only print ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a command in a running container
    Exec {
        /// Allocate a pseudo-terminal
        #[arg(short = 't', long)]
        tty: bool,
        /// Keep standard input open
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Run in the background
        #[arg(short = 'd', long, conflicts_with_all = ["tty", "interactive"])]
        detach: bool,
        /// Set an environment variable (KEY=VALUE)
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        #[arg(short = 'u', long)]
        user: Option<String>,
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Copy files between a running container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST
    Cp { src: String, dest: String },
    /// List the processes of a container
    Top { container: String },
    /// Show containers' resource use (CPU, memory, network, block I/O, processes), every second
    Stats {
        #[command(flatten)]
        args: crate::stats::StatsArgs,
        /// Containers (default: every running one; with -a, every one)
        containers: Vec<String>,
    },
    /// Freeze every process of a container
    Pause { container: String },
    /// Thaw a paused container
    Unpause { container: String },
    /// Show a container's state as JSON
    Inspect { container: String },
    /// Print a container's output
    Logs {
        container: String,
        /// Keep printing new output until the container exits
        #[arg(short, long)]
        follow: bool,
        /// Prefix each line with its RFC 3339 timestamp
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines (`all`: everything)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
    },
    /// Start a stopped container again, in place (same id, files and address)
    Start { containers: Vec<String> },
    /// Stop a container: its stop signal, then SIGKILL after the grace period
    Stop {
        container: String,
        /// Seconds to wait before killing (default: the container's stop timeout, else 10)
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
    },
    /// Send a signal to a container
    Kill {
        container: String,
        #[arg(short, long, default_value = "KILL")]
        signal: String,
    },
    /// Remove a stopped container (-f: running ones too)
    Rm {
        containers: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
    /// List a container's published ports (or the host side of one)
    Port {
        container: String,
        /// PORT[/PROTO]
        port: Option<String>,
    },
}

/// A container as `stack container run` takes it; its `Default` is the
/// command line with no flags (no flag has a default value of its own), so
/// the engine fills one without parsing a command line.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Remove the container's state when it exits
    #[arg(long)]
    pub rm: bool,
    /// The signal `stop` sends first (default SIGTERM)
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep standard input open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// With -t: the terminal's size, when it is not ours (the engine's
    /// one-offs: the client's).
    #[arg(skip)]
    pub console_size: Option<(u16, u16)>,
    /// Run in the background and print the container id
    #[arg(short, long, conflicts_with = "rm")]
    pub detach: bool,
    /// Create the container and do not start it (`container create`, `up --no-start`)
    #[arg(skip)]
    pub create_only: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// NIS domain name of the container (its /etc/hosts names host.domain)
    #[arg(long)]
    pub domainname: Option<String>,
    /// Set an environment variable (`KEY=value`, or `KEY` to pass ours)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container (default: the image's, else /)
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User to run as: NAME, UID, NAME:GROUP or UID:GID (from the container's /etc/passwd)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Add a capability to Docker's default set
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from Docker's default set
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability, no masked paths
    #[arg(long)]
    pub privileged: bool,
    /// Security options: `seccomp=unconfined`, `no-new-privileges` (always on unless privileged)
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile, nproc, core, ...)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Network: `none` (own namespace, loopback only; the default), `host`,
    /// `container:NAME|ID`, or named networks (repeat to join several)
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// Another name for the container on its networks
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Its IPv4 address on the (first) network
    #[arg(long)]
    pub ip: Option<String>,
    /// Its IPv6 address on the (first) network
    #[arg(long)]
    pub ip6: Option<String>,
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/udp]
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// A DNS server (default: the network's own)
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// HOST:IP in /etc/hosts
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Set a label (KEY=VALUE); the image's labels are the defaults
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not keep the image's health check
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Bind mount: HOST_PATH:CONTAINER_PATH[:ro]
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs: PATH[:size=BYTES]
    #[arg(long = "tmpfs", value_name = "PATH")]
    pub tmpfs: Vec<String>,
    /// Size of /dev/shm (default 64m)
    #[arg(long)]
    pub shm_size: Option<String>,
    /// OOM killer preference, -1000 to 1000
    #[arg(long, allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// A namespaced kernel parameter: KEY=VALUE
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctls: Vec<String>,
    /// Log options: max-size=SIZE, max-file=N (json-file rotation)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Write the container id to this file (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Memory limit (bytes, or with a unit: 512m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited)
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (fractions allowed)
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Relative CPU weight
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Run the app itself as PID 1 (default: a tiny init that forwards signals and reaps zombies)
    #[arg(long)]
    pub no_init: bool,
    /// Run the app under our init (the default)
    #[arg(long, conflicts_with = "no_init")]
    pub init: bool,
    /// Use a plain directory as the root filesystem (it is never modified)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// IMAGE (without --rootfs) and the command with its arguments
    /// Overrides the image's entrypoint (`""` clears it)
    #[arg(long = "entrypoint", value_name = "PROGRAM")]
    pub entrypoint_flag: Option<String>,
    /// The entrypoint as a list (from a stack file's `entrypoint:`).
    #[arg(skip)]
    pub entrypoint: Option<Vec<String>>,
    /// Mounts made by `stack up` (named and anonymous volumes).
    #[arg(skip)]
    pub extra_mounts: Vec<stack_runtime::Mount>,
    /// Print nothing on success (`stack up` reports for itself).
    #[arg(skip)]
    pub quiet: bool,
    /// A stack file's health check: its fields over the image's.
    #[arg(skip)]
    pub health: Option<stack_runtime::Healthcheck>,
    /// A stack file's restart policy, for the engine.
    #[arg(skip)]
    pub restart: Option<stack_runtime::Restart>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The engine root: `STACK_ROOT`, else /var/lib/stack.
pub fn stack_root() -> PathBuf {
    std::env::var_os("STACK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/stack"))
}

pub fn random_id() -> anyhow::Result<String> {
    stack_sys::random_hex(32).context("cannot read random numbers")
}

pub fn run(cmd: &ContainerCommand) -> anyhow::Result<i32> {
    let root = stack_root();
    match cmd {
        ContainerCommand::Run(a) => run_container(&root, a),
        ContainerCommand::Create(a) => run_container(
            &root,
            &RunArgs {
                create_only: true,
                ..(**a).clone()
            },
        ),
        ContainerCommand::Ls { all, quiet } => {
            crate::lifecycle::ls(&root, *all, *quiet).map(|()| 0)
        }
        ContainerCommand::Exec {
            tty,
            interactive,
            detach,
            env,
            user,
            workdir,
            container,
            command,
        } => crate::lifecycle::exec(
            &root,
            container,
            &stack_runtime::Process {
                args: command.clone(),
                env: env.clone(),
                cwd: workdir.clone(),
                user: user.clone(),
                tty: *tty,
                interactive: *interactive,
                console_size: None,
            },
            *detach,
        ),
        ContainerCommand::Top { container } => crate::lifecycle::top(&root, container).map(|()| 0),
        ContainerCommand::Port { container, port } => {
            crate::lifecycle::port(&root, container, port.as_deref()).map(|()| 0)
        }
        ContainerCommand::Stats { args, containers } => crate::stats::show(args, || {
            let states: Vec<stack_runtime::State> = if containers.is_empty() {
                crate::lifecycle::every(&root)
                    .into_iter()
                    .filter(|(_, running)| args.all || *running)
                    .map(|(st, _)| st)
                    .collect()
            } else {
                containers
                    .iter()
                    .map(|c| crate::lifecycle::find(&root, c).map(|(_, st)| st))
                    .collect::<anyhow::Result<_>>()?
            };
            Ok(states.iter().map(crate::stats::read).collect())
        })
        .map(|()| 0),
        ContainerCommand::Pause { container } => {
            crate::lifecycle::pause(&root, container, true).map(|()| 0)
        }
        ContainerCommand::Unpause { container } => {
            crate::lifecycle::pause(&root, container, false).map(|()| 0)
        }
        ContainerCommand::Cp { src, dest } => {
            let (src, dest) = (
                crate::copy::Side::parse(src),
                crate::copy::Side::parse(dest),
            );
            let done = crate::copy::copy(&src, &dest, &crate::copy::Here(&root))?;
            eprintln!("{done}");
            Ok(0)
        }
        ContainerCommand::Inspect { container } => {
            crate::lifecycle::inspect(&root, container).map(|()| 0)
        }
        ContainerCommand::Logs {
            container,
            follow,
            timestamps,
            tail,
        } => {
            let tail = crate::compose::parse_tail(tail)?;
            crate::lifecycle::logs(&root, container, *follow, *timestamps, tail).map(|()| 0)
        }
        ContainerCommand::Start { containers } => {
            for c in containers {
                println!("{}", crate::lifecycle::start_again(&root, c)?);
            }
            Ok(0)
        }
        ContainerCommand::Stop { container, time } => {
            crate::lifecycle::stop(&root, container, *time).map(|()| 0)
        }
        ContainerCommand::Kill { container, signal } => {
            crate::lifecycle::kill(&root, container, signal).map(|()| 0)
        }
        ContainerCommand::Rm { containers, force } => {
            crate::lifecycle::rm(&root, containers, *force).map(|()| 0)
        }
    }
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

/// Makes the container `a` describes under `root`, and starts or runs it
/// as `a` says (`stack container run`, and the engine's containers).
pub fn run_container(root: &Path, a: &RunArgs) -> anyhow::Result<i32> {
    launch(root, a, |spec| start_or_run(root, a, spec))
}

/// `stack run` in the engine: the container started in our foreground
/// with pipes (or a pty) for the engine to relay; its id.
pub fn run_relayed(root: &Path, a: &RunArgs) -> anyhow::Result<(String, stack_runtime::Piped)> {
    launch(root, a, |spec| {
        let piped = stack_runtime::run_piped(spec, root)
            .with_context(|| format!("container `{}`", spec.name))?;
        Ok((spec.id.clone(), piped))
    })
}

/// The container `a` describes made, wired and started by `start`; a
/// failure leaves nothing behind.
fn launch<T>(
    root: &Path,
    a: &RunArgs,
    start: impl FnOnce(&stack_runtime::Spec) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (mut spec, named_networks) = spec_of(root, a)?;
    // Claimed before anything is wired: an engine that dies from here on
    // leaves a claim the next one sweeps (with its endpoints).
    let dir = stack_runtime::container_dir(root, &spec.id);
    stack_runtime::state::claim(&dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let started = wire_and_start(root, a, &mut spec, &named_networks, start);
    stack_runtime::state::release(&dir);
    if started.is_err() && !stack_runtime::state::path(&dir).exists() {
        let _ = stack_sys::remove_tree(root, &dir);
    }
    started
}

/// The runtime's spec of the container `a` describes, and the named
/// networks it joins.
fn spec_of(root: &Path, a: &RunArgs) -> anyhow::Result<(stack_runtime::Spec, Vec<String>)> {
    // The root file system: a directory, or an image's unpacked layers
    // (top first) plus the defaults of its config.
    let mut args = a.args.clone();
    let mut image = String::new();
    let (rootfs, layers, image_config) = match &a.rootfs {
        Some(dir) => (dir.clone(), Vec::new(), None),
        None => {
            let Some(reference) = args.first().cloned() else {
                bail!(
                    "no image given: stack container run [--rootfs DIR | IMAGE] COMMAND [ARG...]"
                );
            };
            args.remove(0);
            let store = crate::image::store()?;
            let img = store.lookup(&reference)?;
            let mut lowers = store.lower_dirs(&img);
            if lowers.is_empty() {
                bail!("image `{reference}` has no layers");
            }
            let top = lowers.remove(0);
            image = reference;
            (top, lowers, Some(img.config))
        }
    };
    // An entrypoint of ours replaces the image's, and its Cmd with it.
    let ours = a.entrypoint.clone().or_else(|| {
        a.entrypoint_flag.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        })
    });
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
    let id = random_id().context("cannot make a container id")?;
    let short = id[..12].to_string();
    if let Some(name) = &a.name {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            bail!("invalid container name `{name}`: use letters, digits, `_`, `.` and `-`");
        }
    }
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
    crate::lifecycle::ensure_name_free(root, &name)?;
    let special = |n: &str| {
        matches!(n, "none" | "host" | "bridge" | "default") || n.starts_with("container:")
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
        hostname: a.hostname.clone().unwrap_or_else(|| short.clone()),
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
        seccomp_unconfined: seccomp_unconfined(&a.security_opt)?,
        stop_signal: match a
            .stop_signal
            .as_ref()
            .or(image_config.as_ref().and_then(|c| c.stop_signal.as_ref()))
        {
            Some(s) => Some(crate::lifecycle::parse_signal(s).map(|sig| sig.as_str().to_string())?),
            None => None,
        },
        stop_timeout: a.stop_timeout,
        tty: a.tty,
        console_size: a.console_size,
        auto_remove: a.rm && a.detach,
        interactive: a.interactive,
        network: match named_networks.is_empty() {
            false => stack_runtime::NetworkMode::New,
            true => match a.network.first().map_or("none", String::as_str) {
                "none" | "bridge" | "default" => stack_runtime::NetworkMode::New,
                "host" => stack_runtime::NetworkMode::Host,
                other => match other.strip_prefix("container:") {
                    Some(key) => {
                        stack_runtime::NetworkMode::Join(crate::lifecycle::running_pid(root, key)?)
                    }
                    None => unreachable!("named networks are handled above"),
                },
            },
        },
        resolv_conf: None,
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
        log_max_size: log_opt(&a.log_opts, "max-size")?
            .map(|v| bytes(&v).map(|b| b as u64))
            .transpose()?,
        log_max_files: log_opt(&a.log_opts, "max-file")?
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| anyhow::anyhow!("invalid log option max-file=`{v}`: a number"))
            })
            .transpose()?,
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
        },
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
    root: &Path,
    a: &RunArgs,
    spec: &mut stack_runtime::Spec,
    named_networks: &[String],
    start: impl FnOnce(&stack_runtime::Spec) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let id = spec.id.clone();
    if !named_networks.is_empty() {
        let wired = crate::network::wire(
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
    let gone = !stack_runtime::container_dir(root, &id).exists();
    if !named_networks.is_empty() && (started.is_err() || gone) {
        if let Err(e) = crate::network::unwire(&id) {
            eprintln!("warning: {e:#}");
        }
    }
    started
}

fn start_or_run(root: &Path, a: &RunArgs, spec: &stack_runtime::Spec) -> anyhow::Result<i32> {
    let (id, name) = (&spec.id, &spec.name);
    stack_runtime::ignore_terminal_interrupts().context("cannot set up signal handling")?;
    if let Some(f) = &a.cidfile {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(f)
            .with_context(|| format!("cannot create the cidfile `{}`", f.display()))?;
        file.write_all(spec.id.as_bytes())?;
    }
    if a.create_only {
        crate::lifecycle::create(spec, root)?;
        if !a.quiet {
            println!("{id}");
        }
        return Ok(0);
    }
    if a.detach {
        crate::lifecycle::start_detached(spec, root)?;
        if !a.quiet {
            println!("{id}");
        }
        return Ok(0);
    }
    let exit =
        stack_runtime::run(spec, root, a.rm).with_context(|| format!("container `{name}`"))?;
    if exit.oom_killed {
        eprintln!("stack: container `{name}` was killed: out of memory");
    }
    Ok(exit.code)
}

/// `nofile=1024:2048` or `nproc=512`.
fn parse_ulimit(s: &str) -> anyhow::Result<(String, u64, u64)> {
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

fn seccomp_unconfined(opts: &[String]) -> anyhow::Result<bool> {
    let mut unconfined = false;
    for o in opts {
        match o.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => unconfined = true,
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {}
            other => bail!("unsupported security option `{other}`"),
        }
    }
    Ok(unconfined)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's containers start from `RunArgs::default()`: it must be
    /// what a command line without flags gives.
    #[test]
    fn the_default_is_the_command_line_without_flags() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunArgs,
        }
        let parsed = <Wrap as clap::Parser>::try_parse_from(["run"]).unwrap().run;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", RunArgs::default()));
    }
}
