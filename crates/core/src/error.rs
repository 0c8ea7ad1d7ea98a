//! The outcomes of registry operations that are not success. Client mistakes are distinct
//! variants, so each HTTP surface can map them to its protocol's codes exhaustively; operational
//! failures (database, storage) carry their cause.

/// Why a registry operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository {0} is not known to the registry")]
    NameUnknown(String),
    #[error("invalid tag or digest: {0}")]
    ReferenceInvalid(String),
    #[error("blob {0} is not known to the repository")]
    BlobUnknown(String),
    #[error("upload {0} is not known to the repository")]
    UploadUnknown(String),
    #[error("upload is invalid: {0}")]
    UploadInvalid(String),
    /// A chunk did not start where the upload ends.
    #[error("chunk starts at byte {requested} but the upload holds {size} bytes")]
    RangeInvalid { requested: u64, size: u64 },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    SizeInvalid(String),
    #[error("blob is larger than the {limit} bytes allowed")]
    BlobTooLarge { limit: u64 },
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("{0}")]
    ManifestUnsupported(String),
    #[error("manifest {0} is not known to the repository")]
    ManifestUnknown(String),
    #[error("manifest references {0}, which is not in the repository")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unsupported(String),
    /// The request body could not be read (the client went away or sent a broken body).
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The node's storage configuration does not fit what the database holds (an operational
    /// problem, e.g. a location removed from `DISTRIBUTED_STORAGE_CONFIG`).
    #[error("{0}")]
    Internal(String),
}
