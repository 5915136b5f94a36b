//! The container's side of a copy (`cp`, `container cp`): archives of
//! paths in a running container, and archives extracted into it, through
//! stack-runtime's `ContainerFs` (every path resolved inside the
//! container's root: no symlink in it leads a copy out).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context as _;
use stack_runtime::files::ContainerFs;
use stack_runtime::State;

use crate::HostError;

/// The name a copy of `path` gets: its last part (`root` for `/`).
pub fn top_name(path: &str) -> String {
    Path::new(path.trim_end_matches("/."))
        .file_name()
        .map_or("root".into(), |n| n.to_string_lossy().into_owned())
}

/// A tar of `path` in the running container `st` (the engine's `GET
/// .../archive`, `container cp` here): checked now (running, the path
/// there), written by the function returned, as it walks. With `follow`
/// (`cp -L`), a symlink's target under the link's name.
pub fn archive(
    st: &State,
    path: &str,
    follow: bool,
) -> anyhow::Result<impl FnOnce(&mut dyn Write) -> anyhow::Result<()> + Send + 'static> {
    let fs = ContainerFs::open(st).map_err(|e| classified(e, None))?;
    let name = top_name(path);
    let path = match follow {
        true => fs
            .follow(path)
            .map_err(|e| classified(e, Some(format!("{}:{path}", st.name))))?,
        false => path.to_string(),
    };
    let path = path.as_str();
    let found = fs
        .is_dir(path)
        .map_err(|e| classified(e, Some(format!("{}:{path}", st.name))))?;
    if found.is_none() {
        return Err(
            HostError::NotFound(format!("{}:{path}: no such file or directory", st.name)).into(),
        );
    }
    let (container, path) = (st.name.clone(), path.to_string());
    Ok(move |out: &mut dyn Write| {
        fs.tar_out(&path, &name, out)
            .with_context(|| format!("{container}:{path}"))
            .map(drop)
    })
}

/// Extracts the tar `tar` reads at `path` in the running container `st`;
/// with `keep_owner` (`cp -a`), its files get the owners the tar says.
pub fn extract(
    st: &State,
    path: &str,
    contents: bool,
    keep_owner: bool,
    tar: &mut dyn Read,
) -> anyhow::Result<usize> {
    ContainerFs::open(st)
        .map_err(|e| classified(e, None))?
        .tar_in(tar, path, contents, keep_owner)
        .map_err(|e| classified(e, Some(format!("{}:{path}", st.name))))
}

/// An I/O error of a copy by what it means for the one who asked: a path
/// (or container) that is not there, an archive that cannot be extracted,
/// or a failure of ours; `what` says where.
fn classified(e: std::io::Error, what: Option<String>) -> anyhow::Error {
    use std::io::ErrorKind;
    let message = match &what {
        Some(w) => format!("{w}: {e}"),
        None => e.to_string(),
    };
    match e.kind() {
        ErrorKind::NotFound => HostError::NotFound(message).into(),
        ErrorKind::InvalidData | ErrorKind::Unsupported => HostError::Invalid(message).into(),
        _ => match what {
            Some(w) => anyhow::Error::new(e).context(w),
            None => e.into(),
        },
    }
}
