//! sea-orm entities, one file per table.

pub mod event;
pub mod preference_history;
pub mod projection_applied;
pub mod projection_offset;
pub mod saga;
pub mod user_preferences;
