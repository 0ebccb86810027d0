//! How people are reached outside the WebSocket: email addresses (the
//! user-contacts projection of `user.registered`), Web Push subscriptions (the
//! push routes), and the generated VAPID key.
//!
//! Invariants:
//! - applying the same `user.registered` twice changes nothing, and an older one
//!   redelivered after a newer one does not bring the old address back (the row
//!   keeps the timestamp of the event that set it; the upsert only moves forward);
//! - an endpoint belongs to one user at a time: subscribing it again moves it;
//! - a user has at most `max_per_user` subscriptions; past that the oldest goes;
//! - the VAPID key row is written once (`ON CONFLICT DO NOTHING`); every process
//!   reads back whichever key won.

use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::entities::{push_subscription, user_contact, vapid_key};
use super::{Store, StoreError};

/// The id of the one VAPID key row.
const VAPID_ROW: &str = "default";

impl Store {
    /// Records `email` as `user_id`'s address, as of `at_ms`, unless a newer
    /// event set it already.
    pub async fn save_contact(
        &self,
        user_id: &str,
        email: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let row = user_contact::ActiveModel {
            user_id: Set(user_id.to_owned()),
            email: Set(email.to_owned()),
            updated_at_ms: Set(at_ms),
        };
        let newer = Expr::col((user_contact::Entity, user_contact::Column::UpdatedAtMs)).lte(
            Expr::col((Alias::new("excluded"), user_contact::Column::UpdatedAtMs)),
        );
        user_contact::Entity::insert(row)
            .on_conflict(
                OnConflict::column(user_contact::Column::UserId)
                    .update_columns([
                        user_contact::Column::Email,
                        user_contact::Column::UpdatedAtMs,
                    ])
                    .action_and_where(newer)
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// `user_id`'s email address, if a `user.registered` gave one.
    pub async fn contact_email(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        Ok(user_contact::Entity::find_by_id(user_id.to_owned())
            .one(&self.db)
            .await?
            .map(|c| c.email))
    }

    /// Subscribes `endpoint` for `user_id` (moving it from whoever had it), then
    /// drops the user's oldest subscriptions beyond `max_per_user`.
    pub async fn subscribe_push(
        &self,
        sub: push_subscription::Model,
        max_per_user: usize,
    ) -> Result<(), StoreError> {
        let user = sub.user_id.clone();
        let txn = self.begin_write().await?;
        push_subscription::Entity::insert(push_subscription::ActiveModel::from(sub))
            .on_conflict(
                OnConflict::column(push_subscription::Column::Endpoint)
                    .update_columns([
                        push_subscription::Column::UserId,
                        push_subscription::Column::P256dh,
                        push_subscription::Column::Auth,
                        push_subscription::Column::CreatedAtMs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&*txn)
            .await?;
        let beyond: Vec<String> = push_subscription::Entity::find()
            .select_only()
            .column(push_subscription::Column::Endpoint)
            .filter(push_subscription::Column::UserId.eq(user))
            .order_by_desc(push_subscription::Column::CreatedAtMs)
            .order_by_desc(push_subscription::Column::Endpoint)
            .into_tuple::<String>()
            .all(&*txn)
            .await?
            // A handful per user: skipping here spares SQLite's OFFSET-needs-LIMIT.
            .into_iter()
            .skip(max_per_user)
            .collect();
        if !beyond.is_empty() {
            push_subscription::Entity::delete_many()
                .filter(push_subscription::Column::Endpoint.is_in(beyond))
                .exec(&*txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Removes `user_id`'s subscription of `endpoint`; false when there was none.
    pub async fn unsubscribe_push(
        &self,
        user_id: &str,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let r = push_subscription::Entity::delete_many()
            .filter(push_subscription::Column::Endpoint.eq(endpoint))
            .filter(push_subscription::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    /// `user_id`'s subscriptions, newest first.
    pub async fn push_subscriptions(
        &self,
        user_id: &str,
    ) -> Result<Vec<push_subscription::Model>, StoreError> {
        Ok(push_subscription::Entity::find()
            .filter(push_subscription::Column::UserId.eq(user_id))
            .order_by_desc(push_subscription::Column::CreatedAtMs)
            .all(&self.db)
            .await?)
    }

    /// The generated VAPID private key (base64url), if one was stored.
    pub async fn vapid_private_key(&self) -> Result<Option<String>, StoreError> {
        Ok(vapid_key::Entity::find_by_id(VAPID_ROW.to_owned())
            .one(&self.db)
            .await?
            .map(|k| k.private_key))
    }

    /// Stores `private_key` unless a key is stored already; returns the stored one
    /// (another process may have won).
    pub async fn store_vapid_private_key(&self, private_key: &str) -> Result<String, StoreError> {
        let row = vapid_key::ActiveModel {
            id: Set(VAPID_ROW.to_owned()),
            private_key: Set(private_key.to_owned()),
            created_at_ms: Set(chrono::Utc::now().timestamp_millis()),
        };
        vapid_key::Entity::insert(row)
            .on_conflict(
                OnConflict::column(vapid_key::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        self.vapid_private_key()
            .await?
            .ok_or_else(|| StoreError::Conflict("the VAPID key row vanished".into()))
    }
}
