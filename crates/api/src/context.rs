//! What every handler starts from: the shared state and the caller ([`Ctx`]), plus the
//! permission checks endpoints share, each answering Quay's way (401 for anonymous callers,
//! 403 for signed-in ones; permission before existence, so private names do not leak).

use auth::permissions::{self, Caller, Role};
use auth::{Auth, Facts, Identity};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use data_encoding::BASE64;

use crate::error::ApiError;

/// Features of the API that the configuration switches.
#[derive(Clone, Debug)]
pub struct ApiFeatures {
    /// `FEATURE_USER_INITIALIZE`.
    pub user_initialize: bool,
    /// `FEATURE_USER_METADATA`.
    pub user_metadata: bool,
    /// `FEATURE_USER_CREATION`.
    pub user_creation: bool,
    /// `PREFERRED_URL_SCHEME://SERVER_HOSTNAME`, or None to use the request's host.
    pub app_url: Option<String>,
    /// `REGISTRY_TITLE`.
    pub registry_title: String,
    /// The time-machine windows, in seconds, users and organizations may choose
    /// (`TAG_EXPIRATION_OPTIONS`); None when `FEATURE_CHANGE_TAG_EXPIRATION` is off.
    pub tag_expiration_options: Option<Vec<i64>>,
    /// `PERMANENTLY_DELETE_TAGS`: `POST …/tag/<tag>/expire` takes a tag out of the time machine.
    pub permanently_delete_tags: bool,
}

impl ApiFeatures {
    /// Checks a requested time-machine window against `TAG_EXPIRATION_OPTIONS`: Ok(None) when
    /// changing it is off (the field is ignored, as Quay does), a 400 for a window not offered.
    pub fn tag_window(&self, seconds: Option<i64>) -> Result<Option<i64>, crate::ApiError> {
        match (&self.tag_expiration_options, seconds) {
            (Some(options), Some(s)) if options.contains(&s) => Ok(Some(s)),
            (Some(_), Some(_)) => Err(crate::ApiError::model("Invalid tag expiration option")),
            _ => Ok(None),
        }
    }
}

impl Default for ApiFeatures {
    fn default() -> Self {
        ApiFeatures {
            user_initialize: false,
            user_metadata: false,
            user_creation: true,
            app_url: None,
            registry_title: "Project Quay".to_string(),
            tag_expiration_options: Some(vec![0, 86_400, 604_800, 1_209_600, 2_419_200]),
            permanently_delete_tags: false,
        }
    }
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub auth: Auth,
    pub registry: wharf_core::Registry,
    pub features: ApiFeatures,
}

/// The caller of a request.
pub struct Ctx {
    pub identity: Identity,
    pub caller: Caller,
    /// The host the client addressed, for absolute URLs.
    pub host: String,
}

impl FromRequestParts<ApiState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Ctx, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .map(|(scheme, value)| (scheme.to_ascii_lowercase(), value.trim().to_string()));
        let identity = match header {
            Some((scheme, token)) if scheme == "bearer" => {
                match state.auth.oauth_token(&token).await {
                    Ok(identity) => identity,
                    Err(auth::AuthError::Invalid(e)) => {
                        tracing::debug!(reason = %e, "API bearer token ignored");
                        Identity::anonymous()
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some((scheme, encoded)) if scheme == "basic" => {
                let decoded = BASE64
                    .decode(encoded.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded.as_deref().and_then(|d| d.split_once(':')) {
                    Some((user, password)) => match state.auth.login(user, password).await {
                        Ok(identity) => identity,
                        Err(auth::AuthError::Invalid(_)) => Identity::anonymous(),
                        Err(e) => return Err(e.into()),
                    },
                    None => Identity::anonymous(),
                }
            }
            _ => Identity::anonymous(),
        };
        let caller = state.auth.caller(&identity);
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Ctx {
            identity,
            caller,
            host,
        })
    }
}

impl Ctx {
    /// The refusal for this caller: 401 when anonymous, 403 otherwise.
    pub fn unauthorized(&self) -> ApiError {
        ApiError::Unauthorized {
            anonymous: self.identity.is_anonymous(),
        }
    }

    /// The signed-in account, or 401.
    pub fn account(&self) -> Result<&db::AccountRow, ApiError> {
        self.identity
            .account
            .as_ref()
            .ok_or_else(|| self.unauthorized())
    }

    /// Whether an OAuth token (if any) carries `scope`; full-access credentials carry all.
    pub fn has_scope(&self, scope: auth::scope::OAuthScopes) -> bool {
        self.identity.scopes.is_none_or(|s| s.implies(scope))
    }

    /// The user's own account with `user:admin` rights, or the refusal.
    pub fn user_admin(&self) -> Result<&db::AccountRow, ApiError> {
        let account = self.account()?;
        if account.robot || !self.has_scope(auth::scope::OAuthScopes::USER_ADMIN) {
            return Err(self.unauthorized());
        }
        Ok(account)
    }

    /// `PREFERRED_URL_SCHEME://SERVER_HOSTNAME` (or the request's host).
    pub fn app_url(&self, state: &ApiState) -> String {
        match &state.features.app_url {
            Some(url) => url.clone(),
            None => format!("{}://{}", state.auth.settings().url_scheme, self.host),
        }
    }
}

/// The organization `org` if the caller administers it (Quay's
/// `AdministerOrganizationPermission`): 401/403 before 404.
pub async fn org_admin(state: &ApiState, ctx: &Ctx, org: &str) -> Result<Facts, ApiError> {
    let facts = state.auth.facts(&ctx.identity, org, None).await?;
    let allowed = facts.as_ref().is_some_and(|f| {
        f.namespace.is_org
            && permissions::can_administer_org(
                &ctx.caller,
                &f.namespace,
                &state.auth.settings().policy,
            )
    });
    if !allowed {
        if facts.is_none() && !ctx.identity.is_anonymous() && ctx.caller_is_superuser() {
            return Err(ApiError::NotFound);
        }
        return Err(ctx.unauthorized());
    }
    facts.ok_or(ApiError::NotFound)
}

impl Ctx {
    fn caller_is_superuser(&self) -> bool {
        matches!(
            self.caller.principal,
            permissions::Principal::User {
                superuser: true,
                ..
            }
        )
    }
}

/// The repository `namespace/name` with the caller's role on it, when that role reaches
/// `needed`. Refusals come before "not found", as in Quay: someone without access to a
/// namespace cannot tell whether a repository exists there.
pub async fn repository_access(
    state: &ApiState,
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    needed: Role,
) -> Result<(Facts, Role), ApiError> {
    let facts = state
        .auth
        .facts(&ctx.identity, namespace, Some(name))
        .await?;
    let Some(facts) = facts else {
        return Err(ctx.unauthorized());
    };
    let policy = &state.auth.settings().policy;
    match &facts.repository {
        Some(repo) => {
            match permissions::repository_role(&ctx.caller, &facts.namespace, repo, policy) {
                Some(role) if role >= needed => Ok((facts, role)),
                _ => Err(ctx.unauthorized()),
            }
        }
        None => {
            // Absent: 404 only for those who would hold the role on it (namespace admins).
            let admin = permissions::can_administer_org(&ctx.caller, &facts.namespace, policy);
            if admin {
                Err(ApiError::NotFound)
            } else {
                Err(ctx.unauthorized())
            }
        }
    }
}
