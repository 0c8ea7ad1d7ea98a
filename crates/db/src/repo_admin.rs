//! Repository administration behind Quay's `/api/v1/repository` endpoints: listings with what
//! the API shows (description, creation time, last tag change), who can see what, settings,
//! and asynchronous deletion.
//!
//! Deleting a repository is a mark, not a delete: the row is renamed to a fresh uuid (so the
//! name is free at once), put in state MARKED_FOR_DELETION and handed to the `repositorygc`
//! queue, whose worker removes its tags, manifests and blobs later.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef,
};

use crate::entity::{account, repository, repository_permission, tag};
use crate::queue::queue_put_in;
use crate::repos::readable_by;
use crate::{Db, DbError, RepositoryRow, item_name, now_ms};

/// Quay's `RepositoryState.MARKED_FOR_DELETION`.
const MARKED_FOR_DELETION: i32 = 3;

/// A repository as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryListing {
    pub repository: RepositoryRow,
    pub kind: String,
    pub description: Option<String>,
    pub creation_ms: i64,
    /// When the newest alive, visible tag started; None without tags.
    pub last_modified_ms: Option<i64>,
}

#[derive(Debug, FromQueryResult)]
struct Listed {
    id: i64,
    namespace_id: i64,
    namespace: String,
    name: String,
    visibility: String,
    state: i32,
    kind: String,
    description: Option<String>,
    creation_ms: i64,
}

fn repository_namespace() -> RelationDef {
    repository::Entity::belongs_to(account::Entity)
        .from(repository::Column::NamespaceId)
        .to(account::Column::Id)
        .into()
}

fn public() -> Condition {
    Condition::all().add(repository::Column::Visibility.eq("public"))
}

impl Db {
    /// Repositories matching `filter` (never those marked for deletion), by id or by name.
    pub(crate) async fn listings(
        &self,
        filter: Condition,
        by_name: bool,
        limit: Option<u64>,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        use repository::Column as R;
        let filter = Condition::all()
            .add(filter)
            .add(R::State.ne(MARKED_FOR_DELETION));
        let mut query = repository::Entity::find()
            .select_only()
            .columns([
                R::Id,
                R::NamespaceId,
                R::Name,
                R::Visibility,
                R::State,
                R::Kind,
                R::Description,
                R::CreationMs,
            ])
            .column_as(account::Column::Username, "namespace")
            .join(JoinType::InnerJoin, repository_namespace())
            .filter(filter.clone())
            .order_by_asc(if by_name { R::Name } else { R::Id });
        if let Some(limit) = limit {
            query = query.limit(limit);
        }
        let rows = query.into_model::<Listed>().all(&self.read).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Limited lists ask for their own ids; unlimited ones reuse the filter, which can be
        // cheaper than a long IN list.
        let tag_filter = if limit.is_some() {
            Condition::all().add(R::Id.is_in(rows.iter().map(|r| r.id)))
        } else {
            filter
        };
        let now = now_ms();
        let last_modified: HashMap<i64, i64> = tag::Entity::find()
            .select_only()
            .column(tag::Column::RepositoryId)
            .column_as(
                Expr::col((tag::Entity, tag::Column::LifetimeStartMs)).max(),
                "last",
            )
            .join(
                JoinType::InnerJoin,
                tag::Entity::belongs_to(repository::Entity)
                    .from(tag::Column::RepositoryId)
                    .to(repository::Column::Id)
                    .into(),
            )
            .filter(tag_filter)
            .filter(tag::Column::Hidden.eq(false))
            .filter(
                Condition::any()
                    .add(tag::Column::LifetimeEndMs.is_null())
                    .add(tag::Column::LifetimeEndMs.gt(now)),
            )
            .group_by(tag::Column::RepositoryId)
            .into_tuple::<(i64, i64)>()
            .all(&self.read)
            .await?
            .into_iter()
            .collect();
        Ok(rows
            .into_iter()
            .map(|r| RepositoryListing {
                last_modified_ms: last_modified.get(&r.id).copied(),
                kind: r.kind,
                description: r.description,
                creation_ms: r.creation_ms,
                repository: RepositoryRow {
                    id: r.id,
                    namespace_id: r.namespace_id,
                    namespace: r.namespace,
                    name: r.name,
                    visibility: r.visibility,
                    state: r.state,
                },
            })
            .collect())
    }

    /// Every repository of a namespace, by name, whoever may see it.
    pub async fn list_namespace_repositories(
        &self,
        namespace_id: i64,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        let filter = Condition::all().add(repository::Column::NamespaceId.eq(namespace_id));
        self.listings(filter, true, None).await
    }

    /// Public repositories with ids above `after_id`, by id, at most `limit`.
    pub async fn list_public_repositories(
        &self,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        let filter = public().add(repository::Column::Id.gt(after_id.unwrap_or(0)));
        self.listings(filter, false, Some(limit)).await
    }

    /// Public repositories and those `account_id` may read (see
    /// [`Db::repositories_visible_to`]) with ids above `after_id`, by id, at most `limit`:
    /// Quay's `GET /repository?public=true` for a signed-in caller.
    pub async fn list_visible_repositories(
        &self,
        account_id: i64,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        let filter = Condition::all()
            .add(Condition::any().add(public()).add(readable_by(account_id)))
            .add(repository::Column::Id.gt(after_id.unwrap_or(0)));
        self.listings(filter, false, Some(limit)).await
    }

    /// The repositories `account_id` may read whether public or not, by id: those it holds a
    /// role on directly or through a team, those of organizations where it is in an `admin`
    /// team, and those of its own namespace.
    pub async fn repositories_visible_to(
        &self,
        account_id: i64,
    ) -> Result<Vec<RepositoryListing>, DbError> {
        self.listings(readable_by(account_id), false, None).await
    }

    /// Sets or clears a repository's description; false when there is no such repository.
    pub async fn set_repository_description(
        &self,
        repository_id: i64,
        description: Option<&str>,
    ) -> Result<bool, DbError> {
        self.update_repository(
            repository_id,
            repository::Column::Description,
            Expr::value(description.map(str::to_string)),
        )
        .await
    }

    /// Sets a repository's visibility (`public` or `private`); false when there is no such
    /// repository.
    pub async fn set_repository_visibility(
        &self,
        repository_id: i64,
        visibility: &str,
    ) -> Result<bool, DbError> {
        self.update_repository(
            repository_id,
            repository::Column::Visibility,
            Expr::value(visibility),
        )
        .await
    }

    /// Sets a repository's state (0 NORMAL, 1 READ_ONLY, 2 MIRROR); false when there is no
    /// such repository. A repository marked for deletion stays marked: use
    /// [`Db::mark_repository_for_deletion`] to mark one.
    pub async fn set_repository_state(
        &self,
        repository_id: i64,
        state: i32,
    ) -> Result<bool, DbError> {
        if state == MARKED_FOR_DELETION {
            return Ok(false);
        }
        self.update_repository(repository_id, repository::Column::State, Expr::value(state))
            .await
    }

    async fn update_repository(
        &self,
        repository_id: i64,
        column: repository::Column,
        value: Expr,
    ) -> Result<bool, DbError> {
        Ok(repository::Entity::update_many()
            .col_expr(column, value)
            .filter(repository::Column::Id.eq(repository_id))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }

    /// Deletes a repository asynchronously, in one transaction: renames it to a fresh uuid so
    /// its name can be reused at once, marks it MARKED_FOR_DELETION, removes its permissions,
    /// and enqueues `repositorygc/<namespace>/<id>/` with body
    /// `{"marker_id": <id>, "original_name": <name>}`. False when there is no such repository
    /// or it is already marked.
    pub async fn mark_repository_for_deletion(&self, repository_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        let found: Option<(String, String)> = repository::Entity::find()
            .select_only()
            .column(account::Column::Username)
            .column(repository::Column::Name)
            .join(JoinType::InnerJoin, repository_namespace())
            .filter(repository::Column::Id.eq(repository_id))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .into_tuple()
            .one(&tx)
            .await?;
        let Some((namespace, original_name)) = found else {
            tx.rollback().await?;
            return Ok(false);
        };
        // The state condition makes a concurrent second mark a no-op rather than a second
        // queue item.
        let marked = repository::Entity::update_many()
            .col_expr(
                repository::Column::Name,
                Expr::value(uuid::Uuid::new_v4().to_string()),
            )
            .col_expr(repository::Column::State, Expr::value(MARKED_FOR_DELETION))
            .filter(repository::Column::Id.eq(repository_id))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .exec(&tx)
            .await?;
        if marked.rows_affected == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        repository_permission::Entity::delete_many()
            .filter(repository_permission::Column::RepositoryId.eq(repository_id))
            .exec(&tx)
            .await?;
        let body = serde_json::json!({
            "marker_id": repository_id,
            "original_name": original_name,
        });
        let name = item_name("repositorygc", &[&namespace, &repository_id.to_string()]);
        queue_put_in(&tx, &name, &body.to_string(), 0, 5).await?;
        tx.commit().await?;
        Ok(true)
    }
}
