//! `stack up -d`, `ps`, `port`, `down` on a real project, as root: three
//! services on two networks from a busybox image imported here, DNS by
//! service name across replicas, idempotent `up`, recreation of exactly
//! the changed service, scaling, and nothing left after `down`.

mod common;

use std::path::Path;

use common::Env;

/// A test's own root (DNS answers no outside names) with a project
/// directory `shop` holding `compose`.
fn env_with(name: &str, compose: &str) -> (Env, std::path::PathBuf) {
    let mut e = Env::new("compose", name);
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let dir = project(&e);
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    (e, dir)
}

fn project(e: &Env) -> std::path::PathBuf {
    common::busybox_image(e, "local/busybox:1");
    let dir = e.dir.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `exec -T SERVICE sh -c SCRIPT` in the project at `d`: its standard
/// output and whether it succeeded.
fn sh(e: &Env, d: &str, service: &str, script: &str) -> (String, bool) {
    let o = e.stack(&[
        "--project-directory",
        d,
        "exec",
        "-T",
        service,
        "sh",
        "-c",
        script,
    ]);
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        o.status.success(),
    )
}

fn compose(dir: &Path, web_replicas: u32, api_sleep: u32) {
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            r#"services:
  web:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
    ports: ["80"]
    deploy:
      replicas: {web_replicas}
  api:
    image: local/busybox:1
    command: ["sh", "-c", "while true; do sleep {api_sleep}; done"]
    depends_on: [web]
    networks: [default, back]
  db:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
    networks:
      back:
        aliases: [database]
    volumes:
      - data:/data
networks:
  back:
volumes:
  data:
"#
        ),
    )
    .unwrap();
}

#[test]
fn up_ps_port_recreate_scale_down() {
    let mut e = Env::new("compose", "shop");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let dir = project(&e);
    compose(&dir, 2, 1);
    let d = dir.to_str().unwrap();
    let up = |extra: &[&str]| {
        let mut args = vec!["--project-directory", d, "up", "-d"];
        args.extend_from_slice(extra);
        e.out(&args)
    };
    // The plan first, then the real thing.
    let plan = up(&["--dry-run"]);
    assert!(
        plan.contains("step 1: create network shop_back")
            && plan.contains("step 3: create and start container shop-api-1"),
        "{plan}"
    );
    up(&[]);
    let ps = e.out(&["--project-directory", d, "ps"]);
    for name in ["shop-web-1", "shop-web-2", "shop-api-1", "shop-db-1"] {
        assert!(ps.contains(name), "{ps}");
    }
    // The service name resolves to both replicas; an alias on the other network works.
    let exec = |c: &str, script: &str| e.out(&["container", "exec", c, "sh", "-c", script]);
    let web = exec("shop-api-1", "nslookup web");
    assert_eq!(web.matches("Address: 10.").count(), 2, "{web}");
    assert!(exec("shop-api-1", "wget -qO- http://database/").contains("hello from web"));
    // db is on `back` only: web cannot see it.
    let o = e.stack(&["container", "exec", "shop-web-1", "nslookup", "db"]);
    assert!(!o.status.success());
    // The random host port of each replica, read back.
    for i in ["1", "2"] {
        let p = e.out(&["--project-directory", d, "port", "web", "80", "--index", i]);
        let port: u16 = p.trim().rsplit(':').next().unwrap().parse().unwrap();
        assert!(port >= 32768, "{p}");
    }
    // A second up changes nothing.
    assert!(up(&["--dry-run"]).contains("nothing to do"));
    let ids = |e: &Env| e.out(&["--project-directory", d, "ps", "-q"]);
    let before = ids(&e);
    up(&[]);
    assert_eq!(ids(&e), before);
    // A changed service is recreated, alone.
    compose(&dir, 2, 2);
    let plan = up(&["--dry-run"]);
    assert_eq!(plan.lines().count(), 2, "{plan}");
    assert!(
        plan.contains("remove container shop-api-1 (its configuration changed)"),
        "{plan}"
    );
    up(&[]);
    let after = ids(&e);
    assert_eq!(before.lines().filter(|l| !after.contains(*l)).count(), 1);
    // Scaling down removes the extra replica.
    compose(&dir, 1, 2);
    up(&[]);
    assert!(!e
        .out(&["--project-directory", d, "ps"])
        .contains("shop-web-2"));
    // down: no container, no network; the named volume stays.
    e.out(&["--project-directory", d, "down"]);
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
    assert_eq!(e.out(&["network", "ls", "-q"]), "");
    assert!(e.root().join("volumes/shop_data/_data").is_dir());
}

#[test]
fn bad_requests_change_nothing() {
    let e = Env::new("compose", "bad");
    let dir = project(&e);
    compose(&dir, 1, 1);
    let d = dir.to_str().unwrap();
    assert!(e
        .fails(&["--project-directory", d, "up", "-d", "nope"])
        .contains("no such service: `nope`"));
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  a:\n    image: local/busybox:1\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n",
    )
    .unwrap();
    let err = e.fails(&["--project-directory", d, "up", "-d"]);
    assert!(
        err.contains("network shared declared as external, but could not be found"),
        "{err}"
    );
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
    // An image that is not here, with pulls forbidden: named before
    // anything is created (the network included).
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  a:\n    image: local/busybox:1\n  b:\n    image: local/nothing:1\n    depends_on: [a]\n",
    )
    .unwrap();
    let err = e.fails(&["--project-directory", d, "up", "-d", "--pull", "never"]);
    assert!(
        err.contains("service b: image `local/nothing:1` is not here and the pull policy is never"),
        "{err}"
    );
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
    assert_eq!(e.out(&["network", "ls", "-q"]), "");
}

#[test]
fn the_hello_example_answers() {
    let mut e = Env::new("compose", "hello");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let port = common::free_port();
    e.vars.push(("WEB_PORT".into(), port.to_string()));
    common::busybox_image(&e, "example/busybox:1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    // web asks api by name, api asks store (on the internal network) by name.
    let body = common::wait_for_ok("the hello example answering with its items", || {
        let got = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read as _, Write as _};
                s.write_all(b"GET /cgi-bin/index HTTP/1.0\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            });
        match got {
            Some(b) if b.contains("apples") => Ok(b),
            _ => Err(format!("{got:?}")),
        }
    });
    assert!(body.contains(r#"{"items": ["apples", "pears"]}"#), "{body}");
    // The store has its secret, read-only.
    assert_eq!(
        e.out(&[
            "--project-directory",
            d,
            "exec",
            "-T",
            "store",
            "cat",
            "/run/secrets/store_token"
        ]),
        "hello-store-token\n"
    );
    assert!(e
        .out(&["--project-directory", d, "logs", "store"])
        .contains("store-1 | store: token loaded"));
    e.out(&["--project-directory", d, "down"]);
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
}

/// The compose commands beyond up/down, through the engine: attached `up`
/// with prefixed output and the exit code of a service, `logs`, stop and
/// start in place (same id and address), restart, kill, pause, exec, rm.
#[test]
fn lifecycle_commands() {
    // The job ends once the test has made `gate/go`: after what it waits
    // for has been shown (the ticker's output; the job's complaint, so that
    // `done` is logged after it).
    let (e, dir) = env_with(
        "life",
        r#"services:
  job:
    image: local/busybox:1
    command: ["sh", "-c", "echo working; echo complaint >&2; until [ -e /gate/go ]; do sleep 0.05; done; echo done; exit 3"]
    volumes: ["./gate:/gate"]
  ticker:
    image: local/busybox:1
    command: ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
    depends_on: [job]
"#,
    );
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut a = vec!["--project-directory", d];
        a.extend_from_slice(args);
        e.stack(&a)
    };
    let out = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // `up --exit-code-from job --no-color ARGS`, the job let go once the
    // lines `shown` are shown.
    std::fs::create_dir_all(dir.join("gate")).unwrap();
    let attached = |args: &[&str], shown: &[&str]| {
        let _ = std::fs::remove_file(dir.join("gate/go"));
        let mut all = vec![
            "--project-directory",
            d,
            "up",
            "--exit-code-from",
            "job",
            "--no-color",
        ];
        all.extend_from_slice(args);
        let up = common::Background::spawn(e.command(&all));
        for line in shown {
            common::wait_for(&format!("attached `up` showing {line:?}"), || {
                up.stdout().contains(line)
            });
        }
        std::fs::write(dir.join("gate/go"), "").unwrap();
        up.wait("attached `up` ending with the job")
    };
    // Attached: every container's output, prefixed; the job's code is ours.
    let o = attached(&[], &["ticker-1 | tick", "job-1    | complaint"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    for line in [
        "job-1    | working",
        "job-1    | complaint",
        "job-1    | done",
        "ticker-1 | tick",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // Its last line shown before the stack stops, and then that it ended.
    let exited = text.find("\njob-1 exited with code 3\n");
    assert!(exited > text.find("job-1    | done"), "{text}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("Container shop-ticker-1  Stopped"),
        "{stderr}"
    );
    // --no-attach: the ticker runs, its output is not shown.
    let o = attached(&["--no-attach", "ticker"], &["job-1    | complaint"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("job-1    | done") && !text.contains("tick"),
        "{text}"
    );
    // Started again in place: this run's output only, as compose attaches.
    assert_eq!(text.matches("job-1    | working").count(), 1, "{text}");
    let ps = out(&["ps", "-a"]);
    assert!(
        ps.contains("Exited (3)") && ps.contains("Exited (143)"),
        "{ps}"
    );

    // logs: tail per container, no prefix, one service.
    let logs = out(&["logs", "--tail", "1", "--no-log-prefix", "job"]);
    assert_eq!(logs, "done\n");
    assert!(run(&["logs", "nope"]).status.code() != Some(0));
    // --since / --until: a window in time, in every form Docker takes.
    let job = |args: &[&str]| {
        let mut a = vec!["logs", "--no-log-prefix"];
        a.extend_from_slice(args);
        a.push("job");
        out(&a).lines().count()
    };
    let all = job(&[]);
    assert!(all >= 3, "{all}");
    assert_eq!(job(&["--since", "1h"]), all);
    assert_eq!(job(&["--until", "2000-01-01"]), 0);
    assert_eq!(
        job(&["--since", "2000-01-01T00:00:00Z", "--until", "1h"]),
        0
    );
    assert_eq!(job(&["--since", "4102444800"]), 0); // 2100
    let o = run(&["logs", "--since", "yesterday", "job"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--since") && err.contains("yesterday"),
        "{err}"
    );

    // start in place: the same container, the same address.
    let inspect = |name: &str| -> serde_json::Value {
        serde_json::from_str(&e.out(&["container", "inspect", name])).unwrap()
    };
    let ip = |name: &str| {
        e.out(&[
            "container",
            "exec",
            name,
            "busybox",
            "ip",
            "-4",
            "addr",
            "show",
            "eth0",
        ])
    };
    let id = inspect("shop-ticker-1")["id"].clone();
    out(&["start", "ticker"]);
    assert_eq!(inspect("shop-ticker-1")["id"], id);
    let first_ip = ip("shop-ticker-1");
    assert!(first_ip.contains("inet 10."), "{first_ip}");
    out(&["restart", "-t", "1", "ticker"]);
    assert_eq!(inspect("shop-ticker-1")["id"], id);
    assert_eq!(ip("shop-ticker-1"), first_ip);
    assert_eq!(inspect("shop-ticker-1")["running"], true);

    // exec: by service, with the command's exit code.
    let o = run(&["exec", "-T", "ticker", "sh", "-c", "echo inside; exit 4"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "inside\n");
    // exec -d: back at once, with nothing printed; the process runs on.
    assert_eq!(
        out(&[
            "exec",
            "-d",
            "ticker",
            "sh",
            "-c",
            "echo $$ > /bg; exec sleep 1000"
        ]),
        ""
    );
    common::wait_for("the detached exec running", || {
        sh(
            &e,
            d,
            "ticker",
            "kill -0 $(cat /bg) && grep -q sleep /proc/$(cat /bg)/cmdline",
        )
        .1
    });

    out(&["pause", "ticker"]);
    assert!(out(&["ps"]).contains("Up (Paused)"));
    out(&["unpause", "ticker"]);
    assert!(!out(&["ps"]).contains("Paused"));
    out(&["kill", "-s", "TERM", "ticker"]);
    common::wait_for("the ticker ended by kill -s TERM", || {
        inspect("shop-ticker-1")["running"] == false
    });
    assert!(e.out(&["ls", "-a"]).contains("exited(2)"));
    out(&["rm", "-f"]);
    assert_eq!(out(&["ps", "-a", "-q"]), "");
    out(&["down"]);
    assert_eq!(e.out(&["network", "ls", "-q"]), "");
}

/// Secrets and configs from a file, inline content and an environment
/// variable, at their default and given targets, with modes; a missing one
/// is named; `down` removes what was written for them.
#[test]
fn secrets_and_configs() {
    let (mut e, dir) = env_with(
        "secrets",
        r#"services:
  app:
    image: local/busybox:1
    command: sleep 600
    network_mode: none
    secrets:
      - db_password
      - source: api_key
        target: key
        mode: 0400
    configs:
      - app_conf
      - source: app_conf
        target: /etc/app.conf
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    environment: API_KEY
configs:
  app_conf:
    content: "level = debug"
"#,
    );
    e.vars
        .push(("API_KEY".into(), "from-the-environment".into()));
    std::fs::write(dir.join("db_password.txt"), "from-a-file\n").unwrap();
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    let app = |script: &str| {
        let (out, ok) = sh(&e, d, "app", script);
        assert!(ok, "{script}: {out}");
        out
    };
    assert_eq!(app("cat /run/secrets/db_password"), "from-a-file\n");
    assert_eq!(app("cat /run/secrets/key"), "from-the-environment");
    assert_eq!(app("busybox stat -c %a /run/secrets/key"), "400\n");
    assert_eq!(
        app("cat /app_conf; echo; cat /etc/app.conf"),
        "level = debug\nlevel = debug"
    );
    // Read-only, even for root.
    let o = sh(&e, d, "app", "echo x > /run/secrets/db_password");
    assert!(!o.1);
    assert!(e.root().join("projects/shop").is_dir());
    e.out(&["--project-directory", d, "down"]);
    assert!(!e.root().join("projects/shop").exists());
    // An unset variable is named, and nothing starts.
    let err = e
        .command(&["--project-directory", d, "up", "-d"])
        .env_remove("API_KEY")
        .output()
        .unwrap();
    e.vars.retain(|(k, _)| k != "API_KEY");
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success());
    assert!(
        msg.contains("secret `api_key`: the environment variable `API_KEY` is not set"),
        "{msg}"
    );
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
}

/// `stack run`: a one-off container of a service, its dependencies started
/// first (and removed again with --rm-deps), the command's output and exit
/// code, the service's environment and networks; `up` leaves it alone.
#[test]
fn one_off_run() {
    let (e, dir) = env_with(
        "run",
        r#"services:
  db:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
  tests:
    image: local/busybox:1
    command: ["echo", "the default command"]
    environment:
      GREETING: hello
    depends_on: [db]
"#,
    );
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut a = vec!["--project-directory", d, "run"];
        a.extend_from_slice(args);
        e.stack(&a)
    };
    // The dependency comes up; the task reaches it by name; its code is ours.
    let o = run(&[
        "--rm",
        "--rm-deps",
        "-e",
        "EXTRA=1",
        "tests",
        "sh",
        "-c",
        "echo $GREETING $EXTRA; wget -qO- http://db/; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello 1\nhello from web\n"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Container shop-db-1  Started")
            && err.contains("Container shop-db-1  Removed"),
        "{err}"
    );
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");

    // The service's command by default; without --rm the container stays,
    // and `up` does not count it as a replica.
    let o = run(&["--no-deps", "--name", "once", "tests"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "the default command\n",
        "{o:?}"
    );
    assert!(e.out(&["container", "ls", "-a"]).contains("once"));
    // Its output is logged, as the container's; the project's logs leave
    // one-offs out, as compose's.
    assert_eq!(
        e.out(&["container", "logs", "once"]),
        "the default command\n"
    );
    assert_eq!(e.out(&["--project-directory", d, "logs"]), "");
    e.out(&["--project-directory", d, "up", "-d"]);
    let ps = e.out(&["--project-directory", d, "ps", "-a"]);
    assert!(
        ps.contains("shop-tests-1") && ps.contains("shop-db-1"),
        "{ps}"
    );
    assert!(!run(&["nope"]).status.success());

    // On a terminal: the container's own pty, our terminal's size, its code.
    let (out, code) = on_a_terminal(
        &e,
        &[
            "--project-directory",
            d,
            "run",
            "--rm",
            "tests",
            "sh",
            "-c",
            "busybox tty; busybox stty size; exit 4",
        ],
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("/dev/pts/0\r\n33 101\r\n"), "{out:?}");
    // exec too: the size is the terminal's from the command's start.
    let (out, code) = on_a_terminal(
        &e,
        &[
            "--project-directory",
            d,
            "exec",
            "db",
            "busybox",
            "stty",
            "size",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "33 101\r\n");

    // Detached: its id printed; `ps` shows it with -a only, `exec` takes
    // the service's replica, not it; `down` leaves it unless
    // --remove-orphans.
    let o = run(&["-d", "--name", "bg", "tests", "sleep", "100"]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{o:?}"
    );
    let ps = e.out(&["--project-directory", d, "ps"]);
    assert!(!ps.contains("bg"), "{ps}");
    assert!(e
        .out(&["--project-directory", d, "ps", "-a"])
        .contains("bg"));
    // -d --rm: removed by the engine once it has exited (which it does
    // once told to, by `/go`).
    let o = run(&[
        "-d",
        "--rm",
        "--name",
        "brief",
        "tests",
        "sh",
        "-c",
        "until [ -e /go ]; do sleep 0.05; done",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(e.out(&["container", "ls"]).contains("brief"));
    e.out(&["container", "exec", "brief", "sh", "-c", "echo > /go"]);
    common::wait_for("brief removed once it exited", || {
        !e.out(&["container", "ls", "-a"]).contains("brief")
    });
    // The service's own replica has exited: nothing to exec into.
    let (out, ok) = sh(&e, d, "tests", "echo reached");
    assert!(!ok, "exec reached the one-off: {out}");
    e.out(&["container", "rm", "once"]);
    assert!(!e
        .stack(&["--project-directory", d, "down"])
        .status
        .success());
    assert!(e.out(&["container", "ls"]).contains("bg"));
    e.out(&["--project-directory", d, "down", "--remove-orphans"]);
    assert!(!e.out(&["container", "ls", "-a"]).contains("bg"));
}

/// Runs `stack ARGS` on a terminal of 33 rows and 101 columns of its own:
/// what it printed there, and its exit code.
fn on_a_terminal(e: &Env, args: &[&str]) -> (String, Option<i32>) {
    use std::io::Read as _;
    let size = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = e
        .command(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut master = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = master.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let code = child.wait().unwrap().code();
    // Everything, up to the end of the terminal's output: the reader ends
    // once no one holds the terminal any more (the command has ended).
    let mut out = Vec::new();
    loop {
        match rx.recv_timeout(common::PATIENCE) {
            Ok(chunk) => out.extend(chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "{args:?}: the terminal still open after its command ended: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), code)
}

/// Volumes of every kind a compose file has: a named volume whose local
/// driver binds a host directory, a tmpfs volume with a size, an anonymous
/// volume, `volumes_from` (read-only), and `create_host_path: false`.
#[test]
fn volume_kinds_and_volumes_from() {
    let (e, dir) = env_with(
        "volumes",
        r#"services:
  db:
    image: local/busybox:1
    command: sh -c "echo stored > /data/file; sleep 600"
    network_mode: none
    volumes:
      - data:/data
      - scratch:/scratch
      - /anon
  reader:
    image: local/busybox:1
    command: sleep 600
    network_mode: none
    volumes_from: ["db:ro"]
    depends_on: [db]
volumes:
  data:
    driver_opts: {type: none, o: bind, device: ./device}
  scratch:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: size=2m}
"#,
    );
    let device = dir.join("device");
    std::fs::create_dir_all(&device).unwrap();
    // `./device` stays relative in driver_opts (compose does not resolve
    // it either): the test names it absolutely.
    let text = std::fs::read_to_string(dir.join("compose.yaml"))
        .unwrap()
        .replace("./device", device.to_str().unwrap());
    std::fs::write(dir.join("compose.yaml"), text).unwrap();
    let d = dir.to_str().unwrap();
    e.out(&["--project-directory", d, "up", "-d"]);
    let sh = |service: &str, script: &str| sh(&e, d, service, script);
    common::wait_for("db writing its file to the device", || {
        device.join("file").exists()
    });
    assert_eq!(
        std::fs::read_to_string(device.join("file")).unwrap(),
        "stored\n"
    );
    let (mounts, _) = sh("db", "cat /proc/mounts");
    let line = |target: &str| {
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(target))
            .unwrap_or_else(|| panic!("{target} not mounted:\n{mounts}"))
            .to_string()
    };
    assert!(line("/scratch").starts_with("tmpfs "), "{mounts}");
    assert!(line("/scratch").contains("size=2048k"), "{mounts}");
    line("/anon");
    // volumes_from: the same data at the same place, read-only as asked.
    assert_eq!(sh("reader", "cat /data/file"), ("stored\n".into(), true));
    assert!(!sh("reader", "echo x > /data/other").1);
    assert!(
        !sh("reader", "grep -q ' /scratch ' /proc/mounts").1,
        "tmpfs is not shared"
    );
    e.out(&["--project-directory", d, "down", "-v"]);
    // The device is the user's: down -v leaves it.
    assert!(device.join("file").exists());

    // A bind source that must exist and does not.
    std::fs::write(
        dir.join("compose.yaml"),
        r#"services:
  app:
    image: local/busybox:1
    network_mode: none
    volumes:
      - type: bind
        source: ./missing
        target: /m
        bind: {create_host_path: false}
"#,
    )
    .unwrap();
    let err = e.fails(&["--project-directory", d, "up", "-d"]);
    assert!(
        err.contains("bind source")
            && err.contains("missing")
            && err.contains("create_host_path: false"),
        "{err}"
    );
    assert!(!dir.join("missing").exists());
    assert_eq!(e.out(&["--project-directory", d, "ps", "-a", "-q"]), "");
}

#[test]
fn cp_both_ways() {
    let (e, dir) = env_with(
        "cp",
        r#"services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "busybox mkdir -p /srv/data /tmp; echo inside > /srv/data/a.txt; busybox ln -s /tmp /link; exec sleep 1000"]
    scale: 2
"#,
    );
    let d = dir.display().to_string();
    let stack = |args: &[&str]| {
        let mut v = vec!["--project-directory", d.as_str()];
        v.extend_from_slice(args);
        e.out(&v)
    };
    stack(&["up", "-d"]);
    let host = e.dir.join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("one.txt"), "one\n").unwrap();
    std::fs::write(host.join("tree/sub/deep.txt"), "deep\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();
    let cat = |c: &str, p: &str| e.out(&["container", "exec", c, "cat", p]);
    // The replicas have made their directories.
    for c in ["shop-web-1", "shop-web-2"] {
        common::wait_for(&format!("{c} making /srv/data/a.txt"), || {
            e.stack(&["container", "exec", c, "cat", "/srv/data/a.txt"])
                .status
                .success()
        });
    }

    // Host -> container: into an existing directory, to a new name, a tree,
    // and with --all to every replica.
    stack(&["cp", &h("one.txt"), "web:/srv/data"]);
    assert_eq!(cat("shop-web-1", "/srv/data/one.txt"), "one\n");
    stack(&["cp", &h("one.txt"), "web:/srv/renamed.txt"]);
    assert_eq!(cat("shop-web-1", "/srv/renamed.txt"), "one\n");
    stack(&["cp", &h("tree"), "web:/srv/tree"]);
    assert_eq!(cat("shop-web-1", "/srv/tree/sub/deep.txt"), "deep\n");
    // (A one-off container of the service is no replica.)
    stack(&["run", "-d", "--name", "side", "web"]);
    stack(&["cp", "--all", &h("one.txt"), "web:/srv/all.txt"]);
    assert_eq!(cat("shop-web-2", "/srv/all.txt"), "one\n");
    let fails =
        |c: &str, p: &str| e.stack(&["container", "exec", c, "cat", p]).status.code() != Some(0);
    assert!(fails("shop-web-2", "/srv/renamed.txt"));
    assert!(fails("side", "/srv/all.txt"));
    e.out(&["container", "rm", "-f", "side"]);

    // Container -> host: a file into a directory, a directory, --index.
    let out = e.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    stack(&["cp", "web:/srv/data/a.txt", &out.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "inside\n"
    );
    stack(&[
        "cp",
        "--index",
        "2",
        "web:/srv/data",
        &out.join("copy").display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("copy/a.txt")).unwrap(),
        "inside\n"
    );
    // A symlink in the host's destination (left by an earlier copy, or
    // planted) is never followed: `data` pointing at a directory outside
    // is replaced by the copy, nothing lands where it pointed.
    let victim = unique_tmp("cp-victim");
    std::fs::create_dir(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("data")).unwrap();
    stack(&["cp", "web:/srv/data", &out.display().to_string()]);
    assert!(!victim.join("a.txt").exists());
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    assert!(!std::fs::symlink_metadata(out.join("data"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(out.join("data/a.txt")).unwrap(),
        "inside\n"
    );
    // And one deeper, under the directory named, with `SRC/.`.
    std::fs::create_dir_all(out.join("deep/x")).unwrap();
    std::fs::remove_dir(out.join("deep/x")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("deep/x")).unwrap();
    let (_, ok) = sh(
        &e,
        &d,
        "web",
        "busybox mkdir -p /srv/deep/x && echo deep > /srv/deep/x/b.txt",
    );
    assert!(ok);
    stack(&[
        "cp",
        "web:/srv/deep/.",
        &out.join("deep").display().to_string(),
    ]);
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_to_string(out.join("deep/x/b.txt")).unwrap(),
        "deep\n"
    );
    std::fs::remove_dir(&victim).unwrap();
    // container cp, through a symlink the container holds: it stays inside
    // (a name of this run's own: nothing of that name is on the host).
    let mine = unique_tmp("one");
    let name = mine.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::copy(host.join("one.txt"), host.join(&name)).unwrap();
    e.out(&["container", "cp", &h(&name), "shop-web-1:/link/"]);
    assert_eq!(cat("shop-web-1", &format!("/tmp/{name}")), "one\n");
    assert!(
        std::fs::symlink_metadata(&mine).is_err(),
        "{}",
        mine.display()
    );

    // Bad input: names what is wrong, changes nothing.
    let err = e.fails(&["--project-directory", &d, "cp", "nope:/x", &h("x")]);
    assert!(err.contains("no such service: `nope`"), "{err}");
    let err = e.fails(&["--project-directory", &d, "cp", "web:/missing", &h("x")]);
    assert!(err.contains("/missing: no such file or directory"), "{err}");
    let err = e.fails(&["--project-directory", &d, "cp", "web:/missing", &h("new/x")]);
    assert!(err.contains("/missing: no such file or directory"), "{err}");
    assert!(!host.join("new").exists());
    let err = e.fails(&[
        "--project-directory",
        &d,
        "cp",
        &h("one.txt"),
        &h("two.txt"),
    ]);
    assert!(err.contains("CONTAINER:PATH"), "{err}");
    assert!(!host.join("x").exists() && !host.join("two.txt").exists());
    stack(&["down"]);
}

/// A path under /tmp that no earlier run can have left: this process's
/// id and the time.
fn unique_tmp(what: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::path::PathBuf::from(format!("/tmp/stack-{what}-{}-{nanos}", std::process::id()))
}

/// `create` (and `up --no-start`) makes the containers and starts none,
/// not even across an engine restart, whatever their restart policy;
/// `start` starts them in place. `up -t` bounds the stop of what it
/// replaces. `down --rmi` takes the images, not one a container still uses.
#[test]
fn create_start_timeout_and_down_rmi() {
    let (e, dir) = env_with(
        "create",
        r#"services:
  web:
    image: local/busybox:1
    command: httpd -f -p 80 -h /
    restart: always
    depends_on: [stubborn]
  stubborn:
    image: local/busybox:1
    init: false
    stop_grace_period: 1h
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
"#,
    );
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| e.stack(&common::in_project(d, args));
    let out = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let o = run(&["create"]);
    assert!(o.status.success(), "{o:?}");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Container shop-web-1  Created"), "{said}");
    let states = || {
        let mut v: Vec<(String, String)> = out(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| {
                let c: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    c["Name"].as_str().unwrap().to_string(),
                    c["State"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let created = [
        ("shop-stubborn-1".to_string(), "created".to_string()),
        ("shop-web-1".to_string(), "created".to_string()),
    ];
    assert_eq!(states(), created);
    assert_eq!(out(&["ps", "-q"]), "");
    assert!(e.out(&["ls", "--all"]).contains("created(2)"));
    // Nothing to do the second time; an engine restart starts nothing.
    let o = run(&["up", "--no-start"]);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("Container"),
        "{o:?}"
    );
    let boots = || e.engine_log().matches("boot done").count();
    let before = boots();
    e.stop_engine();
    assert_eq!(states(), created);
    // That started an engine: once its boot is done, still nothing runs.
    common::wait_for("the new engine logging `boot done`", || boots() > before);
    assert_eq!(states(), created);
    // start: the same containers, running.
    let id = out(&["ps", "-a", "-q", "web"]);
    out(&["start"]);
    assert_eq!(
        states().iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["running", "running"]
    );
    assert_eq!(out(&["ps", "-q", "web"]), id);

    // A changed file recreates the stubborn service, which ignores SIGTERM
    // and whose grace period is an hour: `-t 1` waits one second for it,
    // and `up` ends (the hour would outlast the wait's guard by far).
    let grace = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&e.out(&["container", "inspect", name])).unwrap();
        v["spec"]["stop_timeout"].clone()
    };
    assert_eq!(grace("shop-stubborn-1"), 3600);
    let yaml = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        yaml.replace("init: false", "init: false\n    environment: [V=2]")
            .replace("    stop_grace_period: 1h\n", ""),
    )
    .unwrap();
    let up = common::Background::spawn(
        e.command(&common::in_project(d, &["up", "-d", "-t", "1", "stubborn"])),
    );
    let o = up.wait("`up -t 1` ending: the stop waited for the hour, not for -t");
    assert!(o.status.success(), "{o:?}");

    // down --rmi all: a container of no project still uses the image, so
    // it stays (a warning); once that one is gone, it goes.
    let other = e.out(&[
        "container",
        "create",
        "--name",
        "other",
        "local/busybox:1",
        "true",
    ]);
    assert_eq!(other.trim().len(), 64, "{other}");
    assert!(e.out(&["container", "ls", "-a"]).contains("Created"));
    let o = run(&["down", "--rmi", "all"]);
    assert!(o.status.success(), "{o:?}");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("image local/busybox:1") && said.contains("use"),
        "{said}"
    );
    assert!(!e.out(&["image", "ls", "-q"]).trim().is_empty());
    e.out(&["container", "rm", "other"]);
    let o = run(&["down", "--rmi", "all"]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Image local/busybox:1  Removed"), "{o:?}");
    assert_eq!(e.out(&["image", "ls", "-q"]), "");
    assert!(run(&["up", "--build"]).status.code() != Some(0));
}

/// `stats`: a spinning service uses CPU, a web server that answered has
/// received bytes; JSON rows as `docker stats --format json` has them.
#[test]
fn stats_of_the_stack() {
    let (e, dir) = env_with(
        "stats",
        r#"services:
  spin:
    image: local/busybox:1
    command: ["sh", "-c", "while :; do :; done"]
  web:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
    mem_limit: 32m
"#,
    );
    let d = dir.to_str().unwrap();
    let out = |args: &[&str]| e.out(&common::in_project(d, args));
    // The progress block, as on a terminal: redrawn in place, all done at the end.
    let o = e.stack(&common::in_project(d, &["--progress", "tty", "up", "-d"]));
    assert!(o.status.success(), "{o:?}");
    let block = String::from_utf8_lossy(&o.stderr);
    let last = &block[block.rfind("[+] Running").expect("a progress block")..];
    assert!(block.contains("\x1b[2K"), "{block:?}");
    assert!(last.starts_with("[+] Running 3/3\n"), "{last:?}");
    assert!(last.contains("Container shop-web-1   Started"), "{last:?}");
    assert_eq!(
        sh(&e, d, "spin", "wget -q -O- http://web/").0,
        "hello from web\n"
    );
    let rows: Vec<serde_json::Value> = out(&["stats", "--no-stream", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["Name"] == name)
            .unwrap_or_else(|| panic!("{name}: {rows:?}"))
    };
    let percent = |v: &serde_json::Value| -> f64 {
        v.as_str().unwrap().trim_end_matches('%').parse().unwrap()
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(percent(&row("shop-spin-1")["CPUPerc"]) > 20.0, "{rows:?}");
    assert!(percent(&row("shop-web-1")["CPUPerc"]) < 20.0, "{rows:?}");
    let web = row("shop-web-1");
    assert!(
        web["MemUsage"].as_str().unwrap().ends_with(" / 32MiB"),
        "{web}"
    );
    let received = web["NetIO"]
        .as_str()
        .unwrap()
        .split(" / ")
        .next()
        .unwrap()
        .to_string();
    assert!(received != "0B", "{web}");
    assert!(
        web["PIDs"].as_str().unwrap().parse::<u32>().unwrap() >= 1,
        "{web}"
    );
    assert_eq!(web["ID"].as_str().unwrap().len(), 12);
    // The table, one service.
    let table = out(&["stats", "--no-stream", "web"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("NET I/O"),
        "{table}"
    );
    assert!(lines[1].contains("shop-web-1"), "{table}");
    out(&["down", "-t", "0"]);
}

/// The CLI is a client of the engine: with the daemon's socket opened to a
/// group (`stack daemon --group`), a user of that group who is not root
/// runs `ps`, `exec` (input, output, exit code), `top`, `stats` and `cp`
/// both ways on a stack root started.
#[test]
fn a_group_member_who_is_not_root_works_through_the_engine() {
    use std::os::unix::process::CommandExt as _;
    let (e, dir) = env_with(
        "nonroot",
        r#"services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "echo inside > /srv.txt; exec sleep 1000"]
"#,
    );
    let d = dir.display().to_string();
    e.out(&["--project-directory", &d, "up", "-d"]);
    // The same engine, its socket opened to the group of gid 65534.
    let nobody = 65534;
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(nobody))
        .unwrap()
        .expect("a group with gid 65534 (nogroup)")
        .name;
    e.stop_engine();
    let mut daemon = e
        .command(&["daemon", "--group", &group])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = e.root().join("engine.sock");
    common::wait_for("the engine answering on its socket", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let shared = e.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let as_nobody = |args: &[&str], input: &str| {
        let mut full = vec!["--project-directory", d.as_str()];
        full.extend_from_slice(args);
        let mut c = e.command(&full);
        c.uid(nobody).gid(nobody).current_dir(&shared);
        common::with_input(&mut c, input)
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();

    let ps = as_nobody(&["ps", "--format", "json"], "");
    assert!(ps.status.success(), "{ps:?}");
    assert!(text(&ps).contains("shop-web-1"), "{ps:?}");
    let exec = as_nobody(
        &[
            "exec",
            "-T",
            "web",
            "sh",
            "-c",
            "id -u; cat; echo oops >&2; exit 7",
        ],
        "from the client\n",
    );
    assert_eq!(exec.status.code(), Some(7), "{exec:?}");
    // Run as the container's user (root inside), fed the client's input.
    assert_eq!(text(&exec), "0\nfrom the client\n");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "oops\n");
    let top = as_nobody(&["top"], "");
    assert!(top.status.success(), "{top:?}");
    assert!(text(&top).contains("sleep 1000"), "{top:?}");
    let images = as_nobody(&["images"], "");
    let row = text(&images);
    let row: Vec<&str> = row
        .lines()
        .find(|l| l.starts_with("shop-web-1"))
        .unwrap_or_else(|| panic!("{images:?}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["shop-web-1", "local/busybox", "1"], "{row:?}");
    assert!(
        row[3].len() == 12 && row[3].chars().all(|c| c.is_ascii_hexdigit()),
        "{row:?}"
    );
    let stats = as_nobody(&["stats", "--no-stream", "--format", "json"], "");
    assert!(stats.status.success(), "{stats:?}");
    assert!(
        text(&stats).contains("\"Name\":\"shop-web-1\""),
        "{stats:?}"
    );
    let out = as_nobody(&["cp", "web:/srv.txt", "copied.txt"], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(shared.join("copied.txt")).unwrap(),
        "inside\n"
    );
    std::fs::write(shared.join("back.txt"), "back\n").unwrap();
    let into = as_nobody(&["cp", "back.txt", "web:/back.txt"], "");
    assert!(into.status.success(), "{into:?}");
    let cat = as_nobody(&["exec", "-T", "web", "cat", "/back.txt"], "");
    assert_eq!(text(&cat), "back\n");
    // A one-off container, made and removed by the engine.
    let run = as_nobody(
        &[
            "run",
            "--rm",
            "-T",
            "web",
            "sh",
            "-c",
            "cat; echo oops >&2; exit 5",
        ],
        "to the one-off\n",
    );
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert_eq!(text(&run), "to the one-off\n");
    assert_eq!(String::from_utf8_lossy(&run.stderr), "oops\n");
    let bg = as_nobody(&["run", "-d", "--name", "bg", "web", "sleep", "100"], "");
    assert!(bg.status.success(), "{bg:?}");
    let port = as_nobody(&["port", "web", "80"], "");
    assert!(
        String::from_utf8_lossy(&port.stderr)
            .contains("no public port `80/tcp` published for `shop-web-1`"),
        "{port:?}"
    );

    // Not in the group: no way in, and a clear word why.
    let mut c = e.command(&["--project-directory", &d, "ps"]);
    c.uid(nobody).gid(12345).current_dir(&shared);
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("permission denied (it lets in root, and the members of the group"),
        "{o:?}"
    );
    e.out(&["--project-directory", &d, "down", "--remove-orphans"]);
    assert_eq!(e.out(&["container", "ls", "-a", "-q"]), "");
    e.stop_engine();
    let _ = daemon.wait();
}
