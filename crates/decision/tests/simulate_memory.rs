//! Simulate's memory stays bounded by its response, not steps × history (a 0.31 MB
//! request once left the service at 555 MB; docs/cli.md "simulate"). Measured as the growth of this process's peak resident
//! set (`VmHWM`), so this binary holds exactly one test: nothing else allocates beside it.
//! No timing is involved.

#![cfg(target_os = "linux")]

use promscaler_decision::grpc::simulate;
use promscaler_proto::v1::{
    Behavior, MetricType, Observation, Replicas, ScalingPolicy, ScalingRules, SimulateRequest,
    SimulationStep, TriggerPolicy, observation,
};

/// Peak resident set of this process so far, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn simulate_at_the_work_limit_grows_the_peak_by_a_few_megabytes() {
    // The worst history a request within the limit can have: 1 s steps under a 1 h window, so
    // every step after the first hour carries ~3600 recommendations. Before the fix each step
    // kept a copy of them (~330 MB here).
    let policy = ScalingPolicy {
        min_replicas: 0,
        max_replicas: 5,
        triggers: vec![TriggerPolicy {
            name: "connections".into(),
            metric_type: MetricType::AverageValue as i32,
            target: 50.0,
            activation_target: 0.0,
        }],
        behavior: Some(Behavior {
            scale_up: None,
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(3600),
                ..ScalingRules::default()
            }),
        }),
        ..ScalingPolicy::default()
    };
    let steps: Vec<SimulationStep> = (0..7_000i64)
        .map(|i| SimulationStep {
            at: Some(prost_types::Timestamp {
                seconds: 1_795_910_400 + i,
                nanos: 0,
            }),
            observations: vec![Observation {
                trigger: "connections".into(),
                // Alternating load, so the recommendations differ and the window matters.
                result: Some(observation::Result::Value(if i % 2 == 0 {
                    240.0
                } else {
                    60.0
                })),
            }],
        })
        .collect();
    let req = SimulateRequest {
        policy: Some(policy),
        initial: Some(Replicas::default()),
        steps,
        pause: None,
        ready_delay_seconds: 0,
    };

    let before = peak_rss_kib();
    let resp = simulate(&req).expect("within the work limit");
    let after = peak_rss_kib();

    assert_eq!(resp.steps.len(), 7_000);
    let grown_mib = (after.saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 32,
        "Simulate grew the peak resident set by {grown_mib} MiB for 7000 steps"
    );
}
