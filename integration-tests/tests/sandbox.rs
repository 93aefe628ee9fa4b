//! The sandbox's pieces end to end (without the live view): the API emulator with the workload
//! simulator, emulated pods each serving their share of the connections on their own /metrics,
//! a real Prometheus following them through file-based service discovery, the three services as
//! processes, the seed's PromScaler. The seed's story and what happens when a piece fails.
//!
//! Most tests run the seed's `sum(...)` over the instant gauge rather than over
//! `avg_over_time(...[1m])`: with a one-minute window every pod added or removed shifts the sum
//! for a minute (a new pod's share counts at once while the others' averages still remember
//! their larger shares), which would make these tests wait minutes; the demo runs the seed's
//! query, and the multi-series test runs the seed's `avg_over_time` without `sum`.
//!
//! "Held" is checked by sampling the replicas: a lower bound on when something may happen, which
//! a slow machine can only make easier to meet, never a bound on how fast something happens.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use futures::StreamExt as _;
use promscaler_integration_tests::cluster::repo_root;
use promscaler_proto::v1::{
    DecisionEvent, ScalerRef, WatchDecisionsRequest, actuator_service_client::ActuatorServiceClient,
};
use promscaler_sandbox::harness::{Sandbox, SandboxConfig};
use promscaler_sandbox::process::poll_until;
use promscaler_sandbox::prometheus::SEED_MULTI_SERIES_QUERY;
use promscaler_sandbox::seed::{NAMESPACE, SCALER};
use tokio::time::Instant;

const STEP: Duration = Duration::from_secs(30);
const INSTANT_SUM: &str =
    r#"sum(websocket_active_connection_count{app_kubernetes_io_name="sample-app"})"#;

/// The sandbox with the instant query, 1 s polling, 140 connections on 2 replicas at the start.
fn config() -> SandboxConfig {
    SandboxConfig {
        startup_delay: Duration::from_millis(300),
        query: INSTANT_SUM.to_owned(),
        polling_interval: 1,
        cooldown_period: 8,
        // Also absorbs the moment a new pod is ready but not scraped yet (the others already
        // report their smaller share).
        scale_down_stabilization: 10,
        initial_replicas: 2,
        initial_connections: 140.0,
        ..SandboxConfig::demo(repo_root().join("charts/promscaler/crds"))
    }
}

async fn start(config: &SandboxConfig) -> Result<Sandbox> {
    tokio::time::timeout(Duration::from_secs(90), Sandbox::start(config))
        .await
        .context("the sandbox did not start in 90 s")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_story_up_to_max_down_after_the_window_to_zero_after_the_cooldown_and_back()
-> Result<()> {
    let config = SandboxConfig {
        min_replicas: 0,
        ..config()
    };
    let sandbox = start(&config).await?;
    let recorder = DecisionRecorder::start(&sandbox).await?;

    // 140 connections, threshold 50: ceil(140/50) = 3, and it stays there once the three
    // pods share the load (the query still says 140).
    sandbox.wait_replicas(3, STEP).await?;
    sandbox.wait_query_value(140.0, STEP).await?;
    wait_desired(&sandbox, 3).await?;
    sandbox.wait_replicas(3, STEP).await?;

    // Peak: ceil(300/50) = 6, capped at maxReplicaCount 5.
    sandbox.set_connections(300.0);
    sandbox.wait_replicas(5, STEP).await?;
    wait_desired(&sandbox, 5).await?;
    // While new pods start, the instant sum dips (a ready pod not scraped yet, the others
    // already reporting their smaller share), and so do the recommendations: wait for a tick
    // that saw the whole 300 again.
    recorder.wait_value(300.0, STEP).await?;

    // Drop to 20: the recommendation falls to 1 at once, but the scale-down stabilization
    // window keeps the highest recommendation of the last 10 s. The last tick that saw 300
    // ran after the wait above, so 5 must hold for 10 s from here (checked for 8 s).
    let window = Duration::from_secs(config.scale_down_stabilization.into());
    sandbox.set_connections(20.0);
    replicas_held(&sandbox, 5, window - Duration::from_secs(2))
        .await
        .with_context(|| recorder.last(20))?;
    sandbox.wait_replicas(1, STEP).await?;
    recorder.wait_value(20.0, STEP).await?;

    // Silence: the trigger is inactive (0 is not above activationThreshold 0), and with
    // minReplicaCount 0 the app goes to zero only once cooldownPeriod has passed since the
    // last active tick (one that saw 20 ran after the wait above; checked for 8 - 2 s).
    let cooldown = Duration::from_secs(config.cooldown_period.into());
    sandbox.set_connections(0.0);
    replicas_held(&sandbox, 1, cooldown - Duration::from_secs(2))
        .await
        .with_context(|| recorder.last(20))?;
    sandbox.wait_replicas(0, STEP).await?;
    let (_, message) = sandbox.wait_condition("Active", "False", STEP).await?;
    ensure!(!message.is_empty(), "Active=False without a message");

    // Return: with no pod the app's front reports the load; activation wakes the app and
    // the HPA takes it to ceil(140/50) = 3.
    sandbox.set_connections(140.0);
    sandbox.wait_replicas(3, STEP).await?;
    sandbox.wait_condition("Active", "True", STEP).await?;
    wait_desired(&sandbox, 3).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_multi_series_query_is_not_ready_with_the_advice_to_aggregate() -> Result<()> {
    let config = SandboxConfig {
        query: SEED_MULTI_SERIES_QUERY.to_owned(),
        ..config()
    };
    let sandbox = start(&config).await?;
    let (reason, message) = sandbox.wait_condition("Ready", "False", STEP).await?;
    ensure!(
        message.contains("2 series") && message.contains("sum("),
        "Ready=False ({reason}) should say the query returns 2 series and to aggregate with \
         sum(...): {message}"
    );
    // Had the query been summed, 140 would mean 3 replicas; a query that cannot be read
    // never moves the target, decision after decision.
    let mut client = ActuatorServiceClient::connect(sandbox.actuator.grpc_url()).await?;
    let decision = poll_until("three decisions with the trigger failing", STEP, || {
        let mut client = client.clone();
        async move {
            let status = client.get_scaler(scaler_ref()).await?.into_inner();
            Ok(status.last_decision.and_then(|e| e.decision).filter(|d| {
                d.triggers
                    .first()
                    .is_some_and(|t| t.consecutive_failures >= 3)
            }))
        }
    })
    .await?;
    assert_eq!(decision.desired_replicas, 2, "{:?}", decision.explanation);
    assert_eq!(sandbox.replicas().await?, 2);
    let status = client.get_scaler(scaler_ref()).await?.into_inner();
    assert_eq!(status.desired_replicas, 2);

    // The sandbox's Prometheus scrapes the three services too (for the chart's dashboard):
    // the leader, the decision service and the fetcher's failing query are all there.
    for query in [
        "max(promscaler_actuator_leader{job=\"promscaler\"})",
        "sum(promscaler_decision_requests_total{job=\"promscaler\"}) > 0",
        "sum(promscaler_fetcher_queries_total{job=\"promscaler\",outcome=\"multiple_series\"}) > 0",
    ] {
        poll_until(
            &format!("{query} in the sandbox's Prometheus"),
            STEP,
            || async { Ok(sandbox.prometheus.value(query).await?.filter(|v| *v > 0.0)) },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_killed_mid_run_holds_then_falls_back_then_recovers() -> Result<()> {
    let config = SandboxConfig {
        fallback: Some((3, 4)),
        ..config()
    };
    let mut sandbox = start(&config).await?;
    sandbox.wait_replicas(3, STEP).await?;
    wait_desired(&sandbox, 3).await?;

    sandbox.prometheus.stop();
    // Until the fallback applies the replicas are held: never below 3 on missing data.
    let deadline = Instant::now() + STEP;
    loop {
        let replicas = sandbox.replicas().await?;
        ensure!(
            replicas == 3 || replicas == 4,
            "replicas {replicas} while Prometheus is down (held 3, or fallback 4)\n{}",
            sandbox.logs()
        );
        if replicas == 4 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no fallback in {STEP:?}\n{}",
            sandbox.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sandbox.wait_condition("Fallback", "True", STEP).await?;
    let scaler = sandbox.scaler().await?;
    let health = &scaler["status"]["health"]["connections"];
    assert_eq!(health["status"], "Failing", "{health}");
    assert!(
        health["numberOfFailures"].as_i64().unwrap_or(0) >= 3,
        "fallback before failureThreshold 3: {health}"
    );

    sandbox.prometheus.restart().await?;
    sandbox.wait_condition("Fallback", "False", STEP).await?;
    sandbox.wait_condition("Ready", "True", STEP).await?;
    // Back on the metric: 140 ⇒ 3 (after the scale-down stabilization window).
    sandbox.wait_replicas(3, STEP).await?;
    wait_desired(&sandbox, 3).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetcher_or_decision_killed_and_restarted_holds_replicas_and_the_loop_resumes() -> Result<()>
{
    let mut sandbox = start(&config()).await?;
    sandbox.wait_replicas(3, STEP).await?;
    wait_desired(&sandbox, 3).await?;
    let mut client = ActuatorServiceClient::connect(sandbox.actuator.grpc_url()).await?;

    sandbox.fetcher.kill();
    let (reason, _) = sandbox.wait_condition("Ready", "False", STEP).await?;
    assert_eq!(reason, "MetricsFetcherUnavailable");
    failed_ticks_hold(&sandbox, &mut client, 3, 3).await?;
    sandbox.fetcher.restart().await?;
    sandbox.wait_condition("Ready", "True", STEP).await?;

    sandbox.decision.kill();
    let (reason, _) = sandbox.wait_condition("Ready", "False", STEP).await?;
    assert_eq!(reason, "DecisionServiceUnavailable");
    failed_ticks_hold(&sandbox, &mut client, 3, 3).await?;
    sandbox.decision.restart().await?;
    sandbox.wait_condition("Ready", "True", STEP).await?;

    // The loop runs again: a new load is acted on.
    sandbox.set_connections(300.0);
    sandbox.wait_replicas(5, STEP).await?;
    wait_desired(&sandbox, 5).await?;
    Ok(())
}

/// Every decision the actuator streams, kept to explain a failure.
struct DecisionRecorder {
    events: std::sync::Arc<std::sync::Mutex<Vec<DecisionEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DecisionRecorder {
    async fn start(sandbox: &Sandbox) -> Result<Self> {
        let mut client = ActuatorServiceClient::connect(sandbox.actuator.grpc_url()).await?;
        let mut stream = client
            .watch_decisions(WatchDecisionsRequest { namespace: None })
            .await?
            .into_inner();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(event);
            }
        });
        Ok(Self { events, task })
    }

    /// Waits for a decision, made after this call, whose (first) trigger value is `value`.
    async fn wait_value(&self, value: f64, timeout: Duration) -> Result<()> {
        let mark = self.events.lock().unwrap_or_else(|e| e.into_inner()).len();
        poll_until(
            &format!("a decision seeing {value}"),
            timeout,
            || async move {
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                let seen = events[mark..].iter().any(|e| {
                    e.decision
                        .as_ref()
                        .and_then(|d| d.triggers.first())
                        .and_then(|t| t.value)
                        .is_some_and(|v| (v - value).abs() < 0.5)
                });
                Ok(seen.then_some(()))
            },
        )
        .await
        .with_context(|| self.last(10))
    }

    /// The last `n` decisions: time, replicas, desired and the explanation.
    fn last(&self, n: usize) -> String {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("last decisions:\n");
        for event in &events[events.len().saturating_sub(n)..] {
            let at = event.at.as_ref().map_or(0, |t| t.seconds);
            let replicas = event.replicas.as_ref().map_or(-1, |r| r.spec);
            match &event.decision {
                Some(d) => out.push_str(&format!(
                    "{at} replicas {replicas} -> {} scaled={} | {}\n",
                    d.desired_replicas,
                    event.scaled,
                    d.explanation.join(" | ")
                )),
                None => out.push_str(&format!("{at} replicas {replicas} error {}\n", event.error)),
            }
        }
        out
    }
}

impl Drop for DecisionRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn scaler_ref() -> ScalerRef {
    ScalerRef {
        namespace: NAMESPACE.into(),
        name: SCALER.into(),
    }
}

/// Reads the actuator's decision stream until `ticks` failed ticks of the scaler were seen,
/// checking that none scaled and that the target stays at `replicas`.
async fn failed_ticks_hold(
    sandbox: &Sandbox,
    client: &mut ActuatorServiceClient<tonic::transport::Channel>,
    ticks: usize,
    replicas: i32,
) -> Result<()> {
    let mut stream = client
        .watch_decisions(WatchDecisionsRequest {
            namespace: Some(NAMESPACE.into()),
        })
        .await?
        .into_inner();
    let mut failed: Vec<DecisionEvent> = Vec::new();
    while failed.len() < ticks {
        let event = tokio::time::timeout(STEP, stream.next())
            .await
            .with_context(|| format!("no decision event in {STEP:?}\n{}", sandbox.logs()))?
            .context("the decision stream ended")??;
        if event.r#ref.as_ref().is_some_and(|r| r.name == SCALER) && !event.error.is_empty() {
            ensure!(!event.scaled, "a failed tick scaled: {event:?}");
            failed.push(event);
        }
        let now = sandbox.replicas().await?;
        if now != replicas {
            bail!(
                "replicas {now} (held {replicas}) after {} failed ticks: {failed:?}",
                failed.len()
            );
        }
    }
    Ok(())
}

/// Samples the replicas every 200 ms for `hold`, failing at the first value other than
/// `expected`.
async fn replicas_held(sandbox: &Sandbox, expected: i32, hold: Duration) -> Result<()> {
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let replicas = sandbox.replicas().await?;
        ensure!(
            replicas == expected,
            "replicas went {expected} -> {replicas} before {hold:?} had passed\n{}",
            sandbox.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
