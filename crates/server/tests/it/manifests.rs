//! Manifest PUT/GET/HEAD/DELETE for the four formats, references, and their errors.

use reqwest::Method;
use serde_json::json;
use types::Digest;

use crate::app_test;
use crate::harness::{LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, TestApp, error_code, header};

const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

app_test!(oci_image_by_tag_and_digest, |app: TestApp| async move {
    let (manifest, digest) = app
        .push_image("acme/app", "v1", &[b"layer one", b"layer two"])
        .await;
    let raw = serde_json::to_vec(&manifest).unwrap();
    for reference in ["v1".to_string(), digest.to_string()] {
        let path = format!("/v2/acme/app/manifests/{reference}");
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        assert_eq!(r.bytes().await.unwrap(), raw, "the exact bytes come back");
        let r = app.req(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-length"), raw.len().to_string());
    }
});

app_test!(
    put_answers_with_location_and_digest,
    |app: TestApp| async move {
        let config = app.push_blob("acme/app", b"{}").await;
        let manifest = json!({"schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config.to_string(), "size": 2},
        "layers": []});
        let r = app
            .put_manifest("acme/app", "latest", DOCKER_V2, &manifest)
            .await;
        assert_eq!(r.status(), 201);
        let digest = Digest::sha256_of(&serde_json::to_vec(&manifest).unwrap());
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        assert_eq!(
            header(&r, "location"),
            format!("/v2/acme/app/manifests/{digest}")
        );
        let r = app.get("/v2/acme/app/manifests/latest").await;
        assert_eq!(header(&r, "content-type"), DOCKER_V2);
    }
);

app_test!(
    indexes_and_manifest_lists_need_their_children,
    |app: TestApp| async move {
        let (_, amd) = app.push_image("acme/multi", "amd", &[b"amd64 layer"]).await;
        let (_, arm) = app.push_image("acme/multi", "arm", &[b"arm64 layer"]).await;
        let missing = Digest::sha256_of(b"not pushed");
        for media_type in [OCI_INDEX, DOCKER_LIST] {
            let child = |d: &Digest, arch: &str| {
                json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 100,
            "platform": {"architecture": arch, "os": "linux"}})
            };
            let index = json!({"schemaVersion": 2, "mediaType": media_type,
            "manifests": [child(&amd, "amd64"), child(&arm, "arm64")]});
            let r = app
                .put_manifest("acme/multi", "all", media_type, &index)
                .await;
            assert_eq!(r.status(), 201, "{media_type}");
            let r = app.get("/v2/acme/multi/manifests/all").await;
            assert_eq!(header(&r, "content-type"), media_type);

            let broken = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": [child(&missing, "s390x")]});
            let r = app
                .put_manifest("acme/multi", "broken", media_type, &broken)
                .await;
            assert_eq!(r.status(), 400);
            assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
        }
    }
);

app_test!(
    children_pushed_by_digest_stay_alive,
    |app: TestApp| async move {
        let config = app.push_blob("acme/app", b"{\"os\":\"linux\"}").await;
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(), "size": 14}, "layers": []});
        let digest = Digest::sha256_of(&serde_json::to_vec(&manifest).unwrap());
        let r = app
            .put_manifest("acme/app", &digest.to_string(), OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 201);
        assert_eq!(
            app.get(&format!("/v2/acme/app/manifests/{digest}"))
                .await
                .status(),
            200
        );
        // Not listed: only a hidden tag keeps it.
        let tags: serde_json::Value = app
            .get("/v2/acme/app/tags/list")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(tags["tags"], json!([]));
    }
);

app_test!(manifest_errors, |app: TestApp| async move {
    let config = app.push_blob("acme/app", b"{}").await;
    let r = app
        .req(Method::PUT, "/v2/acme/app/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");

    let missing = Digest::sha256_of(b"missing layer");
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": LAYER, "digest": missing.to_string(), "size": 5}]});
    let r = app
        .put_manifest("acme/app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        app.get("/v2/acme/app/manifests/v1").await.status(),
        404,
        "nothing was stored"
    );

    let schema1 =
        json!({"schemaVersion": 1, "name": "acme/app", "tag": "v1", "fsLayers": [], "history": []});
    let r = app
        .put_manifest(
            "acme/app",
            "v1",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            &schema1,
        )
        .await;
    assert_eq!(r.status(), 415);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");

    let good = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(), "size": 2}, "layers": []});
    let r = app.put_manifest("acme/app", "v1", DOCKER_V2, &good).await;
    assert_eq!(r.status(), 400, "Content-Type disagrees with mediaType");
    let wrong = Digest::sha256_of(b"another manifest");
    let r = app
        .put_manifest("acme/app", &wrong.to_string(), OCI_MANIFEST, &good)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = app
        .put_manifest("acme/app", "bad!tag", OCI_MANIFEST, &good)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "TAG_INVALID");

    let huge = vec![b' '; 4 << 20 | 1];
    let r = app
        .req(Method::PUT, "/v2/acme/app/manifests/big")
        .header("content-type", OCI_MANIFEST)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");

    let r = app.get("/v2/acme/app/manifests/nope").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = app.get("/v2/acme/app/manifests/sha256:short").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = app.get("/v2/acme/none/manifests/v1").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
});

app_test!(delete_by_tag_and_by_digest, |app: TestApp| async move {
    let (_, d1) = app.push_image("acme/app", "v1", &[b"one"]).await;
    let (_, d2) = app.push_image("acme/app", "v2", &[b"two"]).await;
    let r = app
        .req(Method::PUT, "/v2/acme/app/manifests/also-v2")
        .header("content-type", OCI_MANIFEST)
        .body(
            app.get("/v2/acme/app/manifests/v2")
                .await
                .bytes()
                .await
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let r = app
        .req(Method::DELETE, "/v2/acme/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(app.get("/v2/acme/app/manifests/v1").await.status(), 404);
    let r = app
        .req(Method::DELETE, "/v2/acme/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    assert_eq!(
        app.get(&format!("/v2/acme/app/manifests/{d1}"))
            .await
            .status(),
        404
    );

    let r = app
        .req(Method::DELETE, &format!("/v2/acme/app/manifests/{d2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    for reference in ["v2".to_string(), "also-v2".to_string(), d2.to_string()] {
        let r = app
            .get(&format!("/v2/acme/app/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), 404, "{reference}");
    }
    let r = app
        .req(Method::DELETE, &format!("/v2/acme/app/manifests/{d2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
});

app_test!(tags_move_to_the_newest_push, |app: TestApp| async move {
    let (_, first) = app.push_image("acme/app", "latest", &[b"first"]).await;
    let (_, second) = app.push_image("acme/app", "latest", &[b"second"]).await;
    assert_ne!(first, second);
    let r = app.get("/v2/acme/app/manifests/latest").await;
    assert_eq!(header(&r, "docker-content-digest"), second.to_string());
});
