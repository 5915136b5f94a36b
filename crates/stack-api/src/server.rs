//! The server: a hyper HTTP/1.1 connection per client on a unix socket,
//! each request matched against the route table and turned into a call of
//! the [`Engine`].
//!
//! Engine calls block (they fork containers, speak netlink through their
//! own runtimes, wait for processes), so each runs on a thread of its own,
//! never on the server's async workers.

use std::convert::Infallible;
use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use stack_wire::query::{query_flag, query_values};

use crate::{
    route, Action, ActionRequest, ApiError, ArchiveQuery, ContainerSummary, Copied, DownRequest,
    ErrorBody, Event, Events, EventsQuery, ExecRequest, ImageSummary, LogsQuery, NoRoute,
    ProjectSummary, PullRequest, Route, RunRequest, Session, Stats, Top, UpRequest, Version,
    WatchRequest,
};

/// What the daemon answers on its socket (the host implements it on the
/// engine; tests on a fake). Calls may block.
pub trait Api: Send + Sync + 'static {
    fn version(&self) -> Version;
    fn projects(&self) -> Result<Vec<ProjectSummary>, ApiError>;
    fn containers(&self, project: &str, all: bool) -> Result<Vec<ContainerSummary>, ApiError>;
    /// Pulls images into the store, telling `events` of each.
    fn pull(&self, req: PullRequest, events: &Events) -> Result<(), ApiError>;
    /// Brings the project up, telling `events` what it does.
    fn up(&self, req: UpRequest, events: &Events) -> Result<(), ApiError>;
    fn down(&self, req: DownRequest, events: &Events) -> Result<(), ApiError>;
    /// stop, start, restart, kill, pause, unpause or rm on the project's
    /// containers (of `req.services`, or all).
    fn act(&self, action: Action, req: ActionRequest, events: &Events) -> Result<(), ApiError>;
    /// The project's logs as `Event::Log`s; with `follow`, until the
    /// client goes away (`events.gone()`).
    fn logs(&self, project: &str, query: LogsQuery, events: &Events) -> Result<(), ApiError>;
    /// The project's container events as they happen (`Event::Container`),
    /// until the client goes away.
    fn events(&self, project: &str, query: EventsQuery, events: &Events) -> Result<(), ApiError>;
    /// Watches the project's files (`stack watch`), telling `events` what
    /// it does: until the client goes away, or with `detach` until
    /// `unwatch` (then it answers at once).
    fn watch(&self, req: WatchRequest, events: &Events) -> Result<(), ApiError>;
    /// Stops watching the project.
    fn unwatch(&self, project: &str, events: &Events) -> Result<(), ApiError>;
    /// Starts a command in a running replica; the server relays its streams.
    fn exec(&self, project: &str, req: ExecRequest) -> Result<Session, ApiError>;
    /// Starts a one-off container of a service; the server relays its streams.
    fn run(&self, req: RunRequest) -> Result<Session, ApiError>;
    /// A tar of `q.path` in the replica, its top entry named as the path's
    /// last component (`stack cp` out): checked (the replica, the path),
    /// then written by the function returned, on a thread of its own, into
    /// the response's body as it goes.
    fn archive(&self, project: &str, q: ArchiveQuery) -> Result<Archive, ApiError>;
    /// Extracts the tar `tar` reads at `q.path` in the replica, or in every
    /// running one with `q.all` (`stack cp` in); `tar` reads the request's
    /// body as it comes.
    fn extract(
        &self,
        project: &str,
        q: ArchiveQuery,
        tar: &mut dyn std::io::Read,
    ) -> Result<Copied, ApiError>;
    /// The processes of the project's running containers (of `services`, or all).
    fn top(&self, project: &str, services: &[String]) -> Result<Vec<Top>, ApiError>;
    /// The image each of the project's containers (of `services`, or all) runs.
    fn images(&self, project: &str, services: &[String]) -> Result<Vec<ImageSummary>, ApiError>;
    /// One reading of what the project's containers use (with `all`, also
    /// those not running).
    fn stats(&self, project: &str, services: &[String], all: bool) -> Result<Vec<Stats>, ApiError>;
}

/// Writes an archive into a response's body as it makes it.
pub type Archive = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send>;

/// The largest request body: a project is a few kB, a huge one a few MB.
const MAX_BODY: usize = 64 << 20;

/// A response's body; only an archive's can break off (with an error: the
/// client must not take a cut-short archive for a whole one).
type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Binds the engine's socket, replacing a stale one (the caller holds the
/// engine's lock, so no live engine owns it). Only root may connect, or
/// also members of `group`.
pub fn bind(path: &Path, group: Option<u32>) -> std::io::Result<std::os::unix::net::UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    let mode = match group {
        Some(gid) => {
            std::os::unix::fs::chown(path, Some(0), Some(gid))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// How long a client has to send a request's headers: one that never
/// finishes them (a slow loris) is cut off, not kept forever.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `engine` on `listener` until `shutdown` completes.
pub async fn serve<E: Api>(
    listener: std::os::unix::net::UnixListener,
    engine: Arc<E>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, engine, shutdown, HEADER_TIMEOUT).await
}

/// The most connections one socket serves at once; more wait in the
/// listen backlog until one ends (a client cannot use up the engine's
/// descriptors).
pub const MAX_CONNECTIONS: usize = 512;

/// A request body of at most `max` bytes, which must have arrived within
/// `timeout` (a client that stops sending halfway holds nothing for long).
pub async fn read_body(
    body: Incoming,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::Late(timeout)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(max)),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {} s", .0.as_secs_f32())]
    Late(std::time::Duration),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read the request body: {0}")]
    Broken(String),
}

/// How long a body may take: twice the header timeout.
pub fn body_timeout(header_timeout: std::time::Duration) -> std::time::Duration {
    header_timeout * 2
}

tokio::task_local! {
    /// The body timeout of the connection a request came on.
    static BODY_TIMEOUT: std::time::Duration;
}

/// [`serve`] with another header timeout (tests use a short one).
pub async fn serve_with<E: Api>(
    listener: std::os::unix::net::UnixListener,
    engine: Arc<E>,
    shutdown: impl Future<Output = ()>,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let body_timeout = body_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => return Ok(()),
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of fds and the like: the next accept may do.
                Err(_) => continue,
            },
            () = &mut shutdown => return Ok(()),
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let engine = engine.clone();
                let served = BODY_TIMEOUT.scope(body_timeout, handle(engine, req));
                async move { Ok::<_, Infallible>(served.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle<E: Api>(engine: Arc<E>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let route = match route(req.method().as_str(), &path) {
        Ok(r) => r,
        Err(NoRoute::NotFound) => {
            return error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
        }
        Err(NoRoute::MethodNotAllowed) => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {path}", req.method()),
            )
        }
    };
    let all = query_flag(req.uri().query(), "all");
    let services = || -> Vec<String> {
        query_values(req.uri().query(), "service")
            .map(str::to_string)
            .collect()
    };
    match route {
        Route::Ping => text(StatusCode::OK, "OK"),
        Route::Version => json(StatusCode::OK, &engine.version()),
        Route::Projects => answer(blocking(move || engine.projects()).await),
        Route::Pull => match json_body::<PullRequest>(req.into_body()).await {
            Ok(r) => stream(move |events| engine.pull(r, events)),
            Err(e) => api_error(e),
        },
        Route::Containers { project } => {
            answer(blocking(move || engine.containers(&project, all)).await)
        }
        Route::Up { project } => match body::<UpRequest>(req, &project).await {
            Ok(up) => stream(move |events| engine.up(up, events)),
            Err(e) => api_error(e),
        },
        Route::Down { project } => match body::<DownRequest>(req, &project).await {
            Ok(down) => stream(move |events| engine.down(down, events)),
            Err(e) => api_error(e),
        },
        Route::Action { project, action } => match body::<ActionRequest>(req, &project).await {
            Ok(r) => stream(move |events| engine.act(action, r, events)),
            Err(e) => api_error(e),
        },
        Route::Events { project } => match EventsQuery::parse(req.uri().query()) {
            Ok(q) => stream(move |events| engine.events(&project, q, events)),
            Err(e) => api_error(e),
        },
        Route::Watch { project } => match body::<WatchRequest>(req, &project).await {
            Ok(w) => stream(move |events| engine.watch(w, events)),
            Err(e) => api_error(e),
        },
        Route::Unwatch { project } => stream(move |events| engine.unwatch(&project, events)),
        Route::Top { project } => {
            let services = services();
            answer(blocking(move || engine.top(&project, &services)).await)
        }
        Route::Images { project } => {
            let services = services();
            answer(blocking(move || engine.images(&project, &services)).await)
        }
        Route::Stats { project } => {
            let services = services();
            answer(blocking(move || engine.stats(&project, &services, all)).await)
        }
        Route::Exec { project } => {
            upgraded(
                req,
                |_: &ExecRequest| Ok(()),
                move |r| engine.exec(&project, r),
            )
            .await
        }
        Route::Run { project } => {
            let path = project.clone();
            let check = move |r: &RunRequest| same_project(r, &path);
            upgraded(req, check, move |r| engine.run(r)).await
        }
        Route::Archive { project, put } => {
            let q = match ArchiveQuery::parse(req.uri().query()) {
                Ok(q) => q,
                Err(e) => return api_error(e),
            };
            if !put {
                return match blocking(move || engine.archive(&project, q)).await {
                    Ok(write) => {
                        let (mut w, chunks) = crate::pipe::channel();
                        std::thread::spawn(move || match write(&mut w) {
                            Ok(()) => {
                                let _ = w.finish();
                            }
                            Err(e) => w.fail(e),
                        });
                        Response::builder()
                            .status(StatusCode::OK)
                            .header("content-type", "application/x-tar")
                            .body(crate::pipe::ChunkBody::new(chunks).boxed())
                            .expect("a valid response")
                    }
                    Err(e) => api_error(e),
                };
            }
            // The body is read as the engine extracts it.
            let (tx, chunks) = tokio::sync::mpsc::channel(8);
            tokio::spawn(crate::pipe::forward(req.into_body(), tx));
            answer(
                blocking(move || {
                    engine.extract(&project, q, &mut crate::pipe::Reader::new(chunks))
                })
                .await,
            )
        }
        Route::Logs { project } => match LogsQuery::parse(req.uri().query()) {
            Ok(q) => stream(move |events| engine.logs(&project, q, events)),
            Err(e) => api_error(e),
        },
    }
}

/// `exec` and `run`: the process is started before the answer, so a
/// failure is a plain error; then `101 Switching Protocols` and the
/// session's frames.
async fn upgraded<T: serde::de::DeserializeOwned + Send + 'static>(
    mut req: Request<Incoming>,
    check: impl FnOnce(&T) -> Result<(), ApiError>,
    start: impl FnOnce(T) -> Result<Session, ApiError> + Send + 'static,
) -> Response<Body> {
    let wants = |name: &str, value: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(value))
    };
    if !wants("connection", "upgrade") || !wants("upgrade", crate::session::UPGRADE) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} needs its connection upgraded (Connection: Upgrade, Upgrade: {})",
                req.uri().path().rsplit('/').next().unwrap_or_default(),
                crate::session::UPGRADE
            ),
        );
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let request: T = match json_body(req.into_body()).await.and_then(|r| {
        check(&r)?;
        Ok(r)
    }) {
        Ok(r) => r,
        Err(e) => return api_error(e),
    };
    let session = match blocking(move || start(request)).await {
        Ok(s) => s,
        Err(e) => return api_error(e),
    };
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => crate::session::relay(TokioIo::new(io), session).await,
            // The client went before the upgrade: nobody to relay to;
            // the process runs on with its input closed, and is waited
            // for (a one-off container is removed after it with `--rm`).
            Err(_) => {
                let Session { control, .. } = session;
                std::thread::spawn(move || control.wait());
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", crate::session::UPGRADE)
        .body(full(Bytes::new()))
        .expect("a valid response")
}

/// A request's JSON body.
async fn json_body<T: serde::de::DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let timeout = BODY_TIMEOUT
        .try_with(|t| *t)
        .unwrap_or(body_timeout(HEADER_TIMEOUT));
    let bytes = read_body(body, MAX_BODY, timeout)
        .await
        .map_err(|e| match e {
            BodyError::Late(_) => ApiError {
                status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                message: e.to_string(),
            },
            e => ApiError::bad_request(e.to_string()),
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// The project-carrying JSON body of a request, whose project must be the
/// one its path names.
async fn body<T: serde::de::DeserializeOwned + HasProject>(
    req: Request<Incoming>,
    project: &str,
) -> Result<T, ApiError> {
    let value: T = json_body(req.into_body()).await?;
    same_project(&value, project)?;
    Ok(value)
}

fn same_project(value: &impl HasProject, project: &str) -> Result<(), ApiError> {
    let named = value.project_name();
    if named != project {
        return Err(ApiError::bad_request(format!(
            "the body is for project `{named}`, the path for `{project}`"
        )));
    }
    Ok(())
}

trait HasProject {
    fn project_name(&self) -> &str;
}

impl HasProject for RunRequest {
    fn project_name(&self) -> &str {
        &self.project.name
    }
}

impl HasProject for UpRequest {
    fn project_name(&self) -> &str {
        &self.project.name
    }
}

impl HasProject for ActionRequest {
    fn project_name(&self) -> &str {
        &self.project.name
    }
}

impl HasProject for WatchRequest {
    fn project_name(&self) -> &str {
        &self.up.project.name
    }
}

impl HasProject for DownRequest {
    fn project_name(&self) -> &str {
        &self.project.name
    }
}

/// Runs a blocking engine call on its own thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("an engine call panicked")
}

/// A 200 whose body is the call's events, one JSON line each, then `done`
/// or `error`. When the client goes away the body is dropped, which the
/// call can see (`Events::gone`); a call that does not look runs to its end.
fn stream(call: impl FnOnce(&Events) -> Result<(), ApiError> + Send + 'static) -> Response<Body> {
    let (events, rx, taken) = Events::paced();
    std::thread::spawn(move || {
        let last = match call(&events) {
            Ok(()) => Event::Done,
            Err(e) => Event::Error { message: e.message },
        };
        events.send(last);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-ndjson")
        .body(EventBody(rx, taken).map_err(|never| match never {}).boxed())
        .expect("a valid response")
}

/// Events as they come, one JSON line each; ends when the call does.
struct EventBody(
    tokio::sync::mpsc::UnboundedReceiver<Event>,
    stack_wire::Taken,
);

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let taken = self.1.clone();
        self.0.poll_recv(cx).map(|event| {
            event.map(|e| {
                taken.one();
                let mut line = serde_json::to_vec(&e).expect("events serialize");
                line.push(b'\n');
                Ok(hyper::body::Frame::data(Bytes::from(line)))
            })
        })
    }
}

fn answer<T: serde::Serialize>(r: Result<T, ApiError>) -> Response<Body> {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => api_error(e),
    }
}

fn api_error(e: ApiError) -> Response<Body> {
    error(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.message,
    )
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    json(status, &ErrorBody { message })
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(v).expect("responses serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(Bytes::from(bytes)))
        .expect("a valid response")
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(full(Bytes::from_static(s.as_bytes())))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    /// A call sending paced events waits while PACE of them are on their
    /// way, goes on as the body takes them, and stops waiting once the
    /// client is gone.
    #[test]
    fn paced_events_wait_for_the_client() {
        use super::*;
        let (events, rx, taken) = Events::paced();
        for _ in 0..stack_wire::PACE {
            events.send_paced(Event::Heartbeat);
        }
        let (sent, sent_rx) = std::sync::mpsc::channel();
        let paced = events.clone();
        std::thread::spawn(move || {
            for _ in 0..2 {
                paced.send_paced(Event::Heartbeat);
                sent.send(()).unwrap();
            }
        });
        let wait = std::time::Duration::from_millis(300);
        assert!(sent_rx.recv_timeout(wait).is_err(), "sent past the pace");
        let mut body = EventBody(rx, taken);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(body.frame()).is_some());
        sent_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert!(sent_rx.recv_timeout(wait).is_err(), "sent past the pace");
        drop(body);
        sent_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
    }
}
