//! Names as Kubernetes takes them: every object name a DNS-1035 label
//! (lowercase letters, digits and `-`, a letter first, at most 63), made
//! from the stack's names the same way every time, and unique per kind.

use std::collections::{BTreeMap, BTreeSet};

/// The longest name a label may have.
pub const MAX: usize = 63;

/// `my_Web.1` → `my-web-1`: lowercase, anything else than a letter, a digit
/// or `-` made `-`, runs of `-` kept as one, a letter first (`s-` when the
/// name starts otherwise), at most 63 bytes, no `-` at either end.
pub fn label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, if out.is_empty() { "s" } else { "s-" });
    }
    out.truncate(MAX);
    out.trim_end_matches('-').to_string()
}

/// A namespace's name: a DNS-1123 label (a digit may come first).
pub fn namespace(name: &str) -> String {
    let l = label(name);
    match l.strip_prefix("s-") {
        Some(rest) if !name.starts_with("s-") && rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.to_string()
        }
        _ => l,
    }
}

/// Whether a name is a DNS-1035 label already.
pub fn is_label(name: &str) -> bool {
    label(name) == name
}

/// A key of a ConfigMap or Secret: letters, digits, `-`, `_`, `.`.
pub fn data_key(name: &str) -> String {
    let k: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    match k.as_str() {
        "" | "." | ".." => format!("file{k}"),
        _ => k,
    }
}

/// A label value: at most 63 of letters, digits, `-`, `_`, `.`, with a
/// letter or digit at both ends (or empty).
pub fn is_label_value(v: &str) -> bool {
    v.len() <= MAX
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (v.is_empty()
            || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`,
/// then a name as a label value, not empty.
pub fn is_qualified_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// Names given out, per kind of object: the same stack name gets the same
/// Kubernetes name; two stack names that would meet get `-2`, `-3`….
#[derive(Default)]
pub struct Names {
    given: BTreeMap<(String, String), String>,
    taken: BTreeSet<(String, String)>,
    /// What was renamed: (what, stack name, Kubernetes name).
    pub renamed: Vec<(String, String, String)>,
}

impl Names {
    /// The name of `what` (`service`, `volume`…) `name` for objects of
    /// `kind`; a change is recorded to be shown.
    pub fn get(&mut self, kind: &str, what: &str, name: &str) -> String {
        let n = self.derived(kind, what, name);
        if n != name && !self.renamed.iter().any(|(w, s, _)| w == what && s == name) {
            self.renamed
                .push((what.to_string(), name.to_string(), n.clone()));
        }
        n
    }

    /// A name made from another (`web-env`): not shown when changed.
    pub fn derived(&mut self, kind: &str, what: &str, name: &str) -> String {
        self.keyed(kind, what, name, name)
    }

    /// The name for `key` of `what`, made from `base` (two keys with the
    /// same base get different names).
    pub fn keyed(&mut self, kind: &str, what: &str, key: &str, base: &str) -> String {
        let key = (kind.to_string(), format!("{what}\0{key}"));
        if let Some(n) = self.given.get(&key) {
            return n.clone();
        }
        let base = label(base);
        let mut n = base.clone();
        let mut i = 2;
        while self.taken.contains(&(kind.to_string(), n.clone())) {
            let suffix = format!("-{i}");
            let mut b = base.clone();
            b.truncate(MAX - suffix.len());
            n = format!("{}{suffix}", b.trim_end_matches('-'));
            i += 1;
        }
        self.taken.insert((kind.to_string(), n.clone()));
        self.given.insert(key, n.clone());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_1035() {
        assert_eq!(label("web"), "web");
        assert_eq!(label("My_Web.1"), "my-web-1");
        assert_eq!(label("__a__b__"), "a-b");
        assert_eq!(label("1st"), "s-1st");
        assert_eq!(label("_"), "s");
        assert_eq!(label(&"x".repeat(80)).len(), 63);
        assert_eq!(label(&format!("{}_y", "x".repeat(62))), "x".repeat(62));
        assert_eq!(namespace("1team"), "1team");
        assert_eq!(namespace("My_Team"), "my-team");
        for n in ["web", "a-b", "s-1st", "x1"] {
            assert!(is_label(n), "{n}");
        }
        for n in ["Web", "a_b", "-a", "a-", "1a", ""] {
            assert!(!is_label(n), "{n}");
        }
    }

    #[test]
    fn names_meet_once_and_stay_stable() {
        let mut n = Names::default();
        assert_eq!(n.get("Service", "service", "my_app"), "my-app");
        assert_eq!(n.get("Service", "service", "my-app"), "my-app-2");
        assert_eq!(n.get("Service", "service", "my_app"), "my-app");
        // Another kind has its own names.
        assert_eq!(n.get("ConfigMap", "config", "my-app"), "my-app");
        assert_eq!(
            n.renamed,
            [
                ("service".into(), "my_app".into(), "my-app".into()),
                ("service".into(), "my-app".into(), "my-app-2".into())
            ]
        );
    }

    #[test]
    fn keys_and_values() {
        assert!(is_qualified_key("com.example.description"));
        assert!(is_qualified_key("example.com/team"));
        assert!(!is_qualified_key("Example.com/team"));
        assert!(!is_qualified_key("a b"));
        assert!(is_label_value("v1.2_x"));
        assert!(!is_label_value("Host(`x`)"));
        assert_eq!(data_key("nginx.conf"), "nginx.conf");
        assert_eq!(data_key("a b"), "a_b");
        assert_eq!(data_key(".."), "file..");
    }
}
