//! Command-line flags and the composition root of `promscaler-actuator`.

use std::time::Duration;

use promscaler_proto::v1::actuator_service_server::ActuatorServiceServer;
use promscaler_runtime::{ServerArgs, Service, grpc_client};

use crate::{SERVICE, grpc::ActuatorGrpc, peers};

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

    /// How often the peers' grpc.health.v1 status is checked, e.g. "5s".
    #[arg(long, env = "PROMSCALER_PEER_CHECK_INTERVAL", default_value = "5s", value_parser = promscaler_runtime::args::parse_duration)]
    pub peer_check_interval: Duration,
}

impl Args {
    /// Runs the actuator until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        let service = Service::init(SERVICE, self.server)?;
        let shutdown = service.shutdown();
        let fetcher = grpc_client::channel("--fetcher-addr", &self.fetcher_addr, &shutdown)?;
        let decision = grpc_client::channel("--decision-addr", &self.decision_addr, &shutdown)?;
        let peers = peers::Peers::new(vec![
            peers::Peer::new(
                "metrics-fetcher",
                promscaler_proto::service_names::METRICS_FETCHER,
                fetcher,
            ),
            peers::Peer::new(
                "decision",
                promscaler_proto::service_names::DECISION,
                decision,
            ),
        ]);
        let readiness = service.readiness();
        let bound = service.bind().await?;
        let routes =
            tonic::service::Routes::new(ActuatorServiceServer::new(ActuatorGrpc));
        let interval = self.peer_check_interval;
        let watch_peers = Box::pin(async move {
            peers.watch(interval, readiness, shutdown).await;
            Ok(())
        });
        bound
            .serve(routes, vec![("peer health checks", watch_peers)])
            .await?;
        Ok(())
    }
}
