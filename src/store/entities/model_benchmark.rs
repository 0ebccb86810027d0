//! `model_benchmarks`: one measurement of one provider or embedder by the
//! `updateModelBenchmarks` job.

use sea_orm::entity::prelude::*;

/// One measurement.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "model_benchmarks")]
pub struct Model {
    /// A ULID (time-ordered).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `generation` or `embedding`.
    pub kind: String,
    /// The provider's or embedder's name.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Wall time of the fixed task.
    pub latency_ms: f64,
    /// Output tokens (generation) or input tokens (embedding) per second.
    pub tokens_per_second: f64,
    /// USD of the fixed task at the configured prices.
    pub cost_usd: f64,
    /// Embeddings: share of the bundled queries whose right passage ranks first.
    pub retrieval_recall: Option<f64>,
    /// Why it failed (then the numbers are 0).
    pub error: Option<String>,
    /// When.
    pub measured_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
