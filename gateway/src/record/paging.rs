//! Pages of an answer: the first is cut from the merged record, later ones from a snapshot
//! bound to the principal that asked. A later page is decided again for whoever follows the
//! link, under the question first asked, so what changed in between (scopes today; consent
//! and agreements next) applies to pages already handed out.

use std::collections::HashSet;
use std::sync::Arc;

use tideway_adapters::NormalisedResource;
use tideway_auth::Principal;
use tideway_policy::{Directive, Standing, Verdict};
use tideway_profiles::ResourceFacts;
use tideway_profiles::elements::Subset;

use super::{RecordAnswer, RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::bundle::{self, Notice};
use crate::pages::{PageSnapshot, principal_key};

/// One page of an answer, ready to render.
#[derive(Debug)]
pub struct Page {
    /// This page's matches, as much of each as was asked for.
    pub entries: Vec<NormalisedResource>,
    /// What supports this page's matches (`search.mode = include`), whole.
    pub includes: Vec<NormalisedResource>,
    /// Matches across all pages (includes are not counted).
    pub total: usize,
    /// The `next` link, when there is more.
    pub next_link: Option<String>,
    /// The `self` link of a later page (the first page's is the request's own).
    pub self_link: Option<String>,
    /// The outcome entry, repeated on every page.
    pub outcome: Option<serde_json::Value>,
    /// Where this page starts in the whole answer.
    pub start: usize,
    /// What deciding again withheld from the stored answer, by reason code (later pages).
    pub withheld: Vec<(&'static str, usize)>,
}

impl RecordService {
    /// The first page of `answer`; the rest (if any) is kept for `next` links bound to
    /// `principal`. `extra` notices (ignored parameters) join the answer's own.
    pub async fn first_page(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        answer: RecordAnswer,
        extra: &[Notice],
        count: usize,
    ) -> Result<Page, RecordError> {
        let RecordAnswer { resources, includes, subset, mut notices, ask, .. } = answer;
        notices.extend(extra.iter().cloned());
        let outcome = bundle::notices_outcome(&notices);
        let total = resources.len();
        let next_link = if resources.len() > count {
            let snapshot = Arc::new(PageSnapshot {
                owner: principal_key(principal),
                resources: resources.clone(),
                includes: includes.clone(),
                subset: subset.clone(),
                outcome: outcome.clone(),
                page_size: count,
                patient_id: call.patient_id().map(str::to_owned),
                ask,
            });
            Some(self.pages.insert(snapshot, &self.base_url, count).await?)
        } else {
            None
        };
        let mut entries = resources;
        // One page holds every match, so every include goes with it.
        let on_page = if next_link.is_none() {
            includes
        } else {
            includes_for(&entries[..count.min(entries.len())], &entries, &includes, false)
        };
        entries.truncate(count);
        Ok(Page {
            entries: shaped(&subset, entries),
            includes: on_page,
            total,
            next_link,
            self_link: None,
            outcome,
            start: 0,
            withheld: Vec::new(),
        })
    }

    /// A later page, only for the principal that made the search, decided again for them.
    pub async fn later_page(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        token: &str,
        offset: usize,
    ) -> Result<Page, RecordError> {
        self.admit(principal)?;
        let snapshot = self.pages.get(token).await?.ok_or(RecordError::PageExpired)?;
        // Named before the owner is checked: a refused link records whose snapshot it was.
        if let Some(p) = &snapshot.patient_id {
            call.about_patient(p);
            self.monitor_read(call, principal, p).await?;
        }
        if snapshot.owner != principal_key(principal) {
            return Err(RecordError::PageOwner);
        }
        let all = &snapshot.resources;
        let start = offset.min(all.len());
        let end = (start + snapshot.page_size).min(all.len());
        let directives = match &snapshot.patient_id {
            Some(p) => self.directives(p).await?,
            None => Arc::new(Vec::new()),
        };
        // A relationship the patient's consent gave ends with that consent, mid-paging too.
        if snapshot.ask.standing() == Some(Standing::Consent)
            && !directives
                .iter()
                .any(|d| d.names_permitted(&principal.organisation, principal.purpose, super::today()))
        {
            return Err(RecordError::RelationshipRequired);
        }
        // Break-glass pages are still for that patient only, and only while the session lasts.
        if snapshot.ask.standing() == Some(Standing::BreakGlass) || principal.breaks_glass() {
            let patient = snapshot.patient_id.as_deref().ok_or(RecordError::RelationshipRequired)?;
            if self.bind_glass(call, principal, patient).await?.is_none() {
                // A break-glass answer followed without breaking the glass.
                return Err(RecordError::RelationshipRequired);
            }
        }
        let (entries, includes, withheld) = self.replay(principal, &directives, &snapshot, start..end);
        if let Some(p) = &snapshot.patient_id {
            let nhs = self.resolve(p).await?;
            let seen = super::oversee::Seen::Nothing;
            self.note_access(call, principal, (p, &nhs), snapshot.ask.standing(), seen).await?;
        }
        let next_link = (end < all.len()).then(|| self.pages.link(&self.base_url, token, end));
        Ok(Page {
            entries: shaped(&snapshot.subset, entries),
            includes,
            total: all.len(),
            next_link,
            self_link: Some(self.pages.link(&self.base_url, token, start)),
            outcome: snapshot.outcome.clone(),
            start,
            withheld,
        })
    }
}

impl RecordService {
    /// The matches in `range` that `principal` may see now, and the includes that go with
    /// them. Matches and includes are decided again together under the question first asked
    /// (the whole snapshot at once, so links to withheld resources on other pages are followed);
    /// a gateway-made include goes only if none of the entries it names is withheld.
    fn replay(
        &self,
        principal: &Principal,
        directives: &[Directive],
        snapshot: &PageSnapshot,
        range: std::ops::Range<usize>,
    ) -> (Vec<NormalisedResource>, Vec<NormalisedResource>, Vec<(&'static str, usize)>) {
        let ask = &snapshot.ask;
        let decided: Vec<&NormalisedResource> = snapshot
            .resources
            .iter()
            .chain(snapshot.includes.iter().filter(|r| !bundle::is_included(r)))
            .collect();
        let facts: Vec<&ResourceFacts> = decided.iter().map(|r| r.facts.as_ref()).collect();
        let decision = self.decide(principal, ask, directives, &facts);
        let mut released: HashSet<(&str, &str)> = HashSet::new();
        let mut withheld: HashSet<String> = HashSet::new();
        for (r, verdict) in decided.iter().zip(decision.verdicts()) {
            if *verdict == Verdict::Release {
                released.insert((r.resource_type.as_str(), r.id.as_str()));
            } else {
                withheld.insert(r.reference());
            }
        }
        let counts = decision.withheld_counts().into_iter().map(|(r, n)| (r.code(), n)).collect();
        let is_released =
            |r: &NormalisedResource| released.contains(&(r.resource_type.as_str(), r.id.as_str()));
        let includes: Vec<NormalisedResource> = snapshot
            .includes
            .iter()
            .filter(|r| {
                if bundle::is_included(r) {
                    self.policy.current().may_include(principal, ask, &r.facts)
                        && !r.facts.references.iter().any(|x| withheld.contains(x))
                } else {
                    is_released(r)
                }
            })
            .cloned()
            .collect();
        let page: Vec<NormalisedResource> =
            snapshot.resources[range.clone()].iter().filter(|r| is_released(r)).cloned().collect();
        let last = range.end >= snapshot.resources.len();
        let on_page = includes_for(&page, &snapshot.resources, &includes, last);
        (page, on_page, counts)
    }
}

/// The includes that go on a page with the matches `page`: those linked to one of them either
/// way (named by it, or naming it). The last page also carries any include linked to none of
/// `all_matches` (every match the answer had, released now or not), so an include never
/// disappears for want of a page, and one whose matches were all withheld since goes nowhere.
fn includes_for(
    page: &[NormalisedResource],
    all_matches: &[NormalisedResource],
    includes: &[NormalisedResource],
    last: bool,
) -> Vec<NormalisedResource> {
    if includes.is_empty() {
        return Vec::new();
    }
    fn keys_of(ms: &[NormalisedResource]) -> HashSet<String> {
        ms.iter().map(NormalisedResource::reference).collect()
    }
    fn named_by(ms: &[NormalisedResource]) -> HashSet<&str> {
        ms.iter().flat_map(|m| m.facts.references.iter().map(String::as_str)).collect()
    }
    let (on_page, named_on_page) = (keys_of(page), named_by(page));
    let everywhere = last.then(|| (keys_of(all_matches), named_by(all_matches)));
    let linked = |inc: &NormalisedResource, keys: &HashSet<String>, named: &HashSet<&str>, k: &str| {
        named.contains(k) || inc.facts.references.iter().any(|x| keys.contains(x))
    };
    includes
        .iter()
        .filter(|inc| {
            let k = inc.reference();
            linked(inc, &on_page, &named_on_page, &k)
                || everywhere.as_ref().is_some_and(|(keys, named)| !linked(inc, keys, named, &k))
        })
        .cloned()
        .collect()
}

/// The matches as much of each as `subset` keeps (the decision and criteria have already run on
/// the whole resource).
fn shaped(subset: &Subset, entries: Vec<NormalisedResource>) -> Vec<NormalisedResource> {
    if subset.is_whole() {
        return entries;
    }
    entries
        .into_iter()
        .map(|r| {
            let json = serde_json::from_slice::<serde_json::Value>(&r.json)
                .ok()
                .and_then(|v| serde_json::to_vec(&subset.apply(&v)).ok());
            match json {
                Some(json) => NormalisedResource { json: Arc::from(json), ..r },
                None => r,
            }
        })
        .collect()
}
