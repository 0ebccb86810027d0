//! `strategist load`: drives a running system at a paced rate, the way a new user
//! would try it, and reports whether every consumer group keeps up.
//!
//! It publishes valid events (`system.service.health` on system.events,
//! `user.preferences.updated` for a set of users on user.events, and on each of the
//! other five streams one type no worker acts on beyond the archiver, see [`event`])
//! at `--rate` per second on each stream for `--seconds`, through the same Redis and prefix as
//! `serve`, and once a second reads each group's backlog from Redis (pending plus
//! lag, so it answers for every process, not only one) and, with `--pid`, the
//! resident memory of that `serve` process. The target: every group within one
//! second of backlog (`rate` entries) while the load runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Map, Value, json};
use strategist_actors::Conn;
use strategist_actors::{Catalog, Envelope, Keys, Publisher};

use crate::config::Settings;
use crate::events::{self, streams};
use crate::redis_conn;

/// What to drive.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// Events per second on each stream.
    pub rate: u64,
    /// How long.
    pub seconds: u64,
    /// Streams to load (system.events, user.events).
    pub streams: Vec<String>,
    /// Distinct users of the user.events load.
    pub users: u64,
    /// The `serve` process whose memory to sample.
    pub pid: Option<u32>,
}

/// One group's figures over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupLoad {
    /// The largest backlog seen while publishing (pending + lag).
    pub max_backlog: u64,
    /// Seconds with a backlog above one second's worth of events.
    pub seconds_behind: u64,
    /// The backlog when publishing stopped.
    pub backlog_at_end: u64,
    /// How long it took to reach zero after publishing stopped (ms), if it did
    /// within a minute.
    pub drained_after_ms: Option<u64>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Target rate per stream.
    pub rate_per_stream: u64,
    /// Events published per second per stream, as achieved.
    pub achieved_rate_per_stream: f64,
    /// Seconds of load.
    pub seconds: u64,
    /// Per `stream/group`.
    pub groups: BTreeMap<String, GroupLoad>,
    /// The largest RSS of the `serve` process seen, in MiB.
    pub max_rss_mib: Option<f64>,
    /// At that sample: its anonymous memory (heap, stacks), in MiB.
    pub rss_anon_mib_at_peak: Option<f64>,
    /// At that sample: its mapped files (the binary's code pages, mostly), in MiB.
    pub rss_file_mib_at_peak: Option<f64>,
    /// Whether every group stayed within one second of backlog.
    pub kept_up: bool,
}

/// Runs the load; progress lines go to stderr.
pub async fn run(settings: &Settings, args: LoadArgs) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    for s in &args.streams {
        anyhow::ensure!(
            streams::ALL.contains(&s.as_str()),
            "--streams takes {}; `{s}` is not a stream",
            streams::ALL.join(", ")
        );
    }
    let (_, conn) = redis_conn::connect(&settings.redis).await?;
    let keys = settings.keys()?;
    let catalog = Arc::new(events::catalog());
    let publisher = Publisher::new(conn.clone(), keys.clone(), catalog.clone());
    let mut groups: BTreeMap<String, GroupLoad> = BTreeMap::new();
    let mut max_rss: Option<Rss> = None;
    let start = Instant::now();
    let total = args.rate * args.seconds;
    let mut sent = 0u64;
    let mut next_sample = Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut pending_publishes = Vec::new();
    while sent < total {
        tick.tick().await;
        let elapsed = start.elapsed();
        let due = ((elapsed.as_secs_f64() * args.rate as f64) as u64).min(total);
        if due > sent {
            let mut batch = Vec::with_capacity(((due - sent) as usize) * args.streams.len());
            for i in sent..due {
                for s in &args.streams {
                    batch.push((s.as_str(), event(&catalog, s, i, args.users)));
                }
            }
            sent = due;
            let p = publisher.clone();
            let owned: Vec<(String, Envelope)> =
                batch.into_iter().map(|(s, e)| (s.to_owned(), e)).collect();
            pending_publishes.push(tokio::spawn(async move {
                let refs: Vec<(&str, Envelope)> =
                    owned.iter().map(|(s, e)| (s.as_str(), e.clone())).collect();
                p.publish_batch(&refs).await.map(|v| v.len())
            }));
            if pending_publishes.len() > 64 {
                pending_publishes.remove(0).await??;
            }
        }
        if elapsed >= next_sample {
            next_sample += Duration::from_secs(1);
            // A Redis starved of CPU by the load may not answer XINFO in time: skip
            // that second rather than lose the run.
            let now = match sample(&conn, &keys, &args.streams).await {
                Ok(now) => now,
                Err(e) => {
                    eprintln!("t={:>3}s sample skipped: {e:#}", elapsed.as_secs());
                    continue;
                }
            };
            // Nobody reads: a report would say "kept up" about no one.
            anyhow::ensure!(
                !now.is_empty(),
                "no consumer group reads {}: is `strategist serve` running on this Redis and prefix?",
                args.streams.join(", ")
            );
            let rss = args.pid.and_then(rss_of);
            if let Some(r) = rss {
                max_rss = Some(max_rss.map_or(r, |m| if r.total > m.total { r } else { m }));
            }
            let mut line = format!("t={:>3}s", elapsed.as_secs());
            for (g, backlog) in &now {
                let e = groups.entry(g.clone()).or_default();
                e.max_backlog = e.max_backlog.max(*backlog);
                if *backlog > args.rate {
                    e.seconds_behind += 1;
                }
                line.push_str(&format!(" {g}={backlog}"));
            }
            if let Some(r) = rss {
                line.push_str(&format!(" rss={:.1}MiB", r.total as f64 / 1024.0));
            }
            eprintln!("{line}");
        }
    }
    for h in pending_publishes {
        h.await??;
    }
    let published_in = start.elapsed();
    let end = Instant::now();
    let at_end = sample(&conn, &keys, &args.streams)
        .await
        .unwrap_or_default();
    for (g, b) in &at_end {
        groups.entry(g.clone()).or_default().backlog_at_end = *b;
    }
    // How long each group takes to catch up.
    while end.elapsed() < Duration::from_secs(60) {
        let now = match sample(&conn, &keys, &args.streams).await {
            Ok(now) => now,
            Err(e) => {
                eprintln!("drain sample skipped: {e:#}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        for (g, b) in &now {
            let e = groups.entry(g.clone()).or_default();
            if *b == 0 && e.drained_after_ms.is_none() {
                e.drained_after_ms = Some(end.elapsed().as_millis() as u64);
            }
        }
        if groups.values().all(|g| g.drained_after_ms.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept_up = groups
        .values()
        .all(|g| g.max_backlog <= args.rate && g.drained_after_ms.is_some());
    Ok(LoadReport {
        rate_per_stream: args.rate,
        achieved_rate_per_stream: (total as f64 / published_in.as_secs_f64()).round(),
        seconds: args.seconds,
        groups,
        max_rss_mib: max_rss.map(|r| mib(r.total)),
        rss_anon_mib_at_peak: max_rss.map(|r| mib(r.anon)),
        rss_file_mib_at_peak: max_rss.map(|r| mib(r.file)),
        kept_up,
    })
}

/// One event of the load on `stream`: on user.events a preferences change (the
/// projection's work), on system.events a health report (the system monitor's),
/// elsewhere a type that only the archiver stores (no provider, file or channel is
/// called, so the load measures the bus and the event store, not a mock).
fn event(catalog: &Catalog, stream: &str, i: u64, users: u64) -> Envelope {
    let user = format!("load-user-{}", i % users.max(1));
    let (event_type, data) = match stream {
        streams::USER => {
            let mut new_values = Map::new();
            new_values.insert("theme".into(), json!(format!("theme-{i}")));
            let data = json!({
                "user_id": user,
                "changed_fields": ["theme"],
                "old_values": {},
                "new_values": Value::Object(new_values),
            });
            ("user.preferences.updated", data)
        }
        streams::CONTENT => (
            "content.draft.updated",
            json!({"draft_id": format!("load-draft-{i}"), "user_id": user, "changed_fields": ["title"]}),
        ),
        streams::CONTEXTUAL => (
            "file.processing.started",
            json!({"file_id": format!("load-file-{i}"), "processing_type": "metadata_analysis", "estimated_duration_ms": 1.0}),
        ),
        streams::MARKET => (
            "market.trend.detected",
            json!({"trend_id": format!("load-trend-{i}"), "trend_type": "stable", "keywords": ["load"], "confidence_score": 0.5, "affected_users": [], "trend_data": {}}),
        ),
        streams::AI => (
            "ai.consultation.failed",
            json!({"session_id": format!("load-session-{i}"), "error": "load", "ai_provider": "offline"}),
        ),
        streams::NOTIFICATION => (
            "notification.delivered",
            json!({"notification_id": format!("load-notification-{i}"), "user_id": user, "channel": "in_app", "delivery_time_ms": 1.0, "success": true}),
        ),
        _ => (
            "system.service.health",
            json!({
                "service_name": "load",
                "status": "healthy",
                "response_time_ms": 1.0,
                "memory_usage_mb": 10.0,
                "cpu_usage_percent": 1.0,
                "error_rate": 0.0,
            }),
        ),
    };
    let version = catalog.get(event_type).map_or(1, |t| t.version);
    let mut env = Envelope::new(event_type, version, data);
    if stream != streams::SYSTEM {
        env.user_id = Some(user);
    }
    env
}

/// Backlog (pending + lag) of every group of `streams`, by `stream/group`.
async fn sample(
    conn: &Conn,
    keys: &Keys,
    streams: &[String],
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let mut c = conn.clone();
    // A partitioned stream's backlog is the sum over its partitions.
    for (s, part) in streams
        .iter()
        .flat_map(|s| keys.partitions(s).into_iter().map(move |p| (s, p)))
    {
        let v: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(keys.stream(&part))
            .query_async(&mut c)
            .await
            .with_context(|| format!("XINFO GROUPS {part}"))?;
        let redis::Value::Array(groups) = v else {
            continue;
        };
        for g in groups {
            let fields: Vec<redis::Value> = match g {
                redis::Value::Array(a) => a,
                redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => continue,
            };
            let mut name = String::new();
            let (mut pending, mut lag) = (0u64, 0u64);
            for kv in fields.chunks(2) {
                let k = match &kv[0] {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    redis::Value::SimpleString(s) => s.clone(),
                    _ => continue,
                };
                match (k.as_str(), kv.get(1)) {
                    ("name", Some(redis::Value::BulkString(b))) => {
                        name = String::from_utf8_lossy(b).into_owned();
                    }
                    ("pending", Some(redis::Value::Int(n))) => pending = *n as u64,
                    ("lag", Some(redis::Value::Int(n))) => lag = *n as u64,
                    _ => {}
                }
            }
            *out.entry(format!("{s}/{name}")).or_default() += pending + lag;
        }
    }
    Ok(out)
}

/// Resident memory of a process in KiB: in all, anonymous, file-backed.
#[derive(Debug, Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// Resident memory of `pid` (Linux `/proc/<pid>/status`).
fn rss_of(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Rss {
        total: field("VmRSS:")?,
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}
