//! Upload sessions and blobs: creating and advancing sessions, turning a finished session into a
//! blob that the repository may use, and the blob lookups and mounts that follow.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, ExprTrait, QueryFilter, QuerySelect,
};

use crate::entity::{blob, blob_placement, blob_upload, manifest_blob, uploaded_blob};
use crate::{Db, DbError, now_ms};

/// A new upload session.
#[derive(Clone, Debug)]
pub struct NewUpload {
    pub uuid: String,
    pub repository_id: i64,
    pub location_id: i64,
    pub hash_state: Vec<u8>,
    pub storage_state: String,
}

/// An upload session as stored (the entity itself: every column is part of the session).
pub type UploadRow = blob_upload::Model;

/// A blob as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRow {
    pub id: i64,
    pub digest: String,
    pub size: i64,
    pub storage_key: String,
}

impl From<blob::Model> for BlobRow {
    fn from(m: blob::Model) -> Self {
        BlobRow {
            id: m.id,
            digest: m.digest,
            size: m.size,
            storage_key: m.storage_key,
        }
    }
}

/// One batch of a scan over all blobs.
#[derive(Clone, Debug)]
pub struct BlobScan {
    /// The blobs of the batch that matched.
    pub missing: Vec<BlobRow>,
    /// Where the next batch starts (None: the scan is over).
    pub next: Option<i64>,
    /// How many blobs the batch looked at.
    pub scanned: u64,
}

/// A verified upload, ready to become a blob of its repository.
#[derive(Clone, Debug)]
pub struct CommitBlob {
    pub upload_id: i64,
    pub repository_id: i64,
    pub location_id: i64,
    pub digest: String,
    pub size: i64,
    pub storage_key: String,
    /// Until when the blob is protected from GC while no manifest references it.
    pub protect_until_ms: i64,
    /// Queue the new blob for replication to the other locations (in the same transaction).
    pub replicate: bool,
}

/// The result of committing an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    pub blob: BlobRow,
    /// The blob already existed under another object, so the upload's object is redundant and
    /// the caller should delete it.
    pub redundant_object: Option<String>,
}

impl Db {
    pub async fn create_upload(&self, new: NewUpload) -> Result<UploadRow, DbError> {
        let now = now_ms();
        let model = blob_upload::Entity::insert(blob_upload::ActiveModel {
            uuid: Set(new.uuid),
            repository_id: Set(new.repository_id),
            location_id: Set(new.location_id),
            byte_count: Set(0),
            hash_state: Set(new.hash_state),
            storage_state: Set(new.storage_state),
            chunk_count: Set(0),
            creation_ms: Set(now),
            updated_ms: Set(now),
            ..Default::default()
        })
        .exec_with_returning(&self.write)
        .await?;
        Ok(model)
    }

    /// The upload session `uuid` of repository `repository_id`.
    pub async fn find_upload(
        &self,
        repository_id: i64,
        uuid: &str,
    ) -> Result<Option<UploadRow>, DbError> {
        Ok(blob_upload::Entity::find()
            .filter(blob_upload::Column::Uuid.eq(uuid))
            .filter(blob_upload::Column::RepositoryId.eq(repository_id))
            .one(&self.write)
            .await?)
    }

    /// Records that the session now holds `byte_count` bytes with this hash state, provided that
    /// nobody else advanced it since it held `expected_byte_count`. Returns false on a conflict.
    pub async fn advance_upload(
        &self,
        id: i64,
        expected_byte_count: i64,
        byte_count: i64,
        hash_state: Vec<u8>,
        storage_state: String,
    ) -> Result<bool, DbError> {
        let result = blob_upload::Entity::update_many()
            .col_expr(blob_upload::Column::ByteCount, Expr::value(byte_count))
            .col_expr(blob_upload::Column::HashState, Expr::value(hash_state))
            .col_expr(
                blob_upload::Column::StorageState,
                Expr::value(storage_state),
            )
            .col_expr(
                blob_upload::Column::ChunkCount,
                Expr::col(blob_upload::Column::ChunkCount).add(1),
            )
            .col_expr(blob_upload::Column::UpdatedMs, Expr::value(now_ms()))
            .filter(blob_upload::Column::Id.eq(id))
            .filter(blob_upload::Column::ByteCount.eq(expected_byte_count))
            .exec(&self.write)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Upload sessions nobody has written to since `updated_before_ms`, oldest first.
    pub async fn stale_uploads(
        &self,
        updated_before_ms: i64,
        limit: u64,
    ) -> Result<Vec<UploadRow>, DbError> {
        use sea_orm::{QueryOrder, QuerySelect};
        Ok(blob_upload::Entity::find()
            .filter(blob_upload::Column::UpdatedMs.lt(updated_before_ms))
            .order_by_asc(blob_upload::Column::UpdatedMs)
            .limit(limit)
            .all(&self.read)
            .await?)
    }

    /// Deletes an upload session row. Returns false if it was already gone.
    pub async fn delete_upload(&self, id: i64) -> Result<bool, DbError> {
        let result = blob_upload::Entity::delete_by_id(id)
            .exec(&self.write)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// In one transaction: finds or creates the blob row for the digest, records its placement,
    /// protects it in the repository, and ends the upload session.
    pub async fn commit_blob(&self, c: CommitBlob) -> Result<CommitOutcome, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        blob::Entity::insert(blob::ActiveModel {
            digest: Set(c.digest.clone()),
            size: Set(c.size),
            storage_key: Set(c.storage_key.clone()),
            creation_ms: Set(now),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([blob::Column::Digest])
        .exec(&tx)
        .await?;
        let stored: BlobRow = blob::Entity::find()
            .filter(blob::Column::Digest.eq(&c.digest))
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("blob {} vanished", c.digest)))?
            .into();
        let created = stored.storage_key == c.storage_key;
        // Only the upload's own object is known to be in this location: a blob that existed
        // before keeps its placements (replication copies it here if this location needs it).
        if created {
            blob_placement::Entity::insert(blob_placement::ActiveModel {
                blob_id: Set(stored.id),
                location_id: Set(c.location_id),
                ..Default::default()
            })
            .exec(&tx)
            .await?;
            if c.replicate {
                crate::queue::queue_put_in(
                    &tx,
                    &replication_item_name(&stored.digest),
                    &serde_json::json!({ "blob_id": stored.id, "storage_id": stored.digest })
                        .to_string(),
                    0,
                    crate::queue::DEFAULT_RETRIES,
                )
                .await?;
            }
        }
        protect(&tx, c.repository_id, stored.id, now, c.protect_until_ms).await?;
        blob_upload::Entity::delete_by_id(c.upload_id)
            .exec(&tx)
            .await?;
        tx.commit().await?;
        let redundant_object = (!created).then(|| c.storage_key.clone());
        Ok(CommitOutcome {
            blob: stored,
            redundant_object,
        })
    }

    /// The blob `digest` if the repository may use it: it was pushed or mounted there, or a
    /// manifest of the repository references it.
    pub async fn find_repository_blob(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Option<BlobRow>, DbError> {
        Ok(blob::Entity::find()
            .filter(blob::Column::Digest.eq(digest))
            .filter(repository_blob_condition(repository_id))
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// Blobs in id order after `after_id`, at most `limit` (for consistency checks and, later,
    /// garbage collection and replication backfills).
    pub async fn list_blobs(&self, after_id: i64, limit: u64) -> Result<Vec<BlobRow>, DbError> {
        use sea_orm::{QueryOrder, QuerySelect};
        Ok(blob::Entity::find()
            .filter(blob::Column::Id.gt(after_id))
            .order_by_asc(blob::Column::Id)
            .limit(limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// How many blobs exist.
    pub async fn count_blobs(&self) -> Result<u64, DbError> {
        use sea_orm::PaginatorTrait;
        Ok(blob::Entity::find().count(&self.read).await?)
    }

    /// The ids of the storage locations that hold the blob's bytes.
    pub async fn blob_placements(&self, blob_id: i64) -> Result<Vec<i64>, DbError> {
        use sea_orm::QuerySelect;
        Ok(blob_placement::Entity::find()
            .select_only()
            .column(blob_placement::Column::LocationId)
            .filter(blob_placement::Column::BlobId.eq(blob_id))
            .into_tuple::<i64>()
            .all(&self.read)
            .await?)
    }

    /// The blob with this id, if it still exists (read from the writer, so a worker sees what
    /// was just committed).
    pub async fn blob_by_id(&self, blob_id: i64) -> Result<Option<BlobRow>, DbError> {
        Ok(blob::Entity::find_by_id(blob_id)
            .one(&self.write)
            .await?
            .map(Into::into))
    }

    /// Records that `location_id` now holds the blob's bytes. False when the blob no longer
    /// exists (garbage collection removed it meanwhile): the caller then deletes its copy.
    pub async fn add_placement(&self, blob_id: i64, location_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        // FOR SHARE on PostgreSQL: a collector deleting the blob right now (it locks the row
        // for update) finishes first and the blob is then gone; one that comes later sees the
        // placement and deletes this copy too.
        let exists = blob::Entity::find_by_id(blob_id)
            .lock_shared()
            .one(&tx)
            .await?
            .is_some();
        if !exists {
            tx.rollback().await?;
            return Ok(false);
        }
        blob_placement::Entity::insert(blob_placement::ActiveModel {
            blob_id: Set(blob_id),
            location_id: Set(location_id),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([
            blob_placement::Column::BlobId,
            blob_placement::Column::LocationId,
        ])
        .exec_without_returning(&tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Blobs after `after_id` (in id order, at most `limit` scanned) that some of
    /// `location_ids` lacks, for the replication backfill.
    pub async fn blobs_missing_placements(
        &self,
        location_ids: &[i64],
        after_id: i64,
        limit: u64,
    ) -> Result<BlobScan, DbError> {
        let scanned = self.list_blobs(after_id, limit).await?;
        let next = scanned.last().map(|b| b.id);
        let count = scanned.len() as u64;
        if scanned.is_empty() {
            return Ok(BlobScan {
                missing: Vec::new(),
                next: None,
                scanned: 0,
            });
        }
        let ids: Vec<i64> = scanned.iter().map(|b| b.id).collect();
        let placements: Vec<(i64, i64)> = {
            use sea_orm::QuerySelect;
            blob_placement::Entity::find()
                .select_only()
                .column(blob_placement::Column::BlobId)
                .column(blob_placement::Column::LocationId)
                .filter(blob_placement::Column::BlobId.is_in(ids))
                .into_tuple()
                .all(&self.read)
                .await?
        };
        let missing = scanned
            .into_iter()
            .filter(|b| {
                location_ids
                    .iter()
                    .any(|l| !placements.contains(&(b.id, *l)))
            })
            .collect();
        Ok(BlobScan {
            missing,
            next,
            scanned: count,
        })
    }

    /// Queues the blob for replication unless an item for it is already waiting or running.
    /// Returns whether an item was added.
    pub async fn queue_replication(&self, blob: &BlobRow) -> Result<bool, DbError> {
        let name = replication_item_name(&blob.digest);
        if self.queue_alive(&name).await? {
            return Ok(false);
        }
        self.queue_put(
            &name,
            &serde_json::json!({ "blob_id": blob.id, "storage_id": blob.digest }).to_string(),
            0,
            crate::queue::DEFAULT_RETRIES,
        )
        .await?;
        Ok(true)
    }

    /// Makes the blob `digest` of repository `from` usable in repository `to`, protected until
    /// `protect_until_ms`. Returns None when `from` has no such blob.
    pub async fn mount_blob(
        &self,
        from_repository_id: i64,
        to_repository_id: i64,
        digest: &str,
        protect_until_ms: i64,
    ) -> Result<Option<BlobRow>, DbError> {
        let tx = self.begin_write().await?;
        // FOR SHARE on PostgreSQL: the collector locks a blob for update before deleting it,
        // so either it finishes first (and the mount finds nothing and falls back to an
        // upload) or it waits and then sees the mount's protection.
        let found = blob::Entity::find()
            .filter(blob::Column::Digest.eq(digest))
            .filter(repository_blob_condition(from_repository_id))
            .lock_shared()
            .one(&tx)
            .await?;
        let Some(found) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        protect(&tx, to_repository_id, found.id, now_ms(), protect_until_ms).await?;
        tx.commit().await?;
        Ok(Some(found.into()))
    }
}

/// Quay's replication queue (`REPLICATION_QUEUE_NAME`).
pub const REPLICATION_QUEUE: &str = "imagestoragereplication";

/// The queue item that replicates one blob: `imagestoragereplication/<digest>/`.
pub fn replication_item_name(digest: &str) -> String {
    crate::queue::item_name(REPLICATION_QUEUE, &[digest])
}

async fn protect(
    tx: &sea_orm::DatabaseTransaction,
    repository_id: i64,
    blob_id: i64,
    now: i64,
    until: i64,
) -> Result<(), DbError> {
    uploaded_blob::Entity::insert(uploaded_blob::ActiveModel {
        repository_id: Set(repository_id),
        blob_id: Set(blob_id),
        uploaded_ms: Set(now),
        expires_ms: Set(until),
        ..Default::default()
    })
    .exec(tx)
    .await?;
    Ok(())
}

/// `blob` rows usable in the repository: uploaded or mounted there, or referenced by one of its
/// manifests.
pub(crate) fn repository_blob_condition(repository_id: i64) -> Condition {
    Condition::any()
        .add(Expr::exists(links_blob(
            uploaded_blob::Entity,
            uploaded_blob::Column::BlobId,
            uploaded_blob::Column::RepositoryId,
            repository_id,
        )))
        .add(Expr::exists(links_blob(
            manifest_blob::Entity,
            manifest_blob::Column::BlobId,
            manifest_blob::Column::RepositoryId,
            repository_id,
        )))
}

/// `SELECT 1 FROM <link table> WHERE <blob column> = blob.id AND <repository column> = ?`.
fn links_blob<E: EntityTrait>(
    table: E,
    blob_column: E::Column,
    repository_column: E::Column,
    repository_id: i64,
) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(table)
        .and_where(Expr::col((table, blob_column)).equals((blob::Entity, blob::Column::Id)))
        .and_where(Expr::col((table, repository_column)).eq(repository_id))
        .to_owned()
}
