//! ActuatorService over gRPC. The controller (actuator issue) fills these handlers.

use promscaler_proto::v1::{
    DecisionEvent, ListScalersRequest, ListScalersResponse, ScalerRef, ScalerStatus,
    WatchDecisionsRequest, actuator_service_server::ActuatorService,
};
use tonic::{Request, Response, Status};

/// The ActuatorService handlers.
#[derive(Debug, Default, Clone)]
pub struct ActuatorGrpc;

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: it arrives with the PromScaler controller"
    ))
}

#[tonic::async_trait]
impl ActuatorService for ActuatorGrpc {
    async fn list_scalers(
        &self,
        _: Request<ListScalersRequest>,
    ) -> Result<Response<ListScalersResponse>, Status> {
        Err(not_yet("ListScalers"))
    }

    async fn get_scaler(&self, _: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        Err(not_yet("GetScaler"))
    }

    type WatchDecisionsStream =
        tokio_stream::wrappers::ReceiverStream<Result<DecisionEvent, Status>>;

    async fn watch_decisions(
        &self,
        _: Request<WatchDecisionsRequest>,
    ) -> Result<Response<Self::WatchDecisionsStream>, Status> {
        Err(not_yet("WatchDecisions"))
    }

    async fn pause(&self, _: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        Err(not_yet("Pause"))
    }

    async fn resume(&self, _: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        Err(not_yet("Resume"))
    }

    async fn reconcile(&self, _: Request<ScalerRef>) -> Result<Response<DecisionEvent>, Status> {
        Err(not_yet("Reconcile"))
    }
}
