//! Quay's REST API, `/api/v1`, with Quay's JSON shapes and status codes for what real clients
//! (the Quay Bridge Operator, the Container Security Operator, scripts) call. Handlers parse,
//! ask [`auth`] whether the caller may, call the stores or services, and render Quay's views.
//!
//! Callers authenticate with `Authorization: Bearer <OAuth access token>` (capped by its
//! scopes), as with Quay. Wharf also accepts HTTP Basic credentials of a user (password or
//! app-specific token) or a robot, which Quay 3.6 ignores on most endpoints; browsers never
//! send them unprompted, so this opens no cross-site request path. An unusable credential
//! leaves the caller anonymous, as in Quay.

mod context;
mod error;
mod orgs;
mod repo_permissions;
mod repo_request;
mod repositories;
mod robots;
mod tags;
mod user;
mod views;

use axum::Router;
use axum::routing::{get, post, put};

pub use context::{ApiFeatures, ApiState, Ctx};
pub use error::{ApiError, ApiResult};

/// The `/api/v1` router, with `/.well-known/app-capabilities` and the OAuth token grant.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/discovery", get(user::discovery))
        .route("/.well-known/app-capabilities", get(user::app_capabilities))
        .route(
            "/api/v1/user/",
            get(user::current).post(user::create).put(user::update),
        )
        .route(
            "/api/v1/user",
            get(user::current).post(user::create).put(user::update),
        )
        .route("/api/v1/user/initialize", post(user::initialize))
        .route("/api/v1/users/{name}", get(user::public_user))
        .route("/api/v1/organization/", post(orgs::create))
        .route("/api/v1/organization", post(orgs::create))
        .route(
            "/api/v1/organization/{org}",
            get(orgs::get).put(orgs::update).delete(orgs::delete),
        )
        .route("/api/v1/organization/{org}/members", get(orgs::members))
        .route(
            "/api/v1/organization/{org}/team/{team}",
            put(orgs::put_team).delete(orgs::delete_team),
        )
        .route(
            "/api/v1/organization/{org}/team/{team}/members",
            get(orgs::team_members),
        )
        .route(
            "/api/v1/organization/{org}/team/{team}/members/{member}",
            put(orgs::add_team_member).delete(orgs::remove_team_member),
        )
        .route(
            "/api/v1/organization/{org}/prototypes",
            get(orgs::prototypes).post(orgs::create_prototype),
        )
        .route(
            "/api/v1/organization/{org}/prototypes/{id}",
            put(orgs::update_prototype).delete(orgs::delete_prototype),
        )
        .route(
            "/api/v1/organization/{org}/applications",
            get(orgs::applications).post(orgs::create_application),
        )
        .route("/oauth/authorizeapp", post(orgs::authorize_app))
        .route("/api/v1/organization/{org}/robots", get(robots::list_org))
        .route(
            "/api/v1/organization/{org}/robots/{short}",
            get(robots::get_org)
                .put(robots::create_org)
                .delete(robots::delete_org),
        )
        .route(
            "/api/v1/organization/{org}/robots/{short}/regenerate",
            post(robots::regenerate_org),
        )
        .route(
            "/api/v1/organization/{org}/robots/{short}/permissions",
            get(robots::permissions_org),
        )
        .route("/api/v1/user/robots", get(robots::list_user))
        .route(
            "/api/v1/user/robots/{short}",
            get(robots::get_user)
                .put(robots::create_user)
                .delete(robots::delete_user),
        )
        .route(
            "/api/v1/user/robots/{short}/regenerate",
            post(robots::regenerate_user),
        )
        .route(
            "/api/v1/user/robots/{short}/permissions",
            get(robots::permissions_user),
        )
        .merge(repositories::routes())
        .with_state(state)
}
