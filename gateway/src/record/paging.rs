//! Pages of an answer: the first is cut from the merged record, later ones from a snapshot
//! bound to the principal that asked. A later page is decided again for whoever follows the
//! link, under the question first asked, so what changed in between (scopes today; consent
//! and agreements next) applies to pages already handed out.

use std::collections::HashSet;
use std::sync::Arc;

use tideway_adapters::NormalisedResource;
use tideway_auth::Principal;
use tideway_policy::{Ask, Directive, Standing, Verdict};
use tideway_profiles::ResourceFacts;

use super::{RecordAnswer, RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::bundle::{self, Notice};
use crate::pages::{PageSnapshot, principal_key};

/// One page of an answer, ready to render.
#[derive(Debug)]
pub struct Page {
    /// This page's entries.
    pub entries: Vec<NormalisedResource>,
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
        let mut notices = answer.notices;
        notices.extend(extra.iter().cloned());
        let outcome = bundle::notices_outcome(&notices);
        let total = answer.resources.iter().filter(|r| !bundle::is_included(r)).count();
        let resources = answer.resources;
        let next_link = if resources.len() > count {
            let snapshot = Arc::new(PageSnapshot {
                owner: principal_key(principal),
                resources: resources.clone(),
                outcome: outcome.clone(),
                page_size: count,
                patient_id: call.patient_id().map(str::to_owned),
                ask: answer.ask.clone(),
            });
            Some(self.pages.insert(snapshot, &self.base_url, count).await?)
        } else {
            None
        };
        let mut entries = resources;
        entries.truncate(count);
        Ok(Page { entries, total, next_link, self_link: None, outcome, start: 0, withheld: Vec::new() })
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
        let (entries, withheld) = self.replay(principal, &snapshot.ask, &directives, all, start..end);
        if let Some(p) = &snapshot.patient_id {
            let nhs = self.resolve(p).await?;
            let seen = super::oversee::Seen::Nothing;
            self.note_access(call, principal, (p, &nhs), snapshot.ask.standing(), seen).await?;
        }
        let next_link = (end < all.len()).then(|| self.pages.link(&self.base_url, token, end));
        Ok(Page {
            entries,
            total: all.iter().filter(|r| !bundle::is_included(r)).count(),
            next_link,
            self_link: Some(self.pages.link(&self.base_url, token, start)),
            outcome: snapshot.outcome.clone(),
            start,
            withheld,
        })
    }
}

impl RecordService {
    /// The entries of `all[range]` that `principal` may see now: matches decided again under the
    /// question first asked (the whole snapshot at once, so includes on this page can follow links
    /// to matches on others); a gateway-made include only if none of the entries it names is
    /// withheld.
    fn replay(
        &self,
        principal: &Principal,
        ask: &Ask,
        directives: &[Directive],
        all: &[NormalisedResource],
        range: std::ops::Range<usize>,
    ) -> (Vec<NormalisedResource>, Vec<(&'static str, usize)>) {
        let matches: Vec<(usize, &NormalisedResource)> =
            all.iter().enumerate().filter(|(_, r)| !bundle::is_included(r)).collect();
        let facts: Vec<&ResourceFacts> = matches.iter().map(|(_, r)| r.facts.as_ref()).collect();
        let decision = self.decide(principal, ask, directives, &facts);
        let mut released = vec![false; all.len()];
        let mut withheld: HashSet<String> = HashSet::new();
        for ((i, r), verdict) in matches.iter().zip(decision.verdicts()) {
            if *verdict == Verdict::Release {
                released[*i] = true;
            } else {
                withheld.insert(format!("{}/{}", r.resource_type, r.id));
            }
        }
        let start = range.start;
        let counts = decision.withheld_counts().into_iter().map(|(r, n)| (r.code(), n)).collect();
        let entries = all[range]
            .iter()
            .enumerate()
            .filter(|(j, r)| {
                if bundle::is_included(r) {
                    self.policy.current().may_include(principal, ask, &r.facts)
                        && !r.facts.references.iter().any(|x| withheld.contains(x))
                } else {
                    released[start + j]
                }
            })
            .map(|(_, r)| r.clone())
            .collect();
        (entries, counts)
    }
}
