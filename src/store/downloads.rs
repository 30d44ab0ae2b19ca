//! Download requests: one record per image and request, kept per order in
//! the `downloads` tree (`SO` ++ 0 ++ n BE, n = 1, 2, 3… within the order).
//!
//! The policy decision depends on the earlier requests of the same image, so
//! reading them and appending the new ones is one step on the owner thread:
//! two requests arriving together cannot both be "the first download".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::engine::Trees;
use super::{Store, StoreError, decode};
use crate::domain::{DownloadRule, EmailAddress, OrderId};

/// One recorded request of one image of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadRecord {
    /// Position within the order (1, 2, 3…), assigned by the store.
    pub n: u64,
    /// The order.
    pub so: OrderId,
    /// The order line the image belongs to.
    pub line: String,
    /// The image's file name.
    pub image: String,
    /// Who asked (a recipient or an OBA grantee).
    pub requester: EmailAddress,
    /// The requester's reason; required by every rule but the first download.
    pub reason: Option<String>,
    /// The rule of the policy the request fell under.
    pub rule: DownloadRule,
    /// When the request was recorded.
    pub at: DateTime<Utc>,
    /// The client's idempotency key: a form sent twice is one request.
    pub request_key: Option<String>,
    /// The review ticket (`T-000042`), when the rule needed one.
    pub ticket: Option<String>,
}

fn prefix(so: &OrderId) -> Vec<u8> {
    let mut k = so.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

fn key(so: &OrderId, n: u64) -> Vec<u8> {
    let mut k = prefix(so);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn records_in(t: &Trees, so: &OrderId) -> Result<Vec<DownloadRecord>, StoreError> {
    t.downloads
        .scan_prefix(prefix(so))
        .values()
        .map(|v| decode("downloads", &v?))
        .collect()
}

impl Store {
    /// Every download request of an order, oldest first.
    pub fn download_requests(&self, so: &OrderId) -> Result<Vec<DownloadRecord>, StoreError> {
        records_in(&*self.trees()?, so)
    }

    /// Reads the order's requests and appends what `decide` returns, as one
    /// step on the owner thread; durable on return. `decide` sees the
    /// existing records and returns its answer and the new records (their
    /// `n` is assigned here).
    pub fn download_record<T, F>(&self, so: &OrderId, decide: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&[DownloadRecord]) -> (T, Vec<DownloadRecord>) + Send + 'static,
    {
        let so = so.clone();
        self.engine.write(true, move |t| {
            let existing = records_in(t, &so)?;
            let (answer, new) = decide(&existing);
            let mut n = existing.last().map_or(0, |r| r.n);
            for mut r in new {
                n += 1;
                r.n = n;
                r.so = so.clone();
                t.downloads.insert(key(&so, n), serde_json::to_vec(&r)?)?;
            }
            Ok(answer)
        })
    }

    /// Attaches a review ticket to requests `ns` of an order. Durable on return.
    pub fn download_set_ticket(
        &self,
        so: &OrderId,
        ns: &[u64],
        ticket: &str,
    ) -> Result<(), StoreError> {
        let (so, ns, ticket) = (so.clone(), ns.to_vec(), ticket.to_string());
        self.engine.write(true, move |t| {
            for n in ns {
                let k = key(&so, n);
                if let Some(v) = t.downloads.get(&k)? {
                    let mut r: DownloadRecord = decode("downloads", &v)?;
                    r.ticket = Some(ticket.clone());
                    t.downloads.insert(k, serde_json::to_vec(&r)?)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(so: &OrderId, image: &str) -> DownloadRecord {
        DownloadRecord {
            n: 0,
            so: so.clone(),
            line: "1.1".into(),
            image: image.into(),
            requester: "ana@example.com".parse().unwrap(),
            reason: None,
            rule: DownloadRule::First,
            at: Utc::now(),
            request_key: None,
            ticket: None,
        }
    }

    #[test]
    fn records_are_numbered_per_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let so: OrderId = "10458321".parse().unwrap();
        let other: OrderId = "104583210".parse().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let (a, b) = (record(&so, "a.bin"), record(&so, "b.bin"));
            let seen = s
                .download_record(&so, move |old| (old.len(), vec![a, b]))
                .unwrap();
            assert_eq!(seen, 0);
            let c = record(&other, "c.bin");
            s.download_record(&other, move |_| ((), vec![c])).unwrap();
            let d = record(&so, "a.bin");
            let seen = s
                .download_record(&so, move |old| (old.len(), vec![d]))
                .unwrap();
            assert_eq!(
                seen, 2,
                "the prefix of one order does not match a longer id"
            );
            s.download_set_ticket(&so, &[3], "T-000007").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let all = s.download_requests(&so).unwrap();
        assert_eq!(all.iter().map(|r| r.n).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[2].ticket.as_deref(), Some("T-000007"));
        assert_eq!(all[0].ticket, None);
        assert_eq!(s.download_requests(&other).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_requests_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let so: OrderId = "10458321".parse().unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (s, so) = (s.clone(), so.clone());
                std::thread::spawn(move || {
                    let r = record(&so, "a.bin");
                    s.download_record(&so, move |old| {
                        let firsts = old.len();
                        (firsts, vec![r])
                    })
                    .unwrap()
                })
            })
            .collect();
        let mut seen: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..8).collect::<Vec<_>>(),
            "each saw a distinct history"
        );
    }
}
