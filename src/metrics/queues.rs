//! Queue figures read from Redis, so that any process (an API-only one too) answers
//! for the whole system and not only for the routers it runs: per stream its length,
//! per consumer group its consumers, pending entries (`XPENDING` summary), lag,
//! entries read and last delivered id (`XINFO GROUPS`), the age of its oldest pending
//! entry and its dead letters of the last minutes.
//!
//! Invariants:
//! - `lag` is Redis's own figure, reported as is (null where Redis cannot tell):
//!   Redis 7.0 reports it wrong after deletions inside the group's range, so it is
//!   always given with `entries_read` and `last_delivered_id` to judge it by;
//! - ages are measured against Redis's clock (`TIME`), the clock entry ids are made
//!   with, so a process whose clock drifts still reports the right age;
//! - a stream nobody wrote to yet is reported with length 0 and no group;
//! - the redelivery streams of reprocessed dead letters are not counted here;
//! - a partitioned stream is reported once, under its logical name, its figures
//!   summed over its partitions (see [`merge`] for each field's rule).

use redis::Value;
use serde::Serialize;
use strategist_actors::Conn;
use strategist_actors::Keys;
use strategist_actors::metrics::{SLOT, SLOTS};
use strategist_actors::redis_io::{int, pairs, text};

/// Dead letters read back per stream at most, to count the recent ones: past that,
/// the count is a lower bound.
const MAX_DEAD_LETTERS_READ: usize = 10_000;

/// Why the figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Every stream's queue figures at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct QueueFigures {
    /// Redis's clock when they were read, ms since the epoch.
    pub redis_time_ms: i64,
    /// One per stream asked for, in that order.
    pub streams: Vec<StreamQueue>,
}

/// One stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamQueue {
    /// Its name, without the key prefix.
    pub stream: String,
    /// Entries in it.
    pub length: u64,
    /// Its consumer groups, by name.
    pub groups: Vec<GroupQueue>,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupQueue {
    /// The group (the worker pool's name).
    pub group: String,
    /// Consumers in it.
    pub consumers: u64,
    /// Entries delivered and not acked yet (`XPENDING`).
    pub pending: u64,
    /// Entries not delivered yet, as Redis says (null when it cannot tell).
    pub lag: Option<u64>,
    /// Entries the group has read, as Redis says (null when it cannot tell).
    pub entries_read: Option<u64>,
    /// The last entry delivered to the group.
    pub last_delivered_id: Option<String>,
    /// The oldest pending entry.
    pub oldest_pending_id: Option<String>,
    /// Its age by Redis's clock, in ms (null when nothing is pending).
    pub oldest_pending_age_ms: Option<u64>,
    /// Dead letters of this group in the stream's dead-letter stream over the last
    /// [`SLOTS`] minutes.
    pub dead_letters_window: u64,
}

impl GroupQueue {
    /// Pending plus lag: what the group still has to finish.
    pub fn queue_depth(&self) -> u64 {
        self.pending + self.lag.unwrap_or(0)
    }

    /// Dead letters per minute over the window.
    pub fn dead_letters_per_minute(&self) -> f64 {
        self.dead_letters_window as f64 / SLOTS as f64
    }
}

/// Reads the figures of `streams` (names without prefix).
pub async fn read(
    conn: &mut Conn,
    keys: &Keys,
    streams: &[&str],
) -> Result<QueueFigures, QueueError> {
    let time: (String, String) = redis::cmd("TIME").query_async(conn).await?;
    let now_ms =
        time.0.parse::<i64>().unwrap_or(0) * 1000 + time.1.parse::<i64>().unwrap_or(0) / 1000;
    let mut out = Vec::with_capacity(streams.len());
    for name in streams {
        out.push(stream(conn, keys, name, now_ms).await?);
    }
    Ok(QueueFigures {
        redis_time_ms: now_ms,
        streams: out,
    })
}

/// One logical stream: itself, or its partitions summed.
async fn stream(
    conn: &mut Conn,
    keys: &Keys,
    name: &str,
    now_ms: i64,
) -> Result<StreamQueue, QueueError> {
    let mut parts = Vec::new();
    for p in keys.partitions(name) {
        parts.push(one(conn, keys, &p, now_ms).await?);
    }
    Ok(merge(name, parts))
}

/// The partitions of one stream as one: lengths, pending, lag (unknown if unknown
/// anywhere), entries read and recent dead letters add up; consumers is the most
/// of any partition (a worker reads every partition under one name); the oldest
/// pending entry is the oldest of all; the last delivered id is the newest (ids of
/// different partitions compare by time only).
fn merge(name: &str, parts: Vec<StreamQueue>) -> StreamQueue {
    let mut out = StreamQueue {
        stream: name.to_owned(),
        length: 0,
        groups: Vec::new(),
    };
    let mut first = true;
    for p in parts {
        out.length += p.length;
        for g in p.groups {
            let Some(m) = out.groups.iter_mut().find(|m| m.group == g.group) else {
                // A group missing from an earlier partition knows nothing of it.
                let mut g = g;
                if !first {
                    g.lag = None;
                }
                out.groups.push(g);
                continue;
            };
            m.consumers = m.consumers.max(g.consumers);
            m.pending += g.pending;
            m.lag = m.lag.zip(g.lag).map(|(a, b)| a + b);
            m.entries_read = m.entries_read.zip(g.entries_read).map(|(a, b)| a + b);
            m.dead_letters_window += g.dead_letters_window;
            if g.last_delivered_id.as_deref().and_then(id_ms)
                > m.last_delivered_id.as_deref().and_then(id_ms)
            {
                m.last_delivered_id = g.last_delivered_id;
            }
            let older = match (g.oldest_pending_age_ms, m.oldest_pending_age_ms) {
                (Some(a), Some(b)) => a > b,
                (Some(_), None) => true,
                _ => false,
            };
            if older {
                m.oldest_pending_id = g.oldest_pending_id;
                m.oldest_pending_age_ms = g.oldest_pending_age_ms;
            }
        }
        first = false;
    }
    out.groups.sort_by(|a, b| a.group.cmp(&b.group));
    out
}

/// One Redis stream (a partition's name on a partitioned stream).
async fn one(
    conn: &mut Conn,
    keys: &Keys,
    name: &str,
    now_ms: i64,
) -> Result<StreamQueue, QueueError> {
    let key = keys.stream(name);
    let length: u64 = redis::cmd("XLEN").arg(&key).query_async(conn).await?;
    let mut s = StreamQueue {
        stream: name.to_owned(),
        length,
        groups: Vec::new(),
    };
    let groups: Vec<Value> = match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&key)
        .query_async(conn)
        .await
    {
        Ok(v) => v,
        Err(e) if e.to_string().contains("no such key") => return Ok(s),
        Err(e) => return Err(e.into()),
    };
    for g in groups {
        let mut q = GroupQueue::default();
        for (k, v) in pairs(g) {
            match k.as_str() {
                "name" => q.group = text(&v).unwrap_or_default(),
                "consumers" => q.consumers = uint(&v).unwrap_or(0),
                "lag" => q.lag = uint(&v),
                "entries-read" => q.entries_read = uint(&v),
                "last-delivered-id" => q.last_delivered_id = text(&v),
                _ => {}
            }
        }
        let summary: Value = redis::cmd("XPENDING")
            .arg(&key)
            .arg(&q.group)
            .query_async(conn)
            .await?;
        if let Value::Array(parts) = summary {
            q.pending = parts.first().and_then(uint).unwrap_or(0);
            q.oldest_pending_id = parts.get(1).and_then(text);
        }
        q.oldest_pending_age_ms = q
            .oldest_pending_id
            .as_deref()
            .and_then(id_ms)
            .map(|ms| now_ms.saturating_sub(ms).max(0) as u64);
        s.groups.push(q);
    }
    s.groups.sort_by(|a, b| a.group.cmp(&b.group));
    if !s.groups.is_empty() {
        count_dead_letters(conn, &keys.dlq(name), now_ms, &mut s.groups).await?;
    }
    Ok(s)
}

/// Counts the dead letters of the window per group (`dlq_group` of each letter).
async fn count_dead_letters(
    conn: &mut Conn,
    dlq_key: &str,
    now_ms: i64,
    groups: &mut [GroupQueue],
) -> Result<(), QueueError> {
    let since = now_ms - (SLOT.as_millis() as i64) * SLOTS as i64;
    let v: Value = redis::cmd("XRANGE")
        .arg(dlq_key)
        .arg(since.max(0))
        .arg("+")
        .arg("COUNT")
        .arg(MAX_DEAD_LETTERS_READ)
        .query_async(conn)
        .await?;
    for e in strategist_actors::redis_io::parse_entries(v) {
        let group = e.pairs().find(|(k, _)| *k == "dlq_group").map(|(_, v)| v);
        if let Some(g) = groups
            .iter_mut()
            .find(|g| Some(g.group.as_bytes()) == group)
        {
            g.dead_letters_window += 1;
        }
    }
    Ok(())
}

/// A reply value as a count (negative counts are none).
fn uint(v: &Value) -> Option<u64> {
    int(v).and_then(|i| u64::try_from(i).ok())
}

/// The time part of an entry id, ms since the epoch.
fn id_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_from_either_protocol() {
        let flat = Value::Array(vec![
            Value::BulkString(b"lag".to_vec()),
            Value::Int(3),
            Value::SimpleString("name".into()),
            Value::BulkString(b"g".to_vec()),
        ]);
        let p = pairs(flat);
        assert_eq!(p.len(), 2);
        assert_eq!(uint(&p[0].1), Some(3));
        assert_eq!(text(&p[1].1).as_deref(), Some("g"));
        assert_eq!(uint(&Value::Nil), None);
        assert_eq!(uint(&Value::Int(-1)), None);
        assert_eq!(id_ms("1764417600123-7"), Some(1_764_417_600_123));
    }

    #[test]
    fn partitions_add_up_to_their_stream() {
        let g = |pending, lag, oldest: Option<u64>| GroupQueue {
            group: "g".into(),
            consumers: 1,
            pending,
            lag,
            oldest_pending_age_ms: oldest,
            oldest_pending_id: oldest.map(|a| format!("{a}-0")),
            last_delivered_id: Some("5-0".into()),
            ..GroupQueue::default()
        };
        let part = |length, groups| StreamQueue {
            stream: "s:n".into(),
            length,
            groups,
        };
        let m = merge(
            "s",
            vec![
                part(10, vec![g(1, Some(2), Some(100))]),
                part(20, vec![g(3, Some(4), Some(900))]),
                part(0, vec![g(0, Some(0), None)]),
            ],
        );
        assert_eq!((m.stream.as_str(), m.length), ("s", 30));
        let q = &m.groups[0];
        assert_eq!((q.pending, q.lag, q.consumers), (4, Some(6), 1));
        assert_eq!(q.oldest_pending_age_ms, Some(900));
        assert_eq!(q.queue_depth(), 10);
        // Unknown lag on one partition: unknown for the stream.
        let m = merge(
            "s",
            vec![
                part(1, vec![g(1, None, None)]),
                part(1, vec![g(1, Some(2), None)]),
            ],
        );
        assert_eq!(m.groups[0].lag, None);
    }

    #[test]
    fn depth_is_pending_plus_lag() {
        let g = GroupQueue {
            pending: 2,
            lag: Some(5),
            dead_letters_window: 10,
            ..GroupQueue::default()
        };
        assert_eq!(g.queue_depth(), 7);
        assert_eq!(g.dead_letters_per_minute(), 2.0);
        let unknown = GroupQueue {
            pending: 2,
            lag: None,
            ..GroupQueue::default()
        };
        assert_eq!(unknown.queue_depth(), 2);
    }
}
