//! What the end-to-end tests share: a temp dir with its own `STACK_ROOT`,
//! removed on drop, and the `stack` binary run inside it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        for _ in 0..500 {
            if !alive(pid) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the engine (pid {pid}) did not stop");
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

/// A TCP port on 127.0.0.1 that nobody listened on a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Polls `f` every 20 ms for up to `limit`.
pub fn eventually(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
