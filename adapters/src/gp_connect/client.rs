//! The GP Connect adapter: `$gpc.getstructuredrecord` and the Foundations reads, over reqwest.
//!
//! Every call carries the Spine headers (`Ssp-TraceID` fresh per call, `Ssp-From`, `Ssp-To`,
//! `Ssp-InteractionID`) and a fresh unsigned JWT (`alg: none`, valid five minutes). Calls are
//! bounded like every adapter's ([`crate::http`]): the context's deadline, the body cap without
//! reading an oversized body, redirects never followed. The NHS number travels in the request
//! body and in the JWT's `requested_record` claim (a header, as GP Connect requires), never in a
//! URL. The JWT names the clinician the gateway asks for (the access token's user, role and
//! organisation), so the GP practice's own audit shows who looked; the gateway is the device.
//!
//! A record the gateway's per-source cache already holds is not asked for again, so a second
//! clinician reading it within the cache's lifetime is not named to the provider: the
//! gateway's own audit trail names them, and the registered practice is told of every
//! organisation that opens the record for the first time.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tideway_profiles::{NhsNumber, OdsCode, systems};

use super::mapping;
use super::stu3;
use crate::adapter::{
    AdapterError, CallContext, NormalisedResource, PatientLink, Requester, SourceAdapter, SourcePatient,
    SourceRecord,
};
use crate::fhir_r4::mapping::{self as r4, Normaliser, nhs_number_of};
pub use crate::http::ClientBuildError;
use crate::http::{self, FHIR_JSON, is_dot_segment};
use crate::source::SourceConfig;

/// `Ssp-InteractionID` of the structured record.
pub const GET_STRUCTURED_RECORD: &str =
    "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1";
/// `Ssp-InteractionID` of the Foundations reads, by resource type.
pub fn read_interaction(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "Organization" => "urn:nhs:names:services:gpconnect:fhir:rest:read:organization-1",
        "Practitioner" => "urn:nhs:names:services:gpconnect:fhir:rest:read:practitioner-1",
        "Location" => "urn:nhs:names:services:gpconnect:fhir:rest:read:location-1",
        _ => return None,
    })
}

/// The operation's path under the base URL.
pub const OPERATION: [&str; 2] = ["Patient", "$gpc.getstructuredrecord"];

/// Extension on the JWT's requesting practitioner carrying the user's national RBAC job role
/// (the token's `subject_role`): GP Connect's Practitioner has no element for it.
pub const NATIONAL_ROLE_URL: &str = "https://fhir.tideway.london/StructureDefinition/national-rbac-role";

/// How long a JWT is valid: GP Connect allows at most five minutes.
pub const JWT_LIFETIME_SECS: u64 = 300;

/// The ASID Spine would know a source by. `SourceConfig` has no ASID: it is derived from the
/// source's ODS code (`9` and eleven digits of SHA-256 of the code), stable, and the same
/// derivation the simulator answers to. A real deployment would read each source's ASID from
/// the Spine Directory Service; this is the one place to change when config carries it.
pub fn asid_for(ods: &OdsCode) -> String {
    let digest = Sha256::digest(ods.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("9{:011}", u64::from_be_bytes(first) % 100_000_000_000)
}

/// Who the gateway says it is to a GP Connect provider: its ASID (`Ssp-From`) and the JWT's
/// requesting organisation, device and practitioner.
#[derive(Debug, Clone)]
pub struct GatewayIdentity {
    /// The gateway's ASID (12 digits).
    pub asid: String,
    /// The ODS code of the organisation running the gateway.
    pub ods_code: String,
    /// Its name.
    pub organisation_name: String,
    /// The id the gateway gives itself when it asks for no user (`sub`,
    /// `requesting_practitioner.id`); a call made for a user names that user instead.
    pub user_id: String,
    /// The issuer URI (`iss`).
    pub issuer: String,
}

/// The gateway's ASID when none is configured: a constant, documented here.
pub const DEFAULT_GATEWAY_ASID: &str = "200000001329";

impl Default for GatewayIdentity {
    /// The identity the gateway uses until one is configured; on a call made for no user (the
    /// gateway's own work) the shared-record service itself is the requesting user.
    fn default() -> Self {
        Self {
            asid: DEFAULT_GATEWAY_ASID.into(),
            ods_code: "YTWAY".into(),
            organisation_name: "Tideway shared care record".into(),
            user_id: "tideway-gateway".into(),
            issuer: "https://tideway.london/gateway".into(),
        }
    }
}

/// An adapter for a source speaking GP Connect Access Record Structured.
#[derive(Debug, Clone)]
pub struct GpConnectAdapter {
    config: SourceConfig,
    client: reqwest::Client,
    identity: GatewayIdentity,
    source_asid: String,
}

impl GpConnectAdapter {
    /// An adapter for `config` (its `base_url` gets a trailing `/` if it lacks one), with the
    /// default [`GatewayIdentity`].
    pub fn new(mut config: SourceConfig) -> Result<Self, ClientBuildError> {
        config.base_url = http::with_trailing_slash(config.base_url);
        let client = http::client(config.tls.as_ref())?;
        let source_asid = asid_for(&config.ods_code);
        Ok(Self { config, client, identity: GatewayIdentity::default(), source_asid })
    }

    /// Uses `identity` for `Ssp-From` and the JWT.
    pub fn with_identity(mut self, identity: GatewayIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// The source's ASID (`Ssp-To`).
    pub fn source_asid(&self) -> &str {
        &self.source_asid
    }

    /// The unsigned JWT for one request (`aud` is the URL asked), naming the user the call is
    /// made for ([`CallContext::requester`]) as the requesting practitioner and their
    /// organisation as the requesting organisation, as GP Connect requires of a consumer, so
    /// the provider's own audit says who looked. The gateway is the requesting device (and
    /// `Ssp-From`). A call made for no user (the gateway's own work) names the gateway.
    fn jwt(
        &self,
        aud: &url::Url,
        requested_record: Value,
        scope: &str,
        requester: Option<&Requester>,
    ) -> String {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let id = &self.identity;
        let (user, organisation, practitioner) = match requester {
            Some(r) => (
                r.user_id.as_str(),
                json!({
                    "resourceType": "Organization",
                    "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": r.organisation}]
                }),
                json!({
                    "resourceType": "Practitioner",
                    "id": r.user_id,
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": r.user_id},
                        {"system": "https://fhir.tideway.london/Id/user", "value": r.user_id}
                    ],
                    "extension": [{
                        "url": NATIONAL_ROLE_URL,
                        "valueCoding": {"system": systems::NATIONAL_RBAC_ROLE, "code": r.role}
                    }]
                }),
            ),
            None => (
                id.user_id.as_str(),
                json!({
                    "resourceType": "Organization",
                    "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": id.ods_code}],
                    "name": id.organisation_name
                }),
                json!({
                    "resourceType": "Practitioner",
                    "id": id.user_id,
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "UNK"},
                        {"system": "https://fhir.tideway.london/Id/user", "value": id.user_id}
                    ],
                    "name": [{"family": "Tideway", "given": ["Gateway"]}]
                }),
            ),
        };
        let claims = json!({
            "iss": id.issuer,
            "sub": user,
            "aud": aud.as_str(),
            "exp": iat + JWT_LIFETIME_SECS,
            "iat": iat,
            "reason_for_request": "directcare",
            "requested_record": requested_record,
            "requested_scope": scope,
            "requesting_device": {
                "resourceType": "Device",
                "identifier": [{"system": "https://fhir.tideway.london/Id/device", "value": "tideway-gateway"}],
                "model": "Tideway",
                "version": env!("CARGO_PKG_VERSION")
            },
            "requesting_organization": organisation,
            "requesting_practitioner": practitioner
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.")
    }

    fn headers(
        &self,
        request: reqwest::RequestBuilder,
        interaction: &str,
        jwt: String,
    ) -> reqwest::RequestBuilder {
        request
            .header("Ssp-TraceID", uuid::Uuid::new_v4().to_string())
            .header("Ssp-From", &self.identity.asid)
            .header("Ssp-To", &self.source_asid)
            .header("Ssp-InteractionID", interaction)
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {jwt}"))
    }

    /// Posts `$gpc.getstructuredrecord` for `nhs`, with every clinical include or none, and
    /// returns the Bundle's entries.
    async fn structured_record(
        &self,
        nhs: &NhsNumber,
        clinical: bool,
        ctx: &CallContext,
    ) -> Result<Vec<Value>, AdapterError> {
        let url = http::url_with(&self.config.base_url, &OPERATION)?;
        let requested = json!({
            "resourceType": "Patient",
            "identifier": [{"system": systems::NHS_NUMBER, "value": nhs.as_str()}]
        });
        let jwt = self.jwt(&url, requested, "patient/*.read", ctx.requester.as_ref());
        let body = parameters(nhs, clinical).to_string();
        let request = self.client.post(url).header(reqwest::header::CONTENT_TYPE, FHIR_JSON).body(body);
        let bundle = http::send_json(self.headers(request, GET_STRUCTURED_RECORD, jwt), ctx).await?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(AdapterError::Malformed("response is not a Bundle".into()));
        }
        match bundle.get("entry") {
            None => Ok(Vec::new()),
            Some(Value::Array(entries)) => Ok(entries.clone()),
            Some(_) => Err(AdapterError::Malformed("Bundle.entry is not an array".into())),
        }
    }

    fn normaliser<'a>(&'a self, patient_local_id: &'a str, gateway_patient_id: &'a str) -> Normaliser<'a> {
        Normaliser {
            source: &self.config.id,
            base_url: &self.config.base_url,
            patient_local_id,
            gateway_patient_id,
        }
    }
}

/// The operation's `Parameters`: the NHS number, and with `clinical` every section GP Connect
/// offers that the gateway shows (resolved allergies and prescription issues included).
pub fn parameters(nhs: &NhsNumber, clinical: bool) -> Value {
    let mut parameter = vec![json!({
        "name": "patientNHSNumber",
        "valueIdentifier": {"system": systems::NHS_NUMBER, "value": nhs.as_str()}
    })];
    if clinical {
        parameter.push(json!({"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": true}]}));
        parameter.push(json!({"name": "includeMedication", "part": [{"name": "includePrescriptionIssues", "valueBoolean": true}]}));
        for name in [
            "includeProblems",
            "includeImmunisations",
            "includeConsultations",
            "includeInvestigations",
            "includeReferrals",
            "includeUncategorisedData",
        ] {
            parameter.push(json!({"name": name}));
        }
    }
    json!({"resourceType": "Parameters", "parameter": parameter})
}

#[async_trait]
impl SourceAdapter for GpConnectAdapter {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// GP Connect is for direct care: every call's JWT says `reason_for_request: directcare`
    /// (the only reason a provider accepts from a consumer like this one), so the gateway never
    /// reads a GP Connect practice for an export or the dashboards' figures.
    fn serves_secondary_use(&self) -> bool {
        false
    }

    async fn find(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError> {
        let entries = match self.structured_record(nhs, false, ctx).await {
            // PATIENT_NOT_FOUND: the practice holds no record for the number.
            Err(AdapterError::Status(404)) => return Ok(None),
            other => other?,
        };
        let mut patients: Vec<Value> = entries
            .into_iter()
            .filter_map(|mut e| e.as_object_mut().and_then(|o| o.remove("resource")))
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
            .collect();
        let patient = match patients.len() {
            0 => return Err(AdapterError::Malformed("the structured record has no Patient".into())),
            1 => patients.remove(0),
            _ => return Err(AdapterError::Malformed("ambiguous".into())),
        };
        if nhs_number_of(&patient).as_ref() != Some(nhs) {
            return Err(AdapterError::Malformed(
                "the record's Patient does not carry the NHS number asked for".into(),
            ));
        }
        let local_id = patient
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| r4::is_fhir_id(id))
            .ok_or_else(|| AdapterError::Malformed("the record's Patient has no usable id".into()))?
            .to_owned();
        let normaliser = self.normaliser(&local_id, gateway_id);
        let resource = stu3::convert(patient)
            .map_err(|_| AdapterError::Malformed("the record's Patient could not be converted".into()))
            .and_then(|r| {
                normaliser
                    .normalise(r)
                    .and_then(|r| r4::finish(&r))
                    .map_err(|_| AdapterError::Malformed("the record's Patient is not valid R4".into()))
            })?;
        Ok(Some(SourcePatient { local_id, resource }))
    }

    async fn read_one(
        &self,
        resource_type: &str,
        local_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError> {
        // Only the Foundations reads exist; an id the gateway could not have handed out names
        // nothing: neither is ever sent.
        let Some(interaction) = read_interaction(resource_type) else { return Ok(None) };
        if is_dot_segment(local_id) || !r4::is_fhir_id(local_id) {
            return Ok(None);
        }
        let url = http::url_with(&self.config.base_url, &[resource_type, local_id])?;
        let requested = json!({
            "resourceType": "Organization",
            "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": self.config.ods_code.as_str()}]
        });
        let jwt = self.jwt(&url, requested, "organization/*.read", ctx.requester.as_ref());
        let request = self.headers(self.client.get(url), interaction, jwt);
        let value = match http::send_json(request, ctx).await {
            Err(AdapterError::Status(404 | 410)) => return Ok(None),
            other => other?,
        };
        r4::expect_resource(&value, resource_type, local_id)?;
        // A shared resource belongs to no patient: no patient id to map.
        let normaliser = self.normaliser("", "");
        stu3::convert(value)
            .ok()
            .and_then(|r| normaliser.normalise(r).and_then(|r| r4::finish(&r)).ok())
            .map(Some)
            .ok_or_else(|| AdapterError::Malformed("the resource is not valid R4 once converted".into()))
    }

    async fn fetch(&self, patient: &PatientLink, ctx: &CallContext) -> Result<SourceRecord, AdapterError> {
        let entries = self.structured_record(&patient.nhs_number, true, ctx).await?;
        let normaliser = self.normaliser(&patient.local_id, &patient.gateway_id);
        let conversion = mapping::convert_record(&normaliser, Some(&patient.nhs_number), entries);
        let record = conversion.record;
        if !record
            .resources
            .first()
            .is_some_and(|r| r.resource_type == "Patient" && r.id == patient.gateway_id)
        {
            return Err(AdapterError::Malformed(
                "the structured record has no Patient for the patient asked for".into(),
            ));
        }
        Ok(record)
    }
}
