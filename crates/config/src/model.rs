//! The typed model of Quay's `config.yaml`: [`Config`], its defaults and derived values.
//!
//! Fields are named after Quay's keys in snake case so that `grep -i KEY` finds both. Each
//! default is the value Quay uses when the key is absent (Project Quay's `config.py` and the
//! config-tool field groups), so a Quay `config.yaml` means the same thing here.
//! Parsing lives in `load.rs`; this module only describes the values.

use std::fmt;

use crate::storage::StorageLocations;
use crate::units::{ByteSize, QuayDuration};

/// The subset of Quay's `config.yaml` that Wharf reads.
///
/// Keys not listed here are reported by [`Config::from_yaml_str`] as unknown. That includes
/// keys Quay understands but Wharf does not implement yet (`AUTHENTICATION_TYPE`,
/// `BUILDLOGS_REDIS`, ...): a warning naming them tells the operator those settings have no
/// effect, which is the truth whether the key is a typo or an unimplemented feature.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// `DB_URI`: the database URL, e.g. `postgresql://quay:secret@db/quay`.
    /// Quay requires it; `None` (embedded mode) leaves the choice of database to the server.
    pub db_uri: Option<String>,
    /// `SERVER_HOSTNAME`: the public host (and optional port) clients use to reach the
    /// registry; it appears in token realms and is the expected token audience.
    /// Quay requires it; `None` (embedded mode) leaves the choice to the server.
    pub server_hostname: Option<String>,
    /// `PREFERRED_URL_SCHEME`: `http` or `https`, used to build absolute URLs. Default `http`.
    pub preferred_url_scheme: String,
    /// `DISTRIBUTED_STORAGE_CONFIG`: storage location id → driver and parameters.
    /// Default: none; in embedded mode the server has to add a location itself.
    pub distributed_storage_config: StorageLocations,
    /// `DISTRIBUTED_STORAGE_PREFERENCE`: location ids this node prefers, first = where
    /// uploads go. Default empty, meaning every configured location in config order.
    pub distributed_storage_preference: Vec<String>,
    /// `DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS`: locations every blob must end up in
    /// (replication targets). Default empty.
    pub distributed_storage_default_locations: Vec<String>,
    /// `FEATURE_LIBRARY_SUPPORT`: map single-component repository names such as `ubuntu`
    /// to [`library_namespace`](Self::library_namespace). Default `true`.
    pub feature_library_support: bool,
    /// `LIBRARY_NAMESPACE`: the namespace of library repositories. Default `library`.
    pub library_namespace: String,
    /// `V2_PAGINATION_SIZE`: page size of the Docker V2 API. Default `50`; note that the
    /// tag list never serves fewer than 100 per page whatever this says.
    pub v2_pagination_size: u32,
    /// `PUSH_TEMP_TAG_EXPIRATION_SEC`: how long an uploaded blob or a manifest pushed by
    /// digest is kept alive before something references it, in seconds. Default `3600`.
    pub push_temp_tag_expiration_sec: u64,
    /// `BLOBUPLOAD_DELETION_DATE_THRESHOLD`: minutes after which an unfinished upload session
    /// and its bytes are deleted by the upload cleanup worker. Default `2880` (two days).
    pub blobupload_deletion_date_threshold: u64,
    /// `MAXIMUM_LAYER_SIZE`: largest blob accepted on upload. Default `20G`, which Quay
    /// reads as 20 000 000 000 bytes (decimal prefixes, see [`crate::parse_size`]).
    pub maximum_layer_size: ByteSize,
    /// `FEATURE_REFERRERS_API`: serve the OCI referrers endpoint. Default `true`.
    pub feature_referrers_api: bool,
    /// `FEATURE_GENERAL_OCI_SUPPORT`: accept OCI image manifests and indexes in every
    /// namespace. Default `true`.
    pub feature_general_oci_support: bool,
    /// `DEFAULT_TAG_EXPIRATION`: how long a deleted or overwritten tag stays recoverable
    /// (time machine) when the namespace sets nothing else. Default `2w`.
    pub default_tag_expiration: QuayDuration,
    /// `REGISTRY_TITLE`: the product name shown to users. Default `Project Quay`.
    pub registry_title: String,
    /// `SETUP_COMPLETE`: written as `true` by Quay's config tool once a config is complete.
    /// Quay's workers do nothing while it is false. Default `false`, as in Quay.
    pub setup_complete: bool,
    /// `DATABASE_SECRET_KEY`: the secret from which the key that encrypts secrets stored in the
    /// database (robot tokens, OAuth client secrets, signing keys) is derived. Quay refuses to
    /// start without it; in embedded mode the server generates one and keeps it in the data
    /// directory.
    pub database_secret_key: Option<String>,
    /// `AUTHENTICATION_TYPE`: where users and passwords live. Default `Database`.
    pub authentication_type: String,
    /// `SUPER_USERS`: usernames with superuser rights. Default empty.
    pub super_users: Vec<String>,
    /// `GLOBAL_READONLY_SUPER_USERS`: usernames that may read every repository. Default empty.
    pub global_readonly_super_users: Vec<String>,
    /// `FEATURE_SUPER_USERS`: enable superusers. Default `true`.
    pub feature_super_users: bool,
    /// `FEATURE_SUPERUSERS_FULL_ACCESS`: superusers may read, write and administer every
    /// repository. Default `false`.
    pub feature_superusers_full_access: bool,
    /// `FEATURE_ANONYMOUS_ACCESS`: callers without credentials may pull public repositories.
    /// Default `true`.
    pub feature_anonymous_access: bool,
    /// `FEATURE_USER_CREATION`: users may create accounts themselves. Default `true`.
    pub feature_user_creation: bool,
    /// `FEATURE_USER_INITIALIZE`: `POST /api/v1/user/initialize` creates the first user of an
    /// empty database. Default `false`.
    pub feature_user_initialize: bool,
    /// `FEATURE_USER_METADATA`: ask new users for their name and company. Default `false`.
    pub feature_user_metadata: bool,
    /// `FEATURE_APP_SPECIFIC_TOKENS`: users may create per-application passwords (`$app`).
    /// Default `true`.
    pub feature_app_specific_tokens: bool,
    /// `CREATE_PRIVATE_REPO_ON_PUSH`: repositories created by a push are private. Default `true`.
    pub create_private_repo_on_push: bool,
    /// `REGISTRY_STATE`: `normal`, or `readonly` to refuse every write. Default `normal`.
    pub registry_state: String,
    /// `INSTANCE_SERVICE_KEY_SERVICE`: the service name of the keys that sign registry tokens,
    /// and the tokens' issuer. Default `quay`.
    pub instance_service_key_service: String,
    /// `REGISTRY_JWT_AUTH_MAX_FRESH_S`: the longest lifetime a registry token may claim, in
    /// seconds. Default `3660`.
    pub registry_jwt_auth_max_fresh_s: u64,
    /// `DIRECT_OAUTH_CLIENTID_WHITELIST`: OAuth client ids whose tokens may be granted without a
    /// consent page. Default empty.
    pub direct_oauth_clientid_whitelist: Vec<String>,
    /// `FEATURE_STORAGE_REPLICATION`: copy every blob to each location of
    /// `DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS` in the background. Default `false`. Not
    /// available with `LocalStorage`.
    pub feature_storage_replication: bool,
    /// `FEATURE_PROXY_STORAGE`: stream blobs from object storage through the registry instead of
    /// redirecting clients to signed storage URLs. Default `false`.
    pub feature_proxy_storage: bool,
    /// `TAG_EXPIRATION_OPTIONS`: the time-machine windows a user or organization may choose.
    /// Default `[0s, 1d, 1w, 2w, 4w]`.
    pub tag_expiration_options: Vec<String>,
    /// `FEATURE_CHANGE_TAG_EXPIRATION`: users and organizations may choose their time-machine
    /// window among `TAG_EXPIRATION_OPTIONS`. Default `true`.
    pub feature_change_tag_expiration: bool,
    /// `FEATURE_GARBAGE_COLLECTION`: run the garbage collector that frees expired tags and the
    /// manifests and blobs nothing references any more. Default `true`.
    pub feature_garbage_collection: bool,
    /// `FEATURE_NAMESPACE_GARBAGE_COLLECTION`: purge deleted users and organizations.
    /// Default `true`.
    pub feature_namespace_garbage_collection: bool,
    /// `FEATURE_REPOSITORY_GARBAGE_COLLECTION`: purge deleted repositories. Default `true`.
    pub feature_repository_garbage_collection: bool,
    /// `PERMANENTLY_DELETE_TAGS`: tags may be taken out of the time machine at once through
    /// `POST …/tag/<tag>/expire`. Default `false`.
    pub permanently_delete_tags: bool,
    /// `EXTERNAL_TLS_TERMINATION`: TLS ends at a load balancer in front of Wharf, so Wharf serves
    /// plain HTTP even when `PREFERRED_URL_SCHEME` is `https`. Default `false`.
    pub external_tls_termination: bool,
    /// `SSL_PROTOCOLS`: TLS versions to offer (`TLSv1.2`, `TLSv1.3`). Default: both.
    pub ssl_protocols: Option<Vec<String>>,
    /// `SSL_CIPHERS`: cipher suites to offer, by OpenSSL or IANA name. Default: rustls' own.
    pub ssl_ciphers: Option<Vec<String>>,
    /// `FEATURE_RATE_LIMITS`: limit request rates per client as Quay's nginx does. Default `false`.
    pub feature_rate_limits: bool,
    /// `NON_RATE_LIMITED_NAMESPACES`: namespaces whose requests are never rate limited.
    /// Default empty.
    pub non_rate_limited_namespaces: Vec<String>,
    /// `DB_CONNECTION_POOLING`: keep a pool of database connections. Default `true`.
    pub db_connection_pooling: bool,
    /// `DB_CONNECTION_ARGS`: database connection settings (`max_connections`, `timeout`,
    /// `stale_timeout`, `sslmode`, `sslrootcert`, ...). Default empty.
    pub db_connection_args: std::collections::BTreeMap<String, serde_json::Value>,
    /// `BUILDLOGS_REDIS`: Redis for build logs (`host`, `port`, `password`, `ssl`).
    pub buildlogs_redis: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// `USER_EVENTS_REDIS`: Redis for user events and locks (`host`, `port`, `password`, `ssl`).
    pub user_events_redis: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// `TRACKED_NAMESPACES`: namespaces that get their own `namespace_name` label in request
    /// metrics; others are counted as `other`. Default empty.
    pub tracked_namespaces: Vec<String>,
    /// `WORKER_COUNT_WEB`: Quay's gunicorn worker count for the web (API) tier.
    pub worker_count_web: Option<u32>,
    /// `WORKER_COUNT_REGISTRY`: Quay's gunicorn worker count for the registry tier.
    pub worker_count_registry: Option<u32>,
    /// `WORKER_COUNT_SECSCAN`: Quay's gunicorn worker count for the security-scan tier.
    pub worker_count_secscan: Option<u32>,
    /// `WORKER_CONNECTION_COUNT_WEB`: connections per web worker.
    pub worker_connection_count_web: Option<u32>,
    /// `WORKER_CONNECTION_COUNT_REGISTRY`: connections per registry worker.
    pub worker_connection_count_registry: Option<u32>,
    /// `WORKER_CONNECTION_COUNT_SECSCAN`: connections per security-scan worker.
    pub worker_connection_count_secscan: Option<u32>,
    /// `WORKER_CONNECTION_COUNT`: connections per worker of every tier.
    pub worker_connection_count: Option<u32>,
}

impl Default for Config {
    /// Quay's defaults, which is also the embedded-mode config (no config file).
    fn default() -> Self {
        Self {
            db_uri: None,
            server_hostname: None,
            preferred_url_scheme: "http".to_owned(),
            distributed_storage_config: StorageLocations::new(),
            distributed_storage_preference: Vec::new(),
            distributed_storage_default_locations: Vec::new(),
            feature_library_support: true,
            library_namespace: "library".to_owned(),
            v2_pagination_size: 50,
            push_temp_tag_expiration_sec: 3600,
            blobupload_deletion_date_threshold: 2880,
            maximum_layer_size: default_maximum_layer_size(),
            feature_referrers_api: true,
            feature_general_oci_support: true,
            default_tag_expiration: default_tag_expiration(),
            registry_title: "Project Quay".to_owned(),
            setup_complete: false,
            database_secret_key: None,
            authentication_type: "Database".to_owned(),
            super_users: Vec::new(),
            global_readonly_super_users: Vec::new(),
            feature_super_users: true,
            feature_superusers_full_access: false,
            feature_anonymous_access: true,
            feature_user_creation: true,
            feature_user_initialize: false,
            feature_user_metadata: false,
            feature_app_specific_tokens: true,
            create_private_repo_on_push: true,
            registry_state: "normal".to_owned(),
            instance_service_key_service: "quay".to_owned(),
            registry_jwt_auth_max_fresh_s: 3660,
            direct_oauth_clientid_whitelist: Vec::new(),
            feature_storage_replication: false,
            feature_proxy_storage: false,
            tag_expiration_options: vec![
                "0s".to_owned(),
                "1d".to_owned(),
                "1w".to_owned(),
                "2w".to_owned(),
                "4w".to_owned(),
            ],
            feature_change_tag_expiration: true,
            feature_garbage_collection: true,
            feature_namespace_garbage_collection: true,
            feature_repository_garbage_collection: true,
            permanently_delete_tags: false,
            external_tls_termination: false,
            ssl_protocols: None,
            ssl_ciphers: None,
            feature_rate_limits: false,
            non_rate_limited_namespaces: Vec::new(),
            db_connection_pooling: true,
            db_connection_args: Default::default(),
            buildlogs_redis: None,
            user_events_redis: None,
            tracked_namespaces: Vec::new(),
            worker_count_web: None,
            worker_count_registry: None,
            worker_count_secscan: None,
            worker_connection_count_web: None,
            worker_connection_count_registry: None,
            worker_connection_count_secscan: None,
            worker_connection_count: None,
        }
    }
}

/// `20G`, built without parsing so that `Default` cannot fail.
fn default_maximum_layer_size() -> ByteSize {
    ByteSize::from_parts("20G", 20_000_000_000)
}

/// `2w`, built without parsing so that `Default` cannot fail.
fn default_tag_expiration() -> QuayDuration {
    QuayDuration::from_parts("2w", std::time::Duration::from_secs(14 * 24 * 60 * 60))
}

impl Config {
    /// `MAXIMUM_LAYER_SIZE` in bytes.
    pub fn maximum_layer_size_bytes(&self) -> u64 {
        self.maximum_layer_size.as_bytes()
    }

    /// `DEFAULT_TAG_EXPIRATION` in seconds.
    pub fn default_tag_expiration_secs(&self) -> u64 {
        self.default_tag_expiration.as_secs()
    }

    /// The storage locations in preference order: `DISTRIBUTED_STORAGE_PREFERENCE` when
    /// set, otherwise every configured location in config order (Quay's fallback). The
    /// first one is where uploads go.
    pub fn storage_preference(&self) -> Vec<&str> {
        if self.distributed_storage_preference.is_empty() {
            self.distributed_storage_config.ids().collect()
        } else {
            self.distributed_storage_preference
                .iter()
                .map(String::as_str)
                .collect()
        }
    }
}

impl fmt::Debug for Config {
    /// Like a derived `Debug`, but with the password in `DB_URI` masked: configs get
    /// logged at start-up and must not leak credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructuring makes a new field a compile error here until it is printed.
        let Self {
            db_uri,
            server_hostname,
            preferred_url_scheme,
            distributed_storage_config,
            distributed_storage_preference,
            distributed_storage_default_locations,
            feature_library_support,
            library_namespace,
            v2_pagination_size,
            push_temp_tag_expiration_sec,
            blobupload_deletion_date_threshold,
            maximum_layer_size,
            feature_referrers_api,
            feature_general_oci_support,
            default_tag_expiration,
            registry_title,
            setup_complete,
            database_secret_key,
            authentication_type,
            super_users,
            global_readonly_super_users,
            feature_super_users,
            feature_superusers_full_access,
            feature_anonymous_access,
            feature_user_creation,
            feature_user_initialize,
            feature_user_metadata,
            feature_app_specific_tokens,
            create_private_repo_on_push,
            registry_state,
            instance_service_key_service,
            registry_jwt_auth_max_fresh_s,
            direct_oauth_clientid_whitelist,
            feature_storage_replication,
            feature_proxy_storage,
            tag_expiration_options,
            feature_change_tag_expiration,
            feature_garbage_collection,
            feature_namespace_garbage_collection,
            feature_repository_garbage_collection,
            permanently_delete_tags,
            external_tls_termination,
            ssl_protocols,
            ssl_ciphers,
            feature_rate_limits,
            non_rate_limited_namespaces,
            db_connection_pooling,
            db_connection_args,
            buildlogs_redis,
            user_events_redis,
            tracked_namespaces,
            worker_count_web,
            worker_count_registry,
            worker_count_secscan,
            worker_connection_count_web,
            worker_connection_count_registry,
            worker_connection_count_secscan,
            worker_connection_count,
        } = self;
        f.debug_struct("Config")
            .field("db_uri", &db_uri.as_deref().map(redact_url_password))
            .field("server_hostname", server_hostname)
            .field("preferred_url_scheme", preferred_url_scheme)
            .field("distributed_storage_config", distributed_storage_config)
            .field(
                "distributed_storage_preference",
                distributed_storage_preference,
            )
            .field(
                "distributed_storage_default_locations",
                distributed_storage_default_locations,
            )
            .field("feature_library_support", feature_library_support)
            .field("library_namespace", library_namespace)
            .field("v2_pagination_size", v2_pagination_size)
            .field("push_temp_tag_expiration_sec", push_temp_tag_expiration_sec)
            .field(
                "blobupload_deletion_date_threshold",
                blobupload_deletion_date_threshold,
            )
            .field("maximum_layer_size", maximum_layer_size)
            .field("feature_referrers_api", feature_referrers_api)
            .field("feature_general_oci_support", feature_general_oci_support)
            .field("default_tag_expiration", default_tag_expiration)
            .field("registry_title", registry_title)
            .field("setup_complete", setup_complete)
            .field(
                "database_secret_key",
                &database_secret_key.as_ref().map(|_| "***"),
            )
            .field("authentication_type", authentication_type)
            .field("super_users", super_users)
            .field("global_readonly_super_users", global_readonly_super_users)
            .field("feature_super_users", feature_super_users)
            .field(
                "feature_superusers_full_access",
                feature_superusers_full_access,
            )
            .field("feature_anonymous_access", feature_anonymous_access)
            .field("feature_user_creation", feature_user_creation)
            .field("feature_user_initialize", feature_user_initialize)
            .field("feature_user_metadata", feature_user_metadata)
            .field("feature_app_specific_tokens", feature_app_specific_tokens)
            .field("create_private_repo_on_push", create_private_repo_on_push)
            .field("registry_state", registry_state)
            .field("instance_service_key_service", instance_service_key_service)
            .field(
                "registry_jwt_auth_max_fresh_s",
                registry_jwt_auth_max_fresh_s,
            )
            .field(
                "direct_oauth_clientid_whitelist",
                direct_oauth_clientid_whitelist,
            )
            .field("feature_storage_replication", feature_storage_replication)
            .field("feature_proxy_storage", feature_proxy_storage)
            .field("tag_expiration_options", tag_expiration_options)
            .field(
                "feature_change_tag_expiration",
                feature_change_tag_expiration,
            )
            .field("feature_garbage_collection", feature_garbage_collection)
            .field(
                "feature_namespace_garbage_collection",
                feature_namespace_garbage_collection,
            )
            .field(
                "feature_repository_garbage_collection",
                feature_repository_garbage_collection,
            )
            .field("permanently_delete_tags", permanently_delete_tags)
            .field("external_tls_termination", external_tls_termination)
            .field("ssl_protocols", ssl_protocols)
            .field("ssl_ciphers", ssl_ciphers)
            .field("feature_rate_limits", feature_rate_limits)
            .field("non_rate_limited_namespaces", non_rate_limited_namespaces)
            .field("db_connection_pooling", db_connection_pooling)
            .field(
                "db_connection_args",
                &db_connection_args.keys().collect::<Vec<_>>(),
            )
            .field(
                "buildlogs_redis",
                &buildlogs_redis
                    .as_ref()
                    .map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field(
                "user_events_redis",
                &user_events_redis
                    .as_ref()
                    .map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field("tracked_namespaces", tracked_namespaces)
            .field("worker_count_web", worker_count_web)
            .field("worker_count_registry", worker_count_registry)
            .field("worker_count_secscan", worker_count_secscan)
            .field("worker_connection_count_web", worker_connection_count_web)
            .field(
                "worker_connection_count_registry",
                worker_connection_count_registry,
            )
            .field(
                "worker_connection_count_secscan",
                worker_connection_count_secscan,
            )
            .field("worker_connection_count", worker_connection_count)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`.
///
/// Anything that does not look like a URL with credentials is returned unchanged.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last '@' ends the user info: passwords may contain '@' but hosts may not.
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end],
        &rest[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageDriverConfig;

    #[test]
    fn defaults_match_quay() {
        let config = Config::default();
        assert_eq!(config.preferred_url_scheme, "http");
        assert_eq!(config.library_namespace, "library");
        assert!(config.feature_library_support);
        assert!(config.feature_referrers_api);
        assert!(config.feature_general_oci_support);
        assert!(!config.setup_complete);
        assert_eq!(config.v2_pagination_size, 50);
        assert_eq!(config.push_temp_tag_expiration_sec, 3600);
        assert_eq!(config.maximum_layer_size.as_str(), "20G");
        assert_eq!(config.maximum_layer_size_bytes(), 20_000_000_000);
        assert_eq!(config.default_tag_expiration.as_str(), "2w");
        assert_eq!(config.default_tag_expiration_secs(), 1_209_600);
        assert_eq!(config.registry_title, "Project Quay");
        assert!(config.distributed_storage_config.is_empty());
    }

    #[test]
    fn hard_coded_defaults_agree_with_the_parsers() {
        assert_eq!(Ok(default_maximum_layer_size()), "20G".parse());
        assert_eq!(Ok(default_tag_expiration()), "2w".parse());
    }

    #[test]
    fn storage_preference_falls_back_to_config_order() {
        let mut config = Config::default();
        for id in ["us", "eu"] {
            config.distributed_storage_config.insert(
                id,
                StorageDriverConfig::Local {
                    storage_path: format!("/data/{id}").into(),
                },
            );
        }
        assert_eq!(config.storage_preference(), ["us", "eu"]);
        config.distributed_storage_preference = vec!["eu".to_owned()];
        assert_eq!(config.storage_preference(), ["eu"]);
    }

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            (
                "postgresql://quay:s3cr@t@db.example.com:5432/quay",
                "postgresql://quay:***@db.example.com:5432/quay",
            ),
            ("postgresql://quay@db/quay", "postgresql://quay@db/quay"),
            ("sqlite:///data/wharf.db", "sqlite:///data/wharf.db"),
            (
                "mysql+pymysql://u:p@h/d?x=a@b",
                "mysql+pymysql://u:***@h/d?x=a@b",
            ),
            ("not a url", "not a url"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url_password(url), expected, "{url}");
        }
        let config = Config {
            db_uri: Some("postgresql://quay:hunter2@db/quay".to_owned()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgresql://quay:***@db/quay"), "{shown}");
    }
}
