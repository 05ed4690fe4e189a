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
        CaseFilter, CaseRow, Db, GraduateFilter, GraduateRow, HistoryRow, PartyKind, PartyRow, StoreError, TimerRow,
        Tx, from_millis, millis,
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
        let answer = self.start_counted(actor, start, idem).await;
        // The start is named after the workflow's start, not a transition of it.
        self.count_transition(&workflow, "start", &answer, started);
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
        let student = tx
            .party(PartyKind::Student, &student_id)
            .await?
            .ok_or_else(|| EngineError::UnknownParty {
                kind: "student",
                id: student_id.clone(),
                field: "student".into(),
            })?;
        let employer_id = case_employer(&def, actor, start.employer)?;
        if let Some(id) = &employer_id
            && tx.party(PartyKind::Employer, id).await?.is_none()
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
        let parties = self.parties(&mut tx, &case).await?;
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
        let row = self
            .apply(&mut tx, &def, None, &case, &outcome, actor, idem.as_ref(), now)
            .await?;
        self.finish(tx, &def, row, actor, idem.as_ref(), 201).await
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
        let answer = self
            .fire_counted(actor, case_id, transition, input, if_match, idem, &mut workflow)
            .await;
        self.count_transition(&workflow, transition, &answer, started);
        answer
    }

    /// Counts and times a transition asked for, by its outcome.
    fn count_transition(&self, workflow: &str, transition: &str, answer: &Result<Answer>, started: std::time::Instant) {
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
        let case = self.case_ref(&mut tx, &row).await?;
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
        let parties = self.parties(&mut tx, &case).await?;
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
            .apply(&mut tx, &def, Some(&row), &case, &outcome, actor, idem.as_ref(), now)
            .await?;
        self.finish(tx, &def, row, actor, idem.as_ref(), 200).await
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

    /// Builds the answer, remembers it under the idempotency key, and commits.
    pub(super) async fn finish(
        &self,
        mut tx: Tx,
        def: &Definition,
        row: CaseRow,
        actor: &Actor,
        idem: Option<&Idempotency>,
        status: u16,
    ) -> Result<Answer> {
        let view = self.view_in(&mut tx, def, &row, actor).await?;
        let body = serde_json::to_value(&view).expect("a view always serialises");
        if let Some(idem) = idem {
            tx.complete_key(&actor.who(), &idem.key, status, &body.to_string())
                .await?;
        }
        tx.commit().await?;
        Ok(Answer {
            status,
            body,
            replayed: false,
        })
    }

    /// Writes an outcome. On a claim conflict nothing is written (the caller's
    /// transaction is dropped, which rolls it back).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply(
        &self,
        tx: &mut Tx,
        def: &Definition,
        before: Option<&CaseRow>,
        case: &CaseRef,
        outcome: &Outcome,
        actor: &Actor,
        idem: Option<&Idempotency>,
        now: DateTime<Utc>,
    ) -> Result<CaseRow> {
        let now_ms = millis(now);
        let mut data = outcome.data.clone();
        if outcome.effects.contains(&Effect::AssignAgreementNumber) {
            self.assign_agreement_number(tx, case, &mut data, now).await?;
        }
        let row = CaseRow {
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
        match before {
            Some(b) => tx.update_case(&row, b.version).await?,
            None => tx.insert_case(&row).await?,
        }
        if outcome.migration {
            tx.pin_case(&row.id, &row.workflow_hash).await?;
        }
        tx.insert_history(&HistoryRow {
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
            data: Some(row.data.clone()),
            hash: None,
        })
        .await?;
        for key in &outcome.release {
            tx.release_claim(key, &row.id).await?;
        }
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
        if outcome.enters {
            if before.is_some() {
                tx.cancel_timers(&row.id, now_ms).await?;
            }
            tx.resolve_escalations(&row.id, now_ms).await?;
            for timer in &outcome.timers {
                self.set_timer(tx, &row, &timer.action, timer.due, now_ms).await?;
            }
        }
        let cause = mail_cause(def, outcome);
        for mail in &outcome.mails {
            self.queue_mail(tx, def, &row, &data, mail, &format!("h{}", row.version), &cause)
                .await?;
        }
        for effect in &outcome.effects {
            self.effect(tx, def, &row, &outcome.data, effect, &outcome.transition, now_ms)
                .await?;
        }
        tracing::info!(case = %row.id, workflow = %def.name, transition = %outcome.transition, actor = %actor.who(),
            from = outcome.from.as_deref().unwrap_or("-"), to = %outcome.to, "transition fired");
        Ok(row)
    }

    /// A timer row; the workers' timer loops fire it when it is due.
    async fn set_timer(
        &self,
        tx: &mut Tx,
        row: &CaseRow,
        action: &TimerAction,
        due: DateTime<Utc>,
        now_ms: i64,
    ) -> Result<()> {
        let (fire, spec) = match action {
            TimerAction::Fire(t) => (t.clone(), None),
            TimerAction::Mail(mail) => (
                String::new(),
                Some(serde_json::to_string(mail).expect("a mail spec serialises")),
            ),
        };
        let timer = TimerRow {
            id: Uuid::now_v7().to_string(),
            case_id: row.id.clone(),
            state: row.state.clone(),
            fire,
            due_at: millis(due),
            status: "pending".into(),
            spec,
        };
        tx.insert_timer(&timer, now_ms).await?;
        // The timer loop of every worker fires it on time (`jobs::runner`); the notice
        // wakes the loops of other processes, so the new timer is on their schedule.
        Ok(tx.notify_timer_set().await?)
    }

    /// Pushes a job onto the queue configured for its kind, in the caller's transaction.
    ///
    /// `at` is a moment on the engine's clock; apalis schedules by the wall clock, so
    /// the job is due after the same delay from now on the wall clock (the two differ
    /// only when tests move the engine's clock).
    pub async fn push(&self, tx: &mut Tx, job: &Job, at: DateTime<Utc>) -> Result<()> {
        let queue = self
            .workers
            .queue_of(job.kind())
            .ok_or_else(|| StoreError::Queue(format!("no queue runs {}", job.kind())))?;
        let delay = (at - self.now()).max(chrono::Duration::zero());
        // apalis keeps whole seconds. A job for now may run at once: this second, rounded
        // down (rounded up, it waited for the next second and the next poll after it). A
        // later one is rounded up: a job must not run before its moment.
        let at_ms = (Utc::now() + delay).timestamp_millis().max(0) as u64;
        let run_at = if delay.is_zero() {
            at_ms / 1000
        } else {
            at_ms.div_ceil(1000)
        };
        tx.push_job(&queue.queue, job.encode(), run_at, queue.max_attempts)
            .await?;
        Ok(())
    }

    /// Fires one timer if it is still due on a case still in its state.
    ///
    /// Locks the case before anything of its timers, as a transition does (which
    /// cancels them under the case lock): one lock order, so the two cannot deadlock.
    /// Every write to a timer row holds its case's lock, so the timer read again under
    /// that lock is its latest word.
    pub async fn fire_timer(&self, timer_id: &str) -> Result<TimerFired> {
        let started = std::time::Instant::now();
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
        let case = self.case_ref(&mut tx, &row).await?;
        let parties = self.parties(&mut tx, &case).await?;
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
        self.apply(&mut tx, &def, Some(&row), &case, &outcome, &actor, None, now)
            .await?;
        tx.finish_timer(&timer.id, "fired", millis(now)).await?;
        tx.commit().await?;
        // A transition the system fired counts with the parties' ones.
        self.metrics.transition(&def.name, &timer.fire, "ok", started.elapsed());
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
        if !is_party(&self.case_ref(&mut tx, &row).await?, actor) {
            return Err(Refusal::NotYourCase.into());
        }
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let view = self.view_in(&mut tx, &def, &row, actor).await;
        tx.rollback().await?;
        view
    }

    async fn view_in(&self, tx: &mut Tx, def: &Definition, row: &CaseRow, actor: &Actor) -> Result<CaseView> {
        let case = self.case_ref(tx, row).await?;
        let parties = self.parties(tx, &case).await?;
        let actions = actions(def, &case, actor, &parties);
        let history = tx
            .history(&row.id)
            .await?
            .into_iter()
            .map(|h| HistoryView {
                seq: h.seq,
                transition: h.transition,
                from: h.from_state,
                to: h.to_state,
                by: super::shown_as(&h.actor, h.actor_sub.as_deref(), h.actor_name.as_deref()),
                person: h.actor_sub.map(|sub| super::Person {
                    sub,
                    name: h.actor_name,
                }),
                actor: h.actor,
                input: serde_json::from_str(&h.input).unwrap_or(Value::Null),
                changes: h
                    .changes
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default(),
                at: from_millis(h.at).to_rfc3339(),
            })
            .collect();
        let events = tx
            .escalations_of(&row.id)
            .await?
            .into_iter()
            .map(|e| EventView {
                event: format!("escalate:{}", e.level),
                state: e.state,
                to: e.to_role.split(',').map(str::to_string).collect(),
                actor: "system".into(),
                at: from_millis(e.escalated_at).to_rfc3339(),
                resolved_at: e.resolved_at.map(|t| from_millis(t).to_rfc3339()),
            })
            .collect();
        let timers = tx
            .timers_of(&row.id)
            .await?
            .into_iter()
            .filter(|t| t.status == "pending")
            .map(|t| TimerView {
                fire: t.fire,
                due_at: from_millis(t.due_at).to_rfc3339(),
                status: t.status,
            })
            .collect();
        let state = def.state(&row.state);
        let name = |v: &Value| v.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(CaseView {
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
        })
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
        let mut case = plain_case_ref(row)?;
        let mut counts = serde_json::Map::new();
        for d in tx
            .documents(&row.id)
            .await?
            .into_iter()
            .filter(|d| d.page == 0 && d.replaced_at.is_none())
        {
            let n = counts.get(&d.slot).and_then(Value::as_i64).unwrap_or(0);
            counts.insert(d.slot, json!(n + 1));
        }
        case.documents = Value::Object(counts);
        // Staff of one college reach only its students' cases (see `is_party`).
        case.college = tx
            .party(PartyKind::Student, &row.student_id)
            .await?
            .and_then(|p| student_college(&p.data_json()));
        // Which of the definition's claim keys for this case another case holds.
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        for claim in def.claims.values() {
            let key = super::claim_key(&claim.key, &case);
            if tx.claim_holder(&key).await?.is_some_and(|holder| holder != row.id) {
                case.held_elsewhere.push(claim.name.clone());
            }
        }
        Ok(case)
    }

    /// The parties of a stored case.
    pub(super) async fn parties_of(&self, tx: &mut Tx, row: &CaseRow) -> Result<Parties> {
        self.parties(tx, &plain_case_ref(row)?).await
    }

    /// The parties' records as JSON for conditions and views, with their names.
    pub(super) async fn parties(&self, tx: &mut Tx, case: &CaseRef) -> Result<Parties> {
        let record = |row: Option<PartyRow>| {
            row.map(|p: PartyRow| {
                let mut data = p.data_json();
                if let Some(map) = data.as_object_mut() {
                    map.insert("id".into(), json!(p.id));
                    map.insert("name".into(), json!(p.name));
                }
                data
            })
            .unwrap_or(Value::Null)
        };
        let student = record(tx.party(PartyKind::Student, &case.student_id).await?);
        let employer = match &case.employer_id {
            Some(id) => record(tx.party(PartyKind::Employer, id).await?),
            None => Value::Null,
        };
        let school = record(tx.party(PartyKind::School, &case.school_id).await?);
        Ok(Parties {
            student,
            employer,
            school,
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
