//! The parser.
//!
//! Physical lines are read once, in order: parser directives at the top,
//! then logical lines (comments dropped, continuations joined), each parsed
//! into an instruction; a `RUN`, `COPY` or `ADD` with heredocs then reads
//! their bodies from the lines that follow.

use crate::*;

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::new(text);
    let directives = read_directives(&mut reader)?;
    let escape = directives.escape;
    let mut ctx = Ctx {
        escape,
        warnings: Vec::new(),
    };
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();

    while let Some((line, logical)) = next_logical_line(&mut reader, &mut ctx) {
        match instruction(&logical, line, &mut reader, &mut ctx)? {
            Parsed::From(stage) => {
                if let Some(name) = &stage.name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        return Err(error(
                            line,
                            "FROM",
                            format!("duplicate stage name {name:?}"),
                        ));
                    }
                }
                stages.push(stage);
            }
            Parsed::Instruction(ins) => {
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(ins),
                    None => match ins.command {
                        Command::Arg(args) => global_args.extend(args),
                        _ => return Err(error(
                            line,
                            ins.keyword(),
                            "no build stage in context: only ARG may come before the first FROM"
                                .into(),
                        )),
                    },
                }
            }
        }
    }
    if stages.is_empty() {
        let last = reader.lines.len().max(1);
        return Err(ParseError {
            line: last,
            instruction: None,
            message: "no FROM instruction: the Dockerfile has no stage to build".into(),
        });
    }
    Ok(Dockerfile {
        directives,
        global_args,
        stages,
        warnings: ctx.warnings,
    })
}

fn error(line: usize, keyword: &str, message: String) -> ParseError {
    ParseError {
        line,
        instruction: Some(keyword.to_string()),
        message,
    }
}

/// The physical lines (`\n` or `\r\n` ended) and where we are.
struct Reader<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        // A final newline ends the last line; it does not start another.
        if text.ends_with('\n') {
            lines.pop();
        }
        Reader { lines, pos: 0 }
    }

    /// The next line and its number (1-based).
    fn next(&mut self) -> Option<(usize, &'a str)> {
        let line = self.lines.get(self.pos)?;
        self.pos += 1;
        Some((self.pos, line))
    }

    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.pos).copied()
    }
}

struct Ctx {
    escape: char,
    warnings: Vec<(usize, String)>,
}

fn is_blank(c: char) -> bool {
    c.is_whitespace()
}

/// `# key=value` with a known key; scanning stops at the first other line.
fn read_directives(reader: &mut Reader) -> Result<Directives, ParseError> {
    let mut directives = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    while let Some(line) = reader.peek() {
        let Some((key, value)) = directive(line) else {
            break;
        };
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            // An unknown directive is a comment, and ends the directives.
            break;
        }
        let number = reader.pos + 1;
        reader.pos += 1;
        let fail = |message: String| ParseError {
            line: number,
            instruction: None,
            message,
        };
        if seen.contains(&key) {
            return Err(fail(format!("only one {key} parser directive can be used")));
        }
        seen.push(key.clone());
        match key.as_str() {
            "syntax" => directives.syntax = Some(value),
            "check" => directives.check = Some(value),
            _ => {
                directives.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(fail(format!(
                            "invalid escape token {value:?}: it must be ` or \\"
                        )))
                    }
                }
            }
        }
    }
    Ok(directives)
}

/// `#` spaces, a key (a letter then letters or digits), spaces, `=`,
/// spaces, a non-empty value (trailing spaces trimmed).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start_matches(is_blank).strip_prefix('#')?;
    let rest = rest.trim_start_matches(is_blank);
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_len..]
        .trim_start_matches(is_blank)
        .strip_prefix('=')?;
    let value = value.trim_matches(is_blank);
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// A line ending in the escape character (then spaces or tabs) continues:
/// the text without it, and false. Otherwise the line and true.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(joined) => (joined, false),
        None => (line, true),
    }
}

/// The next logical line and its first physical line's number: comments
/// and blank lines skipped, continuations joined (comment lines inside
/// dropped, empty ones warned of).
fn next_logical_line(reader: &mut Reader, ctx: &mut Ctx) -> Option<(usize, String)> {
    loop {
        let (number, raw) = reader.next()?;
        let first = raw.trim_start_matches(is_blank);
        if first.starts_with('#') {
            continue;
        }
        let (text, mut done) = trim_continuation(first, ctx.escape);
        if done && text.trim().is_empty() {
            continue;
        }
        let mut logical = text.to_string();
        let mut empty_continuation = false;
        while !done {
            let Some((_, raw)) = reader.next() else { break };
            let trimmed = raw.trim_start_matches(is_blank);
            if trimmed.starts_with('#') {
                continue;
            }
            if trimmed.is_empty() {
                empty_continuation = true;
                continue;
            }
            let (text, end) = trim_continuation(raw, ctx.escape);
            logical.push_str(text);
            done = end;
        }
        if logical.trim().is_empty() {
            continue;
        }
        if empty_continuation {
            ctx.warnings.push((
                number,
                format!("empty continuation line in: {}", logical.trim()),
            ));
        }
        return Some((number, logical));
    }
}

enum Parsed {
    From(Stage),
    Instruction(Instruction),
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
];

/// Splits at the first run of whitespace: the first word and the rest
/// (the rest with its leading whitespace removed).
fn split_first_word(s: &str) -> (&str, &str) {
    match s.find(is_blank) {
        Some(i) => (&s[..i], s[i..].trim_start_matches(is_blank)),
        None => (s, ""),
    }
}

/// One logical line, and the heredoc bodies it asks for.
fn instruction(
    logical: &str,
    line: usize,
    reader: &mut Reader,
    ctx: &mut Ctx,
) -> Result<Parsed, ParseError> {
    let original = logical.trim_matches(is_blank);
    let (word, rest) = split_first_word(original);
    let upper = word.to_ascii_uppercase();
    let Some(keyword) = KEYWORDS.iter().copied().find(|k| *k == upper) else {
        return Err(error(line, &upper, format!("unknown instruction: {upper}")));
    };
    let fail = |message: String| error(line, keyword, message);
    let (flag_words, args) = extract_flags(rest, ctx.escape);
    let flags = Flags::new(flag_words);
    let escape = ctx.escape;

    let command = match keyword {
        "FROM" => {
            flags
                .check(keyword, &[("platform", Kind::Str)])
                .map_err(fail)?;
            let words: Vec<&str> = args.split_whitespace().collect();
            let (base, name) = match words.as_slice() {
                [base] => (*base, None),
                [base, kw, name] if kw.eq_ignore_ascii_case("as") => {
                    (*base, Some(name.to_ascii_lowercase()))
                }
                [_, kw, _] => {
                    return Err(fail(format!(
                        "expected AS, found {kw:?}: FROM image [AS name]"
                    )))
                }
                _ => {
                    return Err(fail(
                        "FROM requires either one or three arguments: FROM image [AS name]".into(),
                    ))
                }
            };
            if let Some(name) = &name {
                if !valid_stage_name(name) {
                    return Err(fail(format!(
                        "invalid name for build stage: {name:?}, it must start with a letter and hold only letters, digits, '_', '.', '-'"
                    )));
                }
            }
            return Ok(Parsed::From(Stage {
                line,
                base: base.to_string(),
                name,
                platform: flags.string("platform"),
                instructions: Vec::new(),
            }));
        }
        "RUN" => {
            flags
                .check(
                    keyword,
                    &[
                        ("mount", Kind::Many),
                        ("network", Kind::Str),
                        ("security", Kind::Str),
                    ],
                )
                .map_err(fail)?;
            if args.is_empty() {
                return Err(fail("RUN requires at least one argument".into()));
            }
            let (form, heredocs) = match json_array(args).map_err(fail)? {
                Some(list) => (Form::Exec(list), Vec::new()),
                None => {
                    let heredocs =
                        read_heredocs(&split_words(args, escape), line, keyword, escape, reader)?;
                    (Form::Shell(args.to_string()), heredocs)
                }
            };
            Command::Run(Run {
                form,
                heredocs,
                mounts: flags.strings("mount"),
                network: flags.string("network"),
                security: flags.string("security"),
            })
        }
        "CMD" | "ENTRYPOINT" => {
            flags.check(keyword, &[]).map_err(fail)?;
            if args.is_empty() {
                return Err(fail(format!("{keyword} requires at least one argument")));
            }
            let form = shell_or_exec(args).map_err(fail)?;
            if keyword == "CMD" {
                Command::Cmd(form)
            } else {
                Command::Entrypoint(form)
            }
        }
        "SHELL" => {
            flags.check(keyword, &[]).map_err(fail)?;
            match json_array(args).map_err(fail)? {
                Some(list) if !list.is_empty() => Command::Shell(list),
                Some(_) => return Err(fail("SHELL requires at least one argument".into())),
                None => return Err(fail("SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]".into())),
            }
        }
        "LABEL" | "ENV" => {
            flags.check(keyword, &[]).map_err(fail)?;
            let pairs = name_values(args, keyword, escape).map_err(fail)?;
            if keyword == "ENV" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "MAINTAINER" => {
            flags.check(keyword, &[]).map_err(fail)?;
            if args.is_empty() {
                return Err(fail("MAINTAINER requires exactly one argument".into()));
            }
            ctx.warnings.push((
                line,
                "MAINTAINER is deprecated: use LABEL maintainer=...".into(),
            ));
            Command::Maintainer(args.to_string())
        }
        "EXPOSE" => {
            flags.check(keyword, &[]).map_err(fail)?;
            let words = split_words(args, escape);
            if words.is_empty() {
                return Err(fail("EXPOSE requires at least one argument".into()));
            }
            Command::Expose(words)
        }
        "ADD" | "COPY" => {
            let mut allowed = vec![
                ("chown", Kind::Str),
                ("chmod", Kind::Str),
                ("link", Kind::Bool),
                ("parents", Kind::Bool),
                ("exclude", Kind::Many),
            ];
            if keyword == "COPY" {
                allowed.push(("from", Kind::Str));
            } else {
                allowed.extend([
                    ("checksum", Kind::Str),
                    ("keep-git-dir", Kind::Bool),
                    ("unpack", Kind::Bool),
                ]);
            }
            flags.check(keyword, &allowed).map_err(fail)?;
            let (mut words, json) = match json_array(args).map_err(fail)? {
                Some(list) => (list, true),
                None => (split_words(args, escape), false),
            };
            if words.len() < 2 {
                return Err(fail(format!(
                    "{keyword} requires at least one source and a destination"
                )));
            }
            let dest = words.pop().unwrap_or_default();
            let mut heredocs = Vec::new();
            if !json {
                if heredoc_word(&dest, escape).is_some() {
                    return Err(fail(format!(
                        "{keyword} cannot take a heredoc as its destination"
                    )));
                }
                heredocs = read_heredocs(&words, line, keyword, escape, reader)?;
                words.retain(|w| heredoc_word(w, escape).is_none());
            }
            let copy = Copy {
                sources: words,
                dest,
                heredocs,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.boolean("link").unwrap_or(false),
                parents: flags.boolean("parents").unwrap_or(false),
                excludes: flags.strings("exclude"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.boolean("keep-git-dir").unwrap_or(false),
                unpack: flags.boolean("unpack"),
            };
            if keyword == "COPY" {
                Command::Copy(copy)
            } else {
                Command::Add(copy)
            }
        }
        "VOLUME" => {
            flags.check(keyword, &[]).map_err(fail)?;
            let words = match json_array(args).map_err(fail)? {
                Some(list) => list,
                None => split_words(args, escape),
            };
            if words.is_empty() {
                return Err(fail("VOLUME requires at least one argument".into()));
            }
            Command::Volume(words)
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            flags.check(keyword, &[]).map_err(fail)?;
            if args.is_empty() {
                return Err(fail(format!("{keyword} requires exactly one argument")));
            }
            let value = args.to_string();
            match keyword {
                "USER" => Command::User(value),
                "WORKDIR" => Command::Workdir(value),
                _ => Command::StopSignal(value),
            }
        }
        "ARG" => {
            flags.check(keyword, &[]).map_err(fail)?;
            let words = split_words(args, escape);
            if words.is_empty() {
                return Err(fail("ARG requires at least one argument".into()));
            }
            let mut list = Vec::new();
            for word in words {
                let (name, default) = match word.split_once('=') {
                    Some((name, default)) => (name.to_string(), Some(default.to_string())),
                    None => (word, None),
                };
                if name.is_empty() {
                    return Err(fail("ARG names can not be blank".into()));
                }
                list.push(Arg {
                    line,
                    name,
                    default,
                });
            }
            Command::Arg(list)
        }
        "ONBUILD" => {
            flags.check(keyword, &[]).map_err(fail)?;
            if args.is_empty() {
                return Err(fail("ONBUILD requires at least one argument".into()));
            }
            let trigger = split_first_word(args).0.to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(fail(
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(fail(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            match instruction(args, line, reader, ctx)? {
                Parsed::Instruction(inner) => Command::Onbuild(Box::new(inner)),
                Parsed::From(_) => {
                    return Err(fail("FROM isn't allowed as an ONBUILD trigger".into()))
                }
            }
        }
        "HEALTHCHECK" => Command::Healthcheck(healthcheck(&flags, args, escape).map_err(fail)?),
        _ => return Err(fail(format!("unknown instruction: {keyword}"))),
    };
    Ok(Parsed::Instruction(Instruction {
        line,
        original: original.to_string(),
        command,
    }))
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

fn healthcheck(flags: &Flags, args: &str, escape: char) -> Result<Healthcheck, String> {
    let (kind, rest) = split_first_word(args);
    if kind.is_empty() {
        return Err("HEALTHCHECK requires at least one argument".into());
    }
    if kind.eq_ignore_ascii_case("NONE") {
        if !flags.items.is_empty() {
            return Err("HEALTHCHECK NONE takes no flags".into());
        }
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::Disable);
    }
    flags.check(
        "HEALTHCHECK",
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    if !kind.eq_ignore_ascii_case("CMD") {
        return Err(format!(
            "unknown type {kind:?} in HEALTHCHECK (try CMD or NONE)"
        ));
    }
    if rest.is_empty() {
        return Err("missing command after HEALTHCHECK CMD".into());
    }
    let test = shell_or_exec(rest)?;
    if test == Form::Exec(Vec::new()) {
        return Err("missing command after HEALTHCHECK CMD".into());
    }
    // Flag values may be quoted; nothing is expanded in them.
    let unquote = |name: &str| -> Result<Option<String>, String> {
        flags
            .string(name)
            .map(|v| expand::word(&v, escape, &|_| None).map_err(|e| format!("--{name}: {e}")))
            .transpose()
    };
    let interval = |name: &str| -> Result<Option<u64>, String> {
        let Some(value) = unquote(name)? else {
            return Ok(None);
        };
        let nanos = duration(&value).map_err(|e| format!("--{name}: {e}"))?;
        match nanos {
            // Zero is "not set" (the default applies).
            0 => Ok(None),
            1..=999_999 => Err(format!("--{name}={value} cannot be less than 1ms")),
            n => Ok(Some(n)),
        }
    };
    let retries = match unquote("retries")? {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| format!("--retries={v}: not a non-negative integer"))?,
        ),
    };
    Ok(Healthcheck::Check {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

/// `Some(list)` for a JSON array of strings, `None` when the text is not
/// a JSON array (the shell form), an error for an array holding anything
/// but strings.
fn json_array(args: &str) -> Result<Option<Vec<String>>, String> {
    let trimmed = args.trim_start_matches(is_blank);
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(trimmed) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn shell_or_exec(args: &str) -> Result<Form, String> {
    Ok(match json_array(args)? {
        Some(list) => Form::Exec(list),
        None => Form::Shell(args.to_string()),
    })
}

/// `key=value ...` or the legacy `key value with spaces`, as written.
fn name_values(args: &str, keyword: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_words(args, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let (key, value) = split_first_word(args);
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments: {keyword} key=value (or the legacy {keyword} key value)"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "syntax error - can't find = in {word:?}: it must be of the form name=value"
            )),
        })
        .collect()
}

/// Words split on whitespace outside quotes, kept as written (quotes and
/// escapes included). An escape character at the very end is dropped.
fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    match chars.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => break,
                    }
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    match chars.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => break,
                    }
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `--name[=value]` words at the start of `rest` (quote aware, kept as
/// written), and the text after them. A bare `--` ends the flags.
fn extract_flags(rest: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start_matches(is_blank);
    while s.starts_with("--") {
        let end = word_end(s, escape);
        let word = &s[..end];
        s = s[end..].trim_start_matches(is_blank);
        if word == "--" {
            break;
        }
        flags.push(word.to_string());
    }
    (flags, s)
}

/// The byte length of the first word of `s` (whitespace outside quotes ends it).
fn word_end(s: &str, escape: char) -> usize {
    let mut quote: Option<char> = None;
    let mut iter = s.char_indices();
    while let Some((i, c)) = iter.next() {
        match quote {
            None if c.is_whitespace() => return i,
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ if c == escape && quote != Some('\'') => {
                iter.next();
            }
            _ => {}
        }
    }
    s.len()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Bool,
    Many,
}

struct Flags {
    items: Vec<(String, Option<String>)>,
}

impl Flags {
    fn new(words: Vec<String>) -> Flags {
        let items = words
            .into_iter()
            .map(|w| {
                let body = &w[2..];
                match body.split_once('=') {
                    Some((name, value)) => (name.to_string(), Some(value.to_string())),
                    None => (body.to_string(), None),
                }
            })
            .collect();
        Flags { items }
    }

    /// Every flag known to the instruction, with a value of its kind, and
    /// only the repeatable ones repeated.
    fn check(&self, keyword: &str, allowed: &[(&str, Kind)]) -> Result<(), String> {
        for (i, (name, value)) in self.items.iter().enumerate() {
            let Some((_, kind)) = allowed.iter().find(|(n, _)| n == name) else {
                let known: Vec<String> = allowed.iter().map(|(n, _)| format!("--{n}")).collect();
                let hint = if known.is_empty() {
                    format!("{keyword} takes no flags")
                } else {
                    format!("{keyword} takes {}", known.join(", "))
                };
                return Err(format!("unknown flag: --{name} ({hint})"));
            };
            if *kind != Kind::Many && self.items[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            match (kind, value) {
                (Kind::Bool, Some(v))
                    if !(v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")) =>
                {
                    return Err(format!(
                        "expecting boolean value for flag --{name}, not: {v}"
                    ));
                }
                (Kind::Str | Kind::Many, None) => {
                    return Err(format!("missing a value on flag: --{name}"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.items
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }

    fn boolean(&self, name: &str) -> Option<bool> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }
}

/// A heredoc word: optional digits (a file descriptor), `<<`, optional
/// `-`, then the terminator word (quoted: no expansion), no other `<`.
/// Returns (name, chomp, expand).
fn heredoc_word(word: &str, escape: char) -> Option<(String, bool, bool)> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest, escape)?;
    if name.is_empty() {
        return None;
    }
    let expand = name == rest;
    Some((name, chomp, expand))
}

/// Quotes and escapes removed (no expansion); None if a quote is unclosed.
fn unquote(s: &str, escape: char) -> Option<String> {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            Some('\'') => out.push(c),
            _ if c == escape => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    quote.is_none().then_some(out)
}

/// The bodies of the heredocs among `words`, read in order from the lines
/// after the instruction.
fn read_heredocs(
    words: &[String],
    line: usize,
    keyword: &str,
    escape: char,
    reader: &mut Reader,
) -> Result<Vec<Heredoc>, ParseError> {
    let mut out = Vec::new();
    for word in words {
        let Some((name, chomp, expand)) = heredoc_word(word, escape) else {
            continue;
        };
        let mut body = String::new();
        let mut terminated = false;
        while let Some((_, raw)) = reader.next() {
            let text = if chomp {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if text == name {
                terminated = true;
                break;
            }
            body.push_str(text);
            body.push('\n');
        }
        if !terminated {
            return Err(error(
                line,
                keyword,
                format!("unterminated heredoc <<{name} (started on line {line}): no line {name:?} before the end of the file"),
            ));
        }
        out.push(Heredoc { name, body, expand });
    }
    Ok(out)
}

/// A `--mount` value: comma-separated fields (CSV: a field may be quoted).
pub(crate) fn mount(value: &str) -> Result<Mount, String> {
    let fields = csv_fields(value)?;
    let mut m = Mount::default();
    let mut kind_seen = false;
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        if key == "type" {
            if kind_seen {
                return Err("mount type specified twice".into());
            }
            kind_seen = true;
            m.kind = match val.map(str::to_ascii_lowercase).as_deref() {
                Some("bind") => MountKind::Bind,
                Some("cache") => MountKind::Cache,
                Some("tmpfs") => MountKind::Tmpfs,
                Some("secret") => MountKind::Secret,
                Some("ssh") => MountKind::Ssh,
                _ => return Err(format!("unsupported mount type {:?}", val.unwrap_or(""))),
            };
        }
    }
    let kind_name = match m.kind {
        MountKind::Bind => "bind",
        MountKind::Cache => "cache",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Secret => "secret",
        MountKind::Ssh => "ssh",
    };
    let unexpected = |key: &str| format!("unexpected key '{key}' for mount type '{kind_name}'");
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| {
            v.ok_or_else(|| format!("mount option {key:?} needs a value ({key}=...)"))
        };
        let boolean = |v: &Option<String>| -> Result<bool, String> {
            match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("true" | "1" | "t") => Ok(true),
                Some("false" | "0" | "f") => Ok(false),
                Some(other) => Err(format!("invalid value for {key}: {other}")),
            }
        };
        let number = |v: Option<String>, radix: u32| -> Result<u32, String> {
            let v = need(v)?;
            u32::from_str_radix(&v, radix).map_err(|_| format!("invalid value for {key}: {v}"))
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => m.target = Some(need(val)?),
            "source" | "src" => m.source = Some(need(val)?),
            "from" => m.from = Some(need(val)?),
            "ro" | "readonly" => m.read_only = Some(boolean(&val)?),
            "rw" | "readwrite" => m.read_only = Some(!boolean(&val)?),
            "id" => m.id = Some(need(val)?),
            "sharing" => {
                if m.kind != MountKind::Cache {
                    return Err(unexpected(&key));
                }
                let v = need(val)?;
                m.sharing = match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {v:?} (shared, private or locked)"
                        ))
                    }
                };
            }
            "mode" => m.mode = Some(number(val, 8)?),
            "uid" => m.uid = Some(number(val, 10)?),
            "gid" => m.gid = Some(number(val, 10)?),
            "required" => {
                if !matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
                    return Err(unexpected(&key));
                }
                m.required = boolean(&val)?;
            }
            "size" => {
                if m.kind != MountKind::Tmpfs {
                    return Err(unexpected(&key));
                }
                let v = need(val)?;
                m.size =
                    Some(ram_in_bytes(&v).ok_or_else(|| format!("invalid value for size: {v}"))?);
            }
            "env" => {
                if m.kind != MountKind::Secret {
                    return Err(unexpected(&key));
                }
                m.env = Some(need(val)?);
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if matches!(m.kind, MountKind::Bind | MountKind::Tmpfs)
        && (m.mode.is_some() || m.uid.is_some() || m.gid.is_some())
    {
        return Err(format!("mode/uid/gid not allowed for {kind_name} mounts"));
    }
    match m.kind {
        MountKind::Bind | MountKind::Cache | MountKind::Tmpfs => {
            if m.target.as_deref().is_none_or(str::is_empty) {
                return Err(format!(
                    "a {kind_name} mount requires a target (target=/path)"
                ));
            }
        }
        MountKind::Secret => {
            if m.from.is_some() {
                return Err("a secret mount cannot have a from".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("a secret mount cannot set both source and id".into());
            }
            if m.id.is_none() {
                m.id = m.source.clone().or_else(|| {
                    m.target
                        .as_deref()
                        .map(|t| t.trim_end_matches('/'))
                        .and_then(|t| t.rsplit('/').next())
                        .filter(|b| !b.is_empty())
                        .map(str::to_string)
                });
            }
            if m.id.is_none() {
                return Err("a secret mount needs an id, a source or a target".into());
            }
        }
        MountKind::Ssh => {
            if m.id.is_none() {
                m.id = Some("default".into());
            }
        }
    }
    Ok(m)
}

fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unclosed quote in mount {value:?}")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after a quoted field in mount {value:?}"
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// `1024`, `64m`, `1.5g`, `512k`, `2GiB`, `10 MB` (binary multiples).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let mut u = unit.as_str();
    let mult: u64 = match u.chars().next() {
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some('p') => 1 << 50,
        _ => 1,
    };
    if mult != 1 {
        u = &u[1..];
        u = u.strip_prefix('i').unwrap_or(u);
    }
    u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() {
        return None;
    }
    let bytes = n * mult as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Go's `time.ParseDuration`, for non-negative durations, in nanoseconds.
pub(crate) fn duration(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid duration {s:?}");
    let mut rest = s;
    let negative = match rest.chars().next() {
        Some('-') => {
            rest = &rest[1..];
            true
        }
        Some('+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        let limit = i64::MAX as u128;
        let mut value: u128 = 0;
        for d in int_part.bytes() {
            value = value * 10 + u128::from(d - b'0');
            if value > limit {
                return Err(invalid());
            }
        }
        value *= unit;
        // The fraction, to the nanosecond (further digits do not count).
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_part.bytes().take(20) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        value += frac * unit / scale;
        total += value;
        if total > limit {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err(format!("negative duration {s:?}"));
    }
    Ok(total as u64)
}

#[cfg(test)]
mod tests;
