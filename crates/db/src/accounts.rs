//! Accounts: users (created with a password hash), organizations (created with their `owners`
//! team) and lookups. Users, organizations and robots share the `account` table and its
//! namespace of names.

use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr,
};

use crate::entity::{account, team, team_member};
use crate::{Db, DbError, now_ms};

/// A user account to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    /// A bcrypt hash; the db crate never sees passwords.
    pub password_hash: String,
    pub verified: bool,
    pub superuser: bool,
}

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub organization: bool,
    pub robot: bool,
    pub enabled: bool,
    pub superuser: bool,
    pub verified: bool,
    pub password_hash: Option<String>,
    pub uuid: String,
    pub removed_tag_expiration_s: i64,
    pub creation_ms: i64,
    pub invalid_login_attempts: i32,
    pub last_invalid_login_ms: Option<i64>,
    pub last_accessed_ms: Option<i64>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub company: Option<String>,
    pub location: Option<String>,
}

impl From<account::Model> for AccountRow {
    fn from(m: account::Model) -> Self {
        AccountRow {
            id: m.id,
            username: m.username,
            email: m.email,
            organization: m.organization,
            robot: m.robot,
            enabled: m.enabled,
            superuser: m.superuser,
            verified: m.verified,
            password_hash: m.password_hash,
            uuid: m.uuid,
            removed_tag_expiration_s: m.removed_tag_expiration_s,
            creation_ms: m.creation_ms,
            invalid_login_attempts: m.invalid_login_attempts,
            last_invalid_login_ms: m.last_invalid_login_ms,
            last_accessed_ms: m.last_accessed_ms,
            given_name: m.given_name,
            family_name: m.family_name,
            company: m.company,
            location: m.location,
        }
    }
}

/// The result of creating a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateUserOutcome {
    Created(Box<AccountRow>),
    /// A user, organization or robot already has that name.
    NameTaken,
}

/// What kind of account a row is: users, organizations and robots share the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccountKind {
    User,
    Organization,
    Robot,
}

/// A new account row with Quay's defaults (enabled, a fresh uuid, the two-week time machine).
pub(crate) fn new_account(
    username: &str,
    email: Option<String>,
    kind: AccountKind,
    tag_window_s: i64,
) -> account::ActiveModel {
    account::ActiveModel {
        username: Set(username.to_string()),
        email: Set(email),
        organization: Set(kind == AccountKind::Organization),
        robot: Set(kind == AccountKind::Robot),
        enabled: Set(true),
        uuid: Set(uuid::Uuid::new_v4().to_string()),
        removed_tag_expiration_s: Set(tag_window_s),
        creation_ms: Set(now_ms()),
        verified: Set(kind != AccountKind::User),
        ..Default::default()
    }
}

/// Inserts an account; None when an account already has its name.
pub(crate) async fn insert_account(
    conn: &impl sea_orm::ConnectionTrait,
    model: account::ActiveModel,
) -> Result<Option<account::Model>, DbError> {
    match account::Entity::insert(model)
        .exec_with_returning(conn)
        .await
    {
        Ok(row) => Ok(Some(row)),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Db {
    /// Creates a user account unless the name is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<CreateUserOutcome, DbError> {
        let model = account::ActiveModel {
            password_hash: Set(Some(new.password_hash)),
            verified: Set(new.verified),
            superuser: Set(new.superuser),
            ..new_account(
                &new.username,
                Some(new.email),
                AccountKind::User,
                self.default_tag_window_s,
            )
        };
        Ok(match insert_account(&self.write, model).await? {
            Some(row) => CreateUserOutcome::Created(Box::new(row.into())),
            None => CreateUserOutcome::NameTaken,
        })
    }

    /// The account (user, organization or robot) named `username`.
    pub async fn find_account(&self, username: &str) -> Result<Option<AccountRow>, DbError> {
        Ok(account::Entity::find()
            .filter(account::Column::Username.eq(username))
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// The account with primary key `id`.
    pub async fn find_account_by_id(&self, id: i64) -> Result<Option<AccountRow>, DbError> {
        Ok(account::Entity::find_by_id(id)
            .one(&self.read)
            .await?
            .map(Into::into))
    }

    /// How many accounts of any kind exist (users, organizations and robots).
    pub async fn count_accounts(&self) -> Result<u64, DbError> {
        Ok(account::Entity::find().count(&self.read).await?)
    }

    /// How many user accounts exist (organizations and robots excluded).
    pub async fn count_users(&self) -> Result<u64, DbError> {
        Ok(account::Entity::find()
            .filter(account::Column::Organization.eq(false))
            .filter(account::Column::Robot.eq(false))
            .count(&self.read)
            .await?)
    }

    /// Records a failed sign-in (Quay's `invalid_login_attempts` and `last_invalid_login`).
    pub async fn record_failed_login(&self, account_id: i64) -> Result<(), DbError> {
        account::Entity::update_many()
            .col_expr(
                account::Column::InvalidLoginAttempts,
                Expr::col(account::Column::InvalidLoginAttempts).add(Expr::value(1)),
            )
            .col_expr(account::Column::LastInvalidLoginMs, Expr::value(now_ms()))
            .filter(account::Column::Id.eq(account_id))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Clears the failed sign-in count after a successful one.
    pub async fn clear_failed_logins(&self, account_id: i64) -> Result<(), DbError> {
        account::Entity::update_many()
            .col_expr(account::Column::InvalidLoginAttempts, Expr::value(0))
            .filter(account::Column::Id.eq(account_id))
            .filter(account::Column::InvalidLoginAttempts.ne(0))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Creates an organization with its `owners` team (role `admin`) holding `creator`.
    pub async fn create_organization(
        &self,
        name: &str,
        email: Option<&str>,
        creator: i64,
    ) -> Result<CreateUserOutcome, DbError> {
        let tx = self.begin_write().await?;
        let model = new_account(
            name,
            email.map(str::to_string),
            AccountKind::Organization,
            self.default_tag_window_s,
        );
        let Some(org) = insert_account(&tx, model).await? else {
            return Ok(CreateUserOutcome::NameTaken);
        };
        let owners = team::Entity::insert(team::ActiveModel {
            organization_id: Set(org.id),
            name: Set("owners".to_string()),
            role: Set("admin".to_string()),
            description: Set(String::new()),
            ..Default::default()
        })
        .exec_with_returning(&tx)
        .await?;
        team_member::Entity::insert(team_member::ActiveModel {
            team_id: Set(owners.id),
            account_id: Set(creator),
            ..Default::default()
        })
        .exec(&tx)
        .await?;
        tx.commit().await?;
        Ok(CreateUserOutcome::Created(Box::new(org.into())))
    }

    /// The organizations `account_id` belongs to through any team, with the roles of those
    /// teams, by name.
    pub async fn organizations_of(
        &self,
        account_id: i64,
    ) -> Result<Vec<(AccountRow, Vec<String>)>, DbError> {
        let rows: Vec<(i64, String)> = team::Entity::find()
            .select_only()
            .column(team::Column::OrganizationId)
            .column(team::Column::Role)
            .join(JoinType::InnerJoin, crate::access::team_member_team().rev())
            .filter(team_member::Column::AccountId.eq(account_id))
            .into_tuple()
            .all(&self.read)
            .await?;
        let orgs = account::Entity::find()
            .filter(account::Column::Id.is_in(rows.iter().map(|(id, _)| *id)))
            .order_by_asc(account::Column::Username)
            .all(&self.read)
            .await?;
        Ok(orgs
            .into_iter()
            .map(|org| {
                let roles = rows
                    .iter()
                    .filter(|(id, _)| *id == org.id)
                    .map(|(_, role)| role.clone())
                    .collect();
                (org.into(), roles)
            })
            .collect())
    }
}
