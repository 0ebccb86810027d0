//! The design's UserPreferencesProjection: `user.preferences.updated` and
//! `user.embedding.model.changed` give each user's current preferences, with every
//! change kept as history.
//!
//! Invariants:
//! - an event is applied once: its id goes into `projection_applied` in the same
//!   transaction as the state it changes;
//! - the newest write of each field wins by stream order (the Redis entry id of the
//!   event that set it is kept beside the value), so the state does not depend on
//!   the order redeliveries and claims bring events in, and equals a replay of the
//!   event store in stream order;
//! - live application and rebuild use the same [`PrefState::apply`].

use std::collections::BTreeSet;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Map, Value};
use strategist_actors::Envelope;

use super::entities::{preference_history, projection_offset, user_preferences};
use super::event_store::entry_parts;
use super::json_rows::{self, Col};
use super::{Store, StoreError, shapes};
use crate::events::user::{UserEmbeddingModelChanged, UserPreferencesUpdated};

/// The projection's name (also its consumer group's).
pub const PROJECTION: &str = "user-preferences";

/// The event types it applies.
pub const TYPES: [&str; 2] = ["user.preferences.updated", "user.embedding.model.changed"];

/// One user's preferences while being computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrefState {
    /// Field → value.
    pub prefs: Map<String, Value>,
    /// Field → entry id of the event that set it.
    pub versions: Map<String, Value>,
    /// The embedding model.
    pub embedding_model: Option<String>,
    /// Entry id of the event that set it.
    pub embedding_version: Option<String>,
    /// The last event applied.
    pub last_event_id: String,
    /// Timestamp of the newest event applied.
    pub updated_at_ms: i64,
}

fn newer(entry: &str, than: Option<&str>) -> bool {
    than.is_none_or(|t| entry_parts(entry) >= entry_parts(t))
}

impl PrefState {
    fn from_row(r: &user_preferences::Model) -> Self {
        let map = |s: &str| match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        PrefState {
            prefs: map(&r.preferences),
            versions: map(&r.versions),
            embedding_model: r.embedding_model.clone(),
            embedding_version: r.embedding_model_version.clone(),
            last_event_id: r.last_event_id.clone(),
            updated_at_ms: r.updated_at_ms,
        }
    }

    /// Applies one event; returns the history rows it makes. Events of other types
    /// and payloads that do not decode change nothing.
    pub fn apply(&mut self, ev: &Envelope, entry_id: &str) -> Vec<preference_history::Model> {
        let ts = ev.timestamp.timestamp_millis();
        let row = |field: &str, old: Option<&Value>, new: Option<&Value>, user: &str| {
            preference_history::Model {
                event_id: ev.id.to_string(),
                field: field.to_owned(),
                user_id: user.to_owned(),
                old_value: old.map(Value::to_string),
                new_value: new.map(Value::to_string),
                entry_id: entry_id.to_owned(),
                timestamp_ms: ts,
            }
        };
        let mut history = Vec::new();
        match ev.event_type.as_str() {
            "user.preferences.updated" => {
                let Ok(p) = serde_json::from_value::<UserPreferencesUpdated>(ev.data.clone())
                else {
                    return history;
                };
                for field in &p.changed_fields {
                    let new = p.new_values.get(field);
                    history.push(row(field, p.old_values.get(field), new, &p.user_id));
                    let current = self.versions.get(field).and_then(Value::as_str);
                    if newer(entry_id, current) {
                        match new {
                            Some(v) => self.prefs.insert(field.clone(), v.clone()),
                            None => self.prefs.remove(field),
                        };
                        self.versions
                            .insert(field.clone(), Value::String(entry_id.to_owned()));
                    }
                }
            }
            "user.embedding.model.changed" => {
                let Ok(p) = serde_json::from_value::<UserEmbeddingModelChanged>(ev.data.clone())
                else {
                    return history;
                };
                let old = p.old_model_id.map(Value::String);
                let new = Value::String(p.new_model_id.clone());
                history.push(row("embedding_model", old.as_ref(), Some(&new), &p.user_id));
                if newer(entry_id, self.embedding_version.as_deref()) {
                    self.embedding_model = Some(p.new_model_id);
                    self.embedding_version = Some(entry_id.to_owned());
                }
            }
            _ => return history,
        }
        self.last_event_id = ev.id.to_string();
        self.updated_at_ms = self.updated_at_ms.max(ts);
        history
    }
}

fn user_of(ev: &Envelope) -> Option<String> {
    ev.data
        .get("user_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| ev.user_id.clone())
}

fn row_of(user_id: &str, s: &PrefState) -> user_preferences::ActiveModel {
    user_preferences::ActiveModel {
        user_id: Set(user_id.to_owned()),
        preferences: Set(Value::Object(s.prefs.clone()).to_string()),
        versions: Set(Value::Object(s.versions.clone()).to_string()),
        embedding_model: Set(s.embedding_model.clone()),
        embedding_model_version: Set(s.embedding_version.clone()),
        last_event_id: Set(s.last_event_id.clone()),
        updated_at_ms: Set(s.updated_at_ms),
    }
}

/// Records the last event the projection applied: the newest id wins, whichever
/// batch commits last.
async fn save_offset<C: ConnectionTrait>(db: &C, last_event_id: String) -> Result<(), StoreError> {
    use sea_orm::sea_query::ExprTrait;
    let offset = projection_offset::ActiveModel {
        projection: Set(PROJECTION.to_owned()),
        last_event_id: Set(last_event_id),
        updated_at_ms: Set(chrono::Utc::now().timestamp_millis()),
    };
    projection_offset::Entity::insert(offset)
        .on_conflict(
            OnConflict::column(projection_offset::Column::Projection)
                .update_columns([
                    projection_offset::Column::LastEventId,
                    projection_offset::Column::UpdatedAtMs,
                ])
                .action_and_where(
                    Expr::col((
                        projection_offset::Entity,
                        projection_offset::Column::LastEventId,
                    ))
                    .lt(Expr::cust("excluded.last_event_id")),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Marks `ids` applied by this projection in one statement; returns those that
/// were not marked before.
async fn mark_applied<C: ConnectionTrait>(
    db: &C,
    ids: Vec<String>,
) -> Result<BTreeSet<String>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "INSERT INTO projection_applied (projection, event_id) {} \
         ON CONFLICT (projection, event_id) DO NOTHING RETURNING event_id",
        json_rows::select(
            backend,
            &[("projection", Col::Text), ("event_id", Col::Text)]
        )
    );
    let rows = ids
        .into_iter()
        .map(|id| serde_json::json!({"projection": PROJECTION, "event_id": id}))
        .collect();
    let mut fresh = BTreeSet::new();
    for r in db
        .query_all_raw(json_rows::statement(backend, sql, rows))
        .await?
    {
        fresh.insert(r.try_get::<String>("", "event_id")?);
    }
    Ok(fresh)
}

fn json_row(user_id: &str, s: &PrefState) -> Value {
    serde_json::json!({
        "user_id": user_id,
        "preferences": Value::Object(s.prefs.clone()).to_string(),
        "versions": Value::Object(s.versions.clone()).to_string(),
        "embedding_model": s.embedding_model,
        "embedding_model_version": s.embedding_version,
        "last_event_id": s.last_event_id,
        "updated_at_ms": s.updated_at_ms,
    })
}

/// Writes users' rows (each user once) in one statement.
async fn upsert_rows<C: ConnectionTrait>(db: &C, rows: Vec<Value>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let cols = [
        ("user_id", Col::Text),
        ("preferences", Col::Text),
        ("versions", Col::Text),
        ("embedding_model", Col::Text),
        ("embedding_model_version", Col::Text),
        ("last_event_id", Col::Text),
        ("updated_at_ms", Col::BigInt),
    ];
    let set: Vec<String> = cols[1..]
        .iter()
        .map(|(c, _)| format!("{c} = excluded.{c}"))
        .collect();
    let sql = json_rows::insert(
        backend,
        "user_preferences",
        &cols,
        &format!("ON CONFLICT (user_id) DO UPDATE SET {}", set.join(", ")),
    );
    db.execute_raw(json_rows::statement(backend, sql, rows))
        .await?;
    Ok(())
}

/// Adds history rows in one statement; a row already there is kept.
async fn insert_history<C: ConnectionTrait>(
    db: &C,
    history: Vec<preference_history::Model>,
) -> Result<(), StoreError> {
    if history.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let cols = [
        ("event_id", Col::Text),
        ("field", Col::Text),
        ("user_id", Col::Text),
        ("old_value", Col::Text),
        ("new_value", Col::Text),
        ("entry_id", Col::Text),
        ("timestamp_ms", Col::BigInt),
    ];
    let sql = json_rows::insert(
        backend,
        "preference_history",
        &cols,
        "ON CONFLICT (event_id, field) DO NOTHING",
    );
    // The model serializes under its column names; a struct of strings and
    // integers always serializes.
    let rows = history
        .iter()
        .map(|h| serde_json::to_value(h).unwrap_or(Value::Null))
        .collect();
    db.execute_raw(json_rows::statement(backend, sql, rows))
        .await?;
    Ok(())
}

async fn save<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    s: &PrefState,
    history: Vec<preference_history::Model>,
    exists: bool,
) -> Result<(), StoreError> {
    let row = row_of(user_id, s);
    if exists {
        row.update(db).await?;
    } else {
        row.insert(db).await?;
    }
    insert_history(db, history).await
}

impl Store {
    /// Applies one event live, once. Returns false when it had been applied before.
    pub async fn apply_preferences(
        &self,
        ev: &Envelope,
        entry_id: &str,
    ) -> Result<bool, StoreError> {
        let Some(user_id) = user_of(ev) else {
            return Ok(false);
        };
        let txn = self.begin_write().await?;
        // Row lock first, then the marker: the same order as rebuild, so the two
        // cannot deadlock on PostgreSQL.
        let mut find = user_preferences::Entity::find_by_id(user_id.clone());
        if self.locks_rows() {
            // Another process may apply an event of the same user right now.
            find = find.lock_exclusive();
        }
        let current = find.one(&*txn).await?;
        if mark_applied(&*txn, vec![ev.id.to_string()])
            .await?
            .is_empty()
        {
            txn.commit().await?;
            return Ok(false);
        }
        let mut state = current
            .as_ref()
            .map(PrefState::from_row)
            .unwrap_or_default();
        let history = state.apply(ev, entry_id);
        save(&*txn, &user_id, &state, history, current.is_some()).await?;
        save_offset(&*txn, ev.id.to_string()).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Applies a batch of events live, each once, in one transaction of five
    /// statements whatever its size: lock the users' rows, mark the events (which
    /// says which are new), write the rows, write the history, commit. Per event it
    /// was four statements, and with multi-row `VALUES` lists a statement per
    /// power-of-two chunk; on PostgreSQL each is a round trip the batch waits on.
    /// Returns, per event, whether it was applied now (false: applied before, or
    /// not about a user).
    ///
    /// Users are locked in sorted order, so two processes applying batches of the
    /// same users cannot deadlock on PostgreSQL; an event another process is
    /// applying right now makes this batch wait for that commit, then skip it.
    pub async fn apply_preferences_batch(
        &self,
        batch: &[(&Envelope, &str)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = vec![false; batch.len()];
        let mut by_user: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (i, (ev, _)) in batch.iter().enumerate() {
            if let Some(u) = user_of(ev) {
                by_user.entry(u).or_default().push(i);
            }
        }
        if by_user.is_empty() {
            return Ok(out);
        }
        let txn = self.begin_write().await?;
        // 1. The users' rows, locked, in sorted order.
        let mut find = user_preferences::Entity::find()
            .filter(
                user_preferences::Column::UserId
                    .is_in(shapes::padded(by_user.keys().cloned().collect())),
            )
            .order_by_asc(user_preferences::Column::UserId);
        if self.locks_rows() {
            find = find.lock_exclusive();
        }
        let rows: std::collections::HashMap<String, user_preferences::Model> = find
            .all(&*txn)
            .await?
            .into_iter()
            .map(|m| (m.user_id.clone(), m))
            .collect();
        // 2. Mark the events applied; the markers that were new say which to apply
        //    (one applied before, by this process or another, is skipped; a marker
        //    another transaction holds uncommitted makes this one wait for it).
        let ids: Vec<String> = by_user
            .values()
            .flatten()
            .map(|&i| batch[i].0.id.to_string())
            .collect();
        let fresh = mark_applied(&*txn, ids).await?;
        // 3. Apply in memory.
        let mut applied = BTreeSet::new();
        let mut upserts = Vec::new();
        let mut history = Vec::new();
        let mut last = None;
        for (user_id, idx) in &by_user {
            let mut state = rows
                .get(user_id)
                .map(PrefState::from_row)
                .unwrap_or_default();
            let mut changed = false;
            for &i in idx {
                let (ev, entry_id) = batch[i];
                let id = ev.id.to_string();
                if !fresh.contains(&id) || !applied.insert(id.clone()) {
                    continue;
                }
                history.extend(state.apply(ev, entry_id));
                out[i] = true;
                changed = true;
                last = Some(id);
            }
            if changed {
                upserts.push(json_row(user_id, &state));
            }
        }
        // 4. Write the rows and the history: a statement each, whatever the size.
        upsert_rows(&*txn, upserts).await?;
        insert_history(&*txn, history).await?;
        // The offset row is a record for operators, not state the projection
        // reads. On SQLite (one batch at a time) it goes in the transaction: on
        // its own it would wait for the write lock a second time per batch, behind
        // the archiver. On PostgreSQL it goes after the commit: in the transaction,
        // the one offset row made every parallel batch wait for the others' commits.
        let in_batch = !self.locks_rows();
        if in_batch && let Some(last) = &last {
            save_offset(&*txn, last.clone()).await?;
        }
        txn.commit().await?;
        if !in_batch
            && let Some(last) = last
            && let Err(e) = save_offset(&self.db, last).await
        {
            tracing::debug!(error = %e, "projection offset not recorded");
        }
        Ok(out)
    }

    /// A user's current preferences.
    pub async fn preferences(
        &self,
        user_id: &str,
    ) -> Result<Option<user_preferences::Model>, StoreError> {
        Ok(user_preferences::Entity::find_by_id(user_id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// A user's preference history, oldest first.
    pub async fn preference_history(
        &self,
        user_id: &str,
    ) -> Result<Vec<preference_history::Model>, StoreError> {
        use sea_orm::QueryOrder;
        Ok(preference_history::Entity::find()
            .filter(preference_history::Column::UserId.eq(user_id))
            .order_by_asc(preference_history::Column::TimestampMs)
            .order_by_asc(preference_history::Column::EntryId)
            .all(&self.db)
            .await?)
    }

    /// Users with preference events in the event store or a preferences row.
    pub async fn preference_users(&self) -> Result<Vec<String>, StoreError> {
        use super::entities::event;
        let mut users: BTreeSet<String> = user_preferences::Entity::find()
            .select_only()
            .column(user_preferences::Column::UserId)
            .into_tuple::<String>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let from_events: Vec<Option<String>> = event::Entity::find()
            .select_only()
            .column(event::Column::UserId)
            .filter(event::Column::EventType.is_in(TYPES))
            .distinct()
            .into_tuple::<Option<String>>()
            .all(&self.db)
            .await?;
        users.extend(from_events.into_iter().flatten());
        Ok(users.into_iter().collect())
    }

    /// Rebuilds one user's preferences from the event store (the design's
    /// `rebuildFromHistory`), safe while live events keep arriving: the state is
    /// recomputed from history, then merged with the current row field by field,
    /// where a live write newer than anything in history wins.
    pub async fn rebuild_preferences(&self, user_id: &str) -> Result<usize, StoreError> {
        let history = self.events_for_user(user_id).await?;
        let mut fresh = PrefState::default();
        let mut rows = Vec::new();
        let mut applied = Vec::new();
        let mut newest: Option<String> = None;
        for m in history
            .iter()
            .filter(|m| TYPES.contains(&m.event_type.as_str()))
        {
            let Some(ev) = super::event_store::to_envelope(m) else {
                continue;
            };
            rows.extend(fresh.apply(&ev, &m.entry_id));
            applied.push(ev.id.to_string());
            newest = Some(m.entry_id.clone());
        }
        let txn = self.begin_write().await?;
        let mut find = user_preferences::Entity::find_by_id(user_id.to_owned());
        if self.locks_rows() {
            find = find.lock_exclusive();
        }
        let current = find.one(&*txn).await?;
        if let Some(cur) = current.as_ref().map(PrefState::from_row) {
            // A field written live by an event not archived yet is newer than
            // anything in history: keep it. Anything else comes from history.
            for (field, v) in &cur.versions {
                let live = v.as_str().unwrap_or_default();
                let fresh_v = fresh.versions.get(field).and_then(Value::as_str);
                let beyond_history = newest
                    .as_deref()
                    .is_none_or(|n| entry_parts(live) > entry_parts(n));
                if beyond_history && newer(live, fresh_v) {
                    match cur.prefs.get(field) {
                        Some(val) => fresh.prefs.insert(field.clone(), val.clone()),
                        None => fresh.prefs.remove(field),
                    };
                    fresh.versions.insert(field.clone(), v.clone());
                }
            }
            if let Some(live) = cur.embedding_version.as_deref() {
                let beyond_history = newest
                    .as_deref()
                    .is_none_or(|n| entry_parts(live) > entry_parts(n));
                if beyond_history && newer(live, fresh.embedding_version.as_deref()) {
                    fresh.embedding_model = cur.embedding_model.clone();
                    fresh.embedding_version = cur.embedding_version.clone();
                }
            }
            fresh.updated_at_ms = fresh.updated_at_ms.max(cur.updated_at_ms);
            if fresh.last_event_id.is_empty() {
                fresh.last_event_id = cur.last_event_id.clone();
            }
        }
        let n = applied.len();
        if n > 0 || current.is_some() {
            save(&*txn, user_id, &fresh, rows, current.is_some()).await?;
        }
        mark_applied(&*txn, applied).await?;
        txn.commit().await?;
        Ok(n)
    }
}
