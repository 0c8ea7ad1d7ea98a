//! What Quay's repository API reads and changes beyond the registry's own needs: tag history
//! (moved, deleted and expired tags included), pointing a tag at a manifest the repository
//! already holds, restoring a tag from the time machine, and repository listings by viewer.
//!
//! Hidden tags (`$temp-…`, `$referrer-…`) keep manifests alive for the registry and never
//! appear here.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, ExprTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationDef,
};

use crate::entity::{manifest, repository, tag};
use crate::manifests::{alive, alive_manifest, end_tag};
use crate::repos::readable_by;
use crate::{Db, DbError, RepositoryListing, now_ms};

/// One lifetime of a visible tag, with what the API shows of its manifest.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct TagHistoryRow {
    pub name: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// Sum of the manifest's layer sizes (0 for indexes).
    pub layers_size: i64,
    pub lifetime_start_ms: i64,
    /// None while the tag lives without an expiry.
    pub lifetime_end_ms: Option<i64>,
    /// The lifetime was started by restoring the tag.
    pub reversion: bool,
}

/// Which rows [`Db::tag_history`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagHistoryQuery<'a> {
    /// Only lifetimes of this tag name.
    pub specific_tag: Option<&'a str>,
    /// Only lifetimes that have not ended.
    pub only_active: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// A page of tag history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagHistoryPage {
    pub rows: Vec<TagHistoryRow>,
    /// More rows follow this page.
    pub has_more: bool,
}

/// The result of pointing a tag at a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetargetOutcome {
    /// The tag points at the manifest; `existed` says whether an alive tag of that name was
    /// there before (Quay's `move_tag` rather than `create_tag`).
    Retargeted { existed: bool },
    /// The repository holds no usable manifest with that digest.
    ManifestUnknown,
}

/// Which repositories [`Db::list_repositories_for`] returns: those of a namespace or of all
/// namespaces, that `viewer` may read, plus public ones when `include_public`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepositoryFilter {
    pub namespace_id: Option<i64>,
    /// The signed-in account; None for anonymous callers, who see public repositories only.
    pub viewer: Option<i64>,
    pub include_public: bool,
    /// Only repositories with a larger id (keyset pagination by id).
    pub after_id: Option<i64>,
    /// At most this many; None for all.
    pub limit: Option<u64>,
}

fn tag_manifest() -> RelationDef {
    tag::Entity::belongs_to(manifest::Entity)
        .from(tag::Column::ManifestId)
        .to(manifest::Column::Id)
        .into()
}

impl Db {
    /// Lifetimes of the repository's visible tags, newest start first (then by name), as
    /// Quay's tag history pages them: `limit + 1` rows are read to tell whether more follow.
    pub async fn tag_history(
        &self,
        repository_id: i64,
        q: TagHistoryQuery<'_>,
    ) -> Result<TagHistoryPage, DbError> {
        if q.limit == 0 {
            return Ok(TagHistoryPage {
                rows: Vec::new(),
                has_more: false,
            });
        }
        let mut query = tag::Entity::find()
            .select_only()
            .column(tag::Column::Name)
            .column_as(manifest::Column::Digest, "manifest_digest")
            .column_as(manifest::Column::MediaType, "manifest_media_type")
            .column(manifest::Column::LayersSize)
            .column(tag::Column::LifetimeStartMs)
            .column(tag::Column::LifetimeEndMs)
            .column(tag::Column::Reversion)
            .join(JoinType::InnerJoin, tag_manifest())
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Hidden.eq(false))
            .order_by_desc(tag::Column::LifetimeStartMs)
            .order_by_asc(tag::Column::Name)
            .order_by_desc(tag::Column::Id)
            .offset(q.offset)
            .limit(q.limit.saturating_add(1));
        if let Some(name) = q.specific_tag {
            query = query.filter(tag::Column::Name.eq(name));
        }
        if q.only_active {
            query = query.filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now_ms()));
        }
        let mut rows = query.into_model::<TagHistoryRow>().all(&self.read).await?;
        let has_more = rows.len() as u64 > q.limit;
        rows.truncate(q.limit as usize);
        Ok(TagHistoryPage { rows, has_more })
    }

    /// Points the visible tag `name` at the manifest `digest` of the repository, in one
    /// transaction: its alive lifetime (if any) ends and a new one starts.
    ///
    /// Without `restore_since_ms` the manifest must be alive, and a tag that already points at
    /// it is left alone. With it, this is a restore from the time machine: the manifest may be
    /// dead as long as some tag of the repository pointed at it after `restore_since_ms`, and
    /// the new lifetime is marked as a reversion.
    pub async fn retarget_tag(
        &self,
        repository_id: i64,
        name: &str,
        digest: &str,
        restore_since_ms: Option<i64>,
    ) -> Result<RetargetOutcome, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        // Serializes tag changes per repository on PostgreSQL, as pushes do.
        repository::Entity::find_by_id(repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;
        let usable = match restore_since_ms {
            None => alive_manifest(now),
            Some(since) => {
                let recently_tagged = Query::select()
                    .expr(Expr::val(1))
                    .from(tag::Entity)
                    .and_where(
                        Expr::col((tag::Entity, tag::Column::ManifestId))
                            .equals((manifest::Entity, manifest::Column::Id)),
                    )
                    .and_where(Expr::col((tag::Entity, tag::Column::LifetimeEndMs)).gt(since))
                    .to_owned();
                Condition::any()
                    .add(alive_manifest(now))
                    .add(Expr::exists(recently_tagged))
            }
        };
        let found: Option<i64> = manifest::Entity::find()
            .select_only()
            .column(manifest::Column::Id)
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest::Column::Digest.eq(digest))
            .filter(usable)
            .into_tuple()
            .one(&tx)
            .await?;
        let Some(manifest_id) = found else {
            tx.rollback().await?;
            return Ok(RetargetOutcome::ManifestUnknown);
        };
        let current = tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
            .all(&tx)
            .await?;
        let existed = current.iter().any(|t| !t.hidden);
        let unchanged = restore_since_ms.is_none()
            && current.len() == 1
            && current[0].manifest_id == manifest_id
            && current[0].lifetime_end_ms.is_none()
            && !current[0].hidden;
        if !unchanged {
            for t in &current {
                end_tag(&tx, t, now).await?;
            }
            tag::Entity::insert(tag::ActiveModel {
                repository_id: Set(repository_id),
                name: Set(name.to_string()),
                manifest_id: Set(manifest_id),
                lifetime_start_ms: Set(now),
                lifetime_end_ms: Set(None),
                hidden: Set(false),
                reversion: Set(restore_since_ms.is_some()),
                immutable: Set(false),
                ..Default::default()
            })
            .exec(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(RetargetOutcome::Retargeted { existed })
    }

    /// Sets when the visible tag `name` ends (`None`: never), Quay's tag expiration. The tag
    /// stays alive until then and enters the time machine afterwards. False when no visible
    /// tag of that name is alive.
    pub async fn set_tag_expiration(
        &self,
        repository_id: i64,
        name: &str,
        end_ms: Option<i64>,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let tx = self.begin_write().await?;
        repository::Entity::find_by_id(repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;
        let current = tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(tag::Column::Hidden.eq(false))
            .filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
            .one(&tx)
            .await?;
        let Some(current) = current else {
            tx.rollback().await?;
            return Ok(false);
        };
        // (repository, name, end) is unique: move past an end another lifetime already has.
        let mut end = end_ms;
        while let Some(candidate) = end {
            let taken = tag::Entity::find()
                .filter(tag::Column::RepositoryId.eq(repository_id))
                .filter(tag::Column::Name.eq(name))
                .filter(tag::Column::LifetimeEndMs.eq(candidate))
                .filter(tag::Column::Id.ne(current.id))
                .one(&tx)
                .await?
                .is_some();
            if !taken {
                break;
            }
            end = Some(candidate + 1);
        }
        tag::Entity::update_many()
            .col_expr(tag::Column::LifetimeEndMs, Expr::value(end))
            .filter(tag::Column::Id.eq(current.id))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves the end of a lifetime of tag `name` that pointed at manifest `digest` to before
    /// the time machine's reach (`now - window_ms - 1`, earlier if that end is taken), so it
    /// can no longer be restored and the collector takes it: the alive, visible lifetime when
    /// `alive`, else the most recent one that ended within the window. False when there is
    /// none.
    pub async fn expire_tag_lifetime(
        &self,
        repository_id: i64,
        name: &str,
        digest: &str,
        alive_now: bool,
        window_ms: i64,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let gone = now - Ord::max(window_ms, 0) - 1;
        let tx = self.begin_write().await?;
        repository::Entity::find_by_id(repository_id)
            .lock_exclusive()
            .one(&tx)
            .await?;
        let manifest_ids = Query::select()
            .column(manifest::Column::Id)
            .from(manifest::Entity)
            .and_where(manifest::Column::RepositoryId.eq(repository_id))
            .and_where(manifest::Column::Digest.eq(digest))
            .to_owned();
        let mut rows = tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(tag::Column::Hidden.eq(false))
            .filter(tag::Column::ManifestId.in_subquery(manifest_ids));
        rows = if alive_now {
            rows.filter(alive((tag::Entity, tag::Column::LifetimeEndMs), now))
        } else {
            rows.filter(tag::Column::LifetimeEndMs.lte(now))
                .filter(tag::Column::LifetimeEndMs.gt(gone))
                .order_by_desc(tag::Column::LifetimeEndMs)
        };
        let Some(row) = rows.one(&tx).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // (repository, name, end) is unique: step back past ends other lifetimes have.
        let mut end = gone;
        while tag::Entity::find()
            .filter(tag::Column::RepositoryId.eq(repository_id))
            .filter(tag::Column::Name.eq(name))
            .filter(tag::Column::LifetimeEndMs.eq(end))
            .one(&tx)
            .await?
            .is_some()
        {
            end -= 1;
        }
        tag::Entity::update_many()
            .col_expr(tag::Column::LifetimeEndMs, Expr::value(end))
            .filter(tag::Column::Id.eq(row.id))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The repository as the API lists it; None when it does not exist or is being deleted.
    pub async fn repository_listing(
        &self,
        repository_id: i64,
    ) -> Result<Option<RepositoryListing>, DbError> {
        let filter = Condition::all().add(repository::Column::Id.eq(repository_id));
        Ok(self.listings(filter, false, Some(1)).await?.pop())
    }

    /// Repositories for Quay's `GET /api/v1/repository` (never those being deleted): by name
    /// within a namespace, else by id.
    pub async fn list_repositories_for(
        &self,
        f: RepositoryFilter,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        let mut readable = Condition::any();
        if f.include_public {
            readable = readable.add(repository::Column::Visibility.eq("public"));
        }
        match f.viewer {
            Some(viewer) => readable = readable.add(readable_by(viewer)),
            None if !f.include_public => return Ok(Vec::new()),
            None => {}
        }
        let mut filter = Condition::all().add(readable);
        if let Some(namespace_id) = f.namespace_id {
            filter = filter.add(repository::Column::NamespaceId.eq(namespace_id));
        }
        if let Some(after) = f.after_id {
            filter = filter.add(repository::Column::Id.gt(after));
        }
        self.listings(filter, f.namespace_id.is_some(), f.limit)
            .await
    }
}
