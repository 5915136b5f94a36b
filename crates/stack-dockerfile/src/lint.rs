//! Lint checks of a parsed Dockerfile (`build --check`): BuildKit's rules
//! that need no build to decide, under their names and with their
//! messages, so a warning reads as it would from `docker build --check`.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Command, Dockerfile, Form, Instruction};

/// One warning: the rule's name (`JSONArgsRecommended`), the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static str,
    pub line: usize,
    pub message: String,
}

/// The warnings of `df` (parsed from `text`), in line order; `args` are
/// the build arguments given (they declare nothing, but name the ones a
/// `FROM` may use).
pub fn check(df: &Dockerfile, text: &str, args: &BTreeMap<String, String>) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |rule, line, message: String| {
        out.push(Warning {
            rule,
            line,
            message,
        })
    };
    let lines: Vec<&str> = text.lines().collect();
    for (line, w) in &df.warnings {
        if w.starts_with("empty continuation") {
            warn(
                "NoEmptyContinuation",
                *line,
                "Empty continuation line".into(),
            );
        }
    }
    // The keywords' casing: the majority's, or upper case on a tie.
    let instructions = || df.stages.iter().flat_map(|s| &s.instructions);
    let keyword = |i: &Instruction| {
        i.original
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let written: Vec<(usize, String)> = df
        .stages
        .iter()
        .map(|s| (s.line, from_words(&lines, s.line).0))
        .chain(instructions().map(|i| (i.line, keyword(i))))
        .collect();
    // (A mixed-case keyword counts for neither side.)
    let count = |f: fn(&str) -> String| written.iter().filter(|(_, k)| *k == f(k)).count();
    let upper_majority = count(|k| k.to_uppercase()) >= count(|k| k.to_lowercase());
    for (line, k) in &written {
        let (want, case) = match upper_majority {
            true => (k.to_uppercase(), "uppercase"),
            false => (k.to_lowercase(), "lowercase"),
        };
        if *k != want {
            warn(
                "ConsistentInstructionCasing",
                *line,
                format!("Command '{k}' should match the case of the command majority ({case})"),
            );
        }
    }
    // Declared in the file, or BuildKit's own (the platforms').
    let declared: BTreeSet<&str> = df
        .global_args
        .iter()
        .map(|a| a.name.as_str())
        .chain(PLATFORM_ARGS)
        .collect();
    for stage in &df.stages {
        let (from, as_word) = from_words(&lines, stage.line);
        if let Some(a) = as_word {
            let from_upper = from == from.to_uppercase();
            let as_upper = a == a.to_uppercase();
            if from_upper != as_upper {
                warn(
                    "FromAsCasing",
                    stage.line,
                    format!("'{a}' and '{from}' keywords' casing do not match"),
                );
            }
        }
        if let Some(name) = written_name(&lines, stage.line) {
            if name != name.to_lowercase() {
                warn(
                    "StageNameCasing",
                    stage.line,
                    format!("Stage name '{name}' should be lowercase"),
                );
            }
        }
        if let Some(name) = &stage.name {
            if ["scratch", "context"].contains(&name.as_str()) {
                warn(
                    "ReservedStageName",
                    stage.line,
                    format!("Stage name should not use the same name as reserved stage '{name}'"),
                );
            }
        }
        for var in variables(&stage.base) {
            if !declared.contains(var.as_str()) && !args.contains_key(&var) {
                warn(
                    "UndefinedArgInFrom",
                    stage.line,
                    format!("FROM argument '{var}' is not declared"),
                );
            }
        }
        stage_rules(&stage.instructions, &mut warn);
    }
    out.sort_by_key(|w| w.line);
    out
}

/// The arguments BuildKit defines for every build.
const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The rules within one stage.
fn stage_rules(instructions: &[Instruction], warn: &mut impl FnMut(&'static str, usize, String)) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut absolute_workdir = false;
    for i in instructions {
        let k = i.keyword();
        match &i.command {
            Command::Cmd(Form::Shell(_)) | Command::Entrypoint(Form::Shell(_)) => warn(
                "JSONArgsRecommended",
                i.line,
                format!(
                    "JSON arguments recommended for {k} to prevent unintended behavior related to OS signals"
                ),
            ),
            Command::Maintainer(_) => warn(
                "MaintainerDeprecated",
                i.line,
                "Maintainer instruction is deprecated in favor of using label".into(),
            ),
            Command::Workdir(w) => {
                if w.starts_with('/') || w.starts_with('$') {
                    absolute_workdir = true;
                } else if !absolute_workdir {
                    warn(
                        "WorkdirRelativePath",
                        i.line,
                        format!("Relative workdir \"{w}\" can have unexpected results if the base image changes"),
                    );
                }
            }
            Command::Expose(ports) => {
                for p in ports {
                    if let Some((_, proto)) = p.split_once('/') {
                        if proto != proto.to_lowercase() {
                            warn(
                                "ExposeProtoCasing",
                                i.line,
                                format!("Defined protocol '{p}' in EXPOSE instruction should be lowercase"),
                            );
                        }
                    }
                }
            }
            Command::Env(_) | Command::Label(_) if legacy_pairs(&i.original) => warn(
                "LegacyKeyValueFormat",
                i.line,
                format!("\"{k} key=value\" should be used instead of legacy \"{k} key value\" format"),
            ),
            _ => {}
        }
        let secret_names: Vec<&str> = match &i.command {
            Command::Env(pairs) => pairs.iter().map(|(n, _)| n.as_str()).collect(),
            Command::Arg(args) => args.iter().map(|a| a.name.as_str()).collect(),
            _ => Vec::new(),
        };
        for n in secret_names.into_iter().filter(|n| sensitive(n)) {
            warn(
                "SecretsUsedInArgOrEnv",
                i.line,
                format!("Do not use ARG or ENV instructions for sensitive data ({k} \"{n}\")"),
            );
        }
        if matches!(k, "CMD" | "ENTRYPOINT" | "HEALTHCHECK") {
            *seen.entry(k).or_default() += 1;
            if seen[k] == 2 {
                warn(
                    "MultipleInstructionsDisallowed",
                    i.line,
                    format!("Multiple {k} instructions should not be used in the same stage because only the last one will be used"),
                );
            }
        }
    }
}

/// The `FROM` keyword as written on `line`, and its `AS` word if any.
fn from_words(lines: &[&str], line: usize) -> (String, Option<String>) {
    let words: Vec<&str> = lines
        .get(line.wrapping_sub(1))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let from = words.first().copied().unwrap_or("FROM").to_string();
    let as_word = words
        .iter()
        .rev()
        .nth(1)
        .filter(|w| w.eq_ignore_ascii_case("as"))
        .map(|w| w.to_string());
    (from, as_word)
}

/// The stage's name as written (not lower-cased).
fn written_name(lines: &[&str], line: usize) -> Option<String> {
    let (_, as_word) = from_words(lines, line);
    as_word?;
    lines
        .get(line - 1)?
        .split_whitespace()
        .last()
        .map(str::to_string)
}

/// Whether an ENV or LABEL is in the legacy form (`ENV key value`).
fn legacy_pairs(original: &str) -> bool {
    let mut words = original.split_whitespace().skip(1);
    words.next().is_some_and(|first| !first.contains('='))
}

/// BuildKit's rule: a name with a word such as `password`, `secret`,
/// `token` or `key` (by `_` or the ends), but not the common public ones.
fn sensitive(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const PUBLIC: &[&str] = &["public", "file"];
    let lower = name.to_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    parts.iter().any(|p| WORDS.contains(p)) && !parts.iter().any(|p| PUBLIC.contains(p))
}

/// The variables `$NAME` and `${NAME...}` in a word.
fn variables(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<(&'static str, usize)> {
        let df = crate::parse(text).unwrap();
        check(&df, text, &BTreeMap::new())
            .into_iter()
            .map(|w| (w.rule, w.line))
            .collect()
    }

    #[test]
    fn a_clean_dockerfile_has_no_warnings() {
        let text = "ARG BASE=alpine\nFROM $BASE AS build\nFROM base-$TARGETARCH\nWORKDIR /src\nENV A=b\nCMD [\"run\"]\n";
        assert_eq!(rules(text), vec![]);
    }

    #[test]
    fn each_rule_where_buildkit_puts_it() {
        let text = "FROM alpine as Build\nfrom alpine AS other\nMAINTAINER me\nWORKDIR app\nENV API_TOKEN x\nEXPOSE 80/TCP\nCMD run\nCMD run\nFROM $NOPE\nARG DB_PASSWORD\n";
        assert_eq!(
            rules(text),
            vec![
                ("FromAsCasing", 1),
                ("StageNameCasing", 1),
                ("ConsistentInstructionCasing", 2),
                ("FromAsCasing", 2),
                ("MaintainerDeprecated", 3),
                ("WorkdirRelativePath", 4),
                ("LegacyKeyValueFormat", 5),
                ("SecretsUsedInArgOrEnv", 5),
                ("ExposeProtoCasing", 6),
                ("JSONArgsRecommended", 7),
                ("JSONArgsRecommended", 8),
                ("MultipleInstructionsDisallowed", 8),
                ("UndefinedArgInFrom", 9),
                ("SecretsUsedInArgOrEnv", 10),
            ]
        );
    }

    #[test]
    fn names_that_look_secret() {
        assert!(sensitive("AWS_SECRET_ACCESS_KEY"));
        assert!(sensitive("password"));
        assert!(!sensitive("PUBLIC_KEY"));
        assert!(!sensitive("KEYBOARD"));
    }
}
