//! The actuator's own metrics (registered under `promscaler_actuator_`). Labels are bounded:
//! outcomes, operations and peers, never queries; the per-PromScaler metrics
//! ([`ScalerCollector`]) are labelled with the PromScaler's namespace and name and the trigger's
//! name, as KEDA labels its `keda_scaler_*` metrics, so there is one series per trigger.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};
use tokio::sync::watch;

use crate::{types::ScalerKey, views::Views};

promscaler_runtime::label_enum! {
    /// What a tick concluded.
    pub enum Outcome {
        /// Replicas raised.
        ScaleUp => "scale_up",
        /// Replicas lowered.
        ScaleDown => "scale_down",
        /// Replicas kept.
        Hold => "hold",
        /// The tick could not decide (a peer or the API failed); replicas kept.
        Error => "error",
        /// The PromScaler is invalid; nothing done.
        Invalid => "invalid",
    }
}

promscaler_runtime::label_enum! {
    /// A Kubernetes write.
    pub enum WriteKind {
        /// PATCH .../scale.
        Scale => "scale",
        /// PATCH .../status.
        Status => "status",
        /// An Event.
        Event => "event",
        /// Finalizer or annotation changes.
        Metadata => "metadata",
    }
}

promscaler_runtime::label_enum! {
    /// A peer service.
    pub enum Peer {
        /// The metrics-fetcher.
        Fetcher => "fetcher",
        /// The decision service.
        Decision => "decision",
    }
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

promscaler_runtime::label_enum! {
    /// How a write ended.
    pub enum WriteResult {
        /// Accepted.
        Ok => "ok",
        /// 409 Conflict.
        Conflict => "conflict",
        /// Any other failure.
        Error => "error",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: Peer,
}

promscaler_runtime::label_enum! {
    /// How an ActuatorService authorization check ended.
    pub enum AuthzResult {
        /// The caller may.
        Allowed => "allowed",
        /// The caller may not (PERMISSION_DENIED, or left out of a list).
        Denied => "denied",
        /// No token, or one the API server did not accept.
        Unauthenticated => "unauthenticated",
        /// The review could not be made.
        Error => "error",
    }
}

promscaler_runtime::label_enum! {
    /// A review sent to the Kubernetes API.
    pub enum ReviewKind {
        /// A TokenReview.
        Token => "token",
        /// A SubjectAccessReview.
        Access => "access",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthzLabels {
    result: AuthzResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    kind: ReviewKind,
}

/// The actuator's metrics.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    scalers: Gauge,
    leader: Gauge,
    tick_seconds: Histogram,
    decisions: Family<OutcomeLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    peer_errors: Family<PeerLabels, Counter>,
    authz: Family<AuthzLabels, Counter>,
    reviews: Family<ReviewLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `actuator_`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            scalers: Gauge::default(),
            leader: Gauge::default(),
            tick_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            decisions: Family::default(),
            writes: Family::default(),
            peer_errors: Family::default(),
            authz: Family::default(),
            reviews: Family::default(),
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
        registry.register(
            "grpc_authz",
            "ActuatorService authorization checks by result",
            metrics.authz.clone(),
        );
        registry.register(
            "authz_reviews",
            "TokenReviews and SubjectAccessReviews sent to the Kubernetes API (cache misses)",
            metrics.reviews.clone(),
        );
        metrics
    }

    /// Records one ActuatorService authorization check.
    pub(crate) fn authz(&self, result: AuthzResult) {
        self.authz.get_or_create(&AuthzLabels { result }).inc();
    }

    /// Records one review sent to the Kubernetes API.
    pub(crate) fn review(&self, kind: ReviewKind) {
        self.reviews.get_or_create(&ReviewLabels { kind }).inc();
    }

    /// Sets the number of PromScalers evaluated.
    pub(crate) fn set_scalers(&self, count: usize) {
        self.scalers.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets leadership.
    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records one tick.
    pub(crate) fn tick(&self, outcome: Outcome, seconds: f64) {
        self.tick_seconds.observe(seconds);
        self.decisions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Records one Kubernetes write.
    pub(crate) fn write(&self, kind: WriteKind, result: WriteResult) {
        self.writes
            .get_or_create(&WriteLabels { kind, result })
            .inc();
    }

    /// Records a failed peer call.
    pub(crate) fn peer_error(&self, peer: Peer) {
        self.peer_errors.get_or_create(&PeerLabels { peer }).inc();
    }
}

/// Per-PromScaler metrics, read from the last decisions at scrape time (nothing is kept or
/// updated per tick for them): what KEDA users watch as `keda_scaler_metrics_value`,
/// `keda_scaler_active` and `keda_scaled_object_errors`. Only the leader exports them: a standby
/// has no current decisions, and a former leader's would be stale.
#[derive(Debug)]
pub(crate) struct ScalerCollector {
    views: Arc<Views>,
    leading: watch::Receiver<bool>,
}

impl ScalerCollector {
    /// Registers the collector in `registry` under `actuator_`.
    pub(crate) fn register(
        registry: &mut Registry,
        views: Arc<Views>,
        leading: watch::Receiver<bool>,
    ) {
        registry
            .sub_registry_with_prefix("actuator")
            .register_collector(Box::new(Self { views, leading }));
    }
}

type ScalerLabels<'a> = [(&'static str, &'a str); 2];
type TriggerLabels<'a> = [(&'static str, &'a str); 3];

/// One gauge family: its name, help, and the series of the last decisions.
struct Series<L> {
    name: &'static str,
    help: &'static str,
    points: Vec<(L, f64)>,
}

impl<L: EncodeLabelSet> Series<L> {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            points: Vec::new(),
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        for (labels, value) in &self.points {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// Encodes the points as a counter (`<name>_total`).
    fn encode_counter(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Counter)?;
        for (labels, value) in &self.points {
            // Whole samples: exact as an integer counter.
            ConstCounter::new(*value as u64).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// What the scrape needs of one PromScaler's last decision: a few numbers, not the decision.
struct Row {
    key: ScalerKey,
    failed: bool,
    desired: Option<i32>,
    /// The target's replicas (spec) when the last evaluation read them.
    current: Option<i32>,
    /// Name, value, active, consecutive failures, target.
    triggers: Vec<(String, Option<f64>, bool, i32, f64)>,
    samples_total: u64,
    /// Type, status, reason of each condition the last evaluation reported.
    conditions: Vec<(String, String, String)>,
}

type ConditionLabels<'a> = [(&'static str, &'a str); 5];

impl Collector for ScalerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if !*self.leading.borrow() {
            return Ok(());
        }
        let mut rows: Vec<Row> = Vec::new();
        self.views.for_each_last_event(|key, event, samples_total| {
            let failed = !event.error.is_empty();
            let (desired, triggers, mut conditions) = match event.decision {
                Some(decision) => (
                    Some(decision.desired_replicas),
                    decision
                        .triggers
                        .into_iter()
                        .map(|t| (t.name, t.value, t.active, t.consecutive_failures, t.target))
                        .collect(),
                    decision
                        .conditions
                        .into_iter()
                        .map(|c| (c.r#type, c.status, c.reason))
                        .collect(),
                ),
                None => (None, Vec::new(), Vec::new()),
            };
            // A tick that failed before deciding was reported as Ready=False with its reason.
            if failed && !event.error_reason.is_empty() {
                conditions.retain(|(kind, _, _)| kind != "Ready");
                conditions.push(("Ready".into(), "False".into(), event.error_reason));
            }
            rows.push(Row {
                key: key.clone(),
                failed,
                desired,
                current: event.replicas.map(|r| r.spec),
                triggers,
                samples_total,
                conditions,
            });
        });
        rows.sort_by(|a, b| a.key.cmp(&b.key));

        let mut value = Series::<TriggerLabels<'_>>::new(
            "scaler_metric_value",
            "Last value of each trigger's query (absent while it fails without a last-known-good value)",
        );
        let mut active = Series::<TriggerLabels<'_>>::new(
            "scaler_active",
            "1 while the trigger is above its activation threshold",
        );
        let mut failures = Series::<TriggerLabels<'_>>::new(
            "scaler_consecutive_failures",
            "Consecutive failed queries of the trigger (0 when its last query succeeded)",
        );
        let mut desired = Series::<ScalerLabels<'_>>::new(
            "scaler_desired_replicas",
            "Replicas the last decision asked for",
        );
        let mut error = Series::<ScalerLabels<'_>>::new(
            "scaler_error",
            "1 when the last evaluation could not decide (peer, API or spec error), else 0",
        );
        let mut target = Series::<TriggerLabels<'_>>::new(
            "scaler_metric_target",
            "Each trigger's target (threshold) as the last decision compared it, per pod for AverageValue",
        );
        let mut current = Series::<ScalerLabels<'_>>::new(
            "scaler_replicas",
            "The scale target's replicas (spec) as the last evaluation read them",
        );
        let mut condition = Series::<ConditionLabels<'_>>::new(
            "scaler_condition",
            "1 for each condition the last evaluation reported, labelled with its type, status and reason (KEDA's and the HPA's)",
        );
        let mut samples = Series::<ScalerLabels<'_>>::new(
            "scaler_upstream_samples",
            "Samples the upstream (Prometheus, AMP) processed for the PromScaler's queries, as it reported them: what AMP bills",
        );
        for row in &rows {
            let scaler = [
                ("namespace", &*row.key.namespace),
                ("promscaler", &*row.key.name),
            ];
            error.points.push((scaler, f64::from(u8::from(row.failed))));
            samples.points.push((scaler, row.samples_total as f64));
            if let Some(replicas) = row.desired {
                desired.points.push((scaler, f64::from(replicas)));
            }
            if let Some(replicas) = row.current {
                current.points.push((scaler, f64::from(replicas)));
            }
            for (kind, status, reason) in &row.conditions {
                let labels = [
                    ("namespace", &*row.key.namespace),
                    ("promscaler", &*row.key.name),
                    ("type", kind.as_str()),
                    ("status", status.as_str()),
                    ("reason", reason.as_str()),
                ];
                condition.points.push((labels, 1.0));
            }
            for (name, v, is_active, failed, goal) in &row.triggers {
                let labels = [
                    ("namespace", &*row.key.namespace),
                    ("promscaler", &*row.key.name),
                    ("trigger", name.as_str()),
                ];
                if let Some(v) = v {
                    value.points.push((labels, *v));
                }
                active
                    .points
                    .push((labels, f64::from(u8::from(*is_active))));
                failures.points.push((labels, f64::from(*failed)));
                if *goal > 0.0 {
                    target.points.push((labels, *goal));
                }
            }
        }
        value.encode(&mut encoder)?;
        active.encode(&mut encoder)?;
        failures.encode(&mut encoder)?;
        target.encode(&mut encoder)?;
        desired.encode(&mut encoder)?;
        current.encode(&mut encoder)?;
        condition.encode(&mut encoder)?;
        samples.encode_counter(&mut encoder)?;
        error.encode(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use promscaler_proto::v1::{self as pb, DecisionEvent};

    use super::*;

    fn scrape(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn the_leader_exports_each_triggers_last_value_and_a_standby_nothing() {
        let views = Arc::new(Views::default());
        let key = ScalerKey {
            namespace: "default".into(),
            name: "sample-app-prometheus-scaler".into(),
        };
        let mut event = DecisionEvent {
            at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000,
            }),
            replicas: Some(pb::Replicas {
                spec: 2,
                status: 2,
                ready: 2,
            }),
            decision: Some(pb::DecideResponse {
                desired_replicas: 3,
                triggers: vec![
                    pb::TriggerOutcome {
                        name: "rps".into(),
                        value: Some(140.0),
                        active: true,
                        target: 50.0,
                        ..Default::default()
                    },
                    pb::TriggerOutcome {
                        name: "queue".into(),
                        value: None,
                        consecutive_failures: 2,
                        ..Default::default()
                    },
                ],
                conditions: vec![pb::Condition {
                    r#type: "Ready".into(),
                    status: "True".into(),
                    reason: "ScaledObjectReady".into(),
                    message: "ScaledObject is defined correctly and is ready for scaling".into(),
                }],
                ..Default::default()
            }),
            ..DecisionEvent::default()
        };
        views.update(&key, |v| v.set_last_event(&mut event));
        let failed = ScalerKey {
            namespace: "team-a".into(),
            name: "broken".into(),
        };
        let mut failure = DecisionEvent {
            error: "metrics-fetcher failed: unavailable; holding 2 replicas".into(),
            error_reason: "MetricsFetcherUnavailable".into(),
            ..DecisionEvent::default()
        };
        views.update(&failed, |v| v.set_last_event(&mut failure));

        let (leading_tx, leading) = watch::channel(true);
        let mut registry = Registry::with_prefix("promscaler");
        ScalerCollector::register(&mut registry, views, leading);
        let text = scrape(&registry);
        let scaler = r#"namespace="default",promscaler="sample-app-prometheus-scaler""#;
        for line in [
            format!(r#"promscaler_actuator_scaler_metric_value{{{scaler},trigger="rps"}} 140.0"#),
            format!(r#"promscaler_actuator_scaler_active{{{scaler},trigger="rps"}} 1.0"#),
            format!(r#"promscaler_actuator_scaler_active{{{scaler},trigger="queue"}} 0.0"#),
            format!(
                r#"promscaler_actuator_scaler_consecutive_failures{{{scaler},trigger="queue"}} 2.0"#
            ),
            format!(r#"promscaler_actuator_scaler_desired_replicas{{{scaler}}} 3.0"#),
            format!(r#"promscaler_actuator_scaler_error{{{scaler}}} 0.0"#),
            r#"promscaler_actuator_scaler_error{namespace="team-a",promscaler="broken"} 1.0"#
                .to_owned(),
            format!(r#"promscaler_actuator_scaler_metric_target{{{scaler},trigger="rps"}} 50.0"#),
            format!(r#"promscaler_actuator_scaler_replicas{{{scaler}}} 2.0"#),
            format!(
                r#"promscaler_actuator_scaler_condition{{{scaler},type="Ready",status="True",reason="ScaledObjectReady"}} 1.0"#
            ),
            r#"promscaler_actuator_scaler_condition{namespace="team-a",promscaler="broken",type="Ready",status="False",reason="MetricsFetcherUnavailable"} 1.0"#
                .to_owned(),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        // A failing trigger without a value has no value series (not a 0 that looks real).
        let queue_value =
            format!(r#"promscaler_actuator_scaler_metric_value{{{scaler},trigger="queue"}}"#);
        assert!(!text.contains(&queue_value), "{text}");
        assert!(
            !text.contains(r#"promscaler_actuator_scaler_desired_replicas{namespace="team-a""#),
            "{text}"
        );

        leading_tx.send_replace(false);
        let text = scrape(&registry);
        assert!(!text.contains("promscaler_actuator_scaler_"), "{text}");
    }

    #[test]
    fn upstream_samples_add_up_per_promscaler_as_a_counter() {
        let views = Arc::new(Views::default());
        let key = ScalerKey {
            namespace: "team-a".into(),
            name: "checkout".into(),
        };
        for samples in [Some(1200), None, Some(34)] {
            let mut event = DecisionEvent {
                samples_processed: samples,
                decision: Some(pb::DecideResponse::default()),
                ..DecisionEvent::default()
            };
            views.update(&key, |v| v.set_last_event(&mut event));
        }
        assert_eq!(views.samples_total(&key), 1234);
        let (_leading_tx, leading) = watch::channel(true);
        let mut registry = Registry::with_prefix("promscaler");
        ScalerCollector::register(&mut registry, views, leading);
        let text = scrape(&registry);
        assert!(
            text.contains("# TYPE promscaler_actuator_scaler_upstream_samples counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"promscaler_actuator_scaler_upstream_samples_total{namespace="team-a",promscaler="checkout"} 1234"#
            ),
            "{text}"
        );
    }
}
