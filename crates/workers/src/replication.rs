//! Quay's `storagereplication` worker: copies each new blob to every location of
//! `DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS`, one `imagestoragereplication` item per blob.
//!
//! The copy itself lives in `core` (`Registry::replicate_blob`); this job maps its outcome to
//! the queue's: a storage failure is retried later with the retry restored (the blob is not
//! at fault), a blob that no location holds fails its retries, a collected blob is done.

use std::time::Duration;

use db::Db;
use wharf_core::{Registry, RegistryError, Replication};

use crate::{Job, JobError, JobItem, QueueWorker};

pub struct StorageReplication {
    registry: Registry,
}

impl StorageReplication {
    /// The worker draining the replication queue.
    pub fn worker(registry: Registry, db: Db) -> QueueWorker<StorageReplication> {
        QueueWorker::new(db, StorageReplication { registry })
    }
}

#[async_trait::async_trait]
impl Job for StorageReplication {
    const QUEUE: &'static str = db::REPLICATION_QUEUE;
    const NAME: &'static str = "storagereplication";

    /// Quay's `STORAGE_REPLICATION_PROCESSING_SECONDS`: long enough to copy a big layer.
    fn lease(&self) -> Duration {
        Duration::from_secs(20 * 60)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn process(&self, item: &JobItem<'_>) -> Result<(), JobError> {
        let body = item.json()?;
        let Some(blob_id) = body.get("blob_id").and_then(|v| v.as_i64()) else {
            return Err(JobError::Failed(format!(
                "replication item {} names no blob_id",
                item.name()
            )));
        };
        match self.registry.replicate_blob(blob_id).await {
            Ok(Replication::Copied(to)) => {
                tracing::debug!(blob_id, locations = ?to, "blob replicated");
                Ok(())
            }
            Ok(Replication::Complete | Replication::Gone) => Ok(()),
            Err(RegistryError::Internal(message)) => Err(JobError::Failed(message)),
            Err(e) => Err(JobError::Retry(e.to_string())),
        }
    }
}
