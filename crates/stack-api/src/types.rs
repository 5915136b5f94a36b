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
}

/// The body of `POST /v1/projects/{project}/up`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpRequest {
    /// The loaded project (the client reads the files, the engine acts).
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
    #[serde(default)]
    pub no_recreate: bool,
    #[serde(default)]
    pub remove_orphans: bool,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

/// The body of `POST /v1/projects/{project}/down`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownRequest {
    pub project: stack_model::Project,
    #[serde(default)]
    pub remove_orphans: bool,
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
    /// The operation failed; the last line.
    Error {
        message: String,
    },
    /// The operation succeeded; the last line.
    Done,
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
    /// As `ps` prints it: `Up 3 seconds`, `Exited (0) 2 minutes ago`.
    pub status: String,
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
