//! Conversions between the status' `decisionState` (JSON, RFC 3339 times) and
//! `promscaler.v1.DecisionState`, so a restarted actuator resumes from status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use promscaler_proto::v1;

use crate::{DecisionStateStatus, TimestampedReplicas, TimestampedValue};

/// `google.protobuf.Timestamp` → `metav1.Time`; `None` when out of range.
pub fn time_from_proto(t: &prost_types::Timestamp) -> Option<Time> {
    Timestamp::new(t.seconds, t.nanos).ok().map(Time)
}

/// `metav1.Time` → `google.protobuf.Timestamp`.
pub fn time_to_proto(t: &Time) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.as_second(),
        nanos: t.0.subsec_nanosecond(),
    }
}

fn replicas_from_proto(v: &[v1::TimestampedReplicas]) -> Vec<TimestampedReplicas> {
    v.iter()
        .filter_map(|r| {
            Some(TimestampedReplicas {
                replicas: r.replicas,
                time: time_from_proto(r.at.as_ref()?)?,
            })
        })
        .collect()
}

fn replicas_to_proto(v: &[TimestampedReplicas]) -> Vec<v1::TimestampedReplicas> {
    v.iter()
        .map(|r| v1::TimestampedReplicas {
            replicas: r.replicas,
            at: Some(time_to_proto(&r.time)),
        })
        .collect()
}

impl From<&v1::DecisionState> for DecisionStateStatus {
    fn from(s: &v1::DecisionState) -> Self {
        Self {
            recommendations: replicas_from_proto(&s.recommendations),
            scale_up_events: replicas_from_proto(&s.scale_up_events),
            scale_down_events: replicas_from_proto(&s.scale_down_events),
            last_active_time: s.last_active_time.as_ref().and_then(time_from_proto),
            consecutive_failures: s
                .consecutive_failures
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            created_at: s.created_at.as_ref().and_then(time_from_proto),
            last_good_values: s
                .last_good_values
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.clone(),
                        TimestampedValue {
                            value: v.value,
                            time: time_from_proto(v.at.as_ref()?)?,
                        },
                    ))
                })
                .collect(),
            initialized: s.initialized,
        }
    }
}

impl From<&DecisionStateStatus> for v1::DecisionState {
    fn from(s: &DecisionStateStatus) -> Self {
        Self {
            recommendations: replicas_to_proto(&s.recommendations),
            scale_up_events: replicas_to_proto(&s.scale_up_events),
            scale_down_events: replicas_to_proto(&s.scale_down_events),
            last_active_time: s.last_active_time.as_ref().map(time_to_proto),
            consecutive_failures: s
                .consecutive_failures
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            created_at: s.created_at.as_ref().map(time_to_proto),
            last_good_values: s
                .last_good_values
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v1::TimestampedValue {
                            value: v.value,
                            at: Some(time_to_proto(&v.time)),
                        },
                    )
                })
                .collect(),
            initialized: s.initialized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn decision_state_survives_a_round_trip_through_status_json() {
        let state = v1::DecisionState {
            recommendations: vec![v1::TimestampedReplicas {
                replicas: 3,
                at: at(1_700_000_000),
            }],
            scale_up_events: vec![v1::TimestampedReplicas {
                replicas: 1,
                at: at(1_700_000_030),
            }],
            scale_down_events: vec![],
            last_active_time: at(1_700_000_060),
            consecutive_failures: [("rps".to_owned(), 2)].into(),
            created_at: at(1_699_999_000),
            last_good_values: [(
                "rps".to_owned(),
                v1::TimestampedValue {
                    value: 140.0,
                    at: at(1_700_000_000),
                },
            )]
            .into(),
            initialized: true,
        };
        let status = DecisionStateStatus::from(&state);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["recommendations"][0]["time"], "2023-11-14T22:13:20Z");
        let back: DecisionStateStatus = serde_json::from_value(json).unwrap();
        assert_eq!(v1::DecisionState::from(&back), state);
    }
}
