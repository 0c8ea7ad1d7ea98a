//! The only crate that speaks SQL. It owns the schema (migrations), the sea-orm entities and the
//! stores that read and write them, over one code path for SQLite and PostgreSQL.
//!
//! Every write that must be atomic is one method here, run in one transaction; callers never hold
//! a transaction open across network or storage I/O. On SQLite, writes go through a single-
//! connection pool and start `IMMEDIATE` transactions, so a read-then-write transaction can never
//! fail with a busy snapshot; reads use a separate pool.

mod access;
mod account_admin;
mod accounts;
mod connect;
pub mod entity;
mod gc;
mod manifests;
mod migrate;
mod prototypes;
mod queue;
mod repo_admin;
mod repos;
mod robots;
mod stats;
mod tag_history;
mod teams;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tokens;
mod uploads;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

pub use access::{AccessFacts, CreateRepositoryOutcome, Delegate, NewRepository, PermissionRow};
pub use accounts::{AccountRow, CreateUserOutcome, NewUser};
pub use connect::ConnectOptions;
pub use gc::{FreedBlob, GC_CHUNK, GcAttempt, GcStep, NamespacePurge, PurgeStep, RepositoryCounts};
pub use manifests::{ManifestRow, NewManifest, PutManifestOutcome, TagTarget};
pub use prototypes::{PrototypeDelegate, PrototypeRow};
pub use queue::{DEFAULT_RETRIES, QueueCounts, QueueItem, item_name};
pub use repo_admin::RepositoryListing;
pub use repos::{RepositoryRow, Viewer};
pub use robots::{CreateRobotOutcome, NewRobot, RepositoryGrant, RobotRow};
pub use stats::RowCounts;
pub use tag_history::{
    RepositoryFilter, RetargetOutcome, TagHistoryPage, TagHistoryQuery, TagHistoryRow,
};
pub use teams::{
    AccountRef, AddTeamMemberOutcome, OrgMemberRow, RemoveOrgMemberOutcome, TeamPermissionRow,
    TeamRow, TeamSummary,
};
pub use tokens::{
    AccessTokenRow, AppTokenRow, ApplicationRow, NewAccessToken, NewAppToken, NewApplication,
    NewServiceKey, ServiceKeyRow,
};
pub use uploads::{
    BlobRow, BlobScan, CommitBlob, CommitOutcome, NewUpload, REPLICATION_QUEUE, UploadRow,
    replication_item_name,
};

/// A database failure. Client mistakes never show up here: stores return them as values.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("cannot open database: {0}")]
    Connect(String),
    #[error("{0}")]
    Migration(String),
    /// A row the transaction just wrote or locked is missing: a bug or concurrent tampering.
    #[error("database invariant broken: {0}")]
    Invariant(String),
    #[error("unsupported DB_URI {0:?}: expected sqlite:… or postgresql://…")]
    UnsupportedUri(String),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Connect(e.to_string())
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Handles to the database: `write` for transactions that change data, `read` for the rest.
#[derive(Clone, Debug)]
pub struct Db {
    write: DatabaseConnection,
    read: DatabaseConnection,
    backend: DbBackend,
    /// The time-machine window new users and organizations start with
    /// (`DEFAULT_TAG_EXPIRATION`), in seconds.
    default_tag_window_s: i64,
}

/// Quay's `DEFAULT_TAG_EXPIRATION` of two weeks, in seconds.
const DEFAULT_TAG_WINDOW_S: i64 = 14 * 24 * 3600;

impl Db {
    /// Connects to a Quay-style `DB_URI`: `postgresql://user:pass@host:port/db` or
    /// `sqlite:///relative.db` / `sqlite:////absolute/path.db` (SQLAlchemy's form).
    pub async fn connect(uri: &str) -> Result<Db, DbError> {
        Self::connect_with(uri, &ConnectOptions::default()).await
    }

    /// [`Db::connect`] with pool and TLS settings (Quay's `DB_CONNECTION_ARGS`), which apply to
    /// PostgreSQL; SQLite keeps its one writer and few readers.
    pub async fn connect_with(uri: &str, options: &ConnectOptions) -> Result<Db, DbError> {
        if let Some(rest) = uri.strip_prefix("sqlite:") {
            let path = rest
                .strip_prefix("///")
                .or_else(|| rest.strip_prefix("//"))
                .unwrap_or(rest);
            return Self::connect_sqlite(PathBuf::from(path)).await;
        }
        if uri.starts_with("postgresql://") || uri.starts_with("postgres://") {
            return Self::connect_postgres(uri, options).await;
        }
        Err(DbError::UnsupportedUri(redact(uri)))
    }

    /// Opens (creating if needed) a SQLite database file.
    pub async fn connect_sqlite(path: PathBuf) -> Result<Db, DbError> {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| DbError::Connect(format!("{}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| DbError::Connect(format!("{}: {e}", path.display())))?;
        Ok(Db {
            write: sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
            read: sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(reader),
            backend: DbBackend::Sqlite,
            default_tag_window_s: DEFAULT_TAG_WINDOW_S,
        })
    }

    async fn connect_postgres(uri: &str, settings: &ConnectOptions) -> Result<Db, DbError> {
        use sqlx::postgres::PgConnectOptions;
        let options = PgConnectOptions::from_str(uri)
            .map_err(|e| DbError::Connect(format!("{}: {e}", redact(uri))))?;
        let options = settings.apply_tls(options)?;
        let pool = settings
            .pool_options()
            .connect_with(options)
            .await
            .map_err(|e| DbError::Connect(format!("{}: {e}", redact(uri))))?;
        let conn = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        Ok(Db {
            write: conn.clone(),
            read: conn,
            backend: DbBackend::Postgres,
            default_tag_window_s: DEFAULT_TAG_WINDOW_S,
        })
    }

    /// Sets the time-machine window, in seconds, that accounts created through this handle
    /// start with (`DEFAULT_TAG_EXPIRATION`).
    pub fn with_default_tag_window(mut self, seconds: u64) -> Db {
        self.default_tag_window_s = i64::try_from(seconds).unwrap_or(i64::MAX);
        self
    }

    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// The connection pool's state: how many connections are open, how many of those are
    /// idle, and the most it opens (for PostgreSQL; SQLite reports its reader pool).
    pub fn pool_status(&self) -> PoolStatus {
        fn status<D: sqlx::Database>(pool: &sqlx::Pool<D>) -> PoolStatus {
            PoolStatus {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        match self.backend {
            DbBackend::Postgres => status(self.read.get_postgres_connection_pool()),
            _ => status(self.read.get_sqlite_connection_pool()),
        }
    }

    /// Applies pending migrations and returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        migrate::run(self).await
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, DbError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(self.write.begin_with_options(options).await?)
    }

    /// Closes both pools.
    pub async fn close(self) {
        let _ = self.write.close().await;
        if self.backend != DbBackend::Postgres {
            let _ = self.read.close().await;
        }
    }
}

/// A snapshot of a connection pool, from [`Db::pool_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, in use or idle.
    pub open: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// A database URI with its password removed, for messages.
pub fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &uri[scheme_end + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &uri[..scheme_end], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgresql://u:secret@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
