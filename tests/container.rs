//! `stack container run` for real, as root: namespaces, overlay, PID 1,
//! exit codes, isolation and cleanup, on a busybox root filesystem made here
//! from Debian's busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The common fixture (its own `STACK_ROOT`, and on drop every container
/// removed: processes, mounts and cgroups), with a busybox root filesystem
/// in `rootfs`.
struct Env(common::Env);

impl std::ops::Deref for Env {
    type Target = common::Env;
    fn deref(&self) -> &common::Env {
        &self.0
    }
}

impl Env {
    fn new(name: &str) -> Self {
        let e = Env(common::Env::new("container", name));
        let bin = e.rootfs().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(e.rootfs().join("etc")).unwrap();
        std::fs::write(
            e.rootfs().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            e.rootfs().join("etc/group"),
            "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        )
        .unwrap();
        std::fs::copy(common::busybox(), bin.join("busybox")).unwrap();
        for applet in [
            "sh", "cat", "echo", "ls", "ps", "hostname", "touch", "sleep", "kill", "pwd", "id",
            "wc", "grep", "swapon", "chown", "unshare", "ip", "nc", "tty", "stty", "mkdir",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        e
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn run(&self, flags: &[&str], script: &str) -> Output {
        let rootfs = self.rootfs();
        let mut args = vec!["container", "run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--rootfs", rootfs.to_str().unwrap(), "sh", "-c", script]);
        self.stack(&args)
    }

    fn sh(&self, flags: &[&str], script: &str) -> String {
        let o = self.run(flags, script);
        assert!(
            o.status.success(),
            "`{script}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Nothing of ours is left: no state, no mount, no process.
    fn assert_clean(&self) {
        let containers = self.root().join("containers");
        let left: Vec<_> = std::fs::read_dir(&containers)
            .map(|d| d.filter_map(Result::ok).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "state left behind: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(self.dir.to_str().unwrap()),
            "mounts left behind"
        );
    }
}

#[test]
fn init_is_pid_1_and_the_app_runs_under_it() {
    let e = Env::new("pid1");
    let out = e.sh(&[], "echo $$; cat /proc/1/cmdline | tr '\\0' ' '");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"));
    assert!(lines.next().unwrap().contains("__stack-init"), "{out}");
    assert_eq!(e.sh(&["--no-init"], "echo $$"), "1\n");
    e.assert_clean();
}

#[test]
fn the_spec_does_not_leak_into_pid_1() {
    let e = Env::new("leak");
    let out = e.sh(
        &[],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc/1/fd | wc -l",
    );
    assert!(
        !out.contains(e.dir.to_str().unwrap()),
        "host paths visible to the container: {out}"
    );
    assert_eq!(
        out.lines().nth(1),
        Some("3"),
        "PID 1 holds descriptors beyond stdio: {out}"
    );
}

#[test]
fn exit_codes_and_signals() {
    let e = Env::new("exit");
    assert_eq!(e.run(&[], "exit 42").status.code(), Some(42));
    assert_eq!(e.run(&[], "kill -9 $$").status.code(), Some(137));
    assert_eq!(e.run(&["--no-init"], "exit 3").status.code(), Some(3));
    let rootfs = e.rootfs();
    let o = Command::new(env!("CARGO_BIN_EXE_stack"))
        .args([
            "container",
            "run",
            "--rm",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "no-such-command",
        ])
        .env("STACK_ROOT", e.root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`no-such-command`: executable file not found")
    );
    e.assert_clean();
}

#[test]
fn hostname_env_and_workdir() {
    let e = Env::new("uts");
    let out = e.sh(
        &["--hostname", "web", "-e", "GREETING=hi", "-w", "/srv/app"],
        "hostname; cat /etc/hostname; echo $GREETING; pwd",
    );
    assert_eq!(out, "web\nweb\nhi\n/srv/app\n");
}

#[test]
fn the_rootfs_is_never_modified_and_host_files_are_invisible() {
    let e = Env::new("fs");
    std::fs::write(e.dir.join("host-secret"), "x").unwrap();
    let out = e.sh(
        &[],
        "touch /written; ls /; ls / | grep -c host-secret || true",
    );
    assert!(out.contains("written"), "{out}");
    assert!(out.ends_with("0\n"), "{out}");
    assert!(
        !e.rootfs().join("written").exists(),
        "the container wrote into its rootfs directory"
    );
    let o = e.run(&["--read-only"], "touch /x");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only file system"));
    // /etc's files: the container's own, 0644 whatever the engine's umask;
    // read-only with the root, as Docker has them.
    let out = e.sh(
        &[],
        "stat -c '%a %n' /etc/hostname /etc/hosts /etc/resolv.conf",
    );
    assert_eq!(
        out,
        "644 /etc/hostname\n644 /etc/hosts\n644 /etc/resolv.conf\n"
    );
    let o = e.run(&["--read-only"], "echo 10.0.0.1 x >> /etc/hosts");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only file system"));
    e.assert_clean();
}

#[test]
fn proc_dev_and_masked_paths() {
    let e = Env::new("mounts");
    let out = e.sh(
        &[],
        "ls /dev; cat /proc/keys | wc -c; cat /proc/interrupts | wc -c; grep ' /sys ' /proc/mounts; cat /proc/1/mem /proc/self/mem 2>&1; true",
    );
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    assert!(
        out.contains("\n0\n0\n"),
        "/proc/keys or /proc/interrupts is not masked: {out}"
    );
    // Our init's memory is not the app's to read; its own is (EIO at 0).
    assert!(
        out.contains("can't open '/proc/1/mem': Permission denied")
            && out.contains("read error: Input/output error"),
        "{out}"
    );
    assert!(
        out.contains("sysfs /sys sysfs ro"),
        "/sys is not read-only: {out}"
    );
}

#[test]
fn the_engine_binary_cannot_be_overwritten_from_inside() {
    let e = Env::new("exe");
    // PID 1 is not dumpable: its files are out of the app's reach.
    let o = e.run(&[], "echo pwned > /proc/1/exe");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("can't create /proc/1/exe: Permission denied"),
        "{o:?}"
    );
    // With the right to reach them, still refused: PID 1 runs from a
    // read-only overlay of the binary's directory, which nothing can make
    // writable (not even a privileged container, CAP_SYS_ADMIN and all).
    for caps in [&["--cap-add", "SYS_PTRACE"][..], &["--privileged"]] {
        let o = e.run(caps, "echo pwned > /proc/1/exe");
        assert!(!o.status.success(), "writing /proc/1/exe succeeded");
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains("can't create /proc/1/exe: Read-only file system"),
            "{o:?}"
        );
        // The overlay's own path, not the host's; the small binary
        // installed beside ours, not ours.
        let out = e.sh(caps, "ls -l /proc/1/exe");
        assert!(
            out.trim_end().ends_with("/proc/1/exe -> /stack-init"),
            "{out}"
        );
    }
    for bin in [
        env!("CARGO_BIN_EXE_stack"),
        env!("CARGO_BIN_EXE_stack-init"),
    ] {
        let bytes = std::fs::read(bin).unwrap();
        assert!(!bytes.ends_with(b"pwned\n"), "{bin} was written to");
    }
}

/// `stack` runs containers on `stack-init` only where that is one of its
/// own build, fit to run as root; else on itself.
#[test]
fn stack_init_is_used_only_when_it_is_of_our_build() {
    let e = Env::new("alone");
    let rootfs = e.rootfs();
    let init = std::fs::canonicalize(env!("CARGO_BIN_EXE_stack-init")).unwrap();
    // Beside `stack` (a link: the same file) in a directory of its own:
    // nothing; a binary of another program; ours through a symbolic link.
    let other = |p: &std::path::Path| {
        std::fs::copy(common::busybox(), p).unwrap();
    };
    let linked = |p: &std::path::Path| std::os::unix::fs::symlink(&init, p).unwrap();
    type Make<'a> = Option<&'a dyn Fn(&std::path::Path)>;
    let cases: [(&str, Make, &str); 3] = [
        ("alone", None, "/stack"),
        ("other", Some(&other), "/stack"),
        ("linked", Some(&linked), "/stack-init"),
    ];
    for (case, beside, runs) in cases {
        let dir = e.dir.join(case);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::hard_link(env!("CARGO_BIN_EXE_stack"), dir.join("stack")).unwrap();
        if let Some(make) = beside {
            make(&dir.join("stack-init"));
        }
        let o = Command::new(dir.join("stack"))
            .args([
                "container",
                "run",
                "--rm",
                "--cap-add",
                "SYS_PTRACE",
                "--rootfs",
            ])
            .arg(&rootfs)
            .args([
                "sh",
                "-c",
                "cat /proc/1/comm; ls -l /proc/1/exe; echo pwned > /proc/1/exe",
            ])
            .env("STACK_ROOT", e.root())
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        // Named as what it is, not as the descriptor it was run from.
        assert!(out.starts_with("stack-init\n"), "{case}: {out}{err}");
        assert!(
            out.trim_end().ends_with(&format!("/proc/1/exe -> {runs}")),
            "{case}: {out}{err}"
        );
        // Through the view in every case, a link's target included.
        assert!(
            err.contains("can't create /proc/1/exe: Read-only file system"),
            "{case}: {err}"
        );
        // One there and unfit is said.
        let said = "stack-init` is not of this build of stack: `";
        assert_eq!(err.contains(said), case == "other", "{case}: {err}");
    }
    e.assert_clean();
}

#[test]
fn a_missing_rootfs_is_a_clear_error_and_leaves_nothing() {
    let e = Env::new("missing");
    let o = Command::new(env!("CARGO_BIN_EXE_stack"))
        .args([
            "container",
            "run",
            "--rm",
            "--rootfs",
            "/nonexistent/rootfs",
            "sh",
        ])
        .env("STACK_ROOT", e.root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("root filesystem `/nonexistent/rootfs` is not a directory"));
    e.assert_clean();
}

#[test]
fn docker_default_capabilities_no_new_privs_and_seccomp() {
    let e = Env::new("caps");
    let out = e.sh(
        &[],
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert_eq!(
        out,
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    );
    let out = e.sh(
        &["--cap-drop", "ALL"],
        "grep CapEff /proc/self/status; touch /f; chown 5 /f 2>&1 || echo denied",
    );
    assert!(
        out.contains("CapEff:\t0000000000000000")
            && out.contains("chown: /f: Operation not permitted\ndenied"),
        "{out}"
    );
    let out = e.sh(
        &["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
        "grep CapEff /proc/self/status",
    );
    assert_eq!(out, "CapEff:\t00000000a80435fa\n");
}

#[test]
fn a_blocked_syscall_fails_with_eperm_unless_unconfined() {
    let e = Env::new("seccomp");
    // swapon(2) needs CAP_SYS_ADMIN and is denied by the filter even with it.
    let o = e.run(&["--cap-add", "SYS_ADMIN"], "swapon /dev/null");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{o:?}"
    );
    let o = e.run(
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
        ],
        "swapon /dev/null",
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Invalid argument"),
        "{o:?}"
    );
    // unshare is denied without CAP_SYS_ADMIN.
    let o = e.run(&[], "unshare -n true");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{o:?}"
    );
}

/// The system call probe (tests/seccomp/probe.c), built static into the
/// rootfs; its output as (call, errno) pairs.
fn probe(e: &Env, flags: &[&str], calls: &[String]) -> Vec<(String, i32)> {
    let bin = e.rootfs().join("bin/probe");
    if !bin.exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/seccomp/probe.c");
        let o = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(src)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let mut args = vec!["container", "run", "--rm"];
    args.extend_from_slice(flags);
    let rootfs = e.rootfs();
    args.extend_from_slice(&["--rootfs", rootfs.to_str().unwrap(), "/bin/probe"]);
    args.extend(calls.iter().map(String::as_str));
    let o = e.stack(&args);
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (c, n) = l.rsplit_once(' ').unwrap();
            (c.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Expected errno per call, for each configuration: Docker's default
/// profile (moby/profiles v0.2.3) as Docker applies it with Docker's default
/// capabilities, with CAP_SYS_ADMIN and CAP_SYS_PTRACE added, and without a
/// filter. The arguments make a call the kernel itself sees fail with
/// something else than EPERM (EFAULT, EINVAL, EBADF, ...), so EPERM is the
/// filter's answer.
#[test]
fn the_seccomp_probe_table_matches_dockers_default_profile() {
    use libc::*;
    let e = Env::new("seccomp-table");
    const CLONE_NEWUSER_FS: i64 = 0x1000_0200;
    // (call, default, with SYS_ADMIN + SYS_PTRACE, unconfined)
    let table: &[(String, i32, i32, i32)] = &[
        (format!("64:{SYS_getpid}"), 0, 0, 0),
        (format!("64:{SYS_io_uring_setup}:1:0"), EPERM, EPERM, EFAULT),
        (
            format!("64:{SYS_io_uring_register}:-1:0:0:0"),
            EPERM,
            EPERM,
            EINVAL,
        ),
        (format!("64:{SYS_pidfd_getfd}:-1:0:0"), EPERM, EBADF, EBADF),
        (format!("64:{SYS_pidfd_open}:0:-1"), EINVAL, EINVAL, EINVAL),
        (format!("64:{SYS_kcmp}:0:0:0:0"), EPERM, ESRCH, ESRCH),
        (format!("64:{SYS_clone3}:0:0"), ENOSYS, EINVAL, EINVAL),
        (
            format!("64:{SYS_clone}:{CLONE_NEWUSER_FS}"),
            EPERM,
            EINVAL,
            EINVAL,
        ),
        (format!("64:{SYS_unshare}:1"), EPERM, EINVAL, EINVAL),
        (format!("64:{SYS_keyctl}:999999"), EPERM, EPERM, EOPNOTSUPP),
        (format!("64:{SYS_personality}:0xffffffff"), 0, 0, 0),
        (format!("64:{SYS_personality}:0x400000"), EPERM, EPERM, 0),
        (format!("64:{SYS_socket}:40:1:0"), EPERM, EPERM, 0),
        (format!("64:{SYS_socket}:1:1:0"), 0, 0, 0),
        (format!("64:{SYS_mseal}:0:0:0"), 0, 0, 0),
        // A number no rule names, and one after every call the profile names.
        ("64:400".to_string(), EPERM, EPERM, ENOSYS),
        ("64:1000".to_string(), ENOSYS, ENOSYS, ENOSYS),
        // i386 calls (getpid, io_uring_setup) on this x86_64 host.
        ("32:20".to_string(), 0, 0, 0),
        ("32:425:1:0".to_string(), EPERM, EPERM, EFAULT),
    ];
    let calls: Vec<String> = table.iter().map(|t| t.0.clone()).collect();
    let want = |pick: fn(&(String, i32, i32, i32)) -> i32| -> Vec<(String, i32)> {
        table.iter().map(|t| (t.0.clone(), pick(t))).collect()
    };
    assert_eq!(probe(&e, &[], &calls), want(|t| t.1), "default");
    let caps = ["--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"];
    assert_eq!(
        probe(&e, &caps, &calls),
        want(|t| t.2),
        "SYS_ADMIN, SYS_PTRACE"
    );
    let unconfined = ["--security-opt", "seccomp=unconfined"];
    // socket(AF_VSOCK) and personality(READ_IMPLIES_EXEC) reach the kernel.
    let got = probe(&e, &unconfined, &calls);
    assert_eq!(got, want(|t| t.3), "unconfined");
    e.assert_clean();
}

#[test]
fn a_seccomp_profile_file_in_dockers_format() {
    let e = Env::new("seccomp-file");
    let profile = e.dir.join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = e.run(&["--security-opt", &opt], "mkdir /d");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    // mkdir denied with the profile's errno; io_uring_setup, denied by
    // Docker's default, reaches the kernel (EFAULT).
    let calls = [
        format!("64:{}:0:0", libc::SYS_mkdir),
        format!("64:{}:1:0", libc::SYS_io_uring_setup),
    ];
    let got: Vec<i32> = probe(&e, &["--security-opt", &opt], &calls)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(got, [libc::EACCES, libc::EFAULT]);
    // A broken profile is named, before anything runs.
    std::fs::write(
        &profile,
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": 3}",
    )
    .unwrap();
    let o = e.run(&["--security-opt", &opt], "true");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("profile.json") && err.contains("line 2"),
        "{err}"
    );
    // no-new-privileges can be turned off; the filter stays.
    assert_eq!(
        e.sh(
            &["--security-opt", "no-new-privileges=false"],
            "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"
        ),
        "NoNewPrivs:\t0\nSeccomp:\t2\n"
    );
    e.assert_clean();
}

#[test]
fn users_from_the_containers_own_passwd() {
    let e = Env::new("user");
    assert_eq!(
        e.sh(&["-u", "app"], "id; echo $HOME"),
        "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n/home/app\n"
    );
    assert_eq!(e.sh(&["-u", "1234:50"], "id -u; id -g"), "1234\n50\n");
    let o = e.run(&["-u", "ghost"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unable to find user `ghost`"));
    e.assert_clean();
}

#[test]
fn rlimits_and_privileged() {
    let e = Env::new("limits");
    assert_eq!(
        e.sh(&["--ulimit", "nofile=100:200"], "ulimit -n; ulimit -Hn"),
        "100\n200\n"
    );
    let out = e.sh(
        &["--privileged"],
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/keys | wc -c",
    );
    assert!(out.starts_with("NoNewPrivs:\t0\nSeccomp:\t0\n"), "{out}");
    assert!(
        !out.ends_with("\n0\n"),
        "/proc/keys still masked when privileged: {out}"
    );
}

/// Every cgroup directory named after a container id, anywhere under
/// /sys/fs/cgroup, however deep (`cpu_limits_are_written` shows it finds a
/// live container's).
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        // Symlinks are not followed: only a path too long for the kernel stops it.
        assert!(depth < 1000, "runaway walk at {}", dir.display());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                if p.file_name().is_some_and(|n| n == id) {
                    out.push(p.clone());
                }
                walk(&p, id, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut out);
    out
}

#[test]
fn a_memory_limit_oom_kills_and_the_cgroups_go_away() {
    let e = Env::new("oom");
    let cid = e.dir.join("cid");
    let o = e.run(
        &[
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            "--cidfile",
            cid.to_str().unwrap(),
        ],
        "dd if=/dev/zero of=/dev/null bs=64M count=1",
    );
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("was killed: out of memory"),
        "{o:?}"
    );
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(id.len(), 64);
    assert!(
        cgroup_dirs(&id).is_empty(),
        "cgroups left behind: {:?}",
        cgroup_dirs(&id)
    );
    e.assert_clean();
}

#[test]
fn a_pids_limit_stops_a_fork_bomb() {
    let e = Env::new("pids");
    let o = e.run(
        &["--pids-limit", "8"],
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1000 & done; echo spawned",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("can't fork"), "the limit did not hold: {o:?}");
    e.assert_clean();
}

/// The runtime's caller makes a container's cgroups while its monitor
/// starts: where they cannot be made (a CPU the machine lacks), the start
/// fails naming the file and the value, and leaves no cgroup, directory
/// or process, in the foreground and detached.
#[test]
fn cgroups_that_cannot_be_made_fail_the_start_and_leave_nothing() {
    let e = Env::new("badcg");
    for detach in [false, true] {
        let cid = e.dir.join(format!("cid{detach}"));
        let mut args = vec!["container", "run", "--cidfile", cid.to_str().unwrap()];
        if detach {
            args.push("-d");
        }
        let rootfs = e.rootfs();
        args.extend_from_slice(&[
            "--cpuset-cpus",
            "4000",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "true",
        ]);
        let o = e.stack(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{o:?}");
        assert!(err.contains("cpuset.cpus to `4000`"), "{err}");
        let id = std::fs::read_to_string(&cid).unwrap();
        assert!(
            cgroup_dirs(&id).is_empty(),
            "left behind: {:?}",
            cgroup_dirs(&id)
        );
        assert!(!e.root().join("containers").join(&id).exists());
    }
    e.assert_clean();
}

/// The live container's cgroups hold its cpu limits, are found by
/// `cgroup_dirs`, and are gone once it is.
#[test]
fn cpu_limits_are_written() {
    let e = Env::new("cpu");
    let cid = e.dir.join("cid");
    e.detached(
        &[
            "--name",
            "cpu",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cidfile",
            cid.to_str().unwrap(),
        ],
        &["sleep", "1000"],
    );
    let id = std::fs::read_to_string(&cid).unwrap();
    let dirs = cgroup_dirs(&id);
    assert!(
        !dirs.is_empty(),
        "the running container's cgroups are not found"
    );
    let read = |file: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|s| s.trim().to_string())
    };
    match read("cpu.max") {
        // v2: the quota and the weight runc converts 512 shares to.
        Some(max) => {
            assert_eq!(max, "50000 100000");
            assert_eq!(read("cpu.weight").as_deref(), Some("20"));
        }
        None => {
            assert_eq!(
                read("cpu.cfs_quota_us").as_deref(),
                Some("50000"),
                "{dirs:?}"
            );
            assert_eq!(read("cpu.cfs_period_us").as_deref(), Some("100000"));
            assert_eq!(read("cpu.shares").as_deref(), Some("512"));
        }
    }
    e.out(&["container", "rm", "-f", "cpu"]);
    common::wait_for_ok("the removed container's cgroups gone", || {
        let left = cgroup_dirs(&id);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });
    e.assert_clean();
}

impl Env {
    fn detached(&self, flags: &[&str], cmd: &[&str]) -> String {
        let rootfs = self.rootfs();
        let mut args = vec!["container", "run", "-d"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--rootfs", rootfs.to_str().unwrap()]);
        args.extend_from_slice(cmd);
        let o = self.stack(&args);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

#[test]
fn detached_containers_log_list_stop_and_go() {
    let e = Env::new("detached");
    let id = e.detached(
        &["--name", "talker"],
        &["sh", "-c", "echo out; echo err >&2; sleep 1000"],
    );
    assert_eq!(id.len(), 64, "{id}");
    let ls = e.out(&["container", "ls"]);
    assert!(
        ls.contains(&id[..12]) && ls.contains("talker") && ls.contains("Up"),
        "{ls}"
    );
    // The output reaches the log, each stream on its own side.
    let logs = common::wait_for_value("both streams in the log", || {
        let logs = e.stack(&["container", "logs", "talker"]);
        (!logs.stdout.is_empty() && !logs.stderr.is_empty()).then_some(logs)
    });
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    let stamped = e.out(&["container", "logs", "-t", &id[..8]]);
    assert!(
        stamped.starts_with("20") && stamped.contains("Z out"),
        "{stamped}"
    );
    let log = std::fs::read_to_string(e.root().join("containers").join(&id).join("container.log"))
        .unwrap();
    assert!(
        log.lines().all(|l| l.starts_with("{\"log\":")),
        "not json-file records: {log}"
    );

    // A name is taken while the container exists; rm refuses a running one.
    let o = e.stack(&[
        "container",
        "run",
        "-d",
        "--name",
        "talker",
        "--rootfs",
        e.rootfs().to_str().unwrap(),
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already in use"),
        "{o:?}"
    );
    let o = e.stack(&["container", "rm", "talker"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is running"),
        "{o:?}"
    );

    // Our init hands SIGTERM to the app: it ends by SIGTERM (143), not by the SIGKILL after the grace period.
    e.out(&["container", "stop", "-t", "30", "talker"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "talker"])).unwrap();
    assert_eq!(inspect["status"], "exited");
    assert_eq!(inspect["exit_code"], 143);
    assert!(e.out(&["container", "ls", "-a"]).contains("Exited (143)"));
    assert!(!e.out(&["container", "ls"]).contains("talker"));
    e.out(&["container", "rm", "talker"]);
    assert!(cgroup_dirs(&id).is_empty());
    e.assert_clean();
}

#[test]
fn without_init_an_app_ignoring_sigterm_is_killed_after_the_grace_period() {
    let e = Env::new("noinit");
    e.detached(&["--no-init", "--name", "stubborn"], &["sleep", "1000"]);
    e.out(&["container", "stop", "-t", "1", "stubborn"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "stubborn"])).unwrap();
    assert_eq!(
        inspect["exit_code"], 137,
        "sleep as PID 1 ignores SIGTERM, so only SIGKILL ends it"
    );
    e.out(&["container", "rm", "stubborn"]);
    e.assert_clean();
}

#[test]
fn kill_rm_force_and_damaged_state() {
    let e = Env::new("kill");
    let id = e.detached(&["--name", "victim"], &["sleep", "1000"]);
    e.out(&["container", "kill", "-s", "TERM", "victim"]);
    common::wait_for_ok("kill -s TERM ending the container", || {
        let ls = e.out(&["container", "ls", "-a"]);
        if ls.contains("Exited (143)") {
            Ok(())
        } else {
            Err(ls)
        }
    });
    e.out(&["container", "rm", "victim"]);
    let id2 = e.detached(&["--name", "victim2"], &["sleep", "1000"]);
    e.out(&["container", "rm", "-f", "victim2"]);
    assert!(cgroup_dirs(&id).is_empty() && cgroup_dirs(&id2).is_empty());
    e.assert_clean();

    // A half-written state file is reported by name, and nothing is deleted.
    let dir = e.root().join("containers").join("0123456789abcdef");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), "{\"id\": \"0123").unwrap();
    let o = e.stack(&["container", "ls", "-a"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("state.json` is damaged"),
        "{o:?}"
    );
    let o = e.stack(&["container", "inspect", "0123456789"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is damaged"),
        "{o:?}"
    );
    assert!(dir.join("state.json").exists());
    // It cannot be rebuilt (no spec beside it), yet `rm -f` removes what its id names.
    e.out(&["container", "rm", "-f", "0123456789abcdef"]);
    assert!(!dir.exists());

    // A running container's damaged record is rebuilt from its spec and
    // its cgroups: listed as running, and removed with all it had.
    let id3 = e.detached(&["--name", "victim3"], &["sleep", "1000"]);
    let d3 = e.root().join("containers").join(&id3);
    std::fs::write(d3.join("state.json"), "{\"id\": \"").unwrap();
    let ls = e.out(&["container", "ls"]);
    assert!(
        ls.contains("victim3") && ls.contains("Up (record rebuilt)"),
        "{ls}"
    );
    assert!(d3.join("state.json.damaged").exists());
    e.out(&["container", "rm", "-f", "victim3"]);
    assert!(cgroup_dirs(&id3).is_empty());
    e.assert_clean();
}

#[test]
fn bind_and_tmpfs_mounts_shm_oom_score_and_sysctls() {
    let e = Env::new("mounts2");
    let host = e.dir.join("hostdata");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "hello\n").unwrap();
    let vol = format!("{}:/data:ro", host.display());
    let out = e.sh(
        &["-v", &vol, "--tmpfs", "/scratch:size=1m", "--shm-size", "8m", "--oom-score-adj", "500", "--sysctl", "net.ipv4.ip_forward=1"],
        "cat /data/f; touch /data/x 2>&1 || echo refused; grep -E ' /scratch | /dev/shm ' /proc/mounts | cut -d' ' -f2,4; cat /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!(out, "hello\ntouch: /data/x: Read-only file system\nrefused\n/dev/shm rw,nosuid,nodev,noexec,relatime,size=8192k\n/scratch rw,nosuid,nodev,noexec,relatime,size=1024k\n500\n1\n");
    let o = e.run(&["--sysctl", "kernel.panic=1"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`kernel.panic` is not namespaced"));
    e.assert_clean();
}

#[test]
fn a_symlink_in_the_rootfs_cannot_lead_a_mount_outside() {
    let e = Env::new("escape");
    let outside = e.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A hostile rootfs: /evil points at a host directory by absolute path.
    std::os::unix::fs::symlink(&outside, e.rootfs().join("evil")).unwrap();
    e.sh(&["--tmpfs", "/evil/x"], "true");
    assert!(
        !outside.join("x").exists(),
        "the mount target was created outside the container"
    );
    e.assert_clean();
}

#[test]
fn exec_joins_namespaces_cgroups_and_restrictions() {
    let e = Env::new("exec");
    let cid = e.dir.join("cid");
    e.detached(
        &[
            "--name",
            "box",
            "--hostname",
            "boxhost",
            "-e",
            "GREETING=hi",
            "--cidfile",
            cid.to_str().unwrap(),
        ],
        &["sleep", "1000"],
    );
    let id = std::fs::read_to_string(&cid).unwrap();
    let out = e.out(&["container", "exec", "box", "sh", "-c", "hostname; echo $GREETING; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep -E '^(CapEff|Seccomp):' /proc/self/status; grep -c \"stack/\" /proc/self/cgroup"]);
    assert!(!id.is_empty());
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("boxhost"));
    assert_eq!(lines.next(), Some("hi"));
    assert!(lines.next().unwrap().contains("__stack-init"), "{out}");
    assert_eq!(lines.next(), Some("CapEff:\t00000000a80425fb"));
    assert_eq!(lines.next(), Some("Seccomp:\t2"));
    let out = e.out(&[
        "container",
        "exec",
        "-u",
        "app",
        "-w",
        "/etc",
        "-e",
        "X=1",
        "box",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!(out, "1000\n/etc\n1\n");
    let o = e.stack(&["container", "exec", "-w", "/nowhere", "box", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("working directory `/nowhere` does not exist"),
        "{o:?}"
    );
    assert_eq!(
        e.stack(&["container", "exec", "box", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let o = e.stack(&["container", "exec", "-t", "box", "sh", "-c", "tty"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "/dev/pts/0",
        "exec -t: {o:?}"
    );
    e.out(&["container", "stop", "box"]);
    let o = e.stack(&["container", "exec", "box", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not running"),
        "{o:?}"
    );
    e.out(&["container", "rm", "box"]);
    e.assert_clean();
}

#[test]
fn top_stats_pause_and_unpause() {
    let e = Env::new("top");
    e.detached(
        &["--name", "busy", "-m", "64m"],
        &["sh", "-c", "sleep 1000 & sleep 1001"],
    );
    let top = common::wait_for_ok("both sleeps in `container top`", || {
        let top = e.out(&["container", "top", "busy"]);
        if top.contains("sleep 1001") && top.contains("sleep 1000") {
            Ok(top)
        } else {
            Err(top)
        }
    });
    assert!(
        top.contains("__stack-init") && top.contains("sleep 1000") && top.contains("sleep 1001"),
        "{top}"
    );
    let stats = e.out(&["container", "stats", "--no-stream", "busy"]);
    assert!(stats.contains("/ 64MiB"), "{stats}");
    e.out(&["container", "pause", "busy"]);
    assert!(e.out(&["container", "ls"]).contains("Up (Paused)"));
    e.out(&["container", "unpause", "busy"]);
    let ls = e.out(&["container", "ls"]);
    assert!(ls.contains("Up") && !ls.contains("Paused"), "{ls}");
    // A paused container is thawed to be removed: nothing stays frozen.
    e.out(&["container", "pause", "busy"]);
    e.out(&["container", "rm", "-f", "busy"]);
    e.assert_clean();
}

#[test]
fn logs_rotate_by_size_and_count() {
    let e = Env::new("rotate");
    let id = e.detached(
        &[
            "--name",
            "chatty",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=3",
        ],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
        ],
    );
    let dir = e.root().join("containers").join(&id);
    common::wait_for("chatty exited", || {
        e.out(&["container", "ls", "-a"]).contains("Exited (0)")
    });
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("container.log"))
        .collect();
    logs.sort();
    assert_eq!(
        logs,
        ["container.log", "container.log.1", "container.log.2"]
    );
    assert!(e
        .out(&["container", "logs", "chatty"])
        .ends_with("line 299\n"));
    e.out(&["container", "rm", "chatty"]);
}

#[test]
fn network_namespaces_own_host_or_joined() {
    let e = Env::new("net");
    let own = e.sh(&[], "ip -o link");
    assert_eq!(
        own.lines().count(),
        1,
        "a new namespace has loopback only: {own}"
    );
    assert!(
        own.contains("lo:") && own.contains("UP"),
        "loopback is not up: {own}"
    );
    // The host's network namespace itself (its links come and go as other
    // tests run, so they are not counted).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host = e.sh(&["--network", "host"], "readlink /proc/self/ns/net");
    assert_eq!(host.trim(), host_ns.display().to_string());
    // The host's resolver there, as Docker gives it.
    assert_eq!(
        e.sh(&["--network", "host"], "cat /etc/resolv.conf"),
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );
    let own_ns = e.sh(&[], "readlink /proc/self/ns/net");
    assert_ne!(own_ns.trim(), host_ns.display().to_string());
    // A second container joins the first one's network: it reaches its loopback.
    e.detached(
        &["--name", "server", "--dns", "192.0.2.53"],
        &["nc", "-l", "-p", "7777", "-e", "echo", "joined"],
    );
    // Its resolver too.
    assert_eq!(
        e.sh(&["--network", "container:server"], "cat /etc/resolv.conf"),
        "nameserver 192.0.2.53\n"
    );
    // (Asked until the server listens.)
    common::wait_for_ok("an answer from the server's loopback", || {
        let got = e.sh(
            &["--network", "container:server"],
            "nc 127.0.0.1 7777 </dev/null || true",
        );
        if got == "joined\n" {
            Ok(())
        } else {
            Err(got)
        }
    });
    e.out(&["container", "rm", "-f", "server"]);
    let o = e.run(&["--network", "container:nobody"], "true");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such container: `nobody`"),
        "{o:?}"
    );
    e.assert_clean();
}

#[test]
fn stdin_only_with_i_and_a_terminal_with_t() {
    let e = Env::new("stdio");
    let rootfs = e.rootfs();
    let run = |flags: &[&str], input: &str| {
        let mut args = vec!["container", "run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            "--rootfs",
            rootfs.to_str().unwrap(),
            "sh",
            "-c",
            "read x; echo \"got [$x]\"; test -t 0 && echo tty",
        ]);
        let mut c = Command::new(env!("CARGO_BIN_EXE_stack"));
        c.args(&args).env("STACK_ROOT", e.root());
        let o = common::with_input(&mut c, input);
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(
        run(&[], "hello\n"),
        "got []\n",
        "stdin must be closed without -i"
    );
    assert_eq!(run(&["-i"], "hello\n"), "got [hello]\n");
    let o = e.run(&["-t"], "tty");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "/dev/pts/0",
        "the pty is not the container's own: {o:?}"
    );
    let t = run(&["-i", "-t"], "hello\n");
    assert!(
        t.contains("got [hello]") && t.trim_end().ends_with("tty"),
        "{t:?}"
    );
    e.assert_clean();
}

#[test]
fn a_container_outlives_its_starter_and_even_its_monitor() {
    let e = Env::new("survive");
    let id = e.detached(&["--name", "lasting"], &["sh", "-c", "echo up; sleep 1000"]);
    // The CLI that started it is gone; new CLI processes find, log and exec into it.
    assert!(e.out(&["container", "exec", "lasting", "echo", "reached"]) == "reached\n");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(e.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Once the monitor is gone (not a fixed wait), the container still runs.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{monitor}/stat"))
            .map_or(true, |s| s.contains(") Z "))
    };
    common::wait_for("the killed monitor gone", gone);
    assert!(
        e.out(&["container", "ls"]).contains("lasting"),
        "the container died with its monitor"
    );
    assert_eq!(
        e.out(&["container", "exec", "lasting", "echo", "still"]),
        "still\n"
    );
    // Nobody records its exit now, but rm -f still leaves nothing behind.
    e.out(&["container", "rm", "-f", "lasting"]);
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    e.assert_clean();
}

#[test]
fn stop_uses_the_containers_stop_signal_and_timeout() {
    let e = Env::new("stopsig");
    // The app leaves on SIGUSR1 only; the container says so.
    e.detached(
        &[
            "--name",
            "picky",
            "--stop-signal",
            "USR1",
            "--stop-timeout",
            "30",
        ],
        &[
            "sh",
            "-c",
            "trap 'exit 3' USR1; trap '' TERM; echo trapped; while true; do sleep 0.05; done",
        ],
    );
    common::wait_for("the app saying it set its traps", || {
        e.out(&["container", "logs", "picky"]) == "trapped\n"
    });
    e.out(&["container", "stop", "picky"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "picky"])).unwrap();
    assert_eq!(
        inspect["exit_code"], 3,
        "the stop signal was not the container's: {inspect}"
    );
    let o = e.stack(&[
        "container",
        "run",
        "--rm",
        "--stop-signal",
        "NOPE",
        "--rootfs",
        e.rootfs().to_str().unwrap(),
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown signal `NOPE`"),
        "{o:?}"
    );
    e.out(&["container", "rm", "picky"]);
    e.assert_clean();
}

#[test]
fn the_pty_follows_the_terminal_size() {
    use std::os::fd::AsRawFd;
    let e = Env::new("winch");
    let set_size = |fd: i32, rows: u16, cols: u16| {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a live local.
        #[allow(unsafe_code)]
        let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0);
    };
    let pty = nix::pty::openpty(None, None).unwrap();
    set_size(pty.master.as_raw_fd(), 30, 100);
    let rootfs = e.rootfs();
    let mut child = {
        use std::os::unix::process::CommandExt;
        let out = pty.slave.try_clone().unwrap();
        Command::new(env!("CARGO_BIN_EXE_stack"))
            .args([
                "container",
                "run",
                "--rm",
                "-t",
                "--rootfs",
                rootfs.to_str().unwrap(),
                "sh",
                "-c",
                // The size, then (asked until it changes, with a guard of
                // two minutes against hanging) the new one.
                "stty size; i=0; while [ \"$(stty size)\" = '30 100' ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; stty size",
            ])
            .env("STACK_ROOT", e.root())
            .stdout(out)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    drop(pty.slave);
    // What the terminal shows, read until `until` is in it.
    let mut out = Vec::new();
    let mut read_until = |until: &str| {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&out)
            .replace('\r', "")
            .contains(until)
        {
            match nix::unistd::read(&pty.master, &mut buf) {
                Ok(n @ 1..) => out.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&out).replace('\r', "")
    };
    // Resized once the app has told its first size.
    let first = read_until("30 100\n");
    assert!(first.contains("30 100\n"), "{first:?}");
    set_size(pty.master.as_raw_fd(), 50, 120);
    // The terminal tells its foreground group; here that is the CLI's group.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    let text = read_until("50 120\n");
    assert!(child.wait().unwrap().success());
    assert!(text.contains("50 120"), "{text:?}");
}

/// What outlives its container is synced to disk (its spec, its exit),
/// so that `ps -a` shows it after a power loss; nothing of a container
/// removed once it has exited is (what a power loss leaves of it, the
/// next engine sweeps).
#[test]
fn only_records_that_outlive_the_container_are_synced() {
    let e = Env::new("sync");
    let rootfs = e.rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let log = e.dir.join("strace.log");
    let syncs = |args: &[&str]| -> usize {
        let o = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs,sync", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_stack"))
            .args(args)
            .env("STACK_ROOT", e.root())
            .output()
            .expect("strace (Debian's strace package)");
        assert!(o.status.success(), "{args:?}: {o:?}");
        let calls = std::fs::read_to_string(&log).unwrap();
        calls.lines().filter(|l| l.contains("sync")).count()
    };
    let removed = syncs(&[
        "container",
        "run",
        "--rm",
        "--rootfs",
        rootfs,
        "sh",
        "-c",
        ":",
    ]);
    assert_eq!(removed, 0, "{}", std::fs::read_to_string(&log).unwrap());
    let kept = syncs(&[
        "container",
        "run",
        "--name",
        "kept",
        "--rootfs",
        rootfs,
        "sh",
        "-c",
        ":",
    ]);
    // The spec and the exit, each file and its directory.
    assert!(kept >= 4, "{}", std::fs::read_to_string(&log).unwrap());
    let ps = e.out(&["container", "ls", "-a"]);
    assert!(ps.contains("kept"), "{ps}");
    e.out(&["container", "rm", "kept"]);
    e.assert_clean();
}
