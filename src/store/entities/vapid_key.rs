//! `vapid_keys`: the server's VAPID key (RFC 8292) when none is configured, made
//! once so that browsers' subscriptions (bound to its public key) survive restarts.

use sea_orm::entity::prelude::*;

/// The key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vapid_keys")]
pub struct Model {
    /// Always `default`: one key per deployment.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The P-256 private scalar, base64url (32 bytes).
    pub private_key: String,
    /// When it was made.
    pub created_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
