//! Stage 5: the HPA controller's reconcile (`reconcileAutoscaler`) for the target KEDA leaves to
//! it: the jumps into [max(min, 1), max], invalid metrics, then normalization with or without a
//! behavior (stabilization, rate policies), and the scale events a behavior keeps.

use std::borrow::Cow;
use std::sync::Arc;

use crate::decision::{ConditionStatus as S, Step};
use crate::hpa::{self, BehaviorArgs, Combined, Normalized};
use crate::input::Tick;
use crate::policy::{
    Behavior, DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, ScalingPolicy, ScalingRules, SelectPolicy,
};
use crate::state::{DecisionState, TimestampedReplicas};
use crate::time::Timestamp;

/// `ScalingActive=True` reason.
pub(super) const VALID_METRIC_FOUND: &str = "ValidMetricFound";
/// `ScalingActive=False` reason when a metric is invalid.
pub(super) const FAILED_GET_EXTERNAL_METRIC: &str = "FailedGetExternalMetric";

/// What the HPA decided and the conditions it reports.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HpaOutcome {
    /// Desired replicas.
    pub(super) desired: i32,
    /// AbleToScale/ScalingLimited, when the pass got that far.
    pub(super) normalized: Option<Normalized>,
    /// ScalingActive status and reason.
    pub(super) scaling_active: (S, &'static str),
}

impl HpaOutcome {
    fn new(
        desired: i32,
        normalized: Option<Normalized>,
        scaling_active: (S, &'static str),
    ) -> Self {
        Self {
            desired,
            normalized,
            scaling_active,
        }
    }
}

/// The HPA controller's reconcile for a target with replicas (minReplicas = max(min, 1), as
/// KEDA configures the HPA it owns).
pub(super) fn hpa_path(
    policy: &ScalingPolicy,
    tick: &Tick,
    combined: Combined,
    proposal_count: usize,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> HpaOutcome {
    let current = tick.replicas.spec;
    let min = policy.min_replicas.max(1);
    let max = policy.max_replicas;
    let ok = (S::True, VALID_METRIC_FOUND);
    let behavior = effective_behavior(policy, tick);
    if current > max {
        steps.push(Step::Clamped {
            to: max,
            bound: "maxReplicaCount",
        });
        // The HPA stores the jump as a scale event too (with a behavior).
        if let Some(b) = behavior.as_deref() {
            store_scale_event(state, b, current, max, now);
        }
        let n = Normalized {
            desired: max,
            able_reason: "ReadyForNewScale",
            limit_reason: "TooManyReplicas",
            limited: true,
        };
        return HpaOutcome::new(max, Some(n), ok);
    }
    if current < min {
        steps.push(Step::Clamped {
            to: min,
            bound: "minReplicaCount",
        });
        if let Some(b) = behavior.as_deref() {
            store_scale_event(state, b, current, min, now);
        }
        let n = Normalized {
            desired: min,
            able_reason: "ReadyForNewScale",
            limit_reason: "TooFewReplicas",
            limited: true,
        };
        return HpaOutcome::new(min, Some(n), ok);
    }
    let recommendation = match combined {
        Combined::Valid { replicas, index } => {
            if proposal_count > 1 {
                let trigger = policy
                    .triggers
                    .get(index)
                    .map_or_else(|| Arc::from(""), |t| t.name.clone());
                steps.push(Step::Combined {
                    trigger,
                    proposal: replicas,
                });
            }
            replicas
        }
        Combined::BlockedScaleDown { valid_max } => {
            steps.push(Step::InvalidBlocksScaleDown { valid_max, current });
            return HpaOutcome::new(current, None, (S::False, FAILED_GET_EXTERNAL_METRIC));
        }
        Combined::AllInvalid => {
            steps.push(Step::NoValidProposal { current });
            return HpaOutcome::new(current, None, (S::False, FAILED_GET_EXTERNAL_METRIC));
        }
    };
    let steps_before = steps.len();
    let n = match behavior.as_deref() {
        None => hpa::normalize_without_behavior(
            current,
            recommendation,
            min,
            max,
            DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS,
            &mut state.recommendations,
            now,
            steps,
        ),
        Some(b) => {
            let (up, down) = (b.resolve_up(), b.resolve_down());
            let args = BehaviorArgs {
                up: &up,
                down: &down,
                min,
                max,
                current,
                desired: recommendation,
                now,
            };
            let n = hpa::normalize_with_behavior(
                &args,
                &mut state.recommendations,
                &state.scale_up_events,
                &state.scale_down_events,
                steps,
            );
            // storeScaleEvent: only an HPA with behavior keeps events.
            store_scale_event(state, b, current, n.desired, now);
            n
        }
    };
    // The last line says what drove or limited the decision: a stabilization or limit line when
    // there is one (it states the result), else the plain change.
    if steps.len() == steps_before {
        steps.push(Step::WithinRange {
            desired: n.desired,
            current,
        });
    }
    HpaOutcome::new(n.desired, Some(n), ok)
}

/// HPA `storeScaleEvent` (only with a behavior): the change goes to its direction's list,
/// overwriting the last event older than that direction's longest policy period, else appended.
/// (An overwritten event no longer counts for the other direction's longer periods either.)
fn store_scale_event(
    state: &mut DecisionState,
    behavior: &Behavior,
    current: i32,
    desired: i32,
    now: Timestamp,
) {
    let (list, rules, magnitude) = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => (
            &mut state.scale_up_events,
            behavior.resolve_up(),
            desired - current,
        ),
        std::cmp::Ordering::Less => (
            &mut state.scale_down_events,
            behavior.resolve_down(),
            current - desired,
        ),
        std::cmp::Ordering::Equal => return,
    };
    let cutoff = now.add_secs(-i64::from(rules.longest_period_seconds()));
    let event = TimestampedReplicas::new(magnitude, now);
    match list.iter().rposition(|e| e.at < cutoff) {
        Some(i) => list[i] = event,
        None => list.push(event),
    }
}

/// The behavior the HPA runs with: KEDA's paused-scale-in/out annotations set that direction's
/// selectPolicy to Disabled (creating a behavior with defaults when there was none).
fn effective_behavior<'a>(policy: &'a ScalingPolicy, tick: &Tick) -> Option<Cow<'a, Behavior>> {
    let p = tick.pause;
    if !p.scale_in_paused && !p.scale_out_paused {
        return policy.behavior.as_ref().map(Cow::Borrowed);
    }
    let mut b = policy.behavior.clone().unwrap_or_default();
    if p.scale_out_paused {
        b.scale_up
            .get_or_insert_with(ScalingRules::default)
            .select_policy = SelectPolicy::Disabled;
    }
    if p.scale_in_paused {
        b.scale_down
            .get_or_insert_with(ScalingRules::default)
            .select_policy = SelectPolicy::Disabled;
    }
    Some(Cow::Owned(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyType, ScalingPolicyRule};
    use crate::testing::*;

    fn pods_per_minute(n: i32) -> ScalingRules {
        ScalingRules {
            stabilization_window_seconds: Some(0),
            policies: vec![ScalingPolicyRule {
                kind: PolicyType::Pods,
                value: n,
                period_seconds: 60,
            }],
            ..ScalingRules::default()
        }
    }

    #[test]
    fn a_jump_to_max_with_a_behavior_is_a_scale_event() {
        let p = policy()
            .min(1)
            .max(5)
            .trigger("q", 10.0)
            .scale_down(pods_per_minute(1));
        let mut state = DecisionState::default();
        let combined = Combined::Valid {
            replicas: 1,
            index: 0,
        };
        let r = hpa_path(&p, &at(8), combined, 1, &mut state, t(0), &mut Vec::new());
        assert_eq!(r.desired, 5);
        assert_eq!(state.scale_down_events, [TimestampedReplicas::new(3, t(0))]);
    }

    #[test]
    fn store_overwrites_the_last_event_older_than_the_directions_longest_period() {
        let b = Behavior {
            scale_up: None,
            scale_down: Some(pods_per_minute(1)),
        };
        let mut state = DecisionState {
            scale_down_events: vec![
                TimestampedReplicas::new(3, t(0)),
                TimestampedReplicas::new(2, t(10)),
                TimestampedReplicas::new(1, t(100)),
            ],
            ..DecisionState::default()
        };
        store_scale_event(&mut state, &b, 5, 4, t(110));
        assert_eq!(
            state.scale_down_events,
            [
                TimestampedReplicas::new(3, t(0)),
                TimestampedReplicas::new(1, t(110)),
                TimestampedReplicas::new(1, t(100)),
            ],
            "the slot at t=10 (the last one older than 60 s) is reused"
        );
        store_scale_event(&mut state, &b, 4, 4, t(120));
        assert_eq!(state.scale_down_events.len(), 3, "no change, no event");
    }

    #[test]
    fn invalid_metrics_hold_and_report_failed_get_external_metric() {
        let p = policy().min(1).max(5).trigger("q", 10.0);
        let r = hpa_path(
            &p,
            &at(3),
            Combined::AllInvalid,
            1,
            &mut DecisionState::default(),
            t(0),
            &mut Vec::new(),
        );
        assert_eq!(
            r,
            HpaOutcome::new(3, None, (S::False, FAILED_GET_EXTERNAL_METRIC))
        );
    }
}
