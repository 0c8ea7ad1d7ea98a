//! The garbage collection workers:
//!
//! - `gcworker` (periodic, Quay's `GCWorker`): finds repositories holding garbage (tags that
//!   left the time machine, expired push protections), collects several of them per unit,
//!   picked at random so that collectors on several nodes rarely meet, and scans one batch of
//!   blobs and manifests for leftovers of a pass that crashed midway. It stays busy while it
//!   finds garbage.
//! - `repositorygcworker` (queue `repositorygc`): purges a repository deleted through the API.
//! - `namespacegcworker` (queue `namespacegc`): purges every repository of a deleted user or
//!   organization, then everything else naming it and its account.
//!
//! What is garbage, and why a concurrent push never loses data to the collector, is decided in
//! `db`'s `gc` module; the order of database commits and object deletes in `core`'s.

use std::time::Duration;

use db::{Db, NamespacePurge};
use wharf_core::{GcCursor, GcReport, PurgeProgress, Registry, RegistryError};

use crate::{Job, JobError, JobItem, QueueWorker, Work, Worker, WorkerError};

/// Repositories `gcworker` collects per unit of work.
const REPOSITORIES_PER_UNIT: usize = 10;

/// Blobs and manifests the leftovers scan looks at per unit of work.
const LEFTOVER_BATCH: u64 = 1000;

/// Immediate retries of a purge step that lost a race, before the item is given back.
const CONFLICT_RETRIES: u32 = 3;

/// Quay's `gcworker`.
pub struct GcWorker {
    registry: Registry,
    interval: Duration,
    cursor: GcCursor,
}

impl GcWorker {
    pub const NAME: &'static str = "gcworker";

    /// A collector that waits `interval` after a unit that found no garbage (Quay's
    /// `GARBAGE_COLLECTION_FREQUENCY`, 30 s).
    pub fn new(registry: Registry, interval: Duration) -> Self {
        GcWorker {
            registry,
            interval,
            cursor: GcCursor::default(),
        }
    }
}

#[async_trait::async_trait]
impl Worker for GcWorker {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn work(&mut self) -> Result<Work, WorkerError> {
        let candidates = self.registry.gc_candidates().await?;
        let mut report = GcReport::default();
        for repository_id in candidates.iter().take(REPOSITORIES_PER_UNIT) {
            report.merge(&self.registry.collect_repository(*repository_id).await?);
        }
        let (leftovers, _) = self
            .registry
            .collect_leftovers(&mut self.cursor, LEFTOVER_BATCH)
            .await?;
        report.merge(&leftovers);
        // Busy only while units delete something: garbage that keeps conflicting with writers
        // waits for the interval rather than spinning.
        Ok(if report.is_empty() {
            Work::Idle
        } else {
            Work::Busy
        })
    }
}

/// Quay's `repositorygcworker`: purges repositories `DELETE /api/v1/repository/…` marked.
pub struct RepositoryGc {
    registry: Registry,
}

impl RepositoryGc {
    pub fn new(registry: Registry) -> Self {
        RepositoryGc { registry }
    }

    /// The job as a worker over the queue in `db`.
    pub fn worker(registry: Registry, db: Db) -> QueueWorker<RepositoryGc> {
        QueueWorker::new(db, RepositoryGc::new(registry))
    }
}

#[async_trait::async_trait]
impl Job for RepositoryGc {
    const QUEUE: &'static str = "repositorygc";
    const NAME: &'static str = "repositorygcworker";

    async fn process(&self, item: &JobItem<'_>) -> Result<(), JobError> {
        let repository_id = marker_id(item)?;
        let lease = self.lease();
        match purge_repository(&self.registry, repository_id, Some(item.id()), || {
            item.extend(lease, None)
        })
        .await?
        {
            PurgeProgress::NotMarked => {
                tracing::warn!(
                    repository_id,
                    "the repository to purge is not marked for deletion; leaving it"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Quay's `namespacegcworker`: purges users and organizations `DELETE /api/v1/organization/…`
/// (or the user endpoints) marked.
pub struct NamespaceGc {
    registry: Registry,
}

impl NamespaceGc {
    pub fn new(registry: Registry) -> Self {
        NamespaceGc { registry }
    }

    /// The job as a worker over the queue in `db`.
    pub fn worker(registry: Registry, db: Db) -> QueueWorker<NamespaceGc> {
        QueueWorker::new(db, NamespaceGc::new(registry))
    }
}

#[async_trait::async_trait]
impl Job for NamespaceGc {
    const QUEUE: &'static str = "namespacegc";
    const NAME: &'static str = "namespacegcworker";

    async fn process(&self, item: &JobItem<'_>) -> Result<(), JobError> {
        let account_id = marker_id(item)?;
        let lease = self.lease();
        let repositories = match self
            .registry
            .namespace_to_purge(account_id)
            .await
            .map_err(failure)?
        {
            NamespacePurge::Absent => return Ok(()),
            NamespacePurge::NotMarked => {
                tracing::warn!(
                    account_id,
                    "the namespace to purge is not marked for deletion; leaving it"
                );
                return Ok(());
            }
            NamespacePurge::Repositories(ids) => ids,
        };
        for repository_id in repositories {
            purge_repository(&self.registry, repository_id, None, || {
                item.extend(lease, None)
            })
            .await?;
        }
        let mut attempts = 0;
        loop {
            match self
                .registry
                .purge_namespace_account(account_id, Some(item.id()))
                .await
                .map_err(failure)?
            {
                PurgeProgress::Purged | PurgeProgress::NotMarked => return Ok(()),
                PurgeProgress::More => {
                    return Err(JobError::Retry(
                        "the namespace holds a repository again".into(),
                    ));
                }
                PurgeProgress::Conflict(reason) => {
                    attempts += 1;
                    if attempts > CONFLICT_RETRIES {
                        return Err(JobError::Retry(reason));
                    }
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
                }
            }
        }
    }
}

/// Purges a repository step by step, extending the item's lease between steps; a step that
/// loses a race is retried a few times, then the item is given back.
async fn purge_repository<F, Fut>(
    registry: &Registry,
    repository_id: i64,
    except_queue_item: Option<i64>,
    extend: F,
) -> Result<PurgeProgress, JobError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, db::DbError>>,
{
    let mut pending = Vec::new();
    let mut report = GcReport::default();
    let mut attempts = 0;
    loop {
        let progress = registry
            .purge_repository_step(repository_id, except_queue_item, &mut pending, &mut report)
            .await
            .map_err(failure)?;
        match progress {
            PurgeProgress::More => {
                if !extend().await? {
                    return Err(JobError::Retry(
                        "the item's lease ran out while purging".into(),
                    ));
                }
            }
            PurgeProgress::Conflict(reason) => {
                attempts += 1;
                if attempts > CONFLICT_RETRIES {
                    return Err(JobError::Retry(reason));
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
            }
            done @ (PurgeProgress::Purged | PurgeProgress::NotMarked) => {
                if report.objects_failed > 0 {
                    tracing::warn!(
                        repository_id,
                        objects_failed = report.objects_failed,
                        "some objects of the purged repository could not be deleted (they leak)"
                    );
                }
                return Ok(done);
            }
        }
    }
}

/// The id in the item's body (`{"marker_id": …}`, Quay's key).
fn marker_id(item: &JobItem<'_>) -> Result<i64, JobError> {
    item.json()?
        .get("marker_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| JobError::Failed("the item's body has no marker_id".into()))
}

/// Database and storage failures are not the item's fault.
fn failure(e: RegistryError) -> JobError {
    JobError::Retry(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use db::testing::{Engine, TestDb};
    use db::{CommitBlob, NewManifest, NewUpload, TagTarget, now_ms};
    use storage::BlobStore;

    use super::*;

    struct Fixture {
        t: TestDb,
        dir: tempfile::TempDir,
        registry: Registry,
    }

    async fn fixture(engine: Engine) -> Fixture {
        let t = TestDb::new(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(storage::LocalStore::open(dir.path()).unwrap());
        let registry = Registry::new(t.db.clone(), store, "default", Default::default())
            .await
            .unwrap();
        Fixture { t, dir, registry }
    }

    impl Fixture {
        fn object(&self, key: &str) -> std::path::PathBuf {
            storage::LocalStore::open(self.dir.path())
                .unwrap()
                .local_path(key)
                .unwrap()
        }

        /// Stores an image of one layer (with its object) under `tag`, its blob protected
        /// until `protect_until_ms`. Returns the layer's object key.
        async fn image(
            &self,
            repository_id: i64,
            n: u8,
            tag: &str,
            protect_until_ms: i64,
        ) -> String {
            let db = &self.t.db;
            let location = db.ensure_location("default").await.unwrap();
            let up = db
                .create_upload(NewUpload {
                    uuid: uuid(n),
                    repository_id,
                    location_id: location,
                    hash_state: vec![1],
                    storage_state: "null".into(),
                })
                .await
                .unwrap();
            let key = format!("blobs/{:02x}/{}", n, uuid(n));
            let path = self.object(&key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, [n; 10]).unwrap();
            db.commit_blob(CommitBlob {
                upload_id: up.id,
                repository_id,
                location_id: location,
                digest: digest(n),
                size: 10,
                storage_key: key.clone(),
                protect_until_ms,
                replicate: false,
            })
            .await
            .unwrap();
            let manifest = NewManifest {
                repository_id,
                digest: digest(n.wrapping_add(100)),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                bytes: vec![n],
                config_media_type: None,
                artifact_type: None,
                subject: None,
                layers_size: 10,
                blob_digests: vec![digest(n)],
                child_digests: vec![],
            };
            db.put_manifest(manifest, &[TagTarget::Visible(tag.into())])
                .await
                .unwrap();
            key
        }
    }

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn uuid(n: u8) -> String {
        format!("upload-{n}")
    }

    #[tokio::test]
    async fn gcworker_collects_until_nothing_is_left() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let f = fixture(engine).await;
            let db = &f.t.db;
            let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
            db.set_tag_expiration_s(repo.namespace_id, 0).await.unwrap();
            let old = f.image(repo.id, 1, "latest", now_ms() - 1).await;
            let kept = f.image(repo.id, 2, "latest", now_ms() - 1).await;
            let mut worker = GcWorker::new(f.registry.clone(), Duration::from_secs(30));
            assert_eq!(worker.work().await.unwrap(), Work::Busy);
            assert_eq!(worker.work().await.unwrap(), Work::Idle);
            assert!(!f.object(&old).exists(), "the moved tag's layer is gone");
            assert!(f.object(&kept).exists());
            let stats = f.registry.gc_stats();
            assert_eq!((stats.blobs_deleted, stats.manifests_deleted), (1, 1));
        }
    }

    #[tokio::test]
    async fn repositorygcworker_purges_deleted_repositories() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let f = fixture(engine).await;
            let db = &f.t.db;
            let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
            let key = f.image(repo.id, 1, "latest", now_ms() + 3_600_000).await;
            let mut worker = RepositoryGc::worker(f.registry.clone(), db.clone());
            assert_eq!(worker.work().await.unwrap(), Work::Idle, "nothing queued");
            assert!(db.mark_repository_for_deletion(repo.id).await.unwrap());
            assert_eq!(worker.work().await.unwrap(), Work::Busy);
            assert_eq!(worker.work().await.unwrap(), Work::Idle, "the item is done");
            assert_eq!(
                db.repository_counts(repo.id).await.unwrap(),
                db::RepositoryCounts::default()
            );
            assert!(!f.object(&key).exists());
            assert_eq!(f.registry.gc_stats().repositories_purged, 1);
            // A malformed item fails (and is kept for inspection once out of retries).
            db.queue_put("repositorygc/acme/x/", "{}", 0, 1)
                .await
                .unwrap();
            assert_eq!(worker.work().await.unwrap(), Work::Busy);
            assert_eq!(db.queue_delete_prefix("repositorygc/").await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn namespacegcworker_purges_deleted_namespaces() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let f = fixture(engine).await;
            let db = &f.t.db;
            let one = db.ensure_repository("acme", "one", "public").await.unwrap();
            let two = db.ensure_repository("acme", "two", "public").await.unwrap();
            let a = f.image(one.id, 1, "latest", now_ms() + 3_600_000).await;
            let b = f.image(two.id, 2, "latest", now_ms() + 3_600_000).await;
            assert!(
                db.mark_namespace_for_deletion(one.namespace_id)
                    .await
                    .unwrap()
            );
            let mut worker = NamespaceGc::worker(f.registry.clone(), db.clone());
            assert_eq!(worker.work().await.unwrap(), Work::Busy);
            assert_eq!(worker.work().await.unwrap(), Work::Idle);
            assert!(
                db.find_account_by_id(one.namespace_id)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(!f.object(&a).exists() && !f.object(&b).exists());
            let stats = f.registry.gc_stats();
            assert_eq!((stats.namespaces_purged, stats.repositories_purged), (1, 2));
        }
    }
}
