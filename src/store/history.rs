use super::{HistoryEntry, Store, StoreError, decode};
use crate::domain::OrderId;

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
}
