//! Shared plumbing of the three promscaler services (metrics-fetcher, decision, actuator).
//!
//! What every binary needs and nothing service-specific: the common flags ([`args`]), logging
//! and OpenTelemetry traces ([`telemetry`]), W3C trace-context propagation over gRPC metadata
//! ([`propagation`]), the admin HTTP server with `/live`, `/ready` and `/metrics` ([`admin`]),
//! and the gRPC server with `grpc.health.v1`, server reflection and graceful shutdown on
//! SIGTERM/SIGINT ([`server`]). A service builds its gRPC routes and metrics, hands them to
//! [`server::BoundService::serve`], and gets one future that ends when the process should exit.

pub mod admin;
pub mod args;
pub mod client_identity;
pub mod grpc_client;
pub mod labels;
pub mod propagation;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use admin::Readiness;
pub use args::{LogArgs, LogFormat, ServerArgs};
pub use server::{Service, ServiceInfo};
pub use shutdown::Shutdown;

/// Errors of the shared runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address could not be bound (in use, or not a local address).
    #[error("cannot listen on {addr} for the {what} server: {source}")]
    Bind {
        /// Which server: "gRPC" or "admin".
        what: &'static str,
        /// The address from the flag.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--addr-file` could not be written.
    #[error("cannot write the bound addresses to {path} (--addr-file): {source}")]
    AddrFile {
        /// The file from the flag.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `--log-level` filter does not parse.
    #[error(
        "invalid --log-level {filter:?}: {source} (use EnvFilter syntax, e.g. \"info,promscaler=debug\")"
    )]
    LogFilter {
        /// The filter as given.
        filter: String,
        /// The parser's error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// Logging was already initialised in this process.
    #[error("logging is already initialised: {0}")]
    LoggingInit(String),
    /// The OTLP exporter could not be built from the `OTEL_EXPORTER_OTLP_*` settings.
    #[error(
        "cannot build the OTLP trace exporter (OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}): {message}"
    )]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// The exporter's error.
        message: String,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[source] tonic::transport::Error),
    /// The admin server failed.
    #[error("admin server failed: {0}")]
    Admin(#[source] std::io::Error),
    /// A service task ended with an error.
    #[error("{task} failed: {message}")]
    Task {
        /// The task's name.
        task: String,
        /// Its error, already rendered.
        message: String,
    },
    /// The reflection service could not load the descriptor set.
    #[error("cannot build gRPC reflection from the descriptor set: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// A TLS file given by a flag cannot be used.
    #[error("{flag} {}: {message}", path.display())]
    Tls {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A client address is not a valid URI.
    #[error(
        "invalid address {addr:?} for {flag}: {message} (expected e.g. http://127.0.0.1:50051 or dns:///name:port)"
    )]
    ClientAddr {
        /// The flag the address came from.
        flag: &'static str,
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
