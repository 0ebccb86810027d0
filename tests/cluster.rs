//! The `serve` binary on a local Redis Cluster (three masters, three replicas; a
//! fresh cluster per test): events published through the HTTP API are archived
//! and projected exactly once; a master SIGKILLed mid-load and a manual
//! `CLUSTER FAILOVER` mid-load leave no router stuck and `/readyz` recovers; and
//! what asynchronous replication loses is measured: events acknowledged to the
//! client (202) against events archived. With `[redis] durability = "replicas:1"`
//! (a `WAIT 1` after every publish) the loss must be 0. Each test prints its
//! figures.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::LocalCluster;
use common::effects::*;
use common::*;
use serde_json::json;
use strategist::auth::Tokens;
use strategist::store::Store;

const SECRET: &str = "cluster-test-secret";
const STREAM: &str = "user.events";
const POOLS: &str = "archiver,user-preferences";
const USERS: u64 = 20;

/// No periodic health or threshold events (only the test's events are in the
/// streams); a short claim idle time so that entries of a dead connection are
/// taken over within seconds.
fn overlay(dir: &Path, durability: &str) -> String {
    let path = dir.join("cluster.toml");
    std::fs::write(
        &path,
        format!(
            "[health]\ninterval_ms = 0\n\n[thresholds]\ninterval_ms = 0\n\n\
             [pools.defaults]\nclaim_idle_ms = 3000\nclaim_interval_ms = 500\n\n\
             [redis]\ndurability = \"{durability}\"\ndurability_timeout_ms = 1000\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn admin() -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint("admin", true, Duration::from_secs(3600))
        .unwrap()
}

/// `POST /api/v1/events` of event `i` (user `i % USERS` sets `f` to `i`); the
/// event id when the app acknowledged it (202).
fn publish(port: u16, token: &str, i: u64) -> Option<String> {
    let user = format!("cluster-user-{}", i % USERS);
    let body = json!({
        "type": "user.preferences.updated",
        "user_id": user,
        "data": {"user_id": user, "changed_fields": ["f"], "old_values": {}, "new_values": {"f": i}},
    })
    .to_string();
    let auth = format!("Bearer {token}");
    let r = std::panic::catch_unwind(|| {
        http(
            port,
            "POST",
            "/api/v1/events",
            &[("Authorization", &auth)],
            Some(&body),
        )
    })
    .ok()?;
    (r.status == 202)
        .then(|| r.json()["event_id"].as_str().map(String::from))
        .flatten()
}

/// Publishes from `threads` threads until `stop`; the ids acknowledged and the
/// number refused.
fn load(
    port: u16,
    threads: u64,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(Vec<String>, u64)>> {
    (0..threads)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let token = admin();
                let (mut acked, mut refused) = (Vec::new(), 0u64);
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    match publish(port, &token, i) {
                        Some(id) => acked.push(id),
                        None => {
                            refused += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    i += threads;
                }
                (acked, refused)
            })
        })
        .collect()
}

struct Setup {
    cluster: LocalCluster,
    app: App,
    db: TestDb,
    _dir: tempfile::TempDir,
}

fn setup(durability: &str) -> Setup {
    let cluster = LocalCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = overlay(dir.path(), durability);
    let db = TestDb::sqlite();
    migrate(&db.url);
    let app = App::serve_args(
        &cluster.url(),
        &["--no-scheduler", "--pools", POOLS],
        &[
            ("DATABASE_URL", &db.url),
            ("STRATEGIST_CONFIG", &config),
            ("STRATEGIST_AUTH_SECRET", SECRET),
        ],
    );
    eventually(Duration::from_secs(30), "ready on the cluster", || {
        app.get("/readyz").0 == 200
    });
    Setup {
        cluster,
        app,
        db,
        _dir: dir,
    }
}

#[test]
fn serve_runs_on_a_cluster() {
    let s = setup("master");
    let token = admin();
    let mut acked = HashSet::new();
    for i in 0..200 {
        acked.insert(publish(s.app.port, &token, i).expect("published"));
    }
    let rt = rt();
    let store = rt.block_on(Store::connect(&s.db.url)).unwrap();
    eventually(Duration::from_secs(30), "all archived and applied", || {
        let (archived, applied) = rt.block_on(effects(&store));
        acked.is_subset(&archived) && acked.is_subset(&applied)
    });
    let (archived, _) = rt.block_on(effects(&store));
    assert_eq!(
        archived.len(),
        200,
        "nothing archived beyond what was published"
    );
    assert_eq!(rt.block_on(duplicate_history(&store)), 0);
    // The admin view of the streams reads every stream on its own node.
    let r = http(
        s.app.port,
        "GET",
        "/api/v1/streams",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(STREAM), "{}", r.body);
    assert_eq!(s.app.get("/readyz").0, 200);
    let logs = s.app.proc.logs();
    let bad: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(
        bad.is_empty(),
        "warnings on a healthy cluster:\n{}",
        bad.join("\n")
    );
}

/// What a failover run measured.
struct Figures {
    /// Publishes answered 202.
    acked: usize,
    /// Publishes refused (an error status or no answer).
    refused: u64,
    /// Acknowledged events missing from the stream after the failover: what
    /// replication lost.
    missing_in_redis: usize,
    /// Acknowledged events the archiver never stored.
    unarchived: usize,
    /// Acknowledged events the projection never applied.
    unapplied: usize,
    /// Event ids with more than one history row: an effect done twice.
    duplicates: i64,
    /// Event ids with more than one entry in the stream: an XADD the cluster
    /// client sent again after a lost connection (handlers dedupe by id).
    twice_in_stream: usize,
    /// `WAIT` calls the stream's (new) master has answered.
    waits: u64,
    /// From the fault until every node agrees on the new master.
    moved: Duration,
    /// From the fault until `/readyz` answers 200 again.
    ready_again: Duration,
    /// From the end of the load until the archive stopped changing.
    drained: Duration,
}

/// Runs load for 3 s, applies `fault` to the master of the stream, keeps the load
/// on for 6 s more, and measures.
fn under_load(s: &mut Setup, fault: &str) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let loaders = load(s.app.port, 4, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let master = s.cluster.master_of(STREAM);
    let faulted = Instant::now();
    match fault {
        "kill" => s.cluster.kill(master),
        "lag-kill" => {
            // The replica falls 700 ms behind, then its master dies: it is promoted
            // without what the master acknowledged meanwhile.
            let replica = s.cluster.replica_of(master);
            s.cluster.cut_off_replica(master, replica);
            std::thread::sleep(Duration::from_millis(700));
            s.cluster.kill(master);
            s.cluster.signal(replica, "CONT");
        }
        "failover" => {
            let replica = s.cluster.replica_of(master);
            s.cluster.failover(replica, Duration::from_secs(10));
        }
        other => panic!("unknown fault {other}"),
    }
    s.cluster
        .wait_moved(STREAM, master, Duration::from_secs(20));
    s.cluster.wait_ok(Duration::from_secs(20));
    let moved = faulted.elapsed();
    if fault != "failover" {
        // Back as a replica of the new master, so `WAIT 1` can be answered again.
        s.cluster.restart(master);
    }
    eventually(Duration::from_secs(30), "/readyz ready again", || {
        s.app.get("/readyz").0 == 200
    });
    let ready_again = faulted.elapsed();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut refused) = (Vec::new(), 0);
    for l in loaders {
        let (a, r) = l.join().unwrap();
        acked.extend(a);
        refused += r;
    }
    let rt = rt();
    let store = rt.block_on(Store::connect(&s.db.url)).unwrap();
    let acked_set: HashSet<String> = acked.iter().cloned().collect();
    // Wait for the archive to stop growing (everything Redis kept is handled),
    // then count what was acknowledged and never arrived.
    let drain = Instant::now();
    let mut last = (usize::MAX, Instant::now());
    loop {
        let (archived, applied) = rt.block_on(effects(&store));
        if acked_set.is_subset(&archived) && acked_set.is_subset(&applied) {
            break;
        }
        if archived.len() != last.0 {
            last = (archived.len(), Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(8) {
            break;
        }
        assert!(drain.elapsed() < Duration::from_secs(60), "draining");
        std::thread::sleep(Duration::from_millis(200));
    }
    let drained = drain.elapsed();
    let (archived, applied) = rt.block_on(effects(&store));
    let nodes: Vec<String> = s
        .cluster
        .live_ports()
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let mut c = redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_connection()
        .unwrap();
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for e in strategist_actors::redis_io::parse_entries(v) {
        if let Some((_, id)) = e.fields.iter().find(|(k, _)| k == "id") {
            *per_id
                .entry(String::from_utf8_lossy(id).into_owned())
                .or_default() += 1;
        }
    }
    let stats: String = s
        .cluster
        .node_cmd(
            s.cluster.master_of(STREAM),
            redis::cmd("INFO").arg("commandstats"),
        )
        .unwrap();
    let waits = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Figures {
        acked: acked_set.len(),
        refused,
        missing_in_redis: acked_set
            .iter()
            .filter(|id| !per_id.contains_key(*id))
            .count(),
        unarchived: acked_set.difference(&archived).count(),
        unapplied: acked_set.difference(&applied).count(),
        twice_in_stream: per_id.values().filter(|n| **n > 1).count(),
        waits,
        moved,
        ready_again,
        drained,
        duplicates: rt.block_on(duplicate_history(&store)),
    }
}

fn report(name: &str, f: &Figures) {
    println!(
        "cluster[{name}]: acked={} refused={} acked but missing from redis={} \
         acked but never archived={} acked but never applied={} duplicate effects={} \
         entries twice in the stream={} WAITs on the new master={} \
         new master agreed {:.1}s and /readyz ready {:.1}s after the fault, \
         archive settled {:.1}s after the load",
        f.acked,
        f.refused,
        f.missing_in_redis,
        f.unarchived,
        f.unapplied,
        f.duplicates,
        f.twice_in_stream,
        f.waits,
        f.moved.as_secs_f64(),
        f.ready_again.as_secs_f64(),
        f.drained.as_secs_f64()
    );
}

#[test]
fn a_master_killed_mid_load_is_survived_and_its_loss_measured() {
    let mut s = setup("master");
    let f = under_load(&mut s, "kill");
    report("SIGKILL master, durability=master", &f);
    assert!(f.acked > 100, "the load ran");
    assert_eq!(f.waits, 0, "no durability wait unless asked for");
    assert_eq!(f.duplicates, 0, "no effect twice");
}

#[test]
fn a_lagging_replica_promoted_loses_acknowledged_events() {
    let mut s = setup("master");
    let f = under_load(&mut s, "lag-kill");
    report(
        "replica 700 ms behind, SIGKILL master, durability=master",
        &f,
    );
    assert!(f.acked > 100, "the load ran");
    // What asynchronous replication gives up: the proof that the next test's
    // zero is the durability setting's doing, not luck. Most of those events
    // were handled before their master died; a group that had not read them yet
    // never will.
    assert!(
        f.missing_in_redis > 0,
        "a lagging replica was promoted yet no acknowledged entry was missing"
    );
    assert_eq!(f.duplicates, 0, "no effect twice");
}

#[test]
fn a_lagging_replica_promoted_loses_nothing_with_durable_publishes() {
    let mut s = setup("replicas:1");
    let f = under_load(&mut s, "lag-kill");
    report(
        "replica 700 ms behind, SIGKILL master, durability=replicas:1",
        &f,
    );
    assert!(f.acked > 100, "the load ran");
    assert!(
        f.waits > 100,
        "publishes waited for a replica on the new master"
    );
    assert_eq!(
        (f.missing_in_redis, f.unarchived, f.unapplied),
        (0, 0, 0),
        "an acknowledged durable publish was lost"
    );
    assert_eq!(f.duplicates, 0, "no effect twice");
}

#[test]
fn a_manual_failover_mid_load_loses_nothing() {
    let mut s = setup("master");
    let f = under_load(&mut s, "failover");
    report("CLUSTER FAILOVER, durability=master", &f);
    assert!(f.acked > 100, "the load ran");
    assert_eq!(
        (f.missing_in_redis, f.unarchived, f.unapplied),
        (0, 0, 0),
        "a coordinated failover lost an acknowledged publish"
    );
    assert_eq!(f.duplicates, 0, "no effect twice");
}

#[test]
fn a_prefix_that_would_split_a_streams_slot_is_refused_on_a_cluster() {
    let mut p = App::spawn(
        "redis+cluster://127.0.0.1:1",
        &[("STRATEGIST_STREAM_PREFIX", "tenant{1}:")],
    );
    let status = p.wait(Duration::from_secs(30));
    assert!(!status.success(), "serve refused to start");
    assert!(
        p.logs().contains("would hash to different slots"),
        "{}",
        p.logs()
    );
}

#[test]
fn request_response_and_live_notifications_work_on_a_cluster() {
    // Every pool: the request goes out on ai.events and its answer comes back
    // through the reply listener, which on a cluster reads each reply stream on
    // a connection of its own. Then a notification reaches a WebSocket through
    // the fan-out's pub/sub, which on a cluster subscribes on one node.
    let cluster = LocalCluster::start();
    let app = App::serve(
        &cluster.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("STRATEGIST__HTTP__GENERATION_PER_MINUTE", "0"),
        ],
    );
    eventually(Duration::from_secs(30), "ready on the cluster", || {
        app.get("/readyz").0 == 200
    });
    let token = Tokens::new(SECRET)
        .unwrap()
        .mint("alice", false, Duration::from_secs(3600))
        .unwrap();
    let auth = format!("Bearer {token}");
    for topic in ["our launch", "the roadmap", "pricing"] {
        let body = json!({
            "contextual_core_id": "core-1",
            "content_type": "social_post",
            "prompt_template": "social_post",
            "variables": {"topic": topic, "audience": "founders"}
        })
        .to_string();
        let r = http(
            app.port,
            "POST",
            "/api/v1/content/generate",
            &[("Authorization", &auth)],
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let answer = r.json();
        assert!(
            answer["generated_content"]
                .as_str()
                .is_some_and(|t| t.contains(topic)),
            "{answer}"
        );
        let draft = http(
            app.port,
            "GET",
            &format!(
                "/api/v1/content/drafts/{}",
                answer["content_draft_id"].as_str().unwrap()
            ),
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(draft.status, 200, "{}", draft.body);
    }
    live_notification_arrives(&app, &token);
}

/// Opens alice's WebSocket, has the admin API ask for a notification to her, and
/// waits for it on the socket.
fn live_notification_arrives(app: &App, alice: &str) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let port = app.port;
    let title = format!("on the cluster {}", ulid::Ulid::generate());
    let rt = rt();
    rt.block_on(async {
        let url = format!("ws://127.0.0.1:{port}/ws?token={alice}");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        // The socket is live once its replay is done.
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .expect("a replay frame")
                .expect("socket open")
                .unwrap();
            if let Message::Text(t) = frame
                && serde_json::from_str::<serde_json::Value>(&t).unwrap()["type"] == "replayed"
            {
                break;
            }
        }
        let body = json!({
            "type": "notification.send.requested",
            "user_id": "alice",
            "data": {
                "user_id": "alice",
                "notification_type": "system_alert",
                "channels": ["websocket"],
                "message": {"title": title, "body": "fan-out", "action_url": "https://app.example/x"},
                "priority": "high",
            },
        })
        .to_string();
        let admin = format!("Bearer {}", admin());
        let r = http(
            port,
            "POST",
            "/api/v1/events",
            &[("Authorization", &admin)],
            Some(&body),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, ws.next())
                .await
                .expect("the notification arrives on the socket")
                .expect("socket open")
                .unwrap();
            if let Message::Text(t) = frame {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "notification" && v["notification"]["title"] == title.as_str() {
                    break;
                }
            }
        }
    });
}
