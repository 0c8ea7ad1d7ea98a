//! `FEATURE_RATE_LIMITS` with Quay's bursts and `NON_RATE_LIMITED_NAMESPACES`. The zones refill
//! a million times slower than Quay's so that only the bursts count and the tests are
//! deterministic. Requests go without credentials: the limiter answers before authentication,
//! so 401 means "let through" and 429 "limited". No database is involved beyond the app's own,
//! so these run on SQLite only.

use reqwest::StatusCode;
use server::HttpOptions;
use server::rate_limit::RateLimits;

use crate::harness::TestApp;

/// A server over `app`'s database with Quay's limits (slowed down) and `free` exempt.
async fn limited(app: &TestApp) -> (String, tokio::sync::oneshot::Sender<()>) {
    let limits =
        RateLimits::quay(vec!["free".to_string()], Some("library".to_string())).scaled(1e-6);
    let options = HttpOptions {
        rate_limits: Some(limits),
        ..HttpOptions::default()
    };
    let served = server::App::with_options(
        app.sibling().await,
        app.auth.clone(),
        Default::default(),
        options,
    );
    crate::harness::serve_app(served).await
}

/// The statuses of `n` anonymous GETs of `path`.
async fn statuses(app: &TestApp, base: &str, path: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = app
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        out.push(r.status());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_namespaces_outside_the_list_are_limited() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let (base, _stop) = limited(&app).await;

    // Manifests: Quay's burst of 10 on top of the first request, then 429.
    let got = statuses(&app, &base, "/v2/other/app/manifests/latest", 11).await;
    assert!(
        got.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{got:?}"
    );
    let r = app
        .client
        .head(format!("{base}/v2/other/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .client
        .get(format!("{base}/v2/other/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(body["errors"][0]["message"].is_string());

    // The exempt namespace, same client, same zone: never limited.
    let got = statuses(&app, &base, "/v2/free/app/manifests/latest", 40).await;
    assert!(
        got.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{got:?}"
    );
    let got = statuses(&app, &base, "/v2/free/team/app/tags/list", 10).await;
    assert!(
        got.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{got:?}"
    );

    // Tag lists are their own (heavy) zone: burst 2.
    let got = statuses(&app, &base, "/v2/other/app/tags/list", 4).await;
    assert_eq!(
        got,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_answer_in_quays_error_shape() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let (base, _stop) = limited(&app).await;

    let got = statuses(&app, &base, "/api/v1/repository/other/app", 26).await;
    assert!(!got.contains(&StatusCode::TOO_MANY_REQUESTS), "{got:?}");
    let r = app
        .client
        .get(format!("{base}/api/v1/repository/other/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "detail",
            "error_message",
            "error_type",
            "status",
            "title",
            "type"
        ]
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["detail"], body["error_message"]);

    // The same client is not limited on the exempt namespace.
    let got = statuses(&app, &base, "/api/v1/repository/free/app", 30).await;
    assert!(!got.contains(&StatusCode::TOO_MANY_REQUESTS), "{got:?}");
    let got = statuses(&app, &base, "/api/v1/organization/free", 5).await;
    assert!(!got.contains(&StatusCode::TOO_MANY_REQUESTS), "{got:?}");
    // Other API paths share the exhausted bucket.
    let got = statuses(&app, &base, "/api/v1/user/", 1).await;
    assert_eq!(got, [StatusCode::TOO_MANY_REQUESTS]);
    // Paths outside /v2 and /api are never limited.
    let got = statuses(&app, &base, "/keys/services/quay/keys", 5).await;
    assert!(!got.contains(&StatusCode::TOO_MANY_REQUESTS), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feature_nothing_is_limited() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let got = statuses(&app, &app.base, "/v2/other/app/tags/list", 20).await;
    assert!(!got.contains(&StatusCode::TOO_MANY_REQUESTS), "{got:?}");
    let config = config::Config {
        feature_rate_limits: false,
        ..config::Config::default()
    };
    assert!(RateLimits::from_config(&config).is_none());
    let config = config::Config {
        feature_rate_limits: true,
        non_rate_limited_namespaces: vec!["free".into()],
        ..config::Config::default()
    };
    let limits = RateLimits::from_config(&config).unwrap();
    assert_eq!(limits.non_rate_limited_namespaces, ["free"]);
    assert_eq!(limits.namespaced_light.http1, 20.0);
}
