//! Writes a transaction sends later, together: round trips are the cost of a transition
//! (issue 17), and most of its writes — history, timers, mail, jobs, render requests, the
//! case's own UPDATE — return nothing the engine reads. A [`Tx`] queues them
//! ([`Tx::defer`]) and sends the queue as one statement: before the next statement that
//! reads or returns something (so a transaction still reads its own writes), and at commit.
//!
//! - On SQLite the queue is one multi-statement query (`INSERT …; UPDATE …`): sqlx-sqlite
//!   runs each statement of a query in turn and binds `$n` to the query's n-th argument in
//!   every one of them, so the placeholders are numbered across the whole queue.
//! - On PostgreSQL a prepared statement is one statement: the queue becomes writable CTEs
//!   (`WITH w0 AS (INSERT …), w1 AS (UPDATE …) SELECT …`). The parts of one statement do
//!   not see each other's effects and run in no set order: a write that must see the ones
//!   queued before it (the destination record put in force after the old one is ended,
//!   under a unique index) says so ([`Write::after_earlier`]) and starts a new statement.
//!   Nor may two parts change one row: a timer's own `finish_timer`, which follows the
//!   cancelling of its case's timers when it fires, is not deferred.
//!
//! A deferred write that fails makes the flush fail (the next statement, or the commit),
//! and the transaction rolls back as it would have.

use super::{Result, StoreError, Tx, counted};

/// A value bound to a deferred write, typed as the column it fills (PostgreSQL is told
/// each parameter's type).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

/// One statement of the queue: its SQL with placeholders `$1…$n` for its own `args`.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    sql: String,
    args: Vec<Arg>,
    /// Must change exactly one row; the message is the error when it does not.
    one_row: Option<String>,
    /// Must see the effects of the writes queued before it (see the module's note).
    after_earlier: bool,
}

impl Write {
    pub(crate) fn new(sql: impl Into<String>, args: Vec<Arg>) -> Write {
        Write {
            sql: sql.into(),
            args,
            one_row: None,
            after_earlier: false,
        }
    }

    /// Fails the flush with `message` unless this write changed exactly one row.
    pub(crate) fn one_row(mut self, message: String) -> Write {
        self.one_row = Some(message);
        self
    }

    /// Runs after the writes queued before it have taken effect.
    pub(crate) fn after_earlier(mut self) -> Write {
        self.after_earlier = true;
        self
    }
}

/// The token a PostgreSQL write uses to read the `RETURNING` rows of the write queued just
/// before it (its CTE's name): mail's jobs are pushed only for the mail rows inserted.
pub(crate) const PREVIOUS: &str = "{previous}";

/// `sql` with each placeholder `$n` renumbered `$(n + offset)`. The store's SQL holds no
/// `$` but in placeholders.
fn shift_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
            out.push(ch);
            continue;
        }
        let mut n = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            n = n * 10 + d as usize;
            chars.next();
        }
        out.push('$');
        out.push_str(&(n + offset).to_string());
    }
    out
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Tx {
    /// Queues a write, sent with the others before the next statement or at commit.
    pub(crate) fn defer(&mut self, write: Write) {
        match self {
            Tx::Sqlite(t) => t.deferred.push(write),
            Tx::Postgres(t) => t.deferred.push(write),
        }
    }

    /// Sends the queued writes (see the module's note): one statement on SQLite; on
    /// PostgreSQL one for each run of writes that need not see each other.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => {
                let writes = std::mem::take(&mut t.deferred);
                if writes.is_empty() {
                    return Ok(());
                }
                let mut sql = String::new();
                let mut args = Vec::new();
                let mut checked = Vec::new();
                for w in writes {
                    if !sql.is_empty() {
                        sql.push_str(";\n");
                    }
                    sql.push_str(&shift_placeholders(&w.sql, args.len()));
                    if let Some(message) = w.one_row {
                        // The one row it changed comes back as a row of the query.
                        sql.push_str(" RETURNING 1");
                        checked.push(message);
                    }
                    args.extend(w.args);
                }
                counted();
                let q = bind_all!(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)), args);
                let rows = q.fetch_all(&mut **t).await?;
                if rows.len() != checked.len() {
                    return Err(StoreError::Corrupt(checked.join("; ")));
                }
                Ok(())
            }
            Tx::Postgres(t) => {
                // Runs of writes that may share a statement.
                let mut runs: Vec<Vec<Write>> = Vec::new();
                for w in std::mem::take(&mut t.deferred) {
                    match runs.last_mut() {
                        Some(run) if !w.after_earlier => run.push(w),
                        _ => runs.push(vec![w]),
                    }
                }
                for run in runs {
                    let (sql, args, checked) = postgres_statement(run);
                    counted();
                    let q = bind_all!(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)), args);
                    if q.fetch_one(&mut **t).await? != 0 {
                        return Err(StoreError::Corrupt(checked.join("; ")));
                    }
                }
                Ok(())
            }
        }
    }

    /// Forgets the queued writes (the transaction rolls back).
    pub(crate) fn discard(&mut self) {
        match self {
            Tx::Sqlite(t) => t.deferred.clear(),
            Tx::Postgres(t) => t.deferred.clear(),
        }
    }
}

/// One PostgreSQL statement for a run of writes: each a CTE, then a `SELECT` that counts
/// the checked writes that did not change exactly one row.
fn postgres_statement(run: Vec<Write>) -> (String, Vec<Arg>, Vec<String>) {
    let mut ctes = Vec::new();
    let mut args = Vec::new();
    let mut checked = Vec::new();
    let mut failed = vec!["0".to_string()];
    for (i, w) in run.into_iter().enumerate() {
        let mut sql = shift_placeholders(&w.sql, args.len());
        if i > 0 {
            sql = sql.replace(PREVIOUS, &format!("w{}", i - 1));
        }
        if let Some(message) = w.one_row {
            sql.push_str(" RETURNING 1");
            failed.push(format!("CASE WHEN (SELECT count(*) FROM w{i}) = 1 THEN 0 ELSE 1 END"));
            checked.push(message);
        }
        ctes.push(format!("w{i} AS ({sql})"));
        args.extend(w.args);
    }
    let sql = format!("WITH {} SELECT ({})::BIGINT", ctes.join(", "), failed.join(" + "));
    (sql, args, checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_after_the_earlier_writes() {
        assert_eq!(
            shift_placeholders("UPDATE t SET a = $1, b = $12 WHERE c = $2", 3),
            "UPDATE t SET a = $4, b = $15 WHERE c = $5"
        );
        assert_eq!(shift_placeholders("SELECT '$' || $1", 0), "SELECT '$' || $1");
    }
}
