//! The NHS number: ten digits whose last is a Modulus 11 check digit.
//!
//! An [`NhsNumber`] can only be built from a string that passes the check, so code further in
//! never sees an invalid one. Its `Debug` and `Display` forms are redacted: an NHS number is
//! patient data and must not reach logs or error messages by accident. Use
//! [`NhsNumber::as_str`] where the digits are genuinely needed (a FHIR identifier, a query to a
//! source).

use std::fmt;

/// A checked NHS number (ten ASCII digits, valid Modulus 11 check digit).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(String);

/// Why a string is not an NHS number. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    /// Not ten digits (spaces between groups are allowed on input).
    #[error("an NHS number has exactly ten digits")]
    Format,
    /// Ten digits whose Modulus 11 check digit does not match.
    #[error("the NHS number's check digit is wrong")]
    CheckDigit,
}

impl NhsNumber {
    /// Parses `input`, accepting the `3 3 4` spaced form. Rejects anything that fails Mod 11.
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let digits: String = input.chars().filter(|c| *c != ' ').collect();
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NhsNumberError::Format);
        }
        let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        match check_digit(&d[..9]) {
            Some(c) if c == d[9] => Ok(Self(digits)),
            _ => Err(NhsNumberError::CheckDigit),
        }
    }

    /// Builds the NHS number whose first nine digits are `stem` (0..=999_999_999), or `None`
    /// when no check digit exists for that stem (Mod 11 remainder gives 10).
    pub fn from_stem(stem: u32) -> Option<Self> {
        if stem > 999_999_999 {
            return None;
        }
        let s = format!("{stem:09}");
        let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
        let c = check_digit(&d)?;
        Some(Self(format!("{s}{c}")))
    }

    /// The ten digits. Patient data: never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the 999 range reserved for testing.
    pub fn is_test_range(&self) -> bool {
        self.0.starts_with("999")
    }
}

/// Modulus 11 over nine digits with weights 10..2; `None` when the result would be 10.
fn check_digit(nine: &[u32]) -> Option<u32> {
    let sum: u32 = nine.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<nhs-number>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_valid_numbers() {
        // Published NHS test numbers.
        for n in ["9434765919", "943 476 5919", "9990000018", "4010232137"] {
            assert!(NhsNumber::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_check_digit_and_format() {
        assert_eq!(NhsNumber::parse("9434765918"), Err(NhsNumberError::CheckDigit));
        assert_eq!(NhsNumber::parse("943476591"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse("94347659x9"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse(""), Err(NhsNumberError::Format));
    }

    #[test]
    fn stems_round_trip_through_parse() {
        let mut made = 0;
        for stem in 999_000_000..999_000_200 {
            if let Some(n) = NhsNumber::from_stem(stem) {
                assert_eq!(NhsNumber::parse(n.as_str()).as_ref(), Ok(&n));
                assert!(n.is_test_range());
                made += 1;
            }
        }
        assert!(made > 150);
    }

    #[test]
    fn never_prints_digits() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?} {n}").contains("943"));
    }
}
