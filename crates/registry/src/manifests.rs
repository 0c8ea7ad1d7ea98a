//! Manifest PUT, GET, HEAD and DELETE by tag or digest.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use types::Reference;
use wharf_core::{PullRef, Registry, RegistryError};

use crate::{OciError, Req, respond, unsupported};

fn parse_reference(
    registry: &Registry,
    reference: &str,
    method: &Method,
) -> Result<Reference, OciError> {
    registry.parse_reference(reference).map_err(|e| {
        if reference.contains(':') {
            OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
        } else if *method == Method::PUT {
            OciError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", e.to_string())
        } else {
            OciError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", e.to_string())
        }
    })
}

/// Handles the request and counts pulls (GET and HEAD, as Quay counts them) and pushes by the
/// status they were answered with. Refusals before this point (no token) are not counted.
pub(crate) async fn handle(
    registry: &Registry,
    name: &str,
    reference: &str,
    req: Req,
) -> Result<Response, OciError> {
    let method = req.method.clone();
    let by = if reference.contains(':') {
        PullRef::Digest
    } else {
        PullRef::Tag
    };
    let mut pushed_type = None;
    let result = answer(registry, name, reference, req, &mut pushed_type).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.status.as_u16(),
    };
    match method {
        Method::GET | Method::HEAD => registry.record_pull(by, status),
        Method::PUT => registry.record_push(status, pushed_type.as_deref()),
        _ => {}
    }
    result
}

async fn answer(
    registry: &Registry,
    name: &str,
    reference: &str,
    req: Req,
    pushed_type: &mut Option<String>,
) -> Result<Response, OciError> {
    let path = registry.parse_path(name)?;
    let reference = parse_reference(registry, reference, &req.method)?;
    match req.method {
        Method::GET | Method::HEAD => {
            let repo = registry.repository(&path).await?;
            let manifest = registry.manifest(&repo, &reference).await?;
            let headers = vec![
                (header::CONTENT_TYPE, manifest.media_type.clone()),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    manifest.digest.clone(),
                ),
                (header::ETAG, format!("\"{}\"", manifest.digest)),
                (header::CONTENT_LENGTH, manifest.bytes.len().to_string()),
            ];
            let body = if req.method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(manifest.bytes.clone())
            };
            Ok(respond(StatusCode::OK, headers, body))
        }
        Method::PUT => {
            let repo = registry.repository_for_push(&path).await?;
            let content_type = req.header(&header::CONTENT_TYPE).map(str::to_string);
            let limit = registry.settings().max_manifest_size;
            let body = http_body_util::Limited::new(req.body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        RegistryError::SizeInvalid(format!(
                            "manifest is larger than the {limit} bytes allowed"
                        ))
                    } else {
                        RegistryError::BodyRead(e.to_string())
                    }
                })?
                .to_bytes();
            let pushed = registry
                .put_manifest(&repo, &reference, content_type.as_deref(), body.to_vec())
                .await?;
            *pushed_type = Some(pushed.media_type.clone());
            let mut headers = vec![
                (
                    header::LOCATION,
                    format!("/v2/{name}/manifests/{}", pushed.digest),
                ),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    pushed.digest.to_string(),
                ),
                (header::CONTENT_LENGTH, "0".into()),
            ];
            if let Some(subject) = pushed.subject {
                headers.push((
                    header::HeaderName::from_static("oci-subject"),
                    subject.to_string(),
                ));
            }
            Ok(respond(StatusCode::CREATED, headers, Body::empty()))
        }
        Method::DELETE => {
            let repo = registry.repository(&path).await?;
            registry.delete_manifest(&repo, &reference).await?;
            Ok(respond(
                StatusCode::ACCEPTED,
                vec![(header::CONTENT_LENGTH, "0".into())],
                Body::empty(),
            ))
        }
        _ => Ok(unsupported()),
    }
}
