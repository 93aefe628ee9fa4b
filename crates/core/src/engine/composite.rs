//! Stage 3: scalingModifiers. KEDA evaluates the formula over the trigger values and one
//! composite metric replaces the triggers; while a trigger is in fallback, the fallback replaces
//! the formula's result (except with `fallback.behavior: scalingModifiers`, where a trigger in
//! fallback is `nil` in the formula).

use crate::decision::Step;
use crate::formula::Formula;
use crate::hpa;
use crate::input::Tick;
use crate::policy::{FallbackBehavior, ScalingModifiers, ScalingPolicy};

use super::observe::Observed;
use super::{fallback_proposal, no_pods};

/// The composite metric's proposal and activity, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Composite {
    /// Replicas the composite metric proposes; `None` = invalid this tick.
    pub(super) proposal: Option<i32>,
    /// The composite value is above `activationTarget`.
    pub(super) active: bool,
    /// Why the formula gave no value (a failure: it blocks scale-in and shows in Ready).
    pub(super) error: Option<String>,
}

pub(super) fn evaluate(
    policy: &ScalingPolicy,
    formula: &Formula,
    modifiers: &ScalingModifiers,
    tick: &Tick,
    observed: &Observed,
    steps: &mut Vec<Step>,
) -> Composite {
    let nil_in_formula = policy
        .fallback
        .as_ref()
        .is_some_and(|fb| fb.behavior == FallbackBehavior::ScalingModifiers);
    if observed.any_fallback && !nil_in_formula {
        let (behavior, p) = fallback_proposal(policy, tick.replicas.spec);
        steps.push(Step::Fallback {
            trigger: "formula".into(),
            behavior,
            proposal: p,
        });
        return replicas_as_composite(modifiers, p);
    }
    let values: Vec<Option<f64>> = observed.outcomes.iter().map(|o| o.value).collect();
    match formula.eval(&values) {
        // KEDA: a nil result (only possible through `??`) is `fallback.replicas × target`, i.e.
        // the fallback's replicas; an error when no fallback is set.
        Ok(None) => match &policy.fallback {
            Some(fb) => {
                steps.push(Step::Fallback {
                    trigger: "formula".into(),
                    behavior: FallbackBehavior::Static,
                    proposal: fb.replicas,
                });
                replicas_as_composite(modifiers, fb.replicas)
            }
            None => failed(
                "the formula evaluated to nil and no fallback is configured; add spec.fallback \
                 or end the formula with `?? <number>`"
                    .to_owned(),
                steps,
            ),
        },
        Ok(Some(_)) if no_pods(modifiers.metric_type, tick.replicas) => {
            steps.push(Step::NoPods {
                trigger: "formula".into(),
            });
            Composite {
                proposal: None,
                active: false,
                error: None,
            }
        }
        Ok(Some(v)) => {
            let p = hpa::propose(
                modifiers.metric_type,
                hpa::milli_truncated(v),
                hpa::milli_truncated(modifiers.target),
                tick.replicas,
                policy.tolerances(),
            );
            let active = v > modifiers.activation_target;
            steps.push(Step::Proposal {
                trigger: "formula".into(),
                value: v,
                target: modifiers.target,
                metric_type: modifiers.metric_type,
                pods: p.pods,
                proposal: p.replicas,
                within_tolerance: p.within_tolerance,
                stale: false,
                active,
            });
            Composite {
                proposal: Some(p.replicas),
                active,
                error: None,
            }
        }
        // Deliberate difference (docs/semantics.md §6): KEDA reads a formula that cannot be
        // evaluated as "inactive, no error" and may scale to zero; we count it as a failure, so
        // missing data never scales in.
        Err(error) => failed(error, steps),
    }
}

/// KEDA's composite is then `target × replicas`: active when above `activationTarget`.
fn replicas_as_composite(modifiers: &ScalingModifiers, replicas: i32) -> Composite {
    Composite {
        proposal: Some(replicas),
        active: f64::from(replicas) * modifiers.target > modifiers.activation_target,
        error: None,
    }
}

fn failed(error: String, steps: &mut Vec<Step>) -> Composite {
    steps.push(Step::FormulaFailed {
        error: error.clone(),
    });
    Composite {
        proposal: None,
        active: false,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DecisionState;
    use crate::testing::*;

    fn run(p: &ScalingPolicy, tick: &Tick) -> Composite {
        let formula = p.validate().unwrap().unwrap();
        let mut state = DecisionState::default();
        let mut steps = Vec::new();
        let observed = super::super::observe::observe(p, true, tick, &mut state, t(0), &mut steps);
        evaluate(
            p,
            &formula,
            p.scaling_modifiers.as_ref().unwrap(),
            tick,
            &observed,
            &mut steps,
        )
    }

    #[test]
    fn a_nil_result_takes_the_fallback_replicas_or_fails_without_one() {
        let p = policy().max(20).trigger("a", 1.0).formula("a ?? nil", 2.0);
        let c = run(&p, &at(3).failed("a"));
        assert_eq!(c.proposal, None);
        assert!(
            c.error
                .as_deref()
                .is_some_and(|e| e.contains("no fallback"))
        );
        let p = p.fallback(5, 7, FallbackBehavior::Static);
        let c = run(&p, &at(3).failed("a"));
        assert_eq!((c.proposal, c.active, c.error), (Some(7), true, None));
    }

    #[test]
    fn a_value_formula_without_pods_is_invalid_but_not_a_failure() {
        let mut p = policy().max(20).trigger("a", 1.0).formula("a", 2.0);
        if let Some(m) = p.scaling_modifiers.as_mut() {
            m.metric_type = crate::policy::MetricType::Value;
        }
        let mut tick = at(3).value("a", 4.0);
        tick.replicas.status = 0;
        tick.replicas.ready = 0;
        assert_eq!(
            run(&p, &tick),
            Composite {
                proposal: None,
                active: false,
                error: None
            }
        );
    }
}
