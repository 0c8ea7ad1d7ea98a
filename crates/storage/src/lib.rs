//! Where blob bytes live. The registry talks to storage only through [`BlobStore`]; the database
//! decides which object holds which digest, so objects are written once under their own key and
//! never copied or renamed to a content address on commit.
//!
//! Write order is part of the contract: bytes are durable in storage before the database commit
//! that references them, and objects are deleted only after the commit that unreferences them. A
//! crash can leak an object (a later cleanup finds it), never leave a reference to missing bytes.

mod local;

use std::ops::RangeInclusive;
use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use local::LocalStore;

/// A storage failure. Every variant is an operational problem (not a client mistake).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found in storage")]
    NotFound(String),
    #[error("storage I/O error on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// The storage has no room left (ENOSPC or a quota).
    #[error("storage is full while writing {0}")]
    Full(String),
    #[error("storage location {0:?} uses driver {1:?}, which is not supported yet")]
    UnsupportedDriver(String, String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Driver state of an in-progress upload, persisted with the upload session so that any process
/// can continue it (for object stores: the multipart upload id and finished parts).
pub type UploadState = serde_json::Value;

/// A storage backend for blobs and upload sessions.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Prepares storage for a new upload session named `upload_id`.
    async fn begin_upload(&self, upload_id: &str) -> Result<UploadState>;

    /// Opens a writer that continues the upload at byte `offset`. Anything stored beyond `offset`
    /// (bytes written by a request that never committed its progress) is discarded.
    async fn upload_writer(
        &self,
        upload_id: &str,
        state: &UploadState,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>>;

    /// Reads back what an upload holds so far (used when the final digest's algorithm differs from
    /// the one hashed while streaming).
    async fn read_upload(&self, upload_id: &str, state: &UploadState) -> Result<ByteStream>;

    /// Turns a finished upload into a stored object and returns the object's key.
    async fn complete_upload(&self, upload_id: &str, state: &UploadState) -> Result<String>;

    /// Discards an upload and its bytes. Missing uploads are not an error.
    async fn abort_upload(&self, upload_id: &str, state: &UploadState) -> Result<()>;

    /// Streams an object, or the inclusive byte range of it.
    async fn get(&self, key: &str, range: Option<RangeInclusive<u64>>) -> Result<ByteStream>;

    /// Deletes an object. Missing objects are not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The local file behind `key`, when the driver keeps objects on a local filesystem.
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// Appends bytes to an upload. Writes may be buffered; [`UploadWriter::finish`] makes them
/// durable and returns the driver state to persist.
#[async_trait::async_trait]
pub trait UploadWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<UploadState>;
}
