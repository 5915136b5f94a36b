//! Each architecture's system call table (data/*.tbl: `name number` a
//! line, in number order), as a static slice sorted by name: a filter's
//! compilation looks its calls up there, where it parsed the text into a
//! map each time (a third of a compilation, once per container start).

use std::fmt::Write as _;

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut code = String::new();
    for (name, file) in [
        ("X86_64", "x86_64"),
        ("X86", "i386"),
        ("X32", "x32"),
        ("AARCH64", "aarch64"),
    ] {
        let path = format!("data/{file}.tbl");
        println!("cargo::rerun-if-changed={path}");
        let text = std::fs::read_to_string(&path).expect("the tables are in the crate");
        let mut calls: Vec<(&str, u32)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(n, nr)| Some((n, nr.trim().parse().ok()?)))
            .collect();
        // Sorted by name; of a name given twice, the last number counts.
        calls.reverse();
        calls.sort_by_key(|(n, _)| *n);
        calls.dedup_by_key(|(n, _)| *n);
        writeln!(code, "static {name}_BY_NAME: &[(&str, u32)] = &[").unwrap();
        for (n, nr) in calls {
            writeln!(code, "    ({n:?}, {nr}),").unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(out.join("tables.rs"), code).expect("OUT_DIR is writable");
}
