//! The embedded container runtime.
//!
//! A container is born from a fresh process: the binary re-executes a sealed
//! copy of itself (a memfd, so the container cannot overwrite the engine
//! through /proc/self/exe, CVE-2019-5736) in a hidden init mode. That process
//! unshares the mount, UTS, IPC, network and PID namespaces and forks the
//! container's PID 1, which puts an overlay over the root filesystem
//! directory, mounts /proc, /dev and /sys, pivots into it and runs the app
//! under a tiny init that forwards signals and reaps zombies.
//!
//! Every mount lives in the container's own mount namespace: when the
//! container's last process exits, the kernel takes the mounts away.

pub mod cgroup;
mod init;
mod rootfs;
mod seal;
mod seccomp;
mod security;
mod spec;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use init::{init_main, INIT_ARG};
pub use spec::Spec;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("root filesystem `{}` is not a directory", .0.display())]
    NoRootfs(PathBuf),
    #[error("cannot prepare container `{id}`: {source}")]
    Prepare {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clean up container `{id}`: {source}")]
    Cleanup {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start container `{id}`: {source}")]
    Start {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal that killed it.
    pub code: i32,
    /// The kernel killed a process of the container for lack of memory.
    pub oom_killed: bool,
}

/// The state directory of a container under `root`.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id)
}

/// Runs a container in the foreground and waits for it. With `remove`, its
/// state directory is deleted afterwards (on every path out).
pub fn run(spec: &Spec, root: &Path, remove: bool) -> Result<Exit, RuntimeError> {
    if !spec.rootfs.is_dir() {
        return Err(RuntimeError::NoRootfs(spec.rootfs.clone()));
    }
    let dir = container_dir(root, &spec.id);
    let prepare = |source| RuntimeError::Prepare {
        id: spec.id.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(prepare)?;
    let cgroups = cgroup::layout(&spec.id).map_err(prepare)?;
    let result = start_and_wait(spec, &dir).map(|code| Exit {
        code,
        oom_killed: cgroup::oom_killed(&cgroups),
    });
    // The container's processes are gone with its PID 1: its cgroups can go.
    let leftovers = cgroup::remove(&cgroups);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match (result, leftovers.into_iter().next()) {
        (Ok(_), Some(e)) => Err(RuntimeError::Cleanup {
            id: spec.id.clone(),
            source: e,
        }),
        (r, _) => r,
    }
}

fn start_and_wait(spec: &Spec, dir: &Path) -> Result<i32, RuntimeError> {
    let start = |source| RuntimeError::Start {
        id: spec.id.clone(),
        source,
    };
    let exe = seal::sealed_self().map_err(start)?;
    let json = serde_json::to_string(&(spec, dir)).map_err(|e| start(std::io::Error::other(e)))?;
    // The spec goes through a pipe, not the command line: PID 1's cmdline
    // is visible inside the container.
    let (read, write) = nix::unistd::pipe().map_err(|e| start(e.into()))?;
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| start(e.into()))?;
    let mut child = Command::new(seal::fd_path(&exe))
        .arg(INIT_ARG)
        .arg(read.as_raw_fd().to_string())
        .spawn()
        .map_err(start)?;
    drop(read);
    let mut write = std::fs::File::from(write);
    let sent = std::io::Write::write_all(&mut write, json.as_bytes());
    drop(write);
    let status = child.wait().map_err(start)?;
    sent.map_err(start)?;
    drop(exe);
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
