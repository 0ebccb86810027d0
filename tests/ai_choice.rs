//! A content request naming no provider goes to the provider the stored
//! `updateModelBenchmarks` results favour (`strategist::ai::choice`), through the
//! real binary with two providers: the offline composer (the default) and an
//! OpenAI-compatible server the test starts. Benchmark rows are seeded in the
//! SQLite file the binary uses.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::server::Server;
use common::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist::store::Store;
use strategist::store::entities::{content_draft, model_benchmark};

const SECRET: &str = "ai-choice-test-secret";

fn chat_server() -> Server {
    Server::start(|req, _| {
        if !req.path.ends_with("/chat/completions") {
            return (404, vec![], vec![]);
        }
        let body = json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "local-model-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Local model copy."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}
        });
        (
            200,
            vec![("Content-Type".to_owned(), "application/json".to_owned())],
            serde_json::to_vec(&body).unwrap(),
        )
    })
}

fn row(provider: &str, ago_ms: i64, tps: f64, error: Option<&str>) -> model_benchmark::Model {
    let at = chrono::Utc::now().timestamp_millis() - ago_ms;
    model_benchmark::Model {
        id: format!("{at:013}-{provider}-{tps}"),
        kind: "generation".into(),
        provider: provider.into(),
        model: "m".into(),
        latency_ms: 200.0,
        tokens_per_second: tps,
        cost_usd: 0.0,
        retrieval_recall: None,
        error: error.map(str::to_owned),
        measured_at_ms: at,
    }
}

fn seed(rt: &tokio::runtime::Runtime, store: &Store, rows: Vec<model_benchmark::Model>) {
    rt.block_on(
        model_benchmark::Entity::insert_many(
            rows.into_iter().map(model_benchmark::ActiveModel::from),
        )
        .exec_without_returning(&store.db),
    )
    .unwrap();
}

fn generate(app: &App, provider: Option<&str>) -> Value {
    let tok = Tokens::new(SECRET)
        .unwrap()
        .mint("alice", false, Duration::from_secs(3600))
        .unwrap();
    let mut body = json!({
        "contextual_core_id": "core-1",
        "content_type": "social_post",
        "prompt_template": "social_post",
        "variables": {"topic": "our launch", "audience": "founders"}
    });
    if let Some(p) = provider {
        body["ai_provider"] = json!(p);
    }
    let auth = format!("Bearer {tok}");
    let r = http(
        app.port,
        "POST",
        "/api/v1/content/generate",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_request_naming_no_provider_goes_to_the_best_recent_benchmark() {
    let server = chat_server();
    let redis = redis();
    let db = TestDb::sqlite();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(Store::connect(&db.url)).unwrap();
    rt.block_on(store.migrate()).unwrap();
    let base = server.url("/v1");
    let app = App::serve(
        &redis.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("DATABASE_URL", db.url.as_str()),
            ("STRATEGIST__HTTP__GENERATION_PER_MINUTE", "0"),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__KIND", "openai"),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__BASE_URL", base.as_str()),
            ("STRATEGIST__AI__PROVIDERS__LOCAL__MODEL", "local-model-1"),
            ("STRATEGIST__AI__BENCHMARK_MAX_AGE_HOURS", "24"),
        ],
    );

    // No benchmarks: the default (offline).
    assert_eq!(generate(&app, None)["ai_provider"], "offline");
    assert!(server.requests("/v1/").is_empty());

    // The local server answers ten times as many tokens per second: it is chosen.
    seed(
        &rt,
        &store,
        vec![
            row("offline", 60_000, 50.0, None),
            row("local", 60_000, 500.0, None),
        ],
    );
    let d = generate(&app, None);
    assert_eq!(d["ai_provider"], "local", "{d}");
    assert_eq!(d["generated_content"], "Local model copy.");
    assert_eq!(server.requests("/v1/chat/completions").len(), 1);
    // A request naming a provider gets that one.
    assert_eq!(generate(&app, Some("offline"))["ai_provider"], "offline");
    assert_eq!(server.requests("/v1/chat/completions").len(), 1);

    // Its latest run failed: it no longer counts, the offline composer wins.
    seed(
        &rt,
        &store,
        vec![row("local", 1_000, 0.0, Some("HTTP 500"))],
    );
    assert_eq!(generate(&app, None)["ai_provider"], "offline");

    // Only runs within benchmark_max_age_hours count: an old excellent run of the
    // local server is ignored, and the newer failure still decides.
    seed(&rt, &store, vec![row("local", 30 * 3_600_000, 1e6, None)]);
    assert_eq!(generate(&app, None)["ai_provider"], "offline");

    // A successful run again: chosen again.
    seed(&rt, &store, vec![row("local", 0, 400.0, None)]);
    assert_eq!(generate(&app, None)["ai_provider"], "local");

    // A request event from another service naming no provider: the worker chooses.
    let mut c = conn(&redis);
    xadd_event(
        &mut c,
        "ai.events",
        "ai.content.generation.requested",
        &json!({
            "request_id": "req-from-elsewhere",
            "user_id": "alice",
            "contextual_core_id": "core-1",
            "content_type": "social_post",
            "prompt_template": "social_post",
            "ai_provider": "",
            "max_tokens": 100,
            "variables": {"topic": "x", "audience": "y"}
        })
        .to_string(),
    );
    let mut found = None;
    eventually(Duration::from_secs(20), "the worker's draft", || {
        found = rt
            .block_on(
                content_draft::Entity::find()
                    .filter(content_draft::Column::RequestId.eq("req-from-elsewhere"))
                    .one(&store.db),
            )
            .unwrap();
        found.is_some()
    });
    assert_eq!(found.unwrap().ai_provider, "local");
}
