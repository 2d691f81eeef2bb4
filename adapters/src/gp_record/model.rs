//! The neutral shape a GP system's record extract is read into before it becomes FHIR R4.
//!
//! SystmOne, EMIS and Vision store the same kinds of clinical facts (problems, medication,
//! allergies, results, immunisations, procedures, consultations, referrals) but spell them
//! differently: their own XML or JSON, their own code schemes, their own ids. Each dialect's
//! parser reads its format into these types and nothing else; [`super::r4`] turns them into UK
//! Core-flavoured R4 once, the same way for every system, so a clinician sees one shape
//! whichever system a borough runs.
//!
//! Everything here is as the source said it: codes keep their scheme and term id, dates stay
//! strings (validated when the R4 resource is checked), and an entry names the patient the
//! source filed it under, so an entry filed under someone else can be refused.

/// The coding scheme a source code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeScheme {
    /// SNOMED CT (concept id).
    Snomed,
    /// Read v2: the 5-byte code, with its 2-digit term id in [`SourceCode::term_id`].
    ReadV2,
    /// CTV3 (Read v3), including local `Y...` codes.
    Ctv3,
    /// EMIS Web's own code id.
    EmisCode,
    /// An EMIS local code in the Read code slot (`EMISNQ..`, `ESCT..`): EMIS's own extension of
    /// Read v2, no Read v2 code.
    EmisLocal,
    /// NHS dm+d (VMP, AMP, VTM ids).
    Dmd,
    /// EMIS Web's own product code id.
    EmisProduct,
    /// Gemscript product code (Vision).
    Gemscript,
}

impl CodeScheme {
    /// The FHIR code system URI for the scheme.
    pub fn system(&self) -> &'static str {
        use tideway_profiles::systems;
        match self {
            Self::Snomed => systems::SNOMED_CT,
            Self::ReadV2 => systems::READ_V2,
            Self::Ctv3 => systems::CTV3,
            Self::EmisCode => systems::EMIS_CODE_ID,
            Self::EmisLocal => systems::EMIS_LOCAL_CODE,
            Self::Dmd => systems::DM_D,
            Self::EmisProduct => systems::EMIS_PRODUCT_CODE_ID,
            Self::Gemscript => systems::GEMSCRIPT,
        }
    }
}

/// One code as the source recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCode {
    /// Its scheme.
    pub scheme: CodeScheme,
    /// The code (for Read v2, the 5-byte form).
    pub code: String,
    /// The Read v2 term id, when the source gave one.
    pub term_id: Option<String>,
    /// The term the source displayed.
    pub display: Option<String>,
}

/// Administrative gender as GP systems record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Not recorded or not known.
    Unknown,
}

/// The registered practice, as the extract names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    /// The system's id for the practice (becomes the Organization's local id).
    pub local_id: String,
    /// ODS code.
    pub ods_code: String,
    /// Name.
    pub name: String,
}

/// The patient the extract is about. Its `Debug` shows nothing of the person.
#[derive(Clone, PartialEq, Eq)]
pub struct Patient {
    /// The system's id for the patient.
    pub local_id: String,
    /// NHS number as recorded.
    pub nhs_number: Option<String>,
    /// Whether the system holds the NHS number as traced and verified against PDS.
    pub nhs_number_verified: bool,
    /// Given name.
    pub given: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// Sex.
    pub sex: Sex,
    /// Date of birth (`YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// First address line.
    pub address_line: Option<String>,
    /// Town or district.
    pub address_district: Option<String>,
    /// Postcode.
    pub postcode: Option<String>,
    /// The system holds the record as restricted (the Spine "S" flag: a sensitive patient
    /// whose whereabouts are not to be shared).
    pub restricted: bool,
    /// Date of death (`YYYY-MM-DD`), when recorded.
    pub date_of_death: Option<String>,
}

/// What a clinical entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A consultation (an encounter).
    Consultation {
        /// Still open (the encounter is in progress).
        open: bool,
        /// End of the consultation, when closed.
        end: Option<String>,
        /// ODS code of the service the consultation is open with, if not the practice.
        with_service: Option<String>,
        /// Local ids of the problems it was about.
        reasons: Vec<String>,
    },
    /// A problem or diagnosis.
    Problem {
        /// Active (or past/resolved).
        active: bool,
        /// Onset date.
        onset: Option<String>,
    },
    /// A medication the patient is on (repeat template or stated medication).
    Medication {
        /// Still current.
        current: bool,
        /// Dosage text.
        dosage: Option<String>,
    },
    /// One issue of a prescription.
    Prescription {
        /// Dosage text.
        dosage: Option<String>,
        /// Quantity issued, as written.
        quantity: Option<String>,
        /// Unit of the quantity.
        quantity_unit: Option<String>,
    },
    /// An allergy or adverse reaction.
    Allergy {
        /// Still current.
        active: bool,
    },
    /// A result or measurement.
    Observation {
        /// The value as written (a decimal string), if numeric.
        value: Option<String>,
        /// Its unit (UCUM where the system used one).
        unit: Option<String>,
    },
    /// An immunisation given.
    Immunisation {
        /// Dose in millilitres, as written.
        dose_ml: Option<String>,
    },
    /// A procedure done.
    Procedure,
    /// A referral to another service.
    Referral {
        /// ODS code of the service referred to.
        to: Option<String>,
        /// Local id of the problem it is for.
        problem: Option<String>,
        /// Still open.
        open: bool,
    },
}

impl EntryKind {
    /// The R4 resource type the entry becomes.
    pub fn resource_type(&self) -> &'static str {
        match self {
            Self::Consultation { .. } => "Encounter",
            Self::Problem { .. } => "Condition",
            Self::Medication { .. } => "MedicationStatement",
            Self::Prescription { .. } => "MedicationRequest",
            Self::Allergy { .. } => "AllergyIntolerance",
            Self::Observation { .. } => "Observation",
            Self::Immunisation { .. } => "Immunization",
            Self::Procedure => "Procedure",
            Self::Referral { .. } => "ServiceRequest",
        }
    }
}

/// One clinical entry of the extract. Its `Debug` shows its kind only, never its content.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The system's id for the entry.
    pub local_id: String,
    /// The local id of the patient the source filed the entry under.
    pub patient: String,
    /// What it is, with its kind-specific fields.
    pub kind: EntryKind,
    /// Its codes, in the order the source gave them (at least one for a usable entry).
    pub codes: Vec<SourceCode>,
    /// Free text the clinician saw, if the system keeps one beside the code.
    pub text: Option<String>,
    /// When it happened (consultation start, result time, issue date, ...).
    pub date: Option<String>,
    /// When it was entered in the record.
    pub recorded: Option<String>,
    /// Local id of the consultation it was recorded in.
    pub consultation: Option<String>,
    /// When the system last changed it (RFC 3339).
    pub last_updated: Option<String>,
}

/// A record extract, read from one system's format. Its `Debug` shows counts only.
#[derive(Clone, PartialEq, Eq)]
pub struct Extract {
    /// The patient.
    pub patient: Patient,
    /// The registered practice, when the extract names it.
    pub practice: Option<Practice>,
    /// Every clinical entry, in the order the source gave them.
    pub entries: Vec<Entry>,
    /// Entries the parser could not read into an [`Entry`], by the kind it saw (content-free).
    pub unreadable: Vec<Unreadable>,
}

/// An entry of the source's format that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The R4 type it would have become, when the parser could tell.
    pub resource_type: Option<String>,
    /// Why, without any of its content (e.g. "a problem without a code").
    pub reason: String,
}

impl Unreadable {
    /// The practice the extract names, which could not be read.
    pub fn practice() -> Self {
        Self {
            resource_type: Some("Organization".into()),
            reason: "the practice, which could not be read".into(),
        }
    }

    /// One report per row (at least one) of a part of the extract the adapter does not read:
    /// every row of it is counted, none is skipped unseen.
    pub fn unread_part(rows: usize) -> impl Iterator<Item = Self> {
        std::iter::repeat_n(
            Self {
                resource_type: None,
                reason: "a row in a part of the extract the adapter does not read".into(),
            },
            rows.max(1),
        )
    }
}

// Patient data must not reach logs or panics through `{:?}`: the model's `Debug` says what a
// value is, never what it holds.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("resource_type", &self.kind.resource_type())
            .field("codes", &self.codes.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Extract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extract")
            .field("practice", &self.practice.is_some())
            .field("entries", &self.entries.len())
            .field("unreadable", &self.unreadable.len())
            .finish()
    }
}
