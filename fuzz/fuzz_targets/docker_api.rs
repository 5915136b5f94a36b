//! Any request line and body to the Docker Engine API's protocol layer:
//! routing, version prefixes, percent-decoding, filters and the JSON bodies
//! must give an answer or an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_docker::types::*;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (method, path) = head.split_once(' ').unwrap_or(("GET", &head));
    if let Ok((_, rest)) = stack_docker::split_version(path) {
        let _ = stack_docker::route(method, rest);
    }
    let decoded = stack_docker::percent_decode(path);
    let _ = stack_docker::valid_container_name(&decoded);
    let _ = stack_docker::filters::Filters::parse(std::str::from_utf8(body).ok());
    let _ = serde_json::from_slice::<CreateContainer>(body);
    let _ = serde_json::from_slice::<ExecConfig>(body);
    let _ = serde_json::from_slice::<ExecStart>(body);
    let _ = serde_json::from_slice::<CreateNetwork>(body);
    let _ = serde_json::from_slice::<ConnectNetwork>(body);
    let _ = serde_json::from_slice::<CreateVolume>(body);
});
