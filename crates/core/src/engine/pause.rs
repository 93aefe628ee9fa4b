//! Stage 1: KEDA's pause annotations. The scale loop stops and KEDA deletes the HPA, so the
//! HPA's histories go with it; on unpause a new HPA starts fresh (its first pass records the
//! current replicas). Cooldown times and failure counts are kept.

use crate::decision::{Decision, Step, TriggerOutcome};
use crate::input::Tick;
use crate::policy::ScalingPolicy;
use crate::state::DecisionState;

use super::conditions;

/// The decision while `paused` or `paused-replicas` is set: `paused-replicas` exactly (KEDA
/// scales to it, unclamped), else the current replicas.
pub(super) fn paused(
    policy: &ScalingPolicy,
    tick: &Tick,
    mut state: DecisionState,
    mut steps: Vec<Step>,
) -> Decision {
    state.recommendations.clear();
    state.scale_up_events.clear();
    state.scale_down_events.clear();
    state.initialized = false;
    let desired = match tick.pause.paused_replicas {
        Some(n) => {
            steps.push(Step::PausedAt { replicas: n });
            n
        }
        None => {
            steps.push(Step::Paused {
                replicas: tick.replicas.spec,
            });
            tick.replicas.spec
        }
    };
    let triggers = policy
        .triggers
        .iter()
        .map(|t| TriggerOutcome {
            name: t.name.clone(),
            consecutive_failures: state
                .consecutive_failures
                .get(&*t.name)
                .copied()
                .unwrap_or(0),
            ..TriggerOutcome::default()
        })
        .collect();
    Decision {
        desired_replicas: desired,
        active: false,
        fallback_active: false,
        conditions: conditions::paused(),
        state,
        explanation: steps,
        triggers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{ConditionStatus, ConditionType};
    use crate::input::Pause;
    use crate::state::TimestampedReplicas;
    use crate::testing::*;

    #[test]
    fn pausing_drops_the_hpa_histories_and_keeps_failure_counts() {
        let p = policy().min(1).max(5).trigger("q", 50.0);
        let mut tick = at(3).value("q", 10.0);
        tick.pause = Pause {
            paused_replicas: Some(7),
            ..Pause::default()
        };
        let mut state = DecisionState {
            recommendations: vec![TimestampedReplicas::new(3, t(0))],
            scale_up_events: vec![TimestampedReplicas::new(1, t(0))],
            initialized: true,
            ..DecisionState::default()
        };
        state.consecutive_failures.insert("q".into(), 2);
        let d = paused(&p, &tick, state, Vec::new());
        assert_eq!(
            d.desired_replicas, 7,
            "paused-replicas is not clamped to max"
        );
        assert!(d.state.recommendations.is_empty() && d.state.scale_up_events.is_empty());
        assert!(d.state.is_fresh());
        assert_eq!(d.triggers[0].consecutive_failures, 2);
        let paused = d.condition(ConditionType::Paused).unwrap();
        assert_eq!(
            (paused.status, paused.reason),
            (ConditionStatus::True, "ScaledObjectPaused")
        );
    }
}
