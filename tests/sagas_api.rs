//! `GET /api/v1/sagas` against the real binary: the saga store's instances by
//! status, as the web page's "sagas in flight" reads them. The file-processing
//! saga runs alone (`--pools file-processing`) and the test plays its workers, so a
//! saga stays running until the test completes its steps.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use strategist::auth::Tokens;

const SECRET: &str = "sagas-api-test-secret";

/// (request a step publishes, completion the test answers with).
const STEPS: [(&str, &str); 3] = [
    (
        "file.text_extraction.requested",
        "file.processing.completed",
    ),
    (
        "embedding.generation.requested",
        "embedding.generation.completed",
    ),
    (
        "search.index.update.requested",
        "search.index.update.completed",
    ),
];

fn completion(step: usize, file_id: &str) -> String {
    match step {
        0 => format!(
            r#"{{"file_id":"{file_id}","processing_type":"text_extraction","processing_time_ms":5,"extracted_text_length":42,"success":true}}"#
        ),
        1 => r#"{"embedding_id":"e1","content_hash":"h","model_id":"m","dimensions":3,"generation_time_ms":1,"cost_usd":0.0}"#.into(),
        _ => format!(r#"{{"file_id":"{file_id}","success":true,"documents_indexed":1}}"#),
    }
}

fn xadd(c: &mut redis::Connection, corr: &str, event_type: &str, data: &str) {
    let _: String = redis::cmd("XADD")
        .arg("contextual.events")
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg(event_type)
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00.123Z")
        .arg("correlation_id")
        .arg(corr)
        .arg("user_id")
        .arg("u1")
        .arg("data")
        .arg(data)
        .query(c)
        .unwrap();
}

fn upload(c: &mut redis::Connection, corr: &str, file_id: &str) {
    xadd(
        c,
        corr,
        "file.uploaded",
        &format!(
            r#"{{"file_id":"{file_id}","user_id":"u1","contextual_core_id":"c1","filename":"plan.pdf","file_size":10,"mime_type":"application/pdf","is_browser_viewable":true}}"#
        ),
    );
}

fn requested(c: &mut redis::Connection, corr: &str, ty: &str) -> bool {
    entries(c, "contextual.events").iter().any(|e| {
        e.get("correlation_id").map(String::as_str) == Some(corr)
            && e.get("type").map(String::as_str) == Some(ty)
    })
}

fn get(port: u16, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http(port, "GET", path, &headers, None)
}

fn ids(v: &Value) -> Vec<String> {
    v["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn admins_list_sagas_by_status_the_longest_unchanged_first() {
    let r = redis();
    let mut c = conn(&r);
    let app = App::serve_args(
        &r.url(),
        &["--pools", "file-processing"],
        &[("STRATEGIST_AUTH_SECRET", SECRET)],
    );
    let tokens = Tokens::new(SECRET).unwrap();
    let admin = tokens
        .mint("root", true, Duration::from_secs(3600))
        .unwrap();
    let alice = tokens
        .mint("alice", false, Duration::from_secs(3600))
        .unwrap();

    upload(&mut c, "saga-a", "fa");
    eventually(Duration::from_secs(20), "saga-a's first step", || {
        requested(&mut c, "saga-a", STEPS[0].0)
    });
    upload(&mut c, "saga-b", "fb");
    eventually(Duration::from_secs(20), "saga-b's first step", || {
        requested(&mut c, "saga-b", STEPS[0].0)
    });

    let r = get(app.port, "/api/v1/sagas", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(ids(&v), ["saga-a", "saga-b"], "running, oldest first: {v}");
    let a = &v["sagas"][0];
    assert_eq!(a["saga"], "file-processing");
    assert_eq!(a["status"], "running");
    assert_eq!(a["step"], 0);
    assert_eq!(a["history_len"], 1, "the first step's record: {a}");
    assert!(a["error"].is_null());
    assert!(
        a["request_id"].as_str().is_some_and(|s| s.len() == 26),
        "{a}"
    );
    for key in ["deadline_at", "updated_at"] {
        let t = a[key].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{key}: {a}"
        );
    }
    assert!(a.get("data").is_none(), "the saga's data is not shown: {a}");

    let v = get(
        app.port,
        "/api/v1/sagas?status=running&limit=1",
        Some(&admin),
    )
    .json();
    assert_eq!(ids(&v), ["saga-a"]);

    // saga-a through its three steps: completed, no longer running.
    for (step, (request, _)) in STEPS.iter().enumerate() {
        eventually(Duration::from_secs(20), request, || {
            requested(&mut c, "saga-a", request)
        });
        xadd(&mut c, "saga-a", STEPS[step].1, &completion(step, "fa"));
    }
    eventually(Duration::from_secs(20), "saga-a completed", || {
        let v = get(app.port, "/api/v1/sagas?status=completed", Some(&admin)).json();
        ids(&v) == ["saga-a"]
    });
    let done = get(app.port, "/api/v1/sagas?status=completed", Some(&admin)).json();
    assert!(
        done["sagas"][0]["history_len"].as_u64().unwrap() >= 3,
        "a record per step at least: {done}"
    );
    assert!(done["sagas"][0]["deadline_at"].is_null(), "{done}");
    let v = get(app.port, "/api/v1/sagas?status=running", Some(&admin)).json();
    assert_eq!(ids(&v), ["saga-b"]);
    let v = get(app.port, "/api/v1/sagas?status=failed", Some(&admin)).json();
    assert_eq!(ids(&v), Vec::<String>::new());

    // Refusals.
    for (path, token, status, code) in [
        ("/api/v1/sagas", None, 401, "unauthorized"),
        ("/api/v1/sagas", Some(alice.as_str()), 403, "forbidden"),
        (
            "/api/v1/sagas?status=lost",
            Some(admin.as_str()),
            400,
            "invalid_query",
        ),
        (
            "/api/v1/sagas?limit=0",
            Some(admin.as_str()),
            400,
            "invalid_query",
        ),
        (
            "/api/v1/sagas?limit=501",
            Some(admin.as_str()),
            400,
            "invalid_query",
        ),
        (
            "/api/v1/sagas?limit=many",
            Some(admin.as_str()),
            400,
            "invalid_query",
        ),
    ] {
        let r = get(app.port, path, token);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], code, "{path}: {}", r.body);
    }

    // In the OpenAPI document, saying how it fails.
    let doc: Value = serde_json::from_str(&app.get("/api/openapi.json").1).unwrap();
    let op = &doc["paths"]["/api/v1/sagas"]["get"];
    assert!(!op.is_null(), "GET /api/v1/sagas not documented");
    for status in ["200", "400", "401", "403"] {
        assert!(!op["responses"][status].is_null(), "no {status}: {op}");
    }
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["status", "limit"]);
}
