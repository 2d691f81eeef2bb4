//! Checking the stored trail: the verifier fed page by page in sequence order (bounded memory
//! whatever the trail's length), then each broken link told apart as a reordering or a
//! deletion by looking for the record it claims to follow.

use super::{Store, StoreError};
use crate::audit::verify::{ChainVerifier, Damage, Report};

/// Records read per page.
const PAGE: i64 = 5_000;

impl Store {
    /// Checks the whole trail with `verifier` (which holds the checkpoints to check against).
    pub async fn verify_audit(&self, mut verifier: ChainVerifier) -> Result<Report, StoreError> {
        let mut after = i64::MIN;
        loop {
            let page = self.audit_page(after, i64::MIN, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.stored.seq;
            for row in &page {
                verifier.feed(row);
            }
        }
        let mut report = verifier.finish();
        for finding in &mut report.findings {
            if let Damage::BrokenLink { follows_hash } = finding.damage {
                let holders = self.audit_seqs_with_hash(&follows_hash.to_hex()).await?;
                finding.damage = match holders.first() {
                    Some(&follows) => Damage::Reordered { follows },
                    None => Damage::Deleted,
                };
            }
        }
        Ok(report)
    }
}
