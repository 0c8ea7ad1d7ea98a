//! The `oauth_application` table. An OAuth client registered by an organization.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_application")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    pub client_id: String,
    pub client_secret_ciphertext: String,
    pub name: String,
    pub description: String,
    pub redirect_uri: String,
    pub application_uri: String,
    pub avatar_email: Option<String>,
    pub creation_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
