//! What the permission decision needs to know, repository creation with an organization's
//! default permissions, and explicit repository permissions.
//!
//! Roles are stored and returned by name (`read`/`write`/`admin` on repositories,
//! `member`/`creator`/`admin` for teams); the `auth` crate owns their meaning and order.

use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationDef,
};

use crate::entity::{
    account, permission_prototype, repository, repository_permission, team, team_member,
};
use crate::{AccountRow, Db, DbError, RepositoryRow, now_ms};

/// The facts about a caller, a namespace and (optionally) a repository that decide access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFacts {
    pub namespace: AccountRow,
    /// The repository, unless it does not exist.
    pub repository: Option<RepositoryRow>,
    /// Roles of the caller's teams in the namespace (empty for user namespaces).
    pub team_roles: Vec<String>,
    /// Roles the caller holds on the repository directly or through a team.
    pub repository_roles: Vec<String>,
}

/// A repository to create.
#[derive(Clone, Debug)]
pub struct NewRepository {
    pub namespace_id: i64,
    pub name: String,
    pub visibility: String,
    pub description: Option<String>,
    /// The user or robot creating it. It gets `admin` on the new repository (also in its own
    /// namespace, as in Quay) and, in an organization, the organization's default permissions
    /// for it apply. An organization as creator gets nothing.
    pub creator: Option<i64>,
}

/// The result of creating a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateRepositoryOutcome {
    Created(RepositoryRow),
    Exists(RepositoryRow),
}

/// Who a permission is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delegate {
    Account(i64),
    Team(i64),
}

/// An explicit repository permission with the name of whom it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionRow {
    pub delegate: Delegate,
    /// A username (robots: `owner+name`) or a team name.
    pub name: String,
    pub role: String,
    /// For accounts: whether it is a robot.
    pub is_robot: bool,
}

pub(crate) fn team_member_team() -> RelationDef {
    team_member::Entity::belongs_to(team::Entity)
        .from(team_member::Column::TeamId)
        .to(team::Column::Id)
        .into()
}

impl Db {
    /// Everything needed to decide what `caller` may do in `namespace` (and `repository`).
    /// None when the namespace does not exist.
    pub async fn access_facts(
        &self,
        caller: Option<i64>,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Option<AccessFacts>, DbError> {
        let Some(ns) = self.find_account(namespace).await? else {
            return Ok(None);
        };
        let repository = match repository {
            Some(name) => self.find_repository(namespace, name).await?,
            None => None,
        };
        let mut team_roles = Vec::new();
        let mut repository_roles = Vec::new();
        if let Some(caller) = caller {
            if ns.organization {
                team_roles = team::Entity::find()
                    .select_only()
                    .column(team::Column::Role)
                    .join(JoinType::InnerJoin, team_member_team().rev())
                    .filter(team::Column::OrganizationId.eq(ns.id))
                    .filter(team_member::Column::AccountId.eq(caller))
                    .into_tuple()
                    .all(&self.read)
                    .await?;
            }
            if let Some(repo) = &repository {
                repository_roles = repository_permission::Entity::find()
                    .select_only()
                    .column(repository_permission::Column::Role)
                    .filter(repository_permission::Column::RepositoryId.eq(repo.id))
                    .filter(
                        Condition::any()
                            .add(repository_permission::Column::AccountId.eq(caller))
                            .add(
                                repository_permission::Column::TeamId.in_subquery(
                                    Query::select()
                                        .column(team_member::Column::TeamId)
                                        .from(team_member::Entity)
                                        .and_where(team_member::Column::AccountId.eq(caller))
                                        .to_owned(),
                                ),
                            ),
                    )
                    .into_tuple()
                    .all(&self.read)
                    .await?;
            }
        }
        Ok(Some(AccessFacts {
            namespace: ns,
            repository,
            team_roles,
            repository_roles,
        }))
    }

    /// Creates a repository with its initial permissions in one transaction: `admin` for the
    /// creating user or robot, then the organization's default permissions that apply to it.
    pub async fn create_repository(
        &self,
        new: NewRepository,
    ) -> Result<CreateRepositoryOutcome, DbError> {
        let tx = self.begin_write().await?;
        let ns = account::Entity::find_by_id(new.namespace_id)
            .one(&tx)
            .await?
            .ok_or_else(|| {
                DbError::Invariant(format!("namespace {} vanished", new.namespace_id))
            })?;
        let inserted = repository::Entity::insert(repository::ActiveModel {
            namespace_id: Set(ns.id),
            name: Set(new.name.clone()),
            visibility: Set(new.visibility.clone()),
            state: Set(0),
            kind: Set("image".to_string()),
            description: Set(new.description.clone()),
            creation_ms: Set(now_ms()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([repository::Column::NamespaceId, repository::Column::Name])
        .exec(&tx)
        .await?;
        let row = repository::Entity::find()
            .filter(repository::Column::NamespaceId.eq(ns.id))
            .filter(repository::Column::Name.eq(&new.name))
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("repository {} vanished", new.name)))?;
        let row = RepositoryRow {
            id: row.id,
            namespace_id: ns.id,
            namespace: ns.username.clone(),
            name: row.name,
            visibility: row.visibility,
            state: row.state,
        };
        if matches!(inserted, sea_orm::TryInsertResult::Conflicted) {
            tx.rollback().await?;
            return Ok(CreateRepositoryOutcome::Exists(row));
        }
        // Quay gives every creator that is not an organization an explicit admin permission,
        // even in its own namespace, so the repository's user permissions list it.
        let creator = match new.creator {
            Some(id) if id == ns.id => Some(id).filter(|_| !ns.organization),
            Some(id) => account::Entity::find_by_id(id)
                .one(&tx)
                .await?
                .filter(|a| !a.organization)
                .map(|a| a.id),
            None => None,
        };
        if let Some(creator) = creator {
            insert_permission(&tx, row.id, Delegate::Account(creator), "admin").await?;
            if ns.organization {
                for (delegate, role) in default_permissions(&tx, ns.id, creator).await? {
                    insert_permission(&tx, row.id, delegate, &role).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(CreateRepositoryOutcome::Created(row))
    }

    /// Explicit permissions on a repository, users and robots first, then teams.
    pub async fn repository_permissions(
        &self,
        repository_id: i64,
    ) -> Result<Vec<PermissionRow>, DbError> {
        let accounts: Vec<(i64, String, bool, String)> = repository_permission::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .column(account::Column::Username)
            .column(account::Column::Robot)
            .column(repository_permission::Column::Role)
            .join(
                JoinType::InnerJoin,
                repository_permission::Entity::belongs_to(account::Entity)
                    .from(repository_permission::Column::AccountId)
                    .to(account::Column::Id)
                    .into(),
            )
            .filter(repository_permission::Column::RepositoryId.eq(repository_id))
            .into_tuple()
            .all(&self.read)
            .await?;
        let teams: Vec<(i64, String, String)> = repository_permission::Entity::find()
            .select_only()
            .column(team::Column::Id)
            .column(team::Column::Name)
            .column(repository_permission::Column::Role)
            .join(
                JoinType::InnerJoin,
                repository_permission::Entity::belongs_to(team::Entity)
                    .from(repository_permission::Column::TeamId)
                    .to(team::Column::Id)
                    .into(),
            )
            .filter(repository_permission::Column::RepositoryId.eq(repository_id))
            .into_tuple()
            .all(&self.read)
            .await?;
        let mut rows: Vec<PermissionRow> = accounts
            .into_iter()
            .map(|(id, name, is_robot, role)| PermissionRow {
                delegate: Delegate::Account(id),
                name,
                role,
                is_robot,
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let mut team_rows: Vec<PermissionRow> = teams
            .into_iter()
            .map(|(id, name, role)| PermissionRow {
                delegate: Delegate::Team(id),
                name,
                role,
                is_robot: false,
            })
            .collect();
        team_rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows.extend(team_rows);
        Ok(rows)
    }

    /// Sets the role of `delegate` on a repository, replacing any earlier one.
    pub async fn set_repository_permission(
        &self,
        repository_id: i64,
        delegate: Delegate,
        role: &str,
    ) -> Result<(), DbError> {
        let tx = self.begin_write().await?;
        delete_permission(&tx, repository_id, delegate).await?;
        insert_permission(&tx, repository_id, delegate, role).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the permission of `delegate` on a repository; false when it had none.
    pub async fn delete_repository_permission(
        &self,
        repository_id: i64,
        delegate: Delegate,
    ) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        let removed = delete_permission(&tx, repository_id, delegate).await?;
        tx.commit().await?;
        Ok(removed)
    }
}

/// The organization's default permissions that apply when `creator` creates a repository:
/// those for anyone plus those activated by the creator, one per delegate (a prototype for the
/// creator wins over one for anyone). The creator itself is skipped: it already gets `admin`.
async fn default_permissions(
    tx: &DatabaseTransaction,
    organization_id: i64,
    creator: i64,
) -> Result<Vec<(Delegate, String)>, DbError> {
    let prototypes = permission_prototype::Entity::find()
        .filter(permission_prototype::Column::OrganizationId.eq(organization_id))
        .filter(
            Condition::any()
                .add(permission_prototype::Column::ActivatingAccountId.is_null())
                .add(permission_prototype::Column::ActivatingAccountId.eq(creator)),
        )
        .order_by_asc(permission_prototype::Column::Id)
        .all(tx)
        .await?;
    let mut chosen: Vec<(Delegate, String, bool)> = Vec::new();
    for p in prototypes {
        let delegate = match (p.delegate_account_id, p.delegate_team_id) {
            (Some(account), _) if account == creator => continue,
            (Some(account), _) => Delegate::Account(account),
            (None, Some(team)) => Delegate::Team(team),
            (None, None) => continue,
        };
        let specific = p.activating_account_id.is_some();
        match chosen.iter_mut().find(|(d, _, _)| *d == delegate) {
            Some(existing) if specific || !existing.2 => {
                *existing = (delegate, p.role, specific);
            }
            Some(_) => {}
            None => chosen.push((delegate, p.role, specific)),
        }
    }
    Ok(chosen.into_iter().map(|(d, role, _)| (d, role)).collect())
}

async fn insert_permission(
    tx: &DatabaseTransaction,
    repository_id: i64,
    delegate: Delegate,
    role: &str,
) -> Result<(), DbError> {
    let (account_id, team_id) = match delegate {
        Delegate::Account(id) => (Some(id), None),
        Delegate::Team(id) => (None, Some(id)),
    };
    repository_permission::Entity::insert(repository_permission::ActiveModel {
        repository_id: Set(repository_id),
        account_id: Set(account_id),
        team_id: Set(team_id),
        role: Set(role.to_string()),
        ..Default::default()
    })
    .exec(tx)
    .await?;
    Ok(())
}

async fn delete_permission(
    tx: &DatabaseTransaction,
    repository_id: i64,
    delegate: Delegate,
) -> Result<bool, DbError> {
    let column_filter = match delegate {
        Delegate::Account(id) => repository_permission::Column::AccountId.eq(id),
        Delegate::Team(id) => repository_permission::Column::TeamId.eq(id),
    };
    let result = repository_permission::Entity::delete_many()
        .filter(repository_permission::Column::RepositoryId.eq(repository_id))
        .filter(column_filter)
        .exec(tx)
        .await?;
    Ok(result.rows_affected > 0)
}
