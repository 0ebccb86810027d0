//! What a run of the whole system left in the database, for the suites that kill
//! processes or Redis nodes under load and then count: which events the archiver
//! stored and the user-preferences projection applied, and whether any effect
//! happened twice. Also the `migrate` and the runtime those suites need first.

use std::collections::HashSet;
use std::process::Command;

use sea_orm::{ConnectionTrait, Statement};
use strategist::events::streams;
use strategist::store::Store;
use strategist::store::preferences::PROJECTION;

/// Runs `strategist migrate` on `db_url` and asserts it succeeded.
pub fn migrate(db_url: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_strategist"))
        .arg("migrate")
        .env("DATABASE_URL", db_url)
        .env_remove("STRATEGIST_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A runtime for reading the database from a synchronous test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The first column of every row of `sql`, as text.
pub async fn ids(store: &Store, sql: &str) -> HashSet<String> {
    let backend = store.db.get_database_backend();
    store
        .db
        .query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The single number `sql` answers (0 when it answers no row).
pub async fn count(store: &Store, sql: &str) -> i64 {
    let backend = store.db.get_database_backend();
    store
        .db
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .map(|r| r.try_get_by_index::<i64>(0).unwrap())
        .unwrap_or(0)
}

/// The ids of the user.events events stored by the archiver, and of those applied
/// by the user-preferences projection.
pub async fn effects(store: &Store) -> (HashSet<String>, HashSet<String>) {
    let archived = ids(
        store,
        &format!("SELECT id FROM events WHERE stream = '{}'", streams::USER),
    )
    .await;
    let applied = ids(
        store,
        &format!("SELECT event_id FROM projection_applied WHERE projection = '{PROJECTION}'"),
    )
    .await;
    (archived, applied)
}

/// Event ids with more than one preference-history row (one field changes per
/// event): an effect that happened twice.
pub async fn duplicate_history(store: &Store) -> i64 {
    count(
        store,
        "SELECT COUNT(*) FROM (SELECT event_id FROM preference_history \
         GROUP BY event_id HAVING COUNT(*) > 1) d",
    )
    .await
}
