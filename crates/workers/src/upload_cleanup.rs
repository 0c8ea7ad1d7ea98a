//! Deletes upload sessions that nobody finished (Quay's blobuploadcleanupworker): the session row
//! first, then its bytes, so a crash in between leaves only an unreferenced object.

use std::time::Duration;

use wharf_core::Registry;

use crate::{Work, Worker, WorkerError};

/// Sessions deleted per unit of work.
const BATCH: u64 = 100;

pub struct UploadCleanup {
    registry: Registry,
    idle: Duration,
}

impl UploadCleanup {
    pub const NAME: &'static str = "blobuploadcleanupworker";

    pub fn new(registry: Registry, idle: Duration) -> Self {
        UploadCleanup { registry, idle }
    }
}

#[async_trait::async_trait]
impl Worker for UploadCleanup {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(3600)
    }

    async fn work(&mut self) -> Result<Work, WorkerError> {
        let deleted = self.registry.clean_stale_uploads(self.idle, BATCH).await?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted abandoned upload sessions");
        }
        Ok(if deleted as u64 == BATCH {
            Work::Busy
        } else {
            Work::Idle
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use db::testing::{Engine, TestDb};

    #[tokio::test]
    async fn deletes_only_abandoned_sessions_and_their_bytes() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let t = TestDb::new(engine).await;
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(storage::LocalStore::open(dir.path()).unwrap());
            let registry = Registry::new(t.db.clone(), store, "default", Default::default())
                .await
                .unwrap();
            t.db.ensure_repository("acme", "app", "private")
                .await
                .unwrap();
            let path = registry.parse_path("acme/app").unwrap();
            let repo = registry.repository_for_push(&path).await.unwrap();
            let old = registry.start_upload(&repo).await.unwrap();
            let body: wharf_core::BodyStream = Box::pin(futures::stream::iter([Ok::<_, String>(
                bytes::Bytes::from_static(b"partial"),
            )]));
            registry
                .write_chunk(&repo, &old.uuid, None, body)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            let fresh = registry.start_upload(&repo).await.unwrap();

            let mut worker = UploadCleanup::new(registry.clone(), Duration::from_millis(20));
            assert_eq!(worker.work().await.unwrap(), Work::Idle);
            assert!(
                registry.upload_status(&repo, &old.uuid).await.is_err(),
                "abandoned: gone"
            );
            assert!(
                !dir.path().join("uploads").join(&old.uuid).exists(),
                "its bytes too"
            );
            assert!(
                registry.upload_status(&repo, &fresh.uuid).await.is_ok(),
                "recent: kept"
            );
        }
    }
}
