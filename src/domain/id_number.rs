//! `IdNumber` — the 18-digit resident identity number (公民身份号码) of GB 11643-1999: check digit, birth date, sex.

use chrono::{Datelike, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::error::FieldError;
use super::newtype::string_newtype;
use super::text::{all_digits, strip_separators, to_half_width};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// The standard's own example `440524188001010014` was born in 1880, so the floor is 1800; whether the
/// holder is plausibly a graduate is a separate question ([`IdNumber::plausible_for_graduate`]).
const EARLIEST_BIRTH_YEAR: i32 = 1800;
const GRADUATE_AGE: std::ops::RangeInclusive<i32> = 15..=70;

/// 性别 as encoded in the ID number: the 17th digit is odd for men, even for women.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn as_zh(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
}

/// 公民身份号码: address code (6), birth date YYYYMMDD (8), sequence (3), check (digit or `X`).
/// A lower-case `x` is stored as `X`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdNumber(String);

string_newtype!(IdNumber);

impl IdNumber {
    /// Parses against today's date in China (UTC+8), which the "not in the future" rule needs.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        Self::parse_on(input, china_today())
    }

    /// Parses against a given "today", so callers with an injected clock and tests get stable answers.
    pub fn parse_on(input: &str, today: NaiveDate) -> Result<Self, FieldError> {
        let id = strip_separators(&to_half_width(input)).to_ascii_uppercase();
        check_shape(&id)?;
        check_birth_date(&id[6..14], today)?;
        if id.as_bytes()[17] != check_digit(&id.as_bytes()[..17]) {
            return Err(FieldError::new(
                "id_number.checksum",
                "身份证号码校验位不符，请对照身份证逐位核对",
                "check digit does not match; compare the number with the identity card",
            ));
        }
        Ok(Self(id))
    }

    /// Positions 1–6: the GB/T 2260 region of first registration. Old codes stay valid on old cards.
    pub fn address_code(&self) -> &str {
        &self.0[..6]
    }

    pub fn birth_date(&self) -> NaiveDate {
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").expect("checked by parse")
    }

    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// Whether the declared gender ("男"/"女"/"male"/"female"/"m"/"f", any case) agrees with the
    /// number; an unrecognised word never matches.
    pub fn matches_gender(&self, gender: &str) -> bool {
        parse_gender(gender) == Some(self.sex())
    }

    /// Refuses holders younger than 15 or older than 70 on `today` — a typo in the birth date usually
    /// produces such an age, while the checksum alone would miss a pair of swapped digits.
    pub fn plausible_for_graduate(&self, today: NaiveDate) -> Result<(), FieldError> {
        let age = age_on(self.birth_date(), today);
        if GRADUATE_AGE.contains(&age) {
            return Ok(());
        }
        Err(FieldError::new(
            "id_number.implausible_age",
            format!("按身份证号码计算年龄为{age}岁，不像应届毕业生，请核对出生日期"),
            format!("the birth date gives an age of {age}, outside 15 to 70"),
        ))
    }
}

fn parse_gender(gender: &str) -> Option<Sex> {
    match gender.trim().to_lowercase().as_str() {
        "男" | "male" | "m" => Some(Sex::Male),
        "女" | "female" | "f" => Some(Sex::Female),
        _ => None,
    }
}

fn check_shape(id: &str) -> Result<(), FieldError> {
    let count = id.chars().count();
    if count != 18 {
        return Err(FieldError::new(
            "id_number.length",
            format!("身份证号码应为18位，当前为{count}位"),
            format!("must be 18 characters, got {count}"),
        ));
    }
    // `is_ascii` first: slicing a string with a multi-byte character at byte 17 would panic.
    let well_formed =
        id.is_ascii() && all_digits(&id[..17]) && (id.as_bytes()[17].is_ascii_digit() || id.as_bytes()[17] == b'X');
    if !well_formed {
        return Err(FieldError::new(
            "id_number.charset",
            "身份证号码前17位应为数字，最后一位为数字或X",
            "the first 17 characters must be digits and the last a digit or x",
        ));
    }
    Ok(())
}

fn check_birth_date(yyyymmdd: &str, today: NaiveDate) -> Result<(), FieldError> {
    let Ok(date) = NaiveDate::parse_from_str(yyyymmdd, "%Y%m%d") else {
        return Err(FieldError::new(
            "id_number.birth_date",
            format!("身份证号码中的出生日期 {yyyymmdd} 不存在，请核对"),
            format!("the birth date {yyyymmdd} does not exist"),
        ));
    };
    if date > today {
        return Err(FieldError::new(
            "id_number.birth_date_future",
            "身份证号码中的出生日期晚于今天，请核对",
            "the birth date is in the future",
        ));
    }
    if date.year() < EARLIEST_BIRTH_YEAR {
        return Err(FieldError::new(
            "id_number.birth_date_too_early",
            "身份证号码中的出生日期早于1800年，请核对",
            "the birth date is before 1800",
        ));
    }
    Ok(())
}

fn check_digit(first17: &[u8]) -> u8 {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(&d, w)| u32::from(d - b'0') * w).sum();
    CHECK[(sum % 11) as usize]
}

fn age_on(birth: NaiveDate, today: NaiveDate) -> i32 {
    let had_birthday = (today.month(), today.day()) >= (birth.month(), birth.day());
    today.year() - birth.year() - if had_birthday { 0 } else { 1 }
}

/// Today in China. Servers often run in UTC, and a birth "today" must not be refused before 08:00.
fn china_today() -> NaiveDate {
    let china = FixedOffset::east_opt(8 * 3600).expect("constant offset");
    Utc::now().with_timezone(&china).date_naive()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Completes 17 digits with their check character; tests use it to build fictitious valid numbers.
    pub(crate) fn with_check(first17: &str) -> String {
        let c = check_digit(first17.as_bytes()) as char;
        format!("{first17}{c}")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn age_counts_whole_years() {
        assert_eq!(age_on(day(2000, 6, 30), day(2023, 6, 29)), 22);
        assert_eq!(age_on(day(2000, 6, 30), day(2023, 6, 30)), 23);
    }

    #[test]
    fn sequence_parity_gives_sex() {
        let today = day(2024, 1, 1);
        assert_eq!(
            IdNumber::parse_on("11010519491231002X", today).unwrap().sex(),
            Sex::Female
        );
        assert_eq!(
            IdNumber::parse_on("440524188001010014", today).unwrap().sex(),
            Sex::Male
        );
    }

    #[test]
    fn birth_today_is_not_in_the_future() {
        let id = with_check("11010520240101001");
        assert!(IdNumber::parse_on(&id, day(2024, 1, 1)).is_ok());
        assert_eq!(
            IdNumber::parse_on(&id, day(2023, 12, 31)).unwrap_err().code,
            "id_number.birth_date_future"
        );
    }

    #[test]
    fn gender_words_are_recognised_in_both_languages() {
        assert_eq!(parse_gender(" Female "), Some(Sex::Female));
        assert_eq!(parse_gender("男"), Some(Sex::Male));
        assert_eq!(parse_gender("unknown"), None);
    }
}
