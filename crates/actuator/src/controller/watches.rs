//! The watch caches: kube-runtime reflectors over PromScalers, PromScalerAuthentications,
//! Secrets (metadata only: their data is read with a GET when a tick needs it, see
//! [`super::secrets`]), Deployments, StatefulSets and ServiceAccounts, trimmed of what no tick
//! reads, and the changes to credentials that make their readers due at once.

use std::fmt;

use futures::StreamExt as _;
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use promscaler_api::{PromScaler, PromScalerAuthentication};
use tokio::sync::mpsc;

use crate::types::{HELM_RELEASE_SECRET, ScalerKey, Workload};

/// Stores and the streams that fill them.
pub(crate) struct Watches {
    /// PromScalers.
    pub scalers: Store<PromScaler>,
    /// PromScalerAuthentications.
    pub auths: Store<PromScalerAuthentication>,
    /// Secrets: metadata only (names, resourceVersions), never data. The type cannot hold data.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Deployments (replica counts only).
    pub deployments: Store<Workload<Deployment>>,
    /// StatefulSets (replica counts only).
    pub statefulsets: Store<Workload<StatefulSet>>,
    /// ServiceAccounts (the `eks.amazonaws.com/role-arn` annotation only), for
    /// `identityOwner: workload`.
    pub service_accounts: Store<ServiceAccount>,
    pub(crate) scaler_events:
        futures::stream::BoxStream<'static, Result<watcher::Event<PromScaler>, watcher::Error>>,
    pub(crate) auth_changes: mpsc::UnboundedReceiver<AuthChange>,
    pub(crate) drivers: Vec<futures::future::BoxFuture<'static, ()>>,
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

/// A PromScalerAuthentication or a Secret that changed (after the initial list): the PromScalers
/// that read it are evaluated at once, so a fixed credential does not wait out a backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthChange {
    /// A PromScalerAuthentication, by namespace and name.
    Authentication(String, String),
    /// A Secret, by namespace and name.
    Secret(String, String),
    /// A ServiceAccount, by namespace and name (its role annotation; readers:
    /// [`crate::identity::readers_of_service_account`]).
    ServiceAccount(String, String),
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
    /// Starts watching (lazily: the streams run once the controller loop (`run`) polls them).
    pub(crate) fn new(client: &Client, namespace: Option<&str>) -> Self {
        let all = watcher::Config::default;
        let (changes, auth_changes) = mpsc::unbounded_channel();
        let changes_to_accounts = changes.clone();
        let (auths, auth_driver) = reflect(
            api::<PromScalerAuthentication>(client, namespace),
            all(),
            strip_metadata,
            Some((changes.clone(), AuthChange::Authentication)),
        );
        // `Api<PartialObjectMeta<_>>` lists and watches with `as=PartialObjectMetadata`: the API
        // server sends metadata only.
        let (secrets, secret_driver) = reflect(
            api::<PartialObjectMeta<Secret>>(client, namespace),
            all().fields(&format!("type!={HELM_RELEASE_SECRET}")),
            strip_metadata,
            Some((changes.clone(), AuthChange::Secret)),
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
        let (service_accounts, service_account_driver) = reflect(
            api::<ServiceAccount>(client, namespace),
            all(),
            crate::identity::strip_service_account,
            Some((changes_to_accounts, AuthChange::ServiceAccount)),
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
            service_accounts,
            scaler_events,
            auth_changes,
            drivers: vec![
                auth_driver,
                secret_driver,
                deployment_driver,
                statefulset_driver,
                service_account_driver,
            ],
        }
    }
}

/// The PromScalers that read `change`: those whose triggers name the PromScalerAuthentication,
/// or one that reads the Secret. A scan of the cache, but credentials change rarely.
pub(crate) fn readers_of(
    scalers: &Store<PromScaler>,
    auths: &Store<PromScalerAuthentication>,
    change: &AuthChange,
) -> Vec<ScalerKey> {
    let (namespace, auth_names): (&str, Vec<String>) = match change {
        AuthChange::Authentication(namespace, name) => (namespace, vec![name.clone()]),
        AuthChange::Secret(namespace, secret) => (
            namespace,
            auths
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
        // Read through the workloads' pod templates: `identity::readers_of_service_account`.
        AuthChange::ServiceAccount(..) => return Vec::new(),
    };
    if auth_names.is_empty() {
        return Vec::new();
    }
    scalers
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The Secret metadata the watch caches keeps neither data (the type has no field for it)
    /// nor kubectl's last-applied annotation, which holds a copy of a Secret's data.
    #[test]
    fn cached_secret_metadata_drops_the_last_applied_copy_of_the_data() {
        let mut meta: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "creds", "namespace": "ns", "resourceVersion": "7",
                "annotations": {
                    LAST_APPLIED: r#"{"apiVersion":"v1","kind":"Secret","data":{"token":"czNjcmV0"}}"#,
                    "team": "a",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
        }))
        .unwrap();
        strip_metadata(&mut meta);
        let cached = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            cached["metadata"],
            serde_json::json!({
                "name": "creds", "namespace": "ns", "resourceVersion": "7",
                "annotations": {"team": "a"},
            })
        );
        assert!(!cached.to_string().contains("czNjcmV0"));
    }
}
