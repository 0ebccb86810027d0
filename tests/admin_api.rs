//! The admin and event API as a client sees it: the real binary on port 0 with a
//! private Redis and its own database, spoken to over HTTP.
//!
//! Covers `/events`, `/streams`, `/dlq...`, `/projections/{name}/rebuild`,
//! `/users/{user_id}/preferences` and the OpenAPI document.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;

const SECRET: &str = "admin-api-test-secret";

/// A running server with its Redis, and tokens for it.
struct Api {
    app: App,
    redis: LocalRedis,
    tokens: Tokens,
}

impl Api {
    /// Serves with a SQLite file of its own, or `database_url`.
    fn start(database_url: Option<&str>) -> Api {
        let redis = redis();
        let mut env = vec![("STRATEGIST_AUTH_SECRET", SECRET)];
        if let Some(url) = database_url {
            env.push(("DATABASE_URL", url));
        }
        let app = App::serve(&redis.url(), &env);
        Api {
            app,
            redis,
            tokens: Tokens::new(SECRET).unwrap(),
        }
    }

    fn token(&self, user: &str, admin: bool) -> String {
        self.tokens
            .mint(user, admin, Duration::from_secs(3600))
            .unwrap()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, &[], body)
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("Authorization", a));
        }
        let body = body.map(|b| b.to_string());
        http(self.app.port, method, path, &all, body.as_deref())
    }

    /// `method path` as `user`, expecting `status`; the JSON body.
    fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let r = self.call(method, path, Some(token), body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r.json()
    }
}

/// The contract's error shape with `code`.
fn assert_error(r: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

const LOGIN: &str = "user.login";

fn login(user: &str) -> Value {
    json!({"user_id": user, "ip_address": "192.0.2.1", "user_agent": "test", "success": true})
}

/// Every route this suite covers, with a body that would be valid.
fn routes() -> Vec<(&'static str, String, Option<Value>, bool)> {
    let id = encode("contextual.events:1-0");
    vec![
        ("GET", "/api/v1/events".into(), None, false),
        (
            "POST",
            "/api/v1/events".into(),
            Some(json!({"type": LOGIN, "data": login("alice")})),
            false,
        ),
        ("GET", "/api/v1/users/alice/preferences".into(), None, false),
        (
            "PUT",
            "/api/v1/users/alice/preferences".into(),
            Some(json!({"theme": "dark"})),
            false,
        ),
        ("GET", "/api/v1/streams".into(), None, true),
        ("GET", "/api/v1/metrics".into(), None, true),
        ("GET", "/api/v1/dlq".into(), None, true),
        ("GET", format!("/api/v1/dlq/{id}"), None, true),
        ("POST", format!("/api/v1/dlq/{id}/reprocess"), None, true),
        (
            "POST",
            "/api/v1/dlq/reprocess".into(),
            Some(json!({"stream": "ai.events"})),
            true,
        ),
        ("DELETE", format!("/api/v1/dlq/{id}"), None, true),
        (
            "POST",
            "/api/v1/projections/user-preferences/rebuild".into(),
            None,
            true,
        ),
    ]
}

#[test]
fn every_route_refuses_missing_bad_and_expired_tokens_other_users_and_non_admins() {
    let minted = Instant::now();
    let expired = Tokens::new(SECRET)
        .unwrap()
        .mint("alice", true, Duration::from_secs(1))
        .unwrap();
    let api = Api::start(None);
    let forged = Tokens::new("another-secret")
        .unwrap()
        .mint("alice", true, Duration::from_secs(3600))
        .unwrap();
    // exp is in whole seconds and checked with no leeway.
    if let Some(wait) = Duration::from_millis(2200).checked_sub(minted.elapsed()) {
        std::thread::sleep(wait);
    }
    let alice = api.token("alice", false);
    for (method, path, body, admin_only) in routes() {
        let what = format!("{method} {path}");
        let r = api.call(method, &path, None, body.clone());
        assert_error(&r, 401, "unauthorized", &format!("{what} without a token"));
        let r = api.call(method, &path, Some(&forged), body.clone());
        assert_error(
            &r,
            401,
            "unauthorized",
            &format!("{what} with a forged token"),
        );
        let r = api.call(method, &path, Some(&expired), body.clone());
        assert_error(&r, 401, "unauthorized", &format!("{what} expired"));
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        if admin_only {
            let r = api.call(method, &path, Some(&alice), body);
            assert_error(&r, 403, "forbidden", &format!("{what} as a non-admin"));
        }
    }
    let r = api.call("GET", "/api/v1/events", Some("not-a-token-at-all"), None);
    assert_error(&r, 401, "unauthorized", "garbage token");

    // Another user's data.
    let other: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/v1/events?user_id=bob", None),
        (
            "POST",
            "/api/v1/events",
            Some(json!({"type": LOGIN, "data": login("bob"), "user_id": "bob"})),
        ),
        // The envelope is alice's, the payload names bob: still bob's data.
        (
            "POST",
            "/api/v1/events",
            Some(json!({"type": LOGIN, "data": login("bob")})),
        ),
        ("GET", "/api/v1/users/bob/preferences", None),
        (
            "PUT",
            "/api/v1/users/bob/preferences",
            Some(json!({"theme": "dark"})),
        ),
    ];
    for (method, path, body) in other {
        let r = api.call(method, path, Some(&alice), body);
        assert_error(&r, 403, "forbidden", &format!("{method} {path} as alice"));
    }
    // Admins may act for anyone.
    let admin = api.token("root", true);
    let r = api.call("GET", "/api/v1/users/bob/preferences", Some(&admin), None);
    assert_error(
        &r,
        404,
        "not_found",
        "admin reading bob's missing preferences",
    );
    api.expect(200, "GET", "/api/v1/events?user_id=bob", &admin, None);
}

#[test]
fn published_events_are_read_back_and_an_idempotency_key_publishes_once() {
    let api = Api::start(None);
    let alice = api.token("alice", false);
    let published = api.expect(
        202,
        "POST",
        "/api/v1/events",
        &alice,
        Some(json!({"type": LOGIN, "data": login("alice"), "correlation_id": "c-1"})),
    );
    assert_eq!(published["stream"], "user.events");
    assert_eq!(published["duplicate"], false);
    let id = published["event_id"].as_str().unwrap().to_owned();
    // The archiver stores it shortly after.
    let mut found = Value::Null;
    eventually(
        Duration::from_secs(15),
        "the event is in the event store",
        || {
            let v = api.expect(
                200,
                "GET",
                "/api/v1/events?correlation_id=c-1",
                &alice,
                None,
            );
            match v["events"].as_array().and_then(|e| e.first()) {
                Some(e) => {
                    found = e.clone();
                    true
                }
                None => false,
            }
        },
    );
    assert_eq!(found["id"], id.as_str());
    assert_eq!(found["type"], LOGIN);
    assert_eq!(found["user_id"], "alice", "a non-admin's event is theirs");
    assert_eq!(found["data"]["ip_address"], "192.0.2.1");
    assert_eq!(found["entry_id"], published["entry_id"]);
    // Alice's view is hers only; paging by limit gives a cursor.
    let bob = api.token("bob", false);
    let v = api.expect(200, "GET", "/api/v1/events", &bob, None);
    assert_eq!(v["events"], json!([]), "bob sees none of alice's events");
    let v = api.expect(200, "GET", "/api/v1/events?limit=1", &alice, None);
    assert_eq!(v["next_after"], id.as_str());
    let v = api.expect(
        200,
        "GET",
        &format!("/api/v1/events?after={id}"),
        &alice,
        None,
    );
    assert_eq!(v["events"], json!([]));
    assert_eq!(v["next_after"], Value::Null);
    let r = api.call("GET", "/api/v1/events?limit=0", Some(&alice), None);
    assert_error(&r, 400, "invalid_query", "limit 0");

    // Bad input.
    let r = api.call(
        "POST",
        "/api/v1/events",
        Some(&alice),
        Some(json!({"type": LOGIN, "data": {"user_id": "alice", "success": "yes"}})),
    );
    assert_error(&r, 400, "invalid_event", "payload off schema");
    assert!(r.body.contains("does not match its schema"), "{}", r.body);
    let r = api.call(
        "POST",
        "/api/v1/events",
        Some(&alice),
        Some(json!({"type": "user.nothing", "data": {}})),
    );
    assert_error(&r, 400, "unknown_event_type", "unknown type");
    let r = api.call(
        "POST",
        "/api/v1/events",
        Some(&alice),
        Some(json!({"data": {}})),
    );
    assert_error(&r, 400, "invalid_body", "no type");

    // The same Idempotency-Key twice: one entry, the same ids, duplicate the second time.
    let body = json!({"type": LOGIN, "data": login("alice")});
    let key = [("Idempotency-Key", "order-42")];
    let first = api.call_with(
        "POST",
        "/api/v1/events",
        Some(&alice),
        &key,
        Some(body.clone()),
    );
    assert_eq!(first.status, 202, "{}", first.body);
    let second = api.call_with("POST", "/api/v1/events", Some(&alice), &key, Some(body));
    assert_eq!(second.status, 202, "{}", second.body);
    let (first, second) = (first.json(), second.json());
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["event_id"], second["event_id"]);
    assert_eq!(first["entry_id"], second["entry_id"]);
    let mut c = conn(&api.redis);
    let same: Vec<_> = entries(&mut c, "user.events")
        .into_iter()
        .filter(|e| e.get("id").map(String::as_str) == first["event_id"].as_str())
        .collect();
    assert_eq!(same.len(), 1, "one entry for the key: {same:?}");
    // The key with another request is refused; another user's same key is theirs.
    let r = api.call_with(
        "POST",
        "/api/v1/events",
        Some(&alice),
        &key,
        Some(json!({"type": LOGIN, "data": login("alice"), "correlation_id": "other"})),
    );
    assert_error(&r, 409, "conflict", "key reused for another request");
    let theirs = api.call_with(
        "POST",
        "/api/v1/events",
        Some(&bob),
        &key,
        Some(json!({"type": LOGIN, "data": login("bob")})),
    );
    assert_eq!(theirs.status, 202, "{}", theirs.body);
    assert_ne!(theirs.json()["event_id"], first["event_id"]);
}

/// Dead letters: from the Redis dead-letter stream into the table, read, reprocessed,
/// purged, and still listed after Redis trimmed them.
fn dead_letter_flow(api: &Api) {
    let admin = api.token("root", true);
    let mut c = conn(&api.redis);
    let bad = r#"{"file_id":"f1","file_size":"big"}"#;
    let ids: Vec<String> = (0..3)
        .map(|_| xadd_event(&mut c, "contextual.events", "file.uploaded", bad))
        .collect();
    let list = "/api/v1/dlq?stream=contextual.events&group=file-processor&status=open";
    let mut rows = Vec::new();
    eventually(
        Duration::from_secs(20),
        "three dead letters in the table",
        || {
            let v = api.expect(200, "GET", list, &admin, None);
            rows = v["dead_letters"].as_array().cloned().unwrap_or_default();
            rows.len() == 3
        },
    );
    let mut seen: Vec<&str> = rows
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    let mut sent: Vec<&str> = ids.iter().map(String::as_str).collect();
    sent.sort_unstable();
    assert_eq!(seen, sent);
    for row in &rows {
        assert_eq!(row["type"], "file.uploaded");
        assert_eq!(row["reason"], "invalid_event");
        assert_eq!(row["fields"]["data"], bad);
    }
    let id = rows[0]["id"].as_str().unwrap().to_owned();
    let first_event = rows[0]["event_id"].as_str().unwrap();
    assert!(id.starts_with("contextual.events:"), "{id}");

    // One by id: URL-encoded or as it is.
    let one = api.expect(
        200,
        "GET",
        &format!("/api/v1/dlq/{}", encode(&id)),
        &admin,
        None,
    );
    assert_eq!(one, rows[0]);
    let same = api.expect(200, "GET", &format!("/api/v1/dlq/{id}"), &admin, None);
    assert_eq!(same["id"], id.as_str());
    let r = api.call("GET", "/api/v1/dlq/nonsense", Some(&admin), None);
    assert_error(&r, 400, "invalid_id", "malformed id");
    let r = api.call(
        "GET",
        "/api/v1/dlq/contextual.events:1-0",
        Some(&admin),
        None,
    );
    assert_error(&r, 404, "not_found", "unknown id");
    let r = api.call("GET", "/api/v1/dlq?status=lost", Some(&admin), None);
    assert_error(&r, 400, "invalid_query", "unknown status");

    // Reprocess one: back to file-processor only, row marked.
    let v = api.expect(
        200,
        "POST",
        &format!("/api/v1/dlq/{}/reprocess", encode(&id)),
        &admin,
        None,
    );
    assert_eq!(v["status"], "reprocessed");
    let redelivered = entries(&mut c, "{contextual.events}.redeliver:file-processor");
    assert!(
        redelivered
            .iter()
            .any(|e| e.get("id").map(String::as_str) == Some(first_event)),
        "{redelivered:?}"
    );
    let one = api.expect(
        200,
        "GET",
        &format!("/api/v1/dlq/{}", encode(&id)),
        &admin,
        None,
    );
    assert_eq!(one["status"], "reprocessed");
    let r = api.call(
        "POST",
        &format!("/api/v1/dlq/{}/reprocess", encode(&id)),
        Some(&admin),
        None,
    );
    assert_error(&r, 409, "conflict", "reprocessing twice");

    // Purge the second.
    let purged = rows[1]["id"].as_str().unwrap().to_owned();
    let v = api.expect(
        200,
        "DELETE",
        &format!("/api/v1/dlq/{}", encode(&purged)),
        &admin,
        None,
    );
    assert_eq!(v["status"], "purged");
    let one = api.expect(
        200,
        "GET",
        &format!("/api/v1/dlq/{}", encode(&purged)),
        &admin,
        None,
    );
    assert_eq!(one["status"], "purged");

    // Bulk: needs a filter; reprocesses the third (and any dead letter the
    // reprocessed first one became again meanwhile).
    let r = api.call(
        "POST",
        "/api/v1/dlq/reprocess",
        Some(&admin),
        Some(json!({})),
    );
    assert_error(&r, 400, "invalid_body", "bulk without a filter");
    let v = api.expect(
        200,
        "POST",
        "/api/v1/dlq/reprocess",
        &admin,
        Some(json!({"stream": "contextual.events", "group": "file-processor", "type": "file.uploaded"})),
    );
    assert!(v["reprocessed"].as_u64().unwrap() >= 1, "{v}");
    let third = rows[2]["id"].as_str().unwrap();
    let one = api.expect(
        200,
        "GET",
        &format!("/api/v1/dlq/{}", encode(third)),
        &admin,
        None,
    );
    assert_eq!(one["status"], "reprocessed");

    // Redis forgets the dead-letter stream; the table does not.
    let _: i64 = redis::cmd("XTRIM")
        .arg("{contextual.events}.dlq")
        .arg("MAXLEN")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let v = api.expect(
        200,
        "GET",
        "/api/v1/dlq?stream=contextual.events&group=file-processor",
        &admin,
        None,
    );
    let listed: Vec<&str> = v["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for row in &rows {
        assert!(listed.contains(&row["id"].as_str().unwrap()), "{listed:?}");
    }
    let one = api.expect(
        200,
        "GET",
        &format!("/api/v1/dlq/{}", encode(&purged)),
        &admin,
        None,
    );
    assert_eq!(one["status"], "purged");
    // Paging by `after` over the table.
    let v = api.expect(
        200,
        "GET",
        &format!(
            "/api/v1/dlq?stream=contextual.events&group=file-processor&limit=1&after={}",
            encode(&id)
        ),
        &admin,
        None,
    );
    assert_eq!(v["dead_letters"][0]["id"], purged.as_str());
    assert_eq!(v["next_after"], purged.as_str());
}

/// The dead letters of `group` on `stream` in Redis whose event id is `event_id`.
fn redis_dead_letter(c: &mut redis::Connection, stream: &str, event_id: &str) -> Option<String> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(format!("{{{stream}}}.dlq"))
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap();
    strategist_actors::redis_io::parse_entries(v)
        .into_iter()
        .find(|e| {
            let field = |k: &str| {
                e.fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            field("id").as_deref() == Some(event_id)
                && field("dlq_group").as_deref() == Some("file-processor")
        })
        .map(|e| format!("{stream}:{}", e.id))
}

/// Dead letters handled with the CLI are marked in the table from the audit trail,
/// even one the mirror had not seen yet.
fn handled_elsewhere_flow(api: &Api) {
    let admin = api.token("root", true);
    let mut c = conn(&api.redis);
    let bad = r#"{"file_id":"f2","file_size":"big"}"#;
    let events: Vec<String> = (0..2)
        .map(|_| xadd_event(&mut c, "contextual.events", "file.uploaded", bad))
        .collect();
    let mut ids = Vec::new();
    eventually(
        Duration::from_secs(20),
        "both dead-lettered in Redis",
        || {
            ids = events
                .iter()
                .filter_map(|e| redis_dead_letter(&mut c, "contextual.events", e))
                .collect();
            ids.len() == 2
        },
    );
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strategist"))
            .args(args)
            .env("REDIS_URL", api.redis.url())
            .env_remove("STRATEGIST_STREAM_PREFIX")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["dlq", "purge", &ids[0]]);
    cli(&["dlq", "reprocess", &ids[1]]);
    for (id, status) in [(&ids[0], "purged"), (&ids[1], "reprocessed")] {
        eventually(
            Duration::from_secs(15),
            &format!("{id} marked {status}"),
            || {
                let r = api.call(
                    "GET",
                    &format!("/api/v1/dlq/{}", encode(id)),
                    Some(&admin),
                    None,
                );
                r.status == 200 && r.json()["status"] == status
            },
        );
        let row = api.expect(
            200,
            "GET",
            &format!("/api/v1/dlq/{}", encode(id)),
            &admin,
            None,
        );
        assert_eq!(row["reason"], "invalid_event", "{row}");
        assert_eq!(row["group"], "file-processor", "{row}");
        assert!(row["attempts"].as_i64() >= Some(1), "{row}");
        assert_eq!(row["fields"]["data"], bad, "{row}");
    }
}

#[test]
fn dead_letters_are_kept_in_the_database_and_handled_through_the_api() {
    let api = Api::start(None);
    dead_letter_flow(&api);
    handled_elsewhere_flow(&api);
}

#[test]
fn dead_letters_on_postgres() {
    let db = TestDb::postgres();
    let api = Api::start(Some(&db.url));
    dead_letter_flow(&api);
    handled_elsewhere_flow(&api);
}

#[test]
fn streams_lists_the_seven_with_their_groups() {
    let api = Api::start(None);
    let admin = api.token("root", true);
    let mut c = conn(&api.redis);
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    let mut v = Value::Null;
    eventually(
        Duration::from_secs(10),
        "the ping is read by every group",
        || {
            v = api.expect(200, "GET", "/api/v1/streams", &admin, None);
            v["streams"][6]["groups"].as_array().is_some_and(|g| {
                !g.is_empty() && g.iter().all(|g| g["entries_read"].as_i64() >= Some(1))
            })
        },
    );
    let names: Vec<&str> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "user.events",
            "content.events",
            "contextual.events",
            "market.events",
            "ai.events",
            "notification.events",
            "system.events"
        ]
    );
    let system = &v["streams"][6];
    assert!(system["length"].as_i64() >= Some(1), "{system}");
    assert!(
        system["first_id"].is_string() && system["last_id"].is_string(),
        "{system}"
    );
    let group_names = |i: usize| -> Vec<String> {
        v["streams"][i]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(group_names(2).contains(&"file-processor".to_owned()), "{v}");
    let user = group_names(0);
    assert!(user.contains(&"user-preferences".to_owned()), "{user:?}");
    assert!(user.contains(&"archiver".to_owned()), "{user:?}");
    for g in system["groups"].as_array().unwrap() {
        assert!(g["consumers"].as_i64().unwrap() >= 1, "{g}");
        assert!(g["lag"].is_i64() || g["lag"].is_null(), "{g}");
        assert!(g["last_delivered_id"].is_string(), "{g}");
    }
}

#[test]
fn preferences_are_set_read_and_rebuilt() {
    let api = Api::start(None);
    let alice = api.token("alice", false);
    let admin = api.token("root", true);
    let r = api.call("GET", "/api/v1/users/alice/preferences", Some(&alice), None);
    assert_error(&r, 404, "not_found", "no preferences yet");
    let v = api.expect(
        202,
        "PUT",
        "/api/v1/users/alice/preferences",
        &alice,
        Some(json!({"theme": "dark", "language": "fr"})),
    );
    let event_id = v["event_id"].as_str().unwrap().to_owned();
    let mut prefs = Value::Null;
    eventually(
        Duration::from_secs(15),
        "the projection applied the PUT",
        || {
            let r = api.call("GET", "/api/v1/users/alice/preferences", Some(&alice), None);
            prefs = if r.status == 200 {
                r.json()
            } else {
                Value::Null
            };
            prefs["preferences"]["theme"] == "dark"
        },
    );
    assert_eq!(prefs["preferences"]["language"], "fr");
    assert_eq!(prefs["last_event_id"], event_id.as_str());
    // A second PUT carries the old values.
    api.expect(
        202,
        "PUT",
        "/api/v1/users/alice/preferences",
        &admin,
        Some(json!({"theme": "light"})),
    );
    eventually(Duration::from_secs(15), "the second PUT applied", || {
        let v = api.expect(200, "GET", "/api/v1/users/alice/preferences", &alice, None);
        v["preferences"]["theme"] == "light"
    });
    let mut events = Vec::new();
    eventually(Duration::from_secs(15), "both updates archived", || {
        let v = api.expect(
            200,
            "GET",
            "/api/v1/events?type=user.preferences.updated",
            &alice,
            None,
        );
        events = v["events"].as_array().cloned().unwrap_or_default();
        events.len() == 2
    });
    assert_eq!(events[1]["data"]["old_values"], json!({"theme": "dark"}));
    assert_eq!(events[1]["data"]["changed_fields"], json!(["theme"]));

    // Bad bodies.
    for (body, what) in [
        (json!({}), "empty object"),
        (json!(["theme"]), "an array"),
        (json!({"": 1}), "an empty field name"),
    ] {
        let r = api.call(
            "PUT",
            "/api/v1/users/alice/preferences",
            Some(&alice),
            Some(body),
        );
        assert_error(&r, 400, "invalid_body", what);
    }

    // Rebuild from history: every user, then one; an unknown projection is a 404.
    let v = api.expect(
        200,
        "POST",
        "/api/v1/projections/user-preferences/rebuild",
        &admin,
        None,
    );
    assert_eq!(v["users"], 1, "{v}");
    assert_eq!(v["events"], 2, "{v}");
    let v = api.expect(
        200,
        "POST",
        "/api/v1/projections/user-preferences/rebuild?user_id=alice",
        &admin,
        None,
    );
    assert_eq!(
        (v["users"].as_u64(), v["events"].as_u64()),
        (Some(1), Some(2))
    );
    let after = api.expect(200, "GET", "/api/v1/users/alice/preferences", &alice, None);
    assert_eq!(
        after["preferences"],
        json!({"theme": "light", "language": "fr"})
    );
    let r = api.call(
        "POST",
        "/api/v1/projections/nothing/rebuild",
        Some(&admin),
        None,
    );
    assert_error(&r, 404, "not_found", "unknown projection");
}

#[test]
fn the_openapi_document_has_every_contract_route_that_exists() {
    let api = Api::start(None);
    let (status, body) = api.app.get("/api/openapi.json");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let expected = [
        ("post", "/api/v1/content/generate"),
        ("get", "/api/v1/content/requests/{request_id}"),
        ("post", "/api/v1/consultations"),
        ("get", "/api/v1/content/drafts/{id}"),
        ("get", "/api/v1/content/drafts"),
        ("get", "/api/v1/events"),
        ("post", "/api/v1/events"),
        ("get", "/api/v1/users/{user_id}/preferences"),
        ("put", "/api/v1/users/{user_id}/preferences"),
        ("post", "/api/v1/projections/{name}/rebuild"),
        ("get", "/api/v1/streams"),
        ("get", "/api/v1/metrics"),
        ("get", "/api/v1/dlq"),
        ("get", "/api/v1/dlq/{id}"),
        ("post", "/api/v1/dlq/{id}/reprocess"),
        ("post", "/api/v1/dlq/reprocess"),
        ("delete", "/api/v1/dlq/{id}"),
        ("post", "/api/v1/files"),
        ("get", "/api/v1/files/{file_id}"),
        ("get", "/api/v1/search"),
        ("get", "/api/v1/notifications"),
        ("post", "/api/v1/notifications/{id}/read"),
        ("get", "/ws"),
        ("get", "/api/v1/briefings"),
        ("get", "/api/v1/briefings/{id}"),
        ("put", "/api/v1/briefings/schedule"),
    ];
    let mut missing = Vec::new();
    for (method, path) in expected {
        if doc["paths"][path][method].is_null() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "missing from /api/openapi.json: {missing:?}\npaths: {:?}",
        doc["paths"]
            .as_object()
            .map(|p| p.keys().collect::<Vec<_>>())
    );
    // Every route says how it fails.
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(
            !op["responses"]["401"].is_null(),
            "{method} {path} has no 401"
        );
    }
}
