//! What stack does with each key of a service: the one table, held
//! against the model's fields by a test (a key added to the model without
//! an entry fails it), read by `up` (a refused key stops the service's
//! project with its name; a key without effect here is a warning) and
//! printed as the docs' table (`docs/service-keys.md`, kept true by a
//! test). No key is ignored without a word.

use stack_model::{Project, Service};

/// What stack does with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Applied to the container as Docker Engine applies it.
    Applied,
    /// Used, but not on the container: by the loader, the plan, the engine
    /// or the client (what for, said).
    Elsewhere(&'static str),
    /// Some values are applied, others refused (which, said; `check` knows).
    Partly(&'static str),
    /// Not supported: `up` refuses a service that sets it (why, said).
    Refused(&'static str),
    /// Without effect here and harmless: `up` warns (why, said).
    Warned(&'static str),
}

use Support::*;

/// Every key of a service, in the model's order, with what stack does
/// with it and the test that shows it.
pub const SERVICE_KEYS: &[(&str, Support, &str)] = &[
    ("profiles", Elsewhere("the loader: services of profiles not enabled are left out"), "stack-loader data cases"),
    ("annotations", Warned("OCI annotations reach no runtime here (stack's runtime reads none)"), "tests/keys.rs, keys::tests"),
    ("attach", Elsewhere("attached `up` leaves the output of `attach: false` services out (unless `--attach` names them)"), "tests/keys.rs"),
    ("build", Partly("built by stack's own builder (`stack build`, `up --build`, `up` when the image is missing, `pull_policy: build`) with context, dockerfile, dockerfile_inline, args, target, labels, secrets, ssh, cache_from (local images), network, tags, additional_contexts, extra_hosts, shm_size, ulimits, no_cache, pull, provenance and sbom (attestations pushed with the image); cache_to, no_cache_filter, privileged, entitlements, isolation and more than one platform are warned of (not applied)"), "tests/build.rs"),
    ("develop", Elsewhere("`stack watch` and `up --watch`: sync, sync+restart, sync+exec, restart and rebuild rules"), "tests/watch.rs, tests/build.rs"),
    ("blkio_config", Partly("device_read_bps, device_write_bps, device_read_iops and device_write_iops are applied (v1 blkio throttles, v2 io.max); weight and weight_device where the host has a weight file (BFQ's blkio.bfq.weight or io.bfq.weight, else blkio.weight or io.weight), a device's weight where BFQ schedules that device; warned of where not"), "tests/keys.rs, keys::tests"),
    ("cap_add", Applied, "tests/isolation.rs"),
    ("cap_drop", Applied, "tests/isolation.rs"),
    ("cgroup_parent", Partly("applied: the container's cgroups under that path from each hierarchy's root (plain names separated by `/`; anything else is refused)"), "tests/keys.rs"),
    ("cgroup", Partly("`private` (the default) is applied; `host` is refused"), "tests/keys.rs"),
    ("cpu_count", Refused("a Windows key"), "keys::tests"),
    ("cpu_percent", Refused("a Windows key"), "keys::tests"),
    ("cpu_period", Applied, "tests/keys.rs"),
    ("cpu_quota", Applied, "tests/keys.rs"),
    ("cpu_rt_period", Refused("real-time scheduling is not supported"), "keys::tests"),
    ("cpu_rt_runtime", Refused("real-time scheduling is not supported"), "keys::tests"),
    ("cpus", Applied, "tests/keys.rs"),
    ("cpuset", Applied, "tests/keys.rs"),
    ("cpu_shares", Applied, "tests/keys.rs"),
    ("command", Applied, "tests/compose.rs"),
    ("configs", Applied, "tests/compose.rs"),
    ("container_name", Applied, "tests/compose.rs"),
    ("credential_spec", Refused("a Windows key"), "keys::tests"),
    ("depends_on", Elsewhere("the engine: start order and conditions"), "stack-engine/tests/engine.rs"),
    ("deploy", Partly("resources (limits: memory, cpus, pids; reservations: memory), replicas and restart_policy are applied; swarm's placement, update and rollback settings and endpoint_mode are warned of; mode `global`, device reservations and generic resources are refused"), "tests/keys.rs"),
    ("device_cgroup_rules", Partly("written to the container's devices cgroup (v1); where the host has no devices controller the rules are warned of (every device opens there but those stack withholds by capability)"), "tests/keys.rs"),
    ("devices", Applied, "tests/keys.rs"),
    ("dns", Applied, "tests/network.rs"),
    ("dns_opt", Applied, "tests/network.rs"),
    ("dns_search", Applied, "tests/network.rs"),
    ("dockerfile", Elsewhere("with build"), "tests/compose.rs"),
    ("domainname", Applied, "tests/keys.rs"),
    ("entrypoint", Applied, "tests/compose.rs"),
    ("provider", Refused("provider services (compose plugins) are not supported"), "keys::tests"),
    ("environment", Applied, "tests/compose.rs"),
    ("env_file", Elsewhere("the loader reads the files into environment"), "stack-loader data cases"),
    ("expose", Elsewhere("recorded; on its networks every port of a container is reachable anyway, as with Docker"), "tests/network.rs"),
    ("extends", Elsewhere("the loader"), "stack-loader data cases"),
    ("external_links", Refused("links to containers outside the project are not supported"), "keys::tests"),
    ("extra_hosts", Applied, "tests/network.rs"),
    ("group_add", Applied, "tests/keys.rs"),
    ("gpus", Refused("stack has no GPU support"), "tests/keys.rs, keys::tests"),
    ("hostname", Applied, "tests/keys.rs"),
    ("healthcheck", Applied, "tests/supervision.rs"),
    ("image", Applied, "tests/compose.rs"),
    ("init", Applied, "tests/keys.rs"),
    ("ipc", Partly("`private` and `shareable` give it a namespace of its own (the default); `host` joins the host's, its /dev/shm with it; `service:S` and `container:C` join that container's namespace and its /dev/shm"), "tests/keys.rs"),
    ("isolation", Refused("a Windows key"), "keys::tests"),
    ("labels", Applied, "tests/compose.rs"),
    ("label_file", Elsewhere("the loader reads the files into labels"), "stack-loader data cases"),
    ("links", Applied, "tests/keys.rs"),
    ("logging", Partly("drivers json-file and local (both written as json-file, with max-size and max-file; compress, mode, max-buffer-size, labels, env and tag accepted and warned of) and none (no log kept; reading it says, as Docker, that the driver does not support reading) are applied; other drivers are refused"), "tests/keys.rs"),
    ("log_driver", Partly("as logging.driver"), "tests/keys.rs"),
    ("log_opt", Partly("as logging.options"), "tests/keys.rs"),
    ("mem_limit", Applied, "tests/compose.rs"),
    ("mem_reservation", Applied, "tests/keys.rs"),
    ("memswap_limit", Applied, "tests/keys.rs"),
    ("mem_swappiness", Applied, "tests/keys.rs"),
    ("mac_address", Applied, "tests/keys.rs"),
    ("models", Refused("models (compose's AI models) are not supported"), "keys::tests"),
    ("network_mode", Applied, "tests/compose.rs"),
    ("networks", Applied, "tests/network.rs"),
    ("oom_kill_disable", Applied, "tests/keys.rs"),
    ("oom_score_adj", Applied, "tests/keys.rs"),
    ("pid", Partly("a namespace of its own (the default, its init PID 1), or `host`, `service:S` or `container:C`: that namespace (what is left of the container once its init has ended is killed through its cgroups)"), "tests/keys.rs"),
    ("pids_limit", Applied, "tests/keys.rs"),
    ("platform", Elsewhere("the platform an image is pulled for"), "tests/registry.rs"),
    ("ports", Applied, "tests/network.rs"),
    ("privileged", Applied, "tests/isolation.rs"),
    ("pull_policy", Elsewhere("the engine pulls as it says; `build`: built at every `up`"), "stack-engine/tests/engine.rs, tests/build.rs"),
    ("read_only", Applied, "tests/keys.rs"),
    ("restart", Applied, "tests/supervision.rs"),
    ("runtime", Partly("`runc` (or none) runs on stack's own runtime; other runtimes are refused"), "tests/keys.rs"),
    ("scale", Elsewhere("the plan: replicas"), "tests/compose.rs"),
    ("secrets", Applied, "tests/compose.rs"),
    ("security_opt", Applied, "tests/isolation.rs"),
    ("shm_size", Applied, "tests/keys.rs"),
    ("stdin_open", Applied, "tests/compose.rs"),
    ("stop_grace_period", Applied, "tests/compose.rs"),
    ("stop_signal", Applied, "tests/keys.rs"),
    ("storage_opt", Refused("storage driver options are not supported (stack's layers are overlayfs directories)"), "tests/keys.rs, keys::tests"),
    ("sysctls", Applied, "tests/keys.rs"),
    ("tmpfs", Applied, "tests/keys.rs"),
    ("tty", Applied, "tests/compose.rs"),
    ("ulimits", Applied, "tests/keys.rs"),
    ("use_api_socket", Applied, "tests/docker_api.rs"),
    ("user", Applied, "tests/keys.rs"),
    ("userns_mode", Partly("`host` (the host's user namespace, where stack runs every container) is applied; other modes are refused (stack has no user namespace remapping yet)"), "keys::tests"),
    ("uts", Partly("a namespace of its own (the default), or `host`: the host's names"), "tests/keys.rs"),
    ("volume_driver", Refused("only the local volume driver exists here"), "keys::tests"),
    ("volumes", Applied, "tests/compose.rs"),
    ("volumes_from", Applied, "tests/compose.rs"),
    ("working_dir", Applied, "tests/keys.rs"),
    ("pre_start", Partly("run as compose runs them: before the service starts while none of its replicas runs, once for the service, in order, each in a container of its own (the service's volumes, networks and environment; the hook's image, command, user, working_dir, privileged), removed after; the first that fails stops the start; `per_replica: true` is refused as compose refuses it; the hook's container gets the replica's volumes as declared (anonymous ones are its own)"), "tests/keys.rs, stack-engine/tests/engine.rs"),
    ("post_start", Partly("run in the container (with its user, working_dir and environment) once it has started (a failing one fails the start), `privileged` ones with every capability; hooks with an `image` of their own are refused"), "tests/keys.rs, stack-engine/tests/engine.rs"),
    ("pre_stop", Partly("run in the container (with its user, working_dir and environment) before it is stopped or removed (a failing one is a warning), `privileged` ones with every capability; hooks with an `image` of their own are refused"), "tests/keys.rs, stack-engine/tests/engine.rs"),
];

/// The table as the docs show it (`docs/service-keys.md`).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Service keys\n\n\
         What `stack up` does with each key of a service of the Compose \
         Specification. A refused key stops `up` with its name before \
         anything is made; a warned one is said and has no effect. \
         Generated from `crates/stack-host/src/keys.rs` \
         (`STACK_UPDATE_DOCS=1 cargo test -p stack-host keys` writes it; \
         the test fails when it is stale).\n\n\
         | key | what stack does | tested in |\n|---|---|---|\n",
    );
    for (key, support, test) in SERVICE_KEYS {
        let what = match support {
            Applied => "applied, as Docker applies it".to_string(),
            Elsewhere(how) => format!("used: {how}"),
            Partly(how) => format!("in part: {how}"),
            Refused(why) => format!("**refused**: {why}"),
            Warned(why) => format!("warned of: {why}"),
        };
        out.push_str(&format!("| `{key}` | {what} | `{test}` |\n"));
    }
    out
}

/// What a project's services set that stack will not apply: the errors
/// (a refused key or value: `up` must not run without it) and the
/// warnings (without effect here), each naming the service and the key.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Verdict {
    /// An error naming every refused key (a bad request), or the warnings.
    pub fn into_result(self) -> anyhow::Result<Vec<String>> {
        if self.errors.is_empty() {
            return Ok(self.warnings);
        }
        Err(crate::HostError::Invalid(self.errors.join("\n")).into())
    }
}

/// Refuses a project that sets what stack will not apply (naming each
/// key); tells `events` of what has no effect here.
pub fn enforce(project: &Project, events: &stack_api::Events) -> anyhow::Result<()> {
    for message in check(project, &[]).into_result()? {
        events.send(stack_api::Event::Warning { message });
    }
    Ok(())
}

/// The keys each of `services` (all when empty) sets, checked against the
/// table and this host's cgroups.
pub fn check(project: &Project, services: &[String]) -> Verdict {
    let host = match stack_runtime::cgroup::none_of_ours() {
        true => None,
        false => Some(stack_runtime::cgroup::controllers()),
    };
    check_on(project, services, host)
}

/// [`check`] on a host whose cgroups offer `host`; `None`: a rootless
/// engine given no cgroups, whose containers run without limits (said
/// once).
fn check_on(
    project: &Project,
    services: &[String],
    host: Option<stack_runtime::cgroup::Controllers>,
) -> Verdict {
    let mut v = Verdict::default();
    if host.is_none() {
        v.warnings.push(
            "containers run without resource limits: this rootless engine has no cgroups \
             of its own (it needs a cgroup v2 subtree delegated to the user, as a systemd \
             user unit with Delegate=yes has)"
                .to_string(),
        );
    }
    for (name, s) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        let set = serde_json::to_value(s).unwrap_or_default();
        let keys = set.as_object().into_iter().flat_map(|o| o.keys());
        judge(name, s, keys.map(String::as_str), &mut v);
        if let Some(host) = host {
            limits_here(name, s, host, &mut v);
        }
    }
    v
}

/// The limits a service sets that this host's cgroups cannot apply: a
/// memory, CPU or CPU set limit is an error (running without it would be
/// wrong), a process limit or swap a warning (as Docker says of them).
fn limits_here(name: &str, s: &Service, host: stack_runtime::cgroup::Controllers, v: &mut Verdict) {
    let limits = s.deploy.as_ref().and_then(|d| d.resources.limits.as_ref());
    let reservations = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.as_ref());
    let memory = s.mem_limit.is_some()
        || s.mem_reservation.is_some()
        || limits.is_some_and(|l| l.memory.is_some())
        || reservations.is_some_and(|r| r.memory.is_some());
    let cpu = s.cpus.is_some()
        || s.cpu_quota.is_some()
        || s.cpu_shares.is_some()
        || limits.is_some_and(|l| l.cpus.is_some());
    let pids = s.pids_limit.is_some() || limits.is_some_and(|l| l.pids.is_some());
    let say = |what: &str, missing: &str| {
        format!("service {name}: {what}: this host's cgroups have no {missing}")
    };
    for (set, have, what, missing, error) in [
        (
            memory,
            host.memory,
            "memory limits",
            "memory controller",
            true,
        ),
        (cpu, host.cpu, "CPU limits", "cpu controller", true),
        (
            s.cpuset.is_some(),
            host.cpuset,
            "`cpuset`",
            "cpuset controller",
            true,
        ),
        (
            pids,
            host.pids,
            "the process limit",
            "pids controller: not applied",
            false,
        ),
        (
            s.mem_swappiness.is_some(),
            host.swappiness,
            "`mem_swappiness`",
            "swappiness (cgroup v1's memory.swappiness): not applied",
            false,
        ),
        (
            s.oom_kill_disable,
            host.oom_control,
            "`oom_kill_disable`",
            "way to turn the OOM killer off (cgroup v1's memory.oom_control): not applied",
            false,
        ),
        (
            s.blkio_config.as_ref().is_some_and(|b| {
                !(b.device_read_bps.is_empty()
                    && b.device_write_bps.is_empty()
                    && b.device_read_iops.is_empty()
                    && b.device_write_iops.is_empty())
            }),
            host.io,
            "block I/O throttles",
            "io controller",
            true,
        ),
        (
            s.blkio_config
                .as_ref()
                .is_some_and(|b| b.weight.is_some() || !b.weight_device.is_empty()),
            host.io_weight,
            "block I/O weights",
            "weight file (BFQ's blkio.bfq.weight, or blkio.weight): not applied",
            false,
        ),
        (
            s.memswap_limit.is_some(),
            host.swap,
            "`memswap_limit`",
            "swap accounting: memory is limited without swap",
            false,
        ),
    ] {
        if set && !have {
            match error {
                true => v.errors.push(say(what, missing)),
                false => v.warnings.push(say(what, missing)),
            }
        }
    }
}

/// The verdict on the keys `present` of service `name`.
fn judge<'a>(name: &str, s: &Service, present: impl Iterator<Item = &'a str>, v: &mut Verdict) {
    for key in present {
        // Extensions (`x-…`) are the user's.
        let Some((_, support, _)) = SERVICE_KEYS.iter().find(|(k, ..)| *k == key) else {
            continue;
        };
        let say = |why: &str| format!("service {name}: `{key}`: {why}");
        match support {
            Applied | Elsewhere(_) => {}
            Refused(why) => v.errors.push(say(why)),
            Warned(why) => v.warnings.push(say(why)),
            Partly(_) => partly(key, s, &mut |refused, why| match refused {
                true => v.errors.push(say(why)),
                false => v.warnings.push(say(why)),
            }),
        }
    }
}

/// The values of the keys stack supports in part: `out(true, why)` for a
/// refused one, `out(false, why)` for one only warned of.
fn partly(key: &str, s: &Service, out: &mut dyn FnMut(bool, &str)) {
    let own_namespace = |v: &Option<String>, also: &[&str]| {
        v.as_deref()
            .is_none_or(|m| m.is_empty() || m == "private" || also.contains(&m))
    };
    match key {
        "cgroup" if !own_namespace(&s.cgroup, &[]) => out(
            true,
            "only `private` (a cgroup namespace of its own) is supported",
        ),
        "ipc" if !own_namespace(&s.ipc, &["shareable"]) => {
            let m = s.ipc.as_deref().unwrap_or_default();
            if !(m.starts_with("service:") || m.starts_with("container:") || m == "host") {
                out(true, "private, shareable, host, service:S or container:C");
            }
        }
        "pid" if !own_namespace(&s.pid, &["host"]) => {
            let m = s.pid.as_deref().unwrap_or_default();
            if !(m.starts_with("service:") || m.starts_with("container:")) {
                out(true, "its own, host, service:S or container:C");
            }
        }
        "uts" if s.uts.as_deref() == Some("host") && s.hostname.is_some() => out(
            true,
            "`hostname` cannot be set with the host's UTS namespace (as Docker says: conflicting options)",
        ),
        "userns_mode" if s.userns_mode.as_deref().is_some_and(|m| m != "host") => out(
            true,
            "only `host` is supported: stack has no user namespace remapping yet",
        ),
        "uts" if !own_namespace(&s.uts, &["host"]) => {
            out(true, "a namespace of its own, or `host`")
        }
        "runtime" if s.runtime.as_deref().is_some_and(|r| r != "runc") => {
            out(true, "only stack's own runtime (`runc`) is supported")
        }
        "logging" | "log_driver" | "log_opt" => match logging(s) {
            Err(why) => out(true, &why),
            // Accepted, as they harm nothing, but said: they do nothing here.
            Ok(_) => {
                let options = s.logging.as_ref().map_or(&s.log_opt, |l| &l.options);
                for k in options
                    .0
                    .keys()
                    .filter(|k| WITHOUT_EFFECT.contains(&k.as_str()))
                {
                    out(false, &format!("the log option `{k}` has no effect here"));
                }
            }
        },
        "deploy" => deploy(s, out),
        "cgroup_parent" => {
            if let Some(Err(e)) = s.cgroup_parent.as_deref().map(stack_runtime::cgroup::parent_names) {
                out(true, &e.to_string());
            }
        }
        "build" => {
            let Some(b) = &s.build else { return };
            let unapplied = [
                ("cache_to", !b.cache_to.is_empty()),
                ("no_cache_filter", !b.no_cache_filter.is_empty()),
                ("privileged", b.privileged),
                ("entitlements", !b.entitlements.is_empty()),
                ("isolation", b.isolation.is_some()),
                ("platforms", b.platforms.0.len() > 1),
            ];
            for (k, _) in unapplied.iter().filter(|(_, set)| *set) {
                out(false, &format!("`build.{k}` is not applied by stack's builder"));
            }
        }
        "blkio_config" => {
            // A device's weight needs BFQ to schedule it.
            for w in s.blkio_config.iter().flat_map(|b| &b.weight_device) {
                let bfq = nix::sys::stat::stat(w.path.as_str()).is_ok_and(|st| {
                    let rdev = st.st_rdev;
                    stack_runtime::cgroup::bfq_device(
                        nix::sys::stat::major(rdev),
                        nix::sys::stat::minor(rdev),
                    )
                });
                if !bfq {
                    out(
                        false,
                        &format!(
                            "`{}` is not scheduled by BFQ here: its weight is not applied",
                            w.path
                        ),
                    );
                }
            }
        }
        "device_cgroup_rules" if !stack_runtime::cgroup::devices_enforced() => out(
            false,
            "this host has no devices controller: the rules are not applied",
        ),
        "post_start" | "pre_stop" => {
            let hooks = if key == "post_start" {
                &s.post_start
            } else {
                &s.pre_stop
            };
            if hooks.iter().any(|h| h.image.is_some()) {
                out(true, "hooks in an image of their own are not supported");
            }
        }
        _ => {}
    }
}

/// Log options Docker's json-file and local drivers take that stack
/// accepts without applying them.
const WITHOUT_EFFECT: &[&str] = &[
    "compress",
    "mode",
    "max-buffer-size",
    "labels",
    "env",
    "tag",
];

/// The log driver and options of a service, as the runtime takes them:
/// json-file (or local, which stack writes as json-file) with `max-size`
/// and `max-file` (`compress` accepted), or `none`.
pub fn logging(s: &Service) -> Result<(String, Vec<String>), String> {
    let (driver, options) = match &s.logging {
        Some(l) => (l.driver.clone(), &l.options),
        None => (s.log_driver.clone(), &s.log_opt),
    };
    let driver = driver.unwrap_or_else(|| "json-file".into());
    if !matches!(driver.as_str(), "json-file" | "local" | "none") {
        return Err(format!(
            "the log driver `{driver}` is not supported (json-file, local or none)"
        ));
    }
    let mut opts = Vec::new();
    for (k, v) in &options.0 {
        match k.as_str() {
            "max-size" | "max-file" => opts.push(format!("{k}={v}")),
            k if WITHOUT_EFFECT.contains(&k) => {}
            other => {
                return Err(format!(
                    "the log option `{other}` is not supported (max-size, max-file)"
                ))
            }
        }
    }
    Ok((driver, opts))
}

/// `deploy`: what compose applies to a local container, the rest named.
fn deploy(s: &Service, out: &mut dyn FnMut(bool, &str)) {
    let Some(d) = &s.deploy else { return };
    if d.mode.as_deref().is_some_and(|m| m != "replicated") {
        out(
            true,
            "mode `global` needs a swarm (every node); stack runs one host",
        );
    }
    for (set, what) in [
        (d.placement != Default::default(), "placement"),
        (d.update_config.is_some(), "update_config"),
        (d.rollback_config.is_some(), "rollback_config"),
        (d.endpoint_mode.is_some(), "endpoint_mode"),
    ] {
        if set {
            out(
                false,
                &format!("{what} is swarm's and has no effect on one host"),
            );
        }
    }
    for r in [&d.resources.limits, &d.resources.reservations]
        .into_iter()
        .flatten()
    {
        if !r.devices.is_empty() {
            out(true, "device reservations (GPUs) are not supported");
        }
        if !r.generic_resources.is_empty() {
            out(true, "generic resources are swarm's and not supported");
        }
    }
    if d.resources
        .reservations
        .as_ref()
        .is_some_and(|r| r.cpus.is_some() || r.pids.is_some())
    {
        out(
            false,
            "reservations.cpus and reservations.pids have no effect (Docker reserves memory only)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the model has an entry, and every entry a key.
    #[test]
    fn the_table_covers_every_service_key() {
        let model = stack_model::fields_of::<Service>();
        assert!(
            model.len() > 80,
            "the model's keys were not read: {model:?}"
        );
        let table: Vec<&str> = SERVICE_KEYS.iter().map(|(k, ..)| *k).collect();
        let missing: Vec<_> = model.iter().filter(|k| !table.contains(k)).collect();
        let extra: Vec<_> = table.iter().filter(|k| !model.contains(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "keys without an entry: {missing:?}; entries without a key: {extra:?}"
        );
    }

    /// Each refused key, set, stops `up` with its name; each warned one is
    /// said; the applied ones pass.
    #[test]
    fn every_refused_key_is_named_and_every_warned_one_said() {
        for (key, support, _) in SERVICE_KEYS {
            let mut v = Verdict::default();
            judge("s", &Service::default(), std::iter::once(*key), &mut v);
            let named = format!("service s: `{key}`: ");
            match support {
                Refused(_) => assert!(
                    v.errors.len() == 1 && v.errors[0].starts_with(&named),
                    "{key}: {v:?}"
                ),
                Warned(_) => assert!(
                    v.errors.is_empty() && v.warnings[0].starts_with(&named),
                    "{key}: {v:?}"
                ),
                Applied | Elsewhere(_) => assert_eq!(v, Verdict::default(), "{key}"),
                Partly(_) => assert!(
                    v.errors.is_empty(),
                    "{key}: a default value is applied: {v:?}"
                ),
            }
        }
    }

    /// Limits this host's cgroups cannot apply: errors for memory and
    /// CPUs, warnings for processes and swap.
    #[test]
    fn limits_a_host_cannot_apply_are_said() {
        use stack_runtime::cgroup::Controllers;
        let p = service(
            "    mem_limit: 64m\n    memswap_limit: 128m\n    pids_limit: 10\n    cpus: 0.5\n",
        );
        assert_eq!(
            check_on(&p, &[], Some(Controllers::ALL)),
            Verdict::default()
        );
        let v = check_on(&p, &[], Some(Controllers::NONE));
        assert_eq!(
            v.errors,
            [
                "service s: memory limits: this host's cgroups have no memory controller",
                "service s: CPU limits: this host's cgroups have no cpu controller",
            ]
        );
        assert_eq!(
            v.warnings,
            [
                "service s: the process limit: this host's cgroups have no pids controller: not applied",
                "service s: `memswap_limit`: this host's cgroups have no swap accounting: memory is limited without swap",
            ]
        );
        // A rootless engine without cgroups runs them without limits, and
        // says so once.
        let v = check_on(&p, &[], None);
        assert!(v.errors.is_empty(), "{v:?}");
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].starts_with("containers run without resource limits"));
    }

    /// The docs' table is this table.
    #[test]
    fn the_docs_table_is_generated_from_this_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/service-keys.md");
        if std::env::var_os("STACK_UPDATE_DOCS").is_some() {
            std::fs::write(&path, markdown()).unwrap();
        }
        let docs = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            docs == markdown(),
            "{} is stale: STACK_UPDATE_DOCS=1 cargo test -p stack-host keys",
            path.display()
        );
    }

    fn service(yaml: &str) -> Project {
        stack_loader::load(&stack_loader::Options {
            working_dir: "/nowhere".into(),
            files: vec!["-".into()],
            stdin: Some(format!("services:\n  s:\n    image: x\n{yaml}")),
            project_name: Some("p".into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .project
    }

    #[test]
    fn refused_keys_and_values_are_named_and_harmless_ones_warned_of() {
        let v = check(
            &service("    gpus: all\n    pid: nope\n    ipc: shareable\n    uts: host\n"),
            &[],
        );
        assert_eq!(
            v.errors,
            [
                "service s: `gpus`: stack has no GPU support",
                "service s: `pid`: its own, host, service:S or container:C",
            ]
        );
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        let v = check(
            &service("    annotations: {a: b}\n    logging: {driver: syslog}\n"),
            &[],
        );
        assert_eq!(
            v.errors,
            ["service s: `logging`: the log driver `syslog` is not supported (json-file, local or none)"]
        );
        assert_eq!(
            v.warnings,
            ["service s: `annotations`: OCI annotations reach no runtime here (stack's runtime reads none)"]
        );
        let ok = check(
            &service("    mem_reservation: 32m\n    logging: {driver: local, options: {max-size: 2k, compress: 'true'}}\n    deploy: {resources: {limits: {memory: 64m}}}\n"),
            &[],
        );
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        assert_eq!(
            ok.warnings,
            ["service s: `logging`: the log option `compress` has no effect here"]
        );
        let v = check(
            &service("    uts: host\n    hostname: h\n    userns_mode: remap\n"),
            &[],
        );
        assert_eq!(v.errors.len(), 2, "{:?}", v.errors);
        assert!(
            v.errors[1].contains("`uts`: `hostname` cannot be set"),
            "{:?}",
            v.errors
        );
        assert!(
            v.errors[0].contains("`userns_mode`: only `host`"),
            "{:?}",
            v.errors
        );
        assert!(check(&service("    userns_mode: host\n"), &[])
            .errors
            .is_empty());
        assert!(check(&service("    gpus: all\n"), &["other".into()])
            .errors
            .is_empty());
    }
}
