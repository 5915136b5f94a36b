//! A seccomp filter with the effect of Docker's default profile for a
//! container without extra capabilities: the system calls that profile
//! leaves out fail with EPERM, everything else is allowed.
//!
//! Docker's profile is an allow-list; ours lists what it denies. The calls
//! it allows only with a capability (`CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, ...)
//! are allowed here when the container holds that capability.

use std::collections::{BTreeMap, HashSet};
use std::io;

use caps::Capability;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// Denied always (unless privileged or unconfined).
const DENIED: &[(&str, i64)] = &[
    ("acct", libc::SYS_acct),
    ("add_key", libc::SYS_add_key),
    ("bpf", libc::SYS_bpf),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_settime", libc::SYS_clock_settime),
    ("delete_module", libc::SYS_delete_module),
    ("finit_module", libc::SYS_finit_module),
    ("get_mempolicy", libc::SYS_get_mempolicy),
    ("init_module", libc::SYS_init_module),
    ("ioperm", libc::SYS_ioperm),
    ("iopl", libc::SYS_iopl),
    ("kcmp", libc::SYS_kcmp),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("kexec_load", libc::SYS_kexec_load),
    ("keyctl", libc::SYS_keyctl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("mbind", libc::SYS_mbind),
    ("move_pages", libc::SYS_move_pages),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("quotactl", libc::SYS_quotactl),
    ("request_key", libc::SYS_request_key),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("settimeofday", libc::SYS_settimeofday),
    ("swapoff", libc::SYS_swapoff),
    ("swapon", libc::SYS_swapon),
    ("_sysctl", libc::SYS__sysctl),
    ("sysfs", libc::SYS_sysfs),
    ("uselib", libc::SYS_uselib),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("ustat", libc::SYS_ustat),
    ("vhangup", libc::SYS_vhangup),
];

/// Denied unless the container holds the capability.
const NEEDS_CAP: &[(&str, i64, Capability)] = &[
    ("mount", libc::SYS_mount, Capability::CAP_SYS_ADMIN),
    ("umount2", libc::SYS_umount2, Capability::CAP_SYS_ADMIN),
    (
        "pivot_root",
        libc::SYS_pivot_root,
        Capability::CAP_SYS_ADMIN,
    ),
    ("unshare", libc::SYS_unshare, Capability::CAP_SYS_ADMIN),
    ("setns", libc::SYS_setns, Capability::CAP_SYS_ADMIN),
    (
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        Capability::CAP_SYS_ADMIN,
    ),
    ("fsopen", libc::SYS_fsopen, Capability::CAP_SYS_ADMIN),
    ("fsmount", libc::SYS_fsmount, Capability::CAP_SYS_ADMIN),
    (
        "move_mount",
        libc::SYS_move_mount,
        Capability::CAP_SYS_ADMIN,
    ),
    ("open_tree", libc::SYS_open_tree, Capability::CAP_SYS_ADMIN),
    ("syslog", libc::SYS_syslog, Capability::CAP_SYSLOG),
    ("ptrace", libc::SYS_ptrace, Capability::CAP_SYS_PTRACE),
    (
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        Capability::CAP_SYS_PTRACE,
    ),
    (
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        Capability::CAP_SYS_PTRACE,
    ),
    ("reboot", libc::SYS_reboot, Capability::CAP_SYS_BOOT),
    ("stime", -1, Capability::CAP_SYS_TIME),
];

/// The names of the calls denied to a container holding `caps`.
pub fn denied(caps: &HashSet<Capability>) -> Vec<(&'static str, i64)> {
    let mut out: Vec<(&str, i64)> = DENIED.to_vec();
    out.extend(
        NEEDS_CAP
            .iter()
            .filter(|(_, nr, cap)| *nr >= 0 && !caps.contains(cap))
            .map(|(n, nr, _)| (*n, *nr)),
    );
    out
}

fn arch() -> io::Result<TargetArch> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(io::Error::other(format!(
            "seccomp: unsupported architecture `{other}`"
        ))),
    }
}

/// Compiles the filter for a container holding `caps`.
pub fn filter(caps: &HashSet<Capability>) -> io::Result<BpfProgram> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = denied(caps)
        .into_iter()
        .map(|(_, nr)| (nr, vec![]))
        .collect();
    let f = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    f.try_into()
        .map_err(|e: seccompiler::BackendError| io::Error::other(format!("seccomp: {e}")))
}

/// Installs the filter on this thread (and all it starts). Needs no_new_privs
/// or CAP_SYS_ADMIN.
pub fn apply(prog: &BpfProgram) -> io::Result<()> {
    seccompiler::apply_filter(prog).map_err(|e| io::Error::other(format!("seccomp: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_open_their_calls() {
        let none = HashSet::new();
        let admin: HashSet<Capability> = [Capability::CAP_SYS_ADMIN].into_iter().collect();
        let names =
            |c: &HashSet<Capability>| denied(c).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert!(names(&none).contains(&"unshare") && names(&none).contains(&"keyctl"));
        assert!(!names(&admin).contains(&"unshare") && names(&admin).contains(&"keyctl"));
        assert!(filter(&none).is_ok());
    }
}
