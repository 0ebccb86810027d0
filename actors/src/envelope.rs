//! The event envelope: what every entry on every stream carries, and its wire form.
//!
//! One event is one stream entry whose fields are flat strings (see the contract):
//! `id`, `type`, `version`, `timestamp`, `data` are required; `correlation_id`,
//! `causation_id`, `user_id`, `metadata`, `traceparent`, `tracestate` are optional.
//! Any producer that writes these fields with a plain `XADD` is served the same as one
//! that used [`Envelope::to_fields`].
//!
//! Invariants: decoding never panics on input; an entry that cannot be decoded yields
//! a [`DecodeError`] that says which field is wrong, so it can be dead-lettered with a
//! reason instead of being dropped.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ulid::Ulid;

/// An event as it travels: the metadata every event has, plus its payload as JSON.
///
/// ```
/// use strategist_actors::Envelope;
/// let ev = Envelope::new("user.login", 1, serde_json::json!({"user_id": "u1"}));
/// let fields = ev.to_fields();
/// let back = Envelope::from_pairs(fields.iter().map(|(k, v)| (*k, v.as_bytes()))).unwrap();
/// assert_eq!(back, ev);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event's own ULID: stable across retries and republishing, unlike the Redis
    /// entry id, so consumers deduplicate by it.
    pub id: Ulid,
    /// The event type, e.g. `ai.content.generation.requested`; it also names the stream.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data`.
    pub version: u32,
    /// When the event happened (UTC, millisecond precision on the wire).
    pub timestamp: DateTime<Utc>,
    /// Ties together the events of one request, saga or conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The `id` of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The user the event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Free-form metadata, always a JSON object when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// W3C trace context of the producing span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C trace state that goes with `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// The payload: a JSON object.
    pub data: Value,
}

/// Why a stream entry is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field is present but its content is not what the contract says.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The entry has no fields at all (it was deleted or trimmed while pending).
    #[error("the entry no longer exists (deleted or trimmed)")]
    Gone,
}

impl DecodeError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl Envelope {
    /// A new envelope with a fresh ULID and the current time.
    pub fn new(event_type: impl Into<String>, version: u32, data: Value) -> Self {
        Envelope {
            id: Ulid::generate(),
            event_type: event_type.into(),
            version,
            timestamp: now_millis(),
            correlation_id: None,
            causation_id: None,
            user_id: None,
            metadata: None,
            traceparent: None,
            tracestate: None,
            data,
        }
    }

    /// Sets the correlation id (builder style).
    pub fn with_correlation(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the user id (builder style).
    pub fn with_user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Marks this event as caused by `cause`: copies its correlation id (or uses the
    /// cause's id when it has none) and its trace context.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causation_id = Some(cause.id.to_string());
        self.correlation_id = cause
            .correlation_id
            .clone()
            .or_else(|| Some(cause.id.to_string()));
        if self.traceparent.is_none() {
            self.traceparent = cause.traceparent.clone();
            self.tracestate = cause.tracestate.clone();
        }
        self
    }

    /// The flat string fields of the wire format, in a stable order.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::with_capacity(11);
        f.push(("id", self.id.to_string()));
        f.push(("type", self.event_type.clone()));
        f.push(("version", self.version.to_string()));
        f.push((
            "timestamp",
            self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        ));
        f.push(("data", self.data.to_string()));
        let optional = [
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
            ("user_id", &self.user_id),
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                f.push((name, v.clone()));
            }
        }
        if let Some(m) = &self.metadata {
            f.push(("metadata", Value::Object(m.clone()).to_string()));
        }
        f
    }

    /// Decodes an envelope from an entry's field/value pairs. Unknown fields are
    /// ignored (a newer producer may add some); a repeated field keeps its last value.
    pub fn from_pairs<'a, K, I>(pairs: I) -> Result<Self, DecodeError>
    where
        K: AsRef<str>,
        I: IntoIterator<Item = (K, &'a [u8])>,
    {
        let mut raw = RawFields::default();
        let mut any = false;
        for (k, v) in pairs {
            any = true;
            raw.set(k.as_ref(), v);
        }
        if !any {
            return Err(DecodeError::Gone);
        }
        raw.into_envelope()
    }
}

/// The fields of one entry, borrowed, before they are checked.
#[derive(Default)]
struct RawFields<'a> {
    id: Option<&'a [u8]>,
    event_type: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    timestamp: Option<&'a [u8]>,
    data: Option<&'a [u8]>,
    correlation_id: Option<&'a [u8]>,
    causation_id: Option<&'a [u8]>,
    user_id: Option<&'a [u8]>,
    metadata: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
    tracestate: Option<&'a [u8]>,
}

impl<'a> RawFields<'a> {
    fn set(&mut self, key: &str, v: &'a [u8]) {
        let slot = match key {
            "id" => &mut self.id,
            "type" => &mut self.event_type,
            "version" => &mut self.version,
            "timestamp" => &mut self.timestamp,
            "data" => &mut self.data,
            "correlation_id" => &mut self.correlation_id,
            "causation_id" => &mut self.causation_id,
            "user_id" => &mut self.user_id,
            "metadata" => &mut self.metadata,
            "traceparent" => &mut self.traceparent,
            "tracestate" => &mut self.tracestate,
            _ => return,
        };
        *slot = Some(v);
    }

    fn into_envelope(self) -> Result<Envelope, DecodeError> {
        let id = text("id", self.id.ok_or(DecodeError::Missing("id"))?)?;
        let id = Ulid::from_string(id).map_err(|e| DecodeError::invalid("id", e.to_string()))?;
        let event_type = text("type", self.event_type.ok_or(DecodeError::Missing("type"))?)?;
        if event_type.is_empty() {
            return Err(DecodeError::invalid("type", "empty"));
        }
        let version = text(
            "version",
            self.version.ok_or(DecodeError::Missing("version"))?,
        )?;
        let version: u32 = version.trim().parse().map_err(|_| {
            DecodeError::invalid("version", format!("`{version}` is not a positive integer"))
        })?;
        if version == 0 {
            return Err(DecodeError::invalid("version", "must be 1 or more"));
        }
        let ts = text(
            "timestamp",
            self.timestamp.ok_or(DecodeError::Missing("timestamp"))?,
        )?;
        let timestamp = DateTime::parse_from_rfc3339(ts)
            .map_err(|e| DecodeError::invalid("timestamp", format!("`{ts}` is not RFC 3339: {e}")))?
            .with_timezone(&Utc);
        let data_raw = self.data.ok_or(DecodeError::Missing("data"))?;
        let data: Value = serde_json::from_slice(data_raw)
            .map_err(|e| DecodeError::invalid("data", format!("not JSON: {e}")))?;
        if !data.is_object() {
            return Err(DecodeError::invalid("data", "must be a JSON object"));
        }
        let metadata = match self.metadata {
            None => None,
            Some(raw) => match serde_json::from_slice::<Value>(raw) {
                Ok(Value::Object(m)) => Some(m),
                Ok(Value::Null) => None,
                Ok(_) => return Err(DecodeError::invalid("metadata", "must be a JSON object")),
                Err(e) => return Err(DecodeError::invalid("metadata", format!("not JSON: {e}"))),
            },
        };
        let opt = |name: &'static str, v: Option<&[u8]>| -> Result<Option<String>, DecodeError> {
            match v {
                None => Ok(None),
                Some([]) => Ok(None),
                Some(b) => text(name, b).map(|s| Some(s.to_owned())),
            }
        };
        Ok(Envelope {
            id,
            event_type: event_type.to_owned(),
            version,
            timestamp,
            correlation_id: opt("correlation_id", self.correlation_id)?,
            causation_id: opt("causation_id", self.causation_id)?,
            user_id: opt("user_id", self.user_id)?,
            metadata,
            traceparent: opt("traceparent", self.traceparent)?,
            tracestate: opt("tracestate", self.tracestate)?,
            data,
        })
    }
}

fn text<'a>(field: &'static str, b: &'a [u8]) -> Result<&'a str, DecodeError> {
    // A NUL byte is valid UTF-8 but no database text column takes it (PostgreSQL
    // refuses it outright): refuse it here, where the entry can still be set aside.
    if b.contains(&0) {
        return Err(DecodeError::invalid(field, "contains a NUL byte"));
    }
    std::str::from_utf8(b).map_err(|_| DecodeError::invalid(field, "not UTF-8"))
}

/// The current time truncated to milliseconds, the wire format's precision, so an
/// envelope equals itself after a round trip.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(f: &[(&'static str, &str)]) -> Vec<(&'static str, Vec<u8>)> {
        f.iter().map(|(k, v)| (*k, v.as_bytes().to_vec())).collect()
    }

    fn decode(f: &[(&'static str, &str)]) -> Result<Envelope, DecodeError> {
        let p = pairs(f);
        Envelope::from_pairs(p.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut ev = Envelope::new("user.login", 2, json!({"a": 1}))
            .with_correlation("c1")
            .with_user("u1");
        ev.causation_id = Some("x".into());
        ev.metadata = Some(json!({"k": "v"}).as_object().cloned().unwrap_or_default());
        ev.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        ev.tracestate = Some("a=b".into());
        let f = ev.to_fields();
        let back = Envelope::from_pairs(f.iter().map(|(k, v)| (*k, v.as_bytes()))).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn a_nul_byte_in_a_text_field_is_refused_with_the_field_named() {
        let e = decode(&[
            ("id", "01JDQ4Z1M3T7X8Y9Z0A1B2C3D4"),
            ("type", "user.login"),
            ("version", "1"),
            ("timestamp", "2026-11-29T12:00:00.123Z"),
            ("data", "{}"),
            ("correlation_id", "a\u{0}b"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("correlation_id") && e.to_string().contains("NUL"),
            "{e}"
        );
    }

    #[test]
    fn plain_fields_from_another_producer_decode() {
        let ev = decode(&[
            ("id", "01JDQ4Z1M3T7X8Y9Z0A1B2C3D4"),
            ("type", "user.login"),
            ("version", "1"),
            ("timestamp", "2026-11-29T12:00:00.123Z"),
            ("data", r#"{"user_id":"u"}"#),
            ("extra", "tolerated"),
        ])
        .unwrap();
        assert_eq!(ev.event_type, "user.login");
        assert_eq!(ev.timestamp.timestamp_subsec_millis(), 123);
    }

    #[test]
    fn each_broken_field_is_named() {
        let good = [
            ("id", "01JDQ4Z1M3T7X8Y9Z0A1B2C3D4"),
            ("type", "t"),
            ("version", "1"),
            ("timestamp", "2026-11-29T12:00:00Z"),
            ("data", "{}"),
        ];
        for (i, (field, _)) in good.iter().enumerate() {
            let mut missing = good.to_vec();
            missing.remove(i);
            assert_eq!(decode(&missing), Err(DecodeError::Missing(field)));
        }
        for (field, bad) in [
            ("id", "nope"),
            ("version", "x"),
            ("version", "0"),
            ("timestamp", "yesterday"),
            ("data", "{not json"),
            ("data", "[1]"),
        ] {
            let mut f = good.to_vec();
            f.retain(|(k, _)| *k != field);
            f.push((field, bad));
            match decode(&f) {
                Err(DecodeError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}={bad}: {other:?}"),
            }
        }
        assert_eq!(decode(&[]), Err(DecodeError::Gone));
    }
}
