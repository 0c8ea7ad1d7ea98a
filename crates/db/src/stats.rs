//! Whole-database figures for monitoring: a liveness probe for health checks and the row counts
//! Quay exports as gauges (`quay_user_rows`, `quay_org_rows`, ...).

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};

use crate::entity::{account, manifest, repository};
use crate::{Db, DbError};

/// How many rows of each kind exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Enabled user accounts (Quay's active users: neither organizations nor robots).
    pub users: u64,
    pub organizations: u64,
    pub robots: u64,
    /// Repositories, those marked for deletion included (as Quay's estimated count).
    pub repositories: u64,
    /// Manifests stored, in every repository.
    pub manifests: u64,
}

impl Db {
    /// Answers when the database does: one trivial query on the read connections.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read
            .query_one_raw(Statement::from_string(self.backend, "SELECT 1"))
            .await?;
        Ok(())
    }

    /// The row counts of accounts, repositories and manifests.
    pub async fn row_counts(&self) -> Result<RowCounts, DbError> {
        let accounts = || account::Entity::find();
        let users = accounts()
            .filter(account::Column::Organization.eq(false))
            .filter(account::Column::Robot.eq(false))
            .filter(account::Column::Enabled.eq(true))
            .count(&self.read)
            .await?;
        let organizations = accounts()
            .filter(account::Column::Organization.eq(true))
            .count(&self.read)
            .await?;
        let robots = accounts()
            .filter(account::Column::Robot.eq(true))
            .count(&self.read)
            .await?;
        let repositories = repository::Entity::find().count(&self.read).await?;
        let manifests = manifest::Entity::find().count(&self.read).await?;
        Ok(RowCounts {
            users,
            organizations,
            robots,
            repositories,
            manifests,
        })
    }
}
