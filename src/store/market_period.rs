//! Reads of the market tables by period, for briefings: the trends detected and the
//! items dated in [start, end) for the keywords and competitors one user tracks.
//!
//! Invariants:
//! - an item's date is its published time, else the time it was collected; it is
//!   never collected before it was published, so `fetched_at_ms >= start` narrows
//!   the scan by the index without losing an item of the period;
//! - the tables hold every user's data: the SQL narrows by the terms' JSON text
//!   (`LIKE`, escaped) and the caller keeps only exact matches of its terms.

use sea_orm::{ConnectionTrait, Value};

use super::market::{Item, TrendRow, item_row, trend_row};
use super::{Store, StoreError};

/// `s` as a LIKE pattern matching its JSON string anywhere in a JSON array.
fn json_like(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    let mut out = String::with_capacity(quoted.len() + 2);
    out.push('%');
    for c in quoted.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// The latest analysis of `keyword` made in [`start_ms`, `end_ms`).
    pub async fn trend_in_period(
        &self,
        keyword: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<TrendRow>, StoreError> {
        self.db
            .query_one_raw(self.stmt(
                "SELECT * FROM market_trends
                 WHERE keyword = $1 AND created_at_ms >= $2 AND created_at_ms < $3
                 ORDER BY created_at_ms DESC, trend_id DESC LIMIT 1",
                vec![keyword.into(), start_ms.into(), end_ms.into()],
            ))
            .await?
            .as_ref()
            .map(trend_row)
            .transpose()
    }

    /// Items dated in [`start_ms`, `end_ms`) that mention one of `keywords` or name
    /// one of `competitors` (by their stored lists), newest collected first, at
    /// most `limit`.
    pub async fn items_in_period(
        &self,
        keywords: &[String],
        competitors: &[String],
        start_ms: i64,
        end_ms: i64,
        limit: u64,
    ) -> Result<Vec<Item>, StoreError> {
        if keywords.is_empty() && competitors.is_empty() {
            return Ok(Vec::new());
        }
        let mut values: Vec<Value> = vec![start_ms.into(), end_ms.into()];
        let mut terms = Vec::new();
        for (column, list) in [("keywords", keywords), ("competitors", competitors)] {
            for t in list {
                values.push(json_like(t).into());
                terms.push(format!("{column} LIKE ${} ESCAPE '\\'", values.len()));
            }
        }
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let sql = format!(
            "SELECT * FROM market_items
             WHERE fetched_at_ms >= $1
               AND COALESCE(published_at_ms, fetched_at_ms) >= $1
               AND COALESCE(published_at_ms, fetched_at_ms) < $2
               AND ({})
             ORDER BY fetched_at_ms DESC, item_key LIMIT ${}",
            terms.join(" OR "),
            values.len()
        );
        let rows = self.db.query_all_raw(self.stmt(&sql, values)).await?;
        rows.iter().map(item_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_match_the_json_string() {
        assert_eq!(json_like("rust"), "%\"rust\"%");
        assert_eq!(json_like("50%_off"), "%\"50\\%\\_off\"%");
        assert_eq!(json_like("a\"b"), "%\"a\\\\\"b\"%");
    }
}
