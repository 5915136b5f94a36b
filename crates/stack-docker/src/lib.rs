//! The Docker Engine API, served by stack's engine on a second unix socket
//! (`$STACK_ROOT/docker.sock`), so that the clients of Docker (the `docker`
//! CLI, docker-py, docker-compose, testcontainers) drive stack unchanged.
//!
//! This crate knows Docker's side: the versioned paths and their
//! negotiation, the route table ([`ROUTES`], written down in
//! `schemas/docker-engine-api.yaml`), Docker's request bodies
//! ([`types`]), its filters ([`filters`]), its stream framings
//! ([`stdcopy`]), hijacked connections and its error shapes. What a
//! request does to containers, images, networks and volumes is the
//! [`Backend`]'s: the host implements it on the engine.

pub mod filters;
mod server;
pub mod stdcopy;
pub mod types;

pub use server::{
    find_network, serve, AttachQuery, Backend, BuildQuery, CommitQuery, DockerError, Exec,
    LogsQuery, Output, Stream,
};

/// The newest API version served: the one docker CLI 28 asks for.
pub const API_VERSION: &str = "1.50";
/// The oldest: what dockerd still accepts.
pub const MIN_API_VERSION: &str = "1.24";

/// Every route served: method and path template (without the `/vNN`
/// prefix). `{id}` is one path segment; `{name*}` one or more (image
/// references hold `/`).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("GET", "/version"),
    ("GET", "/info"),
    ("GET", "/events"),
    ("GET", "/system/df"),
    ("POST", "/auth"),
    ("POST", "/build"),
    ("POST", "/commit"),
    ("GET", "/containers/json"),
    ("POST", "/containers/create"),
    ("POST", "/containers/prune"),
    ("GET", "/containers/{id}/json"),
    ("POST", "/containers/{id}/start"),
    ("POST", "/containers/{id}/stop"),
    ("POST", "/containers/{id}/restart"),
    ("POST", "/containers/{id}/kill"),
    ("POST", "/containers/{id}/pause"),
    ("POST", "/containers/{id}/unpause"),
    ("POST", "/containers/{id}/wait"),
    ("POST", "/containers/{id}/rename"),
    ("POST", "/containers/{id}/resize"),
    ("POST", "/containers/{id}/attach"),
    ("DELETE", "/containers/{id}"),
    ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/top"),
    ("GET", "/containers/{id}/stats"),
    ("GET", "/containers/{id}/changes"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/containers/{id}/archive"),
    ("HEAD", "/containers/{id}/archive"),
    ("PUT", "/containers/{id}/archive"),
    ("POST", "/containers/{id}/exec"),
    ("POST", "/exec/{id}/start"),
    ("POST", "/exec/{id}/resize"),
    ("GET", "/exec/{id}/json"),
    ("GET", "/images/json"),
    ("POST", "/images/load"),
    ("GET", "/images/get"),
    ("GET", "/images/{name*}/get"),
    ("POST", "/images/create"),
    ("POST", "/images/prune"),
    ("GET", "/images/{name*}/json"),
    ("GET", "/images/{name*}/history"),
    ("POST", "/images/{name*}/tag"),
    ("DELETE", "/images/{name*}"),
    ("GET", "/networks"),
    ("POST", "/networks/create"),
    ("POST", "/networks/prune"),
    ("GET", "/networks/{id}"),
    ("DELETE", "/networks/{id}"),
    ("POST", "/networks/{id}/connect"),
    ("POST", "/networks/{id}/disconnect"),
    ("GET", "/volumes"),
    ("POST", "/volumes/create"),
    ("POST", "/volumes/prune"),
    ("GET", "/volumes/{id}"),
    ("DELETE", "/volumes/{id}"),
    ("GET", "/plugins"),
    ("GET", "/plugins/{name*}/json"),
];

/// Path prefixes of swarm mode: answered as dockerd does on a node that is
/// in no swarm.
pub const SWARM: &[&str] = &[
    "/swarm",
    "/nodes",
    "/services",
    "/tasks",
    "/secrets",
    "/configs",
];

/// A request's route: its template and the values of its parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    pub template: &'static str,
    pub params: Vec<String>,
}

/// Why a request has no route.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// Not an endpoint of the API.
    Unknown,
    /// An endpoint of the API that stack does not serve (501).
    NotImplemented,
    /// The path exists with other methods.
    MethodNotAllowed,
    /// A swarm endpoint (503).
    Swarm,
    /// `/vN.NN/` outside the versions served (400, as dockerd).
    Version(String),
}

/// Splits `/v1.NN` off a path: the version asked (None: the newest) and
/// the rest.
pub fn split_version(path: &str) -> Result<(Option<&str>, &str), NoRoute> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (v, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(parsed) = parse_version(v) else {
        // Not a version: `/volumes` and the like begin with `/v` too.
        return Ok((None, path));
    };
    if parsed < parse_version(MIN_API_VERSION).expect("a version")
        || parsed > parse_version(API_VERSION).expect("a version")
    {
        return Err(NoRoute::Version(v.to_string()));
    }
    Ok((Some(v), tail))
}

/// `1.41` as (1, 41).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Endpoints of the Engine API that stack does not serve yet; any other
/// unknown path is a plain 404.
const KNOWN_UNSERVED: &[&str] = &[
    "/session",
    "/grpc",
    "/plugins",
    "/distribution",
    "/images/search",
    "/system",
    "/containers",
    "/images",
    "/exec",
    "/networks",
    "/volumes",
];

/// Matches a method and a path (version already split off).
pub fn route(method: &str, path: &str) -> Result<Matched, NoRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut other_method = false;
    for (m, template) in ROUTES {
        if let Some(params) = matches(template, &segments) {
            if *m == method {
                return Ok(Matched { template, params });
            }
            other_method = true;
        }
    }
    if other_method {
        return Err(NoRoute::MethodNotAllowed);
    }
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if SWARM.iter().any(|p| under(p)) {
        return Err(NoRoute::Swarm);
    }
    if KNOWN_UNSERVED.iter().any(|p| under(p)) {
        return Err(NoRoute::NotImplemented);
    }
    Err(NoRoute::Unknown)
}

fn matches(template: &str, segments: &[&str]) -> Option<Vec<String>> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let mut params = Vec::new();
    if let Some(star) = parts.iter().position(|p| p.ends_with("*}")) {
        // `{name*}`: the segments between the fixed head and tail.
        let (head, tail) = (&parts[..star], &parts[star + 1..]);
        if segments.len() < head.len() + tail.len() + 1 {
            return None;
        }
        let middle = &segments[head.len()..segments.len() - tail.len()];
        let fixed = head
            .iter()
            .zip(segments)
            .chain(tail.iter().zip(&segments[segments.len() - tail.len()..]));
        for (p, s) in fixed {
            if p != s {
                return None;
            }
        }
        if middle.iter().any(|s| s.is_empty()) {
            return None;
        }
        // (docker-py quotes the `@` of `name@sha256:…`)
        params.push(percent_decode(&middle.join("/")));
        return Some(params);
    }
    if parts.len() != segments.len() {
        return None;
    }
    for (p, s) in parts.iter().zip(segments) {
        if p.starts_with('{') {
            if s.is_empty() {
                return None;
            }
            params.push(percent_decode(s));
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

/// `%2F` and the like in a path segment.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A container name as dockerd accepts one (a leading `/` allowed).
pub fn valid_container_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_off_and_are_bounded() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            Ok((Some("1.41"), "/containers/json"))
        );
        assert_eq!(split_version("/volumes"), Ok((None, "/volumes")));
        assert_eq!(split_version("/_ping"), Ok((None, "/_ping")));
        assert_eq!(
            split_version("/v1.12/info"),
            Err(NoRoute::Version("1.12".into()))
        );
        assert_eq!(
            split_version("/v9.99/info"),
            Err(NoRoute::Version("9.99".into()))
        );
    }

    #[test]
    fn routes_match_with_their_parameters() {
        let m = route("GET", "/containers/abc/json").unwrap();
        assert_eq!(
            (m.template, m.params),
            ("/containers/{id}/json", vec!["abc".to_string()])
        );
        let m = route("GET", "/images/localhost:5000/a/b:1/json").unwrap();
        assert_eq!(m.params, vec!["localhost:5000/a/b:1".to_string()]);
        let m = route("GET", "/images/busybox%40sha256:ab/json").unwrap();
        assert_eq!(m.params, vec!["busybox@sha256:ab".to_string()]);
        let m = route("DELETE", "/images/busybox").unwrap();
        assert_eq!(m.params, vec!["busybox".to_string()]);
        // `/images/json` is the list, not an image called `json`.
        assert_eq!(
            route("GET", "/images/json").unwrap().template,
            "/images/json"
        );
        assert_eq!(
            route("PUT", "/containers/json"),
            Err(NoRoute::MethodNotAllowed)
        );
        assert_eq!(route("GET", "/swarm"), Err(NoRoute::Swarm));
        assert_eq!(route("GET", "/services/x"), Err(NoRoute::Swarm));
        assert_eq!(route("POST", "/session"), Err(NoRoute::NotImplemented));
        assert_eq!(
            route("GET", "/containers/x/update"),
            Err(NoRoute::NotImplemented)
        );
        assert_eq!(route("GET", "/nothing"), Err(NoRoute::Unknown));
        assert_eq!(
            route("GET", "/containers//json"),
            Err(NoRoute::NotImplemented)
        );
    }

    #[test]
    fn every_template_matches_itself() {
        for (m, t) in ROUTES {
            let path = t.replace("{id}", "x").replace("{name*}", "a/b");
            let got = route(m, &path).unwrap_or_else(|e| panic!("{m} {t}: {e:?}"));
            assert_eq!(got.template, *t, "{m} {path}");
        }
    }

    #[test]
    fn names_as_dockerd_checks_them() {
        for ok in ["web", "/web", "a_b.c-d", "x1"] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["", "/", "-x", "a b", "a/b", "x", "é1"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
