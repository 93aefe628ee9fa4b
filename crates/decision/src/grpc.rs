//! DecisionService over gRPC. The decision engine (issue #3) replaces these handlers.

use promscaler_proto::v1::{
    DecideRequest, DecideResponse, SimulateRequest, SimulateResponse,
    decision_service_server::DecisionService,
};
use tonic::{Request, Response, Status};

/// The DecisionService handlers.
#[derive(Debug, Default, Clone)]
pub struct DecisionGrpc {
    _private: (),
}

#[tonic::async_trait]
impl DecisionService for DecisionGrpc {
    async fn decide(&self, _: Request<DecideRequest>) -> Result<Response<DecideResponse>, Status> {
        Err(Status::unimplemented(
            "Decide is not implemented yet: it arrives with the decision engine",
        ))
    }

    async fn simulate(
        &self,
        _: Request<SimulateRequest>,
    ) -> Result<Response<SimulateResponse>, Status> {
        Err(Status::unimplemented(
            "Simulate is not implemented yet: it arrives with the decision engine",
        ))
    }
}
