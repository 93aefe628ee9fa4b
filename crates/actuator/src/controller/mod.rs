//! The PromScaler controller: watch caches, one shared scheduler, leader-gated ticks.
//!
//! Watches (kube-runtime reflectors) keep PromScalers, PromScalerAuthentications, Secrets,
//! Deployments and StatefulSets in memory, so a tick reads everything it needs without a GET.
//! One loop owns the [`Scheduler`]: a PromScaler is due every `pollingInterval`, at once when its
//! spec changes, after a backoff when a tick failed. Due ticks run concurrently up to a limit,
//! never two for the same PromScaler. Only the leader (or the leader of this shard) ticks;
//! standbys keep their caches warm and take over from the state persisted in status.

pub mod status;
pub mod target;
pub mod tick;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Secret,
};
use kube::{
    Api, Client, Resource as _,
    runtime::{
        WatchStreamExt as _,
        events::Recorder,
        reflector::{self, Store},
        watcher,
    },
};
use promscaler_api::{PromScaler, PromScalerAuthentication};
use promscaler_proto::v1::{
    DecisionEvent, decision_service_client::DecisionServiceClient,
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
};
use promscaler_runtime::{Shutdown, propagation::InjectFn};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub(crate) use status::from_time as status_time;
pub use target::{TargetRef, Workload};
pub use tick::{FINALIZER, TickOutcome};

use crate::{metrics::Metrics, readiness::Gate, scheduler::Scheduler, views::Views};

/// Namespace and name of a PromScaler. Shared strings: the loop keeps each key in several maps
/// and the timer wheel, and a clone is two reference counts, not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScalerKey {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl ScalerKey {
    /// The key of `scaler`.
    pub fn of(scaler: &PromScaler) -> Self {
        Self {
            namespace: scaler
                .metadata
                .namespace
                .as_deref()
                .unwrap_or_default()
                .into(),
            name: scaler.metadata.name.as_deref().unwrap_or_default().into(),
        }
    }

    /// The reflector reference.
    fn object_ref(&self) -> reflector::ObjectRef<PromScaler> {
        reflector::ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for ScalerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which PromScalers this replica owns: a stable hash of namespace/name modulo the shard count.
#[derive(Debug, Clone, Copy)]
pub struct Shard {
    /// This replica's shard, `0..count`.
    pub index: u32,
    /// Number of shards; 1 = no sharding.
    pub count: u32,
}

impl Shard {
    /// Whether `key` belongs to this shard. FNV-1a: stable across processes and versions.
    pub fn owns(&self, key: &ScalerKey) -> bool {
        if self.count <= 1 {
            return true;
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.namespace.bytes().chain([b'/']).chain(key.name.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

/// Tunables of the loop.
#[derive(Debug, Clone)]
pub struct Settings {
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
    /// Only this namespace; `None` = all.
    pub namespace: Option<String>,
    /// Name of the controller in Events (`reportingController`).
    pub controller_name: String,
    /// This replica's name in Events (`reportingInstance`) and the Lease.
    pub instance: String,
}

/// Clients of the two peer services, with trace-context injection.
pub type FetcherClient = MetricsFetcherServiceClient<InterceptedService<Channel, InjectFn>>;
/// See [`FetcherClient`].
pub type DecisionClient = DecisionServiceClient<InterceptedService<Channel, InjectFn>>;

/// Everything a tick needs, shared by all ticks.
pub struct Context {
    pub(crate) client: Client,
    pub(crate) scalers: Store<PromScaler>,
    pub(crate) auths: Store<PromScalerAuthentication>,
    pub(crate) secrets: Store<Secret>,
    pub(crate) deployments: Store<Workload<Deployment>>,
    pub(crate) statefulsets: Store<Workload<StatefulSet>>,
    pub(crate) fetcher: FetcherClient,
    pub(crate) decision: DecisionClient,
    pub(crate) recorder: Recorder,
    pub(crate) views: Arc<Views>,
    pub(crate) decisions: broadcast::Sender<DecisionEvent>,
    pub(crate) metrics: Metrics,
    pub(crate) settings: Settings,
    pub(crate) targets: target::Targets,
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
pub enum Command {
    /// Evaluate now and answer with the decision.
    Reconcile(ScalerKey, oneshot::Sender<Result<DecisionEvent, String>>),
}

/// Handle the gRPC service uses to talk to the loop.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    leading: watch::Receiver<bool>,
}

impl Handle {
    /// Asks the loop to evaluate `key` now.
    pub async fn reconcile(&self, key: ScalerKey) -> Result<DecisionEvent, String> {
        if !*self.leading.borrow() {
            return Err(
                "this actuator replica is a standby; send Reconcile to the leader".to_owned(),
            );
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Reconcile(key, reply))
            .await
            .map_err(|_| "the controller loop has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the controller loop dropped the request".to_owned())?
    }

    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }
}

/// Stores and the streams that fill them.
pub struct Watches {
    /// PromScalers.
    pub scalers: Store<PromScaler>,
    /// PromScalerAuthentications.
    pub auths: Store<PromScalerAuthentication>,
    /// Secrets.
    pub secrets: Store<Secret>,
    /// Deployments (replica counts only).
    pub deployments: Store<Workload<Deployment>>,
    /// StatefulSets (replica counts only).
    pub statefulsets: Store<Workload<StatefulSet>>,
    scaler_events:
        futures::stream::BoxStream<'static, Result<watcher::Event<PromScaler>, watcher::Error>>,
    auth_changes: mpsc::UnboundedReceiver<AuthChange>,
    drivers: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches").finish_non_exhaustive()
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The annotation `kubectl apply` leaves on objects: a second copy of the whole object (of a
/// Secret's data too), never read here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the controller never reads from an object before it enters a watch cache:
/// `managedFields` (often larger than the object) and kubectl's last-applied copy.
fn strip_metadata<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// [`strip_metadata`], and `status.lastMetricValues`: written for users at status writes, never
/// read back here (ActuatorService serves the last values from the last decision, and a merge
/// patch without the field leaves it as it is).
fn strip_scaler(scaler: &mut PromScaler) {
    strip_metadata(scaler);
    if let Some(status) = scaler.status.as_mut() {
        status.last_metric_values = Default::default();
    }
}

/// The type of the Secrets Helm keeps each release in (the whole rendered chart, often hundreds
/// of KB each, one per revision). No PromScalerAuthentication refers to one, and caching them
/// would dominate the actuator's memory on clusters with many releases: the Secret watch
/// excludes them with a field selector.
pub const HELM_RELEASE_SECRET: &str = "helm.sh/release.v1";

/// A PromScalerAuthentication or a Secret that changed (after the initial list): the PromScalers
/// that read it are evaluated at once, so a fixed credential does not wait out a backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthChange {
    /// A PromScalerAuthentication, by namespace and name.
    Authentication(String, String),
    /// A Secret, by namespace and name.
    Secret(String, String),
}

/// Where a reflector reports changed objects, and how it names them.
type ChangeSink = (
    mpsc::UnboundedSender<AuthChange>,
    fn(String, String) -> AuthChange,
);

/// A reflector over the objects `config` selects, whose stream is driven by a background future;
/// `strip` trims each object before it is cached; `changed` (if any) hears of every object
/// applied or deleted after the initial list.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    changed: Option<ChangeSink>,
) -> (Store<K>, futures::future::BoxFuture<'static, ()>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config.any_semantic())
        .default_backoff()
        .modify(strip)
        .reflect(writer);
    let driver = async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                    if let Some((changes, change)) = &changed {
                        let meta = object.meta();
                        let namespace = meta.namespace.clone().unwrap_or_default();
                        let name = meta.name.clone().unwrap_or_default();
                        let _ = changes.send(change(namespace, name));
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, kind = %K::kind(&K::DynamicType::default()), "watch failed; retrying");
                }
            }
        }
    };
    (reader, Box::pin(driver))
}

impl Watches {
    /// Starts watching (lazily: the streams run once [`run`] polls them).
    pub fn new(client: &Client, namespace: Option<&str>) -> Self {
        let all = watcher::Config::default;
        let (changes, auth_changes) = mpsc::unbounded_channel();
        let (auths, auth_driver) = reflect(
            api::<PromScalerAuthentication>(client, namespace),
            all(),
            strip_metadata,
            Some((changes.clone(), AuthChange::Authentication)),
        );
        let (secrets, secret_driver) = reflect(
            api::<Secret>(client, namespace),
            all().fields(&format!("type!={HELM_RELEASE_SECRET}")),
            strip_metadata,
            Some((changes, AuthChange::Secret)),
        );
        let (deployments, deployment_driver) = reflect(
            api::<Workload<Deployment>>(client, namespace),
            all(),
            Workload::strip,
            None,
        );
        let (statefulsets, statefulset_driver) = reflect(
            api::<Workload<StatefulSet>>(client, namespace),
            all(),
            Workload::strip,
            None,
        );
        let (scalers, writer) = reflector::store();
        let scaler_events = watcher(
            api::<PromScaler>(client, namespace),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .modify(strip_scaler)
        .reflect(writer)
        .boxed();
        Self {
            scalers,
            auths,
            secrets,
            deployments,
            statefulsets,
            scaler_events,
            auth_changes,
            drivers: vec![
                auth_driver,
                secret_driver,
                deployment_driver,
                statefulset_driver,
            ],
        }
    }
}

/// Builds the loop's context and handle.
#[allow(clippy::too_many_arguments)]
pub fn context(
    client: Client,
    watches: &Watches,
    fetcher: FetcherClient,
    decision: DecisionClient,
    views: Arc<Views>,
    decisions: broadcast::Sender<DecisionEvent>,
    metrics: Metrics,
    settings: Settings,
) -> Arc<Context> {
    let reporter = kube::runtime::events::Reporter {
        controller: settings.controller_name.clone(),
        instance: Some(settings.instance.clone()),
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        targets: target::Targets::new(client.clone()),
        client,
        scalers: watches.scalers.clone(),
        auths: watches.auths.clone(),
        secrets: watches.secrets.clone(),
        deployments: watches.deployments.clone(),
        statefulsets: watches.statefulsets.clone(),
        fetcher,
        decision,
        views,
        decisions,
        metrics,
        settings,
    })
}

/// Creates the command channel between the gRPC service and the loop.
pub fn handle(leading: watch::Receiver<bool>) -> (Handle, mpsc::Receiver<Command>) {
    let (commands, receiver) = mpsc::channel(64);
    (Handle { commands, leading }, receiver)
}

/// Runs the controller until `shutdown`; tells `readiness` once every cache has synced.
pub async fn run(
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
        let _ = scaler_store.wait_until_ready().await;
    }));
    let mut is_synced = false;

    let mut scheduler: Scheduler<ScalerKey> = Scheduler::default();
    let mut known: HashSet<ScalerKey> = HashSet::new();
    let mut generations: HashMap<ScalerKey, Option<i64>> = HashMap::new();
    let mut running: HashSet<ScalerKey> = HashSet::new();
    let mut backoff: HashMap<ScalerKey, Duration> = HashMap::new();
    let mut waiting: HashMap<ScalerKey, Vec<oneshot::Sender<Result<DecisionEvent, String>>>> =
        HashMap::new();
    let mut queued: Vec<ScalerKey> = Vec::new();
    let mut ticks = FuturesUnordered::new();
    let mut is_leader = *leading.borrow();
    ctx.metrics.set_leader(is_leader);

    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            () = &mut synced, if !is_synced => {
                is_synced = true;
                readiness.set_caches_synced(true);
                tracing::info!(scalers = known.len(), "caches synced");
            }
            Some(()) = drivers.next() => {
                tracing::error!("a watch stream ended; stopping");
                break;
            }
            event = scaler_events.next() => {
                let Some(event) = event else {
                    tracing::error!("the PromScaler watch ended; stopping");
                    break;
                };
                match event {
                    Ok(watcher::Event::Apply(scaler) | watcher::Event::InitApply(scaler)) => {
                        let key = ScalerKey::of(&scaler);
                        if !ctx.settings.shard.owns(&key) {
                            continue;
                        }
                        // Our own status write coming back: keep one copy of it, not two.
                        ctx.views.settle_status(&key, &scaler);
                        let generation = scaler.meta().generation;
                        let changed = generations.insert(key.clone(), generation) != Some(generation);
                        let deleting = scaler.meta().deletion_timestamp.is_some();
                        if known.insert(key.clone()) || changed || deleting {
                            scheduler.schedule(key, Duration::ZERO);
                        }
                    }
                    Ok(watcher::Event::Delete(scaler)) => {
                        let key = ScalerKey::of(&scaler);
                        known.remove(&key);
                        generations.remove(&key);
                        scheduler.remove(&key);
                        backoff.remove(&key);
                        ctx.views.remove(&key);
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                    Err(error) => tracing::warn!(%error, "PromScaler watch failed; retrying"),
                }
                ctx.metrics.set_scalers(known.len());
            }
            Some(change) = auth_changes.recv(), if is_synced => {
                for key in readers_of(&ctx, &change) {
                    if known.contains(&key) && !running.contains(&key) {
                        tracing::debug!(scaler = %key, ?change, "credentials changed; evaluating now");
                        backoff.remove(&key);
                        scheduler.schedule(key, Duration::ZERO);
                    }
                }
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    tracing::error!("leader election stopped; stopping");
                    break;
                }
                let now_leader = *leading.borrow_and_update();
                if now_leader != is_leader {
                    is_leader = now_leader;
                    ctx.metrics.set_leader(is_leader);
                    // A new leader starts from what is persisted in status, never from memory
                    // left over from an earlier term.
                    ctx.views.forget_states();
                    if is_leader {
                        for key in &known {
                            scheduler.schedule(key.clone(), Duration::ZERO);
                        }
                    }
                }
            }
            Some(command) = commands.recv() => match command {
                Command::Reconcile(key, reply) => {
                    if !known.contains(&key) {
                        let _ = reply.send(Err(format!("PromScaler {key} not found")));
                    } else {
                        waiting.entry(key.clone()).or_default().push(reply);
                        if !running.contains(&key) {
                            scheduler.schedule(key, Duration::ZERO);
                        }
                    }
                }
            },
            key = scheduler.next_due(), if is_synced => {
                if !known.contains(&key) || running.contains(&key) {
                    continue;
                }
                if !is_leader {
                    // Standby: look again later; leadership changes reschedule everything.
                    scheduler.schedule(key, Duration::from_secs(30));
                    continue;
                }
                if running.len() >= ctx.settings.max_concurrent_ticks {
                    queued.push(key);
                    continue;
                }
                running.insert(key.clone());
                ticks.push(run_tick(ctx.clone(), key));
            }
            Some((key, outcome)) = ticks.next() => {
                running.remove(&key);
                let outcome: TickOutcome = outcome;
                for reply in waiting.remove(&key).unwrap_or_default() {
                    let _ = reply.send(match &outcome {
                        TickOutcome::Done { event, .. } | TickOutcome::Failed { event, .. } => Ok(event.clone()),
                        TickOutcome::Gone => Err(format!("PromScaler {key} is gone")),
                    });
                }
                match outcome {
                    TickOutcome::Done { next, .. } => {
                        backoff.remove(&key);
                        if known.contains(&key) {
                            scheduler.schedule_no_later_than(key, next);
                        }
                    }
                    TickOutcome::Failed { .. } => {
                        let delay = backoff
                            .get(&key)
                            .map_or(ctx.settings.min_backoff, |d| (*d * 2).min(ctx.settings.max_backoff));
                        backoff.insert(key.clone(), delay);
                        if known.contains(&key) {
                            scheduler.schedule_no_later_than(key, delay);
                        }
                    }
                    TickOutcome::Gone => {}
                }
                while running.len() < ctx.settings.max_concurrent_ticks {
                    let Some(key) = queued.pop() else { break };
                    if known.contains(&key) && !running.contains(&key) {
                        running.insert(key.clone());
                        ticks.push(run_tick(ctx.clone(), key));
                    }
                }
            }
        }
    }
    readiness.set_caches_synced(false);
}

/// The PromScalers that read `change`: those whose triggers name the PromScalerAuthentication,
/// or one that reads the Secret. A scan of the cache, but credentials change rarely.
fn readers_of(ctx: &Context, change: &AuthChange) -> Vec<ScalerKey> {
    let (namespace, auth_names): (&str, Vec<String>) = match change {
        AuthChange::Authentication(namespace, name) => (namespace, vec![name.clone()]),
        AuthChange::Secret(namespace, secret) => (
            namespace,
            ctx.auths
                .state()
                .iter()
                .filter(|a| a.metadata.namespace.as_deref() == Some(namespace.as_str()))
                .filter(|a| {
                    a.spec
                        .secret_refs()
                        .iter()
                        .any(|(name, _, _)| name == secret)
                })
                .filter_map(|a| a.metadata.name.clone())
                .collect(),
        ),
    };
    if auth_names.is_empty() {
        return Vec::new();
    }
    ctx.scalers
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter(|s| {
            s.spec.triggers.iter().any(|t| {
                t.authentication_ref
                    .as_ref()
                    .is_some_and(|r| auth_names.contains(&r.name))
            })
        })
        .map(|s| ScalerKey::of(s))
        .collect()
}

async fn run_tick(ctx: Arc<Context>, key: ScalerKey) -> (ScalerKey, TickOutcome) {
    let outcome = tick::tick(&ctx, &key).await;
    (key, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> ScalerKey {
        ScalerKey {
            namespace: format!("team-{}", i % 7).into(),
            name: format!("scaler-{i}").into(),
        }
    }

    #[test]
    fn every_scaler_belongs_to_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut per_shard = [0usize; 4];
        for i in 0..1000 {
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&key(i)))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{} owned by {owners:?}", key(i));
            per_shard[owners[0] as usize] += 1;
        }
        // A hash, not a pile-up: each shard gets a fair part of 1,000 scalers.
        assert!(
            per_shard.iter().all(|n| (150..=350).contains(n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn shard_assignment_is_a_fixed_function_of_namespace_and_name() {
        // FNV-1a of "default/sample-app-prometheus-scaler" is 8407564891931198889 (computed
        // independently), so every replica and every version agree on the owner.
        let seed = ScalerKey {
            namespace: "default".into(),
            name: "sample-app-prometheus-scaler".into(),
        };
        let owner = |count| (0..count).find(|&index| Shard { index, count }.owns(&seed));
        assert_eq!(owner(3), Some(0));
        assert_eq!(owner(5), Some(4));
        assert_eq!(owner(1), Some(0), "one shard owns everything");
    }
}
