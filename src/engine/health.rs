//! What operators watch: the metrics exposition (this process's counters beside the
//! queues as the database has them) and readiness (the database answers, and every queue
//! has a live worker in some process).

use chrono::Utc;

use super::service::{Engine, Result};
use crate::{jobs::runner, metrics::QueueGauges};

impl Engine {
    /// The text of `GET /metrics`.
    pub async fn metrics_text(&self) -> Result<String> {
        let gauges = self.queue_gauges().await?;
        Ok(self.metrics.render(&gauges))
    }

    /// Every configured queue's jobs as the database has them (zeros when it has none):
    /// the metrics and the console's queue page read these.
    pub async fn queue_gauges(&self) -> Result<Vec<QueueGauges>> {
        let now = Utc::now().timestamp();
        let mut tx = self.db.read().await?;
        let counts = tx.queue_counts(now).await?;
        tx.rollback().await?;
        // Every configured queue shows, with zeros when it has no jobs.
        let gauges: Vec<QueueGauges> = self
            .workers
            .queues
            .iter()
            .map(|q| {
                let c = counts.iter().find(|c| c.queue == q.queue).cloned().unwrap_or_default();
                QueueGauges {
                    queue: q.queue.clone(),
                    waiting: c.waiting,
                    running: c.running,
                    failed: c.failed,
                    oldest_waiting_seconds: c.oldest_due.map(|due| (now - due).max(0) as f64).unwrap_or(0.0),
                }
            })
            .collect();
        Ok(gauges)
    }

    /// The queues with no live worker in any process (a worker is live when it beat
    /// within the time after which apalis declares it dead).
    pub async fn queues_without_workers(&self) -> Result<Vec<String>> {
        let window = (runner::HEARTBEAT * runner::MISSED_BEATS as u32).as_secs() as i64;
        let mut tx = self.db.read().await?;
        let live = tx.live_queues(Utc::now().timestamp() - window).await?;
        tx.rollback().await?;
        Ok(self
            .workers
            .queues
            .iter()
            .filter(|q| !live.contains(&q.queue))
            .map(|q| q.queue.clone())
            .collect())
    }
}
