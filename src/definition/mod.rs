//! Workflow definitions: the TOML files in `workflows/` that administrators edit.
//!
//! A file is parsed ([`raw`]), checked and compiled ([`check`]) into a [`Definition`]:
//! named states, transitions, forms, claims, timers and effects, with every condition
//! compiled as a CEL program. A definition is identified by the SHA-256 of its source;
//! cases pin that hash, so publishing an edit never changes a running case.
//!
//! This module knows nothing of the database or HTTP.

mod check;
pub mod duration;
pub mod graph;
mod raw;
mod registry;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::Path,
    sync::Arc,
};

use chrono::Duration;
use serde::Serialize;

pub use check::FIELD_KINDS;
pub use registry::Registry;

/// What a definition may name that lives outside it, as it exists: the mails of the
/// templates folder (`templates/email/`, every mail with its three parts) and its Typst
/// templates (`templates/agreement/*.typ`). The checker accepts exactly these, so a new
/// template is usable as soon as its files are there, and a missing one is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub mail_templates: BTreeSet<String>,
    pub document_templates: BTreeSet<String>,
    /// What each document template prints, by template name (see [`TemplateReads`]).
    pub document_reads: BTreeMap<String, TemplateReads>,
}

/// What a Typst template reads of the document data, as its source says: the keys of
/// each section (`field("terms", "position")`: `terms` → `position`) and the case-data
/// paths it prints whole (`case-field("termination", "reason")`). The checker holds a
/// definition's mappings to them, so a renamed field cannot print blank unnoticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateReads {
    pub sections: BTreeMap<String, BTreeSet<String>>,
    pub case_paths: BTreeSet<String>,
}

/// One problem found in a definition file, pointing at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// All the problems of one file (the checker reports every one it finds, not the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct DefinitionError {
    pub problems: Vec<Problem>,
}

/// The identity a platform token carries (R19: the platform does identity), and the
/// engine's own `system`. This is all Rust knows of who acts; the roles a workflow names
/// in `by` and mail `to` are declared in its definition ([`RoleDef`]), each saying which
/// identity may act as it and over which cases ([`RoleScope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Student,
    Employer,
    SchoolReviewer,
    SchoolAdmin,
    PlatformAdmin,
    System,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Student,
        Role::Employer,
        Role::SchoolReviewer,
        Role::SchoolAdmin,
        Role::PlatformAdmin,
        Role::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Employer => "employer",
            Role::SchoolReviewer => "school_reviewer",
            Role::SchoolAdmin => "school_admin",
            Role::PlatformAdmin => "platform_admin",
            Role::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// What people call the role, for messages.
    pub fn title(self) -> Message {
        let (zh, en) = match self {
            Role::Student => ("学生", "student"),
            Role::Employer => ("用人单位", "employer"),
            Role::SchoolReviewer => ("学校审核员", "school reviewer"),
            Role::SchoolAdmin => ("学校管理员", "school administrator"),
            Role::PlatformAdmin => ("平台管理员", "platform administrator"),
            Role::System => ("系统", "system"),
        };
        Message {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in role of the engine itself (timers fire its transitions); never declared.
pub const SYSTEM_ROLE: &str = "system";

/// A role a definition declares (`[roles.NAME]`): its title, the token identity that may
/// act as it, and its scope — which cases a holder of that identity acts on in this role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleDef {
    pub name: String,
    pub title: Message,
    pub identity: Role,
    pub scope: RoleScope,
}

/// Over which cases a declared role acts, judged from the token and the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleScope {
    /// The case's student is the token's party.
    Student,
    /// The case's employer is the token's party.
    Employer,
    /// Staff of the student's school serving the whole school (a token without a college).
    School,
    /// Staff of the student's school and college (二级学院): the token's `college` is the
    /// student's college.
    College,
    /// Every case (the platform's administrators).
    Platform,
}

impl RoleScope {
    pub const ALL: [RoleScope; 5] = [
        RoleScope::Student,
        RoleScope::Employer,
        RoleScope::School,
        RoleScope::College,
        RoleScope::Platform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleScope::Student => "student",
            RoleScope::Employer => "employer",
            RoleScope::School => "school",
            RoleScope::College => "college",
            RoleScope::Platform => "platform",
        }
    }

    /// The scopes an identity's token can reach: a party's own cases for students and
    /// employers, the school (or one college of it) for school staff, all for the platform.
    pub fn fits(self, identity: Role) -> bool {
        match identity {
            Role::Student => self == RoleScope::Student,
            Role::Employer => self == RoleScope::Employer,
            Role::SchoolReviewer | Role::SchoolAdmin => matches!(self, RoleScope::School | RoleScope::College),
            Role::PlatformAdmin | Role::System => self == RoleScope::Platform,
        }
    }
}

impl RoleDef {
    /// The engine's own role.
    pub fn system() -> RoleDef {
        RoleDef {
            name: SYSTEM_ROLE.into(),
            title: Role::System.title(),
            identity: Role::System,
            scope: RoleScope::Platform,
        }
    }
}

/// A message shown to people, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub zh: String,
    pub en: String,
}

impl Message {
    /// A title as definitions write it, `中文 / English`, split in two; a title in one
    /// language serves both.
    pub fn from_title(title: &str) -> Message {
        match title.split_once(" / ") {
            Some((zh, en)) => Message {
                zh: zh.trim().into(),
                en: en.trim().into(),
            },
            None => Message {
                zh: title.trim().into(),
                en: title.trim().into(),
            },
        }
    }
}

/// A compiled CEL condition, with its source kept for messages.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    pub program: Arc<cel::Program>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// A compiled workflow definition.
#[derive(Debug)]
pub struct Definition {
    pub name: String,
    pub title: String,
    pub title_en: Option<String>,
    /// SHA-256 of the source, hex: the version a case pins.
    pub hash: String,
    pub source: String,
    pub destination: Option<String>,
    /// Where the destination record's unit and location come from in the case data.
    pub destination_record: DestinationRecordMap,
    /// What mail templates receive from the case data (`[mail_context]`), in name order.
    pub mail_context: Vec<ContextEntry>,
    /// What rendered documents print as their terms (`[document_context]`), in name order;
    /// empty for a version stored before the table existed (its documents get the case
    /// data's `terms` whole, as they did then).
    pub document_context: Vec<ContextEntry>,
    /// Parties typed into the case (`[typed_parties]`): by party (`employer`, `student`,
    /// `school`), the data path of the object its fields are kept under, which documents
    /// and mail read over the party's synced record.
    pub typed_parties: BTreeMap<String, String>,
    /// The form field of kind `deadline` (at most one): what mail counts down to.
    pub deadline_field: Option<String>,
    /// The form field of kind `destination` (at most one): a registration's category,
    /// unit and place, which the destination record is written from.
    pub destination_field: Option<String>,
    /// The roles its transitions and mail name (`system` is built in, not declared).
    pub roles: BTreeMap<String, RoleDef>,
    pub params: BTreeMap<String, toml::Value>,
    pub forms: BTreeMap<String, Form>,
    pub claims: BTreeMap<String, Claim>,
    pub uploads: BTreeMap<String, UploadSlot>,
    pub documents: BTreeMap<String, DocumentRule>,
    pub start: Transition,
    pub states: BTreeMap<String, State>,
    pub transitions: Vec<Transition>,
}

/// The data paths the destination record is written from (`[destination_record]`), so
/// that no Rust reads a field of a workflow's data by name: a renamed field is followed
/// by the mapping, or refused by the checker.
#[derive(Debug, Clone, Default)]
pub struct DestinationRecordMap {
    /// The unit's name; `None`: the employer party's name.
    pub unit: Option<String>,
    pub location: Option<String>,
    /// The position (岗位), shown in case lists beside the unit.
    pub position: Option<String>,
}

impl DestinationRecordMap {
    /// The text at a mapped path (`terms.work_place`) of a case's data, if any.
    pub fn read(path: &Option<String>, data: &serde_json::Value) -> Option<String> {
        data_at(path.as_deref()?, data)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    }
}

impl TemplateReads {
    /// Reads a template's source for the calls that print data: `field("sec", "key")`
    /// and `flag("sec", "key")` (a section's key), `case-field("a", "b")` (a case-data
    /// path). Comments are skipped; a call whose arguments are not all string literals
    /// names nothing fixed and is left out.
    pub fn of_source(source: &str) -> TemplateReads {
        let mut reads = TemplateReads::default();
        for line in source.lines() {
            let code = without_comment(line);
            for (at, _) in code.match_indices('(') {
                let callee: String = code[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let Some(args) = string_arguments(&code[at + 1..]) else {
                    continue;
                };
                match (callee.as_str(), args.as_slice()) {
                    ("field" | "flag", [section, key]) => {
                        reads.sections.entry(section.clone()).or_default().insert(key.clone());
                    }
                    ("case-field", [_, ..]) => {
                        reads.case_paths.insert(args.join("."));
                    }
                    _ => {}
                }
            }
        }
        reads
    }
}

/// A Typst line up to its `//` comment (one inside a string literal is text).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The arguments of a call when every one is a plain string literal (`"a", "b")`).
fn string_arguments(rest: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut rest = rest.trim_start();
    loop {
        let body = rest.strip_prefix('"')?;
        let end = body.find('"')?;
        let arg = &body[..end];
        if arg.contains('\\') {
            return None;
        }
        args.push(arg.to_string());
        rest = body[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else {
            return rest.starts_with(')').then_some(args);
        }
    }
}

/// The value at a dotted data path (`terms.work_place`) of a case's data.
pub fn data_at<'a>(path: &str, data: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
    data.pointer(&format!("/{}", path.replace('.', "/")))
}

/// The names the engine itself gives every mail's context; `[mail_context]` cannot reuse them.
pub const MAIL_CONTEXT_BUILT_IN: &[&str] = &[
    "case_id",
    "case_url",
    "workflow_title",
    "student_name",
    "employer_name",
    "school_name",
    "deadline",
    "hours_left",
    "agreement_number",
    "data",
    "submitted_at",
    "waited_hours",
    "recipient_name",
    "recipient_role",
    "platform_name",
    "level",
    "transition_title",
    "transition_title_en",
    "changes",
];

/// A value mail templates receive, read from the case data (`[mail_context]`), so no Rust
/// names a data path of a workflow: a renamed field is followed here or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// The name templates print (`position`).
    pub name: String,
    /// Data paths, dotted; the first that holds a value gives it.
    pub paths: Vec<String>,
    /// Given when none does (absent: the empty text).
    pub default: Option<String>,
}

impl ContextEntry {
    /// The value for a case's data.
    pub fn value(&self, data: &serde_json::Value) -> serde_json::Value {
        self.paths
            .iter()
            .filter_map(|path| data_at(path, data))
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| serde_json::Value::String(self.default.clone().unwrap_or_default()))
    }
}

#[derive(Debug, Clone)]
pub struct Form {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// Where the value is kept in the case data; dots nest.
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub label: Option<String>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    #[serde(skip)]
    pub default_after: Option<Duration>,
    #[serde(skip)]
    pub max_after: Option<Duration>,
}

/// A slot people upload files into (a stamped scan, proofs).
#[derive(Debug, Clone, Serialize)]
pub struct UploadSlot {
    pub name: String,
    pub title: String,
    pub max_files: usize,
}

/// A document slot's rule: when the student and the employer may read it and, for a
/// rendered slot, the template that fills it.
#[derive(Debug, Clone)]
pub struct DocumentRule {
    pub title: String,
    /// `None`: readable in every state.
    pub readable_in: Option<Vec<String>>,
    pub template: Option<Template>,
}

/// How a rendered slot is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The Typst file stem in the templates folder (`agreement` → `agreement.typ`).
    pub name: String,
    /// The number of pages it must lay out.
    pub pages: usize,
    /// With the 预览 / PREVIEW watermark.
    pub preview: bool,
}

impl DocumentRule {
    /// The slots every definition may render without declaring them: the agreement
    /// and its watermarked preview (both `agreement.typ`, two pages).
    pub fn builtin(slot: &str) -> Option<DocumentRule> {
        let (title, preview) = match slot {
            "agreement" => ("就业协议书 / employment agreement", false),
            "agreement_preview" => ("就业协议书预览 / agreement preview", true),
            _ => return None,
        };
        Some(DocumentRule {
            title: title.into(),
            readable_in: None,
            template: Some(Template {
                name: "agreement".into(),
                pages: 2,
                preview,
            }),
        })
    }
}

/// What a state means for the agreement a case issued (协议书), as `/verify` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    /// Not (yet) approved: generated, being signed or under review.
    #[default]
    Pending,
    /// Sent back by the school: not in force until it is submitted and approved again.
    Returned,
    /// Approved and binding.
    InForce,
    /// Ended by termination (解约).
    Terminated,
    /// Never took effect (cancelled, rejected for good).
    Void,
}

impl AgreementStatus {
    pub const ALL: [AgreementStatus; 5] = [
        AgreementStatus::Pending,
        AgreementStatus::Returned,
        AgreementStatus::InForce,
        AgreementStatus::Terminated,
        AgreementStatus::Void,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgreementStatus::Pending => "pending",
            AgreementStatus::Returned => "returned",
            AgreementStatus::InForce => "in_force",
            AgreementStatus::Terminated => "terminated",
            AgreementStatus::Void => "void",
        }
    }
}

/// A key that at most one case may hold at a time, e.g. `destination:{student}`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub name: String,
    /// The pattern; `{student}`, `{employer}`, `{school}` and `{case}` are filled in.
    pub key: String,
    pub conflict: Message,
}

#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub title: String,
    pub terminal: bool,
    /// Cases here wait for the school's review.
    pub review: bool,
    pub agreement: AgreementStatus,
    /// Mail sent on entering the state.
    pub mails: Vec<Mail>,
    /// Names of [`Claim`]s held while the case is in this state.
    pub claims: Vec<String>,
    pub timers: Vec<Timer>,
    pub on_enter: Vec<Effect>,
}

#[derive(Debug, Clone)]
pub struct Timer {
    pub due: TimerDue,
    /// Subtracted from the due time: a reminder `before` a deadline.
    pub before: Option<Duration>,
    pub action: TimerAction,
}

/// What a due timer does.
#[derive(Debug, Clone)]
pub enum TimerAction {
    /// Fire this `system` transition.
    Fire(String),
    /// Send a mail (a reminder), and with `escalate` record an escalation.
    Mail(Mail),
}

/// A mail to the holders of some roles on the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Mail {
    pub template: String,
    /// Declared role names.
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<u8>,
}

impl Timer {
    /// The transition it fires, if it fires one.
    pub fn fires(&self) -> Option<&str> {
        match &self.action {
            TimerAction::Fire(t) => Some(t),
            TimerAction::Mail(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum TimerDue {
    /// A duration after entering the state.
    After(Duration),
    /// The date-time kept in this data field.
    At(String),
}

/// Work caused by entering a state or firing a transition, named in the definition and
/// implemented in Rust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Write the student's graduation destination record (R2), in the same transaction;
    /// a record in force before it is kept as `replaced`.
    RecordDestination,
    /// Withdraw the destination record this case wrote (R18): kept as `withdrawn`.
    WithdrawDestination,
    /// Issue the agreement number (协议书编号) and verification code, once per case.
    AssignAgreementNumber,
    /// Render a document slot (PDF and page images) from its template, by a job.
    Render(String),
}

impl Effect {
    /// The effects named by `effect = "…"`; rendering is `render = "slot"`, and the
    /// two older names `render_agreement` / `render_preview` stand for the built-in slots.
    pub const NAMES: [&'static str; 5] = [
        "record_destination",
        "withdraw_destination",
        "assign_agreement_number",
        "render_agreement",
        "render_preview",
    ];

    pub fn named(name: &str) -> Option<Effect> {
        Some(match name {
            "record_destination" => Effect::RecordDestination,
            "withdraw_destination" => Effect::WithdrawDestination,
            "assign_agreement_number" => Effect::AssignAgreementNumber,
            "render_agreement" => Effect::Render("agreement".into()),
            "render_preview" => Effect::Render("agreement_preview".into()),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Transition {
    pub name: String,
    pub title: String,
    pub from: Vec<String>,
    /// `None`: the case stays in its state (an amendment, say).
    pub to: Option<String>,
    /// Declared role names (or `system`).
    pub by: Vec<String>,
    pub input: Vec<InputRef>,
    pub guards: Vec<Guard>,
    /// Mail sent when it fires.
    pub notify: Vec<Mail>,
    /// Effects of firing it, before the target state's `on_enter`.
    pub effects: Vec<Effect>,
    /// Data moved when it fires: (from, to).
    pub moves: Vec<(String, String)>,
    /// The data field recording the role that fired it.
    pub record_actor: Option<String>,
    /// Fired by uploading into this slot.
    pub upload: Option<String>,
    /// Fired (recorded) by downloading this document slot.
    pub download: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InputRef {
    pub form: String,
    pub when: Option<Expr>,
}

#[derive(Debug, Clone)]
pub struct Guard {
    pub when: Expr,
    pub message: Message,
}

impl Definition {
    /// Parses and checks one file against what exists (`catalog`). `file` names it in problems.
    pub fn parse(file: &str, source: &str, catalog: &Catalog) -> Result<Definition, DefinitionError> {
        check::compile(file, source, catalog, check::Undeclared::Refused)
    }

    /// A version read back from the database. One stored before definitions declared their
    /// roles (no `[roles]`) runs with the roles its `by` and `to` named then — the platform's
    /// identities, each over the cases that identity reaches — so its live cases keep
    /// running; a publish or a file is always checked with [`Definition::parse`].
    pub fn parse_stored(file: &str, source: &str, catalog: &Catalog) -> Result<Definition, DefinitionError> {
        check::compile(file, source, catalog, check::Undeclared::StoredBefore)
    }

    pub fn load(path: &Path, catalog: &Catalog) -> Result<Definition, DefinitionError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| DefinitionError {
            problems: vec![Problem {
                file: file.clone(),
                line: 0,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::parse(&file, &source, catalog)
    }

    pub fn transition(&self, name: &str) -> Option<&Transition> {
        if self.start.name == name {
            return Some(&self.start);
        }
        self.transitions.iter().find(|t| t.name == name)
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    /// The transitions that may leave `state`, in file order.
    pub fn transitions_from<'a>(&'a self, state: &'a str) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions
            .iter()
            .filter(move |t| t.from.iter().any(|s| s == state))
    }

    /// What the case data holds of `party` typed in (`[typed_parties]`), if the
    /// definition keeps one and the case has it.
    pub fn typed_party<'a>(
        &self,
        party: &str,
        data: &'a serde_json::Value,
    ) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        data_at(self.typed_parties.get(party)?, data)?.as_object()
    }

    /// A party's synced record overlaid with what the case holds of it typed in.
    pub fn party_as_typed(
        &self,
        party: &str,
        record: &serde_json::Value,
        data: &serde_json::Value,
    ) -> serde_json::Value {
        let mut out = record.as_object().cloned().unwrap_or_default();
        if let Some(typed) = self.typed_party(party, data) {
            out.extend(typed.clone());
        }
        serde_json::Value::Object(out)
    }

    /// Whether a student or employer may read documents of `slot` in `state`.
    pub fn readable_by_parties(&self, slot: &str, state: &str) -> bool {
        self.documents
            .get(slot)
            .and_then(|rule| rule.readable_in.as_ref())
            .is_none_or(|states| states.iter().any(|s| s == state))
    }

    /// The rule of a document slot: declared, or built in (the agreement and its preview).
    pub fn document(&self, slot: &str) -> Option<DocumentRule> {
        let builtin = DocumentRule::builtin(slot);
        match (self.documents.get(slot), builtin) {
            (Some(rule), builtin) => Some(DocumentRule {
                template: rule.template.clone().or(builtin.and_then(|b| b.template)),
                ..rule.clone()
            }),
            (None, builtin) => builtin,
        }
    }

    /// A declared role, or the built-in `system`.
    pub fn role(&self, name: &str) -> Option<RoleDef> {
        if name == SYSTEM_ROLE {
            return Some(RoleDef::system());
        }
        self.roles.get(name).cloned()
    }

    /// The declared roles among `by` whose identity is `identity`.
    pub fn roles_of<'a>(&'a self, by: &'a [String], identity: Role) -> impl Iterator<Item = RoleDef> + 'a {
        by.iter()
            .filter_map(|name| self.role(name))
            .filter(move |r| r.identity == identity)
    }

    /// The title of the declared role an actor acted in when it fired `transition`, from
    /// its history label (`school_reviewer@10212/计算机学院`): of the roles the transition
    /// names, the one of the label's identity whose scope fits it — a college's staff act
    /// in college-scoped roles only, other staff in the others.
    pub fn acted_as(&self, transition: &str, label: &str) -> Option<Message> {
        let (identity, rest) = label.split_once([':', '@']).unwrap_or((label, ""));
        let identity = Role::parse(identity)?;
        let college = identity != Role::Student && identity != Role::Employer && rest.contains('/');
        let t = self.transition(transition)?;
        self.roles_of(&t.by, identity)
            .find(|r| (r.scope == RoleScope::College) == college)
            .map(|r| r.title)
    }

    /// The titles of the roles named, for messages.
    pub fn role_titles(&self, by: &[String]) -> Vec<Message> {
        by.iter()
            .map(|name| {
                self.role(name).map(|r| r.title).unwrap_or_else(|| Message {
                    zh: name.clone(),
                    en: name.clone(),
                })
            })
            .collect()
    }

    /// Whether a transition is fired only by the engine, on a timer.
    pub fn by_system(t: &Transition) -> bool {
        t.by.len() == 1 && t.by[0] == SYSTEM_ROLE
    }

    /// A field of any form, by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.forms.values().flat_map(|f| &f.fields).find(|f| f.name == name)
    }

    /// A param as a duration (checked at load for the params used as durations).
    pub fn duration_param(&self, name: &str) -> Option<Duration> {
        self.params.get(name).and_then(|v| v.as_str()).and_then(duration::parse)
    }

    /// The params as JSON, for expressions (`params.invitation_valid_for`).
    pub fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::TemplateReads;

    #[test]
    fn a_templates_reads_are_its_literal_calls_outside_comments() {
        let source = r#"
// field("comment", "ignored") and case-field("not", "this")
#let field(sec, key) = printable(section(sec).at(key, default: none))
L[单位名称], V(fitted(field("employer", "name"), 36)), L[x], V(field( "terms" ,"position" ))
#let ok = flag("employer", "receives_archive") // field("after", "code")
#let reason = case-field("termination", "reason")
#let url = "https://example.org/x" + field("school", "phone")
#let dynamic = field(sec, "key")
"#;
        let reads = TemplateReads::of_source(source);
        let keys = |s: &str| reads.sections.get(s).map(|k| k.iter().cloned().collect::<Vec<_>>());
        assert_eq!(keys("employer").unwrap(), ["name", "receives_archive"]);
        assert_eq!(keys("terms").unwrap(), ["position"]);
        assert_eq!(keys("school").unwrap(), ["phone"]);
        assert_eq!(keys("comment"), None);
        assert_eq!(keys("after"), None);
        assert_eq!(
            reads.case_paths.iter().cloned().collect::<Vec<_>>(),
            ["termination.reason"]
        );
    }
}
