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

/// Plain-HTTP access to one registry at `host` (`127.0.0.1:PORT`), authenticating as a client
/// does: a request answered 401 with a `Bearer` challenge is repeated once with a token from
/// the challenge's realm, for its service and scope, asked for with the registry's credentials
/// (or anonymously).
#[derive(Clone)]
pub struct Registry {
    client: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

/// A `WWW-Authenticate: Bearer` challenge.
struct Challenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

impl Registry {
    /// Anonymous access.
    pub fn new(host: &str) -> Registry {
        Registry {
            client: reqwest::Client::new(),
            base: format!("http://{host}/v2"),
            credentials: None,
        }
    }

    /// Access as `user` with `password` (HTTP Basic on the token request).
    pub fn with_credentials(host: &str, user: &str, password: &str) -> Registry {
        Registry {
            credentials: Some((user.to_string(), password.to_string())),
            ..Registry::new(host)
        }
    }

    /// GET `/v2/<path>` with an Accept header; returns status, headers and body. A refusal
    /// that survives the token dance is returned as it is (401 with its challenge).
    pub async fn get(
        &self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let url = format!("{}/{path}", self.base);
        let mut response = self.send(&url, accept, None).await?;
        if response.status() == StatusCode::UNAUTHORIZED
            && let Some(challenge) = bearer_challenge(response.headers())
            && let Some(token) = self.token(&challenge).await?
        {
            response = self.send(&url, accept, Some(&token)).await?;
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("body of GET {url}"))?;
        Ok((status, headers, body.to_vec()))
    }

    /// Where GET `/v2/<path>` redirects to (None when it answers without a redirect).
    pub async fn redirect(&self, path: &str) -> anyhow::Result<Option<String>> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let not_following = Registry {
            client,
            ..self.clone()
        };
        let (status, headers, _) = not_following.get(path, "*/*").await?;
        Ok(if status.is_redirection() {
            header(&headers, "location")
        } else {
            None
        })
    }

    async fn send(
        &self,
        url: &str,
        accept: &str,
        token: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.client.get(url).header(ACCEPT, accept);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.with_context(|| format!("GET {url}"))
    }

    /// A token for `challenge`; None when the realm refuses one (a wrong password, or an
    /// anonymous request without a scope).
    async fn token(&self, challenge: &Challenge) -> anyhow::Result<Option<String>> {
        let mut query = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(("service", service.as_str()));
        }
        if let Some(scope) = &challenge.scope {
            query.push(("scope", scope.as_str()));
        }
        let mut request = self.client.get(with_query(&challenge.realm, &query));
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {}", challenge.realm))?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("token from {}", challenge.realm))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .with_context(|| format!("{} answered without a token: {body}", challenge.realm))?;
        Ok(Some(token.to_string()))
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

/// `url?k=v&…` with keys and values percent-encoded (everything but RFC 3986's unreserved
/// characters).
fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, query: &[(K, V)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
        .collect();
    if pairs.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{}", pairs.join("&"))
    }
}

/// The `Bearer` challenge in `WWW-Authenticate`, if there is one with a realm.
fn bearer_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let value = header(headers, "www-authenticate")?;
    let (scheme, params) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key="value",key=value,…` as in RFC 7235 auth-params; quoted values may hold commas
/// (`scope="repository:a/b:pull,push"`) and backslash escapes.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next().is_none() {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auth_params_keep_commas_inside_quotes() {
        let params = super::auth_params(
            r#"realm="http://h:1/v2/auth",service="h:1",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            params,
            [
                ("realm".to_string(), "http://h:1/v2/auth".to_string()),
                ("service".to_string(), "h:1".to_string()),
                ("scope".to_string(), "repository:a/b:pull,push".to_string()),
            ]
        );
    }
}
