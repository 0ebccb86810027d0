//! The router actor: one per (stream, consumer group) per process. It reads the
//! stream (and the group's redelivery stream) on a connection of its own, hands
//! entries to its workers and decides what becomes of each. Its parts:
//! - this file: the read loop, dispatch, outcomes and the drain;
//! - [`ordering`]: ordering keys (a plain struct);
//! - `acks`: batched acks; `failures`: retries and dead letters;
//! - `upkeep`: claims of due retries and abandoned entries, retirement of consumers,
//!   leases lost to another consumer.
//!
//! The Redis calls are in [`crate::group`]; leases are kept by
//! [`crate::leases::LeaseKeeper`] on another thread.
//!
//! Invariants:
//! - an entry is acked only after its handler succeeded, or after it was moved to
//!   the dead letters in the same atomic step, or when it cannot ever run (trimmed,
//!   or of a type this group does not handle);
//! - every entry is owned in Redis by the consumer of the worker that runs it
//!   (`<host>-<pid>-<pool>-<n>`): it is read or claimed for that worker, and waits
//!   for its ordering key to run there;
//! - at most `capacity` entries run or wait in workers' mailboxes; entries waiting
//!   behind an ordering key do not count against it (they cannot run anyway) but
//!   are bounded by `max_waiting`;
//! - an entry held here is never dispatched twice by this router, and its lease is
//!   kept while it is held; an entry whose lease was lost is forgotten here (its
//!   handler is cancelled) and never acked by this router;
//! - code of the application (upcasters, hooks) runs under a panic guard: a panic
//!   there costs one entry an attempt, never the router;
//! - while draining, nothing new is read or claimed, entries waiting for a key are
//!   let go, and the drain completes when everything running has ended and every
//!   ack has been written.

mod acks;
mod failures;
pub(crate) mod ordering;
mod upkeep;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backon::{ExponentialBuilder, Retryable};
use futures_util::future::AbortHandle;
use redis::RedisError;
use tokio::sync::oneshot;

use crate::catalog::{Catalog, CheckError};
use crate::conn::{Conn, ConnOptions, RedisClient, is_unblocked};
use crate::dispose::{Disposition, Outcome, dispose};
use crate::envelope::Envelope;
use crate::group::GroupBackend;
use crate::handler::{Delivery, Handler};
use crate::health::Health;
use crate::hooks::{DeadLetterReason, Hooks};
use crate::leases::{LeaseLost, Leases};
use crate::metrics::{Attempt, RouteMetrics, published_ms};
use crate::pool::PoolOptions;
use crate::redis_io::Entry;
use crate::stats::RouteStats;
use crate::worker::{Deliver, Worker, WorkerFactory, panic_message};

use ordering::OrderingKeys;

/// Everything fixed about one router.
pub(crate) struct Route {
    /// The stream (without prefix): the logical one on a partitioned stream.
    pub(crate) stream: String,
    /// The partition it reads, on a partitioned stream.
    pub(crate) partition: Option<u32>,
    /// Its line on the health board.
    pub(crate) part: String,
    pub(crate) options: PoolOptions,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) fallback: Option<Handler>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) hooks: Hooks,
    pub(crate) stats: Arc<RouteStats>,
    /// Per event type counts and timings (see [`crate::metrics`]).
    pub(crate) metrics: Arc<RouteMetrics>,
}

impl Route {
    fn handler_for(&self, event_type: &str) -> Option<Handler> {
        self.handlers
            .get(event_type)
            .or(self.fallback.as_ref())
            .cloned()
    }
}

/// An entry this router holds: running on a worker, or waiting behind an earlier
/// entry with the same ordering key. Its source is known from the moment it is read.
struct InFlight {
    entry: Entry,
    source: usize,
    /// The worker whose consumer owns it in Redis, and which runs it.
    worker: usize,
    /// The worker running it and the handle that cancels the call; `None` while it
    /// waits for its key.
    running: Option<(usize, AbortHandle)>,
    started: Instant,
    event_type: String,
    ordering_key: Option<String>,
    /// When it was published (ms since the epoch), for the latency.
    published_ms: i64,
}

/// An entry ready to run, kept while it waits for its ordering key.
pub(crate) struct Ready {
    id: String,
    envelope: Envelope,
    handler: Handler,
}

pub(crate) struct Router {
    route: Arc<Route>,
    client: RedisClient,
    backend: GroupBackend,
    leases: Arc<Leases>,
    /// This router's own connection for blocking reads.
    reader: Option<Conn>,
    /// `CLIENT ID` of `reader`, to unblock it at shutdown.
    reader_id: Option<i64>,
    workers: Vec<Addr<Worker>>,
    /// Workers `0..active` take new entries; those beyond finish what they run and
    /// are dropped (scaling down drains them first).
    active: usize,
    /// Starts worker `n` when the pool grows.
    factory: WorkerFactory,
    /// Entries running per worker.
    load: Vec<usize>,
    /// Entries held per worker: running, or waiting for their key to run there.
    held: Vec<usize>,
    /// The last read came back full: more is waiting, so the next read shares it
    /// out to every worker in one pipeline instead of blocking for one.
    backlog: bool,
    /// Where the search for the worker of the next blocking read starts, so
    /// workers with equal room take turns.
    next_reader: usize,
    in_flight: HashMap<String, InFlight>,
    /// How many of `in_flight` run (the rest wait for their key).
    running: usize,
    /// Entries waiting to be acked, by source.
    acks: Vec<(usize, String)>,
    keys: OrderingKeys<Ready>,
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
        client: RedisClient,
        backend: GroupBackend,
        leases: Arc<Leases>,
        (workers, factory): (Vec<Addr<Worker>>, WorkerFactory),
        health: Health,
    ) -> Self {
        let n = workers.len();
        route.stats.workers.store(n as u64, Ordering::Relaxed);
        let sources = backend.keys.sources.len();
        Router {
            route,
            client,
            backend,
            leases,
            reader: None,
            reader_id: None,
            workers,
            active: n,
            factory,
            load: vec![0; n],
            held: vec![0; n],
            backlog: false,
            next_reader: 0,
            in_flight: HashMap::new(),
            running: 0,
            acks: Vec::new(),
            keys: OrderingKeys::default(),
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

    /// Entries that may run or wait in the active workers' mailboxes.
    fn capacity(&self) -> usize {
        let o = self.opts();
        self.active * (o.concurrency + o.prefetch)
    }

    /// How many more entries may be read now: room among the running, and room
    /// for entries that may have to wait behind a key.
    fn room(&self) -> usize {
        let capacity = self.capacity();
        let run = capacity.saturating_sub(self.running);
        let held = (capacity + self.opts().max_waiting).saturating_sub(self.in_flight.len());
        run.min(held)
    }

    /// Grows or shrinks the pool to `n` workers. Growing starts workers at once;
    /// shrinking stops handing entries to the workers beyond `n`, which are dropped
    /// once their last entry is done (see [`Router::shed_retired`]).
    fn resize(&mut self, n: usize, ctx: &mut Context<Self>) {
        let n = n.max(1);
        while self.workers.len() < n {
            let i = self.workers.len();
            self.workers.push((self.factory)(i));
            self.load.push(0);
            self.held.push(0);
        }
        if n != self.active {
            tracing::info!(router = %self.route.part, from = self.active, to = n, "workers resized");
        }
        self.active = n;
        self.route.stats.workers.store(n as u64, Ordering::Relaxed);
        self.shed_retired();
        self.fill(ctx);
    }

    /// Drops retired workers (beyond `active`) that hold nothing any more, from the
    /// end, so indexes of the others stay valid; a dropped worker's actor stops.
    /// Not while a read or claim is under way: it may be bringing entries for them.
    fn shed_retired(&mut self) {
        if self.reading || self.claiming {
            return;
        }
        while self.workers.len() > self.active && self.held.last() == Some(&0) {
            self.workers.pop();
            self.load.pop();
            self.held.pop();
        }
    }

    /// Room at worker `w`: entries it may still take into its mailbox.
    fn free(&self, w: usize) -> usize {
        let o = self.opts();
        (o.concurrency + o.prefetch).saturating_sub(self.load[w])
    }

    /// The active worker with the most room, taking turns among equals.
    fn roomiest(&mut self) -> usize {
        let n = self.active.min(self.load.len()).max(1);
        let start = self.next_reader % n;
        let mut best = start;
        for i in 1..n {
            let w = (start + i) % n;
            if self.free(w) > self.free(best) {
                best = w;
            }
        }
        self.next_reader = best + 1;
        best
    }

    /// What to read for which worker, within `room`. With a backlog every worker
    /// with room gets its share in one pipeline; otherwise one blocking read for
    /// the roomiest worker of as many entries as it runs at once, so the start of
    /// a burst is spread over the workers instead of queued at one.
    fn asks(&mut self, room: usize) -> Vec<(usize, usize)> {
        let (concurrency, read_count) = (self.opts().concurrency, self.opts().read_count);
        if !self.backlog {
            let w = self.roomiest();
            let count = self.free(w).min(room).min(concurrency).min(read_count);
            return if count > 0 {
                vec![(w, count)]
            } else {
                Vec::new()
            };
        }
        let mut left = room;
        let mut asks = Vec::new();
        for w in 0..self.active.min(self.load.len()) {
            let count = self.free(w).min(left).min(read_count);
            if count > 0 {
                asks.push((w, count));
                left -= count;
            }
        }
        asks
    }

    /// Opens the blocking-read connection, and the connection for acks, scripts and
    /// claims, retrying with backoff until both work. Both are opened here, so
    /// their I/O runs on this router's arbiter: an ack does not wait for a thread
    /// that publishes or serves HTTP.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.draining {
            return;
        }
        self.connecting = true;
        let client = self.client.clone();
        let timeout = Duration::from_millis(self.opts().block_ms) + Duration::from_secs(10);
        let health = self.health.clone();
        let part = self.route.part.clone();
        let stream_key = self.backend.keys.sources[0].key.clone();
        let open = move || {
            let client = client.clone();
            let stream_key = stream_key.clone();
            async move {
                let mut c = client
                    .dedicated(ConnOptions {
                        response_timeout: timeout,
                        ..ConnOptions::default()
                    })
                    .await?;
                // On a cluster, the id on the node that serves the stream: the one
                // the blocked read waits on.
                let id = c
                    .on_node_of(&stream_key, redis::cmd("CLIENT").arg("ID"))
                    .await?;
                let id: i64 = redis::from_redis_value(id)?;
                let ops = client.shared(ConnOptions::default(), None).await?;
                Ok::<_, RedisError>((c, id, ops))
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
                Ok((conn, id, ops)) => {
                    act.backend = act.backend.on(ops);
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
        let Some(conn) = self.reader.clone() else {
            return;
        };
        let room = self.room();
        // Under load, wait until half the capacity is free: fewer, larger reads.
        // When idle, any room is worth a (blocking) read.
        if room == 0 || (self.running > 0 && room < self.capacity() / 2) {
            return;
        }
        let asks = self.asks(room);
        if asks.is_empty() {
            return;
        }
        self.reading = true;
        let backend = self.backend.clone();
        let block = (!self.backlog).then_some(self.opts().block_ms);
        let asked: usize = asks.iter().map(|(_, n)| n).sum();
        let fut = async move { backend.read(conn, &asks, block).await };
        ctx.spawn(
            actix::fut::wrap_future(fut)
                .map(move |res, act: &mut Self, ctx| act.on_read(res, asked, ctx)),
        );
    }

    fn on_read(
        &mut self,
        res: Result<Vec<(usize, Vec<Entry>)>, RedisError>,
        asked: usize,
        ctx: &mut Context<Self>,
    ) {
        self.reading = false;
        self.backlog = false;
        match res {
            Ok(got) => {
                let n: usize = got.iter().map(|(_, e)| e.len()).sum();
                self.backlog = n >= asked;
                for (worker, entries) in got {
                    for entry in entries {
                        self.dispatch(entry, worker, ctx);
                    }
                }
                self.shed_retired();
                self.fill(ctx);
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis lost the group (restarted without persistence, or someone
                // deleted it): make it again and go on.
                tracing::warn!(router = %self.route.part, "consumer group missing; recreating it");
                let from_start = self.opts().start_from == crate::pool::StartFrom::Beginning;
                let fut = self.backend.clone().ensure(from_start);
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
            Err(e) if is_unblocked(&e) => {
                // A failover moved the stream's master while the read was blocked:
                // nothing is wrong, read again on a fresh connection (to the new
                // master) without reporting the router down.
                tracing::info!(router = %self.route.part, error = %e, "read unblocked by a failover; reading again");
                self.reader = None;
                self.reader_id = None;
                self.connect(ctx);
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

    /// Decides what to do with one entry that worker `worker`'s consumer owns: run
    /// it there, queue it behind its ordering key, skip it, or set it aside.
    fn dispatch(&mut self, entry: Entry, worker: usize, ctx: &mut Context<Self>) {
        if self.in_flight.contains_key(&entry.id) {
            return;
        }
        let source = self.backend.keys.source_of(&entry.key);
        if entry.fields.is_empty() {
            RouteStats::add(&self.route.stats.gone, 1);
            tracing::warn!(router = %self.route.part, entry = %entry.id, "pending entry was trimmed from the stream; acking it");
            return self.ack(source, entry.id, ctx);
        }
        let env = match Envelope::from_pairs(entry.pairs()) {
            Ok(env) => env,
            Err(e) => {
                let reason = DeadLetterReason::InvalidEvent;
                return self.dead_letter(entry, (source, worker), reason, e.to_string(), None, ctx);
            }
        };
        // Only what this group handles is checked: a type it ignores (say, a newer
        // version its catalog does not know) is none of its business.
        let Some(handler) = self.route.handler_for(&env.event_type) else {
            RouteStats::add(&self.route.stats.skipped, 1);
            return self.ack(source, entry.id, ctx);
        };
        let env = match self.check(env) {
            Ok(env) => env,
            Err((reason, error)) => {
                return self.dead_letter(entry, (source, worker), reason, error, None, ctx);
            }
        };
        if entry.deliveries > self.opts().max_deliveries {
            let msg = format!(
                "delivered {} times, more than the {} allowed",
                entry.deliveries,
                self.opts().max_deliveries
            );
            let reason = DeadLetterReason::MaxDeliveries;
            return self.dead_letter(entry, (source, worker), reason, msg, Some(env), ctx);
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
        self.leases.hold(&id, source, worker);
        if let Some(h) = self.held.get_mut(worker) {
            *h += 1;
        }
        self.in_flight.insert(
            id.clone(),
            InFlight {
                entry,
                source,
                worker,
                running: None,
                started: Instant::now(),
                event_type: env.event_type.clone(),
                ordering_key: ordering_key.clone(),
                published_ms: published_ms(&id, env.timestamp.timestamp_millis()),
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
                if let Some(ready) = self.keys.admit(&k, &id, ready) {
                    self.run(ready, ctx);
                }
            }
        }
    }

    /// Validates and upcasts, under a panic guard: an upcaster is the
    /// application's code.
    fn check(&self, env: Envelope) -> Result<Envelope, (DeadLetterReason, String)> {
        if !self.opts().validate_payloads {
            return Ok(env);
        }
        let catalog = &self.route.catalog;
        match std::panic::catch_unwind(AssertUnwindSafe(|| catalog.check(env))) {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(e @ CheckError::UnknownVersion { .. })) => {
                Err((DeadLetterReason::UnknownVersion, e.to_string()))
            }
            Ok(Err(e)) => Err((DeadLetterReason::InvalidEvent, e.to_string())),
            Err(p) => Err((
                DeadLetterReason::Panicked,
                format!("upcaster {}", panic_message(p.as_ref())),
            )),
        }
    }

    /// Hands a ready entry to the worker whose consumer owns it.
    fn run(&mut self, ready: Ready, ctx: &mut Context<Self>) {
        let Ready {
            id,
            envelope,
            handler,
        } = ready;
        let (abort, registration) = AbortHandle::new_pair();
        let Some(f) = self.in_flight.get_mut(&id) else {
            return;
        };
        // A held entry keeps its worker alive (see shed_retired).
        let worker = f.worker.min(self.workers.len().saturating_sub(1));
        if f.running.is_none() {
            self.running += 1;
            self.route
                .stats
                .in_flight
                .store(self.running as u64, Ordering::Relaxed);
        }
        f.running = Some((worker, abort));
        f.started = Instant::now();
        self.load[worker] += 1;
        let delivery = Delivery {
            envelope,
            entry_id: id.clone(),
            stream: self.route.stream.clone(),
            attempt: f.entry.deliveries,
        };
        let (hooks, group) = (&self.route.hooks, &self.backend.keys.group);
        let span = std::panic::catch_unwind(AssertUnwindSafe(|| hooks.span(&delivery, group)))
            .unwrap_or_else(|p| {
                tracing::error!(router = %self.route.part, error = %panic_message(p.as_ref()), "the span hook panicked; using a plain span");
                tracing::info_span!("handle", event_type = %delivery.envelope.event_type)
            });
        let deliver = Deliver {
            timeout: self.opts().timeout_for(&delivery.envelope.event_type),
            span,
            delivery,
            handler,
            abort: registration,
        };
        let send = self.workers[worker].send(deliver);
        ctx.spawn(
            actix::fut::wrap_future(send)
                .map(move |res, act: &mut Self, ctx| act.on_done(id, res, ctx)),
        );
    }

    /// Takes an entry out of what this router holds; frees its worker slot.
    fn take(&mut self, id: &str) -> Option<InFlight> {
        let f = self.in_flight.remove(id)?;
        self.leases.release(id);
        if let Some(h) = self.held.get_mut(f.worker) {
            *h = h.saturating_sub(1);
        }
        if let Some((w, _)) = &f.running {
            self.running = self.running.saturating_sub(1);
            self.route
                .stats
                .in_flight
                .store(self.running as u64, Ordering::Relaxed);
            if let Some(l) = self.load.get_mut(*w) {
                *l = l.saturating_sub(1);
            }
        }
        self.shed_retired();
        Some(f)
    }

    /// The entry holding `key` is done with it: the next waiting entry runs. A
    /// waiting entry let go meanwhile (its lease went to another consumer) is
    /// skipped, or the key would wait for it for ever.
    fn release_key(&mut self, key: &str, ctx: &mut Context<Self>) {
        while let Some((id, next)) = self.keys.release(key) {
            if self.in_flight.contains_key(&id) {
                self.run(next, ctx);
                return;
            }
        }
    }

    fn on_done(&mut self, id: String, res: Result<Outcome, MailboxError>, ctx: &mut Context<Self>) {
        // Not held any more: its lease was lost and it was let go already.
        let Some(f) = self.take(&id) else {
            return;
        };
        let stats = self.route.stats.clone();
        let took = f.started.elapsed();
        RouteStats::add(&stats.busy_us, took.as_micros() as u64);
        let metrics = self.route.metrics.clone();
        let (event_type, published) = (f.event_type.as_str(), Some(f.published_ms));
        let outcome = res.unwrap_or_else(|e| Outcome::WorkerLost(e.to_string()));
        let policy = self.opts().retry_for(&f.event_type).clone();
        let key = f.ordering_key.clone();
        let mut parked = false;
        match dispose(outcome, f.entry.deliveries, &policy) {
            Disposition::Ack => {
                RouteStats::add(&stats.handled, 1);
                metrics.record(event_type, Attempt::Handled, took, published);
                self.ack(f.source, id, ctx);
            }
            Disposition::Forget => {}
            Disposition::RetryAfter(delay) => {
                RouteStats::add(&stats.failed, 1);
                metrics.record(event_type, Attempt::Failed, took, published);
                self.schedule_retry(f.entry, f.source, delay, ctx);
                parked = true;
            }
            Disposition::DeadLetter(reason, error) => {
                RouteStats::add(&stats.failed, 1);
                metrics.record(event_type, Attempt::Failed, took, published);
                self.dead_letter(f.entry, (f.source, f.worker), reason, error, None, ctx);
            }
        }
        if let Some(k) = key {
            if parked {
                // The key waits for this entry's retry; later entries stay queued,
                // but not for ever: the retry may be claimed by another process.
                let slack = Duration::from_millis(10 * self.opts().claim_interval_ms + 5000);
                let max = Duration::from_millis(policy.max_delay_ms);
                self.keys.park(&k, Instant::now() + max + slack);
            } else {
                self.release_key(&k, ctx);
            }
        }
        self.fill(ctx);
        self.maybe_finish_drain();
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
        self.running = 0;
        self.route.stats.in_flight.store(0, Ordering::Relaxed);
        for f in self.in_flight.values() {
            if let Some((_, abort)) = &f.running {
                abort.abort();
            }
        }
        self.in_flight.clear();
        self.leases.clear();
        self.keys.clear();
        self.load.iter_mut().for_each(|l| *l = 0);
        self.held.iter_mut().for_each(|h| *h = 0);
        self.backlog = false;
    }
}

/// Stop reading, let go of what waits for a key, finish what runs, write every
/// ack, then answer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Drain;

impl actix::Handler<Drain> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        // Never started: they stay pending in Redis and another consumer claims
        // them once their lease (no longer kept) runs out.
        for id in self.keys.drop_waiting() {
            self.take(&id);
        }
        if let (true, Some(id)) = (self.reading, self.reader_id) {
            // Wake the blocked XREADGROUP now instead of waiting out its BLOCK.
            let fut = self.backend.clone().unblock(id);
            ctx.spawn(actix::fut::wrap_future(fut).map(|_, _: &mut Self, _| ()));
        }
        self.maybe_finish_drain();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Set the number of workers (see [`Router::resize`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Resize(pub(crate) usize);

impl actix::Handler<Resize> for Router {
    type Result = ();

    fn handle(&mut self, msg: Resize, ctx: &mut Context<Self>) {
        self.resize(msg.0, ctx);
    }
}

/// A fault injected on purpose by a test: the router panics outside every guard,
/// as a bug in the router itself would.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Crash;

impl actix::Handler<Crash> for Router {
    type Result = ();

    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("fault injected into {}", self.route.part);
    }
}

impl actix::Handler<LeaseLost> for Router {
    type Result = ();

    fn handle(&mut self, msg: LeaseLost, ctx: &mut Context<Self>) {
        self.on_leases_lost(msg.0, ctx);
    }
}
