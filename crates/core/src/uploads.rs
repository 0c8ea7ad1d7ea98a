//! Blob uploads: sessions that stream request bodies through the hasher into storage, persist
//! their progress after every request, and become blobs when the client names the digest.

use std::pin::Pin;

use bytes::Bytes;
use db::{BlobRow, CommitBlob, NewUpload, RepositoryRow, UploadRow};
use futures::{Stream, StreamExt};
use storage::UploadWriter;
use types::{Algorithm, Digest, DigestHasher};

use crate::{Registry, RegistryError, now_ms};

/// A request body: a stream of byte frames whose errors are already rendered as text.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// Where an upload stands after a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    pub uuid: String,
    pub size: u64,
}

impl From<&UploadRow> for UploadProgress {
    fn from(row: &UploadRow) -> Self {
        UploadProgress {
            uuid: row.uuid.clone(),
            size: row.byte_count as u64,
        }
    }
}

impl Registry {
    /// Starts an upload session in the repository.
    pub async fn start_upload(
        &self,
        repo: &RepositoryRow,
    ) -> Result<UploadProgress, RegistryError> {
        self.create_session(repo, Algorithm::Sha256)
            .await
            .map(|row| (&row).into())
    }

    async fn create_session(
        &self,
        repo: &RepositoryRow,
        algorithm: Algorithm,
    ) -> Result<UploadRow, RegistryError> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let target = self.inner.locations.upload_target();
        let state = target.store.begin_upload(&uuid).await?;
        let row = self
            .inner
            .db
            .create_upload(NewUpload {
                uuid,
                repository_id: repo.id,
                location_id: target.id,
                hash_state: DigestHasher::new(algorithm).save(),
                storage_state: state.to_string(),
            })
            .await?;
        self.record_upload_started();
        Ok(row)
    }

    async fn session(&self, repo: &RepositoryRow, uuid: &str) -> Result<UploadRow, RegistryError> {
        self.inner
            .db
            .find_upload(repo.id, uuid)
            .await?
            .ok_or_else(|| RegistryError::UploadUnknown(uuid.to_string()))
    }

    /// How many bytes the upload holds.
    pub async fn upload_status(
        &self,
        repo: &RepositoryRow,
        uuid: &str,
    ) -> Result<UploadProgress, RegistryError> {
        Ok((&self.session(repo, uuid).await?).into())
    }

    /// Appends a chunk. `start`, when the client sent `Content-Range`, must equal the current size.
    pub async fn write_chunk(
        &self,
        repo: &RepositoryRow,
        uuid: &str,
        start: Option<u64>,
        body: BodyStream,
    ) -> Result<UploadProgress, RegistryError> {
        let row = self.session(repo, uuid).await?;
        let size = row.byte_count as u64;
        if let Some(requested) = start
            && requested != size
        {
            return Err(RegistryError::RangeInvalid { requested, size });
        }
        let row = self.append(row, body).await?;
        Ok((&row).into())
    }

    /// Streams `body` onto the end of the session and records the new size and hash state.
    /// One request at a time may write to a session: a second one is refused before it touches
    /// the bytes (across processes, the compare-and-swap on the size catches it instead).
    async fn append(&self, row: UploadRow, body: BodyStream) -> Result<UploadRow, RegistryError> {
        let mut body = body;
        let _writing = match WritingGuard::claim(self, &row.uuid) {
            Ok(guard) => guard,
            Err(e) => {
                drain(&mut body).await;
                return Err(e);
            }
        };
        let mut hasher = DigestHasher::restore(&row.hash_state)
            .map_err(|e| RegistryError::UploadInvalid(e.to_string()))?;
        let state = storage_state(&row)?;
        let offset = row.byte_count as u64;
        let streamed = self
            .stream_into(&row, &state, offset, &mut hasher, &mut body)
            .await;
        let (writer, size) = match streamed {
            Ok(done) => done,
            Err(e) => {
                if !matches!(e, RegistryError::BodyRead(_)) {
                    drain(&mut body).await;
                }
                return Err(e);
            }
        };
        let Some(writer) = writer else {
            return Ok(row);
        };
        let new_state = writer.finish().await?;
        let hash_state = hasher.save();
        let advanced = self
            .inner
            .db
            .advance_upload(
                row.id,
                row.byte_count,
                size as i64,
                hash_state.clone(),
                new_state.to_string(),
            )
            .await?;
        if !advanced {
            return Err(RegistryError::UploadInvalid(
                "another request wrote to this upload at the same time".into(),
            ));
        }
        self.record_pushed_bytes(size - offset);
        Ok(UploadRow {
            byte_count: size as i64,
            hash_state,
            storage_state: new_state.to_string(),
            chunk_count: row.chunk_count + 1,
            ..row
        })
    }

    /// Hashes and writes the body's frames; returns the writer (None when the body was empty)
    /// and the upload's new size.
    async fn stream_into(
        &self,
        row: &UploadRow,
        state: &storage::UploadState,
        offset: u64,
        hasher: &mut DigestHasher,
        body: &mut BodyStream,
    ) -> Result<(Option<Box<dyn UploadWriter>>, u64), RegistryError> {
        let limit = self.inner.settings.max_blob_size;
        let mut writer: Option<Box<dyn UploadWriter>> = None;
        let mut size = offset;
        while let Some(frame) = body.next().await {
            let frame = frame.map_err(RegistryError::BodyRead)?;
            if frame.is_empty() {
                continue;
            }
            size += frame.len() as u64;
            if size > limit {
                return Err(RegistryError::BlobTooLarge { limit });
            }
            hasher.update(&frame);
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(
                    self.upload_store(row)?
                        .upload_writer(&row.uuid, state, offset)
                        .await?,
                ),
            };
            w.write(frame).await?;
        }
        Ok((writer, size))
    }

    /// Appends the optional last chunk, checks the digest and turns the upload into a blob of
    /// the repository. A digest mismatch discards the upload.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryRow,
        uuid: &str,
        digest: &Digest,
        body: BodyStream,
    ) -> Result<BlobRow, RegistryError> {
        let row = self.session(repo, uuid).await?;
        let row = self.append(row, body).await?;
        self.commit(repo, row, digest).await
    }

    /// A monolithic upload: `POST ?digest=` with the whole blob as the body.
    pub async fn upload_blob(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        body: BodyStream,
    ) -> Result<BlobRow, RegistryError> {
        let row = self.create_session(repo, digest.algorithm()).await?;
        let row = match self.append(row.clone(), body).await {
            Ok(row) => row,
            Err(e) => {
                self.discard(&row).await;
                return Err(e);
            }
        };
        self.commit(repo, row, digest).await
    }

    async fn commit(
        &self,
        repo: &RepositoryRow,
        row: UploadRow,
        digest: &Digest,
    ) -> Result<BlobRow, RegistryError> {
        let state = storage_state(&row)?;
        let store = self.upload_store(&row)?;
        let hasher = DigestHasher::restore(&row.hash_state)
            .map_err(|e| RegistryError::UploadInvalid(e.to_string()))?;
        let key = if hasher.algorithm() == digest.algorithm() {
            let actual = hasher.finish();
            if actual != *digest {
                self.discard(&row).await;
                return Err(mismatch(&actual, digest));
            }
            store.complete_upload(&row.uuid, &state).await?
        } else {
            // The session hashed with SHA-256 but the client names another algorithm: complete
            // the object (object stores cannot read an unfinished multipart upload), hash it
            // once more, and delete it again if it does not match.
            let key = store.complete_upload(&row.uuid, &state).await?;
            let mut again = DigestHasher::new(digest.algorithm());
            let mut bytes = store.get(&key, None).await?;
            while let Some(chunk) = bytes.next().await {
                again.update(&chunk?);
            }
            let actual = again.finish();
            if actual != *digest {
                if let Err(e) = self.inner.db.delete_upload(row.id).await {
                    tracing::warn!(upload = %row.uuid, error = %e, "could not delete an upload session");
                } else if let Err(e) = store.delete(&key).await {
                    tracing::warn!(key = %key, error = %e, "could not delete a mismatched upload");
                }
                return Err(mismatch(&actual, digest));
            }
            key
        };
        let outcome = self
            .inner
            .db
            .commit_blob(CommitBlob {
                upload_id: row.id,
                repository_id: repo.id,
                location_id: row.location_id,
                digest: digest.to_string(),
                size: row.byte_count,
                storage_key: key,
                protect_until_ms: now_ms()
                    + self.inner.settings.uploaded_blob_expiration.as_millis() as i64,
                replicate: self.inner.settings.replicate_to.is_some(),
            })
            .await?;
        if let Some(redundant) = outcome.redundant_object {
            // The digest was already stored; only after the commit is our copy unreferenced.
            if let Err(e) = store.delete(&redundant).await {
                tracing::warn!(key = %redundant, error = %e, "could not delete a redundant upload object");
            }
        }
        self.record_upload_completed();
        Ok(outcome.blob)
    }

    /// Deletes a session and its bytes (cancel, or a failed monolithic upload).
    async fn discard(&self, row: &UploadRow) {
        let state = storage_state(row).unwrap_or(serde_json::Value::Null);
        if let Err(e) = self.inner.db.delete_upload(row.id).await {
            tracing::warn!(upload = %row.uuid, error = %e, "could not delete an upload session");
            return;
        }
        let aborted = match self.upload_store(row) {
            Ok(store) => store.abort_upload(&row.uuid, &state).await,
            Err(e) => Err(storage::StorageError::NotFound(e.to_string())),
        };
        if let Err(e) = aborted {
            tracing::warn!(upload = %row.uuid, error = %e, "could not delete upload bytes");
        }
    }

    /// Deletes upload sessions (and their bytes) that nobody has written to for `idle`, at most
    /// `limit` of them. Returns how many were deleted.
    pub async fn clean_stale_uploads(
        &self,
        idle: std::time::Duration,
        limit: u64,
    ) -> Result<usize, RegistryError> {
        let cutoff = now_ms() - idle.as_millis() as i64;
        let stale = self.inner.db.stale_uploads(cutoff, limit).await?;
        for row in &stale {
            self.discard(row).await;
        }
        Ok(stale.len())
    }

    /// Cancels an upload session.
    pub async fn cancel_upload(
        &self,
        repo: &RepositoryRow,
        uuid: &str,
    ) -> Result<(), RegistryError> {
        let row = self.session(repo, uuid).await?;
        self.discard(&row).await;
        Ok(())
    }

    /// Makes the blob `digest` of repository `from` usable in `repo`. None when `from` does not
    /// exist or has no such blob; the caller then falls back to a normal upload.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryRow,
        from: &str,
        digest: &Digest,
    ) -> Result<Option<BlobRow>, RegistryError> {
        let Ok(from_path) = self.parse_path(from) else {
            return Ok(None);
        };
        let source = match self.repository(&from_path).await {
            Ok(source) => source,
            Err(RegistryError::NameUnknown(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let until = now_ms() + self.inner.settings.uploaded_blob_expiration.as_millis() as i64;
        Ok(self
            .inner
            .db
            .mount_blob(source.id, repo.id, &digest.to_string(), until)
            .await?)
    }

    /// The blob `digest` of the repository.
    pub async fn blob(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
    ) -> Result<BlobRow, RegistryError> {
        self.inner
            .db
            .find_repository_blob(repo.id, &digest.to_string())
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.to_string()))
    }

    /// The driver of the location an upload session writes to.
    fn upload_store(&self, row: &UploadRow) -> Result<&dyn storage::BlobStore, RegistryError> {
        Ok(self.inner.locations.by_id(row.location_id)?.store.as_ref())
    }
}

/// Marks an upload session as being written by this process until dropped.
struct WritingGuard<'a> {
    registry: &'a Registry,
    uuid: String,
}

impl<'a> WritingGuard<'a> {
    fn claim(registry: &'a Registry, uuid: &str) -> Result<Self, RegistryError> {
        let mut writing = registry
            .inner
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !writing.insert(uuid.to_string()) {
            return Err(RegistryError::UploadInvalid(
                "another request is writing to this upload; send chunks one at a time".into(),
            ));
        }
        Ok(WritingGuard {
            registry,
            uuid: uuid.to_string(),
        })
    }
}

impl Drop for WritingGuard<'_> {
    fn drop(&mut self) {
        let mut writing = self
            .registry
            .inner
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        writing.remove(&self.uuid);
    }
}

/// Reads and discards what is left of a refused body (up to a bound), so the client receives the
/// error response instead of a connection reset while it is still sending.
async fn drain(body: &mut BodyStream) {
    const DRAIN_LIMIT: usize = 64 << 20;
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match body.next().await {
            Some(Ok(frame)) => drained += frame.len(),
            _ => return,
        }
    }
}

fn mismatch(actual: &Digest, expected: &Digest) -> RegistryError {
    RegistryError::DigestInvalid(format!(
        "the uploaded content has digest {actual}, not {expected}"
    ))
}

fn storage_state(row: &UploadRow) -> Result<serde_json::Value, RegistryError> {
    serde_json::from_str(&row.storage_state)
        .map_err(|e| RegistryError::UploadInvalid(format!("stored upload state is corrupt: {e}")))
}
