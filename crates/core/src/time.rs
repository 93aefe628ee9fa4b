//! Plain time values. The core never reads a clock: the caller passes `now`.

use std::fmt;
use std::time::Duration;

/// A point in time: milliseconds since the Unix epoch (UTC). Arithmetic saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// The timestamp `secs` seconds after the Unix epoch (saturating).
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This timestamp plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// This timestamp minus `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// This timestamp plus `secs` seconds (saturating; negative goes back).
    pub fn add_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later; saturating).
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0.div_euclid(1000),
            self.0.rem_euclid(1000)
        )
    }
}

/// `d` in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Renders a millisecond span as seconds for explanations ("42s", "1.5s").
pub(crate) struct Secs(pub(crate) i64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{:.1}s", self.0 as f64 / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let t = Timestamp::from_millis(i64::MAX - 1);
        assert_eq!(
            t.plus(Duration::from_secs(10)),
            Timestamp::from_millis(i64::MAX)
        );
        let t = Timestamp::from_millis(i64::MIN + 1);
        assert_eq!(
            t.minus(Duration::from_secs(10)),
            Timestamp::from_millis(i64::MIN)
        );
        assert_eq!(t.add_secs(i64::MIN), Timestamp::from_millis(i64::MIN));
        assert_eq!(
            Timestamp::from_millis(i64::MAX).millis_since(Timestamp::from_millis(-5)),
            i64::MAX
        );
    }

    #[test]
    fn secs_render_whole_and_fractional_seconds() {
        assert_eq!(Secs(300_000).to_string(), "300s");
        assert_eq!(Secs(1_500).to_string(), "1.5s");
    }
}
