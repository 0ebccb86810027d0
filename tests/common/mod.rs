//! The test harness: a private `redis-server` per test (killed on drop, can be killed
//! or restarted on purpose), the `strategist` binary started on port 0, plain HTTP,
//! stream inspection, and polling with a deadline instead of fixed sleeps.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use strategist::local_redis::LocalRedis;

/// The local Redis Cluster harness, shared with the engine's tests.
#[path = "../../actors/tests/common/cluster.rs"]
pub mod cluster;
pub mod effects;
pub mod market_seed;
pub mod samples;
pub mod server;

/// A private Redis for one test.
pub fn redis() -> LocalRedis {
    LocalRedis::start().expect("start a private redis-server")
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

/// XADDs an event with plain fields, as a service in another language would.
pub fn xadd_event(c: &mut redis::Connection, stream: &str, event_type: &str, data: &str) -> String {
    let mut pipe = redis::pipe();
    let id = pipe_event(&mut pipe, stream, event_type, data);
    pipe.query::<()>(c).expect("xadd");
    id
}

/// Adds the XADD of an event with plain fields to `pipe` (its reply ignored);
/// returns the event id.
pub fn pipe_event(
    pipe: &mut redis::Pipeline,
    stream: &str,
    event_type: &str,
    data: &str,
) -> String {
    let id = ulid::Ulid::generate().to_string();
    pipe.cmd("XADD")
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
        .ignore();
    id
}

/// A `system.bench.ping` payload.
pub fn ping(seq: u64) -> String {
    format!(r#"{{"seq":{seq},"sent_at_us":0}}"#)
}

/// Reads up to `n` new entries of `stream` as consumer `c` of `group`; their ids.
pub fn read_group(c: &mut redis::Connection, stream: &str, group: &str, n: usize) -> Vec<String> {
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query(c)
        .unwrap();
    strategist_actors::redis_io::parse_stream_reply(v)
        .into_iter()
        .map(|e| e.id)
        .collect()
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

/// One group by name.
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

/// A child process whose stderr is collected.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// A temporary folder that lives as long as the process (its SQLite file).
    _dir: Option<tempfile::TempDir>,
}

impl Proc {
    /// Spawns `cmd` and collects its stderr and stdout lines.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn child process");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let sink = lines.clone();
        let out = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines,
            _dir: None,
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "process exited ({status}) before logging {needle:?}:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Waits for it to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {timeout:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `strategist serve --dev` on port 0 against `redis_url`, with extra environment.
pub struct App {
    pub proc: Proc,
    pub port: u16,
}

impl App {
    /// Starts the binary and waits until HTTP listens.
    pub fn serve(redis_url: &str, env: &[(&str, &str)]) -> App {
        App::serve_args(redis_url, &[], env)
    }

    /// As [`App::serve`], with more `serve` arguments (e.g. `--pools none`).
    pub fn serve_args(redis_url: &str, args: &[&str], env: &[(&str, &str)]) -> App {
        let mut proc = App::spawn_args(redis_url, args, env);
        let line = proc.wait_for_line("http listening on", Duration::from_secs(30));
        let port = line
            .rsplit("127.0.0.1:")
            .next()
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        App { proc, port }
    }

    /// Starts the binary without waiting for anything. Without a `DATABASE_URL` in
    /// `env`, it gets a SQLite file of its own in a temporary folder.
    pub fn spawn(redis_url: &str, env: &[(&str, &str)]) -> Proc {
        App::spawn_args(redis_url, &[], env)
    }

    /// As [`App::spawn`], with more `serve` arguments.
    pub fn spawn_args(redis_url: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strategist"));
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = format!("sqlite://{}/strategist.db?mode=rwc", dir.path().display());
        cmd.env("DATABASE_URL", sqlite);
        cmd.arg("serve")
            .arg("--dev")
            .args(args)
            .env("REDIS_URL", redis_url)
            .env("STRATEGIST_HTTP_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("STRATEGIST_CONFIG")
            .env_remove("STRATEGIST_STREAM_PREFIX");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut p = Proc::spawn(cmd);
        p._dir = Some(dir);
        p
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to app");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP answer: status, lower-cased headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics naming the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client over a fresh connection: any method, extra headers,
/// an optional JSON body; understands `Content-Length` and chunked answers.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to app");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let n =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        let tail = &rest[eol + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    out
}

/// Percent-encodes everything but unreserved characters (for a path segment).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The probe consumer (examples/probe_consumer.rs), built by `cargo test`.
pub fn probe(redis_url: &str, env: &[(&str, &str)]) -> Proc {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join("probe_consumer");
    assert!(
        path.exists(),
        "{} missing: run through `cargo test`",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env("REDIS_URL", redis_url).env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(cmd);
    p.wait_for_line("probe ready", Duration::from_secs(30));
    p
}

/// A database for one test: a SQLite file in a temporary folder, or a PostgreSQL
/// database made for the test and dropped after it.
pub struct TestDb {
    pub url: String,
    pub kind: &'static str,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDb {
            url: format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
            kind: "sqlite",
            pg_name: None,
            _dir: Some(dir),
        }
    }

    pub fn postgres() -> TestDb {
        let name = format!(
            "strategist_test_{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        assert!(
            psql(&format!("CREATE DATABASE {name}")),
            "cannot create PostgreSQL database {name} on 127.0.0.1:5432 as postgres"
        );
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            kind: "postgres",
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// Both kinds.
    pub fn both() -> Vec<TestDb> {
        vec![TestDb::sqlite(), TestDb::postgres()]
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
