//! Agreement numbers (协议书编号) with a check character, and verification codes (核验码).
//!
//! Knows nothing of typst: these are pure functions the engine also calls when it issues a number.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The check alphabet of GB 32100 (unified social credit codes): digits and capitals without
/// I, O, S, V, Z. Its size, 31, is prime, so every single substitution is detected.
const CHECK_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Alphabet for verification codes: 32 symbols without 0/O and 1/I, which people confuse when
/// they read a code off paper and type it in.
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The number of an agreement: `YYYY-SCHOOL-SEQUENCE-C`, e.g. `2025-10212-000137-K`.
///
/// `school_code` is the national five-digit school code (学校代码); it is upper-cased and
/// characters outside the check alphabet are dropped so that the result always verifies.
/// `seq` is zero-padded to six digits (longer sequences keep all their digits).
pub fn agreement_number(year: i32, school_code: &str, seq: u64) -> String {
    let school: String = school_code
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii() && CHECK_ALPHABET.contains(&(*c as u8)))
        .collect();
    let body = format!("{year:04}-{school}-{seq:06}");
    let check = check_character(&body).expect("body built from the check alphabet");
    format!("{body}-{check}")
}

/// Whether `s` is a well-formed agreement number whose check character matches.
pub fn check_agreement_number(s: &str) -> bool {
    let Some((body, check)) = s.rsplit_once('-') else {
        return false;
    };
    let parts: Vec<&str> = body.split('-').collect();
    let well_formed = parts.len() == 3
        && parts[0].len() == 4
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && !parts[1].is_empty()
        && parts[2].len() >= 6
        && parts[2].bytes().all(|b| b.is_ascii_digit())
        && check.len() == 1;
    well_formed && check_character(body).is_some_and(|c| check.starts_with(c))
}

/// GB 32100-style check character over the body's alphanumerics: weights 3^i mod 31 (3 is a
/// primitive root mod 31, so the 30 weights are distinct and adjacent swaps are caught too).
/// `None` if the body holds a character outside the alphabet (other than the '-' separators)
/// or is longer than the 30 distinct weights.
fn check_character(body: &str) -> Option<char> {
    let mut sum = 0u32;
    let mut weight = 1u32;
    let mut count = 0;
    for c in body.chars().filter(|c| *c != '-') {
        let value = CHECK_ALPHABET.iter().position(|a| c.is_ascii() && *a == c as u8)? as u32;
        sum = (sum + value * weight) % 31;
        weight = weight * 3 % 31;
        count += 1;
    }
    if count > 30 {
        return None;
    }
    Some(CHECK_ALPHABET[((31 - sum) % 31) as usize] as char)
}

/// The verification code printed on the agreement (核验码): 8 characters from
/// HMAC-SHA256(secret, number), 5 bits each, so 40 bits that only the holder of the secret can
/// produce. Anyone can type it into the verification page; it is not a password.
pub fn verification_code(secret: &[u8], number: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(number.as_bytes());
    let digest = mac.finalize().into_bytes();
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8)
        .map(|i| CODE_ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}
