//! What the demo records through the gateway's own interfaces once it runs: its users' tokens
//! (the real `/token` flow), an attestation for every organisation they act for (the admin
//! API), and the scenario patients' consents (`/Consent`, by each patient's practice).

use std::time::Duration;

use serde_json::json;
use tideway_auth::client::{BackendClient, UserClaims};
use tideway_auth::{PurposeOfUse, RoleCode};
use tideway_profiles::OdsCode;
use tideway_simulators::population::{
    MENTAL_HEALTH_SERVICE, OUT_OF_HOURS_SERVICE, PODIATRY_SERVICE, Population, Scenario,
};

use super::Persona;
use super::exchanges::{REGISTERED_PRACTICE, demo_attestation};
use super::setup::{ANALYTICS_UNIT, PRIVACY_OFFICE, REGISTRY_ADMIN};
use crate::cli::faults::CliError;

/// The demo's users: `(name, role, ODS code, purpose of use)`. Each gets a token through the
/// real `/token` flow; the organisations are the example agreements' (`policy/agreements/`).
const PERSONAS: [(&str, &str, &str, PurposeOfUse); 10] = [
    ("ooh-gp", "R8000", OUT_OF_HOURS_SERVICE, PurposeOfUse::Treat),
    ("registered-gp", "R8000", REGISTERED_PRACTICE, PurposeOfUse::Treat),
    ("podiatrist", "R8003", PODIATRY_SERVICE, PurposeOfUse::Treat),
    ("mental-health", "R8001", MENTAL_HEALTH_SERVICE, PurposeOfUse::Treat),
    ("social-worker", "R8003", "YLA01", PurposeOfUse::CareCoordination),
    // An organisation no agreement names.
    ("no-relationship", "R8000", "YNONE", PurposeOfUse::Treat),
    ("break-glass", "R8000", OUT_OF_HOURS_SERVICE, PurposeOfUse::EmergencyTreat),
    ("privacy-officer", "R8000", PRIVACY_OFFICE, PurposeOfUse::Operations),
    // Administers the source registry (`/admin/sources`, `/admin/organisations`).
    ("admin", "R8000", REGISTRY_ADMIN, PurposeOfUse::Operations),
    // A London-wide commissioning analyst: de-identified population data only.
    ("analyst", "R8010", ANALYTICS_UNIT, PurposeOfUse::Operations),
];

/// The demo clinician's organisation (the ready file's top-level `token`).
const DEMO_CLINICIAN_ORG: &str = "RJ122";

/// What seeding gave the demo.
pub(super) struct Seeded {
    /// The demo clinician's token.
    pub token: String,
    /// Every persona's token.
    pub personas: std::collections::BTreeMap<String, Persona>,
    /// The scenario patients' NHS numbers, by scenario.
    pub scenario_patients: serde_json::Value,
}

/// Obtains every token, records the attestations and the scenario consents.
pub(super) async fn seed(
    client: &BackendClient,
    base_url: &str,
    population: &Population,
) -> Result<Seeded, CliError> {
    let tokens = TokenFlow {
        client,
        token_url: format!("{base_url}/token"),
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
    };
    let token = tokens.token("demo-clinician", "R8000", DEMO_CLINICIAN_ORG, PurposeOfUse::Treat).await?;
    let mut personas = std::collections::BTreeMap::new();
    for (name, role, ods, purpose) in PERSONAS {
        let token = tokens.token(&format!("demo-{name}"), role, ods, purpose).await?;
        let persona = Persona {
            token,
            role: role.to_owned(),
            ods_code: ods.to_owned(),
            purpose: purpose.code().to_owned(),
        };
        personas.insert(name.to_owned(), persona);
    }
    // Every organisation a demo user acts for, and the practices that record the scenario
    // consents, holds a current attestation, recorded through the real admin API.
    let admin = personas.get("admin").map(|p| p.token.clone()).ok_or("no admin persona")?;
    let mut organisations: Vec<String> = PERSONAS.iter().map(|p| p.2.to_owned()).collect();
    organisations.push(DEMO_CLINICIAN_ORG.to_owned());
    organisations.extend(ConsentSeeds::PATIENTS.iter().filter_map(|i| {
        let record = population.record(population.home_borough(*i), *i)?;
        Some(record.demographics.practice.ods_code)
    }));
    organisations.sort();
    organisations.dedup();
    for ods in &organisations {
        let res = tokens
            .http
            .put(format!("{base_url}/admin/organisations/{ods}"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(json!({ "attestation": demo_attestation() }).to_string())
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("the demo could not record an attestation (HTTP {})", res.status()).into());
        }
    }
    let first = |s: Scenario| population.scenario_patients(s, 1).first().map(|n| n.as_str().to_owned());
    // Consents recorded at start through the real API, by each patient's registered practice.
    let seeded = ConsentSeeds { tokens: &tokens, http: &tokens.http, base_url, clinician: &token };
    let [deny, permit, none] = ConsentSeeds::PATIENTS;
    let dissented = seeded.record(population, deny, Some(json!({"type": "deny"}))).await?;
    let agreed = json!({"type": "permit", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "YLA01"}}
    }]});
    let explicit = seeded.record(population, permit, Some(agreed)).await?;
    let no_consent = seeded.record(population, none, None).await?;
    let scenario_patients = json!({
        "sensitive": first(Scenario::Sensitive),
        "podiatry-diabetic": first(Scenario::PodiatryDiabetic),
        "dissented": dissented,
        "explicit-consent-given": explicit,
        "no-consent": no_consent,
        "restricted": population.restricted_patients(1).first().map(|n| n.as_str().to_owned()),
        "deceased": population.deceased_patients(1).first().map(|n| n.as_str().to_owned()),
    });
    Ok(Seeded { token, personas, scenario_patients })
}

/// Gets demo tokens through the gateway's real `/token` endpoint.
struct TokenFlow<'a> {
    client: &'a BackendClient,
    token_url: String,
    http: reqwest::Client,
}

impl TokenFlow<'_> {
    async fn token(
        &self,
        user_id: &str,
        role: &str,
        ods: &str,
        purpose: PurposeOfUse,
    ) -> Result<String, CliError> {
        let user = UserClaims {
            user_id: user_id.to_owned(),
            role: RoleCode::parse(role).ok_or("bad demo role")?,
            organisation: OdsCode::parse(ods)?,
            purpose,
            name: Some("Demo User".to_owned()),
            break_glass_reason: (purpose == PurposeOfUse::EmergencyTreat)
                .then(|| "Demo: patient collapsed at home; unable to give consent".to_owned()),
        };
        let res = self
            .http
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(self.client.token_form(&self.token_url, "system/*.read", &user)?)
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        Ok(body["access_token"]
            .as_str()
            .ok_or_else(|| format!("the demo could not obtain a token (HTTP {status})"))?
            .to_owned())
    }
}

/// Records the demo's scenario consents through the gateway's own `/Consent` endpoint.
struct ConsentSeeds<'a> {
    tokens: &'a TokenFlow<'a>,
    http: &'a reqwest::Client,
    base_url: &'a str,
    clinician: &'a str,
}

impl ConsentSeeds<'_> {
    /// The population indexes of the `dissented`, `explicit-consent-given` and `no-consent`
    /// patients.
    const PATIENTS: [usize; 3] = [1, 2, 4];

    /// Publishes patient `index`'s id (an NHS-number search) and, given a provision, records a
    /// consent with it as that patient's registered practice. Returns the NHS number (`None`
    /// when the population is too small to hold that patient).
    async fn record(
        &self,
        population: &Population,
        index: usize,
        provision: Option<serde_json::Value>,
    ) -> Result<Option<String>, CliError> {
        let Some(nhs) = population.nhs_number(index) else { return Ok(None) };
        let url = format!(
            "{}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
            self.base_url,
            nhs.as_str()
        );
        let found: serde_json::Value =
            self.http.get(url).bearer_auth(self.clinician).send().await?.json().await?;
        let id = found["entry"][0]["resource"]["id"]
            .as_str()
            .ok_or("a scenario patient was not found")?
            .to_owned();
        if let Some(provision) = provision {
            let home = population.home_borough(index);
            let practice =
                population.record(home, index).ok_or("no home record")?.demographics.practice.ods_code;
            let token = self.tokens.token("demo-practice", "R8000", &practice, PurposeOfUse::Treat).await?;
            let consent = json!({
                "resourceType": "Consent",
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": format!("Patient/{id}")},
                "provision": provision
            });
            let res = self
                .http
                .post(format!("{}/Consent", self.base_url))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(consent.to_string())
                .send()
                .await?;
            if res.status() != reqwest::StatusCode::CREATED {
                return Err(
                    format!("the demo could not record a scenario consent (HTTP {})", res.status()).into()
                );
            }
        }
        Ok(Some(nhs.as_str().to_owned()))
    }
}
