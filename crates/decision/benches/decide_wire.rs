//! The decision service's request path without the network: decode a `DecideRequest` from
//! protobuf bytes, convert, decide, convert back and encode the `DecideResponse`. Same scenario
//! as `promscaler-core`'s `decide` bench (2 triggers, default behavior, 5-minute history), so the
//! difference is the adapter's cost. The loopback RPC benchmark lives in `xtask bench`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promscaler_decision::grpc::decide;
use promscaler_proto::v1::{
    Behavior, DecideRequest, DecisionState, MetricType, Observation, Replicas, ScalingPolicy,
    TimestampedReplicas, TriggerPolicy, observation,
};
use prost::Message as _;

const NOW: i64 = 1_795_910_400;

fn ts(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

fn request() -> DecideRequest {
    let trigger = |name: &str, target: f64, activation: f64| TriggerPolicy {
        name: name.into(),
        metric_type: MetricType::AverageValue as i32,
        target,
        activation_target: activation,
    };
    let value = |name: &str, v: f64| Observation {
        trigger: name.into(),
        result: Some(observation::Result::Value(v)),
    };
    DecideRequest {
        policy: Some(ScalingPolicy {
            min_replicas: 1,
            max_replicas: 50,
            behavior: Some(Behavior::default()),
            triggers: vec![trigger("rps", 50.0, 0.0), trigger("queue", 10.0, 5.0)],
            ..ScalingPolicy::default()
        }),
        replicas: Some(Replicas {
            spec: 7,
            status: 7,
            ready: 7,
        }),
        observations: vec![value("rps", 420.0), value("queue", 55.0)],
        state: Some(DecisionState {
            recommendations: (1..=20)
                .map(|i| TimestampedReplicas {
                    replicas: 6 + i % 3,
                    at: ts(NOW - 15 * i64::from(i)),
                })
                .collect(),
            scale_up_events: vec![TimestampedReplicas {
                replicas: 2,
                at: ts(NOW - 10),
            }],
            scale_down_events: vec![TimestampedReplicas {
                replicas: 1,
                at: ts(NOW - 100),
            }],
            last_active_time: ts(NOW - 15),
            consecutive_failures: [("rps".to_owned(), 0), ("queue".to_owned(), 0)]
                .into_iter()
                .collect(),
            created_at: ts(NOW - 3600),
            ..DecisionState::default()
        }),
        now: ts(NOW),
        pause: None,
    }
}

fn bench(c: &mut Criterion) {
    let bytes = request().encode_to_vec();
    let mut group = c.benchmark_group("decide_wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_decide_encode", |b| {
        b.iter(|| {
            let req = DecideRequest::decode(black_box(bytes.as_slice())).expect("decode");
            let resp = decide(&req, SystemTime::UNIX_EPOCH).expect("decide");
            black_box(resp.encode_to_vec())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
