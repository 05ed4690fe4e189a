//! Documents of a case (rendered agreements, uploads), render status, issued agreement
//! numbers and counters.

use super::{Result, Tx, counted, deferred::Write, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: String,
    pub case_id: String,
    pub slot: String,
    pub page: i64,
    pub content_type: String,
    pub file_name: String,
    pub size: i64,
    pub sha256: String,
    pub case_version: i64,
    pub added_by: String,
    pub created_at: i64,
    pub replaced_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RenderRow {
    pub case_id: String,
    pub slot: String,
    pub case_version: i64,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub updated_at: i64,
}

const DOCUMENT_COLUMNS: &str =
    "id, case_id, slot, page, content_type, file_name, size, sha256, case_version, added_by, created_at, replaced_at";

impl Tx {
    /// Adds a document; `false` when the same content is already in that slot and page
    /// (then nothing is added).
    pub async fn insert_document(&mut self, d: &DocumentRow) -> Result<bool> {
        let sql = format!(
            "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (case_id, slot, page, sha256) DO NOTHING"
        );
        let added = on_tx!(self, |c| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&d.id)
            .bind(&d.case_id)
            .bind(&d.slot)
            .bind(d.page)
            .bind(&d.content_type)
            .bind(&d.file_name)
            .bind(d.size)
            .bind(&d.sha256)
            .bind(d.case_version)
            .bind(&d.added_by)
            .bind(d.created_at)
            .bind(d.replaced_at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(added == 1)
    }

    /// Marks the current documents of a slot as replaced, except those with `keep_sha`.
    pub async fn replace_documents(
        &mut self,
        case_id: &str,
        slot: &str,
        keep_sha: &[String],
        now_ms: i64,
    ) -> Result<()> {
        let current = self.documents(case_id).await?;
        for d in current
            .iter()
            .filter(|d| d.slot == slot && d.replaced_at.is_none() && !keep_sha.contains(&d.sha256))
        {
            let sql = "UPDATE documents SET replaced_at = $1 WHERE id = $2";
            on_tx!(self, |c| sqlx::query(sql)
                .bind(now_ms)
                .bind(&d.id)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        // A render that comes back to earlier content makes those rows current again.
        for sha in keep_sha {
            let sql = "UPDATE documents SET replaced_at = NULL WHERE case_id = $1 AND slot = $2 AND sha256 = $3";
            on_tx!(self, |c| sqlx::query(sql)
                .bind(case_id)
                .bind(slot)
                .bind(sha)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    pub async fn documents(&mut self, case_id: &str) -> Result<Vec<DocumentRow>> {
        let sql =
            format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE case_id = $1 ORDER BY created_at, slot, page, id");
        Ok(on_tx!(self, |c| sqlx::query_as::<_, DocumentRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(case_id)
        .fetch_all(c)
        .await)?)
    }

    pub async fn document(&mut self, id: &str) -> Result<Option<DocumentRow>> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
        Ok(on_tx!(self, |c| sqlx::query_as::<_, DocumentRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// Records a render request or result of a slot, guarded by the case version it is
    /// for: a request or result for an older version than the slot's latest request, or
    /// any news of a version already done, changes nothing (a late job for an earlier
    /// version cannot mark a newer request done). `false` when it changed nothing. On
    /// PostgreSQL the row stays locked until the transaction ends.
    pub async fn set_render(&mut self, r: &RenderRow) -> Result<bool> {
        let sql = "INSERT INTO renders (case_id, slot, case_version, status, attempts, error, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (case_id, slot) DO UPDATE SET case_version = excluded.case_version, status = excluded.status,
                     attempts = excluded.attempts, error = excluded.error, updated_at = excluded.updated_at
                   WHERE renders.case_version < excluded.case_version
                      OR (renders.case_version = excluded.case_version AND renders.status <> 'done')";
        let changed = on_tx!(self, |c| sqlx::query(sql)
            .bind(&r.case_id)
            .bind(&r.slot)
            .bind(r.case_version)
            .bind(&r.status)
            .bind(r.attempts)
            .bind(&r.error)
            .bind(r.updated_at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Requests a render of a slot for a case version (`pending`), as [`Tx::set_render`]
    /// would, without asking whether it changed anything: deferred, sent with the
    /// transition's other writes (the version only grows under the case's lock).
    pub async fn request_render(&mut self, case_id: &str, slot: &str, case_version: i64, now_ms: i64) -> Result<()> {
        let sql = "INSERT INTO renders (case_id, slot, case_version, status, attempts, error, updated_at)
                   VALUES ($1, $2, $3, 'pending', 0, NULL, $4)
                   ON CONFLICT (case_id, slot) DO UPDATE SET case_version = excluded.case_version, status = excluded.status,
                     attempts = excluded.attempts, error = excluded.error, updated_at = excluded.updated_at
                   WHERE renders.case_version < excluded.case_version
                      OR (renders.case_version = excluded.case_version AND renders.status <> 'done')";
        self.defer(Write::new(
            sql,
            vec![case_id.into(), slot.into(), case_version.into(), now_ms.into()],
        ));
        Ok(())
    }

    pub async fn renders(&mut self, case_id: &str) -> Result<Vec<RenderRow>> {
        let sql = "SELECT case_id, slot, case_version, status, attempts, error, updated_at FROM renders WHERE case_id = $1 ORDER BY slot";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, RenderRow>(sql)
            .bind(case_id)
            .fetch_all(c)
            .await)?)
    }

    /// The renders that failed, most recent first (at most `limit`), for the console.
    pub async fn failed_renders(&mut self, limit: i64) -> Result<Vec<RenderRow>> {
        let sql = "SELECT case_id, slot, case_version, status, attempts, error, updated_at FROM renders
                   WHERE status = 'failed' ORDER BY updated_at DESC, case_id LIMIT $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, RenderRow>(sql)
            .bind(limit)
            .fetch_all(c)
            .await)?)
    }

    /// The next value of a named counter (1, 2, …): unique and increasing, not gap-free.
    ///
    /// On SQLite it is taken inside the transaction (which holds the only write lock
    /// anyway). On PostgreSQL it is taken in a transaction of its own, as a sequence is:
    /// inside, the counter's row would stay locked until this transaction commits, and
    /// every confirm of one school would queue behind the one before it (issue 17). Its own
    /// transaction commits without waiting for the disk, which is safe: whatever uses the
    /// value commits after it, so flushing that commit flushes the counter's too; a crash
    /// that loses the counter loses every use of the value with it. A transaction that
    /// rolls back after taking a value leaves a gap.
    pub async fn next_counter(&mut self, name: &str) -> Result<i64> {
        let sql = "INSERT INTO counters (name, value) VALUES ($1, 1)
                   ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value";
        match self {
            Tx::Sqlite(_) => Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>(sql)
                .bind(name)
                .fetch_one(c)
                .await)?),
            Tx::Postgres(t) => {
                counted();
                Ok(sqlx::query_scalar::<_, i64>(sql)
                    .bind(name)
                    .fetch_one(&t.beside.counters)
                    .await?)
            }
        }
    }

    /// Records an issued agreement number. Deferred: sent with the transition's other
    /// writes.
    pub async fn insert_agreement(&mut self, number: &str, case_id: &str, code: &str, now_ms: i64) -> Result<()> {
        let sql = "INSERT INTO agreements (number, case_id, verification_code, issued_at) VALUES ($1, $2, $3, $4)";
        self.defer(Write::new(
            sql,
            vec![number.into(), case_id.into(), code.into(), now_ms.into()],
        ));
        Ok(())
    }

    /// An issued agreement: (case, verification code, issued at).
    pub async fn agreement(&mut self, number: &str) -> Result<Option<(String, String, i64)>> {
        let sql = "SELECT case_id, verification_code, issued_at FROM agreements WHERE number = $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String, i64)>(sql)
            .bind(number)
            .fetch_optional(c)
            .await)?)
    }
}
