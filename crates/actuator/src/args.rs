//! Command-line flags and the composition root of `promscaler-actuator`.
//!
//! Flags are typed: what can be checked alone is checked when parsing (a namespace is not empty,
//! `--shard-count` is at least 1, `--kube-qps` is positive), and an absent optional flag is
//! `None`, never `""`. [`Args::run`] only wires the parts together.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use promscaler_proto::{
    service_names,
    v1::{
        actuator_service_server::ActuatorServiceServer,
        decision_service_client::DecisionServiceClient,
        metrics_fetcher_service_client::MetricsFetcherServiceClient,
    },
};
use promscaler_runtime::{
    ServerArgs, Service, Shutdown,
    args::parse_duration,
    grpc_client,
    propagation::{InjectFn, inject},
    server::Task,
};
use tokio::sync::{broadcast, watch};

use crate::{
    SERVICE,
    clock::Clock,
    controller::{self, Settings, Watches},
    grpc::ActuatorGrpc,
    leader::{LeaderElector, LeaseTiming},
    metrics::{Metrics, ScalerCollector},
    peers::{Peer, Peers},
    ratelimit::{RateLimit, RateLimitLayer},
    readiness::Gate,
    types::Shard,
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
    /// absent = all namespaces.
    #[arg(long, env = "PROMSCALER_WATCH_NAMESPACE", value_parser = non_empty)]
    pub watch_namespace: Option<String>,

    #[command(flatten)]
    pub leader: LeaderArgs,

    #[command(flatten)]
    pub shard: ShardArgs,

    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(flatten)]
    pub controller: ControllerArgs,

    #[command(flatten)]
    pub authz: AuthzArgs,
}

/// Who may call ActuatorService (see docs/operations.md, "Security model").
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct AuthzArgs {
    /// Authenticate every ActuatorService call's bearer token with a TokenReview and authorize it
    /// with a SubjectAccessReview on promscalers.promscaler.io. Turning it off lets anyone who
    /// reaches the gRPC port list every PromScaler and pause or resume any of them: only for a
    /// local sandbox on loopback.
    #[arg(long, env = "PROMSCALER_GRPC_AUTHZ", default_value_t = true, action = clap::ArgAction::Set)]
    pub grpc_authz: bool,

    /// How long a TokenReview or SubjectAccessReview answer is reused, e.g. "10s" ("0s": never).
    /// A revoked token or RoleBinding keeps working at most this long.
    #[arg(long, env = "PROMSCALER_AUTHZ_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub authz_cache_ttl: Duration,

    /// Most tokens, and most access decisions, kept in the review caches (each; at least 1).
    #[arg(long, env = "PROMSCALER_AUTHZ_CACHE_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub authz_cache_size: u32,
}

impl AuthzArgs {
    /// The authorizer these flags describe, reviewing through `client`.
    pub(crate) fn authz(&self, client: &kube::Client, metrics: &Metrics) -> crate::authz::Authz {
        if !self.grpc_authz {
            tracing::warn!(
                "--grpc-authz=false: every ActuatorService caller may list, pause and resume every PromScaler"
            );
            return crate::authz::Authz::disabled();
        }
        crate::authz::Authz::new(
            Arc::new(crate::authz::KubeReviewer::new(client.clone())),
            self.authz_cache_ttl,
            self.authz_cache_size as usize,
        )
        .with_metrics(metrics.clone())
    }
}

/// Leader election.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderArgs {
    /// Elect a leader through a Lease (only the leader writes). Turn off only when a single
    /// replica runs.
    #[arg(long, env = "PROMSCALER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the Lease; absent = $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "PROMSCALER_LEASE_NAMESPACE", value_parser = non_empty)]
    pub lease_namespace: Option<String>,

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

    /// This replica's identity in the Lease and in Events; absent = $POD_NAME, else the host
    /// name.
    #[arg(long, env = "PROMSCALER_IDENTITY", value_parser = non_empty)]
    pub identity: Option<String>,
}

/// Sharding.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ShardArgs {
    /// This replica's shard, 0..shard-count.
    #[arg(long, env = "PROMSCALER_SHARD_INDEX", default_value_t = 0)]
    pub shard_index: u32,

    /// Number of shards PromScalers are spread over (by a stable hash of namespace/name).
    #[arg(long, env = "PROMSCALER_SHARD_COUNT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: u32,
}

/// The Kubernetes client.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct KubeArgs {
    /// Sustained Kubernetes API requests per second (client-side rate limit).
    #[arg(long, env = "PROMSCALER_KUBE_QPS", default_value_t = 50.0, value_parser = positive)]
    pub kube_qps: f64,

    /// Kubernetes API requests allowed in a burst.
    #[arg(long, env = "PROMSCALER_KUBE_BURST", default_value_t = 100)]
    pub kube_burst: u32,
}

/// The controller loop and its calls to the peers.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ControllerArgs {
    /// Deadline of each call to the fetcher and the decision service, e.g. "10s".
    #[arg(long, env = "PROMSCALER_RPC_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub rpc_timeout: Duration,

    /// How often the peers' grpc.health.v1 status is checked, e.g. "5s".
    #[arg(long, env = "PROMSCALER_PEER_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub peer_check_interval: Duration,

    /// PromScalers evaluated at the same time (0 counts as 1).
    #[arg(long, env = "PROMSCALER_MAX_CONCURRENT_TICKS", default_value_t = 256)]
    pub max_concurrent_ticks: usize,

    /// First retry delay after a failed evaluation (at least 100ms); it doubles up to
    /// --max-backoff.
    #[arg(long, env = "PROMSCALER_MIN_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub min_backoff: Duration,

    /// Longest retry delay after failed evaluations. A change to the PromScaler, to its
    /// PromScalerAuthentication or to a Secret that one reads ends the wait at once.
    #[arg(long, env = "PROMSCALER_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// Most Secrets whose referenced keys are kept in memory (Secrets are watched as metadata
    /// only; a key is read with a GET when its Secret's resourceVersion changed). Beyond it the
    /// least recently used are read again when next needed.
    #[arg(long, env = "PROMSCALER_SECRET_CACHE_SIZE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub secret_cache_size: u32,
}

/// A value that must not be empty: an absent flag, not `""`, means "unset".
fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty; leave the flag (and its environment variable) unset instead".into())
    } else {
        Ok(s.to_owned())
    }
}

/// A finite number above zero.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be > 0 (got {v})")),
        Err(e) => Err(e.to_string()),
    }
}

/// This replica's name: the flag, else $POD_NAME, else the host name and process id.
fn identity(flag: Option<&str>) -> String {
    if let Some(flag) = flag {
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

impl ShardArgs {
    /// The shard, once the index is known to be below the count.
    pub fn shard(self) -> anyhow::Result<Shard> {
        if self.shard_index >= self.shard_count {
            anyhow::bail!(
                "--shard-index {} must be below --shard-count {}",
                self.shard_index,
                self.shard_count
            );
        }
        Ok(Shard {
            index: self.shard_index,
            count: self.shard_count,
        })
    }
}

impl KubeArgs {
    /// A rate-limited client from the in-cluster config or `KUBECONFIG`, and its default
    /// namespace.
    async fn client(self) -> anyhow::Result<(kube::Client, String)> {
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
        Ok((client, default_namespace))
    }
}

impl ControllerArgs {
    /// The loop's settings (tolerant: 0 concurrent ticks run 1, backoffs are ordered).
    fn settings(self, shard: Shard, instance: String) -> Settings {
        Settings {
            rpc_timeout: self.rpc_timeout,
            kube_timeout: Duration::from_secs(10),
            max_concurrent_ticks: self.max_concurrent_ticks.max(1),
            min_backoff: self.min_backoff.max(Duration::from_millis(100)),
            max_backoff: self.max_backoff.max(self.min_backoff),
            shard,
            controller_name: SERVICE.name.to_owned(),
            instance,
            secret_cache_size: self.secret_cache_size as usize,
        }
    }
}

impl LeaderArgs {
    /// The task that publishes leadership on `leading` (and the leader's name on `holder`):
    /// a Lease campaign, or "always leading" without leader election.
    fn task(
        self,
        client: &kube::Client,
        default_namespace: String,
        identity: String,
        shard: Shard,
        (leading, holder): (watch::Sender<bool>, watch::Sender<String>),
        shutdown: Shutdown,
    ) -> (&'static str, Task) {
        if !self.leader_elect {
            // Keep the senders alive: leadership never changes.
            return (
                "leadership",
                Box::pin(async move {
                    let _keep = (leading, holder);
                    std::future::pending::<()>().await;
                    Ok(())
                }),
            );
        }
        let namespace = self.lease_namespace.unwrap_or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or(default_namespace)
        });
        let name = if shard.count > 1 {
            format!("{}-shard-{}", self.lease_name, shard.index)
        } else {
            self.lease_name
        };
        let elector = LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &namespace),
            name,
            identity,
            LeaseTiming {
                lease_duration: self.lease_duration,
                retry_period: (self.lease_duration / 5).max(Duration::from_millis(200)),
            },
        );
        (
            "leader election",
            Box::pin(async move {
                elector.run(leading, holder, shutdown).await;
                // Ends only at shutdown (the server stops first).
                std::future::pending::<()>().await;
                Ok(())
            }),
        )
    }
}

impl Args {
    /// Runs the actuator until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        let shard = self.shard.shard()?;
        let mut service = Service::init(SERVICE, self.server)?;
        let shutdown = service.shutdown();
        let gate = Gate::new(service.readiness());
        let metrics = Metrics::register(service.registry());
        let authz_metrics = metrics.clone();
        let (client, default_namespace) = self.kube.client().await?;

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
        let inject: InjectFn = inject;
        let fetcher = MetricsFetcherServiceClient::with_interceptor(fetcher_channel, inject);
        let decision = DecisionServiceClient::with_interceptor(decision_channel, inject);

        let watches = Watches::new(&client, self.watch_namespace.as_deref());
        let identity = identity(self.leader.identity.as_deref());
        let settings = self.controller.settings(shard, identity.clone());
        let views = Arc::new(Views::default());
        let (decisions, _) = broadcast::channel(1024);
        let (leading_tx, leading) = watch::channel(!self.leader.leader_elect);
        let (holder_tx, holder) = watch::channel(String::new());
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
            Clock::system(),
        );
        let grpc = ActuatorGrpc::new(
            client.clone(),
            watches.scalers.clone(),
            views,
            decisions,
            handle,
            shard,
            self.authz.authz(&client, &authz_metrics),
        )
        .with_leader(holder);

        let interval = self.controller.peer_check_interval;
        let tasks: Vec<(&'static str, Task)> = vec![
            self.leader.task(
                &client,
                default_namespace,
                identity,
                shard,
                (leading_tx, holder_tx),
                shutdown.clone(),
            ),
            (
                "peer health checks",
                Box::pin(peers_task(peers, interval, gate.clone(), shutdown.clone())),
            ),
            (
                "controller",
                Box::pin(controller_task(
                    ctx, watches, leading, commands, gate, shutdown,
                )),
            ),
        ];
        let bound = service.bind().await?;
        let routes = tonic::service::Routes::new(ActuatorServiceServer::new(grpc));
        bound.serve(routes, tasks).await?;
        Ok(())
    }
}

/// Checks the peers until shutdown (then waits for the server to stop first).
async fn peers_task(
    peers: Peers,
    interval: Duration,
    gate: Gate,
    shutdown: Shutdown,
) -> Result<(), String> {
    peers.watch(interval, gate, shutdown).await;
    std::future::pending::<()>().await;
    Ok(())
}

/// Runs the controller; its end before shutdown is an error that stops the process.
async fn controller_task(
    ctx: Arc<controller::Context>,
    watches: Watches,
    leading: watch::Receiver<bool>,
    commands: tokio::sync::mpsc::Receiver<controller::Command>,
    gate: Gate,
    shutdown: Shutdown,
) -> Result<(), String> {
    controller::run(ctx, watches, leading, commands, gate, shutdown.clone()).await;
    if shutdown.is_triggered() {
        std::future::pending::<()>().await;
    }
    Err("the controller loop stopped".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["promscaler-actuator"][..], args].concat())
    }

    #[test]
    fn absent_optional_flags_are_none_and_empty_ones_are_refused() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.watch_namespace, None);
        assert_eq!(args.leader.lease_namespace, None);
        assert_eq!(args.leader.identity, None);
        for flag in ["--watch-namespace=", "--lease-namespace= ", "--identity="] {
            assert!(parse(&[flag]).is_err(), "{flag}");
        }
        let args = parse(&["--watch-namespace=team-a", "--identity=pod-0"]).unwrap();
        assert_eq!(args.watch_namespace.as_deref(), Some("team-a"));
        assert_eq!(identity(args.leader.identity.as_deref()), "pod-0");
    }

    #[test]
    fn shard_and_rate_flags_are_checked_when_parsed() {
        assert!(parse(&["--shard-count=0"]).is_err());
        assert!(parse(&["--kube-qps=0"]).is_err());
        assert!(parse(&["--kube-qps=NaN"]).is_err());
        let args = parse(&["--shard-index=2", "--shard-count=2"]).unwrap();
        assert!(args.shard.shard().is_err());
        let args = parse(&["--shard-index=1", "--shard-count=2"]).unwrap();
        let shard = args.shard.shard().unwrap();
        assert_eq!((shard.index, shard.count), (1, 2));
    }

    #[test]
    fn settings_keep_their_tolerant_defaults() {
        let args = parse(&[
            "--max-concurrent-ticks=0",
            "--min-backoff=10ms",
            "--max-backoff=50ms",
        ])
        .unwrap();
        let settings = args
            .controller
            .settings(Shard { index: 0, count: 1 }, "me".into());
        assert_eq!(settings.max_concurrent_ticks, 1);
        assert_eq!(settings.min_backoff, Duration::from_millis(100));
    }
}
