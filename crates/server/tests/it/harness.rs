//! The test application: a registry over a fresh database and storage directory, served on an
//! ephemeral port whose listener is bound before the server starts.
//!
//! Requests made with [`TestApp::req`] behave like a real client: they fetch a registry token
//! from `/v2/auth` as the user `tester` (an owner of every namespace a test uses) for the
//! repository the path names, and present it. [`TestApp::anonymous`] sends no credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use db::testing::{Engine, TestDb};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use server::App;
use types::{Algorithm, Digest, DigestHasher};
use wharf_core::{Registry, Settings};

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub db: TestDb,
    pub storage: tempfile::TempDir,
    pub auth: auth::Auth,
    /// The account `tester`, whose password is [`TESTER_PASSWORD`].
    pub tester: db::AccountRow,
    /// The served registry's services (the garbage collector run through them counts in
    /// [`TestApp::metrics`]).
    pub registry: Registry,
    /// The served app's metrics, with `tracked` a tracked namespace and database figures
    /// refreshed on every scrape.
    pub metrics: server::metrics::Metrics,
    tokens: Mutex<HashMap<String, String>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const TESTER_PASSWORD: &str = "tester-password";

/// A request under construction; `send` adds the token the path needs.
pub struct TestRequest<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    builder: RequestBuilder,
    authenticate: bool,
}

impl TestRequest<'_> {
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.builder = self.builder.header(name, value.as_ref());
        self
    }

    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.body(body);
        self
    }

    pub async fn send(self) -> reqwest::Result<Response> {
        let mut builder = self.builder;
        if self.authenticate
            && let Some(token) = self.app.token_for(&self.method, &self.path).await
        {
            builder = builder.bearer_auth(token);
        }
        builder.send().await
    }
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
        Self::serve_with(db, storage, settings, auth::AuthSettings::default(), true).await
    }

    /// A server over a database without any account (`tester` is not created).
    pub async fn empty(engine: Engine) -> TestApp {
        let db = TestDb::new(engine).await;
        let storage = tempfile::tempdir().unwrap();
        let settings = auth::AuthSettings::default();
        Self::serve_with(db, storage, Settings::default(), settings, false).await
    }

    /// A server with these authentication settings.
    pub async fn with_auth(engine: Engine, auth_settings: auth::AuthSettings) -> TestApp {
        let db = TestDb::new(engine).await;
        let storage = tempfile::tempdir().unwrap();
        Self::serve_with(db, storage, Settings::default(), auth_settings, true).await
    }

    async fn serve_with(
        db: TestDb,
        storage: tempfile::TempDir,
        settings: Settings,
        auth_settings: auth::AuthSettings,
        with_tester: bool,
    ) -> TestApp {
        let registry = registry_over(&db, storage.path(), settings).await;
        let auth = auth::Auth::open(registry_db(&db).await, TEST_SECRET, auth_settings)
            .await
            .unwrap();
        let tester = if with_tester {
            create_user(&db.db, "tester").await
        } else {
            placeholder_account()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = App::with_options(
            registry,
            auth.clone(),
            api::ApiFeatures {
                user_initialize: true,
                permanently_delete_tags: true,
                ..Default::default()
            },
            test_options(),
        );
        let (registry, metrics) = (app.registry.clone(), app.metrics.clone());
        tokio::spawn(app.serve(listener, async move {
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
            auth,
            tester,
            registry,
            metrics,
            tokens: Mutex::new(HashMap::new()),
            shutdown: Some(tx),
        }
    }

    /// A registry token for `scope` from `/v2/auth`, as `user` with `password` (or anonymous).
    pub async fn fetch_token(&self, credentials: Option<(&str, &str)>, scope: &str) -> String {
        let r = self.token_response(credentials, &[scope]).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// The response of `/v2/auth` for these scopes.
    pub async fn token_response(
        &self,
        credentials: Option<(&str, &str)>,
        scopes: &[&str],
    ) -> Response {
        let mut url = format!("{}/v2/auth?service={}", self.base, self.host());
        for scope in scopes {
            url.push_str("&scope=");
            url.push_str(&scope.replace('*', "%2A"));
        }
        let mut request = self.client.get(url);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        request.send().await.unwrap()
    }

    /// `host:port` of the server, the service name of its tokens.
    pub fn host(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// The token `tester` gets for a `/v2` request, asking like a client: `pull` to read,
    /// `pull,push` to write, plus `pull` on a mount's source. The namespace is made an
    /// organization `tester` owns if it does not exist. None when `/v2/auth` refuses the
    /// scope (an invalid name): the request then goes without a token.
    async fn token_for(&self, method: &Method, path: &str) -> Option<String> {
        let rest = path
            .strip_prefix(&self.base)
            .unwrap_or(path)
            .trim_start_matches("/v2/");
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut scopes = match server_endpoint(rest) {
            Some((name, upload)) => {
                let read = matches!(*method, Method::GET | Method::HEAD) && !upload;
                let actions = if read { "pull" } else { "pull,push" };
                vec![format!("repository:{name}:{actions}")]
            }
            None => vec!["repository:tester/base:pull".to_string()],
        };
        if let Some(from) = query.split('&').find_map(|p| p.strip_prefix("from="))
            && types::name::RepositoryPath::parse(from, Some("library")).is_ok()
        {
            scopes.push(format!("repository:{from}:pull"));
        }
        let key = scopes.join(" ");
        if let Some(token) = self.tokens.lock().unwrap().get(&key) {
            return Some(token.clone());
        }
        for scope in &scopes {
            let name = scope.split(':').nth(1).unwrap_or_default();
            let namespace = match name.split_once('/') {
                Some((ns, _)) => ns,
                None => "library",
            };
            if types::name::valid_namespace(namespace)
                && self.db.db.find_account(namespace).await.unwrap().is_none()
            {
                self.db
                    .db
                    .create_organization(namespace, None, self.tester.id)
                    .await
                    .unwrap();
            }
        }
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let r = self
            .token_response(Some(("tester", TESTER_PASSWORD)), &scope_refs)
            .await;
        if r.status() != 200 {
            return None;
        }
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        self.tokens.lock().unwrap().insert(key, token.clone());
        Some(token)
    }

    /// `Authorization` for the repository `name`, for requests built by hand.
    pub async fn bearer(&self, method: Method, name: &str) -> String {
        let path = format!("/v2/{name}/blobs/uploads/");
        format!("Bearer {}", self.token_for(&method, &path).await.unwrap())
    }

    /// A second server over the same database and storage, as another process would be.
    pub async fn sibling(&self) -> Registry {
        registry_over(&self.db, self.storage.path(), Settings::default()).await
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request as `tester`, with the token the path needs.
    pub fn req(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            path: path.to_string(),
            builder: self.client.request(method.clone(), self.url(path)),
            method,
            authenticate: true,
        }
    }

    /// A request without credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            path: path.to_string(),
            builder: self.client.request(method.clone(), self.url(path)),
            method,
            authenticate: false,
        }
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

pub const TEST_SECRET: &str = "test-database-secret-key";

/// Stands in for `tester` in an app made without it; its id matches no row.
fn placeholder_account() -> db::AccountRow {
    db::AccountRow {
        id: -1,
        username: "tester".into(),
        email: None,
        organization: false,
        robot: false,
        enabled: true,
        superuser: false,
        verified: true,
        password_hash: None,
        uuid: String::new(),
        removed_tag_expiration_s: 0,
        creation_ms: 0,
        invalid_login_attempts: 0,
        last_invalid_login_ms: None,
        last_accessed_ms: None,
        given_name: None,
        family_name: None,
        company: None,
        location: None,
    }
}

async fn registry_db(db: &TestDb) -> db::Db {
    db::Db::connect(&db.uri).await.unwrap()
}

/// Creates a user whose password is [`TESTER_PASSWORD`], with a cheap bcrypt cost so tests
/// stay fast (verification reads the cost from the hash).
pub async fn create_user(db: &db::Db, name: &str) -> db::AccountRow {
    let hash = bcrypt::hash(TESTER_PASSWORD, 4).unwrap();
    match db
        .create_user(db::NewUser {
            username: name.to_string(),
            email: format!("{name}@example.com"),
            password_hash: hash,
            verified: true,
            superuser: false,
        })
        .await
        .unwrap()
    {
        db::CreateUserOutcome::Created(row) => *row,
        db::CreateUserOutcome::NameTaken => panic!("{name} exists"),
    }
}

/// The repository name a `/v2` path (after `/v2/`) names, if any, and whether it is an upload
/// endpoint (which needs push whatever the method).
fn server_endpoint(rest: &str) -> Option<(String, bool)> {
    use registry::Endpoint;
    match Endpoint::parse(rest)? {
        Endpoint::Base | Endpoint::Catalog => None,
        Endpoint::UploadStart { name } | Endpoint::Upload { name, .. } => Some((name, true)),
        Endpoint::Tags { name }
        | Endpoint::Manifest { name, .. }
        | Endpoint::Blob { name, .. }
        | Endpoint::Referrers { name, .. } => Some((name, false)),
    }
}

async fn registry_over(db: &TestDb, storage: &std::path::Path, settings: Settings) -> Registry {
    let db = registry_db(db).await;
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

/// Who makes an API call.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Anonymous,
    /// A user with [`TESTER_PASSWORD`], over HTTP Basic.
    User(&'a str),
    /// An OAuth access token.
    Bearer(&'a str),
}

pub async fn api(
    app: &TestApp,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{}/api/v1{path}", app.base))
        .header("accept", "application/json");
    request = match who {
        As::Anonymous => request,
        As::User(name) => request.basic_auth(name, Some(TESTER_PASSWORD)),
        As::Bearer(token) => request.bearer_auth(token),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// An OAuth access token of `tester` with `scope`, made in the database for a new application
/// of the organization `org_id` (the grant flow itself is tested in `api_orgs`).
pub async fn oauth_token_for(app: &TestApp, org_id: i64, scope: &str) -> String {
    let application = app
        .db
        .db
        .create_application(db::NewApplication {
            organization_id: org_id,
            client_id: auth::crypto::generate_oauth_client_id(),
            client_secret_ciphertext: app.auth.secret_key().encrypt("secret").unwrap(),
            name: "bridge".into(),
            description: String::new(),
            redirect_uri: String::new(),
            application_uri: String::new(),
            avatar_email: None,
        })
        .await
        .unwrap();
    let token = auth::crypto::OAUTH_ACCESS_TOKEN.generate();
    let split = auth::crypto::OAUTH_ACCESS_TOKEN.split(&token).unwrap();
    app.db
        .db
        .create_access_token(db::NewAccessToken {
            application_id: application.id,
            account_id: app.tester.id,
            scope: scope.to_string(),
            token_name: split.lookup,
            token_code_hash: auth::crypto::hash_secret(&split.secret),
            expires_ms: None,
        })
        .await
        .unwrap();
    token
}

// Apps over given storage locations (object stores), and further nodes of one installation.

impl TestApp {
    /// A server over a fresh database and the given storage `locations` (uploads go to the
    /// first), with these settings. `storage` is an unused empty directory.
    pub async fn on_locations(
        engine: Engine,
        locations: Vec<(String, Arc<dyn storage::BlobStore>)>,
        settings: Settings,
    ) -> TestApp {
        let db = TestDb::new(engine).await;
        let registry = Registry::with_locations(registry_db(&db).await, locations, settings)
            .await
            .unwrap();
        let auth = auth::Auth::open(
            registry_db(&db).await,
            TEST_SECRET,
            auth::AuthSettings::default(),
        )
        .await
        .unwrap();
        let tester = create_user(&db.db, "tester").await;
        let (base, shutdown, app) = serve_in_background(registry, auth.clone()).await;
        TestApp {
            base,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            storage: tempfile::tempdir().unwrap(),
            auth,
            tester,
            registry: app.registry,
            metrics: app.metrics,
            tokens: Mutex::new(HashMap::new()),
            shutdown: Some(shutdown),
        }
    }

    /// Another server over this app's database and the given locations, with its own
    /// `Registry`, `Auth` and drivers: what another node of the installation (another
    /// process, another machine) would be.
    pub async fn node(
        &self,
        locations: Vec<(String, Arc<dyn storage::BlobStore>)>,
        settings: Settings,
    ) -> Node {
        let registry = Registry::with_locations(registry_db(&self.db).await, locations, settings)
            .await
            .unwrap();
        let auth = auth::Auth::open(
            registry_db(&self.db).await,
            TEST_SECRET,
            auth::AuthSettings::default(),
        )
        .await
        .unwrap();
        let (base, shutdown, _) = serve_in_background(registry, auth).await;
        Node {
            base,
            client: self.client.clone(),
            shutdown: Some(shutdown),
        }
    }
}

/// A further node made by [`TestApp::node`], stopped when dropped.
pub struct Node {
    pub base: String,
    client: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Node {
    /// A request to this node as `tester`, with a `pull,push` token for `repo` from the
    /// node's own `/v2/auth` (tokens name the host they were issued for as their audience).
    pub async fn req(&self, method: Method, repo: &str, path: &str) -> RequestBuilder {
        let host = self.base.trim_start_matches("http://");
        let url = format!(
            "{}/v2/auth?service={host}&scope=repository:{repo}:pull,push",
            self.base
        );
        let r = self
            .client
            .get(url)
            .basic_auth("tester", Some(TESTER_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a token from {}", self.base);
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.request(method, url).bearer_auth(token)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `registry` on an ephemeral port until the returned sender fires or drops; returns
/// the address, the sender and (a clone of) the app served.
async fn serve_in_background(
    registry: Registry,
    auth: auth::Auth,
) -> (String, tokio::sync::oneshot::Sender<()>, App) {
    let features = api::ApiFeatures {
        user_initialize: true,
        ..Default::default()
    };
    let app = App::with_options(registry, auth, features, test_options());
    let (base, tx) = serve_app(app.clone()).await;
    (base, tx, app)
}

/// Serves `app` on an ephemeral port until the returned sender fires or drops; returns its
/// base URL.
pub async fn serve_app(app: App) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async move {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

/// The HTTP options of test apps: no limits, `tracked` a tracked namespace, and database
/// figures of `/metrics` read on every scrape.
fn test_options() -> server::HttpOptions {
    server::HttpOptions {
        monitoring: server::metrics::Monitoring {
            tracked_namespaces: vec!["tracked".to_string()],
            refresh_interval: std::time::Duration::ZERO,
            redis: None,
        },
        ..Default::default()
    }
}
