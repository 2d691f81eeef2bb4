//! What a local authority's adult social care service holds about a person: a different story
//! from the GP's, told about the same people.
//!
//! A borough's council holds a social-care record for some of the people who live in the
//! borough (whose home borough it is): every [`Scenario::PodiatryDiabetic`] patient, every
//! patient also held by the two boroughs after their home (index a multiple of 10, so the
//! demo has people known to social care *and* to several GP exchanges), half of the
//! [`Scenario::Sensitive`] patients and one in four of everyone else. The record is an
//! allocated social worker at the council, an episode of adult social care, care plans with
//! their services, and the referrals the council received from the person's GP practice, each
//! tracked by a task whose status says whether it was accepted, turned down or closed.
//!
//! Every draw here comes from streams of its own, so the GP records of the population (and
//! the bytes pinned for them) are exactly what they were before social care existed.

use tideway_profiles::OdsCode;

use super::{
    BOROUGHS, Concept, Demographics, FAMILY_NAMES, FEMALE_NAMES, Gen, MALE_NAMES, Population, Scenario,
    concept, date, numbered, timestamp,
};

/// Salt of the stream that decides who the council holds (per patient).
const HELD_STREAM: u64 = 0x50C1_A1CA_0001;
/// Salt of the stream a person's social-care record is drawn from (per patient and borough).
const RECORD_STREAM: u64 = 0x50C1_A1CA_0002;
/// Salt of the stream a council's social workers are drawn from (per borough and worker).
const WORKER_STREAM: u64 = 0x50C1_A1CA_0003;
/// Social workers per council; each person is allocated one of them.
const WORKERS_PER_COUNCIL: u64 = 4;

// The SNOMED CT concepts below were checked against published uses, not guessed: 734163000
// (Synthea's CarePlans in ../shared/data), 410606002 (the R4 `procedure-category` value set in
// ../shared/data/hl7-fhir-r4-examples), 1048221000000107 (the NHS primary care domain refset
// ILLSUBINT_COD in ../shared/data/codelists), and 106328005, 308440001, 713109004, 710925007 and
// 60689008 (each in several FHIR implementation guides and HAPI's generated value sets, with
// these terms). Equipment carries no code: none could be confirmed.

/// SNOMED CT 106328005 |Social worker (occupation)|.
pub const SOCIAL_WORKER: Concept = concept("106328005", "Social worker");
/// SNOMED CT 734163000 |Care plan (record artifact)|: the category of every care plan.
pub const CARE_PLAN: Concept = concept("734163000", "Care plan");
/// SNOMED CT 410606002 |Social service procedure|: the category of every referral to social care.
pub const SOCIAL_SERVICE_PROCEDURE: Concept = concept("410606002", "Social service procedure");
/// SNOMED CT 308440001 |Referral to social worker (procedure)|.
pub const REFERRAL_TO_SOCIAL_WORKER: Concept = concept("308440001", "Referral to social worker");
/// SNOMED CT 713109004 |Referral to community meals service (procedure)|.
pub const REFERRAL_TO_MEALS: Concept = concept("713109004", "Referral to community meals service");
/// SNOMED CT 1048221000000107 |Referral for specialist substance misuse intervention|: the
/// council commissions the borough's drug and alcohol service. In the `substance-misuse` set.
pub const REFERRAL_FOR_SUBSTANCE_MISUSE: Concept =
    concept("1048221000000107", "Referral for specialist substance misuse intervention");
/// SNOMED CT 60689008 |Home care of patient (regime/therapy)|.
pub const HOME_CARE: Concept = concept("60689008", "Home care of patient");
/// SNOMED CT 710925007 |Provision of food (procedure)|.
pub const PROVISION_OF_FOOD: Concept = concept("710925007", "Provision of food");

/// The council whose adult social care service holds the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAuthority {
    /// The record's id for the council's Organization.
    pub id: String,
    /// ODS-style code, `YLA01` for the first borough.
    pub ods_code: String,
    /// Name, e.g. `Camden Council Adult Social Care`.
    pub name: String,
    /// The borough.
    pub borough: &'static str,
}

/// The social worker allocated to the person, and their role at the council.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialWorker {
    /// The council's id for the Practitioner.
    pub id: String,
    /// The council's id for the PractitionerRole.
    pub role_id: String,
    /// Given name.
    pub given: &'static str,
    /// Family name.
    pub family: &'static str,
}

/// A period of the council's involvement: adult social care, open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareEpisode {
    /// The council's id for the entry.
    pub id: String,
    /// Whether the council is still working with the person (the episode has no end).
    pub active: bool,
    /// Opened, `YYYY-MM-DD`.
    pub start: String,
    /// Closed, `YYYY-MM-DD`, when not active.
    pub end: Option<String>,
    /// When the council last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// Where a care plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    /// Being delivered.
    Active,
    /// Ended as planned.
    Completed,
    /// Replaced or stopped before its end.
    Revoked,
}

/// One service a care plan arranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CareActivity {
    /// SNOMED CT, when the council codes the service.
    pub code: Option<Concept>,
    /// What is provided, as the council describes it.
    pub description: &'static str,
    /// Whether it is being provided (`true`) or has stopped.
    pub ongoing: bool,
}

/// A plan of the care and support the council arranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarePlanEntry {
    /// The council's id for the entry.
    pub id: String,
    /// Where it stands.
    pub status: PlanStatus,
    /// Id of the episode it belongs to.
    pub episode: String,
    /// Start, `YYYY-MM-DD`.
    pub start: String,
    /// End, `YYYY-MM-DD`, when it has ended.
    pub end: Option<String>,
    /// The services it arranges (at least one).
    pub activities: Vec<CareActivity>,
    /// When the council last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// Where a referral the council received stands: the task tracking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferralStatus {
    /// Received, not yet looked at.
    Requested,
    /// Accepted, waiting for an assessment.
    Accepted,
    /// Turned down, with a reason.
    Rejected,
    /// Being worked on.
    InProgress,
    /// Done and closed.
    Completed,
    /// Withdrawn by the referrer before it was done.
    Cancelled,
}

impl ReferralStatus {
    /// Every status, in the order the draws index them.
    pub const ALL: [Self; 6] =
        [Self::Requested, Self::Accepted, Self::Rejected, Self::InProgress, Self::Completed, Self::Cancelled];

    /// Whether the council has closed the referral (nothing more will happen on it).
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Rejected | Self::Completed | Self::Cancelled)
    }
}

/// A referral the council received from the person's GP practice, and its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialCareReferral {
    /// The council's id for the referral (its ServiceRequest).
    pub id: String,
    /// The council's id for the task tracking it.
    pub task_id: String,
    /// What was asked for (SNOMED CT).
    pub code: Concept,
    /// Received, `YYYY-MM-DD`.
    pub authored: String,
    /// Where it stands.
    pub status: ReferralStatus,
    /// The council's own word for where it stands (its case-management workflow step).
    pub business_status: &'static str,
    /// Why it was turned down or withdrawn, when it was.
    pub status_reason: Option<&'static str>,
    /// When the task last changed, RFC 3339.
    pub task_last_updated: String,
    /// When the council last changed the referral, RFC 3339.
    pub last_updated: String,
}

/// One person's social-care record as their council holds it: plain facts, in no system's
/// format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialCareRecord {
    /// The council's own id for the person (not the GP exchanges' id).
    pub local_id: String,
    /// Who the person is (the same demographics every source has).
    pub demographics: Demographics,
    /// When the council last changed the person's details, RFC 3339.
    pub last_updated: String,
    /// The council.
    pub authority: LocalAuthority,
    /// The allocated social worker.
    pub social_worker: SocialWorker,
    /// The episode of adult social care.
    pub episode: CareEpisode,
    /// Care plans, the current one first.
    pub care_plans: Vec<CarePlanEntry>,
    /// Referrals received from the GP practice (at least one).
    pub referrals: Vec<SocialCareReferral>,
}

/// The services a care plan may arrange.
const ACTIVITIES: [CareActivity; 3] = [
    CareActivity {
        code: Some(HOME_CARE),
        description: "Home care package: two visits a day for personal care",
        ongoing: true,
    },
    CareActivity {
        code: Some(PROVISION_OF_FOOD),
        description: "Meals delivered at home, five days a week",
        ongoing: true,
    },
    // Councils record equipment by catalogue item; no SNOMED CT concept is claimed for it.
    CareActivity {
        code: None,
        description: "Equipment for daily living: bath seat and grab rails",
        ongoing: true,
    },
];

impl ReferralStatus {
    fn business_status(self) -> &'static str {
        match self {
            Self::Requested => "Received: awaiting screening",
            Self::Accepted => "Accepted: awaiting Care Act assessment",
            Self::Rejected => "Closed: no eligible needs",
            Self::InProgress => "Allocated: assessment under way",
            Self::Completed => "Closed: services in place",
            Self::Cancelled => "Closed: withdrawn by referrer",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            Self::Rejected => Some("Needs do not meet the national eligibility criteria"),
            Self::Cancelled => Some("Withdrawn by the GP practice"),
            _ => None,
        }
    }
}

impl Population {
    /// The ODS-style code of borough `borough`'s council, `YLA01` for the first.
    pub fn local_authority_ods_code(&self, borough: usize) -> Option<OdsCode> {
        self.borough_name(borough)?;
        OdsCode::parse(&format!("YLA{:02}", borough + 1)).ok()
    }

    /// Whether borough `borough`'s council holds a social-care record for patient `index`.
    pub fn holds_social_care(&self, borough: usize, index: usize) -> bool {
        if index >= self.patient_count() || self.home_borough(index) != borough {
            return false;
        }
        let draw = Gen::new(self.seed, index as u64, HELD_STREAM).below(4);
        match Scenario::of(index) {
            Some(Scenario::PodiatryDiabetic) => true,
            Some(Scenario::Sensitive) => draw < 2,
            None => index.is_multiple_of(10) || draw == 0,
        }
    }

    /// The patients borough `borough`'s council holds a social-care record for, by index.
    pub fn social_care_patients(&self, borough: usize) -> Vec<usize> {
        if borough >= self.borough_count {
            return Vec::new();
        }
        let ppb = self.patients_per_borough;
        (borough * ppb..(borough + 1) * ppb).filter(|&i| self.holds_social_care(borough, i)).collect()
    }

    /// The council's id for patient `index`: its own numbering, unlike the GP exchanges'.
    pub fn social_care_local_id(&self, borough: usize, index: usize) -> String {
        format!("la{borough:02}-person{index:06}")
    }

    /// The patient behind a council id of `borough`, if the council holds them.
    pub fn index_from_social_care_id(&self, borough: usize, local_id: &str) -> Option<usize> {
        let index = numbered(local_id, &format!("la{borough:02}-person"))?;
        self.holds_social_care(borough, index).then_some(index)
    }

    /// The social-care record borough `borough`'s council holds for patient `index`, or `None`
    /// when it holds none.
    pub fn social_care_record(&self, borough: usize, index: usize) -> Option<SocialCareRecord> {
        if !self.holds_social_care(borough, index) {
            return None;
        }
        let nhs_number = self.nhs_number(index)?;
        let demographics = self.demographics(nhs_number, index);
        let local_id = self.social_care_local_id(borough, index);
        let mut g = Gen::new(self.seed, index as u64, RECORD_STREAM ^ borough as u64);
        let name = BOROUGHS[borough].0;
        let authority = LocalAuthority {
            id: format!("la{borough:02}"),
            ods_code: self.local_authority_ods_code(borough)?.as_str().to_owned(),
            name: format!("{name} Council Adult Social Care"),
            borough: name,
        };
        let social_worker = self.social_worker(borough, g.below(WORKERS_PER_COUNCIL));
        let last_updated = timestamp(&mut g);
        let scenario = Scenario::of(index);
        // The people with open GP referrals to other services are being worked with now.
        let active = scenario == Some(Scenario::PodiatryDiabetic) || g.below(4) != 0;
        let opened = date(&mut g);
        let episode = CareEpisode {
            id: format!("{local_id}-eoc0"),
            active,
            end: (!active).then(|| later(&opened, 1 + g.below(3))),
            start: opened.clone(),
            last_updated: timestamp(&mut g),
        };
        let mut care_plans = Vec::new();
        // An earlier plan, replaced by the current one, for some people.
        let replaced = g.below(3) == 0;
        let current_start = if replaced { later(&opened, 1) } else { opened.clone() };
        let mut activities: Vec<CareActivity> =
            ACTIVITIES.iter().copied().filter(|_| g.below(2) == 0).collect();
        if activities.is_empty() {
            activities.push(ACTIVITIES[0]);
        }
        if !active {
            activities.iter_mut().for_each(|a| a.ongoing = false);
        }
        care_plans.push(CarePlanEntry {
            id: format!("{local_id}-cp0"),
            status: if active { PlanStatus::Active } else { PlanStatus::Completed },
            episode: episode.id.clone(),
            end: episode.end.clone(),
            start: current_start.clone(),
            activities,
            last_updated: timestamp(&mut g),
        });
        if replaced {
            care_plans.push(CarePlanEntry {
                id: format!("{local_id}-cp1"),
                status: PlanStatus::Revoked,
                episode: episode.id.clone(),
                start: opened.clone(),
                end: Some(current_start),
                activities: vec![CareActivity { ongoing: false, ..ACTIVITIES[0] }],
                last_updated: timestamp(&mut g),
            });
        }
        let asked: Vec<(Concept, ReferralStatus)> = match scenario {
            // One accepted and one turned down, so the GP has both kinds of answer to see.
            Some(Scenario::PodiatryDiabetic) => vec![
                (REFERRAL_TO_SOCIAL_WORKER, ReferralStatus::Accepted),
                (REFERRAL_TO_MEALS, ReferralStatus::Rejected),
            ],
            _ => (0..1 + g.below(2))
                .map(|i| {
                    let code = if i == 0 { REFERRAL_TO_SOCIAL_WORKER } else { REFERRAL_TO_MEALS };
                    (code, ReferralStatus::ALL[g.below(6) as usize])
                })
                .collect(),
        };
        let mut referrals: Vec<SocialCareReferral> = asked
            .into_iter()
            .enumerate()
            .map(|(i, (code, status))| referral(&local_id, i, code, status, &opened, &mut g))
            .collect();
        if scenario == Some(Scenario::Sensitive) {
            let i = referrals.len();
            let status = ReferralStatus::InProgress;
            referrals.push(referral(&local_id, i, REFERRAL_FOR_SUBSTANCE_MISUSE, status, &opened, &mut g));
        }
        Some(SocialCareRecord {
            local_id,
            demographics,
            last_updated,
            authority,
            social_worker,
            episode,
            care_plans,
            referrals,
        })
    }

    /// Social worker `k` of borough `borough`'s council: the same person in every record.
    fn social_worker(&self, borough: usize, k: u64) -> SocialWorker {
        let mut g = Gen::new(self.seed, borough as u64, WORKER_STREAM ^ k);
        let given = if g.below(2) == 0 { g.pick(&FEMALE_NAMES) } else { g.pick(&MALE_NAMES) };
        SocialWorker {
            id: format!("la{borough:02}-sw{k}"),
            role_id: format!("la{borough:02}-sw{k}-role"),
            given,
            family: g.pick(&FAMILY_NAMES),
        }
    }
}

fn referral(
    local_id: &str,
    i: usize,
    code: Concept,
    status: ReferralStatus,
    opened: &str,
    g: &mut Gen,
) -> SocialCareReferral {
    SocialCareReferral {
        id: format!("{local_id}-ref{i}"),
        task_id: format!("{local_id}-task{i}"),
        code,
        authored: opened.to_owned(),
        status,
        business_status: status.business_status(),
        status_reason: status.reason(),
        task_last_updated: timestamp(g),
        last_updated: timestamp(g),
    }
}

/// `day` (`YYYY-MM-DD`) moved on by `years`.
fn later(day: &str, years: u64) -> String {
    let year: u64 = day.get(..4).and_then(|y| y.parse().ok()).unwrap_or(2020);
    format!("{}{}", year + years, day.get(4..).unwrap_or("-01-01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop() -> Population {
        Population::new(42, 3, 50)
    }

    #[test]
    fn the_same_seed_gives_the_same_social_care_record() {
        let p = pop();
        let i = p.social_care_patients(1)[2];
        assert_eq!(p.social_care_record(1, i), Population::new(42, 3, 50).social_care_record(1, i));
        assert!(p.social_care_record(1, i).is_some());
    }

    #[test]
    fn councils_hold_every_podiatry_diabetic_resident_some_sensitive_ones_and_some_others() {
        let p = Population::new(7, 5, 200);
        let (mut sensitive, mut sensitive_held, mut plain_held) = (0, 0, 0);
        for b in 0..p.borough_count() {
            let held = p.social_care_patients(b);
            for i in b * 200..(b + 1) * 200 {
                assert_eq!(held.contains(&i), p.holds_social_care(b, i));
                match Scenario::of(i) {
                    Some(Scenario::PodiatryDiabetic) => assert!(held.contains(&i), "{i}"),
                    Some(Scenario::Sensitive) => {
                        sensitive += 1;
                        sensitive_held += usize::from(held.contains(&i));
                    }
                    None => plain_held += usize::from(held.contains(&i)),
                }
            }
            // Only residents: nobody from another borough.
            assert!(held.iter().all(|&i| p.home_borough(i) == b));
        }
        assert!(sensitive_held > 0 && sensitive_held < sensitive, "{sensitive_held}/{sensitive}");
        assert!(plain_held > 0);
    }

    #[test]
    fn some_people_are_known_to_social_care_and_to_several_gp_exchanges() {
        let p = pop();
        let shared: Vec<usize> = (0..p.patient_count())
            .filter(|&i| p.holds_social_care(p.home_borough(i), i) && p.boroughs_of(i).len() > 2)
            .collect();
        assert!(shared.len() >= 3, "{shared:?}");
        for i in shared {
            for b in p.boroughs_of(i) {
                assert!(p.record(b, i).is_some());
            }
        }
    }

    #[test]
    fn records_are_consistent_and_say_whether_each_referral_was_answered() {
        let p = Population::new(7, 3, 200);
        let mut seen = std::collections::HashSet::new();
        let mut substance_misuse = 0;
        for b in 0..p.borough_count() {
            for i in p.social_care_patients(b) {
                let r = p.social_care_record(b, i).unwrap();
                assert_eq!(p.index_from_social_care_id(b, &r.local_id), Some(i));
                assert_eq!(r.demographics, p.record(b, i).unwrap().demographics, "the same person");
                assert_eq!(r.authority.ods_code, format!("YLA{:02}", b + 1));
                assert!(!r.care_plans.is_empty() && !r.referrals.is_empty());
                assert_eq!(r.episode.active, r.episode.end.is_none());
                assert_eq!(r.care_plans[0].status == PlanStatus::Active, r.episode.active);
                for plan in &r.care_plans {
                    assert_eq!(plan.episode, r.episode.id);
                    assert!(!plan.activities.is_empty());
                    assert_eq!(plan.status == PlanStatus::Active, plan.end.is_none());
                }
                for f in &r.referrals {
                    seen.insert(f.status);
                    assert_eq!(
                        f.status_reason.is_some(),
                        matches!(f.status, ReferralStatus::Rejected | ReferralStatus::Cancelled)
                    );
                    substance_misuse += usize::from(f.code == REFERRAL_FOR_SUBSTANCE_MISUSE);
                }
                let has_drug_referral = r.referrals.iter().any(|f| f.code == REFERRAL_FOR_SUBSTANCE_MISUSE);
                assert_eq!(has_drug_referral, Scenario::of(i) == Some(Scenario::Sensitive));
            }
        }
        assert_eq!(seen.len(), ReferralStatus::ALL.len(), "every status occurs: {seen:?}");
        assert!(substance_misuse > 0);
    }

    #[test]
    fn a_council_holds_its_own_residents_under_its_own_ids() {
        let p = pop();
        let i = p.social_care_patients(0)[0];
        assert!(p.social_care_record(1, i).is_none(), "held by its own council only");
        assert!(p.index_from_social_care_id(0, &p.local_id(0, i)).is_none(), "ids are the council's own");
        assert!(p.index_from_social_care_id(0, &p.social_care_local_id(0, i)).is_some());
        let not_held = (0..50).find(|&j| !p.holds_social_care(0, j)).unwrap();
        assert!(p.index_from_social_care_id(0, &p.social_care_local_id(0, not_held)).is_none());
    }
}
