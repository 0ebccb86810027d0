//! `GET /ws?token=...&after=...`: a person's notifications over a WebSocket, one
//! task per connection.
//!
//! On connect the socket joins the [`Hub`] (subscribed before anything is read, so
//! nothing published meanwhile is missed), is replayed the stored notifications
//! after `after` (all unread ones without it) in id order, gets
//! `{"type":"replayed","count":N}`, then live ones. A notification already sent on
//! this socket (replayed, or the same one published twice) is not sent again.
//!
//! Invariants: a bad token is a 401 before the upgrade; the server pings every
//! `ping_interval_ms` and closes a socket silent for `client_timeout_ms`; frames
//! wait in a queue of `max_queued` per socket, and a client that lets it fill is
//! closed with 1013 and a reason naming the `after` to resume from, so a slow
//! client costs bounded memory; `ack` and `read` frames mark only the caller's own
//! notifications.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Closed, Message, MessageStream, Session};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use utoipa::IntoParams;

use super::frames::{ClientFrame, NotificationView, ServerFrame, now_rfc3339};
use super::hub::{Eviction, Hub, Live};
use crate::config::WsSettings;
use crate::database::Db;
use crate::http::{ApiError, AppState, ErrorBody};
use crate::store::notifications::NotificationQuery;

/// Query of `GET /ws`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WsQuery {
    /// A bearer token (browsers cannot set headers on a WebSocket); an
    /// `Authorization: Bearer` header works as well.
    token: Option<String>,
    /// The last notification id the client saw: the replay starts after it.
    /// Without it, every unread notification is replayed.
    after: Option<String>,
}

/// Opens a WebSocket of the caller's notifications.
#[utoipa::path(
    tag = "notifications",
    params(WsQuery),
    responses(
        (status = 101, description = "Switching Protocols. Server frames: `{\"type\":\"notification\",\"notification\":{...}}`, then once after the replay `{\"type\":\"replayed\",\"count\":N}`. Client frames: `{\"type\":\"ack\",\"id\"}`, `{\"type\":\"read\",\"id\"}`. A slow client is closed with 1013 and a reason."),
        (status = 400, description = "Not a WebSocket upgrade, or a bad `after`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
#[get("/ws")]
pub(crate) async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    q: web::Query<WsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let token = q
        .token
        .filter(|t| !t.is_empty())
        .or(header)
        .ok_or_else(|| ApiError::unauthorized("give the token as ?token=<jwt>"))?;
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    if let Some(a) = &q.after
        && ulid::Ulid::from_string(a).is_err()
    {
        return Err(ApiError::invalid_field(
            "after",
            "must be a notification id (a ULID)",
        ));
    }
    state.db.http()?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::bad_request("not_websocket", e.to_string()))?;
    let conn = Connection {
        hub: state.hub.clone(),
        db: state.db.clone(),
        user: claims.sub,
        settings: state.settings.notifications.ws.clone(),
    };
    actix_web::rt::spawn(conn.run(session, stream, q.after));
    Ok(response)
}

/// One socket: its user and what it needs.
struct Connection {
    hub: Arc<Hub>,
    db: Db,
    user: String,
    settings: WsSettings,
}

/// Why the connection loop ended.
enum End {
    /// The client went away or closed: nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, String),
}

impl Connection {
    async fn run(self, mut session: Session, mut stream: MessageStream, after: Option<String>) {
        let mut membership = match self.hub.join(&self.user).await {
            Ok(m) => m,
            Err(e) => {
                close(session, CloseCode::Error, &format!("{e}; reconnect")).await;
                return;
            }
        };
        let mut sent = RecentIds::new(self.settings.max_queued.max(64) * 4);
        let mut last_id = after.clone();
        let count = match self
            .replay(&mut session, after, &mut sent, &mut last_id)
            .await
        {
            Ok(n) => n,
            Err(End::Gone) => return,
            Err(End::Close(code, reason)) => {
                close(session, code, &reason).await;
                return;
            }
        };
        if session
            .text(ServerFrame::Replayed { count }.text())
            .await
            .is_err()
        {
            return;
        }
        let ping_every = Duration::from_millis(self.settings.ping_interval_ms.max(10));
        let timeout = Duration::from_millis(self.settings.client_timeout_ms.max(10));
        let mut tick = tokio::time::interval(ping_every);
        tick.tick().await;
        let mut heard = Instant::now();
        let mut writing: Option<LocalBoxFuture<'static, Result<(), Closed>>> = None;
        let end = loop {
            tokio::select! {
                biased;
                why = &mut membership.evicted => {
                    break evicted(why.unwrap_or(Eviction::Lost), last_id.as_deref(), self.settings.max_queued);
                }
                r = async { writing.as_mut().expect("guarded").await }, if writing.is_some() => {
                    writing = None;
                    if r.is_err() {
                        break End::Gone;
                    }
                }
                live = membership.rx.recv(), if writing.is_none() => {
                    let Some(Live { id, frame }) = live else {
                        break evicted(Eviction::Slow, last_id.as_deref(), self.settings.max_queued);
                    };
                    if sent.insert(id) {
                        let id = id.to_string();
                        if last_id.as_deref().is_none_or(|l| id.as_str() > l) {
                            last_id = Some(id);
                        }
                        let mut s = session.clone();
                        writing = Some(Box::pin(async move { s.text(frame).await }));
                    }
                }
                msg = stream.recv() => {
                    let Some(Ok(msg)) = msg else { break End::Gone };
                    heard = Instant::now();
                    match msg {
                        Message::Text(text) => self.client_frame(&text).await,
                        Message::Ping(bytes) if writing.is_none() => {
                            let mut s = session.clone();
                            writing = Some(Box::pin(async move { s.pong(&bytes).await }));
                        }
                        Message::Close(_) => break End::Close(CloseCode::Normal, String::new()),
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if heard.elapsed() > timeout {
                        break End::Close(
                            CloseCode::Policy,
                            format!("nothing heard for {} ms", timeout.as_millis()),
                        );
                    }
                    if writing.is_none() {
                        let mut s = session.clone();
                        writing = Some(Box::pin(async move { s.ping(b"").await }));
                    }
                }
            }
        };
        drop(writing);
        drop(membership);
        match end {
            End::Gone => {}
            End::Close(code, reason) => {
                if code == CloseCode::Again || code == CloseCode::Policy {
                    tracing::info!(
                        code = u16::from(code),
                        "closing a notification socket: {reason}"
                    );
                }
                close(session, code, &reason).await;
            }
        }
    }

    /// Sends the stored notifications after `after` (every unread one without it),
    /// page by page, in id order.
    async fn replay(
        &self,
        session: &mut Session,
        after: Option<String>,
        sent: &mut RecentIds,
        last_id: &mut Option<String>,
    ) -> Result<u64, End> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "notification replay failed");
            End::Close(
                CloseCode::Error,
                "cannot read notifications now; reconnect".into(),
            )
        };
        let store = self.db.get().map_err(|e| unavailable(&e))?;
        let mut q = NotificationQuery {
            user_id: self.user.clone(),
            unread: after.is_none(),
            after,
            limit: self.settings.replay_page.max(1),
        };
        let mut count = 0;
        loop {
            let page = store.notifications(&q).await.map_err(|e| unavailable(&e))?;
            let full = page.len() as u64 == q.limit;
            for row in page {
                let id = row.id.clone();
                if let Ok(u) = ulid::Ulid::from_string(&id) {
                    sent.insert(u);
                }
                let view = NotificationView::from(row);
                let frame = ServerFrame::Notification {
                    notification: &view,
                }
                .text();
                session.text(frame).await.map_err(|_| End::Gone)?;
                count += 1;
                if last_id.as_deref().is_none_or(|l| id.as_str() > l) {
                    *last_id = Some(id.clone());
                }
                q.after = Some(id);
            }
            if !full {
                return Ok(count);
            }
        }
    }

    /// `ack` and `read` from the client; anything else is ignored.
    async fn client_frame(&self, text: &str) {
        let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
            return;
        };
        let Ok(store) = self.db.get() else { return };
        let now = now_rfc3339();
        let r = match &frame {
            ClientFrame::Ack { id } => {
                store
                    .mark_notification_delivered(&self.user, id, &now)
                    .await
            }
            ClientFrame::Read { id } => store.mark_notification_read(&self.user, id, &now).await,
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record a notification ack");
        }
    }
}

fn evicted(why: Eviction, last_id: Option<&str>, max_queued: usize) -> End {
    let resume = last_id.unwrap_or("");
    match why {
        Eviction::Slow => End::Close(
            CloseCode::Again,
            format!("too slow: {max_queued} frames queued; reconnect with after={resume}"),
        ),
        Eviction::Lost => End::Close(
            CloseCode::Restart,
            format!("notifications restarting; reconnect with after={resume}"),
        ),
    }
}

/// Sends a close frame unless the client does not take it within a second (a
/// client that does not read); the connection ends either way.
async fn close(session: Session, code: CloseCode, reason: &str) {
    let reason = CloseReason {
        code,
        description: (!reason.is_empty()).then(|| reason.to_owned()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), session.close(Some(reason))).await;
}

/// The ids most recently sent on a socket, so the same notification is not sent
/// twice (replay then live, or published twice); bounded.
struct RecentIds {
    order: VecDeque<ulid::Ulid>,
    set: HashSet<ulid::Ulid>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        RecentIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: cap.max(1),
        }
    }

    /// Whether `id` is new (and remembers it).
    fn insert(&mut self, id: ulid::Ulid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        let (a, b, c) = (
            ulid::Ulid::generate(),
            ulid::Ulid::generate(),
            ulid::Ulid::generate(),
        );
        assert!(r.insert(a));
        assert!(!r.insert(a));
        assert!(r.insert(b));
        assert!(r.insert(c));
        assert!(r.insert(a), "a was forgotten");
        assert!(!r.insert(c));
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let id = ulid::Ulid::generate().to_string();
        for why in [Eviction::Slow, Eviction::Lost] {
            let End::Close(_, reason) = evicted(why, Some(&id), 100_000) else {
                panic!()
            };
            assert!(reason.len() <= 123, "{reason}");
            assert!(reason.contains(&id));
        }
    }
}
