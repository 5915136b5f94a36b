//! A loaded stack project as Kubernetes manifests, for the day a stack
//! outgrows its host (`stack kube generate`). Pure: files the project
//! refers to (configs, secrets, env files, bind mounts) come through
//! [`Sources`], so the whole mapping is tested on plain data.
//!
//! The mapping keeps the stack's meaning where Kubernetes can hold it:
//! - a workload per service: a Deployment; a StatefulSet (claims per
//!   replica, a headless Service) for a replicated service with named
//!   volumes; a Job for a service others wait on with
//!   `service_completed_successfully`; a DaemonSet for `deploy.mode: global`;
//!   `x-kubernetes: {kind: …}` chooses;
//! - a Service named after each service that has `ports` or `expose`, so
//!   names keep resolving, one per network alias; a headless one for a
//!   service that others reach by name but that declares no port (warned);
//! - `depends_on` as init containers that wait for the dependency's
//!   Service (started or, through its readiness probe, healthy) or its
//!   Job's completion, so pods start in the order `stack up` uses;
//! - `healthcheck` (and `x-stack-probe`) as readiness, liveness (more
//!   tolerant) and startup probes;
//! - named volumes as claims, small files as ConfigMaps, `configs` and
//!   `secrets` with their content, `env_file` as a ConfigMap;
//! - networks as NetworkPolicies (opt-in).
//!
//! Everything Kubernetes cannot express is a [`Warning`] naming the
//! service and the key: nothing is dropped silently.

mod chart;
pub mod names;
mod pod;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{json, Value as J};
use stack_model::{Project, Service};

pub use chart::chart;
pub use render::{files, json_list, yaml};

/// The image of the init containers that wait for a dependency's port or name.
pub const WAIT_IMAGE: &str = "busybox:1.37";
/// The image of the init containers that wait for a Job to complete.
pub const KUBECTL_IMAGE: &str = "registry.k8s.io/kubectl:v1.34.2";

/// The label that names a pod's service, and the project's.
pub const LABEL_SERVICE: &str = "app.kubernetes.io/name";
pub const LABEL_PROJECT: &str = "app.kubernetes.io/part-of";
const LABEL_MANAGED: &str = "app.kubernetes.io/managed-by";

/// How published ports are reached from outside the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Publish {
    /// A LoadBalancer Service whose port is the published port.
    #[default]
    LoadBalancer,
    /// A NodePort Service (the node port is the published one when it is in
    /// the cluster's default range, 30000-32767).
    NodePort,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub namespace: Option<String>,
    pub publish: Publish,
    /// NetworkPolicies from the stack's networks.
    pub network_policies: bool,
    /// Image references to use for services (pushed images, by digest).
    pub images: BTreeMap<String, String>,
    pub wait_image: String,
    pub kubectl_image: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            publish: Publish::default(),
            network_policies: false,
            images: BTreeMap::new(),
            wait_image: WAIT_IMAGE.into(),
            kubectl_image: KUBECTL_IMAGE.into(),
        }
    }
}

/// What is at a path of the machine the stack file is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    File { size: u64 },
    Dir,
    Other,
}

/// The files and variables a project refers to.
pub trait Sources {
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
    /// `None`: nothing there.
    fn stat(&self, path: &str) -> Option<Entry>;
    /// The names in a directory.
    fn list(&self, path: &str) -> Result<Vec<String>, String>;
    /// A variable of the project's environment.
    fn var(&self, name: &str) -> Option<String>;
    /// An env file's variables in file order, as compose reads them;
    /// `Ok(None)` when the file is missing.
    fn env_file(
        &self,
        file: &stack_model::EnvFile,
    ) -> Result<Option<Vec<(String, String)>>, String>;
}

/// Something of the stack that Kubernetes does not express as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The service, or the top-level object (`volume db`).
    pub object: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.object, self.key, self.message)
    }
}

/// What `generate` makes.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// The objects, in the order to apply them.
    pub objects: Vec<J>,
    pub warnings: Vec<Warning>,
    /// Names changed to be valid: (what, stack name, Kubernetes name).
    pub renamed: Vec<(String, String, String)>,
}

/// The kind of workload of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl Workload {
    fn parse(s: &str) -> Option<Workload> {
        Some(match s.to_ascii_lowercase().as_str() {
            "deployment" => Workload::Deployment,
            "statefulset" => Workload::StatefulSet,
            "daemonset" => Workload::DaemonSet,
            "job" => Workload::Job,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
            Workload::Job => "Job",
        }
    }
}

/// The most a ConfigMap or Secret holds (etcd's limit, with room for the rest).
pub(crate) const MAX_OBJECT: usize = 1000 * 1024;

/// The order objects are applied in.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "Job",
    "StatefulSet",
    "Deployment",
    "DaemonSet",
    "NetworkPolicy",
];

/// The project's manifests.
pub fn generate(project: &Project, options: &Options, sources: &dyn Sources) -> Manifests {
    let mut g = Gen::new(project, options, sources);
    g.run();
    let mut objects = std::mem::take(&mut g.objects);
    objects.sort_by_key(|o| {
        KIND_ORDER
            .iter()
            .position(|k| o["kind"] == *k)
            .unwrap_or(KIND_ORDER.len())
    });
    Manifests {
        objects,
        warnings: g.warnings,
        renamed: g.names.renamed,
    }
}

/// `x-kubernetes` of a service or a volume.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Extension {
    kind: Option<String>,
    service_type: Option<String>,
    size: Option<String>,
    storage_class: Option<String>,
    access_mode: Option<String>,
}

pub(crate) struct Gen<'a> {
    pub(crate) p: &'a Project,
    pub(crate) o: &'a Options,
    pub(crate) src: &'a dyn Sources,
    pub(crate) names: names::Names,
    pub(crate) objects: Vec<J>,
    pub(crate) warnings: Vec<Warning>,
    project: String,
    /// The namespace of every object, as a valid name.
    namespace: Option<String>,
    /// Services others wait on to complete.
    completion: BTreeSet<String>,
    /// The services each named volume is mounted in.
    volume_users: BTreeMap<String, BTreeSet<String>>,
    /// Volumes made as claim templates of a StatefulSet.
    templated: BTreeSet<String>,
    /// Whether some pod waits for a Job (the waiting account is made).
    waits_for_jobs: bool,
    /// The Services of aliases made so far.
    aliases: BTreeSet<String>,
}

impl<'a> Gen<'a> {
    fn new(p: &'a Project, o: &'a Options, src: &'a dyn Sources) -> Self {
        let mut completion = BTreeSet::new();
        let mut volume_users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, s) in &p.services {
            for (dep, d) in &s.depends_on {
                if d.condition == "service_completed_successfully" {
                    completion.insert(dep.clone());
                }
            }
            for m in &s.volumes {
                if let (true, Some(src)) = (m.kind == "volume", &m.source) {
                    if p.volumes.contains_key(src) {
                        volume_users
                            .entry(src.clone())
                            .or_default()
                            .insert(name.clone());
                    }
                }
            }
        }
        Gen {
            p,
            o,
            src,
            names: names::Names::default(),
            objects: Vec::new(),
            warnings: Vec::new(),
            project: names::label(&p.name),
            namespace: o.namespace.as_deref().map(names::namespace),
            completion,
            volume_users,
            templated: BTreeSet::new(),
            waits_for_jobs: false,
            aliases: BTreeSet::new(),
        }
    }

    pub(crate) fn warn(&mut self, object: &str, key: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            object: object.to_string(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// An object's metadata: its name, the namespace, the project's labels
    /// (and the service's).
    pub(crate) fn meta(&self, name: &str, service: Option<&str>) -> J {
        let mut m = json!({"name": name});
        if let Some(ns) = &self.namespace {
            m["namespace"] = json!(ns);
        }
        let mut labels = self.selector(service);
        labels[LABEL_MANAGED] = json!("stack");
        m["labels"] = labels;
        m
    }

    /// The labels that pick a service's pods (or the project's).
    pub(crate) fn selector(&self, service: Option<&str>) -> J {
        let mut l = json!({LABEL_PROJECT: self.project});
        if let Some(s) = service {
            l[LABEL_SERVICE] = json!(s);
        }
        l
    }

    pub(crate) fn push(&mut self, object: J) {
        self.objects.push(object);
    }

    fn extension(&mut self, object: &str, ext: &stack_model::Extensions) -> Extension {
        let Some(v) = ext.get("x-kubernetes") else {
            return Extension::default();
        };
        match serde_json::to_value(v).and_then(serde_json::from_value) {
            Ok(e) => e,
            Err(e) => {
                self.warn(object, "x-kubernetes", format!("{e}; ignored"));
                Extension::default()
            }
        }
    }

    fn run(&mut self) {
        if let (Some(ns), Some(ns_name)) = (self.o.namespace.clone(), self.namespace.clone()) {
            if ns_name != ns {
                self.warn(
                    "namespace",
                    "--namespace",
                    format!("`{ns}` is not a valid namespace name; `{ns_name}` is used"),
                );
            }
            self.push(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns_name, "labels": {LABEL_MANAGED: "stack"}}}));
        }
        let services: Vec<(&String, &Service)> = self.p.services.iter().collect();
        let kinds: BTreeMap<String, Workload> = services
            .iter()
            .map(|(n, s)| (n.to_string(), self.kind_of(n, s)))
            .collect();
        for (name, s) in &services {
            self.names.get("Service", "service", name);
            let _ = s;
        }
        self.file_objects();
        for (name, s) in &services {
            let kind = kinds[*name];
            self.service(name, s, kind, &kinds);
        }
        self.claims();
        if self.waits_for_jobs {
            self.job_waiter();
        }
        if self.o.network_policies {
            self.network_policies();
        }
    }

    fn kind_of(&mut self, name: &str, s: &Service) -> Workload {
        let object = format!("service {name}");
        let ext = self.extension(&object, &s.extensions);
        if let Some(k) = &ext.kind {
            match Workload::parse(k) {
                Some(w) => return w,
                None => self.warn(
                    &object,
                    "x-kubernetes.kind",
                    format!("`{k}` is none of Deployment, StatefulSet, DaemonSet, Job; ignored"),
                ),
            }
        }
        let mode = s.deploy.as_ref().and_then(|d| d.mode.as_deref());
        match mode {
            Some("global") => return Workload::DaemonSet,
            Some("replicated-job" | "global-job") => return Workload::Job,
            _ => {}
        }
        if self.completion.contains(name) {
            return Workload::Job;
        }
        let named_volume = s.volumes.iter().any(|m| {
            m.kind == "volume"
                && m.source
                    .as_ref()
                    .and_then(|v| self.p.volumes.get(v))
                    .is_some_and(|v| !v.external.0)
        });
        if s.replicas() > 1 && named_volume {
            return Workload::StatefulSet;
        }
        Workload::Deployment
    }

    /// A service's workload, its Services and what its pods need.
    fn service(
        &mut self,
        name: &str,
        s: &Service,
        kind: Workload,
        kinds: &BTreeMap<String, Workload>,
    ) {
        let n = self.names.get("Service", "service", name);
        let object = format!("service {name}");
        let mut template = self.pod(name, &n, s, kind, kinds);
        let mut spec = json!({});
        match kind {
            Workload::Job => {
                let (policy, backoff) = self.job_restart(&object, s);
                template["spec"]["restartPolicy"] = json!(policy);
                let replicas = s.replicas();
                if replicas > 1 {
                    spec["completions"] = json!(replicas);
                    spec["parallelism"] = json!(replicas);
                }
                spec["backoffLimit"] = json!(backoff);
            }
            _ => {
                self.long_running_restart(&object, s);
                spec["selector"] = json!({"matchLabels": self.selector(Some(&n))});
                if kind != Workload::DaemonSet {
                    spec["replicas"] = json!(s.replicas());
                }
            }
        }
        if kind == Workload::StatefulSet {
            let headless = self
                .names
                .derived("Service", "headless", &format!("{n}-headless"));
            spec["serviceName"] = json!(headless);
            let ports = self.service_ports(&object, s).0;
            let mut svc = json!({"clusterIP": "None", "selector": self.selector(Some(&n))});
            if !ports.is_empty() {
                svc["ports"] = json!(ports);
            }
            let meta = self.meta(&headless, Some(&n));
            self.push(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": svc}),
            );
            let mut claims = Vec::new();
            for m in &s.volumes {
                let Some(v) = m.source.as_ref().filter(|_| m.kind == "volume") else {
                    continue;
                };
                let Some(vol) = self.p.volumes.get(v) else {
                    continue;
                };
                if vol.external.0 || self.volume_users.get(v).is_some_and(|u| u.len() > 1) {
                    continue;
                }
                if !self.templated.insert(v.clone()) {
                    continue;
                }
                let claim = self.names.get("PersistentVolumeClaim", "volume", v);
                claims
                    .push(json!({"metadata": {"name": claim}, "spec": self.claim_spec(v, false)}));
            }
            spec["volumeClaimTemplates"] = json!(claims);
        }
        if kind == Workload::Deployment && pod::uses_claims(&template) {
            // A claim that one node mounts at a time: the old pod goes first.
            spec["strategy"] = json!({"type": "Recreate"});
        } else if kind == Workload::Deployment {
            if let Some(u) = s.deploy.as_ref().and_then(|d| d.update_config.as_ref()) {
                let step = u.parallelism.unwrap_or(1).max(1);
                spec["strategy"] = if u.order.as_deref() == Some("start-first") {
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": step, "maxUnavailable": 0}})
                } else {
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": step}})
                };
            }
        }
        spec["template"] = template;
        let (api, plural) = match kind {
            Workload::Job => ("batch/v1", "Job"),
            _ => ("apps/v1", kind.name()),
        };
        let mut meta = self.meta(&n, Some(&n));
        if let Some(d) = &s.deploy {
            for (k, v) in &d.labels.0 {
                if !names::is_qualified_key(k) {
                    self.warn(
                        &object,
                        "deploy.labels",
                        format!("`{k}` is not a valid label or annotation key; left out"),
                    );
                } else if names::is_label_value(v) {
                    meta["labels"][k] = json!(v);
                } else {
                    meta["annotations"][k] = json!(v);
                }
            }
        }
        self.push(json!({"apiVersion": api, "kind": plural, "metadata": meta, "spec": spec}));
        self.services_of(name, &n, s, kind);
    }

    /// A Job's `restartPolicy` and `backoffLimit` from `restart`.
    fn job_restart(&mut self, object: &str, s: &Service) -> (&'static str, u64) {
        let restart = restart_of(s);
        match restart.as_deref() {
            None | Some("no" | "none") => ("Never", 0),
            Some(r) if r.starts_with("on-failure") => {
                let n = r
                    .split_once(':')
                    .and_then(|(_, n)| n.parse().ok())
                    .or_else(|| {
                        s.deploy
                            .as_ref()
                            .and_then(|d| d.restart_policy.as_ref())
                            .and_then(|p| p.max_attempts)
                    })
                    .unwrap_or(6);
                ("OnFailure", n)
            }
            Some(r) => {
                self.warn(
                    object,
                    "restart",
                    format!("`{r}`: a Job ends when its pod succeeds; failures are retried (OnFailure, 6 times)"),
                );
                ("OnFailure", 6)
            }
        }
    }

    fn long_running_restart(&mut self, object: &str, s: &Service) {
        if let Some(r) = restart_of(s) {
            if r == "no" || r == "none" || r.starts_with("on-failure") {
                self.warn(
                    object,
                    "restart",
                    format!("`{r}`: Kubernetes restarts the pods of a long-running workload always; set `x-kubernetes: {{kind: Job}}` for a service that runs once"),
                );
            }
        }
    }

    /// The ports of a service inside the cluster (the containers' ports, as
    /// services reach each other in the stack), and those published: the
    /// published port, the container's, the protocol. A port bound to a
    /// loopback address of this host stays inside the cluster.
    fn service_ports(&mut self, object: &str, s: &Service) -> (Vec<J>, Vec<J>) {
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        let (mut seen, mut seen_out) = (BTreeSet::new(), BTreeSet::new());
        for p in &s.ports {
            let proto = protocol(p.protocol.as_deref());
            if seen.insert((p.target, proto)) {
                inside.push(json!({"name": port_name(proto, p.target), "port": p.target, "targetPort": p.target, "protocol": proto}));
            }
            let Some(published) = p.published.as_ref().and_then(|t| t.0.as_deref()) else {
                continue;
            };
            let host_ip = p.host_ip.as_deref().unwrap_or_default();
            if host_ip.starts_with("127.") || host_ip == "::1" || host_ip == "localhost" {
                self.warn(object, "ports", format!("{host_ip}:{published} is this host's loopback: the port stays inside the cluster (kubectl port-forward reaches it)"));
                continue;
            }
            if !matches!(host_ip, "" | "0.0.0.0" | "::") {
                self.warn(
                    object,
                    "ports",
                    format!(
                        "host_ip {host_ip} of port {}: the cluster chooses the addresses",
                        p.target
                    ),
                );
            }
            let port = published.parse::<u32>().unwrap_or_else(|_| {
                self.warn(
                    object,
                    "ports",
                    format!(
                        "published `{published}` is not one port: published as {}",
                        p.target
                    ),
                );
                p.target
            });
            if seen_out.insert((port, proto)) {
                outside.push(json!({"name": port_name(proto, port), "port": port, "targetPort": p.target, "protocol": proto}));
            }
        }
        for e in &s.expose.0 {
            for (port, proto) in expose_ports(e) {
                if seen.insert((port, proto)) {
                    inside.push(json!({"name": port_name(proto, port), "port": port, "targetPort": port, "protocol": proto}));
                }
            }
        }
        (inside, outside)
    }

    /// The Services of a service: its own, named after it (a cluster
    /// address, or headless), one per alias, and `NAME-public` for the
    /// published ports.
    fn services_of(&mut self, name: &str, n: &str, s: &Service, kind: Workload) {
        let object = format!("service {name}");
        let (ports, published) = self.service_ports(&object, s);
        let ext = self.extension(&object, &s.extensions);
        let reached = self.reached_by(name);
        let mut aliases: BTreeSet<String> = BTreeSet::new();
        for net in s.networks.values().flatten() {
            aliases.extend(net.aliases.iter().cloned());
        }
        if let Some(c) = &s.container_name {
            aliases.insert(c.clone());
        }
        for other in self.p.services.values() {
            for l in &other.links {
                if let Some((target, alias)) = l.split_once(':') {
                    if target == name {
                        aliases.insert(alias.to_string());
                    }
                }
            }
        }
        aliases.remove(name);
        if n != name && !reached.is_empty() {
            self.warn(
                &object,
                "name",
                format!("`{name}` is not a valid Service name: clients must reach it as `{n}`"),
            );
        }
        let mut spec = json!({"selector": self.selector(Some(n))});
        if ports.is_empty() {
            if reached.is_empty() && aliases.is_empty() {
                return;
            }
            if kind != Workload::StatefulSet || !reached.is_empty() {
                let hint = self
                    .port_hint(name)
                    .map(|p| format!(" (its users name port {p}: add `expose: [\"{p}\"]`)"))
                    .unwrap_or_default();
                self.warn(
                    &object,
                    "ports",
                    format!(
                        "reached by name ({}) but declares no `ports` or `expose`: a headless Service keeps the name resolving to its pods; declare the port{hint} for a load-balanced Service",
                        reached.join(", ")
                    ),
                );
            }
            spec["clusterIP"] = json!("None");
        } else {
            spec["ports"] = json!(ports);
        }
        let meta = self.meta(n, Some(n));
        self.push(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec.clone()}),
        );
        for a in aliases {
            let an = self.names.get("Service", "alias", &a);
            if !self.aliases.insert(an.clone()) {
                self.warn(&object, "aliases", format!("`{a}` is an alias of another service too: its Service selects the first one's pods"));
                continue;
            }
            if an != a {
                self.warn(
                    &object,
                    "aliases",
                    format!("`{a}` is not a valid Service name: clients must reach it as `{an}`"),
                );
            }
            let meta = self.meta(&an, Some(n));
            self.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec.clone()}));
        }
        if published.is_empty() {
            return;
        }
        let publish = match ext
            .service_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("nodeport") => Publish::NodePort,
            Some("loadbalancer") => Publish::LoadBalancer,
            Some(other) => {
                self.warn(
                    &object,
                    "x-kubernetes.serviceType",
                    format!("`{other}` is neither NodePort nor LoadBalancer; ignored"),
                );
                self.o.publish
            }
            None => self.o.publish,
        };
        let mut ports = published;
        let kind = match publish {
            Publish::LoadBalancer => "LoadBalancer",
            Publish::NodePort => {
                for p in &mut ports {
                    let port = p["port"].as_u64().unwrap_or(0);
                    if (30000..=32767).contains(&port) {
                        p["nodePort"] = json!(port);
                    }
                }
                "NodePort"
            }
        };
        let public = self
            .names
            .derived("Service", "public", &format!("{n}-public"));
        let meta = self.meta(&public, Some(n));
        self.push(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": kind, "selector": self.selector(Some(n)), "ports": ports}}),
        );
    }

    /// Who reaches a service by its name: through `depends_on`, `links` or
    /// a host name in their environment.
    fn reached_by(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (other, s) in &self.p.services {
            if other == name {
                continue;
            }
            let waits = s.depends_on.get(name);
            if waits.is_some_and(|d| d.condition != "service_completed_successfully") {
                out.push(format!("{other} depends on it"));
            } else if s.links.iter().any(|l| l.split(':').next() == Some(name)) {
                out.push(format!("{other} links to it"));
            } else if s
                .environment
                .0
                .values()
                .flatten()
                .any(|v| host_mentions(v, name).is_some())
            {
                out.push(format!("{other}'s environment names it"));
            }
        }
        out
    }

    /// A port other services name with this host (`db:5432`).
    fn port_hint(&self, name: &str) -> Option<u32> {
        self.p.services.values().find_map(|s| {
            s.environment
                .0
                .values()
                .flatten()
                .find_map(|v| host_mentions(v, name).flatten())
        })
    }

    /// The first TCP port of a service's Service, to wait for.
    pub(crate) fn first_port(&self, name: &str) -> Option<u32> {
        let s = self.p.services.get(name)?;
        s.ports
            .iter()
            .filter(|p| protocol(p.protocol.as_deref()) == "TCP")
            .map(|p| p.target)
            .chain(
                s.expose
                    .0
                    .iter()
                    .flat_map(|e| expose_ports(e))
                    .filter(|(_, proto)| *proto == "TCP")
                    .map(|(p, _)| p),
            )
            .next()
    }

    /// Claims of the named volumes (those not templated per replica).
    fn claims(&mut self) {
        let volumes: Vec<String> = self.volume_users.keys().cloned().collect();
        for v in volumes {
            if self.templated.contains(&v) {
                continue;
            }
            let vol = &self.p.volumes[&v];
            if vol.external.0 {
                let name = vol.name.clone().unwrap_or_else(|| v.clone());
                self.warn(
                    &format!("volume {v}"),
                    "external",
                    format!(
                        "the claim `{}` must exist in the namespace",
                        names::label(&name)
                    ),
                );
                continue;
            }
            let shared = self.volume_users[&v].len() > 1;
            let name = self.names.get("PersistentVolumeClaim", "volume", &v);
            if shared {
                let users: Vec<String> = self.volume_users[&v].iter().cloned().collect();
                self.warn(&format!("volume {v}"), "volumes", format!("mounted by {}: the claim is ReadWriteMany, which needs a storage class that offers it", users.join(", ")));
            }
            let spec = self.claim_spec(&v, shared);
            let meta = self.meta(&name, None);
            self.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}));
        }
    }

    fn claim_spec(&mut self, v: &str, shared: bool) -> J {
        let vol = &self.p.volumes[v];
        let object = format!("volume {v}");
        let ext = self.extension(&object, &vol.extensions);
        let size = ext
            .size
            .or_else(|| vol.driver_opts.0.get("size").cloned())
            .map(|s| quantity(&s))
            .unwrap_or_else(|| "1Gi".into());
        if let Some(d) = vol.driver.as_deref().filter(|d| *d != "local") {
            self.warn(
                &object,
                "driver",
                format!("`{d}`: the cluster's storage class decides where the data lives"),
            );
        }
        let mode = ext.access_mode.unwrap_or_else(|| {
            if shared {
                "ReadWriteMany"
            } else {
                "ReadWriteOnce"
            }
            .to_string()
        });
        let mut spec = json!({"accessModes": [mode], "resources": {"requests": {"storage": size}}});
        if let Some(c) = ext.storage_class {
            spec["storageClassName"] = json!(c);
        }
        spec
    }

    /// ConfigMaps of `configs` and Secrets of `secrets` that services use.
    fn file_objects(&mut self) {
        for (kind, what, objects) in [
            ("ConfigMap", "config", &self.p.configs),
            ("Secret", "secret", &self.p.secrets),
        ] {
            let used: BTreeSet<&String> = self
                .p
                .services
                .values()
                .flat_map(|s| {
                    if kind == "Secret" {
                        &s.secrets
                    } else {
                        &s.configs
                    }
                })
                .map(|r| &r.source)
                .collect();
            for (name, obj) in objects {
                if !used.contains(name) {
                    continue;
                }
                let object = format!("{what} {name}");
                let n = self.names.get(kind, what, name);
                if obj.external.0 {
                    self.warn(
                        &object,
                        "external",
                        format!(
                            "the {kind} `{n}` must exist in the namespace, with the key `{}`",
                            names::data_key(name)
                        ),
                    );
                    continue;
                }
                let content = if let Some(c) = &obj.content {
                    Ok(c.clone().into_bytes())
                } else if let Some(var) = &obj.environment {
                    self.src
                        .var(var)
                        .map(String::into_bytes)
                        .ok_or_else(|| format!("the environment variable `{var}` is not set"))
                } else if let Some(f) = &obj.file {
                    self.src
                        .read(f)
                        .map_err(|e| format!("cannot read `{f}`: {e}"))
                } else {
                    Err("no file, environment or content".into())
                };
                let content = match content {
                    Ok(c) if c.len() > MAX_OBJECT => {
                        self.warn(&object, "file", format!("{} bytes: Kubernetes keeps at most 1 MiB in a {kind}; the {kind} is made empty", c.len()));
                        Vec::new()
                    }
                    Ok(c) => c,
                    Err(e) => {
                        self.warn(&object, "file", format!("{e}: the {kind} is made empty"));
                        Vec::new()
                    }
                };
                let key = names::data_key(name);
                let meta = self.meta(&n, None);
                let object = if kind == "Secret" {
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                        "data": {key: base64(&content)}})
                } else {
                    config_map(meta, [(key, content)])
                };
                self.push(object);
            }
        }
    }

    /// The account, role and binding of init containers that wait for Jobs.
    fn job_waiter(&mut self) {
        let n = self.waiter();
        let meta = self.meta(&n, None);
        self.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}));
        let meta = self.meta(&n, None);
        self.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}]}));
        let meta = self.meta(&n, None);
        let mut subject = json!({"kind": "ServiceAccount", "name": n});
        if let Some(ns) = &self.namespace {
            subject["namespace"] = json!(ns);
        }
        self.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n},
            "subjects": [subject]}));
    }

    pub(crate) fn waiter(&mut self) -> String {
        self.names.derived(
            "ServiceAccount",
            "account",
            &format!("{}-job-waiter", self.project),
        )
    }

    /// One NetworkPolicy per service: traffic in from the services it
    /// shares a network with (and from anywhere to published ports); out
    /// only to them (and DNS) when all its networks are internal.
    fn network_policies(&mut self) {
        let nets_of = |s: &Service| -> BTreeSet<String> {
            if s.network_mode.is_some() {
                return BTreeSet::new();
            }
            if s.networks.is_empty() {
                return ["default".to_string()].into();
            }
            s.networks.keys().cloned().collect()
        };
        let p = self.p;
        for (name, s) in &p.services {
            let n = self.names.get("Service", "service", name);
            let mine = nets_of(s);
            if mine.is_empty() {
                self.warn(
                    &format!("service {name}"),
                    "network_mode",
                    "no network of the stack: no NetworkPolicy",
                );
                continue;
            }
            let peers: Vec<String> = p
                .services
                .iter()
                .filter(|(_, o)| !nets_of(o).is_disjoint(&mine))
                .map(|(o, _)| self.names.get("Service", "service", o))
                .collect();
            let from = json!([{"podSelector": {"matchLabels": self.selector(None),
                "matchExpressions": [{"key": LABEL_SERVICE, "operator": "In", "values": peers}]}}]);
            let mut ingress = vec![json!({"from": from})];
            let published: Vec<J> = s
                .ports
                .iter()
                .filter(|p| p.published.as_ref().is_some_and(|t| t.0.is_some()))
                .map(|p| json!({"port": p.target, "protocol": protocol(p.protocol.as_deref())}))
                .collect();
            if !published.is_empty() {
                ingress.push(json!({"ports": published}));
            }
            let internal = !mine.is_empty()
                && mine
                    .iter()
                    .all(|net| self.p.networks.get(net).is_some_and(|x| x.internal));
            let mut spec = json!({"podSelector": {"matchLabels": self.selector(Some(&n))},
                "policyTypes": ["Ingress"], "ingress": ingress});
            if internal {
                spec["policyTypes"] = json!(["Ingress", "Egress"]);
                spec["egress"] = json!([
                    {"to": from},
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
                ]);
            }
            let meta = self.meta(&n, Some(&n));
            self.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}));
        }
    }
}

/// `restart`, else `deploy.restart_policy.condition` as `restart` says it.
fn restart_of(s: &Service) -> Option<String> {
    s.restart.clone().or_else(|| {
        let c = s
            .deploy
            .as_ref()?
            .restart_policy
            .as_ref()?
            .condition
            .as_deref()?;
        Some(match c {
            "none" => "no".into(),
            "on-failure" => "on-failure".into(),
            _ => "always".into(),
        })
    })
}

pub(crate) fn protocol(p: Option<&str>) -> &'static str {
    match p.map(str::to_ascii_lowercase).as_deref() {
        Some("udp") => "UDP",
        Some("sctp") => "SCTP",
        _ => "TCP",
    }
}

/// A port's name in a Service: at most 15 characters, a letter in it.
fn port_name(proto: &str, port: u32) -> String {
    format!("{}-{port}", proto.to_ascii_lowercase())
}

/// `3000`, `3000-3002`, `53/udp` → ports and protocols.
pub(crate) fn expose_ports(e: &str) -> Vec<(u32, &'static str)> {
    let (ports, proto) = match e.split_once('/') {
        Some((p, pr)) => (p, protocol(Some(pr))),
        None => (e, "TCP"),
    };
    let range = match ports.split_once('-') {
        Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
        None => ports.parse().ok().map(|p| (p, p)),
    };
    match range {
        Some((a, b)) if a <= b && b - a < 1000 => (a..=b).map(|p| (p, proto)).collect(),
        _ => Vec::new(),
    }
}

/// Where `value` names `host` as a host (`host`, `x://host:5432`,
/// `user@host/db`): `Some(port named after it)`.
fn host_mentions(value: &str, host: &str) -> Option<Option<u32>> {
    let mut from = 0;
    while let Some(i) = value[from..].find(host) {
        let start = from + i;
        let end = start + host.len();
        let before = value[..start].chars().next_back();
        let after = value[end..].chars().next();
        let starts = before.is_none_or(|c| matches!(c, '@' | '/' | '=' | ',' | ' ' | ';'));
        let ends = after.is_none_or(|c| matches!(c, ':' | '/' | ',' | ' ' | ';'));
        if starts && ends {
            let port = value[end..]
                .strip_prefix(':')
                .map(|r| {
                    r.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .and_then(|d| d.parse().ok());
            return Some(port);
        }
        from = end;
    }
    None
}

pub(crate) fn base64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A ConfigMap: text as `data`, anything else as `binaryData`.
pub(crate) fn config_map(meta: J, entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> J {
    let mut data = serde_json::Map::new();
    let mut binary = serde_json::Map::new();
    for (k, v) in entries {
        match String::from_utf8(v) {
            Ok(text) => data.insert(k, json!(text)),
            Err(e) => binary.insert(k, json!(base64(e.as_bytes()))),
        };
    }
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta});
    if !data.is_empty() {
        cm["data"] = J::Object(data);
    }
    if !binary.is_empty() {
        cm["binaryData"] = J::Object(binary);
    }
    cm
}

/// A byte count as a quantity: `512Mi`, `1Gi`, or bytes.
pub(crate) fn bytes(b: i64) -> String {
    for (unit, f) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if b >= f && b % f == 0 {
            return format!("{}{unit}", b / f);
        }
    }
    b.to_string()
}

/// A size as compose writes it (`10g`, `512m`, `1Gi`) as a quantity.
fn quantity(s: &str) -> String {
    match stack_model::parse_bytes(s) {
        Ok(b) => bytes(b),
        Err(_) => s.to_string(),
    }
}

/// CPUs as a quantity: `500m`, `2`.
pub(crate) fn cpu(c: f32) -> String {
    let m = (c as f64 * 1000.0).round() as i64;
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

/// Whole seconds, rounded up, at least 1.
pub(crate) fn secs(d: stack_model::Duration) -> i64 {
    ((d.0 + 999_999_999) / 1_000_000_000).max(1)
}

/// Kubernetes expands `$(VAR)` in env values, commands and arguments, and
/// makes `$$` one `$`: a value that has either gets its `$` doubled.
pub(crate) fn escape(s: &str) -> String {
    if s.contains("$(") || s.contains("$$") {
        s.replace('$', "$$")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests;
