//! The merged tree to a project: name, profiles, references, normalization,
//! typed model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use stack_model::{names, Project};

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, LoadError, Span};
use crate::env::Environment;
use crate::load::{set, SourceFile};
use crate::node::{Key, Map, Node, Value};
use crate::Options;

/// A loaded project and what was learned on the way.
#[derive(Debug)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<Diagnostic>,
    pub env: Environment,
    pub files: Vec<PathBuf>,
    pub project_dir: PathBuf,
    /// Services left out because none of their profiles is enabled.
    pub disabled: Vec<String>,
    /// Every profile named by any service, enabled or not.
    pub profiles: Vec<String>,
    /// Variables the files refer to: name, default, required, first use.
    pub variables: Vec<(String, Option<String>, bool, Span)>,
}

/// A directory name made into a project name, as compose does.
pub fn normalize_name(n: &str) -> String {
    let lower: String = n
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    lower.trim_start_matches(['-', '_']).to_string()
}

pub fn resolve_name(
    opts: &Options,
    env: &Environment,
    parsed: &[(&SourceFile, Vec<Node>)],
    project_dir: &Path,
    diags: &mut Diagnostics,
) -> Option<String> {
    let check = |name: &str, span: &Span, diags: &mut Diagnostics| match names::check(
        names::Kind::Project,
        name,
    ) {
        Ok(()) => Some(name.to_string()),
        Err(e) => {
            diags.error(span, e.to_string());
            None
        }
    };
    if let Some(n) = &opts.project_name {
        return check(n, &Span::whole("-p"), diags);
    }
    if let Some(n) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        return check(n, &Span::whole("COMPOSE_PROJECT_NAME"), diags);
    }
    let from_files = parsed
        .iter()
        .flat_map(|(_, docs)| docs.iter())
        .filter_map(|d| d.get("name"))
        .next_back();
    if let Some(n) = from_files {
        let mut unset = Vec::new();
        let lookup = env.lookup();
        let text = n.as_str().unwrap_or_default();
        let value = if opts.no_interpolate {
            Ok(text.to_string())
        } else {
            crate::interpolate::substitute(text, &lookup, &mut unset)
        };
        match value {
            Ok(v) if !v.is_empty() => return check(&v, &n.span, diags),
            Ok(_) => {}
            Err(e) => {
                diags.error(&n.span, e.to_string());
                return None;
            }
        }
    }
    let base = project_dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let n = normalize_name(&base);
    if n.is_empty() {
        diags.error(
            &Span::whole(&project_dir.display().to_string()),
            format!("project name `{base}` taken from the directory is empty once normalized: set one with `-p` or `name:`"),
        );
        return None;
    }
    Some(n)
}

/// Every name the files give (keys of the top-level sections, their
/// `name:`s, `container_name`) against Docker's and compose's rules: names
/// become file names under the store root, so none may be `..`, hold a `/`
/// or begin with `-`.
fn check_names(root: &Node, interpolated: bool, diags: &mut Diagnostics) {
    let mut check = |kind, name: &str, span: &Span| {
        if let Err(e) = names::check(kind, name) {
            diags.error(span, e.to_string());
        }
    };
    for (section, kind) in [
        ("services", names::Kind::Service),
        ("networks", names::Kind::Network),
        ("volumes", names::Kind::Volume),
        ("configs", names::Kind::Config),
        ("secrets", names::Kind::Secret),
    ] {
        for (k, v) in root
            .get(section)
            .and_then(Node::as_map)
            .map(|m| m.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            check(kind, &k.name, &k.span);
            let field = if section == "services" {
                "container_name"
            } else {
                "name"
            };
            let kind = if section == "services" {
                names::Kind::Container
            } else {
                kind
            };
            // Uninterpolated (`config --no-interpolate`), a name may still
            // hold `${VAR}`; one that is not a string the schema reports.
            if let Some(n) = v
                .get(field)
                .filter(|_| interpolated)
                .and_then(|n| Some((n.as_str()?, &n.span)))
            {
                check(kind, n.0, n.1);
            }
        }
    }
}

fn services(root: &Node) -> Vec<(&Key, &Node)> {
    root.get("services")
        .and_then(Node::as_map)
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

fn strs(n: Option<&Node>) -> Vec<String> {
    n.and_then(Node::as_seq)
        .map(|s| {
            s.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Leaves out services whose profiles are all disabled.
fn apply_profiles(
    root: &mut Node,
    opts: &Options,
    env: &Environment,
) -> (Vec<String>, Vec<String>) {
    let mut enabled: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        enabled.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let mut all = BTreeSet::new();
    for (k, s) in services(root) {
        let profiles = strs(s.get("profiles"));
        all.extend(profiles.iter().cloned());
        if opts.services.contains(&k.name) {
            enabled.extend(profiles);
        }
    }
    let mut disabled = Vec::new();
    if let Some(m) = root
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    {
        m.entries.retain(|(k, s)| {
            let profiles = strs(s.get("profiles"));
            let on = profiles.is_empty()
                || enabled.contains("*")
                || profiles.iter().any(|p| enabled.contains(p))
                || opts.services.contains(&k.name);
            if !on {
                disabled.push(k.name.clone());
            }
            on
        });
    }
    (disabled, all.into_iter().collect())
}

/// Cross-references: every name a service uses must be defined.
fn check_references(root: &Node, disabled: &[String], diags: &mut Diagnostics) {
    let defined = |section: &str| -> Vec<String> {
        root.get(section)
            .and_then(Node::as_map)
            .map(|m| m.keys().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (networks, volumes, secrets, configs) = (
        defined("networks"),
        defined("volumes"),
        defined("secrets"),
        defined("configs"),
    );
    let service_names: Vec<String> = services(root).iter().map(|(k, _)| k.name.clone()).collect();
    let undefined = |kind: &str,
                     svc: &str,
                     name: &str,
                     span: &Span,
                     known: &[String],
                     diags: &mut Diagnostics| {
        let mut d = Diagnostic::error(
            span,
            format!("service `{svc}` refers to undefined {kind} `{name}`"),
        );
        if let Some(s) = did_you_mean(name, known.iter().map(String::as_str)) {
            d = d.with_hint(format!("did you mean `{s}`?"));
        } else if kind != "service" {
            d = d.with_hint(format!("define it under the top-level `{kind}s:` section"));
        }
        diags.push(d);
    };
    for (k, s) in services(root) {
        let svc = k.name.as_str();
        if s.get("image").is_none() && s.get("build").is_none() && s.get("provider").is_none() {
            diags.error(
                &k.span,
                format!("service `{svc}` has neither an image nor a build context specified"),
            );
        }
        if let Some(deps) = s.get("depends_on").and_then(Node::as_map) {
            for (dk, dv) in deps.iter() {
                let required = dv.get("required").and_then(Node::as_str) != Some("false");
                if service_names.contains(&dk.name) {
                    continue;
                }
                if disabled.contains(&dk.name) && required {
                    diags.error(
                        &dk.span,
                        format!(
                            "service `{svc}` depends on `{}`, which is disabled by its profiles",
                            dk.name
                        ),
                    );
                } else if !required {
                    diags.warning(&dk.span, format!("service `{svc}` has an optional dependency on `{}`, which is not defined", dk.name));
                } else if !disabled.contains(&dk.name) {
                    undefined("service", svc, &dk.name, &dk.span, &service_names, diags);
                }
            }
        }
        for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
            let Some(mode) = s.get(ns) else { continue };
            if let Some(other) = mode.as_str().and_then(|m| m.strip_prefix("service:")) {
                if !service_names.contains(&other.to_string()) {
                    undefined("service", svc, other, &mode.span, &service_names, diags);
                }
            }
        }
        if let Some(mode) = s.get("network_mode") {
            if s.get("networks").is_some() {
                diags.error(
                    &mode.span,
                    format!("service `{svc}` sets both `network_mode` and `networks`"),
                );
            }
        }
        for v in s
            .get("volumes_from")
            .and_then(Node::as_seq)
            .unwrap_or_default()
        {
            let name = v
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            if !name.is_empty()
                && !name.starts_with("container")
                && !service_names.contains(&name.to_string())
            {
                undefined("service", svc, name, &v.span, &service_names, diags);
            }
        }
        if let Some(nets) = s.get("networks").and_then(Node::as_map) {
            for (nk, _) in nets.iter() {
                if nk.name != "default" && !networks.contains(&nk.name) {
                    undefined("network", svc, &nk.name, &nk.span, &networks, diags);
                }
            }
        }
        for v in s.get("volumes").and_then(Node::as_seq).unwrap_or_default() {
            let is_volume = v.get("type").and_then(Node::as_str) == Some("volume");
            if let (true, Some(src)) = (is_volume, v.get("source").and_then(Node::as_str)) {
                if !volumes.contains(&src.to_string()) {
                    undefined("volume", svc, src, &v.span, &volumes, diags);
                }
            }
        }
        if let Some(models) = s.get("models").and_then(Node::as_map) {
            let known = defined("models");
            for (mk, _) in models.iter() {
                if !known.contains(&mk.name) {
                    undefined("model", svc, &mk.name, &mk.span, &known, diags);
                }
            }
        }
        for (kind, known) in [("secret", &secrets), ("config", &configs)] {
            for r in s
                .get(&format!("{kind}s"))
                .and_then(Node::as_seq)
                .unwrap_or_default()
            {
                if let Some(src) = r.get("source").and_then(Node::as_str) {
                    if !known.contains(&src.to_string()) {
                        undefined(kind, svc, src, &r.span, known, diags);
                    }
                }
            }
        }
        check_service_rules(svc, s, diags);
        if let Some(cn) = s.get("container_name") {
            let count =
                |n: Option<&Node>| n.and_then(Node::as_str).and_then(|v| v.parse::<i64>().ok());
            let replicas = count(s.get("scale"))
                .or_else(|| count(s.get("deploy").and_then(|d| d.get("replicas"))));
            if replicas.is_some_and(|r| r > 1) {
                diags.error(
                    &cn.span,
                    format!("service `{svc}` sets `container_name` and more than one replica: container names must be unique"),
                );
            }
        }
    }
    if let Some(secrets) = root.get("secrets").and_then(Node::as_map) {
        for (k, v) in secrets.iter() {
            let external = v.get("external").and_then(Node::as_str) == Some("true");
            if !external && v.get("file").is_none() && v.get("environment").is_none() {
                diags.error(
                    &k.span,
                    format!(
                        "secret `{}` must declare either `file` or `environment`",
                        k.name
                    ),
                );
            }
        }
    }
    // Cycles.
    let mut edges = Vec::new();
    for (k, s) in services(root) {
        for dep in s
            .get("depends_on")
            .and_then(Node::as_map)
            .map(|m| m.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            edges.push(stack_graph::Edge {
                from: k.name.clone(),
                to: dep.to_string(),
                kind: stack_graph::EdgeKind::DependsOn,
                detail: None,
            });
        }
    }
    let graph = stack_graph::Graph::new(service_names.clone(), edges);
    for cycle in graph.cycles() {
        let first = &cycle.0[0];
        let span = services(root)
            .iter()
            .find(|(k, _)| k.name == *first)
            .map(|(k, _)| k.span.clone())
            .unwrap_or_else(|| root.span.clone());
        diags.error(&span, format!("dependency cycle between services: {cycle}"));
    }
}

/// compose-go's per-service consistency rules.
fn check_service_rules(svc: &str, s: &Node, diags: &mut Diagnostics) {
    let at = |path: &[&str]| -> Option<&Node> {
        let mut n = s;
        for k in path {
            n = n.get(k)?;
        }
        Some(n)
    };
    let text = |n: &Node| n.as_str().map(str::trim).unwrap_or_default().to_string();
    if let Some(b) = s.get("build") {
        if b.get("dockerfile").is_some() && b.get("dockerfile_inline").is_some() {
            diags.error(&b.span, format!("service `{svc}` declares mutually exclusive `dockerfile` and `dockerfile_inline`"));
        }
    }
    if let Some(test) = at(&["healthcheck", "test"]) {
        if let Some(first) = test.as_seq().and_then(|t| t.first()) {
            if !matches!(first.as_str(), Some("CMD" | "CMD-SHELL" | "NONE")) {
                diags.error(
                    &first.span,
                    "healthcheck.test must start with `CMD`, `CMD-SHELL` or `NONE`",
                );
            }
        }
    }
    for (n, what) in [
        (s.get("scale"), "scale"),
        (at(&["deploy", "replicas"]), "deploy.replicas"),
    ] {
        if let Some(n) = n {
            if text(n).parse::<i64>().is_ok_and(|v| v < 0) {
                diags.error(
                    &n.span,
                    format!("services.{svc}.{what}: must be greater than or equal to 0"),
                );
            }
        }
    }
    // Two spellings of one setting must agree.
    let same = |a: &Node, b: &Node, parse: &dyn Fn(&str) -> Option<String>| {
        parse(&text(a)) == parse(&text(b))
    };
    let int = |v: &str| v.parse::<i64>().ok().map(|i| i.to_string());
    let float = |v: &str| v.parse::<f64>().ok().map(|f| f.to_string());
    let bytes = |v: &str| stack_model::parse_bytes(v).ok().map(|b| b.to_string());
    /// (key, its node, the key it must agree with, that node, how to compare).
    type Pair<'a> = (
        &'a str,
        Option<&'a Node>,
        &'a str,
        Option<&'a Node>,
        &'a dyn Fn(&str) -> Option<String>,
    );
    let pairs: [Pair; 5] = [
        (
            "scale",
            s.get("scale"),
            "deploy.replicas",
            at(&["deploy", "replicas"]),
            &int,
        ),
        (
            "cpus",
            s.get("cpus"),
            "deploy.resources.limits.cpus",
            at(&["deploy", "resources", "limits", "cpus"]),
            &float,
        ),
        (
            "mem_limit",
            s.get("mem_limit"),
            "deploy.resources.limits.memory",
            at(&["deploy", "resources", "limits", "memory"]),
            &bytes,
        ),
        (
            "mem_reservation",
            s.get("mem_reservation"),
            "deploy.resources.reservations.memory",
            at(&["deploy", "resources", "reservations", "memory"]),
            &bytes,
        ),
        (
            "pids_limit",
            s.get("pids_limit"),
            "deploy.resources.limits.pids",
            at(&["deploy", "resources", "limits", "pids"]),
            &int,
        ),
    ];
    for (a_name, a, b_name, b, parse) in pairs {
        if let (Some(a), Some(b)) = (a, b) {
            if !same(a, b, parse) {
                diags.error(
                    &b.span,
                    format!(
                        "services.{svc}: can't set distinct values on `{a_name}` and `{b_name}`"
                    ),
                );
            }
        }
    }
    for w in at(&["develop", "watch"])
        .and_then(Node::as_seq)
        .unwrap_or_default()
    {
        let action = w.get("action").and_then(Node::as_str).unwrap_or_default();
        // (`restart` syncs nothing either: compose-go does not ask for one.)
        if action != "rebuild" && action != "restart" && w.get("target").is_none() {
            diags.error(
                &w.span,
                format!("services.{svc}.develop.watch: target is required for non-rebuild actions"),
            );
        }
    }
}

/// Takes the `x-*` keys out of a mapping.
fn take_extensions(m: &mut Map) -> Vec<(Key, Node)> {
    let (ext, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut m.entries)
        .into_iter()
        .partition(|(k, _)| k.name.starts_with("x-"));
    m.entries = rest;
    ext
}

fn remove_extensions_deep(n: &mut Node, free_keys: bool) {
    match &mut n.value {
        Value::Map(m) => {
            if !free_keys {
                m.entries.retain(|(k, _)| !k.name.starts_with("x-"));
            }
            for (k, v) in m.entries.iter_mut() {
                let free = matches!(
                    k.name.as_str(),
                    "labels"
                        | "environment"
                        | "annotations"
                        | "sysctls"
                        | "args"
                        | "driver_opts"
                        | "options"
                        | "extra_hosts"
                );
                remove_extensions_deep(v, free);
            }
        }
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|i| remove_extensions_deep(i, false)),
        _ => {}
    }
}

/// Where `x-*` extensions were found: (section, item, extensions).
type Extensions = Vec<(Option<(&'static str, String)>, Vec<(Key, Node)>)>;

fn extract_extensions(root: &mut Node) -> Extensions {
    let mut out = Vec::new();
    let Some(top) = root.as_map_mut() else {
        return out;
    };
    out.push((None, take_extensions(top)));
    for section in ["services", "networks", "volumes", "secrets", "configs"] {
        if let Some(items) = top.get_mut(section).and_then(Node::as_map_mut) {
            for (k, v) in items.entries.iter_mut() {
                if let Some(m) = v.as_map_mut() {
                    out.push((Some((section, k.name.clone())), take_extensions(m)));
                    if let Some(b) = m.get_mut("build").and_then(Node::as_map_mut) {
                        out.push((Some(("build", k.name.clone())), take_extensions(b)));
                    }
                }
                remove_extensions_deep(v, true);
            }
        }
    }
    out
}

/// Compose's normalization: defaults filled in, names given, env resolved.
fn normalize(
    root: &mut Node,
    name: &str,
    dir: &Path,
    env: &Environment,
    resolve_env: bool,
    diags: &mut Diagnostics,
) {
    let span = root.span.clone();
    let mut uses_default = false;
    let lookup = env.lookup();
    if let Some(svcs) = root
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    {
        for (_, s) in svcs.entries.iter_mut() {
            let Some(m) = s.as_map_mut() else { continue };
            let no_networks = match m.get("networks") {
                None => true,
                Some(n) => n.is_null() || n.as_map().is_some_and(|nm| nm.entries.is_empty()),
            };
            if m.get("provider").is_none() && m.get("network_mode").is_none() && no_networks {
                let mut nets = Map::default();
                set(&mut nets, "default", Node::null(span.clone()));
                set(m, "networks", Node::map(nets, span.clone()));
            }
            if m.get("networks").and_then(|n| n.get("default")).is_some() {
                uses_default = true;
            }
            // Implicit dependencies, in compose-go's order and with its `restart` flags:
            // links and shared namespaces restart with their target, volumes_from does not.
            let mut implicit: Vec<(String, bool)> = Vec::new();
            for l in strs(m.get("links")) {
                implicit.push((l.split(':').next().unwrap_or_default().to_string(), true));
            }
            for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
                if let Some(other) = m
                    .get(ns)
                    .and_then(Node::as_str)
                    .and_then(|v| v.strip_prefix("service:"))
                {
                    implicit.push((other.to_string(), true));
                }
            }
            for v in strs(m.get("volumes_from")) {
                let n = v.split(':').next().unwrap_or_default().to_string();
                if !n.starts_with("container") {
                    implicit.push((n, false));
                }
            }
            if !implicit.is_empty() {
                if m.get("depends_on").is_none() {
                    set(m, "depends_on", Node::map(Map::default(), span.clone()));
                }
                if let Some(deps) = m.get_mut("depends_on").and_then(Node::as_map_mut) {
                    for (d, restart) in implicit {
                        if deps.get(&d).is_none() {
                            let mut dm = Map::default();
                            set(
                                &mut dm,
                                "condition",
                                Node::string("service_started", span.clone()),
                            );
                            set(
                                &mut dm,
                                "restart",
                                Node::plain(restart.to_string(), span.clone()),
                            );
                            set(&mut dm, "required", Node::plain("true", span.clone()));
                            set(deps, &d, Node::map(dm, span.clone()));
                        }
                    }
                }
            }
            if m.get("pull_policy").and_then(Node::as_str) == Some("if_not_present") {
                set(m, "pull_policy", Node::string("missing", span.clone()));
            }
            if let Some(b) = m.get_mut("build").and_then(Node::as_map_mut) {
                if b.get("context").is_none() {
                    set(b, "context", Node::string(".", span.clone()));
                }
                if b.get("dockerfile").is_none() && b.get("dockerfile_inline").is_none() {
                    set(b, "dockerfile", Node::string("Dockerfile", span.clone()));
                }
                // Build args without a value come from the environment, or are dropped.
                if let Some(args) = b.get_mut("args").and_then(Node::as_map_mut) {
                    args.entries.retain_mut(|(k, v)| {
                        if !v.is_null() {
                            return true;
                        }
                        match lookup(&k.name) {
                            Some(val) => {
                                *v = Node::string(val, v.span.clone());
                                true
                            }
                            None => false,
                        }
                    });
                }
            }
            // Volume targets cleaned as paths (`/data/` is `/data`).
            if let Some(Value::Seq(vols)) = m.get_mut("volumes").map(|n| &mut n.value) {
                for v in vols.iter_mut().filter_map(Node::as_map_mut) {
                    if let Some(t) = v.get_mut("target") {
                        if let Value::Scalar(sc) = &mut t.value {
                            if sc.text.starts_with('/') {
                                sc.text = crate::paths::clean(Path::new(&sc.text))
                                    .display()
                                    .to_string();
                            }
                        }
                    }
                }
            }
            // pre_start hooks run the service's image unless they name one.
            if let Some(image) = m.get("image").cloned() {
                if let Some(Value::Seq(hooks)) = m.get_mut("pre_start").map(|n| &mut n.value) {
                    for h in hooks.iter_mut().filter_map(Node::as_map_mut) {
                        if h.get("image").is_none() {
                            set(h, "image", image.clone());
                        }
                    }
                }
            }
            if resolve_env {
                resolve_environment(m, dir, &lookup, diags);
            }
            resolve_label_files(m, dir, diags);
        }
    }
    let Some(top) = root.as_map_mut() else { return };
    if uses_default {
        if top.get("networks").is_none() {
            set(top, "networks", Node::map(Map::default(), span.clone()));
        }
        if let Some(nets) = top.get_mut("networks").and_then(Node::as_map_mut) {
            if nets.get("default").is_none() || nets.get("default").is_some_and(Node::is_null) {
                set(nets, "default", Node::map(Map::default(), span.clone()));
            }
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        let Some(items) = top.get_mut(section).and_then(Node::as_map_mut) else {
            continue;
        };
        for (k, v) in items.entries.iter_mut() {
            if v.is_null() {
                *v = Node::map(Map::default(), k.span.clone());
            }
            let Some(m) = v.as_map_mut() else { continue };
            if m.get("name").is_some() {
                continue;
            }
            let external = m.get("external").and_then(Node::as_str) == Some("true");
            let n = if external {
                k.name.clone()
            } else {
                format!("{name}_{}", k.name)
            };
            set(m, "name", Node::string(n, k.span.clone()));
        }
    }
}

/// `label_file` contents merged under `labels` (explicit labels win).
fn resolve_label_files(m: &mut Map, dir: &Path, diags: &mut Diagnostics) {
    let mut from_files: Vec<(String, String, Span)> = Vec::new();
    for f in m
        .get("label_file")
        .and_then(Node::as_seq)
        .unwrap_or_default()
    {
        let Some(path) = f.as_str() else { continue };
        let none = |_: &str| None;
        // (Relative when paths are kept as written: from the project directory.)
        match std::fs::read_to_string(dir.join(path)) {
            Ok(text) => match crate::dotenv::parse(&text, &none) {
                Ok(vars) => {
                    from_files.extend(vars.into_iter().map(|(k, v)| (k, v, f.span.clone())))
                }
                Err(e) => diags.error(&f.span, format!("label file `{path}`: {e}")),
            },
            Err(e) => diags.error(&f.span, format!("label file `{path}` not found: {e}")),
        }
    }
    add_missing(m, "labels", from_files);
}

/// Puts values read from files under `key` (created if needed) where the
/// file's own mapping has no value yet: explicit entries win. Returns that mapping.
fn add_missing<'m>(
    m: &'m mut Map,
    key: &str,
    from_files: Vec<(String, String, Span)>,
) -> Option<&'m mut Map> {
    if m.get(key).is_none() {
        let span = from_files.first().map(|f| f.2.clone())?;
        set(m, key, Node::map(Map::default(), span));
    }
    let target = m.get_mut(key).and_then(Node::as_map_mut)?;
    for (k, v, s) in from_files {
        if target.get(&k).is_none() {
            target.insert(
                Key {
                    name: k,
                    span: s.clone(),
                },
                Node::string(v, s),
            );
        }
    }
    Some(target)
}

/// `env_file` contents and bare `KEY` entries resolved into `environment`.
fn resolve_environment(
    m: &mut Map,
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) {
    let mut from_files: Vec<(String, String, Span)> = Vec::new();
    for f in m.get("env_file").and_then(Node::as_seq).unwrap_or_default() {
        let Some(path) = f.get("path").and_then(Node::as_str) else {
            continue;
        };
        let required = f.get("required").and_then(Node::as_str) != Some("false");
        let raw = f.get("format").and_then(Node::as_str) == Some("raw");
        match std::fs::read_to_string(dir.join(path)) {
            Ok(text) => {
                let parsed = crate::dotenv::parse_format(&text, raw, &lookup);
                match parsed {
                    Ok(vars) => {
                        from_files.extend(vars.into_iter().map(|(k, v)| (k, v, f.span.clone())))
                    }
                    Err(e) => diags.error(&f.span, format!("env file `{path}`: {e}")),
                }
            }
            Err(_) if !required => {}
            Err(e) => diags.error(&f.span, format!("env file `{path}` not found: {e}")),
        }
    }
    let Some(envm) = add_missing(m, "environment", from_files) else {
        return;
    };
    for (k, v) in envm.entries.iter_mut() {
        if v.is_null() {
            if let Some(val) = lookup(&k.name) {
                *v = Node::string(val, v.span.clone());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    mut root: Node,
    name: String,
    project_dir: &Path,
    env: &Environment,
    opts: &Options,
    files: Vec<PathBuf>,
    mut diags: Diagnostics,
) -> Result<Loaded, LoadError> {
    let fail = |diags: Diagnostics| LoadError {
        diagnostics: diags.into_vec(),
    };
    let (disabled, profiles) = apply_profiles(&mut root, opts, env);
    check_names(&root, !opts.no_interpolate, &mut diags);
    if !opts.no_consistency {
        check_references(&root, &disabled, &mut diags);
    }
    if let Some(m) = root.as_map_mut() {
        m.remove("name");
    }
    if !opts.no_normalize {
        normalize(
            &mut root,
            &name,
            project_dir,
            env,
            !opts.no_env_resolution,
            &mut diags,
        );
    }
    let extensions = extract_extensions(&mut root);
    if diags.has_errors() {
        return Err(fail(diags));
    }
    let mut project: Project = match crate::de::from_node(&root) {
        Ok(p) => p,
        Err(e) => {
            let span = e.span.clone().unwrap_or_else(|| root.span.clone());
            diags.error(&span, e.message);
            return Err(fail(diags));
        }
    };
    project.name = name;
    if opts.only_used_resources {
        project = project.without_unused_resources();
    }
    for (place, ext) in extensions {
        if ext.is_empty() {
            continue;
        }
        let values: Vec<(String, stack_model::Value)> = ext
            .iter()
            .filter_map(|(k, v)| {
                crate::de::from_node::<stack_model::Value>(v)
                    .ok()
                    .map(|val| (k.name.clone(), val))
            })
            .collect();
        let target = match place {
            None => Some(&mut project.extensions),
            Some(("services", n)) => project.services.get_mut(&n).map(|s| &mut s.extensions),
            Some(("networks", n)) => project.networks.get_mut(&n).map(|s| &mut s.extensions),
            Some(("volumes", n)) => project.volumes.get_mut(&n).map(|s| &mut s.extensions),
            Some(("secrets", n)) => project.secrets.get_mut(&n).map(|s| &mut s.extensions),
            Some(("configs", n)) => project.configs.get_mut(&n).map(|s| &mut s.extensions),
            Some(("build", n)) => project
                .services
                .get_mut(&n)
                .and_then(|s| s.build.as_mut())
                .map(|b| &mut b.extensions),
            Some(_) => None,
        };
        if let Some(t) = target {
            t.extend(values);
        }
    }
    let variables = Vec::new();
    Ok(Loaded {
        project,
        warnings: diags.into_vec(),
        env: env.clone(),
        files,
        project_dir: project_dir.to_path_buf(),
        disabled,
        profiles,
        variables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_project_names() {
        assert_eq!(normalize_name("My App.Dir"), "myappdir");
        assert_eq!(normalize_name("__x"), "x");
    }
}
