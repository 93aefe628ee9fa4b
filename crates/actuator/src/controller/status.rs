//! PromScaler status: built from a decision (or a failure), written only when something a user
//! or a successor needs changed, and the decision state's round trip through it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
#[cfg(test)]
use k8s_openapi::jiff;
use promscaler_api::{
    Condition, DecisionStateStatus, HealthStatus, NameMap, PromScalerStatus, TimestampedReplicas,
};
use promscaler_proto::v1 as pb;

/// Converts a protobuf timestamp to a Kubernetes time (None when out of range).
pub fn to_time(ts: &prost_types::Timestamp) -> Option<Time> {
    promscaler_api::state::time_from_proto(ts)
}

/// Converts a Kubernetes time to a protobuf timestamp.
pub fn from_time(time: &Time) -> prost_types::Timestamp {
    promscaler_api::state::time_to_proto(time)
}

/// The decision state as persisted in status.
pub fn state_to_status(state: &pb::DecisionState) -> DecisionStateStatus {
    DecisionStateStatus::from(state)
}

/// The decision state read back from status.
pub fn state_from_status(status: &DecisionStateStatus) -> pb::DecisionState {
    pb::DecisionState::from(status)
}

/// Rebuilds the decision state after a restart or failover, conservatively: what status holds
/// (cooldowns, scale events, failure counts) is kept; the recommendations made since the last
/// write are unknown, so the current replicas count as a recommendation made now, which blocks an
/// immediate scale-down (the HPA controller does the same after a restart); and a PromScaler that
/// was active at the last write is taken as active until now, so its cooldown restarts instead of
/// expiring early.
pub fn restore_state(
    persisted: Option<&PromScalerStatus>,
    current_replicas: i32,
    created: Option<&Time>,
    now: &prost_types::Timestamp,
) -> pb::DecisionState {
    let mut state = persisted
        .and_then(|s| s.decision_state.as_ref())
        .map(state_from_status)
        .unwrap_or_default();
    state.recommendations.push(pb::TimestampedReplicas {
        replicas: current_replicas,
        at: Some(*now),
    });
    let was_active = persisted.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Active" && c.status == "True")
    });
    if was_active {
        state.last_active_time = Some(*now);
    }
    if state.created_at.is_none() {
        state.created_at = created.map(from_time);
    }
    state
}

/// Sets condition `type_`, keeping its `lastTransitionTime` when the status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let transition = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(transition),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Conditions of a decision, with transition times carried over from `previous`.
pub fn decision_conditions(
    decision: &pb::DecideResponse,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let mut conditions = Vec::new();
    for condition in &decision.conditions {
        if matches!(
            condition.r#type.as_str(),
            "Ready" | "Active" | "Fallback" | "Paused"
        ) {
            set_condition(
                &mut conditions,
                previous,
                &condition.r#type,
                &condition.status,
                &condition.reason,
                &condition.message,
                now,
            );
        }
    }
    conditions
}

/// The message of a `KEDAScalerFailed` Warning Event when this decision's Ready condition reports
/// failing triggers (`TriggerError` or `PartialTriggerError`) and the status did not already
/// have that reason; `None` otherwise. Messages alone are not compared: a changed message does
/// not rewrite the status either (`same_significant`), so it would fire on every tick.
pub fn trigger_failure_event(
    decision: &pb::DecideResponse,
    previous: Option<&PromScalerStatus>,
) -> Option<String> {
    let ready = decision.conditions.iter().find(|c| c.r#type == "Ready")?;
    if !matches!(
        ready.reason.as_str(),
        "TriggerError" | "PartialTriggerError"
    ) {
        return None;
    }
    let unchanged = previous.is_some_and(|p| {
        p.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some(ready.reason.as_str()))
    });
    (!unchanged).then(|| ready.message.clone())
}

/// Per-trigger health (KEDA: `Happy` or `Failing` with the failure count).
pub fn health(decision: &pb::DecideResponse) -> NameMap<HealthStatus> {
    decision
        .triggers
        .iter()
        .map(|t| {
            let failing = t.error.is_some();
            (
                t.name.clone(),
                HealthStatus {
                    number_of_failures: Some(t.consecutive_failures),
                    status: Some(if failing { "Failing" } else { "Happy" }.to_owned()),
                },
            )
        })
        .collect()
}

/// Whether two times are the same once written: status times are serialized to the second.
fn same_time(a: Option<&Time>, b: Option<&Time>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.0.as_second() == b.0.as_second(),
        _ => false,
    }
}

fn same_events(a: &[TimestampedReplicas], b: &[TimestampedReplicas]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.replicas == b.replicas && same_time(Some(&a.time), Some(&b.time)))
}

/// Whether `a` and `b` agree on everything whose change is worth an API write: everything but
/// the values that move every tick (metric values, condition messages that quote them, the
/// decision state between scale events, lastActiveTime while active). Compared field by field
/// (times to the second, as written) without building anything: this runs on every tick.
pub fn same_significant(a: &PromScalerStatus, b: &PromScalerStatus) -> bool {
    let conditions = a.conditions.len() == b.conditions.len()
        && a.conditions.iter().zip(&b.conditions).all(|(a, b)| {
            a.type_ == b.type_
                && a.status == b.status
                && a.reason.as_deref().unwrap_or("") == b.reason.as_deref().unwrap_or("")
        });
    let scale_events = match (&a.decision_state, &b.decision_state) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            same_events(&a.scale_up_events, &b.scale_up_events)
                && same_events(&a.scale_down_events, &b.scale_down_events)
        }
        _ => false,
    };
    conditions
        && scale_events
        && a.original_replica_count == b.original_replica_count
        && a.health == b.health
        && a.desired_replicas == b.desired_replicas
        && a.current_replicas == b.current_replicas
        && same_time(a.last_scale_time.as_ref(), b.last_scale_time.as_ref())
        && a.paused_replica_count == b.paused_replica_count
        && a.observed_generation == b.observed_generation
        && a.triggers_types == b.triggers_types
        && a.authentications_types == b.authentications_types
}

/// Whether `new` differs from `old` in a way a user or a successor needs.
pub fn needs_write(old: Option<&PromScalerStatus>, new: &PromScalerStatus) -> bool {
    old.is_none_or(|old| !same_significant(old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn decision_state_survives_the_round_trip_through_status() {
        let state = pb::DecisionState {
            recommendations: vec![pb::TimestampedReplicas {
                replicas: 3,
                at: Some(ts(100)),
            }],
            scale_up_events: vec![pb::TimestampedReplicas {
                replicas: 1,
                at: Some(ts(90)),
            }],
            scale_down_events: vec![],
            last_active_time: Some(ts(95)),
            consecutive_failures: [("rps".to_owned(), 2)].into(),
            created_at: Some(ts(10)),
            last_good_values: [(
                "rps".to_owned(),
                pb::TimestampedValue {
                    value: 140.0,
                    at: Some(ts(99)),
                },
            )]
            .into(),
            initialized: true,
        };
        assert_eq!(state_from_status(&state_to_status(&state)), state);
    }

    #[test]
    fn a_failing_trigger_event_is_recorded_once_per_transition() {
        let decision = |reason: &str, message: &str| pb::DecideResponse {
            conditions: vec![pb::Condition {
                r#type: "Ready".into(),
                status: "False".into(),
                reason: reason.into(),
                message: message.into(),
            }],
            ..pb::DecideResponse::default()
        };
        let failing = decision(
            "TriggerError",
            "Triggers defined in ScaledObject are not working correctly: q: timeout",
        );
        assert_eq!(
            trigger_failure_event(&failing, None).as_deref(),
            Some("Triggers defined in ScaledObject are not working correctly: q: timeout")
        );
        let now = Time(jiff::Timestamp::from_second(100).unwrap());
        let mut written = PromScalerStatus::default();
        set_condition(
            &mut written.conditions,
            &[],
            "Ready",
            "False",
            "TriggerError",
            "old text",
            &now,
        );
        assert_eq!(
            trigger_failure_event(&failing, Some(&written)),
            None,
            "same reason: no new Event"
        );
        let partial = decision(
            "PartialTriggerError",
            "Some triggers defined in ScaledObject are not working correctly: q: timeout",
        );
        assert!(trigger_failure_event(&partial, Some(&written)).is_some());
        let ready = decision(
            "ScaledObjectReady",
            "ScaledObject is defined correctly and is ready for scaling",
        );
        assert_eq!(trigger_failure_event(&ready, None), None);
    }

    #[test]
    fn restore_blocks_immediate_scale_down_and_restarts_an_active_cooldown() {
        let persisted = PromScalerStatus {
            conditions: vec![Condition {
                type_: "Active".into(),
                status: "True".into(),
                ..Condition::default()
            }],
            decision_state: Some(state_to_status(&pb::DecisionState {
                last_active_time: Some(ts(50)),
                scale_up_events: vec![pb::TimestampedReplicas {
                    replicas: 1,
                    at: Some(ts(40)),
                }],
                ..pb::DecisionState::default()
            })),
            ..PromScalerStatus::default()
        };
        let state = restore_state(Some(&persisted), 3, None, &ts(200));
        assert_eq!(
            state.recommendations,
            vec![pb::TimestampedReplicas {
                replicas: 3,
                at: Some(ts(200))
            }]
        );
        assert_eq!(state.last_active_time, Some(ts(200)));
        assert_eq!(
            state.scale_up_events.len(),
            1,
            "scale-event history is kept"
        );
    }

    #[test]
    fn inactive_scalers_keep_their_persisted_last_active_time() {
        let persisted = PromScalerStatus {
            decision_state: Some(state_to_status(&pb::DecisionState {
                last_active_time: Some(ts(50)),
                ..pb::DecisionState::default()
            })),
            ..PromScalerStatus::default()
        };
        let state = restore_state(Some(&persisted), 0, None, &ts(200));
        assert_eq!(state.last_active_time, Some(ts(50)));
    }

    #[test]
    fn metric_values_and_messages_alone_do_not_cause_a_write() {
        let now = Time(jiff::Timestamp::from_second(1000).unwrap());
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            &[],
            "Active",
            "True",
            "ScalerActive",
            "rps 140 > 0",
            &now,
        );
        let old = PromScalerStatus {
            conditions: conditions.clone(),
            last_metric_values: [("rps".to_owned(), 140.0)].into_iter().collect(),
            desired_replicas: Some(3),
            ..PromScalerStatus::default()
        };
        let mut new = old.clone();
        new.last_metric_values.insert("rps".to_owned(), 141.0);
        new.conditions[0].message = Some("rps 141 > 0".into());
        assert!(!needs_write(Some(&old), &new));
        new.desired_replicas = Some(4);
        assert!(needs_write(Some(&old), &new));
        assert!(needs_write(None, &new));
    }

    #[test]
    fn times_count_to_the_second_as_written_and_scale_events_always_count() {
        let at = |ms: i64| Time(jiff::Timestamp::from_millisecond(ms).unwrap());
        let old = PromScalerStatus {
            last_scale_time: Some(at(1_000_250)),
            decision_state: Some(DecisionStateStatus {
                scale_up_events: vec![TimestampedReplicas {
                    replicas: 2,
                    time: at(1_000_250),
                }],
                ..DecisionStateStatus::default()
            }),
            ..PromScalerStatus::default()
        };
        // The same status read back from the API server: times truncated to the second.
        let mut read_back = old.clone();
        read_back.last_scale_time = Some(at(1_000_000));
        read_back.decision_state.as_mut().unwrap().scale_up_events[0].time = at(1_000_000);
        assert!(!needs_write(Some(&old), &read_back));
        let mut later = read_back.clone();
        later.last_scale_time = Some(at(1_001_000));
        assert!(needs_write(Some(&old), &later));
        let mut another_event = read_back;
        another_event
            .decision_state
            .as_mut()
            .unwrap()
            .scale_up_events
            .push(TimestampedReplicas {
                replicas: 1,
                time: at(1_002_000),
            });
        assert!(needs_write(Some(&old), &another_event));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let t1 = Time(jiff::Timestamp::from_second(1000).unwrap());
        let t2 = Time(jiff::Timestamp::from_second(2000).unwrap());
        let mut first = Vec::new();
        set_condition(&mut first, &[], "Ready", "True", "ScalerReady", "", &t1);
        let mut same = Vec::new();
        set_condition(&mut same, &first, "Ready", "True", "ScalerReady", "", &t2);
        assert_eq!(same[0].last_transition_time, Some(t1));
        let mut flipped = Vec::new();
        set_condition(&mut flipped, &first, "Ready", "False", "Broken", "", &t2);
        assert_eq!(flipped[0].last_transition_time, Some(t2));
    }
}
