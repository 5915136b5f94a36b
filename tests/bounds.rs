//! What big or hostile input cannot do, as root on real containers: logs
//! and archives of hundreds of MB keep the engine's memory flat (its peak
//! resident size, `VmHWM`, is asserted, never a time), and `cp` out never
//! writes through a symlink left in the host's destination.

mod common;

use std::path::{Path, PathBuf};

use common::{in_project, project_env, Env};

/// The engine's peak resident memory so far, in MB.
fn engine_peak_mb(e: &Env) -> u64 {
    let pid = e.engine_pid().expect("an engine runs");
    peak_mb(pid as u32).expect("the engine's status")
}

/// `VmHWM` of a process, in MB.
fn peak_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The one container's log file under the root, once its monitor made it.
fn log_file(e: &Env) -> PathBuf {
    let find = || {
        std::fs::read_dir(e.root().join("containers"))
            .ok()?
            .flatten()
            .map(|d| d.path().join("container.log"))
            .find(|p| p.exists())
    };
    common::wait_for_value("a container with a log", find)
}

/// The last `n` bytes of a file.
fn last_bytes(path: &Path, n: u64) -> String {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(n)))
        .unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

/// Runs `stack ARGS` with its output into `out`, sampling its peak memory
/// while it runs: whether it succeeded, and that peak in MB.
fn run_sampled(e: &Env, args: &[&str], out: &Path) -> (bool, u64) {
    let mut child = e
        .command(args)
        .stdout(std::fs::File::create(out).unwrap())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(mb) = peak_mb(child.id()) {
            peak = peak.max(mb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Never sampled, a peak of 0 would pass any bound.
            assert!(peak > 0, "{args:?} ended before its memory was read");
            return (status.success(), peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A container writes a 200 MB log; `logs --tail 2` gives its last two
/// lines, all of it comes through whole, and the engine stays small.
#[test]
fn a_big_log_keeps_the_engine_small() {
    let line = "a".repeat(1000);
    let (e, d) = project_env(
        "bounds",
        "logs",
        &format!(
            r#"services:
  chatty:
    image: local/busybox:1
    command: ["sh", "-c", "busybox yes {line} | busybox head -n 200000; echo second-last; echo the-last; until [ -e /go ]; do sleep 0.1; done; echo after-go; exec sleep 1000"]
    logging:
      options: {{max-size: 1g}}
"#
        ),
    );
    e.out(&in_project(&d, &["up", "-d"]));
    let log = log_file(&e);
    common::wait_for_within(
        std::time::Duration::from_secs(600),
        "the container wrote its 200 MB log",
        || last_bytes(&log, 300).contains("the-last"),
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 200_000_000, "{size}");
    let before = engine_peak_mb(&e);

    let out = e.out(&in_project(&d, &["logs", "--tail", "2", "--no-log-prefix"]));
    assert_eq!(out, "second-last\nthe-last\n");
    let after_tail = engine_peak_mb(&e);
    eprintln!("engine VmHWM: {before} MB before, {after_tail} MB after logs --tail 2 of a {size}-byte log");
    assert!(after_tail < 100, "{after_tail} MB");

    // All of it, merged and streamed: every line, and still small.
    let all = e.dir.join("all.txt");
    let (ok, client) = run_sampled(&e, &in_project(&d, &["logs", "--no-log-prefix"]), &all);
    assert!(ok);
    let after_all = engine_peak_mb(&e);
    let text_size = std::fs::metadata(&all).unwrap().len();
    eprintln!(
        "engine VmHWM: {after_all} MB after logs of all {text_size} bytes (client peak {client} MB)"
    );
    assert_eq!(
        text_size,
        200_000 * 1001 + "second-last\nthe-last\n".len() as u64
    );
    assert!(last_bytes(&all, 30).ends_with("\nsecond-last\nthe-last\n"));
    assert!(after_all < 100, "{after_all} MB");
    assert!(client < 100, "{client} MB");

    // container logs, read here: the same tail.
    let out = e.out(&["container", "logs", "--tail", "2", "app-chatty-1"]);
    assert_eq!(out, "second-last\nthe-last\n");

    // Following from the end: the last line, then nothing more read up to
    // the log's end. The container writes one line more once told to;
    // that line coming next shows the follower has read on to the end.
    let mut follow = e
        .command(&in_project(
            &d,
            &["logs", "-f", "--tail", "1", "--no-log-prefix"],
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        lines
            .recv_timeout(common::PATIENCE)
            .unwrap_or_else(|e| panic!("`logs -f` printed no {what}: {e}"))
    };
    assert_eq!(next("last line"), "the-last");
    e.out(&[
        "container",
        "exec",
        "app-chatty-1",
        "busybox",
        "touch",
        "/go",
    ]);
    assert_eq!(next("line after it"), "after-go");
    follow.kill().unwrap();
    follow.wait().unwrap();
    let after_follow = engine_peak_mb(&e);
    eprintln!("engine VmHWM: {after_follow} MB after logs -f --tail 1");
    assert!(after_follow < 100, "{after_follow} MB");
    e.out(&in_project(&d, &["down"]));
}

/// `cp` streams: a 300 MB file out of a container and back in passes
/// through the engine and the client a chunk at a time.
#[test]
fn a_big_copy_keeps_the_engine_and_the_client_small() {
    let (e, d) = project_env(
        "bounds",
        "cp",
        r#"services:
  files:
    image: local/busybox:1
    command: ["sh", "-c", "busybox yes 0123456789abcdef | busybox head -c 300000000 > /big; echo > /ready; exec sleep 1000"]
"#,
    );
    e.out(&in_project(&d, &["up", "-d"]));
    common::wait_for_within(
        std::time::Duration::from_secs(600),
        "the container wrote its 300 MB file",
        || {
            e.stack(&["container", "exec", "app-files-1", "cat", "/ready"])
                .status
                .success()
        },
    );
    let before = engine_peak_mb(&e);
    let host = e.dir.join("big");
    let (ok, client) = run_sampled(
        &e,
        &in_project(&d, &["cp", "files:/big", host.to_str().unwrap()]),
        &e.dir.join("cp-out.txt"),
    );
    assert!(ok);
    assert_eq!(std::fs::metadata(&host).unwrap().len(), 300_000_000);
    let pattern = b"0123456789abcdef\n";
    let end: Vec<u8> = (300_000_000 - 17..300_000_000)
        .map(|i| pattern[i % 17])
        .collect();
    assert_eq!(last_bytes(&host, 17).as_bytes(), &end[..]);
    let after_out = engine_peak_mb(&e);
    eprintln!("engine VmHWM: {before} MB before, {after_out} MB after cp out of 300 MB (client peak {client} MB)");
    assert!(after_out < 100, "{after_out} MB");
    assert!(client < 100, "{client} MB");

    // And back in.
    let (ok, client) = run_sampled(
        &e,
        &in_project(&d, &["cp", host.to_str().unwrap(), "files:/back"]),
        &e.dir.join("cp-in.txt"),
    );
    assert!(ok);
    let size = e.out(&[
        "container",
        "exec",
        "app-files-1",
        "busybox",
        "stat",
        "-c",
        "%s",
        "/back",
    ]);
    assert_eq!(size.trim(), "300000000");
    let after_in = engine_peak_mb(&e);
    eprintln!("engine VmHWM: {after_in} MB after cp in of 300 MB (client peak {client} MB)");
    assert!(after_in < 100, "{after_in} MB");
    assert!(client < 100, "{client} MB");
    e.out(&in_project(&d, &["down"]));
}
