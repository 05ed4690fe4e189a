//! `CreditCode` — the unified social credit code (统一社会信用代码) of GB 32100-2015, with its check character.

use super::error::FieldError;
use super::newtype::string_newtype;
use super::text::to_half_width;

/// The code's 31 characters; a character's value is its index. I, O, S, V and Z are left out
/// because they read like 1, 0, 5, U and 2.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1–17: 3^(i−1) mod 31 (checked by a unit test).
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

const LENGTH: usize = 18;

/// 统一社会信用代码: 18 characters — registration authority (1), organisation category (1),
/// region code (6), organisation code (9), check character (1).
///
/// Positions 1–8 are deliberately not required to be digits: authorities such as A, N and Y occur in
/// position 1. Lower-case and full-width input is accepted and stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

string_newtype!(CreditCode);

impl CreditCode {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let code = parse_shape(input)?;
        if code.as_bytes()[LENGTH - 1] != check_character(&code.as_bytes()[..LENGTH - 1]) {
            // The expected character is not shown: a student told it would "fix" a mistyped code by
            // changing the last character instead of re-reading the licence.
            return Err(FieldError::new(
                "credit_code.checksum",
                "统一社会信用代码校验位不符，请对照营业执照逐位核对",
                "check character does not match; compare the code with the business licence",
            ));
        }
        Ok(Self(code))
    }

    /// Accepts a well-formed code whose check character does not match.
    ///
    /// Real, registered companies have been seen with codes that fail the check (REFERENCE.md §4), so
    /// the workflow offers a review override; only that override path may call this.
    pub fn parse_ignoring_checksum(input: &str) -> Result<Self, FieldError> {
        parse_shape(input).map(Self)
    }

    /// Position 1: the registration authority (登记管理部门), e.g. `9` for market regulation.
    pub fn authority(&self) -> char {
        self.0.as_bytes()[0] as char
    }

    /// Positions 3–8: the GB/T 2260 region code of the registering authority.
    pub fn region_part(&self) -> &str {
        &self.0[2..8]
    }

    /// Positions 9–17: the organisation code (组织机构代码) part.
    pub fn organisation_part(&self) -> &str {
        &self.0[8..17]
    }
}

/// Normalises and checks length and alphabet, not the check character.
fn parse_shape(input: &str) -> Result<String, FieldError> {
    let code = to_half_width(input).to_ascii_uppercase();
    let count = code.chars().count();
    if count != LENGTH {
        return Err(FieldError::new(
            "credit_code.length",
            format!("统一社会信用代码应为18位，当前为{count}位"),
            format!("must be 18 characters, got {count}"),
        ));
    }
    if let Some((position, bad)) = code.chars().enumerate().find(|(_, c)| value_of(*c).is_none()) {
        let position = position + 1;
        return Err(FieldError::new(
            "credit_code.charset",
            format!("统一社会信用代码第{position}位“{bad}”无效（只含数字和除 I、O、S、V、Z 外的大写字母）"),
            format!(
                "character {position} ('{bad}') is not allowed; only digits and capital letters except i, o, s, v, z"
            ),
        ));
    }
    Ok(code)
}

fn value_of(c: char) -> Option<u32> {
    ALPHABET.iter().position(|&a| a as char == c).map(|i| i as u32)
}

/// The check character for the first 17 characters (already known to be in the alphabet).
fn check_character(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| value_of(c as char).expect("alphabet checked before") * w)
        .sum();
    ALPHABET[((31 - sum % 31) % 31) as usize]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Completes 17 characters with their check character; tests use it to build valid codes.
    pub(crate) fn with_check(first17: &str) -> String {
        let c = check_character(first17.as_bytes()) as char;
        format!("{first17}{c}")
    }

    #[test]
    fn weights_are_powers_of_three_mod_31() {
        let mut w = 1u32;
        for expected in WEIGHTS {
            assert_eq!(w, expected);
            w = w * 3 % 31;
        }
    }

    #[test]
    fn published_examples_pass() {
        for code in ["91110000600037341L", "91110000101623741K", "911101066976941872"] {
            assert_eq!(CreditCode::parse(code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn letters_in_the_first_eight_positions_are_allowed() {
        let code = with_check("Y1110000MA0000000");
        assert!(CreditCode::parse(&code).is_ok(), "{code}");
    }

    #[test]
    fn override_path_keeps_shape_checks() {
        assert!(CreditCode::parse_ignoring_checksum("91350211M0000XUF46").is_ok());
        assert_eq!(
            CreditCode::parse_ignoring_checksum("9135021").unwrap_err().code,
            "credit_code.length"
        );
    }

    #[test]
    fn parts_are_sliced_by_position() {
        let c = CreditCode::parse("91110000600037341L").unwrap();
        assert_eq!(
            (c.authority(), c.region_part(), c.organisation_part()),
            ('9', "110000", "600037341")
        );
    }
}
