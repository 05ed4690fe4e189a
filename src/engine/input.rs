//! Validates what an actor submits with a transition against the forms the definition
//! asks for, and merges it into the case data. Every problem is collected, each naming
//! its field (`input.terms.archive_unit`), in Chinese and English.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::{
    definition::{Field, Form},
    domain::{self, FieldError},
};

/// Flattens nested objects into dotted names: `{"terms": {"a": 1}}` → `terms.a`.
pub fn flatten(input: &Map<String, Value>) -> Vec<(String, Value)> {
    flatten_except(input, "", &[])
}

/// Like [`flatten`], but an object at one of the `whole` names stays one value (a field
/// whose value is an object, such as a `destination` registration).
fn flatten_except(input: &Map<String, Value>, prefix: &str, whole: &[&str]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, value) in input {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() && !whole.contains(&name.as_str()) => {
                out.extend(flatten_except(inner, &name, whole));
            }
            other => out.push((name, other.clone())),
        }
    }
    out
}

/// Sets `data[a][b] = value` for the dotted name `a.b`, creating objects on the way.
pub fn set_path(data: &mut Value, name: &str, value: Value) {
    let mut node = data;
    let mut parts = name.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut().expect("just made an object");
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Removes and returns `data[a][b]` for the dotted name `a.b`.
pub fn take_path(data: &mut Value, name: &str) -> Option<Value> {
    let (parent, last) = match name.rsplit_once('.') {
        Some((parent, last)) => (parent.split('.').try_fold(data, |node, part| node.get_mut(part))?, last),
        None => (data, name),
    };
    parent.as_object_mut()?.remove(last)
}

/// Reads `data[a][b]` for the dotted name `a.b`.
pub fn get_path<'a>(data: &'a Value, name: &str) -> Option<&'a Value> {
    name.split('.').try_fold(data, |node, part| node.get(part))
}

/// Checks `input` against the fields of `forms`; returns the normalised values by name.
pub fn validate(forms: &[&Form], input: &Value, now: DateTime<Utc>) -> Result<Vec<(String, Value)>, Vec<FieldError>> {
    let Some(object) = input.as_object() else {
        return Err(vec![
            FieldError::new("type", "输入应为 JSON 对象", "input must be a JSON object").with_field("input"),
        ]);
    };
    let fields: Vec<&Field> = forms.iter().flat_map(|f| &f.fields).collect();
    let mut errors = Vec::new();
    let whole: Vec<&str> = fields
        .iter()
        .filter(|f| OBJECT_KINDS.contains(&f.kind.as_str()))
        .map(|f| f.name.as_str())
        .collect();
    let given = flatten_except(object, "", &whole);
    for (name, _) in &given {
        if !fields.iter().any(|f| &f.name == name) {
            errors.push(
                FieldError::new(
                    "unknown_field",
                    format!("此操作不接受字段 {name}"),
                    format!("this action does not take the field {name}"),
                )
                .with_field(format!("input.{name}")),
            );
        }
    }
    let mut values = Vec::new();
    for field in fields {
        let value = given
            .iter()
            .find(|(n, _)| n == &field.name)
            .map(|(_, v)| v)
            .filter(|v| !is_blank(v));
        match (value, field.kind.as_str()) {
            (Some(v), "destination") => match destination(v) {
                Ok(v) => values.push((field.name.clone(), v)),
                Err(list) => errors.extend(list.into_iter().map(|mut e| {
                    e.field = format!("input.{}.{}", field.name, e.field);
                    e
                })),
            },
            (Some(v), _) => match check_field(field, v, now) {
                Ok(v) => values.push((field.name.clone(), v)),
                Err(mut e) => {
                    e.field = format!("input.{}", field.name);
                    errors.push(e);
                }
            },
            (None, "deadline") => {
                let default = now + field.default_after.unwrap_or_default();
                values.push((field.name.clone(), Value::String(default.to_rfc3339())));
            }
            (None, _) if field.required => errors.push(
                FieldError::new(
                    "required",
                    format!("请填写{}", label_zh(field)),
                    format!("{} is required", label_en(field)),
                )
                .with_field(format!("input.{}", field.name)),
            ),
            (None, _) => {}
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

/// Kinds whose value is a JSON object, kept whole rather than flattened into fields.
const OBJECT_KINDS: &[&str] = &["destination"];

/// A destination registration: `{ "category": "11", "fields": { … } }`, checked against
/// the reference data's category (every problem at once, each named
/// `fields.<name>` or `category`), and normalised with the category's name and the
/// number of proofs it requires (`min_proofs`), for guards such as
/// `documents.proof >= data.destination.min_proofs`. A category that only an approved
/// agreement writes (10, `written_by_agreement`) cannot be registered by hand (R2).
fn destination(value: &Value) -> Result<Value, Vec<FieldError>> {
    let reference = domain::Reference::builtin();
    let Some(object) = value.as_object() else {
        return Err(vec![
            type_error(
                "毕业去向登记（category 与 fields）",
                "a destination registration (category and fields)",
            )
            .with_field("category"),
        ]);
    };
    // Codes are ASCII digits; full-width digits typed on a Chinese keyboard are accepted.
    let code: String = object
        .get("category")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            other => other,
        })
        .collect();
    let code = code.as_str();
    let Some(category) = reference.category(code) else {
        let e = if code.is_empty() {
            FieldError::new("required", "请选择毕业去向", "the destination category is required")
        } else {
            FieldError::new(
                "destination.unknown",
                format!("“{code}”不是有效的毕业去向代码"),
                format!("'{code}' is not a known destination code"),
            )
        };
        return Err(vec![e.with_field("category")]);
    };
    if category.written_by_agreement {
        return Err(vec![
            FieldError::new(
                "destination.by_agreement",
                format!(
                    "“{}”由审核通过的就业协议自动生成，请通过线上或线下签约办理",
                    category.name_zh
                ),
                format!(
                    "'{}' is written by an approved agreement; use online or offline signing",
                    category.name_en
                ),
            )
            .with_field("category"),
        ]);
    }
    let mut errors: Vec<FieldError> = object
        .keys()
        .filter(|k| *k != "category" && *k != "fields")
        .map(|k| {
            FieldError::new(
                "unknown_field",
                format!("毕业去向登记没有 {k} 一项"),
                format!("a destination registration has no {k}"),
            )
            .with_field(k.as_str())
        })
        .collect();
    let empty = Map::new();
    let fields = match object.get("fields") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(type_error("对象", "an object").with_field("fields"));
            &empty
        }
    };
    let normalised = match reference.validate_registration(code, fields) {
        Ok(map) => map,
        Err(list) => {
            errors.extend(list.into_iter().map(|e| {
                let name = format!("fields.{}", e.field);
                e.with_field(name)
            }));
            Map::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let required: Vec<_> = category.proofs.iter().filter(|p| p.required).collect();
    Ok(serde_json::json!({
        "category": code,
        "category_name": category.name_zh,
        "category_name_en": category.name_en,
        "fields": normalised,
        "min_proofs": required.iter().map(|p| i64::from(p.min_count)).sum::<i64>(),
        "proofs": required.iter().map(|p| serde_json::json!({ "kind": p.kind, "label_zh": p.label_zh, "label_en": p.label_en, "min_count": p.min_count })).collect::<Vec<_>>(),
    }))
}

fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

fn label_zh(field: &Field) -> String {
    field
        .label
        .as_deref()
        .and_then(|l| l.split(" / ").next())
        .unwrap_or(&field.name)
        .to_string()
}

fn label_en(field: &Field) -> String {
    field
        .label
        .as_deref()
        .and_then(|l| l.split(" / ").nth(1))
        .unwrap_or(&field.name)
        .to_string()
}

/// One field's value: `deadline` is the engine's own kind (it needs the clock); every
/// other kind is the domain validator of that name — the same check the reference data
/// gets — and then the field's length limits.
fn check_field(field: &Field, value: &Value, now: DateTime<Utc>) -> Result<Value, FieldError> {
    if field.kind == "deadline" {
        return deadline(field, value, now);
    }
    let value = domain::validate(&field.kind, value)?;
    check_length(field, &value)?;
    Ok(value)
}

fn type_error(zh: &str, en: &str) -> FieldError {
    FieldError::new("type", format!("应为{zh}"), format!("expected {en}"))
}

/// A text value's `min` and `max`, in characters.
fn check_length(field: &Field, value: &Value) -> Result<(), FieldError> {
    let Some(s) = value.as_str() else { return Ok(()) };
    let chars = s.chars().count();
    if let Some(max) = field.max
        && chars > max
    {
        return Err(FieldError::new(
            "too_long",
            format!("{}最多 {max} 个字，现为 {chars} 个", label_zh(field)),
            format!("{} takes at most {max} characters, got {chars}", label_en(field)),
        ));
    }
    if let Some(min) = field.min
        && chars < min
    {
        return Err(FieldError::new(
            "too_short",
            format!("{}至少 {min} 个字", label_zh(field)),
            format!("{} needs at least {min} characters", label_en(field)),
        ));
    }
    Ok(())
}

/// A moment after now and no later than `max_after` from now.
fn deadline(field: &Field, value: &Value, now: DateTime<Utc>) -> Result<Value, FieldError> {
    let s = value
        .as_str()
        .ok_or_else(|| type_error("时间（RFC 3339）", "a date-time (RFC 3339)"))?;
    let at = DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                "datetime",
                format!("“{s}”不是有效时间，例如 2026-12-01T17:00:00+08:00"),
                format!("{s:?} is not a date-time such as 2026-12-01T17:00:00+08:00"),
            )
        })?;
    if at <= now {
        return Err(FieldError::new(
            "in_the_past",
            "截止时间须晚于当前时间",
            "the deadline must be in the future",
        ));
    }
    if let Some(max) = field.max_after
        && at > now + max
    {
        let days = max.num_days();
        return Err(FieldError::new(
            "too_far",
            format!("截止时间不得晚于 {days} 天之后"),
            format!("the deadline must be within {days} days"),
        ));
    }
    Ok(Value::String(at.to_rfc3339()))
}
