//! A service's pod: its container (image, command, environment, ports,
//! resources, security, probes, mounts), the init containers that wait for
//! its dependencies, and the pod-wide settings.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value as J};
use stack_model::{Service, VolumeMount};

use crate::{escape, expose_ports, names, protocol, secs, Entry, Gen, Workload};

/// Bind-mounted files up to this size are carried in a ConfigMap.
const SMALL: u64 = crate::MAX_OBJECT as u64;

/// Service keys the mapping reads (the others are warned of).
const HANDLED: &[&str] = &[
    "annotations",
    "build",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "cpus",
    "depends_on",
    "deploy",
    "dns",
    "dns_opt",
    "dns_search",
    "entrypoint",
    "environment",
    "env_file",
    "expose",
    "extra_hosts",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "labels",
    "links",
    "mem_limit",
    "mem_reservation",
    "network_mode",
    "networks",
    "pid",
    "platform",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "sysctls",
    "tmpfs",
    "tty",
    "user",
    "volumes",
    "working_dir",
];

/// The keys of `deploy` the mapping reads.
const DEPLOY_HANDLED: &[&str] = &[
    "mode",
    "replicas",
    "labels",
    "resources",
    "restart_policy",
    "placement",
    "update_config",
];

/// The sysctls every kubelet allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Whether a pod template mounts a claim.
pub(crate) fn uses_claims(template: &J) -> bool {
    template["spec"]["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v.get("persistentVolumeClaim").is_some()))
}

/// A pod's volumes, with names unique in the pod.
#[derive(Default)]
struct Volumes {
    list: Vec<J>,
    mounts: Vec<J>,
    names: BTreeSet<String>,
}

impl Volumes {
    fn name(&mut self, base: &str) -> String {
        let base = names::label(base);
        let mut n = base.clone();
        let mut i = 2;
        while !self.names.insert(n.clone()) {
            n = format!("{}-{i}", &base[..base.len().min(58)]);
            i += 1;
        }
        n
    }
    fn add(&mut self, base: &str, source: J, mount: J) {
        let n = self.name(base);
        let mut v = json!({"name": n});
        for (k, x) in source.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        self.list.push(v);
        let mut m = mount;
        m["name"] = json!(n);
        self.mounts.push(m);
    }
}

impl Gen<'_> {
    pub(crate) fn pod(
        &mut self,
        name: &str,
        n: &str,
        s: &Service,
        kind: Workload,
        kinds: &BTreeMap<String, Workload>,
    ) -> J {
        let object = format!("service {name}");
        self.unexpressed(&object, s);
        let mut c = json!({"name": n});
        c["image"] = json!(self.image(&object, name, s));
        if let Some(policy) = self.pull_policy(&object, name, s) {
            c["imagePullPolicy"] = json!(policy);
        }
        let words = |l: &[String]| json!(l.iter().map(|a| escape(a)).collect::<Vec<_>>());
        match (&s.entrypoint, &s.command) {
            // An empty entrypoint clears the image's: the command runs alone.
            (Some(e), Some(cmd)) if e.0.is_empty() && !cmd.0.is_empty() => {
                c["command"] = words(&cmd.0);
            }
            (e, cmd) => {
                if e.as_ref().is_some_and(|e| e.0.is_empty())
                    || cmd.as_ref().is_some_and(|c| c.0.is_empty())
                {
                    self.warn(&object, "entrypoint", "an empty entrypoint or command clears the image's; Kubernetes takes an empty one as unset, so the image's stays");
                }
                if let Some(e) = e.as_ref().filter(|e| !e.0.is_empty()) {
                    c["command"] = words(&e.0);
                }
                if let Some(cmd) = cmd.as_ref().filter(|c| !c.0.is_empty()) {
                    c["args"] = words(&cmd.0);
                }
            }
        }
        if let Some(w) = &s.working_dir {
            c["workingDir"] = json!(w);
        }
        self.environment(&object, name, s, &mut c);
        let ports = container_ports(s, s.network_mode.as_deref() == Some("host"));
        if !ports.is_empty() {
            c["ports"] = json!(ports);
        }
        let resources = self.resources(&object, s);
        if resources.as_object().is_some_and(|m| !m.is_empty()) {
            c["resources"] = resources;
        }
        let mut pod = json!({});
        let security = self.security(&object, s, &mut pod);
        if security.as_object().is_some_and(|m| !m.is_empty()) {
            c["securityContext"] = security;
        }
        self.probes(&object, s, &mut c);
        if s.stdin_open {
            c["stdin"] = json!(true);
        }
        if s.tty {
            c["tty"] = json!(true);
        }
        let mut vols = Volumes::default();
        self.mounts(&object, name, n, s, kind, &mut vols);
        if !vols.mounts.is_empty() {
            c["volumeMounts"] = json!(vols.mounts);
        }
        let inits = self.waits(&object, n, s, kinds);
        if !inits.is_empty() {
            pod["initContainers"] = json!(inits);
        }
        pod["containers"] = json!([c]);
        if !vols.list.is_empty() {
            pod["volumes"] = json!(vols.list);
        }
        self.pod_settings(&object, s, &mut pod);
        let mut meta = json!({"labels": self.selector(Some(n))});
        let mut annotations = serde_json::Map::new();
        for (k, v) in s.annotations.0.iter().chain(s.labels.0.iter()) {
            if names::is_qualified_key(k) {
                annotations.insert(k.clone(), json!(v));
            } else {
                self.warn(
                    &object,
                    "labels",
                    format!("`{k}` is not a valid annotation key; left out"),
                );
            }
        }
        if !annotations.is_empty() {
            meta["annotations"] = J::Object(annotations);
        }
        json!({"metadata": meta, "spec": pod})
    }

    /// Keys no part of the mapping reads, said once each.
    fn unexpressed(&mut self, object: &str, s: &Service) {
        let Ok(J::Object(keys)) = serde_json::to_value(s) else {
            return;
        };
        for k in keys.keys() {
            if HANDLED.contains(&k.as_str()) || k.starts_with("x-") {
                continue;
            }
            let why = match k.as_str() {
                "logging" => "the kubelet keeps and rotates container logs by its own settings (containerLogMaxSize); left out",
                "develop" => "`stack watch` is for development; left out",
                "ulimits" => "Kubernetes sets no per-container ulimits (the nodes' container runtime does); left out",
                "cpu_shares" if s.deploy.as_ref().and_then(|d| d.resources.reservations.as_ref()).and_then(|r| r.cpus).is_none() => continue,
                _ => "Kubernetes has no equivalent; left out",
            };
            self.warn(object, k, why);
        }
        if let Some(J::Object(d)) = keys.get("deploy") {
            for k in d.keys() {
                if !DEPLOY_HANDLED.contains(&k.as_str()) {
                    self.warn(
                        object,
                        &format!("deploy.{k}"),
                        "Kubernetes has no equivalent; left out",
                    );
                }
            }
        }
    }

    fn image(&mut self, object: &str, name: &str, s: &Service) -> String {
        if let Some(i) = self.o.images.get(name) {
            return i.clone();
        }
        let image = s
            .image
            .clone()
            .unwrap_or_else(|| format!("{}-{name}", self.p.name));
        if s.build.is_some() {
            self.warn(
                object,
                "build",
                format!("the image `{image}` is built on this machine; a cluster cannot pull it unless it is pushed: `--push REGISTRY` pushes it and names it by digest"),
            );
        }
        image
    }

    fn pull_policy(&mut self, object: &str, name: &str, s: &Service) -> Option<&'static str> {
        if self.o.images.contains_key(name) {
            return Some("IfNotPresent");
        }
        Some(match s.pull_policy.as_deref()? {
            "always" => "Always",
            "never" => "Never",
            "missing" | "if_not_present" | "build" => "IfNotPresent",
            other => {
                self.warn(object, "pull_policy", format!("`{other}`: pulled Always"));
                "Always"
            }
        })
    }

    /// `environment` as `env`; the variables of `env_file` (those that
    /// `environment` does not change) in a ConfigMap of the service.
    fn environment(&mut self, object: &str, name: &str, s: &Service, c: &mut J) {
        let mut from_files: BTreeMap<String, String> = BTreeMap::new();
        for f in &s.env_file {
            match self.src.env_file(f) {
                Ok(Some(vars)) => from_files.extend(vars),
                Ok(None) => {}
                Err(e) => self.warn(object, "env_file", format!("`{}`: {e}", f.path)),
            }
        }
        from_files.retain(|k, v| {
            names::data_key(k) == *k && s.environment.0.get(k) == Some(&Some(v.clone()))
        });
        let mut env = Vec::new();
        for (k, v) in &s.environment.0 {
            match v {
                _ if from_files.contains_key(k) => {}
                Some(v) => env.push(json!({"name": k, "value": escape(v)})),
                None => self.warn(
                    object,
                    "environment",
                    format!("`{k}` has no value here (unset when the file was read); left out"),
                ),
            }
        }
        if !env.is_empty() {
            c["env"] = json!(env);
        }
        if !from_files.is_empty() {
            let cm = self
                .names
                .derived("ConfigMap", "env_file", &format!("{name}-env"));
            let meta = self.meta(&cm, None);
            let entries = from_files.into_iter().map(|(k, v)| (k, v.into_bytes()));
            let object = crate::config_map(meta, entries);
            self.push(object);
            c["envFrom"] = json!([{"configMapRef": {"name": cm}}]);
        }
    }

    fn resources(&mut self, object: &str, s: &Service) -> J {
        let r = s.deploy.as_ref().map(|d| &d.resources);
        let limits = r.and_then(|r| r.limits.as_ref());
        let reservations = r.and_then(|r| r.reservations.as_ref());
        let mut out = json!({});
        let cpu_limit = limits.and_then(|l| l.cpus).or(s.cpus);
        let mem_limit = limits.and_then(|l| l.memory).or(s.mem_limit);
        if let Some(c) = cpu_limit {
            out["limits"]["cpu"] = json!(crate::cpu(c.0));
        }
        if let Some(m) = mem_limit {
            out["limits"]["memory"] = json!(crate::bytes(m.0));
        }
        if let Some(c) = reservations.and_then(|l| l.cpus) {
            out["requests"]["cpu"] = json!(crate::cpu(c.0));
        } else if let Some(shares) = s.cpu_shares.filter(|s| *s > 0) {
            // Kubernetes gives a request of 1 CPU 1024 shares.
            out["requests"]["cpu"] = json!(crate::cpu(shares as f32 / 1024.0));
        }
        if let Some(m) = reservations.and_then(|l| l.memory).or(s.mem_reservation) {
            out["requests"]["memory"] = json!(crate::bytes(m.0));
        }
        for (which, res) in [("limits", limits), ("reservations", reservations)] {
            let Some(res) = res else { continue };
            if res.pids.is_some() {
                self.warn(
                    object,
                    &format!("deploy.resources.{which}.pids"),
                    "Kubernetes limits processes per node, not per container; left out",
                );
            }
            if !res.devices.is_empty() || !res.generic_resources.is_empty() {
                self.warn(object, &format!("deploy.resources.{which}.devices"), "devices are requested through the cluster's device plugins (e.g. nvidia.com/gpu); left out");
            }
        }
        out
    }

    /// The container's security context; the pod's goes into `pod`.
    fn security(&mut self, object: &str, s: &Service, pod: &mut J) -> J {
        let mut sc = json!({});
        if let Some(u) = &s.user {
            let (user, group) = match u.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            match user.parse::<i64>() {
                Ok(uid) => sc["runAsUser"] = json!(uid),
                Err(_) => self.warn(
                    object,
                    "user",
                    format!(
                        "`{user}` is a name; Kubernetes takes a number (the image's user is kept)"
                    ),
                ),
            }
            if let Some(g) = group {
                match g.parse::<i64>() {
                    Ok(gid) => sc["runAsGroup"] = json!(gid),
                    Err(_) => self.warn(
                        object,
                        "user",
                        format!("group `{g}` is a name; Kubernetes takes a number"),
                    ),
                }
            }
        }
        if s.read_only {
            sc["readOnlyRootFilesystem"] = json!(true);
        }
        if s.privileged {
            sc["privileged"] = json!(true);
        }
        let caps = |l: &[String]| -> Vec<String> {
            l.iter()
                .map(|c| {
                    c.to_ascii_uppercase()
                        .trim_start_matches("CAP_")
                        .to_string()
                })
                .collect()
        };
        if !s.cap_add.is_empty() {
            sc["capabilities"]["add"] = json!(caps(&s.cap_add));
        }
        if !s.cap_drop.is_empty() {
            sc["capabilities"]["drop"] = json!(caps(&s.cap_drop));
        }
        // Docker's default, which Kubernetes applies only when asked.
        let mut seccomp = json!({"type": "RuntimeDefault"});
        for o in &s.security_opt {
            let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), "true"));
            match (k, v) {
                ("no-new-privileges", "true") if s.privileged => self.warn(object, "security_opt", "no-new-privileges with privileged: Kubernetes allows not both; left out"),
                ("no-new-privileges", "true") => sc["allowPrivilegeEscalation"] = json!(false),
                ("no-new-privileges", _) => {}
                ("seccomp", "unconfined") => seccomp = json!({"type": "Unconfined"}),
                ("seccomp", "builtin") => {}
                ("label", "disable") => {}
                _ => self.warn(object, "security_opt", format!("`{o}`: set it on the cluster's nodes (a Localhost profile or the pod's securityContext); left out")),
            }
        }
        pod["securityContext"]["seccompProfile"] = seccomp;
        for k in s.sysctls.0.keys() {
            if !SAFE_SYSCTLS.contains(&k.as_str()) {
                self.warn(object, "sysctls", format!("`{k}` is not one of Kubernetes' safe sysctls: the nodes' kubelet must allow it (--allowed-unsafe-sysctls)"));
            }
        }
        if !s.sysctls.0.is_empty() {
            pod["securityContext"]["sysctls"] = json!(s
                .sysctls
                .0
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>());
        }
        let mut groups = Vec::new();
        for g in &s.group_add {
            let g = g.0.clone().unwrap_or_default();
            match g.parse::<i64>() {
                Ok(n) => groups.push(n),
                Err(_) => self.warn(
                    object,
                    "group_add",
                    format!("`{g}` is a name; Kubernetes takes a number; left out"),
                ),
            }
        }
        if !groups.is_empty() {
            pod["securityContext"]["supplementalGroups"] = json!(groups);
        }
        sc
    }

    /// `healthcheck` (or `x-stack-probe`) as readiness, liveness (three
    /// times the retries) and, with a start period, startup probes.
    fn probes(&mut self, object: &str, s: &Service, c: &mut J) {
        let h = s.healthcheck.clone().unwrap_or_default();
        let stack_probe = match s.extensions.get("x-stack-probe") {
            Some(v) => match serde_json::to_value(v)
                .and_then(serde_json::from_value::<stack_model::StackProbe>)
            {
                Ok(p) => Some(p),
                Err(e) => {
                    self.warn(object, "x-stack-probe", format!("{e}; left out"));
                    None
                }
            },
            None => None,
        };
        if h.disable {
            return;
        }
        let action = match &stack_probe {
            Some(p) if p.http.is_some() => {
                let http = p.http.as_ref().unwrap();
                if http.status.is_some() {
                    self.warn(
                        object,
                        "x-stack-probe.http.status",
                        "Kubernetes counts any status from 200 to 399 as healthy",
                    );
                }
                json!({"httpGet": {"path": http.path, "port": http.port}})
            }
            Some(p) if p.tcp.is_some() => {
                json!({"tcpSocket": {"port": p.tcp.as_ref().unwrap().port}})
            }
            _ => {
                let test = stack_probe
                    .as_ref()
                    .and_then(|p| p.exec.clone())
                    .or(h.test.clone());
                let Some(test) = test else { return };
                let cmd = match test.0.split_first() {
                    Some((k, rest)) if k == "CMD" => rest.to_vec(),
                    Some((k, rest)) if k == "CMD-SHELL" => {
                        vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
                    }
                    Some((k, _)) if k == "NONE" => return,
                    _ => test.0.clone(),
                };
                if cmd.is_empty() {
                    return;
                }
                json!({"exec": {"command": cmd}})
            }
        };
        let sp = stack_probe.as_ref();
        let interval = sp
            .and_then(|p| p.interval)
            .or(h.interval)
            .map(secs)
            .unwrap_or(30);
        let timeout = sp
            .and_then(|p| p.timeout)
            .or(h.timeout)
            .map(secs)
            .unwrap_or(30);
        let retries = sp
            .and_then(|p| p.retries.map(u64::from))
            .or(h.retries)
            .unwrap_or(3)
            .max(1);
        let start_period = sp.and_then(|p| p.start_period).or(h.start_period);
        let start_interval = sp
            .and_then(|p| p.start_interval)
            .or(h.start_interval)
            .map(secs)
            .unwrap_or(5);
        let probe = |failures: u64, period: i64| {
            let mut p = action.clone();
            p["periodSeconds"] = json!(period);
            p["timeoutSeconds"] = json!(timeout);
            p["failureThreshold"] = json!(failures);
            p
        };
        c["readinessProbe"] = probe(retries, interval);
        c["livenessProbe"] = probe(retries * 3, interval);
        if let Some(sp) = start_period.filter(|d| d.0 > 0) {
            let tries = (secs(sp) as u64).div_ceil(start_interval as u64) + retries;
            c["startupProbe"] = probe(tries, start_interval);
        }
    }

    /// Whether a volume is a claim template of this (StatefulSet) service.
    fn templated(&self, kind: Workload, v: &str) -> bool {
        kind == Workload::StatefulSet
            && self.p.volumes.get(v).is_some_and(|vol| !vol.external.0)
            && self.volume_users.get(v).is_some_and(|u| u.len() == 1)
    }

    /// Volumes, binds, tmpfs, configs, secrets and `/dev/shm`.
    fn mounts(
        &mut self,
        object: &str,
        name: &str,
        n: &str,
        s: &Service,
        kind: Workload,
        vols: &mut Volumes,
    ) {
        // The claim templates' names are the pod's volume names: kept free.
        for m in &s.volumes {
            if let Some(v) = m
                .source
                .as_ref()
                .filter(|v| m.kind == "volume" && self.templated(kind, v))
            {
                vols.names
                    .insert(self.names.get("PersistentVolumeClaim", "volume", v));
            }
        }
        for m in &s.volumes {
            let mut mount = json!({"mountPath": m.target});
            if m.read_only {
                mount["readOnly"] = json!(true);
            }
            match m.kind.as_str() {
                "volume" => match m
                    .source
                    .as_ref()
                    .filter(|v| self.p.volumes.contains_key(*v))
                {
                    Some(v) => {
                        if let Some(sub) = m.volume.as_ref().and_then(|o| o.subpath.as_ref()) {
                            mount["subPath"] = json!(sub);
                        }
                        let vol = &self.p.volumes[v];
                        if self.templated(kind, v) {
                            mount["name"] =
                                json!(self.names.get("PersistentVolumeClaim", "volume", v));
                            vols.mounts.push(mount);
                        } else {
                            let claim = if vol.external.0 {
                                names::label(vol.name.as_deref().unwrap_or(v))
                            } else {
                                self.names.get("PersistentVolumeClaim", "volume", v)
                            };
                            let mut src = json!({"persistentVolumeClaim": {"claimName": claim}});
                            if m.read_only {
                                src["persistentVolumeClaim"]["readOnly"] = json!(true);
                            }
                            vols.add(v, src, mount);
                        }
                    }
                    None => vols.add("scratch", json!({"emptyDir": {}}), mount),
                },
                "bind" => self.bind(object, name, m, mount, vols),
                "tmpfs" => {
                    let mut e = json!({"medium": "Memory"});
                    if let Some(size) = m.tmpfs.as_ref().and_then(|t| t.size) {
                        e["sizeLimit"] = json!(crate::bytes(size.0));
                    }
                    vols.add("tmpfs", json!({"emptyDir": e}), mount);
                }
                other => self.warn(
                    object,
                    "volumes",
                    format!(
                        "a `{other}` mount at {}: Kubernetes has no equivalent; left out",
                        m.target
                    ),
                ),
            }
        }
        for t in &s.tmpfs.0 {
            let (target, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
            let mut e = json!({"medium": "Memory"});
            for o in opts.split(',') {
                if let Some(size) = o.strip_prefix("size=") {
                    e["sizeLimit"] = json!(crate::quantity(size));
                }
            }
            vols.add(
                "tmpfs",
                json!({"emptyDir": e}),
                json!({"mountPath": target}),
            );
        }
        if let Some(shm) = s.shm_size {
            vols.add(
                "shm",
                json!({"emptyDir": {"medium": "Memory", "sizeLimit": crate::bytes(shm.0)}}),
                json!({"mountPath": "/dev/shm"}),
            );
        }
        for (refs, kind, dir) in [
            (&s.configs, "ConfigMap", "/"),
            (&s.secrets, "Secret", "/run/secrets/"),
        ] {
            let what = if kind == "Secret" { "secret" } else { "config" };
            for r in refs {
                let obj = if kind == "Secret" {
                    self.p.secrets.get(&r.source)
                } else {
                    self.p.configs.get(&r.source)
                };
                let Some(obj) = obj else { continue };
                let target = match &r.target {
                    Some(t) if t.starts_with('/') => t.clone(),
                    Some(t) => format!("{dir}{t}"),
                    None => format!("{dir}{}", r.source),
                };
                let object_name = if obj.external.0 {
                    names::label(obj.name.as_deref().unwrap_or(&r.source))
                } else {
                    self.names.get(kind, what, &r.source)
                };
                let key = names::data_key(&r.source);
                let mut item = json!({"key": key, "path": key});
                if let Some(mode) = r.mode {
                    item["mode"] = json!(mode.0);
                }
                if r.uid.is_some() || r.gid.is_some() {
                    self.warn(
                        object,
                        &format!("{what}s"),
                        format!(
                            "uid/gid of `{}`: set fsGroup in the pod's securityContext; left out",
                            r.source
                        ),
                    );
                }
                let src = if kind == "Secret" {
                    json!({"secret": {"secretName": object_name, "items": [item]}})
                } else {
                    json!({"configMap": {"name": object_name, "items": [item]}})
                };
                vols.add(
                    &format!("{what}-{}", r.source),
                    src,
                    json!({"mountPath": target, "subPath": key, "readOnly": true}),
                );
            }
        }
        let _ = n;
    }

    /// A bind mount: a small file or a small read-only directory of files
    /// becomes a ConfigMap; anything else an empty directory, with the
    /// choice the user has to make.
    fn bind(
        &mut self,
        object: &str,
        name: &str,
        m: &VolumeMount,
        mut mount: J,
        vols: &mut Volumes,
    ) {
        let source = m.source.clone().unwrap_or_default();
        if source.ends_with("docker.sock") {
            self.warn(
                object,
                "volumes",
                format!("{source}: an engine socket of this host; a pod has none; left out"),
            );
            return;
        }
        let base = source.rsplit('/').next().unwrap_or(&source).to_string();
        let choose = "choose: a named volume (a PersistentVolumeClaim), a ConfigMap (mount it read-only, small files), or files baked into the image";
        match self.src.stat(&source) {
            Some(Entry::File { size }) if size <= SMALL => {
                let content = match self.src.read(&source) {
                    Ok(c) => c,
                    Err(e) => {
                        self.warn(
                            object,
                            "volumes",
                            format!("cannot read {source}: {e}; left out"),
                        );
                        return;
                    }
                };
                if !m.read_only {
                    self.warn(object, "volumes", format!("{source} is writable in the stack; as a ConfigMap it is read-only in the pod"));
                }
                let key = names::data_key(&base);
                let cm = self.bind_config_map(name, &source, &base, vec![(key.clone(), content)]);
                mount["subPath"] = json!(key);
                mount["readOnly"] = json!(true);
                vols.add(&base, json!({"configMap": {"name": cm}}), mount);
            }
            Some(Entry::Dir) if m.read_only => match self.small_dir(&source) {
                Some(files) => {
                    let cm = self.bind_config_map(name, &source, &base, files);
                    vols.add(&base, json!({"configMap": {"name": cm}}), mount);
                }
                None => {
                    self.warn(object, "volumes", format!("{source} (a directory with subdirectories or over {} KiB) is a host directory the cluster does not have: an empty directory stands in; {choose}", SMALL / 1024));
                    vols.add(&base, json!({"emptyDir": {}}), mount);
                }
            },
            Some(Entry::Dir) => {
                self.warn(object, "volumes", format!("{source} is a writable host directory the cluster does not have: an empty directory stands in; {choose}"));
                vols.add(&base, json!({"emptyDir": {}}), mount);
            }
            Some(Entry::File { .. }) => {
                self.warn(
                    object,
                    "volumes",
                    format!(
                        "{source} is over {} KiB, too big for a ConfigMap; left out; {choose}",
                        SMALL / 1024
                    ),
                );
            }
            Some(Entry::Other) | None => {
                self.warn(object, "volumes", format!("{source} is not a file or directory on this machine: an empty directory stands in; {choose}"));
                vols.add(&base, json!({"emptyDir": {}}), mount);
            }
        }
    }

    /// The ConfigMap of service `name`'s bind of `source` (named after
    /// the service and the file); its name.
    fn bind_config_map(
        &mut self,
        name: &str,
        source: &str,
        base: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> String {
        let cm = self.names.keyed(
            "ConfigMap",
            "bind",
            &format!("{name}\0{source}"),
            &format!("{name}-{base}"),
        );
        let meta = self.meta(&cm, None);
        let object = crate::config_map(meta, files);
        self.push(object);
        cm
    }

    /// The files of a directory without subdirectories, if small in all.
    fn small_dir(&self, dir: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut total = 0;
        for f in self.src.list(dir).ok()? {
            let path = format!("{}/{f}", dir.trim_end_matches('/'));
            match self.src.stat(&path)? {
                Entry::File { size } => total += size,
                _ => return None,
            }
            if total > SMALL || names::data_key(&f) != f {
                return None;
            }
            out.push((f, self.src.read(&path).ok()?));
        }
        Some(out)
    }

    /// An init container per dependency: it waits for the dependency's
    /// Service (a port, or the name of a headless one) or its Job.
    fn waits(
        &mut self,
        object: &str,
        n: &str,
        s: &Service,
        kinds: &BTreeMap<String, Workload>,
    ) -> Vec<J> {
        let mut out = Vec::new();
        // Container names are one namespace in a pod.
        let mut taken = Volumes::default();
        taken.name(n);
        for (dep, d) in &s.depends_on {
            let Some(kind) = kinds.get(dep) else { continue };
            let dn = self.names.get("Service", "service", dep);
            let name = taken.name(&format!("wait-for-{dn}"));
            if d.condition == "service_completed_successfully" || *kind == Workload::Job {
                if d.condition != "service_completed_successfully" {
                    self.warn(
                        object,
                        "depends_on",
                        format!("`{dep}` runs as a Job: waited for until it completes"),
                    );
                }
                self.waits_for_jobs = true;
                out.push(json!({"name": name, "image": self.o.kubectl_image,
                    "command": ["kubectl", "wait", "--for=condition=complete", "--timeout=-1s", format!("job/{dn}")]}));
                continue;
            }
            let script = match self.first_port(dep) {
                Some(port) => format!(
                    "until nc -z -w 2 {dn} {port}; do echo waiting for {dn}:{port}; sleep 2; done"
                ),
                None => format!(
                    "until nslookup {dn} >/dev/null 2>&1; do echo waiting for {dn}; sleep 2; done"
                ),
            };
            out.push(
                json!({"name": name, "image": self.o.wait_image, "command": ["sh", "-c", script]}),
            );
        }
        if out
            .iter()
            .any(|c| c["image"] == json!(self.o.kubectl_image))
        {
            let _ = self.waiter();
        }
        out
    }

    /// Pod-wide: restart, grace period, host names, DNS, namespaces shared
    /// with the host, placement, the account of Job waits.
    fn pod_settings(&mut self, object: &str, s: &Service, pod: &mut J) {
        if let Some(g) = s.stop_grace_period {
            pod["terminationGracePeriodSeconds"] = json!(secs(g));
        }
        if s.init == Some(true) && s.pid.as_deref() == Some("host") {
            self.warn(
                object,
                "init",
                "with `pid: host` the host's init reaps; left out",
            );
        } else if s.init == Some(true) {
            // The pod's pause process is PID 1 and reaps, as docker's init does.
            pod["shareProcessNamespace"] = json!(true);
        }
        if let Some(h) = &s.hostname {
            let l = names::label(h);
            if l != *h {
                self.warn(
                    object,
                    "hostname",
                    format!("`{h}` is not a DNS label; `{l}` is used"),
                );
            }
            pod["hostname"] = json!(l);
        }
        if !s.extra_hosts.0.is_empty() {
            let mut by_ip: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (host, ips) in &s.extra_hosts.0 {
                for ip in ips {
                    if ip == "host-gateway" {
                        self.warn(
                            object,
                            "extra_hosts",
                            format!("`{host}=host-gateway`: a pod has no host gateway; left out"),
                        );
                        continue;
                    }
                    by_ip.entry(ip).or_default().push(host);
                }
            }
            if !by_ip.is_empty() {
                pod["hostAliases"] = json!(by_ip
                    .iter()
                    .map(|(ip, hosts)| json!({"ip": ip, "hostnames": hosts}))
                    .collect::<Vec<_>>());
            }
        }
        let mut dns = json!({});
        if !s.dns.0.is_empty() {
            dns["nameservers"] = json!(s.dns.0);
        }
        if !s.dns_search.0.is_empty() {
            dns["searches"] = json!(s.dns_search.0);
        }
        if !s.dns_opt.is_empty() {
            dns["options"] = json!(s
                .dns_opt
                .iter()
                .map(|o| match o.split_once(':') {
                    Some((k, v)) => json!({"name": k, "value": v}),
                    None => json!({"name": o}),
                })
                .collect::<Vec<_>>());
        }
        if dns.as_object().is_some_and(|m| !m.is_empty()) {
            pod["dnsConfig"] = dns;
        }
        match s.network_mode.as_deref() {
            None | Some("bridge") | Some("default") => {}
            Some("host") => pod["hostNetwork"] = json!(true),
            Some(other) => self.warn(object, "network_mode", format!("`{other}`: pods of different workloads share no network namespace; put the containers in one pod by hand; left out")),
        }
        if s.pid.as_deref() == Some("host") {
            pod["hostPID"] = json!(true);
        } else if let Some(p) = &s.pid {
            self.warn(object, "pid", format!("`{p}`: left out"));
        }
        if s.ipc.as_deref() == Some("host") {
            pod["hostIPC"] = json!(true);
        } else if let Some(p) = s
            .ipc
            .as_deref()
            .filter(|p| *p != "private" && *p != "shareable")
        {
            self.warn(object, "ipc", format!("`{p}`: left out"));
        }
        let mut selector = serde_json::Map::new();
        if let Some(p) = &s.platform {
            let mut parts = p.split('/');
            if let Some(os) = parts.next() {
                selector.insert("kubernetes.io/os".into(), json!(os));
            }
            if let Some(arch) = parts.next() {
                selector.insert("kubernetes.io/arch".into(), json!(arch));
            }
        }
        for c in s.deploy.iter().flat_map(|d| &d.placement.constraints) {
            match c.split_once("==").map(|(k, v)| (k.trim(), v.trim())) {
                Some((k, v))
                    if k.starts_with("node.labels.")
                        && names::is_qualified_key(&k[12..])
                        && names::is_label_value(v) =>
                {
                    selector.insert(k[12..].to_string(), json!(v));
                }
                _ => self.warn(
                    object,
                    "deploy.placement.constraints",
                    format!(
                        "`{c}`: only `node.labels.KEY == VALUE` becomes a nodeSelector; left out"
                    ),
                ),
            }
        }
        if s.deploy.as_ref().is_some_and(|d| {
            !d.placement.preferences.is_empty() || d.placement.max_replicas_per_node.is_some()
        }) {
            self.warn(object, "deploy.placement", "preferences and max_replicas_per_node: use affinity and topology spread constraints; left out");
        }
        if !selector.is_empty() {
            pod["nodeSelector"] = J::Object(selector);
        }
        if pod["initContainers"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["image"] == json!(self.o.kubectl_image)))
        {
            pod["serviceAccountName"] = json!(self.waiter());
        }
    }
}

/// The container's ports: published, exposed, and host ports for `mode: host`
/// (with the host's network, the container's ports are the host's already).
fn container_ports(s: &Service, host_network: bool) -> Vec<J> {
    let mut out: Vec<J> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &s.ports {
        let proto = protocol(p.protocol.as_deref());
        if !seen.insert((p.target, proto)) {
            continue;
        }
        let mut port = json!({"containerPort": p.target, "protocol": proto});
        if p.mode.as_deref() == Some("host") && !host_network {
            if let Some(h) = p
                .published
                .as_ref()
                .and_then(|t| t.0.as_deref())
                .and_then(|x| x.parse::<u32>().ok())
            {
                port["hostPort"] = json!(h);
            }
        }
        out.push(port);
    }
    for e in &s.expose.0 {
        for (port, proto) in expose_ports(e) {
            if seen.insert((port, proto)) {
                out.push(json!({"containerPort": port, "protocol": proto}));
            }
        }
    }
    out
}
