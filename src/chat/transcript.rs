//! The last lines of each conversation, carried by an escalation as its
//! transcript. Kept in memory and written behind to the store (with the
//! rate windows, every second and at shutdown), so an escalation after a
//! restart still shows what was said before it. The retention job purges
//! transcripts idle longer than the history retention.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{ChatKey, ChatNs, Store, StoreError};

/// Lines kept per conversation (a user line and the bot's first line each).
pub const LINES: usize = 12;
/// Conversations kept in memory; beyond it the map is emptied (the store
/// keeps them, and they are read back when the conversation goes on).
const MAX_IN_MEMORY: usize = 50_000;

/// One conversation's record in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// Unix seconds of the last line (what the retention job looks at).
    updated: i64,
    lines: VecDeque<String>,
}

/// Every conversation's last [`LINES`] lines (see the module doc).
pub struct Transcripts {
    store: Store,
    live: Mutex<HashMap<String, Record>>,
    /// Conversations changed since the last write.
    dirty: Mutex<HashSet<String>>,
}

impl Transcripts {
    /// Empty in memory; conversations are read back from `store` as they go on.
    pub fn new(store: Store) -> Transcripts {
        Transcripts {
            store,
            live: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
        }
    }

    /// Adds lines to a conversation, dropping the oldest beyond [`LINES`].
    pub fn push(&self, conversation: &str, lines: [String; 2], now: i64) {
        let stored = self.stored_unless_live(conversation);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_IN_MEMORY && !live.contains_key(conversation) {
            // What is dropped here was written (or is in `dirty`, whose
            // keys are looked up again when written).
            self.persist_locked(&live);
            live.clear();
        }
        let rec = live
            .entry(conversation.to_string())
            .or_insert_with(|| stored.unwrap_or_default());
        rec.lines.extend(lines);
        while rec.lines.len() > LINES {
            rec.lines.pop_front();
        }
        rec.updated = now;
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conversation.to_string());
    }

    /// The conversation's lines, oldest first (read from the store when it
    /// is not in memory: after a restart).
    pub fn lines(&self, conversation: &str) -> Vec<String> {
        if let Some(r) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(conversation)
        {
            return r.lines.iter().cloned().collect();
        }
        self.stored_unless_live(conversation)
            .map(|r| r.lines.into_iter().collect())
            .unwrap_or_default()
    }

    /// Writes the changed conversations; returns how many.
    pub fn persist(&self) -> Result<usize, StoreError> {
        let records = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            self.take_dirty(&live)
        };
        self.write(records)
    }

    /// Writes what changed before the map is emptied (its lock is held).
    fn persist_locked(&self, live: &HashMap<String, Record>) {
        if let Err(e) = self.write(self.take_dirty(live)) {
            tracing::warn!(error = %e, "chat transcripts not written");
        }
    }

    fn take_dirty(&self, live: &HashMap<String, Record>) -> Vec<(ChatKey, Record)> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .filter_map(|k| {
                let r = live.get(&k)?.clone();
                Some((ChatKey::new(ChatNs::Transcript, k), r))
            })
            .collect()
    }

    fn write(&self, records: Vec<(ChatKey, Record)>) -> Result<usize, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.store.chat_put_many(&records) {
            // Kept dirty: the next tick tries again (the lines are still
            // in memory unless the map was emptied meanwhile).
            self.dirty
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(records.into_iter().map(|(k, _)| k.id));
            return Err(e);
        }
        Ok(records.len())
    }

    /// The stored record, when the conversation is not in memory.
    fn stored_unless_live(&self, conversation: &str) -> Option<Record> {
        if self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(conversation)
        {
            return None;
        }
        match self
            .store
            .chat_get::<Record>(&ChatKey::new(ChatNs::Transcript, conversation))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "chat transcript not read");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: usize) -> [String; 2] {
        [format!("ana: question {n}"), format!("bot: answer {n}")]
    }

    #[test]
    fn keeps_the_last_lines_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = Transcripts::new(store.clone());
        for n in 0..10 {
            t.push("web:ana", pair(n), 1_000 + n as i64);
        }
        let lines = t.lines("web:ana");
        assert_eq!(lines.len(), LINES);
        assert_eq!(lines[0], "ana: question 4");
        assert_eq!(lines[LINES - 1], "bot: answer 9");
        assert_eq!(t.persist().unwrap(), 1);
        assert_eq!(t.persist().unwrap(), 0, "nothing changed since");
        drop(t);
        let t = Transcripts::new(store);
        assert_eq!(t.lines("web:ana")[0], "ana: question 4");
        assert!(t.lines("web:bob").is_empty());
        // Going on after the restart continues the stored lines.
        t.push("web:ana", pair(10), 2_000);
        let lines = t.lines("web:ana");
        assert_eq!(lines.len(), LINES);
        assert_eq!(lines[0], "ana: question 5");
        assert_eq!(lines[LINES - 1], "bot: answer 10");
    }
}
