//! The stores behind Quay's repository API: tag history, retargeting and restoring tags, and
//! repository listings by viewer.

use std::time::Duration;

use db::{
    AccountRow, CreateRepositoryOutcome, CreateUserOutcome, Db, NewRepository, RepositoryFilter,
    RetargetOutcome, TagHistoryQuery, TagTarget, db_test, now_ms,
};

use crate::{HOUR_MS, blob, digest, image, visible};

/// Lets the clock move on, so lifetimes that follow each other start at different times.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn query(limit: u64) -> TagHistoryQuery<'static> {
    TagHistoryQuery {
        limit,
        ..Default::default()
    }
}

/// `name@n` for each row (`n` = the manifest's digest number), `!` when ended.
fn shown(rows: &[db::TagHistoryRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let n = (1..=255u8)
                .find(|n| digest(*n) == r.manifest_digest)
                .unwrap_or(0);
            let ended = if r.lifetime_end_ms.is_some() { "!" } else { "" };
            format!("{}@{n}{ended}", r.name)
        })
        .collect()
}

async fn user(db: &Db, name: &str) -> AccountRow {
    let new = db::NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01".into(),
        verified: true,
        superuser: false,
    };
    match db.create_user(new).await.unwrap() {
        CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    }
}

async fn repo(db: &Db, ns: &AccountRow, name: &str, visibility: &str) -> db::RepositoryRow {
    let new = NewRepository {
        namespace_id: ns.id,
        name: name.into(),
        visibility: visibility.into(),
        description: Some(format!("about {name}")),
        creator: Some(ns.id),
    };
    match db.create_repository(new).await.unwrap() {
        CreateRepositoryOutcome::Created(row) => row,
        other => panic!("{other:?}"),
    }
}

db_test!(tag_history_lists_every_lifetime, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    for (n, tag) in [(10, "latest"), (11, "v1"), (11, "latest")] {
        db.put_manifest(image(repo.id, n, &[1]), &visible(tag))
            .await
            .unwrap();
        tick().await;
    }
    let hidden = vec![TagTarget::Hidden {
        name: "$temp-x".into(),
        expires_ms: Some(now_ms() + HOUR_MS),
    }];
    db.put_manifest(image(repo.id, 12, &[1]), &hidden)
        .await
        .unwrap();
    tick().await;
    assert!(db.delete_tag(repo.id, "v1").await.unwrap());

    let all = db.tag_history(repo.id, query(50)).await.unwrap();
    assert_eq!(shown(&all.rows), ["latest@11", "v1@11!", "latest@10!"]);
    assert!(!all.has_more);
    let first = &all.rows[0];
    assert_eq!(
        first.manifest_media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(!first.reversion);
    // The moved lifetime ended when the new one started.
    assert_eq!(all.rows[2].lifetime_end_ms, Some(first.lifetime_start_ms));

    let active = TagHistoryQuery {
        only_active: true,
        ..query(50)
    };
    let rows = db.tag_history(repo.id, active).await.unwrap().rows;
    assert_eq!(shown(&rows), ["latest@11"]);
    let latest = TagHistoryQuery {
        specific_tag: Some("latest"),
        ..query(50)
    };
    let rows = db.tag_history(repo.id, latest).await.unwrap().rows;
    assert_eq!(shown(&rows), ["latest@11", "latest@10!"]);

    // Pages of two: `has_more` looks one row ahead.
    let page1 = db.tag_history(repo.id, query(2)).await.unwrap();
    assert_eq!((page1.rows.len(), page1.has_more), (2, true));
    let page2 = TagHistoryQuery {
        offset: 2,
        ..query(2)
    };
    let page2 = db.tag_history(repo.id, page2).await.unwrap();
    assert_eq!(shown(&page2.rows), ["latest@10!"]);
    assert!(!page2.has_more);
    assert!(
        db.tag_history(repo.id, query(0))
            .await
            .unwrap()
            .rows
            .is_empty()
    );
});

db_test!(
    tags_are_retargeted_to_alive_manifests,
    |db: Db| async move {
        let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
        let other = db
            .ensure_repository("acme", "other", "public")
            .await
            .unwrap();
        blob(&db, repo.id, 1).await;
        blob(&db, other.id, 1).await;
        db.put_manifest(image(repo.id, 10, &[1]), &visible("v1"))
            .await
            .unwrap();
        tick().await;
        // A manifest pushed by digest is kept alive by a hidden tag and can be tagged.
        let hidden = vec![TagTarget::Hidden {
            name: "$temp-x".into(),
            expires_ms: Some(now_ms() + HOUR_MS),
        }];
        db.put_manifest(image(repo.id, 11, &[1]), &hidden)
            .await
            .unwrap();
        db.put_manifest(image(other.id, 12, &[1]), &visible("x"))
            .await
            .unwrap();

        let created = db
            .retarget_tag(repo.id, "stable", &digest(11), None)
            .await
            .unwrap();
        assert_eq!(created, RetargetOutcome::Retargeted { existed: false });
        tick().await;
        let moved = db
            .retarget_tag(repo.id, "v1", &digest(11), None)
            .await
            .unwrap();
        assert_eq!(moved, RetargetOutcome::Retargeted { existed: true });
        assert_eq!(
            db.manifest_by_tag(repo.id, "v1")
                .await
                .unwrap()
                .unwrap()
                .digest,
            digest(11)
        );
        // Pointing a tag where it already points changes nothing.
        let before = db.tag_history(repo.id, query(50)).await.unwrap().rows;
        let same = db
            .retarget_tag(repo.id, "v1", &digest(11), None)
            .await
            .unwrap();
        assert_eq!(same, RetargetOutcome::Retargeted { existed: true });
        assert_eq!(
            db.tag_history(repo.id, query(50)).await.unwrap().rows,
            before
        );

        // Manifest 10 lost its only tag; manifests of other repositories and unknown digests are
        // not usable either.
        for d in [digest(10), digest(12), digest(99)] {
            assert_eq!(
                db.retarget_tag(repo.id, "v2", &d, None).await.unwrap(),
                RetargetOutcome::ManifestUnknown,
                "{d}"
            );
        }
        assert!(db.manifest_by_tag(repo.id, "v2").await.unwrap().is_none());
    }
);

db_test!(tags_are_restored_within_the_window, |db: Db| async move {
    let repo = db.ensure_repository("acme", "app", "public").await.unwrap();
    blob(&db, repo.id, 1).await;
    db.put_manifest(image(repo.id, 10, &[1]), &visible("v1"))
        .await
        .unwrap();
    tick().await;
    db.put_manifest(image(repo.id, 11, &[1]), &visible("v1"))
        .await
        .unwrap();
    tick().await;
    let ended_at = now_ms();
    tick().await;

    // Manifest 10 is dead: its tag ended before `ended_at`, so a window starting later misses
    // it, and a plain retarget refuses it.
    assert_eq!(
        db.retarget_tag(repo.id, "v1", &digest(10), Some(ended_at))
            .await
            .unwrap(),
        RetargetOutcome::ManifestUnknown
    );
    assert_eq!(
        db.retarget_tag(repo.id, "v1", &digest(10), None)
            .await
            .unwrap(),
        RetargetOutcome::ManifestUnknown
    );
    let restored = db
        .retarget_tag(repo.id, "v1", &digest(10), Some(now_ms() - HOUR_MS))
        .await
        .unwrap();
    assert_eq!(restored, RetargetOutcome::Retargeted { existed: true });
    let rows = db.tag_history(repo.id, query(50)).await.unwrap().rows;
    assert_eq!(shown(&rows), ["v1@10", "v1@11!", "v1@10!"]);
    assert!(rows[0].reversion && !rows[1].reversion);
    assert_eq!(
        db.manifest_by_tag(repo.id, "v1")
            .await
            .unwrap()
            .unwrap()
            .digest,
        digest(10)
    );
    // A deleted tag comes back too, and restoring an alive manifest always starts a new
    // lifetime.
    assert!(db.delete_tag(repo.id, "v1").await.unwrap());
    tick().await;
    let again = db
        .retarget_tag(repo.id, "v1", &digest(10), Some(now_ms() - HOUR_MS))
        .await
        .unwrap();
    assert_eq!(again, RetargetOutcome::Retargeted { existed: false });
    tick().await;
    db.retarget_tag(repo.id, "v1", &digest(10), Some(now_ms() - HOUR_MS))
        .await
        .unwrap();
    let rows = db.tag_history(repo.id, query(50)).await.unwrap().rows;
    assert_eq!(shown(&rows[..3]), ["v1@10", "v1@10!", "v1@10!"]);
});

db_test!(repositories_are_listed_by_viewer, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let secret = repo(&db, &alice, "secret", "private").await;
    let open = repo(&db, &alice, "open", "public").await;
    let bobs = repo(&db, &bob, "bobs", "private").await;
    let bobs_open = repo(&db, &bob, "open", "public").await;

    let names = |rows: Vec<db::RepositoryListing>| -> Vec<String> {
        rows.into_iter()
            .map(|l| format!("{}/{}", l.repository.namespace, l.repository.name))
            .collect()
    };
    let list = |f: RepositoryFilter| {
        let db = db.clone();
        async move { names(db.list_repositories_for(f).await.unwrap()) }
    };
    // A namespace, by name: what the viewer may read, plus public ones when asked.
    let alices = RepositoryFilter {
        namespace_id: Some(alice.id),
        ..Default::default()
    };
    assert!(list(alices).await.is_empty(), "anonymous, public not asked");
    let anonymous_public = RepositoryFilter {
        include_public: true,
        ..alices
    };
    assert_eq!(list(anonymous_public).await, ["alice/open"]);
    let as_alice = RepositoryFilter {
        viewer: Some(alice.id),
        ..alices
    };
    assert_eq!(list(as_alice).await, ["alice/open", "alice/secret"]);
    let as_bob = RepositoryFilter {
        viewer: Some(bob.id),
        ..alices
    };
    assert!(list(as_bob).await.is_empty());
    let as_bob_public = RepositoryFilter {
        include_public: true,
        ..as_bob
    };
    assert_eq!(list(as_bob_public).await, ["alice/open"]);

    // Every namespace, by id, paged.
    let everything = RepositoryFilter {
        viewer: Some(bob.id),
        include_public: true,
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(list(everything).await, ["alice/open", "bob/bobs"]);
    let next = RepositoryFilter {
        after_id: Some(bobs.id),
        ..everything
    };
    assert_eq!(list(next).await, ["bob/open"]);

    // Repositories being deleted are never listed.
    assert!(db.mark_repository_for_deletion(open.id).await.unwrap());
    assert_eq!(list(anonymous_public).await, Vec::<String>::new());
    assert!(db.repository_listing(open.id).await.unwrap().is_none());
    let listing = db.repository_listing(secret.id).await.unwrap().unwrap();
    assert_eq!(listing.description.as_deref(), Some("about secret"));
    assert_eq!(
        (listing.kind.as_str(), listing.repository.id),
        ("image", secret.id)
    );
    assert_eq!(bobs_open.namespace, "bob");
});
