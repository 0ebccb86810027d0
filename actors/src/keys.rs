//! Redis key names. Every key that belongs to one stream carries the stream's key in
//! a hash tag (`{<stream>}.suffix`), so it lives in the stream's Redis Cluster slot and
//! a Lua script may touch both atomically.
//!
//! A partitioned stream (see [`crate::partition`]) is `N` streams named
//! `<stream>:<n>`; every key of a partition is built from that name, so
//! `{<prefix><stream>:<n>}.dlq` shares the partition's slot. [`Keys`] knows the
//! partition count of each stream; a stream it was not told about has one
//! partition and keeps its plain key.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::partition::{self, PartitionError};

/// Builds every key the engine uses from a stream name and the configured prefix.
///
/// ```
/// use strategist_actors::Keys;
/// let k = Keys::new("tenant1:");
/// assert_eq!(k.stream("ai.events"), "tenant1:ai.events");
/// assert_eq!(k.dlq("ai.events"), "{tenant1:ai.events}.dlq");
/// assert_eq!(k.retry("ai.events", "g"), "{tenant1:ai.events}.retry:g");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    /// Streams split into more than one partition, and into how many.
    partitions: Arc<BTreeMap<String, u32>>,
}

impl Keys {
    /// Keys under `prefix` (empty for none).
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
            partitions: Arc::default(),
        }
    }

    /// The same keys with `stream` split into `n` partitions (1: not split). Refuses
    /// 0, more than [`partition::MAX_PARTITIONS`], and a split stream whose name
    /// ends in `:<digits>`.
    ///
    /// ```
    /// use strategist_actors::Keys;
    /// let k = Keys::new("p:").with_partitions("user.events", 4).unwrap();
    /// assert_eq!(k.partitions("user.events"), ["user.events:0", "user.events:1", "user.events:2", "user.events:3"]);
    /// assert_eq!(k.dlq("user.events:2"), "{p:user.events:2}.dlq");
    /// assert_eq!(k.partitions("ai.events"), ["ai.events"]);
    /// assert!(Keys::default().with_partitions("s", 0).is_err());
    /// ```
    pub fn with_partitions(mut self, stream: &str, n: u32) -> Result<Self, PartitionError> {
        partition::check(stream, u64::from(n))?;
        let map = Arc::make_mut(&mut self.partitions);
        if n > 1 {
            map.insert(stream.to_owned(), n);
        } else {
            map.remove(stream);
        }
        Ok(self)
    }

    /// How many partitions `stream` has (1 when it is not split).
    pub fn partition_count(&self, stream: &str) -> u32 {
        self.partitions.get(stream).copied().unwrap_or(1)
    }

    /// The Redis stream names (without prefix) that make up `stream`: itself, or
    /// `<stream>:0` to `<stream>:<N-1>`.
    pub fn partitions(&self, stream: &str) -> Vec<String> {
        match self.partition_count(stream) {
            1 => vec![stream.to_owned()],
            n => (0..n)
                .map(|i| partition::partition_name(stream, i))
                .collect(),
        }
    }

    /// Every split stream and its partition count.
    pub fn partitioned(&self) -> impl Iterator<Item = (&str, u32)> {
        self.partitions.iter().map(|(s, n)| (s.as_str(), *n))
    }

    /// The logical stream and partition of a Redis stream name (without prefix):
    /// `("user.events", Some(2))` for `user.events:2` when `user.events` is split
    /// into more than 2, else the name itself and `None`.
    pub fn logical<'a>(&self, name: &'a str) -> (&'a str, Option<u32>) {
        match partition::split_name(name) {
            Some((stream, n)) if n < self.partition_count(stream) => (stream, Some(n)),
            _ => (name, None),
        }
    }

    /// The Redis stream name (without prefix) an event goes to: `stream` itself
    /// when it is not split, else the partition of `key` (the ordering-key value,
    /// or the event id for events without one). A name that is already one of
    /// `stream`'s partitions is kept.
    pub fn route(&self, stream: &str, key: &[u8]) -> String {
        if self.logical(stream).1.is_some() {
            return stream.to_owned();
        }
        match self.partition_count(stream) {
            1 => stream.to_owned(),
            n => partition::partition_name(stream, partition::partition_of(key, n)),
        }
    }

    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream's own key.
    pub fn stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    /// The stream's dead-letter stream.
    pub fn dlq(&self, stream: &str) -> String {
        format!("{{{}{stream}}}.dlq", self.prefix)
    }

    /// The retry schedule of one group on one stream: a sorted set of entry ids
    /// scored by the time (ms since the epoch) they are due again.
    pub fn retry(&self, stream: &str, group: &str) -> String {
        format!("{{{}{stream}}}.retry:{group}", self.prefix)
    }

    /// The stream through which dead letters go back to the one group that failed
    /// them; only that group reads it.
    pub fn redeliver(&self, stream: &str, group: &str) -> String {
        format!("{{{}{stream}}}.redeliver:{group}", self.prefix)
    }

    /// The retry schedule of a group's redelivery stream.
    pub fn redeliver_retry(&self, stream: &str, group: &str) -> String {
        format!("{{{}{stream}}}.redeliver-retry:{group}", self.prefix)
    }

    /// The audit trail of what was done to dead letters (dropped, resolved).
    pub fn audit(&self, stream: &str) -> String {
        format!("{{{}{stream}}}.dlq.audit", self.prefix)
    }

    /// The publish de-duplication marker of one event id on one stream.
    pub fn dedupe(&self, stream: &str, event_id: &str) -> String {
        format!("{{{}{stream}}}.seen:{event_id}", self.prefix)
    }
}

/// The one Redis Cluster hash slot rule we rely on: keys built by [`Keys`] for one
/// stream hash to the same slot as the stream itself.
#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str) -> &str {
        match (key.find('{'), key.find('}')) {
            (Some(a), Some(b)) if b > a + 1 => &key[a + 1..b],
            _ => key,
        }
    }

    #[test]
    fn stream_keys_share_a_slot() {
        let k = Keys::new("p:");
        let s = k.stream("user.events");
        assert_eq!(tag(&k.dlq("user.events")), s);
        assert_eq!(tag(&k.retry("user.events", "g")), s);
        assert_eq!(tag(&k.dedupe("user.events", "id")), s);
        assert_eq!(tag(&k.redeliver("user.events", "g")), s);
        assert_eq!(tag(&k.redeliver_retry("user.events", "g")), s);
        assert_eq!(tag(&k.audit("user.events")), s);
    }

    #[test]
    fn each_partition_has_its_own_slot_tag() {
        let k = Keys::new("p:").with_partitions("user.events", 4).unwrap();
        let tags: Vec<String> = k
            .partitions("user.events")
            .iter()
            .map(|p| tag(&k.dlq(p)).to_owned())
            .collect();
        assert_eq!(tags[2], "p:user.events:2");
        assert_eq!(tags[2], k.stream("user.events:2"));
        assert_eq!(tag(&k.retry("user.events:2", "g")), "p:user.events:2");
        let mut unique = tags.clone();
        unique.dedup();
        assert_eq!(unique.len(), 4);
    }

    #[test]
    fn names_map_back_to_their_stream() {
        let k = Keys::default().with_partitions("user.events", 4).unwrap();
        assert_eq!(k.logical("user.events:3"), ("user.events", Some(3)));
        assert_eq!(k.logical("user.events:4"), ("user.events:4", None));
        assert_eq!(k.logical("ai.events"), ("ai.events", None));
        assert_eq!(k.route("ai.events", b"x"), "ai.events");
        assert_eq!(k.route("user.events:1", b"x"), "user.events:1");
        let r = k.route("user.events", b"user-1");
        assert_eq!(r, k.route("user.events", b"user-1"));
        assert!(k.partitions("user.events").contains(&r));
        // Back to one partition: plain names again.
        let one = k.with_partitions("user.events", 1).unwrap();
        assert_eq!(one.partitions("user.events"), ["user.events"]);
    }
}
