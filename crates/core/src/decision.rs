//! What a decision returns: desired replicas, conditions, the per-trigger outcome, an
//! explanation a human can read, and the state for the next tick.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::input::QueryFailure;
use crate::policy::{FallbackBehavior, MetricType, ScalingPolicyRule};
use crate::state::DecisionState;
use crate::time::Secs;

/// Condition types: KEDA's (Ready, Active, Fallback, Paused) and the HPA's (AbleToScale,
/// ScalingActive, ScalingLimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// KEDA Ready.
    Ready,
    /// KEDA Active.
    Active,
    /// KEDA Fallback.
    Fallback,
    /// KEDA Paused.
    Paused,
    /// HPA AbleToScale.
    AbleToScale,
    /// HPA ScalingActive.
    ScalingActive,
    /// HPA ScalingLimited.
    ScalingLimited,
}

impl ConditionType {
    /// The Kubernetes condition type string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Active => "Active",
            Self::Fallback => "Fallback",
            Self::Paused => "Paused",
            Self::AbleToScale => "AbleToScale",
            Self::ScalingActive => "ScalingActive",
            Self::ScalingLimited => "ScalingLimited",
        }
    }
}

/// Kubernetes condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// "True".
    True,
    /// "False".
    False,
    /// "Unknown".
    Unknown,
}

impl ConditionStatus {
    /// "True", "False" or "Unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// `True` for true, `False` for false.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// A condition with KEDA's or the HPA's reason string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Which condition.
    pub kind: ConditionType,
    /// True/False/Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason, as KEDA or the HPA name it.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: Cow<'static, str>,
}

/// One trigger's outcome for this tick.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerOutcome {
    /// Trigger name.
    pub name: Arc<str>,
    /// Value used (absent when it failed without last-known-good).
    pub value: Option<f64>,
    /// Replicas it proposes (absent when it failed without fallback, or when a formula composes triggers).
    pub proposal: Option<i32>,
    /// value > activation target.
    pub active: bool,
    /// This tick's query error, if any.
    pub error: Option<QueryFailure>,
    /// The value came from last-known-good.
    pub stale: bool,
    /// The proposal came from the fallback.
    pub fallback: bool,
    /// Consecutive failures so far.
    pub consecutive_failures: i32,
}

/// Direction of a scaling step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Scale-up.
    Up,
    /// Scale-down.
    Down,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "scale-up",
            Self::Down => "scale-down",
        })
    }
}

/// One line of the explanation. Kept structured (rendered with `Display`) so deciding stays
/// cheap and callers can match on steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `autoscaling.keda.sh/paused-replicas`.
    PausedAt {
        /// The paused replica count.
        replicas: i32,
    },
    /// `autoscaling.keda.sh/paused`.
    Paused {
        /// Replicas held.
        replicas: i32,
    },
    /// A trigger's value and what it proposes.
    Proposal {
        /// Trigger name, or "formula".
        trigger: Arc<str>,
        /// Value used.
        value: f64,
        /// Target.
        target: f64,
        /// AverageValue or Value.
        metric_type: MetricType,
        /// Pods the ratio is judged against (status replicas, or ready pods for Value).
        pods: i32,
        /// Proposed replicas.
        proposal: i32,
        /// The ratio was within tolerance, so the current count is kept.
        within_tolerance: bool,
        /// Value is from last-known-good.
        stale: bool,
        /// value > activation target.
        active: bool,
    },
    /// A trigger failed this tick.
    Failed {
        /// Trigger name.
        trigger: Arc<str>,
        /// Rendered error.
        error: String,
        /// Consecutive failures.
        failures: i32,
        /// Fallback threshold, when a fallback is configured.
        threshold: Option<i32>,
    },
    /// A failed trigger uses its last good value.
    LastKnownGood {
        /// Trigger name.
        trigger: Arc<str>,
        /// Age of the value, ms.
        age_ms: i64,
    },
    /// A failed trigger's proposal comes from the fallback.
    Fallback {
        /// Trigger name, or "formula".
        trigger: Arc<str>,
        /// Fallback behavior.
        behavior: FallbackBehavior,
        /// Proposed replicas.
        proposal: i32,
    },
    /// A Value target while no pod exists (spec replicas > 0, none created yet): the HPA cannot
    /// compute it, so the metric is invalid.
    NoPods {
        /// Trigger name (or "formula").
        trigger: Arc<str>,
    },
    /// The formula could not be evaluated.
    FormulaFailed {
        /// Why.
        error: String,
    },
    /// Proposals combined by max.
    Combined {
        /// The winning trigger.
        trigger: Arc<str>,
        /// Its proposal.
        proposal: i32,
    },
    /// HPA: an invalid metric blocks a scale-down.
    InvalidBlocksScaleDown {
        /// Max over valid proposals.
        valid_max: i32,
        /// Current replicas, held.
        current: i32,
    },
    /// HPA: no trigger produced a proposal.
    NoValidProposal {
        /// Current replicas, held.
        current: i32,
    },
    /// Stabilization changed the recommendation.
    Stabilized {
        /// Which window.
        direction: Direction,
        /// Recommendation before.
        from: i32,
        /// After.
        to: i32,
        /// Window, seconds.
        window_seconds: i32,
    },
    /// A rate policy limited the change.
    RateLimited {
        /// Which direction.
        direction: Direction,
        /// Limited to.
        to: i32,
        /// The policy that set the limit (`None` = the no-behavior cap max(2×current, 4)).
        rule: Option<ScalingPolicyRule>,
        /// selectPolicy was Disabled.
        disabled: bool,
    },
    /// Clamped to min or max.
    Clamped {
        /// Replicas after clamping.
        to: i32,
        /// "maxReplicaCount" or "minReplicaCount".
        bound: &'static str,
    },
    /// The desired count passed every limit.
    WithinRange {
        /// Desired replicas.
        desired: i32,
        /// Current replicas.
        current: i32,
    },
    /// KEDA: an active trigger scales from zero (or idle).
    ScaleFromZero {
        /// To max(min, 1).
        to: i32,
    },
    /// KEDA: inactive, waiting out the cooldown.
    CoolingDown {
        /// Time left, ms.
        remaining_ms: i64,
        /// Which period applies (initialCooldownPeriod when never active).
        initial: bool,
    },
    /// KEDA: inactive for the whole cooldown: scale in to idle/min.
    ScaleToIdle {
        /// Replicas.
        to: i32,
        /// To idleReplicaCount (else minReplicaCount).
        idle: bool,
    },
    /// A failing trigger keeps replicas from going to idle/zero.
    FailureBlocksScaleIn,
    /// Below minReplicaCount while inactive: raise to min.
    RaiseToMin {
        /// min.
        to: i32,
    },
    /// At zero/idle and inactive: stay.
    AtRest {
        /// Current replicas.
        current: i32,
    },
    /// A paused direction held replicas.
    DirectionPaused {
        /// Which direction.
        direction: Direction,
    },
}

struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", (self.0 * 1000.0).round() / 1000.0)
        }
    }
}

/// A proposal's arithmetic: value / target, against the pods it is judged by, ⇒ the proposal.
fn write_proposal(
    f: &mut fmt::Formatter<'_>,
    (v, t): (Num, Num),
    metric_type: MetricType,
    within_tolerance: bool,
    pods: i32,
    proposal: i32,
) -> fmt::Result {
    match (metric_type, within_tolerance) {
        (MetricType::AverageValue, false) => write!(f, "{v} / {t} ⇒ {proposal}"),
        (MetricType::AverageValue, true) => write!(
            f,
            "{v} / {t} within tolerance of {pods} replicas ⇒ {proposal}"
        ),
        (MetricType::Value, false) => write!(f, "{v} / {t} × {pods} ready ⇒ {proposal}"),
        (MetricType::Value, true) => write!(f, "{v} / {t} within tolerance ⇒ {proposal}"),
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PausedAt { replicas } => {
                write!(f, "paused: scale to and hold {replicas} (paused-replicas)")
            }
            Self::Paused { replicas } => write!(f, "paused: holding {replicas}"),
            Self::Proposal {
                trigger,
                value,
                target,
                metric_type,
                pods,
                proposal,
                within_tolerance,
                stale,
                active,
            } => {
                write!(f, "trigger {trigger}: ")?;
                let ratio = (Num(*value), Num(*target));
                write_proposal(f, ratio, *metric_type, *within_tolerance, *pods, *proposal)?;
                if *stale {
                    f.write_str(" (last known good)")?;
                }
                if !active {
                    f.write_str(" (inactive)")?;
                }
                Ok(())
            }
            Self::Failed {
                trigger,
                error,
                failures,
                threshold,
            } => {
                write!(
                    f,
                    "trigger {trigger}: failed ({error}); {failures} consecutive failure(s)"
                )?;
                match threshold {
                    Some(t) if failures > t => write!(f, ", above fallback threshold {t}"),
                    Some(t) => write!(f, ", fallback after more than {t}"),
                    None => f.write_str(", no fallback"),
                }
            }
            Self::LastKnownGood { trigger, age_ms } => {
                write!(
                    f,
                    "trigger {trigger}: using last known good value from {} ago",
                    Secs(*age_ms)
                )
            }
            Self::Fallback {
                trigger,
                behavior,
                proposal,
            } => {
                let b = match behavior {
                    FallbackBehavior::Static => "static",
                    FallbackBehavior::CurrentReplicas => "currentReplicas",
                    FallbackBehavior::CurrentReplicasIfHigher => "currentReplicasIfHigher",
                    FallbackBehavior::CurrentReplicasIfLower => "currentReplicasIfLower",
                    FallbackBehavior::ScalingModifiers => "scalingModifiers",
                };
                write!(f, "trigger {trigger}: fallback {b} ⇒ {proposal}")
            }
            Self::NoPods { trigger } => write!(
                f,
                "trigger {trigger}: a Value target needs pods, and no pod of the target exists yet: metric invalid"
            ),
            Self::FormulaFailed { error } => write!(f, "formula: {error}"),
            Self::Combined { trigger, proposal } => {
                write!(f, "max over triggers ⇒ {proposal} ({trigger})")
            }
            Self::InvalidBlocksScaleDown { valid_max, current } => write!(
                f,
                "a failing trigger blocks scale-down to {valid_max}: holding {current}"
            ),
            Self::NoValidProposal { current } => {
                write!(f, "no trigger has a usable value: holding {current}")
            }
            Self::Stabilized {
                direction,
                from,
                to,
                window_seconds,
            } => {
                let which = match direction {
                    Direction::Up => "lowest",
                    Direction::Down => "highest",
                };
                write!(
                    f,
                    "{direction} stabilized {from} → {to} ({which} recommendation in {window_seconds}s)"
                )
            }
            Self::RateLimited {
                direction,
                to,
                rule,
                disabled,
            } => match (rule, disabled) {
                (_, true) => write!(f, "{direction} disabled by selectPolicy: holding {to}"),
                (Some(r), false) => write!(f, "{direction} limited to {to} by policy {r}"),
                (None, false) => write!(f, "{direction} limited to {to} (max(2×current, 4))"),
            },
            Self::Clamped { to, bound } => write!(f, "limited to {to} by {bound}"),
            Self::WithinRange { desired, current } => {
                if desired == current {
                    write!(f, "keep {current}")
                } else {
                    write!(f, "scale {current} → {desired}")
                }
            }
            Self::ScaleFromZero { to } => write!(f, "active: scale from zero/idle to {to}"),
            Self::CoolingDown {
                remaining_ms,
                initial,
            } => {
                let which = if *initial {
                    "initialCooldownPeriod"
                } else {
                    "cooldownPeriod"
                };
                write!(
                    f,
                    "inactive: {} of {which} left before scale-in to idle/min",
                    Secs(*remaining_ms)
                )
            }
            Self::ScaleToIdle { to, idle } => {
                let which = if *idle {
                    "idleReplicaCount"
                } else {
                    "minReplicaCount"
                };
                write!(f, "inactive past the cooldown: scale to {to} ({which})")
            }
            Self::FailureBlocksScaleIn => {
                f.write_str("a failing trigger blocks scale-in to idle/zero")
            }
            Self::RaiseToMin { to } => write!(f, "below minReplicaCount: scale to {to}"),
            Self::AtRest { current } => write!(f, "inactive: stay at {current}"),
            Self::DirectionPaused { direction } => {
                write!(f, "{direction} paused: holding replicas")
            }
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Replicas the target should have.
    pub desired_replicas: i32,
    /// At least one trigger (or the formula) is active.
    pub active: bool,
    /// At least one trigger's proposal comes from the fallback.
    pub fallback_active: bool,
    /// Ready, Active, Fallback, Paused, AbleToScale, ScalingActive, ScalingLimited, in that order.
    pub conditions: Vec<Condition>,
    /// State for the next tick.
    pub state: DecisionState,
    /// Ordered explanation; the last step is what drove or limited the decision.
    pub explanation: Vec<Step>,
    /// Per-trigger outcome, in policy order.
    pub triggers: Vec<TriggerOutcome>,
}

impl Decision {
    /// The condition of `kind`.
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// The explanation rendered as lines.
    pub fn explanation_lines(&self) -> Vec<String> {
        self.explanation.iter().map(ToString::to_string).collect()
    }

    /// The last explanation line (what drove or limited the decision).
    pub fn reason(&self) -> String {
        self.explanation
            .last()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}
