//! The engine on a fake driver, on tokio's paused clock: every operation
//! takes a known (virtual) time, so order, overlap and parallelism show in
//! the instants at which operations begin and end; containers exit and
//! become healthy at scripted instants, so supervision (restart policies,
//! back-off, health, conditions, boot order) shows in them too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stack_engine::{
    watch, Dependency, Driver, Engine, Exit, HealthConfig, LogReader, LogRecord, Observed, Origin,
    Probe, ProbeResult, Replica, RestartPolicy,
};
use stack_model::Project;
use stack_wire::{Action, ActionRequest, DownRequest, Event, Events, UpRequest};
use tokio::time::Instant;

/// How a service's containers behave once started.
#[derive(Clone, Default)]
struct Script {
    /// Exits this long after each start, with `code`.
    exits_after: Option<Duration>,
    code: i32,
    /// Probes succeed from this long after each start on.
    healthy_after: Option<Duration>,
    /// The container's health check: probes every second, 3 retries.
    health: bool,
    /// ... with this start period (probes every 5 s in it).
    start_period: Duration,
}

struct Container {
    o: Observed,
    started: Instant,
    script: Script,
}

/// A host in memory. Each operation sleeps `took` (per container or
/// network name, or `image-SERVICE` for pulls; default `default`, pulls 0)
/// and is logged as `T+ms begin|end op name`.
struct Fake {
    t0: Instant,
    default: Duration,
    took: BTreeMap<String, Duration>,
    fail: BTreeSet<String>,
    scripts: BTreeMap<String, Script>,
    log: Mutex<Vec<String>>,
    containers: Mutex<Vec<Container>>,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<BTreeSet<String>>,
    /// Ids of the containers whose processes are frozen.
    paused: Mutex<BTreeSet<String>>,
    busy: Mutex<(usize, usize)>,
    changed: tokio::sync::Notify,
    /// What each container (by id) wrote.
    logs: Logs,
}

type Logs = Arc<Mutex<BTreeMap<String, Vec<LogRecord>>>>;

/// A fake container's log, read two records at a time (as the host reads
/// a chunk), to its end, or without `follow` to where it ended when opened.
struct FakeLog {
    logs: Logs,
    id: String,
    at: usize,
    end: Option<usize>,
}

impl FakeLog {
    fn records(&self) -> Vec<LogRecord> {
        let logs = self.logs.lock().unwrap();
        let all = logs.get(&self.id).cloned().unwrap_or_default();
        all[..self.end.unwrap_or(all.len()).min(all.len())].to_vec()
    }
}

impl LogReader for FakeLog {
    fn tail(&mut self, n: usize, wants: &dyn Fn(&str) -> bool) -> Vec<LogRecord> {
        let all = self.records();
        self.at = all.len();
        let kept: Vec<LogRecord> = all.into_iter().filter(|r| wants(&r.time)).collect();
        kept[kept.len().saturating_sub(n)..].to_vec()
    }

    fn read_new(&mut self) -> Option<Vec<LogRecord>> {
        let all = self.records();
        let chunk = all.get(self.at..(self.at + 2).min(all.len()))?;
        if chunk.is_empty() {
            return None;
        }
        self.at += chunk.len();
        Some(chunk.to_vec())
    }
}

impl Fake {
    fn new() -> Fake {
        Fake {
            t0: Instant::now(),
            default: Duration::from_secs(1),
            took: BTreeMap::new(),
            fail: BTreeSet::new(),
            scripts: BTreeMap::new(),
            log: Mutex::new(Vec::new()),
            containers: Mutex::new(Vec::new()),
            networks: Mutex::new(Vec::new()),
            volumes: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            busy: Mutex::new((0, 0)),
            changed: tokio::sync::Notify::new(),
            logs: Logs::default(),
        }
    }

    /// Operations take no time: only the scripts' instants count.
    fn instant() -> Fake {
        Fake {
            default: Duration::ZERO,
            ..Fake::new()
        }
    }

    fn ms(&self) -> u128 {
        self.t0.elapsed().as_millis()
    }

    async fn op(&self, what: &str, name: &str) -> anyhow::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} begin {what} {name}", self.ms()));
        {
            let mut b = self.busy.lock().unwrap();
            b.0 += 1;
            b.1 = b.1.max(b.0);
        }
        let took = self
            .took
            .get(name)
            .copied()
            .unwrap_or(if what.starts_with("pull") {
                Duration::ZERO
            } else {
                self.default
            });
        tokio::time::sleep(took).await;
        self.busy.lock().unwrap().0 -= 1;
        self.log
            .lock()
            .unwrap()
            .push(format!("{} end {what} {name}", self.ms()));
        if self.fail.contains(name) {
            anyhow::bail!("{name} would not {what}");
        }
        Ok(())
    }

    /// The log without the `end` lines and pulls.
    fn begun(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" begin ") && !l.contains(" pull("))
            .map(|l| l.replace(" begin", ""))
            .collect()
    }

    /// `pull(POLICY) image-SERVICE` for each pull begun.
    fn pulls(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" begin pull("))
            .map(|l| l.split_once(" begin ").unwrap().1.to_string())
            .collect();
        p.sort();
        p
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.snapshot().into_iter().map(|o| o.name).collect();
        n.sort();
        n
    }

    fn most_at_once(&self) -> usize {
        self.busy.lock().unwrap().1
    }

    /// Containers as they are now: those past their scripted exit have exited.
    fn snapshot(&self) -> Vec<Observed> {
        let mut cs = self.containers.lock().unwrap();
        for c in cs.iter_mut() {
            if let Some(after) = c.script.exits_after {
                if c.o.running && c.started.elapsed() >= after {
                    c.o.running = false;
                    c.o.exit_code = Some(c.script.code);
                    c.o.finished_at = Some(format!("{:?}", c.started + after));
                }
            }
        }
        cs.iter().map(|c| c.o.clone()).collect()
    }

    fn with_id<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> T) -> T {
        let mut cs = self.containers.lock().unwrap();
        let c = cs.iter_mut().find(|c| c.o.id == id).expect("known id");
        let out = f(c);
        self.changed.notify_waiters();
        out
    }

    fn name_of(&self, id: &str) -> String {
        self.with_id(id, |c| c.o.name.clone())
    }

    /// Begin times of an operation on a container, in ms.
    fn times(&self, what: &str, name: &str) -> Vec<u128> {
        self.begun()
            .iter()
            .filter_map(|l| {
                let (t, rest) = l.split_once(' ')?;
                (rest == format!("{what} {name}")).then(|| t.parse().unwrap())
            })
            .collect()
    }

    /// A container that exists, stopped, as an engine finds it at boot.
    fn stopped(&self, p: &Project, service: &str, restart: &str, by_user: bool) {
        let o = Observed {
            id: format!("id-{service}"),
            name: format!("shop-{service}-1"),
            project: p.name.clone(),
            service: service.into(),
            number: 1,
            running: false,
            exit_code: Some(137),
            stopped_by_user: by_user,
            restart: RestartPolicy::parse(restart).unwrap(),
            ..Observed::default()
        };
        let o = self.with_script(p, o);
        self.containers.lock().unwrap().push(Container {
            o,
            started: Instant::now(),
            script: self.scripts.get(service).cloned().unwrap_or_default(),
        });
    }

    /// What the stack file and the script say of a service's containers.
    fn with_script(&self, p: &Project, mut o: Observed) -> Observed {
        let s = &p.services[&o.service];
        let script = self.scripts.get(&o.service).cloned().unwrap_or_default();
        if let Some(r) = &s.restart {
            o.restart = RestartPolicy::parse(r).unwrap();
        }
        if script.health {
            let mut h = HealthConfig::new(Probe::Exec(vec!["check".into()]));
            h.interval = Duration::from_secs(1);
            h.timeout = Duration::from_millis(500);
            h.start_period = script.start_period;
            o.health = Some(h);
        }
        o.depends_on = s
            .depends_on
            .iter()
            .map(|(name, d)| Dependency {
                service: name.clone(),
                condition: stack_engine::Condition::parse(&d.condition),
                required: d.required,
                restart: d.restart,
            })
            .collect();
        o
    }
}

impl Fake {
    /// A new container of the project: running, or created and not started
    /// (which no policy starts).
    fn add(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        name: &str,
        running: bool,
    ) -> Observed {
        let o = Observed {
            id: format!("id-{name}-{}", self.ms()),
            name: name.into(),
            project: origin.project.name.clone(),
            service: service.into(),
            number,
            hash: stack_plan::hash_service(&origin.project.services[service]),
            running,
            stopped_by_user: !running,
            ..Observed::default()
        };
        let o = self.with_script(origin.project, o);
        self.containers.lock().unwrap().push(Container {
            o: o.clone(),
            started: Instant::now(),
            script: self.scripts.get(service).cloned().unwrap_or_default(),
        });
        self.changed.notify_waiters();
        o
    }
}

impl Driver for Fake {
    fn observe(&self, _project: Option<&str>) -> anyhow::Result<Vec<Observed>> {
        Ok(self.snapshot())
    }

    fn networks(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.networks.lock().unwrap().clone())
    }

    async fn create_network(&self, _p: &Project, _key: &str, name: &str) -> anyhow::Result<()> {
        self.op("create-network", name).await?;
        self.networks.lock().unwrap().push(name.into());
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> anyhow::Result<()> {
        self.op("remove-network", name).await?;
        self.networks.lock().unwrap().retain(|n| n != name);
        Ok(())
    }

    async fn pull(&self, _p: &Project, service: &str, policy: &str) -> anyhow::Result<bool> {
        self.op(&format!("pull({policy})"), &format!("image-{service}"))
            .await?;
        Ok(policy == "always")
    }

    async fn create(&self, r: &Replica<'_>, start: bool) -> anyhow::Result<Observed> {
        self.op(if start { "run" } else { "create" }, r.name)
            .await?;
        Ok(self.add(r.origin, r.service, r.number, r.name, start))
    }

    async fn start(&self, id: &str) -> anyhow::Result<()> {
        self.op("start", &self.name_of(id)).await?;
        self.with_id(id, |c| {
            c.o.running = true;
            c.o.exit_code = None;
            c.o.stopped_by_user = false;
            c.started = Instant::now();
        });
        Ok(())
    }

    async fn restart(&self, id: &str, _timeout: Option<u64>) -> anyhow::Result<()> {
        self.op("restart", &self.name_of(id)).await?;
        self.with_id(id, |c| c.started = Instant::now());
        Ok(())
    }

    async fn stop(&self, id: &str, _timeout: Option<u64>) -> anyhow::Result<()> {
        self.with_id(id, |c| {
            c.o.stopped_by_user = true;
            c.o.running = false;
            c.o.exit_code.get_or_insert(143);
        });
        self.op("stop", &self.name_of(id)).await
    }

    async fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        self.op(&format!("kill-{signal}"), &self.name_of(id))
            .await?;
        self.with_id(id, |c| {
            c.o.running = false;
            c.o.exit_code = Some(137);
        });
        Ok(())
    }

    async fn pause(&self, id: &str, paused: bool) -> anyhow::Result<()> {
        let what = if paused { "pause" } else { "unpause" };
        self.op(what, &self.name_of(id)).await?;
        let mut frozen = self.paused.lock().unwrap();
        match paused {
            true => frozen.insert(id.to_string()),
            false => frozen.remove(id),
        };
        Ok(())
    }

    fn paused(&self, id: &str) -> bool {
        self.paused.lock().unwrap().contains(id)
    }

    async fn remove(&self, id: &str, _timeout: Option<u64>) -> anyhow::Result<()> {
        self.with_id(id, |c| {
            c.o.stopped_by_user = true;
            c.o.running = false;
            c.o.exit_code.get_or_insert(143);
        });
        self.op("remove", &self.name_of(id)).await?;
        self.containers.lock().unwrap().retain(|c| c.o.id != id);
        self.changed.notify_waiters();
        Ok(())
    }

    async fn wait(&self, id: &str) -> anyhow::Result<Exit> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.snapshot();
            let (running, code, deadline) = {
                let cs = self.containers.lock().unwrap();
                let Some(c) = cs.iter().find(|c| c.o.id == id) else {
                    anyhow::bail!("no such container {id}");
                };
                (
                    c.o.running,
                    c.o.exit_code.unwrap_or(0),
                    c.script.exits_after.map(|d| c.started + d),
                )
            };
            if !running {
                return Ok(Exit {
                    code,
                    oom_killed: false,
                });
            }
            match deadline {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(d) => {}
                        _ = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    async fn probe(&self, id: &str, _health: &HealthConfig) -> ProbeResult {
        let healthy = self.with_id(id, |c| {
            c.o.running
                && c.script
                    .healthy_after
                    .is_some_and(|d| c.started.elapsed() >= d)
        });
        self.log.lock().unwrap().push(format!(
            "{} probe {} {healthy}",
            self.ms(),
            self.name_of(id)
        ));
        ProbeResult {
            code: if healthy { 0 } else { 1 },
            output: if healthy { "ok" } else { "not yet" }.into(),
        }
    }

    async fn sync(
        &self,
        id: &str,
        trigger: &watch::Trigger,
        paths: &[std::path::PathBuf],
    ) -> anyhow::Result<usize> {
        let targets: Vec<String> = paths.iter().filter_map(|p| trigger.target_of(p)).collect();
        self.op(&format!("sync {}", targets.join(",")), &self.name_of(id))
            .await?;
        Ok(targets.len())
    }

    async fn pre_start(&self, r: &Replica<'_>, index: usize) -> anyhow::Result<(i32, String)> {
        let hook = &r.origin.project.services[r.service].pre_start[index];
        let command = hook.command.clone().map(|c| c.0).unwrap_or_default();
        self.op(&format!("pre_start {}", command.join(" ")), r.service)
            .await?;
        // `false` fails, as the command does.
        match command.first().map(String::as_str) {
            Some("false") => Ok((3, "it failed\n".into())),
            _ => Ok((0, String::new())),
        }
    }

    async fn exec(&self, id: &str, exec: &watch::Exec) -> anyhow::Result<(i32, String)> {
        self.op(
            &format!("exec {}", exec.command.join(" ")),
            &self.name_of(id),
        )
        .await?;
        // `false` fails, as the command does.
        match exec.command.first().map(String::as_str) {
            Some("false") => Ok((1, "it failed\n".into())),
            _ => Ok((0, String::new())),
        }
    }

    fn remove_volume(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.volumes.lock().unwrap().remove(name))
    }

    fn remove_image(&self, name: &str) -> anyhow::Result<bool> {
        if self.fail.contains(&format!("remove-image {name}")) {
            anyhow::bail!("image is in use by a container");
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("{} begin remove-image {name}", self.ms()));
        Ok(true)
    }

    fn forget_project(&self, _project: &str) -> anyhow::Result<()> {
        Ok(())
    }

    fn log(&self, id: &str, follow: bool) -> Box<dyn LogReader> {
        let now = self.logs.lock().unwrap().get(id).map_or(0, Vec::len);
        Box::new(FakeLog {
            logs: self.logs.clone(),
            id: id.to_string(),
            at: 0,
            end: (!follow).then_some(now),
        })
    }
}

fn project(yaml: &str) -> Project {
    stack_loader::load(&stack_loader::Options {
        working_dir: "/nowhere".into(),
        files: vec!["-".into()],
        stdin: Some(yaml.into()),
        project_name: Some("shop".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .project
}

fn up_req(p: &Project) -> UpRequest {
    UpRequest {
        project: p.clone(),
        ..Default::default()
    }
}

/// Runs `up`; the error if any, and the events' lines.
fn engine(fake: Fake) -> Arc<Engine<Fake>> {
    Engine::new(fake, tokio::runtime::Handle::current())
}

async fn up(e: &Arc<Engine<Fake>>, req: UpRequest) -> (Option<String>, Vec<String>) {
    let (events, mut rx) = Events::channel();
    let r = e.up(&req, &events).await;
    drop(events);
    let mut lines = Vec::new();
    while let Some(e) = rx.recv().await {
        lines.push(match e {
            Event::Progress {
                object,
                name,
                action,
            } => format!("{object} {name} {action}"),
            Event::Warning { message } => format!("warning: {message}"),
            Event::Plan { line } => format!("plan: {line}"),
            other => format!("{other:?}"),
        });
    }
    (r.err().map(|e| format!("{e:#}")), lines)
}

const SHOP: &str = "
services:
  web:
    image: web
    depends_on: [api]
  api:
    image: api
    depends_on: [db, cache]
  db:
    image: db
  cache:
    image: cache
volumes:
  data: {}
";

#[tokio::test(start_paused = true)]
async fn dependencies_start_first_and_independent_services_together() {
    let fake = Fake::new();
    let p = project(SHOP);
    let e = engine(fake);
    let fake = e.driver();
    let (err, events) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    assert_eq!(
        fake.begun(),
        [
            "0 create-network shop_default",
            "1000 run shop-cache-1",
            "1000 run shop-db-1",
            "2000 run shop-api-1",
            "3000 run shop-web-1",
        ]
    );
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(4));
    assert_eq!(events.last().unwrap(), "Container shop-web-1 Started");
    // Each operation says when it begins and when it is done.
    assert_eq!(events.len(), 10, "{events:?}");
    assert_eq!(
        events[..2],
        [
            "Network shop_default Creating",
            "Network shop_default Created"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_bounds_the_operations_at_once() {
    let services: String = (1..=10)
        .map(|i| format!("  s{i:02}:\n    image: x\n"))
        .collect();
    let p = project(&format!("services:\n{services}"));

    let fake = Fake::new();
    let e = engine(fake);
    let fake = e.driver();
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    // The network, then all ten at once.
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(2));
    assert_eq!(fake.most_at_once(), 10);

    let fake = Fake::new();
    let req = UpRequest {
        parallel: Some(3),
        ..up_req(&p)
    };
    let e = engine(fake);
    let fake = e.driver();
    assert_eq!(up(&e, req).await.0, None);
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(1 + 4));
    assert_eq!(fake.most_at_once(), 3);
    assert_eq!(fake.names().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_second_up_does_nothing_and_a_change_recreates_that_service_alone() {
    let fake = Fake::new();
    let p = project(SHOP);
    let e = engine(fake);
    let fake = e.driver();
    up(&e, up_req(&p)).await;
    let before = fake.snapshot();
    fake.log.lock().unwrap().clear();

    let (err, events) = up(&e, up_req(&p)).await;
    assert_eq!((err, events), (None, vec![]));
    assert!(fake.begun().is_empty(), "{:?}", fake.begun());

    let changed = project(&SHOP.replace("image: api", "image: api:2"));
    let (err, _) = up(&e, up_req(&changed)).await;
    assert_eq!(err, None);
    assert_eq!(
        fake.begun()
            .iter()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect::<Vec<_>>(),
        ["remove shop-api-1", "run shop-api-1"]
    );
    let after = fake.snapshot();
    for e in &before {
        let now = after.iter().find(|a| a.name == e.name).unwrap();
        assert_eq!(now.id == e.id, e.service != "api", "{}", e.name);
    }
}

#[tokio::test(start_paused = true)]
async fn depends_on_restart_restarts_a_dependent_when_its_dependency_is_recreated() {
    let file = "
services:
  api:
    image: api
    depends_on:
      db: {condition: service_started, restart: true}
  worker:
    image: worker
    depends_on: [db]
  db:
    image: db
";
    let fake = Fake::new();
    let e = engine(fake);
    let fake = e.driver();
    up(&e, up_req(&project(file))).await;
    fake.log.lock().unwrap().clear();
    let (err, events) = up(
        &e,
        up_req(&project(&file.replace("image: db", "image: db:2"))),
    )
    .await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            "Container shop-db-1 Removing",
            "Container shop-db-1 Removed",
            "Container shop-db-1 Creating",
            "Container shop-db-1 Started",
            "Container shop-api-1 Restarting",
            "Container shop-api-1 Restarted",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn orphans_are_named_then_removed_on_request() {
    let fake = Fake::new();
    let e = engine(fake);
    let fake = e.driver();
    up(&e, up_req(&project(SHOP))).await;
    let smaller = project("services:\n  db:\n    image: db\n  cache:\n    image: cache\n");
    let (err, events) = up(&e, up_req(&smaller)).await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        ["warning: found orphan containers (shop-api-1, shop-web-1) for this project: remove them with --remove-orphans"]
    );
    assert_eq!(fake.names().len(), 4);
    let req = UpRequest {
        remove_orphans: true,
        ..up_req(&smaller)
    };
    let (err, events) = up(&e, req).await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            "Container shop-api-1 Removing",
            "Container shop-web-1 Removing",
            "Container shop-api-1 Removed",
            "Container shop-web-1 Removed"
        ]
    );
    assert_eq!(fake.names(), ["shop-cache-1", "shop-db-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_named_its_wave_finishes_and_later_waves_do_not_start() {
    let mut fake = Fake::new();
    fake.fail.insert("shop-db-1".into());
    fake.took
        .insert("shop-cache-1".into(), Duration::from_secs(3));
    let e = engine(fake);
    let fake = e.driver();
    let (err, _) = up(&e, up_req(&project(SHOP))).await;
    assert_eq!(err.as_deref(), Some("service db: shop-db-1 would not run"));
    // cache, in db's wave, was let finish; api and web never began.
    assert_eq!(fake.names(), ["shop-cache-1"]);
    assert!(!fake
        .begun()
        .iter()
        .any(|l| l.contains("api") || l.contains("web")));
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(4));

    // Two failures in one wave: both named.
    let mut fake = Fake::new();
    fake.fail.insert("shop-db-1".into());
    fake.fail.insert("shop-cache-1".into());
    let e = engine(fake);
    let (err, _) = up(&e, up_req(&project(SHOP))).await;
    let err = err.unwrap();
    assert!(err.contains("service db: shop-db-1 would not run"), "{err}");
    assert!(
        err.contains("service cache: shop-cache-1 would not run"),
        "{err}"
    );

    // Bad requests name what is wrong and touch nothing.
    let fake = Fake::new();
    let req = UpRequest {
        services: vec!["nope".into()],
        ..up_req(&project(SHOP))
    };
    let e = engine(fake);
    let fake = e.driver();
    assert_eq!(
        up(&e, req).await.0.as_deref(),
        Some("no such service: `nope`")
    );
    assert!(fake.log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn dry_run_says_each_operation_and_its_cause_and_does_none() {
    let fake = Fake::new();
    let req = UpRequest {
        dry_run: true,
        ..up_req(&project(SHOP))
    };
    let e = engine(fake);
    let fake = e.driver();
    let (err, events) = up(&e, req).await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            "plan: step 1: create network shop_default (networks.default)",
            "plan: step 2: create and start container shop-cache-1 (not created yet)",
            "plan: step 2: create and start container shop-db-1 (not created yet)",
            "plan: step 3: create and start container shop-api-1 (not created yet)",
            "plan: step 4: create and start container shop-web-1 (not created yet)",
        ]
    );
    assert!(fake.log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn down_removes_dependents_first_then_networks_and_volumes() {
    let fake = Fake::new();
    let p = project(SHOP);
    let e = engine(fake);
    let fake = e.driver();
    up(&e, up_req(&p)).await;
    fake.volumes.lock().unwrap().insert("shop_data".into());
    fake.log.lock().unwrap().clear();
    let (events, mut rx) = Events::channel();
    let req = DownRequest {
        project: p,
        volumes: true,
        ..Default::default()
    };
    e.down(&req, &events).await.unwrap();
    drop(events);
    let mut last = None;
    while let Some(e) = rx.recv().await {
        last = Some(e);
    }
    assert_eq!(
        fake.begun()
            .iter()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect::<Vec<_>>(),
        [
            "remove shop-web-1",
            "remove shop-api-1",
            "remove shop-cache-1",
            "remove shop-db-1",
            "remove-network shop_default",
        ]
    );
    assert!(fake.names().is_empty());
    assert!(fake.volumes.lock().unwrap().is_empty());
    assert!(
        matches!(&last, Some(Event::Progress { object, name, .. }) if object == "Volume" && name == "shop_data"),
        "{last:?}"
    );
}

/// One-off containers (`stack run`) go with `down --remove-orphans` only,
/// as with compose.
#[tokio::test(start_paused = true)]
async fn down_removes_one_off_containers_with_remove_orphans() {
    let p = project(SHOP);
    let e = engine(Fake::instant());
    let fake = e.driver();
    up(&e, up_req(&p)).await;
    fake.one_off(&p, "web");
    let (events, _rx) = Events::channel();
    let req = DownRequest {
        project: p.clone(),
        ..Default::default()
    };
    e.down(&req, &events).await.unwrap();
    assert_eq!(fake.names(), ["shop-web-run-1"]);
    up(&e, up_req(&p)).await;
    let req = DownRequest {
        remove_orphans: true,
        ..req
    };
    e.down(&req, &events).await.unwrap();
    assert!(fake.names().is_empty(), "{:?}", fake.names());
}

/// `run -d --rm`: the engine removes such a one-off once it exits; one
/// that exited while no engine watched goes when an engine adopts it; one
/// not started yet stays.
#[tokio::test(start_paused = true)]
async fn auto_remove_containers_go_once_they_have_exited() {
    let e = engine(Fake::instant());
    let fake = e.driver();
    let one_off = |name: &str, running: bool, exit_code: Option<i32>| Container {
        o: Observed {
            id: format!("id-{name}"),
            name: name.into(),
            project: "shop".into(),
            service: "web".into(),
            number: 1,
            running,
            exit_code,
            one_off: true,
            auto_remove: true,
            ..Observed::default()
        },
        started: Instant::now(),
        script: Script {
            exits_after: Some(Duration::from_secs(2)),
            ..Script::default()
        },
    };
    fake.containers.lock().unwrap().extend([
        one_off("running", true, None),
        one_off("exited", false, Some(0)),
        one_off("created", false, None),
    ]);
    let mut rx = e.subscribe();
    e.adopt().unwrap();
    pass(1).await;
    assert_eq!(fake.names(), ["created", "running"]);
    pass(2).await;
    assert_eq!(fake.names(), ["created"]);
    let events = drain(&mut rx);
    for said in ["destroy exited", "die running", "destroy running"] {
        assert!(events.contains(&said.to_string()), "{said}: {events:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn down_rmi_removes_the_services_images_and_one_in_use_is_a_warning() {
    let p = project(
        "services:\n  web:\n    image: web\n  api:\n    build: ./api\n  db:\n    image: db\n  db2:\n    image: db\n",
    );
    assert_eq!(stack_engine::images_to_remove(&p, "local"), ["shop-api"]);
    assert_eq!(
        stack_engine::images_to_remove(&p, "all"),
        ["db", "shop-api", "web"]
    );
    let mut fake = Fake::instant();
    fake.fail.insert("remove-image web".into());
    let e = engine(fake);
    up(&e, up_req(&p)).await;
    let (events, mut rx) = Events::channel();
    let req = DownRequest {
        project: p,
        rmi: Some("all".into()),
        ..Default::default()
    };
    e.down(&req, &events).await.unwrap();
    drop(events);
    let mut said = Vec::new();
    while let Some(e) = rx.recv().await {
        match e {
            Event::Progress { object, name, .. } if object == "Image" => said.push(name),
            Event::Warning { message } => said.push(message),
            _ => {}
        }
    }
    assert_eq!(
        said,
        [
            "db",
            "shop-api",
            "image web: image is in use by a container"
        ]
    );
    assert!(e.driver().names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn images_come_first_and_a_missing_one_changes_nothing() {
    let mut fake = Fake::new();
    fake.fail.insert("image-db".into());
    let e = engine(fake);
    let fake = e.driver();
    let (err, events) = up(&e, up_req(&project(SHOP))).await;
    assert_eq!(
        err.as_deref(),
        Some("service db: image-db would not pull(missing)")
    );
    assert!(fake.begun().is_empty(), "{:?}", fake.begun());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(fake.pulls().len(), 4);

    // --pull over the file's pull_policy; each pulled image reported.
    let fake = Fake::new();
    let p = project(&SHOP.replace("image: db", "image: db\n    pull_policy: never"));
    let e = engine(fake);
    let fake = e.driver();
    let (err, events) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    assert!(fake.pulls().contains(&"pull(never) image-db".to_string()));
    assert!(fake
        .pulls()
        .contains(&"pull(missing) image-web".to_string()));
    assert!(!events.iter().any(|e| e.starts_with("Image")), "{events:?}");
    let fake = Fake::new();
    let req = UpRequest {
        pull: Some("always".into()),
        ..up_req(&p)
    };
    let e = engine(fake);
    let fake = e.driver();
    let (_, events) = up(&e, req.clone()).await;
    assert_eq!(
        fake.pulls(),
        [
            "pull(always) image-api",
            "pull(always) image-cache",
            "pull(always) image-db",
            "pull(always) image-web"
        ]
    );
    assert_eq!(events.iter().filter(|e| e.starts_with("Image ")).count(), 4);
    let fake = Fake::new();
    let quiet = UpRequest {
        quiet_pull: true,
        ..req
    };
    let e = engine(fake);
    let (_, events) = up(&e, quiet).await;
    assert!(!events.iter().any(|e| e.starts_with("Image")), "{events:?}");
}

/// Lets virtual time run on for `secs` (supervision tasks included).
async fn pass(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Every container event until now, as `ACTION NAME`.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<stack_wire::ContainerEvent>) -> Vec<String> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(format!("{} {}", e.action, e.attributes["name"]));
    }
    v
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_with_doubling_backoff_then_gives_up() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "crash".into(),
        Script {
            exits_after: Some(Duration::from_secs(1)),
            code: 3,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let mut rx = e.subscribe();
    let p = project("services:\n  crash:\n    image: x\n    restart: on-failure:3\n");
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    pass(60).await;
    // Runs 1 s each time; waits 100, 200, 400 ms; three restarts, then no more.
    assert_eq!(
        e.driver().times("start", "shop-crash-1"),
        [1100, 2300, 3700]
    );
    let events = drain(&mut rx);
    assert_eq!(events.iter().filter(|e| e.starts_with("die")).count(), 4);
    assert_eq!(
        events.iter().filter(|e| e.starts_with("restart")).count(),
        3
    );
    let r = &e.board().service("shop", "crash")[0];
    assert_eq!(
        (r.state, r.restarts),
        (stack_engine::RunState::Exited(3), 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_restart_restarts_the_dependents_that_ask_for_it() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            exits_after: Some(Duration::from_secs(5)),
            code: 1,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project(
        "
services:
  db:
    image: db
    restart: on-failure:1
  api:
    image: api
    depends_on:
      db: {condition: service_started, restart: true}
  web:
    image: web
    depends_on: [db]
",
    );
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    pass(30).await;
    // db dies at 5 s, is restarted 100 ms later; api follows it, web does not.
    assert_eq!(e.driver().times("start", "shop-db-1"), [5100]);
    assert_eq!(e.driver().times("restart", "shop-api-1"), [5100]);
    assert!(e.driver().times("restart", "shop-web-1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn always_restarts_and_a_stable_run_resets_the_backoff() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "quick".into(),
        Script {
            exits_after: Some(Duration::from_secs(1)),
            ..Script::default()
        },
    );
    fake.scripts.insert(
        "steady".into(),
        Script {
            exits_after: Some(Duration::from_secs(20)),
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project(
        "services:\n  quick:\n    image: x\n    restart: always\n  steady:\n    image: x\n    restart: always\n  once:\n    image: x\n    restart: \"no\"\n",
    );
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    pass(70).await;
    // Exit code 0 restarts too under `always`; back-off grows while runs are short.
    let quick = e.driver().times("start", "shop-quick-1");
    assert_eq!(&quick[..4], [1100, 2300, 3700, 5500]);
    // Runs of 20 s are stable: each restart waits the first back-off again.
    assert_eq!(
        e.driver().times("start", "shop-steady-1"),
        [20100, 40200, 60300]
    );
    assert!(e.driver().times("start", "shop-once-1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_container_a_user_stopped_stays_stopped() {
    let mut fake = Fake::instant();
    fake.scripts.insert("web".into(), Script::default());
    let e = engine(fake);
    let p = project("services:\n  web:\n    image: x\n    restart: always\n");
    up(&e, up_req(&p)).await;
    let id = e.board().service("shop", "web")[0].container.id.clone();
    // `stack stop`: marked, then it exits.
    e.driver().with_id(&id, |c| {
        c.o.stopped_by_user = true;
        c.o.running = false;
        c.o.exit_code = Some(143);
    });
    pass(30).await;
    assert!(e.driver().times("start", "shop-web-1").is_empty());
    assert_eq!(
        e.board().service("shop", "web")[0].state,
        stack_engine::RunState::Exited(143)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependent_waits_until_its_dependency_is_healthy() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            healthy_after: Some(Duration::from_millis(2500)),
            health: true,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let mut rx = e.subscribe();
    let p = project(
        "services:\n  api:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n",
    );
    let (err, lines) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    // Probes every second: failing at 1 s and 2 s, healthy at 3 s.
    assert_eq!(e.driver().times("run", "shop-api-1"), [3000]);
    assert!(lines.contains(&"Container shop-api-1 Waiting for db".to_string()));
    assert!(lines.contains(&"Container shop-db-1 Healthy".to_string()));
    assert!(drain(&mut rx).contains(&"health_status: healthy shop-db-1".to_string()));
    let h = e.board().service("shop", "db")[0].health.clone().unwrap();
    assert_eq!(h.log.len(), 3);
    assert!(e.board().waiting("shop").is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_dependency_fails_up_and_its_dependent_never_starts() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            health: true,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project(
        "services:\n  api:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n",
    );
    let (err, _) = up(&e, up_req(&p)).await;
    assert_eq!(
        err.as_deref(),
        Some("dependency failed to start: container shop-db-1 is unhealthy")
    );
    // Three failures in a row, a second apart.
    assert_eq!(e.driver().t0.elapsed(), Duration::from_secs(3));
    assert!(e.driver().times("run", "shop-api-1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn failures_in_the_start_period_do_not_count() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            healthy_after: Some(Duration::from_secs(8)),
            health: true,
            start_period: Duration::from_secs(10),
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project(
        "services:\n  api:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n",
    );
    // Without a start period, three failures (1, 2, 3 s) make it unhealthy;
    // in one, probes come every 5 s and failures do not count.
    let (err, _) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    assert_eq!(e.driver().times("run", "shop-api-1"), [10000]);
    let log = e.driver().log.lock().unwrap().clone();
    let probes: Vec<&String> = log.iter().filter(|l| l.contains(" probe ")).collect();
    assert_eq!(
        probes,
        ["5000 probe shop-db-1 false", "10000 probe shop-db-1 true"]
    );
}

#[tokio::test(start_paused = true)]
async fn one_shots_must_complete_successfully() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "migrate".into(),
        Script {
            exits_after: Some(Duration::from_secs(2)),
            ..Script::default()
        },
    );
    let e = engine(fake);
    let file = "services:\n  api:\n    image: x\n    depends_on:\n      migrate: {condition: service_completed_successfully}\n  migrate:\n    image: x\n";
    let req = UpRequest {
        wait: true,
        ..up_req(&project(file))
    };
    let (err, lines) = up(&e, req).await;
    assert_eq!(err, None);
    assert_eq!(e.driver().times("run", "shop-api-1"), [2000]);
    assert!(lines.contains(&"Container shop-migrate-1 Exited".to_string()));
    // --wait: api runs, migrate completed: both where they should end.
    assert_eq!(e.driver().t0.elapsed(), Duration::from_secs(2));

    let mut fake = Fake::instant();
    fake.scripts.insert(
        "migrate".into(),
        Script {
            exits_after: Some(Duration::from_secs(2)),
            code: 1,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let (err, _) = up(&e, up_req(&project(file))).await;
    assert_eq!(
        err.as_deref(),
        Some("service migrate didn't complete successfully: exit 1")
    );
    assert!(e.driver().times("run", "shop-api-1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn wait_returns_when_healthy_and_names_what_is_late() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            healthy_after: Some(Duration::from_millis(2500)),
            health: true,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project("services:\n  db:\n    image: x\n");
    let req = UpRequest {
        wait: true,
        wait_timeout: Some(2),
        ..up_req(&p)
    };
    let (err, _) = up(&e, req.clone()).await;
    assert_eq!(
        err.as_deref(),
        Some("--wait: not ready after 2s: shop-db-1 running (health: starting)")
    );
    let req = UpRequest {
        wait_timeout: Some(60),
        ..req
    };
    let t = Instant::now();
    assert_eq!(up(&e, req).await.0, None);
    // Healthy at the probe of 3 s after its start.
    assert_eq!(t.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn no_start_creates_without_waiting_and_a_later_up_starts_in_order() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            healthy_after: Some(Duration::from_millis(1500)),
            health: true,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let mut rx = e.subscribe();
    let p = project(
        "services:\n  api:\n    image: x\n    restart: always\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n    restart: always\n",
    );
    let req = UpRequest {
        no_start: true,
        ..up_req(&p)
    };
    let (err, lines) = up(&e, req.clone()).await;
    assert_eq!(err, None);
    // Created at once, in order, no condition waited for, none started.
    let f = e.driver();
    assert_eq!(f.times("create", "shop-db-1"), [0]);
    assert_eq!(f.times("create", "shop-api-1"), [0]);
    assert!(f.times("run", "shop-db-1").is_empty());
    assert_eq!(
        lines,
        [
            "Network shop_default Creating",
            "Network shop_default Created",
            "Container shop-db-1 Creating",
            "Container shop-db-1 Created",
            "Container shop-api-1 Creating",
            "Container shop-api-1 Created"
        ]
    );
    assert_eq!(drain(&mut rx), ["create shop-db-1", "create shop-api-1"]);
    // Created is not stopped-and-wanted: no policy (or engine boot) starts it.
    pass(10).await;
    e.boot().await.unwrap();
    assert!(f.times("start", "shop-db-1").is_empty());
    // A second `--no-start` has nothing to do; `up` starts them in order.
    assert_eq!(up(&e, req).await.1, Vec::<String>::new());
    let (err, lines) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    assert_eq!(f.times("start", "shop-db-1"), [10_000]);
    // db's probes: 11 s failing, 12 s healthy (1.5 s after its start).
    assert_eq!(f.times("start", "shop-api-1"), [12_000]);
    assert!(lines.contains(&"Container shop-api-1 Waiting for db".to_string()));
}

#[tokio::test(start_paused = true)]
async fn boot_starts_what_should_run_in_dependency_order() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "db".into(),
        Script {
            healthy_after: Some(Duration::from_secs(2)),
            health: true,
            ..Script::default()
        },
    );
    let p = project(
        "services:\n  web:\n    image: x\n    depends_on: [api]\n  api:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n  manual:\n    image: x\n  once:\n    image: x\n",
    );
    fake.stopped(&p, "web", "always", false);
    fake.stopped(&p, "api", "unless-stopped", false);
    fake.stopped(&p, "db", "always", false);
    fake.stopped(&p, "manual", "always", true);
    fake.stopped(&p, "once", "no", false);
    let e = engine(fake);
    e.boot().await.unwrap();
    let f = e.driver();
    assert_eq!(f.times("start", "shop-db-1"), [0]);
    // db healthy at its probe of 2 s; then api; web only waits for api to start.
    assert_eq!(f.times("start", "shop-api-1"), [2000]);
    assert_eq!(f.times("start", "shop-web-1"), [2000]);
    assert!(f.times("start", "shop-manual-1").is_empty());
    assert!(f.times("start", "shop-once-1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn scale_up_and_down_keeps_the_lowest_numbers() {
    let e = engine(Fake::instant());
    let p = project("services:\n  web:\n    image: x\n");
    let scaled = |n: u32| UpRequest {
        services: vec!["web".into()],
        scale: [("web".to_string(), n)].into(),
        ..up_req(&p)
    };
    assert_eq!(up(&e, scaled(5)).await.0, None);
    assert_eq!(
        e.driver().names(),
        [
            "shop-web-1",
            "shop-web-2",
            "shop-web-3",
            "shop-web-4",
            "shop-web-5"
        ]
    );
    let first = e.board().service("shop", "web")[0].container.id.clone();
    assert_eq!(up(&e, scaled(2)).await.0, None);
    assert_eq!(e.driver().names(), ["shop-web-1", "shop-web-2"]);
    assert_eq!(e.board().service("shop", "web").len(), 2);
    assert_eq!(e.board().service("shop", "web")[0].container.id, first);
    assert_eq!(up(&e, scaled(0)).await.0, None);
    assert!(e.driver().names().is_empty());
}

const WATCHED: &str = "
services:
  web:
    image: web
    scale: 2
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
          ignore: [node_modules]
        - path: ./web.conf
          target: /etc/web.conf
          action: sync+restart
        - path: ./hooks
          target: /hooks
          action: sync+exec
          exec:
            command: reload now
  api:
    image: api
    develop:
      watch:
        - path: ./api
          action: restart
        - path: ./api/Dockerfile
          action: rebuild
";

/// A watch over the `WATCHED` stack: its file is /nowhere/compose.yaml;
/// `reload` answers with `reloaded` (an error when None) and counts calls.
struct Watching {
    e: Arc<Engine<Fake>>,
    tx: tokio::sync::mpsc::UnboundedSender<std::path::PathBuf>,
    /// Each reload's services to build again.
    reloads: Arc<Mutex<Vec<Vec<String>>>>,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn watching(reloaded: Option<watch::WatchSpec>) -> (Watching, Vec<String>) {
    let p = project(WATCHED);
    let e = engine(Fake::instant());
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    let (spec, warnings) = watch::WatchSpec::new(&p, vec!["/nowhere/compose.yaml".into()], &[]);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reloads = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (events, mut erx) = Events::channel();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Some(ev) = erx.recv().await {
            collected.lock().unwrap().push(match ev {
                Event::Progress { name, action, .. } => format!("{name} {action}"),
                Event::Warning { message } => format!("warning: {message}"),
                other => format!("{other:?}"),
            });
        }
    });
    let (engine2, count) = (e.clone(), reloads.clone());
    tokio::spawn(async move {
        engine2
            .watch_files(
                spec,
                rx,
                |rebuild| {
                    count.lock().unwrap().push(rebuild);
                    let r = reloaded
                        .clone()
                        .ok_or_else(|| anyhow::anyhow!("compose.yaml:3: broken"));
                    async move { r }
                },
                &events,
            )
            .await
    });
    let w = Watching {
        e,
        tx,
        reloads,
        lines,
    };
    (w, warnings)
}

impl Watching {
    fn touch(&self, path: &str) {
        self.tx.send(path.into()).unwrap();
    }

    /// The watch's operations since the `up`: `T op container`.
    fn ops(&self) -> Vec<String> {
        self.e
            .driver()
            .begun()
            .into_iter()
            .filter(|l| !l.contains(" run ") && !l.contains(" create-network "))
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_is_one_sync_and_one_restart_per_container() {
    let (w, warnings) = watching(None).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    // An editor saving: 20 events 10 ms apart, on three files, one of them
    // the config file that restarts.
    for i in 0..20 {
        w.touch(
            [
                "/nowhere/src/a.js",
                "/nowhere/src/b.js",
                "/nowhere/web.conf",
            ][i % 3],
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Ignored and temporary files do nothing.
    w.touch("/nowhere/src/node_modules/x/index.js");
    w.touch("/nowhere/src/.a.js.swp");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The batch closes 20 ms after the last event (the ignored ones at 200
    // ms count as events: quiet means no events at all).
    assert_eq!(
        w.ops(),
        [
            "220 sync /app/a.js,/app/b.js shop-web-1",
            "220 sync /app/a.js,/app/b.js shop-web-2",
            "220 sync /etc/web.conf shop-web-1",
            "220 sync /etc/web.conf shop-web-2",
            "220 restart shop-web-1",
            "220 restart shop-web-2",
        ]
    );
    let lines = w.lines.lock().unwrap().clone();
    assert!(
        lines.contains(&"web Synced 2 files".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"web Restarted".to_string()), "{lines:?}");
    // A restart rule restarts only its service; a sync+exec runs after its sync.
    w.touch("/nowhere/api/main.go");
    w.touch("/nowhere/hooks/on-change");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        w.ops()[6..],
        [
            "1220 sync /hooks/on-change shop-web-1",
            "1220 sync /hooks/on-change shop-web-2",
            "1220 exec reload now shop-web-1",
            "1220 exec reload now shop-web-2",
            "1220 restart shop-api-1",
        ]
    );
    assert_eq!(w.reloads.lock().unwrap().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn changes_that_never_pause_are_cut_into_batches() {
    let (w, _) = watching(None).await;
    // A file written every 7 ms for a second (0 to 994 ms): a batch every
    // 500 ms (0-497, 504-994).
    for _ in 0..143 {
        w.touch("/nowhere/src/log.txt");
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let syncs: Vec<String> = w
        .ops()
        .into_iter()
        .filter(|l| l.ends_with("web-1"))
        .collect();
    assert_eq!(
        syncs,
        [
            "500 sync /app/log.txt shop-web-1",
            "1004 sync /app/log.txt shop-web-1",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rebuild_rule_reloads_with_its_service_to_build_again() {
    let (w, _) = watching(None).await;
    w.touch("/nowhere/api/Dockerfile");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*w.reloads.lock().unwrap(), [vec!["api".to_string()]]);
    // A change no rebuild rule covers builds nothing.
    w.touch("/nowhere/src/a.js");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.reloads.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_changed_stack_file_reloads_and_a_broken_one_keeps_the_old_rules() {
    // The reload fails: a warning, the rules stay.
    let (w, _) = watching(None).await;
    w.touch("/nowhere/compose.yaml");
    w.touch("/nowhere/src/a.js");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.reloads.lock().unwrap().len(), 1);
    let lines = w.lines.lock().unwrap().clone();
    assert!(
        lines.contains(&"warning: reload: compose.yaml:3: broken".to_string()),
        "{lines:?}"
    );
    assert_eq!(w.ops().len(), 2, "{:?}", w.ops());

    // The reload succeeds with rules that sync src elsewhere.
    let mut p = project(WATCHED);
    p.services
        .get_mut("web")
        .unwrap()
        .develop
        .as_mut()
        .unwrap()
        .watch[0]
        .target = Some("/srv".into());
    let (spec, _) = watch::WatchSpec::new(&p, vec!["/nowhere/compose.yaml".into()], &[]);
    let (w, _) = watching(Some(spec)).await;
    w.touch("/nowhere/compose.yaml");
    w.touch("/nowhere/src/a.js");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.reloads.lock().unwrap().len(), 1);
    assert_eq!(
        w.ops(),
        [
            "20 sync /srv/a.js shop-web-1",
            "20 sync /srv/a.js shop-web-2"
        ]
    );
}

/// Runs an action on the fake; the error if any, and the events' lines.
async fn act(
    e: &Arc<Engine<Fake>>,
    action: Action,
    req: ActionRequest,
) -> (Option<String>, Vec<String>) {
    let (events, mut rx) = Events::channel();
    let r = e.act(action, &req, &events).await;
    drop(events);
    let mut lines = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let Event::Progress { name, action, .. } = ev {
            lines.push(format!("{name} {action}"));
        }
    }
    (r.err().map(|e| format!("{e:#}")), lines)
}

fn action_req(p: &Project) -> ActionRequest {
    ActionRequest {
        project: p.clone(),
        ..Default::default()
    }
}

/// The actions go through the engine as `up` and `down` do: stop in
/// reverse dependency order, start in order, the services of a wave
/// together, each step said as it begins and as it ends.
#[tokio::test(start_paused = true)]
async fn actions_follow_the_dependency_order() {
    let p = project(SHOP);
    let e = engine(Fake::new());
    let fake = e.driver();
    up(&e, up_req(&p)).await;
    fake.log.lock().unwrap().clear();
    let (err, lines) = act(&e, Action::Stop, action_req(&p)).await;
    assert_eq!(err, None);
    let t0 = fake.begun()[0]
        .split_once(' ')
        .unwrap()
        .0
        .parse::<u128>()
        .unwrap();
    let at = |what: &str, name: &str| fake.times(what, name)[0] - t0;
    assert_eq!(at("stop", "shop-web-1"), 0);
    assert_eq!(at("stop", "shop-api-1"), 1000);
    assert_eq!(
        at("stop", "shop-db-1"),
        2000,
        "db and cache together, after api"
    );
    assert_eq!(at("stop", "shop-cache-1"), 2000);
    assert_eq!(&lines[..2], ["shop-web-1 Stopping", "shop-web-1 Stopped"]);
    // What is stopped is not stopped again; start goes the other way.
    let (_, again) = act(&e, Action::Stop, action_req(&p)).await;
    assert!(again.is_empty(), "{again:?}");
    fake.log.lock().unwrap().clear();
    act(&e, Action::Start, action_req(&p)).await;
    let order: Vec<String> = fake
        .begun()
        .iter()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(order.last().map(String::as_str), Some("start shop-web-1"));
    assert!(
        order[..2]
            .iter()
            .all(|o| o.contains("db") || o.contains("cache")),
        "{order:?}"
    );
}

/// `--parallel` bounds the actions too; kill carries its signal; pause
/// and unpause act only on containers in the state for them; rm leaves
/// running containers alone unless asked to stop them; an unknown service
/// is refused before anything happens.
#[tokio::test(start_paused = true)]
async fn actions_keep_the_parallel_bound_and_their_states() {
    let p = project(
        "
services:
  a: {image: x, scale: 4}
",
    );
    let e = engine(Fake::new());
    let fake = e.driver();
    up(&e, up_req(&p)).await;
    fake.log.lock().unwrap().clear();
    *fake.busy.lock().unwrap() = (0, 0);
    let req = ActionRequest {
        parallel: Some(2),
        ..action_req(&p)
    };
    assert_eq!(act(&e, Action::Pause, req.clone()).await.0, None);
    assert_eq!(fake.most_at_once(), 2);
    assert_eq!(
        act(&e, Action::Pause, req.clone()).await.1,
        Vec::<String>::new()
    );
    assert_eq!(act(&e, Action::Unpause, req.clone()).await.1.len(), 8);
    // rm leaves running containers alone without `stop`.
    assert_eq!(
        act(&e, Action::Rm, req.clone()).await.1,
        Vec::<String>::new()
    );
    assert_eq!(fake.names().len(), 4);
    let (err, _) = act(
        &e,
        Action::Kill,
        ActionRequest {
            signal: Some("HUP".into()),
            services: vec!["a".into()],
            ..req.clone()
        },
    )
    .await;
    assert_eq!(err, None);
    assert_eq!(fake.times("kill-HUP", "shop-a-1").len(), 1);
    // Killed, they are not running: rm removes them.
    let (err, lines) = act(&e, Action::Rm, req.clone()).await;
    assert_eq!(err, None);
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(fake.names().is_empty());
    let (err, _) = act(
        &e,
        Action::Stop,
        ActionRequest {
            services: vec!["nope".into()],
            ..req
        },
    )
    .await;
    assert_eq!(err.as_deref(), Some("no such service: `nope`"));
}

impl Fake {
    /// A running one-off container of `service` (`stack run`): `PROJECT-SERVICE-run-1`.
    fn one_off(&self, p: &Project, service: &str) {
        self.containers.lock().unwrap().push(Container {
            o: Observed {
                id: format!("id-{service}-run"),
                name: format!("{}-{service}-run-1", p.name),
                project: p.name.clone(),
                service: service.into(),
                number: 1,
                running: true,
                one_off: true,
                ..Observed::default()
            },
            started: Instant::now(),
            script: Script::default(),
        });
    }

    /// Container `name` writes `log` at virtual millisecond `ms`.
    fn write(&self, name: &str, ms: u64, log: &str) {
        let id = self
            .snapshot()
            .into_iter()
            .find(|c| c.name == name)
            .expect("a container of that name")
            .id;
        self.logs
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(LogRecord {
                stream: "stdout".into(),
                time: format!("2026-12-03T00:00:{:02}.{:03}000000Z", ms / 1000, ms % 1000),
                log: format!("{log}\n"),
            });
    }
}

/// The log lines an engine call sent (`replica: text`), and the exits.
fn log_lines(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Log { service, log, .. } => out.push(format!("{service}: {}", log.trim_end())),
            Event::Exited {
                service, exit_code, ..
            } => out.push(format!("{service} exited {exit_code}")),
            _ => {}
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn logs_merge_by_time_tail_each_container_and_leave_one_offs_out() {
    let e = engine(Fake::instant());
    let p = project("services:\n  web:\n    image: x\n  db:\n    image: x\n");
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    let fake = e.driver();
    fake.one_off(&p, "web");
    for (name, ms, log) in [
        ("shop-web-run-1", 15, "one-off"),
        ("shop-db-1", 10, "db one"),
        ("shop-web-1", 20, "web one"),
        ("shop-db-1", 30, "db two"),
        ("shop-db-1", 40, "db three"),
        ("shop-web-1", 50, "web two"),
    ] {
        fake.write(name, ms, log);
    }
    let all = stack_wire::LogsQuery::default();
    let (events, mut rx) = Events::channel();
    e.logs("shop", &all, &events).await.unwrap();
    assert_eq!(
        log_lines(&mut rx),
        [
            "db-1: db one",
            "web-1: web one",
            "db-1: db two",
            "db-1: db three",
            "web-1: web two"
        ]
    );
    let tail = stack_wire::LogsQuery {
        tail: Some(1),
        services: vec!["db".into()],
        ..Default::default()
    };
    e.logs("shop", &tail, &events).await.unwrap();
    assert_eq!(log_lines(&mut rx), ["db-1: db three"]);
    let since = stack_wire::LogsQuery {
        since: Some("2026-12-03T00:00:00.035000000Z".into()),
        ..Default::default()
    };
    e.logs("shop", &since, &events).await.unwrap();
    assert_eq!(log_lines(&mut rx), ["db-1: db three", "web-1: web two"]);
}

#[tokio::test(start_paused = true)]
async fn followed_logs_take_in_what_comes_and_say_when_a_run_ended() {
    let mut fake = Fake::instant();
    fake.scripts.insert(
        "job".into(),
        Script {
            exits_after: Some(Duration::from_secs(3)),
            code: 4,
            ..Script::default()
        },
    );
    let e = engine(fake);
    let p = project("services:\n  job:\n    image: x\n");
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    e.driver().write("shop-job-1", 100, "before");
    let (events, mut rx) = Events::channel();
    let follow = stack_wire::LogsQuery {
        follow: true,
        ..Default::default()
    };
    let following = {
        let e = e.clone();
        tokio::spawn(async move { e.logs("shop", &follow, &events).await })
    };
    pass(1).await;
    assert_eq!(log_lines(&mut rx), ["job-1: before"]);
    e.driver().write("shop-job-1", 1500, "during");
    pass(1).await;
    assert_eq!(log_lines(&mut rx), ["job-1: during"]);
    // It exits at 3 s: its last record, then that it exited, once.
    e.driver().write("shop-job-1", 2900, "last");
    pass(3).await;
    assert_eq!(log_lines(&mut rx), ["job-1: last", "job-1 exited 4"]);
    pass(3).await;
    assert_eq!(log_lines(&mut rx), Vec::<String>::new());
    // The client goes: the engine stops following.
    drop(rx);
    pass(1).await;
    assert!(following.is_finished());
    following.await.unwrap().unwrap();
}

/// The operations begun, without their instants.
fn ops(fake: &Fake) -> Vec<String> {
    fake.begun()
        .iter()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect()
}

/// `pre_start` as compose runs it: once for the service before its
/// replicas start (not once each), in order, not again while one runs; the
/// first that fails stops the rest and the start.
#[tokio::test(start_paused = true)]
async fn pre_start_hooks_run_once_before_the_replicas_and_a_failure_stops_the_start() {
    let e = engine(Fake::instant());
    let p = project(
        "services:\n  web:\n    image: x\n    deploy: {replicas: 2}\n    pre_start:\n      - command: [echo, a]\n      - command: [echo, b]\n",
    );
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    let done = ops(e.driver());
    assert_eq!(
        done[..3],
        [
            "create-network shop_default",
            "pre_start echo a web",
            "pre_start echo b web"
        ]
    );
    let mut runs = done[3..].to_vec();
    runs.sort();
    assert_eq!(runs, ["run shop-web-1", "run shop-web-2"]);
    // Up again, nothing changed: the replicas run, no hook.
    e.driver().log.lock().unwrap().clear();
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    assert!(
        ops(e.driver()).iter().all(|o| !o.starts_with("pre_start")),
        "{:?}",
        ops(e.driver())
    );

    let bad = project(
        "services:\n  job:\n    image: x\n    pre_start:\n      - command: [echo, first]\n      - command: [\"false\"]\n      - command: [echo, never]\n",
    );
    e.driver().log.lock().unwrap().clear();
    let (err, _) = up(&e, up_req(&bad)).await;
    let err = err.expect("up fails");
    assert!(
        err.contains("service \"job\" pre_start[1] exited with code 3: it failed"),
        "{err}"
    );
    assert_eq!(
        ops(e.driver()),
        [
            // (the project network is there already)
            "pre_start echo first job",
            "pre_start false job"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn hooks_run_after_a_start_and_before_a_stop_and_a_failed_post_start_fails_up() {
    let e = engine(Fake::instant());
    let p = project(
        "services:\n  web:\n    image: x\n    post_start:\n      - command: [echo, up]\n    pre_stop:\n      - command: [echo, down]\n      - command: [\"false\"]\n",
    );
    assert_eq!(up(&e, up_req(&p)).await.0, None);
    assert_eq!(
        ops(e.driver()),
        [
            "create-network shop_default",
            "run shop-web-1",
            "exec echo up shop-web-1"
        ]
    );
    e.driver().log.lock().unwrap().clear();
    // stop: the pre_stop hooks first; one failing is a warning, the stop goes on.
    let (events, mut rx) = Events::channel();
    let stop = ActionRequest {
        project: p.clone(),
        ..Default::default()
    };
    e.act(Action::Stop, &stop, &events).await.unwrap();
    assert_eq!(
        ops(e.driver()),
        [
            "exec echo down shop-web-1",
            "exec false shop-web-1",
            "stop shop-web-1"
        ]
    );
    drop(events);
    let mut warned = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let Event::Warning { message } = ev {
            warned.push(message);
        }
    }
    assert_eq!(
        warned,
        ["container shop-web-1: pre_stop hook `false` exited with 1: it failed"]
    );
    // start again: post_start again.
    e.driver().log.lock().unwrap().clear();
    let (events, _rx) = Events::channel();
    e.act(Action::Start, &stop, &events).await.unwrap();
    assert_eq!(
        ops(e.driver()),
        ["start shop-web-1", "exec echo up shop-web-1"]
    );
    // A post_start hook that fails fails the start, naming it.
    let bad =
        project("services:\n  job:\n    image: x\n    post_start:\n      - command: [\"false\"]\n");
    let (err, _) = up(&e, up_req(&bad)).await;
    let err = err.expect("up fails");
    assert!(
        err.contains("post_start hook `false` exited with 1"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn services_of_one_image_pull_it_once() {
    let e = engine(Fake::new());
    let fake = e.driver();
    let p = project(
        "services:\n  a:\n    image: shared\n  b:\n    image: shared\n  \
         c:\n    image: shared\n    pull_policy: always\n  d:\n    image: other\n",
    );
    let (err, _) = up(&e, up_req(&p)).await;
    assert_eq!(err, None);
    let mut pulls = fake.pulls();
    pulls.sort();
    // b shares a's pull; c asks with another policy.
    assert_eq!(
        pulls,
        [
            "pull(always) image-c",
            "pull(missing) image-a",
            "pull(missing) image-d"
        ]
    );
    assert_eq!(fake.names().len(), 4);
}
