//! `m0009_contacts_push`: how people are reached outside the WebSocket: their email
//! address (from `user.registered`), their browsers' Web Push subscriptions, and the
//! server's VAPID key when it is generated rather than configured.

use sea_orm_migration::prelude::*;

/// Contacts, push subscriptions, the VAPID key.
pub(super) struct M0009ContactsPush;

impl MigrationName for M0009ContactsPush {
    fn name(&self) -> &str {
        "m0009_contacts_push"
    }
}

#[derive(DeriveIden)]
enum UserContacts {
    Table,
    UserId,
    Email,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum PushSubscriptions {
    Table,
    Endpoint,
    UserId,
    P256dh,
    Auth,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum VapidKeys {
    Table,
    Id,
    PrivateKey,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0009ContactsPush {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(UserContacts::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(UserContacts::UserId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(UserContacts::Email).string().not_null())
                .col(
                    ColumnDef::new(UserContacts::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        // The endpoint is the key: a browser has one, and whoever subscribes it
        // last owns it. Text, since push services' URLs can pass 255 characters.
        m.create_table(
            Table::create()
                .table(PushSubscriptions::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(PushSubscriptions::Endpoint)
                        .text()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(PushSubscriptions::UserId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(PushSubscriptions::P256dh)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(PushSubscriptions::Auth).string().not_null())
                .col(
                    ColumnDef::new(PushSubscriptions::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_push_subscriptions_user")
                .table(PushSubscriptions::Table)
                .if_not_exists()
                .col(PushSubscriptions::UserId)
                .col(PushSubscriptions::CreatedAtMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(VapidKeys::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(VapidKeys::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(VapidKeys::PrivateKey).string().not_null())
                .col(
                    ColumnDef::new(VapidKeys::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }
}
