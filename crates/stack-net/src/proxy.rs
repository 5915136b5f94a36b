//! Published TCP ports on the host's IPv6 loopback. The kernel never routes
//! a packet from `::1` out of the host (IPv6 has no `route_localnet`), so
//! DNAT cannot take `[::1]:PORT` into a bridge the way it takes
//! `127.0.0.1:PORT`; Docker runs docker-proxy for every port instead. Here
//! the network server process (see `dns::serve`) listens on `[::1]:PORT` for
//! the ports open to it, and copies each connection to the container.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};

use crate::state::Endpoint;

/// `(host port, container address)` for every published TCP port that
/// `[::1]` should answer: those open to every address, to `::` or to `::1`.
/// The container's IPv6 address where it has one, else its IPv4 one. Pure.
pub fn loopback_v6(endpoints: &[Endpoint]) -> Vec<(u16, SocketAddr)> {
    let mut out = Vec::new();
    for ep in endpoints {
        let Some(target) = ep
            .addresses
            .iter()
            .find(|a| a.is_ipv6())
            .or_else(|| ep.addresses.first())
        else {
            continue;
        };
        for p in ep.ports.iter().filter(|p| p.protocol == "tcp") {
            let open = match p.host_ip {
                None => true,
                Some(IpAddr::V6(h)) => h.is_unspecified() || h.is_loopback(),
                Some(IpAddr::V4(_)) => false,
            };
            if open {
                out.push((p.host_port, SocketAddr::new(*target, p.container_port)));
            }
        }
    }
    out.sort();
    out.dedup_by_key(|(port, _)| *port);
    out
}

/// Listens on `[::1]:port`; `None` where that cannot be had (no IPv6, or
/// taken: the caller tries again later).
pub async fn listen(port: u16) -> Option<TcpListener> {
    TcpListener::bind(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port))
        .await
        .ok()
}

/// Copies every connection on `listener` to `to`, both ways, until aborted.
pub async fn forward(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Port;

    fn ep(addresses: &[&str], ports: &[(Option<&str>, u16, &str)]) -> Endpoint {
        Endpoint {
            container: "c".into(),
            name: "web".into(),
            aliases: vec![],
            network: "n".into(),
            ifname: "eth0".into(),
            host_veth: "v".into(),
            mac: String::new(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            netns: "/x".into(),
            ports: ports
                .iter()
                .map(|(ip, port, proto)| Port {
                    host_ip: ip.map(|i| i.parse().unwrap()),
                    host_port: *port,
                    container_port: 80,
                    protocol: proto.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn loopback_v6_takes_tcp_ports_open_to_it() {
        let eps = [
            ep(
                &["10.0.0.2", "fd00::2"],
                &[
                    (None, 8080, "tcp"),
                    (Some("::1"), 8081, "tcp"),
                    (Some("::"), 8082, "tcp"),
                    (Some("127.0.0.1"), 8083, "tcp"),
                    (Some("fd00::9"), 8084, "tcp"),
                    (None, 8085, "udp"),
                ],
            ),
            ep(&["10.0.0.3"], &[(None, 9000, "tcp")]),
            ep(&[], &[(None, 9001, "tcp")]),
        ];
        let got: Vec<String> = loopback_v6(&eps)
            .iter()
            .map(|(p, to)| format!("{p}->{to}"))
            .collect();
        assert_eq!(
            got,
            [
                "8080->[fd00::2]:80",
                "8081->[fd00::2]:80",
                "8082->[fd00::2]:80",
                "9000->10.0.0.3:80"
            ]
        );
    }
}
