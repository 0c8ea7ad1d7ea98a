//! Store tests. Every test runs on SQLite and on PostgreSQL (`db_test!`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod access;
mod connect;
mod gc;
mod queue;
mod tag_history;

use db::{
    CommitBlob, Db, NewManifest, NewUpload, PutManifestOutcome, TagTarget, db_test, now_ms,
    testing::{Engine, TestDb},
};

const HOUR_MS: i64 = 3_600_000;

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// Uploads and commits a blob with digest `digest(n)` into the repository.
async fn blob(db: &Db, repository_id: i64, n: u8) -> db::BlobRow {
    let location = db.ensure_location("local").await.unwrap();
    let up = db
        .create_upload(NewUpload {
            uuid: uuid::Uuid::new_v4().to_string(),
            repository_id,
            location_id: location,
            hash_state: vec![1],
            storage_state: "null".into(),
        })
        .await
        .unwrap();
    let out = db
        .commit_blob(CommitBlob {
            upload_id: up.id,
            repository_id,
            location_id: location,
            digest: digest(n),
            size: 10 + n as i64,
            storage_key: format!("blobs/{}", up.uuid),
            protect_until_ms: now_ms() + HOUR_MS,
            replicate: false,
        })
        .await
        .unwrap();
    out.blob
}

fn image(repository_id: i64, n: u8, blobs: &[u8]) -> NewManifest {
    NewManifest {
        repository_id,
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: format!("manifest {n}").into_bytes(),
        config_media_type: Some("application/vnd.oci.image.config.v1+json".into()),
        artifact_type: None,
        subject: None,
        layers_size: 0,
        blob_digests: blobs.iter().map(|b| digest(*b)).collect(),
        child_digests: vec![],
    }
}

fn visible(name: &str) -> Vec<TagTarget> {
    vec![TagTarget::Visible(name.into())]
}

#[tokio::test]
async fn migrations_are_recorded_and_idempotent() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let t = TestDb::empty(engine).await;
        assert_eq!(t.db.migrate().await.unwrap(), vec![1, 2, 3, 4]);
        assert!(t.db.migrate().await.unwrap().is_empty());
        // Two processes starting at once: both succeed, the schema is applied once.
        let other = Db::connect(&t.uri).await.unwrap();
        let (a, b) = tokio::join!(t.db.migrate(), other.migrate());
        assert!(a.unwrap().is_empty() && b.unwrap().is_empty());
    }
}

#[tokio::test]
async fn concurrent_first_migration_on_postgres() {
    let t = TestDb::empty(Engine::Postgres).await;
    let other = Db::connect(&t.uri).await.unwrap();
    let (a, b) = tokio::join!(t.db.migrate(), other.migrate());
    let mut applied = a.unwrap();
    applied.extend(b.unwrap());
    applied.sort();
    assert_eq!(
        applied,
        vec![1, 2, 3, 4],
        "each migration is applied by exactly one process"
    );
}

db_test!(repositories_are_created_once, |db: Db| async move {
    assert!(db.find_repository("acme", "app").await.unwrap().is_none());
    let (a, b) = tokio::join!(
        db.ensure_repository("acme", "app", "public"),
        db.ensure_repository("acme", "app", "public")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.namespace, "acme");
    assert_eq!(a.state, 0);
    let found = db.find_repository("acme", "app").await.unwrap().unwrap();
    assert_eq!(found.id, a.id);
    let nested = db
        .ensure_repository("acme", "team/app", "public")
        .await
        .unwrap();
    assert_eq!(nested.namespace_id, a.namespace_id);
    assert_ne!(nested.id, a.id);
});

db_test!(catalog_is_paginated_in_lexical_order, |db: Db| async move {
    for (ns, name) in [
        ("zeta", "a"),
        ("acme", "b"),
        ("acme", "a/x"),
        ("acme", "a"),
        ("beta", "c"),
    ] {
        db.ensure_repository(ns, name, "public").await.unwrap();
    }
    let all = db
        .list_repositories(db::Viewer::Everything, None, 100)
        .await
        .unwrap();
    assert_eq!(all, ["acme/a", "acme/a/x", "acme/b", "beta/c", "zeta/a"]);
    let page = db
        .list_repositories(db::Viewer::Everything, Some(("acme", "a/x")), 2)
        .await
        .unwrap();
    assert_eq!(page, ["acme/b", "beta/c"]);
    let page = db
        .list_repositories(db::Viewer::Everything, Some(("beta", "c")), 2)
        .await
        .unwrap();
    assert_eq!(page, ["zeta/a"]);
});

db_test!(
    upload_sessions_advance_with_compare_and_swap,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        let loc = db.ensure_location("local").await.unwrap();
        assert_eq!(db.ensure_location("local").await.unwrap(), loc);
        let up = db
            .create_upload(NewUpload {
                uuid: "u-1".into(),
                repository_id: repo.id,
                location_id: loc,
                hash_state: vec![1, 2, 3],
                storage_state: "null".into(),
            })
            .await
            .unwrap();
        assert_eq!(up.byte_count, 0);
        assert!(
            db.advance_upload(up.id, 0, 100, vec![4], "null".into())
                .await
                .unwrap()
        );
        // A second writer that read the old offset loses.
        assert!(
            !db.advance_upload(up.id, 0, 50, vec![5], "null".into())
                .await
                .unwrap()
        );
        let now = db.find_upload(repo.id, "u-1").await.unwrap().unwrap();
        assert_eq!(
            (now.byte_count, now.hash_state, now.chunk_count),
            (100, vec![4], 1)
        );
        // Sessions are scoped to their repository.
        let other = db
            .ensure_repository("acme", "other", "public")
            .await
            .unwrap();
        assert!(db.find_upload(other.id, "u-1").await.unwrap().is_none());
        assert!(db.delete_upload(up.id).await.unwrap());
        assert!(!db.delete_upload(up.id).await.unwrap());
    }
);

db_test!(
    committing_a_known_digest_reuses_the_blob,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        let other = db
            .ensure_repository("acme", "other", "public")
            .await
            .unwrap();
        let first = blob(&db, repo.id, 1).await;
        assert_eq!(
            db.find_repository_blob(repo.id, &digest(1)).await.unwrap(),
            Some(first.clone())
        );
        // The blob is not visible in a repository it was never pushed to.
        assert!(
            db.find_repository_blob(other.id, &digest(1))
                .await
                .unwrap()
                .is_none()
        );

        let loc = db.ensure_location("local").await.unwrap();
        let up = db
            .create_upload(NewUpload {
                uuid: "again".into(),
                repository_id: other.id,
                location_id: loc,
                hash_state: vec![1],
                storage_state: "null".into(),
            })
            .await
            .unwrap();
        let out = db
            .commit_blob(CommitBlob {
                upload_id: up.id,
                repository_id: other.id,
                location_id: loc,
                digest: digest(1),
                size: 11,
                storage_key: "blobs/again".into(),
                protect_until_ms: now_ms() + HOUR_MS,
                replicate: false,
            })
            .await
            .unwrap();
        assert_eq!(out.blob, first);
        assert_eq!(out.redundant_object.as_deref(), Some("blobs/again"));
        assert!(db.find_upload(other.id, "again").await.unwrap().is_none());
        assert!(
            db.find_repository_blob(other.id, &digest(1))
                .await
                .unwrap()
                .is_some()
        );
    }
);

db_test!(mounting_needs_the_blob_in_the_source, |db: Db| async move {
    let src = db.ensure_repository("acme", "src", "public").await.unwrap();
    let dst = db.ensure_repository("acme", "dst", "public").await.unwrap();
    blob(&db, src.id, 7).await;
    assert!(
        db.mount_blob(dst.id, src.id, &digest(7), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    let mounted = db
        .mount_blob(src.id, dst.id, &digest(7), now_ms() + HOUR_MS)
        .await
        .unwrap();
    assert_eq!(mounted.map(|b| b.digest), Some(digest(7)));
    assert!(
        db.find_repository_blob(dst.id, &digest(7))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.mount_blob(src.id, dst.id, &digest(8), now_ms())
            .await
            .unwrap()
            .is_none()
    );
});

db_test!(
    manifests_need_their_blobs_and_children,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        let other = db
            .ensure_repository("acme", "other", "public")
            .await
            .unwrap();
        blob(&db, repo.id, 1).await;
        blob(&db, other.id, 2).await;
        let out = db
            .put_manifest(image(repo.id, 10, &[1, 2]), &visible("v1"))
            .await
            .unwrap();
        assert_eq!(
            out,
            PutManifestOutcome::BlobUnknown(digest(2)),
            "blob 2 lives in another repo"
        );
        assert!(
            db.manifest_by_tag(repo.id, "v1").await.unwrap().is_none(),
            "nothing was stored"
        );

        let mut index = image(repo.id, 20, &[]);
        index.media_type = "application/vnd.oci.image.index.v1+json".into();
        index.child_digests = vec![digest(10)];
        let out = db
            .put_manifest(index.clone(), &visible("multi"))
            .await
            .unwrap();
        assert_eq!(out, PutManifestOutcome::ChildUnknown(digest(10)));

        let hidden = vec![TagTarget::Hidden {
            name: "$temp-1".into(),
            expires_ms: Some(now_ms() + HOUR_MS),
        }];
        assert!(matches!(
            db.put_manifest(image(repo.id, 10, &[1]), &hidden)
                .await
                .unwrap(),
            PutManifestOutcome::Stored { .. }
        ));
        assert!(matches!(
            db.put_manifest(index, &visible("multi")).await.unwrap(),
            PutManifestOutcome::Stored { .. }
        ));
        let got = db.manifest_by_tag(repo.id, "multi").await.unwrap().unwrap();
        assert_eq!(got.digest, digest(20));
        // Hidden tags keep a manifest alive but are not listed.
        assert_eq!(db.list_tags(repo.id, None, 10).await.unwrap(), ["multi"]);
        assert!(
            db.manifest_by_tag(repo.id, "$temp-1")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            db.manifest_by_digest(repo.id, &digest(10))
                .await
                .unwrap()
                .is_some()
        );
    }
);

db_test!(tags_move_and_keep_history, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    for n in [10, 11, 10, 11, 11] {
        db.put_manifest(image(repo.id, n, &[1]), &visible("latest"))
            .await
            .unwrap();
    }
    let current = db
        .manifest_by_tag(repo.id, "latest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.digest, digest(11));
    assert_eq!(current.bytes, b"manifest 11");
    // The old manifest lost its only tag, so it is no longer served by digest either.
    assert!(
        db.manifest_by_digest(repo.id, &digest(10))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.manifest_by_digest(repo.id, &digest(11))
            .await
            .unwrap()
            .is_some()
    );

    assert!(db.delete_tag(repo.id, "latest").await.unwrap());
    assert!(!db.delete_tag(repo.id, "latest").await.unwrap());
    assert!(
        db.manifest_by_tag(repo.id, "latest")
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.list_tags(repo.id, None, 10).await.unwrap().is_empty());
});

db_test!(deleting_a_manifest_ends_all_its_tags, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    db.put_manifest(image(repo.id, 10, &[1]), &visible("a"))
        .await
        .unwrap();
    db.put_manifest(image(repo.id, 10, &[1]), &visible("b"))
        .await
        .unwrap();
    db.put_manifest(image(repo.id, 11, &[1]), &visible("c"))
        .await
        .unwrap();
    assert!(db.delete_manifest(repo.id, &digest(10)).await.unwrap());
    assert!(!db.delete_manifest(repo.id, &digest(10)).await.unwrap());
    assert_eq!(db.list_tags(repo.id, None, 10).await.unwrap(), ["c"]);
    assert!(
        db.manifest_by_digest(repo.id, &digest(10))
            .await
            .unwrap()
            .is_none()
    );
    // Pushing it again brings it back.
    db.put_manifest(image(repo.id, 10, &[1]), &visible("a"))
        .await
        .unwrap();
    assert!(
        db.manifest_by_digest(repo.id, &digest(10))
            .await
            .unwrap()
            .is_some()
    );
});

db_test!(tag_listing_is_paginated, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    for name in ["b", "a", "d", "c", "e"] {
        db.put_manifest(image(repo.id, 10, &[1]), &visible(name))
            .await
            .unwrap();
    }
    assert_eq!(db.list_tags(repo.id, None, 2).await.unwrap(), ["a", "b"]);
    assert_eq!(
        db.list_tags(repo.id, Some("b"), 2).await.unwrap(),
        ["c", "d"]
    );
    assert_eq!(db.list_tags(repo.id, Some("d"), 2).await.unwrap(), ["e"]);
    assert!(
        db.list_tags(repo.id, Some("e"), 2)
            .await
            .unwrap()
            .is_empty()
    );
});

db_test!(referrers_follow_subject_and_liveness, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    db.put_manifest(image(repo.id, 10, &[1]), &visible("v1"))
        .await
        .unwrap();
    for (n, kind) in [(30u8, "application/x-sbom"), (31, "application/x-sig")] {
        let mut m = image(repo.id, n, &[1]);
        m.subject = Some(digest(10));
        m.artifact_type = Some(kind.into());
        let keep = vec![TagTarget::Hidden {
            name: format!("$referrer-{n}"),
            expires_ms: None,
        }];
        db.put_manifest(m, &keep).await.unwrap();
    }
    let refs = db.referrers(repo.id, &digest(10)).await.unwrap();
    assert_eq!(
        refs.iter().map(|r| r.digest.clone()).collect::<Vec<_>>(),
        [digest(30), digest(31)]
    );
    assert!(db.delete_manifest(repo.id, &digest(30)).await.unwrap());
    let refs = db.referrers(repo.id, &digest(10)).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].artifact_type.as_deref(), Some("application/x-sig"));
});

db_test!(
    concurrent_pushes_of_one_tag_leave_one_alive_row,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        blob(&db, repo.id, 1).await;
        let mut tasks = Vec::new();
        for n in 0..8u8 {
            let db = db.clone();
            let m = image(repo.id, 40 + n, &[1]);
            tasks.push(tokio::spawn(async move {
                db.put_manifest(m, &visible("race")).await
            }));
        }
        for t in tasks {
            assert!(matches!(
                t.await.unwrap().unwrap(),
                PutManifestOutcome::Stored { .. }
            ));
        }
        assert_eq!(db.list_tags(repo.id, None, 10).await.unwrap(), ["race"]);
        assert!(db.manifest_by_tag(repo.id, "race").await.unwrap().is_some());
    }
);

db_test!(blobs_are_listed_in_id_order, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    let a = blob(&db, repo.id, 1).await;
    let b = blob(&db, repo.id, 2).await;
    let c = blob(&db, repo.id, 3).await;
    assert_eq!(db.list_blobs(0, 2).await.unwrap(), [a.clone(), b.clone()]);
    assert_eq!(db.list_blobs(b.id, 2).await.unwrap(), [c]);
});

db_test!(users_are_created_once_per_name, |db: Db| async move {
    let new = |name: &str| db::NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01".into(),
        verified: true,
        superuser: false,
    };
    let created = match db.create_user(new("alice")).await.unwrap() {
        db::CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    };
    assert!(!created.organization && !created.robot && created.enabled);
    assert_eq!(
        db.create_user(new("alice")).await.unwrap(),
        db::CreateUserOutcome::NameTaken
    );
    // Organizations share the namespace of names.
    db.ensure_repository("acme", "app", "public").await.unwrap();
    assert_eq!(
        db.create_user(new("acme")).await.unwrap(),
        db::CreateUserOutcome::NameTaken
    );
    let found = db.find_account("alice").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(found.email.as_deref(), Some("alice@example.com"));
    assert!(db.find_account("acme").await.unwrap().unwrap().organization);
    assert!(db.find_account("nobody").await.unwrap().is_none());
});
