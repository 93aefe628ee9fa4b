//! The command line: global flags (service addresses, output, timeout) and the subcommands.

use std::time::Duration;

use promscaler_runtime::args::parse_duration;

use crate::Error;
use crate::clients::Clients;
use crate::commands::{
    check, cost, decide, import_adapter, import_keda, simulate, status, validate, watch,
};
use crate::output::Format;

/// promscalerctl: check queries, explain and replay decisions, import KEDA ScaledObjects and
/// watch the actuator, over the promscaler services' gRPC APIs.
#[derive(Debug, clap::Parser)]
#[command(name = "promscalerctl", version)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// MetricsFetcherService address: http://host:port, or dns:///host:port to balance over every
    /// address the name resolves to.
    #[arg(
        long,
        env = "PROMSCALER_FETCHER_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub fetcher_addr: String,

    /// DecisionService address.
    #[arg(
        long,
        env = "PROMSCALER_DECISION_ADDR",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub decision_addr: String,

    /// ActuatorService address.
    #[arg(
        long,
        env = "PROMSCALER_ACTUATOR_ADDR",
        default_value = "http://127.0.0.1:50053",
        global = true
    )]
    pub actuator_addr: String,

    /// Output format.
    #[arg(
        short = 'o',
        long,
        env = "PROMSCALER_OUTPUT",
        value_enum,
        default_value_t = Format::Table,
        global = true
    )]
    pub output: Format,

    /// Deadline of each call to a service, e.g. "10s" (for `watch`: of opening the stream).
    #[arg(
        long,
        env = "PROMSCALER_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration,
        global = true
    )]
    pub timeout: Duration,

    /// Kubernetes bearer token for the actuator, which authorizes each call as kubectl would
    /// (get/list/watch/patch on promscalers): e.g. "$(kubectl create token NAME)" or the token of
    /// your kubeconfig user. Takes precedence over --token-file.
    #[arg(long, env = "PROMSCALER_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    /// File holding the bearer token for the actuator. Without --token and --token-file, the
    /// pod's ServiceAccount token (/var/run/secrets/kubernetes.io/serviceaccount/token) is used
    /// when it exists, so promscalerctl inside the actuator's pod needs no flag.
    #[arg(long, env = "PROMSCALER_TOKEN_FILE", global = true)]
    pub token_file: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub peer_tls: promscaler_runtime::tls::PeerTlsArgs,
}

/// The subcommands. Their flags are per invocation, so unlike the global flags they are not
/// read from the environment.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Asks the metrics-fetcher whether each trigger's query can drive scaling.
    Check(check::Args),
    /// One decision for given trigger values, with its explanation.
    Decide(decide::Args),
    /// Replays a time range through the policy: what would this PromScaler have done?
    Simulate(simulate::Args),
    /// Converts KEDA ScaledObjects/TriggerAuthentications into PromScalers.
    ImportKeda(import_keda::Args),
    /// Converts prometheus-adapter rules and the HPAs using them into PromScalers.
    ImportAdapter(import_adapter::Args),
    /// PromScalers as the actuator sees them (like `kubectl get so`).
    Status(status::Args),
    /// Streams the actuator's decisions, one line each.
    Watch(watch::Args),
    /// Validates PromScaler manifests offline, with the actuator's parser.
    Validate(validate::Args),
    /// What each PromScaler's queries cost upstream (samples processed, and money).
    Cost(cost::Args),
}

/// What commands get besides their own flags.
#[derive(Debug)]
pub struct Context {
    /// `-o/--output`.
    pub output: Format,
    pub(crate) clients: Clients,
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<(), Error> {
        let g = self.global;
        let cx = Context {
            output: g.output,
            clients: Clients::new(
                &g.fetcher_addr,
                &g.decision_addr,
                &g.actuator_addr,
                g.timeout,
                g.peer_tls,
                crate::clients::TokenSource::new(g.token, g.token_file),
            ),
        };
        match self.command {
            Command::Check(a) => check::run(a, &cx).await,
            Command::Decide(a) => decide::run(a, &cx).await,
            Command::Simulate(a) => simulate::run(a, &cx).await,
            Command::ImportKeda(a) => import_keda::run(a, &cx),
            Command::ImportAdapter(a) => import_adapter::run(a, &cx),
            Command::Status(a) => status::run(a, &cx).await,
            Command::Watch(a) => watch::run(a, &cx).await,
            Command::Validate(a) => validate::run(a, &cx),
            Command::Cost(a) => cost::run(a, &cx).await,
        }
    }
}
