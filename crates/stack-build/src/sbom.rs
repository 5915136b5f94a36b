//! `--sbom`: the packages a built image holds, as an SPDX 2.3 document in
//! an in-toto statement (as BuildKit's scanner attaches it). The image's
//! files are read through the merged view of its layers: the package
//! databases of dpkg (`/var/lib/dpkg/status`), apk
//! (`/lib/apk/db/installed`) and Python (`*.dist-info/METADATA` in
//! `site-packages` and `dist-packages`).

use std::path::Path;

use serde_json::{json, Value};

use crate::view::View;

/// One package found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Its package URL (`pkg:deb/debian/bash@5.2?arch=amd64`).
    pub purl: String,
}

/// The packages in the image made of `layers` (top first), sorted.
pub fn packages(layers: Vec<std::path::PathBuf>) -> Vec<Package> {
    let view = View::new(layers);
    let read = |p: &str| {
        view.find(Path::new(p))
            .and_then(|real| std::fs::read_to_string(real).ok())
            .unwrap_or_default()
    };
    let os = os_id(&read("/etc/os-release"));
    let mut out = dpkg(&read("/var/lib/dpkg/status"), &os);
    out.extend(apk(&read("/lib/apk/db/installed"), &os));
    for dir in python_dirs(&view) {
        for entry in view.read_dir(&dir) {
            let name = entry.to_string_lossy();
            if name.ends_with(".dist-info") {
                let meta = read(&dir.join(&*name).join("METADATA").to_string_lossy());
                out.extend(python(&meta));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `ID=` of os-release (`debian`, `alpine`), for the package URLs.
fn os_id(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Installed packages of a dpkg status file.
fn dpkg(status: &str, os: &str) -> Vec<Package> {
    status
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(':')))
                    .map(|v| v.trim().to_string())
            };
            let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
            let (name, version) = (field("Package")?, field("Version")?);
            let arch = field("Architecture").unwrap_or_default();
            installed.then(|| Package {
                purl: format!("pkg:deb/{os}/{name}@{}?arch={arch}", purl_escape(&version)),
                name,
                version,
            })
        })
        .collect()
}

/// Packages of an apk database.
fn apk(installed: &str, os: &str) -> Vec<Package> {
    installed
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_string)
            };
            let (name, version) = (field("P:")?, field("V:")?);
            let arch = field("A:").unwrap_or_default();
            Some(Package {
                purl: format!("pkg:apk/{os}/{name}@{}?arch={arch}", purl_escape(&version)),
                name,
                version,
            })
        })
        .collect()
}

/// The distribution a `METADATA` file describes.
fn python(metadata: &str) -> Option<Package> {
    let field = |k: &str| {
        metadata
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let (name, version) = (field("Name:")?, field("Version:")?);
    Some(Package {
        purl: format!(
            "pkg:pypi/{}@{}",
            name.to_lowercase().replace('_', "-"),
            purl_escape(&version)
        ),
        name,
        version,
    })
}

/// `/usr/lib/python3*/{site,dist}-packages` and `/usr/local/lib/…`.
fn python_dirs(view: &View) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for base in ["/usr/lib", "/usr/local/lib"] {
        for entry in view.read_dir(Path::new(base)) {
            let name = entry.to_string_lossy();
            if !name.starts_with("python3") {
                continue;
            }
            for sub in ["site-packages", "dist-packages"] {
                let dir = Path::new(base).join(&*name).join(sub);
                if view.find(&dir).is_some() {
                    out.push(dir);
                }
            }
        }
    }
    out
}

/// A version as a package URL carries it (`:` and `+` escaped).
fn purl_escape(v: &str) -> String {
    v.replace('%', "%25")
        .replace(':', "%3A")
        .replace('+', "%2B")
}

/// The SPDX 2.3 document of `packages`, in an in-toto statement about
/// `subjects`.
pub fn statement(subjects: Vec<Value>, name: &str, packages: &[Package], created: &str) -> Value {
    let spdx_packages: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "name": p.name,
                "SPDXID": format!("SPDXRef-Package-{i}"),
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p.purl,
                }],
            })
        })
        .collect();
    let digest = subjects
        .first()
        .and_then(|s| s["digest"]["sha256"].as_str())
        .unwrap_or_default()
        .to_string();
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": subjects,
        "predicate": {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": name,
            "documentNamespace": format!("https://stack.invalid/sbom/{digest}"),
            "creationInfo": {
                "created": created,
                "creators": [format!("Tool: stack-{}", env!("CARGO_PKG_VERSION"))],
            },
            "packages": spdx_packages,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_databases_as_their_tools_write_them() {
        let status = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        assert_eq!(
            dpkg(status, "debian"),
            [Package {
                name: "bash".into(),
                version: "5.2.15-2+b2".into(),
                purl: "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64".into(),
            }]
        );
        let installed = "C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\n";
        let names: Vec<String> = apk(installed, "alpine")
            .into_iter()
            .map(|p| p.purl)
            .collect();
        assert_eq!(
            names,
            [
                "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64",
                "pkg:apk/alpine/busybox@1.36.1-r5?arch=x86_64"
            ]
        );
        let meta = "Metadata-Version: 2.1\nName: Flask_Cors\nVersion: 4.0.0\n\nName: not-this\n";
        assert_eq!(python(meta).unwrap().purl, "pkg:pypi/flask-cors@4.0.0");
        assert_eq!(os_id("NAME=x\nID=\"debian\"\n"), "debian");
    }
}
