//! Stage 4: KEDA's executor (`RequestScale`). KEDA owns 0 ↔ N: activation from zero/idle, the
//! target at rest, and the scale-in to idle/zero once the cooldown has passed; what it leaves
//! alone is the HPA's (stage 5).

use crate::decision::{Direction, Step};
use crate::input::Tick;
use crate::policy::ScalingPolicy;
use crate::state::DecisionState;
use crate::time::Timestamp;

use super::Activity;

/// What KEDA's layer did this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KedaStep {
    /// The replicas KEDA decided; `None` = the HPA decides.
    pub(super) desired: Option<i32>,
    /// Active while at zero (or below min at idle): KEDA activates the target.
    pub(super) activating: bool,
    /// Inactive at zero/idle: the HPA is disabled (`ScalingActive=False ScalingDisabled`).
    pub(super) at_rest: bool,
    /// A scale-in to idle/zero waits for the cooldown (`Active=False ScalerCooldown`).
    pub(super) cooling_down: bool,
}

pub(super) fn apply(
    policy: &ScalingPolicy,
    tick: &Tick,
    activity: Activity,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> KedaStep {
    let current = tick.replicas.spec;
    let (idle, min, pause) = (policy.idle_replicas, policy.min_replicas, tick.pause);
    let Activity {
        active, failing, ..
    } = activity;
    let activating = active && (current == 0 || (idle.is_some() && current < min));
    // KEDA refreshes lastActiveTime when active, except while some trigger fails (Ready is then
    // PartialTriggerError) unless this tick activates the target from zero/idle.
    if active && (!failing || (activating && !pause.scale_out_paused)) {
        state.last_active_time = Some(now);
    }
    let mut step = KedaStep {
        desired: None,
        activating,
        at_rest: false,
        cooling_down: false,
    };
    if activating {
        // KEDA scaleFromZeroOrIdle: to minReplicaCount, or 1 when it is 0.
        step.desired = Some(if pause.scale_out_paused {
            steps.push(Step::DirectionPaused {
                direction: Direction::Up,
            });
            current
        } else {
            let to = min.max(1).min(policy.max_replicas);
            steps.push(Step::ScaleFromZero { to });
            to
        });
    } else if !active && (current == 0 || idle.is_some_and(|i| current <= i)) {
        step.at_rest = true;
        step.desired = Some(
            if idle.is_none() && current < min && !pause.scale_out_paused {
                steps.push(Step::RaiseToMin { to: min });
                min
            } else {
                steps.push(Step::AtRest { current });
                current
            },
        );
    } else if !active && (idle.is_some() || min == 0) {
        step.desired = scale_in(
            policy,
            tick,
            failing,
            state,
            now,
            steps,
            &mut step.cooling_down,
        );
    }
    step
}

/// KEDA `scaleToZeroOrIdle` for an inactive target above idle/zero: blocked by a failure (ours,
/// KEDA #4249) or paused-scale-in; allowed once `lastActiveTime + cooldownPeriod < now` (or,
/// never active, `createdAt + initialCooldownPeriod < now`). `None` = the HPA decides meanwhile.
fn scale_in(
    policy: &ScalingPolicy,
    tick: &Tick,
    failing: bool,
    state: &DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
    cooling_down: &mut bool,
) -> Option<i32> {
    let idle = policy.idle_replicas;
    if failing {
        // KEDA #4249: an error must not read as "inactive" and scale to zero.
        steps.push(Step::FailureBlocksScaleIn);
        return None;
    }
    if tick.pause.scale_in_paused {
        steps.push(Step::DirectionPaused {
            direction: Direction::Down,
        });
        return None;
    }
    let (deadline, initial) = match state.last_active_time {
        Some(t) => (t.plus(policy.cooldown_period), false),
        None => (
            state
                .created_at
                .unwrap_or(now)
                .plus(policy.initial_cooldown_period),
            true,
        ),
    };
    // Never active and no initialCooldownPeriod: KEDA compares the object's creation (always in
    // the past) with now, so it scales in at once; so do we, although our created_at may be this
    // very tick.
    if deadline < now || (initial && policy.initial_cooldown_period.is_zero()) {
        let to = idle.unwrap_or(policy.min_replicas);
        steps.push(Step::ScaleToIdle {
            to,
            idle: idle.is_some(),
        });
        return Some(to);
    }
    *cooling_down = true;
    steps.push(Step::CoolingDown {
        remaining_ms: deadline.millis_since(now),
        initial,
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn activity(active: bool, failing: bool) -> Activity {
        Activity {
            active,
            failing,
            fallback_active: false,
        }
    }

    fn apply_at(
        p: &ScalingPolicy,
        current: i32,
        a: Activity,
        state: &mut DecisionState,
        secs: i64,
    ) -> KedaStep {
        apply(p, &at(current), a, state, t(secs), &mut Vec::new())
    }

    #[test]
    fn activation_from_zero_goes_to_max_min_1_and_refreshes_last_active_even_with_errors() {
        let p = policy().min(0).max(5);
        let mut state = DecisionState::default();
        let s = apply_at(&p, 0, activity(true, true), &mut state, 10);
        assert_eq!((s.desired, s.activating), (Some(1), true));
        assert_eq!(state.last_active_time, Some(t(10)));
    }

    #[test]
    fn active_with_a_failing_trigger_leaves_last_active_and_the_hpa_decides() {
        let p = policy().min(1).max(5);
        let mut state = DecisionState::default();
        let s = apply_at(&p, 3, activity(true, true), &mut state, 10);
        assert_eq!(s.desired, None);
        assert_eq!(state.last_active_time, None);
    }

    #[test]
    fn scale_in_waits_for_the_cooldown_strictly() {
        let p = policy().min(0).max(5).cooldown(60);
        let mut state = DecisionState {
            last_active_time: Some(t(0)),
            ..DecisionState::default()
        };
        let s = apply_at(&p, 3, activity(false, false), &mut state, 60);
        assert_eq!(
            (s.desired, s.cooling_down),
            (None, true),
            "60 s is not past 0 + 60 s"
        );
        let s = apply_at(&p, 3, activity(false, false), &mut state, 61);
        assert_eq!((s.desired, s.cooling_down), (Some(0), false));
    }

    #[test]
    fn at_rest_below_min_without_idle_is_raised_to_min() {
        let p = policy().min(2).max(5);
        let s = apply_at(
            &p,
            0,
            activity(false, false),
            &mut DecisionState::default(),
            0,
        );
        assert_eq!((s.desired, s.at_rest), (Some(2), true));
    }
}
