//! The soak's random but reproducible plan: a load curve of plateaus and a fault schedule,
//! both drawn from one seed, so `--seed` replays a failing run's plan exactly.

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use promscaler_sandbox::scenario::Scenario;

/// Seconds without faults at the start (the first decisions) and at the end (recovery).
pub(crate) const QUIET_START: f64 = 20.0;
/// See [`QUIET_START`].
pub(crate) const QUIET_END: f64 = 25.0;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    /// SIGKILL the metrics-fetcher; restart it after the fault's duration.
    KillFetcher,
    /// SIGKILL the decision service; restart it after the fault's duration.
    KillDecision,
    /// SIGKILL Prometheus; restart it (same data directory) after the fault's duration.
    KillPrometheus,
    /// SIGKILL the STS emulator (`--aws` only); restart it after the fault's duration.
    KillSts,
    /// SIGKILL the actuator holding the Lease; restart it (as a standby) after the duration.
    KillLeader,
    /// The API answers the next `count` matching writes with 409 Conflict.
    Conflict,
    /// The API answers the next `count` matching requests with 500.
    ServerError,
    /// The API answers the next `count` matching requests with 504, the API server's
    /// "request did not complete within the timeout".
    Timeout,
    /// Every API request is delayed by `latency_ms` for the fault's duration.
    SlowApi,
    /// Every open watch ends (clients re-watch); with `expire`, re-watches get 410 and re-list.
    DropWatches,
}

impl Fault {
    const ALL: [Fault; 10] = [
        Fault::KillFetcher,
        Fault::KillDecision,
        Fault::KillPrometheus,
        Fault::KillSts,
        Fault::KillLeader,
        Fault::Conflict,
        Fault::ServerError,
        Fault::Timeout,
        Fault::SlowApi,
        Fault::DropWatches,
    ];

    /// A short name for the log and the summary.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::KillFetcher => "kill-fetcher",
            Fault::KillDecision => "kill-decision",
            Fault::KillPrometheus => "kill-prometheus",
            Fault::KillSts => "kill-sts",
            Fault::KillLeader => "kill-leader-actuator",
            Fault::Conflict => "api-409",
            Fault::ServerError => "api-500",
            Fault::Timeout => "api-504",
            Fault::SlowApi => "api-slow",
            Fault::DropWatches => "api-drop-watches",
        }
    }
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    /// Seconds since the soak started.
    pub(crate) at: f64,
    pub(crate) fault: Fault,
    /// How long a killed component stays down, or a slow API stays slow (seconds).
    pub(crate) duration: f64,
    /// Requests an API rule fails.
    pub(crate) count: u32,
    /// The path substring an API rule matches (`/scale`, `/promscalers/`, `/leases/`, ...).
    pub(crate) path: &'static str,
    /// Verb an API rule matches; `None` = every verb.
    pub(crate) verb: Option<&'static str>,
    /// The added latency of [`Fault::SlowApi`] (ms); kept under a third of the 5 s Lease so a
    /// Lease renewal (GET + PUT) still lands in time: a slow API is not meant to depose the
    /// leader (see docs/operations.md, "The fault soak").
    pub(crate) latency_ms: u64,
    /// [`Fault::DropWatches`] also compacts the history (re-watches get 410).
    pub(crate) expire: bool,
}

/// The plan of one soak run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) load: Scenario,
    pub(crate) faults: Vec<Planned>,
}

/// Connection levels the load moves between: every replica count of the seed's [1, 5] and
/// beyond (300 ⇒ 6 ⇒ max 5), and silence.
const LEVELS: [f64; 7] = [0.0, 20.0, 80.0, 140.0, 190.0, 240.0, 300.0];

/// Draws the plan of a `seconds`-long soak from `seed`; `aws` allows STS kills.
pub(crate) fn plan(seed: u64, seconds: f64, aws: bool) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    // Load: plateaus of 30-90 s joined by 5-15 s ramps, starting at 140 (3 replicas).
    let mut points = vec![(0.0, 140.0)];
    let mut t = 0.0;
    let mut level = 140.0;
    while t < seconds {
        t += rng.random_range(30.0..90.0);
        points.push((t.min(seconds), level));
        if t >= seconds {
            break;
        }
        let next = loop {
            let candidate = LEVELS[rng.random_range(0..LEVELS.len())];
            if candidate != level {
                break candidate;
            }
        };
        t += rng.random_range(5.0..15.0);
        level = next;
        points.push((t.min(seconds), level));
    }
    let load = Scenario { points };

    // Faults: one every 4-14 s between the quiet start and end.
    let mut faults = Vec::new();
    let mut at = QUIET_START;
    loop {
        at += rng.random_range(4.0..14.0);
        if at >= seconds - QUIET_END {
            break;
        }
        let fault = Fault::ALL[rng.random_range(0..Fault::ALL.len())];
        if fault == Fault::KillSts && !aws {
            continue;
        }
        let (path, verb) = match fault {
            Fault::Conflict => [("/scale", Some("patch")), ("/promscalers/", Some("patch"))]
                [rng.random_range(0..2)],
            _ => [
                ("/scale", None),
                ("/promscalers/", None),
                ("/leases/", None),
                ("/events", None),
                ("/deployments/", None),
            ][rng.random_range(0..5)],
        };
        let down_max = (seconds - QUIET_END - at).clamp(2.0, 25.0);
        faults.push(Planned {
            at,
            fault,
            duration: rng.random_range(2.0..down_max.max(2.5)),
            count: rng.random_range(1..=4),
            path,
            verb,
            latency_ms: rng.random_range(100..1500),
            expire: rng.random_bool(0.5),
        });
    }
    Plan { load, faults }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        assert_eq!(plan(7, 600.0, true), plan(7, 600.0, true));
        assert_ne!(plan(7, 600.0, true), plan(8, 600.0, true));
    }

    #[test]
    fn faults_stay_inside_the_run_and_leave_quiet_ends() {
        for seed in 0..50 {
            let p = plan(seed, 120.0, false);
            assert!(!p.faults.is_empty(), "seed {seed}: no fault in two minutes");
            for f in &p.faults {
                assert!(f.at > QUIET_START && f.at < 120.0 - QUIET_END, "{f:?}");
                assert!(f.at + f.duration <= 120.0 - QUIET_END + 0.5 || f.duration <= 2.5);
                assert_ne!(f.fault, Fault::KillSts, "no STS without --aws");
                assert!(f.latency_ms < 5000 / 3, "{f:?}");
            }
            assert_eq!(p.load.at(0.0), 140.0);
            assert!(p.load.duration() <= 120.0);
            assert!(p.faults.windows(2).all(|w| w[0].at < w[1].at));
        }
    }
}
