//! `strategist dlq list|show|reprocess|purge`: the dead-letter admin.

use strategist_actors::{DeadLetterFilter, DeadLetters};

use crate::config::Settings;
use crate::{events, redis_conn};

/// What to do.
pub enum DlqCommand {
    /// Print matching dead letters, one JSON object per line.
    List(DeadLetterFilter, usize),
    /// Print one dead letter.
    Show(String),
    /// Send one back to the group that failed it.
    Reprocess(String),
    /// Send every matching one back.
    ReprocessAll(DeadLetterFilter),
    /// Remove one (recorded in the audit stream).
    Purge(String),
    /// Remove every matching one.
    PurgeAll(DeadLetterFilter),
}

/// Runs one admin command; returns what to print.
pub async fn run(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<String> {
    if let DlqCommand::List(f, _) | DlqCommand::ReprocessAll(f) | DlqCommand::PurgeAll(f) = &cmd
        && let Some(s) = &f.stream
    {
        anyhow::ensure!(
            events::streams::ALL.contains(&s.as_str()),
            "unknown stream `{s}` (one of {})",
            events::streams::ALL.join(", ")
        );
    }
    let (_, conn) = redis_conn::connect(&settings.redis).await?;
    let streams = events::streams::ALL.iter().map(|s| s.to_string()).collect();
    let dl = DeadLetters::new(conn, settings.keys()?, streams);
    let who = "cli";
    Ok(match cmd {
        DlqCommand::List(f, limit) => dl
            .list(&f, limit)
            .await?
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
        DlqCommand::Show(id) => serde_json::to_string_pretty(&dl.get(&id).await?)?,
        DlqCommand::Reprocess(id) => {
            let entry = dl.reprocess(&id, who).await?;
            format!("reprocessed {id} as {entry}")
        }
        DlqCommand::ReprocessAll(f) => {
            format!("reprocessed {}", dl.reprocess_matching(&f, who).await?)
        }
        DlqCommand::Purge(id) => {
            dl.purge(&id, who).await?;
            format!("purged {id}")
        }
        DlqCommand::PurgeAll(f) => format!("purged {}", dl.purge_matching(&f, who).await?),
    })
}
