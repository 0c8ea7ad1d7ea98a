//! The `account` table. Users, organizations and robots share one namespace of names, as in Quay.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub organization: bool,
    pub robot: bool,
    pub enabled: bool,
    pub uuid: String,
    /// How long dead tags stay restorable (the time machine), in seconds.
    pub removed_tag_expiration_s: i64,
    pub creation_ms: i64,
    /// bcrypt hash (`$2b$…`, as Quay stores it); None for organizations and robots.
    pub password_hash: Option<String>,
    pub verified: bool,
    pub superuser: bool,
    pub invalid_login_attempts: i32,
    pub last_invalid_login_ms: Option<i64>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub company: Option<String>,
    pub location: Option<String>,
    pub last_accessed_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
