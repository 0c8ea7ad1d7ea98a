//! The `blob_upload` table. An in-progress upload session with its resumable hash state.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "blob_upload")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub uuid: String,
    pub repository_id: i64,
    pub location_id: i64,
    pub byte_count: i64,
    pub hash_state: Vec<u8>,
    /// Driver state (JSON) of the storage upload, e.g. multipart ids.
    pub storage_state: String,
    pub chunk_count: i32,
    pub creation_ms: i64,
    pub updated_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
