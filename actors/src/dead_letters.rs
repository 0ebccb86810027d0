//! The dead-letter admin (the design's `reprocessDeadLetter` and its kin): list,
//! show, reprocess and purge the entries of `{<stream>}.dlq`.
//!
//! A dead letter's id is `<stream>:<entry id in the dead-letter stream>`, e.g.
//! `ai.events:1732881600000-0`. Reprocessing sends the original fields to the
//! redelivery stream of the one group that failed it (no other group sees it again),
//! as a new entry, so its attempts start from one; it also counts the times in the
//! field `reprocessed`. Purging removes it and records what was removed in
//! `{<stream>}.dlq.audit`. Each of these is one atomic step. Every audit record
//! names the dead letter (`dlq_id` for a purge, `dlq_entry_id` for a reprocess) and
//! carries its `dlq_*` and original fields, so the record alone can rebuild it
//! ([`audit_record`] reads one back).
//!
//! Partitions: each partition of a split stream has its own dead letters,
//! `{<stream>:<n>}.dlq` (written in one script with the ack, in the partition's
//! slot). Their ids name the partition (`user.events:2:1732881600000-0`), so
//! reprocessing goes back to that partition's redelivery stream for the group;
//! [`DeadLetterEntry::stream`] is the logical stream and
//! [`DeadLetterEntry::partition`] the partition. A filter on a logical stream
//! covers all its partitions.
//!
//! This file is the dead-letter contract in one place: the reasons
//! ([`DeadLetterReason`], parsed at the edge), the `dlq_*` fields written
//! (`letter_fields`, the encoder) beside the ones read (`to_entry`, the decoder).

use std::collections::BTreeMap;
use std::fmt;

use crate::conn::Conn;
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::keys::Keys;
use crate::redis_io::{self, REDELIVER};

/// Why an entry went to the dead letters: the contract's `dlq_reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The handler failed on its last attempt, or failed permanently.
    HandlerFailed,
    /// The entry is not a valid event (missing field, bad JSON, payload off schema).
    InvalidEvent,
    /// The event's version has no upcaster to the current one.
    UnknownVersion,
    /// The entry was delivered more often than allowed.
    MaxDeliveries,
    /// The handler panicked on its last attempt.
    Panicked,
    /// The handler ran past its timeout on its last attempt.
    Timeout,
}

impl DeadLetterReason {
    /// The wire value (`handler_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::HandlerFailed => "handler_failed",
            DeadLetterReason::InvalidEvent => "invalid_event",
            DeadLetterReason::UnknownVersion => "unknown_version",
            DeadLetterReason::MaxDeliveries => "max_deliveries",
            DeadLetterReason::Panicked => "panicked",
            DeadLetterReason::Timeout => "timeout",
        }
    }

    /// Parses a wire value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "handler_failed" => DeadLetterReason::HandlerFailed,
            "invalid_event" => DeadLetterReason::InvalidEvent,
            "unknown_version" => DeadLetterReason::UnknownVersion,
            "max_deliveries" => DeadLetterReason::MaxDeliveries,
            "panicked" => DeadLetterReason::Panicked,
            "timeout" => DeadLetterReason::Timeout,
            _ => return None,
        })
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry that has just been moved to a dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The stream it came from (without prefix; the logical one).
    pub stream: String,
    /// The partition it came from, on a partitioned stream.
    pub partition: Option<u32>,
    /// The group that gave up on it.
    pub group: String,
    /// Its id in the original stream.
    pub original_id: String,
    /// Its id in the dead-letter stream.
    pub dlq_id: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// The last error, readable.
    pub error: String,
    /// Deliveries it had.
    pub attempts: u32,
    /// The event, when the entry decoded as one.
    pub envelope: Option<Envelope>,
}

impl DeadLetter {
    /// Its admin id (see [`DeadLetterEntry::id`]): `<stream>[:<partition>]:<dlq id>`.
    pub fn id(&self) -> String {
        match self.partition {
            Some(n) => format!("{}:{n}:{}", self.stream, self.dlq_id),
            None => format!("{}:{}", self.stream, self.dlq_id),
        }
    }
}

/// One dead letter as the admin sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterEntry {
    /// `<stream>:<dead-letter entry id>`; on a partitioned stream
    /// `<stream>:<partition>:<dead-letter entry id>`.
    pub id: String,
    /// The stream it came from (the logical one).
    pub stream: String,
    /// The partition it came from, on a partitioned stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The event's own id, when the entry had one.
    pub event_id: Option<String>,
    /// The event's type, when the entry had one.
    pub event_type: Option<String>,
    /// `dlq_reason`.
    pub reason: String,
    /// `dlq_error`.
    pub error: String,
    /// `dlq_group`: the group that failed it.
    pub group: String,
    /// `dlq_attempts`.
    pub attempts: u32,
    /// `dlq_original_id`: its entry id in the original stream.
    pub original_id: String,
    /// `dlq_at`.
    pub at: String,
    /// Times it was sent back before.
    pub reprocessed: u32,
    /// The original fields, as written by the producer.
    pub fields: BTreeMap<String, String>,
}

/// Which dead letters an operation applies to; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this stream (every partition of it), or only this partition
    /// (`<stream>:<n>`).
    pub stream: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this reason (`handler_failed`, ...).
    pub reason: Option<String>,
    /// Only this group.
    pub group: Option<String>,
}

impl DeadLetterEntry {
    /// Its entry id in the dead-letter stream (the part of [`Self::id`] after the
    /// stream).
    pub fn entry_id(&self) -> &str {
        self.id.rsplit_once(':').map_or("", |(_, e)| e)
    }
}

impl DeadLetterFilter {
    fn matches(&self, e: &DeadLetterEntry) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|t| e.event_type.as_ref() == Some(t))
            && self.reason.as_ref().is_none_or(|r| *r == e.reason)
            && self.group.as_ref().is_none_or(|g| *g == e.group)
    }
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The id is not `<stream>:<entry id>` of a known stream (or partition).
    #[error(
        "`{0}` is not a dead-letter id (expected <stream>:<entry id>, e.g. ai.events:1732881600000-0)"
    )]
    BadId(String),
    /// No such dead letter.
    #[error("no dead letter `{0}`")]
    NotFound(String),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Admin access to the dead letters of a set of streams.
///
/// ```no_run
/// # async fn demo(conn: redis::aio::ConnectionManager) -> Result<(), strategist_actors::DeadLetterError> {
/// use strategist_actors::{DeadLetters, DeadLetterFilter, Keys};
/// let dl = DeadLetters::new(conn, Keys::default(), vec!["ai.events".into()]);
/// let timeouts = DeadLetterFilter { reason: Some("timeout".into()), ..Default::default() };
/// let n = dl.reprocess_matching(&timeouts, "operator").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    conn: Conn,
    keys: Keys,
    streams: Vec<String>,
}

impl DeadLetters {
    /// Dead letters of `streams` (logical names: a partitioned stream's
    /// partitions are all included, as `keys` knows them).
    pub fn new(conn: impl Into<Conn>, keys: Keys, streams: Vec<String>) -> Self {
        let conn = conn.into();
        let streams = streams.iter().flat_map(|s| keys.partitions(s)).collect();
        DeadLetters {
            conn,
            keys,
            streams,
        }
    }

    fn streams_for<'a>(&'a self, f: &'a DeadLetterFilter) -> Vec<&'a str> {
        let Some(s) = f.stream.as_deref() else {
            return self.streams.iter().map(String::as_str).collect();
        };
        // The stream itself, or every partition of it, or just the one named.
        let mine: Vec<&str> = self
            .streams
            .iter()
            .map(String::as_str)
            .filter(|n| *n == s || self.keys.logical(n).0 == s)
            .collect();
        if mine.is_empty() { vec![s] } else { mine }
    }

    /// The Redis streams (without prefix) whose dead letters this reads: each
    /// stream's own name, or each of its partitions' names (`user.events:2`).
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The Redis stream (without prefix, a partition's name on a partitioned
    /// stream) of a dead-letter id; refuses an id that is not well formed or names
    /// a stream this does not read.
    pub fn stream_of_id<'a>(&self, id: &'a str) -> Result<&'a str, DeadLetterError> {
        self.parse_id(id).map(|(s, _)| s)
    }

    /// Sets the logical stream and the partition of an entry read from `name`.
    fn placed(&self, mut d: DeadLetterEntry) -> DeadLetterEntry {
        let (stream, partition) = self.keys.logical(&d.stream);
        d.stream = stream.to_owned();
        d.partition = partition;
        d
    }

    /// One page of `stream`'s dead letters (a name of [`Self::streams`]: on a
    /// partitioned stream, one partition's), oldest first: at most `limit` whose
    /// entry id is after `after` (`-` for the start). The next page starts after the
    /// last one's [`DeadLetterEntry::entry_id`].
    pub async fn page(
        &self,
        stream: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetterEntry>, DeadLetterError> {
        let start = if after == "-" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(self.keys.dlq(stream))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(redis_io::parse_entries(v)
            .into_iter()
            .map(|e| self.placed(to_entry(stream, e)))
            .collect())
    }

    /// Dead letters matching `filter`, oldest first, at most `limit`.
    pub async fn list(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetterEntry>, DeadLetterError> {
        let mut out = Vec::new();
        let mut conn = self.conn.clone();
        for stream in self.streams_for(filter) {
            let key = self.keys.dlq(stream);
            let mut start = "-".to_owned();
            loop {
                let v: redis::Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await?;
                let page = redis_io::parse_entries(v);
                let Some(last) = page.last() else { break };
                start = format!("({}", last.id);
                let full = page.len() == 500;
                for e in page {
                    let d = self.placed(to_entry(stream, e));
                    if filter.matches(&d) {
                        out.push(d);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                if !full {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One dead letter by id.
    pub async fn get(&self, id: &str) -> Result<DeadLetterEntry, DeadLetterError> {
        let (stream, entry) = self.parse_id(id)?;
        let mut conn = self.conn.clone();
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(self.keys.dlq(stream))
            .arg(entry)
            .arg(entry)
            .query_async(&mut conn)
            .await?;
        redis_io::parse_entries(v)
            .into_iter()
            .next()
            .map(|e| self.placed(to_entry(stream, e)))
            .ok_or_else(|| DeadLetterError::NotFound(id.to_owned()))
    }

    /// Sends one dead letter back to the group that failed it; `note` goes to the
    /// audit trail. Returns the entry id in the redelivery stream.
    pub async fn reprocess(&self, id: &str, note: &str) -> Result<String, DeadLetterError> {
        let d = self.get(id).await?;
        // The fields are copied inside Redis, byte for byte: a value that is not
        // UTF-8 must come back exactly as it was published.
        self.send_back(&d, None, note).await
    }

    /// Sends a dead letter back with other fields than it had (an upcast event, say).
    pub async fn redeliver(
        &self,
        d: &DeadLetterEntry,
        fields: Vec<(String, String)>,
        note: &str,
    ) -> Result<String, DeadLetterError> {
        self.send_back(d, Some(fields), note).await
    }

    /// Redelivers `d` with `fields`, or with its own original fields (copied in
    /// Redis) when `None`.
    async fn send_back(
        &self,
        d: &DeadLetterEntry,
        fields: Option<Vec<(String, String)>>,
        note: &str,
    ) -> Result<String, DeadLetterError> {
        let (stream, entry) = self.parse_id(&d.id)?;
        let mut inv = REDELIVER.prepare_invoke();
        inv.key(self.keys.dlq(stream))
            .key(self.keys.redeliver(stream, &d.group))
            .key(self.keys.audit(stream));
        inv.arg(entry)
            .arg(format!("reprocess: {note}"))
            .arg(if fields.is_some() { "given" } else { "copy" });
        for (k, v) in fields.into_iter().flatten() {
            inv.arg(k).arg(v);
        }
        inv.arg("reprocessed").arg(d.reprocessed + 1);
        let mut conn = self.conn.clone();
        let out: Option<String> = inv.invoke_async(&mut conn).await?;
        out.ok_or_else(|| DeadLetterError::NotFound(d.id.clone()))
    }

    /// Reprocesses every dead letter matching `filter`; returns how many.
    pub async fn reprocess_matching(
        &self,
        filter: &DeadLetterFilter,
        note: &str,
    ) -> Result<usize, DeadLetterError> {
        let mut n = 0;
        for d in self.list(filter, usize::MAX).await? {
            n += usize::from(gone_is_fine(self.reprocess(&d.id, note).await.map(|_| ()))?);
        }
        Ok(n)
    }

    /// Removes one dead letter, keeping a record of it in the audit trail.
    pub async fn purge(&self, id: &str, note: &str) -> Result<(), DeadLetterError> {
        let d = self.get(id).await?;
        let (stream, entry) = self.parse_id(id)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut audit = redis::cmd("XADD");
        audit
            .arg(self.keys.audit(stream))
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("action")
            .arg(format!("purge: {note}"))
            .arg("dlq_id")
            .arg(&d.id);
        let attempts = d.attempts.to_string();
        for (k, v) in [
            ("dlq_reason", &d.reason),
            ("dlq_error", &d.error),
            ("dlq_group", &d.group),
            ("dlq_original_id", &d.original_id),
            ("dlq_attempts", &attempts),
            ("dlq_at", &d.at),
        ] {
            audit.arg(k).arg(v);
        }
        for (k, v) in &d.fields {
            audit.arg(k).arg(v);
        }
        pipe.add_command(audit).ignore();
        pipe.cmd("XDEL").arg(self.keys.dlq(stream)).arg(entry);
        let mut conn = self.conn.clone();
        let (deleted,): (u64,) = pipe.query_async(&mut conn).await?;
        if deleted == 0 {
            return Err(DeadLetterError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Purges every dead letter matching `filter`; returns how many.
    pub async fn purge_matching(
        &self,
        filter: &DeadLetterFilter,
        note: &str,
    ) -> Result<usize, DeadLetterError> {
        let mut n = 0;
        for d in self.list(filter, usize::MAX).await? {
            n += usize::from(gone_is_fine(self.purge(&d.id, note).await)?);
        }
        Ok(n)
    }

    fn parse_id<'a>(&self, id: &'a str) -> Result<(&'a str, &'a str), DeadLetterError> {
        let bad = || DeadLetterError::BadId(id.to_owned());
        let (stream, entry) = id.rsplit_once(':').ok_or_else(bad)?;
        let valid_entry = entry
            .split_once('-')
            .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
        if !valid_entry || !self.streams.iter().any(|s| s == stream) {
            return Err(bad());
        }
        Ok((stream, entry))
    }
}

/// What an audit record says was done to a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Sent back to the group that failed it (reprocess, upcast).
    Reprocessed,
    /// Removed (purge, a drop rule).
    Purged,
}

/// One page of an audit trail: the dead letters it names with what was done, and
/// the id of the last record read (where the next page starts).
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// Each named dead letter, rebuilt from the record, and what was done to it.
    pub records: Vec<(DeadLetterEntry, AuditAction)>,
    /// The last audit entry id read, `None` when there was nothing after `after`.
    pub last_id: Option<String>,
    /// Entries read, named or not (a full page means there may be more).
    pub read: usize,
}

impl DeadLetters {
    /// One page of `stream`'s audit trail after audit entry id `after` (`-` for
    /// the start), at most `limit` records. Records that name no dead letter (from
    /// an engine before they did) are read and skipped.
    pub async fn audit_page(
        &self,
        stream: &str,
        after: &str,
        limit: usize,
    ) -> Result<AuditPage, DeadLetterError> {
        let start = if after == "-" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(self.keys.audit(stream))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        let entries = redis_io::parse_entries(v);
        Ok(AuditPage {
            read: entries.len(),
            last_id: entries.last().map(|e| e.id.clone()),
            records: entries
                .into_iter()
                .filter_map(|e| audit_record(stream, e))
                .map(|(d, a)| (self.placed(d), a))
                .collect(),
        })
    }
}

/// Reads an audit record back into the dead letter it names (the decoder of what
/// `purge` and `redeliver.lua` write).
fn audit_record(stream: &str, e: redis_io::Entry) -> Option<(DeadLetterEntry, AuditAction)> {
    let mut action = None;
    let mut dlq_entry = None;
    let mut fields = Vec::with_capacity(e.fields.len());
    for (k, v) in e.fields {
        match k.as_str() {
            "action" => action = Some(String::from_utf8_lossy(&v).into_owned()),
            "dlq_entry_id" => dlq_entry = Some(String::from_utf8_lossy(&v).into_owned()),
            "dlq_id" => {
                let id = String::from_utf8_lossy(&v).into_owned();
                dlq_entry = id.rsplit_once(':').map(|(_, e)| e.to_owned());
            }
            "redelivered_as" => {}
            _ => fields.push((k, v)),
        }
    }
    let action = match action?.split(':').next()? {
        "reprocess" => AuditAction::Reprocessed,
        "purge" => AuditAction::Purged,
        _ => return None,
    };
    let entry = redis_io::Entry {
        id: dlq_entry?,
        fields,
        deliveries: 0,
        key: String::new(),
    };
    Some((to_entry(stream, entry), action))
}

/// In a bulk operation, a dead letter another process handled first is skipped:
/// `Ok(true)` when this call acted, `Ok(false)` when it was gone.
fn gone_is_fine(r: Result<(), DeadLetterError>) -> Result<bool, DeadLetterError> {
    match r {
        Ok(()) => Ok(true),
        Err(DeadLetterError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The contract's `dlq_*` fields of a new dead letter (the encoder; [`to_entry`]
/// below is the decoder).
pub(crate) fn letter_fields(
    reason: DeadLetterReason,
    error: &str,
    group: &str,
    attempts: u32,
    original_id: &str,
) -> Vec<(&'static str, String)> {
    let at = crate::envelope::now_millis().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    vec![
        ("dlq_reason", reason.as_str().to_owned()),
        ("dlq_error", error.to_owned()),
        ("dlq_group", group.to_owned()),
        ("dlq_attempts", attempts.to_string()),
        ("dlq_original_id", original_id.to_owned()),
        ("dlq_at", at),
    ]
}

fn to_entry(stream: &str, e: redis_io::Entry) -> DeadLetterEntry {
    let mut fields = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for (k, v) in e.fields {
        let v = String::from_utf8_lossy(&v).into_owned();
        if k.starts_with("dlq_") {
            meta.insert(k, v);
        } else {
            fields.insert(k, v);
        }
    }
    let take = |m: &mut BTreeMap<String, String>, k: &str| m.remove(k).unwrap_or_default();
    DeadLetterEntry {
        id: format!("{stream}:{}", e.id),
        stream: stream.to_owned(),
        partition: None,
        event_id: fields.get("id").cloned(),
        event_type: fields.get("type").cloned(),
        reason: take(&mut meta, "dlq_reason"),
        error: take(&mut meta, "dlq_error"),
        group: take(&mut meta, "dlq_group"),
        attempts: take(&mut meta, "dlq_attempts").parse().unwrap_or(0),
        original_id: take(&mut meta, "dlq_original_id"),
        at: take(&mut meta, "dlq_at"),
        reprocessed: fields
            .get("reprocessed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: &[(&str, &str)]) -> redis_io::Entry {
        redis_io::Entry {
            id: id.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            deliveries: 0,
            key: String::new(),
        }
    }

    const LETTER: [(&str, &str); 8] = [
        ("dlq_reason", "invalid_event"),
        ("dlq_error", "bad"),
        ("dlq_group", "g"),
        ("dlq_attempts", "3"),
        ("dlq_original_id", "5-0"),
        ("dlq_at", "2026-11-29T12:00:00.000Z"),
        ("id", "E1"),
        ("type", "file.uploaded"),
    ];

    #[test]
    fn an_audit_record_names_the_dead_letter_it_was_about() {
        let mut purge = vec![("action", "purge: cli"), ("dlq_id", "s:7-1")];
        purge.extend(LETTER);
        let (d, action) = audit_record("s", entry("100-0", &purge)).unwrap();
        assert_eq!(action, AuditAction::Purged);
        assert_eq!(d.id, "s:7-1");
        assert_eq!(
            (d.reason.as_str(), d.group.as_str(), d.attempts),
            ("invalid_event", "g", 3)
        );
        assert_eq!(d.event_id.as_deref(), Some("E1"));
        assert!(!d.fields.contains_key("action") && !d.fields.contains_key("dlq_id"));

        let mut again = vec![
            ("action", "reprocess: api"),
            ("redelivered_as", "9-0"),
            ("dlq_entry_id", "7-2"),
        ];
        again.extend(LETTER);
        let (d, action) = audit_record("s", entry("101-0", &again)).unwrap();
        assert_eq!(action, AuditAction::Reprocessed);
        assert_eq!(d.id, "s:7-2");
        assert!(!d.fields.contains_key("redelivered_as"));

        // From an engine that did not name the dead letter: skipped.
        let old = [("action", "reprocess: api"), ("redelivered_as", "9-0")];
        assert!(audit_record("s", entry("102-0", &old)).is_none());
    }
}
