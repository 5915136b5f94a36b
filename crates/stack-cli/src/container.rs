//! `stack container ...`: drive one container directly.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};
use stack_host::{containers, ContainerConfig, Host, Launch};

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

/// A container as `stack container run` takes it: the host's
/// `ContainerConfig` as flags.
#[derive(Args, Debug, Clone)]
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
    /// Run in the background and print the container id
    #[arg(short, long, conflicts_with = "rm")]
    pub detach: bool,
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
    /// Overrides the image's entrypoint (`""` clears it)
    #[arg(long = "entrypoint", value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// IMAGE (without --rootfs) and the command with its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

impl RunArgs {
    /// The container these flags describe.
    pub fn config(&self) -> ContainerConfig {
        let a = self.clone();
        ContainerConfig {
            rm: a.rm,
            stop_signal: a.stop_signal,
            stop_timeout: a.stop_timeout,
            tty: a.tty,
            interactive: a.interactive,
            name: a.name,
            hostname: a.hostname,
            domainname: a.domainname,
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            cap_add: a.cap_add,
            cap_drop: a.cap_drop,
            privileged: a.privileged,
            security_opt: a.security_opt,
            ulimits: a.ulimits,
            network: a.network,
            network_alias: a.network_alias,
            ip: a.ip,
            ip6: a.ip6,
            mac_address: a.mac_address,
            publish: a.publish,
            dns: a.dns,
            dns_search: a.dns_search,
            dns_option: a.dns_option,
            add_host: a.add_host,
            labels: a.labels,
            no_healthcheck: a.no_healthcheck,
            volumes: a.volumes,
            tmpfs: a.tmpfs,
            shm_size: a.shm_size,
            oom_score_adj: a.oom_score_adj,
            sysctls: a.sysctls,
            log_opts: a.log_opts,
            memory: a.memory,
            memory_reservation: a.memory_reservation,
            memory_swap: a.memory_swap,
            cpus: a.cpus,
            cpu_shares: a.cpu_shares,
            cpuset_cpus: a.cpuset_cpus,
            pids_limit: a.pids_limit,
            read_only: a.read_only,
            no_init: a.no_init,
            rootfs: a.rootfs,
            entrypoint: a
                .entrypoint
                .map(|e| if e.is_empty() { Vec::new() } else { vec![e] }),
            args: a.args,
            ..ContainerConfig::default()
        }
    }
}

/// Makes the container `a` describes, started as `how` says; the exit
/// code (a foreground run's), the id printed otherwise.
fn launch(host: &Host, a: &RunArgs, how: Launch) -> anyhow::Result<i32> {
    let launched = stack_host::create::launch(host, &a.config(), how, a.cidfile.as_deref())?;
    match launched.exit {
        Some(exit) => {
            if exit.oom_killed {
                let name = a.name.as_deref().unwrap_or(&launched.id[..12]);
                eprintln!("stack: container `{name}` was killed: out of memory");
            }
            Ok(exit.code)
        }
        None => {
            println!("{}", launched.id);
            Ok(0)
        }
    }
}

/// The engine root: `STACK_ROOT`, else /var/lib/stack.
pub fn stack_root() -> PathBuf {
    std::env::var_os("STACK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/stack"))
}

pub fn run(cmd: &ContainerCommand) -> anyhow::Result<i32> {
    let host = Host::new(stack_root());
    let root = host.root();
    match cmd {
        ContainerCommand::Run(a) if a.detach => launch(&host, a, Launch::Detached),
        ContainerCommand::Run(a) => launch(&host, a, Launch::Foreground),
        ContainerCommand::Create(a) => launch(&host, a, Launch::CreateOnly),
        ContainerCommand::Ls { all, quiet } => ls(root, *all, *quiet).map(|()| 0),
        ContainerCommand::Exec {
            tty,
            interactive,
            detach,
            env,
            user,
            workdir,
            container,
            command,
        } => exec(
            root,
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
        ContainerCommand::Top { container } => top(root, container).map(|()| 0),
        ContainerCommand::Port { container, port } => {
            self::port(&host, container, port.as_deref()).map(|()| 0)
        }
        ContainerCommand::Stats { args, containers } => crate::stats::show(args, || {
            let states: Vec<stack_runtime::State> = if containers.is_empty() {
                stack_host::containers::every(root)
                    .into_iter()
                    .filter(|(_, running)| args.all || *running)
                    .map(|(st, _)| st)
                    .collect()
            } else {
                containers
                    .iter()
                    .map(|c| stack_host::containers::find(root, c).map(|(_, st)| st))
                    .collect::<anyhow::Result<_>>()?
            };
            Ok(states.iter().map(stack_host::stats::read).collect())
        })
        .map(|()| 0),
        ContainerCommand::Pause { container } => pause(root, container, true).map(|()| 0),
        ContainerCommand::Unpause { container } => pause(root, container, false).map(|()| 0),
        ContainerCommand::Cp { src, dest } => {
            let (src, dest) = (
                crate::copy::Side::parse(src),
                crate::copy::Side::parse(dest),
            );
            let done = crate::copy::copy(&src, &dest, &crate::copy::Here(root))?;
            eprintln!("{done}");
            Ok(0)
        }
        ContainerCommand::Inspect { container } => inspect(root, container).map(|()| 0),
        ContainerCommand::Logs {
            container,
            follow,
            timestamps,
            tail,
        } => {
            let tail = crate::compose::parse_tail(tail)?;
            logs(root, container, *follow, *timestamps, tail).map(|()| 0)
        }
        ContainerCommand::Start { containers } => {
            for c in containers {
                println!("{}", stack_host::containers::start_again(root, c)?);
            }
            Ok(0)
        }
        ContainerCommand::Stop { container, time } => stop(root, container, *time).map(|()| 0),
        ContainerCommand::Kill { container, signal } => kill(root, container, signal).map(|()| 0),
        ContainerCommand::Rm { containers, force } => rm(&host, containers, *force).map(|()| 0),
    }
}

pub fn ls(root: &Path, all_: bool, quiet: bool) -> anyhow::Result<()> {
    if !quiet {
        println!(
            "{:<14}{:<20}{:<30}STATUS",
            "CONTAINER ID", "NAME", "COMMAND"
        );
    }
    for (dir, st) in containers::all(root) {
        match st {
            Ok(st) => {
                if !all_ && !containers::running(&st) {
                    continue;
                }
                if quiet {
                    println!("{}", &st.id[..12]);
                    continue;
                }
                let mut cmd = format!("\"{}\"", st.spec.args.join(" "));
                if cmd.len() > 28 {
                    cmd = format!(
                        "{}…\"",
                        &cmd[..cmd
                            .char_indices()
                            .nth(25)
                            .map(|(i, _)| i)
                            .unwrap_or(cmd.len())]
                    );
                }
                println!(
                    "{:<14}{:<20}{:<30}{}",
                    &st.id[..12],
                    st.name,
                    cmd,
                    containers::status_text(&st)
                );
            }
            Err(e) => eprintln!("warning: {}: {e:#}", dir.display()),
        }
    }
    Ok(())
}

pub fn inspect(root: &Path, key: &str) -> anyhow::Result<()> {
    let (_, st) = containers::find(root, key)?;
    let mut v = serde_json::to_value(&st)?;
    v["running"] = serde_json::Value::Bool(containers::running(&st));
    // What the engine saw of a project's container: health and restarts
    // (when an engine runs: inspecting starts none).
    let project = st.spec.labels.get(stack_plan::LABEL_PROJECT);
    if let (Some(project), Some((rt, client))) = (project, crate::client::running_client()) {
        let path = format!("/v1/projects/{project}/containers?all=1");
        let rows: Vec<stack_api::ContainerSummary> =
            rt.block_on(client.get(&path)).unwrap_or_default();
        if let Some(c) = rows.iter().find(|c| c.id == st.id) {
            v["restarts"] = c.restarts.into();
            if !c.health.is_empty() {
                v["health"] = serde_json::json!({"status": c.health, "log": c.health_log});
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `container logs`: with `tail`, the last N records (read from the
/// log's end), then with `follow` on from there.
pub fn logs(
    root: &Path,
    key: &str,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let (dir, _) = containers::find(root, key)?;
    let mut log = stack_runtime::logs::Follower::new(stack_runtime::state::log_path(&dir));
    if !follow {
        log = log.to_current_end();
    }
    let mut last = tail.map(|n| log.tail(n, |_| true));
    loop {
        let (records, bad) = match last.take() {
            Some(records) => (records, Vec::new()),
            None => log.read_new(),
        };
        let read_some = !records.is_empty() || !bad.is_empty();
        for at in bad {
            eprintln!(
                "warning: {}: skipping a damaged record at byte {at}",
                log.path().display()
            );
        }
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for r in records {
            let prefix = if timestamps {
                format!("{} ", r.time)
            } else {
                String::new()
            };
            let w: &mut dyn Write = if r.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            write!(w, "{prefix}{}", r.log)?;
        }
        out.flush()?;
        if !follow {
            // The tail, or all there is (a chunk at a time).
            if tail.is_some() || !read_some {
                return Ok(());
            }
            continue;
        }
        if log.behind() {
            continue;
        }
        let st = stack_runtime::state::read(&dir)?;
        if !containers::running(&st) {
            // One last read for what came before the exit.
            if !log.behind() {
                return Ok(());
            }
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn stop(root: &Path, key: &str, grace: Option<u64>) -> anyhow::Result<()> {
    println!("{}", containers::stop_one(root, key, grace)?);
    Ok(())
}

pub fn kill(root: &Path, key: &str, sig: &str) -> anyhow::Result<()> {
    println!("{}", containers::kill_one(root, key, sig)?);
    Ok(())
}

pub fn rm(host: &Host, keys: &[String], force: bool) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for key in keys {
        match containers::remove_one(host, key, force) {
            Ok(name) => println!("{name}"),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// `container exec`: `p` in the running container `key`, from here (the
/// CLI joins its namespaces); with `detach`, left running on its own.
pub fn exec(
    root: &Path,
    key: &str,
    p: &stack_runtime::Process,
    detach: bool,
) -> anyhow::Result<i32> {
    let st = containers::running_state(root, key)?;
    if detach {
        stack_runtime::exec_detached(&st, p)?;
        return Ok(0);
    }
    stack_runtime::ignore_terminal_interrupts()?;
    Ok(stack_runtime::exec(&st, p)?)
}

/// `container port NAME [PORT[/PROTO]]`, as `docker port` prints it.
pub fn port(host: &Host, key: &str, which: Option<&str>) -> anyhow::Result<()> {
    let (_, st) = containers::find(host.root(), key)?;
    let all = stack_host::network::ports_of(host, &st.id)?;
    let wanted = which.map(|w| {
        if w.contains('/') {
            w.to_string()
        } else {
            format!("{w}/tcp")
        }
    });
    let shown: Vec<&String> = all
        .iter()
        .filter(|l| {
            wanted
                .as_ref()
                .is_none_or(|w| l.starts_with(&format!("{w} ")))
        })
        .collect();
    if shown.is_empty() && wanted.is_some() {
        bail!(
            "no public port `{}` published for `{}`",
            wanted.unwrap_or_default(),
            st.name
        );
    }
    for l in shown {
        match &wanted {
            Some(_) => println!("{}", l.split(" -> ").nth(1).unwrap_or_default()),
            None => println!("{l}"),
        }
    }
    Ok(())
}

/// `container top NAME`.
pub fn top(root: &Path, key: &str) -> anyhow::Result<()> {
    print_top(&containers::top_of(&containers::running_state(root, key)?).processes);
    Ok(())
}

/// A container's processes as `docker top` prints them.
pub fn print_top(processes: &[stack_api::TopProcess]) {
    println!(
        "{:<10} {:<8} {:<8} {:<3} {:<6} {:<7} {:<9} CMD",
        "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME"
    );
    for p in processes {
        println!(
            "{:<10} {:<8} {:<8} {:<3} {:<6} {:<7} {:<9} {}",
            p.uid, p.pid, p.ppid, p.c, p.stime, p.tty, p.time, p.cmd
        );
    }
}

pub fn pause(root: &Path, key: &str, frozen: bool) -> anyhow::Result<()> {
    println!("{}", containers::freeze(root, key, frozen)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line with no flags is the host's default configuration:
    /// every flag's default is the configuration's.
    #[test]
    fn no_flags_is_the_default_configuration() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunArgs,
        }
        let parsed = <Wrap as clap::Parser>::try_parse_from(["run", "img", "cmd"])
            .unwrap()
            .run;
        let want = ContainerConfig {
            args: vec!["img".into(), "cmd".into()],
            ..ContainerConfig::default()
        };
        assert_eq!(format!("{:?}", parsed.config()), format!("{want:?}"));
        let cleared = <Wrap as clap::Parser>::try_parse_from(["run", "--entrypoint", "", "img"])
            .unwrap()
            .run;
        assert_eq!(cleared.config().entrypoint, Some(Vec::new()));
    }
}
