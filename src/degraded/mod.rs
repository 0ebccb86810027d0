//! `system.performance.degraded` when a configured threshold (`[thresholds]`) is
//! crossed, and once more, with `recovered: true`, when the figure is back: p95
//! publish-to-handled latency and error rate of this process's handlers, and per
//! consumer group the queue depth (pending + lag), the oldest pending entry's age
//! and dead letters per minute.
//!
//! Invariants:
//! - one event per crossing and one per recovery, never one per tick ([`rules`]);
//! - queue figures are the whole system's (read from Redis), so every process sees
//!   the same crossing: their state lives in one Redis hash, flipped by a script,
//!   and only the process whose flip took effect publishes: N processes, one event;
//! - handler figures are this process's own calls over the last `window_ms`,
//!   measured from the engine's cumulative counters (so no sample is kept twice);
//! - a failed read or publish is logged and the next tick goes on.

pub mod rules;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use strategist_actors::Conn;
use strategist_actors::{EngineMetrics, Keys, Publisher};

use crate::config::ThresholdSettings;
use crate::events::system::SystemPerformanceDegraded;
use rules::{Change, Counters, LocalStates, Reading};

/// Sets a field of the state hash; 1 when it changed.
const FLIP: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '0') == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

type TypeKey = (String, String, String);

/// The watch of one process.
pub struct Watch {
    settings: ThresholdSettings,
    engine: EngineMetrics,
    conn: Conn,
    keys: Keys,
    publisher: Publisher,
    service: String,
    /// Cumulative counters per tick, oldest first, covering the window.
    history: VecDeque<(Instant, HashMap<TypeKey, Counters>)>,
    local: LocalStates,
    /// The last known state of each system figure (true: over).
    system: HashMap<String, bool>,
    flip: redis::Script,
}

impl Watch {
    /// A watch over `engine`'s handlers and the queues of every stream.
    pub fn new(
        settings: ThresholdSettings,
        engine: EngineMetrics,
        conn: impl Into<Conn>,
        keys: Keys,
        publisher: Publisher,
        service: String,
    ) -> Self {
        let mut history = VecDeque::new();
        // Before the first tick nothing was handled: the window starts from zero.
        history.push_back((Instant::now(), HashMap::new()));
        Watch {
            settings,
            engine,
            conn: conn.into(),
            keys,
            publisher,
            service,
            history,
            local: LocalStates::default(),
            system: HashMap::new(),
            flip: redis::Script::new(FLIP),
        }
    }

    /// Runs one tick every `interval_ms` until the process ends.
    pub fn spawn(mut self) {
        let interval = Duration::from_millis(self.settings.interval_ms.max(10));
        actix::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for c in self.tick().await {
                    self.publish(c).await;
                }
            }
        });
    }

    /// Measures now; the changes to report.
    pub async fn tick(&mut self) -> Vec<Change> {
        let mut changes = self.handler_changes();
        match crate::metrics::queues::read(&mut self.conn, &self.keys, &crate::events::streams::ALL)
            .await
        {
            Ok(q) => {
                for r in rules::queue_readings(&q, &self.settings) {
                    if let Some(c) = self.system_change(r).await {
                        changes.push(c);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "thresholds: could not read the queues"),
        }
        changes
    }

    fn handler_changes(&mut self) -> Vec<Change> {
        let now = Instant::now();
        let current: HashMap<TypeKey, Counters> = self
            .engine
            .snapshot()
            .into_iter()
            .flat_map(|r| {
                r.types
                    .iter()
                    .map(|t| {
                        (
                            (r.stream.clone(), r.group.clone(), t.event_type.clone()),
                            Counters::of(t),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let window = Duration::from_millis(self.settings.window_ms.max(1));
        // Keep the newest entry older than the window as the baseline.
        while self.history.len() > 1 && now.duration_since(self.history[1].0) >= window {
            self.history.pop_front();
        }
        let empty = Counters::default();
        let mut changes = Vec::new();
        {
            let base = &self.history[0].1;
            let mut keys: Vec<&TypeKey> = current.keys().collect();
            keys.sort();
            for k in keys {
                let delta = current[k].since(base.get(k).unwrap_or(&empty));
                for r in rules::handler_readings(&k.0, &k.1, &k.2, &delta, &self.settings) {
                    if let Some(c) = self.local.apply(&r, self.settings.recovery_ratio) {
                        changes.push(c);
                    }
                }
            }
        }
        self.history.push_back((now, current));
        changes
    }

    async fn system_change(&mut self, r: Reading) -> Option<Change> {
        let now = rules::judge(&r, self.settings.recovery_ratio)?;
        if self.system.get(&r.key) == Some(&now) {
            return None;
        }
        let flipped: redis::RedisResult<i64> = self
            .flip
            .key(format!("{}:degraded", self.keys.prefix()))
            .arg(&r.key)
            .arg(if now { "1" } else { "0" })
            .invoke_async(&mut self.conn)
            .await;
        match flipped {
            Ok(n) => {
                self.system.insert(r.key.clone(), now);
                (n == 1).then_some(Change {
                    reading: r,
                    recovered: !now,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "thresholds: could not record a state");
                None
            }
        }
    }

    /// Publishes one change as `system.performance.degraded` (and logs it).
    pub async fn publish(&self, c: Change) {
        let r = &c.reading;
        let ev = SystemPerformanceDegraded {
            metric_name: r.key.clone(),
            current_value: r.value,
            threshold_value: r.threshold,
            affected_services: vec![r.group.clone(), self.service.clone()],
            suggested_actions: rules::suggested_actions(r, c.recovered),
            recovered: c.recovered,
        };
        // The system-monitor pool logs it for a person; here only for debugging.
        tracing::debug!(metric = %r.key, value = r.value, recovered = c.recovered, "threshold state changed");
        if let Err(e) = self.publisher.publish_typed(&ev, |e| e).await {
            tracing::warn!(error = %e, "could not publish system.performance.degraded");
        }
    }
}
