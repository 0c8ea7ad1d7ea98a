//! Blob HEAD, GET (with `Range`) and DELETE.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use types::Digest;
use wharf_core::{Registry, RegistryError};

use crate::{OciError, Req, respond, unsupported};

/// How long a direct-download URL stays valid: long enough for a slow pull of a big layer to
/// start, short enough that a leaked URL soon stops working.
const DIRECT_DOWNLOAD_EXPIRY: std::time::Duration = std::time::Duration::from_secs(600);

pub(crate) fn parse_digest(digest: &str) -> Result<Digest, OciError> {
    digest.parse().map_err(|e: types::DigestError| {
        OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })
}

pub(crate) async fn handle(
    registry: &Registry,
    name: &str,
    digest: &str,
    req: Req,
) -> Result<Response, OciError> {
    if !matches!(req.method, Method::GET | Method::HEAD | Method::DELETE) {
        return Ok(unsupported());
    }
    let path = registry.parse_path(name)?;
    let digest = parse_digest(digest)?;
    let repo = registry.repository(&path).await?;
    if req.method == Method::DELETE {
        // Quay never deletes blobs on request: garbage collection frees them once unreferenced.
        registry.blob(&repo, &digest).await?;
        return Err(RegistryError::Unsupported(
            "blobs are deleted by garbage collection once no manifest references them".into(),
        )
        .into());
    }
    let blob = registry.blob(&repo, &digest).await?;
    if req.method == Method::GET
        && registry.settings().direct_download
        && let Some(url) = registry
            .blob_download_url(&blob, DIRECT_DOWNLOAD_EXPIRY)
            .await?
    {
        // Quay's direct download: the client fetches (and ranges over) the object itself.
        registry.record_pulled_bytes(blob.size as u64);
        return Ok(respond(
            StatusCode::FOUND,
            vec![
                (header::LOCATION, url),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    blob.digest.clone(),
                ),
            ],
            Body::empty(),
        ));
    }
    let size = blob.size as u64;
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (
            header::HeaderName::from_static("docker-content-digest"),
            blob.digest.clone(),
        ),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{}\"", blob.digest)),
        (header::CACHE_CONTROL, "max-age=31536000".to_string()),
    ];
    let range = match req.header(&header::RANGE) {
        Some(value) => match parse_range(value, size) {
            RangeRequest::Satisfiable(start, end) => Some((start, end)),
            RangeRequest::Unsatisfiable => {
                return Ok(respond(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    vec![(header::CONTENT_RANGE, format!("bytes */{size}"))],
                    Body::empty(),
                ));
            }
            RangeRequest::Ignored => None,
        },
        None => None,
    };
    let (status, length) = match range {
        Some((start, end)) => {
            headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            (StatusCode::PARTIAL_CONTENT, end - start + 1)
        }
        None => (StatusCode::OK, size),
    };
    headers.push((header::CONTENT_LENGTH, length.to_string()));
    if req.method == Method::HEAD {
        return Ok(respond(status, headers, Body::empty()));
    }
    let bytes = registry
        .blob_bytes(&blob, range.map(|(s, e)| s..=e))
        .await?;
    registry.record_pulled_bytes(length);
    Ok(respond(status, headers, Body::from_stream(bytes)))
}

#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single byte range this server understands; the whole blob is sent (RFC 9110 allows
    /// ignoring `Range`).
    Ignored,
}

/// Parses a single `bytes=` range against an object of `size` bytes.
fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) if size > 0 => Some((size.saturating_sub(n), size - 1)),
            Ok(_) => return RangeRequest::Unsatisfiable,
            Err(_) => None,
        },
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|s| (s, size.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        Some((start, _)) if start >= size => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Satisfiable(start, end),
        None => RangeRequest::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest::*, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Satisfiable(0, 9));
        assert_eq!(parse_range("bytes=90-200", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=10-", 100), Satisfiable(10, 99));
        assert_eq!(parse_range("bytes=-10", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Satisfiable(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Ignored);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(parse_range("items=0-1", 100), Ignored);
    }
}
