//! The registry client: the handful of OCI Distribution calls the scenarios are made of. Every
//! call checks the status the specification requires and turns anything else into an error that
//! carries the method, the path, the status and the start of the response body. Registries that
//! ask for authentication get it the way real clients give it (see [`crate::auth`]).

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, Response, StatusCode, header};

use crate::auth::{
    Access, AuthState, Challenge, Credentials, Scheme, parse_challenge, query_escape,
};
use crate::payload::{Blob, Image, MANIFEST_TYPE};

/// Size of the pieces a streamed upload body is cut into. Slices of the shared payload, so no
/// byte is copied in the client.
const STREAM_PIECE: usize = 1 << 20;
/// Stops a runaway pagination loop (a server that keeps answering with a `Link`).
const MAX_PAGES: u32 = 100_000;

pub struct Registry {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    base: String,
    auth: AuthState,
}

impl Registry {
    /// A client for the registry at `base`, which must be on the loopback interface: the
    /// benchmark never talks to anything else. `credentials` are used only if the registry
    /// challenges a request, and only with its own token realm (or itself, for Basic).
    pub fn new(base: &str, credentials: Option<&Credentials>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .context("the registry URL must start with http://")?;
        let host = rest.rsplit_once(':').map_or(rest, |(host, _port)| host);
        ensure!(
            matches!(host, "127.0.0.1" | "localhost" | "[::1]") && !rest.contains('/'),
            "the benchmark only talks to a registry on loopback (http://127.0.0.1:PORT), not {base}"
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()?;
        Ok(Registry {
            client,
            base,
            auth: AuthState::new(credentials)?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves a `Location` or `Link` target against the registry; a target on another
    /// origin is refused rather than followed.
    fn resolve(&self, target: &str) -> anyhow::Result<String> {
        if target.starts_with('/') {
            return Ok(self.url(target));
        }
        match target.strip_prefix(&self.base) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') => {
                Ok(target.to_string())
            }
            _ => bail!("refusing to follow {target:?}: not on {}", self.base),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        access: Access<'_>,
        expected: StatusCode,
        what: &str,
    ) -> anyhow::Result<Response> {
        let response = self.execute(request, access, what).await?;
        if response.status() == expected {
            return Ok(response);
        }
        Err(unexpected(response, expected, what).await)
    }

    /// Sends `request` with the authorization `access` needs; on a 401 with a challenge it
    /// can answer, answers it and sends the request once more. A request whose body cannot
    /// be replayed (a streamed upload) is not retried: its scope's token is already cached by
    /// the request that started the upload.
    async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        access: Access<'_>,
        what: &str,
    ) -> anyhow::Result<Response> {
        let replay = request.try_clone();
        let used = self
            .authorization(access)
            .await
            .with_context(|| format!("{what}: getting a token"))?;
        let request = match &used {
            Some(value) => request.header(header::AUTHORIZATION, value.clone()),
            None => request,
        };
        let response = request.send().await.with_context(|| what.to_string())?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let (Some(challenge), Some(replay)) = (challenge, replay) else {
            return Ok(response);
        };
        let Some(answer) = self
            .answer(challenge, access, used.as_ref())
            .await
            .with_context(|| format!("{what}: answering the 401 challenge"))?
        else {
            return Ok(response);
        };
        // Read the refusal so its connection goes back to the pool.
        let _ = response.bytes().await;
        replay
            .header(header::AUTHORIZATION, answer)
            .send()
            .await
            .with_context(|| what.to_string())
    }

    /// The `Authorization` value a request for `access` carries before any challenge: none
    /// for a registry that has not asked, the credentials for Basic, the scope's token
    /// (fetched now if not cached) for Bearer.
    async fn authorization(&self, access: Access<'_>) -> anyhow::Result<Option<HeaderValue>> {
        if !self.auth.challenged() {
            return Ok(None);
        }
        let scheme = self.auth.scheme();
        match &*scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.auth.basic().cloned()),
            Scheme::Bearer { realm, service } => {
                let scope = access.scope();
                if let Some(token) = self.auth.cached(&scope) {
                    return Ok(Some(token));
                }
                // A push token also allows pulls of the same repository.
                if let Access::Pull(repo) = access
                    && let Some(token) = self.auth.cached(&Access::Push(repo).scope())
                {
                    return Ok(Some(token));
                }
                let asked = (!scope.is_empty()).then_some(scope.as_str());
                let token = self
                    .token(&scope, realm, service.as_deref(), asked, None)
                    .await?;
                Ok(Some(token))
            }
        }
    }

    /// The `Authorization` value answering `challenge` for a request that carried `used`, or
    /// None when there is nothing better to send (a Basic challenge without credentials, or
    /// one that refused the credentials already sent).
    async fn answer(
        &self,
        challenge: Challenge,
        access: Access<'_>,
        used: Option<&HeaderValue>,
    ) -> anyhow::Result<Option<HeaderValue>> {
        match challenge {
            Challenge::Basic => {
                let Some(basic) = self.auth.basic() else {
                    return Ok(None);
                };
                if used == Some(basic) {
                    return Ok(None);
                }
                self.auth.set_scheme(Scheme::Basic);
                Ok(Some(basic.clone()))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let realm = self
                    .resolve(&realm)
                    .context("the token realm is not on the registry's origin")?;
                self.auth.set_scheme(Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                });
                // Cached under the request's own scope, fetched for the one the registry
                // named (they are the same for every registry we know).
                let key = access.scope();
                let asked = scope.or_else(|| (!key.is_empty()).then(|| key.clone()));
                let token = self
                    .token(&key, &realm, service.as_deref(), asked.as_deref(), used)
                    .await?;
                Ok(Some(token))
            }
        }
    }

    /// The cached token for `key` unless it is `stale`, else a fresh one from the realm. One
    /// fetch per key at a time: concurrent workers wait for it and reuse its result.
    async fn token(
        &self,
        key: &str,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        stale: Option<&HeaderValue>,
    ) -> anyhow::Result<HeaderValue> {
        let lock = self.auth.fetch_lock(key);
        let _guard = lock.lock().await;
        if let Some(token) = self.auth.cached(key)
            && Some(&token) != stale
        {
            return Ok(token);
        }
        let token = self.fetch_token(realm, service, scope).await?;
        self.auth.count_fetch();
        self.auth.store(key, token.clone());
        self.auth.fetch_done(key);
        Ok(token)
    }

    /// `GET <realm>?service=…&scope=…` with the Basic credentials if any: `Bearer <token>`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> anyhow::Result<HeaderValue> {
        let mut url = realm.to_string();
        let params = [("service", service), ("scope", scope)];
        for (name, value) in params.iter().filter_map(|(n, v)| Some((n, (*v)?))) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{name}={}", query_escape(value)));
        }
        let mut request = self.client.get(&url);
        if let Some(basic) = self.auth.basic() {
            request = request.header(header::AUTHORIZATION, basic.clone());
        }
        let who = self.auth.username().unwrap_or("anonymous");
        let what = format!("GET {url} (token request as {who})");
        let response = request.send().await.with_context(|| what.clone())?;
        if response.status() != StatusCode::OK {
            return Err(unexpected(response, StatusCode::OK, &what).await);
        }
        let body: serde_json::Value = response.json().await.with_context(|| what.clone())?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .with_context(|| format!("{what}: no token in the response"))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .with_context(|| format!("{what}: the token is not a header value"))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The token realm, once the registry has sent a Bearer challenge.
    pub fn token_realm(&self) -> Option<String> {
        match &*self.auth.scheme() {
            Scheme::Bearer { realm, .. } => Some(realm.clone()),
            _ => None,
        }
    }

    /// Tokens fetched from the realm so far by requests that needed one.
    pub fn tokens_fetched(&self) -> u64 {
        self.auth.fetched()
    }

    /// How this client authenticates, for the report.
    pub fn auth_description(&self) -> String {
        self.auth.describe()
    }

    /// One token request as a client makes it (`GET <realm>?service=…&scope=<scope>` with
    /// the Basic credentials), bypassing the cache: the token scenario.
    pub async fn request_token(&self, scope: &str) -> anyhow::Result<()> {
        let scheme = self.auth.scheme();
        let Scheme::Bearer { realm, service } = &*scheme else {
            bail!("the registry has not asked for a token: there is no realm to ask");
        };
        self.fetch_token(realm, service.as_deref(), Some(scope))
            .await
            .map(drop)
    }

    fn location(response: &Response, what: &str) -> anyhow::Result<String> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .with_context(|| format!("{what}: no Location header"))
    }

    /// `GET /v2/`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.send(
            self.client.get(self.url("/v2/")),
            Access::Registry,
            StatusCode::OK,
            "GET /v2/",
        )
        .await
        .map(drop)
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the URL of the new upload session.
    async fn start_upload(&self, repo: &str) -> anyhow::Result<String> {
        let what = format!("POST /v2/{repo}/blobs/uploads/");
        let request = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header(header::CONTENT_LENGTH, "0");
        let response = self
            .send(request, Access::Push(repo), StatusCode::ACCEPTED, &what)
            .await?;
        self.resolve(&Self::location(&response, &what)?)
    }

    fn with_digest(url: &str, digest: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}digest={digest}")
    }

    /// A monolithic blob push: `POST`, then `PUT ?digest=` with the whole blob as the body.
    pub async fn push_monolithic(&self, repo: &str, blob: &Blob) -> anyhow::Result<()> {
        let upload = self.start_upload(repo).await?;
        let request = self
            .client
            .put(Self::with_digest(&upload, &blob.digest))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(blob.data.clone());
        let what = format!("PUT (monolithic) upload in {repo}");
        self.send(request, Access::Push(repo), StatusCode::CREATED, &what)
            .await?;
        Ok(())
    }

    /// A streamed chunked push: `POST`, one `PATCH` whose body is streamed without a length
    /// (chunked transfer encoding), then `PUT ?digest=` with an empty body.
    pub async fn push_streamed(&self, repo: &str, blob: &Blob) -> anyhow::Result<()> {
        let upload = self.start_upload(repo).await?;
        let data = blob.data.clone();
        let len = data.len();
        let pieces = (0..len)
            .step_by(STREAM_PIECE)
            .map(move |at| Ok::<_, std::io::Error>(data.slice(at..(at + STREAM_PIECE).min(len))));
        let request = self
            .client
            .patch(&upload)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)));
        let what = format!("PATCH (streamed) upload in {repo}");
        let response = self
            .send(request, Access::Push(repo), StatusCode::ACCEPTED, &what)
            .await?;
        let upload = self.resolve(&Self::location(&response, &what)?)?;
        let request = self
            .client
            .put(Self::with_digest(&upload, &blob.digest))
            .header(header::CONTENT_LENGTH, "0");
        let what = format!("PUT ?digest= (closing a streamed upload) in {repo}");
        self.send(request, Access::Push(repo), StatusCode::CREATED, &what)
            .await?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with an OCI image manifest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Blob,
    ) -> anyhow::Result<()> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let request = self
            .client
            .put(self.url(&path))
            .header(header::CONTENT_TYPE, MANIFEST_TYPE)
            .body(manifest.data.clone());
        let what = format!("PUT {path}");
        self.send(request, Access::Push(repo), StatusCode::CREATED, &what)
            .await?;
        Ok(())
    }

    /// The zb monolithic push: layer, config, then the manifest under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) -> anyhow::Result<()> {
        self.push_monolithic(repo, &image.layer).await?;
        self.push_monolithic(repo, &image.config).await?;
        self.put_manifest(repo, tag, &image.manifest).await
    }

    fn manifest_request(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
    ) -> (reqwest::RequestBuilder, String) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let request = self
            .client
            .request(method.clone(), self.url(&path))
            .header(header::ACCEPT, MANIFEST_TYPE);
        (request, format!("{method} {path}"))
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<()> {
        let (request, what) = self.manifest_request(Method::HEAD, repo, reference);
        self.send(request, Access::Pull(repo), StatusCode::OK, &what)
            .await
            .map(drop)
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the manifest bytes.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<Bytes> {
        let (request, what) = self.manifest_request(Method::GET, repo, reference);
        let response = self
            .send(request, Access::Pull(repo), StatusCode::OK, &what)
            .await?;
        response.bytes().await.with_context(|| what.clone())
    }

    /// `GET /v2/<repo>/blobs/<digest>`, reading the whole body without keeping it: the
    /// number of bytes received, checked against `Content-Length` when there is one.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> anyhow::Result<u64> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let what = format!("GET {path}");
        let mut response = self
            .send(
                self.client.get(self.url(&path)),
                Access::Pull(repo),
                StatusCode::OK,
                &what,
            )
            .await?;
        let declared = response.content_length();
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.with_context(|| what.clone())? {
            received += chunk.len() as u64;
        }
        if let Some(declared) = declared {
            ensure!(
                received == declared,
                "{what}: {received} of {declared} bytes"
            );
        }
        Ok(received)
    }

    /// `GET /v2/<repo>/blobs/<digest>` into memory, for the one-off content check of a
    /// fixture (not timed).
    pub async fn get_blob_bytes(&self, repo: &str, digest: &str) -> anyhow::Result<Bytes> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let what = format!("GET {path}");
        let response = self
            .send(
                self.client.get(self.url(&path)),
                Access::Pull(repo),
                StatusCode::OK,
                &what,
            )
            .await?;
        response.bytes().await.with_context(|| what.clone())
    }

    /// The zb pull: HEAD and GET the manifest by tag, then GET its config and every layer.
    /// Returns the blob bytes received.
    pub async fn pull_image(&self, repo: &str, tag: &str) -> anyhow::Result<u64> {
        self.head_manifest(repo, tag).await?;
        let manifest = self.get_manifest(repo, tag).await?;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)
            .with_context(|| format!("manifest {repo}:{tag} is not JSON"))?;
        let mut digests = vec![digest_of(&manifest["config"])?];
        if let Some(layers) = manifest["layers"].as_array() {
            for layer in layers {
                digests.push(digest_of(layer)?);
            }
        }
        let mut bytes = 0;
        for digest in &digests {
            bytes += self.get_blob(repo, digest).await?;
        }
        Ok(bytes)
    }

    /// Reads a whole paginated list (`/v2/_catalog` or `/v2/<repo>/tags/list`) the way clients
    /// do: no `n`, follow `Link: <...>; rel="next"` until there is none. Returns the number of
    /// entries in `field` and the number of pages.
    pub async fn list_all(
        &self,
        path: &str,
        access: Access<'_>,
        field: &str,
    ) -> anyhow::Result<(u64, u32)> {
        let mut url = self.url(path);
        let mut entries = 0u64;
        for page in 1..=MAX_PAGES {
            let what = format!("GET {url}");
            let response = self
                .send(self.client.get(&url), access, StatusCode::OK, &what)
                .await?;
            let next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body: serde_json::Value = response.json().await.with_context(|| what.clone())?;
            entries += body[field].as_array().map_or(0, |a| a.len() as u64);
            match next {
                Some(next) => url = self.resolve(&next)?,
                None => return Ok((entries, page)),
            }
        }
        bail!("GET {path}: more than {MAX_PAGES} pages")
    }
}

/// The error for a response with another status than `expected`: what was asked, the status,
/// the challenge if any and the start of the body.
async fn unexpected(response: Response, expected: StatusCode, what: &str) -> anyhow::Error {
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (WWW-Authenticate: {v})"))
        .unwrap_or_default();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    anyhow::anyhow!("{what}: expected {expected}, got {status}{challenge}: {body}")
}

fn digest_of(descriptor: &serde_json::Value) -> anyhow::Result<String> {
    descriptor["digest"]
        .as_str()
        .map(str::to_string)
        .context("descriptor without a digest")
}

/// The target of the `rel="next"` entry of a `Link` header.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_accepted() {
        assert!(Registry::new("http://127.0.0.1:5000", None).is_ok());
        assert!(Registry::new("http://localhost:5000/", None).is_ok());
        assert!(Registry::new("http://example.com:5000", None).is_err());
        assert!(Registry::new("https://127.0.0.1:5000", None).is_err());
        assert!(Registry::new("http://127.0.0.1:5000/v2", None).is_err());
    }

    #[test]
    fn locations_resolve_on_the_same_origin_only() {
        let r = Registry::new("http://127.0.0.1:5000", None).unwrap();
        assert_eq!(
            r.resolve("/v2/a/b").unwrap(),
            "http://127.0.0.1:5000/v2/a/b"
        );
        assert_eq!(
            r.resolve("http://127.0.0.1:5000/v2/x?_state=y").unwrap(),
            "http://127.0.0.1:5000/v2/x?_state=y"
        );
        assert!(r.resolve("http://127.0.0.1:50001/v2/x").is_err());
        assert!(r.resolve("http://evil/v2/x").is_err());
    }

    #[test]
    fn digest_is_appended_as_a_query_parameter() {
        assert_eq!(
            Registry::with_digest("/u/1", "sha256:ab"),
            "/u/1?digest=sha256:ab"
        );
        assert_eq!(
            Registry::with_digest("/u/1?_state=x", "sha256:ab"),
            "/u/1?_state=x&digest=sha256:ab"
        );
    }

    #[test]
    fn next_links() {
        assert_eq!(
            next_link("</v2/_catalog?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }
}
