//! `cleanupExpiredData` against a real SQLite database: what is past retention
//! goes, in batches of the configured size, and nothing else (newer rows, open dead
//! letters, running sagas, tables with a retention of 0 days).

#![allow(clippy::unwrap_used)]

mod common;

use common::TestDb;
use sea_orm::{EntityTrait, PaginatorTrait, Set};
use strategist::database::Db;
use strategist::embeddings::Embedders;
use strategist::embeddings::cache_job::OptimizeEmbeddingCache;
use strategist::maintenance::{Cleanup, MaintenanceSettings};
use strategist::store::Store;
use strategist::store::entities::{
    dead_letter, embedding_chunk, event, file_text, index_entry, saga,
};

const DAY: i64 = 86_400_000;

fn ev(id: usize, archived_at_ms: i64) -> event::ActiveModel {
    event::ActiveModel {
        id: Set(format!("ev-{id:05}")),
        stream: Set("system.events".into()),
        event_type: Set("system.service.health".into()),
        version: Set(1),
        timestamp_ms: Set(archived_at_ms),
        correlation_id: Set(None),
        causation_id: Set(None),
        user_id: Set(None),
        data: Set("{}".into()),
        metadata: Set(None),
        entry_id: Set(format!("{archived_at_ms}-{id}")),
        entry_ms: Set(archived_at_ms),
        entry_seq: Set(id as i64),
        archived_at_ms: Set(archived_at_ms),
    }
}

fn sg(id: &str, status: &str, updated_at_ms: i64) -> saga::ActiveModel {
    saga::ActiveModel {
        id: Set(id.into()),
        saga: Set("file-processing".into()),
        status: Set(status.into()),
        step: Set(0),
        data: Set("{}".into()),
        attempts: Set(0),
        deadline_ms: Set(0),
        request_id: Set(None),
        error: Set(None),
        history: Set("[]".into()),
        outbox: Set(None),
        version: Set(1),
        updated_at_ms: Set(updated_at_ms),
    }
}

fn dl(id: &str, status: &str, updated_at_ms: i64) -> dead_letter::ActiveModel {
    dead_letter::ActiveModel {
        id: Set(id.into()),
        stream: Set("ai.events".into()),
        entry_ms: Set(updated_at_ms),
        entry_seq: Set(0),
        event_id: Set(None),
        event_type: Set(None),
        reason: Set("failed".into()),
        error: Set("boom".into()),
        group_name: Set("content-generator".into()),
        attempts: Set(3),
        original_id: Set(format!("{updated_at_ms}-0")),
        at: Set("2025-01-01T00:00:00Z".into()),
        reprocessed: Set(0),
        fields: Set("{}".into()),
        status: Set(status.into()),
        updated_at_ms: Set(updated_at_ms),
    }
}

#[tokio::test]
async fn cleanup_deletes_in_batches_what_is_past_retention_and_nothing_else() {
    let tdb = TestDb::sqlite();
    let store = Store::connect(&tdb.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    // 25 events past 365 days, 7 within.
    let mut rows: Vec<event::ActiveModel> = (0..25).map(|i| ev(i, now_ms - 400 * DAY)).collect();
    rows.extend((25..32).map(|i| ev(i, now_ms - 300 * DAY)));
    event::Entity::insert_many(rows)
        .exec(&store.db)
        .await
        .unwrap();
    saga::Entity::insert_many([
        sg("old-done", "completed", now_ms - 40 * DAY),
        sg("old-failed", "failed", now_ms - 40 * DAY),
        sg("old-running", "running", now_ms - 40 * DAY),
        sg("new-done", "completed", now_ms - DAY),
    ])
    .exec(&store.db)
    .await
    .unwrap();
    dead_letter::Entity::insert_many([
        dl("old-purged", "purged", now_ms - 40 * DAY),
        dl("old-open", "open", now_ms - 40 * DAY),
        dl("new-purged", "purged", now_ms - DAY),
    ])
    .exec(&store.db)
    .await
    .unwrap();

    let settings = MaintenanceSettings {
        batch: 10,
        pause_ms: 0,
        events_days: 365,
        notifications_days: 90,
        sagas_days: 30,
        drafts_days: 0,
        dead_letters_days: 30,
        scheduled_runs_days: 90,
        embeddings_unused_days: 30,
    };
    let job = Cleanup::new(Db::ready(store.clone()), settings);
    let out = job.clean(now).await.unwrap();
    assert_eq!(out.counts["events_deleted"], 25, "{out:?}");
    assert_eq!(out.counts["sagas_deleted"], 2, "{out:?}");
    assert_eq!(out.counts["dead_letters_deleted"], 1, "{out:?}");
    // 25 events in batches of 10 is 3 batches; 1 for sagas, 1 for dead letters.
    assert_eq!(out.counts["batches"], 5, "{out:?}");
    assert!(
        !out.counts.contains_key("drafts_deleted"),
        "retention 0 keeps drafts"
    );

    assert_eq!(event::Entity::find().count(&store.db).await.unwrap(), 7);
    let mut sagas: Vec<String> = saga::Entity::find()
        .all(&store.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    sagas.sort();
    assert_eq!(sagas, ["new-done", "old-running"]);
    let mut dls: Vec<String> = dead_letter::Entity::find()
        .all(&store.db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    dls.sort();
    assert_eq!(dls, ["new-purged", "old-open"]);

    // Run again: nothing left to delete.
    let out = job.clean(now).await.unwrap();
    assert_eq!(out.counts.get("events_deleted"), Some(&0));
    assert_eq!(out.counts.get("batches"), None);
}

fn chunk(hash: &str, model: &str, created_at_ms: i64) -> embedding_chunk::ActiveModel {
    embedding_chunk::ActiveModel {
        content_hash: Set(hash.into()),
        model: Set(model.into()),
        chunk_index: Set(0),
        start_char: Set(0),
        end_char: Set(10),
        text: Set("0123456789".into()),
        vector: Set(vec![0u8; 100]),
        dimensions: Set(25),
        created_at_ms: Set(created_at_ms),
    }
}

#[tokio::test]
async fn the_embedding_cache_drops_unused_models_and_unread_texts_but_never_an_indexed_vector() {
    let tdb = TestDb::sqlite();
    let store = Store::connect(&tdb.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    let current = "hashed-ngrams-v1";
    embedding_chunk::Entity::insert_many([
        chunk("gone-model", "retired-model", now_ms),
        chunk("indexed-old-model", "retired-model", now_ms - 90 * DAY),
        chunk("read-text", current, now_ms - 90 * DAY),
        chunk("unread-text", current, now_ms - 90 * DAY),
        chunk("fresh-text", current, now_ms - DAY),
    ])
    .exec(&store.db)
    .await
    .unwrap();
    file_text::Entity::insert(file_text::ActiveModel {
        file_id: Set("f1".into()),
        content_hash: Set("read-text".into()),
        text: Set("t".into()),
        length: Set(1),
        kind: Set("text".into()),
        truncated: Set(false),
        extracted_at_ms: Set(now_ms),
    })
    .exec(&store.db)
    .await
    .unwrap();
    index_entry::Entity::insert(index_entry::ActiveModel {
        file_id: Set("f2".into()),
        chunk_index: Set(0),
        user_id: Set("u".into()),
        contextual_core_id: Set("c".into()),
        content_hash: Set("indexed-old-model".into()),
        model: Set("retired-model".into()),
        indexed_at_ms: Set(now_ms),
    })
    .exec(&store.db)
    .await
    .unwrap();

    let settings = strategist::config::Settings::load(None, Vec::new()).unwrap();
    let embedders = std::sync::Arc::new(Embedders::from_settings(&settings.embeddings).unwrap());
    let job = OptimizeEmbeddingCache::new(
        Db::ready(store.clone()),
        embedders,
        settings.maintenance.clone(),
    );
    let out = job.optimize(now).await.unwrap();
    // retired-model is still named by an index entry, so it counts as in use; the
    // unread text of the current model goes.
    assert_eq!(out.counts["chunks_deleted"], 1, "{out:?}");
    assert_eq!(out.counts["bytes_freed"], 110, "{out:?}");
    let mut left: Vec<String> = embedding_chunk::Entity::find()
        .all(&store.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.content_hash)
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["fresh-text", "gone-model", "indexed-old-model", "read-text"]
    );

    // Once nothing indexes the retired model, all of its chunks go.
    index_entry::Entity::delete_many()
        .exec(&store.db)
        .await
        .unwrap();
    let out = job.optimize(now).await.unwrap();
    assert_eq!(out.counts["chunks_deleted"], 2, "{out:?}");
    assert_eq!(out.counts["bytes_freed"], 220, "{out:?}");
    assert_eq!(
        embedding_chunk::Entity::find()
            .count(&store.db)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn model_benchmarks_store_one_row_per_provider_with_retrieval_quality() {
    use strategist::ai::benchmarks::UpdateModelBenchmarks;
    use strategist::store::entities::model_benchmark;
    let tdb = TestDb::sqlite();
    let store = Store::connect(&tdb.url).await.unwrap();
    store.migrate().await.unwrap();
    let settings = strategist::config::Settings::load(None, Vec::new()).unwrap();
    let providers =
        std::sync::Arc::new(strategist::ai::Providers::from_settings(&settings.ai).unwrap());
    let embedders = std::sync::Arc::new(Embedders::from_settings(&settings.embeddings).unwrap());
    let job = UpdateModelBenchmarks::new(Db::ready(store.clone()), providers, embedders);
    let out = job.measure().await.unwrap();
    let rows = model_benchmark::Entity::find()
        .all(&store.db)
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, out.counts["measured"]);
    // Providers without credentials are stored with their error, not skipped.
    let errors = rows.iter().filter(|r| r.error.is_some()).count() as u64;
    assert_eq!(errors, out.counts["failed"], "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.provider == "offline")
            .all(|r| r.error.is_none()),
        "{rows:?}"
    );
    let generation = rows
        .iter()
        .find(|r| r.provider == "offline" && r.kind == "generation")
        .unwrap();
    assert!(generation.tokens_per_second > 0.0, "{generation:?}");
    assert_eq!(generation.cost_usd, 0.0);
    let embedding = rows
        .iter()
        .find(|r| r.kind == "embedding" && r.provider == "offline")
        .unwrap();
    let recall = embedding.retrieval_recall.unwrap();
    println!("offline embedder recall@1 on the bundled set: {recall:.2}");
    assert!((0.0..=1.0).contains(&recall));
    assert!(
        recall >= 0.5,
        "hashed n-grams should find most passages: {recall}"
    );
}
