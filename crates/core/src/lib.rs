//! Domain types and the decision algorithm of promscaler: KEDA ScaledObject semantics on top of
//! the Kubernetes HPA controller's rules, as pure functions over plain data.
//!
//! Data comes in from the decision service (which converts `promscaler.v1` messages into these
//! types) and goes back out the same way: [`decide`] takes a [`ScalingPolicy`], this tick's
//! [`Tick`] (replicas, one [`Observation`] per trigger, pause annotations), the carried
//! [`DecisionState`] and `now`, and returns a [`Decision`] (desired replicas, conditions,
//! explanation, per-trigger outcome, next state). No I/O, no clock, no async: the same inputs
//! always give the same decision. [`simulate`] replays a policy over a series through the same
//! code. The rules and their upstream sources are in `docs/semantics.md`.

pub mod chart;
mod decision;
mod engine;
mod error;
pub mod formula;
pub mod hpa;
mod input;
mod policy;
mod simulate;
mod state;
mod time;

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use decision::{
    Condition, ConditionStatus, ConditionType, Decision, Direction, Step, TriggerOutcome,
};
pub use engine::decide;
pub use error::Error;
pub use formula::{Formula, FormulaError};
pub use input::{Observation, Pause, QueryErrorKind, QueryFailure, Replicas, Tick};
pub use policy::{
    Behavior, DEFAULT_COOLDOWN, DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, DEFAULT_SCALE_UP_POLICIES, DEFAULT_TOLERANCE,
    Fallback, FallbackBehavior, MAX_PERIOD_SECONDS, MAX_POLICIES, MAX_STABILIZATION_WINDOW_SECONDS,
    MAX_TRIGGERS, MetricType, PolicyType, ResolvedRules, ScalingModifiers, ScalingPolicy,
    ScalingPolicyRule, ScalingRules, SelectPolicy, Tolerances, TriggerPolicy,
};
pub use simulate::{
    MAX_SIMULATION_STEPS, MAX_SIMULATION_WORK, SimulatedStep, Simulation, SimulationStep, simulate,
    simulation_work,
};
pub use state::{DecisionState, MAX_HISTORY, TimestampedReplicas, TimestampedValue};
pub use time::Timestamp;
