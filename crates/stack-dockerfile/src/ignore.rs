//! `.dockerignore` patterns (and `COPY --exclude`): Go's `filepath.Match`
//! per path element, `**` for any number of elements, `!` to re-include,
//! the last matching pattern wins; a pattern matching a directory
//! excludes everything under it.
//!
//! The semantics are moby's `patternmatcher`:
//!
//! - a pattern without wildcards matches the path equal to it (or, as for
//!   every pattern, a path one of whose parent directories it matches);
//! - `*` is any run of characters but `/`, `?` one character but `/`,
//!   `[...]` a class (ranges `a-z`, negation with a leading `^`, `\` to
//!   escape; `]` and `-` must be escaped inside), `\` escapes the next
//!   character (also in a pattern without wildcards, where moby would
//!   compare the backslash literally);
//! - `**` matches any number of path elements: `**/x` (also `x` at the
//!   top), `a/**/b`, `a/**` (everything under `a`);
//! - a pattern starting with `**` and with no other wildcard matches any
//!   path ending with the rest (`**.log` matches `a/b.log`; `**/x` also
//!   `x`);
//! - malformed patterns (an unclosed `[`, a bad range, a trailing `\`,
//!   a lone `!`) are errors naming the pattern.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    /// `!`: a match re-includes.
    exclusion: bool,
    /// Cleaned, without the `!`.
    text: String,
    kind: Kind,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// No wildcard: the path equals the text.
    Exact,
    /// `prefix**` with no other wildcard: the path starts with `prefix`.
    Prefix,
    /// `**suffix` with no other wildcard.
    Suffix,
    /// Anything else: the tokens match the whole path.
    Glob,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `[...]`: one character (not `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` or `**` before more pattern: nothing, or anything ending in `/`.
    DirStar,
    /// `**` at the end: anything.
    RestStar,
}

impl Patterns {
    /// The lines of a `.dockerignore` (comments `#`, blank lines skipped,
    /// each pattern cleaned: leading `/` and `./` dropped, `a//b/../c` made `a/c`).
    pub fn parse(text: &str) -> Result<Patterns, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            // A comment only when `#` is the very first character.
            if line.starts_with('#') {
                continue;
            }
            if let Some(p) = Pattern::new(line)? {
                patterns.push(p);
            }
        }
        Ok(Patterns { patterns })
    }

    /// Patterns from a list (`--exclude` flags).
    pub fn from_list(patterns: &[String]) -> Result<Patterns, String> {
        let patterns = patterns
            .iter()
            .map(|p| Pattern::new(p))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Patterns { patterns })
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading
    /// `./`) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => {
                let parent = &path[..i];
                (0..parent.len())
                    .filter(|&j| parent.as_bytes()[j] == b'/')
                    .map(|j| &parent[..j])
                    .chain(std::iter::once(parent))
                    .collect()
            }
            None => Vec::new(),
        };
        let mut matched = false;
        for pattern in &self.patterns {
            // Only a re-inclusion can change an excluded path, and only an
            // exclusion an included one.
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(path) || parents.iter().any(|p| pattern.matches(p)) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a pattern with `!` could re-include something under the
    /// excluded directory `dir` (so the walk must still enter it).
    ///
    /// Conservative: compares a `!` pattern with `dir` element by element
    /// (each pattern element as a glob, or literally) and answers true
    /// unless some element cannot match; any `!` pattern holding `**`
    /// answers true.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = dir.trim_matches('/');
        let dir_elems: Vec<&str> = if dir.is_empty() || dir == "." {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            if p.text.contains("**") {
                return true;
            }
            p.text
                .split('/')
                .zip(&dir_elems)
                .all(|(pat, elem)| pat == *elem || element_may_match(pat, elem))
        })
    }
}

/// One pattern element against one path element (a malformed element is
/// taken as matching: the answer is only used to be conservative).
fn element_may_match(pattern: &str, elem: &str) -> bool {
    match tokens(pattern) {
        Ok((tokens, _)) => glob_match(&tokens, &elem.chars().collect::<Vec<_>>()),
        Err(_) => true,
    }
}

impl Pattern {
    /// A line or list item: trimmed, `!` taken off, cleaned. None if blank.
    fn new(raw: &str) -> Result<Option<Pattern>, String> {
        let mut text = raw.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let exclusion = text.starts_with('!');
        if exclusion {
            text = text[1..].trim();
            if text.is_empty() {
                return Err(format!("illegal exclusion pattern: {raw:?}"));
            }
        }
        let mut cleaned = clean(text);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        let (tokens, kind) =
            tokens(&cleaned).map_err(|e| format!("invalid pattern {raw:?}: {e}"))?;
        Ok(Some(Pattern {
            exclusion,
            text: cleaned,
            kind,
            tokens,
        }))
    }

    fn matches(&self, path: &str) -> bool {
        match self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| s == path)
            }
            Kind::Glob => glob_match(&self.tokens, &path.chars().collect::<Vec<_>>()),
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            e => out.push(e),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The tokens of a cleaned pattern, and how it matches (as moby decides:
/// the wildcards seen, and whether it starts or ends with `**`).
fn tokens(pattern: &str) -> Result<(Vec<Token>, Kind), String> {
    let mut out = Vec::new();
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        kind = Kind::Glob;
                    }
                    out.push(Token::RestStar);
                } else {
                    out.push(Token::DirStar);
                    kind = Kind::Glob;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                out.push(Token::Star);
                kind = Kind::Glob;
            }
            '?' => {
                out.push(Token::Any);
                kind = Kind::Glob;
            }
            '\\' => match chars.next() {
                Some(n) => {
                    // moby compares such a pattern as written (`\*` would
                    // only match a file named `\*`); the escape is honoured here.
                    out.push(Token::Lit(n));
                    if kind != Kind::Suffix {
                        kind = Kind::Glob;
                    }
                }
                None => return Err("a trailing \\ escapes nothing".into()),
            },
            '[' => {
                out.push(class(&mut chars)?);
                kind = Kind::Glob;
            }
            ']' => {
                out.push(Token::Lit(']'));
                kind = Kind::Glob;
            }
            c => out.push(Token::Lit(c)),
        }
        first = false;
    }
    Ok((out, kind))
}

/// A class after its `[`, as `filepath.Match` reads it.
fn class(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<Token, String> {
    let negated = chars.peek() == Some(&'^');
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let one = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<char, String> {
        match chars.next() {
            None => Err("unclosed [".into()),
            Some('-' | ']') => Err("] and - must be escaped inside [...]".into()),
            Some('\\') => chars.next().ok_or_else(|| "unclosed [".to_string()),
            Some(c) => Ok(c),
        }
    };
    loop {
        if chars.peek() == Some(&']') && !ranges.is_empty() {
            chars.next();
            return Ok(Token::Class { negated, ranges });
        }
        let lo = one(chars)?;
        let mut hi = lo;
        if chars.peek() == Some(&'-') {
            chars.next();
            hi = one(chars)?;
            if hi < lo {
                return Err(format!("invalid range {lo}-{hi} in [...]"));
            }
        }
        if chars.peek().is_none() {
            return Err("unclosed [".into());
        }
        ranges.push((lo, hi));
    }
}

fn token_matches_char(token: &Token, c: char) -> bool {
    match token {
        Token::Lit(l) => *l == c,
        Token::Any => c != '/',
        Token::Class { negated, ranges } => {
            c != '/' && ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        Token::Star | Token::DirStar | Token::RestStar => false,
    }
}

/// Whether the tokens match the whole of `text`: a dynamic program over
/// the tokens from the last, one row of text positions at a time (no
/// backtracking blow-up whatever the pattern).
fn glob_match(tokens: &[Token], text: &[char]) -> bool {
    let n = text.len();
    // next[j]: the tokens after the current one match text[j..].
    let mut next: Vec<bool> = (0..=n).map(|j| j == n).collect();
    let mut row = vec![false; n + 1];
    for token in tokens.iter().rev() {
        match token {
            Token::Star => {
                row[n] = next[n];
                for j in (0..n).rev() {
                    row[j] = next[j] || (text[j] != '/' && row[j + 1]);
                }
            }
            Token::DirStar => {
                // Nothing, or text[j..k] ending in `/`.
                let mut later = false;
                row[n] = next[n];
                for j in (0..n).rev() {
                    if text[j] == '/' && next[j + 1] {
                        later = true;
                    }
                    row[j] = next[j] || later;
                }
            }
            Token::RestStar => {
                let mut later = false;
                for j in (0..=n).rev() {
                    later |= next[j];
                    row[j] = later;
                }
            }
            t => {
                row[n] = false;
                for j in 0..n {
                    row[j] = token_matches_char(t, text[j]) && next[j + 1];
                }
            }
        }
        std::mem::swap(&mut next, &mut row);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(text: &str) -> Patterns {
        Patterns::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cleaning() {
        let cases: &[(&str, &str)] = &[
            ("a", "a"),
            ("/a", "/a"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/./b/", "a/b"),
            ("a/b/../c", "a/c"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            (".", "."),
            ("", "."),
            ("/", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw), *want, "clean {raw:?}");
        }
        let p = pats("/a\n./b/\n c//d/../e \n!/f/./g\n");
        let texts: Vec<(&str, bool)> = p
            .patterns
            .iter()
            .map(|p| (p.text.as_str(), p.exclusion))
            .collect();
        assert_eq!(
            texts,
            vec![("a", false), ("b", false), ("c/e", false), ("f/g", true)]
        );
    }

    #[test]
    fn comments_and_blanks() {
        let p = pats("\u{feff}# comment\n\n   \n*.log\r\n  # indented: a pattern\n");
        assert_eq!(p.patterns.len(), 2);
        assert!(p.excludes("x.log"));
        assert!(p.excludes("# indented: a pattern"));
        assert!(!p.excludes("# comment"));
        assert_eq!(Patterns::parse("").unwrap(), Patterns::default());
    }

    #[test]
    fn table() {
        // (patterns, path, excluded)
        let cases: &[(&str, &str, bool)] = &[
            ("node_modules", "node_modules", true),
            ("node_modules", "node_modules/a/b.js", true),
            ("node_modules", "src/node_modules", false),
            ("node_modules", "node_modules2", false),
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("*/*.md", "docs/README.md", true),
            ("*/*.md", "a/b/README.md", false),
            ("**/*.md", "a/b/README.md", true),
            ("**/*.md", "README.md", true),
            ("**/build", "build", true),
            ("**/build", "x/y/build/out.o", true),
            ("**/build", "x/rebuild", false),
            ("**", "anything/at/all", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/y/b/c", true),
            ("a/**/b", "a/xb", false),
            ("a/**", "a/x", true),
            ("a/**", "a", false),
            ("a/**", "ab/x", false),
            ("temp?", "temp1", true),
            ("temp?", "temp", false),
            ("temp?", "temp12", false),
            ("t?mp", "t/mp", false),
            ("*", "a/b", true), // matches the parent `a`
            ("[abc].txt", "b.txt", true),
            ("[abc].txt", "d.txt", false),
            ("[a-c]x", "cx", true),
            ("[^a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("[\\]]", "]", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("a\\?b", "a?b", true),
            ("*.log\n!keep.log", "keep.log", false),
            ("*.log\n!keep.log", "drop.log", true),
            ("!keep.log\n*.log", "keep.log", true), // the last match wins
            ("*\n!src", "src/main.rs", false),
            ("*\n!src", "docs/x", true),
            ("*\n!src\nsrc/*.tmp", "src/a.tmp", true),
            ("docs\n!docs/keep.md", "docs/keep.md", false),
            ("docs\n!docs/keep.md", "docs/other.md", true),
            ("docs\n!docs/keep.md", "docs", true),
            ("/abs/path", "abs/path/x", true),
            ("./rel", "rel", true),
            ("a/../b", "b", true),
            ("**.log", "a/b.log", true),
            ("**.log", "b.log", true),
            ("x/**/*.o", "x/y/z.o", true),
            ("x/**/*.o", "x/z.o", true),
            ("x/**/*.o", "y/z.o", false),
            (".git", ".git/HEAD", true),
            (".*", ".env", true),
            (".*", "a/.env", false),
            ("Dockerfile*", "Dockerfile.dev", true),
        ];
        for (patterns, path, want) in cases {
            assert_eq!(
                pats(patterns).excludes(path),
                *want,
                "patterns {patterns:?} path {path:?}"
            );
        }
    }

    #[test]
    fn invalid() {
        for bad in [
            "[abc", "a[", "[]a]", "[a-]", "[z-a]", "x\\", "[^", "!", "  !  ", "[-a]", "ok\n[bad",
        ] {
            match Patterns::parse(bad) {
                Err(e) => assert!(
                    e.contains(bad.trim().split('\n').next_back().unwrap()),
                    "{bad:?}: {e}"
                ),
                Ok(p) => panic!("{bad:?} parsed: {p:?}"),
            }
        }
        assert!(Patterns::from_list(&["[".to_string()]).is_err());
    }

    #[test]
    fn from_list() {
        let p = Patterns::from_list(&[
            "*.md".into(),
            "".into(),
            "!README.md".into(),
            "/tmp/".into(),
        ])
        .unwrap();
        assert!(p.excludes("CHANGES.md"));
        assert!(!p.excludes("README.md"));
        assert!(p.excludes("tmp/x"));
        assert!(!p.excludes("src/x.rs"));
        assert!(!Patterns::default().excludes("anything"));
    }

    #[test]
    fn reinclusion_under() {
        let p = pats("*\n!src/keep\n!docs/*.md\n!top.txt");
        assert!(p.may_reinclude_under("src"));
        assert!(p.may_reinclude_under("src/keep"));
        assert!(p.may_reinclude_under("src/keep/deeper"));
        assert!(!p.may_reinclude_under("src/other"));
        assert!(p.may_reinclude_under("docs"));
        assert!(!p.may_reinclude_under("docs/sub"));
        assert!(!p.may_reinclude_under("target"));
        assert!(p.may_reinclude_under("top.txt"));
        assert!(p.may_reinclude_under(""));
        // `**` anywhere: always maybe.
        assert!(pats("*\n!**/keep").may_reinclude_under("any/where"));
        // Wildcard elements.
        let p = pats("*\n!*/keep");
        assert!(p.may_reinclude_under("a"));
        assert!(p.may_reinclude_under("b/keep"));
        assert!(!p.may_reinclude_under("b/other"));
        // No `!` pattern: never.
        assert!(!pats("*\nsrc").may_reinclude_under("src"));
        // Soundness: whenever a path under the directory is re-included,
        // the answer is true.
        let p = pats("build\n!build/keep/*.txt\n!build/x?/y");
        for path in ["build/keep/a.txt", "build/xa/y", "build/xa/y/z"] {
            assert!(!p.excludes(path), "{path}");
            let mut dir = path;
            while let Some(i) = dir.rfind('/') {
                dir = &dir[..i];
                assert!(p.may_reinclude_under(dir), "{dir} for {path}");
            }
        }
        assert!(p.excludes("build/other"));
    }

    #[test]
    fn no_panic_on_prefixes() {
        let sample = "\u{feff}# c\n**/*.o\n!a/**/b[^x-z]?\n/x/../y//z\n[\\]]\n\\*\n*.µ\n!\n";
        let chars: Vec<char> = sample.chars().collect();
        for start in 0..chars.len() {
            for end in start..=chars.len() {
                let text: String = chars[start..end].iter().collect();
                if let Ok(p) = Patterns::parse(&text) {
                    for path in ["a/b", "x.o", "a/q/b", "", "y/z/w", "µ"] {
                        let _ = p.excludes(path);
                        let _ = p.may_reinclude_under(path);
                    }
                }
            }
        }
    }

    #[test]
    fn glob_is_linear() {
        // A pattern that makes a backtracking matcher take forever.
        let pattern = "a*".repeat(30) + "b";
        let p = Patterns::parse(&pattern).unwrap();
        assert!(!p.excludes(&"a".repeat(200)));
        assert!(p.excludes(&("a".repeat(200) + "b")));
    }
}
