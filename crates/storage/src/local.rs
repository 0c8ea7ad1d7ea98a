//! The local filesystem driver (Quay's `LocalStorage`).
//!
//! Layout under the root: `uploads/<upload id>` holds in-progress uploads; a completed upload is
//! fsynced and renamed to `blobs/<first two chars>/<upload id>`, then the directory is fsynced, so
//! a committed object is whole. Writes run on the blocking pool in 1 MiB pieces, one piece in flight
//! while the caller hashes the next, so hashing and disk writes overlap.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::keys::{blob_key, safe_name};
use crate::{BlobStore, ByteStream, ObjectInfo, Result, StorageError, UploadState, UploadWriter};

const WRITE_PIECE: usize = 1 << 20;
/// Written bytes after which the writer flushes to disk while the upload goes on, so the disk
/// works in parallel with the network and the hasher instead of all at once at the end.
const SYNC_EVERY: u64 = 32 << 20;
const READ_PIECE: usize = 512 << 10;

/// Blobs in a directory on a local filesystem.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (and creates) the storage directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["uploads", "blobs"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|source| io_err(&path, source))?;
        }
        Ok(LocalStore { root })
    }

    fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.root.join("uploads").join(safe_name(upload_id))
    }

    fn object_path(&self, key: &str) -> PathBuf {
        // Keys are produced by this driver (`blobs/xx/<id>`); refuse anything that could escape
        // the root so a corrupt row can never make the registry read or delete other files.
        let clean = key
            .split('/')
            .filter(|c| !c.is_empty() && *c != "." && *c != "..");
        let mut path = self.root.clone();
        path.extend(clean);
        path
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    use std::io::ErrorKind;
    let key = path.display().to_string();
    match source.kind() {
        ErrorKind::NotFound => StorageError::NotFound(key),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => StorageError::Full(key),
        _ => StorageError::Io { key, source },
    }
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| io_err(path, e)),
        Err(join) => Err(io_err(path, std::io::Error::other(join.to_string()))),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl BlobStore for LocalStore {
    async fn begin_upload(&self, upload_id: &str) -> Result<UploadState> {
        let path = self.upload_path(upload_id);
        let p = path.clone();
        blocking(&path, move || File::create(&p).map(drop)).await?;
        Ok(UploadState::Null)
    }

    async fn upload_writer(
        &self,
        upload_id: &str,
        _state: &UploadState,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>> {
        let path = self.upload_path(upload_id);
        let p = path.clone();
        let file = blocking(&path, move || {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)?;
            f.set_len(offset)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await?;
        Ok(Box::new(LocalWriter {
            path,
            file: Some(file),
            pending: None,
            unsynced: 0,
            buffer: BytesMut::with_capacity(WRITE_PIECE),
        }))
    }

    async fn complete_upload(&self, upload_id: &str, _state: &UploadState) -> Result<String> {
        let key = blob_key(upload_id);
        let from = self.upload_path(upload_id);
        let to = self.object_path(&key);
        let p = from.clone();
        blocking(&from, move || {
            let dir = to.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&dir)?;
            match File::open(&p) {
                Ok(file) => file.sync_all()?,
                // Completed by an earlier attempt whose caller did not record it (a crash
                // between the rename and the database commit): the object is already there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.is_file() => {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            fs::rename(&p, &to)?;
            sync_dir(&dir)
        })
        .await?;
        Ok(key)
    }

    async fn abort_upload(&self, upload_id: &str, _state: &UploadState) -> Result<()> {
        remove(self.upload_path(upload_id)).await
    }

    async fn get(&self, key: &str, range: Option<RangeInclusive<u64>>) -> Result<ByteStream> {
        read_file(self.object_path(key), range).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        remove(self.object_path(key)).await
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>> {
        let path = self.object_path(key);
        let p = path.clone();
        blocking(&path, move || match fs::metadata(&p) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<()> {
        // Written under a private temporary name, then renamed: readers never see a partial
        // object, and a crash leaves only a stray temporary file.
        let to = self.object_path(key);
        let temp = self
            .root
            .join("uploads")
            .join(format!("put-{}", uuid_like(key)));
        let mut writer = LocalWriter::create(temp.clone()).await?;
        let mut body = body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => writer.write(chunk).await?,
                Err(e) => {
                    drop(writer);
                    let _ = remove(temp).await;
                    return Err(e);
                }
            }
        }
        Box::new(writer).finish().await?;
        let from = temp.clone();
        blocking(&temp, move || {
            let dir = to.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&dir)?;
            fs::rename(&from, &to)?;
            sync_dir(&dir)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(&self.root, move || {
            let mut found = Vec::new();
            walk(&root, &root, &prefix, &mut found)?;
            Ok(found)
        })
        .await
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.object_path(key))
    }
}

/// Collects the files under `dir` whose key (path relative to `root`, `/`-separated) starts with
/// `prefix`, skipping directories that cannot hold such keys.
fn walk(root: &Path, dir: &Path, prefix: &str, found: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let key = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, found)?;
            }
        } else if kind.is_file() && key.starts_with(prefix) {
            found.push(ObjectInfo {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

/// A file-name-safe, practically unique name for a temporary copy of `key`.
fn uuid_like(key: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}-{}",
        safe_name(&key.replace('/', "-")),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn remove(path: PathBuf) -> Result<()> {
    let p = path.clone();
    blocking(&path, move || match fs::remove_file(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await
}

/// Streams a file (or an inclusive range of it) from a blocking reader, a few pieces ahead of the
/// consumer.
async fn read_file(path: PathBuf, range: Option<RangeInclusive<u64>>) -> Result<ByteStream> {
    let p = path.clone();
    let (file, len) = blocking(&path, move || {
        let file = File::open(&p)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    })
    .await?;
    let (start, end) = match range {
        Some(r) => (*r.start(), (*r.end()).min(len.saturating_sub(1))),
        None => (0, len.saturating_sub(1)),
    };
    let mut remaining = if len == 0 || start > end {
        0
    } else {
        end - start + 1
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(io_err(&path, e)));
            return;
        }
        while remaining > 0 {
            let want = remaining.min(READ_PIECE as u64) as usize;
            // read_to_end fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(want);
            match (&mut file).take(want as u64).read_to_end(&mut buf) {
                Ok(n) if n == want => {
                    remaining -= want as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return; // the client went away
                    }
                }
                Ok(_) => {
                    let short = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                    let _ = tx.blocking_send(Err(io_err(&path, short)));
                    return;
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(io_err(&path, e)));
                    return;
                }
            }
        }
    });
    Ok(tokio_stream(rx).boxed())
}

fn tokio_stream(
    mut rx: mpsc::Receiver<Result<Bytes>>,
) -> impl futures::Stream<Item = Result<Bytes>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct LocalWriter {
    path: PathBuf,
    file: Option<File>,
    pending: Option<JoinHandle<std::io::Result<File>>>,
    buffer: BytesMut,
    /// Bytes written since the last flush to disk.
    unsynced: u64,
}

impl LocalWriter {
    /// A writer of a new file at `path`.
    async fn create(path: PathBuf) -> Result<LocalWriter> {
        let p = path.clone();
        let file = blocking(&path, move || File::create(&p)).await?;
        Ok(LocalWriter {
            path,
            file: Some(file),
            pending: None,
            unsynced: 0,
            buffer: BytesMut::with_capacity(WRITE_PIECE),
        })
    }

    /// Waits for the piece in flight and takes the file back.
    async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.pending.take() {
            let file = match task.await {
                Ok(r) => r.map_err(|e| io_err(&self.path, e))?,
                Err(join) => {
                    return Err(io_err(&self.path, std::io::Error::other(join.to_string())));
                }
            };
            self.file = Some(file);
        }
        Ok(())
    }

    /// Starts writing the buffered bytes on the blocking pool, without waiting for it.
    async fn launch(&mut self) -> Result<()> {
        self.settle().await?;
        let piece = self.buffer.split().freeze();
        let Some(mut file) = self.file.take() else {
            return Err(io_err(
                &self.path,
                std::io::Error::other("writer already failed"),
            ));
        };
        self.unsynced += piece.len() as u64;
        let sync = self.unsynced >= SYNC_EVERY;
        if sync {
            self.unsynced = 0;
        }
        self.pending = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&piece)?;
            if sync {
                file.sync_data()?;
            }
            Ok(file)
        }));
        Ok(())
    }
}

#[async_trait::async_trait]
impl UploadWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&data);
        if self.buffer.len() >= WRITE_PIECE {
            self.launch().await?;
            self.buffer.reserve(WRITE_PIECE);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<UploadState> {
        if !self.buffer.is_empty() {
            self.launch().await?;
        }
        self.settle().await?;
        if let Some(file) = self.file.take() {
            blocking(&self.path, move || file.sync_data()).await?;
        }
        Ok(UploadState::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[tokio::test]
    async fn upload_in_pieces_then_read_back_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let body = data(3 * WRITE_PIECE + 123);
        let st = store.begin_upload("u1").await.unwrap();
        let mut w = store.upload_writer("u1", &st, 0).await.unwrap();
        for chunk in body[..WRITE_PIECE + 5].chunks(70_000) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let st = w.finish().await.unwrap();
        // A second request continues where the first stopped.
        let mut w = store
            .upload_writer("u1", &st, (WRITE_PIECE + 5) as u64)
            .await
            .unwrap();
        w.write(Bytes::copy_from_slice(&body[WRITE_PIECE + 5..]))
            .await
            .unwrap();
        let st = w.finish().await.unwrap();

        let key = store.complete_upload("u1", &st).await.unwrap();
        assert_eq!(key, "blobs/u1/u1");
        assert!(!dir.path().join("uploads/u1").exists());
        assert_eq!(collect(store.get(&key, None).await.unwrap()).await, body);
        assert_eq!(
            collect(store.get(&key, Some(10..=19)).await.unwrap()).await,
            &body[10..20]
        );
        let tail = collect(store.get(&key, Some(5..=u64::MAX)).await.unwrap()).await;
        assert_eq!(tail, &body[5..]);

        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(matches!(
            store.get(&key, None).await,
            Err(StorageError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn resuming_discards_bytes_past_the_committed_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let st = store.begin_upload("u2").await.unwrap();
        let mut w = store.upload_writer("u2", &st, 0).await.unwrap();
        w.write(Bytes::from_static(b"hello, garbage"))
            .await
            .unwrap();
        w.finish().await.unwrap();
        // Only 5 bytes were acknowledged; a crash left more on disk.
        let mut w = store.upload_writer("u2", &st, 5).await.unwrap();
        w.write(Bytes::from_static(b" world")).await.unwrap();
        w.finish().await.unwrap();
        let key = store.complete_upload("u2", &st).await.unwrap();
        assert_eq!(
            collect(store.get(&key, None).await.unwrap()).await,
            b"hello world"
        );
        let st = store.begin_upload("u3").await.unwrap();
        store.abort_upload("u3", &st).await.unwrap();
        assert!(!dir.path().join("uploads/u3").exists());
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let store = LocalStore {
            root: PathBuf::from("/data"),
        };
        assert_eq!(
            store.object_path("../../etc/passwd"),
            PathBuf::from("/data/etc/passwd")
        );
        assert_eq!(
            store.upload_path("../x/y"),
            PathBuf::from("/data/uploads/xy")
        );
    }
}
