//! The validator registry: workflow definitions and the reference data name a value kind (`"credit_code"`),
//! and the engine calls [`validate`] with that name — the one check of each kind, wherever the value comes
//! from. It knows values, not fields: required-ness and length limits are the caller's.

use chrono::NaiveDate;
use serde_json::{Number, Value};

use super::codes::{Postcode, RegionCode};
use super::credit_code::CreditCode;
use super::email::Email;
use super::error::FieldError;
use super::id_number::IdNumber;
use super::phone::Phone;
use super::text::to_half_width;

/// Every kind [`validate`] understands; definitions are checked against it when they load.
pub const KINDS: &[&str] = &[
    "text",
    "multiline",
    "credit_code",
    "id_number",
    "phone",
    "email",
    "postcode",
    "region_code",
    "date",
    "bool",
    "integer",
    "money",
];

/// Money above this is a typo (an extra zero run), not a salary or a penalty: 1,000,000,000 yuan.
const MONEY_MAX: f64 = 1e9;

pub fn known_kind(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// Checks `value` as a `kind` and returns it normalised (trimmed, half-width, canonical form).
/// The returned error has an empty `field`; the caller names it with `with_field`.
///
/// # Panics
/// Never; an unknown kind is an error with code `validator.unknown_kind`, because definitions are data.
pub fn validate(kind: &str, value: &Value) -> Result<Value, FieldError> {
    match kind {
        "text" => text(value, false),
        "multiline" => text(value, true),
        "credit_code" => newtype(kind, value, CreditCode::parse),
        "id_number" => newtype(kind, value, IdNumber::parse),
        "phone" => newtype(kind, value, Phone::parse),
        "email" => newtype(kind, value, Email::parse),
        "postcode" => newtype(kind, value, Postcode::parse),
        "region_code" => newtype(kind, value, RegionCode::parse),
        "date" => string(kind, value).and_then(date),
        "bool" => boolean(value),
        "integer" => integer(value),
        "money" => money(value),
        _ => Err(FieldError::new(
            "validator.unknown_kind",
            format!("系统配置错误：未知的校验类型“{kind}”"),
            format!("unknown validator kind '{kind}'"),
        )),
    }
}

/// Parses a string with one of the domain newtypes and returns its normalised form.
fn newtype<T: AsRef<str>>(
    kind: &str,
    value: &Value,
    parse: fn(&str) -> Result<T, FieldError>,
) -> Result<Value, FieldError> {
    let parsed = parse(string(kind, value)?)?;
    Ok(json(parsed.as_ref()))
}

fn json(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The kinds that are codes only accept JSON strings: a number would already have lost leading zeros.
fn string<'v>(kind: &str, value: &'v Value) -> Result<&'v str, FieldError> {
    value.as_str().ok_or_else(|| {
        FieldError::new(
            "value.not_a_string",
            "应填写为文本",
            format!("{kind} must be given as a string"),
        )
    })
}

/// Free text: trimmed, otherwise kept as typed (full-width punctuation is correct Chinese).
/// Control characters are refused — a NUL cannot be stored in PostgreSQL and no font has
/// a glyph for a bell — and so are the invisible controls that reorder text (U+202A–E,
/// U+2066–9), which could make an agreement read differently from what was typed. A
/// `multiline` value may hold line breaks (`\r\n` kept as `\n`) and tabs.
fn text(value: &Value, multiline: bool) -> Result<Value, FieldError> {
    let raw = string(if multiline { "multiline" } else { "text" }, value)?;
    let s = if multiline {
        raw.replace("\r\n", "\n")
    } else {
        raw.to_string()
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(FieldError::new("text.blank", "内容不能为空", "must not be blank"));
    }
    let allowed = |c: char| multiline && (c == '\n' || c == '\t');
    if s.chars().any(|c| (c.is_control() && !allowed(c)) || is_bidi_control(c)) {
        let (zh, en) = if multiline {
            ("内容含有不可见的控制字符", "contains control characters")
        } else {
            (
                "内容含有换行符或其他不可见的控制字符",
                "contains a line break or another control character",
            )
        };
        return Err(FieldError::new("text.control_char", zh, en));
    }
    Ok(json(s))
}

/// The characters that embed, override or isolate the direction of text (bidi controls).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `YYYY-MM-DD`, exactly; `2023-6-1` is refused so that stored dates sort as strings.
fn date(input: &str) -> Result<Value, FieldError> {
    let s = to_half_width(input);
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if shaped && NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok() {
        return Ok(json(&s));
    }
    Err(FieldError::new(
        "date.format",
        format!("日期“{s}”不正确，请按 年-月-日 填写，如 2024-07-01"),
        format!("'{s}' is not a real date in the form yyyy-mm-dd"),
    ))
}

/// JSON booleans, and the strings web forms send for them.
fn boolean(value: &Value) -> Result<Value, FieldError> {
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match to_half_width(s).to_lowercase().as_str() {
            "true" | "是" => Some(true),
            "false" | "否" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed
        .map(Value::Bool)
        .ok_or_else(|| FieldError::new("bool.format", "请选择“是”或“否”", "must be true or false"))
}

fn integer(value: &Value) -> Result<Value, FieldError> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => to_half_width(s).parse::<i64>().ok(),
        _ => None,
    };
    parsed
        .map(Value::from)
        .ok_or_else(|| FieldError::new("integer.format", "应填写整数", "must be a whole number"))
}

/// A non-negative amount in yuan with at most two decimals (fen), returned as a JSON number.
fn money(value: &Value) -> Result<Value, FieldError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => to_half_width(s),
        _ => return Err(money_format()),
    };
    let amount: f64 = text.parse().map_err(|_| money_format())?;
    if !amount.is_finite() {
        return Err(money_format());
    }
    if amount < 0.0 || text.starts_with('-') {
        return Err(FieldError::new(
            "money.negative",
            "金额不能为负数",
            "must not be negative",
        ));
    }
    if amount > MONEY_MAX {
        return Err(FieldError::new(
            "money.too_large",
            "金额过大，请核对",
            "is implausibly large",
        ));
    }
    let fen = amount * 100.0;
    if (fen - fen.round()).abs() > 1e-6 {
        return Err(FieldError::new(
            "money.precision",
            "金额最多保留两位小数",
            "must have at most two decimals",
        ));
    }
    let fen = fen.round() as u64;
    Ok(if fen.is_multiple_of(100) {
        Value::from(fen / 100)
    } else {
        Number::from_f64(fen as f64 / 100.0)
            .map(Value::Number)
            .ok_or_else(money_format)?
    })
}

fn money_format() -> FieldError {
    FieldError::new(
        "money.format",
        "金额应为数字，例如 6500 或 6500.50",
        "must be a number such as 6500 or 6500.50",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_listed_kind_is_handled() {
        for kind in KINDS {
            let err = validate(kind, &json!(null)).err();
            assert_ne!(err.map(|e| e.code), Some("validator.unknown_kind"), "{kind}");
        }
        assert_eq!(
            validate("colour", &json!("red")).unwrap_err().code,
            "validator.unknown_kind"
        );
    }

    #[test]
    fn money_accepts_numbers_and_strings_up_to_fen() {
        assert_eq!(validate("money", &json!(6500)).unwrap(), json!(6500));
        assert_eq!(validate("money", &json!("6500.50")).unwrap(), json!(6500.5));
        assert_eq!(validate("money", &json!(0.1)).unwrap(), json!(0.1));
        assert_eq!(validate("money", &json!("１２.３４")).unwrap(), json!(12.34));
        assert_eq!(validate("money", &json!(12.345)).unwrap_err().code, "money.precision");
        assert_eq!(validate("money", &json!(-1)).unwrap_err().code, "money.negative");
        assert_eq!(validate("money", &json!("-0")).unwrap_err().code, "money.negative");
        assert_eq!(validate("money", &json!("abc")).unwrap_err().code, "money.format");
        assert_eq!(validate("money", &json!("NaN")).unwrap_err().code, "money.format");
        assert_eq!(validate("money", &json!(1e12)).unwrap_err().code, "money.too_large");
    }

    #[test]
    fn dates_must_be_real_and_zero_padded() {
        assert_eq!(validate("date", &json!("2024-02-29")).unwrap(), json!("2024-02-29"));
        for bad in ["2023-02-29", "2023-6-1", "2023/06/01", "20230601", "2023-13-01"] {
            assert_eq!(validate("date", &json!(bad)).unwrap_err().code, "date.format", "{bad}");
        }
    }

    #[test]
    fn bools_and_integers_accept_form_strings() {
        assert_eq!(validate("bool", &json!("是")).unwrap(), json!(true));
        assert_eq!(validate("bool", &json!(false)).unwrap(), json!(false));
        assert!(validate("bool", &json!(1)).is_err());
        assert_eq!(validate("integer", &json!(" 12 ")).unwrap(), json!(12));
        assert_eq!(validate("integer", &json!(-3)).unwrap(), json!(-3));
        assert!(validate("integer", &json!(1.5)).is_err());
    }

    #[test]
    fn text_is_trimmed_but_not_folded() {
        assert_eq!(
            validate("text", &json!("  哈尔滨工业大学（深圳） ")).unwrap(),
            json!("哈尔滨工业大学（深圳）")
        );
        assert_eq!(validate("text", &json!("  ")).unwrap_err().code, "text.blank");
        assert_eq!(
            validate("text", &json!("a\u{0}b")).unwrap_err().code,
            "text.control_char"
        );
        assert_eq!(validate("text", &json!(5)).unwrap_err().code, "value.not_a_string");
    }

    #[test]
    fn only_multiline_text_takes_line_breaks_and_tabs() {
        for bad in ["a\u{7}b", "a\nb", "a\tb", "a\u{202E}b", "a\u{1b}[31mb"] {
            assert_eq!(
                validate("text", &json!(bad)).unwrap_err().code,
                "text.control_char",
                "{bad:?}"
            );
        }
        assert_eq!(
            validate("multiline", &json!("一\r\n二\t三")).unwrap(),
            json!("一\n二\t三")
        );
        for bad in ["a\u{0}b", "a\u{7}b", "a\rb", "a\u{2066}b"] {
            assert_eq!(
                validate("multiline", &json!(bad)).unwrap_err().code,
                "text.control_char",
                "{bad:?}"
            );
        }
    }
}
