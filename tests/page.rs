//! The web page: `GET /` and its assets as a browser gets them (types, caching,
//! CSP, no token needed), and the page itself in Debian's `chromium`, driven by
//! `playwright-core` with `axe-core` inside the page (`tests/browser/page.test.mjs`).
//!
//! The browser cases need `/usr/bin/chromium`, `node` and `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`). Without them a case prints one line saying
//! why and passes, so `cargo test` works on a machine without a browser; with `CI`
//! set it fails instead (`.ci/run` installs them).
//!
//! `a_briefing_from_collected_market_data_...` runs a briefing end to end: a feed
//! the test serves is collected, the signed-in page asks for weekly briefings, and
//! the `briefing_ready` notification opens the briefing with the trend and links.
//!
//! `the_page_shows_a_notification_published_from_outside_as_it_arrives` needs the
//! notifications routes and `/ws` (the `notify` branch): without them it fails,
//! saying so, rather than skipping.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;
use strategist::auth::Tokens;

const SECRET: &str = "page-test-secret";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The user the browser signs in as.
const USER: &str = "alice";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether chromium, node and the npm packages are here. Without them: fails
/// under CI, else prints why and the caller returns.
fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("node (apt-get install nodejs npm)".into());
    }
    for pkg in ["playwright-core", "axe-core"] {
        if !browser_dir().join("node_modules").join(pkg).exists() {
            missing.push(format!(
                "tests/browser/node_modules/{pkg} (npm ci --prefix tests/browser)"
            ));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("the browser test needs {}", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "under CI {why}");
    eprintln!("skipped: {why}");
    false
}

/// The app with its Redis, and tokens for it.
struct Served {
    app: App,
    redis: LocalRedis,
    user: String,
    admin: String,
}

fn serve() -> Served {
    serve_with(&[])
}

/// As [`serve`], with more environment.
fn serve_with(env: &[(&str, &str)]) -> Served {
    let redis = redis();
    let mut all = vec![("STRATEGIST_AUTH_SECRET", SECRET)];
    all.extend_from_slice(env);
    let app = App::serve(&redis.url(), &all);
    let tokens = Tokens::new(SECRET).unwrap();
    let hour = Duration::from_secs(3600);
    Served {
        app,
        redis,
        user: tokens.mint(USER, false, hour).unwrap(),
        admin: tokens.mint("root", true, hour).unwrap(),
    }
}

impl Served {
    fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        http(
            self.app.port,
            "GET",
            path,
            &[("Authorization", &auth)],
            None,
        )
    }

    /// Runs the browser script with `cases`; its output. Panics with the output
    /// (and the server's log) when a step failed.
    fn browser(&self, cases: &str) -> String {
        let mut cmd = Command::new("node");
        cmd.arg("page.test.mjs")
            .current_dir(browser_dir())
            .env("PAGE_URL", format!("http://127.0.0.1:{}", self.app.port))
            .env("USER_TOKEN", &self.user)
            .env("USER_ID", USER)
            .env("ADMIN_TOKEN", &self.admin)
            .env("CASES", cases)
            .env("CHROMIUM", CHROMIUM);
        let mut p = Proc::spawn(cmd);
        let status = p.wait(Duration::from_secs(300));
        let out = p.logs();
        assert!(
            status.success() && out.contains(" 0 failed"),
            "the browser test failed ({status}):\n{out}\n--- server log (tail) ---\n{}",
            tail(&self.app.proc.logs(), 40)
        );
        println!("{out}");
        out
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn the_page_and_its_assets_load_without_a_token_with_types_caching_and_a_strict_csp() {
    let redis = redis();
    let app = App::serve(&redis.url(), &[("STRATEGIST_AUTH_SECRET", SECRET)]);
    let index = http(app.port, "GET", "/", &[], None);
    assert_eq!(index.status, 200, "{}", index.body);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        index
            .body
            .contains(r#"<script type="module" src="/assets/app.js">"#)
    );
    assert!(index.body.contains(r#"<label for="token">"#));
    let csp = index.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(!csp.contains("http"), "no other host: {csp}");
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    let etag = index.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");

    // The browser's copy is still good: 304, no body; a stale one gets the file.
    let again = http(app.port, "GET", "/", &[("If-None-Match", &etag)], None);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = http(app.port, "GET", "/", &[("If-None-Match", "\"old\"")], None);
    assert_eq!(stale.status, 200);

    let mut tags = vec![etag];
    for (name, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("notifications.js", "text/javascript; charset=utf-8"),
        ("admin.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = http(app.port, "GET", &format!("/assets/{name}"), &[], None);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.header("content-type"), Some(ty), "{name}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{name}");
        assert!(r.header("content-security-policy").is_some(), "{name}");
        assert!(!r.body.is_empty(), "{name}");
        tags.push(r.header("etag").unwrap().to_owned());
    }
    let n = tags.len();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), n, "one ETag per file");
    // Nothing is loaded from another host.
    for name in ["index.html", "app.js", "admin.js", "notifications.js"] {
        let path = if name == "index.html" {
            "/".to_owned()
        } else {
            format!("/assets/{name}")
        };
        let body = http(app.port, "GET", &path, &[], None).body;
        assert!(!body.contains("https://"), "{name} names another host");
    }

    for path in [
        "/assets/nope.js",
        "/assets/index.html",
        "/assets/..%2FCargo.toml",
    ] {
        let r = http(app.port, "GET", path, &[], None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "not_found", "{path}");
    }
    let doc: Value = serde_json::from_str(&app.get("/api/openapi.json").1).unwrap();
    assert!(!doc["paths"]["/"]["get"].is_null(), "GET / not documented");
}

/// Dead letters of two types on two streams, in the table before the browser looks.
fn seed_dead_letters(s: &Served) {
    let mut c = conn(&s.redis);
    for _ in 0..2 {
        xadd_event(
            &mut c,
            "contextual.events",
            "file.uploaded",
            r#"{"file_id":"f1","file_size":"big"}"#,
        );
    }
    xadd_event(
        &mut c,
        "ai.events",
        "ai.content.generation.requested",
        r#"{"prompt":5}"#,
    );
    let mut last = Value::Null;
    eventually(
        Duration::from_secs(30),
        "dead letters of both types in the table",
        || {
            last = s.get("/api/v1/dlq?status=open", &s.admin).json();
            let types: Vec<&str> = last["dead_letters"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d["type"].as_str()).collect())
                .unwrap_or_default();
            types.contains(&"file.uploaded") && types.contains(&"ai.content.generation.requested")
        },
    );
}

#[test]
fn a_user_and_an_admin_use_the_page_in_chromium_and_the_admin_reprocesses_a_dead_letter() {
    if !browser_available() {
        return;
    }
    let s = serve();
    seed_dead_letters(&s);
    let out = s.browser("admin");
    for step in [
        "ok - admin: a user signs in and sees notifications but no admin views",
        "ok - admin: an admin signs in and sees the streams table",
        "ok - admin: dead letters: the filters show only the chosen type",
        "ok - admin: reprocessing one (with the keyboard) takes it off the open list",
        "ok - admin: axe on the admin views",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
    // The click reached the server: one file.uploaded dead letter is reprocessed.
    let v = s.get("/api/v1/dlq?status=reprocessed", &s.admin).json();
    let rows = v["dead_letters"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["type"], "file.uploaded");
}

/// Needs the `notify` branch (notifications routes and `/ws`): fails, saying so,
/// until it is merged.
#[test]
fn the_page_shows_a_notification_published_from_outside_as_it_arrives() {
    if !browser_available() {
        return;
    }
    let s = serve();
    let list = s.get("/api/v1/notifications?limit=1", &s.user);
    assert_ne!(
        list.status, 404,
        "GET /api/v1/notifications is not in this build: this case needs the notifications \
         routes and /ws (the `notify` branch) merged: {}",
        list.body
    );
    let ws = http(s.app.port, "GET", "/ws", &[], None);
    assert_ne!(
        ws.status, 404,
        "GET /ws is not in this build: this case needs the `notify` branch merged"
    );
    let out = s.browser("notify");
    for step in [
        "ok - notify: a user signs in and the page goes live over /ws",
        "ok - notify: a notification published from outside appears, announced, with its link",
        "ok - notify: a dropped socket reconnects after a backoff and resumes: what came meanwhile arrives once",
        "ok - notify: mark as read is kept by the server across a reload",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
}

/// Two entries of last week naming `rust`, one also naming Acme, as RSS 2.0.
fn last_weeks_rss() -> String {
    let (start, _) = common::market_seed::last_week();
    let day = |d: i64| (start + chrono::Duration::days(d)).to_rfc2822();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>News</title><link>https://news.example/</link>
<description>News</description>
<item><title>Rust 2.0 ships</title><link>https://news.example/rust-2</link>
<guid>https://news.example/rust-2</guid><pubDate>{}</pubDate>
<description>The Rust release of the year.</description></item>
<item><title>Acme launches Rust tools</title><link>https://news.example/acme-tools</link>
<guid>https://news.example/acme-tools</guid><pubDate>{}</pubDate>
<description>Acme enters the market.</description></item>
</channel></rss>"#,
        day(2),
        day(3)
    )
}

/// A briefing end to end: the user tracks `rust` (competitor Acme) with a feed the
/// test serves; the first collection stores its entries; a trend of last week is in
/// the trends table (analysis stamps the time it runs, so it is written directly);
/// the browser, signed in as the user, sets the weekly schedule; the scheduler
/// (every second here) schedules the briefing, the generator writes it from the
/// stored rows, the `briefing_ready` notification arrives live, and its link opens
/// the briefing with the trend and an item's link.
#[test]
fn a_briefing_from_collected_market_data_arrives_in_the_page_and_opens_with_the_trend() {
    if !browser_available() {
        return;
    }
    let started = std::time::Instant::now();
    let rss = last_weeks_rss();
    let feed = common::server::Server::start(move |req, _| {
        if req.path == "/rss" {
            let ty = ("Content-Type".to_owned(), "application/rss+xml".to_owned());
            (200, vec![ty], rss.clone().into_bytes())
        } else {
            (404, vec![], vec![])
        }
    });
    let db = TestDb::sqlite();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(strategist::store::Store::connect(&db.url))
        .unwrap();
    rt.block_on(store.migrate()).unwrap();
    let (start, end) = common::market_seed::last_week();
    rt.block_on(store.save_trend(&strategist::store::market::TrendRow {
        trend_id: "trend-rust".into(),
        keyword: "rust".into(),
        series_id: "series-rust".into(),
        direction: "rising".into(),
        confidence: 0.97,
        analysis: serde_json::json!({}),
        created_at_ms: (start + chrono::Duration::days(4)).timestamp_millis(),
    }))
    .unwrap();
    let every_second = "* * * * * *";
    let s = serve_with(&[
        ("DATABASE_URL", db.url.as_str()),
        ("STRATEGIST__MARKET__ALLOW_PRIVATE_FEEDS", "true"),
        ("STRATEGIST__SCHEDULER__TICK_MS", "100"),
        ("STRATEGIST__SCHEDULER__JOBS__BRIEFINGS__CRON", every_second),
        ("STRATEGIST__BRIEFINGS__WEEKLY_CRON", every_second),
    ]);
    let auth = format!("Bearer {}", s.user);
    let body = serde_json::json!({
        "keyword": "rust",
        "competitors": ["Acme"],
        "feeds": [feed.url("/rss")],
    })
    .to_string();
    let r = http(
        s.app.port,
        "POST",
        "/api/v1/market/keywords",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut seen = Default::default();
    eventually(
        Duration::from_secs(20),
        "the feed's entries collected",
        || {
            seen = rt
                .block_on(strategist::market::briefing_data::StoredMarketData::read(
                    &store, USER, start, end,
                ))
                .unwrap();
            seen.items.len() == 2
        },
    );
    assert_eq!(seen.competitor_moves.len(), 1, "{seen:?}");
    assert_eq!(seen.trends.len(), 1, "{seen:?}");

    let out = s.browser("briefing");
    for step in [
        "ok - briefing: a user signs in and the page goes live over /ws",
        "ok - briefing: the user asks for weekly briefings",
        "ok - briefing: the briefing_ready notification appears with its link",
        "ok - briefing: the link opens the briefing with the trend and an item's link",
        "ok - briefing: axe with the briefing shown",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
    println!(
        "briefing from collection to the browser: {:?}",
        started.elapsed()
    );
    // What the page showed is what was stored: one briefing, from the collected rows.
    let stored = rt.block_on(store.briefings_of(USER, 10)).unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].content.contains("\"rising\""),
        "{}",
        stored[0].content
    );
    assert!(
        stored[0]
            .content
            .contains("https://news.example/acme-tools")
    );
}
