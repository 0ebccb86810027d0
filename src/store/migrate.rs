//! Migrations, one process at a time. Several processes started together on a
//! fresh database (`docker compose up --scale app=3`, a rolling deploy) would
//! otherwise race to create the same tables, and all but one fail with a
//! duplicate-type error (measured: 2 of 3 concurrent `strategist migrate` failed on
//! PostgreSQL).
//!
//! PostgreSQL: a transaction-scoped advisory lock, held on one pooled connection
//! while the migrator works on the others; it is released on commit, or by the
//! server when a process dies. SQLite: an exclusive lock on `<file>.migrate-lock`
//! beside the database, released when the file is closed, also by the OS when the
//! process dies. The winner migrates; the others wait, then find nothing to do.

use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use super::migration::Migrator;

/// The advisory lock's key: any fixed number; this one spells "strategist migrate".
const PG_LOCK_KEY: i64 = 0x5354_5241_5445_4749;

/// How long a process waits for another's migration before giving up.
const WAIT: Duration = Duration::from_secs(300);

/// Applies every pending migration under the lock of its database kind.
pub(super) async fn migrate(
    db: &DatabaseConnection,
    sqlite_file: Option<&Path>,
) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let lock = db.begin().await?;
            lock.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [PG_LOCK_KEY.into()],
            ))
            .await?;
            let res = Migrator::up(db, None).await;
            lock.commit().await?;
            res
        }
        _ => match sqlite_file {
            Some(path) => {
                let _held = lock_file(path).await?;
                Migrator::up(db, None).await
            }
            None => Migrator::up(db, None).await,
        },
    }
}

/// Takes the exclusive lock of `<file>.migrate-lock`, polling (the wait is rare
/// and short, and polling keeps the async thread free).
async fn lock_file(db_file: &Path) -> Result<std::fs::File, DbErr> {
    let mut name = db_file.as_os_str().to_owned();
    name.push(".migrate-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| DbErr::Custom(format!("{}: {e}", Path::new(&name).display())))?;
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DbErr::Custom(format!(
                    "another process held {} for {} s",
                    Path::new(&name).display(),
                    WAIT.as_secs()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DbErr::Custom(format!(
                    "{}: {e}",
                    Path::new(&name).display()
                )));
            }
        }
    }
}
