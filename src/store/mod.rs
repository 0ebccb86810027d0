//! The database: sea-orm over SQLite (the embedded default) or PostgreSQL, with
//! migrations. Redis keeps a retention window; the database keeps history (the event
//! store) and state (projections, sagas).
//!
//! Invariant: every write that must happen once is idempotent by the event id
//! (primary keys and `ON CONFLICT DO NOTHING`), so redelivery never doubles it.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub mod ai;
pub mod contacts;
pub mod dead_letters;
pub mod entities;
pub mod event_store;
pub mod files;
pub mod market;
pub mod market_period;
mod migrate;
pub mod migration;
pub mod notifications;
pub mod preferences;
pub mod sagas;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither sqlite:// nor postgres://.
    #[error("DATABASE_URL `{0}` is not supported: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// The SQLite file's folder cannot be made.
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot open the database at {url}: {source}")]
    Connect {
        /// The URL without password.
        url: String,
        /// What failed.
        source: DbErr,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(DbErr),
    /// A query failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// Another writer changed what this one read; try again (one at a time).
    #[error("database: conflict: {0}")]
    Conflict(String),
    /// A page cursor (`after`) that names no row.
    #[error("after: no event {0}")]
    UnknownCursor(String),
}

/// The open database.
#[derive(Clone)]
pub struct Store {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The SQLite file, when it is one (its migration lock lives beside it).
    sqlite_file: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens `url`, making the folder of a SQLite file when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let shown = crate::redis_conn::redacted(url);
        // The SQLite file, unless in memory: its folder is made here, and its
        // migration lock lives beside it.
        let sqlite_file = url
            .strip_prefix("sqlite://")
            .map(|rest| rest.split('?').next().unwrap_or_default())
            .filter(|p| !p.is_empty() && *p != ":memory:" && !p.starts_with("file::memory:"))
            .map(std::path::PathBuf::from);
        if url.starts_with("sqlite://") {
            if let Some(dir) = sqlite_file
                .as_deref()
                .and_then(std::path::Path::parent)
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        } else if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(StoreError::BadUrl(shown));
        }
        let sqlite = url.starts_with("sqlite://");
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            // SQLite has one writer at a time anyway; each connection keeps its
            // own page and statement caches, so fewer connections is less memory.
            .max_connections(if sqlite { 4 } else { 10 })
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                // On every connection of the pool (a PRAGMA run once reached only
                // one of them). WAL lets readers run beside the writer. NORMAL
                // syncs the WAL at checkpoints, not at every commit: a crash of
                // the process loses nothing, a power cut or kernel crash may roll
                // back the last commits (never corrupt the file), whose entries
                // were already acked. That window is the price of volume; the
                // README says so. Writers queue for the one write lock instead of
                // failing fast.
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    // A multi-row insert is a new statement for every row count,
                    // and a prepared 500-row insert is large: a cache of 100 per
                    // connection held over 100 MiB under load.
                    .statement_cache_capacity(16)
            });
        let db = Database::connect(opts)
            .await
            .map_err(|source| StoreError::Connect { url: shown, source })?;
        Ok(Store { db, sqlite_file })
    }

    /// Applies every pending migration; processes started together take turns
    /// (see [`migrate`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::migrate(&self.db, self.sqlite_file.as_deref())
            .await
            .map_err(StoreError::Migrate)
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a read-then-write transaction that started as a
    /// reader could otherwise fail when another writer commits first.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        let opts = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(self.db.begin_with_options(opts).await?)
    }

    /// Whether rows can be locked with `SELECT ... FOR UPDATE` (PostgreSQL); SQLite
    /// serializes writers instead.
    pub fn locks_rows(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::Db)
    }
}
