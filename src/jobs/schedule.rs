//! When a job runs: a cron expression (the `cron` crate, seconds field
//! first) read on the wall clock of `calendar.time_zone`, turned into
//! instants so that a daylight-saving change neither skips nor doubles a run.
//!
//! The `cron` crate asked for a zone skips wall-clock times that do not exist
//! (the spring-forward gap) and yields both instants of an ambiguous one (the
//! fall-back hour). Here the expression is matched on naive local time and
//! each match is placed once: an ambiguous time at its first occurrence, a
//! time in the gap at the instant the gap ends. Matches that land on the same
//! instant count once, so the slots are strictly increasing.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed job schedule (`off` never fires).
#[derive(Debug, Clone)]
pub struct JobSchedule {
    expr: String,
    cron: Option<cron::Schedule>,
}

impl JobSchedule {
    /// Parses `off` or a cron expression (`sec min hour dom month dow
    /// [year]`, names like `Mon-Fri` and `Jan`, `@daily` and friends).
    pub fn parse(expr: &str) -> Result<JobSchedule, String> {
        crate::config::check_cron(expr)?;
        let e = expr.trim();
        let cron = if e.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(cron::Schedule::from_str(e).map_err(|err| err.to_string())?)
        };
        Ok(JobSchedule {
            expr: e.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// True for `off`: the job has no slots and runs only by hand.
    pub fn is_off(&self) -> bool {
        self.cron.is_none()
    }

    /// Slots strictly after `after`, in order, in zone `tz`.
    pub fn slots_after(&self, after: DateTime<Utc>, tz: Tz) -> impl Iterator<Item = DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let naive = self
            .cron
            .clone()
            .map(|c| c.after_owned(Utc.from_utc_datetime(&local)));
        let mut last = after;
        naive.into_iter().flatten().filter_map(move |n| {
            let at = place(tz, n.naive_utc())?;
            if at > last {
                last = at;
                Some(at)
            } else {
                None
            }
        })
    }

    /// The next slot after `now`.
    pub fn next_after(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.slots_after(now, tz).next()
    }

    /// The latest slot at or before `now`, looking back at most `horizon`.
    pub fn latest_at_or_before(
        &self,
        now: DateTime<Utc>,
        horizon: Duration,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        let local = now.with_timezone(&tz).naive_local() + Duration::seconds(1);
        let floor = now - horizon;
        cron.after(&Utc.from_utc_datetime(&local))
            .rev()
            .filter_map(|n| place(tz, n.naive_utc()))
            .take_while(|at| *at >= floor)
            .find(|at| *at <= now)
    }
}

/// The instant a naive local time stands for in `tz`: its first occurrence
/// when the clock went back, the end of the gap when it went forward.
pub fn place(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps start and end on whole minutes (and last at most a day).
            let base = naive.with_second(0)?;
            (1..=24 * 60).find_map(|m| {
                match tz.from_local_datetime(&(base + Duration::minutes(m))) {
                    LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
                    LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
                    LocalResult::None => None,
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn slots(expr: &str, from: &str, to: &str, tz: Tz) -> Vec<String> {
        let s = JobSchedule::parse(expr).unwrap();
        s.slots_after(t(from), tz)
            .take_while(|at| *at <= t(to))
            .map(|at| {
                at.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn names_seconds_and_refusals() {
        assert!(JobSchedule::parse("0 0 9 * * Mon-Fri").is_ok());
        assert!(JobSchedule::parse("off").unwrap().is_off());
        assert!(JobSchedule::parse("@daily").is_ok());
        let e = JobSchedule::parse("30 2 * * 1-5").unwrap_err();
        assert!(e.contains("seconds"), "{e}");
        assert!(JobSchedule::parse("0 0 25 * * *").is_err());
        // Weekdays by name: the first Monday-to-Friday slots of a week.
        assert_eq!(
            slots(
                "0 0 9 * * Mon-Fri",
                "2026-11-27T10:00:00Z",
                "2026-12-01T12:00:00Z",
                Tz::UTC
            ),
            vec!["2026-11-30 09:00 UTC", "2026-12-01 09:00 UTC"]
        );
    }

    #[test]
    fn month_ends() {
        // "Last day of the month" by day 28-31 is not cron; the 1st at 00:00
        // is, and February and leap years come out right.
        assert_eq!(
            slots(
                "0 0 0 1 * *",
                "2028-01-15T00:00:00Z",
                "2028-04-01T00:00:00Z",
                Tz::UTC
            ),
            vec![
                "2028-02-01 00:00 UTC",
                "2028-03-01 00:00 UTC",
                "2028-04-01 00:00 UTC"
            ]
        );
        assert_eq!(
            slots(
                "0 0 12 29 2 *",
                "2027-01-01T00:00:00Z",
                "2029-01-01T00:00:00Z",
                Tz::UTC
            ),
            vec!["2028-02-29 12:00 UTC"]
        );
        assert_eq!(
            slots(
                "0 0 6 31 * *",
                "2026-09-01T00:00:00Z",
                "2026-12-31T23:00:00Z",
                Tz::UTC
            ),
            vec!["2026-10-31 06:00 UTC", "2026-12-31 06:00 UTC"]
        );
    }

    #[test]
    fn spring_forward_neither_skips_nor_doubles() {
        let paris = chrono_tz::Europe::Paris;
        // 2026-03-29: 02:00 → 03:00 in Paris. The 02:30 run happens at 03:00.
        assert_eq!(
            slots(
                "0 30 2 * * *",
                "2026-03-27T12:00:00Z",
                "2026-03-30T12:00:00Z",
                paris
            ),
            vec![
                "2026-03-28 02:30 CET",
                "2026-03-29 03:00 CEST",
                "2026-03-30 02:30 CEST"
            ]
        );
        // Hourly: 02:00 does not exist; 03:00 runs once.
        let hourly = slots(
            "0 0 * * * *",
            "2026-03-29T00:30:00Z",
            "2026-03-29T02:30:00Z",
            paris,
        );
        assert_eq!(
            hourly,
            vec!["2026-03-29 03:00 CEST", "2026-03-29 04:00 CEST"]
        );
    }

    #[test]
    fn fall_back_neither_skips_nor_doubles() {
        let paris = chrono_tz::Europe::Paris;
        // 2026-10-25: 03:00 CEST → 02:00 CET; 02:30 happens twice on the
        // wall clock, the job runs at the first.
        assert_eq!(
            slots(
                "0 30 2 * * *",
                "2026-10-24T12:00:00Z",
                "2026-10-26T12:00:00Z",
                paris
            ),
            vec!["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]
        );
        // Starting inside the second 02:xx hour: the repeat is not a new slot.
        let s = JobSchedule::parse("0 30 2 * * *").unwrap();
        let second_pass = t("2026-10-25T01:10:00Z"); // 02:10 CET
        let next = s.next_after(second_pass, paris).unwrap();
        assert_eq!(next, t("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn latest_slot_before_now() {
        let s = JobSchedule::parse("0 0 2 * * *").unwrap();
        let now = t("2026-12-05T10:00:00Z");
        assert_eq!(
            s.latest_at_or_before(now, Duration::days(7), Tz::UTC),
            Some(t("2026-12-05T02:00:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(t("2026-12-05T02:00:00Z"), Duration::days(7), Tz::UTC),
            Some(t("2026-12-05T02:00:00Z"))
        );
        let yearly = JobSchedule::parse("0 0 0 1 1 *").unwrap();
        assert_eq!(
            yearly.latest_at_or_before(now, Duration::days(7), Tz::UTC),
            None
        );
    }
}
