//! Cases and what hangs off them: history, claims, timers, destination records and the
//! stored workflow versions.

use serde_json::Value;

use super::{
    Result, StoreError, Tx,
    deferred::{Arg, Write},
    on_tx,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    pub id: String,
    pub workflow: String,
    pub workflow_hash: String,
    pub state: String,
    pub version: i64,
    pub data: String,
    pub student_id: String,
    pub employer_id: Option<String>,
    pub school_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub state_entered_at: i64,
}

impl CaseRow {
    pub fn data_json(&self) -> Result<Value> {
        serde_json::from_str(&self.data).map_err(|e| StoreError::Corrupt(format!("case {} data: {e}", self.id)))
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub case_id: String,
    pub seq: i64,
    pub transition: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub input: String,
    pub at: i64,
    pub idempotency_key: Option<String>,
    /// What the transition changed (JSON), old beside new.
    pub changes: Option<String>,
    /// The person who fired it (the token's `sub` and name); NULL for the system and
    /// for tokens that named no person.
    pub actor_sub: Option<String>,
    pub actor_name: Option<String>,
    /// The case data as the transition left it (JSON): the case at version `seq`.
    /// NULL for rows written before the history kept it.
    pub data: Option<String>,
    /// The history chain: SHA-256 (hex) of the previous row's hash and this row's
    /// content ([`HistoryRow::chain_hash`]). Set by [`Tx::insert_history`], whatever the
    /// caller passed; NULL for rows written before the history was chained.
    pub hash: Option<String>,
}

impl HistoryRow {
    /// The chain hash of this row after a row whose hash is `previous` (empty for the
    /// first row, or after a row from before the chain): SHA-256 of `previous` and the
    /// row's canonical content — a JSON array of every stored column but the hash, text
    /// columns exactly as stored.
    pub fn chain_hash(&self, previous: &str) -> String {
        use sha2::{Digest, Sha256};
        let content = serde_json::json!([
            self.case_id,
            self.seq,
            self.transition,
            self.from_state,
            self.to_state,
            self.actor,
            self.input,
            self.at,
            self.idempotency_key,
            self.changes,
            self.actor_sub,
            self.actor_name,
            self.data,
        ]);
        let mut h = Sha256::new();
        h.update(previous.as_bytes());
        h.update(content.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// The first row of a case's history (in `seq` order) whose stored hash is not what its
/// content and the chain before it give: `None` when the chain is intact. Rows from before
/// the chain (no hash) are passed over, as [`Tx::insert_history`] passed over them.
pub fn first_altered(history: &[HistoryRow]) -> Option<i64> {
    let mut previous = String::new();
    let mut expected_seq = history.first().map(|h| h.seq);
    for h in history {
        // A deleted row breaks the sequence as surely as a changed one breaks the hash.
        if expected_seq != Some(h.seq) {
            return Some(h.seq);
        }
        expected_seq = Some(h.seq + 1);
        let Some(stored) = &h.hash else {
            previous.clear();
            continue;
        };
        let computed = h.chain_hash(&previous);
        if &computed != stored {
            return Some(h.seq);
        }
        previous = computed;
    }
    None
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimerRow {
    pub id: String,
    pub case_id: String,
    pub state: String,
    /// The transition it fires; empty for a mail timer.
    pub fire: String,
    pub due_at: i64,
    pub status: String,
    /// A mail timer's [`crate::definition::Mail`], as JSON.
    pub spec: Option<String>,
}

/// A destination record (R2), in force or kept as history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: String,
    pub student_id: String,
    pub category_code: String,
    pub unit_name: Option<String>,
    pub location: Option<String>,
    /// The case whose approval made it.
    pub case_id: String,
    pub approved_at: i64,
    pub data: String,
    /// `in_force`, `withdrawn` or `replaced`.
    pub status: String,
    pub ended_by_case: Option<String>,
    pub ended_by: Option<String>,
    pub ended_at: Option<i64>,
}

/// How a destination record ends: which case, by which transition, when.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub case_id: &'a str,
    pub transition: &'a str,
    pub at: i64,
}

const DESTINATION_COLUMNS: &str = "id, student_id, category_code, unit_name, location, case_id, approved_at, data, status, ended_by_case, ended_by, ended_at";

pub(super) const CASE_COLUMNS: &str = "id, workflow, workflow_hash, state, version, data, student_id, employer_id, school_id, created_at, updated_at, state_entered_at";

/// What surrounds a case in the answer to a transition or a read: its history, its
/// escalations and its pending timers, read in one query ([`Tx::around`]) and kept up to
/// date in memory by the transition that writes them, so the answer needs no second read.
#[derive(Debug, Clone, Default)]
pub struct Around {
    /// By `seq`.
    pub history: Vec<HistoryRow>,
    /// By escalation time and level.
    pub escalations: Vec<super::EscalationRow>,
    /// The pending ones, in the order they were set.
    pub timers: Vec<TimerRow>,
    /// The slot of each of the case's current documents (one a file).
    pub documents: Vec<String>,
    /// (key, holding case) of the claim keys asked about that some case holds.
    pub holders: Vec<(String, String)>,
    /// The record of the case's student as synced (JSON), when there is one.
    pub student_record: Option<String>,
    /// The records of the case's parties on file: its student, employer and school.
    pub parties: Vec<super::PartyRow>,
}

/// One row of [`Tx::around`]'s union: `kind` says which table, the rest are that
/// table's columns in a fixed order (see the query).
type AroundRow = (
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

impl Tx {
    /// A case's history, escalations, pending timers, current documents, its parties'
    /// records and the holders of the claim keys `keys`, in one round trip.
    pub async fn around(
        &mut self,
        case_id: &str,
        parties: (&str, Option<&str>, &str),
        keys: &[String],
    ) -> Result<Around> {
        let (student_id, employer_id, school_id) = parties;
        let mut sql = String::from(
            "SELECT 'h' AS kind, seq AS n, transition AS a, from_state AS b, to_state AS c, actor AS d,
                          input AS e, changes AS f, actor_sub AS g, actor_name AS h, hash AS i, at AS t1,
                          CAST(NULL AS BIGINT) AS t2
                   FROM history WHERE case_id = $1
                   UNION ALL
                   SELECT 'e', level, state, to_role, NULL, NULL, NULL, NULL, NULL, NULL, NULL, escalated_at, resolved_at
                   FROM escalations WHERE case_id = $1
                   UNION ALL
                   SELECT 't', 0, id, state, fire, status, spec, NULL, NULL, NULL, NULL, due_at, created_at
                   FROM timers WHERE case_id = $1 AND status = 'pending'
                   UNION ALL
                   SELECT 'd', 0, slot, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                   FROM documents WHERE case_id = $1 AND page = 0 AND replaced_at IS NULL
                   UNION ALL
                   SELECT 'p', updated_at, kind, id, school_id, name, data, NULL, NULL, NULL, NULL, NULL, NULL
                   FROM parties WHERE (kind = 'student' AND id = $2) OR (kind = 'employer' AND id = $3)
                      OR (kind = 'school' AND id = $4)",
        );
        if !keys.is_empty() {
            let marks: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 5)).collect();
            sql.push_str(&format!(
                " UNION ALL SELECT 'c', 0, key, case_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                 FROM claims WHERE key IN ({})",
                marks.join(", ")
            ));
        }
        let rows = on_tx!(self, |c| {
            let mut q = sqlx::query_as::<_, AroundRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(case_id)
                .bind(student_id)
                .bind(employer_id)
                .bind(school_id);
            for key in keys {
                q = q.bind(key);
            }
            q.fetch_all(c).await
        })?;
        let mut around = Around::default();
        let mut timers = Vec::new();
        for (kind, n, a, b, c, d, e, f, g, h, i, t1, t2) in rows {
            let text = |v: Option<String>| v.unwrap_or_default();
            match kind.as_str() {
                "h" => around.history.push(HistoryRow {
                    case_id: case_id.to_string(),
                    seq: n,
                    transition: text(a),
                    from_state: b,
                    to_state: text(c),
                    actor: text(d),
                    input: text(e),
                    at: t1.unwrap_or_default(),
                    idempotency_key: None,
                    changes: f,
                    actor_sub: g,
                    actor_name: h,
                    // Not read: the answer shows no case data per entry.
                    data: None,
                    hash: i,
                }),
                "e" => around.escalations.push(super::EscalationRow {
                    state: text(a),
                    level: n,
                    to_role: text(b),
                    escalated_at: t1.unwrap_or_default(),
                    resolved_at: t2,
                }),
                "d" => around.documents.push(text(a)),
                "p" => {
                    let party = super::PartyRow {
                        kind: text(a),
                        id: text(b),
                        school_id: c,
                        name: text(d),
                        data: text(e),
                        updated_at: n,
                    };
                    if party.kind == "student" {
                        around.student_record = Some(party.data.clone());
                    }
                    around.parties.push(party);
                }
                "c" => around.holders.push((text(a), text(b))),
                _ => timers.push((
                    t2.unwrap_or_default(),
                    TimerRow {
                        id: text(a),
                        case_id: case_id.to_string(),
                        state: text(b),
                        fire: text(c),
                        due_at: t1.unwrap_or_default(),
                        status: text(d),
                        spec: e,
                    },
                )),
            }
        }
        around.history.sort_by_key(|h| h.seq);
        around.escalations.sort_by_key(|e| (e.escalated_at, e.level));
        timers.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        around.timers = timers.into_iter().map(|(_, t)| t).collect();
        Ok(around)
    }

    pub async fn case(&mut self, id: &str) -> Result<Option<CaseRow>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1");
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    pub async fn history(&mut self, case_id: &str) -> Result<Vec<HistoryRow>> {
        let sql = "SELECT case_id, seq, transition, from_state, to_state, actor, input, at, idempotency_key, changes, actor_sub, actor_name, data, hash
                   FROM history WHERE case_id = $1 ORDER BY seq";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, HistoryRow>(sql)
            .bind(case_id)
            .fetch_all(c)
            .await)?)
    }

    /// The case holding a claim key, if any.
    pub async fn claim_holder(&mut self, key: &str) -> Result<Option<String>> {
        let sql = "SELECT case_id FROM claims WHERE key = $1";
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, String>(sql)
            .bind(key)
            .fetch_optional(c)
            .await)?)
    }

    /// Pending timers due at or before `now_ms`, oldest first.
    pub async fn due_timers(&mut self, now_ms: i64, limit: i64) -> Result<Vec<TimerRow>> {
        let sql = "SELECT id, case_id, state, fire, due_at, status, spec FROM timers
                   WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT $2";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, TimerRow>(sql)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(c)
            .await)?)
    }

    pub async fn timers_of(&mut self, case_id: &str) -> Result<Vec<TimerRow>> {
        let sql = "SELECT id, case_id, state, fire, due_at, status, spec FROM timers WHERE case_id = $1 ORDER BY created_at, id";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, TimerRow>(sql)
            .bind(case_id)
            .fetch_all(c)
            .await)?)
    }

    /// Stores a definition version (once per hash).
    pub async fn version_source(&mut self, hash: &str) -> Result<Option<(String, String)>> {
        let sql = "SELECT name, source FROM workflow_versions WHERE hash = $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String)>(sql)
            .bind(hash)
            .fetch_optional(c)
            .await)?)
    }

    /// The destination record in force for a student.
    pub async fn destination(&mut self, student_id: &str) -> Result<Option<DestinationRow>> {
        let sql =
            format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE student_id = $1 AND status = 'in_force'");
        Ok(on_tx!(self, |c| sqlx::query_as::<_, DestinationRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(student_id)
        .fetch_optional(c)
        .await)?)
    }

    /// Every destination record of a student: the one in force first, then the others,
    /// newest first.
    pub async fn destinations(&mut self, student_id: &str) -> Result<Vec<DestinationRow>> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE student_id = $1
             ORDER BY CASE WHEN status = 'in_force' THEN 0 ELSE 1 END, approved_at DESC, id DESC"
        );
        Ok(on_tx!(self, |c| sqlx::query_as::<_, DestinationRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(student_id)
        .fetch_all(c)
        .await)?)
    }
}

impl Tx {
    /// Reads a case for a transition, locking its row where the backend can.
    pub async fn lock_case(&mut self, id: &str) -> Result<Option<CaseRow>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1{}", self.for_update());
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    pub async fn insert_case(&mut self, case: &CaseRow) -> Result<()> {
        let sql =
            format!("INSERT INTO cases ({CASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
        on_tx!(self, |c| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&case.id)
            .bind(&case.workflow)
            .bind(&case.workflow_hash)
            .bind(&case.state)
            .bind(case.version)
            .bind(&case.data)
            .bind(&case.student_id)
            .bind(&case.employer_id)
            .bind(&case.school_id)
            .bind(case.created_at)
            .bind(case.updated_at)
            .bind(case.state_entered_at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Moves a case on; `expected` is the version read under the lock. Deferred (sent
    /// with the transition's other writes), and checked then: it changes the one row.
    pub async fn update_case(&mut self, case: &CaseRow, expected: i64) -> Result<()> {
        let sql = "UPDATE cases SET state = $1, version = $2, data = $3, updated_at = $4, state_entered_at = $5
                   WHERE id = $6 AND version = $7";
        self.defer(
            Write::new(
                sql,
                vec![
                    Arg::from(&case.state),
                    case.version.into(),
                    (&case.data).into(),
                    case.updated_at.into(),
                    case.state_entered_at.into(),
                    (&case.id).into(),
                    expected.into(),
                ],
            )
            .one_row(format!("case {} changed under its lock", case.id)),
        );
        Ok(())
    }

    /// Appends a history row chained to the case's last row, whose hash is `previous`
    /// (empty for a case's first row, or after a row from before the chain); the row's own
    /// hash is computed here, stored with it and returned. Deferred: sent with the
    /// transition's other writes.
    pub async fn insert_history(&mut self, h: &HistoryRow, previous: &str) -> Result<String> {
        let hash = h.chain_hash(previous);
        let sql =
            "INSERT INTO history (case_id, seq, transition, from_state, to_state, actor, input, at, idempotency_key, changes, actor_sub, actor_name, data, hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
        self.defer(Write::new(
            sql,
            vec![
                Arg::from(&h.case_id),
                h.seq.into(),
                (&h.transition).into(),
                (&h.from_state).into(),
                (&h.to_state).into(),
                (&h.actor).into(),
                (&h.input).into(),
                h.at.into(),
                (&h.idempotency_key).into(),
                (&h.changes).into(),
                (&h.actor_sub).into(),
                (&h.actor_name).into(),
                (&h.data).into(),
                (&hash).into(),
            ],
        ));
        Ok(hash)
    }

    /// Takes a claim key for a case. `Err(holder)` names the case already holding it.
    ///
    /// `ON CONFLICT DO NOTHING` rather than catching the unique violation: on
    /// PostgreSQL a violation would abort the whole transaction.
    pub async fn take_claim(&mut self, key: &str, case_id: &str, now_ms: i64) -> Result<Result<(), String>> {
        let sql = "INSERT INTO claims (key, case_id, taken_at) VALUES ($1, $2, $3)
                   ON CONFLICT (key) DO NOTHING RETURNING case_id";
        let taken = on_tx!(self, |c| sqlx::query_scalar::<_, String>(sql)
            .bind(key)
            .bind(case_id)
            .bind(now_ms)
            .fetch_optional(c)
            .await)?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let sql = "SELECT case_id FROM claims WHERE key = $1";
        let holder = on_tx!(self, |c| sqlx::query_scalar::<_, String>(sql)
            .bind(key)
            .fetch_optional(c)
            .await)?;
        Ok(Err(holder.unwrap_or_default()))
    }

    /// Releases a claim key the case holds. Deferred: sent with the transition's other
    /// writes.
    pub async fn release_claim(&mut self, key: &str, case_id: &str) -> Result<()> {
        let sql = "DELETE FROM claims WHERE key = $1 AND case_id = $2";
        self.defer(Write::new(sql, vec![key.into(), case_id.into()]));
        Ok(())
    }

    pub async fn insert_timer(&mut self, t: &TimerRow, now_ms: i64) -> Result<()> {
        let sql = "INSERT INTO timers (id, case_id, state, fire, due_at, status, created_at, spec) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(&t.id)
            .bind(&t.case_id)
            .bind(&t.state)
            .bind(&t.fire)
            .bind(t.due_at)
            .bind(now_ms)
            .bind(&t.spec)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Sets timers in one statement, deferred: sent with the transition's other writes.
    pub async fn insert_timers(&mut self, timers: &[TimerRow], now_ms: i64) -> Result<()> {
        if timers.is_empty() {
            return Ok(());
        }
        let rows: Vec<String> = (0..timers.len())
            .map(|i| {
                let k = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, 'pending', $1, ${})",
                    k + 2,
                    k + 3,
                    k + 4,
                    k + 5,
                    k + 6,
                    k + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO timers (id, case_id, state, fire, due_at, status, created_at, spec) VALUES {}",
            rows.join(", ")
        );
        let mut args = vec![Arg::from(now_ms)];
        for t in timers {
            args.extend([
                Arg::from(&t.id),
                (&t.case_id).into(),
                (&t.state).into(),
                (&t.fire).into(),
                t.due_at.into(),
                (&t.spec).into(),
            ]);
        }
        self.defer(Write::new(sql, args));
        Ok(())
    }

    /// Hands a case's pending timers to the state it entered (one whose timers are the
    /// same, with the same due times): they fire from there, and nothing is set again.
    /// Deferred: sent with the transition's other writes.
    pub async fn move_timers(&mut self, case_id: &str, state: &str) -> Result<()> {
        let sql = "UPDATE timers SET state = $1 WHERE case_id = $2 AND status = 'pending'";
        self.defer(Write::new(sql, vec![state.into(), case_id.into()]));
        Ok(())
    }

    /// Cancels a case's pending timers: its state is left, so they no longer apply.
    /// Deferred: sent with the transition's other writes (queued before the new timers,
    /// which it does not touch: on PostgreSQL the parts of a statement do not see each
    /// other's rows).
    pub async fn cancel_timers(&mut self, case_id: &str, now_ms: i64) -> Result<()> {
        let sql = "UPDATE timers SET status = 'cancelled', done_at = $1 WHERE case_id = $2 AND status = 'pending'";
        self.defer(Write::new(sql, vec![now_ms.into(), case_id.into()]));
        Ok(())
    }

    /// A timer, read without a lock: its writers hold its case's lock, which a caller
    /// about to change it takes first (case before timers, everywhere).
    pub async fn timer(&mut self, id: &str) -> Result<Option<TimerRow>> {
        let sql = "SELECT id, case_id, state, fire, due_at, status, spec FROM timers WHERE id = $1";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, TimerRow>(sql)
            .bind(id)
            .fetch_optional(c)
            .await)?)
    }

    /// Marks a timer fired or cancelled. Sent at once, not deferred: firing a timer may
    /// have cancelled its case's timers (this one among them) in the deferred writes, and
    /// one PostgreSQL statement must not change a row twice.
    pub async fn finish_timer(&mut self, id: &str, status: &str, now_ms: i64) -> Result<()> {
        let sql = "UPDATE timers SET status = $1, done_at = $2 WHERE id = $3";
        on_tx!(self, |c| sqlx::query(sql)
            .bind(status)
            .bind(now_ms)
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Puts a destination record in force (R2). The record in force before it, if any,
    /// is kept as `replaced`, ended by `ending`. Both deferred: sent with the transition's
    /// other writes, the new record after the old one has ended (one in force per
    /// student, a unique index).
    pub async fn record_destination(&mut self, d: &DestinationRow, ending: &Ending<'_>) -> Result<()> {
        self.end_destination(&d.student_id, None, "replaced", ending).await?;
        let sql = format!(
            "INSERT INTO destinations ({DESTINATION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'in_force', NULL, NULL, NULL)"
        );
        self.defer(
            Write::new(
                sql,
                vec![
                    Arg::from(&d.id),
                    (&d.student_id).into(),
                    (&d.category_code).into(),
                    (&d.unit_name).into(),
                    (&d.location).into(),
                    (&d.case_id).into(),
                    d.approved_at.into(),
                    (&d.data).into(),
                ],
            )
            .after_earlier(),
        );
        Ok(())
    }

    /// Withdraws the destination record in force that `case_id` made (R18): kept as
    /// `withdrawn`; another case's record stays in force.
    pub async fn withdraw_destination(&mut self, student_id: &str, case_id: &str, ending: &Ending<'_>) -> Result<()> {
        self.end_destination(student_id, Some(case_id), "withdrawn", ending)
            .await
    }

    /// Ends the student's record in force (made by `made_by`, when given) with `status`.
    async fn end_destination(
        &mut self,
        student_id: &str,
        made_by: Option<&str>,
        status: &str,
        ending: &Ending<'_>,
    ) -> Result<()> {
        let sql = "UPDATE destinations SET status = $1, ended_by_case = $2, ended_by = $3, ended_at = $4
                   WHERE student_id = $5 AND status = 'in_force' AND ($6 IS NULL OR case_id = $6)";
        self.defer(Write::new(
            sql,
            vec![
                status.into(),
                ending.case_id.into(),
                ending.transition.into(),
                ending.at.into(),
                student_id.into(),
                made_by.into(),
            ],
        ));
        Ok(())
    }
}
