//! `user_contacts`: a user's email address, from `user.registered`. Personal data:
//! never logged.

use sea_orm::entity::prelude::*;

/// One user's contact.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_contacts")]
pub struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Where the email channel writes to.
    pub email: String,
    /// The timestamp of the event that set it: a redelivered older event does not
    /// overwrite a newer address.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
