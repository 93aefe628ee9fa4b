//! The sandbox's pieces end to end (without the live view): the API emulator with the workload
//! simulator, emulated pods each serving their share of the connections on their own /metrics,
//! a real Prometheus following them through file-based service discovery, the three services as
//! processes, the seed's PromScaler. Replicas follow the load: 140 ⇒ 3, 300 ⇒ 5 (max).
//!
//! The query is the seed's `sum(...)` over the instant gauge rather than over
//! `avg_over_time(...[1m])`: with a one-minute window every pod added or removed shifts the sum
//! for a minute (a new pod's share counts at once while the others' averages still remember
//! their larger shares), which would make this test wait minutes; the demo runs the seed's query.

use std::time::Duration;

use anyhow::Result;
use promscaler_integration_tests::cluster::repo_root;
use promscaler_sandbox::demo::{Sandbox, SandboxConfig};
use promscaler_sandbox::process::poll_until;

const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_load_140_to_3_and_300_to_5() -> Result<()> {
    let config = SandboxConfig {
        startup_delay: Duration::from_millis(300),
        query: r#"sum(websocket_active_connection_count{app_kubernetes_io_name="sample-app"})"#
            .to_owned(),
        polling_interval: 1,
        cooldown_period: 2,
        // Absorbs the moment a new pod is ready but not scraped yet (the others already report
        // their smaller share).
        scale_down_stabilization: 5,
        initial_replicas: 2,
        ..SandboxConfig::demo(repo_root().join("charts/promscaler/crds"))
    };
    let sandbox = tokio::time::timeout(Duration::from_secs(60), Sandbox::start(&config)).await??;

    sandbox.set_connections(140.0);
    sandbox.wait_replicas(3, STEP).await?;
    sandbox.wait_query_value(140.0, STEP).await?;
    // Settled: the query says 140 with three pods serving, and replicas are still 3.
    sandbox.wait_replicas(3, STEP).await?;
    wait_desired(&sandbox, 3).await?;

    sandbox.set_connections(300.0);
    sandbox.wait_replicas(5, STEP).await?;
    sandbox.wait_query_value(300.0, STEP).await?;
    wait_desired(&sandbox, 5).await?;
    sandbox.wait_replicas(5, STEP).await?;
    Ok(())
}

/// Waits until the PromScaler's `status.desiredReplicas` is `expected`.
async fn wait_desired(sandbox: &Sandbox, expected: i32) -> Result<()> {
    poll_until(
        &format!("desiredReplicas {expected}"),
        STEP,
        || async move { Ok((sandbox.snapshot().await.desired == Some(expected)).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", sandbox.logs()))
}
