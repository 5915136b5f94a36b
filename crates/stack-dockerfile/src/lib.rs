//! Dockerfiles, pure: text in, instructions out, with the line each came
//! from. No I/O: the builder (`stack-build`) reads the files and runs the
//! instructions.
//!
//! - [`parse`]: parser directives (`# syntax=`, `# escape=`, `# check=`),
//!   comments, line continuations, heredocs, every instruction of the
//!   Dockerfile reference with its flags, shell and exec forms.
//! - [`expand`]: variable expansion and quote removal as the reference
//!   defines it, for the instructions it applies to (the builder calls it:
//!   values depend on ARG and ENV in scope at build time).
//! - [`ignore`]: `.dockerignore` patterns (also `COPY --exclude`).

pub mod expand;
pub mod ignore;
pub mod lint;
mod parse;

pub use parse::parse;

/// A parse error: the line (1-based) and instruction it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", instruction.as_ref().map(|i| format!(": {i}")).unwrap_or_default())]
pub struct ParseError {
    pub line: usize,
    /// The instruction's keyword as written, upper-cased (`RUN`), if known.
    pub instruction: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// `ARG`s before the first `FROM`: in scope for `FROM` lines only
    /// (a stage sees one by declaring `ARG NAME` without a value).
    pub global_args: Vec<Arg>,
    pub stages: Vec<Stage>,
    /// Deprecations and oddities worth saying (line, text): an empty line
    /// inside a continuation, `MAINTAINER`, ...
    pub warnings: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Directives {
    /// `# syntax=docker/dockerfile:1` (the frontend image named; the
    /// builder decides what it accepts).
    pub syntax: Option<String>,
    /// `\` by default, or `` ` ``.
    pub escape: char,
    /// `# check=skip=...;error=true`, as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `FROM` line (1-based).
    pub line: usize,
    /// The image, as written (expanded with the global args at build time).
    pub base: String,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// `--platform=...`, as written.
    pub platform: Option<String>,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// First line (1-based).
    pub line: usize,
    /// The logical line as written (continuations joined, comments inside
    /// dropped), for messages and history: `RUN apk add curl`.
    pub original: String,
    pub command: Command,
}

impl Instruction {
    /// The keyword, upper-cased: `RUN`.
    pub fn keyword(&self) -> &'static str {
        self.command.keyword()
    }
}

/// Values are kept as written (quotes and `$` included) wherever the
/// reference expands them at build time: the builder passes them through
/// [`expand::word`] or [`expand::words`] with the variables in scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Run),
    Cmd(Form),
    Entrypoint(Form),
    /// The exec form only (a JSON array), as the reference requires.
    Shell(Vec<String>),
    /// Pairs as written (`key=value`, the legacy `LABEL key value` too).
    Label(Vec<(String, String)>),
    Maintainer(String),
    /// Words as written: `80/tcp`, `$PORT`.
    Expose(Vec<String>),
    /// Pairs as written (`ENV a=b c=d`, the legacy `ENV a b c`).
    Env(Vec<(String, String)>),
    Add(Copy),
    Copy(Copy),
    /// Paths as written (JSON array or words).
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<Arg>),
    /// The trigger, parsed (never `ONBUILD`, `FROM` or `MAINTAINER`).
    Onbuild(Box<Instruction>),
    StopSignal(String),
    Healthcheck(Healthcheck),
}

impl Command {
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Label(_) => "LABEL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub line: usize,
    pub name: String,
    /// The default as written, if any.
    pub default: Option<String>,
}

/// Shell form (run with the stage's `SHELL`, `/bin/sh -c` by default) or
/// exec form (a JSON array of strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Form {
    Exec(Vec<String>),
    /// The command text after the keyword and flags, continuations joined
    /// (for a heredoc, the first line's text: `python3 <<EOF`).
    Shell(String),
}

/// A heredoc: `<<EOF`, `<<-EOF` (leading tabs of the body and of the
/// terminator removed), `<<"EOF"` / `<<'EOF'` (quoted: no expansion).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The terminator word, unquoted: `EOF`.
    pub name: String,
    /// The lines between the instruction and the terminator, each ending in `\n`.
    pub body: String,
    /// False when the word was quoted: the body is taken as it is.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub form: Form,
    /// In the order they appear on the line.
    pub heredocs: Vec<Heredoc>,
    /// `--mount=...` values as written (expand, then [`parse_mount`]).
    pub mounts: Vec<String>,
    /// `--network=default|none|host`, as written.
    pub network: Option<String>,
    /// `--security=insecure|sandbox`, as written.
    pub security: Option<String>,
}

/// `COPY` and `ADD`: flags and paths as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copy {
    /// Sources (not the heredocs), then `dest` apart.
    pub sources: Vec<String>,
    pub dest: String,
    /// Heredoc sources: each becomes a file named `name` in `dest`.
    pub heredocs: Vec<Heredoc>,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// ADD only: `--unpack=true|false` (None: by content, for local archives).
    pub unpack: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: the base image's check is turned off.
    Disable,
    Check {
        /// `CMD` in shell or exec form.
        test: Form,
        /// Nanoseconds, from Go durations (`30s`, `1m30s`, `500ms`).
        interval: Option<u64>,
        timeout: Option<u64>,
        start_period: Option<u64>,
        start_interval: Option<u64>,
        retries: Option<u32>,
    },
}

/// A `RUN --mount` after expansion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mount {
    pub kind: MountKind,
    /// `target`/`dst`/`destination` (for secret and ssh: optional).
    pub target: Option<String>,
    /// `source`/`src`.
    pub source: Option<String>,
    /// `from`: a stage, an image, or a named context.
    pub from: Option<String>,
    /// `rw`/`readwrite` for bind (read-only by default); `ro`/`readonly` for cache.
    pub read_only: Option<bool>,
    /// cache, secret, ssh: `id`.
    pub id: Option<String>,
    /// cache: `sharing=shared|private|locked`.
    pub sharing: Sharing,
    /// cache, secret, ssh: `mode` (octal), `uid`, `gid`.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// secret, ssh: `required`.
    pub required: bool,
    /// tmpfs: `size` in bytes.
    pub size: Option<u64>,
    /// secret: `env=NAME` (the secret as an environment variable).
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    #[default]
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// A `--mount` value (already expanded): `type=cache,target=/root/.cache`.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    parse::mount(value)
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    parse::duration(s)
}

impl Dockerfile {
    /// The stage a `--target` or `COPY --from` names: by name (any case)
    /// or by index.
    pub fn stage(&self, name_or_index: &str) -> Option<usize> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len())
            })
    }
}
