//! Publishing: validated `XADD` to the type's own stream, with the stream's retention,
//! through one shared pipelined connection.

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use ulid::Ulid;

use crate::catalog::{Catalog, CheckError, EventType};
use crate::envelope::Envelope;
use crate::keys::Keys;

/// Where an event landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The event's ULID.
    pub event_id: Ulid,
    /// The Redis entry id.
    pub entry_id: String,
    /// The stream (without prefix).
    pub stream: String,
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
    /// Redis failed; the publish may be retried (with the same event id).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Publishes events. Cheap to clone; every clone shares one connection, whose
/// concurrent commands are pipelined.
///
/// ```no_run
/// # async fn demo(conn: redis::aio::ConnectionManager, catalog: std::sync::Arc<strategist_actors::Catalog>) {
/// use strategist_actors::{Envelope, Keys, Publisher};
/// let publisher = Publisher::new(conn, Keys::default(), catalog).with_maxlen("ai.events", 100_000);
/// let env = Envelope::new("ai.content.generation.requested", 1, serde_json::json!({}));
/// let published = publisher.publish("ai.events", &env).await;
/// # }
/// ```
#[derive(Clone)]
pub struct Publisher {
    conn: ConnectionManager,
    keys: Keys,
    catalog: Arc<Catalog>,
    /// Approximate `MAXLEN` per stream; streams not named here are not trimmed on
    /// publish.
    maxlen: Arc<HashMap<String, u64>>,
}

impl Publisher {
    /// A publisher over a shared connection.
    pub fn new(conn: ConnectionManager, keys: Keys, catalog: Arc<Catalog>) -> Self {
        Publisher {
            conn,
            keys,
            catalog,
            maxlen: Arc::default(),
        }
    }

    /// Trims `stream` to about `maxlen` entries on each publish (`MAXLEN ~`).
    pub fn with_maxlen(mut self, stream: &str, maxlen: u64) -> Self {
        Arc::make_mut(&mut self.maxlen).insert(stream.to_owned(), maxlen);
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
        let mut conn = self.conn.clone();
        let entry_id: String = self.xadd(stream, env).query_async(&mut conn).await?;
        Ok(Published {
            event_id: env.id,
            entry_id,
            stream: stream.to_owned(),
        })
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
        let mut pipe = redis::pipe();
        for (stream, env) in events {
            pipe.add_command(self.xadd(stream, env));
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = pipe.query_async(&mut conn).await?;
        Ok(events
            .iter()
            .zip(ids)
            .map(|((stream, env), entry_id)| Published {
                event_id: env.id,
                entry_id,
                stream: (*stream).to_owned(),
            })
            .collect())
    }

    fn xadd(&self, stream: &str, env: &Envelope) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.stream(stream));
        if let Some(n) = self.maxlen.get(stream) {
            cmd.arg("MAXLEN").arg("~").arg(*n);
        }
        cmd.arg("*");
        for (k, v) in env.to_fields() {
            cmd.arg(k).arg(v);
        }
        cmd
    }
}
