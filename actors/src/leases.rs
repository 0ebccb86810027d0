//! Leases: a live consumer keeps the entries it holds (running, or waiting for
//! their ordering key) from being claimed by others, by resetting their idle time
//! in Redis well before `claim_idle_ms`.
//!
//! The refresh runs on an arbiter of its own, with a Redis connection of its own,
//! so a handler that blocks its thread (a CPU-heavy parse, a blocking call) cannot
//! stop its entries' leases from being kept: the classic cause of two processes
//! running the same entry. The refresh only touches entries this consumer still
//! owns (`scripts/refresh.lua`); an entry another consumer claimed meanwhile (this
//! process lost Redis for longer than `claim_idle_ms`) is reported to its router,
//! which cancels the handler and leaves the entry to its new owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use redis::aio::ConnectionManager;

use crate::conn::{Conn, ConnOptions, RedisClient};

use crate::group::GroupBackend;

/// One held entry: its source, the worker whose consumer owns it, since when.
type Held = (usize, usize, Instant);

/// What one router holds: entry id -> [`Held`].
#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Held>>,
}

impl Leases {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Held>) -> R) -> R {
        // Every update is one insert or remove: a poisoned map is still consistent.
        f(&mut self.held.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn hold(&self, id: &str, source: usize, owner: usize) {
        self.with(|m| {
            m.insert(id.to_owned(), (source, owner, Instant::now()));
        });
    }

    pub(crate) fn release(&self, id: &str) {
        self.with(|m| {
            m.remove(id);
        });
    }

    pub(crate) fn clear(&self) {
        self.with(HashMap::clear);
    }

    /// Ids held at least `min_age`, per (source, owner).
    fn due(&self, min_age: Duration) -> HashMap<(usize, usize), Vec<String>> {
        let mut out: HashMap<(usize, usize), Vec<String>> = HashMap::new();
        self.with(|m| {
            for (id, (src, owner, since)) in m.iter() {
                if since.elapsed() >= min_age {
                    out.entry((*src, *owner)).or_default().push(id.clone());
                }
            }
        });
        out
    }
}

/// Entries whose lease another consumer took: their router cancels and forgets
/// them.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LeaseLost(pub(crate) Vec<String>);

/// Where a lease table reports lost leases (its router); replaced when a dead
/// router is started again.
pub(crate) type LostSink = Arc<Mutex<Recipient<LeaseLost>>>;

/// One router's leases, as the keeper sees them.
pub(crate) struct LeaseTable {
    pub(crate) backend: GroupBackend,
    pub(crate) leases: Arc<Leases>,
    pub(crate) router: LostSink,
    /// Refresh entries held at least this long...
    pub(crate) min_age: Duration,
    /// ...this often.
    pub(crate) every: Duration,
    pub(crate) part: String,
}

/// Keeps every router's leases of this process, on its own arbiter.
pub(crate) struct LeaseKeeper {
    client: RedisClient,
    conn: Option<Conn>,
    tables: Vec<(LeaseTable, Instant, bool)>,
}

impl LeaseKeeper {
    pub(crate) fn new(client: RedisClient, tables: Vec<LeaseTable>) -> Self {
        let now = Instant::now();
        LeaseKeeper {
            client,
            conn: None,
            tables: tables.into_iter().map(|t| (t, now, false)).collect(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        for i in 0..self.tables.len() {
            let (table, last, busy) = &mut self.tables[i];
            if *busy || last.elapsed() < table.every {
                continue;
            }
            *last = Instant::now();
            let due = table.leases.due(table.min_age);
            if due.is_empty() {
                continue;
            }
            *busy = true;
            let backend = table.backend.on(conn.clone());
            let fut = async move {
                let mut lost = Vec::new();
                for ((src, owner), ids) in due {
                    lost.extend(backend.clone().refresh(src, owner, ids).await?);
                }
                Ok::<_, redis::RedisError>(lost)
            };
            ctx.spawn(actix::fut::wrap_future(fut).map(move |res, act: &mut Self, _| {
                let (table, _, busy) = &mut act.tables[i];
                *busy = false;
                match res {
                    Ok(lost) if !lost.is_empty() => {
                        tracing::warn!(router = %table.part, entries = ?lost, "leases lost to another consumer; cancelling their handlers");
                        for id in &lost {
                            table.leases.release(id);
                        }
                        let router = table.router.lock().unwrap_or_else(PoisonError::into_inner).clone();
                        router.do_send(LeaseLost(lost));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(router = %table.part, error = %e, "lease refresh failed"),
                }
            }));
        }
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        // Opened here so its I/O runs on this arbiter, not on a handler's thread.
        let open = async move {
            match &client {
                RedisClient::Single(c) => ConnectionManager::new(c.clone()).await.map(Conn::from),
                cluster => cluster.shared(ConnOptions::default(), None).await,
            }
        };
        ctx.wait(
            actix::fut::wrap_future(open).map(|res, act: &mut Self, ctx| match res {
                Ok(c) => act.conn = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "lease keeper cannot reach Redis; retrying");
                    ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
                }
            }),
        );
        let every = self
            .tables
            .iter()
            .map(|(t, _, _)| t.every)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Supervised for LeaseKeeper {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.conn = None;
        for (_, _, busy) in &mut self.tables {
            *busy = false;
        }
    }
}
