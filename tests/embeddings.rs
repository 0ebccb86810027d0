//! The OpenAI-compatible embedder against a real local server speaking the API: how
//! it batches, puts answers back in input order, retries and fails.
//!
//! Each test starts its own actix-web server on 127.0.0.1:0 that records every
//! request (with the instant it arrived, so waits are measured by the server) and
//! answers from a script whose last step repeats forever. An `Echo` step answers
//! like a real server, one vector per input, but lists `data` in reverse order, so
//! only the `index` field puts them back where they belong.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, http::StatusCode, web};
use serde_json::{Value, json};
use strategist::ai::HttpProviderConfig;
use strategist::embeddings::{EmbedError, Embedder, OpenAiEmbeddings};

const KEY: &str = "sk-embed-test-key-0123456789";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
    at: Instant,
}

#[derive(Debug, Clone)]
enum Step {
    /// This status, these headers, this body.
    Fixed {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// A 200 with vector `[n, position, 0.5]` for the input `text n` at `position`,
    /// listed last input first.
    Echo,
}

impl Step {
    fn json(status: u16, body: Value) -> Self {
        Self::Fixed {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    fn raw(status: u16, body: &str) -> Self {
        Self::Fixed {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Fixed { headers, .. } = &mut self {
            headers.push((name, value.into()));
        }
        self
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Step>>,
}

struct TestServer {
    base: String,
    shared: Arc<Shared>,
}

impl TestServer {
    /// Answers `script` in order, repeating the last step forever.
    fn start(script: Vec<Step>) -> Self {
        assert!(!script.is_empty());
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(script.into()),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        actix_rt::spawn(server.run());
        Self {
            base: format!("http://{addr}"),
            shared,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    fn embedder(&self) -> OpenAiEmbeddings {
        let config =
            HttpProviderConfig::new(format!("{}/v1/", self.base), "emb-test").with_api_key(KEY);
        OpenAiEmbeddings::new(config).unwrap()
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let at = Instant::now();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        headers,
        body: body.clone(),
        at,
    });
    let step = {
        let mut script = shared.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0].clone()
        }
    };
    match step {
        Step::Fixed {
            status,
            headers,
            body,
        } => {
            let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap());
            for (name, value) in &headers {
                response.insert_header((*name, value.as_str()));
            }
            response.body(body)
        }
        Step::Echo => {
            let inputs = body["input"].as_array().cloned().unwrap_or_default();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(position, text)| {
                    let n: f32 = text
                        .as_str()
                        .and_then(|t| t.strip_prefix("text "))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(-1.0);
                    json!({"object": "embedding", "index": position, "embedding": [n, position as f32, 0.5]})
                })
                .collect();
            HttpResponse::Ok().json(json!({
                "object": "list",
                "data": data,
                "model": "emb-test-2025",
                "usage": {"prompt_tokens": 2 * inputs.len(), "total_tokens": 2 * inputs.len()}
            }))
        }
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text {i}")).collect()
}

fn permanent<T: std::fmt::Debug>(result: Result<T, EmbedError>) -> String {
    match result {
        Err(EmbedError::Permanent(message)) => message,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[actix_rt::test]
async fn inputs_go_in_batches_of_max_batch_and_come_back_in_input_order() {
    let server = TestServer::start(vec![Step::Echo]);
    let embedder = server.embedder().with_max_batch(64);
    assert_eq!(embedder.dimensions(), 0);

    let inputs = texts(150);
    let embedded = embedder.embed_with_usage(&inputs).await.unwrap();
    assert_eq!(embedded.vectors.len(), 150);
    for (i, vector) in embedded.vectors.iter().enumerate() {
        assert_eq!(vector[0], i as f32, "vector {i}: {vector:?}");
    }
    assert_eq!(embedded.tokens, 300);
    assert_eq!(embedder.dimensions(), 3);

    let received = server.received();
    let sizes: Vec<usize> = received
        .iter()
        .map(|r| r.body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [64, 64, 22]);
    for r in &received {
        assert_eq!(r.path, "/v1/embeddings");
        assert_eq!(r.body["model"], "emb-test");
        assert_eq!(r.body.as_object().unwrap().len(), 2, "{}", r.body);
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    assert_eq!(received[2].body["input"][0], "text 128");

    // The plain trait call gives the same vectors; no texts make no request.
    assert_eq!(
        embedder.embed(&inputs[..3]).await.unwrap(),
        embedded.vectors[..3]
    );
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(server.received().len(), 4);
}

#[actix_rt::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = TestServer::start(vec![
        Step::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "1"),
        Step::Echo,
    ]);
    let vectors = server.embedder().embed(&texts(2)).await.unwrap();
    assert_eq!(vectors, [vec![0.0, 0.0, 0.5], vec![1.0, 1.0, 0.5]]);

    let received = server.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "second try after {gap:?}"
    );
    assert_eq!(received[0].body, received[1].body);
}

#[actix_rt::test]
async fn a_400_is_permanent_after_one_request_and_never_shows_the_key() {
    let server = TestServer::start(vec![Step::json(
        400,
        json!({"error": {"message": format!("bad input for key {KEY}"), "type": "invalid_request_error"}}),
    )]);
    let message = permanent(server.embedder().embed(&texts(3)).await);
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("bad input for key"), "{message}");
    assert!(!message.contains(KEY), "{message}");
    assert_eq!(server.received().len(), 1);
}

#[actix_rt::test]
async fn a_malformed_answer_is_permanent_after_one_request() {
    let cases = [
        Step::raw(200, "this is not json"),
        Step::json(200, json!({"data": "not a list"})),
        Step::json(200, json!({"data": [{"index": 0, "embedding": [1.0]}]})),
        Step::json(
            200,
            json!({"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1.0]}]}),
        ),
    ];
    for case in cases {
        let server = TestServer::start(vec![case.clone()]);
        let message = permanent(server.embedder().embed(&texts(2)).await);
        assert!(message.starts_with("openai: "), "{case:?}: {message}");
        assert_eq!(server.received().len(), 1, "{case:?}");
    }
}

#[actix_rt::test]
async fn a_failure_in_a_later_batch_fails_the_whole_call() {
    let server = TestServer::start(vec![
        Step::Echo,
        Step::json(422, json!({"error": {"message": "input too long"}})),
    ]);
    let embedder = server.embedder().with_max_batch(2);
    let message = permanent(embedder.embed(&texts(5)).await);
    assert!(message.contains("input too long"), "{message}");
    assert_eq!(server.received().len(), 2);
}
