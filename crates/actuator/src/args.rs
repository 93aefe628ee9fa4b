//! Command-line flags and the composition root of `promscaler-actuator`.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use promscaler_proto::v1::{
    actuator_service_server::ActuatorServiceServer, decision_service_client::DecisionServiceClient,
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
};
use promscaler_runtime::{
    ServerArgs, Service,
    args::parse_duration,
    grpc_client,
    propagation::{InjectFn, inject},
    server::Task,
};
use tokio::sync::{broadcast, watch};

use promscaler_proto::service_names;

use crate::{
    SERVICE,
    controller::{self, Settings, Shard, Watches},
    grpc::ActuatorGrpc,
    leader::{LeaderElector, LeaseTiming},
    metrics::{Metrics, ScalerCollector},
    peers::{Peer, Peers},
    ratelimit::{RateLimit, RateLimitLayer},
    readiness::Gate,
    views::Views,
};

/// `promscaler-actuator`: watches PromScalers and scales their targets.
#[derive(Debug, clap::Parser)]
#[command(name = "promscaler-actuator", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    /// metrics-fetcher address: a URL such as http://127.0.0.1:50051, or dns:///name:port to
    /// balance over every address of a headless Service.
    #[arg(
        long,
        env = "PROMSCALER_FETCHER_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub fetcher_addr: String,

    /// decision service address: a URL such as http://127.0.0.1:50052, or dns:///name:port.
    #[arg(
        long,
        env = "PROMSCALER_DECISION_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub decision_addr: String,

    #[command(flatten)]
    pub peer_tls: promscaler_runtime::tls::PeerTlsArgs,

    /// Watch PromScalers (and their targets, authentications, Secrets) in this namespace only;
    /// empty = all namespaces.
    #[arg(long, env = "PROMSCALER_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,

    /// Elect a leader through a Lease (only the leader writes). Turn off only when a single
    /// replica runs.
    #[arg(long, env = "PROMSCALER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the Lease; empty = $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "PROMSCALER_LEASE_NAMESPACE", default_value = "")]
    pub lease_namespace: String,

    /// Name of the Lease (with sharding, `-shard-<index>` is appended).
    #[arg(
        long,
        env = "PROMSCALER_LEASE_NAME",
        default_value = "promscaler-actuator"
    )]
    pub lease_name: String,

    /// How long a leader's Lease stays valid without renewal, e.g. "15s".
    #[arg(long, env = "PROMSCALER_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease and in Events; empty = $POD_NAME, else the host name.
    #[arg(long, env = "PROMSCALER_IDENTITY", default_value = "")]
    pub identity: String,

    /// This replica's shard, 0..shard-count.
    #[arg(long, env = "PROMSCALER_SHARD_INDEX", default_value_t = 0)]
    pub shard_index: u32,

    /// Number of shards PromScalers are spread over (by a stable hash of namespace/name).
    #[arg(long, env = "PROMSCALER_SHARD_COUNT", default_value_t = 1)]
    pub shard_count: u32,

    /// Sustained Kubernetes API requests per second (client-side rate limit).
    #[arg(long, env = "PROMSCALER_KUBE_QPS", default_value_t = 50.0)]
    pub kube_qps: f64,

    /// Kubernetes API requests allowed in a burst.
    #[arg(long, env = "PROMSCALER_KUBE_BURST", default_value_t = 100)]
    pub kube_burst: u32,

    /// Deadline of each call to the fetcher and the decision service, e.g. "10s".
    #[arg(long, env = "PROMSCALER_RPC_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub rpc_timeout: Duration,

    /// How often the peers' grpc.health.v1 status is checked, e.g. "5s".
    #[arg(long, env = "PROMSCALER_PEER_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub peer_check_interval: Duration,

    /// PromScalers evaluated at the same time.
    #[arg(long, env = "PROMSCALER_MAX_CONCURRENT_TICKS", default_value_t = 256)]
    pub max_concurrent_ticks: usize,

    /// First retry delay after a failed evaluation; it doubles up to --max-backoff.
    #[arg(long, env = "PROMSCALER_MIN_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub min_backoff: Duration,

    /// Longest retry delay after failed evaluations. A change to the PromScaler, to its
    /// PromScalerAuthentication or to a Secret that one reads ends the wait at once.
    #[arg(long, env = "PROMSCALER_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    pub max_backoff: Duration,
}

fn identity(flag: &str) -> String {
    if !flag.is_empty() {
        return flag.to_owned();
    }
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{}-{}",
        if host.is_empty() { "actuator" } else { &host },
        std::process::id()
    )
}

impl Args {
    /// Runs the actuator until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        if self.shard_count == 0 || self.shard_index >= self.shard_count {
            anyhow::bail!(
                "--shard-index {} must be below --shard-count {} (and the count at least 1)",
                self.shard_index,
                self.shard_count
            );
        }
        if self.kube_qps.is_nan() || self.kube_qps <= 0.0 {
            anyhow::bail!("--kube-qps must be > 0 (got {})", self.kube_qps);
        }
        let mut service = Service::init(SERVICE, self.server)?;
        let shutdown = service.shutdown();
        let readiness = service.readiness();
        let metrics = Metrics::register(service.registry());

        let config = kube::Config::infer()
            .await
            .context("no Kubernetes configuration: run in a cluster or set KUBECONFIG")?;
        let default_namespace = config.default_namespace.clone();
        let client = kube::client::ClientBuilder::try_from(config)?
            .with_layer(&RateLimitLayer(RateLimit {
                qps: self.kube_qps,
                burst: self.kube_burst,
            }))
            .build();

        let inject: InjectFn = inject;
        let peer_tls = self.peer_tls.load()?;
        let fetcher_channel = grpc_client::channel(
            "--fetcher-addr",
            &self.fetcher_addr,
            peer_tls.as_ref(),
            &shutdown,
        )?;
        let decision_channel = grpc_client::channel(
            "--decision-addr",
            &self.decision_addr,
            peer_tls.as_ref(),
            &shutdown,
        )?;
        let peers = Peers::new(vec![
            Peer::new(
                "metrics-fetcher",
                service_names::METRICS_FETCHER,
                fetcher_channel.clone(),
            ),
            Peer::new(
                "decision",
                service_names::DECISION,
                decision_channel.clone(),
            ),
        ]);
        let fetcher = MetricsFetcherServiceClient::with_interceptor(fetcher_channel, inject);
        let decision = DecisionServiceClient::with_interceptor(decision_channel, inject);
        let gate = Gate::new(readiness);

        let namespace = (!self.watch_namespace.is_empty()).then_some(self.watch_namespace.as_str());
        let watches = Watches::new(&client, namespace);
        let identity = identity(&self.identity);
        let shard = Shard {
            index: self.shard_index,
            count: self.shard_count,
        };
        let views = Arc::new(Views::default());
        let (decisions, _) = broadcast::channel(1024);
        let settings = Settings {
            rpc_timeout: self.rpc_timeout,
            kube_timeout: Duration::from_secs(10),
            max_concurrent_ticks: self.max_concurrent_ticks.max(1),
            min_backoff: self.min_backoff.max(Duration::from_millis(100)),
            max_backoff: self.max_backoff.max(self.min_backoff),
            shard,
            namespace: namespace.map(str::to_owned),
            controller_name: "promscaler-actuator".to_owned(),
            instance: identity.clone(),
        };

        let (leading_tx, leading) = watch::channel(!self.leader_elect);
        let (leader_tx, leader) = watch::channel(String::new());
        ScalerCollector::register(service.registry(), views.clone(), leading.clone());
        let (handle, commands) = controller::handle(leading.clone());
        let ctx = controller::context(
            client.clone(),
            &watches,
            fetcher,
            decision,
            views.clone(),
            decisions.clone(),
            metrics,
            settings,
        );
        let grpc = ActuatorGrpc::new(
            client.clone(),
            watches.scalers.clone(),
            views,
            decisions,
            handle,
            shard,
        )
        .with_leader(leader);

        let mut tasks: Vec<(&'static str, Task)> = Vec::new();
        if self.leader_elect {
            let lease_namespace = if !self.lease_namespace.is_empty() {
                self.lease_namespace.clone()
            } else {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(default_namespace)
            };
            let lease_name = if self.shard_count > 1 {
                format!("{}-shard-{}", self.lease_name, self.shard_index)
            } else {
                self.lease_name.clone()
            };
            let elector = LeaderElector::new(
                Api::<Lease>::namespaced(client.clone(), &lease_namespace),
                lease_name,
                identity,
                LeaseTiming {
                    lease_duration: self.lease_duration,
                    retry_period: (self.lease_duration / 5).max(Duration::from_millis(200)),
                },
            );
            let shutdown = shutdown.clone();
            tasks.push((
                "leader election",
                Box::pin(async move {
                    elector.run(leading_tx, leader_tx, shutdown).await;
                    // Ends only at shutdown (the server stops first).
                    std::future::pending::<()>().await;
                    Ok(())
                }),
            ));
        } else {
            // Keep the sender alive: leadership never changes.
            tasks.push((
                "leadership",
                Box::pin(async move {
                    let _keep = (leading_tx, leader_tx);
                    std::future::pending::<()>().await;
                    Ok(())
                }),
            ));
        }
        let peer_shutdown = shutdown.clone();
        let peer_gate = gate.clone();
        let interval = self.peer_check_interval;
        tasks.push((
            "peer health checks",
            Box::pin(async move {
                peers.watch(interval, peer_gate, peer_shutdown).await;
                std::future::pending::<()>().await;
                Ok(())
            }),
        ));
        let controller_shutdown = shutdown.clone();
        tasks.push((
            "controller",
            Box::pin(async move {
                controller::run(
                    ctx,
                    watches,
                    leading,
                    commands,
                    gate,
                    controller_shutdown.clone(),
                )
                .await;
                if controller_shutdown.is_triggered() {
                    std::future::pending::<()>().await;
                }
                Err("the controller loop stopped".to_owned())
            }),
        ));

        let bound = service.bind().await?;
        let routes = tonic::service::Routes::new(ActuatorServiceServer::new(grpc));
        bound.serve(routes, tasks).await?;
        Ok(())
    }
}
