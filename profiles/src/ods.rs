//! ODS organisation codes.

use std::fmt;

/// An Organisation Data Service code: 3 to 10 upper-case letters and digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct OdsCode(String);

/// The string is not an ODS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an ODS code is 3 to 10 upper-case letters or digits")]
pub struct OdsCodeError;

impl OdsCode {
    /// Parses an ODS code (case is normalised to upper).
    pub fn parse(input: &str) -> Result<Self, OdsCodeError> {
        let s = input.trim().to_ascii_uppercase();
        if (3..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s))
        } else {
            Err(OdsCodeError)
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OdsCode({})", self.0)
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OdsCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_practice_and_trust_codes() {
        assert_eq!(OdsCode::parse("f83004").unwrap().as_str(), "F83004");
        assert!(OdsCode::parse("RJ1").is_ok());
        assert!(OdsCode::parse("X").is_err());
        assert!(OdsCode::parse("AB-12").is_err());
    }
}
