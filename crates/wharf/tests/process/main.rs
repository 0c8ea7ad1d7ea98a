//! Process-level tests of the real `wharf` binary (`cli` holds the command-line ones).
//!
//! Crash safety: the binary is killed with SIGKILL in the middle of chunked uploads
//! and manifest pushes, then restarted on the same data. Nothing half-written may be visible,
//! nothing may reference missing bytes, and interrupted uploads resume (or start over) cleanly.
//!
//! Every `/v2` request needs a registry token. The tests create a user with
//! `wharf admin create-user` and ask `GET /v2/auth` for a token as that user, with Basic
//! credentials, the way a client does; they push into the user's own namespace, where a push
//! creates the repository. A token names the server's `host:port` as its audience, so a
//! restarted server (on a new port) needs new tokens.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod cli;
mod gc;
mod validate_config;

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
                // Without a token, `/v2/` is refused with a challenge naming this server's
                // token endpoint: only our wharf answers that.
                if let Ok(r) = reqwest::get(format!("{base}/v2/")).await
                    && r.status() == 401
                    && r.headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains(&format!("realm=\"{base}/v2/auth\"")))
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

    /// `127.0.0.1:PORT`: the service registry tokens are issued for.
    fn host(&self) -> &str {
        self.base.strip_prefix("http://").unwrap()
    }

    /// A registry token for `user` from `GET /v2/auth`, asking for pull and push on each of
    /// `repos` (names inside the user's namespace); no repositories: a token that only
    /// identifies the user (enough for `/v2/` and the catalog).
    async fn token(&self, user: &User, repos: &[&str]) -> String {
        let mut query = vec![("service".to_string(), self.host().to_string())];
        for repo in repos {
            query.push((
                "scope".to_string(),
                format!("repository:{}/{repo}:pull,push", user.name),
            ));
        }
        token_response(&self.base, Some(user), &query).await
    }

    /// A token for `user` that may only pull `repo` (a full name).
    async fn pull_token(&self, user: &User, repo: &str) -> String {
        let query = [
            ("service".to_string(), self.host().to_string()),
            ("scope".to_string(), format!("repository:{repo}:pull")),
        ];
        token_response(&self.base, Some(user), &query).await
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

/// A user made with `wharf admin create-user`.
struct User {
    name: String,
    password: String,
}

/// Creates user `name` with the CLI on the installation `location` names (`--data-dir D` or
/// `--config-dir C`), as an operator would; a server may be running on it.
fn create_user(location: &[&std::ffi::OsStr], name: &str) -> User {
    use std::io::Write;
    let password = format!("{name}-process-password");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["admin", "create-user", name, "--email"])
        .arg(format!("{name}@example.com"))
        .args(location)
        .env("WHARF_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wharf binary starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "wharf admin create-user {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    User {
        name: name.to_string(),
        password,
    }
}

/// `GET /v2/auth` with `query`, as `user` (Basic) or anonymously; the token of a 200 answer.
async fn token_response(base: &str, user: Option<&User>, query: &[(String, String)]) -> String {
    let mut request = client().get(with_query(&format!("{base}/v2/auth"), query));
    if let Some(user) = user {
        request = request.basic_auth(&user.name, Some(&user.password));
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "GET /v2/auth {query:?}: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// `url?k=v&…` with keys and values percent-encoded (everything but RFC 3986's unreserved
/// characters).
fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, query: &[(K, V)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
        .collect();
    if pairs.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{}", pairs.join("&"))
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

/// Pulls every tag of every repository `user` sees and checks each manifest and blob against
/// its digest. Returns the number of blobs verified.
async fn verify_everything(wharf: &Wharf, user: &User) -> usize {
    let c = client();
    let base = &wharf.base;
    let catalog: Value = c
        .get(format!("{base}/v2/_catalog"))
        .bearer_auth(wharf.token(user, &[]).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut verified = 0;
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let token = wharf.pull_token(user, repo).await;
        let tags: Value = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .bearer_auth(&token)
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
                .bearer_auth(&token)
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
                    .bearer_auth(&token)
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
    let user = create_user(&["--data-dir".as_ref(), dir.path().as_os_str()], "acme");
    let wharf = Wharf::start(dir.path()).await;
    let token = wharf.token(&user, &["big"]).await;
    let c = client();
    let first = payload(5 << 20, 1);
    let second = payload(7 << 20, 2);

    let r = c
        .post(format!("{}/v2/acme/big/blobs/uploads/", wharf.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(format!("{}{location}", wharf.base))
        .bearer_auth(&token)
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
    let in_flight = tokio::spawn(async move {
        client()
            .patch(url)
            .bearer_auth(token)
            .body(stalled)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    wharf.kill();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the interrupted request failed"
    );

    let wharf = Wharf::start(dir.path()).await;
    let token = wharf.token(&user, &["big", "again"]).await;
    let r = c
        .get(format!("{}{location}", wharf.base))
        .bearer_auth(&token)
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
        .bearer_auth(&token)
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
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = c
        .get(format!("{}/v2/acme/big/blobs/{digest}", wharf.base))
        .bearer_auth(&token)
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
        .bearer_auth(&token)
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
    let user = create_user(&["--data-dir".as_ref(), dir.path().as_os_str()], "crash");
    let wharf = Wharf::start(dir.path()).await;
    let base = wharf.base.clone();
    let token = wharf.token(&user, &["repo0", "repo1"]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pushers = Vec::new();
    for worker in 0..4u8 {
        let base = base.clone();
        let stop = stop.clone();
        let token = token.clone();
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
                    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).bearer_auth(&token).body(blob.clone()).send().await;
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
                    .bearer_auth(&token)
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
    let verified = verify_everything(&wharf, &user).await;
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
        .bearer_auth(wharf.token(&user, &["after"]).await)
        .body("after the crash")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(wharf);
    verify_storage(dir.path()).await;
}

/// Pushes `body` monolithically to `acme/app` under `digest`.
async fn push_blob(
    c: &Client,
    base: &str,
    token: &str,
    digest: &Digest,
    body: Vec<u8>,
) -> reqwest::Response {
    c.post(format!("{base}/v2/acme/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// `DATABASE_SECRET_KEY` of the tests' Quay-style configurations, which must set one.
const SECRET_KEY: &str = "process-tests-database-secret-key-0123456789";

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
            "DB_URI: sqlite:///{}\nDATABASE_SECRET_KEY: {SECRET_KEY}\n\
             DISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {}\n",
            dir.path().join("wharf.db").display(),
            tiny.0.display()
        ),
    )
    .unwrap();
    let location = ["--config-dir".as_ref(), config.as_os_str()];
    let user = create_user(&location, "acme");
    let wharf = Wharf::start_with(&location).await;
    let token = wharf.token(&user, &["app"]).await;
    let token = token.as_str();
    let c = client();
    let base = &wharf.base;

    let kept = payload(2 << 20, 3);
    let kept_digest = Digest::sha256_of(&kept);
    let r = push_blob(&c, base, token, &kept_digest, kept.clone()).await;
    assert_eq!(r.status(), 201);

    let big = payload(12 << 20, 4);
    let big_digest = Digest::sha256_of(&big);
    let r = push_blob(&c, base, token, &big_digest, big).await;
    assert_eq!(r.status(), 507);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNKNOWN");
    let r = c
        .head(format!("{base}/v2/acme/app/blobs/{big_digest}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing of the failed blob is visible");

    // A chunked upload that runs out of room keeps what it acknowledged.
    let r = c
        .post(format!("{base}/v2/acme/app/blobs/uploads/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let location = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&location)
        .bearer_auth(token)
        .body(payload(4 << 20, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .patch(&location)
        .bearer_auth(token)
        .body(payload(4 << 20, 6))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let r = c.get(&location).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.headers()["range"], format!("0-{}", (4 << 20) - 1));
    // Cancelling frees the room; pushes work again.
    let r = c.delete(&location).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let again = payload(3 << 20, 7);
    let again_digest = Digest::sha256_of(&again);
    let r = push_blob(&c, base, token, &again_digest, again).await;
    assert_eq!(r.status(), 201);

    let r = c
        .get(format!("{base}/v2/acme/app/blobs/{kept_digest}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        kept_digest.matches(&r.bytes().await.unwrap()),
        "earlier blobs are intact"
    );
    drop(wharf);
}
