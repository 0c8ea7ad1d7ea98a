//! The `repository` table. A repository inside a namespace.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repository")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub namespace_id: i64,
    pub name: String,
    /// `public` or `private`.
    pub visibility: String,
    /// 0 NORMAL, 1 READ_ONLY, 2 MIRROR, 3 MARKED_FOR_DELETION (Quay's numbering).
    pub state: i32,
    pub kind: String,
    pub description: Option<String>,
    pub creation_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
