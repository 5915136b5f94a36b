//! Variable expansion and quote removal, as the Dockerfile reference
//! defines it for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR (and ONBUILD's, ARG's defaults, flags' values).
//!
//! The rules are BuildKit's shell lexer's:
//!
//! - `$name` (letters, digits, `_`; a leading digit run such as `$1`, or one
//!   of the special parameters `@ * # ? - $ ! 0`, is looked up under that
//!   name and is normally unset, so empty); `$` not followed by a name
//!   stays `$`.
//! - `${name}`, `${name:-w}`, `${name-w}`, `${name:+w}`, `${name+w}`,
//!   `${name:?msg}`, `${name?msg}`, and the pattern forms `${name#p}`,
//!   `${name##p}`, `${name%p}`, `${name%%p}`, `${name/p/r}`, `${name//p/r}`
//!   (`*` and `?` wildcards). The nested word is itself expanded.
//! - Single quotes: everything literal up to the next `'`.
//! - Double quotes: `$` expands; the escape character escapes only `"`,
//!   `$` and itself, any other escape character is kept as written.
//! - Outside quotes the escape character makes the next character literal
//!   (and is dropped at the very end of the text).
//! - [`words`] splits on whitespace outside quotes, after expansion: a
//!   variable's value is split too, and empty words (`""`) are dropped, as
//!   BuildKit's `ProcessWords` does.

/// Expands one word: `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`,
/// `${v+w}`, `${v:?msg}`, `${v?msg}`; single quotes keep everything
/// literal, double quotes allow expansion; the escape character escapes
/// the next one. An unset variable is empty. Quotes are removed.
pub fn word(
    raw: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut lexer = Lexer::new(raw, escape, vars);
    lexer.process_stop_on(None, false).map(|(word, _)| word)
}

/// Expands and splits on whitespace outside quotes (as `EXPOSE`,
/// `VOLUME`'s shell form take their words).
pub fn words(
    raw: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut lexer = Lexer::new(raw, escape, vars);
    lexer.process_stop_on(None, false).map(|(_, words)| words)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

/// Word splitting state: characters from expansions and plain text are
/// split on whitespace, quoted and escaped ones never.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

impl<'a> Lexer<'a> {
    fn new(raw: &str, escape: char, vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            chars: raw.chars().collect(),
            pos: 0,
            escape,
            vars,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end of the text (when
    /// `stop` is None; with a stop character, the end is an error).
    /// `raw_escapes` keeps the escape characters in the result (for the
    /// patterns of `${v#p}` and the like, which handle `\` themselves).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        if raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // The escape character at the very end is dropped.
                        let Some(next) = self.next() else { break };
                        words.add_raw_char(next);
                        result.push(next);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut result = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(result),
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut result = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            // Left for the end-of-text error above.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                result.push(n);
                                continue;
                            }
                            // Any other escape is kept as written.
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// A name after `$`: a run of digits, one special parameter, or
    /// letters, digits and `_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.vars)(name)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.pos += 1; // the `$`
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.pos += 1; // the `{`
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut modifier) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut null_is_unset = false;
        match modifier {
            '}' => Ok(self.lookup(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut shown = modifier.to_string();
                if modifier == ':' {
                    null_is_unset = true;
                    match self.next() {
                        None => return Err("syntax error: missing '}'".into()),
                        Some(c @ ('+' | '-' | '?' | '#' | '%')) => {
                            modifier = c;
                            shown.push(c);
                        }
                        Some(c) => {
                            return Err(format!("unsupported modifier (:{c}) in substitution"))
                        }
                    }
                }
                let raw_escapes = modifier == '#' || modifier == '%';
                let (word, _) = self.process_stop_on(Some('}'), raw_escapes).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_string()
                    } else {
                        e
                    }
                })?;
                let value = self.lookup(&name);
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match modifier {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if value.is_none() {
                            let message = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            Err(format!("{name}: {message}"))
                        } else if unset {
                            let message = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            Err(format!("{name}: {message}"))
                        } else {
                            Ok(value.unwrap_or_default())
                        }
                    }
                    _ => {
                        // `#`/`%`: shortest, `##`/`%%`: longest.
                        let mut pattern = word.as_str();
                        let greedy = pattern.starts_with(modifier);
                        if greedy {
                            pattern = &pattern[modifier.len_utf8()..];
                        }
                        let tokens = glob_tokens(pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        let value: Vec<char> = value.unwrap_or_default().chars().collect();
                        Ok(if modifier == '#' {
                            trim_prefix(&tokens, &value, greedy)
                        } else {
                            trim_suffix(&tokens, &value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_string()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self.process_stop_on(Some('}'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_string()
                    } else {
                        e
                    }
                })?;
                let tokens = glob_tokens(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                let value: Vec<char> = self.lookup(&name).unwrap_or_default().chars().collect();
                Ok(replace(&tokens, &value, &replacement, all))
            }
            c => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }
}

/// One element of a `${v#pattern}` pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Glob {
    Star,
    Any,
    Lit(char),
}

/// `*` any string, `?` any character, `\` escapes `*`, `?`, `\` (and is
/// dropped before `}` and `/`); any other escape is an error.
fn glob_tokens(pattern: &str) -> Result<Vec<Glob>, String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Glob::Star),
            '?' => out.push(Glob::Any),
            '\\' => match chars.peek().copied() {
                Some('}' | '/') => {}
                Some(n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Glob::Lit(n));
                }
                Some(n) => return Err(format!("invalid escape '\\{n}'")),
                None => return Err("invalid escape at the end".into()),
            },
            c => out.push(Glob::Lit(c)),
        }
    }
    Ok(out)
}

/// Whether the whole of `text` matches `pattern`.
fn glob_match(pattern: &[Glob], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Glob::Star) => {
                backtrack = Some((p, t));
                p += 1;
                continue;
            }
            Some(Glob::Any) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Glob::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((bp, bt)) => {
                p = bp + 1;
                t = bt + 1;
                backtrack = Some((bp, bt + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|g| *g == Glob::Star)
}

fn trim_prefix(pattern: &[Glob], value: &[char], greedy: bool) -> String {
    let found = if greedy {
        (0..=value.len())
            .rev()
            .find(|&i| glob_match(pattern, &value[..i]))
    } else {
        (0..=value.len()).find(|&i| glob_match(pattern, &value[..i]))
    };
    value[found.unwrap_or(0)..].iter().collect()
}

fn trim_suffix(pattern: &[Glob], value: &[char], greedy: bool) -> String {
    let found = if greedy {
        (0..=value.len()).find(|&i| glob_match(pattern, &value[i..]))
    } else {
        (0..=value.len())
            .rev()
            .find(|&i| glob_match(pattern, &value[i..]))
    };
    value[..found.unwrap_or(value.len())].iter().collect()
}

/// The first (or every) leftmost, longest match replaced.
fn replace(pattern: &[Glob], value: &[char], replacement: &str, all: bool) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while pos <= value.len() {
        let found = (pos..=value.len()).find_map(|start| {
            (start..=value.len())
                .rev()
                .find(|&end| glob_match(pattern, &value[start..end]))
                .map(|end| (start, end))
        });
        let Some((start, end)) = found else { break };
        out.extend(&value[pos..start]);
        out.push_str(replacement);
        if end == start {
            if let Some(c) = value.get(start) {
                out.push(*c);
            }
            pos = start + 1;
        } else {
            pos = end;
        }
        if !all {
            break;
        }
    }
    if pos < value.len() {
        out.extend(&value[pos..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "abc" => Some("hello".into()),
            "empty" => Some(String::new()),
            "spaced" => Some("one two  three".into()),
            "path" => Some("/usr/local/bin/tool.tar.gz".into()),
            "x" => Some("x".into()),
            _ => None,
        }
    }

    fn w(raw: &str) -> Result<String, String> {
        word(raw, '\\', &env)
    }

    fn ws(raw: &str) -> Result<Vec<String>, String> {
        words(raw, '\\', &env)
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$abc", "hello"),
            ("${abc}", "hello"),
            ("${abc}_x", "hello_x"),
            ("$abc_x", ""), // the name runs on: abc_x is unset
            ("$abc-x", "hello-x"),
            ("pre$abc/post", "prehello/post"),
            ("$nope", ""),
            ("${nope}", ""),
            ("${abc:-world}", "hello"),
            ("${nope:-world}", "world"),
            ("${empty:-world}", "world"),
            ("${empty-world}", ""),
            ("${nope-world}", "world"),
            ("${abc:+set}", "set"),
            ("${empty:+set}", ""),
            ("${empty+set}", "set"),
            ("${nope+set}", ""),
            ("${nope:-$abc}", "hello"),
            ("${nope:-${abc}!}", "hello!"),
            ("${nope:-'$abc'}", "$abc"),
            ("${nope:-\"a b\"}", "a b"),
            ("${nope:-a\\}b}", "a}b"),
            ("${abc:?must be set}", "hello"),
            ("'$abc'", "$abc"),
            ("'a\\b'", "a\\b"),
            ("\"$abc\"", "hello"),
            ("\"${abc}_x\"", "hello_x"),
            ("\\$abc", "$abc"),
            ("\"\\$abc\"", "$abc"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"a\\nb\"", "a\\nb"), // other escapes kept in double quotes
            ("a\\nb", "anb"),       // outside quotes the escape is removed
            ("a\\ b", "a b"),
            ("trailing\\", "trailing"),
            ("$", "$"),
            ("a$", "a$"),
            ("$ x", "$ x"),
            ("$/x", "$/x"),
            ("$1", ""),
            ("$12x", "x"),
            ("$@", ""),
            ("$$", ""),
            ("\"it's\"", "it's"),
            ("'say \"hi\"'", "say \"hi\""),
            ("a'b'c\"d\"e", "abcde"),
            ("\"\"", ""),
            ("''", ""),
            ("${path#*/}", "usr/local/bin/tool.tar.gz"),
            ("${path##*/}", "tool.tar.gz"),
            ("${path%.*}", "/usr/local/bin/tool.tar"),
            ("${path%%.*}", "/usr/local/bin/tool"),
            ("${path/o/0}", "/usr/l0cal/bin/tool.tar.gz"),
            ("${path//o/0}", "/usr/l0cal/bin/t00l.tar.gz"),
            ("${path/\\/usr/opt}", "opt/local/bin/tool.tar.gz"),
            ("${nope#x}", ""),
            ("héllo $x ünï", "héllo x ünï"),
        ];
        for (raw, want) in cases {
            assert_eq!(w(raw).as_deref(), Ok(*want), "word {raw:?}");
        }
    }

    #[test]
    fn expansion_errors() {
        let cases: &[(&str, &str)] = &[
            ("'abc", "single-quote"),
            ("\"abc", "double-quote"),
            ("\"abc\\\"", "double-quote"),
            ("${abc", "missing '}'"),
            ("${", "missing '}'"),
            ("${}", "bad substitution"),
            ("${:-x}", "bad substitution"),
            ("${{x}}", "bad substitution"),
            ("${abc:-x", "missing '}'"),
            ("${abc x}", "unsupported modifier"),
            ("${abc:x}", "unsupported modifier"),
            ("${nope:?needs a value}", "nope: needs a value"),
            ("${nope?needs a value}", "nope: needs a value"),
            ("${nope:?}", "nope: is not allowed to be unset"),
            ("${empty:?}", "empty: is not allowed to be empty"),
            ("${path/x", "missing '/'"),
            ("${path#\\q}", "invalid escape"),
        ];
        for (raw, want) in cases {
            match w(raw) {
                Err(e) => assert!(e.contains(want), "word {raw:?}: error {e:?} lacks {want:?}"),
                Ok(v) => panic!("word {raw:?} expanded to {v:?}, wanted an error"),
            }
        }
        // `${v?msg}` accepts a set but empty value; `${v:?msg}` does not.
        assert_eq!(w("${empty?no}"), Ok(String::new()));
        assert!(w("${empty:?no}").is_err());
    }

    #[test]
    fn backtick_escape() {
        let e = |raw: &str| word(raw, '`', &env);
        assert_eq!(e("a\\b").as_deref(), Ok("a\\b"));
        assert_eq!(e("C:\\path\\$abc").as_deref(), Ok("C:\\path\\hello"));
        assert_eq!(e("`$abc").as_deref(), Ok("$abc"));
        assert_eq!(e("\"`\"q`\"\"").as_deref(), Ok("\"q\""));
        assert_eq!(e("\"a\\\"").as_deref(), Ok("a\\"));
        assert_eq!(e("a` b").as_deref(), Ok("a b"));
    }

    #[test]
    fn words_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   ", &[]),
            ("a b  c", &["a", "b", "c"]),
            ("  80/tcp   443 ", &["80/tcp", "443"]),
            ("\"a b\" c", &["a b", "c"]),
            ("'a b' \"$abc x\"", &["a b", "hello x"]),
            ("a\\ b c", &["a b", "c"]),
            ("$spaced", &["one", "two", "three"]),
            ("x$spaced", &["xone", "two", "three"]),
            ("\"$spaced\"", &["one two  three"]),
            ("${nope:-p q}", &["p", "q"]),
            ("a \"\" b", &["a", "b"]),
            ("\"\"", &[]),
            ("$nope", &[]),
            ("$abc/$abc", &["hello/hello"]),
        ];
        for (raw, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(ws(raw), Ok(want), "words {raw:?}");
        }
        assert!(ws("'open").is_err());
    }

    #[test]
    fn globs() {
        let t =
            |p: &str, s: &str| glob_match(&glob_tokens(p).unwrap(), &s.chars().collect::<Vec<_>>());
        assert!(t("*", ""));
        assert!(t("a*c", "abbbc"));
        assert!(t("a?c", "abc"));
        assert!(!t("a?c", "ac"));
        assert!(t("*.gz", "x.tar.gz"));
        assert!(!t("*.gz", "x.tar"));
        assert!(t("\\*", "*"));
        assert!(!t("\\*", "x"));
        assert!(t("**a", "bba"));
    }
}
