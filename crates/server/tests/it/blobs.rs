//! Blob HEAD/GET/DELETE, ranges, monolithic uploads and mounts.

use reqwest::Method;
use types::Digest;

use crate::app_test;
use crate::harness::{TestApp, error_code, header, sha512};

app_test!(
    ping_answers_with_the_api_version,
    |app: TestApp| async move {
        let r = app.get("/v2/").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "docker-distribution-api-version"),
            "registry/2.0"
        );
        let r = app.req(Method::POST, "/v2/").send().await.unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(error_code(r).await, "UNSUPPORTED");
        let r = app.get("/v2/nothing-here").await;
        assert_eq!(r.status(), 404);
        assert_eq!(
            header(&r, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
);

app_test!(
    monolithic_upload_then_head_get_and_ranges,
    |app: TestApp| async move {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let digest = app.push_blob("acme/app", &body).await;
        let path = format!("/v2/acme/app/blobs/{digest}");

        let r = app.req(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-length"), "100000");
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        assert_eq!(header(&r, "accept-ranges"), "bytes");

        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), body);

        let r = app
            .req(Method::GET, &path)
            .header("range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(header(&r, "content-range"), "bytes 10-19/100000");
        assert_eq!(r.bytes().await.unwrap(), &body[10..20]);

        let r = app
            .req(Method::GET, &path)
            .header("range", "bytes=-5")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap(), &body[99_995..]);

        let r = app
            .req(Method::GET, &path)
            .header("range", "bytes=100000-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(header(&r, "content-range"), "bytes */100000");
    }
);

app_test!(
    monolithic_digest_mismatch_keeps_nothing,
    |app: TestApp| async move {
        let claimed = Digest::sha256_of(b"something else");
        let r = app
            .req(
                Method::POST,
                &format!("/v2/acme/app/blobs/uploads/?digest={claimed}"),
            )
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let r = app
            .req(Method::HEAD, &format!("/v2/acme/app/blobs/{claimed}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let leftovers = std::fs::read_dir(app.storage.path().join("uploads"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "the upload's bytes were deleted");
    }
);

app_test!(
    bad_names_and_digests_are_client_errors,
    |app: TestApp| async move {
        let r = app
            .req(Method::POST, "/v2/Acme/App/blobs/uploads/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "NAME_INVALID");
        let r = app
            .req(
                Method::POST,
                "/v2/acme/app/blobs/uploads/?digest=sha256:xyz",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let r = app.get("/v2/acme/app/blobs/md5:abc").await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let r = app
            .get(&format!(
                "/v2/acme/nothing/blobs/{}",
                Digest::sha256_of(b"x")
            ))
            .await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
        app.push_blob("acme/app", b"present").await;
        let r = app
            .get(&format!(
                "/v2/acme/app/blobs/{}",
                Digest::sha256_of(b"absent")
            ))
            .await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    }
);

app_test!(
    blobs_are_scoped_to_their_repository,
    |app: TestApp| async move {
        let digest = app.push_blob("acme/one", b"private bytes").await;
        app.push_blob("acme/two", b"other").await;
        let r = app.get(&format!("/v2/acme/two/blobs/{digest}")).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    }
);

app_test!(
    blob_delete_is_refused_as_quay_does,
    |app: TestApp| async move {
        let digest = app.push_blob("acme/app", b"keep me").await;
        let r = app
            .req(Method::DELETE, &format!("/v2/acme/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(error_code(r).await, "UNSUPPORTED");
        let r = app.get(&format!("/v2/acme/app/blobs/{digest}")).await;
        assert_eq!(r.status(), 200);
        let missing = Digest::sha256_of(b"never pushed");
        let r = app
            .req(Method::DELETE, &format!("/v2/acme/app/blobs/{missing}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
);

app_test!(sha512_blobs, |app: TestApp| async move {
    let body = b"sha512 content".repeat(1000);
    let digest = sha512(&body);
    let r = app
        .req(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?digest={digest}"),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Chunked: the session hashes SHA-256 while streaming and rehashes for SHA-512 at the end.
    let other = b"chunked sha512".repeat(500);
    let (location, _) = app.start_upload("acme/app").await;
    let r = app
        .req(Method::PATCH, &location)
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = app
        .req(
            Method::PUT,
            &format!("{location}?digest={}", sha512(&other)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = app
        .get(&format!("/v2/acme/app/blobs/{}", sha512(&other)))
        .await;
    assert_eq!(r.bytes().await.unwrap(), other);
});

app_test!(cross_repository_mount, |app: TestApp| async move {
    let digest = app.push_blob("acme/src", b"shared layer").await;
    let r = app
        .req(
            Method::POST,
            &format!("/v2/acme/dst/blobs/uploads/?mount={digest}&from=acme/src"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/acme/dst/blobs/{digest}")
    );
    assert_eq!(
        app.get(&format!("/v2/acme/dst/blobs/{digest}"))
            .await
            .status(),
        200
    );

    // The source lacks the blob, or does not exist: an ordinary upload session starts instead.
    let missing = Digest::sha256_of(b"not there");
    for from in ["acme/src", "acme/none", "Bad Name"] {
        let r = app
            .req(
                Method::POST,
                &format!("/v2/acme/dst/blobs/uploads/?mount={missing}&from={from}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "from {from}");
        assert!(header(&r, "location").starts_with("/v2/acme/dst/blobs/uploads/"));
    }
});

app_test!(extended_repository_names, |app: TestApp| async move {
    let digest = app.push_blob("acme/team/sub/app", b"deep").await;
    let r = app
        .get(&format!("/v2/acme/team/sub/app/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 200);
    // A single component lands in the library namespace.
    let digest = app.push_blob("alpine", b"library").await;
    assert_eq!(
        app.get(&format!("/v2/library/alpine/blobs/{digest}"))
            .await
            .status(),
        200
    );
});

#[tokio::test]
async fn blobs_over_the_size_limit_are_refused() {
    for engine in [db::testing::Engine::Sqlite, db::testing::Engine::Postgres] {
        let settings = wharf_core::Settings {
            max_blob_size: 1000,
            ..Default::default()
        };
        let app = TestApp::with_settings(engine, settings).await;
        let body = vec![7u8; 1001];
        let digest = Digest::sha256_of(&body);
        let r = app
            .req(
                Method::POST,
                &format!("/v2/acme/app/blobs/uploads/?digest={digest}"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        let (location, _) = app.start_upload("acme/app").await;
        let r = app
            .req(Method::PATCH, &location)
            .body(vec![1u8; 600])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let r = app
            .req(Method::PATCH, &location)
            .body(vec![1u8; 600])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        // The accepted part is still there.
        assert_eq!(header(&app.get(&location).await, "range"), "0-599");
    }
}

app_test!(
    encoded_or_odd_paths_still_get_oci_errors,
    |app: TestApp| async move {
        for path in [
            "/v2/acme/%ZZ/blobs/uploads/",
            "/v2/acme/a%2Fb/tags/list",
            "/v2/acme/app/blobs/uploads/%00",
        ] {
            let r = app.req(Method::POST, path).send().await.unwrap();
            assert!(r.status().is_client_error(), "{path}: {}", r.status());
            assert_eq!(header(&r, "content-type"), "application/json", "{path}");
            let code = error_code(r).await;
            assert!(
                [
                    "NAME_INVALID",
                    "NAME_UNKNOWN",
                    "BLOB_UPLOAD_UNKNOWN",
                    "UNSUPPORTED"
                ]
                .contains(&code.as_str()),
                "{path}: {code}"
            );
        }
    }
);
