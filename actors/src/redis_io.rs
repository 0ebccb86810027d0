//! The Redis side of the engine: group creation, reply parsing for stream commands,
//! and the Lua scripts that make multi-step changes atomic.
//!
//! Replies are parsed from [`redis::Value`] by hand because a pending entry whose
//! stream entry was trimmed comes back as `[id, nil]`, which typed parsers reject.

use std::sync::LazyLock;

use redis::{AsyncCommands, Value, aio::ConnectionLike};

/// One stream entry as read: its Redis id, its fields (empty when the entry was
/// trimmed while pending) and how many times it has been delivered, this time
/// included.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The Redis entry id, e.g. `1732881600000-0`.
    pub id: String,
    /// Field/value pairs as written.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Delivery count including this delivery.
    pub deliveries: u32,
    /// The key of the stream it was read from (empty where the reply does not say).
    pub key: String,
}

impl Entry {
    /// The fields as borrowed pairs, for [`crate::Envelope::from_pairs`].
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

pub(crate) const PUBLISH_ONCE_LUA: &str = include_str!("scripts/publish_once.lua");
pub(crate) static PUBLISH_ONCE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(PUBLISH_ONCE_LUA));
pub(crate) static REDELIVER: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/redeliver.lua")));

/// Creates `group` on `stream` (and the stream) unless it exists.
pub async fn ensure_group<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    from_start: bool,
) -> redis::RedisResult<()> {
    let id = if from_start { "0" } else { "$" };
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg(id)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Whether Redis refused the command (or a command of the pipeline, or one a
/// script ran) because it is at its `maxmemory` (`-OOM`): a write that adds memory
/// is refused until something frees it, while reads, acks and trims still run.
///
/// ```
/// use strategist_actors::redis_io::refused_for_memory;
/// let io = redis::RedisError::from(std::io::Error::other("reset"));
/// assert!(!refused_for_memory(&io));
/// ```
pub fn refused_for_memory(e: &redis::RedisError) -> bool {
    e.clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, s)| s.code() == "OOM"))
        || e.to_string().contains("used memory > 'maxmemory'")
}

/// Reads the server's major.minor version from `INFO server`.
pub async fn server_version<C: ConnectionLike + Send + AsyncCommands>(
    conn: &mut C,
) -> redis::RedisResult<(u32, u32)> {
    let info: Value = redis::cmd("INFO").arg("server").query_async(conn).await?;
    let version = |info: &str| {
        let v = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("0.0");
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    Ok(match info {
        // A cluster asks every master and answers per node: the oldest decides
        // which commands every node understands.
        Value::Map(nodes) => nodes
            .iter()
            .filter_map(|(_, v)| text(v))
            .map(|s| version(&s))
            .min()
            .unwrap_or((0, 0)),
        other => version(&text(&other).unwrap_or_default()),
    })
}

/// A reply value as text (bulk, simple, verbatim strings and integers); `None`
/// for nil, arrays and bytes that are not UTF-8.
///
/// ```
/// use strategist_actors::redis_io::text;
/// assert_eq!(text(&redis::Value::Int(3)).as_deref(), Some("3"));
/// ```
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A reply value as an integer (an integer, or text that parses as one).
///
/// ```
/// use strategist_actors::redis_io::int;
/// assert_eq!(int(&redis::Value::SimpleString("12".into())), Some(12));
/// ```
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// The key/value pairs of an `XINFO` reply: a RESP2 flat array or a RESP3 map.
///
/// ```
/// use redis::Value;
/// use strategist_actors::redis_io::pairs;
/// let flat = Value::Array(vec![Value::SimpleString("length".into()), Value::Int(2)]);
/// assert_eq!(pairs(flat), vec![("length".to_string(), Value::Int(2))]);
/// ```
pub fn pairs(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(kv) => kv
            .into_iter()
            .filter_map(|(k, v)| text(&k).map(|k| (k, v)))
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Some(k) = text(&k) {
                    out.push((k, v));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::VerbatimString { text, .. } => text.into_bytes(),
        _ => Vec::new(),
    }
}

/// Parses one `[id, [field, value, ...] | nil]` pair.
pub(crate) fn parse_entry(v: Value, deliveries: u32) -> Option<Entry> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    if parts.is_empty() {
        return None;
    }
    let fields_v = if parts.len() > 1 {
        parts.remove(1)
    } else {
        Value::Nil
    };
    let id = text(&parts[0])?;
    let mut fields = Vec::new();
    let flat = match fields_v {
        Value::Array(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    let mut it = flat.into_iter();
    while let (Some(k), Some(val)) = (it.next(), it.next()) {
        if let Some(k) = text(&k) {
            fields.push((k, bytes(val)));
        }
    }
    Some(Entry {
        id,
        fields,
        deliveries,
        key: String::new(),
    })
}

/// The id of the last entry of `stream` (a full key), or `0-0` when it is empty or
/// missing: everything after it is new. What a reader that starts "from now" reads
/// after, fixed once so that nothing published between two reads is skipped.
///
/// ```no_run
/// # async fn f(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
/// let from = strategist_actors::redis_io::last_entry_id(conn, "system.events").await?;
/// # let _ = from; Ok(()) }
/// ```
pub async fn last_entry_id<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<String> {
    let last: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(last)
        .pop()
        .map(|e| e.id)
        .unwrap_or_else(|| "0-0".into()))
}

/// Parses the reply of `XRANGE`/`XREVRANGE`: `[[id, fields], ...]`.
pub fn parse_entries(v: Value) -> Vec<Entry> {
    match v {
        Value::Array(a) => a.into_iter().filter_map(|e| parse_entry(e, 1)).collect(),
        _ => Vec::new(),
    }
}

/// Parses the reply of `XREADGROUP`/`XREAD` on one or more streams: a nil (timeout),
/// or per stream `[name, [[id, fields], ...]]` (a map under RESP3).
pub fn parse_stream_reply(v: Value) -> Vec<Entry> {
    let per_stream: Vec<(String, Value)> = match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut p) if p.len() == 2 => {
                    let entries = p.remove(1);
                    Some((text(&p[0]).unwrap_or_default(), entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| (text(&k).unwrap_or_default(), v))
            .collect(),
        _ => Vec::new(),
    };
    per_stream
        .into_iter()
        .flat_map(|(key, entries)| {
            let list = match entries {
                Value::Array(a) => a,
                _ => Vec::new(),
            };
            list.into_iter().filter_map(move |e| {
                parse_entry(e, 1).map(|mut e| {
                    e.key.clone_from(&key);
                    e
                })
            })
        })
        .collect()
}

/// What [`CLAIM`] returned.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    pub(crate) cursor: String,
    pub(crate) entries: Vec<Entry>,
    pub(crate) gone: u64,
}

pub(crate) fn parse_claim(v: Value) -> Claimed {
    let Value::Array(parts) = v else {
        return Claimed::default();
    };
    let mut it = parts.into_iter();
    let cursor = it
        .next()
        .as_ref()
        .and_then(text)
        .unwrap_or_else(|| "-".into());
    let entries = match it.next() {
        Some(Value::Array(list)) => list
            .into_iter()
            .filter_map(|e| match e {
                Value::Array(mut t) if t.len() == 3 => {
                    let d = match t.pop() {
                        Some(Value::Int(n)) => u32::try_from(n).unwrap_or(u32::MAX),
                        _ => 1,
                    };
                    parse_entry(Value::Array(t), d)
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let gone = match it.next() {
        Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
        _ => 0,
    };
    Claimed {
        cursor,
        entries,
        gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_reply_with_a_trimmed_entry() {
        let v = Value::Array(vec![Value::Array(vec![
            bs("s"),
            Value::Array(vec![
                Value::Array(vec![bs("1-0"), Value::Array(vec![bs("a"), bs("b")])]),
                Value::Array(vec![bs("2-0"), Value::Nil]),
            ]),
        ])]);
        let e = parse_stream_reply(v);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].fields, vec![("a".to_string(), b"b".to_vec())]);
        assert!(e[1].fields.is_empty());
        assert_eq!(e[0].key, "s");
        assert!(parse_stream_reply(Value::Nil).is_empty());
    }
}
