//! `FEATURE_RATE_LIMITS`: Quay's per-route request rate limits, which Quay sets in nginx
//! (`conf/nginx/rate-limiting.conf.jnj` and `server-base.conf.jnj`), as one middleware.
//!
//! nginx's `limit_req` is a leaky bucket per key and *zone*: a zone refills at `rate`, and a
//! location using it admits a request while at most `burst` earlier ones are still "in the
//! bucket" (`nodelay`: the rest are refused at once with 429). Several locations share a zone,
//! and with it the same bucket, each with its own burst. Quay's numbers, HTTP/1 and HTTP/2:
//!
//! | requests | zone (rate/s, HTTP/1 · HTTP/2) | burst (HTTP/1 · HTTP/2) |
//! |---|---|---|
//! | `/v2/_catalog` | heavy (1 · 20) | 1 · 5 |
//! | `/api/…` | heavy (1 · 20) | 25 · 100 |
//! | `/v2/<name>/tags/list` | namespaced heavy (1 · 20) | 2 · 2 |
//! | `/v2/<name>/blobs/…` (uploads too) | namespaced light (20 · 400) | 50 · 100 |
//! | `/v2/<name>/manifests/…` | namespaced light (20 · 400) | 10 · 50 |
//! | `/v2/auth` | static auth (30, per `Authorization` header) | 2 |
//! | any other `/v2…` | very light (30 · 600) | 20 · 80 |
//!
//! Keys, as Quay's: an HTTP/1 client is counted by its IP address (Quay: the PROXY-protocol
//! address), an HTTP/2 connection by itself (Quay: nginx's connection number; here the peer's
//! address and port), `/v2/auth` by its `Authorization` header (a hash of it; anonymous token
//! requests by client instead, where Quay would not count them). Requests for a namespace in
//! `NON_RATE_LIMITED_NAMESPACES` are never counted: `/v2/<ns>/…`, `/v2/auth` whose first
//! `scope` names a repository of `<ns>` (as newer Quay), and, beyond Quay, whose nginx does not
//! look at API paths, `/api/v1/repository/<ns>/…` and `/api/v1/organization/<ns>…`. A
//! single-component name (`/v2/ubuntu/…`) belongs to the library namespace.
//!
//! Quay's nginx only looks at two-component names for tags and manifests; Wharf classifies by
//! endpoint, so deeper names are limited by the same rules.
//!
//! The bucket is GCRA (the same arithmetic as nginx's leaky bucket) over an in-process map,
//! pruned as it grows. Limits are per Wharf process, as nginx's are per Quay pod.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use config::Config;

/// A zone's refill rate, in requests per second, for HTTP/1 clients and HTTP/2 connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub http1: f64,
    pub http2: f64,
}

/// What `FEATURE_RATE_LIMITS` turns on. [`RateLimits::quay`] has Quay's numbers; the bursts
/// per route are fixed (see the module documentation), the zone rates can be changed.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Catalog and `/api`.
    pub heavy: Rate,
    /// Tag lists.
    pub namespaced_heavy: Rate,
    /// Blobs, uploads and manifests.
    pub namespaced_light: Rate,
    /// The rest of `/v2`.
    pub very_light: Rate,
    /// `/v2/auth`, per `Authorization` header, whatever the protocol.
    pub static_auth: f64,
    /// `NON_RATE_LIMITED_NAMESPACES`.
    pub non_rate_limited_namespaces: Vec<String>,
    /// Where single-component repository names live (`LIBRARY_NAMESPACE` when
    /// `FEATURE_LIBRARY_SUPPORT`).
    pub library_namespace: Option<String>,
}

impl RateLimits {
    /// Quay's limits.
    pub fn quay(non_rate_limited_namespaces: Vec<String>, library: Option<String>) -> RateLimits {
        RateLimits {
            heavy: Rate {
                http1: 1.0,
                http2: 20.0,
            },
            namespaced_heavy: Rate {
                http1: 1.0,
                http2: 20.0,
            },
            namespaced_light: Rate {
                http1: 20.0,
                http2: 400.0,
            },
            very_light: Rate {
                http1: 30.0,
                http2: 600.0,
            },
            static_auth: 30.0,
            non_rate_limited_namespaces,
            library_namespace: library,
        }
    }

    /// The limits `config.yaml` asks for: None unless `FEATURE_RATE_LIMITS: true`.
    pub fn from_config(config: &Config) -> Option<RateLimits> {
        config.feature_rate_limits.then(|| {
            RateLimits::quay(
                config.non_rate_limited_namespaces.clone(),
                config
                    .feature_library_support
                    .then(|| config.library_namespace.clone()),
            )
        })
    }

    /// Every zone refilling `factor` times as fast (bursts unchanged). Tests use a tiny factor
    /// so that only the bursts count.
    pub fn scaled(mut self, factor: f64) -> RateLimits {
        for rate in [
            &mut self.heavy,
            &mut self.namespaced_heavy,
            &mut self.namespaced_light,
            &mut self.very_light,
        ] {
            rate.http1 *= factor;
            rate.http2 *= factor;
        }
        self.static_auth *= factor;
        self
    }
}

/// Wraps `router` in the rate limiter.
pub(crate) fn apply(router: Router, limits: RateLimits) -> Router {
    let limiter = Arc::new(Limiter::new(limits));
    router.layer(axum::middleware::from_fn_with_state(limiter, limit))
}

async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    match limiter.check(&request, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// The route groups of Quay's nginx configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Catalog,
    Api,
    Tags,
    Blobs,
    Manifests,
    Auth,
    OtherV2,
}

#[derive(Clone, Copy)]
enum ZoneId {
    Heavy,
    NamespacedHeavy,
    NamespacedLight,
    VeryLight,
    StaticAuth,
}

impl Group {
    /// The zone and the bursts (HTTP/1, HTTP/2) of Quay's location for this group.
    fn route(self) -> (ZoneId, u32, u32) {
        match self {
            Group::Catalog => (ZoneId::Heavy, 1, 5),
            Group::Api => (ZoneId::Heavy, 25, 100),
            Group::Tags => (ZoneId::NamespacedHeavy, 2, 2),
            Group::Blobs => (ZoneId::NamespacedLight, 50, 100),
            Group::Manifests => (ZoneId::NamespacedLight, 10, 50),
            Group::Auth => (ZoneId::StaticAuth, 2, 2),
            Group::OtherV2 => (ZoneId::VeryLight, 20, 80),
        }
    }
}

/// Who a bucket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// An HTTP/1 client.
    Client(IpAddr),
    /// An HTTP/2 connection.
    Connection(SocketAddr),
    /// A hash of an `Authorization` header (the header itself is not kept).
    Credentials(u64),
    /// A request without a peer address (served without connection info).
    Unknown,
}

struct Limiter {
    zones: [Zone; 5],
    exempt: HashSet<String>,
    library: Option<String>,
}

impl Limiter {
    fn new(limits: RateLimits) -> Limiter {
        let zone = |rate: Rate| Zone::new(rate.http1, rate.http2);
        Limiter {
            zones: [
                zone(limits.heavy),
                zone(limits.namespaced_heavy),
                zone(limits.namespaced_light),
                zone(limits.very_light),
                Zone::new(limits.static_auth, limits.static_auth),
            ],
            exempt: limits.non_rate_limited_namespaces.into_iter().collect(),
            library: limits.library_namespace,
        }
    }

    fn check(&self, request: &Request, now: Instant) -> Result<(), Rejection> {
        let uri = request.uri();
        let Some((group, namespace)) = classify(uri.path(), uri.query(), self.library.as_deref())
        else {
            return Ok(());
        };
        if namespace.is_some_and(|ns| self.exempt.contains(&ns)) {
            return Ok(());
        }
        let http2 = request.version() == Version::HTTP_2;
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let client = match (peer, http2) {
            (Some(peer), true) => Key::Connection(peer),
            (Some(peer), false) => Key::Client(peer.ip()),
            (None, _) => Key::Unknown,
        };
        let key = match (group, request.headers().get(header::AUTHORIZATION)) {
            (Group::Auth, Some(credentials)) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                credentials.as_bytes().hash(&mut hasher);
                Key::Credentials(hasher.finish())
            }
            _ => client,
        };
        let (zone, burst1, burst2) = group.route();
        let burst = if http2 { burst2 } else { burst1 };
        self.zones[zone as usize]
            .admit(key, http2, burst, now)
            .map_err(|wait| Rejection {
                api: group == Group::Api,
                retry_after: wait,
            })
    }
}

/// One zone: the theoretical arrival time of each key's next request.
struct Zone {
    /// Time between requests at the zone's rate, HTTP/1 and HTTP/2.
    interval: [Duration; 2],
    state: Mutex<ZoneState>,
}

struct ZoneState {
    next: HashMap<Key, Instant>,
    prune_at: usize,
}

const PRUNE_FLOOR: usize = 1024;

impl Zone {
    fn new(http1: f64, http2: f64) -> Zone {
        let interval = |rate: f64| {
            if rate.is_finite() && rate > 0.0 {
                Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX)
            } else {
                Duration::MAX
            }
        };
        Zone {
            interval: [interval(http1), interval(http2)],
            state: Mutex::new(ZoneState {
                next: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Admits a request of `key` if no more than `burst` earlier ones are still in its bucket;
    /// otherwise says how long until one leaks out.
    fn admit(&self, key: Key, http2: bool, burst: u32, now: Instant) -> Result<(), Duration> {
        let interval = self.interval[usize::from(http2)];
        let tolerance = interval.checked_mul(burst).unwrap_or(Duration::MAX);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = state.next.get(&key).copied().unwrap_or(now).max(now);
        let backlog = next - now;
        if backlog > tolerance {
            return Err(backlog - tolerance);
        }
        let after = next.checked_add(interval).unwrap_or(next);
        state.next.insert(key, after);
        if state.next.len() >= state.prune_at {
            // A key whose next time has passed is as good as new: forget it.
            state.next.retain(|_, next| *next > now);
            state.prune_at = (state.next.len() * 2).max(PRUNE_FLOOR);
        }
        Ok(())
    }
}

/// The route group of a request and the namespace it names, if it is limited at all.
fn classify(
    path: &str,
    query: Option<&str>,
    library: Option<&str>,
) -> Option<(Group, Option<String>)> {
    if path == "/v2/auth" {
        let namespace = query.and_then(first_scope_namespace);
        return Some((Group::Auth, namespace));
    }
    if let Some(rest) = path
        .strip_prefix("/v2/")
        .or(path.strip_prefix("/v2").filter(|r| r.is_empty()))
    {
        use registry::Endpoint;
        let namespace_of = |name: &str| match name.split_once('/') {
            Some((ns, _)) => Some(ns.to_string()),
            None => Some(library.unwrap_or(name).to_string()),
        };
        return Some(match Endpoint::parse(rest) {
            Some(Endpoint::Catalog) => (Group::Catalog, None),
            Some(Endpoint::Base) => (Group::OtherV2, None),
            Some(Endpoint::Tags { name }) => (Group::Tags, namespace_of(&name)),
            Some(
                Endpoint::Blob { name, .. }
                | Endpoint::UploadStart { name }
                | Endpoint::Upload { name, .. },
            ) => (Group::Blobs, namespace_of(&name)),
            Some(Endpoint::Manifest { name, .. }) => (Group::Manifests, namespace_of(&name)),
            Some(Endpoint::Referrers { name, .. }) => (Group::OtherV2, namespace_of(&name)),
            None => (
                Group::OtherV2,
                rest.split_once('/').map(|(ns, _)| ns.to_string()),
            ),
        });
    }
    if path.starts_with("/api/") {
        let namespace = ["/api/v1/repository/", "/api/v1/organization/"]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix))
            .and_then(|rest| rest.split('/').next())
            .filter(|ns| !ns.is_empty())
            .map(str::to_string);
        return Some((Group::Api, namespace));
    }
    None
}

/// The namespace of the first `scope=repository:<ns>/<repo>:<actions>` of a token request.
fn first_scope_namespace(query: &str) -> Option<String> {
    let scope = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("scope="))
        .map(percent_decode)?;
    let name = scope.strip_prefix("repository:")?;
    let (ns, _) = name.split_once('/')?;
    Some(ns.to_string())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A refused request: 429 in the error shape of its surface, with `Retry-After`.
struct Rejection {
    api: bool,
    retry_after: Duration,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let seconds = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        let message = format!("too many requests; retry after {seconds} seconds");
        let mut response = if self.api {
            // Quay's ApiException shape, as crates/api renders its errors.
            let body = serde_json::json!({
                "detail": message,
                "error_message": message,
                "error_type": "too_many_requests",
                "title": "too_many_requests",
                "type": "/api/v1/error/too_many_requests",
                "status": 429,
            });
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        } else {
            registry::OciError::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message)
                .into_response()
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_quays_route_groups() {
        let lib = Some("library");
        let c = |path: &str| classify(path, None, lib);
        assert_eq!(c("/v2/_catalog"), Some((Group::Catalog, None)));
        assert_eq!(c("/v2/"), Some((Group::OtherV2, None)));
        assert_eq!(c("/v2"), Some((Group::OtherV2, None)));
        assert_eq!(
            c("/v2/acme/app/tags/list"),
            Some((Group::Tags, Some("acme".into())))
        );
        assert_eq!(
            c("/v2/acme/team/app/blobs/uploads/"),
            Some((Group::Blobs, Some("acme".into())))
        );
        assert_eq!(
            c("/v2/ubuntu/manifests/latest"),
            Some((Group::Manifests, Some("library".into())))
        );
        assert_eq!(
            c("/v2/acme/app/referrers/sha256:00"),
            Some((Group::OtherV2, Some("acme".into())))
        );
        assert_eq!(
            c("/api/v1/repository/acme/app/tag/"),
            Some((Group::Api, Some("acme".into())))
        );
        assert_eq!(
            c("/api/v1/organization/acme"),
            Some((Group::Api, Some("acme".into())))
        );
        assert_eq!(c("/api/v1/user/"), Some((Group::Api, None)));
        assert_eq!(c("/keys/services/quay/keys"), None);
        assert_eq!(c("/health/instance"), None);
        assert_eq!(
            classify(
                "/v2/auth",
                Some("service=x&scope=repository%3Aacme%2Fapp%3Apull"),
                lib
            ),
            Some((Group::Auth, Some("acme".into())))
        );
    }

    #[test]
    fn burst_then_refusal_then_refill() {
        // 10 requests per second, burst 2: three at once, then one per 100 ms.
        let zone = Zone::new(10.0, 10.0);
        let key = Key::Client(IpAddr::from([192, 0, 2, 1]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(zone.admit(key, false, 2, t0), Ok(()));
        }
        let wait = zone.admit(key, false, 2, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(zone.admit(key, false, 2, t0 + wait), Ok(()));
        // Another client has its own bucket.
        let other = Key::Client(IpAddr::from([192, 0, 2, 2]));
        assert_eq!(zone.admit(other, false, 2, t0), Ok(()));
    }

    #[test]
    fn decodes_scopes() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull"),
            "repository:a/b:pull"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
