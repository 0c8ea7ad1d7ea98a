//! Tag list, catalog and referrers.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use wharf_core::{Page, Registry, RegistryError, referrers_index};

use crate::blobs::parse_digest;
use crate::{OciError, Req, respond, unsupported};

fn page_size(req: &Req) -> Result<Option<u64>, OciError> {
    match req.query("n") {
        None => Ok(None),
        Some(n) if n.is_empty() => Ok(None),
        Some(n) => n.parse::<u64>().map(Some).map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("invalid n {n:?}"),
            )
        }),
    }
}

fn json<T: Serialize>(value: &T, link: Option<String>) -> Response {
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    if let Some(link) = link {
        headers.push((header::LINK, link));
    }
    respond(
        StatusCode::OK,
        headers,
        Body::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

fn next_link(base: &str, n: Option<u64>, page: &Page) -> Option<String> {
    let last = page.names.last()?;
    if !page.more {
        return None;
    }
    let n = n.map(|n| format!("n={n}&")).unwrap_or_default();
    Some(format!("<{base}?{n}last={last}>; rel=\"next\""))
}

#[derive(Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}

pub(crate) async fn tags(registry: &Registry, name: &str, req: Req) -> Result<Response, OciError> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(unsupported());
    }
    let path = registry.parse_path(name)?;
    let repo = registry.repository(&path).await?;
    let n = page_size(&req)?;
    let last = req.query("last");
    let page = registry.list_tags(&repo, n, last.as_deref()).await?;
    let link = next_link(&format!("/v2/{name}/tags/list"), n, &page);
    Ok(json(
        &TagList {
            name: &path.to_string(),
            tags: &page.names,
        },
        link,
    ))
}

#[derive(Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

pub(crate) async fn catalog(v2: &crate::V2, req: Req) -> Result<Response, OciError> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(unsupported());
    }
    let n = page_size(&req)?;
    let last = req.query("last");
    let viewer = match &req.grants {
        Some(grants) => v2.auth.catalog_viewer(grants).await.map_err(|e| {
            tracing::error!(error = %e, "catalog viewer lookup failed");
            OciError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "internal error; see the server log",
            )
        })?,
        None => db::Viewer::Public,
    };
    let page = v2.registry.catalog(viewer, n, last.as_deref()).await?;
    let link = next_link("/v2/_catalog", n, &page);
    Ok(json(
        &Catalog {
            repositories: &page.names,
        },
        link,
    ))
}

pub(crate) async fn referrers(
    registry: &Registry,
    name: &str,
    digest: &str,
    req: Req,
) -> Result<Response, OciError> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(unsupported());
    }
    let path = registry.parse_path(name)?;
    let digest = parse_digest(digest)?;
    let repo = registry.repository(&path).await?;
    let artifact_type = req.query("artifactType").filter(|t| !t.is_empty());
    let descriptors = registry
        .referrers(&repo, &digest, artifact_type.as_deref())
        .await?;
    let body = serde_json::to_vec(&referrers_index(&descriptors))
        .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
    let mut headers = vec![(
        header::CONTENT_TYPE,
        types::media_type::OCI_INDEX.to_string(),
    )];
    if artifact_type.is_some() {
        headers.push((
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType".into(),
        ));
    }
    Ok(respond(StatusCode::OK, headers, Body::from(body)))
}
