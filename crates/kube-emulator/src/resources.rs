//! The resource types the API serves: the built-in kinds and those defined by CRDs.

use std::sync::Arc;

use serde_json::Value;

/// Kinds with behaviour of their own (defaults, tables, scale, the workload simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    Pod,
    Secret,
    ConfigMap,
    ServiceAccount,
    CoreEvent,
    Event,
    Deployment,
    StatefulSet,
    Lease,
    Crd,
    /// Roles, ClusterRoles and their bindings (stored; `SubjectAccessReview` evaluates them).
    Rbac,
    /// `TokenReview` and `SubjectAccessReview`: create only, answered and never stored.
    Review,
    /// A custom resource served from a CRD.
    Custom,
}

/// A `/scale` subresource: where replicas live in the object (`.spec.replicas` style paths).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScaleDef {
    pub(crate) spec_replicas_path: String,
    pub(crate) status_replicas_path: String,
    pub(crate) label_selector_path: Option<String>,
}

/// A printer column of a CRD version (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrinterColumn {
    pub(crate) name: String,
    pub(crate) type_: String,
    pub(crate) format: String,
    pub(crate) description: String,
    pub(crate) priority: i64,
    pub(crate) json_path: String,
}

/// One served resource in one group/version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceDef {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) list_kind: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) status: bool,
    pub(crate) scale: Option<ScaleDef>,
    pub(crate) columns: Vec<PrinterColumn>,
    pub(crate) builtin: Builtin,
    /// Whether `metadata.generation` is maintained (kinds with a spec).
    pub(crate) generation: bool,
    /// The CRD's name (`plural.group`) for custom resources.
    pub(crate) crd: Option<String>,
    /// The version's `openAPIV3Schema` (custom resources): pruning and defaults.
    pub(crate) schema: Option<Arc<Value>>,
}

impl ResourceDef {
    /// `apps/v1` or `v1`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key objects are stored under: all versions of a resource share it.
    pub(crate) fn storage_key(&self) -> String {
        if self.builtin == Builtin::Event {
            // events.k8s.io/v1 Events are core/v1 Events seen through a conversion, as in
            // the real API server
            return "/events".into();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// The verbs of the main resource.
    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if self.builtin == Builtin::Namespace {
            verbs.retain(|v| *v != "deletecollection");
        }
        if self.builtin == Builtin::Review {
            verbs.retain(|v| *v == "create");
        }
        verbs
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    categories: &[&str],
    status: bool,
    scale: bool,
    builtin: Builtin,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        status,
        scale: scale.then(|| ScaleDef {
            spec_replicas_path: ".spec.replicas".into(),
            status_replicas_path: ".status.replicas".into(),
            label_selector_path: None,
        }),
        columns: Vec::new(),
        builtin,
        generation: matches!(
            builtin,
            Builtin::Deployment | Builtin::StatefulSet | Builtin::Crd
        ),
        crd: None,
        schema: None,
    }
}

/// The built-in resources, in discovery order.
pub(crate) fn builtins() -> Vec<ResourceDef> {
    use Builtin::*;
    vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            &[],
            true,
            false,
            Namespace,
        ),
        builtin(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            &["all"],
            true,
            false,
            Pod,
        ),
        builtin(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            &[],
            &[],
            false,
            false,
            Secret,
        ),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            &[],
            false,
            false,
            ConfigMap,
        ),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            &[],
            false,
            false,
            ServiceAccount,
        ),
        builtin(
            "",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            false,
            false,
            CoreEvent,
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            &["all"],
            true,
            true,
            Deployment,
        ),
        builtin(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            &["all"],
            true,
            true,
            StatefulSet,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            false,
            false,
            Event,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            &[],
            false,
            false,
            Lease,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            true,
            false,
            Crd,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            &[],
            false,
            false,
            Rbac,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            &[],
            false,
            false,
            Rbac,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            &[],
            false,
            false,
            Rbac,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[],
            false,
            false,
            Rbac,
        ),
        builtin(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
            &[],
            &[],
            false,
            false,
            Review,
        ),
        builtin(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            &[],
            &[],
            false,
            false,
            Review,
        ),
    ]
}

/// The resources a CRD object defines (one per served version), or why it is not acceptable.
pub(crate) fn defs_from_crd(crd: &Value) -> Result<Vec<ResourceDef>, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group = str_at(spec, "group").ok_or("spec.group: Required value")?;
    let names = spec.get("names").ok_or("spec.names: Required value")?;
    let plural = str_at(names, "plural").ok_or("spec.names.plural: Required value")?;
    let kind = str_at(names, "kind").ok_or("spec.names.kind: Required value")?;
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let scope = str_at(spec, "scope").unwrap_or("Namespaced");
    if scope != "Namespaced" && scope != "Cluster" {
        return Err(format!(
            "spec.scope: Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""
        ));
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or("spec.versions: Required value")?;
    let mut defs = Vec::new();
    for v in versions {
        let version = str_at(v, "name").ok_or("spec.versions[].name: Required value")?;
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let sub = v.get("subresources");
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScaleDef {
            spec_replicas_path: str_at(s, "specReplicasPath")
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas_path: str_at(s, "statusReplicasPath")
                .unwrap_or(".status.replicas")
                .into(),
            label_selector_path: str_at(s, "labelSelectorPath").map(String::from),
        });
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, "name").unwrap_or_default().into(),
                        type_: str_at(c, "type").unwrap_or("string").into(),
                        format: str_at(c, "format").unwrap_or_default().into(),
                        description: str_at(c, "description").unwrap_or_default().into(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, "jsonPath").unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        defs.push(ResourceDef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            list_kind: str_at(names, "listKind")
                .map(String::from)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.into(),
            singular: str_at(names, "singular")
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: scope == "Namespaced",
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status: sub.and_then(|s| s.get("status")).is_some(),
            scale,
            columns,
            builtin: Builtin::Custom,
            generation: true,
            crd: Some(name.to_string()),
            schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
        });
    }
    Ok(defs)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, then others
/// alphabetically (the order `kubectl` and the apiserver use to pick a preferred version).
pub(crate) fn version_priority(v: &str) -> (u8, i64, u8, i64, String) {
    let parse = || -> Option<(i64, u8, i64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 0, 0));
        }
        for (stage, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(stage) {
                let minor: i64 = if n.is_empty() { 0 } else { n.parse().ok()? };
                return Some((major, rank, minor));
            }
        }
        None
    };
    match parse() {
        Some((major, rank, minor)) => (0, -major, rank, -minor, String::new()),
        None => (1, 0, 0, 0, v.to_string()),
    }
}

/// All served resources; rebuilt when CRDs change.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registry {
    defs: Vec<Arc<ResourceDef>>,
}

impl Registry {
    pub(crate) fn with_builtins() -> Self {
        Self {
            defs: builtins().into_iter().map(Arc::new).collect(),
        }
    }

    pub(crate) fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    /// Any served version of `group/plural` (used by internal writers).
    pub(crate) fn find_any(&self, group: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.plural == plural)
            .cloned()
    }

    /// Replaces the resources defined by CRD `crd_name` with `defs`.
    pub(crate) fn set_crd(&mut self, crd_name: &str, defs: Vec<ResourceDef>) {
        self.defs.retain(|d| d.crd.as_deref() != Some(crd_name));
        self.defs.extend(defs.into_iter().map(Arc::new));
    }

    /// Groups in discovery order (core `""` first), each with its versions, preferred first.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            match groups.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, versions)) => {
                    if !versions.contains(&d.version) {
                        versions.push(d.version.clone());
                    }
                }
                None => groups.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| version_priority(v));
        }
        groups
    }

    /// Resources of one group/version.
    pub(crate) fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1"];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
