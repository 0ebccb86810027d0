//! sea-orm entities, one file per table.

pub mod ai_request;
pub mod briefing;
pub mod briefing_schedule;
pub mod content_draft;
pub mod dead_letter;
pub mod dead_letter_checkpoint;
pub mod embedding_chunk;
pub mod event;
pub mod file;
pub mod file_text;
pub mod index_entry;
pub mod model_benchmark;
pub mod notification;
pub mod notification_delivery;
pub mod preference_history;
pub mod projection_applied;
pub mod projection_offset;
pub mod push_subscription;
pub mod saga;
pub mod scheduled_run;
pub mod user_contact;
pub mod user_preferences;
pub mod vapid_key;
