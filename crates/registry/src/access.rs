//! Who may call which `/v2` endpoint: the token endpoint (`GET /v2/auth`) and the check every
//! other request passes first. Requests carry a registry token (`Authorization: Bearer`);
//! without one, or without the action the endpoint needs, the answer is 401 with a challenge
//! naming the scope to ask for, whether the repository exists or not.

use std::sync::Arc;

use auth::scope::Action;
use auth::{Auth, Grants, Identity, TokenRequestError};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;

use crate::endpoint::Endpoint;
use crate::{OciError, Req};

/// What an endpoint needs: any valid token, or an action on a repository.
enum Needs<'a> {
    Token,
    Repository(&'a str, Action),
}

fn needs<'a>(endpoint: &'a Endpoint, method: &Method) -> Needs<'a> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match endpoint {
        Endpoint::Base | Endpoint::Catalog => Needs::Token,
        Endpoint::Tags { name } | Endpoint::Referrers { name, .. } => {
            Needs::Repository(name, Action::Pull)
        }
        Endpoint::Manifest { name, .. } | Endpoint::Blob { name, .. } => {
            Needs::Repository(name, if read { Action::Pull } else { Action::Push })
        }
        Endpoint::UploadStart { name } | Endpoint::Upload { name, .. } => {
            Needs::Repository(name, Action::Push)
        }
    }
}

/// The host the client addressed, for token realms and audiences when no `SERVER_HOSTNAME`
/// is configured.
pub(crate) fn request_host(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Checks the request's token against what `endpoint` needs. Ok carries the verified grants.
pub(crate) async fn authorize(
    auth: &Auth,
    registry: &wharf_core::Registry,
    endpoint: &Endpoint,
    method: &Method,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Arc<Grants>, Response> {
    let host = request_host(headers, uri);
    let needs = needs(endpoint, method);
    let (scope, required) = match &needs {
        Needs::Token => (None, None),
        Needs::Repository(name, action) => {
            let path = registry
                .parse_path(name)
                .map_err(|e| OciError::from(e).into_response())?;
            if *action == Action::Push && auth.settings().policy.registry_read_only {
                return Err(read_only());
            }
            let actions = if *action == Action::Pull {
                "pull"
            } else {
                "pull,push"
            };
            (
                Some(format!("repository:{name}:{actions}")),
                Some((path, *action)),
            )
        }
    };
    let refuse = |message: &str| unauthorized(auth, &host, scope.as_deref(), message);
    let Some(token) = bearer(headers) else {
        return Err(refuse("authentication required"));
    };
    let grants = match auth.verify_registry_token(token, &host).await {
        Ok(grants) => grants,
        Err(e) => {
            tracing::debug!(error = %e, "registry token refused");
            return Err(refuse("invalid or expired token"));
        }
    };
    if let Some((path, action)) = required
        && !grants.allows(&path, action)
    {
        return Err(refuse("access to the requested resource is not authorized"));
    }
    Ok(grants)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(auth: &Auth, host: &str, scope: Option<&str>, message: &str) -> Response {
    OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        .with_header(header::WWW_AUTHENTICATE, auth.challenge(host, scope))
        .into_response()
}

fn read_only() -> Response {
    let body = serde_json::json!({
        "errors": [{
            "code": "DENIED",
            "message": "System is currently read-only. Pulls will succeed but all write operations are currently suspended.",
            "detail": {},
            "is_readonly": true,
        }]
    });
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /v2/auth`: Basic credentials (or none) and `scope` parameters in, `{"token": …}` out.
pub(crate) async fn token(auth: &Auth, req: Req) -> Response {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return crate::unsupported();
    }
    let host = request_host(&req.headers, &req.uri);
    let identity = match basic(&req.headers) {
        Some(Some((user, password))) => match auth.login(&user, &password).await {
            Ok(identity) => identity,
            Err(auth::AuthError::Invalid(e)) => {
                return unauthorized(auth, &host, None, &e.0);
            }
            Err(e) => return internal(e),
        },
        Some(None) => {
            return unauthorized(auth, &host, None, "Specified credentials are invalid");
        }
        None => {
            if !auth.settings().policy.anonymous_access {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error": "Anonymous access is not allowed"}"#,
                )
                    .into_response();
            }
            Identity::anonymous()
        }
    };
    let service = req
        .query("service")
        .unwrap_or_else(|| auth.service_name(&host).to_string());
    let scopes: Vec<String> = req
        .query_all("scope")
        .into_iter()
        .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    match auth.registry_token(&identity, &service, &scopes).await {
        Ok(token) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "token": token }).to_string(),
        )
            .into_response(),
        Err(TokenRequestError::InvalidScope(scope)) => OciError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("Unable to decode repository and actions: {scope}"),
        )
        .into_response(),
        Err(TokenRequestError::InvalidName(message)) => {
            OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message).into_response()
        }
        Err(e @ TokenRequestError::NamespaceDisabled(_)) => {
            OciError::new(StatusCode::METHOD_NOT_ALLOWED, "DENIED", e.to_string()).into_response()
        }
        Err(e @ TokenRequestError::NoScope) => unauthorized(auth, &host, None, &e.to_string()),
        Err(TokenRequestError::Internal(e)) => internal(e),
    }
}

/// Basic credentials: None when absent, Some(None) when present but unreadable.
fn basic(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value.to_str().ok().and_then(|v| {
        let (scheme, encoded) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = BASE64.decode(encoded.trim().as_bytes()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    });
    Some(parsed)
}

fn internal(e: auth::AuthError) -> Response {
    tracing::error!(error = %e, "token request failed");
    OciError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN",
        "internal error; see the server log",
    )
    .into_response()
}
