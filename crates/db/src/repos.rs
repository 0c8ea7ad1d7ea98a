//! Namespaces, repositories and storage locations.

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef,
};

use crate::entity::{account, repository, storage_location};
use crate::{Db, DbError};

/// Whose view of the repositories a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// Only public repositories.
    Public,
    /// Public repositories and those the account may read: its own namespace, explicit
    /// permissions (direct or through a team), and organizations where it is in an admin team.
    Account(i64),
    /// Every repository.
    Everything,
}

/// What the registry needs to know about a repository on every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryRow {
    pub id: i64,
    pub namespace_id: i64,
    pub namespace: String,
    pub name: String,
    pub visibility: String,
    pub state: i32,
}

fn repository_namespace() -> RelationDef {
    repository::Entity::belongs_to(account::Entity)
        .from(repository::Column::NamespaceId)
        .to(account::Column::Id)
        .into()
}

impl Db {
    /// The repository `namespace/name`, if it exists.
    pub async fn find_repository(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<RepositoryRow>, DbError> {
        let row = repository::Entity::find()
            .join(JoinType::InnerJoin, repository_namespace())
            .filter(account::Column::Username.eq(namespace))
            .filter(repository::Column::Name.eq(name))
            .one(&self.read)
            .await?;
        Ok(row.map(|r| RepositoryRow {
            id: r.id,
            namespace_id: r.namespace_id,
            namespace: namespace.to_string(),
            name: r.name,
            visibility: r.visibility,
            state: r.state,
        }))
    }

    /// A test fixture: returns the repository, creating it (and its namespace, as an
    /// organization) if missing, without permissions. Concurrent callers get the same row.
    /// Real repositories are made by [`Db::create_repository`].
    #[cfg(any(test, feature = "testing"))]
    pub async fn ensure_repository(
        &self,
        namespace: &str,
        name: &str,
        visibility: &str,
    ) -> Result<RepositoryRow, DbError> {
        if let Some(found) = self.find_repository(namespace, name).await? {
            return Ok(found);
        }
        let tx = self.begin_write().await?;
        account::Entity::insert(crate::accounts::new_account(
            namespace,
            None,
            crate::accounts::AccountKind::Organization,
            self.default_tag_window_s,
        ))
        .on_conflict_do_nothing_on([account::Column::Username])
        .exec(&tx)
        .await?;
        let ns = account::Entity::find()
            .filter(account::Column::Username.eq(namespace))
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("namespace {namespace} vanished")))?;
        repository::Entity::insert(repository::ActiveModel {
            namespace_id: Set(ns.id),
            name: Set(name.to_string()),
            visibility: Set(visibility.to_string()),
            state: Set(0),
            kind: Set("image".to_string()),
            description: Set(None),
            creation_ms: Set(crate::now_ms()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([repository::Column::NamespaceId, repository::Column::Name])
        .exec(&tx)
        .await?;
        let repo = repository::Entity::find()
            .filter(repository::Column::NamespaceId.eq(ns.id))
            .filter(repository::Column::Name.eq(name))
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("repository {namespace}/{name} vanished")))?;
        tx.commit().await?;
        Ok(RepositoryRow {
            id: repo.id,
            namespace_id: ns.id,
            namespace: namespace.to_string(),
            name: repo.name,
            visibility: repo.visibility,
            state: repo.state,
        })
    }

    /// Full names (`namespace/name`) of the image repositories `viewer` may see, in lexical
    /// order, after `after`.
    pub async fn list_repositories(
        &self,
        viewer: Viewer,
        after: Option<(&str, &str)>,
        limit: u64,
    ) -> Result<Vec<String>, DbError> {
        let mut query = repository::Entity::find()
            .select_only()
            .column(account::Column::Username)
            .column(repository::Column::Name)
            .join(JoinType::InnerJoin, repository_namespace())
            .filter(repository::Column::Kind.eq("image"))
            .filter(repository::Column::State.ne(3))
            .order_by_asc(account::Column::Username)
            .order_by_asc(repository::Column::Name)
            .limit(limit);
        match viewer {
            Viewer::Everything => {}
            Viewer::Public => query = query.filter(repository::Column::Visibility.eq("public")),
            Viewer::Account(id) => query = query.filter(visible_to(id)),
        }
        if let Some((ns, name)) = after {
            query = query.filter(
                Condition::any().add(account::Column::Username.gt(ns)).add(
                    Condition::all()
                        .add(account::Column::Username.eq(ns))
                        .add(repository::Column::Name.gt(name)),
                ),
            );
        }
        let rows: Vec<(String, String)> = query.into_tuple().all(&self.read).await?;
        Ok(rows
            .into_iter()
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect())
    }

    /// The id of the storage location `name`, created on first use.
    pub async fn ensure_location(&self, name: &str) -> Result<i64, DbError> {
        let tx = self.begin_write().await?;
        storage_location::Entity::insert(storage_location::ActiveModel {
            name: Set(name.to_string()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([storage_location::Column::Name])
        .exec(&tx)
        .await?;
        let id = storage_location::Entity::find()
            .filter(storage_location::Column::Name.eq(name))
            .one(&tx)
            .await?
            .map(|l| l.id)
            .ok_or_else(|| DbError::Invariant(format!("storage location {name} vanished")))?;
        tx.commit().await?;
        Ok(id)
    }
}

/// The repositories account `id` may read (see [`Viewer::Account`]).
fn visible_to(id: i64) -> Condition {
    Condition::any()
        .add(repository::Column::Visibility.eq("public"))
        .add(readable_by(id))
}

/// The repositories account `id` may read whether public or not: its own namespace's, those it
/// holds a role on directly or through a team, and those of organizations where it is in an
/// `admin` team.
pub(crate) fn readable_by(id: i64) -> Condition {
    use crate::entity::{repository_permission, team, team_member};
    let direct = Query::select()
        .column(repository_permission::Column::RepositoryId)
        .from(repository_permission::Entity)
        .and_where(repository_permission::Column::AccountId.eq(id))
        .to_owned();
    let through_team = Query::select()
        .column((
            repository_permission::Entity,
            repository_permission::Column::RepositoryId,
        ))
        .from(repository_permission::Entity)
        .inner_join(
            team_member::Entity,
            Expr::col((team_member::Entity, team_member::Column::TeamId)).equals((
                repository_permission::Entity,
                repository_permission::Column::TeamId,
            )),
        )
        .and_where(Expr::col((team_member::Entity, team_member::Column::AccountId)).eq(id))
        .to_owned();
    let administered = Query::select()
        .column((team::Entity, team::Column::OrganizationId))
        .from(team::Entity)
        .inner_join(
            team_member::Entity,
            Expr::col((team_member::Entity, team_member::Column::TeamId))
                .equals((team::Entity, team::Column::Id)),
        )
        .and_where(Expr::col((team_member::Entity, team_member::Column::AccountId)).eq(id))
        .and_where(Expr::col((team::Entity, team::Column::Role)).eq("admin"))
        .to_owned();
    Condition::any()
        .add(repository::Column::NamespaceId.eq(id))
        .add(repository::Column::Id.in_subquery(direct))
        .add(repository::Column::Id.in_subquery(through_team))
        .add(repository::Column::NamespaceId.in_subquery(administered))
}
