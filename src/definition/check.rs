//! Checks a parsed definition and compiles it. Every problem names the file and the
//! line and says in plain words what is wrong; the checker keeps going after the
//! first problem so an administrator sees them all at once.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    ops::Range,
    path::Path,
    sync::Arc,
};

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{
    Claim, Definition, DefinitionError, DocumentRule, Effect, Expr, Field, Form, Guard, InputRef, Mail, Message,
    Problem, Role, State, Timer, TimerAction, TimerDue, Transition, UploadSlot, duration,
    raw::{OneOrMany, RawDefinition, RawField, RawMessage, RawState, RawTransition},
};

/// The field kinds the engine itself knows, beside the domain validators'
/// ([`crate::domain::KINDS`], which check every other kind): `deadline` needs the clock,
/// and `destination` is a registration under a destination category of the reference
/// data (`{ "category": "11", "fields": { … } }`).
pub const FIELD_KINDS: &[&str] = &["deadline", "destination"];

/// Whether a form field may have `kind`.
pub fn known_field_kind(kind: &str) -> bool {
    FIELD_KINDS.contains(&kind) || crate::domain::known_kind(kind)
}

/// The names an expression may use: the case's parties, its data, the input being
/// submitted, the definition's params and the actor.
pub const EXPRESSION_VARIABLES: &[&str] = &[
    "student",
    "employer",
    "school",
    "data",
    "input",
    "params",
    "actor",
    "state",
    "documents",
];

/// The mail templates in `templates/email/` the engine can fill (a test keeps this list
/// and the folder in step).
pub const MAIL_TEMPLATES: &[&str] = &[
    "agreement_confirmed",
    "daily_digest",
    "invitation_expired",
    "invitation_expiring",
    "invitation_received",
    "invitation_rejected",
    "review_approved",
    "review_overdue",
    "review_pending",
    "review_rejected",
];

/// The document slots the renderer fills.
pub const RENDERED_SLOTS: &[&str] = &["agreement", "agreement_preview"];

const CLAIM_PLACEHOLDERS: &[&str] = &["student", "employer", "school", "case"];

pub fn compile(file: &str, source: &str) -> Result<Definition, DefinitionError> {
    let mut checker = Checker {
        file,
        source,
        problems: Vec::new(),
    };
    let raw: RawDefinition = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| checker.line(&s)).unwrap_or(0);
            let message = e.message().trim().to_string();
            return Err(DefinitionError {
                problems: vec![Problem {
                    file: file.to_string(),
                    line,
                    message,
                }],
            });
        }
    };
    let definition = checker.definition(raw);
    if checker.problems.is_empty() {
        Ok(definition)
    } else {
        checker.problems.sort_by_key(|p| p.line);
        Err(DefinitionError {
            problems: checker.problems,
        })
    }
}

struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.source.len());
        self.source[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn problem(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            message: message.into(),
        });
    }

    fn definition(&mut self, raw: RawDefinition) -> Definition {
        self.check_name(&raw.name);
        if let Some(code) = &raw.destination {
            let ok = (2..=3).contains(&code.get_ref().len()) && code.get_ref().chars().all(|c| c.is_ascii_digit());
            if !ok {
                self.problem(
                    &code.span(),
                    format!(
                        "destination `{}` is not a two- or three-digit category code",
                        code.get_ref()
                    ),
                );
            }
        }
        let params: BTreeMap<_, _> = raw
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        let forms = self.forms(&raw);
        let claims = self.claims(&raw);
        let uploads = self.uploads(&raw);
        let documents = self.documents(&raw);
        let all_transitions: Vec<&Spanned<RawTransition>> =
            std::iter::once(&raw.start).chain(raw.transitions.iter()).collect();
        let start = self.transition(&raw.start, &raw, &forms, true);
        let transitions: Vec<Transition> = raw
            .transitions
            .iter()
            .map(|t| self.transition(t, &raw, &forms, false))
            .collect();
        self.check_unique_names(&all_transitions);
        let states: BTreeMap<String, State> = raw
            .states
            .iter()
            .map(|(name, s)| (name.clone(), self.state(name, s, &raw, &forms, &transitions)))
            .collect();
        if raw.states.is_empty() {
            self.problem(&raw.name.span(), "the definition has no states");
        }
        self.check_graph(&raw, &start, &transitions);
        self.check_system_transitions(&raw, &states, &transitions);
        Definition {
            name: raw.name.get_ref().clone(),
            title: raw.title,
            title_en: raw.title_en,
            hash: hex::encode(Sha256::digest(self.source.as_bytes())),
            source: self.source.to_string(),
            destination: raw.destination.map(|d| d.into_inner()),
            params,
            forms,
            claims,
            uploads,
            documents,
            start,
            states,
            transitions,
        }
    }

    fn check_name(&mut self, name: &Spanned<String>) {
        let valid = !name.get_ref().is_empty()
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            self.problem(
                &name.span(),
                format!("name `{}` must be lower-case letters, digits and `_`", name.get_ref()),
            );
        }
        let stem = Path::new(self.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if !stem.is_empty() && stem != name.get_ref() && self.file.ends_with(".toml") {
            self.problem(
                &name.span(),
                format!("name `{}` must match the file name `{stem}.toml`", name.get_ref()),
            );
        }
    }

    fn forms(&mut self, raw: &RawDefinition) -> BTreeMap<String, Form> {
        let mut forms = BTreeMap::new();
        for (name, form) in &raw.forms {
            let mut seen = BTreeSet::new();
            let mut fields = Vec::new();
            for field in &form.get_ref().fields {
                if !seen.insert(field.get_ref().name.clone()) {
                    self.problem(
                        &field.span(),
                        format!("form `{name}` has the field `{}` twice", field.get_ref().name),
                    );
                }
                fields.push(self.field(field, &raw.params));
            }
            forms.insert(
                name.clone(),
                Form {
                    name: name.clone(),
                    fields,
                },
            );
        }
        forms
    }

    fn field(&mut self, spanned: &Spanned<RawField>, params: &BTreeMap<String, Spanned<toml::Value>>) -> Field {
        let raw = spanned.get_ref();
        let span = spanned.span();
        let valid_name = !raw.name.is_empty()
            && raw
                .name
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !valid_name {
            self.problem(
                &span,
                format!(
                    "field name `{}` must be words of letters, digits and `_` joined by dots",
                    raw.name
                ),
            );
        }
        if !known_field_kind(&raw.kind) {
            self.problem(
                &span,
                format!(
                    "field `{}` has unknown kind `{}`; known kinds: {}",
                    raw.name,
                    raw.kind,
                    crate::domain::KINDS
                        .iter()
                        .chain(FIELD_KINDS)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if let (Some(min), Some(max)) = (raw.min, raw.max)
            && min > max
        {
            self.problem(
                &span,
                format!("field `{}` has min {min} greater than max {max}", raw.name),
            );
        }
        let duration_of = |param: &Option<String>, what: &str, checker: &mut Self| -> Option<chrono::Duration> {
            let name = param.as_ref()?;
            let value = params.get(name);
            let parsed = value.and_then(|v| v.get_ref().as_str()).and_then(duration::parse);
            if parsed.is_none() {
                // Point at the param when it exists (its value is what is wrong), else at the field.
                let at = value.map(|v| v.span()).unwrap_or_else(|| span.clone());
                checker.problem(
                    &at,
                    format!(
                        "param `{name}` (the {what} of field `{}`) is not a duration such as \"7d\"",
                        raw.name
                    ),
                );
            }
            parsed
        };
        let default_after = duration_of(&raw.default_after, "default_after", self);
        let max_after = duration_of(&raw.max_after, "max_after", self);
        if raw.kind == "deadline" && (raw.default_after.is_none() || raw.max_after.is_none()) {
            self.problem(
                &span,
                format!("deadline field `{}` needs default_after and max_after params", raw.name),
            );
        }
        Field {
            name: raw.name.clone(),
            kind: raw.kind.clone(),
            required: raw.required,
            label: raw.label.clone(),
            min: raw.min,
            max: raw.max,
            default_after,
            max_after,
        }
    }

    fn claims(&mut self, raw: &RawDefinition) -> BTreeMap<String, Claim> {
        let mut claims = BTreeMap::new();
        for (name, claim) in &raw.claims {
            let key = &claim.get_ref().key;
            for placeholder in placeholders(key) {
                if !CLAIM_PLACEHOLDERS.contains(&placeholder.as_str()) {
                    self.problem(&claim.span(), format!("claim `{name}` uses `{{{placeholder}}}`; known: {{student}}, {{employer}}, {{school}}, {{case}}"));
                }
            }
            claims.insert(
                name.clone(),
                Claim {
                    name: name.clone(),
                    key: key.clone(),
                    conflict: message(&claim.get_ref().conflict),
                },
            );
        }
        claims
    }

    fn uploads(&mut self, raw: &RawDefinition) -> BTreeMap<String, UploadSlot> {
        let mut uploads = BTreeMap::new();
        for (name, u) in &raw.uploads {
            if u.get_ref().max_files == 0 {
                self.problem(&u.span(), format!("upload slot `{name}` needs max_files of at least 1"));
            }
            uploads.insert(
                name.clone(),
                UploadSlot {
                    name: name.clone(),
                    title: u.get_ref().title.clone(),
                    max_files: u.get_ref().max_files,
                },
            );
        }
        uploads
    }

    fn documents(&mut self, raw: &RawDefinition) -> BTreeMap<String, DocumentRule> {
        let mut rules = BTreeMap::new();
        for (slot, rule) in &raw.documents {
            if !RENDERED_SLOTS.contains(&slot.as_str()) && !raw.uploads.contains_key(slot) {
                self.problem(
                    &rule.span(),
                    format!(
                        "document rule for unknown slot `{slot}`; known: {}, or an upload slot",
                        RENDERED_SLOTS.join(", ")
                    ),
                );
            }
            for state in &rule.get_ref().readable_in {
                if !raw.states.contains_key(state.get_ref()) {
                    self.problem(
                        &state.span(),
                        format!("document `{slot}` is readable in unknown state `{}`", state.get_ref()),
                    );
                }
            }
            let title = rule.get_ref().title.clone().unwrap_or_else(|| slot.clone());
            rules.insert(
                slot.clone(),
                DocumentRule {
                    title,
                    readable_in: rule.get_ref().readable_in.iter().map(|s| s.get_ref().clone()).collect(),
                },
            );
        }
        rules
    }

    fn state(
        &mut self,
        name: &str,
        spanned: &Spanned<RawState>,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        transitions: &[Transition],
    ) -> State {
        let s = spanned.get_ref();
        let span = spanned.span();
        for claim in &s.claims {
            if !raw.claims.contains_key(claim) {
                self.problem(&span, format!("state `{name}` holds unknown claim `{claim}`"));
            }
        }
        let mut timers = Vec::new();
        for timer in &s.timers {
            if let Some(t) = self.timer(name, timer, raw, forms, transitions) {
                timers.push(t);
            }
        }
        let mut on_enter = Vec::new();
        let mut mails = Vec::new();
        for entry in &s.on_enter {
            let e = entry.get_ref();
            match (&e.effect, &e.email) {
                (Some(wanted), None) => match Effect::ALL.into_iter().find(|x| x.as_str() == wanted) {
                    Some(x) => on_enter.push(x),
                    None => {
                        let known: Vec<_> = Effect::ALL.iter().map(|x| x.as_str()).collect();
                        self.problem(
                            &entry.span(),
                            format!(
                                "state `{name}` has unknown effect `{wanted}`; known effects: {}",
                                known.join(", ")
                            ),
                        );
                    }
                },
                (None, Some(template)) => {
                    if let Some(mail) = self.mail(template, e.to.as_ref(), None, &entry.span()) {
                        mails.push(mail);
                    }
                }
                _ => self.problem(
                    &entry.span(),
                    format!("an `on_enter` entry of `{name}` needs exactly one of `effect` or `email`"),
                ),
            }
        }
        // `record_destination` takes the category from the data's `destination` field when a
        // form asks for one, else from the definition's `destination` code.
        let registers = forms
            .values()
            .flat_map(|f| &f.fields)
            .any(|f| f.name == "destination" && f.kind == "destination");
        if on_enter.contains(&Effect::RecordDestination) && raw.destination.is_none() && !registers {
            self.problem(
                &span,
                format!(
                    "state `{name}` records a destination but the definition names no `destination` code \
                     and no form has a `destination` field of kind `destination`"
                ),
            );
        }
        State {
            name: name.to_string(),
            title: s.title.clone().unwrap_or_else(|| name.to_string()),
            terminal: s.terminal,
            review: s.review,
            mails,
            claims: s.claims.clone(),
            timers,
            on_enter,
        }
    }

    fn timer(
        &mut self,
        state: &str,
        timer: &Spanned<crate::definition::raw::RawTimer>,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        transitions: &[Transition],
    ) -> Option<Timer> {
        let t = timer.get_ref();
        let span = timer.span();
        let as_duration = |text: &str| {
            duration::parse(text).or_else(|| {
                raw.params
                    .get(text)
                    .and_then(|v| v.get_ref().as_str())
                    .and_then(duration::parse)
            })
        };
        let due = match (&t.after, &t.at) {
            (Some(param), None) => match as_duration(param) {
                Some(d) => TimerDue::After(d),
                None => {
                    self.problem(&span, format!("timer in `{state}`: `after = \"{param}\"` is neither a duration such as \"2d\" nor a param holding one"));
                    return None;
                }
            },
            (None, Some(field)) => {
                let known = forms
                    .values()
                    .flat_map(|f| &f.fields)
                    .any(|f| &f.name == field && f.kind == "deadline");
                if !known {
                    self.problem(
                        &span,
                        format!("timer in `{state}`: `at = \"{field}\"` is not a deadline field of any form"),
                    );
                }
                TimerDue::At(field.clone())
            }
            _ => {
                self.problem(
                    &span,
                    format!("timer in `{state}` needs exactly one of `after` (a duration) or `at` (a deadline field)"),
                );
                return None;
            }
        };
        let before = match &t.before {
            Some(text) => match as_duration(text) {
                Some(d) => Some(d),
                None => {
                    self.problem(
                        &span,
                        format!("timer in `{state}`: `before = \"{text}\"` is not a duration such as \"1d\""),
                    );
                    return None;
                }
            },
            None => None,
        };
        let action = match (&t.fire, &t.email) {
            (Some(fire), None) => {
                match transitions.iter().find(|tr| &tr.name == fire) {
                    None => self.problem(&span, format!("timer in `{state}` fires unknown transition `{fire}`")),
                    Some(tr) if !tr.from.iter().any(|f| f == state) => self.problem(
                        &span,
                        format!("timer in `{state}` fires `{fire}`, which does not leave `{state}`"),
                    ),
                    Some(tr) if tr.by != [Role::System] => self.problem(
                        &span,
                        format!("timer in `{state}` fires `{fire}`, which must be `by = \"system\"`"),
                    ),
                    Some(_) => {}
                }
                TimerAction::Fire(fire.clone())
            }
            (None, Some(template)) => TimerAction::Mail(self.mail(template, t.to.as_ref(), t.escalate, &span)?),
            _ => {
                self.problem(
                    &span,
                    format!("timer in `{state}` needs exactly one of `fire` (a transition) or `email` (a template)"),
                );
                return None;
            }
        };
        Some(Timer { due, before, action })
    }

    /// A mail: a known template and known roles.
    fn mail(
        &mut self,
        template: &str,
        to: Option<&OneOrMany>,
        escalate: Option<u8>,
        span: &Range<usize>,
    ) -> Option<Mail> {
        if !MAIL_TEMPLATES.contains(&template) {
            self.problem(
                span,
                format!(
                    "unknown mail template `{template}`; known: {}",
                    MAIL_TEMPLATES.join(", ")
                ),
            );
        }
        let Some(to) = to else {
            self.problem(span, format!("mail `{template}` needs `to`: the roles that receive it"));
            return None;
        };
        let mut roles = Vec::new();
        for role in to.to_vec() {
            match Role::parse(&role).filter(|r| *r != Role::System) {
                Some(r) => roles.push(r),
                None => self.problem(span, format!("mail `{template}` goes to unknown role `{role}`")),
            }
        }
        Some(Mail {
            template: template.to_string(),
            to: roles,
            escalate,
        })
    }

    fn transition(
        &mut self,
        spanned: &Spanned<RawTransition>,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        is_start: bool,
    ) -> Transition {
        let t = spanned.get_ref();
        let name = t.name.get_ref().clone();
        if is_start && !t.from.is_empty() {
            self.problem(
                &t.from[0].span(),
                format!("the start transition `{name}` must not have `from`"),
            );
        }
        if !is_start && t.from.is_empty() {
            self.problem(
                &t.name.span(),
                format!("transition `{name}` needs `from`: the states it leaves"),
            );
        }
        for from in &t.from {
            if !raw.states.contains_key(from.get_ref()) {
                self.problem(
                    &from.span(),
                    format!("transition `{name}` leaves unknown state `{}`", from.get_ref()),
                );
            }
        }
        match &t.to {
            Some(to) if !raw.states.contains_key(to.get_ref()) => {
                self.problem(
                    &to.span(),
                    format!("transition `{name}` goes to unknown state `{}`", to.get_ref()),
                );
            }
            None if is_start => self.problem(&t.name.span(), format!("the start transition `{name}` needs `to`")),
            _ => {}
        }
        let mut by = Vec::new();
        for role in t.by.get_ref().to_vec() {
            match Role::parse(&role) {
                Some(r) => by.push(r),
                None => {
                    let known: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                    self.problem(
                        &t.by.span(),
                        format!(
                            "transition `{name}` names unknown role `{role}`; known roles: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if by.len() > 1 && by.contains(&Role::System) {
            self.problem(
                &t.by.span(),
                format!("transition `{name}`: `system` cannot share a transition with people"),
            );
        }
        let mut input = Vec::new();
        for i in &t.input {
            let r = i.get_ref();
            if !forms.contains_key(&r.form) {
                self.problem(
                    &i.span(),
                    format!("transition `{name}` asks for unknown form `{}`", r.form),
                );
            }
            let when = r.when.as_ref().map(|w| self.expr(w, &i.span()));
            input.push(InputRef {
                form: r.form.clone(),
                when: when.flatten(),
            });
        }
        let mut guards = Vec::new();
        for g in &t.guards {
            if let Some(when) = self.expr(&g.get_ref().when, &g.span()) {
                guards.push(Guard {
                    when,
                    message: message(&g.get_ref().message),
                });
            }
        }
        if let Some(slot) = &t.upload
            && !raw.uploads.contains_key(slot.get_ref())
        {
            self.problem(
                &slot.span(),
                format!(
                    "transition `{name}` takes uploads into unknown slot `{}`",
                    slot.get_ref()
                ),
            );
        }
        if let Some(slot) = &t.download
            && !RENDERED_SLOTS.contains(&slot.get_ref().as_str())
        {
            self.problem(
                &slot.span(),
                format!(
                    "transition `{name}` records downloads of unknown document `{}`; known: {}",
                    slot.get_ref(),
                    RENDERED_SLOTS.join(", ")
                ),
            );
        }
        let notify = t
            .notify
            .iter()
            .filter_map(|m| self.mail(&m.get_ref().email, Some(&m.get_ref().to), None, &m.span()))
            .collect();
        Transition {
            notify,
            upload: t.upload.as_ref().map(|s| s.get_ref().clone()),
            download: t.download.as_ref().map(|s| s.get_ref().clone()),
            name: name.clone(),
            title: t.title.clone().unwrap_or(name),
            from: t.from.iter().map(|f| f.get_ref().clone()).collect(),
            to: t.to.as_ref().map(|s| s.get_ref().clone()),
            by,
            input,
            guards,
        }
    }

    /// Compiles a CEL condition and checks it uses only the known variables.
    fn expr(&mut self, source: &str, span: &Range<usize>) -> Option<Expr> {
        let program = match cel::Program::compile(source) {
            Ok(p) => p,
            Err(e) => {
                self.problem(
                    span,
                    format!(
                        "condition `{source}` does not parse: {}",
                        e.to_string().replace('\n', " ")
                    ),
                );
                return None;
            }
        };
        for var in program.references().variables() {
            if !EXPRESSION_VARIABLES.contains(&var) {
                self.problem(
                    span,
                    format!(
                        "condition `{source}` uses unknown name `{var}`; known: {}",
                        EXPRESSION_VARIABLES.join(", ")
                    ),
                );
            }
        }
        Some(Expr {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    fn check_unique_names(&mut self, transitions: &[&Spanned<RawTransition>]) {
        let mut seen = BTreeSet::new();
        for t in transitions {
            if !seen.insert(t.get_ref().name.get_ref().clone()) {
                self.problem(
                    &t.get_ref().name.span(),
                    format!("transition `{}` is defined twice", t.get_ref().name.get_ref()),
                );
            }
        }
    }

    /// Unreachable states, dead ends, and terminal states with a way out.
    fn check_graph(&mut self, raw: &RawDefinition, start: &Transition, transitions: &[Transition]) {
        let mut reached = BTreeSet::new();
        let mut queue: VecDeque<String> = start.to.iter().cloned().collect();
        while let Some(state) = queue.pop_front() {
            if !reached.insert(state.clone()) {
                continue;
            }
            for t in transitions.iter().filter(|t| t.from.contains(&state)) {
                if let Some(to) = &t.to {
                    queue.push_back(to.clone());
                }
            }
        }
        for (name, state) in &raw.states {
            let leaves = transitions
                .iter()
                .any(|t| t.from.contains(name) && t.to.as_ref().is_some_and(|to| to != name));
            if !reached.contains(name) {
                self.problem(
                    &state.span(),
                    format!("state `{name}` is unreachable: no transition leads to it from the start"),
                );
            }
            if state.get_ref().terminal && transitions.iter().any(|t| t.from.contains(name)) {
                self.problem(
                    &state.span(),
                    format!("state `{name}` is terminal but has transitions leaving it"),
                );
            }
            if !state.get_ref().terminal && !leaves {
                self.problem(
                    &state.span(),
                    format!("state `{name}` has no way out; mark it `terminal = true` or add a transition"),
                );
            }
        }
    }

    /// A `system` transition happens only when a timer fires it.
    fn check_system_transitions(
        &mut self,
        raw: &RawDefinition,
        states: &BTreeMap<String, State>,
        transitions: &[Transition],
    ) {
        for (t, spanned) in transitions.iter().zip(&raw.transitions) {
            if t.by == [Role::System]
                && !states
                    .values()
                    .any(|s| s.timers.iter().any(|timer| timer.fires() == Some(t.name.as_str())))
            {
                self.problem(
                    &spanned.get_ref().name.span(),
                    format!("transition `{}` is by `system` but no timer fires it", t.name),
                );
            }
        }
    }
}

fn message(raw: &RawMessage) -> Message {
    Message {
        zh: raw.zh.clone(),
        en: raw.en.clone(),
    }
}

/// The `{name}` placeholders of a claim key.
pub(crate) fn placeholders(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = key;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(rest[open + 1..open + close].to_string());
        rest = &rest[open + close + 1..];
    }
    out
}
