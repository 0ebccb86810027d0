//! The market's timed work for the scheduler: `market_collect` starts a
//! collection for each source that can run (the sources themselves skip feeds not
//! yet due), `market_analyze` analyses every keyword's newest series.
//!
//! Both are idempotent per slot in effect: a second collection within a feed's
//! interval polls nothing, and a series already analysed is not analysed again.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::monitor::Monitor;
use crate::scheduler::job::{Job, JobError, JobOutcome};

/// Publishes `market.data.collection.started` for what is due.
pub struct CollectJob(pub Arc<Monitor>);

/// Runs the trend analysis.
pub struct AnalyzeJob(pub Arc<Monitor>);

impl Job for CollectJob {
    fn name(&self) -> &'static str {
        "market_collect"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let n = self.0.start_collections().await.map_err(JobError)?;
            Ok(JobOutcome {
                summary: format!("{n} collections started"),
                counts: [("collections_started".to_owned(), n)].into(),
            })
        })
    }
}

impl Job for AnalyzeJob {
    fn name(&self) -> &'static str {
        "market_analyze"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let (analysed, published) = self.0.analyze_all().await.map_err(JobError)?;
            Ok(JobOutcome {
                summary: format!("{analysed} series analysed, {published} trends published"),
                counts: [
                    ("series_analysed".to_owned(), analysed),
                    ("trends_published".to_owned(), published),
                ]
                .into(),
            })
        })
    }
}
