//! What travels over the socket. Field names are the JSON names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /v1/version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The engine's `stack` version.
    pub version: String,
    pub api_version: u32,
    /// The engine's process id.
    pub pid: u32,
    /// The engine's store root.
    pub root: String,
    /// Which build of the binary the engine runs (device, inode and
    /// modification time of the file it started from): a client built
    /// differently restarts it.
    #[serde(default)]
    pub binary: String,
}

/// The body of `POST /v1/projects/{project}/up`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpRequest {
    /// The loaded project (the client reads the files, the engine acts).
    #[serde(deserialize_with = "project_from_json")]
    pub project: stack_model::Project,
    /// Where the project was loaded from, recorded as labels.
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub config_files: Vec<String>,
    /// Only these services (and their dependencies unless `no_deps`).
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub no_deps: bool,
    /// Replicas per service, over the file's.
    #[serde(default)]
    pub scale: BTreeMap<String, u32>,
    #[serde(default)]
    pub force_recreate: bool,
    /// The services brought up as dependencies of the named ones are
    /// recreated too (`--always-recreate-deps`).
    #[serde(default)]
    pub always_recreate_deps: bool,
    /// New containers are named as compose v1 named them
    /// (`project_service_1`, `--compatibility`).
    #[serde(default)]
    pub compatibility: bool,
    /// Services whose image was just built anew (`up --build`): their
    /// containers are recreated, as compose does for a new image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuilt: Vec<String>,
    #[serde(default)]
    pub no_recreate: bool,
    #[serde(default)]
    pub remove_orphans: bool,
    /// Create the containers, start none (`up --no-start`, `create`).
    #[serde(default)]
    pub no_start: bool,
    /// Seconds to wait for the stops of the containers it replaces or
    /// restarts, over the services' own.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Operations at once (`--parallel`); none: the engine's default.
    #[serde(default)]
    pub parallel: Option<usize>,
    /// `always`, `missing` or `never`, over each service's `pull_policy`.
    #[serde(default)]
    pub pull: Option<String>,
    /// No event for each image pulled.
    #[serde(default)]
    pub quiet_pull: bool,
    /// Answer only when every service is running (healthy, if it has a
    /// health check) or, for one-shots, completed successfully.
    #[serde(default)]
    pub wait: bool,
    /// Seconds `wait` may take; none: no limit.
    #[serde(default)]
    pub wait_timeout: Option<u64>,
}

/// The body of `POST /v1/projects/{project}/down`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownRequest {
    #[serde(deserialize_with = "project_from_json")]
    pub project: stack_model::Project,
    #[serde(default)]
    pub remove_orphans: bool,
    /// Also the named volumes the project declares (not external ones).
    #[serde(default)]
    pub volumes: bool,
    /// Also the services' images: `all`, or `local` (those of services
    /// with no `image:`, named after the project).
    #[serde(default)]
    pub rmi: Option<String>,
    /// Seconds to wait for a stop before SIGKILL, over the services' own.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Operations at once (`--parallel`); none: the engine's default.
    #[serde(default)]
    pub parallel: Option<usize>,
    /// Only say what it would do (`Event::Plan` lines).
    #[serde(default)]
    pub dry_run: bool,
}

/// What `POST /v1/projects/{project}/{action}` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Stop,
    Start,
    Restart,
    Kill,
    Pause,
    Unpause,
    Rm,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Stop,
        Action::Start,
        Action::Restart,
        Action::Kill,
        Action::Pause,
        Action::Unpause,
        Action::Rm,
    ];

    /// The path segment: `stop`, `start`, ….
    pub fn name(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Rm => "rm",
        }
    }
}

/// The body of `POST /v1/projects/{project}/{action}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    #[serde(deserialize_with = "project_from_json")]
    pub project: stack_model::Project,
    /// Only these services' containers; all when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// stop, restart: seconds before SIGKILL, over the service's own.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// kill: the signal (default KILL).
    #[serde(default)]
    pub signal: Option<String>,
    /// rm: stop running containers first (otherwise they are left alone).
    #[serde(default)]
    pub stop: bool,
    /// Operations at once (`--parallel`; the engine's default when absent).
    #[serde(default)]
    pub parallel: Option<usize>,
    /// start: then wait until the containers are running and healthy (or,
    /// for one-shots, done), for at most `wait_timeout` seconds.
    #[serde(default)]
    pub wait: bool,
    #[serde(default)]
    pub wait_timeout: Option<u64>,
    /// restart: not the dependents that ask to be restarted with it.
    #[serde(default)]
    pub no_deps: bool,
    /// kill: the containers of services the project no longer has too.
    #[serde(default)]
    pub remove_orphans: bool,
    /// Only say what it would do (`Event::Plan` lines).
    #[serde(default)]
    pub dry_run: bool,
}

impl ActionRequest {
    pub fn with_stop(mut self, stop: bool) -> ActionRequest {
        self.stop = stop;
        self
    }
}

/// The query of `GET /v1/projects/{project}/events`: Unix nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventsQuery {
    /// Kept events from then on first (the engine keeps its last thousand).
    pub since: Option<i64>,
    /// The end: the stream stops then (at once, for a time past).
    pub until: Option<i64>,
}

impl EventsQuery {
    pub fn parse(query: Option<&str>) -> Result<EventsQuery, ApiError> {
        let time = |key: &str| -> Result<Option<i64>, ApiError> {
            match crate::query::query_values(query, key).last() {
                None => Ok(None),
                Some(t) => t.parse().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("{key}: `{t}` is not a Unix time in nanoseconds"))
                }),
            }
        };
        Ok(EventsQuery {
            since: time("since")?,
            until: time("until")?,
        })
    }

    /// The query string, for the client.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.since {
            parts.push(format!("since={s}"));
        }
        if let Some(u) = self.until {
            parts.push(format!("until={u}"));
        }
        parts.join("&")
    }
}

/// The query of `GET /v1/projects/{project}/logs`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogsQuery {
    /// Only these services; all when empty (`?service=a&service=b`).
    pub services: Vec<String>,
    /// Keep streaming new records (`?follow=1`).
    pub follow: bool,
    /// The last N records of each container (`?tail=N`; all by default).
    pub tail: Option<usize>,
    /// Only records at or after this time (`?since=`, RFC 3339 UTC with
    /// nanoseconds, as the logs are written).
    pub since: Option<String>,
    /// Only records before this time (`?until=`, the same form).
    pub until: Option<String>,
}

impl LogsQuery {
    pub fn parse(query: Option<&str>) -> Result<LogsQuery, ApiError> {
        let tail = match crate::query::query_values(query, "tail").last() {
            None | Some("all") => None,
            Some(n) => Some(n.parse().map_err(|_| {
                ApiError::bad_request(format!("tail: `{n}` is not a number of lines or `all`"))
            })?),
        };
        let time = |key: &str| -> Result<Option<String>, ApiError> {
            match crate::query::query_values(query, key).last() {
                None => Ok(None),
                Some(t) if is_log_time(t) => Ok(Some(t.to_string())),
                Some(t) => Err(ApiError::bad_request(format!(
                    "{key}: `{t}` is not an RFC 3339 UTC time with nanoseconds (2026-01-02T03:04:05.000000000Z)"
                ))),
            }
        };
        Ok(LogsQuery {
            services: crate::query::query_values(query, "service")
                .map(str::to_string)
                .collect(),
            follow: crate::query::query_flag(query, "follow"),
            tail,
            since: time("since")?,
            until: time("until")?,
        })
    }

    /// The query string, for the client.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .services
            .iter()
            .map(|s| format!("service={s}"))
            .collect();
        if self.follow {
            parts.push("follow=1".into());
        }
        if let Some(n) = self.tail {
            parts.push(format!("tail={n}"));
        }
        for (key, t) in [("since", &self.since), ("until", &self.until)] {
            if let Some(t) = t {
                parts.push(format!("{key}={t}"));
            }
        }
        parts.join("&")
    }

    /// Whether a record written at `time` is asked for.
    pub fn wants(&self, time: &str) -> bool {
        self.since.as_deref().is_none_or(|s| time >= s)
            && self.until.as_deref().is_none_or(|u| time < u)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`: the one form log times are compared in.
fn is_log_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 30
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            29 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// One line of a streamed answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Something changed: `Container shop-web-1 Started`.
    Progress {
        object: String,
        name: String,
        action: String,
    },
    Warning {
        message: String,
    },
    /// A planned operation (dry run).
    Plan {
        line: String,
    },
    /// A record of a container's output.
    Log {
        container: String,
        service: String,
        /// `stdout` or `stderr`.
        stream: String,
        /// RFC 3339 with nanoseconds.
        time: String,
        log: String,
    },
    /// A followed container's output has ended: it exited, and every
    /// record it wrote before was sent (`job-1 exited with code 3`).
    Exited {
        container: String,
        service: String,
        exit_code: i32,
    },
    /// Something happened to a container (`stack events`).
    Container(ContainerEvent),
    /// Nothing to say for a while: lets the engine notice a client gone.
    Heartbeat,
    /// The operation failed; the last line.
    Error {
        message: String,
    },
    /// The operation succeeded; the last line.
    Done,
}

/// How the client loaded its project, so that the engine can load it again
/// when a file changes (`stack watch`): the loader's options, the client's
/// environment included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    pub working_dir: String,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub project_directory: Option<String>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub env_files: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// The client's environment variables.
    #[serde(default)]
    pub shell: Vec<(String, String)>,
    #[serde(default)]
    pub home: Option<String>,
    /// Networks, volumes, secrets and configs no service uses are kept.
    #[serde(default)]
    pub all_resources: bool,
}

/// `stack watch`, `stack up --watch`: watch the project's files; sync,
/// restart or run what its `develop.watch` rules say, and bring it up again
/// as `up` did when its stack files or env files change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The `up` a change of the stack files repeats (with the project as
    /// the files say then); its project is the one to watch.
    pub up: UpRequest,
    pub load: LoadSpec,
    /// Every file the project was loaded from (stack files, included files,
    /// env files): a change reloads it.
    #[serde(default)]
    pub files: Vec<String>,
    /// The services whose rules apply; none: all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Answer at once and keep watching until `unwatch` or `down`
    /// (otherwise: until the client goes away).
    #[serde(default)]
    pub detach: bool,
    /// A rebuild removes the image it replaced once nothing uses it and it
    /// has no name left (`--prune`).
    #[serde(default)]
    pub prune: bool,
}

/// What happened to a container, as `docker events` tells it: `create`,
/// `start`, `die` (attributes `exitCode`, `oomKilled`), `health_status:
/// healthy`, `restart`, `destroy`, …
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerEvent {
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
    pub project: String,
    pub service: String,
    pub id: String,
    pub action: String,
    /// `name`, `image`, and the action's own.
    pub attributes: BTreeMap<String, String>,
}

/// `GET /v1/projects/{project}/containers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub image: String,
    pub command: String,
    /// `running`, `exited`, `paused`, `created`.
    pub state: String,
    /// As `ps` prints it: `Up 3 seconds (healthy)`, `Exited (0) 2
    /// minutes ago`; for a service not started yet, what it waits for.
    pub status: String,
    /// `starting`, `healthy`, `unhealthy`; empty without a health check.
    #[serde(default)]
    pub health: String,
    /// The last probes' outputs, oldest first.
    #[serde(default)]
    pub health_log: Vec<String>,
    /// Restarts by the engine under the restart policy.
    #[serde(default)]
    pub restarts: u32,
    pub exit_code: Option<i32>,
    /// Published ports: `0.0.0.0:8080->80/tcp`.
    pub ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// `GET /v1/projects`: every project with containers on this host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub name: String,
    /// `running(3)`, `exited(1), running(2)`: as `docker compose ls`.
    pub status: String,
    pub config_files: String,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// An error an engine call returns: an HTTP status and a message for users.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            message: message.into(),
        }
    }
}

/// A container's name from the wire, held to Docker's rule.
fn container_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    let name = Option::<String>::deserialize(d)?;
    if let Some(n) = &name {
        stack_model::names::check(stack_model::names::Kind::Container, n)
            .map_err(D::Error::custom)?;
    }
    Ok(name)
}

/// A project as it travels: the model skips the services' `x-*`
/// extensions when it deserializes (the loader attaches them itself), so
/// they are put back here; the engine reads some (`x-stack-probe`).
fn project_from_json<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<stack_model::Project, D::Error> {
    use serde::de::Error as _;
    let v = serde_json::Value::deserialize(d)?;
    let mut project: stack_model::Project =
        serde_json::from_value(v.clone()).map_err(D::Error::custom)?;
    let services = v.get("services").and_then(|s| s.as_object());
    for (name, s) in services.into_iter().flatten() {
        let (Some(fields), Some(service)) = (s.as_object(), project.services.get_mut(name)) else {
            continue;
        };
        for (k, x) in fields.iter().filter(|(k, _)| k.starts_with("x-")) {
            let x = serde_json::from_value(x.clone()).map_err(D::Error::custom)?;
            service.extensions.insert(k.clone(), x);
        }
    }
    // The loader checked the names, but a body may come from any client of
    // the socket: names become paths under the root, so they are held to
    // their rules here too.
    let bad: Vec<String> = stack_model::names::check_project(&project)
        .iter()
        .map(ToString::to_string)
        .collect();
    if !bad.is_empty() {
        return Err(D::Error::custom(bad.join("; ")));
    }
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_queries_travel_with_any_path() {
        let q = ArchiveQuery {
            service: "web".into(),
            index: 2,
            path: "/srv/a b/ü%&x=y".into(),
            all: true,
            contents: false,
            archive: true,
            follow: true,
        };
        assert_eq!(ArchiveQuery::parse(Some(&q.to_query())), Ok(q));
        for (bad, says) in [
            ("path=/x", "service= is missing"),
            ("service=web", "path= is missing"),
            ("service=web&path=x", "not absolute"),
            ("service=web&path=/%zz", "not percent-encoded"),
            ("service=web&path=/x&index=two", "not a replica number"),
        ] {
            let e = ArchiveQuery::parse(Some(bad)).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn services_keep_their_extensions_over_the_wire() {
        let mut project = stack_model::Project {
            name: "shop".into(),
            ..Default::default()
        };
        let mut web = stack_model::Service::default();
        web.extensions.insert(
            "x-stack-probe".into(),
            stack_model::Value::Map([("tcp".to_string(), stack_model::Value::Int(80))].into()),
        );
        project.services.insert("web".into(), web);
        let req = UpRequest {
            project,
            ..Default::default()
        };
        let back: UpRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(
            back.project.services["web"].extensions,
            req.project.services["web"].extensions
        );
        assert_eq!(back, req);
    }
}

/// `POST /v1/projects/{project}/exec`: a command in a running replica of a
/// service. The answer upgrades the connection to a session
/// (`crate::session`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub service: String,
    /// The replica's number (`--index`, 1 by default).
    pub index: u32,
    pub command: Vec<String>,
    /// `KEY=VALUE`, added to the container's environment.
    #[serde(default)]
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// A pseudo-terminal (the client's is raw meanwhile).
    #[serde(default)]
    pub tty: bool,
    /// With `tty`: the client's terminal size (rows, columns), set before
    /// the command starts (later changes go as resize frames).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// The client's input reaches the command.
    #[serde(default)]
    pub interactive: bool,
    /// Started and left running: the session ends at once, exit code 0.
    #[serde(default)]
    pub detach: bool,
    /// Every capability (`exec --privileged`).
    #[serde(default)]
    pub privileged: bool,
}

/// `POST /v1/projects/{project}/run`: a one-off container of a service
/// (`stack run`), labelled as one so `up` leaves it alone; its
/// dependencies are the client's to bring up first. The answer upgrades
/// the connection to a session (`crate::session`) relaying the container;
/// with `detach` the session carries its id and ends with code 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    #[serde(deserialize_with = "project_from_json")]
    pub project: stack_model::Project,
    pub service: String,
    /// The container's name (default `PROJECT-SERVICE-run-ID`).
    #[serde(default, deserialize_with = "container_name")]
    pub name: Option<String>,
    /// Replaces the service's command, when not empty.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's entrypoint (and the service's).
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, over the service's environment.
    #[serde(default)]
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `-p`: ports published besides the service's (which are left out
    /// unless `service_ports`).
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub service_ports: bool,
    #[serde(default)]
    pub tty: bool,
    /// As [`ExecRequest::console_size`].
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub detach: bool,
    /// Removed when it exits (by the engine, whether or not the client is
    /// still there).
    #[serde(default)]
    pub rm: bool,
    /// The service's network aliases (its name included) for it too; by
    /// default a one-off container answers to its own name only.
    #[serde(default)]
    pub use_aliases: bool,
    /// Named as compose v1 named one-off containers (`project_service_run_ID`).
    #[serde(default)]
    pub compatibility: bool,
}

/// The body of `POST /v1/images/pull` (`stack pull`): images pulled at
/// once, whether or not the store has them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub images: Vec<PullImage>,
    /// A failure is a warning, not an error.
    #[serde(default)]
    pub ignore_failures: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullImage {
    pub reference: String,
    /// `os/arch[/variant]` (default: the host's).
    #[serde(default)]
    pub platform: Option<String>,
    /// Its service builds it: a failure to pull is a warning.
    #[serde(default)]
    pub buildable: bool,
}

/// `GET /v1/projects/{project}/images`: the image a container runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The container's name.
    pub container: String,
    /// The image's reference, as the service names it.
    pub image: String,
    /// Its id (`sha256:…`); empty if it is no longer in the store.
    pub id: String,
    /// Bytes, unpacked.
    pub size: u64,
}

/// `GET /v1/projects/{project}/top`: a running container's processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Top {
    /// The container's name.
    pub name: String,
    pub processes: Vec<TopProcess>,
}

/// One process, as `ps -ef` shows it (start times in UTC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopProcess {
    pub uid: String,
    pub pid: i32,
    pub ppid: i32,
    /// CPU use over its life, percent.
    pub c: u32,
    /// When it started: `HH:MM` today, `MonDD` before.
    pub stime: String,
    /// `pts/0`, or `?` without a terminal.
    pub tty: String,
    /// CPU time, `HH:MM:SS`.
    pub time: String,
    pub cmd: String,
}

/// `GET /v1/projects/{project}/stats`: one reading of a container's use.
/// Rates (CPU %) come from two readings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// Nothing was read (not running): every figure is zero.
    pub running: bool,
    /// When it was read, nanoseconds since the Unix epoch.
    pub read_nanos: u64,
    /// CPU time used, nanoseconds.
    pub cpu_nanos: u64,
    /// Memory used, less reclaimable page cache (as Docker counts it).
    pub memory: u64,
    /// Its memory limit, or the host's memory when lower or unlimited.
    pub memory_limit: u64,
    /// Bytes received and sent on its interfaces (loopback left out).
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// The query of `/v1/projects/{project}/archive` (`stack cp`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArchiveQuery {
    pub service: String,
    /// The replica (`index=`, 1 by default).
    pub index: u32,
    /// The path in the container.
    pub path: String,
    /// `PUT`: into every running replica (`all=1`).
    pub all: bool,
    /// `PUT`: what is under the archive's top entry goes into `path`
    /// (`contents=1`, for `SRC/.`).
    pub contents: bool,
    /// `PUT`: the files get the owners the archive says (`cp -a`,
    /// `archive=1`).
    pub archive: bool,
    /// `GET`: a symlink at `path` is followed (`cp -L`, `follow=1`).
    pub follow: bool,
}

impl ArchiveQuery {
    pub fn parse(query: Option<&str>) -> Result<ArchiveQuery, ApiError> {
        let one = |key: &str| {
            crate::query::query_values(query, key)
                .last()
                .map(str::to_string)
        };
        let service = one("service").ok_or_else(|| ApiError::bad_request("service= is missing"))?;
        let path = one("path").ok_or_else(|| ApiError::bad_request("path= is missing"))?;
        let path = decode(&path).ok_or_else(|| {
            ApiError::bad_request(format!("path: `{path}` is not percent-encoded UTF-8"))
        })?;
        if !path.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "path: `{path}` is not absolute"
            )));
        }
        let index = match one("index") {
            None => 1,
            Some(n) => n.parse().map_err(|_| {
                ApiError::bad_request(format!("index: `{n}` is not a replica number"))
            })?,
        };
        Ok(ArchiveQuery {
            service,
            index,
            path,
            all: crate::query::query_flag(query, "all"),
            contents: crate::query::query_flag(query, "contents"),
            archive: crate::query::query_flag(query, "archive"),
            follow: crate::query::query_flag(query, "follow"),
        })
    }

    /// The query string, for the client (the path percent-encoded).
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "service={}&index={}&path={}",
            self.service,
            self.index,
            encode(&self.path)
        );
        for (set, flag) in [
            (self.all, "&all=1"),
            (self.contents, "&contents=1"),
            (self.archive, "&archive=1"),
            (self.follow, "&follow=1"),
        ] {
            if set {
                q.push_str(flag);
            }
        }
        q
    }
}

/// Percent-encoding of everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

/// `PUT .../archive`: what was extracted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Copied {
    /// Files and symlinks written (in each replica).
    pub files: usize,
    /// The containers written to.
    pub containers: Vec<String>,
}
