//! Business rules from the source document, as pure functions.

use chrono::{Datelike, Months, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use super::HoldType;

/// A second download is allowed (with a reason) within this many days of availability.
pub const SECOND_DOWNLOAD_DAYS: i64 = 90;
/// Orders older than this are archived: visible, not downloadable, restorable.
pub const ARCHIVE_AFTER_MONTHS: u32 = 15;

/// Whether an order that became available on `available` is due for the archive on `today`.
pub fn archive_due(available: NaiveDate, today: NaiveDate) -> bool {
    available
        .checked_add_months(Months::new(ARCHIVE_AFTER_MONTHS))
        .is_some_and(|limit| today >= limit)
}

/// Monday to Friday and not one of `holidays`.
pub fn is_business_day(d: NaiveDate, holidays: &[NaiveDate]) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(&d)
}

/// The date `n` business days after `from` (`from` itself is never counted).
pub fn add_business_days(from: NaiveDate, n: u32, holidays: &[NaiveDate]) -> NaiveDate {
    let mut d = from;
    let mut left = n;
    while left > 0 {
        match d.succ_opt() {
            Some(next) => d = next,
            None => return d,
        }
        if is_business_day(d, holidays) {
            left -= 1;
        }
    }
    d
}

/// A support team a case can be routed to. The string forms are the `route`
/// values of the `mail inspect` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Team {
    /// eDelivery support: everything no other team owns.
    EdeliverySupport,
    /// Customer service: booking, cancellation, change, RMA, expedite, most holds.
    CustomerService,
    /// The export team: export holds.
    Exportops,
    /// The SAC team: new product holds and `L-ISE` products.
    SacSupport,
    /// Licensing: licence and PAK trouble.
    Licensing,
    /// The UCSS team, for UCSS products.
    Ucss,
    /// The CUWL team, for CUWL products.
    Cuwl,
}

impl Team {
    /// Every team, in the order of the `route` values.
    pub const ALL: [Team; 7] = [
        Team::EdeliverySupport,
        Team::CustomerService,
        Team::Exportops,
        Team::SacSupport,
        Team::Licensing,
        Team::Ucss,
        Team::Cuwl,
    ];

    /// The `route` value, e.g. `edelivery-support`.
    pub fn as_str(self) -> &'static str {
        match self {
            Team::EdeliverySupport => "edelivery-support",
            Team::CustomerService => "customer-service",
            Team::Exportops => "exportops",
            Team::SacSupport => "sac-support",
            Team::Licensing => "licensing",
            Team::Ucss => "ucss",
            Team::Cuwl => "cuwl",
        }
    }
}

impl Team {
    /// A team that owns a product line (UCSS, CUWL): the source document
    /// sends any question concerning that product to it, not to eDelivery.
    pub fn has_own_product(self) -> bool {
        matches!(self, Team::Ucss | Team::Cuwl)
    }
}

impl std::fmt::Display for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Team {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Team::ALL
            .into_iter()
            .find(|team| team.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "unknown team {s:?} (expected one of {})",
                    Team::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

/// Who can release a hold, per the source document: export → export team,
/// new product → SAC, every other hold → customer service.
pub fn team_for_hold(h: HoldType) -> Team {
    match h {
        HoldType::Export => Team::Exportops,
        HoldType::NewProduct => Team::SacSupport,
        _ => Team::CustomerService,
    }
}

/// Product IDs with their own team (`L-ISE%` → SAC).
pub fn team_for_pid(pid: &str) -> Option<Team> {
    let p = pid.to_ascii_uppercase();
    if p.starts_with("L-ISE") {
        Some(Team::SacSupport)
    } else if p.contains("UCSS") {
        Some(Team::Ucss)
    } else if p.contains("CUWL") {
        Some(Team::Cuwl)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn archive_after_15_months() {
        assert!(!archive_due(d("2024-01-31"), d("2025-04-29")));
        assert!(archive_due(d("2024-01-31"), d("2025-04-30")));
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        // Friday + 1 → Monday; with Monday a holiday → Tuesday.
        assert_eq!(add_business_days(d("2025-03-07"), 1, &[]), d("2025-03-10"));
        assert_eq!(
            add_business_days(d("2025-03-07"), 1, &[d("2025-03-10")]),
            d("2025-03-11")
        );
        assert_eq!(add_business_days(d("2025-03-05"), 3, &[]), d("2025-03-10"));
    }

    #[test]
    fn hold_routing() {
        assert_eq!(team_for_hold(HoldType::Export), Team::Exportops);
        assert_eq!(team_for_hold(HoldType::NewProduct), Team::SacSupport);
        assert_eq!(team_for_hold(HoldType::Csm), Team::CustomerService);
        assert_eq!(team_for_pid("L-ISE-BASE-100"), Some(Team::SacSupport));
        assert_eq!(team_for_pid("L-ASA5516"), None);
    }

    proptest! {
        #[test]
        fn business_day_result_is_a_business_day(days in 0i64..5000, n in 1u32..30) {
            let from = d("2020-01-01") + chrono::Duration::days(days);
            let r = add_business_days(from, n, &[]);
            prop_assert!(is_business_day(r, &[]));
            prop_assert!(r > from);
            prop_assert!((r - from).num_days() <= i64::from(n) * 7 / 5 + 3);
        }
    }
}
