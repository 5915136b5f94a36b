//! The variables a project is interpolated with, and where each came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Span};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Shell,
    EnvFile(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Shell => f.write_str("shell"),
            Source::EnvFile(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Variables: the shell's, over those of the env files.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, (String, Source)>,
}

impl Environment {
    pub fn from_shell(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k, (v, Source::Shell)))
                .collect(),
        }
    }

    /// The same variables plus `name`, set as if by the shell.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars
            .insert(name.to_string(), (value.to_string(), Source::Shell));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|(v, _)| v.as_str())
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.vars.get(name).map(|(_, s)| s)
    }

    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.get(name).map(str::to_string)
    }

    /// Reads an env file; its values apply where the shell has none.
    pub fn load_file(&mut self, path: &Path) -> Result<(), Diagnostic> {
        let span = Span::whole(&path.display().to_string());
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::error(&span, format!("cannot read env file: {e}")))?;
        let parsed = crate::dotenv::parse(&text, &self.lookup()).map_err(|e| {
            Diagnostic::error(
                &Span {
                    file: span.file.clone(),
                    line: e.line as u32,
                    col: 1,
                },
                e.message.clone(),
            )
        })?;
        for (k, v) in parsed {
            if !matches!(self.vars.get(&k), Some((_, Source::Shell))) {
                self.vars
                    .insert(k, (v, Source::EnvFile(path.to_path_buf())));
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Source)> {
        self.vars
            .iter()
            .map(|(k, (v, s))| (k.as_str(), v.as_str(), s))
    }
}
