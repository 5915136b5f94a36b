//! Shell completion from the binary itself (clap's dynamic completion:
//! `source <(stack completion bash)` registers a function that asks
//! `stack` on each Tab): commands and flags, and the names of what is
//! there now: the project's services, the containers, images, networks
//! and volumes of the store.

use std::ffi::OsStr;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

fn matching(names: impl IntoIterator<Item = String>, current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(current.as_ref()))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

fn root() -> std::path::PathBuf {
    crate::client::stack_root()
}

fn services(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = crate::config::options(&crate::cli::Global::default(), &[], false, false)
        .ok()
        .and_then(|o| stack_loader::load(&o).ok())
        .map(|l| l.project.services.into_keys().collect::<Vec<_>>())
        .unwrap_or_default();
    matching(names, current)
}

fn containers(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = stack_host::containers::every(&root())
        .into_iter()
        .flat_map(|(st, _)| [st.name, st.id.chars().take(12).collect()]);
    matching(names, current)
}

fn images(current: &OsStr) -> Vec<CompletionCandidate> {
    let host = stack_host::Host::new(root());
    let names = host
        .images()
        .ok()
        .and_then(|s| s.images().ok())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|i| i.names);
    matching(names, current)
}

fn networks(current: &OsStr) -> Vec<CompletionCandidate> {
    let host = stack_host::Host::new(root());
    let names = host
        .networks()
        .ok()
        .and_then(|s| s.networks().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.name);
    matching(names, current)
}

fn volumes(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = std::fs::read_dir(root().join("volumes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    matching(names, current)
}

type Completer = fn(&OsStr) -> Vec<CompletionCandidate>;

/// What an argument of a command names, by the command's group and the
/// argument's id.
fn completer(path: &str, arg: &str) -> Option<Completer> {
    let group = path.split(' ').next().unwrap_or_default();
    Some(match (group, arg) {
        ("container", "container" | "containers") => containers,
        ("image", "image" | "images" | "reference" | "source") => images,
        ("network", "name" | "names" | "network") => networks,
        ("volume", "volumes") => volumes,
        ("container" | "image" | "network" | "volume" | "system" | "builder" | "daemon", _) => {
            return None
        }
        (_, "services" | "service" | "only" | "service_names") => services,
        _ => return None,
    })
}

/// The command line with its completers.
pub fn command() -> clap::Command {
    crate::cli::each(crate::cli::command(), &add)
}

/// A command with the completers of its arguments. (`mut_arg` puts the
/// argument last: every one is taken in turn, so their order stays.)
fn add(c: clap::Command, path: &str) -> clap::Command {
    let ids: Vec<String> = c.get_arguments().map(|a| a.get_id().to_string()).collect();
    ids.into_iter().fold(c, |c, id| {
        let f = completer(path, &id);
        c.mut_arg(&id, |a| match f {
            Some(f) => a.add(ArgValueCompleter::new(f)),
            None => a,
        })
    })
}

/// `stack completion SHELL`: the script that registers the completion.
pub fn registration(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let shell: &dyn clap_complete::env::EnvCompleter = match shell {
        clap_complete::Shell::Bash => &clap_complete::env::Bash,
        clap_complete::Shell::Zsh => &clap_complete::env::Zsh,
        clap_complete::Shell::Fish => &clap_complete::env::Fish,
        clap_complete::Shell::Elvish => &clap_complete::env::Elvish,
        clap_complete::Shell::PowerShell => &clap_complete::env::Powershell,
        _ => &clap_complete::env::Bash,
    };
    shell.write_registration("COMPLETE", "stack", "stack", "stack", out)
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the whole tree with the completers added (a
    /// positional moved out of place panics only when that command runs).
    #[test]
    fn the_command_line_with_completers_is_consistent() {
        super::command().debug_assert();
    }
}
