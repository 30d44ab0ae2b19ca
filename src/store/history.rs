//! The order history: one line per mail queued or skipped (`history` tree),
//! and the lookups that tie a later delivery report back to its line.

use super::{HistoryEntry, OutboxItem, Store, StoreError, decode, history_key};
use crate::domain::{EmailAddress, OrderId};

impl Store {
    /// Every mail queued or skipped for an order, oldest first.
    pub fn history(&self, so: &OrderId) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut prefix = so.as_str().as_bytes().to_vec();
        prefix.push(0);
        self.trees()?
            .history
            .scan_prefix(prefix)
            .values()
            .map(|v| decode("history", &v?))
            .collect()
    }

    /// The latest mail queued to `email` about `so` (`None`: mail about no
    /// order). A bounce that does not quote the Message-ID it reports on is
    /// matched to this one; the scan walks backwards and stops at the first.
    pub fn last_mail_to(
        &self,
        so: Option<&OrderId>,
        email: &EmailAddress,
    ) -> Result<Option<OutboxItem>, StoreError> {
        let prefix = history_key(so, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let t = self.trees()?;
        for v in t.history.scan_prefix(prefix).rev().values() {
            let entry: HistoryEntry = decode("history", &v?)?;
            let to_them = entry.to.iter().any(|a| {
                a.parse::<EmailAddress>()
                    .is_ok_and(|a| a.key() == email.key())
            });
            if let (true, Some(id)) = (to_them, entry.outbox_id) {
                return self.outbox_item(id);
            }
        }
        Ok(None)
    }
}
