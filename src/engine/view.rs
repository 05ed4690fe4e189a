//! What a reader sees of a case: its state, data, parties, history, events, pending
//! timers and the reader's own actions. Built inside the transaction that read or changed it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Action, Change};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseView {
    pub id: String,
    pub workflow: String,
    pub workflow_title: String,
    /// The definition version (content hash) the case pinned when it started.
    pub workflow_version: String,
    pub state: String,
    pub state_title: String,
    pub terminal: bool,
    /// The optimistic version: send it back in `If-Match`.
    pub version: i64,
    #[schema(value_type = Object)]
    pub data: Value,
    pub parties: PartiesView,
    pub history: Vec<HistoryView>,
    /// What happened to the case without moving it (an overdue review escalated): no
    /// version, nothing in the agreement's signing record.
    pub events: Vec<EventView>,
    pub timers: Vec<TimerView>,
    /// What the caller may do now; disabled actions say why.
    pub actions: Vec<Action>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartiesView {
    pub student: PartyRef,
    pub employer: Option<PartyRef>,
    pub school: PartyRef,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartyRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub seq: i64,
    pub transition: String,
    pub from: Option<String>,
    pub to: String,
    /// The role label: `student:S001`, `school_reviewer@10212`, `system`.
    pub actor: String,
    /// Who acted, as people read it: `张老师（学校审核员）`, or the role alone.
    pub by: String,
    /// The person who acted (the token's `sub` and name); null for the system and for
    /// tokens that named no person.
    pub person: Option<super::Person>,
    #[schema(value_type = Object)]
    pub input: Value,
    /// What the transition changed, old beside new (an amendment's terms, a correction).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    pub at: String,
}

/// An event of a case: `escalate:n`, a review left too long escalated to level n.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub event: String,
    /// The state the case was waiting in.
    pub state: String,
    /// The roles it was escalated to.
    pub to: Vec<String>,
    pub actor: String,
    pub at: String,
    /// When the case left that state.
    pub resolved_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimerView {
    pub fire: String,
    pub due_at: String,
    pub status: String,
}

/// One line of a case listing: what a row on screen needs, so a list is one request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseSummary {
    pub id: String,
    pub workflow: String,
    pub workflow_title: String,
    pub state: String,
    pub state_title: String,
    pub version: i64,
    pub student_id: String,
    pub student_name: Option<String>,
    pub student_number: Option<String>,
    /// The student's college (院系).
    pub college: Option<String>,
    pub employer_id: Option<String>,
    /// The employer's name: its synced record's, or the one typed into an offline
    /// agreement.
    pub employer_name: Option<String>,
    /// The position the agreement's terms name (`terms.position`), if any.
    pub position: Option<String>,
    pub school_id: String,
    /// When the earliest pending timer fires a transition (an invitation lapses, a
    /// review escalates); null when nothing is due.
    pub deadline: Option<String>,
    /// When the case entered its state: how long it has waited.
    pub waiting_since: String,
    pub updated_at: String,
}
