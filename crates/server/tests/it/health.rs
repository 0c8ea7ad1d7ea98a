//! Quay's health endpoints: 200 with every service `true` when healthy, 503 with the failing
//! service `false` when the storage cannot be written, the database is gone or Redis does not
//! answer; and the v1 pings.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::app_test;
use crate::harness::{TestApp, header};

async fn health(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

app_test!(
    healthy_answers_200_in_quays_shape,
    |app: TestApp| async move {
        let (status, body) = health(&app, "/health/instance").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({
                "data": {
                    "services": {"database": true, "storage": true, "registry": true},
                    "notes": [],
                    "is_testing": false,
                },
                "status_code": 200,
            })
        );
        let (status, alias) = health(&app, "/health").await;
        assert_eq!((status, &alias), (200, &body));

        let (status, body) = health(&app, "/health/endtoend").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"]["services"],
            json!({"database": true, "storage": true})
        );
        assert_eq!(body["status_code"], 200);

        // The checks leave nothing behind in storage.
        let leftovers = std::fs::read_dir(app.storage.path().join("health"))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert_eq!(leftovers, 0);

        for path in ["/v1/_ping", "/v1/_internal_ping", "/_internal_ping"] {
            let r = app
                .client
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(r.text().await.unwrap(), "true", "{path}");
        }
        let r = app
            .client
            .get(format!("{}/v1/_ping", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-docker-registry-version"), "0.6.0");
    }
);

app_test!(
    unwritable_storage_fails_the_storage_service,
    |app: TestApp| async move {
        // Root may write anywhere, so make the storage root a plain file instead of a directory.
        let root = app.storage.path();
        std::fs::remove_dir_all(root).unwrap();
        std::fs::write(root, b"not a directory").unwrap();

        let (status, body) = health(&app, "/health/instance").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["data"]["services"],
            json!({"database": true, "storage": false, "registry": true})
        );
        assert_eq!(body["status_code"], 503);

        let (status, body) = health(&app, "/health/endtoend").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["data"]["services"]["storage"], false);
        assert_eq!(
            body["data"]["notes"],
            json!(["storage location default failed its check"])
        );
        std::fs::remove_file(root).unwrap();
    }
);

app_test!(
    a_closed_database_fails_the_database_service,
    |app: TestApp| async move {
        app.auth.db().clone().close().await;
        let (status, body) = health(&app, "/health/instance").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["data"]["services"]["database"], false);
        assert_eq!(body["data"]["services"]["storage"], true);
        let (status, body) = health(&app, "/health/endtoend").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["data"]["services"]["database"], false);
    }
);

/// An app over `app`'s services whose end-to-end check pings Redis at `port`.
async fn with_redis(app: &TestApp, port: u16) -> (String, tokio::sync::oneshot::Sender<()>) {
    let options = server::HttpOptions {
        monitoring: server::metrics::Monitoring {
            redis: Some(server::health::RedisTarget {
                host: "127.0.0.1".into(),
                port,
                password: None,
                ssl: false,
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let served = server::App::with_options(
        app.registry.clone(),
        app.auth.clone(),
        api::ApiFeatures::default(),
        options,
    );
    crate::harness::serve_app(served).await
}

/// Redis at 127.0.0.1:6379 (the test machine's; see TESTING.md) answers; a port where nothing
/// listens does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_is_checked_end_to_end_when_configured() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let (base, _stop) = with_redis(&app, 6379).await;
    let body: Value = app
        .client
        .get(format!("{base}/health/endtoend"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["services"],
        json!({"database": true, "redis": true, "storage": true}),
        "is Redis running on 127.0.0.1:6379?"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (base, _stop) = with_redis(&app, port).await;
    let r = app
        .client
        .get(format!("{base}/health/endtoend"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["services"]["redis"], false);
    // The instance check does not depend on Redis.
    let r = app
        .client
        .get(format!("{base}/health/instance"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
