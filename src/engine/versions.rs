//! Publishing definitions without a restart: a version is checked and stored
//! (`publish`), then made the one new cases start on (`activate`). The active version
//! lives in the database and `start` reads it in its own transaction, so an activation
//! through any process reaches every process at its next start; nothing process-local
//! decides. Every publish and activation is recorded in the audit.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Actor,
    service::{Engine, EngineError, Result},
};
use crate::{
    definition::{Definition, DefinitionError, Mail, TimerAction, graph},
    store::{AuditRow, TimerRow, Tx, from_millis, millis},
};

/// Who did it, as the audit and the version list say it.
fn who(actor: &Actor) -> String {
    match &actor.party {
        Some(party) => format!("{}:{party}", actor.role),
        None => actor.role.to_string(),
    }
}

/// A workflow and the version new cases start on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowView {
    pub name: String,
    pub title: String,
    /// The active version's hash.
    pub active: String,
    pub activated_at: chrono::DateTime<chrono::Utc>,
    pub activated_by: String,
}

/// One stored version of a workflow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionView {
    pub hash: String,
    pub name: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
    pub published_by: String,
    /// Whether new cases start on it.
    pub active: bool,
    /// The live (not terminal) cases running on it, by state.
    pub live_cases: BTreeMap<String, i64>,
    /// The lines changed since the version published before it (`-` removed, `+` added);
    /// empty for the first.
    pub diff: Vec<String>,
}

/// What a publish did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    pub hash: String,
    pub name: String,
    /// `false` when the same source was published before (nothing new is stored).
    pub new: bool,
}

/// One entry of the audit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    /// publish, activate or migrate
    pub action: String,
    pub workflow: String,
    pub hash: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl Engine {
    /// The definition new cases of `name` start on: the active version, read in `tx`.
    pub(super) async fn active_definition(&self, tx: &mut Tx, name: &str) -> Result<Arc<Definition>> {
        let active = tx
            .active_version(name)
            .await?
            .ok_or_else(|| EngineError::UnknownWorkflow(name.to_string()))?;
        self.definition_of(tx, &active.hash).await
    }

    /// Stores the seed definitions of `workflows/`: a file version not seen before is
    /// published and activated (a deploy), and a workflow with no active version gets
    /// its file's. A version activated through the API stays active across restarts
    /// until a changed file is deployed.
    pub async fn publish_definitions(&self) -> Result<()> {
        let now = millis(self.now());
        let mut tx = self.db.begin().await?;
        for def in self.registry.all_current() {
            let new = tx.insert_version(def, "workflows/", now).await?;
            if new {
                audit(&mut tx, now, "workflows/", "publish", &def.name, &def.hash, json!({})).await?;
            }
            if new || tx.active_version(&def.name).await?.is_none() {
                tx.set_active(&def.name, &def.hash, "workflows/", now).await?;
                audit(&mut tx, now, "workflows/", "activate", &def.name, &def.hash, json!({})).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks `source` as workflow `name` and stores it as a version (not yet active).
    pub async fn publish(&self, actor: &Actor, name: &str, source: &str) -> Result<Published> {
        let def = Definition::parse(&format!("{name}.toml"), source, self.registry.catalog())
            .map_err(EngineError::InvalidDefinition)?;
        let now = millis(self.now());
        let mut tx = self.db.begin().await?;
        let new = tx.insert_version(&def, &who(actor), now).await?;
        if new {
            audit(&mut tx, now, &who(actor), "publish", name, &def.hash, json!({})).await?;
        }
        tx.commit().await?;
        Ok(Published {
            hash: def.hash.clone(),
            name: def.name.clone(),
            new,
        })
    }

    /// Makes a stored version of `name` the one new cases start on, in every process.
    pub async fn activate(&self, actor: &Actor, name: &str, hash: &str) -> Result<WorkflowView> {
        let now = millis(self.now());
        let mut tx = self.db.begin().await?;
        let version = tx
            .version(hash)
            .await?
            .filter(|v| v.name == name)
            .ok_or_else(|| EngineError::NotFound {
                what: "version",
                id: hash.to_string(),
            })?;
        // Compiles (and checks) it against today's templates before anyone starts on it.
        let def = self.definition_of(&mut tx, &version.hash).await?;
        let previous = tx.active_version(name).await?.map(|a| a.hash);
        tx.set_active(name, hash, &who(actor), now).await?;
        audit(
            &mut tx,
            now,
            &who(actor),
            "activate",
            name,
            hash,
            json!({ "previous": previous }),
        )
        .await?;
        tx.commit().await?;
        Ok(WorkflowView {
            name: name.to_string(),
            title: def.title.clone(),
            active: hash.to_string(),
            activated_at: from_millis(now),
            activated_by: who(actor),
        })
    }

    /// Every workflow with its active version.
    pub async fn workflows(&self) -> Result<Vec<WorkflowView>> {
        let mut tx = self.db.read().await?;
        let mut out = Vec::new();
        for active in tx.active_versions().await? {
            let def = self.definition_of(&mut tx, &active.hash).await?;
            out.push(WorkflowView {
                name: active.name,
                title: def.title.clone(),
                active: active.hash,
                activated_at: from_millis(active.activated_at),
                activated_by: active.activated_by,
            });
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// The versions of `name`, oldest first: who published each and when, the diff
    /// against the one before, and its live cases by state.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionView>> {
        let mut tx = self.db.read().await?;
        let rows = tx.versions(name).await?;
        if rows.is_empty() {
            return Err(EngineError::NotFound {
                what: "workflow",
                id: name.to_string(),
            });
        }
        let active = tx.active_version(name).await?.map(|a| a.hash);
        let counts = tx.cases_by_version(name).await?;
        let mut out = Vec::new();
        let mut previous: Option<&str> = None;
        for row in &rows {
            let def = self.definition_of(&mut tx, &row.hash).await.ok();
            let live_cases = counts
                .iter()
                .filter(|(hash, state, _)| {
                    hash == &row.hash && def.as_ref().is_none_or(|d| d.state(state).is_none_or(|s| !s.terminal))
                })
                .map(|(_, state, n)| (state.clone(), *n))
                .collect();
            out.push(VersionView {
                hash: row.hash.clone(),
                name: row.name.clone(),
                published_at: from_millis(row.published_at),
                published_by: row.published_by.clone(),
                active: active.as_deref() == Some(row.hash.as_str()),
                live_cases,
                diff: previous.map(|p| line_diff(p, &row.source)).unwrap_or_default(),
            });
            previous = Some(&row.source);
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// The stored source of a version of `name`.
    pub async fn version_source(&self, name: &str, hash: &str) -> Result<String> {
        let mut tx = self.db.read().await?;
        let row = tx.version(hash).await?.filter(|v| v.name == name);
        tx.rollback().await?;
        row.map(|r| r.source).ok_or_else(|| EngineError::NotFound {
            what: "version",
            id: hash.to_string(),
        })
    }

    /// A version drawn as a Mermaid state diagram.
    pub async fn version_graph(&self, name: &str, hash: &str) -> Result<String> {
        let def = self.stored_version(name, hash).await?;
        Ok(graph::mermaid(&def))
    }

    /// A stored version drawn as SVG, each state shaded by the live cases in it.
    pub async fn version_graph_svg(&self, name: &str, hash: &str) -> Result<String> {
        let def = self.stored_version(name, hash).await?;
        let live = self
            .versions(name)
            .await?
            .into_iter()
            .find(|v| v.hash == def.hash)
            .map(|v| v.live_cases)
            .unwrap_or_default();
        Ok(graph::svg(&def, &live))
    }

    /// A stored version of workflow `name`, parsed.
    async fn stored_version(&self, name: &str, hash: &str) -> Result<Arc<Definition>> {
        let mut tx = self.db.read().await?;
        let found = tx.version(hash).await?.filter(|v| v.name == name);
        let def = match found {
            Some(v) => Some(self.definition_of(&mut tx, &v.hash).await?),
            None => None,
        };
        tx.rollback().await?;
        def.ok_or_else(|| EngineError::NotFound {
            what: "version",
            id: hash.to_string(),
        })
    }

    /// The audit, newest first (of one workflow, or all).
    pub async fn audit(&self, workflow: Option<&str>) -> Result<Vec<AuditView>> {
        let mut tx = self.db.read().await?;
        let rows = tx.audit(workflow, 500).await?;
        tx.rollback().await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditView {
                at: from_millis(r.at),
                actor: r.actor,
                action: r.action,
                workflow: r.workflow,
                hash: r.hash,
                detail: serde_json::from_str(&r.detail).unwrap_or_default(),
            })
            .collect())
    }
}

/// Records one publish, activation or migration.
pub(super) async fn audit(
    tx: &mut Tx,
    now: i64,
    actor: &str,
    action: &str,
    workflow: &str,
    hash: &str,
    detail: serde_json::Value,
) -> Result<()> {
    tx.insert_audit(&AuditRow {
        id: Uuid::now_v7().to_string(),
        at: now,
        actor: actor.to_string(),
        action: action.to_string(),
        workflow: workflow.to_string(),
        hash: hash.to_string(),
        detail: detail.to_string(),
    })
    .await?;
    Ok(())
}

/// The lines of `new` not in `old` (`+ `) and of `old` not in `new` (`- `), in order,
/// by the longest common subsequence of lines.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 4_000_000 {
        return vec![format!("(too long to compare line by line: {n} lines against {m})")];
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diffs read.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

/// Why a definition was refused, for the API: file, line and message of each problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemItem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

pub fn problem_items(e: &DefinitionError) -> Vec<ProblemItem> {
    e.problems
        .iter()
        .map(|p| ProblemItem {
            file: p.file.clone(),
            line: p.line,
            message: p.message.clone(),
        })
        .collect()
}

/// What moving the live cases of older versions onto a version would do, by (version, state).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImpactGroup {
    /// The version the cases run on now.
    pub version: String,
    pub state: String,
    pub cases: Vec<String>,
    /// The state they would be in on the new version; `None`: they cannot move as they are.
    pub maps_to: Option<String>,
    /// Why they cannot move, or what would change for them: the state is gone, the claims
    /// held differ, the timers differ.
    pub notes: Vec<String>,
}

/// The impact of a version on the live cases of the others.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Impact {
    pub name: String,
    pub hash: String,
    /// Cases that would map to the new version.
    pub movable: usize,
    /// Cases that could not.
    pub blocked: usize,
    pub groups: Vec<ImpactGroup>,
}

impl Engine {
    /// For the live cases of the other versions of `name`: where each would be on version
    /// `hash` (the same state name, or `mapping`'s), and what stands in the way or would
    /// change. Reads only.
    pub async fn impact(&self, name: &str, hash: &str, mapping: &BTreeMap<String, String>) -> Result<Impact> {
        let mut tx = self.db.read().await?;
        let found = tx.version(hash).await?.filter(|v| v.name == name);
        let Some(target) = found else {
            return Err(EngineError::NotFound {
                what: "version",
                id: hash.to_string(),
            });
        };
        let new = self.definition_of(&mut tx, &target.hash).await?;
        let mut groups = Vec::new();
        for (version, state, _) in tx.cases_by_version(name).await? {
            if version == target.hash {
                continue;
            }
            let old = self.definition_of(&mut tx, &version).await?;
            let Some(old_state) = old.state(&state) else { continue };
            if old_state.terminal {
                continue;
            }
            let cases = tx.case_ids_in(name, &version, &state).await?;
            let wanted = mapping.get(&state).cloned().unwrap_or_else(|| state.clone());
            let mut notes = Vec::new();
            let maps_to = match new.state(&wanted) {
                None => {
                    notes.push(format!("state `{wanted}` does not exist in the new version"));
                    None
                }
                Some(s) if s.terminal => {
                    notes.push(format!("state `{wanted}` is terminal in the new version"));
                    None
                }
                Some(s) => {
                    let (mut a, mut b) = (old_state.claims.clone(), s.claims.clone());
                    a.sort();
                    b.sort();
                    if a != b {
                        notes.push(format!("claims change: {a:?} → {b:?}"));
                    }
                    if format!("{:?}", old_state.timers) != format!("{:?}", s.timers) {
                        notes.push("timers change: each needs a policy (keep, recompute or cancel)".into());
                    }
                    Some(wanted)
                }
            };
            groups.push(ImpactGroup {
                version,
                state,
                cases,
                maps_to,
                notes,
            });
        }
        tx.rollback().await?;
        let count = |movable: bool| -> usize {
            groups
                .iter()
                .filter(|g| g.maps_to.is_some() == movable)
                .map(|g| g.cases.len())
                .sum()
        };
        Ok(Impact {
            name: name.to_string(),
            hash: target.hash,
            movable: count(true),
            blocked: count(false),
            groups,
        })
    }
}

/// What a migration does with a timer of the state a case moves into, named by what it
/// does (the transition it fires, or its mail template, `#level` for an escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimerPolicy {
    /// The due time of the case's pending timer of that name (none if it already fired,
    /// or the old version had none): the default.
    Keep,
    /// Due again as the new version says, counted from when the case entered its state.
    Recompute,
    /// Not set.
    Cancel,
}

impl TimerPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerPolicy::Keep => "keep",
            TimerPolicy::Recompute => "recompute",
            TimerPolicy::Cancel => "cancel",
        }
    }
}

/// The name a migration's timer policies use for a timer: the transition it fires, or its
/// mail template (with `#level` for an escalation).
pub fn timer_name(action: &TimerAction) -> String {
    match action {
        TimerAction::Fire(t) => t.clone(),
        TimerAction::Mail(mail) => match mail.escalate {
            Some(level) => format!("{}#{level}", mail.template),
            None => mail.template.clone(),
        },
    }
}

/// The timer name of a stored timer row.
fn row_timer_name(row: &TimerRow) -> Option<String> {
    if !row.fire.is_empty() {
        return Some(row.fire.clone());
    }
    let mail: Mail = serde_json::from_str(row.spec.as_deref()?).ok()?;
    Some(timer_name(&TimerAction::Mail(mail)))
}

/// Which cases to move onto a version, and how.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationPlan {
    /// The cases to move (live cases of other versions of the workflow).
    pub cases: Vec<String>,
    /// Old state → new state, for states the new version names differently; a state not
    /// named keeps its name.
    #[serde(default)]
    pub states: BTreeMap<String, String>,
    /// A policy per timer of the new version, by name (see [`timer_name`]); `keep` for
    /// any not named.
    #[serde(default)]
    pub timers: BTreeMap<String, TimerPolicy>,
}

/// A timer a migration set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MigratedTimer {
    pub name: String,
    pub policy: TimerPolicy,
    pub due: chrono::DateTime<chrono::Utc>,
}

/// A case a migration moved.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MovedCase {
    pub id: String,
    pub from_version: String,
    pub from_state: String,
    pub to_state: String,
    pub timers: Vec<MigratedTimer>,
}

/// A case a migration left where it was, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnmovedCase {
    pub id: String,
    pub reason: String,
}

/// What a migration did: every case moved in its own transaction, or left with the reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Migration {
    pub name: String,
    pub hash: String,
    pub moved: Vec<MovedCase>,
    pub unmoved: Vec<UnmovedCase>,
}

/// The most cases one migration request moves.
pub const MIGRATION_MAX_CASES: usize = 1000;

impl Engine {
    /// Moves the chosen live cases of `name` onto version `hash`: each in one transaction
    /// through the one write path ([`Engine::apply`]): its state (mapped), claims and
    /// timers (by the policies), a `migrate` entry in its history with who did it, and
    /// a `migrate` entry in the audit. A case that cannot move is left as it is, with the reason.
    pub async fn migrate(&self, actor: &Actor, name: &str, hash: &str, plan: &MigrationPlan) -> Result<Migration> {
        let new = self.stored_version(name, hash).await?;
        check_plan(&new, plan)?;
        let mut out = Migration {
            name: name.to_string(),
            hash: new.hash.clone(),
            moved: Vec::new(),
            unmoved: Vec::new(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for id in plan.cases.iter().filter(|id| seen.insert(id.as_str())) {
            match self.migrate_one(actor, &new, id, plan).await? {
                Ok(moved) => out.moved.push(moved),
                Err(reason) => out.unmoved.push(UnmovedCase { id: id.clone(), reason }),
            }
        }
        Ok(out)
    }

    /// One case, in one transaction; `Ok(Err(reason))` when it cannot move.
    async fn migrate_one(
        &self,
        actor: &Actor,
        new: &Definition,
        id: &str,
        plan: &MigrationPlan,
    ) -> Result<std::result::Result<MovedCase, String>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let Some(row) = tx.lock_case(id).await?.filter(|r| r.workflow == new.name) else {
            return Ok(Err(format!("no case {id} of workflow {}", new.name)));
        };
        if row.workflow_hash == new.hash {
            return Ok(Err("the case already runs on this version".into()));
        }
        let old = self.definition_of(&mut tx, &row.workflow_hash).await?;
        if old.state(&row.state).is_none_or(|s| s.terminal) {
            return Ok(Err(format!("the case has ended (state `{}`)", row.state)));
        }
        let to = plan
            .states
            .get(&row.state)
            .cloned()
            .unwrap_or_else(|| row.state.clone());
        let Some(state) = new.state(&to).filter(|s| !s.terminal) else {
            return Ok(Err(format!(
                "state `{to}` is not a live state of the new version: map `{}` in `states`",
                row.state
            )));
        };
        let (case, mut around) = self.case_around(&mut tx, &row).await?;
        let parties = super::service::parties_around(&case, &around);
        let held = super::state_claims(&old, &row.state, &case);
        let wanted = super::state_claims(new, &to, &case);
        let release = held
            .iter()
            .filter(|(k, _)| !wanted.iter().any(|(w, _)| w == k))
            .map(|(k, _)| k.clone())
            .collect();
        let take = wanted
            .into_iter()
            .filter(|(k, _)| !held.iter().any(|(h, _)| h == k))
            .collect();
        // The timers, by policy: kept from the pending ones, recomputed from the entry.
        let pending: Vec<TimerRow> = tx
            .timers_of(&row.id)
            .await?
            .into_iter()
            .filter(|t| t.status == "pending")
            .collect();
        let entered = from_millis(row.state_entered_at);
        let mut timers = Vec::new();
        let mut shown = Vec::new();
        for timer in &state.timers {
            let name = timer_name(&timer.action);
            let policy = plan.timers.get(&name).copied().unwrap_or(TimerPolicy::Keep);
            let due = match policy {
                TimerPolicy::Cancel => None,
                TimerPolicy::Keep => pending
                    .iter()
                    .find(|t| row_timer_name(t).as_deref() == Some(name.as_str()))
                    .map(|t| from_millis(t.due_at)),
                TimerPolicy::Recompute => {
                    let Ok(at) = super::due_time(&timer.due, &case.data, entered) else {
                        return Ok(Err(format!("timer `{name}` has no due time in this case's data")));
                    };
                    at.checked_sub_signed(timer.before.unwrap_or_default())
                        // A reminder whose moment has passed is not sent late (as on entering).
                        .filter(|due| timer.before.is_none() || *due > now)
                }
            };
            if let Some(due) = due {
                timers.push(super::NewTimer {
                    action: timer.action.clone(),
                    due,
                });
                shown.push(MigratedTimer { name, policy, due });
            }
        }
        let input = json!({
            "from_version": row.workflow_hash,
            "to_version": new.hash,
            "timers": shown.iter().map(|t| (t.name.clone(), json!({ "policy": t.policy, "due": t.due.to_rfc3339() }))).collect::<serde_json::Map<_, _>>(),
        });
        let outcome = super::Outcome {
            transition: "migrate".into(),
            from: Some(row.state.clone()),
            to: to.clone(),
            enters: true,
            data: case.data.clone(),
            input: input.clone(),
            release,
            take,
            timers,
            effects: Vec::new(),
            mails: Vec::new(),
            changes: Vec::new(),
            migration: true,
        };
        match self
            .apply(
                &mut tx,
                new,
                Some(&row),
                &case,
                &parties,
                &mut around,
                &outcome,
                actor,
                None,
                now,
            )
            .await
        {
            Ok(_) => {}
            Err(EngineError::ClaimHeld { message, .. }) => return Ok(Err(message.en)),
            Err(e) => return Err(e),
        }
        let mut detail = input;
        detail["case"] = json!(row.id);
        detail["from_state"] = json!(row.state);
        detail["to_state"] = json!(to);
        audit(
            &mut tx,
            millis(now),
            &who(actor),
            "migrate",
            &new.name,
            &new.hash,
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(MovedCase {
            id: row.id,
            from_version: row.workflow_hash,
            from_state: row.state,
            to_state: to,
            timers: shown,
        }))
    }
}

/// A plan names at least one case and at most [`MIGRATION_MAX_CASES`], maps only to live
/// states of the new version, and gives policies only to timers it has.
fn check_plan(new: &Definition, plan: &MigrationPlan) -> Result<()> {
    use crate::domain::FieldError;
    let mut problems = Vec::new();
    if plan.cases.is_empty() || plan.cases.len() > MIGRATION_MAX_CASES {
        problems.push(
            FieldError::new(
                "out_of_range",
                format!("请选择 1 至 {MIGRATION_MAX_CASES} 个案件"),
                format!("name 1 to {MIGRATION_MAX_CASES} cases"),
            )
            .with_field("cases"),
        );
    }
    for (from, to) in &plan.states {
        if new.state(to).is_none_or(|s| s.terminal) {
            problems.push(
                FieldError::new(
                    "unknown_state",
                    format!("新版本中没有进行中的状态 {to}"),
                    format!("`{to}` is no live state of the new version"),
                )
                .with_field(format!("states.{from}")),
            );
        }
    }
    let names: std::collections::BTreeSet<String> = new
        .states
        .values()
        .flat_map(|s| &s.timers)
        .map(|t| timer_name(&t.action))
        .collect();
    for name in plan.timers.keys().filter(|n| !names.contains(*n)) {
        problems.push(
            FieldError::new(
                "unknown_timer",
                format!("新版本中没有名为 {name} 的计时器"),
                format!(
                    "the new version has no timer `{name}`; its timers: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_field(format!("timers.{name}")),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(super::Refusal::Invalid(problems).into())
    }
}
