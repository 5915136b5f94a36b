//! `STACK_RUNTIME_BUILD`: a digest of this crate's sources, and of the
//! crates whose code runs in the binaries it chooses beside `stack`
//! (`stack-net`: the DNS server of `stack-dns`; `stack-sys`). `stack`,
//! `stack-init` and `stack-dns` all carry it; a hidden mode refuses a
//! payload from a build other than its own, and a binary beside `stack`
//! that does not carry it is not run.

use std::hash::{Hash as _, Hasher as _};

fn main() {
    let mut files = Vec::new();
    for dir in ["src", "../stack-net/src", "../stack-sys/src"] {
        println!("cargo:rerun-if-changed={dir}");
        collect(std::path::Path::new(dir), &mut files);
    }
    files.sort();
    // SipHash with fixed keys: the same sources give the same digest.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.hash(&mut hasher);
        std::fs::read(f).expect("a source file").hash(&mut hasher);
    }
    println!(
        "cargo:rustc-env=STACK_RUNTIME_BUILD={:016x}",
        hasher.finish()
    );
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source directory") {
        let path = entry.expect("a directory entry").path();
        match path.is_dir() {
            true => collect(&path, out),
            false => out.push(path),
        }
    }
}
