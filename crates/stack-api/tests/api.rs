//! The API on a temp socket with a fake engine: the OpenAPI document and the
//! server agree (routes both ways, required fields of every JSON answer),
//! streamed operations arrive line by line, and bad requests get a clear
//! 4xx naming what is wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_yaml::Value;
use stack_api::*;

#[derive(Default)]
struct Fake {
    ups: Mutex<Vec<UpRequest>>,
    followers_gone: Mutex<u32>,
    /// What exec sessions were told: resizes and signals.
    told: Arc<Mutex<Vec<String>>>,
}

/// The fake's exec: a `cat` (input comes back as output) that ends on a
/// signal, with 128 + its number.
struct Cat {
    told: Arc<Mutex<Vec<String>>>,
    signal: Mutex<std::sync::mpsc::Receiver<i32>>,
    send: Mutex<std::sync::mpsc::Sender<i32>>,
}

impl Control for Cat {
    fn resize(&self, rows: u16, cols: u16) {
        self.told
            .lock()
            .unwrap()
            .push(format!("resize {rows}x{cols}"));
    }
    fn signal(&self, signal: i32) {
        self.told.lock().unwrap().push(format!("signal {signal}"));
        let _ = self.send.lock().unwrap().send(signal);
    }
    fn wait(&self) -> i32 {
        128 + self.signal.lock().unwrap().recv().unwrap_or(0)
    }
}

/// A process that has already ended, with this code.
struct Ended(i32);

impl Control for Ended {
    fn resize(&self, _: u16, _: u16) {}
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        self.0
    }
}

impl Api for Fake {
    fn version(&self) -> Version {
        Version {
            version: "0.0.0-test".into(),
            api_version: API_VERSION,
            pid: std::process::id(),
            root: "/nonexistent".into(),
            binary: "1:2:3".into(),
        }
    }

    fn projects(&self) -> Result<Vec<ProjectSummary>, ApiError> {
        Ok(vec![ProjectSummary {
            name: "shop".into(),
            status: "running(1)".into(),
            config_files: "/srv/shop/compose.yaml".into(),
        }])
    }

    fn containers(&self, project: &str, all: bool) -> Result<Vec<ContainerSummary>, ApiError> {
        if project != "shop" {
            return Err(ApiError::bad_request(format!(
                "no such project: `{project}`"
            )));
        }
        Ok(vec![ContainerSummary {
            id: "abc".into(),
            name: "shop-web-1".into(),
            service: "web".into(),
            number: 1,
            image: "busybox".into(),
            command: "httpd -f".into(),
            state: if all { "exited" } else { "running" }.into(),
            status: "Up 1 second".into(),
            exit_code: None,
            health: "healthy".into(),
            health_log: vec!["ok".into()],
            restarts: 0,
            ports: vec!["127.0.0.1:8080->80/tcp".into()],
            labels: BTreeMap::new(),
        }])
    }

    fn pull(&self, req: PullRequest, events: &Events) -> Result<(), ApiError> {
        for i in &req.images {
            events.send(Event::Progress {
                object: "Image".into(),
                name: i.reference.clone(),
                action: "Pulled".into(),
            });
        }
        Ok(())
    }

    fn up(&self, req: UpRequest, events: &Events) -> Result<(), ApiError> {
        let fail = req.services.iter().any(|s| s == "broken");
        self.ups.lock().unwrap().push(req);
        events.send(Event::Warning {
            message: "a warning".into(),
        });
        events.send(Event::Progress {
            object: "Container".into(),
            name: "shop-web-1".into(),
            action: "Started".into(),
        });
        if fail {
            return Err(ApiError::internal("service `broken` failed"));
        }
        Ok(())
    }

    fn down(&self, _req: DownRequest, _events: &Events) -> Result<(), ApiError> {
        Ok(())
    }

    fn watch(&self, req: WatchRequest, events: &Events) -> Result<(), ApiError> {
        events.send(Event::Progress {
            object: "Service".into(),
            name: req.services.join(","),
            action: format!("Watching {}", req.files.join(",")),
        });
        Ok(())
    }

    fn unwatch(&self, project: &str, events: &Events) -> Result<(), ApiError> {
        events.send(Event::Progress {
            object: "Project".into(),
            name: project.into(),
            action: "Unwatched".into(),
        });
        Ok(())
    }

    fn act(&self, action: Action, req: ActionRequest, events: &Events) -> Result<(), ApiError> {
        events.send(Event::Progress {
            object: "Container".into(),
            name: format!("{}-web-1", req.project.name),
            action: action.name().into(),
        });
        Ok(())
    }

    fn logs(&self, _project: &str, q: LogsQuery, events: &Events) -> Result<(), ApiError> {
        for i in 0..q.tail.unwrap_or(3) {
            let time = format!("2026-01-01T00:00:0{i}.000000000Z");
            if !q.wants(&time) {
                continue;
            }
            events.send(Event::Log {
                container: "shop-web-1".into(),
                service: q.services.first().cloned().unwrap_or_default(),
                stream: "stdout".into(),
                time,
                log: format!("line {i}\n"),
            });
        }
        if q.follow {
            // Until the client goes away.
            while !events.gone() {
                events.send(Event::Heartbeat);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            *self.followers_gone.lock().unwrap() += 1;
        }
        Ok(())
    }

    fn events(&self, project: &str, _q: EventsQuery, events: &Events) -> Result<(), ApiError> {
        events.send(Event::Container(ContainerEvent {
            time_nano: 1,
            project: project.into(),
            service: "web".into(),
            id: "abc".into(),
            action: "start".into(),
            attributes: BTreeMap::new(),
        }));
        Ok(())
    }

    fn exec(&self, _project: &str, req: ExecRequest) -> Result<Session, ApiError> {
        self.exec_session(req)
    }

    fn run(&self, req: RunRequest) -> Result<Session, ApiError> {
        let said = format!("{} runs {}", req.service, req.command.join(" "));
        Ok(Session {
            stdin: None,
            stdout: Some(Box::new(std::io::Cursor::new(said.into_bytes()))),
            stderr: None,
            control: Box::new(Ended(3)),
        })
    }

    /// `/big`: 64 MiB written a MiB at a time; `/broken`: a MiB, then an
    /// error; else a line naming the path.
    fn archive(&self, _project: &str, q: ArchiveQuery) -> Result<Archive, ApiError> {
        Ok(Box::new(move |out| match q.path.as_str() {
            "/big" | "/broken" => {
                let mib = vec![7u8; 1 << 20];
                for _ in 0..if q.path == "/big" { 64 } else { 1 } {
                    out.write_all(&mib)?;
                }
                match q.path.as_str() {
                    "/big" => Ok(()),
                    _ => Err(std::io::Error::other("the disk went away")),
                }
            }
            path => out.write_all(format!("tar of {path}").as_bytes()),
        }))
    }

    /// Counts the bytes as they come.
    fn extract(
        &self,
        project: &str,
        q: ArchiveQuery,
        tar: &mut dyn std::io::Read,
    ) -> Result<Copied, ApiError> {
        let n = std::io::copy(tar, &mut std::io::sink())
            .map_err(|e| ApiError::bad_request(format!("cannot read the archive: {e}")))?;
        Ok(Copied {
            files: n as usize,
            containers: vec![format!("{project}-{}-{}", q.service, q.index)],
        })
    }

    fn top(&self, project: &str, services: &[String]) -> Result<Vec<Top>, ApiError> {
        Ok(vec![Top {
            name: format!("{project}-{}-1", services.first().map_or("web", |s| s)),
            processes: vec![TopProcess {
                uid: "root".into(),
                pid: 42,
                ppid: 41,
                c: 0,
                stime: "10:00".into(),
                tty: "?".into(),
                time: "00:00:01".into(),
                cmd: "httpd -f".into(),
            }],
        }])
    }

    fn images(&self, project: &str, _services: &[String]) -> Result<Vec<ImageSummary>, ApiError> {
        Ok(vec![ImageSummary {
            container: format!("{project}-web-1"),
            image: "local/busybox:1".into(),
            id: "sha256:abc".into(),
            size: 1_000_000,
        }])
    }

    fn stats(
        &self,
        project: &str,
        _services: &[String],
        all: bool,
    ) -> Result<Vec<Stats>, ApiError> {
        Ok(vec![Stats {
            id: "abc".into(),
            name: format!("{project}-web-1"),
            running: !all,
            ..Stats::default()
        }])
    }
}

impl Fake {
    fn exec_session(&self, req: ExecRequest) -> Result<Session, ApiError> {
        if req.service != "web" {
            return Err(ApiError {
                status: 409,
                message: format!("service `{}` is not running", req.service),
            });
        }
        let (r, w) = std::io::pipe().unwrap();
        let (send, signal) = std::sync::mpsc::channel();
        Ok(Session {
            stdin: Some(Box::new(w)),
            stdout: Some(Box::new(r)),
            stderr: None,
            control: Box::new(Cat {
                told: self.told.clone(),
                signal: Mutex::new(signal),
                send: Mutex::new(send),
            }),
        })
    }
}

struct Server {
    dir: PathBuf,
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    engine: Arc<Fake>,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::start_with(name, HEADER_TIMEOUT)
    }

    fn start_with(name: &str, header_timeout: std::time::Duration) -> Server {
        let dir = std::env::temp_dir().join(format!("stack-api-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("engine.sock");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = bind(&socket, None).unwrap();
        let engine = Arc::new(Fake::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(serve_with(
            listener,
            engine.clone(),
            async {
                let _ = stopped.await;
            },
            header_timeout,
        ));
        Server {
            dir,
            socket,
            rt,
            stop: Some(stop),
            engine,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// A raw request: status and body.
    fn raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `$ref: "#/components/..."` resolved in the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut at = doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            resolve(doc, at)
        }
        None => v,
    }
}

/// Every field the schema requires is in the value, recursively through
/// arrays and referenced objects.
fn check(doc: &Value, schema: &Value, value: &serde_json::Value, at: &str) {
    let schema = resolve(doc, schema);
    match schema["type"].as_str() {
        Some("array") => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{at}: not an array"));
            assert!(!items.is_empty(), "{at}: the fake answers something");
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Some("object") => {
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            for field in schema["required"].as_sequence().into_iter().flatten() {
                let f = field.as_str().unwrap();
                assert!(
                    obj.contains_key(f),
                    "{at}: `{f}` is required by the document"
                );
            }
            if let Some(props) = schema["properties"].as_mapping() {
                for key in obj.keys() {
                    assert!(
                        props.contains_key(key.as_str()),
                        "{at}: `{key}` is not in the document"
                    );
                }
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_and_the_server_agree() {
    let doc = openapi();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in ops.as_mapping().unwrap() {
            documented.push((
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_string(),
            ));
        }
    }
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served, "schemas/openapi.yaml and ROUTES differ");

    // Each GET answers what the document says it does.
    let s = Server::start("doc");
    for (method, path) in &documented {
        if method != "GET" || path == "/_ping" {
            continue;
        }
        let ok = resolve(
            &doc,
            &doc["paths"][path.as_str()]["get"]["responses"]["200"],
        );
        let Some(schema) = ok["content"].get("application/json").map(|c| &c["schema"]) else {
            continue; // a stream of events: below
        };
        let (status, body) = s.raw("GET", &path.replace("{project}", "shop"), "");
        assert_eq!(status, 200, "{path}: {body}");
        check(&doc, schema, &serde_json::from_str(&body).unwrap(), path);
    }
    // And the events of a stream.
    let (status, body) = s.raw(
        "POST",
        "/v1/projects/shop/up",
        r#"{"project":{"name":"shop","services":{}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 3, "{body}");
    let (status, body) = s.raw("GET", "/v1/projects/shop/logs?tail=1&service=web", "");
    assert_eq!(status, 200, "{body}");
    for l in body.lines().filter(|l| l.starts_with('{')) {
        check(
            &doc,
            &doc["components"]["schemas"]["Event"],
            &serde_json::from_str(l).unwrap(),
            "log event",
        );
    }
    for l in lines {
        check(
            &doc,
            &doc["components"]["schemas"]["Event"],
            &serde_json::from_str(l).unwrap(),
            "event",
        );
    }
    // Errors answer an ErrorBody.
    let (status, body) = s.raw("GET", "/v1/projects/nope/containers", "");
    assert_eq!(status, 400);
    check(
        &doc,
        &doc["components"]["schemas"]["ErrorBody"],
        &serde_json::from_str(&body).unwrap(),
        "error",
    );
}

#[test]
fn the_client_reads_streams_and_errors() {
    let s = Server::start("client");
    let c = s.client();
    let v: Version = s.rt.block_on(c.get("/v1/version")).unwrap();
    assert_eq!(v.api_version, API_VERSION);
    let got: Vec<ContainerSummary> =
        s.rt.block_on(c.get("/v1/projects/shop/containers?all=1"))
            .unwrap();
    assert_eq!(got[0].state, "exited", "?all=1 reaches the engine");

    let mut req = UpRequest::default();
    req.project.name = "shop".into();
    req.services = vec!["web".into()];
    let mut seen = Vec::new();
    s.rt.block_on(c.post_stream("/v1/projects/shop/up", &req, |e| seen.push(e)))
        .unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        s.engine.ups.lock().unwrap()[0],
        req,
        "the request arrives whole"
    );

    req.services = vec!["broken".into()];
    let err =
        s.rt.block_on(c.post_stream("/v1/projects/shop/up", &req, |_| {}))
            .unwrap_err();
    assert_eq!(err.to_string(), "service `broken` failed");

    let err =
        s.rt.block_on(c.get::<Vec<ContainerSummary>>("/v1/projects/other/containers"))
            .unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 400, .. }),
        "{err:?}"
    );

    // Watch: the request arrives whole; unwatch needs no body.
    let mut w = WatchRequest::default();
    w.up.project.name = "shop".into();
    w.services = vec!["web".into()];
    w.files = vec!["/srv/shop/compose.yaml".into(), "/srv/shop/.env".into()];
    w.load.shell = vec![("TAG".into(), "1".into())];
    let mut seen = Vec::new();
    s.rt.block_on(c.post_stream("/v1/projects/shop/watch", &w, |e| seen.push(e)))
        .unwrap();
    assert_eq!(
        seen,
        [Event::Progress {
            object: "Service".into(),
            name: "web".into(),
            action: "Watching /srv/shop/compose.yaml,/srv/shop/.env".into()
        }]
    );
    let err =
        s.rt.block_on(c.post_stream("/v1/projects/other/watch", &w, |_| {}))
            .unwrap_err();
    assert!(
        err.to_string().contains("the body is for project `shop`"),
        "{err}"
    );
    let mut seen = Vec::new();
    s.rt.block_on(c.post_stream("/v1/projects/shop/unwatch", &(), |e| seen.push(e)))
        .unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");

    // Actions and logs.
    let mut seen = Vec::new();
    let mut act = ActionRequest::default();
    act.project.name = "shop".into();
    s.rt.block_on(c.post_stream("/v1/projects/shop/restart", &act, |e| seen.push(e)))
        .unwrap();
    assert_eq!(
        seen,
        [Event::Progress {
            object: "Container".into(),
            name: "shop-web-1".into(),
            action: "restart".into()
        }]
    );
    let mut lines = Vec::new();
    let q = LogsQuery {
        services: vec!["web".into()],
        tail: Some(3),
        follow: false,
        since: Some("2026-01-01T00:00:01.000000000Z".into()),
        until: Some("2026-01-01T00:00:02.000000000Z".into()),
    };
    s.rt.block_on(
        c.get_stream(&format!("/v1/projects/shop/logs?{}", q.to_query()), |e| {
            lines.push(e)
        }),
    )
    .unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        matches!(&lines[0], Event::Log { service, log, .. } if service == "web" && log == "line 1\n")
    );

    let none = Client::new(s.dir.join("nothing.sock"));
    let err =
        s.rt.block_on(none.get::<Version>("/v1/version"))
            .unwrap_err();
    assert!(matches!(err, ClientError::NoEngine { .. }), "{err:?}");
}

#[test]
fn bad_requests_get_clear_answers() {
    let s = Server::start("bad");
    let cases = [
        (
            "GET",
            "/v1/nothing",
            "",
            404,
            "no such endpoint: /v1/nothing",
        ),
        (
            "DELETE",
            "/v1/version",
            "",
            405,
            "DELETE is not allowed on /v1/version",
        ),
        (
            "POST",
            "/v1/projects/shop/up",
            "{",
            400,
            "invalid request body: EOF while parsing",
        ),
        (
            "POST",
            "/v1/projects/shop/up",
            r#"{"project":{"name":"shop"},"bogus":1}"#,
            400,
            "unknown field `bogus`",
        ),
        (
            "POST",
            "/v1/projects/shop/up",
            r#"{"project":{"name":"shop","services":{"web":{"ports":"x"}}}}"#,
            400,
            "invalid request body: invalid type",
        ),
        (
            "POST",
            "/v1/images/pull",
            r#"{"images":[{"reference":"web:1","tag":"x"}]}"#,
            400,
            "unknown field `tag`",
        ),
        (
            "POST",
            "/v1/projects/shop/down",
            r#"{"project":{"name":"other"}}"#,
            400,
            "the body is for project `other`, the path for `shop`",
        ),
        (
            "POST",
            "/v1/projects/shop/kill",
            r#"{"project":{"name":"shop"},"timeout":"soon"}"#,
            400,
            "invalid type: string \"soon\"",
        ),
        (
            "GET",
            "/v1/projects/shop/logs?tail=ten",
            "",
            400,
            "tail: `ten` is not a number",
        ),
        (
            "GET",
            "/v1/projects/shop/logs?since=yesterday",
            "",
            400,
            "since: `yesterday` is not an RFC 3339 UTC time",
        ),
    ];
    let cases = cases.into_iter().chain([
        (
            "POST",
            "/v1/projects/shop/exec",
            r#"{"service":"web","index":1,"command":["sh"]}"#,
            400,
            "exec needs its connection upgraded (Connection: Upgrade, Upgrade: stack-session)",
        ),
        (
            "POST",
            "/v1/projects/shop/run",
            r#"{"project":{"name":"shop"},"service":"web"}"#,
            400,
            "run needs its connection upgraded",
        ),
    ]);
    for (method, path, body, want, says) in cases {
        let (status, answer) = s.raw(method, path, body);
        assert_eq!(status, want, "{method} {path} {body}: {answer}");
        let msg = serde_json::from_str::<ErrorBody>(&answer).unwrap().message;
        assert!(msg.contains(says), "{method} {path} {body}: {msg}");
    }
    assert!(
        s.engine.ups.lock().unwrap().is_empty(),
        "nothing bad reached the engine"
    );
}

/// A follower whose client hangs up stops: no engine thread streams into
/// the void forever.
#[test]
fn a_follower_stops_when_its_client_goes() {
    use std::io::{Read, Write};
    let s = Server::start("follow");
    let mut c = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
    write!(
        c,
        "GET /v1/projects/shop/logs?follow=1&tail=1 HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    drop(c);
    let t = std::time::Instant::now();
    while *s.engine.followers_gone.lock().unwrap() == 0 {
        assert!(t.elapsed().as_secs() < 5, "the follower never noticed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn only_its_owner_may_connect() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start("perm");
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `exec`: the connection upgrades to a session; input comes back as the
/// fake's output, sizes and signals reach the process, the exit code ends
/// it. A process that cannot start is a plain error, no upgrade.
#[test]
fn exec_relays_a_session_over_the_upgraded_connection() {
    use stack_api::session::{frame, parse_i32, read_frame, size_payload, Kind};
    use tokio::io::AsyncWriteExt as _;
    let s = Server::start("exec");
    let c = s.client();
    let req = |service: &str| ExecRequest {
        service: service.into(),
        index: 1,
        command: vec!["cat".into()],
        interactive: true,
        ..ExecRequest::default()
    };
    let (out, code) = s.rt.block_on(async {
        let io = c
            .session("/v1/projects/shop/exec", &req("web"))
            .await
            .unwrap();
        let (mut rd, mut wr) = tokio::io::split(io);
        wr.write_all(&frame(Kind::Resize, &size_payload(33, 101)))
            .await
            .unwrap();
        wr.write_all(&frame(Kind::Stdin, b"hello ")).await.unwrap();
        wr.write_all(&frame(Kind::Stdin, b"there")).await.unwrap();
        wr.write_all(&frame(Kind::StdinEnd, &[])).await.unwrap();
        let mut out = Vec::new();
        while out.len() < 11 {
            let (kind, data) = read_frame(&mut rd).await.unwrap().unwrap();
            assert_eq!(kind, Kind::Stdout);
            out.extend(data);
        }
        wr.write_all(&frame(Kind::Signal, &15i32.to_be_bytes()))
            .await
            .unwrap();
        let (kind, data) = read_frame(&mut rd).await.unwrap().unwrap();
        assert_eq!(kind, Kind::Exit);
        // The exit code is the last frame: the engine closes then.
        assert_eq!(read_frame(&mut rd).await.unwrap(), None);
        (String::from_utf8(out).unwrap(), parse_i32(&data).unwrap())
    });
    assert_eq!((out.as_str(), code), ("hello there", 143));
    assert_eq!(
        *s.engine.told.lock().unwrap(),
        ["resize 33x101", "signal 15"]
    );
    let refused =
        s.rt.block_on(c.session("/v1/projects/shop/exec", &req("db")))
            .err()
            .unwrap();
    assert!(
        matches!(&refused, ClientError::Api { status: 409, message } if message.contains("`db` is not running")),
        "{refused:?}"
    );
}

/// `run` is a session too, its body checked against the path's project.
#[test]
fn run_is_a_session_for_the_projects_one_off() {
    use stack_api::session::{parse_i32, read_frame, Kind};
    let s = Server::start("run");
    let c = s.client();
    let req = |project: &str| RunRequest {
        project: stack_model::Project {
            name: project.into(),
            ..Default::default()
        },
        service: "tests".into(),
        command: vec!["make".into(), "check".into()],
        ..RunRequest::default()
    };
    let (out, code) = s.rt.block_on(async {
        let mut io = c
            .session("/v1/projects/shop/run", &req("shop"))
            .await
            .unwrap();
        let (kind, out) = read_frame(&mut io).await.unwrap().unwrap();
        assert_eq!(kind, Kind::Stdout);
        let (kind, code) = read_frame(&mut io).await.unwrap().unwrap();
        assert_eq!(kind, Kind::Exit);
        (String::from_utf8(out).unwrap(), parse_i32(&code).unwrap())
    });
    assert_eq!((out.as_str(), code), ("tests runs make check", 3));
    let refused =
        s.rt.block_on(c.session("/v1/projects/shop/run", &req("other")))
            .err()
            .unwrap();
    assert!(
        matches!(&refused, ClientError::Api { status: 400, message } if message.contains("the body is for project `other`")),
        "{refused:?}"
    );
}

/// `cp` travels as bytes both ways, streamed: a path with spaces and `%`
/// arrives whole, 64 MiB pass a chunk at a time, and an archive that
/// breaks off on the engine's side is an error for the client, never a
/// short archive taken for whole.
#[test]
fn archives_stream_both_ways() {
    use std::io::{Read as _, Write as _};
    let s = Server::start("archive");
    let c = s.client();
    let url = |path: &str| {
        let q = ArchiveQuery {
            service: "web".into(),
            index: 2,
            path: path.into(),
            ..ArchiveQuery::default()
        };
        format!("/v1/projects/shop/archive?{}", q.to_query())
    };
    // What a GET answers, read on a thread as it comes.
    let get = |path: &str| {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            pipe::Reader::new(rx).read_to_end(&mut got).map(|_| got)
        });
        let answer = s.rt.block_on(c.get_to(&url(path), tx));
        (answer, reader.join().unwrap())
    };
    let (answer, got) = get("/srv/a b%c");
    answer.unwrap();
    assert_eq!(got.unwrap(), b"tar of /srv/a b%c");
    let (answer, got) = get("/big");
    answer.unwrap();
    let got = got.unwrap();
    assert!(got.len() == 64 << 20 && got.iter().all(|b| *b == 7));
    let (answer, got) = get("/broken");
    assert!(
        matches!(answer, Err(ClientError::Transport(_))),
        "{answer:?}"
    );
    assert!(got.is_err());

    // PUT: a body written on a thread as it is sent.
    let put = |chunks: usize, whole: bool| {
        let (mut w, rx) = pipe::channel();
        let writer = std::thread::spawn(move || {
            for _ in 0..chunks {
                w.write_all(&[1u8; 1 << 20]).unwrap();
            }
            match whole {
                true => w.finish().unwrap(),
                false => w.fail(std::io::Error::other("the host file went away")),
            }
        });
        let done = s.rt.block_on(c.put_from::<Copied>(&url("/srv/x"), rx));
        writer.join().unwrap();
        done
    };
    assert_eq!(
        put(32, true).unwrap(),
        Copied {
            files: 32 << 20,
            containers: vec!["shop-web-2".into()]
        }
    );
    assert!(put(2, false).is_err());
    let (status, body) = s.raw("GET", "/v1/projects/shop/archive?service=web", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("path= is missing"), "{body}");
}

/// A client that never finishes its request's headers (a slow loris) is
/// cut off after the header timeout; one that does is answered.
#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let s = Server::start_with("loris", std::time::Duration::from_millis(300));
    let mut loris = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
    loris
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    loris
        .write_all(b"GET /_ping HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    // Still sending, a byte at a time, slower than the timeout allows.
    for b in b"x-slow: 1" {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if loris.write_all(&[*b]).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    // The server closes the connection: an end of file (or a reset), not
    // the read timeout, and no answer to a request never finished.
    match loris.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A whole request is answered as ever.
    let (status, body) = s.raw("GET", "/_ping", "");
    assert_eq!((status, body.as_str()), (200, "OK"));
}

/// A client that connects and sends nothing is cut off after the header
/// timeout; one whose body never arrives gets a 408 after the body
/// timeout (twice the header timeout); neither holds the server.
#[test]
fn silent_clients_and_bodies_that_never_arrive_are_cut_off() {
    use std::io::{Read, Write};
    let s = Server::start_with("silent", std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let mut silent = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    match silent.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut slow = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    slow.write_all(
        b"POST /v1/projects/p/up HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("did not arrive"),
        "{answer}"
    );
    let (status, body) = s.raw("GET", "/_ping", "");
    assert_eq!((status, body.as_str()), (200, "OK"));
}

/// The hostility table through raw bodies, as any client of the socket may
/// send them: every name that would become a path is refused with a 400
/// naming it, before the engine sees the request.
#[test]
fn hostile_names_in_raw_bodies_are_refused() {
    let s = Server::start("hostile");
    let long = "x".repeat(300);
    let cases = [
        (
            r#"{"project":{"name":"shop","services":{"../../../escape-svc":{}}}}"#,
            "invalid service name `../../../escape-svc`",
        ),
        (
            r#"{"project":{"name":"shop","services":{"..":{}}}}"#,
            "invalid service name `..`",
        ),
        (
            r#"{"project":{"name":"shop","services":{"-x":{}}}}"#,
            "invalid service name `-x`",
        ),
        (
            r#"{"project":{"name":"shop","services":{"web":{"configs":[{"source":"/tmp/x/file"}]}},"configs":{"/tmp/x/file":{"content":"x"}}}}"#,
            "invalid config name `/tmp/x/file`",
        ),
        (
            r#"{"project":{"name":"shop","services":{},"secrets":{"s":{"name":"../../../../escape","environment":"X"}}}}"#,
            "invalid secret name `../../../../escape`",
        ),
        (
            r#"{"project":{"name":"shop","services":{},"volumes":{"v1":{"name":"/tmp/x/vol"}}}}"#,
            "invalid volume name `/tmp/x/vol`",
        ),
        (
            r#"{"project":{"name":"shop","services":{},"volumes":{"v1":{"name":"../../x"}}}}"#,
            "invalid volume name `../../x`",
        ),
        (
            r#"{"project":{"name":"shop","services":{},"networks":{"a\u0000b":{}}}}"#,
            "invalid network name `a",
        ),
        (
            r#"{"project":{"name":"shop","services":{"web":{"container_name":"."}}}}"#,
            "invalid container name `.`",
        ),
        (
            r#"{"project":{"name":"../shop","services":{}}}"#,
            "invalid project name `../shop`",
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = s.raw("POST", "/v1/projects/shop/up", body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    let body = format!(r#"{{"project":{{"name":"shop","services":{{"{long}":{{}}}}}}}}"#);
    let (status, answer) = s.raw("POST", "/v1/projects/shop/up", &body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("longer than 255 bytes"), "{answer}");
    for path in [
        "/v1/projects/../containers",
        "/v1/projects/-x/containers",
        "/v1/projects/a%2Fb/containers",
    ] {
        let (status, answer) = s.raw("GET", path, "");
        assert_eq!(status, 404, "{path}: {answer}");
    }
    let run =
        r#"{"project":{"name":"shop","services":{"web":{}}},"service":"web","name":"../../c"}"#;
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
    write!(
        c,
        "POST /v1/projects/shop/run HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: stack-session\r\ncontent-length: {}\r\n\r\n{run}",
        run.len()
    )
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = c.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("invalid container name `../../c`"),
        "{answer}"
    );
}
