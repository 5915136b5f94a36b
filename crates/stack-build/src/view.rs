//! The merged view of an image's unpacked layers, read without mounting
//! them: what `COPY --from` copies, what a COPY's parents already are, a
//! user name's entry in `/etc/passwd`. Overlay's rules: the top-most layer
//! holding a path wins; a whiteout (a 0:0 character device) hides it and
//! everything below; an opaque directory hides the lower layers' content.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct View {
    /// Unpacked layers, top first.
    pub layers: Vec<PathBuf>,
}

enum Found {
    /// In this layer, at this real path.
    Here(PathBuf),
    /// Hidden from this layer down (a whiteout, an opaque parent, a file
    /// where a parent directory would be).
    Hidden,
    /// Not in this layer: look below.
    Below,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    xattr::get(p, stack_sys::userns::overlay_opaque())
        .ok()
        .flatten()
        .as_deref()
        == Some(b"y")
}

/// `p` (absolute in the image) as the names along it; `..` and `.` dropped
/// lexically, so nothing climbs out of a layer.
pub fn parts(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `p` as an absolute path in the image with no `.` or `..` (a `..`
/// above the root stays at the root, as in a chroot).
pub fn clean(p: &Path) -> PathBuf {
    Path::new("/").join(parts(p).iter().collect::<PathBuf>())
}

fn in_layer(layer: &Path, parts: &[OsString]) -> Found {
    let mut cur = layer.to_path_buf();
    let mut opaque_above = false;
    for (i, name) in parts.iter().enumerate() {
        cur.push(name);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&cur) {
            Ok(md) if is_whiteout(&md) => return Found::Hidden,
            Ok(_) if last => return Found::Here(cur),
            Ok(md) if md.is_dir() => {
                if is_opaque(&cur) {
                    opaque_above = true;
                }
            }
            Ok(_) => return Found::Hidden,
            Err(_) => {
                return if opaque_above {
                    Found::Hidden
                } else {
                    Found::Below
                }
            }
        }
    }
    Found::Here(cur)
}

impl View {
    pub fn new(layers: Vec<PathBuf>) -> View {
        View { layers }
    }

    /// The real path of `p` in the top-most layer that has it.
    pub fn find(&self, p: &Path) -> Option<PathBuf> {
        let parts = parts(p);
        if parts.is_empty() {
            return self.layers.first().cloned();
        }
        for l in &self.layers {
            match in_layer(l, &parts) {
                Found::Here(real) => return Some(real),
                Found::Hidden => return None,
                Found::Below => {}
            }
        }
        None
    }

    /// `p` with the symlinks the image has on the way followed inside the
    /// image (`/lib/x` is `/usr/lib/x` where `/lib -> usr/lib`), as Docker
    /// resolves a destination; the last name is not followed.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        let mut todo: Vec<OsString> = parts(p);
        todo.reverse();
        let mut done = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            let next = done.join(&name);
            let link = (!todo.is_empty())
                .then(|| self.find(&next))
                .flatten()
                .filter(|real| fs::symlink_metadata(real).is_ok_and(|m| m.file_type().is_symlink()))
                .and_then(|real| fs::read_link(real).ok());
            match link {
                Some(target) if hops < 40 => {
                    hops += 1;
                    let base = if target.is_absolute() {
                        PathBuf::from("/")
                    } else {
                        done.clone()
                    };
                    let mut rest = parts(&base.join(target));
                    rest.reverse();
                    todo.extend(rest);
                    // `todo` is a stack: the link's names come before what
                    // was left after it.
                    done = PathBuf::from("/");
                }
                _ => done = next,
            }
        }
        done
    }

    /// The names in directory `p`, merged over the layers.
    pub fn read_dir(&self, p: &Path) -> Vec<OsString> {
        let parts = parts(p);
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for l in &self.layers {
            let real = match in_layer(l, &parts) {
                Found::Here(real) if parts.is_empty() || real.is_dir() => real,
                Found::Below => continue,
                _ => break,
            };
            let real = if parts.is_empty() { l.clone() } else { real };
            let Ok(entries) = fs::read_dir(&real) else {
                break;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if hidden.contains(&name) || seen.contains(&name) {
                    continue;
                }
                match e.metadata() {
                    Ok(md) if is_whiteout(&md) => {
                        hidden.insert(name);
                    }
                    _ => {
                        seen.insert(name);
                    }
                }
            }
            if !parts.is_empty() && is_opaque(&real) {
                break;
            }
        }
        seen.into_iter().collect()
    }

    /// A file's text, if the view has it (for `/etc/passwd` and `/etc/group`).
    pub fn read_to_string(&self, p: &Path) -> Option<String> {
        fs::read_to_string(self.find(p)?).ok()
    }

    /// A user or group (`name` or number) as the view's `file` (passwd or
    /// group) has it: (id, primary gid for a user).
    pub fn lookup_id(&self, file: &str, who: &str) -> Option<(u32, u32)> {
        if let Ok(n) = who.parse::<u32>() {
            let gid = self
                .entries(file)
                .find(|f| f.get(2).and_then(|v| v.parse().ok()) == Some(n))
                .and_then(|f| f.get(3).and_then(|v| v.parse().ok()))
                .unwrap_or(n);
            return Some((n, gid));
        }
        let f = self
            .entries(file)
            .find(|f| f.first().map(String::as_str) == Some(who))?;
        let id = f.get(2)?.parse().ok()?;
        let gid = f.get(3).and_then(|v| v.parse().ok()).unwrap_or(id);
        Some((id, gid))
    }

    fn entries(&self, file: &str) -> impl Iterator<Item = Vec<String>> {
        let text = self
            .read_to_string(&Path::new("/etc").join(file))
            .unwrap_or_default();
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>()
            .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{mknod, Mode, SFlag};

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("stack-view-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn the_top_layer_wins_and_whiteouts_and_opaque_dirs_hide() {
        let t = tmp("merge");
        let (low, high) = (t.join("low"), t.join("high"));
        for d in ["low/a", "low/b", "low/c", "high/b"] {
            fs::create_dir_all(t.join(d)).unwrap();
        }
        fs::write(low.join("a/x"), "low").unwrap();
        fs::write(low.join("a/y"), "low").unwrap();
        fs::write(low.join("b/old"), "low").unwrap();
        fs::write(low.join("c/kept"), "low").unwrap();
        fs::write(high.join("b/new"), "high").unwrap();
        fs::create_dir_all(high.join("a")).unwrap();
        fs::write(high.join("a/x"), "high").unwrap();
        mknod(&high.join("a/y"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        xattr::set(high.join("b"), "trusted.overlay.opaque", b"y").unwrap();
        let v = View::new(vec![high.clone(), low.clone()]);
        assert_eq!(
            fs::read_to_string(v.find(Path::new("/a/x")).unwrap()).unwrap(),
            "high"
        );
        assert_eq!(v.find(Path::new("/a/y")), None);
        assert_eq!(v.find(Path::new("/b/old")), None);
        assert_eq!(v.find(Path::new("/c/kept")), Some(low.join("c/kept")));
        assert_eq!(v.find(Path::new("/../c/kept")), Some(low.join("c/kept")));
        assert_eq!(v.read_dir(Path::new("/a")), ["x"]);
        assert_eq!(v.read_dir(Path::new("/b")), ["new"]);
        assert_eq!(v.read_dir(Path::new("/")), ["a", "b", "c"]);
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(
            low.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(v.lookup_id("passwd", "app"), Some((1000, 1001)));
        assert_eq!(v.lookup_id("passwd", "1000"), Some((1000, 1001)));
        assert_eq!(v.lookup_id("passwd", "nobody"), None);
        // Symlinked directories are followed inside the image, the last name is not.
        fs::create_dir_all(low.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", low.join("lib")).unwrap();
        std::os::unix::fs::symlink("/etc", low.join("usr/lib/up")).unwrap();
        assert_eq!(v.resolve(Path::new("/lib/x/y")), Path::new("/usr/lib/x/y"));
        assert_eq!(
            v.resolve(Path::new("/lib/up/passwd")),
            Path::new("/etc/passwd")
        );
        assert_eq!(v.resolve(Path::new("/lib")), Path::new("/lib"));
        assert_eq!(clean(Path::new("/a/../../../b/./c")), Path::new("/b/c"));
        fs::remove_dir_all(&t).unwrap();
    }
}
