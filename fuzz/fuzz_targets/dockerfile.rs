//! Any UTF-8 text as a Dockerfile, a word to expand and a .dockerignore:
//! the parser, the expander and the pattern matcher return a value or an
//! error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_dockerfile::{expand, ignore::Patterns, parse, parse_duration, parse_mount, Command};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(df) = parse(text) {
        assert!(!df.stages.is_empty());
        for stage in &df.stages {
            for ins in &stage.instructions {
                assert!(ins.line >= stage.line);
                if let Command::Run(run) = &ins.command {
                    for m in &run.mounts {
                        let _ = parse_mount(m);
                    }
                }
            }
        }
    }
    let vars = |name: &str| (name.len() % 2 == 0).then(|| format!("<{name}>"));
    for escape in ['\\', '`'] {
        let _ = expand::word(text, escape, &vars);
        let _ = expand::words(text, escape, &vars);
    }
    let _ = parse_duration(text);
    let _ = parse_mount(text);
    if let Ok(patterns) = Patterns::parse(text) {
        for path in text.lines().take(16) {
            let _ = patterns.excludes(path);
            let _ = patterns.may_reinclude_under(path);
        }
        let _ = patterns.excludes("a/b/c.txt");
    }
});
