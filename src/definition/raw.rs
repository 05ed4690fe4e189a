//! The workflow file exactly as written: serde structs that mirror the TOML, with the
//! source span of every item an error may point at. Nothing here is checked; see
//! [`super::check`] for that.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefinition {
    pub name: Spanned<String>,
    pub title: String,
    pub title_en: Option<String>,
    /// Destination category code written by `record_destination`.
    pub destination: Option<Spanned<String>>,
    /// The roles its transitions and mail name: who may act as each, over which cases.
    #[serde(default)]
    pub roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub forms: BTreeMap<String, Spanned<RawForm>>,
    #[serde(default)]
    pub claims: BTreeMap<String, Spanned<RawClaim>>,
    /// Files people upload, by slot.
    #[serde(default)]
    pub uploads: BTreeMap<String, Spanned<RawUpload>>,
    /// Who may read rendered documents when, by slot.
    #[serde(default)]
    pub documents: BTreeMap<String, Spanned<RawDocumentRule>>,
    /// Where the destination record `record_destination` writes takes its unit and
    /// location from (data paths), when no registration names them.
    pub destination_record: Option<Spanned<RawDestinationRecord>>,
    /// What mail templates receive from the case data: a name and the data path (or
    /// paths, the first present) it is read from.
    #[serde(default)]
    pub mail_context: BTreeMap<String, Spanned<RawContextEntry>>,
    /// What rendered documents print as their terms (`terms.NAME` in the Typst templates),
    /// read from the case data like `mail_context`.
    #[serde(default)]
    pub document_context: BTreeMap<String, Spanned<RawContextEntry>>,
    /// Parties typed into the case rather than synced by the platform (an offline
    /// agreement's 甲方): by party (`employer`), the data path its fields are kept under.
    /// Required (empty when every party is synced); a version stored before the table
    /// existed has none.
    pub typed_parties: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub start: Spanned<RawTransition>,
    #[serde(default)]
    pub states: BTreeMap<String, Spanned<RawState>>,
    #[serde(default)]
    pub transitions: Vec<Spanned<RawTransition>>,
}

/// `[roles.college_reviewer]`: `title = "二级学院审核员 / college reviewer"`,
/// `identity = "school_reviewer"` (the token role that may act as it), `scope = "college"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub title: String,
    pub identity: Spanned<String>,
    pub scope: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForm {
    pub fields: Vec<Spanned<RawField>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    pub label: Option<String>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    /// `deadline` fields: the param giving the default distance from now.
    pub default_after: Option<String>,
    /// `deadline` fields: the param giving the longest distance from now.
    pub max_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    pub title: String,
    #[serde(default = "one")]
    pub max_files: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocumentRule {
    pub title: Option<String>,
    /// States in which the student and the employer may read it (school staff and
    /// platform admins always may); absent: in every state.
    pub readable_in: Option<Vec<Spanned<String>>>,
    /// A rendered slot: the Typst template (`templates/agreement/NAME.typ`) that fills it.
    pub template: Option<Spanned<String>>,
    /// How many pages the template must lay out (a longer text is an error, not a third page).
    pub pages: Option<usize>,
    /// Rendered with the 预览 / PREVIEW watermark.
    #[serde(default)]
    pub preview: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestinationRecord {
    /// The data path of the unit's name; absent: the employer party's name.
    pub unit: Option<Spanned<String>>,
    /// The data path of the place (of work).
    pub location: Option<Spanned<String>>,
    /// The data path of the position (岗位), for case lists.
    pub position: Option<Spanned<String>>,
    /// The field of kind `destination` the record is written from, when several are
    /// declared (absent: the one no `moves` moves away).
    pub registration: Option<Spanned<String>>,
}

/// `position = "terms.position"`, `reason = ["review.reason", "decline_reason"]`, or
/// `position = { from = "terms.position", default = "未注明 / not specified" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawContextEntry {
    Paths(OneOrMany),
    Full(RawContextFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContextFull {
    pub from: OneOrMany,
    /// The text given when no path holds a value.
    pub default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaim {
    pub key: String,
    pub conflict: RawMessage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub title: Option<String>,
    #[serde(default)]
    pub terminal: bool,
    /// Cases here wait for the school's review (they count in the daily digest).
    #[serde(default)]
    pub review: bool,
    /// What the state means for the agreement the case issued: `pending`, `in_force`,
    /// `terminated` or `void` (what `/verify` reports).
    pub agreement: Option<Spanned<String>>,
    #[serde(default)]
    pub claims: Vec<String>,
    /// Claims that entering this state lets go of on purpose, although a later state takes
    /// them again (a returned agreement frees the student until they sign again).
    #[serde(default)]
    pub releases: Vec<Spanned<String>>,
    #[serde(default)]
    pub timers: Vec<Spanned<RawTimer>>,
    #[serde(default)]
    pub on_enter: Vec<Spanned<RawEffect>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimer {
    /// A param holding a duration, counted from entering the state.
    pub after: Option<String>,
    /// A date-time field of the case data (e.g. the invitation's `deadline`).
    pub at: Option<String>,
    /// A duration (or a param holding one) to subtract: a reminder before a deadline.
    pub before: Option<String>,
    /// The `system` transition fired when the timer is due…
    pub fire: Option<String>,
    /// …or the mail sent when it is due (a reminder, an escalation).
    pub email: Option<String>,
    pub to: Option<OneOrMany>,
    /// Escalation level recorded in the history (1 = school admin, 2 = platform …).
    pub escalate: Option<u8>,
}

/// An `on_enter` (or transition `effects`) entry: a named effect, a document to render,
/// or a mail to roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEffect {
    pub effect: Option<String>,
    /// A rendered document slot to (re)render, by a job.
    pub render: Option<String>,
    pub email: Option<String>,
    pub to: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    pub email: String,
    pub to: OneOrMany,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransition {
    pub name: Spanned<String>,
    pub title: Option<String>,
    #[serde(default)]
    pub from: Vec<Spanned<String>>,
    /// The target state; absent means the case stays where it is.
    pub to: Option<Spanned<String>>,
    pub by: Spanned<OneOrMany>,
    #[serde(default)]
    pub input: Vec<Spanned<RawInput>>,
    #[serde(default)]
    pub guards: Vec<Spanned<RawGuard>>,
    /// Mail sent when the transition fires.
    #[serde(default)]
    pub notify: Vec<Spanned<RawMail>>,
    /// Effects (and mail) of this transition, whatever state it enters; the target
    /// state's `on_enter` runs only for the ways in that it suits.
    #[serde(default)]
    pub effects: Vec<Spanned<RawEffect>>,
    /// Data moved when the transition fires (an approved correction's new values
    /// becoming the record's values).
    #[serde(default)]
    pub moves: Vec<Spanned<RawMove>>,
    /// A data field that records who fired the transition (the role), for guards such as
    /// "the other party consents".
    pub record_actor: Option<Spanned<String>>,
    /// The transition is fired by uploading a file into this slot.
    pub upload: Option<Spanned<String>>,
    /// The transition is fired (recorded) when the actor downloads this document slot.
    pub download: Option<Spanned<String>>,
}

/// `{ from = "correction.destination", to = "destination" }`: the value at `from` replaces
/// the value at `to`, and `from` is emptied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMove {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub form: String,
    /// CEL: the form is asked for only when this holds.
    pub when: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// CEL: the transition is enabled only when this holds.
    pub when: String,
    /// Why it is disabled, shown to the actor.
    pub message: RawMessage,
}
