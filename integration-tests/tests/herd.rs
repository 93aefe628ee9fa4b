//! A thundering herd on AMP, end to end: a thousand PromScalers created at once, each with its
//! own query, against an AMP-like gateway (SigV4 verified by botocore against moto's STS) that
//! answers 429 ThrottlingException above 50 requests per second, as AMP does above a
//! workspace's query rate. The fetcher's budget (`--upstream-qps 40`) spreads the herd: every
//! PromScaler reaches Ready=True within three polling intervals and no query is throttled.
//!
//! Real processes throughout: the fetcher, the decision service and the actuator as binaries,
//! the API emulator, Prometheus, moto and the gateway. Needs `PROMSCALER_TEST_PYTHON`.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Api;
use kube::api::ListParams;
use promscaler_api::PromScaler;
use promscaler_integration_tests::cluster::Cluster;
use promscaler_integration_tests::irsa::{Services, irsa_env};
use promscaler_sandbox::gateway::AmpGateway;
use promscaler_sandbox::process::test_python;
use promscaler_sandbox::prometheus::{Prometheus, SEED_QUERY, ScrapeTarget};
use promscaler_sandbox::sts::Sts;

const REGION: &str = "ap-northeast-2";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/promscaler-metrics-fetcher";
const NAMESPACE: &str = "herd";
/// PromScalers created at once.
const SCALERS: usize = 1000;
/// Their polling interval: a thousand queries per 30 s is 33 per second, within the budget.
const POLLING_SECONDS: u64 = 30;
/// The gateway's limit, and the fetcher's budget below it.
const GATEWAY_RPS: f64 = 50.0;
const BUDGET_QPS: &str = "40";

fn objects(server: &str) -> String {
    let mut yaml =
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n---\n");
    for i in 0..SCALERS {
        // 140 / 14 = 10 against a threshold of 50: one replica, so nothing scales and the test
        // is about the herd alone. `+ 0 * i` makes every query distinct (and unfusable).
        yaml.push_str(&format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
    spec:
      containers:
        - name: app
          image: sample-app:1.0
---
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: app-{i}
  namespace: {NAMESPACE}
spec:
  scaleTargetRef:
    name: app-{i}
  minReplicaCount: 1
  maxReplicaCount: 5
  pollingInterval: {POLLING_SECONDS}
  triggers:
    - type: prometheus
      metadata:
        serverAddress: {server}
        query: '({SEED_QUERY}) / 14 + 0 * {i}'
        threshold: "50"
        identityOwner: operator
        awsRegion: {REGION}
---
"#
        ));
    }
    yaml
}

/// PromScalers whose Ready condition is True, and the first other Ready message seen.
async fn ready(cluster: &Cluster) -> Result<(usize, Option<String>)> {
    let api: Api<PromScaler> = Api::namespaced(cluster.client(), NAMESPACE);
    let list =
        tokio::time::timeout(Duration::from_secs(20), api.list(&ListParams::default())).await??;
    let mut count = 0;
    let mut other = None;
    for scaler in &list.items {
        let condition = scaler
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        match condition {
            Some(c) if c.status == "True" => count += 1,
            Some(c) if other.is_none() => {
                other = Some(format!("{}: {:?} {:?}", c.status, c.reason, c.message));
            }
            _ => {}
        }
    }
    Ok((count, other))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_promscalers_created_at_once_under_amps_rate_limit_all_become_ready()
-> Result<()> {
    let python = test_python()?;
    let app = ScrapeTarget::sample_app(&[70.0, 70.0]).await?;
    let prometheus = Prometheus::start(&[app.addr()]).await?;
    prometheus
        .wait_for_value(SEED_QUERY, 140.0, Duration::from_secs(60))
        .await?;
    let sts = Sts::start(&python).await?;
    let gateway = AmpGateway::start(&python, &prometheus.url(), &sts.endpoint(), REGION).await?;
    gateway.set_rate_limit(GATEWAY_RPS).await?;
    let cluster = Cluster::start(Duration::from_millis(200)).await?;

    let dir = tempfile::tempdir()?;
    let irsa = irsa_env(dir.path(), ROLE_ARN, REGION, &sts.endpoint())?;
    // The actuator's defaults: 256 ticks at once and a 10 s RPC deadline, more than the
    // longest queue they can build at 40 requests per second (6.4 s).
    let Services {
        fetcher,
        decision: _decision,
        actuator,
    } = Services::start(
        &cluster,
        &irsa,
        &[format!("--upstream-qps={BUDGET_QPS}")],
        "herd",
    )
    .await?;

    // The herd: every object in one apply.
    cluster.apply(&objects(&gateway.workspace_url()))?;
    let logs = || {
        format!(
            "--- fetcher ---\n{}\n--- actuator ---\n{}\n--- gateway ---\n{}",
            fetcher.log_tail(),
            actuator.log_tail(),
            gateway.log_tail()
        )
    };
    // Listing a thousand PromScalers is not free: look once a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * POLLING_SECONDS);
    loop {
        let (count, other) = ready(&cluster).await?;
        if count == SCALERS {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{count} of {SCALERS} PromScalers Ready after three polling intervals, e.g. \
                 {other:?}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let stats = gateway.stats().await?;
    assert_eq!(
        stats.throttled,
        0,
        "the gateway throttled: {stats:?}\n{}",
        logs()
    );
    assert!(stats.forwarded >= SCALERS as u64, "{stats:?}");
    let metrics = fetcher.metrics_text().await?;
    let throttled: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("promscaler_fetcher_queries_total") && l.contains("throttled"))
        .collect();
    assert!(throttled.is_empty(), "throttled queries: {throttled:?}");
    // The budget did the spreading: most of the herd waited for a token.
    let waited = metrics
        .lines()
        .find(|l| l.starts_with("promscaler_fetcher_upstream_queue_wait_seconds_count"))
        .context("no request waited for the budget")?;
    let waited: f64 = waited.rsplit(' ').next().unwrap_or("0").parse()?;
    assert!(
        waited >= (SCALERS / 2) as f64,
        "only {waited} requests waited"
    );
    Ok(())
}
