//! Parsers of the short string syntaxes: ports, volumes, devices.

use crate::diag::{Diagnostic, Span};
use crate::node::{Key, Map, Node};

fn put(m: &mut Map, k: &str, v: Node) {
    m.insert(
        Key {
            name: k.to_string(),
            span: v.span.clone(),
        },
        v,
    );
}

/// `[HOST_IP:][PUBLISHED[-RANGE]:]TARGET[-RANGE][/PROTOCOL]` to long-syntax ports.
pub fn ports(spec: &str, span: &Span) -> Result<Vec<Node>, Diagnostic> {
    let bad = |why: &str| Diagnostic::error(span, format!("invalid port `{spec}`: {why}"));
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) if !p.is_empty() => (r, p),
        Some(_) => return Err(bad("empty protocol")),
        None => (spec, "tcp"),
    };
    if !["tcp", "udp", "sctp"].contains(&protocol) {
        return Err(bad("protocol must be tcp, udp or sctp"));
    }
    // An IPv6 host address is written in brackets.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        (
            Some(ip.to_string()),
            after
                .strip_prefix(':')
                .ok_or_else(|| bad("expected `:` after the address"))?,
        )
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            _ => {
                // A bare IPv6 address without brackets: the last two fields are the ports.
                let idx = rest
                    .rfind(':')
                    .and_then(|i| rest[..i].rfind(':'))
                    .ok_or_else(|| bad("too many `:`"))?;
                (Some(rest[..idx].to_string()), &rest[idx + 1..])
            }
        }
    };
    if let Some(ip) = &host_ip {
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(&format!("`{ip}` is not an IP address")));
        }
    }
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p), t),
        None => (None, rest),
    };
    let targets = range(target).ok_or_else(|| bad("invalid container port"))?;
    let published_range = match published {
        Some("") | None => None,
        Some(p) => Some(range(p).ok_or_else(|| bad("invalid published port"))?),
    };
    let mut out = Vec::new();
    let count = targets.1 - targets.0 + 1;
    for i in 0..count {
        let mut m = Map::default();
        put(&mut m, "mode", Node::string("ingress", span.clone()));
        if let Some(ip) = &host_ip {
            if !ip.is_empty() {
                put(&mut m, "host_ip", Node::string(ip.clone(), span.clone()));
            }
        }
        put(
            &mut m,
            "target",
            Node::plain((targets.0 + i).to_string(), span.clone()),
        );
        match published_range {
            None => {}
            Some((a, b)) if count == 1 => {
                let p = if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                };
                put(&mut m, "published", Node::string(p, span.clone()));
            }
            Some((a, b)) => {
                if b - a + 1 != count {
                    return Err(bad("port ranges don't match in length"));
                }
                put(
                    &mut m,
                    "published",
                    Node::string((a + i).to_string(), span.clone()),
                );
            }
        }
        put(&mut m, "protocol", Node::string(protocol, span.clone()));
        out.push(Node::map(m, span.clone()));
    }
    Ok(out)
}

fn range(s: &str) -> Option<(u32, u32)> {
    let port = |p: &str| p.parse::<u32>().ok().filter(|n| *n <= 65535);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

const PROPAGATION: [&str; 6] = [
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
];

/// `[SOURCE:]TARGET[:MODE]` to a long-syntax volume.
pub fn volume(spec: &str, span: &Span) -> Result<Node, Diagnostic> {
    let bad = |why: &str| Diagnostic::error(span, format!("invalid volume `{spec}`: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(bad("too many `:`")),
    };
    if target.is_empty() {
        return Err(bad("empty target"));
    }
    let is_path = source.starts_with(['.', '/', '~']);
    let kind = if source.is_empty() {
        "volume"
    } else if is_path {
        "bind"
    } else {
        "volume"
    };
    let mut m = Map::default();
    put(&mut m, "type", Node::string(kind, span.clone()));
    if !source.is_empty() {
        put(&mut m, "source", Node::string(source, span.clone()));
    }
    put(&mut m, "target", Node::string(target, span.clone()));
    let mut bind = Map::default();
    let mut vol = Map::default();
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => put(&mut m, "read_only", Node::plain("true", span.clone())),
            "rw" => {}
            "z" | "Z" => put(&mut bind, "selinux", Node::string(opt, span.clone())),
            "nocopy" => put(&mut vol, "nocopy", Node::plain("true", span.clone())),
            p if PROPAGATION.contains(&p) => {
                put(&mut bind, "propagation", Node::string(p, span.clone()))
            }
            "cached" | "delegated" | "consistent" => {
                put(&mut m, "consistency", Node::string(opt, span.clone()))
            }
            other => return Err(bad(&format!("unknown mode `{other}`"))),
        }
    }
    if kind == "bind" {
        put(
            &mut bind,
            "create_host_path",
            Node::plain("true", span.clone()),
        );
    }
    if !bind.entries.is_empty() {
        if kind != "bind" {
            return Err(bad("bind options on a volume"));
        }
        put(&mut m, "bind", Node::map(bind, span.clone()));
    }
    // Like compose-go, a short-syntax volume always carries its (maybe empty) options.
    if kind == "volume" {
        put(&mut m, "volume", Node::map(vol, span.clone()));
    }
    Ok(Node::map(m, span.clone()))
}

/// `HOST[:CONTAINER[:PERMISSIONS]]` to a long-syntax device.
pub fn device(spec: &str, span: &Span) -> Node {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, perms) = match parts.as_slice() {
        [s] => (*s, *s, "rwm"),
        [s, t] if t.chars().all(|c| "rwm".contains(c)) && !t.starts_with('/') => (*s, *s, *t),
        [s, t] => (*s, *t, "rwm"),
        [s, t, p, ..] => (*s, *t, *p),
        [] => ("", "", "rwm"),
    };
    let mut m = Map::default();
    put(&mut m, "source", Node::string(source, span.clone()));
    put(&mut m, "target", Node::string(target, span.clone()));
    put(&mut m, "permissions", Node::string(perms, span.clone()));
    Node::map(m, span.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        ports(s, &Span::whole("t"))
            .unwrap()
            .iter()
            .map(|n| {
                ["host_ip", "published", "target", "protocol"]
                    .iter()
                    .map(|k| n.get(k).and_then(Node::as_str).unwrap_or("-").to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn port_forms() {
        assert_eq!(p("80"), ["- - 80 tcp"]);
        assert_eq!(p("8080:80/udp"), ["- 8080 80 udp"]);
        assert_eq!(p("127.0.0.1:8080:80"), ["127.0.0.1 8080 80 tcp"]);
        assert_eq!(p("[::1]:8080:80"), ["::1 8080 80 tcp"]);
        assert_eq!(p("127.0.0.1::80"), ["127.0.0.1 - 80 tcp"]);
        assert_eq!(p("8000-8001:80-81"), ["- 8000 80 tcp", "- 8001 81 tcp"]);
        assert_eq!(p("8000-8010:80"), ["- 8000-8010 80 tcp"]);
        assert!(ports("8000-8001:80-82", &Span::whole("t")).is_err());
        assert!(ports("70000", &Span::whole("t")).is_err());
        assert!(ports("80/xyz", &Span::whole("t")).is_err());
    }

    #[test]
    fn volume_forms() {
        let v = volume("./data:/data:ro,z", &Span::whole("t")).unwrap();
        assert_eq!(v.get("type").unwrap().as_str(), Some("bind"));
        assert_eq!(v.get("read_only").unwrap().as_str(), Some("true"));
        assert_eq!(
            v.get("bind").unwrap().get("selinux").unwrap().as_str(),
            Some("z")
        );
        let v = volume("db:/var/lib/db", &Span::whole("t")).unwrap();
        assert_eq!(v.get("type").unwrap().as_str(), Some("volume"));
        let v = volume("/anon", &Span::whole("t")).unwrap();
        assert!(v.get("source").is_none());
        assert!(v
            .get("volume")
            .is_some_and(|o| o.as_map().is_some_and(|m| m.entries.is_empty())));
        assert!(volume("a:b:c:d", &Span::whole("t")).is_err());
    }
}
