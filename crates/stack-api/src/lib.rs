//! The engine's API: JSON over HTTP/1.1 on a unix socket.
//!
//! The CLI is a thin client of one engine per host (`stack daemon`). This
//! crate holds what both sides share: the request and response types, the
//! route table (also written down in `schemas/openapi.yaml`, which a test
//! holds against the server), the server that turns requests into calls of
//! an [`Engine`], and the typed [`Client`].
//!
//! Long operations (`up`, `down`) answer with a stream of [`Event`]s, one
//! JSON object per line, ending with `done` or `error`. `exec` and `run`
//! upgrade their connection to a [`session`]: the process's input, output, terminal size,
//! signals and exit code, framed, both ways.

mod client;
pub mod pipe;
mod server;
pub mod session;

pub use client::{Client, ClientError};
pub use server::{
    bind, body_timeout, read_body, serve, serve_with, Api, Archive, BodyError, HEADER_TIMEOUT,
    MAX_CONNECTIONS,
};
pub use session::{Control, Session};
pub use stack_wire::*;

/// Bumped when a request or response changes incompatibly.
pub const API_VERSION: u32 = 1;

/// A request's target, matched against [`ROUTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Ping,
    Version,
    Projects,
    /// `POST /v1/images/pull`.
    Pull,
    Containers {
        project: String,
    },
    Up {
        project: String,
    },
    Down {
        project: String,
    },
    Action {
        project: String,
        action: Action,
    },
    Logs {
        project: String,
    },
    Events {
        project: String,
    },
    Watch {
        project: String,
    },
    Unwatch {
        project: String,
    },
    Exec {
        project: String,
    },
    Run {
        project: String,
    },
    /// `GET`: a tar of a path in a replica; `PUT`: a tar extracted there.
    Archive {
        project: String,
        put: bool,
    },
    Top {
        project: String,
    },
    Images {
        project: String,
    },
    Stats {
        project: String,
    },
}

/// Every route the server answers: method and path template.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/_ping"),
    ("GET", "/v1/version"),
    ("GET", "/v1/projects"),
    ("POST", "/v1/images/pull"),
    ("GET", "/v1/projects/{project}/containers"),
    ("POST", "/v1/projects/{project}/up"),
    ("POST", "/v1/projects/{project}/down"),
    ("POST", "/v1/projects/{project}/stop"),
    ("POST", "/v1/projects/{project}/start"),
    ("POST", "/v1/projects/{project}/restart"),
    ("POST", "/v1/projects/{project}/kill"),
    ("POST", "/v1/projects/{project}/pause"),
    ("POST", "/v1/projects/{project}/unpause"),
    ("POST", "/v1/projects/{project}/rm"),
    ("GET", "/v1/projects/{project}/logs"),
    ("GET", "/v1/projects/{project}/events"),
    ("POST", "/v1/projects/{project}/watch"),
    ("POST", "/v1/projects/{project}/unwatch"),
    ("POST", "/v1/projects/{project}/exec"),
    ("POST", "/v1/projects/{project}/run"),
    ("GET", "/v1/projects/{project}/archive"),
    ("PUT", "/v1/projects/{project}/archive"),
    ("GET", "/v1/projects/{project}/top"),
    ("GET", "/v1/projects/{project}/images"),
    ("GET", "/v1/projects/{project}/stats"),
];

/// Why a request has no route.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    NotFound,
    MethodNotAllowed,
}

/// Matches a method and a path (without query) against [`ROUTES`].
pub fn route(method: &str, path: &str) -> Result<Route, NoRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (want, route) = match segments.as_slice() {
        ["_ping"] => ("GET", Route::Ping),
        ["v1", "version"] => ("GET", Route::Version),
        ["v1", "projects"] => ("GET", Route::Projects),
        ["v1", "images", "pull"] => ("POST", Route::Pull),
        ["v1", "projects", p, op] if valid_project(p) => {
            let project = p.to_string();
            match *op {
                "containers" => ("GET", Route::Containers { project }),
                "up" => ("POST", Route::Up { project }),
                "down" => ("POST", Route::Down { project }),
                "logs" => ("GET", Route::Logs { project }),
                "events" => ("GET", Route::Events { project }),
                "watch" => ("POST", Route::Watch { project }),
                "unwatch" => ("POST", Route::Unwatch { project }),
                "exec" => ("POST", Route::Exec { project }),
                "run" => ("POST", Route::Run { project }),
                "archive" if method == "PUT" => ("PUT", Route::Archive { project, put: true }),
                "archive" => (
                    "GET",
                    Route::Archive {
                        project,
                        put: false,
                    },
                ),
                "top" => ("GET", Route::Top { project }),
                "images" => ("GET", Route::Images { project }),
                "stats" => ("GET", Route::Stats { project }),
                other => match Action::ALL.into_iter().find(|a| a.name() == other) {
                    Some(action) => ("POST", Route::Action { project, action }),
                    None => return Err(NoRoute::NotFound),
                },
            }
        }
        _ => return Err(NoRoute::NotFound),
    };
    if method != want {
        return Err(NoRoute::MethodNotAllowed);
    }
    Ok(route)
}

/// Compose's rule for project names (`stack_model::names`).
fn valid_project(name: &str) -> bool {
    stack_model::names::check(stack_model::names::Kind::Project, name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_template_matches_its_route() {
        for (method, template) in ROUTES {
            let path = template.replace("{project}", "shop");
            assert!(route(method, &path).is_ok(), "{method} {path}");
            for other in ["GET", "POST", "PUT", "DELETE"] {
                if !ROUTES.contains(&(other, template)) {
                    assert_eq!(route(other, &path), Err(NoRoute::MethodNotAllowed));
                }
            }
        }
    }

    #[test]
    fn bad_paths_are_not_found() {
        for p in [
            "/",
            "/v1",
            "/v1/projects/Shop/up",
            "/v1/projects/../up",
            "/v1/projects/shop/explode",
            "/v1/projects/shop/up/more",
            "/v2/version",
        ] {
            assert_eq!(route("POST", p), Err(NoRoute::NotFound), "{p}");
        }
        assert_eq!(
            route("POST", "/v1/projects/shop_2-x/up"),
            Ok(Route::Up {
                project: "shop_2-x".into()
            })
        );
    }
}
