//! `/api/v1/repository/<repo>/tag/…` (history, move, delete, restore) and
//! `…/manifest/<digest>`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{As, TESTER, api, assert_exception, served_digest};
use crate::app_test;
use crate::harness::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, TestApp, create_user};

app_test!(
    tags_are_listed_moved_deleted_and_restored,
    |app: TestApp| async move {
        let (manifest_a, a) = app.push_image("tester/app", "v1", &[b"one"]).await;
        let (_, b) = app
            .push_image("tester/app", "v2", &[b"two", b"three"])
            .await;
        let (a, b) = (a.to_string(), b.to_string());
        // A manifest pushed by digest only is kept by a hidden tag, which never shows.
        let mut pinned = manifest_a.clone();
        pinned["annotations"] = json!({"pinned": "yes"});
        let pinned_digest =
            types::Digest::sha256_of(&serde_json::to_vec(&pinned).unwrap()).to_string();
        let r = app
            .put_manifest("tester/app", &pinned_digest, OCI_MANIFEST, &pinned)
            .await;
        assert_eq!(r.status(), 201);
        let base = "/repository/tester/app/tag";

        let (status, body) = api(&app, TESTER, Method::GET, &format!("{base}/"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&body["page"], &body["has_additional"]),
            (&json!(1), &json!(false))
        );
        let tags = body["tags"].as_array().unwrap();
        let names: Vec<&str> = tags.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["v2", "v1"]);
        let v2 = &tags[0];
        assert_eq!(
            (
                &v2["manifest_digest"],
                &v2["size"],
                &v2["is_manifest_list"],
                &v2["reversion"]
            ),
            (&json!(b), &json!(8), &json!(false), &json!(false))
        );
        assert!(v2["start_ts"].as_i64().unwrap() > 1_600_000_000);
        assert!(v2["last_modified"].is_string());
        assert!(v2.get("end_ts").is_none() && v2.get("expiration").is_none());

        // Move v1 to B (the registry must stop serving the old target at once), and tag the
        // manifest pushed by digest.
        assert_eq!(
            served_digest(&app, "tester/app", "v1").await,
            Some(a.clone())
        );
        let put = |tag: &'static str, digest: String| {
            let app = &app;
            async move {
                api(
                    app,
                    TESTER,
                    Method::PUT,
                    &format!("{base}/{tag}"),
                    Some(json!({ "manifest_digest": digest })),
                )
                .await
            }
        };
        let (status, body) = put("v1", b.clone()).await;
        assert_eq!((status, body), (StatusCode::CREATED, json!("Updated")));
        assert_eq!(
            served_digest(&app, "tester/app", "v1").await,
            Some(b.clone())
        );
        let (status, _) = put("pinned", pinned_digest.clone()).await;
        assert_eq!(status, 201);
        // A is dead now: it cannot be tagged, only restored.
        let (status, body) = put("again", a.clone()).await;
        assert_exception(status, &body, 404, "not_found", "Not Found");
        let (status, _) = put("x", format!("sha256:{}", "0".repeat(64))).await;
        assert_eq!(status, 404);
        let (status, body) = put("-bad", b.clone()).await;
        assert_eq!(status, 400);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid tag: must match"),
            "{body}"
        );

        // History of v1: the current lifetime and the ended one.
        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?specificTag=v1"),
            None,
        )
        .await;
        let history = body["tags"].as_array().unwrap();
        assert_eq!(history.len(), 2, "{body}");
        assert_eq!(history[0]["manifest_digest"], b);
        assert_eq!(history[1]["manifest_digest"], a);
        assert!(history[0].get("end_ts").is_none());
        assert!(history[1]["end_ts"].as_i64().unwrap() >= history[1]["start_ts"].as_i64().unwrap());
        assert!(history[1]["expiration"].is_string());
        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?onlyActiveTags=true"),
            None,
        )
        .await;
        let mut active: Vec<&str> = body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        active.sort();
        assert_eq!(active, ["pinned", "v1", "v2"]);
        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?limit=1&page=2"),
            None,
        )
        .await;
        assert_eq!(
            (&body["page"], &body["has_additional"]),
            (&json!(2), &json!(true))
        );
        assert_eq!(body["tags"].as_array().unwrap().len(), 1);
        let (status, _) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?limit=many"),
            None,
        )
        .await;
        assert_eq!(status, 400);

        // Delete: 204 whether the tag existed or not; the registry forgets it at once.
        assert_eq!(
            served_digest(&app, "tester/app", "v2").await,
            Some(b.clone())
        );
        let (status, _) = api(&app, TESTER, Method::DELETE, &format!("{base}/v2"), None).await;
        assert_eq!(status, 204);
        assert_eq!(served_digest(&app, "tester/app", "v2").await, None);
        let (status, _) = api(&app, TESTER, Method::DELETE, &format!("{base}/never"), None).await;
        assert_eq!(status, 204);

        // Restore v1 to A from the time machine.
        let restore = format!("{base}/v1/restore");
        let (status, body) = api(&app, TESTER, Method::POST, &restore, Some(json!({}))).await;
        assert_exception(
            status,
            &body,
            400,
            "invalid_request",
            "Missing manifest_digest",
        );
        let unknown = json!({"manifest_digest": format!("sha256:{}", "1".repeat(64))});
        let (status, _) = api(&app, TESTER, Method::POST, &restore, Some(unknown)).await;
        assert_eq!(status, 404);
        let (status, body) = api(
            &app,
            TESTER,
            Method::POST,
            &restore,
            Some(json!({"manifest_digest": a})),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
        assert_eq!(
            served_digest(&app, "tester/app", "v1").await,
            Some(a.clone())
        );
        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?specificTag=v1"),
            None,
        )
        .await;
        assert_eq!(body["tags"][0]["reversion"], true);
        assert_eq!(body["tags"][0]["manifest_digest"], a);
        // The deleted v2 comes back the same way.
        let (status, _) = api(
            &app,
            TESTER,
            Method::POST,
            &format!("{base}/v2/restore"),
            Some(json!({"manifest_digest": b})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            served_digest(&app, "tester/app", "v2").await,
            Some(b.clone())
        );

        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("{base}/?limit=100"),
            None,
        )
        .await;
        assert!(
            body["tags"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| !t["name"].as_str().unwrap().starts_with('$')),
            "{body}"
        );

        // Reading is not writing.
        create_user(&app.db.db, "bob").await;
        let (status, _) = api(
            &app,
            TESTER,
            Method::PUT,
            "/repository/tester/app/permissions/user/bob",
            Some(json!({"role": "read"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = api(
            &app,
            As::User("bob"),
            Method::GET,
            &format!("{base}/"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = api(
            &app,
            As::User("bob"),
            Method::DELETE,
            &format!("{base}/v1"),
            None,
        )
        .await;
        assert_eq!(status, 403);
    }
);

app_test!(
    manifests_are_shown_with_their_layers,
    |app: TestApp| async move {
        let (manifest, digest) = app
            .push_image("tester/app", "v1", &[b"abc", b"defgh"])
            .await;
        let path = format!("/repository/tester/app/manifest/{digest}");
        let (status, view) = api(&app, TESTER, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["digest"], digest.to_string());
        assert_eq!(view["is_manifest_list"], false);
        assert_eq!(view["config_media_type"], OCI_CONFIG);
        let data: Value = serde_json::from_str(view["manifest_data"].as_str().unwrap()).unwrap();
        assert_eq!(data, manifest);
        let layers = view["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(
            layers[1],
            json!({
                "index": 1,
                "compressed_size": 5,
                "is_remote": false,
                "urls": null,
                "command": null,
                "comment": null,
                "author": null,
                "blob_digest": manifest["layers"][1]["digest"],
                "created_datetime": null,
            })
        );

        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": serde_json::to_vec(&manifest).unwrap().len()}],
        });
        let r = app
            .put_manifest("tester/app", "multi", OCI_INDEX, &index)
            .await;
        assert_eq!(r.status(), 201);
        let index_digest = types::Digest::sha256_of(&serde_json::to_vec(&index).unwrap());
        let (status, view) = api(
            &app,
            TESTER,
            Method::GET,
            &format!("/repository/tester/app/manifest/{index_digest}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(
            (
                &view["is_manifest_list"],
                &view["layers"],
                &view["config_media_type"]
            ),
            (&json!(true), &Value::Null, &Value::Null)
        );
        let (_, tags) = api(
            &app,
            TESTER,
            Method::GET,
            "/repository/tester/app/tag/?specificTag=multi",
            None,
        )
        .await;
        assert_eq!(
            (
                &tags["tags"][0]["is_manifest_list"],
                &tags["tags"][0]["size"]
            ),
            (&json!(true), &Value::Null)
        );

        let missing = format!("/repository/tester/app/manifest/sha256:{}", "2".repeat(64));
        let (status, _) = api(&app, TESTER, Method::GET, &missing, None).await;
        assert_eq!(status, 404);
        let (status, _) = api(&app, As::Anonymous, Method::GET, &path, None).await;
        assert_eq!(status, 401);
    }
);

app_test!(tags_expire_when_told, |app: TestApp| async move {
    let (_, digest) = app.push_image("tester/app", "v1", &[b"one"]).await;
    let path = "/repository/tester/app/tag/v1";
    // In the past: refused.
    let (status, _) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"expiration": 1})),
    )
    .await;
    assert_eq!(status, 400);
    // Two seconds from now: still served, listed with its expiration, then gone.
    let soon = db::now_ms() / 1000 + 2;
    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"expiration": soon})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!("Updated")));
    assert_eq!(
        served_digest(&app, "tester/app", "v1").await,
        Some(digest.to_string())
    );
    let (_, listed) = api(
        &app,
        TESTER,
        Method::GET,
        "/repository/tester/app/tag/?onlyActiveTags=true",
        None,
    )
    .await;
    assert!(listed["tags"][0]["expiration"].is_string(), "{listed}");
    // Clearing keeps it; setting it again and waiting ends it.
    let (status, _) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"expiration": null})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"expiration": soon})),
    )
    .await;
    assert_eq!(status, 201);
    tokio::time::sleep(std::time::Duration::from_millis(
        (soon * 1000 - db::now_ms() + 2100).max(0) as u64,
    ))
    .await;
    assert_eq!(served_digest(&app, "tester/app", "v1").await, None);
    // An expired tag can no longer be given an expiration.
    let (status, _) = api(
        &app,
        TESTER,
        Method::PUT,
        path,
        Some(json!({"expiration": soon + 60})),
    )
    .await;
    assert_eq!(status, 404);
});
