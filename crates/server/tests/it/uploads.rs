//! Chunked uploads: sessions, ordering, status, cancel, and resuming on another process.

use reqwest::Method;
use types::Digest;

use crate::app_test;
use crate::harness::{TestApp, error_code, header};

app_test!(
    chunked_upload_with_and_without_content_range,
    |app: TestApp| async move {
        let r = app
            .req(Method::POST, "/v2/acme/app/blobs/uploads/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = header(&r, "location");
        let uuid = header(&r, "docker-upload-uuid");
        assert!(location.ends_with(&uuid));
        assert_eq!(header(&r, "range"), "0-0");

        let r = app
            .req(Method::PATCH, &location)
            .header("content-range", "0-4")
            .header("content-type", "application/octet-stream")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(header(&r, "range"), "0-4");
        let r = app
            .req(Method::PATCH, &location)
            .body(", wor")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "range"), "0-9");

        let r = app.get(&location).await;
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "range"), "0-9");
        assert_eq!(header(&r, "docker-upload-uuid"), uuid);

        let digest = Digest::sha256_of(b"hello, world");
        let r = app
            .req(Method::PUT, &format!("{location}?digest={digest}"))
            .body("ld")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        let r = app.get(&header(&r, "location")).await;
        assert_eq!(r.bytes().await.unwrap(), "hello, world");
        // The session is gone once committed.
        let r = app.get(&location).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
);

app_test!(out_of_order_chunk_is_416, |app: TestApp| async move {
    let (location, _) = app.start_upload("acme/app").await;
    app.req(Method::PATCH, &location)
        .header("content-range", "0-2")
        .body("abc")
        .send()
        .await
        .unwrap();
    for range in ["5-7", "0-2", "2-4"] {
        let r = app
            .req(Method::PATCH, &location)
            .header("content-range", range)
            .body("def")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416, "range {range}");
        assert_eq!(header(&r, "range"), "0-2");
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
    }
    let r = app
        .req(Method::PATCH, &location)
        .header("content-range", "nonsense")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    // The session is intact and still accepts the right chunk.
    let r = app
        .req(Method::PATCH, &location)
        .header("content-range", "3-5")
        .body("def")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let digest = Digest::sha256_of(b"abcdef");
    let r = app
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
});

app_test!(
    finishing_needs_a_correct_digest,
    |app: TestApp| async move {
        let (location, _) = app.start_upload("acme/app").await;
        app.req(Method::PATCH, &location)
            .body("data")
            .send()
            .await
            .unwrap();
        let r = app.req(Method::PUT, &location).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
        let r = app
            .req(Method::PUT, &format!("{location}?digest=sha256:nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let wrong = Digest::sha256_of(b"other");
        let r = app
            .req(Method::PUT, &format!("{location}?digest={wrong}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        // A mismatch discards the upload and its bytes.
        assert_eq!(app.get(&location).await.status(), 404);
        assert_eq!(
            std::fs::read_dir(app.storage.path().join("uploads"))
                .unwrap()
                .count(),
            0
        );
    }
);

app_test!(cancel_and_unknown_sessions, |app: TestApp| async move {
    let (location, _) = app.start_upload("acme/app").await;
    app.req(Method::PATCH, &location)
        .body("partial")
        .send()
        .await
        .unwrap();
    let r = app.req(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = app.req(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    for method in [Method::GET, Method::PATCH, Method::PUT] {
        let r = app.req(method.clone(), "/v2/acme/app/blobs/uploads/no-such-id?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000").send().await.unwrap();
        assert_eq!(r.status(), 404, "{method}");
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
    // A session belongs to its repository.
    let (_, uuid) = app.start_upload("acme/app").await;
    app.push_blob("acme/other", b"x").await;
    let r = app
        .get(&format!("/v2/acme/other/blobs/uploads/{uuid}"))
        .await;
    assert_eq!(r.status(), 404);
});

app_test!(
    an_upload_continues_on_another_process,
    |app: TestApp| async move {
        let (location, uuid) = app.start_upload("acme/app").await;
        let first: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        app.req(Method::PATCH, &location)
            .body(first.clone())
            .send()
            .await
            .unwrap();

        // A second registry over the same database and storage, as another node would be.
        let sibling = app.sibling().await;
        let path = sibling.parse_path("acme/app").unwrap();
        let repo = sibling.repository(&path).await.unwrap();
        assert_eq!(
            sibling.upload_status(&repo, &uuid).await.unwrap().size,
            3_000_000
        );
        let rest = b"the end".to_vec();
        let mut whole = first.clone();
        whole.extend_from_slice(&rest);
        let digest = Digest::sha256_of(&whole);
        let body: wharf_core::BodyStream = Box::pin(futures::stream::iter([Ok::<_, String>(
            bytes::Bytes::from(rest),
        )]));
        let blob = sibling
            .finish_upload(&repo, &uuid, &digest, body)
            .await
            .unwrap();
        assert_eq!(blob.size, whole.len() as i64);
        let r = app.get(&format!("/v2/acme/app/blobs/{digest}")).await;
        assert_eq!(r.bytes().await.unwrap(), whole);
    }
);

app_test!(empty_blobs, |app: TestApp| async move {
    let digest = app.push_blob("acme/app", b"").await;
    let r = app.get(&format!("/v2/acme/app/blobs/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "0");
    let r = app
        .req(Method::POST, "/v2/acme/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let r = app
        .req(
            Method::PUT,
            &format!("{}?digest={digest}", header(&r, "location")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
});

app_test!(
    one_writer_per_session_at_a_time,
    |app: TestApp| async move {
        let (location, _) = app.start_upload("acme/app").await;
        // The first PATCH sends a little, then holds the session open for a while.
        let slow = reqwest::Body::wrap_stream(futures::stream::unfold(0u8, |step| async move {
            match step {
                0 => Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first ")),
                    1,
                )),
                1 => {
                    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                    Some((Ok(bytes::Bytes::from_static(b"writer")), 2))
                }
                _ => None,
            }
        }));
        let url = format!("{}{location}", app.base);
        let client = app.client.clone();
        let bearer = app.bearer(Method::PATCH, "acme/app").await;
        let first = tokio::spawn(async move {
            client
                .patch(url)
                .header("authorization", bearer)
                .body(slow)
                .send()
                .await
                .unwrap()
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let r = app
            .req(Method::PATCH, &location)
            .body("intruder")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
        assert_eq!(first.await.unwrap().status(), 202);
        let digest = Digest::sha256_of(b"first writer");
        let r = app
            .req(Method::PUT, &format!("{location}?digest={digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "only the first writer's bytes are in the blob"
        );
    }
);
