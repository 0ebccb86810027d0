//! `m0010_market`: what users track, the sources' polling state, the collected
//! items (deduplicated by key), imported or collected series with their points,
//! each collection run with its quality parts, and the trend analyses.
//!
//! Plain SQL that SQLite and PostgreSQL both read: TEXT, BIGINT, DOUBLE PRECISION.

use sea_orm_migration::prelude::*;

/// The market tables.
pub(super) struct M0010Market;

impl MigrationName for M0010Market {
    fn name(&self) -> &str {
        "m0010_market"
    }
}

const UP: &[&str] = &[
    // One row per (user, keyword); the lists are JSON arrays of strings.
    "CREATE TABLE IF NOT EXISTS market_tracking (
        user_id TEXT NOT NULL,
        keyword TEXT NOT NULL,
        competitors TEXT NOT NULL,
        feeds TEXT NOT NULL,
        subreddits TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (user_id, keyword))",
    "CREATE INDEX IF NOT EXISTS market_tracking_keyword ON market_tracking (keyword)",
    // A source's polling state: validators exactly as received, when it may be
    // polled next (interval or Retry-After), what the last poll said.
    "CREATE TABLE IF NOT EXISTS market_sources (
        source_id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_polled_at_ms BIGINT,
        next_poll_at_ms BIGINT NOT NULL,
        last_status INTEGER,
        last_error TEXT)",
    // An item once per dedup key (entry id, else the normalised link).
    "CREATE TABLE IF NOT EXISTS market_items (
        item_key TEXT NOT NULL PRIMARY KEY,
        source_id TEXT NOT NULL,
        title TEXT NOT NULL,
        link TEXT,
        published_at_ms BIGINT,
        fetched_at_ms BIGINT NOT NULL,
        keywords TEXT NOT NULL,
        competitors TEXT NOT NULL,
        community TEXT,
        score BIGINT,
        comments BIGINT)",
    "CREATE INDEX IF NOT EXISTS market_items_fetched ON market_items (fetched_at_ms)",
    // A series keeps its scale: `relative` (0-100 within this series only, a Trends
    // export) or `absolute` (counts); points of two series are never joined.
    "CREATE TABLE IF NOT EXISTS market_series (
        series_id TEXT NOT NULL PRIMARY KEY,
        keyword TEXT NOT NULL,
        origin TEXT NOT NULL,
        scale TEXT NOT NULL,
        step_ms BIGINT NOT NULL,
        created_at_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS market_series_keyword ON market_series (keyword, created_at_ms)",
    "CREATE TABLE IF NOT EXISTS market_series_points (
        series_id TEXT NOT NULL,
        t_ms BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (series_id, t_ms))",
    "CREATE TABLE IF NOT EXISTS market_collections (
        collection_id TEXT NOT NULL PRIMARY KEY,
        data_source TEXT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        records BIGINT NOT NULL,
        time_ms DOUBLE PRECISION NOT NULL,
        coverage DOUBLE PRECISION NOT NULL,
        freshness DOUBLE PRECISION NOT NULL,
        uniqueness DOUBLE PRECISION NOT NULL,
        validity DOUBLE PRECISION NOT NULL,
        quality DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS market_trends (
        trend_id TEXT NOT NULL PRIMARY KEY,
        keyword TEXT NOT NULL,
        series_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL,
        analysis TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS market_trends_keyword ON market_trends (keyword, created_at_ms)",
];

#[async_trait::async_trait]
impl MigrationTrait for M0010Market {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for sql in UP {
            m.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "market_trends",
            "market_collections",
            "market_series_points",
            "market_series",
            "market_items",
            "market_sources",
            "market_tracking",
        ] {
            m.get_connection()
                .execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
                .await?;
        }
        Ok(())
    }
}
