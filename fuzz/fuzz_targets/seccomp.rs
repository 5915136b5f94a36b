//! Any seccomp profile (`--security-opt seccomp=FILE`): it is refused with
//! a reason, or compiles to a program the kernel accepts whose answers are
//! the profile's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_seccomp::{bpf, Arch, Profile, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(p) = Profile::parse(text) else { return };
    let t = Target {
        arch: Arch::X86_64,
        caps: vec!["CAP_SYS_ADMIN".into()],
        kernel: (6, 1),
    };
    let Ok(prog) = stack_seccomp::compile(&p, &t) else { return };
    assert!(prog.len() <= bpf::MAX_INSNS);
    for nr in [0, 1, 56, 165, 400, 1000, 0x4000_0001] {
        for arch in [0xC000_003Eu32, 0x4000_0003] {
            let d = bpf::Data { nr, arch, args: [0, 1, u64::MAX, 40, 0x8000_0000, 7] };
            let ran = bpf::run(&prog, &d).expect("a program that runs");
            assert_eq!(ran, stack_seccomp::decide(&p, &t, &d).unwrap());
        }
    }
});
