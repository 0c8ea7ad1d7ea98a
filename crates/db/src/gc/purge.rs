//! Purging deleted repositories and namespaces (Quay's `repositorygc` and `namespacegc`
//! workers): what `mark_repository_for_deletion` and `mark_namespace_for_deletion` only marked
//! is removed here, in short transactions, with the collector's conditional deletes.
//!
//! A repository is purged chunk by chunk under its lock: tags, push protections, upload
//! sessions, the manifests that lose their last reference, and last, when nothing of it is
//! left, its permissions, its other queue items and its row. A namespace is purged by marking
//! every repository it holds for deletion, purging each, and then removing everything else that
//! names the account (robots, teams, memberships, permissions, prototypes, applications,
//! tokens, prompts) and the account row, in one transaction.

use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{
    GC_CHUNK, GcAttempt, GcStep, MARKED_FOR_DELETION, StepError, delete_protections, delete_tags,
    delete_unreferenced_manifests, lock_repository, manifest_unreferenced, settle,
};
use crate::entity::{
    account, app_specific_token, blob_upload, manifest, oauth_access_token, oauth_application,
    permission_prototype, queue_item, repository, repository_permission, robot, tag, team,
    team_member, uploaded_blob, user_prompt,
};
use crate::{Db, DbError, UploadRow};

/// What one purge transaction over a repository did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurgeStep {
    /// A chunk of the repository's content was removed; call again. `uploads` are upload
    /// sessions whose rows were deleted: the caller aborts their storage (after this commit).
    Removed { gc: GcStep, uploads: Vec<UploadRow> },
    /// The repository row is gone: this step removed it (`removed`), or it was gone already.
    Finished { removed: bool },
    /// The repository exists but is not marked for deletion: nothing was touched.
    NotMarked,
}

/// Where the purge of a namespace stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespacePurge {
    /// No such account (already purged).
    Absent,
    /// The account exists but is not a namespace marked for deletion (renamed `deleted-…` and
    /// disabled): nothing was touched.
    NotMarked,
    /// The namespace is marked; these repositories of it (all now marked for deletion) must be
    /// purged before its account row can go.
    Repositories(Vec<i64>),
}

/// What is left of a repository, by table (for purge checks and operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepositoryCounts {
    pub tags: u64,
    pub manifests: u64,
    pub uploaded_blobs: u64,
    pub uploads: u64,
    pub permissions: u64,
}

impl Db {
    /// One purge transaction over a repository marked for deletion: removes up to a chunk each
    /// of its tags, push protections and upload sessions, and the manifests that lose their
    /// last reference (with `pending` ones from the previous step); once nothing is left,
    /// removes its permissions, its queue items other than `except_queue_item` (the caller's
    /// own), and its row.
    pub async fn purge_repository_step(
        &self,
        repository_id: i64,
        pending: &[i64],
        except_queue_item: Option<i64>,
    ) -> Result<GcAttempt<PurgeStep>, DbError> {
        let tx = self.begin_write().await?;
        let result = purge_step(&tx, repository_id, pending, except_queue_item).await;
        settle(tx, result).await
    }

    /// Starts or resumes the purge of a namespace marked for deletion: marks every repository
    /// it holds for deletion (so nothing more is pushed there) and returns them.
    pub async fn mark_namespace_repositories(
        &self,
        account_id: i64,
    ) -> Result<NamespacePurge, DbError> {
        let tx = self.begin_write().await?;
        let Some(found) = account::Entity::find_by_id(account_id).one(&tx).await? else {
            tx.rollback().await?;
            return Ok(NamespacePurge::Absent);
        };
        if !is_marked_namespace(&found) {
            tx.rollback().await?;
            return Ok(NamespacePurge::NotMarked);
        }
        repository::Entity::update_many()
            .col_expr(
                repository::Column::State,
                sea_orm::sea_query::Expr::value(MARKED_FOR_DELETION),
            )
            .filter(repository::Column::NamespaceId.eq(account_id))
            .filter(repository::Column::State.ne(MARKED_FOR_DELETION))
            .exec(&tx)
            .await?;
        let repositories = repository::Entity::find()
            .select_only()
            .column(repository::Column::Id)
            .filter(repository::Column::NamespaceId.eq(account_id))
            .order_by_asc(repository::Column::Id)
            .into_tuple()
            .all(&tx)
            .await?;
        tx.commit().await?;
        Ok(NamespacePurge::Repositories(repositories))
    }

    /// Removes a purged namespace's account row and everything else that names it, in one
    /// transaction: its robots (and their memberships, permissions, tokens), its teams (and
    /// their members, permissions, prototypes), its memberships and permissions elsewhere, the
    /// prototypes it owns or is named in, its OAuth applications (and their tokens), its own
    /// tokens and prompts, and its queue items other than `except_queue_item`. False when it
    /// still holds a repository (purge those first), is not marked, or is gone.
    pub async fn purge_namespace_account(
        &self,
        account_id: i64,
        except_queue_item: Option<i64>,
    ) -> Result<GcAttempt<bool>, DbError> {
        let tx = self.begin_write().await?;
        let result = purge_account(&tx, account_id, except_queue_item).await;
        settle(tx, result).await
    }

    /// How many rows of each kind the repository still has.
    pub async fn repository_counts(&self, repository_id: i64) -> Result<RepositoryCounts, DbError> {
        Ok(RepositoryCounts {
            tags: tag::Entity::find()
                .filter(tag::Column::RepositoryId.eq(repository_id))
                .count(&self.read)
                .await?,
            manifests: manifest::Entity::find()
                .filter(manifest::Column::RepositoryId.eq(repository_id))
                .count(&self.read)
                .await?,
            uploaded_blobs: uploaded_blob::Entity::find()
                .filter(uploaded_blob::Column::RepositoryId.eq(repository_id))
                .count(&self.read)
                .await?,
            uploads: blob_upload::Entity::find()
                .filter(blob_upload::Column::RepositoryId.eq(repository_id))
                .count(&self.read)
                .await?,
            permissions: repository_permission::Entity::find()
                .filter(repository_permission::Column::RepositoryId.eq(repository_id))
                .count(&self.read)
                .await?,
        })
    }
}

/// The marks `mark_namespace_for_deletion` leaves: renamed `deleted-<uuid>` and disabled.
fn is_marked_namespace(found: &account::Model) -> bool {
    !found.enabled && !found.robot && found.username.starts_with("deleted-")
}

async fn purge_step(
    tx: &DatabaseTransaction,
    repository_id: i64,
    pending: &[i64],
    except_queue_item: Option<i64>,
) -> Result<PurgeStep, StepError> {
    let Some((state, _)) = lock_repository(tx, repository_id).await? else {
        return Ok(PurgeStep::Finished { removed: false });
    };
    if state != MARKED_FOR_DELETION {
        return Ok(PurgeStep::NotMarked);
    }
    let mut gc = GcStep::default();
    let (mut candidates, tags_full) =
        delete_tags(tx, repository_id, Condition::all(), &mut gc).await?;
    let protections_full = delete_protections(tx, repository_id, Condition::all(), &mut gc).await?;
    let uploads = blob_upload::Entity::find()
        .filter(blob_upload::Column::RepositoryId.eq(repository_id))
        .order_by_asc(blob_upload::Column::Id)
        .limit(GC_CHUNK as u64)
        .all(tx)
        .await?;
    if !uploads.is_empty() {
        blob_upload::Entity::delete_many()
            .filter(blob_upload::Column::Id.is_in(uploads.iter().map(|u| u.id)))
            .exec(tx)
            .await?;
    }
    candidates.extend(pending.iter().copied());
    if candidates.is_empty() && !tags_full {
        // No tag is left: the manifests nothing lists or refers to are the roots of what
        // remains (manifests form a DAG: digests cannot refer to each other in a cycle).
        let roots: Vec<i64> = manifest::Entity::find()
            .select_only()
            .column(manifest::Column::Id)
            .filter(manifest::Column::RepositoryId.eq(repository_id))
            .filter(manifest_unreferenced())
            .order_by_asc(manifest::Column::Id)
            .limit(GC_CHUNK as u64)
            .into_tuple()
            .all(tx)
            .await?;
        candidates.extend(roots);
    }
    delete_unreferenced_manifests(tx, repository_id, candidates, &mut gc).await?;
    if gc.did_something() || !uploads.is_empty() || !gc.pending_manifests.is_empty() {
        gc.more = true;
        return Ok(PurgeStep::Removed { gc, uploads });
    }
    if tags_full || protections_full {
        return Err(StepError::Db(DbError::Invariant(format!(
            "purging repository {repository_id}: a full chunk deleted nothing"
        ))));
    }
    repository_permission::Entity::delete_many()
        .filter(repository_permission::Column::RepositoryId.eq(repository_id))
        .exec(tx)
        .await?;
    let mut queue = queue_item::Entity::delete_many()
        .filter(queue_item::Column::QueueName.like(format!("repositorygc/%/{repository_id}/")));
    if let Some(own) = except_queue_item {
        queue = queue.filter(queue_item::Column::Id.ne(own));
    }
    queue.exec(tx).await?;
    // Anything still naming the repository (a manifest the steps could not reach, a push that
    // raced the purge) makes this fail on its foreign key: a conflict, retried later.
    let removed = repository::Entity::delete_many()
        .filter(repository::Column::Id.eq(repository_id))
        .filter(repository::Column::State.eq(MARKED_FOR_DELETION))
        .exec(tx)
        .await?
        .rows_affected;
    Ok(PurgeStep::Finished {
        removed: removed == 1,
    })
}

async fn purge_account(
    tx: &DatabaseTransaction,
    account_id: i64,
    except_queue_item: Option<i64>,
) -> Result<bool, StepError> {
    let Some(found) = account::Entity::find_by_id(account_id)
        .lock_exclusive()
        .one(tx)
        .await?
    else {
        return Ok(false);
    };
    if !is_marked_namespace(&found) {
        return Ok(false);
    }
    let holds_repositories = repository::Entity::find()
        .filter(repository::Column::NamespaceId.eq(account_id))
        .count(tx)
        .await?
        > 0;
    if holds_repositories {
        return Ok(false);
    }
    let robots: Vec<i64> = robot::Entity::find()
        .select_only()
        .column(robot::Column::AccountId)
        .filter(robot::Column::OwnerId.eq(account_id))
        .into_tuple()
        .all(tx)
        .await?;
    let mut accounts = robots.clone();
    accounts.push(account_id);
    let teams = Query::select()
        .column(team::Column::Id)
        .from(team::Entity)
        .and_where(team::Column::OrganizationId.eq(account_id))
        .to_owned();
    let applications = Query::select()
        .column(oauth_application::Column::Id)
        .from(oauth_application::Entity)
        .and_where(oauth_application::Column::OrganizationId.eq(account_id))
        .to_owned();

    team_member::Entity::delete_many()
        .filter(
            Condition::any()
                .add(team_member::Column::AccountId.is_in(accounts.clone()))
                .add(team_member::Column::TeamId.in_subquery(teams.clone())),
        )
        .exec(tx)
        .await?;
    repository_permission::Entity::delete_many()
        .filter(
            Condition::any()
                .add(repository_permission::Column::AccountId.is_in(accounts.clone()))
                .add(repository_permission::Column::TeamId.in_subquery(teams.clone())),
        )
        .exec(tx)
        .await?;
    permission_prototype::Entity::delete_many()
        .filter(
            Condition::any()
                .add(permission_prototype::Column::OrganizationId.eq(account_id))
                .add(permission_prototype::Column::ActivatingAccountId.is_in(accounts.clone()))
                .add(permission_prototype::Column::DelegateAccountId.is_in(accounts.clone()))
                .add(permission_prototype::Column::DelegateTeamId.in_subquery(teams)),
        )
        .exec(tx)
        .await?;
    team::Entity::delete_many()
        .filter(team::Column::OrganizationId.eq(account_id))
        .exec(tx)
        .await?;
    oauth_access_token::Entity::delete_many()
        .filter(
            Condition::any()
                .add(oauth_access_token::Column::AccountId.is_in(accounts.clone()))
                .add(oauth_access_token::Column::ApplicationId.in_subquery(applications)),
        )
        .exec(tx)
        .await?;
    oauth_application::Entity::delete_many()
        .filter(oauth_application::Column::OrganizationId.eq(account_id))
        .exec(tx)
        .await?;
    app_specific_token::Entity::delete_many()
        .filter(app_specific_token::Column::AccountId.is_in(accounts.clone()))
        .exec(tx)
        .await?;
    user_prompt::Entity::delete_many()
        .filter(user_prompt::Column::AccountId.is_in(accounts.clone()))
        .exec(tx)
        .await?;
    robot::Entity::delete_many()
        .filter(
            Condition::any()
                .add(robot::Column::OwnerId.eq(account_id))
                .add(robot::Column::AccountId.is_in(accounts.clone())),
        )
        .exec(tx)
        .await?;
    let mut queue = queue_item::Entity::delete_many()
        .filter(queue_item::Column::QueueName.eq(format!("namespacegc/{account_id}/")));
    if let Some(own) = except_queue_item {
        queue = queue.filter(queue_item::Column::Id.ne(own));
    }
    queue.exec(tx).await?;
    // The robots first: they name the namespace as their owner. Anything the list above
    // missed fails these deletes on its foreign key (a conflict, retried later).
    account::Entity::delete_many()
        .filter(account::Column::Id.is_in(robots))
        .exec(tx)
        .await?;
    let removed = account::Entity::delete_many()
        .filter(account::Column::Id.eq(account_id))
        .exec(tx)
        .await?
        .rows_affected;
    Ok(removed == 1)
}
