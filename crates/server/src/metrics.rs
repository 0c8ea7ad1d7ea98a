//! Prometheus metrics of the whole process, under Quay's names and labels, served as the
//! Prometheus text format (0.0.4) at `/metrics` on a listener of its own (Quay's port 9091).
//!
//! Where each figure comes from:
//! - request durations: the [`track_request`] middleware, by route template (never a raw path)
//!   and by namespace when it is one of `TRACKED_NAMESPACES`;
//! - pulls, pushes, bytes and upload sessions: atomic counters the registry services keep
//!   ([`wharf_core::Registry::traffic_stats`]), read at scrape time;
//! - garbage collection: [`wharf_core::Registry::gc_stats`]; authentication attempts:
//!   [`auth::Auth::attempts`];
//! - row counts and queue depths: database queries, made by a scrape at most once per
//!   refresh interval, so that a storm of scrapes never becomes a storm of queries.
//!
//! Unlike Quay, whose processes push to a Pushgateway and must be summed in PromQL, one Wharf
//! process serves one endpoint for all it does (HTTP and workers alike).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth::{AttemptKind, Auth};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use db::{Db, RowCounts};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::net::TcpListener;
use wharf_core::Registry;

/// Upper bounds of the request-duration buckets, in seconds: client_python's defaults, which
/// Quay's histograms use.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// How long a database query made for a scrape may take before the scrape goes on with the
/// figures it had.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// The `namespace_name` of requests outside `TRACKED_NAMESPACES` (or naming none).
const OTHER: &str = "other";

/// How the application reports on itself: request-metric labels, the age of database figures,
/// and what the end-to-end health check asks besides the database and storage.
#[derive(Clone, Debug)]
pub struct Monitoring {
    /// `TRACKED_NAMESPACES`: namespaces with their own `namespace_name` label.
    pub tracked_namespaces: Vec<String>,
    /// How old the row counts and queue depths of a scrape may be.
    pub refresh_interval: Duration,
    /// The Redis `/health/endtoend` pings, when one is configured.
    pub redis: Option<crate::health::RedisTarget>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            tracked_namespaces: Vec::new(),
            refresh_interval: DEFAULT_REFRESH,
            redis: None,
        }
    }
}

impl Monitoring {
    pub fn from_config(config: &config::Config) -> Monitoring {
        let redis = config
            .buildlogs_redis
            .as_ref()
            .or(config.user_events_redis.as_ref())
            .and_then(crate::health::RedisTarget::from_config);
        Monitoring {
            tracked_namespaces: config.tracked_namespaces.clone(),
            redis,
            ..Monitoring::default()
        }
    }
}

/// How old database figures may be by default: half a typical scrape interval of a minute.
const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// The metrics of one process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    prometheus: prometheus_client::registry::Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    tracked: Vec<String>,
    library_namespace: Option<String>,
    db: Db,
    refresh_interval: Duration,
    /// When the database figures were last refreshed (or tried); held while refreshing, so
    /// concurrent scrapes wait for one refresh instead of starting their own.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    figures: Arc<Mutex<DbFigures>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Cow<'static, str>,
    status: u16,
    namespace_name: Cow<'static, str>,
}

/// The figures read from the database by the last refresh.
#[derive(Debug, Default)]
struct DbFigures {
    rows: Option<RowCounts>,
    /// (available, locked, available and unlocked) by queue; a queue seen once stays, at zero
    /// when it empties, so its series does not vanish.
    queues: BTreeMap<String, [u64; 3]>,
}

impl Metrics {
    /// Metrics over these services.
    pub fn new(registry: &Registry, auth: &Auth, monitoring: &Monitoring) -> Metrics {
        let mut prometheus = prometheus_client::registry::Registry::default();
        let requests: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        prometheus.register(
            "quay_request_duration_seconds",
            "seconds taken to process a request",
            requests.clone(),
        );
        let figures = Arc::new(Mutex::new(DbFigures::default()));
        prometheus.register_collector(Box::new(Counters {
            registry: registry.clone(),
            auth: auth.clone(),
            figures: figures.clone(),
        }));
        Metrics {
            inner: Arc::new(Inner {
                prometheus,
                requests,
                tracked: monitoring.tracked_namespaces.clone(),
                library_namespace: registry.settings().library_namespace.clone(),
                db: auth.db().clone(),
                refresh_interval: monitoring.refresh_interval,
                refreshed: tokio::sync::Mutex::new(None),
                figures,
            }),
        }
    }

    /// The metrics in the Prometheus text format, with database figures refreshed if stale.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        self.refresh().await;
        let mut body = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut body, &self.inner.prometheus)?;
        Ok(body)
    }

    async fn refresh(&self) {
        let mut refreshed = self.inner.refreshed.lock().await;
        if refreshed.is_some_and(|at| at.elapsed() < self.inner.refresh_interval) {
            return;
        }
        let db = &self.inner.db;
        let queried = tokio::time::timeout(REFRESH_TIMEOUT, async {
            Ok::<_, db::DbError>((db.row_counts().await?, db.queue_counts().await?))
        })
        .await;
        match queried {
            Ok(Ok((rows, queues))) => {
                let mut figures = self.inner.figures.lock().unwrap_or_else(|p| p.into_inner());
                figures.rows = Some(rows);
                for counts in figures.queues.values_mut() {
                    *counts = [0; 3];
                }
                for q in queues {
                    figures
                        .queues
                        .insert(q.queue, [q.available, q.locked, q.available_unlocked]);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: could not read database figures"),
            Err(_) => tracing::warn!("metrics: reading database figures timed out"),
        }
        // A failed refresh waits for the next interval too: an unreachable database must not
        // be asked once per scrape.
        *refreshed = Some(Instant::now());
    }

    /// Records one request.
    fn observe(
        &self,
        method: &'static str,
        route: Cow<'static, str>,
        status: u16,
        namespace_name: Cow<'static, str>,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            method,
            route,
            status,
            namespace_name,
        };
        self.inner
            .requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The `namespace_name` label for a namespace named in a request.
    fn namespace_label(&self, namespace: Option<&str>) -> Cow<'static, str> {
        match namespace {
            Some(ns) if self.inner.tracked.iter().any(|t| t == ns) => Cow::Owned(ns.to_string()),
            _ => Cow::Borrowed(OTHER),
        }
    }
}

/// Middleware timing every request into `quay_request_duration_seconds` (until the response
/// head is ready; streaming a body is not included, as in Quay).
pub(crate) async fn track_request(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let library = metrics.inner.library_namespace.as_deref();
    let (route, namespace) = route_label(request.uri().path(), matched, library);
    let namespace = metrics.namespace_label(namespace);
    let route = match route {
        Route::Fixed(r) => Cow::Borrowed(r),
        Route::Template(t) => Cow::Owned(t.to_string()),
    };
    let response = next.run(request).await;
    metrics.observe(
        method,
        route,
        response.status().as_u16(),
        namespace,
        start.elapsed(),
    );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        // Anything else is whatever a client made up: one label for all of it.
        _ => "other",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Fixed(&'static str),
    /// A template of the router (`/api/v1/organization/{org}`), from a fixed set.
    Template(&'a str),
}

/// The route template of a request path and the namespace it names, if any. `/v2` has one
/// catch-all route, so its endpoints are told apart here with the registry's own parser.
fn route_label<'a>(
    path: &'a str,
    matched: Option<&'a str>,
    library_namespace: Option<&'a str>,
) -> (Route<'a>, Option<&'a str>) {
    use registry::Endpoint;
    if path == "/v2" || path == "/v2/" {
        return (Route::Fixed("/v2/"), None);
    }
    if path == "/v2/auth" {
        return (Route::Fixed("/v2/auth"), None);
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        let Some(endpoint) = Endpoint::parse(rest) else {
            return (Route::Fixed("unmatched"), None);
        };
        let (route, name) = match &endpoint {
            Endpoint::Base => ("/v2/", None),
            Endpoint::Catalog => ("/v2/_catalog", None),
            Endpoint::Tags { name } => ("/v2/{name}/tags/list", Some(name)),
            Endpoint::Manifest { name, .. } => ("/v2/{name}/manifests/{reference}", Some(name)),
            Endpoint::Blob { name, .. } => ("/v2/{name}/blobs/{digest}", Some(name)),
            Endpoint::UploadStart { name } => ("/v2/{name}/blobs/uploads/", Some(name)),
            Endpoint::Upload { name, .. } => ("/v2/{name}/blobs/uploads/{uuid}", Some(name)),
            Endpoint::Referrers { name, .. } => ("/v2/{name}/referrers/{digest}", Some(name)),
        };
        // The namespace is the first component of the name (the library's for one-component
        // names), borrowed from the path rather than from the parsed endpoint.
        let namespace = name.and_then(|name| match name.split_once('/') {
            Some(_) => rest.split('/').next(),
            None => library_namespace,
        });
        return (Route::Fixed(route), namespace);
    }
    let Some(template) = matched else {
        return (Route::Fixed("unmatched"), None);
    };
    let namespace = ["/api/v1/repository/", "/api/v1/organization/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .and_then(|rest| rest.split('/').next())
        .filter(|ns| !ns.is_empty());
    (Route::Template(template), namespace)
}

/// The counters kept by the services, and the database figures of the last refresh, encoded
/// at scrape time.
struct Counters {
    registry: Registry,
    auth: Auth,
    figures: Arc<Mutex<DbFigures>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PullLabels {
    protocol: &'static str,
    r#ref: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    protocol: &'static str,
    status: u16,
    media_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    auth_kind: &'static str,
    /// `True` or `False`, as Quay's Python client renders booleans.
    success: &'static str,
}

/// Authentication kinds and their `auth_kind` label. Wharf counts by the credential presented
/// (Quay counts by how it was presented: `basic`, `oauth`, `cookie`, ...); OAuth access tokens
/// keep Quay's `oauth`.
const ATTEMPT_KINDS: [(AttemptKind, &str); 4] = [
    (AttemptKind::Password, "password"),
    (AttemptKind::Robot, "robot"),
    (AttemptKind::OAuthToken, "oauth"),
    (AttemptKind::AppToken, "app_token"),
];

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A labelled family of values of one type.
fn family<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: &[(S, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        let sample = metric.encode_family(labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let traffic = self.registry.traffic_stats();
        let pulls: Vec<_> = traffic
            .pulls
            .iter()
            .map(|(by, status, n)| {
                let labels = PullLabels {
                    protocol: "v2",
                    r#ref: by.label(),
                    status: *status,
                };
                (labels, *n)
            })
            .collect();
        family(
            e,
            "quay_registry_image_pulls",
            "number of images that have been downloaded via the registry",
            MetricType::Counter,
            &pulls,
        )?;
        family(
            e,
            "quay_registry_image_pulled_estimated_bytes",
            "number of bytes that have been downloaded via the registry",
            MetricType::Counter,
            &[(ProtocolLabels { protocol: "v2" }, traffic.pulled_bytes)],
        )?;
        let pushes: Vec<_> = traffic
            .pushes
            .iter()
            .map(|(status, media_type, n)| {
                let labels = PushLabels {
                    protocol: "v2",
                    status: *status,
                    media_type,
                };
                (labels, *n)
            })
            .collect();
        family(
            e,
            "quay_registry_image_pushes",
            "number of images that have been uploaded via the registry",
            MetricType::Counter,
            &pushes,
        )?;
        counter(
            e,
            "quay_registry_image_pushed_bytes",
            "number of bytes pushed to the registry",
            traffic.pushed_bytes,
        )?;
        counter(
            e,
            "quay_multipart_uploads_started",
            "number of blob upload sessions started",
            traffic.uploads_started,
        )?;
        counter(
            e,
            "quay_multipart_uploads_completed",
            "number of blob upload sessions completed into a blob",
            traffic.uploads_completed,
        )?;

        let attempts = self.auth.attempts();
        let mut by_kind = Vec::new();
        for (kind, label) in ATTEMPT_KINDS {
            for (success, text) in [(true, "True"), (false, "False")] {
                let labels = AttemptLabels {
                    auth_kind: label,
                    success: text,
                };
                by_kind.push((labels, attempts.get(kind, success)));
            }
        }
        family(
            e,
            "quay_authentication_attempts",
            "number of authentication attempts across the registry and API",
            MetricType::Counter,
            &by_kind,
        )?;

        let gc = self.registry.gc_stats();
        counter(
            e,
            "quay_gc_iterations",
            "number of iterations by the GCWorker",
            gc.iterations,
        )?;
        counter(
            e,
            "quay_gc_namespaces_purged",
            "number of namespaces purged by the NamespaceGCWorker",
            gc.namespaces_purged,
        )?;
        counter(
            e,
            "quay_gc_repos_purged",
            "number of repositories purged by the RepositoryGCWorker or NamespaceGCWorker",
            gc.repositories_purged,
        )?;
        counter(
            e,
            "quay_gc_storage_blobs_deleted",
            "number of storage blobs deleted",
            gc.blobs_deleted,
        )?;

        let figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rows) = figures.rows {
            gauge(
                e,
                "quay_user_rows",
                "number of users in the database",
                rows.users,
            )?;
            gauge(
                e,
                "quay_robot_rows",
                "number of robot accounts in the database",
                rows.robots,
            )?;
            gauge(
                e,
                "quay_org_rows",
                "number of organizations in the database",
                rows.organizations,
            )?;
            gauge(
                e,
                "quay_repository_rows",
                "number of repositories in the database",
                rows.repositories,
            )?;
            // Wharf has no security scanner yet, so every manifest counts as not scanned.
            gauge(
                e,
                "quay_security_scanning_unscanned_images_remaining",
                "number of images that are not scanned by the latest security scanner",
                rows.manifests,
            )?;
        }
        let queue = |i: usize| -> Vec<(QueueLabels, u64)> {
            figures
                .queues
                .iter()
                .map(|(name, counts)| {
                    let labels = QueueLabels {
                        queue_name: name.clone(),
                    };
                    (labels, counts[i])
                })
                .collect()
        };
        family(
            e,
            "quay_queue_items_available",
            "number of queue items that have not expired",
            MetricType::Gauge,
            &queue(0),
        )?;
        family(
            e,
            "quay_queue_items_locked",
            "number of queue items that have been acquired",
            MetricType::Gauge,
            &queue(1),
        )?;
        family(
            e,
            "quay_queue_items_available_unlocked",
            "number of queue items that have not expired and are not locked",
            MetricType::Gauge,
            &queue(2),
        )?;
        Ok(())
    }
}

/// The router of the metrics listener: `GET /metrics`.
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    match metrics.render().await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode metrics",
        )
            .into_response(),
    }
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::{Route, route_label};

    #[test]
    fn routes_are_templates_and_namespaces_come_from_names() {
        let lib = Some("library");
        let v2 = |path| route_label(path, Some("/v2/{*rest}"), lib);
        assert_eq!(v2("/v2/"), (Route::Fixed("/v2/"), None));
        assert_eq!(v2("/v2/auth"), (Route::Fixed("/v2/auth"), None));
        assert_eq!(
            v2("/v2/acme/app/web/manifests/latest"),
            (
                Route::Fixed("/v2/{name}/manifests/{reference}"),
                Some("acme")
            )
        );
        assert_eq!(
            v2("/v2/busybox/blobs/sha256:00"),
            (Route::Fixed("/v2/{name}/blobs/{digest}"), Some("library"))
        );
        assert_eq!(
            v2("/v2/acme/app/blobs/uploads/"),
            (Route::Fixed("/v2/{name}/blobs/uploads/"), Some("acme"))
        );
        assert_eq!(v2("/v2/_catalog"), (Route::Fixed("/v2/_catalog"), None));
        assert_eq!(v2("/v2/x/y/nothing"), (Route::Fixed("unmatched"), None));
        assert_eq!(
            route_label(
                "/api/v1/repository/acme/app/tag/",
                Some("/api/v1/repository/{*rest}"),
                lib
            ),
            (Route::Template("/api/v1/repository/{*rest}"), Some("acme"))
        );
        assert_eq!(
            route_label("/no/such/page", None, lib),
            (Route::Fixed("unmatched"), None)
        );
    }
}
