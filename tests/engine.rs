//! The engine process, as root: the CLI starts it, it survives nothing it
//! does not need to (kill -9 loses no container, no log, no exit code), a
//! new one re-adopts what runs and sweeps what an interrupted `up` left,
//! and re-running `up` converges.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Env;
use nix::sys::signal::Signal;

fn project(e: &Env, name: &str, body: &str) -> std::path::PathBuf {
    common::busybox_image(e, "local/busybox:1");
    let dir = e.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), body).unwrap();
    dir
}

fn inspect(e: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&e.out(&["container", "inspect", name])).unwrap()
}

fn log_lines(e: &Env, name: &str) -> usize {
    e.out(&["container", "logs", name]).lines().count()
}

/// Files in a directory of the root.
fn entries(e: &Env, dir: &str) -> Vec<String> {
    std::fs::read_dir(e.root().join(dir))
        .map(|d| {
            d.flatten()
                .map(|x| x.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn containers_outlive_a_killed_engine() {
    let mut e = Env::new("engine", "survive");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let dir = project(
        &e,
        "shop",
        r#"services:
  web:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
  ticker:
    image: local/busybox:1
    command: ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
"#,
    );
    let d = dir.to_str().unwrap();
    assert_eq!(e.engine_pid(), None);
    e.out(&["--project-directory", d, "up", "-d"]);
    let first = e.engine_pid().expect("`up` started an engine");
    let ids = e.out(&["--project-directory", d, "ps", "-q"]);
    assert_eq!(ids.lines().count(), 2, "{ids}");

    // One sealed copy of the binary for every container of this engine.
    let exe = |c: &str| {
        let pid = inspect(&e, c)["monitor_pid"].as_i64().unwrap();
        let m = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
        (
            std::os::unix::fs::MetadataExt::dev(&m),
            std::os::unix::fs::MetadataExt::ino(&m),
        )
    };
    assert_eq!(exe("shop-web-1"), exe("shop-ticker-1"));

    // A second engine for the same root refuses.
    let err = e.fails(&["daemon"]);
    assert!(err.contains("an engine already serves"), "{err}");

    e.signal_engine(Signal::SIGKILL);
    assert_eq!(e.engine_pid(), None);
    // Nothing needs the engine to keep running and logging.
    let before = log_lines(&e, "shop-ticker-1");
    common::wait_for("the ticker logging on without an engine", || {
        log_lines(&e, "shop-ticker-1") > before + 2
    });

    // The next command starts a new engine, which finds everything.
    let ps = e.out(&["--project-directory", d, "ps"]);
    let second = e.engine_pid().expect("`ps` started an engine");
    assert_ne!(first, second);
    assert_eq!(ps.matches(" Up").count(), 2, "{ps}");
    let log = std::fs::read_to_string(e.root().join("engine.log")).unwrap();
    assert!(log.contains("re-adopted 2 containers (2 running)"), "{log}");
    assert_eq!(e.out(&["--project-directory", d, "ps", "-q"]), ids);
    let ls = e.out(&["ls"]);
    assert!(ls.contains("shop") && ls.contains("running(2)"), "{ls}");
    assert!(
        ls.contains(&dir.join("compose.yaml").display().to_string()),
        "{ls}"
    );

    // up again: nothing to change.
    e.out(&["--project-directory", d, "up", "-d"]);
    assert_eq!(e.out(&["--project-directory", d, "ps", "-q"]), ids);
    assert_eq!(
        e.out(&["container", "exec", "shop-web-1", "cat", "/www/index.html"]),
        "hello from web\n"
    );
    // Exit codes are recorded by the container's monitor, engine or not.
    e.signal_engine(Signal::SIGKILL);
    e.out(&["container", "stop", "shop-ticker-1"]);
    let st = inspect(&e, "shop-ticker-1");
    assert_eq!(st["exit_code"], 143, "{st}");
    // And it starts again in place, engine or not.
    e.out(&["container", "start", "shop-ticker-1"]);
    let again = inspect(&e, "shop-ticker-1");
    assert_eq!(again["running"], true, "{again}");
    assert_eq!(again["id"], st["id"]);

    e.out(&["--project-directory", d, "down"]);
    assert_eq!(entries(&e, "containers"), Vec::<String>::new());
    assert_eq!(e.out(&["ls", "-q"]), "");
}

#[test]
fn an_up_cut_short_converges() {
    let mut e = Env::new("engine", "cut");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    // A chain: each service waits for the one before it; s1 waits for s0
    // to be healthy, which s0 is only once the test has made `gate/go`: the
    // first `up` cannot get past s0, however fast the engine is.
    let n = 8;
    let mut body = String::from("services:\n");
    for i in 0..n {
        body.push_str(&format!(
            "  s{i}:\n    image: local/busybox:1\n    command: sleep 600\n"
        ));
        match i {
            0 => body.push_str(
                "    volumes: [\"./gate:/gate\"]\n    healthcheck:\n      test: [\"CMD-SHELL\", \"test -e /gate/go\"]\n      interval: 200ms\n      start_period: 1h\n      start_interval: 100ms\n",
            ),
            1 => body.push_str("    depends_on:\n      s0: {condition: service_healthy}\n"),
            _ => body.push_str(&format!("    depends_on: [s{}]\n", i - 1)),
        }
    }
    let dir = project(&e, "chain", &body);
    std::fs::create_dir_all(dir.join("gate")).unwrap();
    let d = dir.to_str().unwrap();
    let up = e
        .command(&["--project-directory", d, "up", "-d"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the engine as soon as the first container is being made.
    // (Polled closely: the first is likely caught half made.)
    let t = Instant::now();
    while entries(&e, "containers").is_empty() {
        assert!(
            t.elapsed() < common::PATIENCE,
            "no container appeared within {:?}",
            common::PATIENCE
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    e.signal_engine(Signal::SIGKILL);
    let made = entries(&e, "containers").len();
    assert!(made < n, "the engine finished before it was killed");
    let out = up.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the engine stopped answering"), "{err}");

    // What an engine killed between making a claim aside and renaming it
    // into place leaves (the kill above may or may not have left one).
    let aside = e.root().join("spread/.0123456789ab.999999999-1.claim");
    std::fs::create_dir_all(&aside).unwrap();
    std::os::unix::fs::symlink("999999999 1", aside.join("creating")).unwrap();

    // Again, s0 free to become healthy: the new engine sweeps, the plan
    // completes the rest.
    std::fs::write(dir.join("gate/go"), "").unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    assert_eq!(
        entries(&e, "spread"),
        Vec::<String>::new(),
        "claims aside swept"
    );
    let ps = e.out(&["--project-directory", d, "ps"]);
    for i in 0..n {
        assert_eq!(ps.matches(&format!("chain-s{i}-1 ")).count(), 1, "{ps}");
    }
    assert_eq!(ps.matches(" Up").count(), n, "{ps}");
    let dirs: Vec<String> = entries(&e, "containers")
        .iter()
        .map(|c| format!("{c}: {:?}", entries(&e, &format!("containers/{c}"))))
        .collect();
    assert_eq!(
        dirs.len(),
        n,
        "{dirs:#?}\n{}",
        std::fs::read_to_string(e.root().join("engine.log")).unwrap()
    );
    assert_eq!(
        entries(&e, "networks/netns").len(),
        n,
        "one network namespace each"
    );
    e.out(&["--project-directory", d, "down"]);
    for dir in ["containers", "networks/netns"] {
        assert_eq!(entries(&e, dir), Vec::<String>::new(), "{dir}");
    }
    assert_eq!(e.out(&["network", "ls", "-q"]), "");
}

#[test]
fn engine_errors_are_clear() {
    let e = Env::new("engine", "errors");
    let err = e.fails(&["daemon", "--group", "no-such-group-here"]);
    assert!(err.contains("no such group: `no-such-group-here`"), "{err}");
    // A socket path nobody can listen on: the CLI says where to look.
    let o = e
        .command(&["ls"])
        .env("STACK_SOCKET", "/nonexistent/dir/engine.sock")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the engine did not start"), "{err}");
    assert!(Path::new(&e.root()).join("engine.log").exists());
}

/// One container's state file damaged (as a full disk or a bad editor
/// leaves it): `ps` still lists it, rebuilt from its spec and cgroups, and
/// `down` removes it with everything the project had: processes, network
/// namespaces, links, nft rules, the DNS server.
#[test]
fn a_damaged_record_is_rebuilt_and_down_removes_everything() {
    let mut e = Env::new("engine", "damaged");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let dir = project(
        &e,
        "dmg",
        "services:\n  a:\n    image: local/busybox:1\n    command: sleep 600\n  b:\n    image: local/busybox:1\n    command: sleep 600\n",
    );
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    let bridge = common::bridge(&e, "dmg_default");
    let id = inspect(&e, "dmg-a-1")["id"].as_str().unwrap().to_string();
    let pid = inspect(&e, "dmg-a-1")["pid"].as_i64().unwrap();
    let state = e.root().join("containers").join(&id).join("state.json");
    std::fs::write(&state, "{\"id\": \"half").unwrap();
    let ps = e.out(&["--project-directory", d, "ps"]);
    assert!(
        ps.contains("dmg-a-1") && ps.contains("(record rebuilt)"),
        "{ps}"
    );
    assert!(
        e.engine_log().contains("state rebuilt"),
        "{}",
        e.engine_log()
    );
    e.out(&["--project-directory", d, "down"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "its PID 1 runs on"
    );
    assert_eq!(entries(&e, "containers"), Vec::<String>::new());
    common::assert_nothing_left(&e, &[bridge]);
}

/// Between operations the engine keeps little of the code they ran: `up`
/// touches code all over the binary, supervision and waiting on the API
/// need a small part of it.
#[test]
fn an_idle_engine_gives_back_the_code_it_ran() {
    let e = Env::new("engine", "idle");
    let dir = project(
        &e,
        "idle",
        "services:\n  a:\n    image: local/busybox:1\n    command: sleep 600\n    network_mode: none\n",
    );
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    let engine = e.engine_pid().unwrap();
    let (peak, size) = common::resident_code(engine);
    common::wait_for("the engine to give back its code", || {
        common::resident_code(engine).0 * 5 < size
    });
    // And it still works, with what it faults back in.
    e.out(&["--project-directory", d, "down"]);
    let (after, _) = common::resident_code(engine);
    eprintln!("code resident: {peak} KiB after up, {after} KiB after down, of {size} KiB");
    assert_eq!(entries(&e, "containers"), Vec::<String>::new());
}

/// A `down` killed between unmounting a container's network namespace and
/// removing its file leaves a stopped container with a plain file there:
/// the next `up` makes it anew instead of failing to start it.
#[test]
fn a_stopped_container_whose_namespace_is_gone_is_made_anew() {
    let mut e = Env::new("engine", "netns-gone");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let dir = project(
        &e,
        "gone",
        "services:\n  a:\n    image: local/busybox:1\n    command: sleep 600\n",
    );
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    let bridge = common::bridge(&e, "gone_default");
    let old = inspect(&e, "gone-a-1")["id"].as_str().unwrap().to_string();
    e.out(&["--project-directory", d, "stop"]);
    let netns = e.root().join("networks/netns").join(&old);
    nix::mount::umount2(&netns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(netns.exists());
    e.out(&["--project-directory", d, "up", "-d"]);
    let new = inspect(&e, "gone-a-1");
    assert_ne!(new["id"].as_str().unwrap(), old, "{new}");
    assert_eq!(new["status"], "running", "{new}");
    e.out(&["--project-directory", d, "down"]);
    common::assert_nothing_left(&e, &[bridge]);
}
