//! `FieldError`: the one error shape that every domain parser and validator returns — bilingual, keyed by a stable code.

use serde::Serialize;

/// A value a user typed was refused.
///
/// `code` is what programs key on (problem types, client-side highlighting, the review override for
/// `credit_code.checksum`), so a code is never renamed once published. `zh` is written for the student
/// who typed the value; `en` follows the project's error style (lower-case, no trailing period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct FieldError {
    /// The form field the value came from. Parsers leave it empty because they do not know which
    /// field they are parsing; the caller fills it in with [`FieldError::with_field`].
    pub field: String,
    /// Stable machine-readable code, `<kind>.<problem>`, e.g. `credit_code.checksum`.
    pub code: &'static str,
    /// Message for the student, in Chinese.
    pub zh: String,
    /// Message in English, lower-case without a trailing period.
    pub en: String,
}

impl FieldError {
    pub fn new(code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            field: String::new(),
            code,
            zh: zh.into(),
            en: en.into(),
        }
    }

    /// Names the field the refused value came from.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    fn describe(&self) -> String {
        if self.field.is_empty() {
            self.en.clone()
        } else {
            format!("{}: {}", self.field, self.en)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prefixes_the_field_once_it_is_known() {
        let e = FieldError::new("x.y", "错", "wrong");
        assert_eq!(e.to_string(), "wrong");
        assert_eq!(e.with_field("phone").to_string(), "phone: wrong");
    }
}
