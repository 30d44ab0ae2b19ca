//! Records other modules own the meaning of, kept here as serialized values:
//! desk tickets (with the Message-IDs of their threads) and the automatic-mail
//! times of the loop guard. Read-modify-write happens on the owner thread, so
//! two writers updating one ticket cannot lose each other's change.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::Trees;
use super::{Store, StoreError, decode};

/// What the loop guard learns when it counts automatic mails to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitCount {
    /// Automatic mails in the window before this one.
    pub recent: usize,
    /// Whether this one was recorded (under the cap).
    pub admitted: bool,
}

/// What the store indexes of a ticket: while it waits for a team, the day
/// its answer is due (`NaiveDate::num_days_from_ce`), and the customer it
/// is for. Open and overdue counts, and a customer's earlier tickets, then
/// read the index, not every ticket ever opened.
pub trait TicketIndex {
    /// The due day while the ticket waits for a team, `None` once it does not.
    fn open_due_day(&self) -> Option<i32>;
    /// The customer as the ticket shows them; indexed ASCII
    /// case-insensitively (the desk compares customers that way).
    fn customer(&self) -> &str;
    /// What the ticket is about that a later ticket may share (its orders,
    /// its purchase orders), each as a short reference such as `so:123`;
    /// indexed with the customer, compared ASCII case-insensitively.
    fn about(&self) -> Vec<String>;
}

/// Index keys in `ticket_meta`: `open/` + due day + ticket number (big
/// endian, so a range below a day's key is the overdue tickets).
const OPEN_PREFIX: &[u8] = b"open/";
/// Present once the index covers every ticket (stores from before it are
/// indexed on first use).
const OPEN_INDEXED: &[u8] = b"open-indexed";

fn open_key(day: i32, n: u64) -> Vec<u8> {
    let mut k = OPEN_PREFIX.to_vec();
    // Days since 0001-01-01 are positive for every date a ticket has.
    k.extend_from_slice(&(day.max(0) as u32).to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn open_day_of(key: &[u8]) -> Option<i32> {
    let b = key.get(OPEN_PREFIX.len()..OPEN_PREFIX.len() + 4)?;
    Some(u32::from_be_bytes(b.try_into().ok()?) as i32)
}

fn open_number_of(key: &[u8]) -> Option<u64> {
    let b = key.get(OPEN_PREFIX.len() + 4..)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Index keys in `ticket_meta`: `cust/`, the customer in ASCII lowercase,
/// `/`, the ticket number (big endian): one customer's tickets are one
/// prefix, oldest first.
const CUST_PREFIX: &[u8] = b"cust/";
/// Present once the customer index covers every ticket.
const CUST_INDEXED: &[u8] = b"cust-indexed";

/// The prefix of `customer`'s keys. A customer containing `/` cannot
/// collide with another: only keys exactly 8 bytes longer are theirs.
fn cust_prefix(customer: &str) -> Vec<u8> {
    let mut k = CUST_PREFIX.to_vec();
    k.extend_from_slice(customer.to_ascii_lowercase().as_bytes());
    k.push(b'/');
    k
}

fn cust_key(customer: &str, n: u64) -> Vec<u8> {
    let mut k = cust_prefix(customer);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The ticket number of a key under `prefix` (`None`: a longer customer's).
fn cust_number_of(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let b = key.get(prefix.len()..)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Index keys in `ticket_meta`: `cref/`, the customer and a reference of
/// [`TicketIndex::about`] (ASCII lowercase, each ended by a NUL), the
/// ticket number (big endian). Whether a customer already wrote about an
/// order is then one short prefix read, however many tickets they have.
const CREF_PREFIX: &[u8] = b"cref/";
/// Present once the reference index covers every ticket.
const CREF_INDEXED: &[u8] = b"cref-indexed";

fn cref_prefix(customer: &str, reference: &str) -> Vec<u8> {
    let mut k = CREF_PREFIX.to_vec();
    for part in [customer, reference] {
        // A NUL inside would let one pair pose as another; neither an
        // address nor an order number has one, so it is only kept out.
        k.extend(part.to_ascii_lowercase().bytes().filter(|b| *b != 0));
        k.push(0);
    }
    k
}

fn cref_keys(customer: &str, about: &[String], n: u64) -> Vec<Vec<u8>> {
    about
        .iter()
        .map(|r| {
            let mut k = cref_prefix(customer, r);
            k.extend_from_slice(&n.to_be_bytes());
            k
        })
        .collect()
}

/// Keeps ticket `n`'s reference entries in step with its customer and
/// what it is about.
fn reindex_about(
    t: &Trees,
    n: u64,
    before: (&str, &[String]),
    after: (&str, &[String]),
) -> Result<(), StoreError> {
    let old = cref_keys(before.0, before.1, n);
    let new = cref_keys(after.0, after.1, n);
    for k in old.iter().filter(|k| !new.contains(k)) {
        t.ticket_meta.remove(k)?;
    }
    for k in new.iter().filter(|k| !old.contains(k)) {
        t.ticket_meta.insert(k, [])?;
    }
    Ok(())
}

/// Keeps ticket `n`'s customer entry in step when its customer changes
/// (the desk never changes it; a record's other owners might).
fn reindex_customer(t: &Trees, n: u64, before: &str, after: &str) -> Result<(), StoreError> {
    if before.eq_ignore_ascii_case(after) {
        return Ok(());
    }
    t.ticket_meta.remove(cust_key(before, n))?;
    t.ticket_meta.insert(cust_key(after, n), [])?;
    Ok(())
}

/// Moves ticket `n`'s index entry from `before` to `after`.
fn reindex(t: &Trees, n: u64, before: Option<i32>, after: Option<i32>) -> Result<(), StoreError> {
    if before == after {
        return Ok(());
    }
    if let Some(d) = before {
        t.ticket_meta.remove(open_key(d, n))?;
    }
    if let Some(d) = after {
        t.ticket_meta.insert(open_key(d, n), [])?;
    }
    Ok(())
}

fn ticket_in<T: DeserializeOwned>(t: &Trees, n: u64) -> Result<Option<T>, StoreError> {
    t.tickets
        .get(n.to_be_bytes())?
        .map(|v| decode("tickets", &v))
        .transpose()
}

/// Thread keys are the Message-IDs as the desk wrote them (with brackets),
/// the layout earlier versions used.
fn thread_key(mid: &str) -> Vec<u8> {
    mid.as_bytes().to_vec()
}

fn times_in(t: &Trees, key: &str, cutoff: i64) -> Result<Vec<i64>, StoreError> {
    Ok(t.auto_mail
        .get(key.as_bytes())?
        .map(|v| {
            v.chunks_exact(8)
                .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(i64::from_be_bytes))
                .filter(|t| *t > cutoff)
                .collect()
        })
        .unwrap_or_default())
}

impl Store {
    /// Creates a ticket: `build` gets the next ticket number (1, 2, 3…) and
    /// returns the record and the Message-IDs of its thread. Durable on return.
    pub fn ticket_create<T, F>(&self, build: F) -> Result<T, StoreError>
    where
        T: Serialize + TicketIndex + Send + 'static,
        F: FnOnce(u64) -> (T, Vec<String>) + Send + 'static,
    {
        self.engine.write(true, move |t| {
            let n = next_ticket_number(t)?;
            let (record, thread) = build(n);
            t.tickets
                .insert(n.to_be_bytes(), serde_json::to_vec(&record)?)?;
            reindex(t, n, None, record.open_due_day())?;
            t.ticket_meta.insert(cust_key(record.customer(), n), [])?;
            reindex_about(t, n, ("", &[]), (record.customer(), &record.about()))?;
            for mid in &thread {
                t.ticket_threads.insert(thread_key(mid), n.to_be_bytes())?;
            }
            Ok(record)
        })
    }

    /// Ticket number `n` decoded as `T`, `None` when unknown.
    pub fn ticket<T: DeserializeOwned>(&self, n: u64) -> Result<Option<T>, StoreError> {
        ticket_in(&*self.trees()?, n)
    }

    /// Every ticket, oldest first.
    pub fn tickets<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        self.trees()?
            .tickets
            .iter()
            .values()
            .map(|v| decode("tickets", &v?))
            .collect()
    }

    /// Changes a ticket atomically and links `link` Message-IDs to it;
    /// `None` when there is no such ticket. Durable on return.
    pub fn ticket_update<T, F>(
        &self,
        n: u64,
        link: Vec<String>,
        change: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + TicketIndex + Send + 'static,
        F: FnOnce(&mut T) + Send + 'static,
    {
        self.engine.write(true, move |t| {
            let Some(mut record) = ticket_in::<T>(t, n)? else {
                return Ok(None);
            };
            let (before, customer) = (record.open_due_day(), record.customer().to_string());
            let about = record.about();
            change(&mut record);
            reindex(t, n, before, record.open_due_day())?;
            reindex_customer(t, n, &customer, record.customer())?;
            reindex_about(
                t,
                n,
                (&customer, &about),
                (record.customer(), &record.about()),
            )?;
            for mid in &link {
                t.ticket_threads.insert(thread_key(mid), n.to_be_bytes())?;
            }
            t.tickets
                .insert(n.to_be_bytes(), serde_json::to_vec(&record)?)?;
            Ok(Some(record))
        })
    }

    /// Open tickets and, of them, those due before `today` (a day as
    /// [`TicketIndex::open_due_day`]): read from the index, whose size is
    /// the open tickets, not every ticket ever opened. A store from before
    /// the index is indexed first, once.
    pub fn ticket_open_counts<T>(&self, today: i32) -> Result<(u64, u64), StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.ensure_open_index::<T>()?;
        let (mut open, mut overdue) = (0, 0);
        for key in self.trees()?.ticket_meta.scan_prefix(OPEN_PREFIX).keys() {
            open += 1;
            if open_day_of(&key?).is_some_and(|d| d < today) {
                overdue += 1;
            }
        }
        Ok((open, overdue))
    }

    /// The open tickets, soonest due first, read through the index (the
    /// SLA job's work grows with the tickets waiting, not with all).
    pub fn tickets_open<T>(&self) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.open_tickets_due_before(None)
    }

    /// The open tickets due before `today` (a day as
    /// [`TicketIndex::open_due_day`]), soonest due first: the index is read
    /// only up to `today`'s first key.
    pub fn tickets_overdue<T>(&self, today: i32) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.open_tickets_due_before(Some(today))
    }

    fn open_tickets_due_before<T>(&self, today: Option<i32>) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.ensure_open_index::<T>()?;
        let trees = self.trees()?;
        let mut out = Vec::new();
        for key in trees.ticket_meta.scan_prefix(OPEN_PREFIX).keys() {
            let key = key?;
            // Keys are in due-day order: the first one due today ends it.
            if let (Some(today), Some(day)) = (today, open_day_of(&key))
                && day >= today
            {
                break;
            }
            let Some(n) = open_number_of(&key) else {
                continue;
            };
            // Closed or moved between the index read and this one: skipped.
            if let Some(t) = ticket_in::<T>(&trees, n)?
                && t.open_due_day()
                    .is_some_and(|d| today.is_none_or(|today| d < today))
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Every ticket of `customer` (compared ASCII case-insensitively),
    /// oldest first, read through the customer index: the work grows with
    /// that customer's tickets, not with all. A store from before the
    /// index is indexed first, once.
    pub fn tickets_of_customer<T>(&self, customer: &str) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.ensure_customer_index::<T>()?;
        let trees = self.trees()?;
        let prefix = cust_prefix(customer);
        let mut out = Vec::new();
        for key in trees.ticket_meta.scan_prefix(&prefix).keys() {
            let Some(n) = cust_number_of(&prefix, &key?) else {
                continue;
            };
            if let Some(t) = ticket_in::<T>(&trees, n)?
                && t.customer().eq_ignore_ascii_case(customer)
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Whether `customer` has a ticket about any of `about` (references as
    /// [`TicketIndex::about`] gives them): a few index reads, whatever the
    /// number of tickets. A store from before the index is indexed first,
    /// once.
    pub fn customer_wrote_about<T>(
        &self,
        customer: &str,
        about: &[String],
    ) -> Result<bool, StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        self.ensure_about_index::<T>()?;
        let trees = self.trees()?;
        for r in about {
            let prefix = cref_prefix(customer, r);
            for key in trees.ticket_meta.scan_prefix(&prefix).keys() {
                if key?.len() == prefix.len() + 8 {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Builds the reference index once for a store from before it.
    fn ensure_about_index<T>(&self) -> Result<(), StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        if self.trees()?.ticket_meta.get(CREF_INDEXED)?.is_none() {
            self.engine.write(true, index_every_about::<T>)?;
        }
        Ok(())
    }

    /// Builds the open-ticket index once for a store from before it.
    fn ensure_open_index<T>(&self) -> Result<(), StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        if self.trees()?.ticket_meta.get(OPEN_INDEXED)?.is_none() {
            self.engine.write(true, index_every_ticket::<T>)?;
        }
        Ok(())
    }

    /// Builds the customer index once for a store from before it.
    fn ensure_customer_index<T>(&self) -> Result<(), StoreError>
    where
        T: DeserializeOwned + TicketIndex + Send + 'static,
    {
        if self.trees()?.ticket_meta.get(CUST_INDEXED)?.is_none() {
            self.engine.write(true, index_every_customer::<T>)?;
        }
        Ok(())
    }

    /// Makes mail referring to `message_id` find ticket `n`.
    pub fn ticket_link(&self, n: u64, message_id: &str) -> Result<(), StoreError> {
        let key = thread_key(message_id);
        self.engine.write(true, move |t| {
            t.ticket_threads.insert(key, n.to_be_bytes())?;
            Ok(())
        })
    }

    /// The ticket number the first known Message-ID of `message_ids` belongs to.
    pub fn ticket_by_thread(&self, message_ids: &[String]) -> Result<Option<u64>, StoreError> {
        let t = self.trees()?;
        for mid in message_ids {
            if let Some(v) = t.ticket_threads.get(thread_key(mid))?
                && let Ok(b) = <[u8; 8]>::try_from(v.as_ref())
            {
                let n = u64::from_be_bytes(b);
                if t.tickets.contains_key(n.to_be_bytes())? {
                    return Ok(Some(n));
                }
            }
        }
        Ok(None)
    }

    /// Automatic mails to `address` since `cutoff` (unix seconds).
    pub fn auto_mail_recent(&self, address: &str, cutoff: i64) -> Result<usize, StoreError> {
        Ok(times_in(&*self.trees()?, &address.to_ascii_lowercase(), cutoff)?.len())
    }

    /// Counts one automatic mail to `address` at `now` (unix seconds) when
    /// fewer than `cap` were sent since `cutoff`. Check and count are one
    /// step, so concurrent senders cannot both take the last slot.
    pub fn auto_mail_admit(
        &self,
        address: &str,
        now: i64,
        cutoff: i64,
        cap: usize,
    ) -> Result<AdmitCount, StoreError> {
        let key = address.to_ascii_lowercase();
        self.engine.write(true, move |t| {
            let mut times = times_in(t, &key, cutoff)?;
            let recent = times.len();
            if recent >= cap {
                return Ok(AdmitCount {
                    recent,
                    admitted: false,
                });
            }
            times.push(now);
            let bytes: Vec<u8> = times.iter().flat_map(|t| t.to_be_bytes()).collect();
            t.auto_mail.insert(key.as_bytes(), bytes)?;
            Ok(AdmitCount {
                recent,
                admitted: true,
            })
        })
    }
}

/// Builds the open-ticket index from every ticket (on the owner thread, so
/// no ticket changes meanwhile on an embedded store).
fn index_every_ticket<T: DeserializeOwned + TicketIndex>(t: &Trees) -> Result<(), StoreError> {
    if t.ticket_meta.get(OPEN_INDEXED)?.is_some() {
        return Ok(());
    }
    let stale: Vec<Vec<u8>> = t
        .ticket_meta
        .scan_prefix(OPEN_PREFIX)
        .keys()
        .map(|k| k.map(|k| k.to_vec()))
        .collect::<Result<_, _>>()?;
    for k in stale {
        t.ticket_meta.remove(k)?;
    }
    let entries: Vec<(u64, Option<i32>)> = t
        .tickets
        .iter()
        .map(|r| {
            let (k, v) = r?;
            let n = <[u8; 8]>::try_from(k.as_ref()).map_or(0, u64::from_be_bytes);
            Ok((n, decode::<T>("tickets", &v)?.open_due_day()))
        })
        .collect::<Result<_, StoreError>>()?;
    for (n, day) in entries {
        reindex(t, n, None, day)?;
    }
    t.ticket_meta.insert(OPEN_INDEXED, [])?;
    Ok(())
}

/// Builds an index from every ticket: `keys` gives a ticket's entries. The
/// marker is read first inside the write: on PostgreSQL that read locks it
/// until the commit, so daemons that find the index missing at once build
/// it one after the other, and the later ones find it built. Entries are
/// only added: each ticket written since the index existed wrote its own,
/// and they are right.
fn index_every_ticket_by<T, K>(t: &Trees, marker: &[u8], keys: K) -> Result<(), StoreError>
where
    T: DeserializeOwned,
    K: Fn(&T, u64) -> Vec<Vec<u8>>,
{
    if t.ticket_meta.get(marker)?.is_some() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for r in t.tickets.iter() {
        let (k, v) = r?;
        let n = <[u8; 8]>::try_from(k.as_ref()).map_or(0, u64::from_be_bytes);
        entries.extend(keys(&decode::<T>("tickets", &v)?, n));
    }
    for key in entries {
        t.ticket_meta.insert(key, [])?;
    }
    t.ticket_meta.insert(marker, [])?;
    Ok(())
}

/// Builds the customer index from every ticket.
fn index_every_customer<T: DeserializeOwned + TicketIndex>(t: &Trees) -> Result<(), StoreError> {
    index_every_ticket_by(t, CUST_INDEXED, |rec: &T, n| {
        vec![cust_key(rec.customer(), n)]
    })
}

/// Builds the reference index from every ticket.
fn index_every_about<T: DeserializeOwned + TicketIndex>(t: &Trees) -> Result<(), StoreError> {
    index_every_ticket_by(t, CREF_INDEXED, |rec: &T, n| {
        cref_keys(rec.customer(), &rec.about(), n)
    })
}

/// Ticket numbers continue the counter earlier versions kept in
/// `ticket_meta/seq`.
fn next_ticket_number(t: &Trees) -> Result<u64, StoreError> {
    let n = t
        .ticket_meta
        .get(b"seq")?
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
        + 1;
    t.ticket_meta.insert(b"seq", n.to_be_bytes())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        n: u64,
        customer: String,
        due: Option<i32>,
        #[serde(default)]
        about: Vec<String>,
    }

    impl TicketIndex for Rec {
        fn open_due_day(&self) -> Option<i32> {
            self.due
        }
        fn customer(&self) -> &str {
            &self.customer
        }
        fn about(&self) -> Vec<String> {
            self.about.clone()
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn create(s: &Store, customer: &str, due: Option<i32>) -> u64 {
        create_about(s, customer, due, &[])
    }

    fn create_about(s: &Store, customer: &str, due: Option<i32>, about: &[&str]) -> u64 {
        let customer = customer.to_string();
        let about = about.iter().map(|r| r.to_string()).collect();
        s.ticket_create(move |n| {
            let rec = Rec {
                n,
                customer,
                due,
                about,
            };
            (rec, vec![])
        })
        .unwrap()
        .n
    }

    /// What a full scan answers for `customer`, ticket numbers oldest first.
    fn scanned(s: &Store, customer: &str) -> Vec<u64> {
        s.tickets::<Rec>()
            .unwrap()
            .into_iter()
            .filter(|t| t.customer.eq_ignore_ascii_case(customer))
            .map(|t| t.n)
            .collect()
    }

    fn indexed(s: &Store, customer: &str) -> Vec<u64> {
        s.tickets_of_customer::<Rec>(customer)
            .unwrap()
            .into_iter()
            .map(|t| t.n)
            .collect()
    }

    /// Customers that differ in case only, or where one is a prefix of
    /// another across the `/` separator.
    const CUSTOMERS: [&str; 6] = [
        "ana@example.com",
        "ANA@Example.COM",
        "bo@example.com",
        "discord:a",
        "discord:a/b",
        "nobody@example.com",
    ];

    fn agrees_with_a_scan(s: &Store) {
        for c in CUSTOMERS {
            assert_eq!(indexed(s, c), scanned(s, c), "customer {c}");
        }
    }

    #[test]
    fn the_customer_index_answers_as_a_full_scan() {
        let (_d, s) = store();
        for (i, c) in CUSTOMERS[..5].iter().cycle().take(23).enumerate() {
            create(&s, c, Some(700_000 + i as i32));
        }
        agrees_with_a_scan(&s);
        assert_eq!(indexed(&s, "Ana@example.com").len(), 10);
        assert_eq!(indexed(&s, "discord:a").len(), 4, "not discord:a/b's");
        // Updates: a status change keeps the entry, a customer change moves it.
        s.ticket_update::<Rec, _>(1, vec![], |t| t.due = None)
            .unwrap();
        s.ticket_update::<Rec, _>(3, vec![], |t| t.customer = "Bo@example.com".into())
            .unwrap();
        s.ticket_update::<Rec, _>(4, vec![], |t| t.customer = "DISCORD:A".into())
            .unwrap();
        agrees_with_a_scan(&s);
        assert!(indexed(&s, "bo@example.com").contains(&3));
        assert!(!indexed(&s, "ana@example.com").contains(&3));
    }

    #[test]
    fn overdue_reads_the_open_index_up_to_today() {
        let (_d, s) = store();
        for due in [Some(10), Some(30), None, Some(20), Some(40)] {
            create(&s, "ana@example.com", due);
        }
        let due = |v: Vec<Rec>| v.into_iter().map(|t| t.n).collect::<Vec<_>>();
        assert_eq!(due(s.tickets_overdue(31).unwrap()), [1, 4, 2]);
        assert_eq!(due(s.tickets_overdue(30).unwrap()), [1, 4]);
        assert!(s.tickets_overdue::<Rec>(10).unwrap().is_empty());
        s.ticket_update::<Rec, _>(4, vec![], |t| t.due = None)
            .unwrap();
        assert_eq!(due(s.tickets_overdue(100).unwrap()), [1, 2, 5]);
        assert_eq!(due(s.tickets_open().unwrap()), [1, 2, 5]);
    }

    /// Takes an index (its entries under `prefix` and its `marker`) out, as
    /// a store written before it has none.
    fn forget_index(s: &Store, prefix: &'static [u8], marker: &'static [u8]) {
        s.engine
            .write(true, move |t| {
                let keys: Vec<Vec<u8>> = t
                    .ticket_meta
                    .scan_prefix(prefix)
                    .keys()
                    .map(|k| k.map(|k| k.to_vec()))
                    .collect::<Result<_, _>>()?;
                for k in keys {
                    t.ticket_meta.remove(k)?;
                }
                t.ticket_meta.remove(marker)?;
                Ok(())
            })
            .unwrap();
    }

    fn forget_customer_index(s: &Store) {
        forget_index(s, CUST_PREFIX, CUST_INDEXED);
    }

    #[test]
    fn an_older_store_gets_the_customer_index_once_under_concurrent_callers() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            for (i, c) in CUSTOMERS[..5].iter().cycle().take(40).enumerate() {
                create(&s, c, Some(i as i32));
            }
            forget_customer_index(&s);
            assert!(
                s.trees()
                    .unwrap()
                    .ticket_meta
                    .get(CUST_INDEXED)
                    .unwrap()
                    .is_none()
            );
        }
        let s = Arc::new(Store::open(dir.path()).unwrap());
        let callers: Vec<_> = (0..6)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        // A ticket written while the index is being built.
                        create(&s, "ana@example.com", None);
                    }
                    indexed(&s, CUSTOMERS[i % CUSTOMERS.len()]).len()
                })
            })
            .collect();
        for h in callers {
            h.join().unwrap();
        }
        assert!(
            s.trees()
                .unwrap()
                .ticket_meta
                .get(CUST_INDEXED)
                .unwrap()
                .is_some()
        );
        agrees_with_a_scan(&s);
        assert_eq!(indexed(&s, "ana@example.com").len(), 16 + 3);
        let entries = s
            .trees()
            .unwrap()
            .ticket_meta
            .scan_prefix(CUST_PREFIX)
            .count();
        assert_eq!(entries, 43, "one entry per ticket");
    }

    /// What a scan answers: does `customer` have a ticket about one of `about`?
    fn wrote_about_by_scan(s: &Store, customer: &str, about: &[&str]) -> bool {
        s.tickets::<Rec>().unwrap().iter().any(|t| {
            t.customer.eq_ignore_ascii_case(customer)
                && t.about
                    .iter()
                    .any(|r| about.iter().any(|a| a.eq_ignore_ascii_case(r)))
        })
    }

    fn reference_index_agrees_with_a_scan(s: &Store) {
        let probes: [&[&str]; 6] = [
            &["so:1"],
            &["so:2"],
            &["po:abc"],
            &["PO:ABC", "so:9"],
            &["so:1/x"],
            &[],
        ];
        for c in CUSTOMERS {
            for about in probes {
                let refs: Vec<String> = about.iter().map(|r| r.to_string()).collect();
                assert_eq!(
                    s.customer_wrote_about::<Rec>(c, &refs).unwrap(),
                    wrote_about_by_scan(s, c, about),
                    "{c} {about:?}"
                );
            }
        }
    }

    fn some_tickets_about_orders(s: &Store) {
        let about: [&[&str]; 4] = [&["so:1"], &["po:ABC", "so:2"], &[], &["so:1/x"]];
        for (i, c) in CUSTOMERS[..5].iter().cycle().take(17).enumerate() {
            create_about(s, c, None, about[i % about.len()]);
        }
    }

    #[test]
    fn the_reference_index_answers_as_a_scan_and_follows_updates() {
        let (_d, s) = store();
        some_tickets_about_orders(&s);
        reference_index_agrees_with_a_scan(&s);
        assert!(
            !s.customer_wrote_about::<Rec>("discord:a", &["so:1".into()])
                .unwrap()
                || wrote_about_by_scan(&s, "discord:a", &["so:1"]),
            "not discord:a/b's"
        );
        // A follow-up naming another order, a customer change, an order dropped.
        s.ticket_update::<Rec, _>(3, vec![], |t| t.about.push("so:9".into()))
            .unwrap();
        s.ticket_update::<Rec, _>(2, vec![], |t| t.customer = "nobody@example.com".into())
            .unwrap();
        s.ticket_update::<Rec, _>(1, vec![], |t| t.about.clear())
            .unwrap();
        reference_index_agrees_with_a_scan(&s);
        assert!(
            s.customer_wrote_about::<Rec>("NOBODY@example.com", &["po:abc".into()])
                .unwrap()
        );
    }

    #[test]
    fn an_older_store_gets_the_reference_index_once() {
        let (_d, s) = store();
        some_tickets_about_orders(&s);
        forget_index(&s, CREF_PREFIX, CREF_INDEXED);
        assert!(
            !s.customer_wrote_about::<Rec>("ana@example.com", &[])
                .unwrap()
        );
        reference_index_agrees_with_a_scan(&s);
        let entries = s
            .trees()
            .unwrap()
            .ticket_meta
            .scan_prefix(CREF_PREFIX)
            .count();
        // 17 tickets cycling through 1, 2, 0 and 1 references.
        assert_eq!(entries, 5 + 2 * 4 + 4);
    }
}
