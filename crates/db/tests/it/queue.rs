//! The leased queue on both engines: claims, leases, retries, prefixes, counts and racing
//! claimers, in one pool and in several ("processes" sharing one database).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use db::testing::{Engine, TestDb};
use db::{Db, QueueCounts, db_test, item_name, now_ms};

/// Like `db_test!`, for tests that open more pools on the same database: the body gets the
/// migrated database and its URI.
macro_rules! pools_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = TestDb::new(Engine::Sqlite).await;
                ($body)(t.db.clone(), t.uri.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let t = TestDb::new(Engine::Postgres).await;
                ($body)(t.db.clone(), t.uri.clone()).await;
            }
        }
    };
}

/// `count` items named `<queue>/<i>/`, added in one batch.
async fn fill(db: &Db, queue: &str, count: usize, retries: i32) {
    let items: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                item_name(queue, &[&i.to_string()]),
                format!("{{\"n\": {i}}}"),
            )
        })
        .collect();
    assert_eq!(
        db.queue_put_many(&items, 0, retries).await.unwrap(),
        count as u64
    );
}

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

/// One claim as a claimer saw it. The lease began no earlier than `asked_ms`.
#[derive(Debug)]
struct Claim {
    id: i64,
    asked_ms: i64,
    completed_ms: i64,
}

pools_test!(
    three_pools_run_300_items_once_each,
    |db: Db, uri: String| async move {
        const LEASE_MS: i64 = 30_000;
        fill(&db, "imagestoragereplication", 300, 5).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut claimers = Vec::new();
        for _ in 0..3 {
            let db = Db::connect(&uri).await.unwrap();
            let log = log.clone();
            claimers.push(tokio::spawn(async move {
                loop {
                    let asked_ms = now_ms();
                    let Some(item) = db
                        .queue_claim("imagestoragereplication", LEASE_MS)
                        .await
                        .unwrap()
                    else {
                        break;
                    };
                    tokio::task::yield_now().await;
                    assert!(db.queue_complete(&item).await.unwrap(), "claim held");
                    log.lock().unwrap().push(Claim {
                        id: item.id,
                        asked_ms,
                        completed_ms: now_ms(),
                    });
                }
            }));
        }
        for c in claimers {
            c.await.unwrap();
        }
        let log = std::mem::take(&mut *log.lock().unwrap());
        let mut seen = HashSet::new();
        for claim in log.iter() {
            assert!(seen.insert(claim.id), "item {} was claimed twice", claim.id);
            assert!(
                claim.completed_ms < claim.asked_ms + LEASE_MS,
                "completed within its lease: {claim:?}"
            );
        }
        assert_eq!(seen.len(), 300);
        assert!(db.queue_counts().await.unwrap().is_empty(), "all deleted");
    }
);

pools_test!(
    failing_claimers_spend_every_retry_once,
    |db: Db, uri: String| async move {
        fill(&db, "notification", 30, 3).await;
        let claims = Arc::new(Mutex::new(HashMap::<i64, Vec<i32>>::new()));
        let mut claimers = Vec::new();
        for _ in 0..3 {
            let db = Db::connect(&uri).await.unwrap();
            let claims = claims.clone();
            claimers.push(tokio::spawn(async move {
                while let Some(item) = db.queue_claim("notification", 30_000).await.unwrap() {
                    claims
                        .lock()
                        .unwrap()
                        .entry(item.id)
                        .or_default()
                        .push(item.retries_remaining);
                    // The job failed: the retry the claim spent stays spent; back at once.
                    assert!(db.queue_incomplete(&item, 0, false).await.unwrap());
                }
            }));
        }
        for c in claimers {
            c.await.unwrap();
        }
        let claims = std::mem::take(&mut *claims.lock().unwrap());
        assert_eq!(claims.len(), 30);
        for (id, seen) in claims.iter() {
            let mut seen = seen.clone();
            seen.sort();
            assert_eq!(seen, [0, 1, 2], "item {id}: one claim per retry");
        }
        assert!(
            db.queue_claim("notification", 30_000)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            db.queue_counts().await.unwrap(),
            [QueueCounts {
                queue: "notification".into(),
                ..Default::default()
            }],
            "dead items are neither available nor locked"
        );
        assert_eq!(
            db.queue_delete_prefix("notification/").await.unwrap(),
            30,
            "dead items stay in the table, as in Quay"
        );
    }
);

pools_test!(
    a_killed_claimers_items_come_back_to_another_pool,
    |db: Db, uri: String| async move {
        fill(&db, "repositorygc", 5, 5).await;
        let doomed = Db::connect(&uri).await.unwrap();
        let mut stale = Vec::new();
        // A lease long enough that a loaded machine finishes the claims and the check below
        // within it, short enough to wait out.
        while let Some(item) = doomed.queue_claim("repositorygc", 1_500).await.unwrap() {
            stale.push(item);
        }
        assert_eq!(stale.len(), 5);
        doomed.close().await; // "killed" mid-work: nothing completed, nothing given back
        let survivor = Db::connect(&uri).await.unwrap();
        assert!(
            survivor
                .queue_claim("repositorygc", 30_000)
                .await
                .unwrap()
                .is_none(),
            "leases still live"
        );
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let mut ids = Vec::new();
        while let Some(item) = survivor.queue_claim("repositorygc", 30_000).await.unwrap() {
            assert_eq!(
                item.retries_remaining, 3,
                "the killed claim spent one retry"
            );
            ids.push(item.id);
            assert!(survivor.queue_complete(&item).await.unwrap());
        }
        ids.sort();
        let mut expected: Vec<i64> = stale.iter().map(|i| i.id).collect();
        expected.sort();
        assert_eq!(ids, expected);
        for item in &stale {
            assert!(
                !survivor.queue_complete(item).await.unwrap(),
                "stale receipt"
            );
        }
    }
);

/// A claim on PostgreSQL passes over a row another transaction has locked instead of waiting
/// for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_skip_locked_rows() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let t = TestDb::new(Engine::Postgres).await;
    let first =
        t.db.queue_put("chunk_cleanup/a/", "{}", 0, 5)
            .await
            .unwrap();
    let second =
        t.db.queue_put("chunk_cleanup/b/", "{}", 0, 5)
            .await
            .unwrap();
    let other = sea_orm::Database::connect(&t.uri).await.unwrap();
    let tx = other.begin().await.unwrap();
    tx.execute_unprepared(&format!(
        "SELECT id FROM queue_item WHERE id = {first} FOR UPDATE"
    ))
    .await
    .unwrap();
    let claim = tokio::time::timeout(
        Duration::from_secs(5),
        t.db.queue_claim("chunk_cleanup", 30_000),
    )
    .await
    .expect("the claim does not wait for the lock")
    .unwrap()
    .unwrap();
    assert_eq!(claim.id, second);
    assert!(
        t.db.queue_claim("chunk_cleanup", 30_000)
            .await
            .unwrap()
            .is_none()
    );
    tx.rollback().await.unwrap();
    let claim =
        t.db.queue_claim("chunk_cleanup", 30_000)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(claim.id, first);
    other.close().await.unwrap();
}

db_test!(counts_follow_quays_queue_gauges, |db: Db| async move {
    let counts = |queue: &str, available, locked, available_unlocked| QueueCounts {
        queue: queue.into(),
        available,
        locked,
        available_unlocked,
    };
    assert!(db.queue_counts().await.unwrap().is_empty());
    // Each claim below is the only available item of its queue at the time, so it is the one
    // taken on either engine.
    db.queue_put("repositorygc/b/", "{}", 0, 5).await.unwrap();
    let running = db
        .queue_claim("repositorygc", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.name, "repositorygc/b/");
    db.queue_put("repositorygc/c/", "{}", 0, 5).await.unwrap();
    let expired = db.queue_claim("repositorygc", 1).await.unwrap().unwrap();
    assert_eq!(expired.name, "repositorygc/c/");
    tokio::time::sleep(Duration::from_millis(10)).await;
    db.queue_put("repositorygc/a/", "{}", 0, 5).await.unwrap();
    // A second item named like the running one: available, but its name is locked.
    db.queue_put("repositorygc/b/", "{}", 0, 5).await.unwrap();
    db.queue_put("repositorygc/d/", "{}", 60_000, 5)
        .await
        .unwrap();
    db.queue_put("repositorygc/e/", "{}", 0, 0).await.unwrap();
    db.queue_put("namespacegc/1/", "{}", 0, 5).await.unwrap();
    db.queue_put("namespacegc/2/", "{}", 0, 5).await.unwrap();
    assert_eq!(
        db.queue_counts().await.unwrap(),
        [
            counts("namespacegc", 2, 0, 2),
            // available: a, b, c (expired lease); locked: b; unlocked: a, c.
            counts("repositorygc", 3, 1, 2),
        ]
    );
    assert!(db.queue_complete(&running).await.unwrap());
    assert_eq!(
        db.queue_counts().await.unwrap()[1],
        counts("repositorygc", 3, 0, 3)
    );
});

db_test!(batches_of_puts, |db: Db| async move {
    assert_eq!(db.queue_put_many(&[], 0, 5).await.unwrap(), 0);
    fill(&db, "secscanv4", 2_500, 5).await;
    let later = vec![("secscanv4/later/".to_string(), "{}".to_string())];
    assert_eq!(db.queue_put_many(&later, 60_000, 5).await.unwrap(), 1);
    assert_eq!(
        db.queue_counts().await.unwrap(),
        [QueueCounts {
            queue: "secscanv4".into(),
            available: 2_500,
            locked: 0,
            available_unlocked: 2_500,
        }]
    );
    let item = db.queue_claim("secscanv4", 60_000).await.unwrap().unwrap();
    assert_eq!(item.retries_remaining, 4);
    assert!(item.body.starts_with("{\"n\": "));
    assert_eq!(db.queue_delete_prefix("secscanv4/").await.unwrap(), 2_501);
});

/// Queue names select by byte ranges, so PostgreSQL must compare them bytewise whatever the
/// database's locale (migration 4).
#[tokio::test]
async fn postgres_compares_queue_names_bytewise() {
    use sea_orm::ConnectionTrait;
    let t = TestDb::new(Engine::Postgres).await;
    let other = sea_orm::Database::connect(&t.uri).await.unwrap();
    let row = other
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT collation_name::text AS collation FROM information_schema.columns \
             WHERE table_name = 'queue_item' AND column_name = 'queue_name'",
        ))
        .await
        .unwrap()
        .unwrap();
    let collation: String = row.try_get("", "collation").unwrap();
    assert_eq!(collation, "C");
}
