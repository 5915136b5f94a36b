//! Manifests as text: one YAML stream, one JSON `List`, or a file per object.
//! YAML as Go's yaml libraries write it (the loader's renderer): strings
//! that YAML 1.1 would read as something else (`no`, `on`, `0755`) are
//! quoted, since Kubernetes reads YAML 1.1.

use serde_json::{json, Value as J};

/// The objects as one YAML stream (`---` between documents).
pub fn yaml(objects: &[J]) -> String {
    objects
        .iter()
        .map(|o| stack_loader::render::to_yaml(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The objects as a `v1` `List`, which kubectl applies as a whole.
pub fn json_list(objects: &[J]) -> String {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

/// One file per object, named `NAME-KIND.yaml` (or `.json`).
pub fn files(objects: &[J], json: bool) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            let file = file_name(o, if json { "json" } else { "yaml" });
            let text = if json {
                serde_json::to_string_pretty(o).unwrap_or_default() + "\n"
            } else {
                yaml(std::slice::from_ref(o))
            };
            (file, text)
        })
        .collect()
}

pub(crate) fn file_name(o: &J, ext: &str) -> String {
    format!(
        "{}-{}.{ext}",
        o["metadata"]["name"].as_str().unwrap_or("object"),
        o["kind"].as_str().unwrap_or("object").to_ascii_lowercase()
    )
}
