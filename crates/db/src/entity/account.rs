//! The `account` table. Users, organizations and robots share one namespace of names, as in Quay.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub organization: bool,
    pub robot: bool,
    pub enabled: bool,
    pub uuid: String,
    /// How long dead tags stay restorable (the time machine), in seconds.
    pub removed_tag_expiration_s: i64,
    pub creation_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
