//! Where an information-governance attestation stands on a given day: a pure judgement, so the
//! rule that decides whether a source is asked (or an organisation served) is tested alone.
//!
//! `standards-met` and `approaching-standards` (not all standards met yet, with an improvement
//! plan agreed, which the Data Security and Protection Toolkit treats as able to share) are
//! current until the end of their expiry day; `standards-not-met`, an expired attestation and
//! none at all are not.

use tideway_adapters::{Attestation, AttestationStatus};
use time::Date;

/// What an attestation means today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Current, and not expiring within the warning window.
    Current,
    /// Current, but expiring in this many days (0: today is its last day).
    Expiring(i64),
    /// None given, in a `[[sources]]` entry read under the backward-compatible default:
    /// treated as current, with a warning.
    Assumed,
    /// None given.
    Missing,
    /// The assessment found the standards not met.
    NotMet,
    /// Its last day has passed.
    Expired,
}

impl Standing {
    /// Whether a source in this standing is asked (an organisation in it served).
    pub fn is_current(self) -> bool {
        matches!(self, Self::Current | Self::Expiring(_) | Self::Assumed)
    }

    /// The code shown by the admin API.
    pub fn code(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Expiring(_) => "expiring",
            Self::Assumed => "assumed",
            Self::Missing => "missing",
            Self::NotMet => "not-met",
            Self::Expired => "expired",
        }
    }

    /// Why a source in this standing is not asked: a fixed phrase, for answers and audits.
    pub fn why_not_current(self) -> &'static str {
        match self {
            Self::Missing => "it holds no information-governance attestation",
            Self::NotMet => "its information-governance attestation found the standards not met",
            Self::Expired => "its information-governance attestation has expired",
            Self::Current | Self::Expiring(_) | Self::Assumed => "its attestation is current",
        }
    }
}

/// Judges `attestation` on `today`; `assumed` says what none means (see [`Standing::Assumed`]).
/// One expiring within `warning_days` is [`Standing::Expiring`].
pub fn judge(attestation: Option<&Attestation>, assumed: bool, today: Date, warning_days: u32) -> Standing {
    let Some(a) = attestation else {
        return if assumed { Standing::Assumed } else { Standing::Missing };
    };
    if a.status == AttestationStatus::StandardsNotMet {
        return Standing::NotMet;
    }
    let left = (a.expires - today).whole_days();
    if left < 0 {
        Standing::Expired
    } else if left <= i64::from(warning_days) {
        Standing::Expiring(left)
    } else {
        Standing::Current
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn dspt(status: AttestationStatus, expires: Date) -> Attestation {
        Attestation { scheme: "dspt".into(), status, expires }
    }

    #[test]
    fn met_or_approaching_standards_are_current_until_their_last_day() {
        let today = date!(2026 - 12 - 01);
        for status in [AttestationStatus::StandardsMet, AttestationStatus::ApproachingStandards] {
            assert_eq!(
                judge(Some(&dspt(status, date!(2027 - 06 - 30))), false, today, 30),
                Standing::Current
            );
            assert_eq!(judge(Some(&dspt(status, today)), false, today, 30), Standing::Expiring(0));
            assert_eq!(
                judge(Some(&dspt(status, date!(2026 - 12 - 31))), false, today, 30),
                Standing::Expiring(30)
            );
            assert_eq!(
                judge(Some(&dspt(status, date!(2026 - 11 - 30))), false, today, 30),
                Standing::Expired
            );
        }
    }

    #[test]
    fn standards_not_met_missing_and_expired_are_not_current() {
        let today = date!(2026 - 12 - 01);
        let not_met = dspt(AttestationStatus::StandardsNotMet, date!(2027 - 06 - 30));
        assert_eq!(judge(Some(&not_met), true, today, 30), Standing::NotMet);
        assert_eq!(judge(None, false, today, 30), Standing::Missing);
        for s in [Standing::NotMet, Standing::Missing, Standing::Expired] {
            assert!(!s.is_current(), "{s:?}");
            assert!(s.why_not_current().contains("attestation"));
        }
    }

    #[test]
    fn a_config_entry_without_one_is_assumed_only_under_the_default() {
        let today = date!(2026 - 12 - 01);
        assert_eq!(judge(None, true, today, 30), Standing::Assumed);
        assert!(Standing::Assumed.is_current());
        assert!(Standing::Expiring(3).is_current());
    }

    #[test]
    fn the_warning_window_is_configurable() {
        let today = date!(2026 - 12 - 01);
        let a = dspt(AttestationStatus::StandardsMet, date!(2027 - 01 - 30));
        assert_eq!(judge(Some(&a), false, today, 30), Standing::Current);
        assert_eq!(judge(Some(&a), false, today, 60), Standing::Expiring(60));
    }
}
