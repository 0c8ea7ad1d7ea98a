//! The `oauth_access_token` table. A bearer token: `token_name` is the lookup half, the secret half is stored hashed.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_access_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub uuid: String,
    pub application_id: i64,
    pub account_id: i64,
    pub scope: String,
    pub token_name: String,
    pub token_code_hash: String,
    pub expires_ms: Option<i64>,
    pub creation_ms: i64,
    pub last_accessed_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
