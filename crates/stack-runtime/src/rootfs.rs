//! The container's file system: overlay over the rootfs directory, /proc,
//! /dev (device nodes made here), a fresh read-only /sys with only the
//! container's own cgroups, the user's mounts, Docker's masked and read-only
//! paths, then pivot_root. Runs as the container's PID 1, inside its own
//! mount namespace.
//!
//! Read-only binds are read-only all the way down: `mount_setattr(2)` with
//! `AT_RECURSIVE` (or, on kernels without it, a remount of each submount).
//!
//! Every effect goes through the `Sys` trait: `Host` does it for real, and the
//! tests (`rootfs_tests.rs`) record the exact sequence on a fake, without root.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::cgroup::View;
use crate::spec::{Recursive, Spec};

/// Character devices every container gets, made with mknod in its own /dev
/// (never the host's nodes): name, major, minor.
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// What every container of a store shares, in `shared/` beside
/// `containers/` (made once, by [`make_shared`]): the read-only layer of
/// the mount points each container needs.
const SHARED: &str = "shared";
const LAYER: &str = "layer";

/// The empty file, in the container's own directory, bound read-only over
/// masked files (its own: one that `SYS_ADMIN` remounts writable is
/// nobody else's).
const MASK_FILE: &str = "masked";

/// The mount points of the shared layer: directories, then the files of
/// /etc that each container gets of its own (bound over them).
const MOUNT_POINT_DIRS: [&str; 4] = ["proc", "dev", "sys", "etc"];
const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Paths Docker hides from containers.
const MASKED: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    // Interrupt counts per CPU leak what other tenants do
    // (GHSA-6fw5-f8r9-fgfm; Docker masks it since 28).
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    // RAPL energy counters (CVE-2020-8694), now that /sys is the
    // container's own sysfs.
    "/sys/devices/virtual/powercap",
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
    /// A device node (a block device with `block`, else a character one)
    /// of `mode`.
    fn mknod(&mut self, p: &Path, block: bool, major: u64, minor: u64, mode: u32)
        -> io::Result<()>;
    /// Sets `what` (read-only, nodev) on the mount at `target`, and with
    /// `recursive` on every mount under it too; other mount flags are kept.
    fn restrict(&mut self, target: &Path, what: Restrict, recursive: bool) -> io::Result<()>;
    fn write(&mut self, p: &Path, data: &str) -> io::Result<()>;
    /// A new file of `data`, of `mode` whatever the umask.
    fn write_file(&mut self, p: &Path, data: &str, mode: u32) -> io::Result<()>;
    fn read(&self, p: &Path) -> io::Result<String>;
    /// Detaches the mount at `target` (and what is under it).
    fn unmount(&mut self, target: &Path) -> io::Result<()>;
    /// Removes the directory `p` and all it holds (never through a link).
    fn remove_tree(&mut self, p: &Path) -> io::Result<()>;
    /// Makes `new_root` the root and detaches the old one.
    fn pivot(&mut self, new_root: &Path) -> io::Result<()>;
    fn kind(&self, p: &Path) -> Kind;
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf>;
    /// Copies the tree at `from` into the directory `to` if `to` is empty.
    fn copy_up(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Mounts at `target` a copy of the mount at `path` in the mount
    /// namespace of process `pid` (another container's /dev/shm).
    fn mount_from(&mut self, pid: i32, path: &Path, target: &Path) -> io::Result<()>;
    /// Whether the setup runs in a user namespace of its own (rootless):
    /// no device nodes are made there (the host's are bound), and
    /// overlayfs keeps its markers in `user.overlay.*`.
    fn rootless(&self) -> bool;
}

/// The real thing: the kernel's calls.
pub struct Kernel;

impl Sys for Kernel {
    fn rootless(&self) -> bool {
        stack_sys::userns::rootless()
    }
    fn mount_from(&mut self, pid: i32, path: &Path, target: &Path) -> io::Result<()> {
        let what = || {
            format!(
                "{} of process {pid} on {}",
                path.display(),
                target.display()
            )
        };
        let tree = stack_sys::mounts::clone_from(pid, path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot clone {}: {e}", what())))?;
        stack_sys::mounts::attach(&tree, target)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot mount {}: {e}", what())))
    }
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
    fn mknod(
        &mut self,
        p: &Path,
        block: bool,
        major: u64,
        minor: u64,
        mode: u32,
    ) -> io::Result<()> {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let kind = if block {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        mknod(
            p,
            kind,
            Mode::from_bits_truncate(mode),
            makedev(major, minor),
        )
        .map_err(|e| err(&format!("mknod {}", p.display()), e))?;
        // Whatever the umask took away.
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777))
    }
    fn restrict(&mut self, target: &Path, what: Restrict, recursive: bool) -> io::Result<()> {
        match setattr(target, what, recursive) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                // Before Linux 5.12: each mount on its own.
                let mut targets = vec![target.to_path_buf()];
                if recursive {
                    targets.extend(submounts(
                        &fs::read_to_string("/proc/self/mountinfo")?,
                        target,
                    ));
                }
                for t in targets {
                    remount_adding(&t, what)?;
                }
                Ok(())
            }
            r => r.map_err(|e| err(&format!("{} {}", what.name(), target.display()), e)),
        }
    }
    fn write(&mut self, p: &Path, data: &str) -> io::Result<()> {
        fs::write(p, data)
    }
    fn write_file(&mut self, p: &Path, data: &str, mode: u32) -> io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data.as_bytes())
    }
    fn read(&self, p: &Path) -> io::Result<String> {
        fs::read_to_string(p).map_err(|e| err(&format!("read {}", p.display()), e))
    }
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| err(&format!("unmount {}", target.display()), e))
    }
    fn remove_tree(&mut self, p: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(p).map_err(|e| err(&format!("remove {}", p.display()), e))
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

/// `struct mount_attr` of `mount_setattr(2)` (not in libc yet).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A flag a mount (or a tree of them) gets after it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restrict {
    ReadOnly,
    /// Device nodes on it open nothing.
    NoDev,
}

impl Restrict {
    /// `MOUNT_ATTR_RDONLY`, `MOUNT_ATTR_NODEV`.
    fn attr(self) -> u64 {
        match self {
            Restrict::ReadOnly => 0x1,
            Restrict::NoDev => 0x4,
        }
    }

    fn flag(self) -> MsFlags {
        match self {
            Restrict::ReadOnly => MsFlags::MS_RDONLY,
            Restrict::NoDev => MsFlags::MS_NODEV,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Restrict::ReadOnly => "read-only",
            Restrict::NoDev => "nodev",
        }
    }
}

/// `mount_setattr(2)`: `what` on the mount at `target` (and every mount
/// under it), the other flags untouched.
fn setattr(target: &Path, what: Restrict, recursive: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let attr = MountAttr {
        attr_set: what.attr(),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 } | libc::AT_NO_AUTOMOUNT;
    // SAFETY: a NUL-terminated path and a `mount_attr` of the size passed,
    // both alive for the call; the kernel only reads them.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A bind remount adding `what` that keeps the mount's other flags
/// (a remount replaces them all otherwise).
fn remount_adding(target: &Path, what: Restrict) -> io::Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let have = statvfs(target).map_err(|e| err(&format!("statvfs {}", target.display()), e))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | what.flag();
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if have.flags().contains(st) {
            flags |= ms;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| err(&format!("remount {} {}", target.display(), what.name()), e))
}

/// The mount points strictly under `target`, from /proc/self/mountinfo,
/// parents first.
fn submounts(mountinfo: &str, target: &Path) -> Vec<PathBuf> {
    let unescape = |s: &str| {
        // Spaces, tabs, newlines and backslashes come as octal escapes.
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let octal = b
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
            match (b[i], octal) {
                (b'\\', Some(c)) => {
                    out.push(c);
                    i += 4;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out))
    };
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|p| p != target && p.starts_with(target))
        .collect()
}

/// The shared directory of the store whose container `dir` is (a
/// container's directory is `ROOT/containers/ID`).
pub(crate) fn shared_of(dir: &Path) -> PathBuf {
    dir.parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"))
        .join(SHARED)
}

/// The layer of mount points every container of the store at `root` has
/// on top of its image's layers.
pub fn shared_layer(root: &Path) -> PathBuf {
    root.join(SHARED).join(LAYER)
}

/// Makes the store's shared directory unless it exists: the top lower
/// layer of every container, with /proc, /dev, /sys and /etc's hostname,
/// hosts and resolv.conf as empty directories and files (so that the
/// mounts over them make nothing in a container's writable layer, and an
/// image's own links at those paths are hidden). It is made aside and
/// renamed into place, whole or not at all.
pub(crate) fn make_shared(root: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let shared = root.join(SHARED);
    if shared.exists() {
        return Ok(());
    }
    let aside = root.join(format!(
        ".{SHARED}.{}.{}",
        std::process::id(),
        stack_sys::random_hex(4)?
    ));
    let made = (|| {
        fs::DirBuilder::new().mode(0o700).create(&aside)?;
        // Each mode set once made: the umask takes its share of any asked
        // for at creation.
        let layer = aside.join(LAYER);
        for d in std::iter::once(layer.clone()).chain(MOUNT_POINT_DIRS.map(|d| layer.join(d))) {
            fs::create_dir(&d)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        }
        for f in ETC_FILES {
            let p = layer.join("etc").join(f);
            fs::File::create_new(&p)?.set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        fs::rename(&aside, &shared)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&aside);
        // Another process made it first.
        if shared.exists() {
            return Ok(());
        }
    }
    made
}

/// Binds `src` over `target` with every mount under it, all read-only.
fn bind_ro(sys: &mut dyn Sys, src: &str, target: &Path) -> io::Result<()> {
    sys.mount(src, target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    sys.restrict(target, Restrict::ReadOnly, true)
}

/// Everything, from the overlay to the pivot; `cgroups` is what the
/// container may see of its cgroups (`None`: nothing).
/// `shared` is the store's shared directory ([`make_shared`]).
pub fn setup(
    spec: &Spec,
    dir: &Path,
    shared: &Path,
    cgroups: Option<&View>,
    sys: &mut dyn Sys,
) -> io::Result<()> {
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
    let mut lowers = vec![
        sys.canonicalize(&shared.join(LAYER))?,
        sys.canonicalize(&spec.rootfs)?,
    ];
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
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    if sys.rootless() {
        opts.push_str(",userxattr");
    }
    // nodev: a device node that an image or the container itself put in
    // its root filesystem opens nothing (only /dev's nodes do).
    let root_flags = if spec.privileged {
        MsFlags::empty()
    } else {
        MsFlags::MS_NODEV
    };
    // A volatile overlay leaves a mark in its work directory that refuses
    // the next mount: a transient container started again (restarted
    // through Docker's API, or not yet removed) takes it away first.
    let mark = work.join("work/incompat");
    if spec.transient() && sys.kind(&mark) == Kind::Dir {
        sys.remove_tree(&mark)?;
    }
    // Removed once it has exited: nothing it wrote is read after a crash,
    // so its overlay is volatile (as podman mounts a `--rm` container's):
    // its unmount does not sync the upper file system, the host's own, as
    // a whole (on the exit's path, for as long as the host has dirty
    // data), nor does the overlay pass on the container's own syncs.
    // (A kernel before 5.10, which lacks the option, mounts it as any.)
    let volatile = spec.transient()
        && sys
            .mount(
                "overlay",
                &merged,
                Some("overlay"),
                root_flags,
                Some(&format!("{opts},volatile")),
            )
            .is_ok();
    if volatile {
        Ok(())
    } else {
        sys.mount("overlay", &merged, Some("overlay"), root_flags, Some(&opts))
    }
    .map_err(|e| match sys.rootless() {
        true => io::Error::new(
            e.kind(),
            format!("{e} (rootless: overlayfs in a user namespace needs Linux 5.11 or later)"),
        ),
        false => e,
    })?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = merged.join("proc");
    sys.mkdir_all(&proc_dir)?;
    bind_etc(spec, &merged, sys)?;
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
    for (d, major, minor) in DEVICES {
        if sys.rootless() {
            // A user namespace makes no device node: the host's own are
            // bound on empty files (as runc does rootless).
            let node = dev.join(d);
            sys.create_file(&node)?;
            bind(
                sys,
                &Path::new("/dev").join(d),
                &node,
                false,
                Recursive::Disabled,
                true,
            )?;
        } else {
            sys.mknod(&dev.join(d), false, major, minor, 0o666)?;
        }
    }
    if sys.rootless() && !spec.devices.is_empty() {
        return Err(io::Error::other(format!(
            "device `{}`: a rootless engine cannot give a container the host's devices",
            spec.devices[0].path
        )));
    }
    // The host devices asked for, at their paths under /dev.
    for d in &spec.devices {
        let rel = Path::new(&d.path)
            .strip_prefix("/dev")
            .ok()
            .filter(|r| {
                !r.as_os_str().is_empty()
                    && r.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
            })
            .ok_or_else(|| {
                io::Error::other(format!("device `{}`: not a path under /dev", d.path))
            })?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            sys.mkdir_all(&dev.join(parent))?;
        }
        sys.mknod(&dev.join(rel), d.block, d.major, d.minor, d.mode)?;
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
    // The host's IPC namespace comes with its /dev/shm (POSIX shared
    // memory), and so does another container's: that one lives in its
    // mount namespace, out of a bind's reach, so a copy of the mount is
    // cloned there and attached here.
    match spec.ipc {
        crate::spec::Namespace::Join(pid) => sys.mount_from(pid, Path::new("/dev/shm"), &shm)?,
        crate::spec::Namespace::Own => {
            let shm_size = spec.shm_size.unwrap_or(64 * 1024 * 1024);
            sys.mount(
                "shm",
                &shm,
                Some("tmpfs"),
                nosuid_noexec_nodev,
                Some(&format!("mode=1777,size={shm_size}")),
            )?;
        }
        crate::spec::Namespace::Host => {
            sys.mount("/dev/shm", &shm, None, MsFlags::MS_BIND, None)?;
        }
    }
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
    // A fresh sysfs, whichever network namespace: it shows the host's
    // devices (read-only), but none of the host's mounts under /sys. Where
    // the kernel refuses it, the host's /sys read-only all the way down, as
    // runc does.
    let fresh = sys.mount(
        "sysfs",
        &sysfs,
        Some("sysfs"),
        nosuid_noexec_nodev | MsFlags::MS_RDONLY,
        None,
    );
    if fresh.is_err() {
        bind_ro(sys, "/sys", &sysfs)?;
    }
    if let Some(view) = cgroups {
        mount_cgroups(view, &sysfs.join("fs/cgroup"), spec.privileged, sys)?;
    }

    user_mounts(spec, &merged, sys)?;
    set_sysctls(&spec.sysctls, &merged, sys)?;
    if !spec.privileged {
        let empty = dir.join(MASK_FILE);
        if sys.kind(&empty) == Kind::Missing {
            sys.create_file(&empty)?;
        }
        for p in MASKED {
            mask(&merged.join(&p[1..]), &empty, sys)?;
        }
        // Each CPU's thermal throttling counters, as Docker masks them.
        for cpu in 0..possible_cpus() {
            let p = format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
            mask(&merged.join(p), &empty, sys)?;
        }
        for p in READ_ONLY {
            let p = merged.join(&p[1..]);
            if sys.kind(&p) != Kind::Missing {
                bind_ro(sys, &p.to_string_lossy(), &p)?;
            }
        }
    }

    sys.pivot(&merged)?;
    if spec.read_only {
        // The working directory is made while it still can be (as runc
        // makes it before the root goes read-only).
        let cwd = secure_join_with(Path::new("/"), &spec.cwd, sys)?;
        if sys.kind(&cwd) == Kind::Missing {
            sys.mkdir_all(&cwd)?;
        }
        sys.restrict(Path::new("/"), Restrict::ReadOnly, false)?;
    }
    Ok(())
}

/// The container's own cgroups at `target` (/sys/fs/cgroup of its root):
/// read-only unless privileged, as Docker has them.
fn mount_cgroups(
    view: &View,
    target: &Path,
    privileged: bool,
    sys: &mut dyn Sys,
) -> io::Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = if privileged {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    sys.mkdir_all(target)?;
    match view {
        // Its root is the container's cgroup: the container's PID 1 mounts
        // it from inside its own cgroup namespace.
        View::Unified => sys.mount("cgroup", target, Some("cgroup2"), flags | ro, None),
        View::Controllers(dirs) => {
            sys.mount(
                "tmpfs",
                target,
                Some("tmpfs"),
                flags,
                Some("mode=755,size=64k"),
            )?;
            for (c, dir) in dirs {
                let t = target.join(c);
                sys.mkdir_all(&t)?;
                let src = dir.to_string_lossy();
                sys.mount(&src, &t, None, MsFlags::MS_BIND, None)?;
                // No submounts in a cgroup directory: a remount sets all
                // its flags (as runc has them).
                let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | ro;
                sys.mount(&src, &t, None, remount, None)?;
            }
            sys.restrict(target, Restrict::ReadOnly, false)
        }
    }
}

/// Hides a path: an empty file of ours, read-only, over a file; an empty
/// read-only tmpfs over a directory.
/// How many CPUs the kernel may bring up (the host's
/// `/sys/devices/system/cpu/possible`: `0-3`, say).
fn possible_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<u32>().ok())
                .max()
        })
        .map_or(1, |last| last + 1)
}

fn mask(path: &Path, empty: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    match sys.kind(path) {
        Kind::Dir => sys.mount(
            "tmpfs",
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ),
        Kind::File => {
            sys.mount(&empty.to_string_lossy(), path, None, MsFlags::MS_BIND, None)?;
            sys.restrict(path, Restrict::ReadOnly, false)
        }
        Kind::Missing | Kind::Symlink(_) => Ok(()),
    }
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf of the container: files
/// of a tmpfs of its own (0644 whatever our umask), bound over the shared
/// layer's mount points as Docker binds its own, read-only with a
/// read-only root. Nothing is written through a path of the image's,
/// whose links would lead out of it before the pivot, and nothing lands in
/// the writable layer. The tmpfs is at /proc for the while, before proc is
/// mounted there; the binds keep its files once it is detached. Where the
/// writable layer hides a mount point (a container of an older version
/// that removed its /etc/hosts, or made it a link), the target is
/// resolved inside the container's root and made if missing.
fn bind_etc(spec: &Spec, merged: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if spec.hosts.is_empty() {
        hosts.push_str(&format!("127.0.1.1\t{}\n", spec.host_names()));
    }
    for h in &spec.hosts {
        hosts.push_str(h);
        hosts.push('\n');
    }
    // Where no network of ours says what it is: the host's in the host's
    // network (as Docker has it), none elsewhere.
    let resolv = match (&spec.resolv_conf, &spec.network) {
        (Some(r), _) => r.clone(),
        (None, crate::spec::NetworkMode::Host) => {
            sys.read(Path::new("/etc/resolv.conf")).unwrap_or_default()
        }
        (None, _) => String::new(),
    };
    let scratch = merged.join("proc");
    sys.mount(
        "tmpfs",
        &scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    let texts = [format!("{}\n", spec.hostname), hosts, resolv];
    for (name, text) in ETC_FILES.iter().zip(texts) {
        let file = scratch.join(name);
        sys.write_file(&file, &text, 0o644)?;
        let target = secure_join_with(merged, &format!("/etc/{name}"), sys)?;
        match sys.kind(&target) {
            Kind::File => {}
            Kind::Missing => {
                if let Some(parent) = target.parent() {
                    sys.mkdir_all(parent)?;
                }
                sys.create_file(&target)?;
            }
            other => {
                return Err(io::Error::other(format!(
                "/etc/{name} of the container is not a file ({other:?}): none can be bound there"
            )))
            }
        }
        sys.mount(
            &file.to_string_lossy(),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
        if spec.read_only {
            sys.restrict(&target, Restrict::ReadOnly, false)?;
        }
    }
    sys.unmount(&scratch)
}

/// `path` inside `root`, resolving symlinks as if `root` were `/`: a link in
/// the container's file system cannot lead a mount outside it.
pub fn secure_join(root: &Path, path: &str) -> io::Result<PathBuf> {
    secure_join_with(root, path, &Kernel)
}

/// `secure_join` on any `Sys`.
pub fn secure_join_with(root: &Path, path: &str, sys: &dyn Sys) -> io::Result<PathBuf> {
    Ok(root.join(resolve_beneath(path, &|rel| sys.kind(&root.join(rel)))?))
}

/// `path` resolved as the kernel would resolve it with `/` at the top of
/// a tree that `kind` reads (given a path relative to the top): every
/// symlink on the way and at the end followed, `..` never above the top.
/// The resolved path, relative to the top.
pub fn resolve_beneath(path: &str, kind: &dyn Fn(&Path) -> Kind) -> io::Result<PathBuf> {
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
        match kind(&resolved.join(&c)) {
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
    Ok(resolved)
}

/// A bind mount, with the mounts under its source unless `recursive`
/// leaves them out; nodev all the way down unless `devices` (privileged:
/// the host's device nodes under a bound directory, `/dev` itself or those
/// of a devtmpfs under `/`, open nothing otherwise, as Docker's device
/// controller has it, on v2 hosts too); read-only if asked, all the way down
/// unless `recursive` keeps the submounts writable.
fn bind(
    sys: &mut dyn Sys,
    source: &Path,
    target: &Path,
    read_only: bool,
    recursive: Recursive,
    devices: bool,
) -> io::Result<()> {
    let src = source.to_string_lossy();
    let mut flags = MsFlags::MS_BIND;
    if recursive != Recursive::Disabled {
        flags |= MsFlags::MS_REC;
    }
    sys.mount(&src, target, None, flags, None)?;
    if !devices {
        sys.restrict(target, Restrict::NoDev, true)?;
    }
    if read_only {
        let down = matches!(recursive, Recursive::Enabled | Recursive::Readonly);
        sys.restrict(target, Restrict::ReadOnly, down)?;
    }
    Ok(())
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
                bind(
                    sys,
                    &m.source,
                    &target,
                    m.read_only,
                    m.recursive,
                    spec.privileged,
                )?;
            }
            "volume" => {
                sys.mkdir_all(&m.source)?;
                sys.mkdir_all(&target)?;
                sys.copy_up(&target, &m.source)?;
                bind(
                    sys,
                    &m.source,
                    &target,
                    m.read_only,
                    Recursive::Enabled,
                    spec.privileged,
                )?;
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

/// Written through the container's /proc at `merged`, before /proc/sys is
/// made read-only.
fn set_sysctls(sysctls: &[(String, String)], merged: &Path, sys: &mut dyn Sys) -> io::Result<()> {
    for (k, v) in sysctls {
        if !namespaced_sysctl(k) || k.contains("..") || k.contains('/') {
            return Err(err(
                "sysctl",
                format!("`{k}` is not namespaced: it would change the host"),
            ));
        }
        let path = merged.join("proc/sys").join(k.replace('.', "/"));
        sys.write(&path, v)
            .map_err(|e| err(&format!("sysctl `{k}={v}`"), e))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
