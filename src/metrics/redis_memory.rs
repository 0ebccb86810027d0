//! Redis's memory against its `maxmemory`, for the metrics: at the limit, under the
//! default `noeviction` policy, Redis refuses every write that adds memory
//! (publishes answer 503 `redis_full`), so an operator wants to see it coming.
//!
//! Invariants: on a cluster every master answers `INFO memory` and the fullest one
//! is reported (the first to refuse writes, for the streams in its slots); a server
//! without a limit reports `max_bytes = 0` and no ratio; a reply that cannot be read
//! gives no figures rather than an error, so the metrics never fail on it.

use redis::Value;
use serde::Serialize;
use strategist_actors::Conn;
use strategist_actors::redis_io::text;

/// Memory of the fullest Redis server (the only one, off a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RedisMemory {
    /// `used_memory`.
    pub used_bytes: u64,
    /// `maxmemory`; 0 = no limit.
    pub max_bytes: u64,
    /// `used / max` (null without a limit).
    pub used_ratio: Option<f64>,
}

impl RedisMemory {
    /// The figures of one node's `INFO memory` text.
    ///
    /// ```
    /// use strategist::metrics::redis_memory::RedisMemory;
    /// let m = RedisMemory::parse("# Memory\r\nused_memory:750\r\nmaxmemory:1000\r\n").unwrap();
    /// assert_eq!(m.used_ratio, Some(0.75));
    /// ```
    pub fn parse(info: &str) -> Option<RedisMemory> {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let used_bytes = field("used_memory")?;
        let max_bytes = field("maxmemory").unwrap_or(0);
        Some(RedisMemory {
            used_bytes,
            max_bytes,
            used_ratio: (max_bytes > 0).then(|| used_bytes as f64 / max_bytes as f64),
        })
    }

    /// The fuller of two: a limited node by its ratio before any unlimited one.
    fn fuller(self, other: RedisMemory) -> RedisMemory {
        let key = |m: &RedisMemory| (m.used_ratio.is_some(), m.used_ratio.unwrap_or(0.0));
        if key(&other) > key(&self) {
            other
        } else {
            self
        }
    }
}

/// Reads `INFO memory` now; `None` when Redis does not answer it readably.
pub async fn read(conn: &mut Conn) -> Option<RedisMemory> {
    let reply: Value = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .inspect_err(|e| tracing::debug!(error = %e, "no INFO memory"))
        .ok()?;
    match reply {
        // A cluster answers per master.
        Value::Map(nodes) => nodes
            .iter()
            .filter_map(|(_, v)| RedisMemory::parse(&text(v)?))
            .reduce(RedisMemory::fuller),
        other => RedisMemory::parse(&text(&other)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fullest_limited_node_wins() {
        let a = RedisMemory::parse("used_memory:900\nmaxmemory:0\n").unwrap();
        let b = RedisMemory::parse("used_memory:500\nmaxmemory:1000\n").unwrap();
        let c = RedisMemory::parse("used_memory:800\nmaxmemory:1000\n").unwrap();
        assert_eq!(a.used_ratio, None);
        assert_eq!(a.fuller(b), b);
        assert_eq!(b.fuller(c), c);
        assert_eq!(c.fuller(b), c);
        // `used_memory_rss` and friends are not `used_memory`.
        let d = RedisMemory::parse("used_memory_rss:5\nused_memory:7\n").unwrap();
        assert_eq!(d.used_bytes, 7);
        assert!(RedisMemory::parse("# Memory\n").is_none());
    }
}
