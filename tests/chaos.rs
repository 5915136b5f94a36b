//! Crash consistency: `kill -9` of the engine, of a container's monitor or
//! of the DNS server, at a random moment of `up`, `down`, `up --scale` or
//! `run`; the next `up` always converges, and the last `down` leaves no
//! process, cgroup, network namespace, link, nft rule or directory.
//!
//! `STACK_CHAOS_ROUNDS` sets the number of kill points (25 by default),
//! `STACK_CHAOS_SEED` replays a run (each run prints its seed).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

/// xorshift64*: enough randomness to pick kill points, and replayable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Processes whose command line holds `arg` and whose environment sets
/// this root: the engine and the DNS server of this test.
fn ours(root: &Path, arg: &str) -> Vec<i32> {
    let want = format!("STACK_ROOT={}", root.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|d| d.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_default();
            let has = |bytes: Vec<u8>, s: &str| bytes.split(|b| *b == 0).any(|x| x == s.as_bytes());
            has(read("cmdline"), arg) && has(read("environ"), &want)
        })
        .collect()
}

/// The monitors of this root's containers, from their state files.
fn monitors(root: &Path) -> Vec<i32> {
    std::fs::read_dir(root.join("containers"))
        .map(|d| {
            d.flatten()
                .filter_map(|c| std::fs::read(c.path().join("state.json")).ok())
                .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|st| st["status"] != "exited")
                .filter_map(|st| st["monitor_pid"].as_i64())
                .map(|p| p as i32)
                .filter(|p| *p > 0)
                .collect()
        })
        .unwrap_or_default()
}

fn container_ids(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("containers"))
        .map(|d| {
            d.flatten()
                .map(|c| c.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Cgroup directories still named after one of `ids`.
fn cgroups_left(ids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return left;
    };
    fn walk(dir: &Path, ids: &[String], left: &mut Vec<String>, depth: usize) {
        if depth > 6 {
            return;
        }
        for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if d.file_type().is_ok_and(|t| t.is_dir()) {
                let name = d.file_name().to_string_lossy().to_string();
                if ids.contains(&name) {
                    left.push(d.path().display().to_string());
                }
                walk(&d.path(), ids, left, depth + 1);
            }
        }
    }
    for c in controllers.flatten() {
        walk(&c.path(), ids, &mut left, 0);
    }
    left
}

const SERVICES: usize = 5;
/// The DNS server's hidden mode (stack-host's `DNS_ARG`).
const DNS_ARG: &str = "__stack-dns";

#[test]
fn random_kills_always_converge() {
    let rounds: u64 = std::env::var("STACK_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("STACK_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos: {rounds} rounds, STACK_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let mut e = Env::new("chaos", "kills");
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    common::busybox_image(&e, "local/busybox:1");
    let dir = e.dir.join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    // A chain: each service waits for the one before it.
    let mut body = String::from("services:\n");
    for i in 0..SERVICES {
        body.push_str(&format!(
            "  s{i}:\n    image: local/busybox:1\n    command: sleep 600\n    stop_grace_period: 1s\n"
        ));
        if i > 0 {
            body.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    std::fs::write(dir.join("compose.yaml"), body).unwrap();
    let d = dir.to_str().unwrap();
    let root = e.root();
    let mut seen: Vec<String> = Vec::new();
    let mut bridge = None;
    let mut history = Vec::new();
    let mut scale = 1;
    for round in 0..rounds {
        let (op, args): (&str, Vec<String>) = match rng.below(4) {
            0 => ("up", vec!["up".into(), "-d".into()]),
            1 => ("down", vec!["down".into()]),
            2 => {
                scale = 1 + rng.below(3);
                let s = format!("s{}={scale}", SERVICES - 1);
                ("scale", vec!["up".into(), "-d".into(), "--scale".into(), s])
            }
            _ => (
                "run",
                ["run", "--rm", "s0", "true"].map(String::from).to_vec(),
            ),
        };
        let victim = ["engine", "monitor", "dns"][rng.below(3) as usize];
        let delay = Duration::from_millis(rng.below(300));
        history.push(format!(
            "round {round}: {op}, kill -9 {victim} after {delay:?}"
        ));
        let mut cmd_args = vec!["--project-directory", d];
        cmd_args.extend(args.iter().map(String::as_str));
        let mut cmd = e
            .command(&cmd_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let candidates = match victim {
            "engine" => ours(&root, "daemon"),
            "monitor" => monitors(&root),
            _ => ours(&root, DNS_ARG),
        };
        if !candidates.is_empty() {
            let pid = candidates[rng.below(candidates.len() as u64) as usize];
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        } else {
            history.push("  (nothing to kill yet)".into());
        }
        let t = Instant::now();
        while cmd.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < common::PATIENCE,
                "`{op}` hangs after the kill\n{}",
                history.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // The next command converges.
        let s = format!("s{}={scale}", SERVICES - 1);
        let o = e.stack(&["--project-directory", d, "up", "-d", "--scale", &s]);
        assert!(
            o.status.success(),
            "up after the kill: {}\n{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            history.join("\n"),
            e.engine_log()
        );
        let ps = e.out(&["--project-directory", d, "ps"]);
        let want = SERVICES - 1 + scale as usize;
        assert_eq!(
            ps.matches(" Up").count(),
            want,
            "{ps}\n{}",
            history.join("\n")
        );
        bridge.get_or_insert_with(|| common::bridge(&e, "chaos_default"));
        for id in container_ids(&root) {
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
    }
    e.out(&["--project-directory", d, "down"]);
    let left: Vec<String> = container_ids(&root)
        .iter()
        .map(|id| {
            let dir = root.join("containers").join(id);
            let files: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .map(|f| f.file_name().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let state = std::fs::read_to_string(dir.join("state.json")).unwrap_or_default();
            format!("{id}: {files:?}\n{}", &state[..state.len().min(600)])
        })
        .collect();
    assert!(
        left.is_empty(),
        "containers left: {left:#?}\n{}\n{}",
        history.join("\n"),
        e.engine_log()
    );
    if let Some(b) = bridge {
        common::assert_nothing_left(&e, &[b]);
    }
    common::wait_for_ok("no cgroup left", || {
        let left = cgroups_left(&seen);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}\n{}", history.join("\n")))
        }
    });
    assert!(ours(&root, DNS_ARG).is_empty(), "the DNS server runs on");
    eprintln!(
        "chaos: {rounds} kill points, {} containers, converged every time",
        seen.len()
    );
}
