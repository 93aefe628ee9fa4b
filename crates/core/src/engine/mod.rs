//! One decision: KEDA's ScaledObject layer (pause, activation, 0 ↔ N, cooldown, idle, fallback,
//! scalingModifiers) on top of the HPA controller's rules (see `hpa`), as a pipeline of stages
//! with typed hand-offs:
//!
//! 1. [`pause`] — KEDA's pause annotations end the decision (KEDA stops the loop).
//! 2. [`observe`] — per trigger: the value (or last-known-good), the failure count, the
//!    fallback, activity and the HPA proposal ⇒ [`observe::Observed`].
//! 3. [`composite`] — scalingModifiers: the formula's composite metric replaces the triggers
//!    ⇒ [`composite::Composite`].
//! 4. [`keda`] — KEDA's executor: activation from zero/idle, at rest, scale-in after the
//!    cooldown ⇒ [`keda::KedaStep`]; what it leaves to the HPA goes to stage 5.
//! 5. [`reconcile`] — the HPA controller's reconcile between `max(min, 1)` and max.
//! 6. [`conditions`] — KEDA's and the HPA's conditions from what the stages found.

mod composite;
mod conditions;
mod keda;
mod observe;
mod pause;
mod reconcile;

use crate::decision::{Decision, Step};
use crate::error::Error;
use crate::formula::Formula;
use crate::hpa;
use crate::input::Tick;
use crate::policy::{
    DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, FallbackBehavior, MetricType, ScalingPolicy,
};
use crate::state::{DecisionState, TimestampedReplicas, prune};
use crate::time::{Timestamp, duration_millis};

/// Decides the replica count for one tick. Pure: the same inputs give the same decision, and
/// `now` is the only notion of time.
pub fn decide(
    policy: &ScalingPolicy,
    tick: &Tick,
    state: DecisionState,
    now: Timestamp,
) -> Result<Decision, Error> {
    let formula = policy.validate()?;
    validate_tick(policy, tick)?;
    Ok(decide_validated(policy, formula.as_ref(), tick, state, now))
}

fn validate_tick(policy: &ScalingPolicy, tick: &Tick) -> Result<(), Error> {
    let r = tick.replicas;
    for (field, v) in [
        ("replicas.spec", r.spec),
        ("replicas.status", r.status),
        ("replicas.ready", r.ready),
    ] {
        if v < 0 {
            return Err(Error::invalid(field, format!("must be >= 0, got {v}")));
        }
    }
    if let Some(p) = tick.pause.paused_replicas
        && p < 0
    {
        return Err(Error::invalid(
            "pause.paused_replicas",
            format!("must be >= 0, got {p}"),
        ));
    }
    if tick.observations.len() > policy.triggers.len() {
        return Err(Error::invalid(
            "observations",
            format!(
                "{} observations for {} triggers",
                tick.observations.len(),
                policy.triggers.len()
            ),
        ));
    }
    for (i, o) in tick.observations.iter().enumerate() {
        if policy.trigger_index(&o.trigger).is_none() {
            return Err(Error::invalid(
                format!("observations[{i}].trigger"),
                format!("no trigger named {:?} in the policy", o.trigger),
            ));
        }
        if tick.observations[..i]
            .iter()
            .any(|p| p.trigger == o.trigger)
        {
            return Err(Error::invalid(
                format!("observations[{i}].trigger"),
                format!("second observation for trigger {:?}", o.trigger),
            ));
        }
    }
    Ok(())
}

/// KEDA's view of the tick once the triggers (and the formula) are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Activity {
    /// KEDA's `isActive`: a trigger (or the composite) above its activation, or in fallback.
    active: bool,
    /// KEDA's `isError`: a trigger failed without a fallback, or (ours) the formula failed.
    failing: bool,
    /// Some trigger is in fallback (the Fallback condition).
    fallback_active: bool,
}

impl Activity {
    fn of(observed: &observe::Observed, composite: Option<&composite::Composite>) -> Self {
        match composite {
            None => Self {
                active: observed.any_active,
                failing: observed.any_failing,
                fallback_active: observed.any_fallback,
            },
            Some(c) => {
                let failing = observed.any_failing || c.error.is_some();
                Self {
                    // With scalingModifiers any error makes the scaled object inactive.
                    active: c.active && !failing,
                    failing,
                    fallback_active: observed.any_fallback,
                }
            }
        }
    }
}

pub(crate) fn decide_validated(
    policy: &ScalingPolicy,
    formula: Option<&Formula>,
    tick: &Tick,
    mut state: DecisionState,
    now: Timestamp,
) -> Decision {
    let mut steps: Vec<Step> = Vec::with_capacity(8);
    state.created_at.get_or_insert(now);
    // Whether the HPA has seen this target is read before pruning: recommendations that aged
    // out are gone, but the target was seen.
    let fresh = state.is_fresh();
    // Prune first: what is pruned cannot matter to this decision, and the freed slots take
    // this decision's entries without reallocating.
    prune_state(policy, &mut state, now);

    if tick.pause.paused || tick.pause.paused_replicas.is_some() {
        return pause::paused(policy, tick, state, steps);
    }
    record_initial_recommendation(&mut state, fresh, tick.replicas.spec, now);

    let observed = observe::observe(policy, formula.is_some(), tick, &mut state, now, &mut steps);
    let composite = formula
        .zip(policy.scaling_modifiers.as_ref())
        .map(|(f, m)| composite::evaluate(policy, f, m, tick, &observed, &mut steps));
    let activity = Activity::of(&observed, composite.as_ref());
    // computeReplicasForMetrics over the triggers (or the one composite metric).
    let current = tick.replicas.spec;
    let (combined, proposal_count) = match &composite {
        Some(c) => (hpa::combine(std::iter::once(c.proposal), current), 1),
        None => (
            hpa::combine(observed.outcomes.iter().map(|o| o.proposal), current),
            observed.outcomes.len(),
        ),
    };

    let keda = keda::apply(policy, tick, activity, &mut state, now, &mut steps);
    let (desired, hpa) = match keda.desired {
        Some(desired) => (desired, None),
        None => {
            let r = reconcile::hpa_path(
                policy,
                tick,
                combined,
                proposal_count,
                &mut state,
                now,
                &mut steps,
            );
            (r.desired, Some(r))
        }
    };
    let conditions = conditions::build(&conditions::Inputs {
        policy,
        tick,
        activity,
        keda: &keda,
        hpa: hpa.as_ref(),
        outcomes: &observed.outcomes,
        formula_error: composite.as_ref().and_then(|c| c.error.as_deref()),
    });
    Decision {
        desired_replicas: desired,
        active: activity.active,
        fallback_active: activity.fallback_active,
        conditions,
        state,
        explanation: steps,
        triggers: observed.outcomes,
    }
}

/// HPA `recordInitialRecommendation`: once per target, on its first pass (whatever branch the
/// pass then takes), the current replicas count as a recommendation made now, so a new or
/// restarted controller never scales down at once. Never again after that: a recommendation
/// that aged out of the window simply stops counting.
fn record_initial_recommendation(
    state: &mut DecisionState,
    fresh: bool,
    current: i32,
    now: Timestamp,
) {
    if fresh {
        state
            .recommendations
            .push(TimestampedReplicas::new(current, now));
    }
    state.initialized = true;
}

/// HPA `GetExternalMetricReplicas`: a Value target with replicas wanted errors when the
/// target's selector matches no pod at all (status replicas 0 stands for that here).
fn no_pods(metric_type: MetricType, replicas: crate::input::Replicas) -> bool {
    metric_type == MetricType::Value && replicas.spec > 0 && replicas.status == 0
}

/// What a failing trigger proposes once past the threshold. `static` is exactly
/// `fallback.replicas` (no tolerance band, unlike KEDA's synthetic metric).
fn fallback_proposal(policy: &ScalingPolicy, current: i32) -> (FallbackBehavior, i32) {
    let fb = policy
        .fallback
        .as_ref()
        .map_or((FallbackBehavior::Static, 0), |f| (f.behavior, f.replicas));
    let p = match fb.0 {
        // ScalingModifiers only reaches here for a formula's nil result: fallback.replicas.
        FallbackBehavior::Static | FallbackBehavior::ScalingModifiers => fb.1,
        FallbackBehavior::CurrentReplicas => current,
        FallbackBehavior::CurrentReplicasIfHigher => current.max(fb.1),
        FallbackBehavior::CurrentReplicasIfLower => current.min(fb.1),
    };
    (fb.0, p)
}

/// How far back (seconds) the histories reach: recommendations to the longest stabilization
/// window (300 s without behavior), scale events to the longest policy period, at least 15 s
/// (events only matter to rate policies, and pause annotations may add default ones: 15 s).
pub(crate) fn history_horizons(policy: &ScalingPolicy) -> (i32, i32) {
    let (window, period) = match &policy.behavior {
        None => (DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, 0),
        Some(b) => {
            let (up, down) = (b.resolve_up(), b.resolve_down());
            (
                up.stabilization_window_seconds
                    .max(down.stabilization_window_seconds),
                up.longest_period_seconds()
                    .max(down.longest_period_seconds()),
            )
        }
    };
    (window, period.max(15))
}

/// Keeps the state bounded: histories to the longest window/period that can read them,
/// per-trigger maps to the policy's triggers, last good values to their TTL.
fn prune_state(policy: &ScalingPolicy, state: &mut DecisionState, now: Timestamp) {
    let (window, period) = history_horizons(policy);
    // Entries exactly at the no-behavior cutoff still count (HPA keeps them), hence the -1 ms.
    prune(
        &mut state.recommendations,
        now.add_secs(-i64::from(window))
            .minus(std::time::Duration::from_millis(1)),
    );
    prune(&mut state.scale_up_events, now.add_secs(-i64::from(period)));
    prune(
        &mut state.scale_down_events,
        now.add_secs(-i64::from(period)),
    );
    state
        .consecutive_failures
        .retain(|k, _| policy.trigger_index(k).is_some());
    let ttl_ms = policy.last_known_good_ttl.map_or(0, duration_millis);
    state.last_good_values.retain(|k, v| {
        ttl_ms > 0 && now.millis_since(v.at) <= ttl_ms && policy.trigger_index(k).is_some()
    });
}
