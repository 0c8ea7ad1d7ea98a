//! Account settings behind Quay's user and organization endpoints (e-mail, tag expiration,
//! profile metadata, sign-in prompts) and asynchronous deletion of a namespace.
//!
//! Deleting a namespace is a mark, like deleting a repository: the account is renamed to
//! `deleted-<uuid>` and disabled so its name is free at once, and the `namespacegc` queue's
//! worker removes what it owned later.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{account, queue_item, robot, user_prompt};
use crate::queue::queue_put_in;
use crate::{Db, DbError, item_name};

impl Db {
    /// Sets or clears an account's e-mail; false when there is no such account.
    pub async fn set_account_email(&self, id: i64, email: Option<&str>) -> Result<bool, DbError> {
        self.update_account(
            id,
            vec![(
                account::Column::Email,
                Expr::value(email.map(str::to_string)),
            )],
        )
        .await
    }

    /// Enables or disables an account (a disabled one cannot sign in, nor its robots and
    /// tokens act); false when there is no such account.
    pub async fn set_account_enabled(&self, id: i64, enabled: bool) -> Result<bool, DbError> {
        self.update_account(id, vec![(account::Column::Enabled, Expr::value(enabled))])
            .await
    }

    /// Sets how long an account's dead tags stay restorable (Quay's `tag_expiration_s`).
    pub async fn set_tag_expiration_s(&self, id: i64, seconds: i64) -> Result<bool, DbError> {
        self.update_account(
            id,
            vec![(account::Column::RemovedTagExpirationS, Expr::value(seconds))],
        )
        .await
    }

    /// Replaces a user's profile metadata (all four fields; None clears one).
    pub async fn update_user_metadata(
        &self,
        id: i64,
        given_name: Option<&str>,
        family_name: Option<&str>,
        company: Option<&str>,
        location: Option<&str>,
    ) -> Result<bool, DbError> {
        let value = |v: Option<&str>| Expr::value(v.map(str::to_string));
        self.update_account(
            id,
            vec![
                (account::Column::GivenName, value(given_name)),
                (account::Column::FamilyName, value(family_name)),
                (account::Column::Company, value(company)),
                (account::Column::Location, value(location)),
            ],
        )
        .await
    }

    async fn update_account(
        &self,
        id: i64,
        values: Vec<(account::Column, Expr)>,
    ) -> Result<bool, DbError> {
        let mut update = account::Entity::update_many().filter(account::Column::Id.eq(id));
        for (column, value) in values {
            update = update.col_expr(column, value);
        }
        Ok(update.exec(&self.write).await?.rows_affected > 0)
    }

    /// Adds prompts (`enter_name`, `enter_company`, …) to ask at the next sign-in; ones the
    /// account already has are kept once.
    pub async fn add_user_prompts(&self, account_id: i64, kinds: &[&str]) -> Result<(), DbError> {
        let tx = self.begin_write().await?;
        for kind in kinds {
            user_prompt::Entity::insert(user_prompt::ActiveModel {
                account_id: Set(account_id),
                kind: Set(kind.to_string()),
                ..Default::default()
            })
            .on_conflict_do_nothing_on([user_prompt::Column::AccountId, user_prompt::Column::Kind])
            .exec(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account's pending prompts, oldest first.
    pub async fn user_prompts(&self, account_id: i64) -> Result<Vec<String>, DbError> {
        Ok(user_prompt::Entity::find()
            .select_only()
            .column(user_prompt::Column::Kind)
            .filter(user_prompt::Column::AccountId.eq(account_id))
            .order_by_asc(user_prompt::Column::Id)
            .into_tuple()
            .all(&self.read)
            .await?)
    }

    /// Removes a prompt once answered; false when the account did not have it.
    pub async fn remove_user_prompt(&self, account_id: i64, kind: &str) -> Result<bool, DbError> {
        Ok(user_prompt::Entity::delete_many()
            .filter(user_prompt::Column::AccountId.eq(account_id))
            .filter(user_prompt::Column::Kind.eq(kind))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }

    /// Deletes a user or organization asynchronously, in one transaction: renames it to
    /// `deleted-<uuid>`, clears its e-mail and disables it, so that its name and e-mail can be
    /// reused at once; renames and disables its robots the same way (`deleted-<uuid>+name`),
    /// so a new owner of the name can create robots of the same names; and enqueues
    /// `namespacegc/<id>/` with body `{"marker_id": <id>, "original_username": <name>}` (Quay's
    /// keys). False when there is no such account, it is a robot (robots are deleted with
    /// `delete_robot`), or it is already marked.
    pub async fn mark_namespace_for_deletion(&self, account_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        let queue_name = item_name("namespacegc", &[&account_id.to_string()]);
        let Some(found) = account::Entity::find_by_id(account_id).one(&tx).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // The queue item is the marker: a renamed account keeps it until the worker is done.
        let marked = queue_item::Entity::find()
            .filter(queue_item::Column::QueueName.eq(&queue_name))
            .one(&tx)
            .await?
            .is_some();
        if marked || found.robot {
            tx.rollback().await?;
            return Ok(false);
        }
        let new_name = format!("deleted-{}", uuid::Uuid::new_v4());
        let renamed = account::Entity::update_many()
            .col_expr(account::Column::Username, Expr::value(new_name.clone()))
            .col_expr(account::Column::Email, Expr::value(Option::<String>::None))
            .col_expr(account::Column::Enabled, Expr::value(false))
            .filter(account::Column::Id.eq(account_id))
            .filter(account::Column::Username.eq(&found.username))
            .exec(&tx)
            .await?;
        if renamed.rows_affected == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let robots: Vec<(i64, String)> = account::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .column(account::Column::Username)
            .filter(
                account::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(robot::Column::AccountId)
                        .from(robot::Entity)
                        .and_where(robot::Column::OwnerId.eq(account_id))
                        .to_owned(),
                ),
            )
            .into_tuple()
            .all(&tx)
            .await?;
        for (id, username) in robots {
            let short = username
                .split_once('+')
                .map_or(username.as_str(), |(_, s)| s);
            account::Entity::update_many()
                .col_expr(
                    account::Column::Username,
                    Expr::value(format!("{new_name}+{short}")),
                )
                .col_expr(account::Column::Enabled, Expr::value(false))
                .filter(account::Column::Id.eq(id))
                .exec(&tx)
                .await?;
        }
        let body = serde_json::json!({
            "marker_id": account_id,
            "original_username": found.username,
        });
        queue_put_in(&tx, &queue_name, &body.to_string(), 0, 5).await?;
        tx.commit().await?;
        Ok(true)
    }
}
