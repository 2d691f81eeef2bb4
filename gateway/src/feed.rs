//! Line feeds the gateway reads from files (superseded NHS numbers, the registered population,
//! the National Data Opt-out): one record a line, comma-separated, blank lines and `#` comments
//! skipped. A mistake is named by its line number and field, never its content, since every
//! feed carries NHS numbers.

use tideway_profiles::NhsNumber;

/// Each record of `text` with its 1-based line number, split on commas and trimmed.
pub fn records(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(n, line)| {
        let line = line.trim();
        (!line.is_empty() && !line.starts_with('#'))
            .then(|| (n + 1, line.split(',').map(str::trim).collect()))
    })
}

/// The NHS number in `field` of line `at`, Mod 11 checked; `which` names it in the message.
pub fn nhs_number(field: &str, at: usize, which: &str) -> Result<NhsNumber, String> {
    NhsNumber::parse(field).map_err(|_| format!("line {at}: the {which} NHS number is not valid"))
}

/// Reads a feed of one NHS number a line.
pub fn nhs_numbers(text: &str) -> Result<Vec<NhsNumber>, String> {
    records(text)
        .map(|(at, fields)| match fields.as_slice() {
            [one] => nhs_number(one, at, "opted-out"),
            _ => Err(format!("line {at}: expected one NHS number")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_feed_names_each_mistake_by_its_line_and_never_the_number() {
        let numbers = nhs_numbers("# opted out\n9434765919\n\n 9434765870 \n").unwrap();
        assert_eq!(numbers.iter().map(NhsNumber::as_str).collect::<Vec<_>>(), ["9434765919", "9434765870"]);
        for (bad, said) in [
            ("9434765919\n9434765918", "line 2: the opted-out NHS number is not valid"),
            ("9434765919,9434765870", "line 1: expected one NHS number"),
        ] {
            let e = nhs_numbers(bad).unwrap_err();
            assert_eq!(e, said);
            assert!(!e.contains("94347659"), "{e}");
        }
    }
}
