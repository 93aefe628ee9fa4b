//! Decision parity with KEDA + the HPA, over a real tonic server on 127.0.0.1:0 (docs/semantics.md):
//! aged-out history, KEDA's condition reasons, KEDA's formula language, fallback from zero and
//! the idle floor, each through `DecisionService.Decide` on the wire.

mod common;

use common::{at, decide, serve};

use promscaler_proto::v1::{
    Behavior, Condition, DecideRequest, DecideResponse, DecisionState, Fallback, MetricType,
    Observation, QueryError, QueryErrorKind, Replicas, ScalingModifiers, ScalingPolicy,
    ScalingRules, TimestampedReplicas, TriggerPolicy, observation,
};

fn trigger(name: &str, target: f64) -> TriggerPolicy {
    TriggerPolicy {
        name: name.into(),
        metric_type: MetricType::AverageValue as i32,
        target,
        activation_target: 0.0,
    }
}

fn policy(min: i32, max: i32, triggers: &[&str]) -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: min,
        max_replicas: max,
        triggers: triggers.iter().map(|t| trigger(t, 50.0)).collect(),
        ..ScalingPolicy::default()
    }
}

fn value(trigger: &str, v: f64) -> Observation {
    Observation {
        trigger: trigger.into(),
        result: Some(observation::Result::Value(v)),
    }
}

fn failed(trigger: &str) -> Observation {
    Observation {
        trigger: trigger.into(),
        result: Some(observation::Result::Error(QueryError {
            kind: QueryErrorKind::Unreachable as i32,
            message: "connection refused".into(),
            http_status: 0,
        })),
    }
}

fn request(
    policy: &ScalingPolicy,
    replicas: i32,
    observations: Vec<Observation>,
    state: Option<DecisionState>,
    secs: i64,
) -> DecideRequest {
    DecideRequest {
        policy: Some(policy.clone()),
        replicas: Some(Replicas {
            spec: replicas,
            status: replicas,
            ready: replicas,
        }),
        observations,
        state,
        now: at(secs),
        pause: None,
    }
}

fn condition<'a>(resp: &'a DecideResponse, type_: &str) -> &'a Condition {
    resp.conditions
        .iter()
        .find(|c| c.r#type == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", resp.conditions))
}

fn scale_down_window(secs: i32) -> Behavior {
    Behavior {
        scale_up: None,
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(secs),
            ..ScalingRules::default()
        }),
    }
}

#[tokio::test]
async fn aged_out_history_scales_down_as_the_hpa_does() {
    let mut client = serve().await;
    // The reproduction: window 30 s, 3 replicas, 10 at target 50, the previous
    // recommendation (3) made 60 s earlier. The HPA gives 1.
    let mut p = policy(1, 10, &["q"]);
    p.behavior = Some(scale_down_window(30));
    let state = DecisionState {
        recommendations: vec![TimestampedReplicas {
            replicas: 3,
            at: at(0),
        }],
        initialized: true,
        ..DecisionState::default()
    };
    let resp = decide(
        &mut client,
        request(&p, 3, vec![value("q", 10.0)], Some(state), 60),
    )
    .await
    .expect("decide");
    assert_eq!(resp.desired_replicas, 1, "{:?}", resp.explanation);

    // A fresh state holds for one window, then — with a polling interval longer than the
    // window — the state it returned lets the next decision scale down.
    let first = decide(&mut client, request(&p, 3, vec![value("q", 10.0)], None, 0))
        .await
        .expect("decide");
    assert_eq!(first.desired_replicas, 3);
    assert_eq!(
        condition(&first, "AbleToScale").reason,
        "ScaleDownStabilized"
    );
    let state = first.state.expect("state");
    assert!(state.initialized);
    let next = decide(
        &mut client,
        request(&p, 3, vec![value("q", 10.0)], Some(state), 45),
    )
    .await
    .expect("decide");
    assert_eq!(next.desired_replicas, 1, "{:?}", next.explanation);

    // No behavior: the 300 s default window, a recommendation 400 s old.
    let p = policy(1, 10, &["q"]);
    let state = DecisionState {
        recommendations: vec![TimestampedReplicas {
            replicas: 3,
            at: at(0),
        }],
        ..DecisionState::default()
    };
    let resp = decide(
        &mut client,
        request(&p, 3, vec![value("q", 10.0)], Some(state), 400),
    )
    .await
    .expect("decide");
    assert_eq!(resp.desired_replicas, 1, "{:?}", resp.explanation);
}

#[tokio::test]
async fn condition_reasons_are_kedas() {
    let mut client = serve().await;
    let p = policy(1, 10, &["a", "b"]);
    // Nothing active, a trigger failing, no fallback: Ready=False TriggerError.
    let resp = decide(
        &mut client,
        request(&p, 2, vec![value("a", 0.0), failed("b")], None, 0),
    )
    .await
    .expect("decide");
    let ready = condition(&resp, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TriggerError")
    );
    assert!(
        ready
            .message
            .starts_with("Triggers defined in ScaledObject are not working correctly: b: "),
        "{}",
        ready.message
    );
    // One active, one failing: Ready=Unknown PartialTriggerError, lastActiveTime not refreshed.
    let resp = decide(
        &mut client,
        request(&p, 2, vec![value("a", 80.0), failed("b")], None, 0),
    )
    .await
    .expect("decide");
    let ready = condition(&resp, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("Unknown", "PartialTriggerError")
    );
    assert_eq!(resp.state.expect("state").last_active_time, None);
    // Scale-in to zero held by the cooldown: Active=False ScalerCooldown.
    let p = policy(0, 10, &["a"]);
    let active_once = decide(&mut client, request(&p, 2, vec![value("a", 80.0)], None, 0))
        .await
        .expect("decide");
    let resp = decide(
        &mut client,
        request(&p, 2, vec![value("a", 0.0)], active_once.state, 60),
    )
    .await
    .expect("decide");
    assert_eq!(resp.desired_replicas, 2);
    let active = condition(&resp, "Active");
    assert_eq!(
        (active.status.as_str(), active.reason.as_str()),
        ("False", "ScalerCooldown")
    );
}

#[tokio::test]
async fn kedas_formula_language_is_understood_and_bounded() {
    let mut client = serve().await;
    let mut p = policy(1, 10, &["trig_one", "trig_two", "trig_three"]);
    // KEDA's documentation's example.
    p.scaling_modifiers = Some(ScalingModifiers {
        formula: "count([trig_one,trig_two,trig_three],{#>1}) > 1 ? 5 : 0".into(),
        target: 1.0,
        activation_target: 0.0,
        metric_type: MetricType::AverageValue as i32,
    });
    let observations = vec![
        value("trig_one", 2.0),
        value("trig_two", 3.0),
        value("trig_three", 0.0),
    ];
    let resp = decide(&mut client, request(&p, 2, observations, None, 0))
        .await
        .expect("decide");
    assert_eq!(
        resp.desired_replicas, 4,
        "composite 5 at target 1, capped by max(2 × 2, 4): {:?}",
        resp.explanation
    );
    assert!(resp.active);

    // A boolean result is rejected at validation, as KEDA's float(bool) is.
    let mut bad = p.clone();
    if let Some(m) = bad.scaling_modifiers.as_mut() {
        m.formula = "trig_one > 1".into();
    }
    let status = decide(&mut client, request(&bad, 2, vec![], None, 0))
        .await
        .expect_err("a boolean formula");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("invalid policy.scaling_modifiers.formula"),
        "{}",
        status.message()
    );
    // A 100,000-deep formula is a clear error, not a crash.
    if let Some(m) = bad.scaling_modifiers.as_mut() {
        m.formula = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    }
    let status = decide(&mut client, request(&bad, 2, vec![], None, 0))
        .await
        .expect_err("a deep formula");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("longer than"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_trigger_in_fallback_activates_a_target_at_zero() {
    let mut client = serve().await;
    let mut p = policy(0, 10, &["q"]);
    p.fallback = Some(Fallback {
        failure_threshold: 1,
        replicas: 4,
        behavior: 0,
    });
    let state = DecisionState {
        consecutive_failures: [("q".to_owned(), 1)].into(),
        initialized: true,
        ..DecisionState::default()
    };
    let resp = decide(
        &mut client,
        request(&p, 0, vec![failed("q")], Some(state), 30),
    )
    .await
    .expect("decide");
    assert_eq!(resp.desired_replicas, 1, "{:?}", resp.explanation);
    assert!(resp.active && resp.fallback_active);
    assert_eq!(condition(&resp, "Active").reason, "ScalerActive");
    assert_eq!(condition(&resp, "Ready").reason, "ScaledObjectReady");
    // At 1 replica the HPA path brings it to the fallback count.
    let resp = decide(
        &mut client,
        request(&p, 1, vec![failed("q")], resp.state, 60),
    )
    .await
    .expect("decide");
    assert_eq!(resp.desired_replicas, 4, "{:?}", resp.explanation);
}

#[tokio::test]
async fn idle_zero_with_min_zero_is_accepted() {
    let mut client = serve().await;
    let mut p = policy(0, 5, &["q"]);
    p.idle_replicas = Some(0);
    let resp = decide(&mut client, request(&p, 2, vec![value("q", 0.0)], None, 0))
        .await
        .expect("idle 0 with min 0 is valid");
    assert_eq!(resp.desired_replicas, 0);
    p.min_replicas = 1;
    p.idle_replicas = Some(1);
    let status = decide(&mut client, request(&p, 2, vec![value("q", 0.0)], None, 0))
        .await
        .expect_err("idle 1 with min 1");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("policy.idle_replicas"),
        "{}",
        status.message()
    );
}
