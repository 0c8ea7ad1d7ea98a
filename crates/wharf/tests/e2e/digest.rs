//! Content digests computed by the tests themselves, independently of Wharf's own hashing.

use sha2::{Digest as _, Sha256};

/// The `sha256:<hex>` digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The hex part of a `sha256:<hex>` digest, as OCI layouts name their blob files.
pub fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Config and layer digests of an image manifest's JSON, config first.
pub fn image_blob_digests(manifest: &serde_json::Value) -> Vec<String> {
    let config = manifest["config"]["digest"].as_str().map(str::to_string);
    let layers = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str().map(str::to_string));
    config.into_iter().chain(layers).collect()
}
