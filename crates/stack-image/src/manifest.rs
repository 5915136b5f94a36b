//! Manifests as registries serve them: Docker schema 2 and OCI image
//! manifests, Docker manifest lists and OCI indexes, and the choice of one
//! platform from a list. Pure.

use serde::Deserialize;

use crate::archive::media;
use crate::reference::valid_digest;
use crate::Blob;

/// `os/arch[/variant]`, as `--platform` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                arch: normalize_arch(arch).to_string(),
                variant: default_variant(arch),
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                arch: normalize_arch(arch).to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!("invalid platform `{s}`: expected os/arch[/variant], such as linux/amd64 or linux/arm/v7")),
        }
    }

    /// The platform of this host.
    pub fn host() -> Platform {
        let arch = crate::registry::host_arch();
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: default_variant(arch),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// arm64 means v8 unless said otherwise; the other architectures have no default.
fn default_variant(arch: &str) -> Option<String> {
    (normalize_arch(arch) == "arm64").then(|| "v8".to_string())
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default, rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<RawPlatform>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RawPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// What a manifest document is.
#[derive(Debug)]
pub enum Manifest {
    /// One image: its config blob and layer blobs, base first.
    Image { config: Blob, layers: Vec<Blob> },
    /// A list of per-platform manifests.
    List(Vec<Descriptor>),
}

/// The media types we ask for, in the `Accept` header.
pub const ACCEPT: [&str; 4] = [
    media::OCI_INDEX,
    media::DOCKER_LIST,
    media::OCI_MANIFEST,
    media::DOCKER_MANIFEST,
];

/// Reads a manifest; `content_type` is the registry's header, which wins
/// over the document's own `mediaType` when the document has none.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    let mt = raw
        .media_type
        .as_deref()
        .or(content_type)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .unwrap_or_default();
    if raw.schema_version == Some(1)
        || mt.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err("Docker schema 1 manifests are not supported (deprecated since 2017): push the image again with a current client".into());
    }
    let check = |d: &Descriptor| {
        if valid_digest(&d.digest) {
            Ok(())
        } else {
            Err(format!("`{}` is not a sha256 digest", d.digest))
        }
    };
    if let Some(list) = raw.manifests {
        if !(mt.is_empty() || mt == media::OCI_INDEX || mt == media::DOCKER_LIST) {
            return Err(format!("unexpected media type {mt} for a manifest list"));
        }
        for d in &list {
            check(d)?;
        }
        return Ok(Manifest::List(list));
    }
    let config = raw.config.ok_or("the manifest has no config")?;
    check(&config)?;
    let blob = |d: Descriptor, default: &str| Blob {
        media_type: d.media_type.unwrap_or_else(|| default.to_string()),
        digest: d.digest,
        size: d.size,
    };
    let mut layers = Vec::new();
    for l in raw.layers.unwrap_or_default() {
        check(&l)?;
        let m = l.media_type.clone().unwrap_or_default();
        if !(m.contains("rootfs.diff.tar") || m.starts_with("application/vnd.oci.image.layer.")) {
            return Err(format!(
                "layer {} has media type `{m}`, which is not an image layer",
                l.digest
            ));
        }
        layers.push(blob(l, media::OCI_LAYER_GZIP));
    }
    Ok(Manifest::Image {
        config: blob(config, media::OCI_CONFIG),
        layers,
    })
}

/// The entry of a list for `want`: the same os and architecture, and the
/// variant when both name one. Attestations (`unknown/unknown`) never match.
pub fn select<'a>(list: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let matches = |d: &&Descriptor, strict: bool| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && normalize_arch(&p.architecture) == want.arch
                && match (&p.variant, &want.variant) {
                    (Some(a), Some(b)) => a == b,
                    (None, Some(_)) => !strict,
                    (_, None) => true,
                }
        })
    };
    list.iter()
        .find(|d| matches(d, true))
        .or_else(|| list.iter().find(|d| matches(d, false)))
}

/// `linux/amd64, linux/arm64/v8` for an error message.
pub fn platforms(list: &[Descriptor]) -> String {
    let names: Vec<String> = list
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s = format!("{s}/{v}");
            }
            s
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn list() -> Vec<Descriptor> {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
            {{"mediaType":"{m}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
            {{"mediaType":"{m}","digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{m}","digest":"{D3}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{m}","digest":"{D1}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            media::OCI_INDEX,
            m = media::OCI_MANIFEST
        );
        match parse(doc.as_bytes(), None).unwrap() {
            Manifest::List(l) => l,
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn platform_selection() {
        let l = list();
        let pick = |p: &str| select(&l, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").as_deref(), Some(D3));
        assert_eq!(pick("linux/x86_64").as_deref(), Some(D3));
        assert_eq!(pick("linux/arm64").as_deref(), Some(D2));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some(D1));
        assert_eq!(pick("linux/arm/v6"), None);
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(platforms(&l), "linux/arm/v7, linux/arm64/v8, linux/amd64");
        assert!(Platform::parse("linux").is_err() && Platform::parse("linux/amd64/v1/x").is_err());
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
    }

    #[test]
    fn image_manifests() {
        let doc = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{D1}","size":7}},
            "layers":[{{"mediaType":"{}","digest":"{D2}","size":9}}]}}"#,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP
        );
        match parse(doc.as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap() {
            Manifest::Image { config, layers } => {
                assert_eq!((config.digest.as_str(), config.size), (D1, 7));
                assert_eq!(layers.len(), 1);
                assert_eq!(layers[0].media_type, media::DOCKER_LAYER_GZIP);
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn hostile_or_old_manifests_are_refused() {
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":7}},
            "layers":[{{"mediaType":"{}","digest":"sha256:../../etc/passwd","size":9}}]}}"#,
            media::OCI_LAYER
        );
        assert!(parse(bad_digest.as_bytes(), None)
            .unwrap_err()
            .contains("not a sha256 digest"));
        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":7}},
            "layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{D2}","size":9}}]}}"#
        );
        assert!(parse(helm.as_bytes(), None)
            .unwrap_err()
            .contains("not an image layer"));
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
            .unwrap_err()
            .contains("schema 1"));
        assert!(parse(b"<html>", None)
            .unwrap_err()
            .starts_with("not a manifest"));
    }
}
