//! Input clean-up shared by the parsers: full-width to half-width, trimming, separator stripping.
//!
//! Chinese input methods produce full-width digits and letters (`１２３`, `ＡＢＣ`) and the ideographic
//! space; students cannot see the difference, so every parser folds them before checking anything.

/// Folds full-width ASCII variants (U+FF01–U+FF5E) and the ideographic space (U+3000) to ASCII, and
/// trims surrounding whitespace.
pub fn to_half_width(input: &str) -> String {
    input
        .chars()
        .map(half_width_char)
        .collect::<String>()
        .trim()
        .to_string()
}

fn half_width_char(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        // Dashes an input method may put in a phone number.
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        _ => c,
    }
}

/// Removes spaces and dashes, which people put in long numbers to read them.
pub fn strip_separators(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace() && *c != '-').collect()
}

/// `true` when every character is an ASCII digit (and there is at least one).
pub fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_digits_letters_and_spaces_become_ascii() {
        assert_eq!(to_half_width("\u{3000}９１１１ａＢ－＠\u{3000}"), "9111aB-@");
    }

    #[test]
    fn chinese_text_is_left_alone() {
        // Only ASCII look-alikes fold; that is why free text (`text`) is never passed through here.
        assert_eq!(to_half_width(" 北京市、海淀区 "), "北京市、海淀区");
    }

    #[test]
    fn separators_are_stripped() {
        assert_eq!(strip_separators("138 0013-8000"), "13800138000");
    }
}
