//! The garbage collector killed mid-pass: `wharf worker gcworker` is SIGKILLed as soon as it
//! has made progress, again and again, over lots of garbage. After every kill each blob row
//! must still have its whole object; at the end all garbage must be gone (leftovers of the
//! interrupted passes included) and every surviving tag must pull whole.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use types::Digest;

use crate::{SECRET_KEY, User, Wharf, client, create_user, verify_everything, verify_storage};

const IMAGES: usize = 200;
const REPOS: usize = 4;

/// Images whose tag survives; the others are deleted and become garbage.
fn kept(i: usize) -> bool {
    i.is_multiple_of(5)
}

fn layer(i: usize) -> Vec<u8> {
    format!("the own layer of image {i};")
        .repeat(40)
        .into_bytes()
}

fn shared_layer() -> Vec<u8> {
    b"a layer every image shares;".repeat(100)
}

/// `wharf worker gcworker` on the installation.
fn start_collector(location: &[&std::ffi::OsStr]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["worker", "gcworker"])
        .args(location)
        .env("WHARF_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the wharf binary starts")
}

async fn open_db(data: &Path) -> db::Db {
    db::Db::connect(&format!("sqlite:///{}", data.join("wharf.db").display()))
        .await
        .unwrap()
}

/// Pushes image `i` into `gc/r<i % REPOS>` under tag `t<i>`.
async fn push(base: &str, token: &str, i: usize) {
    let c = client();
    let repo = format!("gc/r{}", i % REPOS);
    let config = format!(r#"{{"image":{i}}}"#).into_bytes();
    let mut descriptors = Vec::new();
    for blob in [config, shared_layer(), layer(i)] {
        let d = Digest::sha256_of(&blob);
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .bearer_auth(token)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        descriptors.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d.to_string(), "size": blob.len()}),
        );
    }
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": descriptors[0]["digest"], "size": descriptors[0]["size"]},
        "layers": [descriptors[1], descriptors[2]]});
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/t{i}"))
        .bearer_auth(token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// Runs `f(i)` for every image, eight at a time.
async fn for_each_image<F, Fut>(f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    futures::stream::iter(0..IMAGES)
        .for_each_concurrent(8, f)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_garbage_collection_leaves_consistent_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let config = data.join("config");
    std::fs::create_dir_all(&config).unwrap();
    // Pushed blobs are protected for one second only, so the collector may free them soon.
    std::fs::write(
        config.join("config.yaml"),
        format!(
            "DB_URI: sqlite:///{}\nDATABASE_SECRET_KEY: {SECRET_KEY}\n\
             PUSH_TEMP_TAG_EXPIRATION_SEC: 1\n\
             DISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {}\n",
            data.join("wharf.db").display(),
            data.join("storage").display()
        ),
    )
    .unwrap();
    let location = ["--config-dir".as_ref(), config.as_os_str()];
    let user: User = create_user(&location, "gc");
    let serve_args = [location[0], location[1], "--no-workers".as_ref()];
    let wharf = Wharf::start_with(&serve_args).await;
    let repos: Vec<String> = (0..REPOS).map(|r| format!("r{r}")).collect();
    let repo_refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let token = wharf.token(&user, &repo_refs).await;
    let base = wharf.base.clone();
    for_each_image(|i| push(&base, &token, i)).await;

    let db = open_db(data).await;
    let account = db.find_account("gc").await.unwrap().unwrap();
    db.set_tag_expiration_s(account.id, 0).await.unwrap();
    for_each_image(|i| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            if kept(i) {
                return;
            }
            let r = client()
                .delete(format!("{base}/v2/gc/r{}/manifests/t{i}", i % REPOS))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    })
    .await;
    // Let the push protections run out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let survivors = (0..IMAGES).filter(|i| kept(*i)).count() as u64;
    let expected_blobs = survivors * 2 + 1;
    let start_blobs = db.count_blobs().await.unwrap();
    assert_eq!(start_blobs, IMAGES as u64 * 2 + 1);

    // Kill the collector as soon as it has freed something, restart it, and again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut kills, mut mid_pass) = (0, 0);
    loop {
        let before = db.count_blobs().await.unwrap();
        if before == expected_blobs || kills == 12 {
            break;
        }
        let mut collector = start_collector(&location);
        loop {
            assert!(Instant::now() < deadline, "the collector makes progress");
            if let Some(status) = collector.try_wait().unwrap() {
                panic!("the collector exited with {status}");
            }
            if db.count_blobs().await.unwrap() < before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        collector.kill().unwrap();
        collector.wait().unwrap();
        kills += 1;
        if db.count_blobs().await.unwrap() > expected_blobs {
            mid_pass += 1;
        }
        // Whatever the moment of the kill, no row points at missing bytes.
        verify_storage(data).await;
    }
    // A last run, left to finish: it also frees what the killed passes left unreferenced.
    let mut collector = start_collector(&location);
    while db.count_blobs().await.unwrap() > expected_blobs {
        assert!(Instant::now() < deadline, "the collector finishes");
        assert!(
            collector.try_wait().unwrap().is_none(),
            "the collector runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    collector.kill().unwrap();
    collector.wait().unwrap();
    eprintln!("{kills} kills, {mid_pass} of them mid-pass");
    assert!(mid_pass > 0, "at least one kill interrupted a pass");

    assert_eq!(db.count_blobs().await.unwrap(), expected_blobs);
    assert!(
        db.gc_scan_unreferenced_manifests(0, 10_000)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert!(
        db.gc_scan_unreferenced_blobs(0, 10_000)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    for r in 0..REPOS {
        let repo = db
            .find_repository("gc", &format!("r{r}"))
            .await
            .unwrap()
            .unwrap();
        let counts = db.repository_counts(repo.id).await.unwrap();
        let kept_here = (0..IMAGES).filter(|i| kept(*i) && i % REPOS == r).count() as u64;
        assert_eq!((counts.tags, counts.manifests), (kept_here, kept_here));
    }
    assert_eq!(
        verify_everything(&wharf, &user).await as u64,
        survivors * 3,
        "every surviving tag pulls whole"
    );
    drop(wharf);
    verify_storage(data).await;
}
