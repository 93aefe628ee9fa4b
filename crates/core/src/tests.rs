//! Decision scenarios: the seed's acceptance example, the KEDA layer, where KEDA is wrong,
//! explanations, conditions, bounded state and Simulate.

use crate::decision::{ConditionStatus, ConditionType, Step};
use crate::input::{Observation, Pause, QueryErrorKind, Replicas};
use crate::policy::{FallbackBehavior as Fb, ScalingPolicyRule as R, SelectPolicy};
use crate::state::{DecisionState, MAX_HISTORY, TimestampedReplicas};
use crate::testing::*;
use crate::{Error, Simulation, SimulationStep, decide, simulate};

fn seed_policy() -> crate::ScalingPolicy {
    policy().min(0).max(5).trigger("connections", 50.0)
}

#[test]
fn seed_example_two_replicas_at_140_over_50_want_three() {
    let d = run(
        &seed_policy(),
        &at(2).value("connections", 140.0),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 3);
    assert!(d.active);
    assert_eq!(
        d.explanation_lines()[0],
        "trigger connections: 140 / 50 ⇒ 3"
    );
}

#[test]
fn seed_example_scales_to_zero_only_after_the_300s_default_cooldown() {
    let mut s = Scenario::new(seed_policy(), 1);
    assert_eq!(
        s.tick(0, at(0).value("connections", 10.0)).desired_replicas,
        1
    );
    for secs in [30, 150, 299, 300] {
        let d = s.tick(secs, at(0).value("connections", 0.0));
        assert_eq!(d.desired_replicas, 1, "still cooling down at {secs}s");
        assert!(!d.active);
    }
    let d = s.tick(301, at(0).value("connections", 0.0));
    assert_eq!(d.desired_replicas, 0);
    assert_eq!(
        d.reason(),
        "inactive past the cooldown: scale to 0 (minReplicaCount)"
    );
}

#[test]
fn activation_is_strictly_greater_than_the_threshold() {
    let p = policy().max(5).trigger("q", 10.0).activation(5.0);
    let d = run(&p, &at(0).value("q", 5.0), DecisionState::default(), t(0));
    assert!(!d.active);
    assert_eq!(d.desired_replicas, 0);
    let d = run(&p, &at(0).value("q", 5.01), DecisionState::default(), t(0));
    assert!(d.active);
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn scale_from_zero_goes_to_min_or_one() {
    // (min, max, expected)
    for (min, max, want) in [(0, 5, 1), (3, 5, 3)] {
        let p = policy().min(min).max(max).trigger("q", 10.0);
        let d = run(&p, &at(0).value("q", 500.0), DecisionState::default(), t(0));
        assert_eq!(d.desired_replicas, want, "min {min}");
        assert_eq!(
            d.explanation.last(),
            Some(&Step::ScaleFromZero { to: want })
        );
    }
}

#[test]
fn scale_from_idle_goes_to_min_and_back_to_idle_after_cooldown() {
    let p = policy()
        .idle(0)
        .min(2)
        .max(6)
        .cooldown(60)
        .trigger("q", 10.0)
        .activation(1.0);
    let mut s = Scenario::new(p, 0);
    assert_eq!(s.tick(0, at(0).value("q", 5.0)).desired_replicas, 2);
    assert_eq!(s.tick(30, at(0).value("q", 0.0)).desired_replicas, 2);
    assert_eq!(s.tick(61, at(0).value("q", 0.0)).desired_replicas, 0);
    let d = s.tick(90, at(0).value("q", 0.0));
    assert_eq!(d.desired_replicas, 0);
    assert_eq!(d.explanation.last(), Some(&Step::AtRest { current: 0 }));
}

#[test]
fn initial_cooldown_counts_from_creation_when_never_active() {
    let p = policy().max(5).initial_cooldown(120).trigger("q", 10.0);
    let mut s = Scenario::new(p, 3);
    // First decision records created_at.
    let d = s.tick(0, at(0).value("q", 0.0));
    assert_eq!(d.desired_replicas, 3);
    assert!(matches!(d.explanation.first(), Some(Step::Proposal { .. })));
    assert!(
        d.explanation
            .iter()
            .any(|s| matches!(s, Step::CoolingDown { initial: true, .. }))
    );
    assert_eq!(s.tick(120, at(0).value("q", 0.0)).desired_replicas, 3);
    assert_eq!(s.tick(121, at(0).value("q", 0.0)).desired_replicas, 0);
}

#[test]
fn inactive_with_min_above_zero_is_left_to_the_hpa() {
    let p = policy().min(2).max(10).trigger("q", 10.0).activation(100.0);
    let d = run(&p, &at(6).value("q", 20.0), DecisionState::default(), t(0));
    assert!(!d.active);
    // The HPA still runs on the value (20 / 10 ⇒ 2) but holds for the 300 s scale-down window.
    assert_eq!(d.desired_replicas, 6);
    assert!(
        d.explanation
            .iter()
            .any(|s| matches!(s, Step::Stabilized { .. }))
    );
}

#[test]
fn below_min_at_rest_is_raised_to_min_and_above_max_is_lowered_to_max() {
    let p = policy().min(2).max(4).trigger("q", 10.0).activation(100.0);
    assert_eq!(
        run(&p, &at(0).value("q", 0.0), DecisionState::default(), t(0)).desired_replicas,
        2
    );
    let d = run(&p, &at(9).value("q", 0.0), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 4);
    let limited = d.condition(ConditionType::ScalingLimited).unwrap();
    assert_eq!(
        (limited.status, limited.reason),
        (ConditionStatus::True, "TooManyReplicas")
    );
}

#[test]
fn without_behavior_scale_up_is_capped_and_explained() {
    let p = policy().max(100).trigger("q", 1.0);
    let d = run(&p, &at(3).value("q", 50.0), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 6);
    assert!(
        d.explanation_lines()
            .contains(&"scale-up limited to 6 (max(2×current, 4))".to_owned())
    );
}

#[test]
fn default_behavior_limits_scale_up_by_pods_4_per_15s() {
    let p = policy().max(100).default_behavior().trigger("rps", 50.0);
    let mut s = Scenario::new(p, 2);
    let d = s.tick(0, at(0).value("rps", 1000.0));
    assert_eq!(d.desired_replicas, 6, "max(2 + 4, 2 × 2)");
    assert_eq!(d.reason(), "scale-up limited to 6 by policy Pods/4/15s");
    assert!(
        d.explanation_lines()
            .contains(&"scale-up limited to 6 by policy Pods/4/15s".to_owned())
    );
    let d = s.tick(5, at(0).value("rps", 1000.0));
    assert_eq!(
        d.desired_replicas, 6,
        "the 15 s period still holds the +4 event"
    );
    let d = s.tick(16, at(0).value("rps", 1000.0));
    assert_eq!(
        d.desired_replicas, 12,
        "Percent/100/15s from 6 beats Pods/4"
    );
}

#[test]
fn partial_behavior_fills_gaps_with_documented_defaults() {
    // Only scale-down given, with no window: scale-up keeps its defaults (Pods 4 / 100 %).
    let p = policy()
        .max(100)
        .scale_down(rules(Some(0), &[R::pods(1, 60)]))
        .trigger("q", 1.0);
    let mut s = Scenario::new(p, 5);
    assert_eq!(s.tick(0, at(0).value("q", 100.0)).desired_replicas, 10);
    // A 0 s scale-down window: only the rate policy (1 pod per 60 s) slows the way down.
    let mut s = Scenario::new(s.policy.clone(), 5);
    assert_eq!(s.tick(0, at(0).value("q", 1.0)).desired_replicas, 4);
    assert_eq!(s.tick(30, at(0).value("q", 1.0)).desired_replicas, 4);
    assert_eq!(s.tick(61, at(0).value("q", 1.0)).desired_replicas, 3);
}

#[test]
fn select_policy_disabled_blocks_that_direction() {
    let p = policy()
        .max(10)
        .scale_up(select(rules(None, &[]), SelectPolicy::Disabled))
        .trigger("q", 1.0);
    let d = run(&p, &at(2).value("q", 8.0), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 2);
    assert!(
        d.explanation_lines()
            .contains(&"scale-up disabled by selectPolicy: holding 2".to_owned())
    );
}

#[test]
fn scale_down_stabilization_holds_the_highest_recent_recommendation() {
    let p = policy().min(1).max(10).trigger("q", 10.0);
    let mut s = Scenario::new(p, 8);
    assert_eq!(s.tick(0, at(0).value("q", 80.0)).desired_replicas, 8);
    for secs in [30, 120, 300] {
        let d = s.tick(secs, at(0).value("q", 20.0));
        assert_eq!(d.desired_replicas, 8, "at {secs}s");
        assert_eq!(
            d.condition(ConditionType::AbleToScale).unwrap().reason,
            "ScaleDownStabilized"
        );
    }
    assert_eq!(s.tick(301, at(0).value("q", 20.0)).desired_replicas, 2);
}

#[test]
fn an_invalid_trigger_blocks_scale_down_but_not_scale_up() {
    let p = policy()
        .min(1)
        .max(20)
        .scale_down(rules(Some(0), &[]))
        .trigger("a", 10.0)
        .trigger("b", 10.0);
    let state = DecisionState {
        recommendations: vec![TimestampedReplicas::new(5, t(-1000))],
        ..Default::default()
    };
    let d = run(&p, &at(5).value("a", 20.0).failed("b"), state.clone(), t(0));
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(
        d.explanation.last(),
        Some(&Step::InvalidBlocksScaleDown {
            valid_max: 2,
            current: 5
        })
    );
    let sa = d.condition(ConditionType::ScalingActive).unwrap();
    assert_eq!(
        (sa.status, sa.reason),
        (ConditionStatus::False, "FailedGetExternalMetric")
    );
    let d = run(&p, &at(5).value("a", 90.0).failed("b"), state, t(0));
    assert_eq!(d.desired_replicas, 9);
    let d = run(
        &p,
        &at(5).failed("a").failed("b"),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(
        d.explanation.last(),
        Some(&Step::NoValidProposal { current: 5 })
    );
}

#[test]
fn a_missing_observation_counts_as_a_failure() {
    let p = policy().max(5).trigger("a", 10.0).trigger("b", 10.0);
    let d = run(&p, &at(2).value("a", 20.0), DecisionState::default(), t(0));
    let b = &d.triggers[1];
    assert_eq!(
        b.error.as_ref().map(|e| e.kind),
        Some(QueryErrorKind::Missing)
    );
    assert_eq!(b.consecutive_failures, 1);
}

#[test]
fn fallback_applies_only_when_failures_exceed_the_threshold() {
    let p = policy()
        .min(1)
        .max(10)
        .fallback(2, 7, Fb::Static)
        .trigger("q", 10.0);
    let mut s = Scenario::new(p, 3);
    for n in 1..=2 {
        let d = s.tick(n, at(0).failed("q"));
        assert_eq!(d.desired_replicas, 3, "failure {n} holds");
        assert!(!d.fallback_active);
    }
    let d = s.tick(3, at(0).failed("q"));
    assert!(d.fallback_active);
    assert_eq!(
        d.desired_replicas, 6,
        "towards 7, through the scale-up cap max(2×3, 4)"
    );
    let f = d.condition(ConditionType::Fallback).unwrap();
    assert_eq!(
        (f.status, f.reason),
        (ConditionStatus::True, "FallbackExists")
    );
    assert_eq!(d.triggers[0].consecutive_failures, 3);
    assert_eq!(s.tick(4, at(0).failed("q")).desired_replicas, 7);
    // Recovery resets the count.
    let d = s.tick(5, at(0).value("q", 70.0));
    assert!(!d.fallback_active);
    assert_eq!(d.triggers[0].consecutive_failures, 0);
}

#[test]
fn fallback_behaviors_keep_their_meaning() {
    // (behavior, current, fallback replicas, expected proposal)
    let table = [
        (Fb::Static, 8, 3, 3),
        (Fb::Static, 2, 3, 3),
        (Fb::CurrentReplicas, 8, 3, 8),
        (Fb::CurrentReplicasIfHigher, 8, 3, 8),
        (Fb::CurrentReplicasIfHigher, 2, 3, 3),
        (Fb::CurrentReplicasIfLower, 8, 3, 3),
        (Fb::CurrentReplicasIfLower, 2, 3, 2),
    ];
    for (behavior, current, replicas, want) in table {
        let p = policy()
            .min(1)
            .max(10)
            .fallback(0, replicas, behavior)
            .trigger("q", 10.0);
        let d = run(&p, &at(current).failed("q"), DecisionState::default(), t(0));
        assert_eq!(
            d.triggers[0].proposal,
            Some(want),
            "{behavior:?} at {current}"
        );
        assert!(d.triggers[0].fallback);
    }
}

#[test]
fn static_fallback_sets_exactly_the_fallback_replicas_without_a_tolerance_band() {
    // KEDA's synthetic metric (target × replicas) would fall inside the 10 % band at 10 → 11.
    let p = policy()
        .min(1)
        .max(20)
        .fallback(0, 11, Fb::Static)
        .trigger("q", 10.0);
    let d = run(&p, &at(10).failed("q"), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 11);
}

#[test]
fn fallback_never_overrides_a_healthy_trigger_downwards_keda_6659() {
    let p = policy()
        .min(1)
        .max(20)
        .fallback(0, 2, Fb::Static)
        .trigger("healthy", 10.0)
        .trigger("broken", 10.0);
    let d = run(
        &p,
        &at(8).value("healthy", 80.0).failed("broken"),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(
        d.desired_replicas, 8,
        "max(8 from healthy, 2 from fallback)"
    );
    assert!(d.fallback_active);
}

#[test]
fn ready_quotes_what_each_failing_trigger_reported_with_keda_reasons() {
    let p = policy()
        .min(1)
        .max(10)
        .trigger("healthy", 10.0)
        .trigger("broken", 10.0)
        .trigger("also-broken", 10.0);
    let long = "x".repeat(400);
    let mut tick = at(2).value("healthy", 20.0).failed("broken");
    tick.observations.push(Observation::error(
        "also-broken",
        QueryErrorKind::MultipleSeries,
        &long,
    ));
    // One trigger active, two failing: KEDA's PartialTriggerError (Unknown), and lastActiveTime
    // is not refreshed.
    let d = run(&p, &tick, DecisionState::default(), t(0));
    let ready = d.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        (ready.status, ready.reason),
        (ConditionStatus::Unknown, "PartialTriggerError")
    );
    assert_eq!(d.state.last_active_time, None);
    assert!(
        ready.message.starts_with(
            "Some triggers defined in ScaledObject are not working correctly: broken: timeout: \
             deadline exceeded; also-broken: multiple series: xxx"
        ),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("healthy"), "{}", ready.message);
    // One trigger's text is capped, so a huge upstream error cannot bloat the status.
    assert!(ready.message.ends_with('…'), "{}", ready.message);
    assert!(ready.message.len() < 450, "{}", ready.message.len());

    // No trigger active and no fallback configured: KEDA's TriggerError (False).
    let tick = at(2).value("healthy", 0.0).failed("broken");
    let d = run(&p, &tick, DecisionState::default(), t(0));
    let ready = d.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        (ready.status, ready.reason, &*ready.message),
        (
            ConditionStatus::False,
            "TriggerError",
            "Triggers defined in ScaledObject are not working correctly: broken: timeout: \
             deadline exceeded; also-broken: missing: no observation for this trigger"
        )
    );
    // The same with a fallback configured (below its threshold): KEDA leaves Ready=True and
    // holds, so the fallback can take over.
    let p = p.fallback(3, 4, Fb::Static);
    let d = run(&p, &tick, DecisionState::default(), t(0));
    let ready = d.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        (ready.status, ready.reason),
        (ConditionStatus::True, "ScaledObjectReady")
    );
    assert_eq!(d.desired_replicas, 2);
}

#[test]
fn errors_never_scale_to_zero_nor_oscillate_keda_4249() {
    let p = policy().min(0).max(10).cooldown(30).trigger("q", 10.0);
    let mut s = Scenario::new(p, 4);
    for secs in (0..600).step_by(15) {
        let d = s.tick(secs, at(0).failed("q"));
        assert_eq!(d.desired_replicas, 4, "at {secs}s");
        let ready = d.condition(ConditionType::Ready).unwrap();
        assert_eq!(
            (ready.status, ready.reason),
            (ConditionStatus::False, "TriggerError")
        );
    }
    // With a fallback: it settles on the fallback count and stays there.
    let p = policy()
        .min(0)
        .max(10)
        .cooldown(30)
        .fallback(1, 3, Fb::Static)
        .trigger("q", 10.0);
    let mut s = Scenario::new(p, 4);
    let trajectory: Vec<i32> = (0..40)
        .map(|i| s.tick(i * 15, at(0).failed("q")).desired_replicas)
        .collect();
    assert!(trajectory.iter().all(|&r| r >= 3), "{trajectory:?}");
    assert_eq!(*trajectory.last().unwrap(), 3, "{trajectory:?}");
}

#[test]
fn fallback_counts_as_active_and_wakes_a_target_at_zero_keda_7239() {
    let p = policy()
        .min(0)
        .max(10)
        .fallback(1, 4, Fb::Static)
        .trigger("q", 10.0);
    let mut s = Scenario::new(p, 0);
    // First failure: not beyond the threshold yet; at rest.
    let d = s.tick(0, at(0).failed("q"));
    assert_eq!(d.desired_replicas, 0);
    assert!(!d.active);
    // Second failure: the fallback applies, the trigger counts as active (KEDA ≥ 2.19), so the
    // target is activated to max(min, 1)...
    let d = s.tick(30, at(0).failed("q"));
    assert_eq!(d.desired_replicas, 1);
    assert!(d.active && d.fallback_active);
    assert_eq!(d.explanation.last(), Some(&Step::ScaleFromZero { to: 1 }));
    let active = d.condition(ConditionType::Active).unwrap();
    assert_eq!(
        (active.status, active.reason),
        (ConditionStatus::True, "ScalerActive")
    );
    let ready = d.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        ready.reason, "ScaledObjectReady",
        "a fallback is not an error"
    );
    // ...and the HPA path then brings it to the fallback count.
    let d = s.tick(60, at(1).failed("q"));
    assert_eq!(d.desired_replicas, 4);
    assert!(d.fallback_active);
}

#[test]
fn last_known_good_replaces_a_failure_during_its_ttl_keda_965() {
    let p = policy()
        .min(1)
        .max(10)
        .last_known_good(60)
        .trigger("q", 10.0);
    let mut s = Scenario::new(p, 2);
    assert_eq!(s.tick(0, at(0).value("q", 50.0)).desired_replicas, 4);
    let d = s.tick(30, at(0).failed("q"));
    assert_eq!(d.desired_replicas, 5);
    assert!(d.triggers[0].stale);
    assert_eq!(d.triggers[0].value, Some(50.0));
    assert!(
        d.explanation_lines()
            .iter()
            .any(|l| l == "trigger q: using last known good value from 30s ago")
    );
    let d = s.tick(61, at(0).failed("q"));
    assert!(!d.triggers[0].stale, "expired");
    assert_eq!(d.desired_replicas, 5);
    assert!(
        d.state.last_good_values.is_empty(),
        "expired values are pruned"
    );
}

#[test]
fn scaling_modifiers_compose_triggers_by_formula() {
    let p = policy()
        .max(20)
        .trigger("rps", 100.0)
        .trigger("queue", 100.0)
        .formula("(rps + (queue ?? 0)) / 2", 10.0);
    let d = run(
        &p,
        &at(2).value("rps", 60.0).value("queue", 20.0),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 4, "(60 + 20) / 2 = 40, / 10 ⇒ 4");
    assert_eq!(d.explanation_lines()[0], "trigger formula: 40 / 10 ⇒ 4");
    assert_eq!(d.triggers[0].proposal, None);
    // A failed trigger coalesced to 0 keeps the formula valid.
    let d = run(
        &p,
        &at(2).value("rps", 60.0).failed("queue"),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 3);
}

#[test]
fn scaling_modifiers_speak_keda_formula_language() {
    // KEDA's documented example: count over an array with a predicate.
    let p = policy()
        .max(20)
        .trigger("trig_one", 1.0)
        .trigger("trig_two", 1.0)
        .trigger("trig_three", 1.0)
        .formula(
            "count([trig_one,trig_two,trig_three],{#>1}) > 1 ? 5 : 0",
            1.0,
        );
    let tick = at(4)
        .value("trig_one", 2.0)
        .value("trig_two", 0.0)
        .value("trig_three", 3.0);
    let d = run(&p, &tick, DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 5, "{:?}", d.explanation_lines());
    // `primary ?? secondary ?? 8` with target 2: each failing trigger falls through to the next.
    let p = policy()
        .max(20)
        .trigger("primary", 1.0)
        .trigger("secondary", 1.0)
        .formula("primary ?? secondary ?? 8", 2.0);
    let cases = [
        (at(4).value("primary", 16.0).value("secondary", 12.0), 8),
        (at(4).failed("primary").value("secondary", 12.0), 6),
        (at(4).failed("primary").failed("secondary"), 4),
    ];
    for (tick, want) in cases {
        let d = run(&p, &tick, DecisionState::default(), t(0));
        assert_eq!(d.desired_replicas, want, "{:?}", d.explanation_lines());
    }
}

#[test]
fn scaling_modifiers_activation_uses_the_composite_value() {
    let mut p = policy()
        .max(20)
        .trigger("rps", 100.0)
        .activation(1000.0)
        .formula("rps * 2", 10.0);
    if let Some(m) = p.scaling_modifiers.as_mut() {
        m.activation_target = 50.0;
    }
    let d = run(
        &p,
        &at(0).value("rps", 30.0),
        DecisionState::default(),
        t(0),
    );
    assert!(
        d.active,
        "60 > 50 although rps alone is below its activation"
    );
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn a_formula_that_cannot_evaluate_holds_replicas_or_falls_back() {
    let p = policy()
        .min(1)
        .max(20)
        .trigger("rps", 100.0)
        .formula("rps * 2", 10.0);
    let d = run(&p, &at(5).failed("rps"), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 5);
    assert!(matches!(
        d.explanation.get(1),
        Some(Step::FormulaFailed { .. })
    ));
    let p = p.fallback(0, 8, Fb::Static);
    let d = run(&p, &at(5).failed("rps"), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 8);
    assert!(d.fallback_active);
}

#[test]
fn pause_variants() {
    let p = policy().max(10).trigger("q", 10.0);
    let busy = |pause| at(2).value("q", 90.0).pause(pause);
    let d = run(
        &p,
        &busy(Pause {
            paused: true,
            ..Pause::default()
        }),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 2);
    assert_eq!(
        d.condition(ConditionType::Paused).unwrap().reason,
        "ScaledObjectPaused"
    );
    let d = run(
        &p,
        &busy(Pause {
            paused_replicas: Some(7),
            ..Pause::default()
        }),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 7);
    let d = run(
        &p,
        &busy(Pause {
            scale_out_paused: true,
            ..Pause::default()
        }),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.desired_replicas, 2);
    let d = run(
        &p,
        &busy(Pause {
            scale_in_paused: true,
            ..Pause::default()
        }),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(
        d.desired_replicas, 6,
        "scale-out still allowed (default policies from 2: max(2 + 4, 2 × 2))"
    );
    let paused = d.condition(ConditionType::Paused).unwrap();
    assert_eq!(
        (paused.status, paused.reason),
        (ConditionStatus::True, "ScaledObjectPaused"),
        "as KEDA does"
    );
    // Scale-in paused: never below current, never to zero.
    let idle = policy().max(10).cooldown(0).trigger("q", 10.0);
    let tick = at(5).value("q", 0.0).pause(Pause {
        scale_in_paused: true,
        ..Pause::default()
    });
    let state = DecisionState {
        last_active_time: Some(t(-100)),
        ..Default::default()
    };
    assert_eq!(run(&idle, &tick, state, t(0)).desired_replicas, 5);
    // Scale-out paused at zero: stays at zero even when active.
    let tick = at(0).value("q", 50.0).pause(Pause {
        scale_out_paused: true,
        ..Pause::default()
    });
    assert_eq!(
        run(&idle, &tick, DecisionState::default(), t(0)).desired_replicas,
        0
    );
}

#[test]
fn conditions_are_reported_in_order_with_keda_and_hpa_reasons() {
    let d = run(
        &seed_policy(),
        &at(2).value("connections", 140.0),
        DecisionState::default(),
        t(0),
    );
    let got: Vec<(&str, &str, &str)> = d
        .conditions
        .iter()
        .map(|c| (c.kind.as_str(), c.status.as_str(), c.reason))
        .collect();
    assert_eq!(
        got,
        [
            ("Ready", "True", "ScaledObjectReady"),
            ("Active", "True", "ScalerActive"),
            ("Fallback", "False", "NoFallbackFound"),
            ("Paused", "False", "ScaledObjectUnpaused"),
            ("AbleToScale", "True", "ReadyForNewScale"),
            ("ScalingActive", "True", "ValidMetricFound"),
            ("ScalingLimited", "False", "DesiredWithinRange"),
        ]
    );
}

#[test]
fn explanation_reads_in_order_for_a_two_trigger_decision() {
    let p = policy()
        .max(10)
        .default_behavior()
        .trigger("rps", 50.0)
        .trigger("queue", 10.0);
    let d = run(
        &p,
        &at(2).value("rps", 140.0).value("queue", 300.0),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(
        d.explanation_lines(),
        [
            "trigger rps: 140 / 50 ⇒ 3",
            "trigger queue: 300 / 10 ⇒ 30",
            "max over triggers ⇒ 30 (queue)",
            "scale-up limited to 6 by policy Pods/4/15s",
        ]
    );
}

#[test]
fn state_stays_bounded_over_a_long_run() {
    let p = policy()
        .min(1)
        .max(50)
        .default_behavior()
        .last_known_good(60)
        .trigger("q", 10.0)
        .trigger("r", 10.0);
    let mut s = Scenario::new(p, 1);
    for i in 0..5000 {
        let v = if i % 7 == 0 { 400.0 } else { 20.0 };
        let tick = if i % 11 == 0 {
            at(0).failed("q").value("r", v)
        } else {
            at(0).value("q", v).value("r", v)
        };
        s.tick(i, tick);
    }
    assert!(
        s.state.recommendations.len() <= 301,
        "{}",
        s.state.recommendations.len()
    );
    assert!(s.state.scale_up_events.len() <= 16);
    assert!(s.state.scale_down_events.len() <= 16);
    assert_eq!(s.state.consecutive_failures.len(), 2);
    assert!(s.state.last_good_values.len() <= 2);
    assert!(s.state.recommendations.len() <= MAX_HISTORY);
}

#[test]
fn unknown_triggers_are_dropped_from_carried_state() {
    let p = policy().max(5).trigger("q", 10.0);
    let mut state = DecisionState::default();
    state.consecutive_failures.insert("gone".into(), 3);
    let d = run(&p, &at(1).value("q", 10.0), state, t(0));
    assert_eq!(
        d.state.consecutive_failures.keys().collect::<Vec<_>>(),
        ["q"]
    );
}

#[test]
fn validation_names_the_offending_field() {
    let ok = policy().min(1).max(5).trigger("q", 10.0);
    let table: Vec<(crate::ScalingPolicy, crate::Tick, &str)> = vec![
        (ok.clone().min(-1), at(1), "policy.min_replicas"),
        (ok.clone().max(0).min(0), at(1), "policy.max_replicas"),
        (ok.clone().min(6), at(1), "policy.max_replicas"),
        (ok.clone().idle(1), at(1), "policy.idle_replicas"),
        (policy().max(5), at(1), "policy.triggers"),
        (
            policy().max(5).trigger("q", f64::NAN),
            at(1),
            "policy.triggers[0].target",
        ),
        (
            policy().max(5).trigger("q", 0.0),
            at(1),
            "policy.triggers[0].target",
        ),
        (
            policy().max(5).trigger("q", 1.0).trigger("q", 1.0),
            at(1),
            "policy.triggers[1].name",
        ),
        (ok.clone().tolerance(-0.1), at(1), "policy.tolerance"),
        (
            ok.clone().formula("q + nope", 1.0),
            at(1),
            "policy.scaling_modifiers.formula",
        ),
        (
            ok.clone().formula("q", f64::INFINITY),
            at(1),
            "policy.scaling_modifiers.target",
        ),
        (
            ok.clone().scale_up(rules(Some(-1), &[])),
            at(1),
            "policy.behavior.scale_up.stabilization_window_seconds",
        ),
        (
            ok.clone().scale_down(rules(None, &[R::pods(0, 15)])),
            at(1),
            "policy.behavior.scale_down.policies[0].value",
        ),
        (
            ok.clone().scale_down(rules(None, &[R::pods(1, 1801)])),
            at(1),
            "policy.behavior.scale_down.policies[0].period_seconds",
        ),
        (ok.clone(), at(-1), "replicas.spec"),
        (
            ok.clone(),
            at(1).value("other", 1.0),
            "observations[0].trigger",
        ),
        (
            ok.clone(),
            at(1).value("q", 1.0).value("q", 2.0),
            "observations",
        ),
        (
            ok.clone(),
            at(1).pause(Pause {
                paused_replicas: Some(-2),
                ..Pause::default()
            }),
            "pause.paused_replicas",
        ),
    ];
    for (p, tick, field) in table {
        let err = decide(&p, &tick, DecisionState::default(), t(0)).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    let err = decide(
        &ok.formula("q +", 1.0),
        &at(1),
        DecisionState::default(),
        t(0),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidFormula { .. }));
}

#[test]
fn simulate_replays_through_the_same_path_as_decide() {
    let p = seed_policy().cooldown(60);
    let values = [
        0.0, 140.0, 140.0, 260.0, 40.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    let steps: Vec<SimulationStep> = values
        .iter()
        .enumerate()
        .map(|(i, v)| SimulationStep {
            at: t(i as i64 * 30),
            observations: vec![crate::Observation::value("connections", *v)],
        })
        .collect();
    let sim = Simulation {
        initial: Replicas::settled(0),
        steps: steps.clone(),
        pause: Pause::default(),
        ready_delay_seconds: 0,
    };
    let out = simulate(&p, &sim).unwrap();
    let mut s = Scenario::new(p, 0);
    let by_hand: Vec<i32> = (0..values.len())
        .map(|i| {
            s.tick(i as i64 * 30, at(0).value("connections", values[i]))
                .desired_replicas
        })
        .collect();
    let simulated: Vec<i32> = out.iter().map(|s| s.desired_replicas).collect();
    assert_eq!(simulated, by_hand);
    // Last active at 120 s; scale-in once the 60 s cooldown has strictly passed (210 s).
    assert_eq!(simulated, [0, 1, 3, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn simulate_rejects_steps_out_of_time_order() {
    let steps = vec![
        SimulationStep {
            at: t(10),
            observations: vec![],
        },
        SimulationStep {
            at: t(5),
            observations: vec![],
        },
    ];
    let sim = Simulation {
        initial: Replicas::settled(1),
        steps,
        pause: Pause::default(),
        ready_delay_seconds: 0,
    };
    assert_eq!(
        simulate(&seed_policy(), &sim).unwrap_err().field(),
        "steps[1].at"
    );
}

#[test]
fn value_targets_multiply_by_ready_pods_and_average_values_judge_status_replicas() {
    let p = policy().max(10).value_trigger("lag", 100.0);
    let d = run(
        &p,
        &at(4).ready(2).value("lag", 300.0),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(d.triggers[0].proposal, Some(6), "300 / 100 × 2 ready");
    assert_eq!(
        d.explanation_lines()[0],
        "trigger lag: 300 / 100 × 2 ready ⇒ 6"
    );
    let p = policy().max(10).trigger("q", 10.0);
    let d = run(
        &p,
        &at(4).status(3).value("q", 31.0),
        DecisionState::default(),
        t(0),
    );
    assert_eq!(
        d.triggers[0].proposal,
        Some(3),
        "31 / (10 × 3) is within tolerance of 3 status replicas"
    );
}

#[test]
fn keda_executor_cases() {
    // Transcribed from KEDA's scale_scaledobjects_test.go:
    // (case, min, idle, max, current, active, pause, expected)
    let out = Pause {
        scale_out_paused: true,
        ..Pause::default()
    };
    let inn = Pause {
        scale_in_paused: true,
        ..Pause::default()
    };
    let none = Pause::default();
    let table = [
        (
            "ScaleFromZeroWhenActive (min 0)",
            0,
            None,
            10,
            0,
            true,
            none,
            1,
        ),
        (
            "ScaleToIdleReplicasWhenNotActive",
            5,
            Some(0),
            10,
            10,
            false,
            none,
            0,
        ),
        (
            "ScaleFromIdleToMinReplicasWhenActive",
            5,
            Some(0),
            10,
            0,
            true,
            none,
            5,
        ),
        (
            "ScaleToPausedReplicasCount",
            0,
            None,
            10,
            2,
            true,
            Pause {
                paused_replicas: Some(0),
                ..none
            },
            0,
        ),
        (
            "NoScaleToMinReplicasWhenNotActiveAndPauseScaleIn",
            0,
            None,
            20,
            10,
            false,
            inn,
            10,
        ),
        (
            "NoScaleToIdleReplicasWhenNotActiveAndPauseScaleIn",
            5,
            Some(0),
            20,
            10,
            false,
            inn,
            10,
        ),
        (
            "NoScaleFromMinReplicasWhenActiveAndPausedScaleOut",
            0,
            None,
            10,
            0,
            true,
            out,
            0,
        ),
        (
            "NoScaleFromIdleToMinWhenActiveAndPausedScaleOut",
            5,
            Some(0),
            10,
            0,
            true,
            out,
            0,
        ),
    ];
    for (case, min, idle, max, current, active, pause, want) in table {
        let mut p = policy().min(min).max(max).trigger("q", 10.0);
        p.idle_replicas = idle;
        // Active: 100 > 0; inactive: 0 (the HPA would propose 0 and be held by min/stabilization).
        let value = if active { 100.0 } else { 0.0 };
        let d = run(
            &p,
            &at(current).value("q", value).pause(pause),
            DecisionState::default(),
            t(0),
        );
        assert_eq!(
            d.desired_replicas,
            want,
            "{case}: {:?}",
            d.explanation_lines()
        );
    }
}

#[test]
fn keda_scaling_modifiers_cases() {
    // Transcribed from KEDA's pkg/scaling/modifiers/formula_test.go.
    // "trigger1 + trigger2" over 2 and 5 is 7.
    let p = policy()
        .max(20)
        .trigger("trigger1", 1.0)
        .trigger("trigger2", 1.0)
        .formula("trigger1 + trigger2", 1.0);
    let d = run(
        &p,
        &at(7).value("trigger1", 2.0).value("trigger2", 5.0),
        DecisionState::default(),
        t(0),
    );
    assert!(matches!(d.explanation.first(), Some(Step::Proposal { value, .. }) if *value == 7.0));
    // "trigger1 ?? trigger2" with both past the fallback threshold (5 > 3): the formula is nil,
    // so the composite proposes fallback.replicas (7).
    let p = policy()
        .max(20)
        .fallback(3, 7, Fb::Static)
        .trigger("trigger1", 1.0)
        .trigger("trigger2", 1.0)
        .formula("trigger1 ?? trigger2", 2.0);
    let mut state = DecisionState::default();
    state.consecutive_failures.insert("trigger1".into(), 4);
    state.consecutive_failures.insert("trigger2".into(), 4);
    let d = run(
        &p,
        &at(7).failed("trigger1").failed("trigger2"),
        state.clone(),
        t(0),
    );
    assert!(
        d.explanation
            .iter()
            .any(|s| matches!(s, Step::Fallback { proposal: 7, .. })),
        "{:?}",
        d.explanation_lines()
    );
    assert_eq!(d.desired_replicas, 7);
    // KEDA #5371: "max(trigger_1, trigger_2)" with both in fallback proposes fallback.replicas
    // once (12), not once per trigger (24).
    let p = policy()
        .max(30)
        .fallback(3, 12, Fb::Static)
        .trigger("trigger1", 1.0)
        .trigger("trigger2", 1.0)
        .formula("max(trigger1, trigger2)", 1.0);
    let d = run(
        &p,
        &at(12).failed("trigger1").failed("trigger2"),
        state,
        t(0),
    );
    assert_eq!(d.desired_replicas, 12);
}

#[test]
fn seed_example_decision_in_full() {
    use crate::decision::{Condition, Decision, TriggerOutcome};
    use crate::policy::MetricType;
    use std::borrow::Cow;
    let cond = |kind, status, reason, message: &'static str| Condition {
        kind,
        status,
        reason,
        message: Cow::Borrowed(message),
    };
    let (yes, no) = (ConditionStatus::True, ConditionStatus::False);
    let d = run(
        &seed_policy(),
        &at(2).value("connections", 140.0),
        DecisionState::default(),
        t(0),
    );
    let expected = Decision {
        desired_replicas: 3,
        active: true,
        fallback_active: false,
        conditions: vec![
            cond(
                ConditionType::Ready,
                yes,
                "ScaledObjectReady",
                "ScaledObject is defined correctly and is ready for scaling",
            ),
            cond(
                ConditionType::Active,
                yes,
                "ScalerActive",
                "Scaling is performed because triggers are active",
            ),
            cond(
                ConditionType::Fallback,
                no,
                "NoFallbackFound",
                "No fallbacks are active on this scaled object",
            ),
            cond(
                ConditionType::Paused,
                no,
                "ScaledObjectUnpaused",
                "ScaledObject is not paused",
            ),
            cond(
                ConditionType::AbleToScale,
                yes,
                "ReadyForNewScale",
                "recommended size matches current size",
            ),
            cond(
                ConditionType::ScalingActive,
                yes,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count",
            ),
            cond(
                ConditionType::ScalingLimited,
                no,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            ),
        ],
        state: DecisionState {
            // The current count, recorded as a recommendation made now (fresh state), then ours.
            recommendations: vec![
                TimestampedReplicas::new(2, t(0)),
                TimestampedReplicas::new(3, t(0)),
            ],
            scale_up_events: vec![],
            scale_down_events: vec![],
            last_active_time: Some(t(0)),
            consecutive_failures: [("connections".to_owned(), 0)].into_iter().collect(),
            created_at: Some(t(0)),
            last_good_values: Default::default(),
            initialized: true,
        },
        explanation: vec![
            Step::Proposal {
                trigger: "connections".into(),
                value: 140.0,
                target: 50.0,
                metric_type: MetricType::AverageValue,
                pods: 2,
                proposal: 3,
                within_tolerance: false,
                stale: false,
                active: true,
            },
            Step::WithinRange {
                desired: 3,
                current: 2,
            },
        ],
        triggers: vec![TriggerOutcome {
            name: "connections".into(),
            value: Some(140.0),
            proposal: Some(3),
            active: true,
            error: None,
            stale: false,
            fallback: false,
            consecutive_failures: 0,
        }],
    };
    assert_eq!(d, expected);
}

fn window(secs: i32) -> crate::ScalingRules {
    crate::ScalingRules {
        stabilization_window_seconds: Some(secs),
        ..crate::ScalingRules::default()
    }
}

/// A state that decided before, with one recommendation of `replicas` made at `secs`.
fn decided_before(replicas: i32, secs: i64) -> DecisionState {
    DecisionState {
        recommendations: vec![TimestampedReplicas::new(replicas, t(secs))],
        initialized: true,
        ..DecisionState::default()
    }
}

#[test]
fn history_that_aged_out_of_the_window_is_not_a_fresh_start() {
    // The issue's reproduction: scale-down window 30 s, 3 replicas, 10 at target 50, the last
    // recommendation (3) made 60 s ago. The HPA gives ceil(10 / 50) = 1.
    let p = policy()
        .min(1)
        .max(10)
        .trigger("q", 50.0)
        .scale_down(window(30));
    let d = run(&p, &at(3).value("q", 10.0), decided_before(3, 0), t(60));
    assert_eq!(d.desired_replicas, 1, "{:?}", d.explanation);
    assert!(d.state.initialized);
    // An older caller that only sends the recommendation (no flag) has decided before too.
    let mut legacy = decided_before(3, 0);
    legacy.initialized = false;
    let d = run(&p, &at(3).value("q", 10.0), legacy, t(60));
    assert_eq!(d.desired_replicas, 1);
    // Once pruned, the flag alone carries it: the polling interval outlasts the window on
    // every tick, and every tick scales down as far as the policy allows.
    let mut s = Scenario::new(p.clone(), 6);
    s.state = decided_before(6, 0);
    let trajectory: Vec<i32> = (1..=3)
        .map(|i| s.tick(i * 60, at(0).value("q", 10.0)).desired_replicas)
        .collect();
    assert_eq!(trajectory, [1, 1, 1]);
    assert!(s.state.recommendations.len() <= 1, "history stays bounded");

    // Without behavior: the 300 s default window, a recommendation 400 s old.
    let p = policy().min(1).max(10).trigger("q", 50.0);
    let d = run(&p, &at(3).value("q", 10.0), decided_before(3, 0), t(400));
    assert_eq!(d.desired_replicas, 1, "{:?}", d.explanation);

    // A scale-up window re-seeded the same way would block scale-up: window 30 s, 3 replicas,
    // 500 at target 50 wants 10; default up policies allow max(3 + 4, 3 × 2) = 7.
    let p = policy()
        .min(1)
        .max(10)
        .trigger("q", 50.0)
        .scale_up(window(30));
    let d = run(&p, &at(3).value("q", 500.0), decided_before(3, 0), t(60));
    assert_eq!(d.desired_replicas, 7, "{:?}", d.explanation);
}

#[test]
fn a_fresh_state_still_records_current_replicas_once() {
    // HPA recordInitialRecommendation: a new or restarted controller holds for one window.
    let p = policy()
        .min(1)
        .max(10)
        .trigger("q", 50.0)
        .scale_down(window(30));
    let d = run(&p, &at(3).value("q", 10.0), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 3);
    let able = d.condition(ConditionType::AbleToScale).unwrap();
    assert_eq!(able.reason, "ScaleDownStabilized");
    // The seed is recorded on the first pass whatever branch it takes (here: at rest at zero).
    let p0 = policy().min(0).max(10).trigger("q", 50.0);
    let d = run(&p0, &at(0).value("q", 0.0), DecisionState::default(), t(0));
    assert_eq!(d.state.recommendations, [TimestampedReplicas::new(0, t(0))]);
    assert!(d.state.initialized);
}

#[test]
fn unpausing_starts_a_fresh_hpa_history() {
    // KEDA deletes the HPA while paused; the new HPA after unpause starts fresh and records the
    // current replicas, so the first scale-down waits one window.
    let p = policy()
        .min(1)
        .max(10)
        .trigger("q", 50.0)
        .scale_down(window(30));
    let mut paused = at(3).value("q", 10.0);
    paused.pause = Pause {
        paused: true,
        ..Pause::default()
    };
    let d = run(&p, &paused, decided_before(3, 0), t(60));
    assert!(!d.state.initialized && d.state.recommendations.is_empty());
    let d = run(&p, &at(3).value("q", 10.0), d.state, t(61));
    assert_eq!(d.desired_replicas, 3, "held for one window after unpause");
    let d = run(&p, &at(3).value("q", 10.0), d.state, t(92));
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn scale_in_held_by_the_cooldown_reads_scaler_cooldown() {
    let p = policy().min(0).max(10).cooldown(300).trigger("q", 50.0);
    let mut s = Scenario::new(p, 2);
    s.tick(0, at(0).value("q", 80.0));
    let d = s.tick(60, at(0).value("q", 0.0));
    assert_eq!(d.desired_replicas, 2);
    let active = d.condition(ConditionType::Active).unwrap();
    assert_eq!(
        (active.status, active.reason, &*active.message),
        (
            ConditionStatus::False,
            "ScalerCooldown",
            "Scaler cooling down because triggers are not active"
        )
    );
    let d = s.tick(301, at(0).value("q", 0.0));
    assert_eq!(d.desired_replicas, 0);
    let active = d.condition(ConditionType::Active).unwrap();
    assert_eq!(active.reason, "ScalerNotActive");
}

#[test]
fn idle_zero_with_min_zero_is_accepted_as_keda_does() {
    let p = policy().min(0).idle(0).max(5).trigger("q", 50.0);
    let d = run(&p, &at(2).value("q", 0.0), DecisionState::default(), t(0));
    assert_eq!(d.desired_replicas, 0, "idle 0 means what min 0 means");
    let p = policy().min(1).idle(1).max(5).trigger("q", 50.0);
    let err = decide(&p, &at(2).value("q", 0.0), DecisionState::default(), t(0)).unwrap_err();
    assert!(
        err.to_string().contains("max(min_replicas, 1) = 1"),
        "{err}"
    );
}

/// `n` steps of one `connections` observation, `spacing_ms` apart.
fn simulation(n: usize, spacing_ms: i64) -> Simulation {
    Simulation {
        initial: Replicas::settled(1),
        steps: (0..n)
            .map(|i| SimulationStep {
                at: crate::Timestamp::from_millis(1_795_910_400_000 + i as i64 * spacing_ms),
                observations: vec![Observation::value("connections", 100.0)],
            })
            .collect(),
        pause: Pause::default(),
        ready_delay_seconds: 0,
    }
}

#[test]
fn simulation_work_counts_triggers_and_the_history_within_the_longest_window() {
    // No behavior: 300 s window, so at 30 s spacing a step sees itself and the 10 before it.
    let sim = simulation(20, 30_000);
    let expected: u64 = (0..20u64).map(|i| 1 + (i + 1).min(11)).sum();
    assert_eq!(
        crate::simulation_work(&seed_policy(), None, &sim.steps),
        expected
    );
    // A loop-free formula adds its nodes; one with a range or predicate adds MAX_STEPS.
    let names = ["connections"];
    let plain = crate::Formula::parse("connections + 1", &names).unwrap();
    let looping = crate::Formula::parse("sum(1..3)", &names).unwrap();
    assert_eq!(plain.max_eval_steps(), 3);
    assert_eq!(looping.max_eval_steps(), crate::formula::MAX_STEPS);
    assert_eq!(
        crate::simulation_work(&seed_policy(), Some(&plain), &sim.steps),
        expected + 20 * 3
    );
}

#[test]
fn simulate_accepts_a_week_of_30s_steps_with_a_one_hour_window() {
    let p = seed_policy().scale_down(rules(Some(3600), &[]));
    let sim = simulation(7 * 24 * 120, 30_000);
    assert!(crate::simulation_work(&p, None, &sim.steps) <= crate::MAX_SIMULATION_WORK);
}

/// A 0.31 MB request of 10 000 steps (one observation each, 1 s apart, a 1 h
/// window) once kept every step's whole decision and its history: 555 MB. Now it is refused before
/// any step runs; so is the 3 MB one (100 000 steps) that took 6.5 GB.
#[test]
fn simulate_rejects_more_work_than_the_limit_before_running_a_step() {
    let p = seed_policy().scale_down(rules(Some(3600), &[]));
    for (n, spacing_ms) in [(10_000, 1_000), (100_000, 1_000), (100_000, 0)] {
        let sim = simulation(n, spacing_ms);
        assert!(crate::simulation_work(&p, None, &sim.steps) > crate::MAX_SIMULATION_WORK);
        let err = simulate(&p, &sim).unwrap_err();
        assert_eq!(err.field(), "steps", "{err}");
        let message = err.to_string();
        assert!(
            message.contains("units of work") && message.contains("use fewer steps"),
            "{message}"
        );
    }
}

#[test]
fn simulated_steps_keep_only_what_the_response_carries() {
    // The trajectory is a few dozen bytes a step, whatever the history: the state (here up to
    // 3601 recommendations) is not kept per step.
    let p = seed_policy().scale_down(rules(Some(3600), &[]));
    let sim = simulation(4000, 1_000);
    let out = simulate(&p, &sim).unwrap();
    assert_eq!(out.len(), 4000);
    assert!(std::mem::size_of::<crate::SimulatedStep>() <= 64);
    let heap: usize = out.iter().map(|s| s.reason.capacity()).sum();
    assert!(heap <= 4000 * 200, "{heap} bytes of reasons");
}
