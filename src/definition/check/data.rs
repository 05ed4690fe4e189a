//! What the engine and the document templates read of a case's data, held to what the
//! definition declares: the parties a case keeps typed in (`[typed_parties]`), the one
//! field of each kind the engine reads by its kind (`deadline`, `destination`), and what
//! the Typst templates of the documents it renders print.

use std::collections::{BTreeMap, BTreeSet};

use super::{Checker, Undeclared, declared_paths};
use crate::{
    definition::{ContextEntry, DocumentRule, Effect, Form, State, Transition, raw::RawDefinition},
    domain::parties::{EMPLOYER_FIELDS, SCHOOL_FIELDS, STUDENT_FIELDS},
};

/// The parties of a case, each with the fields its synced record has.
const PARTIES: &[(&str, &[(&str, &str)])] = &[
    ("student", STUDENT_FIELDS),
    ("employer", EMPLOYER_FIELDS),
    ("school", SCHOOL_FIELDS),
];

impl Checker<'_> {
    /// `[typed_parties]`: each names a party of the case and the data path its forms
    /// declare its fields under; each field is one the party's record has or a document
    /// template prints of it, so what is typed in is what documents and mail show.
    /// Required, empty when every party is synced: whether a party is typed in is the
    /// definition's decision, never a guess of the engine's.
    pub(super) fn typed_parties(&mut self, raw: &RawDefinition) -> BTreeMap<String, String> {
        let Some(table) = &raw.typed_parties else {
            if self.undeclared == Undeclared::StoredBefore {
                // Stored before the table existed: documents and mail read the case data's
                // object named after each party over its record, as they did then.
                return PARTIES.iter().map(|(p, _)| (p.to_string(), p.to_string())).collect();
            }
            self.problem(
                &raw.name.span(),
                "declare `[typed_parties]`: the parties this workflow's cases keep typed into their data \
                 (`employer = \"employer\"` for an agreement whose employer is not on the platform), \
                 or an empty table when every party is synced",
            );
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (party, path) in table.get_ref() {
            let span = path.span();
            let Some((_, record)) = PARTIES.iter().find(|(p, _)| p == party) else {
                self.problem(
                    &span,
                    format!("typed_parties names `{party}`, which is not a party of a case; parties: student, employer, school"),
                );
                continue;
            };
            let prefix = format!("{}.", path.get_ref());
            let printed = self.printed_of(party);
            let mut typed = 0;
            for field in raw.forms.values().flat_map(|f| &f.get_ref().fields) {
                let Some(name) = field.get_ref().name.strip_prefix(&prefix) else {
                    continue;
                };
                typed += 1;
                if !record.iter().any(|(f, _)| *f == name) && !printed.contains(name) {
                    let known: Vec<&str> = record.iter().map(|(f, _)| *f).collect();
                    self.problem(
                        &field.span(),
                        format!(
                            "`{prefix}{name}` is typed in as the {party}'s `{name}`, which neither the {party}'s record \
                             nor a document template has, so no document or mail would show it; the record has: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
            if typed == 0 {
                self.problem(
                    &span,
                    format!(
                        "typed_parties.{party} keeps the {party} under `{}`, but no form declares a field there (`{prefix}name`, …)",
                        path.get_ref()
                    ),
                );
            }
            out.insert(party.clone(), path.get_ref().clone());
        }
        out
    }

    /// The keys a document template prints of a section (`employer`), any template.
    fn printed_of(&self, section: &str) -> BTreeSet<String> {
        self.catalog
            .document_reads
            .values()
            .filter_map(|reads| reads.sections.get(section))
            .flatten()
            .cloned()
            .collect()
    }

    /// The form field of `kind` the engine reads by its kind: the `deadline` mail counts
    /// down to, the `destination` a registration's record is written from. A field whose
    /// value `moves` into another on approval is a staged value (a correction's), not it;
    /// of the rest there is one, or `chosen` names it (`[destination_record] registration`).
    pub(super) fn field_of_kind(
        &mut self,
        raw: &RawDefinition,
        kind: &str,
        chosen: Option<&toml::Spanned<String>>,
    ) -> Option<String> {
        let of_kind: Vec<&toml::Spanned<crate::definition::raw::RawField>> = raw
            .forms
            .values()
            .flat_map(|f| &f.get_ref().fields)
            .filter(|f| f.get_ref().kind == kind)
            .collect();
        if let Some(chosen) = chosen {
            if !of_kind.iter().any(|f| f.get_ref().name == *chosen.get_ref()) {
                let names: Vec<&str> = of_kind.iter().map(|f| f.get_ref().name.as_str()).collect();
                self.problem(
                    &chosen.span(),
                    format!(
                        "`{}` is not a field of kind `{kind}`; fields of that kind: {}",
                        chosen.get_ref(),
                        names.join(", ")
                    ),
                );
            }
            return Some(chosen.get_ref().clone());
        }
        let staged: BTreeSet<&str> = std::iter::once(&raw.start)
            .chain(&raw.transitions)
            .flat_map(|t| &t.get_ref().moves)
            .map(|m| m.get_ref().from.as_str())
            .collect();
        let mut found: Option<String> = None;
        for field in of_kind {
            let f = field.get_ref();
            if staged.contains(f.name.as_str()) {
                continue;
            }
            match &found {
                None => found = Some(f.name.clone()),
                Some(first) if *first == f.name => {}
                Some(first) => {
                    let choose = if kind == "destination" {
                        "; name the one the destination record is written from with `[destination_record] registration`"
                    } else {
                        ""
                    };
                    self.problem(
                        &field.span(),
                        format!(
                            "`{}` is a second field of kind `{kind}` beside `{first}`; a case has one {kind}, read by its kind{choose}",
                            f.name
                        ),
                    );
                }
            }
        }
        found
    }

    /// What the Typst templates of the documents this definition renders print, held to
    /// what it declares: a case-data path a template prints (`case-field(…)`) is a
    /// declared path, and each `[document_context]` name is printed as `terms.NAME` by
    /// one of them — so a renamed field cannot leave a document blank unnoticed.
    pub(super) fn check_template_reads(
        &mut self,
        raw: &RawDefinition,
        forms: &BTreeMap<String, Form>,
        documents: &BTreeMap<String, DocumentRule>,
        transitions: &[&Transition],
        states: &BTreeMap<String, State>,
        document_context: &[ContextEntry],
    ) {
        let slots: BTreeSet<&str> = transitions
            .iter()
            .flat_map(|t| &t.effects)
            .chain(states.values().flat_map(|s| &s.on_enter))
            .filter_map(|e| match e {
                Effect::Render(slot) => Some(slot.as_str()),
                _ => None,
            })
            .collect();
        let known = declared_paths(raw, forms);
        let mut printed_terms = BTreeSet::new();
        for slot in slots {
            let rule = documents.get(slot).cloned().or_else(|| DocumentRule::builtin(slot));
            let Some(template) = rule.and_then(|r| r.template) else {
                continue;
            };
            let Some(reads) = self.catalog.document_reads.get(&template.name) else {
                continue;
            };
            printed_terms.extend(reads.sections.get("terms").into_iter().flatten().cloned());
            let span = raw
                .documents
                .get(slot)
                .map(|r| r.span())
                .unwrap_or_else(|| raw.name.span());
            for path in &reads.case_paths {
                if !known.contains(path) {
                    self.problem(
                        &span,
                        format!(
                            "document `{slot}` prints the case's `{path}` ({}.typ), which no form declares; data paths: {}",
                            template.name,
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if printed_terms.is_empty() {
            return;
        }
        for entry in document_context {
            if !printed_terms.contains(&entry.name) {
                let span = raw.document_context[&entry.name].span();
                self.problem(
                    &span,
                    format!(
                        "document_context.{} is printed by no template this workflow renders; they print terms: {}",
                        entry.name,
                        printed_terms.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}
