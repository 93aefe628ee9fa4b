//! In-process Decide throughput: a 2-trigger policy with default behavior and a full 5-minute
//! recommendation history (one recommendation every 15 s, plus recent scale events).
//! Goal: >= 1,000,000 decisions/s on one core.
//!
//! Two measurements: criterion's wall clock (`decide/...`), and this thread's on-CPU time from
//! `/proc/thread-self/schedstat` (`decide_cpu/...`, Linux only), which stays meaningful on a
//! shared, loaded machine where other processes take turns on the same cores.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

/// On-CPU time of the calling thread, nanoseconds (first field of `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Criterion measurement: this thread's CPU time instead of wall time.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns cpu")
        } else {
            (1e-3, "µs cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n as f64,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Bits(n) => n as f64,
        };
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v / 1e6);
        "M/cpu-s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let now = Timestamp::from_secs(1_795_910_400);
    let tick = Tick {
        replicas: Replicas::settled(7),
        observations: vec![
            Observation::value("rps", 420.0),
            Observation::value("queue", 55.0),
        ],
        pause: Pause::default(),
    };
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for (name, behavior) in [
        ("two_triggers_default_behavior", Some(Behavior::default())),
        ("two_triggers_no_behavior", None),
    ] {
        let policy = two_trigger_policy(behavior);
        let state = full_history(now);
        // The carried state is cloned inside the measured loop (a decision consumes it, as the
        // gRPC adapter's decoded copy is consumed), so the figure includes that copy. Batched
        // inputs would keep thousands of outputs alive and measure page faults instead.
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(decide(
                    black_box(&policy),
                    black_box(&tick),
                    state.clone(),
                    now,
                ))
            })
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion<WallTime>) {
    bench(c, "decide");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench(c, "decide_cpu");
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
