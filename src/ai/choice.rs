//! Which provider answers a content request that names none (`ai_provider`
//! empty), by the results the `updateModelBenchmarks` job stored.
//!
//! The rule (`[ai] choose_by_benchmarks`):
//! 1. candidates: the providers usable in this process (not one listed without its
//!    key), the offline composer only when it is the default: it composes from a
//!    template, faster than any model, and would otherwise always win;
//! 2. each candidate counts by its latest `generation` benchmark measured within
//!    `benchmark_max_age_hours`, and only when that run succeeded (no error, more
//!    than 0 output tokens per second);
//! 3. the lowest latency per output token (1 / tokens per second) wins; those
//!    within [`TIE`] of it tie, and the tie goes to the cheaper fixed task
//!    (`cost_usd`), then to the name;
//! 4. no candidate counts (no recent successful benchmark, the database not open or
//!    failing): the default provider.
//!
//! A request that names a provider always gets that one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Provider, Providers};
use crate::store::entities::model_benchmark;
use crate::store::{Store, StoreError};

/// Latencies per token within this fraction of the best tie.
pub const TIE: f64 = 0.05;

/// `[ai] choose_by_benchmarks` and `benchmark_max_age_hours`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChoiceSettings {
    /// Route requests naming no provider by benchmarks.
    pub enabled: bool,
    /// Benchmarks older than this do not count.
    pub max_age_ms: i64,
}

/// A candidate's standing from its latest benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The provider.
    pub provider: String,
    /// Seconds per output token of the fixed task.
    pub seconds_per_token: f64,
    /// USD of the fixed task.
    pub cost_usd: f64,
}

/// The winner of rule 3 among `measured`.
pub fn pick(measured: &[Measured]) -> Option<&Measured> {
    let best = measured
        .iter()
        .map(|m| m.seconds_per_token)
        .min_by(f64::total_cmp)?;
    measured
        .iter()
        .filter(|m| m.seconds_per_token <= best * (1.0 + TIE))
        .min_by(|a, b| {
            a.cost_usd
                .total_cmp(&b.cost_usd)
                .then_with(|| a.provider.cmp(&b.provider))
        })
}

/// Rule 2 over benchmark rows (any order): the latest generation row per
/// provider in `candidates`, kept when it succeeded.
pub fn standings(rows: &[model_benchmark::Model], candidates: &[String]) -> Vec<Measured> {
    let mut latest: BTreeMap<&str, &model_benchmark::Model> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.kind == "generation") {
        let newer = latest
            .get(r.provider.as_str())
            .is_none_or(|l| (r.measured_at_ms, &r.id) > (l.measured_at_ms, &l.id));
        if newer {
            latest.insert(&r.provider, r);
        }
    }
    latest
        .into_values()
        .filter(|r| candidates.contains(&r.provider))
        .filter(|r| r.error.is_none() && r.tokens_per_second > 0.0)
        .map(|r| Measured {
            provider: r.provider.clone(),
            seconds_per_token: 1.0 / r.tokens_per_second,
            cost_usd: r.cost_usd,
        })
        .collect()
}

impl Providers {
    /// Rule 1: the providers that may be chosen by benchmarks.
    pub fn candidates(&self) -> Vec<String> {
        self.by_name
            .keys()
            .filter(|n| !self.unusable.contains(*n))
            .filter(|n| n.as_str() != "offline" || self.default == "offline")
            .cloned()
            .collect()
    }

    /// The provider of a content request: the one `requested` names, else (with
    /// `choose_by_benchmarks` and a database) the best by benchmarks at `now_ms`,
    /// else the default.
    pub async fn choose_for_request(
        &self,
        requested: &str,
        store: Option<&Store>,
        now_ms: i64,
    ) -> Result<Arc<dyn Provider>, String> {
        let (true, "", Some(store)) = (self.choice.enabled, requested.trim(), store) else {
            return self.choose(requested);
        };
        match self.best_by_benchmarks(store, now_ms).await {
            Ok(Some(m)) => self.choose(&m.provider),
            Ok(None) => self.choose(""),
            Err(e) => {
                tracing::warn!(error = %e, "benchmarks unreadable: the default provider answers");
                self.choose("")
            }
        }
    }

    /// The winner by the stored benchmarks, if any counts.
    pub async fn best_by_benchmarks(
        &self,
        store: &Store,
        now_ms: i64,
    ) -> Result<Option<Measured>, StoreError> {
        let rows = model_benchmark::Entity::find()
            .filter(model_benchmark::Column::Kind.eq("generation"))
            .filter(
                model_benchmark::Column::MeasuredAtMs
                    .gte(now_ms.saturating_sub(self.choice.max_age_ms)),
            )
            .order_by_desc(model_benchmark::Column::MeasuredAtMs)
            .all(&store.db)
            .await?;
        let measured = standings(&rows, &self.candidates());
        Ok(pick(&measured).cloned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(
        provider: &str,
        at: i64,
        tps: f64,
        cost: f64,
        error: Option<&str>,
    ) -> model_benchmark::Model {
        model_benchmark::Model {
            id: format!("{at:020}{provider}"),
            kind: "generation".into(),
            provider: provider.into(),
            model: "m".into(),
            latency_ms: 100.0,
            tokens_per_second: tps,
            cost_usd: cost,
            retrieval_recall: None,
            error: error.map(str::to_owned),
            measured_at_ms: at,
        }
    }

    #[test]
    fn the_latest_successful_run_counts_and_near_ties_go_to_the_cheaper() {
        let c = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        // a was fastest, but its latest run failed; b is fast; c within 5 % of b
        // and cheaper; d is not a candidate.
        let rows = vec![
            row("a", 1, 1000.0, 0.0, None),
            row("a", 2, 0.0, 0.0, Some("HTTP 500")),
            row("b", 2, 100.0, 0.02, None),
            row("c", 2, 96.0, 0.01, None),
            row("d", 2, 5000.0, 0.0, None),
        ];
        let m = standings(&rows, &c);
        assert_eq!(m.len(), 2);
        assert_eq!(pick(&m).unwrap().provider, "c");
        // Beyond the tie the faster wins whatever it costs.
        let rows = vec![
            row("b", 2, 100.0, 0.02, None),
            row("c", 2, 90.0, 0.01, None),
        ];
        assert_eq!(pick(&standings(&rows, &c)).unwrap().provider, "b");
        assert!(pick(&[]).is_none());
    }
}
