//! `Postcode` (邮政编码) and `RegionCode` (GB/T 2260 administrative division code): short fixed-form digit codes.

use super::error::FieldError;
use super::newtype::string_newtype;
use super::text::{all_digits, strip_separators, to_half_width};

/// The 34 provincial-level codes of GB/T 2260 (first two digits). The prefecture and county digits are
/// not checked against a list: the list changes every year and old codes stay valid on old records.
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", // 华北
    "21", "22", "23", // 东北 (23 黑龙江)
    "31", "32", "33", "34", "35", "36", "37", // 华东
    "41", "42", "43", "44", "45", "46", // 中南
    "50", "51", "52", "53", "54", // 西南
    "61", "62", "63", "64", "65", // 西北
    "71", "81", "82", // 台湾, 香港, 澳门
];

/// 邮政编码: six digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode(String);

string_newtype!(Postcode);

impl Postcode {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let code = strip_separators(&to_half_width(input));
        if code.len() == 6 && all_digits(&code) {
            return Ok(Self(code));
        }
        Err(FieldError::new(
            "postcode.format",
            "邮政编码应为6位数字",
            "must be 6 digits",
        ))
    }
}

/// 行政区划代码 (GB/T 2260): province (2), prefecture (2), county (2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(String);

string_newtype!(RegionCode);

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let code = strip_separators(&to_half_width(input));
        if code.len() != 6 || !all_digits(&code) {
            return Err(FieldError::new(
                "region_code.format",
                "所在地区代码应为6位数字（国家行政区划代码）",
                "must be 6 digits (gb/t 2260 region code)",
            ));
        }
        if !PROVINCES.contains(&&code[..2]) {
            return Err(FieldError::new(
                "region_code.province",
                format!("所在地区代码前两位“{}”不是有效的省级代码", &code[..2]),
                format!("'{}' is not a provincial code", &code[..2]),
            ));
        }
        Ok(Self(code))
    }

    /// The two-digit provincial code, e.g. `23` for Heilongjiang.
    pub fn province(&self) -> &str {
        &self.0[..2]
    }

    /// `true` for a province-level code such as `230000`.
    pub fn is_province_level(&self) -> bool {
        self.0.ends_with("0000")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_34_provincial_codes() {
        let mut unique = PROVINCES.to_vec();
        unique.dedup();
        assert_eq!(unique.len(), 34);
    }

    #[test]
    fn region_codes_need_a_known_province() {
        assert_eq!(RegionCode::parse("230103").unwrap().province(), "23");
        assert!(RegionCode::parse("230000").unwrap().is_province_level());
        assert_eq!(RegionCode::parse("990000").unwrap_err().code, "region_code.province");
        assert_eq!(RegionCode::parse("10000").unwrap_err().code, "region_code.format");
    }

    #[test]
    fn postcodes_are_six_digits() {
        assert_eq!(Postcode::parse("１５０００１").unwrap().as_str(), "150001");
        assert!(Postcode::parse("15000").is_err());
        assert!(Postcode::parse("15000A").is_err());
    }
}
