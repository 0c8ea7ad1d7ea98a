//! Garbage collection end to end: images pushed and tags deleted or moved over HTTP, the
//! collector run as another process would run it (a second `Registry` over the same database
//! and storage), then rows, files and pulls checked. `safety` runs it under load.

mod safety;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::BlobStore;
use types::Digest;
use wharf_core::{GcCursor, GcReport, PurgeProgress, Registry, Settings};

use crate::harness::{As, OCI_INDEX, OCI_MANIFEST, TestApp, api};

const TESTER: As<'static> = As::User("tester");

/// Defines `name::sqlite` and `name::postgres` from a settings expression and
/// `|app: TestApp| async move { ... }`.
macro_rules! gc_test {
    ($name:ident, $settings:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let app = TestApp::with_settings(db::testing::Engine::Sqlite, $settings).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let app = TestApp::with_settings(db::testing::Engine::Postgres, $settings).await;
                ($body)(app).await;
            }
        }
    };
}
pub(crate) use gc_test;

/// Registry settings under which a pushed blob is not protected at all once pushed, so that
/// the collector may take it as soon as no manifest uses it.
fn unprotected() -> Settings {
    Settings {
        uploaded_blob_expiration: Duration::ZERO,
        ..Settings::default()
    }
}

/// Sets the time-machine window of namespace `ns` (which a first push made).
async fn set_window(app: &TestApp, ns: &str, seconds: i64) {
    let account = app.db.db.find_account(ns).await.unwrap().unwrap();
    app.db
        .db
        .set_tag_expiration_s(account.id, seconds)
        .await
        .unwrap();
}

/// What `gcworker` does, to the end: collects every repository with garbage, then scans for
/// leftovers until a full round found nothing.
pub(crate) async fn run_gc(registry: &Registry) -> GcReport {
    let mut report = GcReport::default();
    loop {
        let candidates = registry.gc_candidates().await.unwrap();
        let mut round = GcReport::default();
        for id in candidates {
            round.merge(&registry.collect_repository(id).await.unwrap());
        }
        let mut cursor = GcCursor::default();
        loop {
            let (leftovers, done) = registry.collect_leftovers(&mut cursor, 1000).await.unwrap();
            round.merge(&leftovers);
            if done {
                break;
            }
        }
        report.merge(&round);
        if round.is_empty() {
            return report;
        }
    }
}

/// What `repositorygcworker` and `namespacegcworker` do with the items queued so far.
/// Returns how many items were completed.
pub(crate) async fn run_purges(app: &TestApp, registry: &Registry) -> usize {
    let db = &app.db.db;
    let mut done = 0;
    for queue in ["repositorygc", "namespacegc"] {
        while let Some(item) = db.queue_claim(queue, 60_000).await.unwrap() {
            let body: Value = serde_json::from_str(&item.body).unwrap();
            let id = body["marker_id"].as_i64().unwrap();
            let (progress, _) = if queue == "repositorygc" {
                registry.purge_repository(id, Some(item.id)).await.unwrap()
            } else {
                registry.purge_namespace(id, Some(item.id)).await.unwrap()
            };
            match progress {
                PurgeProgress::Purged => {
                    assert!(db.queue_complete(&item).await.unwrap());
                    done += 1;
                }
                other => {
                    // A purge that lost a race is tried again on the next run.
                    db.queue_incomplete(&item, 0, true).await.unwrap();
                    eprintln!("{queue} item {}: {other:?}", item.name);
                    break;
                }
            }
        }
    }
    done
}

fn store(app: &TestApp) -> storage::LocalStore {
    storage::LocalStore::open(app.storage.path()).unwrap()
}

/// Every blob row, digest → object key.
async fn blob_keys(app: &TestApp) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = app.db.db.list_blobs(after, 500).await.unwrap();
        let Some(last) = page.last() else {
            return keys;
        };
        after = last.id;
        for blob in page {
            keys.insert(blob.digest, blob.storage_key);
        }
    }
}

fn object_exists(app: &TestApp, key: &str) -> bool {
    store(app).local_path(key).unwrap().exists()
}

/// Every blob row has a placement and an object whose bytes match its digest.
pub(crate) async fn assert_storage_consistent(app: &TestApp) -> usize {
    let store = store(app);
    let mut after = 0;
    let mut checked = 0;
    loop {
        let page = app.db.db.list_blobs(after, 500).await.unwrap();
        let Some(last) = page.last() else {
            return checked;
        };
        after = last.id;
        for blob in page {
            let placements = app.db.db.blob_placements(blob.id).await.unwrap();
            assert!(
                !placements.is_empty(),
                "blob {} has a placement",
                blob.digest
            );
            let path = store.local_path(&blob.storage_key).unwrap();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("object of blob {}: {e}", blob.digest));
            let digest: Digest = blob.digest.parse().unwrap();
            assert!(
                digest.matches(&bytes),
                "object of blob {} is whole",
                blob.digest
            );
            checked += 1;
        }
    }
}

/// Pulls `repo:reference` and every blob (and child manifest) it names, checking each against
/// its digest. Returns how many blobs were verified.
pub(crate) async fn pull_verified(app: &TestApp, repo: &str, reference: &str) -> usize {
    let r = app.get(&format!("/v2/{repo}/manifests/{reference}")).await;
    assert_eq!(r.status(), 200, "{repo}:{reference}");
    let digest: Digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert!(
        digest.matches(&bytes),
        "{repo}:{reference} matches its digest"
    );
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    let mut verified = 0;
    if let Some(children) = manifest["manifests"].as_array() {
        for child in children {
            let child = child["digest"].as_str().unwrap();
            verified += Box::pin(pull_verified(app, repo, child)).await;
        }
        return verified;
    }
    let mut blobs = vec![manifest["config"]["digest"].clone()];
    blobs.extend(
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone()),
    );
    for d in blobs {
        let d: Digest = d.as_str().unwrap().parse().unwrap();
        let r = app.get(&format!("/v2/{repo}/blobs/{d}")).await;
        assert_eq!(r.status(), 200, "blob {d} of {repo}:{reference}");
        assert!(
            d.matches(&r.bytes().await.unwrap()),
            "blob {d} of {repo}:{reference} is whole"
        );
        verified += 1;
    }
    verified
}

gc_test!(
    unreferenced_blobs_go_and_shared_ones_stay,
    unprotected(),
    |app: TestApp| async move {
        let shared: &[u8] = b"a layer every image has";
        app.push_image("gc/app", "a", &[shared, b"only in a"]).await;
        let (_, b) = app.push_image("gc/app", "b", &[shared, b"only in b"]).await;
        app.push_image("gc/other", "c", &[shared]).await;
        // An index over b, pushed by tag; b itself keeps no tag of its own below.
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": b.to_string(), "size": 1}],
        });
        let r = app.put_manifest("gc/app", "multi", OCI_INDEX, &index).await;
        assert_eq!(r.status(), 201);
        set_window(&app, "gc", 0).await;
        let before = blob_keys(&app).await;
        let only_a = Digest::sha256_of(b"only in a").to_string();
        let only_b = Digest::sha256_of(b"only in b").to_string();

        // Move a to an image without its own layer; delete b (the index still lists it).
        app.push_image("gc/app", "a", &[shared, b"a again"]).await;
        let r = app
            .req(Method::DELETE, "/v2/gc/app/manifests/b")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let collector = app.sibling().await;
        let report = run_gc(&collector).await;
        assert_eq!(report.conflicts, 0);
        let after = blob_keys(&app).await;
        assert!(!after.contains_key(&only_a), "a's old layer is collected");
        assert!(!object_exists(&app, &before[&only_a]), "and its object");
        assert!(
            after.contains_key(&only_b),
            "b is still listed by the index"
        );
        assert_eq!(pull_verified(&app, "gc/app", "multi").await, 3);

        // Without the index, b and its layer go; the shared layer stays for a and c.
        let r = app
            .req(Method::DELETE, "/v2/gc/app/manifests/multi")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let report = run_gc(&collector).await;
        assert!(report.manifests_deleted >= 2, "{report:?}");
        let after = blob_keys(&app).await;
        assert!(!after.contains_key(&only_b));
        assert!(!object_exists(&app, &before[&only_b]));
        let shared_digest = Digest::sha256_of(shared).to_string();
        assert_eq!(after[&shared_digest], before[&shared_digest]);
        assert_eq!(pull_verified(&app, "gc/app", "a").await, 3);
        assert_eq!(pull_verified(&app, "gc/other", "c").await, 2);
        let r = app.get(&format!("/v2/gc/app/manifests/{b}")).await;
        assert_eq!(r.status(), 404, "b is gone");
        assert_eq!(assert_storage_consistent(&app).await, after.len());
        let stats = collector.gc_stats();
        assert!(
            stats.blobs_deleted >= 2 && stats.iterations >= 2,
            "{stats:?}"
        );
        assert_eq!(
            run_gc(&collector).await,
            GcReport::default(),
            "nothing is left"
        );
    }
);

gc_test!(
    the_time_machine_survives_collection,
    unprotected(),
    |app: TestApp| async move {
        let (_, digest) = app.push_image("gc/app", "v1", &[b"restore me"]).await;
        set_window(&app, "gc", 3600).await;
        let tag = "/repository/gc/app/tag/v1";
        let (status, _) = api(&app, TESTER, Method::DELETE, tag, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let collector = app.sibling().await;
        let report = run_gc(&collector).await;
        assert_eq!(
            (
                report.tags_deleted,
                report.manifests_deleted,
                report.blobs_deleted
            ),
            (0, 0, 0),
            "the deleted tag is in the time machine"
        );
        let restore = json!({"manifest_digest": digest.to_string()});
        let path = format!("{tag}/restore");
        let (status, body) = api(&app, TESTER, Method::POST, &path, Some(restore.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pull_verified(&app, "gc/app", "v1").await, 2);

        // With no time machine, a deleted tag is collected at once and cannot come back.
        set_window(&app, "gc", 0).await;
        let (status, _) = api(&app, TESTER, Method::DELETE, tag, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let report = run_gc(&collector).await;
        assert_eq!((report.manifests_deleted, report.blobs_deleted), (1, 2));
        let (status, _) = api(&app, TESTER, Method::POST, &path, Some(restore)).await;
        assert_eq!(status, 404);
        assert!(blob_keys(&app).await.is_empty());
    }
);

gc_test!(
    permanently_deleted_tags_leave_the_time_machine,
    unprotected(),
    |app: TestApp| async move {
        let (_, old) = app.push_image("gc/app", "v1", &[b"first"]).await;
        let (_, new) = app.push_image("gc/app", "v1", &[b"second"]).await;
        set_window(&app, "gc", 3600).await;
        let expire = "/repository/gc/app/tag/v1/expire";
        // The lifetime that pointed at `old` ended when v1 moved: take it out of the window.
        let body = json!({"manifest_digest": old.to_string(), "is_alive": false});
        let (status, answer) = api(&app, TESTER, Method::POST, expire, Some(body.clone())).await;
        assert_eq!(status, 200, "{answer}");
        let (status, _) = api(&app, TESTER, Method::POST, expire, Some(body)).await;
        assert_eq!(status, 404, "no such lifetime is left in the window");
        let collector = app.sibling().await;
        let report = run_gc(&collector).await;
        // The manifest and its layer; the config blob is the same in both images.
        assert_eq!((report.manifests_deleted, report.blobs_deleted), (1, 1));
        let restore = "/repository/gc/app/tag/v1/restore";
        let (status, _) = api(
            &app,
            TESTER,
            Method::POST,
            restore,
            Some(json!({"manifest_digest": old.to_string()})),
        )
        .await;
        assert_eq!(status, 404, "gone for good");
        assert_eq!(pull_verified(&app, "gc/app", "v1").await, 2);

        // The alive lifetime: the tag is deleted and expired in one call.
        let body = json!({"manifest_digest": new.to_string(), "is_alive": true});
        let (status, _) = api(&app, TESTER, Method::POST, expire, Some(body)).await;
        assert_eq!(status, 200);
        let r = app.get("/v2/gc/app/manifests/v1").await;
        assert_eq!(r.status(), 404);
        let report = run_gc(&collector).await;
        assert_eq!((report.manifests_deleted, report.blobs_deleted), (1, 2));
        assert!(blob_keys(&app).await.is_empty());
        // A body without the digest is Quay's 400.
        let (status, _) = api(&app, TESTER, Method::POST, expire, Some(json!({}))).await;
        assert_eq!(status, 400);
    }
);

gc_test!(
    deleted_repositories_are_purged,
    Settings::default(),
    |app: TestApp| async move {
        let shared: &[u8] = b"shared with the repository that stays";
        app.push_image("gc/doomed", "v1", &[shared, b"doomed only"])
            .await;
        app.push_image("gc/doomed", "v2", &[b"doomed too"]).await;
        app.push_image("gc/kept", "v1", &[shared]).await;
        // An upload left unfinished in the doomed repository.
        let (location, uuid) = app.start_upload("gc/doomed").await;
        let r = app
            .req(Method::PATCH, &location)
            .body(vec![7u8; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let upload_bytes = app.storage.path().join("uploads").join(&uuid);
        assert!(upload_bytes.exists());
        let doomed = app
            .db
            .db
            .find_repository("gc", "doomed")
            .await
            .unwrap()
            .unwrap();
        let before = blob_keys(&app).await;

        let (status, _) = api(&app, TESTER, Method::DELETE, "/repository/gc/doomed", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let collector = app.sibling().await;
        assert_eq!(run_purges(&app, &collector).await, 1);
        assert_eq!(
            app.db.db.repository_counts(doomed.id).await.unwrap(),
            db::RepositoryCounts::default()
        );
        assert_eq!(collector.gc_stats().repositories_purged, 1);
        assert!(
            !upload_bytes.exists(),
            "the unfinished upload's bytes are gone"
        );
        let after = blob_keys(&app).await;
        for gone in [&b"doomed only"[..], b"doomed too"] {
            let d = Digest::sha256_of(gone).to_string();
            assert!(!after.contains_key(&d));
            assert!(!object_exists(&app, &before[&d]));
        }
        assert!(after.contains_key(&Digest::sha256_of(shared).to_string()));
        assert_eq!(pull_verified(&app, "gc/kept", "v1").await, 2);
        // The name is free for a new repository, which starts empty. (The harness keeps its
        // token for the name, so the repository is created through the API, not by a token.)
        let new = json!({"namespace": "gc", "repository": "doomed", "visibility": "private",
            "description": ""});
        let (status, body) = api(&app, TESTER, Method::POST, "/repository", Some(new)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        app.push_image("gc/doomed", "new", &[b"reborn"]).await;
        assert_eq!(pull_verified(&app, "gc/doomed", "new").await, 2);
        let r = app.get("/v2/gc/doomed/manifests/v1").await;
        assert_eq!(r.status(), 404);
        assert_eq!(run_purges(&app, &collector).await, 0, "the queue is empty");
        assert_storage_consistent(&app).await;
    }
);

gc_test!(
    deleted_namespaces_are_purged,
    Settings::default(),
    |app: TestApp| async move {
        let shared: &[u8] = b"also in tester's own repository";
        app.push_image("doomedorg/one", "v1", &[shared, b"one only"])
            .await;
        app.push_image("doomedorg/two", "v1", &[b"two only"]).await;
        app.push_image("tester/mine", "v1", &[shared]).await;
        let org = app.db.db.find_account("doomedorg").await.unwrap().unwrap();
        let (status, body) = api(
            &app,
            TESTER,
            Method::PUT,
            "/organization/doomedorg/robots/builder",
            None,
        )
        .await;
        assert!(status.is_success(), "{status} {body}");

        let (status, _) = api(
            &app,
            TESTER,
            Method::DELETE,
            "/organization/doomedorg",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let collector = app.sibling().await;
        assert_eq!(run_purges(&app, &collector).await, 1);
        assert!(
            app.db
                .db
                .find_account_by_id(org.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            app.db
                .db
                .find_robot("doomedorg+builder")
                .await
                .unwrap()
                .is_none()
        );
        let stats = collector.gc_stats();
        assert_eq!((stats.namespaces_purged, stats.repositories_purged), (1, 2));
        let after = blob_keys(&app).await;
        for gone in [&b"one only"[..], b"two only"] {
            assert!(!after.contains_key(&Digest::sha256_of(gone).to_string()));
        }
        assert_eq!(pull_verified(&app, "tester/mine", "v1").await, 2);
        assert_eq!(assert_storage_consistent(&app).await, after.len());
        // The name can be taken again.
        let (status, body) = api(
            &app,
            TESTER,
            Method::POST,
            "/organization/",
            Some(json!({"name": "doomedorg", "email": "again@example.com"})),
        )
        .await;
        assert!(status.is_success(), "{status} {body}");
    }
);
