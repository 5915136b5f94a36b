//! The plain data types of a stack project (the Compose Specification),
//! normalized. No I/O.
//!
//! Field order and omission rules follow compose-go's types, so that
//! serializing a `Project` prints what `docker compose config` prints.
//! Value syntaxes that need no context (list-or-map mappings, byte sizes,
//! durations, shell-split commands) are parsed by the types themselves; the
//! loader turns path-dependent short syntaxes (ports, volumes, depends_on…)
//! into the long form before deserializing.
//!
//! `x-*` extensions: each extensible struct has `extensions`, printed inline
//! (`#[serde(flatten)]`) but skipped when deserializing, so the derived
//! Deserialize stays a plain struct visitor (no flatten buffering, which
//! would lose the loader's type coercions). The loader fills them in.

mod fields;
mod maps;
pub mod names;
mod resources;
mod service;
mod units;
mod value;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use fields::fields_of;
pub use maps::{
    shell_split, External, HealthCheckTest, HostsList, Mapping, MappingWithEquals, ShellCommand,
    StringList, Text, Ulimit,
};
pub use resources::{Config, FileObject, Ipam, IpamPool, Model, Network, Secret, Volume};
pub use service::*;
pub use units::{parse_bytes, parse_duration, Bytes, Cpus, Duration, FileMode};
pub use value::Value;

pub type Extensions = BTreeMap<String, Value>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, Config>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Model>,
    #[serde(flatten, skip_deserializing)]
    pub extensions: Extensions,
}

impl Project {
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// Without the networks, volumes, secrets and configs no service uses
    /// (as compose drops them unless `--all-resources`).
    pub fn without_unused_resources(mut self) -> Project {
        let services = self.services.values();
        let mut networks = std::collections::BTreeSet::new();
        let (mut volumes, mut secrets, mut configs) = (
            networks.clone(),
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for s in services {
            networks.extend(s.networks.keys().cloned());
            volumes.extend(
                s.volumes
                    .iter()
                    .filter(|v| v.kind == "volume")
                    .filter_map(|v| v.source.clone()),
            );
            let build_secrets = s.build.iter().flat_map(|b| &b.secrets);
            secrets.extend(
                s.secrets
                    .iter()
                    .chain(build_secrets)
                    .map(|r| r.source.clone()),
            );
            configs.extend(s.configs.iter().map(|r| r.source.clone()));
        }
        self.networks.retain(|k, _| networks.contains(k));
        self.volumes.retain(|k, _| volumes.contains(k));
        self.secrets.retain(|k, _| secrets.contains(k));
        self.configs.retain(|k, _| configs.contains(k));
        self
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_true(b: &bool) -> bool {
    *b
}

pub(crate) fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_round_trips_through_json() {
        let json = serde_json::json!({
            "image": "nginx", "command": "nginx -g 'daemon off;'",
            "environment": ["A=1", "B"], "ports": [{"target": 80, "published": "8080", "protocol": "tcp", "mode": "ingress"}],
            "healthcheck": {"test": "curl -f localhost", "interval": "1m30s", "retries": 3},
            "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 65535},
            "mem_limit": "512m", "cpus": "0.5", "extra_hosts": {"db": "10.0.0.2"},
            "depends_on": {"db": {"condition": "service_healthy", "required": true}}
        });
        let s: Service = serde_json::from_value(json).unwrap();
        assert_eq!(
            s.command.as_ref().unwrap().0,
            ["nginx", "-g", "daemon off;"]
        );
        assert_eq!(
            s.healthcheck.as_ref().unwrap().test.as_ref().unwrap().0,
            ["CMD-SHELL", "curl -f localhost"]
        );
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["mem_limit"], "536870912");
        assert_eq!(out["healthcheck"]["interval"], "1m30s");
        assert_eq!(out["extra_hosts"], serde_json::json!(["db=10.0.0.2"]));
        assert_eq!(out["ulimits"]["nproc"], 65535);
        assert_eq!(out["environment"], serde_json::json!({"A": "1", "B": null}));
        let back: Service = serde_json::from_value(out).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn extensions_do_not_break_typed_deserialization() {
        // A quoted number where an integer is expected would fail through
        // serde's flatten buffer; the struct visitor sees it typed.
        let s: Service = serde_json::from_str(r#"{"image": "x", "scale": 2}"#).unwrap();
        assert_eq!(s.replicas(), 2);
        let mut p = Project {
            name: "p".into(),
            ..Default::default()
        };
        p.extensions.insert("x-a".into(), Value::Int(1));
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out["x-a"], 1);
    }
}
