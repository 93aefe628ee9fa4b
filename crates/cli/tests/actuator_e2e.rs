//! `status` and `watch` against the real actuator process, running the seed's scenario on the
//! Kubernetes API emulator with the real metrics-fetcher, decision service and Prometheus
//! (the integration-tests rig; `cargo build -p promscaler-actuator -p promscaler-decision -p
//! promscaler-metrics-fetcher` first, as `cargo xtask test` does).

mod common;

use std::time::Duration;

use anyhow::Result;
use common::ctl_async;
use promscaler_integration_tests::{cluster::ADMIN_TOKEN, system::System};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_watch_show_the_seed_scenario_on_a_real_actuator() -> Result<()> {
    // Two pods with 70 connections each: the seed query yields 140 ⇒ 3 replicas.
    let mut system = System::start(&[70.0, 70.0]).await?;
    system.scale_seed_to_three(|yaml| yaml).await?;
    let actuator = system.actuators[0].grpc_url();

    // The list, like `kubectl get so`. Poll until the actuator's view has caught up with the
    // scale (its status is written after the /scale patch).
    let expected_row = "default     sample-app-prometheus-scaler   apps/v1.Deployment   sample-app        1     5     True    True     False      False    prometheus   3";
    let mut last = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let run = ctl_async(strings(&[
            "--actuator-addr",
            &actuator,
            "--token",
            ADMIN_TOKEN,
            "status",
        ]))
        .await
        .ok();
        last = run.stdout;
        if last.lines().nth(1) == Some(expected_row) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        last,
        format!(
            "NAMESPACE   NAME                           SCALETARGETKIND      SCALETARGETNAME   MIN   MAX   READY   ACTIVE   FALLBACK   PAUSED   TRIGGERS     DESIRED\n{expected_row}\n"
        ),
        "{}",
        system.logs()
    );

    // One scaler: conditions, last values and the last decision's explanation.
    let run = ctl_async(strings(&[
        "--actuator-addr",
        &actuator,
        "--token",
        ADMIN_TOKEN,
        "status",
        "sample-app-prometheus-scaler",
    ]))
    .await
    .ok();
    for line in [
        "LAST VALUES       connections=140",
        "CONDITION ",
        "LAST DECISION   ",
        "EXPLANATION\n  trigger connections: 140 / 50",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }

    // Live decisions (pollingInterval 1 s): one line each.
    let run = ctl_async(strings(&[
        "--actuator-addr",
        &actuator,
        "--token",
        ADMIN_TOKEN,
        "watch",
        "-n",
        NS,
        "--count",
        "2",
    ]))
    .await
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for l in lines {
        assert!(
            l.contains(
                "  default/sample-app-prometheus-scaler  replicas 3 -> 3  connections=140  | keep 3"
            ),
            "{l}"
        );
    }

    let run = ctl_async(strings(&[
        "--actuator-addr",
        &actuator,
        "--token",
        ADMIN_TOKEN,
        "-o",
        "json",
        "watch",
        "--count",
        "1",
    ]))
    .await
    .ok();
    let event: serde_json::Value = serde_json::from_str(run.stdout.trim())?;
    assert_eq!(event["decision"]["desired_replicas"], 3);
    assert_eq!(event["decision"]["triggers"][0]["value"], 140.0);
    Ok(())
}
