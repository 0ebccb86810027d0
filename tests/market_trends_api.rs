//! The Google Trends API source against a local HTTP server standing in for
//! `trends.googleapis.com` (the designed answer shape of
//! `strategist::market::google_trends`): the key in its header and never in the
//! URL, the series stored with the scale the answer reports, an unchanged answer
//! not stored twice, a 429's Retry-After deferring every keyword of the key, on
//! SQLite and PostgreSQL; and the monitor's collection record for the source.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::server::{Answer, Seen, Server};
use common::*;
use serde_json::json;
use strategist::events::market::{DataSource, MarketDataCollectionStarted};
use strategist::market::MarketSettings;
use strategist::market::google_trends::{GoogleTrendsSettings, GoogleTrendsSource};
use strategist::market::monitor::Monitor;
use strategist::market::source::{Reach, Source};
use strategist::store::Store;
use strategist::store::market::Tracking;

const KEY: &str = "test-trends-key";

fn settings(server: &Server) -> MarketSettings {
    MarketSettings {
        request_timeout_ms: 5000,
        google_trends: GoogleTrendsSettings {
            api_key: KEY.into(),
            base_url: server.url("/v1alpha"),
            poll_interval_secs: 100,
            ..GoogleTrendsSettings::default()
        },
        ..MarketSettings::default()
    }
}

fn tracking(user: &str, keyword: &str) -> Tracking {
    Tracking {
        user_id: user.into(),
        keyword: keyword.into(),
        competitors: vec![],
        feeds: vec![],
        subreddits: vec![],
        created_at_ms: 0,
    }
}

/// Twelve weekly points ending last week, in the answer's shape.
fn weekly(term: &str, scale: &str, base: f64) -> Vec<u8> {
    let end = chrono::Utc::now().date_naive() - chrono::Days::new(7);
    let points: Vec<_> = (0..12u64)
        .map(|i| {
            let d = end - chrono::Days::new(7 * (11 - i));
            json!({"date": d.format("%Y-%m-%d").to_string(), "value": base + 10.0 * i as f64})
        })
        .collect();
    serde_json::to_vec(&json!({"term": term, "scale": scale, "points": points})).unwrap()
}

fn term(req: &Seen) -> String {
    let url = reqwest::Url::parse(&format!("http://x{}", req.path)).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "term")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The stand-in API (counting zig's requests by term: the URL's dates may change).
fn api() -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    let zig_asked = Arc::new(AtomicUsize::new(0));
    move |req, _| answer(req, &zig_asked)
}

fn answer(req: &Seen, zig_asked: &AtomicUsize) -> Answer {
    let json = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if req.headers.get("x-goog-api-key").map(String::as_str) != Some(KEY) {
        return (403, vec![], b"{\"error\":\"no key\"}".to_vec());
    }
    let term = term(req);
    let before = if term == "zig" {
        zig_asked.fetch_add(1, Ordering::SeqCst)
    } else {
        0
    };
    match (term.as_str(), before) {
        ("rust", _) => (200, json, weekly("rust", "CONSISTENT", 1000.0)),
        // The key's quota is spent: the first ask of zig is refused for 120 s.
        ("zig", 0) => (
            429,
            vec![("Retry-After".to_owned(), "120".to_owned())],
            vec![],
        ),
        ("zig", _) => (200, json, weekly("zig", "RELATIVE", 20.0)),
        _ => (404, vec![], vec![]),
    }
}

async fn collects_series_with_their_scale_and_waits_after_a_429(db: TestDb) {
    let server = Server::start(api());
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let src = GoogleTrendsSource::new(&settings(&server))
        .unwrap()
        .unwrap();
    assert_eq!(src.reach(), Reach::Available);
    let t = vec![
        tracking("u1", "rust"),
        tracking("u2", "zig"),
        tracking("u3", "rust"),
    ];
    let t0 = chrono::Utc::now().timestamp_millis();

    let run = src.collect(&store, &t, t0).await.unwrap();
    assert_eq!(
        (run.due, run.answered, run.failed, run.new_items),
        (2, 1, 1, 1),
        "{run:?}"
    );
    assert_eq!((run.entries, run.valid, run.fresh), (1, 1, 1));
    let asked = server.requests("/v1alpha/interestOverTime");
    assert_eq!(asked.len(), 2, "one request per keyword, not per user");
    for r in &asked {
        assert_eq!(r.headers["x-goog-api-key"], KEY);
        assert!(!r.path.contains(KEY), "the key is in the URL: {}", r.path);
        assert!(r.path.contains("granularity=week"), "{}", r.path);
    }
    let (s, points) = store.latest_series("rust").await.unwrap().unwrap();
    assert_eq!(
        (s.scale.as_str(), s.origin.as_str()),
        ("absolute", "google_trends_api")
    );
    assert_eq!(s.step_ms, 7 * 86_400_000);
    assert_eq!(points.len(), 12);
    assert_eq!(points[11].1, 1110.0);
    assert!(store.latest_series("zig").await.unwrap().is_none());
    let zig = store.source_state("trends:zig").await.unwrap().unwrap();
    assert_eq!(zig.next_poll_at_ms, t0 + 120_000);
    assert_eq!(zig.last_status, Some(429));

    // Within the Retry-After nothing is asked, not even rust (whose interval passed).
    let run = src.collect(&store, &t, t0 + 101_000).await.unwrap();
    assert_eq!((run.due, run.skipped), (0, 2));
    assert_eq!(server.requests("/v1alpha/").len(), 2);

    // After it: both asked; rust's answer is unchanged (no new series), zig's is
    // relative and kept so.
    let run = src.collect(&store, &t, t0 + 121_000).await.unwrap();
    assert_eq!(
        (run.due, run.answered, run.not_modified, run.new_items),
        (2, 2, 1, 1),
        "{run:?}"
    );
    assert_eq!(
        store
            .latest_series("rust")
            .await
            .unwrap()
            .unwrap()
            .0
            .series_id,
        s.series_id
    );
    let (z, _) = store.latest_series("zig").await.unwrap().unwrap();
    assert_eq!(z.scale, "relative");
    // And not again within the interval.
    let run = src.collect(&store, &t, t0 + 122_000).await.unwrap();
    assert_eq!((run.due, run.skipped), (0, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn trends_api_on_sqlite() {
    collects_series_with_their_scale_and_waits_after_a_429(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trends_api_on_postgres() {
    collects_series_with_their_scale_and_waits_after_a_429(TestDb::postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_runs_the_trends_api_only_with_a_key_and_records_the_run() {
    let server = Server::start(api());
    let r = redis();
    let db = TestDb::sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(r.url()).unwrap())
        .await
        .unwrap();
    let publisher = strategist_actors::Publisher::new(
        manager,
        strategist_actors::Keys::default(),
        Arc::new(strategist::events::catalog()),
    );
    let db_ = strategist::database::Db::ready(store.clone());
    let off = Monitor::new(db_.clone(), publisher.clone(), &MarketSettings::default()).unwrap();
    match off.reach(DataSource::GoogleTrends) {
        Reach::Off(why) => assert!(why.contains("api_key"), "{why}"),
        Reach::Available => panic!("available without a key"),
    }
    let on = Monitor::new(db_, publisher, &settings(&server)).unwrap();
    assert_eq!(on.reach(DataSource::GoogleTrends), Reach::Available);
    store.track(&tracking("u1", "rust")).await.unwrap();
    let record = on
        .collect(
            &store,
            &MarketDataCollectionStarted {
                collection_id: "c-1".into(),
                data_source: DataSource::GoogleTrends,
                keywords: vec![],
                user_ids: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(record.data_source, "google_trends");
    assert_eq!(record.records, 1);
    assert_eq!(record.quality, 1.0);
    // The new series is what the analysis job reads next.
    assert_eq!(
        store.series_keywords().await.unwrap(),
        vec!["rust".to_owned()]
    );
}
