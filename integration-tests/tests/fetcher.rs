//! End-to-end tests of `promscaler-metrics-fetcher` over real parts (docs/fetcher.md, "Tests"):
//! a real Prometheus scraping the seed's app, moto's server as STS, an AMP-like gateway that
//! verifies SigV4 with botocore against the credentials moto issued, and the fetcher binary as
//! a child process with IRSA environment variables — all on 127.0.0.1.
//!
//! Needs `PROMSCALER_TEST_PYTHON` (a venv with moto[server] and botocore; `cargo xtask test`
//! creates it), `prometheus` on the PATH and the fetcher binary built. Every await is bounded.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::QueryErrorKind;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use promscaler_proto::v1::query_response::Result as QueryResult;
use promscaler_sandbox::gateway::AmpGateway;
use promscaler_sandbox::process::{ServiceProcess, free_port, test_python};
use promscaler_sandbox::prometheus::{
    Prometheus, SEED_MULTI_SERIES_QUERY, SEED_QUERY, ScrapeTarget,
};
use promscaler_sandbox::sts::Sts;
use tonic::transport::Channel;

/// The seed's workspace region.
const REGION: &str = "ap-northeast-2";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/promscaler-metrics-fetcher";
/// Two pods with 70 connections each: the seed's 140 (⇒ 3 replicas at threshold 50).
const PODS: [f64; 2] = [70.0, 70.0];
const EXPECTED: f64 = 140.0;

/// Rigs running at once: each is four processes, on two cores.
static RIGS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

async fn bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .with_context(|| format!("{what} did not finish within {limit:?}"))
}

struct Rig {
    _target: ScrapeTarget,
    prometheus: Prometheus,
    sts: Option<Sts>,
    /// What the fetcher sent to STS, byte for byte (see [`StsRecorder`]).
    sts_wire: StsRecorder,
    gateway: AmpGateway,
    fetcher: ServiceProcess,
    client: MetricsFetcherServiceClient<Channel>,
    /// The fetcher's environment (IRSA), for another fetcher on the same rig.
    env: Vec<(String, String)>,
    _token_dir: tempfile::TempDir,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Rig {
    /// The whole rig; `sts_up = false` points the fetcher at an STS endpoint nobody listens on.
    async fn start(sts_up: bool) -> Result<Self> {
        Self::start_with(sts_up, &[]).await
    }

    /// The rig with extra fetcher flags.
    async fn start_with(sts_up: bool, fetcher_args: &[&str]) -> Result<Self> {
        let permit = bounded("a rig slot", Duration::from_secs(300), RIGS.acquire()).await??;
        let python = test_python()?;
        let target = ScrapeTarget::sample_app(&PODS).await?;
        let prometheus = Prometheus::start(&[target.addr()]).await?;
        let (sts, sts_endpoint) = if sts_up {
            let sts = Sts::start(&python).await?;
            let endpoint = sts.endpoint();
            (Some(sts), endpoint)
        } else {
            (None, format!("http://127.0.0.1:{}", free_port()?))
        };
        let gateway = AmpGateway::start(&python, &prometheus.url(), &sts_endpoint, REGION).await?;
        // The fetcher reaches STS through a recorder (moto ignores session tags).
        let sts_wire = StsRecorder::start(&sts_endpoint).await?;

        let token_dir = tempfile::tempdir()?;
        let token_file = token_dir.path().join("token");
        std::fs::write(
            &token_file,
            "eyJhbGciOiJSUzI1NiJ9.test-service-account-token.sig",
        )?;
        let no_file = token_dir.path().join("absent");
        let env: Vec<(String, String)> = [
            ("AWS_ROLE_ARN", ROLE_ARN.to_owned()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_REGION", REGION.to_owned()),
            (
                "AWS_ENDPOINT_URL_STS",
                if sts_up {
                    sts_wire.endpoint()
                } else {
                    sts_endpoint
                },
            ),
            // Never reach for instance metadata or the machine's AWS files.
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", no_file.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", no_file.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (fetcher, client) = start_fetcher(&env, fetcher_args).await?;
        // Data is in once Prometheus itself answers the seed query with the expected value.
        prometheus
            .wait_for_value(SEED_QUERY, EXPECTED, Duration::from_secs(30))
            .await?;
        Ok(Self {
            _target: target,
            prometheus,
            sts,
            sts_wire,
            gateway,
            fetcher,
            client,
            env,
            _token_dir: token_dir,
            _permit: permit,
        })
    }

    /// A query to the gateway signed with the fetcher's own identity (IRSA).
    fn amp_query(&self, query: &str) -> pb::QueryRequest {
        pb::QueryRequest {
            source: Some(pb::PrometheusSource {
                server_address: self.gateway.workspace_url(),
                auth: Some(pb::UpstreamAuth {
                    method: Some(pb::upstream_auth::Method::Aws(pb::AwsAuth::default())),
                }),
                timeout: Some(secs(10)),
                ..Default::default()
            }),
            query: query.to_owned(),
            caller: Some(pb::ScalerRef {
                namespace: "default".into(),
                name: "sample-app-prometheus-scaler".into(),
            }),
            ..Default::default()
        }
    }

    async fn query(&self, req: pb::QueryRequest) -> Result<pb::QueryResponse> {
        let mut client = self.client.clone();
        let response = bounded("Query", Duration::from_secs(60), client.query(req)).await??;
        Ok(response.into_inner())
    }

    /// Context for a failed assertion: the fetcher's and gateway's logs.
    fn logs(&self) -> String {
        format!(
            "--- fetcher log ---\n{}\n--- gateway log ---\n{}",
            self.fetcher.log_tail(),
            self.gateway.log_tail()
        )
    }
}

/// A TCP relay in front of STS that keeps every byte the fetcher sends: the AssumeRole form
/// bodies, with their session tags, as they were on the wire.
struct StsRecorder {
    addr: std::net::SocketAddr,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StsRecorder {
    async fn start(upstream: &str) -> Result<Self> {
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .context("STS endpoint")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upload = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = client_read.read(&mut buf).await {
                            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            record
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend_from_slice(&buf[..n]);
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let download = async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upload, download);
                });
            }
        });
        Ok(Self { addr, sent, task })
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything sent so far, as text.
    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Drop for StsRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fetcher process with the rig's environment and `extra` flags, and a client of it.
async fn start_fetcher(
    env: &[(String, String)],
    extra: &[&str],
) -> Result<(ServiceProcess, MetricsFetcherServiceClient<Channel>)> {
    let mut args = vec!["--log-level=info,promscaler_metrics_fetcher=debug".to_owned()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let fetcher = ServiceProcess::start("promscaler-metrics-fetcher", &args, env).await?;
    let channel = bounded(
        "gRPC connect",
        Duration::from_secs(10),
        tonic::transport::Endpoint::from_shared(fetcher.grpc_url())?.connect(),
    )
    .await??;
    Ok((fetcher, MetricsFetcherServiceClient::new(channel)))
}

fn secs(s: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: s,
        nanos: 0,
    }
}

fn value(r: &pb::QueryResponse) -> Result<f64> {
    match &r.result {
        Some(QueryResult::Sample(s)) => Ok(s.value),
        other => bail!("expected a sample, got {other:?}"),
    }
}

fn error(r: &pb::QueryResponse) -> Result<(QueryErrorKind, String)> {
    match &r.result {
        Some(QueryResult::Error(e)) => Ok((QueryErrorKind::try_from(e.kind)?, e.message.clone())),
        other => bail!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_credentials_sign_the_seed_query_and_return_its_value() -> Result<()> {
    let rig = Rig::start(true).await?;
    let response = rig.query(rig.amp_query(SEED_QUERY)).await?;
    let got = value(&response).with_context(|| rig.logs())?;
    assert_eq!(got, EXPECTED);
    let stats = rig.gateway.stats().await?;
    assert_eq!((stats.forwarded, stats.rejected), (1, 0), "{stats:?}");
    // Signed with the credentials STS issued for the ServiceAccount's role.
    assert_eq!(
        stats.signed_by,
        [(ROLE_ARN.to_owned(), 1)].into(),
        "{stats:?}"
    );
    assert_eq!(rig.sts.as_ref().unwrap().issued_credentials().await?, 1);
    Ok(())
}

/// KEDA's `awsRoleArn` (TriggerAuthentication `podIdentity.roleArn`): the fetcher assumes the
/// role with its own IRSA credentials and signs with the role's, once per credential lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_arn_is_assumed_with_the_irsa_identity_and_signs_the_query() -> Result<()> {
    const READER: &str = "arn:aws:iam::123456789012:role/amp-reader";
    let rig = Rig::start(true).await?;
    let with_role = |query: &str| {
        let mut req = rig.amp_query(query);
        if let Some(pb::upstream_auth::Method::Aws(aws)) = req
            .source
            .as_mut()
            .and_then(|s| s.auth.as_mut())
            .and_then(|a| a.method.as_mut())
        {
            aws.role_arn = READER.into();
        }
        req
    };
    // Distinct queries, so each goes upstream and is signed.
    for i in 0..3 {
        let response = rig.query(with_role(&format!("{SEED_QUERY} + {i}"))).await?;
        let got = value(&response).with_context(|| rig.logs())?;
        assert_eq!(got, EXPECTED + f64::from(i));
    }
    let stats = rig.gateway.stats().await?;
    // Every request signed with the assumed role's credentials, none with the base identity's.
    assert_eq!(
        stats.signed_by,
        [(READER.to_owned(), 3)].into(),
        "{stats:?}"
    );
    // Two STS calls in all: AssumeRoleWithWebIdentity for the base, AssumeRole for the reader.
    assert_eq!(rig.sts.as_ref().unwrap().issued_credentials().await?, 2);
    let metrics = rig.fetcher.metrics_text().await?;
    assert!(
        metrics
            .contains(r#"promscaler_fetcher_credential_refreshes_total{identity="assume_role"} 1"#),
        "{metrics}"
    );
    // The fetcher's own identity is still its own: a query without the role signs with it.
    value(&rig.query(rig.amp_query(SEED_QUERY)).await?).with_context(|| rig.logs())?;
    let stats = rig.gateway.stats().await?;
    assert_eq!(stats.signed_by.get(ROLE_ARN), Some(&1), "{stats:?}");
    Ok(())
}

/// Issue 17 item 6: a direct call claiming namespace team-a with team-b's role ARN (or team-b's
/// workspace) is refused by the namespace policy before any STS or upstream request; team-a's
/// own role is assumed in a session tagged with its namespace, as the bytes sent to STS show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_cannot_borrow_another_namespaces_role_and_sessions_carry_its_tag() -> Result<()>
{
    const ROLE_A: &str = "arn:aws:iam::123456789012:role/team-a-amp";
    const ROLE_B: &str = "arn:aws:iam::123456789012:role/team-b-amp";
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("namespaces.yaml");
    std::fs::write(
        &policy,
        format!(
            "namespaces:\n  team-a:\n    roleArns: [\"{ROLE_A}\"]\n    workspaces: [{ws}]\n  \
             team-b:\n    roleArns: [\"{ROLE_B}\"]\n    workspaces: [{ws}]\n",
            ws = promscaler_sandbox::gateway::WORKSPACE_ID
        ),
    )?;
    let policy_flag = format!("--namespace-policy-file={}", policy.display());
    let rig = Rig::start_with(true, &[policy_flag.as_str()]).await?;
    let claim = |namespace: &str, role: &str, query: &str| {
        let mut req = rig.amp_query(query);
        req.caller = Some(pb::ScalerRef {
            namespace: namespace.into(),
            name: "s".into(),
        });
        if let Some(pb::upstream_auth::Method::Aws(aws)) = req
            .source
            .as_mut()
            .and_then(|s| s.auth.as_mut())
            .and_then(|a| a.method.as_mut())
        {
            aws.role_arn = role.into();
        }
        req
    };

    // team-a claiming team-b's role; a namespace without an entry using the fetcher's identity.
    let (kind, message) = error(&rig.query(claim("team-a", ROLE_B, SEED_QUERY)).await?)?;
    assert_eq!(kind, QueryErrorKind::DeniedByPolicy, "{message}");
    assert!(message.contains(ROLE_B), "{message}");
    assert!(
        message.contains("roleArns of namespace team-a"),
        "{message}"
    );
    let (kind, message) = error(&rig.query(claim("team-c", "", SEED_QUERY)).await?)?;
    assert_eq!(kind, QueryErrorKind::DeniedByPolicy, "{message}");
    // Refused before STS and before the gateway.
    assert_eq!(rig.sts.as_ref().unwrap().issued_credentials().await?, 0);
    assert!(rig.sts_wire.sent().is_empty(), "{}", rig.sts_wire.sent());
    let stats = rig.gateway.stats().await?;
    assert_eq!((stats.forwarded, stats.rejected), (0, 0), "{stats:?}");

    // team-a with its own role: assumed, tagged, signed.
    let got = value(&rig.query(claim("team-a", ROLE_A, SEED_QUERY)).await?)
        .with_context(|| rig.logs())?;
    assert_eq!(got, EXPECTED);
    let stats = rig.gateway.stats().await?;
    assert_eq!(
        stats.signed_by,
        [(ROLE_A.to_owned(), 1)].into(),
        "{stats:?}"
    );
    // moto records no session tags: check the AssumeRole request as it was sent.
    let wire = rig.sts_wire.sent();
    let assume_role = wire
        .split("Action=")
        .find(|call| call.starts_with("AssumeRole&"))
        .with_context(|| format!("no AssumeRole call in {wire}"))?;
    for field in [
        "Tags.member.1.Key=promscaler-namespace",
        "Tags.member.1.Value=team-a",
        "TransitiveTagKeys.member.1=promscaler-namespace",
        "RoleSessionName=promscaler-team-a",
    ] {
        assert!(assume_role.contains(field), "{field} not in {assume_role}");
    }
    Ok(())
}

/// QueryRange (what `promscalerctl simulate` replays) through AMP: signed, one series, samples
/// at every step in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_range_through_amp_returns_every_step() -> Result<()> {
    let rig = Rig::start(true).await?;
    // Data exists from now on (Rig::start waited for it); let four more seconds pass.
    let start = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let range = |query: &str| {
        let instant = rig.amp_query(query);
        pb::QueryRangeRequest {
            source: instant.source,
            query: query.to_owned(),
            start: Some(start.into()),
            end: Some((start + Duration::from_secs(4)).into()),
            step: Some(secs(1)),
            caller: instant.caller,
        }
    };
    let mut client = rig.client.clone();
    let response = bounded(
        "QueryRange",
        Duration::from_secs(60),
        client.query_range(range(SEED_QUERY)),
    )
    .await??
    .into_inner();
    assert_eq!(response.error, None, "{}", rig.logs());
    let values: Vec<f64> = response.samples.iter().map(|s| s.value).collect();
    assert_eq!(values, [EXPECTED; 5], "{}", rig.logs());
    let times: Vec<i64> = response
        .samples
        .iter()
        .map(|s| s.timestamp.as_ref().map_or(0, |t| t.seconds))
        .collect();
    let first = prost_types::Timestamp::from(start).seconds;
    assert_eq!(times, (first..first + 5).collect::<Vec<_>>());
    // The per-pod query is two series: an error that says so, not a pick of one.
    let response = bounded(
        "QueryRange",
        Duration::from_secs(60),
        client.query_range(range(SEED_MULTI_SERIES_QUERY)),
    )
    .await??
    .into_inner();
    let error = response.error.context("a multi-series range must fail")?;
    assert_eq!(
        QueryErrorKind::try_from(error.kind)?,
        QueryErrorKind::MultipleSeries,
        "{}",
        error.message
    );
    assert!(response.samples.is_empty());
    let stats = rig.gateway.stats().await?;
    assert_eq!(
        stats.signed_by,
        [(ROLE_ARN.to_owned(), 2)].into(),
        "{stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_region_is_forbidden_with_amps_message() -> Result<()> {
    let rig = Rig::start(true).await?;
    let mut req = rig.amp_query(SEED_QUERY);
    if let Some(pb::upstream_auth::Method::Aws(aws)) = req
        .source
        .as_mut()
        .and_then(|s| s.auth.as_mut())
        .and_then(|a| a.method.as_mut())
    {
        aws.region = "us-east-1".into();
    }
    let response = rig.query(req).await?;
    let (kind, message) = error(&response).with_context(|| rig.logs())?;
    assert_eq!(kind, QueryErrorKind::Forbidden, "{message}");
    assert!(
        message.contains("Credential should be scoped to a valid region"),
        "{message}"
    );
    assert_eq!(rig.gateway.stats().await?.forwarded, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_down_is_unauthenticated_and_nothing_is_sent_unsigned() -> Result<()> {
    let rig = Rig::start(false).await?;
    let response = rig.query(rig.amp_query(SEED_QUERY)).await?;
    let (kind, message) = error(&response).with_context(|| rig.logs())?;
    assert_eq!(kind, QueryErrorKind::Unauthenticated, "{message}");
    assert!(message.contains("the fetcher's own identity"), "{message}");
    let stats = rig.gateway.stats().await?;
    assert_eq!((stats.forwarded, stats.rejected), (0, 0), "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_identical_queries_make_one_upstream_request() -> Result<()> {
    let rig = Rig::start(true).await?;
    // Credentials first, so the burst below is about coalescing only.
    value(&rig.query(rig.amp_query(SEED_QUERY)).await?).with_context(|| rig.logs())?;
    // A slow upstream keeps the first request in flight while the other 99 arrive.
    rig.gateway.set_delay(Duration::from_secs(3)).await?;
    let burst = (0..100).map(|_| {
        let mut client = rig.client.clone();
        let req = rig.amp_query(SEED_QUERY);
        tokio::spawn(async move { client.query(req).await })
    });
    let results = bounded(
        "100 queries",
        Duration::from_secs(60),
        futures::future::join_all(burst),
    )
    .await?;
    for r in results {
        assert_eq!(value(&r??.into_inner())?, EXPECTED);
    }
    let stats = rig.gateway.stats().await?;
    assert_eq!(stats.forwarded, 2, "{stats:?}");
    let metrics = rig.fetcher.metrics_text().await?;
    assert!(
        metrics.contains("promscaler_fetcher_coalesced_waiters_total 99"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_queries_need_one_sts_call() -> Result<()> {
    let rig = Rig::start(true).await?;
    // Distinct queries, so each one goes upstream and needs signing.
    for batch in 0..10 {
        let queries = (0..100)
            .map(|i| rig.amp_query(&format!("{SEED_QUERY} + {}", batch * 100 + i)))
            .collect();
        let mut client = rig.client.clone();
        let results = bounded(
            "a batch of 100",
            Duration::from_secs(120),
            client.query_batch(pb::QueryBatchRequest { queries }),
        )
        .await??
        .into_inner()
        .results;
        for (i, r) in results.iter().enumerate() {
            let expected = EXPECTED + f64::from(batch * 100 + i as i32);
            assert_eq!(value(r).with_context(|| rig.logs())?, expected);
        }
    }
    assert_eq!(rig.gateway.stats().await?.forwarded, 1000);
    assert_eq!(rig.sts.as_ref().unwrap().issued_credentials().await?, 1);
    let metrics = rig.fetcher.metrics_text().await?;
    assert!(
        metrics.contains(r#"promscaler_fetcher_credential_refreshes_total{identity="own"} 1"#),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_prometheus_is_unreachable() -> Result<()> {
    let mut rig = Rig::start(true).await?;
    // The fetcher talks to Prometheus directly here (an in-cluster Prometheus, no auth).
    let direct = pb::QueryRequest {
        source: Some(pb::PrometheusSource {
            server_address: rig.prometheus.url(),
            ..Default::default()
        }),
        query: SEED_QUERY.into(),
        ..Default::default()
    };
    assert_eq!(value(&rig.query(direct.clone()).await?)?, EXPECTED);
    rig.prometheus.stop();
    let response = rig.query(direct).await?;
    let (kind, message) = error(&response).with_context(|| rig.logs())?;
    assert_eq!(kind, QueryErrorKind::Unreachable, "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_a_timeout() -> Result<()> {
    let rig = Rig::start(true).await?;
    value(&rig.query(rig.amp_query(SEED_QUERY)).await?).with_context(|| rig.logs())?;
    rig.gateway.set_delay(Duration::from_secs(5)).await?;
    let mut req = rig.amp_query(SEED_QUERY);
    if let Some(source) = req.source.as_mut() {
        source.timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: 500_000_000,
        });
    }
    let response = rig.query(req).await?;
    let (kind, message) = error(&response).with_context(|| rig.logs())?;
    assert_eq!(kind, QueryErrorKind::Timeout, "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_per_pod_query_is_multiple_series() -> Result<()> {
    let rig = Rig::start(true).await?;
    rig.prometheus
        .wait_for_series(SEED_MULTI_SERIES_QUERY, PODS.len(), Duration::from_secs(30))
        .await?;
    let response = rig.query(rig.amp_query(SEED_MULTI_SERIES_QUERY)).await?;
    let (kind, message) = error(&response).with_context(|| rig.logs())?;
    assert_eq!(kind, QueryErrorKind::MultipleSeries, "{message}");
    assert!(message.contains(r#"pod="sample-app-0""#), "{message}");
    assert!(message.contains("sum(...)"), "{message}");
    Ok(())
}

/// Sends `n` distinct queries (`SEED_QUERY + i`) to `client` as `batches` concurrent
/// QueryBatch calls, all at once, and returns every answer.
async fn herd(
    rig: &Rig,
    client: &MetricsFetcherServiceClient<Channel>,
    n: usize,
    batches: usize,
) -> Result<Vec<pb::QueryResponse>> {
    let per_batch = n / batches;
    let calls = (0..batches).map(|b| {
        let mut client = client.clone();
        let queries = (0..per_batch)
            .map(|i| rig.amp_query(&format!("{SEED_QUERY} + {}", b * per_batch + i)))
            .collect();
        async move { client.query_batch(pb::QueryBatchRequest { queries }).await }
    });
    let answers = bounded(
        "the herd",
        Duration::from_secs(120),
        futures::future::join_all(calls),
    )
    .await?;
    let mut results = Vec::with_capacity(n);
    for a in answers {
        results.extend(a?.into_inner().results);
    }
    Ok(results)
}

/// AMP answers 429 above a workspace's query rate. With `--upstream-qps` below it, a herd of
/// 240 distinct queries at once is spread over the budget: every query is answered and the
/// gateway throttles none. The same herd through a fetcher without a budget is throttled, so
/// the limit is real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_spreads_a_herd_under_amps_rate_limit_and_nothing_is_throttled() -> Result<()> {
    let rig = Rig::start_with(true, &["--upstream-qps=20"]).await?;
    // Credentials first: the herd is about pacing only.
    value(&rig.query(rig.amp_query(SEED_QUERY)).await?).with_context(|| rig.logs())?;
    rig.gateway.set_rate_limit(25.0).await?;

    let results = herd(&rig, &rig.client, 240, 4).await?;
    for (i, r) in results.iter().enumerate() {
        let got = value(r).with_context(|| format!("query {i}\n{}", rig.logs()))?;
        assert_eq!(got, EXPECTED + i as f64);
    }
    let stats = rig.gateway.stats().await?;
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert_eq!(stats.forwarded, 241, "{stats:?}");
    let metrics = rig.fetcher.metrics_text().await?;
    let waited = metrics
        .lines()
        .find(|l| l.starts_with("promscaler_fetcher_upstream_queue_wait_seconds_count"))
        .with_context(|| format!("no queue wait metric:\n{metrics}"))?;
    let count: f64 = waited.rsplit(' ').next().unwrap_or("0").parse()?;
    // The burst (20) goes at once; the rest waited for a token.
    assert!(count >= 200.0, "{waited}");

    // The control: no budget, same herd, same limit.
    let (_unpaced, client) = start_fetcher(&rig.env, &[]).await?;
    let results = herd(&rig, &client, 240, 4).await?;
    let throttled = results
        .iter()
        .filter(|r| matches!(error(r), Ok((QueryErrorKind::Throttled, _))))
        .count();
    assert!(throttled > 0, "the gateway's limit never bit");
    assert!(rig.gateway.stats().await?.throttled > 0);
    Ok(())
}

/// The samples the fetcher reports for a query through AMP are the ones Prometheus itself
/// reports processing for the same query at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_processed_are_prometheus_own_statistics() -> Result<()> {
    let rig = Rig::start(true).await?;
    // Now (to the millisecond): the rig waited for the seed's value, so Prometheus has data
    // up to here (its first scrape may be less than a second old). Then fully in the past.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let at = Duration::from_millis(now.as_millis() as u64);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for query in [
        SEED_QUERY,
        SEED_MULTI_SERIES_QUERY,
        "sum(websocket_active_connection_count)",
    ] {
        let mut request = rig.amp_query(query);
        request.time = Some(prost_types::Timestamp {
            seconds: at.as_secs() as i64,
            nanos: at.subsec_nanos() as i32,
        });
        let answer = rig.query(request).await?;
        let reported = answer
            .samples_processed
            .with_context(|| format!("{query}: no samples reported\n{}", rig.logs()))?;
        let own = rig
            .prometheus
            .samples_processed(query, at.as_secs_f64())
            .await?;
        assert!(own > 0, "{query}: Prometheus processed nothing");
        assert_eq!(reported, own, "{query}");
    }
    Ok(())
}
