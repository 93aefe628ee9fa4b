//! The `PromScaler` custom resource: KEDA's ScaledObject spec restricted to what applies to
//! Prometheus triggers, with the same field names and JSON shapes, and promscaler's status.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use litemap::LiteMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{date_time, int_or_string};

/// API group of promscaler's custom resources.
pub const GROUP: &str = "promscaler.io";
/// API version of promscaler's custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of promscaler's custom resources (`promscaler.io/v1alpha1`).
pub const API_VERSION: &str = "promscaler.io/v1alpha1";

/// The spec of a `PromScaler` (`promscaler.io/v1alpha1`): KEDA's `ScaledObjectSpec` restricted
/// to what applies to Prometheus triggers. Field names and JSON shapes are KEDA's, so a
/// ScaledObject becomes a PromScaler by changing `apiVersion` and `kind`.
// clippy reads the repeated `printcolumn(type_ = ...)` arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "promscaler.io",
    version = "v1alpha1",
    kind = "PromScaler",
    plural = "promscalers",
    singular = "promscaler",
    shortname = "psc",
    category = "promscaler",
    namespaced,
    status = "PromScalerStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "PromScaler scales a workload on Prometheus queries with KEDA ScaledObject semantics.",
    printcolumn(
        name = "ScaleTargetKind",
        type_ = "string",
        json_path = ".status.scaleTargetKind"
    ),
    printcolumn(
        name = "ScaleTargetName",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicaCount"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicaCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Active\")].status"
    ),
    printcolumn(
        name = "Fallback",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Fallback\")].status"
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Paused\")].status"
    ),
    printcolumn(
        name = "Triggers",
        type_ = "string",
        json_path = ".status.triggersTypes"
    ),
    printcolumn(
        name = "Authentications",
        type_ = "string",
        json_path = ".status.authenticationsTypes"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PromScalerSpec {
    /// The workload to scale: any resource with a `/scale` subresource.
    pub scale_target_ref: ScaleTargetRef,
    /// Seconds between two evaluations; absent = 30 (KEDA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    /// Seconds after the last active evaluation before scaling to `idleReplicaCount` or 0;
    /// absent = 300 (KEDA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    /// Seconds after creation before the first scale to zero; absent = 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_cooldown_period: Option<i32>,
    /// Replicas while no trigger is active; must be below `minReplicaCount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_replica_count: Option<i32>,
    /// Lowest replica count; absent = 0 (scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    /// Highest replica count; absent = 100 (KEDA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    /// What to do when triggers keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// HPA behavior, scaling modifiers and restore-on-delete.
    // Boxed: most PromScalers have none, and inline it was a quarter of every cached PromScaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Box<AdvancedConfig>>,
    /// The Prometheus triggers (type `prometheus`).
    pub triggers: Vec<ScaleTrigger>,
}

/// The workload a PromScaler scales (KEDA `ScaleTarget`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// Name of the workload, in the PromScaler's namespace.
    pub name: String,
    /// API version of the workload; absent = `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the workload; absent = `Deployment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Accepted for KEDA compatibility; Prometheus triggers read no container environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
}

/// KEDA `fallback`: replicas to use after `failureThreshold` consecutive trigger failures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Consecutive failures after which the fallback applies; >= 0.
    pub failure_threshold: i32,
    /// Replicas proposed for a failing trigger; >= 0.
    pub replicas: i32,
    /// `static` (default), `currentReplicas`, `currentReplicasIfHigher`,
    /// `currentReplicasIfLower` or `scalingModifiers` (failing triggers are nil in the formula).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<String>,
}

/// KEDA `advanced`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfig {
    /// HPA settings; only `behavior` changes promscaler's decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HorizontalPodAutoscalerConfig>,
    /// On delete, scale the workload back to the replicas it had before the PromScaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_to_original_replica_count: Option<bool>,
    /// A formula combining the triggers' values into one metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

/// KEDA `advanced.horizontalPodAutoscalerConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerConfig {
    /// Accepted for KEDA compatibility; promscaler creates no HPA, so the name is unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// autoscaling/v2 `HorizontalPodAutoscalerBehavior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HpaBehavior>,
}

/// autoscaling/v2 `HorizontalPodAutoscalerBehavior`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HpaBehavior {
    /// Rules for scaling up; absent = the HPA defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HpaScalingRules>,
    /// Rules for scaling down; absent = the HPA defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HpaScalingRules>,
}

/// autoscaling/v2 `HPAScalingRules`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HpaScalingRules {
    /// Seconds of past recommendations considered; 0..=3600. Absent = 0 up, 300 down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    /// `Max` (default), `Min` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<String>,
    /// Rate limits; absent or empty = the HPA defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<HpaScalingPolicy>>,
    /// Tolerance around the target for this direction (a quantity such as `0.05` or `50m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    pub tolerance: Option<serde_json::Value>,
}

/// autoscaling/v2 `HPAScalingPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HpaScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Pods or percent allowed to change within `periodSeconds`; > 0.
    pub value: i32,
    /// Window the policy looks back over; 1..=1800.
    pub period_seconds: i32,
}

/// KEDA `advanced.scalingModifiers`. Values are strings, as in KEDA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingModifiers {
    /// Expression over trigger names, e.g. `(rps + queue) / 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// Target of the composed metric; a number > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Activation target of the composed metric; a number, default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_target: Option<String>,
    /// `AverageValue` (default) or `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

impl ScalingModifiers {
    /// KEDA `IsUsingModifiers`: an all-empty `scalingModifiers: {}` means "not used".
    pub fn is_empty(&self) -> bool {
        [
            &self.formula,
            &self.target,
            &self.activation_target,
            &self.metric_type,
        ]
        .iter()
        .all(|f| f.as_deref().unwrap_or("").is_empty())
    }
}

/// One trigger (KEDA `ScaleTriggers`); only `type: prometheus` is supported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTrigger {
    /// Scaler type; must be `prometheus`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Unique name, used by `scalingModifiers.formula`, status and metrics;
    /// absent = `trigger-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `AverageValue` (default) or `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
    /// Serve a result cached by the fetcher for up to one polling interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cached_metrics: Option<bool>,
    /// The PromScalerAuthentication holding credentials for this trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    /// KEDA's prometheus scaler metadata (`serverAddress`, `query`, `threshold`, ...), all
    /// strings.
    pub metadata: BTreeMap<String, String>,
}

/// Reference to a `PromScalerAuthentication` in the PromScaler's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRef {
    /// Name of the PromScalerAuthentication.
    pub name: String,
    /// `PromScalerAuthentication` (the default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A map keyed by trigger name, in status: a sorted `Vec` of pairs, serialized as a JSON object
/// like a `BTreeMap`. These maps hold one entry per trigger (usually one); a `BTreeMap` allocates
/// a node for eleven entries, which made them a fifth of each cached PromScaler's memory.
pub type NameMap<V> = LiteMap<String, V>;

/// Status of a PromScaler, written by the actuator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromScalerStatus {
    /// `<apiVersion>.<kind>` of the target, e.g. `apps/v1.Deployment` (as KEDA shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_kind: Option<String>,
    /// Ready, Active, Fallback and Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Replicas of the target before the PromScaler first scaled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_replica_count: Option<i32>,
    /// Last time any trigger was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub last_active_time: Option<Time>,
    /// Health per trigger name.
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    #[schemars(with = "BTreeMap<String, HealthStatus>")]
    pub health: NameMap<HealthStatus>,
    /// Last value per trigger name (written at status writes only, not every tick).
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    #[schemars(with = "BTreeMap<String, f64>")]
    pub last_metric_values: NameMap<f64>,
    /// Replicas the last decision asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Replicas of the target at the last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Last time the actuator changed the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub last_scale_time: Option<Time>,
    /// Replicas held by `paused-replicas`, while paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_replica_count: Option<i32>,
    /// The decision state carried between evaluations, so a successor resumes cooldowns and
    /// scale-event history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_state: Option<DecisionStateStatus>,
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Comma-separated trigger types, for the TRIGGERS column (KEDA `triggersTypes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,
    /// Comma-separated authentication names, for the AUTHENTICATIONS column (KEDA
    /// `authenticationsTypes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
}

/// A condition (KEDA's condition shape plus `lastTransitionTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Active`, `Fallback` or `Paused`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub last_transition_time: Option<Time>,
}

/// Health of one trigger (KEDA `HealthStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Consecutive failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_failures: Option<i32>,
    /// `Happy` or `Failing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// JSON mirror of `promscaler.v1.DecisionState`, persisted in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStateStatus {
    /// Recent recommendations (stabilization windows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<TimestampedReplicas>,
    /// Recent scale-up events (rate policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_up_events: Vec<TimestampedReplicas>,
    /// Recent scale-down events (rate policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_down_events: Vec<TimestampedReplicas>,
    /// Last time any trigger was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub last_active_time: Option<Time>,
    /// Consecutive failures per trigger name.
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    #[schemars(with = "BTreeMap<String, i32>")]
    pub consecutive_failures: NameMap<i32>,
    /// When the scaler was created (initialCooldownPeriod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub created_at: Option<Time>,
    /// Last good value per trigger name.
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    #[schemars(with = "BTreeMap<String, TimestampedValue>")]
    pub last_good_values: NameMap<TimestampedValue>,
    /// The target has been through a decision (recommendations that aged out do not make the
    /// state fresh again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initialized: bool,
}

/// A replica count at a time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedReplicas {
    /// Replicas.
    pub replicas: i32,
    /// RFC 3339 time.
    #[schemars(schema_with = "date_time")]
    pub time: Time,
}

/// A value at a time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedValue {
    /// The value.
    pub value: f64,
    /// RFC 3339 time.
    #[schemars(schema_with = "date_time")]
    pub time: Time,
}
