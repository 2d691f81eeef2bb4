//! Faults a simulator injects, the same set for every simulated system.
//!
//! One draw per request decides its fault, from the request's number and a seed, so a pattern of
//! faults replays exactly. Each simulator decides how a fault looks in its own dialect (an R4
//! OperationOutcome, a SystmOne XML error, ...); the kinds and rates are shared.

use bytes::Bytes;
use serde::Deserialize;

fn zero() -> f64 {
    0.0
}

/// Faults injected per request. The default injects none. Rates are probabilities in `0..=1`,
/// checked in the order fail, hang, malformed, oversized, redirect, foreign link, wrong patient,
/// empty record against one draw per request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Delay added before every answer, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of requests answered HTTP 500 with an OperationOutcome.
    #[serde(default = "zero")]
    pub fail_rate: f64,
    /// Share of requests never answered (until the client gives up).
    #[serde(default = "zero")]
    pub hang_rate: f64,
    /// Share of requests answered 200 with a truncated, non-JSON body.
    #[serde(default = "zero")]
    pub malformed_rate: f64,
    /// Share of requests answered 200 with 64 MiB of valid-looking JSON.
    #[serde(default = "zero")]
    pub oversized_rate: f64,
    /// Share of requests answered with a redirect to another origin.
    #[serde(default = "zero")]
    pub redirect_rate: f64,
    /// Share of record fetches whose answer carries a `next` link to another origin.
    #[serde(default = "zero")]
    pub foreign_link_rate: f64,
    /// Share of record fetches whose answer also carries entries about another patient.
    #[serde(default = "zero")]
    pub wrong_patient_rate: f64,
    /// Share of record fetches answered with the patient alone, as if nothing else were held.
    #[serde(default = "zero")]
    pub empty_record_rate: f64,
    /// Share of requests answered with a document declaring a DOCTYPE whose external entity
    /// points back at the simulator (markup dialects; a JSON dialect sends it as a body it cannot
    /// read). Drawn last, so adding it left every earlier draw as it was.
    #[serde(default = "zero")]
    pub external_entity_rate: f64,
    /// Seed of the per-request draw, so a fault pattern can be replayed.
    #[serde(default)]
    pub seed: u64,
}

/// The fault drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// HTTP 500 with the dialect's error body.
    Fail,
    /// Never answer.
    Hang,
    /// A truncated body.
    Malformed,
    /// A body far over any sane cap, streamed.
    Oversized,
    /// A redirect to another origin.
    Redirect,
    /// A record page linking its next page on another origin.
    ForeignLink,
    /// A record page with entries about someone else too.
    WrongPatient,
    /// A record holding the patient and nothing else.
    EmptyRecord,
    /// A document with a DOCTYPE declaring an external entity.
    ExternalEntity,
}

impl Fault {
    /// Whether the fault replaces the whole answer; the others change only a record fetch's
    /// content, and the request is served normally otherwise.
    pub fn replaces_answer(self) -> bool {
        matches!(
            self,
            Self::Fail
                | Self::Hang
                | Self::Malformed
                | Self::Oversized
                | Self::Redirect
                | Self::ExternalEntity
        )
    }
}

impl FaultConfig {
    /// Each rate with its config name and the fault it draws, in draw order.
    pub fn rates(&self) -> [(&'static str, f64, Fault); 9] {
        [
            ("fail_rate", self.fail_rate, Fault::Fail),
            ("hang_rate", self.hang_rate, Fault::Hang),
            ("malformed_rate", self.malformed_rate, Fault::Malformed),
            ("oversized_rate", self.oversized_rate, Fault::Oversized),
            ("redirect_rate", self.redirect_rate, Fault::Redirect),
            ("foreign_link_rate", self.foreign_link_rate, Fault::ForeignLink),
            ("wrong_patient_rate", self.wrong_patient_rate, Fault::WrongPatient),
            ("empty_record_rate", self.empty_record_rate, Fault::EmptyRecord),
            ("external_entity_rate", self.external_entity_rate, Fault::ExternalEntity),
        ]
    }

    /// Checks every rate is a probability; the error names the first that is not.
    pub fn check(&self) -> Result<(), String> {
        match self.rates().into_iter().find(|(_, rate, _)| !(0.0..=1.0).contains(rate)) {
            Some((name, _, _)) => Err(format!("{name} must be between 0.0 and 1.0")),
            None => Ok(()),
        }
    }

    /// The fault for request number `n`.
    pub fn draw(&self, n: u64) -> Fault {
        let rates = self.rates();
        if rates.iter().map(|(_, r, _)| r).sum::<f64>() <= 0.0 {
            return Fault::None;
        }
        // splitmix64 of (seed, request number): replayable without shared RNG state.
        let mut z = self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = 0.0;
        for (_, rate, fault) in rates {
            edge += rate;
            if u < edge {
                return fault;
            }
        }
        Fault::None
    }
}

/// The body of an [`Fault::Oversized`] answer: `head` (a Bundle opened up to its `entry` array),
/// then 64 MiB of valid-looking JSON entries, streamed in 64 KiB chunks without a length, so a
/// client can only refuse it by counting what it reads.
pub fn oversized_bundle(
    head: &'static [u8],
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static {
    const TOTAL: usize = 64 * 1024 * 1024;
    let filler = Bytes::from(format!(
        r#"{{"resource":{{"resourceType":"Basic","code":{{"text":"{}"}}}}}},"#,
        "x".repeat(64 * 1024 - 60)
    ));
    let chunks = TOTAL / filler.len();
    let tail = Bytes::from_static(br#"{"resource":{"resourceType":"Basic","code":{"text":"end"}}}]}"#);
    let body = std::iter::once(Bytes::from_static(head))
        .chain(std::iter::repeat_n(filler, chunks))
        .chain(std::iter::once(tail))
        .map(Ok::<_, std::convert::Infallible>);
    futures::stream::iter(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_config_rejects_unknown_fields_and_defaults_to_none() {
        let none: FaultConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(none, FaultConfig::default());
        let some: FaultConfig = serde_json::from_str(r#"{"fail_rate": 0.25, "latency_ms": 10}"#).unwrap();
        assert_eq!(some.fail_rate, 0.25);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"fail_rat": 0.25}"#).is_err());
    }

    #[test]
    fn a_rate_of_one_always_draws_that_fault() {
        let all = FaultConfig { wrong_patient_rate: 1.0, ..FaultConfig::default() };
        assert!((0..100).all(|n| all.draw(n) == Fault::WrongPatient));
        assert!((0..100).all(|n| FaultConfig::default().draw(n) == Fault::None));
        assert!(all.check().is_ok());
        let bad = FaultConfig { redirect_rate: 1.5, ..FaultConfig::default() };
        assert_eq!(bad.check().unwrap_err(), "redirect_rate must be between 0.0 and 1.0");
    }
}
