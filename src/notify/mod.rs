//! Notifications to people: the channels that reach them (`email`, `push`) behind
//! one [`channel::Channel`] trait, their message templates and the VAPID key of
//! Web Push.
//!
//! Invariant: no channel logs or traces an address, an endpoint or a message body;
//! errors name status codes and causes, never personal data.

pub mod channel;
pub mod email;
pub mod push;
pub mod templates;
pub mod vapid;
