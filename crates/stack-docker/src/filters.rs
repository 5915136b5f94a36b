//! `filters=` as clients send it: a JSON object of filter names to values,
//! in the CLI's encoding (`{"label":{"a=b":true}}`) or docker-py's
//! (`{"label":["a=b"]}`, or a lone string), applied to Docker's JSON
//! objects as dockerd applies them.

use std::collections::BTreeMap;

use serde_json::Value;

/// Filter names and their values (any value of a name may match).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Reads the `filters` query value (already percent-decoded).
    pub fn parse(raw: Option<&str>) -> Result<Filters, String> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
        let Value::Object(map) = v else {
            return Err(format!("invalid filter: `{raw}` is not a JSON object"));
        };
        let mut out = BTreeMap::new();
        for (name, values) in map {
            let list = match values {
                Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s),
                        other => Ok(other.to_string()),
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                Value::String(s) => vec![s],
                Value::Bool(b) => vec![b.to_string()],
                other => return Err(format!("invalid filter `{name}`: {other}")),
            };
            out.insert(name, list);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// Refuses a filter name outside `known`, as dockerd does.
    pub fn check(&self, known: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("invalid filter '{k}'")),
            None => Ok(()),
        }
    }

    /// Whether `labels` has every `label` filter: `key` present, or
    /// `key=value` equal.
    pub fn labels_match(&self, labels: &Value) -> bool {
        self.get("label").unwrap_or_default().iter().all(|f| {
            let (k, v) = match f.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (f.as_str(), None),
            };
            match (labels.get(k).and_then(Value::as_str), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            }
        })
    }

    /// Whether `name`'s values (if any) hold one `test` accepts.
    pub fn any(&self, name: &str, test: impl Fn(&str) -> bool) -> bool {
        self.get(name).is_none_or(|vs| vs.iter().any(|v| test(v)))
    }
}

/// The container filters dockerd knows and stack applies.
pub const CONTAINER_FILTERS: &[&str] = &[
    "id", "name", "label", "status", "ancestor", "network", "exited", "health", "volume", "before",
    "since", "is-task", "publish", "expose",
];

/// The containers of `all` (summaries) that pass `f`: `before` and `since`
/// name a container of the list (by name or id) whose creation bounds the
/// others'; an unknown one is an error, as dockerd says it.
pub fn containers(f: &Filters, all: Vec<Value>) -> Result<Vec<Value>, String> {
    let created_of = |key: &str| -> Result<i64, String> {
        all.iter()
            .find(|c| {
                c["Id"].as_str().is_some_and(|id| id.starts_with(key))
                    || c["Names"].as_array().is_some_and(|n| {
                        n.iter().any(|n| {
                            n.as_str().map(|n| n.trim_start_matches('/'))
                                == Some(key.trim_start_matches('/'))
                        })
                    })
            })
            .and_then(|c| c["Created"].as_i64())
            .ok_or_else(|| format!("No such container: {key}"))
    };
    let bound = |name: &str| -> Result<Option<i64>, String> {
        f.get(name)
            .and_then(|v| v.first())
            .map(|k| created_of(k))
            .transpose()
    };
    let (before, since) = (bound("before")?, bound("since")?);
    Ok(all
        .into_iter()
        .filter(|c| {
            let t = c["Created"].as_i64().unwrap_or(0);
            before.is_none_or(|b| t < b) && since.is_none_or(|s| t > s) && container(f, c)
        })
        .collect())
}

/// Whether a container summary (the shape of `GET /containers/json`)
/// passes `f` (all but `before` and `since`, which need the others).
pub fn container(f: &Filters, c: &Value) -> bool {
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
    let names: Vec<&str> = c
        .get("Names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    f.labels_match(c.get("Labels").unwrap_or(&Value::Null))
        && f.any("id", |v| s("Id").starts_with(v))
        && f.any("name", |v| {
            // dockerd matches a regular expression on `/NAME`; clients send
            // plain names or anchored ones (`^/?NAME$`).
            let start = v.starts_with('^');
            let end = v.ends_with('$') && !v.ends_with("\\$");
            let core = v.trim_start_matches('^').trim_end_matches('$');
            let core = core.trim_start_matches("/?").trim_start_matches('/');
            names.iter().any(|n| {
                let n = n.trim_start_matches('/');
                match (start, end) {
                    (true, true) => n == core,
                    (true, false) => n.starts_with(core),
                    (false, true) => n.ends_with(core),
                    (false, false) => n.contains(core),
                }
            })
        })
        && f.any("status", |v| s("State") == v)
        && f.any("ancestor", |v| {
            let image = s("Image");
            image == v
                || s("ImageID")
                    .trim_start_matches("sha256:")
                    .starts_with(v.trim_start_matches("sha256:"))
                || image.strip_suffix(":latest") == Some(v)
                || v.strip_suffix(":latest") == Some(image)
        })
        && f.any("exited", |v| {
            s("State") == "exited"
                && c.get("ExitCode")
                    .and_then(Value::as_i64)
                    .map(|x| x.to_string())
                    .as_deref()
                    == Some(v)
        })
        && f.any("network", |v| {
            c.pointer("/NetworkSettings/Networks")
                .and_then(Value::as_object)
                .is_some_and(|n| {
                    n.contains_key(v)
                        || n.values().any(|e| {
                            e.get("NetworkID")
                                .and_then(Value::as_str)
                                .is_some_and(|id| id.starts_with(v))
                        })
                })
        })
        && f.any("health", |v| {
            let status = s("Status");
            match v {
                "healthy" => status.contains("(healthy)"),
                "unhealthy" => status.contains("(unhealthy)"),
                "starting" => status.contains("(health: starting)"),
                "none" => !status.contains("health"),
                _ => false,
            }
        })
        && f.any("is-task", |v| v == "false")
        && f.any("volume", |v| {
            c["Mounts"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    [&m["Name"], &m["Source"], &m["Destination"]]
                        .iter()
                        .any(|x| x.as_str() == Some(v))
                })
            })
        })
        && f.any("publish", |v| port_matches(c, "PublicPort", v))
        && f.any("expose", |v| port_matches(c, "PrivatePort", v))
}

/// Whether one of the summary's ports has `field` (`PublicPort`,
/// `PrivatePort`) as `PORT[/PROTO]` says.
fn port_matches(c: &Value, field: &str, want: &str) -> bool {
    let (port, proto) = want.split_once('/').unwrap_or((want, ""));
    c["Ports"].as_array().is_some_and(|ports| {
        ports.iter().any(|p| {
            p[field].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
                && (proto.is_empty() || p["Type"].as_str() == Some(proto))
        })
    })
}

/// Whether a network (the shape of `GET /networks`) passes `f`.
pub fn network(f: &Filters, n: &Value) -> bool {
    let s = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or_default();
    f.labels_match(n.get("Labels").unwrap_or(&Value::Null))
        && f.any("name", |v| s("Name").contains(v))
        && f.any("id", |v| s("Id").starts_with(v))
        && f.any("driver", |v| s("Driver") == v)
        && f.any("scope", |v| s("Scope") == v)
        && f.any("type", |v| {
            v == "custom" || (v == "builtin") == ["bridge", "host", "none"].contains(&s("Name"))
        })
}

/// Whether a volume (the shape of `GET /volumes`) passes `f`; `dangling`
/// is whether no container uses it.
pub fn volume(f: &Filters, v: &Value, dangling: bool) -> bool {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    f.labels_match(v.get("Labels").unwrap_or(&Value::Null))
        && f.any("name", |x| s("Name").contains(x))
        && f.any("driver", |x| s("Driver") == x)
        && f.any("dangling", |x| matches!(x, "true" | "1") == dangling)
}

/// Whether an image summary (the shape of `GET /images/json`) passes `f`.
pub fn image(f: &Filters, i: &Value) -> bool {
    let tags: Vec<&str> = i
        .get("RepoTags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    f.labels_match(i.get("Labels").unwrap_or(&Value::Null))
        && f.any("dangling", |x| matches!(x, "true" | "1") == tags.is_empty())
        && f.any("reference", |r| {
            tags.iter().any(|t| {
                t == &r
                    || t.strip_suffix(":latest") == Some(r)
                    || t.rsplit_once(':').is_some_and(|(repo, _)| glob(r, repo))
                    || glob(r, t)
            })
        })
}

/// `*` matches any run of characters but `/`; the rest literally.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else {
                return false;
            };
            // Every split of `rest` up to its first `/`, at char boundaries.
            let stop = rest.find('/').unwrap_or(rest.len());
            rest.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(rest.len()))
                .take_while(|i| *i <= stop)
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_encodings_read_the_same() {
        let cli =
            Filters::parse(Some(r#"{"label":{"a=b":true},"status":{"running":true}}"#)).unwrap();
        let py = Filters::parse(Some(r#"{"label":["a=b"],"status":"running"}"#)).unwrap();
        assert_eq!(cli, py);
        assert!(Filters::parse(Some("[1]")).is_err());
        assert!(Filters::parse(Some("{")).is_err());
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
        assert_eq!(
            cli.check(&["label"]).unwrap_err(),
            "invalid filter 'status'"
        );
    }

    #[test]
    fn containers_filter_as_dockerd() {
        let c = json!({"Id": "abcdef", "Names": ["/proj_web_1"], "Image": "busybox:latest",
            "ImageID": "sha256:1234", "State": "running", "Status": "Up 1 second",
            "Labels": {"com.docker.compose.project": "proj", "x": "1"}});
        let f = |s: &str| Filters::parse(Some(s)).unwrap();
        assert!(container(
            &f(r#"{"label":["com.docker.compose.project=proj"]}"#),
            &c
        ));
        assert!(container(&f(r#"{"label":["x"]}"#), &c));
        assert!(!container(&f(r#"{"label":["x=2"]}"#), &c));
        assert!(!container(&f(r#"{"label":["x","y"]}"#), &c));
        assert!(container(&f(r#"{"name":["web"]}"#), &c));
        assert!(container(&f(r#"{"name":["^/proj_web_1$"]}"#), &c));
        assert!(!container(&f(r#"{"name":["^web$"]}"#), &c));
        assert!(container(&f(r#"{"status":["exited","running"]}"#), &c));
        assert!(!container(&f(r#"{"status":["exited"]}"#), &c));
        assert!(container(&f(r#"{"ancestor":["busybox"]}"#), &c));
        assert!(container(&f(r#"{"id":["abc"]}"#), &c));
        assert!(!container(&f(r#"{"id":["bcd"]}"#), &c));
        let with_ports = json!({"Id": "a1", "Names": ["/a"], "Created": 5, "State": "running",
            "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
            "Mounts": [{"Name": "data", "Source": "/v/data/_data", "Destination": "/data"}]});
        assert!(container(&f(r#"{"publish":["8080"]}"#), &with_ports));
        assert!(container(&f(r#"{"expose":["80/tcp"]}"#), &with_ports));
        assert!(!container(&f(r#"{"expose":["80/udp"]}"#), &with_ports));
        assert!(container(&f(r#"{"volume":["data"]}"#), &with_ports));
        assert!(!container(&f(r#"{"volume":["/other"]}"#), &with_ports));
        let older = json!({"Id": "b2", "Names": ["/b"], "Created": 3, "State": "running"});
        let all = vec![with_ports.clone(), older.clone()];
        let names = |v: Vec<Value>| v.iter().map(|c| c["Id"].clone()).collect::<Vec<_>>();
        assert_eq!(
            names(containers(&f(r#"{"before":["a"]}"#), all.clone()).unwrap()),
            [json!("b2")]
        );
        assert_eq!(
            names(containers(&f(r#"{"since":["b2"]}"#), all.clone()).unwrap()),
            [json!("a1")]
        );
        assert!(containers(&f(r#"{"since":["zz"]}"#), all).is_err());
    }

    #[test]
    fn images_filter_by_reference_and_dangling() {
        let i = json!({"RepoTags": ["localhost/busybox:latest"], "Labels": {}});
        let f = |s: &str| Filters::parse(Some(s)).unwrap();
        assert!(image(&f(r#"{"reference":["localhost/busybox"]}"#), &i));
        assert!(image(&f(r#"{"reference":["localhost/*"]}"#), &i));
        assert!(!image(&f(r#"{"reference":["*"]}"#), &i));
        assert!(!image(&f(r#"{"dangling":["true"]}"#), &i));
        assert!(image(
            &f(r#"{"dangling":["true"]}"#),
            &json!({"RepoTags": []})
        ));
        // Names of any characters (a loaded archive's) are matched, never split inside one.
        assert!(image(
            &f(r#"{"reference":["*"]}"#),
            &json!({"RepoTags": ["é:1"]})
        ));
        assert!(image(
            &f(r#"{"reference":["é*"]}"#),
            &json!({"RepoTags": ["éa:1"]})
        ));
    }
}
