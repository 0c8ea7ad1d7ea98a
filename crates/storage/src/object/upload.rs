//! Chunked uploads to an object store that any process can continue.
//!
//! An upload is one multipart upload of the final key, begun with the session. Its progress
//! lives in the [`Session`] JSON the caller persists after every request: the multipart id,
//! the finished parts and the committed size. Object stores want parts of at least 5 MiB
//! (except the last), while registry clients send chunks of any size, so a request that ends
//! with less than 5 MiB unsent stores those bytes as a small *tail* object
//! (`uploads/<id>/tail-<generation>-<nonce>`), which the next request reads back first and
//! `complete` sends as the last part.
//!
//! Nothing a request writes is visible to the next one unless its state was persisted: part
//! numbers continue from the persisted list (an orphan part of a failed request is simply
//! overwritten), and a new tail gets a new generation number and a random nonce, so the
//! persisted state's tail is never overwritten — not even by a concurrent request on another
//! node that started from the same state and lost the race to persist (with the generation
//! alone, its tail would replace the winner's under the same key and its bytes would end up in
//! the blob). Old tails are deleted when the upload completes or is aborted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::Backend;
use crate::{Result, StorageError, UploadState, UploadWriter};

/// The smallest part object stores accept, except for the last one.
pub(super) const MIN_PART: usize = 5 << 20;
/// The largest part the driver buffers, however many parts the upload already has.
const MAX_PART: usize = 64 << 20;
/// Parts after which the part size grows by one more `part_size`, so that the 10,000 parts S3
/// allows hold more than 400 GB with the default 8 MiB parts.
const PARTS_PER_SIZE_STEP: usize = 1000;
/// A part upload that takes longer than this (about 100 KiB/s for 64 MiB) has stalled. The
/// HTTP client has no total deadline because blob downloads may stream for hours.
const PART_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The persisted state of an upload (the `UploadState` JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    /// The object the upload becomes, relative to the location's root.
    pub key: String,
    /// The store's multipart upload id.
    pub multipart_id: String,
    /// Finished parts, numbered 1, 2, ... in order.
    pub parts: Vec<Part>,
    /// Committed bytes: the parts and the tail.
    pub size: u64,
    /// Bytes after the last part, kept as a separate object until the next request.
    pub tail: Option<Tail>,
    /// Bumped by every request that changes the upload; names its tail object.
    pub generation: u64,
}

/// One finished part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Part {
    /// 1-based part number.
    pub number: usize,
    /// What the store returned for the part: the S3 ETag, the Azure block id.
    pub etag: String,
    pub size: u64,
}

/// The bytes after the last part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tail {
    /// Key of the tail object, relative to the location's root.
    pub key: String,
    pub size: u64,
}

impl Session {
    pub(super) fn new(key: String, multipart_id: String) -> Self {
        Session {
            key,
            multipart_id,
            parts: Vec::new(),
            size: 0,
            tail: None,
            generation: 0,
        }
    }

    /// Reads and checks a persisted state.
    pub(super) fn parse(upload_id: &str, state: &UploadState) -> Result<Session> {
        let invalid = |reason: String| StorageError::InvalidUpload {
            upload_id: upload_id.to_owned(),
            reason,
        };
        let session: Session = serde_json::from_value(state.clone()).map_err(|e| {
            invalid(format!(
                "the stored state is not an object-store upload: {e}"
            ))
        })?;
        let numbered = session
            .parts
            .iter()
            .enumerate()
            .all(|(i, p)| p.number == i + 1);
        let tail = session.tail.as_ref().map_or(0, |t| t.size);
        if !numbered || session.parts_size() + tail != session.size {
            return Err(invalid(
                "the stored state's parts and size disagree".to_owned(),
            ));
        }
        Ok(session)
    }

    pub(super) fn to_state(&self) -> UploadState {
        // A struct of strings and integers always serializes.
        serde_json::to_value(self).unwrap_or(UploadState::Null)
    }

    pub(super) fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// Uploads parts of one multipart upload from a stream of writes: buffers up to the part
/// size, then sends the part in the background while the next one fills. At most one part
/// is in flight, so an upload holds at most two parts in memory.
pub(super) struct PartUploader {
    backend: Arc<Backend>,
    key: String,
    path: Path,
    multipart_id: String,
    parts: Vec<Part>,
    buffered: Vec<Bytes>,
    buffered_len: usize,
    in_flight: Option<JoinHandle<Result<Part>>>,
}

impl PartUploader {
    pub(super) fn new(
        backend: Arc<Backend>,
        key: String,
        path: Path,
        multipart_id: String,
        parts: Vec<Part>,
    ) -> Self {
        PartUploader {
            backend,
            key,
            path,
            multipart_id,
            parts,
            buffered: Vec::new(),
            buffered_len: 0,
            in_flight: None,
        }
    }

    pub(super) fn buffered_len(&self) -> usize {
        self.buffered_len
    }

    /// The bytes a part collects before it is sent: the configured size, growing with the
    /// part count (see [`PARTS_PER_SIZE_STEP`]).
    fn part_target(&self) -> usize {
        let step = 1 + self.parts.len() / PARTS_PER_SIZE_STEP;
        (self.backend.part_size * step).min(MAX_PART.max(self.backend.part_size))
    }

    pub(super) async fn push(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.buffered_len += data.len();
        self.buffered.push(data);
        if self.buffered_len >= self.part_target() {
            self.launch().await?;
        }
        Ok(())
    }

    /// Starts sending everything buffered as the next part, after the part in flight is done.
    pub(super) async fn launch(&mut self) -> Result<()> {
        self.settle().await?;
        let number = self.parts.len() + 1;
        let size = self.buffered_len as u64;
        let payload: PutPayload = std::mem::take(&mut self.buffered).into_iter().collect();
        self.buffered_len = 0;
        let backend = self.backend.clone();
        let path = self.path.clone();
        let id = self.multipart_id.clone();
        let key = self.key.clone();
        self.in_flight = Some(tokio::spawn(async move {
            let put = backend.multipart.put_part(&path, &id, number - 1, payload);
            match tokio::time::timeout(PART_TIMEOUT, put).await {
                Ok(Ok(part)) => Ok(Part {
                    number,
                    etag: part.content_id,
                    size,
                }),
                Ok(Err(e)) => Err(backend.error("put part", &key, e)),
                Err(_) => Err(backend.failure(
                    "put part",
                    &key,
                    format!("part {number} was not stored within {PART_TIMEOUT:?}"),
                )),
            }
        }));
        Ok(())
    }

    /// Waits for the part in flight and records it.
    pub(super) async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let part = match task.await {
                Ok(part) => part?,
                Err(join) => {
                    return Err(self
                        .backend
                        .failure("put part", &self.key, join.to_string()));
                }
            };
            self.parts.push(part);
        }
        Ok(())
    }

    /// The buffered bytes, taken out of the uploader.
    pub(super) fn take_buffered(&mut self) -> PutPayload {
        self.buffered_len = 0;
        std::mem::take(&mut self.buffered).into_iter().collect()
    }

    pub(super) fn into_parts(self) -> Vec<Part> {
        self.parts
    }
}

/// The writer of one request: the persisted parts, the persisted tail read back (cut at the
/// offset), then the request's bytes.
pub(super) struct ObjectWriter {
    upload_id: String,
    session: Session,
    uploader: PartUploader,
    /// Whether the upload differs from `session` (bytes written or the tail cut).
    changed: bool,
}

impl ObjectWriter {
    pub(super) async fn open(
        backend: Arc<Backend>,
        upload_id: &str,
        state: &UploadState,
        offset: u64,
    ) -> Result<ObjectWriter> {
        let session = Session::parse(upload_id, state)?;
        let parts_size = session.parts_size();
        if offset > session.size || offset < parts_size {
            // Bytes before the last finished part cannot be taken back: a multipart upload's
            // parts cannot be read, so the caller must resume at the persisted offset.
            return Err(StorageError::InvalidUpload {
                upload_id: upload_id.to_owned(),
                reason: format!(
                    "cannot continue at byte {offset}: the stored state holds {} bytes, \
                     {parts_size} of them in finished parts",
                    session.size
                ),
            });
        }
        let path = backend.path(&session.key)?;
        let mut uploader = PartUploader::new(
            backend.clone(),
            session.key.clone(),
            path,
            session.multipart_id.clone(),
            session.parts.clone(),
        );
        let keep = offset - parts_size;
        if let Some(tail) = &session.tail
            && keep > 0
        {
            uploader
                .push(read_tail(&backend, tail, keep).await?)
                .await?;
        }
        Ok(ObjectWriter {
            upload_id: upload_id.to_owned(),
            changed: offset != session.size,
            session,
            uploader,
        })
    }
}

/// The first `len` bytes of a tail object.
pub(super) async fn read_tail(backend: &Backend, tail: &Tail, len: u64) -> Result<Bytes> {
    let path = backend.path(&tail.key)?;
    let options = GetOptions::new().with_range(Some(GetRange::Bounded(0..len)));
    let bytes = match backend.store.get_opts(&path, options).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    }
    .map_err(|e| backend.error("read upload tail", &tail.key, e))?;
    if bytes.len() as u64 != len {
        return Err(backend.failure(
            "read upload tail",
            &tail.key,
            format!("expected {len} bytes, found {}", bytes.len()),
        ));
    }
    Ok(bytes)
}

#[async_trait::async_trait]
impl UploadWriter for ObjectWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if !data.is_empty() {
            self.changed = true;
        }
        self.uploader.push(data).await
    }

    async fn finish(mut self: Box<Self>) -> Result<UploadState> {
        if !self.changed {
            return Ok(self.session.to_state());
        }
        self.uploader.settle().await?;
        if self.uploader.buffered_len() >= MIN_PART {
            self.uploader.launch().await?;
            self.uploader.settle().await?;
        }
        let generation = self.session.generation + 1;
        let tail = if self.uploader.buffered_len() > 0 {
            let size = self.uploader.buffered_len() as u64;
            let key = format!(
                "{}/tail-{generation}-{}",
                crate::keys::upload_dir(&self.upload_id),
                uuid::Uuid::new_v4().simple()
            );
            let backend = self.uploader.backend.clone();
            let path = backend.path(&key)?;
            let payload = self.uploader.take_buffered();
            backend
                .store
                .put(&path, payload)
                .await
                .map_err(|e| backend.error("put upload tail", &key, e))?;
            Some(Tail { key, size })
        } else {
            None
        };
        let parts = self.uploader.into_parts();
        let parts_size: u64 = parts.iter().map(|p| p.size).sum();
        let session = Session {
            key: self.session.key,
            multipart_id: self.session.multipart_id,
            size: parts_size + tail.as_ref().map_or(0, |t| t.size),
            parts,
            tail,
            generation,
        };
        Ok(session.to_state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_is_checked() {
        let session = Session {
            key: "blobs/ab/abc".into(),
            multipart_id: "mp-1".into(),
            parts: vec![Part {
                number: 1,
                etag: "\"e1\"".into(),
                size: 8 << 20,
            }],
            size: (8 << 20) + 10,
            tail: Some(Tail {
                key: "uploads/abc/tail-2".into(),
                size: 10,
            }),
            generation: 2,
        };
        let text = session.to_state().to_string();
        let back: UploadState = serde_json::from_str(&text).unwrap();
        assert_eq!(Session::parse("abc", &back).unwrap(), session);

        let mut wrong = session.clone();
        wrong.size += 1;
        assert!(matches!(
            Session::parse("abc", &wrong.to_state()),
            Err(StorageError::InvalidUpload { .. })
        ));
        assert!(matches!(
            Session::parse("abc", &UploadState::Null),
            Err(StorageError::InvalidUpload { .. })
        ));
    }
}
