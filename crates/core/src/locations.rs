//! The storage locations a registry writes to and reads from (Quay's distributed storage).
//!
//! Locations are kept in the node's preference order (`DISTRIBUTED_STORAGE_PREFERENCE`): uploads
//! go to the first; a read uses the first preferred location that holds the blob and falls back
//! to any other that does. Every location stores a blob under the same key, so replication is a
//! copy and a placement row is all the database needs to know.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use db::BlobRow;
use storage::{BlobStore, ByteStream, StorageError};

use crate::{Registry, RegistryError};

/// One storage location: its database id, its config name and its driver.
#[derive(Clone)]
pub struct Location {
    pub id: i64,
    pub name: String,
    pub store: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The configured locations, in this node's preference order (never empty).
#[derive(Clone, Debug)]
pub(crate) struct Locations {
    ordered: Vec<Location>,
}

impl Locations {
    pub(crate) fn new(ordered: Vec<Location>) -> Result<Self, RegistryError> {
        if ordered.is_empty() {
            return Err(RegistryError::Internal(
                "at least one storage location is needed".into(),
            ));
        }
        Ok(Locations { ordered })
    }

    /// Where new uploads go.
    pub(crate) fn upload_target(&self) -> &Location {
        &self.ordered[0]
    }

    pub(crate) fn by_id(&self, id: i64) -> Result<&Location, RegistryError> {
        self.ordered.iter().find(|l| l.id == id).ok_or_else(|| {
            RegistryError::Internal(format!(
                "storage location #{id} is referenced by the database but not configured on \
                 this node (DISTRIBUTED_STORAGE_CONFIG)"
            ))
        })
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&Location> {
        self.ordered.iter().find(|l| l.name == name)
    }

    pub(crate) fn all(&self) -> &[Location] {
        &self.ordered
    }

    /// The configured locations among `placements`, most preferred first.
    fn holding<'a>(&'a self, placements: &[i64]) -> Vec<&'a Location> {
        self.ordered
            .iter()
            .filter(|l| placements.contains(&l.id))
            .collect()
    }
}

impl Registry {
    /// Every configured storage location, in this node's preference order.
    pub fn locations(&self) -> &[Location] {
        self.inner.locations.all()
    }

    /// The location named `name` in the configuration.
    pub fn location(&self, name: &str) -> Option<&Location> {
        self.inner.locations.by_name(name)
    }

    /// The locations that hold `blob`, most preferred first. With one configured location the
    /// database is not asked: every blob lives there.
    async fn sources(&self, blob: &BlobRow) -> Result<Vec<&Location>, RegistryError> {
        let all = self.inner.locations.all();
        if all.len() == 1 {
            return Ok(vec![&all[0]]);
        }
        let placements = self.inner.db.blob_placements(blob.id).await?;
        let holding = self.inner.locations.holding(&placements);
        if holding.is_empty() {
            return Err(RegistryError::Internal(format!(
                "blob {} has no placement in a location this node knows",
                blob.digest
            )));
        }
        Ok(holding)
    }

    /// The bytes of a blob, or an inclusive range of them, from the nearest location that has
    /// them.
    pub async fn blob_bytes(
        &self,
        blob: &BlobRow,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, RegistryError> {
        let mut last = None;
        for location in self.sources(blob).await? {
            match location.store.get(&blob.storage_key, range.clone()).await {
                Ok(stream) => return Ok(stream),
                Err(e @ StorageError::NotFound(_)) => {
                    tracing::warn!(
                        digest = %blob.digest,
                        location = %location.name,
                        "a placement's object is missing; trying another location"
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(Into::into)
            .unwrap_or_else(|| RegistryError::BlobUnknown(blob.digest.clone())))
    }

    /// A URL from which the client may download the blob directly (Quay's direct download),
    /// when the nearest location holding it can sign one.
    pub async fn blob_download_url(
        &self,
        blob: &BlobRow,
        expires: Duration,
    ) -> Result<Option<String>, RegistryError> {
        match self.sources(blob).await?.first() {
            Some(location) => Ok(location
                .store
                .download_url(&blob.storage_key, expires)
                .await?),
            None => Ok(None),
        }
    }

    /// Deletes a blob's object from each of the locations, after the database commit that
    /// removed the blob. Failures are logged and leave an unreferenced object behind, never a
    /// reference to missing bytes; returns how many deletions failed.
    pub async fn delete_blob_objects(&self, key: &str, location_ids: &[i64]) -> usize {
        let mut failed = 0;
        for id in location_ids {
            let result = match self.inner.locations.by_id(*id) {
                Ok(location) => location.store.delete(key).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = result {
                tracing::warn!(key, location = id, %error, "could not delete a blob's object");
                failed += 1;
            }
        }
        failed
    }
}

/// What replicating a blob did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replication {
    /// The blob was copied to these locations (by name).
    Copied(Vec<String>),
    /// Every required location already held it.
    Complete,
    /// The blob no longer exists (garbage collected); nothing to do.
    Gone,
}

impl Registry {
    /// The locations every blob must reach (`DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS`), or None
    /// when replication is off.
    pub fn replication_targets(&self) -> Option<Vec<&Location>> {
        let names = self.inner.settings.replicate_to.as_ref()?;
        Some(
            names
                .iter()
                .filter_map(|name| self.inner.locations.by_name(name))
                .collect(),
        )
    }

    /// Copies blob `blob_id` to every required location that lacks it, then records each new
    /// placement. A copy is recorded only after the target reports the full size; a blob
    /// collected meanwhile has its fresh copies deleted again. Storage failures are returned
    /// (the job is retried later); a blob that no configured location holds is an error too.
    pub async fn replicate_blob(&self, blob_id: i64) -> Result<Replication, RegistryError> {
        let Some(targets) = self.replication_targets() else {
            return Ok(Replication::Complete);
        };
        let Some(blob) = self.inner.db.blob_by_id(blob_id).await? else {
            return Ok(Replication::Gone);
        };
        let placements = self.inner.db.blob_placements(blob.id).await?;
        let missing: Vec<&Location> = targets
            .into_iter()
            .filter(|l| !placements.contains(&l.id))
            .collect();
        if missing.is_empty() {
            return Ok(Replication::Complete);
        }
        let sources = self.inner.locations.holding(&placements);
        let mut copied = Vec::new();
        for target in missing {
            self.copy_blob(&blob, &sources, target).await?;
            if !self.inner.db.add_placement(blob.id, target.id).await? {
                // Collected while we copied: our copy is the only reference-free leftover.
                let _ = target.store.delete(&blob.storage_key).await;
                return Ok(Replication::Gone);
            }
            tracing::info!(digest = %blob.digest, location = %target.name, "replicated a blob");
            copied.push(target.name.clone());
        }
        Ok(Replication::Copied(copied))
    }

    /// Streams the blob from the first source that has it whole into `target`.
    async fn copy_blob(
        &self,
        blob: &BlobRow,
        sources: &[&Location],
        target: &Location,
    ) -> Result<(), RegistryError> {
        let size = blob.size as u64;
        for source in sources {
            match source.store.stat(&blob.storage_key).await? {
                Some(found) if found == size => {}
                Some(found) => {
                    tracing::warn!(
                        digest = %blob.digest,
                        location = %source.name,
                        found,
                        size,
                        "a placement holds an object of the wrong size; not copying from it"
                    );
                    continue;
                }
                None => continue,
            }
            let bytes = source.store.get(&blob.storage_key, None).await?;
            target.store.put(&blob.storage_key, bytes).await?;
            return match target.store.stat(&blob.storage_key).await? {
                Some(written) if written == size => Ok(()),
                written => Err(RegistryError::Internal(format!(
                    "copying {} to {} wrote {written:?} bytes, expected {size}",
                    blob.digest, target.name
                ))),
            };
        }
        Err(RegistryError::Internal(format!(
            "no storage location holds the bytes of {} (placements: {})",
            blob.digest,
            sources
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// How many blobs the registry stores (the length of a backfill).
    pub async fn count_blobs(&self) -> Result<u64, RegistryError> {
        Ok(self.inner.db.count_blobs().await?)
    }

    /// Queues replication for every blob that some required location lacks (after adding a
    /// region, or turning replication on). Calls `progress(scanned, queued)` after each batch
    /// and returns the totals.
    pub async fn backfill_replication(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(u64, u64), RegistryError> {
        let Some(targets) = self.replication_targets() else {
            return Err(RegistryError::Internal(
                "FEATURE_STORAGE_REPLICATION is off: there is nothing to backfill".into(),
            ));
        };
        let required: Vec<i64> = targets.iter().map(|l| l.id).collect();
        let (mut scanned, mut queued, mut after) = (0u64, 0u64, 0i64);
        loop {
            let scan = self
                .inner
                .db
                .blobs_missing_placements(&required, after, BACKFILL_BATCH)
                .await?;
            let Some(next) = scan.next else { break };
            scanned += scan.scanned;
            for blob in &scan.missing {
                if self.inner.db.queue_replication(blob).await? {
                    queued += 1;
                }
            }
            after = next;
            progress(scanned, queued);
        }
        Ok((scanned, queued))
    }
}

/// Blobs scanned per backfill batch.
const BACKFILL_BATCH: u64 = 1000;
