//! `/metrics`: a scripted sequence through the HTTP API (a token, a push of a blob in one
//! request and one in chunks, a manifest, pulls, a failed login, queue items, a GC pass), with
//! each of Quay's counters checked to move by exactly what the sequence did; the text checked
//! with a strict parser of the Prometheus format; the Grafana dashboard checked to ask only for
//! metrics the endpoint exports.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use types::Digest;
use wharf_core::Settings;

use crate::harness::{As, LAYER, OCI_CONFIG, OCI_MANIFEST, TESTER_PASSWORD, TestApp, api, header};

/// A parsed scrape: the declared type of each family and every sample.
#[derive(Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// The value of the series with exactly these labels (0 when the series is absent, as a
    /// counter that never moved is).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
            .unwrap_or(0.0)
    }

    /// The label names of every sample of `name`, which must all be the same.
    fn label_names(&self, name: &str) -> Option<BTreeSet<String>> {
        let mut sets = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, _)| l.keys().cloned().collect::<BTreeSet<_>>());
        let first = sets.next()?;
        for other in sets {
            assert_eq!(first, other, "label sets of {name} differ");
        }
        Some(first)
    }

    /// Every name a query may use: counters and gauges by family name, histograms by their
    /// `_bucket`, `_sum` and `_count` series.
    fn exported_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (family, kind) in &self.types {
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            } else {
                names.insert(family.clone());
            }
        }
        names
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A strict parser of the Prometheus text format 0.0.4: every line is a comment, a `# HELP`,
/// a `# TYPE` that comes once per family, before its samples (a sample of a family not
/// declared yet is refused), or a sample of a declared family
/// with well-formed, unique labels and a float value; no series appears twice.
fn parse(text: &str) -> Scrape {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_metric_name(name), "{}", at());
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{}",
                        at()
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "second TYPE: {}",
                        at()
                    );
                }
                (Some("HELP"), Some(name), _) => assert!(is_metric_name(name), "{}", at()),
                _ => {}
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {}", at())),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{}", at()));
                (
                    name,
                    parse_labels(body).unwrap_or_else(|e| panic!("{e}: {}", at())),
                )
            }
        };
        assert!(is_metric_name(name), "{}", at());
        let family = types
            .iter()
            .find(|(family, kind)| match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")),
                _ => name == family.as_str(),
            })
            .unwrap_or_else(|| panic!("sample of an undeclared family: {}", at()));
        if family.1 == "counter" {
            assert!(name.ends_with("_total"), "{}", at());
            assert!(value >= 0.0, "{}", at());
        }
        assert!(
            seen.insert(format!("{name}{labels:?}")),
            "series twice: {}",
            at()
        );
        samples.push((name.to_string(), labels, value));
    }
    Scrape { types, samples }
}

/// `a="x",b="y\"z"` → labels, refusing duplicates, bad names and bad escapes.
fn parse_labels(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("bad escape \\{other}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label: {rest:?}"));
        }
    }
    Ok(labels)
}

/// Serves the app's metrics on their own listener, as `wharf serve` does; returns the URL.
async fn metrics_endpoint(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::metrics::serve(
        listener,
        app.metrics.clone(),
        std::future::pending(),
    ));
    format!("http://{addr}/metrics")
}

async fn scrape(app: &TestApp, url: &str) -> Scrape {
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&r.text().await.unwrap())
}

/// Settings under which pushed blobs are not protected, so one GC pass frees them.
fn unprotected() -> Settings {
    Settings {
        uploaded_blob_expiration: Duration::ZERO,
        ..Settings::default()
    }
}

macro_rules! metrics_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::with_settings(db::testing::Engine::Sqlite, unprotected()).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app =
                    TestApp::with_settings(db::testing::Engine::Postgres, unprotected()).await;
                ($body)(app).await;
            }
        }
    };
}

const REPO: &str = "tracked/app";
const SCOPE: &str = "repository:tracked/app:pull,push";

metrics_test!(counters_move_with_the_api, |app: TestApp| async move {
    let url = metrics_endpoint(&app).await;
    app.db
        .db
        .create_organization("tracked", None, app.tester.id)
        .await
        .unwrap();
    let before = scrape(&app, &url).await;

    // A token (a password check that succeeds), then a push: the config in one request, the
    // layer in two chunks, and the manifest.
    let token = app
        .fetch_token(Some(("tester", TESTER_PASSWORD)), SCOPE)
        .await;
    let bearer = format!("Bearer {token}");
    let v2 = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .header("authorization", &bearer)
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = Digest::sha256_of(&config);
    let r = v2(
        Method::POST,
        &format!("/v2/{REPO}/blobs/uploads/?digest={config_digest}"),
    )
    .body(config.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let (first, second) = (b"layer, first half ".to_vec(), b"and the second".to_vec());
    let layer = [first.clone(), second.clone()].concat();
    let layer_digest = Digest::sha256_of(&layer);
    let r = v2(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = header(&r, "location");
    for chunk in [first, second] {
        let r = v2(Method::PATCH, &location)
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = v2(Method::PUT, &format!("{location}?digest={layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": LAYER, "digest": layer_digest.to_string(), "size": layer.len()}],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = Digest::sha256_of(&manifest_bytes);
    let put = |reference: &str, body: Vec<u8>| {
        v2(Method::PUT, &format!("/v2/{REPO}/manifests/{reference}"))
            .header("content-type", OCI_MANIFEST)
            .body(body)
    };
    assert_eq!(
        put("v1", manifest_bytes).send().await.unwrap().status(),
        201
    );
    // A manifest naming a blob nobody pushed is refused.
    let mut dangling = manifest.clone();
    dangling["layers"][0]["digest"] = json!(Digest::sha256_of(b"missing").to_string());
    let refused = put("v2", serde_json::to_vec(&dangling).unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(refused, StatusCode::BAD_REQUEST);

    // Pulls: by tag, by digest, an unknown tag; the layer whole and a range of it.
    let get = |path: String| v2(Method::GET, &path).send();
    let pulled = get(format!("/v2/{REPO}/manifests/v1")).await.unwrap();
    assert_eq!(pulled.status(), 200);
    let by_digest = get(format!("/v2/{REPO}/manifests/{manifest_digest}"));
    assert_eq!(by_digest.await.unwrap().status(), 200);
    let unknown = get(format!("/v2/{REPO}/manifests/nope"));
    assert_eq!(unknown.await.unwrap().status(), 404);
    let blob = get(format!("/v2/{REPO}/blobs/{layer_digest}"))
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap(), layer.as_slice());
    let ranged = v2(Method::GET, &format!("/v2/{REPO}/blobs/{layer_digest}"))
        .header("range", "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);

    // A failed login.
    let r = app
        .token_response(Some(("tester", "not the password")), &[SCOPE])
        .await;
    assert_eq!(r.status(), 401);

    let after = scrape(&app, &url).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let pulls = "quay_registry_image_pulls_total";
    assert_eq!(
        delta(
            pulls,
            &[("protocol", "v2"), ("ref", "tag"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            pulls,
            &[("protocol", "v2"), ("ref", "manifest"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            pulls,
            &[("protocol", "v2"), ("ref", "tag"), ("status", "404")]
        ),
        1.0
    );
    let pushes = "quay_registry_image_pushes_total";
    assert_eq!(
        delta(
            pushes,
            &[
                ("protocol", "v2"),
                ("status", "201"),
                ("media_type", OCI_MANIFEST)
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            pushes,
            &[("protocol", "v2"), ("status", "400"), ("media_type", "")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "quay_registry_image_pulled_estimated_bytes_total",
            &[("protocol", "v2")]
        ),
        (layer.len() + 5) as f64
    );
    assert_eq!(
        delta("quay_registry_image_pushed_bytes_total", &[]),
        (config.len() + layer.len()) as f64
    );
    assert_eq!(delta("quay_multipart_uploads_started_total", &[]), 2.0);
    assert_eq!(delta("quay_multipart_uploads_completed_total", &[]), 2.0);
    let attempts = "quay_authentication_attempts_total";
    assert_eq!(
        delta(attempts, &[("auth_kind", "password"), ("success", "True")]),
        1.0
    );
    assert_eq!(
        delta(attempts, &[("auth_kind", "password"), ("success", "False")]),
        1.0
    );
    assert_eq!(
        delta(attempts, &[("auth_kind", "robot"), ("success", "False")]),
        0.0
    );

    // Request durations: by route template and tracked namespace, never by raw path.
    let count = |status: &str| {
        delta(
            "quay_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("route", "/v2/{name}/manifests/{reference}"),
                ("status", status),
                ("namespace_name", "tracked"),
            ],
        )
    };
    assert_eq!(count("200"), 2.0);
    assert_eq!(count("404"), 1.0);
    assert!(
        after.samples.iter().all(|(_, labels, _)| labels
            .get("route")
            .is_none_or(|r| !r.contains("tracked/app"))),
        "a raw path became a label"
    );

    // Database figures.
    assert_eq!(after.get("quay_user_rows", &[]), 1.0);
    assert_eq!(after.get("quay_org_rows", &[]), 1.0);
    assert_eq!(after.get("quay_robot_rows", &[]), 0.0);
    assert_eq!(after.get("quay_repository_rows", &[]), 1.0);
    let unscanned = "quay_security_scanning_unscanned_images_remaining";
    assert_eq!(after.get(unscanned, &[]), 1.0);

    // Types and label sets.
    for (family, kind) in [
        (pulls, "counter"),
        (pushes, "counter"),
        (attempts, "counter"),
        ("quay_registry_image_pushed_bytes_total", "counter"),
        ("quay_gc_iterations_total", "counter"),
        ("quay_gc_storage_blobs_deleted_total", "counter"),
        ("quay_request_duration_seconds", "histogram"),
        ("quay_user_rows", "gauge"),
        ("quay_queue_items_available", "gauge"),
        (unscanned, "gauge"),
    ] {
        assert_eq!(
            after.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        after.label_names(pulls),
        Some(names(&["protocol", "ref", "status"]))
    );
    assert_eq!(
        after.label_names(pushes),
        Some(names(&["protocol", "status", "media_type"]))
    );
    assert_eq!(
        after.label_names(attempts),
        Some(names(&["auth_kind", "success"]))
    );
    assert_eq!(
        after.label_names("quay_request_duration_seconds_bucket"),
        Some(names(&[
            "method",
            "route",
            "status",
            "namespace_name",
            "le"
        ]))
    );

    // Queue depths: an item waiting, then claimed.
    let db = &app.db.db;
    db.queue_put("repositorygc/metrics-test", "{}", 0, 5)
        .await
        .unwrap();
    let queued = scrape(&app, &url).await;
    let queue = [("queue_name", "repositorygc")];
    assert_eq!(queued.get("quay_queue_items_available", &queue), 1.0);
    assert_eq!(
        queued.get("quay_queue_items_available_unlocked", &queue),
        1.0
    );
    assert_eq!(queued.get("quay_queue_items_locked", &queue), 0.0);
    assert_eq!(
        queued.label_names("quay_queue_items_locked"),
        Some(names(&["queue_name"]))
    );
    let item = db
        .queue_claim("repositorygc", 60_000)
        .await
        .unwrap()
        .unwrap();
    let claimed = scrape(&app, &url).await;
    assert_eq!(claimed.get("quay_queue_items_available", &queue), 0.0);
    assert_eq!(claimed.get("quay_queue_items_locked", &queue), 1.0);
    assert!(db.queue_complete(&item).await.unwrap());

    // A GC pass after the tag is deleted with no time machine: the manifest and both blobs go.
    let account = db.find_account("tracked").await.unwrap().unwrap();
    db.set_tag_expiration_s(account.id, 0).await.unwrap();
    let (status, _) = api(
        &app,
        As::User("tester"),
        Method::DELETE,
        "/repository/tracked/app/tag/v1",
        None,
    )
    .await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let repo = db.find_repository("tracked", "app").await.unwrap().unwrap();
    let gc_before = scrape(&app, &url).await;
    let report = app.registry.collect_repository(repo.id).await.unwrap();
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    let gc_after = scrape(&app, &url).await;
    let gc_delta = |name: &str| gc_after.get(name, &[]) - gc_before.get(name, &[]);
    assert_eq!(gc_delta("quay_gc_iterations_total"), 1.0);
    assert_eq!(gc_delta("quay_gc_storage_blobs_deleted_total"), 2.0);
    assert_eq!(gc_delta("quay_gc_repos_purged_total"), 0.0);
    assert_eq!(gc_after.get(unscanned, &[]), 0.0);
    // API routes are labelled by the router's templates.
    let api_call = [
        ("method", "DELETE"),
        ("route", "/api/v1/repository/{*rest}"),
        ("status", "204"),
        ("namespace_name", "tracked"),
    ];
    assert_eq!(
        gc_after.get("quay_request_duration_seconds_count", &api_call),
        1.0
    );
});

/// Every query of the shipped Grafana dashboard names only metrics the endpoint exports.
#[tokio::test]
async fn the_grafana_dashboard_asks_for_exported_metrics() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/wharf.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert!(dashboard["title"].is_string());
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    // The request histogram has series (and is listed) once a request was answered.
    app.anonymous(Method::GET, "/v2/").send().await.unwrap();
    let exported = parse(&app.metrics.render().await.unwrap()).exported_names();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|word| word.starts_with("quay_"))
            .collect();
        assert!(!names.is_empty(), "a query without a Wharf metric: {expr}");
        for name in names {
            assert!(
                exported.contains(name),
                "{name} (in {expr}) is not exported; exported: {exported:?}"
            );
            used.insert(name.to_string());
        }
    }
    // The dashboard covers what operators look at first.
    for needed in [
        "quay_request_duration_seconds_bucket",
        "quay_registry_image_pulls_total",
        "quay_registry_image_pushes_total",
        "quay_authentication_attempts_total",
        "quay_queue_items_available",
        "quay_gc_iterations_total",
        "quay_repository_rows",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total help\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 2\n";
    assert_eq!(parse(good).get("a_total", &[("x", "1"), ("y", "q\"")]), 2.0);
    for bad in [
        "a_total 1\n",                            // undeclared
        "# TYPE a counter\na 1\n",                // counter without _total
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", // label twice
        "# TYPE a gauge\na{1x=\"1\"} 1\n",        // bad label name
        "# TYPE a gauge\na{x=\"1} 1\n",           // unterminated
        "# TYPE a gauge\na 1\na 2\n",             // series twice
        "# TYPE a gauge\na one\n",                // not a number
        "# TYPE a gauge\n# TYPE a gauge\n",       // TYPE twice
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}
