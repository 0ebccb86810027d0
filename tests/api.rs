//! The HTTP API of generation and consultations, against the real binary, a private
//! Redis and a SQLite file: request-response end to end, across processes, the
//! 504-then-fetch path, a redelivered request, every auth case and error status.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use strategist::auth::Tokens;

const SECRET: &str = "api-test-secret";

fn token(user: &str, admin: bool) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, admin, Duration::from_secs(3600))
        .unwrap()
}

fn client() -> Client {
    // reqwest is built without a default TLS provider, as in the app.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn url(app: &App, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", app.port)
}

fn post(app: &App, path: &str, tok: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(url(app, path)).json(body);
    if let Some(t) = tok {
        req = req.bearer_auth(t);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

fn get(app: &App, path: &str, tok: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url(app, path));
    if let Some(t) = tok {
        req = req.bearer_auth(t);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

fn generation(topic: &str) -> Value {
    json!({
        "contextual_core_id": "core-1",
        "content_type": "social_post",
        "prompt_template": "social_post",
        "variables": {"topic": topic, "audience": "founders"}
    })
}

const NO_LIMIT: (&str, &str) = ("STRATEGIST__HTTP__GENERATION_PER_MINUTE", "0");

fn app(r: &LocalRedis, extra: &[(&str, &str)]) -> App {
    let mut env = vec![("STRATEGIST_AUTH_SECRET", SECRET), NO_LIMIT];
    env.extend_from_slice(extra);
    App::serve(&r.url(), &env)
}

#[test]
fn a_generation_returns_its_draft_which_is_stored_and_readable() {
    let r = redis();
    let app = app(&r, &[]);
    let tok = token("alice", false);
    let (status, body) = post(
        &app,
        "/api/v1/content/generate",
        Some(&tok),
        &generation("our launch"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ai_provider"], "offline");
    assert_eq!(body["model_used"], "offline-composer-1");
    let text = body["generated_content"].as_str().unwrap();
    assert!(
        text.contains("our launch") && text.contains("founders"),
        "{text}"
    );
    assert!(body["tokens_used"].as_u64().unwrap() > 0);
    let draft_id = body["content_draft_id"].as_str().unwrap();
    let request_id = body["request_id"].as_str().unwrap();

    let (status, draft) = get(
        &app,
        &format!("/api/v1/content/drafts/{draft_id}"),
        Some(&tok),
    );
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["content"], body["generated_content"]);
    assert_eq!(draft["user_id"], "alice");
    assert_eq!(draft["request_id"], request_id);

    let (status, list) = get(&app, "/api/v1/content/drafts?limit=10", Some(&tok));
    assert_eq!(status, 200);
    assert_eq!(list["drafts"].as_array().unwrap().len(), 1);

    let (status, outcome) = get(
        &app,
        &format!("/api/v1/content/requests/{request_id}"),
        Some(&tok),
    );
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "completed");
    assert_eq!(outcome["result"]["content_draft_id"], draft_id);

    // content.draft.created went out on content.events.
    let mut c = conn(&r);
    let created = entries(&mut c, "content.events");
    assert!(
        created.iter().any(
            |e| e.get("type").map(String::as_str) == Some("content.draft.created")
                && e.get("data").is_some_and(|d| d.contains(draft_id))
        ),
        "no content.draft.created for {draft_id}"
    );

    // A consultation over the same pattern.
    let (status, answer) = post(
        &app,
        "/api/v1/consultations",
        Some(&tok),
        &json!({"contextual_core_id": "core-1", "query": "How do I reach more founders?", "session_type": "strategic_advice"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["response"]
            .as_str()
            .unwrap()
            .contains("reach more founders")
    );
    let score = answer["confidence_score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert_eq!(answer["market_data_referenced"], json!([]));
    let (status, later) = get(
        &app,
        &format!(
            "/api/v1/consultations/{}",
            answer["session_id"].as_str().unwrap()
        ),
        Some(&tok),
    );
    assert_eq!(status, 200);
    assert_eq!(later["result"]["response"], answer["response"]);
}

#[test]
fn two_hundred_concurrent_requests_each_get_their_own_answer() {
    let r = redis();
    let app = app(&r, &[]);
    let tok = token("bob", false);
    let client = client();
    let answers: Vec<(usize, u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (client, tok, app) = (&client, &tok, &app);
                s.spawn(move || {
                    let res = client
                        .post(url(app, "/api/v1/content/generate"))
                        .bearer_auth(tok)
                        .json(&generation(&format!("topic-{i}-end")))
                        .send()
                        .unwrap();
                    let status = res.status().as_u16();
                    (i, status, res.json::<Value>().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = std::collections::BTreeSet::new();
    for (i, status, body) in answers {
        assert_eq!(status, 200, "{i}: {body}");
        let text = body["generated_content"].as_str().unwrap();
        assert!(
            text.contains(&format!("topic-{i}-end")),
            "{i} got another's answer: {text}"
        );
        ids.insert(body["content_draft_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 200, "200 distinct drafts");
}

#[test]
fn a_request_that_times_out_is_answered_later_by_a_worker_in_another_process() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/shared.db?mode=rwc", dir.path().display());
    let env = [
        ("STRATEGIST_AUTH_SECRET", SECRET),
        NO_LIMIT,
        ("DATABASE_URL", db.as_str()),
    ];
    // An API-only process: nothing here handles generation requests.
    let api = App::serve_args(&r.url(), &["--pools", "none"], &env);
    let tok = token("carol", false);
    let mut body = generation("patience");
    body["timeout_ms"] = json!(500);
    let (status, err) = post(&api, "/api/v1/content/generate", Some(&tok), &body);
    assert_eq!(status, 504, "{err}");
    assert_eq!(err["error"]["code"], "timeout");
    let request_id = err["error"]["request_id"].as_str().unwrap().to_string();
    let (status, pending) = get(
        &api,
        &format!("/api/v1/content/requests/{request_id}"),
        Some(&tok),
    );
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["status"], "pending");

    // A worker-only process picks the request up; its answer is stored.
    let mut worker = App::spawn_args(
        &r.url(),
        &["--no-http", "--pools", "content-generator"],
        &env,
    );
    worker.wait_for_line("running without HTTP", Duration::from_secs(30));
    let path = format!("/api/v1/content/requests/{request_id}");
    eventually(Duration::from_secs(20), "the late answer is stored", || {
        get(&api, &path, Some(&tok)).0 == 200
    });
    let (_, done) = get(&api, &path, Some(&tok));
    assert_eq!(done["status"], "completed");
    assert!(
        done["result"]["generated_content"]
            .as_str()
            .unwrap()
            .contains("patience")
    );

    // Request here, worker there: the completion reaches the waiting request.
    let (status, body) = post(
        &api,
        "/api/v1/content/generate",
        Some(&tok),
        &generation("across"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["generated_content"]
            .as_str()
            .unwrap()
            .contains("across")
    );
}

#[test]
fn a_redelivered_request_makes_one_draft_and_one_completion() {
    let r = redis();
    let app = app(&r, &[]);
    let tok = token("dave", false);
    let mut c = conn(&r);
    let event_id = ulid::Ulid::generate().to_string();
    let data = json!({
        "request_id": "req-twice", "user_id": "dave", "contextual_core_id": "core-1",
        "content_type": "email", "prompt_template": "email", "ai_provider": "offline",
        "max_tokens": 200, "variables": {"recipient": "Ann", "topic": "the offer", "tone": "warm"}
    });
    // The same event twice, as a redelivery (or a producer's retried XADD) brings it.
    for _ in 0..2 {
        redis::cmd("XADD")
            .arg("ai.events")
            .arg("*")
            .arg("id")
            .arg(&event_id)
            .arg("type")
            .arg("ai.content.generation.requested")
            .arg("version")
            .arg("1")
            .arg("timestamp")
            .arg("2026-11-30T12:00:00.000Z")
            .arg("data")
            .arg(data.to_string())
            .arg("correlation_id")
            .arg("req-twice")
            .arg("user_id")
            .arg("dave")
            .query::<String>(&mut c)
            .unwrap();
    }
    eventually(Duration::from_secs(20), "both deliveries handled", || {
        group(&mut c, "ai.events", "content-generator").pending == 0
            && group(&mut c, "ai.events", "content-generator").entries_read >= 2
    });
    let (_, list) = get(&app, "/api/v1/content/drafts", Some(&tok));
    assert_eq!(list["drafts"].as_array().unwrap().len(), 1, "{list}");
    let completions = entries(&mut c, "ai.events")
        .into_iter()
        .filter(|e| e.get("type").map(String::as_str) == Some("ai.content.generation.completed"))
        .count();
    assert_eq!(
        completions, 1,
        "the repeat re-publishes the same completion, which Redis drops"
    );
}

#[test]
fn every_auth_case_is_refused_with_its_status_and_a_json_error() {
    let r = redis();
    let app = app(&r, &[]);
    let alice = token("alice", false);
    let (_, body) = post(
        &app,
        "/api/v1/content/generate",
        Some(&alice),
        &generation("mine"),
    );
    let draft = body["content_draft_id"].as_str().unwrap().to_string();
    let request_id = body["request_id"].as_str().unwrap().to_string();
    let draft_path = format!("/api/v1/content/drafts/{draft}");

    let check = |status: u16, body: &Value, want: u16, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    // None.
    let (s, b) = get(&app, &draft_path, None);
    check(s, &b, 401, "unauthorized");
    // Not a bearer header.
    let res = client()
        .get(url(&app, &draft_path))
        .header("Authorization", "Basic YWxpY2U6eA==")
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // Bad signature.
    let forged = Tokens::new("another-secret")
        .unwrap()
        .mint("alice", true, Duration::from_secs(60))
        .unwrap();
    let (s, b) = get(&app, &draft_path, Some(&forged));
    check(s, &b, 401, "unauthorized");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    // Expired.
    let short = Tokens::new(SECRET)
        .unwrap()
        .mint("alice", false, Duration::from_secs(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let (s, b) = get(&app, &draft_path, Some(&short));
    check(s, &b, 401, "unauthorized");
    assert!(b["error"]["message"].as_str().unwrap().contains("expired"));
    // Garbage.
    let (s, b) = get(&app, &draft_path, Some("not-a-token"));
    check(s, &b, 401, "unauthorized");
    // Another user: the draft and the request are not found for them.
    let mallory = token("mallory", false);
    let (s, b) = get(&app, &draft_path, Some(&mallory));
    check(s, &b, 404, "not_found");
    let (s, b) = get(
        &app,
        &format!("/api/v1/content/requests/{request_id}"),
        Some(&mallory),
    );
    check(s, &b, 404, "not_found");
    // Acting for another user: 403; an admin may.
    let mut body = generation("theirs");
    body["user_id"] = json!("alice");
    let (s, b) = post(&app, "/api/v1/content/generate", Some(&mallory), &body);
    check(s, &b, 403, "forbidden");
    let (s, b) = get(&app, "/api/v1/content/drafts?user_id=alice", Some(&mallory));
    check(s, &b, 403, "forbidden");
    let admin = token("root", true);
    let (s, b) = get(&app, &draft_path, Some(&admin));
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(&app, "/api/v1/content/generate", Some(&admin), &body);
    assert_eq!(s, 200, "{b}");
    // A user may publish only the types meant for users: a generation request
    // straight onto the stream would skip the route's checks and limits.
    let (s, b) = post(
        &app,
        "/api/v1/events",
        Some(&mallory),
        &json!({"type": "ai.content.generation.requested", "data": {
            "request_id": "r", "user_id": "mallory", "contextual_core_id": "c",
            "content_type": "email", "prompt_template": "email", "ai_provider": "offline",
            "max_tokens": 4000000000u64}}),
    );
    check(s, &b, 403, "forbidden");
    // Health and the OpenAPI document need no token; health is in the document.
    assert_eq!(get(&app, "/healthz", None).0, 200);
    let (s, doc) = get(&app, "/api/openapi.json", None);
    assert_eq!(s, 200);
    assert!(
        doc["paths"]["/healthz"]["get"].is_object() && doc["paths"]["/readyz"]["get"].is_object()
    );
}

#[test]
fn every_bad_input_gets_its_status_and_names_what_is_wrong() {
    let r = redis();
    let app = app(
        &r,
        &[
            ("STRATEGIST__HTTP__GENERATION_PER_MINUTE", "1"),
            ("STRATEGIST__HTTP__GENERATION_BURST", "1"),
        ],
    );
    let tok = token("erin", false);
    let p = "/api/v1/content/generate";
    let bad = |body: Value| post(&app, p, Some(&tok), &body);

    let mut b = generation("x");
    b["prompt_template"] = json!("nope");
    let (s, e) = bad(b);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("prompt_template"),
        "{e}"
    );

    let mut b = generation("x");
    b["variables"] = json!({"topic": "x"});
    let (s, e) = bad(b);
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("variables.audience"),
        "{e}"
    );

    let mut b = generation("x");
    b["variables"]["topic"] = json!(3);
    let (s, e) = bad(b);
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("variables.topic"),
        "{e}"
    );

    let mut b = generation("x");
    b["content_type"] = json!("poem");
    let (s, e) = bad(b);
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("content_type"),
        "{e}"
    );

    let mut b = generation("x");
    b["ai_provider"] = json!("hal9000");
    let (s, e) = bad(b);
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("ai_provider"),
        "{e}"
    );

    let mut b = generation("x");
    b["timeout_ms"] = json!(10_000_000);
    assert_eq!(bad(b).0, 400);
    let mut b = generation("x");
    b["max_tokens"] = json!(0);
    assert_eq!(bad(b).0, 400);
    let (s, e) = bad(json!({"contextual_core_id": "c"}));
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{e}"
    );

    // Not JSON, not an object, no body, too large.
    let raw = |body: &'static str, ct: &str| {
        let res = client()
            .post(url(&app, p))
            .bearer_auth(&tok)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap();
        let s = res.status().as_u16();
        (s, res.json::<Value>().unwrap())
    };
    assert_eq!(raw("{not json", "application/json").0, 400);
    assert_eq!(raw("[]", "application/json").0, 400);
    assert_eq!(raw("", "application/json").0, 400);
    assert_eq!(
        raw("{}", "text/plain").1["error"]["code"],
        "invalid_content_type"
    );
    let mut big = generation("x");
    big["variables"]["topic"] = json!("y".repeat(70_000)); // the route's limit is 64 KiB
    let (s, e) = bad(big);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{e}"
    );

    assert_eq!(
        get(&app, "/api/v1/no/such/route", Some(&tok)).1["error"]["code"],
        "not_found"
    );

    // Rate limit: one a minute, so the second is refused with Retry-After; the
    // refused requests above were refused before the limit was taken.
    let (s, _) = bad(generation("first"));
    assert_eq!(s, 200);
    let res = client()
        .post(url(&app, p))
        .bearer_auth(&tok)
        .json(&generation("second"))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        res.json::<Value>().unwrap()["error"]["code"],
        "rate_limited"
    );
    // Another user has a bucket of their own.
    let (s, _) = post(&app, p, Some(&token("frank", false)), &generation("own"));
    assert_eq!(s, 200);
}

#[test]
fn a_provider_that_refuses_ends_the_wait_at_once_with_its_reason() {
    let r = redis();
    // The configured openai provider without its key: the worker refuses at once.
    let app = app(&r, &[]);
    let tok = token("gina", false);
    let mut b = generation("x");
    b["ai_provider"] = json!("openai");
    let started = std::time::Instant::now();
    let (s, e) = post(&app, "/api/v1/content/generate", Some(&tok), &b);
    assert_eq!(s, 502, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait for the timeout"
    );
    let mut c = conn(&r);
    eventually(
        Duration::from_secs(10),
        "the refused request is a dead letter",
        || entries(&mut c, "{ai.events}.dlq").len() == 1,
    );
}

#[test]
fn a_request_whose_retries_run_out_is_failed_not_pending_for_ever() {
    let r = redis();
    // A provider that cannot be reached: retryable every time, until the engine's
    // retries run out and the request is dead-lettered.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{closed}/v1");
    let app = app(
        &r,
        &[
            ("STRATEGIST__AI__PROVIDERS__LOCAL__KIND", "openai"),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__BASE_URL", base.as_str()),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__MODEL", "m"),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__MAX_RETRIES", "0"),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__TIMEOUT_MS", "300"),
            (
                "STRATEGIST__POOLS__CONTENT_GENERATOR__RETRY__BASE_DELAY_MS",
                "100",
            ),
            (
                "STRATEGIST__POOLS__CONTENT_GENERATOR__RETRY__MAX_DELAY_MS",
                "200",
            ),
        ],
    );
    let tok = token("hank", false);
    let mut b = generation("x");
    b["ai_provider"] = json!("local");
    b["timeout_ms"] = json!(60_000);
    let started = std::time::Instant::now();
    let (s, e) = post(&app, "/api/v1/content/generate", Some(&tok), &b);
    assert_eq!(s, 502, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("after 3 attempts"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the wait ended with the retries"
    );
    let (_, list) = get(&app, "/api/v1/content/drafts", Some(&tok));
    assert_eq!(list["drafts"], json!([]));
    // The request's outcome says failed (it was not left pending).
    let mut c = conn(&r);
    let failed = entries(&mut c, "ai.events")
        .into_iter()
        .find(|e| e.get("type").map(String::as_str) == Some("ai.content.generation.failed"))
        .unwrap();
    let data: Value = serde_json::from_str(&failed["data"]).unwrap();
    let (s, outcome) = get(
        &app,
        &format!(
            "/api/v1/content/requests/{}",
            data["request_id"].as_str().unwrap()
        ),
        Some(&tok),
    );
    assert_eq!(s, 200);
    assert_eq!(outcome["status"], "failed", "{outcome}");
}

#[test]
fn a_bad_cors_origin_stops_serve_with_one_line() {
    let r = redis();
    let mut p = App::spawn(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("STRATEGIST__HTTP__CORS_ORIGINS", r#"["*"]"#),
        ],
    );
    assert!(!p.wait(Duration::from_secs(30)).success());
    let logs = p.logs();
    assert!(
        logs.lines()
            .any(|l| l.starts_with("error: ") && l.contains("cors_origins")),
        "{logs}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
            prop_oneof![
                Just("social_post"),
                Just("email"),
                Just("offline"),
                Just("social_post")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("contextual_core_id".to_string()),
                        Just("content_type".to_string()),
                        Just("prompt_template".to_string()),
                        Just("variables".to_string()),
                        Just("ai_provider".to_string()),
                        Just("max_tokens".to_string()),
                        Just("timeout_ms".to_string()),
                        Just("topic".to_string()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..7
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn no_request_body_yields_a_5xx() {
        let r = redis();
        let app = app(&r, &[("STRATEGIST__AI__DEFAULT_TIMEOUT_MS", "5000")]);
        let tok = token("fuzz", false);
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 150,
            ..Default::default()
        });
        runner
            .run(&json_value(), |body| {
                for path in ["/api/v1/content/generate", "/api/v1/consultations"] {
                    let (s, b) = post(&app, path, Some(&tok), &body);
                    prop_assert!(s < 500, "{path} {body} -> {s} {b}");
                    if s >= 400 {
                        prop_assert!(b["error"]["code"].is_string(), "{b}");
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn cors_is_off_unless_origins_are_configured() {
    let r = redis();
    let preflight = |app: &App, origin: &str| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                url(app, "/api/v1/content/generate"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .unwrap()
    };
    let allow = |res: &reqwest::blocking::Response| {
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let off = app(&r, &[]);
    assert_eq!(allow(&preflight(&off, "https://app.example")), None);
    drop(off);
    let on = app(
        &r,
        &[(
            "STRATEGIST__HTTP__CORS_ORIGINS",
            r#"["https://app.example"]"#,
        )],
    );
    let res = preflight(&on, "https://app.example");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(allow(&res).as_deref(), Some("https://app.example"));
    assert_eq!(allow(&preflight(&on, "https://evil.example")), None);
}

#[test]
fn with_redis_down_a_request_is_a_503_with_a_json_error() {
    let mut r = redis();
    let app = app(&r, &[]);
    let tok = token("ivy", false);
    let (s, _) = post(
        &app,
        "/api/v1/content/generate",
        Some(&tok),
        &generation("before"),
    );
    assert_eq!(s, 200);
    r.kill();
    let (s, e) = post(
        &app,
        "/api/v1/content/generate",
        Some(&tok),
        &generation("during"),
    );
    assert_eq!(s, 503, "{e}");
    assert_eq!(e["error"]["code"], "unavailable");
    assert!(
        !e["error"]["message"].as_str().unwrap().contains("os error"),
        "no internals: {e}"
    );
    assert_eq!(get(&app, "/readyz", None).0, 503);
}
