//! PromScaler status: built from a decision (or a failure), written only when something a user
//! or a successor needs changed, and the decision state's round trip through it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
#[cfg(test)]
use k8s_openapi::jiff;
use promscaler_api::{
    Condition, DecisionStateStatus, HealthStatus, NameMap, PromScaler, PromScalerStatus,
    TimestampedReplicas,
};
use promscaler_proto::v1 as pb;

use crate::{reason, spec::Evaluated};

/// A decision and what the tick knew and did around it: everything the status it yields is
/// built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decided<'a> {
    /// The decision service's answer.
    pub decision: &'a pb::DecideResponse,
    /// The target's replicas as read before deciding.
    pub replicas: pb::Replicas,
    /// When the target was scaled to `decision.desired_replicas`; `None` = not scaled.
    pub scaled_at: Option<&'a prost_types::Timestamp>,
    /// The spec the decision was made for.
    pub evaluated: &'a Evaluated,
    /// The PromScaler's `metadata.generation`.
    pub generation: Option<i64>,
}

/// The status a decision yields, built on `previous` (conditions keep their transition times).
pub(crate) fn decided(
    previous: Option<&PromScalerStatus>,
    d: &Decided<'_>,
    now: &Time,
) -> PromScalerStatus {
    let decision = d.decision;
    let mut new = previous.cloned().unwrap_or_default();
    new.conditions = decision_conditions(
        decision,
        previous.map_or(&[], |p| p.conditions.as_slice()),
        now,
    );
    if new.original_replica_count.is_none() {
        new.original_replica_count = Some(d.replicas.spec);
    }
    new.health = health(decision);
    new.last_metric_values = decision
        .triggers
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.value?)))
        .collect();
    new.desired_replicas = Some(decision.desired_replicas);
    new.current_replicas = Some(if d.scaled_at.is_some() {
        decision.desired_replicas
    } else {
        d.replicas.spec
    });
    if let Some(at) = d.scaled_at.and_then(to_time) {
        new.last_scale_time = Some(at);
    }
    new.paused_replica_count = d.evaluated.pause.paused_replicas;
    new.observed_generation = d.generation;
    new.scale_target_kind = Some(d.evaluated.scale_target_kind.clone());
    new.triggers_types = Some(d.evaluated.triggers_types.clone());
    new.authentications_types =
        (!d.evaluated.authentications.is_empty()).then(|| d.evaluated.authentications.clone());
    if let Some(state) = &decision.state {
        new.last_active_time = state.last_active_time.as_ref().and_then(to_time);
        new.decision_state = Some(state_to_status(state));
    }
    new
}

/// Why a tick could not decide, as its `Ready=False` condition says it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure<'a> {
    /// The condition's reason (one of [`crate::reason`]).
    pub reason: &'static str,
    /// What went wrong and what to do.
    pub message: &'a str,
    /// Whether the spec was valid (the failure came later): the SCALETARGETKIND and TRIGGERS
    /// columns are then filled from it.
    pub spec_valid: bool,
}

/// The status a failed tick yields, built on `previous`: `Ready=False` with the failure's
/// reason, `Active`, `Fallback` and `Paused` `Unknown` where they were absent, everything else
/// as it was (the replicas are held).
pub(crate) fn failed(
    previous: Option<&PromScalerStatus>,
    scaler: &PromScaler,
    failure: &Failure<'_>,
    now: &Time,
) -> PromScalerStatus {
    let mut new = previous.cloned().unwrap_or_default();
    let old_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    set_condition(
        &mut new.conditions,
        old_conditions,
        "Ready",
        "False",
        failure.reason,
        failure.message,
        now,
    );
    for type_ in ["Active", "Fallback", "Paused"] {
        if !new.conditions.iter().any(|c| c.type_ == type_) {
            set_condition(
                &mut new.conditions,
                old_conditions,
                type_,
                "Unknown",
                "",
                "",
                now,
            );
        }
    }
    new.observed_generation = scaler.metadata.generation;
    if failure.spec_valid {
        new.triggers_types = Some(scaler.spec.triggers_types());
        new.scale_target_kind = Some(promscaler_api::scale_target_kind(
            &scaler.spec.scale_target_ref.with_defaults(),
        ));
    }
    new
}

/// Converts a protobuf timestamp to a Kubernetes time (None when out of range).
pub(crate) fn to_time(ts: &prost_types::Timestamp) -> Option<Time> {
    promscaler_api::state::time_from_proto(ts)
}

/// Converts a Kubernetes time to a protobuf timestamp.
pub(crate) fn from_time(time: &Time) -> prost_types::Timestamp {
    promscaler_api::state::time_to_proto(time)
}

/// The decision state as persisted in status.
pub(crate) fn state_to_status(state: &pb::DecisionState) -> DecisionStateStatus {
    DecisionStateStatus::from(state)
}

/// The decision state read back from status.
pub(crate) fn state_from_status(status: &DecisionStateStatus) -> pb::DecisionState {
    pb::DecisionState::from(status)
}

/// Rebuilds the decision state after a restart or failover, conservatively: what status holds
/// (cooldowns, scale events, failure counts) is kept; the recommendations made since the last
/// write are unknown, so the current replicas count as a recommendation made now, which blocks an
/// immediate scale-down (the HPA controller does the same after a restart); and a PromScaler that
/// was active at the last write is taken as active until now, so its cooldown restarts instead of
/// expiring early.
pub(crate) fn restore_state(
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
pub(crate) fn set_condition(
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
pub(crate) fn decision_conditions(
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
pub(crate) fn trigger_failure_event(
    decision: &pb::DecideResponse,
    previous: Option<&PromScalerStatus>,
) -> Option<String> {
    let ready = decision.conditions.iter().find(|c| c.r#type == "Ready")?;
    if ![reason::TRIGGER_ERROR, reason::PARTIAL_TRIGGER_ERROR].contains(&ready.reason.as_str()) {
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
pub(crate) fn health(decision: &pb::DecideResponse) -> NameMap<HealthStatus> {
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
pub(crate) fn same_significant(a: &PromScalerStatus, b: &PromScalerStatus) -> bool {
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
pub(crate) fn needs_write(old: Option<&PromScalerStatus>, new: &PromScalerStatus) -> bool {
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

    fn evaluated() -> Evaluated {
        Evaluated {
            policy: pb::ScalingPolicy::default(),
            queries: Vec::new(),
            trigger_names: vec!["rps".into()],
            pause: pb::Pause {
                paused_replicas: Some(4),
                ..pb::Pause::default()
            },
            polling_interval: std::time::Duration::from_secs(30),
            target: crate::types::TargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "app".into(),
            },
            scale_target_kind: "apps/v1.Deployment".into(),
            triggers_types: "prometheus".into(),
            authentications: String::new(),
        }
    }

    fn scaler() -> PromScaler {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "promscaler.io/v1alpha1",
            "kind": "PromScaler",
            "metadata": { "name": "s", "namespace": "ns", "generation": 7 },
            "spec": {
                "scaleTargetRef": { "name": "app", "kind": "StatefulSet" },
                "triggers": [{ "type": "prometheus", "metadata": {} }]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_scaling_decision_yields_its_replicas_values_health_and_state() {
        let now = Time(jiff::Timestamp::from_second(1000).unwrap());
        let decision = pb::DecideResponse {
            desired_replicas: 3,
            conditions: vec![pb::Condition {
                r#type: "Ready".into(),
                status: "True".into(),
                reason: "ScaledObjectReady".into(),
                message: String::new(),
            }],
            triggers: vec![pb::TriggerOutcome {
                name: "rps".into(),
                value: Some(140.0),
                consecutive_failures: 0,
                ..Default::default()
            }],
            state: Some(pb::DecisionState {
                last_active_time: Some(ts(990)),
                ..pb::DecisionState::default()
            }),
            ..pb::DecideResponse::default()
        };
        let evaluated = evaluated();
        let decided_at = ts(1000);
        let d = Decided {
            decision: &decision,
            replicas: pb::Replicas {
                spec: 2,
                status: 2,
                ready: 2,
            },
            scaled_at: Some(&decided_at),
            evaluated: &evaluated,
            generation: Some(7),
        };
        let new = decided(None, &d, &now);
        assert_eq!(new.desired_replicas, Some(3));
        assert_eq!(new.current_replicas, Some(3), "scaled: the new count");
        assert_eq!(new.original_replica_count, Some(2));
        assert_eq!(new.last_scale_time, Some(now.clone()));
        assert_eq!(new.last_metric_values.get("rps"), Some(&140.0));
        assert_eq!(
            new.health.get("rps").and_then(|h| h.status.as_deref()),
            Some("Happy")
        );
        assert_eq!(new.paused_replica_count, Some(4));
        assert_eq!(new.observed_generation, Some(7));
        assert_eq!(new.scale_target_kind.as_deref(), Some("apps/v1.Deployment"));
        assert_eq!(new.authentications_types, None);
        assert_eq!(
            new.last_active_time,
            Some(Time(jiff::Timestamp::from_second(990).unwrap()))
        );
        assert_eq!(new.conditions.len(), 1);

        // Held: current stays what was read; the original count and last scale time are kept.
        let held = Decided {
            scaled_at: None,
            replicas: pb::Replicas {
                spec: 3,
                status: 3,
                ready: 3,
            },
            ..d
        };
        let later = Time(jiff::Timestamp::from_second(1030).unwrap());
        let next = decided(Some(&new), &held, &later);
        assert_eq!(next.current_replicas, Some(3));
        assert_eq!(next.original_replica_count, Some(2));
        assert_eq!(next.last_scale_time, Some(now));
        assert!(!needs_write(Some(&new), &next), "nothing significant moved");
    }

    #[test]
    fn a_failure_sets_ready_false_and_unknowns_and_keeps_the_rest() {
        let now = Time(jiff::Timestamp::from_second(1000).unwrap());
        let previous = PromScalerStatus {
            desired_replicas: Some(3),
            conditions: vec![Condition {
                type_: "Active".into(),
                status: "True".into(),
                ..Condition::default()
            }],
            ..PromScalerStatus::default()
        };
        let failure = Failure {
            reason: reason::DECISION_SERVICE_UNAVAILABLE,
            message: "decision service did not answer within 10s; holding 3 replicas",
            spec_valid: true,
        };
        let new = failed(Some(&previous), &scaler(), &failure, &now);
        let condition = |t: &str| new.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(condition("Ready").status, "False");
        assert_eq!(
            condition("Ready").reason.as_deref(),
            Some(reason::DECISION_SERVICE_UNAVAILABLE)
        );
        assert_eq!(condition("Active").status, "True", "kept");
        assert_eq!(condition("Fallback").status, "Unknown");
        assert_eq!(condition("Paused").status, "Unknown");
        assert_eq!(new.desired_replicas, Some(3));
        assert_eq!(new.observed_generation, Some(7));
        assert_eq!(
            new.scale_target_kind.as_deref(),
            Some("apps/v1.StatefulSet")
        );
        assert_eq!(new.triggers_types.as_deref(), Some("prometheus"));

        let invalid = Failure {
            reason: reason::SCALED_OBJECT_CHECK_FAILED,
            spec_valid: false,
            ..failure
        };
        let new = failed(None, &scaler(), &invalid, &now);
        assert_eq!(
            new.scale_target_kind, None,
            "an invalid spec fills no columns"
        );
        assert_eq!(new.triggers_types, None);
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
