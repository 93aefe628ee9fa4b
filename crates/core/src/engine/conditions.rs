//! Stage 6: the seven conditions, KEDA's first (Ready, Active, Fallback, Paused), then the HPA's
//! (AbleToScale, ScalingActive, ScalingLimited), from what the stages found.

use std::borrow::Cow;

use crate::decision::{Condition, ConditionStatus as S, ConditionType as T, TriggerOutcome};
use crate::input::Tick;
use crate::policy::ScalingPolicy;

use super::Activity;
use super::keda::KedaStep;
use super::reconcile::{HpaOutcome, VALID_METRIC_FOUND};

/// KEDA's Ready message when no trigger is active and one fails.
pub(super) const TRIGGER_ERROR_MESSAGE: &str =
    "Triggers defined in ScaledObject are not working correctly";
/// KEDA's Ready message when a trigger is active and another fails.
pub(super) const PARTIAL_TRIGGER_ERROR_MESSAGE: &str =
    "Some triggers defined in ScaledObject are not working correctly";

/// What the conditions are built from.
pub(super) struct Inputs<'a> {
    pub(super) policy: &'a ScalingPolicy,
    pub(super) tick: &'a Tick,
    pub(super) activity: Activity,
    pub(super) keda: &'a KedaStep,
    pub(super) hpa: Option<&'a HpaOutcome>,
    pub(super) outcomes: &'a [TriggerOutcome],
    pub(super) formula_error: Option<&'a str>,
}

/// All seven conditions, in order.
pub(super) fn build(i: &Inputs<'_>) -> Vec<Condition> {
    let pause = i.tick.pause;
    let mut conditions = Vec::with_capacity(7);
    conditions.push(ready(i));
    conditions.push(active(i.activity.active, i.keda.cooling_down));
    conditions.push(if i.activity.fallback_active {
        cond(
            T::Fallback,
            S::True,
            "FallbackExists",
            "At least one trigger is falling back on this scaled object",
        )
    } else {
        no_fallback()
    });
    conditions.push(if pause.scale_in_paused || pause.scale_out_paused {
        // KEDA sets Paused=True for paused-scale-in/out too.
        paused_condition()
    } else {
        cond(
            T::Paused,
            S::False,
            "ScaledObjectUnpaused",
            "ScaledObject is not paused",
        )
    });
    let normalized = i.hpa.and_then(|h| h.normalized.as_ref());
    let (able, limited, limit_reason) = match normalized {
        Some(n) => (n.able_reason, n.limited, n.limit_reason),
        None => ("ReadyForNewScale", false, "DesiredWithinRange"),
    };
    let scaling_active = match i.hpa {
        Some(h) => h.scaling_active,
        None if i.keda.at_rest => (S::False, "ScalingDisabled"),
        None => (S::True, VALID_METRIC_FOUND),
    };
    conditions.push(cond(T::AbleToScale, S::True, able, able_message(able)));
    conditions.push(cond(
        T::ScalingActive,
        scaling_active.0,
        scaling_active.1,
        scaling_active_message(scaling_active.1),
    ));
    conditions.push(cond(
        T::ScalingLimited,
        S::from_bool(limited),
        limit_reason,
        limit_message(limit_reason),
    ));
    conditions
}

/// KEDA executor: Ready is PartialTriggerError (Unknown) when active with a failing trigger
/// (unless activating from zero/idle), TriggerError (False) when inactive with a failing trigger
/// and no fallback configured; otherwise ScaledObjectReady.
fn ready(i: &Inputs<'_>) -> Condition {
    let Activity {
        active, failing, ..
    } = i.activity;
    let (status, reason, headline) = if failing && active && !i.keda.activating {
        (
            S::Unknown,
            "PartialTriggerError",
            PARTIAL_TRIGGER_ERROR_MESSAGE,
        )
    } else if failing && !active && i.policy.fallback.is_none() {
        (S::False, "TriggerError", TRIGGER_ERROR_MESSAGE)
    } else {
        return ready_condition();
    };
    Condition {
        kind: T::Ready,
        status,
        reason,
        message: Cow::Owned(failing_message(headline, i.outcomes, i.formula_error)),
    }
}

fn active(active: bool, cooling_down: bool) -> Condition {
    if active {
        cond(
            T::Active,
            S::True,
            "ScalerActive",
            "Scaling is performed because triggers are active",
        )
    } else if cooling_down {
        cond(
            T::Active,
            S::False,
            "ScalerCooldown",
            "Scaler cooling down because triggers are not active",
        )
    } else {
        cond(
            T::Active,
            S::False,
            "ScalerNotActive",
            "Scaling is not performed because triggers are not active",
        )
    }
}

/// The conditions while paused: triggers are not evaluated (KEDA leaves Active as it was; we
/// report Unknown) and the HPA is gone.
pub(super) fn paused() -> Vec<Condition> {
    vec![
        ready_condition(),
        cond(
            T::Active,
            S::Unknown,
            "ScaledObjectPaused",
            "triggers are not evaluated while paused",
        ),
        no_fallback(),
        paused_condition(),
        cond(
            T::AbleToScale,
            S::True,
            "ReadyForNewScale",
            "recommended size matches current size",
        ),
        cond(
            T::ScalingActive,
            S::False,
            "ScalingDisabled",
            "scaling is paused",
        ),
        cond(
            T::ScalingLimited,
            S::False,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    ]
}

fn ready_condition() -> Condition {
    cond(
        T::Ready,
        S::True,
        "ScaledObjectReady",
        "ScaledObject is defined correctly and is ready for scaling",
    )
}

fn no_fallback() -> Condition {
    cond(
        T::Fallback,
        S::False,
        "NoFallbackFound",
        "No fallbacks are active on this scaled object",
    )
}

fn paused_condition() -> Condition {
    cond(
        T::Paused,
        S::True,
        "ScaledObjectPaused",
        "ScaledObject is paused",
    )
}

/// Longest error text of one trigger quoted in the Ready condition.
const MAX_ERROR_IN_CONDITION: usize = 300;

/// KEDA's Ready message (`headline`), followed by what each failing trigger (and the formula)
/// reported, so the user reads in `kubectl describe` what to fix (e.g. "wrap it in sum(...)").
fn failing_message(
    headline: &str,
    outcomes: &[TriggerOutcome],
    formula_error: Option<&str>,
) -> String {
    let mut message = String::from(headline);
    let failures = outcomes
        .iter()
        .filter(|o| o.value.is_none() && !o.fallback)
        .filter_map(|o| Some((&*o.name, o.error.as_ref()?.to_string())))
        .chain(formula_error.map(|e| ("formula", e.to_owned())));
    let mut first = true;
    for (name, text) in failures {
        message.push_str(if first { ": " } else { "; " });
        first = false;
        message.push_str(name);
        message.push_str(": ");
        match text.char_indices().nth(MAX_ERROR_IN_CONDITION) {
            Some((cut, _)) => {
                message.push_str(&text[..cut]);
                message.push('…');
            }
            None => message.push_str(&text),
        }
    }
    message
}

fn cond(kind: T, status: S, reason: &'static str, message: &'static str) -> Condition {
    Condition {
        kind,
        status,
        reason,
        message: Cow::Borrowed(message),
    }
}

fn able_message(reason: &str) -> &'static str {
    match reason {
        "ScaleUpStabilized" => {
            "recent recommendations were lower than current one, applying the lowest recent recommendation"
        }
        "ScaleDownStabilized" => {
            "recent recommendations were higher than current one, applying the highest recent recommendation"
        }
        _ => "recommended size matches current size",
    }
}

fn scaling_active_message(reason: &str) -> &'static str {
    match reason {
        "ScalingDisabled" => "scaling is disabled since the replica count of the target is zero",
        "FailedGetExternalMetric" => {
            "the HPA was unable to compute the replica count: a trigger failed"
        }
        _ => "the HPA was able to successfully calculate a replica count",
    }
}

fn limit_message(reason: &str) -> &'static str {
    match reason {
        "ScaleUpLimit" => {
            "the desired replica count is increasing faster than the maximum scale rate"
        }
        "ScaleDownLimit" => {
            "the desired replica count is decreasing faster than the maximum scale rate"
        }
        "TooManyReplicas" => "the desired replica count is more than the maximum replica count",
        "TooFewReplicas" => "the desired replica count is less than the minimum replica count",
        _ => "the desired count is within the acceptable range",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn keda(activating: bool, cooling_down: bool) -> KedaStep {
        KedaStep {
            desired: None,
            activating,
            at_rest: false,
            cooling_down,
        }
    }

    fn ready_of(policy: &ScalingPolicy, active: bool, failing: bool, k: &KedaStep) -> Condition {
        let tick = at(2);
        build(&Inputs {
            policy,
            tick: &tick,
            activity: Activity {
                active,
                failing,
                fallback_active: false,
            },
            keda: k,
            hpa: None,
            outcomes: &[],
            formula_error: None,
        })
        .remove(0)
    }

    #[test]
    fn ready_follows_kedas_executor_table() {
        let p = policy();
        let with_fallback = policy().fallback(3, 2, crate::policy::FallbackBehavior::Static);
        let cases = [
            (
                &p,
                true,
                true,
                keda(false, false),
                S::Unknown,
                "PartialTriggerError",
            ),
            (
                &p,
                true,
                true,
                keda(true, false),
                S::True,
                "ScaledObjectReady",
            ),
            (
                &p,
                false,
                true,
                keda(false, false),
                S::False,
                "TriggerError",
            ),
            (
                &with_fallback,
                false,
                true,
                keda(false, false),
                S::True,
                "ScaledObjectReady",
            ),
            (
                &p,
                false,
                false,
                keda(false, false),
                S::True,
                "ScaledObjectReady",
            ),
        ];
        for (policy, active, failing, k, status, reason) in cases {
            let c = ready_of(policy, active, failing, &k);
            assert_eq!(
                (c.status, c.reason),
                (status, reason),
                "active {active}, failing {failing}, {k:?}"
            );
        }
    }

    #[test]
    fn the_failing_message_names_each_trigger_and_the_formula() {
        let outcomes = [TriggerOutcome {
            name: "rps".into(),
            error: Some(crate::input::QueryFailure {
                kind: crate::input::QueryErrorKind::Timeout,
                message: "deadline exceeded".into(),
                http_status: 0,
            }),
            ..TriggerOutcome::default()
        }];
        assert_eq!(
            failing_message(TRIGGER_ERROR_MESSAGE, &outcomes, Some("nil + 1")),
            "Triggers defined in ScaledObject are not working correctly: rps: timeout: \
             deadline exceeded; formula: nil + 1"
        );
    }
}
