//! `/api/v1/repository/<repo>/permissions/{user,team}/…`: the explicit permissions of users,
//! robots and teams on a repository (Quay's `endpoints/api/permission.py`). Every endpoint
//! needs admin on the repository. Roles a user holds through a team or as a namespace admin
//! are not listed here: these are the rows an admin can change.

use std::collections::HashSet;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use db::{Delegate, PermissionRow};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::repo_request::{Access, Call, role_body};
use crate::views::avatar;

/// Ids of the accounts in any team of the namespace when it is an organization, for Quay's
/// `is_org_member` (robots always count as members).
async fn org_members(call: &Call<'_>, access: &Access) -> Result<Option<HashSet<i64>>, ApiError> {
    let ns = &access.facts.namespace_row;
    if !ns.organization {
        return Ok(None);
    }
    let members = call.db().org_members(ns.id).await?;
    Ok(Some(members.into_iter().map(|m| m.account.id).collect()))
}

/// `{"role","name","is_robot","avatar"}`, plus `is_org_member` in an organization.
async fn user_view(
    call: &Call<'_>,
    row: &PermissionRow,
    members: Option<&HashSet<i64>>,
) -> Result<Value, ApiError> {
    let Delegate::Account(id) = row.delegate else {
        return Err(ApiError::Internal(
            "a team row where a user was expected".into(),
        ));
    };
    let email = call
        .db()
        .find_account_by_id(id)
        .await?
        .and_then(|a| a.email);
    let kind = if row.is_robot { "robot" } else { "user" };
    let mut view = json!({
        "role": row.role,
        "name": row.name,
        "is_robot": row.is_robot,
        "avatar": avatar(&row.name, email.as_deref(), kind),
    });
    if let Some(members) = members {
        view["is_org_member"] = json!(row.is_robot || members.contains(&id));
    }
    Ok(view)
}

fn team_view(row: &PermissionRow) -> Value {
    json!({
        "role": row.role,
        "name": row.name,
        "avatar": avatar(&row.name, None, "team"),
    })
}

async fn rows(
    call: &Call<'_>,
    access: &Access,
    teams: bool,
) -> Result<Vec<PermissionRow>, ApiError> {
    let all = call.db().repository_permissions(access.repo.id).await?;
    Ok(all
        .into_iter()
        .filter(|r| matches!(r.delegate, Delegate::Team(_)) == teams)
        .collect())
}

/// `GET …/permissions/user/` → `{"permissions": {name: view}}`.
pub async fn list_users(call: &Call<'_>) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let members = org_members(call, &access).await?;
    let mut permissions = Map::new();
    for row in rows(call, &access, false).await? {
        let view = user_view(call, &row, members.as_ref()).await?;
        permissions.insert(row.name.clone(), view);
    }
    Ok(Json(json!({ "permissions": permissions })).into_response())
}

/// `GET …/permissions/user/<who>`; 400 `{"message"}` when it holds none.
pub async fn get_user(call: &Call<'_>, who: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let row = rows(call, &access, false)
        .await?
        .into_iter()
        .find(|r| r.name == who)
        .ok_or_else(|| ApiError::model("User does not have permission for repo."))?;
    let members = org_members(call, &access).await?;
    Ok(Json(user_view(call, &row, members.as_ref()).await?).into_response())
}

/// `PUT …/permissions/user/<who>` `{role}`: creates or changes the permission of a user or of
/// a robot of the repository's namespace.
pub async fn put_user(call: &Call<'_>, who: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let role = role_body(call)?;
    if who == call.namespace {
        return Err(ApiError::invalid("Namespace owner must always be admin."));
    }
    let account = call
        .db()
        .find_account(who)
        .await?
        .filter(|a| !a.organization)
        .ok_or_else(|| ApiError::invalid(format!("Invalid username: {who}")))?;
    if account.robot {
        let Some((owner, _)) = who.split_once('+') else {
            return Err(ApiError::invalid(format!("Invalid robot: {who}")));
        };
        if owner != call.namespace {
            return Err(ApiError::invalid(format!(
                "Cannot add robot {who} under namespace {}",
                call.namespace
            )));
        }
    }
    let delegate = Delegate::Account(account.id);
    call.db()
        .set_repository_permission(access.repo.id, delegate, role.as_str())
        .await?;
    let row = PermissionRow {
        delegate,
        name: account.username.clone(),
        role: role.as_str().to_string(),
        is_robot: account.robot,
    };
    let members = org_members(call, &access).await?;
    Ok(Json(user_view(call, &row, members.as_ref()).await?).into_response())
}

/// `DELETE …/permissions/user/<who>` → 204.
pub async fn delete_user(call: &Call<'_>, who: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    if who == call.namespace {
        return Err(ApiError::invalid("Namespace owner must always be admin."));
    }
    let missing = || ApiError::invalid("User does not have permission for repo.");
    let account = call.db().find_account(who).await?.ok_or_else(missing)?;
    let removed = call
        .db()
        .delete_repository_permission(access.repo.id, Delegate::Account(account.id))
        .await?;
    if !removed {
        return Err(missing());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/permissions/team/` → `{"permissions": {team: view}}`.
pub async fn list_teams(call: &Call<'_>) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let permissions: Map<String, Value> = rows(call, &access, true)
        .await?
        .iter()
        .map(|row| (row.name.clone(), team_view(row)))
        .collect();
    Ok(Json(json!({ "permissions": permissions })).into_response())
}

/// `GET …/permissions/team/<team>` → `{"role"}`; 400 `{"message"}` when it holds none.
pub async fn get_team(call: &Call<'_>, team: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let row = rows(call, &access, true)
        .await?
        .into_iter()
        .find(|r| r.name == team)
        .ok_or_else(|| ApiError::model("Team does not have permission for repo."))?;
    Ok(Json(json!({ "role": row.role })).into_response())
}

/// The team `name` of the repository's organization.
async fn find_team(
    call: &Call<'_>,
    access: &Access,
    name: &str,
) -> Result<Option<db::TeamRow>, ApiError> {
    let ns = &access.facts.namespace_row;
    if !ns.organization {
        return Ok(None);
    }
    Ok(call.db().find_team(ns.id, name).await?)
}

/// `PUT …/permissions/team/<team>` `{role}` → the team's view.
pub async fn put_team(call: &Call<'_>, team: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let role = role_body(call)?;
    let found = find_team(call, &access, team).await?.ok_or_else(|| {
        ApiError::invalid(format!("No team {team} in organization {}", call.namespace))
    })?;
    let delegate = Delegate::Team(found.id);
    call.db()
        .set_repository_permission(access.repo.id, delegate, role.as_str())
        .await?;
    let row = PermissionRow {
        delegate,
        name: found.name,
        role: role.as_str().to_string(),
        is_robot: false,
    };
    Ok(Json(team_view(&row)).into_response())
}

/// `DELETE …/permissions/team/<team>` → 204.
pub async fn delete_team(call: &Call<'_>, team: &str) -> ApiResult {
    let access = call.access(auth::permissions::Role::Admin).await?;
    let missing = || ApiError::invalid("Team does not have permission for repo.");
    let found = find_team(call, &access, team).await?.ok_or_else(missing)?;
    let removed = call
        .db()
        .delete_repository_permission(access.repo.id, Delegate::Team(found.id))
        .await?;
    if !removed {
        return Err(missing());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
