//! Online checks against the PostgreSQL and Redis this machine runs, a moto S3 server of
//! the test's own, local directories, and closed ports for every kind of failure.

use std::collections::BTreeMap;
use std::time::Duration;

use configtool::{Bundle, Mode, Options};
use serde_json::{Value, json};

use super::{closed_port, config_with, triples};

fn pg_uri() -> String {
    std::env::var("WHARF_TEST_PG")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn online() -> Options {
    Options {
        mode: Mode::Online,
        timeout: Duration::from_secs(5),
    }
}

/// A config whose services are the real ones of this machine, with `changes` applied.
fn local_services(dir: &std::path::Path, changes: Value) -> Bundle {
    let mut config = config_with(json!({
        "DB_URI": pg_uri(),
        "BUILDLOGS_REDIS": {"host": "127.0.0.1", "port": 6379},
        "USER_EVENTS_REDIS": {"host": "127.0.0.1", "port": 6379},
        "DISTRIBUTED_STORAGE_CONFIG": {
            "default": ["LocalStorage", {"storage_path": dir.join("storage").to_str().unwrap()}]
        },
    }));
    for (key, value) in changes.as_object().cloned().unwrap() {
        config.insert(key, value);
    }
    Bundle::new(config, BTreeMap::new())
}

async fn messages(bundle: &Bundle) -> Vec<(String, Vec<String>, String)> {
    triples(configtool::validate(bundle, &online()).await)
}

#[tokio::test]
async fn the_machines_services_pass() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(messages(&local_services(dir.path(), json!({}))).await, []);
    assert!(
        !dir.path().join("storage").exists(),
        "validation creates nothing"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let uri = format!("postgresql://quay:hunter2@127.0.0.1:{port}/quay");
    let found = messages(&local_services(dir.path(), json!({"DB_URI": uri}))).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let (group, tags, message) = &found[0];
    assert_eq!(
        (group.as_str(), tags.as_slice()),
        ("Database", &["DB_URI".to_owned()][..])
    );
    assert!(
        message.starts_with("Could not connect to database. Error: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_missing_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let base = pg_uri();
    let uri = format!(
        "{}/wharf_configtool_no_such_database",
        base.rsplit_once('/').unwrap().0
    );
    let found = messages(&local_services(dir.path(), json!({"DB_URI": uri}))).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.contains("does not exist"), "{found:?}");
}

#[tokio::test]
async fn sqlite_files_are_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.db");
    let uri = format!("sqlite:///{}", file.display());
    assert_eq!(
        messages(&local_services(dir.path(), json!({"DB_URI": uri}))).await,
        []
    );
    assert!(!file.exists());
    let missing = dir.path().join("nowhere/wharf.db");
    let uri = format!("sqlite:///{}", missing.display());
    assert_eq!(
        messages(&local_services(dir.path(), json!({"DB_URI": uri}))).await,
        [super::p(
            "Database",
            &["DB_URI"],
            &format!(
                "Could not connect to database. Error: directory {} does not exist",
                dir.path().join("nowhere").display()
            )
        )]
    );
}

#[tokio::test]
async fn redis_failures_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let bundle = local_services(
        dir.path(),
        json!({
            "BUILDLOGS_REDIS": {"host": "127.0.0.1", "port": port},
            // This Redis has no password: AUTH is refused.
            "USER_EVENTS_REDIS": {"host": "127.0.0.1", "port": 6379, "password": "wrong"},
        }),
    );
    let found = messages(&bundle).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "Redis");
    assert_eq!(found[0].1, ["BUILDLOGS_REDIS"]);
    assert!(
        found[0].2.starts_with(
            "Could not connect to Redis with values provided in BUILDLOGS_REDIS. Error: "
        ),
        "{found:?}"
    );
    assert_eq!(found[1].1, ["USER_EVENTS_REDIS"]);
    assert!(
        found[1].2.starts_with(
            "Could not connect to Redis with values provided in USER_EVENTS_REDIS. Error: "
        ),
        "{found:?}"
    );
}

#[tokio::test]
async fn object_storage_is_listed() {
    let moto = storage::testing::TestServer::moto();
    moto.create_bucket("registry").await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = |bucket: &str, endpoint: &str| {
        json!(["S3Storage", {
            "s3_bucket": bucket, "storage_path": "/datastorage/registry",
            "s3_access_key": "testing", "s3_secret_key": "testing",
            "endpoint_url": endpoint, "s3_region": "us-east-1",
        }])
    };
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let bundle = local_services(
        dir.path(),
        json!({
            "DISTRIBUTED_STORAGE_CONFIG": {
                "good": s3("registry", &moto.endpoint),
                "nobucket": s3("missing", &moto.endpoint),
                "down": s3("registry", &closed),
            },
            "DISTRIBUTED_STORAGE_PREFERENCE": ["good"],
        }),
    );
    let found = messages(&bundle).await;
    let tags: Vec<&str> = found.iter().map(|(_, tags, _)| tags[0].as_str()).collect();
    assert_eq!(
        tags,
        [
            "DISTRIBUTED_STORAGE_CONFIG.down",
            "DISTRIBUTED_STORAGE_CONFIG.nobucket"
        ],
        "{found:?}"
    );
    assert!(
        found[0]
            .2
            .starts_with("Could not connect to storage down. Error: 127.0.0.1:"),
        "{found:?}"
    );
    assert!(found[0].2.contains("refused"), "{found:?}");
    assert!(
        found[1]
            .2
            .starts_with("Could not connect to storage nobucket. Error: "),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_local_storage_path_under_a_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let path = dir.path().join("file/storage");
    let bundle = local_services(
        dir.path(),
        json!({"DISTRIBUTED_STORAGE_CONFIG": {
            "default": ["LocalStorage", {"storage_path": path.to_str().unwrap()}]
        }}),
    );
    assert_eq!(
        messages(&bundle).await,
        [super::p(
            "DistributedStorage",
            &["DISTRIBUTED_STORAGE_CONFIG.default"],
            &format!(
                "Could not connect to storage default. Error: {} is not a directory",
                dir.path().join("file").display()
            )
        )]
    );
}

#[tokio::test]
async fn unreachable_ldap_smtp_and_scanner_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (ldap, smtp, scanner) = (closed_port(), closed_port(), closed_port());
    let bundle = local_services(
        dir.path(),
        json!({
            "AUTHENTICATION_TYPE": "LDAP",
            "LDAP_URI": format!("ldap://127.0.0.1:{ldap}"),
            "LDAP_ADMIN_DN": "cn=admin,dc=example,dc=com",
            "LDAP_ADMIN_PASSWD": "secret",
            "LDAP_BASE_DN": ["dc=example", "dc=com"],
            "FEATURE_MAILING": true,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": smtp,
            "FEATURE_SECURITY_SCANNER": true,
            "SECURITY_SCANNER_V4_ENDPOINT": format!("http://127.0.0.1:{scanner}"),
        }),
    );
    let found = messages(&bundle).await;
    let summary: Vec<(&str, &str)> = found
        .iter()
        .map(|(group, tags, _)| (group.as_str(), tags[0].as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("Email", "MAIL_SERVER"),
            ("LDAP", "LDAP_URI"),
            ("SecurityScanner", "SECURITY_SCANNER_V4_ENDPOINT")
        ],
        "{found:?}"
    );
    assert!(found[0].2.starts_with("Cannot reach 127.0.0.1. Error: "));
    assert!(
        found[1].2.starts_with(&format!(
            "Could not connect to ldap://127.0.0.1:{ldap}. Error: "
        )),
        "{found:?}"
    );
    assert!(
        found[2]
            .2
            .starts_with(&format!("Cannot reach http://127.0.0.1:{scanner}. Error: ")),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_service_that_never_answers_times_out() {
    // A listener that accepts connections but never speaks: the SMTP greeting never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let bundle = local_services(
        dir.path(),
        json!({"FEATURE_MAILING": true, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port}),
    );
    let options = Options {
        mode: Mode::Online,
        timeout: Duration::from_secs(1),
    };
    let found = triples(configtool::validate(&bundle, &options).await);
    assert_eq!(
        found,
        [super::p(
            "Email",
            &["MAIL_SERVER"],
            "Cannot reach 127.0.0.1. Error: no answer within 1 s"
        )]
    );
    drop(listener);
}

#[tokio::test]
async fn settings_found_wrong_offline_are_not_tried() {
    let found = messages(&Bundle::new(
        config_with(json!({"DB_URI": "", "BUILDLOGS_REDIS": {"port": 1}})),
        BTreeMap::new(),
    ))
    .await;
    let database: Vec<_> = found.iter().filter(|(g, _, _)| g == "Database").collect();
    assert_eq!(database.len(), 1, "{found:?}");
    assert_eq!(database[0].2, "DB_URI is required.");
    let redis: Vec<_> = found
        .iter()
        .filter(|(_, tags, _)| tags[0].starts_with("BUILDLOGS_REDIS"))
        .collect();
    assert_eq!(redis.len(), 1, "{found:?}");
}
