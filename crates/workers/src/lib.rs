//! Background workers and the runtime that drives them.
//!
//! A worker does one bounded unit of work per call and says whether more is waiting. The runtime
//! calls it again at once while it is busy, waits its interval while it is idle, backs off
//! exponentially after failures, catches panics (a panic is logged and counted, never fatal),
//! and on shutdown lets each worker finish its current unit, up to a deadline.

mod runtime;
mod upload_cleanup;

pub use runtime::{Work, Worker, WorkerError, WorkerSet, WorkerStatus};
pub use upload_cleanup::UploadCleanup;

use wharf_core::Registry;

/// Names of the workers `wharf worker` knows.
pub const NAMES: &[&str] = &[UploadCleanup::NAME];

/// Settings the workers take from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Idle time after which an unfinished upload session is deleted.
    pub upload_expiry: std::time::Duration,
}

/// Builds the named workers (all of them when `names` is empty). Unknown names are an error.
pub fn build(
    registry: &Registry,
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
    Ok(workers)
}
