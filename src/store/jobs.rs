//! Pushing apalis jobs inside our own transaction: a job exists exactly when the
//! transition that caused it committed (apalis's `push_tasks` takes any executor).

use apalis::prelude::TaskBuilder;

use super::{Result, StoreError, Tx, on_tx};

impl Tx {
    /// Pushes one encoded job onto `queue`, to run at `run_at` (Unix seconds).
    pub async fn push_job(&mut self, queue: &str, payload: Vec<u8>, run_at: u64, max_attempts: usize) -> Result<()> {
        let task = TaskBuilder::new(payload)
            .run_at_timestamp(run_at)
            .max_attempts(max_attempts)
            .build();
        super::counted();
        match self {
            Tx::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, queue, &[task])
                .await
                .map_err(|e| StoreError::Queue(e.to_string())),
            Tx::Postgres(t) => {
                apalis_postgres::queries::push_tasks(&mut **t, queue, vec![task])
                    .await
                    .map_err(|e| StoreError::Queue(e.to_string()))?;
                self.notify(&format!("job:{queue}")).await
            }
        }
    }

    /// Pushes encoded jobs onto `queue` together (one statement on PostgreSQL; apalis
    /// inserts them one by one on SQLite).
    pub async fn push_jobs(
        &mut self,
        queue: &str,
        payloads: Vec<Vec<u8>>,
        run_at: u64,
        max_attempts: usize,
    ) -> Result<()> {
        let tasks: Vec<_> = payloads
            .into_iter()
            .map(|payload| {
                TaskBuilder::new(payload)
                    .run_at_timestamp(run_at)
                    .max_attempts(max_attempts)
                    .build()
            })
            .collect();
        match self {
            Tx::Sqlite(t) => {
                for _ in &tasks {
                    super::counted();
                }
                apalis_sqlite::queries::push_tasks(&mut **t, queue, &tasks)
                    .await
                    .map_err(|e| StoreError::Queue(e.to_string()))
            }
            Tx::Postgres(t) => {
                super::counted();
                apalis_postgres::queries::push_tasks(&mut **t, queue, tasks)
                    .await
                    .map_err(|e| StoreError::Queue(e.to_string()))?;
                self.notify(&format!("job:{queue}")).await
            }
        }
    }

    /// Tells the workers of every process, at commit, that a timer was set (PostgreSQL;
    /// SQLite's hooks see the insert).
    pub async fn notify_timer_set(&mut self) -> Result<()> {
        self.notify("timer").await
    }

    /// A wake-up for the workers of every process, sent when the transaction commits
    /// (one statement for all of them: [`super::PgTx`]).
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
