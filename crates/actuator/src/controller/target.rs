//! The scale target of a PromScaler: its replicas, read from the Deployment and StatefulSet
//! watch caches (no GET per tick), or from `/scale` for any other kind with a scale subresource
//! (Argo Rollouts, custom resources), resolved once through discovery; and the `/scale` PATCH.

use std::{borrow::Cow, collections::HashMap, marker::PhantomData, sync::Mutex};

use k8s_openapi::{
    api::apps::v1::{Deployment, StatefulSet},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery,
    runtime::reflector::{ObjectRef, Store},
};
use promscaler_proto::v1::Replicas;
use serde::Deserialize;

/// What the watch cache keeps of a Deployment or StatefulSet (`K`): its metadata and the
/// replica counts a tick reads, nothing else. List and watch responses deserialize straight
/// into it, so pod templates, conditions and the rest are skipped by the parser instead of
/// being allocated and kept for every workload in the cluster (at 10,000 Deployments the full
/// objects were most of the actuator's memory).
#[derive(Debug, Clone, Deserialize)]
pub struct Workload<K> {
    /// Metadata (stripped of what no tick reads when it enters the cache).
    pub metadata: ObjectMeta,
    /// `spec.replicas`.
    #[serde(default)]
    pub spec: Option<WorkloadSpec>,
    /// `status.replicas` and `status.readyReplicas`.
    #[serde(default)]
    pub status: Option<WorkloadStatus>,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

/// The part of a workload's spec the actuator reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkloadSpec {
    /// Desired replicas; absent = 1 (the API server's default).
    #[serde(default)]
    pub replicas: Option<i32>,
}

/// The part of a workload's status the actuator reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Current replicas.
    #[serde(default)]
    pub replicas: Option<i32>,
    /// Ready replicas.
    #[serde(default)]
    pub ready_replicas: Option<i32>,
}

impl<K> Workload<K> {
    /// Drops the metadata no tick reads before the object enters the cache: a workload is looked
    /// up by namespace/name only (the watcher has taken the resourceVersion it resumes from).
    pub fn strip(&mut self) {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.annotations = None;
        meta.labels = None;
        meta.owner_references = None;
        meta.uid = None;
        meta.resource_version = None;
        meta.creation_timestamp = None;
        meta.generation = None;
    }

    fn replicas(&self) -> Replicas {
        let status = self.status.as_ref();
        Replicas {
            spec: self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            status: status.and_then(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> kube::Resource for Workload<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind((): &()) -> Cow<'_, str> {
        K::kind(&())
    }

    fn group((): &()) -> Cow<'_, str> {
        K::group(&())
    }

    fn version((): &()) -> Cow<'_, str> {
        K::version(&())
    }

    fn plural((): &()) -> Cow<'_, str> {
        K::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// `apiVersion`/`kind`/`name` of a target, with KEDA's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetRef {
    /// e.g. `apps/v1`.
    pub api_version: String,
    /// e.g. `Deployment`.
    pub kind: String,
    /// Name, in the PromScaler's namespace.
    pub name: String,
}

impl From<promscaler_proto::v1::ScaleTargetRef> for TargetRef {
    fn from(target: promscaler_proto::v1::ScaleTargetRef) -> Self {
        Self {
            api_version: target.api_version,
            kind: target.kind,
            name: target.name,
        }
    }
}

impl TargetRef {
    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }

    fn is(&self, api_version: &str, kind: &str) -> bool {
        self.api_version == api_version && self.kind == kind
    }
}

/// Why a target's scale could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target does not exist (yet).
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The kind is not served or has no scale subresource.
    #[error("{api_version} {kind} cannot be scaled: {reason}")]
    NotScalable {
        /// API version.
        api_version: String,
        /// Kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// The API failed.
    #[error("Kubernetes API error: {0}")]
    Api(#[from] kube::Error),
}

impl TargetError {
    /// Whether the API answered 409 Conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Api(kube::Error::Api(status)) if status.code == 409)
    }
}

/// Resolves and caches the API resources of target kinds.
pub struct Targets {
    client: Client,
    resources: Mutex<HashMap<GroupVersionKind, ApiResource>>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets").finish_non_exhaustive()
    }
}

impl Targets {
    /// A resolver using `client` for discovery and `/scale`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            resources: Mutex::new(HashMap::new()),
        }
    }

    async fn resource(&self, target: &TargetRef) -> Result<ApiResource, TargetError> {
        let gvk = target.gvk();
        if let Some(resource) = self
            .resources
            .lock()
            .ok()
            .and_then(|r| r.get(&gvk).cloned())
        {
            return Ok(resource);
        }
        let (resource, capabilities) =
            discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|error| TargetError::NotScalable {
                    api_version: target.api_version.clone(),
                    kind: target.kind.clone(),
                    reason: format!("not found by discovery ({error})"),
                })?;
        if !capabilities
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale")
        {
            return Err(TargetError::NotScalable {
                api_version: target.api_version.clone(),
                kind: target.kind.clone(),
                reason: "it has no scale subresource".to_owned(),
            });
        }
        if let Ok(mut resources) = self.resources.lock() {
            resources.insert(gvk, resource.clone());
        }
        Ok(resource)
    }

    /// The target's replicas: spec (desired), status (current) and ready.
    pub async fn replicas(
        &self,
        namespace: &str,
        target: &TargetRef,
        deployments: &Store<Workload<Deployment>>,
        statefulsets: &Store<Workload<StatefulSet>>,
    ) -> Result<Replicas, TargetError> {
        let not_found = || TargetError::NotFound {
            kind: target.kind.clone(),
            namespace: namespace.to_owned(),
            name: target.name.clone(),
        };
        if target.is("apps/v1", "Deployment") {
            return deployments
                .get(&ObjectRef::new(&target.name).within(namespace))
                .map(|d| d.replicas())
                .ok_or_else(not_found);
        }
        if target.is("apps/v1", "StatefulSet") {
            return statefulsets
                .get(&ObjectRef::new(&target.name).within(namespace))
                .map(|s| s.replicas())
                .ok_or_else(not_found);
        }
        // Other kinds: their /scale (no ready count there, so status replicas stand in).
        let resource = self.resource(target).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let scale = match api.get_scale(&target.name).await {
            Ok(scale) => scale,
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(not_found()),
            Err(error) => return Err(error.into()),
        };
        let spec = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        let status = scale.status.map_or(0, |s| s.replicas);
        Ok(Replicas {
            spec,
            status,
            ready: status,
        })
    }

    /// Sets the target's `spec.replicas` through its `/scale` subresource.
    pub async fn scale(
        &self,
        namespace: &str,
        target: &TargetRef,
        replicas: i32,
    ) -> Result<(), TargetError> {
        let resource = if target.is("apps/v1", "Deployment") {
            ApiResource::erase::<Deployment>(&())
        } else if target.is("apps/v1", "StatefulSet") {
            ApiResource::erase::<StatefulSet>(&())
        } else {
            self.resource(target).await?
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        match api
            .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(TargetError::NotFound {
                kind: target.kind.clone(),
                namespace: namespace.to_owned(),
                name: target.name.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_keep_replica_counts_and_drop_the_rest() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "app",
                "namespace": "default",
                "resourceVersion": "7",
                "labels": { "app": "app" },
                "annotations": { "deployment.kubernetes.io/revision": "1" },
                "managedFields": [{ "manager": "kubectl", "operation": "Update" }]
            },
            "spec": {
                "replicas": 3,
                "selector": { "matchLabels": { "app": "app" } },
                "template": { "spec": { "containers": [{ "name": "app", "image": "app:1" }] } }
            },
            "status": { "replicas": 3, "readyReplicas": 2, "conditions": [{ "type": "Available" }] }
        });
        let mut workload: Workload<Deployment> = serde_json::from_value(json).unwrap();
        workload.strip();
        assert_eq!(
            workload.replicas(),
            Replicas {
                spec: 3,
                status: 3,
                ready: 2
            }
        );
        assert_eq!(workload.metadata.name.as_deref(), Some("app"));
        assert_eq!(workload.metadata.namespace.as_deref(), Some("default"));
        assert!(workload.metadata.managed_fields.is_none());
        assert!(workload.metadata.annotations.is_none());
    }

    #[test]
    fn a_workload_without_spec_or_status_has_the_api_defaults() {
        let json = serde_json::json!({ "metadata": { "name": "set" } });
        let workload: Workload<StatefulSet> = serde_json::from_value(json).unwrap();
        assert_eq!(
            workload.replicas(),
            Replicas {
                spec: 1,
                status: 0,
                ready: 0
            }
        );
        assert_eq!(
            <Workload<StatefulSet> as kube::Resource>::plural(&()),
            "statefulsets"
        );
    }
}
