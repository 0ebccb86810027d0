//! The market tables (`m0010_market`): tracking, source state, items, series,
//! collection runs and trend analyses.
//!
//! Invariants:
//! - an item is stored once per key (`ON CONFLICT DO NOTHING`): a feed polled again,
//!   or a redelivered collection, never doubles it;
//! - a series is written whole in one transaction with its points and never
//!   extended afterwards: a new import or collection is a new series, so windows of
//!   different relative scales are never joined;
//! - the SQL is written once with `$n` placeholders in order of first use, which
//!   both PostgreSQL and SQLite bind by position.

use sea_orm::{ConnectionTrait, QueryResult, Statement, TransactionTrait, Value};
use serde::Serialize;

use super::{Store, StoreError};

/// What one user tracks under one keyword.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tracking {
    /// The user.
    pub user_id: String,
    /// The keyword, as normalised by the API (trimmed, lower case).
    pub keyword: String,
    /// Competitor names an item may mention.
    pub competitors: Vec<String>,
    /// Feed URLs (RSS, Atom, JSON Feed).
    pub feeds: Vec<String>,
    /// Subreddits searched for the keyword (when Reddit is configured).
    pub subreddits: Vec<String>,
    /// When it was first tracked (ms since the epoch).
    pub created_at_ms: i64,
}

/// A source's polling state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    /// `feed:<url>` or `reddit:<subreddit>`.
    pub source_id: String,
    /// `feed` or `reddit`.
    pub kind: String,
    /// What is polled.
    pub url: String,
    /// The ETag exactly as received.
    pub etag: Option<String>,
    /// The Last-Modified exactly as received.
    pub last_modified: Option<String>,
    /// When it was last polled.
    pub last_polled_at_ms: Option<i64>,
    /// It is not polled before this (the interval, or a Retry-After).
    pub next_poll_at_ms: i64,
    /// The last HTTP status.
    pub last_status: Option<i32>,
    /// Why the last poll failed, in one line.
    pub last_error: Option<String>,
}

/// A collected item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The dedup key: `<source>|<entry id or normalised link>`.
    pub item_key: String,
    /// Where it came from.
    pub source_id: String,
    /// Its title.
    pub title: String,
    /// Its link.
    pub link: Option<String>,
    /// When it was published, if the source says.
    pub published_at_ms: Option<i64>,
    /// When it was collected.
    pub fetched_at_ms: i64,
    /// Tracked keywords it mentions.
    pub keywords: Vec<String>,
    /// Tracked competitors it names.
    pub competitors: Vec<String>,
    /// The subreddit, for Reddit items.
    pub community: Option<String>,
    /// Reddit score.
    pub score: Option<i64>,
    /// Reddit comment count.
    pub comments: Option<i64>,
}

/// A series' metadata.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Series {
    /// Its id.
    pub series_id: String,
    /// The keyword.
    pub keyword: String,
    /// `google_trends_csv`, `json`, `feed_counts`.
    pub origin: String,
    /// `relative` (0-100 within this series) or `absolute`.
    pub scale: String,
    /// The spacing of its points.
    pub step_ms: i64,
    /// When it was stored.
    pub created_at_ms: i64,
}

/// One collection run's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collection {
    /// The run (the event's `collection_id`).
    pub collection_id: String,
    /// `rss_feeds`, `reddit`.
    pub data_source: String,
    /// When it started.
    pub started_at_ms: i64,
    /// New records stored.
    pub records: i64,
    /// How long it took.
    pub time_ms: f64,
    /// Quality parts (README: data quality score).
    pub coverage: f64,
    /// Quality part.
    pub freshness: f64,
    /// Quality part.
    pub uniqueness: f64,
    /// Quality part.
    pub validity: f64,
    /// The score.
    pub quality: f64,
}

/// A stored trend analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendRow {
    /// Its id (`market.trend.detected`'s `trend_id`).
    pub trend_id: String,
    /// The keyword.
    pub keyword: String,
    /// The series analysed.
    pub series_id: String,
    /// rising, declining, stable.
    pub direction: String,
    /// The confidence.
    pub confidence: f64,
    /// The analysis and the series, as JSON.
    pub analysis: serde_json::Value,
    /// When.
    pub created_at_ms: i64,
}

pub(super) fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn json_of(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn tracking(r: &QueryResult) -> Result<Tracking, StoreError> {
    Ok(Tracking {
        user_id: r.try_get("", "user_id")?,
        keyword: r.try_get("", "keyword")?,
        competitors: strings(&r.try_get::<String>("", "competitors")?),
        feeds: strings(&r.try_get::<String>("", "feeds")?),
        subreddits: strings(&r.try_get::<String>("", "subreddits")?),
        created_at_ms: r.try_get("", "created_at_ms")?,
    })
}

pub(super) fn item_row(r: &QueryResult) -> Result<Item, StoreError> {
    Ok(Item {
        item_key: r.try_get("", "item_key")?,
        source_id: r.try_get("", "source_id")?,
        title: r.try_get("", "title")?,
        link: r.try_get("", "link")?,
        published_at_ms: r.try_get("", "published_at_ms")?,
        fetched_at_ms: r.try_get("", "fetched_at_ms")?,
        keywords: strings(&r.try_get::<String>("", "keywords")?),
        competitors: strings(&r.try_get::<String>("", "competitors")?),
        community: r.try_get("", "community")?,
        score: r.try_get("", "score")?,
        comments: r.try_get("", "comments")?,
    })
}

pub(super) fn trend_row(r: &QueryResult) -> Result<TrendRow, StoreError> {
    Ok(TrendRow {
        trend_id: r.try_get("", "trend_id")?,
        keyword: r.try_get("", "keyword")?,
        series_id: r.try_get("", "series_id")?,
        direction: r.try_get("", "direction")?,
        confidence: r.try_get("", "confidence")?,
        analysis: serde_json::from_str(&r.try_get::<String>("", "analysis")?).unwrap_or_default(),
        created_at_ms: r.try_get("", "created_at_ms")?,
    })
}

impl Store {
    pub(super) fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    /// Tracks `t.keyword` for `t.user_id`, replacing its lists; true when new.
    pub async fn track(&self, t: &Tracking) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let existed = txn
            .query_one_raw(self.stmt(
                "SELECT 1 AS one FROM market_tracking WHERE user_id = $1 AND keyword = $2",
                vec![t.user_id.clone().into(), t.keyword.clone().into()],
            ))
            .await?
            .is_some();
        txn.execute_raw(self.stmt(
            "INSERT INTO market_tracking (user_id, keyword, competitors, feeds, subreddits, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id, keyword) DO UPDATE SET competitors = excluded.competitors,
               feeds = excluded.feeds, subreddits = excluded.subreddits",
            vec![
                t.user_id.clone().into(),
                t.keyword.clone().into(),
                json_of(&t.competitors).into(),
                json_of(&t.feeds).into(),
                json_of(&t.subreddits).into(),
                t.created_at_ms.into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        Ok(!existed)
    }

    /// What `user_id` tracks, by keyword.
    pub async fn tracked(&self, user_id: &str) -> Result<Vec<Tracking>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT * FROM market_tracking WHERE user_id = $1 ORDER BY keyword",
                vec![user_id.into()],
            ))
            .await?;
        rows.iter().map(tracking).collect()
    }

    /// Everything every user tracks.
    pub async fn all_tracking(&self) -> Result<Vec<Tracking>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT * FROM market_tracking ORDER BY keyword, user_id",
                vec![],
            ))
            .await?;
        rows.iter().map(tracking).collect()
    }

    /// Stops tracking; true when it was tracked.
    pub async fn untrack(&self, user_id: &str, keyword: &str) -> Result<bool, StoreError> {
        let r = self
            .db
            .execute_raw(self.stmt(
                "DELETE FROM market_tracking WHERE user_id = $1 AND keyword = $2",
                vec![user_id.into(), keyword.into()],
            ))
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The users tracking `keyword`.
    pub async fn trackers(&self, keyword: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT user_id FROM market_tracking WHERE keyword = $1 ORDER BY user_id",
                vec![keyword.into()],
            ))
            .await?;
        rows.iter().map(|r| Ok(r.try_get("", "user_id")?)).collect()
    }

    /// A source's polling state.
    pub async fn source_state(&self, source_id: &str) -> Result<Option<SourceState>, StoreError> {
        let Some(r) = self
            .db
            .query_one_raw(self.stmt(
                "SELECT * FROM market_sources WHERE source_id = $1",
                vec![source_id.into()],
            ))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(SourceState {
            source_id: r.try_get("", "source_id")?,
            kind: r.try_get("", "kind")?,
            url: r.try_get("", "url")?,
            etag: r.try_get("", "etag")?,
            last_modified: r.try_get("", "last_modified")?,
            last_polled_at_ms: r.try_get("", "last_polled_at_ms")?,
            next_poll_at_ms: r.try_get("", "next_poll_at_ms")?,
            last_status: r.try_get("", "last_status")?,
            last_error: r.try_get("", "last_error")?,
        }))
    }

    /// Writes a source's polling state.
    pub async fn save_source_state(&self, s: &SourceState) -> Result<(), StoreError> {
        self.db
            .execute_raw(self.stmt(
                "INSERT INTO market_sources (source_id, kind, url, etag, last_modified,
                   last_polled_at_ms, next_poll_at_ms, last_status, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (source_id) DO UPDATE SET etag = excluded.etag,
                   last_modified = excluded.last_modified,
                   last_polled_at_ms = excluded.last_polled_at_ms,
                   next_poll_at_ms = excluded.next_poll_at_ms,
                   last_status = excluded.last_status, last_error = excluded.last_error",
                vec![
                    s.source_id.clone().into(),
                    s.kind.clone().into(),
                    s.url.clone().into(),
                    s.etag.clone().into(),
                    s.last_modified.clone().into(),
                    s.last_polled_at_ms.into(),
                    s.next_poll_at_ms.into(),
                    s.last_status.into(),
                    s.last_error.clone().into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Stores an item unless its key is known; true when new.
    pub async fn save_item(&self, i: &Item) -> Result<bool, StoreError> {
        let r = self
            .db
            .execute_raw(self.stmt(
                "INSERT INTO market_items (item_key, source_id, title, link, published_at_ms,
                   fetched_at_ms, keywords, competitors, community, score, comments)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (item_key) DO NOTHING",
                vec![
                    i.item_key.clone().into(),
                    i.source_id.clone().into(),
                    i.title.clone().into(),
                    i.link.clone().into(),
                    i.published_at_ms.into(),
                    i.fetched_at_ms.into(),
                    json_of(&i.keywords).into(),
                    json_of(&i.competitors).into(),
                    i.community.clone().into(),
                    i.score.into(),
                    i.comments.into(),
                ],
            ))
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Items fetched at or after `since_ms` from `source_id` (newest first, at most
    /// `limit`).
    pub async fn items_since(
        &self,
        source_id: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<Item>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT * FROM market_items WHERE source_id = $1 AND fetched_at_ms >= $2
                 ORDER BY fetched_at_ms DESC, item_key LIMIT $3",
                vec![source_id.into(), since_ms.into(), (limit as i64).into()],
            ))
            .await?;
        rows.iter().map(item_row).collect()
    }

    /// (score, comments) of the Reddit items of `community` published in
    /// [`since_ms`, `until_ms`), and only those naming `keyword` when given.
    pub async fn reddit_engagement(
        &self,
        community: &str,
        keyword: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT keywords, score, comments FROM market_items
                 WHERE community = $1 AND published_at_ms >= $2 AND published_at_ms < $3
                   AND score IS NOT NULL",
                vec![community.into(), since_ms.into(), until_ms.into()],
            ))
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let kws = strings(&r.try_get::<String>("", "keywords")?);
            if keyword.is_none_or(|k| kws.iter().any(|x| x == k)) {
                out.push((
                    r.try_get::<Option<i64>>("", "score")?.unwrap_or(0),
                    r.try_get::<Option<i64>>("", "comments")?.unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }

    /// The subreddits items of `keyword` came from.
    pub async fn communities(&self, keyword: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT DISTINCT community, keywords FROM market_items WHERE community IS NOT NULL",
                vec![],
            ))
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let kws = strings(&r.try_get::<String>("", "keywords")?);
            if kws.iter().any(|k| k == keyword) {
                out.push(r.try_get::<String>("", "community")?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Competitor activity: per competitor in `competitors`, the items fetched in
    /// [`since_ms`, `until_ms`) that name it.
    pub async fn competitor_activity(
        &self,
        competitors: &[String],
        since_ms: i64,
        until_ms: i64,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT competitors FROM market_items
                 WHERE fetched_at_ms >= $1 AND fetched_at_ms < $2 AND competitors <> '[]'",
                vec![since_ms.into(), until_ms.into()],
            ))
            .await?;
        let mut out: std::collections::BTreeMap<String, u64> =
            competitors.iter().map(|c| (c.clone(), 0)).collect();
        for r in &rows {
            for c in strings(&r.try_get::<String>("", "competitors")?) {
                if let Some(n) = out.get_mut(&c) {
                    *n += 1;
                }
            }
        }
        Ok(out)
    }

    /// Stores a whole series with its points.
    pub async fn save_series(&self, s: &Series, points: &[(i64, f64)]) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        txn.execute_raw(self.stmt(
            "INSERT INTO market_series (series_id, keyword, origin, scale, step_ms, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                s.series_id.clone().into(),
                s.keyword.clone().into(),
                s.origin.clone().into(),
                s.scale.clone().into(),
                s.step_ms.into(),
                s.created_at_ms.into(),
            ],
        ))
        .await?;
        for (t, v) in points {
            txn.execute_raw(self.stmt(
                "INSERT INTO market_series_points (series_id, t_ms, value) VALUES ($1, $2, $3)",
                vec![s.series_id.clone().into(), (*t).into(), (*v).into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The newest series of `keyword` with its points in time order.
    pub async fn latest_series(
        &self,
        keyword: &str,
    ) -> Result<Option<(Series, Vec<(i64, f64)>)>, StoreError> {
        let Some(r) = self
            .db
            .query_one_raw(self.stmt(
                "SELECT * FROM market_series WHERE keyword = $1
                 ORDER BY created_at_ms DESC, series_id DESC LIMIT 1",
                vec![keyword.into()],
            ))
            .await?
        else {
            return Ok(None);
        };
        let s = Series {
            series_id: r.try_get("", "series_id")?,
            keyword: r.try_get("", "keyword")?,
            origin: r.try_get("", "origin")?,
            scale: r.try_get("", "scale")?,
            step_ms: r.try_get("", "step_ms")?,
            created_at_ms: r.try_get("", "created_at_ms")?,
        };
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT t_ms, value FROM market_series_points WHERE series_id = $1 ORDER BY t_ms",
                vec![s.series_id.clone().into()],
            ))
            .await?;
        let points = rows
            .iter()
            .map(|r| Ok((r.try_get("", "t_ms")?, r.try_get("", "value")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((s, points)))
    }

    /// The keywords that have at least one series.
    pub async fn series_keywords(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT DISTINCT keyword FROM market_series ORDER BY keyword",
                vec![],
            ))
            .await?;
        rows.iter().map(|r| Ok(r.try_get("", "keyword")?)).collect()
    }

    /// Records a collection run (once per id).
    pub async fn save_collection(&self, c: &Collection) -> Result<(), StoreError> {
        self.db
            .execute_raw(self.stmt(
                "INSERT INTO market_collections (collection_id, data_source, started_at_ms, records,
                   time_ms, coverage, freshness, uniqueness, validity, quality)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (collection_id) DO NOTHING",
                vec![
                    c.collection_id.clone().into(),
                    c.data_source.clone().into(),
                    c.started_at_ms.into(),
                    c.records.into(),
                    c.time_ms.into(),
                    c.coverage.into(),
                    c.freshness.into(),
                    c.uniqueness.into(),
                    c.validity.into(),
                    c.quality.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// A recorded collection run.
    pub async fn collection(&self, id: &str) -> Result<Option<Collection>, StoreError> {
        let Some(r) = self
            .db
            .query_one_raw(self.stmt(
                "SELECT * FROM market_collections WHERE collection_id = $1",
                vec![id.into()],
            ))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Collection {
            collection_id: r.try_get("", "collection_id")?,
            data_source: r.try_get("", "data_source")?,
            started_at_ms: r.try_get("", "started_at_ms")?,
            records: r.try_get("", "records")?,
            time_ms: r.try_get("", "time_ms")?,
            coverage: r.try_get("", "coverage")?,
            freshness: r.try_get("", "freshness")?,
            uniqueness: r.try_get("", "uniqueness")?,
            validity: r.try_get("", "validity")?,
            quality: r.try_get("", "quality")?,
        }))
    }

    /// Stores a trend analysis.
    pub async fn save_trend(&self, t: &TrendRow) -> Result<(), StoreError> {
        self.db
            .execute_raw(self.stmt(
                "INSERT INTO market_trends (trend_id, keyword, series_id, direction, confidence,
                   analysis, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (trend_id) DO NOTHING",
                vec![
                    t.trend_id.clone().into(),
                    t.keyword.clone().into(),
                    t.series_id.clone().into(),
                    t.direction.clone().into(),
                    t.confidence.into(),
                    t.analysis.to_string().into(),
                    t.created_at_ms.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// The latest analysis of `keyword`.
    pub async fn latest_trend(&self, keyword: &str) -> Result<Option<TrendRow>, StoreError> {
        self.db
            .query_one_raw(self.stmt(
                "SELECT * FROM market_trends WHERE keyword = $1
                 ORDER BY created_at_ms DESC, trend_id DESC LIMIT 1",
                vec![keyword.into()],
            ))
            .await?
            .as_ref()
            .map(trend_row)
            .transpose()
    }

    /// The latest analysis of each keyword `user_id` tracks.
    pub async fn user_trends(&self, user_id: &str) -> Result<Vec<TrendRow>, StoreError> {
        let mut out = Vec::new();
        for t in self.tracked(user_id).await? {
            if let Some(row) = self.latest_trend(&t.keyword).await? {
                out.push(row);
            }
        }
        Ok(out)
    }
}
