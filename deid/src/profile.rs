//! The de-identification profile: how much of birth, place and event dates survives.

use serde::Deserialize;

/// What a dashboard project receives of birth, place and event dates. Read from configuration,
/// e.g. `birth = "age-band-5"`, `place = "district"`, `event_dates = "month"`; every field
/// defaults to the most common choice ([`Profile::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// What is kept of the date of birth.
    pub birth: BirthDetail,
    /// What is kept of the home address.
    pub place: PlaceDetail,
    /// The precision every event date (onset, recorded, effective, period, ...) is cut to.
    pub event_dates: DatePrecision,
}

impl Default for Profile {
    /// Year of birth, postcode district, event dates to the month.
    fn default() -> Self {
        Profile {
            birth: BirthDetail::YearOfBirth,
            place: PlaceDetail::District,
            event_dates: DatePrecision::Month,
        }
    }
}

/// What is kept of a patient's date of birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BirthDetail {
    /// `birthDate` cut to its year (`"1970"`); a patient aged 90 or over gets the `90+` band
    /// instead, as a year of birth that far back singles people out.
    YearOfBirth,
    /// No `birthDate`; a five-year age band at the export day in an extension (`"40-44"`, ...,
    /// `"85-89"`, `"90+"`).
    #[serde(rename = "age-band-5")]
    AgeBand5,
}

/// What is kept of a patient's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaceDetail {
    /// One address holding only the postcode district (the outward code, `"SE1"`); an address
    /// without a well-formed UK postcode is dropped.
    District,
    /// No address at all.
    Drop,
}

/// The precision event dates are cut to. The time of day is always removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatePrecision {
    /// `"2024"`.
    Year,
    /// `"2024-03"`.
    Month,
    /// `"2024-03-15"`.
    Day,
}
