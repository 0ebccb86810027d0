//! The scheduler's `updateModelBenchmarks` job: a small fixed evaluation of every
//! configured AI provider (latency, output tokens per second, cost at the
//! configured prices) and embedder (latency, tokens per second, cost, and retrieval
//! quality: the share of a bundled query set whose right passage ranks first by
//! cosine), stored in `model_benchmarks` one row per provider and run.
//!
//! A provider that fails is stored with its error and zeros, never skipped, so a
//! broken provider shows up. The tasks are fixed so that runs compare over time.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::EntityTrait;

use super::Providers;
use super::offline::estimate_tokens;
use super::provider::Prompt;
use crate::database::Db;
use crate::embeddings::{Embedders, cosine};
use crate::scheduler::{Job, JobError, JobOutcome};
use crate::store::entities::model_benchmark;

/// The bundled retrieval set: passages, and queries with the passage they mean.
const PASSAGES: [&str; 6] = [
    "Our pricing page lists three plans: starter, team and enterprise, billed monthly or yearly.",
    "The onboarding checklist covers account setup, inviting teammates and connecting data sources.",
    "Quarterly revenue grew twelve percent, driven by enterprise renewals in Europe.",
    "Our support team answers tickets within four business hours on weekdays.",
    "The mobile app supports offline mode and syncs changes when the connection returns.",
    "Security: data is encrypted at rest and in transit; we run yearly penetration tests.",
];
const QUERIES: [(&str, usize); 6] = [
    ("how much do the plans cost per month", 0),
    ("how do I invite teammates during setup", 1),
    ("how much did revenue grow last quarter", 2),
    ("how fast does support answer a ticket", 3),
    ("does the app work without a connection", 4),
    ("is my data encrypted", 5),
];
const PROMPT: &str = "Write three sentences announcing a product update to existing customers.";

/// The job.
pub struct UpdateModelBenchmarks {
    db: Db,
    providers: Arc<Providers>,
    embedders: Arc<Embedders>,
}

impl UpdateModelBenchmarks {
    /// The job over the configured providers and embedders.
    pub fn new(db: Db, providers: Arc<Providers>, embedders: Arc<Embedders>) -> Self {
        UpdateModelBenchmarks {
            db,
            providers,
            embedders,
        }
    }

    /// Measures every provider and embedder once and stores the rows.
    pub async fn measure(&self) -> Result<JobOutcome, JobError> {
        let store = self
            .db
            .try_get()
            .ok_or_else(|| JobError("the database is not open yet".into()))?;
        let mut rows = Vec::new();
        for name in self.providers.names() {
            rows.push(self.generation(&name).await);
        }
        for name in self.embedders.names() {
            rows.push(self.embedding(&name).await);
        }
        let failed = rows.iter().filter(|r| r.error.is_some()).count() as u64;
        let n = rows.len() as u64;
        if !rows.is_empty() {
            model_benchmark::Entity::insert_many(
                rows.into_iter().map(model_benchmark::ActiveModel::from),
            )
            .exec_without_returning(&store.db)
            .await
            .map_err(|e| JobError(e.to_string()))?;
        }
        Ok(JobOutcome {
            summary: format!("measured {n} providers, {failed} failed"),
            counts: [("measured".to_owned(), n), ("failed".to_owned(), failed)].into(),
        })
    }

    fn row(kind: &str, provider: &str, model: &str) -> model_benchmark::Model {
        model_benchmark::Model {
            id: ulid::Ulid::generate().to_string(),
            kind: kind.to_owned(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            latency_ms: 0.0,
            tokens_per_second: 0.0,
            cost_usd: 0.0,
            retrieval_recall: None,
            error: None,
            measured_at_ms: Utc::now().timestamp_millis(),
        }
    }

    async fn generation(&self, name: &str) -> model_benchmark::Model {
        let Ok(p) = self.providers.choose(name) else {
            let mut r = Self::row("generation", name, "");
            r.error = Some("not configured".into());
            return r;
        };
        let mut r = Self::row("generation", name, p.model());
        let prompt = Prompt {
            system: "You write short product copy.".into(),
            user: PROMPT.into(),
            context: Vec::new(),
            max_tokens: 200,
        };
        let started = Instant::now();
        match p.generate(&prompt).await {
            Ok(g) => {
                let secs = started.elapsed().as_secs_f64();
                r.model = g.model.clone();
                r.latency_ms = secs * 1000.0;
                r.tokens_per_second = f64::from(g.output_tokens) / secs.max(1e-6);
                r.cost_usd = self
                    .providers
                    .cost(&g.model, g.input_tokens, g.output_tokens);
            }
            Err(e) => r.error = Some(e.to_string()),
        }
        r
    }

    async fn embedding(&self, name: &str) -> model_benchmark::Model {
        let Ok(e) = self.embedders.choose(Some(name)) else {
            let mut r = Self::row("embedding", name, "");
            r.error = Some("not configured".into());
            return r;
        };
        let mut r = Self::row("embedding", name, e.model());
        let mut texts: Vec<String> = PASSAGES.iter().map(|s| s.to_string()).collect();
        texts.extend(QUERIES.iter().map(|(q, _)| q.to_string()));
        let started = Instant::now();
        match e.embed_with_usage(&texts).await {
            Ok(out) if out.vectors.len() == texts.len() => {
                let secs = started.elapsed().as_secs_f64();
                let tokens = if out.tokens > 0 {
                    out.tokens
                } else {
                    texts.iter().map(|t| u64::from(estimate_tokens(t))).sum()
                };
                r.latency_ms = secs * 1000.0;
                r.tokens_per_second = tokens as f64 / secs.max(1e-6);
                r.cost_usd = self.embedders.cost(e.model(), tokens);
                let (passages, queries) = out.vectors.split_at(PASSAGES.len());
                let hits = QUERIES
                    .iter()
                    .zip(queries)
                    .filter(|((_, want), q)| {
                        let best = passages
                            .iter()
                            .enumerate()
                            .max_by(|a, b| cosine(q, a.1).total_cmp(&cosine(q, b.1)))
                            .map(|(i, _)| i);
                        best == Some(*want)
                    })
                    .count();
                r.retrieval_recall = Some(hits as f64 / QUERIES.len() as f64);
            }
            Ok(out) => {
                r.error = Some(format!(
                    "{} vectors for {} texts",
                    out.vectors.len(),
                    texts.len()
                ))
            }
            Err(err) => r.error = Some(err.to_string()),
        }
        r
    }
}

impl Job for UpdateModelBenchmarks {
    fn name(&self) -> &'static str {
        "updateModelBenchmarks"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(self.measure())
    }
}
