//! What to run, and how.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub id: String,
    /// The user's name for it (the id's first 12 characters by default).
    #[serde(default)]
    pub name: String,
    /// A plain directory: an overlay with a private writable layer goes over
    /// it, so it is never modified.
    pub rootfs: PathBuf,
    /// Read-only layers below `rootfs`, top first: the seam for images, whose
    /// unpacked layers become overlay lower directories.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    /// NIS domain name of the container's UTS namespace (`domainname`);
    /// empty: none.
    #[serde(default)]
    pub domainname: String,
    /// Run a tiny init as PID 1 (forwards signals, reaps zombies).
    pub init: bool,
    pub read_only: bool,
    /// `NAME`, `UID`, `NAME:GROUP` or `UID:GID`, resolved against the
    /// container's own /etc/passwd and /etc/group. Empty: root.
    #[serde(default)]
    pub user: String,
    /// Capabilities added to or dropped from Docker's default set
    /// (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Every capability, and no masked or read-only paths.
    #[serde(default)]
    pub privileged: bool,
    /// No seccomp filter (`--security-opt seccomp=unconfined`).
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// A seccomp profile in Docker's JSON format, in place of Docker's
    /// default one (`--security-opt seccomp=FILE.json`).
    #[serde(default)]
    pub seccomp_profile: Option<String>,
    /// Processes may gain privileges through set-user-ID files and file
    /// capabilities (`--security-opt no-new-privileges=false`); by default
    /// they cannot.
    #[serde(default)]
    pub new_privileges: bool,
    /// The signal `stop` sends first (default SIGTERM), and the seconds it
    /// waits before SIGKILL (default 10).
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// Give the app a pseudo-terminal (`-t`).
    #[serde(default)]
    pub tty: bool,
    /// Keep the app's standard input open (`-i`).
    #[serde(default)]
    pub interactive: bool,
    /// Removed once it has exited (`run -d --rm`), by the engine that
    /// watches it (in the foreground, `run`'s caller removes it).
    #[serde(default)]
    pub auto_remove: bool,
    /// Removed by `run`'s caller once it has exited (`run --rm` in the
    /// foreground); the engine leaves that to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub caller_removes: bool,
    /// With `tty`: the terminal's size (rows, columns) before the app
    /// starts; by default the size of the terminal we were started on.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Which network namespace: a new one (loopback only, until project
    /// networks exist), the host's, or another container's.
    #[serde(default)]
    pub network: NetworkMode,
    /// The PID namespace: the container's own (its init is PID 1), the
    /// host's, or another container's.
    #[serde(default, skip_serializing_if = "Namespace::is_own")]
    pub pid: Namespace,
    /// The IPC and UTS namespaces: the container's own, the host's, or
    /// another container's.
    #[serde(default, skip_serializing_if = "Namespace::is_own")]
    pub ipc: Namespace,
    #[serde(default, skip_serializing_if = "Namespace::is_own")]
    pub uts: Namespace,
    /// Bind mounts and tmpfs mounts, in order.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Size of /dev/shm in bytes (default 64 MiB).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// The OOM killer's preference for this container (-1000..1000).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Kernel parameters of the container's namespaces (`net.*`, `kernel.shm*`, ...).
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// Log rotation: the size past which the log rotates, and how many files to keep.
    #[serde(default)]
    pub log_max_size: Option<u64>,
    #[serde(default)]
    pub log_max_files: Option<u32>,
    /// No log kept (`logging: none`): the output goes nowhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_log: bool,
    /// cgroup limits.
    #[serde(default)]
    pub limits: crate::cgroup::Limits,
    /// Where its cgroups go, from each hierarchy's root (`cgroup_parent`);
    /// none: under stack's own cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Resource limits: name (`nofile`, `nproc`, …), soft, hard.
    #[serde(default)]
    pub rlimits: Vec<(String, u64, u64)>,
    /// Host devices made in the container's /dev, and allowed by its
    /// devices cgroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// More devices cgroup rules (`c 189:* rmw`), beyond the devices'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_rules: Vec<String>,
    /// Supplementary groups beyond the user's (`group_add`): names in the
    /// container's /etc/group, or numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The image it runs, as the user named it ("" for a plain rootfs).
    #[serde(default)]
    pub image: String,
    /// That image's id (its config's digest) when it was made: what it
    /// runs, whatever the name points to since.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// `80/tcp`, …: what the image says it listens on (published by the
    /// network layer, not here).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Recorded for the supervisor (the engine): it probes the container.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Recorded for the supervisor: when it starts the container again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    /// /etc/resolv.conf as the network layer wants it (default: the host's
    /// in the host's network, else empty).
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// More /etc/hosts lines (`IP<TAB>names`): the container's own
    /// addresses, `extra_hosts`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A health check as Docker images carry it (durations in nanoseconds).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub timeout: Option<u64>,
    #[serde(default)]
    pub start_period: Option<u64>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_interval: Option<u64>,
    /// A probe the engine runs itself (`x-stack-probe`), instead of `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
}

/// A health probe that needs nothing in the image: the engine connects
/// from the container's network namespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Http {
        port: u16,
        #[serde(default)]
        path: String,
        #[serde(default)]
        status: Option<u16>,
    },
    Tcp {
        port: u16,
    },
}

/// A restart policy as compose and Docker state it (durations in
/// nanoseconds).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Restart {
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub delay: Option<u64>,
    #[serde(default)]
    pub window: Option<u64>,
}

impl Spec {
    /// Removed once it has exited, by the engine or by `run`'s caller:
    /// none of its records is worth syncing to disk.
    pub fn transient(&self) -> bool {
        self.auto_remove || self.caller_removes
    }

    /// The container's names for /etc/hosts: `host.domain host` with a
    /// domain name, else `host`.
    pub fn host_names(&self) -> String {
        if self.domainname.is_empty() {
            self.hostname.clone()
        } else {
            format!("{}.{} {}", self.hostname, self.domainname, self.hostname)
        }
    }

    /// The environment with a default `PATH` and `HOSTNAME`, as Docker sets them.
    pub fn full_env(&self) -> Vec<String> {
        let mut env = self.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", self.hostname));
        }
        env
    }
}

/// A mount into the container.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    /// `bind`, `tmpfs`, or `volume`: a bind of a directory that, while
    /// empty, first gets a copy of what the image has at the target.
    pub kind: String,
    /// Host path (bind, volume) or unused (tmpfs).
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
    pub read_only: bool,
    /// tmpfs size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// A bind's mounts under its source (compose's `bind.recursive`).
    #[serde(default)]
    pub recursive: Recursive,
}

/// What a bind does with the mounts under its source, as compose's
/// `bind.recursive` and Docker's `bind-recursive` say.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Recursive {
    /// They come along, read-only with a read-only bind.
    #[default]
    Enabled,
    /// They are left out: only the source's own mount is bound.
    Disabled,
    /// They come along and stay writable under a read-only bind.
    Writable,
    /// They come along, read-only (what `Enabled` does here as well).
    Readonly,
}

/// A host device node in a container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// Its path in the container, under /dev.
    pub path: String,
    /// A block device (else a character device).
    #[serde(default)]
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    /// The node's mode (of the host's node).
    pub mode: u32,
    /// `r`, `w`, `m` as the devices cgroup takes them.
    pub permissions: String,
}

impl Device {
    /// Its rule for the devices cgroup: `c 10:200 rwm`.
    pub fn rule(&self) -> String {
        let kind = if self.block { 'b' } else { 'c' };
        format!("{kind} {}:{} {}", self.major, self.minor, self.permissions)
    }
}

/// A namespace a container has.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// One of its own.
    #[default]
    Own,
    /// The host's.
    Host,
    /// That of the process with this host pid (another container's PID 1).
    Join(i32),
}

impl Namespace {
    pub fn is_own(&self) -> bool {
        *self == Namespace::Own
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    New,
    Host,
    /// Join the network namespace of the process with this host pid (another
    /// container's PID 1).
    Join(i32),
    /// Join a network namespace bound to this file (made and wired by the
    /// network layer before the container starts).
    Path(PathBuf),
}
