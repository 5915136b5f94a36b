//! Containers on the host: found by name or id from the state their
//! monitors write; started, stopped, signalled, frozen and removed; their
//! processes as `ps` shows them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use stack_runtime::{State, Status};

use crate::{Host, HostError};

/// Every container under `root`, with its state (or why it cannot be read).
pub fn all(root: &Path) -> Vec<(PathBuf, anyhow::Result<State>)> {
    let Ok(entries) = std::fs::read_dir(root.join("containers")) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, anyhow::Result<State>)> =
        entries.flatten().filter_map(|e| read(e.path())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The container of directory `p`, as [`all`] lists it (None for what is
/// not one, or not one yet).
pub fn read(p: PathBuf) -> Option<(PathBuf, anyhow::Result<State>)> {
    if !p.is_dir() {
        return None;
    }
    match stack_runtime::state::read(&p) {
        // Being created (or cut short: the engine sweeps those).
        Err(stack_runtime::state::StateError::Missing(_)) => None,
        // Damaged: rebuilt from its spec and what the kernel shows, so
        // that it is listed, stopped and removed like any other. (Not
        // one that could not be read for a passing reason.)
        Err(damaged @ stack_runtime::state::StateError::Corrupt { .. }) => {
            let st = stack_runtime::state::rebuild(&p, damaged);
            match &st {
                Ok(st) => tracing::warn!(
                    container = %st.name,
                    "state rebuilt; the damaged record is kept as {}",
                    st.rebuilt.as_deref().unwrap_or_default()
                ),
                Err(e) => tracing::error!("{e}"),
            }
            Some((p, st.map_err(anyhow::Error::from)))
        }
        st => Some((p, st.map_err(anyhow::Error::from))),
    }
}

/// The containers carrying a project's label (of `project`, or of any),
/// and whether each runs.
pub fn project_containers(root: &Path, project: Option<&str>) -> Vec<(State, bool)> {
    every(root)
        .into_iter()
        .filter(|(st, _)| of_project(st, project))
        .collect()
}

/// Whether a container carries the label of `project` (of any, for None).
pub fn of_project(st: &State, project: Option<&str>) -> bool {
    st.spec
        .labels
        .get(stack_plan::LABEL_PROJECT)
        .is_some_and(|p| project.is_none_or(|want| p == want))
}

/// Every container whose state reads, and whether each runs.
pub fn every(root: &Path) -> Vec<(State, bool)> {
    all(root)
        .into_iter()
        .filter_map(|(_, st)| st.ok())
        .map(|st| {
            let r = running(&st);
            (st, r)
        })
        .collect()
}

/// A container by name, full id or unique id prefix.
pub fn find(root: &Path, key: &str) -> anyhow::Result<(PathBuf, State)> {
    // A full id names its directory: no need to read every container's
    // record (an engine removing N containers by id would read N²).
    if key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        if let Some((dir, st)) = read(stack_runtime::container_dir(root, key)) {
            return Ok((dir, st.with_context(|| format!("container `{key}`"))?));
        }
    }
    let mut matches = Vec::new();
    for (dir, st) in all(root) {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let by_id = id == key || (key.len() >= 3 && id.starts_with(key));
        match st {
            Ok(st) if st.name == key || by_id => matches.push((dir, st)),
            Err(e) if by_id => return Err(e.context(format!("container `{key}`"))),
            _ => {}
        }
    }
    match matches.len() {
        0 => Err(HostError::NotFound(format!("no such container: `{key}`")).into()),
        1 => Ok(matches.remove(0)),
        n => Err(HostError::Invalid(format!(
            "`{key}` matches {n} containers: use more of the id"
        ))
        .into()),
    }
}

pub fn ensure_name_free(root: &Path, name: &str) -> anyhow::Result<()> {
    for (_, st) in all(root) {
        if let Ok(st) = st {
            if st.name == name {
                return Err(HostError::Conflict(format!(
                    "the container name `{name}` is already in use by container {}: remove it first",
                    &st.id[..12]
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// Gives a container another name (running or not): its state and the
/// name its networks' DNS answers for. Returns the old name.
pub fn rename(host: &Host, key: &str, name: &str) -> anyhow::Result<String> {
    let root = host.root();
    let (dir, mut st) = find(root, key)?;
    ensure_name_free(root, name)?;
    let old = std::mem::replace(&mut st.name, name.to_string());
    st.spec.name = name.to_string();
    stack_runtime::state::write(&dir, &st)
        .with_context(|| format!("cannot write `{}`", dir.display()))?;
    let store = host.networks()?;
    let _lock = store.lock()?;
    for mut ep in store.container_endpoints(&st.id)? {
        ep.name = name.to_string();
        store.put_endpoint(&ep)?;
    }
    Ok(old)
}

/// New limits for a container (`container update`): those given are set
/// on its cgroups if it runs, and kept in its record either way (a
/// restart applies them again).
pub fn update(
    host: &Host,
    key: &str,
    new: &stack_runtime::cgroup::Limits,
) -> anyhow::Result<String> {
    let root = host.root();
    let (dir, mut st) = find(root, key)?;
    if running(&st) {
        // Memory and swap go together (v2 sets swap as the difference).
        let mut apply = new.clone();
        if apply.memory.is_some() || apply.memory_swap.is_some() {
            apply.memory = apply.memory.or(st.spec.limits.memory);
            apply.memory_swap = apply.memory_swap.or(st.spec.limits.memory_swap);
        }
        let layout = stack_runtime::cgroup::layout_of(&st.spec)
            .with_context(|| format!("container {}: its cgroups", st.name))?;
        stack_runtime::cgroup::update(&layout, &apply)
            .with_context(|| format!("container {}", st.name))?;
    }
    let l = &mut st.spec.limits;
    fn keep<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    keep(&mut l.memory, &new.memory);
    keep(&mut l.memory_reservation, &new.memory_reservation);
    keep(&mut l.memory_swap, &new.memory_swap);
    keep(&mut l.cpus, &new.cpus);
    keep(&mut l.cpu_shares, &new.cpu_shares);
    keep(&mut l.cpuset, &new.cpuset);
    keep(&mut l.pids, &new.pids);
    keep(&mut l.io_weight, &new.io_weight);
    stack_runtime::state::write(&dir, &st)
        .with_context(|| format!("cannot write `{}`", dir.display()))?;
    Ok(st.name)
}

/// Running, exited, or lost (its PID 1 is gone without an exit record).
pub fn status_text(st: &State) -> String {
    let text = status_text_of(st);
    match st.rebuilt {
        Some(_) => format!("{text} (record rebuilt)"),
        None => text,
    }
}

fn status_text_of(st: &State) -> String {
    match st.status {
        Status::Running if stack_runtime::state::alive(st) => {
            if is_paused(st) {
                "Up (Paused)".into()
            } else {
                "Up".into()
            }
        }
        Status::Running => "Dead (exit not recorded)".into(),
        Status::Created => "Created".into(),
        Status::Exited => {
            let oom = if st.oom_killed { ", OOM killed" } else { "" };
            format!("Exited ({}){oom}", st.exit_code.unwrap_or(-1))
        }
    }
}

/// Thaws a frozen (paused) container, so that signals reach it.
fn thaw(st: &State) {
    if let Ok(l) = stack_runtime::cgroup::layout_of(&st.spec) {
        if stack_runtime::cgroup::is_frozen(&l) {
            let _ = stack_runtime::cgroup::freeze(&l, false);
        }
    }
}

pub fn is_paused(st: &State) -> bool {
    stack_runtime::cgroup::layout_of(&st.spec).is_ok_and(|l| stack_runtime::cgroup::is_frozen(&l))
}

/// Ended, but its exit not recorded yet: its monitor is still writing out
/// what the container printed last (the log is not complete until then).
pub fn recording(st: &State) -> bool {
    st.status != Status::Exited
        && st.monitor_pid > 0
        && stack_runtime::state::process_running(st.monitor_pid)
}

pub fn running(st: &State) -> bool {
    // Being set up counts: its PID 1 and monitor exist (a container only
    // created has neither).
    matches!(st.status, Status::Running | Status::Created) && stack_runtime::state::alive(st)
}

pub fn parse_signal(s: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow::anyhow!("unknown signal `{s}`"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .map_err(|_| anyhow::anyhow!("unknown signal `{s}`"))
}

fn signal(st: &State, sig: Signal) -> anyhow::Result<()> {
    if !running(st) {
        return Err(not_running(st));
    }
    nix::sys::signal::kill(Pid::from_raw(st.pid), sig)
        .with_context(|| format!("cannot signal container `{}`", st.name))
}

/// Waits until the monitor has recorded the exit (or the process is gone).
fn wait_exited(dir: &Path, timeout: Duration) -> Option<State> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        match stack_runtime::state::read(dir) {
            Ok(st) if st.status == Status::Exited => return Some(st),
            Ok(st) if !stack_runtime::state::alive(&st) && !pid_alive(st.monitor_pid) => {
                return Some(st)
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    None
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// Starts a stopped container again, in place: the same id, writable
/// layer, network namespace (and so addresses) and log. Returns its name.
pub fn start_again(root: &Path, key: &str) -> anyhow::Result<String> {
    let (_, st) = find(root, key)?;
    if running(&st) {
        return Ok(st.name);
    }
    if let stack_runtime::NetworkMode::Path(netns) = &st.spec.network {
        if !stack_net::netns_alive(netns) {
            bail!(
                "container `{}` lost its network namespace: recreate it (stack up --force-recreate)",
                st.name
            );
        }
    }
    // One a foreground `run --rm` left (its caller killed) is no longer
    // removed by anyone: its exit is kept as any other.
    let spec = stack_runtime::Spec {
        caller_removes: false,
        ..st.spec.clone()
    };
    start_detached(&spec, root)?;
    Ok(st.name)
}

/// Creates a container, not started; until it is, no restart policy (nor
/// an engine's boot) starts it: it carries the stopped-by-user marker.
pub fn create(spec: &stack_runtime::Spec, root: &Path) -> anyhow::Result<State> {
    let st =
        stack_runtime::create(spec, root).with_context(|| format!("container `{}`", spec.name))?;
    mark_stopped(&stack_runtime::container_dir(root, &spec.id), true)?;
    Ok(st)
}

/// Starts a container in the background; a setup that failed (exit 125)
/// is reported with the monitor's last log record, which says why.
pub fn start_detached(spec: &stack_runtime::Spec, root: &Path) -> anyhow::Result<State> {
    mark_stopped(&stack_runtime::container_dir(root, &spec.id), false)?;
    let st =
        stack_runtime::start(spec, root).with_context(|| format!("container `{}`", spec.name))?;
    if st.status == Status::Exited && st.exit_code == Some(125) {
        let dir = stack_runtime::container_dir(root, &spec.id);
        let records = stack_runtime::logs::Follower::new(stack_runtime::state::log_path(&dir))
            .tail(1, |_| true);
        let why = records.last().map_or("", |r| r.log.trim());
        bail!("container `{}` failed to start: {why}", spec.name);
    }
    Ok(st)
}

/// Stops then removes a container (`stack down`); returns its name.
pub fn stop_and_remove(host: &Host, key: &str, grace: Option<u64>) -> anyhow::Result<String> {
    stop_one(host.root(), key, grace)?;
    remove_one(host, key, true)
}

/// Stops (as `stop_one`) and starts again in place; returns the name.
pub fn restart_one(root: &Path, key: &str, grace: Option<u64>) -> anyhow::Result<String> {
    stop_one(root, key, grace)?;
    start_again(root, key)
}

/// The signal, the grace period, then SIGKILL; returns the name.
pub fn stop_one(root: &Path, key: &str, grace: Option<u64>) -> anyhow::Result<String> {
    let (dir, st) = find(root, key)?;
    if !running(&st) {
        return Ok(st.name);
    }
    let grace = grace.or(st.spec.stop_timeout).unwrap_or(10);
    let sig = parse_signal(st.spec.stop_signal.as_deref().unwrap_or("TERM"))?;
    mark_stopped(&dir, true)?;
    // A frozen container takes no signal: it is thawed to be stopped.
    thaw(&st);
    // PID 1 is our init (unless --no-init): it passes the signal to the app.
    signal(&st, sig)?;
    if wait_exited(&dir, Duration::from_secs(grace)).is_none() {
        // The whole PID namespace dies with its PID 1.
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
        if wait_exited(&dir, Duration::from_secs(5)).is_none() {
            bail!("container `{}` did not stop", st.name);
        }
    }
    Ok(st.name)
}

/// Sends a running container a signal; returns its name.
pub fn kill_one(root: &Path, key: &str, sig: &str) -> anyhow::Result<String> {
    let (_, st) = find(root, key)?;
    if !running(&st) {
        return Err(not_running(&st));
    }
    let sig = parse_signal(sig)?;
    if matches!(sig, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
        mark_stopped(&stack_runtime::container_dir(root, &st.id), true)?;
    }
    signal(&st, sig)?;
    Ok(st.name)
}

/// The marker of a container a user stopped (`stop`, `kill`, `down`):
/// restart policies leave it stopped. Starting it again clears it.
pub fn stopped_by_user(dir: &Path) -> bool {
    dir.join(STOPPED).exists()
}

const STOPPED: &str = "stopped-by-user";

fn mark_stopped(dir: &Path, stopped: bool) -> anyhow::Result<()> {
    let path = dir.join(STOPPED);
    let done = if stopped {
        std::fs::write(&path, b"")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    done.with_context(|| format!("cannot write `{}`", path.display()))
}

/// Removes a container (killing it first with `force`); returns its name.
pub fn remove_one(host: &Host, key: &str, force: bool) -> anyhow::Result<String> {
    let root = host.root();
    let (dir, st) = match find(root, key) {
        Ok(found) => found,
        Err(e)
            if force
                && matches!(
                    e.downcast_ref::<stack_runtime::state::StateError>(),
                    Some(stack_runtime::state::StateError::Unrebuildable { .. })
                ) =>
        {
            return remove_unreadable(host, key).unwrap_or(Err(e))
        }
        Err(e) => return Err(e),
    };
    if running(&st) {
        if !force {
            return Err(HostError::Conflict(format!(
                "container `{}` is running: stop it first, or use -f",
                st.name
            ))
            .into());
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
        // A frozen container dies only once thawed.
        thaw(&st);
        if wait_exited(&dir, Duration::from_secs(5)).is_none() {
            bail!("container `{}` did not stop", st.name);
        }
    }
    // The monitor removes the cgroups; if it was killed, nobody did.
    if let Ok(layout) = stack_runtime::cgroup::layout_of(&st.spec) {
        for e in stack_runtime::cgroup::remove(&layout) {
            tracing::warn!(container = %st.name, "{e}");
        }
    }
    if let stack_runtime::NetworkMode::Path(_) = st.spec.network {
        crate::network::unwire(host, &st.id)?;
    }
    stack_sys::remove_tree(root, &dir)?;
    Ok(st.name)
}

/// `rm -f` of a container whose record can neither be read nor rebuilt,
/// by its full id: what its id names (its processes in its cgroups, its
/// network, its directory) goes. None if there is no such directory.
fn remove_unreadable(host: &Host, id: &str) -> Option<anyhow::Result<String>> {
    let dir = stack_sys::join(&host.root().join("containers"), id).ok()?;
    if !dir.is_dir() || id.starts_with('.') {
        return None;
    }
    Some((|| {
        let layout = stack_runtime::cgroup::layout(id, None)?;
        stack_runtime::cgroup::kill_all(&layout);
        for e in stack_runtime::cgroup::remove(&layout) {
            tracing::warn!(container = %id, "{e}");
        }
        crate::network::unwire(host, id)?;
        stack_sys::remove_tree(host.root(), &dir)?;
        Ok(id.to_string())
    })())
}

/// `container exec`: `p` in the running container `key`, from this process
/// (it joins the container's namespaces); with `detach`, left running on
/// its own. The command's exit code.
pub fn exec(
    root: &Path,
    key: &str,
    p: &stack_runtime::Process,
    detach: bool,
) -> anyhow::Result<i32> {
    let st = running_state(root, key)?;
    if detach {
        stack_runtime::exec_detached(&st, p)?;
        return Ok(0);
    }
    stack_runtime::ignore_terminal_interrupts()?;
    Ok(stack_runtime::exec(&st, p)?)
}

/// Container `key`'s log, handed to `each` a chunk of records at a time:
/// with `tail`, the last N records (read from the log's end) first; without
/// `follow`, up to where the log ended when this began; with it, on until
/// the container has exited and its last records are read.
pub fn read_log(
    root: &Path,
    key: &str,
    follow: bool,
    tail: Option<usize>,
    mut each: impl FnMut(Vec<stack_runtime::logs::Record>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (dir, st) = find(root, key)?;
    if st.spec.no_log {
        // As Docker answers for its `none` driver.
        return Err(HostError::Invalid(format!(
            "container `{}`: configured logging driver does not support reading (logging: none)",
            st.name
        ))
        .into());
    }
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
            tracing::warn!(
                "{}: skipping a damaged record at byte {at}",
                log.path().display()
            );
        }
        each(records)?;
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
        // Removed while read (docker-py removes a container before it
        // reads the log it follows): what is left of its log is read on.
        let st = match stack_runtime::state::read(&dir) {
            Err(stack_runtime::state::StateError::Missing(_)) => None,
            st => Some(st?),
        };
        if !st.as_ref().is_some_and(|st| running(st) || recording(st)) {
            // One last read for what came before the exit.
            if !log.behind() {
                return Ok(());
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The state of `key`, which must be running.
pub fn running_state(root: &Path, key: &str) -> anyhow::Result<State> {
    let (_, st) = find(root, key)?;
    if !running(&st) {
        return Err(not_running(&st));
    }
    Ok(st)
}

fn running_layout(
    root: &Path,
    key: &str,
) -> anyhow::Result<(State, stack_runtime::cgroup::Layout)> {
    let st = running_state(root, key)?;
    let layout = stack_runtime::cgroup::layout_of(&st.spec)?;
    Ok((st, layout))
}

/// The processes of a running container (its cgroup's), as `ps -ef` reads
/// them from the host's /proc.
pub fn top_of(st: &State) -> stack_api::Top {
    let mut pids = stack_runtime::cgroup::layout_of(&st.spec)
        .map(|l| stack_runtime::cgroup::procs(&l))
        .unwrap_or_default();
    let ns = |pid: &str| stack_runtime::state::namespace(pid, "pid");
    if pids.is_empty()
        && st.pid > 0
        && stack_runtime::cgroup::none_of_ours()
        && ns(&st.pid.to_string()).is_some_and(|theirs| ns("self") != Some(theirs))
    {
        // No cgroups (rootless): the processes of its own PID namespace.
        pids = stack_runtime::state::in_namespace("pid", st.pid)
            .into_iter()
            .map(|p| p as u32)
            .collect();
    }
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let clock = Clock::now();
    let processes = pids
        .into_iter()
        .filter_map(|pid| {
            let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).ok();
            ps_row(
                &String::from_utf8_lossy(&read("stat")?),
                &String::from_utf8_lossy(&read("status")?),
                &read("cmdline").unwrap_or_default(),
                &users,
                &clock,
            )
        })
        .collect();
    stack_api::Top {
        name: st.name.clone(),
        processes,
    }
}

/// What turns /proc's clock ticks into times.
struct Clock {
    ticks: u64,
    /// The host's boot, and now: seconds since the epoch.
    boot: u64,
    now: u64,
}

impl Clock {
    fn now() -> Clock {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100, |t| t as u64);
        let boot = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
            .unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Clock { ticks, boot, now }
    }
}

/// One `ps -ef` row from a process's `stat`, `status` and `cmdline`.
fn ps_row(
    stat: &str,
    status: &str,
    cmdline: &[u8],
    passwd: &str,
    clock: &Clock,
) -> Option<stack_api::TopProcess> {
    // After the command name (which may hold spaces and parentheses).
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    let pid: i32 = head.split_whitespace().next()?.parse().ok()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let (ppid, tty_nr) = (num(1)?, num(4)?);
    let cpu_ticks = num(11)? + num(12)?;
    let started = clock.boot + num(19)? / clock.ticks;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?");
    let user = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid))
        .and_then(|l| l.split(':').next())
        .unwrap_or(uid);
    let cpu_secs = cpu_ticks / clock.ticks;
    let alive = clock.now.saturating_sub(started).max(1);
    let time = stack_sys::time::rfc3339(started as i64, 0);
    let stime = if clock.now.saturating_sub(started) < 86_400 {
        time[11..16].to_string()
    } else {
        let month = time[5..7].parse::<usize>().unwrap_or(1);
        let names = "JanFebMarAprMayJunJulAugSepOctNovDec";
        format!("{}{}", &names[(month - 1) * 3..month * 3], &time[8..10])
    };
    let (major, minor) = (
        (tty_nr >> 8) & 0xfff,
        (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00),
    );
    let tty = match major {
        0 => "?".to_string(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        _ => format!("tty{minor}"),
    };
    let args = String::from_utf8_lossy(cmdline).replace('\0', " ");
    let cmd = match args.trim() {
        "" => format!("[{comm}]"),
        a => a.to_string(),
    };
    Some(stack_api::TopProcess {
        uid: user.to_string(),
        pid,
        ppid: ppid as i32,
        c: (cpu_ticks * 100 / clock.ticks / alive) as u32,
        stime,
        tty,
        time: format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs % 3600 / 60,
            cpu_secs % 60
        ),
        cmd,
    })
}

/// Freezes or thaws every process of a running container; returns its name.
pub fn freeze(root: &Path, key: &str, frozen: bool) -> anyhow::Result<String> {
    let (st, layout) = running_layout(root, key)?;
    stack_runtime::cgroup::freeze(&layout, frozen)?;
    Ok(st.name)
}

/// The host pid of a running container's PID 1 (to join its namespaces).
pub fn running_pid(root: &Path, key: &str) -> anyhow::Result<i32> {
    let (_, st) = find(root, key)?;
    if !running(&st) {
        return Err(not_running(&st));
    }
    Ok(st.pid)
}

fn not_running(st: &State) -> anyhow::Error {
    HostError::Conflict(format!("container `{}` is not running", st.name)).into()
}

/// A label of a container, or "".
pub fn label(st: &State, key: &str) -> String {
    st.spec.labels.get(key).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_as_ps_ef_prints_them() {
        let stat = |tty: u32| {
            format!("1234 (my (odd) prog) S 1200 1234 1234 {tty} -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 0")
        };
        let status = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n";
        let passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n";
        let boot = 1_700_000_000;
        let clock = Clock {
            ticks: 100,
            boot,
            now: boot + 110,
        };
        let row = ps_row(&stat(34816), status, b"sleep\x003600\x00", passwd, &clock).unwrap();
        assert_eq!(
            row,
            stack_api::TopProcess {
                uid: "app".into(),
                pid: 1234,
                ppid: 1200,
                c: 3,
                stime: "22:13".into(),
                tty: "pts/0".into(),
                time: "00:00:03".into(),
                cmd: "sleep 3600".into(),
            }
        );
        // No terminal, no command line, started days ago, an unknown uid.
        let old = Clock {
            now: boot + 3 * 86_400,
            ..clock
        };
        let row = ps_row(&stat(0), "Uid:\t42\t42\t42\t42\n", b"", passwd, &old).unwrap();
        assert_eq!(
            (
                row.tty.as_str(),
                row.cmd.as_str(),
                row.stime.as_str(),
                row.uid.as_str()
            ),
            ("?", "[my (odd) prog]", "Nov14", "42")
        );
        assert_eq!(ps_row("garbage", status, b"", passwd, &clock), None);
    }
}
