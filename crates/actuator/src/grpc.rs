//! ActuatorService: what the actuator knows, served from memory (the watch cache and the last
//! decisions), plus Pause/Resume (annotations) and Reconcile (evaluate now).
//!
//! Every call is authorized per caller ([`crate::authz`]) as `kubectl` would be for the same
//! access to `promscalers.promscaler.io`: GetScaler needs `get` on the PromScaler, ListScalers
//! answers with the namespaces the caller may `list` (filtered, never failed), WatchDecisions
//! needs `watch` (cluster-wide, or per namespace of each event), and Pause, Resume and Reconcile
//! need `patch` on the PromScaler (Pause and Resume are a merge patch of an annotation, what
//! `kubectl annotate` sends; Reconcile may change its target and status).

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use kube::{
    Api, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use promscaler_api::PromScaler;
use promscaler_proto::v1::{
    Condition, DecisionEvent, ListScalersRequest, ListScalersResponse, ScalerRef, ScalerStatus,
    WatchDecisionsRequest, actuator_service_server::ActuatorService,
};
use tokio::sync::{broadcast, watch};
use tokio_stream::{StreamExt as _, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

use crate::{
    authz::{Access, AuthError, Authz, Identity},
    controller::Handle,
    error::Error,
    status,
    types::{ScalerKey, Shard},
    views::Views,
};

/// Annotation set by `Pause` (KEDA's `autoscaling.keda.sh/paused` works the same).
pub(crate) const PAUSED_ANNOTATION: &str = "promscaler.io/paused";

/// The ActuatorService handlers.
#[derive(Clone)]
pub(crate) struct ActuatorGrpc {
    client: kube::Client,
    scalers: Store<PromScaler>,
    views: Arc<Views>,
    decisions: broadcast::Sender<DecisionEvent>,
    handle: Handle,
    shard: Shard,
    /// The leader's identity while this replica is a standby.
    leader: watch::Receiver<String>,
    authz: Authz,
}

impl std::fmt::Debug for ActuatorGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActuatorGrpc").finish_non_exhaustive()
    }
}

impl ActuatorGrpc {
    /// Handlers over the controller's cache, memory and command handle; every call is
    /// authorized by `authz` ([`Authz::disabled`] lets anyone do anything).
    pub(crate) fn new(
        client: kube::Client,
        scalers: Store<PromScaler>,
        views: Arc<Views>,
        decisions: broadcast::Sender<DecisionEvent>,
        handle: Handle,
        shard: Shard,
        authz: Authz,
    ) -> Self {
        Self {
            client,
            scalers,
            views,
            decisions,
            handle,
            shard,
            leader: watch::channel(String::new()).1,
            authz,
        }
    }

    /// Who sent `request`, or `UNAUTHENTICATED`.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Identity, Error> {
        Ok(self.authz.authenticate(request.metadata()).await?)
    }

    /// The caller of `request`, if it may do `verb` on the PromScaler `reference` names.
    async fn authorize(
        &self,
        request: &Request<ScalerRef>,
        verb: &'static str,
    ) -> Result<Identity, Error> {
        let reference = request.get_ref();
        if reference.namespace.is_empty() || reference.name.is_empty() {
            return Err(Error::MissingRef);
        }
        let caller = self.caller(request).await?;
        let access = Access {
            verb,
            namespace: &reference.namespace,
            name: &reference.name,
        };
        self.authz.require(&caller, access).await?;
        Ok(caller)
    }

    /// The namespaces among `namespaces` where `caller` may list PromScalers (all of them when
    /// it may list cluster-wide). One review per namespace, at most 8 at once, cached.
    async fn listable(
        &self,
        caller: &Identity,
        namespaces: std::collections::BTreeSet<String>,
    ) -> Result<std::collections::BTreeSet<String>, Error> {
        let all = Access {
            verb: "list",
            namespace: "",
            name: "",
        };
        if self.authz.allowed(caller, all).await? {
            return Ok(namespaces);
        }
        let checks = namespaces.into_iter().map(|namespace| async move {
            let access = Access {
                verb: "list",
                namespace: &namespace,
                name: "",
            };
            let allowed = self.authz.allowed(caller, access).await?;
            Ok::<_, Error>(allowed.then_some(namespace))
        });
        let answers: Vec<Result<Option<String>, Error>> = futures::StreamExt::collect(
            futures::StreamExt::buffer_unordered(futures::stream::iter(checks), 8),
        )
        .await;
        let mut allowed = std::collections::BTreeSet::new();
        for answer in answers {
            allowed.extend(answer?);
        }
        Ok(allowed)
    }

    /// Reads the leader's identity from `leader` (see [`crate::leader::LeaderElector::run`]).
    pub(crate) fn with_leader(mut self, leader: watch::Receiver<String>) -> Self {
        self.leader = leader;
        self
    }

    /// `None` when this replica leads; else the leader's identity ("" when none is known yet).
    fn standby_of(&self) -> Option<String> {
        (!self.handle.is_leader()).then(|| self.leader.borrow().clone())
    }

    /// Fails with [`Error::Standby`] while this replica is a standby: `what` is the leader's.
    fn require_leader(&self, what: &'static str) -> Result<(), Error> {
        match self.standby_of() {
            None => Ok(()),
            Some(leader) => Err(Error::Standby { what, leader }),
        }
    }

    fn summary(&self, scaler: &PromScaler) -> ScalerStatus {
        let key = ScalerKey::of(scaler);
        let status = scaler.status.clone().unwrap_or_default();
        // A standby's last decisions (from before it lost the Lease, if ever) are stale.
        let standby_of = self.standby_of();
        let last_decision = if standby_of.is_some() {
            None
        } else {
            self.views.last_event(&key)
        };
        let last_values = last_decision
            .as_ref()
            .and_then(|e| e.decision.as_ref())
            .map(|d| {
                d.triggers
                    .iter()
                    .filter_map(|t| Some((t.name.clone(), t.value?)))
                    .collect()
            })
            .unwrap_or_default();
        let samples_last_interval = last_decision.as_ref().and_then(|e| e.samples_processed);
        let samples_per_hour = samples_last_interval.map(|samples| {
            let polling = scaler
                .spec
                .polling_interval
                .unwrap_or(promscaler_api::DEFAULT_POLLING_INTERVAL_SECONDS)
                .max(1);
            samples as f64 * 3600.0 / f64::from(polling)
        });
        ScalerStatus {
            r#ref: Some(ScalerRef {
                namespace: key.namespace.to_string(),
                name: key.name.to_string(),
            }),
            target: Some(scaler.spec.scale_target_ref.with_defaults()),
            min_replicas: scaler.spec.min_replica_count.unwrap_or(0),
            max_replicas: scaler.spec.max_replica_count.unwrap_or(100),
            trigger_types: scaler
                .spec
                .triggers
                .iter()
                .map(|t| t.type_.clone())
                .collect(),
            authentications: scaler
                .spec
                .triggers
                .iter()
                .filter_map(|t| Some(t.authentication_ref.as_ref()?.name.clone()))
                .collect(),
            conditions: status
                .conditions
                .iter()
                .map(|c| Condition {
                    r#type: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                })
                .collect(),
            last_values,
            replicas: last_decision.as_ref().and_then(|e| e.replicas),
            desired_replicas: last_decision
                .as_ref()
                .and_then(|e| e.decision.as_ref())
                .map_or(status.desired_replicas.unwrap_or(0), |d| d.desired_replicas),
            leader: standby_of.unwrap_or_default(),
            last_scale_time: status.last_scale_time.as_ref().map(status::from_time),
            // The decision's own parser: `paused: "1"` is paused here as it is there.
            paused: promscaler_api::is_paused(scaler.annotations()),
            samples_last_interval,
            samples_per_hour,
            samples_total: self.views.samples_total(&key),
            last_decision,
        }
    }

    fn find(&self, reference: &ScalerRef) -> Result<Arc<PromScaler>, Error> {
        if reference.namespace.is_empty() || reference.name.is_empty() {
            return Err(Error::MissingRef);
        }
        self.scalers
            .get(&ObjectRef::new(&reference.name).within(&reference.namespace))
            .ok_or_else(|| {
                Error::NotFound(ScalerKey {
                    namespace: reference.namespace.as_str().into(),
                    name: reference.name.as_str().into(),
                })
            })
    }

    async fn set_paused(&self, reference: &ScalerRef, paused: bool) -> Result<ScalerStatus, Error> {
        let key = ScalerKey::of(&*self.find(reference)?);
        let api: Api<PromScaler> = Api::namespaced(self.client.clone(), &key.namespace);
        let value = if paused {
            serde_json::json!("true")
        } else {
            serde_json::Value::Null
        };
        let patch =
            serde_json::json!({ "metadata": { "annotations": { PAUSED_ANNOTATION: value } } });
        let updated = api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| match source {
                kube::Error::Api(status) if status.code == 404 => Error::NotFound(key.clone()),
                source => Error::Kube {
                    key: key.clone(),
                    source,
                },
            })?;
        Ok(self.summary(&updated))
    }
}

/// Client mistakes are the caller's to fix; a stopped loop or a failing API server is ours.
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::MissingRef => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::OtherShard(_) | Error::Standby { .. } => Status::failed_precondition(message),
            Error::LoopStopped | Error::Kube { .. } => Status::unavailable(message),
            Error::Auth(AuthError::Unauthenticated(_)) => Status::unauthenticated(message),
            Error::Auth(AuthError::Denied { .. }) => Status::permission_denied(message),
            Error::Auth(AuthError::Review(_)) => Status::unavailable(message),
        }
    }
}

#[tonic::async_trait]
impl ActuatorService for ActuatorGrpc {
    async fn list_scalers(
        &self,
        request: Request<ListScalersRequest>,
    ) -> Result<Response<ListScalersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let namespace = request.into_inner().namespace;
        let candidates: Vec<Arc<PromScaler>> = self
            .scalers
            .state()
            .into_iter()
            .filter(|s| {
                namespace.is_empty() || s.namespace().as_deref() == Some(namespace.as_str())
            })
            .filter(|s| self.shard.owns(&ScalerKey::of(s)))
            .collect();
        let allowed = self
            .listable(
                &caller,
                candidates
                    .iter()
                    .map(|s| s.namespace().unwrap_or_default())
                    .collect(),
            )
            .await?;
        let mut scalers: Vec<ScalerStatus> = candidates
            .iter()
            .filter(|s| allowed.contains(&s.namespace().unwrap_or_default()))
            .map(|s| self.summary(s))
            .collect();
        scalers.sort_by(|a, b| {
            let key = |s: &ScalerStatus| {
                s.r#ref
                    .as_ref()
                    .map(|r| (r.namespace.clone(), r.name.clone()))
            };
            key(a).cmp(&key(b))
        });
        Ok(Response::new(ListScalersResponse {
            scalers,
            leader: self.standby_of().unwrap_or_default(),
        }))
    }

    async fn get_scaler(
        &self,
        request: Request<ScalerRef>,
    ) -> Result<Response<ScalerStatus>, Status> {
        self.authorize(&request, "get").await?;
        let scaler = self.find(request.get_ref())?;
        Ok(Response::new(self.summary(&scaler)))
    }

    type WatchDecisionsStream =
        Pin<Box<dyn Stream<Item = Result<DecisionEvent, Status>> + Send + 'static>>;

    async fn watch_decisions(
        &self,
        request: Request<WatchDecisionsRequest>,
    ) -> Result<Response<Self::WatchDecisionsStream>, Status> {
        let caller = self.caller(&request).await?;
        let namespace = request.into_inner().namespace;
        // One namespace: the caller must be allowed to watch there. All namespaces: everything
        // when it may watch cluster-wide, else the events of the namespaces it may watch.
        let everything = match &namespace {
            Some(ns) => {
                let access = Access {
                    verb: "watch",
                    namespace: ns,
                    name: "",
                };
                self.authz
                    .require(&caller, access)
                    .await
                    .map_err(Error::from)?;
                true
            }
            None => {
                let access = Access {
                    verb: "watch",
                    namespace: "",
                    name: "",
                };
                self.authz
                    .allowed(&caller, access)
                    .await
                    .map_err(Error::from)?
            }
        };
        self.require_leader("decisions are made and streamed")?;
        let authz = self.authz.clone();
        let stream =
            BroadcastStream::new(self.decisions.subscribe()).filter_map(move |item| match item {
                Ok(event) => {
                    let matches = namespace
                        .as_ref()
                        .is_none_or(|ns| event.r#ref.as_ref().is_some_and(|r| &r.namespace == ns));
                    matches.then_some(event)
                }
                // A slow subscriber skips what it missed instead of slowing the controller down.
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a WatchDecisions subscriber lagged");
                    None
                }
            });
        let stream = futures::StreamExt::filter_map(stream, move |event| {
            let (authz, caller) = (authz.clone(), caller.clone());
            async move {
                if everything {
                    return Some(Ok(event));
                }
                let namespace = event
                    .r#ref
                    .as_ref()
                    .map(|r| r.namespace.clone())
                    .unwrap_or_default();
                let access = Access {
                    verb: "watch",
                    namespace: &namespace,
                    name: "",
                };
                match authz.allowed(&caller, access).await {
                    Ok(true) => Some(Ok(event)),
                    Ok(false) => None,
                    Err(error) => Some(Err(Status::from(Error::from(error)))),
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn pause(&self, request: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        let caller = self.authorize(&request, "patch").await?;
        tracing::info!(user = caller.username(), namespace = %request.get_ref().namespace, name = %request.get_ref().name, "Pause");
        Ok(Response::new(
            self.set_paused(request.get_ref(), true).await?,
        ))
    }

    async fn resume(&self, request: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        let caller = self.authorize(&request, "patch").await?;
        tracing::info!(user = caller.username(), namespace = %request.get_ref().namespace, name = %request.get_ref().name, "Resume");
        Ok(Response::new(
            self.set_paused(request.get_ref(), false).await?,
        ))
    }

    async fn reconcile(
        &self,
        request: Request<ScalerRef>,
    ) -> Result<Response<DecisionEvent>, Status> {
        self.authorize(&request, "patch").await?;
        let scaler = self.find(request.get_ref())?;
        let key = ScalerKey::of(&scaler);
        if !self.shard.owns(&key) {
            return Err(Error::OtherShard(key).into());
        }
        self.require_leader("Reconcile is served")?;
        self.handle
            .reconcile(key)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn client_mistakes_and_server_faults_get_their_own_codes() {
        let key = || ScalerKey {
            namespace: "ns".into(),
            name: "s".into(),
        };
        let table = [
            (Error::MissingRef, Code::InvalidArgument),
            (Error::NotFound(key()), Code::NotFound),
            (Error::OtherShard(key()), Code::FailedPrecondition),
            (
                Error::Standby {
                    what: "Reconcile is served",
                    leader: "actuator-0".into(),
                },
                Code::FailedPrecondition,
            ),
            (Error::LoopStopped, Code::Unavailable),
            (
                Error::Auth(AuthError::Unauthenticated("no bearer token".into())),
                Code::Unauthenticated,
            ),
            (
                Error::Auth(AuthError::Denied {
                    user: "alice".into(),
                    verb: "patch",
                    namespace: "team-b".into(),
                    name: "web".into(),
                }),
                Code::PermissionDenied,
            ),
            (
                Error::Auth(AuthError::Review("connection refused".into())),
                Code::Unavailable,
            ),
            (
                Error::Kube {
                    key: key(),
                    source: kube::Error::Service("boom".into()),
                },
                Code::Unavailable,
            ),
        ];
        for (error, code) in table {
            let message = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), message);
        }
        assert_eq!(
            Status::from(Error::NotFound(key())).message(),
            "PromScaler ns/s not found"
        );
        assert_eq!(
            Status::from(Error::Standby {
                what: "Reconcile is served",
                leader: String::new(),
            })
            .message(),
            "this actuator replica is a standby: Reconcile is served only on the leader (none is known yet)"
        );
    }
}
