//! Organizations: creation (with the `owners` team), views, deletion, members, teams and their
//! members, default permissions (prototypes), OAuth applications, and the grant of OAuth
//! access tokens (`POST /oauth/authorizeapp`).

use auth::scope::OAuthScopes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::context::{Ctx, org_admin};
use crate::error::{ApiError, ApiResult};
use crate::views::avatar;

const NAME_RULE: &str = "Namespace must match expression ^([a-z0-9]+(?:[._-][a-z0-9]+)*)$";

/// Lifetime of tokens granted to applications (Quay's ten years).
const APP_TOKEN_SECS: i64 = 315_576_000;

#[derive(Deserialize)]
pub struct NewOrg {
    name: String,
    email: Option<String>,
}

/// `POST /api/v1/organization/` → 201 `"Created"`.
pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Json(body): Json<NewOrg>,
) -> ApiResult {
    let account = ctx.user_admin()?;
    if !types::name::valid_namespace(&body.name) {
        return Err(ApiError::invalid(format!(
            "Invalid namespace {}: {NAME_RULE}",
            body.name
        )));
    }
    let created = state
        .auth
        .db()
        .create_organization(&body.name, body.email.as_deref(), account.id)
        .await?;
    match created {
        db::CreateUserOutcome::Created(_) => {
            Ok((StatusCode::CREATED, Json(json!("Created"))).into_response())
        }
        db::CreateUserOutcome::NameTaken => Err(ApiError::invalid(
            "A user or organization with this name already exists",
        )),
    }
}

async fn org_view(state: &ApiState, ctx: &Ctx, org: &str) -> Result<Value, ApiError> {
    let facts = state.auth.facts(&ctx.identity, org, None).await?;
    let Some(facts) = facts.filter(|f| f.namespace.is_org && f.namespace_row.enabled) else {
        return Err(ApiError::NotFound);
    };
    let policy = &state.auth.settings().policy;
    let is_admin = auth::permissions::can_administer_org(&ctx.caller, &facts.namespace, policy);
    let is_member = auth::permissions::is_org_member(&ctx.caller, &facts.namespace);
    let row = &facts.namespace_row;
    let mut view = json!({
        "name": row.username,
        "email": if is_admin { row.email.clone().unwrap_or_default() } else { String::new() },
        "avatar": avatar(&row.username, row.email.as_deref(), "user"),
        "is_admin": is_admin,
        "is_member": is_member,
    });
    if is_member {
        let teams = state.auth.db().list_teams(row.id).await?;
        let mut map = serde_json::Map::new();
        for t in &teams {
            map.insert(
                t.team.name.clone(),
                team_view(&t.team, t.member_count, t.repo_count),
            );
        }
        view["teams"] = Value::Object(map);
        view["ordered_teams"] = json!(teams.iter().map(|t| &t.team.name).collect::<Vec<_>>());
    }
    if is_admin {
        view["invoice_email"] = json!(false);
        view["invoice_email_address"] = Value::Null;
        view["tag_expiration_s"] = json!(row.removed_tag_expiration_s);
        view["is_free_account"] = json!(true);
    }
    Ok(view)
}

fn team_view(team: &db::TeamRow, members: i64, repos: i64) -> Value {
    json!({
        "name": team.name,
        "description": team.description,
        "role": team.role,
        "avatar": avatar(&team.name, None, "team"),
        "can_view": true,
        "repo_count": repos,
        "member_count": members,
        "is_synced": false,
    })
}

/// `GET /api/v1/organization/<org>`: 404 when there is no such organization.
pub async fn get(State(state): State<ApiState>, ctx: Ctx, Path(org): Path<String>) -> ApiResult {
    Ok(Json(org_view(&state, &ctx, &org).await?).into_response())
}

#[derive(Deserialize)]
pub struct UpdateOrg {
    email: Option<String>,
    tag_expiration_s: Option<i64>,
}

/// `PUT /api/v1/organization/<org>`: e-mail and time-machine window.
pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
    Json(body): Json<UpdateOrg>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let db = state.auth.db();
    if let Some(email) = &body.email {
        db.set_account_email(facts.namespace_row.id, Some(email))
            .await?;
    }
    if let Some(seconds) = state.features.tag_window(body.tag_expiration_s)? {
        db.set_tag_expiration_s(facts.namespace_row.id, seconds)
            .await?;
    }
    Ok(Json(org_view(&state, &ctx, &org).await?).into_response())
}

/// `DELETE /api/v1/organization/<org>`: renames and disables it at once (the name is free
/// again) and queues the purge of its content.
pub async fn delete(State(state): State<ApiState>, ctx: Ctx, Path(org): Path<String>) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    state
        .auth
        .db()
        .mark_namespace_for_deletion(facts.namespace_row.id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/organization/<org>/members`: users in any team, with their teams.
pub async fn members(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let members: Vec<Value> = state
        .auth
        .db()
        .org_members(facts.namespace_row.id)
        .await?
        .into_iter()
        .filter(|m| !m.account.robot)
        .map(|m| {
            json!({
                "name": m.account.username,
                "kind": "user",
                "avatar": avatar(&m.account.username, m.account.email.as_deref(), "user"),
                "teams": m.teams.iter().map(|t| json!({
                    "name": t,
                    "avatar": avatar(t, None, "team"),
                })).collect::<Vec<_>>(),
                "repositories": m.repositories,
            })
        })
        .collect();
    Ok(Json(json!({ "members": members })).into_response())
}

#[derive(Deserialize)]
pub struct TeamDescription {
    role: String,
    description: Option<String>,
}

/// `PUT /api/v1/organization/<org>/team/<team>`: creates or updates a team.
pub async fn put_team(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, team)): Path<(String, String)>,
    Json(body): Json<TeamDescription>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    if auth::permissions::TeamRole::parse(&body.role).is_none() {
        return Err(ApiError::invalid(format!(
            "'{}' is not one of ['member', 'creator', 'admin']",
            body.role
        )));
    }
    if !types::name::valid_namespace(&team) {
        return Err(ApiError::model(format!(
            "Invalid team name {team}: {NAME_RULE}"
        )));
    }
    let (row, created) = state
        .auth
        .db()
        .upsert_team(
            facts.namespace_row.id,
            &team,
            &body.role,
            body.description.as_deref(),
        )
        .await?;
    let mut view = team_view(&row, 0, 0);
    view["new_team"] = json!(created);
    if let Some(v) = view.as_object_mut() {
        v.remove("repo_count");
        v.remove("member_count");
        v.remove("is_synced");
    }
    Ok(Json(view).into_response())
}

async fn find_team(
    state: &ApiState,
    facts: &auth::Facts,
    team: &str,
    missing: impl FnOnce() -> ApiError,
) -> Result<db::TeamRow, ApiError> {
    state
        .auth
        .db()
        .find_team(facts.namespace_row.id, team)
        .await?
        .ok_or_else(missing)
}

/// `DELETE /api/v1/organization/<org>/team/<team>`.
pub async fn delete_team(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let row = find_team(&state, &facts, &team, || {
        ApiError::model(format!("Team '{team}' is not a team in org '{org}'"))
    })
    .await?;
    state.auth.db().delete_team(row.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/organization/<org>/team/<team>/members`.
pub async fn team_members(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let row = find_team(&state, &facts, &team, || ApiError::NotFound).await?;
    let members: Vec<Value> = state
        .auth
        .db()
        .team_members(row.id)
        .await?
        .iter()
        .map(member_view)
        .collect();
    Ok(Json(json!({ "name": row.name, "members": members, "can_edit": true })).into_response())
}

fn member_view(m: &db::AccountRef) -> Value {
    let kind = if m.robot { "robot" } else { "user" };
    json!({
        "name": m.username,
        "kind": "user",
        "is_robot": m.robot,
        "avatar": avatar(&m.username, m.email.as_deref(), kind),
        "invited": false,
    })
}

/// `PUT /api/v1/organization/<org>/team/<team>/members/<member>`: users and robots.
pub async fn add_team_member(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let row = find_team(&state, &facts, &team, || ApiError::NotFound).await?;
    let db = state.auth.db();
    let Some(account) = db.find_account(&member).await?.filter(|a| !a.organization) else {
        return Err(ApiError::invalid("Unknown user"));
    };
    if account.robot && !member.starts_with(&format!("{org}+")) {
        return Err(ApiError::model(
            "Cannot add the specified robot to this team, as it is not a member of the organization",
        ));
    }
    match db.add_team_member(row.id, account.id).await? {
        db::AddTeamMemberOutcome::Added => {}
        db::AddTeamMemberOutcome::AlreadyMember => {
            return Err(ApiError::model(format!(
                "User {member} is already a member of team {team}"
            )));
        }
    }
    let view = member_view(&db::AccountRef {
        id: account.id,
        username: account.username,
        robot: account.robot,
        email: account.email,
    });
    Ok(Json(view).into_response())
}

/// `DELETE /api/v1/organization/<org>/team/<team>/members/<member>`.
pub async fn remove_team_member(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let row = find_team(&state, &facts, &team, || ApiError::NotFound).await?;
    let db = state.auth.db();
    let Some(account) = db.find_account(&member).await? else {
        return Err(ApiError::NotFound);
    };
    if row.role == "admin" && ctx.identity.account_id() == Some(account.id) {
        let admins = db.org_admin_ids(facts.namespace_row.id).await?;
        if admins.iter().filter(|id| **id == account.id).count() <= 1
            && db
                .teams_of_member(facts.namespace_row.id, account.id)
                .await?
                .iter()
                .filter(|t| t.role == "admin")
                .count()
                <= 1
        {
            return Err(ApiError::model(
                "User cannot remove themselves from their only admin team.",
            ));
        }
    }
    if !db.remove_team_member(row.id, account.id).await? {
        return Err(ApiError::model(format!(
            "User {member} does not belong to team {team}"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn prototype_view(p: &db::PrototypeRow, member_ids: &[i64]) -> Value {
    let account_view = |a: &db::AccountRef| {
        json!({
            "name": a.username,
            "is_robot": a.robot,
            "kind": "user",
            "is_org_member": a.robot || member_ids.contains(&a.id),
            "avatar": avatar(&a.username, a.email.as_deref(), if a.robot { "robot" } else { "user" }),
        })
    };
    let delegate = match &p.delegate {
        db::PrototypeDelegate::Account(a) => account_view(a),
        db::PrototypeDelegate::Team { name, .. } => json!({
            "name": name,
            "kind": "team",
            "avatar": avatar(name, None, "team"),
        }),
    };
    json!({
        "activating_user": p.activating.as_ref().map(account_view),
        "delegate": delegate,
        "role": p.role,
        "id": p.uuid,
    })
}

async fn member_ids(state: &ApiState, org_id: i64) -> Result<Vec<i64>, ApiError> {
    Ok(state
        .auth
        .db()
        .org_members(org_id)
        .await?
        .iter()
        .map(|m| m.account.id)
        .collect())
}

/// `GET /api/v1/organization/<org>/prototypes`.
pub async fn prototypes(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let members = member_ids(&state, facts.namespace_row.id).await?;
    let list: Vec<Value> = state
        .auth
        .db()
        .list_prototypes(facts.namespace_row.id)
        .await?
        .iter()
        .map(|p| prototype_view(p, &members))
        .collect();
    Ok(Json(json!({ "prototypes": list })).into_response())
}

#[derive(Deserialize)]
pub struct NamedRef {
    name: String,
    kind: Option<String>,
}

#[derive(Deserialize)]
pub struct NewPrototype {
    role: String,
    delegate: NamedRef,
    activating_user: Option<NamedRef>,
}

fn check_role(role: &str) -> Result<(), ApiError> {
    match auth::permissions::Role::parse(role) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(format!(
            "'{role}' is not one of ['read', 'write', 'admin']"
        ))),
    }
}

/// `POST /api/v1/organization/<org>/prototypes` → 200 with the prototype.
pub async fn create_prototype(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
    Json(body): Json<NewPrototype>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    check_role(&body.role)?;
    let db = state.auth.db();
    let org_id = facts.namespace_row.id;
    let activating = match &body.activating_user {
        None => None,
        Some(user) => match db.find_account(&user.name).await? {
            Some(a) if !a.organization => Some(a.id),
            _ => return Err(ApiError::invalid("Unknown activating user")),
        },
    };
    let delegate = match body.delegate.kind.as_deref() {
        Some("team") => match db.find_team(org_id, &body.delegate.name).await? {
            Some(team) => db::Delegate::Team(team.id),
            None => {
                return Err(ApiError::model(format!(
                    "Team does not exist: {org}/{}",
                    body.delegate.name
                )));
            }
        },
        Some("user") => match db.find_account(&body.delegate.name).await? {
            Some(a) if !a.organization => db::Delegate::Account(a.id),
            _ => return Err(ApiError::invalid("Missing delegate user or team")),
        },
        _ => return Err(ApiError::invalid("'kind' must be 'user' or 'team'")),
    };
    let row = db
        .create_prototype(org_id, activating, delegate, &body.role)
        .await?;
    let members = member_ids(&state, org_id).await?;
    Ok(Json(prototype_view(&row, &members)).into_response())
}

#[derive(Deserialize)]
pub struct PrototypeUpdate {
    role: String,
}

/// `PUT /api/v1/organization/<org>/prototypes/<id>`.
pub async fn update_prototype(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Json(body): Json<PrototypeUpdate>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    check_role(&body.role)?;
    let db = state.auth.db();
    let org_id = facts.namespace_row.id;
    if !db.update_prototype_role(org_id, &id, &body.role).await? {
        return Err(ApiError::NotFound);
    }
    let row = db
        .find_prototype(org_id, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let members = member_ids(&state, org_id).await?;
    Ok(Json(prototype_view(&row, &members)).into_response())
}

/// `DELETE /api/v1/organization/<org>/prototypes/<id>`.
pub async fn delete_prototype(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    if !state
        .auth
        .db()
        .delete_prototype(facts.namespace_row.id, &id)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn application_view(state: &ApiState, app: &db::ApplicationRow) -> Result<Value, ApiError> {
    Ok(json!({
        "name": app.name,
        "description": app.description,
        "application_uri": app.application_uri,
        "client_id": app.client_id,
        "client_secret": state.auth.secret_key().decrypt(&app.client_secret_ciphertext)?,
        "redirect_uri": app.redirect_uri,
        "avatar_email": app.avatar_email,
    }))
}

/// `GET /api/v1/organization/<org>/applications`.
pub async fn applications(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let apps = state
        .auth
        .db()
        .list_applications(facts.namespace_row.id)
        .await?;
    let views = apps
        .iter()
        .map(|a| application_view(&state, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "applications": views })).into_response())
}

#[derive(Deserialize)]
pub struct NewApplication {
    name: String,
    redirect_uri: Option<String>,
    application_uri: Option<String>,
    description: Option<String>,
    avatar_email: Option<String>,
}

/// `POST /api/v1/organization/<org>/applications` → 200 with the client id and secret.
pub async fn create_application(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(org): Path<String>,
    Json(body): Json<NewApplication>,
) -> ApiResult {
    let facts = org_admin(&state, &ctx, &org).await?;
    let app = state
        .auth
        .db()
        .create_application(db::NewApplication {
            organization_id: facts.namespace_row.id,
            client_id: auth::crypto::generate_oauth_client_id(),
            client_secret_ciphertext: state
                .auth
                .secret_key()
                .encrypt(&auth::crypto::generate_oauth_client_secret())?,
            name: body.name,
            description: body.description.unwrap_or_default(),
            redirect_uri: body.redirect_uri.unwrap_or_default(),
            application_uri: body.application_uri.unwrap_or_default(),
            avatar_email: body.avatar_email,
        })
        .await?;
    Ok(Json(application_view(&state, &app)?).into_response())
}

/// Makes an OAuth access token for `account` through `application`; returns the token.
pub(crate) async fn mint_access_token(
    state: &ApiState,
    application_id: i64,
    account_id: i64,
    scopes: OAuthScopes,
    lifetime_secs: Option<i64>,
) -> Result<String, ApiError> {
    let token = auth::crypto::OAUTH_ACCESS_TOKEN.generate();
    let split = auth::crypto::OAUTH_ACCESS_TOKEN
        .split(&token)
        .ok_or_else(|| ApiError::Internal("generated token does not split".into()))?;
    state
        .auth
        .db()
        .create_access_token(db::NewAccessToken {
            application_id,
            account_id,
            scope: scopes.to_string(),
            token_name: split.lookup,
            token_code_hash: auth::crypto::hash_secret(&split.secret),
            expires_ms: lifetime_secs.map(|s| db::now_ms() + s * 1000),
        })
        .await?;
    Ok(token)
}

#[derive(Deserialize)]
pub struct AuthorizeApp {
    client_id: String,
    redirect_uri: String,
    scope: String,
}

/// `POST /oauth/authorizeapp` (a form post, as Quay's "generate token" page makes): grants
/// the signed-in user's token for an application with the chosen scopes and redirects to
/// `redirect_uri#access_token=…&token_type=Bearer&expires_in=…`.
///
/// The caller signs in with Basic credentials. Because a browser could replay those, the
/// request must also carry `X-Requested-With` (which cross-site forms cannot send) unless the
/// client id is in `DIRECT_OAUTH_CLIENTID_WHITELIST`.
pub async fn authorize_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<AuthorizeApp>,
) -> ApiResult {
    let account = ctx.account()?;
    if account.robot || ctx.identity.scopes.is_some() {
        return Err(ctx.unauthorized());
    }
    let whitelisted = state
        .auth
        .settings()
        .oauth_direct_clients
        .contains(&form.client_id);
    if !whitelisted && !headers.contains_key("x-requested-with") {
        return Err(ApiError::Plain(
            StatusCode::FORBIDDEN,
            "CSRF token was invalid or missing.".into(),
        ));
    }
    let Some(app) = state.auth.db().find_application(&form.client_id).await? else {
        return Err(ApiError::Plain(
            StatusCode::BAD_REQUEST,
            "unauthorized_client".into(),
        ));
    };
    let local = format!("{}/oauth/localapp", ctx.app_url(&state));
    let redirect_ok = form.redirect_uri == local
        || (!app.redirect_uri.is_empty() && form.redirect_uri.starts_with(&app.redirect_uri));
    if !redirect_ok {
        return Err(ApiError::Plain(
            StatusCode::BAD_REQUEST,
            "invalid redirect_uri".into(),
        ));
    }
    let Ok(scopes) = OAuthScopes::parse(&form.scope) else {
        return Ok(redirect(&format!(
            "{}?error=invalid_scope",
            form.redirect_uri
        )));
    };
    if scopes.is_empty() {
        return Ok(redirect(&format!(
            "{}?error=invalid_scope",
            form.redirect_uri
        )));
    }
    let token = mint_access_token(&state, app.id, account.id, scopes, Some(APP_TOKEN_SECS)).await?;
    Ok(redirect(&format!(
        "{}?scope={}#access_token={token}&token_type=Bearer&expires_in={APP_TOKEN_SECS}",
        form.redirect_uri,
        scopes.to_string().replace(' ', "+"),
    )))
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}
