//! The rules for the names a project carries, checked wherever a name enters
//! (the loader, the engine's API, the command line). Names end up in file
//! names under the store root, network interfaces and DNS, so they are held
//! to Docker's rules (a leading letter or digit, then letters, digits, `_`,
//! `.` and `-`) and compose's for project names: never `/`, `..`, a NUL or
//! an escape sequence.

use std::fmt;

use crate::Project;

/// The longest name: one file name component on Linux.
pub const MAX_LEN: usize = 255;

/// What a name names; each kind has its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Project,
    Service,
    Container,
    Network,
    Volume,
    Config,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Project,
        Kind::Service,
        Kind::Container,
        Kind::Network,
        Kind::Volume,
        Kind::Config,
        Kind::Secret,
    ];

    fn noun(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Service => "service",
            Kind::Container => "container",
            Kind::Network => "network",
            Kind::Volume => "volume",
            Kind::Config => "config",
            Kind::Secret => "secret",
        }
    }

    /// The rule, as the error states it.
    pub fn rule(self) -> &'static str {
        match self {
            Kind::Project => "must contain only lowercase letters, decimal digits, dashes and underscores, and begin with a lowercase letter or decimal digit",
            Kind::Container => "must be at least two characters: letters, digits, `_`, `.` or `-`, beginning with a letter or digit",
            _ => "must contain only letters, digits, `_`, `.` and `-`, and begin with a letter or digit",
        }
    }
}

/// A name that breaks its kind's rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub kind: Kind,
    pub name: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = if self.name.chars().count() > 64 {
            let head: String = self.name.chars().take(64).collect();
            format!("{}…", head.escape_debug())
        } else {
            self.name.escape_debug().to_string()
        };
        if self.name.len() > MAX_LEN {
            return write!(
                f,
                "invalid {} name `{shown}`: longer than {MAX_LEN} bytes",
                self.kind.noun()
            );
        }
        write!(
            f,
            "invalid {} name `{shown}`: {}",
            self.kind.noun(),
            self.kind.rule()
        )
    }
}

impl std::error::Error for NameError {}

/// Checks `name` against the rule of `kind`.
pub fn check(kind: Kind, name: &str) -> Result<(), NameError> {
    if valid(kind, name) {
        Ok(())
    } else {
        Err(NameError {
            kind,
            name: name.to_string(),
        })
    }
}

fn valid(kind: Kind, name: &str) -> bool {
    if name.len() > MAX_LEN {
        return false;
    }
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    match kind {
        Kind::Project => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        }
        _ => {
            // Docker's container names have two characters at least; a
            // compose volume key may have one (its volume is `PROJECT_KEY`).
            let min = if kind == Kind::Container { 2 } else { 1 };
            first.is_ascii_alphanumeric()
                && name.len() >= min
                && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        }
    }
}

/// Every name a project carries, each against its rule: its own, its
/// services' and their `container_name`s, the keys and `name:`s of its
/// networks, volumes, configs and secrets, and what services refer to. All
/// problems, in a stable order.
pub fn check_project(p: &Project) -> Vec<NameError> {
    let mut bad = Vec::new();
    let mut check_one = |kind, name: &str| {
        if let Err(e) = check(kind, name) {
            bad.push(e);
        }
    };
    check_one(Kind::Project, &p.name);
    for (key, s) in &p.services {
        check_one(Kind::Service, key);
        if let Some(c) = &s.container_name {
            check_one(Kind::Container, c);
        }
        for r in &s.configs {
            check_one(Kind::Config, &r.source);
        }
        for r in &s.secrets {
            check_one(Kind::Secret, &r.source);
        }
        for key in s.networks.keys() {
            check_one(Kind::Network, key);
        }
    }
    for (key, n) in &p.networks {
        check_one(Kind::Network, key);
        if let Some(name) = &n.name {
            check_one(Kind::Network, name);
        }
    }
    for (key, v) in &p.volumes {
        check_one(Kind::Volume, key);
        if let Some(name) = &v.name {
            check_one(Kind::Volume, name);
        }
    }
    for (kind, objects) in [(Kind::Config, &p.configs), (Kind::Secret, &p.secrets)] {
        for (key, o) in objects {
            check_one(kind, key);
            if let Some(name) = &o.name {
                check_one(kind, name);
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hostility table: names that must never pass, for every kind.
    const HOSTILE: &[&str] = &[
        "",
        ".",
        "..",
        "../x",
        "../../../../escape",
        "/tmp/x/file",
        "a/b",
        "-x",
        "_x",
        ".hidden",
        "a\0b",
        "a b",
        "a\x1b[31mred",
        "a\nb",
        "é",
    ];

    #[test]
    fn hostile_names_are_refused_for_every_kind() {
        let long = "a".repeat(300);
        for kind in Kind::ALL {
            for name in HOSTILE.iter().copied().chain([long.as_str()]) {
                let e = check(kind, name).expect_err(&format!("{kind:?} {name:?}"));
                assert_eq!(e.name, name);
            }
        }
    }

    #[test]
    fn docker_and_compose_names_pass() {
        for (kind, name) in [
            (Kind::Project, "my-app_1"),
            (Kind::Service, "web"),
            (Kind::Service, "Web.v2-x_1"),
            (Kind::Service, "a"),
            (Kind::Container, "shop-web-1"),
            (Kind::Volume, "shop_data"),
            (Kind::Network, "shop_default"),
            (Kind::Secret, "db_password"),
            (Kind::Config, "nginx.conf"),
        ] {
            assert_eq!(check(kind, name), Ok(()), "{kind:?} {name}");
        }
        assert!(check(Kind::Project, "My-App").is_err());
        assert!(
            check(Kind::Container, "a").is_err(),
            "docker wants two characters"
        );
        assert_eq!(
            check(Kind::Volume, "v"),
            Ok(()),
            "compose takes `volumes: {{v: {{}}}}`"
        );
    }

    #[test]
    fn the_error_names_the_kind_and_escapes_the_name() {
        let e = check(Kind::Config, "\x1b[2J/etc/passwd").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config name `\\u{1b}[2J/etc/passwd`: must contain only letters, digits, `_`, `.` and `-`, and begin with a letter or digit"
        );
        let long = check(Kind::Service, &"x".repeat(300))
            .unwrap_err()
            .to_string();
        assert!(long.ends_with("longer than 255 bytes"), "{long}");
        assert!(long.len() < 200, "{long}");
    }

    #[test]
    fn a_project_is_checked_everywhere_a_name_hides() {
        let mut p = Project {
            name: "shop".into(),
            ..Default::default()
        };
        p.services.insert("web".into(), Default::default());
        assert!(check_project(&p).is_empty());
        p.volumes.insert(
            "data".into(),
            crate::Volume {
                name: Some("/tmp/x/vol".into()),
                ..Default::default()
            },
        );
        p.configs.insert("../../escape".into(), Default::default());
        p.services.get_mut("web").unwrap().container_name = Some("../c".into());
        let bad: Vec<String> = check_project(&p).into_iter().map(|e| e.name).collect();
        assert_eq!(bad, ["../c", "/tmp/x/vol", "../../escape"]);
    }
}
