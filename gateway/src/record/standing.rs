//! Legitimate relationship and break-glass, between fetching a record and deciding on it.
//!
//! A requester whom no agreement grants a relationship must show one in the record (registered
//! practice, an open encounter, an active referral or episode of care) or in the patient's
//! consent, or break the glass; otherwise the answer is [`RecordError::RelationshipRequired`],
//! whether or not the patient exists. Breaking the glass opens one session per token, bound to
//! the first patient and ending after `break_glass_secs`, and raises the privacy officer's alert
//! in the same transaction; nothing is released until both are stored.

use tideway_auth::Principal;
use tideway_policy::{Directive, Standing};
use tideway_profiles::ResourceFacts;

use super::{RecordError, RecordService, today};
use crate::audit::AuditedCall;
use crate::bundle::Notice;
use crate::store::BreakGlass;

impl RecordService {
    /// Whether `principal` must show a relationship: no agreement granting them grants one, and
    /// they are not breaking the glass. Such a requester is refused alike for absent patients.
    pub fn must_show_relationship(&self, principal: &Principal) -> bool {
        !principal.breaks_glass() && !self.policy.current().grants_relationship(principal, today())
    }

    /// How `principal` stands to the patient whose record is `record`. A break-glass token is
    /// always break-glass (`glass`, its session, bound before the look-up by
    /// [`Self::bind_glass`]), marked and alerted, even where the requester also has a
    /// relationship: its notice is added to `notices`.
    pub(super) fn establish(
        &self,
        principal: &Principal,
        glass: Option<&BreakGlass>,
        directives: &[Directive],
        record: &[&ResourceFacts],
        notices: &mut Vec<Notice>,
    ) -> Result<Standing, RecordError> {
        let standing = self
            .policy
            .current()
            .standing(principal, today(), directives, record)
            .ok_or(RecordError::RelationshipRequired)?;
        if principal.breaks_glass() {
            // Bound at the start of every path that reaches here; fail closed if one did not.
            let session = glass.ok_or(RecordError::RelationshipRequired)?;
            notices.push(Notice::BrokeGlass { ends_at_us: session.ends_at_us });
        }
        Ok(standing)
    }

    /// For a break-glass token, its session bound to `patient_id` (opened now if this is the
    /// first use); for anyone else, none. Called before anything about the patient is looked
    /// up, so a bound token learns nothing about any other id.
    pub(super) async fn bind_glass(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        patient_id: &str,
    ) -> Result<Option<BreakGlass>, RecordError> {
        if !principal.breaks_glass() {
            return Ok(None);
        }
        self.break_glass(call, principal, patient_id).await.map(Some)
    }

    /// The token's break-glass session for this patient, opened now if it is the first use.
    async fn break_glass(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        patient_id: &str,
    ) -> Result<BreakGlass, RecordError> {
        // The token service never issues ETREAT without a reason; fail closed if one did.
        let reason = principal.break_glass_reason.clone().ok_or(RecordError::RelationshipRequired)?;
        // The request's own instant, so its checks agree with each other.
        let now_us = crate::epoch_us::of(call.recorded_at());
        let length_us = i64::try_from(self.break_glass_secs).unwrap_or(i64::MAX).saturating_mul(1_000_000);
        let wanted = BreakGlass {
            token_id: principal.token_id.clone(),
            patient_id: patient_id.to_owned(),
            opened_at_us: now_us,
            ends_at_us: now_us.saturating_add(length_us),
            user: format!("{}/{}", principal.client_id, principal.user_id),
            organisation: principal.organisation.as_str().to_owned(),
            role: principal.role.as_str().to_owned(),
            reason,
            request_id: call.request_id().to_owned(),
        };
        let session = self.alerts.open_break_glass(&wanted).await.map_err(RecordError::Alerts)?;
        if session == wanted {
            crate::telemetry::metrics::break_glass_opened();
            // Opened now: judged against the user's other sessions of the day.
            self.monitor_break_glass(call, principal, patient_id).await?;
        }
        if session.patient_id != patient_id {
            return Err(RecordError::BreakGlassElsewhere);
        }
        if now_us > session.ends_at_us {
            return Err(RecordError::BreakGlassEnded);
        }
        Ok(session)
    }
}
