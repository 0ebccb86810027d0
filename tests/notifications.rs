//! Notifications to people, as a person's client sees them: the real binary, a
//! private Redis, SQLite (and PostgreSQL for the store), and a real WebSocket
//! client (tokio-tungstenite) on `GET /ws`.
//!
//! Covers isolation between users, replay on reconnect with `after`, the same
//! event twice, two `serve` processes sharing one Redis, a slow client, the
//! `notification.delivered` events, priorities under a backlog, and a channel that
//! fails transiently next to ones that do not.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist::notify::{Channel, ChannelError, ChannelRegistry, Outgoing};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "notifications-test-secret";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn token(user: &str) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, false, Duration::from_secs(3600))
        .unwrap()
}

async fn open(port: u16, user: &str, after: Option<&str>) -> Ws {
    let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
    let url = format!("ws://127.0.0.1:{port}/ws?token={}{after}", token(user));
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// One thing a socket received.
#[derive(Debug)]
enum Got {
    Note(Value),
    Replayed(u64),
    /// The close frame's code and reason, or None when the connection just ended.
    Closed(Option<(u16, String)>),
}

/// The next frame within `within`, None if none came.
async fn next(ws: &mut Ws, within: Duration) -> Option<Got> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return Some(Got::Closed(None)),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("notification") => return Some(Got::Note(v["notification"].clone())),
                    Some("replayed") => return Some(Got::Replayed(v["count"].as_u64().unwrap())),
                    other => panic!("unexpected frame type {other:?}: {v}"),
                }
            }
            Message::Close(f) => {
                return Some(Got::Closed(
                    f.map(|f| (u16::from(f.code), f.reason.to_string())),
                ));
            }
            _ => {}
        }
    }
}

/// The replay that opens a socket: its notifications and the count it announced.
async fn replay(ws: &mut Ws) -> (Vec<Value>, u64) {
    let mut notes = Vec::new();
    loop {
        match next(ws, Duration::from_secs(15)).await {
            Some(Got::Note(n)) => notes.push(n),
            Some(Got::Replayed(count)) => return (notes, count),
            other => panic!("replay ended with {other:?}"),
        }
    }
}

/// Exactly `n` live notifications (panics on anything else or a timeout).
async fn notes(ws: &mut Ws, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Some(Got::Note(v)) => out.push(v),
            other => panic!("after {} of {n} notifications: {other:?}", out.len()),
        }
    }
    out
}

/// Whatever notifications arrive within `within` (to show that none do).
async fn quiet(ws: &mut Ws, within: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(got) = next(ws, within).await {
        match got {
            Got::Note(v) => out.push(v),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

/// A new event id, after every one made before in this test binary (ids made in
/// the same millisecond by `Ulid::generate` need not ascend).
fn new_id() -> String {
    static GEN: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GEN.lock().unwrap();
    g.get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap()
        .to_string()
}

fn ids(notes: &[Value]) -> Vec<String> {
    notes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn payload(user: &str, title: &str, priority: &str, channels: &[&str], body: &str) -> String {
    json!({
        "user_id": user,
        "notification_type": "system_alert",
        "channels": channels,
        "message": {"title": title, "body": body, "action_url": "https://app.example/x"},
        "priority": priority,
    })
    .to_string()
}

/// XADDs `notification.send.requested` with plain fields under event id `id`.
fn xadd_request(c: &mut redis::Connection, id: &str, user: &str, data: &str) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    redis::cmd("XADD")
        .arg("notification.events")
        .arg("*")
        .arg("id")
        .arg(id)
        .arg("type")
        .arg("notification.send.requested")
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg(now)
        .arg("user_id")
        .arg(user)
        .arg("data")
        .arg(data)
        .query::<String>(c)
        .unwrap();
}

/// Asks for a websocket notification to `user`; its id.
fn request(c: &mut redis::Connection, user: &str, title: &str, priority: &str) -> String {
    let id = new_id();
    xadd_request(
        c,
        &id,
        user,
        &payload(user, title, priority, &["websocket"], "body"),
    );
    id
}

/// The `notification.delivered` payloads about notification `id`.
fn delivered(c: &mut redis::Connection, id: &str) -> Vec<Value> {
    entries(c, "notification.events")
        .into_iter()
        .filter(|e| e["type"] == "notification.delivered")
        .map(|e| serde_json::from_str::<Value>(&e["data"]).unwrap())
        .filter(|d| d["notification_id"] == id)
        .collect()
}

fn list(port: u16, user: &str, query: &str) -> Reply {
    let auth = format!("Bearer {}", token(user));
    http(
        port,
        "GET",
        &format!("/api/v1/notifications{query}"),
        &[("Authorization", &auth)],
        None,
    )
}

fn listed_ids(port: u16, user: &str, query: &str) -> Vec<String> {
    let r = list(port, user, query);
    assert_eq!(r.status, 200, "{}", r.body);
    ids(r.json()["notifications"].as_array().unwrap())
}

fn mark_read(port: u16, user: &str, id: &str) -> u16 {
    let auth = format!("Bearer {}", token(user));
    http(
        port,
        "POST",
        &format!("/api/v1/notifications/{id}/read"),
        &[("Authorization", &auth)],
        None,
    )
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_person_gets_only_their_own_and_a_reconnect_resumes_after_the_last_seen() {
    let r = redis();
    let app = App::serve(&r.url(), &[("STRATEGIST_AUTH_SECRET", SECRET)]);
    let mut c = conn(&r);

    let mut alice = open(app.port, "alice", None).await;
    assert_eq!(replay(&mut alice).await.1, 0);
    let mut bob = open(app.port, "bob", None).await;
    assert_eq!(replay(&mut bob).await.1, 0);

    let first: Vec<String> = (0..3)
        .map(|i| request(&mut c, "alice", &format!("for alice {i}"), "normal"))
        .collect();
    let for_bob = request(&mut c, "bob", "for bob", "normal");
    let got = notes(&mut alice, 3, Duration::from_secs(20)).await;
    assert_eq!(ids(&got), first, "in order, all of them");
    let n = &got[0];
    assert_eq!(n["title"], "for alice 0");
    assert_eq!(n["notification_type"], "system_alert");
    assert_eq!(n["priority"], "normal");
    assert_eq!(n["action_url"], "https://app.example/x");
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(n["read_at"].is_null() && n["delivered_at"].is_null());
    assert_eq!(
        ids(&notes(&mut bob, 1, Duration::from_secs(20)).await),
        vec![for_bob.clone()]
    );
    assert!(
        quiet(&mut alice, Duration::from_millis(700))
            .await
            .is_empty(),
        "nothing of bob's"
    );
    assert!(quiet(&mut bob, Duration::from_millis(100)).await.is_empty());

    // The client acknowledges the first and reads the second, then drops.
    for (kind, id) in [("ack", &first[0]), ("read", &first[1])] {
        alice
            .send(Message::Text(
                json!({"type": kind, "id": id}).to_string().into(),
            ))
            .await
            .unwrap();
    }
    // Bob cannot mark alice's over his socket.
    bob.send(Message::Text(
        json!({"type": "read", "id": first[2]}).to_string().into(),
    ))
    .await
    .unwrap();
    // A clean close: the server answers it after the frames sent before it.
    alice.close(None).await.unwrap();
    while let Some(Ok(_)) = alice.next().await {}
    drop(alice);

    let missed: Vec<String> = (3..5)
        .map(|i| request(&mut c, "alice", &format!("for alice {i}"), "normal"))
        .collect();
    eventually(Duration::from_secs(20), "alice's five are stored", || {
        listed_ids(app.port, "alice", "").len() == 5
    });
    let stored = list(app.port, "alice", "").json()["notifications"].clone();
    assert!(
        stored[0]["delivered_at"].is_string(),
        "ack recorded: {stored}"
    );
    assert!(stored[0]["read_at"].is_null());
    assert!(stored[1]["read_at"].is_string() && stored[1]["delivered_at"].is_string());
    assert!(
        stored[2]["read_at"].is_null(),
        "bob's read frame changed nothing"
    );
    assert!(stored[2]["delivered_at"].is_null());

    // Reconnect after the last one seen: exactly the two missed, in order, then live.
    let mut alice = open(app.port, "alice", Some(&first[2])).await;
    let (replayed, count) = replay(&mut alice).await;
    assert_eq!((ids(&replayed), count), (missed.clone(), 2));
    let live = request(&mut c, "alice", "live", "normal");
    assert_eq!(
        ids(&notes(&mut alice, 1, Duration::from_secs(20)).await),
        vec![live.clone()]
    );
    assert!(
        quiet(&mut alice, Duration::from_millis(700))
            .await
            .is_empty(),
        "nothing twice"
    );

    // Without `after`: every unread one (the second was read).
    let mut other = open(app.port, "alice", None).await;
    let (unread, _) = replay(&mut other).await;
    let mut want = vec![first[0].clone(), first[2].clone()];
    want.extend(missed.iter().cloned());
    want.push(live.clone());
    assert_eq!(ids(&unread), want);

    // HTTP: each sees only their own; another's id is a 404.
    assert_eq!(listed_ids(app.port, "bob", ""), vec![for_bob.clone()]);
    assert_eq!(mark_read(app.port, "bob", &first[0]), 404);
    assert_eq!(mark_read(app.port, "alice", &for_bob), 404);
    assert_eq!(mark_read(app.port, "alice", &first[0]), 204);
    assert_eq!(
        mark_read(app.port, "alice", &first[0]),
        204,
        "again: no change"
    );
    let unread = listed_ids(app.port, "alice", "?unread=true");
    assert_eq!(unread.len(), 4);
    assert!(!unread.contains(&first[0]) && !unread.contains(&first[1]));
    let page = list(app.port, "alice", "?limit=2").json();
    assert_eq!(ids(page["notifications"].as_array().unwrap()), first[..2]);
    assert_eq!(page["next"], first[1].as_str());
    let rest = listed_ids(app.port, "alice", &format!("?after={}&limit=500", first[1]));
    assert_eq!(rest.len(), 4);
    assert_eq!(list(app.port, "alice", "?limit=501").status, 400);
    assert_eq!(list(app.port, "alice", "?after=nope").status, 400);

    // A bad token is refused before the upgrade.
    let bad = format!("ws://127.0.0.1:{}/ws?token=forged", app.port);
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_reaches_the_socket_once_and_each_attempt_is_announced() {
    let r = redis();
    let app = App::serve(&r.url(), &[("STRATEGIST_AUTH_SECRET", SECRET)]);
    let mut c = conn(&r);
    let mut ws = open(app.port, "carol", None).await;
    replay(&mut ws).await;

    let id = new_id();
    let data = payload("carol", "twice", "high", &["websocket", "email"], "b");
    xadd_request(&mut c, &id, "carol", &data);
    xadd_request(&mut c, &id, "carol", &data);
    assert_eq!(
        ids(&notes(&mut ws, 1, Duration::from_secs(20)).await),
        vec![id.clone()]
    );
    assert!(
        quiet(&mut ws, Duration::from_secs(2)).await.is_empty(),
        "once"
    );
    assert_eq!(
        listed_ids(app.port, "carol", ""),
        vec![id.clone()],
        "one row"
    );

    eventually(Duration::from_secs(10), "both channels announced", || {
        delivered(&mut c, &id).len() == 2
    });
    let by_channel: HashMap<String, Value> = delivered(&mut c, &id)
        .into_iter()
        .map(|d| (d["channel"].as_str().unwrap().to_owned(), d))
        .collect();
    let w = &by_channel["websocket"];
    assert_eq!(w["user_id"], "carol");
    assert_eq!(w["success"], true);
    assert!(w.get("error").is_none_or(Value::is_null));
    assert!(w["delivery_time_ms"].as_f64().unwrap() >= 0.0);
    let e = &by_channel["email"];
    assert_eq!(e["success"], false);
    assert_eq!(
        e["error"], "no email address for this user",
        "carol never registered"
    );
    // Both entries were handled (acked), and the second announced nothing new.
    eventually(Duration::from_secs(10), "both entries acked", || {
        let g = group(&mut c, "notification.events", "notifier");
        g.pending == 0 && g.entries_read >= 2
    });
    assert_eq!(delivered(&mut c, &id).len(), 2);
}

/// A `serve` process without pools (HTTP and WebSocket only) and one that runs only
/// the notifier without HTTP, sharing one Redis and one SQLite file.
struct TwoProcesses {
    redis: LocalRedis,
    db_url: String,
    api: App,
    _dir: tempfile::TempDir,
}

impl TwoProcesses {
    fn api_only(env: &[(&str, &str)]) -> TwoProcesses {
        let redis = redis();
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}/shared.db?mode=rwc", dir.path().display());
        let mut all = vec![
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("DATABASE_URL", &db_url),
        ];
        all.extend_from_slice(env);
        let api = App::serve_args(&redis.url(), &["--pools", "none"], &all);
        TwoProcesses {
            redis,
            db_url,
            api,
            _dir: dir,
        }
    }

    fn notifier(&self, env: &[(&str, &str)]) -> Proc {
        let mut all = vec![
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("DATABASE_URL", self.db_url.as_str()),
        ];
        all.extend_from_slice(env);
        let mut p = App::spawn_args(
            &self.redis.url(),
            &["--pools", "notifier", "--no-http"],
            &all,
        );
        p.wait_for_line("running without HTTP", Duration::from_secs(30));
        p
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_held_by_one_process_gets_what_another_process_delivered() {
    let two = TwoProcesses::api_only(&[]);
    let _notifier = two.notifier(&[]);
    let mut c = conn(&two.redis);
    let mut ws = open(two.api.port, "dave", None).await;
    replay(&mut ws).await;

    let id = request(&mut c, "dave", "across processes", "normal");
    assert_eq!(
        ids(&notes(&mut ws, 1, Duration::from_secs(20)).await),
        vec![id.clone()]
    );
    eventually(Duration::from_secs(10), "announced", || {
        delivered(&mut c, &id).len() == 1
    });
    assert_eq!(delivered(&mut c, &id)[0]["success"], true);

    // Nobody holds erin's socket: recorded as unreachable, kept, replayed on connect.
    let offline = request(&mut c, "erin", "while away", "normal");
    eventually(Duration::from_secs(20), "announced as offline", || {
        delivered(&mut c, &offline).len() == 1
    });
    let d = &delivered(&mut c, &offline)[0];
    assert_eq!(d["success"], false);
    assert_eq!(d["error"], "offline; kept for replay");
    let mut erin = open(two.api.port, "erin", None).await;
    let (replayed, count) = replay(&mut erin).await;
    assert_eq!((ids(&replayed), count), (vec![offline], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_goes_out_before_low_when_a_backlog_builds() {
    let two = TwoProcesses::api_only(&[]);
    let mut c = conn(&two.redis);
    let mut ws = open(two.api.port, "frank", None).await;
    replay(&mut ws).await;
    // The backlog builds while no notifier runs.
    let lows: Vec<String> = (0..200)
        .map(|i| request(&mut c, "frank", &format!("low {i}"), "low"))
        .collect();
    let critical = request(&mut c, "frank", "critical", "critical");
    // Only what the router has read is reordered (src/notify/worker.rs). With the
    // defaults the first read takes 128 entries for one worker, and the rest come in
    // a second read that may miss the first batch's 5 ms linger, so the critical one
    // would sometimes go out after 128 low ones. One worker that reads and runs the
    // whole backlog at once, and a linger long enough for a loaded machine, make the
    // window hold all 201: the order inside it is what this test checks.
    let _notifier = two.notifier(&[
        ("STRATEGIST__POOLS__NOTIFIER__MIN_WORKERS", "1"),
        ("STRATEGIST__POOLS__NOTIFIER__MAX_WORKERS", "1"),
        ("STRATEGIST__POOLS__NOTIFIER__CONCURRENCY", "256"),
        ("STRATEGIST__NOTIFICATIONS__BATCH_LINGER_MS", "200"),
    ]);
    let got = ids(&notes(&mut ws, 201, Duration::from_secs(60)).await);
    let at = got.iter().position(|i| *i == critical).unwrap();
    assert_eq!(at, 0, "the critical one first: {:?}", &got[..3]);
    let mut rest = got[1..].to_vec();
    rest.sort();
    assert_eq!(rest, lows, "every low one, once");
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_memory_stays_bounded() {
    let mut two = TwoProcesses::api_only(&[("STRATEGIST__NOTIFICATIONS__WS__MAX_QUEUED", "16")]);
    let _notifier = two.notifier(&[]);
    let mut c = conn(&two.redis);
    let mut slow = open(two.api.port, "gina", None).await;
    replay(&mut slow).await;
    // A well-behaved client of the same user on the same process keeps up.
    let mut fast = open(two.api.port, "gina", None).await;
    replay(&mut fast).await;
    let before = rss(two.api.proc.pid());

    // 64 MB of notifications, never read by `slow`.
    const N: usize = 1000;
    let body = "x".repeat(64 * 1024);
    let reader = tokio::spawn(async move {
        let got = notes(&mut fast, N, Duration::from_secs(240)).await;
        got.len()
    });
    for i in 0..N {
        let id = new_id();
        xadd_request(
            &mut c,
            &id,
            "gina",
            &payload("gina", &format!("big {i}"), "normal", &["websocket"], &body),
        );
    }
    let line = two.api.proc.wait_for_line(
        "closing a notification socket: too slow",
        Duration::from_secs(120),
    );
    assert!(line.contains("reconnect with after="), "{line}");
    assert_eq!(
        reader.await.unwrap(),
        N,
        "the client that reads gets all of them"
    );
    let after = rss(two.api.proc.pid());
    let grown = after.saturating_sub(before);
    eprintln!("api process RSS: {before} -> {after} bytes (+{grown}) for {N} x 64 KiB");
    assert!(
        grown < 32 * 1024 * 1024,
        "RSS grew by {grown} bytes while 64 MB went to a client that does not read"
    );

    // When it finally reads: some frames, then the end, far fewer than were sent.
    let mut received = 0;
    let end = loop {
        match next(&mut slow, Duration::from_secs(30)).await {
            Some(Got::Note(_)) => received += 1,
            Some(Got::Closed(f)) => break f,
            other => panic!("after {received} frames: {other:?}"),
        }
    };
    assert!(received < N, "received {received} of {N}");
    if let Some((code, reason)) = end {
        assert_eq!(code, 1013, "{reason}");
    }
}

/// A channel that counts its calls and fails the first `fail_first` of them.
struct Scripted {
    name: &'static str,
    calls: AtomicU32,
    fail_first: u32,
    failure: fn() -> ChannelError,
}

impl Channel for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send<'a>(&'a self, _: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let r = if n < self.fail_first {
            Err((self.failure)())
        } else {
            Ok(())
        };
        async move { r }.boxed()
    }
}

fn scripted(name: &'static str, fail_first: u32, failure: fn() -> ChannelError) -> Arc<Scripted> {
    Arc::new(Scripted {
        name,
        calls: AtomicU32::new(0),
        fail_first,
        failure,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_channel_is_tried_again_alone_and_settled_ones_never_repeat() {
    use strategist::events::notification::NotificationSendRequested;
    use strategist_actors::{Delivery, Envelope, EventType, Keys, Publisher};

    let r = redis();
    let db = TestDb::sqlite();
    let store = strategist::store::Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client).await.unwrap();
    let publisher = Publisher::new(
        shared,
        Keys::new(""),
        Arc::new(strategist::events::catalog()),
    );
    let email = scripted("email", 1, || {
        ChannelError::Transient("smtp: 451 try later".into())
    });
    let websocket = scripted("websocket", 0, || unreachable!());
    let push = scripted("push", 9, || ChannelError::Permanent("push: 400".into()));
    let mut channels = ChannelRegistry::default();
    channels.insert(email.clone());
    channels.insert(websocket.clone());
    channels.insert(push.clone());
    let notifier = strategist::notify::worker::Notifier::new(
        strategist::database::Db::ready(store.clone()),
        publisher,
        channels,
        strategist::notify::worker::NotifierOptions {
            batch_max: 16,
            batch_linger: Duration::from_millis(5),
            channel_timeout: Duration::from_secs(5),
        },
    );
    let env = Envelope::new(
        NotificationSendRequested::TYPE,
        1,
        serde_json::from_str(&payload(
            "hana",
            "t",
            "normal",
            &["websocket", "email", "push"],
            "b",
        ))
        .unwrap(),
    )
    .with_user("hana");
    let id = env.id.to_string();
    let delivery = |attempt| Delivery {
        envelope: env.clone(),
        entry_id: "1-0".into(),
        stream: "notification.events".into(),
        attempt,
    };
    let calls = || [&websocket, &email, &push].map(|c| c.calls.load(Ordering::SeqCst));

    let first = notifier.handle_batch(vec![delivery(1)]).await;
    assert!(matches!(&first[0], Err(e) if e.is_retryable()), "{first:?}");
    assert_eq!(calls(), [1, 1, 1], "every channel tried once");
    let second = notifier.handle_batch(vec![delivery(2)]).await;
    assert!(second[0].is_ok(), "{second:?}");
    assert_eq!(calls(), [1, 2, 1], "only the transient one again");
    let third = notifier.handle_batch(vec![delivery(3)]).await;
    assert!(third[0].is_ok());
    assert_eq!(calls(), [1, 2, 1], "nothing owed: nothing tried");

    let rows: Vec<(String, i32, String)> = store
        .deliveries(std::slice::from_ref(&id))
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.channel, d.attempt, d.outcome))
        .collect();
    let want: Vec<(String, i32, String)> = [
        ("email", 1, "transient"),
        ("email", 2, "delivered"),
        ("push", 1, "permanent"),
        ("websocket", 1, "delivered"),
    ]
    .iter()
    .map(|(c, a, o)| (c.to_string(), *a, o.to_string()))
    .collect();
    assert_eq!(rows, want);
    let mut c = conn(&r);
    let announced = delivered(&mut c, &id);
    assert_eq!(
        announced.len(),
        4,
        "one per attempt, re-publishing dropped: {announced:?}"
    );
    let email_ok = announced
        .iter()
        .filter(|d| d["channel"] == "email" && d["success"] == true)
        .count();
    assert_eq!(email_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_one_row_per_notification_and_marks_only_the_owners() {
    use strategist::store::entities::notification::Model;
    use strategist::store::notifications::NotificationQuery;

    for db in TestDb::both() {
        let store = strategist::store::Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let row = |id: &str, user: &str| Model {
            id: id.into(),
            user_id: user.into(),
            notification_type: "system_alert".into(),
            title: "t".into(),
            body: "b".into(),
            action_url: None,
            priority: "low".into(),
            created_at: "2026-11-30T12:00:00.000Z".into(),
            delivered_at: None,
            read_at: None,
        };
        let (a, b) = (new_id(), new_id());
        assert_eq!(
            store.save_notifications(&[row(&a, "ivy")]).await.unwrap(),
            1
        );
        assert_eq!(
            store
                .save_notifications(&[row(&a, "ivy"), row(&b, "ivy")])
                .await
                .unwrap(),
            1,
            "{}: the same id twice stores one row",
            db.kind
        );
        let at = "2026-11-30T12:01:00.000Z";
        assert!(!store.mark_notification_read("jack", &a, at).await.unwrap());
        assert!(store.mark_notification_read("ivy", &a, at).await.unwrap());
        let q = |after: Option<String>, unread| NotificationQuery {
            user_id: "ivy".into(),
            after,
            unread,
            limit: 10,
        };
        let all = store.notifications(&q(None, false)).await.unwrap();
        assert_eq!(all.len(), 2, "{}", db.kind);
        assert_eq!(all[0].read_at.as_deref(), Some(at));
        assert_eq!(all[0].delivered_at.as_deref(), Some(at));
        let unread = store.notifications(&q(None, true)).await.unwrap();
        assert_eq!(
            unread.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            vec![b.clone()]
        );
        assert_eq!(
            store
                .notifications(&q(Some(a.clone()), false))
                .await
                .unwrap()
                .len(),
            1
        );
        let jack = NotificationQuery {
            user_id: "jack".into(),
            ..q(None, false)
        };
        assert!(store.notifications(&jack).await.unwrap().is_empty());
    }
}
