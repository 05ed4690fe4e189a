//! `Phone` — a mainland mobile number or a landline with area code and optional extension.

use super::error::FieldError;
use super::newtype::string_newtype;
use super::text::{all_digits, to_half_width};

/// Which kind of number a [`Phone`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneKind {
    Mobile,
    Landline,
}

/// A phone number, normalised: a mobile as its 11 digits (country code dropped), a landline as
/// `area-number[-extension]` (or the bare digits when the input did not show where the area code ends).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

string_newtype!(Phone);

impl Phone {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        // Spaces are only for reading; dashes are kept for now because they mark a landline extension.
        let compact: String = to_half_width(input).chars().filter(|c| !c.is_whitespace()).collect();
        parse_mobile(&compact)
            .or_else(|| parse_landline(&compact))
            .map(Self)
            .ok_or_else(|| {
                FieldError::new(
                    "phone.format",
                    "电话号码格式不正确：手机号为11位，固定电话请写区号，如 010-12345678",
                    "not a mainland mobile number (11 digits) or a landline with area code such as 010-12345678",
                )
            })
    }

    pub fn kind(&self) -> PhoneKind {
        if self.0.starts_with('1') {
            PhoneKind::Mobile
        } else {
            PhoneKind::Landline
        }
    }
}

/// `1[3-9]\d{9}`, after dropping dashes and a `+86` / `86` / `0086` prefix.
fn parse_mobile(compact: &str) -> Option<String> {
    let digits: String = compact.chars().filter(|c| *c != '-').collect();
    let digits = ["+86", "0086", "86"]
        .iter()
        .find_map(|p| digits.strip_prefix(p).filter(|rest| rest.len() == 11))
        .unwrap_or(&digits);
    let ok = digits.len() == 11 && all_digits(digits) && digits.starts_with('1') && digits.as_bytes()[1] >= b'3';
    ok.then(|| digits.to_string())
}

/// `0\d{2,3}-?\d{7,8}` with an optional extension `-\d{1,6}`.
fn parse_landline(compact: &str) -> Option<String> {
    let parts: Vec<&str> = compact.split('-').collect();
    if !parts.iter().all(|p| all_digits(p)) || !compact.starts_with('0') {
        return None;
    }
    let is_area = |s: &str| (3..=4).contains(&s.len());
    let is_local = |s: &str| (7..=8).contains(&s.len());
    let is_joined = |s: &str| (10..=12).contains(&s.len());
    let is_ext = |s: &str| (1..=6).contains(&s.len());
    match parts.as_slice() {
        [joined] if is_joined(joined) => Some(joined.to_string()),
        [area, local] if is_area(area) && is_local(local) => Some(format!("{area}-{local}")),
        [joined, ext] if is_joined(joined) && is_ext(ext) => Some(format!("{joined}-{ext}")),
        [area, local, ext] if is_area(area) && is_local(local) && is_ext(ext) => Some(format!("{area}-{local}-{ext}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_prefixes_and_separators_are_dropped() {
        for input in [
            "13800138000",
            "+86 138-0013-8000",
            "86 13800138000",
            "１３８００１３８０００",
        ] {
            let p = Phone::parse(input).unwrap();
            assert_eq!((p.as_str(), p.kind()), ("13800138000", PhoneKind::Mobile), "{input}");
        }
    }

    #[test]
    fn mobile_second_digit_must_be_three_to_nine() {
        assert!(Phone::parse("12800138000").is_err());
        assert!(Phone::parse("1380013800").is_err());
    }

    #[test]
    fn landlines_keep_area_code_and_extension() {
        assert_eq!(Phone::parse("010-12345678").unwrap().as_str(), "010-12345678");
        assert_eq!(Phone::parse("0755 8888 8888").unwrap().as_str(), "075588888888");
        assert_eq!(Phone::parse("0451-1234567-8021").unwrap().as_str(), "0451-1234567-8021");
        assert_eq!(Phone::parse("01012345678-12").unwrap().kind(), PhoneKind::Landline);
    }

    #[test]
    fn landline_without_area_code_is_refused() {
        assert!(Phone::parse("12345678").is_err());
        assert!(Phone::parse("010-123456").is_err());
        assert!(Phone::parse("010-12345678-1234567").is_err());
        assert!(Phone::parse("010--12345678").is_err());
    }
}
