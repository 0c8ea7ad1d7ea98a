//! The composition root: reads configuration, opens the database and storage, builds the
//! registry services and the HTTP routers, and serves them until shutdown.
//!
//! Two ways to configure: with no config directory, an embedded default (SQLite and a local
//! storage folder under the data directory); with a Quay-style `config.yaml`, its `DB_URI` and
//! `DISTRIBUTED_STORAGE_CONFIG`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use config::{Config, StorageDriverConfig};
use db::Db;
use storage::LocalStore;
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
}

/// The loaded configuration with the storage and database choices resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: Config,
    pub db_uri: String,
    /// `DATABASE_SECRET_KEY`, or the generated key of an embedded installation.
    pub database_secret_key: String,
    pub location: String,
    pub storage_path: PathBuf,
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
    let (location, storage_path) = match config.storage_preference().first() {
        Some(id) => match config.distributed_storage_config.get(id) {
            Some(StorageDriverConfig::Local { storage_path }) => {
                (id.to_string(), storage_path.clone())
            }
            Some(other) => {
                return Err(ServerError::Invalid(format!(
                    "storage location {id:?} uses {}, which Wharf does not support yet; use LocalStorage",
                    other.driver_name()
                )));
            }
            None => {
                return Err(ServerError::Invalid(format!(
                    "DISTRIBUTED_STORAGE_PREFERENCE names {id:?}, which DISTRIBUTED_STORAGE_CONFIG lacks"
                )));
            }
        },
        None => ("default".to_string(), paths.data_dir.join("storage")),
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
    Ok(Resolved {
        config,
        db_uri,
        database_secret_key,
        location,
        storage_path,
    })
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
        max_blob_size: config.maximum_layer_size_bytes(),
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
    }
}

/// A ready-to-serve application.
#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    pub auth: auth::Auth,
    pub router: Router,
}

impl App {
    /// Opens everything the configuration names, applying migrations first.
    pub async fn open(resolved: &Resolved) -> Result<App, ServerError> {
        let db = Db::connect(&resolved.db_uri).await?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        let store = Arc::new(LocalStore::open(&resolved.storage_path)?);
        let auth = auth::Auth::open(
            db.clone(),
            &resolved.database_secret_key,
            auth_settings(&resolved.config),
        )
        .await?;
        let registry =
            Registry::new(db, store, &resolved.location, settings(&resolved.config)).await?;
        Ok(App::new(registry, auth, api_features(&resolved.config)))
    }

    pub fn new(registry: Registry, auth: auth::Auth, features: api::ApiFeatures) -> App {
        let api = api::router(api::ApiState {
            auth: auth.clone(),
            registry: registry.clone(),
            features,
        });
        let router = registry::router(registry.clone(), auth.clone())
            .merge(api)
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(tower_http::trace::TraceLayer::new_for_http());
        App {
            registry,
            auth,
            router,
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
        };
        let built =
            workers::build(&self.registry, &settings, names).map_err(ServerError::Invalid)?;
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
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds a listener with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}
