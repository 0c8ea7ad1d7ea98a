//! The `service_key` table. A public JWK that verifies registry tokens, with the encrypted private key when this installation signs with it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_key")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kid: String,
    pub service: String,
    pub jwk: String,
    pub private_key_ciphertext: Option<String>,
    pub creation_ms: i64,
    pub expiration_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
