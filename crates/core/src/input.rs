//! What one tick brings to the decision: the target's replicas, one observation per trigger and
//! the pause annotations.

use std::fmt;

/// Why a query produced no usable value (mirrors `promscaler.v1.QueryErrorKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryErrorKind {
    /// Not specified by the caller.
    #[default]
    Unspecified,
    /// The server could not be reached.
    Unreachable,
    /// The query timed out.
    Timeout,
    /// HTTP 429/503.
    Throttled,
    /// HTTP 401 or no credentials.
    Unauthenticated,
    /// HTTP 403.
    Forbidden,
    /// The server rejected the query.
    BadQuery,
    /// No sample.
    EmptyResult,
    /// More than one series.
    MultipleSeries,
    /// NaN or ±Inf.
    NotFinite,
    /// Other upstream failure.
    Upstream,
    /// The fetcher's policy denied the query.
    DeniedByPolicy,
    /// The query request itself was invalid.
    InvalidArgument,
    /// The caller sent no observation for this trigger.
    Missing,
}

impl QueryErrorKind {
    /// Short lower-case name for explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "error",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::BadQuery => "bad query",
            Self::EmptyResult => "empty result",
            Self::MultipleSeries => "multiple series",
            Self::NotFinite => "not finite",
            Self::Upstream => "upstream",
            Self::DeniedByPolicy => "denied by policy",
            Self::InvalidArgument => "invalid argument",
            Self::Missing => "missing",
        }
    }
}

/// A failed query, in-band.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryFailure {
    /// What kind of failure.
    pub kind: QueryErrorKind,
    /// Human-readable message (never contains secrets).
    pub message: String,
    /// Upstream HTTP status; 0 when none.
    pub http_status: u32,
}

impl fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}: {}", self.kind.as_str(), self.message)
        }
    }
}

/// One trigger's result for this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `TriggerPolicy::name`.
    pub trigger: String,
    /// The value, or why there is none.
    pub result: Result<f64, QueryFailure>,
}

impl Observation {
    /// A successful observation.
    pub fn value(trigger: impl Into<String>, value: f64) -> Self {
        Self {
            trigger: trigger.into(),
            result: Ok(value),
        }
    }

    /// A failed observation.
    pub fn error(
        trigger: impl Into<String>,
        kind: QueryErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            trigger: trigger.into(),
            result: Err(QueryFailure {
                kind,
                message: message.into(),
                http_status: 0,
            }),
        }
    }
}

/// The target's replicas as read from its `/scale` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replicas {
    /// `spec.replicas`: the current replica count decisions start from.
    pub spec: i32,
    /// `status.replicas` (AverageValue tolerance is judged against it, as the HPA does).
    pub status: i32,
    /// Ready pods (Value targets multiply by it, as the HPA does).
    pub ready: i32,
}

impl Replicas {
    /// All three counts equal to `n` (a settled workload).
    pub const fn settled(n: i32) -> Self {
        Self {
            spec: n,
            status: n,
            ready: n,
        }
    }
}

/// KEDA pause annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pause {
    /// `autoscaling.keda.sh/paused`: no scaling at all.
    pub paused: bool,
    /// `autoscaling.keda.sh/paused-replicas`: scale to this count and hold it.
    pub paused_replicas: Option<i32>,
    /// `autoscaling.keda.sh/paused-scale-in`: never scale in.
    pub scale_in_paused: bool,
    /// `autoscaling.keda.sh/paused-scale-out`: never scale out.
    pub scale_out_paused: bool,
}

/// Everything one Decide call brings besides the policy and the carried state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tick {
    /// The target's replicas.
    pub replicas: Replicas,
    /// One observation per trigger (a trigger without one counts as failed).
    pub observations: Vec<Observation>,
    /// Pause annotations.
    pub pause: Pause,
}
