//! Image references as Docker reads them: `busybox`, `library/busybox:1.36`,
//! `localhost:5000/team/app@sha256:…`, `ghcr.io/o/r:tag`. Pure.

use std::fmt;

/// The registry Docker Hub names resolve to, and where its API lives.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `ghcr.io`.
    pub registry: String,
    /// `library/busybox`, `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid image reference `{reference}`: {why}")]
pub struct ReferenceError {
    pub reference: String,
    pub why: String,
}

/// `sha256:` followed by 64 lowercase hex digits: the only digests we accept,
/// since they become file names.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ joined by `.`, `_`, `__` or `-`+ (distribution's grammar).
    if c.is_empty() || !c.bytes().next().unwrap().is_ascii_alphanumeric() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok || i == bytes.len() {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let err = |why: &str| ReferenceError {
            reference: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(err("a digest is `sha256:` and 64 lowercase hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last `:` that comes after the last `/`.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(err("a tag is up to 128 letters, digits, `_`, `.` or `-`"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.split('/').any(|c| !valid_component(c)) {
            return Err(err(
                "a repository name is lowercase letters and digits, separated by `/`, `.`, `_` or `-`",
            ));
        }
        if name.len() > 255 {
            return Err(err("the name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to talk to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `busybox`, `localhost:5000/app`: the name without tag or digest, as
    /// Docker shows it (Docker Hub and `library/` dropped).
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The tag or digest to ask the registry for.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `name:tag` as the store names it (or `name@digest` without a tag).
    pub fn store_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.familiar_name()),
            (None, Some(d)) => format!("{}@{d}", self.familiar_name()),
            (None, None) => format!("{}:latest", self.familiar_name()),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.familiar_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn docker_hub_names() {
        let r = p("busybox");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.store_name(), "busybox:latest");
        let r = p("bitnami/redis:7.2");
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("bitnami/redis", Some("7.2"))
        );
        assert_eq!(r.store_name(), "bitnami/redis:7.2");
        assert_eq!(p("docker.io/library/alpine").store_name(), "alpine:latest");
        assert_eq!(
            p("index.docker.io/library/alpine:3").store_name(),
            "alpine:3"
        );
    }

    #[test]
    fn other_registries_ports_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost:5000/team/app@{d}"));
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (None, Some(d.as_str()))
        );
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.store_name(), format!("localhost:5000/team/app@{d}"));
        let r = p(&format!("ghcr.io/o/r:v1@{d}"));
        assert_eq!(
            (r.tag.as_deref(), r.manifest_ref()),
            (Some("v1"), d.as_str())
        );
        assert_eq!(p("127.0.0.1:5000/x").api_host(), "127.0.0.1:5000");
        assert_eq!(p("localhost/x:1").registry, "localhost");
        assert_eq!(r.to_string(), format!("ghcr.io/o/r:v1@{d}"));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a:",
            "a:-x",
            "x@sha256:abc",
            "x@md5:00",
            "-a",
            "a-",
            "a/b/:c",
            "a..b",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert_eq!(e.reference, bad);
            assert!(e.to_string().contains("invalid image reference"), "{e}");
        }
        assert!(valid_digest(&format!("sha256:{}", "0f".repeat(32))));
        assert!(!valid_digest(&format!("sha256:{}", "0F".repeat(32))));
        assert!(!valid_digest("sha256:../../etc/passwd"));
    }
}
