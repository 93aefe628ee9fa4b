//! The metrics-fetcher: the only promscaler component that talks to Prometheus-compatible
//! servers (Amazon Managed Prometheus, Prometheus, Thanos, Mimir/Cortex, VictoriaMetrics).
//!
//! Requests arrive over gRPC (`MetricsFetcherService`, [`grpc`]), usually from the actuator's
//! `QueryBatch` once per polling interval. Each query is checked against the [`policy`],
//! coalesced with identical in-flight queries and served from recent results when the caller
//! allows ([`cache`]), fused with look-alike queries into one grouped query ([`fusion`]), sent over HTTP ([`prometheus`], clients per TLS configuration in
//! [`auth`]) — signed with SigV4 for AMP ([`sigv4`], credentials from IRSA/Pod
//! Identity/static keys in [`aws`]) — and reduced to one value the way KEDA's prometheus scaler
//! does. Failures come back in-band with a `QueryErrorKind`; [`check`] explains unusable
//! queries. [`metrics`] exposes latency, errors, cache and credential counters.

pub mod args;
pub mod auth;
pub mod aws;
pub mod cache;
pub mod check;
mod error;
pub mod fetcher;
pub mod fusion;
pub mod grpc;
pub mod metrics;
pub mod pacing;
pub mod policy;
pub mod prometheus;
pub mod sigv4;
pub mod source;
#[cfg(test)]
mod testing;

pub use error::Error;
pub use fetcher::{Config, Fetcher, QueryOutcome};
pub use grpc::FetcherService;

/// How the runtime serves this binary: ports, health-reported services, readiness.
pub const SERVICE: promscaler_runtime::ServiceInfo = promscaler_runtime::ServiceInfo {
    name: "promscaler-metrics-fetcher",
    grpc_port: 50051,
    admin_port: 9091,
    grpc_services: &[promscaler_proto::service_names::METRICS_FETCHER],
    // Stateless: ready once serving (credentials are fetched on first use, per identity).
    ready_on_start: true,
};
