//! Property tests of the layer unpacker: hostile layers generated from a
//! small alphabet (see `support/hostile.rs`), each unpacked into a fresh
//! destination in a sandbox of sentinels, which must be exactly as it was
//! afterwards, whether the unpack succeeded or refused the layer. As root,
//! as the store unpacks (device nodes are real), on a thread chrooted into a
//! jail of its own, so that a bug found here cannot reach the host.
//!
//! `PROPTEST_CASES` sets the number of cases (default 512 per property).

#[path = "support/hostile.rs"]
mod hostile;

use hostile::{Kind, Op, Target, MODES, NAMES, SPECIAL, XATTRS};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// A name of [`NAMES`], mostly `a` and `b`, so that entries of a layer
/// often meet what the earlier ones made (a directory over a symlink, a
/// file under it, a whiteout beside it).
fn name() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => Just(0usize),
        6 => Just(1usize),
        2 => Just(2usize),
        1 => Just(3usize),
        1 => 4..NAMES.len(),
    ]
}

/// Names of entries: mostly plain (a `..` makes the whole layer refused).
fn entry_comps() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        8 => prop::collection::vec(name(), 1..=2),
        1 => prop::collection::vec(name(), 0..=4),
    ]
}

/// Components of link targets: climbing often.
fn link_comps(max: usize) -> impl Strategy<Value = Vec<usize>> {
    let c = prop_oneof![3 => Just(4usize), 4 => name()];
    prop::collection::vec(c, 0..=max)
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => link_comps(4).prop_map(Target::Rel),
        1 => link_comps(3).prop_map(Target::Abs),
        3 => (0u8..5, link_comps(2)).prop_map(|(up, p)| Target::Sandbox(up, p)),
        1 => link_comps(2).prop_map(Target::Nowhere),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Dir),
        3 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Kind::File),
        4 => target().prop_map(Kind::Symlink),
        2 => target().prop_map(Kind::Hard),
        1 => (0u32..2, 0u32..6).prop_map(|(a, b)| Kind::Char(a, b)),
        1 => (7u32..8, 0u32..2).prop_map(|(a, b)| Kind::Block(a, b)),
        1 => Just(Kind::Fifo),
        1 => prop::sample::select(&b"gxLKV7S\0"[..]).prop_map(Kind::Other),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (
        entry_comps(),
        prop::option::weighted(0.25, prop_oneof![9 => 0..4usize, 1 => 4..SPECIAL.len()]),
        0u8..3,
        kind(),
        prop::sample::select(MODES),
        prop::collection::vec(0..XATTRS.len(), 0..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(path, special, prefix, kind, mode, xattrs, pax)| Op {
            path,
            special,
            prefix,
            kind,
            mode,
            xattrs,
            pax,
        })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        // No persistence file (the jail has no sources): a failure prints
        // its minimal case.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs a property in a jail; prints how many cases ran and how many
/// layers the unpacker took (the rest it refused).
fn property<S: Strategy + Send>(what: &str, strategy: S, check: fn(&S::Value) -> bool)
where
    S::Value: Send,
{
    let (ran, ok) = hostile::in_jail(what, move || {
        let ran = std::cell::Cell::new(0u32);
        let ok = std::cell::Cell::new(0u32);
        let mut runner = TestRunner::new(config());
        let result = runner.run(&strategy, |v| {
            ran.set(ran.get() + 1);
            if check(&v) {
                ok.set(ok.get() + 1);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{what}: {e}");
        }
        (ran.get(), ok.get())
    });
    println!("{what}: {ran} cases run, {ok} layers unpacked, the others refused");
}

/// The alphabet's layers: nothing outside the destination changes.
#[test]
fn hostile_layers_stay_inside() {
    property(
        "hostile layers",
        prop::collection::vec(op(), 1..12),
        |ops| hostile::unpack_and_check(|sb| hostile::layer(ops, sb)),
    );
}

/// Any bytes, as the fuzz target takes them: decoded into entries, and as
/// a raw (possibly gzipped) tar.
#[test]
fn any_bytes_stay_inside() {
    property("any bytes", any::<Vec<u8>>(), |data| {
        let ops = hostile::ops_from_bytes(data);
        let decoded = hostile::unpack_and_check(|sb| hostile::layer(&ops, sb));
        hostile::unpack_and_check(|_| data.clone());
        decoded
    });
}

/// A valid hostile layer with some of its bytes flipped: the tar reader's
/// edge cases (checksums, sizes, PAX records) with entries that still mean
/// something.
#[test]
fn damaged_layers_stay_inside() {
    property(
        "damaged layers",
        (
            prop::collection::vec(op(), 1..8),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ),
        |(ops, flips)| {
            hostile::unpack_and_check(|sb| {
                let mut tar = hostile::layer(ops, sb);
                for (at, x) in flips {
                    let i = at.index(tar.len());
                    tar[i] ^= x;
                }
                tar
            })
        },
    );
}

/// Hand-picked sequences the alphabet can make, kept as plain cases so they
/// run every time whatever the generator draws.
#[test]
fn known_hostile_sequences_stay_inside() {
    use Kind::*;
    use Target::*;
    let a = 0;
    let b = 1;
    let c = 2;
    let up = 4;
    let op = |path: Vec<usize>, special: Option<usize>, kind: Kind| Op {
        path,
        special,
        prefix: 0,
        kind,
        mode: 0o777,
        xattrs: vec![0, 1, 5],
        pax: false,
    };
    let cases: Vec<Vec<Op>> = vec![
        // A directory over a symlink to the holder, then its contents.
        vec![
            op(vec![a], None, Symlink(Sandbox(0, vec![]))),
            op(vec![a], None, Dir),
        ],
        vec![
            op(vec![a], None, Symlink(Rel(vec![up, up]))),
            op(vec![a], None, Dir),
            op(vec![a, b], None, Dir),
            op(vec![a, a], None, File(b"x".to_vec())),
        ],
        // Whiteouts and opaque markers under a symlinked directory.
        vec![
            op(vec![a], None, Symlink(Sandbox(0, vec![]))),
            op(vec![a], Some(0), File(vec![])),
            op(vec![a, b], Some(3), File(vec![])),
            op(vec![a, b], Some(2), File(vec![])),
        ],
        // Hardlinks through symlinks and out.
        vec![
            op(vec![a], None, Symlink(Sandbox(1, vec![]))),
            op(vec![c], None, Hard(Rel(vec![a, a]))),
            op(vec![c], None, Hard(Sandbox(0, vec![a]))),
            op(vec![c], None, Hard(Rel(vec![up, a]))),
        ],
        // Loops, chains, and a directory time set through a later link.
        vec![
            op(vec![a], None, Symlink(Rel(vec![b]))),
            op(vec![b], None, Symlink(Rel(vec![a]))),
            op(vec![a, c], None, File(vec![])),
            op(vec![c], None, Dir),
            op(vec![c, b], None, Dir),
            op(vec![c], None, Symlink(Sandbox(0, vec![]))),
        ],
        // Devices where a symlink points out.
        vec![
            op(vec![a], None, Symlink(Sandbox(2, vec![b]))),
            op(vec![a, c], None, Char(1, 3)),
            op(vec![a, a], None, Block(7, 0)),
            op(vec![a, b], None, Fifo),
        ],
    ];
    hostile::in_jail("known sequences", move || {
        for ops in cases {
            hostile::unpack_and_check(|sb| hostile::layer(&ops, sb));
        }
    });
}
