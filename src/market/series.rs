//! Series import: a Google Trends export (`multiTimeline.csv`) or JSON
//! `{keyword, points: [{t, value}]}`, parsed into equally spaced points.
//!
//! Invariants:
//! - a Trends export is `relative`: 0–100 against the maximum of that request
//!   only, so each import is its own series and never joined with another; a JSON
//!   import says its scale (`absolute` by default);
//! - the points of a series are strictly increasing in time and equally spaced
//!   (daily, weekly, hourly: one fixed step; monthly: one calendar month), else the
//!   import is refused, since the trend test assumes equal spacing;
//! - Trends' `<1` (above zero, below one) is read as 0.5.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

/// The most points one series may hold.
pub const MAX_POINTS: usize = 5000;

/// A series parsed from an import, not yet stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The keyword (lower case, without Trends' `: (Region)` suffix).
    pub keyword: String,
    /// `relative` or `absolute`.
    pub scale: String,
    /// `google_trends_csv` or `json`.
    pub origin: String,
    /// The step between points (a month counts as 30 days here; its spacing was
    /// checked on the calendar).
    pub step_ms: i64,
    /// (t in ms, value), increasing in t.
    pub points: Vec<(i64, f64)>,
}

/// Why an import was refused: a message naming what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

fn bad(m: impl Into<String>) -> ImportError {
    ImportError(m.into())
}

/// A point's time: `YYYY-MM-DD`, `YYYY-MM`, `YYYY-MM-DDTHH` (Trends' hourly), or
/// RFC 3339.
fn parse_time(s: &str) -> Option<(i64, bool)> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some((
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                .timestamp_millis(),
            false,
        ));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d") {
        return Some((
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                .timestamp_millis(),
            true,
        ));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&format!("{s}:00"), "%Y-%m-%dT%H:%M") {
        return Some((Utc.from_utc_datetime(&t).timestamp_millis(), false));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| (t.timestamp_millis(), false))
}

/// The step of equally spaced points, or why they are not.
fn spacing(points: &[(i64, f64)], monthly: bool) -> Result<i64, ImportError> {
    if points.len() < 2 {
        return Ok(0);
    }
    if monthly {
        for w in points.windows(2) {
            let (a, b) = (
                chrono::DateTime::from_timestamp_millis(w[0].0),
                chrono::DateTime::from_timestamp_millis(w[1].0),
            );
            let (Some(a), Some(b)) = (a, b) else {
                return Err(bad("a time is out of range"));
            };
            let months = (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32;
            if months != 1 {
                return Err(bad("monthly points must be one calendar month apart"));
            }
        }
        return Ok(30 * 86_400_000);
    }
    let step = points[1].0 - points[0].0;
    if step <= 0 {
        return Err(bad("points must be in increasing time order"));
    }
    if let Some(w) = points.windows(2).find(|w| w[1].0 - w[0].0 != step) {
        return Err(bad(format!(
            "points must be equally spaced: {} ms after {} ms, the first step was {step} ms",
            w[1].0 - w[0].0,
            w[0].0
        )));
    }
    Ok(step)
}

/// Normalises a keyword: trimmed, lower case, 1..=100 characters, no control
/// characters.
pub fn keyword(raw: &str) -> Result<String, ImportError> {
    let k = raw.trim().to_lowercase();
    if k.is_empty() || k.chars().count() > 100 || k.chars().any(char::is_control) {
        return Err(bad(
            "a keyword is 1 to 100 characters, without control characters",
        ));
    }
    Ok(k)
}

/// Reads a Trends `multiTimeline.csv`: optional preamble lines (`Category: ...`,
/// blank), a header `Week|Day|Month|Time,<term>: (<region>),...`, then rows. One
/// series per term column.
pub fn parse_trends_csv(text: &str) -> Result<Vec<Parsed>, ImportError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines().skip_while(|l| {
        let first = l.split(',').next().unwrap_or("").trim();
        !matches!(first, "Week" | "Day" | "Month" | "Time" | "Date")
    });
    let header = lines.next().ok_or_else(|| {
        bad("no header row (Week, Day, Month or Time) found: not a Trends export")
    })?;
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    let data = format!("{header}\n{rest}");
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(data.as_bytes());
    let mut records = rdr.records();
    let head = records
        .next()
        .ok_or_else(|| bad("empty export"))?
        .map_err(|e| bad(format!("header: {e}")))?;
    if head.len() < 2 {
        return Err(bad("the export has no term column"));
    }
    let terms: Vec<String> = head
        .iter()
        .skip(1)
        .map(|h| keyword(h.rsplit_once(": (").map_or(h, |(k, _)| k)))
        .collect::<Result<_, _>>()?;
    let mut cols: Vec<Vec<(i64, f64)>> = vec![Vec::new(); terms.len()];
    let mut monthly = false;
    for (i, rec) in records.enumerate() {
        let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let (t, m) = parse_time(&rec[0])
            .ok_or_else(|| bad(format!("row {}: `{}` is not a date", i + 1, &rec[0])))?;
        monthly = m;
        for (c, col) in cols.iter_mut().enumerate() {
            let raw = rec.get(c + 1).unwrap_or("").trim();
            let v = if raw == "<1" {
                0.5
            } else {
                raw.parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=100.0).contains(v))
                    .ok_or_else(|| {
                        bad(format!(
                            "row {}: `{raw}` is not a value from 0 to 100",
                            i + 1
                        ))
                    })?
            };
            col.push((t, v));
        }
        if cols[0].len() > MAX_POINTS {
            return Err(bad(format!("at most {MAX_POINTS} points per series")));
        }
    }
    terms
        .into_iter()
        .zip(cols)
        .map(|(keyword, points)| {
            if points.is_empty() {
                return Err(bad("the export has no rows"));
            }
            let step_ms = spacing(&points, monthly)?;
            Ok(Parsed {
                keyword,
                scale: "relative".into(),
                origin: "google_trends_csv".into(),
                step_ms,
                points,
            })
        })
        .collect()
}

/// A JSON import.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSeries {
    /// The keyword.
    pub keyword: String,
    /// `absolute` (default: counts, comparable across imports) or `relative`
    /// (0–100 within this series).
    #[serde(default)]
    pub scale: Option<String>,
    /// The points, increasing and equally spaced in `t`.
    pub points: Vec<JsonPoint>,
}

/// One point of a JSON import.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonPoint {
    /// `YYYY-MM-DD`, `YYYY-MM` or RFC 3339.
    pub t: String,
    /// A finite number.
    pub value: f64,
}

/// Checks a JSON import.
pub fn parse_json(s: JsonSeries) -> Result<Parsed, ImportError> {
    let keyword = keyword(&s.keyword).map_err(|e| bad(format!("keyword: {e}")))?;
    let scale = s.scale.unwrap_or_else(|| "absolute".into());
    if !matches!(scale.as_str(), "absolute" | "relative") {
        return Err(bad("scale: `absolute` or `relative`"));
    }
    if s.points.is_empty() || s.points.len() > MAX_POINTS {
        return Err(bad(format!("points: 1 to {MAX_POINTS}")));
    }
    let mut monthly = false;
    let mut points = Vec::with_capacity(s.points.len());
    for (i, p) in s.points.iter().enumerate() {
        let (t, m) = parse_time(&p.t).ok_or_else(|| bad(format!("points[{i}].t: not a date")))?;
        if !p.value.is_finite() {
            return Err(bad(format!("points[{i}].value: not a finite number")));
        }
        monthly = m;
        points.push((t, p.value));
    }
    let step_ms = spacing(&points, monthly).map_err(|e| bad(format!("points: {e}")))?;
    Ok(Parsed {
        keyword,
        scale,
        origin: "json".into(),
        step_ms,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "Category: All categories\n\nWeek,Rust language: (Worldwide),Go language: (Worldwide)\n2025-01-05,40,<1\n2025-01-12,45,3\n2025-01-19,100,2\n";

    #[test]
    fn a_trends_export_gives_one_relative_series_per_term() {
        let s = parse_trends_csv(CSV).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].keyword, "rust language");
        assert_eq!(s[0].scale, "relative");
        assert_eq!(s[0].step_ms, 7 * 86_400_000);
        assert_eq!(s[1].points[0].1, 0.5);
        assert_eq!(s[0].points[2].1, 100.0);
    }

    #[test]
    fn gaps_and_garbage_are_refused() {
        let gap = "Week,x: (Worldwide)\n2025-01-05,1\n2025-01-12,2\n2025-01-26,3\n";
        assert!(
            parse_trends_csv(gap)
                .unwrap_err()
                .0
                .contains("equally spaced")
        );
        assert!(parse_trends_csv("<html>blocked</html>").is_err());
        let over = "Day,x: (US)\n2025-01-05,101\n";
        assert!(parse_trends_csv(over).unwrap_err().0.contains("0 to 100"));
    }

    #[test]
    fn monthly_points_follow_the_calendar() {
        let m = "Month,x: (Worldwide)\n2024-01,1\n2024-02,2\n2024-03,3\n";
        assert_eq!(parse_trends_csv(m).unwrap()[0].points.len(), 3);
        let skip = "Month,x: (Worldwide)\n2024-01,1\n2024-03,2\n";
        assert!(parse_trends_csv(skip).is_err());
    }
}
