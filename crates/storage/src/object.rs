//! The object-store driver: S3 and S3-compatible services (Quay's `S3Storage`,
//! `RadosGWStorage`, `RHOCSStorage`, `IBMCloudStorage`, and `GoogleCloudStorage` through its
//! S3-compatible XML API) and Azure Blob Storage (`AzureStorage`), over Apache `object_store`.
//!
//! Keys are relative to the location's `storage_path` inside the bucket. Uploads are
//! multipart uploads of their final key (see `upload`); `get` streams with ranges; direct
//! downloads are presigned GET URLs.
//!
//! Requests are retried by `object_store`: throttling (`503 SlowDown`, `429`), other 5xx
//! answers, `408` and connection failures back off exponentially with jitter from 0.1 s,
//! doubling up to 15 s, at most 10 times and no later than 3 minutes after the first try.
//! The client has a 10 s connect timeout and a 5 minute idle-read timeout but no total
//! deadline, because a blob download may stream for hours; part uploads have their own.

mod build;
mod upload;

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use crate::keys::{blob_key, upload_dir};
use crate::{BlobStore, ByteStream, ObjectInfo, Result, StorageError, UploadState, UploadWriter};
pub use build::{AzureSettings, S3Settings};
use upload::{ObjectWriter, PartUploader, Session, read_tail};

/// Presigned URLs live at most this long (S3's limit for SigV4).
const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Blobs in an object store bucket or container.
#[derive(Clone)]
pub struct ObjectBlobStore {
    backend: Arc<Backend>,
}

/// What the driver and its writers share.
#[derive(Clone)]
pub(crate) struct Backend {
    location: String,
    /// The key prefix without surrounding `/`; empty for the bucket's root.
    root: String,
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    signer: Option<Arc<dyn Signer>>,
    part_size: usize,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("location", &self.backend.location)
            .field("store", &self.backend.store.to_string())
            .field("root", &self.backend.root)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The store path of a key relative to the root.
    fn path(&self, key: &str) -> Result<Path> {
        let key = key.trim_matches('/');
        let full = match (self.root.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{key}", self.root),
        };
        Path::parse(&full).map_err(|e| self.failure("parse key", key, e.to_string()))
    }

    /// The key of a store path, relative to the root.
    fn key_of<'a>(&self, path: &'a str) -> &'a str {
        if self.root.is_empty() {
            return path;
        }
        path.strip_prefix(self.root.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(path)
    }

    /// Maps an `object_store` error on `key`.
    fn error(&self, operation: &'static str, key: &str, e: object_store::Error) -> StorageError {
        if let object_store::Error::NotFound { .. } = e {
            return StorageError::NotFound(key.to_owned());
        }
        // S3-compatible services say "full" in different words: Ceph and AWS quotas answer
        // `QuotaExceeded`, MinIO `XMinioStorageFull`, others a bare 507.
        let text = e.to_string();
        if ["QuotaExceeded", "StorageFull", "507 Insufficient Storage"]
            .iter()
            .any(|needle| text.contains(needle))
        {
            return StorageError::Full(key.to_owned());
        }
        StorageError::Backend {
            location: self.location.clone(),
            operation,
            key: key.to_owned(),
            source: Box::new(e),
        }
    }

    /// A failure found by the driver itself.
    fn failure(&self, operation: &'static str, key: &str, message: String) -> StorageError {
        StorageError::Backend {
            location: self.location.clone(),
            operation,
            key: key.to_owned(),
            source: message.into(),
        }
    }

    /// Deletes every object under `dir/`, e.g. an upload's tails. Missing objects are fine.
    async fn delete_dir(&self, dir: &str) -> Result<()> {
        let prefix = self.path(dir)?;
        let found: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error("list", dir, e))?;
        for meta in found {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", self.key_of(meta.location.as_ref()), e)),
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobStore {
    async fn begin_upload(&self, upload_id: &str) -> Result<UploadState> {
        let b = &self.backend;
        let key = blob_key(upload_id);
        let id = b
            .multipart
            .create_multipart(&b.path(&key)?)
            .await
            .map_err(|e| b.error("begin upload", &key, e))?;
        Ok(Session::new(key, id).to_state())
    }

    async fn upload_writer(
        &self,
        upload_id: &str,
        state: &UploadState,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>> {
        let writer = ObjectWriter::open(self.backend.clone(), upload_id, state, offset).await?;
        Ok(Box::new(writer))
    }

    async fn complete_upload(&self, upload_id: &str, state: &UploadState) -> Result<String> {
        let b = &self.backend;
        let session = Session::parse(upload_id, state)?;
        let path = b.path(&session.key)?;
        let mut parts: Vec<PartId> = session
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        let tail = match &session.tail {
            Some(tail) => Some(read_tail(b, tail, tail.size).await),
            None => None,
        };
        let completed = match tail {
            // A tail whose object is gone may belong to an upload completed by an earlier
            // attempt (which deleted its tails); the check below finds out.
            Some(Err(StorageError::NotFound(_))) => Err(object_store::Error::NotFound {
                path: session.key.clone(),
                source: "upload tail missing".into(),
            }),
            Some(Err(e)) => return Err(e),
            Some(Ok(bytes)) => {
                let put = b
                    .multipart
                    .put_part(&path, &session.multipart_id, parts.len(), bytes.into())
                    .await;
                match put {
                    Ok(part) => {
                        parts.push(part);
                        b.multipart
                            .complete_multipart(&path, &session.multipart_id, parts)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                b.multipart
                    .complete_multipart(&path, &session.multipart_id, parts)
                    .await
            }
        };
        match completed {
            Ok(_) => {}
            // The multipart upload is gone: if a previous attempt completed it (and the
            // caller did not record that), the object is there with the right size.
            Err(object_store::Error::NotFound { .. })
                if self.stat(&session.key).await? == Some(session.size) => {}
            Err(e) => return Err(b.error("complete upload", &session.key, e)),
        }
        tracing::debug!(
            upload = %upload_id,
            key = %session.key,
            parts = session.parts.len(),
            size_bytes = session.size,
            "completed an object-store upload"
        );
        // The tails are deleted one by one rather than with a multi-object delete, which
        // GCS's XML API lacks; an upload has only a few.
        if let Err(e) = b.delete_dir(&upload_dir(upload_id)).await {
            tracing::warn!(upload = %upload_id, error = %e, "could not delete upload tails");
        }
        Ok(session.key)
    }

    async fn abort_upload(&self, upload_id: &str, state: &UploadState) -> Result<()> {
        let b = &self.backend;
        // A state that cannot be read still leaves tails to delete.
        if let Ok(session) = Session::parse(upload_id, state) {
            let aborted = b
                .multipart
                .abort_multipart(&b.path(&session.key)?, &session.multipart_id)
                .await;
            match aborted {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(b.error("abort upload", &session.key, e)),
            }
        }
        b.delete_dir(&upload_dir(upload_id)).await
    }

    async fn get(&self, key: &str, range: Option<RangeInclusive<u64>>) -> Result<ByteStream> {
        let b = &self.backend;
        let path = b.path(key)?;
        let wanted = range.map(|r| {
            let (start, end) = (*r.start(), *r.end());
            if end == u64::MAX {
                GetRange::Offset(start)
            } else {
                GetRange::Bounded(start..end.saturating_add(1))
            }
        });
        if let Some(GetRange::Bounded(r)) = &wanted
            && r.start >= r.end
        {
            // An empty range: nothing to read, but the object must exist.
            return match self.stat(key).await? {
                Some(_) => Ok(futures::stream::empty().boxed()),
                None => Err(StorageError::NotFound(key.to_owned())),
            };
        }
        let ranged = wanted.is_some();
        let result = b
            .store
            .get_opts(&path, GetOptions::new().with_range(wanted))
            .await;
        let got = match result {
            Ok(got) => got,
            Err(e) => {
                // A range starting at or past the end is empty, as in LocalStore, not an
                // error (S3 answers 416).
                if ranged
                    && !matches!(e, object_store::Error::NotFound { .. })
                    && self.stat(key).await?.is_some()
                {
                    return Ok(futures::stream::empty().boxed());
                }
                return Err(b.error("get", key, e));
            }
        };
        let backend = b.clone();
        let key = key.to_owned();
        Ok(got
            .into_stream()
            .map_err(move |e| backend.error("get", &key, e))
            .boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let b = &self.backend;
        match b.store.delete(&b.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(b.error("delete", key, e)),
        }
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>> {
        let b = &self.backend;
        match b.store.head(&b.path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(b.error("stat", key, e)),
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<()> {
        let b = &self.backend;
        let path = b.path(key)?;
        let mut body = body;
        // Small objects are one PUT; larger ones become a multipart upload as soon as the
        // first part is full, so memory stays bounded whatever the size.
        let mut first = Vec::new();
        let mut first_len = 0;
        while first_len < b.part_size {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    first_len += chunk.len();
                    first.push(chunk);
                }
                None => {
                    let payload: PutPayload = first.into_iter().collect();
                    return b
                        .store
                        .put(&path, payload)
                        .await
                        .map(drop)
                        .map_err(|e| b.error("put", key, e));
                }
            }
        }
        let id = b
            .multipart
            .create_multipart(&path)
            .await
            .map_err(|e| b.error("put", key, e))?;
        let mut uploader = PartUploader::new(
            b.clone(),
            key.to_owned(),
            path.clone(),
            id.clone(),
            Vec::new(),
        );
        let written = async {
            for chunk in first {
                uploader.push(chunk).await?;
            }
            while let Some(chunk) = body.next().await {
                uploader.push(chunk?).await?;
            }
            // The rest is the last part, which may be small.
            if uploader.buffered_len() > 0 {
                uploader.launch().await?;
            }
            uploader.settle().await?;
            let parts = uploader
                .into_parts()
                .into_iter()
                .map(|p| PartId { content_id: p.etag })
                .collect();
            b.multipart
                .complete_multipart(&path, &id, parts)
                .await
                .map_err(|e| b.error("put", key, e))
        }
        .await;
        if let Err(e) = written {
            if let Err(abort) = b.multipart.abort_multipart(&path, &id).await {
                tracing::warn!(key = %key, error = %abort, "could not abort a failed put");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let b = &self.backend;
        // object_store lists by whole path segments; keys match by string prefix, so list
        // the prefix's folder and filter.
        let full = match (b.root.is_empty(), prefix.trim_start_matches('/')) {
            (true, p) => p.to_owned(),
            (false, p) => format!("{}/{p}", b.root),
        };
        let dir = full.rsplit_once('/').map_or("", |(dir, _)| dir);
        let dir = if dir.is_empty() {
            None
        } else {
            Some(Path::parse(dir).map_err(|e| b.failure("list", prefix, e.to_string()))?)
        };
        let found: Vec<_> = b
            .store
            .list(dir.as_ref())
            .try_collect()
            .await
            .map_err(|e| b.error("list", prefix, e))?;
        Ok(found
            .into_iter()
            .filter(|meta| meta.location.as_ref().starts_with(&full))
            .map(|meta| ObjectInfo {
                key: b.key_of(meta.location.as_ref()).to_owned(),
                size: meta.size,
            })
            .collect())
    }

    async fn download_url(&self, key: &str, expires: Duration) -> Result<Option<String>> {
        let b = &self.backend;
        let Some(signer) = &b.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(
                object_store::signer::Method::GET,
                &b.path(key)?,
                expires.min(MAX_URL_LIFETIME),
            )
            .await
            .map_err(|e| b.error("sign URL", key, e))?;
        Ok(Some(url.to_string()))
    }
}
