//! Images end to end, as root: a `docker save` archive made here (two layers,
//! a whiteout), loaded into the store and run.

mod common;

use std::path::{Path, PathBuf};

struct Env(common::Env);

impl Env {
    fn new(name: &str) -> Env {
        Env(common::Env::new("image-e2e", name))
    }
    fn stack(&self, args: &[&str]) -> std::process::Output {
        self.0.stack(args)
    }
    fn out(&self, args: &[&str]) -> String {
        self.0.out(args)
    }
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, path, target).unwrap();
}

/// A two-layer busybox image as `docker save` writes it (legacy layout).
fn docker_save(dir: &Path) -> PathBuf {
    docker_save_with(dir, serde_json::json!({}))
}

/// The same, with more fields in its config's `config`.
fn docker_save_with(dir: &Path, extra: serde_json::Value) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("apt-get install busybox-static");
    let mut l1 = tar::Builder::new(Vec::new());
    add_file(
        &mut l1,
        "bin/busybox",
        0o755,
        &std::fs::read(busybox).unwrap(),
    );
    for a in ["sh", "ls", "echo", "cat", "pwd"] {
        add_link(&mut l1, &format!("bin/{a}"), "busybox");
    }
    add_file(&mut l1, "etc/old", 0o644, b"old\n");
    let l1 = l1.into_inner().unwrap();
    let mut l2 = tar::Builder::new(Vec::new());
    add_file(&mut l2, "etc/new", 0o644, b"new\n");
    add_file(&mut l2, "etc/.wh.old", 0o644, b"");
    let l2 = l2.into_inner().unwrap();
    let mut config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "GREETING=hi"], "Cmd": ["sh", "-c", "echo $GREETING; pwd; ls /etc"], "WorkingDir": "/etc"},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    for (k, v) in extra.as_object().unwrap() {
        config["config"][k] = v.clone();
    }
    let config = config.to_string();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["demo/app:1"], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).to_string();
    let mut archive = tar::Builder::new(Vec::new());
    add_file(&mut archive, "manifest.json", 0o644, manifest.as_bytes());
    add_file(&mut archive, "config.json", 0o644, config.as_bytes());
    add_file(&mut archive, "l1/layer.tar", 0o644, &l1);
    add_file(&mut archive, "l2/layer.tar", 0o644, &l2);
    let path = dir.join("app.tar");
    std::fs::write(&path, archive.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn a_saved_image_loads_and_runs_with_its_config() {
    let e = Env::new("run");
    let archive = docker_save(&e.0.dir);
    assert_eq!(
        e.out(&["image", "load", "-i", archive.to_str().unwrap()]),
        "Loaded image: demo/app:1\n"
    );
    let ls = e.out(&["image", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().take(2).eq(["demo/app", "1"]))
            && ls.trim_end().ends_with('2'),
        "{ls}"
    );
    // The image's Cmd, Env and WorkingDir; the second layer's whiteout hides /etc/old.
    assert_eq!(
        e.out(&["container", "run", "--rm", "demo/app:1"]),
        "hi\n/etc\nhostname\nhosts\nnew\nresolv.conf\n"
    );
    // Ours win over the image's.
    assert_eq!(
        e.out(&[
            "container",
            "run",
            "--rm",
            "-e",
            "GREETING=yo",
            "-w",
            "/",
            "demo/app:1",
            "sh",
            "-c",
            "echo $GREETING; pwd"
        ]),
        "yo\n/\n"
    );
    let o = e.stack(&["container", "run", "--rm", "nope:latest", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such image: `nope:latest`"),
        "{o:?}"
    );
    // Loading again reuses the unpacked layers.
    e.out(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_dir(e.0.dir.join("root/images/layers"))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn a_broken_archive_is_refused_and_the_store_is_unchanged() {
    let e = Env::new("broken");
    let mut archive = tar::Builder::new(Vec::new());
    add_file(
        &mut archive,
        "manifest.json",
        0o644,
        b"[{\"Config\": \"c.json\", \"Layers\": [\"l.tar\"]}]",
    );
    add_file(&mut archive, "c.json", 0o644, b"{}");
    add_file(
        &mut archive,
        "l.tar",
        0o644,
        b"this is no tar at all, and it is long enough to fill a header block? no.",
    );
    let p = e.0.dir.join("bad.tar");
    std::fs::write(&p, archive.into_inner().unwrap()).unwrap();
    let o = e.stack(&["image", "load", "-i", p.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("l.tar: layer sha256:"),
        "{o:?}"
    );
    assert_eq!(e.out(&["image", "ls", "-q"]), "");
    assert_eq!(
        std::fs::read_dir(e.0.dir.join("root/images/layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn tag_rm_prune_and_import() {
    let e = Env::new("manage");
    let archive = docker_save(&e.0.dir);
    e.out(&["image", "load", "-i", archive.to_str().unwrap()]);
    e.out(&["image", "tag", "demo/app:1", "demo/app:stable"]);
    let ls = e.out(&["image", "ls"]);
    let tags: Vec<&str> = ls
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(tags, ["1", "stable"], "{ls}");
    // A container keeps its image's layers.
    let cid = e.0.dir.join("cid");
    e.out(&[
        "container",
        "run",
        "-d",
        "--name",
        "user",
        "--cidfile",
        cid.to_str().unwrap(),
        "demo/app:1",
        "sh",
        "-c",
        "while true; do sleep 1; done",
    ]);
    assert_eq!(
        e.out(&["image", "rm", "demo/app:stable"]),
        "Untagged: demo/app:stable\n"
    );
    let o = e.stack(&["image", "rm", "demo/app:1"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is used by a container"),
        "{o:?}"
    );
    // prune -a takes every image no container uses: not this one.
    e.out(&["image", "prune", "-a"]);
    assert_eq!(e.out(&["image", "ls", "-q"]).lines().count(), 1);
    e.out(&["container", "rm", "-f", "user"]);
    assert!(e
        .out(&["image", "rm", "demo/app:1"])
        .starts_with("Deleted: sha256:"));
    assert_eq!(e.out(&["image", "ls", "-q"]), "");
    // rm takes the layers with the image; prune finds nothing more.
    assert_eq!(
        e.out(&["image", "prune"])
            .lines()
            .next()
            .unwrap_or_default()
            .split(' ')
            .nth(1),
        Some("0")
    );
    assert_eq!(
        std::fs::read_dir(e.0.dir.join("root/images/layers"))
            .unwrap()
            .count(),
        0
    );
    // import: a rootfs tar is a one-layer image.
    let mut rootfs = tar::Builder::new(Vec::new());
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    add_file(
        &mut rootfs,
        "bin/busybox",
        0o755,
        &std::fs::read(busybox).unwrap(),
    );
    add_link(&mut rootfs, "bin/sh", "busybox");
    let tarball = e.0.dir.join("rootfs.tar");
    std::fs::write(&tarball, rootfs.into_inner().unwrap()).unwrap();
    e.out(&["image", "import", tarball.to_str().unwrap(), "plain"]);
    assert_eq!(
        e.out(&[
            "container",
            "run",
            "--rm",
            "plain",
            "/bin/sh",
            "-c",
            "echo imported"
        ]),
        "imported\n"
    );
}

#[test]
fn volumes_labels_ports_and_healthcheck_of_the_image_are_defaults() {
    let e = Env::new("defaults");
    let archive = docker_save_with(
        &e.0.dir,
        serde_json::json!({
            "Volumes": {"/etc": {}}, "Labels": {"from": "image", "x": "1"}, "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000u64, "Retries": 3}
        }),
    );
    e.out(&["image", "load", "-i", archive.to_str().unwrap()]);
    // The anonymous volume starts with the image's /etc, and takes the writes.
    assert_eq!(
        e.out(&[
            "container",
            "run",
            "--name",
            "vv",
            "-l",
            "x=2",
            "demo/app:1",
            "sh",
            "-c",
            "cat /etc/new; echo w > /etc/written"
        ]),
        "new\n"
    );
    let st: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "vv"])).unwrap();
    let spec = &st["spec"];
    assert_eq!(
        spec["labels"],
        serde_json::json!({"from": "image", "x": "2"})
    );
    assert_eq!(spec["exposed_ports"], serde_json::json!(["80/tcp"]));
    assert_eq!(
        spec["healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(spec["healthcheck"]["Retries"], 3);
    let volume = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "volume" && m["target"] == "/etc")
        .unwrap_or_else(|| panic!("{spec}"));
    let dir = PathBuf::from(volume["source"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("new")).unwrap(), "new\n");
    assert_eq!(std::fs::read_to_string(dir.join("written")).unwrap(), "w\n");
    // It goes with the container.
    e.out(&["container", "rm", "vv"]);
    assert!(!dir.exists());
    // --no-healthcheck drops it.
    e.out(&[
        "container",
        "run",
        "--name",
        "ww",
        "--no-healthcheck",
        "demo/app:1",
        "pwd",
    ]);
    let st: serde_json::Value =
        serde_json::from_str(&e.out(&["container", "inspect", "ww"])).unwrap();
    assert!(st["spec"]["healthcheck"].is_null(), "{st}");
    e.out(&["container", "rm", "ww"]);
}
