//! The OCI Distribution HTTP surface (`/v2/`). One catch-all route hands the path to
//! [`endpoint::Endpoint::parse`]; handlers parse the request, call a `wharf_core::Registry`
//! service and render the result or an OCI error envelope.

mod access;
mod blobs;
pub mod endpoint;
mod error;
mod listing;
mod manifests;
mod uploads;

use auth::{Auth, Grants};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::TryStreamExt;
use tracing::Instrument;
use wharf_core::{BodyStream, Registry};

pub use endpoint::Endpoint;
pub use error::OciError;

const API_VERSION: &str = "Docker-Distribution-API-Version";

/// What the `/v2` handlers share.
#[derive(Clone)]
pub struct V2 {
    pub registry: Registry,
    pub auth: Auth,
}

/// The `/v2` router, with the token endpoint and the keys that verify its tokens.
pub fn router(registry: Registry, auth: Auth) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/auth", any(token))
        .route("/v2/{*rest}", any(dispatch))
        .route("/keys/services/{service}/keys", any(keys))
        .with_state(V2 { registry, auth })
}

async fn token(State(v2): State<V2>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let req = Req {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
        grants: None,
    };
    with_api_version(access::token(&v2.auth, req).await)
}

/// `GET /keys/services/<service>/keys`: the JWKs that verify registry tokens.
async fn keys(
    State(v2): State<V2>,
    axum::extract::Path(service): axum::extract::Path<String>,
) -> Response {
    if service != v2.auth.settings().issuer {
        return (StatusCode::NOT_FOUND, "{}").into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v2.auth.jwks().to_string(),
    )
        .into_response()
}

async fn base(method: Method) -> Response {
    let response = match method {
        Method::GET | Method::HEAD => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        _ => unsupported(),
    };
    with_api_version(response)
}

/// The parts of a request every handler may need.
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Body,
    /// What the request's registry token allows (set once the request is authorized).
    pub grants: Option<std::sync::Arc<Grants>>,
}

impl Req {
    /// The value of query parameter `key`, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.uri.query()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v))
        })
    }

    /// Every value of query parameter `key`, percent-decoded.
    pub fn query_all(&self, key: &str) -> Vec<String> {
        let Some(query) = self.uri.query() else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == key).then(|| percent_decode(v))
            })
            .collect()
    }

    pub fn header(&self, name: &header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a stream of frames for the upload pipeline.
    pub fn into_stream(self) -> BodyStream {
        Box::pin(self.body.into_data_stream().map_err(|e| e.to_string()))
    }
}

async fn dispatch(State(v2): State<V2>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The raw path, not a decoded `Path` extractor: names, tags and digests never contain
    // percent-escapes, so anything encoded is simply an invalid name, answered as OCI does.
    let rest = parts
        .uri
        .path()
        .strip_prefix("/v2/")
        .unwrap_or_default()
        .to_string();
    let mut req = Req {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
        grants: None,
    };
    let Some(endpoint) = Endpoint::parse(&rest) else {
        return with_api_version(
            OciError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "no such endpoint")
                .into_response(),
        );
    };
    let span = tracing::debug_span!("v2", endpoint = endpoint.label(), method = %req.method);
    match access::authorize(
        &v2.auth,
        &v2.registry,
        &endpoint,
        &req.method,
        &req.headers,
        &req.uri,
    )
    .instrument(span.clone())
    .await
    {
        Ok(grants) => req.grants = Some(grants),
        Err(refused) => return with_api_version(refused),
    }
    let result = route(&v2, endpoint, req).instrument(span).await;
    with_api_version(result.unwrap_or_else(IntoResponse::into_response))
}

/// Calls the handler of `endpoint`.
async fn route(v2: &V2, endpoint: Endpoint, req: Req) -> Result<Response, OciError> {
    let registry = &v2.registry;
    match endpoint {
        Endpoint::Base => Ok(base(req.method).await),
        Endpoint::Catalog => listing::catalog(v2, req).await,
        Endpoint::Tags { name } => listing::tags(registry, &name, req).await,
        Endpoint::Referrers { name, digest } => {
            listing::referrers(registry, &name, &digest, req).await
        }
        Endpoint::Manifest { name, reference } => {
            manifests::handle(registry, &name, &reference, req).await
        }
        Endpoint::Blob { name, digest } => blobs::handle(registry, &name, &digest, req).await,
        Endpoint::UploadStart { name } => uploads::start(registry, &name, req).await,
        Endpoint::Upload { name, uuid } => uploads::handle(registry, &name, &uuid, req).await,
    }
}

fn with_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

pub(crate) fn unsupported() -> Response {
    OciError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported",
    )
    .into_response()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds a response from a status, headers and a body.
pub(crate) fn respond(
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            map.insert(name, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_query_values() {
        assert_eq!(super::percent_decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(super::percent_decode("a%2Fb"), "a/b");
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::percent_decode("%zz"), "%zz");
    }
}
