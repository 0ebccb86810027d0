//! Briefings and the scheduler through the real binary: a due schedule becomes one
//! stored briefing and one `notification.send.requested`; two processes sharing a
//! database never run the same slot twice; a run missed within the grace window
//! runs once, one missed beyond it does not.
//!
//! The tests make time pass quickly by configuration: the briefings job and the
//! weekly briefing time run every second (a 6-field cron), so a schedule is due a
//! second after it is set, while the period stays the last local calendar week.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;

const SECRET: &str = "briefings-test-secret";

fn fast_env(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRATEGIST_AUTH_SECRET", SECRET.to_owned()),
        ("DATABASE_URL", db.to_owned()),
        ("STRATEGIST__SCHEDULER__TICK_MS", "100".to_owned()),
        (
            "STRATEGIST__SCHEDULER__JOBS__BRIEFINGS__CRON",
            "* * * * * *".to_owned(),
        ),
        (
            "STRATEGIST__SCHEDULER__JOBS__CLEANUPEXPIREDDATA__CRON",
            "* * * * * *".to_owned(),
        ),
        (
            "STRATEGIST__BRIEFINGS__WEEKLY_CRON",
            "* * * * * *".to_owned(),
        ),
    ]
}

fn serve(redis: &LocalRedis, db: &str) -> App {
    let env = fast_env(db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    App::serve(&redis.url(), &env)
}

fn token(user: &str) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, false, Duration::from_secs(3600))
        .unwrap()
}

fn call(app: &App, method: &str, path: &str, user: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {}", token(user));
    let body = body.map(|b| b.to_string());
    http(
        app.port,
        method,
        path,
        &[("Authorization", auth.as_str())],
        body.as_deref(),
    )
}

fn of_type(c: &mut redis::Connection, stream: &str, t: &str) -> Vec<(String, Value)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap_or(redis::Value::Nil);
    strategist_actors::redis_io::parse_entries(v)
        .into_iter()
        .filter_map(|e| {
            let f: std::collections::HashMap<String, String> = e
                .fields
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            (f.get("type").map(String::as_str) == Some(t))
                .then(|| (e.id.clone(), serde_json::from_str(&f["data"]).unwrap()))
        })
        .collect()
}

fn set_weekly(app: &App, user: &str, zone: &str) -> Value {
    let r = call(
        app,
        "PUT",
        "/api/v1/briefings/schedule",
        user,
        Some(json!({"period": "weekly", "time_zone": zone, "contextual_core_id": "core-1"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Runs `f` on this test thread's one runtime: a database pool made in one call is
/// used in the next, and its tasks must not belong to a runtime already dropped (on
/// PostgreSQL that failed with "a Tokio context ... is being shutdown").
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

#[test]
fn a_due_schedule_becomes_one_briefing_and_one_briefing_ready_notification() {
    let redis = redis();
    let db = TestDb::sqlite();
    let app = serve(&redis, &db.url);
    let mut c = conn(&redis);

    // Bad input is a 4xx JSON error.
    for (body, needle) in [
        (
            json!({"period": "daily", "time_zone": "UTC", "contextual_core_id": "c"}),
            "period",
        ),
        (
            json!({"period": "weekly", "time_zone": "Mars/Olympus", "contextual_core_id": "c"}),
            "time_zone",
        ),
        (
            json!({"period": "weekly", "time_zone": "UTC", "contextual_core_id": ""}),
            "contextual_core_id",
        ),
        (
            json!({"period": "weekly", "time_zone": "UTC", "contextual_core_id": "c", "x": 1}),
            "",
        ),
        (json!({"period": "weekly"}), ""),
    ] {
        let r = call(
            &app,
            "PUT",
            "/api/v1/briefings/schedule",
            "alice",
            Some(body.clone()),
        );
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            r.body
        );
    }
    assert!(
        of_type(
            &mut c,
            "notification.events",
            "briefing.generation.scheduled"
        )
        .is_empty()
    );

    let set = set_weekly(&app, "alice", "Europe/Berlin");
    assert_eq!(set["period"], "weekly");
    let next_run: chrono::DateTime<chrono::Utc> =
        set["next_run"].as_str().unwrap().parse().unwrap();

    let mut notices = Vec::new();
    eventually(
        Duration::from_secs(20),
        "a briefing_ready notification",
        || {
            notices = of_type(&mut c, "notification.events", "notification.send.requested");
            !notices.is_empty()
        },
    );
    let (entry, notice) = &notices[0];
    assert_eq!(notice["user_id"], "alice");
    assert_eq!(notice["notification_type"], "briefing_ready");
    assert_eq!(notice["channels"], json!(["websocket", "email"]));
    let url = notice["message"]["action_url"].as_str().unwrap().to_owned();
    let id = url.strip_prefix("/briefings/").unwrap().to_owned();
    let entry_ms: i64 = entry.split('-').next().unwrap().parse().unwrap();
    let latency = entry_ms - next_run.timestamp_millis();
    println!("briefing: schedule due -> notification published: {latency} ms (tick 100 ms)");
    assert!((0..10_000).contains(&latency), "{latency} ms");

    let scheduled = of_type(
        &mut c,
        "notification.events",
        "briefing.generation.scheduled",
    );
    assert_eq!(scheduled.len(), 1);
    let s = &scheduled[0].1;
    let start: chrono::DateTime<chrono::Utc> = s["period_start"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = s["period_end"].as_str().unwrap().parse().unwrap();
    let hours = (end - start).num_hours();
    assert!((167..=169).contains(&hours), "a local week, {hours} h");

    let r = call(
        &app,
        "GET",
        &format!("/api/v1/briefings/{id}"),
        "alice",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    assert_eq!(b["period"], "weekly");
    assert!(!b["content"]["top_signal"].as_str().unwrap().is_empty());
    assert!(
        b["content"]["suggested_actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(b["content"]["text"].as_str().unwrap().contains("offline"));
    // Another user's briefing is not found, the same as none.
    let r = call(&app, "GET", &format!("/api/v1/briefings/{id}"), "bob", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json()["error"].is_object());

    // The schedule keeps firing every second, but the period is the same: still one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        of_type(
            &mut c,
            "notification.events",
            "briefing.generation.scheduled"
        )
        .len(),
        1
    );
    assert_eq!(
        of_type(&mut c, "notification.events", "notification.send.requested").len(),
        1
    );
    let list = call(&app, "GET", "/api/v1/briefings", "alice", None).json();
    assert_eq!(list["briefings"].as_array().unwrap().len(), 1);
    assert_eq!(list["briefings"][0]["id"], id.as_str());
    assert_eq!(list["schedule"]["time_zone"], "Europe/Berlin");
    let list = call(&app, "GET", "/api/v1/briefings", "bob", None).json();
    assert_eq!(list["briefings"].as_array().unwrap().len(), 0);

    // The routes are in the OpenAPI document.
    let (_, doc) = app.get("/api/openapi.json");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for p in [
        "/api/v1/briefings",
        "/api/v1/briefings/{id}",
        "/api/v1/briefings/schedule",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
}

/// Each process's "scheduled run done" lines of `job`: its slots.
fn slots_run(logs: &str, job: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| l.contains("scheduled run done") && l.contains(job))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("scheduled_for_ms="))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn two_processes_on_one_sqlite_database_never_run_the_same_slot_twice() {
    two_processes(TestDb::sqlite());
}

#[test]
fn two_processes_on_one_postgres_database_never_run_the_same_slot_twice() {
    two_processes(TestDb::postgres());
}

fn two_processes(db: TestDb) {
    let redis = redis();
    let a = serve(&redis, &db.url);
    let b = serve(&redis, &db.url);
    let mut c = conn(&redis);
    let users = ["ann", "ben", "cat", "dan"];
    for (i, u) in users.iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        set_weekly(app, u, "America/New_York");
    }
    eventually(Duration::from_secs(20), "four notifications", || {
        of_type(&mut c, "notification.events", "notification.send.requested").len() >= 4
    });
    std::thread::sleep(Duration::from_secs(4));
    let scheduled = of_type(
        &mut c,
        "notification.events",
        "briefing.generation.scheduled",
    );
    let per_user: HashSet<String> = scheduled
        .iter()
        .map(|(_, d)| d["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scheduled.len(), 4, "{scheduled:?}");
    assert_eq!(per_user.len(), 4);
    assert_eq!(
        of_type(&mut c, "notification.events", "notification.send.requested").len(),
        4
    );

    // The cleanup job ran every second; each slot in exactly one process.
    let (la, lb) = (
        slots_run(&a.proc.logs(), "cleanupExpiredData"),
        slots_run(&b.proc.logs(), "cleanupExpiredData"),
    );
    let all: Vec<&String> = la.iter().chain(lb.iter()).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert!(all.len() >= 4, "a: {la:?} b: {lb:?}");
    assert_eq!(
        all.len(),
        distinct.len(),
        "a slot ran twice: a {la:?} b {lb:?}"
    );

    // The run records agree: one row per slot, each finished ok.
    let store = block_on(strategist::store::Store::connect(&db.url)).unwrap();
    let runs = block_on(store.runs_of("cleanupExpiredData")).unwrap();
    assert!(
        runs.len() >= all.len(),
        "{} records, {} runs",
        runs.len(),
        all.len()
    );
    assert!(
        runs.iter()
            .filter(|r| r.finished_at_ms.is_some())
            .all(|r| r.outcome == "ok")
    );
    for u in users {
        let n = block_on(store.briefings_of(u, 10)).unwrap().len();
        assert_eq!(n, 1, "{u}");
    }
}

#[test]
fn a_run_missed_within_the_grace_window_runs_once_and_one_beyond_it_is_skipped() {
    let redis = redis();
    let db = TestDb::sqlite();
    // Schedules left due while no process ran: two hours ago (grace is a day) and
    // three days ago.
    let store = block_on(strategist::store::Store::connect(&db.url)).unwrap();
    block_on(store.migrate()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for (user, ago_ms) in [("recent", 2 * 3600 * 1000), ("stale", 3 * 86_400_000)] {
        block_on(store.set_briefing_schedule(
            strategist::store::entities::briefing_schedule::Model {
                user_id: user.to_owned(),
                period: "monthly".to_owned(),
                time_zone: "America/New_York".to_owned(),
                contextual_core_id: "core-1".to_owned(),
                next_run_ms: now - ago_ms,
                updated_at_ms: now,
            },
        ))
        .unwrap();
    }
    let started = Instant::now();
    let app = serve(&redis, &db.url);
    let mut c = conn(&redis);
    eventually(Duration::from_secs(20), "the missed briefing", || {
        !of_type(&mut c, "notification.events", "notification.send.requested").is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    let scheduled = of_type(
        &mut c,
        "notification.events",
        "briefing.generation.scheduled",
    );
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(scheduled[0].1["user_id"], "recent");
    assert_eq!(scheduled[0].1["briefing_period"], "monthly");
    // The stale schedule moved on to its next run (in the future) without a briefing.
    let stale = block_on(store.briefing_schedule("stale")).unwrap().unwrap();
    assert!(stale.next_run_ms > now, "not advanced");
    assert!(
        block_on(store.briefings_of("stale", 10))
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(app);
}

/// The benchmark of the README: `cargo test --test briefings -- --ignored --nocapture`.
/// 200 users' schedules fall due at the same second; each briefing's time from its
/// due time to its `notification.send.requested` (the Redis entry's time).
#[test]
#[ignore]
fn bench_briefing_from_schedule_to_notification() {
    let redis = redis();
    let db = TestDb::sqlite();
    let store = block_on(strategist::store::Store::connect(&db.url)).unwrap();
    block_on(store.migrate()).unwrap();
    let n = 200;
    // Due 3 s from now, once the process is up.
    let due = chrono::Utc::now().timestamp_millis() + 3000;
    for i in 0..n {
        block_on(store.set_briefing_schedule(
            strategist::store::entities::briefing_schedule::Model {
                user_id: format!("user-{i:04}"),
                period: "monthly".to_owned(),
                time_zone: "Europe/Berlin".to_owned(),
                contextual_core_id: "core-1".to_owned(),
                next_run_ms: due,
                updated_at_ms: due,
            },
        ))
        .unwrap();
    }
    let _app = serve(&redis, &db.url);
    let mut c = conn(&redis);
    eventually(Duration::from_secs(120), "every notification", || {
        of_type(&mut c, "notification.events", "notification.send.requested").len() >= n
    });
    let mut lat: Vec<i64> = of_type(&mut c, "notification.events", "notification.send.requested")
        .iter()
        .map(|(id, _)| id.split('-').next().unwrap().parse::<i64>().unwrap() - due)
        .collect();
    lat.sort();
    let mut sched: Vec<i64> = of_type(
        &mut c,
        "notification.events",
        "briefing.generation.scheduled",
    )
    .iter()
    .map(|(id, _)| id.split('-').next().unwrap().parse::<i64>().unwrap() - due)
    .collect();
    sched.sort();
    println!(
        "briefings: due -> briefing.generation.scheduled published: p50 {} ms, max {} ms",
        sched[sched.len() / 2],
        sched[sched.len() - 1]
    );
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "briefings: {n} due at once, schedule -> notification: p50 {} ms, p95 {} ms, max {} ms (SQLite, tick 100 ms, offline composer)",
        p(0.5),
        p(0.95),
        p(1.0)
    );
    assert_eq!(lat.len(), n);
}

fn briefings_read_each_users_market_data(db: TestDb) {
    use strategist::briefings::market::{CompetitorMove, Item, Trend};
    use strategist::market::briefing_data::StoredMarketData;
    let store = block_on(strategist::store::Store::connect(&db.url)).unwrap();
    block_on(store.migrate()).unwrap();
    let (start, end) = block_on(common::market_seed::seed_market(&store));

    let alice = block_on(StoredMarketData::read(&store, "alice", start, end)).unwrap();
    assert_eq!(
        alice.trends,
        vec![Trend {
            keyword: "rust".into(),
            direction: "rising".into(),
            confidence: 0.97
        }]
    );
    assert_eq!(
        alice.competitor_moves,
        vec![CompetitorMove {
            competitor: "acme".into(),
            summary: "Acme launches Rust tools".into(),
            url: Some("https://news.example/acme-tools".into()),
        }]
    );
    assert_eq!(
        alice.items,
        vec![
            Item {
                title: "Rust 2.0 ships".into(),
                url: "https://news.example/rust-2".into()
            },
            Item {
                title: "Acme launches Rust tools".into(),
                url: "https://news.example/acme-tools".into()
            },
        ]
    );
    let bob = block_on(StoredMarketData::read(&store, "bob", start, end)).unwrap();
    assert_eq!(bob.trends.len(), 1);
    assert_eq!(bob.trends[0].keyword, "golang");
    assert_eq!(bob.competitor_moves.len(), 1);
    assert_eq!(bob.competitor_moves[0].competitor, "globex");
    assert_eq!(bob.items.len(), 1);
    assert_eq!(bob.items[0].url, "https://news.example/go-news");
    let nobody = block_on(StoredMarketData::read(&store, "carol", start, end)).unwrap();
    assert_eq!(nobody, Default::default());

    // The server's briefing reads the same rows: alice's weekly briefing (UTC) of
    // last week holds her trend and her items' links, none of bob's.
    let redis = redis();
    let app = serve(&redis, &db.url);
    let mut c = conn(&redis);
    set_weekly(&app, "alice", "UTC");
    let mut notices = Vec::new();
    eventually(Duration::from_secs(20), "alice's briefing", || {
        notices = of_type(&mut c, "notification.events", "notification.send.requested");
        !notices.is_empty()
    });
    assert_eq!(
        notices[0].1["message"]["body"],
        "\"rust\" is rising (confidence 97%)"
    );
    let url = notices[0].1["message"]["action_url"].as_str().unwrap();
    let r = call(&app, "GET", &format!("/api/v1{url}"), "alice", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let content = &r.json()["content"];
    assert_eq!(content["trends"][0]["keyword"], "rust");
    assert_eq!(content["trends"][0]["direction"], "rising");
    assert_eq!(
        content["notable_items"][0]["url"],
        "https://news.example/rust-2"
    );
    assert_eq!(content["competitor_moves"][0]["competitor"], "acme");
    assert!(
        !r.body.contains("golang") && !r.body.contains("Globex"),
        "{}",
        r.body
    );
    let stored = block_on(store.briefings_of("alice", 10)).unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0]
            .content
            .contains("https://news.example/acme-tools")
    );
    assert_eq!(stored[0].period_start_ms, start.timestamp_millis());
}

#[test]
fn briefings_read_each_users_market_data_on_sqlite() {
    briefings_read_each_users_market_data(TestDb::sqlite());
}

#[test]
fn briefings_read_each_users_market_data_on_postgres() {
    briefings_read_each_users_market_data(TestDb::postgres());
}
