//! 毕业去向落实率: the formulas (which destination groups count) read from
//! `reference/destination_rate.toml`, and the counts a statistics answer is made of. The
//! counting is pure: the store hands over (group key, category code, graduates) rows.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::Reference;

pub const RATE_FILE: &str = "destination_rate.toml";
const BUILTIN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/reference/destination_rate.toml"));

/// One formula: the destination groups that count, less any codes it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Formula {
    pub name: String,
    pub title_zh: String,
    pub title_en: String,
    pub groups: Vec<String>,
    #[serde(default)]
    pub exclude_codes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Formulas {
    pub default: String,
    #[serde(rename = "formula")]
    pub formulas: Vec<Formula>,
}

impl Formulas {
    /// The formulas built into the binary (checked by a test against the reference data).
    pub fn builtin() -> &'static Formulas {
        static BUILT: OnceLock<Formulas> = OnceLock::new();
        BUILT.get_or_init(|| Formulas::parse(BUILTIN).expect("the built-in rate formulas parse"))
    }

    /// Parses the file and checks every group and code it names against the categories.
    pub fn parse(text: &str) -> Result<Formulas, String> {
        let formulas: Formulas = toml::from_str(text).map_err(|e| format!("{RATE_FILE}: {e}"))?;
        let reference = Reference::builtin();
        for f in &formulas.formulas {
            for group in &f.groups {
                if !reference.categories().iter().any(|c| &c.group == group) {
                    return Err(format!(
                        "{RATE_FILE}: formula {}: no category is in group {group}",
                        f.name
                    ));
                }
            }
            for code in &f.exclude_codes {
                if reference.category(code).is_none() {
                    return Err(format!("{RATE_FILE}: formula {}: no category {code}", f.name));
                }
            }
        }
        if formulas.get(&formulas.default).is_none() {
            return Err(format!(
                "{RATE_FILE}: the default formula {} is not defined",
                formulas.default
            ));
        }
        Ok(formulas)
    }

    pub fn get(&self, name: &str) -> Option<&Formula> {
        self.formulas.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.formulas.iter().map(|f| f.name.as_str()).collect()
    }
}

impl Formula {
    /// Whether a graduate whose record in force has `code` counts as placed.
    pub fn counts(&self, code: &str) -> bool {
        let reference = Reference::builtin();
        let parent = code.get(..2).unwrap_or(code);
        let group = reference.category(parent).map(|c| c.group.as_str());
        group.is_some_and(|g| self.groups.iter().any(|x| x == g))
            && !self.exclude_codes.iter().any(|x| x == code || x == parent)
    }
}

/// The counts for one group of graduates (a college, a major, … or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// The group's key (the college's name, a 学历 code, a province code, a school id);
    /// empty for the graduates whose record leaves it blank; absent for the total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub graduates: i64,
    /// Graduates with a destination record in force on the date asked.
    pub with_destination: i64,
    pub without_destination: i64,
    /// Graduates per destination category code (`10`, `80`, …).
    pub by_category: BTreeMap<String, i64>,
    /// Graduates per destination group (`agreement_or_contract`, `further_study`, …).
    pub by_group: BTreeMap<String, i64>,
    /// Graduates the formula counts as placed.
    pub placed: i64,
    /// 毕业去向落实率: `placed / graduates`, 0 when there are none.
    pub rate: f64,
}

/// Adds up `(key, category code or none, graduates)` rows into per-key counts and a total.
pub fn tally(rows: &[(Option<String>, Option<String>, i64)], formula: &Formula) -> (Counts, Vec<Counts>) {
    let reference = Reference::builtin();
    let mut total = Counts::default();
    let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
    for (key, code, n) in rows {
        let key = key.clone().unwrap_or_default();
        let entry = groups.entry(key.clone()).or_insert_with(|| Counts {
            key: Some(key),
            ..Counts::default()
        });
        for counts in [&mut total, entry] {
            counts.graduates += n;
            match code {
                None => counts.without_destination += n,
                Some(code) => {
                    counts.with_destination += n;
                    *counts.by_category.entry(code.clone()).or_default() += n;
                    let parent = code.get(..2).unwrap_or(code);
                    let group = reference.category(parent).map(|c| c.group.clone()).unwrap_or_default();
                    *counts.by_group.entry(group).or_default() += n;
                    if formula.counts(code) {
                        counts.placed += n;
                    }
                }
            }
        }
    }
    let mut groups: Vec<Counts> = groups.into_values().collect();
    for counts in std::iter::once(&mut total).chain(groups.iter_mut()) {
        counts.rate = if counts.graduates == 0 {
            0.0
        } else {
            counts.placed as f64 / counts.graduates as f64
        };
    }
    (total, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_formulas_name_known_groups() {
        let f = Formulas::builtin();
        assert_eq!(f.names(), ["2021", "2024"]);
        assert!(f.get("2021").unwrap().counts("76"));
        assert!(!f.get("2024").unwrap().counts("76"));
        assert!(f.get("2024").unwrap().counts("502"));
        assert!(!f.get("2021").unwrap().counts("70"));
    }

    #[test]
    fn a_formula_naming_an_unknown_group_is_refused() {
        let text = BUILTIN.replace("\"startup\"", "\"start_up\"");
        assert!(Formulas::parse(&text).unwrap_err().contains("start_up"));
    }

    #[test]
    fn tally_counts_every_graduate_once() {
        let f = Formulas::builtin().get("2021").unwrap();
        let rows = vec![
            (Some("A".into()), Some("10".into()), 3),
            (Some("A".into()), None, 1),
            (Some("B".into()), Some("70".into()), 2),
        ];
        let (total, groups) = tally(&rows, f);
        assert_eq!((total.graduates, total.with_destination, total.placed), (6, 5, 3));
        assert_eq!(total.rate, 0.5);
        assert_eq!(groups[0].by_group["agreement_or_contract"], 3);
        assert_eq!(groups[1].without_destination, 0);
    }
}
