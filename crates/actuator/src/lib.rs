//! The actuator: the PromScaler controller and `promscaler.v1.ActuatorService`.
//!
//! The only component with Kubernetes write rights. For each PromScaler it reads the target's
//! scale from watch caches, asks the metrics-fetcher (`QueryBatch`) and the decision service
//! (`Decide`) over gRPC, patches `/scale`, records Events and writes status when something a
//! user or a successor needs changed. Today it serves ActuatorService and tracks whether its two
//! peers are reachable; the controller loop arrives with the actuator issue.

pub mod args;
pub mod grpc;
pub mod peers;

/// Identity and default ports of this service.
pub const SERVICE: promscaler_runtime::ServiceInfo = promscaler_runtime::ServiceInfo {
    name: "promscaler-actuator",
    grpc_port: 50053,
    admin_port: 9093,
    grpc_services: &[promscaler_proto::service_names::ACTUATOR],
    // Ready only once the fetcher and the decision service answer (see `peers`).
    ready_on_start: false,
};
