//! The scale target of a PromScaler: its replicas, read from the Deployment and StatefulSet
//! watch caches (no GET per tick), or from `/scale` for any other kind with a scale subresource
//! (Argo Rollouts, custom resources), resolved once through discovery; and the `/scale` PATCH.

use std::{collections::HashMap, sync::Mutex};

use crate::types::{TargetRef, Workload};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery,
    runtime::reflector::{ObjectRef, Store},
};
use promscaler_proto::v1::Replicas;

/// Why a target's scale could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
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
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Api(kube::Error::Api(status)) if status.code == 409)
    }
}

/// Resolves and caches the API resources of target kinds.
pub(crate) struct Targets {
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
    pub(crate) fn new(client: Client) -> Self {
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
    pub(crate) async fn replicas(
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
    pub(crate) async fn scale(
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
