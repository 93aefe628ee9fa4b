//! In-process Decide throughput: a 2-trigger policy with default behavior and a full 5-minute
//! recommendation history (one recommendation every 15 s, plus recent scale events).
//! Goal: >= 1,000,000 decisions/s on one core.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use promscaler_core::{
    Behavior, DecisionState, Observation, Pause, Replicas, ScalingPolicy, Tick, Timestamp,
    TimestampedReplicas, TriggerPolicy, decide,
};

fn two_trigger_policy(behavior: Option<Behavior>) -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: 1,
        max_replicas: 50,
        behavior,
        triggers: vec![
            TriggerPolicy {
                name: "rps".into(),
                target: 50.0,
                ..TriggerPolicy::default()
            },
            TriggerPolicy {
                name: "queue".into(),
                target: 10.0,
                activation_target: 5.0,
                ..TriggerPolicy::default()
            },
        ],
        ..ScalingPolicy::default()
    }
}

fn full_history(now: Timestamp) -> DecisionState {
    let mut state = DecisionState {
        // 20 recommendations over the last 300 s.
        recommendations: (1..=20i32)
            .map(|i| TimestampedReplicas::new(6 + (i % 3), now.add_secs(-15 * i64::from(i))))
            .collect(),
        scale_up_events: vec![TimestampedReplicas::new(2, now.add_secs(-10))],
        scale_down_events: vec![TimestampedReplicas::new(1, now.add_secs(-100))],
        last_active_time: Some(now.add_secs(-15)),
        created_at: Some(now.add_secs(-3600)),
        ..DecisionState::default()
    };
    state.consecutive_failures.insert("rps".into(), 0);
    state.consecutive_failures.insert("queue".into(), 0);
    state
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_795_910_400);
    let tick = Tick {
        replicas: Replicas::settled(7),
        observations: vec![
            Observation::value("rps", 420.0),
            Observation::value("queue", 55.0),
        ],
        pause: Pause::default(),
    };
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for (name, behavior) in [
        ("two_triggers_default_behavior", Some(Behavior::default())),
        ("two_triggers_no_behavior", None),
    ] {
        let policy = two_trigger_policy(behavior);
        let state = full_history(now);
        group.bench_function(name, |b| {
            b.iter_batched(
                || state.clone(),
                |state| black_box(decide(black_box(&policy), black_box(&tick), state, now)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
