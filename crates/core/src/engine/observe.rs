//! Stage 2: what each trigger says this tick — its value (or last-known-good), its failure
//! count, whether its fallback applies, whether it is active, and its HPA proposal.

use crate::decision::{Step, TriggerOutcome};
use crate::hpa;
use crate::input::{QueryErrorKind, QueryFailure, Tick};
use crate::policy::{ScalingPolicy, TriggerPolicy};
use crate::state::{DecisionState, TimestampedValue};
use crate::time::{Timestamp, duration_millis};

use super::{fallback_proposal, no_pods};

/// The triggers' outcomes (in policy order) and KEDA's aggregates over them.
#[derive(Debug)]
pub(super) struct Observed {
    /// One outcome per trigger, in policy order.
    pub(super) outcomes: Vec<TriggerOutcome>,
    /// Some trigger is active (above its activation threshold, or in fallback).
    pub(super) any_active: bool,
    /// Some trigger failed without last-known-good and without a fallback that applies.
    pub(super) any_failing: bool,
    /// Some trigger is in fallback.
    pub(super) any_fallback: bool,
}

/// Observes every trigger. With a formula (`composite`), triggers propose nothing: the
/// composite metric does.
pub(super) fn observe(
    policy: &ScalingPolicy,
    composite: bool,
    tick: &Tick,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> Observed {
    let mut observed = Observed {
        outcomes: Vec::with_capacity(policy.triggers.len()),
        any_active: false,
        any_failing: false,
        any_fallback: false,
    };
    for trigger in &policy.triggers {
        let outcome = observe_trigger(policy, trigger, composite, tick, state, now, steps);
        // KEDA ≥ 2.19: a trigger in fallback is not an error and counts as active (so a target
        // at zero is activated during an outage and the HPA brings it to the fallback count).
        let in_fallback = outcome.value.is_none() && outcome.active;
        observed.any_active |= outcome.active;
        observed.any_failing |= outcome.value.is_none() && !in_fallback;
        observed.any_fallback |= in_fallback;
        observed.outcomes.push(outcome);
    }
    observed
}

/// This tick's result of `trigger`'s query: a finite value, or why there is none.
fn result_of(trigger: &TriggerPolicy, tick: &Tick) -> Result<f64, QueryFailure> {
    let observed = tick
        .observations
        .iter()
        .find(|o| *o.trigger == *trigger.name);
    match observed.map(|o| &o.result) {
        Some(Ok(v)) if v.is_finite() => Ok(*v),
        Some(Ok(v)) => Err(QueryFailure {
            kind: QueryErrorKind::NotFinite,
            message: format!("value {v} is not finite"),
            http_status: 0,
        }),
        Some(Err(e)) => Err(e.clone()),
        None => Err(QueryFailure {
            kind: QueryErrorKind::Missing,
            message: "no observation for this trigger".into(),
            http_status: 0,
        }),
    }
}

/// The value used (this tick's, or last-known-good within its TTL), whether it is stale, and
/// the error; updates the failure count and the last good value.
fn value_of(
    policy: &ScalingPolicy,
    trigger: &TriggerPolicy,
    tick: &Tick,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> (Option<f64>, bool, Option<QueryFailure>) {
    let ttl_ms = policy.last_known_good_ttl.map_or(0, duration_millis);
    let failures = match state.consecutive_failures.get_mut(&*trigger.name) {
        Some(n) => n,
        None => state
            .consecutive_failures
            .entry(trigger.name.to_string())
            .or_insert(0),
    };
    match result_of(trigger, tick) {
        Ok(v) => {
            *failures = 0;
            if ttl_ms > 0 {
                let good = TimestampedValue { value: v, at: now };
                match state.last_good_values.get_mut(&*trigger.name) {
                    Some(lg) => *lg = good,
                    None => {
                        state
                            .last_good_values
                            .insert(trigger.name.to_string(), good);
                    }
                }
            }
            (Some(v), false, None)
        }
        Err(e) => {
            *failures = (*failures).max(0).saturating_add(1);
            steps.push(Step::Failed {
                trigger: trigger.name.clone(),
                error: e.to_string(),
                failures: *failures,
                threshold: policy.fallback.as_ref().map(|f| f.failure_threshold),
            });
            let lkg = state
                .last_good_values
                .get(&*trigger.name)
                .filter(|lg| ttl_ms > 0 && now.millis_since(lg.at) <= ttl_ms && now >= lg.at);
            match lkg {
                Some(lg) => {
                    steps.push(Step::LastKnownGood {
                        trigger: trigger.name.clone(),
                        age_ms: now.millis_since(lg.at),
                    });
                    (Some(lg.value), true, Some(e))
                }
                None => (None, false, Some(e)),
            }
        }
    }
}

fn observe_trigger(
    policy: &ScalingPolicy,
    trigger: &TriggerPolicy,
    composite: bool,
    tick: &Tick,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> TriggerOutcome {
    let (value, stale, error) = value_of(policy, trigger, tick, state, now, steps);
    let failures = state
        .consecutive_failures
        .get(&*trigger.name)
        .copied()
        .unwrap_or(0);
    let fallback_applies = value.is_none()
        && policy
            .fallback
            .as_ref()
            .is_some_and(|f| failures > f.failure_threshold);
    // Activity compares the raw value (scaler `IsActive`).
    let active = value.is_some_and(|v| v > trigger.activation_target) || fallback_applies;
    let (proposal, fallback) = match value {
        _ if composite => (None, false),
        Some(_) if no_pods(trigger.metric_type, tick.replicas) => {
            steps.push(Step::NoPods {
                trigger: trigger.name.clone(),
            });
            (None, false)
        }
        Some(v) => {
            let p = hpa::propose(
                trigger.metric_type,
                hpa::milli_rounded(v),
                hpa::milli_rounded(trigger.target),
                tick.replicas,
                policy.tolerances(),
            );
            steps.push(Step::Proposal {
                trigger: trigger.name.clone(),
                value: v,
                target: trigger.target,
                metric_type: trigger.metric_type,
                pods: p.pods,
                proposal: p.replicas,
                within_tolerance: p.within_tolerance,
                stale,
                active,
            });
            (Some(p.replicas), false)
        }
        None if fallback_applies => {
            let (behavior, p) = fallback_proposal(policy, tick.replicas.spec);
            steps.push(Step::Fallback {
                trigger: trigger.name.clone(),
                behavior,
                proposal: p,
            });
            (Some(p), true)
        }
        None => (None, false),
    };
    TriggerOutcome {
        name: trigger.name.clone(),
        value,
        proposal,
        active,
        error,
        stale,
        fallback,
        consecutive_failures: failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FallbackBehavior;
    use crate::testing::*;

    #[test]
    fn a_trigger_in_fallback_is_active_and_not_failing() {
        let p = policy()
            .max(10)
            .fallback(0, 4, FallbackBehavior::Static)
            .trigger("ok", 10.0)
            .trigger("broken", 10.0);
        let mut state = DecisionState::default();
        let mut steps = Vec::new();
        let tick = at(2).value("ok", 0.0).failed("broken");
        let o = observe(&p, false, &tick, &mut state, t(0), &mut steps);
        assert!(o.any_active && o.any_fallback && !o.any_failing);
        let broken = &o.outcomes[1];
        assert_eq!(
            (broken.proposal, broken.fallback, broken.active),
            (Some(4), true, true)
        );
        assert_eq!(state.consecutive_failures["broken"], 1);
    }

    #[test]
    fn a_failure_below_the_threshold_is_failing_and_proposes_nothing() {
        let p = policy()
            .max(10)
            .fallback(3, 4, FallbackBehavior::Static)
            .trigger("q", 10.0);
        let mut state = DecisionState::default();
        let o = observe(
            &p,
            false,
            &at(2).failed("q"),
            &mut state,
            t(0),
            &mut Vec::new(),
        );
        assert!(o.any_failing && !o.any_active && !o.any_fallback);
        assert_eq!(o.outcomes[0].proposal, None);
    }

    #[test]
    fn with_a_formula_triggers_propose_nothing() {
        let p = policy().max(10).trigger("q", 10.0);
        let mut state = DecisionState::default();
        let o = observe(
            &p,
            true,
            &at(2).value("q", 50.0),
            &mut state,
            t(0),
            &mut Vec::new(),
        );
        assert_eq!(o.outcomes[0].proposal, None);
        assert!(o.any_active);
    }
}
