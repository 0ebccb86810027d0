//! `push_subscriptions`: the browsers a user subscribed to Web Push (RFC 8030), with
//! the keys their messages are encrypted to (RFC 8291). The endpoint is personal
//! data (it identifies a browser): never logged.

use sea_orm::entity::prelude::*;

/// One browser's subscription.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "push_subscriptions")]
pub struct Model {
    /// The push service URL messages are posted to.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub endpoint: String,
    /// Whose browser it is.
    pub user_id: String,
    /// The browser's P-256 public key, base64url (65 bytes, uncompressed).
    pub p256dh: String,
    /// The browser's authentication secret, base64url (16 bytes).
    pub auth: String,
    /// When it was subscribed (the oldest goes first past the per-user cap).
    pub created_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
