//! Whether stack runs rootless: in a user namespace of its own rather than
//! the host's, root there and an ordinary user outside (see `stack-rootless`).
//! What a user namespace cannot do, the crates ask here: make device nodes,
//! write `trusted.*` attributes (overlayfs then reads its markers from
//! `user.overlay.*`, mounted with `userxattr`), join cgroups it was not given.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory of a rootless store's namespace holder, under its root.
pub fn dir(root: &Path) -> PathBuf {
    root.join("rootless")
}

/// The socket of slirp4netns's API (a rootless store's published ports),
/// under its root: stack-runtime starts it, stack-net speaks to it.
pub fn forwarder_socket(root: &Path) -> PathBuf {
    dir(root).join("slirp.sock")
}

/// Whether this process is in a user namespace other than the host's one
/// (read once: a process enters its namespace before anything asks).
pub fn rootless() -> bool {
    static ROOTLESS: OnceLock<bool> = OnceLock::new();
    *ROOTLESS.get_or_init(in_user_namespace)
}

/// Read now: whether `/proc/self/uid_map` maps less than every id onto
/// itself (the host's namespace maps `0 0 4294967295`).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !identity(&m))
}

fn identity(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    lines == [vec!["0", "0", "4294967295"]]
}

/// The attribute overlayfs reads an opaque directory from: `trusted.*`
/// needs the host's root, so a user namespace's overlays (mounted with
/// `userxattr`) read `user.overlay.opaque`.
pub fn overlay_opaque() -> &'static str {
    if rootless() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hosts_map_is_the_identity() {
        assert!(super::identity("         0          0 4294967295\n"));
        assert!(!super::identity("0 1000 1\n1 100000 65536\n"));
        assert!(!super::identity(""));
    }
}
