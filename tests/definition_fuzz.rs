//! Fuzzes the definition parser and checker: the shipped definitions, mutated at random
//! (lines dropped, duplicated or swapped, spans replaced by tokens that have broken the
//! checker before — absurd durations, odd CEL, names of other states), must be refused
//! with problems or accepted, never panic; and what is accepted must not hold a duration
//! that overflows a date when the engine adds it to the clock.
//!
//! The suite runs a bounded number of cases (`PROPTEST_CASES`, default 64 per
//! definition); run it longer by hand with, say, `PROPTEST_CASES=20000`.

use std::path::Path;

use gradsign::definition::{Catalog, Definition, TimerDue, graph};
use proptest::prelude::*;

fn catalog() -> Catalog {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    gradsign::app::catalog_in(&root).unwrap().0
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("workflows/{name}.toml"))).unwrap()
}

/// Tokens worth splicing in: values that overflowed, parsed oddly or typed wrongly before.
const TOKENS: &[&str] = &[
    "99999999999999d",
    "100000000d",
    "3660d",
    "3661d",
    "0d",
    "1d12h",
    "9223372036854775807s",
    "-1d",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    ".",
    "!employer.receives_archive > 1",
    "size(data) > 1.5",
    "data.terms.position + 1",
    "data.x.y.z",
    "input.deadline < params.invitation_valid_for",
    "[1, 'a'].all(x, x)",
    "{'a': 1}.exists(k, k)",
    "held_elsewhere.destination ? 1 : 'a'",
    "has(data.terms.position)",
    "documents['stamped_agreement'] >= 1",
    "actor.role in ['student']",
    "((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))",
    "submitted",
    "confirming",
    "approved",
    "destination",
    "system",
    "platform_admin",
    "record_destination",
    "render_agreement",
    "deadline",
    "测试",
    "\u{202e}",
    "1e308",
    "true",
    "18446744073709551616",
];

#[derive(Debug, Clone)]
enum Mutation {
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace the `len` bytes (at char boundaries) from `at` with a token.
    Splice {
        at: usize,
        len: usize,
        token: usize,
    },
    /// Replace a quoted value of a `key = "value"` line with a token.
    Value {
        line: usize,
        token: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..24, 0..TOKENS.len()).prop_map(|(at, len, token)| Mutation::Splice { at, len, token }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(line, token)| Mutation::Value { line, token }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(line, token)| Mutation::Value { line, token }),
    ]
}

fn apply(source: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match *m {
        Mutation::DropLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::Splice { at, len, token } => {
            let mut text = lines.join("\n");
            let mut start = at % (text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(start..end, TOKENS[token]);
            return text;
        }
        Mutation::Value { line, token } => {
            // The n-th line holding `= "…"`.
            let quoted: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].contains("= \"")).collect();
            if let Some(&i) = quoted.get(line % quoted.len().max(1)) {
                let l = &lines[i];
                let open = l.find("= \"").unwrap() + 3;
                if let Some(close) = l[open..].find('"') {
                    lines[i] = format!("{}{}{}", &l[..open], TOKENS[token], &l[open + close..]);
                }
            }
        }
    }
    lines.join("\n")
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Whatever a mutated definition is, checking it answers; an accepted one computes
/// every date it may need without overflowing.
fn check_one(name: &str, catalog: &Catalog, source: &str) {
    let Ok(def) = Definition::parse(&format!("{name}.toml"), source, catalog) else {
        return;
    };
    let _ = graph::mermaid(&def);
    let far = chrono::DateTime::parse_from_rfc3339("2099-12-31T23:59:59Z")
        .unwrap()
        .to_utc();
    for state in def.states.values() {
        for timer in &state.timers {
            if let TimerDue::After(d) = timer.due {
                assert!(
                    far.checked_add_signed(d).is_some(),
                    "{name}: timer of {} overflows",
                    state.name
                );
            }
            if let Some(before) = timer.before {
                assert!(far.checked_sub_signed(before).is_some());
            }
        }
    }
    for field in def.forms.values().flat_map(|f| &f.fields) {
        for d in [field.default_after, field.max_after].into_iter().flatten() {
            assert!(
                far.checked_add_signed(d).is_some(),
                "{name}: field {} overflows",
                field.name
            );
        }
    }
}

fn fuzz(name: &str) {
    let catalog = catalog();
    let source = shipped(name);
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(mutations in proptest::collection::vec(mutation(), 1..6))| {
        let mut text = source.clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        check_one(name, &catalog, &text);
    });
}

#[test]
fn mutated_online_signing_definitions_never_panic_the_checker() {
    fuzz("online_signing");
}

#[test]
fn mutated_offline_signing_definitions_never_panic_the_checker() {
    fuzz("offline_signing");
}

#[test]
fn mutated_destination_registration_definitions_never_panic_the_checker() {
    fuzz("destination_registration");
}

/// Arbitrary text, not only mutations of a good file.
#[test]
fn arbitrary_text_never_panics_the_checker() {
    let catalog = catalog();
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(text in "\\PC{0,400}")| {
        check_one("online_signing", &catalog, &text);
    });
}

/// The reader of the Typst templates (what each prints, for the checker) answers for any
/// text: the shipped templates cut and spliced with calls, quotes and comments.
#[test]
fn any_template_text_is_read_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/agreement/agreement.typ");
    let shipped = std::fs::read_to_string(root).unwrap();
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let pieces = prop_oneof![
        Just("field(\"".to_string()),
        Just("case-field(".to_string()),
        Just("\", \"".to_string()),
        Just("//".to_string()),
        Just("\\\"".to_string()),
        Just(")".to_string()),
        "\\PC{0,12}",
    ];
    proptest!(config, |(at in 0usize..shipped.len(), cut in 0usize..200, spliced in proptest::collection::vec(pieces, 0..8))| {
        let mut start = at;
        while !shipped.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(shipped.len());
        while !shipped.is_char_boundary(end) {
            end += 1;
        }
        let text = format!("{}{}{}", &shipped[..start], spliced.concat(), &shipped[end..]);
        let _ = gradsign::definition::TemplateReads::of_source(&text);
    });
}
