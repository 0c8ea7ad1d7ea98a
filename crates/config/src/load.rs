//! Reading a `config.yaml` into a [`Config`]: [`Config::load`] and [`Config::from_yaml_str`].
//!
//! The document is walked key by key with a hand-written serde visitor instead of a derived
//! `Deserialize`, for three reasons:
//! - unknown keys are collected in the same pass (a real Quay config carries dozens of keys
//!   Wharf does not read, and a derive can only drop them silently or reject them);
//! - the visitor knows which key it is reading when a value fails, so every type error
//!   names the key, which serde's derived errors do not;
//! - each value is deserialized straight from the YAML into its Rust type, not through an
//!   intermediate value tree (as `#[serde(flatten)]` would do), so YAML 1.1 booleans
//!   written by PyYAML (`yes`, `off`, ...) reach `bool` fields as booleans, `yes` stays
//!   text in a string field, and line/column positions survive into errors.

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::{MessageFormatter as _, Spanned};

use crate::error::{ConfigError, Location};
use crate::model::Config;

/// Hints appended to parser messages that only name the token found ("invalid boolean").
const BOOL: Option<&str> = Some("true or false (yes/no and on/off are accepted too)");
const LIST: Option<&str> = Some("a list of storage location ids");
const NAMES: Option<&str> = Some("a list of names");
const COUNT: Option<&str> = Some("a whole number");
/// For values whose message already says what is wanted: strings ("expected string
/// scalar") and values with their own parser (sizes, durations, storage drivers).
const NO_HINT: Option<&str> = None;

impl Config {
    /// Reads and parses the `config.yaml` at `path`.
    ///
    /// Returns the config and the top-level keys Wharf does not read, in file order; see
    /// [`Config::from_yaml_str`]. YAML errors carry a line and column but not the path,
    /// which the caller already has.
    pub fn load(path: impl AsRef<Path>) -> Result<(Config, Vec<String>), ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        tracing::debug!(path = %path.display(), size_bytes = text.len(), "parsing config file");
        Self::from_yaml_str(&text)
    }

    /// Parses the text of a `config.yaml`.
    ///
    /// Absent keys take Quay's defaults; an empty document gives [`Config::default`].
    /// Unknown top-level keys are not an error: they are returned, in document order, so
    /// the caller can log one warning naming them all. This includes keys that Quay
    /// understands but Wharf does not implement yet, because for the operator both mean
    /// "this setting has no effect here".
    pub fn from_yaml_str(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut state = ParseState::default();
        let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
            deserializer.deserialize_any(ConfigVisitor {
                state: &mut state,
                key_location: None,
            })
        });
        match result {
            Ok(config) => Ok((config, state.unknown_keys)),
            Err(error) => Err(state.into_error(&error)),
        }
    }
}

/// What the visitor records beside the config it builds.
#[derive(Default)]
struct ParseState {
    /// Top-level keys that no field reads, in document order.
    unknown_keys: Vec<String>,
    /// The known key whose value is being read; `None` between values, so that an error
    /// then is about the document itself.
    reading: Option<Reading>,
}

/// The known key whose value is being read.
struct Reading {
    key: String,
    key_location: Option<Location>,
    hint: Option<&'static str>,
    /// Set when the visitor itself rejects the value; see `ConfigVisitor::reject`.
    rejected_at: Option<Location>,
}

impl ParseState {
    /// Turns a parser error into a [`ConfigError`] naming the key being read, if any.
    fn into_error(self, error: &serde_saphyr::Error) -> ConfigError {
        let parser_location = error.location().and_then(location);
        // The user-facing formatter gives the message without position or source snippet
        // (we add our own position), and says "null is not allowed here" where the
        // developer formatter would suggest changing Rust types.
        let message: String = serde_saphyr::UserMessageFormatter
            .format_message(error.without_snippet())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let Some(reading) = self.reading else {
            return ConfigError::Yaml {
                location: parser_location,
                message,
            };
        };
        // Type errors raised inside nested visitors carry a best-effort position from the
        // parser that can lag behind (even line 1, column 1). A position before the key
        // cannot be the bad value, so the key's own position is used instead.
        let location = reading
            .rejected_at
            .or(match (parser_location, reading.key_location) {
                (Some(parser), Some(key)) if parser < key => Some(key),
                (parser, key) => parser.or(key),
            });
        ConfigError::InvalidValue {
            key: reading.key,
            location,
            reason: match reading.hint {
                Some(hint) => format!("{message}; the value must be {hint}"),
                None => message,
            },
        }
    }
}

/// Converts serde-saphyr's position, which uses line 0 for "unknown".
fn location(l: serde_saphyr::Location) -> Option<Location> {
    (l.line() > 0).then(|| Location {
        line: l.line(),
        column: l.column(),
    })
}

struct ConfigVisitor<'a> {
    state: &'a mut ParseState,
    /// Where the key being handled starts.
    key_location: Option<Location>,
}

impl ConfigVisitor<'_> {
    /// Reads the value of `key`, remembering the key in case the value is rejected.
    fn read<'de, T, A>(
        &mut self,
        map: &mut A,
        key: &str,
        hint: Option<&'static str>,
    ) -> Result<T, A::Error>
    where
        T: Deserialize<'de>,
        A: MapAccess<'de>,
    {
        self.state.reading = Some(Reading {
            key: key.to_owned(),
            key_location: self.key_location,
            hint,
            rejected_at: None,
        });
        let value = map.next_value()?;
        self.state.reading = None;
        Ok(value)
    }

    /// Rejects a value that parsed but cannot be used.
    ///
    /// An error made with `serde::de::Error::custom` after its value was read carries no
    /// position, so the value's own position is recorded here instead.
    fn reject<E: serde::de::Error>(&mut self, key: &str, value: &Spanned<String>, why: &str) -> E {
        self.state.reading = Some(Reading {
            key: key.to_owned(),
            key_location: self.key_location,
            hint: None,
            rejected_at: location(value.referenced),
        });
        E::custom(format!("{why}, found {:?}", value.value))
    }
}

impl<'de> Visitor<'de> for ConfigVisitor<'_> {
    type Value = Config;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of configuration keys (KEY: value)")
    }

    /// An empty document (no text, only comments, `---` or `null`) is an empty config.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Config, E> {
        Ok(Config::default())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Config, E> {
        Ok(Config::default())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Config, A::Error> {
        let mut config = Config::default();
        while let Some(Spanned {
            value: key,
            referenced,
            ..
        }) = map.next_key::<Spanned<String>>()?
        {
            self.key_location = location(referenced);
            let k = key.as_str();
            match k {
                "DB_URI" => config.db_uri = self.read(&mut map, k, NO_HINT)?,
                "SERVER_HOSTNAME" => {
                    config.server_hostname = self.read(&mut map, k, NO_HINT)?;
                }
                "PREFERRED_URL_SCHEME" => {
                    let scheme: Spanned<String> = self.read(&mut map, k, NO_HINT)?;
                    // Checked here rather than when building URLs, because a typo would
                    // otherwise surface as broken token realms long after start-up.
                    if scheme.value != "http" && scheme.value != "https" {
                        return Err(self.reject(k, &scheme, "must be http or https"));
                    }
                    config.preferred_url_scheme = scheme.value;
                }
                "DISTRIBUTED_STORAGE_CONFIG" => {
                    config.distributed_storage_config = self.read(&mut map, k, NO_HINT)?;
                }
                "DISTRIBUTED_STORAGE_PREFERENCE" => {
                    config.distributed_storage_preference = self.read(&mut map, k, LIST)?;
                }
                "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS" => {
                    config.distributed_storage_default_locations = self.read(&mut map, k, LIST)?;
                }
                "FEATURE_LIBRARY_SUPPORT" => {
                    config.feature_library_support = self.read(&mut map, k, BOOL)?;
                }
                "LIBRARY_NAMESPACE" => {
                    config.library_namespace = self.read(&mut map, k, NO_HINT)?;
                }
                "V2_PAGINATION_SIZE" => {
                    config.v2_pagination_size = self.read(&mut map, k, COUNT)?;
                }
                "PUSH_TEMP_TAG_EXPIRATION_SEC" => {
                    config.push_temp_tag_expiration_sec = self.read(&mut map, k, COUNT)?;
                }
                "BLOBUPLOAD_DELETION_DATE_THRESHOLD" => {
                    config.blobupload_deletion_date_threshold = self.read(&mut map, k, COUNT)?;
                }
                "MAXIMUM_LAYER_SIZE" => {
                    config.maximum_layer_size = self.read(&mut map, k, NO_HINT)?
                }
                "FEATURE_REFERRERS_API" => {
                    config.feature_referrers_api = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_GENERAL_OCI_SUPPORT" => {
                    config.feature_general_oci_support = self.read(&mut map, k, BOOL)?;
                }
                "DEFAULT_TAG_EXPIRATION" => {
                    config.default_tag_expiration = self.read(&mut map, k, NO_HINT)?;
                }
                "REGISTRY_TITLE" => {
                    config.registry_title = self.read(&mut map, k, NO_HINT)?;
                }
                "SETUP_COMPLETE" => {
                    config.setup_complete = self.read(&mut map, k, BOOL)?;
                }
                "DATABASE_SECRET_KEY" => {
                    config.database_secret_key = self.read(&mut map, k, NO_HINT)?;
                }
                "AUTHENTICATION_TYPE" => {
                    config.authentication_type = self.read(&mut map, k, NO_HINT)?;
                }
                "SUPER_USERS" => {
                    config.super_users = self.read(&mut map, k, NAMES)?;
                }
                "GLOBAL_READONLY_SUPER_USERS" => {
                    config.global_readonly_super_users = self.read(&mut map, k, NAMES)?;
                }
                "FEATURE_SUPER_USERS" => {
                    config.feature_super_users = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_SUPERUSERS_FULL_ACCESS" => {
                    config.feature_superusers_full_access = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_ANONYMOUS_ACCESS" => {
                    config.feature_anonymous_access = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_USER_CREATION" => {
                    config.feature_user_creation = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_USER_INITIALIZE" => {
                    config.feature_user_initialize = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_USER_METADATA" => {
                    config.feature_user_metadata = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_APP_SPECIFIC_TOKENS" => {
                    config.feature_app_specific_tokens = self.read(&mut map, k, BOOL)?;
                }
                "CREATE_PRIVATE_REPO_ON_PUSH" => {
                    config.create_private_repo_on_push = self.read(&mut map, k, BOOL)?;
                }
                "REGISTRY_STATE" => {
                    let state: Spanned<String> = self.read(&mut map, k, NO_HINT)?;
                    if state.value != "normal" && state.value != "readonly" {
                        return Err(self.reject(k, &state, "must be normal or readonly"));
                    }
                    config.registry_state = state.value;
                }
                "INSTANCE_SERVICE_KEY_SERVICE" => {
                    config.instance_service_key_service = self.read(&mut map, k, NO_HINT)?;
                }
                "REGISTRY_JWT_AUTH_MAX_FRESH_S" => {
                    config.registry_jwt_auth_max_fresh_s = self.read(&mut map, k, COUNT)?;
                }
                "DIRECT_OAUTH_CLIENTID_WHITELIST" => {
                    config.direct_oauth_clientid_whitelist = self.read(&mut map, k, NAMES)?;
                }
                "FEATURE_STORAGE_REPLICATION" => {
                    config.feature_storage_replication = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_PROXY_STORAGE" => {
                    config.feature_proxy_storage = self.read(&mut map, k, BOOL)?;
                }
                "TAG_EXPIRATION_OPTIONS" => {
                    config.tag_expiration_options = self.read(&mut map, k, LIST)?;
                }
                "FEATURE_CHANGE_TAG_EXPIRATION" => {
                    config.feature_change_tag_expiration = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_GARBAGE_COLLECTION" => {
                    config.feature_garbage_collection = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_NAMESPACE_GARBAGE_COLLECTION" => {
                    config.feature_namespace_garbage_collection = self.read(&mut map, k, BOOL)?;
                }
                "FEATURE_REPOSITORY_GARBAGE_COLLECTION" => {
                    config.feature_repository_garbage_collection = self.read(&mut map, k, BOOL)?;
                }
                "PERMANENTLY_DELETE_TAGS" => {
                    config.permanently_delete_tags = self.read(&mut map, k, BOOL)?;
                }
                "EXTERNAL_TLS_TERMINATION" => {
                    config.external_tls_termination = self.read(&mut map, k, BOOL)?;
                }
                "SSL_PROTOCOLS" => {
                    config.ssl_protocols = self.read(&mut map, k, LIST)?;
                }
                "SSL_CIPHERS" => {
                    config.ssl_ciphers = self.read(&mut map, k, LIST)?;
                }
                "FEATURE_RATE_LIMITS" => {
                    config.feature_rate_limits = self.read(&mut map, k, BOOL)?;
                }
                "NON_RATE_LIMITED_NAMESPACES" => {
                    config.non_rate_limited_namespaces = self.read(&mut map, k, NAMES)?;
                }
                "DB_CONNECTION_POOLING" => {
                    config.db_connection_pooling = self.read(&mut map, k, BOOL)?;
                }
                "DB_CONNECTION_ARGS" => {
                    config.db_connection_args = self.read(&mut map, k, NO_HINT)?;
                }
                "BUILDLOGS_REDIS" => {
                    config.buildlogs_redis = self.read(&mut map, k, NO_HINT)?;
                }
                "USER_EVENTS_REDIS" => {
                    config.user_events_redis = self.read(&mut map, k, NO_HINT)?;
                }
                "TRACKED_NAMESPACES" => {
                    config.tracked_namespaces = self.read(&mut map, k, NAMES)?;
                }
                "WORKER_COUNT_WEB" => {
                    config.worker_count_web = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_COUNT_REGISTRY" => {
                    config.worker_count_registry = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_COUNT_SECSCAN" => {
                    config.worker_count_secscan = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_CONNECTION_COUNT_WEB" => {
                    config.worker_connection_count_web = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_CONNECTION_COUNT_REGISTRY" => {
                    config.worker_connection_count_registry = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_CONNECTION_COUNT_SECSCAN" => {
                    config.worker_connection_count_secscan = self.read(&mut map, k, COUNT)?;
                }
                "WORKER_CONNECTION_COUNT" => {
                    config.worker_connection_count = self.read(&mut map, k, COUNT)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    self.state.unknown_keys.push(key);
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
