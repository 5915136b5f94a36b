//! Registries end to end, as root: Debian's `docker-registry` (distribution
//! 2.8) on 127.0.0.1 with a temp storage dir (anonymous, htpasswd basic auth,
//! and bearer tokens from a small token server here), fixture images made
//! from busybox-static with `umoci` and pushed with `skopeo`, then pulled,
//! run, pushed and saved by `stack`. Small HTTP servers here stand in for a
//! registry that redirects and for hostile ones.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use common::Env;
use sha2::Digest as _;

const TOOLS: &str =
    "apt-get install docker-registry skopeo umoci apache2-utils openssl busybox-static";

fn sh(dir: &Path, cmd: &[&str]) -> String {
    let o = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} ({TOOLS})", cmd[0]));
    assert!(o.status.success(), "{cmd:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn wait_for_port(port: u16) {
    common::wait_for(&format!("something listening on port {port}"), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A `docker-registry` process, killed on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    /// `auth`: the `auth:` section of the config, or "".
    fn start(dir: &Path, auth: &str) -> Registry {
        let dir = dir.join(format!("registry-{}", common::free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = common::free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", "config.yml"])
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("docker-registry: {e} ({TOOLS})"));
        wait_for_port(port);
        Registry { child, port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OCI layout with tag `v1`: busybox, then a layer that deletes a
/// directory and a file (whiteouts), then one with an opaque directory.
/// Its command prints what the whiteouts must hide. Tag `arm64` is the same
/// layers with an arm64 config, and `multi` an index of both.
fn fixture(dir: &Path) -> PathBuf {
    let layout = dir.join("oci");
    if layout.exists() {
        return layout;
    }
    let b = dir.join("bundle");
    let rootfs = b.join("rootfs");
    sh(dir, &["umoci", "init", "--layout", "oci"]);
    sh(dir, &["umoci", "new", "--image", "oci:v1"]);
    sh(dir, &["umoci", "unpack", "--image", "oci:v1", "bundle"]);
    for d in ["bin", "etc/gone", "opq"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(common::busybox(), rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "echo", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/gone/f"), "one\n").unwrap();
    std::fs::write(rootfs.join("etc/kept"), "kept\n").unwrap();
    std::fs::write(rootfs.join("opq/a"), "a\n").unwrap();
    sh(
        dir,
        &[
            "umoci",
            "repack",
            "--refresh-bundle",
            "--image",
            "oci:v1",
            "bundle",
        ],
    );
    std::fs::remove_dir_all(rootfs.join("etc/gone")).unwrap();
    std::fs::remove_file(rootfs.join("opq/a")).unwrap();
    std::fs::write(rootfs.join("opq/b"), "b\n").unwrap();
    std::fs::write(rootfs.join("hello"), "hi\n").unwrap();
    sh(dir, &["umoci", "repack", "--image", "oci:v1", "bundle"]);
    // umoci writes per-file whiteouts; the opaque directory is made by hand.
    let mut t = tar::Builder::new(Vec::new());
    for (path, data) in [("opq/.wh..wh..opq", ""), ("opq/c", "c\n")] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        t.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    std::fs::write(dir.join("opq.tar"), t.into_inner().unwrap()).unwrap();
    sh(
        dir,
        &["umoci", "raw", "add-layer", "--image", "oci:v1", "opq.tar"],
    );
    let config = |args: &[&str]| {
        let all = [&["umoci", "config", "--image", "oci:v1"], args].concat();
        sh(dir, &all)
    };
    config(&[
        "--config.cmd",
        "sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "cat /hello; ls /opq /etc",
        "--config.env",
        "PATH=/bin",
    ]);
    config(&["--architecture", "arm64", "--tag", "arm64"]);
    // An index of the two, as `docker buildx` pushes multi-platform images.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let find = |tag: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let entry = |m: serde_json::Value, arch: &str| {
        serde_json::json!({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
            "platform": {"os": "linux", "architecture": arch}})
    };
    let multi = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(find("arm64"), "arm64"), entry(find("v1"), "amd64")]})
    .to_string();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(multi.as_bytes()));
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), &multi).unwrap();
    let mut index = index;
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": multi.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    layout
}

/// What the fixture's command prints when the whiteouts worked.
const FIXTURE_OUTPUT: &str = "hi\n/etc:\nhostname\nhosts\nkept\nresolv.conf\n\n/opq:\nc\n";

fn skopeo_push(dir: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", fixture(dir).display());
    let dest = format!("docker://{dest}");
    let mut args = vec!["skopeo", "copy", "-q", "--dest-tls-verify=false"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&src, &dest]);
    sh(dir, &args);
}

fn skopeo_inspect(dir: &Path, what: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["skopeo", "inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(what);
    serde_json::from_str(&sh(dir, &args)).unwrap()
}

fn images_json(e: &Env) -> Vec<serde_json::Value> {
    e.out(&["image", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pull_run_push_and_save_with_a_real_registry() {
    let e = Env::new("registry", "anon");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    skopeo_push(&e.dir, "v1", &format!("{host}/test/bb:v1"), &[]);
    let image = format!("{host}/test/bb:v1");

    let out = e.out(&["image", "pull", &image]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(e.out(&["container", "run", "--rm", &image]), FIXTURE_OUTPUT);
    assert_eq!(e.count("layers"), 3);
    // Again: nothing to fetch.
    let out = e.out(&["image", "pull", &image]);
    assert!(out.contains("Status: Image is up to date"), "{out}");

    // Push under another name in the same registry: blobs are mounted, the
    // manifest is the same.
    let copy = format!("{host}/other/copy:v2");
    e.out(&["image", "tag", &image, &copy]);
    let o = e.stack(&["image", "push", &copy]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Mounted from test/bb"),
        "{o:?}"
    );
    let theirs = skopeo_inspect(&e.dir, &format!("docker://{copy}"), &[]);
    let ours = skopeo_inspect(&e.dir, &format!("docker://{image}"), &[]);
    assert_eq!(theirs["Digest"], ours["Digest"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(ours["Digest"].as_str().unwrap()));

    // A new image is uploaded blob by blob, and the registry serves it back.
    let rootfs = e.dir.join("rootfs.tar");
    let mut t = tar::Builder::new(Vec::new());
    t.append_path_with_name(common::busybox(), "bin/busybox")
        .unwrap();
    std::fs::write(&rootfs, t.into_inner().unwrap()).unwrap();
    let imported = format!("{host}/imported/x:1");
    e.out(&["image", "import", rootfs.to_str().unwrap(), &imported]);
    let o = e.stack(&["image", "push", &imported]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Pushed"),
        "{o:?}"
    );
    let pushed = skopeo_inspect(&e.dir, &format!("docker://{imported}"), &[]);
    assert_eq!(pushed["Layers"].as_array().unwrap().len(), 1);

    // Saved, the archive is what skopeo (docker load's format) reads, and
    // it loads back into an empty store and runs.
    let archive = e.dir.join("saved.tar");
    e.out(&["image", "save", &image, "-o", archive.to_str().unwrap()]);
    let saved = skopeo_inspect(
        &e.dir,
        &format!("docker-archive:{}:{image}", archive.display()),
        &[],
    );
    assert_eq!(saved["Layers"].as_array().unwrap().len(), 3);
    let other = Env::new("registry", "anon-load");
    assert_eq!(
        other.out(&["image", "load", "-i", archive.to_str().unwrap()]),
        format!("Loaded image: {image}\n")
    );
    assert_eq!(
        other.out(&["container", "run", "--rm", &image]),
        FIXTURE_OUTPUT
    );

    // rm then prune: nothing left behind.
    for name in [&image, &copy, &imported] {
        e.out(&["image", "rm", name]);
    }
    e.out(&["image", "prune", "-a"]);
    assert_eq!(
        (e.count("layers"), e.count("blobs/sha256"), e.count("tmp")),
        (0, 0, 0)
    );
}

#[test]
fn manifest_formats_compression_and_platforms() {
    let e = Env::new("registry", "formats");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    let layout = fixture(&e.dir);
    // Docker schema 2 with gzip layers, OCI with zstd layers, an OCI index.
    skopeo_push(
        &e.dir,
        "v1",
        &format!("{host}/fmt/docker:v1"),
        &["--format", "v2s2"],
    );
    sh(
        &e.dir,
        &[
            "skopeo",
            "copy",
            "-q",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &format!("oci:{}:v1", layout.display()),
            "oci:zoci:v1",
        ],
    );
    sh(
        &e.dir,
        &[
            "skopeo",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "oci:zoci:v1",
            &format!("docker://{host}/fmt/zstd:v1"),
        ],
    );
    skopeo_push(&e.dir, "multi", &format!("{host}/fmt/multi:v1"), &["--all"]);
    let raw = sh(
        &e.dir,
        &[
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/fmt/zstd:v1"),
        ],
    );
    assert!(raw.contains("tar+zstd"), "{raw}");

    for repo in ["docker", "zstd"] {
        let image = format!("{host}/fmt/{repo}:v1");
        e.out(&["image", "pull", &image]);
        assert_eq!(
            e.out(&["container", "run", "--rm", &image]),
            FIXTURE_OUTPUT,
            "{repo}"
        );
    }
    // gzip and zstd blobs unpack to the same layers: stored once.
    assert_eq!(e.count("layers"), 3);

    // From an index: this host's platform by default, another on request.
    let multi = format!("{host}/fmt/multi:v1");
    e.out(&["image", "pull", &multi]);
    let arm = format!("{host}/fmt/multi-arm:v1");
    e.out(&["image", "pull", "--platform", "linux/arm64", &multi]);
    e.out(&["image", "tag", &multi, &arm]);
    let inspect = |r: &str| -> serde_json::Value {
        serde_json::from_str(&e.out(&["image", "inspect", r])).unwrap()
    };
    assert_eq!(inspect(&arm)["platform"], "linux/arm64");
    assert_eq!(
        inspect(&format!("{host}/fmt/docker:v1"))["platform"],
        "linux/amd64"
    );
    let err = e.fails(&["image", "pull", "--platform", "linux/s390x", &multi]);
    assert!(
        err.contains("no image for linux/s390x (there are: linux/arm64, linux/amd64)"),
        "{err}"
    );

    // Two images sharing every layer: ls shows it.
    let ls = images_json(&e);
    let row = ls
        .iter()
        .find(|r| r["Repository"] == format!("{host}/fmt/multi-arm"))
        .unwrap();
    assert_eq!(row["SharedSize"], row["Size"]);
    assert_eq!(row["UniqueSize"], 0);
    assert_eq!(e.count("layers"), 3);

    // Two `stack` processes pulling the same new image at once: both
    // succeed, each blob is stored once, nothing is left in tmp.
    skopeo_push(&e.dir, "v1", &format!("{host}/fmt/again:v1"), &[]);
    let fresh = Env::new("registry", "formats-parallel");
    let again = format!("{host}/fmt/again:v1");
    let children: Vec<_> = (0..2)
        .map(|_| {
            fresh
                .command(&["image", "pull", &again])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    // 3 layers, config, manifest.
    assert_eq!(
        (
            fresh.count("blobs/sha256"),
            fresh.count("layers"),
            fresh.count("tmp")
        ),
        (5, 3, 0)
    );
}

/// A tiny HTTP/1.1 server: one request per connection.
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn query(&self, name: &str) -> Vec<String> {
        let q = self.path.split_once('?').map_or("", |(_, q)| q);
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn serve(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("").to_string(),
                );
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let req = Req {
                    method,
                    path,
                    headers,
                };
                let len: usize = req
                    .header("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let _ = r.by_ref().take(len as u64).read_to_end(&mut Vec::new());
                let resp = handler(&req);
                let mut conn = conn;
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    resp.status,
                    resp.body.len()
                );
                for (k, v) in &resp.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                if req.method != "HEAD" {
                    let _ = conn.write_all(&resp.body);
                }
            });
        }
    });
    port
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A token server as Docker Hub's works: Basic credentials in, a JWT out
/// (RS256, the certificate in `x5c`), granting the scopes asked for to
/// `user:pass` and nothing to anyone else.
fn token_server(dir: &Path) -> (u16, PathBuf) {
    sh(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=stack-test-token",
        ],
    );
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let dir = dir.to_path_buf();
    let key = dir.join("key.pem");
    let port = serve(move |req| {
        let user = match req.header("authorization") {
            None => None,
            Some(a)
                if a == format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("user:pass")
                ) =>
            {
                Some("user")
            }
            Some(_) => {
                return Resp {
                    status: 401,
                    headers: vec![],
                    body: b"{\"details\":\"bad credentials\"}".to_vec(),
                }
            }
        };
        let access: Vec<serde_json::Value> = if user.is_some() {
            req.query("scope")
                .iter()
                .filter_map(|s| {
                    let (rest, actions) = s.rsplit_once(':')?;
                    let (kind, name) = rest.split_once(':')?;
                    Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                })
                .collect()
        } else {
            Vec::new()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der_b64]});
        let claims = serde_json::json!({"iss": "stack-test-issuer", "sub": user.unwrap_or(""), "aud": "stack-test-registry",
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", req.path.len()), "access": access});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        openssl
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let sig = openssl.wait_with_output().unwrap().stdout;
        let token = format!("{signing_input}.{}", b64url(&sig));
        Resp {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::json!({"token": token, "expires_in": 300})
                .to_string()
                .into_bytes(),
        }
    });
    (port, dir.join("cert.pem"))
}

/// A registry with this `auth:` section and the fixture in it; then pull
/// refused, login (a wrong password refused, nothing stored),
/// pull and push, then logout.
fn login_flow(e: &mut Env, auth: &str) {
    let reg = Registry::start(&e.dir, auth);
    let host = &reg.host();
    skopeo_push(
        &e.dir,
        "v1",
        &format!("{host}/private/bb:v1"),
        &["--dest-creds", "user:pass"],
    );
    let image = format!("{host}/private/bb:v1");
    let err = e.fails(&["image", "pull", &image]);
    assert!(
        err.contains("authentication required") && err.contains("stack login"),
        "{err}"
    );
    let auth_file = e.dir.join("auth.json");
    e.vars
        .push(("STACK_AUTH_FILE".into(), auth_file.to_str().unwrap().into()));
    e.vars.push((
        "DOCKER_CONFIG".into(),
        e.dir.join("docker").to_str().unwrap().into(),
    ));
    let login = |password: &str| {
        let mut c = e.command(&["login", host, "-u", "user", "--password-stdin"]);
        common::with_input(&mut c, password)
    };
    let o = login("wrong\n");
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot log in"),
        "{o:?}"
    );
    assert!(!auth_file.exists());
    let o = login("pass\n");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Login Succeeded\n",
        "{o:?}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    e.out(&["image", "pull", &image]);
    assert_eq!(e.out(&["container", "run", "--rm", &image]), FIXTURE_OUTPUT);
    let mine = format!("{host}/private/mine:v1");
    e.out(&["image", "tag", &image, &mine]);
    e.out(&["image", "push", &mine]);
    assert_eq!(
        skopeo_inspect(
            &e.dir,
            &format!("docker://{mine}"),
            &["--creds", "user:pass"]
        )["Layers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        e.out(&["logout", host]),
        format!("Removing login credentials for {host}\n")
    );
    e.out(&["image", "rm", &image, &mine]);
    let err = e.fails(&["image", "pull", &image]);
    assert!(err.contains("authentication required"), "{err}");
    // Docker's own config.json is read too: its auths, and its credential helpers.
    std::fs::create_dir_all(e.dir.join("docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("user:pass");
    std::fs::write(
        e.dir.join("docker/config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    e.out(&["image", "pull", &image]);
    e.out(&["image", "rm", &image]);
    let bin = e.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-stacktest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = {host} ] && echo '{{\"ServerURL\":\"{host}\",\"Username\":\"user\",\"Secret\":\"pass\"}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        e.dir.join("docker/config.json"),
        serde_json::json!({"credHelpers": {host: "stacktest"}}).to_string(),
    )
    .unwrap();
    e.vars.push((
        "PATH".into(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    ));
    e.out(&["image", "pull", &image]);
}

/// The docker CLI on this machine, on `e`'s Docker API socket with a
/// config directory of its own.
fn docker(e: &Env, args: &[&str], input: Option<&str>) -> std::process::Output {
    let bin = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a docker CLI (apt-get install docker.io)");
    let mut c = Command::new(bin);
    c.args(args)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", e.root().join("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", e.dir.join("docker-cli"));
    match input {
        Some(i) => common::with_input(&mut c, i),
        None => c.output().unwrap(),
    }
}

/// Pulls through the Docker API: `docker pull` with its progress, `docker
/// run` of an image that is not here (the CLI pulls it), `docker login`
/// checked against the registry (`POST /auth`), and a private image pulled
/// with the credentials the CLI sends (`X-Registry-Auth`), not the engine's.
#[test]
fn the_docker_api_pulls_and_logs_in() {
    let e = Env::new("registry", "docker-api");
    let htpasswd = sh(&e.dir, &["htpasswd", "-Bbn", "user", "pass"]);
    std::fs::write(e.dir.join("htpasswd"), htpasswd).unwrap();
    let open = Registry::start(&e.dir, "");
    let private = Registry::start(
        &e.dir,
        &format!(
            "auth:\n  htpasswd:\n    realm: stack-test\n    path: {}\n",
            e.dir.join("htpasswd").display()
        ),
    );
    skopeo_push(&e.dir, "v1", &format!("{}/test/bb:v1", open.host()), &[]);
    skopeo_push(&e.dir, "v1", &format!("{}/test/bb:v2", open.host()), &[]);
    let secret = format!("{}/private/bb:v1", private.host());
    skopeo_push(&e.dir, "v1", &secret, &["--dest-creds", "user:pass"]);
    e.out(&["ls"]);
    common::wait_for("the Docker API socket", || {
        e.root().join("docker.sock").exists()
    });
    let ok = |args: &[&str], input: Option<&str>| {
        let o = docker(&e, args, input);
        assert!(o.status.success(), "docker {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = ok(&["pull", &format!("{}/test/bb:v1", open.host())], None);
    assert!(out.contains("Downloaded newer image"), "{out}");
    let out = ok(
        &["run", "--rm", &format!("{}/test/bb:v2", open.host())],
        None,
    );
    assert_eq!(out, FIXTURE_OUTPUT);

    let o = docker(&e, &["pull", &secret], None);
    assert!(!o.status.success(), "{o:?}");
    let o = docker(
        &e,
        &["login", &private.host(), "-u", "user", "--password-stdin"],
        Some("wrong\n"),
    );
    assert!(!o.status.success(), "{o:?}");
    let out = ok(
        &["login", &private.host(), "-u", "user", "--password-stdin"],
        Some("pass\n"),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    // The engine keeps no credentials: the CLI's go with each pull.
    let err = e.fails(&["image", "pull", &secret]);
    assert!(err.contains("authentication required"), "{err}");
    ok(&["pull", &secret], None);
    assert_eq!(ok(&["run", "--rm", &secret], None), FIXTURE_OUTPUT);
}

#[test]
fn basic_auth_login_pull_push_logout() {
    let mut e = Env::new("registry", "basic");
    let htpasswd = sh(&e.dir, &["htpasswd", "-Bbn", "user", "pass"]);
    std::fs::write(e.dir.join("htpasswd"), htpasswd).unwrap();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: stack-test\n    path: {}\n",
        e.dir.join("htpasswd").display()
    );
    login_flow(&mut e, &auth);
}

#[test]
fn bearer_token_login_pull_push_logout() {
    let mut e = Env::new("registry", "bearer");
    let (token_port, cert) = token_server(&e.dir);
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: stack-test-registry\n    issuer: stack-test-issuer\n    rootcertbundle: {}\n",
        cert.display()
    );
    login_flow(&mut e, &auth);
}

#[test]
fn stack_pull_fetches_every_image_of_the_stack() {
    let e = Env::new("registry", "stack-pull");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    skopeo_push(&e.dir, "v1", &format!("{host}/shop/web:1"), &[]);
    skopeo_push(
        &e.dir,
        "v1",
        &format!("{host}/shop/db:1"),
        &["--format", "v2s2"],
    );
    let project = e.dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {host}/shop/web:1\n    depends_on: [db]\n  db:\n    image: {host}/shop/db:1\n  \
             worker:\n    image: {host}/shop/web:1\n  built:\n    build: .\n    image: {host}/shop/not-pushed:1\n"
        ),
    )
    .unwrap();
    let dir = project.to_str().unwrap();
    let o = e.stack(&["--project-directory", dir, "pull"]);
    assert!(o.status.success(), "{o:?}");
    // Only a warning for the image that is built, not pulled.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: cannot pull") && err.contains("not-pushed"),
        "{err}"
    );
    let names: Vec<String> = images_json(&e)
        .iter()
        .map(|r| r["Repository"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&format!("{host}/shop/web")) && names.contains(&format!("{host}/shop/db"))
    );
    // A missing image that is not built is an error.
    std::fs::write(
        project.join("compose.yaml"),
        format!("services:\n  x:\n    image: {host}/shop/missing:1\n"),
    )
    .unwrap();
    let err = e.fails(&["--project-directory", dir, "pull"]);
    assert!(
        err.contains("cannot pull") && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );
    assert!(e
        .stack(&["--project-directory", dir, "pull", "--ignore-pull-failures"])
        .status
        .success());
}

#[test]
fn redirects_are_followed() {
    let e = Env::new("registry", "redirect");
    let reg = Registry::start(&e.dir, "");
    skopeo_push(&e.dir, "v1", &format!("{}/test/bb:v1", reg.host()), &[]);
    // A front that sends every request on to the registry, as registries
    // send blob downloads to their storage.
    let target = reg.port;
    let front = serve(move |req| Resp {
        status: 307,
        headers: vec![(
            "Location".into(),
            format!("http://127.0.0.1:{target}{}", req.path),
        )],
        body: Vec::new(),
    });
    let image = format!("127.0.0.1:{front}/test/bb:v1");
    e.out(&["image", "pull", &image]);
    assert_eq!(e.out(&["container", "run", "--rm", &image]), FIXTURE_OUTPUT);
}

/// A registry serving whatever blobs it is given, under whatever digests.
fn fake_registry(blobs: Vec<(String, Vec<u8>)>, manifest: Vec<u8>) -> u16 {
    flaky_registry(blobs, manifest, 0)
}

/// The same, answering the first `failures` blob requests with 503.
fn flaky_registry(blobs: Vec<(String, Vec<u8>)>, manifest: Vec<u8>, failures: usize) -> u16 {
    let failed = std::sync::atomic::AtomicUsize::new(0);
    serve(move |req| {
        let path = req.path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Resp {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            };
        }
        if path.contains("/manifests/") {
            return Resp {
                status: 200,
                headers: vec![(
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                body: manifest.clone(),
            };
        }
        if failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < failures {
            return Resp {
                status: 503,
                headers: vec![],
                body: Vec::new(),
            };
        }
        match blobs.iter().find(|(d, _)| path.ends_with(d.as_str())) {
            Some((_, b)) => Resp {
                status: 200,
                headers: vec![],
                body: b.clone(),
            },
            None => Resp {
                status: 404,
                headers: vec![],
                body: Vec::new(),
            },
        }
    })
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

/// (blobs, manifest) of a one-layer image whose layer is `layer`, served as
/// `served` (the same bytes, or tampered ones).
fn one_layer_image(layer: &[u8], served: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}})
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": layer.len()}]})
    .to_string()
    .into_bytes();
    (
        vec![(digest(&config), config), (digest(layer), served.to_vec())],
        manifest,
    )
}

fn tar_of(path: &str) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(5);
    // Raw, so that hostile paths go in as they are.
    h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    t.append(&h, &b"evil\n"[..]).unwrap();
    t.into_inner().unwrap()
}

#[test]
fn failures_worth_retrying_are_retried() {
    let e = Env::new("registry", "flaky");
    let layer = tar_of("etc/motd");
    let (blobs, manifest) = one_layer_image(&layer, &layer);
    // Three 503s: the fourth attempt gets it.
    let port = flaky_registry(blobs.clone(), manifest.clone(), 3);
    e.out(&["image", "pull", &format!("127.0.0.1:{port}/flaky/a:v1")]);
    // Past the retries, the registry's answer is the error.
    let layer = tar_of("etc/other");
    let (blobs, manifest) = one_layer_image(&layer, &layer);
    let port = flaky_registry(blobs, manifest, 100);
    let err = e.fails(&["image", "pull", &format!("127.0.0.1:{port}/flaky/b:v1")]);
    assert!(err.contains("503 Service Unavailable"), "{err}");
}

#[test]
fn hostile_registries_change_nothing() {
    let e = Env::new("registry", "hostile");
    // Content that is not what its digest says: refused after the retries.
    let good = tar_of("etc/motd");
    let mut tampered = good.clone();
    tampered[600] ^= 1;
    let (blobs, manifest) = one_layer_image(&good, &tampered);
    let port = fake_registry(blobs, manifest);
    let err = e.fails(&[
        "image",
        "pull",
        &format!("127.0.0.1:{port}/evil/tampered:v1"),
    ]);
    assert!(err.contains("does not match its digest"), "{err}");

    // A layer (with a true digest) that climbs out of its directory.
    let escape = tar_of("../../../../../../tmp/stack-escaped");
    let (blobs, manifest) = one_layer_image(&escape, &escape);
    let port = fake_registry(blobs, manifest);
    let err = e.fails(&["image", "pull", &format!("127.0.0.1:{port}/evil/escape:v1")]);
    assert!(
        err.contains(&format!("layer {}", digest(&escape))) && err.contains(".."),
        "{err}"
    );
    assert!(!Path::new("/tmp/stack-escaped").exists());

    // A manifest that is not what the digest asked for.
    let (blobs, manifest) = one_layer_image(&good, &good);
    let port = fake_registry(blobs, manifest);
    let wrong = digest(b"something else");
    let err = e.fails(&["image", "pull", &format!("127.0.0.1:{port}/evil/m@{wrong}")]);
    assert!(err.contains("does not match its digest"), "{err}");

    assert_eq!(e.out(&["image", "ls", "-q"]), "");
    assert_eq!((e.count("layers"), e.count("tmp")), (0, 0));
}

/// A project `app` whose image (FROM busybox, printing `made`) is built
/// here by `stack build`; its directory.
fn built_app(e: &Env, made: &str, compose: &str) -> String {
    common::busybox_image(e, "local/busybox:1");
    let app = e.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM local/busybox:1\nRUN echo {made} > /made\nCMD [\"cat\", \"/made\"]\n"),
    )
    .unwrap();
    std::fs::write(app.join("compose.yaml"), compose).unwrap();
    let d = app.display().to_string();
    e.out(&["--project-directory", &d, "build", "-q"]);
    d
}

/// `stack build` then `stack push`: a built image (its layers written by
/// the builder, uncompressed) goes to the registry and comes back whole
/// into another store.
#[test]
fn built_service_images_are_pushed_and_pulled_back() {
    let e = Env::new("registry", "built");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    let d = built_app(
        &e,
        "built",
        &format!("services:\n  app:\n    build: .\n    image: {host}/built/app:1\n"),
    );
    let pushed = e.out(&["--project-directory", &d, "push"]);
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");

    let other = Env::new("registry", "built-other");
    let pulled = other.out(&["image", "pull", &format!("{host}/built/app:1")]);
    assert_eq!(
        other.out(&["container", "run", "--rm", &format!("{host}/built/app:1")]),
        "built\n"
    );
    // config pins the image to the digest it was pulled by.
    let digest = pulled
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("{pulled}"))
        .to_string();
    let p = other.dir.join("p");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("compose.yaml"),
        format!("services:\n  app:\n    image: {host}/built/app:1\n"),
    )
    .unwrap();
    let pd = p.display().to_string();
    let locked = other.out(&["--project-directory", &pd, "config", "--lock-image-digests"]);
    assert!(
        locked.contains(&format!("image: {host}/built/app:1@{digest}")),
        "{locked}"
    );
}

/// `kube generate --push`: a service's built image is tagged for the
/// registry, pushed, and named by digest in the manifests; another store
/// pulls it by that digest and runs it.
#[test]
fn kube_generate_pushes_built_images_and_names_them_by_digest() {
    let e = Env::new("registry", "kube-push");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    let d = built_app(
        &e,
        "for the cluster",
        "name: kubedemo\nservices:\n  app:\n    build: .\n  cache:\n    image: local/busybox:1\n",
    );
    let o = e.stack(&[
        "--project-directory",
        &d,
        "kube",
        "generate",
        "--push",
        &host,
    ]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("service app: `build`"),
        "pushed, not warned: {err}"
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let prefix = format!("image: {host}/kubedemo-app@sha256:");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {out}"));
    let reference = line.trim_start().trim_start_matches("image: ").to_string();
    // The image that is not built is left as it is.
    assert!(out.contains("image: local/busybox:1"), "{out}");

    let other = Env::new("registry", "kube-pull");
    other.out(&["image", "pull", &reference]);
    assert_eq!(
        other.out(&["container", "run", "--rm", &reference]),
        "for the cluster\n"
    );
    // Without a build, --push says what to do.
    let fresh = Env::new("registry", "kube-unbuilt");
    let err = fresh.fails(&[
        "--project-directory",
        &d,
        "kube",
        "generate",
        "--push",
        &host,
    ]);
    assert!(err.contains("run `stack build app` first"), "{err}");
}

/// A GET of the registry's API (`Accept` OCI manifests): the body.
fn registry_get(host: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..at]).to_string();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    all[at + 4..].to_vec()
}

/// `stack publish`: the stack file (and env files, pinned images) as
/// compose's OCI artifact; what could leak is refused unless asked for.
#[test]
fn publish_puts_the_stack_files_in_the_registry_as_compose_does() {
    let e = Env::new("registry", "publish");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    std::fs::create_dir_all(e.dir.join("app")).unwrap();
    std::fs::write(e.dir.join("app/app.env"), "TOKEN=x\n").unwrap();
    let d = built_app(
        &e,
        "published",
        &format!(
            "services:\n  app:\n    build: .\n    image: {host}/pub/app:1\n    env_file: [app.env]\n"
        ),
    );
    let target = format!("{host}/pub/project:1");
    let err = e.fails(&["--project-directory", &d, "publish", &target]);
    assert!(err.contains("--with-env"), "{err}");
    // A file that includes another would go without it: refused.
    let inc = e.dir.join("inc");
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::write(
        inc.join("compose.yaml"),
        "include: [other.yaml]\nservices: {}\n",
    )
    .unwrap();
    std::fs::write(inc.join("other.yaml"), "services:\n  x:\n    image: a\n").unwrap();
    let err = e.fails(&[
        "--project-directory",
        inc.to_str().unwrap(),
        "publish",
        &target,
    ]);
    assert!(err.contains("includes or extends other files"), "{err}");
    // --app pushes the built image first: its digest can be pinned.
    let out = e.out(&[
        "--project-directory",
        &d,
        "publish",
        "--app",
        "--with-env",
        "--resolve-image-digests",
        &target,
    ]);
    let digest = out.trim().rsplit_once('@').unwrap().1.to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&registry_get(&host, "/v2/pub/project/manifests/1")).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.docker.compose.project"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let named: Vec<(String, String)> = layers
        .iter()
        .map(|l| {
            let a = &l["annotations"];
            let name = a["com.docker.compose.file"]
                .as_str()
                .or(a["com.docker.compose.envfile"].as_str())
                .unwrap();
            (
                l["mediaType"].as_str().unwrap().to_string(),
                name.to_string(),
            )
        })
        .collect();
    let file = "application/vnd.docker.compose.file+yaml".to_string();
    assert_eq!(
        named,
        [
            (file.clone(), "compose.yaml".to_string()),
            (file, "image-digests.yaml".to_string()),
            (
                "application/vnd.docker.compose.envfile".into(),
                "app.env".into()
            ),
        ]
    );
    let blob = |i: usize| {
        let digest = layers[i]["digest"].as_str().unwrap();
        String::from_utf8(registry_get(
            &host,
            &format!("/v2/pub/project/blobs/{digest}"),
        ))
        .unwrap()
    };
    assert_eq!(
        blob(0),
        std::fs::read_to_string(Path::new(&d).join("compose.yaml")).unwrap()
    );
    assert!(
        blob(1).contains(&format!("image: {host}/pub/app:1@sha256:")),
        "{}",
        blob(1)
    );
    assert_eq!(blob(2), "TOKEN=x\n");
    // The tag names what was published.
    let by_digest = registry_get(&host, &format!("/v2/pub/project/manifests/{digest}"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&by_digest).unwrap(),
        manifest
    );
    // OCI 1.0: the type is the config's media type.
    e.out(&[
        "--project-directory",
        &d,
        "publish",
        "--with-env",
        "--oci-version",
        "1.0",
        &format!("{host}/pub/project:old"),
    ]);
    let old: serde_json::Value =
        serde_json::from_slice(&registry_get(&host, "/v2/pub/project/manifests/old")).unwrap();
    assert_eq!(
        old["config"]["mediaType"],
        "application/vnd.docker.compose.config.empty.v1+json"
    );
    assert!(old.get("artifactType").is_none(), "{old}");
}

/// `build --provenance=mode=max` then `push`: an index of the image and an
/// attestation manifest whose in-toto statement names the image's manifest
/// and its base; the tag still pulls and runs.
#[test]
fn provenance_and_sbom_are_pushed_beside_the_image_as_buildkit_does() {
    let e = Env::new("registry", "provenance");
    let reg = Registry::start(&e.dir, "");
    let host = reg.host();
    let d = built_app(
        &e,
        "attested",
        &format!("services:\n  app:\n    build: .\n    image: {host}/prov/app:1\n"),
    );
    // A dpkg database in the image, for the SBOM to find.
    std::fs::write(
        Path::new(&d).join("Dockerfile"),
        "FROM local/busybox:1\nRUN busybox mkdir -p /var/lib/dpkg && printf 'Package: hello\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 2.10-3\\n' > /var/lib/dpkg/status && echo attested > /made\nCMD [\"cat\", \"/made\"]\n",
    )
    .unwrap();
    e.out(&[
        "--project-directory",
        &d,
        "build",
        "-q",
        "--provenance=mode=max",
        "--sbom",
        "--build-arg",
        "LEVEL=3",
    ]);
    e.out(&["--project-directory", &d, "push"]);
    let index: serde_json::Value =
        serde_json::from_slice(&registry_get(&host, "/v2/prov/app/manifests/1")).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let image_digest = manifests[0]["digest"].as_str().unwrap();
    assert_eq!(
        manifests[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        manifests[1]["annotations"]["vnd.docker.reference.digest"],
        image_digest
    );
    let attestation: serde_json::Value = serde_json::from_slice(&registry_get(
        &host,
        &format!(
            "/v2/prov/app/manifests/{}",
            manifests[1]["digest"].as_str().unwrap()
        ),
    ))
    .unwrap();
    let layer = &attestation["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
    let statement: serde_json::Value = serde_json::from_slice(&registry_get(
        &host,
        &format!("/v2/prov/app/blobs/{}", layer["digest"].as_str().unwrap()),
    ))
    .unwrap();
    assert_eq!(
        statement["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"]
            .as_str()
            .unwrap(),
        image_digest.trim_start_matches("sha256:")
    );
    assert!(
        statement["subject"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pkg:docker/{host}/prov/app:1?platform=linux%2F")),
        "{statement}"
    );
    assert!(
        statement["predicate"]["materials"][0]["uri"]
            .as_str()
            .unwrap()
            .starts_with("pkg:docker/local/busybox:1?"),
        "{statement}"
    );
    assert_eq!(
        statement["predicate"]["invocation"]["parameters"]["args"]["build-arg:LEVEL"],
        "3"
    );
    // The SBOM: the package dpkg says is installed, as SPDX.
    let layer = &attestation["layers"][1];
    assert_eq!(
        layer["annotations"]["in-toto.io/predicate-type"],
        "https://spdx.dev/Document"
    );
    let sbom: serde_json::Value = serde_json::from_slice(&registry_get(
        &host,
        &format!("/v2/prov/app/blobs/{}", layer["digest"].as_str().unwrap()),
    ))
    .unwrap();
    assert_eq!(sbom["predicate"]["spdxVersion"], "SPDX-2.3");
    let packages = sbom["predicate"]["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 1, "{sbom}");
    assert_eq!(packages[0]["name"], "hello");
    assert_eq!(
        packages[0]["externalRefs"][0]["referenceLocator"],
        "pkg:deb/unknown/hello@2.10-3?arch=amd64"
    );
    assert_eq!(sbom["subject"], statement["subject"]);
    // The index pulls as the image it holds.
    let other = Env::new("registry", "provenance-other");
    other.out(&["image", "pull", &format!("{host}/prov/app:1")]);
    assert_eq!(
        other.out(&["container", "run", "--rm", &format!("{host}/prov/app:1")]),
        "attested\n"
    );
}
