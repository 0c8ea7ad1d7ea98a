//! The `blob` table. One row per distinct blob digest; `storage_key` names the object that holds its bytes.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "blob")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub digest: String,
    pub size: i64,
    pub storage_key: String,
    pub creation_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
