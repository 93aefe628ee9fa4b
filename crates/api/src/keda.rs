//! Import of KEDA manifests (library for `promscalerctl import-keda`): ScaledObjects become
//! PromScalers and TriggerAuthentications become PromScalerAuthentications by changing
//! `apiVersion` and `kind` (and `authenticationRef.kind`). The conversion works on the YAML tree
//! so everything it keeps is kept verbatim, in the input's order. Anything promscaler would
//! treat differently from KEDA is refused with one line per problem saying what to do; things
//! that change nothing (server-populated metadata, ignored fields) are dropped or kept with a
//! note.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::{
    API_VERSION, AUTH_PARAMETERS, AUTHENTICATION_KIND, Error, PROMETHEUS_TRIGGER_TYPE, PromScaler,
};

/// KEDA's API version.
pub const KEDA_API_VERSION: &str = "keda.sh/v1alpha1";

/// The result of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The converted documents, in input order (documents that are not KEDA resources pass
    /// through unchanged).
    pub documents: Vec<Value>,
    /// Informational lines: what was dropped or ignored and why it changes nothing.
    pub notes: Vec<String>,
}

impl Imported {
    /// The documents as multi-document YAML.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.documents.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            // `import_keda` refused documents that do not serialise; never panic regardless.
            match serde_yaml::to_string(d) {
                Ok(yaml) => out.push_str(&yaml),
                Err(e) => {
                    out.push_str(&format!("# document {} is not representable: {e}\n", i + 1))
                }
            }
        }
        out
    }
}

/// Converts multi-document KEDA YAML (ScaledObject, TriggerAuthentication,
/// ClusterTriggerAuthentication). Every problem is collected; any problem fails the whole
/// import with [`Error::Import`] (nothing is half-converted).
pub fn import_keda(input: &str) -> Result<Imported, Error> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let v = serde::Deserialize::deserialize(de).map_err(|source| Error::Yaml {
            document: i + 1,
            source,
        })?;
        if !matches!(v, Value::Null) {
            docs.push((i + 1, v));
        }
    }
    let mut cx = Cx::default();

    // ClusterTriggerAuthentications become namespaced PromScalerAuthentications in every
    // namespace whose ScaledObjects reference them, when they hold no Secrets (a namespaced
    // authentication reads Secrets from its own namespace, KEDA's cluster one from KEDA's).
    let mut cluster_refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, d) in &docs {
        if kind_of(d) == Some("ScaledObject") {
            let ns = str_at(d, &["metadata", "namespace"])
                .unwrap_or("default")
                .to_owned();
            if let Some(Value::Sequence(ts)) = get_path(d, &["spec", "triggers"]) {
                for t in ts {
                    if str_at(t, &["authenticationRef", "kind"])
                        == Some("ClusterTriggerAuthentication")
                        && let Some(n) = str_at(t, &["authenticationRef", "name"])
                    {
                        let e = cluster_refs.entry(n.to_owned()).or_default();
                        if !e.contains(&ns) {
                            e.push(ns.clone());
                        }
                    }
                }
            }
        }
    }
    let mut convertible_cluster_auths = Vec::new();
    let mut out = Vec::new();
    for (n, d) in &docs {
        let id = describe(d, *n);
        match (api_version_of(d), kind_of(d)) {
            (Some(KEDA_API_VERSION), Some("ScaledObject")) => {}
            (Some(KEDA_API_VERSION), Some("TriggerAuthentication")) => {
                if let Some(v) = cx.trigger_auth(d, &id, None) {
                    out.push((*n, v));
                }
            }
            (Some(KEDA_API_VERSION), Some("ClusterTriggerAuthentication")) => {
                let name = str_at(d, &["metadata", "name"]).unwrap_or_default().to_owned();
                match cluster_refs.get(&name) {
                    None => cx.problem(&id, "", "is not referenced by any ScaledObject in this input, and promscaler has no cluster-scoped authentication; import it together with the ScaledObjects that use it (it becomes a PromScalerAuthentication in their namespaces)"),
                    Some(namespaces) => {
                        if get_path(d, &["spec", "secretTargetRef"]).is_some_and(|v| !is_empty(v)) {
                            cx.problem(&id, "spec.secretTargetRef", "reads Secrets from KEDA's namespace, but a PromScalerAuthentication reads them from its own: copy the Secrets into each namespace that uses it, change the ClusterTriggerAuthentication into a TriggerAuthentication there, and import those");
                            continue;
                        }
                        for ns in namespaces {
                            if let Some(v) = cx.trigger_auth(d, &id, Some(ns)) {
                                out.push((*n, v));
                            }
                        }
                        convertible_cluster_auths.push(name);
                    }
                }
            }
            (Some(KEDA_API_VERSION), Some("ScaledJob")) => cx.problem(&id, "", "ScaledJobs are not supported: promscaler scales workloads with a /scale subresource, not Jobs; keep it on KEDA"),
            (Some(av), Some(k)) if av.starts_with("keda.sh/") || av.starts_with("eventing.keda.sh/") => {
                cx.problem(&id, "", &format!("{k} ({av}) has no promscaler equivalent; keep it on KEDA"));
            }
            _ => {
                cx.notes.push(format!("{id}: not a KEDA resource, passed through unchanged"));
                out.push((*n, d.clone()));
            }
        }
    }
    // ScaledObjects after authentications so ClusterTriggerAuthentication refs can be checked.
    for (n, d) in &docs {
        if api_version_of(d) == Some(KEDA_API_VERSION) && kind_of(d) == Some("ScaledObject") {
            let id = describe(d, *n);
            if let Some(v) = cx.scaled_object(d, &id, &convertible_cluster_auths) {
                out.push((*n, v));
            }
        }
    }
    // Input order (a ClusterTriggerAuthentication's copies take its place); the sort is stable.
    out.sort_by_key(|(n, _)| *n);
    // serde_yaml reads some documents it cannot write back (a mapping key with a bare `!` tag,
    // e.g. `! t: x`; found by the keda_import fuzz target): refuse them here, so
    // `Imported::to_yaml` always has YAML to print.
    for (n, d) in &out {
        if let Err(e) = serde_yaml::to_string(d) {
            cx.problems.push(format!(
                "document {n}: cannot be written back as YAML ({e}); remove YAML tags (`!name`) from it"
            ));
        }
    }
    if cx.problems.is_empty() {
        Ok(Imported {
            documents: out.into_iter().map(|(_, v)| v).collect(),
            notes: cx.notes,
        })
    } else {
        Err(Error::Import {
            problems: cx.problems,
        })
    }
}

#[derive(Default)]
struct Cx {
    problems: Vec<String>,
    notes: Vec<String>,
}

const SERVER_METADATA: &[&str] = &[
    "generation",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl Cx {
    fn problem(&mut self, id: &str, field: &str, msg: &str) {
        if field.is_empty() {
            self.problems.push(format!("{id}: {msg}"));
        } else {
            self.problems.push(format!("{id}: {field}: {msg}"));
        }
    }

    fn note(&mut self, id: &str, field: &str, msg: &str) {
        self.notes.push(format!("{id}: {field}: {msg}"));
    }

    /// Unknown keys of a mapping are problems.
    fn only(&mut self, id: &str, path: &str, v: &Value, allowed: &[&str], what: &str) {
        if let Value::Mapping(m) = v {
            for k in m.keys() {
                let k = k.as_str().unwrap_or("?");
                if !allowed.contains(&k) {
                    self.problem(
                        id,
                        &join(path, k),
                        &format!("is not supported by promscaler: {what}"),
                    );
                }
            }
        }
    }

    /// Metadata: keeps what the user wrote, drops what the API server filled in.
    fn metadata(&mut self, id: &str, d: &Value, namespace: Option<&str>) -> Value {
        let mut md = match d.get("metadata") {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        for k in SERVER_METADATA {
            if md.shift_remove(*k).is_some() {
                self.note(
                    id,
                    &format!("metadata.{k}"),
                    "dropped (set by the API server)",
                );
            }
        }
        if let Some(Value::Sequence(fs)) = md.get("finalizers").cloned() {
            let kept: Vec<Value> = fs
                .into_iter()
                .filter(|f| !f.as_str().is_some_and(|s| s.contains("keda.sh")))
                .collect();
            if kept.is_empty() {
                md.shift_remove("finalizers");
            } else {
                md.insert("finalizers".into(), Value::Sequence(kept));
            }
            self.note(
                id,
                "metadata.finalizers",
                "KEDA's finalizer dropped (promscaler adds its own)",
            );
        }
        if let Some(Value::Mapping(a)) = md.get_mut("annotations") {
            if a.shift_remove(LAST_APPLIED).is_some() {
                self.note(
                    id,
                    &format!("metadata.annotations[{LAST_APPLIED}]"),
                    "dropped (it describes the KEDA object)",
                );
            }
            for k in a.keys() {
                let k = k.as_str().unwrap_or_default();
                if k.starts_with("scaledobject.keda.sh/") || k.starts_with("validations.keda.sh/") {
                    self.note(
                        id,
                        &format!("metadata.annotations[{k}]"),
                        "kept, but ignored: promscaler creates no HPA",
                    );
                }
            }
            if a.is_empty() {
                md.shift_remove("annotations");
            }
        }
        if let Some(ns) = namespace {
            md.insert("namespace".into(), ns.into());
        }
        Value::Mapping(md)
    }

    fn trigger_auth(&mut self, d: &Value, id: &str, namespace: Option<&str>) -> Option<Value> {
        let before = self.problems.len();
        self.only(
            id,
            "",
            d,
            &["apiVersion", "kind", "metadata", "spec", "status"],
            "remove it (the API server would prune it anyway)",
        );
        let spec = d
            .get("spec")
            .cloned()
            .unwrap_or(Value::Mapping(Mapping::new()));
        self.only(
            id,
            "spec",
            &spec,
            &["secretTargetRef", "podIdentity"],
            "credentials come only from Secrets in the same namespace (secretTargetRef) and from AWS pod identity; put the value in a Secret and reference it with secretTargetRef",
        );
        if let Some(Value::Sequence(refs)) = spec.get("secretTargetRef") {
            for (i, r) in refs.iter().enumerate() {
                let p = format!("spec.secretTargetRef[{i}]");
                self.only(id, &p, r, &["parameter", "name", "key"], "remove it");
                if str_at(r, &["parameter"]) == Some("awsExternalId") {
                    self.problem(id, &format!("{p}.parameter"), "awsExternalId is not supported: the metrics-fetcher assumes roles without an external ID; allow the role to be assumed without one, or keep this on KEDA");
                } else if let Some(param) = str_at(r, &["parameter"])
                    && !AUTH_PARAMETERS.contains(&param)
                    && param != "awsAccessKeyId"
                {
                    self.note(
                        id,
                        &format!("{p}.parameter"),
                        &format!("{param:?} is not used by the prometheus scaler (kept)"),
                    );
                }
            }
        }
        if let Some(pi) = spec.get("podIdentity") {
            self.only(
                id,
                "spec.podIdentity",
                pi,
                &["provider", "roleArn", "identityOwner"],
                "only provider, roleArn and identityOwner apply to AWS pod identity; remove it",
            );
            match str_at(pi, &["provider"]).unwrap_or("") {
                "aws" | "none" | "" => {}
                "aws-eks" | "aws-kiam" => self.problem(id, "spec.podIdentity.provider", "is deprecated in KEDA; use provider: aws (the metrics-fetcher's IRSA / EKS Pod Identity) with identityOwner: workload to assume the workload's ServiceAccount role (what aws-eks did), or roleArn to assume a given role"),
                other => self.problem(id, "spec.podIdentity.provider", &format!("{other:?} is not supported: promscaler signs only AWS requests; use secretTargetRef credentials instead")),
            }
            match str_at(pi, &["identityOwner"]) {
                None | Some("keda") => {}
                Some("workload") if str_at(pi, &["roleArn"]).is_some_and(|r| !r.trim().is_empty()) => {
                    self.problem(id, "spec.podIdentity.roleArn", "cannot be used with identityOwner: workload (KEDA rejects it too): remove roleArn to assume the role annotated on the workload's ServiceAccount, or set identityOwner: keda");
                }
                Some("workload") => {}
                Some(owner) => self.problem(id, "spec.podIdentity.identityOwner", &format!("{owner:?} is not supported: use keda (the metrics-fetcher's identity, with roleArn to assume a role) or workload (the role annotated on the scale target's ServiceAccount)")),
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), API_VERSION.into());
        m.insert("kind".into(), AUTHENTICATION_KIND.into());
        m.insert("metadata".into(), self.metadata(id, d, namespace));
        m.insert("spec".into(), spec);
        if d.get("status").is_some() {
            self.note(id, "status", "dropped");
        }
        Some(Value::Mapping(m))
    }

    fn scaled_object(&mut self, d: &Value, id: &str, cluster_auths: &[String]) -> Option<Value> {
        let before = self.problems.len();
        self.only(
            id,
            "",
            d,
            &["apiVersion", "kind", "metadata", "spec", "status"],
            "remove it (the API server would prune it anyway)",
        );
        let mut spec = d
            .get("spec")
            .cloned()
            .unwrap_or(Value::Mapping(Mapping::new()));
        self.only(
            id,
            "spec",
            &spec,
            &[
                "scaleTargetRef",
                "pollingInterval",
                "cooldownPeriod",
                "initialCooldownPeriod",
                "idleReplicaCount",
                "minReplicaCount",
                "maxReplicaCount",
                "fallback",
                "advanced",
                "triggers",
            ],
            "remove it, or keep this ScaledObject on KEDA",
        );
        self.check_spec_fields(id, &spec);
        let namespace = str_at(d, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_owned();
        if let Some(Value::Sequence(ts)) = spec.get_mut("triggers") {
            for (i, t) in ts.iter_mut().enumerate() {
                self.convert_trigger(id, i, t, &namespace, cluster_auths);
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), API_VERSION.into());
        m.insert("kind".into(), "PromScaler".into());
        m.insert("metadata".into(), self.metadata(id, d, None));
        m.insert("spec".into(), spec);
        if d.get("status").is_some() {
            self.note(id, "status", "dropped (the actuator writes its own)");
        }
        let out = Value::Mapping(m);
        // The result must be a valid PromScaler: the same rules the actuator applies.
        match serde_yaml::from_value::<PromScaler>(out.clone()) {
            Err(e) => {
                self.problem(id, "", &format!("does not fit the PromScaler schema: {e}"));
                None
            }
            Ok(ps) => match ps.validate() {
                Ok(v) => {
                    for w in v.warnings {
                        self.note(id, &w.field, &w.message);
                    }
                    Some(out)
                }
                Err(errors) => {
                    for e in errors {
                        self.problem(id, &e.field, &e.message);
                    }
                    None
                }
            },
        }
    }

    /// Reports the fields of a ScaledObject's spec promscaler does not take (each a problem or
    /// a note, per field).
    fn check_spec_fields(&mut self, id: &str, spec: &Value) {
        if let Some(t) = spec.get("scaleTargetRef") {
            self.only(
                id,
                "spec.scaleTargetRef",
                t,
                &["name", "apiVersion", "kind", "envSourceContainerName"],
                "remove it",
            );
            if t.get("envSourceContainerName").is_some() {
                self.note(
                    id,
                    "spec.scaleTargetRef.envSourceContainerName",
                    "kept, but unused: prometheus triggers read no container environment",
                );
            }
        }
        if let Some(f) = spec.get("fallback") {
            self.only(
                id,
                "spec.fallback",
                f,
                &["failureThreshold", "replicas", "behavior"],
                "remove it, or keep this ScaledObject on KEDA",
            );
        }
        if let Some(a) = spec.get("advanced") {
            self.only(
                id,
                "spec.advanced",
                a,
                &[
                    "horizontalPodAutoscalerConfig",
                    "restoreToOriginalReplicaCount",
                    "scalingModifiers",
                ],
                "remove it, or keep this ScaledObject on KEDA",
            );
            if let Some(h) = a.get("horizontalPodAutoscalerConfig") {
                let p = "spec.advanced.horizontalPodAutoscalerConfig";
                self.only(id, p, h, &["name", "behavior"], "promscaler creates no HPA, only behavior applies; remove it or keep this ScaledObject on KEDA");
                if let Some(b) = h.get("behavior") {
                    self.only(
                        id,
                        &format!("{p}.behavior"),
                        b,
                        &["scaleUp", "scaleDown"],
                        "remove it",
                    );
                    for dir in ["scaleUp", "scaleDown"] {
                        if let Some(r) = b.get(dir) {
                            let rp = format!("{p}.behavior.{dir}");
                            self.only(
                                id,
                                &rp,
                                r,
                                &[
                                    "stabilizationWindowSeconds",
                                    "selectPolicy",
                                    "policies",
                                    "tolerance",
                                ],
                                "remove it",
                            );
                            if let Some(Value::Sequence(ps)) = r.get("policies") {
                                for (i, pol) in ps.iter().enumerate() {
                                    self.only(
                                        id,
                                        &format!("{rp}.policies[{i}]"),
                                        pol,
                                        &["type", "value", "periodSeconds"],
                                        "remove it",
                                    );
                                }
                            }
                        }
                    }
                }
            }
            if let Some(s) = a.get("scalingModifiers") {
                self.only(
                    id,
                    "spec.advanced.scalingModifiers",
                    s,
                    &["formula", "target", "activationTarget", "metricType"],
                    "remove it",
                );
            }
        }
    }

    /// Checks one trigger and converts it in place: metadata values quoted as strings, a
    /// trigger's `identityOwner: workload` kept at KEDA's meaning, authentication kinds renamed.
    fn convert_trigger(
        &mut self,
        id: &str,
        i: usize,
        t: &mut Value,
        namespace: &str,
        cluster_auths: &[String],
    ) {
        let p = format!("spec.triggers[{i}]");
        let ty = str_at(t, &["type"]).unwrap_or("").to_owned();
        if ty != PROMETHEUS_TRIGGER_TYPE {
            self.problem(id, &format!("{p}.type"), &format!("{ty:?} triggers are not supported: promscaler handles only prometheus triggers; keep this ScaledObject on KEDA, or replace the trigger with a Prometheus query of the same metric"));
            return;
        }
        self.only(
            id,
            &p,
            t,
            &[
                "type",
                "name",
                "metadata",
                "authenticationRef",
                "metricType",
                "useCachedMetrics",
            ],
            "remove it, or keep this ScaledObject on KEDA",
        );
        // KEDA's schema wants strings; a YAML number or boolean would not even apply
        // there, but it is clearly meant as that string.
        if let Some(Value::Mapping(md)) = t.get_mut("metadata") {
            for (k, v) in md.iter_mut() {
                let s = match v {
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                };
                if let Some(s) = s {
                    self.note(
                        id,
                        &format!("{p}.metadata.{}", k.as_str().unwrap_or("?")),
                        &format!("quoted as {s:?} (metadata values are strings)"),
                    );
                    *v = Value::String(s);
                }
            }
            // KEDA's trigger metadata knows only pod and operator, and signs any other
            // value (workload too) with its own identity; promscaler's `workload` means
            // the workload's ServiceAccount role, so keep KEDA's meaning.
            if let Some(owner) = md.get_mut("identityOwner")
                && owner.as_str() == Some("workload")
            {
                *owner = Value::String("operator".to_owned());
                self.note(id, &format!("{p}.metadata.identityOwner"), "imported as operator: KEDA signs a trigger's identityOwner: workload with its own identity; set workload in promscaler to assume the role annotated on the scale target's ServiceAccount instead");
            }
        }
        if let Some(ar) = t.get_mut("authenticationRef") {
            self.only(
                id,
                &format!("{p}.authenticationRef"),
                ar,
                &["name", "kind"],
                "remove it",
            );
            let name = str_at(ar, &["name"]).unwrap_or("").to_owned();
            match str_at(ar, &["kind"]) {
                None => {}
                Some("TriggerAuthentication") => {
                    set(ar, "kind", AUTHENTICATION_KIND);
                }
                Some("ClusterTriggerAuthentication") => {
                    if cluster_auths.contains(&name) {
                        set(ar, "kind", AUTHENTICATION_KIND);
                        self.note(id, &format!("{p}.authenticationRef"), &format!("ClusterTriggerAuthentication {name} imported as PromScalerAuthentication {namespace}/{name}"));
                    } else {
                        self.problem(id, &format!("{p}.authenticationRef"), &format!("ClusterTriggerAuthentication {name} is not in this input (or could not be converted); import it together with this ScaledObject"));
                    }
                }
                Some(other) => self.problem(
                    id,
                    &format!("{p}.authenticationRef.kind"),
                    &format!("{other:?} is not a KEDA authentication kind"),
                ),
            }
        }
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_owned()
    } else {
        format!("{path}.{k}")
    }
}

fn set(v: &mut Value, key: &str, value: &str) {
    if let Value::Mapping(m) = v {
        m.insert(key.into(), value.into());
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get_path(v, path).and_then(Value::as_str)
}

fn kind_of(v: &Value) -> Option<&str> {
    str_at(v, &["kind"])
}

fn api_version_of(v: &Value) -> Option<&str> {
    str_at(v, &["apiVersion"])
}

fn describe(d: &Value, n: usize) -> String {
    let kind = kind_of(d).unwrap_or("document");
    let name = str_at(d, &["metadata", "name"]).unwrap_or("<unnamed>");
    match str_at(d, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name} (document {n})"),
        None => format!("{kind} {name} (document {n})"),
    }
}
