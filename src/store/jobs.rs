//! Pushing apalis jobs inside our own transaction: a job exists exactly when the
//! transition that caused it committed (apalis's `push_tasks` takes any executor).

use apalis::prelude::TaskBuilder;

use super::{Result, StoreError, Tx};

impl Tx {
    /// Pushes one encoded job onto `queue`, to run at `run_at` (Unix seconds).
    pub async fn push_job(&mut self, queue: &str, payload: Vec<u8>, run_at: u64, max_attempts: usize) -> Result<()> {
        let task = TaskBuilder::new(payload)
            .run_at_timestamp(run_at)
            .max_attempts(max_attempts)
            .build();
        match self {
            Tx::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, queue, &[task])
                .await
                .map_err(|e| StoreError::Queue(e.to_string())),
            Tx::Postgres(t) => apalis_postgres::queries::push_tasks(&mut **t, queue, vec![task])
                .await
                .map_err(|e| StoreError::Queue(e.to_string())),
        }
    }
}
