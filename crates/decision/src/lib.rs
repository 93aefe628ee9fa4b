//! The decision service: `promscaler.v1.DecisionService` over gRPC around `promscaler-core`.
//!
//! Requests carry everything a decision needs (policy, observations, replicas, the carried
//! `DecisionState`, `now`), so the service is stateless and scales horizontally; the actuator
//! sends one `Decide` per PromScaler tick, tools send `Simulate` to replay history.

pub mod args;
pub mod grpc;
pub mod metrics;

/// Identity and default ports of this service.
pub const SERVICE: promscaler_runtime::ServiceInfo = promscaler_runtime::ServiceInfo {
    name: "promscaler-decision",
    grpc_port: 50052,
    admin_port: 9092,
    grpc_services: &[promscaler_proto::service_names::DECISION],
    ready_on_start: true,
};
