//! The container's file system: overlay over the rootfs directory, /proc,
//! /dev, /sys, Docker's masked and read-only paths, then pivot_root. Runs as
//! the container's PID 1, inside its own mount namespace.

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::spec::Spec;

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

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

fn mnt(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    mount(Some(src), target, fstype, flags, data)
        .map_err(|e| err(&format!("mount {src} on {}", target.display()), e))
}

pub fn setup(spec: &Spec, dir: &Path) -> io::Result<()> {
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("make / private", e))?;

    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir_all(d)?;
    }
    let lower = spec.rootfs.canonicalize()?;
    for p in [&lower, &upper, &work] {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(err("overlay", format!("path `{s}` contains `,` or `:`")));
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mnt(
        "overlay",
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = merged.join("proc");
    fs::create_dir_all(&proc_dir)?;
    mnt("proc", &proc_dir, Some("proc"), nosuid_noexec_nodev, None)?;

    let dev = merged.join("dev");
    fs::create_dir_all(&dev)?;
    mnt(
        "tmpfs",
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let target = dev.join(d);
        fs::File::create(&target)?;
        mnt(&format!("/dev/{d}"), &target, None, MsFlags::MS_BIND, None)?;
    }
    let pts = dev.join("pts");
    fs::create_dir_all(&pts)?;
    mnt(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    fs::create_dir_all(&shm)?;
    let shm_size = spec.shm_size.unwrap_or(64 * 1024 * 1024);
    mnt(
        "shm",
        &shm,
        Some("tmpfs"),
        nosuid_noexec_nodev,
        Some(&format!("mode=1777,size={shm_size}")),
    )?;
    let mqueue = dev.join("mqueue");
    fs::create_dir_all(&mqueue)?;
    mnt("mqueue", &mqueue, Some("mqueue"), nosuid_noexec_nodev, None)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))?;
    }

    let sys = merged.join("sys");
    fs::create_dir_all(&sys)?;
    // sysfs can be mounted only in a network namespace of our own; otherwise
    // the host's /sys is bound read-only, as runc does.
    if spec.network == crate::spec::NetworkMode::New {
        mnt(
            "sysfs",
            &sys,
            Some("sysfs"),
            nosuid_noexec_nodev | MsFlags::MS_RDONLY,
            None,
        )?;
    } else {
        mnt("/sys", &sys, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        mnt(
            "/sys",
            &sys,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
            None,
        )?;
    }

    write_etc(spec, &merged)?;
    user_mounts(spec, &merged)?;

    // Into the new root; the old one is detached from under us.
    chdir(&merged).map_err(|e| err("chdir", e))?;
    pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach old root", e))?;
    chdir("/").map_err(|e| err("chdir /", e))?;
    if spec.read_only {
        mnt(
            "/",
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }

    set_sysctls(&spec.sysctls)?;
    if spec.privileged {
        return Ok(());
    }
    for p in MASKED {
        mask(Path::new(p))?;
    }
    for p in READ_ONLY {
        let path = Path::new(p);
        if path.exists() {
            mnt(p, path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
            mnt(
                p,
                path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                None,
            )?;
        }
    }
    if spec.read_only {
        mnt(
            "/",
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => mnt("tmpfs", path, Some("tmpfs"), MsFlags::MS_RDONLY, None),
        Ok(_) => mnt("/dev/null", path, None, MsFlags::MS_BIND, None),
        Err(_) => Ok(()),
    }
}

/// /etc/hostname and /etc/hosts of the container, in its writable layer.
fn write_etc(spec: &Spec, merged: &Path) -> io::Result<()> {
    let etc = merged.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(etc.join("hostname"), format!("{}\n", spec.hostname))?;
    fs::write(
        etc.join("hosts"),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            spec.hostname
        ),
    )?;
    if !etc.join("resolv.conf").exists() {
        fs::write(etc.join("resolv.conf"), "")?;
    }
    Ok(())
}

/// `path` inside `root`, resolving symlinks as if `root` were `/`: a link in
/// the container's file system cannot lead a mount outside it.
pub fn secure_join(root: &Path, path: &str) -> io::Result<std::path::PathBuf> {
    let mut resolved = std::path::PathBuf::new();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .rev()
        .collect();
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
        let candidate = root.join(&resolved).join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(err("resolve", format!("too many symlinks in `{path}`")));
                }
                let target = fs::read_link(&candidate)?;
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    resolved = std::path::PathBuf::new();
                }
                pending.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .rev(),
                );
            }
            _ => resolved.push(&c),
        }
    }
    Ok(root.join(resolved))
}

/// The user's bind and tmpfs mounts, on the new root before pivoting.
fn user_mounts(spec: &Spec, merged: &Path) -> io::Result<()> {
    for m in &spec.mounts {
        let target = secure_join(merged, &m.target)?;
        match m.kind.as_str() {
            "bind" => {
                let meta = fs::metadata(&m.source)
                    .map_err(|e| err(&format!("bind mount source `{}`", m.source.display()), e))?;
                if meta.is_dir() {
                    fs::create_dir_all(&target)?;
                } else {
                    if let Some(p) = target.parent() {
                        fs::create_dir_all(p)?;
                    }
                    if !target.exists() {
                        fs::File::create(&target)?;
                    }
                }
                let src = m.source.to_string_lossy().to_string();
                mnt(
                    &src,
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                if m.read_only {
                    mnt(
                        &src,
                        &target,
                        None,
                        MsFlags::MS_BIND
                            | MsFlags::MS_REMOUNT
                            | MsFlags::MS_RDONLY
                            | MsFlags::MS_REC,
                        None,
                    )?;
                }
            }
            "tmpfs" => {
                fs::create_dir_all(&target)?;
                let mut data = String::from("mode=1777");
                if let Some(size) = m.size {
                    data.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                if m.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                mnt("tmpfs", &target, Some("tmpfs"), flags, Some(&data))?;
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

fn set_sysctls(sysctls: &[(String, String)]) -> io::Result<()> {
    for (k, v) in sysctls {
        if !namespaced_sysctl(k) || k.contains("..") || k.contains('/') {
            return Err(err(
                "sysctl",
                format!("`{k}` is not namespaced: it would change the host"),
            ));
        }
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        fs::write(&path, v).map_err(|e| err(&format!("sysctl `{k}={v}`"), e))?;
    }
    Ok(())
}
