//! The JSON Schema in `schemas/` is generated from the loader's table, and
//! the table agrees with the model's types.

use std::path::Path;

#[test]
fn checked_in_schema_is_generated_from_the_table() {
    let want = serde_json::to_string_pretty(&stack_loader::schema::json_schema()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/compose.schema.json");
    if std::env::var_os("STACK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(got == want, "{} is stale: regenerate with STACK_UPDATE_SCHEMA=1 cargo test -p stack-loader --test schema", path.display());
}

#[test]
fn schema_rejects_what_it_should() {
    let file = std::sync::Arc::from("t.yaml");
    let doc = stack_loader::node::parse(&file, "services:\n  a:\n    image: x\n    x-ok: 1\n    ports: 80\nnetworks:\n  n:\n    drivr: x\n")
        .unwrap()
        .remove(0);
    let mut d = stack_loader::diag::Diagnostics::default();
    stack_loader::schema::validate(&doc, &mut d);
    let msgs: Vec<String> = d
        .iter()
        .map(|d| format!("{}: {}", d.span, d.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "t.yaml:5:12: `ports` must be a list, not an integer",
            "t.yaml:8:5: network has no attribute `drivr`"
        ]
    );
}
