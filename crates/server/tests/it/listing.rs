//! Tag list, catalog and referrers.

use reqwest::Method;
use serde_json::{Value, json};
use types::Digest;

use crate::app_test;
use crate::harness::{OCI_MANIFEST, TestApp, error_code, header};

app_test!(tag_list_pages_with_link, |app: TestApp| async move {
    for tag in ["c", "a", "e", "b", "d"] {
        app.push_image("acme/app", tag, &[b"same layer"]).await;
    }
    let r = app.get("/v2/acme/app/tags/list").await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "link").is_empty());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"name": "acme/app", "tags": ["a", "b", "c", "d", "e"]})
    );

    let r = app.get("/v2/acme/app/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/acme/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["a", "b"]));
    let r = app.get("/v2/acme/app/tags/list?n=2&last=b").await;
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["c", "d"]));
    let r = app.get("/v2/acme/app/tags/list?n=2&last=d").await;
    assert!(header(&r, "link").is_empty());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["e"]));
    let r = app.get("/v2/acme/app/tags/list?n=0").await;
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));

    let r = app.get("/v2/acme/app/tags/list?n=x").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "PAGINATION_NUMBER_INVALID");
    let r = app.get("/v2/acme/none/tags/list").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
});

app_test!(catalog_pages_with_link, |app: TestApp| async move {
    for repo in ["zeta/z", "acme/b", "acme/a/deep", "beta/c"] {
        app.push_blob(repo, b"x").await;
    }
    let body: Value = app.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"repositories": ["acme/a/deep", "acme/b", "beta/c", "zeta/z"]})
    );
    let r = app.get("/v2/_catalog?n=3").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=3&last=beta/c>; rel=\"next\""
    );
    let r = app.get("/v2/_catalog?n=3&last=beta/c").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["zeta/z"])
    );
});

app_test!(referrers_list_and_filter, |app: TestApp| async move {
    let (_, subject) = app.push_image("acme/app", "v1", &[b"image layer"]).await;
    let empty = app.push_blob("acme/app", b"{}").await;
    let mut pushed = Vec::new();
    for (kind, note) in [
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.sig", "sig"),
    ] {
        let artifact = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 100},
            "annotations": {"note": note}});
        let digest = Digest::sha256_of(&serde_json::to_vec(&artifact).unwrap());
        let r = app
            .put_manifest("acme/app", &digest.to_string(), OCI_MANIFEST, &artifact)
            .await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "oci-subject"), subject.to_string());
        pushed.push(digest);
    }
    let r = app.get(&format!("/v2/acme/app/referrers/{subject}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(header(&r, "oci-filters-applied").is_empty());
    let index: Value = r.json().await.unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["digest"], pushed[0].to_string());
    assert_eq!(manifests[0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(manifests[0]["annotations"]["note"], "sbom");

    let r = app
        .get(&format!(
            "/v2/acme/app/referrers/{subject}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], pushed[1].to_string());

    // Deleting a referrer removes it from the list; an unknown subject has an empty list.
    let r = app
        .req(
            Method::DELETE,
            &format!("/v2/acme/app/manifests/{}", pushed[0]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let index: Value = app
        .get(&format!("/v2/acme/app/referrers/{subject}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let unknown = Digest::sha256_of(b"no such subject");
    let r = app.get(&format!("/v2/acme/app/referrers/{unknown}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
    let r = app.get("/v2/acme/app/referrers/sha256:bad").await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
});
