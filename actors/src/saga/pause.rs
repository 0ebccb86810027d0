//! A test hook: stop a saga right before or right after one of its publishes, so a
//! test can `kill -9` the process at exactly that point.
//!
//! `STRATEGIST_TEST_SAGA_PAUSE=before:<event type>` (or `after:<event type>`) makes
//! every saga of the process that reaches that publish log `saga paused` and wait
//! forever there. Unset (always, outside tests) it costs one string comparison per
//! publish. The pause never completes, so nothing after it (publish, save, ack)
//! happens in that process: what a crash at that point leaves behind.

use std::sync::OnceLock;

/// The environment variable read once per process.
const VAR: &str = "STRATEGIST_TEST_SAGA_PAUSE";

/// Which side of the publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// After the state naming the event was saved, before it is published.
    Before,
    /// After it was published, before the outbox is marked done.
    After,
}

fn point() -> Option<&'static (Side, String)> {
    static POINT: OnceLock<Option<(Side, String)>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            let v = std::env::var(VAR).ok()?;
            let (side, ty) = v.split_once(':')?;
            let side = match side {
                "before" => Side::Before,
                "after" => Side::After,
                _ => return None,
            };
            Some((side, ty.to_owned()))
        })
        .as_ref()
}

/// Waits forever when the hook names this side of publishing `event_type`.
pub(crate) async fn pause_at(side: Side, event_type: &str) {
    if let Some((s, ty)) = point()
        && *s == side
        && ty == event_type
    {
        tracing::warn!(?side, event_type, "saga paused (test hook {VAR})");
        std::future::pending::<()>().await;
    }
}
