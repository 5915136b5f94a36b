//! A service's lifecycle hooks: `post_start` commands run in a container
//! once it has started (a failing one fails the start, as with compose),
//! `pre_stop` ones before it is stopped or removed (a failing one is a
//! warning: the stop goes on). They run as `sync+exec` commands do, through
//! the driver's `exec`.

use stack_model::{Hook, Project};
use stack_wire::{Event, Events};

use crate::{watch, Driver, Engine, Observed};

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
