//! The database: sea-orm over SQLite (the embedded default) or PostgreSQL, with
//! migrations. Redis keeps a retention window; the database keeps history (the event
//! store) and state (projections, sagas).
//!
//! Invariant: every write that must happen once is idempotent by the event id
//! (primary keys and `ON CONFLICT DO NOTHING`), so redelivery never doubles it.

use std::sync::Arc;
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
pub mod json_rows;
pub mod market;
pub mod market_period;
mod migrate;
pub mod migration;
pub mod notifications;
pub mod preferences;
pub mod sagas;
pub mod shapes;

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
    /// On SQLite, the turn to write: see [`Store::begin_write`].
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A write transaction ([`Store::begin_write`]): the transaction, and on SQLite
/// this process's turn to write, held until it commits or is dropped.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    /// Commits, then gives the turn to the next writer.
    pub async fn commit(self) -> Result<(), sea_orm::DbErr> {
        self.txn.commit().await
    }
}

/// Whether `url` names a PostgreSQL server on this machine and says nothing about
/// TLS (no `sslmode` in it, no `PGSSLMODE` in the environment). sqlx's default
/// (`prefer`) negotiates TLS with a local server that offers it, and under load
/// that made every batch of the projection several times slower (measured with
/// `scripts/bench-load.sh`: 59 s behind with TLS, within a second without), while
/// traffic that never leaves the host gains nothing from it. Ask for TLS
/// explicitly (`sslmode=require`) to keep it.
pub fn loopback_without_sslmode(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let postgres = matches!(u.scheme(), "postgres" | "postgresql");
    let says_tls =
        u.query_pairs().any(|(k, _)| k == "sslmode") || std::env::var_os("PGSSLMODE").is_some();
    let local = matches!(
        u.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    postgres && local && !says_tls
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
                    // Prepared statements live in this process. Batch writes are
                    // one small statement each (`json_rows`); when they were
                    // multi-row inserts, one statement per row count, a cache of
                    // 100 per connection held over 100 MiB under load.
                    .statement_cache_capacity(16)
            });
        // sqlx prepares every statement and PostgreSQL switches a prepared
        // statement to a generic plan after five runs. For `event_id IN ($2, ...)`
        // that plan scans every row of the projection and filters (measured: 656 ms
        // per batch at 95,000 markers, growing with the table; the projection kept
        // about 1,100 events/s). A plan per execution costs well under a millisecond
        // and uses the index.
        let plain = loopback_without_sslmode(url);
        opts.map_sqlx_postgres_opts(move |o| {
            let o = o.options([("plan_cache_mode", "force_custom_plan")]);
            if plain {
                o.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable)
            } else {
                o
            }
        });
        let db = Database::connect(opts)
            .await
            .map_err(|source| StoreError::Connect { url: shown, source })?;
        let write_turn = sqlite.then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store {
            db,
            sqlite_file,
            write_turn,
        })
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
    /// reader could otherwise fail when another writer commits first. And it waits
    /// for this process's turn first, so the writers of one process (archiver,
    /// projection, workers) queue here in order instead of in SQLite's busy
    /// handler, which sleeps 1 to 100 ms between tries (at 10,000 events/s those
    /// sleeps took 1.5 s of every 5, measured with `strace -c`). Other processes
    /// on the same file still meet the busy handler.
    pub async fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        let turn = match &self.write_turn {
            Some(t) => Some(t.clone().lock_owned().await),
            None => None,
        };
        let opts = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(WriteTxn {
            txn: self.db.begin_with_options(opts).await?,
            _turn: turn,
        })
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

#[cfg(test)]
mod tests {
    use super::loopback_without_sslmode;

    #[test]
    fn only_a_local_postgres_url_without_sslmode_goes_without_tls() {
        // PGSSLMODE is not set in the test environment; if it were, nothing is plain.
        let env = std::env::var_os("PGSSLMODE").is_some();
        assert_eq!(
            loopback_without_sslmode("postgres://postgres@127.0.0.1:5432/db"),
            !env
        );
        assert_eq!(
            loopback_without_sslmode("postgresql://u:p@localhost/db"),
            !env
        );
        assert!(!loopback_without_sslmode(
            "postgres://postgres@127.0.0.1:5432/db?sslmode=require"
        ));
        assert!(!loopback_without_sslmode("postgres://u@db.example.com/db"));
        assert!(!loopback_without_sslmode(
            "sqlite://data/strategist.db?mode=rwc"
        ));
        assert!(!loopback_without_sslmode("not a url"));
    }
}
