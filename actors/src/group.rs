//! The Redis side of one consumer group as its router uses it: read, ack, schedule
//! a retry, dead-letter, claim, refresh leases, retire consumers. Every Lua script
//! it runs is beside it in `scripts/`.
//!
//! This is the seam a Redis Cluster backend implements: each call names only keys
//! of one stream (the stream and its `{stream}` companions share a hash slot), and
//! the blocking read runs on a connection of its own.
//!
//! Invariants: a retry time is written to the group's schedule only for an entry
//! left pending; a dead letter is written and acked in one script, and only by the
//! entry's current owner; a lease refresh never takes an entry from another owner.

use std::sync::{Arc, LazyLock};

use crate::conn::Conn;
use redis::{RedisResult, Value};

use crate::redis_io::{self, Claimed, Entry};

static CLAIM: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/claim.lua")));
static DEAD_LETTER: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/dead_letter.lua")));
static RETIRE_CONSUMERS: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/retire_consumers.lua")));
static REFRESH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/refresh.lua")));

/// Most pending entries one claim call looks at per source.
pub(crate) const CLAIM_SCAN: usize = 200;

/// One stream a router reads: the main stream, or its group's redelivery stream.
pub(crate) struct Source {
    pub(crate) key: String,
    /// The group's retry schedule for entries of this stream.
    pub(crate) retry_key: String,
}

/// The names one group's calls use.
pub(crate) struct GroupKeys {
    /// `sources[0]` is the stream itself; `sources[1]` the group's redelivery stream.
    pub(crate) sources: Vec<Source>,
    pub(crate) dlq_key: String,
    pub(crate) group: String,
    /// `<host>-<pid>-<pool>`: worker `n`'s consumer is `<consumer_prefix>-<n>`.
    pub(crate) consumer_prefix: String,
    pub(crate) dlq_maxlen: u64,
}

impl GroupKeys {
    /// The consumer name of worker `n`: every worker owns what it runs in Redis,
    /// so `XINFO CONSUMERS` shows who holds what.
    pub(crate) fn consumer(&self, n: usize) -> String {
        format!("{}-{n}", self.consumer_prefix)
    }

    /// Which source an entry came from (by the key it was read from).
    pub(crate) fn source_of(&self, key: &str) -> usize {
        self.sources.iter().position(|s| s.key == key).unwrap_or(0)
    }
}

/// One group's calls on one connection. Cheap to clone: each call takes a clone so
/// its future owns what it needs.
#[derive(Clone)]
pub(crate) struct GroupBackend {
    conn: Conn,
    pub(crate) keys: Arc<GroupKeys>,
}

impl GroupBackend {
    pub(crate) fn new(conn: Conn, keys: Arc<GroupKeys>) -> Self {
        GroupBackend { conn, keys }
    }

    /// The same group on another connection (the lease keeper's own).
    pub(crate) fn on(&self, conn: Conn) -> Self {
        GroupBackend {
            conn,
            keys: self.keys.clone(),
        }
    }

    /// Creates the group on every source unless it exists. The redelivery stream
    /// holds only what was sent back on purpose: always read from its start.
    pub(crate) async fn ensure(mut self, from_start: bool) -> RedisResult<()> {
        for (i, src) in self.keys.sources.iter().enumerate() {
            redis_io::ensure_group(
                &mut self.conn,
                &src.key,
                &self.keys.group,
                from_start || i > 0,
            )
            .await?;
        }
        Ok(())
    }

    /// Reads new entries from every source on the router's own connection, for
    /// each `(worker, count)` asked, as that worker's consumer. One ask may block up
    /// to `block_ms`; several go in one pipeline without blocking (a backlog is
    /// there to be shared out). Returns what each worker got.
    pub(crate) async fn read(
        &self,
        mut reader: Conn,
        asks: &[(usize, usize)],
        block_ms: Option<u64>,
    ) -> RedisResult<Vec<(usize, Vec<Entry>)>> {
        let k = &self.keys;
        let read_cmd = |worker: usize, count: usize| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&k.group)
                .arg(k.consumer(worker))
                .arg("COUNT")
                .arg(count);
            if let Some(ms) = block_ms {
                cmd.arg("BLOCK").arg(ms);
            }
            cmd.arg("STREAMS");
            for src in &k.sources {
                cmd.arg(&src.key);
            }
            for _ in &k.sources {
                cmd.arg(">");
            }
            cmd
        };
        if let [(worker, count)] = asks {
            let v = read_cmd(*worker, *count)
                .query_async::<Value>(&mut reader)
                .await?;
            return Ok(vec![(*worker, redis_io::parse_stream_reply(v))]);
        }
        let mut pipe = redis::pipe();
        for (worker, count) in asks {
            pipe.add_command(read_cmd(*worker, *count));
        }
        let replies: Vec<Value> = pipe.query_async(&mut reader).await?;
        Ok(asks
            .iter()
            .zip(replies)
            .map(|((w, _), v)| (*w, redis_io::parse_stream_reply(v)))
            .collect())
    }

    /// Acks `(source, id)` pairs in one round trip; how many Redis acked.
    pub(crate) async fn ack(mut self, batch: &[(usize, String)]) -> RedisResult<u64> {
        let mut pipe = redis::pipe();
        for (i, src) in self.keys.sources.iter().enumerate() {
            let ids: Vec<&String> = batch
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|(_, id)| id)
                .collect();
            if !ids.is_empty() {
                pipe.cmd("XACK")
                    .arg(&src.key)
                    .arg(&self.keys.group)
                    .arg(ids);
            }
        }
        let n: Vec<u64> = pipe.query_async(&mut self.conn).await?;
        Ok(n.iter().sum())
    }

    /// Writes when an entry left pending runs again.
    pub(crate) async fn retry_at(
        mut self,
        source: usize,
        id: String,
        due_ms: i64,
    ) -> RedisResult<()> {
        redis::cmd("ZADD")
            .arg(&self.keys.sources[source].retry_key)
            .arg(due_ms)
            .arg(&id)
            .query_async::<()>(&mut self.conn)
            .await
    }

    /// Copies the entry with `letter` (the `dlq_*` fields) to the dead letters and
    /// acks it, atomically; `None` when worker `owner`'s consumer does not own it
    /// (any more).
    pub(crate) async fn dead_letter(
        mut self,
        source: usize,
        owner: usize,
        entry: &Entry,
        letter: &[(&'static str, String)],
    ) -> RedisResult<Option<String>> {
        let k = &self.keys;
        let src = &k.sources[source];
        let mut inv = DEAD_LETTER.prepare_invoke();
        inv.key(&src.key).key(&k.dlq_key).key(&src.retry_key);
        inv.arg(&k.group)
            .arg(&entry.id)
            .arg(k.dlq_maxlen)
            .arg(k.consumer(owner));
        for (f, v) in &entry.fields {
            if !f.starts_with("dlq_") {
                inv.arg(f).arg(v.as_slice());
            }
        }
        for (f, v) in letter {
            inv.arg(*f).arg(v);
        }
        inv.invoke_async(&mut self.conn).await
    }

    /// Takes due retries and entries of silent consumers, up to `room`, from every
    /// source, each scan going on from its cursor, for worker `owner`'s consumer.
    pub(crate) async fn claim(
        mut self,
        owner: usize,
        cursors: Vec<String>,
        room: usize,
        min_idle_ms: u64,
        now_ms: i64,
    ) -> RedisResult<Vec<Claimed>> {
        let mut out = Vec::new();
        let me = self.keys.consumer(owner);
        for (src, cursor) in self.keys.sources.iter().zip(cursors) {
            let mut inv = CLAIM.prepare_invoke();
            inv.key(&src.key).key(&src.retry_key);
            inv.arg(&self.keys.group)
                .arg(&me)
                .arg(min_idle_ms)
                .arg(room)
                .arg(now_ms)
                .arg(cursor)
                .arg(CLAIM_SCAN);
            let v: Value = inv.invoke_async(&mut self.conn).await?;
            let mut c = redis_io::parse_claim(v);
            for e in &mut c.entries {
                e.key.clone_from(&src.key);
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Resets the idle time of the given entries of `source` that worker
    /// `owner`'s consumer still owns; returns those it does not own any more.
    pub(crate) async fn refresh(
        mut self,
        source: usize,
        owner: usize,
        ids: Vec<String>,
    ) -> RedisResult<Vec<String>> {
        let mut inv = REFRESH.prepare_invoke();
        inv.key(&self.keys.sources[source].key)
            .arg(&self.keys.group)
            .arg(self.keys.consumer(owner));
        for id in &ids {
            inv.arg(id);
        }
        inv.invoke_async(&mut self.conn).await
    }

    /// Removes consumers silent for `min_idle_ms` that own nothing; their names.
    pub(crate) async fn retire(mut self, min_idle_ms: u64) -> RedisResult<Vec<String>> {
        let mut gone = Vec::new();
        for src in &self.keys.sources {
            let mut inv = RETIRE_CONSUMERS.prepare_invoke();
            inv.key(&src.key).arg(&self.keys.group).arg(min_idle_ms);
            gone.extend(inv.invoke_async::<Vec<String>>(&mut self.conn).await?);
        }
        Ok(gone)
    }

    /// Wakes the connection with `CLIENT ID` `reader_id` from a blocked read.
    /// On a cluster it goes to the node that serves the stream, where the reader
    /// waits.
    pub(crate) async fn unblock(mut self, reader_id: i64) -> RedisResult<i64> {
        let v = self
            .conn
            .on_node_of(
                &self.keys.sources[0].key,
                redis::cmd("CLIENT").arg("UNBLOCK").arg(reader_id),
            )
            .await?;
        Ok(redis::from_redis_value(v)?)
    }
}
