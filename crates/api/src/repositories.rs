//! `/api/v1/repository…`: listing and creating repositories, and everything under one
//! repository — its view and settings here, its permissions in [`crate::repo_permissions`], its
//! tags and manifests in [`crate::tags`].
//!
//! Repository names may contain `/` (`ns/team/app`), so one catch-all route takes everything
//! after `/api/v1/repository/`, and [`parse_path`] splits it into the repository and the
//! endpoint the way Quay's router would: an endpoint suffix wins over a repository name that
//! merely looks like one, and the longest repository name that leaves a valid suffix is taken.
//!
//! Every endpoint checks permission before existence (see
//! [`repository_access`](crate::context::repository_access)), answers Quay's status codes and
//! bodies, and refuses writes while the registry is read-only.

use std::collections::HashMap;

use auth::permissions::{self, RepoState, Role, Visibility};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use data_encoding::BASE64URL_NOPAD;
use db::RepositoryListing;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::repo_request::{
    Call, Endpoint, RouteError, enum_field, json_object, parse_path, require_keys, string_field,
    success, truthy,
};
use crate::views::format_date;

/// Repositories per page of the all-namespaces listing (Quay's `REPOS_PER_PAGE`).
const REPOS_PER_PAGE: u64 = 100;
/// Most alive tags the repository view shows.
const VIEW_TAG_LIMIT: u64 = 500;

/// The repository routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/repository", get(list).post(create))
        .route("/api/v1/repository/", get(list).post(create))
        .route("/api/v1/repository/{*rest}", any(dispatch))
}

async fn dispatch(
    State(state): State<ApiState>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    if method != Method::GET
        && let Some(e) = read_only_refusal(&state)
    {
        return e;
    }
    let (namespace, name, endpoint) = match parse_path(&rest, &method) {
        Ok(parsed) => parsed,
        Err(RouteError::NotFound) => return not_found_route(),
        Err(RouteError::MethodNotAllowed) => {
            return ApiError::Message(
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not allowed for the requested URL.".into(),
            )
            .into_response();
        }
    };
    let call = Call {
        state: &state,
        ctx: &ctx,
        namespace: &namespace,
        name: &name,
        params: &params,
        body: &body,
    };
    use crate::{repo_permissions as perms, tags};
    let result = match (&endpoint, method) {
        (Endpoint::Repository, Method::GET) => get_repository(&call).await,
        (Endpoint::Repository, Method::PUT) => update_repository(&call).await,
        (Endpoint::Repository, Method::DELETE) => delete_repository(&call).await,
        (Endpoint::ChangeVisibility, _) => change_visibility(&call).await,
        (Endpoint::ChangeState, _) => change_state(&call).await,
        (Endpoint::UserPermissions, _) => perms::list_users(&call).await,
        (Endpoint::UserPermission(who), Method::GET) => perms::get_user(&call, who).await,
        (Endpoint::UserPermission(who), Method::PUT) => perms::put_user(&call, who).await,
        (Endpoint::UserPermission(who), _) => perms::delete_user(&call, who).await,
        (Endpoint::TeamPermissions, _) => perms::list_teams(&call).await,
        (Endpoint::TeamPermission(team), Method::GET) => perms::get_team(&call, team).await,
        (Endpoint::TeamPermission(team), Method::PUT) => perms::put_team(&call, team).await,
        (Endpoint::TeamPermission(team), _) => perms::delete_team(&call, team).await,
        (Endpoint::Tags, _) => tags::list(&call).await,
        (Endpoint::Tag(tag), Method::PUT) => tags::put(&call, tag).await,
        (Endpoint::Tag(tag), _) => tags::delete(&call, tag).await,
        (Endpoint::RestoreTag(tag), _) => tags::restore(&call, tag).await,
        (Endpoint::ExpireTag(tag), _) => tags::expire(&call, tag).await,
        (Endpoint::Manifest(digest), _) => tags::manifest(&call, digest).await,
        // `parse_path` only returns endpoints that allow the method.
        (Endpoint::Repository, _) => Err(ApiError::NotFound),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Werkzeug's 404 for a URL no route matches.
fn not_found_route() -> Response {
    ApiError::Message(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on the server. If you entered the URL manually please \
         check your spelling and try again."
            .into(),
    )
    .into_response()
}

/// Quay's refusal of every write while `REGISTRY_STATE` is `readonly`.
fn read_only_refusal(state: &ApiState) -> Option<Response> {
    if !state.auth.settings().policy.registry_read_only {
        return None;
    }
    let body = json!({
        "message": "System is currently read-only. Pulls will succeed but all write operations \
                    are currently suspended.",
        "is_readonly": true,
    });
    Some((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
}

fn state_name(state: i32) -> &'static str {
    RepoState::from_i32(state).map_or("NORMAL", RepoState::as_str)
}

// --- GET/POST /api/v1/repository ----------------------------------------------------------------

fn listing_view(l: &RepositoryListing, params: &HashMap<String, String>, signed_in: bool) -> Value {
    let repo = &l.repository;
    let mut view = json!({
        "namespace": repo.namespace,
        "name": repo.name,
        "description": l.description,
        "is_public": repo.visibility == "public",
        "kind": l.kind,
        "state": state_name(repo.state),
    });
    let flag = |key: &str| truthy(params.get(key).map(String::as_str), false);
    if flag("last_modified") {
        view["last_modified"] = json!(l.last_modified_ms.map(|ms| ms.div_euclid(1000)));
    }
    if flag("popularity") {
        // Wharf does not count repository actions.
        view["popularity"] = json!(0.0);
    }
    if signed_in {
        view["is_starred"] = json!(false);
    }
    view
}

fn encode_page(last_id: i64) -> String {
    BASE64URL_NOPAD.encode(format!("repository:{last_id}").as_bytes())
}

fn decode_page(token: &str) -> Option<i64> {
    let bytes = BASE64URL_NOPAD.decode(token.as_bytes()).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("repository:")?
        .parse()
        .ok()
}

/// `GET /api/v1/repository?namespace=&public=&starred=&last_modified=&popularity=&next_page=`.
async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
    ctx: Ctx,
) -> ApiResult {
    let param = |k: &str| params.get(k).map(String::as_str);
    let namespace = param("namespace").filter(|n| !n.is_empty());
    let public = truthy(param("public"), false);
    let starred = truthy(param("starred"), false);
    if namespace.is_none() && !public && !starred {
        return Err(ApiError::invalid(
            "namespace, starred or public are required for this API call",
        ));
    }
    let signed_in = !ctx.identity.is_anonymous();
    let viewer = ctx.identity.account_id();
    let db = state.auth.db();
    let mut out = json!({});
    let kind_is_image = param("repo_kind").is_none_or(|k| k == "image");
    let repositories = if starred {
        if !signed_in {
            return Err(ApiError::Message(
                StatusCode::BAD_REQUEST,
                "The browser (or proxy) sent a request that this server could not understand."
                    .into(),
            ));
        }
        // Wharf keeps no stars.
        Vec::new()
    } else if !kind_is_image {
        Vec::new()
    } else if let Some(namespace) = namespace {
        match db.find_account(namespace).await? {
            Some(ns) => {
                let filter = db::RepositoryFilter {
                    namespace_id: Some(ns.id),
                    viewer,
                    include_public: public,
                    ..Default::default()
                };
                db.list_repositories_for(filter).await?
            }
            None => Vec::new(),
        }
    } else {
        let filter = db::RepositoryFilter {
            viewer,
            include_public: true,
            after_id: param("next_page").and_then(decode_page),
            limit: Some(REPOS_PER_PAGE + 1),
            ..Default::default()
        };
        let mut page = db.list_repositories_for(filter).await?;
        if page.len() as u64 > REPOS_PER_PAGE {
            page.truncate(REPOS_PER_PAGE as usize);
            if let Some(last) = page.last() {
                out["next_page"] = json!(encode_page(last.repository.id));
            }
        }
        page
    };
    out["repositories"] = repositories
        .iter()
        .map(|l| listing_view(l, &params, signed_in))
        .collect();
    Ok(Json(out).into_response())
}

/// `POST /api/v1/repository` `{repository, visibility, description, namespace?, repo_kind?}`
/// → 201 `{namespace, name, kind}`.
async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult {
    if let Some(refusal) = read_only_refusal(&state) {
        return Ok(refusal);
    }
    let account = ctx.account()?;
    let body = json_object(&body)?;
    require_keys(&body, &["repository", "visibility", "description"])?;
    let name = string_field(&body, "repository", false)?.unwrap_or_default();
    let visibility = enum_field(&body, "visibility", &["public", "private"])?;
    let description = string_field(&body, "description", false)?.unwrap_or_default();
    let namespace = string_field(&body, "namespace", false)?.unwrap_or(&account.username);
    let kind = match body.get("repo_kind") {
        None | Some(Value::Null) => "image",
        Some(_) => enum_field(&body, "repo_kind", &["image", "application"])?.unwrap_or("image"),
    };
    let visibility = visibility
        .and_then(Visibility::parse)
        .unwrap_or(Visibility::Private);

    let facts = state
        .auth
        .facts(&ctx.identity, namespace, Some(name))
        .await?;
    let policy = &state.auth.settings().policy;
    let Some(facts) =
        facts.filter(|f| permissions::can_create_repository(&ctx.caller, &f.namespace, policy))
    else {
        return Err(ctx.unauthorized());
    };
    if facts.repository_row.is_some() {
        return Err(ApiError::invalid("Repository already exists"));
    }
    if !types::name::valid_repository_name(name) {
        return Err(ApiError::invalid("Invalid repository name"));
    }
    if kind != "image" {
        return Err(ApiError::invalid(
            "Application repositories are not supported",
        ));
    }
    let created = state
        .auth
        .db()
        .create_repository(db::NewRepository {
            namespace_id: facts.namespace_row.id,
            name: name.to_string(),
            visibility: visibility.as_str().to_string(),
            description: Some(description.to_string()),
            creator: Some(account.id),
        })
        .await?;
    match created {
        db::CreateRepositoryOutcome::Created(row) => {
            state.registry.forget_repository(&row.namespace, &row.name);
            let body = json!({ "namespace": row.namespace, "name": row.name, "kind": kind });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        db::CreateRepositoryOutcome::Exists(_) => {
            Err(ApiError::invalid("Repository already exists"))
        }
    }
}

// --- /api/v1/repository/<repo> -----------------------------------------------------------------

/// `GET …/<repo>?includeTags=true`: the repository with the caller's rights and its alive tags.
async fn get_repository(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Read).await?;
    let repo = &access.repo;
    let listing = call
        .db()
        .repository_listing(repo.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ns = &access.facts.namespace_row;
    let normal = repo.state == RepoState::Normal.as_i32();
    let is_public = repo.visibility == "public";
    let mut view = json!({
        "namespace": repo.namespace,
        "name": repo.name,
        "kind": listing.kind,
        "description": listing.description,
        "is_public": is_public,
        "is_organization": ns.organization,
        "is_starred": false,
        "status_token": "",
        "trust_enabled": false,
        "tag_expiration_s": ns.removed_tag_expiration_s,
        "is_free_account": true,
        "state": state_name(repo.state),
        "can_write": access.role >= Role::Write && normal,
        "can_admin": access.role >= Role::Admin,
    });
    if truthy(call.param("includeTags"), true) {
        let query = db::TagHistoryQuery {
            only_active: true,
            limit: VIEW_TAG_LIMIT,
            ..Default::default()
        };
        let page = call.db().tag_history(repo.id, query).await?;
        let mut tags = Map::new();
        for row in page.rows {
            let is_list = types::media_type::is_index(&row.manifest_media_type);
            let mut tag = json!({
                "name": row.name,
                "image_id": null,
                "size": (!is_list).then_some(row.layers_size),
                "last_modified": format_date(row.lifetime_start_ms),
                "manifest_digest": row.manifest_digest,
            });
            if let Some(end) = row.lifetime_end_ms {
                tag["expiration"] = json!(format_date(end));
            }
            tags.insert(row.name, tag);
        }
        view["tags"] = Value::Object(tags);
    }
    Ok(Json(view).into_response())
}

/// `PUT …/<repo>` `{description}` → `{"success": true}`.
async fn update_repository(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Write).await?;
    let body = call.json()?;
    require_keys(&body, &["description"])?;
    let description = string_field(&body, "description", false)?;
    if !call
        .db()
        .set_repository_description(access.repo.id, description)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    success()
}

/// `DELETE …/<repo>` → 204. The repository is renamed and marked at once (its name is free
/// again) and its content removed later by the `repositorygc` worker.
async fn delete_repository(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Admin).await?;
    let marked = call
        .db()
        .mark_repository_for_deletion(access.repo.id)
        .await?;
    call.state
        .registry
        .forget_repository(call.namespace, call.name);
    if !marked {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST …/<repo>/changevisibility` `{visibility}` → `{"success": true}`.
async fn change_visibility(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Admin).await?;
    let body = call.json()?;
    require_keys(&body, &["visibility"])?;
    let visibility = enum_field(&body, "visibility", &["public", "private"])?
        .and_then(Visibility::parse)
        .unwrap_or(Visibility::Private);
    call.db()
        .set_repository_visibility(access.repo.id, visibility.as_str())
        .await?;
    call.state
        .registry
        .forget_repository(call.namespace, call.name);
    success()
}

/// `PUT …/<repo>/changestate` `{state: NORMAL|READ_ONLY|MIRROR}` → `{"success": true}`.
async fn change_state(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Admin).await?;
    let body = call.json()?;
    require_keys(&body, &["state"])?;
    let state = enum_field(&body, "state", &["NORMAL", "READ_ONLY", "MIRROR"])?
        .and_then(RepoState::parse)
        .unwrap_or(RepoState::Normal);
    if !call
        .db()
        .set_repository_state(access.repo.id, state.as_i32())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    call.state
        .registry
        .forget_repository(call.namespace, call.name);
    success()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_page(&encode_page(42)), Some(42));
        assert_eq!(decode_page("garbage"), None);
        assert!(truthy(Some("true"), false) && truthy(Some("1"), false));
        assert!(!truthy(Some("false"), true) && !truthy(Some("0"), true));
        assert!(truthy(None, true) && !truthy(None, false));
    }
}
