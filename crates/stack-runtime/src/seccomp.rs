//! Installs a container's seccomp filter: Docker's default profile (or the
//! one the container was given) compiled by `stack-seccomp` for this host's
//! architecture, the capabilities the container keeps and the running kernel.

use std::collections::HashSet;
use std::io;

use caps::Capability;
use stack_seccomp::{Arch, Profile, Target};

/// The profile `spec` asks for: its own, or Docker's default.
pub fn profile(custom: Option<&str>) -> io::Result<Profile> {
    match custom {
        Some(json) => Profile::parse(json).map_err(io::Error::other),
        None => Ok(Profile::docker_default()),
    }
}

fn kernel() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// Compiles `p` for a container holding `caps` on this host.
pub fn compile(
    p: &Profile,
    caps: &HashSet<Capability>,
) -> io::Result<Vec<stack_seccomp::bpf::Insn>> {
    let arch = Arch::native().ok_or_else(|| {
        io::Error::other(format!(
            "seccomp: no system call table for `{}`",
            std::env::consts::ARCH
        ))
    })?;
    let target = Target {
        arch,
        caps: caps.iter().map(|c| c.to_string()).collect(),
        kernel: kernel(),
    };
    stack_seccomp::compile(p, &target).map_err(io::Error::other)
}

/// Installs `prog` on this thread (and all it starts). Needs no_new_privs
/// or CAP_SYS_ADMIN.
pub fn apply(prog: &[stack_seccomp::bpf::Insn], flags: u32) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    #[allow(unsafe_code)]
    // SAFETY: `Insn` has the layout of `struct sock_filter` (repr(C), same
    // fields); `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program before it returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(io::Error::other(format!(
            "seccomp: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Checks that a profile in Docker's format reads and compiles here, so a
/// container given a broken one fails at create, naming the profile.
pub fn check(json: &str) -> io::Result<()> {
    compile(&profile(Some(json))?, &HashSet::new()).map(|_| ())
}
