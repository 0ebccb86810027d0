//! `cleanupExpiredData` against a real SQLite database: what is past retention
//! goes, in batches of the configured size, and nothing else (newer rows, open dead
//! letters, running sagas, tables with a retention of 0 days).

#![allow(clippy::unwrap_used)]

mod common;

use common::TestDb;
use sea_orm::{EntityTrait, PaginatorTrait, Set};
use strategist::database::Db;
use strategist::maintenance::{Cleanup, MaintenanceSettings};
use strategist::store::Store;
use strategist::store::entities::{dead_letter, event, saga};

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
