//! The vocabulary of a PromScaler's spec as the decision needs it (KEDA ScaledObject fields and
//! the HPA `behavior`), with its defaults and validation.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::formula::Formula;

/// KEDA's default `cooldownPeriod` (keda `pkg/scaling/executor`: `defaultCooldownPeriod = 300`).
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);
/// The HPA's default tolerance (`--horizontal-pod-autoscaler-tolerance`, 0.1).
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The HPA controller's downscale stabilization window (`--horizontal-pod-autoscaler-downscale-stabilization`).
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS: i32 = 300;
/// Largest accepted stabilization window (autoscaling/v2 validation: 0..=3600).
pub const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
/// Largest accepted policy period (autoscaling/v2 validation: 1..=1800).
pub const MAX_PERIOD_SECONDS: i32 = 1800;
/// Most triggers a policy may have (bounds the work per decision).
pub const MAX_TRIGGERS: usize = 64;
/// Most rate policies per direction.
pub const MAX_POLICIES: usize = 16;

/// How a trigger's value is compared with its target (HPA metric target types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// `desired = ceil(value / target)` (KEDA's default for the prometheus scaler).
    #[default]
    AverageValue,
    /// `desired = ceil(ready × value / target)`.
    Value,
}

/// What a failing trigger proposes once its failures exceed the threshold (KEDA `fallback.behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackBehavior {
    /// Exactly `fallback.replicas`.
    #[default]
    Static,
    /// The current replicas.
    CurrentReplicas,
    /// `max(current, fallback.replicas)`.
    CurrentReplicasIfHigher,
    /// `min(current, fallback.replicas)`.
    CurrentReplicasIfLower,
    /// KEDA `scalingModifiers`: a trigger failing beyond the threshold is `nil` in the formula,
    /// and a formula that yields nil takes `fallback.replicas`. Needs scalingModifiers.
    ScalingModifiers,
}

/// KEDA `fallback`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fallback {
    /// Consecutive failures after which the fallback applies (it applies when the count exceeds it).
    pub failure_threshold: i32,
    /// Replicas proposed for a failing trigger.
    pub replicas: i32,
    /// How `replicas` combines with the current replicas.
    pub behavior: FallbackBehavior,
}

/// Kind of an HPA rate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    /// An absolute number of pods per period.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One HPA rate policy (`HPAScalingPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingPolicyRule {
    /// Pods or Percent.
    pub kind: PolicyType,
    /// Pods or percent; > 0.
    pub value: i32,
    /// Window the policy looks back over; 1..=1800.
    pub period_seconds: i32,
}

impl ScalingPolicyRule {
    /// A Pods policy.
    pub const fn pods(value: i32, period_seconds: i32) -> Self {
        Self {
            kind: PolicyType::Pods,
            value,
            period_seconds,
        }
    }

    /// A Percent policy.
    pub const fn percent(value: i32, period_seconds: i32) -> Self {
        Self {
            kind: PolicyType::Percent,
            value,
            period_seconds,
        }
    }
}

impl std::fmt::Display for ScalingPolicyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            PolicyType::Pods => write!(f, "Pods/{}/{}s", self.value, self.period_seconds),
            PolicyType::Percent => write!(f, "Percent/{}/{}s", self.value, self.period_seconds),
        }
    }
}

/// HPA `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectPolicy {
    /// The policy allowing the biggest change.
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// HPA `HPAScalingRules` as given by the user (gaps are filled by [`Behavior::resolve_up`] and
/// [`Behavior::resolve_down`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalingRules {
    /// Absent = 0 s for scale-up, 300 s for scale-down.
    pub stabilization_window_seconds: Option<i32>,
    /// Max, Min or Disabled.
    pub select_policy: SelectPolicy,
    /// Empty = the direction's default policies.
    pub policies: Vec<ScalingPolicyRule>,
    /// Tolerance for this direction; absent = the policy's tolerance, else 0.1.
    pub tolerance: Option<f64>,
}

/// HPA `behavior`. `None` in each direction = the documented defaults for that direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behavior {
    /// `scaleUp`.
    pub scale_up: Option<ScalingRules>,
    /// `scaleDown`.
    pub scale_down: Option<ScalingRules>,
}

/// Scaling rules of one direction with every default filled in (borrows the user's policies or
/// the static defaults, so resolving allocates nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRules<'a> {
    /// Stabilization window, seconds.
    pub stabilization_window_seconds: i32,
    /// Max, Min or Disabled.
    pub select_policy: SelectPolicy,
    /// Rate policies (never empty).
    pub policies: &'a [ScalingPolicyRule],
}

impl ResolvedRules<'_> {
    /// Longest policy period, seconds (how far back scale events matter).
    pub fn longest_period_seconds(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// Default scale-up policies (k8s `SetDefaults_HorizontalPodAutoscalerBehavior`): 4 pods or
/// 100 % per 15 s, whichever is more.
pub const DEFAULT_SCALE_UP_POLICIES: [ScalingPolicyRule; 2] = [
    ScalingPolicyRule::pods(4, 15),
    ScalingPolicyRule::percent(100, 15),
];
/// Default scale-down policy: 100 % per 15 s.
pub const DEFAULT_SCALE_DOWN_POLICIES: [ScalingPolicyRule; 1] =
    [ScalingPolicyRule::percent(100, 15)];

impl Behavior {
    /// Resolves the scale-up rules, filling gaps with the documented defaults.
    pub fn resolve_up(&self) -> ResolvedRules<'_> {
        resolve(self.scale_up.as_ref(), 0, &DEFAULT_SCALE_UP_POLICIES)
    }

    /// Resolves the scale-down rules, filling gaps with the documented defaults.
    pub fn resolve_down(&self) -> ResolvedRules<'_> {
        resolve(
            self.scale_down.as_ref(),
            DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS,
            &DEFAULT_SCALE_DOWN_POLICIES,
        )
    }
}

fn resolve<'a>(
    rules: Option<&'a ScalingRules>,
    window: i32,
    defaults: &'static [ScalingPolicyRule],
) -> ResolvedRules<'a> {
    match rules {
        None => ResolvedRules {
            stabilization_window_seconds: window,
            select_policy: SelectPolicy::Max,
            policies: defaults,
        },
        Some(r) => ResolvedRules {
            stabilization_window_seconds: r.stabilization_window_seconds.unwrap_or(window),
            select_policy: r.select_policy,
            policies: if r.policies.is_empty() {
                defaults
            } else {
                &r.policies
            },
        },
    }
}

/// KEDA `advanced.scalingModifiers`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalingModifiers {
    /// Expression over trigger values by trigger name, e.g. `(rps + queue) / 2`.
    pub formula: String,
    /// Target of the composed metric; finite and > 0.
    pub target: f64,
    /// The composed metric is active when it is strictly greater than this.
    pub activation_target: f64,
    /// How the composed metric is compared with `target`.
    pub metric_type: MetricType,
}

/// One trigger of a PromScaler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerPolicy {
    /// Unique name (KEDA trigger `name`, or `trigger-<index>`). Shared, so outcomes and
    /// explanations can name the trigger without copying the string.
    pub name: Arc<str>,
    /// How the value is compared with the target.
    pub metric_type: MetricType,
    /// `threshold`; finite and > 0.
    pub target: f64,
    /// `activationThreshold`: the trigger is active when value > activation_target.
    pub activation_target: f64,
}

/// A PromScaler's spec as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    /// `minReplicaCount`; may be 0.
    pub min_replicas: i32,
    /// `maxReplicaCount`; >= min and >= 1.
    pub max_replicas: i32,
    /// `idleReplicaCount`: replicas while no trigger is active; < min.
    pub idle_replicas: Option<i32>,
    /// `cooldownPeriod` (KEDA default 300 s).
    pub cooldown_period: Duration,
    /// `initialCooldownPeriod` (default 0).
    pub initial_cooldown_period: Duration,
    /// `fallback`; `None` = trigger errors hold replicas.
    pub fallback: Option<Fallback>,
    /// HPA behavior; `None` = the HPA controller's path for an HPA without behavior.
    pub behavior: Option<Behavior>,
    /// The triggers (at least one).
    pub triggers: Vec<TriggerPolicy>,
    /// `scalingModifiers`; `None` = triggers combined by max.
    pub scaling_modifiers: Option<ScalingModifiers>,
    /// Tolerance for both directions; `None` = 0.1.
    pub tolerance: Option<f64>,
    /// Last-known-good TTL; `None` or zero = disabled (KEDA #965).
    pub last_known_good_ttl: Option<Duration>,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        Self {
            min_replicas: 0,
            max_replicas: 1,
            idle_replicas: None,
            cooldown_period: DEFAULT_COOLDOWN,
            initial_cooldown_period: Duration::ZERO,
            fallback: None,
            behavior: None,
            triggers: Vec::new(),
            scaling_modifiers: None,
            tolerance: None,
            last_known_good_ttl: None,
        }
    }
}

/// Tolerances per direction (HPA `Tolerances{scaleDown, scaleUp}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Ratio may drop to `1 - down` without a scale-down.
    pub down: f64,
    /// Ratio may rise to `1 + up` without a scale-up.
    pub up: f64,
}

impl Tolerances {
    /// HPA `isWithin`: `1 - down <= ratio <= 1 + up`, both bounds inclusive.
    pub fn contains(&self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }
}

impl ScalingPolicy {
    /// Tolerances per direction: the behavior's per-direction value, else the policy's, else 0.1.
    pub fn tolerances(&self) -> Tolerances {
        let base = self.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        let dir = |r: Option<&ScalingRules>| r.and_then(|r| r.tolerance).unwrap_or(base);
        let b = self.behavior.as_ref();
        Tolerances {
            down: dir(b.and_then(|b| b.scale_down.as_ref())),
            up: dir(b.and_then(|b| b.scale_up.as_ref())),
        }
    }

    /// Index of the trigger named `name`.
    pub fn trigger_index(&self, name: &str) -> Option<usize> {
        self.triggers.iter().position(|t| &*t.name == name)
    }

    /// Checks every field; the error names the first offending field. Returns the compiled
    /// scalingModifiers formula when there is one.
    pub fn validate(&self) -> Result<Option<Formula>, Error> {
        if self.min_replicas < 0 {
            return Err(Error::invalid("policy.min_replicas", "must be >= 0"));
        }
        if self.max_replicas < 1 {
            return Err(Error::invalid("policy.max_replicas", "must be >= 1"));
        }
        if self.max_replicas < self.min_replicas {
            return Err(Error::invalid(
                "policy.max_replicas",
                format!(
                    "{} is below min_replicas {}",
                    self.max_replicas, self.min_replicas
                ),
            ));
        }
        if let Some(idle) = self.idle_replicas {
            if idle < 0 {
                return Err(Error::invalid("policy.idle_replicas", "must be >= 0"));
            }
            // KEDA compares idle with the HPA's floor, max(min, 1): idle 0 with min 0 is valid
            // (and means the same as min 0).
            let floor = self.min_replicas.max(1);
            if idle >= floor {
                return Err(Error::invalid(
                    "policy.idle_replicas",
                    format!(
                        "{idle} must be below max(min_replicas, 1) = {floor} (KEDA rule); lower it or remove it"
                    ),
                ));
            }
        }
        if let Some(fb) = &self.fallback {
            if fb.failure_threshold < 0 {
                return Err(Error::invalid(
                    "policy.fallback.failure_threshold",
                    "must be >= 0",
                ));
            }
            if fb.replicas < 0 {
                return Err(Error::invalid("policy.fallback.replicas", "must be >= 0"));
            }
            if fb.behavior == FallbackBehavior::ScalingModifiers && self.scaling_modifiers.is_none()
            {
                return Err(Error::invalid(
                    "policy.fallback.behavior",
                    "scalingModifiers needs scaling_modifiers with a formula (KEDA rule); \
                     add one or use another behavior",
                ));
            }
        }
        if let Some(t) = self.tolerance {
            check_tolerance("policy.tolerance", t)?;
        }
        if let Some(b) = &self.behavior {
            for (dir, rules) in [("scale_up", &b.scale_up), ("scale_down", &b.scale_down)] {
                if let Some(r) = rules {
                    validate_rules(dir, r)?;
                }
            }
        }
        if self.triggers.is_empty() {
            return Err(Error::invalid(
                "policy.triggers",
                "at least one trigger is required",
            ));
        }
        if self.triggers.len() > MAX_TRIGGERS {
            return Err(Error::invalid(
                "policy.triggers",
                format!("at most {MAX_TRIGGERS} triggers"),
            ));
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if t.name.is_empty() {
                return Err(Error::invalid(
                    format!("policy.triggers[{i}].name"),
                    "must not be empty",
                ));
            }
            if self.triggers[..i].iter().any(|o| o.name == t.name) {
                return Err(Error::invalid(
                    format!("policy.triggers[{i}].name"),
                    format!("duplicate trigger name {:?}", t.name),
                ));
            }
            if !(t.target.is_finite() && crate::hpa::milli_rounded(t.target) >= 1.0) {
                return Err(Error::invalid(
                    format!("policy.triggers[{i}].target"),
                    format!(
                        "must be finite and at least 0.001 (KEDA hands the HPA thousandths), got {}",
                        t.target
                    ),
                ));
            }
            if !t.activation_target.is_finite() {
                return Err(Error::invalid(
                    format!("policy.triggers[{i}].activation_target"),
                    "must be finite",
                ));
            }
        }
        match &self.scaling_modifiers {
            None => Ok(None),
            Some(m) => {
                if !(m.target.is_finite() && crate::hpa::milli_truncated(m.target) >= 1.0) {
                    return Err(Error::invalid(
                        "policy.scaling_modifiers.target",
                        format!(
                            "must be finite and at least 0.001 (KEDA hands the HPA thousandths), got {}",
                            m.target
                        ),
                    ));
                }
                if !m.activation_target.is_finite() {
                    return Err(Error::invalid(
                        "policy.scaling_modifiers.activation_target",
                        "must be finite",
                    ));
                }
                let names: Vec<&str> = self.triggers.iter().map(|t| &*t.name).collect();
                Formula::parse(&m.formula, &names)
                    .map(Some)
                    .map_err(|source| Error::InvalidFormula {
                        field: "policy.scaling_modifiers.formula".into(),
                        source,
                    })
            }
        }
    }
}

fn check_tolerance(field: &'static str, t: f64) -> Result<(), Error> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be finite and >= 0, got {t}"),
        ))
    }
}

fn validate_rules(dir: &'static str, r: &ScalingRules) -> Result<(), Error> {
    if let Some(w) = r.stabilization_window_seconds
        && !(0..=MAX_STABILIZATION_WINDOW_SECONDS).contains(&w)
    {
        return Err(Error::invalid(
            format!("policy.behavior.{dir}.stabilization_window_seconds"),
            format!("must be within 0..={MAX_STABILIZATION_WINDOW_SECONDS}, got {w}"),
        ));
    }
    if let Some(t) = r.tolerance {
        let field = if dir == "scale_up" {
            "policy.behavior.scale_up.tolerance"
        } else {
            "policy.behavior.scale_down.tolerance"
        };
        check_tolerance(field, t)?;
    }
    if r.policies.len() > MAX_POLICIES {
        return Err(Error::invalid(
            format!("policy.behavior.{dir}.policies"),
            format!("at most {MAX_POLICIES} policies"),
        ));
    }
    for (i, p) in r.policies.iter().enumerate() {
        if p.value <= 0 {
            return Err(Error::invalid(
                format!("policy.behavior.{dir}.policies[{i}].value"),
                "must be > 0",
            ));
        }
        if !(1..=MAX_PERIOD_SECONDS).contains(&p.period_seconds) {
            return Err(Error::invalid(
                format!("policy.behavior.{dir}.policies[{i}].period_seconds"),
                format!(
                    "must be within 1..={MAX_PERIOD_SECONDS}, got {}",
                    p.period_seconds
                ),
            ));
        }
    }
    Ok(())
}
