//! The wall clock ticks and leases read, injected so that timer-driven code is tested under
//! `tokio::time::pause()`/`advance()` instead of real sleeps.

use std::time::{Duration, SystemTime};

use k8s_openapi::jiff;

/// Where "now" comes from: the system clock in production, or tokio's clock (which a test
/// pauses and advances) anchored at a chosen wall time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    /// `None` = the system clock; else a wall time and the tokio instant it was taken at.
    anchor: Option<(SystemTime, tokio::time::Instant)>,
}

impl Clock {
    /// The system clock.
    pub(crate) fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start` now and then moves with tokio's clock: under
    /// `tokio::time::pause()` it stands still until the test advances it.
    #[cfg(test)]
    pub(crate) fn tokio_from(start: SystemTime) -> Self {
        Self {
            anchor: Some((start, tokio::time::Instant::now())),
        }
    }

    /// The current wall time.
    pub(crate) fn now(&self) -> SystemTime {
        match self.anchor {
            None => SystemTime::now(),
            Some((wall, at)) => wall + tokio::time::Instant::now().saturating_duration_since(at),
        }
    }

    /// [`Self::now`] as a protobuf timestamp (decisions, events).
    pub(crate) fn timestamp(&self) -> prost_types::Timestamp {
        prost_types::Timestamp::from(self.now())
    }

    /// [`Self::now`] as a Kubernetes time (conditions, Leases).
    pub(crate) fn jiff(&self) -> jiff::Timestamp {
        let since = self
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        jiff::Timestamp::from_nanosecond(i128::try_from(since.as_nanos()).unwrap_or(0))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_when_tokio_time_does() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Clock::tokio_from(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        assert_eq!(
            clock.timestamp(),
            prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 500_000_000
            }
        );
        assert_eq!(clock.jiff().as_millisecond(), 1_700_000_001_500);
    }
}
