//! The actuator's errors as ActuatorService callers see them; `grpc` maps each to a status code.

use crate::types::ScalerKey;

/// Why an ActuatorService request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request's `ScalerRef` lacks a namespace or a name.
    #[error("namespace and name are required")]
    MissingRef,
    /// No such PromScaler (or it was deleted while the request waited).
    #[error("PromScaler {0} not found")]
    NotFound(ScalerKey),
    /// The PromScaler is another shard's.
    #[error("PromScaler {0} belongs to another shard; send Reconcile to that shard's leader")]
    OtherShard(ScalerKey),
    /// This replica is a standby; `what` is served by the leader only.
    #[error("this actuator replica is a standby: {what} only on {}", describe_leader(.leader))]
    Standby {
        /// What only the leader does, e.g. "Reconcile is served".
        what: &'static str,
        /// The leader's identity from the Lease ("" when none is known).
        leader: String,
    },
    /// The controller loop is not running (the process is shutting down).
    #[error("the controller loop has stopped")]
    LoopStopped,
    /// The caller is not authenticated, may not do this, or cannot be checked.
    #[error(transparent)]
    Auth(#[from] crate::authz::AuthError),
    /// Writing the PromScaler to the Kubernetes API failed.
    #[error("cannot update PromScaler {key}: {source}")]
    Kube {
        /// Which PromScaler.
        key: ScalerKey,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
}

fn describe_leader(leader: &str) -> String {
    if leader.is_empty() {
        "the leader (none is known yet)".to_owned()
    } else {
        format!("the leader, pod {leader} (kubectl port-forward pod/{leader} to reach it)")
    }
}
