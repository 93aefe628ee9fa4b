//! The actuator's vocabulary: plain types every other module reads and none of them owns. The
//! leaf of the crate's dependency graph (it imports nothing of the crate):
//!
//! ```text
//! types, clock, reason, error        plain data, no I/O
//!   ← spec, status, views, metrics   a PromScaler's evaluation, its status, memory, metrics
//!   ← controller (index, tick, ...)  the loop and one evaluation
//!   ← grpc, leader, args             the service, the Lease, the composition root
//! ```

use std::{borrow::Cow, fmt, marker::PhantomData, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{api::GroupVersionKind, runtime::reflector};
use promscaler_api::PromScaler;
use promscaler_proto::v1::{self as pb, Replicas};
use serde::Deserialize;

/// The type of the Secrets Helm keeps each release in (the whole rendered chart, often hundreds
/// of KB each, one per revision). No PromScalerAuthentication refers to one, and caching them
/// would dominate the actuator's memory on clusters with many releases: the Secret watch
/// excludes them with a field selector.
pub(crate) const HELM_RELEASE_SECRET: &str = "helm.sh/release.v1";

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
    pub(crate) fn object_ref(&self) -> reflector::ObjectRef<PromScaler> {
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

/// What the watch cache keeps of a Deployment or StatefulSet (`K`): its metadata, the replica
/// counts a tick reads and its pod template's ServiceAccount name, nothing else. List and watch responses deserialize straight
/// into it, so pod templates, conditions and the rest are skipped by the parser instead of
/// being allocated and kept for every workload in the cluster (at 10,000 Deployments the full
/// objects were most of the actuator's memory).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Workload<K> {
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
pub(crate) struct WorkloadSpec {
    /// Desired replicas; absent = 1 (the API server's default).
    #[serde(default)]
    pub replicas: Option<i32>,
    /// `template.spec.serviceAccountName` (else the deprecated `serviceAccount`): whose AWS
    /// role `identityOwner: workload` assumes. The rest of the pod template is skipped.
    #[serde(
        default,
        rename = "template",
        deserialize_with = "service_account_of_template"
    )]
    pub service_account_name: Option<String>,
}

/// Reads only the ServiceAccount name out of a pod template.
fn service_account_of_template<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Template {
        #[serde(default)]
        spec: Option<PodSpec>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PodSpec {
        #[serde(default)]
        service_account_name: Option<String>,
        #[serde(default)]
        service_account: Option<String>,
    }
    let template = Option::<Template>::deserialize(deserializer)?;
    Ok(template.and_then(|t| t.spec).and_then(|s| {
        s.service_account_name
            .filter(|n| !n.is_empty())
            .or(s.service_account.filter(|n| !n.is_empty()))
    }))
}

/// The part of a workload's status the actuator reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadStatus {
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
    pub(crate) fn strip(&mut self) {
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

    /// The ServiceAccount its pods run as: the pod template's, else `default` (the API
    /// server's default).
    pub(crate) fn service_account(&self) -> &str {
        self.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default")
    }

    /// The replica counts a tick reads (the API server's defaults when absent).
    pub(crate) fn replicas(&self) -> Replicas {
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
pub(crate) struct TargetRef {
    /// e.g. `apps/v1`.
    pub api_version: String,
    /// e.g. `Deployment`.
    pub kind: String,
    /// Name, in the PromScaler's namespace.
    pub name: String,
}

impl From<pb::ScaleTargetRef> for TargetRef {
    fn from(target: pb::ScaleTargetRef) -> Self {
        Self {
            api_version: target.api_version,
            kind: target.kind,
            name: target.name,
        }
    }
}

impl TargetRef {
    /// The group, version and kind, for discovery.
    pub(crate) fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }

    /// Whether this is `api_version` `kind`.
    pub(crate) fn is(&self, api_version: &str, kind: &str) -> bool {
        self.api_version == api_version && self.kind == kind
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

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
