//! UK postcodes cut to their district (outward code).

/// The postcode district (outward code) of a well-formed UK postcode, upper case: `"se1 7pb"` ->
/// `"SE1"`. `None` for anything not shaped like a full UK postcode: an unparseable postcode is
/// dropped, never passed through.
///
/// Shapes accepted (A letter, 9 digit), outward then inward: `A9`, `A99`, `AA9`, `AA99`, `A9A`,
/// `AA9A`, then `9AA`; spaces anywhere are ignored. The inward letters exclude C, I, K, M, O and V,
/// which Royal Mail does not use there.
pub fn postcode_district(postcode: &str) -> Option<String> {
    let compact: Vec<u8> = postcode.bytes().filter(|b| *b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if !(5..=7).contains(&compact.len()) {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = inward[0].is_ascii_digit()
        && inward[1..].iter().all(|b| b.is_ascii_uppercase() && !b"CIKMOV".contains(b));
    if !inward_ok || !outward_ok(outward) {
        return None;
    }
    String::from_utf8(outward.to_vec()).ok()
}

fn outward_ok(outward: &[u8]) -> bool {
    let shape: String = outward
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' => 'A',
            b'0'..=b'9' => '9',
            _ => '?',
        })
        .collect();
    matches!(shape.as_str(), "A9" | "A99" | "AA9" | "AA99" | "A9A" | "AA9A")
}
