//! Configuration: `config/default.toml` (compiled in), an optional file over it,
//! then environment variables, into one typed [`Settings`].
//!
//! Invariant: every setting has its default in `config/default.toml`; the code holds
//! no second copy of a default. A setting of the wrong type or an unknown pool key is
//! an error naming the key, never a silent fallback.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use strategist_actors::PoolOptions;
use toml::{Table, Value};

/// The defaults, as shipped.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A value has the wrong type or range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// All settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Redis connection.
    pub redis: RedisSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// HTTP server.
    pub http: HttpSettings,
    /// Token signing.
    pub auth: AuthSettings,
    /// AI providers, prices and prompt templates.
    pub ai: AiSettings,
    /// Embedders, chunking and embedding prices.
    pub embeddings: EmbeddingsSettings,
    /// Uploaded files and their processing.
    pub files: FilesSettings,
    /// Who is told about critical errors, and how often.
    pub alerts: AlertSettings,
    /// Notifications to people: the notifier and the WebSocket.
    pub notifications: NotificationSettings,
    /// The `system.service.health` reports.
    pub health: HealthSettings,
    pub thresholds: ThresholdSettings,
    pub scaler: ScalerSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Engine-wide settings.
    pub engine: EngineSettings,
    /// Publishing.
    pub publish: PublishSettings,
    /// The retention keeper.
    pub retention: RetentionSettings,
    /// Dead-letter handling.
    pub dead_letters: DeadLetterSettings,
    /// Saga step timeouts, by saga.
    pub sagas: BTreeMap<String, SagaSettings>,
    /// Retention per stream (`defaults` for the rest).
    pub streams: BTreeMap<String, StreamSettings>,
    /// Raw pool tables; see [`Settings::pool`].
    pools: BTreeMap<String, Table>,
    /// The scheduler of timed work.
    pub scheduler: crate::scheduler::SchedulerSettings,
    /// Briefing schedules.
    pub briefings: crate::briefings::BriefingSettings,
    /// Retention of database rows (the `cleanupExpiredData` job).
    pub maintenance: crate::maintenance::MaintenanceSettings,
    /// Market monitoring: feed polling, Reddit, trend thresholds.
    #[serde(default)]
    pub market: crate::market::MarketSettings,
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// The URL.
    pub url: String,
    /// Key prefix.
    pub stream_prefix: String,
    /// Connect timeout at start.
    pub connect_timeout_ms: u64,
    /// Command timeout on the shared connection.
    pub response_timeout_ms: u64,
    /// What a publish waits for: `master`, `replicas:N`, `aof` or `aof+replicas:N`
    /// (see [`strategist_actors::Durability`]).
    pub durability: String,
    /// How long a durable publish waits for its confirmations.
    pub durability_timeout_ms: u64,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// The URL.
    pub url: String,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Listen address.
    pub addr: String,
    /// Server worker threads.
    pub workers: usize,
    /// Largest JSON body accepted.
    pub max_json_bytes: usize,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Generation and consultation requests per user per minute (0: no limit).
    pub generation_per_minute: u32,
    /// Burst of the same limit.
    pub generation_burst: u32,
    /// Event types a non-admin may publish with `POST /events`.
    pub user_publishable_types: Vec<String>,
    /// Body limits of single routes (the route's pattern, e.g.
    /// `/api/v1/events`), over `max_json_bytes`.
    #[serde(default)]
    pub body_limits: BTreeMap<String, usize>,
}

/// `[health]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// How often this process publishes `system.service.health` (0: never).
    pub interval_ms: u64,
}

/// `[scaler]`: how pools' worker counts follow their metric (see [`crate::scaler`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerSettings {
    /// How often every pool is sampled (0: never; pools stay at `min_workers`).
    pub interval_ms: u64,
    /// No second step up within this long of the last change.
    pub up_cooldown_ms: u64,
    /// A step down goes to the highest count asked for within this window.
    pub down_stabilization_ms: u64,
}

/// `[thresholds]`: when `system.performance.degraded` is published (0 turns a
/// threshold off). See [`crate::degraded`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSettings {
    /// How often the figures are judged (0: never).
    pub interval_ms: u64,
    /// The window handler figures are measured over.
    pub window_ms: u64,
    /// Handler calls a window needs before its latency or error rate counts.
    pub min_calls: u64,
    /// A crossed figure recovers at or below threshold × this (0..1).
    pub recovery_ratio: f64,
    /// p95 of publish-to-handled latency per group and type, ms.
    pub latency_p95_ms: f64,
    /// Failed calls over all calls per group and type (0..1).
    pub error_rate: f64,
    /// Pending + lag per group.
    pub queue_depth: u64,
    /// Age of a group's oldest pending entry, ms.
    pub oldest_pending_age_ms: u64,
    /// Dead letters per minute per group (over the last five minutes).
    pub dead_letters_per_minute: f64,
}

/// `[alerts]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// User ids told about `system.error.critical` (empty: logs only).
    pub admin_user_ids: Vec<String>,
    /// At most one notification per admin per this many ms (the rest summed up).
    pub interval_ms: u64,
}

/// `[notifications]`
#[derive(Debug, Clone, Deserialize)]
pub struct NotificationSettings {
    /// Most notifications the notifier takes in one batch (ordered by priority).
    pub batch_max: usize,
    /// How long a batch waits to fill once it has one notification.
    pub batch_linger_ms: u64,
    /// Longest single attempt on one channel (then it counts as transient).
    pub channel_timeout_ms: u64,
    /// The WebSocket (`GET /ws`).
    pub ws: WsSettings,
    /// The email channel.
    pub email: crate::notify::email::EmailSettings,
    /// The Web Push channel.
    pub push: crate::notify::push::PushSettings,
}

/// `[notifications.ws]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// How often the server pings each socket.
    pub ping_interval_ms: u64,
    /// A socket that sends nothing (not even a pong) this long is closed.
    pub client_timeout_ms: u64,
    /// Frames queued for one socket; a client that lets more pile up is closed.
    pub max_queued: usize,
    /// Notifications read from the database per replay page.
    pub replay_page: u64,
}

/// `[files]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// Where uploads are kept (content-addressed by SHA-256).
    pub dir: String,
    /// The largest upload accepted.
    pub max_upload_bytes: u64,
    /// An upload that sends nothing this long is cut off (408).
    pub upload_stall_ms: u64,
    /// Longest text extraction of one file.
    pub extract_timeout_ms: u64,
    /// Most characters of text kept from one file.
    pub max_text_chars: usize,
}

/// `[ai]`
#[derive(Debug, Clone, Deserialize)]
pub struct AiSettings {
    /// Provider used when a request names none (or `default`).
    pub default_provider: String,
    /// How long a request waits for its answer unless it says (`timeout_ms`).
    pub default_timeout_ms: u64,
    /// The longest `timeout_ms` a request may ask for.
    pub max_timeout_ms: u64,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_cap: u32,
    /// The HTTP providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// USD per million tokens by model.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Prompt templates by name.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateSettings>,
    /// A content request naming no provider goes to the best one by the stored
    /// `updateModelBenchmarks` results (`crate::ai::choice`); off: the default.
    pub choose_by_benchmarks: bool,
    /// Benchmarks older than this do not count.
    pub benchmark_max_age_hours: u64,
}

/// `[ai.providers.<name>]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// `openai` (any OpenAI-compatible chat-completions server) or `anthropic`.
    pub kind: String,
    /// The API's base URL.
    pub base_url: String,
    /// The model asked for.
    pub model: String,
    /// The environment variable holding the key (read at start; never logged).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Per call.
    #[serde(default = "default_provider_timeout")]
    pub timeout_ms: u64,
    /// Tries after the first on 429/5xx/timeouts, inside one handler call.
    #[serde(default = "default_provider_retries")]
    pub max_retries: u32,
}

fn default_provider_timeout() -> u64 {
    60_000
}
fn default_provider_retries() -> u32 {
    3
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .finish_non_exhaustive()
    }
}

/// `[ai.prices."<model>"]`: USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million tokens read.
    pub input: f64,
    /// Per million tokens written.
    pub output: f64,
}

/// `[ai.templates.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The text, with `{{variable}}` placeholders.
    pub text: String,
}

/// `[embeddings]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsSettings {
    /// The embedder used when a caller names none: `offline`, a name under
    /// `[embeddings.providers]`, or the model of exactly one of them.
    pub default_model: String,
    /// Most chars in one chunk of a document.
    pub chunk_chars: usize,
    /// About how many chars consecutive chunks share.
    pub overlap_chars: usize,
    /// The HTTP embedders by name.
    #[serde(default)]
    pub providers: BTreeMap<String, EmbeddingProviderSettings>,
    /// USD per million input tokens by model (a model name starting with a key
    /// matches it).
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
}

/// `[embeddings.providers.<name>]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingProviderSettings {
    /// `openai`: any OpenAI-compatible `/embeddings` server.
    pub kind: String,
    /// The API's base URL.
    pub base_url: String,
    /// The model asked for.
    pub model: String,
    /// The environment variable holding the key (read at start; never logged).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Most inputs in one request.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The vector length the model makes; learned from the first answer if unset.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Per call.
    #[serde(default = "default_provider_timeout")]
    pub timeout_ms: u64,
    /// Tries after the first on 429/5xx/timeouts, inside one call.
    #[serde(default = "default_provider_retries")]
    pub max_retries: u32,
}

fn default_max_batch() -> usize {
    64
}

impl std::fmt::Debug for EmbeddingProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingProviderSettings")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("max_batch", &self.max_batch)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// Signing secret; empty means none.
    pub secret: String,
}

/// `[shutdown]`
#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownSettings {
    /// Grace period.
    pub grace_ms: u64,
}

/// `[engine]`
#[derive(Debug, Clone, Deserialize)]
pub struct EngineSettings {
    /// Arbiter threads (0: one per core).
    pub arbiters: usize,
    /// Dead-letter stream cap.
    pub dlq_maxlen: u64,
}

/// `[publish]`
#[derive(Debug, Clone, Deserialize)]
pub struct PublishSettings {
    /// De-duplication window by event id (0: off).
    pub dedupe_window_ms: u64,
}

/// `[dead_letters]`
#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetterSettings {
    /// Types whose dead letters publish `system.error.critical`.
    pub critical_types: Vec<String>,
    /// Sweep period of the rules.
    pub auto_resolve_interval_ms: u64,
    /// Auto-resolution rules.
    pub rules: Vec<strategist_actors::ResolutionRule>,
}

/// `[sagas.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SagaSettings {
    /// How long a step waits for its completion.
    pub step_timeout_ms: u64,
    /// Requests of a step after the first before it fails.
    pub step_retries: u32,
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    /// Trim period.
    pub interval_ms: u64,
    /// Lag report period per stream and group.
    pub report_interval_ms: u64,
}

/// `[streams.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Keep about this many entries (0: no limit).
    #[serde(default)]
    pub maxlen: u64,
    /// Keep entries younger than this (0: no limit).
    #[serde(default)]
    pub max_age_ms: u64,
    /// Never more entries than this (0: no cap).
    #[serde(default)]
    pub hard_cap: u64,
    /// Redis streams the stream is split into, by a hash of its events' ordering
    /// key (1: not split; see `strategist_actors::partition`). Limits above are of
    /// the whole stream: each partition keeps its share.
    #[serde(default)]
    pub partitions: Option<u32>,
}

/// The design's worker scaling row of one pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSettings {
    /// Workers started.
    pub min_workers: usize,
    /// Most workers the scaler may run.
    pub max_workers: usize,
    /// What drives the count.
    pub scale_metric: ScaleMetric,
    /// In the design's units: entries per worker (`50`), a CPU percentage (`"80%"`
    /// or `80`), or `"time_based"` for a schedule (read as 0).
    #[serde(deserialize_with = "threshold")]
    pub scale_threshold: f64,
    /// For `schedule`: a cron expression (UTC) of the minutes in which the pool
    /// runs `max_workers`; outside them, `min_workers`.
    #[serde(default)]
    pub scale_window: Option<String>,
}

/// What drives a pool's worker count (see [`crate::scaler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMetric {
    /// The group's pending plus lag, per worker.
    QueueLength,
    /// This process's CPU use, in percent.
    CpuUsage,
    /// A time window (the design's `time_based`).
    #[serde(alias = "time_based")]
    Schedule,
}

fn threshold<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(t) if t == "time_based" => Ok(0.0),
        Raw::Text(t) => t
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "scale_threshold `{t}`: a number, a percentage such as \"80%\", or \"time_based\""
                ))
            }),
    }
}

const SCALE_KEYS: [&str; 5] = [
    "min_workers",
    "max_workers",
    "scale_metric",
    "scale_threshold",
    "scale_window",
];

impl Settings {
    /// Loads defaults, then `file` (if any), then the environment `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut root = parse(DEFAULT_TOML, "config/default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            merge(&mut root, parse(&text, &path.display().to_string())?);
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (k, v) in &env {
            if let Some(path) = k.strip_prefix("STRATEGIST__") {
                let segments: Vec<&str> = path.split("__").filter(|s| !s.is_empty()).collect();
                set_path(&mut root, &segments, v)
                    .map_err(|m| ConfigError::Invalid(format!("{k}={v}: {m}")))?;
            }
        }
        let conventional = [
            ("REDIS_URL", "redis.url"),
            ("DATABASE_URL", "database.url"),
            ("STRATEGIST_HTTP_ADDR", "http.addr"),
            ("STRATEGIST_AUTH_SECRET", "auth.secret"),
            ("STRATEGIST_STREAM_PREFIX", "redis.stream_prefix"),
        ];
        for (var, key) in conventional {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == var) {
                let segments: Vec<&str> = key.split('.').collect();
                root_insert(&mut root, &segments, Value::String(v.clone()));
            }
        }
        let s: Settings = Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        for name in s.pool_names() {
            s.pool(&name)?;
        }
        s.keys()?;
        let e = &s.embeddings;
        if e.chunk_chars == 0 {
            return Err(ConfigError::Invalid(
                "embeddings.chunk_chars must be at least 1".into(),
            ));
        }
        // The chunker caps the overlap there anyway; saying so beats a silent cap.
        if e.overlap_chars > e.chunk_chars / 2 {
            return Err(ConfigError::Invalid(
                "embeddings.overlap_chars must be at most half of embeddings.chunk_chars".into(),
            ));
        }
        Ok(s)
    }

    /// Loads from the process environment (`STRATEGIST_CONFIG` names a file when
    /// `file` is `None`).
    pub fn from_env(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let named = std::env::var_os("STRATEGIST_CONFIG").map(std::path::PathBuf::from);
        Settings::load(file.or(named.as_deref()), std::env::vars())
    }

    /// The configured pool names (without `defaults`).
    pub fn pool_names(&self) -> Vec<String> {
        self.pools
            .keys()
            .filter(|k| *k != "defaults")
            .cloned()
            .collect()
    }

    /// One pool's options (its table over `[pools.defaults]`) and scaling row.
    pub fn pool(&self, name: &str) -> Result<(PoolOptions, ScaleSettings), ConfigError> {
        let mut table = self.pools.get("defaults").cloned().unwrap_or_default();
        let own = self.pools.get(name).cloned().unwrap_or_default();
        merge(&mut table, own);
        // A type's retry table overrides only the keys it names.
        if let (Some(Value::Table(pool_retry)), Some(Value::Table(types))) =
            (table.get("retry").cloned(), table.get_mut("types"))
        {
            for (_, t) in types.iter_mut() {
                if let Some(Value::Table(own)) = t.get("retry").cloned()
                    && let Value::Table(t) = t
                {
                    let mut merged = pool_retry.clone();
                    merge(&mut merged, own);
                    t.insert("retry".into(), Value::Table(merged));
                }
            }
        }
        let mut scale = Table::new();
        for k in SCALE_KEYS {
            if let Some(v) = table.remove(k) {
                scale.insert(k.to_owned(), v);
            }
        }
        let invalid =
            |e: toml::de::Error| ConfigError::Invalid(format!("pools.{name}: {}", e.message()));
        let scale: ScaleSettings = Value::Table(scale).try_into().map_err(invalid)?;
        let mut options: PoolOptions = Value::Table(table).try_into().map_err(invalid)?;
        options.workers = scale.min_workers;
        if scale.max_workers < scale.min_workers {
            return Err(ConfigError::Invalid(format!(
                "pools.{name}: max_workers is below min_workers"
            )));
        }
        match scale.scale_metric {
            ScaleMetric::Schedule => {
                let window = scale.scale_window.as_deref().unwrap_or_default();
                if let Err(e) = window.parse::<croner::Cron>() {
                    return Err(ConfigError::Invalid(format!(
                        "pools.{name}: scale_window `{window}` is not a cron expression: {e}"
                    )));
                }
            }
            _ if scale.scale_threshold <= 0.0 => {
                return Err(ConfigError::Invalid(format!(
                    "pools.{name}: scale_threshold must be above 0"
                )));
            }
            _ => {}
        }
        options
            .validate()
            .map_err(|m| ConfigError::Invalid(format!("pools.{name}: {m}")))?;
        Ok((options, scale))
    }

    /// The retention of a stream: its own table over `[streams.defaults]`.
    pub fn stream(&self, stream: &str) -> StreamSettings {
        let d = self.streams.get("defaults");
        let own = self.streams.get(stream);
        let pick =
            |f: fn(&StreamSettings) -> u64| own.map(f).filter(|v| *v > 0).or(d.map(f)).unwrap_or(0);
        StreamSettings {
            maxlen: pick(|s| s.maxlen),
            max_age_ms: pick(|s| s.max_age_ms),
            hard_cap: pick(|s| s.hard_cap),
            partitions: Some(own.and_then(|s| s.partitions).unwrap_or(1)),
        }
    }

    /// The key builder of this configuration: the prefix and every stream's
    /// partitions. Refuses a partition count of 0 or above 1024, and a partitioned
    /// stream whose name ends in `:<digits>`, in one line naming the stream.
    pub fn keys(&self) -> Result<strategist_actors::Keys, ConfigError> {
        let mut keys = strategist_actors::Keys::new(self.redis.stream_prefix.clone());
        if let Some(n) = self.streams.get("defaults").and_then(|d| d.partitions) {
            return Err(ConfigError::Invalid(format!(
                "streams.defaults.partitions = {n}: partitions are set per stream ([streams.\"<name>\"])"
            )));
        }
        for (name, s) in self.streams.iter().filter(|(k, _)| *k != "defaults") {
            if let Some(n) = s.partitions {
                keys = keys.with_partitions(name, n).map_err(|e| {
                    ConfigError::Invalid(format!("streams.\"{name}\".partitions: {e}"))
                })?;
            }
        }
        Ok(keys)
    }
}

fn parse(text: &str, path: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

/// Deep-merges `over` into `base`: tables merge, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `a.b.c` from an environment variable. Segments match existing keys without
/// regard to case or to `-` versus `_`; the value is read as TOML when it parses as
/// a number, boolean or array, else as a string. Where the key has a default, the
/// value must have the default's type (checked here, so the error names the
/// variable).
fn set_path(root: &mut Table, segments: &[&str], raw: &str) -> Result<(), String> {
    let value = format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_str() && !v.is_table())
        .unwrap_or_else(|| Value::String(raw.to_owned()));
    let names: Vec<String> = segments.iter().map(|s| s.to_lowercase()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(existing) = lookup(root, &refs) {
        // A scale threshold is a number or text ("80%", "time_based") either way.
        let either = refs.last() == Some(&"scale_threshold");
        let fits = match (existing, &value) {
            (Value::Float(_), Value::Integer(_)) => true,
            _ if either => true,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        };
        if !fits {
            return Err(format!("expected {}", existing.type_str()));
        }
    }
    root_insert(root, &refs, value);
    Ok(())
}

fn norm(s: &str) -> String {
    s.to_lowercase().replace('-', "_")
}

fn lookup<'a>(table: &'a Table, segments: &[&str]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    let v = table.iter().find(|(k, _)| norm(k) == norm(first))?.1;
    match (rest.is_empty(), v) {
        (true, v) => Some(v),
        (false, Value::Table(t)) => lookup(t, rest),
        _ => None,
    }
}

fn root_insert(table: &mut Table, segments: &[&str], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let key = table
        .keys()
        .find(|k| norm(k) == norm(first))
        .cloned()
        .unwrap_or_else(|| (*first).to_owned());
    if rest.is_empty() {
        table.insert(key, value);
        return;
    }
    let entry = table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    if let Value::Table(t) = entry {
        root_insert(t, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_match_the_design() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(s.http.addr, "127.0.0.1:8080");
        let (o, scale) = s.pool("file-processor").unwrap();
        assert_eq!((scale.min_workers, scale.max_workers), (2, 10));
        assert_eq!(
            (scale.scale_metric, scale.scale_threshold),
            (ScaleMetric::QueueLength, 50.0)
        );
        let (_, cpu) = s.pool("embedding-generator").unwrap();
        assert_eq!(
            (cpu.scale_metric, cpu.scale_threshold),
            (ScaleMetric::CpuUsage, 80.0)
        );
        let (_, market) = s.pool("market-monitor").unwrap();
        assert_eq!(market.scale_metric, ScaleMetric::Schedule);
        assert!(market.scale_window.is_some());
        assert_eq!(o.workers, 2);
        assert_eq!(o.retry, strategist_actors::RetryPolicy::default());
        for p in [
            "file-processor",
            "embedding-generator",
            "content-generator",
            "market-monitor",
        ] {
            assert!(s.pool_names().iter().any(|n| n == p), "{p}");
        }
    }

    #[test]
    fn environment_overrides_nested_keys_and_conventional_names() {
        let s = Settings::load(
            None,
            env(&[
                ("STRATEGIST__POOLS__FILE_PROCESSOR__MIN_WORKERS", "3"),
                ("STRATEGIST__POOLS__DEFAULTS__RETRY__JITTER", "false"),
                ("STRATEGIST__SHUTDOWN__GRACE_MS", "5"),
                ("REDIS_URL", "redis://example:1"),
                ("STRATEGIST_HTTP_ADDR", "127.0.0.1:0"),
            ]),
        )
        .unwrap();
        let (o, _) = s.pool("file-processor").unwrap();
        assert_eq!(o.workers, 3);
        assert!(!o.retry.jitter);
        assert_eq!(s.shutdown.grace_ms, 5);
        assert_eq!(s.redis.url, "redis://example:1");
        assert_eq!(s.http.addr, "127.0.0.1:0");
    }

    #[test]
    fn a_type_retry_table_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("over.toml");
        std::fs::write(
            &file,
            r#"
[pools.file-processor.retry]
base_delay_ms = 10
[pools.file-processor.types."file.uploaded"]
ordering_key = "file_id"
retry = { max_attempts = 5 }
"#,
        )
        .unwrap();
        let s = Settings::load(Some(&file), env(&[])).unwrap();
        let (o, _) = s.pool("file-processor").unwrap();
        let r = o.retry_for("file.uploaded");
        assert_eq!((r.max_attempts, r.base_delay_ms), (5, 10));
        assert_eq!(
            o.retry_for("file.text_extraction.requested").max_attempts,
            3
        );
        assert_eq!(o.ordering_key_for("file.uploaded"), Some("file_id"));
    }

    #[test]
    fn a_wrong_value_names_its_key() {
        let e = Settings::load(
            None,
            env(&[("STRATEGIST__POOLS__DEFAULTS__BLOCK_MS", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("BLOCK_MS=soon") && e.contains("integer"), "{e}");
        let e = Settings::load(None, env(&[("STRATEGIST__POOLS__NOTIFIER__TYPO", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("typo"), "{e}");
    }

    #[test]
    fn partitions_are_per_stream_and_bad_counts_are_refused() {
        let mut s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.keys().unwrap().partitions("user.events"), ["user.events"]);
        let part = |n: u32| StreamSettings {
            maxlen: 0,
            max_age_ms: 0,
            hard_cap: 0,
            partitions: Some(n),
        };
        s.streams.insert("user.events".into(), part(4));
        let keys = s.keys().unwrap();
        assert_eq!(keys.partition_count("user.events"), 4);
        assert_eq!(keys.partition_count("ai.events"), 1);
        for (name, n, says) in [
            ("user.events", 0, "out of range"),
            ("user.events", 1025, "out of range"),
            ("user.events:1", 2, "must not end in"),
        ] {
            let mut bad = s.clone();
            bad.streams.insert(name.into(), part(n));
            let e = bad.keys().unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains(name) && !e.contains('\n'),
                "{e}"
            );
        }
        let mut bad = s.clone();
        bad.streams.get_mut("defaults").unwrap().partitions = Some(2);
        assert!(bad.keys().is_err());
    }

    #[test]
    fn embeddings_defaults_load_and_bad_chunk_sizes_are_refused() {
        let s = Settings::load(None, env(&[])).unwrap();
        let e = &s.embeddings;
        assert_eq!(e.default_model, "offline");
        assert_eq!((e.chunk_chars, e.overlap_chars), (1200, 200));
        let openai = &e.providers["openai"];
        assert_eq!(openai.model, "text-embedding-3-small");
        assert_eq!(openai.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!((openai.max_batch, openai.dimensions), (64, None));
        assert!((e.prices["text-embedding-3-small"] - 0.02).abs() < 1e-12);

        let s = Settings::load(
            None,
            env(&[(
                "STRATEGIST__EMBEDDINGS__PROVIDERS__OPENAI__DIMENSIONS",
                "512",
            )]),
        )
        .unwrap();
        assert_eq!(s.embeddings.providers["openai"].dimensions, Some(512));

        for (var, value) in [
            ("STRATEGIST__EMBEDDINGS__CHUNK_CHARS", "0"),
            ("STRATEGIST__EMBEDDINGS__OVERLAP_CHARS", "700"),
        ] {
            let e = Settings::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("embeddings."), "{e}");
        }
    }
}
