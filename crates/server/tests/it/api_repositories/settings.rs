//! Repository settings (description, state) and deletion.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{As, TESTER, api, assert_exception, served_digest};
use crate::app_test;
use crate::harness::{OCI_CONFIG, OCI_MANIFEST, TestApp, create_user};

app_test!(repository_settings, |app: TestApp| async move {
    let (_, digest) = app.push_image("tester/app", "v1", &[b"abc", b"defg"]).await;
    let path = "/repository/tester/app";
    let (status, view) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["description"], Value::Null);
    let v1 = &view["tags"]["v1"];
    assert_eq!(
        (
            &v1["name"],
            &v1["size"],
            &v1["manifest_digest"],
            &v1["image_id"]
        ),
        (
            &json!("v1"),
            &json!(7),
            &json!(digest.to_string()),
            &Value::Null
        )
    );
    assert!(v1["last_modified"].as_str().unwrap().ends_with(" -0000"));
    assert!(v1.get("expiration").is_none());
    let (_, view) = api(
        &app,
        TESTER,
        Method::GET,
        &format!("{path}?includeTags=false"),
        None,
    )
    .await;
    assert!(view.get("tags").is_none());

    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"description": "Hello"})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (_, view) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(view["description"], "Hello");
    let (status, body) = api(&app, TESTER, Method::PUT, path, Some(json!({}))).await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "'description' is a required property",
    );

    // Read-only: the view says so, tag changes and pushes are refused.
    let state = format!("{path}/changestate");
    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        &state,
        Some(json!({"state": "READ_ONLY"})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (_, view) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(
        (&view["state"], &view["can_write"], &view["can_admin"]),
        (&json!("READ_ONLY"), &json!(false), &json!(true))
    );
    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        &format!("{path}/tag/v2"),
        Some(json!({"manifest_digest": digest.to_string()})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": "Repository is in read only or mirror mode: RepositoryState.READ_ONLY"})
        )
    );
    let (status, _) = api(
        &app,
        TESTER,
        Method::DELETE,
        &format!("{path}/tag/v1"),
        None,
    )
    .await;
    assert_eq!(status, 503);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest.to_string(), "size": 1},
        "layers": [],
    });
    let r = app
        .put_manifest("tester/app", "v3", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), 403, "the registry sees the new state at once");
    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        &state,
        Some(json!({"state": "GONE"})),
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "'GONE' is not one of ['NORMAL', 'READ_ONLY', 'MIRROR']",
    );
    let (status, _) = api(
        &app,
        TESTER,
        Method::PUT,
        &state,
        Some(json!({"state": "NORMAL"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, view) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(
        (&view["state"], &view["can_write"]),
        (&json!("NORMAL"), &json!(true))
    );
});

app_test!(deleting_frees_the_name, |app: TestApp| async move {
    let new = json!({"repository": "gone", "visibility": "private", "description": "first"});
    let (status, _) = api(&app, TESTER, Method::POST, "/repository", Some(new)).await;
    assert_eq!(status, 201);
    let (_, digest) = app.push_image("tester/gone", "v1", &[b"old"]).await;
    assert_eq!(
        served_digest(&app, "tester/gone", "v1").await,
        Some(digest.to_string())
    );
    create_user(&app.db.db, "bob").await;
    let path = "/repository/tester/gone";
    let (status, _) = api(&app, As::User("bob"), Method::DELETE, path, None).await;
    assert_eq!(status, 403);

    let (status, body) = api(&app, TESTER, Method::DELETE, path, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(status, 404);
    let (_, body) = api(
        &app,
        TESTER,
        Method::GET,
        "/repository?namespace=tester",
        None,
    )
    .await;
    assert_eq!(body["repositories"], json!([]));

    // The name is free again, and the new repository starts empty.
    let new = json!({"repository": "gone", "visibility": "public", "description": "second"});
    let (status, body) = api(&app, TESTER, Method::POST, "/repository", Some(new)).await;
    assert_eq!(status, 201, "{body}");
    let (status, view) = api(&app, TESTER, Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&view["description"], &view["tags"]),
        (&json!("second"), &json!({}))
    );
    assert_eq!(served_digest(&app, "tester/gone", "v1").await, None);
});

#[tokio::test]
async fn a_read_only_registry_refuses_api_writes() {
    let settings = auth::AuthSettings {
        policy: auth::permissions::Policy {
            registry_read_only: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_auth(db::testing::Engine::Sqlite, settings).await;
    let new = json!({"repository": "x", "visibility": "private", "description": ""});
    let (status, body) = api(&app, TESTER, Method::POST, "/repository", Some(new)).await;
    assert_eq!(status, 503);
    assert_eq!(body["is_readonly"], true);
    let (status, _) = api(&app, TESTER, Method::DELETE, "/repository/tester/x", None).await;
    assert_eq!(status, 503);
    let (status, _) = api(&app, TESTER, Method::GET, "/repository/tester/x", None).await;
    assert_eq!(status, 404);
}
