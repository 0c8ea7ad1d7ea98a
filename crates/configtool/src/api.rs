//! The config tool's HTTP API, as Quay's config editor serves it (`/api/v1/config*`).
//!
//! - `GET /api/v1/config`: `{"config.yaml": {defaults merged with the mounted config},
//!   "certs": {"<name>": "<base64>"}}`; without a mounted `config.yaml`, the defaults;
//! - `POST /api/v1/config/validate?mode=online|offline` (default online, as Quay's editor),
//!   body `{"config.yaml": {...}, "certs": {...}}`: the validation array, `200`;
//! - `POST /api/v1/config/download`, same body: `quay-config.tar.gz` with `config.yaml`
//!   (YAML), the certificates, and an `extra_ca_certs/` directory entry.
//!
//! Every request needs HTTP Basic credentials `quayconfig:<password>`; the password is
//! compared in constant time, and anything else is `401` with a `WWW-Authenticate: Basic`
//! challenge. Bodies that are not a bundle are `400` with a plain-text reason.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::bundle::{load_certs, parse_yaml};
use crate::defaults::merged;
use crate::{Bundle, CONFIG_TOOL_USER, Mode, Options};

/// What the config tool serves.
#[derive(Clone)]
pub struct ToolOptions {
    /// The mounted config directory (`config.yaml` and certificates).
    pub config_dir: PathBuf,
    /// The password of the `quayconfig` user.
    pub password: String,
    /// The timeout of each online check.
    pub online_timeout: Duration,
}

impl std::fmt::Debug for ToolOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolOptions")
            .field("config_dir", &self.config_dir)
            .field("password", &"***")
            .field("online_timeout", &self.online_timeout)
            .finish()
    }
}

type Shared = Arc<ToolOptions>;

/// The config tool's routes, behind its Basic authentication.
pub fn router(options: ToolOptions) -> Router {
    let shared: Shared = Arc::new(options);
    Router::new()
        .route("/api/v1/config", get(get_config))
        .route("/api/v1/config/validate", post(validate))
        .route("/api/v1/config/download", post(download))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// Serves the config tool on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: ToolOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(options))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Refuses requests without `quayconfig:<password>`.
async fn authenticate(State(options): State<Shared>, request: Request, next: Next) -> Response {
    if authorized(request.headers(), &options.password) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Wharf config tool\""),
        )],
        "authentication required: HTTP Basic with user quayconfig and the config tool's password\n",
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, password: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = data_encoding::BASE64.decode(encoded.trim().as_bytes()) else {
        return false;
    };
    let Some((user, given)) = decoded.split_first_colon() else {
        return false;
    };
    // Both comparisons always run, over digests, so timing tells nothing about either.
    let user_ok = same(user, CONFIG_TOOL_USER.as_bytes());
    let password_ok = same(given, password.as_bytes());
    user_ok & password_ok
}

/// Constant-time equality of two byte strings of any length (compares SHA-256 digests).
fn same(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

trait SplitColon {
    fn split_first_colon(&self) -> Option<(&[u8], &[u8])>;
}

impl SplitColon for Vec<u8> {
    fn split_first_colon(&self) -> Option<(&[u8], &[u8])> {
        let at = self.iter().position(|b| *b == b':')?;
        Some((&self[..at], &self[at + 1..]))
    }
}

/// A failed request: status and a plain-text reason.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

fn bad_request(reason: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, reason.into())
}

/// `GET /api/v1/config`.
async fn get_config(State(options): State<Shared>) -> Result<Response, Failure> {
    let dir = options.config_dir.clone();
    let (config, certs) = tokio::task::spawn_blocking(move || {
        let path = dir.join("config.yaml");
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => parse_yaml(&text).map_err(|e| e.to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(format!("could not read {}: {e}", path.display())),
        };
        let certs = load_certs(&dir).map_err(|e| e.to_string())?;
        Ok((config, certs))
    })
    .await
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let certs: Map<String, Value> = certs
        .into_iter()
        .map(|(name, bytes)| (name, Value::String(data_encoding::BASE64.encode(&bytes))))
        .collect();
    Ok(axum::Json(json!({"config.yaml": merged(config), "certs": certs})).into_response())
}

/// The body of validate and download requests.
#[derive(Deserialize)]
struct BundleBody {
    #[serde(rename = "config.yaml", default)]
    config: Value,
    #[serde(default)]
    certs: Option<BTreeMap<String, String>>,
}

/// Parses a request body into a bundle; certificate names must be relative paths inside the
/// config directory.
fn bundle_from(body: &Bytes) -> Result<Bundle, Failure> {
    let body: BundleBody = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the body must be a config bundle: {e}")))?;
    let config = match body.config {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err(bad_request("config.yaml must be a JSON object")),
    };
    let mut certs = BTreeMap::new();
    for (name, encoded) in body.certs.unwrap_or_default() {
        if !safe_name(&name) {
            return Err(bad_request(format!(
                "certificate name {name:?} must be a relative path inside the config directory"
            )));
        }
        let bytes = data_encoding::BASE64
            .decode(encoded.as_bytes())
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(encoded.as_bytes()))
            .map_err(|_| bad_request(format!("certificate {name} is not base64")))?;
        certs.insert(name, bytes);
    }
    Ok(Bundle::new(config, certs))
}

/// Whether a certificate name is a plain relative path (`ssl.cert`,
/// `extra_ca_certs/corp.crt`) that cannot leave the directory it is written to.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "config.yaml"
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[derive(Deserialize)]
struct ValidateQuery {
    mode: Option<String>,
}

/// `POST /api/v1/config/validate`.
async fn validate(
    State(options): State<Shared>,
    Query(query): Query<ValidateQuery>,
    body: Bytes,
) -> Result<Response, Failure> {
    let mode = match query.mode.as_deref() {
        None | Some("") => Mode::Online,
        Some(mode) => mode.parse::<Mode>().map_err(bad_request)?,
    };
    let bundle = bundle_from(&body)?;
    let run = Options {
        mode,
        timeout: options.online_timeout,
    };
    let problems = crate::validate(&bundle, &run).await;
    tracing::info!(mode = ?mode, problems = problems.len(), "config bundle validated");
    Ok(axum::Json(problems).into_response())
}

/// `POST /api/v1/config/download`.
async fn download(body: Bytes) -> Result<Response, Failure> {
    let bundle = bundle_from(&body)?;
    let archive = tokio::task::spawn_blocking(move || archive(&bundle))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"quay-config.tar.gz\"",
            ),
        ],
        archive,
    )
        .into_response())
}

/// The bundle as Quay's `quay-config.tar.gz`: an `extra_ca_certs/` directory, `config.yaml`
/// as YAML, and every certificate under its name. Keys are written 0600, the rest 0644.
pub(crate) fn archive(bundle: &Bundle) -> Result<Vec<u8>, String> {
    let yaml = serde_saphyr::to_string(&Value::Object(bundle.config.clone()))
        .map_err(|e| format!("cannot write config.yaml: {e}"))?;
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let io = |e: std::io::Error| e.to_string();
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(mtime);
    tar.append_data(&mut dir, "extra_ca_certs/", std::io::empty())
        .map_err(io)?;
    let files = std::iter::once(("config.yaml", yaml.as_bytes()))
        .chain(bundle.certs.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    for (name, contents) in files {
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_mode(if name.ends_with(".key") { 0o600 } else { 0o644 });
        file.set_size(contents.len() as u64);
        file.set_mtime(mtime);
        tar.append_data(&mut file, name, contents).map_err(io)?;
    }
    tar.into_inner().and_then(|gzip| gzip.finish()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn basic_credentials() {
        let header = |user_pass: &str| {
            let mut headers = HeaderMap::new();
            let value = format!(
                "Basic {}",
                data_encoding::BASE64.encode(user_pass.as_bytes())
            );
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
            );
            headers
        };
        assert!(authorized(
            &header("quayconfig:pw:with:colons"),
            "pw:with:colons"
        ));
        assert!(!authorized(&header("quayconfig:wrong"), "pw"));
        assert!(!authorized(&header("admin:pw"), "pw"));
        assert!(!authorized(&HeaderMap::new(), "pw"));
    }

    #[test]
    fn certificate_names_stay_inside() {
        for ok in ["ssl.cert", "extra_ca_certs/corp.crt", "ldap.crt"] {
            assert!(safe_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x.crt",
            "a/../../x",
            "a//b",
            "config.yaml",
            "a\\b",
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
    }
}
