//! The docker commands a stack user reaches for (`volume`, `system`,
//! `container diff|export|rename|wait|commit`, `image history`) and the
//! compose commands and flags that match docker compose's (`volumes`, `export`, `commit`,
//! `images`, `ls`, `ps`, `port`, `logs --index`, `run`'s flags, `config`'s
//! flags, `version`), run as users run them, with snapshots of outputs.

mod common;

use std::process::Command;

use common::{in_project, project_env, Env};

fn tar_list(path: &std::path::Path) -> String {
    let o = Command::new("tar").arg("-tf").arg(path).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn volumes_as_docker_manages_them() {
    let e = Env::new("commands", "volume");
    assert_eq!(
        e.out(&["volume", "create", "--label", "team=core", "data"]),
        "data\n"
    );
    let anon = e.out(&["volume", "create"]);
    let anon = anon.trim();
    assert!(
        anon.len() == 64 && anon.chars().all(|c| c.is_ascii_hexdigit()),
        "{anon}"
    );
    // (Rows in name order: the anonymous one's place depends on its name.)
    let listed = e.out(&["volume", "ls"]).replace(anon, "<anonymous>");
    let mut lines: Vec<&str> = listed.lines().collect();
    lines[1..].sort();
    insta::assert_snapshot!("volume_ls", lines.join("\n") + "\n");
    assert_eq!(
        e.out(&[
            "volume",
            "ls",
            "-f",
            "label=team=core",
            "--format",
            "{{.Name}} {{.Labels}}"
        ]),
        "data team=core\n"
    );
    let json = e.out(&["volume", "ls", "--format", "json"]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["Driver"], "local");
    let mount = e.out(&["volume", "inspect", "--format", "{{.Mountpoint}}", "data"]);
    assert!(mount.trim().ends_with("/volumes/data/_data"), "{mount}");
    let inspected: serde_json::Value =
        serde_json::from_str(&e.out(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspected[0]["Labels"]["team"], "core");
    // prune without -a: the anonymous one only; asked first without -f.
    let mut c = e.command(&["volume", "prune"]);
    let o = common::with_input(&mut c, "n\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(e.out(&["volume", "ls", "-q"]).lines().count(), 2);
    let pruned = e.out(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains(anon) && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    assert_eq!(e.out(&["volume", "ls", "-q"]), "data\n");
    let err = e.fails(&["volume", "rm", "data", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    assert_eq!(e.out(&["volume", "ls", "-q"]), "");
}

#[test]
fn containers_diff_export_rename_wait_and_image_history() {
    let e = Env::new("commands", "container");
    common::busybox_image(&e, "local/busybox:1");
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "c1",
        "-m",
        "64m",
        "local/busybox:1",
        "sh",
        "-c",
        "echo new > /new; busybox rm /bin/echo; echo changed > /www/index.html; exec sleep 1000",
    ]);
    let diff = common::wait_for_value("the container's changes", || {
        let d = e.out(&["container", "diff", "c1"]);
        d.contains("A /new").then_some(d)
    });
    for line in ["A /new", "D /bin/echo", "C /www", "C /www/index.html"] {
        assert!(diff.lines().any(|l| l == line), "{line}: {diff}");
    }
    // Limits changed as it runs, and kept in its record.
    assert_eq!(
        e.out(&[
            "container",
            "update",
            "-m",
            "96m",
            "--pids-limit",
            "70",
            "c1"
        ]),
        "c1\n"
    );
    let read = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    assert_eq!(
        e.out(&["container", "exec", "c1", "sh", "-c", read]),
        "100663296\n70\n"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "c1"])).unwrap();
    assert_eq!(
        inspected["spec"]["limits"]["memory"], 100663296,
        "{inspected}"
    );
    e.out(&["container", "rename", "c1", "c2"]);
    let ls = e.out(&["container", "ls"]);
    assert!(ls.contains("c2") && !ls.contains("c1 "), "{ls}");
    let tar = e.dir.join("c2.tar");
    e.out(&["container", "export", "-o", tar.to_str().unwrap(), "c2"]);
    let files = tar_list(&tar);
    assert!(
        files.lines().any(|l| l.trim_start_matches("./") == "new"),
        "{files}"
    );
    assert!(
        !files
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/echo"),
        "{files}"
    );
    // An archive is not written to a terminal-less nowhere: standard output works.
    let o = e.stack(&["container", "export", "c2"]);
    assert!(
        o.status.success() && o.stdout.len() > 1024,
        "{:?}",
        o.status
    );
    e.out(&["container", "kill", "c2"]);
    assert_eq!(e.out(&["container", "wait", "c2"]), "137\n");
    // The new limits outlive its exit (the monitor keeps what is on disk).
    let inspected: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "c2"])).unwrap();
    assert_eq!(
        inspected["spec"]["limits"]["memory"], 100663296,
        "{inspected}"
    );
    let history = e.out(&["image", "history", "local/busybox:1"]);
    let mut lines = history.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    assert_eq!(lines.count(), 1, "{history}");
    let q = e.out(&["image", "history", "-q", "local/busybox:1"]);
    assert!(q.trim().len() == 12, "{q}");
    let json = e.out(&["image", "history", "--format", "json", "local/busybox:1"]);
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert!(row["Size"].as_str().unwrap().ends_with("MB"), "{row}");
    e.out(&["container", "rm", "c2"]);
}

#[test]
fn the_system_as_a_whole() {
    let (e, d) = project_env(
        "commands",
        "system",
        "services:\n  app:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n    volumes: [data:/data]\nvolumes:\n  data: {}\n",
    );
    // Events as they come: the project's containers starting.
    let events = common::Background::spawn(e.command(&[
        "system",
        "events",
        "--format",
        "json",
        "-f",
        "type=container",
    ]));
    e.out(&in_project(&d, &["up", "-d"]));
    let df = e.out(&["system", "df"]);
    let rows: Vec<&str> = df.lines().map(|l| l.split("  ").next().unwrap()).collect();
    assert_eq!(
        rows,
        [
            "TYPE",
            "Images",
            "Containers",
            "Local Volumes",
            "Build Cache"
        ],
        "{df}"
    );
    let containers = df.lines().find(|l| l.starts_with("Containers")).unwrap();
    let counts: Vec<&str> = containers.split_whitespace().collect();
    assert_eq!(counts[1..3], ["1", "1"], "{df}");
    let verbose = e.out(&["system", "df", "-v"]);
    for section in [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage:",
    ] {
        assert!(verbose.contains(section), "{verbose}");
    }
    assert!(verbose.contains("app_data"), "{verbose}");
    let info = e.out(&["system", "info"]);
    assert!(
        info.contains("Server Version:") && info.contains(" Running: 1"),
        "{info}"
    );
    assert_eq!(
        e.out(&["system", "info", "--format", "{{.OSType}}"]),
        "linux\n"
    );
    // The stream is live only: an `up` done before it subscribed is not
    // in it, so the container is restarted until a start shows.
    let mut kicked = std::time::Instant::now();
    let seen = common::wait_for_value("the start event", || {
        let out = events.stdout();
        let seen = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["Action"] == "start");
        if seen.is_none() && kicked.elapsed() > std::time::Duration::from_secs(2) {
            e.out(&in_project(&d, &["restart", "-t", "1", "app"]));
            kicked = std::time::Instant::now();
        }
        seen
    });
    assert_eq!(seen["Actor"]["Attributes"]["name"], "app-app-1");
    drop(events);
    // Prune: the stopped container goes, the volume it used stays (no --volumes).
    e.out(&in_project(&d, &["stop", "-t", "1"]));
    let pruned = e.out(&["system", "prune", "-f"]);
    assert!(
        pruned.contains("Deleted Containers:") && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    assert_eq!(e.out(&in_project(&d, &["ps", "-a", "-q"])), "");
    assert_eq!(e.out(&["volume", "ls", "-q"]), "app_data\n");
    e.out(&in_project(&d, &["down", "-v"]));
}

#[test]
fn compose_commands_as_docker_compose() {
    let (e, d) = project_env(
        "commands",
        "compose",
        "services:\n  web:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"echo web $$HOSTNAME; exec httpd -f -p 80 -h /www\"]\n    ports: [\"80\"]\n    volumes: [data:/data]\n    scale: 2\n  job:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\nvolumes:\n  data: {}\n",
    );
    std::fs::write(std::path::Path::new(&d).join("seed.txt"), "seeded\n").unwrap();
    std::fs::write(
        std::path::Path::new(&d).join("extra.env"),
        "FROM_FILE=yes\n",
    )
    .unwrap();
    e.out(&in_project(&d, &["up", "-d"]));
    assert_eq!(e.out(&in_project(&d, &["volumes", "-q"])), "app_data\n");
    assert_eq!(e.out(&in_project(&d, &["volumes", "-q", "job"])), "");
    let tar = e.dir.join("web.tar");
    e.out(&in_project(
        &d,
        &["export", "--index", "2", "-o", tar.to_str().unwrap(), "web"],
    ));
    assert!(tar_list(&tar).contains("www/index.html"));
    // compose prints one JSON array, sizes in bytes; -q each image once.
    let images: serde_json::Value =
        serde_json::from_str(&e.out(&in_project(&d, &["images", "--format", "json"]))).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 3, "{images}");
    assert_eq!(images[0]["Repository"], "local/busybox");
    assert!(images[0]["Size"].as_u64().unwrap() > 1_000_000, "{images}");
    let ids = e.out(&in_project(&d, &["images", "-q"]));
    assert!(ids.lines().count() == 1 && ids.trim().len() == 64, "{ids}");
    assert!(e.out(&["ls"]).contains("app"));
    let ls: serde_json::Value = serde_json::from_str(
        e.out(&["ls", "--format", "json", "--filter", "name=app"])
            .trim(),
    )
    .unwrap();
    assert_eq!(ls[0]["Status"], "running(3)");
    assert_eq!(
        e.out(&in_project(
            &d,
            &[
                "ps",
                "--format",
                "{{.Service}} {{.State}}",
                "--filter",
                "status=running"
            ]
        )),
        "job running\nweb running\nweb running\n"
    );
    let port = e.out(&in_project(
        &d,
        &["port", "--protocol", "tcp", "--index", "2", "web", "80"],
    ));
    assert!(port.trim().starts_with("0.0.0.0:"), "{port}");
    let logs = common::wait_for_value("the second replica's line", || {
        let l = e.out(&in_project(
            &d,
            &["logs", "--index", "2", "--no-log-prefix", "web"],
        ));
        l.contains("web ").then_some(l)
    });
    assert_eq!(logs.lines().count(), 1, "{logs}");
    // run: a bind, a label, a capability dropped, variables from a file
    // (a path from the working directory, as compose takes it).
    let extra = format!("{d}/extra.env");
    let out = e.out(&in_project(
        &d,
        &[
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "-v",
            "./seed.txt:/seed.txt:ro",
            "-l",
            "purpose=test",
            "--cap-drop",
            "ALL",
            "--env-from-file",
            &extra,
            "-e",
            "FROM_FLAG=1",
            "job",
            "sh",
            "-c",
            "cat /seed.txt; echo $FROM_FILE $FROM_FLAG; grep CapEff /proc/self/status",
        ],
    ));
    assert_eq!(out, "seeded\nyes 1\nCapEff:\t0000000000000000\n");
    let v: serde_json::Value =
        serde_json::from_str(e.out(&["version", "--format", "json"]).trim()).unwrap();
    assert_eq!(v["version"], e.out(&["version", "--short"]).trim());
    e.out(&in_project(&d, &["down", "-v"]));
    // `stack` alone, in the project: its state and what to try.
    let o = e.command(&[]).current_dir(&d).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("Project app") && text.contains("stack up -d"),
        "{text}"
    );
}

#[test]
fn config_flags_as_compose_go_has_them() {
    let e = Env::new("commands", "config");
    let d = e.dir.join("p");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("app.env"), "A=1\n").unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: nginx\n    build: ./web\n    env_file: app.env\n    networks: [elsewhere]\n    volumes: [\"./data:/data\"]\nmodels:\n  llm: {model: ai/x}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        e.command(args)
            .current_dir(&d)
            .env("FROM_SHELL", "here")
            .output()
            .unwrap()
    };
    // A dangling reference: refused, unless consistency is not checked.
    let o = run(&["config"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("undefined network `elsewhere`")
    );
    let text = |o: std::process::Output| {
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let full = text(run(&["config", "--no-consistency"]));
    assert!(
        full.contains(&format!("context: {}/web", d.display())) && full.contains("A: \"1\""),
        "{full}"
    );
    let kept = text(run(&["config", "--no-consistency", "--no-path-resolution"]));
    assert!(
        kept.contains("context: ./web") && kept.contains("source: ./data"),
        "{kept}"
    );
    let raw = text(run(&["config", "--no-consistency", "--no-env-resolution"]));
    assert!(
        !raw.contains("A: \"1\"") && raw.contains("env_file"),
        "{raw}"
    );
    // --no-normalize keeps paths resolved (as compose does).
    let unnormalized = text(run(&["config", "--no-consistency", "--no-normalize"]));
    assert!(
        unnormalized.contains(&format!("{}/web", d.display())),
        "{unnormalized}"
    );
    let env = text(run(&["config", "--no-consistency", "--environment"]));
    assert!(env.lines().any(|l| l == "FROM_SHELL=here"), "{env}");
    assert_eq!(
        text(run(&["config", "--no-consistency", "--models"])),
        "llm\n"
    );
    assert_eq!(
        text(run(&["convert", "--no-consistency", "--services"])),
        "web\n"
    );
}

/// Shell completion asks the binary: the names of what is there now.
#[test]
fn completion_names_what_is_there() {
    let (e, d) = project_env(
        "commands",
        "complete",
        "services:\n  web:\n    image: local/busybox:1\n  worker:\n    image: local/busybox:1\n",
    );
    let complete = |words: &[&str]| -> Vec<String> {
        let mut c = e.command(&[&["--"], words].concat());
        c.current_dir(&d)
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .env("_CLAP_COMPLETE_COMP_TYPE", "9")
            .env("_CLAP_COMPLETE_SPACE", "true")
            .env("_CLAP_IFS", "\n");
        let o = c.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["stack", "logs", "w"]), ["web", "worker"]);
    assert_eq!(complete(&["stack", "exec", "wo"]), ["worker"]);
    e.out(&["volume", "create", "vol-one"]);
    e.out(&["network", "create", "net-one"]);
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "box-one",
        "local/busybox:1",
        "sleep",
        "100",
    ]);
    assert_eq!(complete(&["stack", "volume", "rm", "vol"]), ["vol-one"]);
    assert_eq!(complete(&["stack", "network", "rm", "net"]), ["net-one"]);
    assert_eq!(
        complete(&["stack", "container", "stop", "box"]),
        ["box-one"]
    );
    assert_eq!(
        complete(&["stack", "image", "history", "local/bu"]),
        ["local/busybox:1"]
    );
    assert!(complete(&["stack", "vol"]).contains(&"volume".to_string()));
    let script = e.out(&["completion", "bash"]);
    assert!(
        script.contains("COMPLETE=\"bash\"") && script.contains("complete "),
        "{script}"
    );
    e.out(&["container", "rm", "-f", "box-one"]);
    e.out(&["network", "rm", "net-one"]);
    e.out(&["volume", "rm", "vol-one"]);
}

/// `start --wait`: back when the service is healthy; a service that never
/// is fails after `--wait-timeout`.
#[test]
fn start_waits_until_healthy() {
    let (e, d) = project_env(
        "commands",
        "start-wait",
        "services:\n  slow:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"rm -f /ready; sleep 1; echo > /ready; exec sleep 1000\"]\n    healthcheck: {test: [\"CMD\", \"cat\", \"/ready\"], interval: 200ms, retries: 100}\n  never:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n    healthcheck: {test: [\"CMD\", \"cat\", \"/nowhere\"], interval: 200ms, retries: 100}\n",
    );
    e.out(&in_project(&d, &["up", "-d"]));
    e.out(&in_project(&d, &["stop", "-t", "1"]));
    e.out(&in_project(&d, &["start", "--wait", "slow"]));
    let ps = e.out(&in_project(
        &d,
        &["ps", "--format", "{{.Service}} {{.Health}}", "slow"],
    ));
    assert_eq!(ps, "slow healthy\n");
    let err = e.fails(&in_project(
        &d,
        &["start", "--wait", "--wait-timeout", "1", "never"],
    ));
    assert!(
        err.contains("not ready after 1s") && err.contains("never"),
        "{err}"
    );
    e.out(&in_project(&d, &["down", "-t", "1"]));
}

#[test]
fn commit_makes_an_image_of_a_containers_changes() {
    let (e, d) = project_env(
        "commands",
        "commit",
        "services:\n  web:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"echo served > /www/page; exec sleep 1000\"]\n",
    );
    let data = e.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let bind = format!("{}:/data", data.display());
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "c1",
        "-v",
        &bind,
        "local/busybox:1",
        "sh",
        "-c",
        "echo new > /new; echo in-volume > /data/x; busybox rm /bin/echo; exec sleep 1000",
    ]);
    common::wait_for("the container's changes", || {
        e.out(&["container", "diff", "c1"]).contains("A /new")
    });
    let images = e.out(&["image", "ls", "-q"]);
    // A change commit cannot make is refused, naming it, and makes nothing.
    let err = e.fails(&["container", "commit", "-c", "RUN true", "c1", "local/bad:1"]);
    assert!(err.contains("--change `RUN true`"), "{err}");
    assert_eq!(e.out(&["image", "ls", "-q"]), images);
    let id = e.out(&[
        "container",
        "commit",
        "-a",
        "Jane <jane@example.com>",
        "-m",
        "with new",
        "-c",
        "ENV GREETING=hi",
        "-c",
        "EXPOSE 8080",
        "-c",
        "CMD [\"sh\", \"-c\", \"cat /new; echo $GREETING; ls /data | wc -l; test -e /bin/echo || echo no-echo\"]",
        "c1",
        "local/busybox:committed",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // The running container was paused only while it was read.
    let inspected: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "c1"])).unwrap();
    assert_eq!(inspected["status"], "running", "{inspected}");
    // The new image: the container's files (not its volume's), the changes.
    assert_eq!(
        e.out(&["container", "run", "--rm", "local/busybox:committed"]),
        "new\nhi\n0\nno-echo\n"
    );
    let history = e.out(&[
        "image",
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "local/busybox:committed",
    ]);
    assert_eq!(
        history.lines().next().unwrap(),
        "sh -c echo new > /new; echo in-volume > /data/x; busybox rm /bin/echo; exec sleep 1000|with new"
    );
    let config: serde_json::Value =
        serde_json::from_str(&e.out(&["image", "inspect", "local/busybox:committed"])).unwrap();
    assert!(
        config["config"]["ExposedPorts"].get("8080/tcp").is_some(),
        "{config}"
    );
    e.out(&["container", "rm", "-f", "c1"]);
    // A service's container, by compose's `commit`.
    e.out(&in_project(&d, &["up", "-d"]));
    common::wait_for("the page written", || {
        e.stack(&in_project(&d, &["exec", "web", "cat", "/www/page"]))
            .status
            .success()
    });
    e.out(&in_project(&d, &["commit", "web", "local/web:snap"]));
    e.out(&in_project(&d, &["down"]));
    assert_eq!(
        e.out(&[
            "container",
            "run",
            "--rm",
            "local/web:snap",
            "cat",
            "/www/page"
        ]),
        "served\n"
    );
    let err = e.fails(&in_project(&d, &["commit", "web"]));
    assert!(err.contains("`web` is not running"), "{err}");
}

#[test]
fn attach_follows_a_container_relays_signals_and_exits_with_its_code() {
    let (e, d) = project_env(
        "commands",
        "attach",
        "services:\n  job:\n    image: local/busybox:1\n    stdin_open: true\n    command: [\"sh\", \"-c\", \"while [ ! -e /go ]; do echo waiting; sleep 0.2; done; echo bye; exit 7\"]\n",
    );
    // A container that leaves on SIGINT: our Ctrl-C goes to it.
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "ticker",
        "local/busybox:1",
        "sh",
        "-c",
        "trap 'echo got-int; exit 3' INT; while true; do echo tick; sleep 0.2; done",
    ]);
    let attach = |args: &[&str]| {
        let out = e.dir.join(format!("attach-{}.out", args.len()));
        let child = e
            .command(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (child, out)
    };
    let (mut child, out) = attach(&["container", "attach", "ticker"]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    common::wait_for("output through attach", || read(&out).contains("tick"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    assert!(read(&out).ends_with("got-int\n"), "{}", read(&out));
    e.out(&["container", "rm", "ticker"]);
    // A service's container: its output until it ends, and its code. Its
    // input is not the engine's to give: the user is told so.
    e.out(&in_project(&d, &["up", "-d"]));
    let args = in_project(&d, &["attach", "job"]);
    let (mut child, out) = attach(&args);
    common::wait_for("the service's output", || read(&out).contains("waiting"));
    e.out(&in_project(&d, &["exec", "job", "sh", "-c", ": > /go"]));
    assert_eq!(child.wait().unwrap().code(), Some(7));
    assert!(read(&out).ends_with("bye\n"), "{}", read(&out));
    let warned = read(&out.with_extension("err"));
    assert!(warned.contains("attached to its output only"), "{warned}");
    e.out(&in_project(&d, &["down"]));
}

#[test]
fn restart_no_deps_kill_remove_orphans_and_exec_privileged() {
    let compose = "services:\n  db:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n  app:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"cat /proc/uptime > /started; exec sleep 1000\"]\n    depends_on:\n      db: {condition: service_started, restart: true}\n";
    let (e, d) = project_env("commands", "restart", compose);
    e.out(&in_project(&d, &["up", "-d"]));
    let started = || {
        let o = e.stack(&in_project(&d, &["exec", "app", "cat", "/started"]));
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let first = common::wait_for_value("app started", started);
    // exec --privileged: every capability for that command only.
    let caps = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend(["app", "busybox", "grep", "CapEff", "/proc/self/status"]);
        let line = e.out(&in_project(&d, &args));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let (plain, privileged) = (caps(&[]), caps(&["--privileged"]));
    // CAP_SYS_ADMIN (21) only with it.
    assert_eq!(
        (plain >> 21 & 1, privileged >> 21 & 1),
        (0, 1),
        "{plain:x} {privileged:x}"
    );
    // The container's seccomp filter still holds: unshare is not allowed
    // to a container without CAP_SYS_ADMIN, with it or not.
    let o = e.stack(&in_project(
        &d,
        &[
            "exec",
            "--privileged",
            "app",
            "busybox",
            "unshare",
            "-m",
            "true",
        ],
    ));
    assert!(!o.status.success(), "{o:?}");
    // --no-deps: db alone; app, which asks to restart with it, stays.
    e.out(&in_project(&d, &["restart", "--no-deps", "db"]));
    let running = e.out(&in_project(
        &d,
        &["ps", "--format", "{{.Service}} {{.State}}"],
    ));
    assert!(running.contains("db running"), "{running}");
    assert_eq!(started().as_deref(), Some(first.as_str()));
    // Without it, app follows.
    e.out(&in_project(&d, &["restart", "db"]));
    common::wait_for("app restarted with db", || {
        started().is_some_and(|now| now != first)
    });
    // app leaves the file: kill --remove-orphans kills its container too.
    std::fs::write(
        std::path::Path::new(&d).join("compose.yaml"),
        "services:\n  db:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    e.out(&in_project(&d, &["kill", "--remove-orphans"]));
    // (The signal is sent; the exits are recorded as they come.)
    let left = common::wait_for_value("both killed", || {
        let ps = e.out(&in_project(
            &d,
            &["ps", "-a", "--format", "{{.Service}} {{.State}}"],
        ));
        (!ps.contains("running")).then_some(ps)
    });
    assert_eq!(left.trim(), "app exited\ndb exited", "{left}");
    e.out(&in_project(&d, &["down", "--remove-orphans"]));
}

#[test]
fn a_one_off_container_answers_to_the_service_name_only_with_use_aliases() {
    let (e, d) = project_env(
        "commands",
        "aliases",
        "services:\n  db:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n",
    );
    e.out(&in_project(&d, &["up", "-d"]));
    e.out(&in_project(
        &d,
        &["run", "-d", "--name", "plain", "db", "sleep", "1000"],
    ));
    e.out(&in_project(
        &d,
        &[
            "run",
            "-d",
            "--use-aliases",
            "--name",
            "aliased",
            "db",
            "sleep",
            "1000",
        ],
    ));
    let addresses = |name: &str| {
        let out = e.out(&in_project(
            &d,
            &["exec", "db", "busybox", "nslookup", name],
        ));
        // After the server's own lines: the answers.
        out.split("Name:")
            .skip(1)
            .filter_map(|a| a.split("Address:").nth(1))
            .map(|a| a.trim().to_string())
            .collect::<Vec<_>>()
    };
    let ip = |name: &str| {
        let a = addresses(name);
        assert_eq!(a.len(), 1, "{name}: {a:?}");
        a[0].clone()
    };
    let (plain, aliased) = (ip("plain"), ip("aliased"));
    let db = addresses("db");
    assert_eq!(db.len(), 2, "{db:?}");
    assert!(
        db.contains(&aliased) && !db.contains(&plain),
        "{db:?} {plain} {aliased}"
    );
    e.out(&in_project(&d, &["down", "--remove-orphans", "-t", "0"]));
}

#[test]
fn events_since_replays_what_the_engine_kept_and_until_ends_the_stream() {
    let (e, d) = project_env(
        "commands",
        "events",
        "services:\n  app:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n",
    );
    e.out(&in_project(&d, &["up", "-d"]));
    // Both end at once (until: now), after what happened since an hour ago.
    let compose = e.out(&in_project(
        &d,
        &["events", "--json", "--since", "1h", "--until", "0s"],
    ));
    let actions: Vec<String> = compose
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["service"] == "app")
        .map(|v| v["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.contains(&"start".to_string()), "{compose}");
    let docker = e.out(&[
        "system",
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--format",
        "{{.Action}}",
    ]);
    assert!(docker.lines().any(|l| l == "start"), "{docker}");
    // Nothing kept before then.
    let later = e.out(&in_project(
        &d,
        &["events", "--since", "0s", "--until", "0s"],
    ));
    assert_eq!(later, "");
    e.out(&in_project(&d, &["down", "-t", "0"]));
}

#[test]
fn dry_run_says_what_it_would_do_and_does_nothing() {
    let (e, d) = project_env(
        "commands",
        "dryrun",
        "services:\n  db:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n    volumes: [data:/data]\n  app:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n    depends_on: [db]\nvolumes:\n  data: {}\n",
    );
    e.out(&in_project(&d, &["up", "-d"]));
    let dry = |args: &[&str]| {
        let mut all = vec!["--dry-run"];
        all.extend_from_slice(args);
        e.out(&in_project(&d, &all))
    };
    assert_eq!(
        dry(&["stop"]),
        "step 1: stop container app-app-1\nstep 2: stop container app-db-1\n"
    );
    assert_eq!(
        dry(&["restart", "db"]),
        "step 1: restart container app-db-1\n"
    );
    let down = dry(&["down", "-v"]);
    assert!(
        down.starts_with("step 1: remove container app-app-1")
            && down.contains("step 2: remove container app-db-1")
            && down.contains("remove network app_default")
            && down
                .trim_end()
                .ends_with("remove volume app_data (--volumes)"),
        "{down}"
    );
    assert!(dry(&["up", "--force-recreate", "app"])
        .contains("remove container app-app-1 (--force-recreate)"));
    // Nothing was done.
    let ps = e.out(&in_project(&d, &["ps", "--format", "{{.Name}} {{.State}}"]));
    assert_eq!(ps, "app-app-1 running\napp-db-1 running\n");
    assert!(e.out(&["volume", "ls", "-q"]).contains("app_data"));
    // What cannot only say refuses.
    let err = e.fails(&in_project(&d, &["--dry-run", "build"]));
    assert!(err.contains("`stack build` has no dry run"), "{err}");
    e.out(&in_project(&d, &["down", "-v", "-t", "0"]));
}

#[test]
fn cp_archive_keeps_owners_and_follow_link_copies_the_target() {
    use std::os::unix::fs::MetadataExt as _;
    let (e, d) = project_env(
        "commands",
        "cp",
        "services:\n  app:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"busybox mkdir /d; echo hi > /d/f; busybox chown -R 1000:1001 /d; busybox ln -s /d/f /link; busybox mkdir -p /u/lib /u/share; echo deep > /u/share/y; busybox ln -s u/lib /lib2; busybox ln -s ../share/y /u/lib/x; exec sleep 1000\"]\n",
    );
    e.out(&in_project(&d, &["up", "-d"]));
    common::wait_for("the files made", || {
        e.stack(&in_project(&d, &["exec", "app", "cat", "/link"]))
            .status
            .success()
    });
    let out = e.dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let cp = |args: &[&str]| {
        let mut all = vec!["cp"];
        all.extend_from_slice(args);
        e.out(&in_project(&d, &all));
    };
    let at = |name: &str| out.join(name).display().to_string();
    cp(&["app:/d", &at("plain")]);
    cp(&["-a", "app:/d", &at("kept")]);
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(out.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("plain/f"), (0, 0));
    assert_eq!(owner("kept/f"), (1000, 1001));
    assert_eq!(owner("kept"), (1000, 1001));
    cp(&["app:/link", &at("as-link")]);
    cp(&["-L", "app:/link", &at("as-file")]);
    assert!(std::fs::symlink_metadata(out.join("as-link"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(out.join("as-file")).unwrap(),
        "hi\n"
    );
    // `..` after a symlinked directory is its target's parent, as the kernel has it.
    cp(&["-L", "app:/lib2/x", &at("deep")]);
    assert_eq!(std::fs::read_to_string(out.join("deep")).unwrap(), "deep\n");
    // Into the container: the copier's owner is not kept unless -a.
    std::os::unix::fs::chown(out.join("as-file"), Some(1234), Some(4321)).unwrap();
    // (A setuid bit survives the owner's change: the mode is set after it.)
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(out.join("as-file"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    cp(&[&at("as-file"), "app:/plain"]);
    cp(&["-a", &at("as-file"), "app:/kept"]);
    let ls = e.out(&in_project(
        &d,
        &[
            "exec",
            "app",
            "busybox",
            "stat",
            "-c",
            "%n %u:%g %a",
            "/plain",
            "/kept",
        ],
    ));
    assert_eq!(ls, "/plain 0:0 4755\n/kept 1234:4321 4755\n");
    e.out(&in_project(&d, &["down", "-t", "0"]));
}

#[test]
fn compatibility_names_and_service_namespaces_found_by_labels() {
    let (e, d) = project_env(
        "commands",
        "compat",
        "services:\n  db:\n    image: local/busybox:1\n    container_name: mydb\n    command: [\"sleep\", \"1000\"]\n  web:\n    image: local/busybox:1\n    command: [\"sleep\", \"1000\"]\n    network_mode: \"service:db\"\n    depends_on: [db]\n",
    );
    // web joins db's network namespace, though db is not named app-db-1.
    e.out(&in_project(&d, &["--compatibility", "up", "-d"]));
    let names = e.out(&in_project(&d, &["ps", "--format", "{{.Name}}"]));
    assert_eq!(names, "app_web_1\nmydb\n");
    let net = |c: &str| {
        e.out(&in_project(
            &d,
            &["exec", c, "busybox", "readlink", "/proc/self/ns/net"],
        ))
    };
    assert_eq!(net("db"), net("web"));
    let run = e.out(&in_project(
        &d,
        &["--compatibility", "run", "-d", "db", "true"],
    ));
    let all = e.out(&["container", "ls", "-a"]);
    assert!(all.contains("app_db_run_"), "{run}{all}");
    e.out(&in_project(&d, &["down", "--remove-orphans", "-t", "0"]));
}

#[test]
fn up_menu_starts_a_watch_and_detaches_on_keys() {
    use std::io::Write as _;
    let (e, d) = project_env(
        "commands",
        "menu",
        "services:\n  app:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"echo hello; exec sleep 1000\"]\n",
    );
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = e
        .command(&in_project(&d, &["up", "--menu"]))
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    let terminal = pty.slave;
    let mut seen = Vec::new();
    // (The test holds the terminal open: a read could wait for ever.)
    let mut read_until = |what: &str| {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd as _;
        let mut buf = [0u8; 4096];
        let guard = std::time::Instant::now() + common::PATIENCE;
        while !String::from_utf8_lossy(&seen).contains(what) && std::time::Instant::now() < guard {
            let mut fds = [PollFd::new(pty.master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(1000u16)).unwrap_or(0) == 0 {
                continue;
            }
            match nix::unistd::read(&pty.master, &mut buf) {
                Ok(n @ 1..) => seen.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&seen).to_string()
    };
    let shown = read_until("hello");
    assert!(shown.contains("w Enable Watch   d Detach"), "{shown}");
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    master.write_all(b"w").unwrap();
    read_until("Watch enabled");
    master.write_all(b"d").unwrap();
    let text = read_until("Detached");
    assert!(child.wait().unwrap().success(), "{text}");
    // The stack runs on; the terminal is left as it was.
    let ps = e.out(&in_project(&d, &["ps", "--format", "{{.Name}} {{.State}}"]));
    assert_eq!(ps, "app-app-1 running\n");
    let flags = nix::sys::termios::tcgetattr(&terminal).unwrap().local_flags;
    use nix::sys::termios::LocalFlags;
    assert!(
        flags.contains(LocalFlags::ECHO | LocalFlags::ICANON),
        "{flags:?}"
    );
    e.out(&in_project(&d, &["down", "-t", "0"]));
}
