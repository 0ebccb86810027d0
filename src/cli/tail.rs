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
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;
    let key = strategist_actors::Keys::new(settings.redis.stream_prefix.clone()).stream(stream);
    let mut last = if from == "$" {
        // Resolve `$` once, so entries between two reads are never skipped.
        let info: redis::Value = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        strategist_actors::redis_io::parse_entries(info)
            .first()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| "0-0".into())
    } else {
        from.to_owned()
    };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let v: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut conn)
            .await?;
        let entries = strategist_actors::redis_io::parse_stream_reply(v);
        let mut out = stdout.lock();
        for e in entries {
            last = e.id.clone();
            writeln!(out, "{}", line(stream, &e))?;
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
        out.flush()?;
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
