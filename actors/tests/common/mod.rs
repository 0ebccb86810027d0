//! The engine's test harness, free of the application: a private `redis-server` per
//! test (killed on drop, its folder removed), a small test catalog, stream and group
//! inspection, and polling with a deadline instead of fixed sleeps.
//!
//! The engine crate must not depend on the application crate, so this is its own
//! small version of the application's `local_redis`; it honours the same
//! `STRATEGIST_REDIS_SERVER` variable to pick the `redis-server` binary.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod cluster;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strategist_actors::{Catalog, EventType};

/// The stream of the test catalog.
pub const STREAM: &str = "test.events";
/// The type name of [`TestPing`].
pub const PING: &str = "test.ping";

/// `test.ping` on `test.events`: the one event type the engine's tests need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPing {
    pub seq: u64,
}

impl EventType for TestPing {
    const TYPE: &'static str = PING;
    const STREAM: &'static str = STREAM;
}

/// The type name of [`TestPong`].
pub const PONG: &str = "test.pong";

/// `test.pong` on `test.events`: the reply to a `test.ping` in request-response tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPong {
    pub seq: u64,
}

impl EventType for TestPong {
    const TYPE: &'static str = PONG;
    const STREAM: &'static str = STREAM;
}

/// The test catalog: every type the engine's tests publish or handle.
pub fn catalog() -> Catalog {
    let mut c = Catalog::new();
    c.register::<TestPing>();
    c.register::<TestPong>();
    c
}

/// A `test.ping` payload as JSON.
pub fn ping(seq: u64) -> String {
    serde_json::to_string(&TestPing { seq }).unwrap()
}

/// A private Redis for one test: `redis-server` (or `$STRATEGIST_REDIS_SERVER`) on a
/// free loopback port, nothing kept on disk, killed and its folder removed on drop.
pub struct LocalRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LocalRedis {
    /// Starts it and waits until it answers `PING`; panics saying why not.
    pub fn start() -> LocalRedis {
        let program =
            std::env::var("STRATEGIST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(&program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program}: {e} (install redis-server or set STRATEGIST_REDIS_SERVER)")
            });
        let r = LocalRedis {
            child,
            port,
            _dir: dir,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Redis for one test.
pub fn redis() -> LocalRedis {
    LocalRedis::start()
}

/// A plain synchronous connection for assertions.
pub fn conn(r: &LocalRedis) -> redis::Connection {
    redis::Client::open(r.url())
        .and_then(|c| c.get_connection())
        .expect("connect to the private redis")
}

/// Polls `f` until it is true or `timeout` passes; panics naming `what`.
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// Async twin of [`eventually`] for tests inside an actix System.
pub async fn eventually_async(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// XADDs an event with plain fields, as a service in another language would; its id.
pub fn xadd_event(c: &mut redis::Connection, stream: &str, event_type: &str, data: &str) -> String {
    let id = ulid::Ulid::generate().to_string();
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("id")
        .arg(&id)
        .arg("type")
        .arg(event_type)
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00.123Z")
        .arg("data")
        .arg(data)
        .query::<String>(c)
        .expect("xadd");
    id
}

/// One consumer group as `XINFO GROUPS` reports it.
#[derive(Debug, Clone, Default)]
pub struct GroupInfo {
    pub name: String,
    pub consumers: i64,
    pub pending: i64,
    pub lag: i64,
    pub entries_read: i64,
}

/// `XINFO GROUPS stream`.
pub fn groups(c: &mut redis::Connection, stream: &str) -> Vec<GroupInfo> {
    let raw: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query(c)
        .unwrap_or_default();
    raw.into_iter()
        .map(|g| {
            let mut info = GroupInfo::default();
            if let redis::Value::Array(kv) = g {
                for pair in kv.chunks(2) {
                    let key = match &pair[0] {
                        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => continue,
                    };
                    let int = match &pair[1] {
                        redis::Value::Int(i) => *i,
                        _ => -1,
                    };
                    match key.as_str() {
                        "name" => {
                            if let redis::Value::BulkString(b) = &pair[1] {
                                info.name = String::from_utf8_lossy(b).into_owned();
                            }
                        }
                        "consumers" => info.consumers = int,
                        "pending" => info.pending = int,
                        "lag" => info.lag = int,
                        "entries-read" => info.entries_read = int,
                        _ => {}
                    }
                }
            }
            info
        })
        .collect()
}

/// One group by name (all zero when it does not exist).
pub fn group(c: &mut redis::Connection, stream: &str, name: &str) -> GroupInfo {
    groups(c, stream)
        .into_iter()
        .find(|g| g.name == name)
        .unwrap_or_default()
}

/// Entries of a stream as field maps.
pub fn entries(
    c: &mut redis::Connection,
    stream: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap_or(redis::Value::Nil);
    strategist_actors::redis_io::parse_entries(v)
        .into_iter()
        .map(|e| {
            e.fields
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect()
        })
        .collect()
}

/// Starts an engine on `r` with the test catalog, two arbiters, default hooks.
pub async fn start(
    r: &LocalRedis,
    pools: Vec<strategist_actors::Pool>,
) -> strategist_actors::Engine {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut cfg = strategist_actors::EngineConfig::for_this_process();
    cfg.arbiters = 2;
    strategist_actors::Engine::start(
        client,
        shared,
        std::sync::Arc::new(catalog()),
        cfg,
        pools,
        strategist_actors::Health::default(),
        strategist_actors::Hooks::default(),
    )
    .await
    .unwrap()
}
