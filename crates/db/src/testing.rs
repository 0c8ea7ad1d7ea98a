//! Fresh databases for tests: a SQLite file in a temporary directory, or a new PostgreSQL
//! database created for the test and dropped when the handle goes away (even if the test panics).
//!
//! PostgreSQL is found through `WHARF_TEST_PG` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`); the suite needs a real server.

use crate::Db;

/// Which engine a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The admin URI of the PostgreSQL server tests use.
pub fn postgres_admin_uri() -> String {
    std::env::var("WHARF_TEST_PG")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A migrated, empty database that is removed when dropped.
pub struct TestDb {
    pub db: Db,
    pub uri: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(engine: Engine) -> TestDb {
        let mut t = Self::empty(engine).await;
        t.db.migrate().await.expect("migrations apply");
        t.db = Db::connect(&t.uri).await.expect("reconnect");
        t
    }

    /// A database with no tables, for migration tests.
    pub async fn empty(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let uri = format!("sqlite:///{}", dir.path().join("wharf.db").display());
                let db = Db::connect(&uri).await.expect("open sqlite");
                TestDb {
                    db,
                    uri,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Engine::Postgres => {
                let admin_uri = postgres_admin_uri();
                let name = format!("wharf_t_{}", uuid::Uuid::new_v4().simple());
                let admin = Db::connect(&admin_uri).await.expect("PostgreSQL for tests");
                use sea_orm::ConnectionTrait;
                admin
                    .write
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await;
                let base = admin_uri
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_uri);
                let uri = format!("{base}/{name}");
                let db = Db::connect(&uri).await.expect("open test database");
                TestDb {
                    db,
                    uri,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime; the cleanup needs a runtime of its own. The test's
        // pool belongs to the test's runtime and cannot be closed from here; FORCE ends its
        // connections instead.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Db::connect(&postgres_admin_uri()).await {
                    use sea_orm::ConnectionTrait;
                    let _ = admin
                        .write
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs an async test body once on SQLite and once on PostgreSQL:
/// `db_test!(name, |db| async move { ... })` defines `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::testing::TestDb::new($crate::testing::Engine::Sqlite).await;
                ($body)(t.db.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::testing::TestDb::new($crate::testing::Engine::Postgres).await;
                ($body)(t.db.clone()).await;
            }
        }
    };
}
