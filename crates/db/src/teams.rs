//! Teams of organizations and their members: teams with their counts, creating or updating a
//! team, membership, the organization's member and collaborator lists, and the facts Quay's
//! guard rails need (who administers the organization).
//!
//! Team roles are stored by name (`member`, `creator`, `admin`); the `auth` crate owns their
//! meaning.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef, TryInsertResult,
};

use crate::entity::{
    account, permission_prototype, repository, repository_permission, team, team_member,
};
use crate::{Db, DbError};

/// A team as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamRow {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    /// `member`, `creator` or `admin`.
    pub role: String,
    pub description: String,
}

impl From<team::Model> for TeamRow {
    fn from(m: team::Model) -> Self {
        TeamRow {
            id: m.id,
            organization_id: m.organization_id,
            name: m.name,
            role: m.role,
            description: m.description,
        }
    }
}

/// A team with how many accounts it holds and how many repositories it has a role on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamSummary {
    pub team: TeamRow,
    pub member_count: i64,
    pub repo_count: i64,
}

/// What views need to show a user or robot: its name, kind and the e-mail its avatar hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRef {
    pub id: i64,
    /// The username; robots: `owner+shortname`.
    pub username: String,
    pub robot: bool,
    pub email: Option<String>,
}

/// The result of adding an account to a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddTeamMemberOutcome {
    Added,
    AlreadyMember,
}

/// The result of removing an account from an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveOrgMemberOutcome {
    Removed,
    /// The account is the organization's only admin; nothing was changed.
    OnlyAdmin,
}

/// An account of an organization with its teams and direct repository permissions there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgMemberRow {
    pub account: AccountRef,
    /// Names of the organization's teams the account is in, by name.
    pub teams: Vec<String>,
    /// Names of the organization's repositories the account holds a direct role on, by name.
    pub repositories: Vec<String>,
}

/// A repository a team holds a role on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamPermissionRow {
    pub repository_id: i64,
    pub repository: String,
    pub visibility: String,
    pub role: String,
}

fn member_team() -> RelationDef {
    team_member::Entity::belongs_to(team::Entity)
        .from(team_member::Column::TeamId)
        .to(team::Column::Id)
        .into()
}

fn member_account() -> RelationDef {
    team_member::Entity::belongs_to(account::Entity)
        .from(team_member::Column::AccountId)
        .to(account::Column::Id)
        .into()
}

fn permission_repository() -> RelationDef {
    repository_permission::Entity::belongs_to(repository::Entity)
        .from(repository_permission::Column::RepositoryId)
        .to(repository::Column::Id)
        .into()
}

fn permission_team() -> RelationDef {
    repository_permission::Entity::belongs_to(team::Entity)
        .from(repository_permission::Column::TeamId)
        .to(team::Column::Id)
        .into()
}

fn permission_account() -> RelationDef {
    repository_permission::Entity::belongs_to(account::Entity)
        .from(repository_permission::Column::AccountId)
        .to(account::Column::Id)
        .into()
}

/// Ids of the accounts in any `admin` team of the organization, ascending.
async fn admin_ids<C: ConnectionTrait>(conn: &C, org_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(team_member::Entity::find()
        .select_only()
        .column(team_member::Column::AccountId)
        .distinct()
        .join(JoinType::InnerJoin, member_team())
        .filter(team::Column::OrganizationId.eq(org_id))
        .filter(team::Column::Role.eq("admin"))
        .order_by_asc(team_member::Column::AccountId)
        .into_tuple()
        .all(conn)
        .await?)
}

type AccountTuple = (i64, String, bool, Option<String>);

fn account_ref((id, username, robot, email): AccountTuple) -> AccountRef {
    AccountRef {
        id,
        username,
        robot,
        email,
    }
}

impl Db {
    /// The organization's teams in creation (id) order, with their counts.
    pub async fn list_teams(&self, org_id: i64) -> Result<Vec<TeamSummary>, DbError> {
        let teams = team::Entity::find()
            .filter(team::Column::OrganizationId.eq(org_id))
            .order_by_asc(team::Column::Id)
            .all(&self.read)
            .await?;
        let members: HashMap<i64, i64> = team_member::Entity::find()
            .select_only()
            .column(team_member::Column::TeamId)
            .column_as(
                Expr::col((team_member::Entity, team_member::Column::Id)).count(),
                "n",
            )
            .join(JoinType::InnerJoin, member_team())
            .filter(team::Column::OrganizationId.eq(org_id))
            .group_by(team_member::Column::TeamId)
            .into_tuple::<(i64, i64)>()
            .all(&self.read)
            .await?
            .into_iter()
            .collect();
        let repos: HashMap<i64, i64> = repository_permission::Entity::find()
            .select_only()
            .column(repository_permission::Column::TeamId)
            .column_as(
                Expr::col((
                    repository_permission::Entity,
                    repository_permission::Column::Id,
                ))
                .count(),
                "n",
            )
            .join(JoinType::InnerJoin, permission_team())
            .join(JoinType::InnerJoin, permission_repository())
            .filter(team::Column::OrganizationId.eq(org_id))
            .filter(repository::Column::State.ne(3))
            .group_by(repository_permission::Column::TeamId)
            .into_tuple::<(i64, i64)>()
            .all(&self.read)
            .await?
            .into_iter()
            .collect();
        Ok(teams
            .into_iter()
            .map(|t| TeamSummary {
                member_count: members.get(&t.id).copied().unwrap_or(0),
                repo_count: repos.get(&t.id).copied().unwrap_or(0),
                team: t.into(),
            })
            .collect())
    }

    /// The organization's team `name`.
    pub async fn find_team(&self, org_id: i64, name: &str) -> Result<Option<TeamRow>, DbError> {
        Ok(team::Entity::find()
            .filter(team::Column::OrganizationId.eq(org_id))
            .filter(team::Column::Name.eq(name))
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// Creates team `name` or updates its role (and its description, when given). Returns the
    /// team and whether it was created. A new team without a description gets an empty one.
    pub async fn upsert_team(
        &self,
        org_id: i64,
        name: &str,
        role: &str,
        description: Option<&str>,
    ) -> Result<(TeamRow, bool), DbError> {
        let tx = self.begin_write().await?;
        // Insert-or-nothing first, so two concurrent creators cannot both fail on the unique key.
        let inserted = team::Entity::insert(team::ActiveModel {
            organization_id: Set(org_id),
            name: Set(name.to_string()),
            role: Set(role.to_string()),
            description: Set(description.unwrap_or_default().to_string()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([team::Column::OrganizationId, team::Column::Name])
        .exec(&tx)
        .await?;
        let created = matches!(inserted, TryInsertResult::Inserted(_));
        if !created {
            let mut update = team::Entity::update_many()
                .col_expr(team::Column::Role, Expr::value(role))
                .filter(team::Column::OrganizationId.eq(org_id))
                .filter(team::Column::Name.eq(name));
            if let Some(description) = description {
                update = update.col_expr(team::Column::Description, Expr::value(description));
            }
            update.exec(&tx).await?;
        }
        let row = team::Entity::find()
            .filter(team::Column::OrganizationId.eq(org_id))
            .filter(team::Column::Name.eq(name))
            .one(&tx)
            .await?
            .ok_or_else(|| DbError::Invariant(format!("team {name} vanished")))?;
        tx.commit().await?;
        Ok((row.into(), created))
    }

    /// Deletes a team with its memberships, repository permissions and the default
    /// permissions that name it. False when there was no such team.
    pub async fn delete_team(&self, team_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        team_member::Entity::delete_many()
            .filter(team_member::Column::TeamId.eq(team_id))
            .exec(&tx)
            .await?;
        repository_permission::Entity::delete_many()
            .filter(repository_permission::Column::TeamId.eq(team_id))
            .exec(&tx)
            .await?;
        permission_prototype::Entity::delete_many()
            .filter(permission_prototype::Column::DelegateTeamId.eq(team_id))
            .exec(&tx)
            .await?;
        let removed = team::Entity::delete_by_id(team_id)
            .exec(&tx)
            .await?
            .rows_affected;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// The users and robots in a team, by name.
    pub async fn team_members(&self, team_id: i64) -> Result<Vec<AccountRef>, DbError> {
        let rows: Vec<AccountTuple> = team_member::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .column(account::Column::Username)
            .column(account::Column::Robot)
            .column(account::Column::Email)
            .join(JoinType::InnerJoin, member_account())
            .filter(team_member::Column::TeamId.eq(team_id))
            .order_by_asc(account::Column::Username)
            .into_tuple()
            .all(&self.read)
            .await?;
        Ok(rows.into_iter().map(account_ref).collect())
    }

    /// Adds a user or robot to a team.
    pub async fn add_team_member(
        &self,
        team_id: i64,
        account_id: i64,
    ) -> Result<AddTeamMemberOutcome, DbError> {
        let inserted = team_member::Entity::insert(team_member::ActiveModel {
            team_id: Set(team_id),
            account_id: Set(account_id),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([team_member::Column::TeamId, team_member::Column::AccountId])
        .exec(&self.write)
        .await?;
        Ok(match inserted {
            TryInsertResult::Inserted(_) => AddTeamMemberOutcome::Added,
            _ => AddTeamMemberOutcome::AlreadyMember,
        })
    }

    /// Removes an account from a team; false when it was not a member.
    pub async fn remove_team_member(&self, team_id: i64, account_id: i64) -> Result<bool, DbError> {
        Ok(team_member::Entity::delete_many()
            .filter(team_member::Column::TeamId.eq(team_id))
            .filter(team_member::Column::AccountId.eq(account_id))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }

    /// The organization's teams `account_id` is in, in id order.
    pub async fn teams_of_member(
        &self,
        org_id: i64,
        account_id: i64,
    ) -> Result<Vec<TeamRow>, DbError> {
        Ok(team::Entity::find()
            .join(JoinType::InnerJoin, member_team().rev())
            .filter(team::Column::OrganizationId.eq(org_id))
            .filter(team_member::Column::AccountId.eq(account_id))
            .order_by_asc(team::Column::Id)
            .all(&self.read)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every user and robot in any team of the organization, by name, with its teams and its
    /// direct permissions on the organization's repositories.
    pub async fn org_members(&self, org_id: i64) -> Result<Vec<OrgMemberRow>, DbError> {
        let rows: Vec<(i64, String, bool, Option<String>, String)> = team_member::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .column(account::Column::Username)
            .column(account::Column::Robot)
            .column(account::Column::Email)
            .column(team::Column::Name)
            .join(JoinType::InnerJoin, member_team())
            .join(JoinType::InnerJoin, member_account())
            .filter(team::Column::OrganizationId.eq(org_id))
            .order_by_asc(account::Column::Username)
            .order_by_asc(team::Column::Name)
            .into_tuple()
            .all(&self.read)
            .await?;
        let mut members: Vec<OrgMemberRow> = Vec::new();
        for (id, username, robot, email, team_name) in rows {
            match members.last_mut() {
                Some(last) if last.account.id == id => last.teams.push(team_name),
                _ => members.push(OrgMemberRow {
                    account: account_ref((id, username, robot, email)),
                    teams: vec![team_name],
                    repositories: Vec::new(),
                }),
            }
        }
        let mut direct = self.direct_org_permissions(org_id).await?;
        for member in &mut members {
            if let Some((_, repos)) = direct.remove(&member.account.id) {
                member.repositories = repos;
            }
        }
        Ok(members)
    }

    /// Users and robots with a direct permission on a repository of the organization who are
    /// in none of its teams (Quay's "outside collaborators"), by name; `teams` is empty.
    pub async fn org_collaborators(&self, org_id: i64) -> Result<Vec<OrgMemberRow>, DbError> {
        let in_teams: std::collections::HashSet<i64> = team_member::Entity::find()
            .select_only()
            .column(team_member::Column::AccountId)
            .join(JoinType::InnerJoin, member_team())
            .filter(team::Column::OrganizationId.eq(org_id))
            .into_tuple::<i64>()
            .all(&self.read)
            .await?
            .into_iter()
            .collect();
        let mut rows: Vec<OrgMemberRow> = self
            .direct_org_permissions(org_id)
            .await?
            .into_iter()
            .filter(|(id, _)| !in_teams.contains(id))
            .map(|(_, (account, repositories))| OrgMemberRow {
                account,
                teams: Vec::new(),
                repositories,
            })
            .collect();
        rows.sort_by(|a, b| a.account.username.cmp(&b.account.username));
        Ok(rows)
    }

    /// Direct permissions on the organization's repositories, per account, repository names
    /// sorted.
    async fn direct_org_permissions(
        &self,
        org_id: i64,
    ) -> Result<HashMap<i64, (AccountRef, Vec<String>)>, DbError> {
        let rows: Vec<(i64, String, bool, Option<String>, String)> =
            repository_permission::Entity::find()
                .select_only()
                .column(account::Column::Id)
                .column(account::Column::Username)
                .column(account::Column::Robot)
                .column(account::Column::Email)
                .column(repository::Column::Name)
                .join(JoinType::InnerJoin, permission_repository())
                .join(JoinType::InnerJoin, permission_account())
                .filter(repository::Column::NamespaceId.eq(org_id))
                .filter(repository::Column::State.ne(3))
                .order_by_asc(repository::Column::Name)
                .into_tuple()
                .all(&self.read)
                .await?;
        let mut by_account: HashMap<i64, (AccountRef, Vec<String>)> = HashMap::new();
        for (id, username, robot, email, repo) in rows {
            by_account
                .entry(id)
                .or_insert_with(|| (account_ref((id, username, robot, email)), Vec::new()))
                .1
                .push(repo);
        }
        Ok(by_account)
    }

    /// Removes an account from every team of the organization and every direct permission on
    /// its repositories, unless it is the organization's only admin.
    pub async fn remove_org_member(
        &self,
        org_id: i64,
        account_id: i64,
    ) -> Result<RemoveOrgMemberOutcome, DbError> {
        let tx = self.begin_write().await?;
        if admin_ids(&tx, org_id).await? == [account_id] {
            tx.rollback().await?;
            return Ok(RemoveOrgMemberOutcome::OnlyAdmin);
        }
        team_member::Entity::delete_many()
            .filter(team_member::Column::AccountId.eq(account_id))
            .filter(
                team_member::Column::TeamId.in_subquery(
                    Query::select()
                        .column(team::Column::Id)
                        .from(team::Entity)
                        .and_where(team::Column::OrganizationId.eq(org_id))
                        .to_owned(),
                ),
            )
            .exec(&tx)
            .await?;
        repository_permission::Entity::delete_many()
            .filter(repository_permission::Column::AccountId.eq(account_id))
            .filter(
                repository_permission::Column::RepositoryId.in_subquery(
                    Query::select()
                        .column(repository::Column::Id)
                        .from(repository::Entity)
                        .and_where(repository::Column::NamespaceId.eq(org_id))
                        .to_owned(),
                ),
            )
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(RemoveOrgMemberOutcome::Removed)
    }

    /// The repositories a team holds a role on, by name (repositories marked for deletion left
    /// out).
    pub async fn team_repository_permissions(
        &self,
        team_id: i64,
    ) -> Result<Vec<TeamPermissionRow>, DbError> {
        let rows: Vec<(i64, String, String, String)> = repository_permission::Entity::find()
            .select_only()
            .column(repository::Column::Id)
            .column(repository::Column::Name)
            .column(repository::Column::Visibility)
            .column(repository_permission::Column::Role)
            .join(JoinType::InnerJoin, permission_repository())
            .filter(repository_permission::Column::TeamId.eq(team_id))
            .filter(repository::Column::State.ne(3))
            .order_by_asc(repository::Column::Name)
            .into_tuple()
            .all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(repository_id, repository, visibility, role)| TeamPermissionRow {
                    repository_id,
                    repository,
                    visibility,
                    role,
                },
            )
            .collect())
    }

    /// Ids of the accounts (users and robots) in any `admin` team of the organization,
    /// ascending: Quay's guard rails refuse to remove the last of them.
    pub async fn org_admin_ids(&self, org_id: i64) -> Result<Vec<i64>, DbError> {
        admin_ids(&self.read, org_id).await
    }
}
