//! Timestamps in Kubernetes' formats and `kubectl`'s human durations.

use std::time::{Duration, SystemTime};

/// Now as an RFC 3339 timestamp in seconds (`metav1.Time`).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Parses an RFC 3339 timestamp in UTC.
pub(crate) fn parse(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(ts).ok().or_else(|| {
        let trimmed = ts.trim_end_matches('Z').split('+').next()?;
        humantime::parse_rfc3339_weak(trimmed).ok()
    })
}

/// How long ago `ts` was, as `kubectl` prints ages (`5s`, `3m2s`, `4h`, `2d3h`, ...).
pub(crate) fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(parse) else {
        return "<unknown>".into();
    };
    match SystemTime::now().duration_since(t) {
        Ok(d) => human_duration(d),
        Err(e) if e.duration() > Duration::from_secs(1) => "<invalid>".into(),
        Err(_) => "0s".into(),
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, day, year) = (60, 3600, 86400, 86400 * 365);
    if s < 2 * m {
        format!("{s}s")
    } else if s < 10 * m {
        if s.is_multiple_of(m) {
            format!("{}m", s / m)
        } else {
            format!("{}m{}s", s / m, s % m)
        }
    } else if s < 3 * h {
        format!("{}m", s / m)
    } else if s < 8 * h {
        if (s % h) / m == 0 {
            format!("{}h", s / h)
        } else {
            format!("{}h{}m", s / h, (s % h) / m)
        }
    } else if s < 48 * h {
        format!("{}h", s / h)
    } else if s < 8 * day {
        if (s % day) / h == 0 {
            format!("{}d", s / day)
        } else {
            format!("{}d{}h", s / day, (s % day) / h)
        }
    } else if s < 2 * year {
        format!("{}d", s / day)
    } else if s < 8 * year {
        if (s % year) / day == 0 {
            format!("{}y", s / year)
        } else {
            format!("{}y{}d", s / year, (s % year) / day)
        }
    } else {
        format!("{}y", s / year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_kubectl() {
        for (secs, want) in [
            (5, "5s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86400 + 3600, "3d1h"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn parses_what_it_formats() {
        assert!(parse(&now()).is_some());
        assert!(parse("2026-01-02T03:04:05.123456Z").is_some());
        assert!(parse("2026-01-02T03:04:05Z").is_some());
    }
}
