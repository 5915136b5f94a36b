//! Networks for real, as root: bridges, veths, nftables, the embedded DNS
//! and published ports, with busybox containers. Traffic goes only to
//! loopback and to the containers' own addresses; the DNS server forwards
//! nothing (`STACK_DNS_UPSTREAM=none`).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_nothing_left, bridge, Env};

fn env(name: &str) -> (Env, PathBuf) {
    let mut e = Env::new("network", name);
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    let rootfs = e.dir.join("rootfs");
    for d in ["bin", "etc", "www"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(common::busybox(), rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "httpd", "wget", "nslookup", "nc", "cat", "echo", "sleep", "timeout", "ip", "grep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    // The host's /usr can be mounted (read-only) for python3, a UDP server
    // busybox lacks.
    std::fs::create_dir_all(rootfs.join("usr")).unwrap();
    std::os::unix::fs::symlink("usr/lib", rootfs.join("lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib64", rootfs.join("lib64")).unwrap();
    std::fs::write(
        rootfs.join("www/index.html"),
        format!("hello from {name}\n"),
    )
    .unwrap();
    (e, rootfs)
}

/// A detached busybox httpd on `networks`, with more flags.
fn web(e: &Env, rootfs: &Path, name: &str, flags: &[&str]) {
    let mut args = vec![
        "container",
        "run",
        "-d",
        "--name",
        name,
        "--rootfs",
        rootfs.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["httpd", "-f", "-p", "80", "-h", "/www"]);
    e.out(&args);
}

/// A one-off client: its output (stdout then stderr) and whether it succeeded.
fn client(e: &Env, rootfs: &Path, network: &str, script: &str) -> (String, bool) {
    let o = e.stack(&[
        "container",
        "run",
        "--rm",
        "--network",
        network,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        o.status.success(),
    )
}

fn inspect(e: &Env, what: &[&str]) -> serde_json::Value {
    serde_json::from_str(&e.out(what)).unwrap()
}

/// The container's address on its first network.
fn address(e: &Env, network: &str, name: &str) -> String {
    let net = inspect(e, &["network", "inspect", network]);
    let ep = net["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ep| ep["name"] == name)
        .unwrap()
        .clone();
    ep["addresses"][0].as_str().unwrap().to_string()
}

/// Retries until the DNS answer for `name` from a client satisfies `ok`.
fn lookup(e: &Env, rootfs: &Path, network: &str, name: &str) -> String {
    client(e, rootfs, network, &format!("nslookup {name}")).0
}

#[test]
fn containers_find_each_other_by_name_and_alias() {
    let (e, rootfs) = env("dns");
    e.out(&["network", "create", "front"]);
    web(
        &e,
        &rootfs,
        "web-1",
        &["--network", "front", "--network-alias", "web"],
    );
    web(
        &e,
        &rootfs,
        "web-2",
        &["--network", "front", "--network-alias", "web"],
    );
    let (a1, a2) = (address(&e, "front", "web-1"), address(&e, "front", "web-2"));
    // Every replica behind the alias.
    let out = lookup(&e, &rootfs, "front", "web");
    assert!(out.contains(&a1) && out.contains(&a2), "{out}");
    // HTTP by container name.
    let (out, ok) = client(&e, &rootfs, "front", "wget -qO- http://web-2/");
    assert!(ok && out == "hello from dns\n", "{out}");
    // The container's own name and address are in its /etc/hosts.
    let (out, _) = client(&e, &rootfs, "front", "cat /etc/hosts /etc/resolv.conf");
    assert!(
        out.contains("nameserver 10.") || out.contains("nameserver 172."),
        "{out}"
    );
    // Removing a container changes the answers at once.
    e.out(&["container", "rm", "-f", "web-2"]);
    let out = lookup(&e, &rootfs, "front", "web");
    assert!(out.contains(&a1) && !out.contains(&a2), "{out}");
    // Unknown names are not ours (and forwarded nowhere here).
    let (out, ok) = client(&e, &rootfs, "front", "nslookup nothing-here");
    assert!(!ok && out.contains("NXDOMAIN"), "{out}");
    let b = bridge(&e, "front");
    e.out(&["container", "rm", "-f", "web-1"]);
    e.out(&["network", "rm", "front"]);
    assert_nothing_left(&e, &[b]);
}

/// The server's pid, as it says in its `dns.serving`.
fn dns_pid(e: &Env) -> String {
    let serving = std::fs::read_to_string(e.root().join("networks/dns.serving")).unwrap();
    serving.lines().next().unwrap().to_string()
}

/// Each network's maker binds port 53 of its gateway and hands the
/// sockets to the DNS server: to the one it starts, then to the one that
/// runs, without waiting for it. With the server stopped, a network is
/// made all the same (where the maker waited for the server to serve, it
/// would give up), and served once the server goes on. A network removed
/// and made again under its name is answered again; one server all along.
#[test]
fn each_new_network_is_handed_to_the_one_dns_server_without_waiting() {
    let (mut e, rootfs) = env("dns-handover");
    // Subnets no other test's networks have: another root's DNS server
    // may hold a gateway of the default pool a moment after its network
    // went, and then the maker waits for ours (stopped here) instead.
    e.vars
        .push(("STACK_NETWORK_POOL".into(), "10.215.0.0/16".into()));
    let mut bridges = Vec::new();
    let mut pid = None;
    for (net, web_name) in [
        ("one", "web-one"),
        ("two", "web-two"),
        ("one", "web-one-again"),
    ] {
        if web_name == "web-one-again" {
            e.out(&["network", "rm", "one"]);
        }
        let made = match pid.filter(|_| net == "two") {
            Some(p) => {
                nix::sys::signal::kill(p, nix::sys::signal::SIGSTOP).unwrap();
                let made = e.stack(&["network", "create", net]);
                nix::sys::signal::kill(p, nix::sys::signal::SIGCONT).unwrap();
                made
            }
            None => e.stack(&["network", "create", net]),
        };
        assert!(made.status.success(), "{net}: {made:?}");
        bridges.push(bridge(&e, net));
        web(&e, &rootfs, web_name, &["--network", net]);
        let out = lookup(&e, &rootfs, net, web_name);
        assert!(out.contains(&address(&e, net, web_name)), "{net}: {out}");
        let now = nix::unistd::Pid::from_raw(dns_pid(&e).parse().unwrap());
        assert_eq!(*pid.get_or_insert(now), now, "one server all along");
        e.out(&["container", "rm", "-f", web_name]);
    }
    e.out(&["network", "rm", "one"]);
    e.out(&["network", "rm", "two"]);
    assert_nothing_left(&e, &bridges);
}

/// The DNS server runs on `stack-dns` where that is installed beside
/// `stack` (and of its build), else on `stack` itself; it answers either
/// way.
#[test]
fn the_dns_server_runs_on_stack_dns_where_it_is_installed() {
    for (case, runs) in [("alone", "stack"), ("beside", "stack-dns")] {
        let (e, rootfs) = env(&format!("dns-bin-{case}"));
        let bin = e.dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::hard_link(env!("CARGO_BIN_EXE_stack"), bin.join("stack")).unwrap();
        if runs == "stack-dns" {
            std::fs::hard_link(env!("CARGO_BIN_EXE_stack-dns"), bin.join(runs)).unwrap();
        }
        // The engine, and so the server, run on the binary that starts it.
        let o = std::process::Command::new(bin.join("stack"))
            .args(["network", "create", "front"])
            .env("STACK_ROOT", e.root())
            .env("STACK_DNS_UPSTREAM", "none")
            .output()
            .unwrap();
        assert!(o.status.success(), "{case}: {o:?}");
        web(&e, &rootfs, "web", &["--network", "front"]);
        let out = lookup(&e, &rootfs, "front", "web");
        assert!(out.contains(&address(&e, "front", "web")), "{case}: {out}");
        let serving = std::fs::read_to_string(e.root().join("networks/dns.serving")).unwrap();
        let pid = serving.lines().next().unwrap();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, bin.join(runs), "{case}");
        let b = bridge(&e, "front");
        e.out(&["container", "rm", "-f", "web"]);
        e.out(&["network", "rm", "front"]);
        assert_nothing_left(&e, &[b]);
    }
}

/// A network made on a gateway that another root's DNS server still
/// holds (its network just removed, the server not yet let go: stopped
/// here) is served by a server of its own root once the other lets go,
/// before `network create` returns: the other's answer on the address is
/// not taken for one of ours.
#[test]
fn a_gateway_another_roots_server_holds_is_served_by_ours() {
    let subnet = "10.216.7.0/24";
    let (a, _) = env("dns-other-root-a");
    let (b, _) = env("dns-other-root-b");
    a.out(&["network", "create", "--subnet", subnet, "front"]);
    let a_bridge = bridge(&a, "front");
    common::wait_for("a's server serves", || {
        std::fs::read_to_string(a.root().join("networks/dns.serving"))
            .is_ok_and(|s| s.contains("front 10.216.7.1"))
    });
    let theirs = nix::unistd::Pid::from_raw(dns_pid(&a).parse().unwrap());
    /// Lets the stopped server go on however the test ends.
    struct GoOn(nix::unistd::Pid);
    impl Drop for GoOn {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::SIGCONT);
        }
    }
    nix::sys::signal::kill(theirs, nix::sys::signal::SIGSTOP).unwrap();
    let stopped = GoOn(theirs);
    a.out(&["network", "rm", "front"]);
    // Going on a moment after b's network is made, it lets go of the
    // gateway (woken by the removal).
    let go_on = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(stopped);
    });
    let made = b.stack(&["network", "create", "--subnet", subnet, "front"]);
    go_on.join().unwrap();
    assert!(made.status.success(), "{made:?}");
    let serving = std::fs::read_to_string(b.root().join("networks/dns.serving"))
        .expect("b's server says what it serves when the network is made");
    assert!(serving.contains("front 10.216.7.1"), "{serving}");
    let b_bridge = bridge(&b, "front");
    b.out(&["network", "rm", "front"]);
    assert_nothing_left(&a, &[a_bridge]);
    assert_nothing_left(&b, &[b_bridge]);
}

#[test]
fn networks_are_isolated_and_an_internal_one_has_no_way_out() {
    let (e, rootfs) = env("isolation");
    e.out(&["network", "create", "front"]);
    e.out(&["network", "create", "back"]);
    e.out(&["network", "create", "--internal", "sealed"]);
    web(&e, &rootfs, "db", &["--network", "back"]);
    web(
        &e,
        &rootfs,
        "both",
        &["--network", "front", "--network", "back"],
    );
    let db = address(&e, "back", "db");
    // A container on both networks reaches db by name; one on front only does not.
    let (out, ok) = client(&e, &rootfs, "back", "wget -qO- http://db/");
    assert!(ok && out.contains("hello"), "{out}");
    let (out, _) = client(&e, &rootfs, "front", "nslookup db");
    assert!(out.contains("NXDOMAIN"), "{out}");
    let (out, ok) = client(
        &e,
        &rootfs,
        "front",
        &format!("timeout 3 wget -qO- http://{db}/"),
    );
    assert!(!ok && !out.contains("hello"), "front reached back: {out}");
    // A host service on every address: reachable through a normal network's
    // gateway, not from the internal network.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhost\n");
        }
    });
    let gw = |n: &str| {
        inspect(&e, &["network", "inspect", n])["subnets"][0]["gateway"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // (120 s: a guard against hanging; the 3 s of the refusals around it
    // are the time a dropped connection is given, as the firewall drops
    // and has no refusal to wait for.)
    let (out, ok) = client(
        &e,
        &rootfs,
        "front",
        &format!("timeout 120 wget -qO- http://{}:{port}/", gw("front")),
    );
    assert!(ok && out == "host\n", "{out}");
    let (out, ok) = client(
        &e,
        &rootfs,
        "sealed",
        &format!("timeout 3 wget -qO- http://{}:{port}/", gw("sealed")),
    );
    assert!(!ok, "the internal network reached the host: {out}");
    let (out, _) = client(&e, &rootfs, "sealed", "ip route");
    assert!(!out.contains("default"), "{out}");
    // A network in use is not removed.
    let err = e.fails(&["network", "rm", "back"]);
    assert!(err.contains("in use by `both`, `db`"), "{err}");
    let bridges: Vec<String> = ["front", "back", "sealed"]
        .iter()
        .map(|n| bridge(&e, n))
        .collect();
    e.out(&["container", "rm", "-f", "db", "both"]);
    e.out(&["network", "rm", "front", "back", "sealed"]);
    assert_nothing_left(&e, &bridges);
}

/// GET / on 127.0.0.1:port, retried while the server comes up.
fn http_get(port: u16) -> String {
    http_get_at(std::net::Ipv4Addr::LOCALHOST.into(), port)
}

/// GET / on ip:port, asked again until an HTTP answer comes (a connection
/// may be taken, and closed, before the server in the container listens).
fn http_get_at(ip: std::net::IpAddr, port: u16) -> String {
    common::wait_for_ok(&format!("an HTTP answer from {ip} port {port}"), || {
        let mut s = TcpStream::connect((ip, port)).map_err(|e| e.to_string())?;
        // (How long one attempt waits before the next, not a bound.)
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        match s.read_to_string(&mut out) {
            Ok(_) if out.starts_with("HTTP/") => Ok(out),
            Ok(_) => Err(format!("answered {out:?}")),
            Err(e) => Err(format!("reading the answer: {e} (so far {out:?})")),
        }
    })
}

#[test]
fn published_ports_answer_on_the_host() {
    let (e, rootfs) = env("ports");
    e.out(&["network", "create", "front"]);
    let port = common::free_port();
    web(
        &e,
        &rootfs,
        "web",
        &[
            "--network",
            "front",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-p",
            "80",
        ],
    );
    let got = http_get(port);
    assert!(got.ends_with("hello from ports\n"), "{got:?}");
    // A random host port, read back with `container port`.
    let random = e.out(&["container", "port", "web", "80"]);
    let random: Vec<&str> = random.lines().collect();
    assert_eq!(random.len(), 2, "{random:?}");
    let rport: u16 = random[1].rsplit(':').next().unwrap().parse().unwrap();
    assert!(rport >= 32768, "{rport}");
    let got = http_get(rport);
    assert!(got.ends_with("hello from ports\n"), "{got:?}");
    // Another container through the host's published port (hairpin).
    let gw = inspect(&e, &["network", "inspect", "front"])["subnets"][0]["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let (out, ok) = client(
        &e,
        &rootfs,
        "front",
        &format!("wget -qO- http://{gw}:{rport}/"),
    );
    assert!(ok && out.contains("hello from ports"), "{out}");
    // UDP: an echo server in the container answers through the published port.
    let uport = common::free_port();
    let echo = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 9000))\nwhile True:\n    d, a = s.recvfrom(100)\n    s.sendto(b'pong ' + d, a)\n";
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "udp",
        "--network",
        "front",
        "-p",
        &format!("127.0.0.1:{uport}:9000/udp"),
        "-v",
        "/usr:/usr:ro",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/usr/bin/python3",
        "-c",
        echo,
    ]);
    // A datagram sent before the server is up is lost: sent again until one
    // is answered (each wait for the answer being only how often to ask).
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let got = common::wait_for_ok("an answer over UDP", || {
        sock.send_to(b"ping", ("127.0.0.1", uport)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => Ok(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => Err(format!(
                "udp's log: {}",
                e.out(&["container", "logs", "udp"])
            )),
        }
    });
    assert_eq!(got, "pong ping");
    // Taken ports fail before anything is made, naming the holder.
    let clash = |publish: &str| {
        e.fails(&[
            "container",
            "run",
            "-d",
            "--name",
            "clash",
            "--network",
            "front",
            "-p",
            publish,
            "--rootfs",
            rootfs.to_str().unwrap(),
            "true",
        ])
    };
    let err = clash(&format!("{port}:80"));
    assert!(
        err.contains(&format!(
            "port 0.0.0.0:{port}/tcp is already published by container `web`"
        )),
        "{err}"
    );
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = held.local_addr().unwrap().port();
    let err = clash(&format!("127.0.0.1:{hport}:80"));
    assert!(
        err.contains(&format!(
            "is already in use by process {}",
            std::process::id()
        )),
        "{err}"
    );
    assert!(e
        .fails(&["container", "inspect", "clash"])
        .contains("no such container"));
    let b = bridge(&e, "front");
    e.out(&["container", "rm", "-f", "web", "udp"]);
    e.out(&["network", "rm", "front"]);
    assert_nothing_left(&e, &[b]);
}

#[test]
fn bad_network_requests_say_what_is_wrong() {
    let (e, rootfs) = env("bad");
    assert!(e
        .fails(&["network", "create", "-d", "overlay", "x"])
        .contains("driver `overlay` is not supported"));
    assert!(e
        .fails(&["network", "create", "--subnet", "10.99.0.5/24", "x"])
        .contains("did you mean `10.99.0.0/24`"));
    assert!(e
        .fails(&["network", "create", "-o", "foo=bar", "x"])
        .contains("driver option `foo`"));
    e.out(&[
        "network",
        "create",
        "--subnet",
        "10.99.7.0/24",
        "--gateway",
        "10.99.7.254",
        "fixed",
    ]);
    assert!(e
        .fails(&["network", "create", "fixed"])
        .contains("already exists"));
    assert!(e
        .fails(&["network", "create", "--subnet", "10.99.7.128/25", "other"])
        .contains("overlaps"));
    // A static address, and one outside the subnet.
    web(
        &e,
        &rootfs,
        "pinned",
        &["--network", "fixed", "--ip", "10.99.7.50"],
    );
    assert_eq!(address(&e, "fixed", "pinned"), "10.99.7.50");
    let err = e.fails(&[
        "container",
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.98.0.5",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "true",
    ]);
    assert!(
        err.contains("address `10.98.0.5` is not in the network's subnet `10.99.7.0/24`"),
        "{err}"
    );
    assert!(e
        .fails(&[
            "container",
            "run",
            "--rm",
            "--network",
            "nope",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "true"
        ])
        .contains("no such network: `nope`"));
    assert!(e
        .fails(&[
            "container",
            "run",
            "--rm",
            "-p",
            "80",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "true"
        ])
        .contains("need a network"));
    // The failed runs left no endpoint.
    let eps = inspect(&e, &["network", "inspect", "fixed"])["endpoints"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(eps, 1);
    let b = bridge(&e, "fixed");
    e.out(&["container", "rm", "-f", "pinned"]);
    e.out(&["network", "rm", "fixed"]);
    assert_nothing_left(&e, &[b]);
}

/// A network whose bridge went missing (an engine killed between removing
/// its bridge and its record), its DNS server gone too, gets its bridge
/// back with the next container on it, and a new server answers there: the
/// server is made sure of once the container is wired, not before (when
/// its gateway was on no link, and no server could bind it).
#[test]
fn a_network_whose_bridge_went_missing_is_served_again() {
    let (e, rootfs) = env("bridge-gone");
    e.out(&["network", "create", "front"]);
    let b = bridge(&e, "front");
    web(&e, &rootfs, "first", &["--network", "front"]);
    e.out(&["container", "rm", "-f", "first"]);
    let del = std::process::Command::new("ip")
        .args(["link", "del", &b])
        .status()
        .unwrap();
    assert!(del.success());
    let server = nix::unistd::Pid::from_raw(dns_pid(&e).parse().unwrap());
    nix::sys::signal::kill(server, nix::sys::signal::SIGKILL).unwrap();
    common::wait_for("the DNS server is gone", || {
        std::fs::read_to_string(format!("/proc/{server}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    web(&e, &rootfs, "web", &["--network", "front"]);
    let out = lookup(&e, &rootfs, "front", "web");
    assert!(out.contains(&address(&e, "front", "web")), "{out}");
    e.out(&["container", "rm", "-f", "web"]);
    e.out(&["network", "rm", "front"]);
    assert_nothing_left(&e, &[b]);
}

/// A container's links are made in one batch of netlink requests from
/// inside its namespace, at indexes chosen beforehand: its `ethN` at
/// 1000 + N, their host ends in the upper half of the range (which the
/// kernel's own indexes do not reach), each on its network's bridge.
/// (A host end's index taken, one chance in a billion, is chosen again
/// with its peer's: this test would then fail.)
#[test]
fn a_containers_links_are_made_at_indexes_chosen_beforehand() {
    let (e, rootfs) = env("indexes");
    e.out(&["network", "create", "one"]);
    e.out(&["network", "create", "two"]);
    web(
        &e,
        &rootfs,
        "both",
        &["--network", "one", "--network", "two"],
    );
    let inside = e.out(&["container", "exec", "both", "ip", "-o", "link"]);
    let mut bridges = Vec::new();
    for (n, net) in ["one", "two"].into_iter().enumerate() {
        let b = bridge(&e, net);
        let o = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &b])
            .output()
            .unwrap();
        let host = String::from_utf8_lossy(&o.stdout).to_string();
        let index: u64 = host.split(':').next().unwrap().trim().parse().unwrap();
        assert!(index >= 1 << 30, "{host}");
        assert!(host.contains(&format!("@if{}:", 1000 + n)), "{host}");
        assert!(
            inside.contains(&format!("{}: eth{n}@if{index}:", 1000 + n)),
            "{inside}"
        );
        bridges.push(b);
    }
    let out = lookup(&e, &rootfs, "two", "both");
    assert!(out.contains(&address(&e, "two", "both")), "{out}");
    e.out(&["container", "rm", "-f", "both"]);
    e.out(&["network", "rm", "one"]);
    e.out(&["network", "rm", "two"]);
    assert_nothing_left(&e, &bridges);
}

#[test]
fn ipv6_networks_give_and_resolve_v6_addresses() {
    let (e, rootfs) = env("ipv6");
    e.out(&["network", "create", "--ipv6", "dual"]);
    web(&e, &rootfs, "six", &["--network", "dual"]);
    let net = inspect(&e, &["network", "inspect", "dual"]);
    let ep = &net["endpoints"][0];
    let v6 = ep["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .find(|a| a.contains(':'))
        .unwrap()
        .to_string();
    assert!(v6.starts_with("fd"), "{net}");
    let (out, ok) = client(&e, &rootfs, "dual", "nslookup -type=AAAA six");
    assert!(ok && out.contains(&v6), "{out}");
    let (out, ok) = client(&e, &rootfs, "dual", &format!("wget -qO- http://[{v6}]/"));
    assert!(ok && out == "hello from ipv6\n", "{out}");
}

/// A DNS server on loopback standing for the host's resolver: answers every
/// A question with 192.0.2.55 (a documentation address nobody contacts) and
/// remembers the names it was asked.
fn fake_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // The question: labels from byte 12 to the root label, then type and class.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_string());
                i += 1 + len;
            }
            let end = i + 5;
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            seen.lock().unwrap().push(labels.join("."));
            let mut r = q[..end].to_vec();
            r[2] = 0x81; // a response, recursion desired
            r[3] = 0x80; // recursion available, no error
            r[6..8].copy_from_slice(&u16::from(qtype == 1).to_be_bytes());
            r[8..12].fill(0);
            if qtype == 1 {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 55]);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    (addr, asked)
}

/// A network namespace standing for another machine, linked to the host by
/// a veth: 198.18.77.2 and fd00:5ac:7e57::2 there, .1 and ::1 on the host.
struct TestHost(String);

impl TestHost {
    fn new() -> TestHost {
        let ns = format!("sth{}", std::process::id() % 100_000);
        let run = |args: &str| {
            let o = std::process::Command::new("ip")
                .args(args.split_whitespace())
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "ip {args}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .output();
        run(&format!("netns add {ns}"));
        let host = TestHost(ns.clone());
        run(&format!(
            "link add {ns}h type veth peer name {ns}c netns {ns}"
        ));
        run(&format!("addr add 198.18.77.1/30 dev {ns}h"));
        run(&format!("-6 addr add fd00:5ac:7e57::1/64 dev {ns}h nodad"));
        run(&format!("link set {ns}h up"));
        run(&format!("-n {ns} addr add 198.18.77.2/30 dev {ns}c"));
        run(&format!(
            "-n {ns} -6 addr add fd00:5ac:7e57::2/64 dev {ns}c nodad"
        ));
        run(&format!("-n {ns} link set {ns}c up"));
        run(&format!("-n {ns} link set lo up"));
        host
    }

    /// `busybox wget -qO- URL` run on the test host, retried while the
    /// server comes up.
    fn get(&self, url: &str) -> String {
        common::wait_for_ok(&format!("an answer to {url} on the test host"), || {
            let o = std::process::Command::new("ip")
                .args(["netns", "exec", &self.0])
                .arg(common::busybox())
                .args(["wget", "-qO-", url])
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if o.status.success() {
                Ok(text)
            } else {
                Err(text)
            }
        })
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // The veth goes with the namespace.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

#[test]
fn other_names_are_forwarded_and_remote_clients_keep_their_address() {
    let (mut e, rootfs) = env("outside");
    let (upstream, asked) = fake_upstream();
    e.vars.retain(|(k, _)| k != "STACK_DNS_UPSTREAM");
    e.vars
        .push(("STACK_DNS_UPSTREAM".into(), upstream.to_string()));
    // A CGI that answers with the client's address as the server sees it.
    let cgi = rootfs.join("www/cgi-bin/ip");
    std::fs::create_dir_all(cgi.parent().unwrap()).unwrap();
    std::fs::write(
        &cgi,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    e.out(&["network", "create", "--ipv6", "outer"]);
    let port = common::free_port();
    web(
        &e,
        &rootfs,
        "web",
        &["--network", "outer", "-p", &format!("{port}:80")],
    );

    // Names of nobody on the network go to the host's resolver; ours do not.
    let (out, ok) = client(
        &e,
        &rootfs,
        "outer",
        "nslookup outside.example.test; nslookup web",
    );
    assert!(ok && out.contains("192.0.2.55"), "{out}");
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.iter().any(|q| q == "outside.example.test"),
        "{asked:?}"
    );
    assert!(!asked.iter().any(|q| q.starts_with("web")), "{asked:?}");

    // domainname: the UTS namespace's, and the FQDN in /etc/hosts (a line
    // for each of the container's addresses, v4 and v6).
    let out = e.out(&[
        "container",
        "run",
        "--rm",
        "--network",
        "outer",
        "--hostname",
        "box",
        "--domainname",
        "example.test",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "cat /proc/sys/kernel/domainname; grep -c 'box.example.test box$' /etc/hosts",
    ]);
    assert_eq!(out, "example.test\n2\n");

    // The host's own loopback, both families.
    let got = http_get(port);
    assert!(got.ends_with("hello from outside\n"), "{got:?}");
    let got = http_get_at(std::net::Ipv6Addr::LOCALHOST.into(), port);
    assert!(got.ends_with("hello from outside\n"), "{got:?}");

    // A client on another interface of the host, over IPv4 and IPv6: the
    // published port answers, and the server sees the client's own address.
    let host = TestHost::new();
    // httpd prints `[ADDR]`, IPv4 clients as `[::ffff:A.B.C.D]`.
    let seen = |url: String| {
        let out = host.get(&url);
        let addr = out.trim_end().trim_start_matches('[').trim_end_matches(']');
        addr.trim_start_matches("::ffff:").to_string()
    };
    assert_eq!(
        seen(format!("http://198.18.77.1:{port}/cgi-bin/ip")),
        "198.18.77.2"
    );
    assert_eq!(
        seen(format!("http://[fd00:5ac:7e57::1]:{port}/cgi-bin/ip")),
        "fd00:5ac:7e57::2"
    );
    let b = bridge(&e, "outer");
    e.out(&["container", "rm", "-f", "web"]);
    e.out(&["network", "rm", "outer"]);
    assert_nothing_left(&e, &[b]);
}

/// A bridge made again under its name (a network with a bridge name of
/// its own, down and up again) has a new index: the engine, which keeps
/// the index it last looked up, finds that out, and each up's container
/// is on the bridge of that up.
#[test]
fn a_bridge_made_again_under_its_name_gets_the_next_ups_containers() {
    let name = format!("stkb{}", std::process::id());
    let compose = format!(
        "services:\n  web:\n    image: local/busybox:1\n    command: httpd -f -p 80 -h /www\n\
         networks:\n  default:\n    driver_opts:\n      com.docker.network.bridge.name: {name}\n"
    );
    let (e, d) = common::project_env("network", "bridge-again", &compose);
    for round in 0..2 {
        e.out(&common::in_project(&d, &["up", "-d"]));
        let ports = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &name])
            .output()
            .unwrap();
        let ports = String::from_utf8_lossy(&ports.stdout).lines().count();
        assert_eq!(ports, 1, "round {round}: the container's veth on {name}");
        e.out(&common::in_project(&d, &["down"]));
    }
    assert_nothing_left(&e, &[name]);
}

/// The DNS server of a store root that is removed (as a test's, right
/// after its last network) ends: it finds no lock and no network there.
#[test]
fn the_dns_server_of_a_removed_root_ends() {
    let (e, _rootfs) = env("dns-gone");
    e.out(&["network", "create", "front"]);
    let b = bridge(&e, "front");
    common::wait_for("the server says it serves", || {
        e.root().join("networks/dns.serving").exists()
    });
    let pid = nix::unistd::Pid::from_raw(dns_pid(&e).parse().unwrap());
    e.out(&["network", "rm", "front"]);
    std::fs::remove_dir_all(e.root()).unwrap();
    common::wait_for("the server ends", || {
        nix::sys::signal::kill(pid, None).is_err()
    });
    assert_nothing_left(&e, &[b]);
}

/// What the command that starts the engine or the DNS server left open
/// (a file its shell opened as descriptor 9) is held by neither: both
/// close what they inherit above standard error.
#[test]
fn the_long_lived_processes_hold_nothing_their_starter_left_open() {
    let (e, _rootfs) = env("dns-fds");
    let held = e.dir.join("held");
    std::fs::write(&held, "").unwrap();
    let project = e.dir.join("app");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        "services:\n  a:\n    image: none:1\n",
    )
    .unwrap();
    let stack = env!("CARGO_BIN_EXE_stack");
    // The network's DNS server is started by the first, the engine by the
    // second (`ps` goes through it).
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!(
            "exec 9>>'{}'; '{stack}' network create front && '{stack}' --project-directory '{}' ps >/dev/null",
            held.display(),
            project.display()
        ))
        .env("STACK_ROOT", e.root());
    for (k, v) in &e.vars {
        sh.env(k, v);
    }
    let o = sh.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(e.engine_pid().is_some(), "the engine runs");
    let holders = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| {
                let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == held))
                    .then(|| p.file_name().to_string_lossy().into_owned())
            })
            .collect()
    };
    common::wait_for("nobody holds the file", || holders().is_empty());
    let b = bridge(&e, "front");
    e.out(&["network", "rm", "front"]);
    assert_nothing_left(&e, &[b]);
}
