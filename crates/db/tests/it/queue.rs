//! The leased queue on both engines: claims, leases, retries, prefixes and racing claimers.

use std::collections::HashSet;
use std::time::Duration;

use db::{Db, db_test, item_name};

db_test!(put_claim_complete, |db: Db| async move {
    assert!(
        db.queue_claim("repositorygc", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    let name = item_name("repositorygc", &["acme", "7"]);
    let id = db.queue_put(&name, r#"{"repo": 7}"#, 0, 5).await.unwrap();
    assert!(db.queue_alive(&name).await.unwrap());
    let item = db
        .queue_claim("repositorygc", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (item.id, item.name.as_str(), item.retries_remaining),
        (id, name.as_str(), 4)
    );
    assert_eq!(item.body, r#"{"repo": 7}"#);
    assert!(
        db.queue_claim("repositorygc", 60_000)
            .await
            .unwrap()
            .is_none(),
        "leased"
    );
    assert!(
        db.queue_alive(&name).await.unwrap(),
        "running counts as alive"
    );
    assert!(db.queue_complete(&item).await.unwrap());
    assert!(!db.queue_complete(&item).await.unwrap());
    assert!(!db.queue_alive(&name).await.unwrap());
});

db_test!(queues_are_prefixes_not_patterns, |db: Db| async move {
    db.queue_put("notificationx/a/", "{}", 0, 5).await.unwrap();
    db.queue_put("notif_cation/a/", "{}", 0, 5).await.unwrap();
    assert!(
        db.queue_claim("notification", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    db.queue_put("notification/acme/repo/push/", "{}", 0, 5)
        .await
        .unwrap();
    db.queue_put("notification/other/", "{}", 0, 5)
        .await
        .unwrap();
    assert_eq!(
        db.queue_delete_prefix("notification/acme/").await.unwrap(),
        1
    );
    let item = db
        .queue_claim("notification", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.name, "notification/other/");
});

db_test!(delayed_items_wait, |db: Db| async move {
    db.queue_put("secscanv4/x/", "{}", 60_000, 5).await.unwrap();
    assert!(db.queue_claim("secscanv4", 1_000).await.unwrap().is_none());
    assert!(
        !db.queue_alive("secscanv4/x/").await.unwrap(),
        "not yet available"
    );
});

db_test!(
    expired_leases_come_back_and_retries_run_out,
    |db: Db| async move {
        db.queue_put("chunk_cleanup/a/", "{}", 0, 2).await.unwrap();
        let first = db.queue_claim("chunk_cleanup", 1).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The first worker "crashed": its lease ran out, so the item is claimable again.
        let second = db.queue_claim("chunk_cleanup", 1).await.unwrap().unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.retries_remaining, 0);
        assert!(
            !db.queue_complete(&first).await.unwrap(),
            "the stale claim is refused"
        );
        assert!(!db.queue_extend(&first, 60_000, None).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            db.queue_claim("chunk_cleanup", 1).await.unwrap().is_none(),
            "no retries left"
        );
    }
);

db_test!(incomplete_and_extend, |db: Db| async move {
    db.queue_put("exportactionlogs/acme/", "{\"page\": 0}", 0, 3)
        .await
        .unwrap();
    let item = db
        .queue_claim("exportactionlogs", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        db.queue_extend(&item, 120_000, Some("{\"page\": 5}"))
            .await
            .unwrap()
    );
    assert!(db.queue_incomplete(&item, 0, true).await.unwrap());
    let again = db
        .queue_claim("exportactionlogs", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.body, "{\"page\": 5}",
        "progress saved by extend survives"
    );
    assert_eq!(
        again.retries_remaining, 2,
        "the restored retry was not spent"
    );
    assert!(db.queue_incomplete(&again, 60_000, false).await.unwrap());
    assert!(
        db.queue_claim("exportactionlogs", 60_000)
            .await
            .unwrap()
            .is_none(),
        "retry later"
    );
});

db_test!(racing_claimers_take_each_item_once, |db: Db| async move {
    for i in 0..60 {
        db.queue_put(
            &item_name("imagestoragereplication", &[&i.to_string()]),
            "{}",
            0,
            5,
        )
        .await
        .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..3 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(item) = db
                .queue_claim("imagestoragereplication", 60_000)
                .await
                .unwrap()
            {
                mine.push(item.id);
                assert!(db.queue_complete(&item).await.unwrap());
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "item {id} was run twice");
        }
    }
    assert_eq!(total, 60);
});

/// Three "processes" (separate connection pools) share one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_pools_on_postgres_never_share_an_item() {
    let t = db::testing::TestDb::new(db::testing::Engine::Postgres).await;
    for i in 0..90 {
        t.db.queue_put(&item_name("namespacegc", &[&i.to_string()]), "{}", 0, 5)
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..3 {
        let db = Db::connect(&t.uri).await.unwrap();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(item) = db.queue_claim("namespacegc", 60_000).await.unwrap() {
                mine.push(item.id);
                assert!(db.queue_complete(&item).await.unwrap());
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for w in workers {
        for id in w.await.unwrap() {
            assert!(seen.insert(id), "item {id} was run twice");
        }
    }
    assert_eq!(seen.len(), 90);
}
