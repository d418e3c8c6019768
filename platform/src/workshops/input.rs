//! The new-workshop form as typed, and its validation: every bad field gets its own message, and
//! the cluster template is checked exactly like a normal create.

use chrono::{DateTime, Duration as Span, NaiveDateTime, Utc};

use crate::accounts::FieldError;
use crate::clusters::{ClusterRequest, ClusterSettings, CreateClusterInput};

/// The longest workshop.
pub const MAX_LENGTH: Span = Span::days(7);
/// How far ahead a workshop may be planned.
const MAX_AHEAD: Span = Span::days(180);
pub const MAX_SEATS: i32 = 500;
const MAX_GRACE_MINUTES: i32 = 24 * 60;
const DEFAULT_GRACE_MINUTES: i32 = 30;
const MAX_TITLE: usize = 120;

#[derive(Debug, Clone, Default)]
pub struct WorkshopInput {
    pub title: String,
    /// `2026-12-05T14:30` (an HTML `datetime-local` field) or RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    /// The browser's `Date.getTimezoneOffset()` (minutes to add to local time for UTC), which
    /// the form's script fills in; empty: the times are UTC.
    pub tz_offset: String,
    pub grace_minutes: String,
    pub seats: String,
    /// How many clusters to make ahead, so joining attendees get a Ready one at once.
    pub pool: String,
    pub version: String,
    pub mode: String,
    pub servers: String,
    pub agents: String,
    pub persistence: String,
    pub storage_gi: String,
}

/// A valid workshop.
#[derive(Debug, Clone)]
pub struct ValidWorkshop {
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub grace_minutes: i32,
    pub seats: i32,
    pub pool: i32,
    pub template: ClusterRequest,
}

fn parse_time(field: &'static str, raw: &str, offset: Span) -> Result<DateTime<Utc>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldError::new(field, "Enter a date and time."));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|local| local.and_utc() + offset)
        .ok_or_else(|| FieldError::new(field, "Enter a date and time like 2026-12-05 14:30."))
}

impl WorkshopInput {
    pub fn parse(
        &self,
        settings: &ClusterSettings,
        now: DateTime<Utc>,
    ) -> Result<ValidWorkshop, Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = self.title.trim();
        if title.is_empty() {
            errors.push(FieldError::new("title", "Give the workshop a title."));
        } else if title.chars().count() > MAX_TITLE {
            errors.push(FieldError::new(
                "title",
                format!("A title has at most {MAX_TITLE} characters."),
            ));
        } else if title.chars().any(char::is_control) {
            errors.push(FieldError::new("title", "A title is one line of text."));
        }
        let offset = match self.tz_offset.trim() {
            "" => Some(Span::zero()),
            raw => raw.parse::<i64>().ok().filter(|m| m.abs() <= 16 * 60).map(Span::minutes),
        };
        let offset = offset.unwrap_or_else(|| {
            errors.push(FieldError::new("starts_at", "The time zone of the times is not valid."));
            Span::zero()
        });
        let starts_at =
            parse_time("starts_at", &self.starts_at, offset).map_err(|e| errors.push(e)).ok();
        let ends_at = parse_time("ends_at", &self.ends_at, offset).map_err(|e| errors.push(e)).ok();
        if let (Some(start), Some(end)) = (starts_at, ends_at) {
            if end <= start {
                errors.push(FieldError::new("ends_at", "The end comes after the start."));
            } else if end <= now {
                errors.push(FieldError::new("ends_at", "The end is in the past."));
            } else if end - start > MAX_LENGTH {
                errors.push(FieldError::new(
                    "ends_at",
                    format!("A workshop lasts at most {} days.", MAX_LENGTH.num_days()),
                ));
            }
            if start - now > MAX_AHEAD {
                errors.push(FieldError::new(
                    "starts_at",
                    format!("A workshop starts within {} days.", MAX_AHEAD.num_days()),
                ));
            }
        }
        let grace_minutes = match self.grace_minutes.trim() {
            "" => Some(DEFAULT_GRACE_MINUTES),
            raw => raw.parse::<i32>().ok().filter(|m| (0..=MAX_GRACE_MINUTES).contains(m)),
        };
        if grace_minutes.is_none() {
            errors.push(FieldError::new(
                "grace_minutes",
                format!("Enter 0 to {MAX_GRACE_MINUTES} minutes."),
            ));
        }
        let seats = self.seats.trim().parse::<i32>().ok().filter(|n| (1..=MAX_SEATS).contains(n));
        if seats.is_none() {
            errors.push(FieldError::new("seats", format!("Enter 1 to {MAX_SEATS} seats.")));
        }
        let pool = match self.pool.trim() {
            "" => Some(0),
            raw => raw.parse::<i32>().ok().filter(|n| *n >= 0 && seats.is_none_or(|s| *n <= s)),
        };
        if pool.is_none() {
            errors.push(FieldError::new("pool", "Enter 0 to as many clusters as seats."));
        }
        // The template is a cluster like any other: the same checks, the same messages.
        let template = settings
            .parse(&CreateClusterInput {
                name: "workshop".into(),
                tls_sans: String::new(),
                servers: self.servers.clone(),
                agents: self.agents.clone(),
                version: self.version.clone(),
                mode: self.mode.clone(),
                persistence: self.persistence.clone(),
                storage_gi: self.storage_gi.clone(),
            })
            .map_err(|e| errors.extend(e))
            .ok();
        match (starts_at, ends_at, grace_minutes, seats, pool, template) {
            (
                Some(starts_at),
                Some(ends_at),
                Some(grace_minutes),
                Some(seats),
                Some(pool),
                Some(template),
            ) if errors.is_empty() => Ok(ValidWorkshop {
                title: title.to_owned(),
                starts_at,
                ends_at,
                grace_minutes,
                seats,
                pool,
                template,
            }),
            _ => Err(errors),
        }
    }
}

/// Minutes to move a workshop's end by.
pub fn parse_extension(raw: &str) -> Result<i64, FieldError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|m| (1..=MAX_LENGTH.num_minutes()).contains(m))
        .ok_or_else(|| FieldError::new("minutes", "Enter a number of minutes (at least 1)."))
}

/// An organizer's seat allowance.
pub fn parse_allowance(raw: &str) -> Result<i32, FieldError> {
    raw.trim().parse::<i32>().ok().filter(|n| (0..=10 * MAX_SEATS).contains(n)).ok_or_else(|| {
        FieldError::new("seats", format!("Enter 0 (not an organizer) to {} seats.", 10 * MAX_SEATS))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> WorkshopInput {
        WorkshopInput {
            title: "Kubernetes basics".into(),
            starts_at: "2026-12-05T14:00".into(),
            ends_at: "2026-12-05T17:00".into(),
            seats: "40".into(),
            ..Default::default()
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field.to_string()).collect()
    }

    #[test]
    fn a_valid_workshop_takes_the_cluster_defaults_and_local_times() {
        let valid = WorkshopInput { tz_offset: "-240".into(), ..input() }
            .parse(&ClusterSettings::default(), now())
            .unwrap();
        // 14:00 in Mauritius (UTC+4) is 10:00 UTC.
        assert_eq!(valid.starts_at.to_rfc3339(), "2026-12-05T10:00:00+00:00");
        assert_eq!(valid.grace_minutes, 30);
        assert_eq!(valid.seats, 40);
        assert_eq!(valid.template.servers, 1);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = WorkshopInput {
            title: " ".into(),
            starts_at: "tomorrow".into(),
            seats: "0".into(),
            grace_minutes: "-5".into(),
            servers: "2".into(),
            mode: "hcp".into(),
            ..input()
        };
        let fields = fields(bad.parse(&ClusterSettings::default(), now()).unwrap_err());
        for field in ["title", "starts_at", "seats", "grace_minutes", "servers", "mode"] {
            assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
        }
    }

    #[test]
    fn the_end_comes_after_the_start_and_after_now_and_within_a_week() {
        let settings = ClusterSettings::default();
        let backwards = WorkshopInput { ends_at: "2026-12-05T13:00".into(), ..input() };
        assert_eq!(fields(backwards.parse(&settings, now()).unwrap_err()), ["ends_at"]);
        let past = WorkshopInput {
            starts_at: "2026-12-04T08:00".into(),
            ends_at: "2026-12-04T09:00".into(),
            ..input()
        };
        assert_eq!(fields(past.parse(&settings, now()).unwrap_err()), ["ends_at"]);
        let long = WorkshopInput { ends_at: "2026-12-13T14:00".into(), ..input() };
        assert_eq!(fields(long.parse(&settings, now()).unwrap_err()), ["ends_at"]);
    }

    #[test]
    fn extensions_and_allowances_are_bounded() {
        assert_eq!(parse_extension("30").unwrap(), 30);
        assert!(parse_extension("0").is_err());
        assert!(parse_extension("ten").is_err());
        assert_eq!(parse_allowance("0").unwrap(), 0);
        assert!(parse_allowance("-1").is_err());
    }
}
