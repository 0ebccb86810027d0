//! The saga store: the engine's [`SagaStore`] on the `sagas` table, with
//! optimistic concurrency (a save names the version it replaces), and the query of
//! due sagas that every process's sweep runs (on `idx_sagas_due`).

use futures_util::future::BoxFuture;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use strategist_actors::{SagaState, SagaStatus, SagaStore, SagaStoreError};

use super::Store;
use super::entities::saga::{self, Column, Entity as Sagas};

fn err(e: impl std::fmt::Display) -> SagaStoreError {
    SagaStoreError::Store(e.to_string())
}

fn to_state(m: saga::Model) -> Result<SagaState, SagaStoreError> {
    Ok(SagaState {
        status: SagaStatus::parse(&m.status)
            .ok_or_else(|| err(format!("unknown status {}", m.status)))?,
        step: usize::try_from(m.step).map_err(err)?,
        data: serde_json::from_str(&m.data).map_err(err)?,
        attempts: u32::try_from(m.attempts).map_err(err)?,
        history: serde_json::from_str(&m.history).map_err(err)?,
        outbox: match &m.outbox {
            Some(text) => serde_json::from_str(text).map_err(err)?,
            None => Vec::new(),
        },
        id: m.id,
        saga: m.saga,
        deadline_ms: m.deadline_ms,
        request_id: m.request_id,
        error: m.error,
        version: m.version,
    })
}

fn to_row(s: &SagaState) -> Result<saga::ActiveModel, SagaStoreError> {
    // An outbox that cannot be written must fail the save: saving without it would
    // lose the events it names.
    let outbox = if s.outbox.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&s.outbox).map_err(err)?)
    };
    Ok(saga::ActiveModel {
        id: Set(s.id.clone()),
        saga: Set(s.saga.clone()),
        status: Set(s.status.as_str().to_owned()),
        step: Set(i32::try_from(s.step).unwrap_or(i32::MAX)),
        data: Set(s.data.to_string()),
        attempts: Set(i32::try_from(s.attempts).unwrap_or(i32::MAX)),
        deadline_ms: Set(s.deadline_ms),
        request_id: Set(s.request_id.clone()),
        error: Set(s.error.clone()),
        history: Set(serde_json::to_string(&s.history).unwrap_or_else(|_| "[]".into())),
        outbox: Set(outbox),
        version: Set(s.version),
        updated_at_ms: Set(chrono::Utc::now().timestamp_millis()),
    })
}

impl Store {
    /// Up to `limit` sagas in `status`, the longest unchanged first (a stuck saga
    /// is what an operator looks for), as stored rows.
    pub async fn sagas_by_status(
        &self,
        status: SagaStatus,
        limit: u64,
    ) -> Result<Vec<saga::Model>, super::StoreError> {
        Ok(Sagas::find()
            .filter(Column::Status.eq(status.as_str()))
            .order_by_asc(Column::UpdatedAtMs)
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// One saga's row.
    pub async fn saga(&self, id: &str) -> Result<Option<SagaState>, super::StoreError> {
        let row = Sagas::find_by_id(id.to_owned()).one(&self.db).await?;
        row.map(to_state)
            .transpose()
            .map_err(|e| super::StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))
    }
}

impl SagaStore for Store {
    fn create(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>> {
        let (db, row) = (self.db.clone(), to_row(s));
        Box::pin(async move {
            let row = row?;
            match Sagas::insert(row).exec_without_returning(&db).await {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().to_lowercase().contains("unique") => {
                    Err(SagaStoreError::Conflict)
                }
                Err(e) => Err(err(e)),
            }
        })
    }

    fn save(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>> {
        let (db, row, id, expected) = (self.db.clone(), to_row(s), s.id.clone(), s.version - 1);
        Box::pin(async move {
            let row = row?;
            let res = Sagas::update_many()
                .set(row)
                .filter(Column::Id.eq(id))
                .filter(Column::Version.eq(expected))
                .exec(&db)
                .await
                .map_err(err)?;
            if res.rows_affected == 0 {
                return Err(SagaStoreError::Conflict);
            }
            Ok(())
        })
    }

    fn load(&self, id: &str) -> BoxFuture<'static, Result<Option<SagaState>, SagaStoreError>> {
        let (db, id) = (self.db.clone(), id.to_owned());
        Box::pin(async move {
            Sagas::find_by_id(id)
                .one(&db)
                .await
                .map_err(err)?
                .map(to_state)
                .transpose()
        })
    }

    fn unfinished(&self, name: &str) -> BoxFuture<'static, Result<Vec<SagaState>, SagaStoreError>> {
        let (db, name) = (self.db.clone(), name.to_owned());
        Box::pin(async move {
            Sagas::find()
                .filter(Column::Saga.eq(name))
                .filter(Column::Status.is_in(["running", "compensating"]))
                .all(&db)
                .await
                .map_err(err)?
                .into_iter()
                .map(to_state)
                .collect()
        })
    }

    fn due(
        &self,
        name: &str,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<SagaState>, SagaStoreError>> {
        let (db, name) = (self.db.clone(), name.to_owned());
        Box::pin(async move {
            let deadline_passed = Condition::all()
                .add(Column::DeadlineMs.gt(0))
                .add(Column::DeadlineMs.lte(now_ms));
            let outbox_left = Condition::all()
                .add(Column::Outbox.is_not_null())
                .add(Column::UpdatedAtMs.lte(stale_before_ms));
            Sagas::find()
                .filter(Column::Saga.eq(name))
                .filter(Column::Status.is_in(["running", "compensating"]))
                .filter(Condition::any().add(deadline_passed).add(outbox_left))
                .order_by_asc(Column::DeadlineMs)
                .limit(u64::try_from(limit).unwrap_or(u64::MAX))
                .all(&db)
                .await
                .map_err(err)?
                .into_iter()
                .map(to_state)
                .collect()
        })
    }
}
