//! The leased work queue, with Quay's `QueueItem` semantics so that many workers on many nodes
//! run each item once at a time:
//!
//! - an item's name is a path `"<queue>/<part>/…/"`; consumers of a queue take every item whose
//!   name starts with `"<queue>/"`, and a namespace's items can be dropped by prefix;
//! - an item is *available* when `available_after` has passed, it has retries left, and it is not
//!   leased (or its lease has expired, which is how work of a crashed worker comes back);
//! - a claim is optimistic: pick a candidate, then move its lease forward only if its `state_id`
//!   is still the one read. Exactly one claimer wins; the state id it wrote is its receipt for
//!   completing, retrying or extending the item.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entity::queue_item;
use crate::{Db, DbError, now_ms};

/// How many available items a claim chooses among, so concurrent claimers rarely collide.
const CANDIDATES: u64 = 50;

/// A claimed item. `state_id` proves the claim when completing or retrying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    pub id: i64,
    pub name: String,
    pub body: String,
    pub state_id: String,
    pub retries_remaining: i32,
}

/// Items of `queue` (`"<queue>/…"`), by name range rather than LIKE so that `_` or `%` in names
/// mean nothing special and the index serves the query.
fn in_queue(queue: &str) -> Condition {
    // '0' is the character after '/', so the range holds exactly the names under "<queue>/".
    Condition::all()
        .add(queue_item::Column::QueueName.gte(format!("{queue}/")))
        .add(queue_item::Column::QueueName.lt(format!("{queue}0")))
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

    /// Claims an available item of `queue` for `lease_ms`, spending one retry. None when nothing
    /// is available.
    pub async fn queue_claim(
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
