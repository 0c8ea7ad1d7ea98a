//! The `blob_placement` table. Which storage locations hold a blob's bytes.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "blob_placement")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub blob_id: i64,
    pub location_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
