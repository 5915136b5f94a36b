//! A container's state on disk: written atomically (temp file, rename;
//! synced where no monitor runs) by the process that owns the container,
//! read by anyone.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::Spec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub name: String,
    pub status: Status,
    /// The process that watches the container and writes this file.
    pub monitor_pid: i32,
    /// The container's PID 1, as the host sees it.
    pub pid: i32,
    /// Its start time (clock ticks since boot), to tell it from a reused pid.
    pub pid_start: u64,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub detached: bool,
    pub spec: Spec,
    /// Set when this record was rebuilt (see [`rebuild`]): the damaged
    /// file kept aside and what was wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The copy of the container's spec made when it is created: what its
/// record is rebuilt from if the state file is lost.
pub fn spec_path(dir: &Path) -> PathBuf {
    dir.join("spec.json")
}

/// Synced to disk, unless the container is removed once it has exited: a
/// power loss ends it all the same, and what it leaves of it (an empty
/// spec, see [`unfinished`]) is swept.
pub fn write_spec(dir: &Path, spec: &Spec) -> io::Result<()> {
    let json = serde_json::to_vec(spec).map_err(io::Error::other)?;
    match spec.transient() {
        false => stack_sys::write_atomic(&spec_path(dir), &json),
        true => stack_sys::write_replace(&spec_path(dir), &json),
    }
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("container.log")
}

/// Writes the state so that readers see the old or the new file, never
/// half of one. Only a record of no live process is synced to disk: one of
/// a monitor that runs is worth nothing after a power loss, which ends the
/// monitor too (and a file torn by one is rebuilt from the spec, see
/// [`rebuild`]); an exit, or a container created and not started, is what
/// `ps -a` shows after a reboot (unless the container goes with it, see
/// [`Spec::transient`]).
pub fn write(dir: &Path, state: &State) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let lasting = state.status == Status::Exited || state.monitor_pid == 0;
    match lasting && !state.spec.transient() {
        true => stack_sys::write_atomic(&path(dir), &json),
        false => stack_sys::write_replace(&path(dir), &json),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state for the container in `{}`", .0.display())]
    Missing(PathBuf),
    #[error("the state file `{}` is damaged: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{why}, and the record cannot be rebuilt: {what}")]
    Unrebuildable { why: String, what: String },
}

/// Reads a state file; a damaged one is reported, never silently dropped.
pub fn read(dir: &Path) -> Result<State, StateError> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StateError::Missing(dir.to_path_buf()))
        }
        Err(source) => return Err(StateError::Io { path: p, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: p, source })
}

/// Rebuilds the record of the container in `dir` whose state file cannot
/// be read (`why`), from the copy of its spec made when it was created and
/// what the kernel still shows (the processes in its cgroups: its PID 1
/// and, as PID 1's parent, its monitor). The damaged file is kept beside,
/// as `state.json.damaged`; the new record says so. Fails (with `why`)
/// when the spec cannot be read either.
pub fn rebuild(dir: &Path, why: StateError) -> Result<State, StateError> {
    let unrebuildable = |what: String| StateError::Unrebuildable {
        why: why.to_string(),
        what,
    };
    let spec: Spec = std::fs::read(spec_path(dir))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| unrebuildable(format!("`{}`: {e}", spec_path(dir).display())))?;
    let layout = crate::cgroup::layout_of(&spec).map_err(|e| unrebuildable(e.to_string()))?;
    let procs: Vec<i32> = crate::cgroup::procs(&layout)
        .into_iter()
        .map(|p| p as i32)
        .collect();
    // PID 1 of its own PID namespace, or the oldest process.
    let pid = procs
        .iter()
        .copied()
        .find(|p| ns_pid(*p) == Some(1))
        .or_else(|| procs.iter().copied().min_by_key(|p| start_time(*p)))
        .unwrap_or(0);
    // PID 1's parent is its monitor only if that is one of ours (a dead
    // monitor's children go to init or a subreaper).
    let monitor_pid = parent(pid)
        .filter(|p| stack_sys::runs_with_arg(p, crate::init::INIT_ARG))
        .unwrap_or(0);
    // Its monitor may have written a good one meanwhile.
    if let Ok(st) = read(dir) {
        return Ok(st);
    }
    // Kept beside, then replaced in one step: at no moment is there no record.
    let aside = dir.join("state.json.damaged");
    let _ = std::fs::copy(path(dir), &aside);
    let st = State {
        id: spec.id.clone(),
        name: spec.name.clone(),
        status: if pid > 0 {
            Status::Running
        } else {
            Status::Exited
        },
        monitor_pid,
        pid,
        pid_start: start_time(pid).unwrap_or(0),
        exit_code: None,
        oom_killed: false,
        started_at: String::new(),
        finished_at: None,
        detached: true,
        spec,
        rebuilt: Some(format!("{} ({why})", aside.display())),
    };
    write(dir, &st).map_err(|source| StateError::Io {
        path: path(dir),
        source,
    })?;
    Ok(st)
}

/// A process's pid in its own PID namespace (the last of /proc/PID/status's `NSpid`).
fn ns_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn parent(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The file in a container's directory that says who is creating it, until
/// its monitor writes the state.
const CLAIM: &str = "creating";

/// Makes a new container's directory, marked as being created by us: a
/// process that dies before the container starts (an engine killed mid-`up`)
/// leaves a claim whose owner is gone, which [`unfinished`] finds. The
/// directory is made aside under a name that says who makes it, gets its
/// claim file, then is renamed into place: at no moment does a directory
/// exist that does not say whose it is. With `spread` (an engine, which
/// makes many at once), it is made aside in `SPREAD` rather than beside
/// its place, so that it lands in a block group of its own
/// (`stack_sys::spread_subdirs`).
pub fn claim(dir: &Path, spread: bool) -> io::Result<()> {
    let me = std::process::id() as i32;
    let creator = format!("{me} {}", start_time(me).unwrap_or(0));
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let containers = dir.parent().unwrap_or(Path::new("."));
    make_containers_dir(containers)?;
    let beside = match spread {
        true => {
            let beside = containers.with_file_name(SPREAD);
            stack_sys::private_dir(&beside).map_err(stack_sys::PathError::into_io)?;
            stack_sys::spread_subdirs(&beside, true);
            // (Not where `containers` is a file system of its own: a
            // rename does not cross file systems.)
            let device = |p: &Path| {
                std::fs::metadata(p)
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .ok()
            };
            match device(&beside) == device(containers) {
                true => beside,
                false => containers.to_path_buf(),
            }
        }
        false => containers.to_path_buf(),
    };
    let aside = beside.join(format!(".{name}.{}.claim", creator.replace(' ', "-")));
    std::fs::create_dir(&aside)?;
    // A symbolic link: its few bytes live in its inode, with no data block
    // to allocate nor, where the file system discards what is freed, to
    // discard on the removal's path.
    let made = std::os::unix::fs::symlink(&creator, aside.join(CLAIM))
        .and_then(|()| std::fs::rename(&aside, dir));
    if made.is_err() {
        // A full disk, say: nothing is left of the attempt.
        let _ = std::fs::remove_dir_all(&aside);
    }
    made
}

/// Where an engine makes a container's directory before it is renamed into
/// `containers` (`claim`), beside it in the root.
const SPREAD: &str = "spread";

/// Makes the directory of the containers' directories: root's alone (they
/// hold their state, environment values included, logs and writable
/// layers). Its own subdirectories stay near it (a store of an older
/// build has it marked to spread them: the mark goes).
pub(crate) fn make_containers_dir(containers: &Path) -> io::Result<()> {
    stack_sys::private_dir(containers).map_err(stack_sys::PathError::into_io)?;
    stack_sys::spread_subdirs(containers, false);
    Ok(())
}

/// Drops the claim once the container exists (or is gone).
pub fn release(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(CLAIM));
}

/// Container directories without state whose creator died: what an
/// interrupted create left behind, renamed into place or not; those with
/// neither state nor claim, which only a removal cut short leaves (a
/// directory is claimed before it is renamed into place, and its claim goes
/// only once its state is written); and what a power loss left of a
/// container removed once it has exited: its spec, not synced, empty (it
/// is never empty otherwise: it is written beside and renamed), and no
/// readable record.
pub fn unfinished(root: &Path) -> Vec<PathBuf> {
    let entries = |dir: &str| {
        std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
    };
    let lost = |dir: &PathBuf| {
        std::fs::metadata(spec_path(dir)).is_ok_and(|m| m.len() == 0) && read(dir).is_err()
    };
    entries("containers")
        .filter(|dir| lost(dir) || !path(dir).exists() && creator_gone(dir))
        // What an engine was making aside (only claims are there).
        .chain(entries(SPREAD).filter(|dir| creator_gone(dir)))
        .collect()
}

/// Whether the creator a container directory's claim names is gone.
fn creator_gone(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let creator = match name.strip_suffix(".claim") {
        // `.ID.PID-START.claim`
        Some(aside) => aside.rsplit('.').next().unwrap_or("").replace('-', " "),
        // (A file, where an older build made the claim.)
        None => match std::fs::read_link(dir.join(CLAIM))
            .map(|target| target.to_string_lossy().into_owned())
            .or_else(|_| std::fs::read_to_string(dir.join(CLAIM)))
        {
            Ok(text) => text,
            Err(_) => return true,
        },
    };
    let mut it = creator.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(pid)), Some(Ok(start))) => !running(pid as i32, start),
        _ => true,
    }
}

/// The namespace of `kind` (`pid`, `user`…) process `pid` is in (`self`
/// for ours), as its nsfs file's device and inode.
pub fn namespace(pid: &str, kind: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The pids of every live process (zombies aside) in the namespace of
/// `kind` that process `pid` is in, `pid` included, in order: a
/// container's processes by its PID namespace where it has no cgroups, a
/// rootless store's by its user namespace.
pub fn in_namespace(kind: &str, pid: i32) -> Vec<i32> {
    let Some(theirs) = namespace(&pid.to_string(), kind) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| namespace(&p.to_string(), kind) == Some(theirs) && process_running(*p))
        .collect();
    pids.sort_unstable();
    pids
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// The state letter (field 3) and start time (field 22) of /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count from the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some((rest.chars().next()?, rest.split(' ').nth(19)?.parse().ok()?))
}

/// Fails unless the container runs: it is `running` only once its PID 1
/// has pivoted into its own root; until then, entering its mount namespace
/// or following /proc/PID/root would reach the host's files.
pub fn check_set_up(state: &State) -> io::Result<()> {
    match state.status {
        Status::Running if alive(state) => Ok(()),
        Status::Created if alive(state) => Err(io::Error::other(format!(
            "`{}` is still being set up",
            state.name
        ))),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{}` is not running", state.name),
        )),
    }
}

/// Whether the process recorded as the container's PID 1 still runs.
pub fn alive(state: &State) -> bool {
    state.pid > 0 && running(state.pid, state.pid_start)
}

/// Whether process `pid` exists and is not a zombie.
pub fn process_running(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Whether process `pid`, started at `start`, runs: it exists, is not a
/// zombie (dead, not yet reaped) and is not another process with its pid.
pub fn running(pid: i32, start: u64) -> bool {
    stat(pid).is_some_and(|(state, t)| state != 'Z' && t == start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_read() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert_eq!(start_time(-5), None);
    }

    #[test]
    fn claims_of_the_dead_are_unfinished() {
        let root = std::env::temp_dir().join(format!("stack-claims-{}", std::process::id()));
        let containers = root.join("containers");
        std::fs::create_dir_all(&containers).unwrap();
        // Ours: we live.
        claim(&containers.join("mine"), false).unwrap();
        claim(&containers.join("spread"), true).unwrap();
        assert!(std::fs::read_dir(root.join(SPREAD))
            .unwrap()
            .next()
            .is_none());
        assert_eq!(
            std::fs::read_link(containers.join("mine").join(CLAIM)).unwrap(),
            Path::new(&format!(
                "{} {}",
                std::process::id(),
                start_time(std::process::id() as i32).unwrap()
            ))
        );
        // A dead creator (no process has that pid), as a claim is made and
        // as an older build made it (a file).
        std::fs::create_dir_all(containers.join("dead")).unwrap();
        std::os::unix::fs::symlink("999999999 1", containers.join("dead").join(CLAIM)).unwrap();
        std::fs::create_dir_all(containers.join("dead-file")).unwrap();
        std::fs::write(containers.join("dead-file").join(CLAIM), "999999999 1\n").unwrap();
        // A claim being made aside by us, one by the dead, a started container.
        let me = std::process::id();
        let start = start_time(me as i32).unwrap();
        std::fs::create_dir_all(containers.join(format!(".young.{me}-{start}.claim"))).unwrap();
        std::fs::create_dir_all(containers.join(".old.999999999-1.claim")).unwrap();
        std::fs::create_dir_all(root.join(SPREAD).join(".aside.999999999-1.claim")).unwrap();
        std::fs::create_dir_all(containers.join("started")).unwrap();
        std::fs::write(containers.join("started").join("state.json"), "{}").unwrap();
        // Removed halfway: its state gone, its log still there.
        std::fs::create_dir_all(containers.join("halfgone")).unwrap();
        std::fs::write(containers.join("halfgone").join("container.log"), "").unwrap();
        // What a power loss leaves of a container removed on exit: an
        // empty spec, a record empty or missing. With a record still
        // readable it is a container as any other; with a spec, one
        // rebuilt from it.
        for (name, spec, state) in [
            ("lost", "", Some("")),
            ("lost-unrecorded", "", None),
            ("readable", "", Some("{}")),
            ("rebuildable", "{}", Some("")),
        ] {
            let dir = containers.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(spec_path(&dir), spec).unwrap();
            if let Some(state) = state {
                std::fs::write(path(&dir), state).unwrap();
            }
        }
        let st = State {
            id: "readable".into(),
            name: "readable".into(),
            status: Status::Exited,
            monitor_pid: 0,
            pid: 0,
            pid_start: 0,
            exit_code: Some(0),
            oom_killed: false,
            started_at: String::new(),
            finished_at: None,
            detached: true,
            spec: Spec::default(),
            rebuilt: None,
        };
        write(&containers.join("readable"), &st).unwrap();
        let mut found = unfinished(&root);
        found.sort();
        assert_eq!(
            found,
            vec![
                containers.join(".old.999999999-1.claim"),
                containers.join("dead"),
                containers.join("dead-file"),
                containers.join("halfgone"),
                containers.join("lost"),
                containers.join("lost-unrecorded"),
                root.join(SPREAD).join(".aside.999999999-1.claim"),
            ]
        );
        release(&containers.join("mine"));
        assert!(std::fs::symlink_metadata(containers.join("mine").join(CLAIM)).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
