//! Resource limits through cgroups, v1 (per-controller hierarchies, as on
//! hybrid hosts) or v2 (unified), detected at run time.
//!
//! A container's cgroup sits under the cgroup of the process that creates
//! it (never at a hierarchy root): `<own>/stack/<id>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers a container joins (blkio only to count its I/O;
/// devices to keep it from the host's device nodes).
const V1_CONTROLLERS: [&str; 8] = [
    "memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "blkio", "devices",
];

/// The device nodes a container may open (and any it may make, but not
/// open), as Docker and runc allow them: null, zero, full, random,
/// urandom, tty, console, ptmx and the ptys. Everything else, the host's
/// disks above all, is refused by the kernel however the node got there.
pub const ALLOWED_DEVICES: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// Whether the kernel keeps containers to [`ALLOWED_DEVICES`] here: the v1
/// devices controller. On v2 that takes a BPF program, which stack does not
/// load yet; the runtime then withholds `CAP_MKNOD` unless asked for it.
pub fn devices_enforced() -> bool {
    !is_v2_root() && Path::new(ROOT).join("devices/devices.allow").exists() && !none_of_ours()
}

/// Whether containers get no cgroups here: rootless, with no cgroup
/// delegated to the engine (cgroup v1 hosts, or v2 without a systemd user
/// session's subtree). They then run without limits, as Docker's rootless
/// mode runs them. (Read once per process: it asks for every container.)
pub fn none_of_ours() -> bool {
    static NONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NONE.get_or_init(|| {
        stack_sys::userns::rootless()
            && matches!(layout("probe", None), Ok(Layout::V1(dirs)) if dirs.is_empty())
    })
}

/// Whether a cgroup directory of ours takes children: always as the host's
/// root; rootless, where the directory was delegated to our user.
fn ours(dir: &Path) -> bool {
    !stack_sys::userns::rootless()
        || nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Limits, as compose and `docker run` express them.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Memory plus swap; -1 for unlimited.
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset: Option<String>,
    pub pids: Option<i64>,
    /// 0 to 100: how readily its anonymous memory is swapped (v1).
    #[serde(default)]
    pub swappiness: Option<u64>,
    /// The OOM killer leaves it alone (v1): at its limit it waits.
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// Block I/O throttles, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<IoThrottle>,
    /// Block I/O weight (10 to 1000), and per device (major, minor, weight):
    /// BFQ's where the host has it, else the io controller's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_weight_devices: Vec<(u64, u64, u16)>,
}

/// The first of `files` in `dir` that exists (a weight file of BFQ's, or
/// the controller's).
fn weight_file<'a>(dir: &Path, files: &[&'a str]) -> Option<&'a str> {
    files.iter().copied().find(|f| dir.join(f).exists())
}

/// Writes the weights of `limits` in `dir`, in the files of `files`
/// (v1's or v2's): the default as `default_line`, each device as
/// `major:minor weight`. No file: an error (`up` warns of weights a host
/// cannot apply before it gets here).
fn write_weights(
    dir: &Path,
    limits: &Limits,
    files: &[&str],
    default_line: impl Fn(u16) -> String,
) -> io::Result<()> {
    if limits.io_weight.is_none() && limits.io_weight_devices.is_empty() {
        return Ok(());
    }
    let Some(file) = weight_file(dir, files) else {
        return Err(io::Error::other(format!(
            "this host has no block I/O weight file ({})",
            files.join(", ")
        )));
    };
    if let Some(w) = limits.io_weight {
        write(dir, file, &default_line(w))?;
    }
    for (major, minor, w) in &limits.io_weight_devices {
        let device_file = if file.ends_with(".weight") && file.starts_with("blkio") {
            format!("{file}_device")
        } else {
            file.to_string()
        };
        write(dir, &device_file, &format!("{major}:{minor} {w}"))?;
    }
    Ok(())
}

/// The most a container may read and write of one block device, in bytes
/// and operations a second.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoThrottle {
    pub major: u64,
    pub minor: u64,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

impl IoThrottle {
    /// v1's files and lines: `blkio.throttle.read_bps_device`, `8:0 1048576`.
    fn v1(&self) -> Vec<(&'static str, String)> {
        [
            ("blkio.throttle.read_bps_device", self.read_bps),
            ("blkio.throttle.write_bps_device", self.write_bps),
            ("blkio.throttle.read_iops_device", self.read_iops),
            ("blkio.throttle.write_iops_device", self.write_iops),
        ]
        .into_iter()
        .filter_map(|(f, v)| Some((f, format!("{}:{} {}", self.major, self.minor, v?))))
        .collect()
    }

    /// v2's `io.max` line: `8:0 rbps=1048576 wbps=max riops=max wiops=max`.
    fn v2(&self) -> String {
        let v = |n: Option<u64>| n.map_or("max".to_string(), |n| n.to_string());
        format!(
            "{}:{} rbps={} wbps={} riops={} wiops={}",
            self.major,
            self.minor,
            v(self.read_bps),
            v(self.write_bps),
            v(self.read_iops),
            v(self.write_iops)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// Directory of each v1 controller for this container.
    V1(Vec<(&'static str, PathBuf)>),
    V2(PathBuf),
}

fn is_v2_root() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Our own cgroup path in a hierarchy, from /proc/self/cgroup.
fn own_path(proc_self_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_self_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => ctrls.is_empty(),
        };
        matches.then(|| path.to_string())
    })
}

/// Whether v1's blkio hierarchy has weight files: at its root, or (BFQ's)
/// in the cgroups below it.
fn v1_weights(blkio: &Path) -> bool {
    weight_file(blkio, V1_WEIGHTS).is_some()
        || fs::read_dir(blkio).is_ok_and(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .any(|e| weight_file(&e.path(), V1_WEIGHTS).is_some())
        })
}

/// Whether block device `major:minor` (or the disk of a partition) is
/// scheduled by BFQ, the only scheduler whose per-device weights the
/// kernel takes.
pub fn bfq_device(major: u64, minor: u64) -> bool {
    let dev = Path::new("/sys/dev/block").join(format!("{major}:{minor}"));
    ["queue/scheduler", "../queue/scheduler"]
        .iter()
        .filter_map(|f| fs::read_to_string(dev.join(f)).ok())
        .any(|s| s.contains("[bfq]"))
}

/// v1's weight files, BFQ's first.
const V1_WEIGHTS: &[&str] = &["blkio.bfq.weight", "blkio.weight"];

/// What this host's cgroups can limit for a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controllers {
    pub memory: bool,
    /// Memory plus swap (swap accounting).
    pub swap: bool,
    pub cpu: bool,
    pub cpuset: bool,
    pub pids: bool,
    /// Swappiness and turning the OOM killer off (v1's memory controller).
    pub swappiness: bool,
    pub oom_control: bool,
    /// Block I/O throttles (v1's blkio, v2's io).
    pub io: bool,
    /// Block I/O weights (BFQ's, or the io controller's).
    pub io_weight: bool,
}

impl Controllers {
    /// No limit applies.
    pub const NONE: Controllers = Controllers {
        memory: false,
        swap: false,
        cpu: false,
        cpuset: false,
        pids: false,
        swappiness: false,
        oom_control: false,
        io: false,
        io_weight: false,
    };
    /// Every limit applies.
    pub const ALL: Controllers = Controllers {
        memory: true,
        swap: true,
        cpu: true,
        cpuset: true,
        pids: true,
        swappiness: true,
        oom_control: true,
        io: true,
        io_weight: true,
    };
}

/// The controllers this host offers containers: v1 hierarchies mounted
/// (swap accounting by its file), or those cgroup2 lists at its root.
pub fn controllers() -> Controllers {
    let root = Path::new(ROOT);
    if none_of_ours() {
        return Controllers::NONE;
    }
    if is_v2_root() {
        // Rootless, those delegated to our own cgroup (a user's systemd
        // gives some of them only).
        let own = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|c| own_path(&c, None))
            .filter(|_| stack_sys::userns::rootless())
            .unwrap_or_default();
        let list = fs::read_to_string(
            root.join(own.trim_start_matches('/'))
                .join("cgroup.controllers"),
        )
        .unwrap_or_default();
        let has = |c: &str| list.split_whitespace().any(|x| x == c);
        return Controllers {
            memory: has("memory"),
            swap: has("memory"),
            cpu: has("cpu"),
            cpuset: has("cpuset"),
            pids: has("pids"),
            swappiness: false,
            oom_control: false,
            io: has("io"),
            // (io.weight is the io controller's; io.bfq.weight BFQ's)
            io_weight: has("io"),
        };
    }
    let has = |c: &str| root.join(c).join("cgroup.procs").exists();
    Controllers {
        memory: has("memory"),
        swap: root.join("memory/memory.memsw.limit_in_bytes").exists(),
        cpu: has("cpu"),
        cpuset: has("cpuset"),
        pids: has("pids"),
        swappiness: root.join("memory/memory.swappiness").exists(),
        oom_control: root.join("memory/memory.oom_control").exists(),
        io: root.join("blkio/blkio.throttle.read_bps_device").exists(),
        // (BFQ shows its weights in the cgroups below the root only)
        io_weight: v1_weights(&root.join("blkio")),
    }
}

/// Where the cgroups of the container `spec` describes are (nothing is
/// created).
pub fn layout_of(spec: &crate::Spec) -> io::Result<Layout> {
    layout(&spec.id, spec.cgroup_parent.as_deref())
}

/// A `cgroup_parent` as the names under a hierarchy's root it stands for:
/// `/a/b` and `a/b` alike; `..`, `.` and empty names are refused.
pub fn parent_names(parent: &str) -> io::Result<Vec<&str>> {
    let names: Vec<&str> = parent.trim_matches('/').split('/').collect();
    if names
        .iter()
        .any(|n| n.is_empty() || *n == "." || *n == "..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cgroup parent `{parent}`: plain names separated by `/` only"),
        ));
    }
    Ok(names)
}

/// Where container `id`'s cgroups are: under `parent` from each
/// hierarchy's root, or by default under stack's own cgroup (nothing is
/// created).
pub fn layout(id: &str, parent: Option<&str>) -> io::Result<Layout> {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let under = |own_path: Option<String>| -> io::Result<PathBuf> {
        let mut p = PathBuf::new();
        match parent {
            Some(parent) => p.extend(parent_names(parent)?),
            None => {
                p.push(own_path.unwrap_or_default().trim_start_matches('/'));
                p.push("stack");
            }
        }
        Ok(p.join(id))
    };
    let owned = |mount: &Path, own_path: &Option<String>| {
        ours(&mount.join(own_path.as_deref().unwrap_or("").trim_start_matches('/')))
    };
    if is_v2_root() {
        let path = own_path(&own, None);
        if !owned(Path::new(ROOT), &path) {
            return Ok(Layout::V1(Vec::new()));
        }
        return Ok(Layout::V2(Path::new(ROOT).join(under(path)?)));
    }
    let mut dirs = Vec::new();
    for c in V1_CONTROLLERS {
        let mount = Path::new(ROOT).join(c);
        let path = own_path(&own, Some(c));
        if !mount.exists() || !owned(&mount, &path) {
            continue;
        }
        dirs.push((c, mount.join(under(path)?)));
    }
    Ok(Layout::V1(dirs))
}

/// What a container sees of its cgroups at /sys/fs/cgroup: its own, never
/// the host's others.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    /// cgroup2, mounted from inside the container's cgroup namespace (whose
    /// root is the container's cgroup).
    Unified,
    /// Per v1 controller, the host directory of the container's own cgroup,
    /// bound read-only on a tmpfs (as runc does on v1).
    Controllers(Vec<(&'static str, PathBuf)>),
}

/// The view of the calling process's own cgroups: the container's PID 1
/// asks once the monitor has put it in them, before it leaves the host's
/// cgroup namespace. Only cgroups of container `id` are ever shown: a
/// controller it is not in is left out.
pub fn own_view(id: &str, parent: Option<&str>) -> io::Result<View> {
    if is_v2_root() {
        return Ok(View::Unified);
    }
    let suffix = match parent {
        Some(p) => format!("/{}/{id}", parent_names(p)?.join("/")),
        None => format!("/stack/{id}"),
    };
    Ok(view_from(
        &fs::read_to_string("/proc/self/cgroup")?,
        &suffix,
        Path::new(ROOT),
    ))
}

/// Per controller, the cgroup of ours whose path ends in `suffix` (the
/// container's own: `/stack/ID` or `/PARENT/ID`).
fn view_from(proc_self_cgroup: &str, suffix: &str, root: &Path) -> View {
    View::Controllers(
        V1_CONTROLLERS
            .into_iter()
            .filter(|c| root.join(c).exists())
            .filter_map(|c| {
                let p = own_path(proc_self_cgroup, Some(c))?;
                p.ends_with(suffix)
                    .then(|| (c, root.join(c).join(p.trim_start_matches('/'))))
            })
            .collect(),
    )
}

/// Whether the host's cgroups are unified (v2): containers then get a
/// cgroup namespace of their own.
pub fn unified() -> bool {
    is_v2_root()
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::other(format!(
            "cannot set {}/{file} to `{value}`: {e}",
            dir.display()
        ))
    })
}

/// cpuset children start empty: copy cpus and mems down from the nearest
/// ancestor that has them, before any task joins.
fn inherit_cpuset(dir: &Path) -> io::Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut chain = vec![dir.to_path_buf()];
        let mut cur = dir.parent();
        while let Some(p) = cur {
            if !p.join(file).exists() {
                break;
            }
            chain.push(p.to_path_buf());
            let v = fs::read_to_string(p.join(file)).unwrap_or_default();
            if !v.trim().is_empty() {
                break;
            }
            cur = p.parent();
        }
        let value = chain
            .last()
            .map(|p| fs::read_to_string(p.join(file)).unwrap_or_default())
            .unwrap_or_default();
        for p in chain.iter().rev().skip(1) {
            if fs::read_to_string(p.join(file))
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                write(p, file, value.trim())?;
            }
        }
    }
    Ok(())
}

/// `pids.max` for a limit; a negative one means none.
fn pids_max(p: i64) -> String {
    if p < 0 {
        "max".to_string()
    } else {
        p.to_string()
    }
}

/// Makes the cgroups of `spec` at `layout` ([`create`]), with its limits
/// and device rules.
pub fn make(spec: &crate::Spec, layout: &Layout) -> io::Result<()> {
    let rules: Vec<String> = (spec.devices.iter().map(crate::spec::Device::rule))
        .chain(spec.device_rules.iter().cloned())
        .collect();
    create(layout, &spec.limits, spec.privileged, &rules)
}

/// The cgroups of `spec` gone, where its monitor ended before it could
/// take them away (best effort: a monitor that ran removed them).
pub fn remove_of(spec: &crate::Spec) {
    if let Ok(layout) = layout_of(spec) {
        remove(&layout);
    }
}

/// Creates the cgroups with their limits; unless `all_devices`
/// (privileged), their devices are [`ALLOWED_DEVICES`] and the rules of
/// `devices`. Nobody is in them yet: the process to be the container's
/// first joins them itself ([`join_self`]).
fn create(
    layout: &Layout,
    limits: &Limits,
    all_devices: bool,
    devices: &[String],
) -> io::Result<()> {
    match layout {
        Layout::V1(dirs) => {
            for (c, dir) in dirs {
                fs::create_dir_all(dir)?;
                match *c {
                    "cpuset" => inherit_cpuset(dir)?,
                    "devices" if !all_devices => {
                        write(dir, "devices.deny", "a")?;
                        for rule in ALLOWED_DEVICES
                            .iter()
                            .copied()
                            .chain(devices.iter().map(String::as_str))
                        {
                            write(dir, "devices.allow", rule)?;
                        }
                    }
                    _ => {}
                }
                write_v1(c, dir, limits)?;
            }
        }
        Layout::V2(dir) => {
            fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent() {
                // Best effort: the parent may already delegate them.
                let _ = write(
                    parent,
                    "cgroup.subtree_control",
                    "+memory +pids +cpu +cpuset +io",
                );
            }
            write_v2(dir, limits)?;
        }
    }
    Ok(())
}

/// Sets the limits `limits` gives (the others stay) on a container's
/// cgroups as it runs (`container update`).
pub fn update(layout: &Layout, limits: &Limits) -> io::Result<()> {
    match layout {
        Layout::V1(dirs) => {
            for (c, dir) in dirs {
                write_v1(c, dir, limits)?;
            }
            Ok(())
        }
        Layout::V2(dir) => write_v2(dir, limits),
    }
}

/// The limits of controller `c` (v1) in `dir`.
fn write_v1(c: &str, dir: &Path, limits: &Limits) -> io::Result<()> {
    match c {
        "cpuset" => {
            if let Some(cpus) = &limits.cpuset {
                write(dir, "cpuset.cpus", cpus)?;
            }
        }
        "memory" => {
            let memsw = dir.join("memory.memsw.limit_in_bytes").exists();
            if let Some(m) = limits.memory {
                // Memory may not pass memory+swap: a raise past it moves
                // that first.
                if write(dir, "memory.limit_in_bytes", &m.to_string()).is_err() {
                    if let (Some(s), true) = (limits.memory_swap, memsw) {
                        write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                    }
                    write(dir, "memory.limit_in_bytes", &m.to_string())?;
                }
            }
            if let Some(r) = limits.memory_reservation {
                write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
            }
            if let (Some(s), true) = (limits.memory_swap, memsw) {
                write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
            if let Some(s) = limits.swappiness {
                write(dir, "memory.swappiness", &s.to_string())?;
            }
            if limits.oom_kill_disable {
                write(dir, "memory.oom_control", "1")?;
            }
        }
        "pids" => {
            if let Some(p) = limits.pids {
                write(dir, "pids.max", &pids_max(p))?;
            }
        }
        "blkio" => {
            for t in &limits.io {
                for (file, line) in t.v1() {
                    write(dir, file, &line)?;
                }
            }
            write_weights(dir, limits, V1_WEIGHTS, |w| w.to_string())?;
        }
        "cpu" => {
            if let Some(cpus) = limits.cpus {
                write(dir, "cpu.cfs_period_us", "100000")?;
                write(
                    dir,
                    "cpu.cfs_quota_us",
                    &((cpus * 100_000.0) as i64).to_string(),
                )?;
            }
            if let Some(s) = limits.cpu_shares {
                write(dir, "cpu.shares", &s.to_string())?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The limits in the container's cgroup (v2) `dir`.
fn write_v2(dir: &Path, limits: &Limits) -> io::Result<()> {
    if let Some(m) = limits.memory {
        write(dir, "memory.max", &m.to_string())?;
    }
    if let Some(r) = limits.memory_reservation {
        write(dir, "memory.low", &r.to_string())?;
    }
    if let (Some(s), Some(m)) = (limits.memory_swap, limits.memory) {
        let swap = if s < 0 {
            "max".to_string()
        } else {
            (s - m).max(0).to_string()
        };
        write(dir, "memory.swap.max", &swap)?;
    }
    if let Some(p) = limits.pids {
        write(dir, "pids.max", &pids_max(p))?;
    }
    for t in &limits.io {
        write(dir, "io.max", &t.v2())?;
    }
    write_weights(dir, limits, &["io.bfq.weight", "io.weight"], |w| {
        format!("default {w}")
    })?;
    if let Some(cpus) = limits.cpus {
        write(
            dir,
            "cpu.max",
            &format!("{} 100000", (cpus * 100_000.0) as i64),
        )?;
    }
    if let Some(s) = limits.cpu_shares {
        // v1 shares (2..262144) to v2 weight (1..10000), as runc converts them.
        let weight = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
        write(dir, "cpu.weight", &weight.to_string())?;
    }
    if let Some(cpus) = &limits.cpuset {
        write(dir, "cpuset.cpus", cpus)?;
    }
    Ok(())
}

/// Every directory of the container's cgroups.
fn dirs(layout: &Layout) -> Vec<&PathBuf> {
    match layout {
        Layout::V1(d) => d.iter().map(|(_, p)| p).collect(),
        Layout::V2(d) => vec![d],
    }
}

/// Moves the calling process into the container's existing cgroups.
///
/// Writing a process to `cgroup.procs` takes a lock that waits out an RCU
/// grace period, 5 to 15 ms here, for every container start and exec. A
/// single-threaded process moving its only thread (`0` written to v1's
/// `tasks`, "the caller") needs no such lock, and moves the whole process:
/// so the caller does that while it has one thread, and falls back to
/// `cgroup.procs` otherwise (and on v2, which has no `tasks`).
pub fn join_self(layout: &Layout) -> io::Result<()> {
    let single = fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1);
    let (file, who) = match layout {
        Layout::V1(_) if single => ("tasks", "0".to_string()),
        _ => ("cgroup.procs", std::process::id().to_string()),
    };
    // Containers started before blkio and devices were joined have no such cgroups.
    let optional = match layout {
        Layout::V1(_) => vec![v1_dir(layout, "blkio"), v1_dir(layout, "devices")],
        Layout::V2(_) => Vec::new(),
    };
    for d in dirs(layout) {
        if optional.contains(&Some(d)) && !d.exists() {
            continue;
        }
        write(d, file, &who)?;
    }
    Ok(())
}

fn v1_dir<'a>(layout: &'a Layout, controller: &str) -> Option<&'a PathBuf> {
    match layout {
        Layout::V1(d) => d.iter().find(|(c, _)| *c == controller).map(|(_, p)| p),
        Layout::V2(d) => Some(d),
    }
}

fn read_num(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills every process in the container's cgroups, until none is left
/// (or about five seconds have passed).
pub fn kill_all(layout: &Layout) {
    use nix::sys::signal::{kill, Signal};
    for _ in 0..500 {
        let left = procs(layout);
        if left.is_empty() {
            return;
        }
        for p in left {
            let _ = kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Host pids of every process in the container.
pub fn procs(layout: &Layout) -> Vec<u32> {
    let dir = v1_dir(layout, "pids").or_else(|| v1_dir(layout, "memory"));
    let text = dir
        .and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// What the container uses now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_nanos: u64,
    /// In use, less the page cache that could be dropped (inactive files),
    /// as Docker counts it.
    pub memory: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
    /// Bytes read from and written to block devices.
    pub block_read: u64,
    pub block_write: u64,
}

/// A `key value` line's value in a stat file.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub fn usage(layout: &Layout) -> Usage {
    let text = |dir: Option<&PathBuf>, file: &str| {
        dir.and_then(|d| fs::read_to_string(d.join(file)).ok())
            .unwrap_or_default()
    };
    match layout {
        Layout::V1(_) => {
            let mem = v1_dir(layout, "memory");
            let limit = mem
                .and_then(|d| read_num(&d.join("memory.limit_in_bytes")))
                .filter(|l| *l < (1 << 62));
            let used = mem
                .and_then(|d| read_num(&d.join("memory.usage_in_bytes")))
                .unwrap_or(0);
            let inactive =
                stat_value(&text(mem, "memory.stat"), "total_inactive_file").unwrap_or(0);
            // `8:0 Read 4096` lines (and a `Total` one).
            let io = text(
                v1_dir(layout, "blkio"),
                "blkio.throttle.io_service_bytes_recursive",
            );
            let sum = |op: &str| -> u64 {
                io.lines()
                    .filter_map(|l| {
                        let mut f = l.split_whitespace();
                        let (_, o, n) = (f.next()?, f.next()?, f.next()?);
                        (o == op).then(|| n.parse::<u64>().ok()).flatten()
                    })
                    .sum()
            };
            Usage {
                cpu_nanos: v1_dir(layout, "cpuacct")
                    .and_then(|d| read_num(&d.join("cpuacct.usage")))
                    .unwrap_or(0),
                memory: used.saturating_sub(inactive),
                memory_limit: limit,
                pids: v1_dir(layout, "pids")
                    .and_then(|d| read_num(&d.join("pids.current")))
                    .unwrap_or(0),
                block_read: sum("Read"),
                block_write: sum("Write"),
            }
        }
        Layout::V2(d) => {
            let dir = Some(d);
            let inactive = stat_value(&text(dir, "memory.stat"), "inactive_file").unwrap_or(0);
            // `8:0 rbytes=4096 wbytes=0 rios=1 …` per device.
            let io = text(dir, "io.stat");
            let sum = |key: &str| -> u64 {
                io.split_whitespace()
                    .filter_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
                    .sum()
            };
            Usage {
                cpu_nanos: stat_value(&text(dir, "cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
                memory: read_num(&d.join("memory.current"))
                    .unwrap_or(0)
                    .saturating_sub(inactive),
                memory_limit: read_num(&d.join("memory.max")),
                pids: read_num(&d.join("pids.current")).unwrap_or(0),
                block_read: sum("rbytes"),
                block_write: sum("wbytes"),
            }
        }
    }
}

/// Freezes (pause) or thaws (unpause) every process of the container. A
/// freeze returns once every process is frozen (the kernel gets there
/// after the write: `FREEZING`, `frozen 0`), or fails after 10 seconds.
pub fn freeze(layout: &Layout, frozen: bool) -> io::Result<()> {
    let (dir, file, done): (&Path, &str, fn(&str) -> bool) = match layout {
        Layout::V1(_) => {
            let d = v1_dir(layout, "freezer")
                .ok_or_else(|| match none_of_ours() {
                    true => io::Error::other(
                        "a rootless engine without cgroups of its own cannot pause containers (it needs a cgroup v2 subtree delegated to the user)",
                    ),
                    false => io::Error::other("no freezer cgroup on this host"),
                })?;
            write(d, "freezer.state", if frozen { "FROZEN" } else { "THAWED" })?;
            (d, "freezer.state", |s| s.trim() == "FROZEN")
        }
        Layout::V2(d) => {
            write(d, "cgroup.freeze", if frozen { "1" } else { "0" })?;
            (d, "cgroup.events", |s| s.lines().any(|l| l == "frozen 1"))
        }
    };
    if !frozen {
        return Ok(());
    }
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fs::read_to_string(dir.join(file)).is_ok_and(|s| done(&s)) {
        if std::time::Instant::now() > give_up {
            return Err(io::Error::other(format!(
                "`{}`: its processes did not all freeze within 10 s",
                dir.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

pub fn is_frozen(layout: &Layout) -> bool {
    match layout {
        Layout::V1(_) => v1_dir(layout, "freezer")
            .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() == "FROZEN"),
        Layout::V2(d) => fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"),
    }
}

/// Whether the kernel OOM-killed a process of the container.
pub fn oom_killed(layout: &Layout) -> bool {
    let count = |file: PathBuf| {
        stat_value(&fs::read_to_string(file).unwrap_or_default(), "oom_kill").unwrap_or(0)
    };
    match layout {
        Layout::V1(dirs) => dirs
            .iter()
            .filter(|(c, _)| *c == "memory")
            .any(|(_, d)| count(d.join("memory.oom_control")) > 0),
        Layout::V2(d) => count(d.join("memory.events")) > 0,
    }
}

/// Removes the container's cgroups (they must be empty). Collects errors and goes on.
pub fn remove(layout: &Layout) -> Vec<io::Error> {
    let mut errors = Vec::new();
    for d in dirs(layout) {
        if !d.exists() {
            continue;
        }
        // A dying process may linger for a moment after its parent reaped it.
        let mut last = None;
        for _ in 0..50 {
            match fs::remove_dir(d) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
        if let Some(e) = last {
            errors.push(io::Error::other(format!(
                "cannot remove cgroup {}: {e}",
                d.display()
            )));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory standing in for cgroupfs: the files `create` writes are plain files.
    fn fake_root(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("stack-cgroup-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    fn limits() -> Limits {
        Limits {
            memory: Some(64 << 20),
            memory_reservation: Some(32 << 20),
            memory_swap: Some(128 << 20),
            cpus: Some(1.5),
            cpu_shares: Some(512),
            cpuset: None,
            pids: Some(-1),
            swappiness: None,
            oom_kill_disable: false,
            io: Vec::new(),
            ..Limits::default()
        }
    }

    #[test]
    fn weights_go_to_bfqs_file_or_the_controllers() {
        let dir = fake_root("weights");
        let mut l = limits();
        l.io_weight = Some(300);
        l.io_weight_devices = vec![(8, 0, 500)];
        // No weight file: said, nothing written.
        let err = write_weights(&dir, &l, V1_WEIGHTS, |w| w.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("no block I/O weight file"),
            "{err}"
        );
        fs::write(dir.join("blkio.weight"), "").unwrap();
        fs::write(dir.join("blkio.weight_device"), "").unwrap();
        write_weights(&dir, &l, V1_WEIGHTS, |w| w.to_string()).unwrap();
        assert_eq!(read(&dir.join("blkio.weight")), "300");
        assert_eq!(read(&dir.join("blkio.weight_device")), "8:0 500");
        // v2: one file for both, the default as `default N`.
        fs::write(dir.join("io.bfq.weight"), "").unwrap();
        write_weights(&dir, &l, &["io.bfq.weight", "io.weight"], |w| {
            format!("default {w}")
        })
        .unwrap();
        assert_eq!(read(&dir.join("io.bfq.weight")), "8:0 500");
        // Nothing asked: nothing needed.
        write_weights(Path::new("/nonexistent"), &limits(), V1_WEIGHTS, |w| {
            w.to_string()
        })
        .unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn v1_writes_each_controller_and_inherits_cpuset() {
        let root = fake_root("v1");
        let dir = |c: &str| root.join(c).join("own/stack/c1");
        // The parent of ours holds cpus and mems; our `stack` level starts empty.
        fs::create_dir_all(root.join("cpuset/own/stack")).unwrap();
        fs::write(root.join("cpuset/own/cpuset.cpus"), "0-1\n").unwrap();
        fs::write(root.join("cpuset/own/cpuset.mems"), "0\n").unwrap();
        fs::write(root.join("cpuset/own/stack/cpuset.cpus"), "").unwrap();
        fs::write(root.join("cpuset/own/stack/cpuset.mems"), "").unwrap();
        fs::create_dir_all(dir("cpuset")).unwrap();
        fs::write(dir("cpuset").join("cpuset.cpus"), "").unwrap();
        fs::write(dir("cpuset").join("cpuset.mems"), "").unwrap();
        fs::create_dir_all(dir("memory")).unwrap();
        fs::write(dir("memory").join("memory.memsw.limit_in_bytes"), "").unwrap();
        let layout = Layout::V1(
            ["memory", "pids", "cpu", "cpuset", "devices"]
                .into_iter()
                .map(|c| (c, dir(c)))
                .collect(),
        );
        create(&layout, &limits(), false, &["c 10:200 rwm".into()]).unwrap();
        // Every device denied first (each rule overwrites the stand-in file:
        // the real controller adds them up; tests/isolation.rs opens nodes),
        // the extra device's rule last.
        assert_eq!(read(&dir("devices").join("devices.deny")), "a");
        assert_eq!(read(&dir("devices").join("devices.allow")), "c 10:200 rwm");
        assert_eq!(
            read(&dir("memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(
            read(&dir("memory").join("memory.soft_limit_in_bytes")),
            "33554432"
        );
        assert_eq!(
            read(&dir("memory").join("memory.memsw.limit_in_bytes")),
            "134217728"
        );
        assert_eq!(read(&dir("pids").join("pids.max")), "max");
        assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "150000");
        assert_eq!(read(&dir("cpu").join("cpu.shares")), "512");
        assert_eq!(read(&root.join("cpuset/own/stack/cpuset.cpus")), "0-1");
        assert_eq!(read(&dir("cpuset").join("cpuset.cpus")), "0-1");
        assert_eq!(read(&dir("cpuset").join("cpuset.mems")), "0");
        // Nobody is moved in: the container's first process joins itself.
        for c in ["memory", "pids", "cpu", "cpuset", "devices"] {
            assert!(!dir(c).join("cgroup.procs").exists(), "{c}");
            assert!(!dir(c).join("tasks").exists(), "{c}");
        }
        // The test harness runs threads: its whole process goes by
        // cgroup.procs, not its one thread by `tasks`.
        join_self(&layout).unwrap();
        for c in ["memory", "pids", "cpu", "cpuset", "devices"] {
            let procs = read(&dir(c).join("cgroup.procs"));
            assert_eq!(procs, std::process::id().to_string(), "{c}");
            assert!(!dir(c).join("tasks").exists(), "{c}");
        }
        // A privileged container keeps every device.
        let layout = Layout::V1(vec![("devices", root.join("devices/own/stack/c2"))]);
        create(&layout, &limits(), true, &[]).unwrap();
        assert!(!root.join("devices/own/stack/c2/devices.deny").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn v2_writes_the_unified_files() {
        let root = fake_root("v2");
        let dir = root.join("own/stack/c1");
        let layout = Layout::V2(dir.clone());
        create(
            &layout,
            &Limits {
                cpuset: Some("1".into()),
                pids: Some(100),
                io: vec![IoThrottle {
                    major: 8,
                    minor: 0,
                    read_bps: Some(1 << 20),
                    write_iops: Some(100),
                    ..Default::default()
                }],
                ..limits()
            },
            false,
            &[],
        )
        .unwrap();
        assert_eq!(
            read(&root.join("own/stack/cgroup.subtree_control")),
            "+memory +pids +cpu +cpuset +io"
        );
        assert_eq!(
            read(&dir.join("io.max")),
            "8:0 rbps=1048576 wbps=max riops=max wiops=100"
        );
        assert_eq!(read(&dir.join("memory.max")), "67108864");
        assert_eq!(read(&dir.join("memory.low")), "33554432");
        assert_eq!(read(&dir.join("memory.swap.max")), "67108864");
        assert_eq!(read(&dir.join("cpu.max")), "150000 100000");
        assert_eq!(read(&dir.join("cpu.weight")), "20");
        assert_eq!(read(&dir.join("pids.max")), "100");
        assert_eq!(read(&dir.join("cpuset.cpus")), "1");
        assert!(!dir.join("cgroup.procs").exists());
        join_self(&layout).unwrap();
        assert_eq!(
            read(&dir.join("cgroup.procs")),
            std::process::id().to_string()
        );
        fs::write(dir.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        assert!(oom_killed(&layout));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn usage_reads_both_layouts_as_docker_counts() {
        let root = fake_root("usage");
        let dir = |c: &str| root.join(c);
        let files = [
            ("cpuacct", "cpuacct.usage", "2500000000\n"),
            ("memory", "memory.usage_in_bytes", "10485760\n"),
            ("memory", "memory.limit_in_bytes", "9223372036854771712\n"),
            (
                "memory",
                "memory.stat",
                "cache 3\ntotal_inactive_file 2097152\n",
            ),
            ("pids", "pids.current", "3\n"),
            (
                "blkio",
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 512\n8:16 Read 1024\n8:0 Total 5632\nTotal 5632\n",
            ),
        ];
        for (c, f, text) in files {
            fs::create_dir_all(dir(c)).unwrap();
            fs::write(dir(c).join(f), text).unwrap();
        }
        let v1 = Layout::V1(
            ["cpuacct", "memory", "pids", "blkio"]
                .into_iter()
                .map(|c| (c, dir(c)))
                .collect(),
        );
        let want = Usage {
            cpu_nanos: 2_500_000_000,
            memory: 8 << 20,
            memory_limit: None,
            pids: 3,
            block_read: 5120,
            block_write: 512,
        };
        assert_eq!(usage(&v1), want);
        let v2 = root.join("v2");
        fs::create_dir_all(&v2).unwrap();
        for (f, text) in [
            ("cpu.stat", "usage_usec 2500000\nuser_usec 1\n"),
            ("memory.current", "10485760\n"),
            ("memory.max", "max\n"),
            ("memory.stat", "anon 1\ninactive_file 2097152\n"),
            ("pids.current", "3\n"),
            (
                "io.stat",
                "8:0 rbytes=4096 wbytes=512 rios=1 wios=1\n8:16 rbytes=1024 wbytes=0\n",
            ),
        ] {
            fs::write(v2.join(f), text).unwrap();
        }
        assert_eq!(usage(&Layout::V2(v2)), want);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_view_holds_the_containers_own_cgroups_only() {
        let root = fake_root("view");
        for c in ["memory", "pids", "cpu", "devices"] {
            fs::create_dir_all(root.join(c)).unwrap();
        }
        // pids: still the host's root (not joined): never shown.
        let text = "9:devices:/\n4:memory:/api/x/stack/c1\n3:pids:/\n1:cpu:/stack/c1\n0::/\n";
        assert_eq!(
            view_from(text, "/stack/c1", &root),
            View::Controllers(vec![
                ("memory", root.join("memory/api/x/stack/c1")),
                ("cpu", root.join("cpu/stack/c1")),
            ])
        );
        // Under a cgroup parent: only that path's.
        let text = "4:memory:/team/a/c1\n1:cpu:/stack/c1\n0::/\n";
        assert_eq!(
            view_from(text, "/team/a/c1", &root),
            View::Controllers(vec![("memory", root.join("memory/team/a/c1"))])
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_cgroup_parent_is_plain_names() {
        assert_eq!(parent_names("/team/a/").unwrap(), ["team", "a"]);
        assert_eq!(parent_names("team").unwrap(), ["team"]);
        for bad in ["../x", "a/../../b", "a//b", "", "/", "a/./b"] {
            assert!(parent_names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_paths_from_proc_self_cgroup() {
        let text = "9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n1:cpu,cpuacct:/x\n0::/user.slice\n";
        assert_eq!(
            own_path(text, Some("memory")).as_deref(),
            Some("/process_api/abc")
        );
        assert_eq!(own_path(text, Some("cpu")).as_deref(), Some("/x"));
        assert_eq!(own_path(text, None).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(text, Some("pids")), None);
    }
}
