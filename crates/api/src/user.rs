//! The signed-in user, first-user initialization, public user information, and the discovery
//! documents (`/api/v1/discovery`, `/.well-known/app-capabilities`).

use auth::scope::OAuthScopes;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::views::avatar;

/// Lifetime of the token `user/initialize` returns (Quay's 9000 s).
const INITIALIZE_TOKEN_SECS: i64 = 9000;

/// `GET /api/v1/user/`: the caller's account, organizations and rights.
pub async fn current(State(state): State<ApiState>, ctx: Ctx) -> ApiResult {
    let Some(account) = ctx.identity.account.as_ref().filter(|a| !a.robot) else {
        return Err(ApiError::Unauthorized { anonymous: true });
    };
    if !ctx.has_scope(OAuthScopes::USER_READ) {
        return Err(ApiError::Unauthorized { anonymous: true });
    }
    let db = state.auth.db();
    let mut view = json!({
        "anonymous": false,
        "username": account.username,
        "avatar": avatar(&account.username, account.email.as_deref(), "user"),
    });
    let user_admin = ctx.has_scope(OAuthScopes::USER_ADMIN);
    let policy = &state.auth.settings().policy;
    let mut organizations = Vec::new();
    for (org, _) in db.organizations_of(account.id).await? {
        let facts = state.auth.facts(&ctx.identity, &org.username, None).await?;
        let (can_create, is_admin) = facts.map_or((false, false), |f| {
            (
                auth::permissions::can_create_repository(&ctx.caller, &f.namespace, policy),
                auth::permissions::can_administer_org(&ctx.caller, &f.namespace, policy),
            )
        });
        let mut entry = json!({
            "name": org.username,
            "avatar": avatar(&org.username, org.email.as_deref(), "org"),
            "can_create_repo": can_create,
            "public": false,
        });
        if user_admin {
            entry["is_org_admin"] = json!(is_admin);
            entry["preferred_namespace"] = json!(false);
        }
        organizations.push(entry);
    }
    view["organizations"] = json!(organizations);
    if user_admin {
        let prompts = db.user_prompts(account.id).await?;
        let extra = json!({
            "can_create_repo": true,
            "is_me": true,
            "verified": account.verified,
            "email": account.email,
            "logins": [],
            "invoice_email": false,
            "invoice_email_address": null,
            "preferred_namespace": false,
            "tag_expiration_s": account.removed_tag_expiration_s,
            "prompts": prompts,
            "company": account.company,
            "family_name": account.family_name,
            "given_name": account.given_name,
            "location": account.location,
            "is_free_account": true,
            "has_password_set": account.password_hash.is_some(),
        });
        if let (Some(view), Some(extra)) = (view.as_object_mut(), extra.as_object()) {
            view.extend(extra.clone());
        }
    }
    if let auth::permissions::Principal::User {
        superuser,
        global_readonly,
    } = ctx.caller.principal
    {
        if state.auth.settings().superusers_enabled {
            view["super_user"] = json!(superuser);
        }
        view["global_readonly_super_user"] = json!(global_readonly);
    }
    Ok(Json(view).into_response())
}

/// `GET /api/v1/users/<name>`: public information about a user.
pub async fn public_user(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let account = state.auth.db().find_account(&name).await?;
    let Some(account) = account.filter(|a| !a.organization && !a.robot) else {
        return Err(ApiError::Message(
            StatusCode::NOT_FOUND,
            "The requested URL was not found on the server.".into(),
        ));
    };
    Ok(Json(json!({
        "anonymous": false,
        "username": account.username,
        "avatar": avatar(&account.username, account.email.as_deref(), "user"),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct UpdateUser {
    given_name: Option<String>,
    family_name: Option<String>,
    company: Option<String>,
    location: Option<String>,
    tag_expiration_s: Option<i64>,
}

/// `PUT /api/v1/user/`: the profile fields `FEATURE_USER_METADATA` asks for at first sign-in.
/// Answering a question clears its prompt.
pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Json(body): Json<UpdateUser>,
) -> ApiResult {
    let account = ctx.user_admin()?.clone();
    let db = state.auth.db();
    if let Some(seconds) = state.features.tag_window(body.tag_expiration_s)? {
        db.set_tag_expiration_s(account.id, seconds).await?;
    }
    let keep = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let given = keep(&body.given_name, &account.given_name);
    let family = keep(&body.family_name, &account.family_name);
    let company = keep(&body.company, &account.company);
    let location = keep(&body.location, &account.location);
    db.update_user_metadata(
        account.id,
        given.as_deref(),
        family.as_deref(),
        company.as_deref(),
        location.as_deref(),
    )
    .await?;
    if given.is_some() || family.is_some() {
        db.remove_user_prompt(account.id, "enter_name").await?;
    }
    if company.is_some() {
        db.remove_user_prompt(account.id, "enter_company").await?;
    }
    let identity = auth::Identity {
        account: db.find_account_by_id(account.id).await?,
        ..ctx.identity.clone()
    };
    let ctx = Ctx {
        caller: ctx.caller,
        identity,
        host: ctx.host.clone(),
    };
    current(State(state), ctx).await
}

#[derive(Deserialize)]
pub struct NewUser {
    username: String,
    password: String,
    email: Option<String>,
}

/// `POST /api/v1/user/` (`FEATURE_USER_CREATION`): self-service sign-up.
pub async fn create(State(state): State<ApiState>, Json(body): Json<NewUser>) -> ApiResult {
    if !state.features.user_creation || state.auth.settings().policy.registry_read_only {
        return Err(ApiError::Message(
            StatusCode::NOT_FOUND,
            "The requested URL was not found on the server.".into(),
        ));
    }
    let Some(email) = body.email else {
        return Err(ApiError::invalid("Email address is required"));
    };
    let db = state.auth.db();
    let account = match auth::create_user(db, &body.username, &email, &body.password, false).await {
        Ok(account) => account,
        Err(auth::UserError::NameTaken(_)) => {
            return Err(ApiError::invalid("The username already exists"));
        }
        Err(e @ (auth::UserError::Hash(_) | auth::UserError::Db(_))) => {
            return Err(ApiError::Internal(e.to_string()));
        }
        Err(e) => return Err(ApiError::invalid(e.to_string())),
    };
    if state.features.user_metadata {
        db.add_user_prompts(account.id, &["enter_name", "enter_company"])
            .await?;
    }
    Ok(Json(json!({
        "anonymous": false,
        "username": account.username,
        "avatar": avatar(&account.username, account.email.as_deref(), "user"),
        "email": account.email,
        "verified": account.verified,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct Initialize {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    access_token: bool,
}

/// `POST /api/v1/user/initialize` (`FEATURE_USER_INITIALIZE`): creates the first user of an
/// empty database, optionally with an OAuth token carrying every scope, so an installation
/// can be set up by a script.
pub async fn initialize(
    State(state): State<ApiState>,
    body: Option<Json<Initialize>>,
) -> ApiResult {
    if !state.features.user_initialize {
        return Err(ApiError::Plain(StatusCode::NOT_FOUND, "Not Found".into()));
    }
    let db = state.auth.db();
    if db.count_accounts().await? > 0 {
        return Err(ApiError::model(
            "Cannot initialize user in a non-empty database",
        ));
    }
    let Some(Json(body)) = body else {
        return Err(ApiError::model("Missing JSON body"));
    };
    let (Some(username), Some(password)) = (body.username, body.password) else {
        return Err(ApiError::model(
            "Failed to initialize user: username and password are required",
        ));
    };
    let email = body
        .email
        .clone()
        .unwrap_or_else(|| format!("{username}@localhost.localdomain"));
    let account = auth::create_user(db, &username, &email, &password, false)
        .await
        .map_err(|e| ApiError::model(format!("Failed to initialize user: {e}")))?;
    if state.features.user_metadata {
        db.add_user_prompts(account.id, &["enter_name", "enter_company"])
            .await?;
    }
    let mut view = json!({
        "username": account.username,
        "email": body.email,
        "encrypted_password": null,
    });
    if body.access_token {
        let application = db
            .create_application(db::NewApplication {
                organization_id: account.id,
                client_id: account.username.clone(),
                client_secret_ciphertext: state
                    .auth
                    .secret_key()
                    .encrypt(&auth::crypto::generate_oauth_client_secret())?,
                name: "automation".into(),
                description: "Application token generated via /api/v1/user/initialize".into(),
                redirect_uri: String::new(),
                application_uri: String::new(),
                avatar_email: None,
            })
            .await?;
        let token = crate::orgs::mint_access_token(
            &state,
            application.id,
            account.id,
            OAuthScopes::all_grantable(),
            Some(INITIALIZE_TOKEN_SECS),
        )
        .await?;
        view["access_token"] = json!(token);
    }
    Ok(Json(view).into_response())
}

/// `GET /.well-known/app-capabilities`, which the Container Security Operator reads.
pub async fn app_capabilities(State(state): State<ApiState>, ctx: Ctx) -> Response {
    let url = ctx.app_url(&state);
    Json(json!({
        "appName": "io.quay",
        "capabilities": {
            "io.quay.view-image": {
                "url-template": format!("{url}/{{namespace}}/{{reponame}}:{{tag}}"),
            },
            "io.quay.image-security": {
                "rest-api-template": format!(
                    "{url}/api/v1/repository/{{namespace}}/{{reponame}}/image/{{imageid}}/security"
                ),
                "deprecated": true,
            },
            "io.quay.manifest-security": {
                "rest-api-template": format!(
                    "{url}/api/v1/repository/{{namespace}}/{{reponame}}/manifest/{{digest}}/security"
                ),
            },
        }
    }))
    .into_response()
}

/// `GET /api/v1/discovery`: a Swagger 2.0 description of the API with Quay's OAuth scopes.
pub async fn discovery(State(state): State<ApiState>, ctx: Ctx) -> Response {
    let url = ctx.app_url(&state);
    let host = url.split("://").nth(1).unwrap_or_default().to_string();
    let mut scopes = serde_json::Map::new();
    for (name, description) in [
        ("repo:read", "View all visible repositories"),
        ("repo:write", "Read/Write to any accessible repositories"),
        ("repo:admin", "Administer Repositories"),
        ("repo:create", "Create Repositories"),
        ("user:read", "Read User Information"),
        ("user:admin", "Administer User"),
        ("org:admin", "Administer Organization"),
    ] {
        scopes.insert(name.into(), Value::String(description.into()));
    }
    if state.auth.settings().superusers_enabled {
        scopes.insert("super:user".into(), "Super User Access".into());
    }
    let paths: serde_json::Map<String, Value> = PATHS
        .iter()
        .map(|p| ((*p).to_string(), json!({ "x-path": p })))
        .collect();
    Json(json!({
        "swagger": "2.0",
        "host": host,
        "basePath": "/",
        "schemes": [state.auth.settings().url_scheme],
        "info": {
            "version": "v1",
            "title": state.features.registry_title,
            "description": "The Quay-compatible API of Wharf",
        },
        "securityDefinitions": {
            "oauth2_implicit": {
                "type": "oauth2",
                "flow": "implicit",
                "authorizationUrl": format!("{url}/oauth/authorize"),
                "scopes": scopes,
            }
        },
        "paths": paths,
    }))
    .into_response()
}

/// The API paths Wharf serves, in Quay's path syntax.
const PATHS: &[&str] = &[
    "/api/v1/user/",
    "/api/v1/users/{username}",
    "/api/v1/organization/",
    "/api/v1/organization/{orgname}",
    "/api/v1/organization/{orgname}/members",
    "/api/v1/organization/{orgname}/team/{teamname}",
    "/api/v1/organization/{orgname}/team/{teamname}/members",
    "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}",
    "/api/v1/organization/{orgname}/prototypes",
    "/api/v1/organization/{orgname}/prototypes/{prototypeid}",
    "/api/v1/organization/{orgname}/applications",
    "/api/v1/organization/{orgname}/robots",
    "/api/v1/organization/{orgname}/robots/{robot_shortname}",
    "/api/v1/organization/{orgname}/robots/{robot_shortname}/regenerate",
    "/api/v1/organization/{orgname}/robots/{robot_shortname}/permissions",
    "/api/v1/user/robots",
    "/api/v1/user/robots/{robot_shortname}",
    "/api/v1/user/robots/{robot_shortname}/regenerate",
    "/api/v1/user/robots/{robot_shortname}/permissions",
    "/api/v1/repository",
    "/api/v1/repository/{repository}",
    "/api/v1/repository/{repository}/changevisibility",
    "/api/v1/repository/{repository}/permissions/user/",
    "/api/v1/repository/{repository}/permissions/user/{username}",
    "/api/v1/repository/{repository}/permissions/team/",
    "/api/v1/repository/{repository}/permissions/team/{teamname}",
    "/api/v1/repository/{repository}/tag/",
    "/api/v1/repository/{repository}/tag/{tag}",
    "/api/v1/repository/{repository}/tag/{tag}/restore",
    "/api/v1/repository/{repository}/tag/{tag}/expire",
    "/api/v1/repository/{repository}/manifest/{manifestref}",
];
