//! The `market-monitor` pool's work: a `market.data.collection.started` runs the
//! named source for the named keywords and answers `market.data.collected`; an
//! analysis run tests each keyword's newest series and publishes
//! `market.trend.detected` for a new or changed trend.
//!
//! Invariants:
//! - a collection is recorded once per `collection_id`; a redelivered start
//!   publishes the recorded result again (same event id) instead of collecting
//!   twice;
//! - a trend is stored once per analysed series, and published only when the
//!   keyword had no trend or its direction changed, before it is stored (a failed
//!   publish is retried by the next analysis, never lost);
//! - logs carry ids and counts, never users' keywords' items or personal data.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use strategist_actors::{Envelope, Event, EventType, HandlerError, Pool, Publisher};
use ulid::Ulid;

use super::MarketSettings;
use super::feed::FeedSource;
use super::google_trends::GoogleTrendsSource;
use super::reddit::RedditSource;
use super::source::{Reach, Source};
use super::trend::{self, Thresholds};
use crate::database::Db;
use crate::events::market::{
    DataSource, DataType, MarketDataCollected, MarketDataCollectionStarted, MarketTrendDetected,
    TrendType,
};
use crate::store::market::{Collection, Series, TrendRow};
use crate::store::{Store, StoreError};

/// The market monitor.
pub struct Monitor {
    /// The database.
    pub db: Db,
    /// Publishes the market events.
    pub publisher: Publisher,
    /// `[market]`.
    pub settings: MarketSettings,
    feeds: FeedSource,
    reddit: Option<RedditSource>,
    trends: Option<GoogleTrendsSource>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Monitor {
    /// The monitor with its sources (Reddit and the Trends API only with
    /// credentials).
    pub fn new(
        db: Db,
        publisher: Publisher,
        settings: &MarketSettings,
    ) -> Result<Monitor, super::source::SourceError> {
        Ok(Monitor {
            db,
            publisher,
            feeds: FeedSource::new(settings)?,
            reddit: RedditSource::new(settings)?,
            trends: GoogleTrendsSource::new(settings)?,
            settings: settings.clone(),
        })
    }

    /// Whether each source can reach anything.
    pub fn reach(&self, source: DataSource) -> Reach {
        match source {
            DataSource::RssFeeds => self.feeds.reach(),
            DataSource::Reddit => match &self.reddit {
                Some(r) => r.reach(),
                None => Reach::Off("no [market.reddit] client_id and client_secret".into()),
            },
            DataSource::GoogleTrends => match &self.trends {
                Some(t) => t.reach(),
                None => Reach::Off(super::google_trends::off_reason()),
            },
        }
    }

    /// Registers the pool's handlers.
    pub fn register(self: &Arc<Self>, pool: &mut Pool) {
        let m = self.clone();
        pool.on(move |ev: Event<MarketDataCollectionStarted>| {
            let m = m.clone();
            async move { m.on_started(ev).await }
        });
        pool.on(|ev: Event<MarketDataCollected>| async move {
            tracing::debug!(
                event_id = %ev.envelope.id,
                records = ev.data.records_collected,
                quality = ev.data.data_quality_score,
                "market data collected"
            );
            Ok(())
        });
    }

    async fn on_started(&self, ev: Event<MarketDataCollectionStarted>) -> Result<(), HandlerError> {
        let store = self.db.get()?;
        let req = &ev.data;
        let record = match store
            .collection(&req.collection_id)
            .await
            .map_err(crate::database::retry)?
        {
            Some(done) => done,
            None => {
                let c = self
                    .collect(store, req)
                    .await
                    .map_err(crate::database::retry)?;
                store
                    .save_collection(&c)
                    .await
                    .map_err(crate::database::retry)?;
                c
            }
        };
        let done = MarketDataCollected {
            collection_id: record.collection_id.clone(),
            data_source: record.data_source.clone(),
            data_type: match req.data_source {
                DataSource::Reddit => DataType::Engagement,
                DataSource::RssFeeds => DataType::CompetitorActivity,
                DataSource::GoogleTrends => DataType::Trend,
            },
            records_collected: record.records.max(0) as u64,
            collection_time_ms: record.time_ms,
            data_quality_score: record.quality,
        };
        let mut env = Envelope::new(
            MarketDataCollected::TYPE,
            MarketDataCollected::VERSION,
            serde_json::to_value(&done).map_err(HandlerError::permanent)?,
        )
        .caused_by(&ev.envelope);
        env.id = crate::events::derived_id(&ev.envelope, "collected");
        self.publisher
            .publish(MarketDataCollected::STREAM, &env)
            .await
            .map(|_| ())
            .map_err(HandlerError::retryable)
    }

    /// Runs the source named by `req` for its keywords (all tracked ones when it
    /// names none) and returns the run's record.
    pub async fn collect(
        &self,
        store: &Store,
        req: &MarketDataCollectionStarted,
    ) -> Result<Collection, StoreError> {
        let started = Instant::now();
        let now = now_ms();
        let mut tracking = store.all_tracking().await?;
        if !req.keywords.is_empty() {
            tracking.retain(|t| req.keywords.contains(&t.keyword));
        }
        let source: Option<&dyn Source> = match req.data_source {
            DataSource::RssFeeds => Some(&self.feeds),
            DataSource::Reddit => self.reddit.as_ref().map(|r| r as &dyn Source),
            DataSource::GoogleTrends => self.trends.as_ref().map(|t| t as &dyn Source),
        };
        let run = match source {
            Some(s) => match s.collect(store, &tracking, now).await {
                Ok(r) => Some(r),
                Err(super::source::SourceError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(collection_id = %req.collection_id, error = %e, "market source unavailable");
                    None
                }
            },
            None => None,
        };
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let data_source = serde_json::to_value(req.data_source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        // A source that cannot run covers nothing: its quality is 0, not "nothing
        // to judge".
        let (records, q) = match &run {
            Some(r) => (r.new_items as i64, r.quality()),
            None => (
                0,
                super::source::Quality {
                    coverage: 0.0,
                    freshness: 0.0,
                    uniqueness: 0.0,
                    validity: 0.0,
                    score: 0.0,
                },
            ),
        };
        if let Some(r) = &run {
            tracing::info!(
                collection_id = %req.collection_id,
                data_source,
                due = r.due,
                skipped = r.skipped,
                not_modified = r.not_modified,
                failed = r.failed,
                new_items = r.new_items,
                "market collection done"
            );
        }
        Ok(Collection {
            collection_id: req.collection_id.clone(),
            data_source,
            started_at_ms: now,
            records,
            time_ms: elapsed,
            coverage: q.coverage,
            freshness: q.freshness,
            uniqueness: q.uniqueness,
            validity: q.validity,
            quality: q.score,
        })
    }

    /// Publishes `market.data.collection.started` for each source that can run,
    /// over every tracked keyword; returns how many were published.
    pub async fn start_collections(&self) -> Result<u64, String> {
        let store = self.db.get().map_err(|e| e.to_string())?;
        let tracking = store.all_tracking().await.map_err(|e| e.to_string())?;
        if tracking.is_empty() {
            return Ok(0);
        }
        let mut keywords: Vec<String> = tracking.iter().map(|t| t.keyword.clone()).collect();
        keywords.dedup();
        let mut users: Vec<String> = tracking.iter().map(|t| t.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let mut n = 0;
        for source in [
            DataSource::RssFeeds,
            DataSource::Reddit,
            DataSource::GoogleTrends,
        ] {
            if self.reach(source) != Reach::Available {
                continue;
            }
            let wanted = tracking.iter().any(|t| match source {
                DataSource::RssFeeds => !t.feeds.is_empty(),
                DataSource::Reddit => !t.subreddits.is_empty(),
                // Every tracked keyword has an interest series.
                DataSource::GoogleTrends => true,
            });
            if !wanted {
                continue;
            }
            let data = MarketDataCollectionStarted {
                collection_id: Ulid::generate().to_string(),
                data_source: source,
                keywords: keywords.clone(),
                user_ids: users.clone(),
            };
            self.publisher
                .publish_typed(&data, |e| e)
                .await
                .map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    /// Analyses the newest series of every keyword that has one; returns
    /// (analysed, published).
    pub async fn analyze_all(&self) -> Result<(u64, u64), String> {
        let store = self.db.get().map_err(|e| e.to_string())?;
        let keywords = store.series_keywords().await.map_err(|e| e.to_string())?;
        let (mut analysed, mut published) = (0, 0);
        for k in keywords {
            match analyze_keyword(store, &self.publisher, &k, self.thresholds()).await {
                Ok(Some(p)) => {
                    analysed += 1;
                    published += u64::from(p);
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok((analysed, published))
    }

    /// The decision thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            min_relative_change: self.settings.min_relative_change,
        }
    }
}

/// Why an analysis could not finish.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing.
    #[error("publish: {0}")]
    Publish(String),
}

fn trend_type(d: trend::Direction) -> TrendType {
    match d {
        trend::Direction::Rising => TrendType::Rising,
        trend::Direction::Declining => TrendType::Declining,
        trend::Direction::Stable => TrendType::Stable,
    }
}

/// What a stored trend and the event carry: the series and the statistics.
fn trend_data(series: &Series, points: &[(i64, f64)], a: &trend::Analysis) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("series_id".into(), json!(series.series_id));
    m.insert("origin".into(), json!(series.origin));
    m.insert("scale".into(), json!(series.scale));
    m.insert("step_ms".into(), json!(series.step_ms));
    m.insert(
        "points".into(),
        Value::Array(
            points
                .iter()
                .map(|(t, v)| json!({"t": t, "value": v}))
                .collect(),
        ),
    );
    m.insert("direction".into(), json!(a.direction));
    m.insert("confidence".into(), json!(a.confidence));
    m.insert("relative_change".into(), json!(a.relative_change));
    m.insert("slope".into(), json!(a.stats.slope));
    m.insert("p_value".into(), json!(a.stats.p_corrected));
    m.insert("statistics".into(), json!(a.stats));
    m.insert("bursts".into(), json!(a.bursts));
    m.insert("burst_now".into(), json!(a.burst_now));
    m
}

/// Analyses the newest series of `keyword`. `Ok(None)`: nothing new to analyse
/// (no series, too short, or that series was analysed already); `Ok(Some(true))`:
/// a new or changed trend was published.
pub async fn analyze_keyword(
    store: &Store,
    publisher: &Publisher,
    keyword: &str,
    th: Thresholds,
) -> Result<Option<bool>, AnalyzeError> {
    let Some((series, points)) = store.latest_series(keyword).await? else {
        return Ok(None);
    };
    let previous = store.latest_trend(keyword).await?;
    if previous
        .as_ref()
        .is_some_and(|p| p.series_id == series.series_id)
    {
        return Ok(None);
    }
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let Ok(a) = trend::analyse(&values, th) else {
        return Ok(None);
    };
    let data = trend_data(&series, &points, &a);
    let direction = serde_json::to_value(a.direction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let row = TrendRow {
        trend_id: Ulid::generate().to_string(),
        keyword: keyword.to_owned(),
        series_id: series.series_id.clone(),
        direction: direction.clone(),
        confidence: a.confidence,
        analysis: Value::Object(data.clone()),
        created_at_ms: now_ms(),
    };
    let changed = previous.is_none_or(|p| p.direction != direction);
    if changed {
        let ev = MarketTrendDetected {
            trend_id: row.trend_id.clone(),
            trend_type: trend_type(a.direction),
            keywords: vec![keyword.to_owned()],
            confidence_score: a.confidence,
            affected_users: store.trackers(keyword).await?,
            trend_data: data,
        };
        let mut env = Envelope::new(
            MarketTrendDetected::TYPE,
            MarketTrendDetected::VERSION,
            serde_json::to_value(&ev).map_err(|e| AnalyzeError::Publish(e.to_string()))?,
        );
        // The trend's id is the event's: a retried publish is the same event.
        if let Ok(id) = row.trend_id.parse::<Ulid>() {
            env.id = id;
        }
        publisher
            .publish(MarketTrendDetected::STREAM, &env)
            .await
            .map_err(|e| AnalyzeError::Publish(e.to_string()))?;
    }
    // Stored after publishing: a failed publish leaves the series unanalysed, so
    // the next run tries again (at least once, never lost).
    store.save_trend(&row).await?;
    tracing::info!(trend_id = %row.trend_id, direction, changed, "market trend analysed");
    Ok(Some(changed))
}

/// Engagement of `keyword` in [`since_ms`, `until_ms`): per subreddit its posts
/// came from, their mean log-damped engagement over that subreddit's median of
/// the `trailing_days` before the period (1.0: ordinary for the community).
pub async fn engagement(
    store: &Store,
    keyword: &str,
    since_ms: i64,
    until_ms: i64,
    trailing_days: i64,
) -> Result<std::collections::BTreeMap<String, f64>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    for community in store.communities(keyword).await? {
        let posts = store
            .reddit_engagement(&community, Some(keyword), since_ms, until_ms)
            .await?;
        let trailing = store
            .reddit_engagement(
                &community,
                None,
                since_ms - trailing_days * 86_400_000,
                since_ms,
            )
            .await?;
        if let Some(e) = super::reddit::relative_engagement(&posts, &trailing) {
            out.insert(community, e);
        }
    }
    Ok(out)
}
