//! The `/v2` API over the S3 driver, end to end: each test has a `moto_server` of its own
//! (from `storage::testing`) with one bucket, and the registry stores blobs there through
//! `storage::open` of Quay's `S3Storage` entry, as a configured server does. What the bucket
//! holds afterwards is read back through the driver's `list`, and unfinished multipart uploads
//! with S3's `ListMultipartUploads`.

use std::sync::Arc;

use config::StorageDriverConfig;
use db::testing::Engine;
use reqwest::Method;
use storage::testing::TestServer;
use storage::{BlobStore, ObjectInfo, OpenOptions};
use types::Digest;
use wharf_core::Settings;

use crate::harness::{LAYER, OCI_CONFIG, OCI_MANIFEST, TestApp, error_code, header};

const BUCKET: &str = "wharf-s3";
const MIB: usize = 1 << 20;

/// A moto server with one bucket, and the `S3Storage` location on it.
pub struct S3 {
    server: Arc<TestServer>,
    driver: StorageDriverConfig,
}

impl S3 {
    async fn start() -> S3 {
        let server = TestServer::moto();
        let driver = server.s3_location(BUCKET).await;
        S3 {
            server: Arc::new(server),
            driver,
        }
    }

    /// A driver of its own for the location, as every process opens one.
    fn store(&self) -> Arc<dyn BlobStore> {
        let options = OpenOptions {
            location: "s3".into(),
            ..OpenOptions::default()
        };
        storage::open(&self.driver, &options).unwrap()
    }

    fn locations(&self) -> Vec<(String, Arc<dyn BlobStore>)> {
        vec![("s3".to_string(), self.store())]
    }

    async fn app(&self, engine: Engine, settings: Settings) -> TestApp {
        TestApp::on_locations(engine, self.locations(), settings).await
    }

    /// The objects under `prefix` (relative to the location's `storage_path`), sorted.
    async fn objects(&self, prefix: &str) -> Vec<ObjectInfo> {
        let mut found = self.store().list(prefix).await.unwrap();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    }

    /// The keys of the bucket's unfinished multipart uploads (moto answers unsigned requests).
    async fn multipart_uploads(&self) -> Vec<String> {
        self.list_multipart_uploads()
            .await
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// Key and upload id of each unfinished multipart upload (S3's ListMultipartUploads).
    async fn list_multipart_uploads(&self) -> Vec<(String, String)> {
        let xml = self.get_xml(&format!("{BUCKET}?uploads")).await;
        xml.split("<Upload>")
            .skip(1)
            .map(|upload| (element(upload, "Key"), element(upload, "UploadId")))
            .collect()
    }

    /// The sizes of the stored parts of the only unfinished multipart upload (S3's
    /// ListParts), in part order.
    async fn parts(&self) -> Vec<u64> {
        let uploads = self.list_multipart_uploads().await;
        assert_eq!(uploads.len(), 1, "{uploads:?}");
        let (key, id) = &uploads[0];
        let xml = self.get_xml(&format!("{BUCKET}/{key}?uploadId={id}")).await;
        xml.split("<Part>")
            .skip(1)
            .map(|part| element(part, "Size").parse().unwrap())
            .collect()
    }

    async fn get_xml(&self, path: &str) -> String {
        let r = reqwest::get(format!("{}/{path}", self.server.endpoint))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// Asserts that the bucket holds exactly `blobs` under `blobs/`, no upload tails and no
    /// unfinished multipart upload.
    async fn assert_holds(&self, blobs: &[usize]) {
        let mut sizes: Vec<u64> = self
            .objects("blobs/")
            .await
            .iter()
            .map(|o| o.size)
            .collect();
        sizes.sort_unstable();
        let mut expected: Vec<u64> = blobs.iter().map(|&s| s as u64).collect();
        expected.sort_unstable();
        assert_eq!(sizes, expected, "blob objects");
        assert_eq!(self.objects("uploads/").await, vec![], "upload tails");
        assert_eq!(self.multipart_uploads().await, Vec::<String>::new());
    }
}

/// The text of the first `<name>` element in `xml`.
fn element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let after = xml.split(&open).nth(1).unwrap_or_default();
    after.split(&close).next().unwrap_or_default().to_string()
}

/// Settings with direct download off (`FEATURE_PROXY_STORAGE: true`): the registry streams.
fn proxied() -> Settings {
    Settings {
        direct_download: false,
        ..Settings::default()
    }
}

/// `len` bytes that differ from one MiB to the next, so a part in the wrong order shows.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8 ^ (i >> 20) as u8)
        .collect()
}

/// Defines `name::sqlite` and `name::postgres` from
/// `|app: TestApp, s3: S3| async move { ... }`, each on a moto server of its own, which lives
/// until the body is done (even when the body does not use `s3`).
macro_rules! s3_test {
    ($name:ident, $settings:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s3 = S3::start().await;
                let app = s3.app(Engine::Sqlite, $settings).await;
                let server = s3.server.clone();
                ($body)(app, s3).await;
                drop(server);
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let s3 = S3::start().await;
                let app = s3.app(Engine::Postgres, $settings).await;
                let server = s3.server.clone();
                ($body)(app, s3).await;
                drop(server);
            }
        }
    };
}

s3_test!(
    monolithic_pushes,
    proxied(),
    |app: TestApp, s3: S3| async move {
        // Smaller than a part, larger than one (8 MiB parts), and empty.
        let small = bytes(100_000, 1);
        let large = bytes(9 * MIB + 7, 2);
        for body in [&small, &large, &Vec::new()] {
            let digest = app.push_blob("acme/app", body).await;
            let path = format!("/v2/acme/app/blobs/{digest}");
            let r = app.req(Method::HEAD, &path).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "content-length"), body.len().to_string());
            let r = app.get(&path).await;
            assert_eq!(r.status(), 200);
            assert!(r.bytes().await.unwrap() == body[..], "{} bytes", body.len());
        }
        // The same content again stores nothing new: the second object is deleted.
        app.push_blob("acme/app", &small).await;
        s3.assert_holds(&[small.len(), large.len(), 0]).await;
    }
);

s3_test!(
    chunked_push_in_small_exact_and_large_chunks,
    proxied(),
    |app: TestApp, s3: S3| async move {
        let (location, uuid) = app.start_upload("acme/app").await;
        // 5 MiB: a part of exactly the minimum size. 3 MiB: a tail object. 9 MiB: the tail
        // read back plus the chunk, one 8 MiB part and a new tail. 1 byte and 6 MiB: a tail,
        // then a part. The PUT's body is the last part.
        let chunks = [5 * MIB, 3 * MIB, 9 * MIB, 1, 6 * MIB];
        // Parts and whether a tail is stored after each chunk.
        let progress = [(1, false), (1, true), (2, true), (2, true), (3, true)];
        let mut whole = Vec::new();
        for (i, len) in chunks.into_iter().enumerate() {
            let chunk = bytes(len, i as u32);
            let start = whole.len();
            whole.extend_from_slice(&chunk);
            let r = app
                .req(Method::PATCH, &location)
                .header("content-range", format!("{start}-{}", whole.len() - 1))
                .body(chunk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "chunk {i}: {}", r.text().await.unwrap());
            assert_eq!(header(&r, "range"), format!("0-{}", whole.len() - 1));
            // What the bucket holds now: finished parts (all but the last at least 5 MiB)
            // and the tail this request wrote (`tail-<generation>`), adding up to what was
            // sent. Older tails stay until the upload completes.
            let parts = s3.parts().await;
            let (expected_parts, has_tail) = progress[i];
            assert_eq!(parts.len(), expected_parts, "chunk {i}: parts {parts:?}");
            assert!(parts.iter().all(|&p| p >= 5 * MIB as u64), "{parts:?}");
            let tail = format!("uploads/{uuid}/tail-{}", i + 1);
            let tail_size = match s3.objects(&tail).await.as_slice() {
                [] => 0,
                [found] => found.size,
                more => panic!("{more:?}"),
            };
            assert_eq!(tail_size > 0, has_tail, "chunk {i}: {tail}");
            assert_eq!(parts.iter().sum::<u64>() + tail_size, whole.len() as u64);
        }
        let last = bytes(100_000, 9);
        whole.extend_from_slice(&last);
        let digest = Digest::sha256_of(&whole);
        let r = app
            .req(Method::PUT, &format!("{location}?digest={digest}"))
            .body(last)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        let r = app.get(&format!("/v2/acme/app/blobs/{digest}")).await;
        assert_eq!(header(&r, "content-length"), whole.len().to_string());
        let got = r.bytes().await.unwrap();
        assert_eq!(
            Digest::sha256_of(&got),
            digest,
            "the stored bytes hash to the digest"
        );
        s3.assert_holds(&[whole.len()]).await;
    }
);

s3_test!(
    an_upload_started_on_one_node_finishes_on_another,
    proxied(),
    |app: TestApp, s3: S3| async move {
        // Node one: a 6 MiB part, then a 1 MiB tail.
        let (location, uuid) = app.start_upload("acme/app").await;
        let mut whole = Vec::new();
        for (i, len) in [6 * MIB, MIB].into_iter().enumerate() {
            let chunk = bytes(len, i as u32);
            whole.extend_from_slice(&chunk);
            let r = app
                .req(Method::PATCH, &location)
                .body(chunk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        // Node two: its own Registry, Auth and S3 driver over the same database and bucket.
        let node = app.node(s3.locations(), proxied()).await;
        let r = node
            .req(Method::GET, "acme/app", &location)
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "range"), format!("0-{}", whole.len() - 1));
        assert_eq!(header(&r, "docker-upload-uuid"), uuid);
        // It reads node one's tail back and continues: 2 MiB (a tail again), then the rest.
        let chunk = bytes(2 * MIB, 7);
        let start = whole.len();
        whole.extend_from_slice(&chunk);
        let r = node
            .req(Method::PATCH, "acme/app", &location)
            .await
            .header("content-range", format!("{start}-{}", whole.len() - 1))
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let last = bytes(5 * MIB + 3, 8);
        whole.extend_from_slice(&last);
        let digest = Digest::sha256_of(&whole);
        let r = node
            .req(
                Method::PUT,
                "acme/app",
                &format!("{location}?digest={digest}"),
            )
            .await
            .body(last)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        // Both nodes serve the blob.
        let path = format!("/v2/acme/app/blobs/{digest}");
        let r = app.get(&path).await;
        assert!(r.bytes().await.unwrap() == whole[..], "read on node one");
        let r = node
            .req(Method::GET, "acme/app", &path)
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap() == whole[..], "read on node two");
        s3.assert_holds(&[whole.len()]).await;
    }
);

s3_test!(
    manifests_push_and_pull,
    proxied(),
    |app: TestApp, s3: S3| async move {
        let big = bytes(6 * MIB, 3);
        let small = b"a small layer".to_vec();
        let (manifest, digest) = app.push_image("acme/app", "v1", &[&big, &small]).await;
        let raw = serde_json::to_vec(&manifest).unwrap();
        for reference in ["v1".to_string(), digest.to_string()] {
            let r = app
                .get(&format!("/v2/acme/app/manifests/{reference}"))
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
            assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
            assert_eq!(r.bytes().await.unwrap(), raw);
        }
        // A client's pull: the config and each layer by the manifest's descriptors.
        let config = &manifest["config"];
        assert_eq!(config["mediaType"], OCI_CONFIG);
        let mut sizes = vec![config["size"].as_u64().unwrap() as usize];
        for (descriptor, body) in manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip([&big, &small])
        {
            assert_eq!(descriptor["mediaType"], LAYER);
            let r = app
                .get(&format!(
                    "/v2/acme/app/blobs/{}",
                    descriptor["digest"].as_str().unwrap()
                ))
                .await;
            assert_eq!(r.status(), 200);
            assert!(r.bytes().await.unwrap() == body[..]);
            sizes.push(body.len());
        }
        let r = app
            .get(&format!(
                "/v2/acme/app/blobs/{}",
                config["digest"].as_str().unwrap()
            ))
            .await;
        assert_eq!(r.bytes().await.unwrap().len(), sizes[0]);
        s3.assert_holds(&sizes).await;
    }
);

s3_test!(
    direct_download_redirects_to_a_signed_url,
    Settings::default(),
    |app: TestApp, s3: S3| async move {
        let body = bytes(9 * MIB, 4);
        let digest = app.push_blob("acme/app", &body).await;
        let path = format!("/v2/acme/app/blobs/{digest}");
        let r = app.get(&path).await;
        assert_eq!(r.status(), 302);
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        let url = header(&r, "location");
        assert!(
            url.starts_with(&format!("{}/{BUCKET}/", s3.server.endpoint)),
            "{url}"
        );
        assert!(url.contains("X-Amz-Signature="), "{url}");
        // HEAD answers itself: it has no body to redirect.
        let r = app.req(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-length"), body.len().to_string());

        // A plain client, without the registry's token, fetches the object, and ranges over it
        // (here across the boundary of the first 8 MiB part).
        let plain = reqwest::Client::new();
        let r = plain.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap() == body[..]);
        let (start, end) = (8 * MIB - 10, 8 * MIB + 9);
        let r = plain
            .get(&url)
            .header("range", format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap(), &body[start..=end]);
    }
);

s3_test!(
    proxied_downloads_stream_with_ranges,
    proxied(),
    |app: TestApp, s3: S3| async move {
        let body = bytes(9 * MIB, 5);
        let size = body.len();
        let digest = app.push_blob("acme/app", &body).await;
        let path = format!("/v2/acme/app/blobs/{digest}");
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-length"), size.to_string());
        assert_eq!(header(&r, "accept-ranges"), "bytes");
        assert!(r.bytes().await.unwrap() == body[..]);

        // Across the first part's end, a suffix, and an open end.
        let cases = [
            (
                format!("bytes={}-{}", 8 * MIB - 10, 8 * MIB + 9),
                8 * MIB - 10,
                8 * MIB + 9,
            ),
            ("bytes=-5".to_string(), size - 5, size - 1),
            (format!("bytes={}-", size - 3), size - 3, size - 1),
            ("bytes=0-0".to_string(), 0, 0),
        ];
        for (range, start, end) in cases {
            let r = get_range(&app, &path, &range).await;
            assert_eq!(r.status(), 206, "{range}");
            assert_eq!(
                header(&r, "content-range"),
                format!("bytes {start}-{end}/{size}")
            );
            assert_eq!(header(&r, "content-length"), (end - start + 1).to_string());
            assert_eq!(r.bytes().await.unwrap(), &body[start..=end], "{range}");
        }
        for range in [
            format!("bytes={size}-"),
            format!("bytes={}-{}", size, size + 10),
        ] {
            let r = get_range(&app, &path, &range).await;
            assert_eq!(r.status(), 416, "{range}");
            assert_eq!(header(&r, "content-range"), format!("bytes */{size}"));
        }
        s3.assert_holds(&[size]).await;
    }
);

async fn get_range(app: &TestApp, path: &str, range: &str) -> reqwest::Response {
    app.req(Method::GET, path)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

s3_test!(
    cancel_aborts_the_multipart_upload_and_its_tails,
    proxied(),
    |app: TestApp, s3: S3| async move {
        let (location, uuid) = app.start_upload("acme/app").await;
        for len in [6 * MIB, MIB] {
            let r = app
                .req(Method::PATCH, &location)
                .body(bytes(len, 6))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        assert_eq!(s3.multipart_uploads().await.len(), 1, "a part is stored");
        let tails = s3.objects(&format!("uploads/{uuid}/")).await;
        assert_eq!(tails.len(), 1, "a tail is stored: {tails:?}");

        let r = app.req(Method::DELETE, &location).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            s3.objects("").await,
            vec![],
            "nothing is left in the bucket"
        );
        s3.assert_holds(&[]).await;
        let r = app.get(&location).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
);

s3_test!(
    a_digest_mismatch_leaves_no_object,
    proxied(),
    |app: TestApp, s3: S3| async move {
        let wrong = Digest::sha256_of(b"something else");
        // Monolithic, larger than a part.
        let r = app
            .req(
                Method::POST,
                &format!("/v2/acme/app/blobs/uploads/?digest={wrong}"),
            )
            .body(bytes(9 * MIB, 7))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        s3.assert_holds(&[]).await;

        // Chunked: a part and a tail, then a PUT naming the wrong digest.
        let (location, _) = app.start_upload("acme/app").await;
        for len in [6 * MIB, MIB] {
            app.req(Method::PATCH, &location)
                .body(bytes(len, 8))
                .send()
                .await
                .unwrap();
        }
        let r = app
            .req(Method::PUT, &format!("{location}?digest={wrong}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_eq!(app.get(&location).await.status(), 404);
        s3.assert_holds(&[]).await;

        // SHA-512: the session hashed SHA-256, so the object is completed, rehashed and
        // deleted again.
        let (location, _) = app.start_upload("acme/app").await;
        app.req(Method::PATCH, &location)
            .body(bytes(6 * MIB, 9))
            .send()
            .await
            .unwrap();
        let wrong512 = crate::harness::sha512(b"something else");
        let r = app
            .req(Method::PUT, &format!("{location}?digest={wrong512}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_eq!(
            s3.objects("").await,
            vec![],
            "nothing is left in the bucket"
        );
        s3.assert_holds(&[]).await;
    }
);

s3_test!(
    concurrent_chunks_on_two_nodes_keep_the_winners_bytes,
    proxied(),
    |app: TestApp, s3: S3| async move {
        // Two PATCHes of one session at once, on two nodes (a client retry through a load
        // balancer): the one that persists its progress first wins, the other is refused, and
        // what the loser wrote to the bucket must not end up in the blob. Both requests end
        // with a tail here (less than 5 MiB); were both to write a part, the loser would
        // overwrite part 1 and the upload could not be completed (S3 checks the ETags).
        for size in [MIB, 3 * MIB] {
            let (location, _) = app.start_upload("acme/app").await;
            let node = app.node(s3.locations(), proxied()).await;
            // The loser starts first and stalls after its first frame.
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
            let body = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, std::io::Error>(bytes::Bytes::from(b)), rx))
            });
            let loser = node
                .req(Method::PATCH, "acme/app", &location)
                .await
                .body(reqwest::Body::wrap_stream(body));
            let loser = tokio::spawn(async move { loser.send().await.unwrap() });
            tx.send(vec![b'b'; 1000]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            // The winner sends everything and commits.
            let winner = vec![b'a'; size];
            let r = app
                .req(Method::PATCH, &location)
                .body(winner.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            // The loser sends more than the winner did, then ends.
            tx.send(vec![b'b'; size + MIB]).await.unwrap();
            drop(tx);
            let r = loser.await.unwrap();
            assert_eq!(r.status(), 400, "the loser is refused");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");

            let digest = Digest::sha256_of(&winner);
            let r = app
                .req(Method::PUT, &format!("{location}?digest={digest}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{size}: {}", r.text().await.unwrap());
            let got = app
                .get(&format!("/v2/acme/app/blobs/{digest}"))
                .await
                .bytes()
                .await
                .unwrap();
            assert!(
                Digest::sha256_of(&got) == digest,
                "{size} bytes: the blob {digest} holds {} bytes starting {:?}",
                got.len(),
                String::from_utf8_lossy(&got[..8.min(got.len())])
            );
        }
        // The loser's tails went with the completed uploads.
        s3.assert_holds(&[MIB, 3 * MIB]).await;
    }
);
