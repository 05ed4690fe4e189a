//! The engine: what a transition does, and doing it.
//!
//! [`decide`] is the pure core. Given a definition, a case, an actor, a transition and
//! its input, it either refuses (with the reason) or returns an [`Outcome`]: the next
//! state and data, the claims to take and release, the timers to set and the effects
//! to carry out — as data, with no I/O. [`actions`] uses the same checks to tell an
//! actor which transitions they may fire and why the others are disabled.
//!
//! [`service::Engine`] runs an outcome in one database transaction through [`crate::store`].

pub mod documents;
pub mod effects;
pub mod evidence;
pub mod exports;
mod expr;
pub mod foreground;
pub mod health;
pub mod input;
pub mod notify;
pub mod service;
mod statistics;
pub mod versions;
pub mod view;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{
    definition::{
        Definition, Effect, Field, Form, Mail, Message, Role, RoleDef, RoleScope, TimerAction, TimerDue, Transition,
    },
    domain::FieldError,
};
pub use expr::Scope;

/// Who is acting: the identity the token carries and, for people, their party (and
/// school for school staff, and the college for staff of one college).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub role: Role,
    pub party: Option<String>,
    pub school: Option<String>,
    /// School staff of one college (二级学院): they reach only its students' cases.
    pub college: Option<String>,
    /// The person acting (the token's `sub` and name); `None` for the system and for
    /// tokens minted before tokens named people, which act as their role.
    pub person: Option<Person>,
}

/// The person behind a token: the platform's user id and the name to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Person {
    pub sub: String,
    pub name: Option<String>,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            role: Role::System,
            party: None,
            school: None,
            college: None,
            person: None,
        }
    }

    /// The label with the person, when there is one: `school_reviewer@10212#u42`. Keys
    /// that belong to whoever acted (idempotency, who added a document) use this.
    pub fn who(&self) -> String {
        match &self.person {
            Some(p) => format!("{}#{}", self.label(), p.sub),
            None => self.label(),
        }
    }

    /// A stable label for history and idempotency keys: `student:S001`, `school_reviewer@10212`,
    /// `school_reviewer@10212/计算机学院` for staff of one college.
    pub fn label(&self) -> String {
        match (&self.party, &self.school, &self.college) {
            (Some(p), _, _) => format!("{}:{p}", self.role),
            (None, Some(s), Some(c)) => format!("{}@{s}/{c}", self.role),
            (None, Some(s), None) => format!("{}@{s}", self.role),
            (None, None, _) => self.role.to_string(),
        }
    }
}

/// How history, the signing record and exports show who acted: `张老师（学校审核员）`,
/// the person's id when the token gave no name, or the role alone for older tokens.
pub fn shown_as(role_label: &str, sub: Option<&str>, name: Option<&str>) -> String {
    let role = role_label.split([':', '@']).next().unwrap_or_default();
    let title = Role::parse(role)
        .map(|r| r.title().zh)
        .unwrap_or_else(|| role.to_string());
    shown_with(title, sub, name)
}

/// As [`shown_as`], titled with the declared role the actor acted in when the definition
/// says which (`二级学院审核员` rather than the identity's `学校审核员`).
pub fn shown_in(def: &Definition, transition: &str, role_label: &str, sub: Option<&str>, name: Option<&str>) -> String {
    match def.acted_as(transition, role_label) {
        Some(title) => shown_with(title.zh, sub, name),
        None => shown_as(role_label, sub, name),
    }
}

fn shown_with(title: String, sub: Option<&str>, name: Option<&str>) -> String {
    match name.or(sub) {
        Some(who) => format!("{who}（{title}）"),
        None => title,
    }
}

/// The facts of a case the core decides on.
#[derive(Debug, Clone)]
pub struct CaseRef {
    pub id: String,
    pub state: String,
    pub data: Value,
    pub student_id: String,
    pub employer_id: Option<String>,
    pub school_id: String,
    /// The student's college (院系), from the student's record.
    pub college: Option<String>,
    /// Current documents counted by slot (uploads and renders), for conditions.
    pub documents: Value,
    /// The names of the definition's claims whose key another case holds (R3: a student
    /// signed elsewhere), for conditions and disabled actions.
    pub held_elsewhere: Vec<String>,
}

/// The parties' reference records, as JSON (`Value::Null` when a case has none).
#[derive(Debug, Clone, Default)]
pub struct Parties {
    pub student: Value,
    pub employer: Value,
    pub school: Value,
}

impl Parties {
    /// The employer's name as the case knows it: typed into the case where the definition
    /// maps the unit (`[destination_record] unit`, offline), else the synced employer
    /// record's (online).
    pub fn employer_name(&self, unit: &Option<String>, data: &Value) -> String {
        crate::definition::DestinationRecordMap::read(unit, data).unwrap_or_else(|| party_name(&self.employer))
    }
}

/// The `name` of a party record (empty when absent).
pub fn party_name(record: &Value) -> String {
    record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Why a transition cannot be fired. The HTTP layer maps each to a status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("unknown transition {0}")]
    UnknownTransition(String),
    #[error("this case is not yours")]
    NotYourCase,
    #[error("{transition} is for {allowed:?}, not {role}")]
    WrongRole {
        transition: String,
        /// The transition's title, for people.
        title: Message,
        role: Role,
        /// The titles of the declared roles that may fire it.
        allowed: Vec<Message>,
    },
    #[error("{transition} is not allowed in state {state}")]
    NotInState {
        transition: String,
        state: String,
        /// The titles of the transition and the state, for people (boxed: a refusal
        /// travels in every `Result` of the engine and should stay small).
        titles: Box<StepTitles>,
    },
    #[error("{}", .0.en)]
    Guard(Message),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("definition error: {0}")]
    Definition(String),
}

/// The titles of a transition and of the state that refused it.
#[derive(Debug, Clone)]
pub struct StepTitles {
    pub transition: Message,
    pub state: Message,
}

/// What firing a transition does, for the store to commit.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub transition: String,
    pub from: Option<String>,
    pub to: String,
    /// True when the case enters a (possibly the same) state anew: claims, timers and
    /// effects of the old state end and those of the new state begin.
    pub enters: bool,
    pub data: Value,
    /// The normalised input, for the history.
    pub input: Value,
    /// Claims to release and to take: (key, claim name).
    pub release: Vec<String>,
    pub take: Vec<(String, String)>,
    pub timers: Vec<NewTimer>,
    pub effects: Vec<Effect>,
    /// Mail to send: the transition's `notify` and, on entering, the state's `on_enter` mail.
    pub mails: Vec<Mail>,
    /// The values the transition changed, old beside new, for the history and mail.
    pub changes: Vec<Change>,
    /// A migration onto the definition it is applied with: the case pins that version
    /// and keeps the time it entered its state (timers are recomputed from it).
    pub migration: bool,
}

/// One value a transition changed (an amended term, a corrected destination).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// The data field, dotted (`terms.position`).
    pub field: String,
    /// The field's label in the definition (`工作岗位 / position`).
    pub label: String,
    /// Any JSON value (absent before: `null`).
    #[schema(value_type = Value)]
    pub old: Value,
    #[schema(value_type = Value)]
    pub new: Value,
}

#[derive(Debug, Clone)]
pub struct NewTimer {
    pub action: TimerAction,
    pub due: DateTime<Utc>,
}

/// A transition the actor may see on a case, enabled or not (with the reason).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Action {
    pub name: String,
    pub title: String,
    pub enabled: bool,
    /// Why it is disabled, in both languages.
    #[schema(value_type = Option<Object>)]
    pub reason: Option<Message>,
    /// The fields it asks for now (forms whose condition holds).
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<Field>,
}

/// Whether `actor` is a party to the case: a student their own, an employer its
/// invitations, school staff their students' (staff of one college, its students'),
/// platform admins all.
pub fn is_party(case: &CaseRef, actor: &Actor) -> bool {
    match actor.role {
        Role::Student => actor.party.as_deref() == Some(case.student_id.as_str()),
        Role::Employer => actor.party.is_some() && actor.party == case.employer_id,
        Role::SchoolReviewer | Role::SchoolAdmin => {
            actor.school.as_deref() == Some(case.school_id.as_str())
                && actor.college.as_ref().is_none_or(|c| case.college.as_ref() == Some(c))
        }
        Role::PlatformAdmin | Role::System => true,
    }
}

/// Whether `actor` may act on `case` as the declared `role`: the token's identity is the
/// role's, and the case lies in the role's scope.
pub fn acts_as(role: &RoleDef, case: &CaseRef, actor: &Actor) -> bool {
    if role.identity != actor.role || !is_party(case, actor) {
        return false;
    }
    match role.scope {
        RoleScope::Student => actor.party.as_deref() == Some(case.student_id.as_str()),
        RoleScope::Employer => actor.party.is_some() && actor.party == case.employer_id,
        // The whole school's step is for staff serving the whole school: a college's
        // reviewer does not approve at the school's level.
        RoleScope::School => actor.college.is_none() && actor.school.as_deref() == Some(case.school_id.as_str()),
        RoleScope::College => {
            actor.school.as_deref() == Some(case.school_id.as_str())
                && actor.college.is_some()
                && actor.college == case.college
        }
        RoleScope::Platform => true,
    }
}

/// Whether `actor` may fire `t` on `case` in one of the roles it names.
pub fn may_fire(def: &Definition, t: &Transition, case: &CaseRef, actor: &Actor) -> bool {
    def.roles_of(&t.by, actor.role).any(|r| acts_as(&r, case, actor))
}

/// Fills a claim key's placeholders from the case.
pub fn claim_key(pattern: &str, case: &CaseRef) -> String {
    pattern
        .replace("{student}", &case.student_id)
        .replace("{employer}", case.employer_id.as_deref().unwrap_or("-"))
        .replace("{school}", &case.school_id)
        .replace("{case}", &case.id)
}

/// The claim keys a state holds for a case, with the claim names.
pub fn state_claims(def: &Definition, state: &str, case: &CaseRef) -> Vec<(String, String)> {
    def.state(state)
        .map(|s| {
            s.claims
                .iter()
                .filter_map(|name| def.claims.get(name))
                .map(|claim| (claim_key(&claim.key, case), claim.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything [`decide`] needs.
pub struct Request<'a> {
    pub def: &'a Definition,
    /// The case; for the start transition, a case not yet stored (state empty).
    pub case: &'a CaseRef,
    pub is_start: bool,
    pub actor: &'a Actor,
    pub transition: &'a str,
    pub input: &'a Value,
    pub parties: &'a Parties,
    pub now: DateTime<Utc>,
}

/// The pure core: checks and computes one transition. See the module doc.
pub fn decide(req: &Request<'_>) -> Result<Outcome, Refusal> {
    let def = req.def;
    let t = permitted(req)?;
    let scope = Scope::new(
        def,
        (!req.is_start).then_some(req.case),
        req.parties,
        req.actor,
        req.input,
    );
    check_guards(t, &scope)?;
    let forms = applicable_forms(def, t, &scope)?;
    let values = input::validate(&forms, req.input, req.now).map_err(Refusal::Invalid)?;

    let mut data = req.case.data.clone();
    let mut recorded = Value::Object(Default::default());
    let mut changes = Vec::new();
    for (name, value) in values {
        if !req.is_start {
            note_change(&mut changes, def, &data, &name, &value);
        }
        input::set_path(&mut data, &name, value.clone());
        input::set_path(&mut recorded, &name, value);
    }
    for (from, to) in &t.moves {
        if let Some(value) = input::take_path(&mut data, from) {
            note_change(&mut changes, def, &data, to, &value);
            input::set_path(&mut data, to, value);
        }
    }
    if let Some(path) = &t.record_actor {
        input::set_path(&mut data, path, Value::String(req.actor.role.as_str().into()));
    }
    let from = (!req.is_start).then(|| req.case.state.clone());
    let to =
        t.to.clone()
            .or_else(|| from.clone())
            .ok_or_else(|| Refusal::Definition(format!("{} has no target", t.name)))?;
    let enters = t.to.is_some();
    let (mut release, mut take) = (Vec::new(), Vec::new());
    let mut timers = Vec::new();
    let mut effects = t.effects.clone();
    let mut mails = t.notify.clone();
    if enters {
        let old = from
            .as_deref()
            .map(|s| state_claims(def, s, req.case))
            .unwrap_or_default();
        let new = state_claims(def, &to, req.case);
        release = old
            .iter()
            .filter(|(k, _)| !new.iter().any(|(n, _)| n == k))
            .map(|(k, _)| k.clone())
            .collect();
        take = new
            .into_iter()
            .filter(|(k, _)| !old.iter().any(|(o, _)| o == k))
            .collect();
        let state = def
            .state(&to)
            .ok_or_else(|| Refusal::Definition(format!("unknown state {to}")))?;
        for timer in &state.timers {
            let due = due_time(&timer.due, &data, req.now)?
                .checked_sub_signed(timer.before.unwrap_or_default())
                .ok_or_else(|| Refusal::Definition("a timer's reminder lies before all time".into()))?;
            // A reminder whose moment has already passed (a deadline closer than the
            // reminder's lead time) is not sent late: the mail on entering says it all.
            if timer.before.is_some() && due <= req.now {
                continue;
            }
            timers.push(NewTimer {
                action: timer.action.clone(),
                due,
            });
        }
        effects.extend(state.on_enter.iter().cloned());
        mails.extend(state.mails.iter().cloned());
    }
    Ok(Outcome {
        transition: t.name.clone(),
        from,
        to,
        enters,
        data,
        input: recorded,
        release,
        take,
        timers,
        effects,
        mails,
        changes,
        migration: false,
    })
}

/// Records `field` going from its value in `data` to `new`, if that is a change.
fn note_change(changes: &mut Vec<Change>, def: &Definition, data: &Value, field: &str, new: &Value) {
    let old = input::get_path(data, field).cloned().unwrap_or(Value::Null);
    if &old == new {
        return;
    }
    let label = def
        .field(field)
        .and_then(|f| f.label.clone())
        .unwrap_or_else(|| field.to_string());
    changes.push(Change {
        field: field.to_string(),
        label,
        old,
        new: new.clone(),
    });
}

/// The checks that do not depend on input: the transition exists, the actor is a party
/// with the right role, and the case is in a state the transition leaves.
fn permitted<'d>(req: &Request<'d>) -> Result<&'d Transition, Refusal> {
    let def = req.def;
    let t = if req.is_start {
        (def.start.name == req.transition).then_some(&def.start)
    } else {
        def.transitions.iter().find(|t| t.name == req.transition)
    }
    .ok_or_else(|| Refusal::UnknownTransition(req.transition.to_string()))?;
    if !is_party(req.case, req.actor) {
        return Err(Refusal::NotYourCase);
    }
    // A platform admin fires only what names `platform_admin`: never a party's own step
    // (no signing on someone's behalf).
    if !may_fire(def, t, req.case, req.actor) {
        return Err(Refusal::WrongRole {
            transition: t.name.clone(),
            title: Message::from_title(&t.title),
            role: req.actor.role,
            allowed: def.role_titles(&t.by),
        });
    }
    if !req.is_start && !t.from.contains(&req.case.state) {
        let state_title = def
            .state(&req.case.state)
            .map(|s| s.title.as_str())
            .unwrap_or(&req.case.state);
        return Err(Refusal::NotInState {
            transition: t.name.clone(),
            state: req.case.state.clone(),
            titles: Box::new(StepTitles {
                transition: Message::from_title(&t.title),
                state: Message::from_title(state_title),
            }),
        });
    }
    Ok(t)
}

fn check_guards(t: &Transition, scope: &Scope) -> Result<(), Refusal> {
    for guard in &t.guards {
        if !scope.holds(&guard.when).map_err(Refusal::Definition)? {
            return Err(Refusal::Guard(guard.message.clone()));
        }
    }
    Ok(())
}

/// The forms a transition asks for given the case (conditions evaluated).
pub fn applicable_forms<'d>(def: &'d Definition, t: &Transition, scope: &Scope) -> Result<Vec<&'d Form>, Refusal> {
    let mut forms = Vec::new();
    for input in &t.input {
        let wanted = match &input.when {
            Some(when) => scope.holds(when).map_err(Refusal::Definition)?,
            None => true,
        };
        if wanted && let Some(form) = def.forms.get(&input.form) {
            forms.push(form);
        }
    }
    Ok(forms)
}

pub(crate) fn due_time(due: &TimerDue, data: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, Refusal> {
    match due {
        TimerDue::After(d) => now
            .checked_add_signed(*d)
            .ok_or_else(|| Refusal::Definition(format!("a timer {d} from now lies beyond all time"))),
        TimerDue::At(field) => input::get_path(data, field)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| Refusal::Definition(format!("timer field {field} holds no date-time"))),
    }
}

/// The transitions `actor` may see on `case`, each enabled or disabled with the reason.
pub fn actions(def: &Definition, case: &CaseRef, actor: &Actor, parties: &Parties) -> Vec<Action> {
    if !is_party(case, actor) {
        return Vec::new();
    }
    let empty = Value::Object(Default::default());
    let scope = Scope::new(def, Some(case), parties, actor, &empty);
    def.transitions_from(&case.state)
        .filter(|t| actor.role != Role::System && may_fire(def, t, case, actor))
        .map(|t| {
            let reason = disabled_reason(def, t, case, &scope);
            let fields = applicable_forms(def, t, &scope)
                .map(|forms| forms.iter().flat_map(|f| f.fields.clone()).collect())
                .unwrap_or_default();
            Action {
                name: t.name.clone(),
                title: t.title.clone(),
                enabled: reason.is_none(),
                reason,
                fields,
            }
        })
        .collect()
}

fn disabled_reason(def: &Definition, t: &Transition, case: &CaseRef, scope: &Scope) -> Option<Message> {
    for guard in &t.guards {
        match scope.holds(&guard.when) {
            Ok(true) => {}
            Ok(false) => return Some(guard.message.clone()),
            Err(e) => {
                return Some(Message {
                    zh: "流程定义有误，请联系管理员".into(),
                    en: e,
                });
            }
        }
    }
    let to = t.to.as_deref()?;
    let current = state_claims(def, &case.state, case);
    state_claims(def, to, case)
        .into_iter()
        .filter(|(key, _)| !current.iter().any(|(k, _)| k == key))
        .find(|(_, name)| case.held_elsewhere.contains(name))
        .and_then(|(_, name)| def.claims.get(&name).map(|c| c.conflict.clone()))
}
