//! Checks a parsed definition and compiles it. Every problem names the file and the
//! line and says in plain words what is wrong; the checker keeps going after the
//! first problem so an administrator sees them all at once.
//!
//! This file checks the parts one by one (forms, claims, documents, states,
//! transitions, conditions); `effects` checks what states and transitions cause (effects,
//! renders, mail, timers) and `graph` the machine as a whole (reachability, terminal
//! states, the liveness lint, system transitions).

mod data;
mod effects;
mod graph;
mod types;

use effects::rendered_slot;

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
    path::Path,
    sync::Arc,
};

use sha2::{Digest, Sha256};
use toml::Spanned;

use types::{Ty, Typer};

use super::{
    AgreementStatus, Catalog, Claim, ContextEntry, Definition, DefinitionError, DocumentRule, Expr, Field, Form, Guard,
    InputRef, Mail, Message, Problem, Role, RoleDef, RoleScope, SYSTEM_ROLE, State, Template, Transition, UploadSlot,
    duration,
    raw::{RawContextEntry, RawDefinition, RawField, RawMessage, RawState, RawTransition},
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

const CLAIM_PLACEHOLDERS: &[&str] = &["student", "employer", "school", "case"];

/// Whether a definition without `[roles]` is refused (a file or a publish) or runs with the
/// roles of the platform's identities, as versions stored before roles were declared do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    Refused,
    StoredBefore,
}

pub fn compile(
    file: &str,
    source: &str,
    catalog: &Catalog,
    undeclared: Undeclared,
) -> Result<Definition, DefinitionError> {
    let mut checker = Checker {
        file,
        source,
        catalog,
        undeclared,
        roots: Vec::new(),
        roles: BTreeMap::new(),
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
    catalog: &'a Catalog,
    undeclared: Undeclared,
    /// What conditions may read, typed (see [`Checker::roots`]).
    roots: Vec<(&'static str, Ty)>,
    /// The declared roles (see [`Checker::roles`]).
    roles: BTreeMap<String, RoleDef>,
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
        self.roles = self.roles(&raw);
        let forms = self.forms(&raw);
        let claims = self.claims(&raw);
        let uploads = self.uploads(&raw);
        let documents = self.documents(&raw);
        self.roots = roots(&raw, &forms, &claims);
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
        self.check_graph(&raw, &start, &transitions, &states);
        self.check_claim_continuity(&raw, &transitions, &states);
        let destination_record = self.destination_record(&raw, &forms, &start, &transitions, &states);
        let mail_context = self.context("mail_context", &raw.mail_context, &raw, &forms);
        let document_context = self.context("document_context", &raw.document_context, &raw, &forms);
        let typed_parties = self.typed_parties(&raw);
        let deadline_field = self.field_of_kind(&raw, "deadline", None);
        let registration = raw
            .destination_record
            .as_ref()
            .and_then(|r| r.get_ref().registration.as_ref());
        let destination_field = self.field_of_kind(&raw, "destination", registration);
        if self.undeclared == Undeclared::Refused {
            // A stored version keeps running whatever the templates folder became since.
            let fired: Vec<&Transition> = std::iter::once(&start).chain(&transitions).collect();
            self.check_template_reads(&raw, &forms, &documents, &fired, &states, &document_context);
        }
        self.check_system_transitions(&raw, &states, &transitions);
        Definition {
            name: raw.name.get_ref().clone(),
            title: raw.title,
            title_en: raw.title_en,
            hash: hex::encode(Sha256::digest(self.source.as_bytes())),
            source: self.source.to_string(),
            destination: raw.destination.map(|d| d.into_inner()),
            destination_record,
            mail_context,
            document_context,
            typed_parties,
            deadline_field,
            destination_field,
            roles: std::mem::take(&mut self.roles),
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

    /// `[roles.NAME]`: a title, a token identity the platform issues, and a scope that
    /// identity can reach (a student's own cases, an employer's, the school, one college of
    /// it, every case). `system` is the engine's and cannot be declared.
    fn roles(&mut self, raw: &RawDefinition) -> BTreeMap<String, RoleDef> {
        let mut roles = BTreeMap::new();
        if raw.roles.is_empty() && self.undeclared == Undeclared::StoredBefore {
            // A version stored before roles were declared named the identities themselves;
            // its live cases keep running as they did.
            for identity in Role::ALL.into_iter().filter(|i| *i != Role::System) {
                let scope = RoleScope::ALL
                    .into_iter()
                    .find(|s| s.fits(identity))
                    .unwrap_or(RoleScope::Platform);
                let name = identity.as_str().to_string();
                roles.insert(
                    name.clone(),
                    RoleDef {
                        name,
                        title: identity.title(),
                        identity,
                        scope,
                    },
                );
            }
            return roles;
        }
        for (name, spanned) in &raw.roles {
            let r = spanned.get_ref();
            if name == SYSTEM_ROLE {
                self.problem(
                    &spanned.span(),
                    "role `system` is the engine's own (timers fire its transitions) and cannot be declared",
                );
                continue;
            }
            if !valid_path(name) || name.contains('.') {
                self.problem(
                    &spanned.span(),
                    format!("role name `{name}` must be letters, digits and `_`"),
                );
            }
            let identity = Role::parse(r.identity.get_ref()).filter(|i| *i != Role::System);
            let scope = RoleScope::ALL.into_iter().find(|s| s.as_str() == r.scope.get_ref());
            if identity.is_none() {
                let known: Vec<_> = Role::ALL
                    .iter()
                    .filter(|i| **i != Role::System)
                    .map(|i| i.as_str())
                    .collect();
                self.problem(
                    &r.identity.span(),
                    format!(
                        "role `{name}` has unknown identity `{}` (the role a platform token carries); known: {}",
                        r.identity.get_ref(),
                        known.join(", ")
                    ),
                );
            }
            if scope.is_none() {
                let known: Vec<_> = RoleScope::ALL.iter().map(|s| s.as_str()).collect();
                self.problem(
                    &r.scope.span(),
                    format!(
                        "role `{name}` has unknown scope `{}`; known: {}",
                        r.scope.get_ref(),
                        known.join(", ")
                    ),
                );
            }
            let (Some(identity), Some(scope)) = (identity, scope) else {
                continue;
            };
            if !scope.fits(identity) {
                let fitting: Vec<_> = RoleScope::ALL
                    .iter()
                    .filter(|s| s.fits(identity))
                    .map(|s| s.as_str())
                    .collect();
                self.problem(
                    &r.scope.span(),
                    format!(
                        "role `{name}`: a `{identity}` token cannot reach scope `{}`; it reaches: {}",
                        scope.as_str(),
                        fitting.join(", ")
                    ),
                );
            }
            roles.insert(
                name.clone(),
                RoleDef {
                    name: name.clone(),
                    title: Message::from_title(&r.title),
                    identity,
                    scope,
                },
            );
        }
        roles
    }

    /// The names of the declared roles, for messages.
    fn known_roles(&self) -> String {
        let names: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none: declare them under [roles]".into()
        } else {
            names.join(", ")
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
        if !valid_path(&raw.name) {
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
                        "param `{name}` (the {what} of field `{}`) is not a duration such as \"7d\" (at most {})",
                        raw.name,
                        duration::MAX_TEXT
                    ),
                );
            }
            parsed
        };
        let default_after = duration_of(&raw.default_after, "default_after", self);
        let max_after = duration_of(&raw.max_after, "max_after", self);
        if let (Some(default), Some(max)) = (default_after, max_after)
            && default > max
        {
            self.problem(
                &span,
                format!(
                    "field `{}`: its default (param `{}`, {}) is longer than its maximum (param `{}`, {})",
                    raw.name,
                    raw.default_after.as_deref().unwrap_or_default(),
                    duration::format(default),
                    raw.max_after.as_deref().unwrap_or_default(),
                    duration::format(max)
                ),
            );
        }
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
            let r = rule.get_ref();
            let template = match &r.template {
                Some(name) => {
                    if !self.catalog.document_templates.contains(name.get_ref()) {
                        let known: Vec<&str> = self.catalog.document_templates.iter().map(String::as_str).collect();
                        self.problem(
                            &name.span(),
                            format!(
                                "document `{slot}` names unknown template `{}` (no `{}.typ` in the templates folder); known: {}",
                                name.get_ref(),
                                name.get_ref(),
                                known.join(", ")
                            ),
                        );
                    }
                    Some(Template {
                        name: name.get_ref().clone(),
                        pages: r.pages.unwrap_or(1),
                        preview: r.preview,
                    })
                }
                None => None,
            };
            if template.is_none() && DocumentRule::builtin(slot).is_none() && !raw.uploads.contains_key(slot) {
                self.problem(
                    &rule.span(),
                    format!(
                        "document rule for unknown slot `{slot}`: name its `template`, or make it an upload slot \
                         (built in: agreement, agreement_preview)"
                    ),
                );
            }
            if r.pages == Some(0) {
                self.problem(&rule.span(), format!("document `{slot}` needs at least one page"));
            }
            for state in r.readable_in.iter().flatten() {
                if !raw.states.contains_key(state.get_ref()) {
                    self.problem(
                        &state.span(),
                        format!("document `{slot}` is readable in unknown state `{}`", state.get_ref()),
                    );
                }
            }
            let title = r.title.clone().unwrap_or_else(|| slot.clone());
            rules.insert(
                slot.clone(),
                DocumentRule {
                    title,
                    readable_in: r
                        .readable_in
                        .as_ref()
                        .map(|states| states.iter().map(|s| s.get_ref().clone()).collect()),
                    template,
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
        for claim in &s.releases {
            if !raw.claims.contains_key(claim.get_ref()) {
                self.problem(
                    &claim.span(),
                    format!("state `{name}` releases unknown claim `{}`", claim.get_ref()),
                );
            } else if s.claims.contains(claim.get_ref()) {
                self.problem(
                    &claim.span(),
                    format!("state `{name}` both holds and releases claim `{}`", claim.get_ref()),
                );
            }
        }
        let mut timers = Vec::new();
        for timer in &s.timers {
            if let Some(t) = self.timer(name, timer, raw, forms, transitions) {
                timers.push(t);
            }
        }
        let (on_enter, mails) = self.entries(&format!("state `{name}`"), &s.on_enter, raw, forms, &span);
        let agreement = match &s.agreement {
            None => AgreementStatus::default(),
            Some(text) => match AgreementStatus::ALL.into_iter().find(|a| a.as_str() == text.get_ref()) {
                Some(a) => a,
                None => {
                    let known: Vec<_> = AgreementStatus::ALL.iter().map(|a| a.as_str()).collect();
                    self.problem(
                        &text.span(),
                        format!(
                            "state `{name}` has unknown agreement status `{}`; known: {}",
                            text.get_ref(),
                            known.join(", ")
                        ),
                    );
                    AgreementStatus::default()
                }
            },
        };
        State {
            name: name.to_string(),
            title: s.title.clone().unwrap_or_else(|| name.to_string()),
            terminal: s.terminal,
            review: s.review,
            agreement,
            mails,
            claims: s.claims.clone(),
            timers,
            on_enter,
        }
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
            if role == SYSTEM_ROLE || self.roles.contains_key(&role) {
                by.push(role);
            } else {
                let known = self.known_roles();
                self.problem(
                    &t.by.span(),
                    format!(
                        "transition `{name}` names undeclared role `{role}`; declared roles: {known} (and `system`)"
                    ),
                );
            }
        }
        if by.len() > 1 && by.iter().any(|r| r == SYSTEM_ROLE) {
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
            && !rendered_slot(raw, slot.get_ref())
        {
            self.problem(
                &slot.span(),
                format!(
                    "transition `{name}` records downloads of `{}`, which is no rendered document",
                    slot.get_ref()
                ),
            );
        }
        let mut notify: Vec<Mail> = t
            .notify
            .iter()
            .filter_map(|m| self.mail(&m.get_ref().email, Some(&m.get_ref().to), None, &m.span()))
            .collect();
        let (effects, mails) = self.entries(&format!("transition `{name}`"), &t.effects, raw, forms, &t.name.span());
        notify.extend(mails);
        let moves = self.moves(&name, t, forms);
        if let Some(path) = &t.record_actor
            && !valid_path(path.get_ref())
        {
            self.problem(
                &path.span(),
                format!(
                    "transition `{name}`: record_actor `{}` must be words of letters, digits and `_` joined by dots",
                    path.get_ref()
                ),
            );
        }
        Transition {
            notify,
            effects,
            moves,
            record_actor: t.record_actor.as_ref().map(|p| p.get_ref().clone()),
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

    /// A transition's data moves: both ends fields of the definition's forms, of one kind.
    fn moves(&mut self, name: &str, t: &RawTransition, forms: &BTreeMap<String, Form>) -> Vec<(String, String)> {
        let field = |path: &str| forms.values().flat_map(|f| &f.fields).find(|f| f.name == path);
        let mut moves = Vec::new();
        for m in &t.moves {
            let (from, to) = (&m.get_ref().from, &m.get_ref().to);
            match (field(from), field(to)) {
                (Some(a), Some(b)) if a.kind == b.kind => moves.push((from.clone(), to.clone())),
                (Some(a), Some(b)) => self.problem(
                    &m.span(),
                    format!(
                        "transition `{name}` moves `{from}` ({}) into `{to}` ({}): the kinds differ",
                        a.kind, b.kind
                    ),
                ),
                _ => self.problem(
                    &m.span(),
                    format!("transition `{name}` moves `{from}` into `{to}`, but both must be fields of a form"),
                ),
            }
        }
        moves
    }

    /// Compiles a CEL condition and type-checks it against what the definition declares:
    /// it must be boolean and read only declared names.
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
        let mut typer = Typer::new(&self.roots);
        typer.condition(program.expression());
        let errors = std::mem::take(&mut typer.errors);
        let failed = !errors.is_empty();
        for error in errors {
            self.problem(span, format!("condition `{source}` {error}"));
        }
        (!failed).then(|| Expr {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    /// `[destination_record]`: its paths must be text fields of the forms; and a definition
    /// that records an agreement's destination (no registration field) must say where the
    /// location comes from.
    fn destination_record(
        &mut self,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        start: &Transition,
        transitions: &[Transition],
        states: &BTreeMap<String, State>,
    ) -> super::DestinationRecordMap {
        let fields: Vec<&Field> = forms.values().flat_map(|f| &f.fields).collect();
        let path = |p: &Option<Spanned<String>>, what: &str, checker: &mut Self| -> Option<String> {
            let p = p.as_ref()?;
            match fields.iter().find(|f| &f.name == p.get_ref()) {
                Some(f) if f.kind == "text" || f.kind == "multiline" => {}
                Some(f) => checker.problem(
                    &p.span(),
                    format!(
                        "destination_record.{what} names `{}`, a field of kind `{}`, not text",
                        f.name, f.kind
                    ),
                ),
                None => {
                    let known: Vec<&str> = fields
                        .iter()
                        .filter(|f| f.kind == "text")
                        .map(|f| f.name.as_str())
                        .collect();
                    checker.problem(
                        &p.span(),
                        format!(
                            "destination_record.{what} names `{}`, which no form declares; text fields: {}",
                            p.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
            Some(p.get_ref().clone())
        };
        let map = raw.destination_record.as_ref().map(|r| r.get_ref());
        let unit = map.and_then(|m| path(&m.unit, "unit", self));
        let location = map.and_then(|m| path(&m.location, "location", self));
        let position = map.and_then(|m| path(&m.position, "position", self));
        let records = std::iter::once(start)
            .chain(transitions)
            .any(|t| t.effects.contains(&super::Effect::RecordDestination))
            || states
                .values()
                .any(|s| s.on_enter.contains(&super::Effect::RecordDestination));
        let registers = fields.iter().any(|f| f.kind == "destination");
        if records && !registers && location.is_none() {
            self.problem(
                &raw.name.span(),
                "the definition records a destination but does not say where its location comes from: \
                 add `[destination_record]` with `location = \"…\"` (a text field of a form)",
            );
        }
        super::DestinationRecordMap {
            unit,
            location,
            position,
        }
    }

    /// `[mail_context]` and `[document_context]` (`table`): each name a template prints,
    /// read from data paths the definition declares (form fields, `record_actor` paths, the
    /// agreement's number), so a renamed field is followed here or refused; a name the
    /// engine gives every mail cannot be taken.
    fn context(
        &mut self,
        table: &str,
        entries: &BTreeMap<String, Spanned<RawContextEntry>>,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
    ) -> Vec<ContextEntry> {
        let known = declared_paths(raw, forms);
        let mut out = Vec::new();
        for (name, entry) in entries {
            let span = entry.span();
            let identifier = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !identifier {
                self.problem(
                    &span,
                    format!("{table} name `{name}` must be lower-case letters, digits and `_`"),
                );
            }
            if table == "mail_context" && super::MAIL_CONTEXT_BUILT_IN.contains(&name.as_str()) {
                self.problem(
                    &span,
                    format!("mail_context name `{name}` is one the engine gives every mail; choose another"),
                );
            }
            let (paths, default) = match entry.get_ref() {
                RawContextEntry::Paths(paths) => (paths.to_vec(), None),
                RawContextEntry::Full(full) => (full.from.to_vec(), full.default.clone()),
            };
            if paths.is_empty() {
                self.problem(&span, format!("{table}.{name} names no data path"));
            }
            for path in &paths {
                if !known.contains(path) {
                    self.problem(
                        &span,
                        format!(
                            "{table}.{name} reads `{path}`, which no form declares; data paths: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
            out.push(ContextEntry {
                name: name.clone(),
                paths,
                default,
            });
        }
        out
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
}

/// What a condition may read, with its type: the parties' records (as the platform syncs
/// them), the case data and the input (the forms' fields, the paths `record_actor` writes,
/// and what the `assign_agreement_number` effect writes), the params, the actor, the state,
/// the documents counted by slot, and the claims held elsewhere.
fn roots(
    raw: &RawDefinition,
    forms: &BTreeMap<String, Form>,
    claims: &BTreeMap<String, Claim>,
) -> Vec<(&'static str, Ty)> {
    use crate::domain::parties::{EMPLOYER_FIELDS, SCHOOL_FIELDS, STUDENT_FIELDS};
    let party = |name: &str, fields: &[(&str, &str)]| {
        let mut paths: Vec<(String, Ty)> = vec![("id".into(), Ty::String)];
        paths.extend(fields.iter().map(|(f, kind)| (f.to_string(), types::kind_type(kind))));
        Ty::record(name, &paths)
    };
    let fields: Vec<(String, Ty)> = forms
        .values()
        .flat_map(|f| &f.fields)
        .map(|f| (f.name.clone(), types::kind_type(&f.kind)))
        .collect();
    let mut data = fields.clone();
    for t in std::iter::once(&raw.start).chain(&raw.transitions) {
        if let Some(path) = &t.get_ref().record_actor {
            data.push((path.get_ref().clone(), Ty::String));
        }
    }
    data.push(("agreement.number".into(), Ty::String));
    data.push(("agreement.verification_code".into(), Ty::String));
    let actor = Ty::record(
        "actor",
        &[
            ("role".into(), Ty::String),
            ("party".into(), Ty::String),
            ("school".into(), Ty::String),
            ("college".into(), Ty::String),
        ],
    );
    let params = Ty::Object(
        "params".into(),
        raw.params
            .iter()
            .map(|(k, v)| (k.clone(), types::toml_type(v.get_ref())))
            .collect(),
    );
    let held = Ty::Object(
        "held_elsewhere".into(),
        claims.keys().map(|k| (k.clone(), Ty::Bool)).collect(),
    );
    vec![
        ("student", party("student", STUDENT_FIELDS)),
        ("employer", party("employer", EMPLOYER_FIELDS)),
        ("school", party("school", SCHOOL_FIELDS)),
        ("data", Ty::record("data", &data)),
        ("input", Ty::record("input", &fields)),
        ("params", params),
        ("actor", actor),
        ("state", Ty::String),
        ("documents", Ty::Map(Box::new(Ty::Int))),
        ("held_elsewhere", held),
    ]
}

/// Words of letters, digits and `_` joined by dots: a data path.
/// The data paths a definition declares: its forms' fields, the paths `record_actor`
/// writes, and what the `assign_agreement_number` effect writes.
fn declared_paths(raw: &RawDefinition, forms: &BTreeMap<String, Form>) -> Vec<String> {
    let mut known: Vec<String> = forms.values().flat_map(|f| &f.fields).map(|f| f.name.clone()).collect();
    for t in std::iter::once(&raw.start).chain(&raw.transitions) {
        if let Some(path) = &t.get_ref().record_actor {
            known.push(path.get_ref().clone());
        }
    }
    known.push("agreement.number".into());
    known.push("agreement.verification_code".into());
    known
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
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
