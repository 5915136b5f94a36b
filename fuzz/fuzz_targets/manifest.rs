//! Any registry answer: a manifest (with any content type), an image
//! config and an image reference must parse or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ct in [
        None,
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        let _ = stack_image::manifest::parse(data, ct);
    }
    let _ = stack_image::store::ConfigFile::parse(data, std::path::Path::new("fuzz"));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = stack_image::reference::Reference::parse(s);
    }
});
