//! The PromScaler controller: watch caches, one shared scheduler, leader-gated ticks.
//!
//! Watches ([`watches`]) keep PromScalers, PromScalerAuthentications, Deployments,
//! StatefulSets and ServiceAccounts in memory, so a tick reads them without a GET; Secrets are
//! watched as metadata only, and the keys a tick needs are read with a GET when they changed
//! ([`secrets`]). One loop
//! ([`run`]) owns the index (`index.rs`) of every PromScaler's lifecycle: a PromScaler is due
//! every `pollingInterval`, at once when its spec changes, after a backoff when a tick failed.
//! Due ticks ([`tick`]) run concurrently up to a limit, never two for the same PromScaler. Only
//! the leader (or the leader of this shard) ticks; standbys keep their caches warm and take over
//! from the state persisted in status.

mod index;
pub(crate) mod secrets;
pub(crate) mod target;
pub(crate) mod tick;
pub(crate) mod watches;

use std::{fmt, sync::Arc, time::Duration};

use futures::{StreamExt as _, stream::FuturesUnordered};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::ServiceAccount,
};
use kube::{
    Client, Resource as _,
    runtime::{events::Recorder, reflector::Store, watcher},
};
use promscaler_api::{PromScaler, PromScalerAuthentication};
use promscaler_proto::v1::{
    DecisionEvent, decision_service_client::DecisionServiceClient,
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
};
use promscaler_runtime::{Shutdown, propagation::InjectFn};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub(crate) use tick::TickOutcome;
pub(crate) use watches::{AuthChange, Watches};

use crate::{
    clock::Clock,
    error::Error,
    identity::{self, WorkloadCaches},
    metrics::Metrics,
    readiness::Gate,
    scheduler::Scheduler,
    types::{ScalerKey, Shard, Workload},
    views::Views,
};
use index::{Index, Limits};

/// Tunables of the loop.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Deadline of each QueryBatch and Decide call.
    pub rpc_timeout: Duration,
    /// Deadline of each Kubernetes write.
    pub kube_timeout: Duration,
    /// Ticks running at once.
    pub max_concurrent_ticks: usize,
    /// First retry delay after a failed tick; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Which PromScalers this replica owns.
    pub shard: Shard,
    /// Name of the controller in Events (`reportingController`).
    pub controller_name: String,
    /// This replica's name in Events (`reportingInstance`) and the Lease.
    pub instance: String,
    /// Most Secrets whose referenced keys are kept in memory (see [`secrets`]).
    pub secret_cache_size: usize,
}

/// Clients of the two peer services, with trace-context injection.
pub(crate) type FetcherClient = MetricsFetcherServiceClient<InterceptedService<Channel, InjectFn>>;
/// See [`FetcherClient`].
pub(crate) type DecisionClient = DecisionServiceClient<InterceptedService<Channel, InjectFn>>;

/// Everything a tick needs, shared by all ticks.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) scalers: Store<PromScaler>,
    pub(crate) auths: Store<PromScalerAuthentication>,
    pub(crate) secrets: secrets::Secrets,
    pub(crate) deployments: Store<Workload<Deployment>>,
    pub(crate) statefulsets: Store<Workload<StatefulSet>>,
    pub(crate) service_accounts: Store<ServiceAccount>,
    pub(crate) fetcher: FetcherClient,
    pub(crate) decision: DecisionClient,
    pub(crate) recorder: Recorder,
    pub(crate) views: Arc<Views>,
    pub(crate) decisions: broadcast::Sender<DecisionEvent>,
    pub(crate) metrics: Metrics,
    pub(crate) settings: Settings,
    pub(crate) targets: target::Targets,
    pub(crate) clock: Clock,
}

impl Context {
    /// What `identityOwner: workload` reads.
    pub(crate) fn workload_caches(&self) -> WorkloadCaches<'_> {
        WorkloadCaches {
            deployments: &self.deployments,
            statefulsets: &self.statefulsets,
            service_accounts: &self.service_accounts,
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Requests to the loop from the gRPC service.
#[derive(Debug)]
pub(crate) enum Command {
    /// Evaluate now and answer with the decision.
    Reconcile(ScalerKey, oneshot::Sender<Result<DecisionEvent, Error>>),
}

/// Handle the gRPC service uses to talk to the loop.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    commands: mpsc::Sender<Command>,
    leading: watch::Receiver<bool>,
}

impl Handle {
    /// Asks the loop to evaluate `key` now; answers with that evaluation.
    pub(crate) async fn reconcile(&self, key: ScalerKey) -> Result<DecisionEvent, Error> {
        if !self.is_leader() {
            return Err(Error::Standby {
                what: "Reconcile is served",
                leader: String::new(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Reconcile(key, reply))
            .await
            .map_err(|_| Error::LoopStopped)?;
        answer.await.map_err(|_| Error::LoopStopped)?
    }

    /// Whether this replica currently leads.
    pub(crate) fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }
}

/// Builds the loop's context and handle.
#[allow(clippy::too_many_arguments)]
pub(crate) fn context(
    client: Client,
    watches: &Watches,
    fetcher: FetcherClient,
    decision: DecisionClient,
    views: Arc<Views>,
    decisions: broadcast::Sender<DecisionEvent>,
    metrics: Metrics,
    settings: Settings,
    clock: Clock,
) -> Arc<Context> {
    let reporter = kube::runtime::events::Reporter {
        controller: settings.controller_name.clone(),
        instance: Some(settings.instance.clone()),
    };
    let client_for_secrets = client.clone();
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        targets: target::Targets::new(client.clone()),
        clock,
        client,
        scalers: watches.scalers.clone(),
        auths: watches.auths.clone(),
        secrets: secrets::Secrets::new(
            client_for_secrets,
            watches.secrets.clone(),
            settings.secret_cache_size,
        ),
        deployments: watches.deployments.clone(),
        statefulsets: watches.statefulsets.clone(),
        service_accounts: watches.service_accounts.clone(),
        fetcher,
        decision,
        views,
        decisions,
        metrics,
        settings,
    })
}

/// Creates the command channel between the gRPC service and the loop.
pub(crate) fn handle(leading: watch::Receiver<bool>) -> (Handle, mpsc::Receiver<Command>) {
    let (commands, receiver) = mpsc::channel(64);
    (Handle { commands, leading }, receiver)
}

/// Runs the controller until `shutdown`; tells `readiness` once every cache has synced.
pub(crate) async fn run(
    ctx: Arc<Context>,
    watches: Watches,
    mut leading: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<Command>,
    readiness: Gate,
    shutdown: Shutdown,
) {
    let Watches {
        scalers: _,
        auths,
        secrets,
        deployments,
        statefulsets,
        service_accounts,
        mut scaler_events,
        mut auth_changes,
        drivers,
    } = watches;
    let mut drivers: FuturesUnordered<_> = drivers.into_iter().collect();
    let scaler_store = ctx.scalers.clone();
    let mut synced = Box::pin(futures::FutureExt::fuse(async move {
        let _ = auths.wait_until_ready().await;
        let _ = secrets.wait_until_ready().await;
        let _ = deployments.wait_until_ready().await;
        let _ = statefulsets.wait_until_ready().await;
        let _ = service_accounts.wait_until_ready().await;
        let _ = scaler_store.wait_until_ready().await;
    }));
    let mut is_synced = false;

    let settings = &ctx.settings;
    let limits = Limits {
        max_running: settings.max_concurrent_ticks,
        min_backoff: settings.min_backoff,
        max_backoff: settings.max_backoff,
    };
    let mut index = Index::new(limits, Scheduler::default(), *leading.borrow());
    let mut ticks = FuturesUnordered::new();
    ctx.metrics.set_leader(index.is_leading());

    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            () = &mut synced, if !is_synced => {
                is_synced = true;
                readiness.set_caches_synced(true);
                tracing::info!(scalers = index.len(), "caches synced");
            }
            Some(()) = drivers.next() => {
                tracing::error!("a watch stream ended; stopping");
                break;
            }
            event = scaler_events.next() => match event {
                Some(event) => on_scaler_event(&ctx, &mut index, event),
                None => {
                    tracing::error!("the PromScaler watch ended; stopping");
                    break;
                }
            },
            Some(change) = auth_changes.recv(), if is_synced => index.credentials_changed(
                match &change {
                    AuthChange::ServiceAccount(namespace, name) => {
                        identity::readers_of_service_account(
                            &ctx.scalers, &ctx.auths, ctx.workload_caches(), namespace, name,
                        )
                    }
                    _ => watches::readers_of(&ctx.scalers, &ctx.auths, &change),
                },
            ),
            changed = leading.changed() => match changed {
                Ok(()) => on_leadership(&ctx, &mut index, *leading.borrow_and_update()),
                Err(_) => {
                    tracing::error!("leader election stopped; stopping");
                    break;
                }
            },
            Some(Command::Reconcile(key, reply)) = commands.recv() => index.reconcile(key, reply),
            key = index.next_due(), if is_synced => ticks.extend(index.due(key).map(|key| run_tick(ctx.clone(), key))),
            Some((key, outcome)) = ticks.next() => ticks.extend(index.finished(&key, outcome).into_iter().map(|key| run_tick(ctx.clone(), key))),
        }
    }
    readiness.set_caches_synced(false);
}

/// A PromScaler watch event: the index learns of PromScalers this shard owns and forgets
/// deleted ones; our own status write coming back is settled, so it is kept once, not twice.
fn on_scaler_event(
    ctx: &Context,
    index: &mut Index,
    event: Result<watcher::Event<PromScaler>, watcher::Error>,
) {
    match event {
        Ok(watcher::Event::Apply(scaler) | watcher::Event::InitApply(scaler)) => {
            let key = ScalerKey::of(&scaler);
            if !ctx.settings.shard.owns(&key) {
                return;
            }
            ctx.views.settle_status(&key, &scaler);
            let meta = scaler.meta();
            index.applied(key, meta.generation, meta.deletion_timestamp.is_some());
        }
        Ok(watcher::Event::Delete(scaler)) => {
            let key = ScalerKey::of(&scaler);
            index.deleted(&key);
            ctx.views.remove(&key);
        }
        Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
        Err(error) => tracing::warn!(%error, "PromScaler watch failed; retrying"),
    }
    ctx.metrics.set_scalers(index.len());
}

/// Leadership changed (or was confirmed). A new leader starts from what is persisted in status,
/// never from memory left over from an earlier term.
fn on_leadership(ctx: &Context, index: &mut Index, leading: bool) {
    if index.set_leading(leading) {
        ctx.metrics.set_leader(leading);
        ctx.views.forget_states();
    }
}

async fn run_tick(ctx: Arc<Context>, key: ScalerKey) -> (ScalerKey, TickOutcome) {
    let outcome = tick::tick(&ctx, &key).await;
    (key, outcome)
}
