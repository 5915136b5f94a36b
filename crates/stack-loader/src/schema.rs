//! The shape of a stack file: which keys exist where, and what they hold.
//!
//! One table serves two ends: `validate` checks a file's tree against it
//! (unknown keys with a "did you mean", wrong types, all at their positions),
//! and `json_schema` renders it as the JSON Schema in `schemas/`, which a test
//! keeps equal to the checked-in file.

use crate::diag::{did_you_mean, Diagnostic, Diagnostics};
use crate::node::{resolve_plain, Node, Resolved, Value};

/// What a value may be.
#[derive(Debug)]
pub enum T {
    Any,
    Str,
    Int,
    Num,
    Bool,
    /// A Go-style duration string (`1m30s`) or a number of seconds.
    Duration,
    /// A byte size: a number or a string with a unit (`512m`).
    Bytes,
    Enum(&'static [&'static str]),
    /// A string or a list of strings.
    StrOrList,
    /// `- KEY=value` list or a mapping of scalars.
    ListOrMap,
    List(&'static T),
    /// A mapping with free keys.
    Map(&'static T),
    Obj(&'static Obj),
    OneOf(&'static [T]),
}

#[derive(Debug)]
pub struct Obj {
    pub name: &'static str,
    pub fields: &'static [(&'static str, T)],
    /// `x-*` keys are allowed.
    pub ext: bool,
}

use T::*;

const STR_LIST: T = List(&Str);
const LABELS: T = ListOrMap;

pub static PROJECT: Obj = Obj {
    name: "project",
    ext: true,
    fields: &[
        ("version", Str),
        ("name", Str),
        ("include", List(&OneOf(&[Str, Obj(&INCLUDE)]))),
        ("services", Map(&Obj(&SERVICE))),
        ("networks", Map(&Obj(&NETWORK))),
        ("volumes", Map(&Obj(&VOLUME))),
        ("secrets", Map(&Obj(&SECRET))),
        ("configs", Map(&Obj(&CONFIG))),
        ("models", Map(&Obj(&MODEL))),
    ],
};

static INCLUDE: Obj = Obj {
    name: "include",
    ext: false,
    fields: &[
        ("path", StrOrList),
        ("env_file", StrOrList),
        ("project_directory", Str),
    ],
};

static MODEL: Obj = Obj {
    name: "model",
    ext: true,
    fields: &[
        ("name", Str),
        ("model", Str),
        ("context_size", Int),
        ("runtime_flags", STR_LIST),
    ],
};

const EXTERNAL: T = OneOf(&[Bool, Obj(&EXTERNAL_OBJ)]);
static EXTERNAL_OBJ: Obj = Obj {
    name: "external",
    ext: true,
    fields: &[("name", Str)],
};

pub static NETWORK: Obj = Obj {
    name: "network",
    ext: true,
    fields: &[
        ("name", Str),
        ("driver", Str),
        ("driver_opts", Map(&OneOf(&[Str, Num]))),
        ("ipam", Obj(&IPAM)),
        ("external", EXTERNAL),
        ("internal", Bool),
        ("enable_ipv4", Bool),
        ("enable_ipv6", Bool),
        ("attachable", Bool),
        ("labels", LABELS),
    ],
};

static IPAM: Obj = Obj {
    name: "ipam",
    ext: true,
    fields: &[
        ("driver", Str),
        ("config", List(&Obj(&IPAM_CONFIG))),
        ("options", Map(&Str)),
    ],
};

static IPAM_CONFIG: Obj = Obj {
    name: "ipam config",
    ext: true,
    fields: &[
        ("subnet", Str),
        ("ip_range", Str),
        ("gateway", Str),
        ("aux_addresses", Map(&Str)),
    ],
};

pub static VOLUME: Obj = Obj {
    name: "volume",
    ext: true,
    fields: &[
        ("name", Str),
        ("driver", Str),
        ("driver_opts", Map(&OneOf(&[Str, Num]))),
        ("external", EXTERNAL),
        ("labels", LABELS),
    ],
};

pub static SECRET: Obj = Obj {
    name: "secret",
    ext: true,
    fields: &[
        ("name", Str),
        ("environment", Str),
        ("file", Str),
        ("external", EXTERNAL),
        ("labels", LABELS),
        ("driver", Str),
        ("driver_opts", Map(&OneOf(&[Str, Num]))),
        ("template_driver", Str),
    ],
};

pub static CONFIG: Obj = Obj {
    name: "config",
    ext: true,
    fields: &[
        ("name", Str),
        ("content", Str),
        ("environment", Str),
        ("file", Str),
        ("external", EXTERNAL),
        ("labels", LABELS),
        ("template_driver", Str),
    ],
};

const COMMAND: T = OneOf(&[Str, List(&Str)]);
static HEALTHCHECK: Obj = Obj {
    name: "healthcheck",
    ext: true,
    fields: &[
        ("disable", Bool),
        ("interval", Duration),
        ("retries", Int),
        ("test", COMMAND),
        ("timeout", Duration),
        ("start_period", Duration),
        ("start_interval", Duration),
    ],
};

static BUILD: Obj = Obj {
    name: "build",
    ext: true,
    fields: &[
        ("context", Str),
        ("dockerfile", Str),
        ("dockerfile_inline", Str),
        ("entitlements", STR_LIST),
        ("args", ListOrMap),
        ("ssh", ListOrMap),
        ("labels", LABELS),
        ("cache_from", STR_LIST),
        ("cache_to", STR_LIST),
        ("no_cache", Bool),
        ("no_cache_filter", StrOrList),
        ("additional_contexts", ListOrMap),
        ("network", Str),
        ("provenance", OneOf(&[Bool, Str])),
        ("sbom", OneOf(&[Bool, Str])),
        ("pull", Bool),
        ("target", Str),
        ("shm_size", Bytes),
        ("extra_hosts", ListOrMap),
        ("isolation", Str),
        ("privileged", Bool),
        ("secrets", List(&OneOf(&[Str, Obj(&FILE_REF)]))),
        ("tags", STR_LIST),
        ("ulimits", Map(&OneOf(&[Int, Obj(&ULIMIT)]))),
        ("platforms", STR_LIST),
    ],
};

static ULIMIT: Obj = Obj {
    name: "ulimit",
    ext: true,
    fields: &[("soft", Int), ("hard", Int)],
};

static FILE_REF: Obj = Obj {
    name: "file reference",
    ext: true,
    fields: &[
        ("source", Str),
        ("target", Str),
        ("uid", Str),
        ("gid", Str),
        ("mode", OneOf(&[Int, Str])),
    ],
};

static DEPENDS_ON_ENTRY: Obj = Obj {
    name: "depends_on entry",
    ext: true,
    fields: &[
        (
            "condition",
            Enum(&[
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ]),
        ),
        ("restart", Bool),
        ("required", Bool),
    ],
};

static PORT: Obj = Obj {
    name: "port",
    ext: true,
    fields: &[
        ("name", Str),
        ("mode", Str),
        ("host_ip", Str),
        ("target", Int),
        ("published", OneOf(&[Str, Int])),
        ("protocol", Str),
        ("app_protocol", Str),
    ],
};

static SERVICE_VOLUME: Obj = Obj {
    name: "volume mount",
    ext: true,
    fields: &[
        (
            "type",
            Enum(&["bind", "volume", "tmpfs", "cluster", "npipe", "image"]),
        ),
        ("source", Str),
        ("target", Str),
        ("read_only", Bool),
        ("consistency", Str),
        ("bind", Obj(&BIND_OPTS)),
        ("volume", Obj(&VOLUME_OPTS)),
        ("tmpfs", Obj(&TMPFS_OPTS)),
        ("image", Obj(&IMAGE_OPTS)),
    ],
};
static BIND_OPTS: Obj = Obj {
    name: "bind options",
    ext: true,
    fields: &[
        ("propagation", Str),
        ("create_host_path", Bool),
        (
            "recursive",
            Enum(&["enabled", "disabled", "writable", "readonly"]),
        ),
        ("selinux", Enum(&["z", "Z"])),
    ],
};
static VOLUME_OPTS: Obj = Obj {
    name: "volume options",
    ext: true,
    fields: &[("labels", LABELS), ("nocopy", Bool), ("subpath", Str)],
};
static TMPFS_OPTS: Obj = Obj {
    name: "tmpfs options",
    ext: true,
    fields: &[("size", Bytes), ("mode", Num)],
};
static IMAGE_OPTS: Obj = Obj {
    name: "image options",
    ext: true,
    fields: &[("subpath", Str)],
};

static SERVICE_NETWORK: Obj = Obj {
    name: "service network",
    ext: true,
    fields: &[
        ("aliases", STR_LIST),
        ("interface_name", Str),
        ("ipv4_address", Str),
        ("ipv6_address", Str),
        ("link_local_ips", STR_LIST),
        ("mac_address", Str),
        ("driver_opts", Map(&OneOf(&[Str, Num]))),
        ("priority", Int),
        ("gw_priority", Int),
    ],
};

static LOGGING: Obj = Obj {
    name: "logging",
    ext: true,
    fields: &[("driver", Str), ("options", Map(&OneOf(&[Str, Num])))],
};

static RESOURCES: Obj = Obj {
    name: "resources",
    ext: true,
    fields: &[
        ("limits", Obj(&RESOURCE_LIMITS)),
        ("reservations", Obj(&RESOURCE_RESERVATIONS)),
    ],
};
static RESOURCE_LIMITS: Obj = Obj {
    name: "limits",
    ext: true,
    fields: &[
        ("cpus", OneOf(&[Num, Str])),
        ("memory", Bytes),
        ("pids", Int),
    ],
};
static RESOURCE_RESERVATIONS: Obj = Obj {
    name: "reservations",
    ext: true,
    fields: &[
        ("cpus", OneOf(&[Num, Str])),
        ("memory", Bytes),
        ("generic_resources", List(&Any)),
        ("devices", List(&Obj(&DEVICE_REQUEST))),
    ],
};
static DEVICE_REQUEST: Obj = Obj {
    name: "device request",
    ext: true,
    fields: &[
        ("capabilities", STR_LIST),
        ("count", OneOf(&[Int, Str])),
        ("device_ids", STR_LIST),
        ("driver", Str),
        ("options", ListOrMap),
    ],
};
static RESTART_POLICY: Obj = Obj {
    name: "restart_policy",
    ext: true,
    fields: &[
        ("condition", Str),
        ("delay", Duration),
        ("max_attempts", Int),
        ("window", Duration),
    ],
};
static UPDATE_CONFIG: Obj = Obj {
    name: "update_config",
    ext: true,
    fields: &[
        ("parallelism", Int),
        ("delay", Duration),
        ("failure_action", Str),
        ("monitor", Duration),
        ("max_failure_ratio", Num),
        ("order", Enum(&["start-first", "stop-first"])),
    ],
};
static PLACEMENT: Obj = Obj {
    name: "placement",
    ext: true,
    fields: &[
        ("constraints", STR_LIST),
        ("preferences", List(&Any)),
        ("max_replicas_per_node", Int),
    ],
};
static DEPLOY: Obj = Obj {
    name: "deploy",
    ext: true,
    fields: &[
        ("mode", Str),
        ("endpoint_mode", Str),
        ("replicas", Int),
        ("labels", LABELS),
        ("rollback_config", Obj(&UPDATE_CONFIG)),
        ("update_config", Obj(&UPDATE_CONFIG)),
        ("resources", Obj(&RESOURCES)),
        ("restart_policy", Obj(&RESTART_POLICY)),
        ("placement", Obj(&PLACEMENT)),
    ],
};

static DEVELOP: Obj = Obj {
    name: "develop",
    ext: true,
    fields: &[("watch", List(&Obj(&WATCH)))],
};
static WATCH: Obj = Obj {
    name: "watch rule",
    ext: true,
    fields: &[
        ("path", Str),
        (
            "action",
            Enum(&["rebuild", "sync", "restart", "sync+restart", "sync+exec"]),
        ),
        ("target", Str),
        ("ignore", StrOrList),
        ("include", StrOrList),
        ("initial_sync", Bool),
        ("exec", Obj(&HOOK)),
    ],
};
static HOOK: Obj = Obj {
    name: "hook",
    ext: true,
    fields: &[
        ("command", COMMAND),
        ("image", Str),
        ("user", Str),
        ("privileged", Bool),
        ("working_dir", Str),
        ("environment", ListOrMap),
        ("per_replica", Bool),
    ],
};

static BLKIO_DEVICE: Obj = Obj {
    name: "blkio device",
    ext: false,
    fields: &[("path", Str), ("rate", OneOf(&[Int, Str])), ("weight", Int)],
};
static BLKIO: Obj = Obj {
    name: "blkio_config",
    ext: false,
    fields: &[
        ("device_read_bps", List(&Obj(&BLKIO_DEVICE))),
        ("device_read_iops", List(&Obj(&BLKIO_DEVICE))),
        ("device_write_bps", List(&Obj(&BLKIO_DEVICE))),
        ("device_write_iops", List(&Obj(&BLKIO_DEVICE))),
        ("weight", Int),
        ("weight_device", List(&Obj(&BLKIO_DEVICE))),
    ],
};

static ENV_FILE_ENTRY: Obj = Obj {
    name: "env_file entry",
    ext: false,
    fields: &[("path", Str), ("required", Bool), ("format", Str)],
};

static DEVICE: Obj = Obj {
    name: "device",
    ext: false,
    fields: &[("source", Str), ("target", Str), ("permissions", Str)],
};

static EXTENDS: Obj = Obj {
    name: "extends",
    ext: false,
    fields: &[("service", Str), ("file", Str)],
};

static CREDENTIAL_SPEC: Obj = Obj {
    name: "credential_spec",
    ext: true,
    fields: &[("config", Str), ("file", Str), ("registry", Str)],
};

static PROVIDER: Obj = Obj {
    name: "provider",
    ext: true,
    fields: &[("type", Str), ("options", Map(&Any))],
};

static SERVICE_MODEL: Obj = Obj {
    name: "service model",
    ext: false,
    fields: &[("endpoint_var", Str), ("model_var", Str)],
};

pub static SERVICE: Obj = Obj {
    name: "service",
    ext: true,
    fields: &[
        ("annotations", ListOrMap),
        ("attach", Bool),
        ("blkio_config", Obj(&BLKIO)),
        ("build", OneOf(&[Str, Obj(&BUILD)])),
        ("cap_add", STR_LIST),
        ("cap_drop", STR_LIST),
        ("cgroup", Enum(&["host", "private"])),
        ("cgroup_parent", Str),
        ("command", OneOf(&[Str, List(&Str)])),
        ("configs", List(&OneOf(&[Str, Obj(&FILE_REF)]))),
        ("container_name", Str),
        ("cpu_count", Int),
        ("cpu_percent", Int),
        ("cpu_shares", OneOf(&[Int, Str])),
        ("cpu_quota", OneOf(&[Int, Str])),
        ("cpu_period", OneOf(&[Int, Str])),
        ("cpu_rt_period", OneOf(&[Int, Str])),
        ("cpu_rt_runtime", OneOf(&[Int, Str])),
        ("cpus", OneOf(&[Num, Str])),
        ("cpuset", Str),
        ("credential_spec", Obj(&CREDENTIAL_SPEC)),
        (
            "depends_on",
            OneOf(&[STR_LIST, Map(&Obj(&DEPENDS_ON_ENTRY))]),
        ),
        ("deploy", Obj(&DEPLOY)),
        ("develop", Obj(&DEVELOP)),
        ("device_cgroup_rules", STR_LIST),
        ("devices", List(&OneOf(&[Str, Obj(&DEVICE)]))),
        ("dns", StrOrList),
        ("dns_opt", STR_LIST),
        ("dns_search", StrOrList),
        ("dockerfile", Str),
        ("domainname", Str),
        ("entrypoint", OneOf(&[Str, List(&Str)])),
        (
            "env_file",
            OneOf(&[Str, List(&OneOf(&[Str, Obj(&ENV_FILE_ENTRY)]))]),
        ),
        ("label_file", StrOrList),
        ("environment", ListOrMap),
        ("expose", List(&OneOf(&[Str, Int]))),
        ("extends", OneOf(&[Str, Obj(&EXTENDS)])),
        ("external_links", STR_LIST),
        ("extra_hosts", ListOrMap),
        (
            "gpus",
            OneOf(&[Enum(&["all"]), List(&Obj(&DEVICE_REQUEST))]),
        ),
        ("group_add", List(&OneOf(&[Str, Int]))),
        ("healthcheck", Obj(&HEALTHCHECK)),
        ("hostname", Str),
        ("image", Str),
        ("init", Bool),
        ("ipc", Str),
        ("isolation", Str),
        ("labels", LABELS),
        ("links", STR_LIST),
        ("logging", Obj(&LOGGING)),
        ("log_driver", Str),
        ("log_opt", Map(&Str)),
        ("mac_address", Str),
        ("mem_limit", Bytes),
        ("mem_reservation", Bytes),
        ("mem_swappiness", Int),
        ("memswap_limit", Bytes),
        ("models", OneOf(&[STR_LIST, Map(&Obj(&SERVICE_MODEL))])),
        ("network_mode", Str),
        ("networks", OneOf(&[STR_LIST, Map(&Obj(&SERVICE_NETWORK))])),
        ("oom_kill_disable", Bool),
        ("oom_score_adj", Int),
        ("pid", Str),
        ("pids_limit", Int),
        ("platform", Str),
        ("ports", List(&OneOf(&[Int, Str, Obj(&PORT)]))),
        ("post_start", List(&Obj(&HOOK))),
        ("pre_start", List(&Obj(&HOOK))),
        ("pre_stop", List(&Obj(&HOOK))),
        ("privileged", Bool),
        ("profiles", STR_LIST),
        ("provider", Obj(&PROVIDER)),
        ("pull_policy", Str),
        ("pull_refresh_after", Str),
        ("read_only", Bool),
        ("restart", Str),
        ("runtime", Str),
        ("scale", Int),
        ("secrets", List(&OneOf(&[Str, Obj(&FILE_REF)]))),
        ("security_opt", STR_LIST),
        ("shm_size", Bytes),
        ("stdin_open", Bool),
        ("stop_grace_period", Duration),
        ("stop_signal", Str),
        ("storage_opt", Map(&Any)),
        ("sysctls", ListOrMap),
        ("tmpfs", StrOrList),
        ("tty", Bool),
        ("ulimits", Map(&OneOf(&[Int, Obj(&ULIMIT)]))),
        ("use_api_socket", Bool),
        ("user", Str),
        ("userns_mode", Str),
        ("uts", Str),
        ("volume_driver", Str),
        ("volumes", List(&OneOf(&[Str, Obj(&SERVICE_VOLUME)]))),
        ("volumes_from", STR_LIST),
        ("working_dir", Str),
    ],
};

/// Attributes only Docker Swarm (or Windows) acts on: accepted, with a warning
/// that they do nothing on one host.
const IGNORED: &[(&str, &str)] = &[
    ("deploy", "placement"),
    ("deploy", "update_config"),
    ("deploy", "rollback_config"),
    ("deploy", "endpoint_mode"),
    ("service", "credential_spec"),
    ("service", "isolation"),
    ("build", "isolation"),
    ("network", "attachable"),
    ("secret", "driver"),
    ("secret", "driver_opts"),
    ("secret", "template_driver"),
    ("config", "template_driver"),
];

/// Checks a file's tree against the project shape, reporting every problem.
pub fn validate(doc: &Node, diags: &mut Diagnostics) {
    check_obj(doc, &PROJECT, diags);
}

fn check_obj(n: &Node, obj: &Obj, diags: &mut Diagnostics) {
    let Some(m) = n.as_map() else {
        if !n.is_null() {
            diags.error(
                &n.span,
                format!("{} must be a mapping, not {}", obj.name, n.kind_name()),
            );
        }
        return;
    };
    for (k, v) in m.iter() {
        if obj.ext && k.name.starts_with("x-") {
            continue;
        }
        match obj.fields.iter().find(|(name, _)| *name == k.name) {
            Some((_, t)) => {
                if IGNORED.contains(&(obj.name, k.name.as_str())) {
                    diags.warning(
                        &k.span,
                        format!(
                            "`{}` is only used by Docker Swarm or Windows hosts: ignored",
                            k.name
                        ),
                    );
                }
                check(v, t, &k.name, diags)
            }
            None => {
                let mut d = Diagnostic::error(
                    &k.span,
                    format!("{} has no attribute `{}`", obj.name, k.name),
                );
                if let Some(s) = did_you_mean(&k.name, obj.fields.iter().map(|(n, _)| *n)) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                diags.push(d);
            }
        }
    }
}

/// Whether `n` fits `t`, without reporting.
fn fits(n: &Node, t: &T) -> bool {
    let mut d = Diagnostics::default();
    check(n, t, "", &mut d);
    !d.has_errors()
}

fn scalar(n: &Node) -> Option<Resolved<'_>> {
    match &n.value {
        Value::Scalar(s) => Some(resolve_plain(s)),
        _ => None,
    }
}

fn check(n: &Node, t: &T, key: &str, diags: &mut Diagnostics) {
    if n.is_null() {
        return;
    }
    let expected = |what: &str, diags: &mut Diagnostics| {
        diags.error(
            &n.span,
            format!("`{key}` must be {what}, not {}", n.kind_name()),
        );
    };
    match t {
        Any => {}
        Str => {
            if scalar(n).is_none() {
                expected("a string", diags);
            }
        }
        Duration => match n.as_str() {
            Some(s) if stack_model::parse_duration(s).is_ok() => {}
            Some(s) => diags.error(
                &n.span,
                format!("`{key}` must be a duration like `1m30s`, not `{s}`"),
            ),
            None => expected("a duration like `1m30s`", diags),
        },
        Int => match scalar(n) {
            Some(Resolved::Int(_) | Resolved::UInt(_)) => {}
            Some(_) if n.as_str().is_some_and(|s| s.trim().parse::<i64>().is_ok()) => {}
            _ => expected("an integer", diags),
        },
        Num => match scalar(n) {
            Some(Resolved::Int(_) | Resolved::UInt(_) | Resolved::Float(_)) => {}
            Some(_) if n.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok()) => {}
            _ => expected("a number", diags),
        },
        Bool => match scalar(n) {
            Some(Resolved::Bool(_)) => {}
            Some(_)
                if n.as_str().is_some_and(|s| {
                    ["true", "false", "True", "False", "TRUE", "FALSE"].contains(&s)
                }) => {}
            _ => expected("a boolean", diags),
        },
        Bytes => match n.as_str() {
            Some(s) if stack_model::parse_bytes(s).is_ok() => {}
            Some(s) => diags.error(
                &n.span,
                format!("`{key}` must be a byte size like `512m`, not `{s}`"),
            ),
            None => expected("a byte size like `512m`", diags),
        },
        Enum(values) => match n.as_str() {
            Some(s) if values.contains(&s) => {}
            _ => {
                let d = Diagnostic::error(
                    &n.span,
                    format!(
                        "`{key}` must be one of {}",
                        values
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                diags.push(d);
            }
        },
        StrOrList => match &n.value {
            Value::Scalar(_) => {}
            Value::Seq(items) => items.iter().for_each(|i| check(i, &Str, key, diags)),
            _ => expected("a string or a list of strings", diags),
        },
        ListOrMap => match &n.value {
            Value::Seq(items) => items.iter().for_each(|i| check(i, &Str, key, diags)),
            Value::Map(m) => {
                for (_, v) in m.iter() {
                    if matches!(v.value, Value::Seq(_) | Value::Map(_)) && key != "extra_hosts" {
                        diags.error(
                            &v.span,
                            format!("`{key}` values must be strings, numbers, booleans or null"),
                        );
                    }
                }
            }
            _ => expected("a list or a mapping", diags),
        },
        List(inner) => match &n.value {
            Value::Seq(items) => items.iter().for_each(|i| check(i, inner, key, diags)),
            _ => expected("a list", diags),
        },
        Map(inner) => match &n.value {
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    check(v, inner, &k.name, diags);
                }
            }
            _ => expected("a mapping", diags),
        },
        Obj(o) => check_obj(n, o, diags),
        OneOf(options) => {
            // Report against the first option of the node's own kind, so the
            // message talks about what the user wrote.
            if options.iter().any(|o| fits(n, o)) {
                return;
            }
            let same_kind = options.iter().find(|o| {
                matches!(
                    (&n.value, o),
                    (Value::Map(_), Obj(_) | Map(_))
                        | (Value::Seq(_), List(_))
                        | (Value::Scalar(_), Str | Int | Num | Bool | Enum(_))
                )
            });
            match same_kind {
                Some(o) => check(n, o, key, diags),
                None => expected(&describe_options(options), diags),
            }
        }
    }
}

fn describe(t: &T) -> String {
    match t {
        Any => "anything".into(),
        Str | Duration | Enum(_) => "a string".into(),
        Int => "an integer".into(),
        Num => "a number".into(),
        Bool => "a boolean".into(),
        Bytes => "a byte size".into(),
        StrOrList => "a string or a list".into(),
        ListOrMap => "a list or a mapping".into(),
        List(_) => "a list".into(),
        Map(_) | Obj(_) => "a mapping".into(),
        OneOf(o) => describe_options(o),
    }
}

fn describe_options(options: &[T]) -> String {
    let mut v: Vec<String> = options.iter().map(describe).collect();
    v.dedup();
    v.join(" or ")
}

/// The table as a JSON Schema document (draft-07), for editors and other tools.
pub fn json_schema() -> serde_json::Value {
    use serde_json::{json, Map as JMap, Value as J};
    fn obj_name(o: &Obj) -> String {
        o.name.replace(' ', "_")
    }
    fn go(t: &T, defs: &mut JMap<String, J>) -> J {
        match t {
            Any => json!({}),
            Str => json!({"type": "string"}),
            Int => json!({"type": ["integer", "string"]}),
            Num => json!({"type": ["number", "string"]}),
            Bool => json!({"type": ["boolean", "string"]}),
            Duration => json!({"type": ["string", "number"], "format": "duration"}),
            Bytes => json!({"type": ["string", "integer"]}),
            Enum(v) => json!({"type": "string", "enum": v}),
            StrOrList => {
                json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
            }
            ListOrMap => json!({"oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null", "array"]}}
            ]}),
            List(inner) => json!({"type": "array", "items": go(inner, defs)}),
            Map(inner) => json!({"type": "object", "additionalProperties": go(inner, defs)}),
            Obj(o) => {
                let name = obj_name(o);
                if !defs.contains_key(&name) {
                    defs.insert(name.clone(), J::Null);
                    let def = object(o, defs);
                    defs.insert(name.clone(), def);
                }
                json!({"$ref": format!("#/definitions/{name}")})
            }
            OneOf(options) => J::Object(
                [(
                    "anyOf".to_string(),
                    J::Array(options.iter().map(|o| go(o, defs)).collect()),
                )]
                .into_iter()
                .collect(),
            ),
        }
    }
    fn object(o: &Obj, defs: &mut JMap<String, J>) -> J {
        let props: JMap<String, J> = o
            .fields
            .iter()
            .map(|(k, t)| (k.to_string(), go(t, defs)))
            .collect();
        let mut m = JMap::new();
        m.insert("type".into(), json!("object"));
        m.insert("properties".into(), J::Object(props));
        if o.ext {
            m.insert("patternProperties".into(), json!({"^x-": {}}));
        }
        m.insert("additionalProperties".into(), json!(false));
        J::Object(m)
    }
    let mut defs = JMap::new();
    let root = object(&PROJECT, &mut defs);
    let mut doc = JMap::new();
    doc.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    doc.insert("$id".into(), json!("stack/compose.schema.json"));
    doc.insert(
        "title".into(),
        json!("stack file (the Compose Specification)"),
    );
    if let J::Object(r) = root {
        doc.extend(r);
    }
    let mut sorted: Vec<(String, J)> = defs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    doc.insert(
        "definitions".into(),
        J::Object(sorted.into_iter().collect()),
    );
    J::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Keys the table accepts that the model deliberately does not keep.
    const NOT_MODELLED: &[&str] = &["version", "include", "models", "pull_refresh_after"];

    fn agree<T: for<'de> Deserialize<'de>>(obj: &Obj) {
        agree_but::<T>(obj, &[]);
    }

    /// `shared`: model fields that belong to a sibling object kept in the same type.
    fn agree_but<T: for<'de> Deserialize<'de>>(obj: &Obj, shared: &[&str]) {
        let model: Vec<&str> = stack_model::fields_of::<T>()
            .into_iter()
            .filter(|f| !shared.contains(f))
            .collect();
        assert!(!model.is_empty(), "{} has no fields", obj.name);
        let table: Vec<&str> = obj.fields.iter().map(|(k, _)| *k).collect();
        let missing_in_table: Vec<_> = model.iter().filter(|f| !table.contains(f)).collect();
        let missing_in_model: Vec<_> = table
            .iter()
            .filter(|f| !model.contains(f) && !NOT_MODELLED.contains(f))
            .collect();
        assert!(
            missing_in_table.is_empty() && missing_in_model.is_empty(),
            "{}: model fields missing from the schema table: {missing_in_table:?}; table keys missing from the model: {missing_in_model:?}",
            obj.name
        );
    }

    #[test]
    fn table_and_model_agree() {
        use stack_model as m;
        agree::<m::Project>(&PROJECT);
        agree::<m::Network>(&NETWORK);
        agree::<m::Volume>(&VOLUME);
        agree_but::<m::FileObject>(&SECRET, &["content"]);
        agree_but::<m::FileObject>(&CONFIG, &["driver", "driver_opts"]);
        agree::<m::Build>(&BUILD);
        agree::<m::HealthCheck>(&HEALTHCHECK);
        agree::<m::Deploy>(&DEPLOY);
        agree::<m::Logging>(&LOGGING);
        agree::<m::Port>(&PORT);
        agree::<m::VolumeMount>(&SERVICE_VOLUME);
        agree::<m::ServiceNetwork>(&SERVICE_NETWORK);
        agree::<m::Dependency>(&DEPENDS_ON_ENTRY);
        agree::<m::Ipam>(&IPAM);
        agree_but::<m::Resource>(&RESOURCE_RESERVATIONS, &["pids"]);
        agree_but::<m::Resource>(&RESOURCE_LIMITS, &["devices", "generic_resources"]);
        agree::<m::RestartPolicy>(&RESTART_POLICY);
        agree::<m::FileReference>(&FILE_REF);
        agree::<m::Hook>(&HOOK);
        agree::<m::Service>(&SERVICE);
    }
}
