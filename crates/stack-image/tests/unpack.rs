//! Layers, friendly and hostile, unpacked for real (as root: whiteouts are
//! device nodes).

use std::io::Cursor;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use stack_image::Store;

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let p =
            std::env::temp_dir().join(format!("stack-image-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tar entry; `name` is written raw into the header, so hostile names survive.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (n, b"")
            }
            E::File(n, m, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                (n, d)
            }
            E::Link(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(t).unwrap();
                h.set_mode(0o777);
                (n, b"")
            }
            E::Hard(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                let raw = &mut h.as_old_mut().linkname;
                raw[..t.len()].copy_from_slice(t.as_bytes());
                (n, b"")
            }
        };
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn store(t: &Tmp) -> Store {
    Store::open(&t.0.join("store")).unwrap()
}

#[test]
fn a_layer_keeps_modes_links_whiteouts_and_opaque_dirs() {
    let t = Tmp::new("ok");
    let s = store(&t);
    let data = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/hosts", 0o644, b"127.0.0.1 localhost\n"),
        E::File("bin/tool", 0o4755, b"#!/bin/sh\n"),
        E::Link("bin/alias", "tool"),
        E::Hard("bin/hard", "bin/tool"),
        E::File("var/.wh.gone", 0o644, b""),
        E::File("opt/.wh..wh..opq", 0o644, b""),
    ]);
    let (chain, diff, bytes) = s
        .add_layer("test", None, Cursor::new(data.clone()))
        .unwrap();
    assert_eq!(chain, diff);
    assert_eq!(
        diff,
        format!("sha256:{}", stack_image::store::sha256_hex(&data)),
        "the diff id is the digest of the whole tar"
    );
    assert_eq!(bytes, 30);
    let d = s.layer_dir(&chain);
    assert_eq!(
        std::fs::read_to_string(d.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(
        std::fs::metadata(d.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::read_link(d.join("bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        std::fs::metadata(d.join("bin/hard")).unwrap().ino(),
        std::fs::metadata(d.join("bin/tool")).unwrap().ino()
    );
    let wh = std::fs::symlink_metadata(d.join("var/gone")).unwrap();
    assert_eq!(
        (wh.mode() & 0o170000, wh.rdev()),
        (0o020000, 0),
        "whiteouts are 0:0 character devices"
    );
    assert_eq!(
        xattr::get(d.join("opt"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        std::fs::metadata(d.join("etc/hosts")).unwrap().mtime(),
        1_700_000_000
    );
    // The same layer again: the chain is there already.
    let (chain2, _, _) = s.add_layer("again", None, Cursor::new(data)).unwrap();
    assert_eq!(chain, chain2);
}

#[test]
fn hostile_layers_never_write_outside() {
    let t = Tmp::new("hostile");
    let outside = t.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let s = store(&t);
    let layers_before = || std::fs::read_dir(s.root().join("layers")).unwrap().count();
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "dotdot",
            layer(&[E::File("../../escape", 0o644, b"x")]),
            Some("`..` in a layer path"),
        ),
        (
            "hardlink to a host file",
            layer(&[E::Hard("passwd", "/etc/passwd")]),
            Some("outside the layer"),
        ),
        (
            "whiteout of ..",
            layer(&[E::File("a/.wh...", 0o644, b"")]),
            Some("malformed whiteout"),
        ),
    ];
    for (what, data, err) in cases {
        let before = layers_before();
        let e = s
            .add_layer(what, None, Cursor::new(data))
            .unwrap_err()
            .to_string();
        assert!(e.contains(err.unwrap()), "{what}: {e}");
        assert_eq!(
            layers_before(),
            before,
            "{what}: a failed layer left something in the store"
        );
    }
    // An absolute path is taken inside the layer.
    let (c, _, _) = s
        .add_layer(
            "abs",
            None,
            Cursor::new(layer(&[E::File("/abs/file", 0o644, b"in")])),
        )
        .unwrap();
    assert!(s.layer_dir(&c).join("abs/file").exists());
    // A symlink pointing outside, then a file through it: the file lands inside.
    let link_target = outside.to_str().unwrap();
    let (c, _, _) = s
        .add_layer(
            "symlink escape",
            None,
            Cursor::new(layer(&[
                E::Link("evil", link_target),
                E::File("evil/planted", 0o644, b"x"),
            ])),
        )
        .unwrap();
    assert!(
        !outside.join("planted").exists(),
        "a write went through a symlink to the host"
    );
    assert!(s
        .layer_dir(&c)
        .join(link_target.trim_start_matches('/'))
        .join("planted")
        .exists());
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn a_truncated_layer_names_itself_and_leaves_the_store_as_it_was() {
    let t = Tmp::new("trunc");
    let s = store(&t);
    let mut data = layer(&[E::File("big", 0o644, &[7u8; 4096])]);
    data.truncate(1024);
    let e = s
        .add_layer("sha256:feedface", None, Cursor::new(data))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer sha256:feedface"), "{e}");
    assert_eq!(
        std::fs::read_dir(s.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}
