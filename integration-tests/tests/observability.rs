//! The chart's dashboard and alerts against real data: a second, real Prometheus scrapes the
//! three services' /metrics while the seed's scenario runs, and evaluates the alerts of
//! `charts/promscaler/files/alerts.yaml` (durations set to 0 so they fire at once). The test
//! creates each alert's condition in turn — a PromScaler capped below what the load asks, the
//! app's Prometheus stopped (failing queries, fallback), a herd over the fetcher's budget, the
//! fetcher killed, the actuator killed — and sees each alert fire; on the way, every query of
//! every dashboard panel returns data. `promtool check rules` accepts the file as shipped.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_integration_tests::cluster::repo_root;
use promscaler_integration_tests::system::{System, seed_promscaler};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use promscaler_sandbox::process::poll_until;
use promscaler_sandbox::prometheus::{Prometheus, SEED_QUERY};

const WAIT: Duration = Duration::from_secs(90);

/// The shipped rules with every `for` set to 0s: each alert fires as soon as its condition holds.
fn rules_firing_at_once() -> Result<String> {
    let text = std::fs::read_to_string(repo_root().join("charts/promscaler/files/alerts.yaml"))?;
    let mut rules: serde_yaml::Value = serde_yaml::from_str(&text)?;
    for group in rules["groups"].as_sequence_mut().context("groups")? {
        for rule in group["rules"].as_sequence_mut().context("rules")? {
            rule["for"] = serde_yaml::Value::from("0s");
        }
    }
    Ok(serde_yaml::to_string(&rules)?)
}

/// Every panel query of the dashboard, with the template variables set to "all".
fn dashboard_queries() -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(repo_root().join("charts/promscaler/files/dashboard.json"))?;
    let dashboard: serde_json::Value = serde_json::from_str(&text)?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().context("expr")?;
            let expr = expr
                .replace("$namespace", ".*")
                .replace("$promscaler", ".*")
                .replace("$__rate_interval", "1m");
            queries.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    Ok(queries)
}

fn has_data(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.pointer("/data/result").cloned())
        .is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty()))
}

/// Removes from `pending` the panel queries that return data now.
async fn answered(ops: &Prometheus, pending: &mut BTreeSet<(String, String)>) -> Result<()> {
    let mut answered = Vec::new();
    for (panel, expr) in pending.iter() {
        if has_data(&ops.query(expr).await?) {
            answered.push((panel.clone(), expr.clone()));
        }
    }
    for a in answered {
        pending.remove(&a);
    }
    Ok(())
}

async fn wait_firing(ops: &Prometheus, alert: &str, system: &System) -> Result<()> {
    let firing = poll_until(&format!("alert {alert} firing"), WAIT, || async {
        let firing = ops.firing_alerts().await?;
        Ok(firing.iter().any(|a| a == alert).then_some(()))
    })
    .await;
    if let Err(e) = firing {
        let now = ops.firing_alerts().await.unwrap_or_default();
        bail!("{e:#}; firing: {now:?}\n{}", system.logs());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_has_data_and_every_alert_fires_on_its_condition() -> Result<()> {
    // promtool accepts the rules as shipped.
    let file = repo_root().join("charts/promscaler/files/alerts.yaml");
    let check = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .await
        .context("promtool (Debian's prometheus package) is not on the PATH")?;
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A budget of 5 requests/s with a short queue, so the herd below is refused.
    let env = vec![
        ("PROMSCALER_UPSTREAM_QPS", "5".to_owned()),
        ("PROMSCALER_UPSTREAM_BURST", "2".to_owned()),
        ("PROMSCALER_UPSTREAM_MAX_QUEUE_WAIT", "2s".to_owned()),
    ];
    let mut system = System::start_with_env(&[70.0, 70.0], env).await?;
    // The seed, with a fallback of 2 replicas after one failure.
    system
        .scale_seed_to_three(|yaml| {
            yaml.replace(
                "  cooldownPeriod: 2\n",
                "  cooldownPeriod: 2\n  fallback:\n    failureThreshold: 1\n    replicas: 2\n",
            )
        })
        .await?;
    // A second workload capped at 2 replicas where the load asks for 3.
    let capped_app = promscaler_integration_tests::cluster::sample_app_deployment("default", 1)
        .replace("sample-app", "capped-app");
    let capped = seed_promscaler("default", &system.prometheus.url(), SEED_QUERY, 1)
        .replace("sample-app-prometheus-scaler", "capped")
        .replace("name: sample-app", "name: capped-app")
        .replace("maxReplicaCount: 5", "maxReplicaCount: 2");
    system.cluster.apply(&capped_app)?;
    system.cluster.apply(&capped)?;

    let ops = Prometheus::with_rules(
        &[
            system.fetcher.admin_addr(),
            system.decision.admin_addr(),
            system.actuators[0].admin_addr(),
        ],
        &rules_firing_at_once()?,
    )
    .await?;
    // Each panel query must return data at some point of the scenario: a healthy fleet has
    // values, a failing one errors.
    let mut pending: BTreeSet<(String, String)> = dashboard_queries()?.into_iter().collect();
    wait_firing(&ops, "PromScalerAtMaxReplicas", &system).await?;
    answered(&ops, &mut pending).await?;

    // The app's Prometheus goes away: queries fail, the seed falls back, the capped one is
    // not Ready (no fallback).
    system.prometheus.stop();
    for alert in [
        "PromScalerFetcherUpstreamErrors",
        "PromScalerMetricStale",
        "PromScalerInFallback",
        "PromScalerNotReady",
    ] {
        wait_firing(&ops, alert, &system).await?;
    }
    answered(&ops, &mut pending).await?;

    // Herds of distinct queries over the fetcher's budget: refused, the fetcher throttles. Twice:
    // a counter's first value is no increase to rate(); the second herd, after Prometheus has
    // seen the first, is.
    let mut client = MetricsFetcherServiceClient::new(system.fetcher.channel()?);
    for herd in 0..2 {
        let queries = (0..40)
            .map(|i| pb::QueryRequest {
                source: Some(pb::PrometheusSource {
                    server_address: system.prometheus.url(),
                    ..Default::default()
                }),
                query: format!("vector({})", herd * 100 + i),
                caller: Some(pb::ScalerRef {
                    namespace: "default".into(),
                    name: "herd".into(),
                }),
                ..Default::default()
            })
            .collect();
        let answers = client
            .query_batch(pb::QueryBatchRequest { queries })
            .await?
            .into_inner();
        let throttled = answers
            .results
            .iter()
            .filter(|r| {
                matches!(&r.result, Some(pb::query_response::Result::Error(e))
                    if e.kind == pb::QueryErrorKind::Throttled as i32)
            })
            .count();
        assert!(throttled > 0, "the budget refused nothing: {answers:?}");
        poll_until("the refusals scraped", WAIT, || async {
            let text = ops
                .query("promscaler_fetcher_upstream_queue_refusals_total")
                .await?;
            Ok(has_data(&text).then_some(()))
        })
        .await?;
    }
    wait_firing(&ops, "PromScalerFetcherThrottled", &system).await?;

    answered(&ops, &mut pending).await?;

    // The fetcher dies: the actuator cannot reach it.
    system.fetcher.kill();
    wait_firing(&ops, "PromScalerPeerUnreachable", &system).await?;
    answered(&ops, &mut pending).await?;
    assert!(
        pending.is_empty(),
        "panel queries that never had data: {pending:#?}"
    );

    // The actuator dies: nobody leads.
    system.actuators[0].kill();
    wait_firing(&ops, "PromScalerNoActuatorLeader", &system).await?;
    Ok(())
}
