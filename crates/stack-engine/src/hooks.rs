//! A service's lifecycle hooks: `post_start` commands run in a container
//! once it has started (a failing one fails the start, as with compose),
//! `pre_stop` ones before it is stopped or removed (a failing one is a
//! warning: the stop goes on). They run as `sync+exec` commands do, through
//! the driver's `exec`. `pre_start` hooks run before a service starts while
//! none of its replicas runs, once for the service, in order, each in a
//! container of its own (the driver's `pre_start`); the first that fails
//! stops the rest and the service's start (compose's semantics).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stack_model::{Hook, Project};
use stack_wire::{Event, Events};

use crate::{progress, watch, Driver, Engine, Observed, Origin, Replica};

/// The `pre_start` hooks of one execution of a plan, by service: run once,
/// their outcome shared by every replica that waits to start.
#[derive(Default)]
pub(crate) struct PreStarts(Mutex<HashMap<String, Arc<Outcome>>>);

/// How a service's `pre_start` hooks ended, once they have.
type Outcome = tokio::sync::OnceCell<Result<(), String>>;

/// Which hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    PostStart,
    PreStop,
}

impl When {
    fn key(self) -> &'static str {
        match self {
            When::PostStart => "post_start",
            When::PreStop => "pre_stop",
        }
    }

    fn of(self, s: &stack_model::Service) -> &[Hook] {
        match self {
            When::PostStart => &s.post_start,
            When::PreStop => &s.pre_stop,
        }
    }
}

/// A hook as the driver runs a command in a container.
fn exec_of(h: &Hook) -> watch::Exec {
    watch::Exec {
        command: h.command.clone().map(|c| c.0).unwrap_or_default(),
        user: h.user.clone(),
        working_dir: h.working_dir.clone(),
        env: h
            .environment
            .0
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect(),
        privileged: h.privileged,
    }
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// Runs container `c`'s hooks of `when` (of its service in `project`),
    /// in order. A `post_start` hook that fails is an error; a `pre_stop`
    /// one a warning on `events`.
    pub(crate) async fn hooks(
        &self,
        project: &Project,
        c: &Observed,
        when: When,
        events: &Events,
    ) -> anyhow::Result<()> {
        let Some(s) = project.services.get(&c.service) else {
            return Ok(());
        };
        for h in when.of(s) {
            let exec = exec_of(h);
            let failed = match self.driver.exec(&c.id, &exec).await {
                Ok((0, _)) => None,
                Ok((code, output)) => Some(format!("exited with {code}: {}", output.trim())),
                Err(e) => Some(format!("{e:#}")),
            };
            let Some(why) = failed else { continue };
            let message = format!(
                "container {}: {} hook `{}` {why}",
                c.name,
                when.key(),
                exec.command.join(" ")
            );
            match when {
                When::PostStart => anyhow::bail!(message),
                When::PreStop => events.send(Event::Warning { message }),
            }
        }
        Ok(())
    }
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// Before replica `number` of `service` starts: the service's
    /// `pre_start` hooks, unless one of its replicas runs already; once for
    /// the service in this execution, whichever replica comes first.
    pub(crate) async fn pre_start(
        &self,
        origin: &Origin<'_>,
        service: &str,
        number: u32,
        events: &Events,
        pre_starts: &PreStarts,
    ) -> anyhow::Result<()> {
        let hooks = &origin.project.services[service].pre_start;
        if hooks.is_empty() {
            return Ok(());
        }
        let cell = pre_starts
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(service.to_string())
            .or_default()
            .clone();
        let outcome = cell
            .get_or_init(|| async {
                let project = &origin.project.name;
                let running = self
                    .driver
                    .observe(Some(project))
                    .map_err(|e| format!("{e:#}"))?
                    .iter()
                    .any(|c| c.service == service && c.running && !c.one_off);
                if running {
                    return Ok(());
                }
                for (i, h) in hooks.iter().enumerate() {
                    let what = format!("service \"{service}\" pre_start[{i}]");
                    if h.per_replica {
                        return Err(format!(
                            "{what}: per_replica is not yet supported; remove per_replica or set it to false"
                        ));
                    }
                    let label = format!("{service} pre_start[{i}]");
                    progress(events, "Hook", &label, "Running");
                    let name = format!("{project}-{service}-pre_start-{i}");
                    let replica = Replica {
                        origin,
                        service,
                        number,
                        name: &name,
                    };
                    match self.driver.pre_start(&replica, i).await {
                        Ok((0, _)) => progress(events, "Hook", &label, "Done"),
                        Ok((code, output)) => {
                            let output = output.trim();
                            let tail = if output.is_empty() {
                                String::new()
                            } else {
                                format!(": {output}")
                            };
                            return Err(format!("{what} exited with code {code}{tail}"));
                        }
                        Err(e) => return Err(format!("{what}: {e:#}")),
                    }
                }
                Ok(())
            })
            .await;
        outcome.clone().map_err(anyhow::Error::msg)
    }
}
