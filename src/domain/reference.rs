//! `Reference`: destination categories (毕业去向) and code lists, read from `reference/*.toml` at run time
//! or from the copies built into the binary. It owns the file format and its cross-checks; what a
//! registration must contain is checked in `registration.rs`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::text::{all_digits, to_half_width};
use super::validators::known_kind;

pub const CATEGORIES_FILE: &str = "destination_categories.toml";
pub const CODE_LISTS_FILE: &str = "code_lists.toml";

const BUILTIN_CATEGORIES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/reference/destination_categories.toml"
));
const BUILTIN_CODE_LISTS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/reference/code_lists.toml"));

/// A reference file could not be read or says something invalid. Every `Invalid` names the file and
/// the 1-based line and column, because the people who fix these files are editing text, not Rust.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One 毕业去向 category with the fields and proofs a registration under it needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Category {
    /// Two-digit Ministry code, e.g. `"11"`. Stored as a string: codes are names, and `"01"`-style
    /// codes exist in sibling tables.
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Stable slug such as `agreement_or_contract`, `flexible`, `further_study`, `unemployed`.
    pub group: String,
    pub group_zh: String,
    /// Only an approved agreement writes this category (code 10); students never register it by hand.
    pub written_by_agreement: bool,
    pub fields: Vec<FieldSpec>,
    pub proofs: Vec<ProofSpec>,
}

impl Category {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A field the student fills in for a category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub name: String,
    pub label_zh: String,
    pub label_en: String,
    /// A validator kind from [`super::validators::KINDS`].
    pub kind: String,
    pub required: bool,
    /// Maximum length in characters (not bytes) of the normalised value.
    pub max_len: Option<usize>,
    /// When set, the value must be an entry of this code list and is stored as the entry's code.
    pub code_list: Option<String>,
}

/// A document the student uploads as proof (审核依据).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSpec {
    pub kind: String,
    pub label_zh: String,
    pub label_en: String,
    pub required: bool,
    #[serde(default = "one")]
    pub min_count: u32,
}

fn one() -> u32 {
    1
}

/// A known three-digit sub-code. Unknown three-digit codes are still accepted under their parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subcategory {
    pub code: String,
    pub parent: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeList {
    pub name: String,
    pub name_zh: String,
    pub name_en: String,
    pub entries: Vec<CodeEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Other spellings accepted on input, e.g. the GB/T 4754 section letter of an industry.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl CodeList {
    /// Finds the entry a user meant: by code, by Chinese name, or by alias (ASCII case ignored).
    pub fn lookup(&self, input: &str) -> Option<&CodeEntry> {
        let trimmed = input.trim();
        let folded = to_half_width(input);
        self.entries.iter().find(|e| {
            e.code == folded || e.name_zh == trimmed || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(&folded))
        })
    }
}

/// The loaded reference data; immutable once loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    categories: Vec<Category>,
    subcategories: Vec<Subcategory>,
    code_lists: Vec<CodeList>,
}

impl Reference {
    /// Reads `destination_categories.toml` and `code_lists.toml` from `dir` (the project's `reference/`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ReferenceError> {
        let read = |name: &str| {
            let path = dir.as_ref().join(name);
            std::fs::read_to_string(&path).map_err(|source| ReferenceError::Read { path, source })
        };
        Self::from_sources(&read(CATEGORIES_FILE)?, &read(CODE_LISTS_FILE)?)
    }

    /// The copies of the same files compiled into the binary, for tests and for running without a path.
    pub fn builtin() -> &'static Reference {
        static BUILTIN: OnceLock<Reference> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Self::from_sources(BUILTIN_CATEGORIES, BUILTIN_CODE_LISTS)
                .expect("the built-in reference files are valid (checked by tests)")
        })
    }

    /// Parses the two files' contents; errors are reported under the standard file names.
    pub fn from_sources(categories_toml: &str, code_lists_toml: &str) -> Result<Self, ReferenceError> {
        let code_lists = raw::parse_code_lists(&SourceFile {
            name: CODE_LISTS_FILE,
            text: code_lists_toml,
        })?;
        let (categories, subcategories) = raw::parse_categories(
            &SourceFile {
                name: CATEGORIES_FILE,
                text: categories_toml,
            },
            &code_lists,
        )?;
        Ok(Self {
            categories,
            subcategories,
            code_lists,
        })
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn subcategories(&self) -> &[Subcategory] {
        &self.subcategories
    }

    /// The category for a two-digit code, or for a three-digit code through its parent (first two
    /// digits) — also when the three-digit code itself is not in our table, since that table is incomplete.
    pub fn category(&self, code: &str) -> Option<&Category> {
        let code = to_half_width(code);
        let parent = match code.len() {
            2 | 3 if all_digits(&code) => &code[..2],
            _ => return None,
        };
        self.categories.iter().find(|c| c.code == parent)
    }

    /// A known three-digit sub-code.
    pub fn subcategory(&self, code: &str) -> Option<&Subcategory> {
        let code = to_half_width(code);
        self.subcategories.iter().find(|s| s.code == code)
    }

    pub fn code_list(&self, name: &str) -> Option<&CodeList> {
        self.code_lists.iter().find(|l| l.name == name)
    }

    pub fn code_lists(&self) -> &[CodeList] {
        &self.code_lists
    }
}

/// A reference file's name and text, for turning byte spans into line numbers.
struct SourceFile<'a> {
    name: &'a str,
    text: &'a str,
}

impl SourceFile<'_> {
    fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ReferenceError {
        let (line, column) = line_and_column(self.text, span.start);
        ReferenceError::Invalid {
            file: self.name.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ReferenceError> {
        toml::from_str(self.text).map_err(|e| self.error_at(e.span().unwrap_or(0..0), e.message().trim_end()))
    }

    /// Refuses a second occurrence of the same value (codes, names) within one scope.
    fn unique<'s>(
        &self,
        seen: &mut BTreeSet<&'s str>,
        item: &'s Spanned<String>,
        what: &str,
    ) -> Result<(), ReferenceError> {
        if seen.insert(item.get_ref()) {
            return Ok(());
        }
        Err(self.error_at(item.span(), format!("duplicate {what} '{}'", item.get_ref())))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The file format, with spans, and its conversion into the public types above.
mod raw;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 4));
    }

    #[test]
    fn builtin_files_load_and_load_from_the_directory_alike() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/reference");
        assert_eq!(&Reference::load(dir).unwrap(), Reference::builtin());
    }
}
