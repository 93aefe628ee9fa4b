//! Tables transcribed from the HPA controller's tests (kubernetes `replica_calculator_test.go`,
//! `horizontal_test.go`; the scale-limit tables also appear in karmada's FederatedHPA port).

// Rows are tuples so each table reads like the upstream one.
#![allow(clippy::type_complexity)]

use super::*;
use crate::policy::{DEFAULT_TOLERANCE, ResolvedRules};
use crate::state::TimestampedReplicas as Ev;

const TOL: Tolerances = Tolerances {
    down: DEFAULT_TOLERANCE,
    up: DEFAULT_TOLERANCE,
};

fn now() -> Timestamp {
    Timestamp::from_secs(1_000_000)
}

fn ago(secs: i64) -> Timestamp {
    now().add_secs(-secs)
}

#[test]
fn external_metric_proposals_match_the_replica_calculator_tests() {
    // (case, metric type, value, target, spec, status, ready, expected)
    let table: &[(&str, MetricType, f64, f64, i32, i32, i32, i32)] = &[
        ("ScaleUpCMExternal", MetricType::Value, 8.6, 4.4, 1, 1, 1, 2),
        (
            "ScaleUpCMExternalIgnoresUnreadyPods",
            MetricType::Value,
            8.6,
            4.4,
            3,
            3,
            1,
            2,
        ),
        (
            "ScaleDownCMExternal",
            MetricType::Value,
            8.6,
            14.334,
            5,
            5,
            5,
            3,
        ),
        (
            "ToleranceCMExternal",
            MetricType::Value,
            8.9,
            8.888,
            3,
            3,
            3,
            3,
        ),
        (
            "ScaleUpPerPodCMExternal",
            MetricType::AverageValue,
            8.6,
            2.15,
            3,
            3,
            3,
            4,
        ),
        (
            "ScaleDownPerPodCMExternal",
            MetricType::AverageValue,
            8.6,
            2.867,
            5,
            5,
            5,
            3,
        ),
        (
            "TolerancePerPodCMExternal",
            MetricType::AverageValue,
            8.6,
            2.9,
            3,
            3,
            3,
            3,
        ),
        // From zero (Value): ceil(ratio), whatever the ready count.
        ("ValueFromZero", MetricType::Value, 8.6, 4.4, 0, 0, 0, 2),
        // AverageValue with no pods yet: ceil(value / target).
        (
            "AverageValueWithoutStatusReplicas",
            MetricType::AverageValue,
            140.0,
            50.0,
            2,
            0,
            0,
            3,
        ),
        // The seed example: 140 / 50 ⇒ 3.
        (
            "SeedExample",
            MetricType::AverageValue,
            140.0,
            50.0,
            2,
            2,
            2,
            3,
        ),
    ];
    for &(case, mt, value, target, spec, status, ready, want) in table {
        let p = propose(
            mt,
            value,
            target,
            Replicas {
                spec,
                status,
                ready,
            },
            TOL,
        );
        assert_eq!(p.replicas, want, "{case}");
    }
}

#[test]
fn tolerance_band_is_inclusive_and_per_direction() {
    // 4 pods × target 10: ratio = value / 40.
    let r = Replicas::settled(4);
    let at = |value: f64, tol: Tolerances| {
        propose(MetricType::AverageValue, value, 10.0, r, tol).replicas
    };
    assert_eq!(at(44.0, TOL), 4, "ratio 1.1 is inside (inclusive)");
    assert_eq!(at(44.4, TOL), 5, "ratio 1.11 is outside");
    assert_eq!(at(36.0, TOL), 4, "ratio 0.9 is inside (inclusive)");
    assert_eq!(at(35.6, TOL), 4, "ratio 0.89 proposes ceil(3.56) = 4");
    assert_eq!(at(30.0, TOL), 3);
    let wide_up = Tolerances { down: 0.1, up: 0.5 };
    assert_eq!(
        at(60.0, wide_up),
        4,
        "ratio 1.5 within a 50 % scale-up tolerance"
    );
    assert_eq!(at(30.0, wide_up), 3, "scale-down tolerance unchanged");
    let zero = Tolerances { down: 0.0, up: 0.0 };
    assert_eq!(at(40.4, zero), 5);
}

#[test]
fn proposals_saturate_instead_of_overflowing() {
    let r = Replicas::settled(3);
    assert_eq!(
        propose(MetricType::AverageValue, 1e300, 1e-300, r, TOL).replicas,
        i32::MAX
    );
    assert_eq!(
        propose(MetricType::Value, 1e300, 1.0, r, TOL).replicas,
        i32::MAX
    );
    assert_eq!(
        propose(MetricType::AverageValue, -5.0, 1.0, r, TOL).replicas,
        0
    );
    assert_eq!(ceil_replicas(f64::NAN), 0);
}

#[test]
fn combining_follows_compute_replicas_for_metrics() {
    // (case, proposals, current, expected)
    let table: &[(&str, &[Option<i32>], i32, Combined)] = &[
        (
            "max of valid",
            &[Some(3), Some(5)],
            4,
            Combined::Valid {
                replicas: 5,
                index: 1,
            },
        ),
        (
            "first max wins ties",
            &[Some(5), Some(5)],
            4,
            Combined::Valid {
                replicas: 5,
                index: 0,
            },
        ),
        (
            "invalid + scale-up proceeds",
            &[None, Some(6)],
            4,
            Combined::Valid {
                replicas: 6,
                index: 1,
            },
        ),
        (
            "invalid + equal proceeds",
            &[None, Some(4)],
            4,
            Combined::Valid {
                replicas: 4,
                index: 1,
            },
        ),
        (
            "invalid blocks scale-down",
            &[Some(2), None],
            4,
            Combined::BlockedScaleDown { valid_max: 2 },
        ),
        ("all invalid", &[None, None], 4, Combined::AllInvalid),
    ];
    for (case, proposals, current, want) in table {
        assert_eq!(
            combine(proposals.iter().copied(), *current),
            *want,
            "{case}"
        );
    }
}

/// Test rules; leaks the policies so table rows can own them.
fn rr(policies: &[ScalingPolicyRule], select: SelectPolicy) -> ResolvedRules<'static> {
    ResolvedRules {
        stabilization_window_seconds: 0,
        select_policy: select,
        policies: Box::leak(policies.to_vec().into_boxed_slice()),
    }
}

#[test]
fn scale_up_limits_match_upstream_table() {
    use ScalingPolicyRule as R;
    // (case, current, up events, down events, rules, expected)
    let table: Vec<(&str, i32, Vec<Ev>, Vec<Ev>, ResolvedRules<'_>, i32)> = vec![
        (
            "no previous events",
            5,
            vec![],
            vec![],
            rr(&[R::pods(4, 60)], SelectPolicy::Max),
            9,
        ),
        (
            "previous scale-up event",
            5,
            vec![Ev::new(2, ago(30))],
            vec![],
            rr(&[R::pods(4, 60)], SelectPolicy::Max),
            7,
        ),
        (
            "event outside the period",
            5,
            vec![Ev::new(2, ago(61))],
            vec![],
            rr(&[R::pods(4, 60)], SelectPolicy::Max),
            9,
        ),
        (
            "event exactly at the cutoff is outside",
            5,
            vec![Ev::new(2, ago(60))],
            vec![],
            rr(&[R::pods(4, 60)], SelectPolicy::Max),
            9,
        ),
        (
            "scale-down counts back in",
            5,
            vec![],
            vec![Ev::new(3, ago(10))],
            rr(&[R::pods(4, 60)], SelectPolicy::Max),
            12,
        ),
        (
            "disabled",
            5,
            vec![],
            vec![],
            rr(&[R::pods(4, 60)], SelectPolicy::Disabled),
            5,
        ),
        (
            "min change",
            5,
            vec![],
            vec![],
            rr(&[R::pods(4, 60), R::pods(2, 60)], SelectPolicy::Min),
            7,
        ),
        (
            "percent",
            10,
            vec![],
            vec![],
            rr(&[R::percent(50, 60)], SelectPolicy::Max),
            15,
        ),
        (
            "percent rounds up",
            1,
            vec![],
            vec![],
            rr(&[R::percent(10, 60)], SelectPolicy::Max),
            2,
        ),
        (
            "defaults at 3: max(3+4, 6)",
            3,
            vec![],
            vec![],
            rr(&crate::policy::DEFAULT_SCALE_UP_POLICIES, SelectPolicy::Max),
            7,
        ),
        (
            "defaults at 10: max(14, 20)",
            10,
            vec![],
            vec![],
            rr(&crate::policy::DEFAULT_SCALE_UP_POLICIES, SelectPolicy::Max),
            20,
        ),
        (
            "saturates",
            i32::MAX - 1,
            vec![],
            vec![],
            rr(&[R::pods(100, 60)], SelectPolicy::Max),
            i32::MAX,
        ),
    ];
    for (case, current, up, down, rules, want) in table {
        assert_eq!(
            scale_up_limit(current, &up, &down, &rules, now()).0,
            want,
            "{case}"
        );
    }
}

#[test]
fn scale_down_limits_match_upstream_table() {
    use ScalingPolicyRule as R;
    let table: Vec<(&str, i32, Vec<Ev>, Vec<Ev>, ResolvedRules<'_>, i32)> = vec![
        (
            "no previous events",
            10,
            vec![],
            vec![],
            rr(&[R::percent(20, 60)], SelectPolicy::Max),
            8,
        ),
        (
            "previous scale-down event",
            10,
            vec![],
            vec![Ev::new(1, ago(30))],
            rr(&[R::percent(20, 60)], SelectPolicy::Max),
            8,
        ),
        (
            "multiple policies (max change)",
            100,
            vec![],
            vec![],
            rr(&[R::percent(10, 60), R::pods(5, 60)], SelectPolicy::Max),
            90,
        ),
        (
            "disabled",
            10,
            vec![],
            vec![],
            rr(&[R::percent(20, 60)], SelectPolicy::Disabled),
            10,
        ),
        (
            "min change",
            100,
            vec![],
            vec![],
            rr(&[R::percent(10, 60), R::pods(15, 60)], SelectPolicy::Min),
            90,
        ),
        (
            "scale-up counts back out",
            10,
            vec![Ev::new(4, ago(5))],
            vec![],
            rr(&[R::pods(2, 60)], SelectPolicy::Max),
            4,
        ),
        (
            "percent truncates",
            9,
            vec![],
            vec![],
            rr(&[R::percent(50, 60)], SelectPolicy::Max),
            4,
        ),
    ];
    for (case, current, up, down, rules, want) in table {
        assert_eq!(
            scale_down_limit(current, &up, &down, &rules, now()).0,
            want,
            "{case}"
        );
    }
}

fn recs(list: &[(i32, i64)]) -> Vec<Ev> {
    list.iter().map(|&(r, a)| Ev::new(r, ago(a))).collect()
}

#[test]
fn behavior_stabilization_clamps_current_between_window_extremes() {
    use ScalingPolicyRule as R;
    let wide = [R::pods(100, 15)];
    // (case, up window, down window, recommendations, current, desired, expected, able reason)
    let table: &[(&str, i32, i32, &[(i32, i64)], i32, i32, i32, &str)] = &[
        (
            "no history, scale-up passes",
            0,
            300,
            &[],
            4,
            5,
            5,
            "ReadyForNewScale",
        ),
        (
            "down window holds the highest",
            0,
            300,
            &[(5, 60), (6, 120)],
            4,
            2,
            4,
            "ScaleDownStabilized",
        ),
        (
            "down window partially passes",
            0,
            300,
            &[(3, 60), (2, 120)],
            5,
            1,
            3,
            "ScaleDownStabilized",
        ),
        (
            "old recommendations fall out",
            0,
            300,
            &[(9, 301)],
            5,
            2,
            2,
            "ReadyForNewScale",
        ),
        (
            "up window holds the lowest",
            60,
            0,
            &[(4, 30), (6, 10)],
            3,
            8,
            4,
            "ScaleUpStabilized",
        ),
        (
            "up window with lower history keeps current",
            60,
            0,
            &[(2, 30)],
            3,
            8,
            3,
            "ScaleUpStabilized",
        ),
        (
            "zero windows pass through",
            0,
            0,
            &[(9, 1)],
            5,
            2,
            2,
            "ReadyForNewScale",
        ),
    ];
    for &(case, upw, downw, history, current, desired, want, reason) in table {
        let up = ResolvedRules {
            stabilization_window_seconds: upw,
            select_policy: SelectPolicy::Max,
            policies: &wide,
        };
        let down = ResolvedRules {
            stabilization_window_seconds: downw,
            select_policy: SelectPolicy::Max,
            policies: &[R::percent(100, 15)],
        };
        let args = BehaviorArgs {
            up: &up,
            down: &down,
            min: 1,
            max: 100,
            current,
            desired,
            now: now(),
        };
        let mut history = recs(history);
        let n = normalize_with_behavior(&args, &mut history, &[], &[], &mut Vec::new());
        assert_eq!((n.desired, n.able_reason), (want, reason), "{case}");
        assert_eq!(
            history.last(),
            Some(&Ev::new(desired, now())),
            "{case}: records the raw recommendation"
        );
    }
}

#[test]
fn behavior_rate_limits_and_bounds_set_scaling_limited_reasons() {
    use ScalingPolicyRule as R;
    let up = ResolvedRules {
        stabilization_window_seconds: 0,
        select_policy: SelectPolicy::Max,
        policies: &[R::pods(4, 15)],
    };
    let down = ResolvedRules {
        stabilization_window_seconds: 0,
        select_policy: SelectPolicy::Max,
        policies: &[R::pods(1, 15)],
    };
    // (case, current, desired, min, max, expected, reason)
    let table: &[(&str, i32, i32, i32, i32, i32, &str)] = &[
        ("within range", 4, 6, 1, 10, 6, "DesiredWithinRange"),
        ("scale-up limit", 2, 20, 1, 10, 6, "ScaleUpLimit"),
        (
            "max below the rate limit",
            2,
            20,
            1,
            5,
            5,
            "TooManyReplicas",
        ),
        ("scale-down limit", 5, 1, 1, 10, 4, "ScaleDownLimit"),
        ("min above the rate limit", 5, 1, 5, 10, 5, "TooFewReplicas"),
        ("no change", 5, 5, 1, 10, 5, "DesiredWithinRange"),
    ];
    for &(case, current, desired, min, max, want, reason) in table {
        let args = BehaviorArgs {
            up: &up,
            down: &down,
            min,
            max,
            current,
            desired,
            now: now(),
        };
        let n = normalize_with_behavior(&args, &mut Vec::new(), &[], &[], &mut Vec::new());
        assert_eq!((n.desired, n.limit_reason), (want, reason), "{case}");
    }
}

#[test]
fn without_behavior_scale_up_is_capped_at_twice_current_or_four() {
    // (case, current, desired, min, max, expected, reason)
    let table: &[(&str, i32, i32, i32, i32, i32, &str)] = &[
        ("cap of 4 from 1", 1, 10, 1, 20, 4, "ScaleUpLimit"),
        ("cap of 2×current", 3, 10, 1, 20, 6, "ScaleUpLimit"),
        ("max below the cap", 3, 10, 1, 5, 5, "TooManyReplicas"),
        ("within", 3, 5, 1, 20, 5, "DesiredWithinRange"),
        ("below min", 3, 0, 2, 20, 2, "TooFewReplicas"),
    ];
    for &(case, current, desired, min, max, want, reason) in table {
        let n = normalize_without_behavior(
            current,
            desired,
            min,
            max,
            300,
            &mut Vec::new(),
            now(),
            &mut Vec::new(),
        );
        assert_eq!((n.desired, n.limit_reason), (want, reason), "{case}");
    }
}

#[test]
fn without_behavior_scale_down_takes_the_highest_recommendation_of_300s() {
    let mut history = recs(&[(8, 300), (6, 100), (9, 301)]);
    let n = normalize_without_behavior(8, 3, 1, 20, 300, &mut history, now(), &mut Vec::new());
    assert_eq!(
        (n.desired, n.able_reason),
        (8, "ScaleDownStabilized"),
        "the cutoff itself is inside the window"
    );
    let mut history = recs(&[(6, 100), (9, 301)]);
    let n = normalize_without_behavior(8, 3, 1, 20, 300, &mut history, now(), &mut Vec::new());
    assert_eq!(n.desired, 6);
}
