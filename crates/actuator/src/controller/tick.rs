//! One evaluation of one PromScaler: read the target's replicas, query, decide, scale, record,
//! write status when needed, publish. A failure of anything the tick depends on keeps the current
//! replicas: the actuator never scales down because a peer or the API failed.
//!
//! [`tick`] is a pipeline of steps joined by `?`; each step fails with a [`TickError`], which
//! knows the `Ready` condition it yields (if any) and how the tick is counted.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use promscaler_api::{PromScaler, PromScalerStatus};
use promscaler_proto::v1::{
    self as pb, DecideRequest, DecideResponse, DecisionEvent, Observation, QueryBatchRequest,
    ScalerRef, observation, query_response,
};
use tracing::Instrument as _;

use super::{Context, target::TargetError};
use crate::{
    metrics::{Outcome, Peer, WriteKind, WriteResult},
    reason,
    spec::{self, Evaluated},
    status::{self, Decided, Failure, needs_write},
    types::ScalerKey,
    views::WrittenStatus,
};

/// The finalizer that lets the actuator restore replicas on delete.
pub(crate) const FINALIZER: &str = "promscaler.io/finalizer";

/// What the loop should do after a tick.
#[derive(Debug)]
pub(crate) enum TickOutcome {
    /// Evaluated (whatever was decided); next evaluation after `next`.
    Done {
        /// When to evaluate again (the polling interval).
        next: Duration,
        /// The decision, for ActuatorService.
        event: DecisionEvent,
    },
    /// Could not decide; replicas were kept. Retry with backoff.
    Failed {
        /// What happened, for ActuatorService.
        event: DecisionEvent,
    },
    /// The PromScaler no longer exists (or finished deleting).
    Gone,
}

/// Why a tick could not decide (or act on its decision). Replicas are held in every case.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TickError {
    /// Deleting: restoring the original replicas or removing the finalizer failed.
    #[error("{0}")]
    Finalize(String),
    /// Adding the finalizer failed (a concurrent change is a 409, retried next tick).
    #[error("cannot add the finalizer: {0}")]
    AddFinalizer(#[source] kube::Error),
    /// The spec is invalid, or names an authentication or Secret that does not exist.
    #[error("{}", .0.message)]
    Invalid(spec::Invalid),
    /// The target's replicas could not be read.
    #[error("{0}")]
    Target(#[source] TargetError),
    /// A Secret an authentication refers to could not be read (the API failed; a missing Secret
    /// is [`TickError::Invalid`]).
    #[error("cannot read a Secret of the PromScaler's authentication: {0}")]
    Secret(#[source] kube::Error),
    /// The metrics-fetcher or the decision service failed or timed out.
    #[error("{message}")]
    Peer {
        /// Which one.
        peer: Peer,
        /// What it said, and the replicas held.
        message: String,
    },
    /// The decision could not be applied to `/scale` (it is re-read and re-decided next time).
    #[error("cannot scale {target} from {from} to {to}: {source}")]
    Scale {
        /// The target's name.
        target: String,
        /// Replicas before.
        from: i32,
        /// Replicas decided.
        to: i32,
        /// Why the write failed.
        #[source]
        source: TargetError,
        /// The decision, still served by ActuatorService.
        decision: Box<DecideResponse>,
    },
}

impl TickError {
    /// The reason of the `Ready=False` condition this failure is written as; `None` = no status
    /// write (a deletion in progress, a finalizer or `/scale` write retried next tick).
    pub(crate) fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Finalize(_) | Self::AddFinalizer(_) | Self::Scale { .. } => None,
            Self::Invalid(invalid) => Some(invalid.reason),
            Self::Target(TargetError::NotFound { .. }) => Some(reason::SCALE_TARGET_NOT_FOUND),
            Self::Target(TargetError::NotScalable { .. }) => {
                Some(reason::SCALE_TARGET_NOT_SCALABLE)
            }
            Self::Target(TargetError::Api(_)) | Self::Secret(_) => {
                Some(reason::KUBERNETES_API_ERROR)
            }
            Self::Peer {
                peer: Peer::Fetcher,
                ..
            } => Some(reason::METRICS_FETCHER_UNAVAILABLE),
            Self::Peer {
                peer: Peer::Decision,
                ..
            } => Some(reason::DECISION_SERVICE_UNAVAILABLE),
        }
    }

    /// Whether the spec had been validated when this happened.
    fn spec_valid(&self) -> bool {
        match self {
            Self::Finalize(_) | Self::AddFinalizer(_) | Self::Invalid(_) | Self::Secret(_) => false,
            Self::Target(_) | Self::Peer { .. } | Self::Scale { .. } => true,
        }
    }

    /// How the tick is counted in `promscaler_actuator_decisions`.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Self::Invalid(_) => Outcome::Invalid,
            Self::Finalize(_)
            | Self::AddFinalizer(_)
            | Self::Target(_)
            | Self::Secret(_)
            | Self::Peer { .. }
            | Self::Scale { .. } => Outcome::Error,
        }
    }
}

/// Evaluates the PromScaler `key` once.
pub(crate) async fn tick(ctx: &Context, key: &ScalerKey) -> TickOutcome {
    let Some(scaler) = ctx.scalers.get(&key.object_ref()) else {
        return TickOutcome::Gone;
    };
    let span = tracing::info_span!("tick", namespace = %key.namespace, name = %key.name);
    let started = tokio::time::Instant::now();
    let (mut outcome, metric) = evaluate(ctx, key, &scaler).instrument(span).await;
    ctx.metrics.tick(metric, started.elapsed().as_secs_f64());
    if let TickOutcome::Done { event, .. } | TickOutcome::Failed { event } = &mut outcome {
        ctx.views.update(key, |view| view.set_last_event(event));
        // No subscriber is fine (and then there is nothing to copy).
        if ctx.decisions.receiver_count() > 0 {
            let _ = ctx.decisions.send(event.clone());
        }
    }
    outcome
}

fn event_for(key: &ScalerKey, at: prost_types::Timestamp) -> DecisionEvent {
    DecisionEvent {
        r#ref: Some(ScalerRef {
            namespace: key.namespace.to_string(),
            name: key.name.to_string(),
        }),
        at: Some(at),
        ..DecisionEvent::default()
    }
}

/// The tick's outcome and how it is counted.
async fn evaluate(ctx: &Context, key: &ScalerKey, scaler: &PromScaler) -> (TickOutcome, Outcome) {
    let at = ctx.clock.timestamp();
    let mut event = event_for(key, at);
    let result = if scaler.meta().deletion_timestamp.is_some() {
        match finalize(ctx, key, scaler).await {
            Ok(()) => return (TickOutcome::Gone, Outcome::Hold),
            Err(error) => Err(error),
        }
    } else {
        decide_and_act(ctx, key, scaler, at, &mut event).await
    };
    match result {
        Ok((next, metric)) => (TickOutcome::Done { next, event }, metric),
        Err(error) => {
            let metric = error.outcome();
            event.error = error.to_string();
            event.error_reason = error.reason().unwrap_or_default().to_owned();
            if let Some(reason) = error.reason() {
                let failure = Failure {
                    reason,
                    message: &event.error,
                    spec_valid: error.spec_valid(),
                };
                write_failure(ctx, key, scaler, &failure).await;
            }
            if let TickError::Scale { decision, .. } = error {
                event.decision = Some(*decision);
            }
            (TickOutcome::Failed { event }, metric)
        }
    }
}

/// The pipeline: finalizer, spec, replicas, query, decide, scale, status. Returns the polling
/// interval and how the tick is counted.
async fn decide_and_act(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    at: prost_types::Timestamp,
    event: &mut DecisionEvent,
) -> Result<(Duration, Outcome), TickError> {
    if !scaler.finalizers().iter().any(|f| f == FINALIZER) {
        add_finalizer(ctx, key, scaler).await.map_err(|error| {
            tracing::warn!(%error, "cannot add the finalizer; retrying");
            TickError::AddFinalizer(error)
        })?;
    }
    let refs = spec::secret_refs(scaler, &ctx.auths);
    let refs: Vec<(&str, &str)> = refs.iter().map(|(s, k)| (s.as_str(), k.as_str())).collect();
    let secrets = ctx
        .secrets
        .read(&key.namespace, &refs)
        .await
        .map_err(TickError::Secret)?;
    let evaluated = spec::evaluate(scaler, &ctx.auths, &secrets, ctx.workload_caches())
        .map_err(TickError::Invalid)?;
    let replicas = ctx
        .targets
        .replicas(
            &key.namespace,
            &evaluated.target,
            &ctx.deployments,
            &ctx.statefulsets,
        )
        .await
        .map_err(TickError::Target)?;
    event.replicas = Some(replicas);

    // The decision state: carried in memory, or rebuilt from status after a restart/failover.
    let state = ctx.views.state(key).unwrap_or_else(|| {
        status::restore_state(
            scaler.status.as_ref(),
            replicas.spec,
            scaler.meta().creation_timestamp.as_ref(),
            &at,
        )
    });
    let (observations, samples) = query(ctx, &evaluated, replicas.spec).await?;
    event.samples_processed = samples;
    let request = DecideRequest {
        policy: Some(evaluated.policy.clone()),
        replicas: Some(replicas),
        observations,
        state: Some(state),
        now: Some(at),
        pause: Some(evaluated.pause),
    };
    let mut client = ctx.decision.clone();
    let decision = call_peer(ctx, Peer::Decision, client.decide(request), replicas.spec).await?;
    for line in &decision.explanation {
        tracing::debug!(explanation = %line);
    }

    let metric = scale(ctx, key, scaler, &evaluated, replicas.spec, &decision).await?;
    let scaled_at = (metric != Outcome::Hold).then_some(at);
    ctx.views
        .update(key, |view| view.set_state(decision.state.as_ref()));
    let decided = Decided {
        decision: &decision,
        replicas,
        scaled_at: scaled_at.as_ref(),
        evaluated: &evaluated,
        generation: scaler.meta().generation,
    };
    write_status(ctx, key, scaler, &decided, &at).await;
    event.scaled = scaled_at.is_some();
    event.decision = Some(decision);
    Ok((evaluated.polling_interval, metric))
}

/// Queries every trigger in one batch; a missing result is an in-band error of its trigger.
/// Also returns the upstream samples the queries processed, when any answer reported them.
async fn query(
    ctx: &Context,
    evaluated: &Evaluated,
    current: i32,
) -> Result<(Vec<Observation>, Option<u64>), TickError> {
    let batch = QueryBatchRequest {
        queries: evaluated.queries.clone(),
    };
    let mut client = ctx.fetcher.clone();
    let results = call_peer(ctx, Peer::Fetcher, client.query_batch(batch), current)
        .await?
        .results;
    let samples = results
        .iter()
        .filter_map(|r| r.samples_processed)
        .reduce(u64::saturating_add);
    let observations = evaluated
        .trigger_names
        .iter()
        .zip(results.into_iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(name, result)| Observation {
            trigger: name.clone(),
            result: Some(match result.and_then(|r| r.result) {
                Some(query_response::Result::Sample(sample)) => {
                    observation::Result::Value(sample.value)
                }
                Some(query_response::Result::Error(error)) => observation::Result::Error(error),
                None => observation::Result::Error(pb::QueryError {
                    kind: pb::QueryErrorKind::Upstream as i32,
                    message: "the metrics-fetcher returned no result for this query".to_owned(),
                    http_status: 0,
                }),
            }),
        })
        .collect();
    Ok((observations, samples))
}

/// Applies the decision to `/scale` when it differs from `current`, with an Event; returns
/// whether it scaled up, down, or held.
async fn scale(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    evaluated: &Evaluated,
    current: i32,
    decision: &DecideResponse,
) -> Result<Outcome, TickError> {
    let desired = decision.desired_replicas;
    if desired == current {
        return Ok(Outcome::Hold);
    }
    let write = tokio::time::timeout(
        ctx.settings.kube_timeout,
        ctx.targets
            .scale(&key.namespace, &evaluated.target, desired),
    )
    .await
    .unwrap_or_else(|_| {
        Err(TargetError::Api(kube::Error::Service(
            format!(
                "PATCH /scale did not finish within {:?}",
                ctx.settings.kube_timeout
            )
            .into(),
        )))
    });
    if let Err(error) = write {
        // The decision's state assumed the scale happened: drop it, re-read, re-decide.
        let result = if error.is_conflict() {
            WriteResult::Conflict
        } else {
            WriteResult::Error
        };
        ctx.metrics.write(WriteKind::Scale, result);
        tracing::warn!(%error, from = current, to = desired, "cannot scale; will re-read and re-decide");
        return Err(TickError::Scale {
            target: evaluated.target.name.clone(),
            from: current,
            to: desired,
            source: error,
            decision: Box::new(decision.clone()),
        });
    }
    ctx.metrics.write(WriteKind::Scale, WriteResult::Ok);
    let reason = decision.explanation.last().cloned().unwrap_or_default();
    tracing::info!(from = current, to = desired, %reason, "scaled");
    record(
        ctx,
        scaler,
        EventType::Normal,
        reason::SUCCESSFUL_RESCALE,
        &format!("New size: {desired} (was {current}); reason: {reason}"),
    )
    .await;
    Ok(if desired > current {
        Outcome::ScaleUp
    } else {
        Outcome::ScaleDown
    })
}

/// Calls a peer with the RPC deadline; a failure or timeout is counted and described (the tick
/// then holds `current` replicas).
async fn call_peer<T>(
    ctx: &Context,
    peer: Peer,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    current: i32,
) -> Result<T, TickError> {
    let name = match peer {
        Peer::Fetcher => "metrics-fetcher",
        Peer::Decision => "decision service",
    };
    let failure = match tokio::time::timeout(ctx.settings.rpc_timeout, call).await {
        Ok(Ok(response)) => return Ok(response.into_inner()),
        Ok(Err(status)) => format!("{name} failed: {}", status.message()),
        Err(_) => format!(
            "{name} did not answer within {:?}",
            ctx.settings.rpc_timeout
        ),
    };
    ctx.metrics.peer_error(peer);
    Err(TickError::Peer {
        peer,
        message: format!("{failure}; holding {current} replicas"),
    })
}

/// Writes the status the decision yields when something significant changed, and records a
/// `KEDAScalerFailed` Event when a trigger started failing.
async fn write_status(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    decided: &Decided<'_>,
    at: &prost_types::Timestamp,
) {
    let now = status::to_time(at).unwrap_or_else(|| Time(ctx.clock.jiff()));
    let mut failure_event = None;
    let new = with_known_status(ctx, key, scaler, |previous| {
        failure_event = status::trigger_failure_event(decided.decision, previous);
        let new = status::decided(previous, decided, &now);
        needs_write(previous, &new).then_some(new)
    });
    if let Some(message) = failure_event {
        // KEDA's Event reason for a failing trigger; recorded when Ready turns to a failure or
        // its message changes, not on every tick (Events are API writes too).
        record(
            ctx,
            scaler,
            EventType::Warning,
            reason::KEDA_SCALER_FAILED,
            &message,
        )
        .await;
    }
    if let Some(new) = new {
        patch_status(ctx, key, &new).await;
    }
}

/// Writes the status a failure yields ([`status::failed`]) when it changed, with a Warning
/// Event of the same reason.
async fn write_failure(ctx: &Context, key: &ScalerKey, scaler: &PromScaler, failure: &Failure<'_>) {
    tracing::warn!(reason = %failure.reason, message = %failure.message, "not ready");
    let now = Time(ctx.clock.jiff());
    let new = with_known_status(ctx, key, scaler, |previous| {
        let new = status::failed(previous, scaler, failure, &now);
        needs_write(previous, &new).then_some(new)
    });
    if let Some(new) = new {
        record(
            ctx,
            scaler,
            EventType::Warning,
            failure.reason,
            failure.message,
        )
        .await;
        patch_status(ctx, key, &new).await;
    }
}

/// Calls `build` with the status as last written by this replica, else as read from the
/// cluster, borrowed (no copy per tick). The written copy is dropped as soon as the watch cache
/// holds that write ([`crate::views::Views::settle_status`], also called on every watch event).
fn with_known_status<R>(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    build: impl FnOnce(Option<&PromScalerStatus>) -> R,
) -> R {
    if ctx.views.settle_status(key, scaler) {
        ctx.views.with(key, |view| {
            build(
                view.and_then(|v| v.last_status.as_ref())
                    .map(|w| &w.status)
                    .or(scaler.status.as_ref()),
            )
        })
    } else {
        build(scaler.status.as_ref())
    }
}

async fn patch_status(ctx: &Context, key: &ScalerKey, status: &PromScalerStatus) {
    let api: Api<PromScaler> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let patch = serde_json::json!({ "status": status });
    let result = tokio::time::timeout(
        ctx.settings.kube_timeout,
        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await;
    match result {
        Ok(Ok(written)) => {
            ctx.metrics.write(WriteKind::Status, WriteResult::Ok);
            let resource_version = written.resource_version().unwrap_or_default();
            ctx.views.update(key, |view| {
                view.last_status = Some(Box::new(WrittenStatus {
                    resource_version,
                    status: status.clone(),
                }));
            });
        }
        Ok(Err(error)) => {
            ctx.metrics.write(WriteKind::Status, WriteResult::Error);
            tracing::warn!(%error, "cannot write status; will retry at the next change");
        }
        Err(_) => {
            ctx.metrics.write(WriteKind::Status, WriteResult::Error);
            tracing::warn!("writing status timed out; will retry at the next change");
        }
    }
}

async fn record(ctx: &Context, scaler: &PromScaler, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: "Scale".to_owned(),
        secondary: None,
    };
    let reference = scaler.object_ref(&());
    match ctx.recorder.publish(&event, &reference).await {
        Ok(()) => ctx.metrics.write(WriteKind::Event, WriteResult::Ok),
        Err(error) => {
            ctx.metrics.write(WriteKind::Event, WriteResult::Error);
            tracing::warn!(%error, "cannot record an Event");
        }
    }
}

async fn add_finalizer(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
) -> Result<(), kube::Error> {
    let mut finalizers = scaler.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let api: Api<PromScaler> = Api::namespaced(ctx.client.clone(), &key.namespace);
    // resourceVersion makes this conditional: a concurrent change is a 409, retried next tick.
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": scaler.resource_version() }
    });
    let result = api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    ctx.metrics.write(
        WriteKind::Metadata,
        if result.is_ok() {
            WriteResult::Ok
        } else {
            WriteResult::Error
        },
    );
    result.map(|_| ())
}

/// On delete: restore the original replicas when asked, then remove the finalizer.
async fn finalize(ctx: &Context, key: &ScalerKey, scaler: &PromScaler) -> Result<(), TickError> {
    if !scaler.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let restore = scaler
        .spec
        .advanced
        .as_ref()
        .and_then(|a| a.restore_to_original_replica_count)
        .unwrap_or(false);
    let original = scaler
        .status
        .as_ref()
        .and_then(|s| s.original_replica_count);
    if let (true, Some(original)) = (restore, original) {
        let target = spec::target_ref(scaler);
        match ctx.targets.scale(&key.namespace, &target, original).await {
            Ok(()) | Err(TargetError::NotFound { .. }) => {
                tracing::info!(replicas = original, "restored the original replica count");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot restore the original replica count; retrying");
                return Err(TickError::Finalize(format!(
                    "cannot restore {original} replicas: {error}"
                )));
            }
        }
    }
    let finalizers: Vec<String> = scaler
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let api: Api<PromScaler> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": scaler.resource_version() }
    });
    match api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.write(WriteKind::Metadata, WriteResult::Ok);
            ctx.views.remove(key);
            Ok(())
        }
        Err(error) => {
            ctx.metrics.write(WriteKind::Metadata, WriteResult::Error);
            tracing::warn!(%error, "cannot remove the finalizer; retrying");
            Err(TickError::Finalize(format!(
                "cannot remove the finalizer: {error}"
            )))
        }
    }
}

#[cfg(test)]
mod tests;
