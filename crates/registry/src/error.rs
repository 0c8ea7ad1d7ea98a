//! The OCI error envelope and the table from domain errors to (status, code).
//!
//! Policy: every client mistake has its own code and a 4xx status; only database and storage
//! failures are 500 `UNKNOWN`, and those are logged here with their cause while the client gets a
//! generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wharf_core::RegistryError;

/// An OCI error response.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers, e.g. `Range` on a 416.
    pub headers: Vec<(header::HeaderName, String)>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
    detail: serde_json::Value,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = Envelope {
            errors: [Entry {
                code: self.code,
                message: &self.message,
                detail: serde_json::Value::Null,
            }],
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            RegistryError::NameInvalid(_) => (S::BAD_REQUEST, "NAME_INVALID"),
            RegistryError::NameUnknown(_) => (S::NOT_FOUND, "NAME_UNKNOWN"),
            RegistryError::ReferenceInvalid(_) => (S::BAD_REQUEST, "MANIFEST_INVALID"),
            RegistryError::BlobUnknown(_) => (S::NOT_FOUND, "BLOB_UNKNOWN"),
            RegistryError::UploadUnknown(_) => (S::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            RegistryError::UploadInvalid(_) => (S::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            RegistryError::RangeInvalid { size, .. } => {
                return OciError::new(S::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message)
                    .with_header(header::RANGE, upload_range(*size));
            }
            RegistryError::DigestInvalid(_) => (S::BAD_REQUEST, "DIGEST_INVALID"),
            RegistryError::SizeInvalid(_) => (S::BAD_REQUEST, "SIZE_INVALID"),
            RegistryError::BlobTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            RegistryError::ManifestInvalid(_) => (S::BAD_REQUEST, "MANIFEST_INVALID"),
            RegistryError::ManifestUnsupported(_) => {
                (S::UNSUPPORTED_MEDIA_TYPE, "MANIFEST_INVALID")
            }
            RegistryError::ManifestUnknown(_) => (S::NOT_FOUND, "MANIFEST_UNKNOWN"),
            RegistryError::ManifestBlobUnknown(_) => (S::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            RegistryError::Denied(_) => (S::FORBIDDEN, "DENIED"),
            RegistryError::Unsupported(_) => (S::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            RegistryError::BodyRead(_) => (S::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            RegistryError::Storage(storage::StorageError::Full(_)) => {
                tracing::error!(error = %e, "storage is full");
                return OciError::new(
                    S::INSUFFICIENT_STORAGE,
                    "UNKNOWN",
                    "the registry's storage is full; the upload was not stored",
                );
            }
            RegistryError::Db(_) | RegistryError::Storage(_) | RegistryError::Internal(_) => {
                tracing::error!(error = %e, "registry request failed");
                return OciError::new(S::INTERNAL_SERVER_ERROR, "UNKNOWN", "internal server error");
            }
        };
        OciError::new(status, code, message)
    }
}

/// The `Range` header value of an upload holding `size` bytes (inclusive end, no unit, as the
/// Docker registry protocol writes it).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}
