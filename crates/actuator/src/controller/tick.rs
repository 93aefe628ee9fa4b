//! One evaluation of one PromScaler: read the target's replicas, query, decide, scale, record,
//! write status when needed, publish. A failure of anything the tick depends on keeps the current
//! replicas: the actuator never scales down because a peer or the API failed.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use promscaler_api::{PromScaler, PromScalerStatus};
use promscaler_proto::v1::{
    self as pb, DecideRequest, DecisionEvent, Observation, QueryBatchRequest, ScalerRef,
    observation, query_response,
};
use tracing::Instrument as _;

use super::{
    Context, ScalerKey,
    status::{self, needs_write},
    target::TargetError,
};
use crate::{
    metrics::{Outcome, Peer, WriteKind, WriteResult},
    spec,
    views::WrittenStatus,
};

/// The finalizer that lets the actuator restore replicas on delete.
pub const FINALIZER: &str = "promscaler.io/finalizer";

/// What the loop should do after a tick.
#[derive(Debug)]
pub enum TickOutcome {
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

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

/// Evaluates the PromScaler `key` once.
pub async fn tick(ctx: &Context, key: &ScalerKey) -> TickOutcome {
    let Some(scaler) = ctx.scalers.get(&key.object_ref()) else {
        return TickOutcome::Gone;
    };
    let span = tracing::info_span!("tick", namespace = %key.namespace, name = %key.name);
    let started = Instant::now();
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

async fn evaluate(ctx: &Context, key: &ScalerKey, scaler: &PromScaler) -> (TickOutcome, Outcome) {
    let at = now();
    let mut event = event_for(key, at);

    if scaler.meta().deletion_timestamp.is_some() {
        return match finalize(ctx, key, scaler).await {
            Ok(()) => (TickOutcome::Gone, Outcome::Hold),
            Err(message) => {
                event.error = message;
                (TickOutcome::Failed { event }, Outcome::Error)
            }
        };
    }
    if !scaler.finalizers().iter().any(|f| f == FINALIZER)
        && let Err(error) = add_finalizer(ctx, key, scaler).await
    {
        event.error = format!("cannot add the finalizer: {error}");
        tracing::warn!(%error, "cannot add the finalizer; retrying");
        return (TickOutcome::Failed { event }, Outcome::Error);
    }

    let evaluated = match spec::evaluate(scaler, &ctx.auths, &ctx.secrets) {
        Ok(evaluated) => evaluated,
        Err(invalid) => {
            event.error = invalid.message.clone();
            write_failure(ctx, key, scaler, &invalid.reason, &invalid.message, None).await;
            return (TickOutcome::Failed { event }, Outcome::Invalid);
        }
    };

    let replicas = match ctx
        .targets
        .replicas(
            &key.namespace,
            &evaluated.target,
            &ctx.deployments,
            &ctx.statefulsets,
        )
        .await
    {
        Ok(replicas) => replicas,
        Err(error) => {
            let reason = match error {
                TargetError::NotFound { .. } => "ScaleTargetNotFound",
                TargetError::NotScalable { .. } => "ScaleTargetNotScalable",
                TargetError::Api(_) => "KubernetesApiError",
            };
            event.error = error.to_string();
            write_failure(
                ctx,
                key,
                scaler,
                reason,
                &error.to_string(),
                Some(&evaluated),
            )
            .await;
            return (TickOutcome::Failed { event }, Outcome::Error);
        }
    };
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

    // Query every trigger in one batch.
    let batch = QueryBatchRequest {
        queries: evaluated.queries.clone(),
    };
    let mut fetcher = ctx.fetcher.clone();
    let results = match call_peer(
        ctx,
        Peer::Fetcher,
        fetcher.query_batch(batch),
        replicas.spec,
    )
    .await
    {
        Ok(response) => response.results,
        Err(message) => {
            event.error = message.clone();
            write_failure(
                ctx,
                key,
                scaler,
                "MetricsFetcherUnavailable",
                &message,
                Some(&evaluated),
            )
            .await;
            return (TickOutcome::Failed { event }, Outcome::Error);
        }
    };
    let observations: Vec<Observation> = evaluated
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

    let request = DecideRequest {
        policy: Some(evaluated.policy.clone()),
        replicas: Some(replicas),
        observations,
        state: Some(state),
        now: Some(at),
        pause: Some(evaluated.pause),
    };
    let mut decision_client = ctx.decision.clone();
    let decision = match call_peer(
        ctx,
        Peer::Decision,
        decision_client.decide(request),
        replicas.spec,
    )
    .await
    {
        Ok(decision) => decision,
        Err(message) => {
            event.error = message.clone();
            write_failure(
                ctx,
                key,
                scaler,
                "DecisionServiceUnavailable",
                &message,
                Some(&evaluated),
            )
            .await;
            return (TickOutcome::Failed { event }, Outcome::Error);
        }
    };
    for line in &decision.explanation {
        tracing::debug!(explanation = %line);
    }

    let desired = decision.desired_replicas;
    let mut metric = Outcome::Hold;
    let mut scaled_at = None;
    if desired != replicas.spec {
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
            tracing::warn!(%error, from = replicas.spec, to = desired, "cannot scale; will re-read and re-decide");
            event.decision = Some(decision);
            event.error = format!(
                "cannot scale {} from {} to {desired}: {error}",
                evaluated.target.name, replicas.spec
            );
            return (TickOutcome::Failed { event }, Outcome::Error);
        }
        ctx.metrics.write(WriteKind::Scale, WriteResult::Ok);
        metric = if desired > replicas.spec {
            Outcome::ScaleUp
        } else {
            Outcome::ScaleDown
        };
        scaled_at = Some(at);
        let reason = decision.explanation.last().cloned().unwrap_or_default();
        tracing::info!(from = replicas.spec, to = desired, %reason, "scaled");
        record(
            ctx,
            scaler,
            EventType::Normal,
            "SuccessfulRescale",
            &format!(
                "New size: {desired} (was {}); reason: {reason}",
                replicas.spec
            ),
        )
        .await;
        event.scaled = true;
    }

    ctx.views
        .update(key, |view| view.set_state(decision.state.as_ref()));
    write_status(
        ctx, key, scaler, &evaluated, replicas, &decision, scaled_at, &at,
    )
    .await;
    event.decision = Some(decision);
    (
        TickOutcome::Done {
            next: evaluated.polling_interval,
            event,
        },
        metric,
    )
}

/// Calls a peer with the RPC deadline; a failure or timeout is counted and described (the tick
/// then holds `current` replicas).
async fn call_peer<T>(
    ctx: &Context,
    peer: Peer,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    current: i32,
) -> Result<T, String> {
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
    Err(format!("{failure}; holding {current} replicas"))
}

/// The status the decision implies, built on the previous one.
#[allow(clippy::too_many_arguments)]
async fn write_status(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    evaluated: &spec::Evaluated,
    replicas: pb::Replicas,
    decision: &pb::DecideResponse,
    scaled_at: Option<prost_types::Timestamp>,
    at: &prost_types::Timestamp,
) {
    let now_time = status::to_time(at).unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    let mut failure_event = None;
    let new = with_known_status(ctx, key, scaler, |previous| {
        let mut new = previous.cloned().unwrap_or_default();
        failure_event = status::trigger_failure_event(decision, previous);
        new.conditions = status::decision_conditions(
            decision,
            previous.map_or(&[], |p| p.conditions.as_slice()),
            &now_time,
        );
        if new.original_replica_count.is_none() {
            new.original_replica_count = Some(replicas.spec);
        }
        new.health = status::health(decision);
        new.last_metric_values = decision
            .triggers
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.value?)))
            .collect();
        new.desired_replicas = Some(decision.desired_replicas);
        new.current_replicas = Some(if scaled_at.is_some() {
            decision.desired_replicas
        } else {
            replicas.spec
        });
        if let Some(at) = scaled_at.as_ref().and_then(status::to_time) {
            new.last_scale_time = Some(at);
        }
        new.paused_replica_count = evaluated.pause.paused_replicas;
        new.observed_generation = scaler.meta().generation;
        new.scale_target_kind = Some(format!(
            "{}.{}",
            evaluated.target.api_version, evaluated.target.kind
        ));
        new.triggers_types = Some(evaluated.triggers_types.clone());
        new.authentications_types =
            (!evaluated.authentications.is_empty()).then(|| evaluated.authentications.clone());
        if let Some(state) = &decision.state {
            new.last_active_time = state.last_active_time.as_ref().and_then(status::to_time);
            new.decision_state = Some(status::state_to_status(state));
        }
        needs_write(previous, &new).then_some(new)
    });
    if let Some(message) = failure_event {
        // KEDA's Event reason for a failing trigger; recorded when Ready turns to a failure or
        // its message changes, not on every tick (Events are API writes too).
        record(
            ctx,
            scaler,
            EventType::Warning,
            "KEDAScalerFailed",
            &message,
        )
        .await;
    }
    if let Some(new) = new {
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

/// Ready=False with `reason`; everything else as it was (replicas are held).
async fn write_failure(
    ctx: &Context,
    key: &ScalerKey,
    scaler: &PromScaler,
    reason: &str,
    message: &str,
    evaluated: Option<&spec::Evaluated>,
) {
    tracing::warn!(%reason, %message, "not ready");
    let now_time = Time(k8s_openapi::jiff::Timestamp::now());
    let new = with_known_status(ctx, key, scaler, |previous| {
        let mut new = previous.cloned().unwrap_or_default();
        let old_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
        status::set_condition(
            &mut new.conditions,
            old_conditions,
            "Ready",
            "False",
            reason,
            message,
            &now_time,
        );
        for type_ in ["Active", "Fallback", "Paused"] {
            if !new.conditions.iter().any(|c| c.type_ == type_) {
                status::set_condition(
                    &mut new.conditions,
                    old_conditions,
                    type_,
                    "Unknown",
                    "",
                    "",
                    &now_time,
                );
            }
        }
        new.observed_generation = scaler.meta().generation;
        if let Some(evaluated) = evaluated {
            new.triggers_types = Some(evaluated.triggers_types.clone());
            new.scale_target_kind = Some(format!(
                "{}.{}",
                evaluated.target.api_version, evaluated.target.kind
            ));
        }
        needs_write(previous, &new).then_some(new)
    });
    if let Some(new) = new {
        record(ctx, scaler, EventType::Warning, reason, message).await;
        patch_status(ctx, key, &new).await;
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
async fn finalize(ctx: &Context, key: &ScalerKey, scaler: &PromScaler) -> Result<(), String> {
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
                return Err(format!("cannot restore {original} replicas: {error}"));
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
            Err(format!("cannot remove the finalizer: {error}"))
        }
    }
}
