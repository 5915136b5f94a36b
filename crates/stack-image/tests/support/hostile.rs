//! Hostile layers and the check that an unpack keeps to its destination,
//! shared by the property tests (`tests/unpack_props.rs`) and the fuzz
//! target (`fuzz/fuzz_targets/unpack.rs`, which includes this file by path).
//!
//! A layer is a list of [`Op`]s over a small alphabet: names `a`..`d`, `..`,
//! `.`, a 200-byte name (PAX paths), whiteouts and opaque markers; symlinks
//! relative (`../..`), absolute inside the layer, absolute to the sandbox
//! around the destination, to themselves; hardlinks inside, through
//! symlinks and out; device nodes; extended attributes.
//!
//! Every unpack runs in a jail ([`in_jail`]): a thread with a filesystem
//! context of its own (`unshare(CLONE_FS)`) chrooted into a fresh directory,
//! so that even a bug in the unpacker cannot reach the host, whatever a
//! layer's `..` or absolute symlinks name. [`Sandbox`] fills the jail: the
//! destination sits [`DEPTH`] directories below its root, every level
//! holding the same names (`a` a file, `b/c` a directory and its file), and
//! the check compares the whole jail but the destination before and after.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A path absolute targets point to, which no unpack may create.
pub const NOWHERE: &str = "/nonexistent-stack-unpack-sentinel";

/// Path components entries and links are made of.
pub const NAMES: &[&str] = &["a", "b", "c", "d", "..", ".", "", LONG];
const LONG: &str = "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll";
/// Last components with a meaning of their own.
pub const SPECIAL: &[&str] = &[".wh.a", ".wh.b", ".wh.c", ".wh..wh..opq", ".wh..", ".wh."];

/// Attributes a layer may try to set, valid values where the kernel checks.
pub const XATTRS: &[(&str, &[u8])] = &[
    ("trusted.overlay.opaque", b"y"),
    ("trusted.overlay.redirect", b"/b"),
    ("trusted.overlay.metacopy", b""),
    ("security.selinux", b"system_u:object_r:shadow_t:s0"),
    ("user.overlay.origin", b"x"),
    ("user.kept", b"1"),
    (
        "security.capability",
        &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ),
    ("system.posix_acl_access", b"garbage"),
];

pub const MODES: &[u32] = &[0o755, 0o644, 0o777, 0o4755, 0o000, 0o1777];

/// Where a symlink or hardlink points.
#[derive(Clone, Debug)]
pub enum Target {
    /// Relative, from components of [`NAMES`] (`../..`, `a/../..`, …).
    Rel(Vec<usize>),
    /// Absolute, meant inside the layer (`/`, `/a/b`, `/..`).
    Abs(Vec<usize>),
    /// Absolute, to the sandbox around the destination: `up` levels above
    /// the directory holding it, then these components.
    Sandbox(u8, Vec<usize>),
    /// [`NOWHERE`] and below.
    Nowhere(Vec<usize>),
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Target),
    Hard(Target),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// A raw type byte (`g`, `x`, `V`, …).
    Other(u8),
}

#[derive(Clone, Debug)]
pub struct Op {
    /// Indices into [`NAMES`].
    pub path: Vec<usize>,
    /// An index into [`SPECIAL`] for the last component, if any.
    pub special: Option<usize>,
    /// `/` or `./` in front.
    pub prefix: u8,
    pub kind: Kind,
    pub mode: u32,
    /// Indices into [`XATTRS`].
    pub xattrs: Vec<usize>,
    /// Path and link target in a PAX header rather than the ustar fields.
    pub pax: bool,
}

/// The jail's own mark (so that [`Sandbox`] never fills a real root).
const MARK: &str = "/.stack-unpack-jail";
/// Levels between the jail's root and the destination.
pub const DEPTH: usize = 3;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Makes the calling thread's root a fresh, marked directory `dir` on the
/// host: its own filesystem context first, so the process's other threads
/// keep theirs.
pub fn enter_jail(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(&MARK[1..]), "").unwrap();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).expect("unshare(CLONE_FS)");
    std::os::unix::fs::chroot(dir).expect("chroot (the unpack tests run as root)");
    std::env::set_current_dir("/").unwrap();
}

/// A fresh jail directory name on the host.
pub fn jail_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "stack-unpack-jail-{}-{what}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Runs `f` on a thread jailed in a fresh directory, removed afterwards; a
/// panic in `f` is the caller's.
pub fn in_jail<T: Send>(what: &str, f: impl FnOnce() -> T + Send) -> T {
    let dir = jail_dir(what);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            enter_jail(&dir);
            f()
        })
        .join()
    });
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The jail filled with sentinels and an empty destination [`DEPTH`] levels
/// down; emptied again when dropped.
pub struct Sandbox {
    pub dest: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        assert!(
            Path::new(MARK).exists(),
            "a sandbox is made only in a jail (see `in_jail`)"
        );
        let mut level = PathBuf::from("/");
        for i in 0..=DEPTH {
            std::fs::create_dir_all(level.join("b")).unwrap();
            std::fs::write(level.join("a"), format!("sentinel {i}")).unwrap();
            std::fs::write(level.join("b/c"), "sentinel").unwrap();
            if i < DEPTH {
                level.push("n");
            }
        }
        let dest = level.join("dest");
        std::fs::create_dir(&dest).unwrap();
        Sandbox { dest }
    }

    /// The directory holding the destination, `up` levels higher.
    pub fn holder(&self, up: u8) -> PathBuf {
        let mut p = self.dest.parent().unwrap().to_path_buf();
        for _ in 0..up {
            p.pop();
        }
        p
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir("/") {
            for e in entries.flatten() {
                let p = e.path();
                if p != Path::new(MARK) {
                    let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                }
            }
        }
    }
}

fn join(parts: &[usize]) -> String {
    parts
        .iter()
        .map(|&i| NAMES[i % NAMES.len()])
        .collect::<Vec<_>>()
        .join("/")
}

fn target(t: &Target, sb: &Sandbox) -> Vec<u8> {
    match t {
        Target::Rel(p) => join(p).into_bytes(),
        Target::Abs(p) => format!("/{}", join(p)).into_bytes(),
        Target::Sandbox(up, p) => {
            let mut s = sb.holder(*up).as_os_str().as_bytes().to_vec();
            if !p.is_empty() {
                s.push(b'/');
                s.extend_from_slice(join(p).as_bytes());
            }
            s
        }
        Target::Nowhere(p) => format!("{NOWHERE}/{}", join(p)).into_bytes(),
    }
}

fn op_path(op: &Op) -> Vec<u8> {
    let mut s = match op.prefix % 3 {
        0 => String::new(),
        1 => "/".into(),
        _ => "./".into(),
    };
    s.push_str(&join(&op.path));
    if let Some(i) = op.special {
        if !op.path.is_empty() {
            s.push('/');
        }
        s.push_str(SPECIAL[i % SPECIAL.len()]);
    }
    if matches!(op.kind, Kind::Dir) {
        s.push('/');
    }
    s.into_bytes()
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut n = rest + 1;
    while n.to_string().len() + rest != n {
        n = n.to_string().len() + rest;
    }
    out.extend_from_slice(format!("{n} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The layer tar of `ops`, absolute targets made for `sb`.
pub fn layer(ops: &[Op], sb: &Sandbox) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for op in ops {
        let path = op_path(op);
        let link = match &op.kind {
            Kind::Symlink(t) | Kind::Hard(t) => target(t, sb),
            _ => Vec::new(),
        };
        let mut pax = Vec::new();
        if op.pax || path.len() > 100 {
            pax_record(&mut pax, "path", &path);
        }
        if (op.pax || link.len() > 100) && !link.is_empty() {
            pax_record(&mut pax, "linkpath", &link);
        }
        for &i in &op.xattrs {
            let (k, v) = XATTRS[i % XATTRS.len()];
            pax_record(&mut pax, &format!("SCHILY.xattr.{k}"), v);
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_path("PaxHeader").unwrap();
            h.set_size(pax.len() as u64);
            h.set_cksum();
            b.append(&h, &pax[..]).unwrap();
        }
        let (kind, data, dev): (u8, &[u8], (u32, u32)) = match &op.kind {
            Kind::Dir => (b'5', b"", (0, 0)),
            Kind::File(d) => (b'0', d, (0, 0)),
            Kind::Symlink(_) => (b'2', b"", (0, 0)),
            Kind::Hard(_) => (b'1', b"", (0, 0)),
            Kind::Char(a, b) => (b'3', b"", (*a, *b)),
            Kind::Block(a, b) => (b'4', b"", (*a, *b)),
            Kind::Fifo => (b'6', b"", (0, 0)),
            Kind::Other(k) => (*k, b"", (0, 0)),
        };
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(op.mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_600_000_000);
        let _ = h.set_device_major(dev.0);
        let _ = h.set_device_minor(dev.1);
        let old = h.as_old_mut();
        let n = path.len().min(100);
        old.name[..n].copy_from_slice(&path[..n]);
        let n = link.len().min(100);
        old.linkname[..n].copy_from_slice(&link[..n]);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Operations from arbitrary bytes (the fuzz target's structured input):
/// every byte string decodes to something.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut it = data.iter().copied();
    let mut next = move || it.next();
    let mut ops = Vec::new();
    while ops.len() < 24 {
        let Some(k) = next() else { break };
        let comps = |n: u8, next: &mut dyn FnMut() -> Option<u8>| -> Vec<usize> {
            (0..n % 5)
                .map(|_| next().unwrap_or(0) as usize % NAMES.len())
                .collect()
        };
        let n = next().unwrap_or(1);
        let path = comps(n, &mut next);
        let flags = next().unwrap_or(0);
        let special = (flags & 0x80 != 0).then(|| (flags as usize >> 4) % SPECIAL.len());
        let t = next().unwrap_or(0);
        let tn = next().unwrap_or(0);
        let tpath = comps(tn, &mut next);
        let tgt = match t % 4 {
            0 => Target::Rel(tpath),
            1 => Target::Abs(tpath),
            2 => Target::Sandbox(t / 4 % 10, tpath),
            _ => Target::Nowhere(tpath),
        };
        let kind = match k % 9 {
            0 => Kind::Dir,
            1 => Kind::File(vec![b'x'; (k / 9 % 4) as usize]),
            2 => Kind::Symlink(tgt),
            3 => Kind::Hard(tgt),
            4 => Kind::Char((k / 9 % 3) as u32, (t % 4) as u32),
            5 => Kind::Block(7, (t % 2) as u32),
            6 => Kind::Fifo,
            7 => Kind::Other(next().unwrap_or(b'g')),
            _ => Kind::Symlink(Target::Rel(path.clone())),
        };
        let x = next().unwrap_or(0);
        let xattrs = (0..8).filter(|i| x & (1 << i) != 0).collect();
        ops.push(Op {
            path,
            special,
            prefix: flags & 3,
            kind,
            mode: MODES[(flags as usize >> 2) % MODES.len()],
            xattrs,
            pax: flags & 0x40 != 0,
        });
    }
    ops
}

/// What one path outside the destination looks like: type, mode, owner,
/// size, times (but access), links, device, link target, content, xattrs.
#[derive(Debug, PartialEq)]
struct Seen {
    meta: [i64; 10],
    link: Option<PathBuf>,
    content: Option<Vec<u8>>,
    xattrs: Vec<(String, Option<Vec<u8>>)>,
}

fn look(p: &Path) -> Seen {
    let m = std::fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let mut xattrs: Vec<(String, Option<Vec<u8>>)> = if ft.is_symlink() {
        Vec::new()
    } else {
        xattr::list(p)
            .map(|l| {
                l.map(|n| {
                    let v = xattr::get(p, &n).ok().flatten();
                    (n.to_string_lossy().into_owned(), v)
                })
                .collect()
            })
            .unwrap_or_default()
    };
    xattrs.sort();
    Seen {
        meta: [
            m.mode() as i64,
            m.uid() as i64,
            m.gid() as i64,
            m.size() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.nlink() as i64,
            m.rdev() as i64,
        ],
        link: ft.is_symlink().then(|| std::fs::read_link(p).unwrap()),
        content: ft.is_file().then(|| std::fs::read(p).unwrap()),
        xattrs,
    }
}

/// Every path under `top` (itself included) but `skip` and what is below it.
fn listing(top: &Path, skip: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p == skip {
            continue;
        }
        let seen = look(&p);
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
        out.insert(p, seen);
    }
    out
}

/// Unpacks `tar` (built by `build` for the sandbox, or fixed bytes) into a
/// fresh sandbox and panics if anything outside the destination changed.
/// Returns whether the unpack succeeded. In a jail only.
pub fn unpack_and_check(build: impl FnOnce(&Sandbox) -> Vec<u8>) -> bool {
    let sb = Sandbox::new();
    let tar = build(&sb);
    let before = listing(Path::new("/"), &sb.dest);
    let result = stack_image::unpack::unpack("sha256:hostile", &tar[..], &sb.dest);
    let after = listing(Path::new("/"), &sb.dest);
    if before != after {
        let mut diff = String::new();
        for (p, s) in &before {
            match after.get(p) {
                None => diff.push_str(&format!("  removed {}\n", p.display())),
                Some(a) if a != s => {
                    diff.push_str(&format!("  changed {}: {s:?} -> {a:?}\n", p.display()))
                }
                _ => {}
            }
        }
        for p in after.keys().filter(|p| !before.contains_key(*p)) {
            diff.push_str(&format!("  created {}\n", p.display()));
        }
        panic!("the unpack ({result:?}) changed the sandbox outside its destination:\n{diff}");
    }
    assert!(
        std::fs::symlink_metadata(NOWHERE).is_err(),
        "the unpack ({result:?}) created {NOWHERE}"
    );
    if let (Err(e), Ok(_)) = (&result, std::env::var("STACK_UNPACK_REFUSALS")) {
        eprintln!("refused: {e}");
    }
    // The destination itself is still a directory, not something else.
    assert!(std::fs::symlink_metadata(&sb.dest).unwrap().is_dir());
    result.is_ok()
}
