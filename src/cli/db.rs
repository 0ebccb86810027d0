//! `strategist migrate` and `strategist projections rebuild`.

use std::io::{IsTerminal, Write};

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
    // Before connecting: a typo should not wait for the database.
    projections::check_name(name)?;
    let store = Store::connect(&settings.database.url).await?;
    store.migrate().await?;
    let tty = std::io::stderr().is_terminal();
    let out = projections::rebuild(&store, name, user, |done_users, total, events| {
        if tty {
            let width = 30;
            let done = (done_users * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\rrebuilding {name} [{}{}] {done_users}/{total} users, {events} events",
                "#".repeat(done),
                ".".repeat(width - done),
            );
            let _ = std::io::stderr().flush();
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    Ok(out)
}
