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

/// A container's filter compiled ahead of its init, by the caller that
/// starts it (`spawn_monitor`), for the capabilities it was compiled for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Compiled {
    /// The capabilities the container keeps, sorted by name.
    caps: Vec<String>,
    flags: u32,
    /// Each instruction packed in one number: code, jt, jf, k.
    prog: Vec<u64>,
}

impl Compiled {
    /// `prog` with its filter flags, compiled for `caps`.
    pub fn new(
        prog: &[stack_seccomp::bpf::Insn],
        flags: u32,
        caps: &HashSet<Capability>,
    ) -> Compiled {
        let prog = prog
            .iter()
            .map(|i| {
                u64::from(i.code) << 48
                    | u64::from(i.jt) << 40
                    | u64::from(i.jf) << 32
                    | u64::from(i.k)
            })
            .collect();
        Compiled {
            caps: names(caps),
            flags,
            prog,
        }
    }

    /// The program and its flags, where it was compiled for exactly `caps`.
    pub fn for_caps(
        &self,
        caps: &HashSet<Capability>,
    ) -> Option<(Vec<stack_seccomp::bpf::Insn>, u32)> {
        let prog = self.prog.iter().map(|&w| stack_seccomp::bpf::Insn {
            code: (w >> 48) as u16,
            jt: (w >> 40) as u8,
            jf: (w >> 32) as u8,
            k: w as u32,
        });
        (self.caps == names(caps)).then(|| (prog.collect(), self.flags))
    }
}

fn names(caps: &HashSet<Capability>) -> Vec<String> {
    let mut names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    names.sort();
    names
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_compiled_ahead_is_the_one_init_would_compile_for_its_capabilities() {
        let profile = Profile::docker_default();
        let default: HashSet<Capability> = [Capability::CAP_CHOWN, Capability::CAP_KILL].into();
        let admin: HashSet<Capability> = [Capability::CAP_SYS_ADMIN].into();
        for caps in [&default, &admin] {
            let prog = compile(&profile, caps).unwrap();
            let ahead = Compiled::new(&prog, 2, caps);
            // Through the payload, as the monitor reads it.
            let json = serde_json::to_string(&ahead).unwrap();
            let read: Compiled = serde_json::from_str(&json).unwrap();
            assert_eq!(read.for_caps(caps), Some((prog, 2)));
        }
        // Compiled for other capabilities (CAP_SYS_ADMIN opens calls the
        // default set does not): not taken.
        let prog = compile(&profile, &admin).unwrap();
        assert_ne!(prog, compile(&profile, &default).unwrap());
        assert_eq!(Compiled::new(&prog, 0, &admin).for_caps(&default), None);
    }
}
