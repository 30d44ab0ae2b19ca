//! Chat state in the `chat` tree: which chat account is linked to which
//! address, pending link codes, language choices, rate-limit windows, FAQ
//! feedback, and the tickets chat conversations opened.
//!
//! The key layout lives here ([`ChatKey`]); the values are the chat module's
//! records, stored as JSON. Read-modify-write ([`Store::chat_update`]) runs
//! on the owner thread, so two messages of one user cannot both spend the
//! last try of a link code.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::Cost;
use super::{Store, StoreError, decode};

/// Records removed per store write when purging.
const PURGE_BATCH: usize = 500;

/// A kind of chat record: the first segment of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatNs {
    /// Chat account → linked, verified address.
    Link,
    /// Chat account → pending one-time code.
    Code,
    /// Chat account → chosen reply language.
    Lang,
    /// Rate-limit subject (user or channel) → current window.
    Rate,
    /// FAQ entry id → ratings and abstained questions.
    Feedback,
    /// Chat account + FAQ entry → the rating it gave (one per user and entry).
    Rated,
    /// A platform message id → the FAQ entry it answered with (reactions).
    Answer,
    /// Conversation → the ticket escalated from it.
    Conversation,
    /// Ticket number → the conversation it answers to.
    Ticket,
    /// Platform thread (a team channel's thread) → ticket number.
    Thread,
    /// Platform → the newest ticket number already posted in team channels.
    Posted,
    /// Web or console user → team answers relayed while they were away,
    /// handed out with their next exchange (kept across restarts).
    Waiting,
    /// Conversation → its last lines (an escalation's transcript), with
    /// the time of the last one (`updated`, unix seconds).
    Transcript,
}

impl ChatNs {
    fn prefix(self) -> &'static str {
        match self {
            ChatNs::Link => "link/",
            ChatNs::Code => "code/",
            ChatNs::Lang => "lang/",
            ChatNs::Rate => "rate/",
            ChatNs::Feedback => "fb/",
            ChatNs::Rated => "rated/",
            ChatNs::Answer => "answer/",
            ChatNs::Conversation => "conv/",
            ChatNs::Ticket => "ticket/",
            ChatNs::Thread => "thread/",
            ChatNs::Posted => "posted/",
            ChatNs::Waiting => "wait/",
            ChatNs::Transcript => "transcript/",
        }
    }
}

/// One chat record's key: a namespace and an id inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatKey {
    /// The kind of record.
    pub ns: ChatNs,
    /// The record's id inside the namespace (an account, a code, a conversation …).
    pub id: String,
}

impl ChatKey {
    /// A key for `id` in namespace `ns`.
    pub fn new(ns: ChatNs, id: impl Into<String>) -> ChatKey {
        ChatKey { ns, id: id.into() }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut k = self.ns.prefix().as_bytes().to_vec();
        k.extend_from_slice(self.id.as_bytes());
        k
    }
}

impl Store {
    /// One chat record, if present.
    pub fn chat_get<T: DeserializeOwned>(&self, key: &ChatKey) -> Result<Option<T>, StoreError> {
        self.trees()?
            .chat
            .get(key.bytes())?
            .map(|v| decode("chat", &v))
            .transpose()
    }

    /// Whether a record is present (without decoding it).
    pub fn chat_contains(&self, key: &ChatKey) -> Result<bool, StoreError> {
        Ok(self.trees()?.chat.get(key.bytes())?.is_some())
    }

    /// Writes (or with `None` removes) one record; durable on return when
    /// `durable`, else flushed with the next group.
    pub fn chat_put<T: Serialize>(
        &self,
        key: &ChatKey,
        value: Option<&T>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let k = key.bytes();
        let v = value.map(serde_json::to_vec).transpose()?;
        let cost = Cost::Grows(k.len() as u64 + v.as_ref().map_or(0, |v| v.len() as u64));
        self.engine.write_costing(durable, cost, move |t| {
            match v {
                Some(v) => t.chat.insert(k, v)?,
                None => {
                    t.chat.remove(k)?;
                }
            };
            Ok(())
        })
    }

    /// Writes many records in one job, not waiting for the flush (rate
    /// windows: losing the last second of them in a crash is harmless).
    pub fn chat_put_many<T: Serialize>(&self, records: &[(ChatKey, T)]) -> Result<(), StoreError> {
        let encoded = records
            .iter()
            .map(|(k, v)| Ok((k.bytes(), serde_json::to_vec(v)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let size: usize = encoded.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.engine
            .write_costing(false, Cost::Grows(size as u64), move |t| {
                for (k, v) in encoded {
                    t.chat.insert(k, v)?;
                }
                Ok(())
            })
    }

    /// Changes one record atomically on the owner thread: `change` sees the
    /// current value and returns the new one (`None` removes it) and an
    /// answer for the caller. Durable on return.
    pub fn chat_update<T, R, F>(&self, key: &ChatKey, change: F) -> Result<R, StoreError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        R: Send + 'static,
        F: FnOnce(Option<T>) -> (Option<T>, R) + Send + 'static,
    {
        let k = key.bytes();
        self.engine.write(true, move |t| {
            let current = t
                .chat
                .get(&k)?
                .map(|v| decode::<T>("chat", &v))
                .transpose()?;
            let (next, answer) = change(current);
            match next {
                Some(v) => t.chat.insert(k, serde_json::to_vec(&v)?)?,
                None => {
                    t.chat.remove(k)?;
                }
            };
            Ok(answer)
        })
    }

    /// Removes the records of `ns` whose `updated` field (unix seconds) is
    /// before `cutoff`; returns how many. Records without it are kept.
    pub fn chat_purge_before(&self, ns: ChatNs, cutoff: i64) -> Result<usize, StoreError> {
        #[derive(serde::Deserialize)]
        struct Stamp {
            updated: Option<i64>,
        }
        let prefix = ns.prefix().as_bytes();
        let mut stale = Vec::new();
        for r in self.trees()?.chat.scan_prefix(prefix) {
            let (k, v) = r?;
            if let Ok(Stamp { updated: Some(u) }) = serde_json::from_slice(&v)
                && u < cutoff
            {
                stale.push(k.to_vec());
            }
        }
        let n = stale.len();
        for batch in stale.chunks(PURGE_BATCH) {
            let keys = batch.to_vec();
            self.engine.write(true, move |t| {
                for k in keys {
                    t.chat.remove(k)?;
                }
                Ok(())
            })?;
        }
        Ok(n)
    }

    /// Every record of a namespace: `(id, value)`, in key order.
    pub fn chat_scan<T: DeserializeOwned>(
        &self,
        ns: ChatNs,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let prefix = ns.prefix().as_bytes();
        self.trees()?
            .chat
            .scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r?;
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((id, decode("chat", &v)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_update_atomically_and_scan_by_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let k = ChatKey::new(ChatNs::Code, "discord:1");
        s.chat_put(&k, Some(&3u32), true).unwrap();
        s.chat_put(
            &ChatKey::new(ChatNs::Link, "discord:1"),
            Some(&"a@b.example"),
            true,
        )
        .unwrap();
        assert_eq!(s.chat_get::<u32>(&k).unwrap(), Some(3));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, k) = (s.clone(), k.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        s.chat_update(&k, |v: Option<u32>| {
                            let n = v.unwrap_or(0) + 1;
                            (Some(n), n)
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.chat_get::<u32>(&k).unwrap(), Some(43), "no lost update");
        let codes: Vec<(String, u32)> = s.chat_scan(ChatNs::Code).unwrap();
        assert_eq!(codes, vec![("discord:1".to_string(), 43)]);
        s.chat_put_many(&[(ChatKey::new(ChatNs::Rate, "u"), 7u32)])
            .unwrap();
        s.chat_put::<u32>(&k, None, true).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.chat_get::<u32>(&k).unwrap(), None);
        assert_eq!(
            s.chat_get::<u32>(&ChatKey::new(ChatNs::Rate, "u")).unwrap(),
            Some(7),
            "non-durable writes reach the disk at close"
        );
    }
}
