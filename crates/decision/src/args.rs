//! Command-line flags and the composition root of `promscaler-decision`.

use promscaler_proto::v1::decision_service_server::DecisionServiceServer;
use promscaler_runtime::{ServerArgs, Service};

use crate::{SERVICE, grpc::DecisionGrpc, metrics::Metrics};

/// `promscaler-decision`: decides replica counts with KEDA ScaledObject and Kubernetes HPA rules.
/// Stateless: run as many replicas as the load needs.
#[derive(Debug, clap::Parser)]
#[command(name = "promscaler-decision", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
}

impl Args {
    /// Runs the service until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        let mut service = Service::init(SERVICE, self.server)?;
        let metrics = Metrics::register(service.registry());
        let bound = service.bind().await?;
        let routes = tonic::service::Routes::new(DecisionServiceServer::new(
            DecisionGrpc::with_metrics(metrics),
        ));
        bound.serve(routes, Vec::new()).await?;
        Ok(())
    }
}
