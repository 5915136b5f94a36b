//! nftables rules of our own: masquerade out of each non-internal network,
//! isolation between networks, no way out of an internal one, and DNAT for
//! published ports. The whole table is computed from the records and
//! loaded in one transaction (`nft -f -`) when networks come or go; a
//! container's published ports are elements of four maps (per family, the
//! ports of one host address and those of every address), added and
//! deleted by themselves (`publish`), so that starting or removing one
//! costs the same with 500 containers as with one.
//!
//! Each store root has its own table (`inet stack_<hash of the root>`), so
//! stacks under different roots never touch each other's rules. Where Docker
//! runs, its `FORWARD` chain drops what it does not know (and, with
//! br_netfilter, even traffic inside a bridge): our bridges get accept rules
//! in Docker's `DOCKER-USER` chain, tagged with our table's name, and lose
//! them with the network.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::state::{Endpoint, Network, Store};
use crate::NetError;

/// Our table's name for a store.
pub fn table_name(store: &Store) -> String {
    // FNV-1a of the store's path: stable and short.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in store.netns_dir().as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("stack_{:08x}", h as u32)
}

/// Our table's chains: name and, for a base chain, its hook.
const CHAINS: [(&str, &str); 6] = [
    (
        "forward",
        "type filter hook forward priority filter; policy accept;",
    ),
    (
        "input",
        "type filter hook input priority filter; policy accept;",
    ),
    (
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    (
        "output",
        "type nat hook output priority -100; policy accept;",
    ),
    ("ports", ""),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
];

/// The whole table, as `nft -f` reads it, in one transaction. Pure.
///
/// The table and its chains stay from one load to the next, only their
/// rules are flushed and written anew: deleting a table takes its base
/// chains off their hooks, and each hook taken off waits out an RCU grace
/// period (a load took 17 to 25 ms here; this one a few).
pub fn ruleset(table: &str, networks: &[Network], endpoints: &[Endpoint]) -> String {
    let mut s = String::new();
    if networks.is_empty() {
        // Declaring then deleting makes the load work whether or not the table exists.
        let _ = writeln!(s, "table inet {table} {{}}\ndelete table inet {table}");
        return s;
    }
    let _ = writeln!(s, "table inet {table} {{");
    for (chain, hook) in CHAINS {
        let _ = writeln!(s, "  chain {chain} {{ {hook} }}");
    }
    for (map, _, addr, any) in MAPS {
        let host = if any {
            String::new()
        } else {
            format!("{addr} . ")
        };
        let _ = writeln!(
            s,
            "  map {map} {{ type {host}inet_proto . inet_service : {addr} . inet_service; }}"
        );
    }
    let _ = writeln!(s, "}}\nflush table inet {table}");
    for (map, ..) in MAPS {
        let _ = writeln!(s, "flush map inet {table} {map}");
    }
    let _ = writeln!(s, "table inet {table} {{");
    let bridges: Vec<String> = networks
        .iter()
        .map(|n| format!("\"{}\"", n.bridge))
        .collect();
    let all = format!("{{ {} }}", bridges.join(", "));
    s.push_str("  chain forward {\n");
    for n in networks {
        let b = &n.bridge;
        if n.internal {
            let _ = writeln!(s, "    iifname \"{b}\" oifname != \"{b}\" drop");
            let _ = writeln!(s, "    oifname \"{b}\" iifname != \"{b}\" drop");
        } else if networks.len() > 1 {
            let _ = writeln!(
                s,
                "    iifname \"{b}\" oifname != \"{b}\" oifname {all} drop"
            );
        }
    }
    s.push_str("  }\n");
    // An internal network reaches the host for DNS only.
    s.push_str("  chain input {\n");
    for n in networks.iter().filter(|n| n.internal) {
        let b = &n.bridge;
        let _ = writeln!(
            s,
            "    iifname \"{b}\" meta l4proto {{ tcp, udp }} th dport 53 accept"
        );
        let _ = writeln!(s, "    iifname \"{b}\" drop");
    }
    s.push_str("  }\n");
    s.push_str("  chain prerouting {\n    fib daddr type local jump ports\n  }\n");
    // `::1` never leaves the host: the network server proxies it (`proxy`).
    s.push_str(
        "  chain output {\n    ip6 daddr ::1 return\n    fib daddr type local jump ports\n  }\n",
    );
    // Published ports: looked up in maps that `publish` changes element by
    // element; per family, a port of one host address first, then a port
    // of every address (a NAT statement ends the chain).
    s.push_str("  chain ports {\n");
    for (map, fam, _, any) in MAPS {
        let (only, key) = match any {
            false => (String::new(), format!("{fam} daddr . ")),
            true => (
                format!("meta nfproto {} ", NFPROTO[usize::from(fam == "ip6")]),
                String::new(),
            ),
        };
        let _ = writeln!(
            s,
            "    {only}meta l4proto {{ tcp, udp, sctp }} dnat {fam} to {key}meta l4proto . th dport map @{map}"
        );
    }
    s.push_str("  }\n");
    s.push_str("  chain postrouting {\n");
    for n in networks {
        let b = &n.bridge;
        for sub in &n.subnets {
            let fam = if sub.subnet.addr().is_ipv4() {
                "ip"
            } else {
                "ip6"
            };
            let net = sub.subnet;
            if !n.internal {
                let _ = writeln!(s, "    {fam} saddr {net} oifname != \"{b}\" masquerade");
            }
            // A container reaching another through a published port of the host.
            let _ = writeln!(
                s,
                "    oifname \"{b}\" ct status dnat {fam} saddr {net} masquerade"
            );
        }
        // The host's loopback reaching a published port.
        let _ = writeln!(s, "    oifname \"{b}\" ip saddr 127.0.0.0/8 masquerade");
    }
    s.push_str("  }\n}\n");
    for (map, key, value) in elements(endpoints) {
        let _ = writeln!(s, "add element inet {table} {map} {{ {key} : {value} }}");
    }
    s
}

/// The maps of published ports: name, family, address type, and whether
/// the port is of every address of the host (else of one, in the key).
/// Plain hash maps: no interval flags, which concatenations need a recent
/// kernel for.
const MAPS: [(&str, &str, &str, bool); 4] = [
    ("ports4", "ip", "ipv4_addr", false),
    ("any4", "ip", "ipv4_addr", true),
    ("ports6", "ip6", "ipv6_addr", false),
    ("any6", "ip6", "ipv6_addr", true),
];
const NFPROTO: [&str; 2] = ["ipv4", "ipv6"];

/// The endpoints' published ports as elements of our maps: the map, the
/// key (host address . protocol . host port, or protocol . port for every
/// address), the value (container address . port). A port published on
/// an address of one family has no element in the other's maps. A key
/// taken already keeps its first value, as the first of the rules that
/// stood for them did (an endpoint with two subnets of one family, ports
/// that a rootless engine's forwarder brings to one address).
fn elements(endpoints: &[Endpoint]) -> Vec<(&'static str, String, String)> {
    let mut out: Vec<(&'static str, String, String)> = Vec::new();
    for ep in endpoints {
        for p in &ep.ports {
            for target in &ep.addresses {
                let v6 = usize::from(target.is_ipv6()) * 2;
                let (map, key) = match p.host_ip {
                    Some(h) if h.is_ipv4() != target.is_ipv4() => continue,
                    Some(h) if !h.is_unspecified() => (
                        MAPS[v6].0,
                        format!("{h} . {} . {}", p.protocol, p.host_port),
                    ),
                    _ => (MAPS[v6 + 1].0, format!("{} . {}", p.protocol, p.host_port)),
                };
                if out.iter().any(|(m, k, _)| *m == map && *k == key) {
                    continue;
                }
                out.push((map, key, format!("{target} . {}", p.container_port)));
            }
        }
    }
    out
}

/// The ports of endpoints `added` published, those of `removed` withdrawn:
/// their elements of our maps added and deleted in one transaction, the
/// rest of the table untouched. Where that fails (a table from before the
/// maps, an element not there), the whole table is loaded again.
pub fn publish(store: &Store, added: &[Endpoint], removed: &[Endpoint]) -> Result<(), NetError> {
    let changes = changes(&table_name(store), added, removed);
    if changes.is_empty() {
        return Ok(());
    }
    // A rootless engine's ports go through slirp4netns: all of them, anew.
    if store.forwarder().is_some() {
        return apply(store, false);
    }
    nft(&changes).or_else(|_| apply(store, false))
}

/// `publish`'s transaction. Pure.
fn changes(table: &str, added: &[Endpoint], removed: &[Endpoint]) -> String {
    let mut s = String::new();
    for (map, key, _) in elements(removed) {
        let _ = writeln!(s, "delete element inet {table} {map} {{ {key} }}");
    }
    for (map, key, value) in elements(added) {
        let _ = writeln!(s, "add element inet {table} {map} {{ {key} : {value} }}");
    }
    s
}

fn nft(input: &str) -> Result<(), NetError> {
    match feed("nft", &["-f", "-"], input) {
        Err(e) => Err(NetError::Firewall(format!(
            "cannot run `nft` (apt-get install nftables): {e}"
        ))),
        Ok(Err(why)) => Err(NetError::Firewall(format!("nft refused the rules: {why}"))),
        Ok(Ok(())) => Ok(()),
    }
}

/// Runs `program` with `input` on its standard input: an error if it
/// cannot be run, else what it said on its error output if it failed.
fn feed(program: &str, args: &[&str], input: &str) -> std::io::Result<Result<(), String>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // A program that ends before it has read everything says why on its
    // error output: waited for and reported like any failure.
    let _ = child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes());
    let out = child.wait_with_output()?;
    Ok(match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    })
}

fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let p = std::path::PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    match std::fs::read_to_string(&p) {
        Ok(v) if v.trim() == value => Ok(()),
        _ => std::fs::write(&p, value).map_err(|e| NetError::io(&p, e)),
    }
}

/// Loads our table as the records say; with `bridges_changed`, also keeps
/// Docker's chain and the sysctls in step (networks came or went).
pub fn apply(store: &Store, bridges_changed: bool) -> Result<(), NetError> {
    let networks = store.networks()?;
    let mut endpoints = store.all_endpoints()?;
    let table = table_name(store);
    if let Some(forwarder) = store.forwarder() {
        // A rootless engine: slirp4netns listens on the host's addresses
        // and brings every port to its own address here.
        crate::forward::sync(&forwarder, &endpoints)?;
        for p in endpoints.iter_mut().flat_map(|ep| ep.ports.iter_mut()) {
            p.host_ip = None;
        }
    }
    if !bridges_changed {
        return nft(&ruleset(&table, &networks, &endpoints));
    }
    if !networks.is_empty() {
        sysctl("net.ipv4.ip_forward", "1")?;
        if networks
            .iter()
            .any(|n| n.subnets.iter().any(|s| s.subnet.addr().is_ipv6()))
        {
            sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
    }
    for n in &networks {
        // 127.0.0.1:PORT may be DNATed into this bridge.
        let key = format!("net.ipv4.conf.{}.route_localnet", n.bridge);
        if std::path::Path::new("/proc/sys")
            .join(key.replace('.', "/"))
            .exists()
        {
            sysctl(&key, "1")?;
        }
    }
    // Two programs, two tables: side by side.
    std::thread::scope(|s| {
        let docker = s.spawn(|| docker_user(&table, &networks));
        let ours = nft(&ruleset(&table, &networks, &endpoints));
        let docker = docker
            .join()
            .unwrap_or_else(|_| Err(NetError::Firewall("iptables: the thread panicked".into())));
        ours.and(docker)
    })
}

/// Accept rules for our bridges in Docker's `DOCKER-USER`, where it exists.
fn docker_user(table: &str, networks: &[Network]) -> Result<(), NetError> {
    let Ok(listed) = Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output()
    else {
        return Ok(());
    };
    if !listed.status.success() {
        return Ok(());
    }
    let changes = docker_user_changes(table, networks, &String::from_utf8_lossy(&listed.stdout));
    if changes.is_empty() {
        return Ok(());
    }
    // All in one transaction (the rules to delete were just listed).
    let input = format!("*filter\n{}COMMIT\n", changes.concat());
    match feed("iptables-restore", &["-w", "--noflush"], &input) {
        Err(e) => Err(NetError::Firewall(format!("iptables-restore: {e}"))),
        Ok(Err(why)) => Err(NetError::Firewall(format!(
            "iptables-restore refused {}: {why}",
            input.trim_end()
        ))),
        Ok(Ok(())) => Ok(()),
    }
}

/// The `iptables-restore` lines that bring `DOCKER-USER` (as `iptables -S`
/// listed it) in step: our rules no network needs deleted, an accept rule
/// in each direction for each bridge of ours inserted where missing.
fn docker_user_changes(table: &str, networks: &[Network], listed: &str) -> Vec<String> {
    let tag = format!("\"{table}\"");
    let ours = |l: &&str| l.contains(&tag) || l.contains(&format!("--comment {table}"));
    let mut changes = Vec::new();
    for line in listed.lines().filter(ours) {
        let bridge = line
            .split_whitespace()
            .skip_while(|w| *w != "-i" && *w != "-o")
            .nth(1)
            .unwrap_or("");
        if !networks.iter().any(|n| n.bridge == bridge) {
            // `-A DOCKER-USER …` as listed, deleted by the same spec.
            if let Some(spec) = line.strip_prefix("-A DOCKER-USER ") {
                changes.push(format!("-D DOCKER-USER {spec}\n"));
            }
        }
    }
    for n in networks {
        for dir in ["-i", "-o"] {
            let has = listed
                .lines()
                .filter(ours)
                .any(|l| l.contains(&format!("{dir} {} ", n.bridge)));
            if !has {
                changes.push(format!(
                    "-I DOCKER-USER {dir} {} -m comment --comment {table} -j ACCEPT\n",
                    n.bridge
                ));
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::SubnetConfig;
    use crate::state::Port;

    fn net(name: &str, bridge: &str, subnet: &str, internal: bool) -> Network {
        Network {
            name: name.into(),
            id: "0".into(),
            bridge: bridge.into(),
            subnets: vec![SubnetConfig::new(subnet.parse().unwrap(), None, None, vec![]).unwrap()],
            internal,
            mtu: None,
            labels: Default::default(),
            created: "0".into(),
        }
    }

    #[test]
    fn docker_user_gets_our_bridges_and_loses_the_stale_ones() {
        let listed = "-N DOCKER-USER\n\
            -A DOCKER-USER -i stk-old -m comment --comment \"stack_t\" -j ACCEPT\n\
            -A DOCKER-USER -i stk-a -m comment --comment stack_t -j ACCEPT\n\
            -A DOCKER-USER -i stk-old -m comment --comment \"stack_other\" -j ACCEPT\n\
            -A DOCKER-USER -j RETURN\n";
        let nets = [net("a", "stk-a", "10.1.0.0/24", false)];
        assert_eq!(
            docker_user_changes("stack_t", &nets, listed),
            [
                "-D DOCKER-USER -i stk-old -m comment --comment \"stack_t\" -j ACCEPT\n",
                "-I DOCKER-USER -o stk-a -m comment --comment stack_t -j ACCEPT\n",
            ]
        );
        // In step: nothing to run.
        let listed = "-A DOCKER-USER -i stk-a -m comment --comment stack_t -j ACCEPT\n\
            -A DOCKER-USER -o stk-a -m comment --comment stack_t -j ACCEPT\n";
        assert!(docker_user_changes("stack_t", &nets, listed).is_empty());
    }

    #[test]
    fn the_ruleset_follows_the_records() {
        let nets = [
            net("front", "stk-a", "10.210.0.0/24", false),
            net("back", "stk-b", "10.210.1.0/24", true),
        ];
        let ep = Endpoint {
            container: "c".into(),
            name: "web".into(),
            aliases: vec![],
            network: "front".into(),
            ifname: "eth0".into(),
            host_veth: "vsc0".into(),
            mac: "02:42:0a:d2:00:02".into(),
            addresses: vec!["10.210.0.2".parse().unwrap()],
            netns: "/x".into(),
            ports: vec![
                Port {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                Port {
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 5353,
                    container_port: 53,
                    protocol: "udp".into(),
                },
                Port {
                    host_ip: Some("::1".parse().unwrap()),
                    host_port: 9,
                    container_port: 9,
                    protocol: "tcp".into(),
                },
            ],
        };
        let r = ruleset("stack_t", &nets, std::slice::from_ref(&ep));
        for want in [
            "iifname \"stk-a\" oifname != \"stk-a\" oifname { \"stk-a\", \"stk-b\" } drop",
            "iifname \"stk-b\" oifname != \"stk-b\" drop",
            "oifname \"stk-b\" iifname != \"stk-b\" drop",
            "iifname \"stk-b\" meta l4proto { tcp, udp } th dport 53 accept",
            "meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @ports4",
            "meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any4",
            "map any6 { type inet_proto . inet_service : ipv6_addr . inet_service; }",
            "add element inet stack_t any4 { tcp . 8080 : 10.210.0.2 . 80 }",
            "add element inet stack_t ports4 { 127.0.0.1 . udp . 5353 : 10.210.0.2 . 53 }",
            "ip saddr 10.210.0.0/24 oifname != \"stk-a\" masquerade",
            "oifname \"stk-a\" ip saddr 127.0.0.0/8 masquerade",
        ] {
            assert!(r.contains(want), "missing `{want}` in\n{r}");
        }
        // No masquerade out of an internal network; a v6 host address has no v4 target.
        assert!(
            !r.contains("ip saddr 10.210.1.0/24 oifname != \"stk-b\" masquerade"),
            "{r}"
        );
        assert!(!r.contains(". 9 :"), "{r}");
        // The chains are declared as they are, then flushed, never deleted.
        assert!(!r.contains("delete"), "{r}");
        let flush = r.find("flush table inet stack_t\n").expect("flushed");
        assert!(
            r[..flush].contains("chain forward { type filter hook forward"),
            "{r}"
        );
        assert!(!r[flush..].contains("hook"), "{r}");
        assert!(
            r[flush..].contains("flush map inet stack_t ports4\n"),
            "{r}"
        );
        // Published and withdrawn element by element, nothing else.
        assert_eq!(
            changes("stack_t", &[], std::slice::from_ref(&ep)),
            "delete element inet stack_t any4 { tcp . 8080 }\n\
             delete element inet stack_t ports4 { 127.0.0.1 . udp . 5353 }\n"
        );
        assert!(changes("stack_t", std::slice::from_ref(&ep), &[])
            .starts_with("add element inet stack_t any4 { tcp . 8080 : 10.210.0.2 . 80 }\n"));
        // Two addresses of one family: the first keeps the key.
        let mut two = ep;
        two.addresses.push("10.210.3.2".parse().unwrap());
        assert_eq!(
            elements(std::slice::from_ref(&two)).len(),
            2,
            "{:?}",
            elements(&[two])
        );
        assert_eq!(
            ruleset("stack_t", &[], &[]),
            "table inet stack_t {}\ndelete table inet stack_t\n"
        );
    }
}
