//! The collector's and the purges' stores: what is garbage and when, chunking, children and
//! referrers, conditional deletes racing uploads, and purges that leave no row naming what they
//! removed.

use db::{
    CommitBlob, Db, Delegate, GcAttempt, GcStep, NamespacePurge, NewUpload, PurgeStep,
    RepositoryCounts, TagTarget, db_test, now_ms,
};

use crate::{HOUR_MS, digest, image, visible};

fn committed<T: std::fmt::Debug>(attempt: GcAttempt<T>) -> T {
    match attempt {
        GcAttempt::Committed(value) => value,
        GcAttempt::Conflicted(reason) => panic!("unexpected conflict: {reason}"),
    }
}

/// Commits an upload of `digest` into the repository under the object key `key`, protected
/// until `protect_until_ms`.
async fn commit(
    db: &Db,
    repository_id: i64,
    digest: &str,
    key: &str,
    protect_until_ms: i64,
) -> db::CommitOutcome {
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
    db.commit_blob(CommitBlob {
        upload_id: up.id,
        repository_id,
        location_id: location,
        digest: digest.to_string(),
        size: 10,
        storage_key: key.to_string(),
        protect_until_ms,
        replicate: false,
    })
    .await
    .unwrap()
}

/// A blob `digest(n)` whose push protection has already expired.
async fn unprotected_blob(db: &Db, repository_id: i64, n: u8) -> db::BlobRow {
    let key = format!("blobs/{n}-{}", uuid::Uuid::new_v4());
    commit(db, repository_id, &digest(n), &key, now_ms() - 1)
        .await
        .blob
}

/// Runs collector steps over the repository until it reports no more garbage.
async fn collect(db: &Db, repository_id: i64, now: i64) -> GcStep {
    let mut total = GcStep::default();
    let mut pending = Vec::new();
    loop {
        let step = committed(
            db.gc_repository_step(repository_id, now, &pending)
                .await
                .unwrap(),
        );
        total.tags_deleted += step.tags_deleted;
        total.manifests_deleted += step.manifests_deleted;
        total.uploaded_blobs_deleted += step.uploaded_blobs_deleted;
        total.blob_candidates.extend(step.blob_candidates);
        if !step.more {
            total.blob_candidates.sort();
            total.blob_candidates.dedup();
            return total;
        }
        pending = step.pending_manifests;
    }
}

async fn blob_digests(db: &Db) -> Vec<String> {
    db.list_blobs(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect()
}

db_test!(
    collection_goes_from_tags_to_manifests_to_blobs,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        db.set_tag_expiration_s(repo.namespace_id, 0).await.unwrap();
        let shared = unprotected_blob(&db, repo.id, 1).await;
        let own = unprotected_blob(&db, repo.id, 2).await;
        let location = db.ensure_location("local").await.unwrap();
        db.put_manifest(image(repo.id, 10, &[1, 2]), &visible("latest"))
            .await
            .unwrap();
        // Moving the tag ends the lifetime that kept manifest 10.
        db.put_manifest(image(repo.id, 11, &[1]), &visible("latest"))
            .await
            .unwrap();

        let step = collect(&db, repo.id, now_ms()).await;
        assert_eq!(
            (
                step.tags_deleted,
                step.manifests_deleted,
                step.uploaded_blobs_deleted
            ),
            (1, 1, 2)
        );
        assert_eq!(step.blob_candidates, [shared.id, own.id]);
        let freed = committed(db.gc_blobs(&step.blob_candidates).await.unwrap());
        assert_eq!(
            freed.len(),
            1,
            "the shared blob is still used by manifest 11"
        );
        assert_eq!(freed[0].digest, own.digest);
        assert_eq!(freed[0].storage_key, own.storage_key);
        assert_eq!(freed[0].location_ids, [location]);
        assert_eq!(blob_digests(&db).await, [digest(1)]);
        assert!(db.blob_placements(own.id).await.unwrap().is_empty());

        assert_eq!(
            db.repository_counts(repo.id).await.unwrap(),
            RepositoryCounts {
                tags: 1,
                manifests: 1,
                ..Default::default()
            }
        );
        let latest = db.manifest_by_tag(repo.id, "latest").await.unwrap();
        assert_eq!(latest.unwrap().digest, digest(11));
        assert_eq!(
            collect(&db, repo.id, now_ms()).await,
            GcStep::default(),
            "nothing is left to do"
        );
        assert!(committed(db.gc_blobs(&[shared.id]).await.unwrap()).is_empty());
    }
);

db_test!(
    the_time_machine_keeps_tags_and_their_manifests,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        db.set_tag_expiration_s(repo.namespace_id, 3600)
            .await
            .unwrap();
        let b = unprotected_blob(&db, repo.id, 1).await;
        db.put_manifest(image(repo.id, 10, &[1]), &visible("v1"))
            .await
            .unwrap();
        assert!(db.delete_tag(repo.id, "v1").await.unwrap());
        let now = now_ms();
        assert!(
            db.gc_repositories_with_expired_tags(3600, now, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let step = collect(&db, repo.id, now).await;
        assert_eq!((step.tags_deleted, step.manifests_deleted), (0, 0));
        assert_eq!(step.uploaded_blobs_deleted, 1, "expired protections go");
        assert!(committed(db.gc_blobs(&[b.id]).await.unwrap()).is_empty());

        // The tag can still be restored, and is.
        let restored = db
            .retarget_tag(repo.id, "v1", &digest(10), Some(now - 3_600_000))
            .await
            .unwrap();
        assert!(matches!(restored, db::RetargetOutcome::Retargeted { .. }));

        // An hour later the deleted lifetime has left the time machine: its row goes, the
        // manifest stays with the restored tag.
        let later = now + 3_600_001;
        assert_eq!(
            db.gc_repositories_with_expired_tags(3600, later, 10)
                .await
                .unwrap(),
            [repo.id]
        );
        assert!(
            db.gc_repositories_with_expired_tags(0, later, 10)
                .await
                .unwrap()
                .is_empty(),
            "candidates are looked up one window at a time"
        );
        let step = collect(&db, repo.id, later).await;
        assert_eq!((step.tags_deleted, step.manifests_deleted), (1, 0));
        assert_eq!(
            db.manifest_by_tag(repo.id, "v1")
                .await
                .unwrap()
                .unwrap()
                .digest,
            digest(10)
        );
        let windows = db.gc_tag_windows().await.unwrap();
        assert!(windows.contains(&3600), "{windows:?}");
    }
);

db_test!(
    index_children_and_referrer_subjects_are_kept,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        db.set_tag_expiration_s(repo.namespace_id, 0).await.unwrap();
        unprotected_blob(&db, repo.id, 1).await;
        // 10: pushed by digest, its temporary tag already expired; listed by index 20.
        let expired = vec![TagTarget::Hidden {
            name: "$temp-10".into(),
            expires_ms: Some(now_ms() - 1),
        }];
        db.put_manifest(image(repo.id, 10, &[1]), &expired)
            .await
            .unwrap();
        let mut index = image(repo.id, 20, &[]);
        index.media_type = "application/vnd.oci.image.index.v1+json".into();
        index.child_digests = vec![digest(10)];
        db.put_manifest(index, &visible("multi")).await.unwrap();
        // 11: its tag deleted, but referrer 30 names it as subject.
        db.put_manifest(image(repo.id, 11, &[1]), &visible("v1"))
            .await
            .unwrap();
        db.delete_tag(repo.id, "v1").await.unwrap();
        let mut referrer = image(repo.id, 30, &[1]);
        referrer.subject = Some(digest(11));
        let keep = vec![TagTarget::Hidden {
            name: "$referrer-30".into(),
            expires_ms: None,
        }];
        db.put_manifest(referrer, &keep).await.unwrap();

        let step = collect(&db, repo.id, now_ms()).await;
        assert_eq!((step.tags_deleted, step.manifests_deleted), (2, 0));
        assert_eq!(db.repository_counts(repo.id).await.unwrap().manifests, 4);

        // Without its index, the child goes with it.
        db.delete_tag(repo.id, "multi").await.unwrap();
        let step = collect(&db, repo.id, now_ms()).await;
        assert_eq!((step.tags_deleted, step.manifests_deleted), (1, 2));
        // Without its referrer, the subject goes too.
        assert!(db.delete_manifest(repo.id, &digest(30)).await.unwrap());
        let step = collect(&db, repo.id, now_ms()).await;
        assert_eq!((step.tags_deleted, step.manifests_deleted), (1, 2));
        assert_eq!(
            db.repository_counts(repo.id).await.unwrap(),
            RepositoryCounts::default()
        );
        let blob = db.list_blobs(0, 10).await.unwrap();
        let freed = committed(db.gc_blobs(&[blob[0].id]).await.unwrap());
        assert_eq!(freed.len(), 1);
        assert!(db.list_blobs(0, 10).await.unwrap().is_empty());
    }
);

db_test!(
    large_repositories_are_collected_in_chunks,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        db.set_tag_expiration_s(repo.namespace_id, 0).await.unwrap();
        unprotected_blob(&db, repo.id, 1).await;
        for n in 0..130u8 {
            db.put_manifest(image(repo.id, n, &[1]), &visible(&format!("t{n}")))
                .await
                .unwrap();
            db.delete_tag(repo.id, &format!("t{n}")).await.unwrap();
        }
        let first = committed(db.gc_repository_step(repo.id, now_ms(), &[]).await.unwrap());
        assert_eq!(first.tags_deleted, db::GC_CHUNK as u64);
        assert!(first.more);
        assert!(
            db.gc_repositories_with_expired_tags(0, now_ms(), 10)
                .await
                .unwrap()
                .contains(&repo.id)
        );
        let rest = collect(&db, repo.id, now_ms()).await;
        assert_eq!(rest.tags_deleted, 30);
        assert_eq!(first.manifests_deleted + rest.manifests_deleted, 130);
        assert!(
            db.gc_repositories_with_expired_tags(0, now_ms(), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

db_test!(
    uploads_racing_the_collector_never_lose_their_blob,
    |db: Db| async move {
        // Each round: a blob nobody references any more is collected while another
        // repository commits an upload of the same digest. The upload must always succeed and
        // end with a blob row whose object is not the one the collector freed.
        let a = db.ensure_repository("acme", "a", "public").await.unwrap();
        let b = db.ensure_repository("acme", "b", "public").await.unwrap();
        let mut collector_won = 0;
        for round in 0..40u32 {
            let digest = format!("sha256:{:064x}", 0xabc0_0000u64 + u64::from(round));
            let old_key = format!("blobs/old-{round}");
            let new_key = format!("blobs/new-{round}");
            let old = commit(&db, a.id, &digest, &old_key, now_ms() - 1)
                .await
                .blob;
            let step = committed(db.gc_repository_step(a.id, now_ms(), &[]).await.unwrap());
            assert_eq!(step.blob_candidates, [old.id]);
            let ids = [old.id];
            // Staggered starts, so that each side sometimes gets there first.
            let delay = std::time::Duration::from_micros(u64::from(round % 5) * 400);
            let (collected, pushed) = tokio::join!(
                async {
                    tokio::time::sleep(delay).await;
                    db.gc_blobs(&ids).await
                },
                commit(&db, b.id, &digest, &new_key, now_ms() + HOUR_MS)
            );
            let freed = match collected.unwrap() {
                GcAttempt::Committed(freed) => freed,
                GcAttempt::Conflicted(_) => Vec::new(),
            };
            let current = db.find_repository_blob(b.id, &digest).await.unwrap();
            let current = current.expect("the pushed blob is usable");
            assert!(!db.blob_placements(current.id).await.unwrap().is_empty());
            if freed.is_empty() {
                assert_eq!(current.storage_key, old_key, "round {round}");
                assert_eq!(pushed.redundant_object.as_deref(), Some(new_key.as_str()));
            } else {
                collector_won += 1;
                assert_eq!(freed[0].storage_key, old_key, "round {round}");
                assert_eq!(current.storage_key, new_key, "round {round}");
                assert_eq!(pushed.redundant_object, None);
            }
        }
        eprintln!("the collector won {collector_won} of 40 races");
    }
);

db_test!(
    repository_purges_remove_everything_then_the_row,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        let keep = db
            .ensure_repository("acme", "keep", "public")
            .await
            .unwrap();
        let shared = commit(&db, repo.id, &digest(1), "blobs/shared", now_ms() + HOUR_MS)
            .await
            .blob;
        commit(&db, repo.id, &digest(2), "blobs/own", now_ms() + HOUR_MS).await;
        commit(&db, keep.id, &digest(1), "blobs/again", now_ms() + HOUR_MS).await;
        for n in 0..120u8 {
            db.put_manifest(image(repo.id, n, &[1, 2]), &visible(&format!("t{n}")))
                .await
                .unwrap();
        }
        let mut index = image(repo.id, 200, &[]);
        index.media_type = "application/vnd.oci.image.index.v1+json".into();
        index.child_digests = vec![digest(0), digest(1)];
        db.put_manifest(index, &visible("multi")).await.unwrap();
        let location = db.ensure_location("local").await.unwrap();
        let session = db
            .create_upload(NewUpload {
                uuid: "in-flight".into(),
                repository_id: repo.id,
                location_id: location,
                hash_state: vec![1],
                storage_state: "null".into(),
            })
            .await
            .unwrap();
        let owner = db.find_account("acme").await.unwrap().unwrap();
        db.set_repository_permission(repo.id, Delegate::Account(owner.id), "admin")
            .await
            .unwrap();

        assert_eq!(
            committed(db.purge_repository_step(repo.id, &[], None).await.unwrap()),
            PurgeStep::NotMarked,
            "only marked repositories are purged"
        );
        assert!(db.mark_repository_for_deletion(repo.id).await.unwrap());
        let item = db
            .queue_claim("repositorygc", 60_000)
            .await
            .unwrap()
            .unwrap();

        let (mut pending, mut candidates, mut uploads, mut steps) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        let removed = loop {
            steps += 1;
            match committed(
                db.purge_repository_step(repo.id, &pending, Some(item.id))
                    .await
                    .unwrap(),
            ) {
                PurgeStep::Removed { gc, uploads: u } => {
                    candidates.extend(gc.blob_candidates);
                    uploads.extend(u);
                    pending = gc.pending_manifests;
                }
                PurgeStep::Finished { removed } => break removed,
                PurgeStep::NotMarked => panic!("marked above"),
            }
        };
        assert!(removed);
        assert!(steps > 2, "120 tags take more than one chunk");
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].uuid, session.uuid);
        assert_eq!(
            db.repository_counts(repo.id).await.unwrap(),
            RepositoryCounts::default()
        );
        let mut left = db
            .list_namespace_repositories(repo.namespace_id)
            .await
            .unwrap();
        left.retain(|r| r.repository.id == repo.id);
        assert!(left.is_empty());
        assert!(
            db.queue_complete(&item).await.unwrap(),
            "the caller's item is left"
        );
        candidates.sort();
        candidates.dedup();
        let freed = committed(db.gc_blobs(&candidates).await.unwrap());
        assert_eq!(
            freed
                .iter()
                .map(|f| f.storage_key.as_str())
                .collect::<Vec<_>>(),
            ["blobs/own"],
            "the shared blob is protected in the other repository"
        );
        assert!(
            db.find_repository_blob(keep.id, &shared.digest)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            committed(db.purge_repository_step(repo.id, &[], None).await.unwrap()),
            PurgeStep::Finished { removed: false },
            "purging again is a no-op"
        );
    }
);

db_test!(
    namespace_purges_remove_every_row_naming_the_account,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let acme = org(&db, "acme", alice.id).await;
        let other = org(&db, "other", alice.id).await;
        let bot = match db
            .create_robot(db::NewRobot {
                owner_id: acme.id,
                name: "acme+bot".into(),
                token_ciphertext: "x".into(),
                description: String::new(),
                unstructured_json: "{}".into(),
            })
            .await
            .unwrap()
        {
            db::CreateRobotOutcome::Created(row) => row,
            other => panic!("{other:?}"),
        };
        let (devs, _) = db
            .upsert_team(acme.id, "devs", "member", None)
            .await
            .unwrap();
        db.add_team_member(devs.id, bot.account_id).await.unwrap();
        db.add_team_member(devs.id, alice.id).await.unwrap();
        let (others_team, _) = db
            .upsert_team(other.id, "ops", "member", None)
            .await
            .unwrap();
        db.add_team_member(others_team.id, bot.account_id)
            .await
            .unwrap();
        let app = db
            .ensure_repository("acme", "app", "private")
            .await
            .unwrap();
        let shared = db
            .ensure_repository("other", "shared", "private")
            .await
            .unwrap();
        db.set_repository_permission(app.id, Delegate::Team(devs.id), "write")
            .await
            .unwrap();
        db.set_repository_permission(shared.id, Delegate::Account(bot.account_id), "read")
            .await
            .unwrap();
        db.set_repository_permission(shared.id, Delegate::Account(alice.id), "admin")
            .await
            .unwrap();
        db.create_prototype(acme.id, Some(alice.id), Delegate::Team(devs.id), "read")
            .await
            .unwrap();
        db.create_prototype(
            other.id,
            Some(bot.account_id),
            Delegate::Account(bot.account_id),
            "write",
        )
        .await
        .unwrap();
        let kept_prototype = db
            .create_prototype(other.id, None, Delegate::Account(alice.id), "read")
            .await
            .unwrap();
        let application = db
            .create_application(db::NewApplication {
                organization_id: acme.id,
                client_id: "client".into(),
                client_secret_ciphertext: "secret".into(),
                name: "app".into(),
                description: String::new(),
                redirect_uri: String::new(),
                application_uri: String::new(),
                avatar_email: None,
            })
            .await
            .unwrap();
        db.create_access_token(db::NewAccessToken {
            application_id: application.id,
            account_id: alice.id,
            scope: "repo:read".into(),
            token_name: "t".repeat(20),
            token_code_hash: "hash".into(),
            expires_ms: None,
        })
        .await
        .unwrap();
        db.add_user_prompts(acme.id, &["enter_name"]).await.unwrap();
        unprotected_blob(&db, app.id, 1).await;
        db.put_manifest(image(app.id, 10, &[1]), &visible("latest"))
            .await
            .unwrap();

        assert_eq!(
            db.mark_namespace_repositories(acme.id).await.unwrap(),
            NamespacePurge::NotMarked,
            "only marked namespaces are purged"
        );
        assert!(db.mark_namespace_for_deletion(acme.id).await.unwrap());
        let NamespacePurge::Repositories(repositories) =
            db.mark_namespace_repositories(acme.id).await.unwrap()
        else {
            panic!("marked above");
        };
        assert_eq!(repositories, [app.id]);
        assert!(
            !committed(db.purge_namespace_account(acme.id, None).await.unwrap()),
            "not while it holds a repository"
        );
        let mut pending = Vec::new();
        loop {
            match committed(
                db.purge_repository_step(app.id, &pending, None)
                    .await
                    .unwrap(),
            ) {
                PurgeStep::Removed { gc, .. } => pending = gc.pending_manifests,
                PurgeStep::Finished { removed } => {
                    assert!(removed);
                    break;
                }
                PurgeStep::NotMarked => panic!("the namespace purge marked it"),
            }
        }
        assert!(committed(
            db.purge_namespace_account(acme.id, None).await.unwrap()
        ));

        for gone in [acme.id, bot.account_id] {
            assert!(db.find_account_by_id(gone).await.unwrap().is_none());
        }
        assert_eq!(
            db.mark_namespace_repositories(acme.id).await.unwrap(),
            NamespacePurge::Absent
        );
        assert!(db.list_teams(acme.id).await.unwrap().is_empty());
        assert!(db.team_members(others_team.id).await.unwrap().is_empty());
        assert!(db.list_robots(acme.id).await.unwrap().is_empty());
        assert!(db.user_prompts(acme.id).await.unwrap().is_empty());
        assert!(
            db.find_access_token(&"t".repeat(20))
                .await
                .unwrap()
                .is_none()
        );
        let prototypes = db.list_prototypes(other.id).await.unwrap();
        assert_eq!(
            prototypes
                .iter()
                .map(|p| p.uuid.clone())
                .collect::<Vec<_>>(),
            [kept_prototype.uuid],
            "prototypes naming the robot went, others stayed"
        );
        // What belongs to others stays: alice, her grant, the other organization's team.
        assert!(db.find_account_by_id(alice.id).await.unwrap().is_some());
        let grants = db.repository_permissions(shared.id).await.unwrap();
        assert_eq!(
            grants.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["alice"]
        );
        assert!(db.find_account_by_id(other.id).await.unwrap().is_some());
        assert_eq!(
            db.mark_namespace_repositories(alice.id).await.unwrap(),
            NamespacePurge::NotMarked,
            "a user that is not marked is never purged"
        );
    }
);

async fn user(db: &Db, name: &str) -> db::AccountRow {
    let new = db::NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01".into(),
        verified: true,
        superuser: false,
    };
    match db.create_user(new).await.unwrap() {
        db::CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    }
}

async fn org(db: &Db, name: &str, creator: i64) -> db::AccountRow {
    match db.create_organization(name, None, creator).await.unwrap() {
        db::CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    }
}

db_test!(leftovers_are_found_by_the_scans, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    db.set_tag_expiration_s(repo.namespace_id, 0).await.unwrap();
    let b = unprotected_blob(&db, repo.id, 1).await;
    db.put_manifest(image(repo.id, 10, &[1]), &visible("v1"))
        .await
        .unwrap();
    db.put_manifest(image(repo.id, 11, &[1]), &visible("v2"))
        .await
        .unwrap();
    assert_eq!(
        db.gc_scan_unreferenced_manifests(0, 100).await.unwrap().0,
        []
    );
    // A pass that deleted the tags' rows and stopped (as if it crashed): tags removed,
    // manifests and blob left.
    db.delete_tag(repo.id, "v1").await.unwrap();
    db.delete_tag(repo.id, "v2").await.unwrap();
    committed(db.gc_repository_step(repo.id, now_ms(), &[]).await.unwrap());
    assert_eq!(
        db.gc_scan_unreferenced_blobs(0, 100).await.unwrap(),
        (vec![b.id], Some(b.id))
    );
    assert_eq!(
        db.gc_scan_unreferenced_blobs(b.id, 100).await.unwrap(),
        (vec![], None),
        "the scan ends"
    );
    committed(db.gc_blobs(&[b.id]).await.unwrap());
    assert!(db.list_blobs(0, 10).await.unwrap().is_empty());
});

/// Every foreign key to `account` or `repository` in the migrations must be one the purges
/// clear; a new table that names either needs `db/src/gc/purge.rs` (and this list) updated.
#[test]
fn purges_know_every_foreign_key_to_accounts_and_repositories() {
    let known = [
        ("repository", "namespace_id", "account"),
        ("uploaded_blob", "repository_id", "repository"),
        ("blob_upload", "repository_id", "repository"),
        ("manifest", "repository_id", "repository"),
        ("manifest_blob", "repository_id", "repository"),
        ("manifest_child", "repository_id", "repository"),
        ("tag", "repository_id", "repository"),
        ("team", "organization_id", "account"),
        ("team_member", "account_id", "account"),
        ("repository_permission", "repository_id", "repository"),
        ("repository_permission", "account_id", "account"),
        ("permission_prototype", "organization_id", "account"),
        ("permission_prototype", "activating_account_id", "account"),
        ("permission_prototype", "delegate_account_id", "account"),
        ("robot", "account_id", "account"),
        ("robot", "owner_id", "account"),
        ("oauth_application", "organization_id", "account"),
        ("oauth_access_token", "account_id", "account"),
        ("app_specific_token", "account_id", "account"),
        ("user_prompt", "account_id", "account"),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/migrations");
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        let mut table = String::new();
        for line in sql.lines() {
            let line = line.trim();
            if let Some(rest) = line
                .strip_prefix("CREATE TABLE ")
                .or_else(|| line.strip_prefix("ALTER TABLE "))
            {
                table = rest.split_whitespace().next().unwrap().to_string();
            }
            let Some((before, after)) = line.split_once(" REFERENCES ") else {
                continue;
            };
            let target = after.split_whitespace().next().unwrap();
            if target != "account" && target != "repository" {
                continue;
            }
            let words: Vec<&str> = before.split_whitespace().collect();
            let column = if words.first() == Some(&"ALTER") {
                words[5]
            } else {
                words[0]
            };
            found.push((table.clone(), column.to_string(), target.to_string()));
        }
    }
    for (table, column, target) in &found {
        assert!(
            known
                .iter()
                .any(|k| (k.0, k.1, k.2) == (table.as_str(), column.as_str(), target.as_str())),
            "{table}.{column} references {target}: make the purges in db/src/gc/purge.rs clear \
             it, then add it to this list"
        );
    }
    assert_eq!(found.len(), known.len(), "{found:?}");
}
