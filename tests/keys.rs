//! Service keys as `stack up` applies them, each checked where it shows:
//! in the container's own cgroup view and /proc, in its log files on the
//! host, in what attached `up` prints; and keys stack will not apply,
//! refused by name before anything is made (issue 21).

mod common;

use common::{in_project as stack, project_env, wait_for_value, Env};

/// `exec -T SERVICE sh -c SCRIPT`: its output, trimmed.
fn sh(e: &Env, d: &str, service: &str, script: &str) -> String {
    e.out(&stack(d, &["exec", "-T", service, "sh", "-c", script]))
        .trim()
        .to_string()
}

/// A cgroup file of the container, as it sees it (v1 controller
/// directory, else the v2 file).
fn cgroup(e: &Env, d: &str, service: &str, v1: &str, v2: &str) -> String {
    sh(
        e,
        d,
        service,
        &format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"),
    )
}

const RESOURCES: &str = r#"
services:
  deployed:
    image: local/busybox:1
    command: sleep 1000
    deploy:
      resources:
        limits: {memory: 64m, cpus: "0.5", pids: 50}
        reservations: {memory: 32m}
  tuned:
    image: local/busybox:1
    command: sleep 1000
    cpu_quota: 25000
    cpu_period: 50000
    cpu_shares: 512
    cpuset: "0"
    mem_reservation: 16m
    mem_limit: 64m
    memswap_limit: 128m
    oom_score_adj: 500
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    mac_address: "02:42:ac:11:00:99"
    group_add: ["4242", "4343"]
    mem_swappiness: 10
    oom_kill_disable: true
"#;

#[test]
fn resource_keys_reach_the_containers_cgroups_and_limits() {
    let (e, d) = project_env("keys", "resources", RESOURCES);
    e.out(&stack(&d, &["up", "-d"]));
    // deploy.resources, compose's standard way to set limits.
    assert_eq!(
        cgroup(
            &e,
            &d,
            "deployed",
            "memory/memory.limit_in_bytes",
            "memory.max"
        ),
        "67108864"
    );
    assert_eq!(
        cgroup(
            &e,
            &d,
            "deployed",
            "memory/memory.soft_limit_in_bytes",
            "memory.low"
        ),
        "33554432"
    );
    assert_eq!(
        cgroup(&e, &d, "deployed", "pids/pids.max", "pids.max"),
        "50"
    );
    let quota = |service: &str| {
        cgroup(&e, &d, service, "cpu/cpu.cfs_quota_us", "cpu.max")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(quota("deployed"), "50000");
    // cpu_quota over cpu_period: half a CPU too.
    assert_eq!(quota("tuned"), "50000");
    let shares = cgroup(&e, &d, "tuned", "cpu/cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "cpu_shares: {shares}");
    assert_eq!(
        cgroup(&e, &d, "tuned", "cpuset/cpuset.cpus", "cpuset.cpus"),
        "0"
    );
    assert_eq!(
        cgroup(
            &e,
            &d,
            "tuned",
            "memory/memory.soft_limit_in_bytes",
            "memory.low"
        ),
        "16777216"
    );
    // Memory plus swap: the whole on v1, the swap alone on v2.
    let swap = cgroup(
        &e,
        &d,
        "tuned",
        "memory/memory.memsw.limit_in_bytes",
        "memory.swap.max",
    );
    assert!(
        swap == "134217728" || swap == "67108864",
        "memswap_limit: {swap}"
    );
    // Swappiness and the OOM killer: v1's memory controller (on v2, up
    // warns that they are not applied).
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.swappiness").exists() {
        assert_eq!(
            sh(
                &e,
                &d,
                "tuned",
                "cat /sys/fs/cgroup/memory/memory.swappiness"
            ),
            "10"
        );
        let oom = sh(
            &e,
            &d,
            "tuned",
            "cat /sys/fs/cgroup/memory/memory.oom_control",
        );
        assert!(oom.contains("oom_kill_disable 1"), "{oom}");
    }
    // oom_score_adj and ulimits, as the container's processes have them.
    assert_eq!(sh(&e, &d, "tuned", "cat /proc/self/oom_score_adj"), "500");
    let limits = sh(&e, &d, "tuned", "cat /proc/self/limits");
    let row = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l.split_whitespace()
                    .rev()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| panic!("{name} not in {limits}"))
    };
    assert_eq!(row("Max open files"), ["2048", "1024"], "{limits}");
    assert_eq!(row("Max processes"), ["512", "512"], "{limits}");
    // group_add: supplementary groups of the container's processes.
    let status = sh(&e, &d, "tuned", "cat /proc/self/status");
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert!(
        groups.contains(&"4242") && groups.contains(&"4343"),
        "{status}"
    );
    // mac_address of the service, on a network given as a plain list.
    assert_eq!(
        sh(&e, &d, "tuned", "cat /sys/class/net/eth0/address"),
        "02:42:ac:11:00:99"
    );
    e.out(&stack(&d, &["down"]));
}

#[test]
fn logging_options_rotate_the_log_on_the_host() {
    let (e, d) = project_env(
        "keys",
        "logging",
        r#"
services:
  chatty:
    image: local/busybox:1
    command: ["sh", "-c", "i=0; while [ $$i -lt 3000 ]; do echo line-$$i-of-some-length; i=$$((i+1)); done; echo the-end; exec sleep 1000"]
    logging:
      driver: json-file
      options: {max-size: 2k, max-file: "2"}
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    wait_for_value("the last line in the logs", || {
        e.out(&stack(&d, &["logs", "--tail", "1", "--no-log-prefix"]))
            .contains("the-end")
            .then_some(())
    });
    let ps = e.out(&stack(&d, &["ps", "-q"]));
    let id = ps.trim();
    let dir = e.root().join("containers").join(id);
    let logs: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("container.log"))
        .map(|f| {
            (
                f.file_name().to_string_lossy().to_string(),
                f.metadata().unwrap().len(),
            )
        })
        .collect();
    // Two files at most, each about max-size: not the 3000 lines (~80 KB).
    assert!(logs.len() <= 2, "{logs:?}");
    assert!(logs.iter().all(|(_, n)| *n < 4096), "{logs:?}");
    e.out(&stack(&d, &["down"]));
}

#[test]
fn the_none_log_driver_keeps_no_log() {
    let (e, d) = project_env(
        "keys",
        "nolog",
        r#"
services:
  silent:
    image: local/busybox:1
    command: ["sh", "-c", "echo not-kept; exec sleep 1000"]
    logging: {driver: none}
  kept:
    image: local/busybox:1
    command: ["sh", "-c", "echo kept; exec sleep 1000"]
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    wait_for_value("the other service's line", || {
        e.out(&stack(&d, &["logs", "kept"]))
            .contains("kept")
            .then_some(())
    });
    let id = e.out(&stack(&d, &["ps", "-q", "silent"]));
    let dir = e.root().join("containers").join(id.trim());
    assert!(dir.is_dir(), "{}", dir.display());
    assert!(!dir.join("container.log").exists());
    let o = e.stack(&stack(&d, &["logs", "silent"]));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("not-kept"),
        "{o:?}"
    );
    // Said, as Docker says it, not passed over.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not support reading"),
        "{o:?}"
    );
    // Read by itself, a container without a log says so, as Docker does.
    let why = e.fails(&["container", "logs", id.trim()]);
    assert!(why.contains("does not support reading"), "{why}");
    e.out(&stack(&d, &["down"]));
}

#[test]
fn attached_up_leaves_out_the_output_of_attach_false() {
    let (e, d) = project_env(
        "keys",
        "attach",
        r#"
services:
  shown:
    image: local/busybox:1
    command: ["sh", "-c", "echo from-shown"]
  quiet:
    image: local/busybox:1
    command: ["sh", "-c", "echo from-quiet"]
    attach: false
"#,
    );
    let o = e.stack(&stack(&d, &["up", "--no-color"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("from-shown"), "{text}");
    assert!(!text.contains("from-quiet"), "{text}");
    // Its output is there: logs shows it.
    let logs = e.out(&stack(&d, &["logs", "quiet"]));
    assert!(logs.contains("from-quiet"), "{logs}");
    e.out(&stack(&d, &["down"]));
}

#[test]
fn keys_stack_cannot_apply_are_refused_by_name_before_anything_is_made() {
    let (e, d) = project_env(
        "keys",
        "refused",
        r#"
services:
  web:
    image: local/busybox:1
    command: sleep 1000
    gpus: all
    userns_mode: remap
    storage_opt: {size: 20G}
  db:
    image: local/busybox:1
    command: sleep 1000
    logging: {driver: syslog}
"#,
    );
    let err = e.fails(&stack(&d, &["up", "-d"]));
    for said in [
        "service web: `gpus`: stack has no GPU support",
        "service web: `userns_mode`: only `host` is supported",
        "service web: `storage_opt`: storage driver options are not supported",
        "service db: `logging`: the log driver `syslog` is not supported",
    ] {
        assert!(err.contains(said), "{said}\n{err}");
    }
    assert_eq!(e.out(&stack(&d, &["ps", "-a", "-q"])).trim(), "");
    // `config` says so too, without refusing.
    let o = e.stack(&stack(&d, &["config", "-q"]));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("warning: service web: `gpus`: stack has no GPU support (up refuses it)"),
        "{said}"
    );
    // A key without effect here is a warning, and up goes on.
    std::fs::write(
        std::path::Path::new(&d).join("compose.yaml"),
        "services:\n  web:\n    image: local/busybox:1\n    command: sleep 1000\n    annotations: {team: a}\n",
    )
    .unwrap();
    let o = e.stack(&stack(&d, &["up", "-d"]));
    assert!(o.status.success(), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("service web: `annotations`: OCI annotations reach no runtime here"),
        "{stderr}"
    );
    e.out(&stack(&d, &["down"]));
}

/// `pre_start`: each hook in a container of its own before the service
/// starts, with its volumes and environment, once for the replicas; the
/// first failure stops the start, the service's containers made, not run.
#[test]
fn pre_start_hooks_run_before_the_service_in_containers_of_their_own() {
    let (e, d) = project_env(
        "keys",
        "prestart",
        r#"
services:
  app:
    image: local/busybox:1
    command: sh -c "cat /data/init; sleep 1000"
    deploy: {replicas: 2}
    volumes: [data:/data]
    environment: {WHO: app}
    pre_start:
      - command: ["sh", "-c", "echo init-$$WHO-$$STAGE >> /data/init"]
        environment: {STAGE: one}
      - command: ["sh", "-c", "hostname >> /data/hosts"]
volumes:
  data:
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    // Once for both replicas, before them: they read what it wrote.
    assert_eq!(sh(&e, &d, "app", "cat /data/init"), "init-app-one");
    assert_eq!(sh(&e, &d, "app", "wc -l < /data/hosts"), "1");
    let host = sh(&e, &d, "app", "cat /data/hosts");
    assert_ne!(
        host,
        sh(&e, &d, "app", "hostname"),
        "a container of its own"
    );
    // Its container is gone; up again with a replica running: no hook.
    assert!(!e.out(&["container", "ls", "-a"]).contains("pre_start"));
    e.out(&stack(&d, &["up", "-d"]));
    assert_eq!(sh(&e, &d, "app", "wc -l < /data/init"), "1");
    e.out(&stack(&d, &["down", "-v"]));

    std::fs::write(
        std::path::Path::new(&d).join("compose.yaml"),
        r#"
services:
  job:
    image: local/busybox:1
    command: sleep 1000
    pre_start:
      - command: ["sh", "-c", "echo no database; exit 17"]
"#,
    )
    .unwrap();
    let err = e.fails(&stack(&d, &["up", "-d"]));
    assert!(
        err.contains(r#"service "job" pre_start[0] exited with code 17: no database"#),
        "{err}"
    );
    let ps = e.out(&stack(&d, &["ps", "-a", "--format", "json"]));
    assert!(!ps.contains("running"), "{ps}");
    e.out(&stack(&d, &["down"]));
}

#[test]
fn hooks_run_in_the_container_after_start_and_before_stop() {
    let (e, d) = project_env(
        "keys",
        "hooks",
        r#"
services:
  web:
    image: local/busybox:1
    command: sleep 1000
    volumes: ["./out:/out"]
    environment: {WHO: web}
    post_start:
      - command: ["sh", "-c", "echo started-$$WHO-$$STAGE > /out/post"]
        environment: {STAGE: post}
      - command: ["sh", "-c", "grep CapEff /proc/self/status > /out/plain"]
      - command: ["sh", "-c", "grep CapEff /proc/self/status > /out/privileged"]
        privileged: true
    pre_stop:
      - command: ["sh", "-c", "echo stopping > /out/pre"]
"#,
    );
    let out = std::path::Path::new(&d).join("out");
    e.out(&stack(&d, &["up", "-d"]));
    // up returns once the hook has run.
    assert_eq!(
        std::fs::read_to_string(out.join("post")).unwrap(),
        "started-web-post\n"
    );
    assert!(!out.join("pre").exists());
    // A privileged hook has every capability; the others, the container's.
    let caps = |f: &str| {
        let line = std::fs::read_to_string(out.join(f)).unwrap();
        u64::from_str_radix(line.trim().trim_start_matches("CapEff:").trim(), 16).unwrap()
    };
    assert!(
        caps("privileged").count_ones() > caps("plain").count_ones() + 10,
        "{:x} {:x}",
        caps("privileged"),
        caps("plain")
    );
    assert_eq!(caps("privileged") & (1 << 21), 1 << 21, "CAP_SYS_ADMIN");
    assert_eq!(caps("plain") & (1 << 21), 0);
    e.out(&stack(&d, &["stop"]));
    assert_eq!(
        std::fs::read_to_string(out.join("pre")).unwrap(),
        "stopping\n"
    );
    e.out(&stack(&d, &["down"]));
}

#[test]
fn ipc_and_uts_namespaces_are_shared_as_asked() {
    let (e, d) = project_env(
        "keys",
        "namespaces",
        r#"
services:
  own:
    image: local/busybox:1
    command: sleep 1000
  hostly:
    image: local/busybox:1
    command: sleep 1000
    ipc: host
    uts: host
  joined:
    image: local/busybox:1
    command: sleep 1000
    ipc: service:own
"#,
    );
    let o = e.stack(&stack(&d, &["up", "-d"]));
    assert!(o.status.success(), "{o:?}");
    let warned = String::from_utf8_lossy(&o.stderr);
    assert!(!warned.contains("/dev/shm"), "{warned}");
    let ns =
        |service: &str, kind: &str| sh(&e, &d, service, &format!("readlink /proc/self/ns/{kind}"));
    let host = |kind: &str| {
        std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };
    // host: the host's namespaces, and its name.
    assert_eq!(ns("hostly", "ipc"), host("ipc"));
    assert_eq!(ns("hostly", "uts"), host("uts"));
    assert_eq!(
        sh(&e, &d, "hostly", "cat /proc/sys/kernel/hostname"),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
    // service:own: own's namespace; own's is its own; and own's /dev/shm
    // (POSIX shared memory), both ways.
    assert_eq!(ns("joined", "ipc"), ns("own", "ipc"));
    sh(&e, &d, "own", "echo from-own > /dev/shm/note");
    assert_eq!(sh(&e, &d, "joined", "cat /dev/shm/note"), "from-own");
    sh(&e, &d, "joined", "echo from-joined > /dev/shm/back");
    assert_eq!(sh(&e, &d, "own", "cat /dev/shm/back"), "from-joined");
    assert_eq!(
        sh(&e, &d, "hostly", "test -e /dev/shm/note || echo apart"),
        "apart"
    );
    // The host's /dev/shm comes with its IPC namespace.
    let note = format!("/dev/shm/stack-keys-{}", std::process::id());
    std::fs::write(&note, "from the host\n").unwrap();
    let seen = sh(&e, &d, "hostly", &format!("cat {note}"));
    std::fs::remove_file(&note).unwrap();
    assert_eq!(seen, "from the host");
    assert_ne!(ns("own", "ipc"), host("ipc"));
    assert_ne!(ns("own", "uts"), host("uts"));
    e.out(&stack(&d, &["down"]));
}

#[test]
fn devices_appear_in_the_container_and_open() {
    let (e, d) = project_env(
        "keys",
        "devices",
        r#"
services:
  dev:
    image: local/busybox:1
    command: sleep 1000
    devices:
      - "/dev/null:/dev/mynull"
      - "/dev/net/tun"
  ruled:
    image: local/busybox:1
    command: ["sh", "-c", "mknod /dev/tunnel c 10 200 && exec sleep 1000"]
    cap_add: [MKNOD]
    device_cgroup_rules: ["c 10:200 rwm"]
  plain:
    image: local/busybox:1
    command: sleep 1000
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    assert_eq!(
        sh(
            &e,
            &d,
            "dev",
            "test -c /dev/mynull && echo x > /dev/mynull && echo written"
        ),
        "written"
    );
    // Not in Docker's default list: opened because the service asks for it.
    assert_eq!(
        sh(&e, &d, "dev", "exec 3<>/dev/net/tun && echo opened"),
        "opened"
    );
    assert_eq!(
        sh(&e, &d, "plain", "test -e /dev/net/tun || echo absent"),
        "absent"
    );
    // A rule lets a node the container makes itself open (where the host
    // has a devices controller to apply it).
    if std::path::Path::new("/sys/fs/cgroup/devices").exists() {
        assert_eq!(
            sh(&e, &d, "ruled", "exec 3<>/dev/tunnel && echo opened"),
            "opened"
        );
    }
    e.out(&stack(&d, &["down"]));
}

#[test]
fn pid_namespaces_are_shared_as_asked_and_nothing_outlives_a_stop() {
    let (e, d) = project_env(
        "keys",
        "pid",
        r#"
services:
  first:
    image: local/busybox:1
    command: ["sh", "-c", "exec sleep 1001"]
  sharing:
    image: local/busybox:1
    command: ["sh", "-c", "(trap '' TERM; exec sleep 1002) & exec sleep 1003"]
    pid: service:first
  hostly:
    image: local/busybox:1
    command: ["sh", "-c", "(trap '' TERM; exec sleep 1004) & exec sleep 1005"]
    pid: host
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    let ns = |service: &str| sh(&e, &d, service, "readlink /proc/self/ns/pid");
    let host_ns = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(ns("hostly"), host_ns);
    assert_eq!(ns("sharing"), ns("first"));
    assert_ne!(ns("first"), host_ns);
    // The sharing container sees first's process, and hostly the host's.
    let seen = |service: &str| sh(&e, &d, service, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
    assert!(
        seen("sharing").contains("sleep 1001"),
        "{}",
        seen("sharing")
    );
    assert!(seen("hostly").contains("sleep 1002"), "{}", seen("hostly"));
    // Stopped, the containers outside a namespace of their own leave no
    // process behind: not even the background sleeps that ignore SIGTERM
    // (the stop's SIGKILL goes to PID 1 alone).
    e.out(&stack(&d, &["stop", "-t", "1", "sharing", "hostly"]));
    let ours = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| {
                ["sleep 1002", "sleep 1003", "sleep 1004", "sleep 1005"]
                    .iter()
                    .any(|s| c.starts_with(s))
            })
            .collect::<Vec<_>>()
    };
    common::wait_for("the stopped containers' processes gone", || {
        ours().is_empty()
    });
    e.out(&stack(&d, &["down"]));
}

/// A block device of this host (a disk, not a loop or RAM device), if any.
fn a_disk() -> Option<String> {
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| {
            !["loop", "ram", "zram", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .map(|n| format!("/dev/{n}"))
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn block_io_throttles_reach_the_containers_cgroup() {
    let Some(disk) = a_disk() else {
        eprintln!("no disk on this host: nothing to throttle");
        return;
    };
    let (e, d) = project_env(
        "keys",
        "blkio",
        &format!(
            r#"
services:
  throttled:
    image: local/busybox:1
    command: sleep 1000
    blkio_config:
      device_read_bps: [{{path: {disk}, rate: 1mb}}]
      device_write_iops: [{{path: {disk}, rate: 100}}]
  weighted:
    image: local/busybox:1
    command: sleep 1000
    blkio_config:
      weight: 300
      weight_device: [{{path: {disk}, weight: 500}}]
"#
        ),
    );
    let up = e.stack(&stack(&d, &["up", "-d"]));
    assert!(up.status.success(), "{up:?}");
    // Weights where the host has a weight file (BFQ's, or the
    // controller's); said, and left out, where it has none.
    // (BFQ shows its weights in the cgroups below the root only.)
    let blkio = std::path::Path::new("/sys/fs/cgroup/blkio");
    let has = |dir: &std::path::Path, f: &str| dir.join(f).exists();
    let files = ["blkio.bfq.weight", "blkio.weight"];
    let here = files.iter().find(|f| {
        has(blkio, f)
            || std::fs::read_dir(blkio)
                .is_ok_and(|d| d.flatten().any(|e| e.path().is_dir() && has(&e.path(), f)))
    });
    match here {
        Some(f) => {
            let w = cgroup(&e, &d, "weighted", &format!("blkio/{f}"), "io.weight");
            assert!(w.contains("300"), "{w}");
            // The device's weight needs BFQ to schedule it (here: `none`).
            let sched = std::fs::read_to_string(format!(
                "/sys/class/block/{}/queue/scheduler",
                disk.trim_start_matches("/dev/")
            ))
            .unwrap_or_default();
            if !sched.contains("[bfq]") {
                let err = String::from_utf8_lossy(&up.stderr);
                assert!(err.contains("is not scheduled by BFQ here"), "{err}");
            }
        }
        None => {
            let err = String::from_utf8_lossy(&up.stderr);
            assert!(
                err.contains(
                    "service weighted: block I/O weights: this host's cgroups have no weight file"
                ),
                "{err}"
            );
            assert_eq!(sh(&e, &d, "weighted", "echo running"), "running");
        }
    }
    let read = cgroup(
        &e,
        &d,
        "throttled",
        "blkio/blkio.throttle.read_bps_device",
        "io.max",
    );
    assert!(
        read.ends_with(" 1048576") || read.contains("rbps=1048576"),
        "{read}"
    );
    let iops = cgroup(
        &e,
        &d,
        "throttled",
        "blkio/blkio.throttle.write_iops_device",
        "io.max",
    );
    assert!(
        iops.ends_with(" 100") || iops.contains("wiops=100"),
        "{iops}"
    );
    e.out(&stack(&d, &["down"]));
}

#[test]
fn the_container_keys_show_inside_it() {
    let (e, d) = project_env(
        "keys",
        "plain",
        r#"
services:
  box:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'echo got-usr1 > /out/stopped; exit 0' USR1; while true; do sleep 0.1; done"]
    init: false
    hostname: box
    domainname: example.org
    shm_size: 32m
    sysctls: {net.core.somaxconn: 512}
    tmpfs: [/scratch]
    read_only: true
    user: "1000:1000"
    working_dir: /tmp
    stop_signal: SIGUSR1
    volumes: ["./out:/out"]
"#,
    );
    let out = std::path::Path::new(&d).join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    e.out(&stack(&d, &["up", "-d"]));
    let inside = |script: &str| sh(&e, &d, "box", script);
    assert_eq!(inside("hostname"), "box");
    assert_eq!(inside("cat /proc/sys/kernel/domainname"), "example.org");
    assert_eq!(inside("cat /proc/sys/net/core/somaxconn"), "512");
    let mounts = inside("cat /proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("shm /dev/shm") && l.contains("size=32768k")),
        "{mounts}"
    );
    assert!(
        mounts.lines().any(|l| l.contains(" /scratch tmpfs ")),
        "{mounts}"
    );
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"));
    assert!(
        root.is_some_and(|l| l
            .split_whitespace()
            .nth(3)
            .unwrap_or_default()
            .starts_with("ro")),
        "{mounts}"
    );
    assert_eq!(inside("id -u; id -g").replace('\n', " "), "1000 1000");
    assert_eq!(inside("pwd"), "/tmp");
    // init: false: the command itself is PID 1.
    assert!(
        inside("cat /proc/1/cmdline").starts_with("sh"),
        "PID 1 is not the app"
    );
    // stop_signal: what stop sends first.
    e.out(&stack(&d, &["stop"]));
    assert_eq!(
        std::fs::read_to_string(out.join("stopped")).unwrap(),
        "got-usr1\n"
    );
    e.out(&stack(&d, &["down"]));
}

/// Removes a cgroup parent's directories from every hierarchy on drop.
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let root = std::path::Path::new("/sys/fs/cgroup");
        let mut hierarchies: Vec<std::path::PathBuf> = std::fs::read_dir(root)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        hierarchies.push(root.to_path_buf());
        for h in hierarchies {
            let _ = std::fs::remove_dir(h.join(&self.0).join("inner"));
            let _ = std::fs::remove_dir(h.join(&self.0));
        }
    }
}

#[test]
fn cgroup_parent_puts_the_containers_cgroups_under_that_path() {
    let parent = CgroupParent(format!("stack-test-{}", std::process::id()));
    let (e, d) = project_env(
        "keys",
        "cgparent",
        &format!(
            "services:\n  app:\n    image: local/busybox:1\n    command: sleep 1000\n    mem_limit: 64m\n    cgroup_parent: /{}/inner\n",
            parent.0
        ),
    );
    e.out(&stack(&d, &["up", "-d"]));
    let id = e.out(&stack(&d, &["ps", "-q", "app"])).trim().to_string();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let leaf = match v2 {
        true => std::path::Path::new("/sys/fs/cgroup")
            .join(&parent.0)
            .join("inner")
            .join(&id),
        false => std::path::Path::new("/sys/fs/cgroup/memory")
            .join(&parent.0)
            .join("inner")
            .join(&id),
    };
    let procs = std::fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
    assert!(!procs.trim().is_empty(), "{}: {procs:?}", leaf.display());
    // The container still sees its own cgroup, with its limit.
    assert_eq!(
        cgroup(&e, &d, "app", "memory/memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    // Pause and stats find it there.
    e.out(&stack(&d, &["pause", "app"]));
    assert!(e.out(&stack(&d, &["ps"])).contains("Paused"));
    e.out(&stack(&d, &["unpause", "app"]));
    e.out(&stack(&d, &["down"]));
    assert!(!leaf.exists(), "{}", leaf.display());
    // A parent that climbs is refused before anything is made.
    std::fs::write(
        std::path::Path::new(&d).join("compose.yaml"),
        "services:\n  app:\n    image: local/busybox:1\n    cgroup_parent: ../escape\n",
    )
    .unwrap();
    let why = e.fails(&stack(&d, &["up", "-d"]));
    assert!(
        why.contains("`cgroup_parent`") && why.contains("plain names"),
        "{why}"
    );
}

#[test]
fn a_link_alias_names_the_linked_service_in_the_linking_container() {
    let (e, d) = project_env(
        "keys",
        "links",
        r#"
services:
  db:
    image: local/busybox:1
    command: sleep 1000
  app:
    image: local/busybox:1
    command: sleep 1000
    links: ["db:database", "db"]
"#,
    );
    let o = e.stack(&stack(&d, &["up", "-d"]));
    assert!(o.status.success(), "{o:?}");
    // No warning about the alias any more.
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("alias"),
        "{o:?}"
    );
    let line = sh(&e, &d, "app", "grep -w database /etc/hosts");
    let ip = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{line}");
    // The address is db's own.
    assert!(sh(&e, &d, "db", "cat /etc/hosts").contains(&ip), "{line}");
    e.out(&stack(&d, &["down"]));
}
