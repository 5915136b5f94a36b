//! The `.env` / `env_file` dialect, as compose-go reads it.
//!
//! `KEY=value`, `export KEY=value`, `KEY: value`, comments, `KEY` alone to
//! inherit from the environment, single quotes (literal), double quotes
//! (escapes, multi-line, interpolation), unquoted values with ` #` comments,
//! a leading UTF-8 BOM, and `${VAR}` substitution from the environment first,
//! then from keys defined earlier in the same file.

use crate::interpolate::{substitute, Lookup};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// An `env_file` entry's variables: this dialect, or with `format: raw`
/// each `KEY=value` line as written (no quotes, no interpolation).
pub fn parse_format(
    src: &str,
    raw: bool,
    lookup: &dyn Lookup,
) -> Result<Vec<(String, String)>, DotenvError> {
    if !raw {
        return parse(src, lookup);
    }
    Ok(src
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect())
}

/// Parses an env file. Returns the variables in file order.
pub fn parse(src: &str, lookup: &dyn Lookup) -> Result<Vec<(String, String)>, DotenvError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut p = DotenvParser {
        line: 1,
        out: Vec::new(),
    };
    p.parse(src, lookup)?;
    Ok(p.out)
}

struct DotenvParser {
    line: usize,
    out: Vec<(String, String)>,
}

fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

impl DotenvParser {
    fn set(&mut self, key: String, value: String) {
        match self.out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.out.push((key, value)),
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.out
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn err(&self, message: impl Into<String>) -> DotenvError {
        DotenvError {
            line: self.line,
            message: message.into(),
        }
    }

    fn parse(&mut self, src: &str, lookup: &dyn Lookup) -> Result<(), DotenvError> {
        let mut rest = src;
        loop {
            rest = self.statement_start(rest);
            if rest.is_empty() {
                return Ok(());
            }
            let (key, after, inherited) = self.key_name(rest)?;
            if key.contains(' ') {
                return Err(self.err("key cannot contain a space"));
            }
            if inherited {
                if let Some(v) = lookup.lookup(&key) {
                    self.set(key, v);
                }
                rest = after;
                continue;
            }
            let (value, after) = self.value(after, lookup)?;
            self.set(key, value);
            rest = after;
        }
    }

    /// Skips blank space and comment lines.
    fn statement_start<'s>(&mut self, mut src: &'s str) -> &'s str {
        loop {
            let Some(pos) = src.find(|c: char| {
                if c == '\n' {
                    self.line += 1;
                }
                !c.is_whitespace()
            }) else {
                return "";
            };
            src = &src[pos..];
            if !src.starts_with('#') {
                return src;
            }
            match src.find('\n') {
                Some(nl) => src = &src[nl..],
                None => return "",
            }
        }
    }

    fn key_name<'s>(&mut self, mut src: &'s str) -> Result<(String, &'s str, bool), DotenvError> {
        if let Some(after) = src.strip_prefix("export") {
            if after.starts_with(|c: char| c.is_whitespace()) {
                src = after.trim_start_matches(is_space);
            }
        }
        let mut key_end = None;
        let mut inherited = false;
        for (i, c) in src.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key_end = Some((i, i + 1));
                    inherited = c == '\n';
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let line = src.split('\n').next().unwrap_or_default();
                    return Err(self.err(format!(
                        "unexpected character `{c}` in variable name `{line}`"
                    )));
                }
            }
        }
        let (key, offset) = match key_end {
            Some((k, o)) => (&src[..k], o),
            // The last line with no `=` and no newline: a bare inherited key.
            None => {
                inherited = true;
                (src, src.len())
            }
        };
        if inherited && !key.trim_end().contains(' ') {
            self.line += 1;
        }
        let key = key.trim_end().to_string();
        // `=value` gives an empty name, as godotenv does.
        Ok((key, src[offset..].trim_start_matches(is_space), inherited))
    }

    fn value<'s>(
        &mut self,
        src: &'s str,
        lookup: &dyn Lookup,
    ) -> Result<(String, &'s str), DotenvError> {
        let quote = match src.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let (line, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let value = line.split(" #").next().unwrap_or_default();
                let value = value.trim_end();
                return Ok((self.expand(value, lookup)?, rest));
            }
        };
        let mut chars = String::new();
        let mut escaped = false;
        for (i, c) in src.char_indices().skip(1) {
            if c == '\n' {
                self.line += 1;
            }
            if c != quote {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push('\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            let value = if quote == '"' {
                self.expand(&unescape(&chars), lookup)?
            } else {
                chars
            };
            return Ok((value, &src[i + c.len_utf8()..]));
        }
        let first = src.split('\n').next().unwrap_or_default();
        Err(self.err(format!("unterminated quoted value {first}")))
    }

    fn expand(&self, value: &str, lookup: &dyn Lookup) -> Result<String, DotenvError> {
        let env = |name: &str| lookup.lookup(name).or_else(|| self.get(name));
        substitute(value, &env, &mut Vec::new()).map_err(|e| self.err(e.to_string()))
    }
}

/// Escapes in double-quoted values: `\n \t \\ \" \$` and friends (`\$` stays
/// an escaped dollar for the interpolation that follows).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.peek().copied() {
            Some(e @ ('a' | 'b' | 'c' | 'f' | 'n' | 'r' | 't' | 'v' | '"' | '\\' | '$')) => {
                it.next();
                match e {
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '$' => out.push_str("$$"),
                    // `\c` is matched by compose-go's pattern but is no Go escape: kept as is.
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            Some('0') => {
                it.next();
                let mut digits = String::new();
                while digits.len() < 3 && it.peek().is_some_and(|d| d.is_ascii_digit()) {
                    digits.push(it.next().unwrap_or_default());
                }
                match u8::from_str_radix(&digits, 8) {
                    Ok(v) if digits.len() == 3 => out.push(char::from(v)),
                    _ => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn basics() {
        let vars = parse(
            "# c\nexport A=1\nB = two # comment\nC='lit $A'\nD=\"x\\ny $A\"\n",
            &none,
        )
        .unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "lit $A".into()),
                ("D".into(), "x\ny 1".into())
            ]
        );
    }

    #[test]
    fn inherit_and_errors() {
        let env = |n: &str| (n == "HOME").then(|| "/root".to_string());
        assert_eq!(
            parse("HOME\nNOPE\n", &env).unwrap(),
            vec![("HOME".into(), "/root".into())]
        );
        assert!(parse("A=\"open\n", &none)
            .unwrap_err()
            .message
            .contains("unterminated"));
        assert!(parse("A B=1\n", &none).is_err());
    }
}
