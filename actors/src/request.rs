//! Request-response over streams: publish a request, wait for the reply event that
//! carries the same correlation id.
//!
//! One [`Replies`] per process follows the reply streams with a plain `XREAD` (not a
//! consumer group: every process sees every reply, so a reply produced by a worker
//! in any process reaches the request waiting in this one) and hands each reply to
//! the waiter registered under its correlation id. However many requests wait, they
//! cost one Redis reader.
//!
//! Invariants:
//! - A waiter is registered before its request is published, and the listener reads
//!   from explicit entry ids (never `$` after the first position is fixed at start),
//!   so a reply that arrives before the request's publish returns is not missed.
//! - A waiter that gives up (timeout, or its future dropped) is removed at once; the
//!   map never keeps an entry for a request nobody waits for.
//! - A lost connection is reopened and reading resumes after the last entry seen, so
//!   replies written while it was down are still delivered (unless trimmed first).
//! - On a Redis Cluster the reply streams live in different slots, which one
//!   `XREAD` cannot name together: there each stream has a reader of its own.
//! - A partitioned reply stream is followed on every partition (a reply may land
//!   in any of them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use redis::Value;
use tokio::sync::oneshot;

use crate::conn::{ConnOptions, RedisClient};
use crate::envelope::Envelope;
use crate::keys::Keys;
use crate::publisher::{PublishError, Published, Publisher};
use crate::redis_io::parse_stream_reply;

/// How long one `XREAD` blocks; also how quickly a stopped listener notices.
const BLOCK_MS: u64 = 1000;
/// The most entries one read takes.
const READ_COUNT: usize = 1000;

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request could not be published; nothing was sent.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// No reply within the time allowed. The request was published and may still be
    /// answered later; the reply is then an ordinary event on its stream.
    #[error("no {reply_type} with correlation id {correlation_id} within {waited_ms} ms")]
    Timeout {
        /// The correlation id waited for.
        correlation_id: String,
        /// The reply type waited for.
        reply_type: String,
        /// How long.
        waited_ms: u64,
    },
    /// The request has no correlation id to match a reply by.
    #[error("a request needs a correlation id")]
    NoCorrelationId,
    /// Someone in this process already waits for this correlation id.
    #[error("a request with correlation id {0} is already waiting")]
    AlreadyWaiting(String),
    /// The listener was stopped.
    #[error("the reply listener is stopped")]
    Stopped,
    /// The listener could not learn where the reply streams end at start.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

struct Waiter {
    token: u64,
    reply_types: Vec<String>,
    tx: oneshot::Sender<Envelope>,
}

struct Inner {
    client: RedisClient,
    keys: Keys,
    /// Stream (without prefix; a partition's name on a partitioned stream) and the
    /// id of the last entry read from it.
    positions: Mutex<Vec<(String, String)>>,
    waiters: Mutex<HashMap<String, Waiter>>,
    stopped: AtomicBool,
    delivered: AtomicU64,
    reads: AtomicU64,
    tokens: AtomicU64,
}

/// The process's reply listener. Cheap to clone; every clone shares one reader.
///
/// ```no_run
/// # async fn demo(client: redis::Client, publisher: strategist_actors::Publisher) -> Result<(), strategist_actors::RequestError> {
/// use std::time::Duration;
/// use strategist_actors::{Envelope, Keys, Replies};
/// let replies = Replies::start(client, Keys::default(), vec!["ai.events".into()]).await?;
/// let request = Envelope::new("ai.content.generation.requested", 1, serde_json::json!({}))
///     .with_correlation("req-1");
/// let reply = replies
///     .request(&publisher, "ai.events", &request, &["ai.content.generation.completed"], Duration::from_secs(30))
///     .await?;
/// assert_eq!(reply.correlation_id.as_deref(), Some("req-1"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Replies {
    inner: Arc<Inner>,
}

/// A registered waiter: the reply, once it comes. Dropping it unregisters it.
pub struct PendingReply {
    token: u64,
    correlation_id: String,
    reply_type: String,
    rx: Option<oneshot::Receiver<Envelope>>,
    inner: Arc<Inner>,
}

impl Replies {
    /// Fixes the current end of every reply stream and starts following them. Replies
    /// published after this returns reach their waiters.
    pub async fn start(
        client: impl Into<RedisClient>,
        keys: Keys,
        streams: Vec<String>,
    ) -> Result<Replies, RequestError> {
        let client: RedisClient = client.into();
        let mut conn = client.dedicated(ConnOptions::default()).await?;
        let mut positions = Vec::with_capacity(streams.len());
        for s in streams.iter().flat_map(|s| keys.partitions(s)) {
            let id = crate::redis_io::last_entry_id(&mut conn, &keys.stream(&s)).await?;
            positions.push((s, id));
        }
        let inner = Arc::new(Inner {
            client,
            keys,
            positions: Mutex::new(positions),
            waiters: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        });
        let n = lock(&inner.positions).len();
        if inner.client.is_cluster() {
            for i in 0..n {
                tokio::spawn(supervise(inner.clone(), vec![i]));
            }
        } else {
            tokio::spawn(supervise(inner.clone(), (0..n).collect()));
        }
        Ok(Replies { inner })
    }

    /// Registers a waiter for the first event of one of `reply_types` (e.g. a
    /// `.completed` and a `.failed`) with `correlation_id`. Do this before publishing
    /// the request.
    pub fn wait_for(
        &self,
        correlation_id: &str,
        reply_types: &[&str],
    ) -> Result<PendingReply, RequestError> {
        if self.inner.stopped.load(Ordering::Relaxed) {
            return Err(RequestError::Stopped);
        }
        let (tx, rx) = oneshot::channel();
        let token = self.inner.tokens.fetch_add(1, Ordering::Relaxed);
        let mut waiters = lock(&self.inner.waiters);
        if waiters.contains_key(correlation_id) {
            return Err(RequestError::AlreadyWaiting(correlation_id.to_string()));
        }
        waiters.insert(
            correlation_id.to_string(),
            Waiter {
                token,
                reply_types: reply_types.iter().map(|t| t.to_string()).collect(),
                tx,
            },
        );
        Ok(PendingReply {
            token,
            correlation_id: correlation_id.to_string(),
            reply_type: reply_types.join(" or "),
            rx: Some(rx),
            inner: self.inner.clone(),
        })
    }

    /// Publishes `request` to `stream` and waits up to `timeout` for the first event
    /// of `reply_types` with the request's correlation id.
    pub async fn request(
        &self,
        publisher: &Publisher,
        stream: &str,
        request: &Envelope,
        reply_types: &[&str],
        timeout: Duration,
    ) -> Result<Envelope, RequestError> {
        let (_published, pending) = self.send(publisher, stream, request, reply_types).await?;
        pending.wait(timeout).await
    }

    /// Registers the waiter, then publishes; returns where the request landed and the
    /// waiter, for callers that record the request before they wait.
    pub async fn send(
        &self,
        publisher: &Publisher,
        stream: &str,
        request: &Envelope,
        reply_types: &[&str],
    ) -> Result<(Published, PendingReply), RequestError> {
        let correlation_id = request
            .correlation_id
            .as_deref()
            .ok_or(RequestError::NoCorrelationId)?;
        let pending = self.wait_for(correlation_id, reply_types)?;
        let published = publisher.publish(stream, request).await?;
        Ok((published, pending))
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.waiters).len()
    }

    /// Replies handed to a waiter since start.
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// `XREAD` calls made since start (one reader, however many waiters).
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Stops the listener; waiting requests end with [`RequestError::Stopped`].
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        lock(&self.inner.waiters).clear();
    }
}

impl PendingReply {
    /// Waits up to `timeout` for the reply. On timeout the waiter is gone.
    pub async fn wait(mut self, timeout: Duration) -> Result<Envelope, RequestError> {
        let Some(rx) = self.rx.take() else {
            return Err(RequestError::Stopped);
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(_)) => Err(RequestError::Stopped),
            Err(_) => Err(RequestError::Timeout {
                correlation_id: self.correlation_id.clone(),
                reply_type: self.reply_type.clone(),
                waited_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The correlation id waited for.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        let mut waiters = lock(&self.inner.waiters);
        // Remove only our own registration: once ours is gone, a new request may
        // have registered the same correlation id.
        if waiters
            .get(&self.correlation_id)
            .is_some_and(|w| w.token == self.token)
        {
            waiters.remove(&self.correlation_id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the listener, restarting it after a panic or a lost connection.
/// `mine`: the indexes in `positions` of the streams this listener follows.
async fn supervise(inner: Arc<Inner>, mine: Vec<usize>) {
    let mut delay = Duration::from_millis(100);
    while !inner.stopped.load(Ordering::Relaxed) {
        match std::panic::AssertUnwindSafe(listen(&inner, &mine))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => return,
            Ok(Err(e)) if crate::conn::is_unblocked(&e) => {
                // A manual failover moved a reply stream's master: read again now.
                tracing::info!(error = %e, "reply listener: read unblocked by a failover");
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "reply listener: redis failed; reconnecting");
            }
            Err(_) => tracing::error!("reply listener panicked; restarting it"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn listen(inner: &Inner, mine: &[usize]) -> Result<(), redis::RedisError> {
    let mut conn = inner
        .client
        .dedicated(ConnOptions {
            response_timeout: Duration::from_millis(BLOCK_MS) + Duration::from_secs(10),
            ..ConnOptions::default()
        })
        .await?;
    while !inner.stopped.load(Ordering::Relaxed) {
        let positions: Vec<(String, String)> = {
            let all = lock(&inner.positions);
            mine.iter().filter_map(|&i| all.get(i).cloned()).collect()
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS");
        for (s, _) in &positions {
            cmd.arg(inner.keys.stream(s));
        }
        for (_, id) in &positions {
            cmd.arg(id);
        }
        let reply: Value = cmd.query_async(&mut conn).await?;
        inner.reads.fetch_add(1, Ordering::Relaxed);
        let entries = parse_stream_reply(reply);
        if entries.is_empty() {
            continue;
        }
        let mut last: HashMap<String, String> = HashMap::new();
        for e in entries {
            dispatch(inner, &e);
            last.insert(e.key.clone(), e.id.clone());
        }
        let mut positions = lock(&inner.positions);
        for (s, id) in positions.iter_mut() {
            if let Some(newer) = last.remove(&inner.keys.stream(s)) {
                *id = newer;
            }
        }
    }
    Ok(())
}

/// Hands the entry to its waiter if it is a reply somebody waits for. Only the two
/// fields that decide are looked at before the whole envelope is decoded.
fn dispatch(inner: &Inner, e: &crate::redis_io::Entry) {
    let field = |name: &str| {
        e.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v))
    };
    let Some(correlation_id) = field("correlation_id") else {
        return;
    };
    let waiter = {
        let mut waiters = lock(&inner.waiters);
        match waiters.get(correlation_id.as_ref()) {
            Some(w)
                if field("type")
                    .is_some_and(|t| w.reply_types.iter().any(|r| r.as_str() == t.as_ref())) =>
            {
                waiters.remove(correlation_id.as_ref())
            }
            _ => None,
        }
    };
    let Some(waiter) = waiter else { return };
    match Envelope::from_pairs(e.pairs()) {
        Ok(env) => {
            if waiter.tx.send(env).is_ok() {
                inner.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(err) => {
            tracing::warn!(entry = %e.id, error = %err, "a reply that cannot be decoded; its request will time out");
        }
    }
}
