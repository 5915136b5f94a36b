//! The typed client: one HTTP/1.1 connection per call to the engine's socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;

use crate::{ErrorBody, Event};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens on the socket: the engine is not running.
    #[error("cannot reach the engine at `{}`: {source}", socket.display())]
    NoEngine {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Transport(String),
    /// The engine refused or failed; its message is for users.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("the engine answered something unexpected: {0}")]
    BadAnswer(String),
}

const STOPPED: &str = "the engine stopped answering before the operation ended (see its log)";

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`, its JSON answer.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send("GET", path, None, None).await?;
        let bytes = body_bytes(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `POST path` with a JSON body whose answer is a stream of events:
    /// each goes to `on` as it comes; an `error` event is the call's error.
    pub async fn post_stream<B: serde::Serialize>(
        &self,
        path: &str,
        request: &B,
        on: impl FnMut(Event),
    ) -> Result<(), ClientError> {
        let json =
            serde_json::to_vec(request).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let resp = self.send("POST", path, Some(json), None).await?;
        read_events(resp, on).await
    }

    /// `GET path` whose answer is a stream of events (logs).
    pub async fn get_stream(&self, path: &str, on: impl FnMut(Event)) -> Result<(), ClientError> {
        let resp = self.send("GET", path, None, None).await?;
        read_events(resp, on).await
    }

    /// `GET path` whose answer's bytes (an archive) go to `to` as they
    /// come (a [`crate::pipe::Reader`] reads them), a bounded number at a
    /// time. An answer that breaks off is an error, for both.
    pub async fn get_to(
        &self,
        path: &str,
        to: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<(), ClientError> {
        let resp = self.send("GET", path, None, None).await?;
        crate::pipe::forward(resp.into_body(), to)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// `PUT path` with a body sent as it is made (`chunks`, from a
    /// [`crate::pipe::Writer`]: an archive), its JSON answer.
    pub async fn put_from<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        chunks: crate::pipe::Chunks,
    ) -> Result<T, ClientError> {
        let body = crate::pipe::ChunkBody::new(chunks);
        let closer = body.closer();
        let answer = async {
            let resp = self.send_body("PUT", path, body.boxed(), None).await?;
            body_bytes(resp).await
        }
        .await;
        // An engine that answered before it read all (an error) leaves
        // the writer nobody to send to.
        closer.close();
        serde_json::from_slice(&answer?).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `METHOD path` with an optional JSON body, its JSON answer (`null`
    /// for none): a plain call of a JSON API (Docker's).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let json = body.map(|b| b.to_string().into_bytes());
        let resp = self.send(method, path, json, None).await?;
        let bytes = body_bytes(resp).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `GET path` whose answer is JSON values one per line (Docker's
    /// events), each to `on` as it comes, until it says stop or the answer ends.
    pub async fn get_lines(
        &self,
        path: &str,
        mut on: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<(), ClientError> {
        let mut body = self.send("GET", path, None, None).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let v: serde_json::Value = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                if !on(v) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `GET path` whose answer's bytes go to `write` as they come.
    pub async fn get_bytes(
        &self,
        path: &str,
        mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut body = self.send("GET", path, None, None).await?.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                write(data).map_err(|e| ClientError::Transport(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// `POST path` with a JSON body, upgraded to a session (`exec`): the
    /// connection, to read and write frames on (`crate::session`).
    pub async fn session<B: serde::Serialize>(
        &self,
        path: &str,
        request: &B,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let json =
            serde_json::to_vec(request).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.upgrade(path, Some(json), crate::session::UPGRADE)
            .await
    }

    /// `POST path`, the connection hijacked as the Docker API's attach
    /// does (`Upgrade: tcp`): the container's streams on it.
    pub async fn hijack(
        &self,
        path: &str,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        self.upgrade(path, None, "tcp").await
    }

    async fn upgrade(
        &self,
        path: &str,
        body: Option<Vec<u8>>,
        protocol: &str,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let resp = self.send("POST", path, body, Some(protocol)).await?;
        if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            return Err(ClientError::BadAnswer(format!(
                "{} instead of a session",
                resp.status()
            )));
        }
        let io = hyper::upgrade::on(resp)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(TokioIo::new(io))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        upgrade: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let body = Full::new(Bytes::from(body.unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed();
        self.send_body(method, path, body, upgrade).await
    }

    async fn send_body(
        &self,
        method: &str,
        path: &str,
        body: BoxBody<Bytes, std::io::Error>,
        upgrade: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::NoEngine {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(conn.with_upgrades());
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "stack")
            .header("content-type", "application/json");
        if let Some(protocol) = upgrade {
            req = req
                .header("connection", "upgrade")
                .header("upgrade", protocol);
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status().is_success() || resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = body_bytes(resp).await?;
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).to_string());
        Err(ClientError::Api { status, message })
    }
}

async fn read_events(
    resp: Response<Incoming>,
    mut on: impl FnMut(Event),
) -> Result<(), ClientError> {
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ClientError::Transport(format!("{STOPPED}: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let event: Event =
                serde_json::from_slice(&line).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
            match event {
                Event::Done => return Ok(()),
                Event::Error { message } => {
                    return Err(ClientError::Api {
                        status: 500,
                        message,
                    })
                }
                Event::Heartbeat => {}
                other => on(other),
            }
        }
    }
    Err(ClientError::Transport(STOPPED.into()))
}

async fn body_bytes(resp: Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes())
}
