//! Events of `market.events`: data collection and trend analysis.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{event_type, streams::MARKET};

/// Where market data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Reddit,
    GoogleTrends,
    RssFeeds,
}

/// `market.data.collection.started`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketDataCollectionStarted {
    pub collection_id: String,
    pub data_source: DataSource,
    pub keywords: Vec<String>,
    /// Users interested in this data.
    pub user_ids: Vec<String>,
}
event_type!(
    MarketDataCollectionStarted,
    "market.data.collection.started",
    MARKET
);

/// Kinds of collected data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Engagement,
    Trend,
    CompetitorActivity,
}

/// `market.data.collected`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketDataCollected {
    pub collection_id: String,
    pub data_source: String,
    pub data_type: DataType,
    pub records_collected: u64,
    pub collection_time_ms: f64,
    pub data_quality_score: f64,
}
event_type!(MarketDataCollected, "market.data.collected", MARKET);

/// Direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrendType {
    Rising,
    Declining,
    Stable,
}

/// `market.trend.detected`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketTrendDetected {
    pub trend_id: String,
    pub trend_type: TrendType,
    pub keywords: Vec<String>,
    pub confidence_score: f64,
    pub affected_users: Vec<String>,
    pub trend_data: Map<String, Value>,
}
event_type!(MarketTrendDetected, "market.trend.detected", MARKET);
