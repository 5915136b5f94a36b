//! The host as the engine's driver: containers through the runtime
//! (made from a service by [`crate::service`]), networks through
//! stack-net, images from the store (pulled when missing). Operations
//! block (forks, netlink, waits for stops), so each runs on a thread of its
//! own and the engine awaits it.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use stack_engine::{
    network_name, HealthConfig, LogReader, LogRecord, Observed, ProbeResult, Replica,
};
use stack_model::{Project, Service};

use crate::{ContainerConfig, Host, Launch};

impl Host {
    /// Runs `f` with `key` (a container's id, a network's or an image's
    /// name) on a thread of its own.
    async fn on<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&Host, &str) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (host, key) = (self.clone(), key.to_string());
        crate::blocking(move || f(&host, &key)).await
    }
}

fn new_container(host: &Host, c: &ContainerConfig, how: Launch) -> anyhow::Result<Observed> {
    let id = crate::create::launch(host, c, how, None)?.id;
    let root = host.root();
    let st = stack_runtime::state::read(&stack_runtime::container_dir(root, &id))?;
    let running = stack_runtime::state::alive(&st);
    Ok(crate::supervision::observed(root, &st, running))
}

impl stack_engine::Driver for Host {
    fn observe(&self, project: Option<&str>) -> anyhow::Result<Vec<Observed>> {
        let root = self.root();
        Ok(crate::containers::project_containers(root, project)
            .iter()
            .map(|(st, running)| crate::supervision::observed(root, st, *running))
            .collect())
    }

    fn observe_one(&self, project: &str, id: &str) -> anyhow::Result<Option<Observed>> {
        // Its record alone, read as `observe` reads every one (a damaged
        // one rebuilt, one that cannot be read not there).
        let root = self.root();
        let dir = stack_sys::join(&root.join("containers"), id)?;
        Ok(match crate::containers::read(dir) {
            Some((_, Ok(st))) if crate::containers::of_project(&st, Some(project)) => {
                let running = crate::containers::running(&st);
                Some(crate::supervision::observed(root, &st, running))
            }
            _ => None,
        })
    }

    fn networks(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .networks()?
            .networks()?
            .into_iter()
            .map(|n| n.name)
            .collect())
    }

    async fn create_network(&self, project: &Project, key: &str, name: &str) -> anyhow::Result<()> {
        let (project, key) = (project.clone(), key.to_string());
        self.on(name, move |host, name| {
            create_network(host, &project, &key, name)
        })
        .await
    }

    async fn remove_network(&self, name: &str) -> anyhow::Result<()> {
        self.on(name, crate::network::remove).await
    }

    async fn settle(&self) -> anyhow::Result<()> {
        self.on("", |_, _| Ok(stack_net::settle()?)).await
    }

    async fn pull(&self, project: &Project, service: &str, policy: &str) -> anyhow::Result<bool> {
        let s = &project.services[service];
        let (image, platform, policy) = (
            crate::service::image_of(service, s)?,
            s.platform.clone(),
            policy.to_string(),
        );
        self.on(&image, move |host, image| {
            crate::images::ensure(host, image, platform.as_deref(), &policy)
        })
        .await
    }

    async fn create(&self, r: &Replica<'_>, start: bool) -> anyhow::Result<Observed> {
        let config = crate::service::config(self, r)?;
        let how = if start {
            Launch::Detached
        } else {
            Launch::CreateOnly
        };
        self.on(r.name, move |host, _| new_container(host, &config, how))
            .await
    }

    async fn start(&self, id: &str) -> anyhow::Result<()> {
        self.on(id, |host, id| {
            crate::containers::start_again(host.root(), id).map(drop)
        })
        .await
    }

    async fn restart(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        self.on(id, move |host, id| {
            crate::containers::restart_one(host.root(), id, timeout).map(drop)
        })
        .await
    }

    async fn stop(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        self.on(id, move |host, id| {
            crate::containers::stop_one(host.root(), id, timeout).map(drop)
        })
        .await
    }

    async fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        let signal = signal.to_string();
        self.on(id, move |host, id| {
            crate::containers::kill_one(host.root(), id, &signal).map(drop)
        })
        .await
    }

    async fn pause(&self, id: &str, paused: bool) -> anyhow::Result<()> {
        self.on(id, move |host, id| {
            crate::containers::freeze(host.root(), id, paused).map(drop)
        })
        .await
    }

    fn paused(&self, id: &str) -> bool {
        stack_runtime::state::read(&stack_runtime::container_dir(self.root(), id))
            .is_ok_and(|st| crate::containers::is_paused(&st))
    }

    async fn remove(&self, id: &str, timeout: Option<u64>) -> anyhow::Result<()> {
        self.on(id, move |host, id| {
            crate::containers::stop_and_remove(host, id, timeout).map(drop)
        })
        .await
    }

    async fn wait(&self, id: &str) -> anyhow::Result<stack_engine::Exit> {
        crate::supervision::wait_exit(self.root(), id).await
    }

    async fn probe(&self, id: &str, health: &HealthConfig) -> ProbeResult {
        let health = health.clone();
        self.on(id, move |host, id| {
            Ok(crate::supervision::probe(host.root(), id, &health))
        })
        .await
        .unwrap_or_else(|e| ProbeResult {
            code: 1,
            output: format!("{e:#}"),
        })
    }

    async fn sync(
        &self,
        id: &str,
        trigger: &stack_engine::watch::Trigger,
        paths: &[PathBuf],
    ) -> anyhow::Result<usize> {
        let (trigger, paths) = (trigger.clone(), paths.to_vec());
        self.on(id, move |host, id| {
            crate::watch::sync(host.root(), id, &trigger, &paths)
        })
        .await
    }

    async fn pre_start(&self, r: &Replica<'_>, index: usize) -> anyhow::Result<(i32, String)> {
        let config = crate::service::pre_start(self, r, index)?;
        self.on(r.name, move |host, _| {
            let id = crate::create::launch(host, &config, Launch::Detached, None)?.id;
            let done = host
                .block_on(crate::supervision::wait_exit(host.root(), &id))
                .and_then(|exit| exit)
                .map(|exit| {
                    let dir = stack_runtime::container_dir(host.root(), &id);
                    let tail: String =
                        stack_runtime::logs::Follower::new(stack_runtime::state::log_path(&dir))
                            .tail(10, |_| true)
                            .into_iter()
                            .map(|r| r.log)
                            .collect();
                    (exit.code, tail)
                });
            if let Err(e) = crate::containers::remove_one(host, &id, true) {
                tracing::warn!(container = %id, "pre_start hook container: {e:#}");
            }
            done
        })
        .await
    }

    async fn exec(
        &self,
        id: &str,
        exec: &stack_engine::watch::Exec,
    ) -> anyhow::Result<(i32, String)> {
        let exec = exec.clone();
        self.on(id, move |host, id| {
            crate::watch::exec(host.root(), id, &exec)
        })
        .await
    }

    fn remove_volume(&self, name: &str) -> anyhow::Result<bool> {
        let root = self.root();
        Ok(stack_sys::remove_tree(
            root,
            &crate::service::volume_dir(root, name)?,
        )?)
    }

    fn remove_image(&self, name: &str) -> anyhow::Result<bool> {
        let store = self.images()?;
        match crate::images::remove(self, &store, &[name.to_string()])?.remove(0) {
            Ok(_) => Ok(true),
            Err(stack_image::ImageError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn forget_project(&self, project: &str) -> anyhow::Result<()> {
        let root = self.root();
        stack_sys::remove_tree(root, &crate::service::project_dir(root, project)?)?;
        Ok(())
    }

    fn log(&self, id: &str, follow: bool) -> Box<dyn LogReader> {
        let dir = stack_runtime::container_dir(self.root(), id);
        let log = stack_runtime::logs::Follower::new(stack_runtime::state::log_path(&dir));
        let none = stack_runtime::state::read(&dir).is_ok_and(|st| st.spec.no_log);
        Box::new(Log(if follow { log } else { log.to_current_end() }, none))
    }
}

/// A container's json-file log, read as the runtime's monitor writes it;
/// whether it has none (`logging: none`).
struct Log(stack_runtime::logs::Follower, bool);

fn record(r: stack_runtime::logs::Record) -> LogRecord {
    LogRecord {
        stream: r.stream,
        time: r.time,
        log: r.log,
    }
}

impl LogReader for Log {
    fn unreadable(&self) -> Option<String> {
        // As Docker answers for its `none` driver.
        self.1
            .then(|| "configured logging driver does not support reading (logging: none)".into())
    }

    fn tail(&mut self, n: usize, wants: &dyn Fn(&str) -> bool) -> Vec<LogRecord> {
        let records = self.0.tail(n, |r| wants(&r.time));
        records.into_iter().map(record).collect()
    }

    fn read_new(&mut self) -> Option<Vec<LogRecord>> {
        match self.0.read_new() {
            (records, bad) if records.is_empty() && bad.is_empty() => None,
            (records, _) => Some(records.into_iter().map(record).collect()),
        }
    }
}

/// Creates a project's network (and the DNS server that answers on it).
fn create_network(host: &Host, project: &Project, key: &str, name: &str) -> anyhow::Result<()> {
    let n = &project.networks[key];
    fn parse<T: std::str::FromStr>(
        key: &str,
        what: &str,
        v: &Option<String>,
    ) -> anyhow::Result<Option<T>> {
        v.as_deref()
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| anyhow::anyhow!("network {key}: invalid {what} `{s}`"))
            })
            .transpose()
    }
    let mut subnets = Vec::new();
    for c in &n.ipam.config {
        subnets.push(stack_net::SubnetRequest {
            subnet: parse(key, "subnet", &c.subnet)?,
            gateway: parse(key, "gateway", &c.gateway)?,
            ip_range: parse(key, "ip_range", &c.ip_range)?,
            aux_addresses: c
                .aux_addresses
                .0
                .values()
                .map(|v| {
                    v.parse()
                        .with_context(|| format!("network {key}: invalid aux address `{v}`"))
                })
                .collect::<anyhow::Result<_>>()?,
        });
    }
    let mut labels = n.labels.0.clone();
    labels.insert("com.docker.compose.project".into(), project.name.clone());
    labels.insert("com.docker.compose.network".into(), key.to_string());
    let opts = stack_net::CreateOptions {
        name: name.to_string(),
        driver: n.driver.clone(),
        driver_opts: n.driver_opts.0.clone(),
        subnets,
        ipv6: n.enable_ipv6.unwrap_or(false),
        internal: n.internal,
        labels,
    };
    // Its record made durable at the plan's end: `settle`.
    crate::network::make(host, &opts)?;
    Ok(())
}

/// For a one-off container of `service` (`stack run`): the project's
/// networks it joins, created if missing.
pub fn run_networks(host: &Host, project: &Project, service: &Service) -> anyhow::Result<()> {
    let have = stack_engine::Driver::networks(host)?;
    if service.network_mode.is_some() {
        return Ok(());
    }
    for key in service.networks.keys() {
        let name = network_name(project, key);
        if !have.contains(&name) {
            if project.networks.get(key).is_some_and(|n| n.external.0) {
                bail!("network {name} declared as external, but could not be found");
            }
            create_network(host, project, key, &name)?;
        }
    }
    Ok(())
}
