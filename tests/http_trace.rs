//! One HTTP request, the events it publishes and the handlers they reach are one
//! trace, exported over OTLP to a receiver run by the test: the request's server
//! span continues the caller's `traceparent`, the content-generator's handler span
//! is its child, and no span carries personal data.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App as Web, HttpServer, web};
use common::*;
use serde_json::{Value, json};

/// Every span the receiver got, flattened: (trace id, span id, parent id, name, attributes).
type Spans = Arc<Mutex<Vec<Value>>>;

async fn receive(body: web::Bytes, spans: web::Data<Spans>) -> &'static str {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    spans.lock().unwrap().push(s.clone());
                }
            }
        }
    }
    "{}"
}

fn attr(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
                .unwrap_or_else(|| v.to_string())
        })
}

#[actix_rt::test]
async fn a_request_its_events_and_their_handlers_are_one_trace_in_the_exporter() {
    let spans: Spans = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(spans.clone());
    let server = HttpServer::new(move || {
        Web::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/traces", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let otlp = format!("http://{}", server.addrs()[0]);
    actix_rt::spawn(server.run());

    let r = redis();
    let secret = "trace-secret";
    let app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", secret),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let token = strategist::auth::Tokens::new(secret)
        .unwrap()
        .mint("tess", false, Duration::from_secs(600))
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let port = app.port;
    let status = tokio::task::spawn_blocking(move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/content/generate"))
            .bearer_auth(token)
            .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
            .header("user-agent", "secret-agent/1.0")
            .json(&json!({"contextual_core_id": "c", "content_type": "email", "prompt_template": "email",
                "variables": {"recipient": "Ann", "topic": "the offer", "tone": "warm"}}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);

    let find =
        |spans: &[Value], pred: &dyn Fn(&Value) -> bool| spans.iter().find(|s| pred(s)).cloned();
    let mut server_span = None;
    let mut handler = None;
    for _ in 0..100 {
        let got = spans.lock().unwrap().clone();
        server_span = find(&got, &|s| {
            attr(s, "http.route").as_deref() == Some("/api/v1/content/generate")
        });
        handler = find(&got, &|s| {
            attr(s, "messaging.consumer.group.name").as_deref() == Some("content-generator")
        });
        if server_span.is_some() && handler.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_span = server_span.unwrap_or_else(|| {
        let got = spans.lock().unwrap().clone();
        let names: Vec<String> = got
            .iter()
            .map(|s| format!("{} {:?}", s["name"], s["attributes"]))
            .take(10)
            .collect();
        panic!(
            "no server span among {} spans: {names:#?}\nlogs: {}",
            got.len(),
            app.proc.logs()
        );
    });
    let handler = handler.expect("the content-generator's handler span was exported");
    let hex = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
    assert_eq!(hex(&server_span["traceId"]), trace_id, "{server_span}");
    assert_eq!(
        hex(&server_span["parentSpanId"]),
        caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(
        attr(&server_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(hex(&handler["traceId"]), trace_id, "{handler}");
    assert_eq!(
        hex(&handler["parentSpanId"]),
        hex(&server_span["spanId"]),
        "the handler is a child of the request that published its event"
    );
    // No personal data: not the user agent, not the user id, not the body.
    let all = serde_json::to_string(&*spans.lock().unwrap()).unwrap();
    for secret in ["secret-agent", "tess", "Ann", "the offer", "127.0.0.1"] {
        assert!(!all.contains(secret), "{secret:?} leaked into a span");
    }
}

/// Starts an OTLP/HTTP JSON receiver; its endpoint and what it got.
fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(spans.clone());
    let server = HttpServer::new(move || {
        Web::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/traces", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let otlp = format!("http://{}", server.addrs()[0]);
    actix_rt::spawn(server.run());
    (otlp, spans)
}

const BOUNDARY: &str = "trace-boundary-7";

/// An upload is one trace through the saga: the request's span, the saga's
/// handling of `file.uploaded`, and the step workers two Redis hops away
/// (extraction, then embeddings) all carry the caller's trace id, each handler a
/// child of a span in that trace; JSON logs of the same request carry that id.
#[actix_rt::test]
async fn an_upload_is_one_trace_through_the_saga_and_its_step_workers() {
    let (otlp, spans) = receiver();
    let r = redis();
    let secret = "trace-secret";
    let app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", secret),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("RUST_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,strategist=debug,strategist_actors=debug"),
        ],
    );
    let token = strategist::auth::Tokens::new(secret)
        .unwrap()
        .mint("tess", false, Duration::from_secs(600))
        .unwrap();
    let trace_id = "5af92f3577b34da6a3ce929d0e0e4737";
    let port = app.port;
    let status = tokio::task::spawn_blocking(move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut body = Vec::new();
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"contextual_core_id\"\r\n\r\ncore-1\r\n").as_bytes());
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plan.txt\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes());
        body.extend_from_slice("Our plan for the quarter: grow the circle. ".repeat(40).as_bytes());
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/files"))
            .bearer_auth(token)
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b8-01"))
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 202);

    let hex = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
    let wanted = ["file-processing", "file-processor", "embedding-generator"];
    let mut got = Vec::new();
    for _ in 0..200 {
        got = spans.lock().unwrap().clone();
        let groups: Vec<String> = got
            .iter()
            .filter(|s| hex(&s["traceId"]) == trace_id)
            .filter_map(|s| attr(s, "messaging.consumer.group.name"))
            .collect();
        if wanted.iter().all(|w| groups.iter().any(|g| g == w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let in_trace: Vec<&Value> = got
        .iter()
        .filter(|s| hex(&s["traceId"]) == trace_id)
        .collect();
    let ids: Vec<String> = in_trace.iter().map(|s| hex(&s["spanId"])).collect();
    let server = in_trace
        .iter()
        .find(|s| attr(s, "http.route").as_deref() == Some("/api/v1/files"))
        .unwrap_or_else(|| panic!("no server span in the trace: {in_trace:#?}"));
    assert_eq!(hex(&server["parentSpanId"]), "00f067aa0ba902b8");
    for w in wanted {
        let h = in_trace
            .iter()
            .find(|s| attr(s, "messaging.consumer.group.name").as_deref() == Some(w))
            .unwrap_or_else(|| {
                panic!(
                    "no `{w}` handler span in trace {trace_id}; groups seen: {:?}",
                    got.iter()
                        .filter_map(|s| attr(s, "messaging.consumer.group.name"))
                        .collect::<Vec<_>>()
                )
            });
        assert!(
            ids.contains(&hex(&h["parentSpanId"])),
            "the `{w}` handler's parent is a span of the same trace: {h}"
        );
        assert_eq!(attr(h, "messaging.system").as_deref(), Some("redis"));
    }
    let all = serde_json::to_string(&in_trace).unwrap();
    for secret in ["tess", "grow the circle", "plan.txt"] {
        assert!(!all.contains(secret), "{secret:?} leaked into a span");
    }

    // JSON logs: every line is an object with a level; lines of this request carry its trace id.
    let logs = app.proc.logs();
    let mut traced = 0;
    // stdout's `--dev` banner for a person is not the log (stderr) and not JSON.
    let banner = |l: &str| l.starts_with("The Collective Strategist") || l.starts_with("  ");
    for line in logs.lines().filter(|l| !l.trim().is_empty() && !banner(l)) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["trace_id"] == trace_id {
            traced += 1;
        }
    }
    assert!(
        traced > 0,
        "no log line carries the request's trace id:\n{logs}"
    );
}
