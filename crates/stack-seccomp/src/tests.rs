use super::*;
use bpf::{Data, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS};
use proptest::prelude::*;

const EPERM: u32 = RET_ERRNO | 1;
const ENOSYS_RET: u32 = RET_ERRNO | 38;

/// Docker's default capabilities.
fn docker_caps() -> Vec<String> {
    [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .map(String::from)
    .to_vec()
}

fn target(extra: &[&str]) -> Target {
    let mut caps = docker_caps();
    caps.extend(extra.iter().map(|c| c.to_string()));
    Target {
        arch: Arch::X86_64,
        caps,
        kernel: (6, 1),
    }
}

fn call(arch: Arch, name: &str, args: &[u64]) -> Data {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Data {
        nr: arch
            .syscall(name)
            .unwrap_or_else(|| panic!("{name} on {arch:?}")),
        arch: arch.audit(),
        args: a,
    }
}

/// Runs the compiled filter and checks it agrees with the profile read directly.
fn answer(p: &Profile, t: &Target, d: &Data) -> u32 {
    let prog = compile(p, t).unwrap();
    let ran = bpf::run(&prog, d).expect("a program the kernel runs");
    assert_eq!(
        ran,
        decide(p, t, d).unwrap(),
        "filter and profile disagree on {d:?}"
    );
    ran
}

#[test]
fn dockers_default_profile_decides_as_docker() {
    let p = Profile::docker_default();
    let plain = target(&[]);
    let x = Arch::X86_64;
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    let table: &[(&Target, Data, u32)] = &[
        (&plain, call(x, "getpid", &[]), RET_ALLOW),
        (&plain, call(x, "io_uring_setup", &[1, 0]), EPERM),
        (&plain, call(x, "io_uring_enter", &[]), EPERM),
        (&plain, call(x, "pidfd_getfd", &[]), EPERM),
        (&plain, call(x, "keyctl", &[]), EPERM),
        (&plain, call(x, "bpf", &[]), EPERM),
        (&plain, call(x, "unshare", &[]), EPERM),
        (&plain, call(x, "mount", &[]), EPERM),
        (&plain, call(x, "open_by_handle_at", &[]), EPERM),
        (&plain, call(x, "clone3", &[]), ENOSYS_RET),
        (&plain, call(x, "clone", &[0x11]), RET_ALLOW),
        (&plain, call(x, "clone", &[CLONE_NEWUSER | 0x11]), EPERM),
        (&plain, call(x, "personality", &[0x8]), RET_ALLOW),
        (&plain, call(x, "personality", &[0xffff_ffff]), RET_ALLOW),
        (&plain, call(x, "personality", &[0x40_0000]), EPERM),
        (&plain, call(x, "socket", &[1]), RET_ALLOW),
        (&plain, call(x, "socket", &[40]), EPERM),
        (&plain, call(x, "socket", &[41]), RET_ALLOW),
        (&plain, call(x, "ptrace", &[]), RET_ALLOW),
        (&plain, call(x, "chroot", &[]), RET_ALLOW),
        (&plain, call(x, "arch_prctl", &[]), RET_ALLOW),
        (&plain, call(x, "mseal", &[]), RET_ALLOW),
        (&plain, call(x, "kcmp", &[]), EPERM),
        // A number inside the table's range that no rule allows, and one past
        // every call the profile names.
        (
            &plain,
            Data {
                nr: 400,
                arch: x.audit(),
                args: [0; 6],
            },
            EPERM,
        ),
        (
            &plain,
            Data {
                nr: 1000,
                arch: x.audit(),
                args: [0; 6],
            },
            ENOSYS_RET,
        ),
        // i386 and x32 calls on an x86_64 host, as Docker's archMap allows them.
        (&plain, call(Arch::X86, "getpid", &[]), RET_ALLOW),
        (&plain, call(Arch::X86, "io_uring_setup", &[]), EPERM),
        (&plain, call(Arch::X32, "read", &[]), RET_ALLOW),
        (&plain, call(Arch::X32, "keyctl", &[]), EPERM),
        // Another architecture altogether.
        (
            &plain,
            Data {
                nr: 39,
                arch: AUDIT_ARCH_AARCH64,
                args: [0; 6],
            },
            RET_KILL_PROCESS,
        ),
    ];
    for (t, d, want) in table {
        assert_eq!(answer(&p, t, d), *want, "{d:?}");
    }
    let admin = target(&["CAP_SYS_ADMIN"]);
    assert_eq!(answer(&p, &admin, &call(x, "clone3", &[])), RET_ALLOW);
    assert_eq!(answer(&p, &admin, &call(x, "unshare", &[])), RET_ALLOW);
    assert_eq!(
        answer(&p, &admin, &call(x, "clone", &[CLONE_NEWUSER])),
        RET_ALLOW
    );
    let ptrace = target(&["CAP_SYS_PTRACE"]);
    assert_eq!(answer(&p, &ptrace, &call(x, "pidfd_getfd", &[])), RET_ALLOW);
    assert_eq!(answer(&p, &ptrace, &call(x, "kcmp", &[])), RET_ALLOW);
    let old = Target {
        kernel: (4, 4),
        ..target(&[])
    };
    assert_eq!(answer(&p, &old, &call(x, "ptrace", &[])), EPERM);
    let arm = Target {
        arch: Arch::Aarch64,
        ..target(&[])
    };
    assert_eq!(
        answer(&p, &arm, &call(Arch::Aarch64, "openat", &[])),
        RET_ALLOW
    );
    assert_eq!(
        answer(&p, &arm, &call(Arch::Aarch64, "io_uring_setup", &[])),
        EPERM
    );
    assert_eq!(answer(&p, &arm, &call(x, "getpid", &[])), RET_KILL_PROCESS);
}

#[test]
fn the_default_filter_fits_the_kernel() {
    for caps in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"][..]] {
        let n = compile(&Profile::docker_default(), &target(caps))
            .unwrap()
            .len();
        assert!(n < bpf::MAX_INSNS, "{n} instructions");
    }
}

/// Every call is looked up by halves: a few instructions, not one
/// comparison per call the profile names.
#[test]
fn a_call_is_decided_in_a_few_instructions() {
    let t = target(&[]);
    let prog = compile(&Profile::docker_default(), &t).unwrap();
    for arch in [Arch::X86_64, Arch::X32, Arch::X86] {
        let mut most = 0;
        for (name, _) in arch.syscalls() {
            let (_, steps) = bpf::run_counted(&prog, &call(arch, name, &[])).unwrap();
            most = most.max(steps);
        }
        assert!(most <= 40, "{arch:?}: up to {most} instructions a call");
    }
    assert!(prog.len() < 1200, "{} instructions", prog.len());
}

#[test]
fn bad_profiles_are_refused_with_the_reason() {
    let e = |s: &str| Profile::parse(s).unwrap_err().to_string();
    assert!(e("{\"defaultAction\": \"SCMP_ACT_NOPE\"}").contains("unknown action `SCMP_ACT_NOPE`"));
    assert!(e("{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscals\": []}").contains("line 2"));
    assert!(e(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#)
        .contains("both `name` and `names`"));
    assert!(e(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#)
        .contains("index 6"));
    assert!(e(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).contains("not supported"));
    assert!(
        e(r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_X"]}"#)
            .contains("unsupported flag")
    );
    let ok =
        Profile::parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#)
            .unwrap();
    assert_eq!(ok.filter_flags(), Ok(FLAG_LOG));
}

#[test]
fn an_allowing_default_has_no_enosys_beyond_the_table() {
    let p = Profile::parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let t = target(&[]);
    assert_eq!(
        answer(&p, &t, &call(Arch::X86_64, "mkdir", &[])),
        RET_ERRNO | 13
    );
    assert_eq!(
        answer(
            &p,
            &t,
            &Data {
                nr: 1000,
                arch: AUDIT_ARCH_X86_64,
                args: [0; 6]
            }
        ),
        RET_ALLOW
    );
    // No archMap: the native architecture only.
    assert_eq!(
        answer(&p, &t, &call(Arch::X86, "getpid", &[])),
        RET_KILL_PROCESS
    );
}

const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
const NAMES: [&str; 6] = ["read", "write", "openat", "socket", "clone", "personality"];
const VALUES: [u64; 7] = [0, 1, 40, 0xffff_ffff, 0x1_0000_0000, 0x7e02_0000, u64::MAX];

fn arg() -> impl Strategy<Value = (u32, u64, u64, usize)> {
    (
        0u32..3,
        prop::sample::select(&VALUES[..]),
        prop::sample::select(&VALUES[..]),
        0..OPS.len(),
    )
}

fn rule() -> impl Strategy<Value = String> {
    (
        prop::sample::subsequence(&NAMES[..], 1..3),
        prop::collection::vec(arg(), 0..3),
        prop::bool::ANY,
    )
        .prop_map(|(names, args, allow)| {
            let args: Vec<String> = args
                .iter()
                .map(|(i, v, v2, o)| {
                    format!(
                        r#"{{"index":{i},"value":{v},"valueTwo":{v2},"op":"{}"}}"#,
                        OPS[*o]
                    )
                })
                .collect();
            let action = if allow {
                r#""SCMP_ACT_ALLOW""#
            } else {
                r#""SCMP_ACT_ERRNO","errnoRet":13"#
            };
            format!(
                r#"{{"names":{names:?},"action":{action},"args":[{}]}}"#,
                args.join(",")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    /// The compiled program answers every call as the profile does, for
    /// random profiles with every operator, on 64-bit and 32-bit ABIs.
    #[test]
    fn compiled_filters_agree_with_their_profile(
        rules in prop::collection::vec(rule(), 0..6),
        deny in prop::bool::ANY,
        name in prop::sample::select(&NAMES[..]),
        args in prop::collection::vec((prop_oneof![prop::sample::select(&VALUES[..]), any::<u64>()], -1i64..=1), 6),
        i386 in prop::bool::ANY,
    ) {
        let default = if deny { "SCMP_ACT_ERRNO" } else { "SCMP_ACT_ALLOW" };
        let json = format!(
            r#"{{"defaultAction":"{default}","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{}]}}"#,
            rules.join(",")
        );
        let p = Profile::parse(&json).unwrap();
        let arch = if i386 { Arch::X86 } else { Arch::X86_64 };
        let args: Vec<u64> = args.iter().map(|(a, adjust)| a.wrapping_add_signed(*adjust)).collect();
        let d = call(arch, name, &args);
        answer(&p, &target(&[]), &d);
    }
}

/// The tables sorted by name (made at build time) give every call of the
/// text tables its number, and no name they lack.
#[test]
fn the_sorted_tables_agree_with_the_text() {
    for arch in [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64] {
        let mut n = 0;
        for (name, nr) in arch.syscalls() {
            assert_eq!(arch.syscall(name), Some(nr), "{name} on {arch:?}");
            n += 1;
        }
        assert!(n > 300, "{arch:?}: {n} calls");
        assert_eq!(arch.syscall("no_such_call"), None);
        assert_eq!(arch.syscall(""), None);
    }
}
