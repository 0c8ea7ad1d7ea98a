//! The composition root: reads configuration, opens the database and storage, builds the
//! registry services and the HTTP routers, and serves them until shutdown.
//!
//! Two ways to configure: with no config directory, an embedded default (SQLite and a local
//! storage folder under the data directory); with a Quay-style `config.yaml`, its `DB_URI` and
//! `DISTRIBUTED_STORAGE_CONFIG`.

pub mod concurrency;
pub mod health;
pub mod metrics;
pub mod rate_limit;
mod request_log;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use config::{Config, StorageDriverConfig};
use db::Db;
use tokio::net::TcpListener;
use wharf_core::{Registry, Settings};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Registry(#[from] wharf_core::RegistryError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where the configuration and data live.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    /// Directory holding `config.yaml` (Quay's config bundle layout). None: embedded default.
    pub config_dir: Option<PathBuf>,
    /// Directory for the embedded database and local storage.
    pub data_dir: PathBuf,
    /// This node's storage preference, overriding `DISTRIBUTED_STORAGE_PREFERENCE` (Quay's
    /// `QUAY_DISTRIBUTED_STORAGE_PREFERENCE` environment variable, one per region).
    pub storage_preference: Option<Vec<String>>,
}

/// The loaded configuration with the storage and database choices resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: Config,
    pub db_uri: String,
    /// `DATABASE_SECRET_KEY`, or the generated key of an embedded installation.
    pub database_secret_key: String,
    /// Every storage location, in this node's preference order: uploads go to the first.
    pub locations: Vec<(String, StorageDriverConfig)>,
    /// Extra CA certificates (PEM) to trust on outgoing connections: Quay's
    /// `extra_ca_certs/*.crt` in the config directory.
    pub extra_ca_pems: Vec<Vec<u8>>,
    /// Pool and TLS settings for PostgreSQL (`DB_CONNECTION_ARGS`, `DB_CONNECTION_POOLING`).
    pub db_options: db::ConnectOptions,
}

impl Resolved {
    /// Opens the database with the configured pool and TLS settings (migrations not applied).
    pub async fn connect_db(&self) -> Result<Db, ServerError> {
        Ok(Db::connect_with(&self.db_uri, &self.db_options)
            .await?
            .with_default_tag_window(self.config.default_tag_expiration_secs()))
    }

    /// Where uploads go: the first preferred location, described for logs.
    pub fn upload_location(&self) -> String {
        match self.locations.first() {
            Some((id, StorageDriverConfig::Local { storage_path })) => {
                format!("{id} ({})", storage_path.display())
            }
            Some((id, other)) => format!("{id} ({})", other.driver_name()),
            None => "none".to_string(),
        }
    }
}

/// Loads `config.yaml` (if a config directory is given) and resolves the database and storage.
pub fn resolve(paths: &Paths) -> Result<Resolved, ServerError> {
    let config = match &paths.config_dir {
        Some(dir) => {
            let (config, unknown) = Config::load(dir.join("config.yaml"))?;
            if !unknown.is_empty() {
                tracing::warn!(keys = %unknown.join(", "), "config.yaml keys that Wharf ignores");
            }
            config
        }
        None => Config::default(),
    };
    let db_uri = match &config.db_uri {
        Some(uri) => uri.clone(),
        None => format!(
            "sqlite:///{}",
            absolute(&paths.data_dir).join("wharf.db").display()
        ),
    };
    let locations = storage_locations(&config, paths)?;
    let extra_ca_pems = match &paths.config_dir {
        Some(dir) => extra_ca_certificates(dir)?,
        None => Vec::new(),
    };
    let database_secret_key = match (&config.database_secret_key, &paths.config_dir) {
        (Some(key), _) => key.clone(),
        (None, None) => embedded_secret_key(&paths.data_dir)?,
        (None, Some(dir)) => {
            return Err(ServerError::Invalid(format!(
                "{} sets no DATABASE_SECRET_KEY; Wharf, like Quay, needs it to encrypt the \
                 secrets it stores (any long random string, kept across restarts)",
                dir.join("config.yaml").display()
            )));
        }
    };
    let db_options = db_options(&config, &db_uri)?;
    Ok(Resolved {
        config,
        db_uri,
        database_secret_key,
        locations,
        extra_ca_pems,
        db_options,
    })
}

/// `DB_CONNECTION_ARGS` and `DB_CONNECTION_POOLING`, with a warning for what Wharf ignores.
fn db_options(config: &Config, db_uri: &str) -> Result<db::ConnectOptions, ServerError> {
    let (options, ignored) =
        db::ConnectOptions::from_quay(config.db_connection_pooling, &config.db_connection_args)?;
    if !ignored.is_empty() {
        tracing::warn!(keys = %ignored.join(", "), "DB_CONNECTION_ARGS keys that Wharf ignores");
    }
    if db_uri.starts_with("sqlite:") && !config.db_connection_args.is_empty() {
        tracing::info!("DB_CONNECTION_ARGS apply to PostgreSQL only; SQLite ignores them");
    }
    Ok(options)
}

/// The certificates in `<config dir>/extra_ca_certs/*.crt`, which Quay trusts for every
/// outgoing connection (object storage, LDAP, webhooks, ...). A missing directory is fine.
fn extra_ca_certificates(config_dir: &Path) -> Result<Vec<Vec<u8>>, ServerError> {
    let dir = config_dir.join("extra_ca_certs");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ServerError::Invalid(format!("{}: {e}", dir.display()))),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "crt" || ext == "pem")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            std::fs::read(&path)
                .map_err(|e| ServerError::Invalid(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// The configured storage locations in this node's preference order: the preferred ones first,
/// then every other configured location (reads fall back to them), each once.
fn storage_locations(
    config: &Config,
    paths: &Paths,
) -> Result<Vec<(String, StorageDriverConfig)>, ServerError> {
    if config.distributed_storage_config.is_empty() {
        return Ok(vec![(
            "default".to_string(),
            StorageDriverConfig::Local {
                storage_path: paths.data_dir.join("storage"),
            },
        )]);
    }
    let preference: Vec<&str> = match &paths.storage_preference {
        Some(ids) if !ids.is_empty() => ids.iter().map(String::as_str).collect(),
        _ => config.storage_preference(),
    };
    let mut ordered: Vec<(String, StorageDriverConfig)> = Vec::new();
    let ids = preference
        .iter()
        .copied()
        .chain(config.distributed_storage_config.ids());
    for id in ids {
        if ordered.iter().any(|(known, _)| known == id) {
            continue;
        }
        let driver = config.distributed_storage_config.get(id).ok_or_else(|| {
            ServerError::Invalid(format!(
                "the storage preference names {id:?}, which DISTRIBUTED_STORAGE_CONFIG lacks"
            ))
        })?;
        ordered.push((id.to_string(), driver.clone()));
    }
    for id in &config.distributed_storage_default_locations {
        if config.distributed_storage_config.get(id).is_none() {
            return Err(ServerError::Invalid(format!(
                "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS names {id:?}, which \
                 DISTRIBUTED_STORAGE_CONFIG lacks"
            )));
        }
    }
    if config.feature_storage_replication
        && let Some((id, _)) = ordered
            .iter()
            .find(|(_, d)| matches!(d, StorageDriverConfig::Local { .. }))
    {
        return Err(ServerError::Invalid(format!(
            "FEATURE_STORAGE_REPLICATION is on but storage location {id:?} is LocalStorage; \
             Quay and Wharf replicate only between object stores (a local folder is not \
             reachable from other regions)"
        )));
    }
    Ok(ordered)
}

/// The secret key of an embedded installation: generated on first start and kept in the data
/// directory, readable by its owner only. Never regenerated silently: losing it makes stored
/// robot tokens and signing keys unreadable.
fn embedded_secret_key(data_dir: &Path) -> Result<String, ServerError> {
    let path = data_dir.join("secret_key");
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {
            return Err(ServerError::Invalid(format!(
                "{} is empty; restore it from a backup (it encrypts stored secrets)",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::Invalid(format!("{}: {e}", path.display()))),
    }
    let io = |e: std::io::Error| ServerError::Invalid(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let key = auth::crypto::generate_database_secret_key();
    let temp = data_dir.join("secret_key.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io)?;
        file.write_all(key.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    // Two processes starting at once: the first rename wins and both read the winner.
    if std::fs::hard_link(&temp, &path).is_err() && !path.exists() {
        std::fs::rename(&temp, &path).map_err(io)?;
    }
    let _ = std::fs::remove_file(&temp);
    Ok(std::fs::read_to_string(&path)
        .map_err(io)?
        .trim()
        .to_string())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Registry settings derived from the configuration.
pub fn settings(config: &Config) -> Settings {
    Settings {
        library_namespace: config
            .feature_library_support
            .then(|| config.library_namespace.clone()),
        temp_tag_expiration: Duration::from_secs(config.push_temp_tag_expiration_sec),
        uploaded_blob_expiration: Duration::from_secs(config.push_temp_tag_expiration_sec),
        max_blob_size: config.maximum_layer_size_bytes(),
        replicate_to: config
            .feature_storage_replication
            .then(|| config.distributed_storage_default_locations.clone()),
        direct_download: !config.feature_proxy_storage,
        ..Settings::default()
    }
}

/// Authentication settings derived from the configuration.
pub fn auth_settings(config: &Config) -> auth::AuthSettings {
    auth::AuthSettings {
        server_hostname: config.server_hostname.clone(),
        url_scheme: config.preferred_url_scheme.clone(),
        issuer: config.instance_service_key_service.clone(),
        max_fresh: Duration::from_secs(config.registry_jwt_auth_max_fresh_s),
        superusers: config.super_users.iter().cloned().collect(),
        global_readonly_superusers: config.global_readonly_super_users.iter().cloned().collect(),
        superusers_enabled: config.feature_super_users,
        policy: auth::permissions::Policy {
            anonymous_access: config.feature_anonymous_access,
            superusers_full_access: config.feature_superusers_full_access,
            registry_read_only: config.registry_state == "readonly",
        },
        private_repos_on_push: config.create_private_repo_on_push,
        oauth_direct_clients: config
            .direct_oauth_clientid_whitelist
            .iter()
            .cloned()
            .collect(),
        app_specific_tokens: config.feature_app_specific_tokens,
        library_namespace: config
            .feature_library_support
            .then(|| config.library_namespace.clone()),
        ..auth::AuthSettings::default()
    }
}

/// API settings derived from the configuration.
pub fn api_features(config: &Config) -> api::ApiFeatures {
    api::ApiFeatures {
        user_initialize: config.feature_user_initialize,
        user_metadata: config.feature_user_metadata,
        user_creation: config.feature_user_creation,
        app_url: config
            .server_hostname
            .as_ref()
            .map(|host| format!("{}://{host}", config.preferred_url_scheme)),
        registry_title: config.registry_title.clone(),
        permanently_delete_tags: config.permanently_delete_tags,
        tag_expiration_options: config.feature_change_tag_expiration.then(|| {
            config
                .tag_expiration_options
                .iter()
                .filter_map(|option| match config::parse_duration(option) {
                    Ok(d) => i64::try_from(d.as_secs()).ok(),
                    Err(e) => {
                        tracing::warn!(option, error = %e, "ignoring a TAG_EXPIRATION_OPTIONS entry");
                        None
                    }
                })
                .collect()
        }),
    }
}

/// How long `gcworker` rests after a pass that found nothing (Quay's 30 s tick).
const GC_INTERVAL: Duration = Duration::from_secs(30);

/// A ready-to-serve application.
#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    pub auth: auth::Auth,
    pub router: Router,
    /// This process's metrics, served on the metrics listener ([`metrics::serve`]).
    pub metrics: metrics::Metrics,
}

impl App {
    /// Opens everything the configuration names, applying migrations first.
    pub async fn open(resolved: &Resolved) -> Result<App, ServerError> {
        let db = resolved.connect_db().await?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        let mut locations = Vec::with_capacity(resolved.locations.len());
        for (id, driver) in &resolved.locations {
            let options = storage::OpenOptions {
                location: id.clone(),
                extra_ca_pems: resolved.extra_ca_pems.clone(),
            };
            locations.push((id.clone(), storage::open(driver, &options)?));
        }
        let auth = auth::Auth::open(
            db.clone(),
            &resolved.database_secret_key,
            auth_settings(&resolved.config),
        )
        .await?;
        let registry = Registry::with_locations(db, locations, settings(&resolved.config)).await?;
        Ok(App::with_options(
            registry,
            auth,
            api_features(&resolved.config),
            HttpOptions::from_config(&resolved.config),
        ))
    }

    pub fn new(registry: Registry, auth: auth::Auth, features: api::ApiFeatures) -> App {
        Self::with_options(registry, auth, features, HttpOptions::default())
    }

    /// [`App::new`] with request rate and concurrency limits.
    pub fn with_options(
        registry: Registry,
        auth: auth::Auth,
        features: api::ApiFeatures,
        options: HttpOptions,
    ) -> App {
        let api = api::router(api::ApiState {
            auth: auth.clone(),
            registry: registry.clone(),
            features,
        });
        let v2 = concurrency::limit(
            registry::router(registry.clone(), auth.clone()),
            options.concurrency.registry,
        );
        let api = concurrency::limit(api, options.concurrency.web);
        let mut router = v2.merge(api);
        if let Some(limits) = options.rate_limits {
            router = rate_limit::apply(router, limits);
        }
        let monitoring = &options.monitoring;
        let metrics = metrics::Metrics::new(&registry, &auth, monitoring);
        // Probes are never rate limited.
        let health = health::Health::new(&registry, &auth, monitoring.redis.clone());
        let router = router
            .merge(health::router(health))
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                metrics::track_request,
            ))
            .layer(request_log::layer())
            .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
            .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                tower_http::request_id::MakeRequestUuid,
            ));
        App {
            registry,
            auth,
            router,
            metrics,
        }
    }

    /// Whether no account exists yet (a fresh installation).
    pub async fn registry_is_empty(&self) -> Result<bool, ServerError> {
        Ok(self.auth.db().count_accounts().await? == 0)
    }

    /// Starts the named background workers (all when `names` is empty).
    pub fn start_workers(
        &self,
        resolved: &Resolved,
        names: &[String],
    ) -> Result<workers::WorkerSet, ServerError> {
        let settings = workers::Settings {
            upload_expiry: Duration::from_secs(
                resolved
                    .config
                    .blobupload_deletion_date_threshold
                    .saturating_mul(60),
            ),
            garbage_collection: resolved.config.feature_garbage_collection,
            repository_garbage_collection: resolved.config.feature_repository_garbage_collection,
            namespace_garbage_collection: resolved.config.feature_namespace_garbage_collection,
            gc_interval: GC_INTERVAL,
        };
        let built = workers::build(&self.registry, self.auth.db(), &settings, names)
            .map_err(ServerError::Invalid)?;
        Ok(workers::WorkerSet::start(built))
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        // Responses are written as headers, then body frames. Without TCP_NODELAY a small body
        // written separately waits for the client's delayed ACK (40 ms on Linux).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        // The peer address is what rate limits count HTTP/1 clients by.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves HTTPS on `listener` until `shutdown` completes, like [`App::serve`]. The
    /// certificate is reloaded when its files change (see [`tls`]).
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: tls::Tls,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tls.watch(stopped);
        // `tap_io` only to get the peer address as connect info (TCP_NODELAY is set on accept).
        let listener = tls.listener(listener)?.tap_io(|_| {});
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop.send(true);
        served
    }

    /// Serves HTTP on `http` and, when given, HTTPS on the second listener, until `shutdown`
    /// completes for both.
    pub async fn serve_all(
        self,
        http: TcpListener,
        https: Option<(TcpListener, tls::Tls)>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some((listener, tls)) = https else {
            return self.serve(http, shutdown).await;
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let plain = self.clone().serve(http, until_stopped(stopped.clone()));
        let secure = self.serve_tls(listener, tls, until_stopped(stopped));
        tokio::try_join!(plain, secure).map(|_| ())
    }
}

/// HTTP-level limits: Quay's `FEATURE_RATE_LIMITS` and `WORKER_COUNT_*` (see [`rate_limit`] and
/// [`concurrency`]).
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// None: no rate limits (`FEATURE_RATE_LIMITS: false`, the default).
    pub rate_limits: Option<rate_limit::RateLimits>,
    pub concurrency: concurrency::Concurrency,
    /// Metrics labels and health-check targets.
    pub monitoring: metrics::Monitoring,
}

impl HttpOptions {
    pub fn from_config(config: &Config) -> HttpOptions {
        HttpOptions {
            rate_limits: rate_limit::RateLimits::from_config(config),
            concurrency: concurrency::Concurrency::from_config(config),
            monitoring: metrics::Monitoring::from_config(config),
        }
    }
}

/// Binds a listener with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}
