//! The application's worker pools: which consumer group handles which event types.
//!
//! The pools and the types each one handles are fixed here; their sizes and retry
//! settings come from `[pools.*]` in the configuration. `content-generator` runs the
//! AI workers ([`crate::ai::workers`]); `file-processor`, `embedding-generator` and
//! `search-indexer` the file pipeline ([`crate::files::workers`]); `market-monitor`
//! collection ([`crate::market::monitor`]); `notifier` the notifications
//! ([`crate::notify::worker`]); `briefing-generator` the briefings; the handlers of
//! the pools whose work lands in later issues
//! still only record that the event reached them. Handlers log ids only: events about people carry
//! personal data that never goes into logs.

use strategist_actors::{Event, EventType, HandlerError, Pool};

use crate::config::{ConfigError, Settings};
use crate::events::{contextual, market, notification, system};

/// The handled event types of each business pool, for the README and
/// `GET /streams`. The archiver (every stream, every type) and the projections are
/// built by their own modules.
pub const POOLS: &[(&str, &[&str])] = &[
    (
        "file-processor",
        &[
            "file.uploaded",
            "file.text_extraction.requested",
            "file.text_extraction.revert.requested",
        ],
    ),
    (
        "embedding-generator",
        &[
            "embedding.generation.requested",
            "embedding.deletion.requested",
        ],
    ),
    (
        "search-indexer",
        &[
            "search.index.update.requested",
            "search.index.removal.requested",
        ],
    ),
    (
        "content-generator",
        &[
            "ai.content.generation.requested",
            "ai.consultation.requested",
        ],
    ),
    (
        "market-monitor",
        &["market.data.collection.started", "market.data.collected"],
    ),
    ("notifier", &["notification.send.requested"]),
    ("briefing-generator", &["briefing.generation.scheduled"]),
    (
        "system-monitor",
        &[
            "system.error.critical",
            "system.performance.degraded",
            "system.service.health",
        ],
    ),
];

/// A handler for a type whose worker this process does not have.
fn absent<T: EventType>(p: &mut Pool) {
    p.on(|_: Event<T>| async {
        Err(HandlerError::retryable(
            "no worker for this type in this process",
        ))
    });
}

/// A handler that records the event reached its pool.
async fn received<T: EventType>(pool: &'static str, ev: Event<T>) -> Result<(), HandlerError> {
    tracing::debug!(
        pool,
        event_type = T::TYPE,
        event_id = %ev.envelope.id,
        correlation_id = ev.envelope.correlation_id.as_deref().unwrap_or(""),
        "event received"
    );
    Ok(())
}

macro_rules! on {
    ($pool:expr, $name:literal, $t:ty) => {
        $pool.on(|ev: Event<$t>| received($name, ev))
    };
}

/// The workers whose handlers the pools run.
#[derive(Default, Clone)]
pub struct Workers {
    /// content-generator.
    pub ai: Option<std::sync::Arc<crate::ai::workers::AiWorkers>>,
    /// file-processor, embedding-generator, search-indexer.
    pub files: Option<std::sync::Arc<crate::files::workers::FileWorkers>>,
    /// system-monitor.
    pub alerts: Option<std::sync::Arc<crate::alerts::Alerts>>,
    /// notifier.
    pub notifier: Option<std::sync::Arc<crate::notify::worker::Notifier>>,
    /// briefing-generator.
    pub briefings: Option<std::sync::Arc<crate::briefings::generator::BriefingGenerator>>,
    /// market-monitor.
    pub market: Option<std::sync::Arc<crate::market::monitor::Monitor>>,
}

/// Builds every pool named in [`POOLS`] with its configured options and the
/// handlers of `workers` (a pool whose workers are absent leaves its entries
/// pending for a process that has them, by a retryable failure).
pub fn build(settings: &Settings, workers: &Workers) -> Result<Vec<Pool>, ConfigError> {
    let mut pools = Vec::new();
    for (name, _) in POOLS {
        let (options, _scale) = settings.pool(name)?;
        let mut p = Pool::new(*name, options);
        match *name {
            "file-processor" => match &workers.files {
                Some(f) => f.register_file_processor(&mut p),
                None => {
                    absent::<contextual::FileUploaded>(&mut p);
                    absent::<contextual::FileTextExtractionRequested>(&mut p);
                    absent::<contextual::FileTextExtractionRevertRequested>(&mut p);
                }
            },
            "embedding-generator" => match &workers.files {
                Some(f) => f.register_embedding_generator(&mut p),
                None => {
                    absent::<contextual::EmbeddingGenerationRequested>(&mut p);
                    absent::<contextual::EmbeddingDeletionRequested>(&mut p);
                }
            },
            "search-indexer" => match &workers.files {
                Some(f) => f.register_search_indexer(&mut p),
                None => {
                    absent::<contextual::SearchIndexUpdateRequested>(&mut p);
                    absent::<contextual::SearchIndexRemovalRequested>(&mut p);
                }
            },
            "content-generator" => match &workers.ai {
                Some(ai) => ai.register(&mut p),
                None => {
                    p.on(
                        |_: Event<crate::events::ai::AiContentGenerationRequested>| async {
                            Err(HandlerError::retryable("no AI workers in this process"))
                        },
                    );
                    p.on(
                        |_: Event<crate::events::ai::AiConsultationRequested>| async {
                            Err(HandlerError::retryable("no AI workers in this process"))
                        },
                    );
                }
            },
            "market-monitor" => match &workers.market {
                Some(m) => m.register(&mut p),
                None => {
                    absent::<market::MarketDataCollectionStarted>(&mut p);
                    on!(p, "market-monitor", market::MarketDataCollected);
                }
            },
            "notifier" => match &workers.notifier {
                Some(n) => n.register(&mut p),
                None => absent::<notification::NotificationSendRequested>(&mut p),
            },
            "briefing-generator" => match &workers.briefings {
                Some(b) => b.register(&mut p),
                None => absent::<notification::BriefingGenerationScheduled>(&mut p),
            },
            "system-monitor" => match &workers.alerts {
                Some(a) => a.register(&mut p),
                None => {
                    on!(p, "system-monitor", system::SystemErrorCritical);
                    on!(p, "system-monitor", system::SystemPerformanceDegraded);
                    on!(p, "system-monitor", system::SystemServiceHealth);
                }
            },
            _ => {}
        }
        pools.push(p);
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_handled_by_its_pool_and_exists() {
        let s = Settings::load(None, Vec::new()).unwrap();
        let pools = build(&s, &Workers::default()).unwrap();
        let catalog = crate::events::catalog();
        for (name, types) in POOLS {
            let p = pools.iter().find(|p| p.name == *name).unwrap();
            let mut handled: Vec<&str> = p.streams().iter().flat_map(|s| p.types_on(s)).collect();
            handled.sort_unstable();
            let mut want = types.to_vec();
            want.sort_unstable();
            assert_eq!(handled, want, "{name}");
            for t in *types {
                assert!(catalog.get(t).is_some(), "{t}");
            }
        }
    }
}
