//! Published ports of a rootless engine. Its network namespace is not the
//! host's, so `slirp4netns` (started with the namespace: stack-runtime's
//! `userns`) listens on the host's ports and hands what comes in to
//! 10.0.2.100 inside, where the DNAT rules take it on as they take the
//! host's traffic for root. Its API (a unix socket, one JSON request per
//! connection) is kept in step with the endpoint records each time the
//! firewall is: what no record publishes goes, what is missing comes.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::{json, Value};

use crate::state::Endpoint;
use crate::NetError;

/// A port slirp4netns listens on: protocol, host address, port.
type Forward = (String, String, u16);

/// What the records publish, as slirp4netns's forwards (IPv4: its IPv6
/// is experimental and off).
fn wanted(endpoints: &[Endpoint]) -> BTreeSet<Forward> {
    endpoints
        .iter()
        .flat_map(|ep| &ep.ports)
        .filter_map(|p| {
            let addr = match p.host_ip {
                None => "0.0.0.0".to_string(),
                Some(ip) if ip.is_unspecified() => "0.0.0.0".to_string(),
                Some(IpAddr::V4(ip)) => ip.to_string(),
                Some(IpAddr::V6(_)) => return None,
            };
            Some((p.protocol.clone(), addr, p.host_port))
        })
        .collect()
}

fn call(socket: &Path, request: Value) -> Result<Value, NetError> {
    let fail = |e: std::io::Error| NetError::io(socket, e);
    let mut s = UnixStream::connect(socket).map_err(fail)?;
    s.write_all(request.to_string().as_bytes()).map_err(fail)?;
    s.shutdown(std::net::Shutdown::Write).map_err(fail)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(fail)?;
    let v: Value = serde_json::from_str(&answer).map_err(|e| NetError::Corrupt {
        path: socket.to_path_buf(),
        why: format!("slirp4netns answered `{answer}`: {e}"),
    })?;
    match v.get("error") {
        Some(e) => Err(NetError::Config(
            e.get("desc")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_string(),
        )),
        // (`list_hostfwd` answers its entries bare, the others in `return`.)
        None => Ok(v.get("return").cloned().unwrap_or(v)),
    }
}

/// The forwards slirp4netns has now.
fn listed(socket: &Path) -> Result<Vec<(Forward, Value)>, NetError> {
    let listed = call(socket, json!({"execute": "list_hostfwd"}))?;
    Ok(listed["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let f: Forward = (
                e["proto"].as_str().unwrap_or("").to_string(),
                e["host_addr"].as_str().unwrap_or("").to_string(),
                e["host_port"].as_u64().unwrap_or(0) as u16,
            );
            (f, e["id"].clone())
        })
        .collect())
}

/// Makes slirp4netns's forwards on the API at `socket` those `endpoints`
/// publish, as far as it can: a port it cannot listen on is left out here
/// (one container's port must not stop the others' rules), and [`check`]
/// tells the container that asked for it.
pub fn sync(socket: &Path, endpoints: &[Endpoint]) -> Result<(), NetError> {
    let want = wanted(endpoints);
    let mut have = BTreeSet::new();
    for (f, id) in listed(socket)? {
        if want.contains(&f) {
            have.insert(f);
        } else {
            call(
                socket,
                json!({"execute": "remove_hostfwd", "arguments": {"id": id}}),
            )?;
        }
    }
    for (proto, addr, port) in want.difference(&have) {
        let args =
            json!({"proto": proto, "host_addr": addr, "host_port": port, "guest_port": port});
        let _ = call(socket, json!({"execute": "add_hostfwd", "arguments": args}));
    }
    Ok(())
}

/// Forwards again every port the records of `store` publish (a new
/// slirp4netns knows none).
pub fn resync(store: &crate::Store) -> Result<(), NetError> {
    sync(&store.forwarder_socket(), &store.all_endpoints()?)
}

/// Fails, naming the first, if a port `endpoint` publishes has no forward
/// on the host.
pub fn check(socket: &Path, endpoint: &Endpoint) -> Result<(), NetError> {
    let have: BTreeSet<Forward> = listed(socket)?.into_iter().map(|(f, _)| f).collect();
    let missing = wanted(std::slice::from_ref(endpoint))
        .into_iter()
        .find(|f| !have.contains(f));
    let Some((proto, addr, port)) = missing else {
        return Ok(());
    };
    Err(NetError::PortTaken(format!(
        "cannot publish {addr}:{port}/{proto} on the host: slirp4netns could not listen there \
         (another program holds it{})",
        if port < 1024 {
            ", or, below 1024, the host keeps it for root: sysctl net.ipv4.ip_unprivileged_port_start"
        } else {
            ""
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwards_are_the_published_ipv4_ports() {
        let ep: Endpoint = serde_json::from_value(json!({
            "container": "c", "name": "web", "network": "n", "addresses": ["10.210.0.2"],
            "mac": "02:42:0a:d2:00:02", "ifname": "eth0", "host_veth": "v", "netns": "/x", "aliases": [],
            "ports": [
                {"host_port": 8080, "container_port": 80, "protocol": "tcp"},
                {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp"},
                {"host_ip": "::", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
                {"host_ip": "::1", "host_port": 9, "container_port": 9, "protocol": "tcp"}
            ]
        }))
        .unwrap();
        let w: Vec<Forward> = wanted(&[ep]).into_iter().collect();
        assert_eq!(
            w,
            [
                ("tcp".into(), "0.0.0.0".into(), 8080),
                ("udp".into(), "127.0.0.1".into(), 5353)
            ]
        );
    }
}
