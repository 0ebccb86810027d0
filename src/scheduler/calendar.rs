//! Times of the scheduler, pure: cron expressions (croner, DST-correct) evaluated in
//! a time zone (jiff), and briefing periods as local calendar weeks and months.
//!
//! Invariants: a cron time that falls in a spring-forward gap runs once, at the first
//! valid instant after it; one in a fall-back fold runs once (croner's rule); a
//! period is `[start, end)` between two local midnights, so a week with a DST
//! change lasts 167 or 169 hours and a month its local length.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use crate::events::notification::BriefingPeriod;

/// Why a time could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// Not a cron expression croner accepts.
    #[error("cron expression {expr:?}: {message}")]
    Cron {
        /// The expression.
        expr: String,
        /// What croner said.
        message: String,
    },
    /// Not an IANA time zone known to this machine.
    #[error("time zone {0:?} is not an IANA time zone known here (e.g. Europe/Berlin)")]
    Zone(String),
    /// Outside the representable range, or no occurrence.
    #[error("no time: {0}")]
    Range(String),
}

/// Parses `expr` (5 fields, or 6 with seconds first).
pub fn parse(expr: &str) -> Result<Cron, CalendarError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| CalendarError::Cron {
            expr: expr.to_owned(),
            message: e.to_string(),
        })
}

/// The IANA zone `name`.
pub fn zone(name: &str) -> Result<TimeZone, CalendarError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(CalendarError::Zone(name.to_owned()));
    }
    TimeZone::get(name).map_err(|_| CalendarError::Zone(name.to_owned()))
}

fn zoned(at: DateTime<Utc>, tz: &TimeZone) -> Result<Zoned, CalendarError> {
    Timestamp::from_millisecond(at.timestamp_millis())
        .map(|t| t.to_zoned(tz.clone()))
        .map_err(|e| CalendarError::Range(e.to_string()))
}

/// A jiff time as chrono UTC (the events and the database speak chrono).
pub fn utc(z: &Zoned) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(z.timestamp().as_millisecond()).unwrap_or_default()
}

/// The first time of `cron` in `tz` strictly after `after`.
pub fn next_after(
    cron: &Cron,
    after: DateTime<Utc>,
    tz: &TimeZone,
) -> Result<Zoned, CalendarError> {
    cron.find_next_occurrence(&zoned(after, tz)?, false)
        .map_err(|e| CalendarError::Range(e.to_string()))
}

/// The last time of `cron` in `tz` at or before `now` (the slot due now).
pub fn latest_at_or_before(
    cron: &Cron,
    now: DateTime<Utc>,
    tz: &TimeZone,
) -> Result<Zoned, CalendarError> {
    cron.find_previous_occurrence(&zoned(now, tz)?, true)
        .map_err(|e| CalendarError::Range(e.to_string()))
}

fn local_midnight(d: jiff::civil::Date, tz: &TimeZone) -> Result<Zoned, CalendarError> {
    d.to_zoned(tz.clone())
        .map_err(|e| CalendarError::Range(e.to_string()))
}

/// The last whole local calendar period before the run at `run`: for a weekly
/// briefing the week (Monday 00:00 to Monday 00:00) before the run's week, for a
/// monthly one the month before the run's month.
pub fn period_before(period: BriefingPeriod, run: &Zoned) -> Result<(Zoned, Zoned), CalendarError> {
    let tz = run.time_zone();
    let day = run.date();
    let range = |e: jiff::Error| CalendarError::Range(e.to_string());
    let (start, end) = match period {
        BriefingPeriod::Weekly => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            let monday = day.checked_sub(Span::new().days(back)).map_err(range)?;
            let before = monday.checked_sub(Span::new().weeks(1)).map_err(range)?;
            (before, monday)
        }
        BriefingPeriod::Monthly => {
            let first = day.first_of_month();
            let before = first.checked_sub(Span::new().months(1)).map_err(range)?;
            (before, first)
        }
    };
    Ok((local_midnight(start, tz)?, local_midnight(end, tz)?))
}

/// The cron expression of a briefing period (local time of the user).
pub fn briefing_cron<'a>(period: BriefingPeriod, weekly: &'a str, monthly: &'a str) -> &'a str {
    match period {
        BriefingPeriod::Weekly => weekly,
        BriefingPeriod::Monthly => monthly,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hours(a: &Zoned, b: &Zoned) -> i64 {
        (b.timestamp().as_second() - a.timestamp().as_second()) / 3600
    }

    #[test]
    fn daily_0230_in_new_york_spring_forward_runs_once_after_the_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let tz = zone("America/New_York").unwrap();
        let cron = parse("30 2 * * *").unwrap();
        let next = next_after(&cron, at("2026-03-08T06:00:00Z"), &tz).unwrap();
        assert_eq!(next.timestamp().to_string(), "2026-03-08T07:00:00Z");
        let after = next_after(&cron, utc(&next), &tz).unwrap();
        assert_eq!(after.timestamp().to_string(), "2026-03-09T06:30:00Z");
    }

    #[test]
    fn daily_0130_in_new_york_fall_back_runs_once() {
        // 2026-11-01: 01:00–02:00 happens twice (EDT then EST).
        let tz = zone("America/New_York").unwrap();
        let cron = parse("30 1 * * *").unwrap();
        let first = next_after(&cron, at("2026-11-01T04:00:00Z"), &tz).unwrap();
        assert_eq!(first.timestamp().to_string(), "2026-11-01T05:30:00Z");
        let second = next_after(&cron, utc(&first), &tz).unwrap();
        assert_eq!(second.timestamp().to_string(), "2026-11-02T06:30:00Z");
    }

    #[test]
    fn monday_0800_in_berlin_keeps_local_time_across_the_change() {
        let tz = zone("Europe/Berlin").unwrap();
        let cron = parse("0 8 * * MON").unwrap();
        // Before 2026-03-29 (CET, +1), after it CEST (+2).
        let a = next_after(&cron, at("2026-03-20T00:00:00Z"), &tz).unwrap();
        let b = next_after(&cron, utc(&a), &tz).unwrap();
        assert_eq!(a.timestamp().to_string(), "2026-03-23T07:00:00Z");
        assert_eq!(b.timestamp().to_string(), "2026-03-30T06:00:00Z");
        assert_eq!(hours(&a, &b), 167);
    }

    #[test]
    fn weekly_periods_with_a_dst_change_last_167_or_169_hours() {
        for (zone_name, spring_run, fall_run) in [
            (
                "Europe/Berlin",
                "2026-03-30T06:00:00Z",
                "2026-10-26T07:00:00Z",
            ),
            (
                "America/New_York",
                "2026-03-09T12:00:00Z",
                "2026-11-02T13:00:00Z",
            ),
        ] {
            let tz = zone(zone_name).unwrap();
            let run = zoned(at(spring_run), &tz).unwrap();
            let (s, e) = period_before(BriefingPeriod::Weekly, &run).unwrap();
            assert_eq!(hours(&s, &e), 167, "{zone_name} spring");
            assert_eq!(s.weekday(), jiff::civil::Weekday::Monday);
            assert_eq!((s.hour(), e.hour()), (0, 0));
            let run = zoned(at(fall_run), &tz).unwrap();
            let (s, e) = period_before(BriefingPeriod::Weekly, &run).unwrap();
            assert_eq!(hours(&s, &e), 169, "{zone_name} fall");
            // An ordinary week.
            let run = zoned(at("2026-06-15T12:00:00Z"), &tz).unwrap();
            let (s, e) = period_before(BriefingPeriod::Weekly, &run).unwrap();
            assert_eq!(hours(&s, &e), 168, "{zone_name} June");
        }
    }

    #[test]
    fn monthly_periods_are_local_months() {
        let tz = zone("Europe/Berlin").unwrap();
        let run = zoned(at("2026-04-01T06:00:00Z"), &tz).unwrap();
        let (s, e) = period_before(BriefingPeriod::Monthly, &run).unwrap();
        assert_eq!(s.timestamp().to_string(), "2026-02-28T23:00:00Z");
        assert_eq!(e.timestamp().to_string(), "2026-03-31T22:00:00Z");
        assert_eq!(hours(&s, &e), 31 * 24 - 1);
        let tz = zone("America/New_York").unwrap();
        let run = zoned(at("2026-12-01T13:00:00Z"), &tz).unwrap();
        let (s, e) = period_before(BriefingPeriod::Monthly, &run).unwrap();
        assert_eq!(hours(&s, &e), 30 * 24 + 1);
        assert_eq!(s.timestamp().to_string(), "2026-11-01T04:00:00Z");
    }

    #[test]
    fn the_slot_due_now_is_the_latest_at_or_before_now() {
        let cron = parse("*/15 * * * *").unwrap();
        let due = latest_at_or_before(&cron, at("2026-05-01T10:14:59Z"), &TimeZone::UTC).unwrap();
        assert_eq!(due.timestamp().to_string(), "2026-05-01T10:00:00Z");
        let due = latest_at_or_before(&cron, at("2026-05-01T10:15:00Z"), &TimeZone::UTC).unwrap();
        assert_eq!(due.timestamp().to_string(), "2026-05-01T10:15:00Z");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse("not cron").is_err());
        assert!(zone("Mars/Olympus").is_err());
        assert!(zone("").is_err());
    }
}
