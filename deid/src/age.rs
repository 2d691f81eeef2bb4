//! Five-year age bands, the stratifier of the dashboards.

use time::Date;

/// One five-year age band (`0-4` to `85-89`), or `90+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgeBand(u8);

const LABELS: [&str; 19] = [
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59",
    "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
];

const ALL: [AgeBand; 19] = {
    let mut all = [AgeBand(0); 19];
    let mut i = 0;
    while i < all.len() {
        all[i] = AgeBand(i as u8);
        i += 1;
    }
    all
};

impl AgeBand {
    /// The band of an age in whole years.
    pub fn of_age(years: u32) -> AgeBand {
        AgeBand((years / 5).min(18) as u8)
    }

    /// The band's label: `"40-44"`, or `"90+"` for the last.
    pub fn label(&self) -> &'static str {
        LABELS.get(usize::from(self.0)).copied().unwrap_or("90+")
    }

    /// Every band, youngest first (the rows or columns of a stratified table).
    pub fn all() -> &'static [AgeBand] {
        &ALL
    }

    /// The band's position in [`AgeBand::all`].
    pub fn index(&self) -> usize {
        usize::from(self.0)
    }
}

/// The age band at `on` of someone born on `birth`. A birth after `on` (bad data) counts as age 0.
pub fn age_band(birth: Date, on: Date) -> AgeBand {
    AgeBand::of_age(age_in_years(birth, on))
}

/// Whole years from `birth` to `on`; someone born on 29 February has their birthday on
/// 1 March in common years.
pub(crate) fn age_in_years(birth: Date, on: Date) -> u32 {
    if on <= birth {
        return 0;
    }
    let years = on.year() - birth.year();
    let birthday_passed = (on.month() as u8, on.day()) >= (birth.month() as u8, birth.day());
    u32::try_from(if birthday_passed { years } else { years - 1 }).unwrap_or(0)
}
