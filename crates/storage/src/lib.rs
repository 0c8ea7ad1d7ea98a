//! Where blob bytes live. The registry talks to storage only through [`BlobStore`]; the database
//! decides which object holds which digest, so objects are written once under their own key and
//! never copied or renamed to a content address on commit.
//!
//! Write order is part of the contract: bytes are durable in storage before the database commit
//! that references them, and objects are deleted only after the commit that unreferences them. A
//! crash can leak an object (a later cleanup finds it), never leave a reference to missing bytes.
//!
//! Drivers: [`LocalStore`] (Quay's `LocalStorage`) and [`ObjectBlobStore`] (S3 and the
//! S3-compatible family, Azure Blob Storage). [`open`] builds the driver a location's
//! configuration names.

mod keys;
mod local;
mod object;
mod open;
#[cfg(feature = "testing")]
pub mod testing;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use local::LocalStore;
pub use object::{AzureSettings, ObjectBlobStore, S3Settings};
pub use open::{OpenOptions, open};

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
    /// A storage location's settings cannot be used (a malformed endpoint, a bad CA
    /// certificate, ...); found when the driver is built, before any request.
    #[error("storage location {location:?} cannot be used: {reason}")]
    Config { location: String, reason: String },
    /// The object store refused or failed a request, after the driver's retries.
    #[error("storage location {location:?}: {operation} {key} failed: {source}")]
    Backend {
        location: String,
        /// What the driver was doing (`get`, `put part`, `complete upload`, ...).
        operation: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The driver state persisted with an upload session does not fit the request: it is not
    /// this driver's, or the offset lies outside the bytes it describes.
    #[error("upload {upload_id}: {reason}")]
    InvalidUpload { upload_id: String, reason: String },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Driver state of an in-progress upload, persisted with the upload session so that any process
/// can continue it (for object stores: the multipart upload id and finished parts).
pub type UploadState = serde_json::Value;

/// An object found by [`BlobStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// A storage backend for blobs and upload sessions.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Prepares storage for a new upload session named `upload_id`. The object's key is
    /// fixed here (`blobs/<xx>/<id>`).
    async fn begin_upload(&self, upload_id: &str) -> Result<UploadState>;

    /// Opens a writer that continues the upload at byte `offset`, where `state` is the last
    /// state persisted for the session and `offset` the size persisted with it. Anything
    /// stored beyond that (bytes written by a request that never committed its progress) is
    /// discarded. An `offset` below the persisted size cuts the upload there, which object
    /// stores can do only after their last finished part: they refuse other offsets, and
    /// another driver's state, with [`StorageError::InvalidUpload`].
    async fn upload_writer(
        &self,
        upload_id: &str,
        state: &UploadState,
        offset: u64,
    ) -> Result<Box<dyn UploadWriter>>;

    /// Turns a finished upload into a stored object and returns the object's key. Completing
    /// again with the same state returns the same key while the object exists, so a caller
    /// that crashed between completion and its database commit can retry.
    async fn complete_upload(&self, upload_id: &str, state: &UploadState) -> Result<String>;

    /// Discards an upload and its bytes. Missing uploads are not an error.
    async fn abort_upload(&self, upload_id: &str, state: &UploadState) -> Result<()>;

    /// Streams an object, or the inclusive byte range of it. An end past the object (such as
    /// `u64::MAX`) means "to the end"; a range starting at or after the end yields no bytes.
    /// A missing object is [`StorageError::NotFound`].
    async fn get(&self, key: &str, range: Option<RangeInclusive<u64>>) -> Result<ByteStream>;

    /// Deletes an object. Missing objects are not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The size of the object at `key`, or None when there is none.
    async fn stat(&self, key: &str) -> Result<Option<u64>>;

    /// Writes a whole object at `key` from `body` (how replication copies a blob into another
    /// location under the same key). The object becomes visible only once complete.
    async fn put(&self, key: &str, body: ByteStream) -> Result<()>;

    /// Every object whose key starts with `prefix`, with its size, in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// A URL from which a client can download the object directly until `expires` has passed
    /// (Quay's direct download), when the driver can make one.
    async fn download_url(&self, _key: &str, _expires: Duration) -> Result<Option<String>> {
        Ok(None)
    }

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
