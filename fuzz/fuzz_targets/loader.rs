//! Any bytes as a stack file: the loader must return a project or
//! diagnostics, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = stack_loader::Options {
        working_dir: "/nonexistent/stack-fuzz".into(),
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        project_name: Some("fuzz".into()),
        shell: vec![("A".into(), "1".into())],
        ..Default::default()
    };
    if let Ok(loaded) = stack_loader::load(&opts) {
        let _ = stack_loader::render::to_yaml(&loaded.project);
    }
});
