//! The store: the only module that speaks SQL. One set of queries serves SQLite (the
//! embedded default, WAL) and PostgreSQL (to scale out): the schemas match column for
//! column, placeholders are `$n` on both, times are epoch milliseconds and JSON is text.
//!
//! A write that belongs to a transition goes through a [`Tx`], so the case, its
//! history, claims, timers, projections and the apalis jobs it causes commit together.

pub mod blobs;
mod cases;
mod documents;
mod emails;
mod idempotency;
mod jobs;
mod lists;
mod parties;
mod rate_limits;
mod statistics;
mod versions;

use std::{
    path::Path,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use sqlx::{
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use cases::{CaseRow, DestinationRow, Ending, HistoryRow, TimerRow, first_altered};
pub use documents::{DocumentRow, RenderRow};
pub use emails::{EmailRow, EscalationRow, OverdueRow};
pub use idempotency::Stored;
pub use jobs::QueueCounts;
pub use lists::{CaseFilter, CaseListRow, ExportFilter, ExportRow, GraduateFilter, GraduateRow};
pub use parties::{PartyKind, PartyRow};
pub use statistics::{GraduateScope, GroupBy};
pub use versions::{ActiveRow, AuditRow, VersionRow};

/// Runs `$body` with `$c` bound to the transaction's connection, whichever backend.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Runs `$body` with `$p` bound to the pool, whichever backend.
macro_rules! on_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($p) => $body,
            $crate::store::Db::Postgres($p) => $body,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use {on_pool, on_tx};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("job queue: {0}")]
    Queue(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Writing an export's workbook or its temporary file failed.
    #[error("export: {0}")]
    Export(String),
    #[error("database file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open write transaction.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// What a committed transaction inserted that a worker waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Job,
    Timer,
}

/// Told, in this process, of every commit on a SQLite connection that inserted a job or
/// a timer (PostgreSQL tells every process through `NOTIFY` instead: see `jobs::wake`).
pub type InsertHook = Arc<dyn Fn(Inserted) + Send + Sync>;

/// The PostgreSQL channel that carries wake-ups: `job:{queue}` when a job is pushed,
/// `timer` when a timer is set.
pub const WAKE_CHANNEL: &str = "gradsign_wake";

const JOB_INSERTED: u8 = 1;
const TIMER_INSERTED: u8 = 2;

impl Db {
    /// Connects to `sqlite://…` or `postgres://…`. SQLite runs in WAL mode with
    /// `synchronous = NORMAL` (durable across process crashes) and a busy timeout.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, None).await
    }

    /// [`Db::connect`], with `hook` told of SQLite commits that insert jobs or timers.
    pub async fn connect_with(url: &str, hook: Option<InsertHook>) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No JIT: it compiles a statement's expressions when the planner's cost
            // passes a threshold — a school's statistics crossed it and spent 5–17 ms
            // compiling to save less; every statement here is short.
            let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let options = SqliteConnectOptions::from_str(url)?;
        // SQLite creates a missing file `0644`, and its `-wal` and `-shm` files copy the
        // database's mode: created here first, all three are private.
        let file = options.get_filename();
        if file != Path::new(":memory:") && !file.as_os_str().is_empty() {
            crate::private_files::touch(file).map_err(|source| StoreError::File {
                path: file.to_path_buf(),
                source,
            })?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .after_connect(move |conn, _| {
                let hook = hook.clone();
                Box::pin(async move {
                    if let Some(hook) = hook {
                        let mut handle = conn.lock_handle().await?;
                        install_hooks(&mut handle, hook);
                    }
                    Ok(())
                })
            })
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Applies apalis's migrations and ours. Ours keep their own bookkeeping table so
    /// the two migration sets never see each other's versions.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite(pool) => {
                apalis_sqlite::SqliteStorage::<()>::migrations().run(pool).await?;
                our_migrations().run(pool).await?;
            }
            Db::Postgres(pool) => {
                // Any number of processes may start at once on a fresh database: one
                // session-level advisory lock makes them migrate one after the other
                // (`CREATE EXTENSION IF NOT EXISTS` alone races on pg_extension's key).
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await?;
                let migrated = migrate_postgres(&mut conn).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await;
                migrated?;
                unlocked?;
            }
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue instead of failing on upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a read-only unit of work (every query is a [`Tx`] method; a read
    /// transaction on SQLite takes no write lock).
    pub async fn read(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// The update hook notes inserts into apalis's `Jobs` and our `timers`; the commit hook
/// reports them (a rolled-back insert is forgotten).
fn install_hooks(handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>, hook: InsertHook) {
    let seen = Arc::new(AtomicU8::new(0));
    let on_update = seen.clone();
    handle.set_update_hook(move |u| {
        if u.operation == sqlx::sqlite::SqliteOperation::Insert {
            match u.table {
                "Jobs" => on_update.fetch_or(JOB_INSERTED, Ordering::Relaxed),
                "timers" => on_update.fetch_or(TIMER_INSERTED, Ordering::Relaxed),
                _ => 0,
            };
        }
    });
    let on_commit = seen.clone();
    handle.set_commit_hook(move || {
        let seen = on_commit.swap(0, Ordering::Relaxed);
        if seen & JOB_INSERTED != 0 {
            hook(Inserted::Job);
        }
        if seen & TIMER_INSERTED != 0 {
            hook(Inserted::Timer);
        }
        true
    });
    handle.set_rollback_hook(move || seen.store(0, Ordering::Relaxed));
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite's write lock covers it.
    fn for_update(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        }
    }
}

/// The key of the PostgreSQL advisory lock held while migrating (any constant that no
/// other code uses; this one spells "gradsign" in ASCII).
const MIGRATION_LOCK: i64 = 0x6772_6164_7369_676e;

/// Creates the extension apalis needs and applies apalis's migrations and ours, on the
/// connection that holds the migration lock.
async fn migrate_postgres(conn: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS hstore")
        .execute(&mut *conn)
        .await?;
    apalis_postgres::PostgresStorage::<()>::migrations()
        .run(&mut *conn)
        .await?;
    our_migrations().run(&mut *conn).await?;
    postgres_migrations().run(&mut *conn).await?;
    Ok(())
}

/// Our migrations, with their own bookkeeping table beside apalis's.
fn our_migrations() -> sqlx::migrate::Migrator {
    let mut ours = sqlx::migrate!("./migrations");
    ours.dangerous_set_table_name("gradsign_migrations");
    ours
}

/// Ours that only PostgreSQL has (extensions, index kinds SQLite lacks), after the
/// shared ones, with their own bookkeeping table.
fn postgres_migrations() -> sqlx::migrate::Migrator {
    let mut ours = sqlx::migrate!("./migrations-postgres");
    ours.dangerous_set_table_name("gradsign_postgres_migrations");
    ours
}

/// Milliseconds since the epoch, the unit of every stored time.
pub fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
