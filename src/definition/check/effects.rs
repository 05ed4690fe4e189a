//! What states and transitions cause, checked: named effects, documents to render, mail
//! to roles, and timers (a duration or a deadline field, firing a system transition or
//! sending a reminder).

use std::{collections::BTreeMap, ops::Range};

use toml::Spanned;

use super::Checker;
use crate::definition::{
    Definition, DocumentRule, Effect, Form, Mail, Timer, TimerAction, TimerDue, Transition, duration,
    raw::{OneOrMany, RawDefinition, RawEffect},
};

impl Checker<'_> {
    /// `on_enter` or transition `effects` entries: named effects, renders and mails.
    pub(super) fn entries(
        &mut self,
        owner: &str,
        entries: &[Spanned<RawEffect>],
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        owner_span: &Range<usize>,
    ) -> (Vec<Effect>, Vec<Mail>) {
        let mut effects = Vec::new();
        let mut mails = Vec::new();
        for entry in entries {
            let e = entry.get_ref();
            match (&e.effect, &e.render, &e.email) {
                (Some(wanted), None, None) => match Effect::named(wanted) {
                    Some(x) => effects.push(x),
                    None => self.problem(
                        &entry.span(),
                        format!(
                            "{owner} has unknown effect `{wanted}`; known effects: {}, or `render = \"slot\"`",
                            Effect::NAMES.join(", ")
                        ),
                    ),
                },
                (None, Some(slot), None) => {
                    if !rendered_slot(raw, slot) {
                        self.problem(
                            &entry.span(),
                            format!("{owner} renders `{slot}`, which is no document with a `template`"),
                        );
                    }
                    effects.push(Effect::Render(slot.clone()));
                }
                (None, None, Some(template)) => {
                    if let Some(mail) = self.mail(template, e.to.as_ref(), None, &entry.span()) {
                        mails.push(mail);
                    }
                }
                _ => self.problem(
                    &entry.span(),
                    format!("an entry of {owner} needs exactly one of `effect`, `render` or `email`"),
                ),
            }
        }
        // `record_destination` takes the category from the data's `destination` field when a
        // form asks for one, else from the definition's `destination` code.
        let registers = forms
            .values()
            .flat_map(|f| &f.fields)
            .any(|f| f.name == "destination" && f.kind == "destination");
        if effects.contains(&Effect::RecordDestination) && raw.destination.is_none() && !registers {
            self.problem(
                owner_span,
                format!(
                    "{owner} records a destination but the definition names no `destination` code \
                     and no form has a `destination` field of kind `destination`"
                ),
            );
        }
        (effects, mails)
    }

    pub(super) fn timer(
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
                    self.problem(&span, format!("timer in `{state}`: `after = \"{param}\"` is neither a duration such as \"2d\" (at most {}) nor a param holding one", duration::MAX_TEXT));
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
                        format!(
                            "timer in `{state}`: `before = \"{text}\"` is not a duration such as \"1d\" (at most {})",
                            duration::MAX_TEXT
                        ),
                    );
                    return None;
                }
            },
            None => None,
        };
        // A reminder `before` a due time must come after the state is entered: its lead is
        // shorter than the period it reminds of (for a deadline field, its default).
        if let Some(lead) = before {
            let period = match &due {
                TimerDue::After(d) => Some((*d, format!("`after = \"{}\"`", t.after.as_deref().unwrap_or_default()))),
                TimerDue::At(field) => forms
                    .values()
                    .flat_map(|f| &f.fields)
                    .find(|f| &f.name == field)
                    .and_then(|f| f.default_after)
                    .map(|d| (d, format!("the default of deadline field `{field}`"))),
            };
            if let Some((period, what)) = period
                && lead >= period
            {
                self.problem(
                    &span,
                    format!(
                        "timer in `{state}`: its lead `before = \"{}\"` ({}) is not shorter than the period it reminds of \
                         ({what}, {}), so it would be due as soon as the state is entered",
                        t.before.as_deref().unwrap_or_default(),
                        duration::format(lead),
                        duration::format(period)
                    ),
                );
            }
        }
        let action = match (&t.fire, &t.email) {
            (Some(fire), None) => {
                match transitions.iter().find(|tr| &tr.name == fire) {
                    None => self.problem(&span, format!("timer in `{state}` fires unknown transition `{fire}`")),
                    Some(tr) if !tr.from.iter().any(|f| f == state) => self.problem(
                        &span,
                        format!("timer in `{state}` fires `{fire}`, which does not leave `{state}`"),
                    ),
                    Some(tr) if !Definition::by_system(tr) => self.problem(
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
    pub(super) fn mail(
        &mut self,
        template: &str,
        to: Option<&OneOrMany>,
        escalate: Option<u8>,
        span: &Range<usize>,
    ) -> Option<Mail> {
        if !self.catalog.mail_templates.contains(template) {
            let known: Vec<&str> = self.catalog.mail_templates.iter().map(String::as_str).collect();
            self.problem(
                span,
                format!(
                    "unknown mail template `{template}` (no `{template}.subject.tera`, `.html.tera` and `.txt.tera` \
                     in the templates folder); known: {}",
                    known.join(", ")
                ),
            );
        }
        let Some(to) = to else {
            self.problem(span, format!("mail `{template}` needs `to`: the roles that receive it"));
            return None;
        };
        let mut roles = Vec::new();
        for role in to.to_vec() {
            if self.roles.contains_key(&role) {
                roles.push(role);
            } else {
                let known = self.known_roles();
                self.problem(
                    span,
                    format!("mail `{template}` goes to undeclared role `{role}`; declared roles: {known}"),
                );
            }
        }
        Some(Mail {
            template: template.to_string(),
            to: roles,
            escalate,
        })
    }
}

/// A slot the renderer can fill: built in, or declared with a `template`.
pub(super) fn rendered_slot(raw: &RawDefinition, slot: &str) -> bool {
    DocumentRule::builtin(slot).is_some()
        || raw
            .documents
            .get(slot)
            .is_some_and(|rule| rule.get_ref().template.is_some())
}
