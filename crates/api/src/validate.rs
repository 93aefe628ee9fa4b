//! Whole-spec validation of a PromScaler (KEDA's webhook and scaler rules, plus what promscaler
//! needs), producing a [`ValidatedScaler`] from which the actuator builds its proto requests.

use std::collections::BTreeMap;
use std::time::Duration;

use promscaler_proto::v1;

use crate::prometheus::PrometheusTrigger;
use crate::{
    AdvancedConfig, AuthenticationRef, FieldError, HpaBehavior, HpaScalingRules, PromScaler,
    PromScalerSpec, ScaleTrigger, go, pause,
};

/// KEDA's default `pollingInterval`, seconds.
pub const DEFAULT_POLLING_INTERVAL_SECONDS: i32 = 30;
/// KEDA's default `cooldownPeriod`, seconds.
pub const DEFAULT_COOLDOWN_PERIOD_SECONDS: i32 = 300;
/// KEDA's default `maxReplicaCount`.
pub const DEFAULT_MAX_REPLICA_COUNT: i32 = 100;
/// Most triggers a PromScaler may have (the decision service's limit).
pub const MAX_TRIGGERS: usize = promscaler_core::MAX_TRIGGERS;
/// The only trigger type promscaler handles.
pub const PROMETHEUS_TRIGGER_TYPE: &str = "prometheus";
/// The `authenticationRef.kind` promscaler resolves.
pub const AUTHENTICATION_KIND: &str = "PromScalerAuthentication";

/// A trigger that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedTrigger {
    /// The trigger's `name`, or `trigger-<index>` when unnamed.
    pub name: String,
    /// `metricType` (AverageValue when absent).
    pub metric_type: v1::MetricType,
    /// `useCachedMetrics`.
    pub use_cached_metrics: bool,
    /// `authenticationRef.name` (a PromScalerAuthentication in the same namespace).
    pub authentication_ref: Option<String>,
    /// The parsed metadata.
    pub prometheus: PrometheusTrigger,
}

/// A PromScaler that passed validation: everything the actuator needs to evaluate it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedScaler {
    /// `metadata.namespace` (empty when the object has none, e.g. read from a file).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The target, with KEDA's defaults applied (`apps/v1`, `Deployment`).
    pub target: v1::ScaleTargetRef,
    /// `pollingInterval` (default 30 s).
    pub polling_interval: Duration,
    /// The policy to send with `DecisionService.Decide`.
    pub policy: v1::ScalingPolicy,
    /// The triggers, in spec order (same order as `policy.triggers`).
    pub triggers: Vec<ValidatedTrigger>,
    /// Pause annotations.
    pub pause: v1::Pause,
    /// `advanced.restoreToOriginalReplicaCount`.
    pub restore_to_original_replica_count: bool,
    /// Things KEDA would ignore (unknown metadata keys, deprecated fields): worth showing, never
    /// a reason to refuse.
    pub warnings: Vec<FieldError>,
}

impl ValidatedScaler {
    /// `ScalerRef` for requests made on behalf of this PromScaler.
    pub fn scaler_ref(&self) -> v1::ScalerRef {
        v1::ScalerRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// KEDA's `status.scaleTargetKind` (the SCALETARGETKIND column): `<apiVersion>.<kind>`,
    /// e.g. `apps/v1.Deployment`.
    pub fn scale_target_kind(&self) -> String {
        crate::scale_target_kind(&self.target)
    }

    /// The `QueryRequest` for trigger `index`, with `auth` resolved by the caller (see
    /// [`crate::resolve_auth`]). With `useCachedMetrics`, a result up to one polling interval
    /// old may be served from the fetcher's cache.
    pub fn query_request(&self, index: usize, auth: Option<v1::UpstreamAuth>) -> v1::QueryRequest {
        let t = &self.triggers[index];
        v1::QueryRequest {
            source: Some(t.prometheus.source(auth)),
            query: t.prometheus.query.clone(),
            ignore_null_values: t.prometheus.ignore_null_values,
            time: None,
            caller: Some(self.scaler_ref()),
            max_age: t
                .use_cached_metrics
                .then(|| proto_duration(self.polling_interval)),
        }
    }
}

impl PrometheusTrigger {
    /// The `PrometheusSource` for this trigger, with `auth` resolved by the caller.
    pub fn source(&self, auth: Option<v1::UpstreamAuth>) -> v1::PrometheusSource {
        v1::PrometheusSource {
            server_address: self.server_address.clone(),
            custom_headers: self.custom_headers.clone().into_iter().collect(),
            query_parameters: self.query_parameters.clone().into_iter().collect(),
            namespace: self.namespace.clone().unwrap_or_default(),
            unsafe_ssl: self.unsafe_ssl,
            timeout: self.timeout.map(proto_duration),
            auth,
        }
    }
}

pub(crate) fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

impl PromScaler {
    /// Validates the whole object (spec and pause annotations); every problem is reported, one
    /// [`FieldError`] per bad field.
    pub fn validate(&self) -> Result<ValidatedScaler, Vec<FieldError>> {
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        validate_spec(
            &self.spec,
            &annotations,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl PromScalerSpec {
    /// KEDA's `triggersTypes` status value: the distinct trigger types, comma-separated.
    pub fn triggers_types(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for t in &self.triggers {
            if !seen.contains(&t.type_.as_str()) {
                seen.push(&t.type_);
            }
        }
        seen.join(",")
    }

    /// KEDA's `authenticationsTypes` status value: the distinct authenticationRef names,
    /// comma-separated.
    pub fn authentications_types(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for t in &self.triggers {
            if let Some(a) = &t.authentication_ref
                && !seen.contains(&a.name.as_str())
            {
                seen.push(&a.name);
            }
        }
        seen.join(",")
    }
}

fn metric_type(raw: Option<&str>, field: &str, errors: &mut Vec<FieldError>) -> v1::MetricType {
    match raw.unwrap_or("") {
        "" | "AverageValue" => v1::MetricType::AverageValue,
        "Value" => v1::MetricType::Value,
        "Utilization" => {
            errors.push(FieldError::new(
                field,
                "Utilization applies only to KEDA's cpu and memory scalers; use AverageValue (value / replicas) or Value",
            ));
            v1::MetricType::AverageValue
        }
        other => {
            errors.push(FieldError::new(
                field,
                format!("{other:?} is not a metric type; use AverageValue (the default) or Value"),
            ));
            v1::MetricType::AverageValue
        }
    }
}

/// Validates a spec with its object's annotations; `namespace` and `name` go into the result.
pub fn validate_spec(
    spec: &PromScalerSpec,
    annotations: &BTreeMap<String, String>,
    namespace: &str,
    name: &str,
) -> Result<ValidatedScaler, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let target = scale_target(spec, &mut errors);
    let periods = periods(spec, &mut errors);
    let bounds = replica_bounds(spec, &mut errors, &mut warnings);
    let triggers = triggers(spec, &mut errors, &mut warnings);
    let advanced = spec.advanced.as_deref().cloned().unwrap_or_default();
    let (behavior, modifiers) = advanced_config(spec, &advanced, &mut errors, &mut warnings);
    let fallback = fallback(spec, modifiers.is_some(), &mut errors);
    let pause = match pause::parse_pause(annotations) {
        Ok(p) => p,
        Err(e) => {
            errors.extend(e);
            v1::Pause::default()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = v1::ScalingPolicy {
        min_replicas: bounds.min,
        max_replicas: bounds.max,
        idle_replicas: bounds.idle,
        cooldown_period: Some(proto_duration(periods.cooldown)),
        initial_cooldown_period: Some(proto_duration(periods.initial_cooldown)),
        fallback,
        behavior,
        triggers: triggers
            .iter()
            .map(|t| v1::TriggerPolicy {
                name: t.name.clone(),
                metric_type: t.metric_type as i32,
                target: t.prometheus.threshold,
                activation_target: t.prometheus.activation_threshold,
            })
            .collect(),
        scaling_modifiers: modifiers,
        tolerance: None,
        last_known_good_ttl: None,
    };
    Ok(ValidatedScaler {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        target,
        polling_interval: periods.polling,
        policy,
        triggers,
        pause,
        restore_to_original_replica_count: advanced
            .restore_to_original_replica_count
            .unwrap_or(false),
        warnings,
    })
}

/// `scaleTargetRef`: a name is required; apiVersion and kind default as KEDA's do.
fn scale_target(spec: &PromScalerSpec, errors: &mut Vec<FieldError>) -> v1::ScaleTargetRef {
    let target_ref = &spec.scale_target_ref;
    if target_ref.name.trim().is_empty() {
        errors.push(FieldError::new(
            "spec.scaleTargetRef.name",
            "is required: the name of the Deployment, StatefulSet or other workload to scale",
        ));
    }
    target_ref.with_defaults()
}

/// The loop's periods, with KEDA's defaults.
struct Periods {
    polling: Duration,
    cooldown: Duration,
    initial_cooldown: Duration,
}

/// `pollingInterval` (> 0), `cooldownPeriod` and `initialCooldownPeriod` (>= 0).
fn periods(spec: &PromScalerSpec, errors: &mut Vec<FieldError>) -> Periods {
    let polling = spec
        .polling_interval
        .unwrap_or(DEFAULT_POLLING_INTERVAL_SECONDS);
    if polling <= 0 {
        errors.push(FieldError::new(
            "spec.pollingInterval",
            format!("must be > 0 seconds, got {polling}; remove it for the default 30"),
        ));
    }
    let mut seconds = |field: &str, v: Option<i32>, default: i32| -> Duration {
        let v = v.unwrap_or(default);
        if v < 0 {
            errors.push(FieldError::new(
                field,
                format!("must be >= 0 seconds, got {v}"),
            ));
        }
        Duration::from_secs(v.max(0).unsigned_abs().into())
    };
    Periods {
        polling: Duration::from_secs(polling.max(0).unsigned_abs().into()),
        cooldown: seconds(
            "spec.cooldownPeriod",
            spec.cooldown_period,
            DEFAULT_COOLDOWN_PERIOD_SECONDS,
        ),
        initial_cooldown: seconds(
            "spec.initialCooldownPeriod",
            spec.initial_cooldown_period,
            0,
        ),
    }
}

/// Replica bounds after validation.
struct ReplicaBounds {
    min: i32,
    max: i32,
    idle: Option<i32>,
}

/// `minReplicaCount`, `maxReplicaCount`, `idleReplicaCount` (KEDA CheckReplicaCountBoundsAreValid,
/// and the HPA's max >= 1).
fn replica_bounds(
    spec: &PromScalerSpec,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
) -> ReplicaBounds {
    let min = spec.min_replica_count.unwrap_or(0);
    let max = spec.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT);
    if min < 0 {
        errors.push(FieldError::new(
            "spec.minReplicaCount",
            format!("must be >= 0, got {min}"),
        ));
    }
    if max < 1 {
        errors.push(FieldError::new(
            "spec.maxReplicaCount",
            format!("must be >= 1, got {max}; to stop scaling use the paused annotations"),
        ));
    } else if min > max {
        errors.push(FieldError::new(
            "spec.minReplicaCount",
            format!(
                "{min} is above maxReplicaCount {max}; minReplicaCount must be <= maxReplicaCount"
            ),
        ));
    }
    // KEDA compares idle with the HPA's minimum, which is 1 when minReplicaCount is 0, so it
    // accepts idle 0 with min 0; that combination means nothing beyond min 0, so it is dropped.
    let mut idle = spec.idle_replica_count;
    if idle == Some(0) && min == 0 && spec.min_replica_count.is_some() {
        warnings.push(FieldError::new(
            "spec.idleReplicaCount",
            "0 has no effect with minReplicaCount 0 (it already scales to zero); remove it",
        ));
        idle = None;
    }
    if let Some(idle) = idle {
        if idle < 0 {
            errors.push(FieldError::new(
                "spec.idleReplicaCount",
                format!("must be >= 0, got {idle}"),
            ));
        } else if idle >= min {
            errors.push(FieldError::new(
                "spec.idleReplicaCount",
                format!(
                    "{idle} must be below minReplicaCount {min} (KEDA rule); lower it or remove it"
                ),
            ));
        }
    }
    ReplicaBounds { min, max, idle }
}

/// `triggers`: at least one, at most [`MAX_TRIGGERS`], unique names, each a valid prometheus
/// trigger.
fn triggers(
    spec: &PromScalerSpec,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
) -> Vec<ValidatedTrigger> {
    if spec.triggers.is_empty() {
        errors.push(FieldError::new(
            "spec.triggers",
            "at least one prometheus trigger is required",
        ));
    }
    if spec.triggers.len() > MAX_TRIGGERS {
        errors.push(FieldError::new(
            "spec.triggers",
            format!(
                "has {} triggers; at most {MAX_TRIGGERS} are allowed",
                spec.triggers.len()
            ),
        ));
    }
    let mut triggers = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, t) in spec.triggers.iter().enumerate() {
        let path = format!("spec.triggers[{i}]");
        let name = match non_empty(t.name.as_deref()) {
            Some(n) => n.to_owned(),
            None => format!("trigger-{i}"),
        };
        if names.contains(&name) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!(
                    "trigger name {name:?} is used more than once; trigger names must be unique"
                ),
            ));
        }
        names.push(name.clone());
        if let Some(t) = trigger(&path, name, t, errors, warnings) {
            triggers.push(t);
        }
    }
    triggers
}

/// One trigger: type prometheus, its metricType, authenticationRef and metadata.
fn trigger(
    path: &str,
    name: String,
    t: &ScaleTrigger,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
) -> Option<ValidatedTrigger> {
    if t.type_ != PROMETHEUS_TRIGGER_TYPE {
        errors.push(FieldError::new(
            format!("{path}.type"),
            format!("{:?} triggers are not supported: promscaler handles only type prometheus; keep this workload on KEDA, or express the metric as a Prometheus query", t.type_),
        ));
        return None;
    }
    let metric_type = metric_type(
        t.metric_type.as_deref(),
        &format!("{path}.metricType"),
        errors,
    );
    let authentication_ref = t
        .authentication_ref
        .as_ref()
        .map(|a| authentication_ref(path, a, errors));
    let mpath = format!("{path}.metadata");
    warnings.extend(PrometheusTrigger::warnings(&t.metadata, &mpath));
    match PrometheusTrigger::parse(&t.metadata, &mpath) {
        Ok(prometheus) => Some(ValidatedTrigger {
            name,
            metric_type,
            use_cached_metrics: t.use_cached_metrics.unwrap_or(false),
            authentication_ref,
            prometheus,
        }),
        Err(e) => {
            errors.extend(e);
            None
        }
    }
}

/// A trigger's `authenticationRef`: a name, and our kind (KEDA's kinds get an import hint).
fn authentication_ref(path: &str, a: &AuthenticationRef, errors: &mut Vec<FieldError>) -> String {
    if a.name.trim().is_empty() {
        errors.push(FieldError::new(
            format!("{path}.authenticationRef.name"),
            "is required: the name of a PromScalerAuthentication in this namespace",
        ));
    }
    match non_empty(a.kind.as_deref()) {
        None | Some(AUTHENTICATION_KIND) => {}
        Some(kind @ ("TriggerAuthentication" | "ClusterTriggerAuthentication")) => {
            errors.push(FieldError::new(
                format!("{path}.authenticationRef.kind"),
                format!("{kind} is KEDA's; change it to {AUTHENTICATION_KIND} and import the {kind} with promscalerctl import-keda"),
            ));
        }
        Some(other) => errors.push(FieldError::new(
            format!("{path}.authenticationRef.kind"),
            format!("{other:?} is not supported; use {AUTHENTICATION_KIND} (or omit kind)"),
        )),
    }
    a.name.clone()
}

/// `advanced`: the HPA behavior (its HPA name is ignored, with a warning) and scalingModifiers.
fn advanced_config(
    spec: &PromScalerSpec,
    advanced: &AdvancedConfig,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
) -> (Option<v1::Behavior>, Option<v1::ScalingModifiers>) {
    let behavior = advanced
        .horizontal_pod_autoscaler_config
        .as_ref()
        .and_then(|h| h.behavior.as_ref())
        .map(|b| convert_behavior(b, errors));
    if let Some(hpa_name) = advanced
        .horizontal_pod_autoscaler_config
        .as_ref()
        .and_then(|h| non_empty(h.name.as_deref()))
    {
        warnings.push(FieldError::new(
            "spec.advanced.horizontalPodAutoscalerConfig.name",
            format!(
                "{hpa_name:?} is ignored: promscaler scales the target directly and creates no HPA"
            ),
        ));
    }
    let modifiers = advanced
        .scaling_modifiers
        .as_ref()
        .filter(|m| !m.is_empty())
        .map(|m| convert_modifiers(m, spec, errors));
    (behavior, modifiers)
}

/// `fallback` (KEDA CheckFallbackValid). KEDA ≥ 2.18 supports fallback for Value and
/// AverageValue triggers alike (and with scalingModifiers of either metricType); we propose
/// replicas directly in every case.
fn fallback(
    spec: &PromScalerSpec,
    has_modifiers: bool,
    errors: &mut Vec<FieldError>,
) -> Option<v1::Fallback> {
    let f = spec.fallback.as_ref()?;
    if f.failure_threshold < 0 || f.replicas < 0 {
        errors.push(FieldError::new(
            "spec.fallback",
            format!(
                "failureThreshold ({}) and replicas ({}) must both be >= 0",
                f.failure_threshold, f.replicas
            ),
        ));
    }
    let behavior = match non_empty(f.behavior.as_deref()).unwrap_or("static") {
        "static" => v1::FallbackBehavior::Static,
        "currentReplicas" => v1::FallbackBehavior::CurrentReplicas,
        "currentReplicasIfHigher" => v1::FallbackBehavior::CurrentReplicasIfHigher,
        "currentReplicasIfLower" => v1::FallbackBehavior::CurrentReplicasIfLower,
        "scalingModifiers" => {
            if !has_modifiers {
                errors.push(FieldError::new(
                    "spec.fallback.behavior",
                    "scalingModifiers needs spec.advanced.scalingModifiers with a formula (KEDA rule); add one or use another behavior",
                ));
            }
            v1::FallbackBehavior::ScalingModifiers
        }
        other => {
            errors.push(FieldError::new(
                "spec.fallback.behavior",
                format!("{other:?} is not a fallback behavior; use static, currentReplicas, currentReplicasIfHigher, currentReplicasIfLower or scalingModifiers"),
            ));
            v1::FallbackBehavior::Static
        }
    };
    Some(v1::Fallback {
        failure_threshold: f.failure_threshold,
        replicas: f.replicas,
        behavior: behavior as i32,
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn convert_modifiers(
    m: &crate::ScalingModifiers,
    spec: &PromScalerSpec,
    errors: &mut Vec<FieldError>,
) -> v1::ScalingModifiers {
    const P: &str = "spec.advanced.scalingModifiers";
    let formula = non_empty(m.formula.as_deref()).unwrap_or("");
    if formula.is_empty() {
        errors.push(FieldError::new(
            format!("{P}.formula"),
            "is required when scalingModifiers is set, e.g. \"(rps + queue) / 2\" over trigger names; or remove scalingModifiers",
        ));
    } else {
        // KEDA: only named triggers are visible to the formula.
        let names: Vec<&str> = spec
            .triggers
            .iter()
            .filter_map(|t| non_empty(t.name.as_deref()))
            .collect();
        if let Err(e) = promscaler_core::Formula::parse(formula, &names) {
            errors.push(FieldError::new(
                format!("{P}.formula"),
                format!("{e}; a formula is KEDA's expr-lang over numbers and the names of this PromScaler's triggers ({}), and must give a number (docs/semantics.md §7)", names.join(", ")),
            ));
        }
    }
    let target = match non_empty(m.target.as_deref()) {
        None => {
            if !formula.is_empty() {
                errors.push(FieldError::new(
                    format!("{P}.target"),
                    "is required with a formula: the target value of the composed metric, e.g. \"50\"",
                ));
            }
            0.0
        }
        // KEDA sets the composite target with `SetMilli(int64(v × 1000))`: below 0.001 it is 0.
        Some(raw) => match go::parse_float(raw) {
            Ok(v) if (v * 1000.0).trunc() >= 1.0 => v,
            Ok(v) => {
                errors.push(FieldError::new(
                    format!("{P}.target"),
                    format!("must be at least 0.001, got {v}"),
                ));
                0.0
            }
            Err(e) => {
                errors.push(FieldError::new(format!("{P}.target"), e));
                0.0
            }
        },
    };
    let activation_target = match non_empty(m.activation_target.as_deref()) {
        None => 0.0,
        Some(raw) => go::parse_float(raw).unwrap_or_else(|e| {
            errors.push(FieldError::new(format!("{P}.activationTarget"), e));
            0.0
        }),
    };
    let mt = metric_type(m.metric_type.as_deref(), &format!("{P}.metricType"), errors);
    v1::ScalingModifiers {
        formula: formula.to_owned(),
        target,
        activation_target,
        metric_type: mt as i32,
    }
}

fn convert_behavior(b: &HpaBehavior, errors: &mut Vec<FieldError>) -> v1::Behavior {
    const P: &str = "spec.advanced.horizontalPodAutoscalerConfig.behavior";
    let rules = |r: &Option<HpaScalingRules>, dir: &str, errors: &mut Vec<FieldError>| {
        r.as_ref()
            .map(|r| convert_rules(r, &format!("{P}.{dir}"), errors))
    };
    v1::Behavior {
        scale_up: rules(&b.scale_up, "scaleUp", errors),
        scale_down: rules(&b.scale_down, "scaleDown", errors),
    }
}

fn convert_rules(
    r: &HpaScalingRules,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> v1::ScalingRules {
    const MAX_WINDOW: i32 = promscaler_core::MAX_STABILIZATION_WINDOW_SECONDS;
    const MAX_PERIOD: i32 = promscaler_core::MAX_PERIOD_SECONDS;
    if let Some(w) = r.stabilization_window_seconds
        && !(0..=MAX_WINDOW).contains(&w)
    {
        errors.push(FieldError::new(
            format!("{path}.stabilizationWindowSeconds"),
            format!("must be within 0..={MAX_WINDOW} seconds, got {w}"),
        ));
    }
    let select_policy = match r.select_policy.as_deref().unwrap_or("Max") {
        "Max" => v1::SelectPolicy::Max,
        "Min" => v1::SelectPolicy::Min,
        "Disabled" => v1::SelectPolicy::Disabled,
        other => {
            errors.push(FieldError::new(
                format!("{path}.selectPolicy"),
                format!("{other:?} is not a select policy; use Max, Min or Disabled"),
            ));
            v1::SelectPolicy::Max
        }
    };
    let policies = r.policies.as_deref().unwrap_or_default();
    if policies.len() > promscaler_core::MAX_POLICIES {
        errors.push(FieldError::new(
            format!("{path}.policies"),
            format!(
                "has {} policies; at most {} are allowed",
                policies.len(),
                promscaler_core::MAX_POLICIES
            ),
        ));
    }
    let policies = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pp = format!("{path}.policies[{i}]");
            let kind = match p.type_.as_str() {
                "Pods" => v1::PolicyType::Pods,
                "Percent" => v1::PolicyType::Percent,
                other => {
                    errors.push(FieldError::new(
                        format!("{pp}.type"),
                        format!("{other:?} is not a policy type; use Pods or Percent"),
                    ));
                    v1::PolicyType::Unspecified
                }
            };
            if p.value <= 0 {
                errors.push(FieldError::new(
                    format!("{pp}.value"),
                    format!("must be > 0, got {}", p.value),
                ));
            }
            if !(1..=MAX_PERIOD).contains(&p.period_seconds) {
                errors.push(FieldError::new(
                    format!("{pp}.periodSeconds"),
                    format!(
                        "must be within 1..={MAX_PERIOD} seconds, got {}",
                        p.period_seconds
                    ),
                ));
            }
            v1::ScalingPolicyRule {
                r#type: kind as i32,
                value: p.value,
                period_seconds: p.period_seconds,
            }
        })
        .collect();
    let tolerance = r.tolerance.as_ref().and_then(|q| match parse_quantity(q) {
        Ok(t) if t >= 0.0 => Some(t),
        Ok(t) => {
            errors.push(FieldError::new(
                format!("{path}.tolerance"),
                format!("must be >= 0, got {t}"),
            ));
            None
        }
        Err(e) => {
            errors.push(FieldError::new(format!("{path}.tolerance"), e));
            None
        }
    });
    v1::ScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy: select_policy as i32,
        policies,
        tolerance,
    }
}

/// A Kubernetes quantity as a float: a number, or a decimal with a `m` (milli) suffix.
fn parse_quantity(q: &serde_json::Value) -> Result<f64, String> {
    let bad = || format!("{q} is not a quantity; write e.g. \"0.05\" or \"50m\"");
    match q {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(bad),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let (num, scale) = match s.strip_suffix('m') {
                Some(n) => (n, 1e-3),
                None => (s, 1.0),
            };
            num.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| v * scale)
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
