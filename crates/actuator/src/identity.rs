//! `identityOwner: workload` (KEDA's aws podIdentity with the workload's identity): the AWS
//! role of the scale target's pods, read from the `eks.amazonaws.com/role-arn` annotation of the
//! ServiceAccount their pod template runs as. The actuator sends that role in the query's AWS
//! auth; the metrics-fetcher assumes it on top of its own identity.
//!
//! Everything is read from watch caches: the pod template's ServiceAccount name from the
//! Deployment and StatefulSet caches ([`Workload`] keeps only that name of the template), the
//! annotation from the ServiceAccount cache, trimmed to that one annotation. Other target kinds
//! (anything reached through `/scale` only) have no pod template the actuator may read, so they
//! get a condition saying to name the role explicitly.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::ServiceAccount,
};
use kube::runtime::reflector::{ObjectRef, Store};
use promscaler_api::{PromScaler, PromScalerAuthentication, WORKLOAD_ROLE_ANNOTATION};

use crate::{
    reason,
    spec::Invalid,
    types::{ScalerKey, TargetRef, Workload},
};

/// The longest IAM role ARN (IAM's limit); a longer annotation is cut to one character more
/// than this before it is cached, and reported as too long.
pub(crate) const MAX_ROLE_ARN_LEN: usize = 2048;

/// The caches the workload's role is read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkloadCaches<'a> {
    /// Deployments (replicas and the pod template's ServiceAccount name).
    pub deployments: &'a Store<Workload<Deployment>>,
    /// StatefulSets (the same).
    pub statefulsets: &'a Store<Workload<StatefulSet>>,
    /// ServiceAccounts (name and the role annotation only).
    pub service_accounts: &'a Store<ServiceAccount>,
}

/// Trims a ServiceAccount before it enters the watch cache: its name, namespace and the role
/// annotation (cut to [`MAX_ROLE_ARN_LEN`] + 1 characters) are all a tick reads.
pub(crate) fn strip_service_account(account: &mut ServiceAccount) {
    account.secrets = None;
    account.image_pull_secrets = None;
    account.automount_service_account_token = None;
    let meta = &mut account.metadata;
    let role = meta
        .annotations
        .take()
        .and_then(|mut a| a.remove(WORKLOAD_ROLE_ANNOTATION))
        .map(|mut role| {
            if let Some((cut, _)) = role.char_indices().nth(MAX_ROLE_ARN_LEN + 1) {
                role.truncate(cut);
            }
            role
        });
    meta.annotations = role.map(|r| [(WORKLOAD_ROLE_ANNOTATION.to_owned(), r)].into());
    meta.managed_fields = None;
    meta.labels = None;
    meta.owner_references = None;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.generation = None;
}

/// The ServiceAccount the target's pods run as, for Deployments and StatefulSets.
fn service_account_of(
    namespace: &str,
    target: &TargetRef,
    caches: WorkloadCaches<'_>,
) -> Result<String, Invalid> {
    let found = if target.is("apps/v1", "Deployment") {
        caches
            .deployments
            .get(&ObjectRef::new(&target.name).within(namespace))
            .map(|d| d.service_account().to_owned())
    } else if target.is("apps/v1", "StatefulSet") {
        caches
            .statefulsets
            .get(&ObjectRef::new(&target.name).within(namespace))
            .map(|s| s.service_account().to_owned())
    } else {
        return Err(Invalid {
            reason: reason::WORKLOAD_IDENTITY_NOT_FOUND,
            message: format!(
                "identityOwner: workload reads the ServiceAccount of the scale target's pod template, which promscaler reads for apps/v1 Deployments and StatefulSets only, not {} {}; name the role instead: a PromScalerAuthentication with podIdentity provider: aws, identityOwner: keda and roleArn: <the workload's role>",
                target.api_version, target.kind
            ),
        });
    };
    found.ok_or_else(|| Invalid {
        reason: reason::SCALE_TARGET_NOT_FOUND,
        message: format!(
            "{} {namespace}/{} not found (identityOwner: workload reads its pod template's ServiceAccount)",
            target.kind, target.name
        ),
    })
}

/// The role `identityOwner: workload` assumes for the PromScaler in `namespace` scaling
/// `target`: the [`WORKLOAD_ROLE_ANNOTATION`] of its pod template's ServiceAccount (`default`
/// when the template names none). Missing anywhere ⇒ an [`Invalid`] that says which annotation
/// to add on which ServiceAccount.
pub(crate) fn workload_role(
    namespace: &str,
    target: &TargetRef,
    caches: WorkloadCaches<'_>,
) -> Result<String, Invalid> {
    let account = service_account_of(namespace, target, caches)?;
    let of = format!(
        "the ServiceAccount of {} {namespace}/{}",
        target.kind, target.name
    );
    let add = format!(
        "kubectl annotate serviceaccount -n {namespace} {account} {WORKLOAD_ROLE_ANNOTATION}=arn:aws:iam::<account>:role/<role>"
    );
    let missing = |message: String| Invalid {
        reason: reason::WORKLOAD_IDENTITY_NOT_FOUND,
        message,
    };
    let Some(found) = caches
        .service_accounts
        .get(&ObjectRef::new(&account).within(namespace))
    else {
        return Err(Invalid {
            reason: reason::SERVICE_ACCOUNT_NOT_FOUND,
            message: format!(
                "identityOwner: workload: ServiceAccount {namespace}/{account} ({of}) not found; create it with the annotation {WORKLOAD_ROLE_ANNOTATION} naming the role to assume ({add})"
            ),
        });
    };
    let role = found
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WORKLOAD_ROLE_ANNOTATION))
        .map(|r| r.trim())
        .unwrap_or_default();
    if role.is_empty() {
        return Err(missing(format!(
            "identityOwner: workload: ServiceAccount {namespace}/{account} ({of}) has no {WORKLOAD_ROLE_ANNOTATION} annotation; add it with the role the metrics-fetcher should assume for this workload ({add})"
        )));
    }
    if role.chars().count() > MAX_ROLE_ARN_LEN {
        return Err(missing(format!(
            "identityOwner: workload: the {WORKLOAD_ROLE_ANNOTATION} annotation of ServiceAccount {namespace}/{account} is longer than {MAX_ROLE_ARN_LEN} characters, so it is no IAM role ARN; set it to the role's ARN ({add})"
        )));
    }
    if !(role.starts_with("arn:") && role.contains(":role/")) {
        return Err(missing(format!(
            "identityOwner: workload: the {WORKLOAD_ROLE_ANNOTATION} annotation of ServiceAccount {namespace}/{account} is {role:?}, not an IAM role ARN; set it to the role's ARN ({add})"
        )));
    }
    Ok(role.to_owned())
}

/// Whether any trigger of `scaler` says `identityOwner: workload` (in its metadata or in its
/// PromScalerAuthentication's podIdentity).
fn says_workload(scaler: &PromScaler, auths: &Store<PromScalerAuthentication>) -> bool {
    let namespace = scaler.metadata.namespace.as_deref().unwrap_or_default();
    scaler.spec.triggers.iter().any(|t| {
        t.metadata.get("identityOwner").map(String::as_str) == Some("workload")
            || t.authentication_ref.as_ref().is_some_and(|r| {
                auths
                    .get(&ObjectRef::new(&r.name).within(namespace))
                    .and_then(|a| a.spec.pod_identity.clone())
                    .is_some_and(|p| p.identity_owner.as_deref() == Some("workload"))
            })
    })
}

/// The PromScalers that read ServiceAccount `namespace/name`: those that use the workload's
/// identity and whose target's pods run as it (or whose target is unknown yet). A scan of the
/// cache, but ServiceAccount annotations change rarely.
pub(crate) fn readers_of_service_account(
    scalers: &Store<PromScaler>,
    auths: &Store<PromScalerAuthentication>,
    caches: WorkloadCaches<'_>,
    namespace: &str,
    name: &str,
) -> Vec<ScalerKey> {
    scalers
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter(|s| says_workload(s, auths))
        .filter(|s| {
            let target = crate::spec::target_ref(s);
            service_account_of(namespace, &target, caches).map_or(true, |account| account == name)
        })
        .map(|s| ScalerKey::of(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector::store::Writer, watcher};

    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/app-reader";

    fn apply<K>(writer: &mut Writer<K>, json: serde_json::Value)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        writer.apply_watcher_event(&watcher::Event::Apply(
            serde_json::from_value(json).unwrap(),
        ));
    }

    /// A world of two Deployments (one naming a ServiceAccount, one not), a StatefulSet, and
    /// ServiceAccounts with and without the role annotation.
    struct World {
        deployments: Writer<Workload<Deployment>>,
        statefulsets: Writer<Workload<StatefulSet>>,
        accounts: Writer<ServiceAccount>,
    }

    impl World {
        fn new() -> Self {
            let mut w = Self {
                deployments: Writer::default(),
                statefulsets: Writer::default(),
                accounts: Writer::default(),
            };
            let pod = |account: Option<&str>| match account {
                Some(a) => {
                    serde_json::json!({ "spec": { "serviceAccountName": a, "containers": [] } })
                }
                None => serde_json::json!({ "spec": { "containers": [] } }),
            };
            apply(
                &mut w.deployments,
                serde_json::json!({
                    "metadata": { "name": "api", "namespace": "ns" },
                    "spec": { "replicas": 2, "template": pod(Some("api-sa")) },
                }),
            );
            apply(
                &mut w.deployments,
                serde_json::json!({
                    "metadata": { "name": "plain", "namespace": "ns" },
                    "spec": { "replicas": 1, "template": pod(None) },
                }),
            );
            apply(
                &mut w.statefulsets,
                serde_json::json!({
                    "metadata": { "name": "db", "namespace": "ns" },
                    "spec": { "template": pod(Some("db-sa")) },
                }),
            );
            w
        }

        fn account(&mut self, name: &str, annotations: serde_json::Value) {
            let mut account: ServiceAccount = serde_json::from_value(serde_json::json!({
                "metadata": { "name": name, "namespace": "ns", "annotations": annotations,
                              "labels": { "team": "a" } },
                "secrets": [{ "name": "token" }],
            }))
            .unwrap();
            strip_service_account(&mut account);
            self.accounts
                .apply_watcher_event(&watcher::Event::Apply(account));
        }

        fn role(&self, kind: &str, name: &str) -> Result<String, Invalid> {
            let deployments = self.deployments.as_reader();
            let statefulsets = self.statefulsets.as_reader();
            let service_accounts = self.accounts.as_reader();
            let target = TargetRef {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: name.into(),
            };
            workload_role(
                "ns",
                &target,
                WorkloadCaches {
                    deployments: &deployments,
                    statefulsets: &statefulsets,
                    service_accounts: &service_accounts,
                },
            )
        }
    }

    fn role_of(annotation: &str) -> serde_json::Value {
        serde_json::json!({ WORKLOAD_ROLE_ANNOTATION: annotation, "other": "x" })
    }

    #[test]
    fn the_role_is_the_annotation_of_the_pod_templates_service_account() {
        let mut world = World::new();
        world.account("api-sa", role_of(ROLE));
        world.account(
            "default",
            role_of("arn:aws:iam::123456789012:role/default-reader"),
        );
        assert_eq!(world.role("Deployment", "api").unwrap(), ROLE);
        // No serviceAccountName: the pods run as `default`.
        assert_eq!(
            world.role("Deployment", "plain").unwrap(),
            "arn:aws:iam::123456789012:role/default-reader"
        );
    }

    #[test]
    fn a_statefulsets_service_account_is_read_too() {
        let mut world = World::new();
        world.account("db-sa", role_of(" arn:aws:iam::123456789012:role/db \n"));
        assert_eq!(
            world.role("StatefulSet", "db").unwrap(),
            "arn:aws:iam::123456789012:role/db"
        );
    }

    #[test]
    fn a_missing_annotation_or_account_says_which_annotation_to_add_where() {
        let mut world = World::new();
        world.account("api-sa", serde_json::json!({ "other": "x" }));
        let error = world.role("Deployment", "api").unwrap_err();
        assert_eq!(error.reason, "WorkloadIdentityNotFound");
        assert!(
            error.message.contains(
                "ServiceAccount ns/api-sa (the ServiceAccount of Deployment ns/api) has no eks.amazonaws.com/role-arn annotation"
            ),
            "{}",
            error.message
        );
        assert!(
            error.message.contains(
                "kubectl annotate serviceaccount -n ns api-sa eks.amazonaws.com/role-arn="
            ),
            "{}",
            error.message
        );
        // No ServiceAccount at all (the StatefulSet's db-sa was never created).
        let error = world.role("StatefulSet", "db").unwrap_err();
        assert_eq!(error.reason, "ServiceAccountNotFound");
        assert!(
            error.message.contains(
                "ServiceAccount ns/db-sa (the ServiceAccount of StatefulSet ns/db) not found"
            ),
            "{}",
            error.message
        );
        // Not a role ARN.
        world.account("default", role_of("my-role"));
        let error = world.role("Deployment", "plain").unwrap_err();
        assert!(
            error.message.contains("not an IAM role ARN"),
            "{}",
            error.message
        );
        // An unknown workload is its own reason.
        let error = world.role("Deployment", "gone").unwrap_err();
        assert_eq!(error.reason, "ScaleTargetNotFound");
    }

    #[test]
    fn other_target_kinds_are_told_to_name_the_role() {
        let world = World::new();
        let error = world.role("Rollout", "r").unwrap_err();
        assert_eq!(error.reason, "WorkloadIdentityNotFound");
        assert!(
            error.message.contains("not apps/v1 Rollout"),
            "{}",
            error.message
        );
        assert!(error.message.contains("roleArn"), "{}", error.message);
    }

    #[test]
    fn the_cache_keeps_only_the_role_annotation_cut_to_an_arns_length() {
        let mut account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "sa", "namespace": "ns",
                          "annotations": { WORKLOAD_ROLE_ANNOTATION: "a".repeat(100_000), "big": "b".repeat(100_000) },
                          "labels": { "team": "a" } },
            "secrets": [{ "name": "token" }],
            "imagePullSecrets": [{ "name": "pull" }],
        }))
        .unwrap();
        strip_service_account(&mut account);
        let annotations = account.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(
            annotations[WORKLOAD_ROLE_ANNOTATION].len(),
            MAX_ROLE_ARN_LEN + 1
        );
        assert!(account.metadata.labels.is_none() && account.secrets.is_none());
        assert!(account.image_pull_secrets.is_none());
        // ... and such a value is reported, not sent.
        let mut world = World::new();
        world
            .accounts
            .apply_watcher_event(&watcher::Event::Apply(ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some("api-sa".into()),
                    namespace: Some("ns".into()),
                    ..account.metadata
                },
                ..ServiceAccount::default()
            }));
        let error = world.role("Deployment", "api").unwrap_err();
        assert!(
            error.message.contains("longer than 2048"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_service_account_change_reaches_the_scalers_of_workloads_running_as_it() {
        let mut world = World::new();
        world.account("api-sa", role_of(ROLE));
        let scaler = |name: &str, target: &str, owner: &str| -> PromScaler {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "promscaler.io/v1alpha1", "kind": "PromScaler",
                "metadata": { "name": name, "namespace": "ns" },
                "spec": { "scaleTargetRef": { "name": target }, "triggers": [{
                    "type": "prometheus",
                    "metadata": { "serverAddress": "http://p", "query": "up", "threshold": "1",
                                  "identityOwner": owner } }] },
            }))
            .unwrap()
        };
        let mut scalers = Writer::<PromScaler>::default();
        for s in [
            scaler("api", "api", "workload"),
            scaler("api-operator", "api", "operator"),
            scaler("plain", "plain", "workload"),
            scaler("unknown", "not-yet", "workload"),
        ] {
            scalers.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let auths = Writer::<PromScalerAuthentication>::default();
        let (deployments, statefulsets, service_accounts) = (
            world.deployments.as_reader(),
            world.statefulsets.as_reader(),
            world.accounts.as_reader(),
        );
        let caches = WorkloadCaches {
            deployments: &deployments,
            statefulsets: &statefulsets,
            service_accounts: &service_accounts,
        };
        let names = |account: &str| {
            let mut names: Vec<String> = readers_of_service_account(
                &scalers.as_reader(),
                &auths.as_reader(),
                caches,
                "ns",
                account,
            )
            .into_iter()
            .map(|k| k.name.to_string())
            .collect();
            names.sort();
            names
        };
        assert_eq!(names("api-sa"), ["api", "unknown"]);
        assert_eq!(names("default"), ["plain", "unknown"]);
    }
}
