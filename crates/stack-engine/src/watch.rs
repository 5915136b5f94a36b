//! Watch: a project's `develop.watch` rules and its own files (stack files,
//! `.env`), and what a batch of changed paths makes the engine do. Where the
//! events come from (inotify, through `notify`) is the binary's business:
//! here they are paths on a channel, a burst of them becomes one batch
//! (quiet for [`QUIET`], or [`MAX_BATCH`] after the first), and the batch
//! becomes syncs, restarts, execs and reloads: pure, then carried out
//! through the [`Driver`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stack_model::Project;
use stack_wire::{Event, Events};

use crate::{progress, Driver, Engine};

/// A batch ends when no event came for this long...
pub const QUIET: Duration = Duration::from_millis(20);
/// ... or this long after its first event, whatever keeps coming.
pub const MAX_BATCH: Duration = Duration::from_millis(500);

/// What a rule does when a path under it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Sync,
    SyncRestart,
    SyncExec,
    Restart,
    Rebuild,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "sync" => Action::Sync,
            "sync+restart" => Action::SyncRestart,
            "sync+exec" => Action::SyncExec,
            "restart" => Action::Restart,
            "rebuild" => Action::Rebuild,
            _ => return None,
        })
    }

    fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

/// A command `sync+exec` runs in each of the service's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub command: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    /// Every capability, no seccomp filter (as `exec --privileged`).
    pub privileged: bool,
}

/// One `develop.watch` rule of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub service: String,
    /// Absolute, on the host.
    pub path: PathBuf,
    pub action: Action,
    /// Where `path` is in the container.
    pub target: Option<String>,
    pub ignore: Vec<Pattern>,
    pub include: Vec<Pattern>,
    pub initial_sync: bool,
    pub exec: Option<Exec>,
}

/// Names editors and tools write beside the files they save (swap files,
/// backups, lock files), and version control's own directory: never synced.
const EPHEMERAL: &[&str] = &[
    ".git",
    "*.swp",
    "*.swx",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "4913",
    ".DS_Store",
];

impl Trigger {
    /// Whether a change to `host` (under the rule's path) is the rule's:
    /// not an editor's temporary file, not ignored, and included when the
    /// rule names what it includes. Patterns are relative to the rule's
    /// path, as in a `.dockerignore`; the last that matches decides, `!`
    /// undoes an ignore.
    pub fn keeps(&self, host: &Path) -> bool {
        let Ok(rel) = host.strip_prefix(&self.path) else {
            return false;
        };
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        if parts.iter().any(|p| EPHEMERAL.iter().any(|e| glob(e, p))) {
            return false;
        }
        let mut ignored = false;
        for p in &self.ignore {
            if p.matches(&parts) {
                ignored = !p.negated;
            }
        }
        !ignored && (self.include.is_empty() || self.include.iter().any(|p| p.matches(&parts)))
    }

    /// Where `host` (the rule's path or below it) goes in the container.
    pub fn target_of(&self, host: &Path) -> Option<String> {
        let rel = host.strip_prefix(&self.path).ok()?;
        let target = self.target.as_deref()?.trim_end_matches('/');
        Some(if rel.as_os_str().is_empty() {
            target.to_string()
        } else {
            format!("{target}/{}", rel.display())
        })
    }
}

/// A `.dockerignore`-style pattern: `/`-separated parts, each with `*`,
/// `?` and `[...]`; a part `**` stands for any number of directories. It
/// matches a path or any directory above it (ignoring `node_modules`
/// ignores everything in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub negated: bool,
    parts: Vec<String>,
}

impl Pattern {
    pub fn parse(s: &str) -> Pattern {
        let (negated, s) = match s.trim().strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s.trim()),
        };
        let parts = s
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_string)
            .collect();
        Pattern { negated, parts }
    }

    fn matches(&self, path: &[&str]) -> bool {
        (1..=path.len()).any(|n| parts_match(&self.parts, &path[..n]))
    }
}

fn parts_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=path.len()).any(|skip| parts_match(rest, &path[skip..]))
        }
        Some((p, rest)) => path
            .split_first()
            .is_some_and(|(first, others)| glob(p, first) && parts_match(rest, others)),
    }
}

/// Shell-style matching of one path part: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some(('[', rest)) => {
                let Some(end) = rest.iter().position(|c| *c == ']') else {
                    return s.first() == Some(&'[') && go(rest, &s[1..]);
                };
                let Some(c) = s.first() else { return false };
                let (negate, class) = match rest[..end].split_first() {
                    Some(('!' | '^', class)) => (true, class),
                    _ => (false, &rest[..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&rest[end + 1..], &s[1..])
            }
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    go(&p, &s)
}

/// What a project's watch looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchSpec {
    pub project: String,
    /// The stack files and env files: a change reloads the project.
    pub files: Vec<PathBuf>,
    pub triggers: Vec<Trigger>,
}

impl WatchSpec {
    /// The rules of `services` (all when empty), with warnings for what
    /// cannot be done.
    pub fn new(
        project: &Project,
        files: Vec<PathBuf>,
        services: &[String],
    ) -> (WatchSpec, Vec<String>) {
        let mut warnings = Vec::new();
        let mut triggers = Vec::new();
        for (name, s) in &project.services {
            if !services.is_empty() && !services.contains(name) {
                continue;
            }
            for rule in s.develop.iter().flat_map(|d| &d.watch) {
                let Some(action) = Action::parse(&rule.action) else {
                    warnings.push(format!(
                        "service {name}: unknown watch action `{}`",
                        rule.action
                    ));
                    continue;
                };
                let exec = rule.exec.as_ref().and_then(|h| {
                    Some(Exec {
                        command: h.command.as_ref()?.0.clone(),
                        user: h.user.clone(),
                        working_dir: h.working_dir.clone(),
                        env: h
                            .environment
                            .0
                            .iter()
                            .filter_map(|(k, v)| Some(format!("{k}={}", v.as_ref()?)))
                            .collect(),
                        privileged: h.privileged,
                    })
                });
                if action == Action::SyncExec && exec.is_none() {
                    warnings.push(format!(
                        "service {name}: `sync+exec` without an `exec.command`: only syncs"
                    ));
                }
                triggers.push(Trigger {
                    service: name.clone(),
                    path: PathBuf::from(&rule.path),
                    action,
                    target: rule.target.clone(),
                    ignore: rule.ignore.iter().map(|p| Pattern::parse(p)).collect(),
                    include: rule.include.iter().map(|p| Pattern::parse(p)).collect(),
                    initial_sync: rule.initial_sync,
                    exec,
                });
            }
        }
        let spec = WatchSpec {
            project: project.name.clone(),
            files,
            triggers,
        };
        (spec, warnings)
    }
}

/// What one batch of changes asks for.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// A stack file or env file changed.
    pub reload: bool,
    /// Paths to sync, per rule (index into the spec's triggers).
    pub syncs: BTreeMap<usize, BTreeSet<PathBuf>>,
    /// Rules whose commands run after their syncs.
    pub execs: BTreeSet<usize>,
    /// Services to restart (once each, after their syncs).
    pub restarts: BTreeSet<String>,
    /// Services whose image to build again, then recreate (`rebuild`).
    pub rebuilds: BTreeSet<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        *self == Batch::default()
    }
}

/// What `changed` asks of `spec`: every rule a path falls under acts once.
pub fn batch(spec: &WatchSpec, changed: &BTreeSet<PathBuf>) -> Batch {
    let mut b = Batch {
        reload: changed.iter().any(|p| spec.files.contains(p)),
        ..Batch::default()
    };
    for (i, t) in spec.triggers.iter().enumerate() {
        let mine: BTreeSet<PathBuf> = changed.iter().filter(|p| t.keeps(p)).cloned().collect();
        if mine.is_empty() {
            continue;
        }
        match t.action {
            Action::Restart | Action::SyncRestart => {
                b.restarts.insert(t.service.clone());
            }
            Action::SyncExec if t.exec.is_some() => {
                b.execs.insert(i);
            }
            Action::Rebuild => {
                b.rebuilds.insert(t.service.clone());
            }
            _ => {}
        }
        if t.action.syncs() {
            b.syncs.insert(i, mine);
        }
    }
    b
}

/// The rules' `initial_sync`: their whole path, once.
fn initial(spec: &WatchSpec) -> Batch {
    Batch {
        syncs: spec
            .triggers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.initial_sync && t.action.syncs())
            .map(|(i, t)| (i, BTreeSet::from([t.path.clone()])))
            .collect(),
        ..Batch::default()
    }
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// Watches until `changes` closes: each batch of changed paths is
    /// synced into the services' running containers (and restarts or runs
    /// commands as the rules say); a changed stack file or `.env` calls
    /// `reload`, which brings the project up to the files again and gives
    /// the new rules (on error the old ones stay, and so does the stack); a
    /// `rebuild` rule's change calls it too, with the services whose images
    /// to build again first (and whose containers to recreate).
    pub async fn watch_files<F, Fut>(
        self: &Arc<Self>,
        mut spec: WatchSpec,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
        mut reload: F,
        events: &Events,
    ) where
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = anyhow::Result<WatchSpec>>,
    {
        self.apply(&spec, &initial(&spec), events).await;
        while let Some(first) = changes.recv().await {
            let mut changed = BTreeSet::from([first]);
            let deadline = tokio::time::Instant::now() + MAX_BATCH;
            loop {
                tokio::select! {
                    p = changes.recv() => match p {
                        Some(p) => { changed.insert(p); }
                        None => break,
                    },
                    _ = tokio::time::sleep(QUIET) => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            let mut b = batch(&spec, &changed);
            if b.reload || !b.rebuilds.is_empty() {
                let rebuild = std::mem::take(&mut b.rebuilds).into_iter().collect();
                match reload(rebuild).await {
                    Ok(new) => {
                        spec = new;
                        // Containers it recreated start from their image.
                        self.apply(&spec, &initial(&spec), events).await;
                        b = batch(&spec, &changed);
                    }
                    Err(e) => events.send(Event::Warning {
                        message: format!("reload: {e:#}"),
                    }),
                }
            }
            self.apply(&spec, &b, events).await;
        }
    }

    /// Syncs, then commands, then restarts; a failure is reported and the
    /// rest still done.
    async fn apply(self: &Arc<Self>, spec: &WatchSpec, b: &Batch, events: &Events) {
        if b.is_empty() {
            return;
        }
        // Who runs now: looked at once per batch.
        let containers = self.driver.observe(Some(&spec.project)).unwrap_or_default();
        let running = |service: &str| -> Vec<String> {
            containers
                .iter()
                .filter(|c| c.service == service && c.running && !c.one_off)
                .map(|c| c.id.clone())
                .collect()
        };
        let warn = |message: String| events.send(Event::Warning { message });
        for (i, paths) in &b.syncs {
            let t = &spec.triggers[*i];
            let paths: Vec<PathBuf> = paths.iter().cloned().collect();
            for id in running(&t.service) {
                match self.driver.sync(&id, t, &paths).await {
                    Ok(n) => progress(events, "Service", &t.service, &format!("Synced {n} files")),
                    Err(e) => warn(format!("service {}: sync: {e:#}", t.service)),
                }
            }
        }
        for i in &b.execs {
            let t = &spec.triggers[*i];
            let Some(exec) = &t.exec else { continue };
            for id in running(&t.service) {
                match self.driver.exec(&id, exec).await {
                    Ok((0, _)) => progress(
                        events,
                        "Service",
                        &t.service,
                        &format!("Ran `{}`", exec.command.join(" ")),
                    ),
                    Ok((code, out)) => warn(format!(
                        "service {}: `{}` exited with {code}: {}",
                        t.service,
                        exec.command.join(" "),
                        out.trim()
                    )),
                    Err(e) => warn(format!("service {}: exec: {e:#}", t.service)),
                }
            }
        }
        for service in &b.restarts {
            for id in running(service) {
                match self.driver.restart(&id, None).await {
                    Ok(()) => {
                        self.started(&spec.project, &id);
                        progress(events, "Service", service, "Restarted");
                    }
                    Err(e) => warn(format!("service {service}: restart: {e:#}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(ignore: &[&str], include: &[&str]) -> Trigger {
        Trigger {
            service: "web".into(),
            path: "/src".into(),
            action: Action::Sync,
            target: Some("/app/".into()),
            ignore: ignore.iter().map(|p| Pattern::parse(p)).collect(),
            include: include.iter().map(|p| Pattern::parse(p)).collect(),
            initial_sync: false,
            exec: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*.js", "main.js"));
        assert!(!glob("*.js", "main.ts"));
        assert!(glob("?.c", "a.c"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
        assert!(glob("*", ""));
        assert!(glob(".#*", ".#lock"));
    }

    #[test]
    fn ignore_and_include_as_a_dockerignore() {
        let t = trigger(&["node_modules", "**/*.log", "!keep.log", "build/*.o"], &[]);
        assert!(t.keeps(Path::new("/src/index.js")));
        assert!(!t.keeps(Path::new("/src/node_modules/x/y.js")));
        assert!(!t.keeps(Path::new("/src/a/b/debug.log")));
        assert!(t.keeps(Path::new("/src/keep.log")));
        assert!(!t.keeps(Path::new("/src/build/x.o")));
        assert!(t.keeps(Path::new("/src/build/x.c")));
        assert!(!t.keeps(Path::new("/elsewhere/index.js")));
        assert!(!t.keeps(Path::new("/src/.index.js.swp")));
        assert!(!t.keeps(Path::new("/src/.git/HEAD")));
        assert!(!t.keeps(Path::new("/src/index.js~")));
        let t = trigger(&[], &["*.js", "static/**"]);
        assert!(t.keeps(Path::new("/src/index.js")));
        assert!(t.keeps(Path::new("/src/static/a/b.css")));
        assert!(!t.keeps(Path::new("/src/README.md")));
    }

    #[test]
    fn targets() {
        let t = trigger(&[], &[]);
        assert_eq!(t.target_of(Path::new("/src")).unwrap(), "/app");
        assert_eq!(
            t.target_of(Path::new("/src/a/b.js")).unwrap(),
            "/app/a/b.js"
        );
        assert_eq!(t.target_of(Path::new("/other")), None);
    }

    #[test]
    fn a_batch_acts_once_per_rule_and_service() {
        let mut restart = trigger(&[], &["*.conf"]);
        restart.action = Action::Restart;
        let mut exec = trigger(&[], &[]);
        exec.action = Action::SyncExec;
        exec.exec = Some(Exec {
            command: vec!["reload".into()],
            user: None,
            working_dir: None,
            env: vec![],
            privileged: false,
        });
        let spec = WatchSpec {
            project: "p".into(),
            files: vec!["/p/compose.yaml".into()],
            triggers: vec![trigger(&[], &[]), restart, exec],
        };
        let changed: BTreeSet<PathBuf> = ["/src/a.js", "/src/b.js", "/src/x.conf", "/src/x.conf"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let b = batch(&spec, &changed);
        assert!(!b.reload);
        assert_eq!(b.syncs[&0].len(), 3);
        assert_eq!(b.syncs[&2].len(), 3);
        assert!(!b.syncs.contains_key(&1));
        assert_eq!(b.restarts, BTreeSet::from(["web".to_string()]));
        assert_eq!(b.execs, BTreeSet::from([2]));
        let b = batch(&spec, &BTreeSet::from([PathBuf::from("/p/compose.yaml")]));
        assert!(b.reload && b.syncs.is_empty());
        assert!(batch(&spec, &BTreeSet::from([PathBuf::from("/src/.a.swp")])).is_empty());
    }
}
