//! What an order's new state calls for, compared with its previous state.
//! Pure: the caller commits the result atomically with the order.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::Kind;
use crate::domain::{HoldType, Lang, Order};
use crate::store::OrderMeta;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub kind: Kind,
    /// Why the mail is not sent (recorded in the history).
    pub skip: Option<String>,
    pub extra: Value,
    /// Makes the idempotency key unique per event occurrence.
    pub key_suffix: String,
}

/// Why an available order is not announced yet.
pub(crate) fn blocker(o: &Order, today: NaiveDate) -> Option<&'static str> {
    if o.archived {
        Some("archived order")
    } else if o.has_open_hold() {
        Some("open hold")
    } else if !o.early_ship && o.requested_date.is_some_and(|d| d > today) {
        Some("early ship No before the requested date")
    } else if o.available_at.is_none() {
        Some("not available yet")
    } else {
        None
    }
}

fn open_holds(o: &Order) -> BTreeSet<(HoldType, Option<String>)> {
    o.open_holds().map(|h| (h.kind, h.line.clone())).collect()
}

/// The notifications an import of `next` (over `prev`, if the order was
/// known) calls for, in the order they are sent: holds, archive state, then
/// availability. `meta` keeps the event sequence and the availability state.
pub(crate) fn plan(
    prev: Option<&Order>,
    next: &Order,
    meta: &mut OrderMeta,
    today: NaiveDate,
) -> Vec<Planned> {
    let mut out = Vec::new();
    // An archived order is not told about holds.
    if !next.archived {
        out.extend(hold_events(prev, next, meta));
    }
    if let Some(p) = prev {
        out.extend(archive_event(p, next, meta));
    }
    if meta.available_count == 0 {
        out.push(availability(next, meta, today));
    }
    out
}

/// A new event of the order: numbered by the order's event sequence, so a
/// second hold (or release) is a new mail, not a duplicate of the first.
fn event(meta: &mut OrderMeta, kind: Kind, extra: Value) -> Planned {
    meta.event_seq += 1;
    Planned {
        kind,
        skip: None,
        extra,
        key_suffix: format!("e{}", meta.event_seq),
    }
}

/// "On hold" when a hold appeared, "released" (listing them) when holds of
/// a known order went away.
fn hold_events(prev: Option<&Order>, next: &Order, meta: &mut OrderMeta) -> Vec<Planned> {
    let mut out = Vec::new();
    let before = prev.map(open_holds).unwrap_or_default();
    let after = open_holds(next);
    if after.difference(&before).next().is_some() {
        out.push(event(meta, Kind::OrderOnHold, json!({})));
    }
    let released: Vec<Value> = before
        .difference(&after)
        .map(|(k, l)| json!({"type": k.as_str(), "label": k.label(Lang::En), "label_fr": k.label(Lang::Fr), "line": l}))
        .collect();
    if prev.is_some() && !released.is_empty() {
        out.push(event(
            meta,
            Kind::HoldReleased,
            json!({"released": released}),
        ));
    }
    out
}

/// "Archived" when the order was archived; "restored" when it comes back,
/// but only if it had been announced as available before.
fn archive_event(prev: &Order, next: &Order, meta: &mut OrderMeta) -> Option<Planned> {
    if !prev.archived && next.archived {
        Some(event(meta, Kind::OrderArchived, json!({})))
    } else if prev.archived && !next.archived && meta.available_count > 0 {
        Some(event(meta, Kind::OrderRestored, json!({})))
    } else {
        None
    }
}

/// The first "available" mail, or a skipped one that records what still
/// blocks it. Called only while the order was never announced.
fn availability(next: &Order, meta: &mut OrderMeta, today: NaiveDate) -> Planned {
    match blocker(next, today) {
        None => {
            meta.available_count = 1;
            meta.early_ship_pending = false;
            // Numbered like the other events, but keyed `a1`: there is only
            // ever one availability mail per order.
            meta.event_seq += 1;
            Planned {
                kind: Kind::OrderAvailable,
                skip: None,
                extra: json!({}),
                key_suffix: "a1".into(),
            }
        }
        Some(reason) => {
            meta.early_ship_pending = reason.starts_with("early ship");
            // Recorded once per reason, not on every re-import.
            Planned {
                kind: Kind::OrderAvailable,
                skip: Some(reason.to_string()),
                extra: json!({}),
                key_suffix: format!("skip-{}", reason.replace(' ', "-")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Hold, parse_order};

    fn order(extra: serde_json::Value) -> Order {
        let mut v = json!({"so": "12345678", "lang": "en", "lines": [{"line": "1.1", "pid": "X"}], "recipients": [],
                           "available_at": "2025-01-01T00:00:00Z"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                o.insert(k.clone(), val.clone());
            }
        }
        parse_order(&v, chrono::Utc::now().fixed_offset()).unwrap()
    }

    fn kinds(p: &[Planned]) -> Vec<(Kind, bool)> {
        p.iter().map(|p| (p.kind, p.skip.is_some())).collect()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn lifecycle() {
        let mut meta = OrderMeta::default();
        let today = day("2025-03-01");
        let held = order(json!({"holds": [{"type": "export"}]}));
        assert_eq!(
            kinds(&plan(None, &held, &mut meta, today)),
            vec![(Kind::OrderOnHold, false), (Kind::OrderAvailable, true)]
        );
        // The same state again: nothing new (the skip key is stable).
        let again = plan(Some(&held), &held, &mut meta, today);
        assert_eq!(kinds(&again), vec![(Kind::OrderAvailable, true)]);
        assert_eq!(again[0].key_suffix, "skip-open-hold");
        let mut free = held.clone();
        free.holds = vec![Hold {
            kind: HoldType::Export,
            line: None,
            released: true,
        }];
        assert_eq!(
            kinds(&plan(Some(&held), &free, &mut meta, today)),
            vec![(Kind::HoldReleased, false), (Kind::OrderAvailable, false)]
        );
        assert!(plan(Some(&free), &free, &mut meta, today).is_empty());
        let mut arch = free.clone();
        arch.archived = true;
        assert_eq!(
            kinds(&plan(Some(&free), &arch, &mut meta, today)),
            vec![(Kind::OrderArchived, false)]
        );
        assert_eq!(
            kinds(&plan(Some(&arch), &free, &mut meta, today)),
            vec![(Kind::OrderRestored, false)]
        );
    }

    #[test]
    fn line_level_holds_are_events_of_their_own() {
        let mut meta = OrderMeta::default();
        let today = day("2025-03-01");
        let o = order(json!({}));
        assert_eq!(
            kinds(&plan(None, &o, &mut meta, today)),
            vec![(Kind::OrderAvailable, false)]
        );
        let mut held = o.clone();
        held.holds = vec![Hold {
            kind: HoldType::Compliance,
            line: Some("1.1".into()),
            released: false,
        }];
        let p = plan(Some(&o), &held, &mut meta, today);
        assert_eq!(
            kinds(&p),
            vec![(Kind::OrderOnHold, false)],
            "already announced: no second availability mail"
        );
        let mut other_line = held.clone();
        other_line.holds.push(Hold {
            kind: HoldType::Compliance,
            line: None,
            released: false,
        });
        let p2 = plan(Some(&held), &other_line, &mut meta, today);
        assert_eq!(kinds(&p2), vec![(Kind::OrderOnHold, false)]);
        assert_ne!(
            p[0].key_suffix, p2[0].key_suffix,
            "each hold event has its own idempotency key"
        );
    }

    #[test]
    fn early_ship_waits_for_requested_date() {
        let mut meta = OrderMeta::default();
        let o = order(json!({"early_ship": false, "requested_date": "2025-03-10"}));
        let p = plan(None, &o, &mut meta, day("2025-03-01"));
        assert_eq!(
            p[0].skip.as_deref(),
            Some("early ship No before the requested date")
        );
        assert!(meta.early_ship_pending);
        let p = plan(Some(&o), &o, &mut meta, day("2025-03-10"));
        assert_eq!(kinds(&p), vec![(Kind::OrderAvailable, false)]);
        assert!(!meta.early_ship_pending);
    }
}
