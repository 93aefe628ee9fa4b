//! The actuator's own metrics (registered under `promscaler_actuator_`). Labels are bounded:
//! outcomes, operations and peers, never scaler names or queries.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// What a tick concluded.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    /// Replicas raised.
    ScaleUp,
    /// Replicas lowered.
    ScaleDown,
    /// Replicas kept.
    Hold,
    /// The tick could not decide (a peer or the API failed); replicas kept.
    Error,
    /// The PromScaler is invalid; nothing done.
    Invalid,
}

/// A Kubernetes write.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum WriteKind {
    /// PATCH .../scale.
    Scale,
    /// PATCH .../status.
    Status,
    /// An Event.
    Event,
    /// Finalizer or annotation changes.
    Metadata,
}

/// A peer service.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Peer {
    /// The metrics-fetcher.
    Fetcher,
    /// The decision service.
    Decision,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: WriteKind,
    result: WriteResult,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum WriteResult {
    /// Accepted.
    Ok,
    /// 409 Conflict.
    Conflict,
    /// Any other failure.
    Error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: Peer,
}

/// The actuator's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    scalers: Gauge,
    leader: Gauge,
    tick_seconds: Histogram,
    decisions: Family<OutcomeLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    peer_errors: Family<PeerLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `actuator_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            scalers: Gauge::default(),
            leader: Gauge::default(),
            tick_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            decisions: Family::default(),
            writes: Family::default(),
            peer_errors: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("actuator");
        registry.register(
            "scalers",
            "PromScalers this actuator (shard) evaluates",
            metrics.scalers.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            metrics.leader.clone(),
        );
        registry.register(
            "tick_duration_seconds",
            "Time to evaluate one PromScaler (query, decide, write)",
            metrics.tick_seconds.clone(),
        );
        registry.register("decisions", "Ticks by outcome", metrics.decisions.clone());
        registry.register(
            "kube_writes",
            "Kubernetes API writes by kind and result",
            metrics.writes.clone(),
        );
        registry.register(
            "peer_errors",
            "Failed calls to the fetcher or decision service",
            metrics.peer_errors.clone(),
        );
        metrics
    }

    /// Sets the number of PromScalers evaluated.
    pub fn set_scalers(&self, count: usize) {
        self.scalers.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets leadership.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records one tick.
    pub fn tick(&self, outcome: Outcome, seconds: f64) {
        self.tick_seconds.observe(seconds);
        self.decisions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Records one Kubernetes write.
    pub fn write(&self, kind: WriteKind, result: WriteResult) {
        self.writes
            .get_or_create(&WriteLabels { kind, result })
            .inc();
    }

    /// Records a failed peer call.
    pub fn peer_error(&self, peer: Peer) {
        self.peer_errors.get_or_create(&PeerLabels { peer }).inc();
    }
}
