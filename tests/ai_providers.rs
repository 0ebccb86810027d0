//! The HTTP providers against real local servers speaking each API: what they send,
//! what they make of the answers, and how they retry, time out and fail.
//!
//! Each test starts its own actix-web server on 127.0.0.1:0 that records every
//! request (with the instant it arrived, so waits are measured by the server) and
//! answers from a script whose last reply repeats forever.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, http::StatusCode, web};
use serde_json::{Value, json};
use strategist::ai::HttpProviderConfig;
use strategist::ai::anthropic::Anthropic;
use strategist::ai::openai::OpenAiCompatible;
use strategist::ai::provider::{Generation, Prompt, Provider, ProviderError};

const KEY: &str = "sk-test-key-0123456789";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

struct TestServer {
    base: String,
    shared: Arc<Shared>,
}

impl TestServer {
    /// Answers `script` in order, repeating the last reply forever.
    fn start(script: Vec<Reply>) -> Self {
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
}

async fn answer(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let at = Instant::now();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    shared.received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        headers,
        body: body.to_vec(),
        at,
    });
    let reply = {
        let mut script = shared.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0].clone()
        }
    };
    let mut response = HttpResponse::build(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response.insert_header((*name, value.as_str()));
    }
    response.body(reply.body)
}

fn prompt() -> Prompt {
    Prompt {
        system: "You are a strategist.".into(),
        user: "Plan my week.".into(),
        context: vec!["Likes mornings.".into(), "Runs on Tuesdays.".into()],
        max_tokens: 256,
    }
}

const EXPECTED_SYSTEM: &str = "You are a strategist.\n\nContext (most relevant first):\n\n[1] Likes mornings.\n\n[2] Runs on Tuesdays.";

fn chat_ok(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-test-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
        }),
    )
}

fn config(server: &TestServer, path: &str) -> HttpProviderConfig {
    HttpProviderConfig::new(format!("{}{path}", server.base), "gpt-test").with_api_key(KEY)
}

fn openai(config: HttpProviderConfig) -> OpenAiCompatible {
    OpenAiCompatible::new(config).unwrap()
}

fn retryable(result: Result<Generation, ProviderError>) -> (String, Option<Duration>) {
    match result {
        Err(ProviderError::Retryable {
            message,
            retry_after,
        }) => (message, retry_after),
        other => panic!("expected Retryable, got {other:?}"),
    }
}

fn permanent(result: Result<Generation, ProviderError>) -> String {
    match result {
        Err(ProviderError::Permanent(message)) => message,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[actix_rt::test]
async fn openai_compatible_sends_the_chat_request_and_parses_the_answer() {
    let server = TestServer::start(vec![chat_ok("Monday: deep work.")]);
    let provider = openai(config(&server, "/v1/"));
    assert_eq!(provider.name(), "openai");
    assert_eq!(provider.model(), "gpt-test");

    let generation = provider.generate(&prompt()).await.unwrap();
    assert_eq!(
        generation,
        Generation {
            text: "Monday: deep work.".into(),
            model: "gpt-test-2024".into(),
            input_tokens: 31,
            output_tokens: 9,
        }
    );

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": EXPECTED_SYSTEM},
                {"role": "user", "content": "Plan my week."}
            ],
            "max_tokens": 256
        })
    );

    // A local server without a key gets no Authorization header at all, and a
    // renamed provider answers to its new name.
    let keyless = HttpProviderConfig {
        api_key: None,
        ..config(&server, "/v1")
    };
    let local = openai(keyless).with_name("ollama");
    assert_eq!(local.name(), "ollama");
    local.generate(&prompt()).await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].header("authorization"), None);
}

#[actix_rt::test]
async fn anthropic_sends_the_messages_request_and_parses_the_answer() {
    let server = TestServer::start(vec![Reply::json(
        200,
        json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test-1",
            "content": [
                {"type": "text", "text": "Monday: "},
                {"type": "text", "text": "deep work."}
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 40, "output_tokens": 12}
        }),
    )]);
    let provider = Anthropic::new(HttpProviderConfig {
        model: "claude-test".into(),
        ..config(&server, "")
    })
    .unwrap();
    assert_eq!(provider.name(), "anthropic");
    assert_eq!(provider.model(), "claude-test");

    let generation = provider.generate(&prompt()).await.unwrap();
    assert_eq!(
        generation,
        Generation {
            text: "Monday: deep work.".into(),
            model: "claude-test-1".into(),
            input_tokens: 40,
            output_tokens: 12,
        }
    );

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.json(),
        json!({
            "model": "claude-test",
            "max_tokens": 256,
            "system": EXPECTED_SYSTEM,
            "messages": [{"role": "user", "content": "Plan my week."}]
        })
    );
}

#[actix_rt::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = TestServer::start(vec![
        Reply::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "1"),
        chat_ok("done"),
    ]);
    let provider = openai(config(&server, "/v1"));
    let generation = provider.generate(&prompt()).await.unwrap();
    assert_eq!(generation.text, "done");

    let received = server.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "second try after {gap:?}"
    );
}

#[actix_rt::test]
async fn retry_after_replaces_the_backoff_and_is_capped() {
    // Retry-After: 0 means now; the backoff alone would have waited at least 500 ms.
    let server = TestServer::start(vec![
        Reply::raw(503, "busy").header("retry-after", "0"),
        chat_ok("done"),
    ]);
    openai(config(&server, "/v1"))
        .generate(&prompt())
        .await
        .unwrap();
    let received = server.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(gap < Duration::from_millis(450), "second try after {gap:?}");

    // An hour is cut to max_retry_after_ms.
    let server = TestServer::start(vec![
        Reply::raw(429, "later").header("retry-after", "3600"),
        chat_ok("done"),
    ]);
    let capped = HttpProviderConfig {
        max_retry_after_ms: 200,
        ..config(&server, "/v1")
    };
    openai(capped).generate(&prompt()).await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(180) && gap < Duration::from_millis(450),
        "second try after {gap:?}"
    );
}

#[actix_rt::test]
async fn the_last_retry_after_is_handed_to_the_engine() {
    let server = TestServer::start(vec![
        Reply::json(429, json!({"error": {"message": "quota"}})).header("retry-after", "0"),
    ]);
    let once_more = HttpProviderConfig {
        max_retries: 1,
        ..config(&server, "/v1")
    };
    let (message, retry_after) = retryable(openai(once_more).generate(&prompt()).await);
    assert_eq!(retry_after, Some(Duration::ZERO));
    assert!(
        message.contains("429") && message.contains("quota"),
        "{message}"
    );
    assert_eq!(server.received().len(), 2);
}

#[actix_rt::test]
async fn server_errors_are_retried_up_to_max_retries() {
    let server = TestServer::start(vec![
        Reply::raw(500, "oops"),
        Reply::raw(500, "oops"),
        Reply::raw(500, "oops"),
        chat_ok("fourth time lucky"),
    ]);
    let three = HttpProviderConfig {
        max_retries: 3,
        ..config(&server, "/v1")
    };
    let generation = openai(three).generate(&prompt()).await.unwrap();
    assert_eq!(generation.text, "fourth time lucky");
    let received = server.received();
    assert_eq!(received.len(), 4);
    // Backoff, not a hot loop: 500 ms, then 1 s, then 2 s at the least.
    let first_gap = received[1].at - received[0].at;
    assert!(first_gap >= Duration::from_millis(450), "{first_gap:?}");
}

#[actix_rt::test]
async fn a_server_error_forever_ends_retryable_after_max_retries_plus_one_requests() {
    let server = TestServer::start(vec![Reply::json(
        502,
        json!({"error": {"message": "upstream down"}}),
    )]);
    let three = HttpProviderConfig {
        max_retries: 3,
        ..config(&server, "/v1")
    };
    let (message, retry_after) = retryable(openai(three).generate(&prompt()).await);
    assert_eq!(server.received().len(), 4);
    assert_eq!(retry_after, None);
    assert!(
        message.contains("502")
            && message.contains("upstream down")
            && message.contains("4 attempts"),
        "{message}"
    );
}

#[actix_rt::test]
async fn a_401_is_permanent_at_once_and_never_shows_the_key() {
    let server = TestServer::start(vec![Reply::json(
        401,
        json!({"error": {"message": "bad key"}}),
    )]);
    let message = permanent(openai(config(&server, "/v1")).generate(&prompt()).await);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("bad key"), "{message}");
    assert!(!message.contains(KEY), "{message}");
    assert_eq!(server.received().len(), 1);

    // A server that quotes the key back (OpenAI does, partly) still does not get it
    // into the error; Anthropic's error shape is read the same way.
    let server = TestServer::start(vec![Reply::json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")}}),
    )]);
    let provider = Anthropic::new(config(&server, "")).unwrap();
    let message = permanent(provider.generate(&prompt()).await);
    assert!(
        message.contains("401") && message.contains("invalid x-api-key"),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");
    assert!(!format!("{provider:?}").contains(KEY));
    assert_eq!(server.received().len(), 1);
}

#[actix_rt::test]
async fn an_answer_that_is_not_the_expected_json_is_permanent() {
    let server = TestServer::start(vec![Reply::raw(200, "<html>hello</html>")]);
    let message = permanent(openai(config(&server, "/v1")).generate(&prompt()).await);
    assert!(message.contains("not the expected JSON"), "{message}");
    assert_eq!(server.received().len(), 1);

    let server = TestServer::start(vec![Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion"}),
    )]);
    let message = permanent(openai(config(&server, "/v1")).generate(&prompt()).await);
    assert!(message.contains("choices"), "{message}");
    assert_eq!(server.received().len(), 1);

    let server = TestServer::start(vec![Reply::json(200, json!({"content": "not blocks"}))]);
    let provider = Anthropic::new(config(&server, "")).unwrap();
    let message = permanent(provider.generate(&prompt()).await);
    assert!(message.contains("not the expected JSON"), "{message}");
}

#[actix_rt::test]
async fn a_server_that_never_answers_times_out_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            // Kept open and never read nor answered.
            held.push(socket);
        }
    });
    let silent = HttpProviderConfig {
        timeout_ms: 300,
        max_retries: 0,
        ..HttpProviderConfig::new(format!("http://{addr}/v1"), "gpt-test").with_api_key(KEY)
    };
    let started = Instant::now();
    let (message, retry_after) = retryable(openai(silent).generate(&prompt()).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(message.contains("300 ms"), "{message}");
    assert_eq!(retry_after, None);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn nothing_listening_is_retryable() {
    // Bind then drop, so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = HttpProviderConfig {
        max_retries: 0,
        ..HttpProviderConfig::new(format!("http://127.0.0.1:{port}/v1"), "gpt-test")
    };
    let (message, _) = retryable(openai(closed).generate(&prompt()).await);
    assert!(message.contains("cannot connect"), "{message}");
}
