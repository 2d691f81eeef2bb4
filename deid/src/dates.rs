//! FHIR dates and dateTimes cut to a precision.

use crate::DatePrecision;
use time::{Date, Month};

/// The leading date of a FHIR `date`, `dateTime` or `instant` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// optionally followed by `T...`), as (year, month, day) with what is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partial {
    pub year: i32,
    pub month: Option<Month>,
    pub day: Option<u8>,
}

pub(crate) fn parse(value: &str) -> Option<Partial> {
    let (date, has_time) = match value.split_once('T') {
        Some((d, _)) => (d, true),
        None => (value, false),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let (year, month, day) = match parts.as_slice() {
        [y] if !has_time => (digits(y, 4)?, None, None),
        [y, m] if !has_time => (digits(y, 4)?, Some(digits(m, 2)?), None),
        [y, m, d] => (digits(y, 4)?, Some(digits(m, 2)?), Some(digits(d, 2)?)),
        _ => return None,
    };
    let year = i32::try_from(year).ok()?;
    let month = match month {
        Some(m) => Some(Month::try_from(u8::try_from(m).ok()?).ok()?),
        None => None,
    };
    let day = match (month, day) {
        (Some(m), Some(d)) => Some(Date::from_calendar_date(year, m, u8::try_from(d).ok()?).ok()?.day()),
        _ => None,
    };
    Some(Partial { year, month, day })
}

fn digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// `value` cut to `precision` (never finer than what it had), as a valid R4 `date` and
/// `dateTime`; `None` if it is not a FHIR date.
pub(crate) fn truncate(value: &str, precision: DatePrecision) -> Option<String> {
    let p = parse(value)?;
    let year = format!("{:04}", p.year);
    let month = || p.month.map(|m| format!("{year}-{:02}", m as u8));
    Some(match precision {
        DatePrecision::Year => year,
        DatePrecision::Month => month().unwrap_or(year),
        DatePrecision::Day => match (month(), p.day) {
            (Some(m), Some(d)) => format!("{m}-{d:02}"),
            (Some(m), None) => m,
            _ => year,
        },
    })
}

impl Partial {
    /// The earliest and latest days this partial date may stand for.
    pub(crate) fn bounds(&self) -> Option<(Date, Date)> {
        let (first_month, last_month) = match self.month {
            Some(m) => (m, m),
            None => (Month::January, Month::December),
        };
        let first = Date::from_calendar_date(self.year, first_month, self.day.unwrap_or(1)).ok()?;
        let last_day = self.day.unwrap_or_else(|| last_month.length(self.year));
        let last = Date::from_calendar_date(self.year, last_month, last_day).ok()?;
        Some((first, last))
    }
}
