//! The online checks: connect to what the bundle names, with Quay's messages.
//!
//! A check runs only for settings the offline rules accepted (a database URI with no
//! message about `DB_URI`, a storage location with no message about it, ...), so a broken
//! value is reported once. All checks run concurrently, each within the run's timeout:
//! a service that does not answer in time is reported as unreachable.
//!
//! What each check does:
//! - Database: a TCP connection first (so a refused port fails at once), then the `db` crate's
//!   pool with `DB_CONNECTION_ARGS` as `wharf serve` opens it (a SQLite file that does not
//!   exist yet is not created: its directory is checked instead);
//! - Redis: connects (TLS when `ssl`, trusting `extra_ca_certs/`), authenticates, `PING`;
//! - storage: builds each location's driver as `wharf serve` does and lists an empty prefix
//!   (missing bucket, wrong credentials or endpoint fail); a `LocalStorage` path must be a
//!   directory or creatable (nothing is created);
//! - LDAP (with `AUTHENTICATION_TYPE: LDAP`): connects (`ldaps://` trusting `ldap.crt` and
//!   `extra_ca_certs/`), binds as `LDAP_ADMIN_DN`, searches users under `LDAP_BASE_DN`;
//! - Email (with `FEATURE_MAILING`): connects to the SMTP server and reads its greeting;
//! - SecurityScanner (with `FEATURE_SECURITY_SCANNER`): connects to each endpoint's port.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use config::StorageDriverConfig;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::check::{Object, as_int, as_port, flag, present, text, url_host_port};
use crate::groups::{
    self, DATABASE, DEFAULT_LDAP_URI, DISTRIBUTED_STORAGE, EMAIL, LDAP, LDAP_CERT, REDIS,
    REDIS_KEYS, SCANNER_ENDPOINTS, SECURITY_SCANNER,
};
use crate::{Bundle, ValidationError};

/// The prefix listed to probe an object store: nothing is stored under it, so the listing
/// is one cheap request that still needs the bucket and the credentials to be right.
const PROBE_PREFIX: &str = "wharf-validate-config/probe";

type Check<'a> = Pin<Box<dyn Future<Output = Option<ValidationError>> + Send + 'a>>;

/// Runs the online checks for everything `offline` did not already find wrong.
pub(crate) async fn check(
    bundle: &Bundle,
    offline: &[ValidationError],
    timeout: Duration,
) -> Vec<ValidationError> {
    let config = &bundle.config;
    let mentions = |key: &str| {
        let nested = format!("{key}.");
        offline
            .iter()
            .any(|e| e.tags.iter().any(|t| t == key || t.starts_with(&nested)))
    };
    let group_clean = |group: &str| !offline.iter().any(|e| e.field_group == group);
    let extra_cas = Arc::new(bundle.extra_ca_pems());
    let mut checks: Vec<Check<'_>> = Vec::new();

    if let Some(uri) = text(config, "DB_URI").filter(|_| !mentions("DB_URI")) {
        let prefix = "Could not connect to database. Error: ".to_owned();
        let mut options = groups::connect_options(config);
        options.acquire_timeout = options.acquire_timeout.min(timeout);
        checks.push(probe(
            timeout,
            DATABASE,
            "DB_URI",
            prefix.clone(),
            async move {
                database(uri, &options)
                    .await
                    .map_err(|e| format!("{prefix}{e}"))
            },
        ));
    }
    for (key, _) in REDIS_KEYS {
        let Some(settings) = present(config, key).and_then(Value::as_object) else {
            continue;
        };
        if mentions(key) {
            continue;
        }
        let extra_cas = extra_cas.clone();
        let prefix = format!("Could not connect to Redis with values provided in {key}. Error: ");
        checks.push(probe(timeout, REDIS, key, prefix.clone(), async move {
            redis_ping(settings, &extra_cas, timeout)
                .await
                .map_err(|e| format!("{prefix}{e}"))
        }));
    }
    let locations = present(config, "DISTRIBUTED_STORAGE_CONFIG").and_then(Value::as_object);
    for (id, value) in locations.into_iter().flatten() {
        let tag = format!("DISTRIBUTED_STORAGE_CONFIG.{id}");
        if mentions(&tag) {
            continue;
        }
        let extra_cas = extra_cas.clone();
        let prefix = format!("Could not connect to storage {id}. Error: ");
        checks.push(probe(
            timeout,
            DISTRIBUTED_STORAGE,
            &tag,
            prefix.clone(),
            async move {
                storage_location(id, value, &extra_cas)
                    .await
                    .map_err(|e| format!("{prefix}{e}"))
            },
        ));
    }
    if text(config, "AUTHENTICATION_TYPE") == Some("LDAP") && group_clean(LDAP) {
        let uri = text(config, "LDAP_URI").unwrap_or(DEFAULT_LDAP_URI);
        let prefix = format!("Could not connect to {uri}. Error: ");
        checks.push(probe(timeout, LDAP, "LDAP_URI", prefix, async move {
            ldap(bundle, uri, timeout).await
        }));
    }
    if flag(config, "FEATURE_MAILING", false)
        && group_clean(EMAIL)
        && let Some(server) = text(config, "MAIL_SERVER")
    {
        let port = present(config, "MAIL_PORT")
            .and_then(as_port)
            .unwrap_or(587);
        let prefix = format!("Cannot reach {server}. Error: ");
        checks.push(probe(
            timeout,
            EMAIL,
            "MAIL_SERVER",
            prefix.clone(),
            async move {
                smtp_greeting(server, port)
                    .await
                    .map_err(|e| format!("{prefix}{e}"))
            },
        ));
    }
    if flag(config, "FEATURE_SECURITY_SCANNER", false) && group_clean(SECURITY_SCANNER) {
        for key in SCANNER_ENDPOINTS {
            let Some(url) = text(config, key) else {
                continue;
            };
            let prefix = format!("Cannot reach {url}. Error: ");
            checks.push(probe(
                timeout,
                SECURITY_SCANNER,
                key,
                prefix.clone(),
                async move { reach(url).await.map_err(|e| format!("{prefix}{e}")) },
            ));
        }
    }
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// One check as a boxed future: `check` gives the whole message on failure; when it takes
/// longer than `timeout`, the message is `timeout_prefix` and the time waited.
fn probe<'a>(
    timeout: Duration,
    group: &'static str,
    tag: &str,
    timeout_prefix: String,
    check: impl Future<Output = Result<(), String>> + Send + 'a,
) -> Check<'a> {
    let tag = tag.to_owned();
    Box::pin(async move {
        let message = match tokio::time::timeout(timeout, check).await {
            Ok(Ok(())) => return None,
            Ok(Err(message)) => message,
            Err(_) => format!(
                "{timeout_prefix}no answer within {} s",
                timeout.as_secs_f64()
            ),
        };
        Some(ValidationError {
            field_group: group.to_owned(),
            tags: vec![tag],
            message,
        })
    })
}

/// Opens the database with the pool and TLS settings `wharf serve` uses, and closes it.
async fn database(uri: &str, options: &db::ConnectOptions) -> Result<(), String> {
    if let Some(path) = sqlite_path(uri) {
        // Connecting would create a missing file; the server will, so its directory is
        // what has to exist.
        let path = Path::new(path);
        if !path.exists() {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            return if dir.is_dir() {
                Ok(())
            } else {
                Err(format!("directory {} does not exist", dir.display()))
            };
        }
    }
    // The pool retries refused connections until its own timeout; one plain TCP connection
    // first turns "nothing listens there" into an immediate, precise message.
    if let Some((host, port)) = postgres_address(uri) {
        tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("{host}:{port}: {e}"))?;
    }
    let db = db::Db::connect_with(uri, options)
        .await
        .map_err(|e| e.to_string())?;
    db.close().await;
    Ok(())
}

/// The TCP host and port of a `postgresql://` URI; None for other URIs and for a socket
/// directory (no host).
fn postgres_address(uri: &str) -> Option<(String, u16)> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(',') {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

/// The file of a `sqlite:` URI, as the `db` crate reads it.
fn sqlite_path(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sqlite:")?;
    Some(
        rest.strip_prefix("///")
            .or_else(|| rest.strip_prefix("//"))
            .unwrap_or(rest),
    )
}

/// Connects to Redis as Quay would with `settings` (`host`, `port`, `password`, `ssl`,
/// `db`), and sends `PING`.
async fn redis_ping(
    settings: &Object,
    extra_cas: &[Vec<u8>],
    timeout: Duration,
) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    let host = text(settings, "host").unwrap_or("localhost").to_owned();
    let port = present(settings, "port").and_then(as_port).unwrap_or(6379);
    let ssl = flag(settings, "ssl", false);
    let addr = if ssl {
        redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        redis::ConnectionAddr::Tcp(host, port)
    };
    let mut settings_info = redis::RedisConnectionInfo::default();
    if let Some(username) = text(settings, "username") {
        settings_info = settings_info.set_username(username);
    }
    if let Some(password) = text(settings, "password") {
        settings_info = settings_info.set_password(password);
    }
    if let Some(db) = present(settings, "db").and_then(as_int) {
        settings_info = settings_info.set_db(db);
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(settings_info);
    let client = if ssl && !extra_cas.is_empty() {
        // Given root certificates replace the system's: add both.
        let mut roots: Vec<u8> = extra_cas.concat();
        for cert in rustls_native_certs::load_native_certs().certs {
            roots.extend(pem_certificate(&cert));
        }
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(roots),
            },
        )
    } else {
        redis::Client::open(info)
    }
    .map_err(|e| e.to_string())?;
    let connection_config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&connection_config)
        .await
        .map_err(|e| e.to_string())?;
    let _pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A DER certificate as PEM text.
fn pem_certificate(der: &[u8]) -> Vec<u8> {
    let base64 = data_encoding::BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

/// Checks one storage location: object stores are listed under [`PROBE_PREFIX`]; a local
/// directory must exist or be creatable.
async fn storage_location(id: &str, value: &Value, extra_cas: &[Vec<u8>]) -> Result<(), String> {
    let Some(driver) = groups::location_driver(id, value) else {
        return Ok(());
    };
    match &driver {
        StorageDriverConfig::Local { storage_path } => local_directory(storage_path),
        // Reported offline: Wharf has no driver to try.
        StorageDriverConfig::Other { .. } => Ok(()),
        _ => {
            // The client retries refused connections for minutes; one TCP connection to an
            // explicit endpoint first makes "nothing listens there" an immediate answer.
            let endpoint = match &driver {
                StorageDriverConfig::Azure { endpoint_url, .. } => endpoint_url.clone(),
                other => other.s3_endpoint(),
            };
            if let Some(endpoint) = endpoint {
                reach(&endpoint).await?;
            }
            let options = storage::OpenOptions {
                location: id.to_owned(),
                extra_ca_pems: extra_cas.to_vec(),
            };
            let store = storage::open(&driver, &options).map_err(|e| e.to_string())?;
            store
                .list(PROBE_PREFIX)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

/// A local storage path must be a directory, or its nearest existing ancestor must be one
/// (the server creates the rest).
fn local_directory(path: &Path) -> Result<(), String> {
    let mut candidate = path;
    loop {
        match std::fs::metadata(candidate) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("{} is not a directory", candidate.display())),
            // A missing path, or one below a file: look at the parent.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match candidate.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => candidate = parent,
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(format!("{}: {e}", candidate.display())),
        }
    }
}

/// Connects to the directory, binds as `LDAP_ADMIN_DN` and searches for users, as Quay's
/// config tool does. The error is the whole message.
async fn ldap(bundle: &Bundle, uri: &str, timeout: Duration) -> Result<(), String> {
    let config = &bundle.config;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut pems = bundle.extra_ca_pems();
    if let Some(pem) = bundle.certs.get(LDAP_CERT) {
        pems.push(pem.clone());
    }
    for pem in &pems {
        if let Ok(certs) = crate::certs::parse_certificates(pem) {
            roots.add_parsable_certificates(certs);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("Could not connect to {uri}. Error: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let settings = ldap3::LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_config(Arc::new(tls));
    let (connection, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, uri)
        .await
        .map_err(|e| format!("Could not connect to {uri}. Error: {e}"))?;
    ldap3::drive!(connection);
    let admin_dn = text(config, "LDAP_ADMIN_DN").unwrap_or("");
    let admin_password = text(config, "LDAP_ADMIN_PASSWD").unwrap_or("");
    ldap.simple_bind(admin_dn, admin_password)
        .await
        .and_then(ldap3::LdapResult::success)
        .map_err(|e| format!("Could not authenticate LDAP server. Error: {e}"))?;
    let base_dn = strings(config, "LDAP_BASE_DN").join(",");
    if !base_dn.is_empty() {
        let uid = text(config, "LDAP_UID_ATTR").unwrap_or("uid");
        let email = text(config, "LDAP_EMAIL_ATTR").unwrap_or("mail");
        let user_filter = text(config, "LDAP_USER_FILTER").unwrap_or("");
        let filter = format!("(&({uid}=*){user_filter})");
        let result = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(1))
            .search(&base_dn, ldap3::Scope::Subtree, &filter, vec![email, uid])
            .await
            .map_err(|e| format!("Could not query LDAP server. Error: {e}"))?;
        // One entry is enough to know the search works: "size limit exceeded" is success.
        if result.1.rc != 0 && result.1.rc != 4 {
            return Err(format!("Could not query LDAP server. Error: {}", result.1));
        }
    }
    let _ = ldap.unbind().await;
    Ok(())
}

/// The strings of a list value (non-strings skipped).
fn strings<'m>(config: &'m Object, key: &str) -> Vec<&'m str> {
    present(config, key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Connects to an SMTP server and reads its greeting, which must be `220`.
async fn smtp_greeting(server: &str, port: u16) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect((server, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    if line.starts_with("220") {
        Ok(())
    } else {
        Err(format!("unexpected greeting {:?}", line.trim_end()))
    }
}

/// Opens a TCP connection to the host and port of `url`.
async fn reach(url: &str) -> Result<(), String> {
    let (host, port) = url_host_port(url).ok_or_else(|| format!("{url} is not a URL"))?;
    tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map(|_| ())
        .map_err(|e| format!("{host}:{port}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite:///wharf.db"), Some("wharf.db"));
        assert_eq!(
            sqlite_path("sqlite:////data/wharf.db"),
            Some("/data/wharf.db")
        );
        assert_eq!(sqlite_path("postgresql://h/db"), None);
    }

    #[test]
    fn postgres_addresses() {
        let cases = [
            (
                "postgresql://u:p@db.example.com:5433/quay",
                Some(("db.example.com", 5433)),
            ),
            ("postgres://db/quay?sslmode=require", Some(("db", 5432))),
            ("postgresql://u@[::1]:6000/quay", Some(("::1", 6000))),
            ("postgresql:///quay?host=/var/run/postgresql", None),
            ("sqlite:///wharf.db", None),
        ];
        for (uri, expected) in cases {
            let expected = expected.map(|(h, p)| (h.to_owned(), p));
            assert_eq!(postgres_address(uri), expected, "{uri}");
        }
    }

    #[test]
    fn local_directories() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert_eq!(local_directory(dir.path()), Ok(()));
        assert_eq!(local_directory(&dir.path().join("new/deeper")), Ok(()));
        let file = dir.path().join("file");
        std::fs::write(&file, "x")?;
        assert_eq!(
            local_directory(&file.join("below")),
            Err(format!("{} is not a directory", file.display()))
        );
        assert!(!dir.path().join("new").exists(), "nothing is created");
        Ok(())
    }

    #[test]
    fn pem_wraps_der() {
        let pem = String::from_utf8(pem_certificate(&[1, 2, 3])).unwrap_or_default();
        assert_eq!(
            pem,
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
        );
    }
}
