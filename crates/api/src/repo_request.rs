//! The plumbing of the `/api/v1/repository/<repo>…` endpoints: splitting the path into the
//! repository and the endpoint, the request an endpoint handler gets ([`Call`]) with its
//! permission check, and request bodies validated with the messages of Quay's JSON schemas.

use std::collections::HashMap;

use auth::Facts;
use auth::permissions::{RepoState, Role};
use axum::Json;
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::context::{Ctx, repository_access};
use crate::error::{ApiError, ApiResult};

/// What follows the repository in a `/api/v1/repository/<repo>…` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Repository,
    ChangeVisibility,
    ChangeState,
    UserPermissions,
    UserPermission(String),
    TeamPermissions,
    TeamPermission(String),
    Tags,
    Tag(String),
    RestoreTag(String),
    ExpireTag(String),
    Manifest(String),
}

impl Endpoint {
    /// The endpoint named by the components after the repository, if any.
    fn from_suffix(suffix: &[&str]) -> Option<Endpoint> {
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(match suffix {
            ["changevisibility"] => Endpoint::ChangeVisibility,
            ["changestate"] => Endpoint::ChangeState,
            ["permissions", "user", ""] => Endpoint::UserPermissions,
            ["permissions", "user", who] => Endpoint::UserPermission(nonempty(who)?),
            ["permissions", "team", ""] => Endpoint::TeamPermissions,
            ["permissions", "team", team] => Endpoint::TeamPermission(nonempty(team)?),
            ["tag", ""] => Endpoint::Tags,
            ["tag", tag] => Endpoint::Tag(nonempty(tag)?),
            ["tag", tag, "restore"] => Endpoint::RestoreTag(nonempty(tag)?),
            ["tag", tag, "expire"] => Endpoint::ExpireTag(nonempty(tag)?),
            ["manifest", digest] if digest.contains(':') => Endpoint::Manifest(digest.to_string()),
            _ => return None,
        })
    }

    fn allows(&self, method: &Method) -> bool {
        let m = |allowed: &[Method]| allowed.contains(method);
        match self {
            Endpoint::Repository => m(&[Method::GET, Method::PUT, Method::DELETE]),
            Endpoint::ChangeVisibility | Endpoint::RestoreTag(_) | Endpoint::ExpireTag(_) => {
                m(&[Method::POST])
            }
            Endpoint::ChangeState => m(&[Method::PUT]),
            Endpoint::UserPermissions
            | Endpoint::TeamPermissions
            | Endpoint::Tags
            | Endpoint::Manifest(_) => m(&[Method::GET]),
            Endpoint::UserPermission(_) | Endpoint::TeamPermission(_) => {
                m(&[Method::GET, Method::PUT, Method::DELETE])
            }
            Endpoint::Tag(_) => m(&[Method::PUT, Method::DELETE]),
        }
    }
}

/// Why a path names no endpoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RouteError {
    NotFound,
    MethodNotAllowed,
}

/// Splits `ns/name…[/suffix]` into namespace, repository name and endpoint for `method`.
pub(crate) fn parse_path(
    rest: &str,
    method: &Method,
) -> Result<(String, String, Endpoint), RouteError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let repository_ok = |n: usize| n >= 2 && parts[..n].iter().all(|p| !p.is_empty());
    // Suffixed endpoints first, longest repository first; the bare repository last.
    let mut candidates: Vec<(usize, Endpoint)> = (2..parts.len())
        .rev()
        .filter(|&n| repository_ok(n))
        .filter_map(|n| Endpoint::from_suffix(&parts[n..]).map(|e| (n, e)))
        .collect();
    if repository_ok(parts.len()) {
        candidates.push((parts.len(), Endpoint::Repository));
    }
    if candidates.is_empty() {
        return Err(RouteError::NotFound);
    }
    let (n, endpoint) = candidates
        .into_iter()
        .find(|(_, e)| e.allows(method))
        .ok_or(RouteError::MethodNotAllowed)?;
    Ok((parts[0].to_string(), parts[1..n].join("/"), endpoint))
}

/// One request to an endpoint of a repository.
pub(crate) struct Call<'a> {
    pub state: &'a ApiState,
    pub ctx: &'a Ctx,
    pub namespace: &'a str,
    pub name: &'a str,
    pub params: &'a HashMap<String, String>,
    pub body: &'a Bytes,
}

/// The caller's standing on an existing repository.
pub(crate) struct Access {
    pub facts: Facts,
    pub role: Role,
    pub repo: db::RepositoryRow,
}

impl Call<'_> {
    /// The repository if the caller holds `needed` on it: 401/403 first, then 404.
    pub async fn access(&self, needed: Role) -> Result<Access, ApiError> {
        let (facts, role) =
            repository_access(self.state, self.ctx, self.namespace, self.name, needed).await?;
        let repo = facts.repository_row.clone().ok_or(ApiError::NotFound)?;
        Ok(Access { facts, role, repo })
    }

    pub fn db(&self) -> &db::Db {
        self.state.auth.db()
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The JSON object body an endpoint with a request schema requires.
    pub fn json(&self) -> Result<Map<String, Value>, ApiError> {
        json_object(self.body)
    }
}

/// Tag and label changes refuse repositories that are not `NORMAL` (Quay's
/// `disallow_for_non_normal_repositories`).
pub(crate) fn require_normal(repo: &db::RepositoryRow) -> Result<(), ApiError> {
    let state = RepoState::from_i32(repo.state).unwrap_or(RepoState::ReadOnly);
    if state == RepoState::Normal {
        return Ok(());
    }
    let python_name = format!("RepositoryState.{}", state.as_str());
    Err(ApiError::Message(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Repository is in read only or mirror mode: {python_name}"),
    ))
}

// --- Request bodies, validated with the messages of Quay's JSON schemas -------------------------

/// A value as Python prints it, for jsonschema-style messages.
fn python_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

pub(crate) fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("Missing JSON body"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::Message(
            StatusCode::BAD_REQUEST,
            format!("Failed to decode JSON object: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::invalid(format!(
            "{} is not of type 'object'",
            python_repr(&other)
        ))),
    }
}

/// Checks that every key of `required` is present, in order, like jsonschema's first error.
pub(crate) fn require_keys(body: &Map<String, Value>, required: &[&str]) -> Result<(), ApiError> {
    match required.iter().find(|k| !body.contains_key(**k)) {
        Some(missing) => Err(ApiError::invalid(format!(
            "'{missing}' is a required property"
        ))),
        None => Ok(()),
    }
}

/// The string at `key` (None when absent, or null and `nullable`).
pub(crate) fn string_field<'b>(
    body: &'b Map<String, Value>,
    key: &str,
    nullable: bool,
) -> Result<Option<&'b str>, ApiError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::invalid(format!(
            "{} is not of type 'string'",
            python_repr(other)
        ))),
    }
}

/// The string at `key`, which must be one of `allowed` (None when absent).
pub(crate) fn enum_field<'b>(
    body: &'b Map<String, Value>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<&'b str>, ApiError> {
    let Some(value) = body.get(key) else {
        return Ok(None);
    };
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(Some(s)),
        _ => {
            let list: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
            Err(ApiError::invalid(format!(
                "{} is not one of [{}]",
                python_repr(value),
                list.join(", ")
            )))
        }
    }
}

/// A required role body (`{"role": "read"|"write"|"admin"}`).
pub(crate) fn role_body(call: &Call<'_>) -> Result<Role, ApiError> {
    let body = call.json()?;
    require_keys(&body, &["role"])?;
    let role = enum_field(&body, "role", &["read", "write", "admin"])?;
    role.and_then(Role::parse)
        .ok_or_else(|| ApiError::invalid("'role' is a required property"))
}

/// Quay's `truthy_bool` for query parameters.
pub(crate) fn truthy(value: Option<&str>, default: bool) -> bool {
    match value {
        None => default,
        Some(v) => !matches!(v, "" | "false" | "False" | "FALSE" | "0" | "null"),
    }
}

pub(crate) fn success() -> ApiResult {
    Ok(Json(json!({ "success": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rest: &str, method: Method) -> Result<(String, String, Endpoint), RouteError> {
        parse_path(rest, &method)
    }

    fn ok(ns: &str, name: &str, e: Endpoint) -> Result<(String, String, Endpoint), RouteError> {
        Ok((ns.to_string(), name.to_string(), e))
    }

    #[test]
    fn paths_split_into_repository_and_endpoint() {
        use Endpoint::*;
        assert_eq!(parse("ns/app", Method::GET), ok("ns", "app", Repository));
        assert_eq!(parse("ns/a/b", Method::DELETE), ok("ns", "a/b", Repository));
        assert_eq!(
            parse("ns/a/b/changevisibility", Method::POST),
            ok("ns", "a/b", ChangeVisibility)
        );
        assert_eq!(
            parse("ns/app/permissions/user/", Method::GET),
            ok("ns", "app", UserPermissions)
        );
        assert_eq!(
            parse("ns/app/permissions/team/owners", Method::PUT),
            ok("ns", "app", TeamPermission("owners".into()))
        );
        assert_eq!(parse("ns/app/tag/", Method::GET), ok("ns", "app", Tags));
        assert_eq!(
            parse("ns/app/tag/v1/restore", Method::POST),
            ok("ns", "app", RestoreTag("v1".into()))
        );
        assert_eq!(
            parse("ns/app/manifest/sha256:ab", Method::GET),
            ok("ns", "app", Manifest("sha256:ab".into()))
        );
        // The longest repository that leaves a suffix wins.
        assert_eq!(
            parse("ns/a/tag/b/tag/v1", Method::PUT),
            ok("ns", "a/tag/b", Tag("v1".into()))
        );
        // A repository that looks like a suffix is still reachable by the methods the suffix
        // endpoint lacks.
        assert_eq!(
            parse("ns/a/changevisibility", Method::GET),
            ok("ns", "a/changevisibility", Repository)
        );
        assert_eq!(
            parse("ns/tag/v1", Method::GET),
            ok("ns", "tag/v1", Repository)
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        assert_eq!(parse("ns", Method::GET), Err(RouteError::NotFound));
        assert_eq!(parse("ns/", Method::GET), Err(RouteError::NotFound));
        assert_eq!(parse("ns//x", Method::GET), Err(RouteError::NotFound));
        assert_eq!(
            parse("ns/app/changestate", Method::POST),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            parse("ns/app/tag/", Method::POST),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn bodies_fail_like_json_schema() {
        let msg = |r: Result<Map<String, Value>, ApiError>| match r {
            Err(ApiError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg(json_object(&Bytes::new())), "Missing JSON body");
        assert_eq!(
            msg(json_object(&Bytes::from_static(b"[1]"))),
            "[1] is not of type 'object'"
        );
        let body = json_object(&Bytes::from_static(br#"{"role":"owner"}"#)).unwrap();
        match enum_field(&body, "role", &["read", "write", "admin"]) {
            Err(ApiError::InvalidRequest(m)) => {
                assert_eq!(m, "'owner' is not one of ['read', 'write', 'admin']")
            }
            other => panic!("{other:?}"),
        }
        match require_keys(&body, &["role", "name"]) {
            Err(ApiError::InvalidRequest(m)) => assert_eq!(m, "'name' is a required property"),
            other => panic!("{other:?}"),
        }
    }
}
