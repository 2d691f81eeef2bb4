//! Reading a patient's record: the published id resolved and the audit intent written
//! (`open`), every source's record fetched through the locator and the cache (`fetch`), then
//! one decision over all of it, the search criteria, the merge and the gateway's Provenance
//! (`record`), for `$everything`, type searches and page links.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tideway_adapters::{NormalisedResource, SourceRecord};
use tideway_auth::Principal;
use tideway_policy::Ask;
use tideway_profiles::{NhsNumber, ResourceFacts};

use super::report::SourceReport;
use super::{RecordError, RecordService, facts_of, locate, marks, oversee, recorded_now, released};
use crate::audit::AuditedCall;
use crate::bundle::Notice;
use crate::merge::{SourceResources, merge_with};
use crate::search::Criteria;
use crate::sources::Asking;

/// A patient's record as this requester may see it, merged.
#[derive(Debug)]
pub struct RecordAnswer {
    /// The matches: for `$everything` the patient first, then every released resource.
    pub resources: Vec<NormalisedResource>,
    /// What supports the matches (`search.mode = include`): the gateway's own Provenance, and
    /// what `_include` / `_revinclude` brought in from the same decided record.
    pub includes: Vec<NormalisedResource>,
    /// How much of each match to send.
    pub subset: tideway_profiles::elements::Subset,
    /// What the requester should know about completeness.
    pub notices: Vec<Notice>,
    /// The per-source report and decision counts for the audit trail.
    pub report: SourceReport,
    /// The question as decided, with the requester's standing: page links replay it.
    pub ask: Ask,
}

/// Every source's answer for one patient's record, before any decision.
pub(super) struct Fetched {
    /// The sources that answered, with their records.
    records: Vec<(tideway_adapters::SourceId, Arc<SourceRecord>)>,
    /// Sources that could not answer, and what sources rejected.
    notices: Vec<Notice>,
    report: SourceReport,
}

impl Fetched {
    /// The facts of every resource of every source, in order.
    pub(super) fn facts(&self) -> Vec<&ResourceFacts> {
        facts_of(&self.records)
    }
}

/// A published id resolved, with the audit intent written, and (for a break-glass token) its
/// session bound to the patient.
pub(super) struct Opened {
    pub nhs: NhsNumber,
    pub glass: Option<crate::store::BreakGlass>,
}

impl RecordService {
    /// Everything the sources hold for the patient that `principal` may see in answer to `ask`,
    /// narrowed and ordered by the search `criteria` (which apply after the decision, before
    /// the merge, like the decision itself).
    pub async fn record(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        id: &str,
        ask: &Ask,
        criteria: &Criteria,
    ) -> Result<RecordAnswer, RecordError> {
        let Opened { nhs, glass } = self.open(call, principal, id).await?;
        // The types asked for give the matches; what an include may bring in is decided too.
        let asked: Option<Vec<String>> = ask.types().map(<[String]>::to_vec);
        let ask = if criteria.includes.is_empty() {
            ask.clone()
        } else {
            match crate::search::include::brought_types(&criteria.includes) {
                Some(extra) => ask.clone().deciding_also(&extra),
                None => ask.clone().deciding_every_type(),
            }
        };
        let directives = self.directives(id).await?;
        let Fetched { records, mut notices, mut report } =
            self.fetch(&nhs, id, call.request_id(), principal).await?;
        let facts = facts_of(&records);
        let standing = self.establish(principal, glass.as_ref(), &directives, &facts, &mut notices)?;
        report.standing(standing);
        let ask = ask.standing_as(standing);
        // The one decision for this answer, over every source's resources at once.
        let decision = self.decide(principal, &ask, &directives, &facts);
        report.withheld(&decision, &facts);
        self.note_access(call, principal, (id, &nhs), Some(standing), oversee::Seen::Record(&facts)).await?;
        let presented = decision.marks();
        notices.extend(marks::notices(presented));
        // Every clinical answer says the same, whether or not anything was withheld.
        notices.push(Notice::MayBeWithheld);
        let per_source = released(&records, &decision, |r| marks::present(presented, r));
        // Search criteria are judged on every source's copy: a merged fact matches when any copy
        // does, so it cannot vanish with the copy it was folded into, and its Provenance still
        // names every origin. Without filters (`$everything`) none of that bookkeeping is done.
        let filtering = criteria.filters();
        let mut origins: HashMap<String, Vec<String>> = HashMap::new();
        let merged = merge_with(
            &per_source,
            id,
            |fact| {
                if filtering {
                    origins.insert(
                        fact.target.id.clone(),
                        fact.origins.iter().map(|(_, o)| (*o).to_owned()).collect(),
                    );
                }
                self.memo.provenance(fact, recorded_now)
            },
            |kept, source, copy| self.memo.widened(kept, source, copy),
        );
        report.merged(merged.folded);
        let mut resources = merged.resources;
        // A map Provenance's id names its source, map version and targets: made again for the
        // same entries it is the same statement, kept as first recorded (so it reads back the same).
        let maps = mapping_provenances(&per_source, &resources, &recorded_now());
        resources.extend(maps.into_iter().map(|p| self.memo.made_before(p)));
        let (mut matches, mut includes): (Vec<NormalisedResource>, Vec<NormalisedResource>) =
            resources.into_iter().partition(|r| !crate::bundle::is_included(r));
        // Released only because an include may want them: candidates, not matches.
        let mut candidates: Vec<NormalisedResource> = match &asked {
            Some(types) if !criteria.includes.is_empty() => {
                let (kept, others) = matches.into_iter().partition(|r| types.contains(&r.resource_type));
                matches = kept;
                others
            }
            _ => Vec::new(),
        };
        if filtering {
            let matching: HashSet<&str> = per_source
                .iter()
                .flat_map(|s| s.resources.iter())
                .filter(|r| criteria.matches(&r.facts))
                .map(|r| r.id.as_str())
                .collect();
            let (kept, unmatched): (Vec<_>, Vec<_>) = matches.into_iter().partition(|r| {
                matching.contains(r.id.as_str())
                    || origins.get(&r.id).is_some_and(|o| o.iter().any(|x| matching.contains(x.as_str())))
            });
            matches = kept;
            // One the criteria leave out may still be included (an Observation's hasMember).
            if !criteria.includes.is_empty() {
                candidates.extend(unmatched);
            }
            let named: HashSet<String> = matches.iter().map(|r| r.reference()).collect();
            includes.retain(|r| r.facts.references.iter().any(|x| named.contains(x)));
        }
        criteria.sort(&mut matches, |r| r.facts.as_ref());
        includes.retain(|r| self.policy.current().may_include(principal, &ask, &r.facts));
        // What the gateway made for this record can be read back by id, through this record.
        self.federation
            .cache()
            .index()
            .note(id, includes.iter().map(|r| (r.resource_type.as_str(), r.id.as_str())));
        for r in &includes {
            self.memo.remember_made(r);
        }
        if !criteria.includes.is_empty() {
            let selected = crate::search::include::select(&criteria.includes, &matches, candidates);
            // The decision was widened for the includes: the gateway's Provenance of what was
            // decided but neither matched nor was included does not go.
            let named: HashSet<String> = matches.iter().chain(&selected).map(|r| r.reference()).collect();
            includes.retain(|r| r.facts.references.iter().any(|x| named.contains(x)));
            includes.extend(selected);
        }
        Ok(RecordAnswer {
            resources: matches,
            includes,
            subset: criteria.subset.clone(),
            notices,
            report,
            ask,
        })
    }

    /// Every source's record for the patient, through the locator and the cache; failures
    /// become notices, and no source holding the patient is [`Self::absent`].
    pub(super) async fn fetch(
        &self,
        nhs: &NhsNumber,
        id: &str,
        request_id: &str,
        principal: &Principal,
    ) -> Result<Fetched, RecordError> {
        let overall = self.federation.deadline();
        let asking = Asking::for_principal(request_id, principal);
        let located = self.locate(nhs, id, &asking, overall).await?;
        let answers = self.federation.fetch_records(&located.targets, &asking, overall).await;
        let errors: Vec<_> = located
            .failed
            .iter()
            .filter_map(|a| a.result.as_ref().err())
            .chain(answers.iter().filter_map(|a| a.result.as_ref().err()))
            .collect();
        let answered = answers.iter().filter(|a| a.result.is_ok()).count();
        if let Some(e) = locate::all_failed(&errors, answered) {
            return Err(e);
        }
        if answered == 0 {
            return Err(self.absent(principal));
        }
        let mut notices: Vec<Notice> = located.failed.iter().filter_map(Notice::of_failure).collect();
        notices.extend(answers.iter().filter_map(Notice::of_failure));
        let mut report = SourceReport::of_records(&answers);
        let records: Vec<_> = answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok().map(|r| (a.source.clone(), r.clone())))
            .collect();
        for (source, record) in &records {
            notices.extend(Notice::of_rejections(source, &record.rejected));
            notices.extend(Notice::of_warnings(source, &record.warnings));
        }
        if !notices.is_empty() {
            report.mark_partial();
        }
        Ok(Fetched { records, notices, report })
    }

    /// Admits the requester, resolves a published id and writes the audit intent for that
    /// patient: nothing may be asked of a source before this succeeds.
    pub(super) async fn open(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        id: &str,
    ) -> Result<Opened, RecordError> {
        // A refusal names the record it was asked for, so the privacy officer sees attempts too
        // (the id is the gateway's opaque one; one that is not well formed names nothing).
        if crate::identity::PatientIds::is_well_formed(id) {
            call.about_patient(id);
        }
        self.admit(principal)?;
        self.monitor_read(call, principal, id).await?;
        // Break-glass binds its token to the patient asked for before anything is looked up,
        // so a bound token learns nothing about any other id, present or not.
        let breaking_glass = principal.breaks_glass();
        let glass = if breaking_glass {
            call.about_patient(id);
            call.intent(self.source_ids()).await?;
            self.bind_glass(call, principal, id).await?
        } else {
            None
        };
        let nhs = match self.resolve(id).await {
            Err(RecordError::UnknownPatient | RecordError::NotHeld)
                if self.must_show_relationship(principal) =>
            {
                return Err(RecordError::RelationshipRequired);
            }
            other => other?,
        };
        if !breaking_glass {
            call.about_patient(id);
            call.intent(self.source_ids()).await?;
        }
        Ok(Opened { nhs, glass })
    }
}

/// One Provenance per source naming the kept resources a terminology map added codings to.
fn mapping_provenances(
    per_source: &[SourceResources],
    kept: &[NormalisedResource],
    recorded: &str,
) -> Vec<NormalisedResource> {
    let kept: HashSet<(&str, &str)> =
        kept.iter().filter(|r| r.facts.mapped).map(|r| (r.resource_type.as_str(), r.id.as_str())).collect();
    if kept.is_empty() {
        return Vec::new();
    }
    per_source
        .iter()
        .filter_map(|s| {
            let targets: Vec<&NormalisedResource> = s
                .resources
                .iter()
                .filter(|r| kept.contains(&(r.resource_type.as_str(), r.id.as_str())))
                .collect();
            (!targets.is_empty()).then(|| crate::merge::mapping_provenance(&s.source, &targets, recorded))
        })
        .collect()
}
