//! Robot accounts: an `account` row named `owner+name` with `robot = TRUE`, plus its `robot` row
//! (the encrypted token and metadata). Deleting a robot removes every grant it holds.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
};

use crate::accounts::{AccountKind, insert_account, new_account};
use crate::entity::{
    account, permission_prototype, repository, repository_permission, robot, team_member,
};
use crate::{Db, DbError};

/// A robot account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotRow {
    pub account_id: i64,
    /// The full name, `owner+shortname`.
    pub name: String,
    pub owner_id: i64,
    pub enabled: bool,
    /// The token, encrypted with the installation's secret key.
    pub token_ciphertext: String,
    pub description: String,
    pub unstructured_json: String,
    pub creation_ms: i64,
    pub last_accessed_ms: Option<i64>,
}

/// A robot to create.
#[derive(Clone, Debug)]
pub struct NewRobot {
    pub owner_id: i64,
    /// The full name, `owner+shortname`.
    pub name: String,
    pub token_ciphertext: String,
    pub description: String,
    pub unstructured_json: String,
}

/// The result of creating a robot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateRobotOutcome {
    Created(RobotRow),
    NameTaken,
}

/// A repository a robot (or anyone) holds an explicit role on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryGrant {
    pub namespace: String,
    pub repository: String,
    pub visibility: String,
    pub role: String,
}

fn robot_row(a: account::Model, r: robot::Model) -> RobotRow {
    RobotRow {
        account_id: a.id,
        name: a.username,
        owner_id: r.owner_id,
        enabled: a.enabled,
        token_ciphertext: r.token_ciphertext,
        description: r.description,
        unstructured_json: r.unstructured_json,
        creation_ms: a.creation_ms,
        last_accessed_ms: r.last_accessed_ms,
    }
}

impl Db {
    /// Creates a robot unless an account already has its name.
    pub async fn create_robot(&self, new: NewRobot) -> Result<CreateRobotOutcome, DbError> {
        let tx = self.begin_write().await?;
        let model = new_account(
            &new.name,
            None,
            AccountKind::Robot,
            self.default_tag_window_s,
        );
        let Some(account) = insert_account(&tx, model).await? else {
            return Ok(CreateRobotOutcome::NameTaken);
        };
        let robot = robot::Entity::insert(robot::ActiveModel {
            account_id: Set(account.id),
            owner_id: Set(new.owner_id),
            token_ciphertext: Set(new.token_ciphertext),
            description: Set(new.description),
            unstructured_json: Set(new.unstructured_json),
            last_accessed_ms: Set(None),
            ..Default::default()
        })
        .exec_with_returning(&tx)
        .await?;
        tx.commit().await?;
        Ok(CreateRobotOutcome::Created(robot_row(account, robot)))
    }

    /// The robot with the full name `owner+shortname`.
    pub async fn find_robot(&self, name: &str) -> Result<Option<RobotRow>, DbError> {
        let Some(a) = account::Entity::find()
            .filter(account::Column::Username.eq(name))
            .filter(account::Column::Robot.eq(true))
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let r = robot::Entity::find()
            .filter(robot::Column::AccountId.eq(a.id))
            .one(&self.read)
            .await?;
        Ok(r.map(|r| robot_row(a, r)))
    }

    /// The robots of an owner, by name.
    pub async fn list_robots(&self, owner_id: i64) -> Result<Vec<RobotRow>, DbError> {
        let robots = robot::Entity::find()
            .filter(robot::Column::OwnerId.eq(owner_id))
            .all(&self.read)
            .await?;
        let mut accounts = account::Entity::find()
            .filter(account::Column::Id.is_in(robots.iter().map(|r| r.account_id)))
            .order_by_asc(account::Column::Username)
            .all(&self.read)
            .await?;
        let mut by_account: std::collections::HashMap<i64, robot::Model> =
            robots.into_iter().map(|r| (r.account_id, r)).collect();
        Ok(accounts
            .drain(..)
            .filter_map(|a| by_account.remove(&a.id).map(|r| robot_row(a, r)))
            .collect())
    }

    /// Replaces a robot's token.
    pub async fn set_robot_token(
        &self,
        account_id: i64,
        token_ciphertext: &str,
    ) -> Result<(), DbError> {
        robot::Entity::update_many()
            .col_expr(
                robot::Column::TokenCiphertext,
                sea_orm::sea_query::Expr::value(token_ciphertext),
            )
            .filter(robot::Column::AccountId.eq(account_id))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Updates a robot's description and metadata.
    pub async fn update_robot_metadata(
        &self,
        account_id: i64,
        description: &str,
        unstructured_json: &str,
    ) -> Result<(), DbError> {
        use sea_orm::sea_query::Expr;
        robot::Entity::update_many()
            .col_expr(robot::Column::Description, Expr::value(description))
            .col_expr(
                robot::Column::UnstructuredJson,
                Expr::value(unstructured_json),
            )
            .filter(robot::Column::AccountId.eq(account_id))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Deletes a robot with its team memberships, permissions and prototypes naming it.
    /// False, changing nothing, when `account_id` is not a robot.
    pub async fn delete_robot(&self, account_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        // Check first: the grants below must never be stripped from a user or organization.
        let is_robot = robot::Entity::find()
            .filter(robot::Column::AccountId.eq(account_id))
            .one(&tx)
            .await?
            .is_some();
        if !is_robot {
            tx.rollback().await?;
            return Ok(false);
        }
        team_member::Entity::delete_many()
            .filter(team_member::Column::AccountId.eq(account_id))
            .exec(&tx)
            .await?;
        repository_permission::Entity::delete_many()
            .filter(repository_permission::Column::AccountId.eq(account_id))
            .exec(&tx)
            .await?;
        permission_prototype::Entity::delete_many()
            .filter(permission_prototype::Column::DelegateAccountId.eq(account_id))
            .exec(&tx)
            .await?;
        permission_prototype::Entity::delete_many()
            .filter(permission_prototype::Column::ActivatingAccountId.eq(account_id))
            .exec(&tx)
            .await?;
        robot::Entity::delete_many()
            .filter(robot::Column::AccountId.eq(account_id))
            .exec(&tx)
            .await?;
        account::Entity::delete_many()
            .filter(account::Column::Id.eq(account_id))
            .filter(account::Column::Robot.eq(true))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Repositories an account holds an explicit (direct) role on.
    pub async fn account_grants(&self, account_id: i64) -> Result<Vec<RepositoryGrant>, DbError> {
        let rows: Vec<(String, String, String, String)> = repository_permission::Entity::find()
            .select_only()
            .column(account::Column::Username)
            .column(repository::Column::Name)
            .column(repository::Column::Visibility)
            .column(repository_permission::Column::Role)
            .join(
                JoinType::InnerJoin,
                repository_permission::Entity::belongs_to(repository::Entity)
                    .from(repository_permission::Column::RepositoryId)
                    .to(repository::Column::Id)
                    .into(),
            )
            .join(
                JoinType::InnerJoin,
                repository::Entity::belongs_to(account::Entity)
                    .from(repository::Column::NamespaceId)
                    .to(account::Column::Id)
                    .into(),
            )
            .filter(repository_permission::Column::AccountId.eq(account_id))
            .filter(repository::Column::State.ne(3))
            .order_by_asc(account::Column::Username)
            .order_by_asc(repository::Column::Name)
            .into_tuple()
            .all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(namespace, repository, visibility, role)| RepositoryGrant {
                    namespace,
                    repository,
                    visibility,
                    role,
                },
            )
            .collect())
    }
}
