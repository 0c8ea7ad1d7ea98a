//! Tests for `load.rs`: a realistic Quay config, edge documents and error messages.

use std::path::PathBuf;

use crate::{Config, ConfigError, Location, StorageDriverConfig};

/// A config as Quay 3.6's config tool writes it (keys sorted, PyYAML style), with a local
/// location and an S3 one. Secrets are made up.
const QUAY_36_CONFIG: &str = r#"
ALLOW_PULLS_WITHOUT_STRICT_LOGGING: false
AUTHENTICATION_TYPE: Database
AVATAR_KIND: local
BUILDLOGS_REDIS:
    host: quay-redis.example.com
    password: redis-password
    port: 6379
DATABASE_SECRET_KEY: "4a1e0d3f-6e63-4c7b-9f54-2a4b8c1d7e90"
DB_CONNECTION_ARGS:
    autorollback: true
    threadlocals: true
DB_URI: postgresql://quayuser:quaypass@quay-postgres.example.com:5432/quay
DEFAULT_TAG_EXPIRATION: 4w
DISTRIBUTED_STORAGE_CONFIG:
    default:
        - LocalStorage
        - storage_path: /datastorage/registry
    s3_us_east:
        - S3Storage
        - host: s3.us-east-1.amazonaws.com
          port: 443
          s3_access_key: AKIAEXAMPLEEXAMPLE
          s3_bucket: quay-blobs
          s3_secret_key: not-a-real-secret
          storage_path: /registry
DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: []
DISTRIBUTED_STORAGE_PREFERENCE:
    - default
    - s3_us_east
EXTERNAL_TLS_TERMINATION: false
FEATURE_ACI_CONVERSION: false
FEATURE_ANONYMOUS_ACCESS: true
FEATURE_APP_SPECIFIC_TOKENS: true
FEATURE_BUILD_SUPPORT: false
FEATURE_CHANGE_TAG_EXPIRATION: true
FEATURE_DIRECT_LOGIN: true
FEATURE_GENERAL_OCI_SUPPORT: true
FEATURE_LIBRARY_SUPPORT: false
FEATURE_MAILING: false
FEATURE_REPO_MIRROR: false
FEATURE_SECURITY_SCANNER: false
FEATURE_USER_CREATION: true
FRESH_LOGIN_TIMEOUT: 10m
LIBRARY_NAMESPACE: official
LOGS_MODEL: database
LOGS_MODEL_CONFIG: {}
MAXIMUM_LAYER_SIZE: 8G
PREFERRED_URL_SCHEME: https
PUSH_TEMP_TAG_EXPIRATION_SEC: 7200
BLOBUPLOAD_DELETION_DATE_THRESHOLD: 60
REGISTRY_TITLE: Example Registry
REGISTRY_TITLE_SHORT: Example
SECRET_KEY: "9b2f7c1e-8d3a-4f6b-a5e0-1c7d9e2b4f68"
SERVER_HOSTNAME: quay-server.example.com
SETUP_COMPLETE: true
SUPER_USERS:
    - quayadmin
TAG_EXPIRATION_OPTIONS:
    - 0s
    - 1d
    - 1w
    - 2w
    - 4w
USER_EVENTS_REDIS:
    host: quay-redis.example.com
    password: redis-password
    port: 6379
V2_PAGINATION_SIZE: 100
"#;

fn parse(yaml: &str) -> Result<(Config, Vec<String>), ConfigError> {
    Config::from_yaml_str(yaml)
}

/// The `(key, location, reason)` of an `InvalidValue` error, or a description of what
/// came back instead.
fn invalid_value(yaml: &str) -> Result<(String, Option<Location>, String), String> {
    match parse(yaml) {
        Err(ConfigError::InvalidValue {
            key,
            location,
            reason,
        }) => Ok((key, location, reason)),
        other => Err(format!("expected InvalidValue for {yaml:?}, got {other:?}")),
    }
}

#[test]
fn quay_36_config_gives_typed_fields() -> Result<(), ConfigError> {
    let (config, _) = parse(QUAY_36_CONFIG)?;
    assert_eq!(
        config.db_uri.as_deref(),
        Some("postgresql://quayuser:quaypass@quay-postgres.example.com:5432/quay")
    );
    assert_eq!(
        config.server_hostname.as_deref(),
        Some("quay-server.example.com")
    );
    assert_eq!(config.preferred_url_scheme, "https");
    assert_eq!(config.default_tag_expiration.as_str(), "4w");
    assert_eq!(config.default_tag_expiration_secs(), 28 * 24 * 3600);
    assert_eq!(config.maximum_layer_size_bytes(), 8_000_000_000);
    assert_eq!(config.push_temp_tag_expiration_sec, 7200);
    assert_eq!(config.blobupload_deletion_date_threshold, 60);
    assert_eq!(config.v2_pagination_size, 100);
    assert!(!config.feature_library_support);
    assert_eq!(config.library_namespace, "official");
    assert!(config.feature_general_oci_support);
    // Absent from the file, so Quay's default applies.
    assert!(config.feature_referrers_api);
    assert_eq!(config.registry_title, "Example Registry");
    assert!(config.setup_complete);
    assert_eq!(
        config.distributed_storage_preference,
        ["default", "s3_us_east"]
    );
    assert!(config.distributed_storage_default_locations.is_empty());
    assert_eq!(config.storage_preference(), ["default", "s3_us_east"]);
    Ok(())
}

#[test]
fn quay_36_config_keeps_both_storage_locations() -> Result<(), ConfigError> {
    let (config, _) = parse(QUAY_36_CONFIG)?;
    let storage = &config.distributed_storage_config;
    assert_eq!(storage.ids().collect::<Vec<_>>(), ["default", "s3_us_east"]);
    assert_eq!(
        storage.get("default"),
        Some(&StorageDriverConfig::Local {
            storage_path: PathBuf::from("/datastorage/registry")
        })
    );
    match storage.get("s3_us_east") {
        Some(StorageDriverConfig::S3 {
            s3_bucket,
            port,
            storage_path,
            ..
        }) => {
            assert_eq!(s3_bucket, "quay-blobs");
            assert_eq!(*port, Some(443));
            assert_eq!(storage_path, "/registry");
        }
        other => panic!("s3_us_east should be an S3 driver, got {other:?}"),
    }
    Ok(())
}

#[test]
fn quay_36_config_reports_unknown_keys_in_file_order() -> Result<(), ConfigError> {
    let (_, unknown) = parse(QUAY_36_CONFIG)?;
    let expected = [
        "ALLOW_PULLS_WITHOUT_STRICT_LOGGING",
        "AVATAR_KIND",
        "FEATURE_ACI_CONVERSION",
        "FEATURE_BUILD_SUPPORT",
        "FEATURE_DIRECT_LOGIN",
        "FEATURE_MAILING",
        "FEATURE_REPO_MIRROR",
        "FEATURE_SECURITY_SCANNER",
        "FRESH_LOGIN_TIMEOUT",
        "LOGS_MODEL",
        "LOGS_MODEL_CONFIG",
        "REGISTRY_TITLE_SHORT",
        "SECRET_KEY",
    ];
    assert_eq!(unknown, expected);
    Ok(())
}

#[test]
fn quay_36_config_access_keys() -> Result<(), ConfigError> {
    let (config, _) = parse(QUAY_36_CONFIG)?;
    assert_eq!(config.authentication_type, "Database");
    assert!(config.database_secret_key.is_some());
    assert!(!format!("{config:?}").contains(config.database_secret_key.as_deref().unwrap_or("-")));
    assert_eq!(config.registry_state, "normal");
    assert!(config.create_private_repo_on_push);
    let (config, _) = parse("REGISTRY_STATE: readonly\nSUPER_USERS: [admin, ops]\n")?;
    assert_eq!(config.registry_state, "readonly");
    assert_eq!(config.super_users, ["admin", "ops"]);
    assert!(parse("REGISTRY_STATE: frozen\n").is_err());
    Ok(())
}

#[test]
fn empty_documents_give_the_defaults() -> Result<(), ConfigError> {
    for yaml in [
        "",
        "\n\n",
        "# nothing configured yet\n",
        "---\n",
        "--- ~\n",
        "null\n",
    ] {
        let (config, unknown) = parse(yaml)?;
        assert_eq!(config, Config::default(), "{yaml:?}");
        assert!(unknown.is_empty(), "{yaml:?}");
    }
    Ok(())
}

#[test]
fn yaml_11_booleans_parse_as_booleans() -> Result<(), ConfigError> {
    let spellings = [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("yes", true),
        ("Yes", true),
        ("YES", true),
        ("on", true),
        ("On", true),
        ("ON", true),
        ("false", false),
        ("False", false),
        ("FALSE", false),
        ("no", false),
        ("No", false),
        ("NO", false),
        ("off", false),
        ("Off", false),
        ("OFF", false),
    ];
    for (spelling, expected) in spellings {
        let yaml = format!(
            "SETUP_COMPLETE: {spelling}\nFEATURE_REFERRERS_API: {spelling}\n\
             FEATURE_GENERAL_OCI_SUPPORT: {spelling}\nFEATURE_LIBRARY_SUPPORT: {spelling}\n"
        );
        let (config, _) = parse(&yaml)?;
        assert_eq!(config.setup_complete, expected, "{spelling}");
        assert_eq!(config.feature_referrers_api, expected, "{spelling}");
        assert_eq!(config.feature_general_oci_support, expected, "{spelling}");
        assert_eq!(config.feature_library_support, expected, "{spelling}");
    }
    Ok(())
}

#[test]
fn boolean_looking_text_stays_text_in_string_fields() -> Result<(), ConfigError> {
    let (config, _) = parse("REGISTRY_TITLE: yes\nLIBRARY_NAMESPACE: 2024\n")?;
    assert_eq!(config.registry_title, "yes");
    assert_eq!(config.library_namespace, "2024");
    Ok(())
}

#[test]
fn null_clears_optional_strings() -> Result<(), ConfigError> {
    let (config, _) = parse("DB_URI: null\nSERVER_HOSTNAME:\n")?;
    assert_eq!((config.db_uri, config.server_hostname), (None, None));
    Ok(())
}

#[test]
fn plain_integer_layer_size_is_bytes() -> Result<(), ConfigError> {
    let (config, _) = parse("MAXIMUM_LAYER_SIZE: 1048576\n")?;
    assert_eq!(config.maximum_layer_size_bytes(), 1_048_576);
    Ok(())
}

#[test]
fn wrong_types_name_the_key_and_position() -> Result<(), String> {
    let (key, location, reason) =
        invalid_value("SETUP_COMPLETE: true\nFEATURE_LIBRARY_SUPPORT: maybe\n")?;
    assert_eq!(key, "FEATURE_LIBRARY_SUPPORT");
    assert_eq!(
        location,
        Some(Location {
            line: 2,
            column: 26
        })
    );
    assert!(reason.contains("true or false"), "{reason}");

    let cases = [
        (
            "V2_PAGINATION_SIZE: lots\n",
            "V2_PAGINATION_SIZE",
            "a whole number",
        ),
        (
            "PUSH_TEMP_TAG_EXPIRATION_SEC: -1\n",
            "PUSH_TEMP_TAG_EXPIRATION_SEC",
            "a whole number",
        ),
        (
            "REGISTRY_TITLE: [a, b]\n",
            "REGISTRY_TITLE",
            "expected string",
        ),
        (
            "DISTRIBUTED_STORAGE_PREFERENCE: {a: b}\n",
            "DISTRIBUTED_STORAGE_PREFERENCE",
            "list",
        ),
        ("LIBRARY_NAMESPACE:\n", "LIBRARY_NAMESPACE", "null"),
    ];
    for (yaml, expected_key, expected_reason) in cases {
        let (key, location, reason) = invalid_value(yaml)?;
        assert_eq!(key, expected_key, "{yaml:?}");
        assert_eq!(location.map(|l| l.line), Some(1), "{yaml:?}");
        assert!(reason.contains(expected_reason), "{yaml:?}: {reason}");
    }
    Ok(())
}

#[test]
fn bad_units_and_schemes_explain_themselves() -> Result<(), String> {
    let cases = [
        (
            "MAXIMUM_LAYER_SIZE: 20X\n",
            "MAXIMUM_LAYER_SIZE",
            "\"20X\" is not a size",
        ),
        (
            "DEFAULT_TAG_EXPIRATION: 2 weeks\n",
            "DEFAULT_TAG_EXPIRATION",
            "\"2 weeks\" is not a duration",
        ),
        (
            "PREFERRED_URL_SCHEME: ftp\n",
            "PREFERRED_URL_SCHEME",
            "must be http or https, found \"ftp\"",
        ),
        (
            "DISTRIBUTED_STORAGE_CONFIG:\n  local: [LocalStorage, {}]\n",
            "DISTRIBUTED_STORAGE_CONFIG",
            "location local: LocalStorage needs a storage_path parameter",
        ),
        (
            "DISTRIBUTED_STORAGE_CONFIG:\n  local: LocalStorage\n",
            "DISTRIBUTED_STORAGE_CONFIG",
            "[DriverName, {parameters}]",
        ),
    ];
    for (yaml, expected_key, expected_reason) in cases {
        let (key, location, reason) = invalid_value(yaml)?;
        assert_eq!(key, expected_key, "{yaml:?}");
        assert!(location.is_some(), "{yaml:?}");
        assert!(reason.contains(expected_reason), "{yaml:?}: {reason}");
    }
    Ok(())
}

#[test]
fn broken_documents_are_yaml_errors() {
    let cases = [
        ("FOO: [1, 2\n", true),
        ("SETUP_COMPLETE: true\nSETUP_COMPLETE: false\n", true),
        ("- SETUP_COMPLETE\n", false),
        ("just some text\n", false),
        ("a: 1\n---\nb: 2\n", true),
    ];
    for (yaml, has_location) in cases {
        match parse(yaml) {
            Err(ConfigError::Yaml { location, message }) => {
                assert_eq!(location.is_some(), has_location, "{yaml:?}: {message}");
                assert!(!message.is_empty(), "{yaml:?}");
            }
            other => panic!("expected a YAML error for {yaml:?}, got {other:?}"),
        }
    }
}

#[test]
fn error_messages_read_well() {
    let message = parse("SETUP_COMPLETE: true\nFEATURE_LIBRARY_SUPPORT: maybe\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "invalid value for FEATURE_LIBRARY_SUPPORT at line 2, column 26: invalid boolean; \
             the value must be true or false (yes/no and on/off are accepted too)"
        )
    );
}

#[test]
fn load_reads_a_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "SERVER_HOSTNAME: registry.example.com\nBOGUS_KEY: 1\n",
    )?;
    let (config, unknown) = Config::load(&path)?;
    assert_eq!(
        config.server_hostname.as_deref(),
        Some("registry.example.com")
    );
    assert_eq!(unknown, ["BOGUS_KEY"]);
    Ok(())
}

#[test]
fn load_reports_a_missing_file() {
    let path = PathBuf::from("/nonexistent/wharf/config.yaml");
    match Config::load(&path) {
        Err(error @ ConfigError::NotFound { .. }) => assert_eq!(
            error.to_string(),
            "config file /nonexistent/wharf/config.yaml does not exist"
        ),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn quay_36_config_time_machine_and_storage_features() -> Result<(), ConfigError> {
    let (config, _) = parse(QUAY_36_CONFIG)?;
    assert_eq!(
        config.tag_expiration_options,
        ["0s", "1d", "1w", "2w", "4w"]
    );
    assert!(config.feature_change_tag_expiration);
    assert!(!config.feature_storage_replication && !config.feature_proxy_storage);
    assert!(config.feature_garbage_collection);
    let (config, _) = parse(
        "FEATURE_STORAGE_REPLICATION: true\nFEATURE_PROXY_STORAGE: yes\n\
         FEATURE_GARBAGE_COLLECTION: false\nTAG_EXPIRATION_OPTIONS: [1h]\n",
    )?;
    assert!(config.feature_storage_replication && config.feature_proxy_storage);
    assert!(!config.feature_garbage_collection);
    assert_eq!(config.tag_expiration_options, ["1h"]);
    Ok(())
}

#[test]
fn quay_36_config_operations_keys() -> Result<(), ConfigError> {
    let (config, _) = parse(QUAY_36_CONFIG)?;
    assert!(!config.external_tls_termination);
    let redis = config
        .user_events_redis
        .as_ref()
        .expect("USER_EVENTS_REDIS");
    assert_eq!(redis["host"], "quay-redis.example.com");
    assert!(config.buildlogs_redis.is_some());
    let shown = format!("{config:?}");
    assert!(!shown.contains("redis-password"), "{shown}");
    let (config, _) = parse(
        "DB_CONNECTION_ARGS:\n  max_connections: 30\n  sslmode: verify-full\n\
         FEATURE_RATE_LIMITS: true\nNON_RATE_LIMITED_NAMESPACES: [ci]\n\
         SSL_PROTOCOLS: [TLSv1.2, TLSv1.3]\nWORKER_COUNT_REGISTRY: 8\n",
    )?;
    assert_eq!(config.db_connection_args["max_connections"], 30);
    assert_eq!(config.db_connection_args["sslmode"], "verify-full");
    assert!(config.feature_rate_limits);
    assert_eq!(config.non_rate_limited_namespaces, ["ci"]);
    assert_eq!(
        config.ssl_protocols.as_deref(),
        Some(&["TLSv1.2".to_string(), "TLSv1.3".to_string()][..])
    );
    assert_eq!(config.worker_count_registry, Some(8));
    Ok(())
}
