//! promscaler's contracts: the protobuf messages and gRPC services of package `promscaler.v1`
//! (`proto/promscaler/v1/*.proto`), generated at build time with clients and servers.
//!
//! The three services (`MetricsFetcherService`, `DecisionService`, `ActuatorService`) meet only
//! through these types; other tooling can generate clients in any language from the same
//! `.proto` files or discover them through gRPC server reflection ([`FILE_DESCRIPTOR_SET`]).

/// Package `promscaler.v1`.
// Generated from the .proto comments, which are prose for every language's reader: `<region>`
// there is not HTML and a bare URL is not a link.
#[allow(
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links
)]
pub mod v1 {
    tonic::include_proto!("promscaler.v1");
}

/// The encoded `FileDescriptorSet` of every promscaler `.proto` file and its imports, for gRPC
/// server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/promscaler_v1_descriptor.bin"));

/// Fully-qualified names of the three gRPC services.
pub mod service_names {
    /// `promscaler.v1.MetricsFetcherService`.
    pub const METRICS_FETCHER: &str = "promscaler.v1.MetricsFetcherService";
    /// `promscaler.v1.DecisionService`.
    pub const DECISION: &str = "promscaler.v1.DecisionService";
    /// `promscaler.v1.ActuatorService`.
    pub const ACTUATOR: &str = "promscaler.v1.ActuatorService";
}

/// Representative requests, shared by the benchmarks that must measure the same scenario
/// (`promscaler-decision`'s `decide_wire` bench and `xtask bench decide-grpc`).
pub mod examples {
    use crate::v1::{
        Behavior, DecideRequest, DecisionState, MetricType, Observation, Replicas, ScalingPolicy,
        TimestampedReplicas, TriggerPolicy, observation,
    };

    /// 2026-11-29T00:00:00Z, the `now` of [`decide_request`].
    pub const NOW: i64 = 1_795_910_400;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    /// The decision benchmarks' scenario, as `promscaler-core`'s `decide` bench has it: two
    /// AverageValue triggers (one with an activation threshold), the default behavior, 7
    /// replicas, and a full 5-minute history (20 recommendations, recent scale events).
    pub fn decide_request() -> DecideRequest {
        let trigger = |name: &str, target: f64, activation: f64| TriggerPolicy {
            name: name.into(),
            metric_type: MetricType::AverageValue as i32,
            target,
            activation_target: activation,
        };
        let value = |name: &str, v: f64| Observation {
            trigger: name.into(),
            result: Some(observation::Result::Value(v)),
        };
        DecideRequest {
            policy: Some(ScalingPolicy {
                min_replicas: 1,
                max_replicas: 50,
                behavior: Some(Behavior::default()),
                triggers: vec![trigger("rps", 50.0, 0.0), trigger("queue", 10.0, 5.0)],
                ..ScalingPolicy::default()
            }),
            replicas: Some(Replicas {
                spec: 7,
                status: 7,
                ready: 7,
            }),
            observations: vec![value("rps", 420.0), value("queue", 55.0)],
            state: Some(DecisionState {
                recommendations: (1..=20)
                    .map(|i| TimestampedReplicas {
                        replicas: 6 + i % 3,
                        at: ts(NOW - 15 * i64::from(i)),
                    })
                    .collect(),
                scale_up_events: vec![TimestampedReplicas {
                    replicas: 2,
                    at: ts(NOW - 10),
                }],
                scale_down_events: vec![TimestampedReplicas {
                    replicas: 1,
                    at: ts(NOW - 100),
                }],
                last_active_time: ts(NOW - 15),
                consecutive_failures: [("rps".to_owned(), 0), ("queue".to_owned(), 0)]
                    .into_iter()
                    .collect(),
                created_at: ts(NOW - 3600),
                initialized: true,
                ..DecisionState::default()
            }),
            now: ts(NOW),
            pause: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    use super::FILE_DESCRIPTOR_SET;

    fn methods_of(fds: &FileDescriptorSet, service: &str) -> Vec<String> {
        fds.file
            .iter()
            .filter(|f| f.package() == "promscaler.v1")
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == service)
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect()
    }

    #[test]
    fn descriptor_set_contains_the_three_services_with_their_rpcs() {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        assert_eq!(
            methods_of(&fds, "MetricsFetcherService"),
            ["Query", "QueryBatch", "QueryRange", "Check"]
        );
        assert_eq!(methods_of(&fds, "DecisionService"), ["Decide", "Simulate"]);
        assert_eq!(
            methods_of(&fds, "ActuatorService"),
            [
                "ListScalers",
                "GetScaler",
                "WatchDecisions",
                "Pause",
                "Resume",
                "Reconcile"
            ]
        );
    }

    #[test]
    fn descriptor_set_includes_well_known_imports_for_reflection_clients() {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
        for needed in [
            "google/protobuf/duration.proto",
            "google/protobuf/timestamp.proto",
            "promscaler/v1/common.proto",
            "promscaler/v1/fetcher.proto",
            "promscaler/v1/decision.proto",
            "promscaler/v1/actuator.proto",
        ] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
    }

    #[test]
    fn query_error_kinds_keep_their_wire_numbers() {
        use super::v1::QueryErrorKind;
        // Other-language clients depend on these numbers; renumbering would be a breaking change.
        assert_eq!(QueryErrorKind::Unreachable as i32, 1);
        assert_eq!(QueryErrorKind::InvalidArgument as i32, 12);
        assert_eq!(
            QueryErrorKind::from_str_name("QUERY_ERROR_KIND_MULTIPLE_SERIES"),
            Some(QueryErrorKind::MultipleSeries)
        );
    }
}
