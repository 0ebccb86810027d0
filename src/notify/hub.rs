//! The hub: which WebSocket connections this process holds, per user, and the Redis
//! pub/sub subscription that brings them their notifications from whichever
//! process's notifier handled them.
//!
//! While this process holds at least one socket of a user it is subscribed to that
//! user's channel (`<prefix>notify:<user id>`) on a pub/sub connection of its own;
//! the websocket channel PUBLISHes there, and a receiver count of 0 means nobody
//! holds a socket of that user anywhere.
//!
//! Invariants: a connection is registered (and the subscription confirmed by
//! Redis) before it is replayed to, so nothing published after the replay's query
//! is missed; each connection has a bounded queue, and a connection whose queue is
//! full is dropped from the hub and told to close (memory never grows with a slow
//! client); subscribe and unsubscribe go to Redis in the order the hub decided
//! them, from one task; a lost pub/sub connection closes every socket of this
//! process (their clients reconnect and are replayed what they missed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

/// How long a new socket waits for its subscription before giving up.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between attempts to reconnect the pub/sub connection.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// The pub/sub channel of a user's notifications.
pub fn user_channel(prefix: &str, user_id: &str) -> String {
    format!("{prefix}notify:{user_id}")
}

/// One live notification for one socket.
#[derive(Debug, Clone)]
pub struct Live {
    /// The notification's id.
    pub id: ulid::Ulid,
    /// The whole frame, as JSON text.
    pub frame: ByteString,
}

/// Why a socket is to be closed by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Its queue was full: the client does not read fast enough.
    Slow,
    /// The pub/sub connection was lost: live notifications would be missed.
    Lost,
}

/// Why a socket could not join.
#[derive(Debug, thiserror::Error)]
#[error("notifications are not available right now: the pub/sub subscription failed")]
pub struct Unavailable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Pending,
    Ready,
    Failed,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Live>,
    evict: Option<oneshot::Sender<Eviction>>,
}

impl Slot {
    fn evict(&mut self, why: Eviction) {
        if let Some(tx) = self.evict.take() {
            let _ = tx.send(why);
        }
    }
}

struct UserEntry {
    /// Tells one subscription from a later one of the same user.
    epoch: u64,
    conns: Vec<Slot>,
    subscribed: watch::Receiver<Sub>,
}

enum Command {
    Subscribe {
        user: String,
        epoch: u64,
        done: watch::Sender<Sub>,
    },
    Unsubscribe {
        user: String,
    },
}

/// This process's sockets and their subscriptions.
pub struct Hub {
    /// Channel names are `<prefix><user id>`.
    prefix: String,
    /// Frames queued per socket.
    max_queued: usize,
    users: Mutex<HashMap<String, UserEntry>>,
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    connections: AtomicU64,
}

/// A socket's place in the hub; leaving is dropping it.
pub struct Membership {
    /// Live notifications for this socket.
    pub rx: mpsc::Receiver<Live>,
    /// Fires when the hub drops this socket, saying why.
    pub evicted: oneshot::Receiver<Eviction>,
    hub: Arc<Hub>,
    user: String,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.user, self.id);
    }
}

impl Hub {
    /// Starts the hub and its pub/sub task on the current runtime. `key_prefix` is
    /// the configured Redis key prefix.
    pub fn start(
        client: strategist_actors::RedisClient,
        key_prefix: &str,
        max_queued: usize,
    ) -> Arc<Hub> {
        let (commands, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            prefix: user_channel(key_prefix, ""),
            max_queued: max_queued.max(1),
            users: Mutex::default(),
            commands,
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
        });
        actix::spawn(subscriber(client, Arc::downgrade(&hub), rx));
        hub
    }

    /// Sockets this process holds.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Registers a socket of `user` and waits until this process is subscribed to
    /// the user's channel.
    pub async fn join(self: &Arc<Self>, user: &str) -> Result<Membership, Unavailable> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.max_queued);
        let (evict_tx, evicted) = oneshot::channel();
        let mut subscribed = {
            let mut users = self.lock();
            let entry = users.entry(user.to_owned()).or_insert_with(|| {
                let (done, subscribed) = watch::channel(Sub::Pending);
                let epoch = self.next_id.fetch_add(1, Ordering::Relaxed);
                let _ = self.commands.send(Command::Subscribe {
                    user: user.to_owned(),
                    epoch,
                    done,
                });
                UserEntry {
                    epoch,
                    conns: Vec::new(),
                    subscribed,
                }
            });
            entry.conns.push(Slot {
                id,
                tx,
                evict: Some(evict_tx),
            });
            entry.subscribed.clone()
        };
        self.connections.fetch_add(1, Ordering::Relaxed);
        // Built before waiting: a socket that gives up leaves the hub on drop.
        let membership = Membership {
            rx,
            evicted,
            hub: self.clone(),
            user: user.to_owned(),
            id,
        };
        let ready = tokio::time::timeout(
            SUBSCRIBE_TIMEOUT,
            subscribed.wait_for(|s| *s != Sub::Pending),
        )
        .await;
        match ready {
            Ok(Ok(s)) if *s == Sub::Ready => Ok(membership),
            _ => Err(Unavailable),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserEntry>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn leave(&self, user: &str, id: u64) {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return;
        };
        let before = entry.conns.len();
        entry.conns.retain(|c| c.id != id);
        if entry.conns.len() < before {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
        if entry.conns.is_empty() {
            users.remove(user);
            let _ = self.commands.send(Command::Unsubscribe {
                user: user.to_owned(),
            });
        }
    }

    /// Hands a published notification to every socket of its user here.
    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let Some(user) = channel.strip_prefix(self.prefix.as_str()) else {
            return;
        };
        let Some((id, frame)) = parse_payload(payload) else {
            tracing::warn!("ignored a malformed message on a notification channel");
            return;
        };
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return;
        };
        let mut gone = 0;
        entry.conns.retain_mut(|c| {
            match c.tx.try_send(Live {
                id,
                frame: frame.clone(),
            }) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.evict(Eviction::Slow);
                    gone += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    gone += 1;
                    false
                }
            }
        });
        self.connections.fetch_sub(gone, Ordering::Relaxed);
        if entry.conns.is_empty() {
            users.remove(user);
            let _ = self.commands.send(Command::Unsubscribe {
                user: user.to_owned(),
            });
        }
    }

    fn wants(&self, user: &str, epoch: u64) -> bool {
        self.lock().get(user).is_some_and(|e| e.epoch == epoch)
    }

    fn holds(&self, user: &str) -> bool {
        self.lock().contains_key(user)
    }

    /// Drops every socket (their connections close and their clients reconnect).
    fn evict_all(&self, why: Eviction) {
        let mut users = self.lock();
        for (_, mut entry) in users.drain() {
            for c in &mut entry.conns {
                c.evict(why);
            }
            self.connections
                .fetch_sub(entry.conns.len() as u64, Ordering::Relaxed);
        }
    }

    fn drop_user(&self, user: &str, epoch: u64) {
        let mut users = self.lock();
        if users.get(user).is_some_and(|e| e.epoch == epoch)
            && let Some(mut entry) = users.remove(user)
        {
            for c in &mut entry.conns {
                c.evict(Eviction::Lost);
            }
            self.connections
                .fetch_sub(entry.conns.len() as u64, Ordering::Relaxed);
        }
    }
}

/// `<id> <frame>`, as the websocket channel publishes it.
pub(super) fn payload(id: &str, frame: &str) -> String {
    format!("{id} {frame}")
}

fn parse_payload(payload: &[u8]) -> Option<(ulid::Ulid, ByteString)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, frame) = text.split_once(' ')?;
    let id = ulid::Ulid::from_string(id).ok()?;
    Some((id, ByteString::from(frame.to_owned())))
}

/// The pub/sub connection: carries out subscribe and unsubscribe in order and
/// dispatches what arrives; reconnects when it is lost.
async fn subscriber(
    client: strategist_actors::RedisClient,
    hub: std::sync::Weak<Hub>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut delay = Duration::from_millis(100);
    // On a cluster, any node hears every PUBLISH: after a failure, try the next.
    let nodes = client.node_clients();
    let mut attempt = 0usize;
    loop {
        let Some(node) = nodes.get(attempt % nodes.len().max(1)) else {
            tracing::error!("notifications: no Redis node to subscribe on");
            return;
        };
        attempt += 1;
        let connected = tokio::time::timeout(SUBSCRIBE_TIMEOUT, node.get_async_pubsub()).await;
        let pubsub = match connected {
            Ok(Ok(p)) => p,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer".into(),
                };
                tracing::warn!(%error, "notifications: cannot open the pub/sub connection; retrying");
                // Whoever waits for a subscription now is told at once.
                while let Ok(cmd) = commands.try_recv() {
                    if let Command::Subscribe { done, .. } = cmd {
                        let _ = done.send(Sub::Failed);
                    }
                }
                if hub.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let (mut sink, mut stream) = pubsub.split();
        loop {
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return };
                    let Some(h) = hub.upgrade() else { return };
                    match cmd {
                        Command::Subscribe { user, epoch, done } => {
                            if !h.wants(&user, epoch) {
                                continue;
                            }
                            match sink.subscribe(user_channel_of(&h, &user)).await {
                                Ok(()) => {
                                    let _ = done.send(Sub::Ready);
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "notifications: SUBSCRIBE failed");
                                    let _ = done.send(Sub::Failed);
                                    h.drop_user(&user, epoch);
                                    break;
                                }
                            }
                        }
                        Command::Unsubscribe { user } => {
                            if h.holds(&user) {
                                continue;
                            }
                            if let Err(e) = sink.unsubscribe(user_channel_of(&h, &user)).await {
                                tracing::warn!(error = %e, "notifications: UNSUBSCRIBE failed");
                                break;
                            }
                        }
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(h) = hub.upgrade() else { return };
                    let channel = msg.get_channel_name();
                    h.dispatch(channel, msg.get_payload_bytes());
                }
            }
        }
        let Some(h) = hub.upgrade() else { return };
        tracing::warn!(
            sockets = h.connections(),
            "notifications: the pub/sub connection was lost; closing this process's sockets so their clients reconnect"
        );
        h.evict_all(Eviction::Lost);
    }
}

fn user_channel_of(h: &Hub, user: &str) -> String {
    format!("{}{user}", h.prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let id = ulid::Ulid::generate();
        let p = payload(&id.to_string(), r#"{"type":"notification"}"#);
        let (back, frame) = parse_payload(p.as_bytes()).unwrap();
        assert_eq!(back, id);
        assert_eq!(&*frame, r#"{"type":"notification"}"#);
        assert!(parse_payload(b"nonsense").is_none());
        assert!(parse_payload(b"notanid {}").is_none());
    }
}
