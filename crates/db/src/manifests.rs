//! Manifests, their references, tags and referrers.
//!
//! A manifest is *alive* while a tag that has not ended points at it (hidden tags included) or an
//! alive index lists it. Dead manifests stay in the table until garbage collection removes them,
//! but the registry no longer serves them.

use std::collections::HashSet;

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, ExprTrait,
    JoinType, QueryFilter, QueryOrder, QuerySelect, RelationDef,
};

use crate::entity::{blob, manifest, manifest_blob, manifest_child, repository, tag};
use crate::uploads::repository_blob_condition;
use crate::{Db, DbError, now_ms};

/// A manifest to store, with the digests it references.
#[derive(Clone, Debug)]
pub struct NewManifest {
    pub repository_id: i64,
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub config_media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub layers_size: i64,
    /// Blobs (config and layers) that must be usable in the repository.
    pub blob_digests: Vec<String>,
    /// Manifests an index lists; they must already be in the repository.
    pub child_digests: Vec<String>,
}

/// A tag to point at the manifest being stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagTarget {
    /// A visible tag; its current target (if any) is ended and a new lifetime starts.
    Visible(String),
    /// A hidden tag that keeps a manifest pushed by digest alive, until `expires_ms` if given.
    /// Nothing happens when an alive tag of that name already exists.
    Hidden {
        name: String,
        expires_ms: Option<i64>,
    },
}

/// The result of storing a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutManifestOutcome {
    Stored {
        manifest_id: i64,
    },
    /// A referenced blob is not usable in the repository.
    BlobUnknown(String),
    /// A manifest listed by an index is not in the repository.
    ChildUnknown(String),
}

/// A stored manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRow {
    pub id: i64,
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
}

impl From<manifest::Model> for ManifestRow {
    fn from(m: manifest::Model) -> Self {
        ManifestRow {
            id: m.id,
            digest: m.digest,
            media_type: m.media_type,
            bytes: m.manifest_bytes,
            artifact_type: m.artifact_type,
            subject: m.subject,
        }
    }
}

pub(crate) fn alive(end: (tag::Entity, tag::Column), now: i64) -> Condition {
    Condition::any()
        .add(Expr::col(end).is_null())
        .add(Expr::col(end).gt(now))
}

/// `manifest` rows that are alive at `now`.
pub(crate) fn alive_manifest(now: i64) -> Condition {
    let tagged = Query::select()
        .expr(Expr::val(1))
        .from(tag::Entity)
        .and_where(
            Expr::col((tag::Entity, tag::Column::ManifestId))
                .equals((manifest::Entity, manifest::Column::Id)),
        )
        .cond_where(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
        .to_owned();
    let parent_tag = Alias::new("parent_tag");
    let listed = Query::select()
        .expr(Expr::val(1))
        .from(manifest_child::Entity)
        .join_as(
            JoinType::InnerJoin,
            tag::Entity,
            parent_tag.clone(),
            Expr::col((parent_tag.clone(), tag::Column::ManifestId))
                .equals((manifest_child::Entity, manifest_child::Column::ManifestId)),
        )
        .and_where(
            Expr::col((
                manifest_child::Entity,
                manifest_child::Column::ChildManifestId,
            ))
            .equals((manifest::Entity, manifest::Column::Id)),
        )
        .cond_where(
            Condition::any()
                .add(Expr::col((parent_tag.clone(), tag::Column::LifetimeEndMs)).is_null())
                .add(Expr::col((parent_tag, tag::Column::LifetimeEndMs)).gt(now)),
        )
        .to_owned();
    Condition::any()
        .add(Expr::exists(tagged))
        .add(Expr::exists(listed))
}

fn tag_manifest() -> RelationDef {
    let tag_to_manifest: RelationDef = tag::Entity::belongs_to(manifest::Entity)
        .from(tag::Column::ManifestId)
        .to(manifest::Column::Id)
        .into();
    tag_to_manifest.rev()
}

impl Db {
    /// Stores a manifest with its references and tags, in one transaction. Refuses (as a value)
    /// when a referenced blob or child manifest is not in the repository.
    pub async fn put_manifest(
        &self,
        new: NewManifest,
        tags: &[TagTarget],
    ) -> Result<PutManifestOutcome, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        // Serializes tag changes per repository on PostgreSQL (SQLite's IMMEDIATE transaction
        // already serializes every writer).
        repository::Entity::find_by_id(new.repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;

        let mut blob_ids = Vec::with_capacity(new.blob_digests.len());
        if !new.blob_digests.is_empty() {
            let found: Vec<(i64, String)> = blob::Entity::find()
                .select_only()
                .column(blob::Column::Id)
                .column(blob::Column::Digest)
                .filter(blob::Column::Digest.is_in(new.blob_digests.iter().cloned()))
                .filter(repository_blob_condition(new.repository_id))
                .into_tuple()
                .all(&tx)
                .await?;
            let known: HashSet<&str> = found.iter().map(|(_, d)| d.as_str()).collect();
            if let Some(missing) = new
                .blob_digests
                .iter()
                .find(|d| !known.contains(d.as_str()))
            {
                tx.rollback().await?;
                return Ok(PutManifestOutcome::BlobUnknown(missing.clone()));
            }
            blob_ids.extend(found.into_iter().map(|(id, _)| id));
        }

        let mut child_ids = Vec::with_capacity(new.child_digests.len());
        if !new.child_digests.is_empty() {
            let found: Vec<(i64, String)> = manifest::Entity::find()
                .select_only()
                .column(manifest::Column::Id)
                .column(manifest::Column::Digest)
                .filter(manifest::Column::RepositoryId.eq(new.repository_id))
                .filter(manifest::Column::Digest.is_in(new.child_digests.iter().cloned()))
                .into_tuple()
                .all(&tx)
                .await?;
            let known: HashSet<&str> = found.iter().map(|(_, d)| d.as_str()).collect();
            if let Some(missing) = new
                .child_digests
                .iter()
                .find(|d| !known.contains(d.as_str()))
            {
                tx.rollback().await?;
                return Ok(PutManifestOutcome::ChildUnknown(missing.clone()));
            }
            child_ids.extend(found.into_iter().map(|(id, _)| id));
        }

        manifest::Entity::insert(manifest::ActiveModel {
            repository_id: Set(new.repository_id),
            digest: Set(new.digest.clone()),
            media_type: Set(new.media_type),
            manifest_bytes: Set(new.bytes),
            config_media_type: Set(new.config_media_type),
            artifact_type: Set(new.artifact_type),
            subject: Set(new.subject),
            layers_size: Set(new.layers_size),
            creation_ms: Set(now),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([manifest::Column::RepositoryId, manifest::Column::Digest])
        .exec(&tx)
        .await?;
        let manifest_id: i64 = manifest::Entity::find()
            .select_only()
            .column(manifest::Column::Id)
            .filter(manifest::Column::RepositoryId.eq(new.repository_id))
            .filter(manifest::Column::Digest.eq(&new.digest))
            .into_tuple()
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("manifest {} vanished", new.digest)))?;

        manifest_blob::Entity::insert_many(blob_ids.into_iter().map(|blob_id| {
            manifest_blob::ActiveModel {
                repository_id: Set(new.repository_id),
                manifest_id: Set(manifest_id),
                blob_id: Set(blob_id),
                ..Default::default()
            }
        }))
        .on_conflict_do_nothing_on([
            manifest_blob::Column::ManifestId,
            manifest_blob::Column::BlobId,
        ])
        .exec(&tx)
        .await?;
        manifest_child::Entity::insert_many(child_ids.into_iter().map(|child| {
            manifest_child::ActiveModel {
                repository_id: Set(new.repository_id),
                manifest_id: Set(manifest_id),
                child_manifest_id: Set(child),
                ..Default::default()
            }
        }))
        .on_conflict_do_nothing_on([
            manifest_child::Column::ManifestId,
            manifest_child::Column::ChildManifestId,
        ])
        .exec(&tx)
        .await?;

        for target in tags {
            match target {
                TagTarget::Visible(name) => {
                    point_tag(&tx, new.repository_id, name, manifest_id, now).await?
                }
                TagTarget::Hidden { name, expires_ms } => {
                    let existing = tag::Entity::find()
                        .filter(tag::Column::RepositoryId.eq(new.repository_id))
                        .filter(tag::Column::Name.eq(name.as_str()))
                        .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
                        .one(&tx)
                        .await?;
                    if existing.is_none() {
                        insert_tag(
                            &tx,
                            new.repository_id,
                            name,
                            manifest_id,
                            now,
                            *expires_ms,
                            true,
                        )
                        .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(PutManifestOutcome::Stored { manifest_id })
    }

    /// The manifest a visible, alive tag points at.
    pub async fn manifest_by_tag(
        &self,
        repository_id: i64,
        name: &str,
    ) -> Result<Option<ManifestRow>, DbError> {
        let now = now_ms();
        Ok(manifest::Entity::find()
            .join(JoinType::InnerJoin, tag_manifest())
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(tag::Column::Hidden.eq(false))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// The alive manifest `digest` of the repository.
    pub async fn manifest_by_digest(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Option<ManifestRow>, DbError> {
        Ok(manifest::Entity::find()
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest::Column::Digest.eq(digest))
            .filter(alive_manifest(now_ms()))
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// Ends every alive tag (hidden ones included) pointing at the manifest `digest`. Returns
    /// false when the repository has no alive manifest with that digest.
    pub async fn delete_manifest(&self, repository_id: i64, digest: &str) -> Result<bool, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        repository::Entity::find_by_id(repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;
        let found = manifest::Entity::find()
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest::Column::Digest.eq(digest))
            .filter(alive_manifest(now))
            .one(&tx)
            .await?;
        let Some(found) = found else {
            tx.rollback().await?;
            return Ok(false);
        };
        let tags = tag::Entity::find()
            .filter(tag::Column::ManifestId.eq(found.id))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
            .all(&tx)
            .await?;
        for t in tags {
            end_tag(&tx, &t, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the visible tag `name`. Returns false if no such alive tag exists.
    pub async fn delete_tag(&self, repository_id: i64, name: &str) -> Result<bool, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        repository::Entity::find_by_id(repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;
        let tags = tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(tag::Column::Hidden.eq(false))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
            .all(&tx)
            .await?;
        let found = !tags.is_empty();
        for t in tags {
            end_tag(&tx, &t, now).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Names of visible, alive tags in lexical order after `last`, at most `limit`. A name has at
    /// most one alive row (pointing a tag ends its alive rows first), so no DISTINCT is needed.
    pub async fn list_tags(
        &self,
        repository_id: i64,
        last: Option<&str>,
        limit: u64,
    ) -> Result<Vec<String>, DbError> {
        let mut query = tag::Entity::find()
            .select_only()
            .column(tag::Column::Name)
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Hidden.eq(false))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now_ms()))
            .order_by_asc(tag::Column::Name)
            .limit(limit);
        if let Some(last) = last {
            query = query.filter(tag::Column::Name.gt(last));
        }
        Ok(query.into_tuple().all(&self.read).await?)
    }

    /// Alive manifests of the repository whose `subject` is `digest`, oldest first.
    pub async fn referrers(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Vec<ManifestRow>, DbError> {
        Ok(manifest::Entity::find()
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest::Column::Subject.eq(digest))
            .filter(alive_manifest(now_ms()))
            .order_by_asc(manifest::Column::Id)
            .all(&self.read)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Points the visible tag `name` at `manifest_id`: ends the current lifetime (unless it already
/// points there) and starts a new one.
async fn point_tag(
    tx: &DatabaseTransaction,
    repository_id: i64,
    name: &str,
    manifest_id: i64,
    now: i64,
) -> Result<(), DbError> {
    let current = tag::Entity::find()
        .filter(tag::Column::RepositoryId.eq(repository_id))
        .filter(tag::Column::Name.eq(name))
        .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
        .all(tx)
        .await?;
    if current.len() == 1
        && current[0].manifest_id == manifest_id
        && current[0].lifetime_end_ms.is_none()
        && !current[0].hidden
    {
        return Ok(());
    }
    for t in &current {
        end_tag(tx, t, now).await?;
    }
    insert_tag(tx, repository_id, name, manifest_id, now, None, false).await
}

async fn insert_tag(
    tx: &DatabaseTransaction,
    repository_id: i64,
    name: &str,
    manifest_id: i64,
    now: i64,
    end: Option<i64>,
    hidden: bool,
) -> Result<(), DbError> {
    tag::Entity::insert(tag::ActiveModel {
        repository_id: Set(repository_id),
        name: Set(name.to_string()),
        manifest_id: Set(manifest_id),
        lifetime_start_ms: Set(now),
        lifetime_end_ms: Set(end),
        hidden: Set(hidden),
        reversion: Set(false),
        immutable: Set(false),
        ..Default::default()
    })
    .exec(tx)
    .await?;
    Ok(())
}

/// Ends a tag's lifetime at `now`. History rows of one name must have distinct end times, so a
/// second change within the same millisecond ends one millisecond later.
pub(crate) async fn end_tag(
    tx: &DatabaseTransaction,
    t: &tag::Model,
    now: i64,
) -> Result<(), DbError> {
    let mut end = Ord::max(now, t.lifetime_start_ms);
    loop {
        let taken = tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(t.repository_id))
            .filter(tag::Column::Name.eq(t.name.as_str()))
            .filter(tag::Column::LifetimeEndMs.eq(end))
            .one(tx)
            .await?
            .is_some();
        if !taken {
            break;
        }
        end += 1;
    }
    tag::Entity::update_many()
        .col_expr(tag::Column::LifetimeEndMs, Expr::value(end))
        .filter(tag::Column::Id.eq(t.id))
        .exec(tx)
        .await?;
    Ok(())
}
