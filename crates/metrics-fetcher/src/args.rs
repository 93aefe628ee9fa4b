//! Command-line flags and the composition root of `promscaler-metrics-fetcher`.

use std::sync::Arc;
use std::time::Duration;

use promscaler_runtime::args::parse_duration;
use promscaler_runtime::{ServerArgs, Service};

use crate::aws::{CredentialStore, env_region};
use crate::fusion::FusionConfig;
use crate::metrics::Metrics;
use crate::pacing::Budget;
use crate::policy::{HostPattern, NamespacePolicy, Policy};
use crate::prometheus::UpstreamConfig;
use crate::{Config, Fetcher, FetcherService, SERVICE};

/// `promscaler-metrics-fetcher`: queries Prometheus-compatible servers (AMP with SigV4) for the
/// actuator and other tools. Stateless apart from caches: run as many replicas as needed.
#[derive(Debug, clap::Parser)]
#[command(name = "promscaler-metrics-fetcher", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub fetcher: FetcherArgs,
}

/// The fetcher's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FetcherArgs {
    /// Hosts that may be queried, comma-separated patterns: "prometheus.monitoring.svc",
    /// "*.example.com" (one or more leading labels), "aps-workspaces.*.amazonaws.com" (`*`
    /// within a label: AMP in any region), optionally with ":port". Empty = any host.
    #[arg(long, env = "PROMSCALER_ALLOWED_SERVERS", value_delimiter = ',')]
    pub allowed_servers: Vec<HostPattern>,

    /// Namespaces whose PromScalers may use the fetcher's own AWS identity (KEDA
    /// `identityOwner: operator`), comma-separated; "*" = any. Unset = any namespace.
    #[arg(
        long,
        env = "PROMSCALER_OPERATOR_IDENTITY_NAMESPACES",
        value_delimiter = ','
    )]
    pub operator_identity_namespaces: Option<Vec<String>>,

    /// YAML (or JSON) file of what each namespace may do with the fetcher's own AWS identity:
    /// `namespaces: {<ns>: {roleArns: [...], workspaces: [...]}}` — the role ARNs it may assume
    /// with it and the AMP workspace IDs (ws-...) it may query with it; "*" = any. A namespace
    /// without an entry may do neither. Unset = no per-namespace limits.
    #[arg(long, env = "PROMSCALER_NAMESPACE_POLICY_FILE")]
    pub namespace_policy_file: Option<std::path::PathBuf>,

    /// Tag the STS session of every role ARN assumed for a PromScaler with its namespace
    /// (session tag promscaler-namespace, transitive; session name `promscaler-<namespace>`), so
    /// IAM policies can enforce it. The role's trust policy must allow sts:TagSession; "false"
    /// assumes roles untagged.
    #[arg(
        long,
        env = "PROMSCALER_STS_SESSION_TAGS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub sts_session_tags: bool,

    /// Allow queries to link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses
    /// (169.254.169.254, fd00:ec2::254), as IP literals or resolved from a name. Off by
    /// default: they hold instance credentials, never a Prometheus.
    #[arg(long, env = "PROMSCALER_ALLOW_LINK_LOCAL")]
    pub allow_link_local: bool,

    /// Concurrent upstream requests per server host.
    #[arg(long, env = "PROMSCALER_PER_SERVER_CONCURRENCY", default_value_t = 16)]
    pub per_server_concurrency: usize,

    /// Largest accepted upstream response body, bytes.
    #[arg(long, env = "PROMSCALER_MAX_RESPONSE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// How long results stay available to requests with a max_age, e.g. "10m".
    #[arg(long, env = "PROMSCALER_CACHE_RETENTION", default_value = "10m", value_parser = parse_duration)]
    pub cache_retention: Duration,

    /// Largest accepted per-query timeout (`source.timeout`), e.g. "30s"; a query asking for
    /// more is rejected with INVALID_ARGUMENT naming this limit.
    #[arg(long, env = "PROMSCALER_MAX_QUERY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub max_query_timeout: Duration,

    /// Longest `Retry-After` honoured, e.g. "5m": a source whose server asks to wait longer is
    /// queried again after this.
    #[arg(long, env = "PROMSCALER_MAX_RETRY_AFTER", default_value = "5m", value_parser = parse_duration)]
    pub max_retry_after: Duration,

    /// Most bytes of query results the cache keeps (least recently used are dropped first).
    /// Only the part of an answer a caller can use is kept: the value, or for a multi-series
    /// answer its count and the first 20 label sets.
    #[arg(long, env = "PROMSCALER_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: usize,

    /// Upstream requests per second per server address (for AMP: per workspace), e.g. "40".
    /// Requests above the budget queue in arrival order instead of failing. Unset = unlimited.
    /// AMP answers 429 above its per-workspace query rate: set this below it.
    #[arg(long, env = "PROMSCALER_UPSTREAM_QPS")]
    pub upstream_qps: Option<f64>,

    /// Requests per server that may go at once after a quiet period (needs --upstream-qps).
    /// Unset = the whole second's budget (--upstream-qps rounded up).
    #[arg(long, env = "PROMSCALER_UPSTREAM_BURST", requires = "upstream_qps")]
    pub upstream_burst: Option<u32>,

    /// Longest a request may expect to queue for its server's budget, e.g. "30s"; a request
    /// behind a longer queue is refused at once (THROTTLED, naming the queue). Callers that
    /// give up earlier (a gRPC deadline) leave the queue.
    #[arg(long, env = "PROMSCALER_UPSTREAM_MAX_QUEUE_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub upstream_max_queue_wait: Duration,

    /// Ask instant queries for their statistics (`stats=all`), so each answer reports the
    /// samples it processed (what AMP bills). Turn off for an upstream that rejects the
    /// parameter.
    #[arg(long, env = "PROMSCALER_QUERY_STATS", default_value_t = true, action = clap::ArgAction::Set)]
    pub query_stats: bool,

    /// Largest QueryBatch.
    #[arg(long, env = "PROMSCALER_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,

    /// Fuse look-alike queries (equal apart from one label's value) into one upstream query
    /// grouped by that label; "false" sends every query as it is.
    #[arg(long, env = "PROMSCALER_FUSION", default_value_t = true, action = clap::ArgAction::Set)]
    pub fusion: bool,

    /// How long a fused query waits for more look-alikes after the first, e.g. "20ms"
    /// (members of one QueryBatch always meet).
    #[arg(long, env = "PROMSCALER_FUSION_WINDOW", default_value = "20ms", value_parser = parse_duration)]
    pub fusion_window: Duration,

    /// Most distinct label values (members) per fused query, at least 2.
    #[arg(long, env = "PROMSCALER_FUSION_MAX_MEMBERS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub fusion_max_members: u32,
}

impl FetcherArgs {
    /// The policy these flags describe; fails when the namespace policy file is unusable.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let namespaces = match &self.namespace_policy_file {
            None => None,
            Some(path) => Some(
                NamespacePolicy::load(path)
                    .map_err(|e| anyhow::anyhow!("--namespace-policy-file {e}"))?,
            ),
        };
        Ok(Policy {
            allowed_servers: self.allowed_servers.clone(),
            operator_identity_namespaces: self.operator_identity_namespaces.clone().map(|ns| {
                ns.into_iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect()
            }),
            allow_link_local: self.allow_link_local,
            namespaces,
        })
    }

    /// The per-server budget these flags describe, or an error naming the flag to fix.
    pub fn budget(&self) -> Result<Option<Budget>, String> {
        let Some(qps) = self.upstream_qps else {
            return Ok(None);
        };
        // The default burst is one second's worth (at least 1).
        let burst = match self.upstream_burst {
            Some(b) => b,
            None if qps.is_finite() && qps > 0.0 => qps.ceil().min(f64::from(u32::MAX)) as u32,
            None => 1,
        };
        Budget::new(qps, burst, self.upstream_max_queue_wait).map(Some)
    }

    /// The fetcher settings these flags describe.
    pub fn config(&self) -> Result<Config, String> {
        Ok(Config {
            upstream: UpstreamConfig {
                budget: self.budget()?,
                query_stats: self.query_stats,
                max_body_bytes: self.max_response_bytes,
                per_server_concurrency: self.per_server_concurrency,
                allow_link_local: self.allow_link_local,
                max_retry_after: self.max_retry_after,
                ..UpstreamConfig::default()
            },
            max_batch: self.max_batch,
            cache_retention: self.cache_retention,
            max_query_timeout: self.max_query_timeout,
            cache_max_bytes: self.cache_max_bytes,
            fusion: FusionConfig {
                enabled: self.fusion,
                window: self.fusion_window,
                max_members: self.fusion_max_members as usize,
            },
            ..Config::default()
        })
    }
}

impl Args {
    /// Runs the service until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        let mut service = Service::init(SERVICE, self.server)?;
        let metrics = Metrics::default();
        metrics.register(service.registry());
        let policy = self.fetcher.policy()?;
        tracing::info!(policy = %policy.describe(), "fetcher policy");
        let credentials = Arc::new(
            CredentialStore::new(env_region(), metrics.clone())
                .with_session_tags(self.fetcher.sts_session_tags),
        );
        let config = self.fetcher.config().map_err(anyhow::Error::msg)?;
        if let Some(b) = config.upstream.budget {
            tracing::info!(qps = b.qps, burst = b.burst, max_queue_wait = ?b.max_wait, "upstream budget per server");
        }
        let fetcher = Arc::new(Fetcher::new(config, policy, credentials, metrics));
        let bound = service.bind().await?;
        let routes =
            tonic::service::Routes::new(FetcherService::new(fetcher.clone()).into_server());
        let pruner: promscaler_runtime::server::Task = Box::pin(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                fetcher.prune_cache();
            }
        });
        bound.serve(routes, vec![("cache-pruner", pruner)]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn policy_flags_parse_comma_separated_lists() {
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher",
            "--allowed-servers=*.amazonaws.com,prometheus.monitoring.svc:9090",
            "--operator-identity-namespaces=team-a, team-b",
        ])
        .unwrap();
        let policy = args.fetcher.policy().unwrap();
        assert_eq!(policy.allowed_servers.len(), 2);
        assert!(policy.allowed_servers[1].matches("prometheus.monitoring.svc", Some(9090)));
        assert_eq!(
            policy.operator_identity_namespaces,
            Some(vec!["team-a".to_owned(), "team-b".to_owned()])
        );
    }

    #[test]
    fn no_policy_flags_mean_an_open_policy() {
        let args = Args::try_parse_from(["promscaler-metrics-fetcher"]).unwrap();
        let policy = args.fetcher.policy().unwrap();
        assert!(policy.allowed_servers.is_empty());
        assert_eq!(policy.operator_identity_namespaces, None);
        assert_eq!(args.fetcher.config().unwrap().max_batch, 1000);
        assert_eq!(args.fetcher.budget(), Ok(None), "no budget: unlimited");
        let fusion = args.fetcher.config().unwrap().fusion;
        assert!(fusion.enabled);
        assert_eq!(fusion.window, Duration::from_millis(20));
        assert_eq!(fusion.max_members, 100);
    }

    #[test]
    fn the_upstream_budget_defaults_its_burst_to_one_seconds_worth() {
        let args =
            Args::try_parse_from(["promscaler-metrics-fetcher", "--upstream-qps=12.5"]).unwrap();
        let budget = args.fetcher.budget().unwrap().unwrap();
        assert_eq!((budget.qps, budget.burst), (12.5, 13));
        assert_eq!(budget.max_wait, Duration::from_secs(30));
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher",
            "--upstream-qps=40",
            "--upstream-burst=5",
            "--upstream-max-queue-wait=2m",
        ])
        .unwrap();
        let budget = args.fetcher.budget().unwrap().unwrap();
        assert_eq!((budget.qps, budget.burst), (40.0, 5));
        assert_eq!(budget.max_wait, Duration::from_secs(120));
    }

    #[test]
    fn a_bad_upstream_budget_names_the_flag() {
        for bad in [
            "--upstream-qps=0",
            "--upstream-qps=-3",
            "--upstream-qps=NaN",
        ] {
            let args = Args::try_parse_from(["promscaler-metrics-fetcher", bad]).unwrap();
            let err = args.fetcher.config().unwrap_err();
            assert!(err.contains("--upstream-qps"), "{bad}: {err}");
        }
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher",
            "--upstream-qps=1",
            "--upstream-burst=0",
        ])
        .unwrap();
        assert!(
            args.fetcher
                .config()
                .unwrap_err()
                .contains("--upstream-burst")
        );
        // A burst alone means nothing: clap refuses it.
        let err =
            Args::try_parse_from(["promscaler-metrics-fetcher", "--upstream-burst=3"]).unwrap_err();
        assert!(err.to_string().contains("--upstream-qps"), "{err}");
    }

    #[test]
    fn the_namespace_policy_file_is_read_at_start_and_a_bad_one_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "namespaces:\n  team-a:\n    workspaces: [ws-1]\n").unwrap();
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher".to_owned(),
            format!("--namespace-policy-file={}", good.display()),
        ])
        .unwrap();
        let policy = args.fetcher.policy().unwrap();
        assert_eq!(policy.namespaces.unwrap().namespaces.len(), 1);
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher".to_owned(),
            format!(
                "--namespace-policy-file={}",
                dir.path().join("absent").display()
            ),
        ])
        .unwrap();
        let err = args.fetcher.policy().unwrap_err().to_string();
        assert!(
            err.contains("--namespace-policy-file") && err.contains("absent"),
            "{err}"
        );
    }

    #[test]
    fn sts_session_tags_are_on_unless_turned_off() {
        let args = Args::try_parse_from(["promscaler-metrics-fetcher"]).unwrap();
        assert!(args.fetcher.sts_session_tags);
        let args = Args::try_parse_from(["promscaler-metrics-fetcher", "--sts-session-tags=false"])
            .unwrap();
        assert!(!args.fetcher.sts_session_tags);
    }

    #[test]
    fn fusion_flags_parse_and_bound_the_members() {
        let args = Args::try_parse_from([
            "promscaler-metrics-fetcher",
            "--fusion=false",
            "--fusion-window=150ms",
            "--fusion-max-members=7",
        ])
        .unwrap();
        let fusion = args.fetcher.config().unwrap().fusion;
        assert!(!fusion.enabled);
        assert_eq!(fusion.window, Duration::from_millis(150));
        assert_eq!(fusion.max_members, 7);
        let err = Args::try_parse_from(["promscaler-metrics-fetcher", "--fusion-max-members=1"])
            .unwrap_err();
        assert!(err.to_string().contains("fusion-max-members"), "{err}");
    }

    #[test]
    fn urls_are_not_host_patterns() {
        let err = Args::try_parse_from([
            "promscaler-metrics-fetcher",
            "--allowed-servers=https://prometheus:9090",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }
}
