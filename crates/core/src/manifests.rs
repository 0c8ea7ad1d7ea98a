//! Manifests: validation against the repository's blobs and manifests, tags, deletion and the
//! referrers index.

use std::sync::Arc;

use db::{ManifestRow, NewManifest, PutManifestOutcome, RepositoryRow, TagTarget};
use types::manifest::ManifestKind;
use types::{Descriptor, Digest, ParsedManifest, Reference, media_type};

use crate::{Registry, RegistryError, now_ms};

/// The result of a manifest push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The `subject` the manifest names, reported back in `OCI-Subject`.
    pub subject: Option<Digest>,
    /// The stored manifest's media type.
    pub media_type: String,
}

impl Registry {
    /// Parses a manifest URL reference.
    pub fn parse_reference(&self, reference: &str) -> Result<Reference, RegistryError> {
        Reference::parse(reference).map_err(|e| RegistryError::ReferenceInvalid(e.to_string()))
    }

    /// Stores a manifest under a tag or its digest.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<PushedManifest, RegistryError> {
        if bytes.len() > self.inner.settings.max_manifest_size {
            return Err(RegistryError::SizeInvalid(format!(
                "manifest is larger than the {} bytes allowed",
                self.inner.settings.max_manifest_size
            )));
        }
        let parsed = ParsedManifest::parse(content_type, &bytes).map_err(|e| match e {
            types::ManifestError::UnsupportedMediaType(_) => {
                RegistryError::ManifestUnsupported(e.to_string())
            }
            types::ManifestError::Invalid(_) => RegistryError::ManifestInvalid(e.to_string()),
        })?;
        let digest = match reference {
            Reference::Digest(d) if d.matches(&bytes) => d.clone(),
            Reference::Digest(d) => {
                return Err(RegistryError::DigestInvalid(format!(
                    "the manifest's content does not match digest {d}"
                )));
            }
            Reference::Tag(_) => Digest::sha256_of(&bytes),
        };

        let mut tags = Vec::new();
        match reference {
            Reference::Tag(t) => tags.push(TagTarget::Visible(t.to_string())),
            Reference::Digest(_) => tags.push(TagTarget::Hidden {
                name: format!("$temp-{}", uuid::Uuid::new_v4().simple()),
                expires_ms: Some(
                    now_ms() + self.inner.settings.temp_tag_expiration.as_millis() as i64,
                ),
            }),
        }
        if parsed.subject.is_some() {
            // Referrers stay alive for as long as they exist, whatever happens to their tags.
            tags.push(TagTarget::Hidden {
                name: format!("$referrer-{}", digest.hex()),
                expires_ms: None,
            });
        }
        let child_digests = match &parsed.kind {
            ManifestKind::Index { manifests } => {
                let mut seen: Vec<String> =
                    manifests.iter().map(|m| m.digest.to_string()).collect();
                seen.sort();
                seen.dedup();
                seen
            }
            ManifestKind::Image { .. } => Vec::new(),
        };
        let outcome = self
            .inner
            .db
            .put_manifest(
                NewManifest {
                    repository_id: repo.id,
                    digest: digest.to_string(),
                    media_type: parsed.media_type.clone(),
                    bytes,
                    config_media_type: parsed.config_media_type().map(str::to_string),
                    artifact_type: parsed.effective_artifact_type().map(str::to_string),
                    subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
                    layers_size: parsed.layers_size() as i64,
                    blob_digests: parsed
                        .blobs()
                        .iter()
                        .map(|b| b.digest.to_string())
                        .collect(),
                    child_digests,
                },
                &tags,
            )
            .await?;
        match outcome {
            PutManifestOutcome::Stored { .. } => {}
            PutManifestOutcome::BlobUnknown(d) | PutManifestOutcome::ChildUnknown(d) => {
                return Err(RegistryError::ManifestBlobUnknown(d));
            }
        }
        if let Reference::Tag(t) = reference {
            self.tags_changed(repo.id, Some(t.as_str()));
        }
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
            media_type: parsed.media_type,
        })
    }

    /// The manifest a tag points at, or the alive manifest with that digest.
    pub async fn manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<Arc<ManifestRow>, RegistryError> {
        match reference {
            Reference::Tag(t) => {
                let key = (repo.id, t.to_string());
                if let Some(hit) = self.inner.tags.get(&key) {
                    return Ok(hit);
                }
                let row = self
                    .inner
                    .db
                    .manifest_by_tag(repo.id, t.as_str())
                    .await?
                    .ok_or_else(|| RegistryError::ManifestUnknown(t.to_string()))?;
                let row = Arc::new(row);
                self.inner.tags.insert(key, row.clone());
                Ok(row)
            }
            Reference::Digest(d) => self
                .inner
                .db
                .manifest_by_digest(repo.id, &d.to_string())
                .await?
                .map(Arc::new)
                .ok_or_else(|| RegistryError::ManifestUnknown(d.to_string())),
        }
    }

    /// Deletes a tag, or (by digest) every tag of a manifest.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        let found = match reference {
            Reference::Tag(t) => {
                let found = self.inner.db.delete_tag(repo.id, t.as_str()).await?;
                self.tags_changed(repo.id, Some(t.as_str()));
                found
            }
            Reference::Digest(d) => {
                let found = self
                    .inner
                    .db
                    .delete_manifest(repo.id, &d.to_string())
                    .await?;
                self.tags_changed(repo.id, None);
                found
            }
        };
        if found {
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown(reference.to_string()))
        }
    }

    /// Drops cached tag lookups after a tag of the repository changed (`None`: any tag may have).
    pub(crate) fn tags_changed(&self, repository_id: i64, tag: Option<&str>) {
        self.inner.tag_lists.invalidate(&repository_id);
        match tag {
            Some(t) => self.inner.tags.invalidate(&(repository_id, t.to_string())),
            // Deletes by digest are rare enough to drop every cached tag.
            None => self.inner.tags.invalidate_all(),
        }
    }

    /// Descriptors of the manifests whose subject is `digest`, optionally only those of one
    /// artifact type.
    pub async fn referrers(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let rows = self
            .inner
            .db
            .referrers(repo.id, &digest.to_string())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if artifact_type.is_some() && row.artifact_type.as_deref() != artifact_type {
                continue;
            }
            let Ok(digest) = row.digest.parse::<Digest>() else {
                continue;
            };
            // Annotations are not columns; the stored bytes were valid when pushed.
            let annotations = ParsedManifest::parse(Some(&row.media_type), &row.bytes)
                .ok()
                .and_then(|p| p.annotations);
            out.push(Descriptor {
                media_type: row.media_type.clone(),
                digest,
                size: row.bytes.len() as u64,
                artifact_type: row.artifact_type.clone(),
                annotations,
                platform: None,
            });
        }
        Ok(out)
    }
}

/// The body of an empty or filled referrers response.
pub fn referrers_index(descriptors: &[Descriptor]) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": descriptors,
    })
}
