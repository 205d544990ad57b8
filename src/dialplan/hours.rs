//! Business hours: weekly opening ranges in a timezone, holidays, and the closed-hours action.
//!
//! Written in a dialplan as:
//! ```yaml
//! hours:
//!   timezone: Europe/Berlin          # IANA name; all times below are local times there
//!   open:
//!     mon-fri: "08:00-12:00,13:00-18:00"   # several ranges, comma-separated
//!     sat: "09:00-12:00"
//!     fri: "22:00-02:00"                    # overnight: Friday 22:00 to Saturday 02:00
//!   holidays: ["2026-12-25", "01-01"]      # a date, or MM-DD for every year
//!   when_closed: { play: prompts/closed.wav, then: ticket }
//! ```
//! Day keys are `mon` … `sun`, ranges like `mon-fri` (also wrapping, `fri-mon`), comma lists like
//! `sat,sun`, or `daily`. Days not mentioned are closed. A range is `HH:MM-HH:MM`, end exclusive;
//! `24:00` may end a range. An end earlier than the start is an overnight range that runs past
//! midnight into the next day. Ranges must not overlap (also across midnight), so each minute of
//! the week is described once.
//!
//! A holiday closes its whole calendar date, and also cancels the part of the previous day's
//! overnight range that would run into it. The overnight part of a range that starts on a
//! holiday is cancelled as well: a holiday cancels that day's shifts.
//!
//! Evaluation converts the instant to local time in the plan's timezone, so daylight saving time
//! needs no special care: `08:00-18:00` means 08:00 local on every day, whatever the UTC offset.
//! On the night clocks go back, local times between 02:00 and 03:00 happen twice and are judged
//! the same way both times. This module reads no clock: the caller passes `now`.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use super::plan::Action;

/// Minutes in a day.
const DAY: u32 = 24 * 60;

/// Day names, Monday first, as written in dialplans.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Full day names for messages.
const DAY_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// One opening range in minutes after local midnight; `end` > 1440 for overnight ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Opening minute, 0..1440.
    pub start: u32,
    /// Closing minute (exclusive), start+1 ..= start+1440.
    pub end: u32,
}

/// A day the line is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holiday {
    /// One date (`2026-12-25`).
    Date(NaiveDate),
    /// The same month and day every year (`12-25`).
    Yearly {
        /// Month, 1–12.
        month: u32,
        /// Day of month, 1–31.
        day: u32,
    },
}

impl Holiday {
    fn is(&self, date: NaiveDate) -> bool {
        match *self {
            Holiday::Date(d) => d == date,
            Holiday::Yearly { month, day } => date.month() == month && date.day() == day,
        }
    }
}

/// Opening hours of one plan, evaluated in its timezone.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    /// The IANA timezone the times are written in.
    pub timezone: Tz,
    /// Opening ranges per weekday, Monday first.
    pub week: [Vec<Range>; 7],
    /// Days closed all day.
    pub holidays: Vec<Holiday>,
    /// What callers get outside opening hours.
    pub when_closed: Action,
}

impl BusinessHours {
    /// True if the line is open at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone);
        let date = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        if self.is_holiday(date) {
            return false;
        }
        let today = date.weekday().num_days_from_monday() as usize;
        if self.week[today]
            .iter()
            .any(|r| r.start <= minute && minute < r.end)
        {
            return true;
        }
        let yesterday = (today + 6) % 7;
        let prev_is_holiday = date.pred_opt().is_some_and(|d| self.is_holiday(d));
        !prev_is_holiday
            && self.week[yesterday]
                .iter()
                .any(|r| r.end > DAY && minute < r.end - DAY)
    }

    fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.iter().any(|h| h.is(date))
    }
}

/// A day key (`mon-fri`, `sat,sun`, `daily`) → weekday indices, Monday = 0.
/// On error returns the offending part and a message.
pub fn parse_days(key: &str) -> Result<Vec<usize>, (String, String)> {
    let mut days = Vec::new();
    for part in key.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("daily") {
            days.extend(0..7);
            continue;
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (part, None),
        };
        let from = day_index(a)?;
        let to = match b {
            Some(b) => day_index(b)?,
            None => from,
        };
        let mut d = from;
        loop {
            days.push(d);
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(days)
}

fn day_index(word: &str) -> Result<usize, (String, String)> {
    // Full names ("Monday") are accepted too; suggestions use the short form.
    DAY_NAMES
        .iter()
        .zip(DAY_LONG)
        .position(|(short, long)| {
            short.eq_ignore_ascii_case(word) || long.eq_ignore_ascii_case(word)
        })
        .ok_or_else(|| {
            let hint = super::problem::did_you_mean(word, DAY_NAMES);
            (
                word.to_string(),
                format!(
                    "unknown day '{word}'{hint} (days are mon, tue, wed, thu, fri, sat, sun; \
                     ranges like mon-fri; lists like sat,sun; or daily)"
                ),
            )
        })
}

/// `"08:00-12:00,13:00-17:00"` → ranges, each with its own text. On error returns the offending
/// part and a message.
pub fn parse_ranges(value: &str) -> Result<Vec<(Range, String)>, (String, String)> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim) {
        let bad = |why: &str| {
            (
                part.to_string(),
                format!(
                    "'{part}' is not an opening range{why}; write HH:MM-HH:MM like \
                     \"08:00-18:00\", several separated by commas"
                ),
            )
        };
        let Some((a, b)) = part.split_once('-') else {
            return Err(bad(""));
        };
        let start = parse_time(a.trim(), false).ok_or_else(|| bad(""))?;
        let end = parse_time(b.trim(), true).ok_or_else(|| bad(""))?;
        let range = match start.cmp(&end) {
            std::cmp::Ordering::Less => Range { start, end },
            std::cmp::Ordering::Greater => Range {
                start,
                end: end + DAY,
            },
            std::cmp::Ordering::Equal => {
                return Err(bad(" (it opens and closes at the same time)"))
            }
        };
        out.push((range, part.to_string()));
    }
    Ok(out)
}

/// `HH:MM` → minutes; `24:00` only where a range ends.
fn parse_time(s: &str, is_end: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if is_end => Some(DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `2026-12-25` or `12-25`.
pub fn parse_holiday(s: &str) -> Option<Holiday> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Holiday::Date(d));
    }
    let (m, d) = s.split_once('-')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (month, day): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    // 2000 is a leap year, so 02-29 is accepted.
    NaiveDate::from_ymd_opt(2000, month, day).map(|_| Holiday::Yearly { month, day })
}

/// One weekly interval with where it came from, for overlap checks.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Weekday, Monday = 0.
    pub day: usize,
    /// The range on that day.
    pub range: Range,
    /// The day key as written (`mon-fri`).
    pub key: String,
    /// The range as written (`08:00-18:00`).
    pub text: String,
}

/// For each slot that overlaps an earlier one: (index of the later slot, message).
pub fn overlaps(slots: &[Slot]) -> Vec<(usize, String)> {
    const WEEK: u32 = 7 * DAY;
    // Week-minute intervals; an overnight Sunday range wraps to Monday morning.
    let pieces = |s: &Slot| {
        let start = s.day as u32 * DAY + s.range.start;
        let end = s.day as u32 * DAY + s.range.end;
        if end > WEEK {
            vec![(start, WEEK), (0, end - WEEK)]
        } else {
            vec![(start, end)]
        }
    };
    let mut out = Vec::new();
    for (j, later) in slots.iter().enumerate() {
        let lp = pieces(later);
        let hit = slots[..j].iter().find_map(|earlier| {
            pieces(earlier).into_iter().find_map(|(a0, a1)| {
                lp.iter()
                    .find(|(b0, b1)| a0 < *b1 && *b0 < a1)
                    .map(|(b0, _)| (earlier, a0.max(*b0)))
            })
        });
        if let Some((earlier, at)) = hit {
            let day = DAY_LONG[(at / DAY) as usize % 7];
            let same = if earlier.key == later.key {
                String::new()
            } else {
                format!(" '{}'", earlier.key)
            };
            out.push((
                j,
                format!(
                    "opening hours overlap: '{}' {} overlaps{} {} on {day}; describe each \
                     time once",
                    later.key, later.text, same, earlier.text
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(parse_days("mon-fri").expect("ok"), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_days("fri-mon").expect("ok"), vec![4, 5, 6, 0]);
        assert_eq!(parse_days("sat, sun").expect("ok"), vec![5, 6]);
        assert_eq!(parse_days("Monday").expect("ok"), vec![0]);
        assert_eq!(parse_days("daily").expect("ok").len(), 7);
        let (near, msg) = parse_days("mon-fir").expect_err("typo");
        assert_eq!(near, "fir");
        assert!(msg.contains("did you mean 'fri'?"), "{msg}");
    }

    #[test]
    fn ranges() {
        let r = parse_ranges("08:00-12:00, 13:00-24:00").expect("ok");
        assert_eq!(
            r[0].0,
            Range {
                start: 480,
                end: 720
            }
        );
        assert_eq!(
            r[1].0,
            Range {
                start: 780,
                end: 1440
            }
        );
        let night = parse_ranges("22:00-02:00").expect("ok");
        assert_eq!(
            night[0].0,
            Range {
                start: 1320,
                end: 1560
            }
        );
        for bad in ["8-18", "08:00-25:00", "24:00-02:00", "08:00-08:00", "08:00"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn holidays() {
        assert_eq!(
            parse_holiday("2026-12-25"),
            NaiveDate::from_ymd_opt(2026, 12, 25).map(Holiday::Date)
        );
        assert_eq!(
            parse_holiday("02-29"),
            Some(Holiday::Yearly { month: 2, day: 29 })
        );
        assert_eq!(parse_holiday("2026-02-30"), None);
        assert_eq!(parse_holiday("25.12."), None);
    }

    #[test]
    fn overlap_across_midnight() {
        let slot = |day, s: &str, key: &str| Slot {
            day,
            range: parse_ranges(s).expect("ok")[0].0,
            key: key.into(),
            text: s.into(),
        };
        let slots = [
            slot(4, "22:00-02:00", "fri"),
            slot(5, "01:00-05:00", "sat"),
            slot(6, "23:00-01:00", "sun"),
            slot(0, "00:30-08:00", "mon"),
        ];
        let found = overlaps(&slots);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, 1);
        assert_eq!(
            found[0].1,
            "opening hours overlap: 'sat' 01:00-05:00 overlaps 'fri' 22:00-02:00 on Saturday; \
             describe each time once"
        );
        assert_eq!(found[1].0, 3);
    }
}
