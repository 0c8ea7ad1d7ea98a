//! Quay's `QueueWorker`: a worker that drains one leased queue of the database, one item per
//! unit of work.
//!
//! A [`Job`] says which queue it serves and how to process one item; [`QueueWorker`] claims an
//! item (spending one of its retries), runs the job under the item's lease, and then:
//!
//! - on success deletes the item;
//! - on [`JobError::Failed`] gives it back for a later try, the retry spent (Quay's
//!   `JobException`), so an item that keeps failing runs out of retries and stays in the table,
//!   unclaimable, as in Quay;
//! - on [`JobError::Retry`] gives it back with the retry restored (`WorkerSleepException`);
//! - on [`JobError::Unhealthy`] gives it back with the retry restored and takes no work for a
//!   while (`WorkerUnhealthyException`; Quay stops the worker until it is restarted);
//! - on a panic gives it back with the retry spent (a poison item dies after its retries) and
//!   re-raises the panic so that the runtime logs and counts it.
//!
//! A worker that dies mid-item gives nothing back: its lease runs out and another worker claims
//! the item, one retry poorer. Long jobs push their lease forward with [`JobItem::extend`].

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use db::{Db, DbError, QueueItem, now_ms};
use futures::FutureExt;
use tracing::Instrument;

use crate::{Work, Worker, WorkerError};

/// Quay's `MINIMUM_EXTENSION`: a lease extension that moves the lease less than this is not
/// written, so jobs may call `extend` often without a write each time.
const MINIMUM_EXTENSION_MS: i64 = 20_000;

/// Work taken from one queue. Settings default to Quay's `QueueWorker` defaults.
#[async_trait::async_trait]
pub trait Job: Send + Sync + 'static {
    /// The queue: the first component of its items' names (Quay's `*_QUEUE_NAME` values, e.g.
    /// `"repositorygc"`).
    const QUEUE: &'static str;
    /// The worker's name in logs, statuses and `wharf worker NAME` (e.g. `"gcworker"`).
    const NAME: &'static str;

    /// How long a claim holds an item before another worker may take it
    /// (`reservation_seconds`).
    fn lease(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// How long to wait after finding the queue empty (`poll_period_seconds`).
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// How long a given-back item waits before it can be claimed again
    /// (`retry_after_seconds`).
    fn retry_after(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// How long the worker takes no work after [`JobError::Unhealthy`].
    fn unhealthy_pause(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// Processes one item. Runs under the item's lease: a job that may outlive it calls
    /// [`JobItem::extend`].
    async fn process(&self, item: &JobItem<'_>) -> Result<(), JobError>;
}

/// Why a job did not finish its item.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The item is at fault (malformed, refers to something gone): the retry the claim spent
    /// stays spent, and the item comes back after `retry_after` while retries remain.
    #[error("job failed: {0}")]
    Failed(String),
    /// Not the item's fault (something else is busy or briefly unavailable): the retry is
    /// restored and the item comes back after `retry_after`.
    #[error("job to be retried: {0}")]
    Retry(String),
    /// The worker cannot work (a dependency is down): the retry is restored and the worker
    /// takes no work for `unhealthy_pause`.
    #[error("worker unhealthy: {0}")]
    Unhealthy(String),
}

/// A database failure is not the item's fault.
impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// The item a job is processing, and its lease.
pub struct JobItem<'a> {
    db: &'a Db,
    item: &'a QueueItem,
    /// When the lease ends at the latest as far as this worker knows (never later than the
    /// database's value, which is written after this is estimated).
    lease_end_ms: AtomicI64,
}

impl JobItem<'_> {
    pub fn id(&self) -> i64 {
        self.item.id
    }

    /// The item's whole name, `"<queue>/<part>/…/"`.
    pub fn name(&self) -> &str {
        &self.item.name
    }

    /// The parts of the name after the queue: `["acme", "12"]` for `"repositorygc/acme/12/"`.
    pub fn parts(&self) -> Vec<&str> {
        name_parts(&self.item.name)
    }

    /// The body as stored (JSON by convention), as it was when claimed.
    pub fn body(&self) -> &str {
        &self.item.body
    }

    /// The body parsed as JSON; a body that is not JSON fails the item.
    pub fn json(&self) -> Result<serde_json::Value, JobError> {
        serde_json::from_str(&self.item.body)
            .map_err(|e| JobError::Failed(format!("item body is not JSON: {e}")))
    }

    /// Retries left after this one; 0 means this is the item's last try.
    pub fn retries_remaining(&self) -> i32 {
        self.item.retries_remaining
    }

    /// Moves the lease to `lease` from now and, with `body`, saves progress for whoever runs
    /// the item next. Like Quay, the lease is only written when it moves by 20 s or more (or
    /// may have run out), and never moves backwards. Returns whether the item is still ours:
    /// false means the lease ran out and the item may be running elsewhere, so the job should
    /// stop.
    pub async fn extend(&self, lease: Duration, body: Option<&str>) -> Result<bool, DbError> {
        let now = now_ms();
        let known_end = self.lease_end_ms.load(Ordering::Relaxed);
        let wanted_end = now.saturating_add(millis(lease));
        if body.is_none() && !extension_needs_write(known_end, wanted_end, now) {
            return Ok(true);
        }
        let end = wanted_end.max(known_end);
        let kept = self.db.queue_extend(self.item, end - now, body).await?;
        if kept {
            self.lease_end_ms.store(end, Ordering::Relaxed);
        }
        Ok(kept)
    }
}

/// Whether an extension must be written: it moves the lease enough, or the lease may already
/// have run out (then only the database knows whether the item is still ours).
fn extension_needs_write(known_end_ms: i64, wanted_end_ms: i64, now_ms: i64) -> bool {
    known_end_ms <= now_ms || wanted_end_ms - known_end_ms >= MINIMUM_EXTENSION_MS
}

fn name_parts(name: &str) -> Vec<&str> {
    let rest = name.split_once('/').map_or("", |(_, rest)| rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn db_failure(e: DbError) -> WorkerError {
    WorkerError(e.to_string())
}

/// Runs a [`Job`] over its queue as a [`Worker`]: one item per unit of work, `Busy` while items
/// keep coming, `Idle` once the queue has none available.
pub struct QueueWorker<J: Job> {
    db: Db,
    job: J,
    /// Set by [`JobError::Unhealthy`]: no claims before then.
    paused_until: Option<Instant>,
}

impl<J: Job> QueueWorker<J> {
    pub fn new(db: Db, job: J) -> Self {
        QueueWorker {
            db,
            job,
            paused_until: None,
        }
    }

    pub fn job(&self) -> &J {
        &self.job
    }

    /// Gives a claimed item back for a try after `retry_after`.
    async fn give_back(&self, item: &QueueItem, restore_retry: bool) -> Result<(), WorkerError> {
        let retry_after_ms = millis(self.job.retry_after());
        if !self
            .db
            .queue_incomplete(item, retry_after_ms, restore_retry)
            .await
            .map_err(db_failure)?
        {
            tracing::warn!(
                worker = J::NAME,
                item_id = item.id,
                "lease ran out before the item was given back; it may be running elsewhere"
            );
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<J: Job> Worker for QueueWorker<J> {
    fn name(&self) -> &'static str {
        J::NAME
    }

    fn interval(&self) -> Duration {
        self.job.poll_interval()
    }

    async fn work(&mut self) -> Result<Work, WorkerError> {
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return Ok(Work::Idle);
            }
            self.paused_until = None;
        }
        let lease_ms = millis(self.job.lease());
        // Read before the claim, so the lease end estimated from it is never later than the one
        // the database holds.
        let asked_ms = now_ms();
        let Some(item) = self
            .db
            .queue_claim(J::QUEUE, lease_ms)
            .await
            .map_err(db_failure)?
        else {
            return Ok(Work::Idle);
        };
        if item.retries_remaining == 0 {
            tracing::warn!(
                worker = J::NAME,
                item_id = item.id,
                item = %item.name,
                "last try of a queue item: it is dropped from work if this one fails"
            );
        }
        let span = tracing::info_span!(
            "job",
            worker = J::NAME,
            item_id = item.id,
            item = %item.name,
            retries_remaining = item.retries_remaining
        );
        let job_item = JobItem {
            db: &self.db,
            item: &item,
            lease_end_ms: AtomicI64::new(asked_ms.saturating_add(lease_ms)),
        };
        let started = Instant::now();
        let outcome = AssertUnwindSafe(self.job.process(&job_item).instrument(span.clone()))
            .catch_unwind()
            .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        self.settle(&item, outcome, duration_ms)
            .instrument(span)
            .await
    }
}

impl<J: Job> QueueWorker<J> {
    /// Completes or gives back a processed item, by how its job ended.
    async fn settle(
        &mut self,
        item: &QueueItem,
        outcome: Result<Result<(), JobError>, Box<dyn std::any::Any + Send>>,
        duration_ms: u64,
    ) -> Result<Work, WorkerError> {
        match outcome {
            Ok(Ok(())) => {
                if self.db.queue_complete(item).await.map_err(db_failure)? {
                    tracing::debug!(duration_ms, "queue item done");
                } else {
                    tracing::warn!(
                        duration_ms,
                        "lease ran out before the item was done; it may run again elsewhere"
                    );
                }
                Ok(Work::Busy)
            }
            Ok(Err(JobError::Failed(reason))) => {
                if item.retries_remaining == 0 {
                    tracing::warn!(duration_ms, %reason, "queue item failed its last try; giving up on it");
                } else {
                    tracing::warn!(duration_ms, %reason, "queue item failed; it will be tried again");
                }
                self.give_back(item, false).await?;
                Ok(Work::Busy)
            }
            Ok(Err(JobError::Retry(reason))) => {
                tracing::info!(duration_ms, %reason, "queue item to be retried later");
                self.give_back(item, true).await?;
                Ok(Work::Busy)
            }
            Ok(Err(JobError::Unhealthy(reason))) => {
                let pause = self.job.unhealthy_pause();
                tracing::error!(
                    duration_ms,
                    %reason,
                    pause_ms = pause.as_millis() as u64,
                    "worker unhealthy; taking no work for a while"
                );
                self.paused_until = Some(Instant::now() + pause);
                self.give_back(item, true).await?;
                Err(WorkerError(format!("unhealthy: {reason}")))
            }
            Err(panic) => {
                tracing::error!(
                    duration_ms,
                    "queue job panicked; the item's retry stays spent"
                );
                self.give_back(item, false).await?;
                // The runtime logs the panic's message and counts it.
                std::panic::resume_unwind(panic)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use db::{Db, db_test};

    use super::*;

    const QUEUE: &str = "testqueue";

    /// What the scripted job does with the next item.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Succeed,
        Fail,
        Retry,
        Unhealthy,
        Panic,
        /// Extends the lease (saving progress) past the configured one, holds the item past
        /// the original lease, extends again by too little to write, then asks for a retry.
        ExtendAndHold,
        /// Holds the item past its lease without extending, then tries to extend.
        Stall,
    }

    #[derive(Debug, Default)]
    struct Seen {
        parts: Vec<String>,
        body: String,
        retries_remaining: i32,
        extended: Vec<bool>,
    }

    #[derive(Default)]
    struct State {
        steps: Mutex<VecDeque<Step>>,
        seen: Mutex<Vec<Seen>>,
    }

    struct Scripted {
        state: Arc<State>,
        lease: Duration,
    }

    #[async_trait::async_trait]
    impl Job for Scripted {
        const QUEUE: &'static str = QUEUE;
        const NAME: &'static str = "testworker";

        fn lease(&self) -> Duration {
            self.lease
        }
        fn retry_after(&self) -> Duration {
            Duration::ZERO
        }
        fn unhealthy_pause(&self) -> Duration {
            Duration::from_millis(300)
        }

        async fn process(&self, item: &JobItem<'_>) -> Result<(), JobError> {
            item.json()?;
            let step = self.state.steps.lock().unwrap().pop_front();
            let mut seen = Seen {
                parts: item.parts().iter().map(|p| p.to_string()).collect(),
                body: item.body().to_string(),
                retries_remaining: item.retries_remaining(),
                extended: Vec::new(),
            };
            let outcome = match step.unwrap_or(Step::Succeed) {
                Step::Succeed => Ok(()),
                Step::Fail => Err(JobError::Failed("bad item".into())),
                Step::Retry => Err(JobError::Retry("busy elsewhere".into())),
                Step::Unhealthy => Err(JobError::Unhealthy("storage down".into())),
                Step::Panic => panic!("poison item"),
                Step::ExtendAndHold => {
                    let progress = r#"{"progress": 1}"#;
                    seen.extended
                        .push(item.extend(Duration::from_secs(60), Some(progress)).await?);
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                    seen.extended
                        .push(item.extend(Duration::from_secs(61), None).await?);
                    Err(JobError::Retry("resume later".into()))
                }
                Step::Stall => {
                    tokio::time::sleep(self.lease + Duration::from_millis(800)).await;
                    seen.extended
                        .push(item.extend(Duration::from_secs(60), None).await?);
                    Ok(())
                }
            };
            self.state.seen.lock().unwrap().push(seen);
            outcome
        }
    }

    fn worker(db: &Db, lease: Duration, steps: &[Step]) -> (QueueWorker<Scripted>, Arc<State>) {
        let state = Arc::new(State::default());
        state.steps.lock().unwrap().extend(steps.iter().copied());
        let job = Scripted {
            state: state.clone(),
            lease,
        };
        (QueueWorker::new(db.clone(), job), state)
    }

    fn retries_seen(state: &State) -> Vec<i32> {
        let seen = state.seen.lock().unwrap();
        seen.iter().map(|s| s.retries_remaining).collect()
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn names_split_into_parts_after_the_queue() {
        assert_eq!(name_parts("repositorygc/acme/12/"), ["acme", "12"]);
        assert_eq!(name_parts("notification/a//b/"), ["a", "", "b"]);
        assert!(name_parts("namespacegc/").is_empty());
    }

    #[test]
    fn extensions_are_written_like_quays() {
        let now = 1_000_000;
        let end = now + 300_000;
        assert!(!extension_needs_write(end, end + 19_999, now), "too small");
        assert!(extension_needs_write(end, end + 20_000, now));
        assert!(!extension_needs_write(end, now + 10_000, now), "shorter");
        assert!(
            extension_needs_write(now - 1, now + 1_000, now),
            "lease may have run out: ask the database"
        );
    }

    db_test!(success_deletes_the_item, |db: Db| async move {
        let (mut w, state) = worker(&db, LEASE, &[Step::Succeed]);
        assert_eq!(w.work().await.unwrap(), Work::Idle, "empty queue");
        let name = db::item_name(QUEUE, &["acme", "7"]);
        db.queue_put(&name, r#"{"repo": 7}"#, 0, 5).await.unwrap();
        assert_eq!(w.work().await.unwrap(), Work::Busy);
        {
            let seen = state.seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].parts, ["acme", "7"]);
            assert_eq!(seen[0].body, r#"{"repo": 7}"#);
            assert_eq!(seen[0].retries_remaining, 4);
        }
        assert!(!db.queue_alive(&name).await.unwrap());
        assert_eq!(
            db.queue_delete_prefix("testqueue/").await.unwrap(),
            0,
            "deleted"
        );
        assert_eq!(w.work().await.unwrap(), Work::Idle);
    });

    db_test!(
        failures_spend_retries_until_the_item_is_dead,
        |db: Db| async move {
            let (mut w, state) = worker(&db, LEASE, &[Step::Fail; 5]);
            db.queue_put("testqueue/x/", "{}", 0, 3).await.unwrap();
            // A body that is not JSON fails too.
            db.queue_put("testqueue/y/", "not json", 0, 1)
                .await
                .unwrap();
            for _ in 0..4 {
                assert_eq!(w.work().await.unwrap(), Work::Busy);
            }
            assert_eq!(w.work().await.unwrap(), Work::Idle, "no retries left");
            let mut retries = retries_seen(&state);
            retries.sort();
            assert_eq!(
                retries,
                [0, 1, 2],
                "the JSON failure never reached the script"
            );
            assert_eq!(
                db.queue_delete_prefix("testqueue/").await.unwrap(),
                2,
                "dead items stay in the table"
            );
        }
    );

    db_test!(retries_are_restored, |db: Db| async move {
        let (mut w, state) = worker(&db, LEASE, &[Step::Retry, Step::Retry, Step::Retry]);
        db.queue_put("testqueue/x/", "{}", 0, 1).await.unwrap();
        for _ in 0..4 {
            assert_eq!(w.work().await.unwrap(), Work::Busy);
        }
        assert_eq!(retries_seen(&state), [0, 0, 0, 0], "every try was the last");
        assert_eq!(w.work().await.unwrap(), Work::Idle, "done");
        assert_eq!(db.queue_delete_prefix("testqueue/").await.unwrap(), 0);
    });

    db_test!(unhealthy_pauses_the_worker, |db: Db| async move {
        let (mut w, state) = worker(&db, LEASE, &[Step::Unhealthy]);
        db.queue_put("testqueue/x/", "{}", 0, 5).await.unwrap();
        let err = w.work().await.unwrap_err();
        assert_eq!(err.0, "unhealthy: storage down");
        assert_eq!(w.work().await.unwrap(), Work::Idle, "paused");
        assert!(db.queue_alive("testqueue/x/").await.unwrap());
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(w.work().await.unwrap(), Work::Busy);
        assert_eq!(retries_seen(&state), [4, 4], "the retry was restored");
    });

    db_test!(panics_are_caught_counted_and_retried, |db: Db| async move {
        let (w, state) = worker(&db, LEASE, &[Step::Panic]);
        db.queue_put("testqueue/x/", "{}", 0, 5).await.unwrap();
        let set = crate::WorkerSet::start(vec![Box::new(w)]);
        // The runtime backs off a second after the panic, then the item runs again.
        for _ in 0..50 {
            if state.seen.lock().unwrap().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (name, status) = set.statuses().remove(0);
        set.shutdown(Duration::from_secs(5)).await;
        assert_eq!(name, "testworker");
        assert_eq!(status.panics, 1);
        assert_eq!(status.last_error.as_deref(), Some("panic: poison item"));
        assert_eq!(
            retries_seen(&state),
            [3],
            "the panicking try spent its retry (the panic recorded nothing)"
        );
        assert!(!db.queue_alive("testqueue/x/").await.unwrap(), "done");
    });

    db_test!(
        leases_are_extended_and_progress_saved,
        |db: Db| async move {
            // Timings leave a loaded machine room: the job extends at once, the other
            // claimer comes after the original lease, and the job holds the item past that.
            let lease = Duration::from_millis(1_000);
            let (mut w, state) = worker(&db, lease, &[Step::ExtendAndHold]);
            db.queue_put("testqueue/x/", r#"{"progress": 0}"#, 0, 5)
                .await
                .unwrap();
            let other = db.clone();
            let (unit, stolen) = tokio::join!(w.work(), async move {
                // Past the original lease, while the job still holds the item.
                tokio::time::sleep(Duration::from_millis(1_200)).await;
                other.queue_claim(QUEUE, 60_000).await.unwrap()
            });
            assert_eq!(unit.unwrap(), Work::Busy);
            assert!(stolen.is_none(), "the extended lease kept the item");
            assert_eq!(w.work().await.unwrap(), Work::Busy);
            let seen = state.seen.lock().unwrap();
            assert_eq!(seen[0].extended, [true, true]);
            assert_eq!(seen[1].body, r#"{"progress": 1}"#, "progress survives");
            assert_eq!(seen[1].retries_remaining, 4, "the retry was restored");
        }
    );

    db_test!(a_lost_lease_is_reported, |db: Db| async move {
        let lease = Duration::from_millis(500);
        let (mut w, state) = worker(&db, lease, &[Step::Stall]);
        db.queue_put("testqueue/x/", "{}", 0, 5).await.unwrap();
        let other = db.clone();
        let (unit, taken) = tokio::join!(w.work(), async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            other.queue_claim(QUEUE, 60_000).await.unwrap()
        });
        assert_eq!(unit.unwrap(), Work::Busy);
        let taken = taken.expect("the lease ran out, so another worker took the item");
        assert_eq!(state.seen.lock().unwrap()[0].extended, [false]);
        assert!(
            db.queue_complete(&taken).await.unwrap(),
            "the new claim holds"
        );
    });

    db_test!(a_killed_workers_item_comes_back, |db: Db| async move {
        db.queue_put("testqueue/x/", "{}", 0, 5).await.unwrap();
        // A worker claims the item and dies: nothing completes it or gives it back.
        let dead = db.queue_claim(QUEUE, 1_000).await.unwrap().unwrap();
        let (mut w, state) = worker(&db, LEASE, &[]);
        assert_eq!(w.work().await.unwrap(), Work::Idle, "still leased");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(w.work().await.unwrap(), Work::Busy);
        assert_eq!(retries_seen(&state), [3], "the dead claim spent one retry");
        assert!(!db.queue_complete(&dead).await.unwrap());
        assert!(!db.queue_alive("testqueue/x/").await.unwrap());
    });
}
