//! Garbage collection and the purges of deleted repositories and namespaces (Quay's `gcworker`,
//! `repositorygcworker` and `namespacegcworker` do their work through these services).
//!
//! The database decides what is garbage, with conditional deletes in short transactions that a
//! concurrent push can never lose data to (see `db`'s `gc` module); this module sequences those
//! transactions and deletes blob objects, from every location that held them, only after the
//! commit that removed their rows. A crash in between leaks an object and never leaves a row
//! pointing at missing bytes; the leftovers scan ([`Registry::collect_leftovers`]) finds blobs
//! and manifests a crashed pass left unreferenced.
//!
//! A transaction that loses a race with a writer (a foreign-key violation, a deadlock) changed
//! nothing: it is logged, counted in [`GcReport::conflicts`] and skipped, and a later pass
//! finds the same garbage again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use db::{FreedBlob, GC_CHUNK, GcAttempt, GcStep, NamespacePurge, PurgeStep, UploadRow};

use crate::{Registry, RegistryError, now_ms};

/// Counters of the collector since the process started, for Prometheus
/// (`quay_gc_iterations_total`, `quay_gc_repos_purged_total`, `quay_gc_namespaces_purged_total`,
/// `quay_gc_storage_blobs_deleted_total`).
#[derive(Debug, Default)]
pub(crate) struct GcCounters {
    iterations: AtomicU64,
    repositories_purged: AtomicU64,
    namespaces_purged: AtomicU64,
    blobs_deleted: AtomicU64,
    tags_deleted: AtomicU64,
    manifests_deleted: AtomicU64,
    conflicts: AtomicU64,
}

/// A snapshot of the collector's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Repositories collected (one per [`Registry::collect_repository`] call).
    pub iterations: u64,
    pub repositories_purged: u64,
    pub namespaces_purged: u64,
    /// Blob rows deleted (each one's object is deleted from every location that held it).
    pub blobs_deleted: u64,
    pub tags_deleted: u64,
    pub manifests_deleted: u64,
    /// Transactions skipped because a concurrent writer won a race.
    pub conflicts: u64,
}

/// What a collection or purge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub tags_deleted: u64,
    pub manifests_deleted: u64,
    /// Push protections (`uploaded_blob`) removed.
    pub uploaded_blobs_deleted: u64,
    pub blobs_deleted: u64,
    /// Upload sessions of purged repositories that were aborted.
    pub uploads_aborted: u64,
    /// Object deletions that failed: those objects leak (nothing references them).
    pub objects_failed: u64,
    /// Transactions skipped because a concurrent writer won a race.
    pub conflicts: u64,
}

impl GcReport {
    fn add_step(&mut self, step: &GcStep) {
        self.tags_deleted += step.tags_deleted;
        self.manifests_deleted += step.manifests_deleted;
        self.uploaded_blobs_deleted += step.uploaded_blobs_deleted;
    }

    /// Adds another report's numbers to this one.
    pub fn merge(&mut self, other: &GcReport) {
        self.tags_deleted += other.tags_deleted;
        self.manifests_deleted += other.manifests_deleted;
        self.uploaded_blobs_deleted += other.uploaded_blobs_deleted;
        self.blobs_deleted += other.blobs_deleted;
        self.uploads_aborted += other.uploads_aborted;
        self.objects_failed += other.objects_failed;
        self.conflicts += other.conflicts;
    }

    /// Whether anything was deleted.
    pub fn is_empty(&self) -> bool {
        self.tags_deleted
            + self.manifests_deleted
            + self.uploaded_blobs_deleted
            + self.blobs_deleted
            + self.uploads_aborted
            == 0
    }
}

/// Where the scans for leftovers stand: the last blob and manifest id looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcCursor {
    blobs_after: i64,
    manifests_after: i64,
}

/// Where a purge stands after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurgeProgress {
    /// Some of it was removed; call again.
    More,
    /// Nothing of it is left (this call removed the last of it, or it was gone already).
    Purged,
    /// It exists but is not marked for deletion: nothing was touched.
    NotMarked,
    /// A concurrent writer won a race; nothing of this step changed. Try again later.
    Conflict(String),
}

/// Repositories a candidate query returns at most (Quay's 500).
const CANDIDATES: u64 = 500;

impl Registry {
    /// The collector's counters so far.
    pub fn gc_stats(&self) -> GcStats {
        let c = &self.inner.gc;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        GcStats {
            iterations: get(&c.iterations),
            repositories_purged: get(&c.repositories_purged),
            namespaces_purged: get(&c.namespaces_purged),
            blobs_deleted: get(&c.blobs_deleted),
            tags_deleted: get(&c.tags_deleted),
            manifests_deleted: get(&c.manifests_deleted),
            conflicts: get(&c.conflicts),
        }
    }

    /// Repositories that hold garbage now, in random order: those (of up to 500) with a tag
    /// that left the time machine, for a namespace window chosen at random as Quay does (the
    /// next window when one has none), plus those (of up to 500) with an expired push
    /// protection. Several collectors picking at random rarely work on the same repository.
    pub async fn gc_candidates(&self) -> Result<Vec<i64>, RegistryError> {
        let db = &self.inner.db;
        let now = now_ms();
        let mut windows = db.gc_tag_windows().await?;
        shuffle(&mut windows);
        let mut found = Vec::new();
        for window in windows {
            found = db
                .gc_repositories_with_expired_tags(window, now, CANDIDATES)
                .await?;
            if !found.is_empty() {
                break;
            }
        }
        for id in db
            .gc_repositories_with_expired_uploads(now, CANDIDATES)
            .await?
        {
            if !found.contains(&id) {
                found.push(id);
            }
        }
        shuffle(&mut found);
        Ok(found)
    }

    /// Collects a repository's garbage: tags that left the time machine, expired push
    /// protections, the manifests nothing references any more and the blobs that thereby lost
    /// their last reference anywhere, one short transaction after another until none is left.
    pub async fn collect_repository(&self, repository_id: i64) -> Result<GcReport, RegistryError> {
        let report = self.collect(repository_id, Vec::new()).await?;
        self.inner.gc.iterations.fetch_add(1, Ordering::Relaxed);
        if !report.is_empty() {
            tracing::info!(
                repository_id,
                tags_deleted = report.tags_deleted,
                manifests_deleted = report.manifests_deleted,
                uploaded_blobs_deleted = report.uploaded_blobs_deleted,
                blobs_deleted = report.blobs_deleted,
                conflicts = report.conflicts,
                "collected a repository's garbage"
            );
        }
        Ok(report)
    }

    async fn collect(
        &self,
        repository_id: i64,
        mut pending: Vec<i64>,
    ) -> Result<GcReport, RegistryError> {
        let mut report = GcReport::default();
        loop {
            let attempt = self
                .inner
                .db
                .gc_repository_step(repository_id, now_ms(), &pending)
                .await?;
            let step = match attempt {
                GcAttempt::Committed(step) => step,
                GcAttempt::Conflicted(reason) => {
                    self.conflict(&mut report, "repository", repository_id, &reason);
                    return Ok(report);
                }
            };
            self.count_step(&mut report, &step);
            self.free_blobs(step.blob_candidates, &mut report).await?;
            if !step.more {
                return Ok(report);
            }
            pending = step.pending_manifests;
        }
    }

    /// One batch of the scans for leftovers: up to `batch` blobs and `batch` manifests after
    /// the cursor are checked, and the unreferenced ones collected. The cursor wraps around at
    /// the end of each table; returns whether both scans are at their end (a full round done).
    pub async fn collect_leftovers(
        &self,
        cursor: &mut GcCursor,
        batch: u64,
    ) -> Result<(GcReport, bool), RegistryError> {
        let db = &self.inner.db;
        let mut report = GcReport::default();
        let (manifests, next_manifest) = db
            .gc_scan_unreferenced_manifests(cursor.manifests_after, batch)
            .await?;
        cursor.manifests_after = next_manifest.unwrap_or(0);
        let mut by_repository: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (repository_id, manifest_id) in manifests {
            by_repository
                .entry(repository_id)
                .or_default()
                .push(manifest_id);
        }
        for (repository_id, manifests) in by_repository {
            let collected = self.collect(repository_id, manifests).await?;
            report.merge(&collected);
        }
        let (blobs, next_blob) = db
            .gc_scan_unreferenced_blobs(cursor.blobs_after, batch)
            .await?;
        cursor.blobs_after = next_blob.unwrap_or(0);
        self.free_blobs(blobs, &mut report).await?;
        if !report.is_empty() {
            tracing::info!(
                manifests_deleted = report.manifests_deleted,
                blobs_deleted = report.blobs_deleted,
                "collected leftovers of an earlier pass"
            );
        }
        Ok((report, next_manifest.is_none() && next_blob.is_none()))
    }

    /// One step of the purge of a repository marked for deletion (see
    /// [`db::Db::purge_repository_step`]): a chunk of its content, then its row. `pending`
    /// carries manifests from step to step (start empty); `except_queue_item` is the caller's
    /// own queue item, which the purge leaves for the caller to complete.
    pub async fn purge_repository_step(
        &self,
        repository_id: i64,
        except_queue_item: Option<i64>,
        pending: &mut Vec<i64>,
        report: &mut GcReport,
    ) -> Result<PurgeProgress, RegistryError> {
        let attempt = self
            .inner
            .db
            .purge_repository_step(repository_id, pending, except_queue_item)
            .await?;
        match attempt {
            GcAttempt::Conflicted(reason) => {
                self.conflict(report, "repository purge", repository_id, &reason);
                Ok(PurgeProgress::Conflict(reason))
            }
            GcAttempt::Committed(PurgeStep::NotMarked) => Ok(PurgeProgress::NotMarked),
            GcAttempt::Committed(PurgeStep::Finished { removed }) => {
                if removed {
                    self.inner
                        .gc
                        .repositories_purged
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(repository_id, "purged a deleted repository");
                }
                Ok(PurgeProgress::Purged)
            }
            GcAttempt::Committed(PurgeStep::Removed { gc, uploads }) => {
                self.count_step(report, &gc);
                self.abort_uploads(uploads, report).await;
                self.free_blobs(gc.blob_candidates, report).await?;
                *pending = gc.pending_manifests;
                Ok(PurgeProgress::More)
            }
        }
    }

    /// Purges a repository marked for deletion to the end (or to the first conflict).
    pub async fn purge_repository(
        &self,
        repository_id: i64,
        except_queue_item: Option<i64>,
    ) -> Result<(PurgeProgress, GcReport), RegistryError> {
        let mut report = GcReport::default();
        let mut pending = Vec::new();
        loop {
            let progress = self
                .purge_repository_step(repository_id, except_queue_item, &mut pending, &mut report)
                .await?;
            if progress != PurgeProgress::More {
                return Ok((progress, report));
            }
        }
    }

    /// Starts or resumes the purge of a namespace marked for deletion: marks its repositories
    /// for deletion and returns them (purge each, then [`Registry::purge_namespace_account`]).
    pub async fn namespace_to_purge(
        &self,
        account_id: i64,
    ) -> Result<NamespacePurge, RegistryError> {
        Ok(self
            .inner
            .db
            .mark_namespace_repositories(account_id)
            .await?)
    }

    /// Removes a namespace whose repositories are purged: its robots, teams, memberships,
    /// permissions, prototypes, applications, tokens, prompts and account row. `More` when it
    /// still holds a repository.
    pub async fn purge_namespace_account(
        &self,
        account_id: i64,
        except_queue_item: Option<i64>,
    ) -> Result<PurgeProgress, RegistryError> {
        let mut report = GcReport::default();
        match self
            .inner
            .db
            .purge_namespace_account(account_id, except_queue_item)
            .await?
        {
            GcAttempt::Committed(true) => {
                self.inner
                    .gc
                    .namespaces_purged
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(account_id, "purged a deleted namespace");
                Ok(PurgeProgress::Purged)
            }
            GcAttempt::Committed(false) => match self.namespace_to_purge(account_id).await? {
                NamespacePurge::Absent => Ok(PurgeProgress::Purged),
                NamespacePurge::NotMarked => Ok(PurgeProgress::NotMarked),
                NamespacePurge::Repositories(_) => Ok(PurgeProgress::More),
            },
            GcAttempt::Conflicted(reason) => {
                self.conflict(&mut report, "namespace purge", account_id, &reason);
                Ok(PurgeProgress::Conflict(reason))
            }
        }
    }

    /// Purges a namespace marked for deletion to the end (or to the first conflict): every
    /// repository, then the account.
    pub async fn purge_namespace(
        &self,
        account_id: i64,
        except_queue_item: Option<i64>,
    ) -> Result<(PurgeProgress, GcReport), RegistryError> {
        let mut report = GcReport::default();
        let repositories = match self.namespace_to_purge(account_id).await? {
            NamespacePurge::Absent => return Ok((PurgeProgress::Purged, report)),
            NamespacePurge::NotMarked => return Ok((PurgeProgress::NotMarked, report)),
            NamespacePurge::Repositories(ids) => ids,
        };
        for repository_id in repositories {
            let (progress, purged) = self.purge_repository(repository_id, None).await?;
            report.merge(&purged);
            if progress != PurgeProgress::Purged {
                return Ok((progress, report));
            }
        }
        let progress = self
            .purge_namespace_account(account_id, except_queue_item)
            .await?;
        Ok((progress, report))
    }

    fn count_step(&self, report: &mut GcReport, step: &GcStep) {
        report.add_step(step);
        let c = &self.inner.gc;
        c.tags_deleted
            .fetch_add(step.tags_deleted, Ordering::Relaxed);
        c.manifests_deleted
            .fetch_add(step.manifests_deleted, Ordering::Relaxed);
    }

    fn conflict(&self, report: &mut GcReport, what: &str, id: i64, reason: &str) {
        report.conflicts += 1;
        self.inner.gc.conflicts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            what,
            id,
            reason,
            "a concurrent write won a race with the collector; skipped until the next pass"
        );
    }

    /// Deletes the candidates that nothing references any more, chunk by chunk, and after each
    /// commit their objects from every location that held them.
    async fn free_blobs(
        &self,
        candidates: Vec<i64>,
        report: &mut GcReport,
    ) -> Result<(), RegistryError> {
        let mut candidates = candidates;
        candidates.sort_unstable();
        candidates.dedup();
        for chunk in candidates.chunks(GC_CHUNK) {
            let freed: Vec<FreedBlob> = match self.inner.db.gc_blobs(chunk).await? {
                GcAttempt::Committed(freed) => freed,
                GcAttempt::Conflicted(reason) => {
                    self.conflict(report, "blobs", chunk[0], &reason);
                    continue;
                }
            };
            for blob in freed {
                let failed = self
                    .delete_blob_objects(&blob.storage_key, &blob.location_ids)
                    .await;
                report.blobs_deleted += 1;
                report.objects_failed += failed as u64;
                self.inner.gc.blobs_deleted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(digest = %blob.digest, key = %blob.storage_key, "deleted a blob");
            }
        }
        Ok(())
    }

    /// Aborts the storage of upload sessions whose rows a purge deleted.
    async fn abort_uploads(&self, uploads: Vec<UploadRow>, report: &mut GcReport) {
        for row in uploads {
            let state = serde_json::from_str(&row.storage_state).unwrap_or(serde_json::Value::Null);
            let aborted = match self.inner.locations.by_id(row.location_id) {
                Ok(location) => location
                    .store
                    .abort_upload(&row.uuid, &state)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match aborted {
                Ok(()) => report.uploads_aborted += 1,
                Err(error) => {
                    report.objects_failed += 1;
                    tracing::warn!(upload = %row.uuid, %error, "could not delete a purged upload's bytes");
                }
            }
        }
    }
}

/// Shuffles in place (Fisher–Yates over UUIDv4 randomness, which this crate already uses).
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (uuid::Uuid::new_v4().as_u128() % (i as u128 + 1)) as usize;
        items.swap(i, j);
    }
}
