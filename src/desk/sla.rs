//! Business days: the unit of every support promise ("answer within 1 business
//! day", "3 business days"). Mon–Fri minus a holiday list, in the configured
//! time zone.

use std::path::Path;

use chrono::NaiveDate;

use crate::domain;

/// The holidays file (`calendar.holidays_file`) cannot be used; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file cannot be read.
    #[error("cannot read holidays file {path}: {source}")]
    Read {
        /// The file as configured.
        path: String,
        /// Why the read failed.
        source: std::io::Error,
    },
    /// A line is neither blank, a comment, nor a date.
    #[error("holidays file {path}, line {line}: {value:?} is not a YYYY-MM-DD date")]
    BadDate {
        /// The file (or origin given to [`Calendar::parse`]).
        path: String,
        /// 1-based line number.
        line: usize,
        /// The line without its comment, trimmed.
        value: String,
    },
}

/// The holiday list and the time zone business days are counted in; the
/// arithmetic is `domain`'s pure functions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calendar {
    holidays: Vec<NaiveDate>,
    tz: chrono_tz::Tz,
}

impl Calendar {
    /// A calendar with these holidays (any order, duplicates allowed), counting in UTC.
    pub fn new(holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        let mut holidays: Vec<NaiveDate> = holidays.into_iter().collect();
        holidays.sort_unstable();
        holidays.dedup();
        Calendar {
            holidays,
            tz: chrono_tz::Tz::UTC,
        }
    }

    /// Counts days in `tz` (`calendar.time_zone`) instead of UTC.
    pub fn in_zone(mut self, tz: chrono_tz::Tz) -> Self {
        self.tz = tz;
        self
    }

    /// The calendar date at `now` where the business is.
    pub fn local_date(&self, now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
        now.with_timezone(&self.tz).date_naive()
    }

    /// One `YYYY-MM-DD` per line; `#` starts a comment; blank lines ignored.
    pub fn load(path: &Path) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses holidays-file text (format as in [`Calendar::load`]); `origin`
    /// names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Calendar, CalendarError> {
        let mut holidays = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let value = line.split('#').next().unwrap_or("").trim();
            if value.is_empty() {
                continue;
            }
            let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                CalendarError::BadDate {
                    path: origin.to_string(),
                    line: i + 1,
                    value: value.to_string(),
                }
            })?;
            holidays.push(date);
        }
        Ok(Calendar::new(holidays))
    }

    /// Monday to Friday and not a holiday.
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        domain::is_business_day(d, &self.holidays)
    }

    /// The date `n` business days after `from` (a request made on a Friday
    /// with n = 1 is due on Monday; on a holiday eve, the day after).
    pub fn add_business_days(&self, from: NaiveDate, n: u32) -> NaiveDate {
        domain::add_business_days(from, n, &self.holidays)
    }

    /// Business days strictly after `from` up to and including `to`.
    pub fn business_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let mut count = 0;
        let mut d = from;
        while d < to {
            d = d.succ_opt().unwrap_or(to);
            if self.is_business_day(d) {
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weekends_are_skipped() {
        let c = Calendar::default();
        // 2026-11-27 is a Friday.
        assert_eq!(c.add_business_days(d("2026-11-27"), 1), d("2026-11-30"));
        assert_eq!(c.add_business_days(d("2026-11-27"), 3), d("2026-12-02"));
        // Asked on a Saturday: one business day is Monday.
        assert_eq!(c.add_business_days(d("2026-11-28"), 1), d("2026-11-30"));
        assert_eq!(c.add_business_days(d("2026-11-25"), 0), d("2026-11-25"));
    }

    #[test]
    fn holidays_are_skipped_and_bad_lines_are_named() {
        let c = Calendar::parse("# holidays\n2026-12-25\n\n2026-12-28 # observed\n", "h").unwrap();
        assert_eq!(c.add_business_days(d("2026-12-24"), 1), d("2026-12-29"));
        assert_eq!(c.business_days_between(d("2026-12-24"), d("2026-12-29")), 1);
        let e = Calendar::parse("2026-12-25\nChristmas\n", "h.txt").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn result_is_a_business_day_n_days_later(days in 0i64..3000, n in 1u32..30) {
            let c = Calendar::new([d("2026-12-25"), d("2027-01-01")]);
            let from = d("2024-01-01") + chrono::Duration::days(days);
            let due = c.add_business_days(from, n);
            proptest::prop_assert!(c.is_business_day(due));
            proptest::prop_assert_eq!(c.business_days_between(from, due), n as i64);
        }
    }

    #[test]
    fn the_date_is_taken_in_the_business_time_zone() {
        // 23:30 UTC on Thursday is already Friday in Paris.
        let now: chrono::DateTime<chrono::Utc> = "2026-11-26T23:30:00Z".parse().unwrap();
        let utc = Calendar::default();
        let paris = Calendar::default().in_zone(chrono_tz::Europe::Paris);
        assert_eq!(utc.local_date(now).to_string(), "2026-11-26");
        assert_eq!(paris.local_date(now).to_string(), "2026-11-27");
        // One business day from there: Friday in UTC, Monday in Paris.
        assert_eq!(
            utc.add_business_days(utc.local_date(now), 1).to_string(),
            "2026-11-27"
        );
        assert_eq!(
            paris
                .add_business_days(paris.local_date(now), 1)
                .to_string(),
            "2026-11-30"
        );
    }
}
