//! Mail the engine sends: queued in the transaction that causes it (one `emails` row per
//! logical send, keyed by case, cause, template and recipient), sent by a job that claims
//! the row first, so a duplicated or retried job never sends twice. Also reminders and
//! escalations (mail timers), the daily digest, and the overdue-review list.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Parties,
    service::{Engine, Result},
};
use crate::{
    definition::{Definition, Mail, Role, RoleScope},
    jobs::Job,
    mail::{Mailer, Templates},
    store::{CaseRow, EmailRow, PartyKind, StoreError, Tx, from_millis, millis},
};

/// Templates and transport, loaded once.
pub struct MailService {
    pub templates: Templates,
    pub mailer: Mailer,
    /// Where platform-admin mail goes (escalations beyond the school).
    pub platform_admin: Option<String>,
}

/// How long a sender may hold a mail before another may try it: a little longer than
/// the SMTP exchange may take, so a sender killed mid-exchange delays its mail by
/// seconds, not minutes.
const LEASE_MS: i64 = 15_000;
/// The longest one SMTP exchange may take; a slower one counts as a transient failure.
const SEND_LIMIT: std::time::Duration = std::time::Duration::from_secs(12);

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A span in hours with its minutes as a fraction (never negative): the templates round it
/// the way a person says it, so 23 h 59 min reads "1 天", not "23 小时".
fn hours(span: chrono::TimeDelta) -> f64 {
    (span.num_minutes().max(0) as f64 / 60.0 * 100.0).round() / 100.0
}

/// Someone a mail goes to.
struct Recipient {
    id: String,
    name: String,
    address: Option<String>,
}

impl Engine {
    /// The people holding `role` on a case, with their addresses (if on file), from the
    /// parties' records the caller read.
    fn recipients(
        &self,
        def: &Definition,
        row: &CaseRow,
        data: &Value,
        parties: &Parties,
        role: Role,
    ) -> Vec<Recipient> {
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match role {
            Role::Student => {
                let d = &parties.student;
                vec![Recipient {
                    id: row.student_id.clone(),
                    name: text(d, "name").unwrap_or_default(),
                    address: text(d, "email"),
                }]
            }
            Role::Employer => match &row.employer_id {
                Some(id) => {
                    let d = &parties.employer;
                    let name = text(d, "contact").or(text(d, "name")).unwrap_or_default();
                    vec![Recipient {
                        id: id.clone(),
                        name,
                        address: text(d, "email"),
                    }]
                }
                None => {
                    // Not on the platform: the employer as the case keeps it typed in.
                    let e = def.party_as_typed("employer", &Value::Null, data);
                    let name = text(&e, "contact").or(text(&e, "name")).unwrap_or_default();
                    vec![Recipient {
                        id: "typed-employer".into(),
                        name,
                        address: text(&e, "email"),
                    }]
                }
            },
            Role::SchoolReviewer | Role::SchoolAdmin => {
                let d = &parties.school;
                let key = if role == Role::SchoolReviewer {
                    "reviewer_email"
                } else {
                    "admin_email"
                };
                let name = text(d, "contact")
                    .or(text(d, "office"))
                    .unwrap_or_else(|| "就业指导中心".into());
                vec![Recipient {
                    id: format!("{}:{}", row.school_id, role),
                    name,
                    address: text(d, key),
                }]
            }
            Role::PlatformAdmin => {
                let address = self.mail.as_ref().and_then(|m| m.platform_admin.clone());
                vec![Recipient {
                    id: "platform".into(),
                    name: "平台管理员".into(),
                    address,
                }]
            }
            Role::System => Vec::new(),
        }
    }

    /// Where a mail's reader opens the case: its page in the console, which signs the
    /// reader in first. Mail links nowhere else (the API answers only to tokens).
    fn console_case_url(&self, case_id: &str) -> String {
        format!("{}/console/cases/{case_id}", self.settings.base_url)
    }

    /// The facts every template may use, from the case as it is now.
    fn mail_context(&self, def: &Definition, row: &CaseRow, data: &Value, parties: &Parties) -> Map<String, Value> {
        let name = super::party_name;
        let employer_name = parties.employer_name(&def.destination_record.unit, data);
        let mut ctx = Map::new();
        ctx.insert("case_id".into(), json!(row.id));
        ctx.insert("case_url".into(), json!(self.console_case_url(&row.id)));
        ctx.insert("workflow_title".into(), json!(def.title));
        ctx.insert("student_name".into(), json!(name(&parties.student)));
        if !employer_name.is_empty() {
            ctx.insert("employer_name".into(), json!(employer_name));
        }
        ctx.insert("school_name".into(), json!(name(&parties.school)));
        // The case's deadline: its field of kind `deadline`, wherever the definition keeps it.
        if let Some(deadline) = def
            .deadline_field
            .as_deref()
            .and_then(|path| crate::definition::data_at(path, data))
            .and_then(Value::as_str)
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        {
            let deadline = deadline.with_timezone(&Utc);
            ctx.insert("deadline".into(), json!(local(deadline)));
            ctx.insert("hours_left".into(), json!(hours(deadline - self.now())));
        }
        // What the definition maps for its templates (`[mail_context]`: the position, the
        // reason given), read from the paths it names.
        for entry in &def.mail_context {
            ctx.insert(entry.name.clone(), entry.value(data));
        }
        if let Some(number) = data.pointer("/agreement/number") {
            ctx.insert("agreement_number".into(), number.clone());
        }
        // The whole case data, for templates that print what only their definition has
        // (a termination's reason and who asked for it).
        ctx.insert("data".into(), data.clone());
        let entered = from_millis(row.state_entered_at);
        ctx.insert("submitted_at".into(), json!(local(entered)));
        ctx.insert("waited_hours".into(), json!(hours(self.now() - entered)));
        ctx
    }

    /// Queues `mail` for every holder of its roles, once per `cause`. `extra` adds to the
    /// context (the transition that caused it, what it changed).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn queue_mail(
        &self,
        tx: &mut Tx,
        def: &Definition,
        row: &CaseRow,
        data: &Value,
        parties: &Parties,
        mail: &Mail,
        cause: &str,
        extra: &Map<String, Value>,
    ) -> Result<()> {
        let mut base = self.mail_context(def, row, data, parties);
        base.extend(extra.clone());
        // A declared role's mail goes to the holders of its identity on the case; the
        // templates word it for that identity (`recipient_role`). The parties' records
        // hold no address for one college's staff (二级学院): such mail is recorded, not
        // sent, rather than sent to the whole school's reviewers.
        let mut emails = Vec::new();
        for declared in mail.to.iter().filter_map(|name| def.role(name)) {
            let role = declared.identity;
            let recipients = if declared.scope == RoleScope::College {
                vec![Recipient {
                    id: format!("{}:{}", row.school_id, declared.name),
                    name: declared.title.zh.clone(),
                    address: None,
                }]
            } else {
                self.recipients(def, row, data, parties, role)
            };
            for r in recipients {
                let mut ctx = base.clone();
                ctx.insert("recipient_name".into(), json!(r.name));
                ctx.insert("recipient_role".into(), json!(role.as_str()));
                if let Some(level) = mail.escalate {
                    ctx.insert("level".into(), json!(level));
                }
                let key = format!("{}:{cause}:{}:{}", row.id, mail.template, r.id);
                emails.push(self.email_row(Some(&row.id), &key, &mail.template, role, &r, Value::Object(ctx)));
            }
        }
        self.queue_emails(tx, emails).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn queue_one(
        &self,
        tx: &mut Tx,
        case_id: Option<&str>,
        key: &str,
        template: &str,
        role: Role,
        r: &Recipient,
        ctx: Value,
    ) -> Result<()> {
        let email = self.email_row(case_id, key, template, role, r, ctx);
        self.queue_emails(tx, vec![email]).await
    }

    /// Records the sends and pushes the jobs of the new ones that have an address, in
    /// one write deferred with the transaction's others.
    async fn queue_emails(&self, tx: &mut Tx, emails: Vec<EmailRow>) -> Result<()> {
        if emails.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut jobs = Vec::new();
        for e in emails.iter().filter(|e| e.to_address.is_some()) {
            let mut job = self.new_job(&Job::SendEmail { email_id: e.id.clone() }, now)?;
            job.email = Some(e.id.clone());
            jobs.push(job);
        }
        tx.queue_emails(&emails, jobs).await?;
        Ok(())
    }

    /// A logical send to `r`, worded for its role.
    fn email_row(
        &self,
        case_id: Option<&str>,
        key: &str,
        template: &str,
        role: Role,
        r: &Recipient,
        ctx: Value,
    ) -> EmailRow {
        let now = self.now();
        // Every mail says who sent it and is worded for its reader's role.
        let mut ctx = ctx;
        if let Some(ctx) = ctx.as_object_mut() {
            let platform = self.mail.as_ref().map(|m| m.mailer.sender_name()).unwrap_or_default();
            ctx.insert("platform_name".into(), json!(platform));
            ctx.insert("recipient_role".into(), json!(role.as_str()));
        }
        EmailRow {
            id: Uuid::now_v7().to_string(),
            key: key.to_string(),
            case_id: case_id.map(str::to_string),
            template: template.to_string(),
            to_role: role.to_string(),
            to_name: r.name.clone(),
            to_address: r.address.clone(),
            context: ctx.to_string(),
            // No address on file: recorded, visible, not sent.
            status: if r.address.is_some() { "pending" } else { "skipped" }.into(),
            attempts: 0,
            last_error: r
                .address
                .is_none()
                .then(|| "no e-mail address on file / 未登记邮箱".to_string()),
            lease_until: None,
            created_at: millis(now),
            sent_at: None,
        }
    }

    /// A mail timer came due on a case still in its state (the caller holds the case's
    /// lock): send the reminder and, for an escalation, record it as an event of the
    /// case and in the overdue list. An escalation moves nothing: it changes no case
    /// version (a reviewer's `If-Match` still holds) and writes no history (the
    /// agreement's signing record prints the history).
    pub(super) async fn remind(
        &self,
        tx: &mut Tx,
        row: &CaseRow,
        mail: &Mail,
        timer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        let data = row.data_json()?;
        if let Some(level) = mail.escalate {
            let to = mail
                .to
                .iter()
                .filter_map(|name| def.role(name))
                .map(|r| r.identity.as_str())
                .collect::<Vec<_>>()
                .join(",");
            tx.insert_escalation(&row.id, &row.state, i64::from(level), &to, &row.school_id, millis(now))
                .await?;
            tracing::info!(case = %row.id, level, state = %row.state, "review escalated");
        }
        let parties = self.parties_of(tx, row).await?;
        self.queue_mail(
            tx,
            &def,
            row,
            &data,
            &parties,
            mail,
            &format!("t{timer_id}"),
            &Map::new(),
        )
        .await
    }

    /// The send job. Claims the mail (a lease) before talking to SMTP, so a second
    /// job for it waits; marks it sent after. `Err` asks for a retry with backoff.
    pub async fn send_email(&self, id: &str, max_attempts: usize) -> Result<()> {
        let Some(service) = self.mail.clone() else {
            return Ok(());
        };
        let mut waited = false;
        let (turn, mut tx, email, now) = loop {
            // Requests first, one job at a time (engine::foreground).
            let turn = self.foreground.turn().await;
            let now = millis(self.now());
            let mut tx = self.db.begin().await?;
            let Some(email) = tx.email(id).await? else {
                return Ok(());
            };
            match email.status.as_str() {
                "sent" | "skipped" | "failed" => return Ok(()),
                "sending" if email.lease_until.unwrap_or(0) > now => {
                    // Another sender holds it — or held it and died (its job came back
                    // when its worker was declared dead). Wait out the lease once.
                    let left = email.lease_until.unwrap_or(0) - now;
                    tx.rollback().await?;
                    drop(turn);
                    if waited || left > LEASE_MS {
                        return Err(StoreError::Queue(format!("mail {id} is being sent by another worker")).into());
                    }
                    waited = true;
                    tokio::time::sleep(std::time::Duration::from_millis(left as u64 + 50)).await;
                }
                "sending" => {
                    // The last exchange was cut (its sender died): the receiver may have the
                    // message already; it is sent again with the same Message-ID.
                    tracing::warn!(email = %id, "mail sent again after an interrupted exchange");
                    self.metrics.inc("gradsign_mail_resends_total", &[]);
                    break (turn, tx, email, now);
                }
                _ => break (turn, tx, email, now),
            }
        };
        let attempts = email.attempts + 1;
        tx.set_email_status(
            id,
            "sending",
            attempts,
            email.last_error.as_deref(),
            Some(now + LEASE_MS),
            None,
        )
        .await?;
        tx.commit().await?;
        drop(turn);
        let outcome = match tokio::time::timeout(SEND_LIMIT, self.deliver(&service, &email)).await {
            Ok(outcome) => outcome,
            Err(_) => Err((
                format!("the SMTP exchange took longer than {} s", SEND_LIMIT.as_secs()),
                true,
            )),
        };
        let _turn = self.foreground.turn().await;
        let mut tx = self.db.begin().await?;
        let result = match outcome {
            Ok(()) => {
                self.metrics.inc("gradsign_mails_total", &[("result", "sent")]);
                tx.set_email_status(id, "sent", attempts, None, None, Some(millis(self.now())))
                    .await?;
                Ok(())
            }
            Err((message, transient)) if transient && (attempts as usize) < max_attempts => {
                self.metrics.inc("gradsign_mails_total", &[("result", "retry")]);
                tx.set_email_status(id, "pending", attempts, Some(&message), None, None)
                    .await?;
                Err(StoreError::Queue(message).into())
            }
            Err((message, _)) => {
                self.metrics.inc("gradsign_mails_total", &[("result", "failed")]);
                tracing::warn!(email = %id, template = %email.template, error = %message, "mail failed for good");
                tx.set_email_status(id, "failed", attempts, Some(&message), None, None)
                    .await?;
                Ok(())
            }
        };
        tx.commit().await?;
        result
    }

    async fn deliver(&self, service: &MailService, email: &EmailRow) -> std::result::Result<(), (String, bool)> {
        let ctx: Value = serde_json::from_str(&email.context).map_err(|e| (format!("stored context: {e}"), false))?;
        let rendered = service
            .templates
            .render(&email.template, &ctx)
            .map_err(|e| (e.to_string(), false))?;
        let address = email.to_address.clone().unwrap_or_default();
        service
            .mailer
            .send(&[(email.to_name.clone(), address)], &rendered, &email.key)
            .await
            .map_err(|e| (e.to_string(), e.is_transient()))
    }

    /// Puts a failed mail back in the queue (admins, `POST /emails/{id}/resend`).
    pub async fn resend_email(&self, id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let Some(email) = tx.email(id).await? else {
            return Err(super::service::EngineError::NotFound {
                what: "email",
                id: id.to_string(),
            });
        };
        if email.status != "failed" {
            return Ok(false);
        }
        tx.set_email_status(id, "pending", 0, email.last_error.as_deref(), None, None)
            .await?;
        self.push(
            &mut tx,
            &Job::SendEmail {
                email_id: id.to_string(),
            },
            self.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_emails(&self, status: Option<&str>, case_id: Option<&str>) -> Result<Vec<EmailView>> {
        let mut tx = self.db.read().await?;
        let rows = tx.emails(status, case_id, 500).await?;
        tx.rollback().await?;
        Ok(rows.into_iter().map(EmailView::from).collect())
    }

    /// The daily digest: one mail per school to its reviewers, listing the cases in
    /// review states oldest first. Keyed by school and day, so every process may run it.
    pub async fn daily_digest(&self) -> Result<usize> {
        let today = self
            .now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%d")
            .to_string();
        let mut by_school: std::collections::BTreeMap<String, Vec<(CaseRow, Arc<Definition>)>> = Default::default();
        let mut tx = self.db.begin().await?;
        // The review states of each workflow's active version (what the database says
        // runs, not the files this process loaded).
        let mut defs = Vec::new();
        for active in tx.active_versions().await? {
            defs.push(self.definition_of(&mut tx, &active.hash).await?);
        }
        for def in &defs {
            for state in def.states.values().filter(|s| s.review) {
                for row in tx.cases_in_state(&def.name, &state.name).await? {
                    by_school
                        .entry(row.school_id.clone())
                        .or_default()
                        .push((row, def.clone()));
                }
            }
        }
        let mut sent = 0;
        for (school, mut cases) in by_school {
            cases.sort_by_key(|(r, _)| r.state_entered_at);
            let mut list = Vec::new();
            for (row, def) in cases.iter().take(20) {
                let student = tx
                    .party(PartyKind::Student, &row.student_id)
                    .await?
                    .map(|p| p.name)
                    .unwrap_or_default();
                list.push(json!({ "student_name": student, "workflow_title": def.title, "waiting_since": local(from_millis(row.state_entered_at)),
                    "case_url": self.console_case_url(&row.id) }));
            }
            let (first, def) = &cases[0];
            let data = first.data_json()?;
            let parties = self.parties_of(&mut tx, first).await?;
            for r in self.recipients(def, first, &data, &parties, Role::SchoolReviewer) {
                let school_name = tx
                    .party(PartyKind::School, &school)
                    .await?
                    .map(|p| p.name)
                    .unwrap_or_default();
                let ctx = json!({ "recipient_name": r.name, "school_name": school_name, "count": cases.len(), "cases": list, "date": today,
                    "queue_url": format!("{}/console/inbox", self.settings.base_url), "workflow_title": def.title });
                self.queue_one(
                    &mut tx,
                    None,
                    &format!("digest:{school}:{today}"),
                    "daily_digest",
                    Role::SchoolReviewer,
                    &r,
                    ctx,
                )
                .await?;
                sent += 1;
            }
        }
        tx.commit().await?;
        Ok(sent)
    }

    /// Reviews escalated and still waiting: a school admin sees their school's.
    pub async fn overdue(&self, school: Option<&str>) -> Result<Vec<OverdueView>> {
        let mut tx = self.db.read().await?;
        let rows = tx.overdue(school).await?;
        tx.rollback().await?;
        let now = self.now();
        Ok(rows
            .into_iter()
            .map(|r| OverdueView {
                waited_hours: (now - from_millis(r.state_entered_at)).num_hours(),
                waiting_since: from_millis(r.state_entered_at).to_rfc3339(),
                escalated_at: from_millis(r.escalated_at).to_rfc3339(),
                case_id: r.case_id,
                workflow: r.workflow,
                state: r.state,
                student_id: r.student_id,
                school_id: r.school_id,
                level: r.level,
                escalated_to: r.to_role,
            })
            .collect())
    }
}

/// One overdue review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverdueView {
    pub case_id: String,
    pub workflow: String,
    pub state: String,
    pub student_id: String,
    pub school_id: String,
    /// The highest escalation level reached.
    pub level: i64,
    pub escalated_to: String,
    pub escalated_at: String,
    pub waiting_since: String,
    pub waited_hours: i64,
}

/// A logical send, as admins see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmailView {
    pub id: String,
    pub case_id: Option<String>,
    pub template: String,
    pub to_role: String,
    pub to_name: String,
    pub to_address: Option<String>,
    /// pending, sending, sent, failed or skipped
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

impl From<EmailRow> for EmailView {
    fn from(e: EmailRow) -> EmailView {
        EmailView {
            id: e.id,
            case_id: e.case_id,
            template: e.template,
            to_role: e.to_role,
            to_name: e.to_name,
            to_address: e.to_address,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            created_at: from_millis(e.created_at).to_rfc3339(),
            sent_at: e.sent_at.map(|t| from_millis(t).to_rfc3339()),
        }
    }
}
