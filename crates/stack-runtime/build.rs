//! `STACK_RUNTIME_BUILD`: a digest of this crate's sources. `stack` and
//! `stack-init` (which the runtime re-executes) both carry it, and a
//! hidden mode refuses a payload from a build other than its own.
//! No `rerun-if` line: cargo runs this again whenever a file of the crate
//! changes.

use std::hash::{Hash as _, Hasher as _};

fn main() {
    let mut files = Vec::new();
    collect(std::path::Path::new("src"), &mut files);
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
