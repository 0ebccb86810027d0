//! Notifications and their delivery attempts: what the notifier writes and the
//! WebSocket replay, the HTTP API and client acks read.
//!
//! Invariants: one row per notification id (the `notification.send.requested`
//! event's id; a second insert of the same id does nothing), one row per
//! (notification, channel, attempt); a person's notifications are read and marked
//! only together with their `user_id`, so nobody reaches another's.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{notification, notification_delivery};
use super::{Store, StoreError};

/// Attempt outcome: it reached the person.
pub const DELIVERED: &str = "delivered";
/// Attempt outcome: failed, worth another attempt.
pub const TRANSIENT: &str = "transient";
/// Attempt outcome: failed, another attempt fails the same way.
pub const PERMANENT: &str = "permanent";
/// Attempt outcome: the person cannot be reached on this channel now.
pub const UNREACHABLE: &str = "unreachable";

/// Which of a user's notifications to read.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    /// Whose.
    pub user_id: String,
    /// Only ids after this one.
    pub after: Option<String>,
    /// Only those not read yet.
    pub unread: bool,
    /// At most this many.
    pub limit: u64,
}

impl Store {
    /// Stores notifications; ids already stored are left as they are. Returns how
    /// many were new.
    pub async fn save_notifications(
        &self,
        rows: &[notification::Model],
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let n = notification::Entity::insert_many(
            rows.iter()
                .map(|r| notification::ActiveModel::from(r.clone())),
        )
        .on_conflict(
            OnConflict::column(notification::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(n)
    }

    /// One notification by id (whoever it belongs to: the caller checks).
    pub async fn notification(&self, id: &str) -> Result<Option<notification::Model>, StoreError> {
        Ok(notification::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// A user's notifications in id order (so in time order), after `after`.
    pub async fn notifications(
        &self,
        q: &NotificationQuery,
    ) -> Result<Vec<notification::Model>, StoreError> {
        let mut cond = Condition::all().add(notification::Column::UserId.eq(q.user_id.clone()));
        if let Some(after) = &q.after {
            cond = cond.add(notification::Column::Id.gt(after.clone()));
        }
        if q.unread {
            cond = cond.add(notification::Column::ReadAt.is_null());
        }
        Ok(notification::Entity::find()
            .filter(cond)
            .order_by_asc(notification::Column::Id)
            .limit(q.limit)
            .all(&self.db)
            .await?)
    }

    /// Records that a client received notification `id` of `user_id` (the first
    /// time only). Returns whether the user has such a notification.
    pub async fn mark_notification_delivered(
        &self,
        user_id: &str,
        id: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        self.stamp_once(notification::Column::DeliveredAt, user_id, id, at)
            .await?;
        self.owns(user_id, id).await
    }

    /// Records that the person read notification `id` (the first time only; it
    /// counts as delivered too). Returns whether the user has such a notification.
    pub async fn mark_notification_read(
        &self,
        user_id: &str,
        id: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        self.stamp_once(notification::Column::ReadAt, user_id, id, at)
            .await?;
        self.mark_notification_delivered(user_id, id, at).await
    }

    /// Sets `column` of the user's notification `id` to `at` unless it is set.
    async fn stamp_once(
        &self,
        column: notification::Column,
        user_id: &str,
        id: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        notification::Entity::update_many()
            .col_expr(column, Expr::value(at))
            .filter(notification::Column::Id.eq(id))
            .filter(notification::Column::UserId.eq(user_id))
            .filter(column.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn owns(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(notification::Entity::find_by_id(id.to_owned())
            .filter(notification::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Every attempt recorded for these notifications, in (notification, channel,
    /// attempt) order.
    pub async fn deliveries(
        &self,
        notification_ids: &[String],
    ) -> Result<Vec<notification_delivery::Model>, StoreError> {
        if notification_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(notification_delivery::Entity::find()
            .filter(notification_delivery::Column::NotificationId.is_in(notification_ids.to_vec()))
            .order_by_asc(notification_delivery::Column::NotificationId)
            .order_by_asc(notification_delivery::Column::Channel)
            .order_by_asc(notification_delivery::Column::Attempt)
            .all(&self.db)
            .await?)
    }

    /// Records one attempt (a second record of the same attempt does nothing).
    pub async fn record_delivery(
        &self,
        row: &notification_delivery::Model,
    ) -> Result<(), StoreError> {
        notification_delivery::Entity::insert(notification_delivery::ActiveModel::from(
            row.clone(),
        ))
        .on_conflict(
            OnConflict::columns([
                notification_delivery::Column::NotificationId,
                notification_delivery::Column::Channel,
                notification_delivery::Column::Attempt,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }
}
