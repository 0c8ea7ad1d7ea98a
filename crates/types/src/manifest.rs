//! Parsing of the four manifest formats the registry stores: Docker schema 2 manifests and
//! manifest lists, OCI image manifests and OCI image indexes (artifacts included).
//!
//! Parsing never changes the bytes: the registry stores and serves exactly what it received, because
//! the digest is computed over those bytes. The parsed form only tells the registry what the
//! manifest references and how to describe it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type::{self, DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED};

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest is well-formed for a format this registry does not accept (e.g. schema 1).
    #[error("manifest media type {0:?} is not supported")]
    UnsupportedMediaType(String),
    #[error("manifest is invalid: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

/// A content descriptor as it appears inside manifests and in the referrers response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// What a manifest points at.
#[derive(Clone, Debug, PartialEq)]
pub enum ManifestKind {
    /// An image (or artifact) manifest: a config blob and layer blobs.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list: other manifests in the same repository.
    Index { manifests: Vec<Descriptor> },
}

/// The registry's view of a received manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: ManifestKind,
    pub subject: Option<Descriptor>,
    /// `artifactType` of the manifest itself, if it names one.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    // Docker schema 1 markers, only used to give a precise refusal.
    fs_layers: Option<serde_json::Value>,
}

impl ParsedManifest {
    /// Parses `bytes` sent with the HTTP `Content-Type` `content_type` (if any).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| {
                !c.is_empty() && *c != "application/json" && *c != "application/octet-stream"
            });

        if raw.fs_layers.is_some()
            || matches!(raw.schema_version, Some(1))
            || [Some(DOCKER_MANIFEST_V1), Some(DOCKER_MANIFEST_V1_SIGNED)]
                .contains(&content_type.or(raw.media_type.as_deref()))
        {
            return Err(ManifestError::UnsupportedMediaType(
                DOCKER_MANIFEST_V1.to_string(),
            ));
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let media_type = match (&raw.media_type, content_type) {
            (Some(body), Some(header)) if body != header => {
                return Err(invalid(format!(
                    "mediaType {body:?} in the manifest does not match Content-Type {header:?}"
                )));
            }
            (Some(body), _) => body.clone(),
            (None, Some(header)) => header.to_string(),
            // OCI allows `mediaType` to be absent; the structure then tells the kind.
            (None, None) if raw.manifests.is_some() => media_type::OCI_INDEX.to_string(),
            (None, None) => media_type::OCI_MANIFEST.to_string(),
        };
        if !media_type::is_manifest(&media_type) {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        }

        let kind = if media_type::is_index(&media_type) {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(invalid("an index must not have config or layers"));
            }
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid("an index needs manifests"))?;
            ManifestKind::Index { manifests }
        } else {
            if raw.manifests.is_some() {
                return Err(invalid("an image manifest must not have manifests"));
            }
            let config = raw
                .config
                .ok_or_else(|| invalid("an image manifest needs a config"))?;
            let layers = raw
                .layers
                .ok_or_else(|| invalid("an image manifest needs layers"))?;
            ManifestKind::Image { config, layers }
        };
        Ok(ParsedManifest {
            media_type,
            kind,
            subject: raw.subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
        })
    }

    /// The type the referrers API reports: `artifactType`, or else the config media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        match (&self.artifact_type, &self.kind) {
            (Some(t), _) => Some(t),
            (None, ManifestKind::Image { config, .. }) => Some(&config.media_type),
            (None, ManifestKind::Index { .. }) => None,
        }
    }

    /// The config media type of an image manifest.
    pub fn config_media_type(&self) -> Option<&str> {
        match &self.kind {
            ManifestKind::Image { config, .. } => Some(&config.media_type),
            ManifestKind::Index { .. } => None,
        }
    }

    /// Every blob the manifest references (config first), without duplicates.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        let mut out: Vec<&Descriptor> = Vec::new();
        if let ManifestKind::Image { config, layers } = &self.kind {
            for d in std::iter::once(config).chain(layers) {
                if !out.iter().any(|seen| seen.digest == d.digest) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Sum of the layer sizes (Quay's `layers_compressed_size`).
    pub fn layers_size(&self) -> u64 {
        match &self.kind {
            ManifestKind::Image { layers, .. } => layers.iter().map(|l| l.size).sum(),
            ManifestKind::Index { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":10}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":20}},{{"mediaType":"x","digest":"{D2}","size":20}}]}}"#
        )
    }

    #[test]
    fn parses_an_oci_image() {
        let m = ParsedManifest::parse(Some(OCI_MANIFEST), image(Some(OCI_MANIFEST)).as_bytes())
            .unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.blobs().len(), 2, "duplicate layers are listed once");
        assert_eq!(m.layers_size(), 40);
        assert_eq!(
            m.effective_artifact_type(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn media_type_comes_from_header_or_structure() {
        let m = ParsedManifest::parse(None, image(None).as_bytes()).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        let m = ParsedManifest::parse(Some(DOCKER_MANIFEST_V2), image(None).as_bytes()).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST_V2);
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            ParsedManifest::parse(None, index.as_bytes())
                .unwrap()
                .media_type,
            OCI_INDEX
        );
    }

    #[test]
    fn refuses_mismatches_and_schema1() {
        let err = ParsedManifest::parse(
            Some(DOCKER_MANIFEST_V2),
            image(Some(OCI_MANIFEST)).as_bytes(),
        );
        assert!(matches!(err, Err(ManifestError::Invalid(_))));
        let s1 = r#"{"schemaVersion":1,"name":"a/b","tag":"x","fsLayers":[]}"#;
        assert!(matches!(
            ParsedManifest::parse(None, s1.as_bytes()),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            ParsedManifest::parse(None, b"not json"),
            Err(ManifestError::Invalid(_))
        ));
        let no_config = r#"{"schemaVersion":2,"layers":[]}"#;
        assert!(ParsedManifest::parse(None, no_config.as_bytes()).is_err());
        let bad_digest = image(None).replace(D1, "sha256:xyz");
        assert!(ParsedManifest::parse(None, bad_digest.as_bytes()).is_err());
        let negative = image(None).replace("\"size\":10", "\"size\":-1");
        assert!(ParsedManifest::parse(None, negative.as_bytes()).is_err());
    }

    #[test]
    fn artifacts_with_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-sbom","config":{{"mediaType":"{OCI_EMPTY}","digest":"{D1}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":5}},"annotations":{{"k":"v"}}}}"#
        );
        let m = ParsedManifest::parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(
            m.subject.as_ref().map(|s| s.digest.to_string()),
            Some(D2.to_string())
        );
        assert_eq!(m.effective_artifact_type(), Some("application/x-sbom"));
        assert_eq!(m.annotations.unwrap()["k"], "v");
    }
}
