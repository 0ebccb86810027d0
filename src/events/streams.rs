//! The seven streams of the design, and which stream a type name belongs to.

/// User actions (signup, login, preferences).
pub const USER: &str = "user.events";
/// Content creation, editing, publishing.
pub const CONTENT: &str = "content.events";
/// File uploads, processing, embeddings, search index.
pub const CONTEXTUAL: &str = "contextual.events";
/// Data collection, trend analysis.
pub const MARKET: &str = "market.events";
/// Generation requests, completions.
pub const AI: &str = "ai.events";
/// Alerts, briefings, system messages.
pub const NOTIFICATION: &str = "notification.events";
/// Health, errors, performance metrics.
pub const SYSTEM: &str = "system.events";

/// Every stream.
pub const ALL: [&str; 7] = [USER, CONTENT, CONTEXTUAL, MARKET, AI, NOTIFICATION, SYSTEM];

/// The stream a type belongs to by the first part of its name (the contract's rule),
/// or `None` for a prefix no stream owns.
pub fn stream_of(event_type: &str) -> Option<&'static str> {
    let head = event_type.split('.').next().unwrap_or_default();
    Some(match head {
        "user" => USER,
        "content" => CONTENT,
        "file" | "embedding" | "search" => CONTEXTUAL,
        "market" => MARKET,
        "ai" => AI,
        "notification" | "briefing" => NOTIFICATION,
        "system" => SYSTEM,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_on_the_stream_its_name_says() {
        for d in crate::events::all() {
            assert_eq!(stream_of(d.name), Some(d.stream), "{}", d.name);
        }
        assert_eq!(stream_of("nothing.here"), None);
    }
}
