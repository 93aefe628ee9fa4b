//! The actuator against the Kubernetes API emulator, with the real fetcher, decision service and
//! Prometheus: the seed's scenario and the failure behaviour users rely on.

use std::{process::Command, time::Duration};

use anyhow::{Context as _, Result};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Event};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use promscaler_api::PromScaler;
use promscaler_integration_tests::{
    cluster::sample_app_deployment,
    otlp::OtlpReceiver,
    system::{System, seed_promscaler},
};
use promscaler_kube_emulator::FailRule;
use promscaler_proto::v1::ScalerRef;
use promscaler_sandbox::{
    process::poll_until,
    prometheus::{SEED_QUERY, sample_app_metrics, single_value},
};

/// The value of the series `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

const NS: &str = "default";
/// The seed's sum without the one-minute average: a load change shows at the next scrape.
const INSTANT_QUERY: &str =
    r#"sum(websocket_active_connection_count{app_kubernetes_io_name="sample-app"})"#;
const SCALER: &str = "sample-app-prometheus-scaler";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_scales_2_to_3_records_an_event_and_reports_ready_active() -> Result<()> {
    // Two pods with 70 connections each: the seed query yields 140, and ceil(140 / 50) = 3, as
    // the seed computes.
    let system = scaled_to_three(|yaml| yaml).await?;
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

    // The leader's /metrics carries the trigger's last value, as KEDA's keda_scaler_metrics_value.
    let metrics = system.actuators[0].metrics_text().await?;
    let scaler = format!(r#"namespace="{NS}",promscaler="{SCALER}""#);
    for (series, want) in [
        (
            format!(r#"promscaler_actuator_scaler_metric_value{{{scaler},trigger="connections"}}"#),
            140.0,
        ),
        (
            format!(r#"promscaler_actuator_scaler_active{{{scaler},trigger="connections"}}"#),
            1.0,
        ),
        (
            format!(r#"promscaler_actuator_scaler_desired_replicas{{{scaler}}}"#),
            3.0,
        ),
        (
            format!(r#"promscaler_actuator_scaler_error{{{scaler}}}"#),
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&metrics, &series),
            Some(want),
            "{series} in\n{metrics}"
        );
    }
    // What the queries cost upstream, as Prometheus reported it (`stats=all`): per PromScaler
    // on the leader's /metrics and in GetScaler.
    let samples = sample(
        &metrics,
        &format!("promscaler_actuator_scaler_upstream_samples_total{{{scaler}}}"),
    );
    assert!(samples.is_some_and(|n| n > 0.0), "{metrics}");
    let mut client = system.actuator_client(0)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    let status = client.get_scaler(reference).await?.into_inner();
    let last = status
        .samples_last_interval
        .context("GetScaler reports no samples")?;
    assert!(last > 0, "{status:?}");
    assert!(status.samples_total >= last, "{status:?}");
    // At the seed's 1 s polling interval, an hour is 3,600 evaluations.
    assert_eq!(status.samples_per_hour, Some(last as f64 * 3600.0));

    // The decision service counted the Decide calls, among them the one that scaled up.
    let metrics = system.decision.metrics_text().await?;
    let ok = sample(
        &metrics,
        r#"promscaler_decision_requests_total{rpc="decide",result="ok"}"#,
    );
    assert!(ok.is_some_and(|n| n >= 1.0), "{metrics}");
    let up = sample(
        &metrics,
        r#"promscaler_decision_decisions_total{direction="up",fallback="false"}"#,
    );
    assert!(up.is_some_and(|n| n >= 1.0), "{metrics}");

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
    let query = INSTANT_QUERY;
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

/// The seed's system scaled to 3 by an actuator named "actuator-a"; `edit` changes the
/// PromScaler's YAML first.
/// Waits until the seed PromScaler's condition `type_` has `status`, and returns it.
async fn condition_once(
    system: &System,
    type_: &str,
    status: &str,
) -> Result<promscaler_api::Condition> {
    let scaler = system
        .cluster
        .wait_condition(NS, SCALER, type_, status, WAIT)
        .await
        .with_context(|| system.logs())?;
    scaler
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .with_context(|| format!("no {type_} condition"))
}

/// Calls Reconcile on actuator `index` for the seed's PromScaler until `accept` takes the
/// decision.
async fn reconcile_until<T>(
    system: &System,
    index: usize,
    what: &str,
    accept: impl Fn(promscaler_proto::v1::DecisionEvent) -> Option<T>,
) -> Result<T> {
    let client = system.actuator_client(index)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    poll_until(what, WAIT, || {
        let mut client = client.clone();
        let reference = reference.clone();
        let accept = &accept;
        async move {
            let event = client.reconcile(reference).await?.into_inner();
            Ok(accept(event))
        }
    })
    .await
    .with_context(|| system.logs())
}

async fn scaled_to_three(edit: impl Fn(String) -> String) -> Result<System> {
    let mut system = System::start(&[70.0, 70.0]).await?;
    system.scale_seed_to_three(edit).await?;
    Ok(system)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_applies_after_failure_threshold_when_prometheus_stops() -> Result<()> {
    let mut system = scaled_to_three(|yaml| {
        format!("{yaml}  fallback:\n    failureThreshold: 2\n    replicas: 5\n")
    })
    .await?;
    system.prometheus.stop();
    // More than 2 consecutive failures: the failing trigger proposes fallback.replicas.
    system
        .cluster
        .wait_replicas(NS, "sample-app", 5, WAIT)
        .await
        .with_context(|| system.logs())?;
    let scaler = system
        .cluster
        .wait_condition(NS, SCALER, "Fallback", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    let health = scaler.status.unwrap_or_default().health;
    let connections = health
        .get("connections")
        .context("health of trigger connections")?;
    assert_eq!(connections.status.as_deref(), Some("Failing"));
    assert!(
        connections.number_of_failures.unwrap_or(0) > 2,
        "{connections:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_trigger_without_fallback_never_scales_down() -> Result<()> {
    let mut system = scaled_to_three(|yaml| yaml).await?;
    system.prometheus.stop();
    let scaler = system
        .cluster
        .wait_condition(NS, SCALER, "Ready", "False", WAIT)
        .await
        .with_context(|| system.logs())?;
    let status = scaler.status.unwrap_or_default();
    // KEDA's condition reason (what `kubectl get so` users' dashboards read) ...
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?;
    assert_eq!(ready.reason.as_deref(), Some("TriggerError"), "{ready:?}");
    let message = ready.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with(
            "Triggers defined in ScaledObject are not working correctly: connections: "
        ),
        "{message}"
    );
    // ... and KEDA's Event reason for it.
    let events: Api<Event> = Api::namespaced(system.cluster.client(), NS);
    poll_until("a KEDAScalerFailed event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("KEDAScalerFailed") && e.type_.as_deref() == Some("Warning")
        }))
    })
    .await
    .with_context(|| system.logs())?;
    let health = status.health;
    assert_eq!(
        health.get("connections").and_then(|h| h.status.as_deref()),
        Some("Failing")
    );
    // Several polling intervals later the replicas are still 3 (HPA: an invalid metric blocks
    // scale-down), and every decision said so.
    let mut client = system.actuator_client(0)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    let decided = poll_until("three more decisions", WAIT, || {
        let mut client = client.clone();
        let reference = reference.clone();
        async move {
            let status = client.get_scaler(reference).await?.into_inner();
            let decision = status.last_decision.and_then(|e| e.decision);
            Ok(decision.filter(|d| {
                d.triggers
                    .first()
                    .is_some_and(|t| t.consecutive_failures >= 3)
            }))
        }
    })
    .await?;
    assert_eq!(decided.desired_replicas, 3, "{:?}", decided.explanation);
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        3
    );
    let status = client.get_scaler(reference).await?.into_inner();
    assert_eq!(status.desired_replicas, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetcher_down_holds_replicas_and_reports_not_ready() -> Result<()> {
    let mut system = scaled_to_three(|yaml| yaml).await?;
    system.fetcher.kill();
    let ready = condition_once(&system, "Ready", "False").await?;
    assert_eq!(
        ready.reason.as_deref(),
        Some("MetricsFetcherUnavailable"),
        "{ready:?}"
    );
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        3
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_the_lease_and_does_not_scale_down_at_once() -> Result<()> {
    // A 60 s scale-down window: a successor that forgot the history would scale down at once.
    // The instantaneous sum, so the lower load shows at the next scrape.
    let query = INSTANT_QUERY;
    let mut system = System::start(&[70.0, 70.0]).await?;
    system
        .scale_to_three(query, |yaml| {
            yaml.replace(
                "stabilizationWindowSeconds: 0",
                "stabilizationWindowSeconds: 60",
            )
        })
        .await?;
    let standby = system.start_actuator("actuator-b").await?;
    // A standby exports no per-PromScaler series: it has no current decisions.
    let metrics = system.actuators[standby].metrics_text().await?;
    assert!(
        !metrics.contains("promscaler_actuator_scaler_metric_value{"),
        "{metrics}"
    );
    // Its ActuatorService names the leader instead of serving decisions it does not have.
    let mut on_standby = system.actuator_client(standby)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    let status = poll_until("the standby to know the leader", WAIT, || {
        let mut client = on_standby.clone();
        let reference = reference.clone();
        async move {
            let status = client.get_scaler(reference).await?.into_inner();
            Ok((!status.leader.is_empty()).then_some(status))
        }
    })
    .await
    .with_context(|| system.logs())?;
    assert_eq!(status.leader, "actuator-a");
    assert_eq!(status.last_decision, None);
    assert!(!status.conditions.is_empty(), "conditions come from status");
    let refused = on_standby
        .watch_decisions(promscaler_proto::v1::WatchDecisionsRequest { namespace: None })
        .await
        .err()
        .context("a standby streamed decisions")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("pod actuator-a"), "{refused}");

    // The leader dies without releasing its Lease; load drops to one replica's worth.
    system.actuators[0].kill();
    system.app.set(sample_app_metrics(&[20.0, 20.0]));
    let leases: Api<Lease> = Api::namespaced(system.cluster.client(), NS);
    poll_until("actuator-b to hold the Lease", WAIT, || async {
        let lease = leases.get("promscaler-actuator").await?;
        let holder = lease.spec.and_then(|s| s.holder_identity);
        Ok((holder.as_deref() == Some("actuator-b")).then_some(()))
    })
    .await
    .with_context(|| system.logs())?;

    // The new leader decides, and its decision is held by the scale-down window it rebuilt.
    let decision = reconcile_until(
        &system,
        standby,
        "a decision by actuator-b on the lower load",
        |event| {
            event
                .decision
                .filter(|d| d.triggers.first().and_then(|t| t.value) == Some(40.0))
        },
    )
    .await?;
    assert_eq!(decision.desired_replicas, 3, "{:?}", decision.explanation);
    assert!(
        decision.explanation.iter().any(|l| l.contains("stabiliz")),
        "{:?}",
        decision.explanation
    );
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        3
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_down_when_the_polling_interval_outlasts_the_stabilization_window() -> Result<()> {
    // pollingInterval 20 s and a 5 s scale-down window: every tick finds the last
    // recommendation aged out of the window. The HPA then scales down; an engine that took an
    // aged-out history for "no history" would record the current replicas again and hold forever.
    let query = INSTANT_QUERY;
    let mut system = System::start(&[70.0, 70.0]).await?;
    system
        .scale_to_three(query, |yaml| {
            yaml.replace("pollingInterval: 1", "pollingInterval: 20")
                .replace(
                    "stabilizationWindowSeconds: 0",
                    "stabilizationWindowSeconds: 5",
                )
        })
        .await?;

    // The load drops to one replica's worth: the next tick scales down.
    system.app.set(sample_app_metrics(&[20.0, 20.0]));
    system.prometheus.wait_for_value(query, 40.0, WAIT).await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 1, WAIT)
        .await
        .with_context(|| system.logs())?;
    // The tick records its decision after its writes: wait for the one that scaled down.
    let client = system.actuator_client(0)?;
    let decision = poll_until("the scale-down decision", WAIT, || {
        let mut client = client.clone();
        async move {
            let reference = ScalerRef {
                namespace: NS.into(),
                name: SCALER.into(),
            };
            let status = client.get_scaler(reference).await?.into_inner();
            Ok(status
                .last_decision
                .and_then(|e| e.decision)
                .filter(|d| d.desired_replicas == 1))
        }
    })
    .await
    .with_context(|| system.logs())?;
    assert!(
        decision.state.as_ref().is_some_and(|s| s.initialized),
        "the state says it has decided before: {:?}",
        decision.state
    );

    // Back up to three; then the leader dies and the load drops while nobody decides.
    system.app.set(sample_app_metrics(&[70.0, 70.0]));
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    system.actuators[0].kill();
    system.app.set(sample_app_metrics(&[20.0, 20.0]));
    system.prometheus.wait_for_value(query, 40.0, WAIT).await?;

    // A restarted actuator records the current replicas as a recommendation made at its
    // takeover, so it scales down one window later at the earliest, never at once.
    system.start_actuator("actuator-b").await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 1, WAIT)
        .await
        .with_context(|| system.logs())?;
    let leases: Api<Lease> = Api::namespaced(system.cluster.client(), NS);
    let lease = leases
        .get("promscaler-actuator")
        .await?
        .spec
        .context("Lease spec")?;
    assert_eq!(lease.holder_identity.as_deref(), Some("actuator-b"));
    let acquired = lease.acquire_time.context("Lease acquireTime")?;
    let scaled = system
        .cluster
        .scaler(NS, SCALER)
        .await?
        .status
        .unwrap_or_default()
        .last_scale_time
        .context("lastScaleTime")?;
    let after = scaled.0.duration_since(acquired.0).as_secs_f64();
    assert!(
        after >= 5.0,
        "actuator-b scaled down {after:.1} s after taking the Lease, within the 5 s window"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_annotations_hold_and_release_replicas() -> Result<()> {
    let system = scaled_to_three(|yaml| yaml).await?;
    let scalers: Api<PromScaler> = Api::namespaced(system.cluster.client(), NS);
    let annotate = |value: serde_json::Value| {
        let patch = serde_json::json!({ "metadata": { "annotations": { "autoscaling.keda.sh/paused-replicas": value } } });
        let scalers = scalers.clone();
        async move {
            scalers
                .patch(SCALER, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    annotate(serde_json::json!("4")).await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 4, WAIT)
        .await
        .with_context(|| system.logs())?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    annotate(serde_json::Value::Null).await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "False", WAIT)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_restores_the_original_replica_count() -> Result<()> {
    let system = scaled_to_three(|yaml| {
        yaml.replace(
            "  advanced:\n",
            "  advanced:\n    restoreToOriginalReplicaCount: true\n",
        )
    })
    .await?;
    let scaler = system.cluster.scaler(NS, SCALER).await?;
    assert!(
        scaler
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "promscaler.io/finalizer"),
        "the actuator adds its finalizer"
    );
    let scalers: Api<PromScaler> = Api::namespaced(system.cluster.client(), NS);
    scalers.delete(SCALER, &Default::default()).await?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 2, WAIT)
        .await
        .with_context(|| system.logs())?;
    poll_until("the PromScaler to be gone", WAIT, || async {
        Ok(scalers.get_opt(SCALER).await?.is_none().then_some(()))
    })
    .await
    .with_context(|| system.logs())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_on_scale_is_retried_until_it_lands() -> Result<()> {
    let mut system = System::start(&[70.0, 70.0]).await?;
    // Only the actuator patches /scale, and it starts inside scale_seed_to_three.
    system
        .cluster
        .emulator()
        .faults()
        .fail_next(FailRule::new("/scale", 409).verb("patch").times(2));
    system.scale_seed_to_three(|yaml| yaml).await?;
    assert_eq!(system.cluster.emulator().faults().injected(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tick_is_one_trace_across_the_three_services() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let mut system = System::start_with_env(&[70.0, 70.0], env).await?;
    system.scale_seed_to_three(|yaml| yaml).await?;

    // Some trace holds the actuator's tick, the fetcher's QueryBatch and the decision's Decide,
    // and the two server spans are children of spans in the actuator.
    let trace = poll_until("a trace spanning the three services", WAIT, || {
        let spans = receiver.spans();
        async move {
            let ticks = spans
                .iter()
                .filter(|s| s.service == "promscaler-actuator" && s.name == "tick");
            for tick in ticks {
                let in_trace: Vec<_> = spans
                    .iter()
                    .filter(|s| s.trace_id == tick.trace_id)
                    .collect();
                let query = in_trace.iter().find(|s| {
                    s.service == "promscaler-metrics-fetcher" && s.name.contains("QueryBatch")
                });
                let decide = in_trace
                    .iter()
                    .find(|s| s.service == "promscaler-decision" && s.name.contains("Decide"));
                if let (Some(query), Some(decide)) = (query, decide) {
                    return Ok(Some((
                        (*query).clone(),
                        (*decide).clone(),
                        in_trace.iter().map(|s| (*s).clone()).collect::<Vec<_>>(),
                    )));
                }
            }
            Ok(None)
        }
    })
    .await
    .with_context(|| {
        let actuator_log: String = system.actuators[0]
            .log()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n");
        format!("spans: {:#?}\nactuator:\n{actuator_log}", receiver.spans())
    })?;
    let (query, decide, in_trace) = trace;
    for server_span in [&query, &decide] {
        let parent = in_trace
            .iter()
            .find(|s| s.span_id == server_span.parent_span_id)
            .with_context(|| format!("parent of {server_span:?} not in the trace"))?;
        assert_eq!(
            parent.service, "promscaler-actuator",
            "{server_span:?} ← {parent:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_the_cooldown_before_scaling_to_zero() -> Result<()> {
    let query = INSTANT_QUERY;
    let mut system = System::start(&[30.0]).await?;
    system.prometheus.wait_for_value(query, 30.0, WAIT).await?;
    system.cluster.apply(&sample_app_deployment(NS, 1))?;
    system.start_actuator("actuator-a").await?;
    let yaml = seed_promscaler(NS, &system.prometheus.url(), query, 0)
        .replace("cooldownPeriod: 2", "cooldownPeriod: 8");
    system.cluster.apply(&yaml)?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Active", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    system.start_actuator("actuator-b").await?;

    // The leader dies while the trigger is active; then the load goes away. What it last wrote
    // as lastActiveTime is the activity the successor must not forget.
    let written = system
        .cluster
        .scaler(NS, SCALER)
        .await?
        .status
        .and_then(|s| s.last_active_time)
        .context("the leader wrote no lastActiveTime")?;
    system.actuators[0].kill();
    system.app.set(sample_app_metrics(&[0.0]));
    system.prometheus.wait_for_value(query, 0.0, WAIT).await?;

    // The successor scales to zero, but only a full cooldown after the activity it could not
    // rule out (the last active write, or its takeover): never at once.
    system
        .cluster
        .wait_replicas(NS, "sample-app", 0, WAIT)
        .await
        .with_context(|| system.logs())?;
    let status = system
        .cluster
        .scaler(NS, SCALER)
        .await?
        .status
        .unwrap_or_default();
    let last_active = status.last_active_time.context("lastActiveTime")?;
    let scaled = status.last_scale_time.context("lastScaleTime")?;
    assert!(
        last_active.0 >= written.0,
        "the successor kept the activity up to the failover: lastActiveTime {last_active:?}, \
         the leader had written {written:?}"
    );
    assert!(
        scaled.0.duration_since(last_active.0).as_secs_f64() >= 8.0,
        "scaled to zero {:?} after lastActiveTime, before the 8 s cooldown",
        scaled.0.duration_since(last_active.0)
    );
    let leases: Api<Lease> = Api::namespaced(system.cluster.client(), NS);
    let holder = leases
        .get("promscaler-actuator")
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("actuator-b"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_over_grpc_set_and_clear_the_annotation() -> Result<()> {
    let system = scaled_to_three(|yaml| yaml).await?;
    let mut client = system.actuator_client(0)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    let paused = client.pause(reference.clone()).await?.into_inner();
    assert!(paused.paused);
    let scaler = system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    let annotations = scaler.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("promscaler.io/paused").map(String::as_str),
        Some("true")
    );

    // While paused, load changes do not move the replicas.
    system.app.set(sample_app_metrics(&[150.0, 150.0]));
    poll_until("the query to rise above 200", WAIT, || async {
        let value = single_value(&system.prometheus.query(SEED_QUERY).await?);
        Ok(value.filter(|v| *v > 200.0))
    })
    .await?;
    let event = client.reconcile(reference.clone()).await?.into_inner();
    let decision = event.decision.context("a decision")?;
    assert_eq!(decision.desired_replicas, 3, "{:?}", decision.explanation);
    assert!(
        decision
            .conditions
            .iter()
            .any(|c| c.r#type == "Paused" && c.status == "True"),
        "{:?}",
        decision.conditions
    );
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        3
    );

    let resumed = client.resume(reference.clone()).await?.into_inner();
    assert!(!resumed.paused);
    system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "False", WAIT)
        .await
        .with_context(|| system.logs())?;
    let not_found = client
        .get_scaler(ScalerRef {
            namespace: NS.into(),
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_found.code(), tonic::Code::NotFound);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_paused_1_stops_scaling_and_get_scaler_reports_paused() -> Result<()> {
    // Go's strconv.ParseBool reads "1" as true: the decision pauses, and ActuatorService must say
    // so too (it once compared the annotation with "true" on its own).
    let system = scaled_to_three(|yaml| yaml).await?;
    let scalers: Api<PromScaler> = Api::namespaced(system.cluster.client(), NS);
    let annotate = |value: serde_json::Value| {
        let patch = serde_json::json!({ "metadata": { "annotations": { "autoscaling.keda.sh/paused": value } } });
        let scalers = scalers.clone();
        async move {
            scalers
                .patch(SCALER, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    let mut client = system.actuator_client(0)?;
    let reference = ScalerRef {
        namespace: NS.into(),
        name: SCALER.into(),
    };
    assert!(
        !client
            .get_scaler(reference.clone())
            .await?
            .into_inner()
            .paused
    );

    annotate(serde_json::json!("1")).await?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    // The decision paused on what the watch cache holds, and GetScaler reads the same cache.
    let status = client.get_scaler(reference.clone()).await?.into_inner();
    assert!(status.paused, "{status:?}");
    let listed = client
        .list_scalers(promscaler_proto::v1::ListScalersRequest {
            namespace: NS.into(),
        })
        .await?
        .into_inner();
    assert!(
        listed.scalers.iter().all(|s| s.paused),
        "{:?}",
        listed.scalers
    );
    // While paused, load changes do not move the replicas.
    system.app.set(sample_app_metrics(&[150.0, 150.0]));
    poll_until("the query to rise above 200", WAIT, || async {
        let value = single_value(&system.prometheus.query(SEED_QUERY).await?);
        Ok(value.filter(|v| *v > 200.0))
    })
    .await?;
    let event = client.reconcile(reference.clone()).await?.into_inner();
    let decision = event.decision.context("a decision")?;
    assert_eq!(decision.desired_replicas, 3, "{:?}", decision.explanation);

    annotate(serde_json::json!("0")).await?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Paused", "False", WAIT)
        .await
        .with_context(|| system.logs())?;
    assert!(!client.get_scaler(reference).await?.into_inner().paused);
    Ok(())
}

/// A bearer-token gate in front of the real Prometheus: the first request on each connection
/// must carry `Authorization: Bearer <token>`, else 401 and the connection closes. Counts the
/// connections let through.
async fn bearer_gate(
    upstream: std::net::SocketAddr,
    token: &'static str,
) -> Result<(
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
)> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let admitted = Arc::new(AtomicUsize::new(0));
    let count = admitted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains(&format!("authorization: bearer {token}")) {
                    let body = r#"{"status":"error","errorType":"unauthorized","error":"bearer token required"}"#;
                    let reply = format!(
                        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(reply.as_bytes()).await;
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&head).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    Ok((addr, admitted))
}

/// A PromScalerAuthentication's bearer token goes from a Secret, through the actuator's Secret
/// cache and the fetcher, to the server. Helm release Secrets are never cached (on a cluster with
/// many releases they would dominate the actuator's memory), and referring to one says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_from_a_secret_reaches_prometheus_and_helm_release_secrets_are_not_cached()
-> Result<()> {
    let mut system = System::start(&[70.0, 70.0]).await?;
    system
        .prometheus
        .wait_for_value(SEED_QUERY, 140.0, WAIT)
        .await?;
    let (gate, admitted) = bearer_gate(system.prometheus.addr(), "s3cret").await?;
    system.cluster.apply(&sample_app_deployment(NS, 2))?;
    // The token in a Secret of Helm's release type: same data, but never watched.
    system.cluster.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: release-secret\n  namespace: {NS}\ntype: helm.sh/release.v1\nstringData:\n  token: s3cret\n"
    ))?;
    system.cluster.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prom-token\n  namespace: {NS}\ntype: Opaque\nstringData:\n  token: s3cret\n"
    ))?;
    let auth = |secret: &str| {
        format!(
            "apiVersion: promscaler.io/v1alpha1\nkind: PromScalerAuthentication\nmetadata:\n  name: prom-auth\n  namespace: {NS}\nspec:\n  secretTargetRef:\n    - parameter: bearerToken\n      name: {secret}\n      key: token\n"
        )
    };
    system.cluster.apply(&auth("release-secret"))?;
    // A failed evaluation waits ten minutes before the next: only the change of credentials
    // below can bring the next one within this test's minute.
    system
        .start_actuator_with(
            "actuator-a",
            &["--min-backoff", "10m", "--max-backoff", "10m"],
        )
        .await?;
    let yaml = seed_promscaler(NS, &format!("http://{gate}"), SEED_QUERY, 1)
        .replace(
            "        activationThreshold: \"0\"\n",
            "        activationThreshold: \"0\"\n        authModes: bearer\n      authenticationRef:\n        name: prom-auth\n",
        );
    system.cluster.apply(&yaml)?;

    let ready = condition_once(&system, "Ready", "False").await?;
    let message = ready.message.unwrap_or_default();
    assert!(
        message.contains("Secret default/release-secret") && message.contains("helm.sh/release.v1"),
        "{message}"
    );
    assert_eq!(ready.reason.as_deref(), Some("SecretNotFound"));
    assert_eq!(
        system.cluster.deployment_replicas(NS, "sample-app").await?,
        2
    );
    assert_eq!(admitted.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Pointing the authentication at an ordinary Secret: the PromScaler is evaluated at once
    // (not after its backoff), and the token reaches the server.
    system.cluster.apply(&auth("prom-token"))?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Ready", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    assert!(admitted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // Nowhere in the services' logs.
    assert!(!system.logs().contains("s3cret"), "{}", system.logs());
    Ok(())
}
