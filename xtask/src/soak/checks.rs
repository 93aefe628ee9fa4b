//! The soak's invariants, as a pure state machine fed with what the soak observes: the load it
//! set, every change of the Deployment, the Lease and the PromScaler's status (from the API
//! emulator's commit log), every decision the leading actuator streams, and the API requests
//! per minute. Each broken invariant becomes a [`Checker::violations`] line.
//!
//! The invariants (docs/operations.md, "The fault soak"):
//! 1. Replicas stay within [min, max].
//! 2. A decision that scales down (desired < the target's spec.replicas) had every trigger with
//!    a fresh good value: no query error, no last-known-good (stale) value, no fallback.
//! 3. A scale-down never goes below what the load justifies: the seed's ceil(load / threshold)
//!    within [min, max] for the lowest load of the last `lag` seconds (the query averages over
//!    one minute, and scraping, polling and the pods' start add a few seconds).
//! 4. No PromScaler loses its state: `decisionState.createdAt` and `originalReplicaCount` never
//!    change once set, `initialized` never turns false, `lastActiveTime` never moves back, a
//!    decision's state never has a `lastActiveTime` before one persisted earlier, and a leader
//!    never scales down within the scale-down stabilization window of taking the Lease (it
//!    rebuilt its state from status, with the current replicas as a recommendation made then).
//! 5. Kubernetes writes per minute stay under a bound (see [`Limits`]).
//!
//! Times: `t` arguments are seconds since the soak started; `unix` ones are seconds since the
//! epoch (decisions and status carry wall-clock times).

use std::collections::{BTreeMap, VecDeque};

use promscaler_proto::v1::DecisionEvent;
use serde_json::Value;

/// The PromScaler's and the soak's numbers the checks need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    pub(crate) min: i32,
    pub(crate) max: i32,
    /// The trigger's AverageValue threshold.
    pub(crate) threshold: f64,
    /// Seconds the replicas may lag the load by (invariant 3).
    pub(crate) lag: f64,
    /// The scale-down stabilization window (seconds; invariant 4).
    pub(crate) stabilization: f64,
    /// Writes per minute other than Lease renewals, before the retries of injected failures.
    pub(crate) writes_per_minute: u64,
    /// Lease writes per minute: renewals every lease-duration/5 by the leader, and at most as
    /// many attempts by the standby.
    pub(crate) lease_writes_per_minute: u64,
}

/// What the soak counted, for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) decisions: u64,
    pub(crate) decisions_with_errors: u64,
    pub(crate) scale_ups: u64,
    pub(crate) scale_downs: u64,
    /// Scale-downs no streamed decision was seen for (the watch was reconnecting to a new
    /// leader); invariants 1 and 3 still cover them.
    pub(crate) scale_downs_unmatched: u64,
    pub(crate) leader_changes: u64,
    pub(crate) status_writes_seen: u64,
    pub(crate) max_writes_per_minute: u64,
    pub(crate) max_lease_writes_per_minute: u64,
    pub(crate) min_replicas_seen: Option<i32>,
    pub(crate) max_replicas_seen: Option<i32>,
}

/// A scale-down committed by the API, waiting for the decision that made it.
#[derive(Debug, Clone, PartialEq)]
struct ScaleDown {
    unix: f64,
    to: i32,
}

/// The invariants' state.
#[derive(Debug)]
pub(crate) struct Checker {
    limits: Limits,
    /// (t, connections) of the last `lag` seconds.
    load: VecDeque<(f64, f64)>,
    replicas: Option<i32>,
    /// Holder → the acquireTimes of its terms.
    acquired: BTreeMap<String, Vec<f64>>,
    holder: Option<String>,
    created_at: Option<String>,
    original_replicas: Option<i64>,
    initialized: bool,
    ready: String,
    /// (unix commit time, lastActiveTime unix) of every persisted lastActiveTime.
    persisted_active: Vec<(f64, f64)>,
    /// Scale-down decisions seen: (decision unix time, desired).
    down_decisions: VecDeque<(f64, i32)>,
    unmatched: Vec<ScaleDown>,
    pub(crate) counts: Counts,
    pub(crate) violations: Vec<String>,
}

/// Seconds since the epoch of an RFC 3339 time (`2026-11-03T10:00:00.123456Z`).
pub(crate) fn unix_of(rfc3339: &str) -> Option<f64> {
    let at = humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z')).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

fn unix_of_timestamp(ts: &prost_types::Timestamp) -> f64 {
    ts.seconds as f64 + f64::from(ts.nanos) / 1e9
}

impl Checker {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            load: VecDeque::new(),
            replicas: None,
            acquired: BTreeMap::new(),
            holder: None,
            created_at: None,
            original_replicas: None,
            initialized: false,
            ready: "-".to_owned(),
            persisted_active: Vec::new(),
            down_decisions: VecDeque::new(),
            unmatched: Vec::new(),
            counts: Counts::default(),
            violations: Vec::new(),
        }
    }

    /// The Lease's holder, as last committed.
    pub(crate) fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    /// The Deployment's replicas, as last committed.
    pub(crate) fn current_replicas(&self) -> Option<i32> {
        self.replicas
    }

    /// The PromScaler's Ready condition status, as last committed.
    pub(crate) fn ready(&self) -> &str {
        &self.ready
    }

    fn violation(&mut self, text: String) {
        eprintln!("soak: VIOLATION: {text}");
        self.violations.push(text);
    }

    /// The load was set to `connections` at `t`.
    pub(crate) fn load(&mut self, t: f64, connections: f64) {
        self.load.push_back((t, connections));
        // Keep one sample older than the window: it was the load at the window's start.
        while self.load.len() > 2 && self.load[1].0 < t - self.limits.lag {
            self.load.pop_front();
        }
    }

    /// The replicas the load justifies at `t`: the seed's formula for the lowest load of the
    /// last `lag` seconds.
    pub(crate) fn justified(&self, t: f64) -> i32 {
        let lowest = self
            .load
            .iter()
            .enumerate()
            .filter(|(i, (at, _))| {
                *at >= t - self.limits.lag
                    || self
                        .load
                        .get(i + 1)
                        .is_none_or(|n| n.0 > t - self.limits.lag)
            })
            .map(|(_, (_, c))| *c)
            .fold(f64::INFINITY, f64::min);
        if !lowest.is_finite() {
            return self.limits.min;
        }
        ((lowest / self.limits.threshold).ceil() as i32).clamp(self.limits.min, self.limits.max)
    }

    /// The Deployment's spec.replicas was committed as `replicas` at `t` (`unix`).
    pub(crate) fn replicas(&mut self, t: f64, unix: f64, replicas: i32) {
        let before = self.replicas.replace(replicas);
        let c = &mut self.counts;
        c.min_replicas_seen = Some(c.min_replicas_seen.map_or(replicas, |m| m.min(replicas)));
        c.max_replicas_seen = Some(c.max_replicas_seen.map_or(replicas, |m| m.max(replicas)));
        let Some(before) = before else { return };
        if before == replicas {
            return;
        }
        if replicas < self.limits.min || replicas > self.limits.max {
            self.violation(format!(
                "at {t:.0}s replicas {before} -> {replicas}, outside [{}, {}]",
                self.limits.min, self.limits.max
            ));
        }
        if replicas > before {
            self.counts.scale_ups += 1;
            return;
        }
        self.counts.scale_downs += 1;
        let justified = self.justified(t);
        if replicas < justified.min(before) {
            self.violation(format!(
                "at {t:.0}s replicas dropped {before} -> {replicas}, below the {justified} the \
                 lowest load of the last {:.0}s justifies",
                self.limits.lag
            ));
        }
        self.unmatched.push(ScaleDown { unix, to: replicas });
        self.match_scale_downs();
    }

    /// The Lease's holder is `holder`, which acquired it at `acquired` (unix).
    pub(crate) fn lease(&mut self, holder: &str, acquired: Option<f64>) {
        if self.holder.as_deref() != Some(holder) {
            if self.holder.is_some() {
                self.counts.leader_changes += 1;
            }
            self.holder = Some(holder.to_owned());
        }
        if let Some(at) = acquired {
            let terms = self.acquired.entry(holder.to_owned()).or_default();
            if terms.last() != Some(&at) {
                terms.push(at);
            }
        }
    }

    /// The PromScaler's status was committed at `unix`.
    pub(crate) fn status(&mut self, unix: f64, status: &Value) {
        self.counts.status_writes_seen += 1;
        if let Some(ready) = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["status"].as_str())
        {
            ready.clone_into(&mut self.ready);
        }
        let state = &status["decisionState"];
        if let Some(created) = state["createdAt"].as_str() {
            match &self.created_at {
                Some(before) if before != created => {
                    let text = format!("decisionState.createdAt changed {before} -> {created}");
                    self.violation(text);
                }
                _ => self.created_at = Some(created.to_owned()),
            }
        } else if let Some(before) = self.created_at.clone() {
            self.violation(format!("decisionState.createdAt {before} was lost"));
        }
        if let Some(original) = status["originalReplicaCount"].as_i64() {
            match self.original_replicas {
                Some(before) if before != original => self.violation(format!(
                    "originalReplicaCount changed {before} -> {original}"
                )),
                _ => self.original_replicas = Some(original),
            }
        }
        let initialized = state["initialized"].as_bool().unwrap_or(false)
            || state["recommendations"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
        if self.initialized && !initialized {
            self.violation("decisionState.initialized turned false".into());
        }
        self.initialized |= initialized;
        let active = state["lastActiveTime"].as_str().and_then(unix_of);
        let last = self.persisted_active.last().map(|p| p.1);
        match (last, active) {
            (Some(before), None) => {
                self.violation(format!("decisionState.lastActiveTime {before:.3} was lost"));
            }
            (Some(before), Some(now)) if now + 1e-3 < before => self.violation(format!(
                "decisionState.lastActiveTime moved back by {:.3}s",
                before - now
            )),
            (_, Some(now)) if last != Some(now) => self.persisted_active.push((unix, now)),
            _ => {}
        }
    }

    /// A decision streamed by the actuator `actuator` at `received` (unix).
    pub(crate) fn decision(&mut self, actuator: &str, event: &DecisionEvent) {
        self.counts.decisions += 1;
        let Some(decision) = &event.decision else {
            self.counts.decisions_with_errors += 1;
            return;
        };
        let at = event.at.as_ref().map_or(0.0, unix_of_timestamp);
        let spec = event.replicas.as_ref().map_or(0, |r| r.spec);
        if decision
            .triggers
            .iter()
            .any(|t| t.error.is_some() || t.stale || t.fallback)
        {
            self.counts.decisions_with_errors += 1;
        }
        // Invariant 4: the state carried on is not older than what was persisted before.
        if let Some(state) = &decision.state {
            let active = state.last_active_time.as_ref().map(unix_of_timestamp);
            let persisted = self
                .persisted_active
                .iter()
                .rev()
                .find(|(committed, _)| *committed < at - 2.0)
                .map(|p| p.1);
            if let Some(persisted) = persisted
                && active.is_none_or(|a| a + 1e-3 < persisted)
            {
                self.violation(format!(
                    "{actuator}'s decision at {at:.3} carries lastActiveTime {active:?}, before \
                     the {persisted:.3} persisted earlier: state was lost"
                ));
            }
        }
        if decision.desired_replicas >= spec {
            return;
        }
        // Invariant 2.
        let bad: Vec<String> = decision
            .triggers
            .iter()
            .filter(|t| t.error.is_some() || t.value.is_none() || t.stale || t.fallback)
            .map(|t| format!("{t:?}"))
            .collect();
        if !bad.is_empty() || decision.fallback_active {
            self.violation(format!(
                "{actuator} decided {spec} -> {} at {at:.3} without a fresh good value for \
                 every trigger: {bad:?} (fallback {}); explanation {:?}",
                decision.desired_replicas, decision.fallback_active, decision.explanation
            ));
        }
        // Invariant 4: a new term starts with the scale-down window.
        if let Some(acquired) = self
            .acquired
            .get(actuator)
            .and_then(|terms| terms.iter().rev().find(|a| **a <= at + 0.5))
            && at < acquired + self.limits.stabilization - 1.0
        {
            self.violation(format!(
                "{actuator} decided {spec} -> {} {:.1}s after taking the Lease, inside the \
                 {:.0}s scale-down window: it did not rebuild its state from status",
                decision.desired_replicas,
                at - acquired,
                self.limits.stabilization
            ));
        }
        self.down_decisions
            .push_back((at, decision.desired_replicas));
        while self.down_decisions.len() > 1000 {
            self.down_decisions.pop_front();
        }
        self.match_scale_downs();
    }

    /// Pairs committed scale-downs with the decisions that made them (within 15 s: a slow API
    /// commits late).
    fn match_scale_downs(&mut self) {
        let decisions = &self.down_decisions;
        self.unmatched.retain(|down| {
            !decisions
                .iter()
                .any(|(at, to)| *to == down.to && (at - down.unix).abs() <= 15.0)
        });
    }

    /// The writes of one minute: `writes` other than Lease ones, `lease_writes`, and how many
    /// requests the emulator failed on purpose (each may be retried once more).
    pub(crate) fn minute(&mut self, minute: u32, writes: u64, lease_writes: u64, injected: u64) {
        let c = &mut self.counts;
        c.max_writes_per_minute = c.max_writes_per_minute.max(writes);
        c.max_lease_writes_per_minute = c.max_lease_writes_per_minute.max(lease_writes);
        let bound = self.limits.writes_per_minute + injected;
        if writes > bound {
            self.violation(format!(
                "minute {minute}: {writes} Kubernetes writes (Leases aside), more than the bound \
                 {} + {injected} injected failures",
                self.limits.writes_per_minute
            ));
        }
        let lease_bound = self.limits.lease_writes_per_minute + injected;
        if lease_writes > lease_bound {
            self.violation(format!(
                "minute {minute}: {lease_writes} Lease writes, more than the bound {} + \
                 {injected} injected failures",
                self.limits.lease_writes_per_minute
            ));
        }
    }

    /// Ends the run: scale-downs older than `now - 15 s` with no decision are counted.
    pub(crate) fn finish(&mut self, now_unix: f64) {
        self.match_scale_downs();
        let (old, recent): (Vec<_>, Vec<_>) = self
            .unmatched
            .drain(..)
            .partition(|d| d.unix < now_unix - 15.0);
        self.counts.scale_downs_unmatched += old.len() as u64;
        self.unmatched = recent;
    }
}

#[cfg(test)]
mod tests {
    use promscaler_proto::v1::{
        DecideResponse, DecisionState, QueryError, Replicas, TriggerOutcome,
    };

    use super::*;

    fn limits() -> Limits {
        Limits {
            min: 1,
            max: 5,
            threshold: 50.0,
            lag: 90.0,
            stabilization: 15.0,
            writes_per_minute: 60,
            lease_writes_per_minute: 120,
        }
    }

    fn ts(unix: f64) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: unix.floor() as i64,
            nanos: ((unix - unix.floor()) * 1e9) as i32,
        }
    }

    fn event(at: f64, spec: i32, desired: i32, trigger: TriggerOutcome) -> DecisionEvent {
        DecisionEvent {
            at: Some(ts(at)),
            replicas: Some(Replicas {
                spec,
                status: spec,
                ready: spec,
            }),
            decision: Some(DecideResponse {
                desired_replicas: desired,
                triggers: vec![trigger],
                state: Some(DecisionState {
                    last_active_time: Some(ts(at)),
                    ..DecisionState::default()
                }),
                ..DecideResponse::default()
            }),
            ..DecisionEvent::default()
        }
    }

    fn good(value: f64) -> TriggerOutcome {
        TriggerOutcome {
            name: "connections".into(),
            value: Some(value),
            ..TriggerOutcome::default()
        }
    }

    #[test]
    fn scale_down_on_a_failed_or_stale_trigger_is_a_violation() {
        let mut checker = Checker::new(limits());
        checker.decision("a", &event(1000.0, 3, 2, good(80.0)));
        assert_eq!(checker.violations, Vec::<String>::new());
        let failed = TriggerOutcome {
            error: Some(QueryError::default()),
            value: None,
            ..good(0.0)
        };
        checker.decision("a", &event(1001.0, 3, 2, failed.clone()));
        checker.decision(
            "a",
            &event(
                1002.0,
                3,
                2,
                TriggerOutcome {
                    stale: true,
                    ..good(1.0)
                },
            ),
        );
        assert_eq!(checker.violations.len(), 2, "{:?}", checker.violations);
        // Holding on a failed trigger is what should happen.
        checker.decision("a", &event(1003.0, 3, 3, failed));
        assert_eq!(checker.violations.len(), 2);
    }

    #[test]
    fn drops_below_the_lowest_recent_load_are_violations() {
        let mut checker = Checker::new(limits());
        for t in 0..100 {
            checker.load(f64::from(t), if t < 50 { 300.0 } else { 20.0 });
        }
        // The load was 20 for 50 s of the last 90: one replica is justified.
        assert_eq!(checker.justified(99.0), 1);
        checker.load(100.0, 140.0);
        for t in 101..=200 {
            checker.load(f64::from(t), 140.0);
        }
        assert_eq!(checker.justified(200.0), 3);
        checker.replicas(200.0, 0.0, 5);
        checker.replicas(201.0, 0.0, 3);
        assert!(checker.violations.is_empty(), "{:?}", checker.violations);
        checker.replicas(202.0, 0.0, 2);
        assert_eq!(checker.violations.len(), 1, "{:?}", checker.violations);
        checker.replicas(203.0, 0.0, 6);
        assert_eq!(checker.violations.len(), 2, "{:?}", checker.violations);
        assert_eq!(checker.counts.scale_downs, 2);
        assert_eq!(checker.counts.scale_ups, 1);
    }

    #[test]
    fn lost_or_regressed_state_is_a_violation() {
        let mut checker = Checker::new(limits());
        let status = |created: &str, active: &str| {
            serde_json::json!({"originalReplicaCount": 2, "decisionState": {
                "createdAt": created, "lastActiveTime": active, "initialized": true}})
        };
        checker.status(
            100.0,
            &status("2026-11-03T10:00:00Z", "2026-11-03T10:00:10Z"),
        );
        checker.status(
            101.0,
            &status("2026-11-03T10:00:00Z", "2026-11-03T10:00:20Z"),
        );
        assert!(checker.violations.is_empty(), "{:?}", checker.violations);
        checker.status(
            102.0,
            &status("2026-11-03T10:00:05Z", "2026-11-03T10:00:15Z"),
        );
        checker.status(103.0, &serde_json::json!({"decisionState": {}}));
        assert_eq!(checker.violations.len(), 5, "{:?}", checker.violations);
    }

    #[test]
    fn a_decision_forgetting_persisted_activity_is_a_violation() {
        let mut checker = Checker::new(limits());
        let active = unix_of("2026-11-03T10:00:20Z").unwrap();
        checker.status(
            active,
            &serde_json::json!({"decisionState": {"lastActiveTime": "2026-11-03T10:00:20Z"}}),
        );
        // A decision soon after the write may not have seen it; 2 s later it must have.
        checker.decision("b", &event(active + 1.0, 3, 3, good(140.0)));
        let mut forgot = event(active + 5.0, 3, 3, good(140.0));
        if let Some(d) = forgot.decision.as_mut() {
            d.state = Some(DecisionState::default());
        }
        checker.decision("b", &forgot);
        assert_eq!(checker.violations.len(), 1, "{:?}", checker.violations);
    }

    #[test]
    fn scaling_down_right_after_taking_the_lease_is_a_violation() {
        let mut checker = Checker::new(limits());
        checker.lease("a", Some(900.0));
        checker.lease("b", Some(1000.0));
        assert_eq!(checker.counts.leader_changes, 1);
        checker.decision("b", &event(1005.0, 3, 2, good(80.0)));
        assert_eq!(checker.violations.len(), 1, "{:?}", checker.violations);
        checker.decision("b", &event(1016.0, 3, 2, good(80.0)));
        assert_eq!(checker.violations.len(), 1, "{:?}", checker.violations);
    }

    #[test]
    fn scale_downs_are_paired_with_decisions_and_writes_are_bounded() {
        let mut checker = Checker::new(limits());
        checker.replicas(0.0, 1000.0, 3);
        checker.replicas(1.0, 1001.0, 2);
        checker.decision("a", &event(1000.5, 3, 2, good(80.0)));
        checker.replicas(30.0, 1030.0, 1);
        checker.finish(1100.0);
        assert_eq!(checker.counts.scale_downs_unmatched, 1);
        checker.minute(1, 61, 10, 1);
        assert!(checker.violations.is_empty(), "{:?}", checker.violations);
        checker.minute(2, 62, 122, 1);
        assert_eq!(checker.violations.len(), 2, "{:?}", checker.violations);
    }
}
