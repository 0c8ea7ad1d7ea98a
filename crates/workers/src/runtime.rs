//! The worker runtime: one task per worker, with backoff, panic capture and graceful shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a unit of work found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// More is waiting: call again at once.
    Busy,
    /// Nothing to do: wait the worker's interval.
    Idle,
}

/// A failed unit of work. The runtime logs it and backs off.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

impl From<wharf_core::RegistryError> for WorkerError {
    fn from(e: wharf_core::RegistryError) -> Self {
        WorkerError(e.to_string())
    }
}

/// A background worker.
#[async_trait::async_trait]
pub trait Worker: Send + 'static {
    fn name(&self) -> &'static str;
    /// How long to wait after an idle unit.
    fn interval(&self) -> Duration;
    /// Does one bounded unit of work.
    async fn work(&mut self) -> Result<Work, WorkerError>;
}

/// What a worker has done so far, for health and troubleshooting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    pub units: u64,
    pub failures: u64,
    pub panics: u64,
    pub last_error: Option<String>,
}

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Running workers.
pub struct WorkerSet {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    statuses: Vec<(&'static str, Arc<Mutex<WorkerStatus>>)>,
}

impl WorkerSet {
    /// Starts every worker on the current runtime.
    pub fn start(workers: Vec<Box<dyn Worker>>) -> WorkerSet {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut statuses = Vec::new();
        for worker in workers {
            let status = Arc::new(Mutex::new(WorkerStatus::default()));
            statuses.push((worker.name(), status.clone()));
            tasks.spawn(run(worker, status, stopped.clone()));
        }
        WorkerSet {
            tasks,
            stop,
            statuses,
        }
    }

    /// A snapshot of each worker's status.
    pub fn statuses(&self) -> Vec<(&'static str, WorkerStatus)> {
        self.statuses
            .iter()
            .map(|(name, s)| (*name, s.lock().map(|s| s.clone()).unwrap_or_default()))
            .collect()
    }

    /// Asks every worker to stop after its current unit and waits up to `deadline`; workers
    /// still running then are aborted.
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "aborting workers past the shutdown deadline"
            );
            self.tasks.abort_all();
        }
    }
}

async fn run(
    mut worker: Box<dyn Worker>,
    status: Arc<Mutex<WorkerStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let name = worker.name();
    let mut backoff = BACKOFF_START;
    while !*stopped.borrow() {
        let outcome = AssertUnwindSafe(worker.work()).catch_unwind().await;
        let pause = {
            let mut s = status
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            s.units += 1;
            match outcome {
                Ok(Ok(work)) => {
                    backoff = BACKOFF_START;
                    match work {
                        Work::Busy => None,
                        Work::Idle => Some(worker.interval()),
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(worker = name, error = %e, "worker unit failed");
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                    Some(next_backoff(&mut backoff))
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(worker = name, panic = %message, "worker panicked");
                    s.panics += 1;
                    s.last_error = Some(format!("panic: {message}"));
                    Some(next_backoff(&mut backoff))
                }
            }
        };
        match pause {
            None => tokio::task::yield_now().await,
            Some(pause) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    }
    tracing::debug!(worker = name, "worker stopped");
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let now = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    now
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Busy twice, then fails once, then panics once, then idles.
    struct Scripted {
        calls: Arc<AtomicU32>,
    }

    #[async_trait::async_trait]
    impl Worker for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn work(&mut self) -> Result<Work, WorkerError> {
            match self.calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Ok(Work::Busy),
                2 => Err(WorkerError("storage unreachable".into())),
                3 => panic!("bug in a job"),
                _ => Ok(Work::Idle),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn busy_failures_and_panics_are_survived() {
        let calls = Arc::new(AtomicU32::new(0));
        let set = WorkerSet::start(vec![Box::new(Scripted {
            calls: calls.clone(),
        })]);
        // Busy units run back to back; the failure and the panic each back off (1 s, then 2 s).
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        let (name, status) = set.statuses().remove(0);
        assert_eq!(name, "scripted");
        assert_eq!((status.units, status.failures, status.panics), (5, 1, 1));
        assert_eq!(status.last_error.as_deref(), Some("panic: bug in a job"));
        // Idle now for an hour: shutdown interrupts the wait.
        tokio::time::timeout(Duration::from_secs(1), set.shutdown(Duration::from_secs(5)))
            .await
            .expect("an idle worker stops at once");
    }

    struct Stuck;

    #[async_trait::async_trait]
    impl Worker for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(1)
        }
        async fn work(&mut self) -> Result<Work, WorkerError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_aborts_past_the_deadline() {
        let set = WorkerSet::start(vec![Box::new(Stuck)]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = tokio::time::Instant::now();
        set.shutdown(Duration::from_secs(30)).await;
        assert_eq!(started.elapsed().as_secs(), 30);
    }
}
