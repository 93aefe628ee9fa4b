//! Wire ↔ domain conversion for the decision service, in one place.
//!
//! Both sides are foreign to this crate (`promscaler_proto::v1` and `promscaler_core`), so the
//! orphan rule rules out `From`/`TryFrom` impls between them; these functions play that role.
//! Every rejection names the field by its protobuf path.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use promscaler_core as core;
use promscaler_proto::v1;

use super::Error;

type Result<T> = std::result::Result<T, Error>;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// Wire timestamp → domain (milliseconds since the epoch, saturating).
pub(crate) fn timestamp_from_wire(
    t: &prost_types::Timestamp,
    field: &str,
) -> Result<core::Timestamp> {
    timestamp_lazy(t, || field.to_owned())
}

/// As [`timestamp_from_wire`], naming the field only on error (no formatting per entry on the
/// hot path).
fn timestamp_lazy(
    t: &prost_types::Timestamp,
    field: impl FnOnce() -> String,
) -> Result<core::Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(invalid(
            field(),
            format!("nanos must be within 0..1e9, got {}", t.nanos),
        ));
    }
    Ok(core::Timestamp::from_millis(
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000)),
    ))
}

/// Domain timestamp → wire.
pub(crate) fn timestamp_to_wire(t: core::Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    // rem_euclid(1000) is within 0..1000, so the nanos fit in i32.
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) as i32) * 1_000_000,
    }
}

/// The server's clock as a domain timestamp (used when a request has no `now`).
pub(crate) fn system_time(now: SystemTime) -> core::Timestamp {
    match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => core::Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(e) => core::Timestamp::from_millis(
            -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        ),
    }
}

fn duration_from_wire(d: &prost_types::Duration, field: &str) -> Result<Duration> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(invalid(field, "must not be negative"));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(invalid(
            field,
            format!("nanos must be below 1e9, got {}", d.nanos),
        ));
    }
    // Both checked non-negative above.
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

fn metric_type(v: i32, field: impl FnOnce() -> String) -> Result<core::MetricType> {
    match v1::MetricType::try_from(v) {
        Ok(v1::MetricType::Unspecified | v1::MetricType::AverageValue) => {
            Ok(core::MetricType::AverageValue)
        }
        Ok(v1::MetricType::Value) => Ok(core::MetricType::Value),
        Err(_) => Err(invalid(field(), format!("unknown metric type {v}"))),
    }
}

fn fallback_behavior(v: i32) -> Result<core::FallbackBehavior> {
    match v1::FallbackBehavior::try_from(v) {
        Ok(v1::FallbackBehavior::Static) => Ok(core::FallbackBehavior::Static),
        Ok(v1::FallbackBehavior::CurrentReplicas) => Ok(core::FallbackBehavior::CurrentReplicas),
        Ok(v1::FallbackBehavior::CurrentReplicasIfHigher) => {
            Ok(core::FallbackBehavior::CurrentReplicasIfHigher)
        }
        Ok(v1::FallbackBehavior::CurrentReplicasIfLower) => {
            Ok(core::FallbackBehavior::CurrentReplicasIfLower)
        }
        Ok(v1::FallbackBehavior::ScalingModifiers) => Ok(core::FallbackBehavior::ScalingModifiers),
        Err(_) => Err(invalid(
            "policy.fallback.behavior",
            format!("unknown fallback behavior {v}"),
        )),
    }
}

fn rules_from_wire(r: &v1::ScalingRules, dir: &str) -> Result<core::ScalingRules> {
    let select_policy = match v1::SelectPolicy::try_from(r.select_policy) {
        Ok(v1::SelectPolicy::Max) => core::SelectPolicy::Max,
        Ok(v1::SelectPolicy::Min) => core::SelectPolicy::Min,
        Ok(v1::SelectPolicy::Disabled) => core::SelectPolicy::Disabled,
        Err(_) => {
            return Err(invalid(
                format!("policy.behavior.{dir}.select_policy"),
                format!("unknown select policy {}", r.select_policy),
            ));
        }
    };
    let policies = r
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let kind = match v1::PolicyType::try_from(p.r#type) {
                Ok(v1::PolicyType::Pods) => core::PolicyType::Pods,
                Ok(v1::PolicyType::Percent) => core::PolicyType::Percent,
                Ok(v1::PolicyType::Unspecified) | Err(_) => {
                    return Err(invalid(
                        format!("policy.behavior.{dir}.policies[{i}].type"),
                        "must be POLICY_TYPE_PODS or POLICY_TYPE_PERCENT",
                    ));
                }
            };
            Ok(core::ScalingPolicyRule {
                kind,
                value: p.value,
                period_seconds: p.period_seconds,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(core::ScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy,
        policies,
        tolerance: r.tolerance,
    })
}

/// Wire policy → domain policy (field-level checks; the core validates the rules).
pub(crate) fn policy_from_wire(p: &v1::ScalingPolicy) -> Result<core::ScalingPolicy> {
    let triggers = p
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(core::TriggerPolicy {
                name: t.name.as_str().into(),
                metric_type: metric_type(t.metric_type, || {
                    format!("policy.triggers[{i}].metric_type")
                })?,
                target: t.target,
                activation_target: t.activation_target,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let behavior = match &p.behavior {
        None => None,
        Some(b) => Some(core::Behavior {
            scale_up: b
                .scale_up
                .as_ref()
                .map(|r| rules_from_wire(r, "scale_up"))
                .transpose()?,
            scale_down: b
                .scale_down
                .as_ref()
                .map(|r| rules_from_wire(r, "scale_down"))
                .transpose()?,
        }),
    };
    let scaling_modifiers = match &p.scaling_modifiers {
        None => None,
        Some(m) => Some(core::ScalingModifiers {
            formula: m.formula.clone(),
            target: m.target,
            activation_target: m.activation_target,
            metric_type: metric_type(m.metric_type, || {
                "policy.scaling_modifiers.metric_type".to_owned()
            })?,
        }),
    };
    Ok(core::ScalingPolicy {
        min_replicas: p.min_replicas,
        max_replicas: p.max_replicas,
        idle_replicas: p.idle_replicas,
        cooldown_period: match &p.cooldown_period {
            Some(d) => duration_from_wire(d, "policy.cooldown_period")?,
            None => core::DEFAULT_COOLDOWN,
        },
        initial_cooldown_period: match &p.initial_cooldown_period {
            Some(d) => duration_from_wire(d, "policy.initial_cooldown_period")?,
            None => Duration::ZERO,
        },
        fallback: match &p.fallback {
            Some(f) => Some(core::Fallback {
                failure_threshold: f.failure_threshold,
                replicas: f.replicas,
                behavior: fallback_behavior(f.behavior)?,
            }),
            None => None,
        },
        behavior,
        triggers,
        scaling_modifiers,
        tolerance: p.tolerance,
        last_known_good_ttl: p
            .last_known_good_ttl
            .as_ref()
            .map(|d| duration_from_wire(d, "policy.last_known_good_ttl"))
            .transpose()?,
    })
}

fn query_error_kind(v: i32) -> core::QueryErrorKind {
    use core::QueryErrorKind as K;
    use v1::QueryErrorKind as W;
    // Unknown kinds (from a newer fetcher) are still failures: keep them, unspecified.
    match W::try_from(v) {
        Ok(W::Unspecified) | Err(_) => K::Unspecified,
        Ok(W::Unreachable) => K::Unreachable,
        Ok(W::Timeout) => K::Timeout,
        Ok(W::Throttled) => K::Throttled,
        Ok(W::Unauthenticated) => K::Unauthenticated,
        Ok(W::Forbidden) => K::Forbidden,
        Ok(W::BadQuery) => K::BadQuery,
        Ok(W::EmptyResult) => K::EmptyResult,
        Ok(W::MultipleSeries) => K::MultipleSeries,
        Ok(W::NotFinite) => K::NotFinite,
        Ok(W::Upstream) => K::Upstream,
        Ok(W::DeniedByPolicy) => K::DeniedByPolicy,
        Ok(W::InvalidArgument) => K::InvalidArgument,
    }
}

fn query_error_to_wire(e: &core::QueryFailure) -> v1::QueryError {
    use core::QueryErrorKind as K;
    use v1::QueryErrorKind as W;
    let kind = match e.kind {
        // "Missing" is ours (no observation sent); on the wire it is unspecified.
        K::Unspecified | K::Missing => W::Unspecified,
        K::Unreachable => W::Unreachable,
        K::Timeout => W::Timeout,
        K::Throttled => W::Throttled,
        K::Unauthenticated => W::Unauthenticated,
        K::Forbidden => W::Forbidden,
        K::BadQuery => W::BadQuery,
        K::EmptyResult => W::EmptyResult,
        K::MultipleSeries => W::MultipleSeries,
        K::NotFinite => W::NotFinite,
        K::Upstream => W::Upstream,
        K::DeniedByPolicy => W::DeniedByPolicy,
        K::InvalidArgument => W::InvalidArgument,
    };
    v1::QueryError {
        kind: kind as i32,
        message: e.message.clone(),
        http_status: e.http_status,
    }
}

pub(crate) fn observations_from_wire(
    obs: &[v1::Observation],
    field: &str,
) -> Result<Vec<core::Observation>> {
    obs.iter()
        .enumerate()
        .map(|(i, o)| {
            let result = match &o.result {
                Some(v1::observation::Result::Value(v)) => Ok(*v),
                Some(v1::observation::Result::Error(e)) => Err(core::QueryFailure {
                    kind: query_error_kind(e.kind),
                    message: e.message.clone(),
                    http_status: e.http_status,
                }),
                None => {
                    return Err(invalid(
                        format!("{field}[{i}].result"),
                        "set either value or error",
                    ));
                }
            };
            Ok(core::Observation {
                trigger: o.trigger.clone(),
                result,
            })
        })
        .collect()
}

pub(crate) fn replicas_from_wire(
    r: Option<&v1::Replicas>,
    field: &'static str,
) -> Result<core::Replicas> {
    let r = r.ok_or(Error::Missing { field })?;
    Ok(core::Replicas {
        spec: r.spec,
        status: r.status,
        ready: r.ready,
    })
}

pub(crate) fn pause_from_wire(p: Option<&v1::Pause>) -> core::Pause {
    p.map_or_else(core::Pause::default, |p| core::Pause {
        paused: p.paused,
        paused_replicas: p.paused_replicas,
        scale_in_paused: p.scale_in_paused,
        scale_out_paused: p.scale_out_paused,
    })
}

fn history_from_wire(
    list: &[v1::TimestampedReplicas],
    field: &str,
) -> Result<Vec<core::TimestampedReplicas>> {
    if list.len() > core::MAX_HISTORY {
        return Err(invalid(
            field,
            format!("at most {} entries", core::MAX_HISTORY),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let at =
                r.at.as_ref()
                    .ok_or_else(|| invalid(format!("{field}[{i}].at"), "is required"))?;
            Ok(core::TimestampedReplicas::new(
                r.replicas,
                timestamp_lazy(at, || format!("{field}[{i}].at"))?,
            ))
        })
        .collect()
}

fn history_to_wire(list: &[core::TimestampedReplicas]) -> Vec<v1::TimestampedReplicas> {
    list.iter()
        .map(|r| v1::TimestampedReplicas {
            replicas: r.replicas,
            at: Some(timestamp_to_wire(r.at)),
        })
        .collect()
}

fn optional_ts(t: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<core::Timestamp>> {
    t.map(|t| timestamp_from_wire(t, field)).transpose()
}

/// Wire state → domain state (absent = a fresh scaler).
pub(crate) fn state_from_wire(s: Option<&v1::DecisionState>) -> Result<core::DecisionState> {
    let Some(s) = s else {
        return Ok(core::DecisionState::default());
    };
    let mut last_good_values = BTreeMap::new();
    for (k, v) in &s.last_good_values {
        let field = "state.last_good_values.at";
        let at = v.at.as_ref().ok_or_else(|| invalid(field, "is required"))?;
        last_good_values.insert(
            k.clone(),
            core::TimestampedValue {
                value: v.value,
                at: timestamp_from_wire(at, field)?,
            },
        );
    }
    Ok(core::DecisionState {
        recommendations: history_from_wire(&s.recommendations, "state.recommendations")?,
        scale_up_events: history_from_wire(&s.scale_up_events, "state.scale_up_events")?,
        scale_down_events: history_from_wire(&s.scale_down_events, "state.scale_down_events")?,
        last_active_time: optional_ts(s.last_active_time.as_ref(), "state.last_active_time")?,
        consecutive_failures: s
            .consecutive_failures
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        created_at: optional_ts(s.created_at.as_ref(), "state.created_at")?,
        last_good_values,
        initialized: s.initialized,
    })
}

/// Domain state → wire state.
pub(crate) fn state_to_wire(s: &core::DecisionState) -> v1::DecisionState {
    v1::DecisionState {
        recommendations: history_to_wire(&s.recommendations),
        scale_up_events: history_to_wire(&s.scale_up_events),
        scale_down_events: history_to_wire(&s.scale_down_events),
        last_active_time: s.last_active_time.map(timestamp_to_wire),
        consecutive_failures: s
            .consecutive_failures
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<HashMap<_, _>>(),
        created_at: s.created_at.map(timestamp_to_wire),
        last_good_values: s
            .last_good_values
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v1::TimestampedValue {
                        value: v.value,
                        at: Some(timestamp_to_wire(v.at)),
                    },
                )
            })
            .collect(),
        initialized: s.initialized,
    }
}

/// Domain decision → wire response.
pub(crate) fn decision_to_wire(d: core::Decision) -> v1::DecideResponse {
    v1::DecideResponse {
        desired_replicas: d.desired_replicas,
        active: d.active,
        fallback_active: d.fallback_active,
        conditions: d
            .conditions
            .iter()
            .map(|c| v1::Condition {
                r#type: c.kind.as_str().to_owned(),
                status: c.status.as_str().to_owned(),
                reason: c.reason.to_owned(),
                message: c.message.clone().into_owned(),
            })
            .collect(),
        state: Some(state_to_wire(&d.state)),
        explanation: d.explanation_lines(),
        triggers: d
            .triggers
            .into_iter()
            .map(|t| v1::TriggerOutcome {
                name: t.name.to_string(),
                value: t.value,
                proposal: t.proposal,
                active: t.active,
                error: t.error.as_ref().map(query_error_to_wire),
                stale: t.stale,
                fallback: t.fallback,
                consecutive_failures: t.consecutive_failures,
                // Filled from the wire policy by the caller (the domain outcome has no target).
                target: 0.0,
            })
            .collect(),
    }
}

/// Wire simulation → domain simulation.
pub(crate) fn simulation_from_wire(r: &v1::SimulateRequest) -> Result<core::Simulation> {
    if r.steps.len() > core::MAX_SIMULATION_STEPS {
        return Err(invalid(
            "steps",
            format!("at most {} steps", core::MAX_SIMULATION_STEPS),
        ));
    }
    let steps = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let field = format!("steps[{i}].at");
            let at =
                s.at.as_ref()
                    .ok_or_else(|| invalid(field.clone(), "is required"))?;
            Ok(core::SimulationStep {
                at: timestamp_from_wire(at, &field)?,
                observations: observations_from_wire(
                    &s.observations,
                    &format!("steps[{i}].observations"),
                )?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(core::Simulation {
        initial: replicas_from_wire(r.initial.as_ref(), "initial")?,
        steps,
        pause: pause_from_wire(r.pause.as_ref()),
        ready_delay_seconds: r.ready_delay_seconds,
    })
}

/// Domain trajectory → wire response (consumed: the reasons move, not copied).
pub(crate) fn simulated_to_wire(steps: Vec<core::SimulatedStep>) -> v1::SimulateResponse {
    v1::SimulateResponse {
        steps: steps
            .into_iter()
            .map(|s| v1::SimulatedStep {
                at: Some(timestamp_to_wire(s.at)),
                desired_replicas: s.desired_replicas,
                active: s.active,
                fallback_active: s.fallback_active,
                reason: s.reason,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for ms in [0i64, 1, 999, 1_795_910_400_123, -1, -1001] {
            let t = core::Timestamp::from_millis(ms);
            assert_eq!(
                timestamp_from_wire(&timestamp_to_wire(t), "now").unwrap(),
                t
            );
        }
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert!(timestamp_from_wire(&bad, "now").is_err());
        let huge = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            timestamp_from_wire(&huge, "now").unwrap(),
            core::Timestamp::from_millis(i64::MAX)
        );
    }

    #[test]
    fn negative_durations_are_rejected_with_their_field() {
        let p = v1::ScalingPolicy {
            cooldown_period: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        };
        match policy_from_wire(&p) {
            Err(Error::InvalidField { field, .. }) => assert_eq!(field, "policy.cooldown_period"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn absent_cooldown_is_keda_default_and_absent_behavior_stays_absent() {
        let p = policy_from_wire(&v1::ScalingPolicy::default()).unwrap();
        assert_eq!(p.cooldown_period, Duration::from_secs(300));
        assert_eq!(p.initial_cooldown_period, Duration::ZERO);
        assert!(p.behavior.is_none());
        assert!(p.last_known_good_ttl.is_none());
    }

    #[test]
    fn state_round_trips() {
        let mut s = core::DecisionState {
            recommendations: vec![core::TimestampedReplicas::new(
                3,
                core::Timestamp::from_secs(10),
            )],
            scale_up_events: vec![core::TimestampedReplicas::new(
                1,
                core::Timestamp::from_secs(11),
            )],
            scale_down_events: vec![core::TimestampedReplicas::new(
                2,
                core::Timestamp::from_secs(12),
            )],
            last_active_time: Some(core::Timestamp::from_millis(13_500)),
            created_at: Some(core::Timestamp::from_secs(1)),
            ..Default::default()
        };
        s.consecutive_failures.insert("rps".into(), 2);
        s.last_good_values.insert(
            "rps".into(),
            core::TimestampedValue {
                value: 4.5,
                at: core::Timestamp::from_secs(9),
            },
        );
        let wire = state_to_wire(&s);
        assert_eq!(state_from_wire(Some(&wire)).unwrap(), s);
    }
}
