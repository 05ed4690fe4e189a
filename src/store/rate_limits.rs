//! Requests counted per key and per minute, shared by every process on the database.

use super::{Result, Tx, on_tx};

impl Tx {
    /// Counts one request for `key` in the window starting at `window_start` (ms) and returns
    /// the window's count so far. Opening a key's new window also drops windows that ended
    /// before `stale_before`, so the table holds only recent minutes.
    pub async fn rate_hit(&mut self, key: &str, window_start: i64, stale_before: i64) -> Result<i64> {
        let sql = "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1)
                   ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
                   RETURNING hits";
        let hits = on_tx!(self, |c| sqlx::query_scalar::<_, i64>(sql)
            .bind(key)
            .bind(window_start)
            .fetch_one(c)
            .await)?;
        if hits == 1 {
            let sql = "DELETE FROM rate_limits WHERE window_start < $1";
            on_tx!(self, |c| sqlx::query(sql)
                .bind(stale_before)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(hits)
    }
}
