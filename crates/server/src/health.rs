//! Quay's health endpoints, for load balancers and orchestrators' probes.
//!
//! - `GET /health/instance` (and `/health`): can this node serve? The database answers, the
//!   storage location uploads go to takes a write, and this node's registry handlers answer.
//! - `GET /health/endtoend`: is the installation whole? The database, Redis (when configured)
//!   and every storage location.
//!
//! Both answer Quay's shape, `{"data": {"services": {"<name>": bool, ...}, "notes": [...],
//! "is_testing": false}, "status_code": 200}`, with 200 when every service is healthy and 503
//! otherwise. Quay shows `notes` and `is_testing` (and failure messages) to superusers only;
//! Wharf always shows the first two, which reveal nothing, and never sends failure messages:
//! it logs them. `/v1/_ping`, `/v1/_internal_ping` and `/_internal_ping` answer `true` as
//! Quay's do.

use std::future::Future;
use std::time::Duration;

use auth::Auth;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;
use wharf_core::Registry;

/// How long one check may take before it counts as failed (Quay gives its worker check 2 s;
/// a storage write may need longer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis server to check: Quay's `BUILDLOGS_REDIS` (or `USER_EVENTS_REDIS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
    /// TLS, which this check cannot speak: it is then skipped with a note.
    pub ssl: bool,
}

impl RedisTarget {
    /// The target a Quay-style `{host, port, password, ssl}` map describes.
    pub fn from_config(map: &std::collections::BTreeMap<String, Value>) -> Option<RedisTarget> {
        let host = map.get("host")?.as_str()?.to_string();
        let port = match map.get("port") {
            Some(Value::Number(n)) => u16::try_from(n.as_u64()?).ok()?,
            Some(Value::String(s)) => s.parse().ok()?,
            _ => 6379,
        };
        let password = map
            .get("password")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let ssl = map.get("ssl").and_then(Value::as_bool).unwrap_or(false);
        Some(RedisTarget {
            host,
            port,
            password,
            ssl,
        })
    }
}

/// What the health checks look at.
#[derive(Clone)]
pub(crate) struct Health {
    registry: Registry,
    auth: Auth,
    /// The `/v2` handlers of this node, asked in-process (Quay asks its own gunicorn workers
    /// over HTTP).
    v2: Router,
    redis: Option<RedisTarget>,
}

impl Health {
    pub(crate) fn new(registry: &Registry, auth: &Auth, redis: Option<RedisTarget>) -> Health {
        Health {
            registry: registry.clone(),
            auth: auth.clone(),
            v2: registry::router(registry.clone(), auth.clone()),
            redis,
        }
    }
}

/// The health routes.
pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/health", get(instance))
        .route("/health/instance", get(instance))
        .route("/health/endtoend", get(endtoend))
        .route("/_internal_ping", get(ping))
        .route("/v1/_internal_ping", get(ping))
        .route("/v1/_ping", get(v1_ping))
        .with_state(health)
}

/// The result of the checks: (service, healthy) in a stable order, and notes.
#[derive(Default)]
struct Report {
    services: Vec<(&'static str, bool)>,
    notes: Vec<String>,
}

impl Report {
    fn into_response(self, kind: &str) -> Response {
        let healthy = self.services.iter().all(|(_, ok)| *ok);
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if !healthy {
            let failed: Vec<&str> = self
                .services
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(name, _)| *name)
                .collect();
            tracing::warn!(check = kind, failed = ?failed, "failed health check");
        }
        let services: Map<String, Value> = self
            .services
            .into_iter()
            .map(|(name, ok)| (name.to_string(), Value::Bool(ok)))
            .collect();
        let body = json!({
            "data": {
                "services": services,
                "notes": self.notes,
                "is_testing": false,
            },
            "status_code": status.as_u16(),
        });
        (
            status,
            [(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")],
            axum::Json(body),
        )
            .into_response()
    }
}

/// Runs a check with [`CHECK_TIMEOUT`]; a failure is logged with its cause and reported as
/// `false`.
async fn check<E: std::fmt::Display>(
    name: &str,
    future: impl Future<Output = Result<(), E>>,
) -> bool {
    match tokio::time::timeout(CHECK_TIMEOUT, future).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(service = name, error = %e, "health check failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                service = name,
                timeout_s = CHECK_TIMEOUT.as_secs(),
                "health check timed out"
            );
            false
        }
    }
}

async fn instance(State(health): State<Health>) -> Response {
    let mut report = Report::default();
    let locations = health.registry.locations();
    let storage = async {
        match locations.first() {
            Some(location) => storage_check(&health, location, &mut Vec::new()).await,
            None => false,
        }
    };
    let (database, storage, registry) = tokio::join!(
        check("database", health.auth.db().ping()),
        storage,
        check("registry", answers(&health.v2)),
    );
    if health.auth.settings().policy.registry_read_only {
        report
            .notes
            .push("storage check disabled for readonly mode".into());
    }
    report.services = vec![
        ("database", database),
        ("storage", storage),
        ("registry", registry),
    ];
    report.into_response("instance")
}

async fn endtoend(State(health): State<Health>) -> Response {
    let mut report = Report::default();
    let mut notes = Vec::new();
    let storage = async {
        let mut all = true;
        for location in health.registry.locations() {
            all &= storage_check(&health, location, &mut notes).await;
        }
        all
    };
    let redis = async {
        match &health.redis {
            Some(target) if !target.ssl => Some(check("redis", redis_ping(target)).await),
            _ => None,
        }
    };
    let (database, storage, redis) =
        tokio::join!(check("database", health.auth.db().ping()), storage, redis);
    report.notes = notes;
    report.services.push(("database", database));
    match (redis, &health.redis) {
        (Some(ok), _) => report.services.push(("redis", ok)),
        (None, Some(_)) => report
            .notes
            .push("redis uses TLS, which this check does not speak; skipped".into()),
        (None, None) => {}
    }
    report.services.push(("storage", storage));
    if health.auth.settings().policy.registry_read_only {
        report
            .notes
            .push("storage check disabled for readonly mode".into());
    }
    report.into_response("endtoend")
}

/// Writes, reads back the size of, and deletes a small object in a storage location (Quay
/// validates storage the same way). In read-only mode nothing is written and the check passes.
async fn storage_check(
    health: &Health,
    location: &wharf_core::Location,
    notes: &mut Vec<String>,
) -> bool {
    if health.auth.settings().policy.registry_read_only {
        return true;
    }
    let ok = check("storage", write_and_delete(location.store.as_ref())).await;
    if !ok {
        notes.push(format!(
            "storage location {} failed its check",
            location.name
        ));
    }
    ok
}

async fn write_and_delete(store: &dyn storage::BlobStore) -> Result<(), storage::StorageError> {
    const CONTENT: &[u8] = b"wharf health check";
    let key = format!("health/{}", uuid_like());
    let body = futures::stream::once(async { Ok(bytes::Bytes::from_static(CONTENT)) });
    store.put(&key, Box::pin(body)).await?;
    let size = store.stat(&key).await;
    let deleted = store.delete(&key).await;
    match size? {
        Some(n) if n == CONTENT.len() as u64 => deleted,
        other => Err(storage::StorageError::NotFound(format!(
            "{key}: written {} bytes, found {other:?}",
            CONTENT.len()
        ))),
    }
}

/// A unique name for a check's object, so that nodes checking at once never collide.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this node's `/v2/` handler answers as it should (200, or 401 asking for a token),
/// called in-process through the same router the listener serves.
async fn answers(v2: &Router) -> Result<(), String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v2/")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = v2
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    match response.status() {
        StatusCode::OK | StatusCode::UNAUTHORIZED => Ok(()),
        other => Err(format!("GET /v2/ answered {other}")),
    }
}

/// `PING` over RESP (after `AUTH` when a password is set); `+PONG` means healthy.
async fn redis_ping(target: &RedisTarget) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("{}:{}: {e}", target.host, target.port))?;
    let mut stream = BufReader::new(stream);
    let mut reply = String::new();
    if let Some(password) = &target.password {
        stream
            .write_all(&resp_command(&["AUTH", password]))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .read_line(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        if !reply.starts_with("+OK") {
            // The reply may echo nothing secret, but keep it out of the logs anyway.
            return Err("redis refused the password".into());
        }
        reply.clear();
    }
    stream
        .write_all(&resp_command(&["PING"]))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .read_line(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("redis answered {:?} to PING", reply.trim_end()))
    }
}

fn resp_command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn ping() -> &'static str {
    "true"
}

/// Docker's v1 ping, with the headers Quay sends.
async fn v1_ping() -> Response {
    (
        [
            ("x-docker-registry-version", "0.6.0"),
            ("x-docker-registry-standalone", "0"),
        ],
        "true",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_targets_read_quay_maps() {
        let map: std::collections::BTreeMap<String, Value> = serde_json::from_value(json!({
            "host": "redis.example", "port": 6380, "password": "pw", "ssl": true
        }))
        .unwrap_or_default();
        assert_eq!(
            RedisTarget::from_config(&map),
            Some(RedisTarget {
                host: "redis.example".into(),
                port: 6380,
                password: Some("pw".into()),
                ssl: true,
            })
        );
        let map: std::collections::BTreeMap<String, Value> =
            serde_json::from_value(json!({"host": "r"})).unwrap_or_default();
        assert_eq!(RedisTarget::from_config(&map).map(|t| t.port), Some(6379));
    }

    #[test]
    fn resp_commands_are_arrays_of_bulk_strings() {
        assert_eq!(resp_command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            resp_command(&["AUTH", "pw"]),
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        );
    }
}
