//! Spec validation rules, table-driven, with fixtures that read like the manifests they stand
//! for.

use super::*;
use crate::{
    AdvancedConfig, AuthenticationRef, Fallback, HorizontalPodAutoscalerConfig, HpaScalingPolicy,
    ScaleTargetRef, ScaleTrigger, ScalingModifiers,
};

/// A prometheus trigger named `name` that is valid as is.
fn prom(name: &str) -> ScaleTrigger {
    ScaleTrigger {
        type_: "prometheus".into(),
        name: Some(name.into()),
        metadata: [
            ("serverAddress", "http://prometheus:9090"),
            ("query", "sum(rate(requests_total[1m]))"),
            ("threshold", "50"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..Default::default()
    }
}

trait TriggerExt {
    fn meta(self, k: &str, v: &str) -> Self;
    fn metric_type(self, t: &str) -> Self;
    fn unnamed(self) -> Self;
    fn of_type(self, t: &str) -> Self;
    fn auth(self, name: &str, kind: Option<&str>) -> Self;
}

impl TriggerExt for ScaleTrigger {
    fn meta(mut self, k: &str, v: &str) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
    fn metric_type(mut self, t: &str) -> Self {
        self.metric_type = Some(t.into());
        self
    }
    fn unnamed(mut self) -> Self {
        self.name = None;
        self
    }
    fn of_type(mut self, t: &str) -> Self {
        self.type_ = t.into();
        self
    }
    fn auth(mut self, name: &str, kind: Option<&str>) -> Self {
        self.authentication_ref = Some(AuthenticationRef {
            name: name.into(),
            kind: kind.map(Into::into),
        });
        self
    }
}

/// A PromScaler for Deployment `app`, min 1, max 5, with the given triggers.
#[derive(Clone)]
struct Scaler {
    spec: PromScalerSpec,
    annotations: BTreeMap<String, String>,
}

fn scaler(triggers: Vec<ScaleTrigger>) -> Scaler {
    Scaler {
        spec: PromScalerSpec {
            scale_target_ref: ScaleTargetRef {
                name: "app".into(),
                ..Default::default()
            },
            min_replica_count: Some(1),
            max_replica_count: Some(5),
            triggers,
            ..Default::default()
        },
        annotations: BTreeMap::new(),
    }
}

impl Scaler {
    fn min(mut self, n: i32) -> Self {
        self.spec.min_replica_count = Some(n);
        self
    }
    fn max(mut self, n: i32) -> Self {
        self.spec.max_replica_count = Some(n);
        self
    }
    fn idle(mut self, n: i32) -> Self {
        self.spec.idle_replica_count = Some(n);
        self
    }
    fn polling(mut self, s: i32) -> Self {
        self.spec.polling_interval = Some(s);
        self
    }
    fn cooldown(mut self, s: i32) -> Self {
        self.spec.cooldown_period = Some(s);
        self
    }
    fn target(mut self, name: &str) -> Self {
        self.spec.scale_target_ref.name = name.into();
        self
    }
    fn fallback(mut self, threshold: i32, replicas: i32, behavior: Option<&str>) -> Self {
        self.spec.fallback = Some(Fallback {
            failure_threshold: threshold,
            replicas,
            behavior: behavior.map(Into::into),
        });
        self
    }
    fn advanced(&mut self) -> &mut AdvancedConfig {
        self.spec.advanced.get_or_insert_with(Default::default)
    }
    fn formula(mut self, formula: &str, target: &str, metric_type: Option<&str>) -> Self {
        self.advanced().scaling_modifiers = Some(ScalingModifiers {
            formula: Some(formula.into()),
            target: (!target.is_empty()).then(|| target.into()),
            activation_target: None,
            metric_type: metric_type.map(Into::into),
        });
        self
    }
    fn scale_down(mut self, rules: HpaScalingRules) -> Self {
        self.advanced().horizontal_pod_autoscaler_config = Some(HorizontalPodAutoscalerConfig {
            name: None,
            behavior: Some(HpaBehavior {
                scale_up: None,
                scale_down: Some(rules),
            }),
        });
        self
    }
    fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    fn validate(&self) -> Result<ValidatedScaler, Vec<FieldError>> {
        validate_spec(&self.spec, &self.annotations, "ns", "name")
    }
}

fn fields_of(s: &Scaler) -> Vec<String> {
    match s.validate() {
        Ok(_) => vec![],
        Err(errors) => errors.into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn spec_rules_reject_exactly_the_offending_fields() {
    let ok = || scaler(vec![prom("rps")]);
    let policy = |type_: &str, value: i32, period_seconds: i32| HpaScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds,
    };
    let table: Vec<(&str, Scaler, &[&str])> = vec![
        ("a minimal prometheus scaler is valid", ok(), &[]),
        (
            "min above max",
            ok().min(6).max(5),
            &["spec.minReplicaCount"],
        ),
        (
            "max below one",
            ok().min(0).max(0),
            &["spec.maxReplicaCount"],
        ),
        ("negative min", ok().min(-1), &["spec.minReplicaCount"]),
        (
            "idle equal to min",
            ok().min(1).idle(1),
            &["spec.idleReplicaCount"],
        ),
        ("idle below min is fine", ok().min(1).idle(0), &[]),
        (
            "idle 0 with min 0 is accepted, as KEDA does",
            ok().min(0).idle(0),
            &[],
        ),
        (
            "idle 1 with min 0",
            ok().min(0).idle(1),
            &["spec.idleReplicaCount"],
        ),
        (
            "zero polling interval",
            ok().polling(0),
            &["spec.pollingInterval"],
        ),
        (
            "negative cooldown",
            ok().cooldown(-5),
            &["spec.cooldownPeriod"],
        ),
        (
            "no target name",
            ok().target(""),
            &["spec.scaleTargetRef.name"],
        ),
        ("no triggers", scaler(vec![]), &["spec.triggers"]),
        (
            "non-prometheus trigger",
            scaler(vec![prom("cpu").of_type("cpu")]),
            &["spec.triggers[0].type"],
        ),
        (
            "duplicate trigger names",
            scaler(vec![prom("rps"), prom("rps")]),
            &["spec.triggers[1].name"],
        ),
        (
            "an explicit name equal to a generated one",
            scaler(vec![prom("x").unnamed(), prom("trigger-0")]),
            &["spec.triggers[1].name"],
        ),
        (
            "Utilization metric type",
            scaler(vec![prom("rps").metric_type("Utilization")]),
            &["spec.triggers[0].metricType"],
        ),
        (
            "KEDA authentication kind",
            scaler(vec![prom("rps").auth("ta", Some("TriggerAuthentication"))]),
            &["spec.triggers[0].authenticationRef.kind"],
        ),
        (
            "bad metadata is reported per key",
            scaler(vec![
                prom("rps")
                    .meta("threshold", "x")
                    .meta("unsafeSsl", "maybe"),
            ]),
            &[
                "spec.triggers[0].metadata.threshold",
                "spec.triggers[0].metadata.unsafeSsl",
            ],
        ),
        (
            "fallback with AverageValue trigger",
            ok().fallback(3, 2, None),
            &[],
        ),
        (
            "fallback with only Value triggers (KEDA >= 2.18)",
            scaler(vec![prom("rps").metric_type("Value")]).fallback(3, 2, None),
            &[],
        ),
        (
            "fallback behavior scalingModifiers without scalingModifiers",
            ok().fallback(3, 2, Some("scalingModifiers")),
            &["spec.fallback.behavior"],
        ),
        (
            "negative fallback replicas",
            ok().fallback(3, -1, None),
            &["spec.fallback"],
        ),
        (
            "unknown fallback behavior",
            ok().fallback(3, 2, Some("sometimes")),
            &["spec.fallback.behavior"],
        ),
        (
            "formula over trigger names",
            scaler(vec![prom("a"), prom("b")]).formula("(a + b) / 2", "10", None),
            &[],
        ),
        (
            "formula naming an unknown trigger",
            scaler(vec![prom("a")]).formula("a + c", "10", None),
            &["spec.advanced.scalingModifiers.formula"],
        ),
        (
            "formula without target",
            scaler(vec![prom("a")]).formula("a", "", None),
            &["spec.advanced.scalingModifiers.target"],
        ),
        (
            "formula target not positive",
            scaler(vec![prom("a")]).formula("a", "0", None),
            &["spec.advanced.scalingModifiers.target"],
        ),
        (
            "fallback with a Value formula (KEDA >= 2.18)",
            scaler(vec![prom("a")])
                .formula("a", "5", Some("Value"))
                .fallback(1, 1, None),
            &[],
        ),
        (
            "fallback behavior scalingModifiers with a formula",
            scaler(vec![prom("a")])
                .formula("a ?? 2", "5", None)
                .fallback(1, 1, Some("scalingModifiers")),
            &[],
        ),
        (
            "behavior with bad policy and window",
            ok().scale_down(HpaScalingRules {
                stabilization_window_seconds: Some(4000),
                select_policy: Some("Largest".into()),
                policies: Some(vec![policy("Pods", 0, 15), policy("Replicas", 1, 0)]),
                tolerance: Some(serde_json::json!("-1")),
            }),
            &[
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds",
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.selectPolicy",
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].value",
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[1].type",
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[1].periodSeconds",
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.tolerance",
            ],
        ),
        (
            "bad pause annotation",
            ok().annotate("autoscaling.keda.sh/paused-replicas", "two"),
            &["metadata.annotations[autoscaling.keda.sh/paused-replicas]"],
        ),
    ];
    for (what, s, want) in table {
        assert_eq!(fields_of(&s), want.to_vec(), "{what}");
    }
}

#[test]
fn keda_defaults_fill_absent_fields() {
    let mut s = scaler(vec![prom("rps").unnamed()]);
    s.spec.min_replica_count = None;
    s.spec.max_replica_count = None;
    let v = s.validate().unwrap();
    assert_eq!(v.polling_interval, Duration::from_secs(30));
    assert_eq!(v.policy.min_replicas, 0);
    assert_eq!(v.policy.max_replicas, 100);
    assert_eq!(
        v.policy.cooldown_period,
        Some(proto_duration(Duration::from_secs(300)))
    );
    assert_eq!(v.policy.triggers[0].name, "trigger-0");
    assert_eq!(v.target.api_version, "apps/v1");
    assert_eq!(v.target.kind, "Deployment");
    assert_eq!(v.policy.behavior, None);
}

#[test]
fn behavior_converts_to_the_proto_rules() {
    let v = scaler(vec![prom("rps")])
        .scale_down(HpaScalingRules {
            stabilization_window_seconds: Some(60),
            select_policy: Some("Min".into()),
            policies: Some(vec![HpaScalingPolicy {
                type_: "Percent".into(),
                value: 50,
                period_seconds: 30,
            }]),
            tolerance: Some(serde_json::json!("50m")),
        })
        .validate()
        .unwrap();
    assert_eq!(
        v.policy.behavior,
        Some(v1::Behavior {
            scale_up: None,
            scale_down: Some(v1::ScalingRules {
                stabilization_window_seconds: Some(60),
                select_policy: v1::SelectPolicy::Min as i32,
                policies: vec![v1::ScalingPolicyRule {
                    r#type: v1::PolicyType::Percent as i32,
                    value: 50,
                    period_seconds: 30,
                }],
                tolerance: Some(0.05),
            }),
        })
    );
}

#[test]
fn cached_metrics_may_be_one_polling_interval_old() {
    let mut t = prom("rps");
    t.use_cached_metrics = Some(true);
    let v = scaler(vec![t, prom("other")])
        .polling(15)
        .validate()
        .unwrap();
    assert_eq!(
        v.query_request(0, None).max_age,
        Some(proto_duration(Duration::from_secs(15)))
    );
    assert_eq!(v.query_request(1, None).max_age, None);
}

#[test]
fn status_columns_list_distinct_types_and_authentications() {
    let s = scaler(vec![
        prom("a").auth("amp", None),
        prom("b").auth("amp", None),
        prom("c").auth("other", None),
    ]);
    assert_eq!(s.spec.triggers_types(), "prometheus");
    assert_eq!(s.spec.authentications_types(), "amp,other");
}
