//! The leased work queue, with Quay's `QueueItem` semantics so that many workers on many nodes
//! run each item once at a time:
//!
//! - an item's name is a path `"<queue>/<part>/…/"`; consumers of a queue take every item whose
//!   name starts with `"<queue>/"`, and a namespace's items can be dropped by prefix;
//! - an item is *available* when `available_after` has passed, it has retries left, and it is not
//!   leased (or its lease has expired, which is how work of a crashed worker comes back);
//! - a claim writes a fresh `state_id`, a lease (`processing_expires`) and spends one retry.
//!   Exactly one claimer wins; the state id it wrote is its receipt for completing, retrying or
//!   extending the item. How the winner is decided depends on the engine (see `queue_claim`).
//!
//! It also counts items per queue for Quay's `quay_queue_items_*` gauges.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, ExprTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

use crate::entity::queue_item;
use crate::{Db, DbError, now_ms};

/// Attempts an item gets unless its producer says otherwise (Quay's default).
pub const DEFAULT_RETRIES: i32 = 5;

/// How many available items a claim chooses among, so concurrent claimers rarely collide.
const CANDIDATES: u64 = 50;

/// Rows per INSERT of `queue_put_many`, as Quay's `batch_insert`.
const PUT_BATCH: usize = 1000;

/// A claimed item. `state_id` proves the claim when completing or retrying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    pub id: i64,
    pub name: String,
    pub body: String,
    pub state_id: String,
    pub retries_remaining: i32,
}

/// What one queue holds right now, as Quay's queue gauges count it: *distinct item names*, not
/// rows (Quay's `WorkQueue.get_metrics`), so duplicates of one name count once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// The queue: the first component of the item names (`"repositorygc"`).
    pub queue: String,
    /// Names with an item that can be claimed now (`quay_queue_items_available`).
    pub available: u64,
    /// Names with an item leased to a worker whose lease has not run out
    /// (`quay_queue_items_locked`).
    pub locked: u64,
    /// Available names with no item of the same name running
    /// (`quay_queue_items_available_unlocked`).
    pub available_unlocked: u64,
}

/// Items of `queue` (`"<queue>/…"`), by name range rather than LIKE so that `_` or `%` in names
/// mean nothing special and the index serves the query.
fn in_queue(queue: &str) -> Condition {
    let (lower, upper) = queue_range(queue);
    Condition::all()
        .add(queue_item::Column::QueueName.gte(lower))
        .add(queue_item::Column::QueueName.lt(upper))
}

/// The bounds `[lower, upper)` of the names under `"<queue>/"`: '0' is the character after '/'.
fn queue_range(queue: &str) -> (String, String) {
    (format!("{queue}/"), format!("{queue}0"))
}

fn available(now: i64) -> Condition {
    Condition::all()
        .add(queue_item::Column::AvailableAfterMs.lte(now))
        .add(queue_item::Column::RetriesRemaining.gt(0))
        .add(
            Condition::any()
                .add(queue_item::Column::Available.eq(true))
                .add(queue_item::Column::ProcessingExpiresMs.lte(now)),
        )
}

/// Joins a queue name and parts into an item name with Quay's trailing slash.
pub fn item_name(queue: &str, parts: &[&str]) -> String {
    let mut name = format!("{queue}/");
    for part in parts {
        name.push_str(part);
        name.push('/');
    }
    name
}

impl Db {
    /// Adds an item that becomes available after `delay_ms`, with `retries` attempts.
    pub async fn queue_put(
        &self,
        name: &str,
        body: &str,
        delay_ms: i64,
        retries: i32,
    ) -> Result<i64, DbError> {
        queue_put_in(&self.write, name, body, delay_ms, retries).await
    }

    /// Adds many `(name, body)` items in one transaction, `PUT_BATCH` rows per statement (Quay's
    /// `batch_insert`). All become available after `delay_ms`, with `retries` attempts each.
    /// Returns how many were added.
    pub async fn queue_put_many(
        &self,
        items: &[(String, String)],
        delay_ms: i64,
        retries: i32,
    ) -> Result<u64, DbError> {
        if items.is_empty() {
            return Ok(0);
        }
        let available_after_ms = now_ms() + delay_ms;
        let tx = self.begin_write().await?;
        for chunk in items.chunks(PUT_BATCH) {
            queue_item::Entity::insert_many(chunk.iter().map(|(name, body)| {
                queue_item::ActiveModel {
                    queue_name: Set(name.clone()),
                    body: Set(body.clone()),
                    available_after_ms: Set(available_after_ms),
                    available: Set(true),
                    processing_expires_ms: Set(None),
                    retries_remaining: Set(retries),
                    state_id: Set(uuid::Uuid::new_v4().to_string()),
                    ..Default::default()
                }
            }))
            .exec_without_returning(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(items.len() as u64)
    }

    /// Claims an available item of `queue` for `lease_ms`, spending one retry. None when nothing
    /// is available.
    pub async fn queue_claim(
        &self,
        queue: &str,
        lease_ms: i64,
    ) -> Result<Option<QueueItem>, DbError> {
        // Backend switch: PostgreSQL lets concurrent claimers skip each other's rows; SQLite has
        // one writer at a time, so the optimistic claim never waits there and rarely loses.
        match self.backend {
            DbBackend::Postgres => self.queue_claim_skip_locked(queue, lease_ms).await,
            _ => self.queue_claim_optimistic(queue, lease_ms).await,
        }
    }

    /// One statement: lock the oldest available item that no other transaction holds, and lease
    /// it. Concurrent claimers never wait for each other and never take the same row; a row
    /// claimed (and committed) since the statement began is re-checked by PostgreSQL after
    /// locking and skipped, because it is no longer available.
    async fn queue_claim_skip_locked(
        &self,
        queue: &str,
        lease_ms: i64,
    ) -> Result<Option<QueueItem>, DbError> {
        const CLAIM: &str = "\
            WITH pick AS ( \
                SELECT id FROM queue_item \
                WHERE queue_name >= $1 AND queue_name < $2 \
                  AND available_after_ms <= $3 AND retries_remaining > 0 \
                  AND (available OR processing_expires_ms <= $3) \
                ORDER BY id LIMIT 1 \
                FOR UPDATE SKIP LOCKED) \
            UPDATE queue_item q SET available = FALSE, processing_expires_ms = $4, \
                retries_remaining = q.retries_remaining - 1, state_id = $5 \
            FROM pick WHERE q.id = pick.id \
            RETURNING q.id, q.queue_name, q.body, q.state_id, q.retries_remaining";
        let now = now_ms();
        let (lower, upper) = queue_range(queue);
        let row = self
            .write
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                CLAIM,
                [
                    lower.into(),
                    upper.into(),
                    now.into(),
                    (now + lease_ms).into(),
                    uuid::Uuid::new_v4().to_string().into(),
                ],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(QueueItem {
            id: row.try_get("", "id")?,
            name: row.try_get("", "queue_name")?,
            body: row.try_get("", "body")?,
            state_id: row.try_get("", "state_id")?,
            retries_remaining: row.try_get("", "retries_remaining")?,
        }))
    }

    /// Pick a candidate, then lease it only if its `state_id` is still the one read (Quay's
    /// claim). Exactly one of racing claimers updates the row.
    async fn queue_claim_optimistic(
        &self,
        queue: &str,
        lease_ms: i64,
    ) -> Result<Option<QueueItem>, DbError> {
        // A lost race means another claimer took that candidate; try the next round.
        for attempt in 0..8u64 {
            let now = now_ms();
            let candidates = queue_item::Entity::find()
                .filter(in_queue(queue))
                .filter(available(now))
                .order_by_asc(queue_item::Column::Id)
                .limit(CANDIDATES)
                .all(&self.write)
                .await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            let pick = &candidates[spread(attempt, candidates.len())];
            let state_id = uuid::Uuid::new_v4().to_string();
            let updated = queue_item::Entity::update_many()
                .col_expr(queue_item::Column::Available, Expr::value(false))
                .col_expr(
                    queue_item::Column::ProcessingExpiresMs,
                    Expr::value(now + lease_ms),
                )
                .col_expr(
                    queue_item::Column::RetriesRemaining,
                    Expr::col(queue_item::Column::RetriesRemaining).sub(1),
                )
                .col_expr(queue_item::Column::StateId, Expr::value(state_id.clone()))
                .filter(queue_item::Column::Id.eq(pick.id))
                .filter(queue_item::Column::StateId.eq(pick.state_id.as_str()))
                .exec(&self.write)
                .await?;
            if updated.rows_affected == 1 {
                return Ok(Some(QueueItem {
                    id: pick.id,
                    name: pick.queue_name.clone(),
                    body: pick.body.clone(),
                    state_id,
                    retries_remaining: pick.retries_remaining - 1,
                }));
            }
        }
        Ok(None)
    }

    /// Finishes a claimed item (deletes it). False if the claim was lost (the lease expired and
    /// someone else claimed it).
    pub async fn queue_complete(&self, item: &QueueItem) -> Result<bool, DbError> {
        let result = queue_item::Entity::delete_many()
            .filter(queue_item::Column::Id.eq(item.id))
            .filter(queue_item::Column::StateId.eq(item.state_id.as_str()))
            .exec(&self.write)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Gives a claimed item back, available again after `retry_after_ms`. With `restore_retry`
    /// the retry spent by the claim is returned (the failure was not the item's fault).
    pub async fn queue_incomplete(
        &self,
        item: &QueueItem,
        retry_after_ms: i64,
        restore_retry: bool,
    ) -> Result<bool, DbError> {
        let mut update = queue_item::Entity::update_many()
            .col_expr(queue_item::Column::Available, Expr::value(true))
            .col_expr(
                queue_item::Column::AvailableAfterMs,
                Expr::value(now_ms() + retry_after_ms),
            )
            .col_expr(
                queue_item::Column::ProcessingExpiresMs,
                Expr::value(Option::<i64>::None),
            );
        if restore_retry {
            update = update.col_expr(
                queue_item::Column::RetriesRemaining,
                Expr::col(queue_item::Column::RetriesRemaining).add(1),
            );
        }
        let result = update
            .filter(queue_item::Column::Id.eq(item.id))
            .filter(queue_item::Column::StateId.eq(item.state_id.as_str()))
            .exec(&self.write)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Pushes a claimed item's lease to `lease_ms` from now, optionally saving progress in its
    /// body. False if the claim was lost or its lease already ran out (another worker may then
    /// be about to claim it, with the body it read).
    pub async fn queue_extend(
        &self,
        item: &QueueItem,
        lease_ms: i64,
        body: Option<&str>,
    ) -> Result<bool, DbError> {
        let mut update = queue_item::Entity::update_many().col_expr(
            queue_item::Column::ProcessingExpiresMs,
            Expr::value(now_ms() + lease_ms),
        );
        if let Some(body) = body {
            update = update.col_expr(queue_item::Column::Body, Expr::value(body));
        }
        let result = update
            .filter(queue_item::Column::Id.eq(item.id))
            .filter(queue_item::Column::StateId.eq(item.state_id.as_str()))
            .filter(queue_item::Column::ProcessingExpiresMs.gt(now_ms()))
            .exec(&self.write)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Whether an item with exactly this name is waiting or running (used to avoid duplicates).
    pub async fn queue_alive(&self, name: &str) -> Result<bool, DbError> {
        let now = now_ms();
        let alive = Condition::any().add(available(now)).add(
            Condition::all()
                .add(queue_item::Column::Available.eq(false))
                .add(queue_item::Column::ProcessingExpiresMs.gt(now)),
        );
        Ok(queue_item::Entity::find()
            .filter(queue_item::Column::QueueName.eq(name))
            .filter(alive)
            .one(&self.write)
            .await?
            .is_some())
    }

    /// Counts every queue's available, locked and available-unlocked item names (see
    /// [`QueueCounts`]), ordered by queue. A queue shows up while it holds any row, even one
    /// whose retries ran out, so its gauges fall back to zero rather than vanish.
    pub async fn queue_counts(&self) -> Result<Vec<QueueCounts>, DbError> {
        // Backend switch: how to take the first path component of a name.
        let queue = match self.backend {
            DbBackend::Postgres => "split_part(q.queue_name, '/', 1)",
            _ => {
                "CASE WHEN instr(q.queue_name, '/') > 0 \
                 THEN substr(q.queue_name, 1, instr(q.queue_name, '/') - 1) \
                 ELSE q.queue_name END"
            }
        };
        // `available` is `available()` above in SQL; running is "leased, lease not run out" as
        // in `queue_alive`. `$1` is now.
        let sql = format!(
            "WITH running AS ( \
                 SELECT DISTINCT queue_name FROM queue_item \
                 WHERE NOT available AND processing_expires_ms > $1) \
             SELECT {queue} AS queue, \
                 COUNT(DISTINCT CASE WHEN {available} THEN q.queue_name END) AS available, \
                 COUNT(DISTINCT r.queue_name) AS locked, \
                 COUNT(DISTINCT CASE WHEN {available} AND r.queue_name IS NULL \
                     THEN q.queue_name END) AS available_unlocked \
             FROM queue_item q LEFT JOIN running r ON r.queue_name = q.queue_name \
             GROUP BY 1 ORDER BY 1",
            available = "(q.available_after_ms <= $1 AND q.retries_remaining > 0 \
                 AND (q.available OR q.processing_expires_ms <= $1))",
        );
        let rows = self
            .read
            .query_all_raw(Statement::from_sql_and_values(
                self.backend,
                sql,
                [now_ms().into()],
            ))
            .await?;
        let count = |row: &sea_orm::QueryResult, col: &str| -> Result<u64, DbError> {
            Ok(u64::try_from(row.try_get::<i64>("", col)?).unwrap_or(0))
        };
        rows.iter()
            .map(|row| {
                Ok(QueueCounts {
                    queue: row.try_get("", "queue")?,
                    available: count(row, "available")?,
                    locked: count(row, "locked")?,
                    available_unlocked: count(row, "available_unlocked")?,
                })
            })
            .collect()
    }

    /// Deletes every item whose name starts with `prefix` (e.g. all of a namespace's items).
    pub async fn queue_delete_prefix(&self, prefix: &str) -> Result<u64, DbError> {
        let Some(last) = prefix.chars().last() else {
            return Ok(0);
        };
        // Names in [prefix, prefix with its last character incremented) start with prefix.
        let upper = char::from_u32(last as u32 + 1)
            .map(|next| format!("{}{next}", &prefix[..prefix.len() - last.len_utf8()]));
        let mut delete =
            queue_item::Entity::delete_many().filter(queue_item::Column::QueueName.gte(prefix));
        if let Some(upper) = upper {
            delete = delete.filter(queue_item::Column::QueueName.lt(upper));
        }
        Ok(delete.exec(&self.write).await?.rows_affected)
    }
}

/// Adds an item on `conn`, so that a store can enqueue work in the same transaction as the
/// change that calls for it.
pub(crate) async fn queue_put_in<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    body: &str,
    delay_ms: i64,
    retries: i32,
) -> Result<i64, DbError> {
    let result = queue_item::Entity::insert(queue_item::ActiveModel {
        queue_name: Set(name.to_string()),
        body: Set(body.to_string()),
        available_after_ms: Set(now_ms() + delay_ms),
        available: Set(true),
        processing_expires_ms: Set(None),
        retries_remaining: Set(retries),
        state_id: Set(uuid::Uuid::new_v4().to_string()),
        ..Default::default()
    })
    .exec(conn)
    .await?;
    Ok(result.last_insert_id)
}

/// Which candidate to try: claimers in different processes spread over the candidates by the
/// clock and the attempt number, instead of all fighting for the first.
fn spread(attempt: u64, len: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    ((nanos / 1000).wrapping_add(attempt.wrapping_mul(7919)) % len as u64) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_names_have_quays_shape() {
        assert_eq!(
            super::item_name("repositorygc", &["acme", "12"]),
            "repositorygc/acme/12/"
        );
        assert_eq!(super::item_name("namespacegc", &[]), "namespacegc/");
    }
}
