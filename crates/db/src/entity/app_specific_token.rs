//! The `app_specific_token` table. A per-user CLI password, split like OAuth tokens.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "app_specific_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub uuid: String,
    pub account_id: i64,
    pub title: String,
    pub token_name: String,
    pub token_secret_hash: String,
    pub expiration_ms: Option<i64>,
    pub creation_ms: i64,
    pub last_accessed_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
