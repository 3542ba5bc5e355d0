//! Schedules: when a saved workflow's `[[triggers.schedule]]` fires, and
//! the run id of each fire. Pure: the server's scheduler
//! (`api/src/app/schedules.rs`) asks this what is due; the id of a fire is
//! the same on every server, so the store's refusal of a second run with
//! one id is what makes a fire start one run, however many servers see it.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::run::Millis;

/// Longest catch-up window: a server down for longer starts no run for
/// what it missed before that (`weft backfill` does, on request).
pub const MAX_CATCH_UP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most fires one schedule starts at once (after downtime, or one backfill).
pub const MAX_FIRES_AT_ONCE: usize = 1000;
/// Most schedules a workflow may have.
pub const MAX_SCHEDULES_PER_WORKFLOW: usize = 16;

/// What a fire does while an earlier run of the same schedule still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// This fire starts no run (the default: a slow run is not piled on).
    #[default]
    Skip,
    /// This fire's run starts once the earlier one has ended.
    Queue,
    /// The earlier run is cancelled, and this fire's run starts.
    CancelPrevious,
    /// This fire's run starts alongside.
    Allow,
}

impl Overlap {
    pub const ALL: [(&'static str, Overlap); 4] = [
        ("skip", Overlap::Skip),
        ("queue", Overlap::Queue),
        ("cancel-previous", Overlap::CancelPrevious),
        ("allow", Overlap::Allow),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("skip", |(n, _)| n)
    }
}

/// A cron expression in a time zone, checked.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    zone: Tz,
}

impl Timing {
    /// Parses `cron` (5 fields, or 6 with seconds first; `@daily` and the
    /// like) in IANA zone `zone` (UTC by default).
    pub fn new(cron: &str, zone: Option<&str>) -> Result<Self, TimingError> {
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| TimingError::Cron(e.to_string()))?;
        let zone = match zone {
            None => Tz::UTC,
            Some(z) => Tz::from_str(z).map_err(|_| TimingError::Zone(z.to_string()))?,
        };
        Ok(Self { cron: parsed, zone })
    }

    /// The first fire strictly after `after` (ms since the epoch).
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let at = self.zoned(after)?;
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(|t| t.timestamp_millis() as Millis)
    }

    /// Fires in `(after, until]`, oldest first, at most `max`.
    pub fn fires(&self, after: Millis, until: Millis, max: usize) -> Vec<Millis> {
        let mut fires = Vec::new();
        let mut at = after;
        while fires.len() < max {
            match self.next_after(at) {
                Some(next) if next <= until => {
                    fires.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        fires
    }

    /// The last `max` fires strictly before `before`, newest first.
    pub fn fires_before(&self, before: Millis, max: usize) -> Vec<Millis> {
        let Some(at) = self.zoned(before) else {
            return Vec::new();
        };
        self.cron
            .iter_before(at)
            .take(max)
            .map(|t| t.timestamp_millis() as Millis)
            .collect()
    }

    fn zoned(&self, ms: Millis) -> Option<DateTime<Tz>> {
        let utc: DateTime<Utc> = DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
        Some(self.zone.from_utc_datetime(&utc.naive_utc()))
    }
}

/// Why a schedule's timing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("not a cron expression: {0}")]
    Cron(String),
    #[error("`{0}` is not a time zone: use an IANA name such as `Europe/Paris` or `UTC`")]
    Zone(String),
}

/// A time as `weft backfill` and the API take it: RFC 3339
/// (`2026-01-10T02:00:00+01:00`, `2026-01-10T01:00:00Z`) or a day
/// (`2026-01-10`, midnight UTC); in ms since the epoch.
pub fn parse_time(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .map_or(0, |t| t.and_utc().timestamp_millis())
            })
        })
        .map_err(|_| {
            format!("`{text}` is not a time: write 2026-01-10T02:00:00Z (RFC 3339) or 2026-01-10")
        })?;
    Millis::try_from(parsed).map_err(|_| format!("`{text}` is before 1970"))
}

/// `ms` as RFC 3339 in UTC, to the second.
pub fn format_time(ms: Millis) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

/// Who a scheduled run is submitted by: `schedule:<workflow>#<index>`.
pub fn submitter(workflow: &str, index: usize) -> String {
    format!("schedule:{workflow}#{index}")
}

/// The run id of schedule `index` of `workflow` firing at `fire_at`: a
/// ULID whose time is the fire time and whose other 80 bits come from the
/// workflow and the schedule, so every server (and `weft backfill`) names
/// that fire's run the same.
pub fn fire_run_id(workflow: &str, index: usize, fire_at: Millis) -> String {
    derived_run_id(&format!("{workflow}\n{index}"), fire_at)
}

/// The run id of `on-finish` entry `index` of run `parent` (created at
/// `parent_created`): the same whichever server acts on the end, so it
/// starts one run.
pub fn follow_up_run_id(parent: &str, index: usize, parent_created: Millis) -> String {
    derived_run_id(&format!("on-finish\n{parent}\n{index}"), parent_created)
}

/// The run id of the child run of a sub-workflow step's `attempt` of
/// `task` in run `parent`, queued at `queued_at`: the same on every server
/// and after a takeover, so the child is started once.
pub fn child_run_id(parent: &str, task: &str, attempt: u32, queued_at: Millis) -> String {
    derived_run_id(&format!("child\n{parent}\n{task}\n{attempt}"), queued_at)
}

/// A ULID of time `at` whose other 80 bits hash `seed`.
fn derived_run_id(seed: &str, at: Millis) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let ulid = ulid::Ulid::from_parts(at, u128::from_be_bytes(random));
    ulid.to_string().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Millis = 3_600_000;

    #[test]
    fn a_timing_fires_at_its_times_in_its_zone() {
        let every_second = Timing::new("* * * * * *", None).unwrap();
        assert_eq!(every_second.fires(1_000, 4_000, 10), [2_000, 3_000, 4_000]);
        assert_eq!(
            every_second.fires(1_500, 4_000, 2),
            [2_000, 3_000],
            "bounded"
        );
        assert_eq!(every_second.fires_before(4_000, 2), [3_000, 2_000]);
        // 02:00 in Paris is 01:00 UTC in winter (2026-01-10).
        let paris = Timing::new("0 2 * * *", Some("Europe/Paris")).unwrap();
        let jan_10 = 1_767_999_600_000; // 2026-01-09T23:00:00Z
        let next = paris.next_after(jan_10).unwrap();
        assert_eq!(next, jan_10 + 2 * HOUR, "01:00 UTC");
        assert_eq!(
            Timing::new("0 0 30 2 *", None).unwrap().next_after(jan_10),
            None,
            "February 30th never comes"
        );
        let daily = Timing::new("@daily", None).unwrap();
        assert_eq!(daily.next_after(jan_10).unwrap(), jan_10 + HOUR);
    }

    #[test]
    fn bad_cron_and_zones_are_named() {
        assert!(matches!(
            Timing::new("61 * * * *", None),
            Err(TimingError::Cron(_))
        ));
        assert!(matches!(
            Timing::new("* * *", None),
            Err(TimingError::Cron(_))
        ));
        assert_eq!(
            Timing::new("* * * * *", Some("Mars/Olympus")).unwrap_err(),
            TimingError::Zone("Mars/Olympus".into())
        );
    }

    #[test]
    fn times_are_read_as_rfc_3339_or_a_day() {
        assert_eq!(parse_time("2026-01-09T23:00:00Z"), Ok(1_767_999_600_000));
        assert_eq!(
            parse_time("2026-01-10T00:00:00+01:00"),
            Ok(1_767_999_600_000)
        );
        assert_eq!(parse_time("2026-01-10"), Ok(1_768_003_200_000));
        assert!(parse_time("yesterday")
            .unwrap_err()
            .contains("is not a time"));
        assert!(parse_time("1960-01-01").is_err());
        assert_eq!(format_time(1_767_999_600_000), "2026-01-09T23:00:00Z");
    }

    #[test]
    fn a_fire_has_one_run_id_everywhere() {
        let a = fire_run_id("etl", 0, 1_767_999_600_000);
        assert_eq!(a, fire_run_id("etl", 0, 1_767_999_600_000));
        assert_ne!(a, fire_run_id("etl", 1, 1_767_999_600_000));
        assert_ne!(a, fire_run_id("etl", 0, 1_767_999_601_000));
        assert_ne!(a, fire_run_id("other", 0, 1_767_999_600_000));
        let f = follow_up_run_id("01abc", 0, 1_767_999_600_000);
        assert_eq!(f, follow_up_run_id("01abc", 0, 1_767_999_600_000));
        assert_ne!(f, follow_up_run_id("01abc", 1, 1_767_999_600_000));
        assert_eq!(a.len(), 26);
        assert_eq!(a, a.to_lowercase());
        let parsed = ulid::Ulid::from_string(&a.to_uppercase()).unwrap();
        assert_eq!(parsed.timestamp_ms(), 1_767_999_600_000);
    }
}
