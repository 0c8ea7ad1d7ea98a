//! A small HTTP client for checking what a registry serves, independently of the tools that
//! pushed it.

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};

use crate::digest::sha256;

/// Every manifest media type these tests push, so that a registry never has to convert.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as served, already checked to hash to the digest the registry announced.
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub json: serde_json::Value,
}

impl Manifest {
    /// Config and layer digests of an image manifest.
    pub fn blob_digests(&self) -> Vec<String> {
        crate::digest::image_blob_digests(&self.json)
    }
}

/// Plain-HTTP access to one registry at `host` (`127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Registry {
    client: reqwest::Client,
    base: String,
}

impl Registry {
    pub fn new(host: &str) -> Registry {
        Registry {
            client: reqwest::Client::new(),
            base: format!("http://{host}/v2"),
        }
    }

    /// GET `/v2/<path>` with an Accept header; returns status, headers and body.
    pub async fn get(
        &self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let url = format!("{}/{path}", self.base);
        let response = self
            .client
            .get(&url)
            .header(ACCEPT, accept)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("body of GET {url}"))?;
        Ok((status, headers, body.to_vec()))
    }

    /// GET a manifest by tag or digest and check that its bytes hash to `Docker-Content-Digest`
    /// (and to the reference, when the reference is a digest).
    pub async fn manifest(&self, name: &str, reference: &str) -> anyhow::Result<Manifest> {
        let what = format!("manifest {name}:{reference}");
        let (status, headers, bytes) = self
            .get(&format!("{name}/manifests/{reference}"), ACCEPT_ALL)
            .await?;
        ensure!(status == StatusCode::OK, "GET {what}: status {status}");
        let digest = sha256(&bytes);
        let announced = header(&headers, "docker-content-digest")
            .with_context(|| format!("GET {what}: no Docker-Content-Digest"))?;
        ensure!(
            announced == digest,
            "GET {what}: Docker-Content-Digest {announced} but the body hashes to {digest}"
        );
        if reference.starts_with("sha256:") {
            ensure!(reference == digest, "GET {what}: body hashes to {digest}");
        }
        let media_type = header(&headers, CONTENT_TYPE.as_str())
            .with_context(|| format!("GET {what}: no Content-Type"))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("GET {what}: not JSON"))?;
        if let Some(declared) = json["mediaType"].as_str() {
            ensure!(
                declared == media_type,
                "GET {what}: Content-Type {media_type} but the manifest says {declared}"
            );
        }
        Ok(Manifest {
            digest,
            media_type,
            bytes,
            json,
        })
    }

    /// GET a blob and check that it hashes to `digest`; returns its bytes.
    pub async fn blob(&self, name: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let (status, _, bytes) = self.get(&format!("{name}/blobs/{digest}"), "*/*").await?;
        ensure!(
            status == StatusCode::OK,
            "GET blob {name}@{digest}: status {status}"
        );
        let actual = sha256(&bytes);
        ensure!(
            actual == digest,
            "GET blob {name}@{digest}: body hashes to {actual}"
        );
        Ok(bytes)
    }
}

/// A header's value as text, if present and readable.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
