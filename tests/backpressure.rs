//! Back-pressure, against real processes and a private Redis: a consumer far slower
//! than its backlog holds no more than its pool's capacity and its memory stays
//! flat; a Redis at its `maxmemory` refuses publishes with a 503 that says so, the
//! process's memory stays flat while clients keep trying, and nothing accepted is
//! lost once memory is freed.
//!
//! Each test prints its figures (`cargo test --test backpressure -- --nocapture`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist::store::Store;
use strategist_actors::PoolOptions;

const SECRET: &str = "backpressure-test-secret";

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

fn padded_ping(seq: u64, pad: usize) -> String {
    json!({"seq": seq, "sent_at_us": 0, "pad": "x".repeat(pad)}).to_string()
}

fn fill(c: &mut redis::Connection, n: u64, pad: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe_event(
                &mut pipe,
                "system.events",
                "system.bench.ping",
                &padded_ping(*i, pad),
            );
        }
        pipe.query::<()>(c).unwrap();
    }
}

fn handled(c: &mut redis::Connection) -> u64 {
    redis::cmd("HLEN").arg("probe:handled").query(c).unwrap()
}

#[test]
fn a_slow_consumer_holds_no_more_than_its_capacity_and_its_memory_stays_flat() {
    let r = redis();
    let mut c = conn(&r);
    // 20,000 entries of 8 KiB: 160 MiB waiting in Redis for a consumer that handles
    // about 200 a second.
    let (backlog, pad) = (20_000u64, 8 * 1024);
    fill(&mut c, backlog, pad);
    let workers = 4usize;
    let p = probe(
        &r.url(),
        &[("PROBE_HANDLE_MS", "20"), ("PROBE_WORKERS", "4")],
    );
    let o = PoolOptions::default();
    let capacity = workers * (o.concurrency + o.prefetch);
    let started = Instant::now();
    let (mut rss, mut most_pending) = (Vec::new(), 0i64);
    while started.elapsed() < Duration::from_secs(5) {
        rss.push(rss_mib(p.pid()));
        most_pending = most_pending.max(group(&mut c, "system.events", "probe").pending);
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = handled(&mut c);
    let g = group(&mut c, "system.events", "probe");
    let first = rss[0];
    let peak = rss.iter().copied().fold(0.0, f64::max);
    println!(
        "slow consumer: backlog {backlog} x {pad} B ({} MiB); handled {done} in 5 s; \
         pending at most {most_pending} (capacity {capacity}); lag left {}; \
         RSS first {first:.1} MiB, peak {peak:.1} MiB",
        backlog * pad as u64 / (1024 * 1024),
        g.lag
    );
    assert!(done > 0, "the consumer made progress");
    assert!(
        g.lag > backlog as i64 / 2,
        "the consumer is slower than its backlog (lag {})",
        g.lag
    );
    // Handled entries wait for their batched XACK: at most one more capacity.
    assert!(
        most_pending <= 2 * capacity as i64,
        "{most_pending} pending with a capacity of {capacity}"
    );
    assert!(
        peak - first < 32.0,
        "RSS grew from {first:.1} to {peak:.1} MiB with a 160 MiB backlog"
    );
}

fn token() -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint("ops", true, Duration::from_secs(3600))
        .unwrap()
}

fn publish(port: u16, tok: &str, seq: u64) -> Reply {
    let body = json!({
        "type": "system.bench.ping",
        "data": {"seq": seq, "sent_at_us": 0, "pad": "y".repeat(2048)},
    })
    .to_string();
    let auth = format!("Bearer {tok}");
    http(
        port,
        "POST",
        "/api/v1/events",
        &[("Authorization", &auth)],
        Some(&body),
    )
}

fn info_memory(c: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn redis_at_its_memory_limit_refuses_publishes_with_a_clear_503_and_loses_nothing() {
    let r = redis();
    let mut c = conn(&r);
    let db = TestDb::sqlite();
    let app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("DATABASE_URL", &db.url),
        ],
    );
    let tok = token();
    let mut accepted: Vec<String> = Vec::new();
    let accept = |accepted: &mut Vec<String>, reply: &Reply| {
        accepted.push(reply.json()["event_id"].as_str().unwrap().to_owned());
    };
    for seq in 0..50 {
        let reply = publish(app.port, &tok, seq);
        assert_eq!(reply.status, 202, "{}", reply.body);
        accept(&mut accepted, &reply);
    }
    // Redis just above what it holds now, refusing writes beyond it.
    let used = info_memory(&mut c, "used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query::<()>(&mut c)
        .unwrap();
    let limit = used + 256 * 1024;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query::<()>(&mut c)
        .unwrap();
    let mut refusal: Option<Reply> = None;
    let mut seq = 50;
    while refusal.is_none() && seq < 5_000 {
        let reply = publish(app.port, &tok, seq);
        seq += 1;
        match reply.status {
            202 => accept(&mut accepted, &reply),
            _ => refusal = Some(reply),
        }
    }
    let refusal = refusal.expect("Redis never refused a publish");
    assert_eq!(refusal.status, 503, "{}", refusal.body);
    let body: Value = refusal.json();
    assert_eq!(
        body["error"]["code"],
        "redis_full",
        "{body}\n{}",
        app.proc
            .logs()
            .lines()
            .filter(|l| l.contains("redis"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        refusal.header("retry-after").is_some(),
        "a Retry-After tells clients when to come back"
    );
    // Operators see it coming: the limit and the use are in the metrics.
    let (status, text) = app.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains(&format!("strategist_redis_memory_max_bytes {limit}")),
        "{}",
        text.lines()
            .filter(|l| l.contains("redis_memory"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("strategist_redis_memory_used_bytes "));
    // Clients keep trying: the process's memory does not grow with them.
    let before = rss_mib(app.proc.pid());
    let mut refused = 1u64;
    for _ in 0..1_000 {
        let reply = publish(app.port, &tok, seq);
        seq += 1;
        match reply.status {
            202 => accept(&mut accepted, &reply),
            503 => refused += 1,
            other => panic!("{other}: {}", reply.body),
        }
    }
    let after = rss_mib(app.proc.pid());
    let (status, ready) = app.get("/readyz");
    println!(
        "redis full: {} accepted, {refused} refused with 503; serve RSS {before:.1} -> \
         {after:.1} MiB over 1,000 refused publishes; /readyz {status} {ready}",
        accepted.len()
    );
    assert!(
        after - before < 16.0,
        "RSS grew from {before:.1} to {after:.1} MiB"
    );
    // Memory back: publishing works again, and everything accepted is handled.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap();
    let reply = publish(app.port, &tok, seq);
    assert_eq!(reply.status, 202, "{}", reply.body);
    accept(&mut accepted, &reply);
    eventually(Duration::from_secs(60), "the archiver caught up", || {
        let g = group(&mut c, "system.events", "archiver");
        g.pending == 0 && g.lag == 0
    });
    let rt = effects::rt();
    let stored = rt.block_on(async {
        let store = Store::connect(&db.url).await.unwrap();
        effects::ids(
            &store,
            "SELECT id FROM events WHERE event_type = 'system.bench.ping'",
        )
        .await
    });
    let missing: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never stored",
        missing.len(),
        accepted.len()
    );
    let dead: u64 = redis::cmd("XLEN")
        .arg("{system.events}.dlq")
        .query(&mut c)
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered for lack of memory");
}
