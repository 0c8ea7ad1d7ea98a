//! The `tag` table. Tag history: a row per (name, manifest, lifetime); ending a lifetime keeps the row.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tag")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub repository_id: i64,
    pub name: String,
    pub manifest_id: i64,
    pub lifetime_start_ms: i64,
    /// None while the tag lives with no expiry; a past value once it is moved or deleted.
    pub lifetime_end_ms: Option<i64>,
    /// Hidden tags keep manifests pushed by digest alive and never show in listings.
    pub hidden: bool,
    pub reversion: bool,
    pub immutable: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
