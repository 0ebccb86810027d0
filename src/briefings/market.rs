//! What a briefing reads of the market: a small trait, so the briefing generator
//! does not depend on the collection and trend tables (another part of the system
//! fills them). The server reads the market tables
//! (`crate::market::briefing_data`); [`NoMarketData`] serves where there are none:
//! a briefing still comes out, and says that nothing was collected.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;

/// A trend detected in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// The keyword.
    pub keyword: String,
    /// `rising`, `declining` or `stable`.
    pub direction: String,
    /// 0..1.
    pub confidence: f64,
}

/// Something a tracked competitor did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompetitorMove {
    /// The competitor.
    pub competitor: String,
    /// What happened, one line.
    pub summary: String,
    /// Where it was seen.
    pub url: Option<String>,
}

/// An item worth reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Its title.
    pub title: String,
    /// Its link.
    pub url: String,
}

/// The market data of one user and period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Trends, most confident first.
    pub trends: Vec<Trend>,
    /// Competitor moves, newest first.
    pub competitor_moves: Vec<CompetitorMove>,
    /// Notable items, best first.
    pub items: Vec<Item>,
}

/// Reads market data for briefings.
pub trait MarketData: Send + Sync {
    /// What is known for `user_id` between `start` and `end`.
    fn snapshot<'a>(
        &'a self,
        user_id: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Snapshot, String>>;
}

/// No market data (collection not connected).
#[derive(Debug, Default, Clone)]
pub struct NoMarketData;

impl MarketData for NoMarketData {
    fn snapshot<'a>(
        &'a self,
        _user_id: &'a str,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Snapshot, String>> {
        Box::pin(async { Ok(Snapshot::default()) })
    }
}
