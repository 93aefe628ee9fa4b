//! The decision service's metrics (registered under `promscaler_decision_`): requests by RPC and
//! result, the time to decide, and what the decisions did. Labels are fixed sets.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

promscaler_runtime::label_enum! {
    /// A DecisionService RPC.
    pub enum Rpc {
        /// `Decide`.
        Decide => "decide",
        /// `Simulate`.
        Simulate => "simulate",
    }
}

promscaler_runtime::label_enum! {
    /// How a request ended.
    pub enum Outcome {
        /// Answered.
        Ok => "ok",
        /// Rejected as INVALID_ARGUMENT (the message names the field).
        InvalidArgument => "invalid_argument",
    }
}

promscaler_runtime::label_enum! {
    /// Where a decision moves the replicas, against the request's current replicas.
    pub enum Direction {
        /// More replicas.
        Up => "up",
        /// Fewer replicas.
        Down => "down",
        /// The same.
        Hold => "hold",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    rpc: Rpc,
    result: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    direction: Direction,
    fallback: bool,
}

/// The metrics; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    decide_seconds: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `decision_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            decisions: Family::default(),
            // 1 µs .. ~16 ms: a decision takes microseconds.
            decide_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 15)),
        };
        let registry = registry.sub_registry_with_prefix("decision");
        registry.register(
            "requests",
            "DecisionService requests by RPC and result",
            metrics.requests.clone(),
        );
        registry.register(
            "decisions",
            "Decide answers by direction (against the request's replicas) and whether the fallback applied",
            metrics.decisions.clone(),
        );
        registry.register_with_unit(
            "decide_duration",
            "Time to validate, decide and encode one Decide request (in the handler)",
            Unit::Seconds,
            metrics.decide_seconds.clone(),
        );
        metrics
    }

    /// Records one request.
    pub fn request(&self, rpc: Rpc, result: Outcome) {
        self.requests
            .get_or_create(&RequestLabels { rpc, result })
            .inc();
    }

    /// Records one decision and how long it took.
    pub fn decided(&self, current: i32, desired: i32, fallback: bool, seconds: f64) {
        let direction = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                direction,
                fallback,
            })
            .inc();
        self.decide_seconds.observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_by_direction_against_the_current_replicas() {
        let mut registry = Registry::with_prefix("promscaler");
        let metrics = Metrics::register(&mut registry);
        metrics.request(Rpc::Decide, Outcome::Ok);
        metrics.decided(2, 3, false, 0.000_02);
        metrics.decided(3, 3, false, 0.000_02);
        metrics.decided(3, 1, true, 0.000_02);
        metrics.request(Rpc::Simulate, Outcome::InvalidArgument);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"promscaler_decision_requests_total{rpc="decide",result="ok"} 1"#,
            r#"promscaler_decision_requests_total{rpc="simulate",result="invalid_argument"} 1"#,
            r#"promscaler_decision_decisions_total{direction="up",fallback="false"} 1"#,
            r#"promscaler_decision_decisions_total{direction="hold",fallback="false"} 1"#,
            r#"promscaler_decision_decisions_total{direction="down",fallback="true"} 1"#,
            "promscaler_decision_decide_duration_seconds_count 3",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
