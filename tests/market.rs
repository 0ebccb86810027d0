//! Market collection against local HTTP servers the tests start, serving
//! real-shaped answers (RSS 2.0, Atom, an HTML block page, 304, 429 with
//! Retry-After, Reddit listings with pagination and deleted authors), on SQLite
//! and PostgreSQL; and the market routes end to end through the binary (tracking,
//! a Trends CSV import, the trend on `market.events`).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::server::Server;
use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist::market::MarketSettings;
use strategist::market::feed::FeedSource;
use strategist::market::reddit::RedditSource;
use strategist::market::source::Source;
use strategist::store::Store;
use strategist::store::market::Tracking;

fn h(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

const ETAG: &str = "W/\"5e1f-Ab+/x\"";
const LAST_MODIFIED: &str = "Sun, 29 Nov 2026 10:00:00 GMT";

fn rss(now: chrono::DateTime<chrono::Utc>) -> String {
    let d = |h: i64| (now - chrono::Duration::hours(h)).to_rfc2822();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>Tech news</title><link>https://news.example/</link><description>d</description>
<item><title>Rust 2026 edition ships</title><link>https://news.example/rust-2026?utm_source=rss</link>
  <guid isPermaLink="false">news-1001</guid><pubDate>{}</pubDate><description>Acme Corp adopts it.</description></item>
<item><title>Go generics, three years on</title><link>https://news.example/go</link>
  <guid isPermaLink="false">news-1002</guid><pubDate>{}</pubDate></item>
<item><title>Old rust news</title><link>https://news.example/old#comments</link><pubDate>{}</pubDate></item>
<item><title></title><link>https://news.example/untitled</link></item>
</channel></rss>"#,
        d(2),
        d(5),
        d(24 * 30)
    )
}

fn atom(now: chrono::DateTime<chrono::Utc>) -> String {
    let d = |h: i64| (now - chrono::Duration::hours(h)).to_rfc3339();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:blog</id><updated>{}</updated>
<entry><title>Why we moved to Rust</title><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
  <link href="https://blog.example/moved"/><updated>{}</updated><summary>Globex was slower.</summary></entry>
<entry><title>Same story, syndicated</title><link href="https://news.example/old"/><updated>{}</updated></entry>
</feed>"#,
        d(1),
        d(1),
        d(3)
    )
}

const BLOCK_PAGE: &str = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>";

fn settings(interval: u64) -> MarketSettings {
    MarketSettings {
        poll_interval_secs: interval,
        request_timeout_ms: 5000,
        // The test servers are on 127.0.0.1.
        allow_private_feeds: true,
        ..MarketSettings::default()
    }
}

async fn store(db: &TestDb) -> Store {
    let s = Store::connect(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    s
}

fn tracking(user: &str, keyword: &str, feeds: Vec<String>) -> Tracking {
    Tracking {
        user_id: user.into(),
        keyword: keyword.into(),
        competitors: vec!["Acme Corp".into(), "Globex".into()],
        feeds,
        subreddits: vec![],
        created_at_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_are_polled_conditionally_once_per_interval_and_deduplicated() {
    for db in TestDb::both() {
        let now = chrono::Utc::now();
        let (rss_body, atom_body) = (rss(now), atom(now));
        let server = Server::start(move |req, before| match req.path.as_str() {
            "/rss.xml" => {
                let fresh = req.headers.get("if-none-match").map(String::as_str) == Some(ETAG);
                if before > 0 && fresh {
                    (304, vec![h("ETag", ETAG)], vec![])
                } else {
                    (
                        200,
                        vec![
                            h("Content-Type", "application/rss+xml; charset=utf-8"),
                            h("ETag", ETAG),
                            h("Last-Modified", LAST_MODIFIED),
                        ],
                        rss_body.clone().into_bytes(),
                    )
                }
            }
            // No validators: answered in full every time.
            "/atom.xml" => (
                200,
                vec![h("Content-Type", "application/atom+xml")],
                atom_body.clone().into_bytes(),
            ),
            _ => (404, vec![], vec![]),
        });
        let store = store(&db).await;
        let feeds = vec![server.url("/rss.xml"), server.url("/atom.xml")];
        let t = vec![tracking("u1", "rust", feeds)];
        let src = FeedSource::new(&settings(600)).unwrap();
        let t0 = now.timestamp_millis();

        let run = src.collect(&store, &t, t0).await.unwrap();
        assert_eq!(
            (run.due, run.answered, run.failed),
            (2, 2, 0),
            "{}",
            db.kind
        );
        // 4 RSS entries + 2 Atom; the untitled one is not stored; the Atom entry
        // linking https://news.example/old is the RSS item without a guid.
        assert_eq!(run.entries, 6);
        assert_eq!(run.new_items, 4, "{run:?}");
        assert_eq!(run.distinct, 4);
        let q = run.quality();
        assert_eq!(q.coverage, 1.0);
        assert!(
            q.uniqueness < 1.0 && q.validity < 1.0 && q.freshness < 1.0,
            "{q:?}"
        );

        let first = &server.requests("/rss.xml")[0];
        let ua = first.headers.get("user-agent").unwrap();
        assert!(
            ua.starts_with("strategist/") && ua.contains("market monitor"),
            "{ua}"
        );
        assert!(
            first
                .headers
                .get("accept-encoding")
                .unwrap()
                .contains("gzip")
        );
        assert!(!first.headers.contains_key("if-none-match"));

        // Within the interval nothing is asked.
        let again = src.collect(&store, &t, t0 + 1000).await.unwrap();
        assert_eq!((again.due, again.skipped), (0, 2));
        assert_eq!(server.requests("/").len(), 2);

        // After it: the validators go back exactly as received; 304 keeps them.
        let later = t0 + 601_000;
        let third = src.collect(&store, &t, later).await.unwrap();
        assert_eq!((third.answered, third.not_modified), (2, 1), "{third:?}");
        assert_eq!(third.new_items, 0, "the Atom feed again adds nothing");
        let cond = &server.requests("/rss.xml")[1];
        assert_eq!(cond.headers.get("if-none-match").unwrap(), ETAG);
        assert_eq!(
            cond.headers.get("if-modified-since").unwrap(),
            LAST_MODIFIED
        );
        let st = store
            .source_state(&format!("feed:{}", server.url("/rss.xml")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(st.etag.as_deref(), Some(ETAG));
        assert_eq!(st.last_modified.as_deref(), Some(LAST_MODIFIED));
        assert_eq!(st.next_poll_at_ms, later + 600_000);

        let items = store
            .items_since(&format!("feed:{}", server.url("/rss.xml")), 0, 100)
            .await
            .unwrap();
        let first_item = items
            .iter()
            .find(|i| i.title.starts_with("Rust 2026"))
            .unwrap();
        assert_eq!(first_item.keywords, vec!["rust"]);
        assert_eq!(first_item.competitors, vec!["Acme Corp"]);
        let atom_items = store
            .items_since(&format!("feed:{}", server.url("/atom.xml")), 0, 100)
            .await
            .unwrap();
        // The page both feeds carry is stored once, under whichever feed came first.
        let all: Vec<_> = items.iter().chain(&atom_items).collect();
        assert_eq!(all.len(), 4, "{all:?}");
        let shared: Vec<_> = all
            .iter()
            .filter(|i| i.item_key == "link|https://news.example/old")
            .collect();
        assert_eq!(shared.len(), 1);
        let moved = atom_items
            .iter()
            .find(|i| i.title.contains("moved"))
            .unwrap();
        assert_eq!(moved.competitors, vec!["Globex"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_blocked_and_html_feeds_collect_nothing_and_wait() {
    let db = TestDb::sqlite();
    let server = Server::start(|req, _| match req.path.as_str() {
        "/limited" => (429, vec![h("Retry-After", "3600")], b"slow down".to_vec()),
        "/blocked" => (403, vec![h("Content-Type", "text/html")], BLOCK_PAGE.into()),
        "/challenge" => (
            200,
            vec![h("Content-Type", "text/html; charset=utf-8")],
            BLOCK_PAGE.into(),
        ),
        _ => (404, vec![], vec![]),
    });
    let store = store(&db).await;
    let feeds = vec![
        server.url("/limited"),
        server.url("/blocked"),
        server.url("/challenge"),
    ];
    let t = vec![tracking("u1", "rust", feeds)];
    let src = FeedSource::new(&settings(60)).unwrap();
    let t0 = chrono::Utc::now().timestamp_millis();
    let run = src.collect(&store, &t, t0).await.unwrap();
    assert_eq!(
        (run.due, run.answered, run.failed, run.new_items),
        (3, 0, 3, 0)
    );
    assert_eq!(run.quality().coverage, 0.0);
    let state = |p: &str| {
        let id = format!("feed:{}", server.url(p));
        let store = store.clone();
        async move { store.source_state(&id).await.unwrap().unwrap() }
    };
    let limited = state("/limited").await;
    assert_eq!(limited.last_status, Some(429));
    assert_eq!(limited.next_poll_at_ms, t0 + 3_600_000);
    assert!(
        state("/challenge")
            .await
            .last_error
            .unwrap()
            .contains("HTML")
    );
    assert_eq!(
        state("/blocked").await.last_error.as_deref(),
        Some("HTTP 403")
    );

    // After the interval (60 s) the others are asked again; the 429 is not.
    let run = src.collect(&store, &t, t0 + 61_000).await.unwrap();
    assert_eq!((run.due, run.skipped), (2, 1));
    assert_eq!(server.requests("/limited").len(), 1);
    assert_eq!(server.requests("/challenge").len(), 2);

    // By default the server does not fetch its own network.
    let guarded = FeedSource::new(&MarketSettings::default()).unwrap();
    let t = vec![tracking("u2", "go", vec![server.url("/private")])];
    let run = guarded.collect(&store, &t, t0).await.unwrap();
    assert_eq!(run.failed, 1);
    assert!(server.requests("/private").is_empty());
    let st = state("/private").await;
    assert!(st.last_error.unwrap().contains("private"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzipped_latin1_rss_and_a_json_feed_are_read() {
    let db = TestDb::sqlite();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/market");
    let gz = std::fs::read(format!("{fixtures}/latin1.rss.gz")).unwrap();
    let jf = std::fs::read(format!("{fixtures}/feed.json")).unwrap();
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/z.rss"
            if req
                .headers
                .get("accept-encoding")
                .is_some_and(|v| v.contains("gzip")) =>
        {
            (
                200,
                vec![
                    h("Content-Type", "application/rss+xml"),
                    h("Content-Encoding", "gzip"),
                ],
                gz.clone(),
            )
        }
        "/feed.json" => (
            200,
            vec![h("Content-Type", "application/feed+json")],
            jf.clone(),
        ),
        _ => (406, vec![], vec![]),
    });
    let store = store(&db).await;
    let mut t = tracking(
        "u1",
        "rust",
        vec![server.url("/z.rss"), server.url("/feed.json")],
    );
    t.competitors = vec!["Initech".into()];
    let src = FeedSource::new(&settings(600)).unwrap();
    let run = src
        .collect(&store, &[t], chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    assert_eq!((run.answered, run.new_items), (2, 3), "{run:?}");
    let z = store
        .items_since(&format!("feed:{}", server.url("/z.rss")), 0, 10)
        .await
        .unwrap();
    assert_eq!(z[0].title, "Caf\u{e9} owners try Rust");
    assert_eq!(z[0].keywords, vec!["rust"]);
    let j = store
        .items_since(&format!("feed:{}", server.url("/feed.json")), 0, 10)
        .await
        .unwrap();
    let first = j.iter().find(|i| i.title == "Rust in JSON Feed").unwrap();
    assert_eq!(first.competitors, vec!["Initech"]);
    assert_eq!(first.link.as_deref(), Some("https://j.example/1"));
}

fn listing(posts: &[(&str, &str, &str, i64, i64)], after: Option<&str>) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp() as f64;
    let children: Vec<Value> = posts
        .iter()
        .map(|(name, title, author, score, comments)| {
            json!({"kind": "t3", "data": {
                "name": name, "id": &name[3..], "title": title, "author": author,
                "selftext": "", "permalink": format!("/r/rust/comments/{}/x/", &name[3..]),
                "created_utc": now - 3600.0, "score": score, "num_comments": comments,
                "subreddit": "rust", "author_fullname": if *author == "[deleted]" { Value::Null } else { json!("t2_x") }
            }})
        })
        .collect();
    json!({"kind": "Listing", "data": {"after": after, "dist": posts.len(), "children": children}})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn reddit_search_pages_by_after_and_obeys_the_rate_limit() {
    let db = TestDb::sqlite();
    let server = Server::start(|req, _| {
        if req.path.starts_with("/token") {
            return (
                200,
                vec![h("Content-Type", "application/json")],
                br#"{"access_token":"tok-1","token_type":"bearer","expires_in":86400,"scope":"*"}"#
                    .to_vec(),
            );
        }
        let json = vec![
            h("Content-Type", "application/json"),
            h("X-Ratelimit-Used", "1"),
            h("X-Ratelimit-Reset", "420"),
        ];
        if req.path.contains("after=t3_b") {
            let mut hs = json;
            // The last request of the window: nothing more until the reset.
            hs.push(h("X-Ratelimit-Remaining", "0"));
            (
                200,
                hs,
                listing(
                    &[("t3_c", "Rust or Go for Acme Corp?", "carol", 3, 1)],
                    None,
                ),
            )
        } else if req.path.starts_with("/r/rust/search") {
            let mut hs = json;
            hs.push(h("X-Ratelimit-Remaining", "99.0"));
            (
                200,
                hs,
                listing(
                    &[
                        ("t3_a", "Rust in production", "alice", 120, 40),
                        ("t3_b", "Deleted author asks about rust", "[deleted]", 0, 2),
                    ],
                    Some("t3_b"),
                ),
            )
        } else {
            (404, vec![], vec![])
        }
    });
    let mut s = settings(600);
    s.reddit.client_id = "cid".into();
    s.reddit.client_secret = "csecret".into();
    s.reddit.username = "strategist_bot".into();
    s.reddit.auth_url = server.url("/token");
    s.reddit.api_url = server.url("");
    let src = RedditSource::new(&s).unwrap().expect("configured");
    assert!(
        RedditSource::new(&settings(600)).unwrap().is_none(),
        "off without credentials"
    );
    let store = store(&db).await;
    let mut t = tracking("u1", "rust", vec![]);
    t.subreddits = vec!["rust".into(), "golang".into()];
    let t0 = chrono::Utc::now().timestamp_millis();
    let run = src.collect(&store, &[t.clone()], t0).await.unwrap();
    assert_eq!(run.new_items, 3, "{run:?}");
    // golang comes first (sorted) and fails with 404; rust pages twice then stops.
    let searches = server.requests("/r/");
    assert_eq!(searches.len(), 3, "{searches:?}");
    let rust: Vec<_> = searches
        .iter()
        .filter(|s| s.path.starts_with("/r/rust/"))
        .collect();
    assert!(rust[0].path.contains("restrict_sr=1") && rust[0].path.contains("q=rust"));
    assert!(!rust[0].path.contains("after="));
    assert!(rust[1].path.contains("after=t3_b"));
    assert_eq!(
        rust[0].headers.get("authorization").unwrap(),
        "Bearer tok-1"
    );
    let ua = rust[0].headers.get("user-agent").unwrap();
    assert!(
        ua.starts_with("server:strategist:") && ua.ends_with("(by /u/strategist_bot)"),
        "{ua}"
    );
    let token_req = &server.requests("/token")[0];
    assert!(
        token_req
            .headers
            .get("authorization")
            .unwrap()
            .starts_with("Basic ")
    );

    let items = store.items_since("reddit:rust:rust", 0, 10).await.unwrap();
    let deleted = items.iter().find(|i| i.item_key == "reddit|t3_b").unwrap();
    assert_eq!(deleted.community.as_deref(), Some("rust"));
    assert_eq!((deleted.score, deleted.comments), (Some(0), Some(2)));
    let c = items.iter().find(|i| i.item_key == "reddit|t3_c").unwrap();
    assert_eq!(c.competitors, vec!["Acme Corp"]);

    // Engagement: relative to the subreddit's trailing median (five ordinary
    // older posts, score 10 and 5 comments each).
    for i in 0..5 {
        let old = strategist::store::market::Item {
            item_key: format!("reddit|t3_old{i}"),
            source_id: "reddit:rust:rust".into(),
            title: "older".into(),
            link: None,
            published_at_ms: Some(t0 - 5 * 86_400_000),
            fetched_at_ms: t0 - 5 * 86_400_000,
            keywords: vec![],
            competitors: vec![],
            community: Some("rust".into()),
            score: Some(10),
            comments: Some(5),
        };
        store.save_item(&old).await.unwrap();
    }
    let e = strategist::market::monitor::engagement(
        &store,
        "rust",
        t0 - 2 * 3_600_000,
        t0 + 3_600_000,
        30,
    )
    .await
    .unwrap();
    let ln = |v: f64| (1.0 + v).ln();
    let want = ((ln(120.0) + ln(40.0)) + (ln(0.0) + ln(2.0)) + (ln(3.0) + ln(1.0)))
        / 3.0
        / (ln(10.0) + ln(5.0));
    assert!((e["rust"] - want).abs() < 1e-9, "{e:?} vs {want}");
    let activity = store
        .competitor_activity(&["Acme Corp".into(), "Globex".into()], t0, t0 + 1)
        .await
        .unwrap();
    assert_eq!(activity["Acme Corp"], 1);
    assert_eq!(activity["Globex"], 0);

    // Remaining hit 0 with a reset of 420 s: even past the interval (600 s would
    // not have passed anyway), nothing is asked before the reset.
    let before = server.requests("/r/").len();
    let run = src
        .collect(&store, &[t.clone()], t0 + 60_000)
        .await
        .unwrap();
    assert_eq!(run.due, 0);
    assert_eq!(server.requests("/r/").len(), before);
    let run = src.collect(&store, &[t], t0 + 601_000).await.unwrap();
    assert_eq!(run.due, 2, "{run:?}");
}

const SECRET: &str = "market-test-secret";

fn token(user: &str) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, false, Duration::from_secs(3600))
        .unwrap()
}

fn call(app: &App, method: &str, path: &str, tok: &str, body: Option<&Value>) -> Reply {
    let auth = format!("Bearer {tok}");
    let body = body.map(|b| b.to_string());
    http(
        app.port,
        method,
        path,
        &[("Authorization", auth.as_str())],
        body.as_deref(),
    )
}

fn post_csv(app: &App, tok: &str, csv: &str) -> Reply {
    use std::net::TcpStream;
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    write!(
        s,
        "POST /api/v1/market/series HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{csv}",
        csv.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Reply {
        status,
        headers: vec![],
        body,
    }
}

fn market_events(c: &mut redis::Connection, event_type: &str) -> Vec<Value> {
    entries(c, "market.events")
        .into_iter()
        .filter(|f| f.get("type").map(String::as_str) == Some(event_type))
        .map(|f| {
            json!({
                "id": f.get("id").cloned().unwrap_or_default(),
                "data": serde_json::from_str::<Value>(f.get("data").map(String::as_str).unwrap_or("null")).unwrap(),
            })
        })
        .collect()
}

fn trends_csv(rising: bool) -> String {
    let mut s = String::from("Category: All categories\n\nWeek,Rust: (Worldwide)\n");
    let start = chrono::NaiveDate::from_ymd_opt(2025, 12, 7).unwrap();
    for i in 0..52 {
        let d = start + chrono::Duration::weeks(i);
        let v = if rising {
            30 + i * 13 / 10 + (i * 7 % 5)
        } else {
            50 + (i * 7 % 5)
        };
        s.push_str(&format!("{d},{}\n", v.min(100)));
    }
    s
}

#[test]
fn tracking_collection_import_and_trends_through_the_api() {
    let redis = redis();
    let now = chrono::Utc::now();
    let rss_body = rss(now);
    let feeds = Server::start(move |_, _| {
        (
            200,
            vec![h("Content-Type", "application/rss+xml")],
            rss_body.clone().into_bytes(),
        )
    });
    let app = App::serve(
        &redis.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", SECRET),
            ("STRATEGIST__MARKET__ALLOW_PRIVATE_FEEDS", "true"),
        ],
    );
    let (alice, bob) = (token("alice"), token("bob"));

    // Validation: 4xx JSON, naming the field.
    for (body, field) in [
        (json!({"keyword": ""}), "keyword"),
        (
            json!({"keyword": "rust", "feeds": ["ftp://x/y"]}),
            "feeds[0]",
        ),
        (
            json!({"keyword": "rust", "subreddits": ["r/has space"]}),
            "subreddits[0]",
        ),
        (json!({"keyword": "rust", "unknown": 1}), "unknown"),
    ] {
        let r = call(&app, "POST", "/api/v1/market/keywords", &alice, Some(&body));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            r.body
        );
    }
    let r = http(app.port, "GET", "/api/v1/market/keywords", &[], None);
    assert_eq!(r.status, 401);
    let (_, doc) = app.get("/api/openapi.json");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for (method, path) in [
        ("post", "/api/v1/market/keywords"),
        ("get", "/api/v1/market/keywords"),
        ("delete", "/api/v1/market/keywords/{keyword}"),
        ("post", "/api/v1/market/series"),
        ("get", "/api/v1/market/trends"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(!op["responses"]["401"].is_null(), "{method} {path}: {op}");
    }

    let body = json!({"keyword": " Rust ", "competitors": ["Acme Corp"], "feeds": [feeds.url("/rss.xml")]});
    let r = call(&app, "POST", "/api/v1/market/keywords", &alice, Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let collection_id = r.json()["collection_id"].as_str().unwrap().to_owned();
    let r = call(&app, "POST", "/api/v1/market/keywords", &alice, Some(&body));
    assert_eq!(r.status, 200, "again: updated, {}", r.body);
    let r = call(&app, "GET", "/api/v1/market/keywords", &alice, None);
    assert_eq!(r.json()["keywords"][0]["keyword"], "rust");
    let r = call(&app, "GET", "/api/v1/market/keywords", &bob, None);
    assert_eq!(
        r.json()["keywords"].as_array().unwrap().len(),
        0,
        "only one's own"
    );

    // The collection the tracking started answers market.data.collected.
    let mut c = conn(&redis);
    let mut collected = Vec::new();
    eventually(Duration::from_secs(30), "market.data.collected", || {
        collected = market_events(&mut c, "market.data.collected");
        collected
            .iter()
            .any(|e| e["data"]["collection_id"] == collection_id.as_str())
    });
    let done = collected
        .iter()
        .find(|e| e["data"]["collection_id"] == collection_id.as_str())
        .unwrap();
    assert_eq!(done["data"]["records_collected"], 3, "{done}");
    let q = done["data"]["data_quality_score"].as_f64().unwrap();
    assert!(q > 0.5 && q < 1.0, "{q}");
    assert!(done["data"]["collection_time_ms"].as_f64().unwrap() > 0.0);

    // A Trends export: bob may not import a keyword he does not track.
    let r = post_csv(&app, &bob, &trends_csv(true));
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post_csv(&app, &alice, "<html>blocked</html>");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post_csv(&app, &alice, &trends_csv(true));
    assert_eq!(r.status, 201, "{}", r.body);
    let s: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(s["series"][0]["scale"], "relative");
    assert_eq!(s["series"][0]["trend"]["direction"], "rising", "{s}");

    let r = call(
        &app,
        "GET",
        "/api/v1/market/trends?keyword=rust",
        &alice,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = &r.json()["trends"][0];
    assert_eq!(t["direction"], "rising");
    assert!(t["confidence"].as_f64().unwrap() > 0.95);
    assert_eq!(t["analysis"]["points"].as_array().unwrap().len(), 52);
    assert!(t["analysis"]["p_value"].as_f64().unwrap() < 0.05);
    let r = call(
        &app,
        "GET",
        "/api/v1/market/trends?keyword=nothing",
        &alice,
        None,
    );
    assert_eq!(r.status, 404);

    let detected = market_events(&mut c, "market.trend.detected");
    assert_eq!(detected.len(), 1, "{detected:?}");
    assert_eq!(detected[0]["data"]["affected_users"], json!(["alice"]));
    assert_eq!(detected[0]["data"]["trend_type"], "rising");
    assert_eq!(detected[0]["id"], t["trend_id"]);

    // The same direction again is not a new trend; a flat export is a change.
    assert_eq!(post_csv(&app, &alice, &trends_csv(true)).status, 201);
    assert_eq!(market_events(&mut c, "market.trend.detected").len(), 1);
    assert_eq!(post_csv(&app, &alice, &trends_csv(false)).status, 201);
    let detected = market_events(&mut c, "market.trend.detected");
    assert_eq!(detected.len(), 2);
    assert_eq!(detected[1]["data"]["trend_type"], "stable");

    // A consultation naming the keyword references the caller's latest trend of
    // it; someone who does not track it references nothing.
    let latest = detected[1]["id"].clone();
    let ask = json!({"contextual_core_id": "core-1", "query": "Should we bet on Rust next year?", "session_type": "strategic_advice"});
    let r = call(&app, "POST", "/api/v1/consultations", &alice, Some(&ask));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["market_data_referenced"],
        json!([latest]),
        "{}",
        r.body
    );
    let r = call(&app, "POST", "/api/v1/consultations", &bob, Some(&ask));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["market_data_referenced"], json!([]));

    // JSON import, with a gap: refused, naming why.
    let gap = json!({"keyword": "rust", "points": [
        {"t": "2026-01-01", "value": 1}, {"t": "2026-01-02", "value": 2}, {"t": "2026-01-04", "value": 3}]});
    let r = call(&app, "POST", "/api/v1/market/series", &alice, Some(&gap));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("equally spaced"), "{}", r.body);

    let r = call(&app, "DELETE", "/api/v1/market/keywords/rust", &alice, None);
    assert_eq!(r.status, 204);
    let r = call(&app, "DELETE", "/api/v1/market/keywords/rust", &alice, None);
    assert_eq!(r.status, 404);
}

/// Benchmark (ignored by default): feeds polled per minute with conditional GETs
/// against a local server where 9 feeds in 10 answer 304.
/// `cargo test --release --test market -- --ignored --nocapture bench_`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_conditional_polls_per_minute() {
    let db = TestDb::sqlite();
    let now = chrono::Utc::now();
    let body = rss(now);
    let server = Server::start(move |req, before| {
        let n: usize = req.path.trim_start_matches("/f/").parse().unwrap_or(0);
        if before > 0 && !n.is_multiple_of(10) && req.headers.contains_key("if-none-match") {
            (304, vec![h("ETag", ETAG)], vec![])
        } else {
            (
                200,
                vec![h("Content-Type", "application/rss+xml"), h("ETag", ETAG)],
                body.clone().into_bytes(),
            )
        }
    });
    let store = store(&db).await;
    let feeds: Vec<String> = (0..500).map(|i| server.url(&format!("/f/{i}"))).collect();
    let t = vec![tracking("u1", "rust", feeds)];
    let src = FeedSource::new(&settings(1)).unwrap();
    let t0 = now.timestamp_millis();
    src.collect(&store, &t, t0).await.unwrap();
    let start = std::time::Instant::now();
    let mut polled = 0;
    for round in 1..=3 {
        let run = src.collect(&store, &t, t0 + round * 2000).await.unwrap();
        assert_eq!(run.not_modified, 450, "{run:?}");
        polled += run.due;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "feed polling: {polled} conditional polls (90 % 304) in {secs:.2} s = {:.0} polls/minute, at most 8 at a time",
        polled as f64 / secs * 60.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jobs_start_what_can_run_and_analyse_each_series_once() {
    use strategist::events::market::{DataSource, MarketDataCollectionStarted};
    use strategist::market::jobs::{AnalyzeJob, CollectJob};
    use strategist::market::monitor::Monitor;
    use strategist::market::source::Reach;
    use strategist::scheduler::job::Job;
    use strategist::store::market::Series;

    let r = redis();
    let db = TestDb::sqlite();
    let store = store(&db).await;
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(r.url()).unwrap())
        .await
        .unwrap();
    let publisher = strategist_actors::Publisher::new(
        manager,
        strategist_actors::Keys::default(),
        Arc::new(strategist::events::catalog()),
    );
    let monitor = Arc::new(
        Monitor::new(
            strategist::database::Db::ready(store.clone()),
            publisher,
            &settings(600),
        )
        .unwrap(),
    );
    assert!(matches!(monitor.reach(DataSource::Reddit), Reach::Off(_)));
    assert!(
        matches!(monitor.reach(DataSource::GoogleTrends), Reach::Off(why) if why.contains("api_key")),
        "the Trends API is off without a key, and says so"
    );
    let mut c = conn(&r);

    // Nothing tracked: nothing started.
    let at = chrono::Utc::now();
    let out = CollectJob(monitor.clone()).run(at).await.unwrap();
    assert_eq!(out.counts["collections_started"], 0);

    store
        .track(&tracking(
            "u1",
            "rust",
            vec!["http://127.0.0.1:9/feed".into()],
        ))
        .await
        .unwrap();
    let mut reddit_only = tracking("u2", "go", vec![]);
    reddit_only.subreddits = vec!["golang".into()];
    store.track(&reddit_only).await.unwrap();
    let out = CollectJob(monitor.clone()).run(at).await.unwrap();
    // Feeds only: Reddit has no credentials.
    assert_eq!(out.counts["collections_started"], 1, "{out:?}");
    let started = market_events(&mut c, "market.data.collection.started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["data"]["data_source"], "rss_feeds");
    assert_eq!(started[0]["data"]["user_ids"], json!(["u1", "u2"]));

    // A source that cannot run covers nothing.
    let none = monitor
        .collect(
            &store,
            &MarketDataCollectionStarted {
                collection_id: "c-trends".into(),
                data_source: DataSource::GoogleTrends,
                keywords: vec![],
                user_ids: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!((none.records, none.quality), (0, 0.0));

    let series = |id: &str, keyword: &str, n: i64, slope: f64| {
        let s = Series {
            series_id: id.into(),
            keyword: keyword.into(),
            origin: "json".into(),
            scale: "absolute".into(),
            step_ms: 86_400_000,
            created_at_ms: 1,
        };
        let pts: Vec<(i64, f64)> = (0..n)
            .map(|i| {
                (
                    i * 86_400_000,
                    100.0 + slope * i as f64 + ((i * 7) % 5) as f64,
                )
            })
            .collect();
        (s, pts)
    };
    let (s1, p1) = series("s-rust", "rust", 90, 1.5);
    store.save_series(&s1, &p1).await.unwrap();
    let (s2, p2) = series("s-go", "go", 5, 1.0);
    store.save_series(&s2, &p2).await.unwrap();
    let job = AnalyzeJob(monitor.clone());
    let out = job.run(at).await.unwrap();
    assert_eq!(
        out.counts["series_analysed"], 1,
        "the 5-point series is too short"
    );
    assert_eq!(out.counts["trends_published"], 1);
    let out = job.run(at).await.unwrap();
    assert_eq!(
        (
            out.counts["series_analysed"],
            out.counts["trends_published"]
        ),
        (0, 0),
        "a series is analysed once"
    );
    let detected = market_events(&mut c, "market.trend.detected");
    assert_eq!(detected.len(), 1);
    assert_eq!(detected[0]["data"]["keywords"], json!(["rust"]));
    assert_eq!(detected[0]["data"]["affected_users"], json!(["u1"]));
    assert_eq!(detected[0]["data"]["trend_data"]["series_id"], "s-rust");
}
