//! Names that would become paths, and the privacy of the store root
//! (issue 19): each victim outside the root is unique to the run and checked
//! untouched, each refusal names the key. Needs root.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use common::{in_project, project_env};

/// A directory outside every store root, unique to this run, holding a
/// file `file` whose content is `ORIGINAL`.
fn victim(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("stack-victim-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("file"), "ORIGINAL").unwrap();
    d
}

fn untouched(v: &Path) {
    assert_eq!(std::fs::read_to_string(v.join("file")).unwrap(), "ORIGINAL");
    assert_eq!(std::fs::read_dir(v).unwrap().count(), 1, "{}", v.display());
    std::fs::remove_dir_all(v).unwrap();
}

#[test]
fn names_from_a_stack_file_never_become_host_paths() {
    let v = victim("names");
    let file = v.join("file").display().to_string();
    let escape = format!("../../../escape-{}", std::process::id());
    let compose = format!(
        r#"services:
  web:
    image: local/busybox:1
    command: ["sleep", "1000"]
    configs: ["{file}"]
    secrets: ["../../../../escape"]
    volumes: ["v1:/data"]
  "{escape}":
    image: local/busybox:1
    configs: [ok]
configs:
  "{file}":
    content: OVERWRITTEN
  ok:
    content: fine
secrets:
  "../../../../escape":
    environment: HOME
volumes:
  v1:
    name: {vol}
"#,
        vol = v.display()
    );
    let (e, d) = project_env("hostile", "names", &compose);
    for cmd in [&["up", "-d"][..], &["down", "-v"][..]] {
        let err = e.fails(&in_project(&d, cmd));
        for says in [
            format!("invalid config name `{file}`"),
            "invalid secret name `../../../../escape`".to_string(),
            format!("invalid volume name `{}`", v.display()),
            format!("invalid service name `{escape}`"),
        ] {
            assert!(err.contains(&says), "{cmd:?} should say {says}: {err}");
        }
        assert!(err.contains("compose.yaml:"), "positions: {err}");
    }
    untouched(&v);
    assert!(!e.dir.join(escape.trim_start_matches("../../../")).exists());
    assert!(
        !e.root().join("projects").exists(),
        "nothing written for the project"
    );
}

/// `down -v` removes only what stack made: a volume directory that is a
/// link out of the root is refused by name, and what it points at stays.
#[test]
fn down_never_follows_a_link_out_of_the_root() {
    let (e, d) = project_env(
        "hostile",
        "link",
        r#"services:
  web:
    image: local/busybox:1
    command: ["sleep", "1000"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    );
    e.out(&in_project(&d, &["up", "-d"]));
    e.out(&in_project(&d, &["down"]));
    let v = victim("link");
    let dir = e.root().join("volumes/app_data");
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&v, &dir).unwrap();
    let err = e.fails(&in_project(&d, &["down", "-v"]));
    assert!(
        err.contains("is a symbolic link") && err.contains("app_data"),
        "{err}"
    );
    untouched(&v);
}

/// Two references to one config each get their own file with their own
/// mode, and what the project writes is root's alone.
#[test]
fn each_reference_has_its_own_file_in_private_directories() {
    let (e, d) = project_env(
        "hostile",
        "refs",
        r#"services:
  web:
    image: local/busybox:1
    command: ["sleep", "1000"]
    environment: [DB_PASSWORD=hunter2]
    configs:
      - {source: conf, target: /a, mode: 0400}
      - {source: conf, target: /b, mode: 0444}
configs:
  conf:
    content: shared
"#,
    );
    e.out(&in_project(&d, &["up", "-d"]));
    let ls = e.out(&in_project(
        &d,
        &["exec", "-T", "web", "busybox", "ls", "-l", "/a", "/b"],
    ));
    let modes: Vec<&str> = ls
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(modes, ["-r--------", "-r--r--r--"], "{ls}");
    let root = e.root();
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o700);
    for dir in [
        "containers",
        "images",
        "networks",
        "projects",
        "projects/app/web/configs",
    ] {
        assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
    }
    let id = std::fs::read_dir(root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("state.json").exists())
        .expect("a container directory");
    assert_eq!(mode(&id), 0o700);
    assert_eq!(mode(&id.join("state.json")), 0o600);
    assert_eq!(mode(&id.join("container.log")), 0o600);
    e.out(&in_project(&d, &["down"]));
    assert!(
        !root.join("projects/app").exists(),
        "down removes what the project wrote"
    );
}

/// Users other than root can neither list nor read the store: not the
/// environment in a state file, not a log, not a writable layer.
#[test]
fn a_user_who_is_not_root_reaches_nothing_in_the_store() {
    use std::os::unix::process::CommandExt as _;
    let (e, d) = project_env(
        "hostile",
        "private",
        r#"services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "echo secret-line; exec sleep 1000"]
    environment: [DB_PASSWORD=hunter2]
"#,
    );
    e.out(&in_project(&d, &["up", "-d"]));
    let root = e.root();
    let state = std::fs::read_dir(root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("state.json"))
        .find(|p| p.exists())
        .unwrap();
    assert!(std::fs::read_to_string(&state).unwrap().contains("hunter2"));
    let as_nobody = |argv: &[&str]| {
        let o = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let root_s = root.display().to_string();
    let state_s = state.display().to_string();
    let log_s = state.with_file_name("container.log").display().to_string();
    for argv in [
        vec!["ls", root_s.as_str()],
        vec!["cat", state_s.as_str()],
        vec!["cat", log_s.as_str()],
    ] {
        let (ok, err) = as_nobody(&argv);
        assert!(!ok, "{argv:?} succeeded as nobody");
        assert!(err.contains("Permission denied"), "{argv:?}: {err}");
    }
}

/// `stack container run --name` holds names to Docker's rule.
#[test]
fn a_container_name_that_is_not_a_name_is_refused() {
    let (e, _) = project_env("hostile", "cname", "services: {}\n");
    for bad in ["../x", ".", "-x", "a/b"] {
        let err = e.fails(&[
            "container",
            "run",
            "--rm",
            "--name",
            bad,
            "local/busybox:1",
            "true",
        ]);
        assert!(
            err.contains(&format!("invalid container name `{bad}`")),
            "{bad}: {err}"
        );
    }
}

/// The hostility table through raw bodies sent to the real engine by a
/// member of its group who is not root (no loader in between): each is
/// refused naming the name, and nothing appears outside the root.
#[test]
fn a_group_member_cannot_send_names_that_become_paths() {
    use std::os::unix::process::CommandExt as _;
    let (e, _) = project_env("hostile", "api", "services: {}\n");
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .unwrap()
        .expect("a group with gid 65534 (nogroup)")
        .name;
    // What an earlier version left open, the engine closes when it starts.
    let root = e.root();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    std::fs::set_permissions(
        root.join("containers"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(root.join("engine.log"), "old\n").unwrap();
    std::fs::set_permissions(
        root.join("engine.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    /// The engine, killed when the test ends however it ends.
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Daemon(
        e.command(&["daemon", "--group", &group])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = root.join("engine.sock");
    common::wait_for("the engine answering on its socket", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta(&root).permissions().mode() & 0o7777, 0o710);
    assert_eq!(meta(&root).gid(), 65534, "the root is the group's to cross");
    assert_eq!(
        meta(&root.join("containers")).permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        meta(&root.join("engine.log")).permissions().mode() & 0o7777,
        0o600
    );
    // Who is not in the group cannot even cross the root; members list nothing.
    let as_user = |gid: u32, argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .uid(65534)
            .gid(gid)
            .output()
            .unwrap()
    };
    let log = root.join("engine.log").display().to_string();
    let root_s = root.display().to_string();
    for (gid, argv) in [
        (12345, vec!["cat", log.as_str()]),
        (65534, vec!["ls", root_s.as_str()]),
    ] {
        let o = as_user(gid, &argv);
        assert!(!o.status.success(), "{argv:?} as gid {gid}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
            "{o:?}"
        );
    }
    let v = victim("api");
    let escape = format!("../../../escape-api-{}", std::process::id());
    let bodies = [
        (
            format!(
                r#"{{"project":{{"name":"shop","services":{{"web":{{"image":"local/busybox:1","configs":[{{"source":"{f}"}}]}}}},"configs":{{"{f}":{{"content":"OVERWRITTEN"}}}}}}}}"#,
                f = v.join("file").display()
            ),
            format!("invalid config name `{}`", v.join("file").display()),
        ),
        (
            format!(
                r#"{{"project":{{"name":"shop","services":{{}},"volumes":{{"v1":{{"name":"{}"}}}}}}}}"#,
                v.display()
            ),
            format!("invalid volume name `{}`", v.display()),
        ),
        (
            format!(
                r#"{{"project":{{"name":"shop","services":{{"{escape}":{{"image":"local/busybox:1"}}}}}}}}"#
            ),
            format!("invalid service name `{escape}`"),
        ),
    ];
    // A raw HTTP request over the socket, from a process of uid and gid 65534.
    const SEND: &str = "import socket,sys\n\
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b=sys.argv[3].encode()\n\
s.sendall(b'POST '+sys.argv[2].encode()+b' HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\ncontent-length: '+str(len(b)).encode()+b'\\r\\n\\r\\n'+b)\n\
out=b''\n\
while True:\n  d=s.recv(65536)\n  if not d: break\n  out+=d\n\
sys.stdout.write(out.decode())\n";
    for (path, body, says) in bodies
        .iter()
        .map(|(b, s)| ("/v1/projects/shop/up", b, s))
        .chain(bodies.iter().map(|(b, s)| ("/v1/projects/shop/down", b, s)))
    {
        let o = std::process::Command::new("python3")
            .args(["-c", SEND, socket.to_str().unwrap(), path, body])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&o.stdout);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path} {body}: {answer} {o:?}"
        );
        assert!(answer.contains(says.as_str()), "{path} {body}: {answer}");
    }
    untouched(&v);
    assert!(!e.dir.join(escape.trim_start_matches("../../../")).exists());
    assert!(!e.root().join("projects").exists());
}

/// An image whose /etc/hostname, /etc/hosts and /etc/resolv.conf are
/// links to a host file: the container gets its own files there, and the
/// host's file is never written (the runtime once wrote them through the
/// image's paths before its pivot, following the links out). Its /proc,
/// a link out too, gets the container's proc.
#[test]
fn an_images_links_at_the_paths_the_runtime_mounts_lead_nowhere() {
    let v = victim("etc-links");
    let file = v.join("file");
    let e = common::Env::new("hostile", "etc-links");
    let rootfs = e.dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::copy(common::busybox(), rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::os::unix::fs::symlink(&file, rootfs.join("etc").join(f)).unwrap();
    }
    std::os::unix::fs::symlink(&v, rootfs.join("proc")).unwrap();
    common::import_rootfs(&e, &rootfs, "local/links:1");
    let out = e.out(&[
        "container",
        "run",
        "--rm",
        "--hostname",
        "inside",
        "local/links:1",
        "sh",
        "-c",
        "cat /etc/hostname; grep -c inside /etc/hosts; echo more >> /etc/hosts; ls /proc/self/ns/net",
    ]);
    assert_eq!(out, "inside\n1\n/proc/self/ns/net\n");
    untouched(&v);
}
