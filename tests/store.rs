//! The durable state, on SQLite and on PostgreSQL (a fresh database per test): the
//! archiver stores every event once across redelivery and `kill -9`; the
//! preferences projection applies each event once and equals a replay of the event
//! store; rebuild equals live; event reads filter and page; database errors are
//! clear.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::*;
use strategist::store::Store;
use strategist::store::event_store::{Archived, EventQuery, to_envelope};
use strategist::store::preferences::PrefState;
use strategist_actors::Envelope;

fn pref_event(user: &str, field: &str, value: u64) -> String {
    format!(
        r#"{{"user_id":"{user}","changed_fields":["{field}"],"old_values":{{}},"new_values":{{"{field}":{value}}}}}"#
    )
}

fn xadd_user_event(c: &mut redis::Connection, user: &str, data: &str) -> String {
    let id = ulid::Ulid::generate().to_string();
    let _: String = redis::cmd("XADD")
        .arg("user.events")
        .arg("*")
        .arg("id")
        .arg(&id)
        .arg("type")
        .arg("user.preferences.updated")
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00.123Z")
        .arg("user_id")
        .arg(user)
        .arg("data")
        .arg(data)
        .query(c)
        .unwrap();
    id
}

async fn open(db: &TestDb) -> Store {
    let s = Store::connect(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    s
}

/// Events of the test's type in the store (the system also archives what it says
/// about itself, such as `system.performance.degraded` while the backlog is high).
async fn count_events(store: &Store) -> usize {
    let mut n = 0;
    let mut q = EventQuery {
        limit: 1000,
        event_type: Some("user.preferences.updated".into()),
        ..EventQuery::default()
    };
    loop {
        let page = store.events(&q).await.unwrap();
        n += page.len();
        if page.len() < 1000 {
            return n;
        }
        q.after = page.last().map(|e| e.id.clone());
    }
}

/// The projection's state of every user, recomputed by replaying the event store.
async fn replayed(store: &Store) -> BTreeMap<String, PrefState> {
    let mut out = BTreeMap::new();
    for user in store.preference_users().await.unwrap() {
        let mut s = PrefState::default();
        for m in store.events_for_user(&user).await.unwrap() {
            if let Some(ev) = to_envelope(&m) {
                s.apply(&ev, &m.entry_id);
            }
        }
        out.insert(user, s);
    }
    out
}

async fn stored(store: &Store) -> BTreeMap<String, (String, Option<String>)> {
    let mut out = BTreeMap::new();
    for user in store.preference_users().await.unwrap() {
        if let Some(row) = store.preferences(&user).await.unwrap() {
            out.insert(user, (row.preferences, row.embedding_model));
        }
    }
    out
}

fn as_rows(r: &BTreeMap<String, PrefState>) -> BTreeMap<String, (String, Option<String>)> {
    r.iter()
        .map(|(u, s)| {
            (
                u.clone(),
                (
                    serde_json::Value::Object(s.prefs.clone()).to_string(),
                    s.embedding_model.clone(),
                ),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn the_projection_applies_each_event_once_across_a_kill_9_and_equals_a_replay() {
    for db in TestDb::both() {
        let r = redis();
        let mut c = conn(&r);
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("STRATEGIST__POOLS__DEFAULTS__CLAIM_IDLE_MS", "1500"),
        ];
        let mut app = App::serve(&r.url(), &env);
        let total = 10_000u64;
        let mut pipe = redis::pipe();
        for i in 0..total {
            let user = format!("u{}", i % 40);
            let field = ["theme", "language", "digest", "tone"][(i % 4) as usize];
            let data = pref_event(&user, field, i);
            pipe.cmd("XADD")
                .arg("user.events")
                .arg("*")
                .arg("id")
                .arg(ulid::Ulid::generate().to_string())
                .arg("type")
                .arg("user.preferences.updated")
                .arg("version")
                .arg("1")
                .arg("timestamp")
                .arg("2026-11-29T12:00:00.123Z")
                .arg("user_id")
                .arg(&user)
                .arg("data")
                .arg(data)
                .ignore();
            if i == total / 2 {
                pipe.query::<()>(&mut c).unwrap();
                pipe = redis::pipe();
                // Kill it in the middle of the work.
                eventually(Duration::from_secs(60), "work under way", || {
                    group(&mut c, "user.events", "user-preferences").entries_read > 100
                });
                app.proc.signal("KILL");
                let _ = app.proc.wait(Duration::from_secs(10));
                app = App::serve(&r.url(), &env);
            }
        }
        pipe.query::<()>(&mut c).unwrap();
        eventually(
            Duration::from_secs(120),
            "projection and archive caught up",
            || {
                let p = group(&mut c, "user.events", "user-preferences");
                let a = group(&mut c, "user.events", "archiver");
                p.lag == 0 && p.pending == 0 && a.lag == 0 && a.pending == 0
            },
        );
        let store = open(&db).await;
        assert_eq!(
            count_events(&store).await,
            total as usize,
            "{}: every event archived once",
            db.kind
        );
        let history = {
            let mut n = 0;
            for u in store.preference_users().await.unwrap() {
                n += store.preference_history(&u).await.unwrap().len();
            }
            n
        };
        assert_eq!(
            history, total as usize,
            "{}: one history row per change, none twice",
            db.kind
        );
        assert_eq!(
            stored(&store).await,
            as_rows(&replayed(&store).await),
            "{}: live equals replay",
            db.kind
        );
        drop(app);
    }
}

#[actix_rt::test]
async fn rebuild_while_live_events_arrive_equals_live_application() {
    for db in TestDb::both() {
        let r = redis();
        let mut c = conn(&r);
        let env = [("DATABASE_URL", db.url.as_str())];
        let _app = App::serve(&r.url(), &env);
        for i in 0..300u64 {
            xadd_user_event(
                &mut c,
                &format!("u{}", i % 7),
                &pref_event(&format!("u{}", i % 7), ["a", "b"][(i % 2) as usize], i),
            );
        }
        eventually(Duration::from_secs(60), "applied", || {
            let p = group(&mut c, "user.events", "user-preferences");
            p.lag == 0 && p.pending == 0
        });
        let store = open(&db).await;
        let before = stored(&store).await;
        // Rebuild from the CLI while more live events arrive.
        let mut rebuild = Command::new(env!("CARGO_BIN_EXE_strategist"));
        rebuild
            .args(["projections", "rebuild", "user-preferences"])
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", r.url());
        let child = std::thread::spawn(move || rebuild.output().unwrap());
        for i in 300..400u64 {
            xadd_user_event(
                &mut c,
                &format!("u{}", i % 7),
                &pref_event(&format!("u{}", i % 7), ["a", "b"][(i % 2) as usize], i),
            );
        }
        let out = child.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("rebuilt user-preferences for 7 users")
        );
        eventually(Duration::from_secs(60), "live caught up", || {
            let p = group(&mut c, "user.events", "user-preferences");
            let a = group(&mut c, "user.events", "archiver");
            p.lag == 0 && p.pending == 0 && a.lag == 0 && a.pending == 0
        });
        let after = stored(&store).await;
        assert_ne!(
            before, after,
            "the live events after the first check changed things"
        );
        assert_eq!(
            after,
            as_rows(&replayed(&store).await),
            "{}: rebuild plus live equals replay",
            db.kind
        );
        // A rebuild when nothing moves changes nothing.
        let again = Command::new(env!("CARGO_BIN_EXE_strategist"))
            .args([
                "projections",
                "rebuild",
                "user-preferences",
                "--user-id",
                "u3",
            ])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(again.status.success());
        assert_eq!(stored(&store).await, after);
    }
}

#[actix_rt::test]
async fn the_archiver_stores_every_event_once_known_or_not() {
    for db in TestDb::both() {
        let r = redis();
        let mut c = conn(&r);
        let _app = App::serve(&r.url(), &[("DATABASE_URL", db.url.as_str())]);
        let known = xadd_event(
            &mut c,
            "ai.events",
            "ai.consultation.requested",
            r#"{"session_id":"s","user_id":"u1","contextual_core_id":"c","query":"q","session_type":"trend_analysis"}"#,
        );
        let unknown = xadd_event(
            &mut c,
            "market.events",
            "market.sentiment.shifted",
            r#"{"mood":"up"}"#,
        );
        let invalid = xadd_event(
            &mut c,
            "ai.events",
            "ai.consultation.requested",
            r#"{"session_id":1}"#,
        );
        // The same event id twice on the stream (a producer that retried by hand).
        let _: String = redis::cmd("XADD").arg("ai.events").arg("*")
            .arg("id").arg(&known).arg("type").arg("ai.consultation.requested").arg("version").arg("1")
            .arg("timestamp").arg("2026-11-29T12:00:00.123Z")
            .arg("data").arg(r#"{"session_id":"s","user_id":"u1","contextual_core_id":"c","query":"q","session_type":"trend_analysis"}"#)
            .query(&mut c).unwrap();
        eventually(Duration::from_secs(30), "archived", || {
            ["ai.events", "market.events"].iter().all(|s| {
                let g = group(&mut c, s, "archiver");
                g.lag == 0 && g.pending == 0
            })
        });
        let store = open(&db).await;
        // (A critical dead letter also published system.error.critical; leave it out.)
        let all: Vec<_> = store
            .events(&EventQuery {
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            // What the test published: not the consultation's answer (which the
            // content-generator publishes, caused by the request).
            .filter(|e| e.stream != "system.events" && e.causation_id.is_none())
            .collect();
        let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(all.len(), 3, "{}: {all:?}", db.kind);
        assert!(
            ids.contains(known.as_str())
                && ids.contains(unknown.as_str())
                && ids.contains(invalid.as_str())
        );
        let u = all.iter().find(|e| e.id == unknown).unwrap();
        assert_eq!(u.event_type, "market.sentiment.shifted");
        assert_eq!(u.stream, "market.events");
    }
}

#[tokio::test]
async fn archived_events_come_back_as_published_and_a_repeat_in_a_batch_is_skipped() {
    for db in TestDb::both() {
        let store = open(&db).await;
        let mut first = Envelope::new(
            "user.login",
            3,
            serde_json::json!({"text": "quote \" backslash \\ é ✓", "n": [1, 2.5, null]}),
        );
        first.user_id = Some("carol".into());
        first.correlation_id = Some("corr".into());
        first.metadata = Some(serde_json::Map::from_iter([(
            "source".to_owned(),
            serde_json::json!("test"),
        )]));
        let mut second = Envelope::new("user.login", 1, serde_json::json!({}));
        second.user_id = Some("carol".into());
        let archived = |env: &Envelope, entry: &str| Archived {
            stream: "user.events".into(),
            entry_id: entry.into(),
            envelope: env.clone(),
        };
        assert_eq!(store.archive(&[archived(&first, "7-1")]).await.unwrap(), 1);
        // The first again beside a new one: only the new one is written.
        let n = store
            .archive(&[archived(&first, "7-1"), archived(&second, "8-0")])
            .await
            .unwrap();
        assert_eq!(n, 1, "{}", db.kind);
        let rows = store.events_for_user("carol").await.unwrap();
        assert_eq!(rows.len(), 2, "{}", db.kind);
        let back = to_envelope(&rows[0]).unwrap();
        assert_eq!(back.id, first.id);
        assert_eq!(back.data, first.data, "{}", db.kind);
        assert_eq!(back.metadata, first.metadata);
        assert_eq!(back.version, 3);
        assert_eq!(back.correlation_id.as_deref(), Some("corr"));
        assert_eq!(
            back.timestamp.timestamp_millis(),
            first.timestamp.timestamp_millis()
        );
        assert_eq!((rows[0].entry_ms, rows[0].entry_seq), (7, 1));
        let back = to_envelope(&rows[1]).unwrap();
        assert_eq!(back.correlation_id, None, "NULL stays NULL");
        assert_eq!(back.metadata, None);
    }
}

#[actix_rt::test]
async fn events_are_read_by_user_correlation_type_and_time_in_stream_order_and_paged() {
    for db in TestDb::both() {
        let store = open(&db).await;
        let mut batch = Vec::new();
        for i in 0..25u64 {
            let mut env = Envelope::new(
                if i % 2 == 0 {
                    "user.login"
                } else {
                    "user.registered"
                },
                1,
                serde_json::json!({"n": i}),
            );
            env.user_id = Some(if i % 5 == 0 {
                "alice".into()
            } else {
                "bob".into()
            });
            env.correlation_id = Some(format!("c{}", i % 3));
            env.timestamp =
                chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + i as i64 * 1000)
                    .unwrap();
            batch.push(Archived {
                stream: "user.events".into(),
                entry_id: format!("{}-{}", 1000 + i / 2, i % 2),
                envelope: env,
            });
        }
        assert_eq!(store.archive(&batch).await.unwrap(), 25);
        assert_eq!(
            store.archive(&batch).await.unwrap(),
            0,
            "{}: archiving again adds nothing",
            db.kind
        );
        let q = |f: fn(&mut EventQuery)| {
            let mut q = EventQuery {
                limit: 100,
                ..EventQuery::default()
            };
            f(&mut q);
            q
        };
        assert_eq!(
            store
                .events(&q(|q| q.user_id = Some("alice".into())))
                .await
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            store
                .events(&q(|q| q.correlation_id = Some("c1".into())))
                .await
                .unwrap()
                .len(),
            8
        );
        assert_eq!(
            store
                .events(&q(|q| q.event_type = Some("user.login".into())))
                .await
                .unwrap()
                .len(),
            13
        );
        let window = store
            .events(&q(|q| {
                q.from_ms = Some(1_800_000_005_000);
                q.to_ms = Some(1_800_000_010_000);
            }))
            .await
            .unwrap();
        assert_eq!(window.len(), 5);
        // Pages of 10 walk the whole store in stream order, none twice.
        let mut seen = Vec::new();
        let mut page_q = EventQuery {
            limit: 10,
            ..EventQuery::default()
        };
        loop {
            let page = store.events(&page_q).await.unwrap();
            seen.extend(page.iter().map(|e| (e.entry_ms, e.entry_seq)));
            if page.len() < 10 {
                break;
            }
            page_q.after = page.last().map(|e| e.id.clone());
        }
        assert_eq!(seen.len(), 25);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{}: stream order",
            db.kind
        );
        let alice = store.events_for_user("alice").await.unwrap();
        assert_eq!(alice.len(), 5);
    }
}

#[test]
fn database_errors_a_person_can_cause_are_one_clear_line() {
    let bin = env!("CARGO_BIN_EXE_strategist");
    let run = |url: &str| {
        Command::new(bin)
            .arg("migrate")
            .env("DATABASE_URL", url)
            .output()
            .unwrap()
    };
    let bad = run("mysql://root@127.0.0.1/x");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("is not supported") && err.lines().count() == 1,
        "{err}"
    );
    let down = run("postgres://postgres@127.0.0.1:1/none");
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("cannot open the database at postgres://postgres@127.0.0.1:1/none")
            && err.lines().count() == 1,
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let ok = run(&format!(
        "sqlite://{}/nested/folder/s.db?mode=rwc",
        dir.path().display()
    ));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        dir.path().join("nested/folder/s.db").exists(),
        "the folder was made"
    );
}

#[test]
fn serve_stays_up_with_the_database_down_and_readyz_says_why() {
    let r = redis();
    let app = App::serve(
        &r.url(),
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
    );
    eventually(
        Duration::from_secs(10),
        "/readyz names the database",
        || {
            let (status, body) = app.get("/readyz");
            status == 503 && body.contains("database")
        },
    );
    assert_eq!(app.get("/healthz").0, 200);
    // Routing without the database goes on for groups that do not need it.
    let mut c = conn(&r);
    xadd_event(
        &mut c,
        "system.events",
        "system.service.health",
        r#"{"service_name":"x","status":"healthy","response_time_ms":1,"memory_usage_mb":1,"cpu_usage_percent":1,"error_rate":0}"#,
    );
    eventually(Duration::from_secs(10), "system-monitor handled it", || {
        let g = group(&mut c, "system.events", "system-monitor");
        g.entries_read >= 1 && g.pending == 0 && g.lag == 0
    });
    // The archiver keeps it pending (to retry), not dead-lettered.
    assert!(group(&mut c, "system.events", "archiver").pending >= 1);
    assert!(entries(&mut c, "{system.events}.dlq").is_empty());
}

/// A batch applies each event once: a repeat inside the batch, or of an event a
/// previous batch applied, changes nothing; users' fields take the newest write
/// by stream order whatever the order inside the batch.
#[tokio::test]
async fn a_batch_of_preference_events_applies_each_once_and_newest_wins() {
    for db in TestDb::both() {
        let store = open(&db).await;
        let ev = |user: &str, field: &str, value: u64| {
            let mut e = Envelope::new(
                "user.preferences.updated",
                1,
                serde_json::from_str(&pref_event(user, field, value)).unwrap(),
            );
            e.user_id = Some(user.to_owned());
            e
        };
        let (a1, a2, b1) = (ev("a", "theme", 1), ev("a", "theme", 2), ev("b", "lang", 7));
        let first = store
            .apply_preferences_batch(&[(&a2, "20-0"), (&a1, "10-0"), (&b1, "11-0"), (&a1, "10-0")])
            .await
            .unwrap();
        assert_eq!(first, vec![true, true, true, false], "{}", db.kind);
        let again = store
            .apply_preferences_batch(&[(&a1, "10-0"), (&b1, "11-0")])
            .await
            .unwrap();
        assert_eq!(again, vec![false, false], "{}", db.kind);
        let a = store.preferences("a").await.unwrap().unwrap();
        let prefs: serde_json::Value = serde_json::from_str(&a.preferences).unwrap();
        assert_eq!(
            prefs["theme"], 2,
            "the write with the later entry id wins ({})",
            db.kind
        );
        let history = store.preference_history("a").await.unwrap();
        let values: Vec<(Option<&str>, Option<&str>, &str)> = history
            .iter()
            .map(|h| {
                (
                    h.old_value.as_deref(),
                    h.new_value.as_deref(),
                    h.entry_id.as_str(),
                )
            })
            .collect();
        // No old value is NULL, not the text "null"; both rows keep their entry id.
        assert_eq!(
            values,
            vec![(None, Some("1"), "10-0"), (None, Some("2"), "20-0")],
            "{}",
            db.kind
        );
        assert_eq!(history[1].timestamp_ms, a2.timestamp.timestamp_millis());
        let b = store.preferences("b").await.unwrap().unwrap();
        assert_eq!(
            (b.embedding_model, b.last_event_id),
            (None, b1.id.to_string())
        );
    }
}
