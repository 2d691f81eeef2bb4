//! Whether the trail still holds what the last checkpoint signed: the record at the signed
//! sequence number, with the signed hash (or, once retention has removed it, a retention anchor
//! at or beyond it). Cheap (one or two reads), so it is asked at start, where damage stops the
//! gateway from starting, and before every checkpoint, where damage stops the signing and sets
//! `tideway_audit_trail_damaged` to 1: a chain rewritten, cut short or with the signed record
//! removed since the last checkpoint is never signed over, and an operator hears of it within
//! one checkpoint interval instead of at the next `tideway audit verify`.
//!
//! Only the last checkpoint is compared; damage further back is for `tideway audit verify`.

use super::chain::ChainHash;
use super::checkpoint::{CheckpointError, Checkpointer, Signed};
use super::verify::{Damage, Finding};

impl Checkpointer {
    /// The damage that shows at the last checkpoint signed, if any (see the module).
    pub async fn damage_since_last_checkpoint(&self) -> Result<Option<Finding>, CheckpointError> {
        let last = self.last.lock().await;
        self.damage_since(&last).await
    }

    pub(super) async fn damage_since(&self, signed: &Signed) -> Result<Option<Finding>, CheckpointError> {
        let damage = self.find_damage(signed).await;
        crate::telemetry::metrics::audit_trail_damaged(matches!(damage, Ok(Some(_))));
        damage
    }

    async fn find_damage(&self, signed: &Signed) -> Result<Option<Finding>, CheckpointError> {
        let Some(last) = &signed.checkpoint else { return Ok(None) };
        let at = |seq: i64, damage: Damage| Ok(Some(Finding { seq: Some(seq), damage }));
        if !last.verifies_with(&self.key.verifying_key()) {
            return at(last.seq, Damage::ForgedCheckpoint { key_id: last.key_id.clone() });
        }
        let fail = |e| CheckpointError::at(&self.file.path, e);
        let signed_at_us = last.signed_at_us;
        match self.log.audit_record(last.seq).await.map_err(fail)? {
            Some(row) if row.hash.as_deref().and_then(ChainHash::from_hex) == Some(last.hash) => Ok(None),
            Some(_) => at(last.seq, Damage::Rehashed { signed_at_us }),
            None if signed.anchored_through.is_some_and(|through| through >= last.seq) => Ok(None),
            None => match self.log.chain_head().await.map_err(fail)? {
                Some((head, _)) if head > last.seq => at(last.seq, Damage::Gap { last: last.seq }),
                head => at(
                    head.map_or(1, |(seq, _)| seq + 1),
                    Damage::Truncated { checkpoint_seq: last.seq, signed_at_us },
                ),
            },
        }
    }
}
