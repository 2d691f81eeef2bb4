//! Coding-system and identifier-system URIs used across the region.

/// NHS number identifier system.
pub const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// ODS organisation code identifier system.
pub const ODS_ORGANIZATION_CODE: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// SNOMED CT.
pub const SNOMED_CT: &str = "http://snomed.info/sct";
/// Read Codes version 2.
pub const READ_V2: &str = "http://read.info/readv2";
/// Clinical Terms Version 3 (Read v3).
pub const CTV3: &str = "http://read.info/ctv3";
/// NHS Dictionary of Medicines and Devices.
pub const DM_D: &str = "https://dmd.nhs.uk";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// HL7 v3 PurposeOfUse.
pub const PURPOSE_OF_USE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// NHS national RBAC role codes (job role codes).
pub const NATIONAL_RBAC_ROLE: &str = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode";
/// Tideway's record-origin code system: a `meta.tag` in it says what kind of record a resource
/// came from. Only Tideway's adapters set it (a source's own tags in it are dropped on
/// normalisation), so a source cannot move its data into another section.
pub const RECORD_ORIGIN: &str = "https://fhir.tideway.london/CodeSystem/record-origin";
/// The [`RECORD_ORIGIN`] code of a local authority's social care record.
pub const RECORD_ORIGIN_SOCIAL_CARE: &str = "social-care";
/// EMIS Web's own code ids (the CPRD Aurum `MedCodeId`). EMIS publishes no FHIR URI for them
/// that could be cited here, so Tideway names the system under its own base.
pub const EMIS_CODE_ID: &str = "https://fhir.tideway.london/CodeSystem/emis-code-id";
/// EMIS Web's local codes, which EMIS keeps in the Read code slot of entries no Read v2 code
/// fits (`EMISNQ..`, `ESCT..`); named under Tideway's base, as above. No map translates them:
/// the EMIS code id beside them is what maps.
pub const EMIS_LOCAL_CODE: &str = "https://fhir.tideway.london/CodeSystem/emis-local-code";
/// EMIS Web's product code ids (the CPRD Aurum `ProdCodeId`); named under Tideway's base, as above.
pub const EMIS_PRODUCT_CODE_ID: &str = "https://fhir.tideway.london/CodeSystem/emis-product-code-id";
/// Gemscript (formerly Multilex) product codes, as Vision records medicines; named under
/// Tideway's base for the same reason.
pub const GEMSCRIPT: &str = "https://fhir.tideway.london/CodeSystem/gemscript";
/// HL7 v3 Confidentiality: the `meta.security` codes that flag a record restricted (`R`) or
/// very restricted (`V`), as the PDS FHIR API flags an S-flagged (sensitive) patient.
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
