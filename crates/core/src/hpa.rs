//! The Kubernetes HPA controller's rules (`pkg/controller/podautoscaler/horizontal.go` and
//! `replica_calculator.go`), as pure functions over plain data.

use crate::decision::{Direction, Step};
use crate::input::Replicas;
use crate::policy::{
    MetricType, PolicyType, ResolvedRules, ScalingPolicyRule, SelectPolicy, Tolerances,
};
use crate::state::TimestampedReplicas;
use crate::time::Timestamp;

/// HPA `scaleUpLimitFactor` and `scaleUpLimitMinimum` (no-behavior path).
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

/// Rounds a replica count up and saturates into `0..=i32::MAX` (NaN → 0), where Go's
/// `int32(math.Ceil(x))` would overflow.
pub(crate) fn ceil_replicas(x: f64) -> i32 {
    // `as` saturates and maps NaN to 0.
    x.ceil().max(0.0) as i32
}

/// A trigger's value or threshold as the HPA reads it, in milli-units: KEDA formats both with
/// `%.3f` into a Kubernetes quantity (v2.20+), and the HPA computes on `MilliValue()`s. Working
/// on whole milli-units reproduces its float results (1.1 / 0.1 is 1100 / 100 = 11, where the
/// floats give 11.000000000000002 and one replica more).
pub fn milli_rounded(x: f64) -> f64 {
    (x * 1000.0).round()
}

/// The scalingModifiers composite metric and its target in milli-units: KEDA sets them with
/// `SetMilli(int64(v × 1000))`, which truncates.
pub fn milli_truncated(x: f64) -> f64 {
    (x * 1000.0).trunc()
}

/// One trigger's proposal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Proposed replicas.
    pub replicas: i32,
    /// The usage ratio was inside the tolerance band (the current count is kept).
    pub within_tolerance: bool,
    /// Pods the value was judged against (status replicas, or ready pods for Value).
    pub pods: i32,
}

/// What one trigger proposes (replica_calculator.go):
/// - AverageValue (`GetExternalPerPodMetricReplicas`): ratio = value / (target × status
///   replicas); inside the tolerance band keep status replicas, else ceil(value / target).
/// - Value (`GetExternalMetricReplicas` → `getUsageRatioReplicaCount`): ratio = value / target;
///   with spec replicas > 0: inside the band keep spec replicas, else ceil(ratio × ready pods);
///   from zero: ceil(ratio).
pub fn propose(
    metric_type: MetricType,
    value: f64,
    target: f64,
    replicas: Replicas,
    tol: Tolerances,
) -> Proposal {
    match metric_type {
        MetricType::AverageValue => {
            let status = replicas.status.max(0);
            if status > 0 {
                let ratio = value / (target * f64::from(status));
                if tol.contains(ratio) {
                    return Proposal {
                        replicas: status,
                        within_tolerance: true,
                        pods: status,
                    };
                }
            }
            Proposal {
                replicas: ceil_replicas(value / target),
                within_tolerance: false,
                pods: status,
            }
        }
        MetricType::Value => {
            let ratio = value / target;
            let ready = replicas.ready.max(0);
            if replicas.spec > 0 {
                if tol.contains(ratio) {
                    return Proposal {
                        replicas: replicas.spec,
                        within_tolerance: true,
                        pods: ready,
                    };
                }
                Proposal {
                    replicas: ceil_replicas(ratio * f64::from(ready)),
                    within_tolerance: false,
                    pods: ready,
                }
            } else {
                Proposal {
                    replicas: ceil_replicas(ratio),
                    within_tolerance: false,
                    pods: ready,
                }
            }
        }
    }
}

/// How the proposals of all triggers combine (`computeReplicasForMetrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combined {
    /// Max over valid proposals, and the index of the trigger that gave it.
    Valid {
        /// Replicas.
        replicas: i32,
        /// Index of the winning proposal.
        index: usize,
    },
    /// Some proposal is invalid and the valid max is below the current count: no change.
    BlockedScaleDown {
        /// Max over the valid proposals.
        valid_max: i32,
    },
    /// Every proposal is invalid: no change.
    AllInvalid,
}

/// Max over valid proposals; an invalid one blocks a scale-down below `current`; all invalid ⇒
/// no change (HPA: "If all metrics are invalid or some are invalid and we would scale down,
/// return an error").
pub fn combine(proposals: impl IntoIterator<Item = Option<i32>>, current: i32) -> Combined {
    let mut best: Option<(i32, usize)> = None;
    let mut invalid = 0usize;
    for (i, p) in proposals.into_iter().enumerate() {
        match (p, best) {
            (None, _) => invalid += 1,
            (Some(r), None) => best = Some((r, i)),
            (Some(r), Some((b, _))) if r > b => best = Some((r, i)),
            (Some(_), Some(_)) => {}
        }
    }
    match best {
        None => Combined::AllInvalid,
        Some((r, _)) if invalid > 0 && r < current => Combined::BlockedScaleDown { valid_max: r },
        Some((replicas, index)) => Combined::Valid { replicas, index },
    }
}

/// Result of normalizing a recommendation (stabilization, then rate limits and min/max).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// Desired replicas.
    pub desired: i32,
    /// AbleToScale reason: ReadyForNewScale, ScaleUpStabilized or ScaleDownStabilized.
    pub able_reason: &'static str,
    /// ScalingLimited reason: DesiredWithinRange, ScaleUpLimit, ScaleDownLimit, TooManyReplicas, TooFewReplicas.
    pub limit_reason: &'static str,
    /// ScalingLimited status.
    pub limited: bool,
}

/// Replicas changed by events newer than `period_seconds` before `now` (`getReplicasChangePerPeriod`).
pub fn change_in_period(
    events: &[TimestampedReplicas],
    period_seconds: i32,
    now: Timestamp,
) -> i32 {
    let cutoff = now.add_secs(-i64::from(period_seconds));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .fold(0i32, |acc, e| acc.saturating_add(e.replicas))
}

/// The highest count rate policies allow scaling up to, and the policy that set it
/// (`calculateScaleUpLimitWithScalingRules`; the period start counts scale-downs back in).
pub fn scale_up_limit(
    current: i32,
    up_events: &[TimestampedReplicas],
    down_events: &[TimestampedReplicas],
    rules: &ResolvedRules<'_>,
    now: Timestamp,
) -> (i32, Option<ScalingPolicyRule>) {
    if rules.select_policy == SelectPolicy::Disabled {
        return (current, None);
    }
    let mut best: Option<(i32, ScalingPolicyRule)> = None;
    for rule in rules.policies {
        let start = current
            .saturating_sub(change_in_period(up_events, rule.period_seconds, now))
            .saturating_add(change_in_period(down_events, rule.period_seconds, now));
        let proposed = match rule.kind {
            PolicyType::Pods => start.saturating_add(rule.value),
            // Rounded up so a small percentage still allows one more pod.
            PolicyType::Percent => {
                ceil_replicas(f64::from(start) * (1.0 + f64::from(rule.value) / 100.0))
            }
        };
        let better = match (best, rules.select_policy) {
            (None, _) => true,
            (Some((b, _)), SelectPolicy::Min) => proposed < b,
            (Some((b, _)), _) => proposed > b,
        };
        if better {
            best = Some((proposed, *rule));
        }
    }
    best.map_or((current, None), |(r, rule)| (r, Some(rule)))
}

/// The lowest count rate policies allow scaling down to, and the policy that set it
/// (`calculateScaleDownLimitWithBehaviors`; Percent truncates, as `int32(float64)` does).
pub fn scale_down_limit(
    current: i32,
    up_events: &[TimestampedReplicas],
    down_events: &[TimestampedReplicas],
    rules: &ResolvedRules<'_>,
    now: Timestamp,
) -> (i32, Option<ScalingPolicyRule>) {
    if rules.select_policy == SelectPolicy::Disabled {
        return (current, None);
    }
    let mut best: Option<(i32, ScalingPolicyRule)> = None;
    for rule in rules.policies {
        let start = current
            .saturating_add(change_in_period(down_events, rule.period_seconds, now))
            .saturating_sub(change_in_period(up_events, rule.period_seconds, now));
        let proposed = match rule.kind {
            PolicyType::Pods => start.saturating_sub(rule.value),
            PolicyType::Percent => {
                (f64::from(start) * (1.0 - f64::from(rule.value) / 100.0)) as i32
            }
        };
        let better = match (best, rules.select_policy) {
            (None, _) => true,
            (Some((b, _)), SelectPolicy::Min) => proposed > b,
            (Some((b, _)), _) => proposed < b,
        };
        if better {
            best = Some((proposed, *rule));
        }
    }
    best.map_or((current, None), |(r, rule)| (r, Some(rule)))
}

/// Inputs of the behavior path.
pub struct BehaviorArgs<'a> {
    /// Scale-up rules.
    pub up: &'a ResolvedRules<'a>,
    /// Scale-down rules.
    pub down: &'a ResolvedRules<'a>,
    /// HPA minReplicas.
    pub min: i32,
    /// HPA maxReplicas.
    pub max: i32,
    /// Current (spec) replicas.
    pub current: i32,
    /// The unstabilized recommendation.
    pub desired: i32,
    /// Now.
    pub now: Timestamp,
}

/// `normalizeDesiredReplicasWithBehaviors`: stabilize (clamp current between the lowest
/// recommendation of the up-window and the highest of the down-window), record the
/// recommendation, then apply rate policies and min/max.
pub fn normalize_with_behavior(
    a: &BehaviorArgs<'_>,
    recommendations: &mut Vec<TimestampedReplicas>,
    up_events: &[TimestampedReplicas],
    down_events: &[TimestampedReplicas],
    steps: &mut Vec<Step>,
) -> Normalized {
    let up_cutoff = a
        .now
        .add_secs(-i64::from(a.up.stabilization_window_seconds));
    let down_cutoff = a
        .now
        .add_secs(-i64::from(a.down.stabilization_window_seconds));
    let (mut up_rec, mut down_rec) = (a.desired, a.desired);
    for r in recommendations.iter() {
        if r.at > up_cutoff {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at > down_cutoff {
            down_rec = down_rec.max(r.replicas);
        }
    }
    let stabilized = a.current.max(up_rec).min(down_rec);
    recommendations.push(TimestampedReplicas::new(a.desired, a.now));

    let able_reason = if stabilized == a.desired {
        "ReadyForNewScale"
    } else if a.desired >= a.current {
        steps.push(Step::Stabilized {
            direction: Direction::Up,
            from: a.desired,
            to: stabilized,
            window_seconds: a.up.stabilization_window_seconds,
        });
        "ScaleUpStabilized"
    } else {
        steps.push(Step::Stabilized {
            direction: Direction::Down,
            from: a.desired,
            to: stabilized,
            window_seconds: a.down.stabilization_window_seconds,
        });
        "ScaleDownStabilized"
    };

    // convertDesiredReplicasWithBehaviorRate
    let (desired, limit_reason) = if stabilized > a.current {
        let (limit, rule) = scale_up_limit(a.current, up_events, down_events, a.up, a.now);
        let limit = limit.max(a.current);
        let disabled = a.up.select_policy == SelectPolicy::Disabled;
        if a.max > limit {
            if stabilized > limit {
                steps.push(Step::RateLimited {
                    direction: Direction::Up,
                    to: limit,
                    rule,
                    disabled,
                });
                (limit, "ScaleUpLimit")
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else if stabilized > a.max {
            steps.push(Step::Clamped {
                to: a.max,
                bound: "maxReplicaCount",
            });
            (a.max, "TooManyReplicas")
        } else {
            (stabilized, "DesiredWithinRange")
        }
    } else if stabilized < a.current {
        let (limit, rule) = scale_down_limit(a.current, up_events, down_events, a.down, a.now);
        let limit = limit.min(a.current);
        let disabled = a.down.select_policy == SelectPolicy::Disabled;
        if a.min < limit {
            if stabilized < limit {
                steps.push(Step::RateLimited {
                    direction: Direction::Down,
                    to: limit,
                    rule,
                    disabled,
                });
                (limit, "ScaleDownLimit")
            } else {
                (stabilized, "DesiredWithinRange")
            }
        } else if stabilized < a.min {
            steps.push(Step::Clamped {
                to: a.min,
                bound: "minReplicaCount",
            });
            (a.min, "TooFewReplicas")
        } else {
            (stabilized, "DesiredWithinRange")
        }
    } else {
        (stabilized, "DesiredWithinRange")
    };
    Normalized {
        desired,
        able_reason,
        limit_reason,
        limited: desired != stabilized,
    }
}

/// `normalizeDesiredReplicas` (an HPA without `behavior`): the highest recommendation of the
/// last `window_seconds` (300 s, inclusive of the cutoff), then `convertDesiredReplicasWithRules`:
/// scale-up capped at max(2 × current, 4), then min/max.
// The arguments mirror upstream's `convertDesiredReplicasWithRules` one to one.
#[allow(clippy::too_many_arguments)]
pub fn normalize_without_behavior(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    window_seconds: i32,
    recommendations: &mut Vec<TimestampedReplicas>,
    now: Timestamp,
    steps: &mut Vec<Step>,
) -> Normalized {
    let cutoff = now.add_secs(-i64::from(window_seconds));
    let stabilized = recommendations
        .iter()
        .filter(|r| r.at >= cutoff)
        .fold(desired, |m, r| m.max(r.replicas));
    recommendations.push(TimestampedReplicas::new(desired, now));
    let able_reason = if stabilized == desired {
        "ReadyForNewScale"
    } else {
        steps.push(Step::Stabilized {
            direction: Direction::Down,
            from: desired,
            to: stabilized,
            window_seconds,
        });
        "ScaleDownStabilized"
    };
    let up_limit =
        ceil_replicas((SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM));
    let (max_allowed, max_reason) = if max > up_limit {
        (up_limit, "ScaleUpLimit")
    } else {
        (max, "TooManyReplicas")
    };
    let (out, limit_reason) = if stabilized < min {
        steps.push(Step::Clamped {
            to: min,
            bound: "minReplicaCount",
        });
        (min, "TooFewReplicas")
    } else if stabilized > max_allowed {
        if max_reason == "ScaleUpLimit" {
            steps.push(Step::RateLimited {
                direction: Direction::Up,
                to: max_allowed,
                rule: None,
                disabled: false,
            });
        } else {
            steps.push(Step::Clamped {
                to: max_allowed,
                bound: "maxReplicaCount",
            });
        }
        (max_allowed, max_reason)
    } else {
        (stabilized, "DesiredWithinRange")
    };
    Normalized {
        desired: out,
        able_reason,
        limit_reason,
        limited: out != stabilized,
    }
}

#[cfg(test)]
mod tests;
