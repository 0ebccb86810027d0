//! `serve` with `user.events` split into 4 partitions (a configuration file, as an
//! operator writes it): user events spread over `user.events:0..3` by `user_id`,
//! each user's events in one partition; the preferences projection ends where the
//! last write of each user says; the archive stores the logical stream name; and
//! `/api/v1/metrics`, `/metrics` and `/api/v1/streams` report `user.events` once,
//! summed over its partitions. A bad partition count stops `serve` with one line.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist_actors::partition::partition_of;

const SECRET: &str = "partitions-test-secret";
const N: u32 = 4;
const USERS: usize = 8;
const WRITES: usize = 5;

fn config(dir: &tempfile::TempDir, partitions: &str) -> String {
    let path = dir.path().join("partitions.toml");
    std::fs::write(
        &path,
        format!("[streams.\"user.events\"]\npartitions = {partitions}\n"),
    )
    .unwrap();
    path.display().to_string()
}

fn call(app: &App, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string());
    http(
        app.port,
        method,
        path,
        &[("Authorization", &auth)],
        body.as_deref(),
    )
}

#[test]
fn user_events_flow_through_four_partitions() {
    let r = redis();
    let mut c = conn(&r);
    // A group nobody reads, on every partition: its lag is every user event, which
    // the metrics must report summed under `user.events`.
    for n in 0..N {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(format!("user.events:{n}"))
            .arg("observer")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut c)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "4");
    let app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("STRATEGIST_CONFIG", &cfg),
        ],
    );
    let tokens = Tokens::new(SECRET).unwrap();
    let admin = tokens
        .mint("root", true, Duration::from_secs(3600))
        .unwrap();
    let users: Vec<String> = (0..USERS).map(|i| format!("user-{i}")).collect();
    // Interleaved writes: user-0 v0, user-1 v0, ..., user-0 v1, ...
    for w in 0..WRITES {
        for u in &users {
            let t = tokens.mint(u, false, Duration::from_secs(3600)).unwrap();
            let r = call(
                &app,
                "PUT",
                &format!("/api/v1/users/{u}/preferences"),
                &t,
                Some(json!({"theme": format!("v{w}"), "last_writer": u})),
            );
            assert_eq!(r.status, 202, "{}", r.body);
        }
    }
    let total = (USERS * WRITES) as u64;

    // The projection: every user ends at their last write.
    eventually(
        Duration::from_secs(30),
        "every user's last write applied",
        || {
            users.iter().all(|u| {
                let r = call(
                    &app,
                    "GET",
                    &format!("/api/v1/users/{u}/preferences"),
                    &admin,
                    None,
                );
                r.status == 200 && r.json()["preferences"]["theme"] == format!("v{}", WRITES - 1)
            })
        },
    );

    // In Redis: no plain `user.events` key; each user in exactly one partition, the
    // one the hash of its user_id names.
    let exists: i64 = redis::cmd("EXISTS")
        .arg("user.events")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "the logical stream has no key of its own");
    let mut partitions_of: HashMap<String, BTreeSet<u32>> = HashMap::new();
    let mut seen = 0u64;
    for n in 0..N {
        for e in entries(&mut c, &format!("user.events:{n}")) {
            let data: Value = serde_json::from_str(&e["data"]).unwrap();
            let user = data["user_id"].as_str().unwrap().to_owned();
            assert_eq!(
                partition_of(user.as_bytes(), N),
                n,
                "{user} in partition {n}"
            );
            partitions_of.entry(user).or_default().insert(n);
            seen += 1;
        }
    }
    assert_eq!(seen, total);
    assert_eq!(partitions_of.len(), USERS);
    let used: BTreeSet<u32> = partitions_of.values().flatten().copied().collect();
    assert!(used.len() >= 2, "8 users over partitions {used:?}");

    // The archive keeps the logical stream name.
    eventually(Duration::from_secs(30), "every update archived", || {
        let r = call(
            &app,
            "GET",
            "/api/v1/events?type=user.preferences.updated&limit=1000",
            &admin,
            None,
        );
        let events = r.json()["events"].as_array().cloned().unwrap_or_default();
        events.len() == total as usize && events.iter().all(|e| e["stream"] == "user.events")
    });

    // /api/v1/metrics: one `user.events`, its figures summed over the partitions.
    let mut doc = Value::Null;
    eventually(
        Duration::from_secs(30),
        "metrics show the drained projection",
        || {
            let r = call(&app, "GET", "/api/v1/metrics", &admin, None);
            assert_eq!(r.status, 200, "{}", r.body);
            doc = r.json();
            group_of(&doc, "user-preferences")["queue_depth"] == 0
        },
    );
    let streams: Vec<&Value> = doc["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["stream_name"]
                .as_str()
                .unwrap()
                .starts_with("user.events")
        })
        .collect();
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0]["stream_name"], "user.events");
    assert_eq!(streams[0]["length"], total);
    let prefs = group_of(&doc, "user-preferences");
    assert_eq!(prefs["entries_read"], total, "read summed over partitions");
    assert_eq!(
        (prefs["pending"].as_u64(), prefs["consumer_lag"].as_u64()),
        (Some(0), Some(0))
    );
    let observer = group_of(&doc, "observer");
    assert_eq!(
        observer["consumer_lag"], total,
        "the logical stream's lag: {observer}"
    );
    assert_eq!(observer["queue_depth"], total);
    let pools: Vec<&Value> = doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["group"] == "user-preferences")
        .collect();
    assert_eq!(pools.len(), 1, "one pool line for the 4 routers: {pools:?}");
    assert_eq!(pools[0]["stream_name"], "user.events");
    assert!(
        !doc.to_string().contains("user.events:"),
        "no partition leaks into the metrics document"
    );

    // Prometheus: the same gauges, under the logical name.
    let (status, body) = app.get("/metrics");
    assert_eq!(status, 200);
    let length = body
        .lines()
        .find_map(|l| l.strip_prefix("strategist_stream_length{stream=\"user.events\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(length, Some(total as f64), "user.events length in /metrics");
    assert!(
        body.lines().any(|l| l.starts_with("strategist_group_lag{")
            && l.contains("stream=\"user.events\"")
            && l.contains("group=\"observer\"")
            && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(total as f64)),
        "observer lag in /metrics: {:?}",
        body.lines()
            .filter(|l| l.contains("observer"))
            .collect::<Vec<_>>()
    );
    assert!(
        !body.contains("user.events:"),
        "no partition label in /metrics"
    );

    // /api/v1/streams: summed, with each partition beside.
    let r = call(&app, "GET", "/api/v1/streams", &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let user = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "user.events")
        .cloned()
        .unwrap();
    assert_eq!(user["length"], total);
    let parts = user["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), N as usize);
    assert_eq!(parts[3]["name"], "user.events:3");
}

fn group_of<'a>(doc: &'a Value, group: &str) -> &'a Value {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream_name"] == "user.events" && g["group"] == group)
        .unwrap_or_else(|| panic!("no user.events/{group} in {doc}"))
}

#[test]
fn a_bad_partition_count_stops_serve_with_one_line() {
    let r = redis();
    for (n, says) in [("0", "out of range"), ("5000", "out of range")] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir, n);
        let mut p = App::spawn(&r.url(), &[("STRATEGIST_CONFIG", &cfg)]);
        let status = p.wait(Duration::from_secs(30));
        assert!(!status.success(), "partitions = {n} was accepted");
        let logs = p.logs();
        assert!(
            logs.lines()
                .any(|l| l.contains("streams.\"user.events\".partitions") && l.contains(says)),
            "partitions = {n}: {logs}"
        );
    }
}
