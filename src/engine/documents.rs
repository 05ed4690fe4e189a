//! Documents of a case as the engine handles them: rendering a slot from its template
//! (a job: the agreement, its preview, a termination certificate), listing and reading
//! documents (firing a declared download transition), uploading files (firing a declared
//! upload transition) and verifying an agreement number.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Actor, Refusal, decide,
    service::{Engine, EngineError, Result},
};
use crate::{
    definition::{AgreementStatus, Role},
    render::{AgreementDoc, RenderError, Renderer},
    store::{DocumentRow, RenderRow, StoreError, blobs::Blobs, from_millis, millis},
};

/// The renderer, loaded on first use (fonts are 15 MB) and then shared.
#[derive(Debug)]
pub struct LazyRenderer {
    dir: std::path::PathBuf,
    cell: OnceLock<std::result::Result<Arc<Renderer>, String>>,
    /// The render threads' queue (see [`RenderThreads`]).
    threads: RenderThreads,
}

impl LazyRenderer {
    pub fn new(template_dir: impl Into<std::path::PathBuf>) -> LazyRenderer {
        LazyRenderer {
            dir: template_dir.into(),
            cell: OnceLock::new(),
            threads: RenderThreads::start(),
        }
    }

    /// Runs `render` on a render thread, after the renders queued before it.
    pub async fn run<T: Send + 'static>(
        &self,
        render: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, String> {
        let (done, result) = tokio::sync::oneshot::channel();
        let work: RenderWork = Box::new(move || {
            let _ = done.send(render());
        });
        self.threads
            .queue
            .send(work)
            .map_err(|_| "the render threads stopped".to_string())?;
        result
            .await
            .map_err(|_| "the render thread stopped mid-render".to_string())
    }

    pub fn get(&self) -> std::result::Result<Arc<Renderer>, String> {
        self.cell
            .get_or_init(|| Renderer::load(&self.dir).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }
}

type RenderWork = Box<dyn FnOnce() + Send>;

/// The threads renders run on, below the request path (issue 17): one per core but one
/// (at least one), each at the lowest CPU priority (`SCHED_IDLE`), so that with every render
/// thread busy, requests and the database still get the cores when they need them — a
/// render is slower under load, a transition is not. Renders wait in one queue.
///
/// A render's parallel parts (typst's layout, the PDF beside the page images) run on a
/// rayon pool of the same priority. Left to rayon's global pool, they ran at normal priority
/// whatever the render thread's: `rayon::join` outside a pool hands the work to the global
/// pool's threads and waits.
#[derive(Debug)]
struct RenderThreads {
    queue: std::sync::mpsc::Sender<RenderWork>,
}

impl RenderThreads {
    fn start() -> RenderThreads {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let (queue, jobs) = std::sync::mpsc::channel::<RenderWork>();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|n| format!("render-par-{n}"))
            .start_handler(|_| lowest_priority())
            .build()
            .map(Arc::new)
            .map_err(|e| tracing::error!(error = %e, "cannot start the render pool; renders use rayon's own"))
            .ok();
        for n in 0..cores.saturating_sub(1).max(1) {
            let jobs = jobs.clone();
            let pool = pool.clone();
            let spawned = std::thread::Builder::new().name(format!("render-{n}")).spawn(move || {
                lowest_priority();
                loop {
                    // The lock is held only while taking the next render, not while rendering.
                    let next = jobs.lock().map_err(|_| ()).and_then(|j| j.recv().map_err(|_| ()));
                    match (next, &pool) {
                        (Ok(work), Some(pool)) => pool.install(work),
                        (Ok(work), None) => work(),
                        (Err(()), _) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a render thread");
            }
        }
        RenderThreads { queue }
    }
}

/// Gives the calling thread the lowest CPU priority: Linux's `SCHED_IDLE` policy (a thread
/// that runs only when nothing else wants the core, and is preempted at once when something
/// does), else nice 19 (on Linux both are per thread). Where the system refuses both, the
/// render runs at normal priority and says so once.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: both calls read only their arguments; `0` is the calling thread.
        let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
        let nice = idle || unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } == 0;
        if !nice {
            tracing::warn!(error = %std::io::Error::last_os_error(), "render thread keeps normal priority");
        }
    }
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

/// A document as listed on a case.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub slot: String,
    /// 0 for the document itself, n for its n-th page image.
    pub page: i64,
    pub content_type: String,
    pub file_name: String,
    pub size: i64,
    pub sha256: String,
    pub case_version: i64,
    pub added_by: String,
    pub created_at: String,
    /// Set when a newer render replaced it; kept as history.
    pub replaced_at: Option<String>,
    pub url: String,
}

/// A case's documents and the state of its renders.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentView>,
    pub renders: Vec<RenderView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RenderView {
    pub slot: String,
    pub case_version: i64,
    /// pending, done or failed
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub updated_at: String,
}

/// What `/verify/{number}` tells anyone: only the minimal facts — the parties' names, the
/// day it was issued and what the agreement is now, in Chinese and English.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub number: String,
    /// Whether the platform issued this number with this code. An unknown number and a wrong
    /// code give the same answer.
    pub genuine: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// What the agreement is now, from its case's state: `pending`, `returned` (by the
    /// school), `in_force`, `terminated` (解约) or `void`. A genuine number is not an
    /// agreement in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub agreement: Option<AgreementStatus>,
    /// What the copy that was scanned is: `pending` (being signed), `awaiting_review`,
    /// `returned`, `in_force`, `superseded` (the terms were amended after this copy was made:
    /// the QR code's `v` names the copy), `terminated` or `void`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The day (Asia/Shanghai) the status began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The status in words, Chinese and English (also for a number that is not genuine).
    pub message: crate::definition::Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_force: Option<bool>,
    /// The day the termination took effect (Asia/Shanghai), for a terminated agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated_on: Option<String>,
    /// Whether the case's stored history still hashes to its chain (every entry to its
    /// stored hash, none missing); `false` when a row was altered behind the platform's back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_intact: Option<bool>,
}

/// A file someone uploads, already checked for type and size by the caller.
pub struct Upload {
    pub slot: String,
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Engine {
    fn blobs(&self) -> Blobs {
        Blobs::new(self.settings.data_dir.join("blobs"))
    }

    /// The render job: renders the case as it was at `case_version` (its data and history
    /// up to that version, so a late job stores what an on-time one would have) if that is
    /// still the latest request for the slot. Returns `Err` to have the job retried.
    pub async fn render_job(&self, case_id: &str, slot: &str, case_version: i64, max_attempts: usize) -> Result<()> {
        let turn = self.foreground.turn().await;
        let mut tx = self.db.read().await?;
        let current = tx.renders(case_id).await?.into_iter().find(|r| r.slot == slot);
        let Some(current) = current.filter(|r| r.case_version == case_version && r.status != "done") else {
            return Ok(()); // a newer render was asked for, or this one is done
        };
        let (row, title, template, doc) = self.render_input(&mut tx, case_id, slot, case_version).await?;
        tx.rollback().await?;
        drop(turn);
        let renderer = self
            .renderer
            .get()
            .map_err(|e| StoreError::Corrupt(format!("the document templates cannot load: {e}")))?;
        let rendered = self
            .renderer
            .run(move || renderer.render_template(&template.name, template.pages, &doc, true))
            .await
            .map_err(|e| StoreError::Corrupt(format!("render task: {e}")))?;
        let attempts = current.attempts + 1;
        match rendered {
            Ok(out) => self.store_render(&row, slot, &title, case_version, out, attempts).await,
            Err(e) => {
                // The render took long; requests that came meanwhile write first.
                let _turn = self.foreground.turn().await;
                // A missing glyph or too much text fails the same way every time: give up at once.
                let permanent = matches!(e, RenderError::MissingGlyph { .. } | RenderError::PageCount { .. });
                let last = permanent || attempts as usize >= max_attempts;
                let message = format!("{} / {}", e.message_zh(), e);
                tracing::warn!(case = %case_id, slot, attempts, error = %e, "render failed");
                let status = if last { "failed" } else { "pending" };
                let mut tx = self.db.begin().await?;
                let still_wanted = tx
                    .set_render(&RenderRow {
                        attempts,
                        status: status.into(),
                        error: Some(message.clone()),
                        updated_at: millis(self.now()),
                        ..current
                    })
                    .await?;
                tx.commit().await?;
                if last || !still_wanted {
                    Ok(())
                } else {
                    Err(StoreError::Queue(message).into())
                }
            }
        }
    }

    /// What a render of `slot` at case version `version` is made of: the case, the slot's
    /// title, its template and the document (the case as it was at that version).
    async fn render_input(
        &self,
        tx: &mut crate::store::Tx,
        case_id: &str,
        slot: &str,
        version: i64,
    ) -> Result<(crate::store::CaseRow, String, crate::definition::Template, AgreementDoc)> {
        let row = tx.case(case_id).await?.ok_or_else(|| EngineError::NotFound {
            what: "case",
            id: case_id.into(),
        })?;
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        let rule = def.document(slot);
        let Some(template) = rule.as_ref().and_then(|r| r.template.clone()) else {
            return Err(StoreError::Corrupt(format!("slot {slot} of {} has no template", def.name)).into());
        };
        let doc = self.agreement_doc(tx, &row, template.preview, version).await?;
        let title = rule.map(|r| r.title).unwrap_or_else(|| slot.to_string());
        Ok((row, title, template, doc))
    }

    /// Renders `slot` of a case as it was at `version`, storing nothing: what the render
    /// job for that version stores, whenever it runs.
    pub async fn render_version(
        &self,
        case_id: &str,
        slot: &str,
        version: i64,
    ) -> Result<std::result::Result<crate::render::Rendered, RenderError>> {
        let mut tx = self.db.read().await?;
        let (_, _, template, doc) = self.render_input(&mut tx, case_id, slot, version).await?;
        tx.rollback().await?;
        let renderer = self
            .renderer
            .get()
            .map_err(|e| StoreError::Corrupt(format!("the document templates cannot load: {e}")))?;
        Ok(renderer.render_template(&template.name, template.pages, &doc, true))
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_render(
        &self,
        row: &crate::store::CaseRow,
        slot: &str,
        title: &str,
        version: i64,
        out: crate::render::Rendered,
        attempts: i64,
    ) -> Result<()> {
        let blobs = self.blobs();
        let data = row.data_json()?;
        let student = self
            .party(crate::store::PartyKind::Student, &row.student_id)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        // Named by the slot's Chinese title, the student and the agreement number.
        let title = title.split(" / ").next().unwrap_or(title);
        let base = match data.pointer("/agreement/number").and_then(Value::as_str) {
            Some(number) => format!("{title}-{student}-{number}"),
            None => format!("{title}-{student}"),
        };
        let mut files = vec![(0_i64, "application/pdf", format!("{base}.pdf"), out.pdf)];
        for (i, png) in out.pages.into_iter().enumerate() {
            files.push((i as i64 + 1, "image/png", format!("{base}-第{}页.png", i + 1), png));
        }
        let now_ms = millis(self.now());
        let mut hashes = Vec::new();
        let (files, bytes): (Vec<_>, Vec<_>) = files.into_iter().map(|(p, t, n, b)| ((p, t, n), b)).unzip();
        let staged = self.db.stage_blobs(&blobs, bytes).await?;
        // The render took long; requests that came meanwhile write first.
        let _turn = self.foreground.turn().await;
        let mut tx = self.db.begin().await?;
        // First, and under the row's lock: a newer request for the slot (the case moved
        // on while this one rendered) makes this render stale, and it stores nothing.
        let current = tx
            .set_render(&RenderRow {
                case_id: row.id.clone(),
                slot: slot.into(),
                case_version: version,
                status: "done".into(),
                attempts,
                error: None,
                updated_at: now_ms,
            })
            .await?;
        if !current {
            tx.rollback().await?;
            tracing::info!(case = %row.id, slot, version, "render superseded by a newer request; not stored");
            return Ok(());
        }
        for ((page, content_type, file_name), blob) in files.into_iter().zip(staged) {
            tx.put_staged(&blob, now_ms).await?;
            tx.insert_document(&DocumentRow {
                id: Uuid::now_v7().to_string(),
                case_id: row.id.clone(),
                slot: slot.into(),
                page,
                content_type: content_type.into(),
                file_name,
                size: blob.bytes.len() as i64,
                sha256: blob.sha256.clone(),
                case_version: version,
                added_by: "system".into(),
                created_at: now_ms,
                replaced_at: None,
            })
            .await?;
            hashes.push(blob.sha256);
        }
        tx.replace_documents(&row.id, slot, &hashes, now_ms).await?;
        tx.commit().await?;
        tracing::info!(case = %row.id, slot, version, "document rendered");
        Ok(())
    }

    /// Renders a stored case's agreement as it is now (for `gradsign render --case`),
    /// without storing anything.
    pub async fn render_now(
        &self,
        case_id: &str,
        preview: bool,
    ) -> Result<std::result::Result<crate::render::Rendered, RenderError>> {
        let mut tx = self.db.read().await?;
        let row = tx.case(case_id).await?.ok_or_else(|| EngineError::NotFound {
            what: "case",
            id: case_id.into(),
        })?;
        let doc = self.agreement_doc(&mut tx, &row, preview, row.version).await?;
        tx.rollback().await?;
        let renderer = self
            .renderer
            .get()
            .map_err(|e| StoreError::Corrupt(format!("the agreement template cannot load: {e}")))?;
        Ok(renderer.render(&doc, true))
    }

    /// The renderer's input for a case: parties' records overlaid with what the case
    /// holds (an offline agreement types the employer in), terms, and the signing record.
    async fn agreement_doc(
        &self,
        tx: &mut crate::store::Tx,
        row: &crate::store::CaseRow,
        preview: bool,
        version: i64,
    ) -> Result<AgreementDoc> {
        // The case as it was at `version`: a late job renders what an on-time one would
        // have (the data that version left, the history up to it, its dates), byte for byte.
        let mut history = tx.history(&row.id).await?;
        history.retain(|h| h.seq <= version);
        let at_version = history.iter().find(|h| h.seq == version);
        let data = match at_version.and_then(|h| h.data.as_deref()) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("case {} data at version {version}: {e}", row.id)))?,
            // Rows from before the history kept the data: the case as it is now.
            None => row.data_json()?,
        };
        let chain_head = at_version.and_then(|h| h.hash.clone());
        let parties = self.parties_of(tx, row).await?;
        // The signing record is the history up to that version: a late job does not print
        // what happened after it (an approval into a preview made at confirmation).
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        let in_force = |state: Option<&str>| {
            state
                .and_then(|s| def.state(s))
                .is_some_and(|s| s.agreement == AgreementStatus::InForce)
        };
        let name = super::party_name;
        let employer_name = parties.employer_name(&def.destination_record.unit, &data);
        // Who, in the agreement's own terms (甲方, 乙方, 丙方), and the transition's Chinese title.
        let party_of = |actor: &str| -> (&'static str, String) {
            match actor.split([':', '@']).next().unwrap_or_default() {
                "employer" => ("employer", format!("甲方 {employer_name}")),
                "student" => ("student", format!("乙方 {}", name(&parties.student))),
                "school_reviewer" | "school_admin" => ("school", format!("丙方 {}", name(&parties.school))),
                "platform_admin" => ("platform", "平台管理员".to_string()),
                _ => ("system", "系统".to_string()),
            }
        };
        let local = |ms: i64| from_millis(ms).with_timezone(&chrono_tz::Asia::Shanghai);
        let mut dates = Map::new();
        let mut signing = Vec::new();
        for h in &history {
            let (side, party) = party_of(&h.actor);
            // The person beside the party, when the token named one: 丙方 北方理工大学 张老师（学校审核员）.
            let who = match (&h.actor_sub, side) {
                (None, _) | (Some(_), "system" | "student") => party,
                (Some(sub), "platform") => super::shown_as(&h.actor, Some(sub), h.actor_name.as_deref()),
                (Some(sub), _) => {
                    let person = h.actor_name.as_deref().unwrap_or(sub);
                    // A declared role other than the identity says which level signed:
                    // 丙方 北方理工大学 王老师（二级学院审核员）.
                    let identity = crate::definition::Role::parse(h.actor.split([':', '@']).next().unwrap_or_default());
                    match def.acted_as(&h.transition, &h.actor) {
                        Some(role) if identity.is_none_or(|i| i.title().zh != role.zh) => {
                            format!("{party} {person}（{}）", role.zh)
                        }
                        _ => format!("{party} {person}"),
                    }
                }
            };
            let title = def
                .transition(&h.transition)
                .map(|t| t.title.split(" / ").next().unwrap_or_default().to_string());
            signing.push(json!({ "who": who, "action": title.unwrap_or_else(|| h.transition.clone()), "at": local(h.at).format("%Y-%m-%d %H:%M").to_string() }));
            // The school signs by approving: its date is the day the agreement came into
            // force, never the day of a return or of another step it took.
            let approval = in_force(Some(&h.to_state)) && !in_force(h.from_state.as_deref());
            if side == "school" && !approval {
                continue;
            }
            dates.insert(
                side.to_string(),
                json!(local(h.at).format("%Y年%-m月%-d日").to_string()),
            );
        }
        // Each party as its record has it, overlaid with what the case keeps of it typed
        // in where the definition says (`[typed_parties]`: an offline agreement's 甲方).
        let typed = |party: &str, record: &Value| def.party_as_typed(party, record, &data);
        let mut doc_data = Map::new();
        doc_data.insert("employer".into(), with_code_names(typed("employer", &parties.employer)));
        let mut student = typed("student", &parties.student);
        if def
            .typed_party("student", &data)
            .is_none_or(|s| !s.contains_key("school"))
        {
            // The synced record holds the school's id; the agreement prints its name.
            student["school"] = json!(name(&parties.school));
        }
        doc_data.insert("student".into(), student_with_code_names(student));
        doc_data.insert("school".into(), typed("school", &parties.school));
        // The terms the document prints, read where the definition says (`[document_context]`);
        // a version stored before that table gets the case data's `terms` whole, as then.
        let terms = if def.document_context.is_empty() {
            data.get("terms").cloned().unwrap_or(json!({}))
        } else {
            Value::Object(
                def.document_context
                    .iter()
                    .map(|entry| (entry.name.clone(), entry.value(&data)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            )
        };
        doc_data.insert("terms".into(), terms);
        doc_data.insert("signing".into(), Value::Array(signing));
        doc_data.insert("dates".into(), Value::Object(dates));
        // The whole case data, for templates that print what only their definition keeps
        // (a termination's reason and who asked for it).
        doc_data.insert("case".into(), data.clone());
        let number = data
            .pointer("/agreement/number")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let code = data
            .pointer("/agreement/verification_code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // `v` names this copy, so a scan can tell whether it was superseded by an amendment.
        let verify_url = format!(
            "{}/api/v1/verify/{number}?code={code}&v={version}",
            self.settings.base_url
        );
        // The chain head at this version: the evidence the document carries.
        let evidence = chain_head.map(|history_sha256| crate::render::Evidence {
            number: number.clone(),
            case_version: version,
            history_sha256,
        });
        Ok(AgreementDoc {
            number,
            verification_code: code,
            verify_url,
            preview,
            data: Value::Object(doc_data),
            evidence,
        })
    }

    /// A case's documents the actor may read, newest renders first in each slot.
    pub async fn documents(&self, case_id: &str, actor: &Actor) -> Result<DocumentList> {
        let mut tx = self.db.read().await?;
        let (row, def) = self.readable_case(&mut tx, case_id, actor).await?;
        // Renders before documents: on PostgreSQL each statement of this read sees what was
        // committed when it began, and a render commits its documents with its `done`, so
        // a render listed as done has its documents in the list read after it.
        let renders = tx
            .renders(case_id)
            .await?
            .into_iter()
            .map(|r| RenderView {
                slot: r.slot,
                case_version: r.case_version,
                status: r.status,
                attempts: r.attempts,
                error: r.error,
                updated_at: from_millis(r.updated_at).to_rfc3339(),
            })
            .collect();
        let documents = tx
            .documents(case_id)
            .await?
            .into_iter()
            .filter(|d| may_read(&def, &row.state, &d.slot, actor))
            .map(document_view)
            .collect();
        tx.rollback().await?;
        Ok(DocumentList { documents, renders })
    }

    /// The renders that failed, newest first (at most 200), each with its case and the
    /// reason (a missing character is named in it): what a platform admin looks into.
    pub async fn failed_renders(&self) -> Result<Vec<(String, RenderView)>> {
        let mut tx = self.db.read().await?;
        let rows = tx.failed_renders(200).await?;
        tx.rollback().await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.case_id,
                    RenderView {
                        slot: r.slot,
                        case_version: r.case_version,
                        status: r.status,
                        attempts: r.attempts,
                        error: r.error,
                        updated_at: from_millis(r.updated_at).to_rfc3339(),
                    },
                )
            })
            .collect())
    }

    /// One document's bytes. Reading a slot that a transition of the current state
    /// records (`download = "agreement"`) fires that transition for the reader.
    pub async fn read_document(&self, id: &str, actor: &Actor) -> Result<(DocumentView, Vec<u8>)> {
        let mut tx = self.db.read().await?;
        let doc = tx.document(id).await?.ok_or_else(|| EngineError::NotFound {
            what: "document",
            id: id.into(),
        })?;
        let (row, def) = self.readable_case(&mut tx, &doc.case_id, actor).await?;
        if !may_read(&def, &row.state, &doc.slot, actor) {
            return Err(Refusal::Guard(crate::definition::Message {
                zh: "学校审核通过前只能查看预览，不能下载正式协议书".into(),
                en: "the final agreement can be downloaded once the school approves it; until then only the preview"
                    .into(),
            })
            .into());
        }
        let bytes = tx.blob(&self.blobs(), &doc.sha256).await?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "document {id}: no content {} in the {} document store \
                 (documents written before they moved into PostgreSQL: run `gradsign migrate-blobs` \
                 where they were written)",
                doc.sha256,
                self.db.backend()
            ))
        })?;
        tx.rollback().await?;
        // Only a reader the transition names records the download: an administrator or a
        // reviewer opening the agreement has not handed it to the student (R11).
        let recorder = def.transitions_from(&row.state).find(|t| {
            t.download.as_deref() == Some(doc.slot.as_str()) && def.roles_of(&t.by, actor.role).next().is_some()
        });
        if let Some(t) = recorder
            && doc.page == 0
            && doc.replaced_at.is_none()
            && let Err(e) = self.fire(actor, &row.id, &t.name, &json!({}), None, None).await
        {
            tracing::warn!(case = %row.id, transition = %t.name, error = %e, "download not recorded");
        }
        Ok((document_view(doc), bytes))
    }

    async fn readable_case(
        &self,
        tx: &mut crate::store::Tx,
        case_id: &str,
        actor: &Actor,
    ) -> Result<(crate::store::CaseRow, Arc<crate::definition::Definition>)> {
        let row = tx.case(case_id).await?.ok_or_else(|| EngineError::NotFound {
            what: "case",
            id: case_id.into(),
        })?;
        if !super::is_party(&self.case_ref(tx, &row).await?, actor) {
            return Err(Refusal::NotYourCase.into());
        }
        let def = self.definition_of(tx, &row.workflow_hash).await?;
        Ok((row, def))
    }

    /// Whether `actor` may upload into the case at all — a party to it, in a role some
    /// upload transition names — checked before the file is read.
    pub async fn may_upload(&self, actor: &Actor, case_id: &str) -> Result<()> {
        let mut tx = self.db.read().await?;
        let (_, def) = self.readable_case(&mut tx, case_id, actor).await?;
        tx.rollback().await?;
        let mut uploaders: Vec<String> = def
            .transitions
            .iter()
            .filter(|t| t.upload.is_some())
            .flat_map(|t| t.by.iter().cloned())
            .collect();
        uploaders.sort();
        uploaders.dedup();
        // A workflow that takes no uploads says so of the slot named, once it is read.
        if uploaders.is_empty() || def.roles_of(&uploaders, actor.role).next().is_some() {
            return Ok(());
        }
        Err(Refusal::WrongRole {
            transition: "upload".into(),
            title: crate::definition::Message::from_title("上传文件 / upload a file"),
            role: actor.role,
            allowed: def.role_titles(&uploaders),
        }
        .into())
    }

    /// Stores an uploaded file by firing the transition that takes uploads into its slot
    /// from the case's state, in one transaction.
    pub async fn upload(&self, actor: &Actor, case_id: &str, upload: Upload, if_match: Option<i64>) -> Result<Value> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row = tx.lock_case(case_id).await?.ok_or_else(|| EngineError::NotFound {
            what: "case",
            id: case_id.into(),
        })?;
        let (case, mut around) = self.case_around(&mut tx, &row).await?;
        if !super::is_party(&case, actor) {
            return Err(Refusal::NotYourCase.into());
        }
        if let Some(expected) = if_match
            && expected != row.version
        {
            return Err(EngineError::Stale { current: row.version });
        }
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let slot = def.uploads.get(&upload.slot).ok_or_else(|| {
            Refusal::Invalid(vec![
                crate::domain::FieldError::new(
                    "unknown",
                    format!("此流程没有名为 {} 的上传项", upload.slot),
                    format!("this workflow takes no uploads named {}", upload.slot),
                )
                .with_field("slot"),
            ])
        })?;
        let transition = def
            .transitions_from(&row.state)
            .find(|t| t.upload.as_deref() == Some(upload.slot.as_str()))
            .or_else(|| {
                def.transitions
                    .iter()
                    .find(|t| t.upload.as_deref() == Some(upload.slot.as_str()))
            })
            .map(|t| t.name.clone())
            .ok_or_else(|| Refusal::UnknownTransition(format!("upload:{}", upload.slot)))?;
        let held = case.documents.get(&upload.slot).and_then(Value::as_i64).unwrap_or(0);
        if held >= slot.max_files as i64 {
            return Err(Refusal::Guard(crate::definition::Message {
                zh: format!("{}最多上传 {} 个文件", slot.title, slot.max_files),
                en: format!("{} takes at most {} files", slot.title, slot.max_files),
            })
            .into());
        }
        let parties = super::service::parties_around(&case, &around);
        let empty = json!({});
        let request = super::Request {
            def: &def,
            case: &case,
            is_start: false,
            actor,
            transition: &transition,
            input: &empty,
            parties: &parties,
            now,
        };
        let outcome = decide(&request)?;
        let sha = tx.put_blob(&self.blobs(), &upload.bytes, millis(now)).await?;
        let new_row = self
            .apply(
                &mut tx,
                &def,
                Some(&row),
                &case,
                &parties,
                &mut around,
                &outcome,
                actor,
                None,
                now,
            )
            .await?;
        let added = tx
            .insert_document(&DocumentRow {
                id: Uuid::now_v7().to_string(),
                case_id: row.id.clone(),
                slot: upload.slot.clone(),
                page: 0,
                content_type: upload.content_type.into(),
                file_name: upload.file_name,
                size: upload.bytes.len() as i64,
                sha256: sha,
                case_version: new_row.version,
                added_by: actor.who(),
                created_at: millis(now),
                replaced_at: None,
            })
            .await?;
        if !added {
            return Err(Refusal::Guard(crate::definition::Message {
                zh: "该文件已上传过".into(),
                en: "this file was already uploaded".into(),
            })
            .into());
        }
        // The answer counts the file just added among the case's documents.
        let mut after = case.after(&new_row)?;
        if let Some(counts) = after.documents.as_object_mut() {
            let n = counts.get(&upload.slot).and_then(Value::as_i64).unwrap_or(0);
            counts.insert(upload.slot.clone(), json!(n + 1));
        }
        Ok(self
            .finish(tx, &def, new_row, &after, &parties, &around, actor, None, 200)
            .await?
            .body)
    }

    /// Counts one request of `client` to a limited endpoint (`what`) and says how many
    /// seconds it must wait when it made more than `per_minute` this minute. Counted in the
    /// database, so every process shares the count.
    pub async fn rate_limited(&self, what: &str, client: &str, per_minute: u32) -> Result<Option<u64>> {
        const MINUTE_MS: i64 = 60_000;
        let now = millis(self.now());
        let window = now - now.rem_euclid(MINUTE_MS);
        let mut tx = self.db.begin().await?;
        let hits = tx
            .rate_hit(&format!("{what}:{client}"), window, window - MINUTE_MS)
            .await?;
        tx.commit().await?;
        Ok((hits > i64::from(per_minute)).then(|| ((window + MINUTE_MS - now) as u64).div_ceil(1000).max(1)))
    }

    /// Whether an agreement number and code are genuine, with minimal facts. `copy` is the
    /// case version a printed copy was rendered from (the QR code's `v`), if known.
    pub async fn verify(&self, number: &str, code: &str, copy: Option<i64>) -> Result<Verification> {
        let mut tx = self.db.read().await?;
        let found = tx.agreement(number).await?;
        let not_genuine = Verification {
            number: number.into(),
            genuine: false,
            student_name: None,
            employer_name: None,
            issued_on: None,
            state: None,
            agreement: None,
            status: None,
            since: None,
            message: crate::definition::Message {
                zh: "未找到该编号与核验码对应的协议书，请核对后重试".into(),
                en: "no agreement with this number and code; check both and try again".into(),
            },
            in_force: None,
            terminated_on: None,
            history_intact: None,
        };
        let Some((case_id, expected, issued_at)) = found else {
            return Ok(not_genuine);
        };
        if !constant_time_eq(expected.as_bytes(), code.trim().to_ascii_uppercase().as_bytes()) {
            return Ok(not_genuine);
        }
        let row = tx
            .case(&case_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("agreement {number} has no case")))?;
        let parties = self.parties_of(&mut tx, &row).await?;
        let data = row.data_json()?;
        let def = self.definition_of(&mut tx, &row.workflow_hash).await?;
        let history = tx.history(&row.id).await?;
        // A copy is superseded when the rendering it came from was replaced by a newer one
        // (the terms changed and the agreement was rendered again).
        let superseded_at = match copy {
            Some(v) => tx
                .documents(&row.id)
                .await?
                .into_iter()
                .filter(|d| d.page == 0 && d.case_version == v && d.added_by == "system")
                .filter_map(|d| d.replaced_at)
                .min(),
            None => None,
        };
        tx.rollback().await?;
        let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
        let day = |ms: i64| {
            from_millis(ms)
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .format("%Y-%m-%d")
                .to_string()
        };
        let state = def.state(&row.state);
        let agreement_of = |s: &str| def.state(s).map(|s| s.agreement).unwrap_or_default();
        let status = agreement_of(&row.state);
        // The status began when the case last moved into it from a state of another status.
        let began = history
            .iter()
            .rev()
            .find(|h| {
                agreement_of(&h.to_state) == status && h.from_state.as_deref().is_none_or(|f| agreement_of(f) != status)
            })
            .map_or(row.state_entered_at, |h| h.at);
        let (copy_status, since) = match status {
            AgreementStatus::Terminated | AgreementStatus::Void => (status.as_str(), day(began)),
            _ if superseded_at.is_some() => ("superseded", day(superseded_at.unwrap_or_default())),
            AgreementStatus::Pending if state.is_some_and(|s| s.review) => {
                ("awaiting_review", day(row.state_entered_at))
            }
            _ => (status.as_str(), day(began)),
        };
        Ok(Verification {
            number: number.into(),
            genuine: true,
            student_name: name(&parties.student),
            employer_name: name(&parties.employer)
                .or_else(|| crate::definition::DestinationRecordMap::read(&def.destination_record.unit, &data)),
            issued_on: Some(day(issued_at)),
            state: Some(state.map(|s| s.title.clone()).unwrap_or(row.state.clone())),
            agreement: Some(status),
            message: status_message(copy_status, &since),
            status: Some(copy_status.to_string()),
            since: Some(since),
            in_force: Some(status == AgreementStatus::InForce && superseded_at.is_none()),
            terminated_on: (status == AgreementStatus::Terminated).then(|| day(row.state_entered_at)),
            history_intact: Some(
                crate::store::first_altered(&history).is_none() && history.last().map(|h| h.seq) == Some(row.version),
            ),
        })
    }
}

/// What a verified agreement is, in words a person scanning its QR code understands.
fn status_message(status: &str, since: &str) -> crate::definition::Message {
    let (zh, en) = match status {
        "pending" => (
            "协议书已生成，正在签署，尚未提交学校审核，未生效".to_string(),
            "the agreement is being signed and has not been submitted to the school; it is not in force".to_string(),
        ),
        "awaiting_review" => (
            format!("协议书已于 {since} 提交学校审核，尚未生效"),
            format!(
                "the agreement was submitted to the school on {since} and awaits its review; it is not yet in force"
            ),
        ),
        "returned" => (
            format!("协议书已于 {since} 被学校退回，未生效"),
            format!("the school returned the agreement on {since}; it is not in force"),
        ),
        "in_force" => (
            format!("协议书已经学校审核通过，自 {since} 起生效"),
            format!("the school approved the agreement; it has been in force since {since}"),
        ),
        "superseded" => (
            format!("此份协议书已于 {since} 被修改后的版本取代，请以最新版本为准"),
            format!("this copy was superseded by an amended version on {since}; only the latest version counts"),
        ),
        "terminated" => (
            format!("协议书已于 {since} 解约，不再有效"),
            format!("the agreement was terminated on {since}; it is no longer in force"),
        ),
        _ => (
            "协议书已作废，未曾生效".to_string(),
            "the agreement is void; it never took effect".to_string(),
        ),
    };
    crate::definition::Message { zh, en }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// School staff and platform admins read every document of their cases; the student
/// and the employer read a rendered slot only in the states its rule names.
/// The employer's coded fields as the agreement prints them: 单位性质 and 行业 by name
/// (`31` → 国有企业, `C` → 制造业), 所在地 as its province's name beside the code
/// (`230103` → 黑龙江省 230103). A value not in its list prints as it is.
fn with_code_names(mut employer: Value) -> Value {
    named(&mut employer, &[("nature", "unit_nature"), ("industry", "industry")]);
    let reference = crate::domain::Reference::builtin();
    let name = |list: &str, code: &str| {
        reference
            .code_list(list)
            .and_then(|l| l.lookup(code))
            .map(|e| e.name_zh.clone())
    };
    if let Some(code) = employer.get("location").and_then(Value::as_str).map(str::to_string)
        && code.len() == 6
        && let Some(province) = code.get(..2).and_then(|p| name("province", p))
    {
        employer["location"] = json!(format!("{province} {code}"));
    }
    employer
}

/// Replaces each coded field of a record by its name from its code list (`("political_status",
/// "political_status")`: `03` → 共青团员); a value not in its list stays as it is.
fn named(record: &mut Value, fields: &[(&str, &str)]) {
    let reference = crate::domain::Reference::builtin();
    for (field, list) in fields {
        let name = record
            .get(*field)
            .and_then(Value::as_str)
            .and_then(|code| reference.code_list(list)?.lookup(code))
            .map(|e| e.name_zh.clone());
        if let Some(name) = name {
            record[*field] = json!(name);
        }
    }
}

/// The graduate's coded fields as the agreement prints them: 学历, 培养方式 and 政治面貌 by
/// name, 学制 in years (`4` → `4 年`).
fn student_with_code_names(mut student: Value) -> Value {
    named(
        &mut student,
        &[
            ("education_level", "education_level"),
            ("training_mode", "training_mode"),
            ("political_status", "political_status"),
        ],
    );
    if let Some(years) = student.get("study_years").and_then(Value::as_str)
        && !years.is_empty()
        && years.parse::<f64>().is_ok()
    {
        student["study_years"] = json!(format!("{years} 年"));
    }
    student
}

fn may_read(def: &crate::definition::Definition, state: &str, slot: &str, actor: &Actor) -> bool {
    match actor.role {
        Role::SchoolReviewer | Role::SchoolAdmin | Role::PlatformAdmin | Role::System => true,
        Role::Student | Role::Employer => def.readable_by_parties(slot, state),
    }
}

fn document_view(d: DocumentRow) -> DocumentView {
    let at = |ms: i64| -> String { from_millis(ms).to_rfc3339() };
    DocumentView {
        url: format!("/api/v1/documents/{}", d.id),
        id: d.id,
        slot: d.slot,
        page: d.page,
        content_type: d.content_type,
        file_name: d.file_name,
        size: d.size,
        sha256: d.sha256,
        case_version: d.case_version,
        added_by: d.added_by,
        created_at: at(d.created_at),
        replaced_at: d.replaced_at.map(at),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::LazyRenderer;

    /// The calling thread's scheduling policy and nice value.
    fn priority() -> (i32, i32) {
        // SAFETY: both calls only read the calling thread's (`0`) settings.
        unsafe { (libc::sched_getscheduler(0), libc::getpriority(libc::PRIO_PROCESS, 0)) }
    }

    fn lowest((policy, nice): (i32, i32)) -> bool {
        policy == libc::SCHED_IDLE || nice == 19
    }

    #[tokio::test]
    async fn a_render_and_its_parallel_parts_run_at_the_lowest_priority() {
        let renderer = LazyRenderer::new("templates/agreement");
        let seen = renderer
            .run(|| {
                let (a, b) = rayon::join(priority, priority);
                [priority(), a, b]
            })
            .await
            .expect("the render threads run");
        assert!(seen.into_iter().all(lowest), "{seen:?}");
        assert!(!lowest(priority()), "the test's own thread keeps its priority");
    }
}
