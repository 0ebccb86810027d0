//! Publishing: validated `XADD` to the type's own stream through one shared,
//! pipelined connection, idempotent by event id.
//!
//! Partitions: on a stream split into partitions ([`crate::partition`]) each event
//! goes to the partition of its ordering-key value ([`Catalog::partition_key`]), so
//! every event of one key is in one partition, in publish order; the
//! de-duplication marker lives beside that partition (the same event always picks
//! the same partition).
//!
//! Idempotence: with a de-duplication window (the default of the application is
//! set in its configuration), publishing an event whose id was already published to
//! the stream within the window returns the first entry's id and adds nothing, in
//! one atomic script; so a producer may retry a publish that timed out. Retention
//! is not applied here: trimming at publish time could cut entries a lagging group
//! has not read, so the retention keeper trims on a timer instead.

use std::borrow::Cow;
use std::sync::Arc;

use crate::conn::Conn;
use redis::Value;
use ulid::Ulid;

use crate::catalog::{Catalog, CheckError, EventType};
use crate::envelope::Envelope;
use crate::keys::Keys;
use crate::redis_io::{PUBLISH_ONCE, PUBLISH_ONCE_LUA, text};

/// Where an event landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The event's ULID.
    pub event_id: Ulid,
    /// The Redis entry id.
    pub entry_id: String,
    /// The stream (without prefix): the logical one, also on a partitioned stream.
    pub stream: String,
    /// The partition it went to, on a partitioned stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// True when the event had already been published within the window and
    /// nothing new was added.
    pub duplicate: bool,
}

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event does not fit the catalog; fix the event, do not retry.
    #[error(transparent)]
    Invalid(#[from] CheckError),
    /// The payload could not be serialized.
    #[error("payload is not serializable: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Redis failed; the publish may be retried with the same event id.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered something unexpected.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The events were written to the master, but the durability asked for was not
    /// confirmed in time; publishing again with the same event ids is safe with a
    /// de-duplication window.
    #[error(
        "written, but confirmed by {got} of the {wanted} {what} asked for within {timeout_ms} ms"
    )]
    NotDurable {
        /// `replicas` or `AOF fsyncs`.
        what: &'static str,
        /// How many were asked for.
        wanted: u32,
        /// How many confirmed.
        got: u32,
        /// The wait.
        timeout_ms: u64,
    },
}

/// How sure a publish is when it returns. Redis acknowledges a write once the
/// master has it: replication is asynchronous, and the AOF is synced by its own
/// policy; a failover to a lagging replica loses what it had not received.
///
/// ```
/// use strategist_actors::Durability;
/// let d: Durability = "replicas:1".parse().unwrap();
/// assert_eq!(d, Durability::Replicas { replicas: 1 });
/// assert_eq!("aof".parse::<Durability>().unwrap(), Durability::Aof { replicas: 0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The master's acknowledgement (Redis's default).
    #[default]
    Master,
    /// Also `WAIT replicas`: that many replicas have the writes.
    Replicas {
        /// Replicas that must confirm.
        replicas: u32,
    },
    /// Also `WAITAOF 1 replicas` (Redis 7.2+): the master's AOF, and that many
    /// replicas' AOFs, have synced the writes to disk.
    Aof {
        /// Replicas whose AOF must confirm too.
        replicas: u32,
    },
}

impl std::str::FromStr for Durability {
    type Err = String;

    /// `master`, `replicas:N`, `aof` or `aof+replicas:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let n = |v: &str| {
            v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("durability `{s}`: the replica count must be a number from 1")
            })
        };
        match s.trim() {
            "master" | "" => Ok(Durability::Master),
            "aof" => Ok(Durability::Aof { replicas: 0 }),
            other => {
                if let Some(v) = other.strip_prefix("aof+replicas:") {
                    Ok(Durability::Aof { replicas: n(v)? })
                } else if let Some(v) = other.strip_prefix("replicas:") {
                    Ok(Durability::Replicas { replicas: n(v)? })
                } else {
                    Err(format!(
                        "durability `{s}`: expected master, replicas:N, aof or aof+replicas:N"
                    ))
                }
            }
        }
    }
}

/// Publishes events. Cheap to clone; every clone shares one connection, whose
/// concurrent commands are pipelined.
///
/// ```no_run
/// # async fn demo(conn: redis::aio::ConnectionManager, catalog: std::sync::Arc<strategist_actors::Catalog>) {
/// use strategist_actors::{Envelope, Keys, Publisher};
/// let publisher = Publisher::new(conn, Keys::default(), catalog).with_dedupe_window_ms(300_000);
/// let env = Envelope::new("ai.content.generation.requested", 1, serde_json::json!({}));
/// let first = publisher.publish("ai.events", &env).await;
/// let again = publisher.publish("ai.events", &env).await; // same entry, `duplicate: true`
/// # }
/// ```
#[derive(Clone)]
pub struct Publisher {
    conn: Conn,
    keys: Keys,
    catalog: Arc<Catalog>,
    /// How long an event id is remembered per stream; 0 turns de-duplication off.
    dedupe_window_ms: u64,
    /// Gives the current trace context (`traceparent`, `tracestate`) for events
    /// published without one.
    trace_context: Option<TraceContext>,
    durability: Durability,
    /// How long a durable publish waits for its confirmations.
    durability_timeout_ms: u64,
}

/// Reads the current trace context as W3C `traceparent` and `tracestate`.
pub type TraceContext = Arc<dyn Fn() -> Option<(String, Option<String>)> + Send + Sync>;

impl Publisher {
    /// A publisher over a shared connection, without de-duplication.
    pub fn new(conn: impl Into<Conn>, keys: Keys, catalog: Arc<Catalog>) -> Self {
        let conn = conn.into();
        Publisher {
            conn,
            keys,
            catalog,
            dedupe_window_ms: 0,
            trace_context: None,
            durability: Durability::Master,
            durability_timeout_ms: 1000,
        }
    }

    /// Waits for `durability` (up to `timeout_ms`) before a publish returns: the
    /// `WAIT` or `WAITAOF` goes in the same pipeline as the writes. It blocks this
    /// publisher's connection meanwhile, so give a durable publisher a connection
    /// of its own.
    pub fn with_durability(mut self, durability: Durability, timeout_ms: u64) -> Self {
        self.durability = durability;
        // 0 would make WAIT block for ever.
        self.durability_timeout_ms = timeout_ms.max(1);
        self
    }

    /// Stamps events published without a `traceparent` with the current trace
    /// context, so a consumer's work joins the producer's trace.
    pub fn with_trace_context(
        mut self,
        f: impl Fn() -> Option<(String, Option<String>)> + Send + Sync + 'static,
    ) -> Self {
        self.trace_context = Some(Arc::new(f));
        self
    }

    fn fields(&self, env: &Envelope) -> Vec<(&'static str, String)> {
        let mut fields = env.to_fields();
        if env.traceparent.is_none()
            && let Some((parent, state)) = self.trace_context.as_ref().and_then(|f| f())
        {
            fields.push(("traceparent", parent));
            if let Some(state) = state.filter(|s| !s.is_empty()) {
                fields.push(("tracestate", state));
            }
        }
        fields
    }

    /// Remembers published event ids for `ms` (0: off).
    pub fn with_dedupe_window_ms(mut self, ms: u64) -> Self {
        self.dedupe_window_ms = ms;
        self
    }

    /// The catalog events are checked against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Checks `env` against the catalog and publishes it to `stream`.
    pub async fn publish(&self, stream: &str, env: &Envelope) -> Result<Published, PublishError> {
        self.catalog.check_publish(stream, env)?;
        self.publish_unchecked(stream, env).await
    }

    /// Publishes a typed payload as a new event of its type, on its stream, after
    /// letting `build` add correlation, user and the like.
    pub async fn publish_typed<T: EventType>(
        &self,
        data: &T,
        build: impl FnOnce(Envelope) -> Envelope,
    ) -> Result<Published, PublishError> {
        let env = build(Envelope::new(
            T::TYPE,
            T::VERSION,
            serde_json::to_value(data)?,
        ));
        self.publish(T::STREAM, &env).await
    }

    /// Publishes without checking the catalog (for relaying entries as they are).
    pub async fn publish_unchecked(
        &self,
        stream: &str,
        env: &Envelope,
    ) -> Result<Published, PublishError> {
        let mut all = self.send(&[(stream, env)]).await?;
        all.pop()
            .ok_or_else(|| PublishError::Reply("no reply to a publish".into()))
    }

    /// Publishes many events in one pipeline (one round trip), each checked first;
    /// nothing is sent if any is invalid.
    pub async fn publish_batch(
        &self,
        events: &[(&str, Envelope)],
    ) -> Result<Vec<Published>, PublishError> {
        for (stream, env) in events {
            self.catalog.check_publish(stream, env)?;
        }
        let refs: Vec<(&str, &Envelope)> = events.iter().map(|(s, e)| (*s, e)).collect();
        self.send(&refs).await
    }

    /// The Redis stream (without prefix) `env` goes to on `stream`: the stream
    /// itself, or its partition.
    /// Borrowed on a stream that is not split: no allocation per event there.
    fn target<'a>(&self, stream: &'a str, env: &Envelope) -> Cow<'a, str> {
        if self.keys.partition_count(stream) == 1 {
            return Cow::Borrowed(stream);
        }
        Cow::Owned(self.keys.route(stream, &self.catalog.partition_key(env)))
    }

    async fn send(&self, events: &[(&str, &Envelope)]) -> Result<Vec<Published>, PublishError> {
        let targets: Vec<Cow<str>> = events.iter().map(|(s, e)| self.target(s, e)).collect();
        let routed: Vec<(&str, &Envelope)> = targets
            .iter()
            .zip(events)
            .map(|(t, (_, e))| (t.as_ref(), *e))
            .collect();
        let events = routed.as_slice();
        let one_stream = events
            .iter()
            .all(|(s, _)| Some(*s) == events.first().map(|e| e.0));
        if one_stream || !self.conn.is_cluster() {
            return self.send_pipeline(events).await;
        }
        // A cluster takes a pipeline to one slot only: one pipeline per stream,
        // each keeping its events in order, all sent at once (they go to their
        // own masters). Order between streams is not kept, as no reader can see
        // it. A failure fails the batch; the other streams' events may be
        // published (as after a lost connection: the caller retries, and the
        // de-duplication, when on, drops what was there).
        let mut by_stream: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, (stream, _)) in events.iter().enumerate() {
            match by_stream.iter_mut().find(|(s, _)| s == stream) {
                Some((_, idx)) => idx.push(i),
                None => by_stream.push((stream, vec![i])),
            }
        }
        let sends = by_stream.iter().map(|(_, idx)| {
            let part: Vec<(&str, &Envelope)> = idx.iter().map(|&i| events[i]).collect();
            async move { self.send_pipeline(&part).await }
        });
        let results = futures_util::future::try_join_all(sends).await?;
        let mut out: Vec<Option<Published>> = vec![None; events.len()];
        for ((_, idx), published) in by_stream.iter().zip(results) {
            for (&i, p) in idx.iter().zip(published) {
                out[i] = Some(p);
            }
        }
        out.into_iter()
            .map(|p| p.ok_or_else(|| PublishError::Reply("a publish without a reply".into())))
            .collect()
    }

    async fn send_pipeline(
        &self,
        events: &[(&str, &Envelope)],
    ) -> Result<Vec<Published>, PublishError> {
        let mut conn = self.conn.clone();
        let mut replies = match self
            .pipeline(events)
            .query_async::<Vec<Value>>(&mut conn)
            .await
        {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                // First use on this server (or after SCRIPT FLUSH). Sending again is
                // harmless: the script adds nothing for an id it has seen.
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(PUBLISH_ONCE_LUA)
                    .query_async::<String>(&mut conn)
                    .await?;
                self.pipeline(events)
                    .query_async::<Vec<Value>>(&mut conn)
                    .await?
            }
            other => other?,
        };
        if self.durability != Durability::Master {
            let reply = replies
                .pop()
                .ok_or_else(|| PublishError::Reply("no reply to the durability wait".into()))?;
            self.check_durable(reply)?;
        }
        // One reply per XADD, or one list per de-duplicating script call (one call
        // per run of events on the same stream).
        let mut flat = Vec::with_capacity(events.len());
        for reply in replies {
            match reply {
                Value::Array(items) if self.dedupe_window_ms > 0 => flat.extend(items),
                other => flat.push(other),
            }
        }
        if flat.len() != events.len() {
            return Err(PublishError::Reply(format!(
                "{} replies for {} events",
                flat.len(),
                events.len()
            )));
        }
        events
            .iter()
            .zip(flat)
            .map(|((stream, env), reply)| {
                let (entry_id, duplicate) = match &reply {
                    Value::Array(parts) if parts.len() == 2 => {
                        (text(&parts[0]), matches!(parts[1], Value::Int(0)))
                    }
                    v => (text(v), false),
                };
                let entry_id = entry_id.ok_or_else(|| PublishError::Reply(format!("{reply:?}")))?;
                let (stream, partition) = self.keys.logical(stream);
                Ok(Published {
                    event_id: env.id,
                    entry_id,
                    stream: stream.to_owned(),
                    partition,
                    duplicate,
                })
            })
            .collect()
    }

    /// Reads the reply of `WAIT` (replicas that have the writes) or `WAITAOF`
    /// (`[local, replicas]` that synced them).
    fn check_durable(&self, reply: Value) -> Result<(), PublishError> {
        let int = |v: &Value| match v {
            Value::Int(n) => Ok((*n).max(0) as u32),
            other => Err(PublishError::Reply(format!("{other:?}"))),
        };
        let timeout_ms = self.durability_timeout_ms;
        match (self.durability, reply) {
            (Durability::Replicas { replicas }, v) => {
                let got = int(&v)?;
                if got < replicas {
                    return Err(PublishError::NotDurable {
                        what: "replicas",
                        wanted: replicas,
                        got,
                        timeout_ms,
                    });
                }
            }
            (Durability::Aof { replicas }, Value::Array(v)) if v.len() == 2 => {
                let (local, got) = (int(&v[0])?, int(&v[1])?);
                if local < 1 {
                    return Err(PublishError::NotDurable {
                        what: "AOF fsyncs on the master",
                        wanted: 1,
                        got: local,
                        timeout_ms,
                    });
                }
                if got < replicas {
                    return Err(PublishError::NotDurable {
                        what: "replica AOF fsyncs",
                        wanted: replicas,
                        got,
                        timeout_ms,
                    });
                }
            }
            (_, other) => return Err(PublishError::Reply(format!("{other:?}"))),
        }
        Ok(())
    }

    fn pipeline(&self, events: &[(&str, &Envelope)]) -> redis::Pipeline {
        let mut pipe = self.writes(events);
        match self.durability {
            Durability::Master => {}
            Durability::Replicas { replicas } => {
                pipe.cmd("WAIT")
                    .arg(replicas)
                    .arg(self.durability_timeout_ms);
            }
            Durability::Aof { replicas } => {
                pipe.cmd("WAITAOF")
                    .arg(1)
                    .arg(replicas)
                    .arg(self.durability_timeout_ms);
            }
        }
        pipe
    }

    fn writes(&self, events: &[(&str, &Envelope)]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if self.dedupe_window_ms == 0 {
            for (stream, env) in events {
                let mut c = redis::cmd("XADD");
                c.arg(self.keys.stream(stream)).arg("*");
                for (k, v) in self.fields(env) {
                    c.arg(k).arg(v);
                }
                pipe.add_command(c);
            }
            return pipe;
        }
        // One script call per run of consecutive events on the same stream (its
        // keys share the stream's hash slot), in order.
        let mut i = 0;
        while i < events.len() {
            let stream = events[i].0;
            let run = events[i..].iter().take_while(|(s, _)| *s == stream).count();
            let mut c = redis::cmd("EVALSHA");
            c.arg(PUBLISH_ONCE.get_hash())
                .arg(run + 1)
                .arg(self.keys.stream(stream));
            for (_, env) in &events[i..i + run] {
                c.arg(self.keys.dedupe(stream, &env.id.to_string()));
            }
            c.arg(self.dedupe_window_ms);
            for (_, env) in &events[i..i + run] {
                let fields = self.fields(env);
                c.arg(fields.len());
                for (k, v) in fields {
                    c.arg(k).arg(v);
                }
            }
            pipe.add_command(c);
            i += run;
        }
        pipe
    }
}
