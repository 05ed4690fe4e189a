//! The `emails` table (one row per logical send) and review escalations.

use super::{
    Result, Tx,
    deferred::{Arg, PREVIOUS, Write},
    on_tx,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRow {
    pub id: String,
    pub key: String,
    pub case_id: Option<String>,
    pub template: String,
    pub to_role: String,
    pub to_name: String,
    pub to_address: Option<String>,
    pub context: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueRow {
    pub case_id: String,
    pub workflow: String,
    pub state: String,
    pub student_id: String,
    pub school_id: String,
    pub level: i64,
    pub to_role: String,
    pub escalated_at: i64,
    pub state_entered_at: i64,
}

/// One escalation of a case (an event: it moves nothing and changes no version).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EscalationRow {
    pub state: String,
    pub level: i64,
    /// Roles, comma-separated.
    pub to_role: String,
    pub escalated_at: i64,
    pub resolved_at: Option<i64>,
}

const EMAIL_COLUMNS: &str = "id, key, case_id, template, to_role, to_name, to_address, context, status, attempts, last_error, lease_until, created_at, sent_at";

impl Tx {
    /// Records logical sends and pushes the send job of each new one that has a job, in
    /// one deferred write (two parts of one statement on PostgreSQL): a send whose key
    /// was recorded before is neither recorded nor pushed again. Sent with the
    /// transition's other writes.
    pub async fn queue_emails(&mut self, emails: &[EmailRow], jobs: Vec<super::NewJob>) -> Result<()> {
        if emails.is_empty() {
            return Ok(());
        }
        let rows: Vec<String> = (0..emails.len())
            .map(|i| {
                let marks: Vec<String> = (1..=14).map(|k| format!("${}", i * 14 + k)).collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let returning = if matches!(self, Tx::Postgres(_)) {
            " RETURNING id"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO emails ({EMAIL_COLUMNS}) VALUES {} ON CONFLICT (key) DO NOTHING{returning}",
            rows.join(", ")
        );
        let mut args = Vec::with_capacity(emails.len() * 14);
        for e in emails {
            args.extend([
                Arg::from(&e.id),
                (&e.key).into(),
                (&e.case_id).into(),
                (&e.template).into(),
                (&e.to_role).into(),
                (&e.to_name).into(),
                (&e.to_address).into(),
                (&e.context).into(),
                (&e.status).into(),
                e.attempts.into(),
                (&e.last_error).into(),
                e.lease_until.into(),
                e.created_at.into(),
                e.sent_at.into(),
            ]);
        }
        self.defer(Write::new(sql, args));
        // The jobs of the sends just recorded: on SQLite the rows are there to see; on
        // PostgreSQL they are what the insert before returned.
        let recorded = match self {
            Tx::Sqlite(_) => "EXISTS (SELECT 1 FROM emails e WHERE e.id = v.email)".to_string(),
            Tx::Postgres(_) => format!("v.email IN (SELECT id FROM {PREVIOUS})"),
        };
        self.push_jobs_where(jobs, &recorded).await
    }

    pub async fn email(&mut self, id: &str) -> Result<Option<EmailRow>> {
        let sql = format!("SELECT {EMAIL_COLUMNS} FROM emails WHERE id = $1{}", self.for_update());
        Ok(on_tx!(self, |c| sqlx::query_as::<_, EmailRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    pub async fn emails(&mut self, status: Option<&str>, case_id: Option<&str>, limit: i64) -> Result<Vec<EmailRow>> {
        let sql = format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR case_id = $2)
             ORDER BY created_at, id LIMIT $3"
        );
        Ok(on_tx!(self, |c| sqlx::query_as::<_, EmailRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(status)
        .bind(case_id)
        .bind(limit)
        .fetch_all(c)
        .await)?)
    }

    /// Updates the sending state of a mail.
    pub async fn set_email_status(
        &mut self,
        id: &str,
        status: &str,
        attempts: i64,
        error: Option<&str>,
        lease_until: Option<i64>,
        sent_at: Option<i64>,
    ) -> Result<()> {
        let sql = "UPDATE emails SET status = $1, attempts = $2, last_error = $3, lease_until = $4, sent_at = $5 WHERE id = $6";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(status)
            .bind(attempts)
            .bind(error)
            .bind(lease_until)
            .bind(sent_at)
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn insert_escalation(
        &mut self,
        case_id: &str,
        state: &str,
        level: i64,
        to_role: &str,
        school_id: &str,
        now_ms: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO escalations (case_id, state, level, to_role, school_id, escalated_at) VALUES ($1, $2, $3, $4, $5, $6)";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(case_id)
            .bind(state)
            .bind(level)
            .bind(to_role)
            .bind(school_id)
            .bind(now_ms)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A case's escalations, oldest first: (state, level, to roles, escalated at, resolved at).
    pub async fn escalations_of(&mut self, case_id: &str) -> Result<Vec<EscalationRow>> {
        let sql = "SELECT state, level, to_role, escalated_at, resolved_at FROM escalations WHERE case_id = $1
                   ORDER BY escalated_at, level";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, EscalationRow>(sql)
            .bind(case_id)
            .fetch_all(c)
            .await)?)
    }

    /// Closes a case's open escalations: it has left the state that was overdue.
    /// Deferred: sent with the transition's other writes.
    pub async fn resolve_escalations(&mut self, case_id: &str, now_ms: i64) -> Result<()> {
        let sql = "UPDATE escalations SET resolved_at = $1 WHERE case_id = $2 AND resolved_at IS NULL";
        self.defer(Write::new(sql, vec![now_ms.into(), case_id.into()]));
        Ok(())
    }

    /// Open escalations (the highest level per case), optionally of one school.
    pub async fn overdue(&mut self, school: Option<&str>) -> Result<Vec<OverdueRow>> {
        let sql = "SELECT e.case_id, c.workflow, e.state, c.student_id, e.school_id, e.level, e.to_role, e.escalated_at, c.state_entered_at
                   FROM escalations e JOIN cases c ON c.id = e.case_id
                   WHERE e.resolved_at IS NULL AND ($1 IS NULL OR e.school_id = $1)
                     AND e.level = (SELECT MAX(level) FROM escalations x WHERE x.case_id = e.case_id AND x.resolved_at IS NULL)
                   ORDER BY c.state_entered_at";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, OverdueRow>(sql)
            .bind(school)
            .fetch_all(c)
            .await)?)
    }

    /// Cases of a workflow in a state, oldest in it first (the review digest).
    pub async fn cases_in_state(&mut self, workflow: &str, state: &str) -> Result<Vec<super::CaseRow>> {
        let sql = format!(
            "SELECT {} FROM cases WHERE workflow = $1 AND state = $2 ORDER BY state_entered_at",
            super::cases::CASE_COLUMNS
        );
        Ok(on_tx!(self, |c| sqlx::query_as::<_, super::CaseRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(workflow)
        .bind(state)
        .fetch_all(c)
        .await)?)
    }
}
