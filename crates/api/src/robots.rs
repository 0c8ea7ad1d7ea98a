//! Robot accounts of users (`/user/robots`) and organizations (`/organization/<org>/robots`).
//! Names are `owner+short`; tokens are 64 characters of `[A-Z0-9]`, stored encrypted. Quay
//! answers a missing robot with 400 `{"message": "Could not find robot with specified
//! username"}`, and the Quay Bridge Operator relies on exactly that to decide to create one.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::context::{Ctx, org_admin};
use crate::error::{ApiError, ApiResult};
use crate::views::format_date;

const MISSING: &str = "Could not find robot with specified username";

#[derive(Deserialize, Default)]
pub struct ListQuery {
    token: Option<String>,
    permissions: Option<String>,
    limit: Option<usize>,
}

fn truthy(v: &Option<String>, default: bool) -> bool {
    match v.as_deref() {
        None => default,
        Some(v) => matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"),
    }
}

#[derive(Deserialize, Default)]
pub struct CreateRobot {
    description: Option<String>,
    unstructured_metadata: Option<Value>,
}

/// The owner of the robots an endpoint addresses, once the caller may manage them.
struct Owner {
    id: i64,
    name: String,
}

async fn user_owner(ctx: &Ctx) -> Result<Owner, ApiError> {
    let account = ctx.user_admin()?;
    Ok(Owner {
        id: account.id,
        name: account.username.clone(),
    })
}

async fn org_owner(state: &ApiState, ctx: &Ctx, org: &str) -> Result<Owner, ApiError> {
    let facts = org_admin(state, ctx, org).await?;
    Ok(Owner {
        id: facts.namespace_row.id,
        name: facts.namespace_row.username,
    })
}

fn robot_view(
    state: &ApiState,
    robot: &db::RobotRow,
    token: bool,
    metadata: bool,
) -> Result<Value, ApiError> {
    let mut view = json!({
        "name": robot.name,
        "created": format_date(robot.creation_ms),
        "last_accessed": robot.last_accessed_ms.map(format_date),
        "description": robot.description,
    });
    if token {
        view["token"] = json!(state.auth.secret_key().decrypt(&robot.token_ciphertext)?);
    }
    if metadata {
        view["unstructured_metadata"] =
            serde_json::from_str(&robot.unstructured_json).unwrap_or_else(|_| json!({}));
    }
    Ok(view)
}

async fn find(state: &ApiState, owner: &Owner, short: &str) -> Result<db::RobotRow, ApiError> {
    state
        .auth
        .db()
        .find_robot(&format!("{}+{short}", owner.name))
        .await?
        .filter(|r| r.owner_id == owner.id)
        .ok_or_else(|| ApiError::model(MISSING))
}

async fn list(state: &ApiState, owner: Owner, query: ListQuery, admin: bool) -> ApiResult {
    let db = state.auth.db();
    let with_token = admin && truthy(&query.token, true);
    let with_permissions = admin && truthy(&query.permissions, false);
    let mut robots = Vec::new();
    for robot in db.list_robots(owner.id).await? {
        let mut view = robot_view(state, &robot, with_token, false)?;
        if with_permissions {
            let grants = db.account_grants(robot.account_id).await?;
            view["repositories"] = json!(grants.iter().map(|g| &g.repository).collect::<Vec<_>>());
            view["teams"] = json!([]);
        }
        robots.push(view);
        if query.limit.is_some_and(|l| robots.len() >= l) {
            break;
        }
    }
    Ok(Json(json!({ "robots": robots })).into_response())
}

async fn create(
    state: &ApiState,
    owner: Owner,
    short: &str,
    body: Option<Json<CreateRobot>>,
) -> ApiResult {
    if !types::name::valid_namespace(short) {
        return Err(ApiError::model(format!(
            "The name for the robot '{short}' is invalid: Namespace must match expression \
             ^([a-z0-9]+(?:[._-][a-z0-9]+)*)$"
        )));
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let description = body.description.unwrap_or_default();
    if description.chars().count() > 255 {
        return Err(ApiError::invalid(
            "description is longer than 255 characters",
        ));
    }
    let name = format!("{}+{short}", owner.name);
    let token = auth::crypto::generate_robot_token();
    let created = state
        .auth
        .db()
        .create_robot(db::NewRobot {
            owner_id: owner.id,
            name: name.clone(),
            token_ciphertext: state.auth.secret_key().encrypt(&token)?,
            description,
            unstructured_json: body
                .unstructured_metadata
                .unwrap_or_else(|| json!({}))
                .to_string(),
        })
        .await?;
    match created {
        db::CreateRobotOutcome::Created(robot) => Ok((
            StatusCode::CREATED,
            Json(robot_view(state, &robot, true, true)?),
        )
            .into_response()),
        db::CreateRobotOutcome::NameTaken => {
            Err(ApiError::model(format!("Existing robot with name: {name}")))
        }
    }
}

async fn delete(state: &ApiState, owner: Owner, short: &str) -> ApiResult {
    let robot = find(state, &owner, short).await?;
    state.auth.db().delete_robot(robot.account_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn regenerate(state: &ApiState, owner: Owner, short: &str) -> ApiResult {
    let robot = find(state, &owner, short).await?;
    let token = auth::crypto::generate_robot_token();
    let ciphertext = state.auth.secret_key().encrypt(&token)?;
    state
        .auth
        .db()
        .set_robot_token(robot.account_id, &ciphertext)
        .await?;
    let robot = find(state, &owner, short).await?;
    Ok(Json(robot_view(state, &robot, true, false)?).into_response())
}

async fn permissions(state: &ApiState, owner: Owner, short: &str) -> ApiResult {
    let robot = find(state, &owner, short).await?;
    let grants = state.auth.db().account_grants(robot.account_id).await?;
    let permissions: Vec<Value> = grants
        .iter()
        .map(|g| {
            json!({
                "repository": {
                    "name": g.repository,
                    "is_public": g.visibility == "public",
                },
                "role": g.role,
            })
        })
        .collect();
    Ok(Json(json!({ "permissions": permissions })).into_response())
}

pub async fn list_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    list(&state, owner, query, true).await
}

pub async fn get_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(short): Path<String>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    let robot = find(&state, &owner, &short).await?;
    Ok(Json(robot_view(&state, &robot, true, true)?).into_response())
}

pub async fn create_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(short): Path<String>,
    body: Option<Json<CreateRobot>>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    create(&state, owner, &short, body).await
}

pub async fn delete_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(short): Path<String>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    delete(&state, owner, &short).await
}

pub async fn regenerate_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(short): Path<String>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    regenerate(&state, owner, &short).await
}

pub async fn permissions_user(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(short): Path<String>,
) -> ApiResult {
    let owner = user_owner(&ctx).await?;
    permissions(&state, owner, &short).await
}

/// Members see the organization's robots; only admins see tokens and permissions.
pub async fn list_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let facts = state.auth.facts(&ctx.identity, &org, None).await?;
    let policy = &state.auth.settings().policy;
    let Some(facts) = facts.filter(|f| {
        f.namespace.is_org && auth::permissions::is_org_member(&ctx.caller, &f.namespace)
    }) else {
        return Err(ctx.unauthorized());
    };
    let admin = auth::permissions::can_administer_org(&ctx.caller, &facts.namespace, policy);
    let owner = Owner {
        id: facts.namespace_row.id,
        name: facts.namespace_row.username,
    };
    list(&state, owner, query, admin).await
}

pub async fn get_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult {
    let owner = org_owner(&state, &ctx, &org).await?;
    let robot = find(&state, &owner, &short).await?;
    Ok(Json(robot_view(&state, &robot, true, true)?).into_response())
}

pub async fn create_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, short)): Path<(String, String)>,
    body: Option<Json<CreateRobot>>,
) -> ApiResult {
    let owner = org_owner(&state, &ctx, &org).await?;
    create(&state, owner, &short, body).await
}

pub async fn delete_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult {
    let owner = org_owner(&state, &ctx, &org).await?;
    delete(&state, owner, &short).await
}

pub async fn regenerate_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult {
    let owner = org_owner(&state, &ctx, &org).await?;
    regenerate(&state, owner, &short).await
}

pub async fn permissions_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult {
    let owner = org_owner(&state, &ctx, &org).await?;
    permissions(&state, owner, &short).await
}
