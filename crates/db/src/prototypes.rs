//! An organization's default permissions (Quay's permission prototypes): the role a user, robot
//! or team gets on every repository created in the organization, optionally only on those
//! created by one activating user. `create_repository` applies them.

use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult,
    JoinType, QueryFilter, QueryOrder, QuerySelect, RelationDef,
};

use crate::entity::{account, permission_prototype, team};
use crate::{AccountRef, Db, DbError, Delegate};

/// Whom a default permission is for, with what views show of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrototypeDelegate {
    Account(AccountRef),
    Team { id: i64, name: String },
}

impl PrototypeDelegate {
    /// The delegate's id, as `set_repository_permission` takes it.
    pub fn delegate(&self) -> Delegate {
        match self {
            PrototypeDelegate::Account(a) => Delegate::Account(a.id),
            PrototypeDelegate::Team { id, .. } => Delegate::Team(*id),
        }
    }
}

/// A default permission with the accounts and team it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrototypeRow {
    pub id: i64,
    /// The public id (Quay's `PermissionPrototype.uuid`).
    pub uuid: String,
    pub organization_id: i64,
    /// Only repositories created by this user or robot get the permission; None: any creator.
    pub activating: Option<AccountRef>,
    pub delegate: PrototypeDelegate,
    /// `read`, `write` or `admin`.
    pub role: String,
}

/// One prototype joined with its activating account (alias `act`), delegate account (alias
/// `del`) and delegate team.
#[derive(Debug, FromQueryResult)]
struct Joined {
    id: i64,
    uuid: String,
    organization_id: i64,
    role: String,
    activating_id: Option<i64>,
    activating_name: Option<String>,
    activating_robot: Option<bool>,
    activating_email: Option<String>,
    delegate_account_id: Option<i64>,
    delegate_account_name: Option<String>,
    delegate_account_robot: Option<bool>,
    delegate_account_email: Option<String>,
    delegate_team_id: Option<i64>,
    delegate_team_name: Option<String>,
}

impl Joined {
    /// None when a named row is missing, which the foreign keys rule out.
    fn into_row(self) -> Option<PrototypeRow> {
        let activating = match self.activating_id {
            Some(id) => Some(AccountRef {
                id,
                username: self.activating_name?,
                robot: self.activating_robot?,
                email: self.activating_email,
            }),
            None => None,
        };
        let delegate = match (self.delegate_account_id, self.delegate_team_id) {
            (Some(id), _) => PrototypeDelegate::Account(AccountRef {
                id,
                username: self.delegate_account_name?,
                robot: self.delegate_account_robot?,
                email: self.delegate_account_email,
            }),
            (None, Some(id)) => PrototypeDelegate::Team {
                id,
                name: self.delegate_team_name?,
            },
            (None, None) => return None,
        };
        Some(PrototypeRow {
            id: self.id,
            uuid: self.uuid,
            organization_id: self.organization_id,
            activating,
            delegate,
            role: self.role,
        })
    }
}

fn to_account(column: permission_prototype::Column) -> RelationDef {
    permission_prototype::Entity::belongs_to(account::Entity)
        .from(column)
        .to(account::Column::Id)
        .into()
}

/// The organization's prototypes matching `filter`, in id order.
async fn prototypes<C: ConnectionTrait>(
    conn: &C,
    org_id: i64,
    filter: Condition,
) -> Result<Vec<PrototypeRow>, DbError> {
    use permission_prototype::Column as P;
    let (act, del) = (Alias::new("act"), Alias::new("del"));
    let joined = permission_prototype::Entity::find()
        .select_only()
        .column(P::Id)
        .column(P::Uuid)
        .column(P::OrganizationId)
        .column(P::Role)
        .column_as(
            Expr::col((act.clone(), account::Column::Id)),
            "activating_id",
        )
        .column_as(
            Expr::col((act.clone(), account::Column::Username)),
            "activating_name",
        )
        .column_as(
            Expr::col((act.clone(), account::Column::Robot)),
            "activating_robot",
        )
        .column_as(
            Expr::col((act.clone(), account::Column::Email)),
            "activating_email",
        )
        .column(P::DelegateAccountId)
        .column_as(
            Expr::col((del.clone(), account::Column::Username)),
            "delegate_account_name",
        )
        .column_as(
            Expr::col((del.clone(), account::Column::Robot)),
            "delegate_account_robot",
        )
        .column_as(
            Expr::col((del.clone(), account::Column::Email)),
            "delegate_account_email",
        )
        .column(P::DelegateTeamId)
        .column_as(team::Column::Name, "delegate_team_name")
        .join_as(JoinType::LeftJoin, to_account(P::ActivatingAccountId), act)
        .join_as(JoinType::LeftJoin, to_account(P::DelegateAccountId), del)
        .join(
            JoinType::LeftJoin,
            permission_prototype::Entity::belongs_to(team::Entity)
                .from(P::DelegateTeamId)
                .to(team::Column::Id)
                .into(),
        )
        .filter(P::OrganizationId.eq(org_id))
        .filter(filter)
        .order_by_asc(P::Id)
        .into_model::<Joined>()
        .all(conn)
        .await?;
    joined
        .into_iter()
        .map(|j| {
            let id = j.id;
            j.into_row().ok_or_else(|| {
                DbError::Invariant(format!("permission prototype {id} names a missing row"))
            })
        })
        .collect()
}

impl Db {
    /// The organization's default permissions, in creation order.
    pub async fn list_prototypes(&self, org_id: i64) -> Result<Vec<PrototypeRow>, DbError> {
        prototypes(&self.read, org_id, Condition::all()).await
    }

    /// Adds a default permission with a fresh uuid.
    pub async fn create_prototype(
        &self,
        org_id: i64,
        activating: Option<i64>,
        delegate: Delegate,
        role: &str,
    ) -> Result<PrototypeRow, DbError> {
        let (delegate_account, delegate_team) = match delegate {
            Delegate::Account(id) => (Some(id), None),
            Delegate::Team(id) => (None, Some(id)),
        };
        let uuid = uuid::Uuid::new_v4().to_string();
        let tx = self.begin_write().await?;
        permission_prototype::Entity::insert(permission_prototype::ActiveModel {
            uuid: Set(uuid.clone()),
            organization_id: Set(org_id),
            activating_account_id: Set(activating),
            delegate_account_id: Set(delegate_account),
            delegate_team_id: Set(delegate_team),
            role: Set(role.to_string()),
            ..Default::default()
        })
        .exec(&tx)
        .await?;
        let row = prototypes(
            &tx,
            org_id,
            Condition::all().add(permission_prototype::Column::Uuid.eq(&uuid)),
        )
        .await?
        .pop()
        .ok_or_else(|| DbError::Invariant(format!("permission prototype {uuid} vanished")))?;
        tx.commit().await?;
        Ok(row)
    }

    /// The organization's default permission with public id `uuid`.
    pub async fn find_prototype(
        &self,
        org_id: i64,
        uuid: &str,
    ) -> Result<Option<PrototypeRow>, DbError> {
        Ok(prototypes(
            &self.read,
            org_id,
            Condition::all().add(permission_prototype::Column::Uuid.eq(uuid)),
        )
        .await?
        .pop())
    }

    /// Changes the role of a default permission; false when the organization has no such one.
    pub async fn update_prototype_role(
        &self,
        org_id: i64,
        uuid: &str,
        role: &str,
    ) -> Result<bool, DbError> {
        Ok(permission_prototype::Entity::update_many()
            .col_expr(permission_prototype::Column::Role, Expr::value(role))
            .filter(permission_prototype::Column::OrganizationId.eq(org_id))
            .filter(permission_prototype::Column::Uuid.eq(uuid))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }

    /// Deletes a default permission; false when the organization has no such one.
    pub async fn delete_prototype(&self, org_id: i64, uuid: &str) -> Result<bool, DbError> {
        Ok(permission_prototype::Entity::delete_many()
            .filter(permission_prototype::Column::OrganizationId.eq(org_id))
            .filter(permission_prototype::Column::Uuid.eq(uuid))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }
}
