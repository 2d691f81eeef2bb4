//! Misuse monitoring: a user reading more different patients within `sweep_window_secs` than
//! `sweep_patients`, making more `$match` searches in that window than `match_searches`, or
//! opening more break-glass sessions within a day than `break_glass_per_day` raises one
//! privacy-officer alert per kind and window (a flag in the store, raised with its alert in one
//! transaction, so replicas raise it once). With `rate_limit` on, a flagged user's patient reads
//! are refused until the flag's window has passed, and so is the read that raised it: each
//! answer says when (`Retry-After`).
//!
//! Counted in the store, so on PostgreSQL every replica counts the same user. To spare the store
//! a write per read, this replica writes a `(user, patient)` touch at most once per
//! `sweep_window_secs / 16` (a minute at most); a patient read again only within that interval
//! may so age out of the window up to that much early, which only ever undercounts by patients
//! read at the very start of a window.

use super::{Actor, MEMORY_CAP, Oversight};
use crate::store::{PrivacyAlert, StoreError};

/// A day, in microseconds: the window of `break_glass_per_day`.
const DAY_US: i64 = 86_400_000_000;

/// What a misuse alert is about (its `kind` in the alert store and in `GET /alerts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MisuseKind {
    /// Many different patients read within the window.
    PatientSweep,
    /// Many patient-matching searches within the window.
    MatchTrawl,
    /// More break-glass sessions within a day than plausible.
    BreakGlassPattern,
}

impl MisuseKind {
    /// The alert kind's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::PatientSweep => "patient-sweep",
            Self::MatchTrawl => "match-trawl",
            Self::BreakGlassPattern => "break-glass-pattern",
        }
    }
}

impl Oversight {
    fn window_us(&self) -> i64 {
        i64::try_from(self.settings.sweep_window_secs).unwrap_or(i64::MAX / 2).saturating_mul(1_000_000)
    }

    /// Seconds until a flag on the user lifts, when rate limiting is on and one is in force.
    pub async fn refusal(&self, actor: &Actor, now_us: i64) -> Result<Option<u64>, StoreError> {
        if !self.settings.rate_limit {
            return Ok(None);
        }
        Ok(self.misuse.flagged_until(&actor.user, now_us).await?.map(|until| seconds_until(now_us, until)))
    }

    /// Counts a read of `patient_id` by `actor`; `Some(seconds)` when the read is to be refused
    /// (the user is flagged, or this read raised the flag, and rate limiting is on).
    pub async fn patient_read(
        &self,
        actor: &Actor,
        patient_id: &str,
        now_us: i64,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(wait) = self.refusal(actor, now_us).await? {
            return Ok(Some(wait));
        }
        let limit = self.settings.sweep_patients;
        if limit == 0 || !self.touch_due(&actor.user, patient_id, now_us) {
            return Ok(None);
        }
        let window = self.window_us();
        let read = self.misuse.touch_patient(&actor.user, patient_id, now_us, now_us - window).await?;
        if u64::try_from(read).unwrap_or(0) <= limit {
            return Ok(None);
        }
        let reason =
            format!("read {read} different patients within {} seconds", self.settings.sweep_window_secs);
        self.flag(actor, MisuseKind::PatientSweep, patient_id, reason, now_us, window).await
    }

    /// Counts a patient-matching search (`$match`) by `actor`; `Some(seconds)` when it is to
    /// be refused.
    pub async fn matched(&self, actor: &Actor, now_us: i64) -> Result<Option<u64>, StoreError> {
        if let Some(wait) = self.refusal(actor, now_us).await? {
            return Ok(Some(wait));
        }
        let limit = self.settings.match_searches;
        if limit == 0 {
            return Ok(None);
        }
        let window = self.window_us();
        let kind = MisuseKind::MatchTrawl;
        let made = self.misuse.count_event(&actor.user, kind.code(), now_us, now_us - window).await?;
        if u64::try_from(made).unwrap_or(0) <= limit {
            return Ok(None);
        }
        let reason = format!(
            "made {made} patient-matching searches within {} seconds",
            self.settings.sweep_window_secs
        );
        self.flag(actor, kind, "", reason, now_us, window).await
    }

    /// Judges a break-glass session `actor` has just opened for `patient_id`; `Some(seconds)`
    /// when the read is to be refused.
    pub async fn break_glass_opened(
        &self,
        actor: &Actor,
        patient_id: &str,
        now_us: i64,
    ) -> Result<Option<u64>, StoreError> {
        let limit = self.settings.break_glass_per_day;
        if limit == 0 {
            return Ok(None);
        }
        let opened = self.misuse.break_glass_since(&actor.user, now_us - DAY_US).await?;
        if u64::try_from(opened).unwrap_or(0) <= limit {
            return Ok(None);
        }
        let reason = format!("opened {opened} break-glass sessions within 24 hours");
        self.flag(actor, MisuseKind::BreakGlassPattern, patient_id, reason, now_us, DAY_US).await
    }

    /// Raises the flag (and its alert, once per window) and answers whether to refuse.
    async fn flag(
        &self,
        actor: &Actor,
        kind: MisuseKind,
        patient_id: &str,
        reason: String,
        now_us: i64,
        window_us: i64,
    ) -> Result<Option<u64>, StoreError> {
        let alert = PrivacyAlert {
            alert_id: format!("a{}", uuid::Uuid::new_v4().simple()),
            kind: kind.code().to_owned(),
            raised_at_us: now_us,
            patient_id: patient_id.to_owned(),
            user: actor.user.clone(),
            organisation: actor.organisation.clone(),
            role: actor.role.clone(),
            reason,
            request_id: actor.request_id.clone(),
        };
        if self.misuse.raise_flag(&alert, now_us.saturating_add(window_us)).await? {
            tracing::warn!(kind = kind.code(), request_id = %actor.request_id, "misuse alert raised");
        }
        self.refusal(actor, now_us).await
    }

    /// Whether this replica should write the `(user, patient)` touch now (it has not within the
    /// refresh interval), remembering that it does.
    fn touch_due(&self, user: &str, patient_id: &str, now_us: i64) -> bool {
        let refresh = (self.window_us() / 16).min(60_000_000);
        let Ok(mut touched) = self.touched.lock() else { return true };
        let key = (user.to_owned(), patient_id.to_owned());
        if touched.get(&key).is_some_and(|at| now_us - *at < refresh) {
            return false;
        }
        if touched.len() >= MEMORY_CAP {
            touched.clear();
        }
        touched.insert(key, now_us);
        true
    }
}

/// Whole seconds from `now_us` to `until_us`, at least 1.
fn seconds_until(now_us: i64, until_us: i64) -> u64 {
    let us = u64::try_from(until_us.saturating_sub(now_us)).unwrap_or(0);
    us.div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::AlertSettings;
    use crate::store::AlertStore as _;
    use crate::store::memory::MemoryStore;

    fn oversight(store: &Arc<MemoryStore>, settings: AlertSettings) -> Oversight {
        Oversight::new(store.clone(), store.clone(), settings)
    }

    fn actor() -> Actor {
        Actor {
            user: "c/u".into(),
            organisation: "RJ122".into(),
            role: "R8000".into(),
            request_id: "r".into(),
        }
    }

    const HOUR_US: i64 = 3_600_000_000;

    #[tokio::test]
    async fn a_sweep_past_the_threshold_raises_one_alert_and_without_rate_limiting_refuses_nothing() {
        let store = Arc::new(MemoryStore::default());
        let o = oversight(&store, AlertSettings { sweep_patients: 3, ..AlertSettings::default() });
        for (i, p) in ["p1", "p2", "p3", "p1", "p4", "p5"].iter().enumerate() {
            let at = HOUR_US + i64::try_from(i).unwrap() * 120_000_000;
            assert_eq!(o.patient_read(&actor(), p, at).await.unwrap(), None, "{p}");
        }
        let alerts = store.alerts(None, 0, 10).await.unwrap();
        assert_eq!(alerts.len(), 1, "once per window: {alerts:?}");
        assert_eq!(alerts[0].kind, "patient-sweep");
        assert_eq!(alerts[0].reason, "read 4 different patients within 3600 seconds");
        assert_eq!(alerts[0].patient_id, "p4");
    }

    #[tokio::test]
    async fn with_rate_limiting_the_read_past_the_threshold_and_every_read_after_are_refused_until_the_window_passes()
     {
        let store = Arc::new(MemoryStore::default());
        let settings = AlertSettings { sweep_patients: 2, rate_limit: true, ..AlertSettings::default() };
        let o = oversight(&store, settings);
        assert_eq!(o.patient_read(&actor(), "p1", HOUR_US).await.unwrap(), None);
        assert_eq!(o.patient_read(&actor(), "p2", HOUR_US + 1).await.unwrap(), None);
        assert_eq!(o.patient_read(&actor(), "p3", HOUR_US + 2).await.unwrap(), Some(3600));
        // Even a patient read before, half an hour on.
        assert_eq!(o.patient_read(&actor(), "p1", HOUR_US + 2 + HOUR_US / 2).await.unwrap(), Some(1800));
        let other = Actor { user: "c/other".into(), ..actor() };
        assert_eq!(o.patient_read(&other, "p1", HOUR_US + 3).await.unwrap(), None, "another user is not");
        // After the window, reads are answered again.
        assert_eq!(o.patient_read(&actor(), "p1", 2 * HOUR_US + 3).await.unwrap(), None);
    }

    #[tokio::test]
    async fn match_searches_past_the_threshold_raise_a_match_trawl_alert() {
        let store = Arc::new(MemoryStore::default());
        let o = oversight(&store, AlertSettings { match_searches: 2, ..AlertSettings::default() });
        for i in 0..3 {
            assert_eq!(o.matched(&actor(), HOUR_US + i).await.unwrap(), None);
        }
        let alerts = store.alerts(None, 0, 10).await.unwrap();
        assert_eq!(alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["match-trawl"]);
    }

    #[tokio::test]
    async fn turned_off_counts_nothing() {
        let store = Arc::new(MemoryStore::default());
        let settings = AlertSettings {
            sweep_patients: 0,
            match_searches: 0,
            break_glass_per_day: 0,
            rate_limit: true,
            ..AlertSettings::default()
        };
        let o = oversight(&store, settings);
        for i in 0..5 {
            assert_eq!(o.patient_read(&actor(), &format!("p{i}"), HOUR_US + i).await.unwrap(), None);
            assert_eq!(o.matched(&actor(), HOUR_US + i).await.unwrap(), None);
            assert_eq!(o.break_glass_opened(&actor(), "p", HOUR_US).await.unwrap(), None);
        }
        assert!(store.alerts(None, 0, 10).await.unwrap().is_empty());
    }

    #[test]
    fn a_wait_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(seconds_until(0, 1), 1);
        assert_eq!(seconds_until(0, 1_000_001), 2);
        assert_eq!(seconds_until(5, 5), 1);
    }
}
