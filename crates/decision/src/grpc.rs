//! `promscaler.v1.DecisionService` over gRPC: validate → call `promscaler-core` → convert.
//!
//! The service is stateless: every request carries the policy, observations, replicas and the
//! `DecisionState` the previous response returned. Wire ↔ domain conversion lives in
//! [`convert`](self) only; errors map to gRPC codes in one `From<Error> for Status`.

mod convert;

use std::time::{Instant, SystemTime};

use promscaler_core as core;
use promscaler_proto::v1::{
    DecideRequest, DecideResponse, SimulateRequest, SimulateResponse,
    decision_service_server::DecisionService,
};
use tonic::{Request, Response, Status};

use crate::metrics::{Metrics, Outcome, Rpc};

/// Why a request could not be decided. Every variant is a client mistake and names the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required message is absent.
    #[error("{field} is required")]
    Missing {
        /// Protobuf path of the field.
        field: &'static str,
    },
    /// A field's wire value cannot be represented (unknown enum value, negative duration,
    /// out-of-range timestamp, observation without a result).
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// Protobuf path of the field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The decision engine rejected the request.
    #[error(transparent)]
    Decision(#[from] core::Error),
}

impl Error {
    /// Protobuf path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field } => field,
            Self::InvalidField { field, .. } => field,
            Self::Decision(e) => e.field(),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        // Every variant is a client mistake; the message starts with the field name.
        match &e {
            Error::Missing { .. } | Error::InvalidField { .. } => {
                Status::invalid_argument(e.to_string())
            }
            Error::Decision(
                core::Error::InvalidArgument { .. } | core::Error::InvalidFormula { .. },
            ) => Status::invalid_argument(e.to_string()),
        }
    }
}

/// Decides one tick. `clock` is used only when the request has no `now`.
pub fn decide(req: &DecideRequest, clock: SystemTime) -> Result<DecideResponse, Error> {
    let policy = req
        .policy
        .as_ref()
        .ok_or(Error::Missing { field: "policy" })?;
    let policy = convert::policy_from_wire(policy)?;
    let tick = core::Tick {
        replicas: convert::replicas_from_wire(req.replicas.as_ref(), "replicas")?,
        observations: convert::observations_from_wire(&req.observations, "observations")?,
        pause: convert::pause_from_wire(req.pause.as_ref()),
    };
    let state = convert::state_from_wire(req.state.as_ref())?;
    let now = match &req.now {
        Some(t) => convert::timestamp_from_wire(t, "now")?,
        None => convert::system_time(clock),
    };
    let decision = core::decide(&policy, &tick, state, now)?;
    let mut response = convert::decision_to_wire(decision);
    // Each outcome says what its value was compared with (dashboards plot both).
    let wire_policy = req
        .policy
        .as_ref()
        .map(|p| &p.triggers[..])
        .unwrap_or_default();
    for outcome in &mut response.triggers {
        if let Some(trigger) = wire_policy.iter().find(|t| t.name == outcome.name) {
            outcome.target = trigger.target;
        }
    }
    Ok(response)
}

/// Replays a policy over a series of observations, through the same code path as [`decide`].
pub fn simulate(req: &SimulateRequest) -> Result<SimulateResponse, Error> {
    let policy = req
        .policy
        .as_ref()
        .ok_or(Error::Missing { field: "policy" })?;
    let policy = convert::policy_from_wire(policy)?;
    let sim = convert::simulation_from_wire(req)?;
    let steps = core::simulate(&policy, &sim)?;
    Ok(convert::simulated_to_wire(steps))
}

/// The DecisionService handlers.
#[derive(Debug, Default, Clone)]
pub struct DecisionGrpc {
    metrics: Option<Metrics>,
}

impl DecisionGrpc {
    /// The handlers (stateless), without metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handlers, recording into `metrics`.
    pub fn with_metrics(metrics: Metrics) -> Self {
        Self {
            metrics: Some(metrics),
        }
    }
}

#[tonic::async_trait]
impl DecisionService for DecisionGrpc {
    async fn decide(
        &self,
        request: Request<DecideRequest>,
    ) -> Result<Response<DecideResponse>, Status> {
        let started = Instant::now();
        let req = request.get_ref();
        match decide(req, SystemTime::now()) {
            Ok(resp) => {
                tracing::debug!(
                    desired = resp.desired_replicas,
                    active = resp.active,
                    "decided"
                );
                if let Some(m) = &self.metrics {
                    m.request(Rpc::Decide, Outcome::Ok);
                    let current = req.replicas.as_ref().map_or(0, |r| r.spec);
                    m.decided(
                        current,
                        resp.desired_replicas,
                        resp.fallback_active,
                        started.elapsed().as_secs_f64(),
                    );
                }
                Ok(Response::new(resp))
            }
            Err(e) => {
                tracing::debug!(field = e.field(), error = %e, "rejected Decide");
                if let Some(m) = &self.metrics {
                    m.request(Rpc::Decide, Outcome::InvalidArgument);
                }
                Err(e.into())
            }
        }
    }

    async fn simulate(
        &self,
        request: Request<SimulateRequest>,
    ) -> Result<Response<SimulateResponse>, Status> {
        let result = simulate(request.get_ref());
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(_) => Outcome::InvalidArgument,
            };
            m.request(Rpc::Simulate, outcome);
        }
        match result {
            Ok(resp) => {
                tracing::debug!(steps = resp.steps.len(), "simulated");
                Ok(Response::new(resp))
            }
            Err(e) => {
                tracing::debug!(field = e.field(), error = %e, "rejected Simulate");
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_outcome_carries_its_target() {
        let request = promscaler_proto::examples::decide_request();
        let response = decide(&request, SystemTime::UNIX_EPOCH).unwrap();
        let targets: Vec<(&str, f64)> = response
            .triggers
            .iter()
            .map(|t| (t.name.as_str(), t.target))
            .collect();
        assert_eq!(targets, vec![("rps", 50.0), ("queue", 10.0)]);
    }
}
