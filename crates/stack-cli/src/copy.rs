//! `stack cp` and `stack container cp`: files between the host and a
//! running container, both ways, as `docker cp` places them, through
//! stack-runtime's `ContainerFs` (every container path resolved inside the
//! container's root: no symlink in it leads a copy out).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use stack_runtime::files::ContainerFs;
use stack_runtime::State;

/// One side of a copy: `NAME:PATH` in a container (NAME has no `/`), or a
/// host path.
#[derive(Debug, PartialEq)]
pub enum Side {
    Container { name: String, path: String },
    Host(PathBuf),
}

impl Side {
    pub fn parse(s: &str) -> Side {
        match s.split_once(':') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => Side::Container {
                name: name.into(),
                path: if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                },
            },
            _ => Side::Host(s.into()),
        }
    }
}

/// `dest/NAME`, where NAME is the last part of `src`.
fn inside(dest: &str, src: &str) -> String {
    let name = Path::new(src.trim_end_matches("/."))
        .file_name()
        .unwrap_or_default();
    format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy())
}

/// Whether `src` asks for a directory's contents rather than the
/// directory (`dir/.`).
fn contents_of(src: &str) -> bool {
    src.ends_with("/.") || src == "."
}

/// Copies `src` to `dest`: one of them in `containers` (the running
/// containers NAME stands for: several for `--all`). What was copied, for
/// the user.
pub fn copy(
    src: &Side,
    dest: &Side,
    containers: impl Fn(&str) -> anyhow::Result<Vec<State>>,
) -> anyhow::Result<String> {
    match (src, dest) {
        (Side::Host(from), Side::Container { name, path }) => {
            let from_text = from.display().to_string();
            let is_dir = std::fs::metadata(from)
                .with_context(|| format!("`{from_text}`"))?
                .is_dir();
            let mut n = 0;
            for st in containers(name)? {
                let fs = ContainerFs::open(&st)?;
                // `dir/.`: its contents, merged into `path`.
                let to = if contents_of(&from_text) && is_dir {
                    path.clone()
                } else if fs.is_dir(path)? == Some(true) || path.ends_with('/') {
                    inside(path, &from_text)
                } else {
                    path.clone()
                };
                n += fs
                    .copy_in(from, &to, &|_| true)
                    .with_context(|| format!("{from_text} -> {}:{to}", st.name))?;
            }
            Ok(format!("Copied {n} files to {name}:{path}"))
        }
        (Side::Container { name, path }, Side::Host(to)) => {
            let Some(st) = containers(name)?.into_iter().next() else {
                bail!("no container for `{name}`");
            };
            let fs = ContainerFs::open(&st)?;
            if fs.is_dir(path)?.is_none() {
                bail!("{}:{path}: no such file or directory", st.name);
            }
            let target = if to.is_dir() && !contents_of(path) {
                to.join(
                    Path::new(path.trim_end_matches('/'))
                        .file_name()
                        .unwrap_or_default(),
                )
            } else {
                to.clone()
            };
            let n = fs
                .copy_out(path, &target)
                .with_context(|| format!("{}:{path} -> {}", st.name, target.display()))?;
            Ok(format!("Copied {n} files from {}:{path}", st.name))
        }
        _ => bail!(
            "one of SRC and DEST must be CONTAINER:PATH (or SERVICE:PATH), the other a host path"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_as_docker_cp_reads_them() {
        assert_eq!(
            Side::parse("web:/app/x"),
            Side::Container {
                name: "web".into(),
                path: "/app/x".into()
            }
        );
        assert_eq!(Side::parse("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(Side::parse("/tmp/x"), Side::Host("/tmp/x".into()));
        assert_eq!(
            Side::parse("web:"),
            Side::Container {
                name: "web".into(),
                path: "/".into()
            }
        );
        assert_eq!(inside("/app/", "src/index.html"), "/app/index.html");
        assert_eq!(inside("/app", "src/."), "/app/src");
        assert!(contents_of("src/.") && !contents_of("src"));
    }
}
