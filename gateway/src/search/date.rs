//! FHIR date search: partial dates and instants as half-open ranges of UTC seconds, and the
//! prefixes `eq ne gt lt ge le sa eb` compared range against range as the R4 search page
//! defines them. Values without a timezone are read as UTC.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `[start, end)` in UTC seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// A comparison prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// The search range contains the target.
    Eq,
    /// Not `eq`.
    Ne,
    /// The target reaches past the search range.
    Gt,
    /// The target begins before the search range.
    Lt,
    /// `gt` or `eq`.
    Ge,
    /// `lt` or `eq`.
    Le,
    /// The target starts after the search range ends.
    Sa,
    /// The target ends before the search range starts.
    Eb,
}

/// One `date` parameter value: a prefix and a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateQuery {
    /// How to compare.
    pub prefix: Prefix,
    /// The value's range (its precision decides its width).
    pub range: Range,
}

impl DateQuery {
    /// Parses `[prefix]value`, e.g. `ge2020-03`, `2021-01-01T10:00:00Z`.
    pub fn parse(value: &str) -> Option<Self> {
        let (prefix, rest) = match value.get(..2) {
            Some("eq") => (Prefix::Eq, &value[2..]),
            Some("ne") => (Prefix::Ne, &value[2..]),
            Some("gt") => (Prefix::Gt, &value[2..]),
            Some("lt") => (Prefix::Lt, &value[2..]),
            Some("ge") => (Prefix::Ge, &value[2..]),
            Some("le") => (Prefix::Le, &value[2..]),
            Some("sa") => (Prefix::Sa, &value[2..]),
            Some("eb") => (Prefix::Eb, &value[2..]),
            _ => (Prefix::Eq, value),
        };
        Some(Self { prefix, range: range_of(rest)? })
    }

    /// Whether a target covering `target` matches.
    pub fn matches(&self, target: Range) -> bool {
        let (p, t) = (self.range, target);
        let eq = p.start <= t.start && t.end <= p.end;
        match self.prefix {
            Prefix::Eq => eq,
            Prefix::Ne => !eq,
            Prefix::Gt => t.end > p.end,
            Prefix::Lt => t.start < p.start,
            Prefix::Ge => t.end > p.end || eq,
            Prefix::Le => t.start < p.start || eq,
            Prefix::Sa => t.start >= p.end,
            Prefix::Eb => t.end <= p.start,
        }
    }
}

/// The range a FHIR `date`, `dateTime` or `instant` covers: a year, a month, a day, or (with a
/// time) the second it names. `None` when it is none of those.
pub fn range_of(value: &str) -> Option<Range> {
    let v = value.trim();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<i32>().ok();
    let (date_part, time_part) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let mut parts = date_part.split('-');
    let year = parts.next().filter(|y| digits(y, 4)).and_then(num)?;
    let month = parts.next();
    let day = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let day_start = |y: i32, m: u8, d: u8| -> Option<i64> {
        let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
        Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc().unix_timestamp())
    };
    let Some(m) = month else {
        return Some(Range { start: day_start(year, 1, 1)?, end: day_start(year + 1, 1, 1)? });
    };
    let m: u8 = u8::try_from(num(m).filter(|_| digits(m, 2))?).ok()?;
    let Some(d) = day else {
        let (ny, nm) = if m == 12 { (year + 1, 1) } else { (year, m + 1) };
        return Some(Range { start: day_start(year, m, 1)?, end: day_start(ny, nm, 1)? });
    };
    let d: u8 = u8::try_from(num(d).filter(|_| digits(d, 2))?).ok()?;
    let Some(t) = time_part else {
        let start = day_start(year, m, d)?;
        return Some(Range { start, end: start + 86_400 });
    };
    // A time: hh:mm[:ss[.fff]] then Z or ±hh:mm.
    let (clock, offset) = match t.find(['Z', '+', '-']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "Z"),
    };
    let offset = if offset == "Z" {
        UtcOffset::UTC
    } else {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, mi) = offset[1..].split_once(':')?;
        UtcOffset::from_hms(
            i8::try_from(sign * num(h).filter(|_| digits(h, 2))?).ok()?,
            i8::try_from(sign * num(mi).filter(|_| digits(mi, 2))?).ok()?,
            0,
        )
        .ok()?
    };
    let mut c = clock.split(':');
    let hh = c.next().filter(|s| digits(s, 2)).and_then(num)?;
    let mm = c.next().filter(|s| digits(s, 2)).and_then(num)?;
    let ss = match c.next() {
        Some(s) => s.split('.').next().filter(|s| digits(s, 2)).and_then(num)?,
        None => 0,
    };
    let date = Date::from_calendar_date(year, Month::try_from(m).ok()?, d).ok()?;
    let time = Time::from_hms(u8::try_from(hh).ok()?, u8::try_from(mm).ok()?, u8::try_from(ss).ok()?).ok()?;
    let start = OffsetDateTime::new_in_offset(date, time, offset).unix_timestamp();
    Some(Range { start, end: start + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &str) -> DateQuery {
        DateQuery::parse(v).unwrap()
    }

    #[test]
    fn precision_decides_the_range() {
        let y = range_of("2020").unwrap();
        assert_eq!(y.end - y.start, 366 * 86_400);
        assert_eq!(range_of("2021-02").map(|r| r.end - r.start), Some(28 * 86_400));
        assert_eq!(range_of("2021-02-03").map(|r| r.end - r.start), Some(86_400));
        assert_eq!(range_of("2021-02-03T10:00:00+01:00"), range_of("2021-02-03T09:00:00Z"));
        for bad in ["20", "2021-13", "2021-02-30", "2021-02-03T25:00", "yesterday", "2021-02-03T10:00+5"] {
            assert_eq!(range_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_compare_ranges_as_fhir_says() {
        let day = range_of("2020-06-15").unwrap();
        assert!(q("2020").matches(day) && q("eq2020-06").matches(day) && !q("ne2020").matches(day));
        assert!(q("gt2020-06-14").matches(day) && !q("gt2020-06-15").matches(day));
        assert!(q("lt2020-06-16").matches(day) && !q("lt2020-06-15").matches(day));
        assert!(q("ge2020-06-15").matches(day) && q("le2020-06-15").matches(day));
        assert!(q("sa2020-06-14").matches(day) && !q("sa2020-06-15").matches(day));
        assert!(q("eb2020-06-16").matches(day) && !q("eb2020-06-15").matches(day));
        // A long period overlapping the search day is neither contained nor entirely after it.
        let period = Range {
            start: range_of("2020-01-01").unwrap().start,
            end: range_of("2021-01-01").unwrap().start,
        };
        assert!(
            !q("2020-06-15").matches(period)
                && q("gt2020-06-15").matches(period)
                && q("lt2020-06-15").matches(period)
        );
    }
}
