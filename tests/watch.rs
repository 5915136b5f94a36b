//! `stack watch` and `stack up --watch` on real containers, as root:
//! `develop.watch` sync (edits, new directories, deletions, ignores, an
//! initial sync), sync+restart, sync+exec, reloads of the stack file (and a
//! broken one that changes nothing), a symlink in the container that must
//! not lead a sync out of it, and a detached watch that outlives the CLI
//! and the engine.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use common::{in_project as stack, wait_for, Env};

const WATCHED: &str = r#"
services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "echo started >> /started.log; busybox mkdir -p /tmp; busybox ln -sfn /tmp /data; exec sleep 1000"]
    environment:
      VERSION: "1"
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
          ignore: ["*.tmp"]
          initial_sync: true
        - path: ./conf
          target: /etc/app
          action: sync+restart
        - path: ./hooks
          target: /hooks
          action: sync+exec
          exec:
            command: ["sh", "-c", "cat /hooks/run > /ran"]
        - path: ./escape.txt
          target: /data/escape.txt
          action: sync
"#;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A file in service web's container, as a process in it reads it
/// (`container exec`: the stack file may be broken).
fn read(e: &Env, path: &str) -> Option<String> {
    let o = e.stack(&["container", "exec", "app-web-1", "cat", path]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

/// The inotify instances the engine holds open (a watch's file watcher is
/// one, dropped with the watch).
fn inotify_instances(e: &Env) -> usize {
    let pid = e.engine_pid().expect("an engine runs");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|f| {
            std::fs::read_link(f.path()).is_ok_and(|l| l == Path::new("anon_inode:inotify"))
        })
        .count()
}

/// `stack watch` in the background, its output (stderr) collected.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn start(e: &Env, d: &str, args: &[&str]) -> Watcher {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut child = e
            .command(&stack(d, &all))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (err, seen) = (child.stderr.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(l);
            }
        });
        let w = Watcher { child, lines };
        w.wait_for("Watching");
        w
    }

    fn saw(&self, text: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn wait_for(&self, text: &str) {
        wait_for(&format!("`stack watch` saying {text:?}"), || self.saw(text));
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sync_restart_exec_and_reload_follow_the_files() {
    // The paths the escape checks look for on the host are this run's own,
    // so no leftover of an earlier run can satisfy them.
    let tag = format!("{}-{}", std::process::id(), line!());
    let escape = format!("escape-{tag}.txt");
    let watched = WATCHED.replace("/data/escape.txt", &format!("/data/{escape}"));
    let (e, d) = common::project_env("watch", "follow", &watched);
    let dir = Path::new(&d).to_path_buf();
    let marker = format!("marker-{tag}.html");
    write(&dir, &format!("src/{marker}"), "inside\n");
    write(&dir, "src/index.html", "v1\n");
    write(&dir, "src/old.html", "old\n");
    write(&dir, "conf/app.conf", "a=1\n");
    write(&dir, "hooks/run", "first\n");
    write(&dir, "escape.txt", "contained\n");
    // A sync that came before the container had pivoted into its root
    // would write the host's /app (it once did).
    let host_marker = Path::new("/app").join(&marker);
    let w = Watcher::start(&e, &d, &[]);

    // The initial sync put src in place, inside the container only.
    wait_for("initial sync", || {
        read(&e, "/app/index.html").as_deref() == Some("v1\n")
    });
    assert_eq!(
        read(&e, &format!("/app/{marker}")).as_deref(),
        Some("inside\n")
    );
    assert!(
        !host_marker.exists(),
        "the sync wrote the host's {}",
        host_marker.display()
    );

    // An edit becomes visible inside the container.
    write(&dir, "src/index.html", "v2\n");
    wait_for("the edit synced", || {
        read(&e, "/app/index.html").as_deref() == Some("v2\n")
    });
    assert!(!host_marker.exists());

    // New directories, deletions; ignored files stay out.
    write(&dir, "src/sub/deep.txt", "deep\n");
    write(&dir, "src/skip.tmp", "no\n");
    std::fs::remove_file(dir.join("src/old.html")).unwrap();
    wait_for("new directory synced", || {
        read(&e, "/app/sub/deep.txt").as_deref() == Some("deep\n")
    });
    wait_for("deletion synced", || read(&e, "/app/old.html").is_none());
    assert_eq!(read(&e, "/app/skip.tmp"), None, "ignored");

    // A symlink in the container (/data -> /tmp) is followed inside it,
    // never out to the host's /tmp.
    let host_tmp = Path::new("/tmp").join(&escape);
    write(&dir, "escape.txt", "still contained\n");
    wait_for("escape.txt synced", || {
        read(&e, &format!("/tmp/{escape}")).as_deref() == Some("still contained\n")
    });
    assert!(
        !host_tmp.exists(),
        "the sync wrote the host's {}",
        host_tmp.display()
    );

    // sync+exec runs the command after the sync.
    write(&dir, "hooks/run", "second\n");
    wait_for("the exec ran", || {
        read(&e, "/ran").as_deref() == Some("second\n")
    });

    // sync+restart: the file is there and the container started again.
    write(&dir, "conf/app.conf", "a=2\n");
    wait_for("restarted", || {
        read(&e, "/started.log").is_some_and(|l| l.lines().count() == 2)
    });
    assert_eq!(read(&e, "/etc/app/app.conf").as_deref(), Some("a=2\n"));
    w.wait_for("web  Restarted");

    // The stack file changes: the service is recreated as it now says.
    let compose = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&compose, text.replace("VERSION: \"1\"", "VERSION: \"2\"")).unwrap();
    wait_for("reloaded", || {
        let o = e.stack(&stack(
            &d,
            &["exec", "-T", "web", "sh", "-c", "echo $VERSION"],
        ));
        String::from_utf8_lossy(&o.stdout).trim() == "2"
    });
    w.wait_for("Reloaded");

    // A broken stack file: a warning naming it, and the stack as it was.
    std::fs::write(&compose, "services:\n  web: [broken\n").unwrap();
    w.wait_for("the stack is left as it was");
    assert!(w.saw("compose.yaml"), "{:?}", w.lines.lock().unwrap());
    let ls = e.out(&["ls"]);
    assert!(ls.contains("running(1)"), "{ls}");
    // ... and the watch goes on.
    write(&dir, "src/index.html", "v3\n");
    wait_for("still syncing", || {
        read(&e, "/app/index.html").as_deref() == Some("v3\n")
    });
    std::fs::write(&compose, text.replace("VERSION: \"1\"", "VERSION: \"2\"")).unwrap();
    drop(w);
    e.out(&stack(&d, &["down"]));
}

#[test]
fn a_detached_watch_outlives_the_command_and_the_engine() {
    let (e, d) = common::project_env("watch", "detached", WATCHED);
    let dir = Path::new(&d).to_path_buf();
    write(&dir, "src/index.html", "v1\n");
    e.out(&stack(&d, &["up", "-d", "--watch"]));
    write(&dir, "src/index.html", "v2\n");
    wait_for("synced after up -d --watch", || {
        read(&e, "/app/index.html").as_deref() == Some("v2\n")
    });
    // The engine stops; the next one takes the watch up again.
    e.stop_engine();
    e.out(&stack(&d, &["ps"]));
    write(&dir, "src/index.html", "v3\n");
    wait_for("synced by the next engine", || {
        read(&e, "/app/index.html").as_deref() == Some("v3\n")
    });
    // --stop ends it: it returns once the watch's task has ended, and the
    // watch's file watcher goes with it, so nothing is left in the engine
    // to see a change made after (and a watch that ran on keeps it).
    assert!(inotify_instances(&e) > 0, "the watch's watcher is not seen");
    e.out(&stack(&d, &["watch", "--stop"]));
    wait_for("the engine letting the watch's inotify instance go", || {
        inotify_instances(&e) == 0
    });
    write(&dir, "src/index.html", "v4\n");
    assert_eq!(read(&e, "/app/index.html").as_deref(), Some("v3\n"));
    assert!(!e.root().join("watch/app.json").exists());
    // down ends a watch too.
    e.out(&stack(&d, &["up", "-d", "--watch"]));
    assert!(e.root().join("watch/app.json").exists());
    e.out(&stack(&d, &["down"]));
    assert!(!e.root().join("watch/app.json").exists());
}
