//! The WebSocket benchmark's client (run by `scripts/bench-ws.sh`): opens N sockets
//! on `GET /ws` of a running `strategist serve`, one user each, reports the server's
//! resident memory per connection, then publishes notifications to random users
//! (XADD `notification.send.requested`, as any service would) at a steady rate and
//! measures the time from the XADD to the frame on the socket: p50, p99, max.
//!
//!     bench_ws <http addr> <redis url> <auth secret> <serve pid> [sockets] [notifications] [per second]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use strategist::auth::Tokens;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!(
            "usage: bench_ws <http addr> <redis url> <secret> <serve pid> [sockets] [notifications] [per second]"
        );
        std::process::exit(2);
    }
    let (addr, redis_url, secret) = (a[1].clone(), a[2].clone(), a[3].clone());
    let pid: u32 = a[4].parse().unwrap();
    let n: usize = a.get(5).map_or(10_000, |v| v.parse().unwrap());
    let m: usize = a.get(6).map_or(2_000, |v| v.parse().unwrap());
    let rate: f64 = a.get(7).map_or(200.0, |v| v.parse().unwrap());
    let tokens = Tokens::new(&secret).unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let base = rss(pid);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let mut opening = Vec::with_capacity(n);
    for i in 0..n {
        let token = tokens
            .mint(&format!("bench-{i}"), false, Duration::from_secs(3600))
            .unwrap();
        let url = format!("ws://{addr}/ws?token={token}");
        let (gate, tx) = (gate.clone(), tx.clone());
        opening.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            // Small client buffers: the client's memory is not what is measured.
            let cfg = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), true)
                .await
                .expect("connect");
            // Joined (and subscribed) once the replay is over.
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg
                    && t.contains("\"replayed\"")
                {
                    break;
                }
            }
            drop(permit);
            tokio::spawn(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let at = Instant::now();
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                        if let Some(id) = v["notification"]["id"].as_str() {
                            let _ = tx.send((id.to_owned(), at));
                        }
                    }
                }
            });
        }));
    }
    for o in opening {
        o.await.unwrap();
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with = rss(pid);
    let per = (with.saturating_sub(base)) as f64 / n as f64;
    println!(
        "sockets: {n} open in {:.1} s; serve RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per connection",
        opened.as_secs_f64(),
        base as f64 / 1048576.0,
        with as f64 / 1048576.0,
        per / 1024.0
    );

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut sent: HashMap<String, Instant> = HashMap::with_capacity(m);
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut next_at = Instant::now();
    let mut ids = ulid::Generator::new();
    for k in 0..m {
        let user = format!("bench-{}", fastrand::usize(..n));
        let id = ids.generate().unwrap().to_string();
        let data = serde_json::json!({
            "user_id": user, "notification_type": "system_alert", "channels": ["websocket"],
            "message": {"title": format!("bench {k}"), "body": "fan-out latency"}, "priority": "normal",
        });
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tokio::time::sleep_until(next_at.into()).await;
        let t0 = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg("notification.events")
            .arg("*")
            .arg("id")
            .arg(&id)
            .arg("type")
            .arg("notification.send.requested")
            .arg("version")
            .arg("1")
            .arg("timestamp")
            .arg(now)
            .arg("user_id")
            .arg(&user)
            .arg("data")
            .arg(data.to_string())
            .query_async(&mut c)
            .await
            .unwrap();
        sent.insert(id, t0);
        next_at += gap;
    }
    let mut lat = Vec::with_capacity(m);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lat.len() < m {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some((id, at))) => {
                if let Some(t0) = sent.get(&id) {
                    lat.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
                }
            }
            _ => break,
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "fan-out: {} of {m} notifications at {rate}/s to random sockets; publish -> frame p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "serve RSS at the end: {:.1} MiB",
        rss(pid) as f64 / 1048576.0
    );
}
