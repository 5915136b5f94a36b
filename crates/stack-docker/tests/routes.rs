//! `schemas/docker-engine-api.yaml` (the published Engine API description,
//! cut to what stack serves) and the server's route table name the same
//! endpoints, both ways.

use std::collections::BTreeSet;

/// `{id}`, `{name}` and `{name*}` are all one parameter.
fn normalized(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn the_schema_and_the_routes_agree() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/docker-engine-api.yaml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        doc["info"]["version"].as_str(),
        Some(stack_docker::API_VERSION)
    );
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in ops.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method != "parameters" {
                documented.insert((
                    method.to_ascii_uppercase(),
                    normalized(path.as_str().unwrap()),
                ));
            }
        }
    }
    let served: BTreeSet<(String, String)> = stack_docker::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), normalized(p)))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not in the schema: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in the schema, not served: {unserved:?}"
    );
}
