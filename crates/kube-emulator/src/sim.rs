//! The workload simulator: Deployments and StatefulSets get Pods (labelled from their template,
//! owned by the workload) and a status that follows `spec.replicas`; a Pod turns Ready after the
//! start-up delay. It reacts to store events, so 10,000 idle workloads cost nothing per tick.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{
    EventKind, Preconditions, Store, StoreEvent, UpdateMode, meta_str, random_suffix,
};
use crate::time;

/// Settings of the workload simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// How long a new Pod stays Pending/not ready before it becomes Running and Ready.
    pub startup_delay: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            startup_delay: Duration::from_secs(1),
        }
    }
}

const DEPLOYMENTS: &str = "apps/deployments";
/// Scaling Events kept per workload; older ones are deleted.
const MAX_EVENTS_PER_WORKLOAD: usize = 10;
const STATEFULSETS: &str = "apps/statefulsets";

type Key = (&'static str, String, String);

struct SimPod {
    name: String,
    /// The template hash it was created from (a Deployment replaces Pods of older templates).
    hash: String,
    ordinal: u32,
    ready_at: Instant,
    ready: bool,
}

struct Sim {
    store: Arc<Store>,
    cfg: SimConfig,
    pods: HashMap<Key, Vec<SimPod>>,
    owner: HashMap<(String, String), Key>,
    /// When Pods of which workload turn ready (entries may be stale: reconciling is idempotent).
    due: BinaryHeap<Reverse<(Instant, Key)>>,
    /// The scaling Events recorded per workload, oldest first (bounded, like the real API's
    /// event TTL bounds them).
    events: HashMap<Key, VecDeque<String>>,
    next_ip: u32,
}

/// Runs the simulator until `shutdown` changes.
pub(crate) async fn run(store: Arc<Store>, cfg: SimConfig, mut shutdown: watch::Receiver<bool>) {
    let mut rx = store.subscribe();
    let mut sim = Sim {
        store,
        cfg,
        pods: HashMap::new(),
        owner: HashMap::new(),
        due: BinaryHeap::new(),
        events: HashMap::new(),
        next_ip: 0,
    };
    let mut dirty: HashSet<Key> = HashSet::new();
    sim.mark_all(&mut dirty);
    loop {
        sim.mark_due(&mut dirty);
        for key in std::mem::take(&mut dirty) {
            sim.reconcile(&key);
        }
        let wake = sim.next_wake();
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => sim.on_event(&ev, &mut dirty),
                Err(broadcast::error::RecvError::Lagged(_)) => sim.mark_all(&mut dirty),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {}
            _ = shutdown.changed() => return,
        }
        while let Ok(ev) = rx.try_recv() {
            sim.on_event(&ev, &mut dirty);
        }
    }
}

fn template_hash(template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

impl Sim {
    fn def(&self, storage: &str) -> Option<Arc<ResourceDef>> {
        let (group, plural) = storage.split_once('/')?;
        self.store.registry().find_any(group, plural)
    }

    fn mark_all(&self, dirty: &mut HashSet<Key>) {
        for storage in [DEPLOYMENTS, STATEFULSETS] {
            let Some(def) = self.def(storage) else {
                continue;
            };
            if let Ok(list) = self.store.list(
                &def,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
                None,
                None,
            ) {
                for o in list.items {
                    dirty.insert((
                        storage,
                        meta_str(&o, "namespace").into(),
                        meta_str(&o, "name").into(),
                    ));
                }
            }
        }
        dirty.extend(self.pods.keys().cloned());
    }

    fn mark_due(&mut self, dirty: &mut HashSet<Key>) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.due.pop() else {
                break;
            };
            dirty.insert(key);
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    fn on_event(&mut self, ev: &StoreEvent, dirty: &mut HashSet<Key>) {
        let (ns, name) = (
            meta_str(&ev.object, "namespace").to_string(),
            meta_str(&ev.object, "name").to_string(),
        );
        match ev.storage.as_str() {
            DEPLOYMENTS => {
                dirty.insert((DEPLOYMENTS, ns, name));
            }
            STATEFULSETS => {
                dirty.insert((STATEFULSETS, ns, name));
            }
            "/pods" if ev.kind == EventKind::Deleted => {
                // a Pod deleted by someone else: the workload replaces it
                if let Some(key) = self.owner.remove(&(ns, name.clone())) {
                    if let Some(pods) = self.pods.get_mut(&key) {
                        pods.retain(|p| p.name != name);
                    }
                    dirty.insert(key);
                }
            }
            _ => {}
        }
    }

    fn delete_pod(&mut self, ns: &str, name: &str) {
        self.owner.remove(&(ns.to_string(), name.to_string()));
        if let Some(def) = self.def("/pods") {
            let _ = self
                .store
                .delete(&def, ns, name, &Preconditions::default(), false);
        }
    }

    fn reconcile(&mut self, key: &Key) {
        let (storage, ns, name) = key;
        let Some(def) = self.def(storage) else { return };
        let Some(pod_def) = self.def("/pods") else {
            return;
        };
        let obj = match self.store.get(&def, ns, name) {
            Ok(o) => o,
            Err(_) => {
                for p in self.pods.remove(key).unwrap_or_default() {
                    self.delete_pod(ns, &p.name);
                }
                self.events.remove(key);
                return;
            }
        };
        let sts = *storage == STATEFULSETS;
        let desired = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let template = obj
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let now = Instant::now();
        let mut pods = self.pods.remove(key).unwrap_or_default();
        let before = pods.len();
        // StatefulSet Pods keep their template (no rolling update); Deployment Pods of an older
        // template are replaced: new ones are created, old ones go once the new ones are ready
        let is_current = |p: &SimPod| sts || p.hash == hash;
        while pods.iter().filter(|p| is_current(p)).count() < desired {
            let ordinal = if sts {
                (0..)
                    .find(|o| !pods.iter().any(|p| p.ordinal == *o))
                    .unwrap_or(0)
            } else {
                pods.iter().map(|p| p.ordinal + 1).max().unwrap_or(0)
            };
            let pod_name = if sts {
                format!("{name}-{ordinal}")
            } else {
                format!("{name}-{hash}-{}", random_suffix(5))
            };
            let pod = self.pod_object(&obj, &template, &hash, &pod_name, ordinal, sts);
            match self.store.create(&pod_def, ns, pod, true, false) {
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(pod = %pod_name, error = %e.message, "the workload simulator could not create a pod");
                    break;
                }
            }
            self.owner
                .insert((ns.clone(), pod_name.clone()), key.clone());
            let ready_at = now + self.cfg.startup_delay;
            self.due.push(Reverse((ready_at, key.clone())));
            pods.push(SimPod {
                name: pod_name,
                hash: hash.clone(),
                ordinal,
                ready_at,
                ready: false,
            });
        }
        while pods.iter().filter(|p| is_current(p)).count() > desired {
            let victim = if sts {
                pods.iter()
                    .enumerate()
                    .max_by_key(|(_, p)| p.ordinal)
                    .map(|(i, _)| i)
            } else {
                pods.iter()
                    .rposition(|p| is_current(p) && !p.ready)
                    .or_else(|| pods.iter().rposition(&is_current))
            };
            let Some(i) = victim else { break };
            let p = pods.remove(i);
            self.delete_pod(ns, &p.name);
        }
        for p in pods.iter_mut().filter(|p| !p.ready && p.ready_at <= now) {
            p.ready = true;
            self.next_ip += 1;
            let ip = format!(
                "10.244.{}.{}",
                (self.next_ip / 250) % 250,
                self.next_ip % 250 + 2
            );
            let _ = self.store.update(
                &pod_def,
                ns,
                &p.name,
                UpdateMode::Internal,
                false,
                false,
                |cur| {
                    let mut new = cur.clone();
                    new["status"] = ready_status(cur, &ip);
                    Ok(new)
                },
            );
        }
        let rolled = pods.iter().filter(|p| is_current(p) && p.ready).count() == desired;
        if rolled && pods.iter().any(|p| !is_current(p)) {
            let (keep, old): (Vec<SimPod>, Vec<SimPod>) =
                pods.into_iter().partition(|p| is_current(p));
            for p in old {
                self.delete_pod(ns, &p.name);
            }
            pods = keep;
        }
        if pods.len() != before {
            self.record_scaling(key, &obj, before, pods.len(), &hash, sts);
        }
        let total = pods.len() as i64;
        let updated = pods.iter().filter(|p| is_current(p)).count() as i64;
        let ready = pods.iter().filter(|p| p.ready).count() as i64;
        if total > 0 || desired > 0 {
            self.pods.insert(key.clone(), pods);
        }
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let old = obj.get("status").cloned().unwrap_or_else(|| json!({}));
        let status = if sts {
            sts_status(&old, generation, total, ready, &format!("{name}-{hash}"))
        } else {
            deployment_status(&old, generation, desired as i64, total, updated, ready)
        };
        if status != old {
            let _ = self
                .store
                .update(&def, ns, name, UpdateMode::Internal, false, false, |cur| {
                    let mut new = cur.clone();
                    new["status"] = status;
                    Ok(new)
                });
        }
    }

    /// The core/v1 Event the workload's controller records when it changes the Pod count
    /// (`ScalingReplicaSet` from the deployment controller, `SuccessfulCreate`/`SuccessfulDelete`
    /// from the statefulset controller), so `kubectl describe` shows scaling as on a cluster.
    fn record_scaling(
        &mut self,
        key: &Key,
        owner: &Value,
        from: usize,
        to: usize,
        hash: &str,
        sts: bool,
    ) {
        let Some(def) = self.def("/events") else {
            return;
        };
        let name = meta_str(owner, "name");
        let (component, reason, message) = if sts {
            let verb = if to > from { "create" } else { "delete" };
            (
                "statefulset-controller",
                if to > from {
                    "SuccessfulCreate"
                } else {
                    "SuccessfulDelete"
                },
                format!("{verb} Pods in StatefulSet {name}: {from} to {to} replicas"),
            )
        } else {
            let direction = if to > from { "up" } else { "down" };
            (
                "deployment-controller",
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name}-{hash} from {from} to {to}"),
            )
        };
        let now = time::now();
        let event_name = format!("{name}.{}", random_suffix(10));
        let event = json!({
            "metadata": {"name": event_name},
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": owner["kind"],
                "name": name,
                "namespace": meta_str(owner, "namespace"),
                "uid": meta_str(owner, "uid"),
                "resourceVersion": meta_str(owner, "resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": "Normal",
            "reportingComponent": component,
            "reportingInstance": "",
        });
        let ns = meta_str(owner, "namespace");
        if self.store.create(&def, ns, event, true, false).is_ok() {
            let recorded = self.events.entry(key.clone()).or_default();
            recorded.push_back(event_name);
            if recorded.len() > MAX_EVENTS_PER_WORKLOAD
                && let Some(oldest) = recorded.pop_front()
            {
                let _ = self
                    .store
                    .delete(&def, ns, &oldest, &Preconditions::default(), false);
            }
        }
    }

    fn pod_object(
        &self,
        owner: &Value,
        template: &Value,
        hash: &str,
        pod_name: &str,
        ordinal: u32,
        sts: bool,
    ) -> Value {
        let mut labels: Map<String, Value> = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if sts {
            labels.insert(
                "controller-revision-hash".into(),
                json!(format!("{}-{hash}", meta_str(owner, "name"))),
            );
            labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
            labels.insert(
                "apps.kubernetes.io/pod-index".into(),
                json!(ordinal.to_string()),
            );
        } else {
            labels.insert("pod-template-hash".into(), json!(hash));
        }
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["nodeName"] = json!("emulator-node");
        let mut meta = json!({
            "name": pod_name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": owner["kind"],
                "name": meta_str(owner, "name"),
                "uid": meta_str(owner, "uid"),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        });
        if let Some(a) = template.pointer("/metadata/annotations") {
            meta["annotations"] = a.clone();
        }
        let now = time::now();
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
                "hostIP": "10.0.0.1",
                "qosClass": "BestEffort",
                "startTime": now,
            },
        })
    }
}

fn ready_status(pod: &Value, ip: &str) -> Value {
    let now = time::now();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": "10.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "qosClass": "BestEffort",
        "startTime": pod.pointer("/status/startTime").cloned().unwrap_or_else(|| json!(now)),
        "containerStatuses": containers,
    })
}

/// A condition, keeping the old transition time when its status did not change.
fn condition(old: &Value, type_: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let prev = old
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let now = time::now();
    let unchanged = prev.is_some_and(|p| p["status"] == status && p["reason"] == reason);
    let transition = match prev {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let update = match prev {
        Some(p) if unchanged => p["lastUpdateTime"].clone(),
        _ => json!(now),
    };
    json!({"type": type_, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition, "reason": reason, "message": message})
}

fn put_nonzero(m: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.into(), json!(v));
    }
}

fn deployment_status(
    old: &Value,
    generation: i64,
    desired: i64,
    total: i64,
    updated: i64,
    ready: i64,
) -> Value {
    let mut m = Map::new();
    m.insert("observedGeneration".into(), json!(generation));
    put_nonzero(&mut m, "replicas", total);
    put_nonzero(&mut m, "updatedReplicas", updated);
    put_nonzero(&mut m, "readyReplicas", ready);
    put_nonzero(&mut m, "availableReplicas", ready);
    put_nonzero(
        &mut m,
        "unavailableReplicas",
        (desired.max(total) - ready).max(0),
    );
    let available = ready >= desired;
    let progressed = ready == desired && total == desired && updated == desired;
    m.insert(
        "conditions".into(),
        json!([
            condition(
                old,
                "Available",
                available,
                if available {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if available {
                    "Deployment has minimum availability."
                } else {
                    "Deployment does not have minimum availability."
                },
            ),
            condition(
                old,
                "Progressing",
                true,
                if progressed {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                "ReplicaSet is progressing.",
            ),
        ]),
    );
    Value::Object(m)
}

fn sts_status(old: &Value, generation: i64, total: i64, ready: i64, revision: &str) -> Value {
    let _ = old;
    let mut m = Map::new();
    m.insert("observedGeneration".into(), json!(generation));
    m.insert("replicas".into(), json!(total));
    put_nonzero(&mut m, "readyReplicas", ready);
    put_nonzero(&mut m, "currentReplicas", total);
    put_nonzero(&mut m, "updatedReplicas", total);
    m.insert("availableReplicas".into(), json!(ready));
    m.insert("currentRevision".into(), json!(revision));
    m.insert("updateRevision".into(), json!(revision));
    m.insert("collisionCount".into(), json!(0));
    Value::Object(m)
}
