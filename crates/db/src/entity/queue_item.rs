//! The `queue_item` table. Leased work items, with Quay's QueueItem semantics.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_item")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub queue_name: String,
    pub body: String,
    pub available_after_ms: i64,
    pub available: bool,
    pub processing_expires_ms: Option<i64>,
    pub retries_remaining: i32,
    pub state_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
