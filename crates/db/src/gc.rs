//! Garbage collection (Quay's `data/model/gc.py`): removing tags that left the time machine,
//! the manifests nothing references any more, and then the blobs nothing references; and the
//! purges of deleted repositories and namespaces (`purge`).
//!
//! The collector runs while clients push, so every delete is *conditional*: it names the rows
//! it means and repeats, in the same statement, the condition that made them garbage
//! (`DELETE … WHERE id IN (…) AND NOT EXISTS (…references…)`), inside a short write
//! transaction. What stops a concurrent push from slipping a reference in between:
//!
//! - tags and manifests belong to one repository, and every writer of them (pushes, tag moves,
//!   restores, deletes) locks the repository row first. The collector takes the same lock, so
//!   a push into the repository waits for the collector's chunk or the collector for the push.
//!   Expired `uploaded_blob` rows are deleted under that lock too, so a manifest push either
//!   sees the protection row it relies on, or sees the blob gone and answers `BLOB_UNKNOWN`.
//! - blobs are shared by all repositories. On PostgreSQL the blob transaction takes
//!   `LOCK TABLE blob IN SHARE ROW EXCLUSIVE MODE` (which waits for every upload commit in
//!   flight, since `commit_blob` inserts into `blob`, and holds new ones back until the
//!   collector commits, when they create the row afresh), then locks the candidate rows
//!   `FOR UPDATE` (a mount or manifest that references one of them waits for the collector
//!   or the collector for it), and only then checks which are unreferenced. On SQLite every
//!   write transaction is `IMMEDIATE` on a one-connection pool: nothing runs in between.
//! - the schema's foreign keys are the backstop on both engines: if anything referenced a row
//!   the collector deletes, the delete fails with a foreign-key violation and the transaction
//!   rolls back. Such a conflict is a value, [`GcAttempt::Conflicted`]: the caller skips the
//!   item and finds it again on a later pass.
//!
//! The storage objects of deleted blobs are deleted by the caller *after* the commit, from the
//! locations [`FreedBlob::location_ids`] names: a crash in between leaks an object, never leaves
//! a row pointing at missing bytes. No lock is needed around that delete: an object key is chosen
//! when its upload starts (`blobs/<xx>/<upload id>`), never derived from the content, so a new
//! upload of the same digest writes a new object and commits a new row; once a blob row is gone
//! its object belongs to nobody (Quay re-checks the content checksum under a Redis lock because
//! its content-addressed paths can be shared by a new row).

mod purge;

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::sea_query::{Alias, Expr, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    ExprTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, RelationDef, RuntimeErr, SqlErr,
};

use crate::entity::{
    account, blob, blob_placement, manifest, manifest_blob, manifest_child, repository, tag,
    uploaded_blob,
};
use crate::{Db, DbError};

pub use purge::{NamespacePurge, PurgeStep, RepositoryCounts};

/// Rows per collector transaction (tags, manifests, protections, blobs), so that no
/// transaction holds a repository or the blob table for long.
pub const GC_CHUNK: usize = 100;

/// Quay's `RepositoryState.MARKED_FOR_DELETION`.
const MARKED_FOR_DELETION: i32 = 3;

/// The result of a collector transaction, which may lose a race with a concurrent writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcAttempt<T> {
    Committed(T),
    /// A concurrent writer referenced a row the transaction meant to delete (a foreign-key
    /// violation, a deadlock, or a row that stopped matching): the transaction was rolled back
    /// and nothing changed. The caller skips the item; a later pass finds it again.
    Conflicted(String),
}

/// What one collector transaction over a repository did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStep {
    pub tags_deleted: u64,
    pub manifests_deleted: u64,
    /// Expired (or, in a purge, all) `uploaded_blob` protections removed.
    pub uploaded_blobs_deleted: u64,
    /// Blobs that lost a reference in this transaction: candidates for [`Db::gc_blobs`],
    /// which decides after this commit whether anything else still references them.
    pub blob_candidates: Vec<i64>,
    /// Manifests that may have become unreferenced but did not fit in this transaction (the
    /// children and subjects of deleted manifests): pass them to the next step.
    pub pending_manifests: Vec<i64>,
    /// More garbage is waiting in the repository: call again.
    pub more: bool,
}

impl GcStep {
    fn did_something(&self) -> bool {
        self.tags_deleted + self.manifests_deleted + self.uploaded_blobs_deleted > 0
    }
}

/// A blob whose row (and placements) the collector deleted. Its object is nobody's now: the
/// caller deletes it from each location in `location_ids`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreedBlob {
    pub id: i64,
    pub digest: String,
    pub storage_key: String,
    pub location_ids: Vec<i64>,
}

/// Why a step gave up: a database failure, or a lost race that rolls back as a conflict.
enum StepError {
    Db(DbError),
    Conflict(String),
}

impl From<DbErr> for StepError {
    fn from(e: DbErr) -> Self {
        match conflict_reason(&e) {
            Some(reason) => StepError::Conflict(reason),
            None => StepError::Db(e.into()),
        }
    }
}

impl From<DbError> for StepError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Db(e) => e.into(),
            other => StepError::Db(other),
        }
    }
}

/// A foreign-key violation, or PostgreSQL's deadlock or serialization failure: the marks of a
/// concurrent writer, which a later pass gets past.
fn conflict_reason(e: &DbErr) -> Option<String> {
    if let Some(SqlErr::ForeignKeyConstraintViolation(message)) = e.sql_err() {
        return Some(message);
    }
    if let DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) =
        e
        && let sqlx::Error::Database(database) = &**inner
        && matches!(database.code().as_deref(), Some("40P01" | "40001"))
    {
        return Some(database.message().to_string());
    }
    None
}

/// Commits `tx` when the step succeeded, rolls it back otherwise; a conflict (in the step or in
/// the commit) becomes [`GcAttempt::Conflicted`].
async fn settle<T>(
    tx: DatabaseTransaction,
    result: Result<T, StepError>,
) -> Result<GcAttempt<T>, DbError> {
    match result {
        Ok(value) => match tx.commit().await {
            Ok(()) => Ok(GcAttempt::Committed(value)),
            Err(e) => match conflict_reason(&e) {
                Some(reason) => Ok(GcAttempt::Conflicted(reason)),
                None => Err(e.into()),
            },
        },
        Err(StepError::Conflict(reason)) => {
            // A failed statement already aborted the transaction on PostgreSQL; the rollback
            // only returns the connection.
            let _ = tx.rollback().await;
            Ok(GcAttempt::Conflicted(reason))
        }
        Err(StepError::Db(e)) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// `SELECT 1 FROM <table> WHERE <table>.<column> = <outer>.<outer_column>`.
fn referencing<E: EntityTrait, O: EntityTrait>(
    table: E,
    column: E::Column,
    outer: O,
    outer_column: O::Column,
) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(table)
        .and_where(Expr::col((table, column)).equals((outer, outer_column)))
        .to_owned()
}

/// `manifest` rows nothing keeps: no tag row (alive, or dead and still restorable: the tag rows
/// the collector has not deleted), no index listing it, and no manifest of the repository
/// naming it as `subject` (a referrer keeps its subject).
fn manifest_unreferenced() -> Condition {
    let referrer = Alias::new("referrer");
    let referred = Query::select()
        .expr(Expr::val(1))
        .from_as(manifest::Entity, referrer.clone())
        .and_where(
            Expr::col((referrer.clone(), manifest::Column::RepositoryId))
                .equals((manifest::Entity, manifest::Column::RepositoryId)),
        )
        .and_where(
            Expr::col((referrer, manifest::Column::Subject))
                .equals((manifest::Entity, manifest::Column::Digest)),
        )
        .to_owned();
    Condition::all()
        .add(Expr::not_exists(referencing(
            tag::Entity,
            tag::Column::ManifestId,
            manifest::Entity,
            manifest::Column::Id,
        )))
        .add(Expr::not_exists(referencing(
            manifest_child::Entity,
            manifest_child::Column::ChildManifestId,
            manifest::Entity,
            manifest::Column::Id,
        )))
        .add(Expr::not_exists(referred))
}

/// `blob` rows nothing references: no manifest of any repository, and no `uploaded_blob`
/// protection in any repository, expired or not (expired ones are deleted first, under their
/// repository's lock).
fn blob_unreferenced() -> Condition {
    Condition::all()
        .add(Expr::not_exists(referencing(
            manifest_blob::Entity,
            manifest_blob::Column::BlobId,
            blob::Entity,
            blob::Column::Id,
        )))
        .add(Expr::not_exists(referencing(
            uploaded_blob::Entity,
            uploaded_blob::Column::BlobId,
            blob::Entity,
            blob::Column::Id,
        )))
}

fn tag_repository() -> RelationDef {
    tag::Entity::belongs_to(repository::Entity)
        .from(tag::Column::RepositoryId)
        .to(repository::Column::Id)
        .into()
}

fn repository_namespace() -> RelationDef {
    repository::Entity::belongs_to(account::Entity)
        .from(repository::Column::NamespaceId)
        .to(account::Column::Id)
        .into()
}

/// The end of the time machine: tags that ended at or before it can no longer be restored.
fn cutoff(now_ms: i64, window_s: i64) -> i64 {
    now_ms.saturating_sub(Ord::max(window_s, 0).saturating_mul(1000))
}

impl Db {
    /// The distinct time-machine windows (`removed_tag_expiration_s`) namespaces use. The
    /// collector looks for garbage one window at a time, as Quay does, so that its query can
    /// use the index on tag end times.
    pub async fn gc_tag_windows(&self) -> Result<Vec<i64>, DbError> {
        Ok(account::Entity::find()
            .select_only()
            .column(account::Column::RemovedTagExpirationS)
            .distinct()
            .into_tuple()
            .all(&self.read)
            .await?)
    }

    /// Up to `limit` repositories (not being deleted) of namespaces with window `window_s`
    /// that hold a tag that left the time machine by `now_ms`. Immutable tags are never
    /// collected, so they do not count.
    pub async fn gc_repositories_with_expired_tags(
        &self,
        window_s: i64,
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<i64>, DbError> {
        Ok(tag::Entity::find()
            .select_only()
            .column(tag::Column::RepositoryId)
            .distinct()
            .join(JoinType::InnerJoin, tag_repository())
            .join(JoinType::InnerJoin, repository_namespace())
            .filter(tag::Column::LifetimeEndMs.lte(cutoff(now_ms, window_s)))
            .filter(tag::Column::Immutable.eq(false))
            .filter(account::Column::RemovedTagExpirationS.eq(window_s))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .limit(limit)
            .into_tuple()
            .all(&self.read)
            .await?)
    }

    /// Up to `limit` repositories (not being deleted) holding a push protection
    /// (`uploaded_blob`) that expired by `now_ms`.
    pub async fn gc_repositories_with_expired_uploads(
        &self,
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<i64>, DbError> {
        Ok(uploaded_blob::Entity::find()
            .select_only()
            .column(uploaded_blob::Column::RepositoryId)
            .distinct()
            .join(
                JoinType::InnerJoin,
                uploaded_blob::Entity::belongs_to(repository::Entity)
                    .from(uploaded_blob::Column::RepositoryId)
                    .to(repository::Column::Id)
                    .into(),
            )
            .filter(uploaded_blob::Column::ExpiresMs.lte(now_ms))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .limit(limit)
            .into_tuple()
            .all(&self.read)
            .await?)
    }

    /// One collector transaction over a repository, under its lock: deletes up to
    /// [`GC_CHUNK`] tags that left the time machine by `now_ms` and as many expired push
    /// protections, then the manifests that thereby (or among `pending`) lost their last
    /// reference, following index children and referrer subjects. A repository that is gone or
    /// marked for deletion is left alone (its purge removes everything).
    pub async fn gc_repository_step(
        &self,
        repository_id: i64,
        now_ms: i64,
        pending: &[i64],
    ) -> Result<GcAttempt<GcStep>, DbError> {
        let tx = self.begin_write().await?;
        let result = collect_step(&tx, repository_id, now_ms, pending).await;
        settle(tx, result).await
    }

    /// Deletes the blobs among `blob_ids` (at most [`GC_CHUNK`] at a time is sensible) that
    /// nothing references, with their placements, in one transaction; returns them so the
    /// caller can delete their objects after this commit. Blobs still referenced are skipped.
    pub async fn gc_blobs(&self, blob_ids: &[i64]) -> Result<GcAttempt<Vec<FreedBlob>>, DbError> {
        if blob_ids.is_empty() {
            return Ok(GcAttempt::Committed(Vec::new()));
        }
        let tx = self.begin_write().await?;
        let result = delete_blobs(&tx, self.backend, blob_ids).await;
        settle(tx, result).await
    }

    /// Blobs with ids after `after_id` (at most `limit` looked at, in id order) that nothing
    /// references: leftovers of a collector that crashed between deleting manifests and
    /// deleting their blobs. Returns them and where the next batch starts (None: the scan is
    /// over). A hint only: [`Db::gc_blobs`] checks again.
    pub async fn gc_scan_unreferenced_blobs(
        &self,
        after_id: i64,
        limit: u64,
    ) -> Result<(Vec<i64>, Option<i64>), DbError> {
        let batch = self
            .ids_after::<blob::Entity>(blob::Column::Id, after_id, limit)
            .await?;
        let Some(last) = batch.last().copied() else {
            return Ok((Vec::new(), None));
        };
        let unreferenced = blob::Entity::find()
            .select_only()
            .column(blob::Column::Id)
            .filter(blob::Column::Id.is_in(batch))
            .filter(blob_unreferenced())
            .order_by_asc(blob::Column::Id)
            .into_tuple()
            .all(&self.read)
            .await?;
        Ok((unreferenced, Some(last)))
    }

    /// The next `limit` ids of a table after `after_id`, in order: one batch of a scan.
    async fn ids_after<E: EntityTrait>(
        &self,
        id: E::Column,
        after_id: i64,
        limit: u64,
    ) -> Result<Vec<i64>, DbError> {
        Ok(E::find()
            .select_only()
            .column(id)
            .filter(id.gt(after_id))
            .order_by_asc(id)
            .limit(limit)
            .into_tuple()
            .all(&self.read)
            .await?)
    }

    /// Manifests with ids after `after_id` (at most `limit` looked at) that nothing references,
    /// as `(repository id, manifest id)`: leftovers a step could not finish. Returns them and
    /// where the next batch starts (None: the scan is over). A hint only:
    /// [`Db::gc_repository_step`] checks again under the repository's lock.
    pub async fn gc_scan_unreferenced_manifests(
        &self,
        after_id: i64,
        limit: u64,
    ) -> Result<(Vec<(i64, i64)>, Option<i64>), DbError> {
        let batch = self
            .ids_after::<manifest::Entity>(manifest::Column::Id, after_id, limit)
            .await?;
        let Some(last) = batch.last().copied() else {
            return Ok((Vec::new(), None));
        };
        let unreferenced = manifest::Entity::find()
            .select_only()
            .column(manifest::Column::RepositoryId)
            .column(manifest::Column::Id)
            .filter(manifest::Column::Id.is_in(batch))
            .filter(manifest_unreferenced())
            .order_by_asc(manifest::Column::Id)
            .into_tuple()
            .all(&self.read)
            .await?;
        Ok((unreferenced, Some(last)))
    }
}

/// Locks the repository row for tag and manifest changes (PostgreSQL; SQLite's IMMEDIATE
/// transaction already excludes every other writer) and returns its state and its namespace's
/// time-machine window. None when there is no such repository.
async fn lock_repository(
    tx: &DatabaseTransaction,
    repository_id: i64,
) -> Result<Option<(i32, i64)>, StepError> {
    let Some(repo) = repository::Entity::find_by_id(repository_id)
        .lock_exclusive()
        .one(tx)
        .await?
    else {
        return Ok(None);
    };
    let window: i64 = account::Entity::find_by_id(repo.namespace_id)
        .select_only()
        .column(account::Column::RemovedTagExpirationS)
        .into_tuple()
        .one(tx)
        .await?
        .unwrap_or(0);
    Ok(Some((repo.state, window)))
}

async fn collect_step(
    tx: &DatabaseTransaction,
    repository_id: i64,
    now_ms: i64,
    pending: &[i64],
) -> Result<GcStep, StepError> {
    let Some((state, window_s)) = lock_repository(tx, repository_id).await? else {
        return Ok(GcStep::default());
    };
    if state == MARKED_FOR_DELETION {
        return Ok(GcStep::default());
    }
    let unrecoverable = Condition::all()
        .add(tag::Column::LifetimeEndMs.lte(cutoff(now_ms, window_s)))
        .add(tag::Column::Immutable.eq(false));
    let expired = Condition::all().add(uploaded_blob::Column::ExpiresMs.lte(now_ms));
    let mut step = GcStep::default();
    let (manifests, tags_full) = delete_tags(tx, repository_id, unrecoverable, &mut step).await?;
    let uploads_full = delete_protections(tx, repository_id, expired, &mut step).await?;
    let candidates = manifests
        .into_iter()
        .chain(pending.iter().copied())
        .collect();
    delete_unreferenced_manifests(tx, repository_id, candidates, &mut step).await?;
    step.more = tags_full || uploads_full || !step.pending_manifests.is_empty();
    Ok(step)
}

/// Deletes up to [`GC_CHUNK`] tag rows of the repository matching `which` (repeated in the
/// DELETE, so a row that changed since it was read stays). Returns the manifests they pointed
/// at and whether the chunk was full.
async fn delete_tags(
    tx: &DatabaseTransaction,
    repository_id: i64,
    which: Condition,
    step: &mut GcStep,
) -> Result<(BTreeSet<i64>, bool), StepError> {
    let rows: Vec<(i64, i64)> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Id)
        .column(tag::Column::ManifestId)
        .filter(tag::Column::RepositoryId.eq(repository_id))
        .filter(which.clone())
        .order_by_asc(tag::Column::Id)
        .limit(GC_CHUNK as u64)
        .into_tuple()
        .all(tx)
        .await?;
    if rows.is_empty() {
        return Ok((BTreeSet::new(), false));
    }
    let deleted = tag::Entity::delete_many()
        .filter(tag::Column::Id.is_in(rows.iter().map(|(id, _)| *id)))
        .filter(which)
        .exec(tx)
        .await?;
    step.tags_deleted += deleted.rows_affected;
    Ok((
        rows.iter().map(|(_, m)| *m).collect(),
        rows.len() == GC_CHUNK,
    ))
}

/// Deletes up to [`GC_CHUNK`] push protections of the repository matching `which`; their blobs
/// become candidates. Returns whether the chunk was full.
async fn delete_protections(
    tx: &DatabaseTransaction,
    repository_id: i64,
    which: Condition,
    step: &mut GcStep,
) -> Result<bool, StepError> {
    let rows: Vec<(i64, i64)> = uploaded_blob::Entity::find()
        .select_only()
        .column(uploaded_blob::Column::Id)
        .column(uploaded_blob::Column::BlobId)
        .filter(uploaded_blob::Column::RepositoryId.eq(repository_id))
        .filter(which.clone())
        .order_by_asc(uploaded_blob::Column::Id)
        .limit(GC_CHUNK as u64)
        .into_tuple()
        .all(tx)
        .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let deleted = uploaded_blob::Entity::delete_many()
        .filter(uploaded_blob::Column::Id.is_in(rows.iter().map(|(id, _)| *id)))
        .filter(which)
        .exec(tx)
        .await?;
    step.uploaded_blobs_deleted += deleted.rows_affected;
    step.blob_candidates.extend(rows.iter().map(|(_, b)| *b));
    Ok(rows.len() == GC_CHUNK)
}

/// Deletes the manifests among `candidates` (of this repository) that nothing references, with
/// their child and blob links, then the children and subjects that this left unreferenced, and
/// so on, up to [`GC_CHUNK`] manifests. What did not fit goes to `step.pending_manifests`.
/// The caller holds the repository's lock.
async fn delete_unreferenced_manifests(
    tx: &DatabaseTransaction,
    repository_id: i64,
    candidates: BTreeSet<i64>,
    step: &mut GcStep,
) -> Result<(), StepError> {
    let mut queue = candidates;
    let mut budget = GC_CHUNK;
    let mut blobs = BTreeSet::new();
    while !queue.is_empty() && budget > 0 {
        let take: Vec<i64> = queue.iter().copied().take(budget).collect();
        for id in &take {
            queue.remove(id);
        }
        let orphans: Vec<(i64, Option<String>)> = manifest::Entity::find()
            .select_only()
            .column(manifest::Column::Id)
            .column(manifest::Column::Subject)
            .filter(manifest::Column::Id.is_in(take))
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest_unreferenced())
            .into_tuple()
            .all(tx)
            .await?;
        if orphans.is_empty() {
            continue;
        }
        let ids: Vec<i64> = orphans.iter().map(|(id, _)| *id).collect();
        let children: Vec<i64> = manifest_child::Entity::find()
            .select_only()
            .column(manifest_child::Column::ChildManifestId)
            .filter(manifest_child::Column::ManifestId.is_in(ids.clone()))
            .into_tuple()
            .all(tx)
            .await?;
        let subjects: BTreeSet<String> = orphans.into_iter().filter_map(|(_, s)| s).collect();
        let subject_ids: Vec<i64> = if subjects.is_empty() {
            Vec::new()
        } else {
            manifest::Entity::find()
                .select_only()
                .column(manifest::Column::Id)
                .filter(manifest::Column::RepositoryId.eq(repository_id))
                .filter(manifest::Column::Digest.is_in(subjects))
                .into_tuple()
                .all(tx)
                .await?
        };
        let linked: Vec<i64> = manifest_blob::Entity::find()
            .select_only()
            .column(manifest_blob::Column::BlobId)
            .filter(manifest_blob::Column::ManifestId.is_in(ids.clone()))
            .into_tuple()
            .all(tx)
            .await?;
        manifest_child::Entity::delete_many()
            .filter(manifest_child::Column::ManifestId.is_in(ids.clone()))
            .exec(tx)
            .await?;
        manifest_blob::Entity::delete_many()
            .filter(manifest_blob::Column::ManifestId.is_in(ids.clone()))
            .exec(tx)
            .await?;
        let deleted = manifest::Entity::delete_many()
            .filter(manifest::Column::Id.is_in(ids.clone()))
            .filter(manifest_unreferenced())
            .exec(tx)
            .await?
            .rows_affected;
        if deleted != ids.len() as u64 {
            // Only a writer that does not take the repository's lock could cause this.
            return Err(StepError::Conflict(format!(
                "{} of {} unreferenced manifests gained a reference",
                ids.len() as u64 - deleted,
                ids.len()
            )));
        }
        step.manifests_deleted += deleted;
        budget = budget.saturating_sub(ids.len());
        blobs.extend(linked);
        let deleted: BTreeSet<i64> = ids.into_iter().collect();
        queue.extend(
            children
                .into_iter()
                .chain(subject_ids)
                .filter(|id| !deleted.contains(id)),
        );
    }
    step.blob_candidates.extend(blobs);
    step.pending_manifests = queue.into_iter().collect();
    Ok(())
}

async fn delete_blobs(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    blob_ids: &[i64],
) -> Result<Vec<FreedBlob>, StepError> {
    let ids: BTreeSet<i64> = blob_ids.iter().copied().collect();
    if backend == DbBackend::Postgres {
        // Waits for upload commits in flight and holds new ones back until this commits (see
        // the module's documentation). Mounts and manifest pushes only read `blob` and are not
        // held back: the row locks below order them with this transaction.
        tx.execute_unprepared("LOCK TABLE blob IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let _locked: Vec<i64> = blob::Entity::find()
        .select_only()
        .column(blob::Column::Id)
        .filter(blob::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(blob::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(tx)
        .await?;
    let orphans = blob::Entity::find()
        .filter(blob::Column::Id.is_in(ids.iter().copied()))
        .filter(blob_unreferenced())
        .order_by_asc(blob::Column::Id)
        .all(tx)
        .await?;
    if orphans.is_empty() {
        return Ok(Vec::new());
    }
    let orphan_ids: Vec<i64> = orphans.iter().map(|b| b.id).collect();
    let placements: Vec<(i64, i64)> = blob_placement::Entity::find()
        .select_only()
        .column(blob_placement::Column::BlobId)
        .column(blob_placement::Column::LocationId)
        .filter(blob_placement::Column::BlobId.is_in(orphan_ids.clone()))
        .into_tuple()
        .all(tx)
        .await?;
    let mut locations: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (blob_id, location_id) in placements {
        locations.entry(blob_id).or_default().push(location_id);
    }
    blob_placement::Entity::delete_many()
        .filter(blob_placement::Column::BlobId.is_in(orphan_ids.clone()))
        .exec(tx)
        .await?;
    let deleted = blob::Entity::delete_many()
        .filter(blob::Column::Id.is_in(orphan_ids.clone()))
        .filter(blob_unreferenced())
        .exec(tx)
        .await?
        .rows_affected;
    if deleted != orphan_ids.len() as u64 {
        // The row locks make this impossible; roll back rather than keep a blob without its
        // placements.
        return Err(StepError::Conflict(format!(
            "{} of {} unreferenced blobs gained a reference",
            orphan_ids.len() as u64 - deleted,
            orphan_ids.len()
        )));
    }
    Ok(orphans
        .into_iter()
        .map(|b| FreedBlob {
            location_ids: locations.remove(&b.id).unwrap_or_default(),
            id: b.id,
            digest: b.digest,
            storage_key: b.storage_key,
        })
        .collect())
}
