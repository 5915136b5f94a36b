//! What the end-to-end tests share: a temp dir with its own `STACK_ROOT`,
//! removed on drop, and the `stack` binary run inside it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Env {
    pub dir: PathBuf,
    /// Extra environment for every `stack` run.
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new(suite: &str, name: &str) -> Env {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests need root (CI runs them as root)"
        );
        let dir = std::env::temp_dir().join(format!("stack-{suite}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            dir,
            vars: Vec::new(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stack"));
        c.args(args).env("STACK_ROOT", self.root());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn stack(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Standard output of a run that must succeed.
    pub fn out(&self, args: &[&str]) -> String {
        let o = self.stack(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Standard error of a run that must fail.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.stack(args);
        assert!(!o.status.success(), "{args:?} should fail: {o:?}");
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// The pid of the engine serving this root, if one runs.
    pub fn engine_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.root().join("engine.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// Stops this root's engine (SIGTERM) and waits until it is gone.
    pub fn stop_engine(&self) {
        self.signal_engine(nix::sys::signal::Signal::SIGTERM);
    }

    /// Sends the engine a signal and waits until it is gone.
    pub fn signal_engine(&self, sig: nix::sys::signal::Signal) {
        let Some(pid) = self.engine_pid() else {
            return;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        wait_for(&format!("the engine (pid {pid}) stopping on {sig}"), || {
            !alive(pid)
        });
    }

    /// What the engines of this root have logged (`engine.log`).
    pub fn engine_log(&self) -> String {
        std::fs::read_to_string(self.root().join("engine.log")).unwrap_or_default()
    }

    /// How many entries a directory of the store has.
    pub fn count(&self, store_dir: &str) -> usize {
        std::fs::read_dir(self.root().join("images").join(store_dir))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A process that exists and is not a zombie (whose parent has not
/// reaped it yet).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

impl Drop for Env {
    /// A failed test leaves nothing running or wired either: its engine
    /// stops first, then its containers go, then its networks.
    fn drop(&mut self) {
        // What a killed engine left half made, a new engine sweeps.
        let debris = ["containers", "networks/netns"]
            .iter()
            .any(|d| std::fs::read_dir(self.root().join(d)).is_ok_and(|mut x| x.next().is_some()));
        if debris {
            let _ = self.command(&["ls"]).output();
        }
        self.stop_engine();
        let names = |dir: &str, ext: Option<&str>| -> Vec<String> {
            std::fs::read_dir(self.root().join(dir))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
                        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = names("containers", None);
        if !containers.is_empty() {
            let mut args = vec!["container", "rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            let _ = self.command(&args).output();
        }
        let networks = names("networks", Some("json"));
        if !networks.is_empty() {
            let mut args = vec!["network", "rm"];
            args.extend(networks.iter().map(String::as_str));
            let _ = self.command(&args).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 that nobody used a moment ago, for TCP or UDP
/// (tests publish both; another test of the process may hold a UDP socket
/// on a port that is free for TCP).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn busybox() -> &'static Path {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox is needed: apt-get install busybox-static")
}

/// A busybox image made here, under `name`.
pub fn busybox_image(e: &Env, name: &str) {
    let rootfs = e.dir.join("rootfs");
    for d in ["bin", "etc", "www"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "httpd", "wget", "nslookup", "sleep", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(rootfs.join("www/index.html"), "hello from web\n").unwrap();
    import_rootfs(e, &rootfs, name);
}

/// `image import` of a directory, as a tar made here.
pub fn import_rootfs(e: &Env, rootfs: &Path, name: &str) {
    let tar = rootfs.with_extension("tar");
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    e.out(&["image", "import", tar.to_str().unwrap(), name]);
}

/// An environment with the busybox image as `local/busybox:1` and a
/// project directory `app` holding `compose` (no DNS upstream); the
/// directory as text.
pub fn project_env(suite: &str, name: &str, compose: &str) -> (Env, String) {
    let mut e = Env::new(suite, name);
    e.vars.push(("STACK_DNS_UPSTREAM".into(), "none".into()));
    busybox_image(&e, "local/busybox:1");
    let dir = e.dir.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    let d = dir.display().to_string();
    (e, d)
}

/// `--project-directory D ARGS...`.
pub fn in_project<'a>(d: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--project-directory", d];
    v.extend_from_slice(args);
    v
}

/// How long a wait may go on before the test gives up: a guard against
/// hanging for ever, never what a test asserts. A test waits for the thing
/// it checks (a file, a log line, a state, an event), not for time.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Polls `f` until it holds; panics naming `what` if it still does not
/// after `PATIENCE`.
pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    wait_for_within(PATIENCE, what, f)
}

/// `wait_for` with a longer guard, for what takes long by nature (writing
/// hundreds of MB).
pub fn wait_for_within(guard: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    poll(
        guard,
        what,
        || if f() { Ok(()) } else { Err(String::new()) },
    )
}

/// Polls `f` until it gives a value, and returns it; panics naming `what`
/// if it still gives none after `PATIENCE`.
pub fn wait_for_value<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    poll(PATIENCE, what, || f().ok_or_else(String::new))
}

/// Polls `f` until it is `Ok`, and returns its value; panics naming `what`
/// and the last error if it is not after `PATIENCE`.
pub fn wait_for_ok<T>(what: &str, f: impl FnMut() -> Result<T, String>) -> T {
    poll(PATIENCE, what, f)
}

fn poll<T>(guard: std::time::Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t = std::time::Instant::now();
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if t.elapsed() > guard {
            let last = if last.is_empty() {
                String::new()
            } else {
                format!("; last seen: {last}")
            };
            panic!("never happened (given {guard:?}): {what}{last}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A command run in the background, its output collected as it comes.
pub struct Background {
    child: Option<std::process::Child>,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut c: Command) -> Background {
        use std::io::Read as _;
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut from: Box<dyn std::io::Read + Send>| {
            let to = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let into = to.clone();
            let reader = std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    into.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            (to, reader)
        };
        let (out, r1) = collect(Box::new(child.stdout.take().unwrap()));
        let (err, r2) = collect(Box::new(child.stderr.take().unwrap()));
        Background {
            child: Some(child),
            out,
            err,
            readers: vec![r1, r2],
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Its standard output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).to_string()
    }

    /// Waits for it to end (`what`: what its end shows, named if it does
    /// not come) and gives all it printed.
    pub fn wait(mut self, what: &str) -> Output {
        let mut child = self.child.take().expect("running");
        let status = wait_for_value(what, || child.try_wait().unwrap());
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let take = |v: &std::sync::Mutex<Vec<u8>>| std::mem::take(&mut *v.lock().unwrap());
        Output {
            status,
            stdout: take(&self.out),
            stderr: take(&self.err),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `c` with `input` on its standard input; its output, collected.
pub fn with_input(c: &mut Command, input: &str) -> Output {
    use std::io::Write as _;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Everything a store root set up on the host: links, our nft table,
/// DOCKER-USER rules, netns files, the DNS server.
/// Waits until nothing of the networks is left: the DNS server leaves a
/// moment after the last network.
pub fn assert_nothing_left(e: &Env, bridges: &[String]) {
    wait_for_ok(&format!("nothing left of {bridges:?}"), || {
        let left = leftovers(e, bridges);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });
}

pub fn leftovers(e: &Env, bridges: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let links = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for b in bridges {
        if links.contains(&format!(" {b}:")) || links.contains(&format!(" {b}@")) {
            found.push(format!("link {b}"));
        }
    }
    let netns = e.root().join("networks/netns");
    if std::fs::read_dir(&netns).map(|d| d.count()).unwrap_or(0) > 0 {
        found.push("netns files".into());
    }
    let dns_lock = e.root().join("networks/dns.lock");
    if dns_lock.exists() {
        let f = std::fs::File::open(&dns_lock).unwrap();
        if nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err() {
            found.push("the DNS server".into());
        }
    }
    let iptables = std::process::Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output();
    if let Ok(o) = iptables {
        for b in bridges {
            if String::from_utf8_lossy(&o.stdout).contains(b.as_str()) {
                found.push(format!("DOCKER-USER rule for {b}"));
            }
        }
    }
    let tables = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for b in bridges {
        let rules = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&rules.stdout).contains(b.as_str()) {
            found.push(format!("nft rules for {b} (tables: {tables})"));
        }
    }
    found
}

/// The bridge link of network `network`.
pub fn bridge(e: &Env, network: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&e.out(&["network", "inspect", network])).unwrap();
    v["bridge"].as_str().unwrap().to_string()
}

/// Kilobytes of the engine's code (the executable mappings of its own
/// binary) resident, and the size of that code.
pub fn resident_code(pid: i32) -> (u64, u64) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let (mut rss, mut size, mut ours) = (0, 0, false);
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first()
            .is_some_and(|r| r.contains('-') && !r.ends_with(':'))
        {
            ours = f.get(1) == Some(&"r-xp")
                && f.get(5).map(std::path::Path::new) == Some(exe.as_path());
        } else if ours && f.first() == Some(&"Size:") {
            size += f[1].parse::<u64>().unwrap();
        } else if ours && f.first() == Some(&"Rss:") {
            rss += f[1].parse::<u64>().unwrap();
        }
    }
    (rss, size)
}
