//! Pushing apalis jobs inside our own transaction: a job exists exactly when the
//! transition that caused it committed. The rows are written as apalis's own push writes
//! them, but deferred with the transaction's other writes (see `deferred`).

use apalis::prelude::TaskBuilder;

use super::{
    Result, Tx,
    deferred::{Arg, Write},
    on_tx,
};

/// A job to push: its queue, encoded arguments, when it may run (Unix seconds) and how
/// often it is tried.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub payload: Vec<u8>,
    pub run_at: u64,
    pub max_attempts: usize,
    /// The mail it sends: pushed only if that mail was recorded by the same write
    /// ([`Tx::queue_emails`]).
    pub email: Option<String>,
}

/// An apalis task id: a ULID (apalis reads the ids back as ULIDs), here the 128 bits of
/// a UUIDv7 — the same layout, 48 bits of milliseconds then random bits — in Crockford's
/// base 32.
fn task_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bits = uuid::Uuid::now_v7().as_u128();
    (0..26)
        .map(|i| ALPHABET[((bits >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// The metadata apalis's own push writes for a task built without any (SQLite keeps it
/// as JSON text).
fn empty_metadata() -> String {
    let task = TaskBuilder::new(()).build();
    serde_json::to_string(task.metadata()).unwrap_or_default()
}

impl Tx {
    /// Pushes one encoded job onto `queue`, to run at `run_at` (Unix seconds).
    pub async fn push_job(&mut self, queue: &str, payload: Vec<u8>, run_at: u64, max_attempts: usize) -> Result<()> {
        self.push_jobs(queue, vec![payload], run_at, max_attempts).await
    }

    /// Pushes encoded jobs onto `queue` together, deferred: sent with the transaction's
    /// other writes (apalis's own push is a statement of its own for each call, and one
    /// for each job on SQLite).
    pub async fn push_jobs(
        &mut self,
        queue: &str,
        payloads: Vec<Vec<u8>>,
        run_at: u64,
        max_attempts: usize,
    ) -> Result<()> {
        let jobs = payloads
            .into_iter()
            .map(|payload| NewJob {
                queue: queue.to_string(),
                payload,
                run_at,
                max_attempts,
                email: None,
            })
            .collect();
        self.push_jobs_where(jobs, "true").await
    }

    /// Pushes jobs, as apalis's own push writes them, in one deferred write; a job naming
    /// a mail only where `recorded` holds of it (`v.email`, see [`Tx::queue_emails`]).
    pub(super) async fn push_jobs_where(&mut self, jobs: Vec<NewJob>, recorded: &str) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        // On PostgreSQL typed in the text too (the bound values carry their types), so that
        // the statement as its log shows it, values written in, replays (`bench/engine.py`).
        let [bytes, bigint, text] = match self {
            Tx::Sqlite(_) => ["", "", ""],
            Tx::Postgres(_) => ["::bytea", "::bigint", "::text"],
        };
        let rows: Vec<String> = (0..jobs.len())
            .map(|i| {
                let k = i * 6;
                format!(
                    "(${}, ${}, ${}{bytes}, ${}{bigint}, ${}{bigint}, ${}{text})",
                    k + 1,
                    k + 2,
                    k + 3,
                    k + 4,
                    k + 5,
                    k + 6
                )
            })
            .collect();
        let wanted = format!("v.email IS NULL OR {recorded}");
        let sql = match self {
            Tx::Sqlite(_) => format!(
                "WITH v (id, queue, job, max_attempts, run_at, email) AS (VALUES {})
                 INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
                 SELECT v.job, v.id, v.queue, 'Pending', 0, v.max_attempts, v.run_at, 0, '{}', NULL FROM v WHERE {wanted}",
                rows.join(", "),
                empty_metadata().replace('\'', "''")
            ),
            Tx::Postgres(_) => format!(
                "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
                 SELECT v.id, v.queue, v.job, 'Pending', 0, v.max_attempts, to_timestamp(v.run_at), 0, ''::hstore, NULL
                 FROM (VALUES {}) AS v (id, queue, job, max_attempts, run_at, email) WHERE {wanted}",
                rows.join(", ")
            ),
        };
        let mut args = Vec::with_capacity(jobs.len() * 6);
        for job in &jobs {
            args.extend([
                Arg::from(task_id()),
                (&job.queue).into(),
                Arg::Bytes(job.payload.clone()),
                (job.max_attempts as i64).into(),
                (job.run_at as i64).into(),
                (&job.email).into(),
            ]);
        }
        self.defer(Write::new(sql, args));
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.dedup();
        for queue in queues {
            self.notify(&format!("job:{queue}")).await?;
        }
        Ok(())
    }

    /// Tells the workers of every process, once the transaction has committed, that a
    /// timer was set (PostgreSQL; SQLite's hooks see the insert).
    pub async fn notify_timer_set(&mut self) -> Result<()> {
        self.notify("timer").await
    }

    /// A wake-up for the workers of every process, sent after the transaction commits
    /// (by the store's [`super::Notifier`]).
    async fn notify(&mut self, payload: &str) -> Result<()> {
        if let Tx::Postgres(t) = self {
            t.wake(payload);
        }
        Ok(())
    }

    /// When the next pending timer is due (epoch milliseconds).
    pub async fn next_timer_due(&mut self) -> Result<Option<i64>> {
        let sql = "SELECT MIN(due_at) FROM timers WHERE status = 'pending'";
        let due: Option<i64> = on_tx!(self, |c| sqlx::query_scalar(sql).fetch_one(c).await)?;
        Ok(due)
    }
}

/// One queue's jobs by status, as the gauges of `GET /metrics` show them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueCounts {
    pub queue: String,
    /// Due and not yet running (`Pending`, or fetched by a worker: `Queued`).
    pub waiting: i64,
    pub running: i64,
    /// Failed for good (`Failed`, `Killed`).
    pub failed: i64,
    /// When the oldest waiting job became due (Unix seconds).
    pub oldest_due: Option<i64>,
}

impl Tx {
    /// The jobs of every queue by status, at `now` (Unix seconds). Read from apalis's
    /// table, so it counts every process's jobs.
    pub async fn queue_counts(&mut self, now: i64) -> Result<Vec<QueueCounts>> {
        // Done jobs stay in the table: counting only the other statuses uses the index.
        let sqlite = "SELECT job_type,
                SUM(CASE WHEN status IN ('Pending', 'Queued') AND run_at <= $1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN status = 'Running' THEN 1 ELSE 0 END),
                SUM(CASE WHEN status IN ('Failed', 'Killed') THEN 1 ELSE 0 END),
                MIN(CASE WHEN status IN ('Pending', 'Queued') AND run_at <= $1 THEN run_at END)
            FROM Jobs WHERE status IN ('Pending', 'Queued', 'Running', 'Failed', 'Killed')
            GROUP BY job_type";
        let postgres = "SELECT job_type,
                SUM(CASE WHEN status IN ('Pending', 'Queued') AND run_at <= to_timestamp($1) THEN 1 ELSE 0 END)::BIGINT,
                SUM(CASE WHEN status = 'Running' THEN 1 ELSE 0 END)::BIGINT,
                SUM(CASE WHEN status IN ('Failed', 'Killed') THEN 1 ELSE 0 END)::BIGINT,
                EXTRACT(EPOCH FROM MIN(CASE WHEN status IN ('Pending', 'Queued') AND run_at <= to_timestamp($1) THEN run_at END))::BIGINT
            FROM apalis.jobs WHERE status IN ('Pending', 'Queued', 'Running', 'Failed', 'Killed')
            GROUP BY job_type";
        type Row = (String, i64, i64, i64, Option<i64>);
        self.flush().await?;
        let rows: Vec<Row> = match self {
            Tx::Sqlite(t) => sqlx::query_as(sqlite).bind(now).fetch_all(&mut **t).await?,
            Tx::Postgres(t) => sqlx::query_as(postgres).bind(now as f64).fetch_all(&mut **t).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(queue, waiting, running, failed, oldest_due)| QueueCounts {
                queue,
                waiting,
                running,
                failed,
                oldest_due,
            })
            .collect())
    }

    /// Puts a queue's failed (and killed) jobs back to wait, their attempts counted afresh,
    /// due at once (`now`, Unix seconds): an operator's retry after the cause was mended.
    pub async fn retry_failed_jobs(&mut self, queue: &str, now: i64) -> Result<u64> {
        let sqlite = "UPDATE Jobs SET status = 'Pending', attempts = 0, done_at = NULL, lock_by = NULL,
                lock_at = NULL, run_at = $2
            WHERE job_type = $1 AND status IN ('Failed', 'Killed')";
        let postgres = "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, done_at = NULL, lock_by = NULL,
                lock_at = NULL, run_at = to_timestamp($2)
            WHERE job_type = $1 AND status IN ('Failed', 'Killed')";
        self.flush().await?;
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query(sqlite)
                .bind(queue)
                .bind(now)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::Postgres(t) => sqlx::query(postgres)
                .bind(queue)
                .bind(now as f64)
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    /// The queues with a worker that has beaten since `since` (Unix seconds), in any process.
    pub async fn live_queues(&mut self, since: i64) -> Result<Vec<String>> {
        let sqlite = "SELECT DISTINCT worker_type FROM Workers WHERE last_seen >= $1";
        let postgres = "SELECT DISTINCT worker_type FROM apalis.workers WHERE last_seen >= to_timestamp($1)";
        self.flush().await?;
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_scalar(sqlite).bind(since).fetch_all(&mut **t).await?,
            Tx::Postgres(t) => {
                sqlx::query_scalar(postgres)
                    .bind(since as f64)
                    .fetch_all(&mut **t)
                    .await?
            }
        })
    }
}
