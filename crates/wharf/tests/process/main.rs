//! Process-level tests of the real `wharf` binary (`cli` holds the command-line ones).
//!
//! Crash safety: the binary is killed with SIGKILL in the middle of chunked uploads
//! and manifest pushes, then restarted on the same data. Nothing half-written may be visible,
//! nothing may reference missing bytes, and interrupted uploads resume (or start over) cleanly.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod cli;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Client;
use serde_json::{Value, json};
use types::Digest;

/// A `wharf serve` child process on a loopback port.
struct Wharf {
    child: Child,
    base: String,
}

impl Wharf {
    async fn start(data: &Path) -> Wharf {
        Self::start_with(&["--data-dir".as_ref(), data.as_os_str()]).await
    }

    async fn start_with(location: &[&std::ffi::OsStr]) -> Wharf {
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
                .arg("serve")
                .args(location)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("WHARF_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the wharf binary starts");
            let base = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!("wharf exited early with {status}; retrying on another port");
                    break;
                }
                if let Ok(r) = reqwest::get(format!("{base}/v2/")).await
                    && r.status() == 200
                {
                    return Wharf { child, base };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("wharf did not become ready");
    }

    /// SIGKILL: no graceful shutdown, no flushing.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (((i as u64 * 2654435761) >> 13) as u8) ^ seed)
        .collect()
}

/// Pulls every tag of every repository and checks each manifest and blob against its digest.
/// Returns the number of blobs verified.
async fn verify_everything(base: &str) -> usize {
    let c = client();
    let catalog: Value = c
        .get(format!("{base}/v2/_catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut verified = 0;
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags: Value = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for tag in tags["tags"].as_array().unwrap() {
            let r = c
                .get(format!(
                    "{base}/v2/{repo}/manifests/{}",
                    tag.as_str().unwrap()
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{repo}:{tag}");
            let digest: Digest = r.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let bytes = r.bytes().await.unwrap();
            assert!(
                digest.matches(&bytes),
                "manifest {repo}:{tag} matches its digest"
            );
            let manifest: Value = serde_json::from_slice(&bytes).unwrap();
            let mut blobs = vec![manifest["config"].clone()];
            blobs.extend(manifest["layers"].as_array().unwrap().iter().cloned());
            for b in blobs {
                let d: Digest = b["digest"].as_str().unwrap().parse().unwrap();
                let r = c
                    .get(format!("{base}/v2/{repo}/blobs/{d}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "blob {d} of {repo}:{tag} is there");
                assert!(d.matches(&r.bytes().await.unwrap()), "blob {d} is whole");
                verified += 1;
            }
        }
    }
    verified
}

/// Every blob the database knows has an object whose bytes match its digest.
async fn verify_storage(data: &Path) {
    let db = db::Db::connect(&format!("sqlite:///{}", data.join("wharf.db").display()))
        .await
        .unwrap();
    let store = storage::LocalStore::open(data.join("storage")).unwrap();
    use storage::BlobStore;
    let mut after = 0;
    loop {
        let page = db.list_blobs(after, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for blob in &page {
            let path: PathBuf = store.local_path(&blob.storage_key).unwrap();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{} for {}: {e}", path.display(), blob.digest));
            let digest: Digest = blob.digest.parse().unwrap();
            assert_eq!(bytes.len() as i64, blob.size);
            assert!(
                digest.matches(&bytes),
                "stored object of {} is whole",
                blob.digest
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_chunked_upload_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::start(dir.path()).await;
    let c = client();
    let first = payload(5 << 20, 1);
    let second = payload(7 << 20, 2);

    let r = c
        .post(format!("{}/v2/acme/big/blobs/uploads/", wharf.base))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(format!("{}{location}", wharf.base))
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // The second chunk sends 3 MiB, then stalls; the server dies while it waits for the rest.
    let stalled = reqwest::Body::wrap_stream(futures::stream::unfold(0u8, move |state| {
        let chunk = second[..3 << 20].to_vec();
        async move {
            match state {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), 1)),
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    None
                }
            }
        }
    }));
    let url = format!("{}{location}", wharf.base);
    let in_flight = tokio::spawn(async move { client().patch(url).body(stalled).send().await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    wharf.kill();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the interrupted request failed"
    );

    let wharf = Wharf::start(dir.path()).await;
    let r = c
        .get(format!("{}{location}", wharf.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["range"],
        format!("0-{}", (5 << 20) - 1),
        "only acknowledged bytes count"
    );

    // Resume from the acknowledged offset.
    let second = payload(7 << 20, 2);
    let r = c
        .patch(format!("{}{location}", wharf.base))
        .header("content-range", format!("{}-{}", 5 << 20, (12 << 20) - 1))
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    let digest = Digest::sha256_of(&whole);
    let r = c
        .put(format!("{}{location}?digest={digest}", wharf.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = c
        .get(format!("{}/v2/acme/big/blobs/{digest}", wharf.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), whole);

    // Starting over is just as clean: a new session for the same content.
    let r = c
        .post(format!(
            "{}/v2/acme/again/blobs/uploads/?digest={digest}",
            wharf.base
        ))
        .body(whole)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(wharf);
    verify_storage(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_manifest_pushes_leaves_consistent_data() {
    let dir = tempfile::tempdir().unwrap();
    let wharf = Wharf::start(dir.path()).await;
    let base = wharf.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pushers = Vec::new();
    for worker in 0..4u8 {
        let base = base.clone();
        let stop = stop.clone();
        pushers.push(tokio::spawn(async move {
            let c = client();
            let mut pushed = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let repo = format!("crash/repo{}", worker % 2);
                let shared = payload(256 << 10, 9);
                let own = payload(64 << 10, worker.wrapping_mul(31).wrapping_add(pushed as u8));
                let config = format!(r#"{{"worker":{worker},"n":{pushed}}}"#).into_bytes();
                let mut descriptors = Vec::new();
                let mut ok = true;
                for (blob, media_type) in [
                    (&config, "application/vnd.oci.image.config.v1+json"),
                    (&shared, "application/vnd.oci.image.layer.v1.tar"),
                    (&own, "application/vnd.oci.image.layer.v1.tar"),
                ] {
                    let d = Digest::sha256_of(blob);
                    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).body(blob.clone()).send().await;
                    ok &= matches!(r, Ok(ref r) if r.status() == 201);
                    descriptors.push(json!({"mediaType": media_type, "digest": d.to_string(), "size": blob.len()}));
                }
                if !ok {
                    break;
                }
                let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": descriptors[0], "layers": [descriptors[1], descriptors[2]]});
                let r = c
                    .put(format!("{base}/v2/{repo}/manifests/w{worker}-{pushed}"))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(serde_json::to_vec(&manifest).unwrap())
                    .send()
                    .await;
                if !matches!(r, Ok(ref r) if r.status() == 201) {
                    break;
                }
                pushed += 1;
            }
            pushed
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wharf.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for p in pushers {
        total += p.await.unwrap();
    }
    assert!(total > 0, "some pushes completed before the kill");

    let wharf = Wharf::start(dir.path()).await;
    let verified = verify_everything(&wharf.base).await;
    assert!(
        verified >= total as usize * 3,
        "every acknowledged push is complete"
    );
    // The registry keeps working after the crash.
    let c = client();
    let d = Digest::sha256_of(b"after the crash");
    let r = c
        .post(format!(
            "{}/v2/crash/after/blobs/uploads/?digest={d}",
            wharf.base
        ))
        .body("after the crash")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(wharf);
    verify_storage(dir.path()).await;
}

/// Pushes `body` monolithically to `acme/app` under `digest`.
async fn push_blob(c: &Client, base: &str, digest: &Digest, body: Vec<u8>) -> reqwest::Response {
    c.post(format!("{base}/v2/acme/app/blobs/uploads/?digest={digest}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A small tmpfs mounted for one test and unmounted when dropped.
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(path: PathBuf, size: &str) -> TinyFs {
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root; the full-disk test cannot run"
        );
        TinyFs(path)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_push_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = TinyFs::mount(dir.path().join("storage"), "8m");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.yaml"),
        format!(
            "DB_URI: sqlite:///{}\nDISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {}\n",
            dir.path().join("wharf.db").display(),
            tiny.0.display()
        ),
    )
    .unwrap();
    let wharf = Wharf::start_with(&["--config-dir".as_ref(), config.as_os_str()]).await;
    let c = client();
    let base = &wharf.base;

    let kept = payload(2 << 20, 3);
    let kept_digest = Digest::sha256_of(&kept);
    let r = push_blob(&c, base, &kept_digest, kept.clone()).await;
    assert_eq!(r.status(), 201);

    let big = payload(12 << 20, 4);
    let big_digest = Digest::sha256_of(&big);
    let r = push_blob(&c, base, &big_digest, big).await;
    assert_eq!(r.status(), 507);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNKNOWN");
    let r = c
        .head(format!("{base}/v2/acme/app/blobs/{big_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing of the failed blob is visible");

    // A chunked upload that runs out of room keeps what it acknowledged.
    let r = c
        .post(format!("{base}/v2/acme/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&location)
        .body(payload(4 << 20, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .patch(&location)
        .body(payload(4 << 20, 6))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.headers()["range"], format!("0-{}", (4 << 20) - 1));
    // Cancelling frees the room; pushes work again.
    assert_eq!(c.delete(&location).send().await.unwrap().status(), 204);
    let again = payload(3 << 20, 7);
    let again_digest = Digest::sha256_of(&again);
    let r = push_blob(&c, base, &again_digest, again).await;
    assert_eq!(r.status(), 201);

    let r = c
        .get(format!("{base}/v2/acme/app/blobs/{kept_digest}"))
        .send()
        .await
        .unwrap();
    assert!(
        kept_digest.matches(&r.bytes().await.unwrap()),
        "earlier blobs are intact"
    );
    drop(wharf);
}
