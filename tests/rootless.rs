//! Rootless: a user who is not root runs images, containers and stacks
//! with nothing of stack running as root. The tests make the users
//! (`useradd`, subordinate ranges in /etc/subuid and /etc/subgid) and run
//! the binary as them (`setpriv`), then check from the host: whose
//! processes the containers are, what answers on the host's ports, what was
//! left in the host's network namespace and firewall.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Users with subordinate ids (made once; one per test, so that what one
/// test leaves running is not another's), and one without.
const USER: &str = "stack-rootless";
const USER2: &str = "stack-rootless2";
const NO_RANGES: &str = "stack-noranges";

/// The uid and gid of `name`, made first if need be (with the ranges).
fn user(name: &str, ranges: bool) -> (u32, u32) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let mut add = Command::new("useradd");
        add.args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
        if !ranges {
            // (Debian's useradd gives new users ranges of their own.)
            add.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        let o = add.arg(name).output().unwrap();
        assert!(o.status.success(), "useradd {name}: {o:?}");
    }
    let listed = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{name}:")))
    };
    if ranges && !(listed("/etc/subuid") && listed("/etc/subgid")) {
        // Where useradd gives none: past every range there is.
        let end = ["/etc/subuid", "/etc/subgid"]
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                text.lines().map(String::from).collect::<Vec<_>>()
            })
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
            })
            .max()
            .unwrap_or(100_000)
            .max(100_000);
        let range = format!("{end}-{}", end + 65535);
        let o = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range, name])
            .output()
            .unwrap();
        assert!(o.status.success(), "usermod {name}: {o:?}");
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// A directory of the user's with the binary, a busybox rootfs tar and a
/// store root; everything in the root's user namespace is stopped and the
/// directory removed on drop.
struct Rootless {
    dir: PathBuf,
    uid: u32,
    gid: u32,
    /// `STACK_ROOT` is set to `root`; else the user's defaults are used:
    /// `$HOME/.local/share/stack`, the socket in `$XDG_RUNTIME_DIR/stack`.
    defaults: bool,
}

impl Rootless {
    fn new(name: &str, user_name: &str, ranges: bool) -> Rootless {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests need root (to make the users)"
        );
        let (uid, gid) = user(user_name, ranges);
        let dir =
            std::env::temp_dir().join(format!("stack-rootless-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bb/bin")).unwrap();
        // The binary where the user can run it (the build's may be under a
        // directory only root enters).
        std::fs::copy(env!("CARGO_BIN_EXE_stack"), dir.join("stack")).unwrap();
        std::fs::copy(common::busybox(), dir.join("bb/bin/busybox")).unwrap();
        for a in [
            "sh", "id", "cat", "echo", "sleep", "wget", "httpd", "mkdir", "ls", "ip",
        ] {
            std::os::unix::fs::symlink("busybox", dir.join("bb/bin").join(a)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir.join("bb"))
            .arg("-cf")
            .arg(dir.join("bb.tar"))
            .arg(".")
            .output()
            .unwrap();
        assert!(tar.status.success(), "{tar:?}");
        let o = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Rootless {
            dir,
            uid,
            gid,
            defaults: false,
        }
    }

    /// The same, with the user's default paths (no `STACK_ROOT`).
    fn with_defaults(name: &str, user_name: &str) -> Rootless {
        let mut r = Rootless::new(name, user_name, true);
        r.defaults = true;
        let run = r.dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&run, Some(r.uid.into()), Some(r.gid.into())).unwrap();
        r
    }

    fn root(&self) -> PathBuf {
        match self.defaults {
            true => self.dir.join(".local/share/stack"),
            false => self.dir.join("root"),
        }
    }

    /// `stack ARGS` as the user, in `cwd`, with a bare environment.
    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(self.dir.join("stack"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.dir)
            .env("STACK_DNS_UPSTREAM", "none")
            .current_dir(cwd);
        match self.defaults {
            true => c.env("XDG_RUNTIME_DIR", self.dir.join("run")),
            false => c.env("STACK_ROOT", self.root()),
        };
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(&self.dir, args).output().unwrap()
    }

    fn out(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} should fail: {o:?}");
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// The host pids of processes in this root's user namespace.
    fn inside(&self) -> Vec<(i32, String)> {
        use std::os::unix::fs::MetadataExt as _;
        let holder = stack_runtime::userns::live_holder(&stack_runtime::userns::dir(&self.root()))
            .expect("the store's holder runs");
        let ns = |pid: i32| {
            std::fs::metadata(format!("/proc/{pid}/ns/user"))
                .ok()
                .map(|m| (m.dev(), m.ino()))
        };
        let theirs = ns(holder);
        processes()
            .into_iter()
            .filter(|(pid, _)| *pid != holder && ns(*pid) == theirs)
            .collect()
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        stack_runtime::userns::stop(&self.root());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every process: pid and command line (arguments joined by spaces).
fn processes() -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd: Vec<String> = cmd
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            Some((pid, cmd.join(" ")))
        })
        .collect()
}

/// The real uid of a process, from its status.
fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The body of `GET /` on the host's 127.0.0.1:`port`, if it answers.
fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn host(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn a_user_runs_images_containers_and_a_stack_without_root() {
    let r = Rootless::new("stack", USER, true);
    let tar = r.dir.join("bb.tar");
    r.out(&["image", "import", tar.to_str().unwrap(), "local/bb:1"]);
    // The store is the user's: its files are theirs on the host.
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        std::fs::metadata(r.root().join("images")).unwrap().uid(),
        r.uid
    );

    // Root inside, the user outside.
    let inside = r.out(&[
        "container",
        "run",
        "--rm",
        "local/bb:1",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let mut lines = inside.lines();
    assert_eq!(lines.next(), Some("0"), "{inside}");
    let map: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(map, ["0", &r.uid.to_string(), "1"], "{inside}");
    r.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "sleeper",
        "local/bb:1",
        "sleep",
        "1234",
    ]);
    let sleeper = common::wait_for_value("the container's sleep on the host", || {
        processes()
            .into_iter()
            .find(|(_, c)| c == "sleep 1234")
            .map(|(p, _)| p)
    });
    assert_eq!(
        uid_of(sleeper),
        Some(r.uid),
        "the container's root is the user on the host"
    );
    r.out(&["container", "rm", "-f", "sleeper"]);

    // A stack: two services reaching each other by name, a published port
    // answering on the host.
    let port = common::free_port();
    let project = r.dir.join("shop");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            r#"services:
  web:
    image: local/bb:1
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
  client:
    image: local/bb:1
    command: ["sh", "-c", "until wget -qO- http://web/; do sleep 0.2; done; exec sleep 1000"]
"#
        ),
    )
    .unwrap();
    let _ = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", r.uid, r.gid))
        .arg(&project)
        .output();
    let in_project = |args: &[&str]| {
        let o = r.command(&project, args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
        (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let tables = || host("nft", &["list", "tables"]);
    let before = tables();
    let (_, up) = in_project(&["up", "-d"]);
    // This host's cgroups are not the user's: said once.
    assert_eq!(up.matches("without resource limits").count(), 1, "{up}");
    let page = common::wait_for_value("the published port answering on the host", || {
        http_get(port).filter(|a| a.contains("hello-from-web"))
    });
    assert!(
        page.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{page}"
    );
    common::wait_for("the client reaching web by name", || {
        in_project(&["logs", "client"]).0.contains("hello-from-web")
    });
    let (exec, _) = in_project(&["exec", "-T", "web", "cat", "/www/index.html"]);
    assert_eq!(exec.trim(), "hello-from-web");
    // Without cgroups, top finds the container's processes by its PID
    // namespace: its init and httpd, not the other service's.
    let (top, _) = in_project(&["top", "web"]);
    assert!(top.contains("httpd -f -p 80"), "{top}");
    assert!(!top.contains("sleep 1000"), "{top}");

    // The engine killed, its containers run on and answer; the next engine
    // (started by the next command, in the same namespaces) adopts them.
    let engine: i32 = std::fs::read_to_string(r.root().join("engine.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(uid_of(engine), Some(r.uid), "the engine is the user's");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engine),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    common::wait_for("the engine gone", || {
        std::fs::read_to_string(format!("/proc/{engine}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(http_get(port).is_some_and(|a| a.contains("hello-from-web")));
    let (ps, _) = in_project(&["ps"]);
    assert_eq!(ps.lines().filter(|l| l.contains(" Up")).count(), 2, "{ps}");

    // slirp4netns killed: the port is gone from the host until the next
    // command starts another, which forwards it again.
    let slirp: i32 = std::fs::read_to_string(r.root().join("rootless/slirp.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(slirp), nix::sys::signal::SIGKILL).unwrap();
    // (Gone, not dying: a process in its exit still holds some sockets.)
    common::wait_for("slirp4netns gone", || {
        std::fs::read_to_string(format!("/proc/{slirp}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(http_get(port).is_none());
    let (_, said) = in_project(&["ps"]);
    assert!(
        http_get(port).is_some_and(|a| a.contains("hello-from-web")),
        "{said}"
    );

    // Its bridge and nft table are in the engine's namespace, not the host's.
    let net: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.root().join("networks/shop_default.json")).unwrap(),
    )
    .unwrap();
    let bridge = net["bridge"].as_str().unwrap();
    assert!(
        !host("ip", &["-o", "link"]).contains(&format!(" {bridge}:")),
        "{bridge} on the host"
    );
    assert_eq!(
        tables(),
        before,
        "the rootless engine's nft table is not the host's"
    );

    // Below 1024 only where the host allows it.
    let unprivileged: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let low = r.dir.join("low");
    std::fs::create_dir_all(&low).unwrap();
    std::fs::write(
        low.join("compose.yaml"),
        "services:\n  web:\n    image: local/bb:1\n    command: [\"sleep\", \"100\"]\n    ports: [\"80:80\"]\n",
    )
    .unwrap();
    let o = r.command(&low, &["up", "-d"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if unprivileged > 80 {
        assert!(!o.status.success(), "{o:?}");
        assert!(
            err.contains("cannot publish 0.0.0.0:80/tcp on the host"),
            "{err}"
        );
        assert!(err.contains("ip_unprivileged_port_start"), "{err}");
    } else {
        assert!(
            o.status.success(),
            "this host lets users have port 80: {o:?}"
        );
    }
    let o = r.command(&low, &["down"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");

    in_project(&["down"]);
    assert!(http_get(port).is_none(), "the port is let go");
    // No container process is left: the engine waits, its DNS server went
    // with the last network.
    common::wait_for("no container process left", || {
        r.inside().iter().all(|(_, c)| c.ends_with("stack daemon"))
    });
    drop(r);
    // (Zombies aside: on a host whose init does not reap, the orphans stay
    // as entries, though nothing runs.)
    let zombie = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| s.contains(") Z "))
    };
    let uid = user(USER, true).0;
    common::wait_for("nothing of the user's left running", || {
        processes()
            .into_iter()
            .all(|(p, _)| uid_of(p) != Some(uid) || zombie(p))
    });
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_is_missing() {
    let r = Rootless::new("noranges", NO_RANGES, false);
    let tar = r.dir.join("bb.tar");
    let err = r.fails(&["image", "import", tar.to_str().unwrap(), "local/bb:1"]);
    assert!(
        err.contains(&format!(
            "user `{NO_RANGES}` has no subordinate user ids in `/etc/subuid`"
        )),
        "{err}"
    );
    // Commands that only read the stack files need no namespace.
    std::fs::write(
        r.dir.join("compose.yaml"),
        "services:\n  a:\n    image: x\n",
    )
    .unwrap();
    assert_eq!(r.out(&["config", "--services"]), "a\n");
}

/// A test host of our own: a network namespace on a veth pair, serving
/// HTTP on 10.199.`n`.2, removed on drop.
struct TestHost {
    ns: String,
    server: std::process::Child,
}

impl TestHost {
    fn new(n: u8, dir: &Path) -> TestHost {
        let ns = format!("rlt{}", std::process::id());
        let (outside, inside) = (
            format!("rlh{}", std::process::id()),
            format!("rln{}", std::process::id()),
        );
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        };
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &ns,
        ]);
        ip(&["addr", "add", &format!("10.199.{n}.1/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.199.{n}.2/30"),
            "dev",
            &inside,
        ]);
        ip(&["-n", &ns, "link", "set", &inside, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        std::fs::write(dir.join("index.html"), "hello-from-outside\n").unwrap();
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "python3",
                "-m",
                "http.server",
                "--bind",
            ])
            .arg(format!("10.199.{n}.2"))
            .arg("8000")
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        TestHost { ns, server }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // (The veth pair goes with the namespace.)
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn a_rootless_container_reaches_out_through_slirp4netns() {
    // (With the user's default paths.)
    let r = Rootless::with_defaults("outbound", USER2);
    let served = r.dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let _host = TestHost::new(7, &served);
    let tar = r.dir.join("bb.tar");
    r.out(&["image", "import", tar.to_str().unwrap(), "local/bb:1"]);
    r.out(&["network", "create", "out"]);
    // The container's traffic leaves the engine's namespace through
    // slirp4netns, which connects from the host as the user.
    let page = r.out(&[
        "container", "run", "--rm", "--network", "out", "local/bb:1", "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://10.199.7.2:8000/ && exit 0; sleep 0.3; done; exit 1",
    ]);
    assert_eq!(page.trim(), "hello-from-outside");
    // The host's loopback stays out of reach (slirp4netns's 10.0.2.2).
    let port = common::free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = r.run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "out",
        "local/bb:1",
        "wget",
        "-qO-",
        &format!("http://10.0.2.2:{port}/"),
    ]);
    assert!(!o.status.success(), "{o:?}");
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's loopback"
    );
    r.out(&["network", "rm", "out"]);
    // The store is in the user's data directory, the engine's socket in
    // their runtime directory.
    r.out(&["ls"]);
    assert!(r.dir.join(".local/share/stack/images").is_dir());
    assert!(r.dir.join("run/stack/engine.sock").exists());
}
