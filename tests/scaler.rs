//! The scaler in the real binary: a pool whose schedule window is open grows from
//! `min_workers` to `max_workers`, and `/api/v1/metrics` and `/metrics` show the
//! change; a pool whose window never opens is left at its minimum.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use strategist::auth::Tokens;

const SECRET: &str = "scaler-test-secret";

fn metrics(app: &App) -> Value {
    let token = Tokens::new(SECRET)
        .unwrap()
        .mint("root", true, Duration::from_secs(600))
        .unwrap();
    let auth = format!("Bearer {token}");
    let r = http(
        app.port,
        "GET",
        "/api/v1/metrics",
        &[("authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn pool<'a>(doc: &'a Value, section: &str, key: &str, name: &str) -> Option<&'a Value> {
    doc[section].as_array()?.iter().find(|p| p[key] == name)
}

#[test]
fn an_open_window_grows_a_pool_to_its_maximum_and_a_closed_one_leaves_it() {
    let r = redis();
    let app = App::serve_args(
        &r.url(),
        &["--pools", "market-monitor,briefing-generator"],
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("STRATEGIST__SCALER__INTERVAL_MS", "200"),
            (
                "STRATEGIST__POOLS__MARKET_MONITOR__SCALE_WINDOW",
                "* * * * *",
            ),
            (
                "STRATEGIST__POOLS__BRIEFING_GENERATOR__SCALE_METRIC",
                "schedule",
            ),
            (
                "STRATEGIST__POOLS__BRIEFING_GENERATOR__SCALE_THRESHOLD",
                "time_based",
            ),
            // 31 February: never.
            (
                "STRATEGIST__POOLS__BRIEFING_GENERATOR__SCALE_WINDOW",
                "0 0 31 2 *",
            ),
        ],
    );
    let mut doc = Value::Null;
    eventually(
        Duration::from_secs(20),
        "market-monitor at 3 workers",
        || {
            doc = metrics(&app);
            pool(&doc, "pools", "group", "market-monitor").is_some_and(|p| p["workers"] == 3)
        },
    );
    let s = pool(&doc, "scaling", "pool", "market-monitor").unwrap();
    assert_eq!(s["metric"], "schedule");
    assert_eq!(
        (s["min_workers"].as_u64(), s["max_workers"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(s["workers"], 3);
    assert_eq!(s["changes"], 1, "one step, not one per sample: {s}");
    let b = pool(&doc, "scaling", "pool", "briefing-generator").unwrap();
    assert_eq!(b["workers"], b["min_workers"], "{b}");
    assert_eq!(b["changes"], 0);
    assert!(
        app.proc.logs().contains("scaling pool"),
        "the change is logged"
    );

    let (status, text) = app.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("strategist_pool_scale_changes_total{group=\"market-monitor\"} 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("strategist_pool_workers{")
                && l.contains("group=\"market-monitor\"")
                && l.ends_with(" 3"))
    );
}

#[test]
fn a_bad_scale_setting_is_one_clear_error() {
    let r = redis();
    let mut p = App::spawn(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            (
                "STRATEGIST__POOLS__MARKET_MONITOR__SCALE_WINDOW",
                "every tuesday",
            ),
        ],
    );
    let status = p.wait(Duration::from_secs(20));
    assert!(!status.success());
    let logs = p.logs();
    assert!(
        logs.contains("pools.market-monitor: scale_window `every tuesday`"),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}
