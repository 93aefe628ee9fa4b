//! DecisionService over a real tonic server on 127.0.0.1:0: the seed's acceptance example and
//! InvalidArgument field naming, end to end over the wire.

mod common;

use common::{LIMIT, at, decide, serve};

use promscaler_proto::v1::{
    Behavior, DecideRequest, DecisionState, MetricType, Observation, Replicas, ScalingModifiers,
    ScalingPolicy, ScalingRules, SimulateRequest, SimulationStep, TriggerPolicy, observation,
};
use tokio::time::timeout;

/// The seed's sample policy: one AverageValue trigger, threshold 50, activation 0, min 0, max 5.
fn seed_policy() -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: 0,
        max_replicas: 5,
        triggers: vec![TriggerPolicy {
            name: "connections".into(),
            metric_type: MetricType::AverageValue as i32,
            target: 50.0,
            activation_target: 0.0,
        }],
        ..ScalingPolicy::default()
    }
}

fn value(trigger: &str, v: f64) -> Observation {
    Observation {
        trigger: trigger.into(),
        result: Some(observation::Result::Value(v)),
    }
}

fn request(replicas: i32, v: f64, state: Option<DecisionState>, secs: i64) -> DecideRequest {
    DecideRequest {
        policy: Some(seed_policy()),
        replicas: Some(Replicas {
            spec: replicas,
            status: replicas,
            ready: replicas,
        }),
        observations: vec![value("connections", v)],
        state,
        now: at(secs),
        pause: None,
    }
}

#[tokio::test]
async fn seed_example_140_over_50_at_two_replicas_decides_three() {
    let mut client = serve().await;
    let resp = decide(&mut client, request(2, 140.0, None, 0))
        .await
        .expect("decide");
    assert_eq!(resp.desired_replicas, 3);
    assert!(resp.active);
    assert_eq!(
        resp.explanation.first().map(String::as_str),
        Some("trigger connections: 140 / 50 ⇒ 3")
    );
    assert_eq!(resp.triggers[0].proposal, Some(3));
    let types: Vec<&str> = resp.conditions.iter().map(|c| c.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "Ready",
            "Active",
            "Fallback",
            "Paused",
            "AbleToScale",
            "ScalingActive",
            "ScalingLimited"
        ]
    );
}

#[tokio::test]
async fn seed_example_scales_to_zero_only_after_the_cooldown() {
    let mut client = serve().await;
    let mut replicas = 1;
    let first = decide(&mut client, request(replicas, 10.0, None, 0))
        .await
        .expect("decide");
    assert_eq!(first.desired_replicas, 1);
    let mut state = first.state;
    for secs in [60, 299, 300] {
        let resp = decide(&mut client, request(replicas, 0.0, state, secs))
            .await
            .expect("decide");
        assert_eq!(resp.desired_replicas, 1, "cooling down at {secs}s");
        assert!(!resp.active);
        replicas = resp.desired_replicas;
        state = resp.state;
    }
    let resp = decide(&mut client, request(replicas, 0.0, state, 301))
        .await
        .expect("decide");
    assert_eq!(resp.desired_replicas, 0, "{:?}", resp.explanation);
}

#[tokio::test]
async fn invalid_requests_are_invalid_argument_naming_the_field() {
    let mut client = serve().await;
    let base = request(2, 140.0, None, 0);
    let with_policy = |f: &dyn Fn(&mut ScalingPolicy)| {
        let mut r = base.clone();
        f(r.policy.as_mut().expect("policy"));
        r
    };
    let cases: Vec<(DecideRequest, &str)> = vec![
        (
            DecideRequest {
                replicas: Some(Replicas {
                    spec: -1,
                    status: 0,
                    ready: 0,
                }),
                ..base.clone()
            },
            "replicas.spec",
        ),
        (with_policy(&|p| p.min_replicas = 6), "policy.max_replicas"),
        (
            with_policy(&|p| p.triggers[0].target = f64::NAN),
            "policy.triggers[0].target",
        ),
        (
            with_policy(&|p| p.triggers[0].activation_target = f64::INFINITY),
            "policy.triggers[0].activation_target",
        ),
        (
            with_policy(&|p| {
                p.scaling_modifiers = Some(ScalingModifiers {
                    formula: "connections + sessions".into(),
                    target: 10.0,
                    ..ScalingModifiers::default()
                })
            }),
            "policy.scaling_modifiers.formula",
        ),
        (
            DecideRequest {
                policy: None,
                ..base.clone()
            },
            "policy",
        ),
        (
            DecideRequest {
                observations: vec![value("nope", 1.0)],
                ..base.clone()
            },
            "observations[0].trigger",
        ),
        (
            with_policy(&|p| p.triggers[0].metric_type = 42),
            "policy.triggers[0].metric_type",
        ),
    ];
    for (req, field) in cases {
        let status = decide(&mut client, req).await.expect_err(field);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().contains(field),
            "{field} not named in {:?}",
            status.message()
        );
    }
    let status = decide(
        &mut client,
        with_policy(&|p| {
            p.scaling_modifiers = Some(ScalingModifiers {
                formula: "connections +".into(),
                target: 10.0,
                ..ScalingModifiers::default()
            })
        }),
    )
    .await
    .expect_err("bad formula");
    assert!(status.message().contains("at byte"), "{}", status.message());
}

#[tokio::test]
async fn simulate_returns_the_replica_trajectory() {
    let mut client = serve().await;
    let steps = [0.0, 140.0, 140.0, 0.0]
        .iter()
        .enumerate()
        .map(|(i, v)| SimulationStep {
            at: at(i as i64 * 30),
            observations: vec![value("connections", *v)],
        })
        .collect();
    let req = SimulateRequest {
        policy: Some(seed_policy()),
        initial: Some(Replicas::default()),
        steps,
        pause: None,
        ready_delay_seconds: 0,
    };
    let resp = timeout(LIMIT, client.simulate(req))
        .await
        .expect("in time")
        .expect("simulate")
        .into_inner();
    let trajectory: Vec<i32> = resp.steps.iter().map(|s| s.desired_replicas).collect();
    assert_eq!(trajectory, [0, 1, 3, 3]);
    assert_eq!(resp.steps[1].reason, "active: scale from zero/idle to 1");
}

/// 10 000 steps 1 s apart under a 1 h scale-down window (a 0.31 MB request) once left the
/// service at 555 MB. Over the wire it is now refused up front with InvalidArgument on `steps`.
#[tokio::test]
async fn simulate_refuses_more_work_than_the_limit() {
    let mut client = serve().await;
    let policy = ScalingPolicy {
        behavior: Some(Behavior {
            scale_up: None,
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(3600),
                ..ScalingRules::default()
            }),
        }),
        ..seed_policy()
    };
    let req = SimulateRequest {
        policy: Some(policy),
        initial: Some(Replicas::default()),
        steps: (0..10_000)
            .map(|i| SimulationStep {
                at: at(i),
                observations: vec![value("connections", 100.0)],
            })
            .collect(),
        pause: None,
        ready_delay_seconds: 0,
    };
    let status = timeout(LIMIT, client.simulate(req))
        .await
        .expect("in time")
        .expect_err("over the work limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("invalid steps: this simulation needs ")
            && status.message().contains("use fewer steps"),
        "{}",
        status.message()
    );
}
