//! The server: hyper HTTP/1.1 on a unix socket, each request's version
//! split off and checked, matched against [`ROUTES`](crate::ROUTES) and
//! turned into a call of the [`Backend`] on a thread of its own (backend
//! calls block: they fork, wait, speak netlink). Attach and exec start
//! hijack their connection (`101`, `Upgrade: tcp`) and relay the process's
//! streams raw (with a terminal) or framed ([`crate::stdcopy`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use stack_api::{Control, Session};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::filters::{self, Filters};
pub use crate::stdcopy::Stream;
use crate::types::{
    ConnectNetwork, CreateContainer, CreateNetwork, CreateVolume, ExecConfig, ExecStart,
};
use crate::{route, split_version, NoRoute, API_VERSION, MIN_API_VERSION};

/// A failed call, as dockerd answers it: a status and `{"message": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerError {
    pub status: u16,
    pub message: String,
}

impl DockerError {
    pub fn new(status: u16, message: impl Into<String>) -> DockerError {
        DockerError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> DockerError {
        DockerError::new(400, m)
    }
    pub fn not_found(m: impl Into<String>) -> DockerError {
        DockerError::new(404, m)
    }
    pub fn conflict(m: impl Into<String>) -> DockerError {
        DockerError::new(409, m)
    }
    pub fn internal(m: impl Into<String>) -> DockerError {
        DockerError::new(500, m)
    }
    pub fn not_implemented(what: &str) -> DockerError {
        DockerError::new(501, format!("{what} is not implemented by stack"))
    }
    /// dockerd's words for a container that is not there.
    pub fn no_such_container(id: &str) -> DockerError {
        DockerError::not_found(format!("No such container: {id}"))
    }
    pub fn no_such_image(name: &str) -> DockerError {
        DockerError::not_found(format!("No such image: {name}"))
    }
}

type R<T> = Result<T, DockerError>;

/// A started exec or attach: its streams, and whether they are a terminal's.
pub struct Output {
    pub session: Session,
    pub tty: bool,
}

/// An exec instance: what `POST /containers/{id}/exec` made.
#[derive(Clone, Debug)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
    /// When it ended.
    pub ended: Option<std::time::Instant>,
}

/// What the Docker API does on the host. Calls may block. A call a
/// backend does not have answers 501.
#[allow(unused_variables)]
pub trait Backend: Send + Sync + 'static {
    /// Each request's answer made (its body may stream on): for an engine
    /// that, once idle, gives back what its requests ran.
    fn answered(&self) {}
    /// `GET /version` without the API versions (the server adds them).
    fn version(&self) -> Value;
    fn info(&self) -> R<Value>;
    /// Every container's summary in the shape of `GET /containers/json`
    /// (the server filters and limits); with `all`, stopped ones too.
    fn containers(&self, all: bool, size: bool) -> R<Vec<Value>>;
    /// Makes a container; `{"Id", "Warnings"}`.
    fn create(&self, name: Option<&str>, body: CreateContainer) -> R<Value>;
    fn inspect(&self, id: &str, size: bool) -> R<Value>;
    /// Starts it; false when it was running already (304).
    fn start(&self, id: &str) -> R<bool>;
    /// Stops it; false when it was not running (304).
    fn stop(&self, id: &str, signal: Option<&str>, timeout: Option<u64>) -> R<bool>;
    fn restart(&self, id: &str, signal: Option<&str>, timeout: Option<u64>) -> R<()>;
    fn kill(&self, id: &str, signal: &str) -> R<()>;
    fn pause(&self, id: &str, paused: bool) -> R<()>;
    /// Blocks until `condition` (`not-running`, `next-exit`, `removed`) holds;
    /// the exit code.
    /// `gone` says when the client went away (the wait then ends).
    fn wait(&self, id: &str, condition: &str, gone: &dyn Fn() -> bool) -> R<i64>;
    fn rename(&self, id: &str, name: &str) -> R<()>;
    fn resize(&self, id: &str, rows: u16, cols: u16) -> R<()> {
        Err(DockerError::not_implemented(
            "resizing a container's terminal",
        ))
    }
    /// Removes it (with `force`, running or not; with `volumes`, its
    /// anonymous volumes).
    fn remove(&self, id: &str, force: bool, volumes: bool) -> R<()>;
    /// Its output: with `stream`, what comes from now on until it ends
    /// (the output of a container started by then); with `logs`, what it
    /// wrote before. Input with `stdin` (a container with `OpenStdin`).
    fn attach(&self, id: &str, q: &AttachQuery) -> R<Output>;
    /// Its log, a chunk at a time to `each` (false: stop).
    fn logs(
        &self,
        id: &str,
        q: &LogsQuery,
        each: &mut dyn FnMut(Stream, &str, &[u8]) -> bool,
    ) -> R<()>;
    fn top(&self, id: &str, ps_args: Option<&str>) -> R<Value> {
        Err(DockerError::not_implemented("GET /containers/{id}/top"))
    }
    /// One reading in the shape of `GET /containers/{id}/stats` (without
    /// `precpu_stats`, which the server adds from the reading before).
    fn stats(&self, id: &str) -> R<Value> {
        Err(DockerError::not_implemented("GET /containers/{id}/stats"))
    }
    /// What its writable layer changed: `[{"Path", "Kind"}]`.
    fn changes(&self, id: &str) -> R<Value> {
        Err(DockerError::not_implemented("GET /containers/{id}/changes"))
    }
    /// It as a new image (`POST /commit`): the image's id.
    fn commit(&self, id: &str, q: CommitQuery) -> R<String> {
        Err(DockerError::not_implemented("POST /commit"))
    }
    /// Its whole file system as a tar, written by the function returned.
    fn export(&self, id: &str) -> R<stack_api::Archive> {
        Err(DockerError::not_implemented("GET /containers/{id}/export"))
    }
    /// `path`'s stat (the `X-Docker-Container-Path-Stat` header's JSON).
    fn stat_path(&self, id: &str, path: &str) -> R<Value> {
        Err(DockerError::not_implemented(
            "HEAD /containers/{id}/archive",
        ))
    }
    /// A tar of `path`, written by the function returned.
    fn archive(&self, id: &str, path: &str) -> R<stack_api::Archive> {
        Err(DockerError::not_implemented("GET /containers/{id}/archive"))
    }
    /// With `keep_owner` (`copyUIDGID`, `docker cp -a`), the files get the
    /// owners the tar says.
    fn extract(&self, id: &str, path: &str, keep_owner: bool, tar: &mut dyn Read) -> R<()> {
        Err(DockerError::not_implemented("PUT /containers/{id}/archive"))
    }
    /// Removes stopped containers passing `f`; `{"ContainersDeleted", "SpaceReclaimed"}`.
    fn prune_containers(&self, f: &Filters) -> R<Value> {
        Err(DockerError::not_implemented("POST /containers/prune"))
    }
    /// The full id of a running container `id` names (exec's check).
    fn running_id(&self, id: &str) -> R<String>;
    /// Starts an exec in its container; with `detach`, left on its own.
    fn exec(&self, exec: &Exec, detach: bool) -> R<Output>;
    fn images(&self, all: bool) -> R<Vec<Value>>;
    /// Pulls `image`, telling `progress` each step (JSON messages).
    fn pull(&self, image: &str, auth: Option<&str>, progress: &mut dyn FnMut(Value)) -> R<()>;
    fn inspect_image(&self, name: &str) -> R<Value>;
    /// Loads a `docker save` archive `tar` reads; the names loaded.
    fn load(&self, tar: &mut dyn Read) -> R<Vec<String>> {
        Err(DockerError::not_implemented("POST /images/load"))
    }
    /// A `docker save` archive of `names`, written by the function returned.
    fn save(&self, names: &[String]) -> R<stack_api::Archive> {
        Err(DockerError::not_implemented("GET /images/get"))
    }
    fn history(&self, name: &str) -> R<Value> {
        Err(DockerError::not_implemented("GET /images/{name}/history"))
    }
    fn tag(&self, name: &str, repo: &str, tag: &str) -> R<()>;
    /// `[{"Untagged": …}, {"Deleted": …}]`.
    fn remove_image(&self, name: &str, force: bool) -> R<Value>;
    fn prune_images(&self, f: &Filters) -> R<Value> {
        Err(DockerError::not_implemented("POST /images/prune"))
    }
    /// Networks in the shape of `GET /networks/{id}`.
    fn networks(&self) -> R<Vec<Value>>;
    fn create_network(&self, body: CreateNetwork) -> R<Value>;
    fn remove_network(&self, id: &str) -> R<()>;
    fn connect(&self, network: &str, body: ConnectNetwork, connect: bool) -> R<()>;
    fn prune_networks(&self, f: &Filters) -> R<Value> {
        Err(DockerError::not_implemented("POST /networks/prune"))
    }
    /// Volumes in the shape of `GET /volumes/{name}`, each with whether no
    /// container uses it.
    fn volumes(&self) -> R<Vec<(Value, bool)>>;
    fn create_volume(&self, body: CreateVolume) -> R<Value>;
    fn remove_volume(&self, name: &str, force: bool) -> R<()>;
    fn prune_volumes(&self, f: &Filters) -> R<Value> {
        Err(DockerError::not_implemented("POST /volumes/prune"))
    }
    /// Events in Docker's shape, from `since` (unix seconds) until `until`
    /// or until `each` says stop.
    fn events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        each: &mut dyn FnMut(Value) -> bool,
    ) -> R<()> {
        Err(DockerError::not_implemented("GET /events"))
    }
    /// Builds the context tar `context` reads as `q` says (the legacy
    /// builder's API), telling `progress` each step (`{"stream": …}`).
    fn build(
        &self,
        q: &BuildQuery,
        context: &mut dyn Read,
        progress: &mut dyn FnMut(Value),
    ) -> R<()> {
        Err(DockerError::not_implemented("POST /build"))
    }
    fn df(&self) -> R<Value> {
        Err(DockerError::not_implemented("GET /system/df"))
    }
    /// Checks credentials against a registry.
    fn auth(&self, body: Value) -> R<Value> {
        Err(DockerError::not_implemented("POST /auth"))
    }
}

/// `POST /build`'s query.
#[derive(Debug, Default, Clone)]
pub struct BuildQuery {
    /// `t`: names for the image.
    pub tags: Vec<String>,
    /// The Dockerfile's path in the context (default `Dockerfile`).
    pub dockerfile: String,
    pub args: std::collections::BTreeMap<String, String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub network: Option<String>,
    pub shm_size: Option<u64>,
    /// RUN's memory limit in bytes.
    pub memory: Option<i64>,
    pub extra_hosts: Vec<String>,
    pub platform: Option<String>,
    pub cache_from: Vec<String>,
    pub quiet: bool,
}

impl BuildQuery {
    fn parse(q: &Query) -> R<BuildQuery> {
        let json_map = |k: &str| -> R<std::collections::BTreeMap<String, String>> {
            match q.get(k).filter(|v| !v.is_empty()) {
                None => Ok(Default::default()),
                Some(v) => {
                    let m: std::collections::BTreeMap<String, Option<String>> =
                        serde_json::from_str(v)
                            .map_err(|e| DockerError::bad_request(format!("invalid {k}: {e}")))?;
                    Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
                }
            }
        };
        if q.get("remote").is_some_and(|r| !r.is_empty()) {
            return Err(DockerError::not_implemented(
                "POST /build with a remote context",
            ));
        }
        Ok(BuildQuery {
            tags: q
                .0
                .iter()
                .filter(|(k, v)| k == "t" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
            dockerfile: q
                .get("dockerfile")
                .filter(|d| !d.is_empty())
                .unwrap_or("Dockerfile")
                .to_string(),
            args: json_map("buildargs")?,
            labels: json_map("labels")?,
            target: q
                .get("target")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            no_cache: q.flag("nocache"),
            pull: q.flag("pull"),
            network: q
                .get("networkmode")
                .filter(|n| !n.is_empty() && *n != "default")
                .map(str::to_string),
            shm_size: q.number("shmsize")?.filter(|s| *s > 0),
            memory: q.number("memory")?.filter(|m| *m > 0),
            extra_hosts: q
                .get("extrahosts")
                .unwrap_or_default()
                .split([',', ' '])
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect(),
            platform: q
                .get("platform")
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            cache_from: match q.get("cachefrom").filter(|c| !c.is_empty()) {
                None => Vec::new(),
                Some(c) => serde_json::from_str(c)
                    .map_err(|e| DockerError::bad_request(format!("invalid cachefrom: {e}")))?,
            },
            quiet: q.flag("q"),
        })
    }
}

/// `attach`'s query.
#[derive(Debug, Default, Clone)]
pub struct AttachQuery {
    pub stream: bool,
    pub logs: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// `commit`'s query and body.
#[derive(Debug, Default, Clone)]
pub struct CommitQuery {
    /// `repo:tag`, or none.
    pub reference: Option<String>,
    pub author: String,
    pub comment: String,
    /// Dockerfile instructions (`changes`, given once each).
    pub changes: Vec<String>,
    /// The body: config settings (`Cmd`, `Env` ...) over the container's.
    pub config: serde_json::Map<String, Value>,
}

/// `logs`' query.
#[derive(Debug, Default, Clone)]
pub struct LogsQuery {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub timestamps: bool,
    pub tail: Option<usize>,
}

/// A request's query string, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }
    /// Each value of a key given more than once (Go's `url.Values`).
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Go's `strconv.ParseBool` as dockerd reads flags; absent is false.
    fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
    fn number<T: std::str::FromStr>(&self, name: &str) -> R<Option<T>> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| DockerError::bad_request(format!("invalid value for {name}: `{v}`"))),
        }
    }
    fn filters(&self) -> R<Filters> {
        Filters::parse(self.get("filters")).map_err(DockerError::bad_request)
    }
}

/// Percent-decoding with `+` as a space, as form values come.
fn decode(s: &str) -> String {
    crate::percent_decode(&s.replace('+', " "))
}

/// The largest JSON body read (a create is a few kB).
const MAX_BODY: usize = 16 << 20;

type Body = BoxBody<Bytes, std::io::Error>;

/// An exec instance, and while it runs what resizes its terminal.
type ExecEntry = (Exec, Option<Arc<dyn Control>>);

/// How long an ended exec instance stays to be inspected (dockerd keeps
/// them while their container lives; clients ask right after the end).
const EXEC_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// The server's own bookkeeping: exec instances (dockerd keeps them in
/// memory too; they do not outlive the engine).
struct State<B> {
    backend: Arc<B>,
    execs: Mutex<HashMap<String, ExecEntry>>,
}

/// Serves `backend` on `listener` until `shutdown` completes.
pub async fn serve<B: Backend>(
    listeners: Vec<std::os::unix::net::UnixListener>,
    backend: Arc<B>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // One state for every socket: an exec made on one is found on another.
    let state = Arc::new(State {
        backend,
        execs: Mutex::default(),
    });
    let mut accepting = Vec::new();
    for listener in listeners {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let state = state.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(stack_api::MAX_CONNECTIONS));
        accepting.push(tokio::spawn(async move {
            loop {
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of fds and the like: the next accept may do.
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(stack_api::HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        }));
    }
    shutdown.await;
    for a in accepting {
        a.abort();
    }
    Ok(())
}

async fn handle<B: Backend>(state: Arc<State<B>>, req: Request<Incoming>) -> Response<Body> {
    let mut resp = dispatch(state.clone(), req).await;
    state.backend.answered();
    let h = resp.headers_mut();
    h.insert("api-version", API_VERSION.parse().expect("a header value"));
    h.insert(
        "docker-experimental",
        "false".parse().expect("a header value"),
    );
    h.insert("ostype", "linux".parse().expect("a header value"));
    h.insert(
        "server",
        concat!("stack/", env!("CARGO_PKG_VERSION"), " (linux)")
            .parse()
            .expect("a header value"),
    );
    resp
}

async fn dispatch<B: Backend>(state: Arc<State<B>>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let full_path = req.uri().path().to_string();
    let (_, path) = match split_version(&full_path) {
        Ok(v) => v,
        Err(NoRoute::Version(v)) => {
            let older = crate::parse_version(&v) < crate::parse_version(MIN_API_VERSION);
            let message = if older {
                format!("client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version")
            } else {
                format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                )
            };
            return error(DockerError::bad_request(message));
        }
        Err(_) => unreachable!("split_version fails only on versions"),
    };
    let matched = match route(&method, path) {
        Ok(m) => m,
        Err(NoRoute::Unknown) => return error(DockerError::not_found("page not found")),
        Err(NoRoute::MethodNotAllowed) => {
            return error(DockerError::new(405, format!("{method} is not allowed on {path}")))
        }
        Err(NoRoute::Swarm) => {
            return error(DockerError::new(
                503,
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
            ))
        }
        Err(NoRoute::NotImplemented) | Err(NoRoute::Version(_)) => {
            return error(DockerError::not_implemented(&format!("{method} {path}")))
        }
    };
    let q = Query::parse(req.uri().query());
    let p = matched.params.first().cloned().unwrap_or_default();
    let b = state.backend.clone();
    match (method.as_str(), matched.template) {
        ("GET" | "HEAD", "/_ping") => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", "no-cache, no-store, must-revalidate")
            .header("builder-version", "1")
            .body(full(if method == "HEAD" { "" } else { "OK" }))
            .expect("a valid response"),
        (_, "/version") => {
            let mut v = b.version();
            v["ApiVersion"] = json!(API_VERSION);
            v["MinAPIVersion"] = json!(MIN_API_VERSION);
            json_ok(&v)
        }
        (_, "/info") => answer(blocking(move || b.info()).await),
        (_, "/system/df") => answer(blocking(move || b.df()).await),
        (_, "/auth") => match body::<Value>(req).await {
            Ok(v) => answer(blocking(move || b.auth(v)).await),
            Err(e) => error(e),
        },
        (_, "/events") => events(b, &q),
        ("POST", "/build") => {
            let bq = match BuildQuery::parse(&q) {
                Ok(bq) => bq,
                Err(e) => return error(e),
            };
            // The context is read as the build takes it.
            let (tx, chunks) = tokio::sync::mpsc::channel(8);
            tokio::spawn(stack_api::pipe::forward(req.into_body(), tx));
            progress_stream(move |send| drained(chunks, |r| b.build(&bq, r, send)))
        }
        ("GET", "/containers/json") => {
            let f = match q.filters().and_then(|f| {
                f.check(filters::CONTAINER_FILTERS)
                    .map_err(DockerError::bad_request)?;
                Ok(f)
            }) {
                Ok(f) => f,
                Err(e) => return error(e),
            };
            let limit: Option<i64> = match q.number("limit") {
                Ok(l) => l,
                Err(e) => return error(e),
            };
            // `limit` (and a filter on status) lists stopped ones too.
            let all = q.flag("all")
                || limit.is_some_and(|l| l > 0)
                || f.get("status").is_some()
                || f.get("exited").is_some();
            let size = q.flag("size");
            answer(
                blocking(move || {
                    let mut list = filters::containers(&f, b.containers(all, size)?)
                        .map_err(DockerError::not_found)?;
                    list.sort_by_key(|c| std::cmp::Reverse(c["Created"].as_i64().unwrap_or(0)));
                    if let Some(l) = limit.filter(|l| *l > 0) {
                        list.truncate(l as usize);
                    }
                    Ok(list)
                })
                .await,
            )
        }
        ("POST", "/containers/create") => {
            let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_string);
            if let Some(n) = &name {
                if !crate::valid_container_name(n) {
                    return error(DockerError::bad_request(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
            }
            match body::<CreateContainer>(req).await {
                Ok(c) => created(blocking(move || b.create(name.as_deref(), c)).await),
                Err(e) => error(e),
            }
        }
        ("POST", "/containers/prune") => match q.filters() {
            Ok(f) => answer(blocking(move || b.prune_containers(&f)).await),
            Err(e) => error(e),
        },
        ("GET", "/containers/{id}/json") => {
            let size = q.flag("size");
            answer(blocking(move || b.inspect(&p, size)).await)
        }
        ("POST", "/containers/{id}/start") => modified(blocking(move || b.start(&p)).await),
        ("POST", "/containers/{id}/stop") => {
            let (signal, t) = match stop_args(&q) {
                Ok(x) => x,
                Err(e) => return error(e),
            };
            modified(blocking(move || b.stop(&p, signal.as_deref(), t)).await)
        }
        ("POST", "/containers/{id}/restart") => {
            let (signal, t) = match stop_args(&q) {
                Ok(x) => x,
                Err(e) => return error(e),
            };
            empty(blocking(move || b.restart(&p, signal.as_deref(), t)).await)
        }
        ("POST", "/containers/{id}/kill") => {
            let signal = q
                .get("signal")
                .filter(|s| !s.is_empty())
                .unwrap_or("KILL")
                .to_string();
            empty(blocking(move || b.kill(&p, &signal)).await)
        }
        ("POST", "/containers/{id}/pause") => empty(blocking(move || b.pause(&p, true)).await),
        ("POST", "/containers/{id}/unpause") => empty(blocking(move || b.pause(&p, false)).await),
        ("POST", "/containers/{id}/wait") => {
            let condition = q
                .get("condition")
                .filter(|c| !c.is_empty())
                .unwrap_or("not-running")
                .to_string();
            if !["not-running", "next-exit", "removed"].contains(&condition.as_str()) {
                return error(DockerError::bad_request(format!(
                    "invalid condition: \"{condition}\""
                )));
            }
            // The container must exist now: the CLI waits for these
            // headers before it starts the container, so the answer's
            // head goes at once and its body when the wait ends.
            let exists = {
                let b = b.clone();
                let p = p.clone();
                blocking(move || b.inspect(&p, false)).await
            };
            if let Err(e) = exists {
                return error(e);
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
            std::thread::spawn(move || {
                let v = match b.wait(&p, &condition, &|| tx.is_closed()) {
                    Ok(code) => json!({"StatusCode": code, "Error": null}),
                    Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
                };
                let _ = tx.blocking_send(Bytes::from(format!("{v}\n")));
            });
            streamed(StatusCode::OK, "application/json", rx)
        }
        ("POST", "/containers/{id}/rename") => {
            let Some(name) = q.get("name").filter(|n| !n.is_empty()).map(str::to_string) else {
                return error(DockerError::bad_request("name is required"));
            };
            if !crate::valid_container_name(&name) {
                return error(DockerError::bad_request(format!(
                    "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            empty(blocking(move || b.rename(&p, &name)).await)
        }
        ("POST", "/containers/{id}/resize") => match size_args(&q) {
            Ok((h, w)) => ok_empty(blocking(move || b.resize(&p, h, w)).await),
            Err(e) => error(e),
        },
        ("POST", "/containers/{id}/attach") => {
            let a = AttachQuery {
                stream: q.flag("stream"),
                logs: q.flag("logs"),
                stdin: q.flag("stdin"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
            };
            let keys = match detach_keys(q.get("detachKeys").unwrap_or_default()) {
                Ok(k) => k,
                Err(e) => return error(e),
            };
            let upgrade = wants_upgrade(&req);
            let on = hyper::upgrade::on(req);
            match blocking(move || b.attach(&p, &a)).await {
                Ok(out) => hijack(on, upgrade, out.into(), None, keys),
                Err(e) => error(e),
            }
        }
        ("DELETE", "/containers/{id}") => {
            let (force, v) = (q.flag("force"), q.flag("v"));
            empty(blocking(move || b.remove(&p, force, v)).await)
        }
        ("GET", "/containers/{id}/logs") => logs(b, p, &q).await,
        ("GET", "/containers/{id}/top") => {
            let args = q.get("ps_args").map(str::to_string);
            answer(blocking(move || b.top(&p, args.as_deref())).await)
        }
        ("GET", "/containers/{id}/stats") => stats(b, p, &q).await,
        ("GET", "/containers/{id}/changes") => answer(blocking(move || b.changes(&p)).await),
        ("POST", "/commit") => {
            let Some(id) = q
                .get("container")
                .filter(|c| !c.is_empty())
                .map(str::to_string)
            else {
                return error(DockerError::bad_request("no container given"));
            };
            let reference = q.get("repo").filter(|r| !r.is_empty()).map(|repo| {
                format!(
                    "{repo}:{}",
                    q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest")
                )
            });
            let config = match body::<Value>(req).await {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Default::default(),
                Ok(_) => {
                    return error(DockerError::bad_request(
                        "the body must be a container config",
                    ))
                }
                Err(e) => return error(e),
            };
            let query = CommitQuery {
                reference,
                author: q.get("author").unwrap_or_default().to_string(),
                comment: q.get("comment").unwrap_or_default().to_string(),
                changes: q
                    .all("changes")
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect(),
                // (`pause` is not read: a running container is always
                // frozen while its layer is read.)
                config,
            };
            created(blocking(move || b.commit(&id, query).map(|id| json!({"Id": id}))).await)
        }
        ("GET", "/containers/{id}/export") => match blocking(move || b.export(&p)).await {
            Ok(write) => tar_body(write, None),
            Err(e) => error(e),
        },
        ("HEAD" | "GET" | "PUT", "/containers/{id}/archive") => archive(b, p, &q, req).await,
        ("POST", "/containers/{id}/exec") => match body::<ExecConfig>(req).await {
            Ok(config) => {
                if config.cmd.is_empty() {
                    return error(DockerError::bad_request("No exec command specified"));
                }
                match blocking(move || b.running_id(&p)).await {
                    Ok(container) => {
                        let id = random_id();
                        let exec = Exec {
                            id: id.clone(),
                            container,
                            config,
                            running: false,
                            exit_code: None,
                            pid: 0,
                            ended: None,
                        };
                        let mut execs = lock(&state.execs);
                        execs.retain(|_, (e, _)| e.ended.is_none_or(|t| t.elapsed() < EXEC_KEPT));
                        execs.insert(id.clone(), (exec, None));
                        json_status(StatusCode::CREATED, &json!({"Id": id}))
                    }
                    Err(e) => error(e),
                }
            }
            Err(e) => error(e),
        },
        ("POST", "/exec/{id}/start") => exec_start(state, p, req).await,
        ("POST", "/exec/{id}/resize") => {
            let (h, w) = match size_args(&q) {
                Ok(x) => x,
                Err(e) => return error(e),
            };
            match lock(&state.execs).get(&p) {
                None => error(no_such_exec(&p)),
                Some((_, control)) => {
                    if let Some(c) = control {
                        c.resize(h, w);
                    }
                    status_only(StatusCode::OK)
                }
            }
        }
        ("GET", "/exec/{id}/json") => match lock(&state.execs).get(&p) {
            None => error(no_such_exec(&p)),
            Some((e, _)) => json_ok(&exec_json(e)),
        },
        ("GET", "/images/json") => {
            let f = match q.filters() {
                Ok(f) => f,
                Err(e) => return error(e),
            };
            let all = q.flag("all");
            answer(
                blocking(move || {
                    Ok(b.images(all)?
                        .into_iter()
                        .filter(|i| filters::image(&f, i))
                        .collect::<Vec<_>>())
                })
                .await,
            )
        }
        ("POST", "/images/create") => {
            let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) else {
                return error(DockerError::not_implemented(
                    "POST /images/create without fromImage (import)",
                ));
            };
            let tag = q.get("tag").unwrap_or_default();
            let image = match tag {
                "" => from.to_string(),
                t if t.starts_with("sha256:") => format!("{from}@{t}"),
                t => format!("{from}:{t}"),
            };
            let auth = req
                .headers()
                .get("x-registry-auth")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            progress_stream(move |send| b.pull(&image, auth.as_deref(), send))
        }
        ("POST", "/images/load") => {
            // (`quiet` leaves out progress bars, which stack does not draw:
            // what was loaded is said either way, as dockerd says it.)
            let (tx, chunks) = tokio::sync::mpsc::channel(8);
            tokio::spawn(stack_api::pipe::forward(req.into_body(), tx));
            progress_stream(move |send| {
                for name in drained(chunks, |r| b.load(r))? {
                    send(json!({"stream": format!("Loaded image: {name}\n")}));
                }
                Ok(())
            })
        }
        ("GET", "/images/get" | "/images/{name*}/get") => {
            let names: Vec<String> = match matched.template {
                "/images/get" => {
                    q.0.iter()
                        .filter(|(k, _)| k == "names")
                        .map(|(_, v)| v.clone())
                        .collect()
                }
                _ => vec![p],
            };
            match blocking(move || b.save(&names)).await {
                Ok(write) => tar_body(write, None),
                Err(e) => error(e),
            }
        }
        ("POST", "/images/prune") => match q.filters() {
            Ok(f) => answer(blocking(move || b.prune_images(&f)).await),
            Err(e) => error(e),
        },
        ("GET", "/images/{name*}/json") => answer(blocking(move || b.inspect_image(&p)).await),
        ("GET", "/images/{name*}/history") => answer(blocking(move || b.history(&p)).await),
        ("POST", "/images/{name*}/tag") => {
            let Some(repo) = q.get("repo").filter(|r| !r.is_empty()).map(str::to_string) else {
                return error(DockerError::bad_request(
                    "repository name must have at least one component",
                ));
            };
            let tag = q
                .get("tag")
                .filter(|t| !t.is_empty())
                .unwrap_or("latest")
                .to_string();
            created(blocking(move || b.tag(&p, &repo, &tag).map(|()| Value::Null)).await)
        }
        ("DELETE", "/images/{name*}") => {
            let force = q.flag("force");
            answer(blocking(move || b.remove_image(&p, force)).await)
        }
        ("GET", "/networks") => {
            let f = match q.filters() {
                Ok(f) => f,
                Err(e) => return error(e),
            };
            answer(
                blocking(move || {
                    Ok(b.networks()?
                        .into_iter()
                        .filter(|n| filters::network(&f, n))
                        .collect::<Vec<_>>())
                })
                .await,
            )
        }
        ("GET", "/networks/{id}") => {
            answer(blocking(move || find_network(&b.networks()?, &p)).await)
        }
        ("POST", "/networks/create") => match body::<CreateNetwork>(req).await {
            Ok(n) => created(blocking(move || b.create_network(n)).await),
            Err(e) => error(e),
        },
        ("POST", "/networks/prune") => match q.filters() {
            Ok(f) => answer(blocking(move || b.prune_networks(&f)).await),
            Err(e) => error(e),
        },
        ("DELETE", "/networks/{id}") => empty(blocking(move || b.remove_network(&p)).await),
        ("POST", "/networks/{id}/connect" | "/networks/{id}/disconnect") => {
            let connect = matched.template.ends_with("/connect");
            match body::<ConnectNetwork>(req).await {
                Ok(c) => ok_empty(blocking(move || b.connect(&p, c, connect)).await),
                Err(e) => error(e),
            }
        }
        ("GET", "/volumes") => {
            let f = match q.filters() {
                Ok(f) => f,
                Err(e) => return error(e),
            };
            answer(
                blocking(move || {
                    let list: Vec<Value> = b
                        .volumes()?
                        .into_iter()
                        .filter(|(v, dangling)| filters::volume(&f, v, *dangling))
                        .map(|(v, _)| v)
                        .collect();
                    Ok(json!({"Volumes": list, "Warnings": []}))
                })
                .await,
            )
        }
        ("POST", "/volumes/create") => match body::<CreateVolume>(req).await {
            Ok(v) => created(blocking(move || b.create_volume(v)).await),
            Err(e) => error(e),
        },
        ("POST", "/volumes/prune") => match q.filters() {
            Ok(f) => answer(blocking(move || b.prune_volumes(&f)).await),
            Err(e) => error(e),
        },
        ("GET", "/volumes/{id}") => answer(
            blocking(move || {
                b.volumes()?
                    .into_iter()
                    .map(|(v, _)| v)
                    .find(|v| v["Name"] == p.as_str())
                    .ok_or_else(|| DockerError::not_found(format!("get {p}: no such volume")))
            })
            .await,
        ),
        ("DELETE", "/volumes/{id}") => {
            let force = q.flag("force");
            empty(blocking(move || b.remove_volume(&p, force)).await)
        }
        // stack has no plugins (`docker inspect` asks for one by the name).
        ("GET", "/plugins") => json_ok(&json!([])),
        ("GET", "/plugins/{name*}/json") => {
            error(DockerError::not_found(format!("plugin \"{p}\" not found")))
        }
        (m, t) => error(DockerError::not_implemented(&format!("{m} {t}"))),
    }
}

/// A network (Docker's shape) by full name, full id, or unique id
/// prefix, as dockerd finds one.
pub fn find_network(all: &[Value], key: &str) -> R<Value> {
    let s = |n: &Value, k: &str| n[k].as_str().unwrap_or_default().to_string();
    if let Some(n) = all
        .iter()
        .find(|n| s(n, "Name") == key || s(n, "Id") == key)
    {
        return Ok(n.clone());
    }
    let mut prefixed = all.iter().filter(|n| s(n, "Id").starts_with(key));
    match (prefixed.next(), prefixed.next()) {
        (Some(n), None) => Ok(n.clone()),
        (Some(_), Some(_)) => Err(DockerError::bad_request(format!(
            "network {key} is ambiguous"
        ))),
        _ => Err(DockerError::not_found(format!("network {key} not found"))),
    }
}

fn no_such_exec(id: &str) -> DockerError {
    DockerError::not_found(format!("No such exec instance: {id}"))
}

fn exec_json(e: &Exec) -> Value {
    json!({
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.config.tty,
            "entrypoint": e.config.cmd.first(),
            "arguments": e.config.cmd.get(1..).unwrap_or_default(),
            "privileged": e.config.privileged,
            "user": e.config.user,
        },
        "OpenStdin": e.config.attach_stdin,
        "OpenStderr": e.config.attach_stderr,
        "OpenStdout": e.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": e.config.detach_keys,
        "Pid": e.pid,
    })
}

async fn exec_start<B: Backend>(
    state: Arc<State<B>>,
    id: String,
    req: Request<Incoming>,
) -> Response<Body> {
    let upgrade = wants_upgrade(&req);
    let mut req = req;
    let on = hyper::upgrade::on(&mut req);
    let start: ExecStart = match body(req).await {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let exec = {
        let mut execs = lock(&state.execs);
        let Some((e, _)) = execs.get_mut(&id) else {
            return error(no_such_exec(&id));
        };
        if e.running || e.exit_code.is_some() {
            return error(DockerError::conflict(format!("exec {id} has already run")));
        }
        e.running = true;
        if start.console_size.len() == 2 {
            e.config.console_size = start.console_size.clone();
        }
        e.clone()
    };
    let b = state.backend.clone();
    let detach = start.detach;
    let started = {
        let exec = exec.clone();
        blocking(move || b.exec(&exec, detach)).await
    };
    let out = match started {
        Ok(out) => out,
        Err(e) => {
            if let Some((e, _)) = lock(&state.execs).get_mut(&id) {
                e.running = false;
                e.exit_code = Some(126);
                e.ended = Some(std::time::Instant::now());
            }
            return error(e);
        }
    };
    if detach {
        let Output { session, .. } = out;
        std::thread::spawn(move || {
            let code = session.control.wait();
            finish_exec(&state, &id, code);
        });
        return status_only(StatusCode::OK);
    }
    let streams = Streams::from(out);
    if let Some((_, control)) = lock(&state.execs).get_mut(&id) {
        *control = Some(streams.control.clone());
    }
    let keys = detach_keys(&exec.config.detach_keys).unwrap_or_default();
    hijack(
        on,
        upgrade,
        streams,
        Some(Box::new(move |code| finish_exec(&state, &id, code))),
        keys,
    )
}

fn finish_exec<B>(state: &State<B>, id: &str, code: i32) {
    if let Some((e, control)) = lock(&state.execs).get_mut(id) {
        e.running = false;
        e.exit_code = Some(code);
        e.ended = Some(std::time::Instant::now());
        *control = None;
    }
}

/// A started process's streams, its control shared (exec's resize reaches it).
struct Streams {
    stdin: Option<Box<dyn Write + Send>>,
    stdout: Option<Box<dyn Read + Send>>,
    stderr: Option<Box<dyn Read + Send>>,
    control: Arc<dyn Control>,
    tty: bool,
}

impl From<Output> for Streams {
    fn from(o: Output) -> Streams {
        let Session {
            stdin,
            stdout,
            stderr,
            control,
        } = o.session;
        Streams {
            stdin,
            stdout,
            stderr,
            control: Arc::from(control),
            tty: o.tty,
        }
    }
}

/// How long output may still come after the process ended (a process it
/// left behind may hold its output open). Generous: on a loaded host the
/// readers of what it wrote last may not have run yet.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Attach and exec start: `101 Upgrade: tcp` when the client asked for it
/// (every current client does), then the output (raw with a terminal, else
/// framed) and the input both ways over the connection; the client's end
/// of input (a half-close) closes the process's input. `done` runs with
/// the exit code before the connection closes (the CLI then asks for it).
/// A client that did not ask for an upgrade gets the output as the body.
fn hijack(
    on: hyper::upgrade::OnUpgrade,
    upgrade: bool,
    s: Streams,
    done: Option<Box<dyn FnOnce(i32) + Send>>,
    detach_keys: Vec<u8>,
) -> Response<Body> {
    let tty = s.tty;
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let readers: Vec<_> = [(Stream::Stdout, s.stdout), (Stream::Stderr, s.stderr)]
        .into_iter()
        .filter_map(|(kind, r)| Some((kind, r?)))
        .map(|(kind, r)| {
            let tx = out_tx.clone();
            stack_api::session::pump(r, move |bytes| {
                let bytes = if tty {
                    bytes.to_vec()
                } else {
                    crate::stdcopy::frame(kind, bytes)
                };
                tx.blocking_send(Chunk::Bytes(bytes)).is_ok()
            })
        })
        .collect();
    let control = s.control.clone();
    std::thread::spawn(move || {
        let code = stack_api::session::wait_drained(&*control, &readers, DRAIN);
        if let Some(done) = done {
            done(code);
        }
        let _ = out_tx.blocking_send(Chunk::End);
    });
    if !upgrade {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            while let Some(Chunk::Bytes(b)) = out_rx.recv().await {
                if tx.send(Bytes::from(b)).await.is_err() {
                    break;
                }
            }
        });
        return streamed(StatusCode::OK, stream_type(tty), rx);
    }
    let stdin = s.stdin;
    tokio::spawn(async move {
        let Ok(io) = on.await else {
            // The client went before the upgrade: the process runs on
            // with its input closed.
            return;
        };
        let (mut rd, mut wr) = tokio::io::split(TokioIo::new(io));
        // Input goes through a thread: writing to a pipe may block.
        // Input goes through a thread (writing to a pipe may block) and a
        // bounded queue: a client faster than the process waits for it.
        let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Input>(16);
        let attached = stdin.is_some();
        match stdin {
            Some(mut w) => {
                std::thread::spawn(move || {
                    while let Some(chunk) = in_rx.blocking_recv() {
                        match chunk {
                            Input::Bytes(b) => {
                                if w.write_all(&b).and_then(|()| w.flush()).is_err() {
                                    break;
                                }
                            }
                            // Detached: the process keeps its input open,
                            // as Docker leaves it.
                            Input::Detach => {
                                std::mem::forget(w);
                                return;
                            }
                        }
                    }
                });
            }
            // Nobody takes input: what comes is read and dropped.
            None => drop(in_rx),
        }
        // (an mpsc, not a oneshot: polled again after its end it answers
        // None again, where a oneshot panics)
        let (detached_tx, mut detached) = tokio::sync::mpsc::channel::<()>(1);
        let input = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut keys = DetachKeys::new(detach_keys);
            while let Ok(n @ 1..) = rd.read(&mut buf).await {
                let (pass, detach) = if attached {
                    keys.scan(&buf[..n])
                } else {
                    (buf[..n].to_vec(), false)
                };
                // (read on when nobody takes it, so a half-close is seen)
                if !pass.is_empty() {
                    let _ = in_tx.send(Input::Bytes(pass)).await;
                }
                if detach {
                    let _ = in_tx.send(Input::Detach).await;
                    let _ = detached_tx.send(()).await;
                    return;
                }
            }
            // The end of the client's input: the process's too (in_tx dropped).
        });
        loop {
            let chunk = tokio::select! {
                c = out_rx.recv() => c,
                // (only a detach: the input's end is not the output's)
                Some(()) = detached.recv() => break,
            };
            let Some(Chunk::Bytes(b)) = chunk else { break };
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        input.abort();
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "tcp")
        .header("content-type", stream_type(tty))
        .body(full(""))
        .expect("a valid response")
}

enum Chunk {
    Bytes(Vec<u8>),
    End,
}

/// What goes to the process's input.
enum Input {
    Bytes(Vec<u8>),
    /// The client typed the detach keys.
    Detach,
}

/// The detach sequence found in the client's input: bytes that may begin
/// it are held back until they do or do not.
struct DetachKeys {
    keys: Vec<u8>,
    held: usize,
}

impl DetachKeys {
    fn new(keys: Vec<u8>) -> DetachKeys {
        DetachKeys { keys, held: 0 }
    }

    /// What to pass on of `input`, and whether the sequence is complete.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held goes on.
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Docker's `--detach-keys` (`ctrl-p,ctrl-q` by default): `ctrl-X` for a
/// letter or `@[\\]^_`, or a single character.
fn detach_keys(spec: &str) -> R<Vec<u8>> {
    let spec = if spec.is_empty() {
        "ctrl-p,ctrl-q"
    } else {
        spec
    };
    spec.split(',')
        .map(|k| {
            let bad = || DetachKeys::invalid(spec);
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => Ok(c - b'a' + 1),
                        b'@' => Ok(0),
                        b'[' | b'\\' | b']' | b'^' | b'_' => Ok(c - b'@'),
                        _ => Err(bad()),
                    }
                }
                None if k.len() == 1 => Ok(k.as_bytes()[0]),
                _ => Err(bad()),
            }
        })
        .collect()
}

impl DetachKeys {
    fn invalid(spec: &str) -> DockerError {
        DockerError::bad_request(format!("Invalid detach keys ({spec}) provided"))
    }
}

/// `GET /containers/{id}/logs`: framed (or raw with a terminal), streamed
/// as read; with `follow`, until the container ends or the client goes.
async fn logs<B: Backend>(b: Arc<B>, id: String, q: &Query) -> Response<Body> {
    let parsed =
        (|| -> R<LogsQuery> {
            let tail = match q.get("tail") {
                None | Some("all") | Some("") => None,
                Some(n) => Some(n.parse::<i64>().map_err(|_| {
                    DockerError::bad_request(format!("invalid value for tail: `{n}`"))
                })?)
                .filter(|n| *n >= 0)
                .map(|n| n as usize),
            };
            let time = |k: &str| -> R<Option<f64>> {
                match q.get(k).filter(|v| !v.is_empty() && *v != "0") {
                    None => Ok(None),
                    Some(v) => v.parse().map(Some).map_err(|_| {
                        DockerError::bad_request(format!("invalid value for {k}: `{v}`"))
                    }),
                }
            };
            Ok(LogsQuery {
                follow: q.flag("follow"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                since: time("since")?,
                until: time("until")?,
                timestamps: q.flag("timestamps"),
                tail,
            })
        })();
    let lq = match parsed {
        Ok(l) => l,
        Err(e) => return error(e),
    };
    if !lq.stdout && !lq.stderr {
        return error(DockerError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tty = {
        let (b, id) = (b.clone(), id.clone());
        match blocking(move || b.inspect(&id, false)).await {
            Ok(c) => c["Config"]["Tty"].as_bool().unwrap_or(false),
            Err(e) => return error(e),
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    std::thread::spawn(move || {
        let sent = b.logs(&id, &lq, &mut |stream, time, bytes| {
            // (nothing: the backend asks whether the client is still there)
            if bytes.is_empty() {
                return !tx.is_closed();
            }
            let mut line = Vec::with_capacity(bytes.len() + 32);
            if lq.timestamps {
                line.extend_from_slice(time.as_bytes());
                line.push(b' ');
            }
            line.extend_from_slice(bytes);
            let chunk = if tty {
                line
            } else {
                crate::stdcopy::frame(stream, &line)
            };
            tx.blocking_send(Bytes::from(chunk)).is_ok()
        });
        if let Err(e) = sent {
            let _ = tx.blocking_send(Bytes::from(crate::stdcopy::frame(
                Stream::Stderr,
                format!("error from daemon in stream: {}\n", e.message).as_bytes(),
            )));
        }
    });
    streamed(StatusCode::OK, stream_type(tty), rx)
}

/// `GET /containers/{id}/stats`: a reading a second (with the one before
/// as `precpu_stats`), or with `stream=0` one (two readings apart, unless
/// `one-shot`).
async fn stats<B: Backend>(b: Arc<B>, id: String, q: &Query) -> Response<Body> {
    let stream = q.get("stream").is_none() || q.flag("stream");
    let one_shot = q.flag("one-shot");
    let first = {
        let (b, id) = (b.clone(), id.clone());
        match blocking(move || b.stats(&id)).await {
            Ok(v) => v,
            Err(e) => return error(e),
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    std::thread::spawn(move || {
        // (no reading before the first: zeros, as dockerd sends)
        let mut pre =
            json!({"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0});
        let mut reading = first;
        if !stream && !one_shot {
            pre = reading["cpu_stats"].clone();
            std::thread::sleep(std::time::Duration::from_secs(1));
            match b.stats(&id) {
                Ok(v) => reading = v,
                Err(_) => return,
            }
        }
        loop {
            reading["precpu_stats"] = pre;
            let line = format!("{reading}\n");
            if tx.blocking_send(Bytes::from(line)).is_err() || !stream {
                return;
            }
            pre = reading["cpu_stats"].clone();
            std::thread::sleep(std::time::Duration::from_secs(1));
            match b.stats(&id) {
                Ok(v) => reading = v,
                Err(_) => return,
            }
        }
    });
    streamed(StatusCode::OK, "application/json", rx)
}

/// `docker cp`: `HEAD` a path's stat, `GET` a tar of it, `PUT` a tar
/// extracted into it.
async fn archive<B: Backend>(
    b: Arc<B>,
    id: String,
    q: &Query,
    req: Request<Incoming>,
) -> Response<Body> {
    use base64::Engine as _;
    let Some(path) = q.get("path").filter(|p| !p.is_empty()).map(str::to_string) else {
        return error(DockerError::bad_request("path is required"));
    };
    let method = req.method().clone();
    if method == hyper::Method::PUT {
        let (tx, chunks) = tokio::sync::mpsc::channel(8);
        tokio::spawn(stack_api::pipe::forward(req.into_body(), tx));
        let keep_owner = q.flag("copyUIDGID");
        return ok_empty(
            blocking(move || drained(chunks, |r| b.extract(&id, &path, keep_owner, r))).await,
        );
    }
    let stat = {
        let (b, id, path) = (b.clone(), id.clone(), path.clone());
        match blocking(move || b.stat_path(&id, &path)).await {
            Ok(s) => s,
            Err(e) => return error(e),
        }
    };
    let header = base64::engine::general_purpose::STANDARD.encode(stat.to_string());
    if method == hyper::Method::HEAD {
        return Response::builder()
            .status(StatusCode::OK)
            .header("x-docker-container-path-stat", header)
            .body(full(""))
            .expect("a valid response");
    }
    match blocking(move || b.archive(&id, &path)).await {
        Ok(write) => tar_body(write, Some(header)),
        Err(e) => error(e),
    }
}

/// A tar written as the body goes (an error breaks the body off: a
/// cut-short archive never passes for a whole one).
fn tar_body(write: stack_api::Archive, stat: Option<String>) -> Response<Body> {
    let (mut w, chunks) = stack_api::pipe::channel();
    std::thread::spawn(move || match write(&mut w) {
        Ok(()) => {
            let _ = w.finish();
        }
        Err(e) => w.fail(e),
    });
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-tar");
    if let Some(stat) = stat {
        r = r.header("x-docker-container-path-stat", stat);
    }
    r.body(stack_api::pipe::ChunkBody::new(chunks).boxed())
        .expect("a valid response")
}

/// Runs `f` on a request body's reader, then reads the body to its end: a
/// tar's reader stops at its end-of-archive blocks, and a client still
/// writing the padding after them must not find the connection closed.
fn drained<T>(
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    f: impl FnOnce(&mut dyn Read) -> R<T>,
) -> R<T> {
    let mut r = stack_api::pipe::Reader::new(chunks);
    let out = f(&mut r);
    let _ = std::io::copy(&mut r, &mut std::io::sink());
    out
}

/// `GET /events`: one JSON object a line, as they happen.
fn events<B: Backend>(b: Arc<B>, q: &Query) -> Response<Body> {
    let f = match q.filters() {
        Ok(f) => f,
        Err(e) => return error(e),
    };
    let time = |k: &str| {
        q.get(k)
            .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
    };
    let (since, until) = (time("since"), time("until"));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    std::thread::spawn(move || {
        let r = b.events(since, until, &mut |e| {
            // (null: the backend asks whether the client is still there)
            if e.is_null() || !event_passes(&f, &e) {
                return !tx.is_closed();
            }
            tx.blocking_send(Bytes::from(format!("{e}\n"))).is_ok()
        });
        if let Err(e) = r {
            let _ = tx.blocking_send(Bytes::from(format!("{}\n", json!({"message": e.message}))));
        }
    });
    streamed(StatusCode::OK, "application/json", rx)
}

/// An event (Docker's shape) against `type`, `event`, `container`,
/// `image`, `network`, `volume` and `label` filters.
fn event_passes(f: &Filters, e: &Value) -> bool {
    let s = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let attrs = e.pointer("/Actor/Attributes").unwrap_or(&Value::Null);
    let of_kind = |kind: &str| {
        f.any(kind, |v| {
            s("/Type") != kind || s("/Actor/ID").starts_with(v) || attrs["name"] == v
        }) && (f.get(kind).is_none() || s("/Type") == kind)
    };
    f.any("type", |v| s("/Type") == v)
        && f.any("event", |v| {
            s("/Action") == v || s("/Action").starts_with(&format!("{v}:"))
        })
        && f.labels_match(attrs)
        && ["container", "image", "network", "volume"]
            .iter()
            .all(|k| of_kind(k))
}

/// A pull's progress: `application/json`, one message a line, an error as
/// `{"errorDetail": …, "error": …}` (the status is sent before it is known).
fn progress_stream(
    call: impl FnOnce(&mut dyn FnMut(Value)) -> R<()> + Send + 'static,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    std::thread::spawn(move || {
        let mut send = |v: Value| {
            let _ = tx.blocking_send(Bytes::from(format!("{v}\n")));
        };
        if let Err(e) = call(&mut send) {
            send(json!({"errorDetail": {"message": e.message}, "error": e.message}));
        }
    });
    streamed(StatusCode::OK, "application/json", rx)
}

fn stop_args(q: &Query) -> R<(Option<String>, Option<u64>)> {
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let t: Option<i64> = q.number("t")?;
    // -1: wait forever; as good as a long time.
    Ok((
        signal,
        t.map(|t| if t < 0 { u64::MAX / 4 } else { t as u64 }),
    ))
}

fn size_args(q: &Query) -> R<(u16, u16)> {
    let h: Option<u16> = q.number("h")?;
    let w: Option<u16> = q.number("w")?;
    Ok((h.unwrap_or(0), w.unwrap_or(0)))
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: &str, value: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(value))
    };
    has("connection", "upgrade") && has("upgrade", "tcp")
}

/// A new id: 64 hex digits.
fn random_id() -> String {
    let mut b = [0u8; 32];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if filled.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request's JSON body; an empty one is the type's default (docker-py
/// sends none where it has nothing to say).
async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> R<T> {
    let timeout = stack_api::body_timeout(stack_api::HEADER_TIMEOUT);
    let bytes = stack_api::read_body(req.into_body(), MAX_BODY, timeout)
        .await
        .map_err(|e| match e {
            stack_api::BodyError::Late(_) => DockerError {
                status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                message: e.to_string(),
            },
            e => DockerError::bad_request(e.to_string()),
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| DockerError::bad_request(format!("invalid JSON: {e}")))
}

/// Runs a blocking backend call on its own thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> R<T> + Send + 'static) -> R<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .unwrap_or_else(|_| Err(DockerError::internal("the engine call panicked")))
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

/// A body sent as it comes: the head goes at once.
fn streamed(
    status: StatusCode,
    content_type: &str,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(ChannelBody(rx).boxed())
        .expect("a valid response")
}

/// Chunks from a channel; ends when every sender is gone. Dropped with
/// the connection, which the senders see.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn error(e: DockerError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_status(status, &json!({"message": e.message}))
}

fn json_status(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(format!("{v}\n")))
        .expect("a valid response")
}

fn json_ok(v: &Value) -> Response<Body> {
    json_status(StatusCode::OK, v)
}

fn status_only(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(full(""))
        .expect("a valid response")
}

fn answer<T: serde::Serialize>(r: R<T>) -> Response<Body> {
    match r.and_then(|v| serde_json::to_value(v).map_err(|e| DockerError::internal(e.to_string())))
    {
        Ok(v) => json_ok(&v),
        Err(e) => error(e),
    }
}

/// 201 with the call's answer (none for a null one).
fn created(r: R<Value>) -> Response<Body> {
    match r {
        Ok(Value::Null) => status_only(StatusCode::CREATED),
        Ok(v) => json_status(StatusCode::CREATED, &v),
        Err(e) => error(e),
    }
}

/// 204 on success.
fn empty(r: R<()>) -> Response<Body> {
    match r {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => error(e),
    }
}

/// 200 on success.
fn ok_empty(r: R<()>) -> Response<Body> {
    match r {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => error(e),
    }
}

/// 204 when it changed something, 304 when it was so already.
fn modified(r: R<bool>) -> Response<Body> {
    match r {
        Ok(true) => status_only(StatusCode::NO_CONTENT),
        Ok(false) => status_only(StatusCode::NOT_MODIFIED),
        Err(e) => error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_found_across_reads_and_others_pass() {
        assert_eq!(detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert!(detach_keys("ctrl-ab").is_err());
        let mut k = DetachKeys::new(vec![16, 17]);
        assert_eq!(k.scan(b"ab\x10"), (b"ab".to_vec(), false));
        // A held key that is not followed by the rest goes on.
        assert_eq!(k.scan(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(k.scan(b"\x10"), (Vec::new(), false));
        assert_eq!(k.scan(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachKeys::new(Vec::new());
        assert_eq!(none.scan(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
