//! The actuator against the Kubernetes API emulator, with the real fetcher, decision service and
//! Prometheus: the seed's scenario and the failure behaviour users rely on.

use std::{process::Command, time::Duration};

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Event;
use kube::{Api, api::ListParams};
use promscaler_integration_tests::{
    cluster::sample_app_deployment,
    system::{System, seed_promscaler},
};
use promscaler_sandbox::{
    process::poll_until,
    prometheus::{SEED_QUERY, sample_app_metrics},
};

const NS: &str = "default";
const SCALER: &str = "sample-app-prometheus-scaler";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_scales_2_to_3_records_an_event_and_reports_ready_active() -> Result<()> {
    // Two pods with 70 connections each: the seed query yields 140.
    let mut system = System::start(&[70.0, 70.0]).await?;
    system
        .prometheus
        .wait_for_value(SEED_QUERY, 140.0, WAIT)
        .await?;
    system.cluster.apply(&sample_app_deployment(NS, 2))?;
    system.start_actuator("actuator-a").await?;
    system.cluster.apply(&seed_promscaler(
        NS,
        &system.prometheus.url(),
        SEED_QUERY,
        1,
    ))?;

    // ceil(140 / 50) = 3, as the seed computes.
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    let scaler = system
        .cluster
        .wait_condition(NS, SCALER, "Active", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    let status = scaler.status.clone().unwrap_or_default();
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    assert_eq!(condition("Ready").as_deref(), Some("True"), "{status:?}");
    assert_eq!(status.original_replica_count, Some(2));
    assert_eq!(status.desired_replicas, Some(3));

    let events: Api<Event> = Api::namespaced(system.cluster.client(), NS);
    let rescale = poll_until("a SuccessfulRescale event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("SuccessfulRescale")))
    })
    .await?;
    let message = rescale.message.unwrap_or_default();
    assert!(message.contains("New size: 3 (was 2)"), "{message}");

    // kubectl shows the KEDA columns for the PromScaler.
    let home = tempfile::tempdir()?;
    let mut kubectl = Command::new("kubectl");
    kubectl
        .env("HOME", home.path())
        .arg("--kubeconfig")
        .arg(system.cluster.kubeconfig())
        .args([
            "--cache-dir",
            &home.path().join("cache").display().to_string(),
        ])
        .args(["--request-timeout", "20s", "get", "psc", "-n", NS]);
    // The emulator runs on this test's runtime: run kubectl off it.
    let output = tokio::task::spawn_blocking(move || kubectl.output()).await??;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for column in [
        "SCALETARGETKIND",
        "SCALETARGETNAME",
        "MIN",
        "MAX",
        "READY",
        "ACTIVE",
        "FALLBACK",
        "PAUSED",
        "TRIGGERS",
        "AGE",
        "DESIRED",
    ] {
        assert!(table.contains(column), "missing {column} in:\n{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with(SCALER))
        .context("no row")?;
    assert!(row.contains("apps/v1.Deployment"), "{row}");
    assert!(row.contains("sample-app"), "{row}");
    assert!(row.contains("prometheus"), "{row}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_to_zero_only_after_the_cooldown_and_back_on_activation() -> Result<()> {
    let query = r#"sum(websocket_active_connection_count{app_kubernetes_io_name="sample-app"})"#;
    let mut system = System::start(&[30.0]).await?;
    system.prometheus.wait_for_value(query, 30.0, WAIT).await?;
    system.cluster.apply(&sample_app_deployment(NS, 1))?;
    system.start_actuator("actuator-a").await?;
    system
        .cluster
        .apply(&seed_promscaler(NS, &system.prometheus.url(), query, 0))?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Active", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        1
    );

    // Silence: the trigger goes inactive; replicas reach 0 only once the 2 s cooldown passed.
    system.app.set(sample_app_metrics(&[0.0]));
    system.prometheus.wait_for_value(query, 0.0, WAIT).await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 0, WAIT)
        .await
        .with_context(|| system.logs())?;
    let scaler = system.cluster.scaler(NS, SCALER).await?;
    let status = scaler.status.unwrap_or_default();
    let last_active = status.last_active_time.context("lastActiveTime")?;
    let scaled = status.last_scale_time.context("lastScaleTime")?;
    assert!(
        scaled.0.duration_since(last_active.0).as_secs_f64() >= 2.0,
        "scaled to zero at {scaled:?}, only {:?} after last activity {last_active:?}",
        scaled.0.duration_since(last_active.0)
    );

    // Load returns: activation brings the workload back to at least one replica.
    system.app.set(sample_app_metrics(&[120.0]));
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    Ok(())
}
