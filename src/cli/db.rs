//! `strategist migrate` and `strategist projections rebuild`.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;

use crate::config::Settings;
use crate::projections;
use crate::store::Store;

/// Applies every pending migration.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database.url).await?;
    store.migrate().await?;
    Ok(())
}

/// Rebuilds projection `name` from the event store for one user or all, showing a
/// progress bar on a terminal. Returns (users, events replayed).
pub async fn rebuild(
    settings: &Settings,
    name: &str,
    user: Option<String>,
) -> anyhow::Result<(usize, usize)> {
    anyhow::ensure!(
        projections::NAMES.contains(&name),
        "unknown projection `{name}` (known: {})",
        projections::NAMES.join(", ")
    );
    let store = Store::connect(&settings.database.url).await?;
    store.migrate().await?;
    let users = match user {
        Some(u) => vec![u],
        None => store.preference_users().await.context("listing users")?,
    };
    let total = users.len();
    let tty = std::io::stderr().is_terminal();
    let mut events = 0;
    for (i, u) in users.iter().enumerate() {
        events += rebuild_user(&store, u).await?;
        if tty {
            let width = 30;
            let done = ((i + 1) * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\rrebuilding {name} [{}{}] {}/{} users, {events} events",
                "#".repeat(done),
                ".".repeat(width - done),
                i + 1,
                total
            );
            let _ = std::io::stderr().flush();
        }
    }
    if tty {
        eprintln!();
    }
    Ok((total, events))
}

/// One user's rebuild, tried again when it collides with a live write of the same
/// user (a new row inserted by both, say).
async fn rebuild_user(store: &Store, user: &str) -> anyhow::Result<usize> {
    let mut attempt = 0;
    loop {
        match store.rebuild_preferences(user).await {
            Ok(n) => return Ok(n),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(user, error = %e, "rebuild collided with a live write; again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("rebuilding user {user}")),
        }
    }
}
