//! Supervision: the engine watches every container it knows, restarts
//! those whose policy says so (with exponential back-off that resets after
//! a stable run), runs their health probes, keeps a board of what it saw
//! (state, health, restarts, who waits on what), and tells subscribers
//! (`stack events`) about every change.
//!
//! Everything here is driven by the [`Driver`]'s `wait` (a container's
//! exit) and `probe`, and by tokio's clock, so the tests run it on a fake
//! driver in virtual time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use stack_wire::ContainerEvent;
use tokio::time::Instant;

use crate::{Driver, Engine};

/// When a container is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartWhen {
    #[default]
    No,
    Always,
    OnFailure,
    UnlessStopped,
}

/// A restart policy: Docker's `restart:` and compose's
/// `deploy.restart_policy` in one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartPolicy {
    pub when: RestartWhen,
    /// Restarts in a row (each ending before `window`) before giving up.
    pub max_attempts: Option<u32>,
    /// The first back-off (default 100 ms); it doubles up to a minute.
    pub delay: Option<Duration>,
    /// A run this long is stable: back-off and attempts start over
    /// (default 10 s).
    pub window: Option<Duration>,
}

/// The longest back-off between two restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const STABLE_RUN: Duration = Duration::from_secs(10);

impl RestartPolicy {
    /// `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, n) = match s.split_once(':') {
            Some((name, n)) => (name, Some(n)),
            None => (s, None),
        };
        let when = match name {
            "" | "no" => RestartWhen::No,
            "always" => RestartWhen::Always,
            "on-failure" => RestartWhen::OnFailure,
            "unless-stopped" => RestartWhen::UnlessStopped,
            _ => {
                return Err(format!(
                    "invalid restart policy `{s}`: no, always, on-failure[:N] or unless-stopped"
                ))
            }
        };
        let max_attempts = match n {
            None => None,
            Some(n) if when == RestartWhen::OnFailure => Some(
                n.parse()
                    .map_err(|_| format!("invalid restart policy `{s}`: N is a number"))?,
            ),
            Some(_) => {
                return Err(format!(
                    "invalid restart policy `{s}`: only on-failure takes :N"
                ))
            }
        };
        Ok(RestartPolicy {
            when,
            max_attempts,
            ..RestartPolicy::default()
        })
    }

    /// Whether an exit with `code` calls for a restart.
    pub fn restarts_after(&self, code: i32) -> bool {
        match self.when {
            RestartWhen::No => false,
            RestartWhen::Always | RestartWhen::UnlessStopped => true,
            RestartWhen::OnFailure => code != 0,
        }
    }

    /// The wait before restart number `attempt` (0 first): the delay,
    /// doubled each time, at most [`MAX_BACKOFF`].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let first = self.delay.unwrap_or(FIRST_BACKOFF);
        first
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF.max(first))
    }

    fn stable(&self) -> Duration {
        self.window.unwrap_or(STABLE_RUN)
    }
}

/// What a health probe does.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// A command run inside the container (`CMD`, `CMD-SHELL` as `sh -c`).
    Exec(Vec<String>),
    /// An HTTP GET from the engine, in the container's network namespace:
    /// healthy on `status` (default: any 2xx or 3xx).
    Http {
        port: u16,
        path: String,
        status: Option<u16>,
    },
    /// A TCP connect from the engine, in the container's network namespace.
    Tcp { port: u16 },
}

/// A health check with Docker's timings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

impl HealthConfig {
    /// Docker's defaults: every 30 s, 30 s timeout, 3 retries, no start
    /// period, 5 s between probes during it.
    pub fn new(probe: Probe) -> HealthConfig {
        HealthConfig {
            probe,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
        }
    }
}

/// One probe's result: its exit code (0 healthy) and output.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    pub code: i32,
    pub output: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// `depends_on` conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

impl Condition {
    pub fn parse(s: &str) -> Condition {
        match s {
            "service_healthy" => Condition::Healthy,
            "service_completed_successfully" => Condition::CompletedSuccessfully,
            _ => Condition::Started,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// One `depends_on` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub required: bool,
    /// Restart the dependent when this dependency is restarted.
    pub restart: bool,
}

/// The `depends_on` of a container as compose labels it:
/// `SERVICE:CONDITION:RESTART` entries, comma-separated.
pub fn parse_depends_label(label: &str) -> Vec<Dependency> {
    label
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut parts = e.split(':');
            let service = parts.next().unwrap_or_default().to_string();
            let condition = Condition::parse(parts.next().unwrap_or_default());
            let restart = parts.next() == Some("true");
            let required = parts.next() != Some("false");
            Dependency {
                service,
                condition,
                required,
                restart,
            }
        })
        .collect()
}

/// A container as the driver sees it, with what supervision needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    pub number: u32,
    pub hash: String,
    pub image: String,
    pub running: bool,
    pub exit_code: Option<i32>,
    /// When its last run ended, if one has (RFC 3339).
    pub finished_at: Option<String>,
    /// A user stopped it (`stop`, `down`, `kill` through stop): no policy
    /// starts it again.
    pub stopped_by_user: bool,
    /// `stack run`'s containers are not replicas.
    pub one_off: bool,
    /// Removed once it has exited (`run -d --rm`).
    pub auto_remove: bool,
    pub restart: RestartPolicy,
    pub health: Option<HealthConfig>,
    pub depends_on: Vec<Dependency>,
}

impl Observed {
    pub fn existing(&self) -> stack_plan::Existing {
        stack_plan::Existing {
            id: self.id.clone(),
            name: self.name.clone(),
            service: self.service.clone(),
            number: self.number,
            hash: self.hash.clone(),
            running: self.running,
        }
    }
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub oom_killed: bool,
}

/// What the engine saw of a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub container: Observed,
    pub state: RunState,
    pub health: Option<Health>,
    /// Restarts by policy since the engine started watching it.
    pub restarts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Exited(i32),
    /// Exited with this code; the policy starts it again after a back-off.
    Restarting(i32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last five probes, oldest first.
    pub log: VecDeque<ProbeResult>,
}

/// What the engine knows now; waiters are woken on every change.
#[derive(Default)]
pub struct Board {
    records: Mutex<HashMap<String, Record>>,
    /// (project, service) -> why it is not started yet.
    waiting: Mutex<BTreeMap<(String, String), String>>,
    version: tokio::sync::watch::Sender<u64>,
}

impl Board {
    fn change<T>(&self, f: impl FnOnce(&mut HashMap<String, Record>) -> T) -> T {
        let out = f(&mut self.records.lock().unwrap_or_else(|p| p.into_inner()));
        self.version.send_modify(|v| *v += 1);
        out
    }

    /// A copy of the record of a container.
    pub fn get(&self, id: &str) -> Option<Record> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The records of a service's replicas (one-off containers left out).
    pub fn service(&self, project: &str, service: &str) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|r| {
                r.container.project == project
                    && r.container.service == service
                    && !r.container.one_off
            })
            .cloned()
            .collect();
        v.sort_by_key(|r| r.container.number);
        v
    }

    /// Services of a project not started yet, and why.
    pub fn waiting(&self, project: &str) -> Vec<(String, String)> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((p, _), _)| p == project)
            .map(|((_, s), why)| (s.clone(), why.clone()))
            .collect()
    }

    fn set_waiting(&self, project: &str, service: &str, why: Option<String>) {
        let key = (project.to_string(), service.to_string());
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match why {
            Some(why) => w.insert(key, why),
            None => w.remove(&key),
        };
    }

    /// Records a container (keeping what was seen of it before).
    fn know(&self, c: &Observed) {
        self.change(|r| {
            let state = if c.running {
                RunState::Running
            } else {
                RunState::Exited(c.exit_code.unwrap_or(0))
            };
            let e = r.entry(c.id.clone()).or_insert_with(|| Record {
                container: c.clone(),
                state,
                health: None,
                restarts: 0,
            });
            e.container = c.clone();
            e.state = state;
        })
    }

    pub(crate) fn forget(&self, id: &str) {
        self.change(|r| r.remove(id));
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Record)) {
        self.change(|r| r.get_mut(id).map(f));
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }
}

fn now_nano() -> i64 {
    stack_sys::time::now_nanos() as i64
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// Tells subscribers (`stack events`) what happened to a container.
    pub fn publish(&self, c: &Observed, action: &str, attributes: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.image.clone());
        let e = ContainerEvent {
            time_nano: now_nano(),
            project: c.project.clone(),
            service: c.service.clone(),
            id: c.id.clone(),
            action: action.into(),
            attributes: attrs,
        };
        let mut kept = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == crate::KEPT_EVENTS {
            kept.pop_front();
        }
        kept.push_back(e.clone());
        let _ = self.bus.send(e);
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.bus.subscribe()
    }

    /// The kept events from `since` (Unix nanoseconds) on, and every
    /// event after them.
    pub fn subscribe_since(
        &self,
        since: i64,
    ) -> (
        Vec<ContainerEvent>,
        tokio::sync::broadcast::Receiver<ContainerEvent>,
    ) {
        let kept = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = kept
            .iter()
            .filter(|e| e.time_nano >= since)
            .cloned()
            .collect();
        (past, self.bus.subscribe())
    }

    /// Takes every container on the host into account: all are on the
    /// board, running ones are watched (if they are not already), and
    /// those to remove once exited that exited unwatched are removed.
    pub fn adopt(self: &Arc<Self>) -> anyhow::Result<()> {
        let all = self.driver.observe(None)?;
        let ids: HashSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .board
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|id| !ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.board.forget(&id);
        }
        for c in all {
            // (An exit code: it has run, it is not being started.)
            if c.running || (c.auto_remove && c.exit_code.is_some()) {
                self.watch(c);
            } else if !self.watching(&c.id) {
                self.board.know(&c);
            }
        }
        Ok(())
    }

    fn watching(&self, id: &str) -> bool {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Watches a container that was just started (or found running): its
    /// exit, its policy, its health, until it is removed or stopped for good.
    pub fn watch(self: &Arc<Self>, c: Observed) {
        if !self
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id.clone())
        {
            return;
        }
        // On the board now: who waits for it must find it.
        self.board.know(&c);
        let engine = self.clone();
        self.handle.spawn(async move {
            let id = c.id.clone();
            engine.supervise(c).await;
            engine
                .watched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    async fn supervise(self: &Arc<Self>, mut c: Observed) {
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            c.running = true;
            self.board.know(&c);
            let health = c.health.clone().map(|h| {
                let engine = self.clone();
                let who = c.clone();
                self.handle
                    .spawn(async move { engine.check_health(&who, &h).await })
            });
            let exit = self.driver.wait(&c.id).await;
            if let Some(h) = health {
                h.abort();
            }
            let Ok(exit) = exit else {
                self.board.forget(&c.id);
                return;
            };
            self.publish(
                &c,
                "die",
                &[
                    ("exitCode", exit.code.to_string()),
                    ("oomKilled", exit.oom_killed.to_string()),
                ],
            );
            self.board
                .update(&c.id, |r| r.state = RunState::Exited(exit.code));
            if c.auto_remove {
                if self.driver.remove(&c.id, None).await.is_ok() {
                    self.publish(&c, "destroy", &[]);
                }
                self.board.forget(&c.id);
                return;
            }
            if started.elapsed() >= c.restart.stable() {
                attempts = 0;
            }
            let Some(now) = self.current(&c.project, &c.id) else {
                return;
            };
            if now.running {
                // Someone started it again already (`restart`).
                continue;
            }
            let gave_up = c.restart.max_attempts.is_some_and(|m| attempts >= m);
            if now.stopped_by_user || !c.restart.restarts_after(exit.code) || gave_up {
                // The watch of this container ends here: no restart follows.
                tracing::info!(
                    container = %c.name,
                    exit_code = exit.code,
                    attempts,
                    "not restarted{}",
                    if gave_up { ": its restart policy gave up" } else { "" }
                );
                return;
            }
            self.board
                .update(&c.id, |r| r.state = RunState::Restarting(exit.code));
            tokio::time::sleep(c.restart.backoff(attempts)).await;
            match self.current(&c.project, &c.id) {
                None => return,
                Some(now) if now.running => continue,
                Some(now) if now.stopped_by_user => {
                    self.board
                        .update(&c.id, |r| r.state = RunState::Exited(exit.code));
                    return;
                }
                Some(_) => {}
            }
            attempts += 1;
            if let Err(e) = self.driver.start(&c.id).await {
                self.publish(&c, "restart-failed", &[("error", format!("{e:#}"))]);
                self.board
                    .update(&c.id, |r| r.state = RunState::Exited(exit.code));
                return;
            }
            self.board.update(&c.id, |r| r.restarts += 1);
            self.publish(&c, "restart", &[("attempt", attempts.to_string())]);
            let engine = self.clone();
            let (project, service) = (c.project.clone(), c.service.clone());
            self.handle.spawn(async move {
                engine.restart_dependents(&project, &service).await;
            });
        }
    }

    /// After `service` was restarted: its running dependents that ask for
    /// it (`depends_on: {SERVICE: {restart: true}}`) are restarted too, once
    /// the dependency meets their condition again.
    pub async fn restart_dependents(self: &Arc<Self>, project: &str, service: &str) {
        let Ok(all) = self.driver.observe(Some(project)) else {
            return;
        };
        for c in all.iter().filter(|c| c.running && !c.one_off) {
            let Some(d) = c
                .depends_on
                .iter()
                .find(|d| d.service == service && d.restart)
            else {
                continue;
            };
            if self.ready(project, &c.service, d).await.is_err() {
                continue;
            }
            if self.driver.restart(&c.id, None).await.is_ok() {
                self.started(project, &c.id);
                self.publish(c, "restart", &[("dependency", service.to_string())]);
            }
        }
    }

    /// A container of `project` as it is now; None once it is gone.
    pub(crate) fn current(&self, project: &str, id: &str) -> Option<Observed> {
        self.driver.observe_one(project, id).ok()?
    }

    /// Probes a running container for as long as it runs (the task is
    /// aborted when it exits), with Docker's rules: during the start
    /// period probes come every `start_interval` and failures do not
    /// count; `retries` failures in a row make it unhealthy, one success
    /// healthy.
    async fn check_health(self: &Arc<Self>, c: &Observed, h: &HealthConfig) {
        let begun = Instant::now();
        let mut status = HealthStatus::Starting;
        let mut streak = 0u32;
        self.board.update(&c.id, |r| {
            r.health = Some(Health {
                status,
                failing_streak: 0,
                log: VecDeque::new(),
            })
        });
        loop {
            let starting = begun.elapsed() < h.start_period;
            tokio::time::sleep(if starting && status == HealthStatus::Starting {
                h.start_interval
            } else {
                h.interval
            })
            .await;
            let result = match tokio::time::timeout(h.timeout, self.driver.probe(&c.id, h)).await {
                Ok(r) => r,
                Err(_) => ProbeResult {
                    code: -1,
                    output: format!("Health check exceeded timeout ({:?})", h.timeout),
                },
            };
            let in_start_period = begun.elapsed() < h.start_period;
            let was = status;
            if result.code == 0 {
                streak = 0;
                status = HealthStatus::Healthy;
            } else if !(in_start_period && status == HealthStatus::Starting) {
                streak += 1;
                if streak >= h.retries.max(1) {
                    status = HealthStatus::Unhealthy;
                }
            }
            self.board.update(&c.id, |r| {
                let health = r.health.get_or_insert_with(|| Health {
                    status,
                    failing_streak: 0,
                    log: VecDeque::new(),
                });
                health.status = status;
                health.failing_streak = streak;
                health.log.push_back(result);
                while health.log.len() > 5 {
                    health.log.pop_front();
                }
            });
            if status != was {
                self.publish(c, &format!("health_status: {status}"), &[]);
            }
        }
    }

    /// Waits until `dependency` of `service` holds; fails if it never can
    /// (a dependency that is unhealthy, failed or has no health check).
    pub async fn ready(
        &self,
        project: &str,
        service: &str,
        dependency: &Dependency,
    ) -> anyhow::Result<()> {
        let mut changed = self.board.subscribe();
        let result = loop {
            changed.borrow_and_update();
            match self.condition(project, dependency) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            let why = self.waiting_reason(project, dependency);
            self.board.set_waiting(project, service, Some(why));
            if changed.changed().await.is_err() {
                break Ok(());
            }
        };
        self.board.set_waiting(project, service, None);
        result
    }

    fn waiting_reason(&self, project: &str, d: &Dependency) -> String {
        let states: Vec<String> = self
            .board
            .service(project, &d.service)
            .iter()
            .map(|r| format!("{} {}", r.container.name, describe(r)))
            .collect();
        format!(
            "waiting for {} ({}): {}",
            d.service,
            d.condition.name(),
            if states.is_empty() {
                "no container yet".into()
            } else {
                states.join(", ")
            }
        )
    }

    /// Whether a dependency holds now; an error if it never will.
    fn condition(&self, project: &str, d: &Dependency) -> anyhow::Result<bool> {
        let records = self.board.service(project, &d.service);
        if records.is_empty() {
            if d.required {
                bail!("dependency `{}` has no container", d.service);
            }
            return Ok(true);
        }
        for r in &records {
            let name = &r.container.name;
            let ok = match d.condition {
                Condition::Started => true,
                Condition::Healthy => match (&r.health, r.state) {
                    (_, RunState::Exited(code)) => {
                        bail!("dependency failed to start: container {name} exited ({code})")
                    }
                    (None, _) if r.container.health.is_none() => {
                        bail!("dependency failed to start: container {name} has no healthcheck configured")
                    }
                    (Some(h), _) if h.status == HealthStatus::Unhealthy => {
                        bail!("dependency failed to start: container {name} is unhealthy")
                    }
                    (Some(h), RunState::Running) => h.status == HealthStatus::Healthy,
                    _ => false,
                },
                Condition::CompletedSuccessfully => match r.state {
                    RunState::Exited(0) => true,
                    RunState::Exited(code) => bail!(
                        "service {} didn't complete successfully: exit {code}",
                        d.service
                    ),
                    _ => false,
                },
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `--wait [--wait-timeout S]` of `up` and `start`: [`Self::settled`],
    /// or an error naming what is not ready after `timeout` seconds.
    pub async fn settled_within(
        &self,
        project: &str,
        services: &[String],
        timeout: Option<u64>,
    ) -> anyhow::Result<()> {
        let limit = std::time::Duration::from_secs(timeout.unwrap_or(u64::MAX / 4));
        let mut pending = Vec::new();
        let settled = self.settled(project, services, &mut pending);
        match tokio::time::timeout(limit, settled).await {
            Ok(r) => r,
            Err(_) => bail!(
                "--wait: not ready after {}s: {}",
                limit.as_secs(),
                pending.join(", ")
            ),
        }
    }

    /// `up --wait`: until every replica of `services` is where it should
    /// end up: running (and healthy, if it has a health check), or exited
    /// 0 for one-shots whose policy leaves them so.
    /// `pending` says what it still waited for when it last looked (for a
    /// caller that gives up on it).
    pub async fn settled(
        &self,
        project: &str,
        services: &[String],
        pending: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let mut changed = self.board.subscribe();
        loop {
            changed.borrow_and_update();
            pending.clear();
            for service in services {
                for r in self.board.service(project, service) {
                    let name = &r.container.name;
                    match (r.state, &r.health) {
                        (RunState::Exited(0), _) if !r.container.restart.restarts_after(0) => {}
                        (RunState::Exited(code), _) => {
                            bail!("container {name} exited ({code})")
                        }
                        (_, Some(h)) if h.status == HealthStatus::Unhealthy => {
                            bail!("container {name} is unhealthy")
                        }
                        (RunState::Running, Some(h)) if h.status == HealthStatus::Healthy => {}
                        (RunState::Running, None) if r.container.health.is_none() => {}
                        _ => pending.push(format!("{name} {}", describe(&r))),
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if changed.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// On engine start: containers that should run but do not (their
    /// policy says so, no user stopped them) are started, each project in
    /// `depends_on` order, waiting for the conditions its file sets.
    pub async fn boot(self: &Arc<Self>) -> anyhow::Result<()> {
        self.adopt()?;
        let all = self.driver.observe(None)?;
        let mut projects: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
        for c in all.iter().filter(|c| !c.one_off && !c.project.is_empty()) {
            projects.entry(&c.project).or_default().push(c);
        }
        let results = futures::future::join_all(
            projects
                .into_iter()
                .map(|(project, cs)| self.boot_project(project, cs)),
        )
        .await;
        crate::failures(results)
    }

    async fn boot_project(
        self: &Arc<Self>,
        project: &str,
        cs: Vec<&Observed>,
    ) -> anyhow::Result<()> {
        let nodes: Vec<String> = cs.iter().map(|c| c.service.clone()).collect();
        let edges = cs.iter().flat_map(|c| {
            c.depends_on.iter().map(|d| stack_graph::Edge {
                from: c.service.clone(),
                to: d.service.clone(),
                kind: stack_graph::EdgeKind::DependsOn,
                detail: None,
            })
        });
        let waves = stack_graph::Graph::new(nodes, edges)
            .waves()
            .map_err(|c| anyhow::anyhow!("project {project}: dependency cycle: {c:?}"))?;
        for wave in waves {
            let results = futures::future::join_all(
                cs.iter()
                    .filter(|c| wave.contains(&c.service) && should_run(c))
                    .map(|c| async move {
                        for d in &c.depends_on {
                            self.ready(project, &c.service, d).await?;
                        }
                        self.driver.start(&c.id).await?;
                        let mut started = (*c).clone();
                        started.running = true;
                        self.publish(&started, "start", &[]);
                        self.watch(started);
                        anyhow::Ok(())
                    }),
            )
            .await;
            crate::failures(results)?;
        }
        Ok(())
    }
}

/// A container found stopped at engine start that its policy wants running.
fn should_run(c: &Observed) -> bool {
    !c.running && !c.stopped_by_user && c.restart.restarts_after(c.exit_code.unwrap_or(0))
}

/// `running (health: starting)`, `exited (1)`, `restarting (1)`.
pub fn describe(r: &Record) -> String {
    let state = match r.state {
        RunState::Running => "running".to_string(),
        RunState::Exited(c) => format!("exited ({c})"),
        RunState::Restarting(c) => format!("restarting after exit ({c})"),
    };
    match &r.health {
        Some(h) if r.state == RunState::Running => format!("{state} (health: {})", h.status),
        _ => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_as_docker_writes_them() {
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.when, p.max_attempts), (RestartWhen::OnFailure, Some(3)));
        assert_eq!(
            RestartPolicy::parse("always").unwrap().when,
            RestartWhen::Always
        );
        assert_eq!(RestartPolicy::parse("no").unwrap().when, RestartWhen::No);
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let p = RestartPolicy::default();
        let waits: Vec<u128> = (0..12).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(p.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn depends_labels_read_as_compose_writes_them() {
        let d = parse_depends_label("db:service_healthy:false,init:service_completed_successfully:true,cache:service_started:false:false");
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].service.as_str(), d[0].condition),
            ("db", Condition::Healthy)
        );
        assert_eq!(d[1].condition, Condition::CompletedSuccessfully);
        assert!(d[0].required && !d[2].required);
        assert!(!d[0].restart && d[1].restart && !d[2].restart);
        assert!(parse_depends_label("").is_empty());
    }
}
