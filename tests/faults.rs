//! Faults of the host: a full file system under the store root. Each gives
//! one clear error and loses nothing that was there; a container whose
//! log cannot be written runs on.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Env;

/// A small tmpfs of our own, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .unwrap();
        Tmpfs(path.to_path_buf())
    }

    fn used(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.0).unwrap();
        (s.blocks() - s.blocks_free()) * s.fragment_size()
    }

    /// Fills it up; the filler goes when dropped.
    fn fill(&self) -> Filler {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        Filler(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

struct Filler(PathBuf);

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn once(text: &str, what: &str) {
    assert_eq!(text.matches(what).count(), 1, "`{what}` once in: {text}");
}

#[test]
fn a_full_disk_gives_one_clear_error_and_loses_nothing() {
    let fs = Tmpfs::new(
        &std::env::temp_dir().join(format!("stack-faults-{}-fs", std::process::id())),
        "24m",
    );
    let mut e = Env::new("faults", "full");
    let root = fs.0.join("root");
    e.vars
        .push(("STACK_ROOT".into(), root.display().to_string()));
    common::busybox_image(&e, "local/busybox:1");

    // An image larger than the room left.
    let big = e.dir.join("big");
    std::fs::create_dir_all(&big).unwrap();
    let mut noise = vec![0u8; 32 << 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut noise))
        .unwrap();
    std::fs::write(big.join("noise"), &noise).unwrap();
    let tar = e.dir.join("big.tar");
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(&big)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    let before = fs.used();
    let err = e.fails(&["image", "import", tar.to_str().unwrap(), "local/big:1"]);
    eprintln!("image import on a full disk: {err}");
    once(&err, "No space left on device");
    let images = e.out(&["image", "ls"]);
    assert!(
        images.contains("local/busybox") && !images.contains("local/big"),
        "{images}"
    );
    assert!(
        fs.used() <= before + (256 << 10),
        "the failed import left {} bytes behind",
        fs.used() - before
    );

    // A container whose log cannot be written runs on; its log says what
    // was lost once there is room again.
    let id = e
        .out(&[
            "container",
            "run",
            "-d",
            "local/busybox:1",
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.01; done",
        ])
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(300));
    let filler = fs.fill();
    std::thread::sleep(Duration::from_millis(800));
    drop(filler);
    // The note is on the log's standard error.
    let note = || {
        let o = e.stack(&["container", "logs", &id]);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    common::wait_for("the log to say what was dropped", || {
        note().contains("log records dropped: no space left")
    });
    let lines = e.out(&["container", "logs", &id]).len();
    common::wait_for("lines after the gap", || {
        e.out(&["container", "logs", &id]).len() > lines + 20
    });
    let status = e.out(&["container", "ls"]);
    assert!(
        status.contains(&id[..12]) && status.contains("Up"),
        "{status}"
    );
    e.out(&["container", "rm", "-f", &id]);

    // A container cannot be made on a full disk: one clear error, nothing left.
    let filler = fs.fill();
    let err = e.fails(&["container", "run", "--rm", "local/busybox:1", "true"]);
    eprintln!("container run on a full disk: {err}");
    once(&err, "No space left on device");
    drop(filler);
    let left: Vec<_> = std::fs::read_dir(root.join("containers"))
        .map(|d| d.flatten().map(|x| x.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        e.out(&[
            "container",
            "run",
            "--rm",
            "local/busybox:1",
            "echo",
            "room again"
        ]),
        "room again\n"
    );
}
