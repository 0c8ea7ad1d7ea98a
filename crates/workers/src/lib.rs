//! Background workers and the runtime that drives them.
//!
//! A worker does one bounded unit of work per call and says whether more is waiting. The runtime
//! calls it again at once while it is busy, waits its interval while it is idle, backs off
//! exponentially after failures, catches panics (a panic is logged and counted, never fatal),
//! and on shutdown lets each worker finish its current unit, up to a deadline.

mod gc;
mod queue;
mod replication;
mod runtime;
mod upload_cleanup;

pub use gc::{GcWorker, NamespaceGc, RepositoryGc};
pub use queue::{Job, JobError, JobItem, QueueWorker};
pub use replication::StorageReplication;
pub use runtime::{Work, Worker, WorkerError, WorkerSet, WorkerStatus};
pub use upload_cleanup::UploadCleanup;

use wharf_core::Registry;

/// Names of the workers `wharf worker` knows.
pub const NAMES: &[&str] = &[
    UploadCleanup::NAME,
    GcWorker::NAME,
    <RepositoryGc as Job>::NAME,
    <NamespaceGc as Job>::NAME,
    <StorageReplication as Job>::NAME,
];

/// Settings the workers take from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Idle time after which an unfinished upload session is deleted.
    pub upload_expiry: std::time::Duration,
    /// `FEATURE_GARBAGE_COLLECTION`: run `gcworker`.
    pub garbage_collection: bool,
    /// `FEATURE_REPOSITORY_GARBAGE_COLLECTION`: run `repositorygcworker`.
    pub repository_garbage_collection: bool,
    /// `FEATURE_NAMESPACE_GARBAGE_COLLECTION`: run `namespacegcworker`.
    pub namespace_garbage_collection: bool,
    /// How long `gcworker` waits after a pass that found nothing.
    pub gc_interval: std::time::Duration,
}

/// Builds the named workers (all of them when `names` is empty). Unknown names are an error.
pub fn build(
    registry: &Registry,
    db: &db::Db,
    settings: &Settings,
    names: &[String],
) -> Result<Vec<Box<dyn Worker>>, String> {
    if let Some(unknown) = names.iter().find(|n| !NAMES.contains(&n.as_str())) {
        return Err(format!(
            "unknown worker {unknown:?}; known workers: {}",
            NAMES.join(", ")
        ));
    }
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let mut workers: Vec<Box<dyn Worker>> = Vec::new();
    if wanted(UploadCleanup::NAME) {
        workers.push(Box::new(UploadCleanup::new(
            registry.clone(),
            settings.upload_expiry,
        )));
    }
    for (name, on) in [
        (GcWorker::NAME, settings.garbage_collection),
        (
            <RepositoryGc as Job>::NAME,
            settings.repository_garbage_collection,
        ),
        (
            <NamespaceGc as Job>::NAME,
            settings.namespace_garbage_collection,
        ),
    ] {
        if !on && names.iter().any(|n| n == name) {
            return Err(format!("{name} is turned off in config.yaml"));
        }
    }
    if settings.garbage_collection && wanted(GcWorker::NAME) {
        workers.push(Box::new(GcWorker::new(
            registry.clone(),
            settings.gc_interval,
        )));
    }
    if settings.repository_garbage_collection && wanted(<RepositoryGc as Job>::NAME) {
        workers.push(Box::new(RepositoryGc::worker(registry.clone(), db.clone())));
    }
    if settings.namespace_garbage_collection && wanted(<NamespaceGc as Job>::NAME) {
        workers.push(Box::new(NamespaceGc::worker(registry.clone(), db.clone())));
    }
    // Replication runs only where it is configured: Quay starts the worker only with
    // FEATURE_STORAGE_REPLICATION, and naming it without replication is a mistake to report.
    let replication = <StorageReplication as Job>::NAME;
    if registry.replication_targets().is_some() {
        if wanted(replication) {
            workers.push(Box::new(StorageReplication::worker(
                registry.clone(),
                db.clone(),
            )));
        }
    } else if names.iter().any(|n| n == replication) {
        return Err(format!(
            "{replication} needs FEATURE_STORAGE_REPLICATION and \
             DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS in config.yaml"
        ));
    }
    Ok(workers)
}
