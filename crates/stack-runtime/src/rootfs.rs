//! The container's file system: overlay over the rootfs directory, /proc,
//! /dev, /sys, Docker's masked and read-only paths, then pivot_root. Runs as
//! the container's PID 1, inside its own mount namespace.
//!
//! Every effect goes through the `Sys` trait: `Host` does it for real, and the
//! tests below record the exact sequence on a fake, without root.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::spec::{NetworkMode, Spec};

/// Device nodes every container gets, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Paths Docker hides from containers.
const MASKED: [&str; 8] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/sys/firmware",
];

/// Paths Docker makes read-only.
const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What a path is, for the decisions the setup makes.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Missing,
    File,
    Dir,
    Symlink(PathBuf),
}

/// The system calls and file operations of the setup.
pub trait Sys {
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn mkdir_all(&mut self, p: &Path) -> io::Result<()>;
    fn create_file(&mut self, p: &Path) -> io::Result<()>;
    fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()>;
    fn write(&mut self, p: &Path, data: &str) -> io::Result<()>;
    /// Makes `new_root` the root and detaches the old one.
    fn pivot(&mut self, new_root: &Path) -> io::Result<()>;
    fn kind(&self, p: &Path) -> Kind;
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf>;
    /// Copies the tree at `from` into the directory `to` if `to` is empty.
    fn copy_up(&mut self, from: &Path, to: &Path) -> io::Result<()>;
}

/// The real thing.
pub struct Host;

impl Sys for Host {
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        mount(Some(src), target, fstype, flags, data)
            .map_err(|e| err(&format!("mount {src} on {}", target.display()), e))
    }
    fn mkdir_all(&mut self, p: &Path) -> io::Result<()> {
        fs::create_dir_all(p)
    }
    fn create_file(&mut self, p: &Path) -> io::Result<()> {
        fs::File::create(p).map(drop)
    }
    fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }
    fn write(&mut self, p: &Path, data: &str) -> io::Result<()> {
        fs::write(p, data)
    }
    fn pivot(&mut self, new_root: &Path) -> io::Result<()> {
        chdir(new_root).map_err(|e| err("chdir", e))?;
        pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach old root", e))?;
        chdir("/").map_err(|e| err("chdir /", e))
    }
    fn kind(&self, p: &Path) -> Kind {
        match fs::symlink_metadata(p) {
            Err(_) => Kind::Missing,
            Ok(m) if m.file_type().is_symlink() => {
                Kind::Symlink(fs::read_link(p).unwrap_or_default())
            }
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
        }
    }
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        p.canonicalize()
    }
    fn copy_up(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if fs::read_dir(to)?.next().is_some() || !from.is_dir() {
            return Ok(());
        }
        let m = fs::symlink_metadata(from)?;
        fs::set_permissions(to, m.permissions())?;
        std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
        copy_tree(from, to).map_err(|e| err(&format!("copy {} into the volume", from.display()), e))
    }
}

/// Files, directories and symlinks with their modes and owners; device
/// nodes, fifos and sockets are left out.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = fs::symlink_metadata(&src)?;
        if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if m.is_dir() {
            fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
            fs::set_permissions(&dst, m.permissions())?;
        } else if m.is_file() {
            fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))?;
    }
    Ok(())
}

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

const RDONLY_REMOUNT: MsFlags = MsFlags::MS_BIND
    .union(MsFlags::MS_REMOUNT)
    .union(MsFlags::MS_RDONLY);

/// Binds `src` over `target`, read-only.
fn bind_ro(sys: &mut dyn Sys, src: &str, target: &Path) -> io::Result<()> {
    sys.mount(src, target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    sys.mount(src, target, None, RDONLY_REMOUNT | MsFlags::MS_REC, None)
}

pub fn setup(spec: &Spec, dir: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    // Nothing we mount may propagate back to the host.
    sys.mount(
        "none",
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;

    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        sys.mkdir_all(d)?;
    }
    let mut lowers = vec![sys.canonicalize(&spec.rootfs)?];
    for l in &spec.layers {
        lowers.push(sys.canonicalize(l)?);
    }
    for p in lowers.iter().chain([&upper, &work]) {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(err("overlay", format!("path `{s}` contains `,` or `:`")));
        }
    }
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    sys.mount(
        "overlay",
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = merged.join("proc");
    sys.mkdir_all(&proc_dir)?;
    sys.mount("proc", &proc_dir, Some("proc"), nosuid_noexec_nodev, None)?;

    let dev = merged.join("dev");
    sys.mkdir_all(&dev)?;
    sys.mount(
        "tmpfs",
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let target = dev.join(d);
        sys.create_file(&target)?;
        sys.mount(&format!("/dev/{d}"), &target, None, MsFlags::MS_BIND, None)?;
    }
    let pts = dev.join("pts");
    sys.mkdir_all(&pts)?;
    sys.mount(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    sys.mkdir_all(&shm)?;
    let shm_size = spec.shm_size.unwrap_or(64 * 1024 * 1024);
    sys.mount(
        "shm",
        &shm,
        Some("tmpfs"),
        nosuid_noexec_nodev,
        Some(&format!("mode=1777,size={shm_size}")),
    )?;
    let mqueue = dev.join("mqueue");
    sys.mkdir_all(&mqueue)?;
    sys.mount("mqueue", &mqueue, Some("mqueue"), nosuid_noexec_nodev, None)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys.symlink(target, &dev.join(link))?;
    }

    let sysfs = merged.join("sys");
    sys.mkdir_all(&sysfs)?;
    // sysfs can be mounted only in a network namespace of our own; otherwise
    // the host's /sys is bound read-only, as runc does.
    if spec.network == NetworkMode::New {
        sys.mount(
            "sysfs",
            &sysfs,
            Some("sysfs"),
            nosuid_noexec_nodev | MsFlags::MS_RDONLY,
            None,
        )?;
    } else {
        bind_ro(sys, "/sys", &sysfs)?;
    }

    write_etc(spec, &merged, sys)?;
    user_mounts(spec, &merged, sys)?;

    sys.pivot(&merged)?;
    set_sysctls(&spec.sysctls, sys)?;
    if !spec.privileged {
        for p in MASKED {
            mask(Path::new(p), sys)?;
        }
        for p in READ_ONLY {
            if sys.kind(Path::new(p)) != Kind::Missing {
                bind_ro(sys, p, Path::new(p))?;
            }
        }
    }
    if spec.read_only {
        sys.mount("/", Path::new("/"), None, RDONLY_REMOUNT, None)?;
    }
    Ok(())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(path: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    match sys.kind(path) {
        Kind::Dir => sys.mount("tmpfs", path, Some("tmpfs"), MsFlags::MS_RDONLY, None),
        Kind::File => sys.mount("/dev/null", path, None, MsFlags::MS_BIND, None),
        Kind::Missing | Kind::Symlink(_) => Ok(()),
    }
}

/// /etc/hostname and /etc/hosts of the container, in its writable layer.
fn write_etc(spec: &Spec, merged: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    let etc = merged.join("etc");
    sys.mkdir_all(&etc)?;
    sys.write(&etc.join("hostname"), &format!("{}\n", spec.hostname))?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if spec.hosts.is_empty() {
        hosts.push_str(&format!("127.0.1.1\t{}\n", spec.host_names()));
    }
    for h in &spec.hosts {
        hosts.push_str(h);
        hosts.push('\n');
    }
    sys.write(&etc.join("hosts"), &hosts)?;
    match &spec.resolv_conf {
        Some(r) => sys.write(&etc.join("resolv.conf"), r)?,
        None if sys.kind(&etc.join("resolv.conf")) == Kind::Missing => {
            sys.write(&etc.join("resolv.conf"), "")?
        }
        None => {}
    }
    Ok(())
}

/// `path` inside `root`, resolving symlinks as if `root` were `/`: a link in
/// the container's file system cannot lead a mount outside it.
pub fn secure_join(root: &Path, path: &str) -> io::Result<PathBuf> {
    secure_join_with(root, path, &Host)
}

/// `secure_join` on any `Sys`.
pub fn secure_join_with(root: &Path, path: &str, sys: &dyn Sys) -> io::Result<PathBuf> {
    let split = |p: &str| {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .rev()
            .collect::<Vec<_>>()
    };
    let mut resolved = PathBuf::new();
    let mut pending = split(path);
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        match sys.kind(&root.join(&resolved).join(&c)) {
            Kind::Symlink(target) => {
                links += 1;
                if links > 255 {
                    return Err(err("resolve", format!("too many symlinks in `{path}`")));
                }
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    resolved = PathBuf::new();
                }
                pending.extend(split(&t));
            }
            _ => resolved.push(&c),
        }
    }
    Ok(root.join(resolved))
}

/// A recursive bind mount, read-only if asked.
fn bind(sys: &mut dyn Sys, source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    let src = source.to_string_lossy();
    if read_only {
        bind_ro(sys, &src, target)
    } else {
        sys.mount(&src, target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
    }
}

/// The user's bind and tmpfs mounts, on the new root before pivoting.
fn user_mounts(spec: &Spec, merged: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    for m in &spec.mounts {
        let target = secure_join_with(merged, &m.target, sys)?;
        match m.kind.as_str() {
            "bind" => {
                match sys.kind(&m.source) {
                    Kind::Missing => {
                        return Err(err(
                            &format!("bind mount source `{}`", m.source.display()),
                            "no such file or directory",
                        ))
                    }
                    Kind::Dir => sys.mkdir_all(&target)?,
                    _ => {
                        if let Some(p) = target.parent() {
                            sys.mkdir_all(p)?;
                        }
                        if sys.kind(&target) == Kind::Missing {
                            sys.create_file(&target)?;
                        }
                    }
                }
                bind(sys, &m.source, &target, m.read_only)?;
            }
            "volume" => {
                sys.mkdir_all(&m.source)?;
                sys.mkdir_all(&target)?;
                sys.copy_up(&target, &m.source)?;
                bind(sys, &m.source, &target, m.read_only)?;
            }
            "tmpfs" => {
                sys.mkdir_all(&target)?;
                let mut data = String::from("mode=1777");
                if let Some(size) = m.size {
                    data.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                if m.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                sys.mount("tmpfs", &target, Some("tmpfs"), flags, Some(&data))?;
            }
            other => return Err(err("mount", format!("unknown mount type `{other}`"))),
        }
    }
    Ok(())
}

/// Whether a sysctl belongs to a namespace the container has of its own
/// (Docker's rule): others would change the host.
pub fn namespaced_sysctl(key: &str) -> bool {
    key.starts_with("net.")
        || key.starts_with("fs.mqueue.")
        || key.starts_with("kernel.msg")
        || key.starts_with("kernel.shm")
        || key == "kernel.sem"
        || key == "kernel.domainname"
        || key == "kernel.hostname"
}

fn set_sysctls(sysctls: &[(String, String)], sys: &mut dyn Sys) -> io::Result<()> {
    for (k, v) in sysctls {
        if !namespaced_sysctl(k) || k.contains("..") || k.contains('/') {
            return Err(err(
                "sysctl",
                format!("`{k}` is not namespaced: it would change the host"),
            ));
        }
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        sys.write(&path, v)
            .map_err(|e| err(&format!("sysctl `{k}={v}`"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Records every effect; answers `kind` from a table of paths.
    #[derive(Default)]
    struct Recording {
        calls: Vec<String>,
        paths: BTreeMap<PathBuf, Kind>,
    }

    impl Sys for Recording {
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
            self.paths.insert(p.to_path_buf(), Kind::File);
            Ok(())
        }
        fn symlink(&mut self, _: &str, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn write(&mut self, p: &Path, data: &str) -> io::Result<()> {
            self.calls.push(format!("write {} {data:?}", p.display()));
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

    fn run(spec: &Spec, sys: &mut Recording) -> Vec<String> {
        setup(spec, Path::new("/state/c1"), sys).unwrap();
        sys.calls.clone()
    }

    #[test]
    fn the_default_plan() {
        let mut sys = Recording::default();
        sys.paths.insert("/proc/kcore".into(), Kind::File);
        sys.paths.insert("/proc/acpi".into(), Kind::Dir);
        sys.paths.insert("/proc/sys".into(), Kind::Dir);
        let calls = run(&spec(), &mut sys);
        let first: Vec<&str> = calls.iter().take(4).map(String::as_str).collect();
        assert_eq!(
            first,
            [
                "mount none / - [rec,private]",
                "mount overlay /state/c1/merged overlay [] lowerdir=/images/busybox,upperdir=/state/c1/upper,workdir=/state/c1/work",
                "mount proc /state/c1/merged/proc proc []",
                "mount tmpfs /state/c1/merged/dev tmpfs [] mode=755,size=65536k",
            ]
        );
        let pivot = calls
            .iter()
            .position(|c| c == "pivot /state/c1/merged")
            .unwrap();
        // Masks and read-only paths come after the pivot, on the container's own paths.
        let after: Vec<&str> = calls[pivot + 1..].iter().map(String::as_str).collect();
        assert_eq!(
            after,
            [
                "mount tmpfs /proc/acpi tmpfs [ro]",
                "mount /dev/null /proc/kcore - [bind]",
                "mount /proc/sys /proc/sys - [bind,rec]",
                "mount /proc/sys /proc/sys - [bind,remount,ro,rec]",
            ]
        );
        assert!(calls.contains(&"mount sysfs /state/c1/merged/sys sysfs [ro]".to_string()));
        assert!(calls.contains(&"write /state/c1/merged/etc/hostname \"box\\n\"".to_string()));
    }

    #[test]
    fn privileged_read_only_host_network_and_user_mounts() {
        let mut s = spec();
        s.privileged = true;
        s.read_only = true;
        s.network = NetworkMode::Host;
        s.sysctls = vec![("net.core.somaxconn".into(), "1024".into())];
        s.mounts = vec![
            crate::spec::Mount {
                kind: "bind".into(),
                source: "/srv/data".into(),
                target: "/data".into(),
                read_only: true,
                size: None,
            },
            crate::spec::Mount {
                kind: "tmpfs".into(),
                source: PathBuf::new(),
                target: "/link/t".into(),
                read_only: false,
                size: Some(1024),
            },
        ];
        let mut sys = Recording::default();
        sys.paths.insert("/srv/data".into(), Kind::Dir);
        sys.paths.insert("/proc/kcore".into(), Kind::File);
        // A hostile absolute symlink in the rootfs: resolved inside the new root.
        sys.paths
            .insert("/state/c1/merged/link".into(), Kind::Symlink("/etc".into()));
        let calls = run(&s, &mut sys);
        let pivot = calls.iter().position(|c| c.starts_with("pivot")).unwrap();
        assert_eq!(
            &calls[pivot + 1..],
            [
                "write /proc/sys/net/core/somaxconn \"1024\"",
                "mount / / - [bind,remount,ro]"
            ],
            "privileged: no masks, no read-only /proc paths"
        );
        for expected in [
            "mount /sys /state/c1/merged/sys - [bind,rec]",
            "mount /sys /state/c1/merged/sys - [bind,remount,ro,rec]",
            "mount /srv/data /state/c1/merged/data - [bind,remount,ro,rec]",
            "mount tmpfs /state/c1/merged/etc/t tmpfs [] mode=1777,size=1024",
        ] {
            assert!(
                calls.iter().any(|c| c == expected),
                "missing `{expected}` in {calls:#?}"
            );
        }
    }

    #[test]
    fn bad_input_fails_before_mounting_it() {
        let mut s = spec();
        s.sysctls = vec![("kernel.panic".into(), "1".into())];
        let mut sys = Recording::default();
        let e = setup(&s, Path::new("/state/c1"), &mut sys).unwrap_err();
        assert!(e.to_string().contains("`kernel.panic` is not namespaced"));
        let mut s = spec();
        s.mounts = vec![crate::spec::Mount {
            kind: "bind".into(),
            source: "/nope".into(),
            target: "/x".into(),
            read_only: false,
            size: None,
        }];
        let e = setup(&s, Path::new("/state/c1"), &mut Recording::default()).unwrap_err();
        assert!(e.to_string().contains("bind mount source `/nope`"));
        let mut s = spec();
        s.layers = vec!["/layers/2".into(), "/layers/1".into()];
        let calls = run(&s, &mut Recording::default());
        assert_eq!(calls[1], "mount overlay /state/c1/merged overlay [] lowerdir=/images/busybox:/layers/2:/layers/1,upperdir=/state/c1/upper,workdir=/state/c1/work");
        let mut s = spec();
        s.rootfs = "/a,b".into();
        assert!(setup(&s, Path::new("/state/c1"), &mut Recording::default()).is_err());
    }
}
