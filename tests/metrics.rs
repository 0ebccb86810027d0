//! The metrics endpoints against the real binary and a private Redis: Prometheus
//! text that parses and counts what was handled, the JSON endpoint showing the same
//! figures, queue gauges equal to what Redis says of a group made to lag, and who
//! may read what.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use serde_json::Value;
use strategist::auth::Tokens;

const SECRET: &str = "metrics-test-secret";
const STREAM: &str = "system.events";
const PING: &str = "system.bench.ping";

fn token(user: &str, admin: bool) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, admin, Duration::from_secs(3600))
        .unwrap()
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `GET path`: status, content type, body.
fn get(app: &App, path: &str, tok: Option<&str>) -> (u16, String, String) {
    let mut req = client().get(format!("http://127.0.0.1:{}{path}", app.port));
    if let Some(t) = tok {
        req = req.bearer_auth(t);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, res.text().unwrap())
}

/// Only the archiver runs: it handles every type; every other group stays idle.
fn app(r: &LocalRedis) -> App {
    App::serve_args(
        &r.url(),
        &["--pools", "archiver"],
        &[("STRATEGIST_AUTH_SECRET", SECRET)],
    )
}

/// One sample of the exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text: every line is a comment (`# HELP`, `# TYPE`) or a
/// sample; anything else fails the test.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            assert!(
                c.starts_with(" HELP ") || c.starts_with(" TYPE "),
                "bad comment {line:?}"
            );
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("`name value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                for pair in body.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
                    labels.insert(k.to_owned(), v.to_owned());
                }
                (name, labels)
            }
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map(|s| s.value)
}

fn scrape(app: &App) -> Vec<Sample> {
    let (status, ctype, body) = get(app, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    parse(&body)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

#[test]
fn prometheus_counts_what_was_handled_and_agrees_with_the_json() {
    let r = redis();
    let app = app(&r);
    let mut c = conn(&r);
    const N: u64 = 40;
    for i in 0..N {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    eventually(Duration::from_secs(30), "the archiver handled all", || {
        let g = group(&mut c, STREAM, "archiver");
        g.entries_read >= N as i64 && g.pending == 0 && g.lag == 0
    });

    let prom = scrape(&app);
    let l = [("stream", STREAM), ("group", "archiver"), ("type", PING)];
    let handled = value(&prom, "strategist_events_handled_total", &l);
    assert_eq!(handled, Some(N as f64));
    assert_eq!(
        value(&prom, "strategist_events_failed_total", &l),
        Some(0.0)
    );
    assert_eq!(
        value(&prom, "strategist_events_dead_lettered_total", &l),
        Some(0.0)
    );
    // The histogram: cumulative buckets ending with +Inf = _count = N.
    let count = value(&prom, "strategist_event_processing_seconds_count", &l);
    assert_eq!(count, Some(N as f64));
    let mut le: Vec<(f64, f64)> = prom
        .iter()
        .filter(|s| {
            s.name == "strategist_event_processing_seconds_bucket"
                && s.labels.get("type").map(String::as_str) == Some(PING)
                && s.labels.get("group").map(String::as_str) == Some("archiver")
        })
        .map(|s| {
            let b = s.labels["le"]
                .replace("+Inf", "inf")
                .parse::<f64>()
                .unwrap();
            (b, s.value)
        })
        .collect();
    le.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(le.len() > 5, "{le:?}");
    assert!(le.windows(2).all(|w| w[0].1 <= w[1].1), "{le:?}");
    assert_eq!(le.last().unwrap(), &(f64::INFINITY, N as f64));
    let sum = value(&prom, "strategist_event_processing_seconds_sum", &l).unwrap();
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    let latency = value(&prom, "strategist_event_latency_seconds_count", &l);
    assert_eq!(latency, Some(N as f64));
    let rss = value(&prom, "process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1e6, "{rss}");
    assert!(value(&prom, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
    let xlen: u64 = redis::cmd("XLEN").arg(STREAM).query(&mut c).unwrap();
    assert!(xlen >= N);
    assert_eq!(
        value(&prom, "strategist_stream_length", &[("stream", STREAM)]),
        Some(xlen as f64)
    );

    // The JSON endpoint shows the same figures.
    let (status, _, body) = get(&app, "/api/v1/metrics", Some(&token("root", true)));
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["window_seconds"], 300);
    let ev = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stream_name"] == STREAM && e["group"] == "archiver" && e["event_type"] == PING)
        .unwrap_or_else(|| panic!("no {PING} in {body}"))
        .clone();
    assert_eq!(ev["handled_total"].as_f64(), handled);
    assert_eq!(ev["failed_total"], 0);
    assert_eq!(ev["success_rate"], 1.0);
    assert_eq!(ev["error_rate"], 0.0);
    for (field, quantile) in [
        ("processing_time_p50", "0.5"),
        ("processing_time_p95", "0.95"),
        ("processing_time_p99", "0.99"),
    ] {
        let mut ql = l.to_vec();
        ql.push(("quantile", quantile));
        let p = value(&prom, "strategist_event_processing_window_seconds", &ql).unwrap();
        let j = ev[field].as_f64().unwrap();
        assert!(j > 0.0, "{field} {ev}");
        assert!(
            close(j / 1000.0, p),
            "{field}: json {j} ms, prometheus {p} s"
        );
    }
    let mut ql = l.to_vec();
    ql.push(("quantile", "0.99"));
    let p = value(&prom, "strategist_event_latency_window_seconds", &ql).unwrap();
    assert!(
        close(ev["latency_p99"].as_f64().unwrap() / 1000.0, p),
        "{ev}"
    );
    let tp = value(&prom, "strategist_event_throughput_per_minute", &l).unwrap();
    let j = ev["throughput_per_minute"].as_f64().unwrap();
    assert!(
        j > 0.0 && (j - tp).abs() <= 0.01 * j,
        "json {j}, prometheus {tp}"
    );
    let g = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream_name"] == STREAM && g["group"] == "archiver")
        .unwrap()
        .clone();
    let gl = [("stream", STREAM), ("group", "archiver")];
    assert_eq!(
        g["pending"].as_f64(),
        value(&prom, "strategist_group_pending", &gl)
    );
    assert_eq!(
        g["consumer_lag"].as_f64(),
        value(&prom, "strategist_group_lag", &gl)
    );
    assert_eq!(g["consumer_lag"], 0);
    assert_eq!(
        g["entries_read"].as_f64(),
        value(&prom, "strategist_group_entries_read", &gl)
    );
    assert!(g["entries_read"].as_u64().unwrap() >= N);
    assert!(doc["process"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn queue_gauges_equal_what_redis_says_of_a_lagging_group_and_only_admins_read_json() {
    let r = redis();
    let mut c = conn(&r);
    // The system monitor's group exists but its pool does not run here: it lags.
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("system-monitor")
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(&mut c)
        .unwrap();
    let app = app(&r);
    for i in 0..12 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    let before_read = Instant::now();
    let taken = read_group(&mut c, STREAM, "system-monitor", 5);
    assert_eq!(taken.len(), 5);
    std::thread::sleep(Duration::from_millis(300));

    let redis_says = group(&mut c, STREAM, "system-monitor");
    let (pending, oldest): (i64, Option<String>) = {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(STREAM)
            .arg("system-monitor")
            .query(&mut c)
            .unwrap();
        match v {
            redis::Value::Array(p) => match (&p[0], &p[1]) {
                (redis::Value::Int(n), redis::Value::BulkString(id)) => {
                    (*n, Some(String::from_utf8_lossy(id).into_owned()))
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((redis_says.lag, redis_says.pending, pending), (7, 5, 5));
    assert_eq!(oldest.as_deref(), taken.first().map(String::as_str));

    let prom = scrape(&app);
    let gl = [("stream", STREAM), ("group", "system-monitor")];
    let gauge = |name: &str| value(&prom, name, &gl).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(gauge("strategist_group_lag"), redis_says.lag as f64);
    assert_eq!(gauge("strategist_group_pending"), pending as f64);
    assert_eq!(gauge("strategist_group_queue_depth"), 12.0);
    assert_eq!(gauge("strategist_group_entries_read"), 5.0);
    assert_eq!(gauge("strategist_group_consumers"), 1.0);
    let age = gauge("strategist_group_oldest_pending_age_seconds");
    let bound = before_read.elapsed().as_secs_f64() + 1.0;
    assert!((0.25..=bound).contains(&age), "age {age}, at most {bound}");

    let (status, _, body) = get(&app, "/api/v1/metrics", Some(&token("root", true)));
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let g = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream_name"] == STREAM && g["group"] == "system-monitor")
        .unwrap_or_else(|| panic!("no group in {body}"))
        .clone();
    assert_eq!(g["consumer_lag"], 7);
    assert_eq!(g["pending"], 5);
    assert_eq!(g["queue_depth"], 12);
    assert_eq!(g["consumers"], 1);
    assert_eq!(g["in_flight"], 0, "the pool does not run in this process");
    assert_eq!(
        g["last_delivered_id"].as_str(),
        taken.last().map(String::as_str)
    );
    let age_ms = g["oldest_pending_age_ms"].as_f64().unwrap();
    assert!(
        (age * 1000.0 - 0.5..=bound * 1000.0).contains(&age_ms),
        "{age_ms}"
    );

    // The pools running here: the archiver's workers, in both views, no restarts.
    let pool = doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stream_name"] == STREAM && p["group"] == "archiver")
        .unwrap_or_else(|| panic!("no archiver pool in {body}"))
        .clone();
    let workers = pool["workers"].as_u64().unwrap();
    assert!(workers >= 1, "{pool}");
    assert_eq!(pool["restarts"], 0);
    assert!(
        doc["pools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["group"] != "system-monitor"),
        "only this process's pools"
    );
    let pl = [("stream", STREAM), ("group", "archiver")];
    assert_eq!(
        value(&prom, "strategist_pool_workers", &pl),
        Some(workers as f64)
    );
    assert_eq!(
        value(&prom, "strategist_pool_restarts_total", &pl),
        Some(0.0)
    );

    // Who may read what.
    let (status, _, body) = get(&app, "/api/v1/metrics", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    let (status, _, body) = get(&app, "/api/v1/metrics", Some(&token("alice", false)));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden"), "{body}");
    let (status, _, _) = get(&app, "/metrics", Some("not-a-token"));
    assert_eq!(status, 200, "/metrics needs no token and ignores a bad one");
}

/// Every data point an OTLP/HTTP JSON receiver got: (metric name, attributes, value).
type Points = std::sync::Arc<std::sync::Mutex<Vec<(String, BTreeMap<String, String>, f64)>>>;

fn otlp_receiver() -> (String, Points) {
    use std::io::{BufRead, BufReader, Read, Write};
    let points: Points = Default::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = points.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let got = got.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if line.contains("/v1/metrics") {
                        collect_points(&body, &got);
                    }
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                    );
                }
            });
        }
    });
    (format!("http://{addr}"), points)
}

fn collect_points(body: &[u8], got: &Points) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let num = |p: &Value| {
        p["asDouble"]
            .as_f64()
            .or_else(|| p["asInt"].as_str().and_then(|s| s.parse().ok()))
            .or_else(|| p["asInt"].as_f64())
    };
    for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
        for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
            for m in sm["metrics"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or_default().to_string();
                for kind in ["gauge", "sum"] {
                    for p in m[kind]["dataPoints"].as_array().into_iter().flatten() {
                        let attrs = p["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                (
                                    a["key"].as_str().unwrap_or_default().to_string(),
                                    a["value"]["stringValue"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_string(),
                                )
                            })
                            .collect();
                        if let Some(x) = num(p) {
                            got.lock().unwrap().push((name.clone(), attrs, x));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn otlp_metrics_carry_the_same_figures_when_an_endpoint_is_set() {
    let (endpoint, points) = otlp_receiver();
    let r = redis();
    let mut c = conn(&r);
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("system-monitor")
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(&mut c)
        .unwrap();
    for i in 0..9 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    let _app = App::serve_args(
        &r.url(),
        &["--pools", "archiver"],
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    let find = |name: &str, attrs: &[(&str, &str)]| {
        points
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(n, a, _)| {
                n == name
                    && attrs
                        .iter()
                        .all(|(k, v)| a.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|p| p.2)
    };
    let g = [("stream", STREAM), ("group", "system-monitor")];
    eventually(
        Duration::from_secs(20),
        "OTLP metrics with the archiver's count",
        || {
            find("strategist.group.lag", &g) == Some(9.0)
                && find(
                    "strategist.events.handled",
                    &[("stream", STREAM), ("group", "archiver"), ("type", PING)],
                ) == Some(9.0)
        },
    );
    assert_eq!(find("strategist.group.queue_depth", &g), Some(9.0));
    assert_eq!(
        find("strategist.stream.length", &[("stream", STREAM)]),
        Some(9.0)
    );
    assert!(find("process.memory.usage", &[]).unwrap() > 1_000_000.0);
}
