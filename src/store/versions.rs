//! Workflow versions: the stored sources, the one active per workflow (what new cases
//! start on, read by every process at each start), the live cases per version, and the
//! audit of publishing, activation and migration.

use super::{Result, Tx, on_tx};
use crate::definition::Definition;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub hash: String,
    pub name: String,
    pub source: String,
    pub published_at: i64,
    pub published_by: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveRow {
    pub name: String,
    pub hash: String,
    pub activated_at: i64,
    pub activated_by: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub workflow: String,
    pub hash: String,
    pub detail: String,
}

impl Tx {
    /// Stores a version; `true` when it was new.
    pub async fn insert_version(&mut self, def: &Definition, by: &str, now_ms: i64) -> Result<bool> {
        let sql = "INSERT INTO workflow_versions (hash, name, source, published_at, published_by)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING";
        let n = on_tx!(self, |c| sqlx::query(sql)
            .bind(&def.hash)
            .bind(&def.name)
            .bind(&def.source)
            .bind(now_ms)
            .bind(by)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// The versions of a workflow, oldest first.
    pub async fn versions(&mut self, name: &str) -> Result<Vec<VersionRow>> {
        let sql = "SELECT hash, name, source, published_at, published_by FROM workflow_versions
                   WHERE name = $1 ORDER BY published_at, hash";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, VersionRow>(sql)
            .bind(name)
            .fetch_all(c)
            .await)?)
    }

    pub async fn version(&mut self, hash: &str) -> Result<Option<VersionRow>> {
        let sql = "SELECT hash, name, source, published_at, published_by FROM workflow_versions WHERE hash = $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, VersionRow>(sql)
            .bind(hash)
            .fetch_optional(c)
            .await)?)
    }

    /// The version new cases of `name` start on.
    pub async fn active_version(&mut self, name: &str) -> Result<Option<ActiveRow>> {
        let sql = "SELECT name, hash, activated_at, activated_by FROM workflow_active WHERE name = $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, ActiveRow>(sql)
            .bind(name)
            .fetch_optional(c)
            .await)?)
    }

    /// Every workflow's active version, by name.
    pub async fn active_versions(&mut self) -> Result<Vec<ActiveRow>> {
        let sql = "SELECT name, hash, activated_at, activated_by FROM workflow_active ORDER BY name";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, ActiveRow>(sql)
            .fetch_all(c)
            .await)?)
    }

    pub async fn set_active(&mut self, name: &str, hash: &str, by: &str, now_ms: i64) -> Result<()> {
        let sql = "INSERT INTO workflow_active (name, hash, activated_at, activated_by) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, activated_at = excluded.activated_at,
                   activated_by = excluded.activated_by";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(name)
            .bind(hash)
            .bind(now_ms)
            .bind(by)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// How many cases of `name` are in each (version, state).
    pub async fn cases_by_version(&mut self, name: &str) -> Result<Vec<(String, String, i64)>> {
        let sql = "SELECT workflow_hash, state, COUNT(*) FROM cases WHERE workflow = $1
                   GROUP BY workflow_hash, state ORDER BY workflow_hash, state";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String, i64)>(sql)
            .bind(name)
            .fetch_all(c)
            .await)?)
    }

    /// The ids of the cases of `name` on `hash` in `state`, oldest first.
    pub async fn case_ids_in(&mut self, name: &str, hash: &str, state: &str) -> Result<Vec<String>> {
        let sql = "SELECT id FROM cases WHERE workflow = $1 AND workflow_hash = $2 AND state = $3 ORDER BY id";
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, String>(sql)
            .bind(name)
            .bind(hash)
            .bind(state)
            .fetch_all(c)
            .await)?)
    }

    /// Pins a case to another version of its workflow (a migration; the caller holds the
    /// case's lock and writes its history in the same transaction).
    pub async fn pin_case(&mut self, case_id: &str, hash: &str) -> Result<()> {
        let sql = "UPDATE cases SET workflow_hash = $1 WHERE id = $2";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(hash)
            .bind(case_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn insert_audit(&mut self, row: &AuditRow) -> Result<()> {
        let sql = "INSERT INTO workflow_audit (id, at, actor, action, workflow, hash, detail)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(&row.id)
            .bind(row.at)
            .bind(&row.actor)
            .bind(&row.action)
            .bind(&row.workflow)
            .bind(&row.hash)
            .bind(&row.detail)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The audit of a workflow (or of all), newest first.
    pub async fn audit(&mut self, workflow: Option<&str>, limit: i64) -> Result<Vec<AuditRow>> {
        let sql = "SELECT id, at, actor, action, workflow, hash, detail FROM workflow_audit
                   WHERE (CAST($1 AS TEXT) IS NULL OR workflow = $1) ORDER BY at DESC, id DESC LIMIT $2";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, AuditRow>(sql)
            .bind(workflow)
            .bind(limit)
            .fetch_all(c)
            .await)?)
    }
}
