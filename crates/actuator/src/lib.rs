//! The actuator: the PromScaler controller and `promscaler.v1.ActuatorService`.
//!
//! The only component with Kubernetes write rights. For each PromScaler it reads the target's
//! scale from watch caches, asks the metrics-fetcher (`QueryBatch`) and the decision service
//! (`Decide`) over gRPC, patches `/scale`, records Events and writes status when something a
//! user or a successor needs changed (`controller`). Leadership comes from a Lease
//! (`leader`); ActuatorService serves what the controller knows (`grpc`). [`args::Args`] is
//! the binary's entry point.

// Layers, each importing only from the ones above it (see `types` for the picture):
// plain data first, then what is built from a PromScaler, then the loop, then the wiring.
// Only `args` (the binary's entry point) is public: no other crate uses the rest.
mod clock;
mod error;
mod reason;
mod types;

mod identity;
mod metrics;
mod spec;
mod status;
mod views;

mod controller;
mod ratelimit;
mod readiness;
mod scheduler;

pub mod args;
mod authz;
mod grpc;
mod leader;
mod peers;

/// Identity and default ports of this service.
pub const SERVICE: promscaler_runtime::ServiceInfo = promscaler_runtime::ServiceInfo {
    name: "promscaler-actuator",
    grpc_port: 50053,
    admin_port: 9093,
    grpc_services: &[promscaler_proto::service_names::ACTUATOR],
    // Ready once the watch caches have synced (see `controller::run`).
    ready_on_start: false,
};
