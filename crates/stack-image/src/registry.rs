//! A registry client on hyper: the Docker Registry HTTP API v2 / OCI
//! distribution. Anonymous, basic and bearer-token auth from the
//! `WWW-Authenticate` challenge; redirects (to blob storage) followed without
//! leaking credentials to another host; retries with back-off; `http://`
//! only for loopback and registries named in `STACK_INSECURE_REGISTRIES`.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};

use crate::auth::{parse_challenge, AuthSources, Challenge, Credentials};

pub type Body = BoxBody<Bytes, io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {why}")]
    Transport { url: String, why: String },
    #[error("{url}: {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        url: String,
        status: StatusCode,
        message: Option<String>,
    },
    #[error("{registry}: authentication required{}", if *.had_credentials { " (the stored credentials were refused)" } else { " (run `stack login` first)" })]
    Unauthorized {
        registry: String,
        had_credentials: bool,
    },
    #[error("{url}: {why}")]
    Protocol { url: String, why: String },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Store(#[from] crate::ImageError),
}

impl RegistryError {
    fn retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            RegistryError::Store(crate::ImageError::DigestMismatch { .. }) => true,
            _ => false,
        }
    }
}

/// What the client remembers about a registry host.
#[derive(Default)]
struct HostState {
    /// Decided once per host: plain HTTP (an insecure registry without TLS).
    plain_http: Option<bool>,
    /// Authorization headers by scope set.
    tokens: HashMap<String, String>,
}

pub struct Client {
    http: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    auth: AuthSources,
    insecure: Vec<String>,
    hosts: Mutex<HashMap<String, HostState>>,
    /// Credentials given for this client only (`stack login` checks them first).
    override_creds: Option<Credentials>,
}

/// Directories whose `<host>/*.crt` files are trusted as registry CAs:
/// `$STACK_CERTS_D` (colon-separated), else ours, Docker's and podman's.
fn certs_dirs() -> Vec<PathBuf> {
    match std::env::var("STACK_CERTS_D") {
        Ok(v) => v
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
        Err(_) => [
            "/etc/stack/certs.d",
            "/etc/docker/certs.d",
            "/etc/containers/certs.d",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect(),
    }
}

fn tls_config() -> rustls::ClientConfig {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    for dir in certs_dirs() {
        let Ok(hosts) = std::fs::read_dir(&dir) else {
            continue;
        };
        for host in hosts.flatten() {
            let Ok(files) = std::fs::read_dir(host.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.path().extension().is_some_and(|e| e == "crt") {
                    if let Ok(iter) = CertificateDer::pem_file_iter(f.path()) {
                        for c in iter.flatten() {
                            let _ = roots.add(c);
                        }
                    }
                }
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The host's platform as registries name it: `amd64`, `arm64`, …
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub fn full_body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A response whose body is yet to be read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub url: String,
    body: Incoming,
}

impl Reply {
    /// The whole body, refused beyond `limit` bytes.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, RegistryError> {
        let url = self.url.clone();
        let collected = http_body_util::Limited::new(self.body, limit)
            .collect()
            .await
            .map_err(|e| RegistryError::Transport {
                url,
                why: format!("reading the body: {e}"),
            })?;
        Ok(collected.to_bytes())
    }

    /// The next chunk of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(RegistryError::Transport {
                        url: self.url.clone(),
                        why: format!("reading the body: {e}"),
                    })
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Turns a non-success status into an error carrying the registry's message.
    pub async fn success(self) -> Result<Reply, RegistryError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let (url, status) = (self.url.clone(), self.status);
        let body = self.bytes(64 * 1024).await.unwrap_or_default();
        Err(RegistryError::Status {
            url,
            status,
            message: error_message(&body),
        })
    }
}

/// `{"errors":[{"code":…,"message":…}]}` as one line.
fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let msgs: Vec<String> = v
        .get("errors")?
        .as_array()?
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{code} {msg}").trim().to_string()
        })
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// A request as the client builds it; `body` is made again for a retry.
pub struct Call<'a> {
    pub method: Method,
    /// `/v2/…` on the host, or an absolute URL (an upload location).
    pub target: String,
    pub scopes: &'a [String],
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: Option<&'a (dyn Fn() -> Body + Send + Sync)>,
}

impl<'a> Call<'a> {
    pub fn get(target: String, scopes: &'a [String]) -> Call<'a> {
        Call {
            method: Method::GET,
            target,
            scopes,
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Client {
    pub fn new(auth: AuthSources) -> Client {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .build();
        let mut insecure: Vec<String> = std::env::var("STACK_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        insecure.sort();
        Client {
            http: HyperClient::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            auth,
            insecure,
            hosts: Mutex::new(HashMap::new()),
            override_creds: None,
        }
    }

    /// Uses these credentials instead of the stored ones.
    pub fn with_credentials(mut self, creds: Credentials) -> Client {
        self.override_creds = Some(creds);
        self
    }

    /// Loopback registries, and those the user lists, may speak plain HTTP.
    fn is_insecure(&self, host: &str) -> bool {
        let name = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        name == "localhost"
            || name.starts_with("127.")
            || name == "[::1]"
            || self.insecure.iter().any(|i| i == host || i == name)
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = &self.override_creds {
            return Ok(Some(c.clone()));
        }
        Ok(self.auth.lookup(registry)?)
    }

    /// Whether `host` speaks plain HTTP: unknown until its first answer.
    fn plain_http(&self, host: &str) -> Option<bool> {
        self.hosts
            .lock()
            .unwrap()
            .get(host)
            .and_then(|h| h.plain_http)
    }

    fn set_plain_http(&self, host: &str, plain: bool) {
        let mut hosts = self.hosts.lock().unwrap();
        hosts
            .entry(host.to_string())
            .or_default()
            .plain_http
            .get_or_insert(plain);
    }

    fn base_url(&self, host: &str) -> String {
        let plain = self.plain_http(host) == Some(true);
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    /// Sends one request, following redirects (GET and HEAD), answering an
    /// auth challenge once, and falling back to plain HTTP for an insecure host.
    pub async fn send(
        &self,
        registry: &str,
        host: &str,
        call: &Call<'_>,
    ) -> Result<Reply, RegistryError> {
        let scope_key = call.scopes.join(" ");
        let mut answered_challenge = false;
        loop {
            let mut url = if call.target.starts_with('/') {
                format!("{}{}", self.base_url(host), call.target)
            } else {
                call.target.clone()
            };
            let auth = self
                .hosts
                .lock()
                .unwrap()
                .get(host)
                .and_then(|h| h.tokens.get(&scope_key).cloned());
            let mut redirects = 0;
            let reply = loop {
                let same_host = Uri::try_from(&url)
                    .ok()
                    .and_then(|u| u.authority().map(|a| a.to_string()))
                    .as_deref()
                    == Some(host);
                let r = self
                    .raw(
                        &call.method,
                        &url,
                        if same_host { auth.as_deref() } else { None },
                        call,
                    )
                    .await;
                let r = match r {
                    Err(_)
                        if url.starts_with("https://")
                            && call.target.starts_with('/')
                            && self.is_insecure(host)
                            && self.plain_http(host).is_none() =>
                    {
                        // Not TLS: remember plain HTTP for this host and try again.
                        self.set_plain_http(host, true);
                        url = format!("{}{}", self.base_url(host), call.target);
                        continue;
                    }
                    r => r?,
                };
                if url.starts_with("https://") && same_host {
                    self.set_plain_http(host, false);
                }
                let follow = matches!(call.method, Method::GET | Method::HEAD)
                    && r.status.is_redirection()
                    && r.headers.contains_key(header::LOCATION);
                if !follow {
                    break r;
                }
                redirects += 1;
                if redirects > 10 {
                    return Err(RegistryError::Protocol {
                        url,
                        why: "more than 10 redirects".into(),
                    });
                }
                let loc = r.headers[header::LOCATION]
                    .to_str()
                    .unwrap_or_default()
                    .to_string();
                url = resolve_url(&url, &loc);
            };
            if reply.status != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            let creds = self.credentials(registry)?;
            if answered_challenge {
                return Err(RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    had_credentials: creds.is_some(),
                });
            }
            answered_challenge = true;
            let challenge = reply
                .headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_challenge);
            let authorization = match challenge {
                Some(Challenge::Basic) => match &creds {
                    Some(c) => c.basic_header(),
                    None => {
                        return Err(RegistryError::Unauthorized {
                            registry: registry.to_string(),
                            had_credentials: false,
                        })
                    }
                },
                Some(Challenge::Bearer { realm, service, .. }) => {
                    self.token(
                        registry,
                        &realm,
                        service.as_deref(),
                        call.scopes,
                        creds.as_ref(),
                    )
                    .await?
                }
                None => {
                    return Err(RegistryError::Protocol {
                        url: reply.url,
                        why: "401 without a challenge this client understands".into(),
                    })
                }
            };
            self.hosts
                .lock()
                .unwrap()
                .entry(host.to_string())
                .or_default()
                .tokens
                .insert(scope_key.clone(), authorization);
        }
    }

    async fn raw(
        &self,
        method: &Method,
        url: &str,
        auth: Option<&str>,
        call: &Call<'_>,
    ) -> Result<Reply, RegistryError> {
        let terr = |why: String| RegistryError::Transport {
            url: url.to_string(),
            why,
        };
        let mut req = Request::builder().method(method.clone()).uri(url).header(
            header::USER_AGENT,
            concat!("stack/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        for (k, v) in &call.headers {
            req = req.header(
                k,
                HeaderValue::from_str(v).map_err(|e| terr(e.to_string()))?,
            );
        }
        let body = call
            .body
            .map(|b| b())
            .unwrap_or_else(|| full_body(Bytes::new()));
        let req = req.body(body).map_err(|e| terr(e.to_string()))?;
        let resp: Response<Incoming> =
            tokio::time::timeout(Duration::from_secs(60), self.http.request(req))
                .await
                .map_err(|_| terr("no answer within 60 s".into()))?
                .map_err(|e| {
                    let mut why = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        why = format!("{why}: {s}");
                        src = s.source();
                    }
                    terr(why)
                })?;
        let (parts, body) = resp.into_parts();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            url: url.to_string(),
            body,
        })
    }

    /// A bearer token from the challenge's realm, with credentials if we have them.
    async fn token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in service
            .map(|s| ("service", s))
            .into_iter()
            .chain(scopes.iter().map(|s| ("scope", s.as_str())))
        {
            url.push(sep);
            url.push_str(&format!("{k}={}", percent_encode(v)));
            sep = '&';
        }
        let auth = creds.map(Credentials::basic_header);
        let call = Call::get(url.clone(), &[]);
        let reply = self.raw(&Method::GET, &url, auth.as_deref(), &call).await?;
        if reply.status == StatusCode::UNAUTHORIZED || reply.status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                had_credentials: creds.is_some(),
            });
        }
        let body = reply.success().await?.bytes(1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            url: url.clone(),
            why: format!("unreadable token: {e}"),
        })?;
        t.token
            .or(t.access_token)
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| RegistryError::Protocol {
                url,
                why: "the token answer has no token".into(),
            })
    }

    /// Checks the client's credentials against a registry (`GET /v2/`).
    pub async fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let host = if registry == crate::reference::DOCKER_HUB {
            crate::reference::DOCKER_HUB_API
        } else {
            registry
        };
        self.send(registry, host, &Call::get("/v2/".into(), &[]))
            .await?
            .success()
            .await
            .map(|_| ())
    }

    /// Runs `op` up to four times while it fails in a way worth retrying.
    pub async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.retryable() && attempt < 4 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

/// `loc` against `base` (absolute, host-relative or path-relative).
pub fn resolve_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    if loc.starts_with('/') {
        format!("{}{loc}", &base[..host_end])
    } else {
        let dir_end = base[..base.find('?').unwrap_or(base.len())]
            .rfind('/')
            .filter(|&i| i >= host_end)
            .map_or(host_end, |i| i);
        format!("{}/{loc}", &base[..dir_end])
    }
}

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            resolve_url("http://h:1/v2/a/blobs/x", "/v2/up?x=1"),
            "http://h:1/v2/up?x=1"
        );
        assert_eq!(
            resolve_url("http://h:1/v2/a/blobs/x", "https://s3/x"),
            "https://s3/x"
        );
        assert_eq!(
            resolve_url("http://h:1/v2/a/blobs/x?q=/b", "y"),
            "http://h:1/v2/a/blobs/y"
        );
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn registry_errors_read_as_one_line() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("MANIFEST_UNKNOWN manifest unknown")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn insecure_hosts() {
        std::env::remove_var("STACK_INSECURE_REGISTRIES");
        let c = Client::new(AuthSources {
            ours: "/nonexistent".into(),
            docker: None,
        });
        assert!(
            c.is_insecure("localhost:5000")
                && c.is_insecure("127.0.0.1:5000")
                && c.is_insecure("[::1]:5000")
        );
        assert!(!c.is_insecure("registry-1.docker.io") && !c.is_insecure("10.0.0.1:5000"));
    }
}
