//! The engine on a fake driver, on tokio's paused clock: every operation
//! takes a known (virtual) time, so order, overlap and parallelism show in
//! the instants at which operations begin and end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use stack_api::{DownRequest, Event, Events, UpRequest};
use stack_engine::{Driver, Origin};
use stack_model::Project;
use stack_plan::Existing;
use tokio::time::Instant;

/// A host in memory. Each operation sleeps `took` (per container or
/// network name, or `image-SERVICE` for pulls; default 1 s, pulls 0) and is
/// logged as `T+ms begin|end op name`.
struct Fake {
    t0: Instant,
    took: BTreeMap<String, Duration>,
    fail: BTreeSet<String>,
    log: Mutex<Vec<String>>,
    containers: Mutex<Vec<Existing>>,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<BTreeSet<String>>,
    busy: Mutex<(usize, usize)>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            t0: Instant::now(),
            took: BTreeMap::new(),
            fail: BTreeSet::new(),
            log: Mutex::new(Vec::new()),
            containers: Mutex::new(Vec::new()),
            networks: Mutex::new(Vec::new()),
            volumes: Mutex::new(BTreeSet::new()),
            busy: Mutex::new((0, 0)),
        }
    }

    async fn op(&self, what: &str, name: &str) -> anyhow::Result<()> {
        let ms = |f: &Fake| f.t0.elapsed().as_millis();
        self.log
            .lock()
            .unwrap()
            .push(format!("{} begin {what} {name}", ms(self)));
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
                Duration::from_secs(1)
            });
        tokio::time::sleep(took).await;
        self.busy.lock().unwrap().0 -= 1;
        self.log
            .lock()
            .unwrap()
            .push(format!("{} end {what} {name}", ms(self)));
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
        let mut n: Vec<String> = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name.clone())
            .collect();
        n.sort();
        n
    }

    fn most_at_once(&self) -> usize {
        self.busy.lock().unwrap().1
    }

    fn with_id<T>(&self, id: &str, f: impl FnOnce(&mut Vec<Existing>, usize) -> T) -> T {
        let mut c = self.containers.lock().unwrap();
        let i = c.iter().position(|e| e.id == id).expect("known id");
        f(&mut c, i)
    }
}

impl Driver for Fake {
    fn containers(&self, _project: &str) -> anyhow::Result<Vec<Existing>> {
        Ok(self.containers.lock().unwrap().clone())
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

    async fn run(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        name: &str,
    ) -> anyhow::Result<()> {
        self.op("run", name).await?;
        let hash = stack_loader::hash_service(&origin.project.services[service]);
        self.containers.lock().unwrap().push(Existing {
            id: format!("id-{name}-{}", self.t0.elapsed().as_millis()),
            name: name.into(),
            service: service.into(),
            number,
            hash,
            running: true,
        });
        Ok(())
    }

    async fn start(&self, id: &str) -> anyhow::Result<()> {
        let name = self.with_id(id, |c, i| c[i].name.clone());
        self.op("start", &name).await?;
        self.with_id(id, |c, i| c[i].running = true);
        Ok(())
    }

    async fn restart(&self, id: &str, _timeout: Option<u64>) -> anyhow::Result<()> {
        let name = self.with_id(id, |c, i| c[i].name.clone());
        self.op("restart", &name).await
    }

    async fn remove(&self, id: &str, _timeout: Option<u64>) -> anyhow::Result<()> {
        let name = self.with_id(id, |c, i| c[i].name.clone());
        self.op("remove", &name).await?;
        self.with_id(id, |c, i| c.remove(i));
        Ok(())
    }

    fn remove_volume(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.volumes.lock().unwrap().remove(name))
    }

    fn forget_project(&self, _project: &str) -> anyhow::Result<()> {
        Ok(())
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
async fn up(fake: &Fake, req: UpRequest) -> (Option<String>, Vec<String>) {
    let (events, mut rx) = Events::channel();
    let r = stack_engine::up(fake, &req, &events).await;
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
    let (err, events) = up(&fake, up_req(&p)).await;
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
    assert_eq!(events.len(), 5, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn parallel_bounds_the_operations_at_once() {
    let services: String = (1..=10)
        .map(|i| format!("  s{i:02}:\n    image: x\n"))
        .collect();
    let p = project(&format!("services:\n{services}"));

    let fake = Fake::new();
    assert_eq!(up(&fake, up_req(&p)).await.0, None);
    // The network, then all ten at once.
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(2));
    assert_eq!(fake.most_at_once(), 10);

    let fake = Fake::new();
    let req = UpRequest {
        parallel: Some(3),
        ..up_req(&p)
    };
    assert_eq!(up(&fake, req).await.0, None);
    assert_eq!(fake.t0.elapsed(), Duration::from_secs(1 + 4));
    assert_eq!(fake.most_at_once(), 3);
    assert_eq!(fake.names().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_second_up_does_nothing_and_a_change_recreates_that_service_alone() {
    let fake = Fake::new();
    let p = project(SHOP);
    up(&fake, up_req(&p)).await;
    let before = fake.containers.lock().unwrap().clone();
    fake.log.lock().unwrap().clear();

    let (err, events) = up(&fake, up_req(&p)).await;
    assert_eq!((err, events), (None, vec![]));
    assert!(fake.begun().is_empty(), "{:?}", fake.begun());

    let changed = project(&SHOP.replace("image: api", "image: api:2"));
    let (err, _) = up(&fake, up_req(&changed)).await;
    assert_eq!(err, None);
    assert_eq!(
        fake.begun()
            .iter()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect::<Vec<_>>(),
        ["remove shop-api-1", "run shop-api-1"]
    );
    let after = fake.containers.lock().unwrap().clone();
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
    up(&fake, up_req(&project(file))).await;
    fake.log.lock().unwrap().clear();
    let (err, events) = up(
        &fake,
        up_req(&project(&file.replace("image: db", "image: db:2"))),
    )
    .await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            "Container shop-db-1 Removed",
            "Container shop-db-1 Started",
            "Container shop-api-1 Restarted",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn orphans_are_named_then_removed_on_request() {
    let fake = Fake::new();
    up(&fake, up_req(&project(SHOP))).await;
    let smaller = project("services:\n  db:\n    image: db\n  cache:\n    image: cache\n");
    let (err, events) = up(&fake, up_req(&smaller)).await;
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
    let (err, events) = up(&fake, req).await;
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
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
    let (err, _) = up(&fake, up_req(&project(SHOP))).await;
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
    let (err, _) = up(&fake, up_req(&project(SHOP))).await;
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
    assert_eq!(
        up(&fake, req).await.0.as_deref(),
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
    let (err, events) = up(&fake, req).await;
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
    up(&fake, up_req(&p)).await;
    fake.volumes.lock().unwrap().insert("shop_data".into());
    fake.log.lock().unwrap().clear();
    let (events, mut rx) = Events::channel();
    let req = DownRequest {
        project: p,
        volumes: true,
        ..Default::default()
    };
    stack_engine::down(&fake, &req, &events).await.unwrap();
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

#[tokio::test(start_paused = true)]
async fn images_come_first_and_a_missing_one_changes_nothing() {
    let mut fake = Fake::new();
    fake.fail.insert("image-db".into());
    let (err, events) = up(&fake, up_req(&project(SHOP))).await;
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
    let (err, events) = up(&fake, up_req(&p)).await;
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
    let (_, events) = up(&fake, req.clone()).await;
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
    let (_, events) = up(&fake, quiet).await;
    assert!(!events.iter().any(|e| e.starts_with("Image")), "{events:?}");
}
