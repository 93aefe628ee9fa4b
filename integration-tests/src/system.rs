//! The whole system for end-to-end tests: the API emulator, a real Prometheus scraping the
//! emulated app's metrics, and the three services as processes.

use std::time::Duration;

use anyhow::{Context as _, Result};
use promscaler_proto::v1::actuator_service_client::ActuatorServiceClient;
use promscaler_sandbox::prometheus::{Prometheus, SEED_QUERY, ScrapeTarget};
use promscaler_sandbox::seed::SeedScaler;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::{
    cluster::{Cluster, sample_app_deployment},
    pki::Pki,
    services::{Kind, ServiceProcess},
};

/// How long a service may take to come up.
pub const STARTUP: Duration = Duration::from_secs(30);

/// Everything one end-to-end test runs.
#[derive(Debug)]
pub struct System {
    /// The Kubernetes API.
    pub cluster: Cluster,
    /// The app's /metrics (one series per pod).
    pub app: ScrapeTarget,
    /// Prometheus scraping `app`.
    pub prometheus: Prometheus,
    /// The metrics-fetcher.
    pub fetcher: ServiceProcess,
    /// The decision service.
    pub decision: ServiceProcess,
    /// Actuators (the first one leads unless the test says otherwise).
    pub actuators: Vec<ServiceProcess>,
    /// Environment given to every service process (e.g. OTLP settings).
    env: Vec<(&'static str, String)>,
    /// Set when every gRPC connection runs over mutual TLS.
    pki: Option<Pki>,
}

impl System {
    /// Starts the emulator, Prometheus scraping an app serving `connections_per_pod`, the
    /// fetcher and the decision service (actuators are started with [`System::start_actuator`]).
    pub async fn start(connections_per_pod: &[f64]) -> Result<Self> {
        Self::start_with_env(connections_per_pod, Vec::new()).await
    }

    /// Like [`System::start`], with `env` set for every service process.
    pub async fn start_with_env(
        connections_per_pod: &[f64],
        env: Vec<(&'static str, String)>,
    ) -> Result<Self> {
        Self::start_with(connections_per_pod, env, None).await
    }

    /// Like [`System::start`], with mutual TLS on every gRPC connection: each service serves
    /// with `pki`'s server certificate and requires a client certificate; actuators connect with
    /// `pki`'s client certificate, the only identity the fetcher and decision service admit
    /// (`--allowed-client-identities`).
    pub async fn start_with_tls(connections_per_pod: &[f64], pki: Pki) -> Result<Self> {
        Self::start_with(connections_per_pod, Vec::new(), Some(pki)).await
    }

    async fn start_with(
        connections_per_pod: &[f64],
        env: Vec<(&'static str, String)>,
        pki: Option<Pki>,
    ) -> Result<Self> {
        let cluster = Cluster::start(Duration::from_millis(200)).await?;
        let app = ScrapeTarget::sample_app(connections_per_pod).await?;
        let prometheus = Prometheus::start(&[app.addr()]).await?;
        let mut fetcher = Self::service(Kind::Fetcher, &[], &env, pki.as_ref())?;
        let mut decision = Self::service(Kind::Decision, &[], &env, pki.as_ref())?;
        fetcher.wait_serving(STARTUP).await?;
        decision.wait_serving(STARTUP).await?;
        Ok(Self {
            cluster,
            app,
            prometheus,
            fetcher,
            decision,
            actuators: Vec::new(),
            env,
            pki,
        })
    }

    /// Starts `kind`, serving TLS when `pki` is set.
    fn service(
        kind: Kind,
        args: &[String],
        env: &[(&str, String)],
        pki: Option<&Pki>,
    ) -> Result<ServiceProcess> {
        let Some(pki) = pki else {
            return ServiceProcess::start(kind, args, env);
        };
        let mut args = args.to_vec();
        args.extend(pki.server_args());
        // As the chart does: the fetcher and the decision service answer the actuator only.
        if matches!(kind, Kind::Fetcher | Kind::Decision) {
            args.push(format!(
                "--allowed-client-identities={}",
                crate::pki::ACTUATOR_IDENTITY
            ));
        }
        Ok(ServiceProcess::start(kind, &args, env)?.with_client_tls(pki.client_tls(true)?))
    }

    /// The arguments an actuator needs to reach this system. The decision service is addressed
    /// as `dns:///127.0.0.1:<port>`, the client-side balanced form the chart uses for headless
    /// Services, so every actuator test runs through it.
    pub fn actuator_args(&self, identity: &str) -> Vec<String> {
        let decision = self
            .decision
            .grpc_url()
            .replace("https://", "dns:///")
            .replace("http://", "dns:///");
        let mut args: Vec<String> = [
            "--fetcher-addr",
            &self.fetcher.grpc_url(),
            "--decision-addr",
            &decision,
            "--lease-namespace",
            "default",
            "--lease-duration",
            "2s",
            "--identity",
            identity,
            "--peer-check-interval",
            "200ms",
            "--rpc-timeout",
            "3s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(pki) = &self.pki {
            args.extend(pki.peer_args());
        }
        args
    }

    /// Starts an actuator named `identity` and waits until it serves gRPC.
    pub async fn start_actuator(&mut self, identity: &str) -> Result<usize> {
        self.start_actuator_with(identity, &[]).await
    }

    /// [`System::start_actuator`] with `extra` flags after the usual ones.
    pub async fn start_actuator_with(&mut self, identity: &str, extra: &[&str]) -> Result<usize> {
        let mut args = self.actuator_args(identity);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut env = self.env.clone();
        env.push((
            "KUBECONFIG",
            self.cluster.kubeconfig().display().to_string(),
        ));
        let mut actuator = Self::service(Kind::Actuator, &args, &env, self.pki.as_ref())?;
        actuator.wait_serving(STARTUP).await?;
        self.actuators.push(actuator);
        Ok(self.actuators.len() - 1)
    }

    /// The seed's scenario up to its first scale, in namespace `default`: waits until Prometheus
    /// reports the seed query's 140 (so the first tick never sees unscraped pods), applies the
    /// `sample-app` Deployment at 2 replicas, starts actuator `actuator-a`, applies the seed
    /// PromScaler (through `edit`) and waits for 3 replicas.
    pub async fn scale_seed_to_three(&mut self, edit: impl Fn(String) -> String) -> Result<()> {
        self.scale_to_three(SEED_QUERY, edit).await
    }

    /// [`System::scale_seed_to_three`] with `query` in the PromScaler instead of the seed's (it
    /// must also yield 140 for the app's two pods, e.g. the instantaneous sum, which follows a
    /// load change at the next scrape).
    pub async fn scale_to_three(
        &mut self,
        query: &str,
        edit: impl Fn(String) -> String,
    ) -> Result<()> {
        const WAIT: Duration = Duration::from_secs(60);
        self.prometheus.wait_for_value(query, 140.0, WAIT).await?;
        self.cluster.apply(&sample_app_deployment("default", 2))?;
        self.start_actuator("actuator-a").await?;
        let yaml = seed_promscaler("default", &self.prometheus.url(), query, 1);
        self.cluster.apply(&edit(yaml))?;
        self.cluster
            .wait_replicas("default", "sample-app", 3, WAIT)
            .await
            .with_context(|| self.logs())
    }

    /// A client of actuator `index` that sends `token` as its bearer token.
    pub fn actuator_client_as(&self, index: usize, token: &str) -> Result<ActuatorClient> {
        Ok(ActuatorServiceClient::with_interceptor(
            self.actuators[index].channel()?,
            BearerToken::new(token)?,
        ))
    }

    /// A client of actuator `index` allowed everything ([`crate::cluster::ADMIN_TOKEN`]).
    pub fn actuator_client(&self, index: usize) -> Result<ActuatorClient> {
        self.actuator_client_as(index, crate::cluster::ADMIN_TOKEN)
    }

    /// Every service's log tail, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, service) in [("fetcher", &self.fetcher), ("decision", &self.decision)] {
            out.push_str(&format!("--- {name} ---\n{}\n", service.log_tail()));
        }
        for (i, actuator) in self.actuators.iter().enumerate() {
            out.push_str(&format!("--- actuator {i} ---\n{}\n", actuator.log_tail()));
        }
        out
    }
}

/// The seed's PromScaler (AverageValue 50, activation 0, min 1, max 5) against `server`, with
/// a 1 s polling interval and no scale-down stabilization so tests run in seconds.
pub fn seed_promscaler(namespace: &str, server: &str, query: &str, min: i32) -> String {
    SeedScaler {
        namespace,
        server,
        query,
        min_replicas: min,
        polling_interval: 1,
        cooldown_period: 2,
        scale_down_stabilization: 0,
        fallback: None,
        aws_region: None,
    }
    .yaml()
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct BearerToken(MetadataValue<Ascii>);

impl BearerToken {
    /// The interceptor for `token`.
    pub fn new(token: &str) -> Result<Self> {
        Ok(Self(format!("Bearer {token}").parse().context("token")?))
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// An ActuatorService client that sends a bearer token.
pub type ActuatorClient = ActuatorServiceClient<InterceptedService<Channel, BearerToken>>;
