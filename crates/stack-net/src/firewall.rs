//! nftables rules of our own: masquerade out of each non-internal network,
//! isolation between networks, no way out of an internal one, and DNAT for
//! published ports. The whole table is computed from the records and
//! loaded in one transaction (over netlink: `nftables`) when networks come
//! or go; a
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

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::nftables::{self as nf, Batch, Expr, Hook};
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
const CHAINS: [(&str, Option<Hook>); 6] = [
    ("forward", base("filter", nf::FORWARD, 0)),
    ("input", base("filter", nf::INPUT, 0)),
    ("prerouting", base("nat", nf::PREROUTING, -100)),
    ("output", base("nat", nf::OUTPUT, -100)),
    ("ports", None),
    ("postrouting", base("nat", nf::POSTROUTING, 100)),
];

const fn base(kind: &'static str, num: u32, priority: i32) -> Option<Hook> {
    Some(Hook {
        kind,
        num,
        priority,
    })
}

/// `nft`'s numbers for the types of set keys and values (only for its
/// listings: the kernel keeps them for it), and how it numbers the type of
/// a concatenation.
const IPV4_ADDR: u32 = 7;
const IPV6_ADDR: u32 = 8;
const INET_PROTO: u32 = 12;
const INET_SERVICE: u32 = 13;
const IFNAME: u32 = 41;
fn concat(types: &[u32]) -> u32 {
    types.iter().fold(0, |t, n| t << 6 | n)
}

/// The set of our bridges, which traffic between networks is kept out of.
const BRIDGES: &str = "bridges";

/// The whole table, loaded in one transaction. Pure.
///
/// The table and its chains stay from one load to the next, only their
/// rules and elements are flushed and written anew: deleting a table takes
/// its base chains off their hooks, and each hook taken off waits out an
/// RCU grace period (a load took 17 to 25 ms here; this one a few).
pub fn ruleset(table: &str, networks: &[Network], endpoints: &[Endpoint]) -> Batch {
    let mut b = Batch::new();
    b.table(table);
    if networks.is_empty() {
        // Made then deleted: the load works whether or not it exists.
        b.delete_table(table);
        return b;
    }
    for (chain, hook) in CHAINS {
        b.chain(table, chain, hook);
    }
    b.set(table, BRIDGES, (IFNAME, 16), None, true);
    for m in MAPS {
        let (key, value) = m.types();
        b.set(table, m.name, key, Some(value), false);
    }
    b.flush_rules(table);
    b.flush_set(table, BRIDGES);
    for m in MAPS {
        b.flush_set(table, m.name);
    }
    let bridges: Vec<_> = networks
        .iter()
        .map(|n| (nf::ifname(&n.bridge), None))
        .collect();
    b.elements(table, BRIDGES, true, &bridges);
    let drop = Expr::Verdict {
        code: libc::NF_DROP,
        chain: None,
    };
    let accept = Expr::Verdict {
        code: libc::NF_ACCEPT,
        chain: None,
    };
    for n in networks {
        let br = &n.bridge;
        if n.internal {
            let text = format!("iifname \"{br}\" oifname != \"{br}\" drop");
            let e = [iface(IIF, EQ, br), iface(OIF, NEQ, br), vec![drop.clone()]];
            b.rule(table, "forward", &text, &e.concat());
            let text = format!("oifname \"{br}\" iifname != \"{br}\" drop");
            let e = [iface(OIF, EQ, br), iface(IIF, NEQ, br), vec![drop.clone()]];
            b.rule(table, "forward", &text, &e.concat());
        } else if networks.len() > 1 {
            let text = format!("iifname \"{br}\" oifname != \"{br}\" oifname @{BRIDGES} drop");
            let into_ours = vec![
                nf::meta(OIF),
                Expr::Lookup {
                    set: BRIDGES,
                    sreg: nf::REG1,
                    dreg: None,
                },
                drop.clone(),
            ];
            let e = [iface(IIF, EQ, br), iface(OIF, NEQ, br), into_ours];
            b.rule(table, "forward", &text, &e.concat());
        }
    }
    // An internal network reaches the host for DNS only.
    for n in networks.iter().filter(|n| n.internal) {
        let br = &n.bridge;
        for (name, proto) in [("tcp", libc::IPPROTO_TCP), ("udp", libc::IPPROTO_UDP)] {
            let text = format!("iifname \"{br}\" meta l4proto {name} th dport 53 accept");
            let dns = vec![
                nf::meta(L4PROTO),
                nf::cmp(EQ, vec![proto as u8]),
                dport(nf::REG1),
                nf::cmp(EQ, 53u16.to_be_bytes().to_vec()),
                accept.clone(),
            ];
            b.rule(table, "input", &text, &[iface(IIF, EQ, br), dns].concat());
        }
        let text = format!("iifname \"{br}\" drop");
        b.rule(
            table,
            "input",
            &text,
            &[iface(IIF, EQ, br), vec![drop.clone()]].concat(),
        );
    }
    // To the host's own addresses: to the published ports.
    let local = [
        Expr::FibDaddrType { dreg: nf::REG1 },
        nf::cmp(EQ, u32::from(libc::RTN_LOCAL).to_ne_bytes().to_vec()),
        Expr::Verdict {
            code: libc::NFT_JUMP,
            chain: Some("ports"),
        },
    ];
    b.rule(
        table,
        "prerouting",
        "fib daddr type local jump ports",
        &local,
    );
    // `::1` never leaves the host: the network server proxies it (`proxy`).
    let loopback6 = [
        family(V6).to_vec(),
        vec![
            Expr::Payload {
                base: NETWORK,
                offset: 24,
                len: 16,
                dreg: nf::REG1,
            },
            nf::cmp(EQ, std::net::Ipv6Addr::LOCALHOST.octets().to_vec()),
            Expr::Verdict {
                code: libc::NFT_RETURN,
                chain: None,
            },
        ],
    ];
    b.rule(table, "output", "ip6 daddr ::1 return", &loopback6.concat());
    b.rule(table, "output", "fib daddr type local jump ports", &local);
    // Published ports: looked up in maps that `publish` changes element by
    // element; per family, a port of one host address first, then a port
    // of every address (a NAT statement ends the chain). The key holds the
    // protocol, and only TCP, UDP and SCTP are ever in it.
    for m in MAPS {
        b.rule(table, "ports", &m.text(), &m.rule());
    }
    for n in networks {
        let br = &n.bridge;
        for sub in &n.subnets {
            let net = sub.subnet;
            if !n.internal {
                let text = format!(
                    "{} saddr {net} oifname != \"{br}\" masquerade",
                    fam_name(&net)
                );
                let e = [saddr(&net), iface(OIF, NEQ, br), vec![Expr::Masquerade]];
                b.rule(table, "postrouting", &text, &e.concat());
            }
            // A container reaching another through a published port of the host.
            let text = format!(
                "oifname \"{br}\" ct status dnat {} saddr {net} masquerade",
                fam_name(&net)
            );
            let dnatted = vec![
                Expr::Ct {
                    key: libc::NFT_CT_STATUS as u32,
                    dreg: nf::REG1,
                },
                Expr::Mask {
                    reg: nf::REG1,
                    mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
                },
                nf::cmp(NEQ, vec![0; 4]),
            ];
            let e = [
                iface(OIF, EQ, br),
                dnatted,
                saddr(&net),
                vec![Expr::Masquerade],
            ];
            b.rule(table, "postrouting", &text, &e.concat());
        }
        // The host's loopback reaching a published port.
        let text = format!("oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade");
        let lo: ipnet::IpNet = "127.0.0.0/8".parse().expect("a network");
        let e = [iface(OIF, EQ, br), saddr(&lo), vec![Expr::Masquerade]];
        b.rule(table, "postrouting", &text, &e.concat());
    }
    add_elements(&mut b, table, true, endpoints);
    b
}

const EQ: u32 = libc::NFT_CMP_EQ as u32;
const NEQ: u32 = libc::NFT_CMP_NEQ as u32;
const IIF: u32 = libc::NFT_META_IIFNAME as u32;
const OIF: u32 = libc::NFT_META_OIFNAME as u32;
const L4PROTO: u32 = libc::NFT_META_L4PROTO as u32;
const NETWORK: u32 = libc::NFT_PAYLOAD_NETWORK_HEADER as u32;
const V4: u8 = libc::NFPROTO_IPV4 as u8;
const V6: u8 = libc::NFPROTO_IPV6 as u8;
/// Conntrack's status bit of a connection whose destination was NATed.
const IPS_DST_NAT: u32 = 1 << 5;

/// `iifname`/`oifname` compared with `name`.
fn iface(key: u32, op: u32, name: &str) -> Vec<Expr<'static>> {
    vec![nf::meta(key), nf::cmp(op, nf::ifname(name))]
}

/// The packet is of this family (`NFPROTO_IPV4`, `NFPROTO_IPV6`).
fn family(nfproto: u8) -> [Expr<'static>; 2] {
    [
        nf::meta(libc::NFT_META_NFPROTO as u32),
        nf::cmp(EQ, vec![nfproto]),
    ]
}

/// The destination port (TCP, UDP, SCTP) into a register.
fn dport(dreg: u32) -> Expr<'static> {
    Expr::Payload {
        base: libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32,
        offset: 2,
        len: 2,
        dreg,
    }
}

fn fam_name(net: &ipnet::IpNet) -> &'static str {
    match net {
        ipnet::IpNet::V4(_) => "ip",
        ipnet::IpNet::V6(_) => "ip6",
    }
}

/// The source address is in `net`, as `nft` says it: the prefix's bytes
/// compared where it ends on a byte, else the whole address masked.
fn saddr(net: &ipnet::IpNet) -> Vec<Expr<'static>> {
    let (nfproto, offset, addr, mask) = match net {
        ipnet::IpNet::V4(n) => (
            V4,
            12,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
        ipnet::IpNet::V6(n) => (
            V6,
            8,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
    };
    let mut e = family(nfproto).to_vec();
    let bits = usize::from(net.prefix_len());
    if bits == 0 {
        return e;
    }
    let len = if bits % 8 == 0 { bits / 8 } else { addr.len() };
    e.push(Expr::Payload {
        base: NETWORK,
        offset,
        len: len as u32,
        dreg: nf::REG1,
    });
    if bits % 8 != 0 {
        e.push(Expr::Mask {
            reg: nf::REG1,
            mask,
        });
    }
    e.push(nf::cmp(EQ, addr[..len].to_vec()));
    e
}

/// A map of published ports: its name, its family, and whether a port is
/// of every address of the host (else of one, in the key). Plain hash
/// maps: no interval flags, which concatenations need a recent kernel for.
struct PortMap {
    name: &'static str,
    v6: bool,
    any: bool,
}

const MAPS: [PortMap; 4] = [
    PortMap {
        name: "ports4",
        v6: false,
        any: false,
    },
    PortMap {
        name: "any4",
        v6: false,
        any: true,
    },
    PortMap {
        name: "ports6",
        v6: true,
        any: false,
    },
    PortMap {
        name: "any6",
        v6: true,
        any: true,
    },
];

impl PortMap {
    fn addr(&self) -> (u32, u32) {
        match self.v6 {
            false => (IPV4_ADDR, 4),
            true => (IPV6_ADDR, 16),
        }
    }

    /// Key and value: type and length (each part padded to 4 bytes).
    fn types(&self) -> ((u32, u32), (u32, u32)) {
        let (addr, len) = self.addr();
        let key = match self.any {
            true => (concat(&[INET_PROTO, INET_SERVICE]), 8),
            false => (concat(&[addr, INET_PROTO, INET_SERVICE]), len + 8),
        };
        (key, (concat(&[addr, INET_SERVICE]), len + 4))
    }

    fn text(&self) -> String {
        let fam = if self.v6 { "ip6" } else { "ip" };
        match self.any {
            true => format!(
                "meta nfproto {} meta l4proto . th dport dnat {fam} to map @{}",
                if self.v6 { "ipv6" } else { "ipv4" },
                self.name
            ),
            false => format!(
                "dnat {fam} to {fam} daddr . meta l4proto . th dport map @{}",
                self.name
            ),
        }
    }

    /// `dnat` to what the map has for the packet's key. The key's parts go
    /// to consecutive 4-byte words from the first register (an address
    /// takes one or four); the value comes back there, its port after the
    /// address.
    fn rule(&self) -> Vec<Expr<'static>> {
        let (nfproto, len) = if self.v6 { (V6, 16) } else { (V4, 4) };
        let mut e = family(nfproto).to_vec();
        let mut at = 0;
        if !self.any {
            let offset = if self.v6 { 24 } else { 16 };
            e.push(Expr::Payload {
                base: NETWORK,
                offset,
                len,
                dreg: nf::word(0),
            });
            at = len / 4;
        }
        e.push(Expr::Meta {
            key: L4PROTO,
            dreg: nf::word(at),
        });
        e.push(dport(nf::word(at + 1)));
        e.push(Expr::Lookup {
            set: self.name,
            sreg: nf::word(0),
            dreg: Some(nf::word(0)),
        });
        e.push(Expr::Dnat {
            family: u32::from(nfproto),
            addr: nf::word(0),
            port: nf::word(len / 4),
        });
        e
    }
}

/// A protocol's number, for the protocols a port is published with.
fn proto(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(libc::IPPROTO_TCP as u8),
        "udp" => Some(libc::IPPROTO_UDP as u8),
        "sctp" => Some(libc::IPPROTO_SCTP as u8),
        _ => None,
    }
}

/// Bytes of a map's key or value: each part padded to 4 bytes.
fn packed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An element of a port map: the map, key and value.
type Element = (&'static str, Vec<u8>, Vec<u8>);

/// The endpoints' published ports as elements of our maps: the map, the
/// key (host address . protocol . host port, or protocol . port for every
/// address), the value (container address . port). A port published on
/// an address of one family has no element in the other's maps. A key
/// taken already keeps its first value, as the first of the rules that
/// stood for them did (an endpoint with two subnets of one family, ports
/// that a rootless engine's forwarder brings to one address).
fn elements(endpoints: &[Endpoint]) -> Vec<Element> {
    let mut out: Vec<Element> = Vec::new();
    for ep in endpoints {
        for p in &ep.ports {
            let Some(proto) = proto(&p.protocol) else {
                continue;
            };
            let port = p.host_port.to_be_bytes();
            for target in &ep.addresses {
                let v6 = usize::from(target.is_ipv6()) * 2;
                let (map, key) = match p.host_ip {
                    Some(h) if h.is_ipv4() != target.is_ipv4() => continue,
                    Some(h) if !h.is_unspecified() => {
                        (MAPS[v6].name, packed(&[&octets(&h), &[proto], &port]))
                    }
                    _ => (MAPS[v6 + 1].name, packed(&[&[proto], &port])),
                };
                if out.iter().any(|(m, k, _)| *m == map && *k == key) {
                    continue;
                }
                let value = packed(&[&octets(target), &p.container_port.to_be_bytes()]);
                out.push((map, key, value));
            }
        }
    }
    out
}

/// The endpoints' elements added to (or deleted from) our maps: a message
/// per map.
fn add_elements(b: &mut Batch, table: &str, add: bool, endpoints: &[Endpoint]) {
    let all = elements(endpoints);
    for m in MAPS {
        let mine: Vec<_> = all
            .iter()
            .filter(|(map, ..)| *map == m.name)
            .map(|(_, k, v)| (k.clone(), add.then(|| v.clone())))
            .collect();
        if !mine.is_empty() {
            b.elements(table, m.name, add, &mine);
        }
    }
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
    nft(changes).or_else(|_| apply(store, false))
}

/// `publish`'s transaction. Pure.
fn changes(table: &str, added: &[Endpoint], removed: &[Endpoint]) -> Batch {
    let mut b = Batch::new();
    add_elements(&mut b, table, false, removed);
    add_elements(&mut b, table, true, added);
    b
}

fn nft(batch: Batch) -> Result<(), NetError> {
    nf::commit(batch).map_err(NetError::Firewall)
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
        return nft(ruleset(&table, &networks, &endpoints));
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
    nft(ruleset(&table, &networks, &endpoints))?;
    docker_user(&table, &networks)
}

/// Docker's chain, `DOCKER-USER`: in iptables-nft's table `ip filter`,
/// or iptables-legacy's.
const DOCKER_USER: &str = "DOCKER-USER";

/// Accept rules for our bridges in Docker's `DOCKER-USER`, where it
/// exists. iptables-nft's (Docker's own choice on today's hosts) over our
/// netlink socket, as `iptables` would write them; iptables-legacy's by
/// `iptables-restore`.
fn docker_user(table: &str, networks: &[Network]) -> Result<(), NetError> {
    // A rule listed a moment ago may be gone (Docker restarting): then
    // listed again.
    let mut again = true;
    loop {
        let listed = nf::rules(V4, "filter", DOCKER_USER).map_err(NetError::Firewall)?;
        let Some(listed) = listed else {
            return match legacy_filter() {
                true => docker_user_legacy(table, networks),
                false => Ok(()),
            };
        };
        match nft(docker_user_batch(table, networks, &listed)) {
            Err(_) if std::mem::take(&mut again) => continue,
            done => return done,
        }
    }
}

/// Whether iptables-legacy has a `filter` table (the kernel's x_tables).
fn legacy_filter() -> bool {
    std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|t| t.lines().any(|l| l == "filter"))
}

/// One accept rule of a store's in `DOCKER-USER`: its direction (`-i` or
/// `-o`), its bridge, and what deletes it (a handle, or `iptables`' spec).
#[derive(Debug, PartialEq)]
struct Accept<K> {
    dir: &'static str,
    bridge: String,
    key: K,
}

/// What brings a store's rules in `DOCKER-USER` in step with its
/// networks: the rules of `ours` that no network needs, and the accept
/// rules (direction, bridge) missing.
fn docker_user_changes<'a, K>(
    networks: &'a [Network],
    ours: &'a [Accept<K>],
) -> (Vec<&'a Accept<K>>, Vec<(&'static str, &'a str)>) {
    let stale = ours
        .iter()
        .filter(|a| !networks.iter().any(|n| n.bridge == a.bridge))
        .collect();
    let missing = networks
        .iter()
        .flat_map(|n| ["-i", "-o"].map(|dir| (dir, n.bridge.as_str())))
        .filter(|(dir, bridge)| !ours.iter().any(|a| a.dir == *dir && a.bridge == *bridge))
        .collect();
    (stale, missing)
}

/// The rule `r` of `DOCKER-USER` as one of the store's accept rules (its
/// comment is the table's name), if it is.
fn ours(table: &str, r: &nf::Listed) -> Option<Accept<u64>> {
    let comment = r.attr("match", 3)?;
    if comment.split(|b| *b == 0).next()? != table.as_bytes() {
        return None;
    }
    let dir = match r.attr("meta", 2)? {
        k if k == IIF.to_be_bytes() => "-i",
        k if k == OIF.to_be_bytes() => "-o",
        _ => return None,
    };
    let name = r.value("cmp", 3)?.split(|b| *b == 0).next()?;
    Some(Accept {
        dir,
        bridge: String::from_utf8_lossy(name).into_owned(),
        key: r.handle,
    })
}

/// The batch that brings `DOCKER-USER` (listed as `listed`) in step.
fn docker_user_batch(table: &str, networks: &[Network], listed: &[nf::Listed]) -> Batch {
    let ours: Vec<Accept<u64>> = listed.iter().filter_map(|r| ours(table, r)).collect();
    let (stale, missing) = docker_user_changes(networks, &ours);
    let mut b = Batch::of(V4);
    for a in stale {
        let text = format!("{} {} {table}", a.dir, a.bridge);
        b.delete_rule("filter", DOCKER_USER, a.key, &text);
    }
    for (dir, bridge) in missing {
        b.insert_rule(
            "filter",
            DOCKER_USER,
            &format!("-I DOCKER-USER {dir} {bridge} -m comment --comment {table} -j ACCEPT"),
            &accept_rule(table, dir, bridge),
        );
    }
    b
}

/// `-i`/`-o BRIDGE -m comment --comment TABLE -j ACCEPT` as iptables-nft
/// writes it: the name compared with its NUL, xt_comment's 256 bytes, a
/// counter.
fn accept_rule(table: &str, dir: &str, bridge: &str) -> Vec<Expr<'static>> {
    let mut name = bridge.as_bytes().to_vec();
    name.push(0);
    let mut comment = table.as_bytes().to_vec();
    comment.resize(256, 0);
    vec![
        nf::meta(if dir == "-i" { IIF } else { OIF }),
        nf::cmp(EQ, name),
        Expr::Match {
            name: "comment",
            rev: 0,
            info: comment,
        },
        Expr::Counter,
        Expr::Verdict {
            code: libc::NF_ACCEPT,
            chain: None,
        },
    ]
}

/// The same with iptables-legacy: listed by `iptables -S`, changed by one
/// `iptables-restore`.
fn docker_user_legacy(table: &str, networks: &[Network]) -> Result<(), NetError> {
    let Ok(listed) = Command::new("iptables")
        .args(["-w", "-S", DOCKER_USER])
        .output()
    else {
        return Ok(());
    };
    if !listed.status.success() {
        return Ok(());
    }
    let input = docker_user_restore(table, networks, &String::from_utf8_lossy(&listed.stdout));
    if input.is_empty() {
        return Ok(());
    }
    match feed("iptables-restore", &["-w", "--noflush"], &input) {
        Err(e) => Err(NetError::Firewall(format!("iptables-restore: {e}"))),
        Ok(Err(why)) => Err(NetError::Firewall(format!(
            "iptables-restore refused {}: {why}",
            input.trim_end()
        ))),
        Ok(Ok(())) => Ok(()),
    }
}

/// The `iptables-restore` input (one transaction) that brings
/// `DOCKER-USER`, as `iptables -S` listed it, in step; empty if it is.
fn docker_user_restore(table: &str, networks: &[Network], listed: &str) -> String {
    let tag = format!("\"{table}\"");
    let ours: Vec<Accept<&str>> = listed
        .lines()
        .filter(|l| l.contains(&tag) || l.contains(&format!("--comment {table}")))
        .filter_map(|line| {
            let mut words = line
                .split_whitespace()
                .skip_while(|w| *w != "-i" && *w != "-o");
            let dir = if words.next()? == "-i" { "-i" } else { "-o" };
            Some(Accept {
                dir,
                bridge: words.next()?.to_string(),
                key: line.strip_prefix("-A DOCKER-USER ")?,
            })
        })
        .collect();
    let (stale, missing) = docker_user_changes(networks, &ours);
    if stale.is_empty() && missing.is_empty() {
        return String::new();
    }
    let mut input = String::from("*filter\n");
    for a in stale {
        input += &format!("-D DOCKER-USER {}\n", a.key);
    }
    for (dir, bridge) in missing {
        input += &format!("-I DOCKER-USER {dir} {bridge} -m comment --comment {table} -j ACCEPT\n");
    }
    input + "COMMIT\n"
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
            docker_user_restore("stack_t", &nets, listed),
            "*filter\n\
             -D DOCKER-USER -i stk-old -m comment --comment \"stack_t\" -j ACCEPT\n\
             -I DOCKER-USER -o stk-a -m comment --comment stack_t -j ACCEPT\n\
             COMMIT\n"
        );
        // In step: nothing to run.
        let listed = "-A DOCKER-USER -i stk-a -m comment --comment stack_t -j ACCEPT\n\
            -A DOCKER-USER -o stk-a -m comment --comment stack_t -j ACCEPT\n";
        assert!(docker_user_restore("stack_t", &nets, listed).is_empty());
    }

    /// What `iptables -S DOCKER-USER` lists, run by this thread.
    fn docker_user_listed() -> String {
        let out = Command::new("iptables")
            .args(["-w", "-S", DOCKER_USER])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn docker_user_of_iptables_nft_is_kept_over_netlink_as_iptables_would() {
        let nft_backed = Command::new("iptables")
            .arg("-V")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nf_tables"));
        if !nix::unistd::geteuid().is_root() || !nft_backed {
            eprintln!("skipped: needs root and iptables-nft");
            return;
        }
        let (before, during, after) = in_netns(|conn| {
            // Docker's chain, as Docker makes it; a rule of another store
            // and one of ours that no network needs any more.
            let iptables = |args: &[&str]| {
                let out = Command::new("iptables")
                    .args(args)
                    .output()
                    .expect("iptables");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            iptables(&["-w", "-N", DOCKER_USER]);
            iptables(&["-w", "-A", DOCKER_USER, "-j", "RETURN"]);
            for (bridge, tag) in [("stk-other", "stack_o"), ("stk-old", "stack_t")] {
                iptables(&[
                    "-w",
                    "-I",
                    DOCKER_USER,
                    "-i",
                    bridge,
                    "-m",
                    "comment",
                    "--comment",
                    tag,
                    "-j",
                    "ACCEPT",
                ]);
            }
            let before = docker_user_listed();
            let sync = |nets: &[Network]| {
                let listed = conn
                    .rules(V4, "filter", DOCKER_USER)
                    .expect("listed")
                    .expect("the chain is there");
                conn.commit(docker_user_batch("stack_t", nets, &listed))
                    .expect("applied");
            };
            let nets = [
                net("a", "stk-a", "10.1.0.0/24", false),
                net("b", "br-b", "10.2.0.0/24", false),
            ];
            sync(&nets);
            let during = docker_user_listed();
            // In step: the same batch finds nothing to do.
            let listed = conn.rules(V4, "filter", DOCKER_USER).unwrap().unwrap();
            assert!(docker_user_batch("stack_t", &nets, &listed).is_empty());
            sync(&[]);
            (before, during, docker_user_listed())
        });
        assert!(
            before.contains("-A DOCKER-USER -i stk-old -m comment --comment stack_t -j ACCEPT"),
            "{before}"
        );
        // iptables reads ours back as it writes its own: the same lines.
        assert_eq!(
            during,
            "-N DOCKER-USER\n\
             -A DOCKER-USER -o br-b -m comment --comment stack_t -j ACCEPT\n\
             -A DOCKER-USER -i br-b -m comment --comment stack_t -j ACCEPT\n\
             -A DOCKER-USER -o stk-a -m comment --comment stack_t -j ACCEPT\n\
             -A DOCKER-USER -i stk-a -m comment --comment stack_t -j ACCEPT\n\
             -A DOCKER-USER -i stk-other -m comment --comment stack_o -j ACCEPT\n\
             -A DOCKER-USER -j RETURN\n"
        );
        assert_eq!(
            after,
            "-N DOCKER-USER\n\
             -A DOCKER-USER -i stk-other -m comment --comment stack_o -j ACCEPT\n\
             -A DOCKER-USER -j RETURN\n"
        );
    }

    #[test]
    fn no_docker_user_chain_is_none_not_an_error() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let got = in_netns(|conn| {
            conn.rules(V4, "filter", DOCKER_USER)
                .map_err(|e| e.to_string())
        });
        assert_eq!(got, Ok(None));
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            container: "c".into(),
            name: "web".into(),
            aliases: vec![],
            network: "front".into(),
            ifname: "eth0".into(),
            host_veth: "vsc0".into(),
            mac: "02:42:0a:d2:00:02".into(),
            addresses: vec!["10.210.0.2".parse().unwrap(), "fd00:d2::2".parse().unwrap()],
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
                    protocol: "sctp".into(),
                },
            ],
        }
    }

    #[test]
    fn published_ports_are_elements_of_their_family_and_address() {
        let ep = endpoint();
        let got = elements(std::slice::from_ref(&ep));
        let tcp = libc::IPPROTO_TCP as u8;
        assert_eq!(
            got[0],
            (
                "any4",
                vec![tcp, 0, 0, 0, 0x1f, 0x90, 0, 0],
                vec![10, 210, 0, 2, 0, 80, 0, 0]
            )
        );
        let maps: Vec<&str> = got.iter().map(|e| e.0).collect();
        assert_eq!(maps, ["any4", "any6", "ports4", "ports6"]);
        // Two addresses of one family: the first keeps the key.
        let mut two = ep;
        two.addresses.push("10.210.3.2".parse().unwrap());
        assert_eq!(elements(std::slice::from_ref(&two)), got);
        // A protocol without ports has no element.
        two.ports[0].protocol = "icmp".into();
        assert_eq!(elements(&[two]).len(), 2);
    }

    /// What `nft` lists after the batches, in a network namespace of the
    /// test's own; and what the kernel said of the last, if it refused it.
    fn listed(steps: Vec<Batch>, refused: Batch) -> (String, String) {
        in_netns(move |conn| {
            for b in steps {
                conn.commit(b).expect("applied");
            }
            let why = conn.commit(refused).expect_err("refused").to_string();
            (nft(&["list", "ruleset"]), why)
        })
    }

    /// `f` on a socket in a network namespace of its own (a thread's).
    fn in_netns<T: Send + 'static>(f: impl FnOnce(&nf::Conn) -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
            f(&nf::Conn::open().expect("a netlink socket"))
        })
        .join()
        .expect("the netns thread")
    }

    /// What `nft` says, run by this thread (so in its network namespace).
    fn nft(args: &[&str]) -> String {
        let out = Command::new("nft").args(args).output().expect("nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("text")
    }

    #[test]
    fn thousands_of_ports_and_refusals_in_a_row_on_one_socket() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: nf_tables needs root");
            return;
        }
        let nets = [net("front", "stk-a", "10.210.0.0/24", false)];
        let mut many = endpoint();
        many.ports = (20000..23000)
            .map(|p| Port {
                host_ip: None,
                host_port: p,
                container_port: 80,
                protocol: "tcp".into(),
            })
            .collect();
        let (listed, answers) = in_netns(move |conn| {
            let eps = std::slice::from_ref(&many);
            // 3000 elements per family: lists split under 64 KiB each.
            conn.commit(ruleset("stack_t", &nets, eps))
                .expect("applied");
            let listed = nft(&["list", "map", "inet", "stack_t", "any6"]);
            // Refused, applied, refused: each answer is its own batch's.
            let mut answers = Vec::new();
            for _ in 0..2 {
                let missing = changes("stack_t", &[], &[endpoint()]);
                answers.push(conn.commit(missing).map_err(|e| e.to_string()));
                answers.push(
                    conn.commit(ruleset("stack_t", &nets, eps))
                        .map_err(|e| e.to_string()),
                );
            }
            (listed, answers)
        });
        assert_eq!(
            listed.matches(" : fd00:d2::2 . 80").count(),
            3000,
            "{listed}"
        );
        for (i, a) in answers.iter().enumerate() {
            match i % 2 {
                0 => assert!(
                    a.as_ref()
                        .is_err_and(|e| e.contains("of set ports4 of table stack_t: No such file")),
                    "{i}: {a:?}"
                ),
                _ => assert!(a.is_ok(), "{i}: {a:?}"),
            }
        }
    }

    #[test]
    fn the_kernel_takes_the_ruleset_and_nft_reads_it_back() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: nf_tables needs root");
            return;
        }
        let mut back = net("back", "stk-b", "10.210.1.0/24", true);
        back.subnets
            .push(SubnetConfig::new("fd00:d2::/60".parse().unwrap(), None, None, vec![]).unwrap());
        let nets = [net("front", "stk-a", "10.210.0.0/20", false), back];
        let ep = endpoint();
        let eps = std::slice::from_ref(&ep);
        // One port of its that is not there, beside those that are.
        let mut other = endpoint();
        other.ports.push(Port {
            host_ip: None,
            host_port: 9999,
            container_port: 1,
            protocol: "tcp".into(),
        });
        // Loaded twice (the second flushes what the first made), then the
        // endpoint's ports withdrawn and published again.
        let (got, why) = listed(
            vec![
                ruleset("stack_t", &nets, eps),
                ruleset("stack_t", &nets, eps),
                changes("stack_t", &[], eps),
                changes("stack_t", eps, &[]),
            ],
            changes("stack_t", &[], &[other.clone()]),
        );
        // What the refused batch would have deleted is all still there.
        assert_eq!(got, LISTED, "{got}");
        assert_eq!(
            why,
            "the kernel refused deleting elements (2) of set any4 of table stack_t: \
             No such file or directory (os error 2)"
        );
        // The last network gone, the table goes.
        let (got, why) = listed(
            vec![ruleset("stack_t", &nets, eps), ruleset("stack_t", &[], &[])],
            changes("stack_t", eps, &[]),
        );
        assert_eq!(got, "");
        assert!(
            why.contains("of set ports4 of table stack_t: No such file"),
            "{why}"
        );
    }

    /// `nft list ruleset` of the test's table.
    const LISTED: &str = "\
table inet stack_t {
	set bridges {
		type ifname
		elements = { \"stk-a\",
			     \"stk-b\" }
	}

	map ports4 {
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		elements = { 127.0.0.1 . udp . 5353 : 10.210.0.2 . 53 }
	}

	map any4 {
		type inet_proto . inet_service : ipv4_addr . inet_service
		elements = { tcp . 8080 : 10.210.0.2 . 80 }
	}

	map ports6 {
		type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service
		elements = { ::1 . sctp . 9 : fd00:d2::2 . 9 }
	}

	map any6 {
		type inet_proto . inet_service : ipv6_addr . inet_service
		elements = { tcp . 8080 : fd00:d2::2 . 80 }
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname \"stk-a\" oifname != \"stk-a\" oifname @bridges drop
		iifname \"stk-b\" oifname != \"stk-b\" drop
		oifname \"stk-b\" iifname != \"stk-b\" drop
	}

	chain input {
		type filter hook input priority filter; policy accept;
		iifname \"stk-b\" tcp dport 53 accept
		iifname \"stk-b\" udp dport 53 accept
		iifname \"stk-b\" drop
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump ports
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip6 daddr ::1 return
		fib daddr type local jump ports
	}

	chain ports {
		dnat ip to ip daddr . meta l4proto . th dport map @ports4
		meta nfproto ipv4 dnat ip to meta l4proto . th dport map @any4
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @any6
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.210.0.0/20 oifname != \"stk-a\" masquerade
		oifname \"stk-a\" ct status dnat ip saddr 10.210.0.0/20 masquerade
		oifname \"stk-a\" ip saddr 127.0.0.0/8 masquerade
		oifname \"stk-b\" ct status dnat ip saddr 10.210.1.0/24 masquerade
		oifname \"stk-b\" ct status dnat ip6 saddr fd00:d2::/60 masquerade
		oifname \"stk-b\" ip saddr 127.0.0.0/8 masquerade
	}
}
";
}
