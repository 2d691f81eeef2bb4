//! Named code sets the sharing agreements classify resources by, across code systems.
//!
//! A set (e.g. `hiv`, `diabetes`) is a list of `(system, code)` pairs in any coding system the
//! region's records use: SNOMED CT, Read v2, CTV3, ICD-10, dm+d. A resource is classified by
//! every coding it carries (its [`ResourceFacts::codings`]), so an older entry coded only in
//! Read v2 or CTV3 lands in the same set as its SNOMED CT twin. The sets shipped with the
//! gateway are built by `scripts/build-terminology.py` from published code lists and embedded
//! here (`policy/terminology/*.csv`, described in its README); each carries a version that the
//! decision records.

use std::collections::HashMap;

use tideway_profiles::ResourceFacts;

/// Whether a set is part of the sensitive set (withheld from everyone unless an agreement
/// names it) or an ordinary clinical set an agreement may include or exclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Sexual health, HIV, assisted conception, termination, gender reassignment...
    Sensitive,
    /// Any other clinical grouping (diabetes, mental health, substance misuse...).
    Clinical,
}

/// One named code set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSet {
    /// Its name, as agreements refer to it.
    pub name: String,
    /// Sensitive or clinical.
    pub kind: SetKind,
    /// The version written in its header (the date it was built).
    pub version: String,
    /// How many codings it holds.
    pub size: usize,
}

/// At most this many sets: a resource's classification is a bit mask.
pub const MAX_SETS: usize = 64;

/// A set of code sets, as bits: bit `i` is the `i`th set of a [`Terminology`].
pub type SetMask = u64;

/// A code set could not be read. The message names the set and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code set '{set}', line {line}: {message}")]
pub struct TerminologyError {
    set: String,
    line: usize,
    message: String,
}

/// Every code set, indexed by coding for classification.
#[derive(Debug, Clone, Default)]
pub struct Terminology {
    sets: Vec<CodeSet>,
    /// system -> code -> the sets holding it.
    index: HashMap<Box<str>, HashMap<Box<str>, SetMask>>,
}

/// The code sets shipped with the gateway, as `(name, text)`.
const EMBEDDED: [(&str, &str); 16] = [
    ("hiv", include_str!("../terminology/hiv.csv")),
    ("termination-of-pregnancy", include_str!("../terminology/termination-of-pregnancy.csv")),
    ("sexually-transmitted-infection", include_str!("../terminology/sexually-transmitted-infection.csv")),
    ("assisted-conception", include_str!("../terminology/assisted-conception.csv")),
    ("gender-reassignment", include_str!("../terminology/gender-reassignment.csv")),
    ("substance-misuse", include_str!("../terminology/substance-misuse.csv")),
    ("diabetes", include_str!("../terminology/diabetes.csv")),
    ("diabetes-care", include_str!("../terminology/diabetes-care.csv")),
    ("arthritis", include_str!("../terminology/arthritis.csv")),
    ("circulation", include_str!("../terminology/circulation.csv")),
    ("feet-and-legs", include_str!("../terminology/feet-and-legs.csv")),
    ("mental-health", include_str!("../terminology/mental-health.csv")),
    ("mental-health-medicines", include_str!("../terminology/mental-health-medicines.csv")),
    ("asthma", include_str!("../terminology/asthma.csv")),
    ("copd", include_str!("../terminology/copd.csv")),
    ("hypertension", include_str!("../terminology/hypertension.csv")),
];

impl Terminology {
    /// The sets shipped with the gateway.
    pub fn embedded() -> Result<Self, TerminologyError> {
        Self::from_texts(EMBEDDED.iter().copied())
    }

    /// Sets read from `(name, text)` pairs in the format `scripts/build-terminology.py` writes:
    /// `# key: value` header lines (`set`, `kind`, `version`), then `system,code` rows.
    pub fn from_texts<'a>(
        texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, TerminologyError> {
        let mut terminology = Self::default();
        for (name, text) in texts {
            terminology.add(name, text)?;
        }
        Ok(terminology)
    }

    fn add(&mut self, name: &str, text: &str) -> Result<(), TerminologyError> {
        let fail = |line: usize, message: &str| TerminologyError {
            set: name.to_owned(),
            line,
            message: message.to_owned(),
        };
        if self.sets.len() == MAX_SETS {
            return Err(fail(0, "too many code sets"));
        }
        if self.sets.iter().any(|s| s.name == name) {
            return Err(fail(0, "a set of this name is already loaded"));
        }
        let bit: SetMask = 1 << self.sets.len();
        let (mut kind, mut version, mut header_seen, mut size) = (None, None, false, 0);
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() {
                continue;
            }
            if let Some(meta) = line.strip_prefix('#') {
                match meta.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("set", v)) if v != name => return Err(fail(n, "the header names another set")),
                    Some(("kind", "sensitive")) => kind = Some(SetKind::Sensitive),
                    Some(("kind", "clinical")) => kind = Some(SetKind::Clinical),
                    Some(("kind", _)) => return Err(fail(n, "kind must be 'sensitive' or 'clinical'")),
                    Some(("version", v)) => version = Some(v.to_owned()),
                    _ => {}
                }
                continue;
            }
            if !header_seen {
                if line != "system,code" {
                    return Err(fail(n, "expected the column line 'system,code'"));
                }
                header_seen = true;
                continue;
            }
            let Some((system, code)) = line.split_once(',') else {
                return Err(fail(n, "expected 'system,code'"));
            };
            if system.is_empty() || code.is_empty() || code.contains(',') {
                return Err(fail(n, "expected a system and a code"));
            }
            *self.index.entry(system.into()).or_default().entry(code.into()).or_default() |= bit;
            size += 1;
        }
        let kind = kind.ok_or_else(|| fail(0, "no '# kind:' header"))?;
        let version = version.ok_or_else(|| fail(0, "no '# version:' header"))?;
        if size == 0 {
            return Err(fail(0, "the set holds no codes"));
        }
        self.sets.push(CodeSet { name: name.to_owned(), kind, version, size });
        Ok(())
    }

    /// The sets, in load order (set `i` is bit `i`).
    pub fn sets(&self) -> &[CodeSet] {
        &self.sets
    }

    /// The bit of the set called `name`, if loaded.
    pub fn bit(&self, name: &str) -> Option<SetMask> {
        self.sets.iter().position(|s| s.name == name).map(|i| 1 << i)
    }

    /// The sensitive sets, as bits.
    pub fn sensitive(&self) -> SetMask {
        self.sets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == SetKind::Sensitive)
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// The sets any of the resource's codings belong to.
    pub fn classify(&self, facts: &ResourceFacts) -> SetMask {
        facts.codings.iter().fold(0, |mask, c| {
            mask | self
                .index
                .get(c.system.as_str())
                .and_then(|codes| codes.get(c.code.as_str()))
                .copied()
                .unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use tideway_profiles::Coding;

    use super::*;

    fn facts(codings: &[(&str, &str)]) -> ResourceFacts {
        ResourceFacts {
            codings: codings.iter().map(|(s, c)| Coding { system: (*s).into(), code: (*c).into() }).collect(),
            ..ResourceFacts::default()
        }
    }

    #[test]
    fn shipped_sets_load_and_classify_every_coding_system() {
        let t = Terminology::embedded().unwrap();
        let diabetes = t.bit("diabetes").unwrap();
        let hiv = t.bit("hiv").unwrap();
        // Type 2 diabetes in SNOMED CT, Read v2 and CTV3 all land in the same set.
        for coding in [
            ("http://snomed.info/sct", "44054006"),
            ("http://read.info/readv2", "C10F."),
            ("http://read.info/ctv3", "X40J5"),
        ] {
            assert_eq!(t.classify(&facts(&[coding])) & diabetes, diabetes, "{coding:?}");
        }
        assert_eq!(t.classify(&facts(&[("http://snomed.info/sct", "86406008")])) & hiv, hiv);
        assert_ne!(t.sensitive() & hiv, 0);
        assert_eq!(t.sensitive() & diabetes, 0);
        // The code alone is not enough: the system must match.
        assert_eq!(t.classify(&facts(&[("http://read.info/ctv3", "44054006")])), 0);
        assert_eq!(t.classify(&facts(&[])), 0);
    }

    #[test]
    fn measure_sets_hold_the_codes_the_synthetic_population_uses() {
        let t = Terminology::embedded().unwrap();
        let (snomed, read, ctv3) =
            ("http://snomed.info/sct", "http://read.info/readv2", "http://read.info/ctv3");
        for (set, codings) in [
            ("hypertension", [(snomed, "38341003"), (read, "G20.."), (ctv3, "XE0Ub")]),
            ("asthma", [(snomed, "195967001"), (read, "H33.."), (ctv3, "H33..")]),
            ("copd", [(snomed, "13645005"), (read, "H3..."), (ctv3, "XaEIV")]),
        ] {
            let bit = t.bit(set).unwrap();
            assert_eq!(t.sensitive() & bit, 0, "{set} is a clinical set");
            for coding in codings {
                assert_eq!(t.classify(&facts(&[coding])) & bit, bit, "{set}: {coding:?}");
            }
        }
        // Asthma is not COPD, although Read v2 files it under the same chapter.
        assert_eq!(t.classify(&facts(&[(snomed, "195967001")])) & t.bit("copd").unwrap(), 0);
    }

    #[test]
    fn malformed_sets_are_refused_with_their_line() {
        let err = |text: &str| Terminology::from_texts([("s", text)]).unwrap_err().to_string();
        assert!(err("# kind: clinical\n# version: 1\nsystem,code\nonly-a-system\n").contains("line 4"));
        assert!(err("# kind: odd\n").contains("kind must be"));
        assert!(err("# kind: clinical\n# version: 1\nsystem,code\n").contains("no codes"));
        assert!(err("# set: other\n").contains("another set"));
        assert!(err("# version: 1\nsystem,code\na,b\n").contains("kind"));
        let twice = Terminology::from_texts([("s", "# kind: clinical\n# version: 1\nsystem,code\na,b\n"); 2]);
        assert!(twice.unwrap_err().to_string().contains("already loaded"));
    }
}
