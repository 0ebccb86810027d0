//! The router actor: one per (stream, consumer group) per process. It reads the
//! stream (and the group's redelivery stream) with `XREADGROUP ... BLOCK` on a
//! connection of its own, hands entries to its workers, acks successes in batches,
//! schedules retries, dead-letters what cannot succeed, keeps entries with the same
//! ordering key in order, takes over entries of consumers that died, keeps its own
//! entries' leases fresh, and retires consumers that are gone.
//!
//! Invariants:
//! - an entry is acked only after its handler succeeded, or after it was moved to
//!   the dead letters in the same atomic step, or when it cannot ever run (trimmed,
//!   or of a type this group does not handle);
//! - at most `capacity` entries are held: the router reads only as much as its
//!   workers have room for, so a slow handler slows reading instead of filling memory;
//! - an entry held here is never dispatched twice by this router, and its idle time
//!   is refreshed so no other consumer claims it while it runs or waits;
//! - entries with the same ordering key run one at a time in the order they were
//!   read, and a key waits while its holder waits for a retry;
//! - while draining, nothing new is read or claimed; the drain completes when
//!   everything held has ended and every ack has been written.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::sync::oneshot;

use crate::catalog::{Catalog, CheckError};
use crate::envelope::{Envelope, now_millis};
use crate::handler::{Delivery, Handler, HandlerError};
use crate::health::Health;
use crate::hooks::{DeadLetter, DeadLetterReason, Hooks};
use crate::pool::PoolOptions;
use crate::redis_io::{self, CLAIM, DEAD_LETTER, Entry, RETIRE_CONSUMERS};
use crate::stats::RouteStats;
use crate::worker::{Deliver, Outcome, Worker};

/// One stream a router reads: the main stream, or its group's redelivery stream.
pub(crate) struct Source {
    pub(crate) key: String,
    /// The group's retry schedule for entries of this stream.
    pub(crate) retry_key: String,
}

/// Everything fixed about one router.
pub(crate) struct Route {
    pub(crate) stream: String,
    /// `sources[0]` is the stream itself; `sources[1]` the group's redelivery stream.
    pub(crate) sources: Vec<Source>,
    pub(crate) dlq_key: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    /// Its line on the health board.
    pub(crate) part: String,
    pub(crate) options: PoolOptions,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) fallback: Option<Handler>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) hooks: Hooks,
    pub(crate) stats: Arc<RouteStats>,
    pub(crate) dlq_maxlen: u64,
}

impl Route {
    fn handler_for(&self, event_type: &str) -> Option<Handler> {
        self.handlers
            .get(event_type)
            .or(self.fallback.as_ref())
            .cloned()
    }

    fn source_of(&self, entry: &Entry) -> usize {
        self.sources
            .iter()
            .position(|s| s.key == entry.key)
            .unwrap_or(0)
    }
}

/// An entry this router holds: running on a worker, or waiting behind an earlier
/// entry with the same ordering key.
struct InFlight {
    entry: Entry,
    /// The worker running it; `None` while it waits for its key.
    worker: Option<usize>,
    started: Instant,
    event_type: String,
    ordering_key: Option<String>,
}

/// An entry ready to run, kept while it waits for its ordering key.
struct Ready {
    id: String,
    envelope: Envelope,
    handler: Handler,
}

/// The state of one ordering key.
#[derive(Default)]
struct KeyState {
    /// The entry that holds the key (running, or waiting for its retry).
    holder: Option<String>,
    /// When a holder parked for a retry is given up on (it may have been claimed by
    /// another process), so the key's queue does not wait forever.
    parked_until: Option<Instant>,
    /// Later entries with the key, in stream order.
    waiting: VecDeque<Ready>,
}

pub(crate) struct Router {
    route: Arc<Route>,
    client: redis::Client,
    /// Shared, pipelined connection for acks, claims and scripts.
    shared: ConnectionManager,
    /// This router's own connection for blocking reads.
    reader: Option<MultiplexedConnection>,
    /// `CLIENT ID` of `reader`, to unblock it at shutdown.
    reader_id: Option<i64>,
    workers: Vec<Addr<Worker>>,
    /// Entries running per worker.
    load: Vec<usize>,
    in_flight: HashMap<String, InFlight>,
    /// Entries waiting to be acked, by source.
    acks: Vec<(usize, String)>,
    /// Ordering keys in use.
    keys: HashMap<String, KeyState>,
    acking: bool,
    reading: bool,
    connecting: bool,
    claiming: bool,
    /// Where the next scan for stale entries starts, per source.
    claim_cursors: Vec<String>,
    /// Scripts and retry writes under way (a drain waits for them).
    ops: usize,
    draining: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    health: Health,
}

impl Router {
    pub(crate) fn new(
        route: Arc<Route>,
        client: redis::Client,
        shared: ConnectionManager,
        workers: Vec<Addr<Worker>>,
        health: Health,
    ) -> Self {
        let n = workers.len();
        let sources = route.sources.len();
        Router {
            route,
            client,
            shared,
            reader: None,
            reader_id: None,
            workers,
            load: vec![0; n],
            in_flight: HashMap::new(),
            acks: Vec::new(),
            keys: HashMap::new(),
            acking: false,
            reading: false,
            connecting: false,
            claiming: false,
            claim_cursors: vec!["-".into(); sources],
            ops: 0,
            draining: false,
            drain_waiters: Vec::new(),
            health,
        }
    }

    fn opts(&self) -> &PoolOptions {
        &self.route.options
    }

    fn room(&self) -> usize {
        self.opts().capacity().saturating_sub(self.in_flight.len())
    }

    /// Opens the blocking-read connection, retrying with backoff until it works.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.draining {
            return;
        }
        self.connecting = true;
        let client = self.client.clone();
        let timeout = Duration::from_millis(self.opts().block_ms) + Duration::from_secs(10);
        let health = self.health.clone();
        let part = self.route.part.clone();
        let open = move || {
            let client = client.clone();
            async move {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(timeout));
                let mut c = client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await?;
                let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut c).await?;
                Ok::<_, RedisError>((c, id))
            }
        };
        let fut = open
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times(),
            )
            .notify(move |e, d| {
                health.down(&part, format!("redis unreachable: {e}"));
                tracing::warn!(router = %part, error = %e, retry_in_ms = d.as_millis() as u64, "reconnecting");
            });
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, ctx| {
            act.connecting = false;
            match res {
                Ok((conn, id)) => {
                    act.reader = Some(conn);
                    act.reader_id = Some(id);
                    act.health.up(&act.route.part);
                    act.fill(ctx);
                }
                Err(e) => {
                    tracing::error!(router = %act.route.part, error = %e, "giving up connecting");
                    act.connect(ctx);
                }
            }
        }));
    }

    /// Starts a read if there is room and none is under way.
    fn fill(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.reading {
            return;
        }
        let Some(mut conn) = self.reader.clone() else {
            return;
        };
        let room = self.room();
        // Under load, wait until half the capacity is free: fewer, larger reads.
        // When idle, any room is worth a (blocking) read.
        if room == 0 || (!self.in_flight.is_empty() && room < self.opts().capacity() / 2) {
            return;
        }
        self.reading = true;
        let r = &self.route;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&r.group)
            .arg(&r.consumer)
            .arg("COUNT")
            .arg(room.min(r.options.read_count))
            .arg("BLOCK")
            .arg(r.options.block_ms)
            .arg("STREAMS");
        for src in &r.sources {
            cmd.arg(&src.key);
        }
        for _ in &r.sources {
            cmd.arg(">");
        }
        let fut = async move { cmd.query_async::<Value>(&mut conn).await };
        ctx.spawn(
            actix::fut::wrap_future(fut).map(|res, act: &mut Self, ctx| act.on_read(res, ctx)),
        );
    }

    fn on_read(&mut self, res: Result<Value, RedisError>, ctx: &mut Context<Self>) {
        self.reading = false;
        match res {
            Ok(v) => {
                for entry in redis_io::parse_stream_reply(v) {
                    self.dispatch(entry, ctx);
                }
                self.fill(ctx);
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis lost the group (restarted without persistence, or someone
                // deleted it): make it again and go on.
                tracing::warn!(router = %self.route.part, "consumer group missing; recreating it");
                let mut conn = self.shared.clone();
                let r = self.route.clone();
                let fut = async move {
                    let start = r.options.start_from == crate::pool::StartFrom::Beginning;
                    for (i, src) in r.sources.iter().enumerate() {
                        redis_io::ensure_group(&mut conn, &src.key, &r.group, start || i > 0)
                            .await?;
                    }
                    Ok::<(), RedisError>(())
                };
                ctx.spawn(
                    actix::fut::wrap_future(fut).map(|res, act: &mut Self, ctx| {
                        if let Err(e) = res {
                            act.health
                                .down(&act.route.part, format!("cannot create group: {e}"));
                        }
                        ctx.run_later(Duration::from_millis(100), |act, ctx| act.fill(ctx));
                    }),
                );
            }
            Err(e) if is_connection_error(&e) => {
                tracing::warn!(router = %self.route.part, error = %e, "read failed; reconnecting");
                self.health.down(&self.route.part, format!("redis: {e}"));
                self.reader = None;
                self.reader_id = None;
                self.connect(ctx);
            }
            Err(e) => {
                tracing::error!(router = %self.route.part, error = %e, "read refused");
                self.health
                    .down(&self.route.part, format!("redis refused the read: {e}"));
                ctx.run_later(Duration::from_secs(1), |act, ctx| {
                    if act.reader.is_some() {
                        act.health.up(&act.route.part);
                    }
                    act.fill(ctx)
                });
            }
        }
        self.maybe_finish_drain();
    }

    /// Decides what to do with one entry: run it, queue it behind its ordering key,
    /// skip it, or set it aside.
    fn dispatch(&mut self, entry: Entry, ctx: &mut Context<Self>) {
        if self.in_flight.contains_key(&entry.id) {
            return;
        }
        if entry.fields.is_empty() {
            RouteStats::add(&self.route.stats.gone, 1);
            tracing::warn!(router = %self.route.part, entry = %entry.id, "pending entry was trimmed from the stream; acking it");
            let src = self.route.source_of(&entry);
            self.ack(src, entry.id, ctx);
            return;
        }
        let env = match Envelope::from_pairs(entry.pairs()) {
            Ok(env) => env,
            Err(e) => {
                return self.dead_letter(
                    entry,
                    DeadLetterReason::InvalidEvent,
                    e.to_string(),
                    None,
                    ctx,
                );
            }
        };
        let checked = if self.opts().validate_payloads {
            self.route.catalog.check(env)
        } else {
            Ok(env)
        };
        let env = match checked {
            Ok(env) => env,
            Err(e) => {
                let reason = match e {
                    CheckError::UnknownVersion { .. } => DeadLetterReason::UnknownVersion,
                    _ => DeadLetterReason::InvalidEvent,
                };
                return self.dead_letter(entry, reason, e.to_string(), None, ctx);
            }
        };
        let Some(handler) = self.route.handler_for(&env.event_type) else {
            RouteStats::add(&self.route.stats.skipped, 1);
            let src = self.route.source_of(&entry);
            self.ack(src, entry.id, ctx);
            return;
        };
        if entry.deliveries > self.opts().max_deliveries {
            let msg = format!(
                "delivered {} times, more than the {} allowed",
                entry.deliveries,
                self.opts().max_deliveries
            );
            return self.dead_letter(entry, DeadLetterReason::MaxDeliveries, msg, Some(env), ctx);
        }
        let ordering_key =
            self.opts()
                .ordering_key_for(&env.event_type)
                .map(|field| match env.data.get(field) {
                    Some(serde_json::Value::String(s)) => format!("{field}={s}"),
                    Some(v) => format!("{field}={v}"),
                    None => format!("{field}=<none>"),
                });
        let id = entry.id.clone();
        self.in_flight.insert(
            id.clone(),
            InFlight {
                entry,
                worker: None,
                started: Instant::now(),
                event_type: env.event_type.clone(),
                ordering_key: ordering_key.clone(),
            },
        );
        let ready = Ready {
            id: id.clone(),
            envelope: env,
            handler,
        };
        match ordering_key {
            None => self.run(ready, ctx),
            Some(k) => {
                let state = self.keys.entry(k).or_default();
                match &state.holder {
                    Some(holder) if *holder != id => state.waiting.push_back(ready),
                    _ => {
                        state.holder = Some(id);
                        state.parked_until = None;
                        self.run(ready, ctx);
                    }
                }
            }
        }
    }

    /// Hands a ready entry to the least loaded worker.
    fn run(&mut self, ready: Ready, ctx: &mut Context<Self>) {
        let Ready {
            id,
            envelope,
            handler,
        } = ready;
        let worker = (0..self.load.len())
            .min_by_key(|i| self.load[*i])
            .unwrap_or_default();
        self.load[worker] += 1;
        let mut attempt = 1;
        if let Some(f) = self.in_flight.get_mut(&id) {
            f.worker = Some(worker);
            f.started = Instant::now();
            attempt = f.entry.deliveries;
        }
        let delivery = Delivery {
            envelope,
            entry_id: id.clone(),
            stream: self.route.stream.clone(),
            attempt,
        };
        let deliver = Deliver {
            timeout: self.opts().timeout_for(&delivery.envelope.event_type),
            span: self.route.hooks.span(&delivery, &self.route.group),
            delivery,
            handler,
        };
        let send = self.workers[worker].send(deliver);
        ctx.spawn(
            actix::fut::wrap_future(send)
                .map(move |res, act: &mut Self, ctx| act.on_done(id, res, ctx)),
        );
    }

    /// The entry holding `key` is done with it (handled or dead-lettered): the next
    /// waiting entry with the key runs.
    fn release_key(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        match state.waiting.pop_front() {
            Some(next) => {
                state.holder = Some(next.id.clone());
                state.parked_until = None;
                self.run(next, ctx);
            }
            None => {
                self.keys.remove(key);
            }
        }
    }

    fn on_done(&mut self, id: String, res: Result<Outcome, MailboxError>, ctx: &mut Context<Self>) {
        let Some(f) = self.in_flight.remove(&id) else {
            return;
        };
        if let Some(w) = f.worker {
            self.load[w] = self.load[w].saturating_sub(1);
        }
        let stats = self.route.stats.clone();
        RouteStats::add(&stats.busy_us, f.started.elapsed().as_micros() as u64);
        let src = self.route.source_of(&f.entry);
        let key = f.ordering_key.clone();
        let event_type = f.event_type.clone();
        let mut parked = false;
        match res {
            Ok(Outcome::Done) => {
                RouteStats::add(&stats.handled, 1);
                self.ack(src, id, ctx);
            }
            Ok(Outcome::Failed(HandlerError::Permanent(m))) => {
                RouteStats::add(&stats.failed, 1);
                self.dead_letter(f.entry, DeadLetterReason::HandlerFailed, m, None, ctx);
            }
            Ok(Outcome::Failed(HandlerError::Retryable(m))) => {
                parked = self.retry_or_dead_letter(f, DeadLetterReason::HandlerFailed, m, ctx)
            }
            Ok(Outcome::Panicked(m)) => {
                parked = self.retry_or_dead_letter(f, DeadLetterReason::Panicked, m, ctx)
            }
            Ok(Outcome::TimedOut) => {
                let m = format!(
                    "handler ran past {} ms",
                    self.opts().timeout_for(&f.event_type).as_millis()
                );
                parked = self.retry_or_dead_letter(f, DeadLetterReason::Timeout, m, ctx)
            }
            Err(e) => {
                let m = format!("worker stopped while handling: {e}");
                parked = self.retry_or_dead_letter(f, DeadLetterReason::Panicked, m, ctx)
            }
        }
        if let Some(k) = key {
            if parked {
                // The key waits for this entry's retry; later entries stay queued.
                let slack = Duration::from_millis(10 * self.opts().claim_interval_ms + 5000);
                let policy_max =
                    Duration::from_millis(self.opts().retry_for(&event_type).max_delay_ms);
                if let Some(state) = self.keys.get_mut(&k) {
                    state.parked_until = Some(Instant::now() + policy_max + slack);
                }
            } else {
                self.release_key(&k, ctx);
            }
        }
        self.fill(ctx);
        self.maybe_finish_drain();
    }

    /// Schedules another attempt in Redis, or gives up when attempts are spent.
    /// True when a retry was scheduled.
    fn retry_or_dead_letter(
        &mut self,
        f: InFlight,
        reason: DeadLetterReason,
        error: String,
        ctx: &mut Context<Self>,
    ) -> bool {
        RouteStats::add(&self.route.stats.failed, 1);
        let policy = self.opts().retry_for(&f.event_type);
        let entry = f.entry;
        if !policy.allows_another(entry.deliveries) {
            self.dead_letter(entry, reason, error, None, ctx);
            return false;
        }
        let delay = policy.delay(entry.deliveries);
        tracing::info!(
            router = %self.route.part, entry = %entry.id, attempt = entry.deliveries,
            retry_in_ms = delay.as_millis() as u64, %reason, error = %error, "attempt failed; retrying later"
        );
        RouteStats::add(&self.route.stats.retried, 1);
        let due = now_millis().timestamp_millis() + delay.as_millis() as i64;
        let mut conn = self.shared.clone();
        let key = self.route.sources[self.route.source_of(&entry)]
            .retry_key
            .clone();
        let id = entry.id;
        self.ops += 1;
        let fut = async move {
            redis::cmd("ZADD")
                .arg(&key)
                .arg(due)
                .arg(&id)
                .query_async::<()>(&mut conn)
                .await
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| {
            act.ops -= 1;
            if let Err(e) = res {
                // The entry stays pending; it is claimed again once it looks stale.
                tracing::warn!(router = %act.route.part, error = %e, "could not schedule a retry");
            }
            act.maybe_finish_drain();
        }));
        true
    }

    /// Moves an entry to `{stream}.dlq` and acks it, atomically.
    fn dead_letter(
        &mut self,
        entry: Entry,
        reason: DeadLetterReason,
        error: String,
        envelope: Option<Envelope>,
        ctx: &mut Context<Self>,
    ) {
        let r = self.route.clone();
        tracing::warn!(router = %r.part, entry = %entry.id, %reason, error = %error, "dead-lettering entry");
        let src = &r.sources[r.source_of(&entry)];
        let mut inv = DEAD_LETTER.prepare_invoke();
        inv.key(&src.key).key(&r.dlq_key).key(&src.retry_key);
        inv.arg(&r.group).arg(&entry.id).arg(r.dlq_maxlen);
        for (k, v) in &entry.fields {
            if !k.starts_with("dlq_") {
                inv.arg(k).arg(v.as_slice());
            }
        }
        let at = now_millis().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        inv.arg("dlq_reason").arg(reason.as_str());
        inv.arg("dlq_error").arg(&error);
        inv.arg("dlq_group").arg(&r.group);
        inv.arg("dlq_attempts").arg(entry.deliveries);
        inv.arg("dlq_original_id").arg(&entry.id);
        inv.arg("dlq_at").arg(at);
        let mut conn = self.shared.clone();
        self.ops += 1;
        let fut = async move { inv.invoke_async::<Option<String>>(&mut conn).await };
        ctx.spawn(actix::fut::wrap_future(fut).map(move |res, act: &mut Self, _| {
            act.ops -= 1;
            match res {
                Ok(Some(dlq_id)) => {
                    RouteStats::add(&act.route.stats.dead_lettered, 1);
                    RouteStats::add(&act.route.stats.acked, 1);
                    let envelope = envelope.or_else(|| Envelope::from_pairs(entry.pairs()).ok());
                    act.route.hooks.dead_letter(&DeadLetter {
                        stream: act.route.stream.clone(),
                        group: act.route.group.clone(),
                        original_id: entry.id,
                        dlq_id,
                        reason,
                        error,
                        attempts: entry.deliveries,
                        envelope,
                    });
                }
                Ok(None) => {
                    tracing::info!(router = %act.route.part, entry = %entry.id, "entry was no longer pending; not dead-lettered twice");
                }
                Err(e) => {
                    // Still pending: it is claimed again once stale and ends here again.
                    tracing::warn!(router = %act.route.part, error = %e, "could not dead-letter entry");
                }
            }
            act.maybe_finish_drain();
        }));
    }

    fn ack(&mut self, source: usize, id: String, ctx: &mut Context<Self>) {
        self.acks.push((source, id));
        self.flush_acks(ctx);
    }

    /// Writes buffered acks. While one `XACK` is under way the next ones gather, so
    /// acks batch under load and go out at once when idle.
    fn flush_acks(&mut self, ctx: &mut Context<Self>) {
        if self.acking || self.acks.is_empty() {
            return;
        }
        self.acking = true;
        let batch = std::mem::take(&mut self.acks);
        let mut pipe = redis::pipe();
        for (i, src) in self.route.sources.iter().enumerate() {
            let ids: Vec<&String> = batch
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|(_, id)| id)
                .collect();
            if !ids.is_empty() {
                pipe.cmd("XACK")
                    .arg(&src.key)
                    .arg(&self.route.group)
                    .arg(ids);
            }
        }
        let mut conn = self.shared.clone();
        let fut = async move { pipe.query_async::<Vec<u64>>(&mut conn).await };
        ctx.spawn(actix::fut::wrap_future(fut).map(move |res, act: &mut Self, ctx| {
            act.acking = false;
            match res {
                Ok(n) => RouteStats::add(&act.route.stats.acked, n.iter().sum()),
                Err(e) => {
                    tracing::warn!(router = %act.route.part, error = %e, count = batch.len(), "ack failed; will retry");
                    act.acks.extend(batch);
                    ctx.run_later(Duration::from_millis(200), |act, ctx| act.flush_acks(ctx));
                    return;
                }
            }
            act.flush_acks(ctx);
            act.maybe_finish_drain();
        }));
    }

    /// Takes due retries and entries of dead consumers, from every source.
    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.claiming || self.reader.is_none() {
            return;
        }
        self.release_abandoned_keys(ctx);
        // Holders parked for a retry always get a place, or a full queue behind
        // their key could never move again.
        let parked = self
            .keys
            .values()
            .filter(|k| k.parked_until.is_some())
            .count();
        let room = self.room() + parked;
        if room == 0 {
            return;
        }
        self.claiming = true;
        let r = self.route.clone();
        let now = now_millis().timestamp_millis();
        let invocations: Vec<_> = r
            .sources
            .iter()
            .zip(&self.claim_cursors)
            .map(|(src, cursor)| {
                let mut inv = CLAIM.prepare_invoke();
                inv.key(&src.key).key(&src.retry_key);
                inv.arg(&r.group)
                    .arg(&r.consumer)
                    .arg(r.options.claim_idle_ms)
                    .arg(room)
                    .arg(now)
                    .arg(cursor);
                inv
            })
            .collect();
        let mut conn = self.shared.clone();
        let fut = async move {
            let mut out = Vec::new();
            for inv in invocations {
                out.push(inv.invoke_async::<Value>(&mut conn).await?);
            }
            Ok::<_, RedisError>(out)
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(move |res, act: &mut Self, ctx| {
            act.claiming = false;
            match res {
                Ok(replies) => {
                    for (i, v) in replies.into_iter().enumerate() {
                        let c = redis_io::parse_claim(v);
                        act.claim_cursors[i] = c.cursor;
                        if c.gone > 0 {
                            RouteStats::add(&act.route.stats.gone, c.gone);
                            tracing::warn!(router = %act.route.part, count = c.gone, "pending entries had been trimmed; acked them");
                        }
                        RouteStats::add(&act.route.stats.claimed, c.entries.len() as u64);
                        for mut e in c.entries {
                            e.key.clone_from(&r.sources[i].key);
                            act.dispatch(e, ctx);
                        }
                    }
                }
                Err(e) => tracing::warn!(router = %act.route.part, error = %e, "claim failed"),
            }
            act.maybe_finish_drain();
        }));
    }

    /// A key whose holder went to retry and did not come back in time (another
    /// process may have claimed it) stops blocking the entries behind it.
    fn release_abandoned_keys(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let stale: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, k)| k.parked_until.is_some_and(|t| t < now))
            .map(|(name, _)| name.clone())
            .collect();
        for k in stale {
            tracing::warn!(router = %self.route.part, key = %k, "retry of the key's holder did not come back; moving on");
            self.release_key(&k, ctx);
        }
    }

    /// Resets the idle time of entries that have been held a while (running or
    /// waiting for their key), so that no other consumer takes them for abandoned.
    fn refresh_leases(&mut self, ctx: &mut Context<Self>) {
        let min_age = Duration::from_millis(self.opts().claim_idle_ms / 4);
        let mut pipe = redis::pipe();
        let mut any = false;
        for (i, src) in self.route.sources.iter().enumerate() {
            let ids: Vec<&String> = self
                .in_flight
                .iter()
                .filter(|(_, f)| {
                    f.started.elapsed() >= min_age && self.route.source_of(&f.entry) == i
                })
                .map(|(id, _)| id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            any = true;
            pipe.cmd("XCLAIM")
                .arg(&src.key)
                .arg(&self.route.group)
                .arg(&self.route.consumer)
                .arg(0)
                .arg(ids)
                .arg("JUSTID")
                .ignore();
        }
        if !any {
            return;
        }
        let mut conn = self.shared.clone();
        let fut = async move { pipe.query_async::<()>(&mut conn).await };
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| {
            if let Err(e) = res {
                tracing::warn!(router = %act.route.part, error = %e, "lease refresh failed");
            }
        }));
    }

    /// Removes consumers of the group that have been silent long and own nothing.
    fn retire_consumers(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let r = &self.route;
        let invocations: Vec<_> = r
            .sources
            .iter()
            .map(|src| {
                let mut inv = RETIRE_CONSUMERS.prepare_invoke();
                inv.key(&src.key)
                    .arg(&r.group)
                    .arg(r.options.consumer_gc_idle_ms);
                inv
            })
            .collect();
        let mut conn = self.shared.clone();
        let fut = async move {
            let mut gone = Vec::new();
            for inv in invocations {
                gone.extend(inv.invoke_async::<Vec<String>>(&mut conn).await?);
            }
            Ok::<_, RedisError>(gone)
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| match res {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(router = %act.route.part, consumers = ?gone, "retired consumers that were gone");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(router = %act.route.part, error = %e, "consumer retirement failed"),
        }));
    }

    fn maybe_finish_drain(&mut self) {
        if self.draining
            && !self.reading
            && self.in_flight.is_empty()
            && self.acks.is_empty()
            && !self.acking
            && !self.claiming
            && self.ops == 0
        {
            for tx in self.drain_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.down(&self.route.part, "connecting");
        self.connect(ctx);
        let o = self.opts().clone();
        ctx.run_interval(PoolOptions::ms(o.claim_interval_ms.max(10)), |act, ctx| {
            act.claim(ctx)
        });
        ctx.run_interval(
            PoolOptions::ms((o.claim_idle_ms / 8).max(10)),
            |act, ctx| act.refresh_leases(ctx),
        );
        ctx.run_interval(
            PoolOptions::ms((o.consumer_gc_idle_ms / 2).clamp(500, 300_000)),
            |act, ctx| act.retire_consumers(ctx),
        );
    }
}

impl Supervised for Router {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // Whatever was held is still pending in Redis and is claimed again once
        // stale; start clean.
        tracing::error!(router = %self.route.part, "router restarted");
        self.reader = None;
        self.reader_id = None;
        self.reading = false;
        self.connecting = false;
        self.claiming = false;
        self.acking = false;
        self.ops = 0;
        self.in_flight.clear();
        self.keys.clear();
        self.load.iter_mut().for_each(|l| *l = 0);
    }
}

/// Stop reading, finish what is in flight, write every ack, then answer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Drain;

impl actix::Handler<Drain> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        if let (true, Some(id)) = (self.reading, self.reader_id) {
            // Wake the blocked XREADGROUP now instead of waiting out its BLOCK.
            let mut conn = self.shared.clone();
            let fut = async move {
                redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query_async::<i64>(&mut conn)
                    .await
            };
            ctx.spawn(actix::fut::wrap_future(fut).map(|_, _: &mut Self, _| ()));
        }
        self.maybe_finish_drain();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
