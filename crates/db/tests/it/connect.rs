//! `Db::connect_with` on a real PostgreSQL: Quay's `DB_CONNECTION_ARGS` pool size and TLS
//! settings and `DB_CONNECTION_POOLING: false` take effect, as the server itself reports in
//! `pg_stat_activity` and `pg_stat_ssl`. PostgreSQL only: SQLite has no pool settings.

use std::time::{Duration, Instant};

use db::testing::{Engine, TestDb};
use db::{ConnectOptions, Db};

/// The test database's URI with an `application_name`, so that the server's views single out
/// the connections of the pool under test (the `TestDb` holds its own).
fn tagged(uri: &str, name: &str) -> String {
    format!("{uri}?application_name={name}")
}

/// How many connections named `name` the server has open to the test database.
async fn server_side_connections(uri: &str, name: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(uri)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Keeps `tasks` callers busy on `db` for a moment, so that the pool grows as far as it may.
async fn load(db: &Db, tasks: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let db = db.clone();
        set.spawn(async move {
            for _ in 0..10 {
                db.count_accounts().await.unwrap();
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_bounds_the_pool() {
    let t = TestDb::new(Engine::Postgres).await;
    let options = ConnectOptions {
        max_connections: 2,
        ..ConnectOptions::default()
    };
    let db = Db::connect_with(&tagged(&t.uri, "wharf_pool_max"), &options)
        .await
        .unwrap();
    load(&db, 16).await;
    let status = db.pool_status();
    assert_eq!(status.max, 2);
    assert!((1..=2).contains(&status.open), "{status:?}");
    let open = server_side_connections(&t.uri, "wharf_pool_max").await;
    assert!(
        (1..=2).contains(&open),
        "the server sees {open} connections"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_pooling_no_connection_is_kept() {
    let t = TestDb::new(Engine::Postgres).await;
    let options = ConnectOptions {
        pooling: false,
        ..ConnectOptions::default()
    };
    let db = Db::connect_with(&tagged(&t.uri, "wharf_pool_off"), &options)
        .await
        .unwrap();
    load(&db, 8).await;
    // Closing happens as each connection comes back; give the last ones a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = server_side_connections(&t.uri, "wharf_pool_off").await;
        let status = db.pool_status();
        if open == 0 && status.idle == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still open, pool {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the server says the connection named `name` uses TLS.
async fn uses_tls(uri: &str, name: &str) -> bool {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(uri)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

fn with_sslmode(mode: &str) -> ConnectOptions {
    ConnectOptions {
        ssl_mode: Some(mode.to_string()),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn sslmode_is_honoured() {
    let t = TestDb::new(Engine::Postgres).await;
    let tls_on: String = {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&t.uri)
            .await
            .unwrap();
        sqlx::query_scalar("SHOW ssl")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let plain = Db::connect_with(&tagged(&t.uri, "wharf_ssl_off"), &with_sslmode("disable"))
        .await
        .unwrap();
    assert!(!uses_tls(&t.uri, "wharf_ssl_off").await);
    plain.close().await;
    if tls_on != "on" {
        // A server without TLS must refuse `require` (checked against a fake server below too).
        let e = Db::connect_with(&t.uri, &with_sslmode("require"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("TLS"), "{e}");
        return;
    }
    let secure = Db::connect_with(&tagged(&t.uri, "wharf_ssl_on"), &with_sslmode("require"))
        .await
        .unwrap();
    assert!(uses_tls(&t.uri, "wharf_ssl_on").await);
    secure.close().await;
    // Public CAs did not sign the test server's certificate: verification must fail, and say so.
    let public_cas = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if public_cas.exists() {
        let options = ConnectOptions {
            ssl_root_cert: Some(public_cas.to_path_buf()),
            acquire_timeout: Duration::from_secs(3),
            ..with_sslmode("verify-ca")
        };
        let e = Db::connect_with(&t.uri, &options).await.unwrap_err();
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    }
}

/// A PostgreSQL server without TLS answers the client's SSLRequest with `N`; `require` must
/// then fail with an error that says why, rather than fall back to plain text.
#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_ok() {
                    let _ = socket.write_all(b"N").await;
                }
                // Then hang up, as a server would on a client that wanted TLS only.
            });
        }
    });
    let options = ConnectOptions {
        acquire_timeout: Duration::from_secs(3),
        ..with_sslmode("require")
    };
    let uri = format!("postgresql://wharf:secret@{addr}/wharf");
    let e = Db::connect_with(&uri, &options).await.unwrap_err();
    let message = e.to_string();
    assert!(message.contains("does not support TLS"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password leaked: {message}"
    );
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_at_start() {
    let t = TestDb::new(Engine::Postgres).await;
    let options = ConnectOptions {
        ssl_root_cert: Some("/nonexistent/root.crt".into()),
        ..with_sslmode("verify-full")
    };
    let e = Db::connect_with(&t.uri, &options).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("DB_CONNECTION_ARGS.sslrootcert: /nonexistent/root.crt"),
        "{e}"
    );
}
