//! Image builds from Dockerfiles, end to end (issue 22): `stack image
//! build` on a busybox base, its steps run in the embedded runtime; the
//! resulting files and config seen from a container of the image; the
//! cache reused, and left from the first changed step on; a failing step
//! named by its line, leaving no image; compose's `build:` through `up`.

mod common;

use std::path::Path;

use common::{busybox_image, in_project, Env};

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
FROM local/busybox:1 AS base
ARG GREETING=hi
ENV APP=/app
WORKDIR $APP
RUN echo "$GREETING from run" > run.txt && busybox rm /etc/passwd
COPY src/ ./src/
COPY --chown=1000:1000 --chmod=600 src/a.txt /owned.txt
RUN <<EOF
echo heredoc line > /here.txt
EOF
COPY . /ctx/
RUN busybox mkdir /out && echo a > /out/a
RUN echo b > /out/b

FROM base
COPY --from=base /app/run.txt /final.txt
COPY --from=base /out/ /o/
EXPOSE 8080
LABEL stage=final
CMD ["cat", "/final.txt"]
"#;

fn context(e: &Env) -> std::path::PathBuf {
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("src/a.txt"), "hello\n").unwrap();
    std::fs::write(ctx.join("src/b.txt"), "world\n").unwrap();
    std::fs::write(ctx.join("hidden.key"), "not for images\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.key\n").unwrap();
    ctx
}

/// An environment with the busybox image as `local/busybox:1`, and an
/// empty build context directory.
fn new_context(name: &str) -> (Env, std::path::PathBuf) {
    let e = Env::new("build", name);
    busybox_image(&e, "local/busybox:1");
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    (e, ctx)
}

/// `stack image build` of `ctx`: (stdout, stderr).
fn build(e: &Env, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["image", "build", "-t", "built:1"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let o = e.stack(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{args:?}: {err}");
    (String::from_utf8_lossy(&o.stdout).to_string(), err)
}

/// Whether the step titled `title` (the first that contains it) came from
/// the cache in a build's progress `out`.
fn cached(out: &str, title: &str) -> bool {
    let n = out
        .lines()
        .find(|l| l.contains(title))
        .unwrap_or_else(|| panic!("no step {title}: {out}"))
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    out.lines().any(|l| l == format!("{n} CACHED"))
}

/// Whether every RUN, COPY and WORKDIR step came from the cache.
fn all_cached(out: &str) -> bool {
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["] RUN ", "] COPY ", "] ADD ", "] WORKDIR "]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    !steps.is_empty() && steps.iter().all(|l| cached(out, l))
}

fn run(e: &Env, script: &str) -> String {
    e.out(&["container", "run", "--rm", "built:1", "sh", "-c", script])
}

#[test]
fn a_multi_stage_build_makes_the_image_and_its_cache_is_reused_until_a_change() {
    let e = Env::new("build", "multi");
    busybox_image(&e, "local/busybox:1");
    let ctx = context(&e);
    let (_, first) = build(&e, &ctx, &["--build-arg", "GREETING=hey"]);
    assert!(first.contains("RUN echo"), "{first}");
    assert!(!first.contains("CACHED"), "{first}");

    // The default command, from the last stage.
    assert_eq!(
        e.out(&["container", "run", "--rm", "built:1"]),
        "hey from run\n"
    );
    // Files each step made, with the owner and mode COPY was told.
    assert_eq!(
        run(&e, "cat /here.txt /app/src/a.txt /app/src/b.txt"),
        "heredoc line\nhello\nworld\n"
    );
    assert_eq!(
        run(&e, "busybox stat -c '%u:%g %a' /owned.txt"),
        "1000:1000 600\n"
    );
    // A file a RUN removed is gone (a whiteout in its layer).
    assert_eq!(
        run(&e, "test -e /etc/passwd && echo there || echo gone"),
        "gone\n"
    );
    // .dockerignore kept the key out of COPY . and the context's Dockerfile in.
    assert_eq!(run(&e, "busybox ls /ctx"), "Dockerfile\nsrc\n");
    assert_eq!(run(&e, "echo $APP; pwd"), "/app\n/app\n");
    // A directory whose entries came from two layers is copied whole.
    assert_eq!(run(&e, "cat /o/a /o/b"), "a\nb\n");

    let img: serde_json::Value =
        serde_json::from_str(&e.out(&["image", "inspect", "built:1"])).unwrap();
    let cfg = &img["config"];
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat", "/final.txt"]));
    assert_eq!(cfg["WorkingDir"], "/app");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert_eq!(cfg["Labels"]["stage"], "final");
    let id = img["id"].as_str().unwrap().to_string();

    // Nothing changed: every step from the cache, the same image.
    let (_, again) = build(&e, &ctx, &["--build-arg", "GREETING=hey"]);
    assert!(all_cached(&again), "{again}");
    let same: serde_json::Value =
        serde_json::from_str(&e.out(&["image", "inspect", "built:1"])).unwrap();
    assert_eq!(same["diff_ids"], img["diff_ids"]);
    let _ = id;

    // One copied file changed: the RUN before its COPY is reused, the
    // COPY and what follows run again.
    std::fs::write(ctx.join("src/b.txt"), "changed\n").unwrap();
    let (_, changed) = build(&e, &ctx, &["--build-arg", "GREETING=hey"]);
    assert!(cached(&changed, "RUN echo"), "{changed}");
    assert!(!cached(&changed, "COPY src/ ./src/"), "{changed}");
    assert_eq!(run(&e, "cat /app/src/b.txt"), "changed\n");

    // Another build argument: the RUN that sees it runs again.
    let (_, other) = build(&e, &ctx, &["--build-arg", "GREETING=hello"]);
    assert!(!cached(&other, "RUN echo"), "{other}");
    assert_eq!(
        e.out(&["container", "run", "--rm", "built:1"]),
        "hello from run\n"
    );
    // An image prune (the images the tag moved from go) leaves the build
    // cache whole; `builder prune` empties it.
    e.out(&["image", "prune"]);
    let (_, kept) = build(&e, &ctx, &["--build-arg", "GREETING=hello"]);
    assert!(all_cached(&kept), "{kept}");
    let du = e.out(&["builder", "du"]);
    assert!(!du.contains("Steps: 0\n"), "{du}");
    let pruned = e.out(&["builder", "prune"]);
    assert!(pruned.contains("Deleted build cache"), "{pruned}");
    assert!(e.out(&["builder", "du"]).contains("Steps: 0\nSize: 0.0MB"));
    let (_, cold) = build(&e, &ctx, &["--build-arg", "GREETING=hello"]);
    assert!(!cached(&cold, "RUN echo"), "{cold}");
    assert_eq!(run(&e, "cat /here.txt"), "heredoc line\n");
    // No container of the build is left.
    let runs = e.root().join("build/containers");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_failing_step_is_named_by_its_line_and_leaves_no_image() {
    let (e, ctx) = new_context("fails");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nRUN echo made > /made\nRUN echo about to fail; exit 3\n",
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "broken:1", ctx.to_str().unwrap()]);
    assert!(why.contains("Dockerfile:3"), "{why}");
    assert!(why.contains("exit code: 3"), "{why}");
    assert!(why.contains("about to fail"), "{why}");
    e.fails(&["image", "inspect", "broken:1"]);

    // A syntax error: the file and line, before anything runs.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nRUN true\nFROBNICATE x\n",
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "broken:1", ctx.to_str().unwrap()]);
    assert!(why.contains("Dockerfile: line 3"), "{why}");
    assert!(why.to_lowercase().contains("frobnicate"), "{why}");

    // A source outside the context.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nCOPY ../secret /x\n",
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "broken:1", ctx.to_str().unwrap()]);
    assert!(why.contains("outside the build context"), "{why}");
    e.fails(&["image", "inspect", "broken:1"]);

    // A target stage that is not there; a base image no registry has (a
    // loopback port nothing listens on).
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1 AS one
RUN true
",
    )
    .unwrap();
    let why = e.fails(&[
        "image",
        "build",
        "--target",
        "two",
        "-t",
        "broken:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(
        why.contains("target stage `two` could not be found"),
        "{why}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/nothing:1
RUN true
"
        ),
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "broken:1", ctx.to_str().unwrap()]);
    assert!(why.contains("Dockerfile:1: FROM 127.0.0.1"), "{why}");
    e.fails(&["image", "inspect", "broken:1"]);
}

#[test]
fn compose_builds_what_it_needs_and_up_build_recreates_with_the_new_image() {
    let e = Env::new("build", "compose");
    busybox_image(&e, "local/busybox:1");
    let app = e.dir.join("app");
    std::fs::create_dir_all(app.join("web")).unwrap();
    std::fs::write(
        app.join("web/Dockerfile"),
        "FROM local/busybox:1\nARG VERSION\nCOPY page.txt /page.txt\nRUN echo \"v$VERSION\" > /version\nCMD [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    std::fs::write(app.join("web/page.txt"), "first\n").unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        "services:\n  web:\n    build:\n      context: web\n      args: {VERSION: \"7\"}\n",
    )
    .unwrap();
    let d = app.display().to_string();
    let stack = |args: &[&str]| e.out(&in_project(&d, args));
    // Missing, so `up` builds it, named as compose names it.
    stack(&["up", "-d"]);
    let sh = |script: &str| stack(&["exec", "-T", "web", "sh", "-c", script]);
    assert_eq!(sh("cat /page.txt /version"), "first\nv7\n");
    e.out(&["image", "inspect", "app-web"]);
    let id = stack(&["ps", "-q", "web"]);

    // Changed: plain `up` keeps the container, `up --build` rebuilds and recreates it.
    std::fs::write(app.join("web/page.txt"), "second\n").unwrap();
    stack(&["up", "-d"]);
    assert_eq!(stack(&["ps", "-q", "web"]), id);
    stack(&["up", "-d", "--build"]);
    assert_ne!(stack(&["ps", "-q", "web"]), id);
    assert_eq!(sh("cat /page.txt"), "second\n");

    // `stack build` with nothing changed: all from the cache.
    let o = e.stack(&in_project(&d, &["build"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(all_cached(&err), "{err}");
    stack(&["down"]);
}

#[test]
fn run_mounts_onbuild_healthcheck_and_add_of_an_archive() {
    let e = Env::new("build", "mounts");
    busybox_image(&e, "local/busybox:1");
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::create_dir_all(e.dir.join("arch")).unwrap();
    std::fs::write(ctx.join("src/a.txt"), "hello\n").unwrap();
    std::fs::write(e.dir.join("arch/inner.txt"), "inside\n").unwrap();
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(e.dir.join("arch"))
        .arg("-czf")
        .arg(ctx.join("layer.tar.gz"))
        .arg("inner.txt")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::write(e.dir.join("token"), "s3cret").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        r#"FROM local/busybox:1 AS tools
RUN echo tool > /tool.txt

FROM local/busybox:1
RUN --mount=type=cache,target=/cache echo run >> /cache/count && busybox wc -l < /cache/count > /cache-lines
RUN --mount=type=bind,source=src,target=/src cat /src/a.txt > /from-bind
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t cat /t > /from-stage
RUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = s3cret
RUN --mount=type=secret,id=token,env=TOKEN test "$TOKEN" = s3cret
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/x && test -f /scratch/x
ADD layer.tar.gz /unpacked/
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD ["true"]
ONBUILD RUN echo triggered > /onbuild.txt
"#,
    )
    .unwrap();
    let token = format!("id=token,src={}", e.dir.join("token").display());
    let args = ["--secret", token.as_str()];
    build(&e, &ctx, &args);
    assert_eq!(
        run(
            &e,
            "cat /cache-lines /from-bind /from-stage /unpacked/inner.txt"
        ),
        "1\nhello\ntool\ninside\n"
    );
    // Mount points the image did not have are not in it.
    assert_eq!(
        run(
            &e,
            "test -e /scratch || test -e /cache || test -e /run/secrets/token || echo none"
        ),
        "none\n"
    );
    // The cache mount outlives the build: a build without the build cache sees what the last one left.
    build(&e, &ctx, &["--no-cache", "--secret", token.as_str()]);
    assert_eq!(run(&e, "cat /cache-lines"), "2\n");
    // A required secret that is missing fails the step.
    let why = e.fails(&[
        "image",
        "build",
        "--no-cache",
        "-t",
        "built:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(why.contains("Dockerfile:8"), "{why}");

    let img: serde_json::Value =
        serde_json::from_str(&e.out(&["image", "inspect", "built:1"])).unwrap();
    let health = &img["config"]["Healthcheck"];
    assert_eq!(health["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(health["Interval"], 5_000_000_000u64);
    assert_eq!(health["Retries"], 4);

    // A child image runs the ONBUILD trigger, and does not inherit it.
    let child = e.dir.join("child");
    std::fs::create_dir_all(&child).unwrap();
    std::fs::write(child.join("Dockerfile"), "FROM built:1\n").unwrap();
    e.out(&[
        "image",
        "build",
        "-q",
        "-t",
        "child:1",
        child.to_str().unwrap(),
    ]);
    assert_eq!(
        e.out(&["container", "run", "--rm", "child:1", "cat", "/onbuild.txt"]),
        "triggered\n"
    );
    let img: serde_json::Value =
        serde_json::from_str(&e.out(&["image", "inspect", "child:1"])).unwrap();
    let raw = e
        .root()
        .join("images/blobs/sha256")
        .join(img["id"].as_str().unwrap().trim_start_matches("sha256:"));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(raw).unwrap()).unwrap();
    assert!(config["config"].get("OnBuild").is_none(), "{config}");
    assert_eq!(config["config"]["Healthcheck"]["Retries"], 4);
}

/// A saved image as `bench/build-compare.sh` describes one: each built
/// layer's entries (kind, mode, owner, size, link), the config's keys,
/// the history.
fn describe(saved: &Path) -> String {
    use std::fmt::Write as _;
    use std::io::Read as _;
    let mut files = std::collections::HashMap::new();
    for entry in tar::Archive::new(std::fs::File::open(saved).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let mut out = String::new();
    for (i, layer) in manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .enumerate()
    {
        writeln!(out, "layer {}", i + 1).unwrap();
        let mut rows = Vec::new();
        for e in tar::Archive::new(&files[layer.as_str().unwrap()][..])
            .entries()
            .unwrap()
        {
            let e = e.unwrap();
            let h = e.header();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => "d",
                tar::EntryType::Symlink => "l",
                tar::EntryType::Link => "h",
                _ => "f",
            };
            let link = match kind {
                "l" | "h" => e.link_name().unwrap().unwrap().display().to_string(),
                _ => String::new(),
            };
            let size = if kind == "f" { h.size().unwrap() } else { 0 };
            let path = e.path().unwrap().display().to_string();
            let path = path.trim_start_matches("./").trim_end_matches('/');
            let row = format!(
                "/{path} {kind} {:o} {}:{} {size} {link}",
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap()
            );
            rows.push(row.trim_end().to_string());
        }
        rows.sort();
        for r in rows {
            writeln!(out, "  {r}").unwrap();
        }
    }
    let config: serde_json::Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    writeln!(out, "config").unwrap();
    for k in [
        "Cmd",
        "Entrypoint",
        "Env",
        "ExposedPorts",
        "Healthcheck",
        "Labels",
        "OnBuild",
        "StopSignal",
        "User",
        "Volumes",
        "WorkingDir",
    ] {
        match sorted(&config["config"][k]) {
            serde_json::Value::Null => {}
            v => writeln!(out, "  {k}={v}").unwrap(),
        }
    }
    writeln!(out, "history").unwrap();
    for h in config["history"].as_array().unwrap() {
        if let Some(by) = h["created_by"].as_str().filter(|b| !b.is_empty()) {
            writeln!(
                out,
                "  {} {by}",
                h["empty_layer"].as_bool().unwrap_or(false)
            )
            .unwrap();
        }
    }
    out
}

/// `v` with every object's keys sorted (as Python's `sort_keys`).
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&o[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[test]
fn the_build_is_dockers_layer_by_layer_with_its_config_and_history() {
    let e = Env::new("build", "docker");
    busybox_image(&e, "local/busybox:1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/build-compare");
    e.out(&[
        "image",
        "build",
        "-q",
        "-t",
        "compare:1",
        dir.join("context").to_str().unwrap(),
    ]);
    let saved = e.dir.join("saved.tar");
    e.out(&["image", "save", "compare:1", "-o", saved.to_str().unwrap()]);
    // What Docker 20.10's BuildKit made of the same Dockerfile, context and
    // base (bench/build-compare.sh --update wrote it).
    let docker = std::fs::read_to_string(dir.join("docker.txt")).unwrap();
    assert_eq!(describe(&saved), docker);
}

#[test]
fn a_watch_rebuild_rule_builds_the_image_again_and_recreates_the_service() {
    let e = Env::new("build", "rebuild");
    busybox_image(&e, "local/busybox:1");
    let app = e.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM local/busybox:1\nCOPY page.txt /page.txt\nCMD [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    std::fs::write(app.join("page.txt"), "first\n").unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        "services:\n  web:\n    build: .\n    develop:\n      watch:\n        - {path: ./page.txt, action: rebuild}\n",
    )
    .unwrap();
    let d = app.display().to_string();
    e.out(&in_project(&d, &["up", "-d", "--watch"]));
    let id = e.out(&in_project(&d, &["ps", "-q", "web"]));
    let image = e.out(&in_project(&d, &["images", "-q"]));
    let page = || {
        let o = e.stack(&in_project(&d, &["exec", "-T", "web", "cat", "/page.txt"]));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(page(), "first\n");
    std::fs::write(app.join("page.txt"), "second\n").unwrap();
    common::wait_for("the image built again and the service recreated", || {
        page() == "second\n"
    });
    assert_ne!(e.out(&in_project(&d, &["ps", "-q", "web"])), id);
    // The image it replaced, nameless and unused, is pruned.
    common::wait_for("the replaced image removed", || {
        !e.stack(&["image", "inspect", image.trim()])
            .status
            .success()
    });
    e.out(&in_project(&d, &["watch", "--stop"]));
    e.out(&in_project(&d, &["down"]));
}

#[test]
fn stages_that_do_not_need_each_other_build_at_the_same_time() {
    let (e, ctx) = new_context("parallel");
    // Each stage marks a shared cache mount and waits (20 s at most) for
    // the other's mark: built one after the other, the first gives up.
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=meet,target=/meet touch /meet/{me} && \
             for i in $(busybox seq 400); do [ -e /meet/{other} ] && echo {me} > /{me} && exit 0; sleep 0.05; done; exit 1"
        )
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM local/busybox:1 AS left\n{}\n\nFROM local/busybox:1 AS right\n{}\n\n\
             FROM local/busybox:1\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n",
            wait("left", "right"),
            wait("right", "left")
        ),
    )
    .unwrap();
    build(&e, &ctx, &[]);
    assert_eq!(run(&e, "cat /left /right"), "left\nright\n");
}

/// An HTTP server on loopback that answers every request with `body`
/// (changed through the returned handle); its port.
fn serve(body: &str) -> (u16, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::sync::Arc::new(std::sync::Mutex::new(body.to_string()));
    let served = body.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let b = served.lock().unwrap().clone();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    (port, body)
}

#[test]
fn add_fetches_urls_checks_their_checksum_and_caches_by_content() {
    let e = Env::new("build", "url");
    busybox_image(&e, "local/busybox:1");
    let (port, body) = serve("echo fetched\n");
    let digest = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(b"echo fetched\n");
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let dockerfile = |sum: &str| {
        format!(
            "FROM local/busybox:1\nADD http://127.0.0.1:{port}/files/tool.sh /opt/\n\
             ADD --checksum=sha256:{sum} http://127.0.0.1:{port}/files/tool.sh /checked\n"
        )
    };
    std::fs::write(ctx.join("Dockerfile"), dockerfile(&digest)).unwrap();
    build(&e, &ctx, &[]);
    // Named after the URL's path, 0600 as Docker writes downloads.
    assert_eq!(
        run(&e, "cat /opt/tool.sh /checked"),
        "echo fetched\necho fetched\n"
    );
    assert_eq!(run(&e, "busybox stat -c %a /opt/tool.sh"), "600\n");
    let (_, again) = build(&e, &ctx, &[]);
    assert!(all_cached(&again), "{again}");
    // Another body at the same URL: the step is made again.
    *body.lock().unwrap() = "echo changed\n".into();
    std::fs::write(
        ctx.join("Dockerfile"),
        dockerfile(&digest)
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let (_, changed) = build(&e, &ctx, &[]);
    assert!(!cached(&changed, "ADD http"), "{changed}");
    assert_eq!(run(&e, "cat /opt/tool.sh"), "echo changed\n");
    // A checksum that does not match fails the build.
    std::fs::write(ctx.join("Dockerfile"), dockerfile(&digest)).unwrap();
    let why = e.fails(&["image", "build", "-t", "built:1", ctx.to_str().unwrap()]);
    assert!(
        why.contains("checksum") && why.contains("Dockerfile:3"),
        "{why}"
    );
}

#[test]
fn an_ssh_agent_socket_reaches_run_steps_that_mount_it() {
    let e = Env::new("build", "ssh");
    busybox_image(&e, "local/busybox:1");
    let socket = e.dir.join("agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nRUN --mount=type=ssh,required test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /agent\n",
    )
    .unwrap();
    let ssh = format!("default={}", socket.display());
    build(&e, &ctx, &["--ssh", &ssh]);
    assert_eq!(
        run(
            &e,
            "cat /agent; test -e /run/buildkit/ssh_agent.0 || echo gone"
        ),
        "/run/buildkit/ssh_agent.0\ngone\n"
    );
    // Required, and not given: the step fails, naming the agent.
    let why = e.fails(&[
        "image",
        "build",
        "--no-cache",
        "-t",
        "built:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(why.contains("ssh agent `default` is required"), "{why}");
}

#[test]
fn a_local_image_given_as_cache_from_stands_in_for_an_empty_cache() {
    let (e, ctx) = new_context("cachefrom");
    std::fs::write(ctx.join("f.txt"), "f\n").unwrap();
    let dockerfile = |x: &str| {
        format!("FROM local/busybox:1\nRUN echo one > /one\nENV X={x}\nRUN echo $X > /two\nCOPY f.txt /f.txt\n")
    };
    std::fs::write(ctx.join("Dockerfile"), dockerfile("1")).unwrap();
    let build_as = |tag: &str, extra: &[&str]| {
        let mut args = vec!["image", "build", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let o = e.stack(&args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        err
    };
    build_as("first:1", &[]);
    e.out(&["builder", "prune"]);
    // Without it, nothing is reused; with it, the RUN steps are (not the
    // COPY, whose history line does not say what it copied).
    let with = build_as("second:1", &["--cache-from", "first:1"]);
    assert!(
        cached(&with, "RUN echo one") && cached(&with, "RUN echo $X"),
        "{with}"
    );
    assert!(!cached(&with, "COPY f.txt"), "{with}");
    let ids = |tag: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&e.out(&["image", "inspect", tag])).unwrap();
        v["diff_ids"].as_array().unwrap().clone()
    };
    assert_eq!(ids("first:1")[1..3], ids("second:1")[1..3]);
    // An ENV before a RUN changed: that RUN is made again, the one before is not.
    e.out(&["builder", "prune"]);
    std::fs::write(ctx.join("Dockerfile"), dockerfile("2")).unwrap();
    let changed = build_as("third:1", &["--cache-from", "first:1"]);
    assert!(cached(&changed, "RUN echo one"), "{changed}");
    assert!(!cached(&changed, "RUN echo $X"), "{changed}");
    assert_eq!(
        e.out(&["container", "run", "--rm", "third:1", "cat", "/two"]),
        "2\n"
    );
}

#[test]
fn nothing_in_a_dockerfile_or_context_reaches_outside_the_image() {
    let e = Env::new("build", "escape");
    busybox_image(&e, "local/busybox:1");
    let ctx = e.dir.join("ctx");
    std::fs::create_dir_all(ctx.join("x")).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    // Host places a build must not touch.
    let outside = e.dir.join("outside.txt");
    let victim = e.dir.join("victim");
    let empty = e.dir.join("empty-dir");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    // x/s points at the victim; the context also holds a file at the
    // victim's path, so that `x/s/passwd` resolves (inside the context).
    std::os::unix::fs::symlink(&victim, ctx.join("x/s")).unwrap();
    let inner = ctx.join(victim.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("passwd"), "planted\n").unwrap();
    let up = "/..".repeat(12);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM local/busybox:1\n\
             RUN busybox mkdir -p /usr/lib && busybox ln -s usr/lib /lib\n\
             COPY a.txt {up}{outside}\n\
             COPY --parents x x/s/passwd /d/\n\
             COPY a.txt /lib/x/a.txt\n\
             RUN --mount=type=tmpfs,target={up}{empty} true\n",
            outside = outside.display(),
            empty = empty.display()
        ),
    )
    .unwrap();
    build(&e, &ctx, &[]);
    assert!(!outside.exists(), "a COPY wrote {}", outside.display());
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "a COPY wrote into {}",
        victim.display()
    );
    assert!(
        empty.is_dir(),
        "a RUN's mount target removed {}",
        empty.display()
    );
    // Inside the image instead: `..` stops at its root, the link became a
    // directory of the layer, and /lib -> usr/lib is kept and followed.
    assert_eq!(run(&e, &format!("cat {}", outside.display())), "a\n");
    assert_eq!(run(&e, "cat /d/x/s/passwd"), "planted\n");
    assert_eq!(run(&e, "test -L /lib && cat /usr/lib/x/a.txt"), "a\n");

    // A heredoc named like a path is refused.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nCOPY <<../x /\nhi\n../x\n",
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "built:1", ctx.to_str().unwrap()]);
    assert!(why.contains("heredoc `../x`"), "{why}");
    // Stages that need each other: refused, not waited on for ever.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1 AS a\nCOPY --from=b /a.txt /x\nFROM local/busybox:1 AS b\nCOPY --from=a /x /y\n",
    )
    .unwrap();
    let why = e.fails(&["image", "build", "-t", "built:1", ctx.to_str().unwrap()]);
    assert!(why.contains("circular dependency between stages"), "{why}");
}

#[test]
fn run_steps_get_the_shm_size_and_ulimits_asked() {
    let (e, ctx) = new_context("limits");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nRUN ulimit -n > /nofile && busybox grep ' /dev/shm ' /proc/mounts > /shm\n",
    )
    .unwrap();
    build(
        &e,
        &ctx,
        &["--ulimit", "nofile=1234:1234", "--shm-size", "16m"],
    );
    assert_eq!(run(&e, "cat /nofile"), "1234\n");
    assert!(
        run(&e, "cat /shm").contains("size=16384k"),
        "{}",
        run(&e, "cat /shm")
    );
}

#[test]
fn progress_tty_draws_buildkits_live_view() {
    let (e, ctx) = new_context("tty");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM local/busybox:1\nRUN echo one > /one\n",
    )
    .unwrap();
    let tty = |what: &str| {
        let o = e.stack(&[
            "--progress",
            "tty",
            "image",
            "build",
            "-t",
            "built:1",
            ctx.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{what}: {err}");
        // The last drawing of the block.
        err.rsplit("\u{1b}[J")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let first = tty("first");
    assert!(
        first.contains("[+] Building") && first.contains("(2/2)"),
        "{first}"
    );
    assert!(
        first.contains(" => [stage-0 2/2] RUN echo one > /one "),
        "{first}"
    );
    let again = tty("again");
    assert!(
        again.contains(" => CACHED [stage-0 2/2] RUN echo one > /one"),
        "{again}"
    );
}

#[test]
fn compose_build_print_check_memory_and_builder() {
    let e = Env::new("build", "flags");
    busybox_image(&e, "local/busybox:1");
    let app = e.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let clean = "FROM local/busybox:1\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max\nCMD [\"sleep\", \"1000\"]\n";
    std::fs::write(app.join("Dockerfile"), clean).unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        "services:\n  web:\n    build:\n      context: .\n      args: {MODE: fast}\n      tags: [\"local/web:extra\"]\n    image: local/web:1\n",
    )
    .unwrap();
    let d = app.display().to_string();
    // --print: buildx bake's definition, nothing built.
    let printed: serde_json::Value =
        serde_json::from_str(&e.out(&in_project(&d, &["build", "--print"]))).unwrap();
    assert_eq!(
        printed["group"]["default"]["targets"],
        serde_json::json!(["web"])
    );
    let web = &printed["target"]["web"];
    assert_eq!(web["context"], d.as_str(), "{printed}");
    assert_eq!(web["args"]["MODE"], "fast");
    assert_eq!(
        web["tags"],
        serde_json::json!(["local/web:1", "local/web:extra"])
    );
    assert!(!e
        .stack(&["image", "inspect", "local/web:1"])
        .status
        .success());
    // --check: clean, then BuildKit's rules with their lines.
    let o = e.stack(&in_project(&d, &["build", "--check"]));
    assert!(o.status.success(), "{o:?}");
    std::fs::write(
        app.join("Dockerfile"),
        "FROM local/busybox:1 as base\nMAINTAINER me\nCMD sleep 1000\n",
    )
    .unwrap();
    let err = e.fails(&in_project(&d, &["build", "--check"]));
    for rule in [
        "FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
        "MaintainerDeprecated",
        "JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
    ] {
        assert!(err.contains(rule), "{rule}: {err}");
    }
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("3 warnings have been found"), "{err}");
    // --memory: the RUN steps' limit.
    std::fs::write(app.join("Dockerfile"), clean).unwrap();
    let o = e.stack(&in_project(
        &d,
        &["build", "--progress", "plain", "--no-cache", "-m", "96m"],
    ));
    assert!(o.status.success(), "{o:?}");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains(" 100663296"), "{log}");
    let err = e.fails(&in_project(&d, &["build", "--builder", "cloud-x"]));
    assert!(err.contains("one builder, built in"), "{err}");
}
