//! How Wharf connects to PostgreSQL: Quay's `DB_CONNECTION_ARGS` and `DB_CONNECTION_POOLING`,
//! typed and applied to sqlx's pool and connection options.
//!
//! Quay hands `DB_CONNECTION_ARGS` to peewee: `max_connections`, `stale_timeout` and `timeout`
//! configure playhouse's connection pool (the most connections open at once; how many seconds
//! a connection may be used before it is replaced; how many seconds to wait for a free one),
//! and the rest goes to psycopg2, of which Wharf understands the TLS keys `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` (libpq's names and meanings). `autorollback` and
//! `threadlocals` are peewee switches that Quay's own config tool writes; they mean nothing to
//! Wharf and are accepted silently. Every other key is reported back so the caller can warn.
//!
//! SQLite ignores these settings: it keeps one writer connection and a few readers.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::DbError;

/// Connection settings for [`crate::Db::connect_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectOptions {
    /// The most connections open at once (`max_connections`). Default 20.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing (`timeout`). Default 10 s.
    pub acquire_timeout: Duration,
    /// How long a connection is used, and may sit idle, before it is replaced
    /// (`stale_timeout`). Default: sqlx's (30 min lifetime, 10 min idle).
    pub stale_timeout: Option<Duration>,
    /// `DB_CONNECTION_POOLING`. When false every connection is closed as soon as it is given
    /// back, as Quay does without a pool: no connection is ever reused.
    pub pooling: bool,
    /// libpq's `sslmode`: `disable`, `allow`, `prefer` (the default), `require`, `verify-ca` or
    /// `verify-full`.
    pub ssl_mode: Option<String>,
    /// `sslrootcert`: the CA certificates (PEM) that verify the server.
    pub ssl_root_cert: Option<PathBuf>,
    /// `sslcert`: a client certificate (PEM).
    pub ssl_client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's key (PEM).
    pub ssl_client_key: Option<PathBuf>,
}

/// The pool size when `DB_CONNECTION_ARGS` sets no `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;
/// The acquire timeout when `DB_CONNECTION_ARGS` sets no `timeout`.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// What `timeout: 0` (peewee: wait for ever) becomes: long enough to mean "no limit".
const UNBOUNDED_WAIT: Duration = Duration::from_secs(24 * 3600);

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            stale_timeout: None,
            pooling: true,
            ssl_mode: None,
            ssl_root_cert: None,
            ssl_client_cert: None,
            ssl_client_key: None,
        }
    }
}

/// Keys of `DB_CONNECTION_ARGS` that only steer peewee and are accepted without effect.
const PEEWEE_ONLY: [&str; 2] = ["autorollback", "threadlocals"];

impl ConnectOptions {
    /// Reads Quay's `DB_CONNECTION_POOLING` and `DB_CONNECTION_ARGS`. Returns the options and
    /// the keys Wharf does not use (for a warning). A known key with a value of the wrong kind
    /// is an error naming it.
    pub fn from_quay(
        pooling: bool,
        args: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(ConnectOptions, Vec<String>), DbError> {
        let mut options = ConnectOptions {
            pooling,
            ..ConnectOptions::default()
        };
        let mut ignored = Vec::new();
        for (key, value) in args {
            match key.as_str() {
                "max_connections" => {
                    let n = whole_number(key, value)?;
                    options.max_connections = u32::try_from(n)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid(key, "a number of connections from 1 up"))?;
                }
                "timeout" => {
                    let seconds = seconds(key, value)?;
                    options.acquire_timeout = if seconds.is_zero() {
                        UNBOUNDED_WAIT
                    } else {
                        seconds
                    };
                }
                "stale_timeout" => {
                    // peewee's default is None: connections are never considered stale.
                    if !value.is_null() {
                        let seconds = seconds(key, value)?;
                        options.stale_timeout = (!seconds.is_zero()).then_some(seconds);
                    }
                }
                "sslmode" => {
                    let mode = text(key, value)?;
                    if !SSL_MODES.contains(&mode.as_str()) {
                        return Err(invalid(key, &format!("one of {}", SSL_MODES.join(", "))));
                    }
                    options.ssl_mode = Some(mode);
                }
                "sslrootcert" => options.ssl_root_cert = Some(text(key, value)?.into()),
                "sslcert" => options.ssl_client_cert = Some(text(key, value)?.into()),
                "sslkey" => options.ssl_client_key = Some(text(key, value)?.into()),
                other if PEEWEE_ONLY.contains(&other) => {}
                other => ignored.push(other.to_string()),
            }
        }
        Ok((options, ignored))
    }

    /// sqlx's pool options for these settings.
    pub(crate) fn pool_options(&self) -> sqlx::postgres::PgPoolOptions {
        let mut pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout);
        if let Some(stale) = self.stale_timeout {
            pool = pool.max_lifetime(stale).idle_timeout(stale);
        }
        if !self.pooling {
            pool = pool.idle_timeout(None).after_release(close_on_release);
        }
        pool
    }

    /// Applies the TLS settings to connection options parsed from `DB_URI`.
    pub(crate) fn apply_tls(
        &self,
        mut options: sqlx::postgres::PgConnectOptions,
    ) -> Result<sqlx::postgres::PgConnectOptions, DbError> {
        if let Some(mode) = &self.ssl_mode {
            let mode = mode
                .parse::<sqlx::postgres::PgSslMode>()
                .map_err(|e| invalid("sslmode", &e.to_string()))?;
            options = options.ssl_mode(mode);
        }
        if let Some(path) = &self.ssl_root_cert {
            options = options.ssl_root_cert(readable("sslrootcert", path)?);
        }
        if let Some(path) = &self.ssl_client_cert {
            options = options.ssl_client_cert(readable("sslcert", path)?);
        }
        if let Some(path) = &self.ssl_client_key {
            options = options.ssl_client_key(readable("sslkey", path)?);
        }
        Ok(options)
    }
}

/// libpq's `sslmode` values.
const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

type ReleaseFuture<'c> = Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// `after_release` hook that tells the pool to close the connection instead of keeping it.
fn close_on_release(
    _conn: &mut sqlx::PgConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> ReleaseFuture<'_> {
    Box::pin(async { Ok(false) })
}

fn invalid(key: &str, expected: &str) -> DbError {
    DbError::Connect(format!("DB_CONNECTION_ARGS.{key} must be {expected}"))
}

fn whole_number(key: &str, value: &serde_json::Value) -> Result<u64, DbError> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(key, "a whole number"))
}

fn seconds(key: &str, value: &serde_json::Value) -> Result<Duration, DbError> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    seconds
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= UNBOUNDED_WAIT.as_secs_f64())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| invalid(key, "a number of seconds"))
}

fn text(key: &str, value: &serde_json::Value) -> Result<String, DbError> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid(key, "a non-empty string")),
    }
}

/// A certificate or key path, checked up front so that a typo fails at start-up with the key's
/// name rather than at the first connection with a TLS error.
fn readable<'a>(key: &str, path: &'a PathBuf) -> Result<&'a PathBuf, DbError> {
    std::fs::metadata(path)
        .map(|_| path)
        .map_err(|e| DbError::Connect(format!("DB_CONNECTION_ARGS.{key}: {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_quays_pool_keys() {
        let (options, ignored) = ConnectOptions::from_quay(
            true,
            &args(json!({
                "max_connections": 7,
                "timeout": "2.5",
                "stale_timeout": 300,
                "sslmode": "verify-full",
                "sslrootcert": "/etc/ca.pem",
                "autorollback": true,
                "threadlocals": true,
                "keepalives": 1,
            })),
        )
        .unwrap();
        assert_eq!(options.max_connections, 7);
        assert_eq!(options.acquire_timeout, Duration::from_millis(2500));
        assert_eq!(options.stale_timeout, Some(Duration::from_secs(300)));
        assert_eq!(options.ssl_mode.as_deref(), Some("verify-full"));
        assert_eq!(options.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert!(options.pooling);
        assert_eq!(ignored, ["keepalives"]);
    }

    #[test]
    fn defaults_and_peewee_special_values() {
        let (options, ignored) = ConnectOptions::from_quay(false, &BTreeMap::new()).unwrap();
        assert_eq!(
            options,
            ConnectOptions {
                pooling: false,
                ..ConnectOptions::default()
            }
        );
        assert!(ignored.is_empty());
        let (options, _) =
            ConnectOptions::from_quay(true, &args(json!({"timeout": 0, "stale_timeout": null})))
                .unwrap();
        assert_eq!(options.acquire_timeout, UNBOUNDED_WAIT);
        assert_eq!(options.stale_timeout, None);
    }

    #[test]
    fn refuses_bad_values_naming_the_key() {
        for (bad, key) in [
            (json!({"max_connections": 0}), "max_connections"),
            (json!({"max_connections": "many"}), "max_connections"),
            (json!({"timeout": -1}), "timeout"),
            (json!({"sslmode": "sometimes"}), "sslmode"),
            (json!({"sslcert": ""}), "sslcert"),
        ] {
            let e = ConnectOptions::from_quay(true, &args(bad)).unwrap_err();
            assert!(
                e.to_string().contains(&format!("DB_CONNECTION_ARGS.{key}")),
                "{e}"
            );
        }
    }

    #[test]
    fn no_pooling_never_keeps_idle_connections() {
        let options = ConnectOptions {
            pooling: false,
            stale_timeout: Some(Duration::from_secs(5)),
            ..ConnectOptions::default()
        };
        let pool = options.pool_options();
        assert_eq!(pool.get_idle_timeout(), None);
        assert_eq!(pool.get_max_lifetime(), Some(Duration::from_secs(5)));
        assert_eq!(pool.get_max_connections(), DEFAULT_MAX_CONNECTIONS);
    }
}
