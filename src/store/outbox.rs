use chrono::{DateTime, Utc};

use super::{OutboxItem, OutboxStatus, Store, StoreError, decode, now_ms, queue_key};

impl Store {
    pub fn outbox_item(&self, id: u64) -> Result<Option<OutboxItem>, StoreError> {
        self.outbox
            .get(id.to_be_bytes())?
            .map(|b| decode("outbox", &b))
            .transpose()
    }

    /// The raw message of an item.
    pub fn outbox_body(&self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .bodies
            .get(id.to_be_bytes())?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Outbox items, oldest first, optionally only those in one state.
    pub fn outbox_list(&self, status: Option<OutboxStatus>) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for v in self.outbox.iter().values() {
            let item: OutboxItem = decode("outbox", &v?)?;
            if status.is_none_or(|s| s == item.status) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Pending items due at `now_ms`, at most `limit`, earliest first.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for k in self.queue.range(..queue_key(now_ms, u64::MAX)).keys() {
            let k = k?;
            let id = <[u8; 8]>::try_from(&k[8..16])
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "queue",
                    message: "bad key".into(),
                })?;
            match self.outbox_item(id)? {
                Some(mut item) if item.status == OutboxStatus::Pending => {
                    item.raw = self.outbox_body(id)?.unwrap_or_default();
                    out.push(item)
                }
                // A stale queue entry (item finished meanwhile): drop it.
                _ => {
                    self.queue.remove(k)?;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Milliseconds until the next pending item is due (None when the queue is empty).
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .queue
            .first()?
            .and_then(|(k, _)| <[u8; 8]>::try_from(&k[..8]).ok().map(u64::from_be_bytes)))
    }

    fn put_item(&self, item: &OutboxItem, old_due: Option<u64>) -> Result<(), StoreError> {
        if let Some(d) = old_due {
            self.queue.remove(queue_key(d, item.id))?;
        }
        self.outbox
            .insert(item.id.to_be_bytes(), serde_json::to_vec(item)?)?;
        if item.status == OutboxStatus::Pending {
            self.queue
                .insert(queue_key(item.next_attempt_ms, item.id), &[])?;
        }
        Ok(())
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut OutboxItem)) -> Result<OutboxItem, StoreError> {
        let mut item = self.outbox_item(id)?.ok_or(StoreError::NoSuchItem(id))?;
        let old_due = (item.status == OutboxStatus::Pending).then_some(item.next_attempt_ms);
        f(&mut item);
        self.put_item(&item, old_due)?;
        Ok(item)
    }

    /// Records a transient failure: the item is tried again at `next_ms`.
    pub fn reschedule(&self, id: u64, next_ms: u64, error: &str) -> Result<OutboxItem, StoreError> {
        let item = self.update(id, |i| {
            i.attempts += 1;
            i.next_attempt_ms = next_ms;
            i.last_error = Some(error.to_string());
        })?;
        self.db.flush()?;
        Ok(item)
    }

    pub fn mark_dead(&self, id: u64, error: &str) -> Result<OutboxItem, StoreError> {
        let item = self.update(id, |i| {
            i.attempts += 1;
            i.status = OutboxStatus::Dead;
            i.last_error = Some(error.to_string());
        })?;
        self.db.flush()?;
        Ok(item)
    }

    /// Marks delivered items as sent. Does not flush: the sender calls it in
    /// batches after journaling each delivery, then flushes once.
    pub fn mark_sent_many(&self, done: &[(u64, DateTime<Utc>)]) -> Result<(), StoreError> {
        for (id, at) in done {
            match self.update(*id, |i| {
                if i.status == OutboxStatus::Pending {
                    i.attempts += 1;
                }
                i.status = OutboxStatus::Sent;
                i.sent_at = Some(*at);
            }) {
                Ok(_) | Err(StoreError::NoSuchItem(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Puts a dead item back in the queue, due now. Returns false when the
    /// item is not dead.
    pub fn retry(&self, id: u64) -> Result<bool, StoreError> {
        let item = self.outbox_item(id)?.ok_or(StoreError::NoSuchItem(id))?;
        if item.status != OutboxStatus::Dead {
            return Ok(false);
        }
        self.update(id, |i| {
            i.status = OutboxStatus::Pending;
            i.attempts = 0;
            i.next_attempt_ms = now_ms();
        })?;
        self.db.flush()?;
        Ok(true)
    }

    pub fn retry_all_dead(&self) -> Result<usize, StoreError> {
        let dead = self.outbox_list(Some(OutboxStatus::Dead))?;
        for item in &dead {
            self.retry(item.id)?;
        }
        Ok(dead.len())
    }
}
