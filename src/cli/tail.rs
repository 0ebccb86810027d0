//! `strategist tail`: follows a stream, one JSON object per line.

use std::io::Write;

use serde_json::json;
use strategist_actors::Envelope;
use strategist_actors::redis_io::Entry;

use crate::config::Settings;
use crate::redis_conn;

/// Prints entries of `stream` after `from` (`$`: only new ones) until interrupted,
/// or until `count` entries were printed.
pub async fn run(
    settings: &Settings,
    stream: &str,
    from: &str,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let (client, _) = redis_conn::connect(&settings.redis).await?;
    let mut conn = client
        .dedicated(strategist_actors::ConnOptions::default())
        .await?;
    // A partitioned stream is followed on every partition, each from its own
    // position (entry ids of two partitions do not compare).
    let keys = settings.keys()?;
    let parts: Vec<(Option<u32>, String)> = keys
        .partitions(stream)
        .iter()
        .map(|p| (keys.logical(p).1, keys.stream(p)))
        .collect();
    let mut last = Vec::with_capacity(parts.len());
    for (_, key) in &parts {
        last.push(if from == "$" {
            // Resolve `$` once, so entries between two reads are never skipped.
            strategist_actors::redis_io::last_entry_id(&mut conn, key).await?
        } else {
            from.to_owned()
        });
    }
    // One XREAD names every partition, except on a cluster, where they live in
    // different slots: there each is read in turn with a short block.
    let groups: Vec<Vec<usize>> = if client.is_cluster() {
        (0..parts.len()).map(|i| vec![i]).collect()
    } else {
        vec![(0..parts.len()).collect()]
    };
    let block_ms = if groups.len() > 1 { 100 } else { 5000 };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        for g in &groups {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(100)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS");
            for &i in g {
                cmd.arg(&parts[i].1);
            }
            for &i in g {
                cmd.arg(&last[i]);
            }
            let v: redis::Value = cmd.query_async(&mut conn).await?;
            let entries = strategist_actors::redis_io::parse_stream_reply(v);
            let mut out = stdout.lock();
            for e in entries {
                let Some(i) = parts.iter().position(|(_, k)| *k == e.key) else {
                    continue;
                };
                last[i] = e.id.clone();
                let mut l = line(stream, &e);
                if let Some(n) = parts[i].0 {
                    l["partition"] = json!(n);
                }
                writeln!(out, "{l}")?;
                printed += 1;
                if count.is_some_and(|c| printed >= c) {
                    return Ok(());
                }
            }
            out.flush()?;
        }
    }
}

fn line(stream: &str, e: &Entry) -> serde_json::Value {
    match Envelope::from_pairs(e.pairs()) {
        Ok(env) => json!({"stream": stream, "entry_id": e.id, "event": env}),
        Err(err) => {
            let fields: serde_json::Map<String, serde_json::Value> = e
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
                .collect();
            json!({"stream": stream, "entry_id": e.id, "error": err.to_string(), "fields": fields})
        }
    }
}
