//! The `manifest` table. A manifest stored in one repository, with the exact bytes received.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "manifest")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub repository_id: i64,
    pub digest: String,
    pub media_type: String,
    pub manifest_bytes: Vec<u8>,
    pub config_media_type: Option<String>,
    pub artifact_type: Option<String>,
    /// Digest of the manifest this one refers to (OCI `subject`).
    pub subject: Option<String>,
    pub layers_size: i64,
    pub creation_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
