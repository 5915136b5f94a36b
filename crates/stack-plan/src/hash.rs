//! The configuration hash of a service: what decides whether its
//! containers are recreated (compose's `com.docker.compose.config-hash`).

/// A stable hash of a service's normalized configuration: equal configs give
/// equal hashes; any change that matters to the running container changes it.
/// Like compose, the build section, pull policy and replica count are left
/// out (they do not change what a container is).
pub fn hash_service(service: &stack_model::Service) -> String {
    use sha2::{Digest, Sha256};
    let mut s = service.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    let json = serde_json::to_vec(&s).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
