//! The object store: every object of every resource as a `serde_json::Value`, one global
//! resourceVersion counter (like etcd's revision), a bounded event history for watches that
//! resume from a resourceVersion, and a broadcast channel that fans `Arc`ed events out to
//! watchers without copying the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use rand::Rng as _;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::{Builtin, Registry, ResourceDef, defs_from_crd};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::time;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change of one object, shared by every watcher.
#[derive(Debug)]
pub(crate) struct StoreEvent {
    pub(crate) rv: u64,
    pub(crate) storage: String,
    pub(crate) kind: EventKind,
    pub(crate) object: Arc<Value>,
    /// The object before a modification (lets filtered watches turn it into ADDED/DELETED).
    pub(crate) prev: Option<Arc<Value>>,
    /// When the event was made: for live events, the commit (under the store's lock).
    pub(crate) at: std::time::Instant,
    json: OnceLock<Bytes>,
}

impl StoreEvent {
    fn new(
        rv: u64,
        storage: String,
        kind: EventKind,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        Self {
            rv,
            storage,
            kind,
            object,
            prev,
            at: std::time::Instant::now(),
            json: OnceLock::new(),
        }
    }

    /// The object serialized once for all watchers.
    pub(crate) fn object_json(&self) -> &Bytes {
        self.json
            .get_or_init(|| Bytes::from(self.object.to_string()))
    }

    pub(crate) fn namespace(&self) -> &str {
        meta_str(&self.object, "namespace")
    }
}

/// The result of a list.
#[derive(Debug)]
pub(crate) struct ListResult {
    pub(crate) items: Vec<Arc<Value>>,
    pub(crate) resource_version: u64,
    pub(crate) continue_token: Option<String>,
}

/// How an update treats `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// The main endpoint: status changes are ignored when the kind has a status subresource.
    Main,
    /// The `/status` subresource: only status changes are kept.
    Status,
    /// Internal writers (the workload simulator): everything is kept.
    Internal,
}

/// What a delete did.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// The object is gone.
    Gone(Arc<Value>),
    /// Finalizers remain: the object got a deletionTimestamp.
    Pending(Arc<Value>),
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

type Objects = BTreeMap<ObjectKey, Arc<Value>>;

/// An object's place among its resource's objects: (namespace, name), with an empty namespace
/// for cluster-scoped kinds.
type ObjectKey = (String, String);

/// The key of `ns`/`name` of `def` (the namespace dropped for cluster-scoped kinds).
fn object_key(def: &ResourceDef, ns: &str, name: &str) -> ObjectKey {
    let ns = if def.namespaced { ns } else { "" };
    (ns.to_owned(), name.to_owned())
}

/// The 409 of a `uid` precondition that does not match the stored object.
fn uid_conflict(want: &str, cur: &Value) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
            meta_str(cur, "uid")
        ),
    )
}

/// The start of a watch: events to replay, the live receiver, and the resourceVersion it starts at.
pub(crate) type WatchStart = (
    Vec<Arc<StoreEvent>>,
    broadcast::Receiver<Arc<StoreEvent>>,
    u64,
);

struct State {
    rv: u64,
    registry: Arc<Registry>,
    data: HashMap<String, Objects>,
    history: VecDeque<Arc<StoreEvent>>,
    history_cap: usize,
    /// Every event with a resourceVersion above this is still in `history`.
    history_start: u64,
}

impl State {
    /// The stored object at `key` of `def`, or 404 naming it.
    fn stored(&self, def: &ResourceDef, key: &ObjectKey) -> Result<Arc<Value>, ApiError> {
        self.data
            .get(&def.storage_key())
            .and_then(|objs| objs.get(key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, &key.1))
    }
}

/// The preconditions of an update of `cur` to `new`: a matching resourceVersion (required when
/// `require_rv`) and uid, and the name and namespace of the URL.
fn check_preconditions(
    def: &ResourceDef,
    ns: &str,
    name: &str,
    require_rv: bool,
    cur: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    let cur_rv = meta_str(cur, "resourceVersion");
    let new_rv = meta_str(new, "resourceVersion");
    if new_rv.is_empty() {
        if require_rv {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                name,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
            ));
        }
    } else if new_rv != cur_rv {
        return Err(ApiError::conflict(&def.group, &def.plural, name));
    }
    let new_uid = meta_str(new, "uid");
    if !new_uid.is_empty() && new_uid != meta_str(cur, "uid") {
        return Err(uid_conflict(new_uid, cur));
    }
    let new_name = meta_str(new, "name");
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    let new_ns = meta_str(new, "namespace");
    if def.namespaced && !new_ns.is_empty() && new_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// `new` with what an update does not change taken from `cur`: the status (or, for the status
/// subresource, everything but the status and managedFields), the type, and the identity and
/// lifecycle metadata.
fn carried_over(
    def: &ResourceDef,
    ns: &str,
    name: &str,
    mode: UpdateMode,
    cur: &Value,
    mut new: Value,
) -> Value {
    match mode {
        UpdateMode::Main if def.status => {
            let o = new.as_object_mut().expect("checked above");
            match cur.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
        }
        UpdateMode::Status => {
            let mut only_status = cur.clone();
            let o = only_status
                .as_object_mut()
                .expect("stored objects are maps");
            match new.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
            if let Some(mf) = new.pointer("/metadata/managedFields") {
                meta_mut(&mut only_status).insert("managedFields".into(), mf.clone());
            }
            new = only_status;
        }
        _ => {}
    }
    {
        let o = new.as_object_mut().expect("checked above");
        o.insert("apiVersion".into(), json!(def.api_version()));
        o.insert("kind".into(), json!(def.kind));
    }
    let cur_meta = cur.get("metadata").cloned().unwrap_or_else(|| json!({}));
    {
        let meta = meta_mut(&mut new);
        meta.insert("name".into(), json!(name));
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match cur_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if !meta.contains_key("managedFields")
            && let Some(mf) = cur_meta.get("managedFields")
        {
            meta.insert("managedFields".into(), mf.clone());
        }
    }
    new
}

/// The store. Cheap operations under one mutex; serialization happens outside it.
pub(crate) struct Store {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
    /// Whether custom resources are pruned and defaulted by their CRD schema.
    prune: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.current_rv())
            .finish()
    }
}

pub(crate) fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let o = obj.as_object_mut().expect("made an object above");
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("made an object above")
}

/// A random suffix from the alphabet Kubernetes uses for generated names.
pub(crate) fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-4{}-{}-{}",
        h(0..4),
        h(4..6),
        &h(6..8)[1..],
        h(8..10),
        h(10..16)
    )
}

fn valid_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The object without metadata (and without status when it is a subresource): what
/// `metadata.generation` tracks.
fn generation_view(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_sub {
            m.remove("status");
        }
    }
    v
}

/// Kind-specific defaults and validation, as the real API server's strategies do them.
fn prepare(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_string();
    let o = obj.as_object_mut().expect("objects are maps");
    let default = |o: &mut Map<String, Value>, path: &[&str], v: Value| {
        let mut cur = o;
        for p in &path[..path.len() - 1] {
            let e = cur.entry(*p).or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                return;
            }
            cur = e.as_object_mut().expect("checked above");
        }
        cur.entry(path[path.len() - 1]).or_insert(v);
    };
    match def.builtin {
        Builtin::Deployment | Builtin::StatefulSet => {
            default(o, &["spec", "replicas"], json!(1));
            default(o, &["spec", "revisionHistoryLimit"], json!(10));
            if def.builtin == Builtin::Deployment {
                default(o, &["spec", "progressDeadlineSeconds"], json!(600));
                default(
                    o,
                    &["spec", "strategy"],
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
            } else {
                default(o, &["spec", "podManagementPolicy"], json!("OrderedReady"));
                default(
                    o,
                    &["spec", "updateStrategy"],
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
            }
            let spec = &o["spec"];
            let Some(selector) = spec.get("selector").filter(|s| s.is_object()) else {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    "spec.selector: Required value",
                ));
            };
            let sel = LabelSelector::from_object(selector);
            let template = spec.get("template").cloned().unwrap_or(Value::Null);
            if sel.is_empty() {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    "spec.selector: Invalid value: {}: empty selector is invalid for deployment",
                ));
            }
            if !sel.matches(&template) {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    format!(
                        "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                        template.pointer("/metadata/labels").unwrap_or(&Value::Null)
                    ),
                ));
            }
        }
        Builtin::Secret => {
            if o.get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                o.insert("type".into(), json!("Opaque"));
            }
            if let Some(Value::Object(sd)) = o.remove("stringData") {
                let data = o.entry("data").or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(d) = data {
                    for (k, v) in sd {
                        let raw = v.as_str().unwrap_or_default().to_string();
                        d.insert(
                            k,
                            json!(base64::engine::general_purpose::STANDARD.encode(raw)),
                        );
                    }
                }
            }
        }
        Builtin::Namespace => {
            default(o, &["spec", "finalizers"], json!(["kubernetes"]));
            default(o, &["status", "phase"], json!("Active"));
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        _ => {}
    }
    Ok(())
}

impl Store {
    pub(crate) fn new(history_cap: usize, prune: bool) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        let store = Self {
            state: Mutex::new(State {
                rv: 1,
                registry: Arc::new(Registry::with_builtins()),
                data: HashMap::new(),
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                history_start: 1,
            }),
            tx,
            prune,
        };
        let ns = store
            .registry()
            .find("", "v1", "namespaces")
            .expect("namespaces are built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store
                .create(&ns, "", json!({"metadata": {"name": name}}), false, false)
                .expect("the initial namespaces are valid");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The served resources right now.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    /// How many objects are stored.
    pub(crate) fn count(&self) -> usize {
        self.lock().data.values().map(BTreeMap::len).sum()
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.tx.subscribe()
    }

    fn emit(
        &self,
        st: &mut State,
        storage: String,
        kind: EventKind,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(StoreEvent::new(st.rv, storage, kind, object, prev));
        st.history.push_back(ev.clone());
        while st.history.len() > st.history_cap {
            if let Some(old) = st.history.pop_front() {
                st.history_start = old.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    /// Forgets the watch history: every resourceVersion handed out so far becomes "too old"
    /// for a watch, as after an etcd compaction.
    pub(crate) fn compact(&self) {
        let mut st = self.lock();
        st.rv += 1;
        st.history.clear();
        st.history_start = st.rv;
    }

    pub(crate) fn get(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.lock().stored(def, &object_key(def, ns, name))
    }

    /// Lists in key order (namespace, name). `continue` tokens carry the last key: a continued
    /// list sees the current state after that key, not a snapshot.
    pub(crate) fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListResult, ApiError> {
        let start: Option<ObjectKey> = match continue_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
                let v: Value = serde_json::from_slice(&raw)
                    .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
                Some((
                    v["ns"].as_str().unwrap_or_default().to_string(),
                    v["name"].as_str().unwrap_or_default().to_string(),
                ))
            }
            None => None,
        };
        let st = self.lock();
        let mut items = Vec::new();
        let mut continue_out = None;
        if let Some(objs) = st.data.get(&def.storage_key()) {
            use std::ops::Bound;
            let lower = match (&start, ns) {
                (Some(k), _) => Bound::Excluded(k.clone()),
                (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
                (None, None) => Bound::Unbounded,
            };
            let mut iter = objs
                .range((lower, Bound::Unbounded))
                .take_while(|((n, _), _)| ns.is_none_or(|want| n == want))
                .filter(|(_, o)| labels.matches(o) && fields.matches(o));
            for (_, obj) in iter.by_ref() {
                items.push(obj.clone());
                if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                    break;
                }
            }
            if limit.is_some_and(|l| l > 0 && items.len() >= l) && iter.next().is_some() {
                let last = items.last().expect("limit reached so not empty");
                let token = json!({"ns": meta_str(last, "namespace"), "name": meta_str(last, "name"), "rv": st.rv});
                continue_out =
                    Some(base64::engine::general_purpose::STANDARD.encode(token.to_string()));
            }
        }
        Ok(ListResult {
            items,
            resource_version: st.rv,
            continue_token: continue_out,
        })
    }

    /// Creates an object. `keep_status` is for internal writers; API creates drop the status of
    /// kinds with a status subresource.
    pub(crate) fn create(
        &self,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        keep_status: bool,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        {
            let meta = meta_mut(&mut obj);
            let body_ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if def.namespaced {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                meta.insert("namespace".into(), json!(ns));
            } else {
                meta.remove("namespace");
            }
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.is_empty() {
                match meta.get("generateName").and_then(Value::as_str) {
                    Some(prefix) if !prefix.is_empty() => {
                        let generated = format!("{prefix}{}", random_suffix(5));
                        meta.insert("name".into(), json!(generated));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            &def.group,
                            &def.kind,
                            "",
                            "metadata.name: Required value: name or generateName is required",
                        ));
                    }
                }
            }
        }
        let name = meta_str(&obj, "name").to_string();
        if !valid_dns_subdomain(&name) && def.builtin != Builtin::CoreEvent {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let o = obj.as_object_mut().expect("checked above");
        o.insert("apiVersion".into(), json!(def.api_version()));
        o.insert("kind".into(), json!(def.kind));
        if def.status && !keep_status {
            o.remove("status");
            if def.builtin == Builtin::Pod {
                o.insert(
                    "status".into(),
                    json!({"phase": "Pending", "qosClass": "BestEffort"}),
                );
            }
        }
        if self.prune
            && let Some(schema) = &def.schema
        {
            crate::schema::prune_and_default(&mut obj, schema);
        }
        prepare(def, &mut obj)?;
        let mut crd_defs = None;
        if def.builtin == Builtin::Crd {
            let defs = defs_from_crd(&obj)
                .map_err(|m| ApiError::invalid(&def.group, &def.kind, &name, m))?;
            let names = obj.pointer("/spec/names").cloned().unwrap_or(Value::Null);
            let now = time::now();
            obj["status"] = json!({
                "acceptedNames": names,
                "storedVersions": obj.pointer("/spec/versions").and_then(Value::as_array).map(|vs| vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            });
            crd_defs = Some(defs);
        }
        let mut st = self.lock();
        if def.namespaced
            && !st
                .data
                .get("/namespaces")
                .is_some_and(|n| n.contains_key(&(String::new(), ns.to_string())))
        {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        let key = object_key(def, ns, &name);
        let storage = def.storage_key();
        if st
            .data
            .get(&storage)
            .is_some_and(|objs| objs.contains_key(&key))
        {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let rv = st.rv + 1;
        {
            let meta = meta_mut(&mut obj);
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(time::now()));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            if def.generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        let obj = Arc::new(obj);
        if dry_run {
            return Ok(obj);
        }
        st.rv = rv;
        if let Some(defs) = crd_defs {
            let mut reg = (*st.registry).clone();
            reg.set_crd(&name, defs);
            st.registry = Arc::new(reg);
        }
        st.data
            .entry(storage.clone())
            .or_default()
            .insert(key, obj.clone());
        self.emit(&mut st, storage, EventKind::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Updates an object: `f` turns the current object into the proposed one (a PUT body or a
    /// patched copy). Preconditions, the status split, generation and finalizers apply here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mode: UpdateMode,
        require_rv: bool,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let key = object_key(def, ns, name);
        let storage = def.storage_key();
        let mut st = self.lock();
        let cur = st.stored(def, &key)?;
        let new = f(&cur)?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        check_preconditions(def, ns, name, require_rv, &cur, &new)?;
        let mut new = carried_over(def, ns, name, mode, &cur, new);
        let cur_meta = cur.get("metadata").cloned().unwrap_or_else(|| json!({}));
        if self.prune
            && let Some(schema) = &def.schema
        {
            crate::schema::prune_and_default(&mut new, schema);
        }
        prepare(def, &mut new)?;
        if def.builtin == Builtin::Crd {
            // keep the status we computed; a changed spec re-registers the resources
            if mode == UpdateMode::Main {
                if let Some(s) = cur.get("status") {
                    new["status"] = s.clone();
                }
                let names = new.pointer("/spec/names").cloned().unwrap_or(Value::Null);
                new["status"]["acceptedNames"] = names;
            }
        }
        if def.generation && generation_view(&new, def.status) != generation_view(&cur, def.status)
        {
            let g = cur_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let finalizers_done = !meta_str(&cur, "deletionTimestamp").is_empty()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        if new == *cur && !finalizers_done {
            return Ok(cur);
        }
        if def.builtin == Builtin::Crd {
            let defs = defs_from_crd(&new)
                .map_err(|m| ApiError::invalid(&def.group, &def.kind, name, m))?;
            if !dry_run {
                let mut reg = (*st.registry).clone();
                reg.set_crd(name, defs);
                st.registry = Arc::new(reg);
            }
        }
        let rv = st.rv + 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let new = Arc::new(new);
        if dry_run {
            return Ok(new);
        }
        st.rv = rv;
        if finalizers_done {
            self.remove_locked(&mut st, def, &key, new.clone());
            return Ok(new);
        }
        st.data
            .entry(storage.clone())
            .or_default()
            .insert(key, new.clone());
        self.emit(
            &mut st,
            storage,
            EventKind::Modified,
            new.clone(),
            Some(cur),
        );
        Ok(new)
    }

    /// Removes an object for good (rv already bumped), with its cascade: a CRD's custom
    /// resources, a namespace's objects.
    fn remove_locked(&self, st: &mut State, def: &ResourceDef, key: &ObjectKey, last: Arc<Value>) {
        let storage = def.storage_key();
        if let Some(objs) = st.data.get_mut(&storage) {
            objs.remove(key);
        }
        self.emit(st, storage, EventKind::Deleted, last, None);
        let mut cascade: Vec<(String, Option<String>)> = Vec::new();
        match def.builtin {
            Builtin::Crd => {
                let crd_name = &key.1;
                let reg = st.registry.clone();
                if let Some(d) = reg
                    .all()
                    .iter()
                    .find(|d| d.crd.as_deref() == Some(crd_name.as_str()))
                {
                    cascade.push((d.storage_key(), None));
                }
                let mut new_reg = (*reg).clone();
                new_reg.set_crd(crd_name, Vec::new());
                st.registry = Arc::new(new_reg);
            }
            Builtin::Namespace => {
                let keys: Vec<String> = st.data.keys().cloned().collect();
                for k in keys {
                    cascade.push((k, Some(key.1.clone())));
                }
            }
            _ => {}
        }
        for (storage, ns) in cascade {
            let Some(objs) = st.data.get_mut(&storage) else {
                continue;
            };
            let victims: Vec<ObjectKey> = objs
                .keys()
                .filter(|(n, _)| ns.as_ref().is_none_or(|want| n == want))
                .cloned()
                .collect();
            for k in victims {
                let Some(obj) = st.data.get_mut(&storage).and_then(|o| o.remove(&k)) else {
                    continue;
                };
                st.rv += 1;
                let mut gone = (*obj).clone();
                meta_mut(&mut gone).insert("resourceVersion".into(), json!(st.rv.to_string()));
                self.emit(
                    st,
                    storage.clone(),
                    EventKind::Deleted,
                    Arc::new(gone),
                    None,
                );
            }
        }
    }

    pub(crate) fn delete(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let key = object_key(def, ns, name);
        let mut st = self.lock();
        let cur = st.stored(def, &key)?;
        if let Some(uid) = pre.uid.as_deref().filter(|u| *u != meta_str(&cur, "uid")) {
            return Err(uid_conflict(uid, &cur));
        }
        if let Some(rv) = pre
            .resource_version
            .as_deref()
            .filter(|r| *r != meta_str(&cur, "resourceVersion"))
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&cur, "resourceVersion")
                ),
            ));
        }
        let has_finalizers = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if dry_run {
            return Ok(if has_finalizers {
                Deleted::Pending(cur)
            } else {
                Deleted::Gone(cur)
            });
        }
        st.rv += 1;
        let mut last = (*cur).clone();
        if has_finalizers {
            if !meta_str(&cur, "deletionTimestamp").is_empty() {
                st.rv -= 1;
                return Ok(Deleted::Pending(cur));
            }
            let meta = meta_mut(&mut last);
            meta.insert("deletionTimestamp".into(), json!(time::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(st.rv.to_string()));
            let last = Arc::new(last);
            st.data
                .entry(def.storage_key())
                .or_default()
                .insert(key, last.clone());
            self.emit(
                &mut st,
                def.storage_key(),
                EventKind::Modified,
                last.clone(),
                Some(cur),
            );
            return Ok(Deleted::Pending(last));
        }
        meta_mut(&mut last).insert("resourceVersion".into(), json!(st.rv.to_string()));
        let last = Arc::new(last);
        self.remove_locked(&mut st, def, &key, last.clone());
        Ok(Deleted::Gone(last))
    }

    /// Starts a watch: the events to send first (the history after `from`, or the current
    /// objects as ADDED events when `from` is `None`) and a receiver for what follows, taken
    /// atomically so nothing is missed or repeated.
    pub(crate) fn watch_from(
        &self,
        def: &ResourceDef,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let st = self.lock();
        let storage = def.storage_key();
        let rx = self.tx.subscribe();
        let initial = match from {
            Some(rv) if rv < st.history_start => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    st.history_start
                )));
            }
            // a version from the future (a client that outlived a restarted emulator) cannot be
            // resumed either: 410 makes it re-list instead of waiting for events it would miss
            Some(rv) if rv > st.rv => {
                return Err(ApiError::gone(format!(
                    "too large resource version: {rv}, current: {}",
                    st.rv
                )));
            }
            Some(rv) => st
                .history
                .iter()
                .filter(|e| e.rv > rv && e.storage == storage)
                .cloned()
                .collect(),
            None => st
                .data
                .get(&storage)
                .map(|objs| {
                    objs.values()
                        .map(|o| {
                            let rv = meta_str(o, "resourceVersion").parse().unwrap_or(0);
                            Arc::new(StoreEvent::new(
                                rv,
                                storage.clone(),
                                EventKind::Added,
                                o.clone(),
                                None,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok((initial, rx, st.rv))
    }
}
