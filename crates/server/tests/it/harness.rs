//! The test application: a registry over a fresh database and storage directory, served on an
//! ephemeral port whose listener is bound before the server starts.

use std::sync::Arc;

use db::testing::{Engine, TestDb};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use server::App;
use types::{Algorithm, Digest, DigestHasher};
use wharf_core::{Registry, Settings};

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub db: TestDb,
    pub storage: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn new(engine: Engine) -> TestApp {
        let db = TestDb::new(engine).await;
        let storage = tempfile::tempdir().unwrap();
        Self::serve(db, storage, Settings::default()).await
    }

    pub async fn with_settings(engine: Engine, settings: Settings) -> TestApp {
        let db = TestDb::new(engine).await;
        let storage = tempfile::tempdir().unwrap();
        Self::serve(db, storage, settings).await
    }

    async fn serve(db: TestDb, storage: tempfile::TempDir, settings: Settings) -> TestApp {
        let registry = registry_over(&db, storage.path(), settings).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(App::new(registry).serve(listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            storage,
            shutdown: Some(tx),
        }
    }

    /// A second server over the same database and storage, as another process would be.
    pub async fn sibling(&self) -> Registry {
        registry_over(&self.db, self.storage.path(), Settings::default()).await
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.request(method, url)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    /// Pushes a blob monolithically and returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        digest
    }

    /// Starts an upload session in `repo` and returns its `Location` and upload UUID.
    pub async fn start_upload(&self, repo: &str) -> (String, String) {
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        (header(&r, "location"), header(&r, "docker-upload-uuid"))
    }

    /// Pushes a manifest and returns the response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &Value,
    ) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and one layer per entry of `layers`, then an OCI manifest under `tag`.
    /// Returns the manifest body and its digest.
    pub async fn push_image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> (Value, Digest) {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","n":{}}}"#,
            layers.len()
        );
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let d = self.push_blob(repo, layer).await;
            descriptors
                .push(json!({"mediaType": LAYER, "digest": d.to_string(), "size": layer.len()}));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": descriptors,
        });
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let digest = Digest::sha256_of(&serde_json::to_vec(&manifest).unwrap());
        (manifest, digest)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn registry_over(db: &TestDb, storage: &std::path::Path, settings: Settings) -> Registry {
    let db = db::Db::connect(&db.uri).await.unwrap();
    let store = Arc::new(storage::LocalStore::open(storage).unwrap());
    Registry::new(db, store, "default", settings).await.unwrap()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha512(bytes: &[u8]) -> Digest {
    let mut h = DigestHasher::new(Algorithm::Sha512);
    h.update(bytes);
    h.finish()
}

/// The OCI error code of a response, asserting the envelope's shape.
pub async fn error_code(r: Response) -> String {
    let body: Value = r.json().await.unwrap();
    let errors = body["errors"].as_array().expect("an OCI error envelope");
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["message"].is_string());
    errors[0]["code"].as_str().unwrap().to_string()
}

pub fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Defines `name::sqlite` and `name::postgres` from `|app: TestApp| async move { ... }`.
#[macro_export]
macro_rules! app_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::harness::TestApp::new(db::testing::Engine::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::harness::TestApp::new(db::testing::Engine::Postgres).await;
                ($body)(app).await;
            }
        }
    };
}
