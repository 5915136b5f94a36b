//! The container's isolation for real, as root (issue 19): /sys and its
//! cgroups read-only with only the container's own cgroups in sight,
//! read-only binds read-only all the way down, device nodes of its own, no
//! inheritable capability.
//!
//! Every probe that writes, or tries to, runs inside a container (`sh -c`
//! in `stack container run`), and is one that would change nothing even
//! where it succeeded (an open with O_TRUNC of a cgroup file, a file in a
//! temp directory). The host is only read (`stat`), but for the tmpfs a test
//! mounts in its own temp directory and unmounts again.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::Env;

const EROFS: &str = "Read-only file system";

/// An environment with a busybox root filesystem (users root and app).
fn env(name: &str) -> (Env, PathBuf) {
    let mut e = Env::new("isolation", name);
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let rootfs = e.dir.join("rootfs");
    for d in ["bin", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(common::busybox(), rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "grep", "ls", "find", "stat", "wc", "touch", "true", "id", "cut",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    (e, rootfs)
}

/// `sh -c script` in a new container with `flags`.
fn run(e: &Env, rootfs: &Path, flags: &[&str], script: &str) -> Output {
    let mut args = vec!["container", "run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--rootfs", rootfs.to_str().unwrap(), "sh", "-c", script]);
    e.stack(&args)
}

/// Standard output, then standard error.
fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Inside the container: how /sys is mounted, what /sys/fs/cgroup holds,
/// an attempt to open each entry's `cgroup.procs` for writing (O_TRUNC,
/// nothing written, and only of a file that exists: harmless even where it
/// is allowed, and nothing is created where the runtime got it wrong), the
/// cgroups below the top ones, and the memory limit seen at the top.
const CGROUP_PROBE: &str = "\
grep -c '^sysfs /sys sysfs ro,' /proc/mounts; \
touch /sys/probe; \
echo entries: $(ls /sys/fs/cgroup); \
for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do \
[ -f $f ] && true > $f; done; \
echo below: $(find /sys/fs/cgroup -mindepth 2 -type d | wc -l); \
echo limit: $(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)";

#[test]
fn sys_and_cgroups_are_read_only_and_show_the_containers_own_only() {
    let (e, rootfs) = env("cgroups");
    e.out(&["network", "create", "front"]);
    for net in ["front", "host", "none"] {
        let o = run(&e, &rootfs, &["--network", net, "-m", "64m"], CGROUP_PROBE);
        let out = text(&o);
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some("1"),
            "{net}: /sys is not a read-only sysfs: {out}"
        );
        assert!(
            out.contains(&format!("touch: /sys/probe: {EROFS}")),
            "{net}: {out}"
        );
        let entries: Vec<&str> = out
            .lines()
            .find_map(|l| l.strip_prefix("entries: "))
            .unwrap_or_default()
            .split(' ')
            .filter(|x| !x.is_empty())
            .collect();
        let v2 = entries.contains(&"cgroup.controllers");
        assert!(
            v2 || entries.contains(&"memory"),
            "{net}: the container's cgroups are not there: {out}"
        );
        if v2 {
            assert!(
                out.contains(&format!(
                    "can't create /sys/fs/cgroup/cgroup.procs: {EROFS}"
                )),
                "{net}: the cgroup file system is writable: {out}"
            );
        } else {
            // Every controller's directory refuses writes.
            for c in &entries {
                assert!(
                    out.contains(&format!(
                        "can't create /sys/fs/cgroup/{c}/cgroup.procs: {EROFS}"
                    )),
                    "{net}: /sys/fs/cgroup/{c} is writable: {out}"
                );
            }
        }
        // Its own cgroups, at the top, with its limit; none below them and
        // no other of the host's.
        assert!(
            out.contains("\nbelow: 0\n"),
            "{net}: other cgroups in sight: {out}"
        );
        assert!(
            out.contains("\nlimit: 67108864\n"),
            "{net}: not its own cgroup: {out}"
        );
    }
    e.out(&["network", "rm", "front"]);
}

/// A tmpfs mounted on the host (in the test's own directory) for as long
/// as it lives.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_read_only_bind_is_read_only_all_the_way_down() {
    let (e, rootfs) = env("recursive");
    let src = e.dir.join("src");
    let _sub = HostTmpfs::mount(&src.join("sub"));
    let ro = format!("{}:/data:ro", src.display());
    let o = run(
        &e,
        &rootfs,
        &["-v", &ro],
        "touch /data/sub/x; touch /data/x; grep ' /data/sub ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
    );
    let out = text(&o);
    assert!(
        out.contains(&format!("touch: /data/sub/x: {EROFS}")),
        "the submount is writable: {out}"
    );
    assert!(out.contains(&format!("touch: /data/x: {EROFS}")), "{out}");
    assert!(out.starts_with("ro\n"), "{out}");
    assert!(!src.join("sub/x").exists() && !src.join("x").exists());
    // The common `/:/rootfs:ro`: not one writable mount under it (read from
    // /proc/mounts only).
    let o = run(
        &e,
        &rootfs,
        &["-v", "/:/rootfs:ro"],
        "grep -c ' /rootfs' /proc/mounts; grep ' /rootfs' /proc/mounts | cut -d' ' -f2,4 | grep -v -E ' ro(,|$)'; true",
    );
    let out = text(&o);
    let mut lines = out.lines();
    let count: usize = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(count > 1, "no submount under /rootfs: {out}");
    assert_eq!(lines.next(), None, "writable under /rootfs: {out}");
    // Writable, the submount comes along.
    let rw = format!("{}:/data", src.display());
    let o = run(&e, &rootfs, &["-v", &rw], "touch /data/sub/y");
    assert!(o.status.success(), "{o:?}");
    assert!(src.join("sub/y").exists(), "the submount was not bound");
}

/// (device, inode) of a path inside the container, with its type and
/// major:minor, as `stat` prints them there.
fn stat_inside(out: &str, path: &str) -> Option<(u64, u64, String)> {
    out.lines().find_map(|l| {
        let mut f = l.splitn(4, ' ');
        if f.next()? != path {
            return None;
        }
        let dev = f.next()?.parse().ok()?;
        let ino = f.next()?.parse().ok()?;
        Some((dev, ino, f.next()?.to_string()))
    })
}

#[test]
fn device_nodes_and_masks_are_the_containers_own() {
    let (e, rootfs) = env("devices");
    let devices = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    let masked = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ];
    // Read only: stat, and an open for writing of a masked file that is a
    // regular file.
    let mut script = String::new();
    for (d, _) in devices {
        script.push_str(&format!("stat -c '%n %d %i %F %t:%T' /dev/{d}; "));
    }
    for m in masked {
        // Opened for writing only as a regular file (ours, or the real one
        // in the container's own /proc where masking failed), never a node.
        script.push_str(&format!(
            "[ -e {m} ] && stat -c '%n %d %i %F %s' {m} && [ -f {m} ] && true > {m}; "
        ));
    }
    let o = run(&e, &rootfs, &[], &script);
    let out = text(&o);
    let host_null = std::fs::metadata("/dev/null").unwrap();
    let host = (host_null.dev(), host_null.ino());
    for (d, numbers) in devices {
        let path = format!("/dev/{d}");
        let (dev, ino, rest) = stat_inside(&out, &path).unwrap_or_else(|| panic!("{out}"));
        let h = std::fs::metadata(&path).unwrap();
        assert!(
            (dev, ino) != (h.dev(), h.ino()),
            "{path} inside is the host's node: {out}"
        );
        // Major and minor in hex, as stat prints them.
        let (major, minor) = numbers.split_once(':').unwrap();
        let want = format!(
            "character special file {:x}:{:x}",
            major.parse::<u32>().unwrap(),
            minor.parse::<u32>().unwrap()
        );
        assert_eq!(rest, want, "{path}: {out}");
    }
    let mut seen = 0;
    for m in masked {
        let Some((dev, ino, rest)) = stat_inside(&out, m) else {
            continue;
        };
        seen += 1;
        assert!((dev, ino) != host, "{m} is the host's /dev/null: {out}");
        assert_eq!(rest, "regular empty file 0", "{m}: {out}");
        assert!(
            out.contains(&format!("can't create {m}: {EROFS}")),
            "{m} is writable: {out}"
        );
    }
    assert!(seen > 0, "no masked file exists on this kernel: {out}");
}

#[test]
fn no_inheritable_or_ambient_capability_for_any_user() {
    let (e, rootfs) = env("caps");
    for user in ["app", "root"] {
        let o = run(
            &e,
            &rootfs,
            &["-u", user],
            "grep -E '^Cap(Inh|Amb):' /proc/self/status",
        );
        assert_eq!(
            text(&o),
            "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n",
            "{user}"
        );
    }
}

/// compose's `bind.recursive` with `read_only`, as compose documents it:
/// `enabled` (the default) read-only all the way down, `writable` keeps the
/// submounts writable, `disabled` leaves them out; `writable` without
/// `read_only` is refused, naming the service and the target.
#[test]
fn compose_bind_recursive_and_read_only() {
    let root = TempDir::new("src");
    let src = root.0.join("src");
    let sub = HostTmpfs::mount(&src.join("sub"));
    std::fs::write(src.join("sub/marker"), "on the submount\n").unwrap();
    let s = src.display();
    let volumes = format!(
        r#"services:
  probe:
    image: local/busybox:1
    volumes:
      - type: bind
        source: {s}
        target: /all
        read_only: true
      - type: bind
        source: {s}
        target: /writable
        read_only: true
        bind:
          recursive: writable
      - type: bind
        source: {s}
        target: /alone
        read_only: true
        bind:
          recursive: disabled
"#
    );
    let (e, d) = common::project_env("isolation", "compose", &volumes);
    let o = e.stack(&common::in_project(
        &d,
        &[
            "run",
            "--rm",
            "probe",
            "sh",
            "-c",
            "echo x > /all/sub/f; echo x > /writable/sub/f && echo writable; \
             echo x > /writable/f; cat /alone/sub/marker || echo left out; cat /all/sub/marker",
        ],
    ));
    let out = text(&o);
    for want in [
        format!("can't create /all/sub/f: {EROFS}"),
        "writable\n".to_string(),
        format!("can't create /writable/f: {EROFS}"),
        "left out\n".to_string(),
        "on the submount\n".to_string(),
    ] {
        assert!(out.contains(&want), "missing `{want}` in {out}");
    }
    assert!(std::fs::read_to_string(src.join("sub/f")).is_ok_and(|t| t == "x\n"));
    assert!(!src.join("f").exists());
    std::fs::write(
        Path::new(&d).join("compose.yaml"),
        volumes.replacen(
            "        read_only: true\n        bind:\n          recursive: writable",
            "        bind:\n          recursive: writable",
            1,
        ),
    )
    .unwrap();
    let err = e.fails(&common::in_project(&d, &["run", "--rm", "probe", "true"]));
    assert!(
        err.contains(
            "service probe: volume `/writable`: bind.recursive `writable` needs read_only: true"
        ),
        "{err}"
    );
    drop(e);
    drop(sub);
}

/// A directory of the test's own, removed on drop (after what is mounted in
/// it is unmounted: declared before the mount's guard).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("stack-isolation-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host's block devices stay out of reach, however a node for one gets
/// into the container: made in /dev (a tmpfs where nodes work) it opens
/// nothing, as the device controller refuses it (or, where there is none,
/// mknod is not allowed); made in the root filesystem it opens nothing, as
/// that is mounted nodev. The probe is the first loop device, which the host
/// can open (its disks may be closed even to the host's root here), and only
/// reads one byte, thrown away.
#[test]
fn a_block_device_node_made_inside_opens_nothing() {
    let (e, rootfs) = env("disks");
    let script = "for p in /dev/probe /probe; do \
         busybox mknod $p b 7 0 && busybox head -c 1 $p >/dev/null && echo OPENED $p; \
         done; cat /sys/fs/cgroup/devices/devices.list 2>/dev/null; echo done";
    let o = run(&e, &rootfs, &[], script);
    let out = text(&o);
    assert!(out.contains("done"), "{out}");
    // Where the device controller applies, the container's list is
    // Docker's, rule by rule (as the kernel lists them).
    if std::path::Path::new("/sys/fs/cgroup/devices/devices.list").exists() {
        for rule in [
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
        ] {
            assert!(out.lines().any(|l| l == rule), "no `{rule}`: {out}");
        }
        assert!(
            !out.lines().any(|l| l == "a *:* rwm"),
            "every device allowed: {out}"
        );
        assert_eq!(
            out.lines()
                .filter(|l| l.ends_with(" m") || l.ends_with(" rwm"))
                .count(),
            11,
            "{out}"
        );
    }
    assert!(!out.contains("OPENED"), "a block device opened: {out}");
    for p in ["/dev/probe", "/probe"] {
        assert!(
            out.contains(&format!("{p}: Operation not permitted"))
                || out.contains(&format!("{p}: Permission denied")),
            "{p} refused for another reason: {out}"
        );
    }
    // Privileged, the node in /dev opens (no device controller, no nodev):
    // the probe can tell, where the host itself opens the device.
    if std::fs::File::open("/dev/loop0").is_ok() {
        let out = text(&run(&e, &rootfs, &["--privileged"], script));
        assert!(out.contains("OPENED /dev/probe"), "{out}");
        assert!(out.contains("OPENED /probe"), "{out}");
    } else {
        eprintln!("the host cannot open /dev/loop0: the privileged check is left out");
    }
}

/// A bind of the host's /dev (or of any directory holding device nodes) is
/// nodev all the way down: its nodes open nothing, on hosts with a device
/// controller or without one. Read only: /proc/mounts, and an open for
/// reading of the first loop device, one byte thrown away.
#[test]
fn a_bound_host_dev_is_nodev_all_the_way_down() {
    let (e, rootfs) = env("hostdev");
    let script = "grep ' /hostdev' /proc/mounts; \
         busybox head -c 1 /hostdev/loop0 >/dev/null && echo OPENED; echo done";
    let out = text(&run(&e, &rootfs, &["-v", "/dev:/hostdev:ro"], script));
    assert!(out.contains("done"), "{out}");
    let mounts: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("head:"))
        .filter(|l| {
            l.split(' ')
                .nth(1)
                .is_some_and(|t| t.starts_with("/hostdev"))
        })
        .collect();
    assert!(!mounts.is_empty(), "{out}");
    for m in &mounts {
        let opts = m.split(' ').nth(3).unwrap_or_default();
        assert!(opts.split(',').any(|o| o == "nodev"), "not nodev: {m}");
        assert!(opts.split(',').any(|o| o == "ro"), "not read-only: {m}");
    }
    assert!(!out.contains("OPENED"), "{out}");
    if std::path::Path::new("/dev/loop0").exists() {
        assert!(
            out.contains("/hostdev/loop0: Permission denied")
                || out.contains("/hostdev/loop0: Operation not permitted"),
            "{out}"
        );
    }
}
