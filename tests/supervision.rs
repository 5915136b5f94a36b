//! Supervision on real containers, as root: health checks gating
//! dependents, one-shots, `up --wait`, probes the engine runs itself
//! (an image with nothing but httpd), restart policies, the engine killed
//! and started again, scaling with DNS, and events.

mod common;

use common::Env;
use serde_json::Value;

fn env_with(name: &str, compose: &str) -> (Env, String) {
    common::project_env("supervision", name, compose)
}

use common::in_project as stack;

/// `ps -a --format json`, one object per container.
fn ps(e: &Env, d: &str) -> Vec<Value> {
    e.out(&stack(d, &["ps", "-a", "--format", "json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row(rows: &[Value], name: &str) -> Value {
    rows.iter()
        .find(|r| r["Name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
        .clone()
}

/// The runtime's record of a container (`container inspect`).
fn inspect(e: &Env, name: &str) -> Value {
    serde_json::from_str(&e.out(&["container", "inspect", name])).unwrap()
}

/// RFC 3339 UTC with nanoseconds sorts as text.
fn time(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ` (so that a
/// gap between two times is right whatever minute or day they fall in).
fn seconds(t: &str) -> f64 {
    let n = |r: std::ops::Range<usize>| -> i64 { t[r].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs: f64 = t[17..t.len() - 1].parse().unwrap();
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60) as f64 + secs
}

const GATED: &str = r#"
services:
  db:
    image: local/busybox:1
    command: ["sh", "-c", "sleep 2; touch /ready; exec httpd -f -p 5432 -h /www"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /ready && echo ready"]
      interval: 300ms
      start_period: 20s
      start_interval: 200ms
  migrate:
    image: local/busybox:1
    command: ["sh", "-c", "sleep 1; echo migrated"]
    depends_on:
      db: {condition: service_healthy}
  api:
    image: local/nothing-but-httpd
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    x-stack-probe:
      http: {port: 80, path: /index.html}
      interval: 300ms
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  cache:
    image: local/nothing-but-httpd
    command: ["httpd", "-f", "-p", "6379", "-h", "/www"]
    x-stack-probe:
      tcp: {port: 6379}
      interval: 300ms
"#;

/// An image with busybox as `httpd` and nothing else: no shell, no wget.
fn httpd_only_image(e: &Env) {
    let rootfs = e.dir.join("httpd-rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("www")).unwrap();
    std::fs::copy(common::busybox(), rootfs.join("bin/httpd")).unwrap();
    std::fs::write(rootfs.join("www/index.html"), "ok\n").unwrap();
    common::import_rootfs(e, &rootfs, "local/nothing-but-httpd");
}

#[test]
fn health_gates_dependents_one_shots_complete_and_wait_accepts_them() {
    let (e, d) = env_with("gated", GATED);
    httpd_only_image(&e);
    // Events from before `up` on: cache (which nothing depends on) runs
    // first, and is sent a signal its httpd ignores (SIGWINCH) until
    // `events` shows the kill, so the subscription is known to be made
    // before the rest comes up. (Pausing it instead could fail its health
    // probes, and `up --wait` with them.)
    e.out(&stack(&d, &["up", "-d", "cache"]));
    let events = common::Background::spawn(e.command(&stack(&d, &["events", "--json"])));
    common::wait_for("`events` showing cache signalled", || {
        e.out(&stack(&d, &["kill", "-s", "WINCH", "cache"]));
        // (The last line may still be on its way.)
        events.stdout().lines().any(|l| {
            let Ok(v) = serde_json::from_str::<Value>(l) else {
                return false;
            };
            v["attributes"]["name"] == "app-cache-1" && v["action"] == "kill"
        })
    });

    let o = e.stack(&stack(&d, &["up", "--wait", "--wait-timeout", "60"]));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Container app-migrate-1  Waiting for db"),
        "{err}"
    );
    assert!(err.contains("Container app-db-1  Healthy"), "{err}");
    assert!(err.contains("Container app-migrate-1  Exited"), "{err}");

    let rows = ps(&e, &d);
    let db = row(&rows, "app-db-1");
    assert_eq!(db["Health"], "healthy");
    assert!(
        db["Status"].as_str().unwrap().ends_with("(healthy)"),
        "{db}"
    );
    // Probes the engine ran itself into an image with no shell at all.
    assert_eq!(row(&rows, "app-api-1")["Health"], "healthy");
    assert_eq!(row(&rows, "app-cache-1")["Health"], "healthy");
    assert_eq!(row(&rows, "app-migrate-1")["State"], "exited");
    assert_eq!(row(&rows, "app-migrate-1")["ExitCode"], 0);

    // db became healthy no sooner than 2 s after it started; migrate
    // started after that, api after migrate had finished.
    let db = inspect(&e, "app-db-1");
    let migrate = inspect(&e, "app-migrate-1");
    let api = inspect(&e, "app-api-1");
    // inspect shows the health with the probes' last outputs.
    assert_eq!(db["health"]["status"], "healthy", "{db}");
    assert!(
        db["health"]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("ready")),
        "{db}"
    );
    assert!(migrate.get("health").is_none(), "{migrate}");
    assert!(time(&migrate, "started_at") > time(&db, "started_at"));
    assert!(time(&api, "started_at") >= time(&migrate, "finished_at"));
    let db_start = time(&db, "started_at");
    let migrate_start = time(&migrate, "started_at");
    let gap = seconds(&migrate_start) - seconds(&db_start);
    assert!(gap >= 2.0, "migrate started {gap}s after db");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(events.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = events.wait("`events` ending on SIGTERM");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |action: &str, name: &str| {
        lines
            .iter()
            .any(|l| l["action"] == action && l["attributes"]["name"] == name)
    };
    assert!(has("create", "app-db-1"), "{lines:?}");
    assert!(has("start", "app-api-1"), "{lines:?}");
    assert!(has("health_status: healthy", "app-db-1"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l["action"] == "die"
            && l["attributes"]["name"] == "app-migrate-1"
            && l["attributes"]["exitCode"] == "0"),
        "{lines:?}"
    );

    e.out(&stack(&d, &["down"]));
    assert!(ps(&e, &d).is_empty());
}

#[test]
fn a_crash_loop_is_restarted_three_times_then_left() {
    let (e, d) = env_with(
        "crash",
        r#"
services:
  crash:
    image: local/busybox:1
    command: ["sh", "-c", "echo boom; exit 3"]
    restart: on-failure:3
  steady:
    image: local/busybox:1
    command: ["sh", "-c", "while true; do sleep 1; done"]
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    common::wait_for("three restarts of app-crash-1, then exited", || {
        let c = row(&ps(&e, &d), "app-crash-1");
        c["RestartCount"] == 3 && c["State"] == "exited"
    });
    // The engine says when it stops watching it: no restart can follow.
    common::wait_for("the engine logging that the policy gave up", || {
        e.engine_log()
            .lines()
            .any(|l| l.contains("its restart policy gave up") && l.contains("app-crash-1"))
    });
    let c = row(&ps(&e, &d), "app-crash-1");
    assert_eq!(
        (c["RestartCount"].clone(), c["ExitCode"].clone()),
        (3.into(), 3.into())
    );
    let logs = e.out(&stack(&d, &["logs", "crash"]));
    assert_eq!(logs.matches("boom").count(), 4, "{logs}");
    // The engine kept serving, and the rest of the stack ran on.
    assert_eq!(row(&ps(&e, &d), "app-steady-1")["State"], "running");
    e.out(&stack(&d, &["down"]));
}

#[test]
fn a_restarted_engine_starts_what_died_in_dependency_order() {
    let (e, d) = env_with(
        "boot",
        r#"
services:
  db:
    image: local/busybox:1
    command: ["sh", "-c", "rm -f /ready; sleep 1; touch /ready; exec httpd -f -p 5432 -h /www"]
    restart: always
    healthcheck:
      test: ["CMD-SHELL", "test -f /ready"]
      interval: 200ms
      start_period: 20s
      start_interval: 200ms
  api:
    image: local/busybox:1
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    restart: always
    depends_on:
      db: {condition: service_healthy}
  manual:
    image: local/busybox:1
    command: ["httpd", "-f", "-p", "81", "-h", "/www"]
    restart: always
"#,
    );
    e.out(&stack(&d, &["up", "--wait", "--wait-timeout", "60"]));
    e.out(&stack(&d, &["stop", "manual"]));
    // The engine dies; then so do the containers (as on a reboot).
    e.signal_engine(nix::sys::signal::Signal::SIGKILL);
    for name in ["app-db-1", "app-api-1"] {
        let pid = inspect(&e, name)["pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    common::wait_for("app-db-1 and app-api-1 both dead", || {
        ["app-db-1", "app-api-1"]
            .iter()
            .all(|n| inspect(&e, n)["running"] == false)
    });
    let died = time(&inspect(&e, "app-api-1"), "finished_at");

    // Any command starts an engine; it brings them back, db first.
    common::wait_for("db healthy and api running again", || {
        let rows = ps(&e, &d);
        row(&rows, "app-db-1")["Health"] == "healthy"
            && row(&rows, "app-api-1")["State"] == "running"
    });
    let db = inspect(&e, "app-db-1");
    let api = inspect(&e, "app-api-1");
    assert!(time(&db, "started_at") > died);
    let gap = seconds(&time(&api, "started_at")) - seconds(&time(&db, "started_at"));
    assert!(
        gap >= 1.0,
        "api started {gap}s after db, before db could be healthy"
    );
    // What a user stopped stays stopped.
    assert_eq!(row(&ps(&e, &d), "app-manual-1")["State"], "exited");
    e.out(&stack(&d, &["down"]));
}

/// `count` consecutive ports on 127.0.0.1 that nobody listens on.
#[test]
fn dependents_that_ask_for_it_follow_their_dependency_restarts() {
    let (e, d) = env_with(
        "follow",
        r#"
services:
  db:
    image: local/busybox:1
    command: ["httpd", "-f", "-p", "5432", "-h", "/www"]
    restart: always
  api:
    image: local/busybox:1
    command: ["sh", "-c", "echo started >> /started.log; exec httpd -f -p 80 -h /www"]
    depends_on:
      db: {condition: service_started, restart: true}
  web:
    image: local/busybox:1
    command: ["sh", "-c", "echo started >> /started.log; exec httpd -f -p 80 -h /www"]
    depends_on: [db]
"#,
    );
    e.out(&stack(&d, &["up", "-d"]));
    // (0 while it is between its stop and its start.)
    let starts = |name: &str| {
        let o = e.stack(&["container", "exec", name, "cat", "/started.log"]);
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    // `restart db`: api follows, web does not.
    e.out(&stack(&d, &["restart", "db"]));
    common::wait_for("api restarted with db", || starts("app-api-1") == 2);
    // db dies and its policy restarts it: api follows again.
    let pid = inspect(&e, "app-db-1")["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    common::wait_for("api restarted after db's crash", || {
        starts("app-api-1") == 3
    });
    assert_eq!(starts("app-web-1"), 1);
    e.out(&stack(&d, &["down"]));
}

fn free_range(count: u16) -> u16 {
    'next: for _ in 0..50 {
        let first = common::free_port();
        if first > 65000 {
            continue;
        }
        for p in first..first + count {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'next;
            }
        }
        return first;
    }
    panic!("no free port range");
}

#[test]
fn scale_up_and_down_keeps_the_lowest_replicas_and_dns_follows() {
    let first = free_range(5);
    let (e, d) = env_with(
        "scale",
        &format!(
            r#"
services:
  web:
    image: local/busybox:1
    command: httpd -f -p 80 -h /www
    ports: ["127.0.0.1:{first}-{}:80"]
  client:
    image: local/busybox:1
    command: ["sh", "-c", "while true; do sleep 1; done"]
"#,
            first + 4
        ),
    );
    e.out(&stack(&d, &["up", "-d"]));
    let addresses = |e: &Env| -> usize {
        let o = e.stack(&stack(&d, &["exec", "-T", "client", "nslookup", "web"]));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip_while(|l| !l.starts_with("Name:"))
            .filter(|l| l.starts_with("Address"))
            .count()
    };
    assert_eq!(addresses(&e), 1);

    e.out(&stack(&d, &["scale", "web=5"]));
    let names: Vec<String> = ps(&e, &d)
        .iter()
        .filter(|r| r["Service"] == "web")
        .map(|r| r["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        (1..=5).map(|i| format!("app-web-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(addresses(&e), 5);
    // Replicas take the range's ports in turn.
    let port3 = e.out(&stack(&d, &["port", "--index", "3", "web", "80"]));
    assert_eq!(port3.trim(), format!("127.0.0.1:{}", first + 2));
    // (Asked until the fifth replica's server answers: it may still be
    // starting to listen.)
    let answer = common::wait_for_value("the fifth replica answering on its port", || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", first + 4)).ok()?;
        std::io::Write::write_all(&mut s, b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).ok()?;
        (!answer.is_empty()).then_some(answer)
    });
    assert!(answer.contains("hello from web"), "{answer}");

    let web1 = inspect(&e, "app-web-1")["id"].clone();
    e.out(&stack(&d, &["scale", "web=2"]));
    let names: Vec<String> = ps(&e, &d)
        .iter()
        .filter(|r| r["Service"] == "web")
        .map(|r| r["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app-web-1", "app-web-2"]);
    assert_eq!(inspect(&e, "app-web-1")["id"], web1, "kept, not recreated");
    assert_eq!(addresses(&e), 2);
    e.out(&stack(&d, &["down"]));
    // container_name and replicas do not go together.
    std::fs::write(
        format!("{d}/compose.yaml"),
        "services:\n  one:\n    image: local/busybox:1\n    container_name: only\n    scale: 2\n",
    )
    .unwrap();
    let err = e.fails(&stack(&d, &["up", "-d"]));
    assert!(
        err.contains("sets `container_name` and more than one replica"),
        "{err}"
    );
    let left = std::fs::read_dir(e.root().join("containers")).map_or(0, |d| d.count());
    assert_eq!(left, 0);
}

/// The engine's containers get monitors forked by its spawner (one exec
/// for them all), each with the start an exec'd one has; the spawner ends
/// with the engine, and the containers run on.
#[test]
fn monitors_are_forked_by_the_engines_spawner_which_ends_with_it() {
    let (e, d) = env_with(
        "spawner",
        "services:\n  web:\n    image: local/busybox:1\n    command: [sh, -c, 'readlink /proc/self/fd/0 > /stdin; exec httpd -f -p 80 -h /www']\n    deploy: {replicas: 2}\n",
    );
    e.out(&stack(&d, &["up", "-d"]));
    let status = |pid: i64, key: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| Some(l.strip_prefix(key)?.trim().to_string()))
            .unwrap_or_default()
    };
    let monitors: Vec<i64> = ["app-web-1", "app-web-2"]
        .iter()
        .map(|n| inspect(&e, n)["monitor_pid"].as_i64().unwrap())
        .collect();
    let spawner: i64 = status(monitors[0], "PPid:").parse().unwrap();
    assert_eq!(status(spawner, "Name:"), "stack-spawner");
    assert_eq!(status(monitors[1], "PPid:"), spawner.to_string());
    assert_eq!(
        status(spawner, "PPid:"),
        e.engine_pid().unwrap().to_string()
    );
    for m in &monitors {
        assert_eq!(status(*m, "Name:"), "stack-init");
        // Nothing blocked or caught that an exec'd monitor would not have.
        assert_eq!(status(*m, "SigBlk:"), "0000000000000000", "monitor {m}");
        let pgid = std::fs::read_to_string(format!("/proc/{m}/stat")).unwrap();
        assert_eq!(
            pgid.split_whitespace().nth(4).unwrap(),
            m.to_string(),
            "its own group"
        );
    }
    // The app's standard input: /dev/null, as an exec'd monitor gives it.
    let stdin = e.out(&["container", "exec", "app-web-1", "cat", "/stdin"]);
    assert_eq!(stdin, "/dev/null\n");
    e.signal_engine(nix::sys::signal::Signal::SIGKILL);
    common::wait_for("the spawner ended with the engine", || {
        !std::path::Path::new(&format!("/proc/{spawner}")).exists()
            || status(spawner, "State:").starts_with('Z')
    });
    for m in &monitors {
        assert!(std::path::Path::new(&format!("/proc/{m}")).exists());
        assert!(!status(*m, "State:").starts_with('Z'), "monitor {m}");
    }
    assert_eq!(e.out(&stack(&d, &["ps", "-q"])).lines().count(), 2);
    e.out(&stack(&d, &["down"]));
}
