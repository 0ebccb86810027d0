//! The database as the running service sees it: opened (and migrated) in the
//! background, retried until it answers, so that Redis routing keeps working while
//! the database is down and `/readyz` says why.

use std::sync::Arc;
use std::time::Duration;

use strategist_actors::{HandlerError, Health};
use tokio::sync::OnceCell;

use crate::store::{Store, StoreError};

/// The health board's line for the database.
pub const PART: &str = "database";

/// A database that may not be open yet.
#[derive(Clone, Default)]
pub struct Db(Arc<OnceCell<Store>>);

impl Db {
    /// An already open store (tests, CLI).
    pub fn ready(store: Store) -> Self {
        Db(Arc::new(OnceCell::new_with(Some(store))))
    }

    /// The store, or a retryable error while it is not open.
    pub fn get(&self) -> Result<&Store, HandlerError> {
        self.0
            .get()
            .ok_or_else(|| HandlerError::retryable("the database is not available yet"))
    }

    /// The store, or the HTTP API's 503 while it is not open.
    pub fn http(&self) -> Result<&Store, crate::http::ApiError> {
        self.0
            .get()
            .ok_or_else(|| crate::http::ApiError::unavailable("the database is not available yet"))
    }

    /// The store if open.
    pub fn try_get(&self) -> Option<&Store> {
        self.0.get()
    }

    /// Opens `url` and migrates it, retrying every few seconds until it works.
    /// A URL of an unsupported kind fails at once (no retry fixes it).
    pub async fn open(url: &str, health: &Health) -> Result<Db, StoreError> {
        let db = Db::default();
        match Self::try_open(url).await {
            Ok(s) => {
                let _ = db.0.set(s);
                health.up(PART);
                return Ok(db);
            }
            Err(e @ StoreError::BadUrl(_)) | Err(e @ StoreError::Folder { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "database unavailable; retrying in the background");
                health.down(PART, e.to_string());
            }
        }
        let (cell, url, health) = (db.clone(), url.to_owned(), health.clone());
        actix::spawn(async move {
            let mut delay = Duration::from_millis(500);
            loop {
                tokio::time::sleep(delay).await;
                match Self::try_open(&url).await {
                    Ok(s) => {
                        let _ = cell.0.set(s);
                        health.up(PART);
                        tracing::info!("database available");
                        return;
                    }
                    Err(e) => {
                        health.down(PART, e.to_string());
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Ok(db)
    }

    async fn try_open(url: &str) -> Result<Store, StoreError> {
        let s = Store::connect(url).await?;
        s.migrate().await?;
        Ok(s)
    }
}

/// How many batches of one writer (archiver, projection) commit at once. PostgreSQL
/// takes writers side by side, and one batch at a time leaves it waiting on round
/// trips; SQLite has one write lock, and a second writer would only sleep in its
/// busy handler.
pub fn parallel_writers(url: &str) -> usize {
    if url.starts_with("sqlite:") { 1 } else { 4 }
}

/// Turns a database error into a handler error: worth retrying.
pub fn retry(e: StoreError) -> HandlerError {
    HandlerError::retryable(e)
}

/// Sagas are stored in the database; while it is not open yet, every call fails
/// (and is retried by the runtime).
impl strategist_actors::SagaStore for Db {
    fn create(
        &self,
        s: &strategist_actors::SagaState,
    ) -> futures_util::future::BoxFuture<'static, Result<(), strategist_actors::SagaStoreError>>
    {
        match self.try_get() {
            Some(store) => store.create(s),
            None => Box::pin(async { Err(not_open()) }),
        }
    }

    fn save(
        &self,
        s: &strategist_actors::SagaState,
    ) -> futures_util::future::BoxFuture<'static, Result<(), strategist_actors::SagaStoreError>>
    {
        match self.try_get() {
            Some(store) => store.save(s),
            None => Box::pin(async { Err(not_open()) }),
        }
    }

    fn load(
        &self,
        id: &str,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Option<strategist_actors::SagaState>, strategist_actors::SagaStoreError>,
    > {
        match self.try_get() {
            Some(store) => store.load(id),
            None => Box::pin(async { Err(not_open()) }),
        }
    }

    fn unfinished(
        &self,
        saga: &str,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Vec<strategist_actors::SagaState>, strategist_actors::SagaStoreError>,
    > {
        match self.try_get() {
            Some(store) => store.unfinished(saga),
            None => Box::pin(async { Err(not_open()) }),
        }
    }

    fn due(
        &self,
        saga: &str,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Vec<strategist_actors::SagaState>, strategist_actors::SagaStoreError>,
    > {
        match self.try_get() {
            Some(store) => store.due(saga, now_ms, stale_before_ms, limit),
            None => Box::pin(async { Err(not_open()) }),
        }
    }
}

fn not_open() -> strategist_actors::SagaStoreError {
    strategist_actors::SagaStoreError::Store("the database is not available yet".into())
}
