//! Reachability of the services the actuator depends on. The actuator is ready only while the
//! metrics-fetcher and the decision service both report SERVING over grpc.health.v1: without
//! them it cannot decide, and a load balancer or operator should see that.

use std::time::Duration;

use promscaler_runtime::Shutdown;

use crate::readiness::Gate;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// One peer service.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    name: &'static str,
    service: &'static str,
    channel: Channel,
}

impl Peer {
    /// A peer called `name` in logs, serving the gRPC `service` on `channel`.
    pub(crate) fn new(name: &'static str, service: &'static str, channel: Channel) -> Self {
        Self {
            name,
            service,
            channel,
        }
    }

    /// Whether the peer reports SERVING for its service within `timeout`.
    pub(crate) async fn is_serving(&self, timeout: Duration) -> Result<(), String> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest {
            service: self.service.to_owned(),
        };
        match tokio::time::timeout(timeout, client.check(request)).await {
            Err(_) => Err(format!(
                "{} did not answer its health check within {timeout:?}",
                self.name
            )),
            Ok(Err(status)) => Err(format!(
                "{} health check failed: {}",
                self.name,
                status.message()
            )),
            Ok(Ok(response)) => match response.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("{} reports {}", self.name, other.as_str_name())),
            },
        }
    }
}

/// The set of peers, checked together.
#[derive(Debug, Clone)]
pub(crate) struct Peers(Vec<Peer>);

impl Peers {
    /// The peers to check.
    pub(crate) fn new(peers: Vec<Peer>) -> Self {
        Self(peers)
    }

    /// Checks every peer; `Err` lists the ones that are not serving.
    pub(crate) async fn check(&self, timeout: Duration) -> Result<(), String> {
        let results =
            futures::future::join_all(self.0.iter().map(|peer| peer.is_serving(timeout))).await;
        let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Checks the peers every `interval` and mirrors the outcome in `gate` until shutdown.
    pub(crate) async fn watch(self, interval: Duration, gate: Gate, shutdown: Shutdown) {
        let mut last: Option<Result<(), String>> = None;
        loop {
            let outcome = self.check(interval.min(Duration::from_secs(3))).await;
            if last.as_ref() != Some(&outcome) {
                match &outcome {
                    Ok(()) => tracing::info!("metrics-fetcher and decision are serving"),
                    Err(reason) => tracing::warn!(%reason, "not ready: a peer is not serving"),
                }
            }
            gate.set_peers_serving(outcome.is_ok());
            last = Some(outcome);
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}
