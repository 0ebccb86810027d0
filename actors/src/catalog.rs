//! The catalog of event types a process knows: for each type its stream, its current
//! schema version, a payload check, and the upcasters that lift older versions.
//!
//! The engine knows no business event: the application registers its typed payloads
//! here ([`Catalog::register`]) and the engine uses the catalog to validate what is
//! published and to decode what is read.
//!
//! Invariants: a type belongs to exactly one stream; [`Catalog::check`] turns an
//! envelope of any registered version into one of the current version or says why it
//! cannot; a type that is not registered passes through untouched (the archiver and
//! `tail` must see every event, known or not).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::Envelope;

/// A typed event payload, bound to its type name, stream and schema version.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use strategist_actors::EventType;
///
/// #[derive(Serialize, Deserialize)]
/// struct Pinged { n: u32 }
/// impl EventType for Pinged {
///     const TYPE: &'static str = "system.ping";
///     const STREAM: &'static str = "system.events";
/// }
/// assert_eq!(Pinged::VERSION, 1);
/// ```
pub trait EventType: Serialize + DeserializeOwned + Send + 'static {
    /// The type name, e.g. `file.uploaded`.
    const TYPE: &'static str;
    /// The stream the type belongs to (before any key prefix).
    const STREAM: &'static str;
    /// The current schema version.
    const VERSION: u32 = 1;
    /// The payload field whose value keeps events in order (e.g. `user_id`): on a
    /// partitioned stream it picks the partition, so every event of one value lands
    /// in one partition ([`crate::partition`]). `None`: no order between events.
    const ORDERING_KEY: Option<&'static str> = None;
}

/// Lifts a payload from one version to the next.
pub type Upcaster = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// What the catalog knows of one type.
#[derive(Clone)]
pub struct TypeInfo {
    /// The stream the type is published to.
    pub stream: &'static str,
    /// Its current version.
    pub version: u32,
    /// The payload field that orders its events and picks their partition.
    pub ordering_key: Option<String>,
    validate: Validator,
    /// `upcasters[v]` lifts version `v` to `v + 1`.
    upcasters: HashMap<u32, Upcaster>,
}

/// Why an envelope does not fit the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The payload does not match the type's schema.
    #[error("payload of `{event_type}` v{version} does not match its schema: {reason}")]
    InvalidPayload {
        /// The event type.
        event_type: String,
        /// The version checked against.
        version: u32,
        /// What serde said.
        reason: String,
    },
    /// No upcaster path leads from this version to the current one.
    #[error("`{event_type}` has no upcaster from v{version} (current is v{current})")]
    UnknownVersion {
        /// The event type.
        event_type: String,
        /// The version the event has.
        version: u32,
        /// The version the catalog expects.
        current: u32,
    },
    /// An upcaster refused the payload.
    #[error("upcasting `{event_type}` from v{version} failed: {reason}")]
    UpcastFailed {
        /// The event type.
        event_type: String,
        /// The version being lifted.
        version: u32,
        /// What the upcaster said.
        reason: String,
    },
    /// The type is published to a stream it does not belong to.
    #[error("`{event_type}` belongs to stream `{expected}`, not `{got}`")]
    WrongStream {
        /// The event type.
        event_type: String,
        /// Its stream.
        expected: &'static str,
        /// The stream asked for.
        got: String,
    },
    /// The type is not in the catalog (only refused where a known type is required).
    #[error("unknown event type `{0}`")]
    UnknownType(String),
}

/// Registered event types, by name.
#[derive(Clone, Default)]
pub struct Catalog {
    types: HashMap<&'static str, TypeInfo>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `T` as the current version of its type.
    pub fn register<T: EventType>(&mut self) -> &mut Self {
        let validate: Validator =
            Arc::new(|v: &Value| T::deserialize(v).map(|_| ()).map_err(|e| e.to_string()));
        self.types.insert(
            T::TYPE,
            TypeInfo {
                stream: T::STREAM,
                version: T::VERSION,
                ordering_key: T::ORDERING_KEY.map(String::from),
                validate,
                upcasters: HashMap::new(),
            },
        );
        self
    }

    /// Adds an upcaster that lifts `event_type` from `from_version` to the next.
    /// The type must be registered first; otherwise this does nothing and says so.
    pub fn upcaster(
        &mut self,
        event_type: &str,
        from_version: u32,
        f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Self {
        match self.types.get_mut(event_type) {
            Some(info) => {
                info.upcasters.insert(from_version, Arc::new(f));
            }
            None => tracing::warn!(event_type, "upcaster for an unregistered type ignored"),
        }
        self
    }

    /// Sets the ordering key field of a registered type (over its
    /// [`EventType::ORDERING_KEY`]); unregistered types are ignored, with a warning.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use strategist_actors::{Catalog, Envelope, EventType};
    /// # #[derive(Serialize, Deserialize)] struct Moved { user_id: String }
    /// # impl EventType for Moved { const TYPE: &'static str = "user.moved"; const STREAM: &'static str = "user.events"; }
    /// let mut c = Catalog::new();
    /// c.register::<Moved>().ordering_key("user.moved", "user_id");
    /// let env = Envelope::new("user.moved", 1, serde_json::json!({"user_id": "u1"}));
    /// assert_eq!(c.partition_key(&env), b"u1".to_vec());
    /// ```
    pub fn ordering_key(&mut self, event_type: &str, field: &str) -> &mut Self {
        match self.types.get_mut(event_type) {
            Some(info) => info.ordering_key = Some(field.to_owned()),
            None => tracing::warn!(event_type, "ordering key for an unregistered type ignored"),
        }
        self
    }

    /// The bytes that pick `env`'s partition: the value of its type's ordering key
    /// (a string's bytes, any other value's JSON text), or its event id when the
    /// type has no ordering key or the payload lacks the field.
    pub fn partition_key(&self, env: &Envelope) -> Vec<u8> {
        let value = self
            .types
            .get(env.event_type.as_str())
            .and_then(|t| t.ordering_key.as_deref())
            .and_then(|field| env.data.get(field));
        match value {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(v) => v.to_string().into_bytes(),
            None => env.id.to_string().into_bytes(),
        }
    }

    /// What the catalog knows of `event_type`.
    pub fn get(&self, event_type: &str) -> Option<&TypeInfo> {
        self.types.get(event_type)
    }

    /// Every registered type name, sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.types.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Validates an envelope of a known type, upcasting it to the current version.
    /// Unknown types pass unchanged: callers that need a known type check
    /// [`Catalog::get`] first.
    pub fn check(&self, mut env: Envelope) -> Result<Envelope, CheckError> {
        let Some(info) = self.types.get(env.event_type.as_str()) else {
            return Ok(env);
        };
        if env.version > info.version {
            return Err(CheckError::UnknownVersion {
                event_type: env.event_type,
                version: env.version,
                current: info.version,
            });
        }
        while env.version < info.version {
            let Some(up) = info.upcasters.get(&env.version) else {
                return Err(CheckError::UnknownVersion {
                    event_type: env.event_type,
                    version: env.version,
                    current: info.version,
                });
            };
            env.data =
                up(std::mem::take(&mut env.data)).map_err(|reason| CheckError::UpcastFailed {
                    event_type: env.event_type.clone(),
                    version: env.version,
                    reason,
                })?;
            env.version += 1;
        }
        (info.validate)(&env.data).map_err(|reason| CheckError::InvalidPayload {
            event_type: env.event_type.clone(),
            version: env.version,
            reason,
        })?;
        Ok(env)
    }

    /// Checks that a known type is published to its own stream at its current
    /// version, with a valid payload.
    pub fn check_publish(&self, stream: &str, env: &Envelope) -> Result<(), CheckError> {
        let info = self
            .types
            .get(env.event_type.as_str())
            .ok_or_else(|| CheckError::UnknownType(env.event_type.clone()))?;
        if info.stream != stream {
            return Err(CheckError::WrongStream {
                event_type: env.event_type.clone(),
                expected: info.stream,
                got: stream.to_owned(),
            });
        }
        if env.version != info.version {
            return Err(CheckError::UnknownVersion {
                event_type: env.event_type.clone(),
                version: env.version,
                current: info.version,
            });
        }
        (info.validate)(&env.data).map_err(|reason| CheckError::InvalidPayload {
            event_type: env.event_type.clone(),
            version: env.version,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Serialize, Deserialize)]
    struct V2 {
        name: String,
        size: u64,
    }
    impl EventType for V2 {
        const TYPE: &'static str = "thing.made";
        const STREAM: &'static str = "thing.events";
        const VERSION: u32 = 2;
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.register::<V2>().upcaster("thing.made", 1, |mut v| {
            v["size"] = json!(0);
            Ok(v)
        });
        c
    }

    #[test]
    fn v1_is_read_as_v2() {
        let env = Envelope::new("thing.made", 1, json!({"name": "a"}));
        let up = catalog().check(env).unwrap();
        assert_eq!(up.version, 2);
        assert_eq!(up.data, json!({"name": "a", "size": 0}));
    }

    #[test]
    fn newer_or_unlifted_versions_are_refused() {
        let c = catalog();
        for v in [3, 7] {
            let env = Envelope::new("thing.made", v, json!({}));
            assert!(matches!(
                c.check(env),
                Err(CheckError::UnknownVersion { .. })
            ));
        }
    }

    #[test]
    fn bad_payload_is_refused_but_extra_fields_are_not() {
        let c = catalog();
        let bad = Envelope::new("thing.made", 2, json!({"name": 1, "size": 1}));
        assert!(matches!(
            c.check(bad),
            Err(CheckError::InvalidPayload { .. })
        ));
        let extra = Envelope::new(
            "thing.made",
            2,
            json!({"name": "a", "size": 1, "new": true}),
        );
        assert!(c.check(extra).is_ok());
    }

    #[test]
    fn the_ordering_key_value_picks_the_partition_else_the_event_id() {
        let mut c = catalog();
        let a = Envelope::new("thing.made", 2, json!({"name": "a", "size": 1}));
        assert_eq!(c.partition_key(&a), a.id.to_string().into_bytes());
        c.ordering_key("thing.made", "name");
        assert_eq!(c.partition_key(&a), b"a".to_vec());
        let n = Envelope::new("thing.made", 2, json!({"name": 7, "size": 1}));
        assert_eq!(c.partition_key(&n), b"7".to_vec());
        let unknown = Envelope::new("nope", 1, json!({"name": "a"}));
        assert_eq!(
            c.partition_key(&unknown),
            unknown.id.to_string().into_bytes()
        );
    }

    #[test]
    fn publish_checks_the_stream() {
        let c = catalog();
        let env = Envelope::new("thing.made", 2, json!({"name": "a", "size": 1}));
        assert!(c.check_publish("thing.events", &env).is_ok());
        assert!(matches!(
            c.check_publish("other.events", &env),
            Err(CheckError::WrongStream { .. })
        ));
        let unknown = Envelope::new("nope", 1, json!({}));
        assert!(matches!(
            c.check_publish("thing.events", &unknown),
            Err(CheckError::UnknownType(_))
        ));
    }
}
