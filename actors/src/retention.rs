//! The retention keeper (the design's `cleanupExpiredData`): trims streams by age and
//! length on a timer, and never past an entry that some consumer group has not yet
//! read and acknowledged.
//!
//! A group that holds trimming back is reported (hook, rate-limited per stream and
//! group) instead of being cut off silently. Only the hard cap, which protects
//! Redis's memory, may cut past a lagging group; when it does, that is logged,
//! counted and reported every time. The decision and the trim are one Lua script,
//! so a group cannot move between them.
//!
//! On Redis 8.2 and later the trim itself is `XTRIM ... MINID ... ACKED`: the server
//! keeps every entry some group has not acknowledged and frees the acknowledged ones
//! even behind a lagging group (so memory is bounded by what is really unfinished);
//! on older servers the script stops at the oldest entry any group still needs.
//!
//! A partitioned stream is trimmed partition by partition, each to its share of the
//! stream's limits (`maxlen` and `hard_cap` divided by the partition count, rounded
//! up; `max_age_ms` as it is), and reported under the partition's name
//! (`user.events:2`), so an operator sees which partition a group holds back.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::conn::Conn;
use actix::prelude::*;
use redis::Value;

use crate::envelope::now_millis;
use crate::hooks::Hooks;
pub use crate::hooks::RetentionReport;
use crate::keys::Keys;
use crate::redis_io::text;
use crate::stats::RouteStats;

static TRIM: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/trim.lua")));

/// The retention of one stream (of all its partitions together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRetention {
    /// The stream (without prefix).
    pub stream: String,
    /// Keep about this many entries (0: no limit).
    pub maxlen: u64,
    /// Keep entries younger than this (0: no limit).
    pub max_age_ms: u64,
    /// Never more entries than this, whoever lags (0: no cap).
    pub hard_cap: u64,
}

/// Counters of the keeper.
#[derive(Debug, Default)]
pub struct RetentionStats {
    /// Entries removed by age and length.
    pub trimmed: AtomicU64,
    /// Entries removed by the hard cap.
    pub forced: AtomicU64,
    /// Times a lagging group held trimming back.
    pub held_back: AtomicU64,
}

/// The keeper actor.
pub struct RetentionKeeper {
    conn: Conn,
    keys: Keys,
    streams: Vec<StreamRetention>,
    interval: Duration,
    report_every: Duration,
    hooks: Hooks,
    stats: std::sync::Arc<RetentionStats>,
    last_report: HashMap<(String, String), Instant>,
    busy: bool,
    /// Whether the server trims with `ACKED` (Redis 8.2+); learned at start.
    acked_trim: Option<bool>,
}

impl RetentionKeeper {
    /// A keeper of `streams`, trimming every `interval`.
    pub fn new(
        conn: impl Into<Conn>,
        keys: Keys,
        streams: Vec<StreamRetention>,
        interval: Duration,
        report_every: Duration,
        hooks: Hooks,
        stats: std::sync::Arc<RetentionStats>,
    ) -> Self {
        RetentionKeeper {
            conn: conn.into(),
            keys,
            streams,
            interval,
            report_every,
            hooks,
            stats,
            last_report: HashMap::new(),
            busy: false,
            acked_trim: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let Some(acked) = self.acked_trim else {
            let mut conn = self.conn.clone();
            let fut = async move { crate::redis_io::server_version(&mut conn).await };
            ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| {
                act.busy = false;
                if let Ok(v) = res {
                    let acked = v >= (8, 2);
                    tracing::info!(redis = ?v, acked_trim = acked, "retention keeper ready");
                    act.acked_trim = Some(acked);
                }
            }));
            return;
        };
        let now = now_millis().timestamp_millis();
        let acked = if acked { "1" } else { "0" };
        let keys = &self.keys;
        let calls: Vec<(String, redis::ScriptInvocation<'static>)> = self
            .streams
            .iter()
            .flat_map(|s| {
                let n = u64::from(keys.partition_count(&s.stream));
                let age_cut = if s.max_age_ms > 0 {
                    format!("{}-0", (now - s.max_age_ms as i64).max(0))
                } else {
                    String::new()
                };
                let (maxlen, hard_cap) = (s.maxlen.div_ceil(n), s.hard_cap.div_ceil(n));
                keys.partitions(&s.stream).into_iter().map(move |part| {
                    let mut inv = TRIM.prepare_invoke();
                    inv.key(keys.stream(&part))
                        .arg(&age_cut)
                        .arg(maxlen)
                        .arg(hard_cap)
                        .arg(acked)
                        .arg("0");
                    (part, inv)
                })
            })
            .collect();
        let keys = self.keys.clone();
        let mut conn = self.conn.clone();
        let fut = async move {
            let mut out = Vec::new();
            let mut spent = 0;
            for (stream, inv) in calls {
                let res = inv.invoke_async::<Value>(&mut conn).await;
                // Each group's redelivery stream (the trim reply names the groups):
                // what the group finished is dead weight there, whatever the main
                // stream's limits.
                let groups: Vec<String> = match &res {
                    Ok(Value::Array(parts)) => match parts.get(4) {
                        Some(Value::Array(names)) => names.iter().filter_map(text).collect(),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                out.push((stream.clone(), res));
                for g in groups {
                    let mut inv = TRIM.prepare_invoke();
                    inv.key(keys.redeliver(&stream, &g))
                        .arg("")
                        .arg(0)
                        .arg(0)
                        .arg(acked)
                        .arg("1");
                    if let Ok(Value::Array(v)) = inv.invoke_async::<Value>(&mut conn).await
                        && let Some(Value::Int(n)) = v.first()
                    {
                        spent += u64::try_from(*n).unwrap_or(0);
                    }
                }
            }
            (out, spent)
        };
        ctx.spawn(
            actix::fut::wrap_future(fut).map(|(results, redelivered), act: &mut Self, _| {
                act.busy = false;
                RouteStats::add(&act.stats.trimmed, redelivered);
                for (stream, res) in results {
                    match res {
                        Ok(v) => act.record(&stream, v),
                        Err(e) => tracing::warn!(%stream, error = %e, "retention trim failed"),
                    }
                }
            }),
        );
    }

    fn record(&mut self, stream: &str, v: Value) {
        let Value::Array(parts) = v else { return };
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let list = |v: Option<&Value>| -> Vec<Value> {
            match v {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            }
        };
        let removed = int(parts.first());
        let forced = int(parts.get(1));
        RouteStats::add(&self.stats.trimmed, removed);
        if removed > 0 {
            tracing::debug!(stream, removed, "trimmed by retention");
        }
        for lag in list(parts.get(2)).chunks(3) {
            let (Some(group), Some(needed_id)) = (text(&lag[0]), lag.get(1).and_then(text)) else {
                continue;
            };
            RouteStats::add(&self.stats.held_back, 1);
            let key = (stream.to_owned(), group.clone());
            let due = self
                .last_report
                .get(&key)
                .is_none_or(|t| t.elapsed() >= self.report_every);
            if due {
                self.last_report.insert(key, Instant::now());
                let lag = match lag.get(2) {
                    Some(Value::Int(n)) => *n,
                    _ => -1,
                };
                tracing::warn!(stream, %group, %needed_id, lag, "a lagging group holds retention back");
                self.hooks.retention(&RetentionReport::Lagging {
                    stream: stream.to_owned(),
                    group,
                    needed_id,
                    lag,
                });
            }
        }
        if forced > 0 {
            RouteStats::add(&self.stats.forced, forced);
            let groups: Vec<String> = list(parts.get(3)).iter().filter_map(text).collect();
            tracing::error!(stream, removed = forced, groups = ?groups, "hard cap trimmed entries past lagging groups");
            self.hooks.retention(&RetentionReport::ForcedTrim {
                stream: stream.to_owned(),
                removed: forced,
                groups,
            });
        }
    }
}

impl Actor for RetentionKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }
}
