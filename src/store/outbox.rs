use chrono::{DateTime, Utc};

use super::engine::Trees;
use super::{BounceRecord, OutboxItem, OutboxStatus, Store, StoreError, decode, now_ms, queue_key};

fn item_in(t: &Trees, id: u64) -> Result<Option<OutboxItem>, StoreError> {
    t.outbox
        .get(id.to_be_bytes())?
        .map(|b| decode("outbox", &b))
        .transpose()
}

fn stat_key(s: OutboxStatus) -> &'static str {
    match s {
        OutboxStatus::Pending => "stat/outbox_pending",
        OutboxStatus::Sent => "stat/outbox_sent",
        OutboxStatus::Dead => "stat/outbox_dead",
    }
}

/// Adds `delta` to the count of items in state `s`. Owner thread only: the
/// counts let `/metrics` answer without decoding the outbox.
pub(super) fn bump(t: &Trees, s: OutboxStatus, delta: i64) -> Result<(), StoreError> {
    let key = stat_key(s);
    let n = t.count(key)?;
    let n = n.saturating_add_signed(delta);
    t.counters.insert(key, n.to_be_bytes())?;
    Ok(())
}

/// Counts the outbox once, for stores written before the counts existed.
pub(super) fn init_counts(t: &Trees) -> Result<(), StoreError> {
    if t.counters.contains_key("stat/outbox_init")? {
        return Ok(());
    }
    let mut counts = [0u64; 3];
    for v in t.outbox.iter().values() {
        let item: OutboxItem = decode("outbox", &v?)?;
        counts[item.status as usize] += 1;
    }
    for (s, n) in [
        (OutboxStatus::Pending, counts[0]),
        (OutboxStatus::Sent, counts[1]),
        (OutboxStatus::Dead, counts[2]),
    ] {
        t.counters.insert(stat_key(s), n.to_be_bytes())?;
    }
    t.counters.insert("stat/outbox_init", [1u8])?;
    Ok(())
}

/// Rewrites an item and moves its queue entry. Owner thread only.
fn update_in(
    t: &Trees,
    id: u64,
    f: impl FnOnce(&mut OutboxItem),
) -> Result<OutboxItem, StoreError> {
    let mut item = item_in(t, id)?.ok_or(StoreError::NoSuchItem(id))?;
    let old_due = (item.status == OutboxStatus::Pending).then_some(item.next_attempt_ms);
    let old_status = item.status;
    f(&mut item);
    if old_status != item.status {
        // Counters in one fixed order: on a shared database each read
        // locks its key, and two writers taking them in opposite orders
        // would deadlock.
        let mut changes = [(old_status, -1), (item.status, 1)];
        changes.sort_by_key(|(s, _)| *s as u8);
        for (s, delta) in changes {
            bump(t, s, delta)?;
        }
    }
    if let Some(d) = old_due {
        t.queue.remove(queue_key(d, item.id))?;
    }
    t.outbox
        .insert(item.id.to_be_bytes(), serde_json::to_vec(&item)?)?;
    if item.status == OutboxStatus::Pending {
        t.queue
            .insert(queue_key(item.next_attempt_ms, item.id), b"")?;
    }
    Ok(item)
}

/// Removes bodies no pending or dead item needs: those of items a crash
/// caught between the spool's flush and the main database's (an unknown
/// item, never acknowledged) or between "sent" and the removal of its body.
/// Returns how many went.
/// An item's state alone: the sweep reads one per pending mail at open,
/// and the whole item (addresses validated, dates parsed) costs more.
fn status_of(t: &Trees, id: u64) -> Result<Option<OutboxStatus>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: OutboxStatus,
    }
    t.outbox
        .get(id.to_be_bytes())?
        .map(|b| decode::<Status>("outbox", &b).map(|s| s.status))
        .transpose()
}

pub(super) fn sweep_bodies(t: &Trees) -> Result<usize, StoreError> {
    let mut stale = Vec::new();
    for k in t.bodies.iter().keys() {
        let k = k?;
        let Ok(id) = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes) else {
            stale.push(k);
            continue;
        };
        if status_of(t, id)?.is_none_or(|s| s == OutboxStatus::Sent) {
            stale.push(k);
        }
    }
    for k in &stale {
        t.bodies.remove(k)?;
    }
    Ok(stale.len())
}

impl Store {
    /// The item without its body (`raw` is empty), `None` when unknown.
    pub fn outbox_item(&self, id: u64) -> Result<Option<OutboxItem>, StoreError> {
        item_in(&*self.trees()?, id)
    }

    /// The raw message of an item.
    pub fn outbox_body(&self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .trees()?
            .bodies
            .get(id.to_be_bytes())?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Outbox items, oldest first, optionally only those in one state.
    pub fn outbox_list(&self, status: Option<OutboxStatus>) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for v in self.trees()?.outbox.iter().values() {
            let item: OutboxItem = decode("outbox", &v?)?;
            if status.is_none_or(|s| s == item.status) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// How many items are pending, sent and dead, from counts the owner
    /// keeps (no scan).
    pub fn outbox_counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let t = self.trees()?;
        Ok((
            t.count(stat_key(OutboxStatus::Pending))?,
            t.count(stat_key(OutboxStatus::Sent))?,
            t.count(stat_key(OutboxStatus::Dead))?,
        ))
    }

    /// Pending items due at `now_ms`, at most `limit`, earliest first.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for k in t.queue.range_below(queue_key(now_ms, u64::MAX)).keys() {
            let k = k?;
            let id = <[u8; 8]>::try_from(&k[8..16])
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "queue",
                    message: "bad key".into(),
                })?;
            match item_in(&t, id)? {
                Some(mut item) if item.status == OutboxStatus::Pending => {
                    item.raw = self.outbox_body(id)?.unwrap_or_default();
                    out.push(item)
                }
                _ => stale.push(k.to_vec()),
            }
            if out.len() >= limit {
                break;
            }
        }
        if !stale.is_empty() {
            // A queue entry whose item finished meanwhile (or whose commit
            // was cut short by a crash): drop it.
            // Checked again on the owner: only an entry whose item is
            // really not pending goes.
            self.engine.write(false, move |t| {
                for k in stale {
                    let id = <[u8; 8]>::try_from(&k[8..16]).map(u64::from_be_bytes);
                    let pending = match id {
                        Ok(id) => {
                            item_in(t, id)?.is_some_and(|i| i.status == OutboxStatus::Pending)
                        }
                        Err(_) => false,
                    };
                    if !pending {
                        t.queue.remove(k)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Claims up to `limit` pending items due at `now_ms` for one sender:
    /// each is moved to `now_ms + lease_ms` in the queue, so no other
    /// sender (another daemon sharing the store) takes it while this one
    /// delivers, and it comes back by itself when the claimer dies before
    /// recording the outcome. Returns the items with their bodies.
    pub fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut items = self.engine.write(true, move |t| {
            let mut claimed = Vec::new();
            let mut stale = Vec::new();
            // The keys first: a claim moves an entry within the scanned
            // range (a lease of 0 keeps it due), and a live scan would meet
            // it again.
            let due: Vec<_> = t
                .queue
                .range_below(queue_key(now_ms, u64::MAX))
                .keys()
                .take(limit)
                .collect::<Result<_, _>>()?;
            for k in due {
                let Ok(id) = <[u8; 8]>::try_from(&k[8..16]).map(u64::from_be_bytes) else {
                    stale.push(k.to_vec());
                    continue;
                };
                let item: Option<OutboxItem> = t
                    .outbox
                    .claim(id.to_be_bytes())?
                    .map(|b| decode("outbox", &b))
                    .transpose()?;
                match item {
                    // Locked by another daemon's claim: it is theirs.
                    None if t.is_shared() => continue,
                    Some(i) if i.status == OutboxStatus::Pending && i.next_attempt_ms > now_ms => {
                        continue;
                    }
                    Some(i) if i.status == OutboxStatus::Pending => {
                        claimed.push(update_in(t, id, |i| {
                            i.next_attempt_ms = now_ms.saturating_add(lease_ms)
                        })?);
                    }
                    _ => stale.push(k.to_vec()),
                }
            }
            for k in stale {
                t.queue.remove(k)?;
            }
            Ok(claimed)
        })?;
        for item in &mut items {
            item.raw = self.outbox_body(item.id)?.unwrap_or_default();
        }
        Ok(items)
    }

    /// Whether several daemons share this store (PostgreSQL): deliveries
    /// are then recorded in the store at once, not in a local journal.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Milliseconds until the next pending item is due (None when the queue is empty).
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .trees()?
            .queue
            .first()?
            .and_then(|(k, _)| <[u8; 8]>::try_from(&k[..8]).ok().map(u64::from_be_bytes)))
    }

    /// Records a transient failure: the item is tried again at `next_ms`.
    pub fn reschedule(&self, id: u64, next_ms: u64, error: &str) -> Result<OutboxItem, StoreError> {
        let error = error.to_string();
        self.engine.write(true, move |t| {
            update_in(t, id, |i| {
                i.attempts += 1;
                i.next_attempt_ms = next_ms;
                i.last_error = Some(error);
            })
        })
    }

    /// Records a permanent failure: the item leaves the queue as `Dead` with
    /// `error`, until an operator retries it.
    pub fn mark_dead(&self, id: u64, error: &str) -> Result<OutboxItem, StoreError> {
        let error = error.to_string();
        self.engine.write(true, move |t| {
            update_in(t, id, |i| {
                i.attempts += 1;
                i.status = OutboxStatus::Dead;
                i.last_error = Some(error);
            })
        })
    }

    /// Marks delivered items as sent and drops their bodies. Not durable on return: the sender
    /// journals each delivery first, then calls this and one `flush`.
    pub fn mark_sent_many(&self, done: &[(u64, DateTime<Utc>)]) -> Result<(), StoreError> {
        let done = done.to_vec();
        self.engine.write(false, move |t| {
            for (id, at) in done {
                match update_in(t, id, |i| {
                    if i.status == OutboxStatus::Pending {
                        i.attempts += 1;
                    }
                    i.status = OutboxStatus::Sent;
                    i.sent_at = Some(at);
                }) {
                    // The history keeps what was sent (kind, recipient,
                    // Message-ID, when); the MIME itself is not kept
                    // forever: it is most of an order's footprint.
                    Ok(_) => t.drop_body(id)?,
                    Err(StoreError::NoSuchItem(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Puts a dead item back in the queue, due now. Returns false when the
    /// item is not dead.
    pub fn retry(&self, id: u64) -> Result<bool, StoreError> {
        self.engine.write(true, move |t| {
            let item = item_in(t, id)?.ok_or(StoreError::NoSuchItem(id))?;
            if item.status != OutboxStatus::Dead {
                return Ok(false);
            }
            update_in(t, id, |i| {
                i.status = OutboxStatus::Pending;
                i.attempts = 0;
                i.next_attempt_ms = now_ms();
            })?;
            Ok(true)
        })
    }

    /// Puts every dead item back in the queue; returns how many.
    pub fn retry_all_dead(&self) -> Result<usize, StoreError> {
        let dead = self.outbox_list(Some(OutboxStatus::Dead))?;
        for item in &dead {
            self.retry(item.id)?;
        }
        Ok(dead.len())
    }
}

/// Index key of an outbox item by its Message-ID (brackets stripped).
pub(super) fn message_key(message_id: &str) -> Vec<u8> {
    format!("out/{}", super::strip_brackets(message_id)).into_bytes()
}

fn stat_name(name: &str) -> String {
    format!("stat/event/{name}")
}

impl Store {
    /// The outbox item sent with this Message-ID (with or without brackets).
    pub fn outbox_by_message_id(&self, message_id: &str) -> Result<Option<OutboxItem>, StoreError> {
        let t = self.trees()?;
        let Some(v) = t.index.get(message_key(message_id))? else {
            return Ok(None);
        };
        let Ok(id) = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes) else {
            return Ok(None);
        };
        item_in(&t, id)
    }

    /// Records a bounce on the item it reports on, durably. Returns `false`
    /// when the same report (same inbound reference) was recorded before, so
    /// a message processed twice counts once. A later report replaces an
    /// earlier one (a delay warning followed by the final failure).
    pub fn record_bounce(&self, id: u64, bounce: BounceRecord) -> Result<bool, StoreError> {
        self.engine.write(true, move |t| {
            let item = item_in(t, id)?.ok_or(StoreError::NoSuchItem(id))?;
            if item
                .bounce
                .as_ref()
                .is_some_and(|b| b.reference == bounce.reference && b.hard == bounce.hard)
            {
                return Ok(false);
            }
            update_in(t, id, |i| i.bounce = Some(bounce))?;
            Ok(true)
        })
    }

    /// Adds one to a named event counter (exported by `/metrics`), durably.
    pub fn bump_stat(&self, name: &str) -> Result<u64, StoreError> {
        let key = stat_name(name);
        self.engine.write(true, move |t| {
            let n = t.count(&key)? + 1;
            t.counters.insert(key.as_bytes(), n.to_be_bytes())?;
            Ok(n)
        })
    }

    /// The value of a named event counter (0 when never bumped).
    pub fn stat(&self, name: &str) -> Result<u64, StoreError> {
        self.trees()?.count(&stat_name(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Commit, HistoryEntry, MailRecord};

    fn item(id: u64, mid: &str) -> OutboxItem {
        OutboxItem {
            id,
            key: format!("k{id}"),
            so: None,
            kind: "team_escalation".into(),
            message_id: mid.into(),
            envelope_from: "bounces+t@edesk.example.com".into(),
            to: "team@cisco.example".parse().unwrap(),
            raw: "Subject: x\r\n\r\nx".into(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            created_at: Utc::now(),
            sent_at: None,
            bounce: None,
            ticket: None,
        }
    }

    /// Commits one mail record (history entry and outbox item) under `key`.
    fn commit_one(s: &Store, key: &str, it: OutboxItem) {
        let id = it.id;
        s.commit_durable(Commit {
            mails: vec![MailRecord {
                key: key.into(),
                entry: HistoryEntry {
                    id: s.next_id().unwrap(),
                    so: None,
                    kind: it.kind.clone(),
                    to: vec![it.to.to_string()],
                    lines: vec![],
                    requested_by: "t".into(),
                    at: Utc::now(),
                    skipped: None,
                    outbox_id: Some(id),
                    message_id: Some(it.message_id.clone()),
                },
                item: Some(it),
            }],
            ..Commit::default()
        })
        .unwrap();
    }

    /// Queues one item with its body; returns its id.
    fn queue_one(s: &Store, key: &str) -> u64 {
        let id = s.next_id().unwrap();
        let mut it = item(id, &format!("<{key}@edesk.example.com>"));
        it.key = key.into();
        it.raw = format!("Subject: {key}\r\n\r\nbody of {key}");
        commit_one(s, key, it);
        id
    }

    fn sled_pair(data: &std::path::Path) -> (sled::Db, sled::Db) {
        let main = data.join("store");
        let spool = crate::store::engine::spool_path(&main);
        let spool = sled::Config::new()
            .path(spool)
            .segment_size(crate::store::engine::SPOOL_SEGMENT)
            .open()
            .unwrap();
        (sled::open(main).unwrap(), spool)
    }

    #[test]
    fn bodies_live_in_the_spool_and_an_older_store_moves_them_there() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = queue_one(&s, "moved");
        drop(s);
        // Put the body back where stores written before the spool kept it.
        let (main, spool) = sled_pair(dir.path());
        let body = spool
            .open_tree("bodies")
            .unwrap()
            .remove(id.to_be_bytes())
            .unwrap()
            .unwrap();
        main.open_tree("bodies")
            .unwrap()
            .insert(id.to_be_bytes(), body)
            .unwrap();
        main.flush().unwrap();
        spool.flush().unwrap();
        drop((main, spool));

        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.outbox_body(id).unwrap().as_deref(),
            Some("Subject: moved\r\n\r\nbody of moved")
        );
        drop(s);
        let (main, spool) = sled_pair(dir.path());
        assert!(
            !main.tree_names().iter().any(|n| n.as_ref() == b"bodies"),
            "the old tree is gone from the main database"
        );
        assert!(
            spool
                .open_tree("bodies")
                .unwrap()
                .contains_key(id.to_be_bytes())
                .unwrap()
        );
    }

    #[test]
    fn a_sent_body_goes_after_the_flush_and_the_sweep_drops_what_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let pending = queue_one(&s, "pending");
        let sent = queue_one(&s, "sent");
        let mark = s.write_mark();
        s.mark_sent_many(&[(sent, Utc::now())]).unwrap();
        s.flush(mark).unwrap();
        assert!(
            s.outbox_body(sent).unwrap().is_none(),
            "gone once sent is durable"
        );
        assert!(s.outbox_body(pending).unwrap().is_some());
        drop(s);
        // What a crash can leave in the spool: the body of an item whose
        // "sent" was flushed, and one whose item never reached the disk.
        let (main, spool) = sled_pair(dir.path());
        let bodies = spool.open_tree("bodies").unwrap();
        bodies.insert(sent.to_be_bytes(), &b"late"[..]).unwrap();
        bodies
            .insert(999_999u64.to_be_bytes(), &b"orphan"[..])
            .unwrap();
        spool.flush().unwrap();
        drop((main, spool, bodies));

        let s = Store::open(dir.path()).unwrap();
        assert!(s.outbox_body(sent).unwrap().is_none());
        assert!(s.outbox_body(999_999).unwrap().is_none());
        assert!(
            s.outbox_body(pending).unwrap().is_some(),
            "a pending item keeps its body"
        );
    }

    #[test]
    fn a_bounce_is_found_by_message_id_and_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = s.next_id().unwrap();
        let it = item(id, "<x.1.ab@edesk.example.com>");
        commit_one(&s, "k", it);
        s.mark_sent_many(&[(id, Utc::now())]).unwrap();
        let found = s
            .outbox_by_message_id("x.1.ab@edesk.example.com")
            .unwrap()
            .unwrap();
        assert_eq!(found.id, id);
        assert!(s.outbox_by_message_id("<other@x>").unwrap().is_none());
        let b = BounceRecord {
            hard: true,
            status: Some("5.1.1".into()),
            diagnostic: Some("smtp; 550 5.1.1 user unknown".into()),
            recipient: Some("team@cisco.example".into()),
            at: Utc::now(),
            reference: Some("mail:7".into()),
        };
        assert!(s.record_bounce(id, b.clone()).unwrap());
        assert!(
            !s.record_bounce(id, b.clone()).unwrap(),
            "same report twice"
        );
        let after = s.outbox_item(id).unwrap().unwrap();
        assert_eq!(after.status, OutboxStatus::Sent);
        assert_eq!(after.bounce, Some(b));
        assert_eq!(s.bump_stat("x").unwrap(), 1);
        assert_eq!(s.bump_stat("x").unwrap(), 2);
        assert_eq!(s.stat("x").unwrap(), 2);
        assert_eq!(s.stat("never").unwrap(), 0);
    }
}
