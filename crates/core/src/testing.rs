//! Fixture builders that read like prose: `policy().min(1).max(5).trigger("rps", 50.0)`.

use std::time::Duration;

use crate::decision::Decision;
use crate::engine::decide;
use crate::input::{Observation, Pause, QueryErrorKind, Replicas, Tick};
use crate::policy::{
    Behavior, Fallback, FallbackBehavior, MetricType, ScalingModifiers, ScalingPolicy,
    ScalingPolicyRule, ScalingRules, SelectPolicy, TriggerPolicy,
};
use crate::state::DecisionState;
use crate::time::Timestamp;

/// A policy with min 0, max 10, KEDA defaults and no triggers yet.
pub(crate) fn policy() -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: 0,
        max_replicas: 10,
        ..ScalingPolicy::default()
    }
}

pub(crate) trait PolicyExt: Sized {
    fn min(self, n: i32) -> Self;
    fn max(self, n: i32) -> Self;
    fn idle(self, n: i32) -> Self;
    fn cooldown(self, secs: u64) -> Self;
    fn initial_cooldown(self, secs: u64) -> Self;
    /// An AverageValue trigger with activation threshold 0.
    fn trigger(self, name: &str, target: f64) -> Self;
    /// A Value trigger with activation threshold 0.
    fn value_trigger(self, name: &str, target: f64) -> Self;
    /// Activation threshold of the last trigger added.
    fn activation(self, threshold: f64) -> Self;
    fn fallback(self, failure_threshold: i32, replicas: i32, behavior: FallbackBehavior) -> Self;
    fn scale_up(self, rules: ScalingRules) -> Self;
    fn scale_down(self, rules: ScalingRules) -> Self;
    /// A behavior with every field defaulted.
    fn default_behavior(self) -> Self;
    fn formula(self, formula: &str, target: f64) -> Self;
    /// `scalingModifiers.activationTarget` (after `formula`).
    fn formula_activation(self, activation_target: f64) -> Self;
    fn tolerance(self, t: f64) -> Self;
    fn last_known_good(self, secs: u64) -> Self;
}

impl PolicyExt for ScalingPolicy {
    fn min(mut self, n: i32) -> Self {
        self.min_replicas = n;
        self
    }
    fn max(mut self, n: i32) -> Self {
        self.max_replicas = n;
        self
    }
    fn idle(mut self, n: i32) -> Self {
        self.idle_replicas = Some(n);
        self
    }
    fn cooldown(mut self, secs: u64) -> Self {
        self.cooldown_period = Duration::from_secs(secs);
        self
    }
    fn initial_cooldown(mut self, secs: u64) -> Self {
        self.initial_cooldown_period = Duration::from_secs(secs);
        self
    }
    fn trigger(mut self, name: &str, target: f64) -> Self {
        self.triggers.push(TriggerPolicy {
            name: name.into(),
            metric_type: MetricType::AverageValue,
            target,
            activation_target: 0.0,
        });
        self
    }
    fn value_trigger(mut self, name: &str, target: f64) -> Self {
        self.triggers.push(TriggerPolicy {
            name: name.into(),
            metric_type: MetricType::Value,
            target,
            activation_target: 0.0,
        });
        self
    }
    fn activation(mut self, threshold: f64) -> Self {
        if let Some(t) = self.triggers.last_mut() {
            t.activation_target = threshold;
        }
        self
    }
    fn fallback(
        mut self,
        failure_threshold: i32,
        replicas: i32,
        behavior: FallbackBehavior,
    ) -> Self {
        self.fallback = Some(Fallback {
            failure_threshold,
            replicas,
            behavior,
        });
        self
    }
    fn scale_up(mut self, rules: ScalingRules) -> Self {
        self.behavior.get_or_insert_with(Behavior::default).scale_up = Some(rules);
        self
    }
    fn scale_down(mut self, rules: ScalingRules) -> Self {
        self.behavior
            .get_or_insert_with(Behavior::default)
            .scale_down = Some(rules);
        self
    }
    fn default_behavior(mut self) -> Self {
        self.behavior = Some(Behavior::default());
        self
    }
    fn formula(mut self, formula: &str, target: f64) -> Self {
        self.scaling_modifiers = Some(ScalingModifiers {
            formula: formula.into(),
            target,
            activation_target: 0.0,
            metric_type: MetricType::AverageValue,
        });
        self
    }
    fn formula_activation(mut self, activation_target: f64) -> Self {
        if let Some(m) = self.scaling_modifiers.as_mut() {
            m.activation_target = activation_target;
        }
        self
    }
    fn tolerance(mut self, t: f64) -> Self {
        self.tolerance = Some(t);
        self
    }
    fn last_known_good(mut self, secs: u64) -> Self {
        self.last_known_good_ttl = Some(Duration::from_secs(secs));
        self
    }
}

/// Scaling rules with the given window and policies (selectPolicy Max).
pub(crate) fn rules(window: Option<i32>, policies: &[ScalingPolicyRule]) -> ScalingRules {
    ScalingRules {
        stabilization_window_seconds: window,
        policies: policies.to_vec(),
        ..ScalingRules::default()
    }
}

pub(crate) fn select(mut r: ScalingRules, s: SelectPolicy) -> ScalingRules {
    r.select_policy = s;
    r
}

/// A tick at `n` settled replicas with no observations yet.
pub(crate) fn at(n: i32) -> Tick {
    Tick {
        replicas: Replicas::settled(n),
        observations: Vec::new(),
        pause: Pause::default(),
    }
}

pub(crate) trait TickExt: Sized {
    fn value(self, trigger: &str, v: f64) -> Self;
    fn failed(self, trigger: &str) -> Self;
    fn status(self, status: i32) -> Self;
    fn ready(self, ready: i32) -> Self;
    fn pause(self, pause: Pause) -> Self;
}

impl TickExt for Tick {
    fn value(mut self, trigger: &str, v: f64) -> Self {
        self.observations.push(Observation::value(trigger, v));
        self
    }
    fn failed(mut self, trigger: &str) -> Self {
        self.observations.push(Observation::error(
            trigger,
            QueryErrorKind::Timeout,
            "deadline exceeded",
        ));
        self
    }
    fn status(mut self, status: i32) -> Self {
        self.replicas.status = status;
        self
    }
    fn ready(mut self, ready: i32) -> Self {
        self.replicas.ready = ready;
        self
    }
    fn pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }
}

/// `t` seconds after an arbitrary epoch (2026-11-29T00:00:00Z).
pub(crate) fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_795_910_400 + secs)
}

/// Decides and panics on validation errors.
pub(crate) fn run(
    p: &ScalingPolicy,
    tick: &Tick,
    state: DecisionState,
    now: Timestamp,
) -> Decision {
    decide(p, tick, state, now).expect("valid request")
}

/// Drives one scaler through a sequence of ticks, applying each decision to the replicas as the
/// actuator would.
pub(crate) struct Scenario {
    pub(crate) policy: ScalingPolicy,
    pub(crate) replicas: i32,
    pub(crate) state: DecisionState,
}

impl Scenario {
    pub(crate) fn new(policy: ScalingPolicy, replicas: i32) -> Self {
        Self {
            policy,
            replicas,
            state: DecisionState::default(),
        }
    }

    /// Decides at `secs` with observations from `tick` (its replicas are replaced by the
    /// scenario's) and applies the result.
    pub(crate) fn tick(&mut self, secs: i64, tick: Tick) -> Decision {
        let tick = Tick {
            replicas: Replicas::settled(self.replicas),
            ..tick
        };
        let d = run(
            &self.policy,
            &tick,
            std::mem::take(&mut self.state),
            t(secs),
        );
        self.state = d.state.clone();
        self.replicas = d.desired_replicas;
        d
    }
}
