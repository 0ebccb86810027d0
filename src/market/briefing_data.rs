//! What briefings read of the market tables: [`StoredMarketData`] implements the
//! briefing generator's [`MarketData`] over what collection and trend analysis
//! stored, for one user's tracked keywords and competitors and one period.
//!
//! - trends: per tracked keyword, the latest analysis made in the period; most
//!   confident first;
//! - competitor moves: items dated in the period naming a competitor the user
//!   tracks, one per (item, competitor), newest first, with their links;
//! - notable items: items dated in the period mentioning a tracked keyword and
//!   having a link, best engagement first (Reddit score plus comments; feed items
//!   count 0), then newest.
//!
//! Invariant: a snapshot holds only the user's own terms and the period's rows;
//! another user's keywords never leak into it, even when both users' items share a
//! table.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::briefings::market::{CompetitorMove, Item, MarketData, Snapshot, Trend};
use crate::database::Db;
use crate::store::market::Item as StoredItem;
use crate::store::{Store, StoreError};

/// Items read per snapshot before ranking (the newest collected).
const SCAN: u64 = 500;
/// Competitor moves and notable items kept in a snapshot.
const KEEP: usize = 10;

/// Briefings' market data from the database.
#[derive(Clone)]
pub struct StoredMarketData {
    db: Db,
}

impl StoredMarketData {
    /// Reads `db`.
    pub fn new(db: Db) -> Self {
        StoredMarketData { db }
    }

    /// The snapshot of `user_id` for [`start`, `end`) read from `store`.
    pub async fn read(
        store: &Store,
        user_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Snapshot, StoreError> {
        let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
        let tracked = store.tracked(user_id).await?;
        let keywords: Vec<String> = tracked.iter().map(|t| t.keyword.clone()).collect();
        let competitors: Vec<String> = tracked
            .iter()
            .flat_map(|t| t.competitors.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut trends = Vec::new();
        for k in &keywords {
            if let Some(t) = store.trend_in_period(k, start_ms, end_ms).await? {
                trends.push(Trend {
                    keyword: t.keyword,
                    direction: t.direction,
                    confidence: t.confidence,
                });
            }
        }
        trends.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| a.keyword.cmp(&b.keyword))
        });
        let items = store
            .items_in_period(&keywords, &competitors, start_ms, end_ms, SCAN)
            .await?;
        Ok(Snapshot {
            trends,
            competitor_moves: competitor_moves(&items, &competitors),
            items: notable(&items, &keywords),
        })
    }
}

fn dated(i: &StoredItem) -> i64 {
    i.published_at_ms.unwrap_or(i.fetched_at_ms)
}

/// One move per (item, tracked competitor it names), newest first.
fn competitor_moves(items: &[StoredItem], competitors: &[String]) -> Vec<CompetitorMove> {
    let mut named: Vec<(&StoredItem, &String)> = items
        .iter()
        .flat_map(|i| {
            i.competitors
                .iter()
                .filter(|c| competitors.contains(c))
                .map(move |c| (i, c))
        })
        .collect();
    named.sort_by(|a, b| {
        dated(b.0)
            .cmp(&dated(a.0))
            .then_with(|| a.0.item_key.cmp(&b.0.item_key))
    });
    named
        .into_iter()
        .take(KEEP)
        .map(|(i, c)| CompetitorMove {
            competitor: c.clone(),
            summary: i.title.clone(),
            url: i.link.clone(),
        })
        .collect()
}

/// Items with a link mentioning a tracked keyword, best engagement first.
fn notable(items: &[StoredItem], keywords: &[String]) -> Vec<Item> {
    let mut kept: Vec<&StoredItem> = items
        .iter()
        .filter(|i| i.link.is_some() && i.keywords.iter().any(|k| keywords.contains(k)))
        .collect();
    let engagement = |i: &StoredItem| i.score.unwrap_or(0).max(0) + i.comments.unwrap_or(0).max(0);
    kept.sort_by(|a, b| {
        engagement(b)
            .cmp(&engagement(a))
            .then_with(|| dated(b).cmp(&dated(a)))
            .then_with(|| a.item_key.cmp(&b.item_key))
    });
    kept.into_iter()
        .take(KEEP)
        .filter_map(|i| {
            Some(Item {
                title: i.title.clone(),
                url: i.link.clone()?,
            })
        })
        .collect()
}

impl MarketData for StoredMarketData {
    fn snapshot<'a>(
        &'a self,
        user_id: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Snapshot, String>> {
        Box::pin(async move {
            let store = self
                .db
                .try_get()
                .ok_or_else(|| "the database is not open yet".to_owned())?;
            Self::read(store, user_id, start, end)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn item(key: &str, kws: &[&str], comps: &[&str], score: i64, at: i64) -> StoredItem {
        StoredItem {
            item_key: key.into(),
            source_id: "feed:x".into(),
            title: format!("title {key}"),
            link: Some(format!("https://news.example/{key}")),
            published_at_ms: Some(at),
            fetched_at_ms: at + 10,
            keywords: kws.iter().map(|s| s.to_string()).collect(),
            competitors: comps.iter().map(|s| s.to_string()).collect(),
            community: None,
            score: Some(score),
            comments: Some(0),
        }
    }

    #[test]
    fn moves_are_newest_first_and_items_best_engagement_first_for_own_terms_only() {
        let items = vec![
            item("a", &["rust"], &["acme"], 5, 100),
            item("b", &["rust"], &[], 50, 50),
            item("c", &["go"], &["globex"], 99, 300),
            item("d", &[], &["acme"], 0, 200),
        ];
        let moves = competitor_moves(&items, &["acme".into()]);
        let keys: Vec<&str> = moves.iter().map(|m| m.summary.as_str()).collect();
        assert_eq!(keys, ["title d", "title a"]);
        let best = notable(&items, &["rust".into()]);
        let keys: Vec<&str> = best.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(keys, ["title b", "title a"]);
    }
}
