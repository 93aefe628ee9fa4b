//! gRPC over mutual TLS between the services (`--grpc-tls-*` on the servers, `--peer-tls-*` on
//! the actuator), over real sockets with the real binaries: the seed's scenario end to end, and
//! what a TLS port refuses.

use std::time::Duration;

use anyhow::{Context as _, Result};
use promscaler_integration_tests::{
    pki::{ACTUATOR_IDENTITY, INTRUDER_IDENTITY, Pki},
    services::{Kind, ServiceProcess},
    system::{STARTUP, System},
};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const NS: &str = "default";
const SCALER: &str = "sample-app-prometheus-scaler";
const WAIT: Duration = Duration::from_secs(60);

/// Every gRPC connection (actuator → fetcher, actuator → decision over `dns:///`, the test → each
/// service) is mutual TLS, and the seed still scales 2 → 3 and reports Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scales_with_mutual_tls_between_the_services() -> Result<()> {
    let mut system = System::start_with_tls(&[70.0, 70.0], Pki::new()?).await?;
    assert!(system.fetcher.grpc_url().starts_with("https://"));
    system.scale_seed_to_three(|yaml| yaml).await?;
    system
        .cluster
        .wait_condition(NS, SCALER, "Ready", "True", WAIT)
        .await
        .with_context(|| system.logs())?;
    for service in [&system.fetcher, &system.decision, &system.actuators[0]] {
        let log = service.log();
        assert!(log.contains("grpc_tls=true"), "{log}");
    }
    Ok(())
}

async fn health(channel: Channel) -> Result<(), String> {
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(Duration::from_secs(10), client.check(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!("{status}")),
        Err(_) => Err("no answer within 10 s".to_owned()),
    }
}

fn endpoint(url: &str, tls: Option<ClientTlsConfig>) -> Result<Channel> {
    let mut endpoint =
        Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect_lazy())
}

/// A TLS port with client certificates required answers only clients that verify it and present
/// a certificate its CA signed: not plaintext, not anonymous TLS, not another CA's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_port_refuses_plaintext_anonymous_and_foreign_clients() -> Result<()> {
    let pki = Pki::new()?;
    let stranger = Pki::new()?;
    let mut decision = ServiceProcess::start(Kind::Decision, &pki.server_args(), &[])?
        .with_client_tls(pki.client_tls(true)?);
    decision.wait_serving(STARTUP).await?;
    let https = decision.grpc_url();
    let http = https.replace("https://", "http://");

    health(decision.channel()?)
        .await
        .map_err(anyhow::Error::msg)
        .context("a client with the CA and a client certificate")?;
    let refused = [
        ("plaintext", endpoint(&http, None)?),
        (
            "TLS without a client certificate",
            endpoint(&https, Some(pki.client_tls(false)?))?,
        ),
        (
            "a client certificate from another CA",
            endpoint(
                &https,
                Some(stranger.client_tls(true)?.ca_certificate(
                    tonic::transport::Certificate::from_pem(std::fs::read(pki.ca())?),
                )),
            )?,
        ),
        (
            "a client that trusts another CA",
            endpoint(&https, Some(stranger.client_tls(true)?))?,
        ),
    ];
    for (who, channel) in refused {
        let outcome = health(channel).await;
        assert!(outcome.is_err(), "{who} was answered");
    }
    // Still serving the right client after the refusals.
    health(decision.channel()?)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// A certificate flag pointing at the key (a common slip) stops the service at start with the
/// flag, the file and what is wrong, before it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_certificate_and_key_stop_the_service_at_start() -> Result<()> {
    let pki = Pki::new()?;
    let dir = pki.dir().display().to_string();
    let args: Vec<String> = [
        "--grpc-tls-cert".to_owned(),
        format!("{dir}/server.key"),
        "--grpc-tls-key".to_owned(),
        format!("{dir}/server.crt"),
    ]
    .into();
    let (status, log) = ServiceProcess::start_expecting_exit(Kind::Fetcher, &args, &[])?;
    assert!(!status.success(), "{status}");
    assert!(log.contains("--grpc-tls-cert"), "{log}");
    assert!(log.contains("server.key"), "{log}");
    assert!(log.contains("no PEM certificate"), "{log}");
    Ok(())
}

/// A request to the fetcher that names the caller `namespace`, for a server nothing listens on:
/// any answer in-band proves the call got through.
fn claimed_query(namespace: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        source: Some(pb::PrometheusSource {
            server_address: "http://127.0.0.1:9".into(),
            ..Default::default()
        }),
        query: "up".into(),
        caller: Some(pb::ScalerRef {
            namespace: namespace.into(),
            name: "borrowed".into(),
        }),
        ..Default::default()
    }
}

/// Issue 17 item 6: with `--allowed-client-identities`, a client whose certificate the CA signed
/// but whose SAN is not the actuator's cannot call the fetcher (so it cannot claim another
/// namespace), while the actuator's certificate is answered; health checks stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetcher_answers_only_the_pinned_actuator_identity() -> Result<()> {
    let pki = Pki::new()?;
    let mut args = pki.server_args();
    args.push(format!("--allowed-client-identities={ACTUATOR_IDENTITY}"));
    let mut fetcher =
        ServiceProcess::start(Kind::Fetcher, &args, &[])?.with_client_tls(pki.client_tls(true)?);
    fetcher.wait_serving(STARTUP).await?;
    let https = fetcher.grpc_url();

    let mut actuator = MetricsFetcherServiceClient::new(fetcher.channel()?);
    let answered = tokio::time::timeout(
        Duration::from_secs(30),
        actuator.query(claimed_query("team-a")),
    )
    .await
    .context("the actuator's query")?
    .map_err(|s| anyhow::anyhow!("the actuator's certificate was refused: {s}"))?;
    assert!(answered.into_inner().result.is_some());

    let intruder = endpoint(&https, Some(pki.client_tls_as(Some("intruder"))?))?;
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        MetricsFetcherServiceClient::new(intruder.clone()).query(claimed_query("team-b")),
    )
    .await
    .context("the intruder's query")?
    .expect_err("a certificate with another SAN was answered");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("DNS:{INTRUDER_IDENTITY}")),
        "{status:?}"
    );
    assert!(
        status.message().contains("--allowed-client-identities"),
        "{status:?}"
    );
    // Health reveals nothing and stays open to every client the CA admits.
    health(intruder).await.map_err(anyhow::Error::msg)?;
    let log = fetcher.log();
    assert!(log.contains("client identity not allowed"), "{log}");
    Ok(())
}
