//! The mount plan of `rootfs.rs`, recorded on a fake `Sys` without root.

use super::*;
use std::collections::BTreeMap;

/// Records every effect; answers `kind` from a table of paths; refuses to
/// mount the file system types, and the options, in `refuse`.
#[derive(Default)]
struct Recording {
    calls: Vec<String>,
    paths: BTreeMap<PathBuf, Kind>,
    refuse: Vec<&'static str>,
    rootless: bool,
    /// What `read` finds.
    files: BTreeMap<PathBuf, String>,
}

impl Sys for Recording {
    fn rootless(&self) -> bool {
        self.rootless
    }
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let mut f: Vec<&str> = Vec::new();
        for (flag, name) in [
            (MsFlags::MS_BIND, "bind"),
            (MsFlags::MS_REMOUNT, "remount"),
            (MsFlags::MS_RDONLY, "ro"),
            (MsFlags::MS_REC, "rec"),
            (MsFlags::MS_PRIVATE, "private"),
            (MsFlags::MS_NOSUID, "nosuid"),
            (MsFlags::MS_NODEV, "nodev"),
            (MsFlags::MS_NOEXEC, "noexec"),
            (MsFlags::MS_STRICTATIME, "strictatime"),
        ] {
            if flags.contains(flag) {
                f.push(name);
            }
        }
        self.calls.push(format!(
            "mount {src} {} {} [{}]{}",
            target.display(),
            fstype.unwrap_or("-"),
            f.join(","),
            data.map(|d| format!(" {d}")).unwrap_or_default()
        ));
        let options = data.into_iter().flat_map(|d| d.split(','));
        if fstype.is_some_and(|t| self.refuse.contains(&t))
            || options.into_iter().any(|o| self.refuse.contains(&o))
        {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }
    fn mount_from(&mut self, pid: i32, path: &Path, target: &Path) -> io::Result<()> {
        self.calls.push(format!(
            "mount_from {pid} {} {}",
            path.display(),
            target.display()
        ));
        Ok(())
    }
    fn copy_up(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.calls
            .push(format!("copy_up {} {}", from.display(), to.display()));
        Ok(())
    }
    fn mkdir_all(&mut self, p: &Path) -> io::Result<()> {
        self.paths.insert(p.to_path_buf(), Kind::Dir);
        Ok(())
    }
    fn create_file(&mut self, p: &Path) -> io::Result<()> {
        self.calls.push(format!("create {}", p.display()));
        self.paths.insert(p.to_path_buf(), Kind::File);
        Ok(())
    }
    fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()> {
        self.calls
            .push(format!("symlink {target} {}", link.display()));
        Ok(())
    }
    fn mknod(
        &mut self,
        p: &Path,
        block: bool,
        major: u64,
        minor: u64,
        mode: u32,
    ) -> io::Result<()> {
        let kind = if block { 'b' } else { 'c' };
        let mode = if mode == 0o666 {
            String::new()
        } else {
            format!(" {mode:o}")
        };
        self.calls.push(format!(
            "mknod {} {kind} {major}:{minor}{mode}",
            p.display()
        ));
        self.paths.insert(p.to_path_buf(), Kind::File);
        Ok(())
    }
    fn restrict(&mut self, target: &Path, what: Restrict, recursive: bool) -> io::Result<()> {
        let how = if recursive { "recursive" } else { "this mount" };
        self.calls
            .push(format!("{} {} ({how})", what.name(), target.display()));
        Ok(())
    }
    fn write(&mut self, p: &Path, data: &str) -> io::Result<()> {
        self.calls.push(format!("write {} {data:?}", p.display()));
        Ok(())
    }
    fn write_file(&mut self, p: &Path, data: &str, mode: u32) -> io::Result<()> {
        self.calls
            .push(format!("write {} {mode:o} {data:?}", p.display()));
        Ok(())
    }
    fn read(&self, p: &Path) -> io::Result<String> {
        self.files
            .get(p)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        self.calls.push(format!("unmount {}", target.display()));
        Ok(())
    }
    fn remove_tree(&mut self, p: &Path) -> io::Result<()> {
        self.calls.push(format!("remove_tree {}", p.display()));
        Ok(())
    }
    fn pivot(&mut self, new_root: &Path) -> io::Result<()> {
        self.calls.push(format!("pivot {}", new_root.display()));
        Ok(())
    }
    fn kind(&self, p: &Path) -> Kind {
        self.paths.get(p).cloned().unwrap_or(Kind::Missing)
    }
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        Ok(p.to_path_buf())
    }
}

fn spec() -> Spec {
    serde_json::from_value(serde_json::json!({
        "id": "c1", "rootfs": "/images/busybox", "args": ["sh"], "env": [], "cwd": "/",
        "hostname": "box", "init": true, "read_only": false
    }))
    .unwrap()
}

/// The v1 view of a container in two controllers.
fn v1() -> View {
    View::Controllers(vec![
        ("memory", "/sys/fs/cgroup/memory/own/stack/c1".into()),
        ("pids", "/sys/fs/cgroup/pids/stack/c1".into()),
    ])
}

/// The store's shared directory.
fn shared() -> &'static Path {
    Path::new("/state/shared")
}

fn run(spec: &Spec, sys: &mut Recording) -> Vec<String> {
    setup(spec, Path::new("/state/c1"), shared(), Some(&v1()), sys).unwrap();
    sys.calls.clone()
}

fn bind(source: &str, target: &str, read_only: bool, recursive: Recursive) -> crate::spec::Mount {
    crate::spec::Mount {
        kind: "bind".into(),
        source: source.into(),
        target: target.into(),
        read_only,
        size: None,
        recursive,
    }
}

#[test]
fn the_default_plan() {
    let mut sys = Recording::default();
    sys.paths
        .insert("/state/c1/merged/proc/kcore".into(), Kind::File);
    sys.paths
        .insert("/state/c1/merged/proc/acpi".into(), Kind::Dir);
    sys.paths
        .insert("/state/c1/merged/proc/sys".into(), Kind::Dir);
    // The shared layer's mount points.
    for f in ["hostname", "hosts", "resolv.conf"] {
        sys.paths
            .insert(format!("/state/c1/merged/etc/{f}").into(), Kind::File);
    }
    let calls = run(&spec(), &mut sys);
    let m = "/state/c1/merged";
    let want: Vec<String> = [
        "mount none / - [rec,private]",
        // The shared mount points on top of the image.
        "mount overlay {m} overlay [nodev] lowerdir=/state/shared/layer:/images/busybox,upperdir=/state/c1/upper,workdir=/state/c1/work",
        // /etc's files from a tmpfs of its own, never written through the
        // image's paths; the tmpfs is at /proc until proc comes.
        "mount tmpfs {m}/proc tmpfs [nosuid,nodev,noexec] mode=755,size=65536k",
        "write {m}/proc/hostname 644 \"box\\n\"",
        "mount {m}/proc/hostname {m}/etc/hostname - [bind]",
        "write {m}/proc/hosts 644 \"127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n127.0.1.1\\tbox\\n\"",
        "mount {m}/proc/hosts {m}/etc/hosts - [bind]",
        "write {m}/proc/resolv.conf 644 \"\"",
        "mount {m}/proc/resolv.conf {m}/etc/resolv.conf - [bind]",
        "unmount {m}/proc",
        "mount proc {m}/proc proc [nosuid,nodev,noexec]",
        "mount tmpfs {m}/dev tmpfs [nosuid,strictatime] mode=755,size=65536k",
        // The container's own nodes, never binds of the host's.
        "mknod {m}/dev/null c 1:3",
        "mknod {m}/dev/zero c 1:5",
        "mknod {m}/dev/full c 1:7",
        "mknod {m}/dev/random c 1:8",
        "mknod {m}/dev/urandom c 1:9",
        "mknod {m}/dev/tty c 5:0",
        "mount devpts {m}/dev/pts devpts [nosuid,noexec] newinstance,ptmxmode=0666,mode=0620",
        "mount shm {m}/dev/shm tmpfs [nosuid,nodev,noexec] mode=1777,size=67108864",
        "mount mqueue {m}/dev/mqueue mqueue [nosuid,nodev,noexec]",
        "symlink pts/ptmx {m}/dev/ptmx",
        "symlink /proc/self/fd {m}/dev/fd",
        "symlink /proc/self/fd/0 {m}/dev/stdin",
        "symlink /proc/self/fd/1 {m}/dev/stdout",
        "symlink /proc/self/fd/2 {m}/dev/stderr",
        // A fresh sysfs, read-only; only the container's own cgroups, read-only.
        "mount sysfs {m}/sys sysfs [ro,nosuid,nodev,noexec]",
        "mount tmpfs {m}/sys/fs/cgroup tmpfs [nosuid,nodev,noexec] mode=755,size=64k",
        "mount /sys/fs/cgroup/memory/own/stack/c1 {m}/sys/fs/cgroup/memory - [bind]",
        "mount /sys/fs/cgroup/memory/own/stack/c1 {m}/sys/fs/cgroup/memory - [bind,remount,ro,nosuid,nodev,noexec]",
        "mount /sys/fs/cgroup/pids/stack/c1 {m}/sys/fs/cgroup/pids - [bind]",
        "mount /sys/fs/cgroup/pids/stack/c1 {m}/sys/fs/cgroup/pids - [bind,remount,ro,nosuid,nodev,noexec]",
        "read-only {m}/sys/fs/cgroup (this mount)",
        // Masks: an empty file of its own, read-only; an empty read-only tmpfs.
        "create /state/c1/masked",
        "mount tmpfs {m}/proc/acpi tmpfs [ro,nosuid,nodev,noexec]",
        "mount /state/c1/masked {m}/proc/kcore - [bind]",
        "read-only {m}/proc/kcore (this mount)",
        "mount {m}/proc/sys {m}/proc/sys - [bind,rec]",
        "read-only {m}/proc/sys (recursive)",
        "pivot {m}",
    ]
    .iter()
    .map(|c| c.replace("{m}", m))
    .collect();
    assert_eq!(calls, want);
}

/// Mount points of /etc that a writable layer hides (an older version's
/// container removed its /etc/hosts, or made resolv.conf a link) are
/// resolved inside the container's root and made there; a directory in
/// the way is refused, by name.
#[test]
fn etc_mount_points_a_writable_layer_hid_are_resolved_inside_and_made() {
    let m = "/state/c1/merged";
    let mut sys = Recording::default();
    sys.paths.insert(format!("{m}/etc").into(), Kind::Dir);
    sys.paths
        .insert(format!("{m}/etc/hostname").into(), Kind::File);
    sys.paths.insert(
        format!("{m}/etc/resolv.conf").into(),
        Kind::Symlink("/run/resolv.conf".into()),
    );
    sys.paths.insert(format!("{m}/run").into(), Kind::Dir);
    let calls = run(&spec(), &mut sys);
    for want in [
        "mount {m}/proc/hostname {m}/etc/hostname - [bind]",
        "create {m}/etc/hosts",
        "mount {m}/proc/hosts {m}/etc/hosts - [bind]",
        "create {m}/run/resolv.conf",
        "mount {m}/proc/resolv.conf {m}/run/resolv.conf - [bind]",
    ] {
        let want = want.replace("{m}", m);
        assert!(calls.contains(&want), "{want}: {calls:#?}");
    }
    let mut sys = Recording::default();
    sys.paths.insert(format!("{m}/etc/hosts").into(), Kind::Dir);
    let e = setup(&spec(), Path::new("/state/c1"), shared(), None, &mut sys).unwrap_err();
    assert!(
        e.to_string()
            .contains("/etc/hosts of the container is not a file (Dir)"),
        "{e}"
    );
}

#[test]
fn rootless_binds_the_hosts_nodes_and_keeps_overlays_markers_in_user_attributes() {
    let mut sys = Recording {
        rootless: true,
        ..Recording::default()
    };
    let calls = run(&spec(), &mut sys);
    let m = "/state/c1/merged";
    let has = |c: &str| calls.contains(&c.replace("{m}", m));
    assert!(has("mount overlay {m} overlay [nodev] lowerdir=/state/shared/layer:/images/busybox,upperdir=/state/c1/upper,workdir=/state/c1/work,userxattr"));
    assert!(!calls.iter().any(|c| c.starts_with("mknod")), "{calls:#?}");
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(has(&format!("create {{m}}/dev/{d}")), "{d}: {calls:#?}");
        assert!(
            has(&format!("mount /dev/{d} {{m}}/dev/{d} - [bind]")),
            "{d}"
        );
    }
    // Devices the host would give cannot be had.
    let mut s = spec();
    s.devices.push(crate::spec::Device {
        path: "/dev/fuse".into(),
        block: false,
        major: 10,
        minor: 229,
        mode: 0o666,
        permissions: "rwm".into(),
    });
    let e = setup(&s, Path::new("/state/c1"), shared(), None, &mut sys).unwrap_err();
    assert!(
        e.to_string().contains("`/dev/fuse`: a rootless engine"),
        "{e}"
    );
}

#[test]
fn privileged_read_only_host_network_and_user_mounts() {
    let mut s = spec();
    s.privileged = true;
    s.read_only = true;
    s.network = crate::spec::NetworkMode::Host;
    s.sysctls = vec![("net.core.somaxconn".into(), "1024".into())];
    s.mounts = vec![
        bind("/srv/data", "/data", true, Recursive::Enabled),
        crate::spec::Mount {
            kind: "tmpfs".into(),
            source: PathBuf::new(),
            target: "/link/t".into(),
            read_only: false,
            size: Some(1024),
            recursive: Recursive::Enabled,
        },
    ];
    let mut sys = Recording::default();
    sys.files
        .insert("/etc/resolv.conf".into(), "nameserver 192.0.2.1\n".into());
    sys.paths.insert("/srv/data".into(), Kind::Dir);
    sys.paths
        .insert("/state/c1/merged/proc/kcore".into(), Kind::File);
    // A hostile absolute symlink in the rootfs: resolved inside the new root.
    sys.paths
        .insert("/state/c1/merged/link".into(), Kind::Symlink("/etc".into()));
    let calls = run(&s, &mut sys);
    // Privileged: the root filesystem's device nodes work (not nodev).
    assert!(
        calls[1].starts_with("mount overlay /state/c1/merged overlay [] "),
        "{}",
        calls[1]
    );
    let pivot = calls.iter().position(|c| c.starts_with("pivot")).unwrap();
    assert_eq!(
        &calls[pivot - 1..],
        [
            "write /state/c1/merged/proc/sys/net/core/somaxconn \"1024\"",
            "pivot /state/c1/merged",
            "read-only / (this mount)"
        ],
        "privileged: no masks, no read-only /proc paths"
    );
    for expected in [
        // A fresh sysfs on the host's network too.
        "mount sysfs /state/c1/merged/sys sysfs [ro,nosuid,nodev,noexec]",
        "mount /srv/data /state/c1/merged/data - [bind,rec]",
        "read-only /state/c1/merged/data (recursive)",
        // The host's resolver, in the host's network.
        "write /state/c1/merged/proc/resolv.conf 644 \"nameserver 192.0.2.1\\n\"",
        // Read-only with the root, as Docker has them.
        "read-only /state/c1/merged/etc/hosts (this mount)",
        "mount tmpfs /state/c1/merged/etc/t tmpfs [nosuid,nodev,noexec] mode=1777,size=1024",
    ] {
        assert!(
            calls.iter().any(|c| c == expected),
            "missing `{expected}` in {calls:#?}"
        );
    }
    // Privileged: its cgroups writable (the tmpfs holding them is not).
    assert!(calls.iter().any(|c| c
        == "mount /sys/fs/cgroup/pids/stack/c1 /state/c1/merged/sys/fs/cgroup/pids - [bind,remount,nosuid,nodev,noexec]"));
}

#[test]
fn read_only_binds_are_recursive_unless_asked_otherwise() {
    let mut s = spec();
    s.mounts = vec![
        bind("/", "/rootfs", true, Recursive::Enabled),
        bind("/a", "/a", true, Recursive::Readonly),
        bind("/b", "/b", true, Recursive::Writable),
        bind("/c", "/c", true, Recursive::Disabled),
        bind("/d", "/d", false, Recursive::Disabled),
        bind("/e", "/e", false, Recursive::Enabled),
    ];
    let mut sys = Recording::default();
    for d in ["/", "/a", "/b", "/c", "/d", "/e"] {
        sys.paths.insert(d.into(), Kind::Dir);
    }
    let calls = run(&s, &mut sys);
    let m = "/state/c1/merged";
    let first = calls.iter().position(|c| c.contains("mount / ")).unwrap();
    // Every bind nodev all the way down (the host's device nodes under
    // `/`, its devtmpfs among them, open nothing), then read-only as asked.
    let want: Vec<String> = [
        "mount / {m}/rootfs - [bind,rec]",
        "nodev {m}/rootfs (recursive)",
        "read-only {m}/rootfs (recursive)",
        "mount /a {m}/a - [bind,rec]",
        "nodev {m}/a (recursive)",
        "read-only {m}/a (recursive)",
        "mount /b {m}/b - [bind,rec]",
        "nodev {m}/b (recursive)",
        "read-only {m}/b (this mount)",
        "mount /c {m}/c - [bind]",
        "nodev {m}/c (recursive)",
        "read-only {m}/c (this mount)",
        "mount /d {m}/d - [bind]",
        "nodev {m}/d (recursive)",
        "mount /e {m}/e - [bind,rec]",
        "nodev {m}/e (recursive)",
    ]
    .iter()
    .map(|c| c.replace("{m}", m))
    .collect();
    assert_eq!(calls[first..first + want.len()], want[..]);
}

#[test]
fn sysfs_refused_binds_the_hosts_read_only_and_v2_mounts_its_own_cgroup() {
    let mut sys = Recording {
        refuse: vec!["sysfs"],
        ..Recording::default()
    };
    setup(
        &spec(),
        Path::new("/state/c1"),
        shared(),
        Some(&View::Unified),
        &mut sys,
    )
    .unwrap();
    let m = "/state/c1/merged";
    let at = sys
        .calls
        .iter()
        .position(|c| c.starts_with("mount sysfs"))
        .unwrap();
    let want: Vec<String> = [
        "mount sysfs {m}/sys sysfs [ro,nosuid,nodev,noexec]",
        "mount /sys {m}/sys - [bind,rec]",
        "read-only {m}/sys (recursive)",
        // From inside its cgroup namespace: its own cgroup is the root.
        "mount cgroup {m}/sys/fs/cgroup cgroup2 [ro,nosuid,nodev,noexec]",
    ]
    .iter()
    .map(|c| c.replace("{m}", m))
    .collect();
    assert_eq!(sys.calls[at..at + want.len()], want[..]);
}

#[test]
fn submounts_come_from_mountinfo_under_the_target_only() {
    let info = "\
22 1 0:21 / / rw - ext4 /dev/sda rw
30 22 0:25 / /srv/data rw - ext4 /dev/sdb rw
31 30 0:26 / /srv/data/with\\040space rw - tmpfs tmpfs rw
32 22 0:27 / /srv/database rw - tmpfs tmpfs rw
";
    assert_eq!(
        submounts(info, Path::new("/srv/data")),
        [PathBuf::from("/srv/data/with space")]
    );
    assert_eq!(submounts(info, Path::new("/")).len(), 3);
}

#[test]
fn bad_input_fails_before_mounting_it() {
    let mut s = spec();
    s.sysctls = vec![("kernel.panic".into(), "1".into())];
    let mut sys = Recording::default();
    let e = setup(&s, Path::new("/state/c1"), shared(), None, &mut sys).unwrap_err();
    assert!(e.to_string().contains("`kernel.panic` is not namespaced"));
    let mut s = spec();
    s.mounts = vec![bind("/nope", "/x", false, Recursive::Enabled)];
    let e = setup(
        &s,
        Path::new("/state/c1"),
        shared(),
        None,
        &mut Recording::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("bind mount source `/nope`"));
    let mut s = spec();
    s.layers = vec!["/layers/2".into(), "/layers/1".into()];
    let calls = run(&s, &mut Recording::default());
    assert_eq!(calls[1], "mount overlay /state/c1/merged overlay [nodev] lowerdir=/state/shared/layer:/images/busybox:/layers/2:/layers/1,upperdir=/state/c1/upper,workdir=/state/c1/work");
    let mut s = spec();
    s.rootfs = "/a,b".into();
    assert!(setup(
        &s,
        Path::new("/state/c1"),
        shared(),
        None,
        &mut Recording::default()
    )
    .is_err());
}

#[test]
fn a_joined_ipc_namespace_brings_that_containers_dev_shm() {
    let mut s = spec();
    s.ipc = crate::spec::Namespace::Join(4242);
    let calls = run(&s, &mut Recording::default());
    let shm = "/state/c1/merged/dev/shm";
    assert!(
        calls.contains(&format!("mount_from 4242 /dev/shm {shm}")),
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("mount shm ")),
        "{calls:#?}"
    );
    // Its own IPC namespace: a /dev/shm of its own.
    let calls = run(&spec(), &mut Recording::default());
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with(&format!("mount shm {shm} tmpfs"))),
        "{calls:#?}"
    );
}

/// A container removed once it has exited gets a volatile overlay (no sync
/// of the host's file system when it goes), where the kernel has the
/// option; any other, an overlay that syncs.
#[test]
fn a_transient_containers_overlay_is_volatile() {
    let overlay = "mount overlay /state/c1/merged overlay [nodev] lowerdir=/state/shared/layer:/images/busybox,upperdir=/state/c1/upper,workdir=/state/c1/work";
    let mut s = spec();
    s.caller_removes = true;
    let calls = run(&s, &mut Recording::default());
    assert_eq!(calls[1], format!("{overlay},volatile"));
    assert!(!calls[2].contains("overlay"), "{calls:?}");
    // A kernel without the option: mounted as any other.
    let mut old = Recording {
        refuse: vec!["volatile"],
        ..Default::default()
    };
    let calls = run(&s, &mut old);
    assert_eq!(
        calls[1..3],
        [format!("{overlay},volatile"), overlay.to_string()]
    );
    // Started again: the mark its last volatile mount left goes first.
    let mut again = Recording::default();
    again
        .paths
        .insert("/state/c1/work/work/incompat".into(), Kind::Dir);
    let calls = run(&s, &mut again);
    assert_eq!(
        calls[1..3],
        [
            "remove_tree /state/c1/work/work/incompat".to_string(),
            format!("{overlay},volatile")
        ]
    );
    // A lasting container's overlay: no volatile mount, no mark taken.
    s.caller_removes = false;
    again.calls.clear();
    assert_eq!(run(&s, &mut again)[1], overlay);
}
