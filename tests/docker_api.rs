//! The Docker Engine API on `$STACK_ROOT/docker.sock`, driven by clients
//! nobody here wrote: the docker CLI (a newer one at /usr/local/bin if
//! there is one, else Debian's), docker-py and testcontainers-python (from
//! PyPI, in the virtual environment `.ci/run` makes: `STACK_TEST_PYTHON`
//! or `target/docker-venv`), and docker-compose 1.29 (Debian's). Plus the
//! protocol itself, raw, for what clients must never see go wrong.

mod common;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{busybox_image, free_port, wait_for, Env};

/// The engine of `e`, started, with the busybox image as `busybox:latest`.
fn docker_env(name: &str) -> Env {
    let mut e = Env::new("docker", name);
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    busybox_image(&e, "busybox:latest");
    e.out(&["ls"]);
    wait_for("the Docker API socket", || socket(&e).exists());
    e
}

fn socket(e: &Env) -> PathBuf {
    e.root().join("docker.sock")
}

/// The docker CLI on this machine.
fn docker_bin() -> &'static str {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a docker CLI is needed: apt-get install docker.io (.ci/run does)")
}

/// A client command pointed at `e`'s socket, with a config of its own.
fn client(e: &Env, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("DOCKER_HOST", format!("unix://{}", socket(e).display()))
        .env("DOCKER_CONFIG", e.dir.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .current_dir(&e.dir);
    c
}

fn docker(e: &Env, args: &[&str]) -> Output {
    client(e, docker_bin()).args(args).output().unwrap()
}

/// The output of a docker command that must succeed.
fn docker_ok(e: &Env, args: &[&str]) -> String {
    let o = docker(e, args);
    assert!(o.status.success(), "docker {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `docker …` under a pseudo-terminal (`script`), `input` typed after a moment.
fn docker_tty(e: &Env, args: &str, input: &str) -> String {
    docker_tty_typed(e, args, &[input])
}

/// The same, each of `parts` typed half a second after the one before.
fn docker_tty_typed(e: &Env, args: &str, parts: &[&str]) -> String {
    let mut c = client(e, "script");
    c.args(["-qec", &format!("{} {args}", docker_bin()), "/dev/null"]);
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    std::thread::spawn(move || {
        for p in parts {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let _ = stdin.write_all(p.as_bytes());
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
    });
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One raw HTTP/1.1 request on the socket: the status, the head and the body.
fn raw(e: &Env, request: &[u8]) -> (u16, String, String) {
    let mut s = std::os::unix::net::UnixStream::connect(socket(e)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn get(e: &Env, path: &str) -> (u16, String, String) {
    raw(
        e,
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post(e: &Env, path: &str, body: &str) -> (u16, String, String) {
    raw(
        e,
        format!(
            "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The engine's containers as `stack container ls -a` lists them.
fn stack_ls(e: &Env) -> String {
    e.out(&["container", "ls", "-a"])
}

#[test]
fn the_docker_cli_runs_and_manages_containers() {
    let e = docker_env("cli");
    let v = docker_ok(&e, &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(v.trim().starts_with("1."), "{v}");
    assert_eq!(
        docker_ok(&e, &["run", "--rm", "busybox", "echo", "hi"]),
        "hi\n"
    );
    let o = docker(
        &e,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // Both streams whole, for runs at once (a half-close racing the
    // output once lost a stream).
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                for _ in 0..3 {
                    let o = docker(
                        &e,
                        &[
                            "run",
                            "--rm",
                            "busybox",
                            "sh",
                            "-c",
                            "echo out; echo err >&2",
                        ],
                    );
                    assert_eq!(
                        (
                            String::from_utf8_lossy(&o.stdout).as_ref(),
                            String::from_utf8_lossy(&o.stderr).as_ref()
                        ),
                        ("out\n", "err\n"),
                        "{o:?}"
                    );
                }
            });
        }
    });
    // `--rm` left nothing.
    assert!(!stack_ls(&e).contains("busybox"), "{}", stack_ls(&e));

    let port = free_port().to_string();
    let id = docker_ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-l",
            "role=web",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    assert_eq!(id.trim().len(), 64, "{id}");
    // Same engine, same containers.
    assert!(stack_ls(&e).contains("web"), "{}", stack_ls(&e));
    let ps = docker_ok(
        &e,
        &[
            "ps",
            "--filter",
            "label=role=web",
            "--format",
            "{{.Names}} {{.Ports}} {{.State}}",
        ],
    );
    assert_eq!(ps.trim(), format!("web 127.0.0.1:{port}->80/tcp running"));
    assert_eq!(
        docker_ok(&e, &["ps", "-q", "--filter", "label=role=none"]),
        ""
    );
    let body = wait_for_http(&format!("127.0.0.1:{port}"));
    assert_eq!(body, "hello from web\n");
    assert_eq!(
        docker_ok(&e, &["exec", "web", "cat", "/www/index.html"]),
        "hello from web\n"
    );
    let o = docker(&e, &["exec", "web", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let f = docker_ok(&e, &["inspect", "-f", "{{.Name}} {{.State.Running}} {{.Config.Labels.role}} {{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}", "web"]);
    assert_eq!(f.trim(), format!("/web true web {port}"));
    let top = docker_ok(&e, &["top", "web"]);
    assert!(top.contains("httpd"), "{top}");
    let stats = docker_ok(
        &e,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}}",
            "web",
        ],
    );
    assert!(stats.starts_with("web "), "{stats}");
    docker_ok(&e, &["pause", "web"]);
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "paused"
    );
    docker_ok(&e, &["unpause", "web"]);
    docker_ok(&e, &["stop", "-t", "1", "web"]);
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "exited"
    );
    docker_ok(&e, &["start", "web"]);
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "running"
    );
    // `docker wait` ends with the container.
    docker_ok(&e, &["kill", "web"]);
    assert_eq!(docker_ok(&e, &["wait", "web"]).trim(), "137");
    docker_ok(&e, &["rm", "web"]);
    assert!(!stack_ls(&e).contains("web"), "{}", stack_ls(&e));

    // Logs: both streams, framed apart; tail and timestamps.
    docker_ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "talk",
            "busybox",
            "sh",
            "-c",
            "echo one; echo two >&2; sleep 0.2; echo three; sleep 100",
        ],
    );
    wait_for("talk's three lines", || {
        docker(&e, &["logs", "talk"]).stdout.ends_with(b"three\n")
    });
    let o = docker(&e, &["logs", "talk"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\nthree\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    assert_eq!(docker_ok(&e, &["logs", "--tail", "1", "talk"]), "three\n");
    let stamped = docker_ok(&e, &["logs", "-t", "--tail", "1", "talk"]);
    assert!(
        stamped.ends_with(" three\n") && stamped.starts_with("20"),
        "{stamped}"
    );
    docker_ok(&e, &["rm", "-f", "talk"]);

    // Events as they happen, filtered.
    let mut c = client(&e, docker_bin());
    c.args([
        "events",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        "--filter",
        "container=ev",
    ]);
    let events = common::Background::spawn(c);
    std::thread::sleep(std::time::Duration::from_millis(300));
    docker_ok(&e, &["run", "--rm", "--name", "ev", "busybox", "echo"]);
    docker_ok(&e, &["run", "--rm", "--name", "other", "busybox", "echo"]);
    wait_for("ev's events", || {
        events.stdout().contains("container destroy ev")
    });
    let seen = events.stdout();
    for want in [
        "container create ev",
        "container start ev",
        "container die ev",
    ] {
        assert!(seen.contains(want), "{want} in {seen}");
    }
    assert!(!seen.contains("other"), "{seen}");
    drop(events);
    // Unfiltered, a quiet stream sends nothing (no keep-alive lines).
    let mut c = client(&e, docker_bin());
    c.args(["events", "--format", "{{.Action}}"]);
    let events = common::Background::spawn(c);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    docker_ok(&e, &["run", "--rm", "busybox", "echo"]);
    wait_for("the destroy event", || events.stdout().contains("destroy"));
    let seen = events.stdout();
    assert!(seen.lines().all(|l| !l.trim().is_empty()), "{seen:?}");
    drop(events);

    // dockerd's words where clients match on them.
    let o = docker(&e, &["inspect", "nope"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such object: nope")
            || String::from_utf8_lossy(&o.stderr).contains("No such container: nope"),
        "{o:?}"
    );
    let o = docker(&e, &["rm", "nope"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container: nope"),
        "{o:?}"
    );
}

/// GETs `/` from `addr` until it answers.
fn wait_for_http(addr: &str) -> String {
    let mut body = String::new();
    wait_for(&format!("HTTP on {addr}"), || {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let _ = write!(s, "GET / HTTP/1.0\r\n\r\n");
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        match got.split_once("\r\n\r\n") {
            Some((_, b)) if !b.is_empty() => {
                body = b.to_string();
                true
            }
            _ => false,
        }
    });
    body
}

#[test]
fn docker_run_and_exec_with_a_terminal_or_input() {
    let e = docker_env("tty");
    let out = docker_tty(
        &e,
        "run -it --rm busybox sh",
        "echo run-$((6*7)); tty; exit 5\n",
    );
    assert!(out.contains("run-42"), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    let mut piped = client(&e, docker_bin());
    piped.args(["run", "-i", "--rm", "busybox", "sh", "-c", "cat; exit 2"]);
    let o = common::with_input(&mut piped, "piped in\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped in\n");
    assert_eq!(o.status.code(), Some(2), "{o:?}");

    // Ctrl-P Ctrl-Q leaves a -it container running, its input open.
    let out = docker_tty_typed(
        &e,
        "run -it --name det busybox sh",
        &["echo before-$((6*7))\n", "\x10\x11"],
    );
    assert!(out.contains("before-42"), "{out}");
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.State.Running}}", "det"]).trim(),
        "true"
    );
    assert_eq!(docker_ok(&e, &["exec", "det", "echo", "alive"]), "alive\n");
    docker_ok(&e, &["rm", "-f", "det"]);
    docker_ok(
        &e,
        &["run", "-d", "--name", "box", "busybox", "sleep", "100"],
    );
    let out = docker_tty(&e, "exec -it box sh", "echo exec-$((6*7)); tty; exit\n");
    assert!(
        out.contains("exec-42") && out.contains("/dev/pts/"),
        "{out}"
    );
    let mut piped = client(&e, docker_bin());
    piped.args(["exec", "-i", "box", "cat"]);
    let o = common::with_input(&mut piped, "to exec\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "to exec\n", "{o:?}");
    docker_ok(&e, &["rm", "-f", "box"]);
    // -t without -i: no terminal held by the engine, the output logged.
    docker_ok(
        &e,
        &[
            "run", "-d", "-t", "--name", "ttyonly", "busybox", "echo", "tty-out",
        ],
    );
    wait_for("ttyonly's log", || {
        docker(&e, &["logs", "ttyonly"])
            .stdout
            .starts_with(b"tty-out")
    });
    docker_ok(&e, &["rm", "-f", "ttyonly"]);
    // -dit: a shell that waits on its input; restarted, it still does.
    docker_ok(&e, &["run", "-dit", "--name", "shell", "busybox", "sh"]);
    docker_ok(&e, &["restart", "-t", "1", "shell"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.State.Status}}", "shell"]).trim(),
        "running"
    );
    assert_eq!(
        docker_ok(&e, &["exec", "shell", "echo", "still"]),
        "still\n"
    );
    docker_ok(&e, &["rm", "-f", "shell"]);

    assert!(!stack_ls(&e).contains("box"));
}

#[test]
fn docker_networks_volumes_images_and_copies() {
    let e = docker_env("objects");
    docker_ok(
        &e,
        &[
            "network",
            "create",
            "--subnet",
            "10.213.7.0/24",
            "--label",
            "k=v",
            "front",
        ],
    );
    let ls = docker_ok(&e, &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(
        ls.contains("front bridge") && ls.contains("host host") && ls.contains("none null"),
        "{ls}"
    );
    assert_eq!(
        docker_ok(&e, &["network", "ls", "-q", "--filter", "label=k=v"])
            .lines()
            .count(),
        1
    );
    docker_ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "server",
            "--network",
            "front",
            "--network-alias",
            "www",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let ip = docker_ok(
        &e,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.front.IPAddress}}",
            "server",
        ],
    );
    assert!(ip.starts_with("10.213.7."), "{ip}");
    for name in ["server", "www"] {
        let got = docker_ok(
            &e,
            &[
                "run",
                "--rm",
                "--network",
                "front",
                "busybox",
                "sh",
                "-c",
                &format!("until wget -qO- http://{name}/; do sleep 0.1; done"),
            ],
        );
        assert_eq!(got, "hello from web\n", "{name}");
    }
    // A running container joins the network, and leaves it.
    docker_ok(
        &e,
        &["run", "-d", "--name", "roamer", "busybox", "sleep", "100"],
    );
    docker_ok(
        &e,
        &[
            "network", "connect", "--alias", "wanderer", "front", "roamer",
        ],
    );
    assert_eq!(
        docker_ok(&e, &["exec", "roamer", "wget", "-qO-", "http://server/"]),
        "hello from web\n"
    );
    let nets = docker_ok(
        &e,
        &[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "roamer",
        ],
    );
    assert_eq!(nets.trim(), "bridge front");
    docker_ok(&e, &["network", "disconnect", "front", "roamer"]);
    let o = docker(
        &e,
        &[
            "exec",
            "roamer",
            "wget",
            "-T",
            "1",
            "-qO-",
            "http://10.213.7.2/",
        ],
    );
    assert!(!o.status.success(), "{o:?}");
    docker_ok(&e, &["rm", "-f", "roamer"]);
    let inspect = docker_ok(
        &e,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{len .Containers}}",
            "front",
        ],
    );
    assert_eq!(inspect.trim(), "10.213.7.0/24 1");
    let o = docker(&e, &["network", "rm", "front"]);
    assert!(!o.status.success(), "a network in use goes: {o:?}");
    docker_ok(&e, &["rm", "-f", "server"]);
    docker_ok(&e, &["network", "rm", "front"]);

    docker_ok(&e, &["volume", "create", "--label", "k=v", "vol"]);
    docker_ok(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            "vol:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
    );
    assert_eq!(
        docker_ok(
            &e,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=vol,dst=/d,readonly",
                "busybox",
                "cat",
                "/d/f"
            ]
        ),
        "kept\n"
    );
    assert_eq!(
        docker_ok(&e, &["volume", "ls", "-q", "--filter", "label=k=v"]).trim(),
        "vol"
    );
    let mp = docker_ok(&e, &["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"]);
    assert_eq!(
        std::fs::read_to_string(PathBuf::from(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
    // The local driver's options: a tmpfs, and a bind of a host directory.
    docker_ok(
        &e,
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=1m",
            "tmpv",
        ],
    );
    let mounts = docker_ok(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            "tmpv:/t",
            "busybox",
            "cat",
            "/proc/mounts",
        ],
    );
    assert!(
        mounts.lines().any(|l| l.starts_with("tmpfs /t ")),
        "{mounts}"
    );
    let bound = e.dir.join("bound");
    std::fs::create_dir_all(&bound).unwrap();
    let device = format!("device={}", bound.display());
    docker_ok(
        &e,
        &[
            "volume",
            "create",
            "--opt",
            "type=none",
            "--opt",
            "o=bind",
            "--opt",
            &device,
            "bindv",
        ],
    );
    docker_ok(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            "bindv:/b",
            "busybox",
            "sh",
            "-c",
            "echo on-host > /b/f",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(bound.join("f")).unwrap(),
        "on-host\n"
    );
    assert!(
        !docker(&e, &["volume", "create", "--opt", "type=nfs", "nfsv"])
            .status
            .success()
    );
    docker_ok(&e, &["volume", "rm", "tmpv", "bindv"]);
    docker_ok(&e, &["volume", "rm", "vol"]);
    assert_eq!(docker_ok(&e, &["volume", "ls", "-q"]).trim(), "");

    let df = docker_ok(
        &e,
        &["system", "df", "--format", "{{.Type}} {{.TotalCount}}"],
    );
    assert!(
        df.contains("Images 1") && df.contains("Containers 0"),
        "{df}"
    );
    let images = docker_ok(&e, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("busybox:latest"), "{images}");
    docker_ok(&e, &["tag", "busybox", "mine/box:1"]);
    assert_eq!(
        docker_ok(&e, &["image", "inspect", "-f", "{{.Os}}", "mine/box:1"]).trim(),
        "linux"
    );
    // The legacy builder's API (`POST /build`): the CLI without buildx.
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nARG WORD=default\nCOPY msg /msg\nRUN echo \"$WORD $(cat /msg)\" > /out\nCMD [\"cat\", \"/out\"]\n").unwrap();
    std::fs::write(ctx.join("msg"), "from the context").unwrap();
    let o = client(&e, docker_bin())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "mine/built:1", "--build-arg", "WORD=hello"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Successfully tagged mine/built:1"),
        "{o:?}"
    );
    assert_eq!(
        docker_ok(&e, &["run", "--rm", "mine/built:1"]),
        "hello from the context\n"
    );
    let o = client(&e, docker_bin())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "mine/broken", "-f", "Broken"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{o:?}");
    let history = docker_ok(
        &e,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "mine/built:1",
        ],
    );
    assert!(
        history.contains("RUN") && history.contains("echo"),
        "{history}"
    );
    // save, remove, load.
    let saved = e.dir.join("saved.tar");
    docker_ok(&e, &["save", "-o", saved.to_str().unwrap(), "mine/built:1"]);
    docker_ok(&e, &["rmi", "mine/built:1"]);
    let loaded = docker_ok(&e, &["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: mine/built:1"), "{loaded}");
    assert_eq!(
        docker_ok(&e, &["run", "--rm", "mine/built:1"]),
        "hello from the context\n"
    );
    let untagged = docker_ok(&e, &["rmi", "mine/box:1"]);
    assert!(untagged.contains("Untagged: mine/box:1"), "{untagged}");
    assert!(!docker(&e, &["image", "inspect", "mine/box:1"])
        .status
        .success());

    // docker cp, both ways.
    docker_ok(
        &e,
        &["run", "-d", "--name", "files", "busybox", "sleep", "100"],
    );
    std::fs::write(e.dir.join("in.txt"), "copied in\n").unwrap();
    docker_ok(
        &e,
        &["cp", e.dir.join("in.txt").to_str().unwrap(), "files:/www/"],
    );
    assert_eq!(
        docker_ok(&e, &["exec", "files", "cat", "/www/in.txt"]),
        "copied in\n"
    );
    docker_ok(
        &e,
        &[
            "cp",
            "files:/www/index.html",
            e.dir.join("out.html").to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(e.dir.join("out.html")).unwrap(),
        "hello from web\n"
    );
    // What it changed, all of it as a tar, and a new name.
    let diff = docker_ok(&e, &["diff", "files"]);
    assert_eq!(diff, "C /www\nA /www/in.txt\n");
    let tar = e.dir.join("export.tar");
    docker_ok(&e, &["export", "-o", tar.to_str().unwrap(), "files"]);
    let listed = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for entry in ["bin/busybox", "www/index.html", "www/in.txt", "etc/passwd"] {
        assert!(listed.lines().any(|l| l == entry), "{entry} in {listed}");
    }
    docker_ok(&e, &["rename", "files", "renamed"]);
    assert_eq!(
        docker_ok(&e, &["exec", "renamed", "cat", "/www/in.txt"]),
        "copied in\n"
    );
    assert!(!docker(&e, &["inspect", "files"]).status.success());
    docker_ok(&e, &["stop", "-t", "1", "renamed"]);
    assert_eq!(
        docker_ok(&e, &["inspect", "-f", "{{.Name}}", "renamed"]).trim(),
        "/renamed"
    );
    docker_ok(&e, &["rm", "-f", "renamed"]);
}

/// What the protocol must get right whoever the client: negotiation and
/// headers, dockerd's error shapes, and bad input answered with a 4xx that
/// changes nothing.
/// After requests of the Docker API too, an idle engine gives back the
/// code they ran.
#[test]
fn an_idle_engine_gives_back_what_docker_requests_ran() {
    let e = docker_env("idle");
    let engine = e.engine_pid().unwrap();
    let (_, size) = common::resident_code(engine);
    docker_ok(&e, &["run", "--rm", "busybox:latest", "sh", "-c", ":"]);
    let (after_run, _) = common::resident_code(engine);
    wait_for("the engine to give back its code", || {
        common::resident_code(engine).0 * 5 < size
    });
    eprintln!("code resident: {after_run} KiB after docker run, of {size} KiB");
}

#[test]
fn the_protocol_and_bad_input() {
    let e = docker_env("protocol");
    let (status, head, body) = get(&e, "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let head = head.to_ascii_lowercase();
    for h in [
        "api-version: 1.50",
        "ostype: linux",
        "builder-version:",
        "docker-experimental: false",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    let (status, head, _) = raw(
        &e,
        b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(get(&e, "/v1.41/version").0, 200);
    let (status, _, body) = get(&e, "/v1.12/version");
    assert_eq!(status, 400);
    assert!(body.contains("client version 1.12 is too old"), "{body}");
    assert_eq!(get(&e, "/v9.99/info").0, 400);
    let (status, _, body) = get(&e, "/v1.41/nothing/here");
    assert_eq!(
        (status, body.trim()),
        (404, r#"{"message":"page not found"}"#)
    );
    let (status, _, body) = get(&e, "/v1.41/swarm");
    assert_eq!(status, 503);
    assert!(body.contains("This node is not a swarm manager"), "{body}");
    let (status, _, body) = post(&e, "/v1.41/session", "");
    assert_eq!(status, 501);
    assert!(body.contains("POST /session"), "{body}");
    let (status, _, body) = get(&e, "/containers/nope/json");
    assert_eq!(
        (status, body.trim()),
        (404, r#"{"message":"No such container: nope"}"#)
    );
    let (status, _, body) = post(&e, "/containers/create", r#"{"Image":"nosuch:1"}"#);
    assert_eq!(
        (status, body.trim()),
        (404, r#"{"message":"No such image: nosuch:1"}"#)
    );

    let before = stack_ls(&e);
    for (path, body, want) in [
        ("/containers/create", "{not json", "invalid JSON"),
        ("/containers/create", r#"{"Image": 5}"#, "invalid JSON"),
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#,
            "invalid JSON",
        ),
        (
            "/containers/create?name=a%20b",
            r#"{"Image":"busybox"}"#,
            "Invalid container name",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Runtime":"nvidia"}}"#,
            "runtime `nvidia`",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
            "invalid restart policy",
        ),
        ("/containers/json?filters=%7Bnope", "", "invalid filter"),
        (
            "/networks/create",
            r#"{"Name":"n","Driver":"overlay"}"#,
            "overlay",
        ),
    ] {
        let (status, _, got) = if body.is_empty() {
            get(&e, path)
        } else {
            post(&e, path, body)
        };
        assert_eq!(status, 400, "{path} {body}: {got}");
        assert!(
            got.contains("\"message\"") && got.contains(want),
            "{path} {body}: {got}"
        );
    }
    // Names that would become paths, deep nesting, bytes that are not UTF-8.
    let deep = format!(
        r#"{{"Image":"busybox","Labels":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (path, body) in [
        ("/volumes/create", r#"{"Name":"../../etc"}"#),
        ("/volumes/create", r#"{"Name":"a/b"}"#),
        ("/volumes/create", "{\"Name\":\"a\\u0000b\"}"),
        ("/networks/create", r#"{"Name":"../x"}"#),
        ("/networks/create", "{\"Name\":\"n\\u0000\"}"),
        (
            "/containers/create?name=..%2F..%2Fx",
            r#"{"Image":"busybox"}"#,
        ),
        ("/containers/create?name=a%00b", r#"{"Image":"busybox"}"#),
        ("/containers/create", deep.as_str()),
    ] {
        let (status, _, got) = post(&e, path, body);
        assert_eq!(status, 400, "{path} {}: {got}", &body[..body.len().min(80)]);
        assert!(got.contains("\"message\""), "{path}: {got}");
    }
    let (status, _, _) = raw(
        &e,
        b"GET /containers/\xff\xfe%ff/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert!(status == 400 || status == 404, "{status}");
    // A body past the limit is refused, not read into memory.
    let huge = format!(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    );
    let mut s = std::os::unix::net::UnixStream::connect(socket(&e)).unwrap();
    s.write_all(huge.as_bytes()).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    // Nothing changed, and the engine still answers.
    assert_eq!(stack_ls(&e), before);
    assert_eq!(get(&e, "/_ping").0, 200);
}

/// `use_api_socket: true`: the engine's Docker API socket inside the
/// container, where Docker clients look for it.
#[test]
fn use_api_socket_binds_the_docker_api_into_a_service() {
    let (mut e, d) = common::project_env(
        "docker",
        "apisocket",
        "services:\n  app:\n    image: local/busybox:1\n    command: sleep 100\n    use_api_socket: true\n",
    );
    // The engine's credentials go in too, as compose passes the user's.
    let auth = e.dir.join("auth.json");
    std::fs::write(
        &auth,
        r#"{"auths":{"127.0.0.1:5999":{"auth":"dXNlcjpwYXNz"}}}"#,
    )
    .unwrap();
    e.vars
        .push(("STACK_AUTH_FILE".into(), auth.to_str().unwrap().into()));
    e.out(&common::in_project(&d, &["up", "-d"]));
    let config = e.out(&common::in_project(
        &d,
        &["exec", "-T", "app", "cat", "/root/.docker/config.json"],
    ));
    assert!(
        config.contains("127.0.0.1:5999") && config.contains("dXNlcjpwYXNz"),
        "{config}"
    );
    let inside = e.out(&common::in_project(
        &d,
        &[
            "exec",
            "-T",
            "app",
            "busybox",
            "stat",
            "-c",
            "%F %i",
            "/var/run/docker.sock",
        ],
    ));
    use std::os::unix::fs::MetadataExt as _;
    let ino = std::fs::metadata(socket(&e)).unwrap().ino();
    assert_eq!(inside.trim(), format!("socket {ino}"));
    e.out(&common::in_project(&d, &["down"]));
}

#[test]
fn stack_projects_show_in_docker_ps_and_docker_containers_in_stack() {
    let (e, d) = common::project_env(
        "docker",
        "both",
        "services:\n  app:\n    image: local/busybox:1\n    command: sleep 100\n",
    );
    e.out(&common::in_project(&d, &["up", "-d"]));
    wait_for("the Docker API socket", || socket(&e).exists());
    let ps = docker_ok(
        &e,
        &[
            "ps",
            "--filter",
            "label=com.docker.compose.project=app",
            "--format",
            "{{.Names}} {{.Label \"com.docker.compose.service\"}}",
        ],
    );
    assert_eq!(ps.trim(), "app-app-1 app");
    docker_ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "solo",
            "local/busybox:1",
            "sleep",
            "100",
        ],
    );
    assert!(stack_ls(&e).contains("solo"));
    e.out(&common::in_project(&d, &["down"]));
    docker_ok(&e, &["rm", "-f", "solo"]);
}

/// The virtual environment with docker-py and testcontainers.
fn python() -> PathBuf {
    let p = std::env::var_os("STACK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/docker-venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} is missing: python3 -m venv target/docker-venv && target/docker-venv/bin/pip install docker testcontainers (.ci/run does)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/docker-api")
        .join(name)
}

/// Runs a client script of `tests/docker-api` in the virtual environment
/// against `e`'s socket, with the busybox image's name; it must succeed.
fn run_script(e: &Env, name: &str, env: &[(&str, &str)]) {
    let o = client(e, python().to_str().unwrap())
        .envs(env.iter().copied())
        .arg(script(name))
        .arg("busybox:latest")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn docker_py_drives_stack() {
    let e = docker_env("dockerpy");
    run_script(&e, "dockerpy.py", &[]);
    assert!(!stack_ls(&e).contains("py-"), "{}", stack_ls(&e));
}

#[test]
fn testcontainers_reads_a_mapped_port() {
    let e = docker_env("testcontainers");
    run_script(
        &e,
        "testcontainers_check.py",
        &[("TESTCONTAINERS_RYUK_DISABLED", "true")],
    );
    assert!(!stack_ls(&e).contains("busybox"), "{}", stack_ls(&e));
}

#[test]
fn docker_compose_v1_runs_a_project() {
    let e = docker_env("compose1");
    let dir = e.dir.join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(script("compose.yml"), dir.join("docker-compose.yml")).unwrap();
    // A service docker-compose builds (through POST /build).
    std::fs::create_dir_all(dir.join("built")).unwrap();
    std::fs::write(
        dir.join("built/Dockerfile"),
        "FROM busybox:latest\nARG WORD\nRUN echo \"built by $WORD\" > /built.txt\n",
    )
    .unwrap();
    let port = free_port().to_string();
    let compose = |args: &[&str]| {
        let o = client(&e, "docker-compose")
            .current_dir(&dir)
            .env("WEB_PORT", &port)
            .env("COMPOSE_PROJECT_NAME", "proj")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "docker-compose {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    compose(&["up", "-d"]);
    let ps = compose(&["ps"]);
    assert!(
        ps.contains("proj_web_1") && ps.contains("proj_worker_1") && ps.contains("Up"),
        "{ps}"
    );
    assert_eq!(
        wait_for_http(&format!("127.0.0.1:{port}")),
        "hello from web\n"
    );
    wait_for("the worker's log", || {
        compose(&["logs", "worker"]).contains("worker up")
    });
    wait_for("the page the worker fetched by name", || {
        client(&e, "docker-compose")
            .current_dir(&dir)
            .env("WEB_PORT", &port)
            .env("COMPOSE_PROJECT_NAME", "proj")
            .args(["exec", "-T", "worker", "cat", "/data/page"])
            .output()
            .unwrap()
            .stdout
            == b"hello from web\n"
    });
    wait_for("the built service's log", || {
        compose(&["logs", "built"]).contains("built by compose")
    });
    // The same containers, with compose's labels, in stack.
    let ls = stack_ls(&e);
    assert!(
        ls.contains("proj_web_1") && ls.contains("proj_worker_1"),
        "{ls}"
    );
    compose(&["down", "-v"]);
    assert!(!stack_ls(&e).contains("proj_"), "{}", stack_ls(&e));
    assert_eq!(docker_ok(&e, &["volume", "ls", "-q"]).trim(), "");
    let nets = docker_ok(&e, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("proj_back"), "{nets}");
}

#[test]
fn stack_attaches_to_a_docker_container_and_docker_commits_and_copies() {
    let e = docker_env("attach");
    docker_ok(
        &e,
        &[
            "run",
            "-d",
            "-i",
            "--name",
            "cat",
            "busybox",
            "sh",
            "-c",
            "cat; exit 4",
        ],
    );
    // Our input goes to it; its end ends the container's.
    let o = common::with_input(&mut e.command(&["container", "attach", "cat"]), "typed\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "typed\n", "{o:?}");
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = e.fails(&["container", "attach", "cat"]);
    assert!(err.contains("is not running"), "{err}");
    // docker commit, against stack's API: the changes and a --change.
    docker_ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "src",
            "busybox",
            "sh",
            "-c",
            "echo kept > /kept; exec sleep 100",
        ],
    );
    wait_for("the file written", || {
        docker(&e, &["exec", "src", "cat", "/kept"])
            .status
            .success()
    });
    let id = docker_ok(
        &e,
        &[
            "commit",
            "-c",
            "LABEL made=by-commit",
            "-m",
            "from docker",
            "src",
            "committed:1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        docker_ok(
            &e,
            &["inspect", "-f", "{{.Config.Labels.made}}", "committed:1"]
        ),
        "by-commit\n"
    );
    assert_eq!(
        docker_ok(&e, &["run", "--rm", "committed:1", "cat", "/kept"]),
        "kept\n"
    );
    // docker cp -L follows a link (the stat's linkTarget), -a keeps owners.
    docker_ok(
        &e,
        &["exec", "src", "busybox", "ln", "-s", "/kept", "/link"],
    );
    let out = e.dir.join("from-link");
    docker_ok(&e, &["cp", "-L", "src:/link", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");
    std::os::unix::fs::chown(&out, Some(1234), Some(4321)).unwrap();
    docker_ok(&e, &["cp", "-a", out.to_str().unwrap(), "src:/owned"]);
    assert_eq!(
        docker_ok(
            &e,
            &["exec", "src", "busybox", "stat", "-c", "%u:%g", "/owned"]
        ),
        "1234:4321\n"
    );
    docker_ok(&e, &["rm", "-f", "src", "cat"]);
}
