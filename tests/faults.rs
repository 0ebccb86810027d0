//! The fault suite, against real processes: three `serve` processes sharing one
//! Redis and one database while one of them is SIGKILLed every few seconds, and a
//! Redis with AOF on SIGKILLed under load and started again on the same port and
//! folder. Each test prints its figures (events, kills, time to drain, duplicates,
//! lost) and fails when an event is lost or an effect happens twice.
//!
//! The effects counted: the archiver's row per event in the event store, and the
//! user-preferences projection (one applied mark and one history row per event, and
//! each user's current preferences). Both are keyed by event id, so a redelivered
//! entry must change nothing; the figures say how many entries were in flight in a
//! killed process and were taken over by the others.
//!
//! What the Redis runs measure: `appendfsync always` fsyncs before it answers, so an
//! acknowledged XADD survives anything; `everysec` write(2)s the AOF before it
//! answers and fsyncs once a second, so a SIGKILL of redis-server (the kernel keeps
//! the written pages) loses nothing either, and only a crash of the machine can take
//! the last second. The test asserts 0 for `always` and prints the figure for both.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::effects::*;
use common::*;
use serde_json::{Map, Value, json};
use strategist::store::Store;
use strategist::store::preferences::PrefState;

const STREAM: &str = "user.events";
const PROJECTION: &str = "user-preferences";
const USERS: u64 = 40;
const FIELDS: u64 = 5;
const POOLS: &str = "archiver,user-preferences";

/// Overlay for every `serve` of this suite: no periodic health or threshold
/// events (only the test's events are in the streams), and a short claim idle time
/// so that the entries of a killed process are taken over within seconds.
const OVERLAY: &str = "
[health]
interval_ms = 0

[thresholds]
interval_ms = 0

[pools.defaults]
claim_idle_ms = 3000
claim_interval_ms = 500
";

fn overlay(dir: &Path) -> String {
    let path = dir.join("faults.toml");
    std::fs::write(&path, OVERLAY).unwrap();
    path.display().to_string()
}

/// Event `i` of the load: user `i % USERS` sets field `f<n>` to `i`.
fn user_of(i: u64) -> String {
    format!("fault-user-{}", i % USERS)
}

fn field_of(i: u64) -> String {
    format!("f{}", (i / USERS) % FIELDS)
}

/// XADDs events `from..to` in one pipeline; their event ids, or None when Redis
/// did not acknowledge the pipeline.
fn publish(c: &mut redis::Connection, from: u64, to: u64) -> Option<Vec<String>> {
    let mut pipe = redis::pipe();
    let mut ids = Vec::new();
    for i in from..to {
        let id = ulid::Ulid::generate().to_string();
        let (user, field) = (user_of(i), field_of(i));
        let data = json!({
            "user_id": user,
            "changed_fields": [field],
            "old_values": {},
            "new_values": {field.clone(): i},
        });
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("id")
            .arg(&id)
            .arg("type")
            .arg("user.preferences.updated")
            .arg("version")
            .arg("1")
            .arg("timestamp")
            .arg(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .arg("user_id")
            .arg(&user)
            .arg("data")
            .arg(data.to_string())
            .ignore();
        ids.push(id);
    }
    pipe.query::<()>(c).ok().map(|_| ids)
}

/// What each user's preferences must be after events `0..n`, in publish order.
fn expected(n: u64) -> BTreeMap<String, Map<String, Value>> {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for i in 0..n {
        out.entry(user_of(i))
            .or_default()
            .insert(field_of(i), json!(i));
    }
    out
}

/// Each user's row against the expected state and against a replay of the event
/// store in stream order; returns the users that differ, with why.
async fn projection_mismatches(store: &Store, n: u64) -> Vec<String> {
    let mut bad = Vec::new();
    for (user, want) in expected(n) {
        let row = store.preferences(&user).await.unwrap();
        let Some(row) = row else {
            bad.push(format!("{user}: no row"));
            continue;
        };
        let live: Value = serde_json::from_str(&row.preferences).unwrap();
        let live_versions: Value = serde_json::from_str(&row.versions).unwrap();
        let mut replay = PrefState::default();
        for m in store.events_for_user(&user).await.unwrap() {
            if let Some(ev) = strategist::store::event_store::to_envelope(&m) {
                replay.apply(&ev, &m.entry_id);
            }
        }
        if live != Value::Object(want.clone()) {
            bad.push(format!("{user}: live {live} != published {want:?}"));
        }
        if live != Value::Object(replay.prefs.clone())
            || live_versions != Value::Object(replay.versions.clone())
        {
            bad.push(format!(
                "{user}: live {live} {live_versions} != replay {:?} {:?}",
                replay.prefs, replay.versions
            ));
        }
    }
    bad
}

/// Entries of `group` pending on consumers of process `pid`.
fn pending_of(c: &mut redis::Connection, group: &str, pid: u32) -> i64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(group)
        .query(c)
        .unwrap_or(redis::Value::Nil);
    let redis::Value::Array(parts) = v else {
        return 0;
    };
    let Some(redis::Value::Array(consumers)) = parts.get(3) else {
        return 0;
    };
    let needle = format!("-{pid}-");
    consumers
        .iter()
        .filter_map(|c| match c {
            redis::Value::Array(kv) => match (kv.first(), kv.get(1)) {
                (Some(redis::Value::BulkString(name)), Some(redis::Value::BulkString(n)))
                    if String::from_utf8_lossy(name).contains(&needle) =>
                {
                    String::from_utf8_lossy(n).parse::<i64>().ok()
                }
                _ => None,
            },
            _ => None,
        })
        .sum()
}

/// A worker-only `serve` with the suite's pools, ready when it says so.
fn worker(redis_url: &str, db_url: &str, config: &str) -> Proc {
    let mut p = App::spawn_args(
        redis_url,
        &["--no-http", "--no-scheduler", "--pools", POOLS],
        &[("DATABASE_URL", db_url), ("STRATEGIST_CONFIG", config)],
    );
    p.wait_for_line("running without HTTP", Duration::from_secs(60));
    p
}

/// Publishes `rate` events per second from a thread until `stop`; the ids acked.
fn steady_load(
    url: String,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let start = Instant::now();
        let mut sent = 0u64;
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if due > sent {
                out.extend(publish(&mut c, sent, due).expect("publish"));
                sent = due;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    })
}

fn kill_and_restart_under_load(db: TestDb) {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let config = overlay(dir.path());
    migrate(&db.url);
    let mut procs: Vec<Proc> = (0..3).map(|_| worker(&r.url(), &db.url, &config)).collect();
    let mut c = conn(&r);
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(r.url(), 250, stop.clone());
    let started = Instant::now();
    let (mut kills, mut in_flight_at_kill) = (0, 0);
    for round in 0..5 {
        std::thread::sleep(Duration::from_secs(4));
        let victim = round % 3;
        let pid = procs[victim].pid();
        in_flight_at_kill +=
            pending_of(&mut c, "archiver", pid) + pending_of(&mut c, PROJECTION, pid);
        procs[victim].signal("KILL");
        kills += 1;
        procs[victim] = worker(&r.url(), &db.url, &config);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let published = load.join().unwrap();
    let load_secs = started.elapsed().as_secs_f64();
    let n = published.len() as u64;
    let want: HashSet<String> = published.iter().cloned().collect();
    assert_eq!(want.len() as u64, n);

    let rt = rt();
    let store = rt.block_on(Store::connect(&db.url)).unwrap();
    let drain_start = Instant::now();
    let deadline = drain_start + Duration::from_secs(90);
    loop {
        let (archived, applied) = rt.block_on(effects(&store));
        if want.is_subset(&archived) && want.is_subset(&applied) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained after 90 s: {} of {n} archived, {} applied\n{}",
            archived.intersection(&want).count(),
            applied.intersection(&want).count(),
            procs
                .iter()
                .map(Proc::logs)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let drained = drain_start.elapsed();
    eventually(Duration::from_secs(30), "nothing pending", || {
        group(&mut c, STREAM, "archiver").pending == 0
            && group(&mut c, STREAM, PROJECTION).pending == 0
    });

    let (archived, applied) = rt.block_on(effects(&store));
    let lost = want.difference(&archived).count() + want.difference(&applied).count();
    let stray = (archived.len() + applied.len()) as i64 - 2 * n as i64;
    let dup_history = rt.block_on(duplicate_history(&store));
    let history_rows = rt.block_on(count(&store, "SELECT COUNT(*) FROM preference_history"));
    let stream_len: u64 = redis::cmd("XLEN").arg(STREAM).query(&mut c).unwrap();
    let dead: u64 = redis::cmd("XLEN")
        .arg(strategist_actors::Keys::new("").dlq(STREAM))
        .query(&mut c)
        .unwrap();
    let mismatches = rt.block_on(projection_mismatches(&store, n));
    println!(
        "faults[{}]: events={n} over {load_secs:.1}s, processes=3, kills={kills}, \
         in flight at kill={in_flight_at_kill}, drained {:.1}s after the load, \
         lost={lost}, duplicates={}, dead letters={dead}, projection mismatches={}",
        db.kind,
        drained.as_secs_f64(),
        dup_history + stray.max(0) + (history_rows - n as i64).max(0),
        mismatches.len()
    );
    assert_eq!(lost, 0, "events lost");
    assert_eq!(stray, 0, "effects of events nobody published");
    assert_eq!(dup_history, 0, "an event changed the history twice");
    assert_eq!(history_rows, n as i64, "one history row per event");
    assert_eq!(stream_len, n, "one entry per published event");
    assert_eq!(dead, 0, "dead letters");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn three_postgres_processes_killed_in_turn_lose_nothing_and_repeat_nothing() {
    kill_and_restart_under_load(TestDb::postgres());
}

#[test]
fn three_sqlite_processes_killed_in_turn_lose_nothing_and_repeat_nothing() {
    kill_and_restart_under_load(TestDb::sqlite());
}

/// A redis-server with AOF on in a folder of its own, that can be SIGKILLed and
/// started again on the same port with the same folder.
struct AofRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    fsync: &'static str,
    _tmp: tempfile::TempDir,
}

impl AofRedis {
    fn start(fsync: &'static str) -> AofRedis {
        let tmp = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = AofRedis {
            child: None,
            port,
            dir: tmp.path().to_path_buf(),
            fsync,
            _tmp: tmp,
        };
        r.spawn();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", self.fsync, "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        eventually(Duration::from_secs(10), "redis answers", || {
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AofRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Publishes one small pipeline after another until `stop`, reconnecting while
/// Redis is down; returns the ids Redis acknowledged.
fn acked_load(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Vec<String>, u64)> {
    std::thread::spawn(move || {
        let client = redis::Client::open(url).unwrap();
        let mut conn: Option<redis::Connection> = None;
        let (mut acked, mut refused) = (Vec::new(), 0u64);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match client.get_connection_with_timeout(Duration::from_millis(200)) {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            match publish(c, i, i + 10) {
                Some(ids) => acked.extend(ids),
                None => {
                    refused += 10;
                    conn = None;
                }
            }
            i += 10;
            std::thread::sleep(Duration::from_millis(5));
        }
        (acked, refused)
    })
}

fn redis_killed_under_load(fsync: &'static str) {
    let mut r = AofRedis::start(fsync);
    let dir = tempfile::tempdir().unwrap();
    let config = overlay(dir.path());
    let db = TestDb::sqlite();
    migrate(&db.url);
    let app = App::serve_args(
        &r.url(),
        &["--no-scheduler", "--pools", POOLS],
        &[("DATABASE_URL", &db.url), ("STRATEGIST_CONFIG", &config)],
    );
    eventually(Duration::from_secs(30), "ready", || {
        app.get("/readyz").0 == 200
    });
    let stop = Arc::new(AtomicBool::new(false));
    let load = acked_load(r.url(), stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    r.kill();
    let killed_at = Instant::now();
    eventually(
        Duration::from_secs(10),
        "/readyz says Redis is down",
        || {
            let (status, body) = app.get("/readyz");
            status == 503 && body.contains("redis")
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    r.spawn();
    let restarted = Instant::now();
    eventually(Duration::from_secs(30), "/readyz ready again", || {
        app.get("/readyz").0 == 200
    });
    let ready_after = restarted.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let (acked, refused) = load.join().unwrap();
    let down = restarted.duration_since(killed_at);

    let mut c = redis::Client::open(r.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let in_redis: HashSet<String> = entries(&mut c, STREAM)
        .into_iter()
        .filter_map(|e| e.get("id").cloned())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !in_redis.contains(*id)).collect();

    // Everything Redis kept is handled without restarting the process.
    let rt = rt();
    let store = rt.block_on(Store::connect(&db.url)).unwrap();
    let drain = Instant::now();
    eventually(
        Duration::from_secs(60),
        "all kept entries archived and applied",
        || {
            let (archived, applied) = rt.block_on(effects(&store));
            in_redis.is_subset(&archived) && in_redis.is_subset(&applied)
        },
    );
    let drained = drain.elapsed();
    println!(
        "faults[redis aof appendfsync={fsync}]: acked={} refused while down={refused}, \
         redis down {:.1}s, /readyz ready {:.1}s after restart, acked but lost={}, \
         kept entries handled {:.1}s after the load (same serve process, pid {})",
        acked.len(),
        down.as_secs_f64(),
        ready_after.as_secs_f64(),
        lost.len(),
        drained.as_secs_f64(),
        app.proc.pid()
    );
    if fsync == "always" {
        assert!(
            lost.is_empty(),
            "appendfsync always lost acked writes: {lost:?}"
        );
    }
    assert!(acked.len() > 100, "the load ran");
}

#[test]
fn redis_killed_with_aof_always_loses_no_acknowledged_event() {
    redis_killed_under_load("always");
}

#[test]
fn redis_killed_with_aof_everysec_resumes_and_reports_its_loss() {
    redis_killed_under_load("everysec");
}
