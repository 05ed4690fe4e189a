//! Checking a destination registration (其他去向登记) against its category: fields, lengths, code lists, proofs.
//!
//! All problems are reported at once, so a student fixes the whole form in one pass instead of
//! discovering errors one submission at a time.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::FieldError;
use super::reference::{CodeList, FieldSpec, Reference};
use super::validators::validate;

impl Reference {
    /// Validates the fields of a registration under destination `code` (two or three digits) and
    /// returns them normalised; optional fields left blank are omitted from the result.
    ///
    /// Whether the student may register this code by hand (not 10, see `Category::written_by_agreement`)
    /// is the workflow's decision, not this function's.
    pub fn validate_registration(
        &self,
        code: &str,
        fields: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Vec<FieldError>> {
        let Some(category) = self.category(code) else {
            return Err(vec![unknown_destination(code)]);
        };
        let mut errors: Vec<FieldError> = fields
            .keys()
            .filter(|key| category.field(key).is_none())
            .map(|key| unknown_field(key))
            .collect();
        let mut normalised = Map::new();
        for spec in &category.fields {
            match self.validate_field(spec, fields.get(&spec.name)) {
                Ok(Some(value)) => {
                    normalised.insert(spec.name.clone(), value);
                }
                Ok(None) => {}
                Err(e) => errors.push(e.with_field(&spec.name)),
            }
        }
        if errors.is_empty() { Ok(normalised) } else { Err(errors) }
    }

    /// Checks that every required proof of destination `code` is uploaded at least `min_count` times.
    /// `counts` maps proof kinds to the number of files uploaded for each.
    pub fn validate_proofs(&self, code: &str, counts: &BTreeMap<String, u32>) -> Result<(), Vec<FieldError>> {
        let Some(category) = self.category(code) else {
            return Err(vec![unknown_destination(code)]);
        };
        let mut errors: Vec<FieldError> = counts
            .keys()
            .filter(|kind| !category.proofs.iter().any(|p| &p.kind == *kind))
            .map(|kind| {
                FieldError::new(
                    "proof.unknown",
                    "该毕业去向不需要这类证明材料",
                    "this destination does not take this kind of proof",
                )
                .with_field(kind.as_str())
            })
            .collect();
        for proof in category.proofs.iter().filter(|p| p.required) {
            if counts.get(&proof.kind).copied().unwrap_or(0) < proof.min_count {
                let error = FieldError::new(
                    "proof.missing",
                    format!("请上传{}（至少{}份）", proof.label_zh, proof.min_count),
                    format!("{} is required (at least {})", proof.label_en, proof.min_count),
                );
                errors.push(error.with_field(proof.kind.as_str()));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// `Ok(None)` for an optional field left blank.
    fn validate_field(&self, spec: &FieldSpec, value: Option<&Value>) -> Result<Option<Value>, FieldError> {
        let Some(value) = value.filter(|v| !is_blank(v)) else {
            return if spec.required { Err(required(spec)) } else { Ok(None) };
        };
        let normalised = validate(&spec.kind, value)?;
        check_length(spec, &normalised)?;
        match &spec.code_list {
            Some(name) => {
                let list = self
                    .code_list(name)
                    .expect("code lists are cross-checked when the files load");
                resolve_code(spec, list, &normalised).map(Some)
            }
            None => Ok(Some(normalised)),
        }
    }
}

/// Absent, `null` and whitespace-only strings all mean "not filled in": forms send all three.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn check_length(spec: &FieldSpec, value: &Value) -> Result<(), FieldError> {
    let (Some(max), Some(s)) = (spec.max_len, value.as_str()) else {
        return Ok(());
    };
    let length = s.chars().count();
    if length <= max {
        return Ok(());
    }
    Err(FieldError::new(
        "field.too_long",
        format!("{}最多{max}个字，当前{length}个字", spec.label_zh),
        format!("{} must be at most {max} characters, got {length}", spec.label_en),
    ))
}

/// Stores the entry's code whichever spelling (code, Chinese name, alias) the student used.
fn resolve_code(spec: &FieldSpec, list: &CodeList, value: &Value) -> Result<Value, FieldError> {
    let input = value.as_str().unwrap_or_default();
    list.lookup(input)
        .map(|entry| Value::String(entry.code.clone()))
        .ok_or_else(|| {
            FieldError::new(
                "field.not_in_list",
                format!("“{input}”不是有效的{}，请从列表中选择", spec.label_zh),
                format!("'{input}' is not a valid {}; choose one from the list", spec.label_en),
            )
        })
}

fn required(spec: &FieldSpec) -> FieldError {
    FieldError::new(
        "field.required",
        format!("请填写{}", spec.label_zh),
        format!("{} is required", spec.label_en),
    )
}

fn unknown_field(name: &str) -> FieldError {
    FieldError::new(
        "field.unknown",
        "该毕业去向没有这一项",
        "this destination has no such field",
    )
    .with_field(name)
}

fn unknown_destination(code: &str) -> FieldError {
    FieldError::new(
        "destination.unknown",
        format!("“{code}”不是有效的毕业去向代码"),
        format!("'{code}' is not a known destination code"),
    )
    .with_field("destination_code")
}
