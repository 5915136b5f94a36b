//! Our command line against `docker compose`'s, from its reference kept
//! as data (`tests/data/compose-reference.tsv`, with its version): every
//! command and flag it has is ours too, or is in the list of what is not
//! yet (`tests/data/compose-missing.tsv`, with why), and that list is
//! exact, so a gap shows and a closed one must be struck off.

use std::collections::BTreeSet;

const REFERENCE: &str = include_str!("../../../../tests/data/compose-reference.tsv");
const MISSING: &str = include_str!("../../../../tests/data/compose-missing.tsv");

fn rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect()
}

/// What of `docker compose`'s command line ours lacks: `command`,
/// `command --flag`, or `command -s` for a short flag that differs.
fn missing() -> BTreeSet<String> {
    let root = super::command();
    let mut out = BTreeSet::new();
    for row in rows(REFERENCE) {
        let (cmd, long, short) = (
            row[0],
            row.get(1).copied().unwrap_or(""),
            row.get(2).copied().unwrap_or(""),
        );
        let c = if cmd.is_empty() {
            Some(&root)
        } else {
            root.get_subcommands()
                .find(|s| s.get_name() == cmd || s.get_all_aliases().any(|a| a == cmd))
        };
        let Some(c) = c else {
            if long.is_empty() {
                out.insert(cmd.to_string());
            }
            continue;
        };
        if long.is_empty() {
            continue;
        }
        // Global flags count wherever they are.
        let arg = c
            .get_arguments()
            .chain(root.get_arguments().filter(|a| a.is_global_set()))
            .find(|a| {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&long))
            });
        let name = if cmd.is_empty() {
            format!("--{long}")
        } else {
            format!("{cmd} --{long}")
        };
        match arg {
            None => {
                out.insert(name);
            }
            Some(a) if !short.is_empty() => {
                let s = short.chars().next();
                if a.get_short() != s
                    && !a
                        .get_all_short_aliases()
                        .is_some_and(|al| al.contains(&s.unwrap_or(' ')))
                {
                    out.insert(format!("{name} -{short}"));
                }
            }
            Some(_) => {}
        }
    }
    out
}

#[test]
fn every_docker_compose_command_and_flag_is_ours_or_listed_as_missing() {
    let missing = missing();
    let declared: BTreeSet<String> = rows(MISSING).iter().map(|r| r[0].to_string()).collect();
    let new_gaps: Vec<&String> = missing.difference(&declared).collect();
    let closed: Vec<&String> = declared.difference(&missing).collect();
    assert!(
        new_gaps.is_empty() && closed.is_empty(),
        "docker compose has, and stack lacks (add them, or to tests/data/compose-missing.tsv with why): {new_gaps:#?}\nlisted as missing but there (strike them off): {closed:#?}"
    );
}

/// Every command's `--help` teaches by an example.
#[test]
fn every_command_has_an_example() {
    fn walk(c: &clap::Command, path: String, missing: &mut Vec<String>) {
        for s in c
            .get_subcommands()
            .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        {
            let p = format!("{path} {}", s.get_name()).trim().to_string();
            if !s
                .get_after_help()
                .is_some_and(|h| h.to_string().contains("stack "))
            {
                missing.push(p.clone());
            }
            walk(s, p, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&super::command(), String::new(), &mut missing);
    assert!(
        missing.is_empty(),
        "commands without an example: {missing:?}"
    );
}
