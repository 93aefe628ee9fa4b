//! The CLI's error type: every variant says what went wrong and what to do.

use std::path::PathBuf;

/// Everything a command can fail with. `main` prints it and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service did not accept the connection.
    #[error("cannot reach the {service} at {addr}: {reason}; start it or set {flag}")]
    Unreachable {
        /// e.g. "decision service".
        service: &'static str,
        /// The address that was dialled.
        addr: String,
        /// The flag that sets the address.
        flag: &'static str,
        /// Why, e.g. "connection refused".
        reason: String,
    },
    /// A call did not finish within `--timeout`.
    #[error(
        "the {service} at {addr} did not answer {rpc} within {timeout}; check that it is healthy, or raise --timeout"
    )]
    Timeout {
        /// e.g. "decision service".
        service: &'static str,
        /// The address that was dialled.
        addr: String,
        /// The RPC, e.g. "Decide".
        rpc: &'static str,
        /// The deadline, e.g. "10s".
        timeout: String,
    },
    /// The service answered the call with an error status.
    #[error("the {service} at {addr} answered {rpc} with {code:?}: {message}")]
    Rpc {
        /// e.g. "decision service".
        service: &'static str,
        /// The address that was dialled.
        addr: String,
        /// The RPC, e.g. "Decide".
        rpc: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message (the services name the bad field).
        message: String,
    },
    /// A service address flag is not a usable URL, or a --peer-tls-* file is not usable.
    #[error(transparent)]
    Address(#[from] promscaler_runtime::Error),
    /// An input file (or stdin) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, or "-" for stdin.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest could not be parsed or is invalid (one line per bad field).
    #[error("{path}: {source}")]
    Manifest {
        /// The file, or "-" for stdin.
        path: String,
        /// What `promscaler-api` found.
        #[source]
        source: promscaler_api::Error,
    },
    /// `import-keda` would change behaviour; nothing was written.
    #[error(
        "cannot import without changing behaviour; nothing was written:\n{}",
        problems.join("\n")
    )]
    ImportRefused {
        /// One line per problem, each saying what to do.
        problems: Vec<String>,
    },
    /// `validate` found invalid documents (each bad field was printed).
    #[error("{invalid} of {total} documents are invalid")]
    Invalid {
        /// Invalid documents.
        invalid: usize,
        /// Documents checked.
        total: usize,
    },
    /// `check` found queries that cannot drive scaling (the advice was printed).
    #[error("{unusable} of {total} queries cannot drive scaling; see the advice above")]
    Unusable {
        /// Unusable queries.
        unusable: usize,
        /// Queries checked.
        total: usize,
    },
    /// A range query of `simulate` failed.
    #[error(
        "trigger {trigger}: the range query failed ({kind}): {message}; `promscalerctl check` explains why"
    )]
    Range {
        /// The trigger name.
        trigger: String,
        /// The error kind, e.g. "MULTIPLE_SERIES".
        kind: String,
        /// The fetcher's message.
        message: String,
    },
    /// The command line is inconsistent with the input (e.g. a --value for an unknown trigger).
    #[error("{0}")]
    Usage(String),
    /// The output could not be rendered.
    #[error("cannot render the output as {format}: {message}")]
    Render {
        /// "json" or "yaml".
        format: &'static str,
        /// The serializer's error.
        message: String,
    },
}
