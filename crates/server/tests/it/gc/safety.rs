//! The collector under load: pushers keep pushing images whose layers other pushers and short-
//! lived repositories share, others delete and move tags, pull, and delete whole repositories,
//! while the collector runs without pause with no time machine. Every push must succeed (each
//! blob a push names was uploaded a moment before, well inside its protection), every pull
//! during the run and every surviving tag afterwards must be whole, and every blob row must have
//! its object.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use types::Digest;
use wharf_core::{GcCursor, Registry, Settings};

use super::{
    TESTER, assert_storage_consistent, gc_test, pull_verified, run_gc, run_purges, set_window,
};
use crate::harness::{TestApp, api};

/// How long the load runs.
const LOAD: Duration = Duration::from_secs(6);
const PUSHERS: u64 = 4;
/// Tags each pusher cycles through, so pushes keep moving tags.
const TAGS: u64 = 4;

/// Layers change every quarter second: each generation's layers are first pushed by whoever
/// comes first, shared by the others, and freed once every repository holding them is gone.
fn generation(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64 / 250
}

fn layer(generation: u64, k: u64) -> Vec<u8> {
    format!("generation {generation} layer {k};")
        .repeat(80)
        .into_bytes()
}

/// A cheap pseudo-random sequence (the tasks only need to spread their choices).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

gc_test!(
    pushes_never_lose_data_to_a_running_collector,
    Settings::default(),
    |app: TestApp| async move {
        let app = Arc::new(app);
        app.push_image("load/warmup", "v1", &[b"warm"]).await;
        set_window(&app, "load", 0).await;
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..PUSHERS {
            tasks.spawn(pusher(
                app.clone(),
                p,
                stop.clone(),
                counters.clone(),
                started,
            ));
        }
        tasks.spawn(tag_deleter(app.clone(), stop.clone(), counters.clone()));
        tasks.spawn(victims(
            app.clone(),
            stop.clone(),
            counters.clone(),
            started,
        ));
        tasks.spawn(puller(app.clone(), stop.clone(), counters.clone()));
        let collector = app.sibling().await;
        let gc = tokio::spawn(collect_continuously(
            app.clone(),
            collector.clone(),
            stop.clone(),
        ));
        tokio::time::sleep(LOAD).await;
        stop.store(true, Ordering::Relaxed);
        while let Some(task) = tasks.join_next().await {
            task.unwrap();
        }
        let passes = gc.await.unwrap();

        // Let the collector finish what is left, then check everything that survived.
        run_purges(&app, &collector).await;
        run_gc(&collector).await;
        let r = app.get("/v2/_catalog?n=10000").await;
        let catalog: Value = r.json().await.unwrap();
        let mut verified = 0;
        for repo in catalog["repositories"].as_array().unwrap() {
            let repo = repo.as_str().unwrap();
            let tags: Value = app
                .get(&format!("/v2/{repo}/tags/list"))
                .await
                .json()
                .await
                .unwrap();
            for tag in tags["tags"].as_array().into_iter().flatten() {
                verified += pull_verified(&app, repo, tag.as_str().unwrap()).await;
            }
        }
        let blobs = assert_storage_consistent(&app).await;
        let stats = collector.gc_stats();
        let c = &counters;
        eprintln!(
            "{} pushes, {} tag deletions, {} repositories deleted, {} pulls during the load; \
             {passes} collector passes: {stats:?}; afterwards {verified} blobs pulled and \
             {blobs} objects verified",
            c.pushes.load(Ordering::Relaxed),
            c.tag_deletions.load(Ordering::Relaxed),
            c.repositories_deleted.load(Ordering::Relaxed),
            c.pulls.load(Ordering::Relaxed),
        );
        assert!(c.pushes.load(Ordering::Relaxed) > 20, "the load ran");
        assert!(
            stats.manifests_deleted > 0,
            "the collector removed manifests"
        );
        assert!(stats.blobs_deleted > 0, "the collector removed blobs");
        assert!(stats.repositories_purged > 0, "and purged repositories");
        assert!(verified > 0);
    }
);

#[derive(Default)]
struct Counters {
    pushes: AtomicU64,
    tag_deletions: AtomicU64,
    repositories_deleted: AtomicU64,
    pulls: AtomicU64,
}

/// Pushes images into `load/p<p>`, each with a layer of this generation and one of the last
/// (shared with everyone) and a layer of its own, under tags it keeps moving. Every push must
/// succeed: `push_image` asserts each response.
async fn pusher(
    app: Arc<TestApp>,
    p: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    started: Instant,
) {
    let repo = format!("load/p{p}");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let g = generation(started);
        let layers = [
            layer(g, (n + p) % 3),
            layer(g.saturating_sub(1), n % 3),
            format!("pusher {p} push {n}").into_bytes(),
        ];
        let layers: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        app.push_image(&repo, &format!("t{}", n % TAGS), &layers)
            .await;
        counters.pushes.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

/// Deletes pushers' tags at random through the registry API.
async fn tag_deleter(app: Arc<TestApp>, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Ordering::Relaxed) {
        let p = next(&mut state) % PUSHERS;
        let t = next(&mut state) % TAGS;
        let r = app
            .req(Method::DELETE, &format!("/v2/load/p{p}/manifests/t{t}"))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::ACCEPTED => {
                counters.tag_deletions.fetch_add(1, Ordering::Relaxed);
            }
            // The pusher has not pushed that tag yet, or it is deleted already.
            StatusCode::NOT_FOUND => {}
            other => panic!(
                "deleting load/p{p}:t{t}: {other} {}",
                r.text().await.unwrap()
            ),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Pushes two images into a fresh repository with every layer of this generation (so some of
/// them are nowhere else yet), then deletes the repository: its blobs are freed by the purge
/// while pushers may be uploading the same digests.
async fn victims(
    app: Arc<TestApp>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    started: Instant,
) {
    let mut v = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let repo = format!("load/v{v}");
        for i in 0..2u64 {
            let g = generation(started);
            let layers = [
                layer(g, 0),
                layer(g, 1),
                layer(g, 2),
                format!("victim {v} image {i}").into_bytes(),
            ];
            let layers: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
            app.push_image(&repo, &format!("x{i}"), &layers).await;
        }
        let (status, body) = api(
            &app,
            TESTER,
            Method::DELETE,
            &format!("/repository/{repo}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        counters
            .repositories_deleted
            .fetch_add(1, Ordering::Relaxed);
        v += 1;
    }
}

/// Pulls pushers' tags at random: a manifest that is served must come with all its blobs.
async fn puller(app: Arc<TestApp>, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while !stop.load(Ordering::Relaxed) {
        let p = next(&mut state) % PUSHERS;
        let t = next(&mut state) % TAGS;
        let repo = format!("load/p{p}");
        let r = app.get(&format!("/v2/{repo}/manifests/t{t}")).await;
        if r.status() == StatusCode::NOT_FOUND {
            continue;
        }
        assert_eq!(r.status(), 200, "{repo}:t{t}");
        let bytes = r.bytes().await.unwrap();
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
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
            assert_eq!(
                r.status(),
                200,
                "blob {d} of a manifest just served by {repo}:t{t}"
            );
            assert!(d.matches(&r.bytes().await.unwrap()), "blob {d} is whole");
        }
        counters.pulls.fetch_add(1, Ordering::Relaxed);
    }
}

/// The collector and the purges, back to back until told to stop. Returns the passes made.
async fn collect_continuously(
    app: Arc<TestApp>,
    collector: Registry,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut cursor = GcCursor::default();
    let mut passes = 0;
    while !stop.load(Ordering::Relaxed) {
        for id in collector.gc_candidates().await.unwrap() {
            collector.collect_repository(id).await.unwrap();
        }
        collector
            .collect_leftovers(&mut cursor, 1000)
            .await
            .unwrap();
        run_purges(&app, &collector).await;
        passes += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    passes
}
