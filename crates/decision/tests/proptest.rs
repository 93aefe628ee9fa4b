//! Property test: random DecideRequests never panic the adapter or the engine; they are
//! answered or rejected as InvalidArgument.

use std::time::SystemTime;

use promscaler_decision::grpc::decide;
use promscaler_proto::v1::{
    Behavior, DecideRequest, DecisionState, Fallback, Observation, Pause, QueryError, Replicas,
    ScalingModifiers, ScalingPolicy, ScalingPolicyRule, ScalingRules, TimestampedReplicas,
    TimestampedValue, TriggerPolicy, observation,
};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["rps", "queue", "lag", "x"];

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -10.0f64..1e4,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
    ]
}

fn small_i32() -> impl Strategy<Value = i32> {
    prop_oneof![-3i32..60, Just(i32::MAX), Just(i32::MIN), any::<i32>()]
}

fn timestamp() -> impl Strategy<Value = prost_types::Timestamp> {
    prop_oneof![
        (1_795_910_000i64..1_795_912_000, 0i32..1_000_000_000).prop_map(|(s, n)| {
            prost_types::Timestamp {
                seconds: s,
                nanos: n,
            }
        }),
        (any::<i64>(), any::<i32>()).prop_map(|(s, n)| prost_types::Timestamp {
            seconds: s,
            nanos: n
        }),
    ]
}

fn duration() -> impl Strategy<Value = prost_types::Duration> {
    prop_oneof![
        (0i64..1000).prop_map(|s| prost_types::Duration {
            seconds: s,
            nanos: 0
        }),
        (any::<i64>(), any::<i32>()).prop_map(|(s, n)| prost_types::Duration {
            seconds: s,
            nanos: n
        }),
    ]
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    (
        proptest::option::of(-5i32..4000),
        -1i32..4,
        proptest::collection::vec((-1i32..4, small_i32(), small_i32()), 0..4),
        proptest::option::of(any_f64()),
    )
        .prop_map(|(w, sel, ps, tol)| ScalingRules {
            stabilization_window_seconds: w,
            select_policy: sel,
            policies: ps
                .into_iter()
                .map(|(t, v, p)| ScalingPolicyRule {
                    r#type: t,
                    value: v,
                    period_seconds: p,
                })
                .collect(),
            tolerance: tol,
        })
}

fn formula() -> impl Strategy<Value = String> {
    let tokens = prop_oneof![
        Just("rps"),
        Just("queue"),
        Just("lag"),
        Just("nope"),
        Just("1"),
        Just("2.5"),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("("),
        Just(")"),
        Just("?"),
        Just(":"),
        Just("??"),
        Just(">"),
        Just("=="),
        Just("&&"),
        Just("!"),
        Just("min("),
        Just("max("),
        Just("abs("),
        Just("ceil("),
        Just(","),
        Just("true"),
        Just("nil"),
    ];
    prop_oneof![
        proptest::collection::vec(tokens, 0..24).prop_map(|t| t.join(" ")),
        Just("(rps + (queue ?? 0)) / 2".to_owned()),
        Just("rps > 10 ? rps : queue".to_owned()),
        ".{0,40}",
    ]
}

fn policy() -> impl Strategy<Value = ScalingPolicy> {
    let triggers = proptest::collection::vec((0usize..4, -1i32..4, any_f64(), any_f64()), 0..4)
        .prop_map(|ts| {
            ts.into_iter()
                .map(|(n, mt, target, act)| TriggerPolicy {
                    name: NAMES[n].into(),
                    metric_type: mt,
                    target,
                    activation_target: act,
                })
                .collect::<Vec<_>>()
        });
    (
        (small_i32(), small_i32(), proptest::option::of(small_i32())),
        (
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
        ),
        proptest::option::of((small_i32(), small_i32(), -1i32..5)),
        proptest::option::of((proptest::option::of(rules()), proptest::option::of(rules()))),
        triggers,
        proptest::option::of((formula(), any_f64(), any_f64(), -1i32..4)),
        proptest::option::of(any_f64()),
    )
        .prop_map(
            |((min, max, idle), (cd, icd, ttl), fb, beh, triggers, sm, tol)| ScalingPolicy {
                min_replicas: min,
                max_replicas: max,
                idle_replicas: idle,
                cooldown_period: cd,
                initial_cooldown_period: icd,
                fallback: fb.map(|(t, r, b)| Fallback {
                    failure_threshold: t,
                    replicas: r,
                    behavior: b,
                }),
                behavior: beh.map(|(u, d)| Behavior {
                    scale_up: u,
                    scale_down: d,
                }),
                triggers,
                scaling_modifiers: sm.map(|(f, t, a, m)| ScalingModifiers {
                    formula: f,
                    target: t,
                    activation_target: a,
                    metric_type: m,
                }),
                tolerance: tol,
                last_known_good_ttl: ttl,
            },
        )
}

fn observations() -> impl Strategy<Value = Vec<Observation>> {
    proptest::collection::vec(
        (
            0usize..4,
            prop_oneof![any_f64().prop_map(Some), Just(None)],
            any::<bool>(),
            any::<i32>(),
        ),
        0..5,
    )
    .prop_map(|os| {
        os.into_iter()
            .map(|(n, v, has, kind)| Observation {
                trigger: NAMES[n].into(),
                result: match (v, has) {
                    (Some(v), _) => Some(observation::Result::Value(v)),
                    (None, true) => Some(observation::Result::Error(QueryError {
                        kind,
                        message: "boom".into(),
                        http_status: 503,
                    })),
                    (None, false) => None,
                },
            })
            .collect()
    })
}

fn history() -> impl Strategy<Value = Vec<TimestampedReplicas>> {
    proptest::collection::vec((small_i32(), proptest::option::of(timestamp())), 0..30).prop_map(
        |h| {
            h.into_iter()
                .map(|(r, at)| TimestampedReplicas { replicas: r, at })
                .collect()
        },
    )
}

fn state() -> impl Strategy<Value = DecisionState> {
    (
        (history(), history(), history()),
        (
            proptest::option::of(timestamp()),
            proptest::option::of(timestamp()),
            any::<bool>(),
        ),
        proptest::collection::hash_map("[a-z]{1,5}", small_i32(), 0..5),
        proptest::collection::hash_map(
            "[a-z]{1,5}",
            (any_f64(), proptest::option::of(timestamp())),
            0..3,
        ),
    )
        .prop_map(
            |((recs, ups, downs), (last, created, initialized), fails, lkg)| DecisionState {
                recommendations: recs,
                scale_up_events: ups,
                scale_down_events: downs,
                last_active_time: last,
                consecutive_failures: fails,
                created_at: created,
                last_good_values: lkg
                    .into_iter()
                    .map(|(k, (value, at))| (k, TimestampedValue { value, at }))
                    .collect(),
                initialized,
            },
        )
}

fn request() -> impl Strategy<Value = DecideRequest> {
    (
        proptest::option::of(policy()),
        proptest::option::of((small_i32(), small_i32(), small_i32())),
        observations(),
        proptest::option::of(state()),
        proptest::option::of(timestamp()),
        proptest::option::of((
            any::<bool>(),
            proptest::option::of(small_i32()),
            any::<bool>(),
            any::<bool>(),
        )),
    )
        .prop_map(
            |(policy, replicas, observations, state, now, pause)| DecideRequest {
                policy,
                replicas: replicas.map(|(spec, status, ready)| Replicas {
                    spec,
                    status,
                    ready,
                }),
                observations,
                state,
                now,
                pause: pause.map(
                    |(paused, paused_replicas, scale_in_paused, scale_out_paused)| Pause {
                        paused,
                        paused_replicas,
                        scale_in_paused,
                        scale_out_paused,
                    },
                ),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_decide_requests_never_panic(req in request()) {
        match decide(&req, SystemTime::now()) {
            Ok(resp) => {
                prop_assert!(resp.desired_replicas >= 0);
                let state = resp.state.expect("state");
                prop_assert!(state.recommendations.len() <= promscaler_core::MAX_HISTORY);
                // The returned state is always accepted back.
                let again = DecideRequest { state: Some(state), ..req };
                prop_assert!(decide(&again, SystemTime::now()).is_ok());
            }
            Err(e) => {
                let status = tonic::Status::from(e);
                prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
            }
        }
    }
}

/// Requests that pass validation, so the engine's deeper paths run: unique trigger names,
/// positive finite targets, min <= max.
fn valid_request() -> impl Strategy<Value = (DecideRequest, i32)> {
    (
        (0i32..4, 1i32..30, proptest::option::of(0i32..2), 0i64..400),
        proptest::option::of((0i32..4, 0i32..10, 0i32..4)),
        proptest::option::of((proptest::option::of(rules()), proptest::option::of(rules()))),
        proptest::collection::vec((0.1f64..200.0, 0.0f64..50.0, 1i32..3), 1..4),
        proptest::option::of(prop_oneof![
            Just("rps + (queue ?? 0)".to_owned()),
            Just("max(rps, queue ?? 0) * 2".to_owned()),
            Just("rps > 10 ? rps : 0".to_owned())
        ]),
        (
            observations(),
            proptest::option::of(state()),
            0i32..40,
            0i64..2000,
        ),
    )
        .prop_map(
            |((min, span, idle, cd), fb, beh, ts, sm, (obs, state, current, now))| {
                let triggers: Vec<TriggerPolicy> = ts
                    .iter()
                    .enumerate()
                    .map(|(i, (target, act, mt))| TriggerPolicy {
                        name: NAMES[i].into(),
                        metric_type: *mt,
                        target: *target,
                        activation_target: *act,
                    })
                    .collect();
                let has_queue = triggers.len() > 1;
                let max = min + span;
                let policy = ScalingPolicy {
                    min_replicas: min,
                    max_replicas: max,
                    idle_replicas: idle.filter(|i| *i < min),
                    cooldown_period: Some(prost_types::Duration {
                        seconds: cd,
                        nanos: 0,
                    }),
                    fallback: fb.map(|(t, r, b)| Fallback {
                        failure_threshold: t,
                        replicas: r,
                        behavior: b,
                    }),
                    behavior: beh
                        .map(|(u, d)| Behavior {
                            scale_up: u,
                            scale_down: d,
                        })
                        .filter(|b| {
                            // Keep only behaviors the validator accepts; others are covered above.
                            [&b.scale_up, &b.scale_down].iter().all(|r| {
                                r.as_ref().is_none_or(|r| {
                                    r.stabilization_window_seconds
                                        .is_none_or(|w| (0..=3600).contains(&w))
                                        && (0..3).contains(&r.select_policy)
                                        && r.tolerance.is_none_or(|t| t.is_finite() && t >= 0.0)
                                        && r.policies.iter().all(|p| {
                                            (1..3).contains(&p.r#type)
                                                && p.value > 0
                                                && (1..=1800).contains(&p.period_seconds)
                                        })
                                })
                            })
                        }),
                    scaling_modifiers: sm.filter(|_| has_queue).map(|formula| ScalingModifiers {
                        formula,
                        target: 10.0,
                        activation_target: 1.0,
                        metric_type: 1,
                    }),
                    triggers,
                    ..ScalingPolicy::default()
                };
                let n = policy.triggers.len();
                let mut seen = std::collections::HashSet::new();
                let observations: Vec<Observation> = obs
                    .into_iter()
                    .filter(|o| {
                        NAMES[..n].contains(&o.trigger.as_str())
                            && o.result.is_some()
                            && seen.insert(o.trigger.clone())
                    })
                    .collect();
                let state = state.map(|mut s| {
                    for h in [
                        &mut s.recommendations,
                        &mut s.scale_up_events,
                        &mut s.scale_down_events,
                    ] {
                        for r in h.iter_mut() {
                            r.at = Some(prost_types::Timestamp {
                                seconds: 1_795_910_000 + i64::from(r.replicas.rem_euclid(400)),
                                nanos: 0,
                            });
                        }
                    }
                    for v in s.last_good_values.values_mut() {
                        v.at = Some(prost_types::Timestamp {
                            seconds: 1_795_910_000,
                            nanos: 0,
                        });
                    }
                    s.last_active_time = None;
                    s.created_at = None;
                    s
                });
                let req = DecideRequest {
                    policy: Some(policy),
                    replicas: Some(Replicas {
                        spec: current,
                        status: current,
                        ready: current,
                    }),
                    observations,
                    state,
                    now: Some(prost_types::Timestamp {
                        seconds: 1_795_910_000 + now,
                        nanos: 0,
                    }),
                    pause: None,
                };
                (req, max)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn valid_requests_are_decided_within_bounds((req, max) in valid_request()) {
        let current = req.replicas.as_ref().map_or(0, |r| r.spec);
        let resp = decide(&req, SystemTime::now());
        prop_assert!(resp.is_ok(), "{:?}", resp.err());
        let resp = resp.unwrap();
        prop_assert!(resp.desired_replicas >= 0);
        prop_assert!(resp.desired_replicas <= max.max(current), "{} > max {max}: {:?}", resp.desired_replicas, resp.explanation);
        if current <= max {
            prop_assert!(resp.desired_replicas <= max, "{:?}", resp.explanation);
        }
        prop_assert!(!resp.explanation.is_empty());
    }
}
