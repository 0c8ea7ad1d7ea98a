//! Test data: random layer bytes per size, generated once and reused so the client hashes each
//! payload once, plus the small config blob and OCI manifest that make an image of it.

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// The blob sizes of the zb scenarios, plus 1 GiB for the large chunked push. "MB" is 10^6
/// bytes, as in zb; the large one is a binary GiB as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    Tiny,
    M1,
    M10,
    M100,
    G1,
}

impl Size {
    pub fn bytes(self) -> usize {
        match self {
            Size::Tiny => 1024,
            Size::M1 => 1_000_000,
            Size::M10 => 10_000_000,
            Size::M100 => 100_000_000,
            Size::G1 => 1 << 30,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Size::Tiny => "1KB",
            Size::M1 => "1MB",
            Size::M10 => "10MB",
            Size::M100 => "100MB",
            Size::G1 => "1GB",
        }
    }

    /// A repository-name-safe form of the label.
    pub fn slug(self) -> &'static str {
        match self {
            Size::Tiny => "1kb",
            Size::M1 => "1mb",
            Size::M10 => "10mb",
            Size::M100 => "100mb",
            Size::G1 => "1gb",
        }
    }
}

/// A blob with its digest computed once.
pub struct Blob {
    pub data: Bytes,
    pub digest: String,
}

impl Blob {
    fn new(data: Bytes) -> Self {
        let digest = sha256_digest(&data);
        Blob { data, digest }
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// One single-layer OCI image: layer, config and manifest.
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    /// Builds the image of `size` random bytes; the seed makes each size's content distinct.
    pub fn generate(size: Size) -> Self {
        let layer = Blob::new(random_bytes(size.bytes(), size as u64 + 1));
        // The layer is an uncompressed tar media type, so its diff_id is its own digest.
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        });
        let config = Blob::new(Bytes::from(config.to_string()));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config.digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer.digest, "size": layer.len()}],
        });
        let manifest = Blob::new(Bytes::from(manifest.to_string()));
        Image {
            layer,
            config,
            manifest,
        }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(data))
    )
}

/// Incompressible bytes from a splitmix64 generator: fast (several GB/s) and good enough for
/// data nobody inspects; it avoids a dependency on a random-number crate.
fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = vec![0u8; len];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let word = z.to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    Bytes::from(out)
}

/// Single-core SHA-256 speed in MB/s (10^6 bytes), measured over `data` in memory. It is the
/// ceiling for any registry that hashes a streamed upload on one core.
pub fn sha256_mb_per_s(data: &[u8]) -> f64 {
    let start = Instant::now();
    let digest = Sha256::digest(data);
    let secs = start.elapsed().as_secs_f64();
    // Keep the result observable so the hashing cannot be optimised away.
    std::hint::black_box(digest);
    data.len() as f64 / 1e6 / secs.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_deterministic_per_seed_and_distinct_across_seeds() {
        assert_eq!(random_bytes(1003, 7), random_bytes(1003, 7));
        assert_ne!(random_bytes(64, 1), random_bytes(64, 2));
        assert_eq!(random_bytes(1003, 7).len(), 1003);
    }

    #[test]
    fn image_manifest_references_its_blobs() {
        let image = Image::generate(Size::Tiny);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], image.layer.digest.as_str());
        assert_eq!(manifest["layers"][0]["size"], 1024);
        assert!(image.layer.digest.starts_with("sha256:"));
        assert_eq!(image.layer.digest.len(), 7 + 64);
    }
}
