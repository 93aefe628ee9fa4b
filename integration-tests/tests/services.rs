//! The three services as real processes: they serve grpc.health.v1 and reflection, expose
//! /live, /ready and /metrics, stop cleanly on SIGTERM, and carry W3C trace context.

use std::time::Duration;

use anyhow::{Context as _, Result};
use promscaler_integration_tests::{
    cluster::Cluster,
    otlp::OtlpReceiver,
    services::{Kind, ServiceProcess},
};
use promscaler_sandbox::process::{http, poll_until};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const STARTUP: Duration = Duration::from_secs(30);

async fn reflected_services(service: &ServiceProcess) -> Result<Vec<String>> {
    let mut client = ServerReflectionClient::new(service.channel()?);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = tokio::time::timeout(
        Duration::from_secs(10),
        client.server_reflection_info(tokio_stream::iter([request])),
    )
    .await??
    .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await??
        .context("reflection stream ended without a response")?;
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => anyhow::bail!("unexpected reflection response {other:?}"),
    }
}

async fn get(service: &ServiceProcess, path: &str) -> Result<(u16, String)> {
    tokio::time::timeout(
        Duration::from_secs(10),
        http(service.admin_addr(), "GET", path, ""),
    )
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_serve_health_reflection_metrics_and_stop_on_sigterm() -> Result<()> {
    // The actuator needs a Kubernetes API: the emulator, with promscaler's CRDs.
    let cluster = Cluster::start(Duration::from_millis(100)).await?;
    let mut fetcher = ServiceProcess::start(Kind::Fetcher, &[], &[])?;
    let mut decision = ServiceProcess::start(Kind::Decision, &[], &[])?;
    fetcher.wait_serving(STARTUP).await?;
    decision.wait_serving(STARTUP).await?;
    let mut actuator = ServiceProcess::start(
        Kind::Actuator,
        &[
            "--fetcher-addr".into(),
            fetcher.grpc_url(),
            "--decision-addr".into(),
            decision.grpc_url(),
            "--peer-check-interval".into(),
            "200ms".into(),
            "--lease-namespace".into(),
            "default".into(),
        ],
        &[("KUBECONFIG", cluster.kubeconfig().display().to_string())],
    )?;
    actuator.wait_serving(STARTUP).await?;

    for service in [&fetcher, &decision, &actuator] {
        let binary = service.kind().binary();
        let services = reflected_services(service).await?;
        assert!(
            services.iter().any(|s| s == service.kind().grpc_service()),
            "{binary} reflection lists {services:?}"
        );
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{binary} reflection lists {services:?}"
        );

        let (status, _) = get(service, "/live").await?;
        assert_eq!(status, 200, "{binary} /live");
        let (status, metrics) = get(service, "/metrics").await?;
        assert_eq!(status, 200, "{binary} /metrics");
        assert!(
            metrics.contains(&format!("promscaler_build_info{{service=\"{binary}\"")),
            "{binary} /metrics:\n{metrics}"
        );
    }

    // The stateless services are ready once serving; the actuator once its watch caches have
    // synced and both peers serve.
    for service in [&fetcher, &decision, &actuator] {
        poll_until(
            &format!("{} /ready", service.kind().binary()),
            STARTUP,
            || async { Ok((get(service, "/ready").await?.0 == 200).then_some(())) },
        )
        .await
        .with_context(|| service.log_tail())?;
    }

    // Without the decision service the actuator is no longer ready, and says why.
    let status = decision.terminate(Duration::from_secs(5)).await?;
    assert!(status.success(), "decision exited with {status}");
    poll_until("actuator /ready to turn 503", STARTUP, || async {
        Ok((get(&actuator, "/ready").await?.0 == 503).then_some(()))
    })
    .await
    .with_context(|| actuator.log_tail())?;
    assert!(
        actuator
            .log_tail()
            .contains("not ready: a peer is not serving"),
        "{}",
        actuator.log_tail()
    );

    for service in [&mut actuator, &mut fetcher] {
        let status = service.terminate(Duration::from_secs(5)).await?;
        assert!(
            status.success(),
            "{} exited with {status}; log:\n{}",
            service.kind().binary(),
            service.log_tail()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_traceparent_becomes_the_parent_of_the_server_span() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let mut decision = ServiceProcess::start(
        Kind::Decision,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ],
    )?;
    decision.wait_serving(STARTUP).await?;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span_id = "00f067aa0ba902b7";
    let mut client = promscaler_proto::v1::decision_service_client::DecisionServiceClient::new(
        decision.channel()?,
    );
    let mut request = tonic::Request::new(promscaler_proto::v1::DecideRequest::default());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span_id}-01").parse()?,
    );
    // Whatever the answer (an empty request is invalid), the server handled it in a span.
    let _ = tokio::time::timeout(Duration::from_secs(10), client.decide(request)).await?;

    let span = poll_until("the decision span to be exported", STARTUP, || {
        let spans = receiver.spans();
        async move {
            Ok(spans
                .into_iter()
                .find(|s| s.trace_id == trace_id && s.name.contains("Decide")))
        }
    })
    .await
    .with_context(|| {
        format!(
            "spans: {:?}\nlog:\n{}",
            receiver.spans(),
            decision.log_tail()
        )
    })?;

    assert_eq!(span.service, "promscaler-decision");
    assert_eq!(span.parent_span_id, parent_span_id);
    assert_ne!(span.span_id, parent_span_id);
    let status = decision.terminate(Duration::from_secs(5)).await?;
    assert!(
        status.success(),
        "decision exited with {status}; log:\n{}",
        decision.log_tail()
    );
    Ok(())
}
