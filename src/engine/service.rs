//! Runs transitions: reads the case under its lock, asks [`super::decide`], and writes
//! the outcome — state, history, claims, timers, projections and jobs — in one
//! transaction. Also starts cases, fires timers and builds what readers see.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Actor, CaseRef, Outcome, Parties, Refusal, Request, actions, decide, is_party,
    view::{CaseSummary, CaseView, EventView, HistoryView, PartiesView, PartyRef, TimerView},
};
use crate::{
    clock::SharedClock,
    definition::{Definition, Effect, Message, Registry, Role, TimerAction},
    jobs::{Job, WorkersConfig},
    store::{
        Around, CaseFilter, CaseRow, Db, GraduateFilter, GraduateRow, HistoryRow, PartyKind, PartyRow, StoreError,
        TimerRow, Tx, from_millis, millis,
    },
};

/// Why the engine did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("claim {key} is held by case {holder}")]
    ClaimHeld {
        key: String,
        holder: String,
        message: Message,
    },
    #[error("the case is at version {current}, not the one given")]
    Stale { current: i64 },
    #[error("the idempotency key was used for a different request")]
    KeyReused,
    #[error("unknown workflow {0}")]
    UnknownWorkflow(String),
    #[error("the definition has problems:\n{0}")]
    InvalidDefinition(crate::definition::DefinitionError),
    #[error("unknown {kind} {id}")]
    UnknownParty {
        kind: &'static str,
        id: String,
        field: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An `Idempotency-Key` and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// The engine's answer to a write: the status and body to send, and whether they are
/// a replay of an earlier answer to the same key.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

/// A request to start a case.
#[derive(Debug, Clone)]
pub struct Start {
    pub workflow: String,
    /// The student the case is about (the actor's own id when a student starts it).
    pub student: Option<String>,
    /// The employer, for a workflow whose start is the employer's, started by someone
    /// else (a platform admin); an employer starts as itself.
    pub employer: Option<String>,
    pub input: Value,
}

/// What firing a timer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerFired {
    Fired,
    NotDue,
    /// Already fired or cancelled, or its case left the state: nothing to do.
    Stale,
}

#[derive(Clone)]
pub struct Engine {
    pub db: Db,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    pub workers: Arc<WorkersConfig>,
    pub settings: Arc<Settings>,
    pub renderer: Arc<super::documents::LazyRenderer>,
    /// Templates and transport; `None` where no mail is configured (the CLI).
    pub mail: Option<Arc<super::notify::MailService>>,
    /// This process's counters and histograms (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The requests this process is answering, which its jobs let go first.
    pub foreground: Arc<super::foreground::Foreground>,
}

/// One pass of the timer loop over the due timers.
#[derive(Debug, Default)]
pub struct DueTimers {
    /// Due timers looked at.
    pub seen: usize,
    /// Those that could not fire (an error; logged).
    pub failed: usize,
    /// Due time to firing of those that fired, in milliseconds.
    pub lags: Vec<i64>,
}

/// What the engine needs to know of its surroundings. `Debug` hides the key.
#[derive(Clone)]
pub struct Settings {
    /// The platform's public URL, for verification links and links in mail.
    pub base_url: String,
    /// Key of the HMAC that makes agreement verification codes.
    pub agreement_key: Vec<u8>,
    /// The data folder: documents are kept under `blobs/`.
    pub data_dir: std::path::PathBuf,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("agreement_key", &"<hidden>")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Engine {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The definition a case pinned: from memory, or compiled from its stored source.
    pub(super) async fn definition_of(&self, tx: &mut Tx, hash: &str) -> Result<Arc<Definition>> {
        if let Some(def) = self.registry.by_hash(hash) {
            return Ok(def);
        }
        let (name, source) = tx
            .version_source(hash)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("workflow version {hash} is missing")))?;
        let def = Definition::parse_stored(&format!("{name}.toml"), &source, self.registry.catalog())
            .map_err(|e| StoreError::Corrupt(format!("stored workflow {name} {hash}: {e}")))?;
        Ok(self.registry.remember(def))
    }

    /// Starts a case of `start.workflow` on behalf of `actor`.
    pub async fn start(&self, actor: &Actor, start: Start, idem: Option<Idempotency>) -> Result<Answer> {
        let started = std::time::Instant::now();
        let workflow = start.workflow.clone();
        let (answer, statements) = crate::store::count_statements(self.start_counted(actor, start, idem)).await;
        // The start is named after the workflow's start, not a transition of it.
        self.count_transition(&workflow, "start", &answer, started, statements);
        answer
    }

    async fn start_counted(&self, actor: &Actor, start: Start, idem: Option<Idempotency>) -> Result<Answer> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // The active version, read from the database: an activation through any process
        // reaches this start.
        let def = self.active_definition(&mut tx, &start.workflow).await?;
        // The identity first (the scope is judged with the case, in `decide`).
        if def.roles_of(&def.start.by, actor.role).next().is_none() {
            return Err(Refusal::WrongRole {
                transition: def.start.name.clone(),
                title: Message::from_title(&def.start.title),
                role: actor.role,
                allowed: def.role_titles(&def.start.by),
            }
            .into());
        }
        if let Some(answer) = self.replay(&mut tx, actor, idem.as_ref(), now).await? {
            tx.rollback().await?;
            return Ok(answer);
        }
        let student_id = match (actor.role, start.student) {
            (Role::Student, _) => actor.party.clone().unwrap_or_default(),
            (_, Some(s)) => s,
            (_, None) => {
                return Err(Refusal::Invalid(vec![
                    crate::domain::FieldError::new("required", "请指定学生", "student is required")
                        .with_field("student"),
                ])
                .into());
            }
        };
        let employer_id = case_employer(&def, actor, start.employer)?;
        // The student, the employer and the student's school in one round trip.
        let rows = tx.case_parties(&student_id, employer_id.as_deref(), None).await?;
        let found = |kind: PartyKind| rows.iter().find(|p| p.kind == kind.as_str());
        let student = found(PartyKind::Student).ok_or_else(|| EngineError::UnknownParty {
            kind: "student",
            id: student_id.clone(),
            field: "student".into(),
        })?;
        if let Some(id) = &employer_id
            && found(PartyKind::Employer).is_none()
        {
            let field = if actor.role == Role::Employer {
                "token.party"
            } else {
                "employer"
            };
            return Err(EngineError::UnknownParty {
                kind: "employer",
                id: id.clone(),
                field: field.into(),
            });
        }
        let case = CaseRef {
            id: Uuid::now_v7().to_string(),
            state: String::new(),
            data: json!({}),
            student_id,
            employer_id,
            school_id: student.school_id.clone().unwrap_or_default(),
            college: student_college(&student.data_json()),
            documents: json!({}),
            held_elsewhere: Vec::new(),
        };
        let parties = parties_from(&case, rows);
        let outcome = decide(&Request {
            def: &def,
            case: &case,
            is_start: true,
            actor,
            transition: &def.start.name,
            input: &start.input,
            parties: &parties,
            now,
        })?;
        let mut around = Around::default();
        let row = self
            .apply(
                &mut tx,
                &def,
                None,
                &case,
                &parties,
                &mut around,
                &outcome,
                actor,
                idem.as_ref(),
                now,
            )
            .await?;
        let case = case.after(&row)?;
        self.finish(tx, &def, row, &case, &parties, &around, actor, idem.as_ref(), 201)
            .await
    }

    /// Fires `transition` on a case on behalf of `actor`.
    pub async fn fire(
        &self,
        actor: &Actor,
        case_id: &str,
        transition: &str,
        input: &Value,
        if_match: Option<i64>,
        idem: Option<Idempotency>,
    ) -> Result<Answer> {
        let started = std::time::Instant::now();
        let mut workflow = String::new();
        let (answer, statements) = crate::store::count_statements(self.fire_counted(
            actor,
            case_id,
            transition,
            input,
            if_match,
            idem,
            &mut workflow,
        ))
        .await;
        self.count_transition(&workflow, transition, &answer, started, statements);
        answer
    }

    /// Counts and times a transition asked for, by its outcome, with the statements a
    /// transition that went through sent (the round trips the store counted).
    fn count_transition(
        &self,
        workflow: &str,
        transition: &str,
        answer: &Result<Answer>,
        started: std::time::Instant,
        statements: u32,
    ) {
        let outcome = match answer {
            Ok(_) => "ok",
            Err(EngineError::Store(_)) => "error",
            Err(_) => "refused",
        };
        // Names a client made up would make a series each: they count as `other`.
        let def = self.registry.current(workflow);
        let known = def
            .as_ref()
            .is_some_and(|d| transition == "start" || d.transitions.iter().any(|t| t.name == transition));
        let workflow = if def.is_some() { workflow } else { "other" };
        let transition = if known { transition } else { "other" };
        self.metrics
            .transition(workflow, transition, outcome, started.elapsed());
        if matches!(answer, Ok(a) if !a.replayed) {
            self.metrics.statements(workflow, transition, statements);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fire_counted(
        &self,
        actor: &Actor,
        case_id: &str,
        transition: &str,
        input: &Value,
        if_match: Option<i64>,
        idem: Option<Idempotency>,
        workflow: &mut String,
    ) -> Result<Answer> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row = tx.lock_case(case_id).await?.ok_or_else(|| not_found("case", case_id))?;
        workflow.clone_from(&row.workflow);
        let (case, mut around) = self.case_around(&mut tx, &row).await?;
        if !is_party(&case, actor) {
            return Err(Refusal::NotYourCase.into());
        }
        if let Some(answer) = self.replay(&mut tx, actor, idem.as_ref(), now).await? {
            tx.rollback().await?;
            return Ok(answer);
        }
        if let Some(expected) = if_match
            && expected != row.version
        {
            return Err(EngineError::Stale { current: row.version });
        }
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let parties = parties_around(&case, &around);
        let outcome = decide(&Request {
            def: &def,
            case: &case,
            is_start: false,
            actor,
            transition,
            input,
            parties: &parties,
            now,
        })?;
        let row = self
            .apply(
                &mut tx,
                &def,
                Some(&row),
                &case,
                &parties,
                &mut around,
                &outcome,
                actor,
                idem.as_ref(),
                now,
            )
            .await?;
        let case = case.after(&row)?;
        self.finish(tx, &def, row, &case, &parties, &around, actor, idem.as_ref(), 200)
            .await
    }

    /// The earlier answer to this idempotency key, if there is one.
    async fn replay(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        idem: Option<&Idempotency>,
        now: DateTime<Utc>,
    ) -> Result<Option<Answer>> {
        let Some(idem) = idem else { return Ok(None) };
        let Some(stored) = tx
            .reserve_key(&actor.who(), &idem.key, &idem.request_hash, millis(now))
            .await?
        else {
            return Ok(None);
        };
        if stored.request_hash != idem.request_hash {
            return Err(EngineError::KeyReused);
        }
        let body = stored
            .response
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        Ok(Some(Answer {
            status: stored.status.unwrap_or(200) as u16,
            body,
            replayed: true,
        }))
    }

    /// Commits, and builds the answer from what the transaction held (no read). With an
    /// idempotency key the answer is built first and kept under the key in the
    /// transaction; without one it is built after the commit, so SQLite's write lock is
    /// not held while it is.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish(
        &self,
        mut tx: Tx,
        def: &Definition,
        row: CaseRow,
        case: &CaseRef,
        parties: &Parties,
        around: &Around,
        actor: &Actor,
        idem: Option<&Idempotency>,
        status: u16,
    ) -> Result<Answer> {
        let answer = || {
            serde_json::to_value(view_of(def, &row, case, parties, around, actor)).expect("a view always serialises")
        };
        let body = match idem {
            // The answer is kept with its key, in the transaction.
            Some(idem) => {
                let body = answer();
                tx.complete_key(&actor.who(), &idem.key, status, &body.to_string())
                    .await?;
                tx.commit().await?;
                body
            }
            // Built once the write lock is released.
            None => {
                tx.commit().await?;
                answer()
            }
        };
        Ok(Answer {
            status,
            body,
            replayed: false,
        })
    }

    /// Writes an outcome, keeping `around` (read under the case's lock) as the case now
    /// is. On a claim conflict nothing is written (the caller's transaction is dropped,
    /// which rolls it back).
    ///
    /// Round trips are the cost of a transition: timers a state shares with the one it
    /// left stay (handed over, not cancelled and set again), escalations are resolved only
    /// when one is open, and every write that answers nothing is deferred (see
    /// `store::deferred`): sent with the others in one statement at commit. What is sent
    /// at once: the new case's row, the claims taken (a conflict must answer) and the
    /// agreement number — a counter one school's confirms share, taken after the claims (a
    /// conflict wastes no number) and, on PostgreSQL, in a transaction of its own, so no
    /// confirm waits for another's commit (`Tx::next_counter`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply(
        &self,
        tx: &mut Tx,
        def: &Definition,
        before: Option<&CaseRow>,
        case: &CaseRef,
        parties: &Parties,
        around: &mut Around,
        outcome: &Outcome,
        actor: &Actor,
        idem: Option<&Idempotency>,
        now: DateTime<Utc>,
    ) -> Result<CaseRow> {
        let now_ms = millis(now);
        let mut data = outcome.data.clone();
        let mut row = CaseRow {
            id: case.id.clone(),
            workflow: def.name.clone(),
            workflow_hash: match before {
                Some(b) if !outcome.migration => b.workflow_hash.clone(),
                _ => def.hash.clone(),
            },
            state: outcome.to.clone(),
            version: before.map(|b| b.version).unwrap_or(0) + 1,
            data: data.to_string(),
            student_id: case.student_id.clone(),
            employer_id: case.employer_id.clone(),
            school_id: case.school_id.clone(),
            created_at: before.map(|b| b.created_at).unwrap_or(now_ms),
            updated_at: now_ms,
            state_entered_at: if outcome.enters && !outcome.migration {
                now_ms
            } else {
                before.map(|b| b.state_entered_at).unwrap_or(now_ms)
            },
        };
        let numbered = outcome.effects.contains(&Effect::AssignAgreementNumber);
        if before.is_none() {
            if numbered {
                self.assign_agreement_number(tx, case, &mut data, now).await?;
                row.data = data.to_string();
            }
            tx.insert_case(&row).await?;
        }
        if outcome.migration {
            tx.pin_case(&row.id, &row.workflow_hash).await?;
        }
        let mut history = HistoryRow {
            case_id: row.id.clone(),
            seq: row.version,
            transition: outcome.transition.clone(),
            from_state: outcome.from.clone(),
            to_state: outcome.to.clone(),
            actor: actor.label(),
            input: outcome.input.to_string(),
            at: now_ms,
            idempotency_key: idem.map(|i| i.key.clone()),
            changes: (!outcome.changes.is_empty())
                .then(|| serde_json::to_string(&outcome.changes).expect("changes serialise")),
            actor_sub: actor.person.as_ref().map(|p| p.sub.clone()),
            actor_name: actor.person.as_ref().and_then(|p| p.name.clone()),
            data: None,
            hash: None,
        };
        // Claims are taken first: a conflict answers 409 before anything else is queued.
        // The statements that answer something come before the deferred writes (release,
        // timers, effects, the case, history, mail — sent together at commit), so those
        // cost one round trip.
        for (key, name) in &outcome.take {
            if let Err(holder) = tx.take_claim(key, &row.id, now_ms).await? {
                let message = def.claims[name].conflict.clone();
                return Err(EngineError::ClaimHeld {
                    key: key.clone(),
                    holder,
                    message,
                });
            }
        }
        // The agreement number — a counter one school's confirms share — after the claims:
        // on SQLite the last statement before the deferred writes and the commit.
        if before.is_some() && numbered {
            self.assign_agreement_number(tx, case, &mut data, now).await?;
            row.data = data.to_string();
        }
        for key in &outcome.release {
            tx.release_claim(key, &row.id).await?;
        }
        if outcome.enters {
            self.enter_timers(tx, before.is_some(), &row, around, outcome, now_ms)
                .await?;
            if around.escalations.iter().any(|e| e.resolved_at.is_none()) {
                tx.resolve_escalations(&row.id, now_ms).await?;
                for e in around.escalations.iter_mut().filter(|e| e.resolved_at.is_none()) {
                    e.resolved_at = Some(now_ms);
                }
            }
        }
        for effect in &outcome.effects {
            self.effect(
                tx,
                def,
                &row,
                &outcome.data,
                parties,
                effect,
                &outcome.transition,
                now_ms,
            )
            .await?;
        }
        if let Some(b) = before {
            tx.update_case(&row, b.version).await?;
        }
        // The history row keeps the data the transition left, agreement number included
        // (what a render of this version prints), so it is written once the number is taken.
        // Chained to the last row this transaction read with the case (under its lock).
        history.data = Some(row.data.clone());
        let previous = around.history.last().and_then(|h| h.hash.clone()).unwrap_or_default();
        history.hash = Some(tx.insert_history(&history, &previous).await?);
        around.history.push(history);
        let cause = mail_cause(def, outcome);
        for mail in &outcome.mails {
            self.queue_mail(
                tx,
                def,
                &row,
                &data,
                parties,
                mail,
                &format!("h{}", row.version),
                &cause,
            )
            .await?;
        }
        tracing::info!(case = %row.id, workflow = %def.name, transition = %outcome.transition, actor = %actor.who(),
            from = outcome.from.as_deref().unwrap_or("-"), to = %outcome.to, "transition fired");
        Ok(row)
    }

    /// The timers of the state a case entered. When they are the ones already pending
    /// (the same timers with the same due times, as between two states that share an
    /// invitation's deadline), they are handed over to the new state; otherwise the
    /// pending ones are cancelled and the new ones set, with one wake-up for them all.
    async fn enter_timers(
        &self,
        tx: &mut Tx,
        existing: bool,
        row: &CaseRow,
        around: &mut Around,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<()> {
        let mut wanted: Vec<(String, Option<String>, i64)> = outcome
            .timers
            .iter()
            .map(|t| {
                let (fire, spec) = timer_spec(&t.action);
                (fire, spec, millis(t.due))
            })
            .collect();
        let mut pending: Vec<(String, Option<String>, i64)> = around
            .timers
            .iter()
            .map(|t| (t.fire.clone(), t.spec.clone(), t.due_at))
            .collect();
        wanted.sort();
        pending.sort();
        if existing && !wanted.is_empty() && wanted == pending {
            tx.move_timers(&row.id, &row.state).await?;
            for t in &mut around.timers {
                t.state = row.state.clone();
            }
            return Ok(());
        }
        if existing && !around.timers.is_empty() {
            tx.cancel_timers(&row.id, now_ms).await?;
        }
        around.timers = outcome
            .timers
            .iter()
            .map(|timer| {
                let (fire, spec) = timer_spec(&timer.action);
                TimerRow {
                    id: Uuid::now_v7().to_string(),
                    case_id: row.id.clone(),
                    state: row.state.clone(),
                    fire,
                    due_at: millis(timer.due),
                    status: "pending".into(),
                    spec,
                }
            })
            .collect();
        tx.insert_timers(&around.timers, now_ms).await?;
        if !outcome.timers.is_empty() {
            // The timer loop of every worker fires them on time (`jobs::runner`); the
            // notice wakes the loops of other processes, so they are on their schedule.
            tx.notify_timer_set().await?;
        }
        Ok(())
    }

    /// Pushes a job onto the queue configured for its kind, in the caller's transaction.
    ///
    /// `at` is a moment on the engine's clock; apalis schedules by the wall clock, so
    /// the job is due after the same delay from now on the wall clock (the two differ
    /// only when tests move the engine's clock).
    pub async fn push(&self, tx: &mut Tx, job: &Job, at: DateTime<Utc>) -> Result<()> {
        let job = self.new_job(job, at)?;
        tx.push_job(&job.queue, job.payload, job.run_at, job.max_attempts)
            .await?;
        Ok(())
    }

    /// A job as the store pushes it: on the queue configured for its kind, due after
    /// the delay from now to `at` on the wall clock (see [`Engine::push`]).
    pub(super) fn new_job(&self, job: &Job, at: DateTime<Utc>) -> Result<crate::store::NewJob> {
        let queue = self
            .workers
            .queue_of(job.kind())
            .ok_or_else(|| StoreError::Queue(format!("no queue runs {}", job.kind())))?;
        Ok(crate::store::NewJob {
            queue: queue.queue.clone(),
            payload: job.encode(),
            run_at: run_at_seconds(at - self.now()),
            max_attempts: queue.max_attempts,
            email: None,
        })
    }

    /// Fires one timer if it is still due on a case still in its state.
    ///
    /// Locks the case before anything of its timers, as a transition does (which
    /// cancels them under the case lock): one lock order, so the two cannot deadlock.
    /// Every write to a timer row holds its case's lock, so the timer read again under
    /// that lock is its latest word.
    pub async fn fire_timer(&self, timer_id: &str) -> Result<TimerFired> {
        let started = std::time::Instant::now();
        let ((fired, transition), statements) = crate::store::count_statements(self.fire_timer_counted(timer_id)).await;
        if let Some((workflow, transition)) = transition {
            // A transition the system fired counts with the parties' ones.
            self.metrics.transition(&workflow, &transition, "ok", started.elapsed());
            self.metrics.statements(&workflow, &transition, statements);
        }
        fired
    }

    /// [`Engine::fire_timer`], with the workflow and transition when one fired.
    async fn fire_timer_counted(&self, timer_id: &str) -> (Result<TimerFired>, Option<(String, String)>) {
        let mut fired = None;
        let result = self.fire_timer_in(timer_id, &mut fired).await;
        (result, fired)
    }

    async fn fire_timer_in(&self, timer_id: &str, fired: &mut Option<(String, String)>) -> Result<TimerFired> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let Some(peeked) = tx.timer(timer_id).await? else {
            return Ok(TimerFired::Stale);
        };
        if peeked.status != "pending" {
            return Ok(TimerFired::Stale);
        }
        if peeked.due_at > millis(now) {
            return Ok(TimerFired::NotDue);
        }
        let row = tx
            .lock_case(&peeked.case_id)
            .await?
            .ok_or_else(|| not_found("case", &peeked.case_id))?;
        let Some(timer) = tx.timer(timer_id).await?.filter(|t| t.status == "pending") else {
            return Ok(TimerFired::Stale); // fired or cancelled while we waited for the case
        };
        if row.state == timer.state
            && let Some(spec) = &timer.spec
        {
            let mail: crate::definition::Mail =
                serde_json::from_str(spec).map_err(|e| StoreError::Corrupt(format!("timer {}: {e}", timer.id)))?;
            self.remind(&mut tx, &row, &mail, &timer.id, now).await?;
            tx.finish_timer(&timer.id, "fired", millis(now)).await?;
            tx.commit().await?;
            return Ok(TimerFired::Fired);
        }
        if row.state != timer.state {
            tx.finish_timer(&timer.id, "cancelled", millis(now)).await?;
            tx.commit().await?;
            return Ok(TimerFired::Stale);
        }
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let (case, mut around) = self.case_around(&mut tx, &row).await?;
        let parties = parties_around(&case, &around);
        let actor = Actor::system();
        let empty = json!({});
        let request = Request {
            def: &def,
            case: &case,
            is_start: false,
            actor: &actor,
            transition: &timer.fire,
            input: &empty,
            parties: &parties,
            now,
        };
        let outcome = decide(&request)?;
        self.apply(
            &mut tx,
            &def,
            Some(&row),
            &case,
            &parties,
            &mut around,
            &outcome,
            &actor,
            None,
            now,
        )
        .await?;
        tx.finish_timer(&timer.id, "fired", millis(now)).await?;
        tx.commit().await?;
        *fired = Some((def.name.clone(), timer.fire.clone()));
        Ok(TimerFired::Fired)
    }

    /// Fires the timers due now, up to `limit`, `concurrency` at a time (the timer
    /// loop). Returns how many were looked at, how many could not fire (an error), and the
    /// delays of those that fired (due time to firing, in milliseconds).
    pub async fn fire_due_timers(&self, limit: i64, concurrency: usize) -> Result<DueTimers> {
        let mut tx = self.db.read().await?;
        let due = tx.due_timers(millis(self.now()), limit).await?;
        tx.rollback().await?;
        let seen = due.len();
        let fired = futures::stream::iter(due)
            .map(|timer| async move {
                match self.fire_timer(&timer.id).await {
                    Ok(TimerFired::Fired) => Ok(Some(millis(self.now()) - timer.due_at)),
                    Ok(_) => Ok(None),
                    Err(e) => {
                        tracing::warn!(timer = %timer.id, case = %timer.case_id, error = %e, "timer could not fire");
                        Err(())
                    }
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(DueTimers {
            seen,
            failed: fired.iter().filter(|f| f.is_err()).count(),
            lags: fired.into_iter().filter_map(|f| f.ok().flatten()).collect(),
        })
    }

    /// When the next pending timer is due, on the engine's clock.
    pub async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.db.read().await?;
        let due = tx.next_timer_due().await?;
        tx.rollback().await?;
        Ok(due.map(from_millis))
    }

    /// Fires every due timer (the safety net behind the timer loops). Returns how
    /// many fired.
    pub async fn sweep_timers(&self) -> Result<usize> {
        let mut fired = 0;
        loop {
            let mut tx = self.db.read().await?;
            let due = tx.due_timers(millis(self.now()), 200).await?;
            tx.rollback().await?;
            if due.is_empty() {
                return Ok(fired);
            }
            let mut progressed = false;
            for timer in due {
                match self.fire_timer(&timer.id).await {
                    Ok(TimerFired::Fired) => {
                        fired += 1;
                        progressed = true;
                    }
                    Ok(_) => progressed = true,
                    Err(e) => {
                        tracing::warn!(timer = %timer.id, case = %timer.case_id, error = %e, "timer could not fire")
                    }
                }
            }
            if !progressed {
                return Ok(fired);
            }
        }
    }

    /// A case as `actor` sees it; 403 for someone who is not a party to it.
    pub async fn view(&self, case_id: &str, actor: &Actor) -> Result<CaseView> {
        let mut tx = self.db.read().await?;
        let row = tx.case(case_id).await?.ok_or_else(|| not_found("case", case_id))?;
        let (case, around) = self.case_around(&mut tx, &row).await?;
        if !is_party(&case, actor) {
            return Err(Refusal::NotYourCase.into());
        }
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let parties = parties_around(&case, &around);
        tx.rollback().await?;
        Ok(view_of(&def, &row, &case, &parties, &around, actor))
    }

    /// Cases `actor` may see that match the filter, at most `filter.limit`.
    pub async fn list(&self, actor: &Actor, mut filter: CaseFilter) -> Result<Vec<CaseSummary>> {
        match actor.role {
            Role::Student => filter.student = actor.party.clone(),
            Role::Employer => filter.employer = actor.party.clone(),
            Role::SchoolReviewer | Role::SchoolAdmin => {
                filter.school = actor.school.clone();
                // Staff of one college see its students' cases only.
                if actor.college.is_some() {
                    filter.college = actor.college.clone();
                }
            }
            Role::PlatformAdmin | Role::System => {}
        }
        let mut tx = self.db.read().await?;
        let rows = tx.cases(&filter).await?;
        let mut summaries = Vec::with_capacity(rows.len());
        for r in rows {
            let def = self.definition_of(&mut tx, &r.workflow_hash).await?;
            let data: Value = serde_json::from_str(&r.data).unwrap_or(Value::Null);
            // Unit and position where the definition maps them (`[destination_record]`).
            let mapped = |path: &Option<String>| crate::definition::DestinationRecordMap::read(path, &data);
            summaries.push(CaseSummary {
                workflow_title: def.title.clone(),
                state_title: def.state(&r.state).map(|s| s.title.clone()).unwrap_or_default(),
                // What the agreement prints: the typed-in employer overlays the synced one.
                employer_name: mapped(&def.destination_record.unit).or(r.employer_name),
                position: mapped(&def.destination_record.position),
                id: r.id,
                workflow: r.workflow,
                state: r.state,
                version: r.version,
                student_id: r.student_id,
                student_name: r.student_name,
                student_number: r.student_number,
                college: r.college,
                employer_id: r.employer_id,
                school_id: r.school_id,
                deadline: r.deadline.map(|d| from_millis(d).to_rfc3339()),
                waiting_since: from_millis(r.state_entered_at).to_rfc3339(),
                updated_at: from_millis(r.updated_at).to_rfc3339(),
            });
        }
        tx.rollback().await?;
        Ok(summaries)
    }

    /// A school's graduates (school staff: their own school), by id.
    pub async fn graduates(&self, actor: &Actor, mut filter: GraduateFilter) -> Result<Vec<GraduateRow>> {
        if matches!(actor.role, Role::SchoolReviewer | Role::SchoolAdmin) {
            filter.school = actor.school.clone();
            if actor.college.is_some() {
                filter.college = actor.college.clone();
            }
        }
        let mut tx = self.db.read().await?;
        let rows = tx.graduates(&filter).await?;
        tx.rollback().await?;
        Ok(rows)
    }

    /// Stores a party record; true when it is new.
    pub async fn put_party(&self, row: &PartyRow) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let created = tx.put_party(row).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Stores many party records in one transaction; returns how many were new.
    pub async fn put_parties(&self, rows: &[PartyRow]) -> Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut created = 0;
        for row in rows {
            created += usize::from(tx.put_party(row).await?);
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn party(&self, kind: PartyKind, id: &str) -> Result<Option<PartyRow>> {
        let mut tx = self.db.read().await?;
        let row = tx.party(kind, id).await?;
        tx.rollback().await?;
        Ok(row)
    }

    /// The facts of a stored case the core decides on, with its current documents
    /// counted by slot (`documents.stamped_agreement` in conditions).
    pub(super) async fn case_ref(&self, tx: &mut Tx, row: &CaseRow) -> Result<CaseRef> {
        Ok(self.case_around(tx, row).await?.0)
    }

    /// The facts of a stored case and what surrounds it (history, escalations, pending
    /// timers), read in one round trip: the case's current documents counted by slot
    /// (`documents.stamped_agreement` in conditions) and which of the definition's
    /// claim keys for it another case holds.
    pub(super) async fn case_around(&self, tx: &mut Tx, row: &CaseRow) -> Result<(CaseRef, Around)> {
        let mut case = plain_case_ref(row)?;
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        let keys: Vec<(String, String)> = def
            .claims
            .values()
            .map(|claim| (claim.name.clone(), super::claim_key(&claim.key, &case)))
            .collect();
        let wanted: Vec<String> = keys.iter().map(|(_, key)| key.clone()).collect();
        let parties = (
            row.student_id.as_str(),
            row.employer_id.as_deref(),
            row.school_id.as_str(),
        );
        let around = tx.around(&row.id, parties, &wanted).await?;
        let mut counts = serde_json::Map::new();
        for slot in &around.documents {
            let n = counts.get(slot).and_then(Value::as_i64).unwrap_or(0);
            counts.insert(slot.clone(), json!(n + 1));
        }
        case.documents = Value::Object(counts);
        // Staff of one college reach only its students' cases (see `is_party`).
        case.college = around
            .student_record
            .as_deref()
            .and_then(|record| serde_json::from_str::<Value>(record).ok())
            .and_then(|record| student_college(&record));
        for (name, key) in keys {
            if around.holders.iter().any(|(k, holder)| *k == key && *holder != row.id) {
                case.held_elsewhere.push(name);
            }
        }
        Ok((case, around))
    }

    /// The parties of a stored case.
    pub(super) async fn parties_of(&self, tx: &mut Tx, row: &CaseRow) -> Result<Parties> {
        self.parties(tx, &plain_case_ref(row)?).await
    }

    /// The parties' records as JSON for conditions and views, with their names (one
    /// round trip).
    pub(super) async fn parties(&self, tx: &mut Tx, case: &CaseRef) -> Result<Parties> {
        let rows = tx
            .case_parties(
                &case.student_id,
                case.employer_id.as_deref(),
                Some(case.school_id.as_str()),
            )
            .await?;
        Ok(parties_from(case, rows))
    }
}

/// The parties of `case` as [`Tx::around`] read them with it (no second query).
pub(super) fn parties_around(case: &CaseRef, around: &Around) -> Parties {
    parties_from(case, around.parties.clone())
}

/// The parties of `case` among `rows` (read by [`Tx::case_parties`]): each record's data
/// with its id and name, `null` for one not on file.
fn parties_from(case: &CaseRef, rows: Vec<PartyRow>) -> Parties {
    let record = |kind: PartyKind, id: Option<&str>| {
        rows.iter()
            .find(|p| p.kind == kind.as_str() && Some(p.id.as_str()) == id)
            .map(|p| {
                let mut data = p.data_json();
                if let Some(map) = data.as_object_mut() {
                    map.insert("id".into(), json!(p.id));
                    map.insert("name".into(), json!(p.name));
                }
                data
            })
            .unwrap_or(Value::Null)
    };
    Parties {
        student: record(PartyKind::Student, Some(&case.student_id)),
        employer: record(PartyKind::Employer, case.employer_id.as_deref()),
        school: record(PartyKind::School, Some(&case.school_id)),
    }
}

/// When apalis should run a job due after `delay`, in Unix seconds on the wall clock.
fn run_at_seconds(delay: chrono::Duration) -> u64 {
    let delay = delay.max(chrono::Duration::zero());
    // apalis keeps whole seconds. A job for now may run at once: this second, rounded
    // down (rounded up, it waited for the next second and the next poll after it). A
    // later one is rounded up: a job must not run before its moment.
    let at_ms = (Utc::now() + delay).timestamp_millis().max(0) as u64;
    if delay.is_zero() {
        at_ms / 1000
    } else {
        at_ms.div_ceil(1000)
    }
}

/// How a timer action is stored: the transition it fires, or the mail it sends.
fn timer_spec(action: &TimerAction) -> (String, Option<String>) {
    match action {
        TimerAction::Fire(t) => (t.clone(), None),
        TimerAction::Mail(mail) => (
            String::new(),
            Some(serde_json::to_string(mail).expect("a mail spec serialises")),
        ),
    }
}

/// The case as `actor` sees it, from what was read (or written) under its lock.
fn view_of(
    def: &Definition,
    row: &CaseRow,
    case: &CaseRef,
    parties: &Parties,
    around: &Around,
    actor: &Actor,
) -> CaseView {
    let actions = actions(def, case, actor, parties);
    let history = around
        .history
        .iter()
        .map(|h| HistoryView {
            seq: h.seq,
            transition: h.transition.clone(),
            from: h.from_state.clone(),
            to: h.to_state.clone(),
            by: super::shown_in(
                def,
                &h.transition,
                &h.actor,
                h.actor_sub.as_deref(),
                h.actor_name.as_deref(),
            ),
            person: h.actor_sub.clone().map(|sub| super::Person {
                sub,
                name: h.actor_name.clone(),
            }),
            actor: h.actor.clone(),
            input: serde_json::from_str(&h.input).unwrap_or(Value::Null),
            changes: h
                .changes
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
            at: from_millis(h.at).to_rfc3339(),
        })
        .collect();
    let events = around
        .escalations
        .iter()
        .map(|e| EventView {
            event: format!("escalate:{}", e.level),
            state: e.state.clone(),
            to: e.to_role.split(',').map(str::to_string).collect(),
            actor: "system".into(),
            at: from_millis(e.escalated_at).to_rfc3339(),
            resolved_at: e.resolved_at.map(|t| from_millis(t).to_rfc3339()),
        })
        .collect();
    let timers = around
        .timers
        .iter()
        .filter(|t| t.status == "pending")
        .map(|t| TimerView {
            fire: t.fire.clone(),
            due_at: from_millis(t.due_at).to_rfc3339(),
            status: t.status.clone(),
        })
        .collect();
    let state = def.state(&row.state);
    let name = |v: &Value| v.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    CaseView {
        id: row.id.clone(),
        workflow: def.name.clone(),
        workflow_title: def.title.clone(),
        workflow_version: row.workflow_hash.clone(),
        state: row.state.clone(),
        state_title: state.map(|s| s.title.clone()).unwrap_or_default(),
        terminal: state.is_some_and(|s| s.terminal),
        version: row.version,
        data: case.data.clone(),
        parties: PartiesView {
            student: PartyRef {
                id: case.student_id.clone(),
                name: name(&parties.student),
            },
            employer: case.employer_id.clone().map(|id| PartyRef {
                id,
                name: name(&parties.employer),
            }),
            school: PartyRef {
                id: case.school_id.clone(),
                name: name(&parties.school),
            },
        },
        history,
        events,
        timers,
        actions,
        created_at: from_millis(row.created_at).to_rfc3339(),
        updated_at: from_millis(row.updated_at).to_rfc3339(),
    }
}

impl CaseRef {
    /// The case after a transition wrote `row`: its new state and data, with the
    /// documents and the claims held elsewhere as read under its lock (a transition
    /// adds no document, and a claim it took was not held elsewhere, or it failed).
    pub(super) fn after(&self, row: &CaseRow) -> Result<CaseRef> {
        Ok(CaseRef {
            state: row.state.clone(),
            data: row.data_json()?,
            ..self.clone()
        })
    }
}

/// The employer party of a new case. A workflow whose start is fired `by` employers
/// has one — its conditions and mail speak of the employer — so it must be named: by
/// the token of an employer starting it, or in the request of anyone else allowed to
/// (a platform admin). A workflow without one takes none.
fn case_employer(def: &Definition, actor: &Actor, named: Option<String>) -> Result<Option<String>> {
    let invalid = |code: &'static str, zh: &str, en: &str| -> EngineError {
        Refusal::Invalid(vec![
            crate::domain::FieldError::new(code, zh, en).with_field("employer"),
        ])
        .into()
    };
    if def.roles_of(&def.start.by, Role::Employer).next().is_none() {
        return match named {
            Some(_) => Err(invalid(
                "unknown_field",
                "此流程的案件没有用人单位一方",
                "cases of this workflow have no employer party",
            )),
            None => Ok(None),
        };
    }
    match (actor.role, named) {
        (Role::Employer, Some(named)) if actor.party.as_deref() != Some(named.as_str()) => Err(invalid(
            "mismatch",
            "用人单位只能以自己的名义发起",
            "an employer starts cases as itself",
        )),
        (Role::Employer, _) => Ok(actor.party.clone()),
        (_, Some(named)) => Ok(Some(named)),
        (_, None) => Err(invalid(
            "required",
            "此流程须指定用人单位（employer）",
            "this workflow needs an employer: name one in `employer`",
        )),
    }
}

fn not_found(what: &'static str, id: &str) -> EngineError {
    EngineError::NotFound {
        what,
        id: id.to_string(),
    }
}

/// The facts of a stored case without its document counts (for new cases).
fn plain_case_ref(row: &CaseRow) -> Result<CaseRef> {
    Ok(CaseRef {
        id: row.id.clone(),
        state: row.state.clone(),
        data: row.data_json()?,
        student_id: row.student_id.clone(),
        employer_id: row.employer_id.clone(),
        school_id: row.school_id.clone(),
        college: None,
        documents: json!({}),
        held_elsewhere: Vec::new(),
    })
}

/// The college (院系) of a student's record.
fn student_college(record: &Value) -> Option<String> {
    record
        .get("college")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// What mail caused by a transition may add to its context: the transition's title and
/// what it changed, old beside new.
fn mail_cause(def: &Definition, outcome: &Outcome) -> serde_json::Map<String, Value> {
    let title = def
        .transition(&outcome.transition)
        .map(|t| t.title.clone())
        .unwrap_or_default();
    let (zh, en) = title.split_once(" / ").unwrap_or((title.as_str(), title.as_str()));
    // Templates print the changes as they are: text, with an empty value as a dash.
    let shown = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Null | Value::String(_) => "—".to_string(),
        other => other.to_string(),
    };
    let changes: Vec<Value> = outcome
        .changes
        .iter()
        .map(|c| {
            let (label_zh, label_en) = c.label.split_once(" / ").unwrap_or((c.label.as_str(), c.label.as_str()));
            json!({ "field": c.field, "label_zh": label_zh, "label_en": label_en, "old": shown(&c.old), "new": shown(&c.new) })
        })
        .collect();
    let mut cause = serde_json::Map::new();
    cause.insert("transition_title".into(), json!(zh));
    cause.insert("transition_title_en".into(), json!(en));
    cause.insert("changes".into(), Value::Array(changes));
    cause
}
