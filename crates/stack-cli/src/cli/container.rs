//! `stack container …`: its subcommands and `run`'s flags, which are the
//! host's `ContainerConfig` as a command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use stack_host::ContainerConfig;

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
        /// Every capability for the command (the container's seccomp filter and device rules still hold)
        #[arg(long)]
        privileged: bool,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Copy files between a running container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST
    Cp {
        /// Keep the owners (uid and gid) the source has
        #[arg(short, long)]
        archive: bool,
        /// Copy what a symlink SRC points to, under its name
        #[arg(short = 'L', long)]
        follow_link: bool,
        src: String,
        dest: String,
    },
    /// List the processes of a container
    Top { container: String },
    /// Show containers' resource use (CPU, memory, network, block I/O, processes), every second
    Stats {
        #[command(flatten)]
        args: crate::cli::StatsArgs,
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
    /// Files changed in a container's filesystem: A added, C changed, D deleted
    #[command(after_help = "Example:\n  stack container diff web")]
    Diff { container: String },
    /// Attach to a running container's output (and input, if it keeps its input open)
    #[command(after_help = "Example:\n  stack container attach --no-stdin web")]
    Attach {
        #[command(flatten)]
        how: AttachArgs,
        container: String,
    },
    /// Make an image from a container's changes
    #[command(
        after_help = "Examples:\n  stack container commit web web:debug\n  stack container commit -c 'CMD [\"nginx\", \"-g\", \"daemon off;\"]' -m 'with the fix' web web:fixed"
    )]
    Commit {
        #[command(flatten)]
        how: CommitArgs,
        container: String,
        /// REPOSITORY[:TAG] to name the image (default: no name)
        reference: Option<String>,
    },
    /// A container's filesystem as a tar archive
    #[command(after_help = "Example:\n  stack container export -o web.tar web")]
    Export {
        container: String,
        /// Write to a file (default: standard output, which must not be a terminal)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Rename a container
    #[command(after_help = "Example:\n  stack container rename web web-old")]
    Rename { container: String, new_name: String },
    /// Change the resource limits of containers (running ones at once)
    #[command(after_help = "Example:\n  stack container update -m 512m --cpus 1.5 web")]
    Update {
        #[command(flatten)]
        limits: UpdateArgs,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait until containers stop, and print their exit codes
    #[command(after_help = "Example:\n  stack container wait job")]
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List a container's published ports (or the host side of one)
    Port {
        container: String,
        /// PORT[/PROTO]
        port: Option<String>,
    },
}

/// `attach`'s flags, for a container and for a service's.
#[derive(Args, Debug, Clone)]
pub struct AttachArgs {
    /// Keys that detach from the container (default ctrl-p,ctrl-q)
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Do not attach our input
    #[arg(long)]
    pub no_stdin: bool,
    /// Relay the signals we get to the container (without a terminal)
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
}

/// `commit`'s flags, for a container and for a service's.
#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short, long, default_value = "")]
    pub author: String,
    /// A Dockerfile instruction to apply to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR)
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Pause a running container while it is committed (stack always does: a live layer could be swapped for links while it is read)
    #[arg(short, long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
}

/// The limits of `container run` that `container update` changes too.
#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// Memory limit (bytes, or with a unit: 512m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
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
    /// Block I/O weight, 10 to 1000
    #[arg(long, value_parser = clap::value_parser!(u16).range(10..=1000))]
    pub blkio_weight: Option<u16>,
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
    /// Read rate from a device: DEVICE:RATE (bytes a second, 1mb)
    #[arg(long = "device-read-bps", value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<String>,
    /// Write rate to a device: DEVICE:RATE
    #[arg(long = "device-write-bps", value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<String>,
    /// Read operations a second from a device: DEVICE:COUNT
    #[arg(long = "device-read-iops", value_name = "DEVICE:COUNT")]
    pub device_read_iops: Vec<String>,
    /// Write operations a second to a device: DEVICE:COUNT
    #[arg(long = "device-write-iops", value_name = "DEVICE:COUNT")]
    pub device_write_iops: Vec<String>,
    /// How readily its memory is swapped, 0 to 100
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub memory_swappiness: Option<u64>,
    /// The OOM killer leaves it alone
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// A host device in the container: HOST[:CONTAINER[:PERMISSIONS]]
    #[arg(long = "device", value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// A rule for the devices cgroup: `c 189:* rwm`
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rules: Vec<String>,
    /// PID namespace: its own (the default), host or container:NAME
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: private, shareable (its own), host or container:NAME
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace (host and domain names): its own, or host
    #[arg(long)]
    pub uts: Option<String>,
    /// Add a supplementary group (a name in the container's /etc/group, or a number)
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
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
    /// Put the container's cgroups under this path from each hierarchy's root
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// A namespaced kernel parameter: KEY=VALUE
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctls: Vec<String>,
    /// The log driver: json-file (the default), local or none
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log options: max-size=SIZE, max-file=N (json-file rotation)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Write the container id to this file (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    #[command(flatten)]
    pub limits: UpdateArgs,
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
            group_add: a.group_add,
            devices: a.devices,
            device_cgroup_rules: a.device_cgroup_rules,
            device_read_bps: a.device_read_bps,
            device_write_bps: a.device_write_bps,
            device_read_iops: a.device_read_iops,
            device_write_iops: a.device_write_iops,
            memory_swappiness: a.memory_swappiness,
            oom_kill_disable: a.oom_kill_disable,
            pid: a.pid,
            ipc: a.ipc,
            uts: a.uts,
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
            cgroup_parent: a.cgroup_parent.clone(),
            sysctls: a.sysctls,
            log_driver: a.log_driver,
            log_opts: a.log_opts,
            memory: a.limits.memory,
            memory_reservation: a.limits.memory_reservation,
            memory_swap: a.limits.memory_swap,
            cpus: a.limits.cpus,
            cpu_shares: a.limits.cpu_shares,
            cpuset_cpus: a.limits.cpuset_cpus,
            pids_limit: a.limits.pids_limit,
            blkio_weight: a.limits.blkio_weight,
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
