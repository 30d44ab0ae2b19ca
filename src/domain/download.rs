//! The software download policy of the source document ("What is the
//! software download policy in eDelivery?"), per image of an order:
//!
//! 1. the first download, any time after the order is made available;
//! 2. up to 90 days after availability, a second download with a reason;
//! 3. a second download after 90 days, or an additional download after a
//!    second one: a reason, and a review answered within 1 business day;
//! 4. any further request: a review answered within 3 business days.
//!
//! Which requests need a person is counted per image (rules 1-3). How fast
//! the answer comes is the desk's rule for every request a person answers
//! (`desk::Desk::open_ticket`): 1 business day, 3 for a further request by
//! the same customer about the same order. The caller says whether this is
//! such a further request, so the time the requester is told is the one the
//! review ticket gets. An archived order (older than 15 months) must be
//! restored first; an order that is not available, or whose image is on
//! hold, cannot be downloaded yet.
//!
//! Pure functions over typed inputs: the caller passes the earlier requests
//! of the same image (as recorded) and the current time.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::rules::SECOND_DOWNLOAD_DAYS;

/// Business days for a review, the requester's first request to a person
/// about the order.
pub const FIRST_REVIEW_BUSINESS_DAYS: u32 = 1;
/// Business days for a review when the requester already had a request
/// about the same order answered by a person (a "further request").
pub const FURTHER_REVIEW_BUSINESS_DAYS: u32 = 3;

/// Which rule of the policy a download request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum DownloadRule {
    /// Rule 1: the first download, any time after availability.
    First,
    /// Rule 2: a second download within 90 days of availability, with a reason.
    SecondWithReason,
    /// Rules 3 and 4: a person reviews the request and answers within this
    /// many business days.
    Review {
        /// 1 for the requester's first request about the order, 3 for further ones.
        business_days: u32,
    },
}

impl DownloadRule {
    /// Whether the requester must give a reason (every download but the first).
    pub fn needs_reason(self) -> bool {
        !matches!(self, DownloadRule::First)
    }

    /// Whether a person must look at the request before the download.
    pub fn needs_review(self) -> bool {
        matches!(self, DownloadRule::Review { .. })
    }

    /// The review's answer time in business days, when there is a review.
    pub fn review_business_days(self) -> Option<u32> {
        match self {
            DownloadRule::Review { business_days } => Some(business_days),
            _ => None,
        }
    }

    /// A total order from the most permissive rule to the most demanding:
    /// several images in one request are answered by the strictest.
    pub fn strictness(self) -> u32 {
        match self {
            DownloadRule::First => 0,
            DownloadRule::SecondWithReason => 1,
            DownloadRule::Review { business_days } => 2 + business_days,
        }
    }

    /// The name used in JSON answers and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadRule::First => "first",
            DownloadRule::SecondWithReason => "second_with_reason",
            DownloadRule::Review { .. } => "review",
        }
    }
}

/// Why an image cannot be requested at all now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum DownloadRefusal {
    /// The order has not been made available yet (or not before `now`).
    #[error("the order is not available for download yet")]
    NotAvailable,
    /// An open hold covers the image (order-level or its line).
    #[error("the order is on hold")]
    OnHold,
    /// Older than 15 months: visible, not downloadable until restored.
    #[error("the order is archived: restore it first")]
    Archived,
}

impl DownloadRefusal {
    /// The name used in JSON answers and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadRefusal::NotAvailable => "not_available",
            DownloadRefusal::OnHold => "on_hold",
            DownloadRefusal::Archived => "archived",
        }
    }
}

/// Everything the policy looks at for one image of an order.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// When the order was first made available (`None`: not yet).
    pub available_at: Option<DateTime<Utc>>,
    /// The order is archived.
    pub archived: bool,
    /// An open hold covers the image.
    pub on_hold: bool,
    /// The rules earlier recorded requests of this image fell under.
    pub previous: &'a [DownloadRule],
    /// The requester already had a request about this order go to a person.
    pub further_request: bool,
    /// The time of the request.
    pub now: DateTime<Utc>,
}

/// The end of the second-download window: 90 days after availability.
pub fn second_download_deadline(available_at: DateTime<Utc>) -> DateTime<Utc> {
    available_at + Duration::days(SECOND_DOWNLOAD_DAYS)
}

/// The rule a new request of one image falls under, or why it cannot be made.
pub fn decide(input: &PolicyInput<'_>) -> Result<DownloadRule, DownloadRefusal> {
    if input.archived {
        return Err(DownloadRefusal::Archived);
    }
    if input.on_hold {
        return Err(DownloadRefusal::OnHold);
    }
    let available = match input.available_at {
        Some(at) if at <= input.now => at,
        _ => return Err(DownloadRefusal::NotAvailable),
    };
    let review = DownloadRule::Review {
        business_days: if input.further_request {
            FURTHER_REVIEW_BUSINESS_DAYS
        } else {
            FIRST_REVIEW_BUSINESS_DAYS
        },
    };
    Ok(match input.previous.len() {
        0 => DownloadRule::First,
        1 if input.now <= second_download_deadline(available) => DownloadRule::SecondWithReason,
        _ => review,
    })
}

/// The strictest of several rules (`None` for none): what a request for
/// several images at once is answered with.
pub fn strictest(rules: impl IntoIterator<Item = DownloadRule>) -> Option<DownloadRule> {
    rules.into_iter().max_by_key(|r| r.strictness())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn input(previous: &[DownloadRule], days_after: i64) -> PolicyInput<'_> {
        let available = at("2025-03-03T08:02:00Z");
        PolicyInput {
            available_at: Some(available),
            archived: false,
            on_hold: false,
            previous,
            further_request: previous.iter().any(|r| r.needs_review()),
            now: available + Duration::days(days_after),
        }
    }

    const REVIEW_1: DownloadRule = DownloadRule::Review { business_days: 1 };
    const REVIEW_3: DownloadRule = DownloadRule::Review { business_days: 3 };

    #[test]
    fn the_four_rules_of_the_source_document() {
        use DownloadRule::*;
        assert_eq!(decide(&input(&[], 400)), Ok(First));
        assert_eq!(decide(&input(&[First], 90)), Ok(SecondWithReason));
        assert_eq!(decide(&input(&[First], 91)), Ok(REVIEW_1));
        assert_eq!(decide(&input(&[First, SecondWithReason], 10)), Ok(REVIEW_1));
        assert_eq!(
            decide(&input(&[First, SecondWithReason, REVIEW_1], 10)),
            Ok(REVIEW_3)
        );
        assert_eq!(decide(&input(&[First, REVIEW_1], 100)), Ok(REVIEW_3));
    }

    #[test]
    fn the_window_closes_exactly_90_days_after_availability() {
        let mut i = input(&[DownloadRule::First], 0);
        let available = i.available_at.unwrap();
        i.now = second_download_deadline(available);
        assert_eq!(decide(&i), Ok(DownloadRule::SecondWithReason));
        i.now += Duration::seconds(1);
        assert_eq!(decide(&i), Ok(REVIEW_1));
    }

    #[test]
    fn a_further_request_about_the_order_is_answered_within_three_days() {
        let mut i = input(&[DownloadRule::First], 200);
        assert_eq!(decide(&i), Ok(REVIEW_1));
        i.further_request = true;
        assert_eq!(decide(&i), Ok(REVIEW_3));
        // It changes the answer time only, never whether a review is needed.
        let mut first = input(&[], 200);
        first.further_request = true;
        assert_eq!(decide(&first), Ok(DownloadRule::First));
    }

    #[test]
    fn refusals() {
        let mut i = input(&[], 1);
        i.archived = true;
        i.on_hold = true;
        assert_eq!(decide(&i), Err(DownloadRefusal::Archived));
        i.archived = false;
        assert_eq!(decide(&i), Err(DownloadRefusal::OnHold));
        i.on_hold = false;
        i.available_at = None;
        assert_eq!(decide(&i), Err(DownloadRefusal::NotAvailable));
        let early = input(&[], -1);
        assert_eq!(decide(&early), Err(DownloadRefusal::NotAvailable));
    }

    #[test]
    fn strictest_of_several_images() {
        use DownloadRule::*;
        assert_eq!(
            strictest([First, REVIEW_1, SecondWithReason]),
            Some(REVIEW_1)
        );
        assert_eq!(strictest([REVIEW_3, REVIEW_1]), Some(REVIEW_3));
        assert_eq!(strictest([]), None);
        assert!(!First.needs_reason() && SecondWithReason.needs_reason());
        assert!(REVIEW_1.needs_reason() && REVIEW_1.needs_review());
    }

    fn rule() -> impl Strategy<Value = DownloadRule> {
        prop_oneof![
            Just(DownloadRule::First),
            Just(DownloadRule::SecondWithReason),
            Just(REVIEW_1),
            Just(REVIEW_3),
        ]
    }

    proptest! {
        /// Replaying a history request by request: each recorded rule is
        /// what `decide` said, and the result follows the four rules.
        #[test]
        fn replayed_histories_follow_the_rules(
            gaps in proptest::collection::vec(0i64..200, 1..8),
        ) {
            let available = at("2024-06-01T00:00:00Z");
            let mut history: Vec<DownloadRule> = Vec::new();
            let mut now = available;
            for gap in gaps {
                now += Duration::days(gap);
                // One requester: the only tickets about the order are its reviews.
                let further_request = history.iter().any(|h| h.needs_review());
                let i = PolicyInput { available_at: Some(available), archived: false, on_hold: false, previous: &history, further_request, now };
                let r = decide(&i).unwrap();
                let within = now - available <= Duration::days(SECOND_DOWNLOAD_DAYS);
                let reviewed = history.iter().any(|h| h.needs_review());
                let expected = match history.len() {
                    0 => DownloadRule::First,
                    1 if within => DownloadRule::SecondWithReason,
                    _ if reviewed => REVIEW_3,
                    _ => REVIEW_1,
                };
                prop_assert_eq!(r, expected);
                history.push(r);
            }
            // At most one 1-day review per requester; one first download.
            prop_assert!(history.iter().filter(|h| **h == REVIEW_1).count() <= 1);
            prop_assert_eq!(history.iter().filter(|h| **h == DownloadRule::First).count(), 1);
        }

        /// More history or a later time never makes a request easier.
        #[test]
        fn never_easier_with_more_history_or_time(
            previous in proptest::collection::vec(rule(), 0..5),
            extra in rule(),
            days in 0i64..500,
            later in 0i64..500,
        ) {
            let base = input(&previous, days);
            let r = decide(&base).unwrap();
            let mut longer = previous.clone();
            longer.push(extra);
            let more = decide(&input(&longer, days)).unwrap();
            prop_assert!(more.strictness() >= r.strictness(), "{:?} then {:?}", r, more);
            let after = decide(&input(&previous, days + later)).unwrap();
            prop_assert!(after.strictness() >= r.strictness());
            let mut further = base;
            further.further_request = true;
            prop_assert!(decide(&further).unwrap().strictness() >= r.strictness());
            prop_assert_eq!(r.needs_reason(), !previous.is_empty());
        }

        /// Archived, on-hold and unavailable orders are refused whatever the history.
        #[test]
        fn refusals_ignore_history(previous in proptest::collection::vec(rule(), 0..5), days in -100i64..1000) {
            let mut i = input(&previous, days);
            i.archived = true;
            prop_assert_eq!(decide(&i), Err(DownloadRefusal::Archived));
            i.archived = false;
            i.available_at = None;
            prop_assert_eq!(decide(&i), Err(DownloadRefusal::NotAvailable));
        }
    }
}
