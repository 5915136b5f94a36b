//! Published ports: parsing `-p`, choosing random host ports, and the
//! pre-flight that refuses a taken port before anything is created, naming
//! who holds it (a container of ours, or a process of the host).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use crate::state::{Port, Store};
use crate::NetError;

/// `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`, as `docker run -p`
/// takes it; a range maps port by port. A missing host port is 0 (random).
pub fn parse(spec: &str) -> Result<Vec<Port>, String> {
    let bad = |why: &str| format!("invalid port `{spec}`: {why}");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) if p == "tcp" || p == "udp" => (r, p.to_string()),
        Some((_, p)) => return Err(bad(&format!("unknown protocol `{p}` (tcp or udp)"))),
        None => (spec, "tcp".to_string()),
    };
    // An IPv6 host address is in brackets.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
        (
            Some(IpAddr::V6(ip)),
            r.strip_prefix(':')
                .ok_or_else(|| bad("expected `:` after the address"))?,
        )
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            3 => (
                Some(
                    parts[0]
                        .parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| bad("not an IP address"))?,
                ),
                &rest[parts[0].len() + 1..],
            ),
            1 | 2 => (None, rest),
            _ => return Err(bad("too many `:`")),
        }
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad("not a port number"))?;
        let b: u16 = b.parse().map_err(|_| bad("not a port number"))?;
        if b < a {
            return Err(bad("a range must go up"));
        }
        Ok((a, b))
    };
    let (host, container) = match rest.split_once(':') {
        Some(("", c)) => ((0, 0), range(c)?),
        Some((h, c)) => (range(h)?, range(c)?),
        None => ((0, 0), range(rest)?),
    };
    if container.0 == 0 {
        return Err(bad("the container port cannot be 0"));
    }
    let n = container.1 - container.0;
    if host.0 != 0 && host.1 - host.0 != n {
        return Err(bad("the host and container ranges differ in length"));
    }
    Ok((0..=n)
        .map(|i| Port {
            host_ip,
            host_port: if host.0 == 0 { 0 } else { host.0 + i },
            container_port: container.0 + i,
            protocol: proto.clone(),
        })
        .collect())
}

fn overlaps(a: &Port, b: &Port) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && match (a.host_ip, b.host_ip) {
            (Some(x), Some(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
            _ => true,
        }
}

/// Whether the host lets us bind the port (so no process holds it). A
/// rootless engine's namespace is not the host's: there slirp4netns's bind
/// (`forward`) says whether the port is free, and why not.
fn bindable(p: &Port) -> bool {
    if stack_sys::userns::rootless() {
        return true;
    }
    let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, p.host_port);
    if p.protocol == "udp" {
        UdpSocket::bind(addr).is_ok()
    } else {
        TcpListener::bind(addr).is_ok()
    }
}

/// The process holding a port: `/proc/net/{tcp,udp}{,6}` give the socket's
/// inode, `/proc/*/fd` the process that has it open.
fn holder(p: &Port) -> Option<String> {
    let mut inodes = Vec::new();
    for file in [
        format!("/proc/net/{}", p.protocol),
        format!("/proc/net/{}6", p.protocol),
    ] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            // TCP: only listening sockets (state 0A).
            let listening = p.protocol == "udp" || f.get(3) == Some(&"0A");
            if port == Some(p.host_port) && listening {
                if let Some(i) = f.get(9) {
                    inodes.push(format!("socket:[{i}]"));
                }
            }
        }
    }
    for proc_ in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(fds) = std::fs::read_dir(proc_.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                let pid = proc_.file_name().to_string_lossy().to_string();
                let comm = std::fs::read_to_string(proc_.path().join("comm")).unwrap_or_default();
                return Some(format!("process {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// Fails when any port is published by one of our containers or held by a
/// host process; gives random host ports to those that asked for one.
pub fn check_free(store: &Store, ports: &mut [Port]) -> Result<(), NetError> {
    let published: Vec<(String, Port)> = store
        .all_endpoints()?
        .into_iter()
        .flat_map(|e| e.ports.into_iter().map(move |p| (e.name.clone(), p)))
        .collect();
    for i in 0..ports.len() {
        if ports[i].host_port == 0 {
            let candidate = (32768..61000u16).find(|&n| {
                let mut p = ports[i].clone();
                p.host_port = n;
                !published.iter().any(|(_, q)| overlaps(&p, q))
                    && !ports[..i].iter().any(|q| overlaps(&p, q))
                    && bindable(&p)
            });
            ports[i].host_port =
                candidate.ok_or_else(|| NetError::PortTaken("no free host port left".into()))?;
            continue;
        }
        let p = &ports[i];
        let name = format!(
            "{}:{}/{}",
            p.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
            p.host_port,
            p.protocol
        );
        if let Some((who, _)) = published.iter().find(|(_, q)| overlaps(p, q)) {
            return Err(NetError::PortTaken(format!(
                "port {name} is already published by container `{who}`"
            )));
        }
        if !bindable(p) {
            let who = holder(p).unwrap_or_else(|| "another program".into());
            return Err(NetError::PortTaken(format!(
                "port {name} is already in use by {who}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (Option<String>, u16, u16, String) {
        let p = parse(s).unwrap();
        assert_eq!(p.len(), 1, "{s}");
        let p = &p[0];
        (
            p.host_ip.map(|i| i.to_string()),
            p.host_port,
            p.container_port,
            p.protocol.clone(),
        )
    }

    #[test]
    fn docker_port_syntax() {
        assert_eq!(one("80"), (None, 0, 80, "tcp".into()));
        assert_eq!(one("8080:80"), (None, 8080, 80, "tcp".into()));
        assert_eq!(
            one("127.0.0.1:8080:80/udp"),
            (Some("127.0.0.1".into()), 8080, 80, "udp".into())
        );
        assert_eq!(
            one("127.0.0.1::80"),
            (Some("127.0.0.1".into()), 0, 80, "tcp".into())
        );
        assert_eq!(
            one("[::1]:8080:80"),
            (Some("::1".into()), 8080, 80, "tcp".into())
        );
        let r = parse("9000-9002:90-92").unwrap();
        assert_eq!(
            r.iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            [(9000, 90), (9001, 91), (9002, 92)]
        );
        for bad in [
            "80/sctp",
            "x:80",
            "9000-9001:80",
            "0",
            "1.2.3:1:2",
            "[::1:80",
            "90-80",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_publications() {
        let p = |ip: Option<&str>, port: u16, proto: &str| Port {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: port,
            container_port: 1,
            protocol: proto.into(),
        };
        assert!(overlaps(
            &p(None, 80, "tcp"),
            &p(Some("127.0.0.1"), 80, "tcp")
        ));
        assert!(!overlaps(&p(None, 80, "tcp"), &p(None, 80, "udp")));
        assert!(!overlaps(
            &p(Some("127.0.0.1"), 80, "tcp"),
            &p(Some("127.0.0.2"), 80, "tcp")
        ));
        assert!(overlaps(
            &p(Some("0.0.0.0"), 80, "tcp"),
            &p(Some("127.0.0.2"), 80, "tcp")
        ));
    }
}
