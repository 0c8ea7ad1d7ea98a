//! What every driver must do, written once against `dyn BlobStore`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use storage::{BlobStore, ByteStream, ObjectInfo, StorageError, UploadState};

use crate::{Fixture, Kind};

const MIB: usize = 1 << 20;

/// Bytes that differ at every position, so a misplaced or repeated piece shows.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stream_of(bytes: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<storage::Result<Bytes>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces).boxed()
}

async fn read(
    store: &dyn BlobStore,
    key: &str,
    range: Option<std::ops::RangeInclusive<u64>>,
) -> Vec<u8> {
    let mut stream = store.get(key, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// The state as the database keeps it: a JSON string.
fn through_db(state: &UploadState) -> UploadState {
    serde_json::from_str(&state.to_string()).unwrap()
}

/// One request: a writer from the persisted state at `offset`, the writes, the new state.
async fn request(
    store: &dyn BlobStore,
    id: &str,
    state: &UploadState,
    offset: u64,
    writes: &[&[u8]],
) -> UploadState {
    let mut writer = store
        .upload_writer(id, &through_db(state), offset)
        .await
        .unwrap();
    for w in writes {
        writer.write(Bytes::copy_from_slice(w)).await.unwrap();
    }
    through_db(&writer.finish().await.unwrap())
}

/// `body` cut into `size`-byte writes.
fn pieces(body: &[u8], size: usize) -> Vec<&[u8]> {
    body.chunks(size).collect()
}

fn upload_id(name: &str) -> String {
    // Like the registry's: a UUID-shaped id, unique per test.
    format!("{name}-0000-4000-8000-000000000000")
}

pub async fn put_get_ranges_stat_list_delete(f: Fixture) {
    let store = f.store.as_ref();
    let one = data(1000, 1);
    store
        .put("objects/a/one", stream_of(&one, 97))
        .await
        .unwrap();
    store
        .put("objects/a/two", stream_of(b"0123456789", 3))
        .await
        .unwrap();
    store
        .put("objects/ab/three", stream_of(b"x", 1))
        .await
        .unwrap();
    store.put("objects/empty", stream_of(b"", 1)).await.unwrap();

    assert_eq!(read(store, "objects/a/one", None).await, one);
    assert_eq!(
        read(store, "objects/a/one", Some(10..=19)).await,
        &one[10..20]
    );
    // The last 7 bytes, asked both ways; an open end; an end past the object.
    assert_eq!(
        read(store, "objects/a/one", Some(993..=999)).await,
        &one[993..]
    );
    assert_eq!(
        read(store, "objects/a/one", Some(993..=u64::MAX)).await,
        &one[993..]
    );
    assert_eq!(
        read(store, "objects/a/one", Some(5..=u64::MAX)).await,
        &one[5..]
    );
    assert_eq!(
        read(store, "objects/a/one", Some(990..=5000)).await,
        &one[990..]
    );
    assert_eq!(read(store, "objects/a/one", Some(0..=0)).await, &one[..1]);
    // A range that starts past the end is empty, not an error.
    assert_eq!(read(store, "objects/a/one", Some(1000..=1010)).await, b"");
    assert_eq!(read(store, "objects/empty", None).await, b"");

    assert_eq!(store.stat("objects/a/one").await.unwrap(), Some(1000));
    assert_eq!(store.stat("objects/empty").await.unwrap(), Some(0));
    assert_eq!(store.stat("objects/a/none").await.unwrap(), None);
    // A "directory" is not an object.
    assert_eq!(store.stat("objects/a").await.unwrap(), None);

    let list = |prefix: &'static str| async move {
        let mut found = store.list(prefix).await.unwrap();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    };
    let info = |key: &str, size| ObjectInfo {
        key: key.to_owned(),
        size,
    };
    assert_eq!(
        list("objects/a/").await,
        [info("objects/a/one", 1000), info("objects/a/two", 10)]
    );
    // Keys match by string prefix, not by whole folder names.
    assert_eq!(
        list("objects/a").await,
        [
            info("objects/a/one", 1000),
            info("objects/a/two", 10),
            info("objects/ab/three", 1)
        ]
    );
    assert_eq!(list("objects/a/o").await, [info("objects/a/one", 1000)]);
    assert_eq!(list("objects/").await.len(), 4);
    assert_eq!(list("nothing/").await, []);

    // Overwriting replaces.
    store
        .put("objects/a/two", stream_of(b"new", 3))
        .await
        .unwrap();
    assert_eq!(read(store, "objects/a/two", None).await, b"new");

    store.delete("objects/a/one").await.unwrap();
    store.delete("objects/a/one").await.unwrap();
    assert_eq!(store.stat("objects/a/one").await.unwrap(), None);
    assert!(matches!(
        store.get("objects/a/one", None).await,
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(list("objects/a/").await, [info("objects/a/two", 3)]);
}

pub async fn large_put_round_trips(f: Fixture) {
    let store = f.store.as_ref();
    // Larger than a part, in client-sized pieces: a multipart put on object stores.
    let body = data(20 * MIB + 3, 2);
    store
        .put("blobs/large", stream_of(&body, MIB))
        .await
        .unwrap();
    assert_eq!(
        store.stat("blobs/large").await.unwrap(),
        Some(body.len() as u64)
    );
    assert!(read(store, "blobs/large", None).await == body);
    let from = 17 * MIB as u64;
    assert!(read(store, "blobs/large", Some(from..=u64::MAX)).await == body[from as usize..]);
    // A failing body stores nothing.
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(data(9 * MIB, 3))),
        Err(StorageError::Full("test".into())),
    ])
    .boxed();
    assert!(store.put("blobs/failed", failing).await.is_err());
    assert_eq!(store.stat("blobs/failed").await.unwrap(), None);
}

pub async fn chunked_upload_across_requests(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("chunked");
    let body = data(3 * MIB + 700_000 + 9 * MIB + 5 + 1 + 6 * MIB + 12_345, 4);
    let cuts = [
        3 * MIB + 700_000, // many small writes: stays below one part
        9 * MIB + 5,       // one large write and a few small ones: a part and a tail
        1,                 // a single byte
        6 * MIB + 12_345,  // 64 KiB writes
    ];
    let state = store.begin_upload(&id).await.unwrap();
    let mut state = through_db(&state);
    let mut offset = 0usize;
    for (i, len) in cuts.into_iter().enumerate() {
        let chunk = &body[offset..offset + len];
        let writes: Vec<&[u8]> = match i {
            0 => pieces(chunk, 37 * 1024),
            1 => {
                let (big, rest) = chunk.split_at(9 * MIB);
                let mut w = vec![big];
                w.extend(pieces(rest, 2));
                w
            }
            2 => vec![chunk],
            _ => pieces(chunk, 64 * 1024),
        };
        state = request(store, &id, &state, offset as u64, &writes).await;
        offset += len;
    }
    let key = store
        .complete_upload(&id, &through_db(&state))
        .await
        .unwrap();
    assert!(key.starts_with("blobs/"), "{key}");
    assert!(key.ends_with(&id), "{key}");
    assert_eq!(store.stat(&key).await.unwrap(), Some(body.len() as u64));
    assert!(read(store, &key, None).await == body);
    // Nothing of the session is left beside the object.
    assert_eq!(store.list("uploads/").await.unwrap(), []);
}

pub async fn resuming_discards_unpersisted_bytes(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("resume");
    let first = data(6 * MIB, 5);
    let st0 = store.begin_upload(&id).await.unwrap();
    let st1 = request(store, &id, &st0, 0, &[b"hello"]).await;
    let st2 = request(store, &id, &st1, 5, &pieces(&first, MIB)).await;
    // A request that stored bytes (a tail, and a whole part on object stores) but never got
    // its state persisted: a crash, a lost database write.
    let garbage = data(7 * MIB, 6);
    let _lost = request(
        store,
        &id,
        &st2,
        5 + first.len() as u64,
        &pieces(&garbage, MIB),
    )
    .await;
    // The next request starts from the persisted state.
    let second = data(7 * MIB + 11, 7);
    let offset = 5 + first.len() as u64;
    let st3 = request(store, &id, &st2, offset, &pieces(&second, 100_000)).await;
    let key = store.complete_upload(&id, &st3).await.unwrap();
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&first);
    expected.extend_from_slice(&second);
    assert_eq!(store.stat(&key).await.unwrap(), Some(expected.len() as u64));
    assert!(read(store, &key, None).await == expected);
}

pub async fn resuming_at_an_older_offset_cuts_the_upload(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("older");
    let st0 = store.begin_upload(&id).await.unwrap();
    let st1 = request(store, &id, &st0, 0, &[b"hello, ", b"garbage"]).await;
    // Only 5 bytes count: the rest of the stored bytes go.
    let st2 = request(store, &id, &st1, 5, &[b" world"]).await;
    let key = store.complete_upload(&id, &st2).await.unwrap();
    assert_eq!(read(store, &key, None).await, b"hello world");
}

pub async fn boundary_sizes(f: Fixture) {
    let store = f.store.as_ref();
    // Nothing written at all.
    let id = upload_id("zero");
    let st = store.begin_upload(&id).await.unwrap();
    let key = store.complete_upload(&id, &through_db(&st)).await.unwrap();
    assert_eq!(store.stat(&key).await.unwrap(), Some(0));
    assert_eq!(read(store, &key, None).await, b"");
    // A request with an empty body.
    let id = upload_id("empty");
    let st = store.begin_upload(&id).await.unwrap();
    let st = request(store, &id, &st, 0, &[b""]).await;
    let key = store.complete_upload(&id, &st).await.unwrap();
    assert_eq!(store.stat(&key).await.unwrap(), Some(0));

    // Exactly the minimum part size, and one byte more, in one request and split in two.
    for (name, len) in [("five", 5 * MIB), ("fiveplus", 5 * MIB + 1)] {
        let body = data(len, len as u64);
        let id = upload_id(name);
        let st = store.begin_upload(&id).await.unwrap();
        let st = request(store, &id, &st, 0, &pieces(&body, 256 * 1024)).await;
        let key = store.complete_upload(&id, &st).await.unwrap();
        assert_eq!(store.stat(&key).await.unwrap(), Some(len as u64), "{name}");
        assert!(read(store, &key, None).await == body, "{name}");

        let id = upload_id(&format!("{name}split"));
        let st = store.begin_upload(&id).await.unwrap();
        let st = request(store, &id, &st, 0, &[&body[..len - 1]]).await;
        let st = request(store, &id, &st, len as u64 - 1, &[&body[len - 1..]]).await;
        let key = store.complete_upload(&id, &st).await.unwrap();
        assert!(read(store, &key, None).await == body, "{name} split");
    }
}

pub async fn abort_discards_the_upload(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("abort");
    let st = store.begin_upload(&id).await.unwrap();
    let body = data(6 * MIB + 100, 8);
    let st = request(store, &id, &st, 0, &pieces(&body, MIB)).await;
    let st = request(store, &id, &st, body.len() as u64, &[b"tail"]).await;
    store.abort_upload(&id, &st).await.unwrap();
    assert_eq!(store.list("uploads/").await.unwrap(), []);
    assert_eq!(store.list("blobs/").await.unwrap(), []);
    // Aborting again, or with a state that cannot be read, is not an error.
    store.abort_upload(&id, &st).await.unwrap();
    store.abort_upload(&id, &UploadState::Null).await.unwrap();
    if f.kind != Kind::Local {
        // The multipart upload is gone.
        assert!(store.complete_upload(&id, &st).await.is_err());
    }
    // Aborting an upload that never began.
    let other = upload_id("never");
    let st = store.begin_upload(&upload_id("began")).await.unwrap();
    store
        .abort_upload(&other, &UploadState::Null)
        .await
        .unwrap();
    store.abort_upload(&upload_id("began"), &st).await.unwrap();
}

pub async fn download_urls(f: Fixture) {
    let store = f.store.as_ref();
    let body = data(100_000, 9);
    store
        .put("blobs/dl/object", stream_of(&body, 10_000))
        .await
        .unwrap();
    let url = store
        .download_url("blobs/dl/object", Duration::from_secs(60))
        .await
        .unwrap();
    match f.kind {
        Kind::Local => assert_eq!(url, None),
        Kind::S3 | Kind::Azure => {
            let url = url.unwrap();
            let signed = match f.kind {
                Kind::S3 => "X-Amz-Expires=60",
                _ => "sig=",
            };
            assert!(url.contains(signed), "{url}");
            assert!(
                url.contains("/wharf-test/datastorage/registry/blobs/dl/object?"),
                "{url}"
            );
            let response = reqwest::get(&url).await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            assert!(response.bytes().await.unwrap() == body);
        }
    }
}

pub async fn missing_objects(f: Fixture) {
    let store = f.store.as_ref();
    for range in [None, Some(0..=10), Some(5..=u64::MAX)] {
        assert!(
            matches!(
                store.get("blobs/zz/missing", range.clone()).await,
                Err(StorageError::NotFound(_))
            ),
            "{range:?}"
        );
    }
    assert_eq!(store.stat("blobs/zz/missing").await.unwrap(), None);
    store.delete("blobs/zz/missing").await.unwrap();
    assert_eq!(store.list("blobs/zz/").await.unwrap(), []);
}

pub async fn offsets_outside_the_stored_bytes_are_refused(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("offsets");
    let st = store.begin_upload(&id).await.unwrap();
    let body = data(6 * MIB, 10);
    let st = request(store, &id, &st, 0, &[&body]).await;
    // Past the stored bytes, and inside a finished part (parts cannot be read back).
    for offset in [6 * MIB as u64 + 1, 10] {
        assert!(
            matches!(
                store.upload_writer(&id, &st, offset).await,
                Err(StorageError::InvalidUpload { .. })
            ),
            "{offset}"
        );
    }
    // Another driver's state (LocalStore's is null).
    assert!(matches!(
        store.upload_writer(&id, &UploadState::Null, 0).await,
        Err(StorageError::InvalidUpload { .. })
    ));
}

pub async fn completing_twice_returns_the_same_object(f: Fixture) {
    let store = f.store.as_ref();
    let id = upload_id("twice");
    let st = store.begin_upload(&id).await.unwrap();
    let st = request(store, &id, &st, 0, &[b"some bytes"]).await;
    let key = store.complete_upload(&id, &st).await.unwrap();
    // The caller crashed before recording the completion and tries again.
    assert_eq!(store.complete_upload(&id, &st).await.unwrap(), key);
    assert_eq!(read(store, &key, None).await, b"some bytes");
}

pub async fn measure_100_mib(f: Fixture) {
    let store = f.store.as_ref();
    let body = data(100 * MIB, 11);
    let started = Instant::now();
    store
        .put("bench/put", stream_of(&body, 64 * 1024))
        .await
        .unwrap();
    let put = started.elapsed();
    let started = Instant::now();
    let mut stream = store.get("bench/put", None).await.unwrap();
    let mut read_bytes = 0;
    while let Some(chunk) = stream.next().await {
        read_bytes += chunk.unwrap().len();
    }
    let get = started.elapsed();
    assert_eq!(read_bytes, body.len());
    // The same bytes as a chunked upload: 20 requests of 5 MiB in 64 KiB writes.
    let id = upload_id("bench");
    let started = Instant::now();
    let mut st = store.begin_upload(&id).await.unwrap();
    for (i, request_body) in body.chunks(5 * MIB).enumerate() {
        st = request(
            store,
            &id,
            &st,
            (i * 5 * MIB) as u64,
            &pieces(request_body, 64 * 1024),
        )
        .await;
    }
    store.complete_upload(&id, &st).await.unwrap();
    let upload = started.elapsed();
    let mib_s = |d: Duration| 100.0 / d.as_secs_f64();
    println!(
        "{:?} 100 MiB: put {put:?} ({:.0} MiB/s), get {get:?} ({:.0} MiB/s), \
         chunked upload in 20 requests {upload:?} ({:.0} MiB/s)",
        f.kind,
        mib_s(put),
        mib_s(get),
        mib_s(upload)
    );
}
