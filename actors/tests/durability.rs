//! Durable publishing: `WAIT` for replicas and `WAITAOF` for the AOF, in the same
//! pipeline as the writes. A publish that returns Ok under `replicas:1` is on the
//! replica already; one whose confirmation does not come is an error that says so,
//! while the write itself stays on the master (a retry with the same id is safe).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use strategist_actors::{Durability, Envelope, Keys, PublishError, Publisher};

async fn publisher(r: &LocalRedis, d: Durability, timeout_ms: u64) -> Publisher {
    let client = redis::Client::open(r.url()).unwrap();
    // The client's response timeout must be longer than the wait.
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(timeout_ms + 5000)));
    let conn = redis::aio::ConnectionManager::new_with_config(client, cfg)
        .await
        .unwrap();
    Publisher::new(conn, Keys::default(), Arc::new(catalog())).with_durability(d, timeout_ms)
}

fn ping_env(seq: u64) -> Envelope {
    Envelope::new(PING, 1, serde_json::from_str(&ping(seq)).unwrap())
}

fn xlen(c: &mut redis::Connection) -> u64 {
    redis::cmd("XLEN").arg(STREAM).query(c).unwrap()
}

#[actix_rt::test]
async fn a_publish_waiting_for_a_replica_returns_once_the_replica_has_it() {
    let master = redis();
    let replica = redis();
    let mut m = conn(&master);
    let mut rc = conn(&replica);
    let port = master.url().rsplit(':').next().unwrap().to_owned();
    // Sync the replica at once instead of after the default 5 s.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg("0")
        .query::<()>(&mut m)
        .unwrap();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&port)
        .query::<()>(&mut rc)
        .unwrap();
    eventually(Duration::from_secs(10), "the replica is in sync", || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut m).unwrap();
        info.contains("connected_slaves:1") && info.contains("state=online")
    });

    let p = publisher(&master, Durability::Replicas { replicas: 1 }, 2000).await;
    for i in 0..20 {
        p.publish(STREAM, &ping_env(i)).await.unwrap();
        // WAIT returned: the replica has every write so far, at once.
        assert_eq!(xlen(&mut rc), i + 1, "the replica has publish {i}");
    }

    // Without the replica the confirmation cannot come: a clear error, and the
    // event is still on the master.
    drop(rc);
    drop(replica);
    let p = publisher(&master, Durability::Replicas { replicas: 1 }, 200).await;
    let err = p.publish(STREAM, &ping_env(99)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::NotDurable {
                wanted: 1,
                got: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("0 of the 1 replicas"), "{err}");
    assert_eq!(xlen(&mut m), 21, "written to the master all the same");
}

#[actix_rt::test]
async fn a_publish_waiting_for_the_aof_returns_once_it_is_synced_or_says_why_not() {
    let r = redis();
    let mut c = conn(&r);
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    let version: Vec<u32> = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let p = publisher(&r, Durability::Aof { replicas: 0 }, 2000).await;
    if version < vec![7, 2] {
        // No WAITAOF before 7.2: the error names the command, nothing is hidden.
        let err = p.publish(STREAM, &ping_env(1)).await.unwrap_err();
        assert!(matches!(err, PublishError::Redis(_)), "{err}");
        assert!(err.to_string().to_lowercase().contains("waitaof"), "{err}");
        return;
    }
    // AOF off: Redis refuses to wait for it.
    let err = p.publish(STREAM, &ping_env(1)).await.unwrap_err();
    assert!(matches!(err, PublishError::Redis(_)), "{err}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query::<()>(&mut c)
        .unwrap();
    eventually(Duration::from_secs(10), "the AOF is written", || {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_enabled:1")
    });
    for i in 10..15 {
        p.publish(STREAM, &ping_env(i)).await.unwrap();
    }
    assert_eq!(xlen(&mut c), 6);
}

#[test]
fn durability_settings_parse_or_say_what_is_expected() {
    let ok = |s: &str| s.parse::<Durability>().unwrap();
    assert_eq!(ok("master"), Durability::Master);
    assert_eq!(ok("replicas:2"), Durability::Replicas { replicas: 2 });
    assert_eq!(ok("aof"), Durability::Aof { replicas: 0 });
    assert_eq!(ok("aof+replicas:1"), Durability::Aof { replicas: 1 });
    for bad in ["replicas:0", "replicas:x", "fsync", "aof+replicas:"] {
        let e = bad.parse::<Durability>().unwrap_err();
        assert!(e.contains(bad), "{e}");
    }
}
