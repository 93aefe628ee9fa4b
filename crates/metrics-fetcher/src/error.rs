//! The crate's one error type.
//!
//! Almost every failure concerns one query and travels in-band as a `QueryError`
//! (docs/architecture.md, step 2 of "One tick of one PromScaler"): [`Error::kind`] gives its
//! `QueryErrorKind`. The same type also becomes a `tonic::Status` when a
//! whole RPC is rejected (an oversized batch, a range query without a step); that mapping is the
//! one `impl From<Error> for tonic::Status`, in `grpc.rs`. Messages never contain secrets: they
//! name hosts, identities (role ARNs, access key ids) and causes, never keys, tokens or passwords.

use std::sync::Arc;
use std::time::Duration;

use promscaler_proto::v1::{QueryError, QueryErrorKind};

/// A failure of a fetcher operation.
///
/// `Clone` because one upstream outcome is shared by every coalesced waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid (empty query, unparsable server address, ...).
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field, e.g. `source.server_address`.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A `QueryBatch` holds more queries than the fetcher accepts in one call.
    #[error("batch holds {len} queries; at most {max} are accepted per call, split it")]
    BatchTooLarge {
        /// Queries in the request.
        len: usize,
        /// The fetcher's limit.
        max: usize,
    },
    /// The fetcher's policy forbids this server or identity for this caller.
    #[error("denied by the fetcher's policy: {reason}")]
    DeniedByPolicy {
        /// Which rule denied it; names the host or namespace, never a secret.
        reason: String,
    },
    /// The server could not be reached (DNS, connect, TLS handshake, reset).
    #[error("cannot reach {host}: {cause}")]
    Unreachable {
        /// Server host.
        host: String,
        /// The transport error chain.
        cause: String,
        /// The underlying error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// No complete answer within the request's timeout.
    #[error("{host} did not answer within {}", humantime::format_duration(*.after))]
    Timeout {
        /// Server host.
        host: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server said the query timed out (Prometheus `errorType: timeout`, AMP 422 timeouts).
    #[error("{host} reports the query timed out (HTTP {status}): {message}")]
    UpstreamTimeout {
        /// Server host.
        host: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// HTTP 429 or 503: the server asked us to slow down.
    #[error("{host} is throttling (HTTP {status}){}", retry_after_text(*.retry_after))]
    Throttled {
        /// Server host.
        host: String,
        /// HTTP status (429 or 503); 0 when refused locally because of an earlier Retry-After.
        status: u16,
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The fetcher's own budget for a server (`--upstream-qps`) has a queue longer than
    /// `--upstream-max-queue-wait`: refused at once instead of queued.
    #[error(
        "the fetcher's budget for {server} (--upstream-qps {qps}) already has {waiting} \
         requests waiting, about {} of queue, more than --upstream-max-queue-wait {}; raise \
         the budget or spread the PromScalers' polling",
        humantime::format_duration(*.expected_wait),
        humantime::format_duration(*.max_wait)
    )]
    QueueFull {
        /// The server address whose budget is exhausted.
        server: String,
        /// The budget, requests per second.
        qps: f64,
        /// Requests already waiting.
        waiting: usize,
        /// How long this one would have waited.
        expected_wait: Duration,
        /// `--upstream-max-queue-wait`.
        max_wait: Duration,
    },
    /// Credentials for the upstream could not be obtained: nothing is sent unsigned.
    #[error("no AWS credentials for {identity}: {cause}")]
    Credentials {
        /// Which identity, e.g. "the fetcher's own identity" or a role ARN; never a secret.
        identity: String,
        /// Why, e.g. the STS error chain.
        cause: String,
    },
    /// A request could not be signed (e.g. invalid signing parameters).
    #[error("cannot sign the request to {host}: {cause}")]
    Signing {
        /// Server host.
        host: String,
        /// Why.
        cause: String,
    },
    /// HTTP 401.
    #[error("{host} rejected the credentials (HTTP 401): {message}")]
    Unauthorized {
        /// Server host.
        host: String,
        /// The server's message.
        message: String,
    },
    /// HTTP 403 (AMP: bad signature, wrong region, missing `aps:QueryMetrics`).
    #[error("{host} forbids the request (HTTP 403): {message}")]
    Forbidden {
        /// Server host.
        host: String,
        /// The server's message, verbatim (AMP's "Credential should be scoped to a valid region").
        message: String,
    },
    /// The server rejected the query (PromQL syntax or execution error).
    #[error("the server rejected the query ({error_type}, HTTP {status}): {message}")]
    BadQuery {
        /// HTTP status.
        status: u16,
        /// Prometheus `errorType`, e.g. `bad_data`, `execution`.
        error_type: String,
        /// Prometheus `error` text.
        message: String,
    },
    /// The query ran but its result type cannot drive scaling (a matrix, a string, a native
    /// histogram).
    #[error("the query returns a {result_type}: {advice}")]
    UnusableResult {
        /// Prometheus `resultType`.
        result_type: &'static str,
        /// What to do.
        advice: String,
    },
    /// The query returned no sample.
    #[error(
        "the query returned an empty result: check the label selector and that the metric is \
         scraped, or set ignoreNullValues to treat it as 0"
    )]
    EmptyResult,
    /// The query returned more than one series.
    #[error(
        "the query returned {count} series ({}); wrap it in sum(...) (or max/avg) so it returns \
         one value", series.join(", ")
    )]
    MultipleSeries {
        /// How many series.
        count: usize,
        /// The first series' labels, e.g. `{pod="a"}`.
        series: Vec<String>,
    },
    /// The value was NaN or ±Inf.
    #[error(
        "the query returned {value}, not a finite number; fix the query (e.g. a division by zero) \
         or set ignoreNullValues to treat it as 0"
    )]
    NotFinite {
        /// The value as the server wrote it.
        value: String,
    },
    /// Any other upstream failure: 5xx, unexpected status, malformed or oversized body.
    #[error("unexpected answer from {host}{}: {message}", status_text(*.status))]
    Upstream {
        /// Server host.
        host: String,
        /// HTTP status; 0 when the body could not be read.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// A task of the fetcher failed (a panic in a spawned upstream request).
    #[error("internal error: {0}")]
    Internal(String),
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(
            "; it asked to retry after {}",
            humantime::format_duration(d)
        ),
        None => String::new(),
    }
}

fn status_text(status: u16) -> String {
    if status == 0 {
        String::new()
    } else {
        format!(" (HTTP {status})")
    }
}

impl Error {
    /// The in-band error kind (`QueryErrorKind`).
    pub fn kind(&self) -> QueryErrorKind {
        match self {
            Self::InvalidArgument { .. } | Self::BatchTooLarge { .. } => {
                QueryErrorKind::InvalidArgument
            }
            Self::DeniedByPolicy { .. } => QueryErrorKind::DeniedByPolicy,
            Self::Unreachable { .. } => QueryErrorKind::Unreachable,
            Self::Timeout { .. } | Self::UpstreamTimeout { .. } => QueryErrorKind::Timeout,
            Self::Throttled { .. } | Self::QueueFull { .. } => QueryErrorKind::Throttled,
            Self::Credentials { .. } | Self::Signing { .. } | Self::Unauthorized { .. } => {
                QueryErrorKind::Unauthenticated
            }
            Self::Forbidden { .. } => QueryErrorKind::Forbidden,
            Self::BadQuery { .. } | Self::UnusableResult { .. } => QueryErrorKind::BadQuery,
            Self::EmptyResult => QueryErrorKind::EmptyResult,
            Self::MultipleSeries { .. } => QueryErrorKind::MultipleSeries,
            Self::NotFinite { .. } => QueryErrorKind::NotFinite,
            Self::Upstream { .. } | Self::Internal(_) => QueryErrorKind::Upstream,
        }
    }

    /// The HTTP status the upstream answered with; 0 when none was received.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UpstreamTimeout { status, .. }
            | Self::Throttled { status, .. }
            | Self::BadQuery { status, .. }
            | Self::Upstream { status, .. } => *status,
            Self::Unauthorized { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::InvalidArgument { .. }
            | Self::BatchTooLarge { .. }
            | Self::DeniedByPolicy { .. }
            | Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::QueueFull { .. }
            | Self::Credentials { .. }
            | Self::Signing { .. }
            | Self::UnusableResult { .. }
            | Self::EmptyResult
            | Self::MultipleSeries { .. }
            | Self::NotFinite { .. }
            | Self::Internal(_) => 0,
        }
    }

    /// A short, bounded label for metrics (`kind` label of the error counter).
    pub fn kind_label(&self) -> &'static str {
        match self.kind() {
            QueryErrorKind::Unspecified => "unspecified",
            QueryErrorKind::Unreachable => "unreachable",
            QueryErrorKind::Timeout => "timeout",
            QueryErrorKind::Throttled => "throttled",
            QueryErrorKind::Unauthenticated => "unauthenticated",
            QueryErrorKind::Forbidden => "forbidden",
            QueryErrorKind::BadQuery => "bad_query",
            QueryErrorKind::EmptyResult => "empty_result",
            QueryErrorKind::MultipleSeries => "multiple_series",
            QueryErrorKind::NotFinite => "not_finite",
            QueryErrorKind::Upstream => "upstream",
            QueryErrorKind::DeniedByPolicy => "denied_by_policy",
            QueryErrorKind::InvalidArgument => "invalid_argument",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<Error> for QueryError {
    fn from(err: Error) -> Self {
        QueryError {
            kind: err.kind() as i32,
            http_status: u32::from(err.http_status()),
            message: err.to_string(),
        }
    }
}

/// Text quoted from upstream (error bodies, label sets, causes) is cut to this many bytes, on a
/// char boundary: a 5 MB error body must not become a 5 MB gRPC answer or status condition.
pub(crate) const MAX_QUOTE_BYTES: usize = 512;

/// `text` cut to at most `max` bytes on a char boundary, with "…" when something was cut.
pub(crate) fn quote(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The secret values sent upstream for one request (tokens, passwords, AWS secret keys and
/// session tokens, the signature), removed from anything quoted from the answer or logged: an
/// upstream that echoes the bearer token in its 401 must not put it in status conditions.
#[derive(Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Adds a secret value (ignored when empty or already known).
    pub(crate) fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so a value containing another ("Bearer t" and "t") goes whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }

    /// Scrubs, then cuts to [`MAX_QUOTE_BYTES`] (in that order, so a secret is never half cut
    /// and half shown).
    fn clean(&self, text: &str) -> String {
        quote(&self.scrub(text), MAX_QUOTE_BYTES)
    }
}

impl Error {
    /// This error with every text field scrubbed of `secrets` and bounded to
    /// [`MAX_QUOTE_BYTES`]. Applied to every upstream outcome before it is logged or returned.
    pub(crate) fn redacted(self, r: &Redactor) -> Self {
        match self {
            Self::InvalidArgument { field, reason } => Self::InvalidArgument {
                field,
                reason: r.clean(&reason),
            },
            Self::DeniedByPolicy { reason } => Self::DeniedByPolicy {
                reason: r.clean(&reason),
            },
            Self::Unreachable {
                host,
                cause,
                source,
            } => Self::Unreachable {
                host,
                cause: r.clean(&cause),
                source,
            },
            Self::UpstreamTimeout {
                host,
                status,
                message,
            } => Self::UpstreamTimeout {
                host,
                status,
                message: r.clean(&message),
            },
            Self::Credentials { identity, cause } => Self::Credentials {
                identity,
                cause: r.clean(&cause),
            },
            Self::Signing { host, cause } => Self::Signing {
                host,
                cause: r.clean(&cause),
            },
            Self::Unauthorized { host, message } => Self::Unauthorized {
                host,
                message: r.clean(&message),
            },
            Self::Forbidden { host, message } => Self::Forbidden {
                host,
                message: r.clean(&message),
            },
            Self::BadQuery {
                status,
                error_type,
                message,
            } => Self::BadQuery {
                status,
                error_type: quote(&r.scrub(&error_type), 64),
                message: r.clean(&message),
            },
            Self::UnusableResult {
                result_type,
                advice,
            } => Self::UnusableResult {
                result_type,
                advice: r.clean(&advice),
            },
            Self::MultipleSeries { count, series } => Self::MultipleSeries {
                count,
                series: series
                    .iter()
                    .map(|s| quote(&r.scrub(s), crate::prometheus::MAX_LABEL_TEXT_BYTES))
                    .collect(),
            },
            Self::NotFinite { value } => Self::NotFinite {
                value: quote(&r.scrub(&value), 64),
            },
            Self::Upstream {
                host,
                status,
                message,
            } => Self::Upstream {
                host,
                status,
                message: r.clean(&message),
            },
            Self::Internal(text) => Self::Internal(r.clean(&text)),
            e @ (Self::BatchTooLarge { .. }
            | Self::Timeout { .. }
            | Self::Throttled { .. }
            | Self::QueueFull { .. }
            | Self::EmptyResult) => e,
        }
    }
}

/// Formats an error and its `source()` chain as "a: b: c", skipping repeated messages.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiple_series_message_names_series_and_advises_sum() {
        let err = Error::MultipleSeries {
            count: 2,
            series: vec![r#"{pod="a"}"#.into(), r#"{pod="b"}"#.into()],
        };
        let text = err.to_string();
        assert!(text.contains("2 series"), "{text}");
        assert!(text.contains(r#"{pod="a"}"#), "{text}");
        assert!(text.contains("sum(...)"), "{text}");
        assert_eq!(err.kind(), QueryErrorKind::MultipleSeries);
    }

    #[test]
    fn in_band_error_carries_kind_and_status() {
        let err = Error::Forbidden {
            host: "aps-workspaces.us-east-1.amazonaws.com".into(),
            message: "Credential should be scoped to a valid region. ".into(),
        };
        let wire = QueryError::from(err);
        assert_eq!(wire.kind, QueryErrorKind::Forbidden as i32);
        assert_eq!(wire.http_status, 403);
        assert!(
            wire.message
                .contains("Credential should be scoped to a valid region")
        );
    }

    #[test]
    fn rpc_status_codes_distinguish_client_and_server_faults() {
        let status = tonic::Status::from(Error::BatchTooLarge {
            len: 2000,
            max: 1000,
        });
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let status = tonic::Status::from(Error::Internal("boom".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[test]
    fn quotes_are_cut_on_a_char_boundary() {
        let text = "é".repeat(400); // 800 bytes
        let q = quote(&text, MAX_QUOTE_BYTES);
        assert!(q.len() <= MAX_QUOTE_BYTES, "{}", q.len());
        assert!(q.ends_with('…'));
        assert_eq!(quote("short", MAX_QUOTE_BYTES), "short");
    }

    #[test]
    fn redaction_removes_secrets_before_cutting() {
        let mut r = Redactor::default();
        r.add("Bearer s3cr3t-token");
        r.add("s3cr3t-token");
        let err = Error::Unauthorized {
            host: "h".into(),
            // The secret straddles nothing: it lies within the first 512 bytes, so only
            // scrubbing (not cutting) can remove it.
            message: format!("{} bad token s3cr3t-token", "x".repeat(480)),
        }
        .redacted(&r);
        let text = err.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn throttled_message_mentions_retry_after() {
        let err = Error::Throttled {
            host: "h".into(),
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(err.to_string().contains("retry after 7s"), "{err}");
    }
}
