//! Blob uploads: start (monolithic, mount or session), chunk, status, finish and cancel.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use db::BlobRow;
use wharf_core::{Registry, RegistryError, UploadProgress};

use crate::blobs::parse_digest;
use crate::error::upload_range;
use crate::{OciError, Req, respond, unsupported};

const UPLOAD_UUID: &str = "docker-upload-uuid";
const CONTENT_DIGEST: &str = "docker-content-digest";

fn created(name: &str, blob: &BlobRow) -> Response {
    respond(
        StatusCode::CREATED,
        vec![
            (
                header::LOCATION,
                format!("/v2/{name}/blobs/{}", blob.digest),
            ),
            (
                header::HeaderName::from_static(CONTENT_DIGEST),
                blob.digest.clone(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

fn in_progress(status: StatusCode, name: &str, upload: &UploadProgress) -> Response {
    respond(
        status,
        vec![
            (
                header::LOCATION,
                format!("/v2/{name}/blobs/uploads/{}", upload.uuid),
            ),
            (header::RANGE, upload_range(upload.size)),
            (
                header::HeaderName::from_static(UPLOAD_UUID),
                upload.uuid.clone(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

/// `POST /v2/<name>/blobs/uploads/`
pub(crate) async fn start(registry: &Registry, name: &str, req: Req) -> Result<Response, OciError> {
    if req.method != Method::POST {
        return Ok(unsupported());
    }
    let path = registry.parse_path(name)?;
    let repo = registry.repository_for_push(&path).await?;
    if let Some(mount) = req.query("mount") {
        let digest = parse_digest(&mount)?;
        // A mount needs pull on the source; without it the client uploads as usual.
        let readable = |from: &str| {
            registry.parse_path(from).is_ok_and(|source| {
                req.grants
                    .as_ref()
                    .is_some_and(|g| g.allows(&source, auth::scope::Action::Pull))
            })
        };
        if let Some(from) = req.query("from").filter(|f| readable(f))
            && let Some(blob) = registry.mount_blob(&repo, &from, &digest).await?
        {
            return Ok(created(name, &blob));
        }
        // No source, or the blob is not there: the client uploads as usual.
    } else if let Some(digest) = req.query("digest") {
        let digest = parse_digest(&digest)?;
        let blob = registry
            .upload_blob(&repo, &digest, req.into_stream())
            .await?;
        return Ok(created(name, &blob));
    }
    let upload = registry.start_upload(&repo).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, &upload))
}

/// `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>`
pub(crate) async fn handle(
    registry: &Registry,
    name: &str,
    uuid: &str,
    req: Req,
) -> Result<Response, OciError> {
    let path = registry.parse_path(name)?;
    match req.method {
        Method::GET | Method::HEAD => {
            let repo = registry.repository(&path).await?;
            let upload = registry.upload_status(&repo, uuid).await?;
            Ok(in_progress(StatusCode::NO_CONTENT, name, &upload))
        }
        Method::PATCH => {
            let repo = registry.repository_for_push(&path).await?;
            let start = match req.header(&header::CONTENT_RANGE) {
                Some(value) => Some(parse_content_range(value).ok_or_else(|| {
                    OciError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "BLOB_UPLOAD_INVALID",
                        format!("invalid Content-Range {value:?}"),
                    )
                })?),
                None => None,
            };
            let upload = registry
                .write_chunk(&repo, uuid, start, req.into_stream())
                .await?;
            Ok(in_progress(StatusCode::ACCEPTED, name, &upload))
        }
        Method::PUT => {
            let repo = registry.repository_for_push(&path).await?;
            let Some(digest) = req.query("digest") else {
                return Err(RegistryError::UploadInvalid(
                    "the digest query parameter is required to finish an upload".into(),
                )
                .into());
            };
            let digest = parse_digest(&digest)?;
            let blob = registry
                .finish_upload(&repo, uuid, &digest, req.into_stream())
                .await?;
            Ok(created(name, &blob))
        }
        Method::DELETE => {
            let repo = registry.repository(&path).await?;
            registry.cancel_upload(&repo, uuid).await?;
            Ok(respond(
                StatusCode::NO_CONTENT,
                vec![(header::CONTENT_LENGTH, "0".into())],
                Body::empty(),
            ))
        }
        _ => Ok(unsupported()),
    }
}

/// The start offset of a `Content-Range: <start>-<end>` chunk header (a `bytes ` unit prefix,
/// as some clients send it, is accepted).
fn parse_content_range(value: &str) -> Option<u64> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    (start <= end).then_some(start)
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_ranges() {
        use super::parse_content_range as p;
        assert_eq!(p("0-99"), Some(0));
        assert_eq!(p("100-199"), Some(100));
        assert_eq!(p("bytes 100-199/*"), Some(100));
        assert_eq!(p("bytes=5-9"), Some(5));
        assert_eq!(p("9-5"), None);
        assert_eq!(p("abc"), None);
    }
}
