//! One decision: KEDA's ScaledObject layer (pause, activation, 0 ↔ N, cooldown, idle, fallback,
//! scalingModifiers) on top of the HPA controller's rules (see `hpa`).

use std::borrow::Cow;
use std::sync::Arc;

use crate::decision::{
    Condition, ConditionStatus as S, ConditionType as T, Decision, Direction, Step, TriggerOutcome,
};
use crate::error::Error;
use crate::formula::Formula;
use crate::hpa::{self, BehaviorArgs, Combined, Normalized};
use crate::input::{QueryErrorKind, QueryFailure, Tick};
use crate::policy::{
    Behavior, DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, FallbackBehavior, MetricType,
    ScalingPolicy, ScalingRules, SelectPolicy,
};
use crate::state::{DecisionState, TimestampedValue, prune};
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

pub(crate) fn decide_validated(
    policy: &ScalingPolicy,
    formula: Option<&Formula>,
    tick: &Tick,
    mut state: DecisionState,
    now: Timestamp,
) -> Decision {
    let current = tick.replicas.spec;
    let mut steps: Vec<Step> = Vec::with_capacity(8);
    state.created_at.get_or_insert(now);
    // Whether the HPA has seen this target is read before pruning: recommendations that aged
    // out are gone, but the target was seen.
    let fresh = state.is_fresh();
    // Prune first: what is pruned cannot matter to this decision, and the freed slots take
    // this decision's entries without reallocating.
    prune_state(policy, &mut state, now);

    // KEDA pause: the scale loop stops and KEDA deletes the HPA, so the HPA's histories go with
    // it; on unpause a new HPA starts fresh (its first pass records the current replicas).
    if tick.pause.paused_replicas.is_some() || tick.pause.paused {
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
                steps.push(Step::Paused { replicas: current });
                current
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
        let conditions = vec![
            cond(
                T::Ready,
                S::True,
                "ScaledObjectReady",
                "ScaledObject is defined correctly and is ready for scaling",
            ),
            // KEDA leaves Active as it was while paused; we do not evaluate triggers, hence Unknown.
            cond(
                T::Active,
                S::Unknown,
                "ScaledObjectPaused",
                "triggers are not evaluated while paused",
            ),
            cond(
                T::Fallback,
                S::False,
                "NoFallbackFound",
                "No fallbacks are active on this scaled object",
            ),
            cond(
                T::Paused,
                S::True,
                "ScaledObjectPaused",
                "ScaledObject is paused",
            ),
            cond(
                T::AbleToScale,
                S::True,
                "ReadyForNewScale",
                "recommended size matches current size",
            ),
            cond(
                T::ScalingActive,
                S::False,
                "ScalingDisabled",
                "scaling is paused",
            ),
            cond(
                T::ScalingLimited,
                S::False,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            ),
        ];
        return Decision {
            desired_replicas: desired,
            active: false,
            fallback_active: false,
            conditions,
            state,
            explanation: steps,
            triggers,
        };
    }

    // HPA `recordInitialRecommendation`: once per target, on its first pass (whatever branch
    // the pass then takes), the current replicas count as a recommendation made now, so a new or
    // restarted controller never scales down at once. Never again after that: a recommendation
    // that aged out of the window simply stops counting.
    if fresh {
        state
            .recommendations
            .push(crate::state::TimestampedReplicas::new(current, now));
    }
    state.initialized = true;

    let tolerances = policy.tolerances();
    let ttl_ms = policy.last_known_good_ttl.map_or(0, duration_millis);
    let threshold = policy.fallback.as_ref().map(|f| f.failure_threshold);
    let mut outcomes: Vec<TriggerOutcome> = Vec::with_capacity(policy.triggers.len());
    // Aggregates over the triggers (no per-trigger scratch allocation: this is the hot path).
    let (mut any_active, mut any_failing, mut any_fallback) = (false, false, false);

    for trigger in &policy.triggers {
        let observed = tick
            .observations
            .iter()
            .find(|o| *o.trigger == *trigger.name);
        let result: Result<f64, QueryFailure> = match observed.map(|o| &o.result) {
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
        };
        let failures = match state.consecutive_failures.get_mut(&*trigger.name) {
            Some(n) => n,
            None => state
                .consecutive_failures
                .entry(trigger.name.to_string())
                .or_insert(0),
        };
        let (value, stale, error) = match result {
            Ok(v) => {
                *failures = 0;
                if ttl_ms > 0 {
                    match state.last_good_values.get_mut(&*trigger.name) {
                        Some(lg) => *lg = TimestampedValue { value: v, at: now },
                        None => {
                            state.last_good_values.insert(
                                trigger.name.to_string(),
                                TimestampedValue { value: v, at: now },
                            );
                        }
                    }
                }
                (Some(v), false, None)
            }
            Err(e) => {
                *failures = (*failures).max(0).saturating_add(1);
                let lkg = state
                    .last_good_values
                    .get(&*trigger.name)
                    .filter(|lg| ttl_ms > 0 && now.millis_since(lg.at) <= ttl_ms && now >= lg.at);
                let failures = *failures;
                steps.push(Step::Failed {
                    trigger: trigger.name.clone(),
                    error: e.to_string(),
                    failures,
                    threshold,
                });
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
        };
        let failures = state
            .consecutive_failures
            .get(&*trigger.name)
            .copied()
            .unwrap_or(0);
        // KEDA ≥ 2.19: a trigger in fallback is not an error and counts as active (so a target
        // at zero is activated during an outage and the HPA brings it to the fallback count).
        let failing = value.is_none();
        let fallback_applies = failing && threshold.is_some_and(|t| failures > t);
        let active = value.is_some_and(|v| v > trigger.activation_target) || fallback_applies;
        let (proposal, fallback) = if formula.is_some() {
            (None, false)
        } else if value.is_some() && no_pods(trigger.metric_type, tick.replicas) {
            steps.push(Step::NoPods {
                trigger: trigger.name.clone(),
            });
            (None, false)
        } else if let Some(v) = value {
            let p = hpa::propose(
                trigger.metric_type,
                hpa::milli_rounded(v),
                hpa::milli_rounded(trigger.target),
                tick.replicas,
                tolerances,
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
        } else if fallback_applies {
            let (b, p) = fallback_proposal(policy, current);
            steps.push(Step::Fallback {
                trigger: trigger.name.clone(),
                behavior: b,
                proposal: p,
            });
            (Some(p), true)
        } else {
            (None, false)
        };
        outcomes.push(TriggerOutcome {
            name: trigger.name.clone(),
            value,
            proposal,
            active,
            error,
            stale,
            fallback,
            consecutive_failures: failures,
        });
        any_active |= active;
        any_failing |= failing && !fallback_applies;
        any_fallback |= fallback_applies;
    }

    // scalingModifiers: one composite metric replaces the triggers (KEDA modifiers). While a
    // trigger is in fallback, the fallback replaces the formula's result.
    let mut composite: Option<Option<i32>> = None;
    let mut composite_active = false;
    let mut formula_error: Option<String> = None;
    let nil_in_formula = policy
        .fallback
        .as_ref()
        .is_some_and(|fb| fb.behavior == FallbackBehavior::ScalingModifiers);
    if let (Some(f), Some(m)) = (formula, policy.scaling_modifiers.as_ref()) {
        // With `fallback.behavior: scalingModifiers` a trigger in fallback is nil in the
        // formula (its outcome has no value), and the formula decides.
        if any_fallback && !nil_in_formula {
            let (b, p) = fallback_proposal(policy, current);
            steps.push(Step::Fallback {
                trigger: "formula".into(),
                behavior: b,
                proposal: p,
            });
            // KEDA's composite is then `target × replicas`, active when above activationTarget.
            composite_active = f64::from(p) * m.target > m.activation_target;
            composite = Some(Some(p));
        } else {
            let values: Vec<Option<f64>> = outcomes.iter().map(|o| o.value).collect();
            match f.eval(&values) {
                // KEDA: a nil result (only possible through `??`) is `fallback.replicas ×
                // target`, i.e. the fallback's replicas; an error when no fallback is set.
                Ok(None) if policy.fallback.is_some() => {
                    let p = policy.fallback.as_ref().map_or(0, |fb| fb.replicas);
                    steps.push(Step::Fallback {
                        trigger: "formula".into(),
                        behavior: FallbackBehavior::Static,
                        proposal: p,
                    });
                    composite_active = f64::from(p) * m.target > m.activation_target;
                    composite = Some(Some(p));
                }
                Ok(None) => {
                    let error = "the formula evaluated to nil and no fallback is configured; \
                                 add spec.fallback or end the formula with `?? <number>`"
                        .to_owned();
                    formula_error = Some(error.clone());
                    steps.push(Step::FormulaFailed { error });
                    composite = Some(None);
                }
                Ok(Some(_)) if no_pods(m.metric_type, tick.replicas) => {
                    steps.push(Step::NoPods {
                        trigger: "formula".into(),
                    });
                    composite = Some(None);
                }
                Ok(Some(v)) => {
                    let p = hpa::propose(
                        m.metric_type,
                        hpa::milli_truncated(v),
                        hpa::milli_truncated(m.target),
                        tick.replicas,
                        tolerances,
                    );
                    composite_active = v > m.activation_target;
                    steps.push(Step::Proposal {
                        trigger: "formula".into(),
                        value: v,
                        target: m.target,
                        metric_type: m.metric_type,
                        pods: p.pods,
                        proposal: p.replicas,
                        within_tolerance: p.within_tolerance,
                        stale: false,
                        active: composite_active,
                    });
                    composite = Some(Some(p.replicas));
                }
                Err(error) => {
                    formula_error = Some(error.clone());
                    steps.push(Step::FormulaFailed { error });
                    composite = Some(None);
                    // Deliberate difference (docs/semantics.md §6): KEDA reads a formula that
                    // cannot be evaluated as "inactive, no error" and may scale to zero; we
                    // count it as a failure, so missing data never scales in.
                }
            }
        }
    }

    // KEDA's isError: a trigger failed without a fallback, or (ours) the formula failed.
    let failing = any_failing || formula_error.is_some();
    // KEDA's isActive; with scalingModifiers any error makes the scaled object inactive.
    let active = if formula.is_some() {
        composite_active && !failing
    } else {
        any_active
    };
    let fallback_active = any_fallback;
    // computeReplicasForMetrics over the triggers (or the one composite metric).
    let (combined, proposal_count) = match composite {
        Some(c) => (hpa::combine(std::iter::once(c), current), 1),
        None => (
            hpa::combine(outcomes.iter().map(|o| o.proposal), current),
            outcomes.len(),
        ),
    };

    let mut hpa_conditions: Option<Normalized> = None;
    let mut scaling_active = (S::True, "ValidMetricFound");
    let idle = policy.idle_replicas;
    let min = policy.min_replicas;
    let at_rest = current == 0 || idle.is_some_and(|i| current <= i);
    let pause = tick.pause;
    let mut cooling_down = false;
    let activating = active && (current == 0 || (idle.is_some() && current < min));
    // KEDA refreshes lastActiveTime when active, except while some trigger fails (Ready is then
    // PartialTriggerError) unless this tick activates the target from zero/idle.
    if active && (!failing || (activating && !pause.scale_out_paused)) {
        state.last_active_time = Some(now);
    }

    let desired = if activating {
        // KEDA scaleFromZeroOrIdle: to minReplicaCount, or 1 when it is 0.
        if pause.scale_out_paused {
            steps.push(Step::DirectionPaused {
                direction: Direction::Up,
            });
            current
        } else {
            let to = min.max(1).min(policy.max_replicas);
            steps.push(Step::ScaleFromZero { to });
            to
        }
    } else if !active && at_rest {
        scaling_active = (S::False, "ScalingDisabled");
        if idle.is_none() && current < min && !pause.scale_out_paused {
            steps.push(Step::RaiseToMin { to: min });
            min
        } else {
            steps.push(Step::AtRest { current });
            current
        }
    } else {
        let mut scale_in = None;
        if !active && (idle.is_some() || min == 0) {
            if failing {
                // KEDA #4249: an error must not read as "inactive" and scale to zero.
                steps.push(Step::FailureBlocksScaleIn);
            } else if pause.scale_in_paused {
                steps.push(Step::DirectionPaused {
                    direction: Direction::Down,
                });
            } else {
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
                // Never active and no initialCooldownPeriod: KEDA compares the object's creation
                // (always in the past) with now, so it scales in at once; so do we, although our
                // created_at may be this very tick.
                let never_active_without_initial_cooldown =
                    initial && policy.initial_cooldown_period.is_zero();
                if deadline < now || never_active_without_initial_cooldown {
                    scale_in = Some(idle.unwrap_or(min));
                    steps.push(Step::ScaleToIdle {
                        to: idle.unwrap_or(min),
                        idle: idle.is_some(),
                    });
                } else {
                    cooling_down = true;
                    steps.push(Step::CoolingDown {
                        remaining_ms: deadline.millis_since(now),
                        initial,
                    });
                }
            }
        }
        match scale_in {
            Some(to) => to,
            None => {
                let (d, n, sa) = hpa_path(
                    policy,
                    tick,
                    combined,
                    proposal_count,
                    &mut state,
                    now,
                    &mut steps,
                );
                hpa_conditions = n;
                scaling_active = sa;
                d
            }
        }
    };

    let mut conditions = Vec::with_capacity(7);
    // KEDA executor: Ready is PartialTriggerError (Unknown) when active with a failing trigger
    // (unless activating from zero/idle), TriggerError (False) when inactive with a failing
    // trigger and no fallback configured; otherwise ScaledObjectReady.
    conditions.push(if failing && active && !activating {
        Condition {
            kind: T::Ready,
            status: S::Unknown,
            reason: "PartialTriggerError",
            message: Cow::Owned(failing_message(
                "Some triggers defined in ScaledObject are not working correctly",
                &outcomes,
                formula_error.as_deref(),
            )),
        }
    } else if failing && !active && policy.fallback.is_none() {
        Condition {
            kind: T::Ready,
            status: S::False,
            reason: "TriggerError",
            message: Cow::Owned(failing_message(
                "Triggers defined in ScaledObject are not working correctly",
                &outcomes,
                formula_error.as_deref(),
            )),
        }
    } else {
        cond(
            T::Ready,
            S::True,
            "ScaledObjectReady",
            "ScaledObject is defined correctly and is ready for scaling",
        )
    });
    conditions.push(if active {
        cond(
            T::Active,
            S::True,
            "ScalerActive",
            "Scaling is performed because triggers are active",
        )
    } else if cooling_down {
        cond(
            T::Active,
            S::False,
            "ScalerCooldown",
            "Scaler cooling down because triggers are not active",
        )
    } else {
        cond(
            T::Active,
            S::False,
            "ScalerNotActive",
            "Scaling is not performed because triggers are not active",
        )
    });
    conditions.push(if fallback_active {
        cond(
            T::Fallback,
            S::True,
            "FallbackExists",
            "At least one trigger is falling back on this scaled object",
        )
    } else {
        cond(
            T::Fallback,
            S::False,
            "NoFallbackFound",
            "No fallbacks are active on this scaled object",
        )
    });
    conditions.push(if pause.scale_in_paused || pause.scale_out_paused {
        // KEDA sets Paused=True for paused-scale-in/out too.
        cond(
            T::Paused,
            S::True,
            "ScaledObjectPaused",
            "ScaledObject is paused",
        )
    } else {
        cond(
            T::Paused,
            S::False,
            "ScaledObjectUnpaused",
            "ScaledObject is not paused",
        )
    });
    let (able, limited, limit_reason) = match &hpa_conditions {
        Some(n) => (n.able_reason, n.limited, n.limit_reason),
        None => ("ReadyForNewScale", false, "DesiredWithinRange"),
    };
    conditions.push(cond(T::AbleToScale, S::True, able, able_message(able)));
    conditions.push(cond(
        T::ScalingActive,
        scaling_active.0,
        scaling_active.1,
        scaling_active_message(scaling_active.1),
    ));
    conditions.push(cond(
        T::ScalingLimited,
        S::from_bool(limited),
        limit_reason,
        limit_message(limit_reason),
    ));

    Decision {
        desired_replicas: desired,
        active,
        fallback_active,
        conditions,
        state,
        explanation: steps,
        triggers: outcomes,
    }
}

/// The HPA controller's reconcile for a target with replicas (minReplicas = max(min, 1), as
/// KEDA configures the HPA it owns).
fn hpa_path(
    policy: &ScalingPolicy,
    tick: &Tick,
    combined: Combined,
    proposal_count: usize,
    state: &mut DecisionState,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> (i32, Option<Normalized>, (S, &'static str)) {
    let current = tick.replicas.spec;
    let min = policy.min_replicas.max(1);
    let max = policy.max_replicas;
    let ok = (S::True, "ValidMetricFound");
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
        return (max, Some(n), ok);
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
        return (min, Some(n), ok);
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
            return (current, None, (S::False, "FailedGetExternalMetric"));
        }
        Combined::AllInvalid => {
            steps.push(Step::NoValidProposal { current });
            return (current, None, (S::False, "FailedGetExternalMetric"));
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
    (n.desired, Some(n), ok)
}

/// HPA `GetExternalMetricReplicas`: a Value target with replicas wanted errors when the
/// target's selector matches no pod at all (status replicas 0 stands for that here).
fn no_pods(metric_type: MetricType, replicas: crate::input::Replicas) -> bool {
    metric_type == MetricType::Value && replicas.spec > 0 && replicas.status == 0
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
    let event = crate::state::TimestampedReplicas::new(magnitude, now);
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

/// Longest error text of one trigger quoted in the Ready condition.
const MAX_ERROR_IN_CONDITION: usize = 300;

/// KEDA's Ready message (`headline`), followed by what each failing trigger (and the formula)
/// reported, so the user reads in `kubectl describe` what to fix (e.g. "wrap it in sum(...)").
fn failing_message(
    headline: &str,
    outcomes: &[TriggerOutcome],
    formula_error: Option<&str>,
) -> String {
    let mut message = String::from(headline);
    let failures = outcomes
        .iter()
        .filter(|o| o.value.is_none() && !o.fallback)
        .filter_map(|o| Some((&*o.name, o.error.as_ref()?.to_string())))
        .chain(formula_error.map(|e| ("formula", e.to_owned())));
    let mut first = true;
    for (name, text) in failures {
        message.push_str(if first { ": " } else { "; " });
        first = false;
        message.push_str(name);
        message.push_str(": ");
        match text.char_indices().nth(MAX_ERROR_IN_CONDITION) {
            Some((cut, _)) => {
                message.push_str(&text[..cut]);
                message.push('…');
            }
            None => message.push_str(&text),
        }
    }
    message
}

fn cond(kind: T, status: S, reason: &'static str, message: &'static str) -> Condition {
    Condition {
        kind,
        status,
        reason,
        message: Cow::Borrowed(message),
    }
}

fn able_message(reason: &str) -> &'static str {
    match reason {
        "ScaleUpStabilized" => {
            "recent recommendations were lower than current one, applying the lowest recent recommendation"
        }
        "ScaleDownStabilized" => {
            "recent recommendations were higher than current one, applying the highest recent recommendation"
        }
        _ => "recommended size matches current size",
    }
}

fn scaling_active_message(reason: &str) -> &'static str {
    match reason {
        "ScalingDisabled" => "scaling is disabled since the replica count of the target is zero",
        "FailedGetExternalMetric" => {
            "the HPA was unable to compute the replica count: a trigger failed"
        }
        _ => "the HPA was able to successfully calculate a replica count",
    }
}

fn limit_message(reason: &str) -> &'static str {
    match reason {
        "ScaleUpLimit" => {
            "the desired replica count is increasing faster than the maximum scale rate"
        }
        "ScaleDownLimit" => {
            "the desired replica count is decreasing faster than the maximum scale rate"
        }
        "TooManyReplicas" => "the desired replica count is more than the maximum replica count",
        "TooFewReplicas" => "the desired replica count is less than the minimum replica count",
        _ => "the desired count is within the acceptable range",
    }
}
