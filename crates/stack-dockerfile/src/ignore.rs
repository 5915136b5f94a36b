//! `.dockerignore` patterns (and `COPY --exclude`): Go's `filepath.Match`
//! per path element, `**` for any number of elements, `!` to re-include,
//! the last matching pattern wins; a pattern matching a directory
//! excludes everything under it.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patterns {
    _todo: (),
}

impl Patterns {
    /// The lines of a `.dockerignore` (comments `#`, blank lines skipped,
    /// each pattern cleaned: leading `/` and `./` dropped, `a//b/../c` made `a/c`).
    pub fn parse(text: &str) -> Result<Patterns, String> {
        let _ = text;
        unimplemented!()
    }

    /// Patterns from a list (`--exclude` flags).
    pub fn from_list(patterns: &[String]) -> Result<Patterns, String> {
        let _ = patterns;
        unimplemented!()
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading
    /// `./`) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let _ = path;
        unimplemented!()
    }

    /// Whether a pattern with `!` could re-include something under the
    /// excluded directory `dir` (so the walk must still enter it).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let _ = dir;
        unimplemented!()
    }
}
