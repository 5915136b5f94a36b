//! The actions on a project's containers (`stop`, `start`, `restart`,
//! `kill`, `pause`, `unpause`, `rm`): in dependency order (reverse order to
//! stop), the containers of a wave concurrently, at most `parallel`
//! operations at once, each step reported as it begins and as it ends.
//! Containers in no state for the action are left alone.

use std::sync::Arc;

use anyhow::bail;
use stack_wire::{Action, ActionRequest, Event, Events};
use tokio::sync::Semaphore;

use crate::{failures, parallel, progress, Driver, Engine, Observed};

/// What `action` does to a container in its state (`paused`: running with
/// its processes frozen): the words said before and after, and the event
/// published; `None` when there is nothing to do.
fn step(
    action: Action,
    c: &Observed,
    paused: bool,
    stop: bool,
) -> Option<(&'static str, &'static str, &'static str)> {
    let running = c.running;
    Some(match action {
        Action::Stop if running => ("Stopping", "Stopped", "stop"),
        Action::Start if !running => ("Starting", "Started", "start"),
        Action::Restart => ("Restarting", "Restarted", "restart"),
        Action::Kill if running => ("Killing", "Killed", "kill"),
        Action::Pause if running && !paused => ("Pausing", "Paused", "pause"),
        Action::Unpause if paused => ("Unpausing", "Unpaused", "unpause"),
        Action::Rm if !running || stop => ("Removing", "Removed", "destroy"),
        _ => return None,
    })
}

impl<D: Driver + Send + 'static> Engine<D> {
    pub async fn act(
        self: &Arc<Self>,
        action: Action,
        req: &ActionRequest,
        events: &Events,
    ) -> anyhow::Result<()> {
        let project = &req.project;
        for s in &req.services {
            if !project.services.contains_key(s) {
                bail!("no such service: `{s}`");
            }
        }
        let graph = stack_graph::Graph::from_project(project);
        let forward = matches!(action, Action::Start | Action::Restart | Action::Unpause);
        let waves = if forward {
            graph.waves()
        } else {
            graph.stop_waves()
        }
        .map_err(|c| anyhow::anyhow!("dependency cycle: {c:?}"))?;
        let mine = self.driver.observe(Some(&project.name))?;
        let wanted =
            |service: &str| req.services.is_empty() || req.services.iter().any(|s| s == service);
        let slots = &Semaphore::new(parallel(req.parallel));
        if req.dry_run {
            let verb = match action {
                Action::Rm => "remove",
                other => other.name(),
            };
            let mut n = 0;
            for wave in &waves {
                let mut said = false;
                for c in mine
                    .iter()
                    .filter(|c| wave.contains(&c.service) && wanted(&c.service))
                {
                    let paused = matches!(action, Action::Pause | Action::Unpause)
                        && c.running
                        && self.driver.paused(&c.id);
                    if step(action, c, paused, req.stop).is_some() {
                        said = true;
                        events.send(Event::Plan {
                            line: format!("step {}: {verb} container {}", n + 1, c.name),
                        });
                    }
                }
                n += usize::from(said);
            }
            if action == Action::Kill && req.remove_orphans {
                for c in mine
                    .iter()
                    .filter(|c| c.running && !project.services.contains_key(&c.service))
                {
                    events.send(Event::Plan {
                        line: format!("step {}: kill container {} (orphan)", n + 1, c.name),
                    });
                }
            }
            return Ok(());
        }
        for wave in waves {
            let batch = mine
                .iter()
                .filter(|c| wave.contains(&c.service) && wanted(&c.service))
                .filter_map(|c| {
                    // Asked only where it matters: a cgroup read per container.
                    let paused = matches!(action, Action::Pause | Action::Unpause)
                        && c.running
                        && self.driver.paused(&c.id);
                    step(action, c, paused, req.stop).map(|s| (c, s))
                });
            let results =
                futures::future::join_all(batch.map(|(c, (under_way, done, event))| async move {
                    let _slot = slots.acquire().await.expect("never closed");
                    progress(events, "Container", &c.name, under_way);
                    self.carry_out(action, req, c, events)
                        .await
                        .map_err(|e| e.context(format!("container {}", c.name)))?;
                    progress(events, "Container", &c.name, done);
                    self.publish(c, event, &[]);
                    anyhow::Ok(())
                }))
                .await;
            failures(results)?;
        }
        // `start --wait`: as `up --wait` waits.
        if action == Action::Start && req.wait {
            // What it started is watched first (the board then knows it
            // runs, not the exit it had).
            self.adopt()?;
            let mut services: Vec<String> = mine
                .iter()
                .filter(|c| wanted(&c.service))
                .map(|c| c.service.clone())
                .collect();
            services.sort();
            services.dedup();
            self.settled_within(&project.name, &services, req.wait_timeout)
                .await?;
        }
        // `kill --remove-orphans`: the containers of services no longer in
        // the file get the signal too (compose kills them, not removes).
        if action == Action::Kill && req.remove_orphans {
            let orphans = mine
                .iter()
                .filter(|c| c.running && !project.services.contains_key(&c.service));
            let results = futures::future::join_all(orphans.map(|c| async move {
                progress(events, "Container", &c.name, "Killing");
                self.carry_out(action, req, c, events)
                    .await
                    .map_err(|e| e.context(format!("container {}", c.name)))?;
                progress(events, "Container", &c.name, "Killed");
                self.publish(c, "kill", &[]);
                anyhow::Ok(())
            }))
            .await;
            failures(results)?;
        }
        // Services restarted by name take along the dependents that ask for
        // it, unless `--no-deps`.
        if action == Action::Restart && !req.no_deps {
            for s in &req.services {
                let (e, p, s) = (self.clone(), project.name.clone(), s.clone());
                self.handle()
                    .spawn(async move { e.restart_dependents(&p, &s).await });
            }
        }
        Ok(())
    }

    async fn carry_out(
        &self,
        action: Action,
        req: &ActionRequest,
        c: &Observed,
        events: &Events,
    ) -> anyhow::Result<()> {
        let d = &self.driver;
        if c.running && matches!(action, Action::Stop | Action::Rm) {
            self.hooks(&req.project, c, crate::hooks::When::PreStop, events)
                .await?;
        }
        let started = |done: anyhow::Result<()>| async {
            done?;
            self.hooks(&req.project, c, crate::hooks::When::PostStart, events)
                .await
        };
        match action {
            Action::Stop => d.stop(&c.id, req.timeout).await,
            Action::Start => started(d.start(&c.id).await).await,
            Action::Restart => started(d.restart(&c.id, req.timeout).await).await,
            Action::Kill => d.kill(&c.id, req.signal.as_deref().unwrap_or("KILL")).await,
            Action::Pause => d.pause(&c.id, true).await,
            Action::Unpause => d.pause(&c.id, false).await,
            Action::Rm => d.remove(&c.id, req.timeout).await,
        }
    }
}
