//! `Idempotency-Key` bookkeeping: a request's key is reserved inside the transaction
//! that carries it out and completed with the answer, so a retry gets the same answer
//! and causes nothing a second time.

use super::{Result, Tx, deferred::Write, on_tx};

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request_hash: String,
    pub status: Option<i64>,
    pub response: Option<String>,
}

impl Tx {
    /// Reserves `(actor, key)` for this transaction. `Some(stored)` when the key was
    /// already used: the caller answers from it (or refuses a different body).
    ///
    /// On PostgreSQL a concurrent request with the same key waits on the row until the
    /// first commits, then sees it here.
    pub async fn reserve_key(
        &mut self,
        actor: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<Option<Stored>> {
        let sql = "INSERT INTO idempotency_keys (actor, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (actor, key) DO NOTHING RETURNING actor";
        let inserted = on_tx!(self, |c| sqlx::query_scalar::<_, String>(sql)
            .bind(actor)
            .bind(key)
            .bind(request_hash)
            .bind(now_ms)
            .fetch_optional(c)
            .await)?;
        if inserted.is_some() {
            return Ok(None);
        }
        let sql = "SELECT request_hash, status, response FROM idempotency_keys WHERE actor = $1 AND key = $2";
        let row = on_tx!(self, |c| sqlx::query_as::<_, (String, Option<i64>, Option<String>)>(
            sql
        )
        .bind(actor)
        .bind(key)
        .fetch_one(c)
        .await)?;
        Ok(Some(Stored {
            request_hash: row.0,
            status: row.1,
            response: row.2,
        }))
    }

    /// Remembers the answer under the key reserved earlier. Deferred: sent with the
    /// transition's other writes.
    pub async fn complete_key(&mut self, actor: &str, key: &str, status: u16, response: &str) -> Result<()> {
        let sql = "UPDATE idempotency_keys SET status = $1, response = $2 WHERE actor = $3 AND key = $4";
        self.defer(Write::new(
            sql,
            vec![i64::from(status).into(), response.into(), actor.into(), key.into()],
        ));
        Ok(())
    }
}
