//! User accounts: creation with a password hash and lookups by name. Organizations and robots
//! share the `account` table and its namespace of names.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};

use crate::entity::account;
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
    pub password_hash: Option<String>,
    pub uuid: String,
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
            password_hash: m.password_hash,
            uuid: m.uuid,
        }
    }
}

/// The result of creating a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateUserOutcome {
    Created(AccountRow),
    /// A user, organization or robot already has that name.
    NameTaken,
}

impl Db {
    /// Creates a user account unless the name is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<CreateUserOutcome, DbError> {
        let inserted = account::Entity::insert(account::ActiveModel {
            username: Set(new.username),
            email: Set(Some(new.email)),
            organization: Set(false),
            robot: Set(false),
            enabled: Set(true),
            uuid: Set(uuid::Uuid::new_v4().to_string()),
            removed_tag_expiration_s: Set(1_209_600),
            creation_ms: Set(now_ms()),
            password_hash: Set(Some(new.password_hash)),
            verified: Set(new.verified),
            superuser: Set(new.superuser),
            ..Default::default()
        })
        .exec_with_returning(&self.write)
        .await;
        match inserted {
            Ok(model) => Ok(CreateUserOutcome::Created(model.into())),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(CreateUserOutcome::NameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The account (user, organization or robot) named `username`.
    pub async fn find_account(&self, username: &str) -> Result<Option<AccountRow>, DbError> {
        Ok(account::Entity::find()
            .filter(account::Column::Username.eq(username))
            .one(&self.read)
            .await?
            .map(Into::into))
    }
}
