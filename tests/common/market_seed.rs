//! Market rows for the briefing tests (tests/briefings.rs, tests/page.rs): two
//! users' tracking, trends and items inside last UTC week, before it and after it.

use chrono::{DateTime, Utc};
use serde_json::json;

/// Last UTC calendar week, Monday 00:00 to Monday 00:00: the period of a weekly
/// briefing in UTC run now.
pub fn last_week() -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::{Datelike, Duration as D, TimeZone};
    let now = Utc::now();
    let today = Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap());
    let end = today - D::days(i64::from(now.weekday().num_days_from_monday()));
    (end - D::days(7), end)
}

/// Market rows for two users: alice tracks `rust` (competitor Acme), bob tracks
/// `golang` (competitor Globex); trends and items inside last UTC week, before it
/// and after it. Returns the week [start, end).
pub async fn seed_market(store: &strategist::store::Store) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::Duration as D;
    use strategist::store::market::{Item, Tracking, TrendRow};
    let now = Utc::now();
    let (start, end) = last_week();
    let inside = (start + D::days(3)).timestamp_millis();
    let before = (start - D::days(3)).timestamp_millis();
    let after = now.timestamp_millis();
    for (user, keyword, competitor) in [("alice", "rust", "acme"), ("bob", "golang", "globex")] {
        store
            .track(&Tracking {
                user_id: user.into(),
                keyword: keyword.into(),
                competitors: vec![competitor.into()],
                feeds: vec![],
                subreddits: vec![],
                created_at_ms: before,
            })
            .await
            .unwrap();
    }
    for (id, keyword, direction, confidence, at) in [
        ("t1", "rust", "declining", 0.99, before),
        ("t2", "rust", "rising", 0.97, inside),
        ("t3", "rust", "stable", 0.5, after),
        ("t4", "golang", "rising", 0.9, inside),
    ] {
        store
            .save_trend(&TrendRow {
                trend_id: id.into(),
                keyword: keyword.into(),
                series_id: format!("s-{id}"),
                direction: direction.into(),
                confidence,
                analysis: json!({}),
                created_at_ms: at,
            })
            .await
            .unwrap();
    }
    let item = |key: &str, title: &str, kw: &str, comp: Option<&str>, score: i64, at: i64| Item {
        item_key: key.into(),
        source_id: "feed:https://news.example/rss".into(),
        title: title.into(),
        link: Some(format!("https://news.example/{key}")),
        published_at_ms: Some(at),
        fetched_at_ms: at + 3_600_000,
        keywords: vec![kw.into()],
        competitors: comp.map(|c| vec![c.to_owned()]).unwrap_or_default(),
        community: None,
        score: Some(score),
        comments: Some(0),
    };
    for i in [
        item("rust-2", "Rust 2.0 ships", "rust", None, 15, inside),
        item(
            "acme-tools",
            "Acme launches Rust tools",
            "rust",
            Some("acme"),
            0,
            inside + 1000,
        ),
        item(
            "go-news",
            "Golang news from Globex",
            "golang",
            Some("globex"),
            99,
            inside,
        ),
        item(
            "rust-old",
            "An old Rust story",
            "rust",
            Some("acme"),
            50,
            before,
        ),
        item(
            "rust-new",
            "A Rust story of this week",
            "rust",
            None,
            50,
            after,
        ),
    ] {
        store.save_item(&i).await.unwrap();
    }
    (start, end)
}
