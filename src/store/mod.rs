//! The store: the only module that speaks SQL. One set of queries serves SQLite (the
//! embedded default, WAL) and PostgreSQL (to scale out): the schemas match column for
//! column, placeholders are `$n` on both, times are epoch milliseconds and JSON is text.
//!
//! A write that belongs to a transition goes through a [`Tx`], so the case, its
//! history, claims, timers, projections and the apalis jobs it causes commit together.

pub mod blobs;
mod cases;
mod deferred;
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
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use cases::{Around, CaseRow, DestinationRow, Ending, HistoryRow, TimerRow, first_altered};
pub use documents::{DocumentRow, RenderRow};
pub use emails::{EmailRow, EscalationRow, OverdueRow};
pub use idempotency::Stored;
pub use jobs::{NewJob, QueueCounts};
pub use lists::{CaseFilter, CaseListRow, ExportFilter, ExportRow, GraduateFilter, GraduateRow};
pub use parties::{PartyKind, PartyRow};
pub use statistics::{GraduateScope, GroupBy};
pub use versions::{ActiveRow, AuditRow, VersionRow};

/// Runs `$body` with `$c` bound to the transaction's connection, whichever backend —
/// one statement, counted (see [`count_statements`]) — after the writes the transaction
/// deferred (see `deferred`), so it reads them.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {{
        $tx.flush().await?;
        $crate::store::counted();
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
    }};
}

/// Runs `$body` with `$p` bound to the pool, whichever backend.
macro_rules! on_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($p) => $body,
            $crate::store::Db::Postgres($p, _) => $body,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use {on_pool, on_tx};

tokio::task_local! {
    /// Statements this task sent to the database inside [`count_statements`].
    static STATEMENTS: std::cell::Cell<u32>;
}

/// Counts one statement (a round trip) for the enclosing [`count_statements`], if any.
/// Every query of the store goes through [`on_tx!`] or [`Db::begin`], [`Tx::commit`] and
/// [`Tx::rollback`], which call this: the count is what the database's statement log
/// would show for the task (`BEGIN` and `COMMIT` included).
pub(crate) fn counted() {
    let _ = STATEMENTS.try_with(|n| n.set(n.get() + 1));
}

/// Runs `work` and returns what it returned with the number of statements it sent
/// (the engine records it per transition: `gradsign_transition_statements`).
pub async fn count_statements<F: std::future::Future>(work: F) -> (F::Output, u32) {
    STATEMENTS
        .scope(std::cell::Cell::new(0), async move {
            let out = work.await;
            (out, STATEMENTS.with(std::cell::Cell::get))
        })
        .await
}

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
    /// The pool, and what is done beside its transactions.
    Postgres(PgPool, Beside),
}

/// An open write transaction.
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A SQLite transaction; a write transaction holds its file's writer gate until it ends.
/// Dereferences to the connection, as a [`Transaction`] does.
pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// A write transaction's pool, for the checkpoint its commit may start.
    pool: Option<SqlitePool>,
    /// Writes to send together before the next statement (see `deferred`).
    deferred: Vec<deferred::Write>,
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

/// The writers of one SQLite file in this process queue here, in order, before
/// `BEGIN IMMEDIATE`. Without it they queued in SQLite's busy handler, which sleeps in
/// growing steps (up to 100 ms) and wakes in no order: at 16 clients the p99 of a
/// transition was hundreds of milliseconds behind writes of a few milliseconds. Waiting
/// for the gate is bounded like the busy timeout.
fn writer_gate(pool: &SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    gates.entry(file).or_default().clone()
}

/// The connections apalis keeps its books on (fetching, locking and acknowledging jobs,
/// heartbeats).
///
/// On PostgreSQL, connections that commit without waiting for the disk
/// (`synchronous_commit = off`), as the counters' do: a job's bookkeeping then does not
/// queue for the write-ahead log's flush beside the transitions' commits. A crash of the
/// database server (not of this process) may lose the last fraction of a second of it, and
/// a job then runs again, which every job allows
/// (apalis delivers at least once: a render finds its version stored, a mail its status
/// sent, a timer its firing done).
///
/// On SQLite, a pool of one connection that holds its file's writer gate from
/// acquire to release, so apalis's writes queue in order with the engine's transactions
/// instead of meeting them at SQLite's lock. There the loser waited in SQLite's busy
/// handler, which sleeps in growing steps: at one client the transitions' p99 with the
/// workers on was several times that with them off (issue 17).
///
/// A guard is kept from `before_acquire` to `after_release`. A connection that closes
/// without release (an error) leaves its guard behind; with one connection, the next
/// acquire finds and drops it first. A fresh connection skips `before_acquire`: its first
/// use writes ungated, as every use did before. None expires, so that is only after an error.
pub fn bookkeeping(db: &Db) -> Db {
    let pool = match db {
        Db::Sqlite(pool) => pool,
        Db::Postgres(pool, beside) => {
            let options = (*pool.connect_options())
                .clone()
                .options([("synchronous_commit", "off")]);
            let books = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_lazy_with(options);
            return Db::Postgres(books, beside.clone());
        }
    };
    let gate = writer_gate(pool);
    let books = Books::default();
    let released = books.clone();
    let gated = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(30))
        .before_acquire(move |conn, _| {
            let (gate, books) = (gate.clone(), books.clone());
            Box::pin(async move {
                books.release(); // left by a connection that closed without release
                let guard = tokio::time::timeout(Duration::from_secs(10), gate.lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?;
                books.keep(guard);
                if books.count_due()
                    && let Err(e) = count_jobs(conn).await
                {
                    tracing::warn!(error = %e, "counting the jobs for SQLite's planner failed; the next count retries");
                }
                Ok(true)
            })
        })
        .after_release(move |_, _| {
            released.release();
            Box::pin(async { Ok(true) })
        })
        .connect_lazy_with((*pool.connect_options()).clone());
    Db::Sqlite(gated)
}

/// What the bookkeeping connection carries between uses (see [`bookkeeping`]): the writer
/// gate's guard while it is out, and when it last counted the jobs.
#[derive(Clone, Default)]
struct Books {
    held: Arc<std::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>>,
    counted: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Books {
    /// How often the jobs are counted afresh.
    const COUNT_EVERY: Duration = Duration::from_secs(60);

    fn keep(&self, guard: tokio::sync::OwnedMutexGuard<()>) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }

    fn release(&self) {
        let guard = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(guard);
    }

    /// Whether a count is due (never counted, or [`Books::COUNT_EVERY`] ago), marking it done.
    fn count_due(&self) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        let due = counted.is_none_or(|at| at.elapsed() >= Self::COUNT_EVERY);
        if due {
            *counted = Some(std::time::Instant::now());
        }
        due
    }
}

/// Gives SQLite's planner, on apalis's connection, the shape of its `Jobs` table
/// (`ANALYZE`, reading at most 400 rows of each index): when the connection is taken
/// first, then at most once a minute, with the writer gate held.
///
/// Without statistics, the planner ran apalis's statements that mark fetched jobs
/// running and acknowledge finished ones (`queries/task/lock.sql`, `ack.sql`) through the
/// `status` index (every waiting job) and the `lock_by` index (every job this worker ever
/// ran), not through the jobs' own ids: with 3,309 jobs waiting and 808 done, each took
/// 0.9 ms under the write lock, and more as the queue or the process's age grew. With
/// statistics they take 0.01–0.03 ms (measured on a copy of a bench database, issue 17).
///
/// On this connection, because SQLite loads statistics when a connection reads the
/// schema: another connection's `ANALYZE` is not seen here. Here it also expires the
/// connection's prepared statements, so apalis's are planned again. Statistics of an
/// empty table are none; the next count fills them in.
async fn count_jobs(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    sqlx::query("PRAGMA analysis_limit = 400").execute(&mut *conn).await?;
    sqlx::query("ANALYZE Jobs").execute(&mut *conn).await?;
    Ok(())
}

/// Commits between two checkpoints of a SQLite file's write-ahead log (a transition
/// writes some 10–20 pages: about SQLite's own 1,000-page threshold).
const COMMITS_PER_CHECKPOINT: u64 = 64;

/// Copies SQLite's write-ahead log back into the database file after every
/// [`COMMITS_PER_CHECKPOINT`]th write commit of this process, in a task of its own, once the
/// writer gate is released (`PRAGMA wal_checkpoint(PASSIVE)` waits for no reader or
/// writer). SQLite's automatic checkpoint (turned off on every connection) ran inside the
/// commit that crossed its threshold, holding the write lock for the copy: one transition
/// in fifty or so took milliseconds longer, and every writer queued behind it (issue 17).
/// A checkpoint that does not happen (the process ends first) is done by the next one, or
/// by SQLite when the last connection closes.
fn checkpoint_now_and_then(pool: SqlitePool) {
    static COMMITS: AtomicU64 = AtomicU64::new(0);
    if COMMITS.fetch_add(1, Ordering::Relaxed) % COMMITS_PER_CHECKPOINT != COMMITS_PER_CHECKPOINT - 1 {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(error = %e, "checkpoint of the write-ahead log failed; the next one retries");
        }
    });
}

/// A PostgreSQL transaction with the wake-ups it owes: handed to the [`Notifier`] once it
/// has committed. Dereferences to the connection, as a [`Transaction`] does.
pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    wakes: Vec<String>,
    beside: Beside,
    /// Writes to send together before the next statement (see `deferred`).
    deferred: Vec<deferred::Write>,
}

impl PgTx {
    /// Notes a wake-up (`job:{queue}`, `timer`) for the commit.
    pub(crate) fn wake(&mut self, payload: &str) {
        if !self.wakes.iter().any(|w| w == payload) {
            self.wakes.push(payload.to_string());
        }
    }
}

impl std::ops::Deref for PgTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

/// What a PostgreSQL [`Db`] does beside its transactions: wake-ups sent after a commit,
/// and counters taken in transactions of their own (see [`Tx::next_counter`]).
#[derive(Debug, Clone)]
pub struct Beside {
    notifier: Notifier,
    /// Connections for the counters, committing without waiting for the disk
    /// (`synchronous_commit = off`, safe here: see [`Tx::next_counter`]).
    counters: PgPool,
}

/// Sends the wake-ups of committed transactions (`NOTIFY gradsign_wake`, see `jobs::wake`)
/// from a task of its own, after the commit and off the request path, several at once
/// when commits come faster than one round trip.
///
/// Why not in the transaction: PostgreSQL serialises the commits of every transaction that
/// sent a `NOTIFY`, database-wide, on one lock held until the commit is on disk — with it,
/// 16 clients of the minimal transaction ran at 0.4× of their speed without it (pgbench on
/// this machine). A notification sent alone commits nothing and holds that lock for
/// microseconds. A wake-up lost with a process that dies between its commit and the send
/// costs one poll interval: the workers' polls are the safety net (see `jobs::wake`).
#[derive(Debug, Clone)]
pub struct Notifier {
    queue: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
}

impl Notifier {
    /// Starts the sending task on the current runtime; it ends when the last sender is
    /// dropped.
    fn start(pool: PgPool) -> Notifier {
        let (queue, mut received) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
        tokio::spawn(async move {
            let mut batches = Vec::new();
            while received.recv_many(&mut batches, 256).await > 0 {
                let mut wakes: Vec<String> = batches.drain(..).flatten().collect();
                wakes.sort();
                wakes.dedup();
                let sent = sqlx::query("SELECT pg_notify($1, w) FROM UNNEST($2::text[]) AS w")
                    .bind(WAKE_CHANNEL)
                    .bind(&wakes)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, ?wakes, "wake-ups not sent: the workers' next poll finds the work");
                }
            }
        });
        Notifier { queue }
    }

    fn send(&self, wakes: Vec<String>) {
        if !wakes.is_empty() {
            // The task is gone only when the runtime that started it has shut down.
            let _ = self.queue.send(wakes);
        }
    }
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
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone().options([("jit", "off")]))
                .await?;
            let counters = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options.options([("jit", "off"), ("synchronous_commit", "off")]));
            let beside = Beside {
                notifier: Notifier::start(pool.clone()),
                counters,
            };
            return Ok(Db::Postgres(pool, beside));
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
            // Checkpoints are ours: see `checkpoint_now_and_then`.
            .pragma("wal_autocheckpoint", "0")
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
            Db::Postgres(..) => "postgres",
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
            Db::Postgres(pool, _) => {
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
        counted();
        Ok(match self {
            Db::Sqlite(pool) => {
                let gate = tokio::time::timeout(Duration::from_secs(10), writer_gate(pool).lock_owned())
                    .await
                    .map_err(|_| StoreError::Sqlx(sqlx::Error::PoolTimedOut))?;
                Tx::Sqlite(SqliteTx {
                    tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                    _gate: Some(gate),
                    pool: Some(pool.clone()),
                    deferred: Vec::new(),
                })
            }
            Db::Postgres(pool, beside) => Tx::Postgres(PgTx {
                tx: pool.begin().await?,
                wakes: Vec::new(),
                beside: beside.clone(),
                deferred: Vec::new(),
            }),
        })
    }

    /// Begins a read-only unit of work (every query is a [`Tx`] method; a read
    /// transaction on SQLite takes no write lock).
    pub async fn read(&self) -> Result<Tx> {
        counted();
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(SqliteTx {
                tx: pool.begin().await?,
                _gate: None,
                pool: None,
                deferred: Vec::new(),
            }),
            Db::Postgres(pool, beside) => Tx::Postgres(PgTx {
                tx: pool.begin().await?,
                wakes: Vec::new(),
                beside: beside.clone(),
                deferred: Vec::new(),
            }),
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
        if let Db::Postgres(_, beside) = self {
            beside.counters.close().await;
        }
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
    /// Sends the deferred writes and commits; on PostgreSQL the wake-ups owed then go to
    /// the [`Notifier`].
    pub async fn commit(mut self) -> Result<()> {
        self.flush().await?;
        counted();
        match self {
            Tx::Sqlite(t) => {
                let SqliteTx { tx, _gate, pool, .. } = t;
                tx.commit().await?;
                drop(_gate);
                if let Some(pool) = pool {
                    checkpoint_now_and_then(pool);
                }
            }
            Tx::Postgres(t) => {
                t.tx.commit().await?;
                t.beside.notifier.send(t.wakes);
            }
        }
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<()> {
        self.discard();
        counted();
        match self {
            Tx::Sqlite(t) => t.tx.rollback().await?,
            Tx::Postgres(t) => t.tx.rollback().await?,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated SQLite database, its pool, and apalis's bookkeeping pool with its one
    /// connection opened and back: that first one is opened, not taken from the idle ones,
    /// so it skipped `before_acquire` (the gate and the count); every later one passes it.
    async fn sqlite(dir: &tempfile::TempDir) -> (Db, SqlitePool, SqlitePool) {
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let Db::Sqlite(pool) = db.clone() else { unreachable!() };
        let Db::Sqlite(books) = bookkeeping(&db) else {
            unreachable!()
        };
        drop(books.acquire().await.expect("open"));
        (db, pool, books)
    }

    /// How SQLite would run `sql` (`EXPLAIN QUERY PLAN`) on `conn`, one line per step.
    async fn plan(conn: &mut sqlx::SqliteConnection, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(conn)
                .await
                .expect("plan");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
    }

    /// Marking fetched jobs running and acknowledging finished ones (apalis's statements,
    /// in their shape) go to the jobs by id on apalis's connection once it has counted a
    /// queue of waiting and finished jobs, not through every job of a status or a worker.
    #[tokio::test]
    async fn apalis_finds_the_jobs_it_marks_by_their_ids() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_db, pool, books) = sqlite(&dir).await;
        sqlx::query("INSERT INTO Workers (id, worker_type, storage_name) VALUES ('w', 'mail', 'SqliteStorage')")
            .execute(&pool)
            .await
            .expect("worker");
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
             INSERT INTO Jobs (job, id, job_type, status, lock_by)
             SELECT x'00', 'job-' || i, 'mail', CASE WHEN i % 3 = 0 THEN 'Done' ELSE 'Pending' END,
                    CASE WHEN i % 3 = 0 THEN 'w' END FROM n",
        )
        .execute(&pool)
        .await
        .expect("jobs");
        let mut conn = books.acquire().await.expect("acquire");
        let by_id = "sqlite_autoindex_Jobs_1";
        let lock = plan(
            &mut conn,
            "UPDATE Jobs SET status = 'Running', lock_by = 'w'
             WHERE id IN (SELECT value FROM json_each('[\"job-1\"]'))
               AND (status = 'Queued' OR status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
        )
        .await;
        assert!(lock.contains(by_id), "{lock}");
        let ack = plan(
            &mut conn,
            "WITH j AS (SELECT value ->> 'task_id' AS task_id FROM json_each('[{\"task_id\":\"job-3\"}]'))
             UPDATE Jobs SET status = 'Done' FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = 'w'",
        )
        .await;
        assert!(ack.contains(by_id), "{ack}");
    }

    /// apalis's connection holds the writer gate while it is out: the engine's next write
    /// waits for it to come back, instead of meeting it at SQLite's lock.
    #[tokio::test]
    async fn apalis_writes_queue_at_the_writer_gate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, _, books) = sqlite(&dir).await;
        let out = books.acquire().await.expect("acquire");
        let begin = db.begin();
        tokio::pin!(begin);
        assert!(
            futures::poll!(begin.as_mut()).is_pending(),
            "a write began beside apalis's connection"
        );
        drop(out);
        begin
            .await
            .expect("begins once apalis's connection is back")
            .rollback()
            .await
            .expect("rollback");
    }
}
