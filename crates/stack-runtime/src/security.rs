//! What the app may do: capabilities, no_new_privs, user and groups, rlimits.

use std::collections::HashSet;
use std::io;

use caps::{CapSet, Capability};

use crate::spec::Spec;

/// Docker's default capabilities.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn parse_cap(name: &str) -> io::Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse()
        .map_err(|_| io::Error::other(format!("unknown capability `{name}`")))
}

/// The capability set a spec asks for.
pub fn capabilities(spec: &Spec) -> io::Result<HashSet<Capability>> {
    if spec.privileged {
        return Ok(caps::all());
    }
    let mut set: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    // Where no device controller keeps the container from the host's
    // device nodes (cgroup v2 without a device program), a node made in its
    // /dev would open the host's disks: no mknod, and none asked for.
    let no_controller = !crate::cgroup::devices_enforced();
    if no_controller {
        set.remove(&Capability::CAP_MKNOD);
    }
    for c in &spec.cap_add {
        if c.eq_ignore_ascii_case("ALL") {
            set = caps::all();
        } else {
            set.insert(parse_cap(c)?);
        }
    }
    for c in &spec.cap_drop {
        if c.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&parse_cap(c)?);
        }
    }
    if no_controller && set.contains(&Capability::CAP_MKNOD) {
        return Err(io::Error::other(
            "cap_add MKNOD needs a device controller, which this host lacks (cgroup v2): a device node made in the container would open the host's devices; run it privileged if it must",
        ));
    }
    Ok(set)
}

/// Every capability this host lets a container have: all, but MKNOD where
/// no device controller keeps device nodes from opening the host's devices.
pub fn all_allowed() -> HashSet<Capability> {
    let mut set = caps::all();
    if !crate::cgroup::devices_enforced() {
        set.remove(&Capability::CAP_MKNOD);
    }
    set
}

/// The seccomp filter of `spec`, compiled ahead by whoever starts its
/// monitor (`spawn_monitor`) for the capabilities PID 1 will keep of what
/// it holds: what this process holds too (root, or root of a rootless
/// store's user namespace; PID 1 compiles again where they differ). None
/// where the container has no filter.
pub fn compile_ahead(spec: &crate::Spec) -> io::Result<Option<crate::seccomp::Compiled>> {
    if spec.privileged || spec.seccomp_unconfined {
        return Ok(None);
    }
    let held = caps::read(None, CapSet::Permitted).map_err(|e| io::Error::other(e.to_string()))?;
    let filtered: HashSet<Capability> = capabilities(spec)?.intersection(&held).copied().collect();
    let (prog, flags) = compile(spec, &filtered)?;
    Ok(Some(crate::seccomp::Compiled::new(&prog, flags, &filtered)))
}

/// The seccomp filter of `spec` for a container keeping `filtered`, and
/// its flags.
fn compile(
    spec: &crate::Spec,
    filtered: &HashSet<Capability>,
) -> io::Result<(Vec<stack_seccomp::bpf::Insn>, u32)> {
    let profile = crate::seccomp::profile(spec.seccomp_profile.as_deref())?;
    let flags = profile.filter_flags().map_err(io::Error::other)?;
    Ok((crate::seccomp::compile(&profile, filtered)?, flags))
}

/// Narrows this process (and all it starts) to `keep`, with no_new_privs
/// (unless `spec` allows new privileges) and the seccomp filter of `spec`
/// for the capabilities `filtered` (the container's: an `exec --privileged`
/// keeps more, not its syscalls); no inheritable or ambient capability is
/// left.
pub fn restrict(
    keep: &HashSet<Capability>,
    filtered: &HashSet<Capability>,
    spec: &crate::Spec,
    ahead: Option<&crate::seccomp::Compiled>,
) -> io::Result<()> {
    let other = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    // Only what we hold can be kept (the kernel may know fewer than the library).
    let held = caps::read(None, CapSet::Permitted).map_err(other)?;
    let keep: HashSet<Capability> = keep.intersection(&held).copied().collect();
    let keep = &keep;
    let filter = match spec.privileged || spec.seccomp_unconfined {
        true => None,
        false => {
            let filtered: HashSet<Capability> = filtered.intersection(&held).copied().collect();
            match ahead.and_then(|c| c.for_caps(&filtered)) {
                Some(compiled) => Some(compiled),
                None => Some(compile(spec, &filtered)?),
            }
        }
    };
    let no_new_privs = !spec.privileged && !spec.new_privileges;
    if let (Some((prog, flags)), false) = (&filter, no_new_privs) {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes
        // in before the capabilities go (as runc does).
        crate::seccomp::apply(prog, *flags)?;
    }
    for c in caps::all() {
        if !keep.contains(&c) {
            // Capabilities the running kernel does not know are not in the set to begin with.
            let _ = caps::drop(None, CapSet::Bounding, c);
        }
    }
    // Nothing inheritable or ambient, whoever the user (as Docker since
    // CVE-2022-24769): a file's inheritable capabilities then grant nothing
    // to a user who is not root.
    caps::clear(None, CapSet::Ambient).map_err(other)?;
    caps::clear(None, CapSet::Inheritable).map_err(other)?;
    caps::set(None, CapSet::Effective, keep).map_err(other)?;
    caps::set(None, CapSet::Permitted, keep).map_err(other)?;
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
        if let Some((prog, flags)) = &filter {
            crate::seccomp::apply(prog, *flags)?;
        }
    }
    Ok(())
}

/// A user as `/etc/passwd` and `/etc/group` of the container know it.
#[derive(Debug, PartialEq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves `NAME`, `UID`, `NAME:GROUP`, `UID:GID` against file contents.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> io::Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let found = entries
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let (uid, mut gid, home, name) = match (found, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| io::Error::other(format!("bad uid in /etc/passwd for `{u}`")))?,
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            f[0].to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), String::new()),
        (None, Err(_)) => {
            return Err(io::Error::other(format!(
                "unable to find user `{u}`: no matching entries in passwd file"
            )))
        }
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    if let Some(g) = g {
        gid = match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| io::Error::other(format!("bad gid in /etc/group for `{g}`")))?,
            None => g.parse().map_err(|_| {
                io::Error::other(format!(
                    "unable to find group `{g}`: no matching entries in group file"
                ))
            })?,
        };
    }
    let mut supplementary: Vec<u32> = groups
        .iter()
        .filter(|f| !name.is_empty() && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    if !supplementary.contains(&gid) {
        supplementary.insert(0, gid);
    }
    Ok(User {
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

/// Adds the supplementary groups `extra` (names in `group`, the
/// container's /etc/group, or numbers) to `user`'s.
pub fn add_groups(user: &mut User, extra: &[String], group: &str) -> io::Result<()> {
    for g in extra {
        let gid = group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == g)
            .and_then(|f| f[2].parse().ok())
            .or_else(|| g.parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "unable to find group `{g}`: no matching entries in group file"
                ))
            })?;
        if !user.groups.contains(&gid) {
            user.groups.push(gid);
        }
    }
    Ok(())
}

/// Becomes `user`: groups first, then gid, then uid.
pub fn switch_user(user: &User) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups)?;
    setgid(Gid::from_raw(user.gid))?;
    setuid(Uid::from_raw(user.uid))?;
    Ok(())
}

pub fn set_rlimits(limits: &[(String, u64, u64)]) -> io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    for (name, soft, hard) in limits {
        let r = match name.as_str() {
            "core" => Resource::RLIMIT_CORE,
            "cpu" => Resource::RLIMIT_CPU,
            "data" => Resource::RLIMIT_DATA,
            "fsize" => Resource::RLIMIT_FSIZE,
            "locks" => Resource::RLIMIT_LOCKS,
            "memlock" => Resource::RLIMIT_MEMLOCK,
            "msgqueue" => Resource::RLIMIT_MSGQUEUE,
            "nice" => Resource::RLIMIT_NICE,
            "nofile" => Resource::RLIMIT_NOFILE,
            "nproc" => Resource::RLIMIT_NPROC,
            "rss" => Resource::RLIMIT_RSS,
            "rtprio" => Resource::RLIMIT_RTPRIO,
            "sigpending" => Resource::RLIMIT_SIGPENDING,
            "stack" => Resource::RLIMIT_STACK,
            other => return Err(io::Error::other(format!("unknown ulimit `{other}`"))),
        };
        setrlimit(r, *soft, *hard)
            .map_err(|e| io::Error::other(format!("ulimit `{name}`: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwww:x:33:\nalice:x:1000:\nstaff:x:50:alice,bob\naudio:x:29:alice\n";

    #[test]
    fn users_resolve_like_docker() {
        let u = resolve_user("alice", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/alice"));
        assert_eq!(u.groups, vec![1000, 50, 29]);
        assert_eq!(resolve_user("www:staff", PASSWD, GROUP).unwrap().gid, 50);
        assert_eq!(
            resolve_user("1234:5678", PASSWD, GROUP).unwrap(),
            User {
                uid: 1234,
                gid: 5678,
                groups: vec![5678],
                home: "/".into()
            }
        );
        assert_eq!(resolve_user("33", PASSWD, GROUP).unwrap().home, "/var/www");
        assert!(resolve_user("nobody", PASSWD, GROUP)
            .unwrap_err()
            .to_string()
            .contains("unable to find user `nobody`"));
        assert!(resolve_user("alice:nogroup", PASSWD, GROUP).is_err());
    }

    #[test]
    fn groups_are_added_by_name_or_number_once() {
        let mut u = resolve_user("www", PASSWD, GROUP).unwrap();
        add_groups(&mut u, &["audio".into(), "4242".into(), "33".into()], GROUP).unwrap();
        assert_eq!(u.groups, vec![33, 29, 4242]);
        let e = add_groups(&mut u, &["nogroup".into()], GROUP).unwrap_err();
        assert!(
            e.to_string().contains("unable to find group `nogroup`"),
            "{e}"
        );
    }

    #[test]
    fn capability_sets() {
        let spec = |add: &[&str], drop: &[&str]| {
            let mut s: Spec = serde_json::from_value(serde_json::json!({
                "id": "x", "rootfs": "/", "args": [], "env": [], "cwd": "/",
                "hostname": "x", "init": true, "read_only": false
            }))
            .unwrap();
            s.cap_add = add.iter().map(|s| s.to_string()).collect();
            s.cap_drop = drop.iter().map(|s| s.to_string()).collect();
            s
        };
        let mknod = crate::cgroup::devices_enforced();
        let default = capabilities(&spec(&[], &[])).unwrap();
        assert_eq!(default.len(), if mknod { 14 } else { 13 });
        assert_eq!(default.contains(&Capability::CAP_MKNOD), mknod);
        match capabilities(&spec(&["MKNOD"], &[])) {
            Ok(s) => assert!(mknod && s.contains(&Capability::CAP_MKNOD)),
            Err(e) => assert!(!mknod && e.to_string().contains("device controller"), "{e}"),
        }
        let s = capabilities(&spec(&["NET_ADMIN"], &["cap_chown"])).unwrap();
        assert!(s.contains(&Capability::CAP_NET_ADMIN) && !s.contains(&Capability::CAP_CHOWN));
        assert!(capabilities(&spec(&[], &["ALL"])).unwrap().is_empty());
        assert!(capabilities(&spec(&["BOGUS"], &[])).is_err());
    }
}
