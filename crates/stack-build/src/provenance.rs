//! A build's attestations, as BuildKit attaches them: in-toto statements
//! about the image's manifest (its provenance, `--provenance`: SLSA v0.2;
//! its SBOM, `--sbom`: see `sbom`), in an attestation manifest the store
//! keeps with the image and a push sends beside it in an index.

use serde_json::{json, Value};
use stack_image::store::{sha256_hex, Attestation, Store};
use stack_image::{Blob, Image};

/// How much the statement says, as BuildKit's modes: `min` the frontend,
/// the base images, the platform and the times; `max` also the build
/// arguments and the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Min,
    Max,
}

impl Mode {
    /// `--provenance`'s value as docker takes it: `true`/`1`/`mode=min`,
    /// `mode=max`; `false`/`0`: none.
    pub fn parse(s: &str) -> Result<Option<Mode>, String> {
        match s.trim() {
            "" | "true" | "1" | "mode=min" => Ok(Some(Mode::Min)),
            "mode=max" => Ok(Some(Mode::Max)),
            "false" | "0" => Ok(None),
            other => Err(format!(
                "--provenance `{other}`: expected true, false, mode=min or mode=max"
            )),
        }
    }
}

const STATEMENT: &str = "application/vnd.in-toto+json";
const PREDICATE: &str = "https://slsa.dev/provenance/v0.2";

/// What the statement is made of.
pub struct Facts<'a> {
    pub mode: Mode,
    /// The Dockerfile's name, as the build names it.
    pub dockerfile: &'a str,
    pub args: &'a std::collections::BTreeMap<String, String>,
    pub target: Option<&'a str>,
    /// The base images the built stages started from: name, image.
    pub bases: &'a [(String, Image)],
    pub started: String,
    pub finished: String,
}

/// The subjects of a statement about `img`: its manifest's digest under
/// each of its names (or its id).
pub fn subjects(store: &Store, img: &Image, names: &[String]) -> anyhow::Result<Vec<Value>> {
    let (_, manifest) = stack_image::archive::manifest_of(store, img)?;
    let digest = sha256_hex(&manifest);
    let ids = [img.id.clone()];
    let names = if names.is_empty() { &ids[..] } else { names };
    Ok(names
        .iter()
        .map(|n| json!({"name": purl(img, n), "digest": {"sha256": digest}}))
        .collect())
}

/// `pkg:docker/NAME?platform=linux%2Famd64`.
fn purl(img: &Image, name: &str) -> String {
    format!(
        "pkg:docker/{name}?platform={}",
        platform(img).replace('/', "%2F")
    )
}

fn platform(img: &Image) -> String {
    img.platform
        .clone()
        .unwrap_or_else(|| format!("linux/{}", stack_image::registry::host_arch()))
}

/// The provenance statement of a build of `img`.
pub fn statement(subjects: Vec<Value>, img: &Image, f: Facts<'_>) -> Value {
    let materials: Vec<Value> = f
        .bases
        .iter()
        .map(|(name, base)| {
            // The registry's digest where there is one, else the config's.
            let digest = base
                .repo_digests
                .iter()
                .find_map(|d| d.split_once("@sha256:").map(|(_, h)| h.to_string()))
                .unwrap_or_else(|| base.id.trim_start_matches("sha256:").to_string());
            json!({"uri": purl(img, name), "digest": {"sha256": digest}})
        })
        .collect();
    let mut parameters = json!({"frontend": "dockerfile.v0"});
    if f.mode == Mode::Max {
        let mut args: serde_json::Map<String, Value> = f
            .args
            .iter()
            .map(|(k, v)| (format!("build-arg:{k}"), json!(v)))
            .collect();
        if let Some(t) = f.target {
            args.insert("target".into(), json!(t));
        }
        parameters["args"] = Value::Object(args);
    }
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": PREDICATE,
        "subject": subjects,
        "predicate": {
            "builder": {"id": ""},
            "buildType": "https://mobyproject.org/buildkit@v1",
            "materials": materials,
            "invocation": {
                "configSource": {"entryPoint": f.dockerfile},
                "parameters": parameters,
                "environment": {"platform": platform(img)},
            },
            "metadata": {
                "buildStartedOn": f.started,
                "buildFinishedOn": f.finished,
                "completeness": {
                    "parameters": f.mode == Mode::Max,
                    "environment": true,
                    "materials": false,
                },
                "reproducible": false,
            },
        },
    })
}

/// Writes in-toto `statements` and their attestation manifest (one layer
/// a statement, annotated with its predicate type) into `store`, kept with
/// `img`.
pub fn attest(store: &Store, img: &Image, statements: &[Value]) -> anyhow::Result<()> {
    let put = |media: &str, bytes: &[u8]| -> anyhow::Result<Blob> {
        let (digest, size) = store.write_blob(None, bytes)?;
        Ok(Blob {
            media_type: media.into(),
            digest,
            size,
        })
    };
    let mut layers = Vec::new();
    let mut blobs = Vec::new();
    for st in statements {
        let blob = put(STATEMENT, &serde_json::to_vec(st)?)?;
        layers.push(json!({
            "mediaType": STATEMENT,
            "digest": blob.digest,
            "size": blob.size,
            "annotations": {"in-toto.io/predicate-type": st["predicateType"]},
        }));
        blobs.push(blob);
    }
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": blobs.iter().map(|b| &b.digest).collect::<Vec<_>>()},
    });
    let config = put(
        stack_image::archive::media::OCI_CONFIG,
        &serde_json::to_vec(&config)?,
    )?;
    let attestation_manifest = json!({
        "schemaVersion": 2,
        "mediaType": stack_image::archive::media::OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    let manifest = put(
        stack_image::archive::media::OCI_MANIFEST,
        &serde_json::to_vec(&attestation_manifest)?,
    )?;
    blobs.insert(0, config);
    store.attest(&img.id, Attestation { manifest, blobs })?;
    Ok(())
}
