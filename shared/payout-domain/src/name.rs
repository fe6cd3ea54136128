//! Legal names in full-width Katakana, as the beneficiary's bank holds them.

use super::invalid::{Invalid, invalid};
use super::pii::Pii;

/// A legal name in full-width Katakana (U+30A0–U+30FF, with `ー` and `・`), parts optionally
/// separated by one full-width or ASCII space; 1–40 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KatakanaName(Pii<String>);

impl KatakanaName {
    pub const MAX_CHARS: usize = 40;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let count = s.chars().count();
        if count == 0 {
            return invalid("must not be empty");
        }
        if count > Self::MAX_CHARS {
            return invalid("must be at most 40 characters");
        }
        if s.starts_with(is_name_space) || s.ends_with(is_name_space) {
            return invalid("must not start or end with a space");
        }
        for c in s.chars() {
            let found = match c {
                '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}' => continue,
                '\u{3040}'..='\u{309F}' => "Hiragana",
                '\u{FF65}'..='\u{FF9F}' => "half-width Katakana",
                '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' => {
                    "Kanji"
                }
                'a'..='z' | 'A'..='Z' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                    "Latin letters"
                }
                _ => "characters other than Katakana",
            };
            return invalid(format!(
                "must be written in full-width Katakana (e.g. ヤマダ); it contains {found}"
            ));
        }
        if s.contains("  ")
            || s.contains("\u{3000}\u{3000}")
            || s.contains(" \u{3000}")
            || s.contains("\u{3000} ")
        {
            return invalid("parts must be separated by a single space");
        }
        Ok(Self(Pii(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

fn is_name_space(c: char) -> bool {
    c == ' ' || c == '\u{3000}'
}
