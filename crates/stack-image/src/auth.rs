//! Registry credentials and authentication challenges.
//!
//! Credentials come from `stack login` (our own file, Docker's format) and
//! from an existing Docker `config.json`: `auths` entries, and credential
//! helpers (`credHelpers`, `credsStore`) run as `docker-credential-NAME get`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

/// A `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',');
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Docker's `config.json`, the parts we read and write.
#[derive(Default, Serialize, Deserialize)]
pub struct AuthFile {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(
        default,
        rename = "credHelpers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub cred_helpers: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "credsStore",
        skip_serializing_if = "Option::is_none"
    )]
    pub creds_store: Option<String>,
    /// Whatever else the file holds, written back untouched.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("`{}`: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("credential helper `docker-credential-{helper}`: {why}")]
    Helper { helper: String, why: String },
}

/// The names a registry goes by in auth files: Docker Hub is stored under
/// its legacy index URL.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB || registry == DOCKER_HUB_API {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    }
}

/// The key `stack login` writes for a registry.
pub fn login_key(registry: &str) -> String {
    keys_for(registry).remove(0)
}

fn entry_credentials(e: &AuthEntry) -> Option<Credentials> {
    if let Some(a) = &e.auth {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials {
            username: u.into(),
            secret: p.into(),
        });
    }
    Some(Credentials {
        username: e.username.clone()?,
        secret: e.password.clone()?,
    })
}

pub fn read_file(path: &Path) -> Result<AuthFile, AuthError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| AuthError::File {
            path: path.into(),
            why: format!("not a credentials file: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
        Err(e) => Err(AuthError::File {
            path: path.into(),
            why: e.to_string(),
        }),
    }
}

/// Writes atomically with mode 0600: a half-written file never replaces a good one.
pub fn write_file(path: &Path, file: &AuthFile) -> Result<(), AuthError> {
    let err = |e: std::io::Error| AuthError::File {
        path: path.into(),
        why: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    stack_sys::write_atomic(
        path,
        &serde_json::to_vec_pretty(file).expect("serializable"),
    )
    .map_err(err)
}

/// Where credentials are looked for, in order: ours, then Docker's.
#[derive(Clone, Debug)]
pub struct AuthSources {
    pub ours: PathBuf,
    pub docker: Option<PathBuf>,
}

impl AuthSources {
    /// `$STACK_AUTH_FILE` or `~/.config/stack/auth.json`; `$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`.
    pub fn from_env() -> AuthSources {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/root".into());
        let ours = std::env::var_os("STACK_AUTH_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| home.join(".config"))
                    .join("stack/auth.json")
            });
        let docker = std::env::var_os("DOCKER_CONFIG")
            .map(|d| PathBuf::from(d).join("config.json"))
            .or_else(|| Some(home.join(".docker/config.json")));
        AuthSources { ours, docker }
    }

    /// The credentials for a registry, if any source has them.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        for path in std::iter::once(&self.ours).chain(self.docker.as_ref()) {
            let file = read_file(path)?;
            let keys = keys_for(registry);
            if let Some(h) = keys.iter().find_map(|k| file.cred_helpers.get(k)) {
                return helper_get(h, &keys[0]);
            }
            if let Some(c) = keys
                .iter()
                .find_map(|k| file.auths.get(k))
                .and_then(entry_credentials)
            {
                return Ok(Some(c));
            }
            if let Some(h) = &file.creds_store {
                if let Some(c) = helper_get(h, &keys[0])? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Every credential the sources hold, as a Docker `config.json` with
    /// `auths` only (what a container given the Docker API socket uses,
    /// compose's `use_api_socket`): the registries of the files' `auths`
    /// and of their credential helpers, each as `lookup` finds it. A
    /// `credsStore` lists no registries: what only it holds is left out.
    pub fn resolved(&self) -> Result<AuthFile, AuthError> {
        let mut registries = std::collections::BTreeSet::new();
        for path in std::iter::once(&self.ours).chain(self.docker.as_ref()) {
            let file = read_file(path)?;
            registries.extend(file.auths.keys().cloned());
            registries.extend(file.cred_helpers.keys().cloned());
        }
        let mut out = AuthFile::default();
        for key in registries {
            let registry = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches("/v1/")
                .to_string();
            if let Some(c) = self.lookup(&registry)? {
                let raw = format!("{}:{}", c.username, c.secret);
                out.auths.insert(
                    key,
                    AuthEntry {
                        auth: Some(base64::engine::general_purpose::STANDARD.encode(raw)),
                        ..AuthEntry::default()
                    },
                );
            }
        }
        Ok(out)
    }

    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), AuthError> {
        let mut file = read_file(&self.ours)?;
        let raw = format!("{}:{}", creds.username, creds.secret);
        file.auths.insert(
            login_key(registry),
            AuthEntry {
                auth: Some(base64::engine::general_purpose::STANDARD.encode(raw)),
                ..AuthEntry::default()
            },
        );
        write_file(&self.ours, &file)
    }

    /// Removes our entry; returns whether there was one.
    pub fn remove(&self, registry: &str) -> Result<bool, AuthError> {
        let mut file = read_file(&self.ours)?;
        let before = file.auths.len();
        for k in keys_for(registry) {
            file.auths.remove(&k);
        }
        if file.auths.len() == before {
            return Ok(false);
        }
        write_file(&self.ours, &file)?;
        Ok(true)
    }
}

/// `docker-credential-NAME get` with the server on stdin.
fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>, AuthError> {
    use std::process::{Command, Stdio};
    let err = |why: String| AuthError::Helper {
        helper: helper.into(),
        why,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(server.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Helpers say this when they have nothing for the server.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!("{} {}", out.status, stdout.trim())));
    }
    #[derive(Deserialize)]
    struct Reply {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let r: Reply =
        serde_json::from_str(&stdout).map_err(|e| err(format!("unreadable reply: {e}")))?;
    Ok(Some(Credentials {
        username: r.username,
        secret: r.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=http://x/t , scope="a:b:pull,push""#),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: None,
                scope: Some("a:b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn files_helpers_and_keys() {
        let dir = std::env::temp_dir().join(format!("stack-auth-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let docker = dir.join("docker.json");
        fs::write(
            &docker,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}, "r.example": {"username": "a", "password": "b"}}, "proxies": {"x": 1}}"#,
        )
        .unwrap();
        let src = AuthSources {
            ours: dir.join("ours/auth.json"),
            docker: Some(docker),
        };
        let c = |u: &str, p: &str| Credentials {
            username: u.into(),
            secret: p.into(),
        };
        assert_eq!(src.lookup("docker.io").unwrap(), Some(c("u", "p")));
        assert_eq!(src.lookup("r.example").unwrap(), Some(c("a", "b")));
        assert_eq!(src.lookup("other:5000").unwrap(), None);
        // Ours wins, and removing it falls back to Docker's.
        src.store("r.example", &c("me", "s3")).unwrap();
        assert_eq!(src.lookup("r.example").unwrap(), Some(c("me", "s3")));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&src.ours).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(src.remove("r.example").unwrap());
        assert!(!src.remove("r.example").unwrap());
        assert_eq!(src.lookup("r.example").unwrap(), Some(c("a", "b")));
        // A broken file is an error naming it, not "no credentials".
        fs::write(&src.ours, "{").unwrap();
        let e = src.lookup("r.example").unwrap_err().to_string();
        assert!(
            e.contains("auth.json") && e.contains("not a credentials file"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c("u", "p").basic_header(), "Basic dTpw");
    }
}
