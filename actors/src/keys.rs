//! Redis key names. Every key that belongs to one stream carries the stream's key in
//! a hash tag (`{<stream>}.suffix`), so it lives in the stream's Redis Cluster slot and
//! a Lua script may touch both atomically.

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
}

impl Keys {
    /// Keys under `prefix` (empty for none).
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
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
}
