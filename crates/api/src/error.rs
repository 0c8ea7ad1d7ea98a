//! Quay's API error bodies. Quay answers in several shapes and clients depend on them:
//!
//! - `ApiException`s: `{"detail","error_message","error_type","title","type","status"}` with
//!   400 `invalid_request`, 401 `invalid_token` ("Requires authentication"), 403
//!   `insufficient_scope` ("Unauthorized"), 404 `not_found`.
//! - model errors (a missing robot, an existing robot, a team that is not in the org):
//!   400 `{"message": …}` — the Quay Bridge Operator reads "missing robot" from that 400.
//! - plain aborts outside the API proper: `{"error": …}`.
//!
//! Policy: client mistakes get one of these with a useful message; database failures are
//! logged here and the client gets a 500 without details.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An `/api/v1` error response.
#[derive(Debug)]
pub enum ApiError {
    /// 400 `invalid_request` with a message.
    InvalidRequest(String),
    /// 401 when nobody is signed in, 403 when the caller lacks the right.
    Unauthorized { anonymous: bool },
    /// 404 `not_found`.
    NotFound,
    /// 400 `{"message": …}`, Quay's rendering of data-model errors.
    Model(String),
    /// Any status with `{"message": …}`.
    Message(StatusCode, String),
    /// Any status with `{"error": …}`.
    Plain(StatusCode, String),
    /// An operational failure (logged, 500).
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest(message.into())
    }

    pub fn model(message: impl Into<String>) -> ApiError {
        ApiError::Model(message.into())
    }
}

impl From<db::DbError> for ApiError {
    fn from(e: db::DbError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        match e {
            auth::AuthError::Invalid(_) => ApiError::Unauthorized { anonymous: true },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<auth::crypto::CryptoError> for ApiError {
    fn from(e: auth::crypto::CryptoError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

fn exception(status: StatusCode, kind: &str, message: &str) -> Value {
    json!({
        "detail": message,
        "error_message": message,
        "error_type": kind,
        "title": kind,
        "type": format!("/api/v1/error/{kind}"),
        "status": status.as_u16(),
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::InvalidRequest(m) => (
                StatusCode::BAD_REQUEST,
                exception(StatusCode::BAD_REQUEST, "invalid_request", &m),
            ),
            ApiError::Unauthorized { anonymous: true } => (
                StatusCode::UNAUTHORIZED,
                exception(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "Requires authentication",
                ),
            ),
            ApiError::Unauthorized { anonymous: false } => (
                StatusCode::FORBIDDEN,
                exception(StatusCode::FORBIDDEN, "insufficient_scope", "Unauthorized"),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                exception(StatusCode::NOT_FOUND, "not_found", "Not Found"),
            ),
            ApiError::Model(m) => (StatusCode::BAD_REQUEST, json!({ "message": m })),
            ApiError::Message(status, m) => (status, json!({ "message": m })),
            ApiError::Plain(status, m) => (status, json!({ "error": m })),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "message": "internal error; see the server log" }),
                )
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
